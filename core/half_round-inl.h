// The half path's rounding test, per target (core/activation_half.cc): is
// a float32 result y, within K float32 ULPs of the true value, near enough a
// rounding boundary of the half type that y and the true value might round
// differently? Untrusted and Suspect answer per lane (the full test), the
// MayRoundAway brackets per pair of vectors (one hardware conversion or
// integer window each, run first; Suspect only where they fire). Included by
// core/activation_half.cc, which compiles kernels once per instruction set
// (hwy/foreach_target.h).
//
// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_HALF_ROUND_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_HALF_ROUND_INL_H_
#undef ACTSVC_CORE_HALF_ROUND_INL_H_
#else
#define ACTSVC_CORE_HALF_ROUND_INL_H_
#endif

#include <stddef.h>
#include <stdint.h>

#include <limits>
#include <type_traits>

#include "core/activation_half.h"
#include "core/half.h"
#include "core/half_convert-inl.h"
#include "hwy/highway.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using internal::HalfParams;

// The lanes of y, a float32 result within K ULPs of the true value, whose
// rounding to H might differ from the true value's: the bits that rounding
// drops lie within K of 1000...0 (a midpoint, or the overflow threshold,
// in y's binade: its ULP is constant there). float16 results below 2^-14
// sit on the subnormal grid of step 2^-24: |y| + 2^-14 has that step as
// the weight of its 14th bit, so the same test on its dropped bits finds
// them (the addition's rounding, at most half of its last bit, and K ULPs
// of y below 2^-14 are within one more of those bits). bfloat16 flags every
// nonzero result below float32's smallest normal, where the float32
// kernels only promise an absolute error of that size. inf is never
// flagged, nor NaN unless its payload looks like a midpoint (it is then
// recomputed: NaN again). Branch-free: one vector's test costs the same
// whatever its values.
template <typename H, class D>
HWY_INLINE hn::Mask<D> Untrusted(D df, hn::Vec<D> y, int32_t k) {
  const hn::RebindToSigned<D> di;
  using VI = hn::Vec<decltype(di)>;
  constexpr bool kF16 = std::is_same_v<H, Float16>;
  constexpr int32_t kDropped = kF16 ? 0x1FFF : 0xFFFF;
  const hn::Vec<D> a = hn::Abs(y);
  VI ai = hn::BitCast(di, a);
  VI tol = hn::Set(di, k + 1);
  if constexpr (kF16) {
    constexpr float kMinNormal = 0x1p-14f;
    const auto normal = hn::Ge(a, hn::Set(df, kMinNormal));
    const VI shifted = hn::BitCast(di, hn::Add(a, hn::Set(df, kMinNormal)));
    ai = hn::IfThenElse(hn::RebindMask(di, normal), ai, shifted);
    tol = hn::IfThenElse(hn::RebindMask(di, normal), tol, hn::Set(di, k + 2));
  }
  const VI dist = hn::Abs(hn::Sub(hn::And(ai, hn::Set(di, kDropped)),
                                  hn::Set(di, (kDropped + 1) / 2)));
  const auto near = hn::Lt(dist, tol);
  if constexpr (kF16) {
    return hn::RebindMask(df, near);
  } else {
    const VI raw = hn::BitCast(di, a);
    const auto normal = hn::Gt(raw, hn::Set(di, 0x007FFFFF));
    const auto tiny = hn::AndNot(normal, hn::Gt(raw, hn::Zero(di)));
    return hn::RebindMask(df, hn::Or(hn::And(near, normal), tiny));
  }
}

// |y|'s bits, as int32.
template <class D, class V = hn::Vec<D>>
HWY_INLINE hn::Vec<hn::RebindToSigned<D>> MagnitudeBits(D /*df*/, V y) {
  const hn::RebindToSigned<D> di;
  return hn::And(hn::BitCast(di, y), hn::Set(di, 0x7FFFFFFF));
}

// The values `step` float32 steps below (clamped at 0) and above the
// magnitude whose bits are a: the bracket the MayRoundAway tests round.
template <class D, class V = hn::Vec<D>,
          class VI = hn::Vec<hn::RebindToSigned<D>>>
HWY_INLINE void Bracket(D df, VI a, VI step, V* lo, V* hi) {
  *lo = hn::BitCast(
      df, hn::Max(hn::Sub(a, step), hn::Zero(hn::RebindToSigned<D>())));
  *hi = hn::BitCast(df, hn::Add(a, step));
}

#if ACTSVC_F16C
// Whether a lane of y0 or y1, float32 results within k ULPs of the true
// values, may round to float16 otherwise than its true value: the values k
// + 1 float32 steps below and above |y| (its bits minus and plus k + 1,
// below clamped at 0) round to different float16 numbers, a rounding
// boundary (a midpoint, subnormal or normal, or the overflow threshold)
// lying between them. F16C rounds both, and the test is one comparison of
// 16-bit lanes per pair, without Suspect's mask operations. It fires too
// for +-inf and for the NaN that inf * 0 gives (the bits above them are
// NaN, or another NaN payload), whose lanes Suspect then sorts out; a NaN
// from a NaN input may not fire it, and its result is NaN either way. For
// normal results it fires wherever Untrusted flags a lane; for
// float16 subnormal results it is exact where Untrusted's test is wider,
// and Suspect then flags a superset of the lanes that need it.
template <class D, class V = hn::Vec<D>>
HWY_INLINE bool MayRoundAwayF16(D df, V y0, V y1, int32_t k) {
  const hn::RebindToSigned<D> di;
  const hn::Rebind<hwy::float16_t, D> df16;
  const hn::RebindToUnsigned<decltype(df16)> du16;
  const auto step = hn::Set(di, k + 1);
  const auto differ = [&](V y) {
    V lo, hi;
    Bracket(df, MagnitudeBits(df, y), step, &lo, &hi);
    return hn::Xor(hn::BitCast(du16, hn::DemoteTo(df16, lo)),
                   hn::BitCast(du16, hn::DemoteTo(df16, hi)));
  };
  const auto both = hn::Or(differ(y0), differ(y1));
  return !hn::AllFalse(du16, hn::Ne(both, hn::Zero(du16)));
}
#endif

// The loop-invariant vectors of the test below.
template <class D>
struct RoundParams {
  hn::Vec<D> zero_lo;  // bfloat16: a zero at x <= zero_lo is suspect
  hn::Vec<D> zero_hi;  // ... and at x >= zero_hi (inf: never)
  int32_t ulp_budget;
  bool exact_zero_f1;
  RoundParams(D df, const HalfParams& p)
      : zero_lo(hn::Set(df, -p.zero_tail_x)),
        zero_hi(hn::Set(df, p.zero_tail_negative_only
                                ? std::numeric_limits<float>::infinity()
                                : p.zero_tail_x)),
        ulp_budget(p.ulp_budget),
        exact_zero_f1(p.exact_zero_f1) {}
};

// The float32 result y of the lanes at x (kVjp: g f', g the upstream
// gradient) as it will be rounded to H; returns the lanes whose rounding
// cannot be trusted.
// Branch-free, so that the loop below branches once per pair of vectors,
// on rare lanes only.
template <typename H, bool kVjp, class D, class V = hn::Vec<D>>
HWY_INLINE hn::Mask<D> Suspect(D df, const RoundParams<D>& rp, V x, V g, V y) {
  auto extra = hn::FirstN(df, 0);
  if constexpr (kVjp) {
    // y = g f' with f' in float32 (F1Values): NaN where g is not is f'
    // marked for the float64 recomputation (bfloat16, f' below float32's
    // normal range) or inf * 0 where f' underflowed (the answer may be
    // +-inf).
    if (!rp.exact_zero_f1) {
      const auto lost = hn::And(hn::IsNaN(y), hn::Not(hn::IsNaN(g)));
      extra = hn::And(lost, hn::IsFinite(x));
    }
  } else if constexpr (std::is_same_v<H, BFloat16>) {
    // A zero far out in a tail may be a float32 underflow of a value
    // bfloat16 holds (x infinite: the limit, exact).
    const auto tail = hn::Or(hn::Le(x, rp.zero_lo), hn::Ge(x, rp.zero_hi));
    extra = hn::And(hn::Eq(y, hn::Zero(df)), hn::And(tail, hn::IsFinite(x)));
  }
  return hn::Or(Untrusted<H>(df, y, rp.ulp_budget), extra);
}

// The bracket of bfloat16, per pair of vectors: y is within k float32
// ULPs of the true value, and bfloat16's grid is float32's upper 16 bits,
// subnormals and the overflow threshold included, so a rounding boundary
// lies within k + 1 steps of |y| exactly where its lower 16 bits lie within
// k + 1 of 0x8000. Also: a nonzero |y| below float32's smallest normal
// (the float32 kernels' absolute error there; vcvtne2ps2bf16 takes it as
// 0), and NaN (the VJP table holds NaN where f' is below float32's normal
// range: BuildF1), whose lanes Suspect sorts out. It fires wherever Suspect
// flags a lane where Suspect's extra test is one of these: the VJPs, and
// leaky_relu's f (no zero tail). One integer window, whatever rounds
// afterwards (vcvtne2ps2bf16 or the integer rounding).
template <class D, class V = hn::Vec<D>>
HWY_INLINE bool MayRoundAwayBF16Window(D df, V y0, V y1, int32_t k) {
  const hn::RebindToUnsigned<D> du;
  const auto near = [&](V y) {
    const auto a = hn::BitCast(du, MagnitudeBits(df, y));
    const auto dropped =
        hn::And(hn::Add(a, hn::Set(du, uint32_t(k + 1))), hn::Set(du, 0xFFFFu));
    const auto tiny =
        hn::Lt(hn::Sub(a, hn::Set(du, 1u)), hn::Set(du, 0x7FFFFFu));
    // dropped in [0x8000, 0x8000 + 2k + 2], or tiny.
    const auto mid = hn::Lt(hn::Sub(dropped, hn::Set(du, 0x8000u)),
                            hn::Set(du, uint32_t(2 * k + 3)));
    return hn::Or(hn::RebindMask(df, hn::Or(mid, tiny)), hn::IsNaN(y));
  };
  return !hn::AllFalse(df, hn::Or(near(y0), near(y1)));
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
