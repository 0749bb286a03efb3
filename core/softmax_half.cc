// The half-precision softmax functions of core/softmax.h: float32 kernels
// on widened rows, one rounding at the end.
#include <vector>

#include "core/half.h"
#include "core/softmax.h"

namespace actsvc {
namespace {

// Per-thread float32 copies, reused across calls (the server runs chunks of
// rows on its worker threads).
struct Wide {
  std::vector<float> a, g, out, loss, grad, probs;
};
Wide& Scratch() {
  thread_local Wide w;
  return w;
}

template <typename H>
absl::Span<const float> WidenInto(absl::Span<const H> h,
                                  std::vector<float>& f) {
  f.resize(h.size());
  WidenHalf(h, absl::MakeSpan(f));
  return f;
}

absl::Span<float> Sized(std::vector<float>& f, size_t n) {
  f.resize(n);
  return absl::MakeSpan(f);
}

// Which float32 function of core/softmax.h a half call runs.
enum class HalfCall { kForward, kVjp, kVjpFromOutput, kJacobian };

template <typename H>
void SoftmaxHalf(HalfCall call, Function f, AxisView v, absl::Span<const H> a,
                 absl::Span<const H> g, absl::Span<H> out, int64_t outer_begin,
                 int64_t outer_end) {
  if (outer_end <= outer_begin) return;
  // The rows of [outer_begin, outer_end) are one contiguous block of the
  // inputs, and of the output (the Jacobian's rows are ordered (o, i)).
  const int64_t slice = v.size * v.inner;
  const size_t begin = static_cast<size_t>(outer_begin * slice);
  const size_t count = static_cast<size_t>((outer_end - outer_begin) * slice);
  AxisView part = v;
  part.outer = outer_end - outer_begin;
  Wide& w = Scratch();
  const absl::Span<const float> af = WidenInto(a.subspan(begin, count), w.a);
  if (call == HalfCall::kJacobian) {
    const size_t per = static_cast<size_t>(v.inner * v.size * v.size);
    const size_t out_begin = static_cast<size_t>(outer_begin) * per;
    const size_t out_count = static_cast<size_t>(part.outer) * per;
    const absl::Span<float> jf = Sized(w.out, out_count);
    SoftmaxJacobian<float>(f, part, af, jf);
    NarrowToHalf(jf, out.subspan(out_begin, out_count));
    return;
  }
  const absl::Span<float> yf = Sized(w.out, count);
  if (call == HalfCall::kForward) {
    SoftmaxForward<float>(f, part, af, yf);
  } else {
    const absl::Span<const float> gf = WidenInto(g.subspan(begin, count), w.g);
    if (call == HalfCall::kVjp) {
      SoftmaxVjp<float>(f, part, af, gf, yf);
    } else {
      SoftmaxVjpFromOutput<float>(f, part, af, gf, yf);
    }
  }
  NarrowToHalf(yf, out.subspan(begin, count));
}

template <typename H>
CrossEntropyPartial CrossEntropyRowsHalf(
    int64_t classes, absl::Span<const H> logits,
    absl::Span<const int64_t> class_indices, absl::Span<const H> target_probs,
    const CrossEntropyOptions& options, absl::Span<H> row_loss,
    absl::Span<H> grad, absl::Span<H> probs, int64_t row_begin,
    int64_t row_end) {
  if (row_end <= row_begin) return {};
  const int64_t rows = row_end - row_begin;
  const size_t begin = static_cast<size_t>(row_begin * classes);
  const size_t count = static_cast<size_t>(rows * classes);
  Wide& w = Scratch();
  const absl::Span<const float> zf =
      WidenInto(logits.subspan(begin, count), w.a);
  const absl::Span<const float> tf =
      target_probs.empty() ? absl::Span<const float>()
                           : WidenInto(target_probs.subspan(begin, count), w.g);
  const absl::Span<float> lf = Sized(w.loss, static_cast<size_t>(rows));
  const absl::Span<float> gf = Sized(w.grad, count);
  const absl::Span<float> pf =
      probs.empty() ? absl::Span<float>() : Sized(w.probs, count);
  const CrossEntropyPartial partial = CrossEntropyRows<float>(
      classes, zf,
      class_indices.empty() ? class_indices
                            : class_indices.subspan(row_begin, rows),
      tf, options, lf, gf, pf, 0, rows);
  NarrowToHalf(lf, row_loss.subspan(row_begin, rows));
  NarrowToHalf(gf, grad.subspan(begin, count));
  if (!probs.empty()) NarrowToHalf(pf, probs.subspan(begin, count));
  return partial;
}

template <typename H>
void ReduceCrossEntropyHalf(Reduction reduction,
                            const CrossEntropyPartial& total,
                            absl::Span<H> grad, absl::Span<H> loss) {
  switch (reduction) {
    case Reduction::kNone:
      return;
    case Reduction::kSum:
      loss[0] = HalfFromDouble<H>(static_cast<double>(total.loss_sum));
      return;
    case Reduction::kMean: {
      const long double n = static_cast<long double>(total.counted_rows);
      loss[0] = HalfFromDouble<H>(static_cast<double>(total.loss_sum / n));
      if (total.counted_rows == 0) return;
      for (H& g : grad) {
        g = HalfFromDouble<H>(ToDouble(g) / static_cast<double>(n));
      }
      return;
    }
  }
}

}  // namespace

#define ACTSVC_DEFINE_HALF(H)                                                 \
  template <>                                                                 \
  void SoftmaxForward<H>(Function f, AxisView v, absl::Span<const H> x,       \
                         absl::Span<H> y, int64_t ob, int64_t oe) {           \
    SoftmaxHalf<H>(HalfCall::kForward, f, v, x, {}, y, ob,                    \
                   oe < 0 ? v.outer : oe);                                    \
  }                                                                           \
  template <>                                                                 \
  void SoftmaxVjp<H>(Function f, AxisView v, absl::Span<const H> x,           \
                     absl::Span<const H> g, absl::Span<H> y, int64_t ob,      \
                     int64_t oe) {                                            \
    SoftmaxHalf<H>(HalfCall::kVjp, f, v, x, g, y, ob, oe < 0 ? v.outer : oe); \
  }                                                                           \
  template <>                                                                 \
  void SoftmaxVjpFromOutput<H>(Function f, AxisView v, absl::Span<const H> y, \
                               absl::Span<const H> g, absl::Span<H> dx,       \
                               int64_t ob, int64_t oe) {                      \
    SoftmaxHalf<H>(HalfCall::kVjpFromOutput, f, v, y, g, dx, ob,              \
                   oe < 0 ? v.outer : oe);                                    \
  }                                                                           \
  template <>                                                                 \
  void SoftmaxJacobian<H>(Function f, AxisView v, absl::Span<const H> x,      \
                          absl::Span<H> jac, int64_t ob, int64_t oe) {        \
    if (v.size == 0) return;                                                  \
    SoftmaxHalf<H>(HalfCall::kJacobian, f, v, x, {}, jac, ob,                 \
                   oe < 0 ? v.outer : oe);                                    \
  }                                                                           \
  template <>                                                                 \
  CrossEntropyPartial CrossEntropyRows<H>(                                    \
      int64_t classes, absl::Span<const H> logits,                            \
      absl::Span<const int64_t> class_indices,                                \
      absl::Span<const H> target_probs, const CrossEntropyOptions& options,   \
      absl::Span<H> row_loss, absl::Span<H> grad, absl::Span<H> probs,        \
      int64_t row_begin, int64_t row_end) {                                   \
    return CrossEntropyRowsHalf<H>(classes, logits, class_indices,            \
                                   target_probs, options, row_loss, grad,     \
                                   probs, row_begin, row_end);                \
  }                                                                           \
  template <>                                                                 \
  void ReduceCrossEntropy<H>(Reduction reduction,                             \
                             const CrossEntropyPartial& total,                \
                             absl::Span<H> grad, absl::Span<H> loss) {        \
    ReduceCrossEntropyHalf<H>(reduction, total, grad, loss);                  \
  }
ACTSVC_DEFINE_HALF(Float16)
ACTSVC_DEFINE_HALF(BFloat16)
#undef ACTSVC_DEFINE_HALF

}  // namespace actsvc
