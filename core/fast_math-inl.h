// Per-target float32 building blocks of the elementwise kernels
// (core/activation-inl.h): e^t and expm1(t) for t <= 0 from one range
// reduction, and 1/s and a/b without the (slow) vector division where the
// target has a 14-bit reciprocal estimate. float64 lanes use Highway's Exp,
// Expm1 and Div unchanged, except gelu and gelu_tanh, whose tails need
// e^(hi + lo) of an argument carried as a pair: ExpLo64. Also the exact
// products (TwoProdLo) and residuals both kernels' pairs are built from.
//
// Each helper states its contract as hwy/contrib/math/math-inl.h does: the
// valid lane types, the valid range of the argument and the max error
// (float32 ULP), which tests/core/fast_math_test.cc asserts on every
// target.

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_FAST_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_FAST_MATH_INL_H_
#undef ACTSVC_CORE_FAST_MATH_INL_H_
#else
#define ACTSVC_CORE_FAST_MATH_INL_H_
#endif

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// acc x^n + c_1 x^(n-1) + ... + c_n by Horner's rule, one MulAdd per
// coefficient (highest degree first): Horner(d, x, Set(d, c_0), c_1, ...).
template <class D, class V>
HWY_INLINE V Horner(D, V, V acc) {
  return acc;
}
template <class D, class V, typename C, typename... Rest>
HWY_INLINE V Horner(D d, V x, V acc, C c, Rest... rest) {
  using T = hn::TFromD<D>;
  return Horner(d, x, hn::MulAdd(acc, x, hn::Set(d, static_cast<T>(c))),
                rest...);
}

// The rounding error of the product a*b = p (exactly a*b - p for the
// operands used here: no overflow or underflow). FMA where the target has
// it; otherwise Dekker's product with Veltkamp's splitting.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V TwoProdLo(D d, V a, V b, V p) {
#if HWY_NATIVE_FMA
  (void)d;
  return hn::MulSub(a, b, p);
#else
  using T = hn::TFromD<D>;
  // 2^12 + 1 (float), 2^27 + 1 (double).
  const V split = hn::Set(d, T(sizeof(T) == 4 ? 4097.0 : 134217729.0));
  const V ca = hn::Mul(a, split);
  const V ah = hn::Sub(ca, hn::Sub(ca, a));
  const V al = hn::Sub(a, ah);
  const V cb = hn::Mul(b, split);
  const V bh = hn::Sub(cb, hn::Sub(cb, b));
  const V bl = hn::Sub(b, bh);
  V err = hn::Sub(hn::Mul(ah, bh), p);
  err = hn::Add(err, hn::Mul(ah, bl));
  err = hn::Add(err, hn::Mul(al, bh));
  return hn::Add(err, hn::Mul(al, bl));
#endif
}

// num - q den exactly, for q close to num/den (the product's error from
// TwoProdLo; num - q den rounded is then exact by Sterbenz's lemma).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Residual(D d, V num, V q, V den) {
#if HWY_NATIVE_FMA
  (void)d;
  return hn::NegMulAdd(q, den, num);
#else
  const V p = hn::Mul(q, den);
  return hn::Sub(hn::Sub(num, p), TwoProdLo(d, q, den, p));
#endif
}

// x86's MAXPS/MAXPD return the second operand when either is NaN, so
// hn::Max(bound, t) passes a NaN t through (the clamp below), and kernels
// whose formulas also give the +-inf limits can skip the array loop's
// NaN/inf patch. Other targets (and Highway's C++ emulation) make no such
// promise.
#undef ACTSVC_MAX_KEEPS_NAN
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
#define ACTSVC_MAX_KEEPS_NAN 1
#else
#define ACTSVC_MAX_KEEPS_NAN 0
#endif

// ExpNeg: e^t and expm1(t) for t <= 0, sharing one range reduction.
//
// float32 lanes. Valid range: t <= 0; NaN gives NaN where
// ACTSVC_MAX_KEEPS_NAN, else an unspecified number (the array loops patch
// NaN in). kSubnormal = true: t < -104 is taken as
// -104 (e^t rounds to 0 there, expm1(t) to -1) and subnormal e^t keep their
// full (absolute) accuracy (within 1 denorm_min), as hn::Exp's: the VJP g
// sigma'(x) can be normal while sigma'(x) is not. kSubnormal = false (one
// multiplication less, for kernels whose results are subnormal or covered by a
// Tail band wherever e^t is): t < -88 is taken as -88 and e^t is 0 wherever 2^n
// is below 2^-126 (t < -87.7 or so), expm1(t) = -1. Max error: Exp 0.98 ULP
// where e^t >= 2^-126, Expm1 0.88 ULP. Form (the Cody-Waite reduction and
// exponent insertion of XNNPACK's f32 exp/expm1 kernels and oneDNN's jit exp,
// reimplemented here; the ln2 split is math-inl.h's):
//   n = round(t log2 e) by the magic-number addition 0x1.80017Ep23, whose
//   low bits also carry the exponent bias 127 + 64, so s64 = 2^(n + 64) is
//   the sum's bits shifted left by 23 (bias 127 and s = 2^n directly
//   without kSubnormal; n = -127 gives s = +0); r = t - n ln2 in two steps
//   (the first exact); p = r + r^2 Q(r) ~ e^r - 1 on |r| <= ln2/2 with Q of
//   degree 5 fitted here (Lawson-weighted least squares; relative error of
//   1 + p 0.011 ULP, of p 0.036 ULP); e^t = (s64 + s64 p) 2^-64 and
//   expm1(t) = (s - 1) + s p with s = 2^n, one FMA each (s - 1 is exact
//   for n >= -24). Without FMA (SSE4 and older) the reduction stays exact
//   and each MulAdd rounds twice.
// float64 lanes: hn::Exp and hn::Expm1 (math-inl.h's contracts).
template <class D, bool kSubnormal = true, class V = hn::Vec<D>>
struct ExpNeg {
  using T = hn::TFromD<D>;
  V s, p;  // float32: e^t = s (1 + p), times 2^-64 with kSubnormal
  V t;     // float64: the argument
  HWY_INLINE ExpNeg(D d, V arg) {
    if constexpr (sizeof(T) == 4) {
      const hn::RebindToSigned<D> di;
      // Max(bound, t): see ACTSVC_MAX_KEEPS_NAN.
      const V x = hn::Max(hn::Set(d, kSubnormal ? -104.0f : -88.0f), arg);
      // 1.5 * 2^23 + 127 (+ 64): s = 2^n (2^(n + 64), normal for n >= -190).
      const V magic = hn::Set(d, kSubnormal ? 0x1.80017Ep23f : 0x1.8000FEp23f);
      const V k = hn::MulAdd(x, hn::Set(d, 1.44269504088896341f), magic);
      s = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, k)));
      const V n = hn::Sub(k, magic);
      // ln2 = 0x1.62E4p-1 + 1.4286068e-6: n times the first part (16 bits)
      // is exact and so is the subtraction (Sterbenz), with or without FMA.
      V r = hn::MulAdd(n, hn::Set(d, -0x1.62E400p-1f), x);
      r = hn::MulAdd(n, hn::Set(d, -1.428606765330187045e-6f), r);
      V q = hn::Set(d, 0x1.a032c0p-13f);
      q = hn::MulAdd(q, r, hn::Set(d, 0x1.6d721ap-10f));
      q = hn::MulAdd(q, r, hn::Set(d, 0x1.11118ap-7f));
      q = hn::MulAdd(q, r, hn::Set(d, 0x1.5554b2p-5f));
      q = hn::MulAdd(q, r, hn::Set(d, 0x1.555554p-3f));
      q = hn::MulAdd(q, r, hn::Set(d, 0.5f));
      p = hn::MulAdd(hn::Mul(r, r), q, r);
    } else {
      t = arg;
    }
  }
  HWY_INLINE V Exp(D d) const {
    if constexpr (sizeof(T) == 4) {
      if constexpr (!kSubnormal) return hn::MulAdd(s, p, s);
      // One rounding where e^t is normal; where it is subnormal, the exact
      // scaling by 2^-64 rounds a second time (to the subnormal's spacing,
      // 2^24 times coarser).
      return hn::Mul(hn::MulAdd(s, p, s), hn::Set(d, 0x1p-64f));
    } else {
      return hn::Exp(d, t);
    }
  }
  HWY_INLINE V Expm1(D d) const {
    if constexpr (sizeof(T) == 4) {
      // 2^n exactly for n >= -126; below, expm1(t) = -1 anyway.
      const V s1 = kSubnormal ? hn::Mul(s, hn::Set(d, 0x1p-64f)) : s;
      return hn::MulAdd(s1, p, hn::Sub(s1, hn::Set(d, 1.0f)));
    } else {
      return hn::Expm1(d, t);
    }
  }
};

// Whether this target has a reciprocal estimate good enough for one Newton
// step to reach float32 precision (AVX-512's vrcp14ps, relative error
// < 2^-14). Elsewhere the helpers below divide.
#undef ACTSVC_HAVE_RCP14
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define ACTSVC_HAVE_RCP14 1
#else
#define ACTSVC_HAVE_RCP14 0
#endif

// 1/s for normal s > 0 (the kernels pass 1 <= s <= 4).
// float32 with ACTSVC_HAVE_RCP14: r0 = rcp14(s), one Newton step
// r = r0 + r0 (1 - s r0): relative error < 2^-28 before the last rounding.
// Otherwise 1/s by division.
// Max error: 0.5625 ULP (0.5 with division).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Reciprocal(D d, V s) {
  using T = hn::TFromD<D>;
  const V one = hn::Set(d, T(1));
#if ACTSVC_HAVE_RCP14
  if constexpr (sizeof(T) == 4) {
    const V r0 = hn::ApproximateReciprocal(s);
    return hn::MulAdd(r0, hn::NegMulAdd(s, r0, one), r0);
  }
#endif
  return hn::Div(one, s);
}

// a/b for normal b > 0 (the kernels pass 1 <= b <= 4) and |a| <= 4.
// float32 with ACTSVC_HAVE_RCP14: q0 = a Reciprocal(b), then one correction
// q = q0 + (a - q0 b)/b (the residual is exact by FMA): 0.5 ULP plus
// about 2^-27 relative. Otherwise a/b by division.
// Max error: 0.625 ULP (0.5 with division).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Divide(D d, V a, V b) {
#if ACTSVC_HAVE_RCP14
  if constexpr (sizeof(hn::TFromD<D>) == 4) {
    const V r = Reciprocal(d, b);
    const V q0 = hn::Mul(a, r);
    return hn::MulAdd(hn::NegMulAdd(q0, b, a), r, q0);
  }
#endif
  (void)d;
  return hn::Div(a, b);
}

// ExpLo64: e^(hi + lo) * 2^64, float64 lanes, the float64 counterpart of
// core/gelu-inl.h's ExpLo: the argument's rounding error lo goes into the
// reduced argument, and the factor 2^64 keeps results down to e^-752 normal
// (a caller that multiplies e^-|v| by a large factor keeps its digits where
// e^-|v| alone would be subnormal; it multiplies its final result by
// kExpLo64Scale, exact unless that result is subnormal).
// Valid lane types: float64. Valid range: hi <= 0 (0 below -750, where
// callers' results are below the smallest normal), |lo| <= 2^-40 |hi| or so.
// Max error: about 0.5 ULP (the fit of E below: 2.8e-18 relative; r and its
// rounding error rl as a pair, 1 + r as a pair, one final rounding).
// Form: n = round(hi log2 e) by the 1.5 * 2^52 shifter, whose low bits also
// carry the bias 1023 + 64, so 2^(n + 64) is the sum's bits shifted left by
// 52; r = hi - n ln2 + lo with ln2 = 0x1.62E4p-1 + 1.4286068203094173e-6
// (n times the first part is exact, and so is its subtraction, with or
// without FMA); e^r = 1 + r + r^2 E(r), E of degree 10 fitted by
// scripts/fit_gelu_f64.py.
constexpr double kExpLo64Scale = 0x1p-64;
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpLo64(D d, V hi, V lo) {
  static_assert(sizeof(hn::TFromD<D>) == 8, "float64 only");
  const hn::RebindToSigned<D> di;
  const V lowest = hn::Set(d, -750.0);
  const V x = hn::Max(lowest, hi);
  const V magic = hn::Set(d, 0x1.8p52 + 1087);
  const V t = hn::MulAdd(x, hn::Set(d, 1.4426950408889634), magic);
  const V s = hn::BitCast(d, hn::ShiftLeft<52>(hn::BitCast(di, t)));
  const V n = hn::Sub(t, magic);
  const V r0 = hn::MulAdd(n, hn::Set(d, -0x1.62E4p-1), x);  // exact
  const V c = hn::MulAdd(n, hn::Set(d, -1.4286068203094173e-06), lo);
  // r + rl = r0 + c (Fast2Sum; where |c| > |r0|, r is below 3e-3 and rl's
  // own error is below 2^-62).
  const V r = hn::Add(r0, c);
  const V rl = hn::Add(hn::Sub(r0, r), c);
  V q = hn::Set(d, 2.0885930053864267e-09);
  q = hn::MulAdd(q, r, hn::Set(d, 2.5105177392475458e-08));
  q = hn::MulAdd(q, r, hn::Set(d, 2.7557359973942128e-07));
  q = hn::MulAdd(q, r, hn::Set(d, 2.7557255507250965e-06));
  q = hn::MulAdd(q, r, hn::Set(d, 2.480158723484882e-05));
  q = hn::MulAdd(q, r, hn::Set(d, 0.00019841269874724211));
  q = hn::MulAdd(q, r, hn::Set(d, 0.0013888888888922634));
  q = hn::MulAdd(q, r, hn::Set(d, 0.0083333333333261671));
  q = hn::MulAdd(q, r, hn::Set(d, 0.041666666666666609));
  q = hn::MulAdd(q, r, hn::Set(d, 0.16666666666666671));
  q = hn::MulAdd(q, r, hn::Set(d, 0.5));
  // e^(r + rl) = 1 + r + (r^2 E(r) + rl (1 + r)), 1 + r as a pair.
  q = hn::MulAdd(hn::Mul(r, r), q, hn::MulAdd(rl, r, rl));
  const V one = hn::Set(d, 1.0);
  const V s1 = hn::Add(one, r);
  const V s1l = hn::Add(hn::Sub(one, s1), r);
  return hn::IfThenZeroElse(hn::Lt(hi, lowest),
                            hn::Mul(hn::Add(s1, hn::Add(s1l, q)), s));
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
