// ActivationService on the gRPC callback API. Each call's work runs on a
// WorkerPool thread, which also finishes the call; the body of every RPC is
// in handlers.h.
//
// The unary compute RPCs (all but ListFunctions) are served through a
// callback generic service that reads their request itself. gRPC hands a
// typed unary call to the server only once its whole request has arrived, and
// Shutdown cancels calls it has not handed over, so a large request still
// uploading at SIGTERM would be lost. A generic call starts when its headers
// arrive: Shutdown's drain then covers it. ListFunctions and Stream are raw
// callback methods that parse their messages themselves: for a typed method
// gRPC answers a request it cannot parse with UNIMPLEMENTED and no message
// (unary), or ends the reads as if the client had half-closed, so a stream
// with a malformed message would end OK (bench/soak.sh found both); here
// they get INVALID_ARGUMENT.
#ifndef ACTSVC_SERVER_SERVICE_H_
#define ACTSVC_SERVER_SERVICE_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "server/handlers.h"
#include "server/metrics.h"
#include "server/parallel.h"
#include "server/worker_pool.h"

namespace actsvc::server {

struct ServiceOptions {
  int64_t max_message_bytes = int64_t{64} << 20;
  int compute_threads = 1;
  int64_t chunk_elements = 65536;
  // Work of at least this many elements splits its chunks over the calling
  // worker and compute_threads − 1 helper threads (server/parallel.h).
  int64_t parallel_threshold_elements = int64_t{1} << 20;
  // When > 0, a request whose main tensor (input, or logits) has more
  // elements is refused with RESOURCE_EXHAUSTED before any work is done.
  int64_t max_elements = 0;
  // See ComputeContext::max_jacobian_bytes (0: max_message_bytes only).
  int64_t max_jacobian_bytes = 0;
  // When > 0, compute calls (all but ListFunctions; a stream counts once)
  // beyond this many in flight are refused at once with RESOURCE_EXHAUSTED
  // instead of waiting in an unbounded queue.
  int max_concurrent_calls = 0;
  // Runs on the worker before each unary call's (or stream message's)
  // compute. Tests use it to hold a call in flight.
  std::function<void()> before_compute_for_testing;
};

// The generated service class, whose method wrappers make up the base below:
// five generic methods and two raw callback ones (see the top of this file).
using GeneratedService = v1::ActivationService;

class ActivationServiceImpl final
    : public GeneratedService::WithGenericMethod_Evaluate<
          GeneratedService::WithGenericMethod_Derivative<
              GeneratedService::WithGenericMethod_Jacobian<
                  GeneratedService::WithGenericMethod_SoftmaxCrossEntropy<
                      GeneratedService::WithGenericMethod_Analyze<
                          GeneratedService::WithRawCallbackMethod_ListFunctions<
                              GeneratedService::WithRawCallbackMethod_Stream<
                                  GeneratedService::Service>>>>>>> {
 public:
  explicit ActivationServiceImpl(ServiceOptions options);
  // The gRPC server using this service must be shut down first.
  ~ActivationServiceImpl() override = default;

  // Messages are v1::ListFunctionsRequest/Response and v1::StreamRequest/
  // Response, serialized (see the top of this file).
  grpc::ServerUnaryReactor* ListFunctions(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* context) override;

  // Serves Evaluate, Derivative, Jacobian, SoftmaxCrossEntropy and Analyze
  // (see the top of this file); register it with ServerBuilder::
  // RegisterCallbackGenericService next to this service.
  grpc::CallbackGenericService* unary_methods() { return &unary_methods_; }

  // Shutdown, first step: every call that starts from now on is refused with
  // UNAVAILABLE; calls already started go on.
  void StartDraining();
  // Second step: waits until every call has ended, at most `timeout`.
  // Returns whether none is left.
  bool WaitUntilIdle(absl::Duration timeout);

  // Calls (a stream counts once) that ended with `code`, as the server saw
  // them: a client may see DEADLINE_EXCEEDED that the server never reached.
  int64_t FinishedCalls(absl::StatusCode code) const;
  // Elements of the requests answered successfully (see ElementsOf in
  // service.cc).
  int64_t ElementsProcessed() const {
    return elements_processed_.load(std::memory_order_relaxed);
  }
  // Compute calls started and not yet ended, refused ones included.
  int64_t CallsInFlight() const;
  int compute_threads() const { return pool_.size(); }
  // The Prometheus text of every call so far.
  std::string RenderMetrics() const { return metrics_.Render(CallsInFlight()); }

  // The body of the unary compute RPC at `path` (e.g.
  // "/actsvc.v1.ActivationService/Evaluate") as the server runs it, without
  // a call: parse, check max_elements, compute, serialize. UNIMPLEMENTED for
  // an unknown path. For tests (the fuzz targets under tests/fuzz).
  static absl::Status DispatchUnary(absl::string_view path,
                                    const grpc::ByteBuffer& request,
                                    const ComputeContext& context,
                                    int64_t max_elements, int64_t* elements,
                                    grpc::ByteBuffer* response);

 private:
  class StreamReactor;
  class UnaryReactor;

  // A compute RPC over serialized messages: parse, check the request's
  // element count against `max_elements` (when > 0) and store it in
  // `*elements`, run the handler, serialize.
  using UnaryBody = absl::Status (*)(const grpc::ByteBuffer& request,
                                     const ComputeContext& context,
                                     int64_t max_elements, int64_t* elements,
                                     grpc::ByteBuffer* response);
  struct UnaryMethod {
    absl::string_view path;  // "/actsvc.v1.ActivationService/Evaluate"
    absl::string_view rpc;   // "Evaluate"
    UnaryBody body;
  };
  static const UnaryMethod* FindUnaryMethod(absl::string_view path);

  class UnaryMethods final : public grpc::CallbackGenericService {
   public:
    explicit UnaryMethods(ActivationServiceImpl* service) : service_(service) {}
    grpc::ServerGenericBidiReactor* CreateReactor(
        grpc::GenericCallbackServerContext* context) override;

   private:
    ActivationServiceImpl* const service_;
  };

  // Counts a call from its start to its end (OnDone), for WaitUntilIdle and
  // --max_concurrent_calls.
  class CallScope {
   public:
    explicit CallScope(ActivationServiceImpl* service);
    ~CallScope();
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

    // Calls in flight when this one started, itself included.
    int64_t in_flight_at_start() const { return in_flight_at_start_; }

   private:
    ActivationServiceImpl* const service_;
    int64_t in_flight_at_start_ = 0;
  };
  // UNAVAILABLE once draining, with the RPC's name.
  absl::Status CheckAccepting(absl::string_view rpc) const;
  // CheckAccepting, then RESOURCE_EXHAUSTED when the call started beyond
  // max_concurrent_calls.
  absl::Status CheckAdmission(absl::string_view rpc,
                              const CallScope& scope) const;

  ComputeContext MakeComputeContext(grpc::CallbackServerContext* context) const;
  // Logs the outcome of a call and counts it.
  // `elements`: of the requests answered (0 for a failed unary call).
  void Record(absl::string_view rpc, grpc::CallbackServerContext* context,
              const absl::Status& status, double elapsed_ms,
              int64_t elements = 0);

  const ServiceOptions options_;
  std::array<std::atomic<int64_t>, 17> finished_by_code_{};
  std::atomic<int64_t> elements_processed_{0};
  Metrics metrics_;
  UnaryMethods unary_methods_{this};
  std::atomic<bool> draining_{false};
  mutable std::mutex calls_mu_;
  std::condition_variable calls_idle_;
  int64_t calls_in_flight_ = 0;  // guarded by calls_mu_
  // Helpers for the chunks of large requests; the workers below use it.
  mutable ChunkPool chunk_pool_;
  // Last: its threads run tasks that use the members above.
  WorkerPool pool_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_SERVICE_H_
