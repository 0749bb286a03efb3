// Runs a validated operation: the response-size limits, chunking, the
// parallel path, deadline and cancellation checks between chunks, and the
// core calls, writing into an OutputSink. No protobuf and no gRPC here: the
// call arrives as a ComputeContext.
#ifndef ACTSVC_SERVER_COMPUTE_H_
#define ACTSVC_SERVER_COMPUTE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/analyze.h"
#include "server/ops.h"
#include "server/options.h"
#include "server/tensor.h"

namespace actsvc::server {

class ChunkPool;

// What a computation needs from its call: limits, and when to stop.
struct ComputeContext {
  // No response may exceed this (the server's send limit); larger ones are
  // refused with RESOURCE_EXHAUSTED before any work is done.
  int64_t max_message_bytes = int64_t{kDefaultMaxMessageMb} << 20;
  // When > 0, a dense Jacobian (one matrix per row, so c^2 outputs from c
  // inputs) over this many bytes of values is refused with
  // RESOURCE_EXHAUSTED before any work is done. 0: max_message_bytes only.
  int64_t max_jacobian_bytes = 0;
  // When > 0, requests whose main tensor declares more elements are refused
  // (Validate).
  int64_t max_elements = 0;
  // Work runs in chunks of about this many output elements; the deadline and
  // cancellation are checked before each one.
  int64_t chunk_elements = kDefaultChunkElements;
  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  std::function<bool()> is_cancelled;  // empty: never cancelled
  // When the call (or stream message) was handed to the compute threads;
  // the clock's epoch when not known. KServe's statistics report the wait.
  std::chrono::steady_clock::time_point queued_at{};
  // Work of at least this many elements splits its chunks over the threads
  // of chunk_pool (when set); is_cancelled may then be called from any of
  // them, one at a time.
  ChunkPool* chunk_pool = nullptr;
  int64_t parallel_threshold_elements = kDefaultParallelThresholdElements;
  // The request's bytes are this call's alone, and may be overwritten: set
  // only for a message gRPC received over the network (calls.cc), whose
  // slices nothing else reads once delivered (wire.cc, "In place"). Then an
  // elementwise RPC on raw_data (the own API, a request over
  // small_message_bytes) or an elementwise function model on
  // raw_input_contents (KServe v2) computes in place, in the
  // request's memory, and sends those bytes back. Never for bytes a caller
  // built from its own memory, or that an in-process channel passed from
  // its sender.
  bool request_writable = false;
  // Messages on the wire (wire.h): a request of at most this many bytes is
  // parsed by protobuf whole, and response values under it are written
  // into the response message, which protobuf then serializes. Below it
  // the wire path's walk costs more than the copies it saves (BENCHMARKS.md,
  // "Small calls"). 0: every value travels apart (the wire path's tests).
  int64_t small_message_bytes = kDefaultSmallMessageBytes;
  // When > 0, the call is computing on the gRPC thread that read its small
  // request (calls.cc): a dense Jacobian whose response would be larger
  // returns NeedsComputeThread() before any work, and runs again on the
  // compute threads. 0: on a compute thread, no such bound.
  int64_t inline_response_bytes = 0;

  // DEADLINE_EXCEEDED or CANCELLED once the call should stop, else OK.
  absl::Status CheckAlive() const;
};

// What a computation on a gRPC thread returns, before any work, when its
// response would be too large to compute there (inline_response_bytes):
// the caller runs it again on the compute threads. Never sent to a client.
absl::Status NeedsComputeThread();
bool IsNeedsComputeThread(const absl::Status& status);

// Each writes its outputs through `sink` (and calls sink->Finish() once they
// are written). RESOURCE_EXHAUSTED when the response would exceed the
// context's limits, before any work; DEADLINE_EXCEEDED or CANCELLED when the
// call stops between chunks.
absl::Status Run(const EvaluateOp& op, const ComputeContext& context,
                 OutputSink* sink);
absl::Status Run(const DerivativeOp& op, const ComputeContext& context,
                 OutputSink* sink);
absl::Status Run(const VjpOp& op, const ComputeContext& context,
                 OutputSink* sink);
// A Derivative request's operation, either of the two above.
absl::Status Run(const std::variant<DerivativeOp, VjpOp>& op,
                 const ComputeContext& context, OutputSink* sink);
// The bytes of a tensor's values, in order, in pieces of memory (written,
// or only read); a value may straddle pieces, and a piece may sit at any
// address.
using BytePieces = absl::Span<const absl::Span<char>>;
using ConstBytePieces = absl::Span<const absl::Span<const char>>;

// Evaluate, Derivative (orders 1 and 2) and the VJP of an elementwise
// function (no axis), computed in place: each value of x is overwritten
// with its result where it lies (for the VJP, each value of `y`, which is x
// or, when y_is_g, g; `other` is the other operand). One pass of the kernel
// over the pieces, chunked (and split over context.chunk_pool) as Run is;
// the few values that straddle pieces go through a small bounce buffer and
// back. Evaluate and the VJP of softmax and log_softmax (an axis) too,
// slab by slab: a slab that lies whole in one piece is computed there, one
// that straddles pieces in a buffer of one slab (y's written back).
// identity's f on float32 and float64 leaves the bytes as they are,
// untouched (the half types' quiets signaling NaNs: it runs). The response
// limit is checked against `sink` (which is not written) before any work.
// Preconditions: the pieces hold exactly op's values in op.x's dtype, no
// two operands share a byte, and the operand written is the caller's to
// write.
absl::Status RunInPlace(const EvaluateOp& op, BytePieces x,
                        const ComputeContext& context, const OutputSink& sink);
absl::Status RunInPlace(const DerivativeOp& op, BytePieces x,
                        const ComputeContext& context, const OutputSink& sink);
absl::Status RunInPlace(const VjpOp& op, BytePieces y, ConstBytePieces other,
                        bool y_is_g, const ComputeContext& context,
                        const OutputSink& sink);
// The diagonal Jacobian of an elementwise function (f' of each value, as
// Run's kJacobianDiagonal), in place as Derivative's order 1; a dense one or
// one along an axis is refused (INTERNAL).
absl::Status RunInPlace(const JacobianOp& op, BytePieces x,
                        const ComputeContext& context, const OutputSink& sink);

// The diagonal (kJacobianDiagonal) for an elementwise function unless dense
// is set, else the dense matrices (kJacobianDense).
absl::Status Run(const JacobianOp& op, const ComputeContext& context,
                 OutputSink* sink);
// kLoss, kGradLogits, and kProbabilities when asked.
absl::Status Run(const CrossEntropyOp& op, const ComputeContext& context,
                 OutputSink* sink);
// Gradient-flow diagnostics: no tensor output.
absl::StatusOr<GradientFlowReport> Run(const AnalyzeOp& op,
                                       const ComputeContext& context);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_COMPUTE_H_
