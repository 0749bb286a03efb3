// One function per RPC body: request in, response or status out. The unary
// RPCs and the Stream RPC both call these, so they cannot diverge. No gRPC
// here: the call's deadline and cancellation arrive as a ComputeContext.
#ifndef ACTSVC_SERVER_HANDLERS_H_
#define ACTSVC_SERVER_HANDLERS_H_

#include <chrono>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "actsvc/v1/activation.pb.h"

namespace actsvc::server {

class ChunkPool;

// What a computation needs from its call: limits, and when to stop.
struct ComputeContext {
  // No response may exceed this (the server's send limit); larger ones are
  // refused with RESOURCE_EXHAUSTED before any work is done.
  int64_t max_message_bytes = int64_t{64} << 20;
  // When > 0, a dense Jacobian (one matrix per row, so c^2 outputs from c
  // inputs) over this many bytes of values is refused with
  // RESOURCE_EXHAUSTED before any work is done. 0: max_message_bytes only.
  int64_t max_jacobian_bytes = 0;
  // Work runs in chunks of about this many output elements; the deadline and
  // cancellation are checked before each one.
  int64_t chunk_elements = 65536;
  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  std::function<bool()> is_cancelled;  // empty: never cancelled
  // Work of at least this many elements splits its chunks over the threads
  // of chunk_pool (when set); is_cancelled may then be called from any of
  // them, one at a time.
  ChunkPool* chunk_pool = nullptr;
  int64_t parallel_threshold_elements = int64_t{1} << 20;

  // DEADLINE_EXCEEDED or CANCELLED once the call should stop, else OK.
  absl::Status CheckAlive() const;
};

absl::Status HandleEvaluate(const v1::EvaluateRequest& request,
                            const ComputeContext& context,
                            v1::EvaluateResponse* response);
absl::Status HandleDerivative(const v1::DerivativeRequest& request,
                              const ComputeContext& context,
                              v1::DerivativeResponse* response);
absl::Status HandleJacobian(const v1::JacobianRequest& request,
                            const ComputeContext& context,
                            v1::JacobianResponse* response);
absl::Status HandleSoftmaxCrossEntropy(
    const v1::SoftmaxCrossEntropyRequest& request,
    const ComputeContext& context, v1::SoftmaxCrossEntropyResponse* response);
void HandleListFunctions(v1::ListFunctionsResponse* response);
// Gradient-flow diagnostics (see AnalyzeRequest in activation.proto).
absl::Status HandleAnalyze(const v1::AnalyzeRequest& request,
                           const ComputeContext& context,
                           v1::AnalyzeResponse* response);
// One message of the Stream RPC: an Evaluate or a Derivative request.
absl::Status HandleStreamRequest(const v1::StreamRequest& request,
                                 const ComputeContext& context,
                                 v1::StreamResponse* response);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_HANDLERS_H_
