// The load generator of `actsvc bench`: the closed- and open-loop drivers,
// unary and stream, that share one Runner's tally.
//
// Over 800 lines on purpose for now: the drivers share the Runner's state,
// and bench/soak.cc has its own copy of them; both move into one load
// library under client/ (issue 21), which is where this file splits.
#include "client/bench_load.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/activation.h"
#include "core/half.h"
#include "core/softmax.h"
#include "grpcpp/generic/generic_stub.h"

namespace actsvc::client::bench {
namespace {

namespace v1 = ::actsvc::v1;
namespace bv1 = ::actsvc::bench::v1;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Values of `dtype` (exactly representable) in [lo, hi).
std::vector<double> RandomValues(std::mt19937_64& rng, int64_t n, double lo,
                                 double hi, v1::DataType dtype) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> values(n);
  for (double& v : values) {
    v = RoundToDtype(dist(rng), dtype);
  }
  return values;
}

// Values (already of T's dtype) as T: the half types are not arithmetic.
template <typename T>
std::vector<T> AsType(const std::vector<double>& v) {
  std::vector<T> out;
  out.reserve(v.size());
  for (double d : v) {
    if constexpr (kIsHalf<T>) {
      out.push_back(HalfFromDouble<T>(d));
    } else {
      out.push_back(static_cast<T>(d));
    }
  }
  return out;
}

// The client's own answer, computed in T like the server.
template <typename T>
absl::Status ComputeExpected(const WorkloadSpec& ws,
                             const std::vector<double>& x64,
                             const std::vector<double>& g64,
                             const std::vector<int64_t>& labels, Workload* w) {
  const std::vector<T> x = AsType<T>(x64);
  const std::vector<T> g = AsType<T>(g64);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<T> y;
  const int rank = static_cast<int>(ws.shape.size());
  const Function f = static_cast<Function>(static_cast<int>(
      ws.rpc == Rpc::kXent ? v1::SOFTMAX : ws.spec.function()));
  const double alpha = ws.spec.has_alpha() ? ws.spec.alpha() : DefaultAlpha(f);
  w->expected_shape = ws.shape;

  AxisView view;
  if (!IsElementwise(f) || ws.rpc == Rpc::kXent) {
    if (rank == 0) {
      return absl::InvalidArgumentError(
          "softmax and xent need a shape of rank >= 1");
    }
    std::optional<int> axis = NormalizeAxis(
        ws.rpc == Rpc::kXent ? -1 : (ws.spec.has_axis() ? ws.spec.axis() : -1),
        rank);
    if (!axis.has_value()) {
      return absl::InvalidArgumentError("--axis is out of range for --shape");
    }
    view = MakeAxisView(ws.shape, *axis);
    if (ws.rpc == Rpc::kJacobian) {
      w->expected_shape.erase(w->expected_shape.begin() + *axis);
      w->expected_shape.push_back(view.size);
      w->expected_shape.push_back(view.size);
    }
  }
  const bool elementwise = IsElementwise(f) && ws.rpc != Rpc::kXent;

  switch (ws.rpc) {
    case Rpc::kEvaluate:
    case Rpc::kStream:
      y.resize(n);
      if (elementwise) {
        Evaluate<T>(f, alpha, x, absl::MakeSpan(y));
      } else {
        SoftmaxForward<T>(f, view, x, absl::MakeSpan(y));
      }
      break;
    case Rpc::kDerivative:
      if (!elementwise) {
        return absl::InvalidArgumentError(
            "the derivative of softmax/log_softmax is a matrix: use "
            "--rpc=vjp or --rpc=jacobian");
      }
      if (ws.order != 1 && ws.order != 2) {
        return absl::InvalidArgumentError("--order must be 1 or 2");
      }
      y.resize(n);
      Derivative<T>(f, alpha, ws.order, x, absl::MakeSpan(y));
      break;
    case Rpc::kVjp:
      y.resize(n);
      if (elementwise) {
        Vjp<T>(f, alpha, x, g, absl::MakeSpan(y));
      } else {
        SoftmaxVjp<T>(f, view, x, g, absl::MakeSpan(y));
      }
      break;
    case Rpc::kJacobian:
      if (elementwise) {
        std::vector<T> diag(n);
        Derivative<T>(f, alpha, 1, x, absl::MakeSpan(diag));
        if (ws.dense) {
          if (rank == 0) {
            return absl::InvalidArgumentError(
                "a dense Jacobian needs a shape of rank >= 1");
          }
          const int64_t c = ws.shape.back();
          y.resize(n * c);
          DiagonalToDense<T>(diag, c, absl::MakeSpan(y));
          w->expected_shape.push_back(c);
        } else {
          y = std::move(diag);
        }
      } else {
        y.resize(view.rows() * view.size * view.size);
        SoftmaxJacobian<T>(f, view, x, absl::MakeSpan(y));
      }
      break;
    case Rpc::kXent: {
      const int64_t c = view.size;
      const int64_t rows = c == 0 ? 0 : n / c;
      std::vector<T> row_loss(rows);
      y.resize(n);
      CrossEntropyPartial partial = CrossEntropyRows<T>(
          c, x, labels, {}, CrossEntropyOptions(), absl::MakeSpan(row_loss),
          absl::MakeSpan(y), {}, 0, rows);
      T loss[1] = {};
      ReduceCrossEntropy<T>(Reduction::kMean, partial, absl::MakeSpan(y),
                            absl::MakeSpan(loss, 1));
      w->expected_loss = ToDouble(loss[0]);
      break;
    }
  }
  w->expected.clear();
  for (const T& v : y) w->expected.push_back(ToDouble(v));
  return absl::OkStatus();
}

bool Close(double got, double want, v1::DataType dtype) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  // Server and client may run different cores (scalar, vectorized): allow
  // a few hundred ulps, far below any real mistake (the half types: 2 ulps
  // of their own).
  double atol = 1e-5, rtol = 1e-4;
  if (dtype == v1::FLOAT64) atol = 1e-12, rtol = 1e-10;
  if (dtype == v1::FLOAT16) atol = 1e-7, rtol = 0x1p-9;
  if (dtype == v1::BFLOAT16) atol = 1e-7, rtol = 0x1p-6;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

std::string CompareTensor(const v1::Tensor& tensor, const Workload& w) {
  if (tensor.dtype() != w.dtype) {
    return absl::StrCat("dtype ", v1::DataType_Name(tensor.dtype()),
                        ", expected ", v1::DataType_Name(w.dtype));
  }
  if (!std::equal(tensor.shape().begin(), tensor.shape().end(),
                  w.expected_shape.begin(), w.expected_shape.end())) {
    return absl::StrCat("shape [", absl::StrJoin(tensor.shape(), ","),
                        "], expected [", absl::StrJoin(w.expected_shape, ","),
                        "]");
  }
  absl::StatusOr<std::vector<double>> values = TensorValues(tensor);
  if (!values.ok()) return std::string(values.status().message());
  if (values->size() != w.expected.size()) {
    return absl::StrCat(values->size(), " values, expected ",
                        w.expected.size());
  }
  int64_t wrong = 0;
  int64_t first = -1;
  for (size_t i = 0; i < values->size(); ++i) {
    if (!Close((*values)[i], w.expected[i], w.dtype)) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++wrong;
    }
  }
  if (wrong == 0) return "";
  return absl::StrFormat(
      "%d of %d values differ; first at [%d]: got %.9g, "
      "expected %.9g",
      wrong, values->size(), first, (*values)[first], w.expected[first]);
}

}  // namespace

grpc::ByteBuffer Serialize(const google::protobuf::Message& message) {
  // Once per run: one copy into a slice that every call then shares.
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

bool Parse(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return message->ParseFromString(bytes);
}

absl::StatusOr<Rpc> RpcFromName(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (Rpc rpc : {Rpc::kEvaluate, Rpc::kDerivative, Rpc::kVjp, Rpc::kJacobian,
                  Rpc::kXent, Rpc::kStream}) {
    if (RpcName(rpc) == lower) return rpc;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--rpc=", name,
                   " is not one of evaluate, derivative, vjp, jacobian, xent, "
                   "stream"));
}

absl::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kEvaluate:
      return "evaluate";
    case Rpc::kDerivative:
      return "derivative";
    case Rpc::kVjp:
      return "vjp";
    case Rpc::kJacobian:
      return "jacobian";
    case Rpc::kXent:
      return "xent";
    case Rpc::kStream:
      return "stream";
  }
  return "?";
}

absl::StatusOr<Workload> BuildWorkload(const WorkloadSpec& ws) {
  absl::StatusOr<int64_t> count = ElementCount(ws.shape);
  if (!count.ok()) return count.status();
  const int64_t elem_size = static_cast<int64_t>(DtypeSize(ws.dtype));
  // Generous: grad or dense outputs may be a multiple of this.
  if (*count > (int64_t{1} << 31) / elem_size / 2) {
    return absl::InvalidArgumentError(
        "--shape is too large for one message (2 GiB)");
  }
  Workload w;
  w.rpc = ws.rpc;
  w.dtype = ws.dtype;
  w.elements = *count;
  std::mt19937_64 rng(ws.seed);
  const std::vector<double> x = RandomValues(rng, *count, -8, 8, ws.dtype);
  std::vector<double> g;
  if (ws.rpc == Rpc::kVjp) g = RandomValues(rng, *count, -1, 1, ws.dtype);
  std::vector<int64_t> labels;
  if (ws.rpc == Rpc::kXent && !ws.shape.empty() && ws.shape.back() > 0) {
    const int64_t c = ws.shape.back();
    std::uniform_int_distribution<int64_t> dist(0, c - 1);
    labels.resize(*count / c);
    for (int64_t& l : labels) l = dist(rng);
  }

  absl::Status computed;
  switch (ws.dtype) {
    case v1::FLOAT64:
      computed = ComputeExpected<double>(ws, x, g, labels, &w);
      break;
    case v1::FLOAT16:
      computed = ComputeExpected<Float16>(ws, x, g, labels, &w);
      break;
    case v1::BFLOAT16:
      computed = ComputeExpected<BFloat16>(ws, x, g, labels, &w);
      break;
    default:
      computed = ComputeExpected<float>(ws, x, g, labels, &w);
      break;
  }
  if (!computed.ok()) return computed;

  const v1::Tensor input = MakeTensor(ws.shape, ws.dtype, x, ws.encoding);
  const std::string service = "/actsvc.v1.ActivationService/";
  switch (ws.rpc) {
    case Rpc::kEvaluate:
    case Rpc::kStream: {
      v1::EvaluateRequest request;
      *request.mutable_spec() = ws.spec;
      *request.mutable_input() = input;
      if (ws.rpc == Rpc::kStream) {
        v1::StreamRequest stream_request;
        *stream_request.mutable_evaluate() = std::move(request);
        w.method = service + "Stream";
        w.request = Serialize(stream_request);
      } else {
        w.method = service + "Evaluate";
        w.request = Serialize(request);
      }
      break;
    }
    case Rpc::kDerivative:
    case Rpc::kVjp: {
      v1::DerivativeRequest request;
      *request.mutable_spec() = ws.spec;
      *request.mutable_input() = input;
      request.set_order(ws.rpc == Rpc::kVjp ? 1 : ws.order);
      if (ws.rpc == Rpc::kVjp) {
        *request.mutable_upstream_grad() =
            MakeTensor(ws.shape, ws.dtype, g, ws.encoding);
      }
      w.method = service + "Derivative";
      w.request = Serialize(request);
      break;
    }
    case Rpc::kJacobian: {
      v1::JacobianRequest request;
      *request.mutable_spec() = ws.spec;
      *request.mutable_input() = input;
      request.set_dense(ws.dense);
      w.method = service + "Jacobian";
      w.request = Serialize(request);
      break;
    }
    case Rpc::kXent: {
      v1::SoftmaxCrossEntropyRequest request;
      *request.mutable_logits() = input;
      request.mutable_class_indices()->Add(labels.begin(), labels.end());
      w.method = service + "SoftmaxCrossEntropy";
      w.request = Serialize(request);
      break;
    }
  }
  w.request_bytes = static_cast<int64_t>(w.request.Length());
  return w;
}

namespace {

std::string CheckOwnResponse(const Workload& w,
                             const grpc::ByteBuffer& response) {
  switch (w.rpc) {
    case Rpc::kEvaluate: {
      v1::EvaluateResponse r;
      if (!Parse(response, &r)) return "unparsable EvaluateResponse";
      return CompareTensor(r.output(), w);
    }
    case Rpc::kStream: {
      v1::StreamResponse r;
      if (!Parse(response, &r) || !r.has_evaluate()) {
        return "not a StreamResponse with an evaluate response";
      }
      return CompareTensor(r.evaluate().output(), w);
    }
    case Rpc::kDerivative:
    case Rpc::kVjp: {
      v1::DerivativeResponse r;
      if (!Parse(response, &r)) return "unparsable DerivativeResponse";
      return CompareTensor(r.output(), w);
    }
    case Rpc::kJacobian: {
      v1::JacobianResponse r;
      if (!Parse(response, &r)) return "unparsable JacobianResponse";
      return CompareTensor(r.jacobian(), w);
    }
    case Rpc::kXent: {
      v1::SoftmaxCrossEntropyResponse r;
      if (!Parse(response, &r)) return "unparsable SoftmaxCrossEntropyResponse";
      absl::StatusOr<std::vector<double>> loss = TensorValues(r.loss());
      if (!loss.ok() || loss->size() != 1) return "loss is not one value";
      if (!Close((*loss)[0], w.expected_loss, w.dtype)) {
        return absl::StrFormat("loss %.9g, expected %.9g", (*loss)[0],
                               w.expected_loss);
      }
      std::string grad = CompareTensor(r.grad_logits(), w);
      return grad.empty() ? "" : absl::StrCat("grad_logits: ", grad);
    }
  }
  return "unknown rpc";
}

}  // namespace

std::string CheckResponse(const Workload& w, const grpc::ByteBuffer& response) {
  if (w.echo) {
    grpc::Slice got;
    grpc::Slice sent;
    if (!response.DumpToSingleSlice(&got).ok() ||
        !w.request.DumpToSingleSlice(&sent).ok() ||
        absl::string_view(reinterpret_cast<const char*>(got.begin()),
                          got.size()) !=
            absl::string_view(reinterpret_cast<const char*>(sent.begin()),
                              sent.size())) {
      return absl::StrCat("the echo method answered ", response.Length(),
                          " bytes that are not the request's ",
                          w.request.Length());
    }
    return "";
  }
  if (!w.to_own_response) return CheckOwnResponse(w, response);
  grpc::ByteBuffer own;
  const std::string wrong = w.to_own_response(response, &own);
  return wrong.empty() ? CheckOwnResponse(w, own) : wrong;
}

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

  void IssueClosed(int slot);
  void IssueOpen(int64_t seq, bool measured, int64_t scheduled_ns);
  void Schedule(std::vector<StreamWorker*>* workers);
  std::string ProgressLine();
  grpc::GenericStub& Stub(int64_t seq) {
    return *stubs_[static_cast<size_t>(seq) % stubs_.size()];
  }
  std::unique_ptr<grpc::ClientContext> NewContext() const {
    auto context = std::make_unique<grpc::ClientContext>();
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
  int issuers_ = 0;  // closed-loop slots (or the scheduler) still sending
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
      tally_.ok_latencies_ns.push_back(now - scheduled_ns);
      tally_.ok_completed_ns.push_back(now);
      if (!wrong.empty()) {
        ++tally_.wrong_answers;
        tally_.Add("WRONG_ANSWER", wrong);
      } else {
        tally_.Add("OK", "");
      }
    } else {
      tally_.Add(absl::StatusCodeToString(
                     static_cast<absl::StatusCode>(status.error_code())),
                 status.error_message());
    }
  }
  cv_.notify_all();
}

struct UnaryCall {
  std::unique_ptr<grpc::ClientContext> context;
  grpc::ByteBuffer response;
  int64_t seq = 0;
  bool measured = false;
  int64_t scheduled_ns = 0;
};

void Level::IssueClosed(int slot) {
  auto* call = new UnaryCall;
  call->scheduled_ns = NowNs();
  if (!Admit(call->scheduled_ns, &call->seq, &call->measured)) {
    delete call;
    FinishIssuer();
    return;
  }
  call->context = NewContext();
  Stub(call->seq).UnaryCall(
      call->context.get(), workload_.method, grpc::StubOptions(),
      &workload_.request, &call->response,
      [this, call, slot](grpc::Status status) {
        Complete(call->seq, call->measured, call->scheduled_ns, status,
                 &call->response);
        delete call;
        IssueClosed(slot);
      });
}

// One Stream call carrying many requests, one response per request in
// order. Closed loop: one request outstanding, the next sent when its
// response arrives. Open loop: requests queue behind the write in progress.
class StreamWorker
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamWorker(Level* level, int index, bool closed)
      : level_(level), closed_(closed) {
    context_ = level->NewContext();
    // A stream lives for the whole level: its deadline is the run's.
    context_->set_deadline(absl::ToChronoTime(
        absl::Now() + level->options_.timeout + level->options_.duration +
        level->options_.warmup.time +
        absl::Seconds(level->options_.requests > 0 ? 3600 : 0)));
    level->stubs_[index % level->stubs_.size()]->PrepareBidiStreamingCall(
        context_.get(), level->workload_.method, grpc::StubOptions(), this);
    StartRead(&response_);
    StartCall();
    if (closed_) SendNextClosed();
  }

  // Open loop: queues a request admitted by the scheduler.
  void Enqueue(int64_t seq, bool measured, int64_t scheduled_ns) {
    Action action = Action::kNone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!done_) {
        pending_.push_back({seq, measured, scheduled_ns});
        ++unwritten_;
        action = NextActionLocked();
      }
    }
    if (action == Action::kNone && IsDone()) {
      level_->Complete(
          seq, measured, scheduled_ns,
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream has ended"),
          nullptr);
      return;
    }
    Act(action);
  }
  // No more requests: half-closes once all are written.
  void Close() {
    Action action = Action::kNone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
      action = NextActionLocked();
    }
    Act(action);
  }

  void OnWriteDone(bool ok) override {
    Action action = Action::kNone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (ok) action = NextActionLocked();
    }
    Act(action);
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    Pending p;
    {
      std::lock_guard<std::mutex> lock(mu_);
      p = pending_.front();
      pending_.pop_front();
    }
    level_->Complete(p.seq, p.measured, p.scheduled_ns, grpc::Status::OK,
                     &response_);
    StartRead(&response_);
    if (closed_) SendNextClosed();
  }
  void OnDone(const grpc::Status& status) override {
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

 private:
  struct Pending {
    int64_t seq;
    bool measured;
    int64_t scheduled_ns;
  };

  enum class Action { kNone, kWrite, kWritesDone };

  bool IsDone() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
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

  // Decided under the lock, done outside it: a reaction may run inline.
  Action NextActionLocked() {
    if (writing_ || done_) return Action::kNone;
    if (unwritten_ > 0) {
      --unwritten_;
      writing_ = true;
      return Action::kWrite;
    }
    if (closing_ && !half_closed_) {
      half_closed_ = true;
      return Action::kWritesDone;
    }
    return Action::kNone;
  }
  void Act(Action action) {
    if (action == Action::kWrite) StartWrite(&level_->workload_.request);
    if (action == Action::kWritesDone) StartWritesDone();
  }

  Level* level_;
  const bool closed_;
  std::unique_ptr<grpc::ClientContext> context_;
  grpc::ByteBuffer response_;
  std::mutex mu_;
  std::deque<Pending> pending_;  // written or queued, not yet answered
  int64_t unwritten_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool half_closed_ = false;
  bool done_ = false;
};

void Level::IssueOpen(int64_t seq, bool measured, int64_t scheduled_ns) {
  auto* call = new UnaryCall;
  call->seq = seq;
  call->measured = measured;
  call->scheduled_ns = scheduled_ns;
  call->context = NewContext();
  Stub(seq).UnaryCall(call->context.get(), workload_.method,
                      grpc::StubOptions(), &workload_.request, &call->response,
                      [this, call](grpc::Status status) {
                        Complete(call->seq, call->measured, call->scheduled_ns,
                                 status, &call->response);
                        delete call;
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

bv1::Row Level::Run() {
  start_ns_ = NowNs();
  const bool stream = workload_.rpc == Rpc::kStream;
  std::vector<StreamWorker*> workers;
  std::thread scheduler;
  if (!options_.open_loop) {
    if (stream) {
      std::lock_guard<std::mutex> lock(mu_);
      streams_alive_ = concurrency_;
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      issuers_ = concurrency_;
    }
    for (int slot = 0; slot < concurrency_; ++slot) {
      if (stream) {
        workers.push_back(new StreamWorker(this, slot, /*closed=*/true));
      } else {
        IssueClosed(slot);
      }
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
        std::fprintf(stderr, "\r\033[K%s", ProgressLine().c_str());
        std::fflush(stderr);
        lock.lock();
      }
    }
  }
  if (options_.progress) std::fprintf(stderr, "\r\033[K");
  if (scheduler.joinable()) scheduler.join();
  for (StreamWorker* worker : workers) delete worker;

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
