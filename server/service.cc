#include "server/service.h"

#include <chrono>
#include <limits>
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

// The product of the tensor's dims as the client sent them: 0 when one is
// negative or the product overflows int64 (no tensor can have that shape:
// validation refuses it later with INVALID_ARGUMENT, not as over a limit).
int64_t ElementsOf(const v1::Tensor& tensor) {
  int64_t elements = 1;
  for (const int64_t dim : tensor.shape()) {
    if (dim < 0) return 0;
  }
  for (const int64_t dim : tensor.shape()) {
    if (__builtin_mul_overflow(elements, dim, &elements)) return 0;
  }
  return elements;
}

// The elements of a request's main tensor, the measure of its work.
int64_t ElementsOf(const v1::EvaluateRequest& r) {
  return ElementsOf(r.input());
}
int64_t ElementsOf(const v1::DerivativeRequest& r) {
  return ElementsOf(r.input());
}
int64_t ElementsOf(const v1::JacobianRequest& r) {
  return ElementsOf(r.input());
}
int64_t ElementsOf(const v1::SoftmaxCrossEntropyRequest& r) {
  return ElementsOf(r.logits());
}
int64_t ElementsOf(const v1::AnalyzeRequest& r) {
  return ElementsOf(r.input());
}
int64_t ElementsOf(const v1::StreamRequest& r) {
  switch (r.request_case()) {
    case v1::StreamRequest::kEvaluate:
      return ElementsOf(r.evaluate());
    case v1::StreamRequest::kDerivative:
      return ElementsOf(r.derivative());
    case v1::StreamRequest::REQUEST_NOT_SET:
      break;
  }
  return 0;
}

// The messages of the raw methods (ListFunctions, Stream): see service.h.
template <typename Message>
bool ParseMessage(grpc::ByteBuffer bytes, Message* message) {
  // A copy of the buffer (its slices are shared): Deserialize consumes it.
  return grpc::SerializationTraits<Message>::Deserialize(&bytes, message).ok();
}

template <typename Message>
absl::Status SerializeMessage(const Message& message, grpc::ByteBuffer* out) {
  bool own_buffer = false;
  const grpc::Status serialized =
      grpc::SerializationTraits<Message>::Serialize(message, out, &own_buffer);
  if (serialized.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cannot serialize the response: ",
                                          serialized.error_message()));
}

// RESOURCE_EXHAUSTED when `elements` is over `max_elements` (> 0).
absl::Status CheckElements(int64_t elements, int64_t max_elements) {
  if (max_elements <= 0 || elements <= max_elements) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("the request's tensor has ", elements,
                   " elements, over the limit of ", max_elements,
                   " elements per request (--max_elements); split the input "
                   "into smaller requests"));
}

}  // namespace

// Serves one Stream call: read a request, compute it on the pool, write its
// response, read the next. One step at a time keeps the responses in request
// order and leaves at most one operation outstanding, so Finish is called
// exactly once: by whichever step fails or by the read that ends the stream.
class ActivationServiceImpl::StreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamReactor(ActivationServiceImpl* service,
                grpc::CallbackServerContext* context)
      : service_(service),
        context_(context),
        scope_(service),
        start_(SteadyClock::now()) {
    if (absl::Status accepting = service_->CheckAdmission("Stream", scope_);
        !accepting.ok()) {
      End(accepting);
      return;
    }
    StartRead(&request_bytes_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side (or the call died): all answered.
      End(context_->IsCancelled()
              ? absl::CancelledError("the stream was cancelled")
              : absl::OkStatus());
      return;
    }
    service_->pool_.Submit([this] { Compute(); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End(absl::CancelledError("the stream was cancelled while writing"));
      return;
    }
    ++index_;
    request_.Clear();
    response_bytes_.Clear();
    StartRead(&request_bytes_);
  }

  void OnDone() override { delete this; }

 private:
  void Compute() {
    if (service_->options_.before_compute_for_testing) {
      service_->options_.before_compute_for_testing();
    }
    const SteadyClock::time_point start = SteadyClock::now();
    response_.Clear();
    if (!ParseMessage(std::move(request_bytes_), &request_)) {
      End(absl::InvalidArgumentError(
          absl::StrCat("stream request #", index_,
                       " is not a valid actsvc.v1.StreamRequest message")));
      return;
    }
    const int64_t elements = ElementsOf(request_);
    absl::Status status =
        CheckElements(elements, service_->options_.max_elements);
    if (status.ok()) {
      status = HandleStreamRequest(
          request_, service_->MakeComputeContext(context_), &response_);
    }
    if (!status.ok()) {
      End(absl::Status(status.code(), absl::StrCat("stream request #", index_,
                                                   ": ", status.message())));
      return;
    }
    if (status = SerializeMessage(response_, &response_bytes_); !status.ok()) {
      End(status);
      return;
    }
    elements_ += elements;
    spdlog::debug("Stream from {}: request #{} OK in {:.3f} ms",
                  context_->peer(), index_, MillisecondsSince(start));
    StartWrite(&response_bytes_);
  }

  void End(const absl::Status& status) {
    service_->Record("Stream", context_, status, MillisecondsSince(start_),
                     elements_);
    Finish(ToGrpcStatus(status));
  }

  ActivationServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  const CallScope scope_;
  const SteadyClock::time_point start_;
  grpc::ByteBuffer request_bytes_;
  grpc::ByteBuffer response_bytes_;
  v1::StreamRequest request_;
  v1::StreamResponse response_;
  int64_t index_ = 0;     // of the request being served, from 0
  int64_t elements_ = 0;  // of the requests answered
};

ActivationServiceImpl::ActivationServiceImpl(ServiceOptions options)
    : options_(std::move(options)),
      chunk_pool_(options_.compute_threads - 1),
      pool_(options_.compute_threads) {}

ActivationServiceImpl::CallScope::CallScope(ActivationServiceImpl* service)
    : service_(service) {
  std::lock_guard<std::mutex> lock(service_->calls_mu_);
  in_flight_at_start_ = ++service_->calls_in_flight_;
}

ActivationServiceImpl::CallScope::~CallScope() {
  std::lock_guard<std::mutex> lock(service_->calls_mu_);
  if (--service_->calls_in_flight_ == 0) service_->calls_idle_.notify_all();
}

absl::Status ActivationServiceImpl::CheckAccepting(
    absl::string_view rpc) const {
  if (!draining_.load(std::memory_order_acquire)) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("the server is shutting down; ",
                                             rpc,
                                             " was not started (retry on "
                                             "another server)"));
}

absl::Status ActivationServiceImpl::CheckAdmission(
    absl::string_view rpc, const CallScope& scope) const {
  if (absl::Status accepting = CheckAccepting(rpc); !accepting.ok()) {
    return accepting;
  }
  const int limit = options_.max_concurrent_calls;
  if (limit <= 0 || scope.in_flight_at_start() <= limit) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the server is at its limit of ", limit,
      " concurrent calls (--max_concurrent_calls); ", rpc,
      " was not started (retry later with backoff, or on another server)"));
}

int64_t ActivationServiceImpl::CallsInFlight() const {
  std::lock_guard<std::mutex> lock(calls_mu_);
  return calls_in_flight_;
}

void ActivationServiceImpl::StartDraining() {
  draining_.store(true, std::memory_order_release);
}

bool ActivationServiceImpl::WaitUntilIdle(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(calls_mu_);
  return calls_idle_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                              [this] { return calls_in_flight_ == 0; });
}

ComputeContext ActivationServiceImpl::MakeComputeContext(
    grpc::CallbackServerContext* context) const {
  ComputeContext compute;
  compute.max_message_bytes = options_.max_message_bytes;
  compute.max_jacobian_bytes = options_.max_jacobian_bytes;
  compute.chunk_elements = options_.chunk_elements;
  compute.chunk_pool = &chunk_pool_;
  compute.parallel_threshold_elements = options_.parallel_threshold_elements;
  compute.deadline = context->deadline();
  compute.is_cancelled = [context] { return context->IsCancelled(); };
  return compute;
}

void ActivationServiceImpl::Record(absl::string_view rpc,
                                   grpc::CallbackServerContext* context,
                                   const absl::Status& status,
                                   double elapsed_ms, int64_t elements) {
  const int code = static_cast<int>(status.code());
  if (code >= 0 && code < static_cast<int>(finished_by_code_.size())) {
    finished_by_code_[code].fetch_add(1, std::memory_order_relaxed);
  }
  elements_processed_.fetch_add(elements, std::memory_order_relaxed);
  metrics_.RecordCall(rpc, status.code(), elapsed_ms / 1000, elements);
  if (status.ok()) {
    spdlog::debug("{} from {}: OK in {:.3f} ms", ToStd(rpc), context->peer(),
                  elapsed_ms);
  } else {
    spdlog::warn("{} from {} failed in {:.3f} ms: {}: {}", ToStd(rpc),
                 context->peer(), elapsed_ms,
                 absl::StatusCodeToString(status.code()),
                 ToStd(status.message()));
  }
}

int64_t ActivationServiceImpl::FinishedCalls(absl::StatusCode code) const {
  const int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(finished_by_code_.size())) {
    return 0;
  }
  return finished_by_code_[index].load(std::memory_order_relaxed);
}

namespace {

// Adapts a typed handler to serialized messages.
template <typename Request, typename Response,
          absl::Status (*kHandler)(const Request&, const ComputeContext&,
                                   Response*)>
absl::Status SerializedBody(const grpc::ByteBuffer& request_bytes,
                            const ComputeContext& context, int64_t max_elements,
                            int64_t* elements,
                            grpc::ByteBuffer* response_bytes) {
  // Parsing a large request takes a while: not for a call already dead.
  if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
  Request request;
  grpc::ByteBuffer bytes = request_bytes;  // Deserialize consumes its input
  if (!grpc::SerializationTraits<Request>::Deserialize(&bytes, &request).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a valid ",
                     Request::descriptor()->full_name(), " message"));
  }
  *elements = ElementsOf(request);
  if (absl::Status status = CheckElements(*elements, max_elements);
      !status.ok()) {
    return status;
  }
  Response response;
  if (absl::Status status = kHandler(request, context, &response);
      !status.ok()) {
    return status;
  }
  bool own_buffer = false;
  const grpc::Status serialized =
      grpc::SerializationTraits<Response>::Serialize(response, response_bytes,
                                                     &own_buffer);
  if (!serialized.ok()) {
    return absl::InternalError(absl::StrCat("cannot serialize the response: ",
                                            serialized.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace

const ActivationServiceImpl::UnaryMethod*
ActivationServiceImpl::FindUnaryMethod(absl::string_view path) {
  static const UnaryMethod kMethods[] = {
      {"/actsvc.v1.ActivationService/Evaluate", "Evaluate",
       &SerializedBody<v1::EvaluateRequest, v1::EvaluateResponse,
                       &HandleEvaluate>},
      {"/actsvc.v1.ActivationService/Derivative", "Derivative",
       &SerializedBody<v1::DerivativeRequest, v1::DerivativeResponse,
                       &HandleDerivative>},
      {"/actsvc.v1.ActivationService/Jacobian", "Jacobian",
       &SerializedBody<v1::JacobianRequest, v1::JacobianResponse,
                       &HandleJacobian>},
      {"/actsvc.v1.ActivationService/SoftmaxCrossEntropy",
       "SoftmaxCrossEntropy",
       &SerializedBody<v1::SoftmaxCrossEntropyRequest,
                       v1::SoftmaxCrossEntropyResponse,
                       &HandleSoftmaxCrossEntropy>},
      {"/actsvc.v1.ActivationService/Analyze", "Analyze",
       &SerializedBody<v1::AnalyzeRequest, v1::AnalyzeResponse,
                       &HandleAnalyze>},
  };
  for (const UnaryMethod& method : kMethods) {
    if (method.path == path) return &method;
  }
  return nullptr;
}

absl::Status ActivationServiceImpl::DispatchUnary(
    absl::string_view path, const grpc::ByteBuffer& request,
    const ComputeContext& context, int64_t max_elements, int64_t* elements,
    grpc::ByteBuffer* response) {
  const UnaryMethod* method = FindUnaryMethod(path);
  if (method == nullptr) {
    return absl::UnimplementedError(absl::StrCat("unknown method ", path));
  }
  return method->body(request, context, max_elements, elements, response);
}

// Serves one compute RPC as gRPC's unary calls behave: one request message,
// then one response and the status (or the status alone). The reactor exists
// from the call's headers on, so Shutdown waits for it while it uploads.
class ActivationServiceImpl::UnaryReactor final
    : public grpc::ServerGenericBidiReactor {
 public:
  UnaryReactor(ActivationServiceImpl* service,
               grpc::GenericCallbackServerContext* context,
               const UnaryMethod* method)
      : service_(service),
        context_(context),
        method_(method),
        scope_(service),
        start_(SteadyClock::now()) {
    if (absl::Status accepting = service_->CheckAdmission(method_->rpc, scope_);
        !accepting.ok()) {
      End(accepting);
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      End(context_->IsCancelled()
              ? absl::CancelledError("the call was cancelled")
              : absl::InvalidArgumentError(
                    "the client closed the call without a request message"));
      return;
    }
    service_->pool_.Submit([this] {
      if (service_->options_.before_compute_for_testing) {
        service_->options_.before_compute_for_testing();
      }
      int64_t elements = 0;
      const absl::Status status =
          method_->body(request_, service_->MakeComputeContext(context_),
                        service_->options_.max_elements, &elements, &response_);
      request_.Clear();  // the input is no longer needed: free it early
      if (!status.ok()) {
        End(status);
        return;
      }
      service_->Record(method_->rpc, context_, status,
                       MillisecondsSince(start_), elements);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    });
  }

  void OnDone() override { delete this; }

 private:
  void End(const absl::Status& status) {
    service_->Record(method_->rpc, context_, status, MillisecondsSince(start_));
    Finish(ToGrpcStatus(status));
  }

  ActivationServiceImpl* const service_;
  grpc::GenericCallbackServerContext* const context_;
  const UnaryMethod* const method_;
  const CallScope scope_;
  const SteadyClock::time_point start_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

grpc::ServerGenericBidiReactor*
ActivationServiceImpl::UnaryMethods::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  const UnaryMethod* method = FindUnaryMethod(context->method());
  if (method == nullptr) {
    // Any method no registered service knows lands here.
    class Unimplemented final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Unimplemented(const std::string& method) {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            absl::StrCat("unknown method ", method)));
      }
      void OnDone() override { delete this; }
    };
    spdlog::warn("{} from {}: UNIMPLEMENTED", context->method(),
                 context->peer());
    return new Unimplemented(context->method());
  }
  return new UnaryReactor(service_, context, method);
}

grpc::ServerUnaryReactor* ActivationServiceImpl::ListFunctions(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = CheckAccepting("ListFunctions");
  v1::ListFunctionsRequest parsed;
  if (status.ok() && !ParseMessage(*request, &parsed)) {
    status = absl::InvalidArgumentError(
        "the request is not a valid actsvc.v1.ListFunctionsRequest message");
  }
  if (status.ok()) {
    // A copy of static metadata: cheap enough for the gRPC thread.
    v1::ListFunctionsResponse answer;
    HandleListFunctions(&answer);
    status = SerializeMessage(answer, response);
  }
  Record("ListFunctions", context, status, 0);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
ActivationServiceImpl::Stream(grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

}  // namespace actsvc::server
