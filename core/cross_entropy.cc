// The fused softmax cross-entropy of core/softmax.h: p, the maximum and
// rest from the SIMD stats kernel (rows with NaN or ±inf from the scalar
// reference), loss and gradient from those in reference::Wider<T>.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/reference.h"
#include "core/softmax.h"
#include "core/softmax_internal.h"

namespace actsvc {

using internal::RowScratch;
using internal::Scratch;
using internal::SimdStats;

namespace {

// One row's labels and scratch: the smoothed labels are
// y = (1 − ε) t + ε/C, with t one-hot (by_index) or the target row.
template <typename T>
struct RowLabels {
  using W = reference::Wider<T>;
  bool by_index;
  int64_t label;    // by_index
  const T* target;  // !by_index: the row of target_probs
  W eps, spread;    // ε and ε/C
};

// The loss of a row whose p (in gr), max m and rest came from the SIMD stats
// kernel, and its gradient p Σy − y over gr.
template <typename T>
reference::Wider<T> SimdRowLoss(const RowLabels<T>& l, const T* z,
                                int64_t classes, T m, reference::Wider<T> rest,
                                T* gr) {
  using W = reference::Wider<T>;
  const W lse = std::log1p(rest);
  if (l.by_index && l.eps == 0) {
    // One-hot label: gr already holds p, and only p_label − 1 changes;
    // loss = −log p_label = log1p(rest) − (z_label − m).
    const T z_label = z[l.label];
    gr[l.label] = static_cast<T>(
        z_label == m
            ? -rest / (W(1) + rest)
            : std::exp(static_cast<W>(z_label) - m) / (W(1) + rest) - W(1));
    return lse - (static_cast<W>(z_label) - m);
  }
  // y = (1 − ε) t + ε/C; loss = Σ y_c (lse + (m − z_c)), every term >= 0 (a
  // zero y_c adds 0: z is finite here), lse kept apart from m − z_c
  // (lse + m would drop a tiny lse); grad = p Σy − y, p_k from rest. Four
  // partial sums, so that the loops are not bound by the latency of one
  // accumulator.
  const W a = W(1) - l.eps;
  const W spread = l.spread;
  const W mw = static_cast<W>(m);
  const int64_t k = std::find(z, z + classes, m) - z;
  // sy_rest = Σ_{c≠k} y_c, summed without y_k: Σy − y_k would cancel where
  // y_k is close to 1.
  W sum_y, y_k, sy_rest, loss;
  W acc[4] = {0, 0, 0, 0};
  if (l.by_index) {
    // Σy = (1 − ε) + C ε/C; loss = ε/C (C lse + Σ (m − z_c)) + (1 − ε)
    // (lse + (m − z_label)).
    const int64_t label = l.label;
    int64_t c = 0;
    for (; c + 4 <= classes; c += 4) {
      for (int j = 0; j < 4; ++j) acc[j] += mw - static_cast<W>(z[c + j]);
    }
    for (; c < classes; ++c) acc[0] += mw - static_cast<W>(z[c]);
    sum_y = a + spread * static_cast<W>(classes);
    y_k = k == label ? a + spread : spread;
    sy_rest = spread * static_cast<W>(classes - 1) + (k == label ? 0 : a);
    loss = spread * (static_cast<W>(classes) * lse +
                     ((acc[0] + acc[1]) + (acc[2] + acc[3]))) +
           a * (lse + (mw - static_cast<W>(z[label])));
    const W p_label = static_cast<W>(gr[label]);
    for (int64_t c2 = 0; c2 < classes; ++c2) {
      gr[c2] = static_cast<T>(static_cast<W>(gr[c2]) * sum_y - spread);
    }
    gr[label] = static_cast<T>(p_label * sum_y - (a + spread));
  } else {
    const T* t = l.target;
    W ys[4] = {0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 4 <= classes; c += 4) {
      for (int j = 0; j < 4; ++j) {
        const W yc = a * static_cast<W>(t[c + j]) + spread;
        ys[j] += c + j == k ? W(0) : yc;
        acc[j] += yc * (lse + (mw - static_cast<W>(z[c + j])));
      }
    }
    for (; c < classes; ++c) {
      const W yc = a * static_cast<W>(t[c]) + spread;
      ys[0] += c == k ? W(0) : yc;
      acc[0] += yc * (lse + (mw - static_cast<W>(z[c])));
    }
    y_k = a * static_cast<W>(t[k]) + spread;
    sy_rest = (ys[0] + ys[1]) + (ys[2] + ys[3]);
    sum_y = sy_rest + y_k;
    loss = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (int64_t c2 = 0; c2 < classes; ++c2) {
      gr[c2] = static_cast<T>(static_cast<W>(gr[c2]) * sum_y -
                              (a * static_cast<W>(t[c2]) + spread));
    }
  }
  // p_k Σy − y_k = (Σ_{c≠k} y_c − y_k rest) / (1 + rest).
  gr[k] = static_cast<T>((sy_rest - y_k * rest) / (W(1) + rest));
  return loss;
}

// The loss and gradient of a row with NaN or ±inf, from the reference's
// p and log p (in s): Σ y_c (logsumexp − z_c) = −Σ y_c log p_c; a zero label
// contributes nothing even where log p_c = −inf.
template <typename T>
reference::Wider<T> ReferenceRowLoss(const RowLabels<T>& l, int64_t classes,
                                     const internal::RowScratch<T>& s,
                                     std::vector<reference::Wider<T>>& y,
                                     T* gr) {
  using W = reference::Wider<T>;
  for (int64_t c = 0; c < classes; ++c) {
    const W t =
        l.by_index ? W(l.label == c ? 1 : 0) : static_cast<W>(l.target[c]);
    y[c] = (W(1) - l.eps) * t + l.spread;
  }
  W loss = 0;
  W sum_y = 0;
  for (int64_t c = 0; c < classes; ++c) {
    sum_y += y[c];
    if (y[c] != 0) loss -= y[c] * s.log_p[c];
  }
  for (int64_t c = 0; c < classes; ++c) {
    gr[c] = static_cast<T>(s.p[c] * sum_y - y[c]);
  }
  return loss;
}

}  // namespace

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
  RowLabels<T> l;
  l.by_index = target_probs.empty();
  l.eps = static_cast<W>(options.label_smoothing);
  l.spread = l.eps / static_cast<W>(classes);
  std::vector<W> y(classes);
  CrossEntropyPartial partial;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t off = r * classes;
    const T* z = logits.data() + off;
    T* gr = grad.data() + off;
    l.label = l.by_index ? class_indices[r] : 0;
    l.target = l.by_index ? nullptr : target_probs.data() + off;
    const bool ignored = l.by_index && options.ignore_index.has_value() &&
                         class_indices[r] == *options.ignore_index;
    // p from the SIMD kernel, into the gradient row (rows with NaN or ±inf
    // go to the reference). With m = max z and rest = Σ e^(z_c − m) over all
    // but the first maximum k: log Σ e^z − m = log1p(rest), and
    // p_k = 1/(1 + rest), 1 − p_k = rest/(1 + rest) keep their digits when
    // p_k is close to 1.
    T m;
    W rest;
    const bool simd = classes > 0 && SimdStats<T>(z, classes, gr, &m, &rest);
    if (!simd) {
      reference::SoftmaxRowProbabilities(z, classes, 1, s.p, s.log_p);
    }
    if (!probs.empty()) {
      for (int64_t c = 0; c < classes; ++c) {
        probs[off + c] = simd ? gr[c] : static_cast<T>(s.p[c]);
      }
    }
    if (ignored) {
      row_loss[r] = T(0);
      std::fill(gr, gr + classes, T(0));
      continue;
    }
    const W loss = simd ? SimdRowLoss<T>(l, z, classes, m, rest, gr)
                        : ReferenceRowLoss<T>(l, classes, s, y, gr);
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
