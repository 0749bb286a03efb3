// The load generator of `actsvc bench`: one Level per step of the sweep,
// whose closed loop (client/driver.h) or open-loop schedule sends the
// workload over the load library's unary and stream calls
// (client/calls.h), and whose tally becomes the report's row.
#include "client/bench_load.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/calls.h"
#include "client/driver.h"
#include "grpcpp/generic/generic_stub.h"

namespace actsvc::client::bench {
namespace bv1 = ::actsvc::bench::v1;

std::string ServiceConfigJson(absl::string_view lb) {
  return absl::StrCat(
      R"({"loadBalancingConfig": [{")", lb, R"(": {}}],)",
      // round_robin skips a backend whose health turns NOT_SERVING (a
      // draining server), so new calls stop reaching it before it closes.
      R"("healthCheckConfig": {"serviceName": "actsvc.v1.ActivationService"},)",
      R"("methodConfig": [{"name": [{"service": "actsvc.v1.ActivationService"}],)",
      R"("retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s",)",
      R"("maxBackoff": "0.5s", "backoffMultiplier": 2,)",
      R"("retryableStatusCodes": ["UNAVAILABLE"]}}]})");
}

absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> ConnectChannels(
    const LoadOptions& options, absl::Duration connect_timeout) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  const auto deadline = absl::ToChronoTime(absl::Now() + connect_timeout);
  for (int i = 0; i < options.connections; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    args.SetServiceConfigJSON(ServiceConfigJson(options.lb));
    // A channel of its own per connection: without a local subchannel pool
    // (and a distinct argument) channels to one target share a connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("actsvc.bench.connection", i);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        MakeChannelCredentials(options.tls, &args);
    if (!credentials.ok()) return credentials.status();
    auto channel =
        grpc::CreateCustomChannel(options.target, *credentials, args);
    if (!channel->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to ", options.target, " within ",
          absl::FormatDuration(connect_timeout), " (connection ", i + 1, ")"));
    }
    channels.push_back(std::move(channel));
  }
  return channels;
}

namespace {

// One load level: issues calls, records what comes back, and builds the row.
class StreamWorker;

class Level {
 public:
  Level(const LoadOptions& options, const Workload& workload,
        const std::vector<std::shared_ptr<grpc::Channel>>& channels,
        int concurrency, double rate)
      : options_(options),
        workload_(workload),
        concurrency_(concurrency),
        rate_(rate) {
    for (const auto& channel : channels) {
      stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
    }
  }

  bv1::Row Run();

  // Decides whether a call scheduled at `scheduled_ns` is sent; assigns
  // its sequence number and whether it is measured.
  bool Admit(int64_t scheduled_ns, int64_t* seq, bool* measured);
  // Records a finished call. `response` may be null (failed stream).
  void Complete(int64_t seq, bool measured, int64_t scheduled_ns,
                const grpc::Status& status, const grpc::ByteBuffer* response);

  // Closed loop: sends one call that runs `done` when it ends; false when
  // the level is over.
  bool IssueClosed(std::function<void()> done);
  void IssueOpen(int64_t seq, bool measured, int64_t scheduled_ns);
  void PrintProgress();
  void RunStreamsOrSchedule();
  void Schedule(std::vector<StreamWorker*>* workers);
  std::string ProgressLine();
  grpc::GenericStub& Stub(int64_t seq) {
    return *stubs_[static_cast<size_t>(seq) % stubs_.size()];
  }
  std::shared_ptr<grpc::ClientContext> NewContext() const {
    auto context = std::make_shared<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    return context;
  }
  void FinishIssuer() {
    std::lock_guard<std::mutex> lock(mu_);
    --issuers_;
    cv_.notify_all();
  }

  const LoadOptions& options_;
  const Workload& workload_;
  const int concurrency_;
  const double rate_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;

  std::mutex mu_;
  std::condition_variable cv_;
  int64_t start_ns_ = 0;
  int64_t next_seq_ = 0;
  int64_t measured_issued_ = 0;
  std::optional<int64_t> window_begin_ns_;
  int64_t window_end_ns_ = 0;
  bool stopped_ = false;
  int issuers_ = 0;  // the open loop's scheduler, while it sends
  int streams_alive_ = 0;
  ProcessCounters server_begin_, client_begin_;
  int64_t in_flight_ = 0;
  int64_t response_bytes_ = 0;
  Tally tally_;

  friend class StreamWorker;
};

bool Level::Admit(int64_t scheduled_ns, int64_t* seq, bool* measured) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return false;
  const bool warming =
      next_seq_ < options_.warmup.count ||
      scheduled_ns < start_ns_ + absl::ToInt64Nanoseconds(options_.warmup.time);
  if (!warming) {
    if (!window_begin_ns_.has_value()) {
      window_begin_ns_ = scheduled_ns;
      if (options_.server_pid > 0) {
        server_begin_ = ReadProcessCounters(options_.server_pid);
      }
      client_begin_ = ReadProcessCounters(0);
    }
    const bool over =
        options_.requests > 0
            ? measured_issued_ >= options_.requests
            : scheduled_ns >= *window_begin_ns_ +
                                  absl::ToInt64Nanoseconds(options_.duration);
    if (over) {
      stopped_ = true;
      return false;
    }
    ++measured_issued_;
  }
  *seq = next_seq_++;
  *measured = !warming;
  ++in_flight_;
  return true;
}

void Level::Complete(int64_t seq, bool measured, int64_t scheduled_ns,
                     const grpc::Status& status,
                     const grpc::ByteBuffer* response) {
  const int64_t now = NowNs();
  std::string wrong;
  bool checked = false;
  if (measured && status.ok() && response != nullptr &&
      options_.check_every > 0 && seq % options_.check_every == 0) {
    checked = true;
    wrong = CheckResponse(workload_, *response);
  }
  std::lock_guard<std::mutex> lock(mu_);
  --in_flight_;
  if (status.ok() && response != nullptr && response_bytes_ == 0) {
    response_bytes_ = static_cast<int64_t>(response->Length());
  }
  if (measured) {
    ++tally_.requests;
    window_end_ns_ = std::max(window_end_ns_, now);
    if (checked) ++tally_.checked;
    if (status.ok()) {
      tally_.AddOk(now - scheduled_ns, now, wrong);
    } else {
      tally_.Add(absl::StatusCodeToString(
                     static_cast<absl::StatusCode>(status.error_code())),
                 status.error_message());
    }
  }
  cv_.notify_all();
}

bool Level::IssueClosed(std::function<void()> done) {
  const int64_t scheduled_ns = NowNs();
  int64_t seq = 0;
  bool measured = false;
  if (!Admit(scheduled_ns, &seq, &measured)) return false;
  StartUnaryCall(Stub(seq), workload_.method, workload_.request, NewContext(),
                 [this, seq, measured, scheduled_ns, done = std::move(done)](
                     const grpc::Status& status, grpc::ByteBuffer* response) {
                   Complete(seq, measured, scheduled_ns, status, response);
                   done();
                 });
  return true;
}

// One Stream call carrying many requests, one response per request in
// order. Closed loop: one request outstanding, the next sent when its
// response arrives. Open loop: requests queue behind the write in progress.
class StreamWorker {
 public:
  StreamWorker(Level* level, int index, bool closed)
      : level_(level), closed_(closed) {
    std::shared_ptr<grpc::ClientContext> context = level->NewContext();
    // A stream lives for the whole level: its deadline is the run's.
    context->set_deadline(absl::ToChronoTime(
        absl::Now() + level->options_.timeout + level->options_.duration +
        level->options_.warmup.time +
        absl::Seconds(level->options_.requests > 0 ? 3600 : 0)));
    call_ = std::make_unique<StreamCall>(
        *level->stubs_[index % level->stubs_.size()], level->workload_.method,
        std::move(context),
        StreamCall::Callbacks{
            [this](const grpc::ByteBuffer& response) { OnResponse(response); },
            [this](const grpc::Status& status) { OnDone(status); }});
    call_->Start();
    if (closed_) SendNextClosed();
  }

  // Open loop: queues a request admitted by the scheduler.
  void Enqueue(int64_t seq, bool measured, int64_t scheduled_ns) {
    bool queued = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queued = !done_;
      if (queued) pending_.push_back({seq, measured, scheduled_ns});
    }
    if (!queued) {
      level_->Complete(
          seq, measured, scheduled_ns,
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream has ended"),
          nullptr);
      return;
    }
    // Should the stream end first, OnDone fails what is pending, this too.
    call_->Write(&level_->workload_.request);
  }
  // No more requests: half-closes once all are written.
  void Close() { call_->Close(); }

 private:
  struct Pending {
    int64_t seq;
    bool measured;
    int64_t scheduled_ns;
  };

  void OnResponse(const grpc::ByteBuffer& response) {
    Pending p;
    {
      std::lock_guard<std::mutex> lock(mu_);
      p = pending_.front();
      pending_.pop_front();
    }
    level_->Complete(p.seq, p.measured, p.scheduled_ns, grpc::Status::OK,
                     &response);
    if (closed_) SendNextClosed();
  }

  void OnDone(const grpc::Status& status) {
    std::deque<Pending> failed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      failed.swap(pending_);
    }
    const grpc::Status why =
        status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL,
                                   "the stream ended before this response")
                    : status;
    for (const Pending& p : failed) {
      level_->Complete(p.seq, p.measured, p.scheduled_ns, why, nullptr);
    }
    Level* level = level_;
    std::lock_guard<std::mutex> lock(level->mu_);
    --level->streams_alive_;
    level->cv_.notify_all();
    // Deleted by the level once every stream is done (OnDone is last).
  }

  void SendNextClosed() {
    int64_t seq = 0;
    bool measured = false;
    const int64_t now = NowNs();
    if (!level_->Admit(now, &seq, &measured)) {
      Close();
      return;
    }
    Enqueue(seq, measured, now);
  }

  Level* level_;
  const bool closed_;
  std::unique_ptr<StreamCall> call_;
  std::mutex mu_;
  std::deque<Pending> pending_;  // written or queued, not yet answered
  bool done_ = false;
};

void Level::IssueOpen(int64_t seq, bool measured, int64_t scheduled_ns) {
  StartUnaryCall(Stub(seq), workload_.method, workload_.request, NewContext(),
                 [this, seq, measured, scheduled_ns](
                     const grpc::Status& status, grpc::ByteBuffer* response) {
                   Complete(seq, measured, scheduled_ns, status, response);
                 });
}

// The open loop: sends at the scheduled times whatever the server does, so
// that a stall shows up as latency (no coordinated omission).
void Level::Schedule(std::vector<StreamWorker*>* workers) {
  ArrivalSchedule schedule(rate_, options_.arrival, options_.seed);
  const int64_t cap =
      options_.max_outstanding > 0 ? options_.max_outstanding : 10000;
  while (true) {
    const int64_t at = start_ns_ + schedule.NextNs();
    const int64_t wait = at - NowNs();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
    bool delayed = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (in_flight_ >= cap) {
        delayed = true;
        cv_.wait(lock, [&] { return in_flight_ < cap; });
      }
    }
    int64_t seq = 0;
    bool measured = false;
    if (!Admit(at, &seq, &measured)) break;
    if (delayed && measured) {
      std::lock_guard<std::mutex> lock(mu_);
      ++tally_.delayed_sends;
    }
    if (workers->empty()) {
      IssueOpen(seq, measured, at);
    } else {
      (*workers)[static_cast<size_t>(seq) % workers->size()]->Enqueue(
          seq, measured, at);
    }
  }
  for (StreamWorker* worker : *workers) worker->Close();
  FinishIssuer();
}

std::string Level::ProgressLine() {
  std::lock_guard<std::mutex> lock(mu_);
  const double elapsed = (NowNs() - start_ns_) / 1e9;
  const double window = window_begin_ns_.has_value()
                            ? std::max(0.0, (NowNs() - *window_begin_ns_) / 1e9)
                            : 0.0;
  int64_t errors = tally_.requests;
  if (auto it = tally_.kinds.find("OK"); it != tally_.kinds.end()) {
    errors -= it->second.count;
  }
  return absl::StrFormat(
      "%s %6.1fs %s %d calls, %.0f/s, %d errors, %d in flight",
      options_.open_loop ? absl::StrFormat("rps=%g", rate_)
                         : absl::StrCat("c=", concurrency_),
      elapsed, window_begin_ns_.has_value() ? "measuring" : "warming up",
      tally_.requests, window > 0 ? tally_.requests / window : 0.0, errors,
      in_flight_);
}

void Level::PrintProgress() {
  std::fprintf(stderr, "\r\033[K%s", ProgressLine().c_str());
  std::fflush(stderr);
}

// Streams (closed or open loop) and the open loop's scheduler: started
// here, waited for until every issuer, call and stream is done.
void Level::RunStreamsOrSchedule() {
  const bool stream = workload_.rpc == Rpc::kStream;
  std::vector<StreamWorker*> workers;
  std::thread scheduler;
  if (!options_.open_loop) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      streams_alive_ = concurrency_;
    }
    for (int slot = 0; slot < concurrency_; ++slot) {
      workers.push_back(new StreamWorker(this, slot, /*closed=*/true));
    }
  } else {
    {
      std::lock_guard<std::mutex> lock(mu_);
      issuers_ = 1;
      if (stream) streams_alive_ = static_cast<int>(stubs_.size());
    }
    if (stream) {
      for (size_t i = 0; i < stubs_.size(); ++i) {
        workers.push_back(
            new StreamWorker(this, static_cast<int>(i), /*closed=*/false));
      }
    }
    scheduler = std::thread([this, &workers] { Schedule(&workers); });
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto finished = [this] {
      return issuers_ == 0 && in_flight_ == 0 && streams_alive_ == 0;
    };
    while (!cv_.wait_for(lock, std::chrono::seconds(1), finished)) {
      if (options_.progress) {
        lock.unlock();
        PrintProgress();
        lock.lock();
      }
    }
  }
  if (scheduler.joinable()) scheduler.join();
  for (StreamWorker* worker : workers) delete worker;
}

bv1::Row Level::Run() {
  start_ns_ = NowNs();
  if (!options_.open_loop && workload_.rpc != Rpc::kStream) {
    ClosedLoop loop;
    loop.Run(
        concurrency_,
        [this](int, std::function<void()> done) {
          return IssueClosed(std::move(done));
        },
        options_.progress ? absl::Seconds(1) : absl::ZeroDuration(),
        [this] { PrintProgress(); });
  } else {
    RunStreamsOrSchedule();
  }
  if (options_.progress) std::fprintf(stderr, "\r\033[K");

  ProcessCounters server_end, client_end;
  if (options_.server_pid > 0) {
    server_end = ReadProcessCounters(options_.server_pid);
  }
  client_end = ReadProcessCounters(0);
  std::lock_guard<std::mutex> lock(mu_);
  if (window_begin_ns_.has_value()) {
    tally_.window = absl::Nanoseconds(
        std::max<int64_t>(0, window_end_ns_ - *window_begin_ns_));
    tally_.window_begin_ns = *window_begin_ns_;
  }
  bv1::Row row = MakeRow(std::move(tally_), workload_.elements,
                         workload_.request_bytes, response_bytes_);
  AddProcessFigures(server_begin_, server_end, client_begin_, client_end, &row);
  return row;
}

}  // namespace

std::vector<bv1::Row> RunLoad(
    const LoadOptions& options, const Workload& workload,
    const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  std::vector<bv1::Row> rows;
  if (options.open_loop) {
    const int cap =
        options.max_outstanding > 0 ? options.max_outstanding : 10000;
    for (double rate : options.rps) {
      Level level(options, workload, channels, cap, rate);
      bv1::Row row = level.Run();
      row.set_concurrency(cap);
      row.set_target_rps(rate);
      rows.push_back(std::move(row));
    }
  } else {
    for (int concurrency : options.concurrency) {
      Level level(options, workload, channels, concurrency, 0);
      bv1::Row row = level.Run();
      row.set_concurrency(concurrency);
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

}  // namespace actsvc::client::bench
