// Softmax and log-softmax along one axis of a row-major tensor, their
// vector-Jacobian products and dense Jacobians, and the fused softmax
// cross-entropy loss and gradient. Plain C++ over absl::Span.
#ifndef ACTSVC_CORE_SOFTMAX_H_
#define ACTSVC_CORE_SOFTMAX_H_

#include <cstdint>
#include <optional>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/half.h"

namespace actsvc {

// A row-major tensor seen as [outer, size, inner] around its softmax axis:
// element (o, c, i) sits at (o * size + c) * inner + i. Each of the
// outer * inner "rows" is a vector of `size` values with stride `inner`.
struct AxisView {
  int64_t outer = 1;
  int64_t size = 1;
  int64_t inner = 1;

  int64_t rows() const { return outer * inner; }
  int64_t elements() const { return outer * size * inner; }
};

// What the softmax kernels compute for one row (core/softmax_row-inl.h,
// core/softmax_column-inl.h; dispatched by core/softmax.cc and
// core/softmax_columns.cc). The VJPs from logits take x; the VJPs from the
// forward output take y = softmax(x) or log_softmax(x) in place of x
// (oneDNN's and PyTorch's backward).
enum class SoftmaxOp : int {
  kSoftmax = 0,                  // y = p
  kLogSoftmax = 1,               // y = log p
  kSoftmaxVjp = 2,               // y = p ⊙ (g − ⟨g, p⟩)
  kLogSoftmaxVjp = 3,            // y = g − p Σg
  kSoftmaxVjpFromOutput = 4,     // dx = y ⊙ (g − ⟨g, y⟩)
  kLogSoftmaxVjpFromOutput = 5,  // dx = g − e^y Σg
};

// Whether op is of log_softmax (else of softmax).
constexpr bool IsLogOp(SoftmaxOp op) {
  return op == SoftmaxOp::kLogSoftmax || op == SoftmaxOp::kLogSoftmaxVjp ||
         op == SoftmaxOp::kLogSoftmaxVjpFromOutput;
}
// Whether op is a VJP, which reads an upstream gradient g.
constexpr bool IsVjpOp(SoftmaxOp op) {
  return op != SoftmaxOp::kSoftmax && op != SoftmaxOp::kLogSoftmax;
}
// Whether op is a VJP from the forward output.
constexpr bool IsVjpFromOutputOp(SoftmaxOp op) {
  return op == SoftmaxOp::kSoftmaxVjpFromOutput ||
         op == SoftmaxOp::kLogSoftmaxVjpFromOutput;
}
// The forward op, the VJP from x and the VJP from the output of f
// (Function::kSoftmax or Function::kLogSoftmax).
constexpr SoftmaxOp ForwardOp(Function f) {
  return f == Function::kLogSoftmax ? SoftmaxOp::kLogSoftmax
                                    : SoftmaxOp::kSoftmax;
}
constexpr SoftmaxOp VjpOp(Function f) {
  return f == Function::kLogSoftmax ? SoftmaxOp::kLogSoftmaxVjp
                                    : SoftmaxOp::kSoftmaxVjp;
}
constexpr SoftmaxOp VjpFromOutputOp(Function f) {
  return f == Function::kLogSoftmax ? SoftmaxOp::kLogSoftmaxVjpFromOutput
                                    : SoftmaxOp::kSoftmaxVjpFromOutput;
}

// Rows of at most this many values (v.size) run the column kernel, which
// computes a vector of rows at once (core/softmax_column-inl.h), in both
// layouts; longer rows run the row kernel (the crossover: BENCHMARKS.md,
// "Softmax along other axes, and short rows").
inline constexpr int64_t kSoftmaxColumnMaxClasses = 32;

// The view of `shape` around `axis`. Precondition: 0 <= axis < shape.size().
AxisView MakeAxisView(absl::Span<const int64_t> shape, int axis);

// Normalizes a possibly negative axis (-1 is the last) for a tensor of the
// given rank; nullopt when out of range.
std::optional<int> NormalizeAxis(int axis, int rank);

// f is Function::kSoftmax or Function::kLogSoftmax throughout.
// Row ranges: every function also takes [outer_begin, outer_end) so that a
// caller can split large work into chunks; spans always cover the whole
// tensor.

// y = softmax(x) or log_softmax(x) along the axis. y may be x.
template <typename T>
void SoftmaxForward(Function f, AxisView v, absl::Span<const T> x,
                    absl::Span<T> y, int64_t outer_begin = 0,
                    int64_t outer_end = -1);

// The VJP with upstream gradient g: softmax p ⊙ (g − <g, p>);
// log_softmax g − p Σg. y may be x or g.
template <typename T>
void SoftmaxVjp(Function f, AxisView v, absl::Span<const T> x,
                absl::Span<const T> g, absl::Span<T> y, int64_t outer_begin = 0,
                int64_t outer_end = -1);

// The VJP from the forward output y (what oneDNN's and PyTorch's backward
// take): softmax, y = softmax(x), dx = y ⊙ (g − <g, y>); log_softmax,
// y = log_softmax(x), dx = g − e^y Σg. dx may be y or g. One pass for the
// sum and one for the output, against four (one with exp) from x.
// Accuracy: the formula at the (y, g) given, within 4 ULP plus
// 8ε y_i Σ_j |g_j| y_j (softmax) or 8ε e^(y_i) Σ_j |g_j| (log_softmax), the
// conditions of its sums. It cannot know more about x than y holds: the
// rounding of y (4 ULP for ours) passes into dx as about
// 4ε y_i (|g_i| + Σ_j |g_j| y_j), which where p_k is close to 1 exceeds the
// condition of the VJP at x, p_k (|g_k| (1 − p_k) + ...), by up to
// 1 / (1 − p_k): 1 − y_k keeps only the digits of y_k. SoftmaxVjp (from x)
// forms 1 − p_k from the logits and stays within the condition there; the
// Derivative RPC, which gets logits, uses it.
template <typename T>
void SoftmaxVjpFromOutput(Function f, AxisView v, absl::Span<const T> y,
                          absl::Span<const T> g, absl::Span<T> dx,
                          int64_t outer_begin = 0, int64_t outer_end = -1);

// Dense Jacobians, one [size, size] matrix per row, rows ordered (o, i):
// jac has v.rows() * size * size values, J[r][a][b] = d y_a / d x_b.
// softmax: diag(p) − p pᵀ; log_softmax: δ_ab − p_b.
template <typename T>
void SoftmaxJacobian(Function f, AxisView v, absl::Span<const T> x,
                     absl::Span<T> jac, int64_t outer_begin = 0,
                     int64_t outer_end = -1);

// Softmax cross-entropy over logits [rows, classes] (classes contiguous).
struct CrossEntropyOptions {
  double label_smoothing = 0;           // ε in [0, 1)
  std::optional<int64_t> ignore_index;  // class-index labels only
};

// What a range of rows contributes before reduction.
struct CrossEntropyPartial {
  int64_t counted_rows = 0;  // rows not ignored
  long double loss_sum = 0;  // Σ of their losses, in extended precision
};

// Computes rows [row_begin, row_end): row_loss[r] (0 for an ignored row),
// the unreduced gradient grad[r, :] = p·Σy − y (0 for an ignored row) and,
// when probs is non-empty, probs[r, :] = softmax. Labels are exactly one of
// class_indices (one per row; each in [0, classes) or equal to ignore_index)
// or target_probs (rows * classes). With smoothing ε the labels become
// (1−ε)·y + ε/classes. Loss per row = Σ_c y_c·(logsumexp(z) − z_c), which
// never takes the log of a rounded probability.
template <typename T>
CrossEntropyPartial CrossEntropyRows(int64_t classes,
                                     absl::Span<const T> logits,
                                     absl::Span<const int64_t> class_indices,
                                     absl::Span<const T> target_probs,
                                     const CrossEntropyOptions& options,
                                     absl::Span<T> row_loss, absl::Span<T> grad,
                                     absl::Span<T> probs, int64_t row_begin,
                                     int64_t row_end);

// The reduction of SPEC §1, applied after every row is computed: for kMean
// the loss is loss_sum / counted_rows and grad is divided by counted_rows
// (NaN when no row counts, as PyTorch; the gradient then stays 0); for kSum the
// loss is loss_sum; for kNone loss is the row losses and nothing changes.
// `loss` receives one value (kMean, kSum).
enum class Reduction { kMean, kSum, kNone };
template <typename T>
void ReduceCrossEntropy(Reduction reduction, const CrossEntropyPartial& total,
                        absl::Span<T> grad, absl::Span<T> loss);

// Float16 and BFloat16 (core/softmax_half.cc): each range of rows is
// widened to float32, run through the float32 kernels and rounded once to
// the half type. Sums are carried in float32 lanes or wider (the float32
// kernels' compensated sums; long double for the cross-entropy loss), so
// that a row of 100,000 classes keeps its digits. Bound (docs/accuracy.md,
// tests/core/softmax_half_test.cc): within 1 ULP of the half type of the
// true value, or one subnormal step below the smallest normal.
#define ACTSVC_DECLARE_HALF(H)                                              \
  template <>                                                               \
  void SoftmaxForward<H>(Function, AxisView, absl::Span<const H>,           \
                         absl::Span<H>, int64_t, int64_t);                  \
  template <>                                                               \
  void SoftmaxVjp<H>(Function, AxisView, absl::Span<const H>,               \
                     absl::Span<const H>, absl::Span<H>, int64_t, int64_t); \
  template <>                                                               \
  void SoftmaxVjpFromOutput<H>(Function, AxisView, absl::Span<const H>,     \
                               absl::Span<const H>, absl::Span<H>, int64_t, \
                               int64_t);                                    \
  template <>                                                               \
  void SoftmaxJacobian<H>(Function, AxisView, absl::Span<const H>,          \
                          absl::Span<H>, int64_t, int64_t);                 \
  template <>                                                               \
  CrossEntropyPartial CrossEntropyRows<H>(                                  \
      int64_t, absl::Span<const H>, absl::Span<const int64_t>,              \
      absl::Span<const H>, const CrossEntropyOptions&, absl::Span<H>,       \
      absl::Span<H>, absl::Span<H>, int64_t, int64_t);                      \
  template <>                                                               \
  void ReduceCrossEntropy<H>(Reduction, const CrossEntropyPartial&,         \
                             absl::Span<H>, absl::Span<H>);
ACTSVC_DECLARE_HALF(Float16)
ACTSVC_DECLARE_HALF(BFloat16)
#undef ACTSVC_DECLARE_HALF

}  // namespace actsvc

#endif  // ACTSVC_CORE_SOFTMAX_H_
