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
// lanes, a few per thousand at most, are collected per chunk, recomputed
// in this target's float64 kernel (within 4 float64 ULPs), rounded to odd in
// float32 and from there to the half type; the rare lane that is still
// ambiguous at float64 precision takes the long double reference
// (core/reference.h), as CORE-MATH's rounding tests do.
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
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/activation_half.h"
#include "core/half.h"
#include "core/half_convert-inl.h"
#include "core/reference.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

// This target's float32 and float64 kernels, defined in core/activation.cc.
void ElementwiseF32(Function f, ElementwiseKind kind, double alpha,
                    const float* x, const float* g, float* y, size_t n,
                    float pos_inf, float neg_inf);
void ElementwiseF64(Function f, ElementwiseKind kind, double alpha,
                    const double* x, const double* g, double* y, size_t n,
                    double pos_inf, double neg_inf);

using internal::HalfParams;

// A multiple of every vector length; the float32 copies stay in L1.
constexpr size_t kChunk = 1024;

// v rounded to float32 toward zero, its last bit set when inexact (round to
// odd): a second rounding from there, to a format with at least two bits
// fewer, gives the correctly rounded result of v (Boldo and Melquiond).
inline float RoundToOddF32(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) == v || std::isnan(v)) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(v)) {
    f = std::nextafter(f, 0.0f);
  }
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= 1;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The flagged lanes (indices into the chunk) recomputed in this target's
// float64 kernel, whose result is within 4 float64 ULPs (the VJP's product
// adds half of one): rounded to odd in float32 and then to H, which is
// correct unless the float64 value lies within that error of a rounding
// boundary of H; then (the dropped bits of the float32 value 1000...0 up to
// its last bit) the long double reference decides. Out of line: the rare
// path.
template <typename H>
HWY_NOINLINE void ResolveFlagged(const HalfParams& p, const float* xf,
                                 const float* gf, const int32_t* idx,
                                 size_t count, H* out) {
  const int order = OrderOf(p.kind);
  const bool vjp = p.kind == ElementwiseKind::kVjp;
  constexpr bool kF16 = std::is_same_v<H, Float16>;
  constexpr uint32_t kDropped = kF16 ? 0x1FFFu : 0xFFFFu;
  constexpr uint32_t kHalf = (kDropped + 1) / 2;
  // Below float16's smallest normal the float32 value drops more bits than
  // 13: those few lanes take the reference. (bfloat16 drops the low 16
  // bits of float32 subnormals too.)
  constexpr uint32_t kMinNormalBits = kF16 ? 0x38800000u : 0u;
  constexpr size_t kBlock = 64;
  for (size_t begin = 0; begin < count; begin += kBlock) {
    const size_t n = std::min(kBlock, count - begin);
    HWY_ALIGN double xd[kBlock] = {};
    HWY_ALIGN double yd[kBlock] = {};
    for (size_t k = 0; k < n; ++k) xd[k] = xf[idx[begin + k]];
    ElementwiseF64(p.f, KindOfOrder(order), p.alpha, xd, nullptr, yd, n,
                   p.pos_inf64, p.neg_inf64);
    for (size_t k = 0; k < n; ++k) {
      const int32_t at = idx[begin + k];
      double v = yd[k];
      if (vjp) v *= static_cast<double>(gf[at]);
      const float f = RoundToOddF32(v);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      const uint32_t a = bits & 0x7FFFFFFFu;
      const uint32_t low = a & kDropped;
      const bool ambiguous =
          a < kMinNormalBits ? a != 0 : (low >= kHalf - 1 && low <= kHalf + 1);
      if (HWY_UNLIKELY(ambiguous && std::isfinite(v))) {
        v = reference::Elementwise<double>(p.f, p.alpha, order, xd[k]);
        if (vjp) v *= static_cast<double>(gf[at]);
        out[at] = HalfFromDouble<H>(v);
      } else {
        out[at] = HalfFromDouble<H>(f);  // exact: f has enough bits
      }
    }
  }
}

// The float16 lanes with a subnormal result (2^-26 <= |y| < 2^-14, where
// the grid is 2^-24 wide) within K float32 ULPs of a midpoint.
template <class D>
HWY_NOINLINE hn::Mask<D> NearSubnormalF16(D df, hn::Vec<D> a, int32_t k) {
  using V = hn::Vec<D>;
  const V t = hn::Mul(a, hn::Set(df, 16777216.0f));
  const V mid = hn::Mul(hn::Add(hn::Floor(t), hn::Set(df, 0.5f)),
                        hn::Set(df, 1.0f / 16777216.0f));
  const V tol = hn::Mul(a, hn::Set(df, static_cast<float>(k) * 0x1p-23f));
  return hn::Le(hn::Abs(hn::Sub(a, mid)), tol);
}

// The lanes of y, a float32 result within K ULPs of the true value, whose
// rounding to H might differ from the true value's: the bits that rounding
// drops lie within K of 1000...0 (a midpoint, or the overflow threshold,
// in y's binade: its ULP is constant there). float16 results below 2^-14
// (a coarser grid) are tested apart; bfloat16 flags every nonzero result
// below float32's smallest normal, where the float32 kernels only promise
// an absolute error of that size. NaN and inf are never flagged.
template <typename H, class D>
HWY_INLINE hn::Mask<D> Untrusted(D df, hn::Vec<D> y, int32_t k) {
  const hn::RebindToSigned<D> di;
  using VI = hn::Vec<decltype(di)>;
  constexpr bool kF16 = std::is_same_v<H, Float16>;
  const VI ai = hn::BitCast(di, hn::Abs(y));
  constexpr int32_t kDropped = kF16 ? 0x1FFF : 0xFFFF;
  const VI dist = hn::Abs(hn::Sub(hn::And(ai, hn::Set(di, kDropped)),
                                  hn::Set(di, (kDropped + 1) / 2)));
  const auto near = hn::Lt(dist, hn::Set(di, k + 1));
  if constexpr (kF16) {
    const auto normal = hn::Gt(ai, hn::Set(di, 0x38800000 - 1));
    auto m = hn::RebindMask(df, hn::And(near, normal));
    // 2^-26 <= |y| < 2^-14: below 2^-26 the result is 0 whatever the error.
    const auto sub =
        hn::AndNot(normal, hn::Gt(ai, hn::Set(di, 0x32800000 - 1)));
    if (HWY_UNLIKELY(!hn::AllFalse(di, sub))) {
      m = hn::Or(m, hn::And(hn::RebindMask(df, sub),
                            NearSubnormalF16(df, hn::Abs(y), k)));
    }
    return m;
  } else {
    const auto normal = hn::Gt(ai, hn::Set(di, 0x007FFFFF));
    const auto tiny = hn::AndNot(normal, hn::Gt(ai, hn::Zero(di)));
    return hn::RebindMask(df, hn::Or(hn::And(near, normal), tiny));
  }
}

// Rounds the results of lanes [i, i + count) of the chunk (count is one
// vector's lanes unless kPartial) into out + i, and appends the indices of
// the lanes to recompute to `flagged`; returns how many.
template <typename H, bool kVjp, bool kZeroTail, bool kPartial, class D>
HWY_INLINE size_t RoundVector(D df, const HalfParams& p, const float* xf,
                              const float* gf, const float* yf, size_t i,
                              size_t count, H* out, int32_t* flagged) {
  using V = hn::Vec<D>;
  const hn::RebindToSigned<D> di;
  V y = hn::LoadU(df, yf + i);
  auto extra = hn::FirstN(df, 0);
  if constexpr (kVjp) {
    const V g = hn::LoadU(df, gf + i);
    const V d = y;
    y = hn::Mul(g, d);
    if (!p.exact_zero_f1) {
      // f' below float32's normal range (0 included): g * f' may be a
      // normal bfloat16, or inf * (tiny f' > 0) = inf.
      const auto tiny_d =
          hn::Lt(hn::Abs(d), hn::Set(df, std::numeric_limits<float>::min()));
      if (HWY_UNLIKELY(!hn::AllFalse(df, tiny_d))) {
        const auto g_matters = std::is_same_v<H, BFloat16>
                                   ? hn::Ne(g, hn::Zero(df))
                                   : hn::IsInf(g);
        extra = hn::And(hn::And(tiny_d, g_matters),
                        hn::IsFinite(hn::LoadU(df, xf + i)));
      }
    }
  }
  if constexpr (kZeroTail) {
    const auto zero = hn::Eq(y, hn::Zero(df));
    if (HWY_UNLIKELY(!hn::AllFalse(df, zero))) {
      const V x = hn::LoadU(df, xf + i);
      const V tail_x = p.zero_tail_negative_only ? hn::Neg(x) : hn::Abs(x);
      extra = hn::And(zero, hn::And(hn::Ge(tail_x, hn::Set(df, p.zero_tail_x)),
                                    hn::IsFinite(x)));
    }
  }
  auto near = hn::Or(Untrusted<H>(df, y, p.ulp_budget), extra);
  if constexpr (kPartial) {
    HWY_ALIGN H buf[HWY_MAX_BYTES / sizeof(float)];
    NarrowStore(df, y, buf);
    std::memcpy(out + i, buf, count * sizeof(H));
    near = hn::And(near, hn::FirstN(df, count));
  } else {
    NarrowStore(df, y, out + i);
  }
  if (HWY_LIKELY(hn::AllFalse(df, near))) return 0;
  const auto index = hn::Iota(di, static_cast<int32_t>(i));
  return hn::CompressStore(index, hn::RebindMask(di, near), di, flagged);
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

template <typename H, bool kVjp, bool kZeroTail>
void HalfChunks(const HalfParams& p, const H* x, const H* g, H* y, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t lanes = hn::Lanes(df);
  HWY_ALIGN float xf[kChunk];
  HWY_ALIGN float gf[kChunk];
  HWY_ALIGN float yf[kChunk];
  // CompressStore may write a whole vector past the last index it keeps.
  HWY_ALIGN int32_t flagged[kChunk + HWY_MAX_BYTES / sizeof(int32_t)];
  const ElementwiseKind kind = kVjp ? ElementwiseKind::kDerivative1 : p.kind;
  for (size_t begin = 0; begin < n; begin += kChunk) {
    const size_t count = std::min(kChunk, n - begin);
    // Both inputs are read before y is written: y may be x or g.
    Widen(df, x + begin, xf, count);
    if (kVjp) Widen(df, g + begin, gf, count);
    ElementwiseF32(p.f, kind, p.alpha, xf, nullptr, yf, count, p.pos_inf,
                   p.neg_inf);
    H* out = y + begin;
    size_t flags = 0;
    size_t i = 0;
    for (; i + lanes <= count; i += lanes) {
      flags += RoundVector<H, kVjp, kZeroTail, false>(
          df, p, xf, gf, yf, i, lanes, out, flagged + flags);
    }
    if (i < count) {
      flags += RoundVector<H, kVjp, kZeroTail, true>(
          df, p, xf, gf, yf, i, count - i, out, flagged + flags);
    }
    if (flags != 0) {
      ResolveFlagged(p, xf, kVjp ? gf : nullptr, flagged, flags, out);
    }
  }
}

template <typename H>
void HalfKernel(const HalfParams& p, const H* x, const H* g, H* y, size_t n) {
  if (p.kind == ElementwiseKind::kVjp)
    return HalfChunks<H, true, false>(p, x, g, y, n);
  const bool zero_tail =
      std::is_same_v<H, BFloat16> &&
      p.zero_tail_x != std::numeric_limits<float>::infinity();
  if (zero_tail) return HalfChunks<H, false, true>(p, x, g, y, n);
  HalfChunks<H, false, false>(p, x, g, y, n);
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

HalfParams MakeParams(Function f, ElementwiseKind kind, double alpha) {
  const int order = OrderOf(kind);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  HalfParams p;
  p.f = f;
  p.kind = kind;
  p.alpha = alpha;
  p.pos_inf = reference::Elementwise<float>(f, alpha, order, kInf);
  p.neg_inf = reference::Elementwise<float>(f, alpha, order, -kInf);
  p.pos_inf64 = reference::Elementwise<double>(f, alpha, order, kInf);
  p.neg_inf64 = reference::Elementwise<double>(f, alpha, order, -kInf);
  p.ulp_budget = order == 2 ? 17 : 5;
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

void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const Float16* x, const Float16* g, Float16* y, size_t n) {
  if (n == 0) return;
  HWY_DYNAMIC_DISPATCH(ElementwiseF16)(MakeParams(f, kind, alpha), x, g, y, n);
}

void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const BFloat16* x, const BFloat16* g, BFloat16* y,
                     size_t n) {
  if (n == 0) return;
  HWY_DYNAMIC_DISPATCH(ElementwiseBF16)(MakeParams(f, kind, alpha), x, g, y, n);
}

}  // namespace internal
}  // namespace actsvc
#endif  // HWY_ONCE
