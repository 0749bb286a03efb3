#include "server/service.h"

#include <chrono>
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

}  // namespace

// Serves one Stream call: read a request, compute it on the pool, write its
// response, read the next. One step at a time keeps the responses in request
// order and leaves at most one operation outstanding, so Finish is called
// exactly once: by whichever step fails or by the read that ends the stream.
class ActivationServiceImpl::StreamReactor final
    : public grpc::ServerBidiReactor<v1::StreamRequest, v1::StreamResponse> {
 public:
  StreamReactor(ActivationServiceImpl* service,
                grpc::CallbackServerContext* context)
      : service_(service), context_(context), start_(SteadyClock::now()) {
    StartRead(&request_);
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
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void Compute() {
    if (service_->options_.before_compute_for_testing) {
      service_->options_.before_compute_for_testing();
    }
    const SteadyClock::time_point start = SteadyClock::now();
    response_.Clear();
    const absl::Status status = HandleStreamRequest(
        request_, service_->MakeComputeContext(context_), &response_);
    if (!status.ok()) {
      End(absl::Status(status.code(), absl::StrCat("stream request #", index_,
                                                   ": ", status.message())));
      return;
    }
    spdlog::debug("Stream from {}: request #{} OK in {:.3f} ms",
                  context_->peer(), index_, MillisecondsSince(start));
    StartWrite(&response_);
  }

  void End(const absl::Status& status) {
    service_->Record("Stream", context_, status, MillisecondsSince(start_));
    Finish(ToGrpcStatus(status));
  }

  ActivationServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  const SteadyClock::time_point start_;
  v1::StreamRequest request_;
  v1::StreamResponse response_;
  int64_t index_ = 0;  // of the request being served, from 0
};

ActivationServiceImpl::ActivationServiceImpl(ServiceOptions options)
    : options_(std::move(options)), pool_(options_.compute_threads) {}

ComputeContext ActivationServiceImpl::MakeComputeContext(
    grpc::CallbackServerContext* context) const {
  ComputeContext compute;
  compute.max_message_bytes = options_.max_message_bytes;
  compute.chunk_elements = options_.chunk_elements;
  compute.deadline = context->deadline();
  compute.is_cancelled = [context] { return context->IsCancelled(); };
  return compute;
}

void ActivationServiceImpl::Record(absl::string_view rpc,
                                   grpc::CallbackServerContext* context,
                                   const absl::Status& status,
                                   double elapsed_ms) {
  const int code = static_cast<int>(status.code());
  if (code >= 0 && code < static_cast<int>(finished_by_code_.size())) {
    finished_by_code_[code].fetch_add(1, std::memory_order_relaxed);
  }
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

template <typename Request, typename Response>
grpc::ServerUnaryReactor* ActivationServiceImpl::RunUnary(
    absl::string_view rpc, grpc::CallbackServerContext* context,
    const Request* request, Response* response,
    absl::Status (*body)(const Request&, const ComputeContext&, Response*)) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const SteadyClock::time_point start = SteadyClock::now();
  // request, response and context stay valid until Finish.
  pool_.Submit([=] {
    if (options_.before_compute_for_testing) {
      options_.before_compute_for_testing();
    }
    const absl::Status status =
        body(*request, MakeComputeContext(context), response);
    Record(rpc, context, status, MillisecondsSince(start));
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* ActivationServiceImpl::Evaluate(
    grpc::CallbackServerContext* context, const v1::EvaluateRequest* request,
    v1::EvaluateResponse* response) {
  return RunUnary("Evaluate", context, request, response, &HandleEvaluate);
}

grpc::ServerUnaryReactor* ActivationServiceImpl::Derivative(
    grpc::CallbackServerContext* context, const v1::DerivativeRequest* request,
    v1::DerivativeResponse* response) {
  return RunUnary("Derivative", context, request, response, &HandleDerivative);
}

grpc::ServerUnaryReactor* ActivationServiceImpl::Jacobian(
    grpc::CallbackServerContext* context, const v1::JacobianRequest* request,
    v1::JacobianResponse* response) {
  return RunUnary("Jacobian", context, request, response, &HandleJacobian);
}

grpc::ServerUnaryReactor* ActivationServiceImpl::SoftmaxCrossEntropy(
    grpc::CallbackServerContext* context,
    const v1::SoftmaxCrossEntropyRequest* request,
    v1::SoftmaxCrossEntropyResponse* response) {
  return RunUnary("SoftmaxCrossEntropy", context, request, response,
                  &HandleSoftmaxCrossEntropy);
}

grpc::ServerUnaryReactor* ActivationServiceImpl::ListFunctions(
    grpc::CallbackServerContext* context,
    const v1::ListFunctionsRequest* /*request*/,
    v1::ListFunctionsResponse* response) {
  // A copy of static metadata: cheap enough for the gRPC thread.
  HandleListFunctions(response);
  Record("ListFunctions", context, absl::OkStatus(), 0);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::StreamRequest, v1::StreamResponse>*
ActivationServiceImpl::Stream(grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

}  // namespace actsvc::server
