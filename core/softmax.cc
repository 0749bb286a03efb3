#include "core/softmax.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/reference.h"

namespace actsvc {
namespace {

// Calls fn(row_index, offset) for every row of outer slices [ob, oe): the
// row's first element is at `offset`, its stride is v.inner.
template <typename Fn>
void ForEachRow(AxisView v, int64_t ob, int64_t oe, Fn&& fn) {
  if (oe < 0) oe = v.outer;
  for (int64_t o = ob; o < oe; ++o) {
    for (int64_t i = 0; i < v.inner; ++i) {
      fn(o * v.inner + i, o * v.size * v.inner + i);
    }
  }
}

template <typename T>
struct RowScratch {
  std::vector<reference::Wider<T>> p, log_p;
};

template <typename T>
RowScratch<T>& Scratch() {
  thread_local RowScratch<T> scratch;
  return scratch;
}

}  // namespace

AxisView MakeAxisView(absl::Span<const int64_t> shape, int axis) {
  AxisView v;
  for (int d = 0; d < axis; ++d) v.outer *= shape[d];
  v.size = shape[axis];
  for (size_t d = axis + 1; d < shape.size(); ++d) v.inner *= shape[d];
  return v;
}

std::optional<int> NormalizeAxis(int axis, int rank) {
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) return std::nullopt;
  return a;
}

template <typename T>
void SoftmaxForward(Function f, AxisView v, absl::Span<const T> x,
                    absl::Span<T> y, int64_t outer_begin, int64_t outer_end) {
  RowScratch<T>& s = Scratch<T>();
  const bool log = f == Function::kLogSoftmax;
  ForEachRow(v, outer_begin, outer_end, [&](int64_t, int64_t off) {
    reference::SoftmaxRowProbabilities(x.data() + off, v.size, v.inner, s.p,
                                       s.log_p);
    for (int64_t c = 0; c < v.size; ++c) {
      y[off + c * v.inner] = static_cast<T>(log ? s.log_p[c] : s.p[c]);
    }
  });
}

template <typename T>
void SoftmaxVjp(Function f, AxisView v, absl::Span<const T> x,
                absl::Span<const T> g, absl::Span<T> y, int64_t outer_begin,
                int64_t outer_end) {
  using W = reference::Wider<T>;
  RowScratch<T>& s = Scratch<T>();
  const bool log = f == Function::kLogSoftmax;
  ForEachRow(v, outer_begin, outer_end, [&](int64_t, int64_t off) {
    reference::SoftmaxRowProbabilities(x.data() + off, v.size, v.inner, s.p,
                                       s.log_p);
    // softmax: p ⊙ (g − <g, p>); log_softmax: g − p Σg.
    W acc = 0;
    for (int64_t c = 0; c < v.size; ++c) {
      const W gc = static_cast<W>(g[off + c * v.inner]);
      acc += log ? gc : gc * s.p[c];
    }
    for (int64_t c = 0; c < v.size; ++c) {
      const int64_t k = off + c * v.inner;
      const W gc = static_cast<W>(g[k]);
      y[k] = static_cast<T>(log ? gc - s.p[c] * acc : s.p[c] * (gc - acc));
    }
  });
}

template <typename T>
void SoftmaxJacobian(Function f, AxisView v, absl::Span<const T> x,
                     absl::Span<T> jac, int64_t outer_begin,
                     int64_t outer_end) {
  using W = reference::Wider<T>;
  RowScratch<T>& s = Scratch<T>();
  const bool log = f == Function::kLogSoftmax;
  const int64_t n = v.size;
  ForEachRow(v, outer_begin, outer_end, [&](int64_t row, int64_t off) {
    reference::SoftmaxRowProbabilities(x.data() + off, n, v.inner, s.p,
                                       s.log_p);
    T* j = jac.data() + row * n * n;
    for (int64_t a = 0; a < n; ++a) {
      for (int64_t b = 0; b < n; ++b) {
        const W delta = a == b ? W(1) : W(0);
        j[a * n + b] =
            static_cast<T>(log ? delta - s.p[b] : s.p[a] * (delta - s.p[b]));
      }
    }
  });
}

template <typename T>
CrossEntropyPartial CrossEntropyRows(int64_t classes,
                                     absl::Span<const T> logits,
                                     absl::Span<const int64_t> class_indices,
                                     absl::Span<const T> target_probs,
                                     const CrossEntropyOptions& options,
                                     absl::Span<T> row_loss, absl::Span<T> grad,
                                     absl::Span<T> probs, int64_t row_begin,
                                     int64_t row_end) {
  using W = reference::Wider<T>;
  RowScratch<T>& s = Scratch<T>();
  const W eps = static_cast<W>(options.label_smoothing);
  const W spread = eps / static_cast<W>(classes);
  const bool by_index = target_probs.empty();
  std::vector<W> y(classes);
  CrossEntropyPartial partial;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t off = r * classes;
    reference::SoftmaxRowProbabilities(logits.data() + off, classes, 1, s.p,
                                       s.log_p);
    if (!probs.empty()) {
      for (int64_t c = 0; c < classes; ++c) {
        probs[off + c] = static_cast<T>(s.p[c]);
      }
    }
    const bool ignored = by_index && options.ignore_index.has_value() &&
                         class_indices[r] == *options.ignore_index;
    if (ignored) {
      row_loss[r] = T(0);
      for (int64_t c = 0; c < classes; ++c) grad[off + c] = T(0);
      continue;
    }
    for (int64_t c = 0; c < classes; ++c) {
      const W t = by_index ? W(class_indices[r] == c ? 1 : 0)
                           : static_cast<W>(target_probs[off + c]);
      y[c] = (W(1) - eps) * t + spread;
    }
    // Σ y_c (logsumexp − z_c) = −Σ y_c log p_c; a zero label contributes
    // nothing even where log p_c = −inf.
    W loss = 0;
    W sum_y = 0;
    for (int64_t c = 0; c < classes; ++c) {
      sum_y += y[c];
      if (y[c] != 0) loss -= y[c] * s.log_p[c];
    }
    for (int64_t c = 0; c < classes; ++c) {
      grad[off + c] = static_cast<T>(s.p[c] * sum_y - y[c]);
    }
    row_loss[r] = static_cast<T>(loss);
    partial.counted_rows += 1;
    partial.loss_sum += static_cast<long double>(loss);
  }
  return partial;
}

template <typename T>
void ReduceCrossEntropy(Reduction reduction, const CrossEntropyPartial& total,
                        absl::Span<T> grad, absl::Span<T> loss) {
  switch (reduction) {
    case Reduction::kNone:
      return;
    case Reduction::kSum:
      loss[0] = static_cast<T>(total.loss_sum);
      return;
    case Reduction::kMean: {
      // 0 / 0 is NaN when every row is ignored, as in PyTorch; the
      // gradient of ignored rows stays 0 then.
      const long double n = static_cast<long double>(total.counted_rows);
      loss[0] = static_cast<T>(total.loss_sum / n);
      if (total.counted_rows == 0) return;
      for (T& g : grad) g = static_cast<T>(static_cast<long double>(g) / n);
      return;
    }
  }
}

#define ACTSVC_INSTANTIATE(T)                                                \
  template void SoftmaxForward<T>(Function, AxisView, absl::Span<const T>,   \
                                  absl::Span<T>, int64_t, int64_t);          \
  template void SoftmaxVjp<T>(Function, AxisView, absl::Span<const T>,       \
                              absl::Span<const T>, absl::Span<T>, int64_t,   \
                              int64_t);                                      \
  template void SoftmaxJacobian<T>(Function, AxisView, absl::Span<const T>,  \
                                   absl::Span<T>, int64_t, int64_t);         \
  template CrossEntropyPartial CrossEntropyRows<T>(                          \
      int64_t, absl::Span<const T>, absl::Span<const int64_t>,               \
      absl::Span<const T>, const CrossEntropyOptions&, absl::Span<T>,        \
      absl::Span<T>, absl::Span<T>, int64_t, int64_t);                       \
  template void ReduceCrossEntropy<T>(Reduction, const CrossEntropyPartial&, \
                                      absl::Span<T>, absl::Span<T>);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
#undef ACTSVC_INSTANTIATE

}  // namespace actsvc
