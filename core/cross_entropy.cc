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
    const T* z = logits.data() + off;
    T* gr = grad.data() + off;
    const bool ignored = by_index && options.ignore_index.has_value() &&
                         class_indices[r] == *options.ignore_index;
    // p from the SIMD kernel, into the gradient row (rows with NaN or ±inf
    // go to the reference below). With m = max z and rest = Σ e^(z_c − m)
    // over all but the first maximum k: log Σ e^z − m = log1p(rest), and
    // p_k = 1/(1 + rest), 1 − p_k = rest/(1 + rest) keep their digits when
    // p_k is close to 1.
    T m;
    W rest;
    if (classes > 0 && SimdStats<T>(z, classes, gr, &m, &rest)) {
      if (!probs.empty()) std::copy(gr, gr + classes, probs.begin() + off);
      if (ignored) {
        row_loss[r] = T(0);
        std::fill(gr, gr + classes, T(0));
        continue;
      }
      const W lse = std::log1p(rest);
      W loss;
      if (by_index && eps == 0) {
        // One-hot label: gr already holds p, and only p_label − 1 changes;
        // loss = −log p_label = log1p(rest) − (z_label − m).
        const int64_t label = class_indices[r];
        const T z_label = z[label];
        loss = lse - (static_cast<W>(z_label) - m);
        gr[label] = static_cast<T>(
            z_label == m
                ? -rest / (W(1) + rest)
                : std::exp(static_cast<W>(z_label) - m) / (W(1) + rest) - W(1));
      } else {
        // y = (1 − ε) t + ε/C; loss = Σ y_c (lse + (m − z_c)), every term
        // >= 0 (a zero y_c adds 0: z is finite here), lse kept apart from
        // m − z_c (lse + m would drop a tiny lse); grad = p Σy − y, p_k from
        // rest. Four partial sums, so that the loops are not bound by the
        // latency of one accumulator.
        const W a = W(1) - eps;
        const W mw = static_cast<W>(m);
        const int64_t k = std::find(z, z + classes, m) - z;
        // sy_rest = Σ_{c≠k} y_c, summed without y_k: Σy − y_k would cancel
        // where y_k is close to 1.
        W sum_y, y_k, sy_rest;
        W acc[4] = {0, 0, 0, 0};
        if (by_index) {
          // Σy = (1 − ε) + C ε/C; loss = ε/C (C lse + Σ (m − z_c)) + (1 − ε)
          // (lse + (m − z_label)).
          const int64_t label = class_indices[r];
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
          const T* t = target_probs.data() + off;
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
      }
      row_loss[r] = static_cast<T>(loss);
      partial.counted_rows += 1;
      partial.loss_sum += static_cast<long double>(loss);
      continue;
    }
    reference::SoftmaxRowProbabilities(logits.data() + off, classes, 1, s.p,
                                       s.log_p);
    if (!probs.empty()) {
      for (int64_t c = 0; c < classes; ++c) {
        probs[off + c] = static_cast<T>(s.p[c]);
      }
    }
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
