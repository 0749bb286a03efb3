#include "server/calls.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/status.h"
#include "spdlog/spdlog.h"

namespace actsvc::server {
namespace {

using SteadyClock = std::chrono::steady_clock;

double MillisecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start)
      .count();
}

std::string_view ToStd(absl::string_view s) { return {s.data(), s.size()}; }

// gRPC's own limit is a little above --max_message_mb (server.cc), so that
// a request just over the flag's limit arrives here and is refused in words
// that name the flag, as SPEC §3 asks.
absl::Status CheckRequestBytes(const grpc::ByteBuffer& request, int64_t limit) {
  const int64_t bytes = static_cast<int64_t>(request.Length());
  if (bytes <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the request is ", bytes, " bytes, over the message size limit of ",
      limit,
      " bytes (--max_message_mb); split the input into smaller requests "
      "or raise --max_message_mb"));
}

// Any method no API registered.
class UnimplementedReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit UnimplementedReactor(const std::string& method) {
    Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        absl::StrCat("unknown method ", method)));
  }
  void OnDone() override { delete this; }
};

// What the unary and the stream reactors share: the method and its metrics
// row, admission, the size check of each request read, the compute context
// of each request, and the one place that records the call and finishes it.
//
// The constructor reads the first request, or ends the call when the server
// does not take it: an inline method only needs the server to be accepting
// calls; a compute method also counts against --max_concurrent_calls, from
// then until the reactor is deleted. (gRPC holds the read or the Finish
// until CreateReactor has returned the reactor.)
class MethodReactor : public grpc::ServerGenericBidiReactor {
 public:
  MethodReactor(const CallEnvironment* env,
                grpc::GenericCallbackServerContext* context,
                const Method* method)
      : env_(env),
        context_(context),
        method_(method),
        index_(env->methods->IndexOf(method)),
        start_(SteadyClock::now()) {
    absl::Status accepting;
    if (method_->kind == MethodKind::kUnaryInline) {
      accepting = env_->calls->CheckAccepting(method_->name);
    } else {
      scope_.emplace(env_->calls);
      accepting = env_->calls->CheckAdmission(method_->name, *scope_);
    }
    if (!accepting.ok()) {
      End(accepting);
      return;
    }
    StartRead(&request_);
  }

  // Ends the call when the client closed its side (or the call died), else
  // checks the request's size before the subclass serves it.
  void OnReadDone(bool ok) final {
    if (!ok) {
      End(StatusAtClose(context_->IsCancelled()));
      return;
    }
    if (absl::Status size =
            CheckRequestBytes(request_, env_->compute.max_message_bytes);
        !size.ok()) {
      request_.Clear();
      End(size);
      return;
    }
    OnRequest();
  }

  void OnDone() override { delete this; }

 protected:
  // The status of a call whose client closed its side before the next
  // request (`cancelled`: the call was cancelled).
  virtual absl::Status StatusAtClose(bool cancelled) const = 0;
  // Serves request_, read and within --max_message_mb.
  virtual void OnRequest() = 0;

  // The compute context of the request read, queued at `queued_at`.
  ComputeContext ContextFor(SteadyClock::time_point queued_at) const {
    ComputeContext context = env_->ContextFor(context_);
    context.queued_at = queued_at;
    // request_ is what gRPC received over the network for this call, and is
    // cleared once served: its bytes are the call's to overwrite (wire.cc,
    // "In place"). The server serves no in-process channel.
    context.request_writable = true;
    return context;
  }

  // The call's metrics and log line, with the elements of the requests
  // answered.
  void Record(const absl::Status& status) {
    env_->calls->Record(index_, method_->name, *context_, status,
                        MillisecondsSince(start_), elements_);
  }

  void End(const absl::Status& status) {
    Record(status);
    Finish(ToGrpcStatus(status));
  }

  const CallEnvironment* const env_;
  grpc::GenericCallbackServerContext* const context_;
  const Method* const method_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  int64_t elements_ = 0;  // of the requests answered

 private:
  const int index_;
  const SteadyClock::time_point start_;
  std::optional<CallTracker::Scope> scope_;  // compute methods only
};

// A unary method: one request message, then one response and the status
// (or the status alone). Compute methods run on the worker pool, but for
// small requests (--inline_compute_kb): those and inline methods run on the
// gRPC thread that read the request. Every RPC's work follows its request's
// size but a dense Jacobian's, whose response too large for the gRPC
// thread sends it to the pool before any work (NeedsComputeThread). (For a 4
// KiB request, the hop to the pool took a third of the call's server CPU, most
// of it the futex wake-ups of two threads: BENCHMARKS.md, "Small requests".)
class UnaryReactor final : public MethodReactor {
 public:
  using MethodReactor::MethodReactor;

 private:
  absl::Status StatusAtClose(bool cancelled) const override {
    return cancelled ? absl::CancelledError("the call was cancelled")
                     : absl::InvalidArgumentError(
                           "the client closed the call without a request "
                           "message");
  }

  void OnRequest() override {
    if (method_->kind == MethodKind::kUnaryInline) {
      Compute();
      return;
    }
    if (static_cast<int64_t>(request_.Length()) <= env_->inline_compute_bytes) {
      if (env_->before_compute_for_testing) env_->before_compute_for_testing();
      Compute(SteadyClock::now(), /*on_grpc_thread=*/true);
      return;
    }
    SubmitCompute();
  }

  void SubmitCompute() {
    env_->workers->Submit([this, queued_at = SteadyClock::now()] {
      if (env_->before_compute_for_testing) env_->before_compute_for_testing();
      Compute(queued_at);
    });
  }

  void Compute(SteadyClock::time_point queued_at = SteadyClock::now(),
               bool on_grpc_thread = false) {
    int64_t elements = 0;
    ComputeContext context = ContextFor(queued_at);
    // Within the request's budget, the response's too (dense Jacobians).
    if (on_grpc_thread)
      context.inline_response_bytes = env_->inline_compute_bytes;
    const absl::Status status =
        method_->unary(request_, context, &elements, &response_);
    if (on_grpc_thread && IsNeedsComputeThread(status)) {
      // Nothing was computed or written: the whole call again, there.
      response_.Clear();
      SubmitCompute();
      return;
    }
    request_.Clear();  // the input is no longer needed: free it early
    if (!status.ok()) {
      End(status);
      return;
    }
    elements_ = elements;
    Record(status);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }
};

// A stream: read a request, compute it on the pool, write its response, read
// the next. One step at a time keeps the responses in request order and
// leaves at most one operation outstanding, so Finish is called exactly
// once: by whichever step fails or by the read that ends the stream.
class StreamReactor final : public MethodReactor {
 public:
  using MethodReactor::MethodReactor;

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End(absl::CancelledError("the stream was cancelled while writing"));
      return;
    }
    ++message_;
    response_.Clear();
    StartRead(&request_);
  }

 private:
  // A closed client side means all requests were answered.
  absl::Status StatusAtClose(bool cancelled) const override {
    return cancelled ? absl::CancelledError("the stream was cancelled")
                     : absl::OkStatus();
  }

  void OnRequest() override {
    env_->workers->Submit(
        [this, queued_at = SteadyClock::now()] { Compute(queued_at); });
  }

  void Compute(SteadyClock::time_point queued_at) {
    if (env_->before_compute_for_testing) env_->before_compute_for_testing();
    const SteadyClock::time_point start = SteadyClock::now();
    int64_t elements = 0;
    const absl::Status status = method_->stream(
        request_, message_, ContextFor(queued_at), &elements, &response_);
    request_.Clear();
    if (!status.ok()) {
      End(status);
      return;
    }
    elements_ += elements;
    if (spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("{} from {}: request #{} OK in {:.3f} ms",
                    ToStd(method_->name), context_->peer(), message_,
                    MillisecondsSince(start));
    }
    StartWrite(&response_);
  }

  int64_t message_ = 0;  // index of the request being served, from 0
};

}  // namespace

CallTracker::Scope::Scope(CallTracker* tracker) : tracker_(tracker) {
  std::lock_guard<std::mutex> lock(tracker_->mu_);
  in_flight_at_start_ = ++tracker_->in_flight_;
}

CallTracker::Scope::~Scope() {
  std::lock_guard<std::mutex> lock(tracker_->mu_);
  if (--tracker_->in_flight_ == 0) tracker_->idle_.notify_all();
}

absl::Status CallTracker::CheckAccepting(absl::string_view method) const {
  if (!draining_.load(std::memory_order_acquire)) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("the server is shutting down; ", method,
                   " was not started (retry on another server)"));
}

absl::Status CallTracker::CheckAdmission(absl::string_view method,
                                         const Scope& scope) const {
  if (absl::Status accepting = CheckAccepting(method); !accepting.ok()) {
    return accepting;
  }
  const int limit = max_concurrent_calls_;
  if (limit <= 0 || scope.in_flight_at_start() <= limit) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the server is at its limit of ", limit,
      " concurrent calls (--max_concurrent_calls); ", method,
      " was not started (retry later with backoff, or on another server)"));
}

void CallTracker::StartDraining() {
  draining_.store(true, std::memory_order_release);
}

bool CallTracker::WaitUntilIdle(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                        [this] { return in_flight_ == 0; });
}

int64_t CallTracker::CallsInFlight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

void CallTracker::Record(int method_index, absl::string_view name,
                         const grpc::ServerContextBase& context,
                         const absl::Status& status, double elapsed_ms,
                         int64_t elements) {
  metrics_->RecordCall(method_index, status.code(), elapsed_ms / 1000,
                       elements);
  if (status.ok()) {
    if (spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("{} from {}: OK in {:.3f} ms", ToStd(name), context.peer(),
                    elapsed_ms);
    }
  } else {
    spdlog::warn("{} from {} failed in {:.3f} ms: {}: {}", ToStd(name),
                 context.peer(), elapsed_ms,
                 absl::StatusCodeToString(status.code()),
                 ToStd(status.message()));
  }
}

ComputeContext CallEnvironment::ContextFor(
    grpc::ServerContextBase* context) const {
  ComputeContext call = compute;
  call.deadline = context->deadline();
  call.is_cancelled = [context] { return context->IsCancelled(); };
  return call;
}

grpc::ServerUnaryReactor* GenericService::ServeRawUnary(
    absl::string_view path, grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  const SteadyClock::time_point start = SteadyClock::now();
  const Method* method = env_.methods->Find(path);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (method == nullptr || method->kind != MethodKind::kUnaryInline) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::INTERNAL,
                     absl::StrCat(path, " is not an inline method")));
    return reactor;
  }
  absl::Status status = env_.calls->CheckAccepting(method->name);
  if (status.ok()) {
    status = CheckRequestBytes(*request, env_.compute.max_message_bytes);
  }
  int64_t elements = 0;
  if (status.ok()) {
    status =
        method->unary(*request, env_.ContextFor(context), &elements, response);
  }
  env_.calls->Record(env_.methods->IndexOf(method), method->name, *context,
                     status, MillisecondsSince(start),
                     status.ok() ? elements : 0);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerGenericBidiReactor* GenericService::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  const Method* method = env_.methods->Find(context->method());
  if (method == nullptr) {
    spdlog::warn("{} from {}: UNIMPLEMENTED", context->method(),
                 context->peer());
    return new UnimplementedReactor(context->method());
  }
  if (method->kind == MethodKind::kStream) {
    return new StreamReactor(&env_, context, method);
  }
  return new UnaryReactor(&env_, context, method);
}

}  // namespace actsvc::server
