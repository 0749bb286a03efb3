// Each operation of ops.h run in chunks under the call's limits, deadline
// and chunk threads, into an OutputSink (compute_in_place.cc runs them over
// the request's own memory; chunks.h holds the loop both use).
#include "server/compute.h"

#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/activation.h"
#include "core/softmax.h"
#include "server/chunks.h"

namespace actsvc::server {
namespace {

// The payload that marks NeedsComputeThread's status.
constexpr absl::string_view kNeedsComputeThreadUrl =
    "actsvc.server/needs-compute-thread";

template <typename T>
absl::Status DerivativeInto(const ResolvedFunction& spec, int order,
                            absl::Span<const T> x,
                            const ComputeContext& context, absl::Span<T> y) {
  return RunChunkedParallel(
      context, static_cast<int64_t>(x.size()), context.chunk_elements, 1,
      [&](int64_t b, int64_t e) {
        Derivative<T>(spec.function, spec.alpha, order, x.subspan(b, e - b),
                      y.subspan(b, e - b));
      });
}

template <typename T>
absl::Status EvaluateAs(const EvaluateOp& op, const ComputeContext& context,
                        OutputSink* sink) {
  const TensorView& x = op.x;
  const absl::Span<const T> xs = x.values<T>();
  const absl::Span<T> ys =
      sink->AllocateAs<T>(OutputRole::kOutput, x.shape(), x.size());
  if (op.axis) {
    const AxisView v = op.axis->view;
    return RunRows(context, v, v.size * v.inner, [&](int64_t b, int64_t e) {
      SoftmaxForward<T>(op.function.function, v, xs, ys, b, e);
    });
  }
  return RunChunkedParallel(
      context, x.size(), context.chunk_elements, 1, [&](int64_t b, int64_t e) {
        Evaluate<T>(op.function.function, op.function.alpha,
                    xs.subspan(b, e - b), ys.subspan(b, e - b));
      });
}

template <typename T>
absl::Status VjpAs(const VjpOp& op, const ComputeContext& context,
                   OutputSink* sink) {
  const TensorView& x = op.x;
  const absl::Span<const T> xs = x.values<T>();
  const absl::Span<const T> gs = op.g.values<T>();
  const absl::Span<T> ys =
      sink->AllocateAs<T>(OutputRole::kOutput, x.shape(), x.size());
  if (op.axis) {
    const AxisView v = op.axis->view;
    return RunRows(context, v, v.size * v.inner, [&](int64_t b, int64_t e) {
      SoftmaxVjp<T>(op.function.function, v, xs, gs, ys, b, e);
    });
  }
  return RunChunkedParallel(
      context, x.size(), context.chunk_elements, 1, [&](int64_t b, int64_t e) {
        Vjp<T>(op.function.function, op.function.alpha, xs.subspan(b, e - b),
               gs.subspan(b, e - b), ys.subspan(b, e - b));
      });
}

// The shape of the dense Jacobian and its matrix size c.
struct DenseLayout {
  std::vector<int64_t> shape;
  int64_t c = 0;
};

DenseLayout DenseJacobianLayout(const JacobianOp& op) {
  const TensorView& x = op.x;
  DenseLayout layout;
  if (!op.axis) {  // elementwise: one diagonal matrix per last-axis row
    layout.c = x.shape().back();
    layout.shape.assign(x.shape().begin(), x.shape().end());
    layout.shape.push_back(layout.c);
    return layout;
  }
  layout.c = x.shape()[op.axis->axis];
  for (int d = 0; d < x.rank(); ++d) {
    if (d != op.axis->axis) layout.shape.push_back(x.shape()[d]);
  }
  layout.shape.push_back(layout.c);
  layout.shape.push_back(layout.c);
  return layout;
}

absl::Status CheckDenseJacobianSize(const JacobianOp& op,
                                    const DenseLayout& layout,
                                    const ComputeContext& context,
                                    const OutputSink& sink) {
  const int64_t elements = CheckedProduct(layout.shape);
  const std::string instead =
      op.axis ? "use Derivative with upstream_grad (VJP) instead of the dense "
                "Jacobian"
              : "use dense = false for the diagonal, or Derivative with "
                "upstream_grad (VJP)";
  const std::string what =
      absl::StrCat("the dense Jacobian ", ShapeString(layout.shape));
  const DType dtype = op.x.dtype();
  const int64_t bytes =
      sink.WireBytes(dtype, static_cast<int>(layout.shape.size()), elements);
  if (absl::Status s = CheckResponseBytes(context, bytes, what, instead);
      !s.ok()) {
    return s;
  }
  const int64_t element_size = DTypeSize(dtype);
  if (context.max_jacobian_bytes > 0 &&
      elements > context.max_jacobian_bytes / element_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " would be ", elements * element_size,
        " bytes of values, over the dense Jacobian limit of ",
        context.max_jacobian_bytes, " bytes (--max_jacobian_mb); ", instead));
  }
  // c^2 outputs from c inputs: a small request may ask for much work.
  if (context.inline_response_bytes > 0 &&
      bytes > context.inline_response_bytes) {
    return NeedsComputeThread();
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status DenseJacobianAs(const JacobianOp& op, const DenseLayout& layout,
                             const ComputeContext& context, OutputSink* sink) {
  const absl::Span<const T> xs = op.x.values<T>();
  const int64_t c = layout.c;
  const absl::Span<T> js = sink->AllocateAs<T>(
      OutputRole::kJacobianDense, layout.shape, CheckedProduct(layout.shape));
  if (op.axis) {
    const AxisView v = op.axis->view;
    return RunRows(context, v, v.inner * c * c, [&](int64_t b, int64_t e) {
      SoftmaxJacobian<T>(op.function.function, v, xs, js, b, e);
    });
  }
  if (op.x.size() == 0) return absl::OkStatus();  // c * c may overflow
  const int64_t rows = op.x.size() / c;
  std::vector<T> diag;
  return RunChunked(
      context, rows, UnitsPerChunk(context, c * c), [&](int64_t b, int64_t e) {
        diag.resize((e - b) * c);
        Derivative<T>(op.function.function, op.function.alpha, 1,
                      xs.subspan(b * c, (e - b) * c), absl::MakeSpan(diag));
        DiagonalToDense<T>(diag, c, js.subspan(b * c * c, (e - b) * c * c));
      });
}

template <typename T>
absl::Status CrossEntropyAs(const CrossEntropyOp& op,
                            const ComputeContext& context, OutputSink* sink) {
  const TensorView& logits = op.logits;
  const bool per_row = op.reduction == Reduction::kNone;
  const absl::Span<const int64_t> leading =
      logits.shape().subspan(0, logits.rank() - 1);
  const absl::Span<T> loss = sink->AllocateAs<T>(
      OutputRole::kLoss, per_row ? leading : absl::Span<const int64_t>(),
      per_row ? op.rows : 1);
  const absl::Span<T> grad = sink->AllocateAs<T>(OutputRole::kGradLogits,
                                                 logits.shape(), logits.size());
  const absl::Span<T> probs =
      op.return_probabilities
          ? sink->AllocateAs<T>(OutputRole::kProbabilities, logits.shape(),
                                logits.size())
          : absl::Span<T>();
  // Reduced losses need the per-row values somewhere before summing.
  std::vector<T> row_loss_scratch(per_row ? 0 : op.rows);
  const absl::Span<T> row_loss =
      per_row ? loss : absl::MakeSpan(row_loss_scratch);
  const absl::Span<const T> target_probs =
      op.target_probs ? op.target_probs->values<T>() : absl::Span<const T>();
  CrossEntropyPartial total;
  absl::Status status =
      RunChunked(context, op.rows, UnitsPerChunk(context, op.classes),
                 [&](int64_t b, int64_t e) {
                   const CrossEntropyPartial part = CrossEntropyRows<T>(
                       op.classes, logits.values<T>(), op.class_indices,
                       target_probs, op.options, row_loss, grad, probs, b, e);
                   total.counted_rows += part.counted_rows;
                   total.loss_sum += part.loss_sum;
                 });
  if (status.ok()) ReduceCrossEntropy<T>(op.reduction, total, grad, loss);
  return status;
}

// Finishes the sink after a successful run.
absl::Status Finished(absl::Status status, OutputSink* sink) {
  if (status.ok()) sink->Finish();
  return status;
}

// An operation whose one output has x's shape and dtype: checks the response
// size, then runs body(T{}) with T x's compute type, then finishes the sink.
template <typename Body>
absl::Status RunSameSize(const TensorView& x, absl::string_view what,
                         const ComputeContext& context, OutputSink* sink,
                         const Body& body) {
  if (absl::Status s = CheckSameSizeResponse(context, *sink, x, what);
      !s.ok()) {
    return s;
  }
  return Finished(VisitDType(x.dtype(), body), sink);
}

}  // namespace

absl::Status NeedsComputeThread() {
  absl::Status status = absl::UnavailableError(
      "internal: the work is too large for the gRPC thread");
  status.SetPayload(kNeedsComputeThreadUrl, absl::Cord("1"));
  return status;
}

bool IsNeedsComputeThread(const absl::Status& status) {
  return status.GetPayload(kNeedsComputeThreadUrl).has_value();
}

absl::Status ComputeContext::CheckAlive() const {
  // The deadline first: gRPC also marks a call cancelled when it expires,
  // and the client should hear the more specific reason.
  if (std::chrono::system_clock::now() >= deadline) {
    return absl::DeadlineExceededError(
        "the call's deadline passed while computing; the rest of the work "
        "was skipped");
  }
  if (is_cancelled && is_cancelled()) {
    return absl::CancelledError(
        "the call was cancelled; the rest of the work was skipped");
  }
  return absl::OkStatus();
}

absl::Status Run(const EvaluateOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  return RunSameSize(op.x, "the Evaluate response", context, sink, [&](auto t) {
    return EvaluateAs<decltype(t)>(op, context, sink);
  });
}

absl::Status Run(const DerivativeOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  return RunSameSize(op.x, "the Derivative response", context, sink,
                     [&](auto t) {
                       using T = decltype(t);
                       return DerivativeInto<T>(
                           op.function, op.order, op.x.values<T>(), context,
                           sink->AllocateAs<T>(OutputRole::kOutput,
                                               op.x.shape(), op.x.size()));
                     });
}

absl::Status Run(const VjpOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  return RunSameSize(
      op.x, "the Derivative response", context, sink,
      [&](auto t) { return VjpAs<decltype(t)>(op, context, sink); });
}

absl::Status Run(const std::variant<DerivativeOp, VjpOp>& op,
                 const ComputeContext& context, OutputSink* sink) {
  return std::visit([&](const auto& o) { return Run(o, context, sink); }, op);
}

absl::Status Run(const JacobianOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  if (!op.axis && !op.dense) {
    return RunSameSize(op.x, "the Jacobian response", context, sink,
                       [&](auto t) {
                         using T = decltype(t);
                         return DerivativeInto<T>(
                             op.function, 1, op.x.values<T>(), context,
                             sink->AllocateAs<T>(OutputRole::kJacobianDiagonal,
                                                 op.x.shape(), op.x.size()));
                       });
  }
  const DenseLayout layout = DenseJacobianLayout(op);
  if (absl::Status s = CheckDenseJacobianSize(op, layout, context, *sink);
      !s.ok()) {
    return s;
  }
  return Finished(VisitDType(op.x.dtype(),
                             [&](auto t) {
                               return DenseJacobianAs<decltype(t)>(
                                   op, layout, context, sink);
                             }),
                  sink);
}

absl::Status Run(const CrossEntropyOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  const TensorView& logits = op.logits;
  const bool per_row = op.reduction == Reduction::kNone;
  const DType dtype = logits.dtype();
  const int64_t logits_bytes =
      sink->WireBytes(dtype, logits.rank(), logits.size());
  int64_t bytes = sink->WireBytes(dtype, per_row ? logits.rank() - 1 : 0,
                                  per_row ? op.rows : 1);
  bytes = AddBytes(bytes, logits_bytes);
  if (op.return_probabilities) bytes = AddBytes(bytes, logits_bytes);
  if (absl::Status s = CheckResponseBytes(
          context, bytes, "the SoftmaxCrossEntropy response",
          op.return_probabilities
              ? "leave return_probabilities unset, or split the batch into "
                "smaller requests"
              : "split the batch into smaller requests");
      !s.ok()) {
    return s;
  }
  return Finished(VisitDType(dtype,
                             [&](auto t) {
                               return CrossEntropyAs<decltype(t)>(op, context,
                                                                  sink);
                             }),
                  sink);
}

absl::StatusOr<GradientFlowReport> Run(const AnalyzeOp& op,
                                       const ComputeContext& context) {
  GradientFlowCounts counts;
  const absl::Status status = VisitDType(op.x.dtype(), [&](auto t) {
    using T = decltype(t);
    const absl::Span<const T> xs = op.x.values<T>();
    return RunChunked(context, op.x.size(), context.chunk_elements,
                      [&](int64_t b, int64_t e) {
                        AccumulateGradientFlow<T>(
                            op.function.function, op.function.alpha, op.epsilon,
                            xs.subspan(b, e - b), &counts);
                      });
  });
  if (!status.ok()) return status;
  return SummarizeGradientFlow(counts, op.layers);
}

}  // namespace actsvc::server
