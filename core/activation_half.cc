// Elementwise functions in float16 and bfloat16 (core/activation_half.h):
// chunks of the input are widened to float32, run through this target's
// float32 kernel (core/activation.cc), and rounded once to the half type.
//
// Why the float64 lanes: a float32 result y within K float32 ULPs of the
// true value rounds to the correctly rounded half value unless a rounding
// boundary of the half type (a midpoint between two neighbours, or the
// overflow threshold) lies within K ULPs of y. Near small |x| such
// boundaries are hit in earnest: sigma(x) ~ 1/2 + x/4 sits on a float16
// midpoint for small float16 x, and its next term is below float32's
// resolution, so that even a correctly rounded float32 kernel plus one
// rounding misses 7 to 10 of the 65,536 float16 inputs (SPEC.md §1). Those
// lanes, a few per thousand at most, are recomputed from the float64
// reference (core/reference.h, long double inside) and rounded from there.
// K is the float32 kernels' budget (SPEC.md §4) plus one: 5 for f, f' and
// the VJP (4 for f', 1/2 for the product with g), 17 for f''.
// bfloat16 shares float32's exponent range: a result below float32's
// smallest normal (where the float32 kernels only promise an absolute
// error of that size) is recomputed too, and so is a VJP whose float32 f'
// underflowed where the true f' is not 0 (g up to 2^128 can bring it back
// into range), and a zero result out in the tails, where the float32
// kernels flush what bfloat16 can still hold.
// Contract (docs/accuracy.md; tests/core/half_accuracy_test.cc runs all
// 65,536 inputs of each type on every target): correctly rounded except
// where the float64 reference itself is within its own error of a
// midpoint; NaN in gives NaN out, results beyond the range give +-inf.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/activation_half.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include <algorithm>
#include <cstring>
#include <limits>

#include "core/activation_half.h"
#include "core/half.h"
#include "core/half_convert-inl.h"
#include "core/reference.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

// This target's float32 kernel, defined in core/activation.cc.
void ElementwiseF32(Function f, int kind, double alpha, const float* x,
                    const float* g, float* y, size_t n, float pos_inf,
                    float neg_inf);

using internal::HalfParams;

// The lanes of `near` (bits, as StoreMaskBits writes them) recomputed from
// the float64 reference and rounded once. Out of line: the rare path.
template <typename H>
HWY_NOINLINE void ReferenceLanes(const HalfParams& p, const float* xf,
                                 const float* gf, const uint8_t* near,
                                 size_t count, H* out) {
  const int order = p.kind == 3 ? 1 : p.kind;
  for (size_t j = 0; j < count; ++j) {
    if (!(near[j / 8] >> (j % 8) & 1)) continue;
    double v = reference::Elementwise<double>(p.f, p.alpha, order, xf[j]);
    if (p.kind == 3) v *= static_cast<double>(gf[j]);
    out[j] = HalfFromDouble<H>(v);
  }
}

// Rounds `count` (<= one vector) results at yf (f, f', f'' or, for the
// VJP, f') to out, recomputing the lanes the rounding cannot be trusted on.
template <typename H, class D>
HWY_INLINE void RoundVector(D df, const HalfParams& p, const float* xf,
                            const float* gf, const float* yf, size_t count,
                            H* out) {
  using V = hn::Vec<D>;
  V y = hn::LoadU(df, yf);
  auto extra = hn::FirstN(df, 0);
  if (std::is_same_v<H, BFloat16> && p.kind != 3) {
    const V x = hn::LoadU(df, xf);
    const V tail_x = p.zero_tail_negative_only ? hn::Neg(x) : hn::Abs(x);
    extra = hn::And(
        hn::Eq(y, hn::Zero(df)),
        hn::And(hn::Ge(tail_x, hn::Set(df, p.zero_tail_x)), hn::IsFinite(x)));
  }
  if (p.kind == 3) {
    const V g = hn::LoadU(df, gf);
    const V d = y;
    y = hn::Mul(g, d);
    if (!p.exact_zero_f1) {
      // f' below float32's normal range (0 included): g * f' may be a
      // normal bfloat16, or inf * (tiny f' > 0) = inf.
      const auto tiny_d =
          hn::Lt(hn::Abs(d), hn::Set(df, std::numeric_limits<float>::min()));
      const auto g_matters =
          std::is_same_v<H, BFloat16> ? hn::Ne(g, hn::Zero(df)) : hn::IsInf(g);
      extra =
          hn::And(hn::And(tiny_d, g_matters), hn::IsFinite(hn::LoadU(df, xf)));
    }
  }
  const V tol = hn::Mul(hn::Abs(y), hn::Set(df, p.rel_tol));
  const auto near = hn::And(hn::Or(NearMidpoint<H>(df, y, tol), extra),
                            hn::FirstN(df, count));
  const size_t lanes = hn::Lanes(df);
  if (count == lanes) {
    NarrowStore(df, y, out);
  } else {
    HWY_ALIGN H buf[HWY_MAX_BYTES / sizeof(float)];
    NarrowStore(df, y, buf);
    std::memcpy(out, buf, count * sizeof(H));
  }
  if (HWY_UNLIKELY(!hn::AllFalse(df, near))) {
    uint8_t bits[(HWY_MAX_BYTES / sizeof(float) + 7) / 8] = {};
    hn::StoreMaskBits(df, near, bits);
    ReferenceLanes(p, xf, gf, bits, count, out);
  }
}

// `count` half values at h widened into f.
template <typename H, class D>
HWY_INLINE void Widen(D df, const H* h, float* f, size_t count) {
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    hn::Store(LoadWiden(df, h + i), df, f + i);
  }
  if (i < count) {
    HWY_ALIGN H buf[HWY_MAX_BYTES / sizeof(float)] = {};
    std::memcpy(buf, h + i, (count - i) * sizeof(H));
    hn::Store(LoadWiden(df, buf), df, f + i);  // f has room: whole vectors
  }
}

template <typename H>
void HalfKernel(const HalfParams& p, const H* x, const H* g, H* y, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t lanes = hn::Lanes(df);
  // A multiple of every vector length; 12 KiB of float32 stays in L1.
  constexpr size_t kChunk = 1024;
  HWY_ALIGN float xf[kChunk];
  HWY_ALIGN float gf[kChunk];
  HWY_ALIGN float yf[kChunk];
  const int order = p.kind == 3 ? 1 : p.kind;
  for (size_t begin = 0; begin < n; begin += kChunk) {
    const size_t count = std::min(kChunk, n - begin);
    // Both inputs are read before y is written: y may be x or g.
    Widen(df, x + begin, xf, count);
    if (p.kind == 3) Widen(df, g + begin, gf, count);
    ElementwiseF32(p.f, order, p.alpha, xf, nullptr, yf, count, p.pos_inf,
                   p.neg_inf);
    for (size_t i = 0; i < count; i += lanes) {
      RoundVector(df, p, xf + i, gf + i, yf + i, std::min(lanes, count - i),
                  y + begin + i);
    }
  }
}

void ElementwiseF16(const HalfParams& p, const Float16* x, const Float16* g,
                    Float16* y, size_t n) {
  HalfKernel(p, x, g, y, n);
}
void ElementwiseBF16(const HalfParams& p, const BFloat16* x, const BFloat16* g,
                     BFloat16* y, size_t n) {
  HalfKernel(p, x, g, y, n);
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace actsvc {

HWY_EXPORT(ElementwiseF16);
HWY_EXPORT(ElementwiseBF16);

namespace internal {
namespace {

HalfParams MakeParams(Function f, int kind, double alpha) {
  const int order = kind == 3 ? 1 : kind;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  HalfParams p;
  p.f = f;
  p.kind = kind;
  p.alpha = alpha;
  p.pos_inf = reference::Elementwise<float>(f, alpha, order, kInf);
  p.neg_inf = reference::Elementwise<float>(f, alpha, order, -kInf);
  p.rel_tol = (order == 2 ? 17.0f : 5.0f) * 0x1p-23f;
  p.exact_zero_f1 = f == Function::kIdentity || f == Function::kRelu ||
                    f == Function::kLeakyRelu;
  // The float32 kernels underflow only where some e^-|x| does, far beyond
  // |x| = 8; closer in a zero result is exact.
  p.zero_tail_x =
      p.exact_zero_f1 ? std::numeric_limits<float>::infinity() : 8.0f;
  p.zero_tail_negative_only = f == Function::kElu || f == Function::kSelu;
  return p;
}

}  // namespace

void ElementwiseHalf(Function f, int kind, double alpha, const Float16* x,
                     const Float16* g, Float16* y, size_t n) {
  if (n == 0) return;
  HWY_DYNAMIC_DISPATCH(ElementwiseF16)(MakeParams(f, kind, alpha), x, g, y, n);
}

void ElementwiseHalf(Function f, int kind, double alpha, const BFloat16* x,
                     const BFloat16* g, BFloat16* y, size_t n) {
  if (n == 0) return;
  HWY_DYNAMIC_DISPATCH(ElementwiseBF16)(MakeParams(f, kind, alpha), x, g, y, n);
}

}  // namespace internal
}  // namespace actsvc
#endif  // HWY_ONCE
