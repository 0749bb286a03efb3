// ActivationService on the gRPC callback API. Each call's work runs on a
// WorkerPool thread, which also finishes the call; the body of every RPC is
// in handlers.h.
#ifndef ACTSVC_SERVER_SERVICE_H_
#define ACTSVC_SERVER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "server/handlers.h"
#include "server/worker_pool.h"

namespace actsvc::server {

struct ServiceOptions {
  int64_t max_message_bytes = int64_t{64} << 20;
  int compute_threads = 1;
  int64_t chunk_elements = 65536;
  // Runs on the worker before each unary call's (or stream message's)
  // compute. Tests use it to hold a call in flight.
  std::function<void()> before_compute_for_testing;
};

class ActivationServiceImpl final
    : public v1::ActivationService::CallbackService {
 public:
  explicit ActivationServiceImpl(ServiceOptions options);
  // The gRPC server using this service must be shut down first.
  ~ActivationServiceImpl() override = default;

  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* context,
                                     const v1::EvaluateRequest* request,
                                     v1::EvaluateResponse* response) override;
  grpc::ServerUnaryReactor* Derivative(
      grpc::CallbackServerContext* context,
      const v1::DerivativeRequest* request,
      v1::DerivativeResponse* response) override;
  grpc::ServerUnaryReactor* Jacobian(grpc::CallbackServerContext* context,
                                     const v1::JacobianRequest* request,
                                     v1::JacobianResponse* response) override;
  grpc::ServerUnaryReactor* SoftmaxCrossEntropy(
      grpc::CallbackServerContext* context,
      const v1::SoftmaxCrossEntropyRequest* request,
      v1::SoftmaxCrossEntropyResponse* response) override;
  grpc::ServerUnaryReactor* ListFunctions(
      grpc::CallbackServerContext* context,
      const v1::ListFunctionsRequest* request,
      v1::ListFunctionsResponse* response) override;
  grpc::ServerBidiReactor<v1::StreamRequest, v1::StreamResponse>* Stream(
      grpc::CallbackServerContext* context) override;

  // Calls (a stream counts once) that ended with `code`, as the server saw
  // them: a client may see DEADLINE_EXCEEDED that the server never reached.
  int64_t FinishedCalls(absl::StatusCode code) const;
  int compute_threads() const { return pool_.size(); }

 private:
  class StreamReactor;

  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* RunUnary(
      absl::string_view rpc, grpc::CallbackServerContext* context,
      const Request* request, Response* response,
      absl::Status (*body)(const Request&, const ComputeContext&, Response*));

  ComputeContext MakeComputeContext(grpc::CallbackServerContext* context) const;
  // Logs the outcome of a call and counts it.
  void Record(absl::string_view rpc, grpc::CallbackServerContext* context,
              const absl::Status& status, double elapsed_ms);

  const ServiceOptions options_;
  std::array<std::atomic<int64_t>, 17> finished_by_code_{};
  // Last: its threads run tasks that use the members above.
  WorkerPool pool_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_SERVICE_H_
