// Per-target SIMD kernels of gelu and gelu_tanh (SPEC.md §1), used by
// core/activation.cc through the array loops of core/activation-inl.h.
//
// Valid lane types: float32 (GeluK, GeluDoubleK, GeluTanhDoubleK), float32
// and float64 (GeluTanhK). Valid range: every finite x.
// Max error: as every elementwise kernel (core/activation-inl.h): f, f' and
// the VJP 4 ULP, f'' 16 ULP; gelu' keeps 4 ULP also within +-0.5 of its
// root (tests/core/gelu_simd_test.cc), where SPEC.md §4 would allow an
// absolute bound. Maxima measured: BENCHMARKS.md, "Accuracy of the
// kernels".
// How:
//  - float32 on targets with FMA (AVX2, AVX3, NEON, SVE): float32 lanes.
//    gelu: Phi(-|x|) = e^(-x^2/2) erfcx(|x|/sqrt2)/2, with x^2 an exact
//    float pair (FMA) so that the exponential has no argument error, and
//    ErfcxHalf below; f' near its root -0.7518 from a local expansion.
//    gelu_tanh: v = 2u as an exact-to-2^-48 float pair, e^-|v| from ExpLo
//    with the low part inside the reduced argument.
//    The VJP g f' is formed from f' as an unrounded pair hi + lo
//    (EvalVjp, VjpFromPair): f' rounded first, at up to 4 ULP, would leave
//    no room in the budget for the product's rounding.
//  - float32 on AVX-512 (16 lanes): gelu f, and the VJP and f' of gelu and
//    gelu_tanh, from 32 table-driven polynomial pieces of width 1/4
//    (GeluPieces, GeluPrimePieces, GeluTanhPrimePieces; coefficients picked
//    per lane by vpermt2ps) where x lies in their range, which holds most
//    of a network's pre-activations; the lanes below it (the tail) by the
//    formulas above, gathered densely by the array loop's MapSplit
//    (core/activation-inl.h), gelu f's with erfcx/2 from GeluTailPieces.
//    Which formula a lane gets depends on its x only.
//  - float32 on targets without FMA (SSSE3, SSE4, SCALAR): float64 lanes
//    (GeluDoubleK, GeluTanhDoubleK), as exact products and one-rounding
//    polynomials are not available there; gelu' near its root from the
//    same expansion.
// Sources of the techniques (no code copied): Cody-Waite reduction and the
// split ln 2 from hwy/contrib/math/math-inl.h; the 1.5 * 2^23 rounding
// shifter of XNNPACK's exp microkernels ("magic bias"); Dekker's exact
// product and Veltkamp's split; erfcx ~ 1/(sqrt(pi) (t + 1/(2t + ...))),
// the Laplace continued fraction (Abramowitz & Stegun 7.1.14), for the
// shape of ErfcxHalf. Coefficients: scripts/fit_gelu_coefficients.py.
//  - float64: gelu_tanh is GeluTanhK below in float64 lanes (float64 pairs,
//    ExpLo64), on every target; gelu is GeluF64K in core/gelu_f64-inl.h.

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_GELU_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_GELU_INL_H_
#undef ACTSVC_CORE_GELU_INL_H_
#else
#define ACTSVC_CORE_GELU_INL_H_
#endif

#include "core/activation-inl.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------
// Float32 building blocks. The polynomial coefficients come from
// scripts/fit_gelu_coefficients.py (relative least squares at Chebyshev
// nodes against scipy's float64 erfcx/ndtr/expm1, rounded to float32 from
// the highest order down with refits; each constant term is a float pair
// hi + lo, its lo added inside the polynomial).

// 1/den for the division helpers below. float32: the reciprocal estimate
// (rcp14 on AVX3, relative error 2^-14; rcpps elsewhere, with one Newton
// step to ~2^-24), without a division instruction (a 512-bit vdivps
// occupies the divider for ~10 cycles, as long as the rest of a kernel).
// float64: a division (0.5 ULP).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V RecipNR(D d, V den) {
  using T = hn::TFromD<D>;
  if constexpr (sizeof(T) == 8) {
    return hn::Div(hn::Set(d, T(1)), den);
  } else {
    V r = hn::ApproximateReciprocal(den);
#if !(HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3)
    r = hn::MulAdd(r, hn::NegMulAdd(r, den, hn::Set(d, T(1))), r);
#else
    (void)d;
#endif
    return r;
  }
}

// num / den within about 0.5 ULP: q = num RecipNR(den), then one
// correction of q by its exact residual num - q den (with rcp14, the
// correction alone leaves ~2^-28). For the denominators here, all in
// [1, 27].
template <class D, class V = hn::Vec<D>>
HWY_INLINE V DivNR(D d, V num, V den) {
  const V r = RecipNR(d, den);
  const V q = hn::Mul(num, r);
  return hn::MulAdd(r, Residual(d, num, q, den), q);
}

// (nh + nl) / den for a numerator given as a pair: nl enters the residual
// step, so the numerator's own rounding costs nothing.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V DivPairNR(D d, V nh, V nl, V den) {
  const V r = RecipNR(d, den);
  const V q = hn::Mul(nh, r);
  return hn::MulAdd(r, hn::Add(Residual(d, nh, q, den), nl), q);
}

// ExpLo: e^(hi + lo) * 2^64, float32, for hi <= 0 and |lo| <= ulp(hi)-ish:
// the argument's rounding error lo goes into the reduced argument, so it
// costs nothing (the alternative, e^hi (1 + lo), rounds once more).
// The factor 2^64 keeps results down to e^-131 normal, so that a caller
// that multiplies e^-|v| by a large factor (x e^-|v| in gelu_tanh) keeps
// its digits where e^-|v| alone would be subnormal; callers multiply their
// final result by kExpLoScale (exact unless that result is subnormal).
// Below e^-131, 0.
// Valid lane types: float32. Valid range: hi in [-FLT_MAX, 0].
// Max error: 1 ULP while the result is normal (Cody-Waite reduction with
// the split ln 2 of hwy/contrib/math/math-inl.h, r = hi - n ln2 + lo
// rounded once, e^r = 1 + (r + r^2 Q(r)) with Q of degree 4, fit error
// 1.5e-8 relative to expm1).
// With kScaled = false: e^(hi + lo) itself, for hi in [-87, 0] only (the
// result normal; no flush to 0, one operation less).
constexpr float kExpLoScale = 5.42101086242752217e-20f;  // 2^-64
template <bool kScaled = true, class D, class V = hn::Vec<D>>
HWY_INLINE V ExpLo32(D d, V hi, V lo) {
  static_assert(sizeof(hn::TFromD<D>) == 4, "float32 only");
  const hn::RebindToSigned<D> di;
  // n = round(hi / ln 2) by the 1.5 * 2^23 shifter: its low mantissa bits
  // are then n + const, as an integer.
  const V shifter = hn::Set(d, 12582912.0f);
  const V t = hn::MulAdd(hi, hn::Set(d, 1.44269504088896341f), shifter);
  const V n = hn::Sub(t, shifter);
  V r = hn::MulAdd(n, hn::Set(d, -0.693145751953125f), hi);  // exact
  r = hn::MulAdd(n, hn::Set(d, -1.428606765330187045e-6f), r);
  r = hn::Add(r, lo);
  V q = hn::Set(d, 1.385755371e-03f);
  q = hn::MulAdd(q, r, hn::Set(d, 8.367342874e-03f));
  q = hn::MulAdd(q, r, hn::Set(d, 4.166763276e-02f));
  q = hn::MulAdd(q, r, hn::Set(d, 1.666653752e-01f));
  // Q's lo (-4e-9) is left out: Q is multiplied by r^2 <= 0.12.
  q = hn::MulAdd(q, r, hn::Set(d, 4.999999702e-01f));
  const V em1 = hn::MulAdd(hn::Mul(r, r), q, r);
  // 2^(n + 64) as bits (the shifter's bits are 0x4B400000 + n); a biased
  // exponent <= 0 gives +0.
  const int kBias = kScaled ? 127 + 64 : 127;
  auto biased = hn::Sub(hn::BitCast(di, t), hn::Set(di, 0x4B400000 - kBias));
  if constexpr (kScaled) biased = hn::Max(biased, hn::Zero(di));
  const V s = hn::BitCast(d, hn::ShiftLeft<23>(biased));
  return hn::MulAdd(em1, s, s);
}

// float32 lanes: ExpLo32 above; float64 lanes: ExpLo64
// (core/fast_math-inl.h), the same contract with e^-752 for e^-131.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpLo(D d, V hi, V lo) {
  if constexpr (sizeof(hn::TFromD<D>) == 8) {
    return ExpLo64(d, hi, lo);
  } else {
    return ExpLo32(d, hi, lo);
  }
}

// The limits of gelu and gelu_tanh at +-inf (f -> x or 0, f' -> 1 or 0,
// f'' -> 0, as in core/reference.h) and NaN, patched into y only when the
// vector holds a non-finite lane (the formulas form inf*0 there). A test and
// a branch that is almost never taken, instead of the array loop's
// unconditional blends (kFixup).
template <int kOrder, class D, class V = hn::Vec<D>>
HWY_INLINE V FixNonFinite(D d, V x, V y) {
  if (HWY_LIKELY(hn::AllFalse(d, hn::Not(hn::IsFinite(x))))) return y;
  using T = hn::TFromD<D>;
  const V pos = kOrder == 0 ? x : hn::Set(d, T(kOrder == 1 ? 1 : 0));
  const V lim = hn::IfThenElseZero(hn::Gt(x, hn::Zero(d)), pos);
  y = hn::IfThenElse(hn::IsInf(x), lim, y);
  return hn::IfThenElse(hn::IsNaN(x), x, y);
}

// g f' from f' = (hi + lo) scale (lo the rounding error of hi, or 0; scale
// 1 or 2^-64): (g hi + g lo) scale with one rounding before the exact
// scaling, instead of g times a rounded f' (two roundings: f' at 3 ULP
// became 4.04 ULP in g f'). hi and lo unscaled keep g lo normal (a
// subnormal result costs a microcode assist on x86). Lanes where x or the
// result is not finite (NaN or +-inf in x or g, inf * 0, g hi overflowing
// for |g| > 2^60) get g times the rounded, patched f', as the array loop's
// VJP would.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VjpFromPair(D d, V x, V g, V hi, V lo, V scale) {
  const V y = hn::Mul(hn::MulAdd(g, hi, hn::Mul(g, lo)), scale);
  // x + y is finite iff both are (or falsely not, where it overflows).
  if (HWY_LIKELY(hn::AllTrue(d, hn::IsFinite(hn::Add(x, y))))) return y;
  const auto ok = hn::And(hn::IsFinite(x), hn::IsFinite(y));
  const V f1 = FixNonFinite<1>(d, x, hn::Mul(hn::Add(hi, lo), scale));
  return hn::IfThenElse(ok, y, hn::Mul(g, f1));
}

// The shape GeluK and GeluTanhK share: Op::EvalFinite<kOrder, kWantLo>(d, x,
// lo, scale) computes f, f' or f'' of finite lanes (with kWantLo, f' as
// (result + lo) scale); NaN and +-inf are patched in by Eval
// (FixNonFinite), not the array loop, and the VJP comes from f' = hi + lo
// (EvalVjp, VjpFromPair).
template <class Op>
struct FromFinite : NoTail {
  static constexpr bool kFixup = false;
  static constexpr bool kVjpPair = true;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    return FixNonFinite<kOrder>(d, x, op().template EvalFinite<kOrder>(d, x));
  }
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalVjp(D d, V x, V g) const {
    V lo, scale;
    const V hi = op().template EvalFinite<1, true>(d, x, &lo, &scale);
    return VjpFromPair(d, x, g, hi, lo, scale);
  }

 private:
  HWY_INLINE const Op& op() const { return static_cast<const Op&>(*this); }
};

// (nh + nl) / den as q + lo, unrounded: DivPairNR without its last
// rounding (q = nh r, lo = r (nh + nl - q den)), for VjpFromPair.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V DivPairNRSplit(D d, V nh, V nl, V den, V* lo) {
  const V r = RecipNR(d, den);
  const V q = hn::Mul(nh, r);
  *lo = hn::Mul(r, hn::Add(Residual(d, nh, q, den), nl));
  return q;
}

// ErfcxHalf: h(a) = erfcx(a/sqrt2)/2, so that Phi(-a) = e^(-a^2/2) h(a)
// and erfc(t) = 2 e^(-t^2) h(t sqrt2) (the vectorized erfc of issue 3:
// the GELU tail needs erfc, not 1 + erf).
// Valid lane types: float32. Valid range: a in [0, 14.5] (beyond, h
// extrapolates smoothly, positive and decreasing, and only meets
// e^(-a^2/2) = 0).
// Max error: 2.9 ULP on [0, 14.5] (1.5 * 2^-24 relative).
// Form: h = k / (a + g(a)), k = 1/sqrt(2 pi), after the continued fraction
// of erfcx; g = P/Q (degrees 4 and 5, g(0) = 2k, g ~ 1/a) gives
// h = k Q / (a Q + P), with a rational fit error of 5.7e-9. The same
// rounded Q appears above and below, so the rounding errors of Q and P
// reach h only with the weight g/(a + g) (< 1/a^2 for large a): unlike
// P/Q for h itself, whose Horner errors add up to 4.4 ULP.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ErfcxHalf(D d, V a) {
  V q = hn::Set(d, 2.500386210e-03f);
  q = hn::MulAdd(q, a, hn::Set(d, 2.989564277e-02f));
  q = hn::MulAdd(q, a, hn::Set(d, 1.710109562e-01f));
  q = hn::MulAdd(q, a, hn::Set(d, 5.664073229e-01f));
  q = hn::MulAdd(q, a, hn::Set(d, 1.086068273e+00f));
  q = hn::MulAdd(q, a, hn::Set(d, 1.0f));
  V p = hn::Set(d, 2.500630682e-03f);
  p = hn::MulAdd(p, a, hn::Set(d, 2.988334745e-02f));
  p = hn::MulAdd(p, a, hn::Set(d, 1.662793159e-01f));
  p = hn::MulAdd(p, a, hn::Set(d, 5.031768084e-01f));
  // P(0)'s low part (-1.8e-8) is left out: P is only used for a > 1/2
  // (see GeluK), where its weight in h is below 0.6.
  p = hn::MulAdd(p, a, hn::Set(d, 7.978845835e-01f));
  // num = k Q as the exact pair nh + nl: DivNR's residual step takes nl
  // in, so that the numerator costs no rounding.
  const V k = hn::Set(d, 0.398942280401432677940f);
  const V nh = hn::Mul(q, k);
  const V nl = TwoProdLo(d, q, k, nh);
  return DivPairNR(d, nh, nl, hn::MulAdd(a, q, p));
}

// gelu'(x) for x in [-1.5, 0.5] as (x - z) G(x - z), z = -0.7518 its root,
// G of degree 13 (fit 5.5e-9 relative): relative accuracy up to the root,
// where Phi(x) + x phi(x) cancels. float32 or float64 lanes (the float32 fit
// is then the limit, 0.1 float32 ULP).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V GeluPrimeNearRoot(D d, V x) {
  using T = hn::TFromD<D>;
  V y;
  if constexpr (sizeof(T) == 4) {
    // z = zh + zl; x - zh is exact for x in [-1.5, -0.376].
    y = hn::Sub(hn::Sub(x, hn::Set(d, -7.517915368e-01f)),
                hn::Set(d, 1.211444989e-08f));
  } else {
    y = hn::Sub(x, hn::Set(d, -0.75179152469356436));
  }
  V g = hn::Set(d, T(1.593391403e-06f));
  g = hn::MulAdd(g, y, hn::Set(d, T(-7.621223176e-06f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(-1.326815891e-05f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(8.705877553e-05f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(1.877401373e-04f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(-7.457179599e-04f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(-2.240007510e-03f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(4.539566115e-03f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(1.942176186e-02f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(-1.477157790e-02f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(-1.140082404e-01f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(-1.819967292e-02f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(3.882849813e-01f)));
  g = hn::MulAdd(g, y, hn::Set(d, T(-6.092793381e-09f)));
  // y (g0 + y g1..) with y g0 unrounded inside the FMA.
  return hn::MulAdd(y, hn::Set(d, T(4.314939976e-01f)), hn::Mul(y, g));
}

// gelu f on AVX-512 (16 float32 lanes) where -2.625 <= x < 5.375:
// x Phi(x), Phi(c_k + y) ~ P_k(y) on 32 pieces of width 1/4 centred on
// c_k = (k - 10)/4, |y| <= 1/8, P_k of degree 5, its coefficients picked
// per lane by a two-table permute (vpermt2ps) from k (scripts/
// fit_gelu_pieces.py: 1.91 ULP in its float32 emulation; degree 6, 1.93). k
// comes from the 1.5 * 2^23 shifter as in ExpLo32: t = 4x + shifter + 10 holds
// round(4x)
// + 10 in its low mantissa bits, which the permute reads as the index, and
// y = x - round(4x)/4 is exact. Normal(0, 1) inputs lie in that range but
// for 0.4 percent of them; beyond 5.375, gelu(x) rounds to x.
struct GeluPieces {
  static constexpr float kLo = -2.625f, kHi = 5.375f;
  static constexpr int kDegree = 5;
  // kC[i]: the coefficient of y^(kDegree - i) of each piece.
  alignas(64) static constexpr float kC[kDegree + 1][32] = {
      {6.705423584e-04f,  -4.489948333e-04f, -2.227886813e-03f,
       -4.283994436e-03f, -5.843578838e-03f, -5.972687621e-03f,
       -4.035810474e-03f, -1.691342623e-04f, 4.547959659e-03f,
       8.430790156e-03f,  9.941119701e-03f,  8.454998955e-03f,
       4.587448668e-03f,  -1.284492319e-04f, -4.007351585e-03f,
       -5.964034237e-03f, -5.854237359e-03f, -4.306888208e-03f,
       -2.253410406e-03f, -4.692801158e-04f, 6.591943675e-04f,
       1.117839245e-03f,  1.105654286e-03f,  8.651978569e-04f,
       5.791898584e-04f,  3.427818010e-04f,  1.824833744e-04f,
       8.829908620e-05f,  3.910022133e-05f,  1.592063563e-05f,
       5.981571121e-06f,  2.079286560e-06f},
      {5.922129843e-03f,  6.114124786e-03f,  4.467873834e-03f,
       3.627369297e-04f,  -6.086410489e-03f, -1.366141625e-02f,
       -2.011713572e-02f, -2.286720462e-02f, -2.009866014e-02f,
       -1.178653073e-02f, -8.128799717e-11f, 1.178650372e-02f,
       2.009857260e-02f,  2.286707051e-02f,  2.011701278e-02f,
       1.366136968e-02f,  6.086479407e-03f,  -3.625663230e-04f,
       -4.467658699e-03f, -6.113934331e-03f, -5.922012497e-03f,
       -4.751175176e-03f, -3.326464444e-03f, -2.082409104e-03f,
       -1.181440195e-03f, -6.125716609e-04f, -2.919014369e-04f,
       -1.283429738e-04f, -5.221981337e-05f, -1.970583799e-05f,
       -6.908897376e-06f, -2.253631692e-06f},
      {1.533709932e-02f,  2.149005607e-02f,  2.699502185e-02f,
       2.965736017e-02f,  2.698251978e-02f,  1.712332852e-02f,
       3.033454448e-07f,  -2.195739746e-02f, -4.400756210e-02f,
       -6.041640788e-02f, -6.649012864e-02f, -6.041688100e-02f,
       -4.400833324e-02f, -2.195819095e-02f, -2.522291140e-07f,
       1.712315902e-02f,  2.698272653e-02f,  2.965780720e-02f,
       2.699551918e-02f,  2.149045095e-02f,  1.533732004e-02f,
       9.946122766e-03f,  5.909149069e-03f,  3.233798314e-03f,
       1.636275440e-03f,  7.676237146e-04f,  3.345701261e-04f,
       1.356962312e-04f,  5.127910117e-05f,  1.807375702e-05f,
       5.946414149e-06f,  1.827517281e-06f},
      {2.191044390e-02f,  3.570724279e-02f,  5.399114639e-02f,
       7.549282908e-02f,  9.713828564e-02f,  1.141555980e-01f,
       1.209850907e-01f,  1.129261255e-01f,  8.801591396e-02f,
       4.833324999e-02f,  -1.259567797e-11f, -4.833324999e-02f,
       -8.801591396e-02f, -1.129261181e-01f, -1.209850833e-01f,
       -1.141555980e-01f, -9.713828564e-02f, -7.549283653e-02f,
       -5.399115011e-02f, -3.570724279e-02f, -2.191044576e-02f,
       -1.250366494e-02f, -6.647757720e-03f, -3.297176911e-03f,
       -1.527169952e-03f, -6.610986893e-04f, -2.676490985e-04f,
       -1.013958754e-04f, -3.596035458e-05f, -1.194371362e-05f,
       -3.716242873e-06f, -1.083516054e-06f},
      {1.752830110e-02f, 3.173965216e-02f, 5.399096757e-02f, 8.627732098e-02f,
       1.295175999e-01f, 1.826490909e-01f, 2.419707179e-01f, 3.011374176e-01f,
       3.520653248e-01f, 3.866681159e-01f, 3.989422917e-01f, 3.866681159e-01f,
       3.520653248e-01f, 3.011374474e-01f, 2.419707179e-01f, 1.826490909e-01f,
       1.295175999e-01f, 8.627732098e-02f, 5.399096757e-02f, 3.173965216e-02f,
       1.752830110e-02f, 9.093562141e-03f, 4.431848414e-03f, 2.029048046e-03f,
       8.726827218e-04f, 3.525957000e-04f, 1.338302391e-04f, 4.771864405e-05f,
       1.598374547e-05f, 5.029509339e-06f, 1.486720407e-06f, 4.128474700e-07f},
      {6.209665444e-03f, 1.222447213e-02f, 2.275013179e-02f, 4.005915672e-02f,
       6.680720299e-02f, 1.056497768e-01f, 1.586552560e-01f, 2.266273499e-01f,
       3.085375428e-01f, 4.012936652e-01f, 5.000000000e-01f, 5.987063050e-01f,
       6.914624572e-01f, 7.733726501e-01f, 8.413447738e-01f, 8.943502307e-01f,
       9.331927896e-01f, 9.599408507e-01f, 9.772498608e-01f, 9.877755046e-01f,
       9.937903285e-01f, 9.970202446e-01f, 9.986500740e-01f, 9.994229674e-01f,
       9.997673631e-01f, 9.999116063e-01f, 9.999683499e-01f, 9.999893308e-01f,
       9.999966025e-01f, 9.999989867e-01f, 9.999997020e-01f, 9.999999404e-01f},
  };
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  static constexpr bool kEnabled = true;
  // x Phi(x) (x for x >= kHi): every lane, valid where kLo <= x.
  template <class D, class V = hn::Vec<D>>
  static HWY_INLINE V Value(D d, V x) {
    const hn::RebindToSigned<D> di;
    const V shifter = hn::Set(d, 12582912.0f + 10.0f);
    const V t = hn::MulAdd(x, hn::Set(d, 4.0f), shifter);
    const V y = hn::MulAdd(hn::Sub(t, shifter), hn::Set(d, -0.25f), x);
    const auto k = hn::BitCast(di, t).raw;
    V p = Coefficient(d, kC[0], k);
    for (int i = 1; i <= kDegree; ++i) {
      p = hn::MulAdd(p, y, Coefficient(d, kC[i], k));
    }
    return hn::IfThenElse(hn::Ge(x, hn::Set(d, kHi)), x, hn::Mul(x, p));
  }
  // row[k mod 32] in each lane.
  template <class D, class V = hn::Vec<D>>
  static HWY_INLINE V Coefficient(D d, const float* row, __m512i k) {
    return V{_mm512_permutex2var_ps(hn::Load(d, row).raw, k,
                                    hn::Load(d, row + 16).raw)};
  }
#else
  static constexpr bool kEnabled = false;
  template <class D, class V = hn::Vec<D>>
  static HWY_INLINE V Value(D, V x) {  // not called
    return x;
  }
#endif
};

// h(a) = erfcx(a/sqrt2)/2 (ErfcxHalf) on AVX-512 for 2.625 < a < 10.625,
// the lanes of GeluK's f below GeluPieces::kLo: 32 pieces of width 1/4
// centred on m/4, m = round(4a) = 11..42 (the piece in column m mod 32, so
// that the shifter's bits are the permute's index as they are), of degree 4
// (scripts/fit_gelu_pieces.py: 0.98 ULP in its float32 emulation, where
// ErfcxHalf has 2.67).
struct GeluTailPieces {
  static constexpr float kHi = 10.625f;
  static constexpr int kDegree = 4;
  alignas(64) static constexpr float kC[kDegree + 1][32] = {
      {9.830642739e-06f, 8.528596481e-06f, 7.426174307e-06f, 6.488875442e-06f,
       5.688796136e-06f, 5.003247679e-06f, 4.413700026e-06f, 3.904945515e-06f,
       3.464449037e-06f, 3.081835530e-06f, 2.748480256e-06f, 7.476924220e-04f,
       5.565969623e-04f, 4.197261878e-04f, 3.203455417e-04f, 2.472566266e-04f,
       1.928547717e-04f, 1.519036159e-04f, 1.207498353e-04f, 9.681282245e-05f,
       7.824814384e-05f, 6.372285861e-05f, 5.226350186e-05f, 4.315200204e-05f,
       3.585368177e-05f, 2.996683907e-05f, 2.518709698e-05f, 2.128195592e-05f,
       1.807246008e-05f, 1.541985876e-05f, 1.321581476e-05f, 1.137519121e-05f},
      {-8.431154856e-05f, -7.514854951e-05f, -6.718488294e-05f,
       -6.023873357e-05f, -5.415937630e-05f, -4.882128269e-05f,
       -4.411947157e-05f, -3.996576561e-05f, -3.628582635e-05f,
       -3.301672405e-05f, -3.010501314e-05f, -2.960283775e-03f,
       -2.312999452e-03f, -1.828180393e-03f, -1.460476778e-03f,
       -1.178325387e-03f, -9.594516014e-04f, -7.879293989e-04f,
       -6.522312760e-04f, -5.439160159e-04f, -4.567345895e-04f,
       -3.860130382e-04f, -3.282212710e-04f, -2.806685225e-04f,
       -2.412859758e-04f, -2.084697771e-04f, -1.809668902e-04f,
       -1.577911171e-04f, -1.381608308e-04f, -1.214523581e-04f,
       -1.071649822e-04f, -9.489423246e-05f},
      {7.136302884e-04f, 6.539293681e-04f, 6.006361218e-04f, 5.529218470e-04f,
       5.100818817e-04f, 4.715150280e-04f, 4.367059737e-04f, 4.052117583e-04f,
       3.766501031e-04f, 3.506900393e-04f, 3.270441375e-04f, 1.111963298e-02f,
       9.156322107e-03f, 7.613528986e-03f, 6.387652364e-03f, 5.403521936e-03f,
       4.605890252e-03f, 3.953659907e-03f, 3.415910294e-03f, 2.969130641e-03f,
       2.595263766e-03f, 2.280310728e-03f, 2.013323130e-03f, 1.785665285e-03f,
       1.590473810e-03f, 1.422252157e-03f, 1.276568044e-03f, 1.149823423e-03f,
       1.039079623e-03f, 9.419214912e-04f, 8.563534939e-04f, 7.807178772e-04f},
      {-5.961910821e-03f, -5.620306823e-03f, -5.306913983e-03f,
       -5.018741358e-03f, -4.753180314e-03f, -4.507948179e-03f,
       -4.281039815e-03f, -4.070689902e-03f, -3.875339404e-03f,
       -3.693606472e-03f, -3.524263855e-03f, -3.944924846e-02f,
       -3.440042585e-02f, -3.022307158e-02f, -2.673423663e-02f,
       -2.379523963e-02f, -2.129971236e-02f, -1.916517317e-02f,
       -1.732701436e-02f, -1.573413238e-02f, -1.434575487e-02f,
       -1.312906761e-02f, -1.205746271e-02f, -1.110919937e-02f,
       -1.026639435e-02f, -9.514236823e-03f, -8.840390481e-03f,
       -8.234515786e-03f, -7.687903009e-03f, -7.193174679e-03f,
       -6.744051818e-03f, -6.335167214e-03f},
      {4.912254587e-02f, 4.767538980e-02f, 4.631004483e-02f, 4.501983151e-02f,
       4.379878938e-02f, 4.264155030e-02f, 4.154329002e-02f, 4.049964994e-02f,
       3.950669244e-02f, 3.856084496e-02f, 3.765885904e-02f, 1.307247281e-01f,
       1.215139478e-01f, 1.134520620e-01f, 1.063451543e-01f, 1.000392064e-01f,
       9.441064298e-02f, 8.935932070e-02f, 8.480339497e-02f, 8.067540079e-02f,
       7.691930234e-02f, 7.348822802e-02f, 7.034269720e-02f, 6.744923443e-02f,
       6.477931142e-02f, 6.230848655e-02f, 6.001567468e-02f, 5.788263306e-02f,
       5.589348078e-02f, 5.403435975e-02f, 5.229309574e-02f, 5.065898225e-02f},
  };
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // Valid where 2.625 < a < kHi.
  template <class D, class V = hn::Vec<D>>
  static HWY_INLINE V Value(D d, V a) {
    const hn::RebindToSigned<D> di;
    const V shifter = hn::Set(d, 12582912.0f);
    const V t = hn::MulAdd(a, hn::Set(d, 4.0f), shifter);
    const V y = hn::MulAdd(hn::Sub(t, shifter), hn::Set(d, -0.25f), a);
    const auto k = hn::BitCast(di, t).raw;
    V p = GeluPieces::Coefficient(d, kC[0], k);
    for (int i = 1; i <= kDegree; ++i) {
      p = hn::MulAdd(p, y, GeluPieces::Coefficient(d, kC[i], k));
    }
    return p;
  }
#endif
};

// The VJP g gelu'(x) on AVX-512 for -1.875 < x < 6.125 (beyond, gelu'
// rounds to 1): gelu' from 32 pieces of width 1/4 centred on m/4, m =
// round(4x) = -7..24 (column m mod 32), of degree 6; the three pieces
// around the root z = -0.7518 (m = -4..-2) are y' G(y') in y' = (x - zh) -
// zl (exact, as in GeluPrimeNearRoot), so that gelu' keeps its relative
// accuracy up to the root (scripts/fit_gelu_pieces.py: 2.27 ULP in its
// float32 emulation). g times the rounded gelu' then stays within 2.8 ULP.
struct GeluPrimePieces {
  static constexpr float kLo = -1.875f, kHi = 6.125f;
  static constexpr int kDegree = 6;
  alignas(64) static constexpr float kC[kDegree + 1][32] = {
      {1.244100276e-04f,  -1.501964498e-02f, -2.253021486e-02f,
       -1.942069270e-02f, -8.741393685e-03f, 3.056204412e-03f,
       1.039803028e-02f,  1.139920764e-02f,  7.784313057e-03f,
       2.797727706e-03f,  -9.829744231e-04f, -2.623738488e-03f,
       -2.540948102e-03f, -1.660936163e-03f, -7.428366807e-04f,
       -1.363538468e-04f, 1.347765065e-04f,  1.886106620e-04f,
       1.488371781e-04f,  9.175799642e-05f,  4.797756264e-05f,
       2.202401993e-05f,  9.041053090e-06f,  3.358822141e-06f,
       1.135431035e-06f,  -1.139285788e-02f, -1.040214766e-02f,
       -3.026725957e-03f, 1.039103325e-02f,  1.937280037e-02f,
       2.265799046e-02f,  1.522457227e-02f},
      {5.957010388e-02f,  4.772854596e-02f,  1.825609244e-02f,
       -1.443362702e-02f, -3.609234840e-02f, -4.007524624e-02f,
       -2.922549844e-02f, -1.214305870e-02f, 2.619947540e-03f,
       1.053702179e-02f,  1.165678259e-02f,  8.694040589e-03f,
       4.663955886e-03f,  1.469691633e-03f,  -3.071846731e-04f,
       -9.216613253e-04f, -8.877001819e-04f, -6.269138539e-04f,
       -3.682288516e-04f, -1.883571822e-04f, -8.582718146e-05f,
       -3.529584137e-05f, -1.321055515e-05f, -4.525924396e-06f,
       -1.425215601e-06f, -1.214306708e-02f, -2.922540531e-02f,
       -4.007488862e-02f, -2.063031681e-02f, -1.466040406e-02f,
       -1.597216725e-02f, 4.772934690e-02f},
      {-3.058193897e-06f, 6.974459440e-02f,  1.123112589e-01f,
       1.141392514e-01f,  8.065713197e-02f,  3.095486946e-02f,
       -1.365943160e-02f, -3.968723491e-02f, -4.499229416e-02f,
       -3.588154167e-02f, -2.133998834e-02f, -8.331861347e-03f,
       -7.677758163e-08f, 3.676078981e-03f,  4.239588045e-03f,
       3.364369273e-03f,  2.185914433e-03f,  1.230070135e-03f,
       6.153129507e-04f,  2.776010951e-04f,  1.139799933e-04f,
       4.285131945e-05f,  1.481544132e-05f,  4.725824510e-06f,
       1.394280503e-06f,  3.968707845e-02f,  1.365953311e-02f,
       -3.095559590e-02f, -1.159034595e-01f, -1.140078232e-01f,
       -1.137535051e-01f, -6.974962354e-02f},
      {-2.659592927e-01f, -2.298342884e-01f, -1.356915534e-01f,
       -1.901819743e-02f, 8.065524697e-02f,  1.368665248e-01f,
       1.443575919e-01f,  1.158792228e-01f,  7.198860496e-02f,
       3.072775342e-02f,  2.008817391e-03f,  -1.250948384e-02f,
       -1.625019684e-02f, -1.407797541e-02f, -9.935962036e-03f,
       -6.071543321e-03f, -3.301164135e-03f, -1.620972063e-03f,
       -7.254211232e-04f, -2.976801479e-04f, -1.124904884e-04f,
       -3.926987847e-05f, -1.269483255e-05f, -3.807483608e-06f,
       -1.061084731e-06f, 1.158792228e-01f,  1.443575919e-01f,
       1.368665248e-01f,  -1.852967963e-02f, -1.820035838e-02f,
       -1.823067851e-02f, -2.298343033e-01f},
      {1.896222024e-08f,  -1.903132051e-01f, -3.300612271e-01f,
       -3.881849647e-01f, -3.629560769e-01f, -2.782544792e-01f,
       -1.699918509e-01f, -7.077436149e-02f, -7.194410068e-10f,
       3.793880343e-02f,  4.929834604e-02f,  4.454424977e-02f,
       3.323886171e-02f,  2.163789608e-02f,  1.259935647e-02f,
       6.652488839e-03f,  3.211925272e-03f,  1.425967086e-03f,
       5.844055559e-04f,  2.217305446e-04f,  7.805277710e-05f,
       2.553524246e-05f,  7.774422556e-06f,  2.205212922e-06f,
       5.832851571e-07f,  7.077436894e-02f,  1.699918509e-01f,
       2.782544792e-01f,  3.882555068e-01f,  3.882849813e-01f,
       3.882869780e-01f,  1.903132349e-01f},
      {7.978845835e-01f,  7.491694689e-01f,  6.161143184e-01f,
       4.328850508e-01f,  2.419707328e-01f,  7.990897447e-02f,
       -3.237939626e-02f, -9.166964889e-02f, -1.079819351e-01f,
       -9.720268846e-02f, -7.449527830e-02f, -5.058294162e-02f,
       -3.102293797e-02f, -1.737372391e-02f, -8.944997564e-03f,
       -4.253185354e-03f, -1.873623114e-03f, -7.664805744e-04f,
       -2.917032980e-04f, -1.034192610e-04f, -3.419455970e-05f,
       -1.055340908e-05f, -3.042459639e-06f, -8.198158525e-07f,
       -2.065803670e-07f, -9.166964889e-02f, -3.237939626e-02f,
       7.990897447e-02f,  4.314929247e-01f,  4.314939976e-01f,
       4.314939380e-01f,  7.491694689e-01f},
      {5.000000000e-01f,  6.953733563e-01f,  8.674951196e-01f,
       9.992257357e-01f,  1.083315492e+00f,  1.122661591e+00f,
       1.127469182e+00f,  1.110926151e+00f,  1.085231781e+00f,
       1.059189796e+00f,  1.037611127e+00f,  1.022027493e+00f,
       1.011945605e+00f,  1.006017327e+00f,  1.002821803e+00f,
       1.001233816e+00f,  1.000503659e+00f,  1.000192165e+00f,
       1.000068545e+00f,  1.000022888e+00f,  1.000007153e+00f,
       1.000002146e+00f,  1.000000596e+00f,  1.000000119e+00f,
       1.000000000e+00f,  -1.109261513e-01f, -1.274691969e-01f,
       -1.226615831e-01f, 0.000000000e+00f,  0.000000000e+00f,
       0.000000000e+00f,  3.046266437e-01f},
  };
  static constexpr float kZh = -7.517915368e-01f, kZl = 1.211444989e-08f;
};

// The same for gelu_tanh': its root z = -0.7525 (scripts/
// fit_gelu_pieces.py: 2.28 ULP).
struct GeluTanhPrimePieces {
  static constexpr float kLo = -1.875f, kHi = 6.125f;
  static constexpr int kDegree = 6;
  alignas(64) static constexpr float kC[kDegree + 1][32] = {
      {1.302562596e-04f,  -1.574979536e-02f, -2.355478145e-02f,
       -1.971108653e-02f, -7.754773833e-03f, 4.372700118e-03f,
       1.064536627e-02f,  1.042551454e-02f,  6.678230129e-03f,
       2.518263180e-03f,  -4.603166308e-04f, -1.959729008e-03f,
       -2.254387364e-03f, -1.779331593e-03f, -9.982328629e-04f,
       -3.016304108e-04f, 1.066484037e-04f,  2.318715269e-04f,
       1.948486752e-04f,  1.146557843e-04f,  5.242861516e-05f,
       1.930749931e-05f,  5.810500625e-06f,  1.438338359e-06f,
       2.972869311e-07f,  -1.041666511e-02f, -1.064786315e-02f,
       -4.344050772e-03f, 9.554154240e-03f,  1.965158246e-02f,
       2.363636345e-02f,  1.596506312e-02f},
      {6.092536077e-02f,  4.851604626e-02f,  1.762768812e-02f,
       -1.617901400e-02f, -3.729016706e-02f, -3.935614228e-02f,
       -2.721320651e-02f, -1.075666584e-02f, 2.288155491e-03f,
       9.103875607e-03f,  1.046554372e-02f,  8.480274118e-03f,
       5.197162274e-03f,  2.106103348e-03f,  1.237128890e-05f,
       -9.345977451e-04f, -1.041751006e-03f, -7.594308699e-04f,
       -4.278406559e-04f, -1.955846092e-04f, -7.394622662e-05f,
       -2.330398092e-05f, -6.137384844e-06f, -1.350372713e-06f,
       -2.478468559e-07f, -1.075667981e-02f, -2.721314505e-02f,
       -3.935580328e-02f, -2.311417460e-02f, -1.649070345e-02f,
       -1.817465760e-02f, 4.851689190e-02f},
      {-3.201910658e-06f, 7.121422887e-02f,  1.139336601e-01f,
       1.141468659e-01f,  7.859553397e-02f,  2.853468433e-02f,
       -1.418006234e-02f, -3.786456585e-02f, -4.248752445e-02f,
       -3.462861106e-02f, -2.187070437e-02f, -9.765238501e-03f,
       -1.165782218e-03f, 3.313687397e-03f,  4.498731345e-03f,
       3.798738588e-03f,  2.491403837e-03f,  1.343854005e-03f,
       6.086469512e-04f,  2.333178854e-04f,  7.587747677e-05f,
       2.092226714e-05f,  4.880368579e-06f,  9.598279576e-07f,
       1.584229494e-07f,  3.786434606e-02f,  1.418012381e-02f,
       -2.853538841e-02f, -1.160297468e-01f, -1.139443889e-01f,
       -1.135912389e-01f, -7.121951878e-02f},
      {-2.672756016e-01f, -2.303559631e-01f, -1.345162839e-01f,
       -1.690693572e-02f, 8.168163896e-02f,  1.354457289e-01f,
       1.413274705e-01f,  1.135681644e-01f,  7.202579081e-02f,
       3.276066855e-02f,  4.375546239e-03f,  -1.122967992e-02f,
       -1.634892821e-02f, -1.495070104e-02f, -1.082602981e-02f,
       -6.579629146e-03f, -3.424760420e-03f, -1.537530799e-03f,
       -5.962225259e-04f, -1.994368940e-04f, -5.738133405e-05f,
       -1.414661801e-05f, -2.975308462e-06f, -5.312517715e-07f,
       -8.011122787e-08f, 1.135681644e-01f,  1.413274705e-01f,
       1.354457140e-01f,  -1.614378579e-02f, -1.578364149e-02f,
       -1.582943276e-02f, -2.303559780e-01f},
      {1.952105144e-08f,  -1.910958290e-01f, -3.306089342e-01f,
       -3.873977661e-01f, -3.608601987e-01f, -2.762833536e-01f,
       -1.698108464e-01f, -7.274536043e-02f, -2.866589697e-03f,
       3.592850640e-02f,  4.905108735e-02f,  4.572113231e-02f,
       3.484110907e-02f,  2.282478660e-02f,  1.308607589e-02f,
       6.604147144e-03f,  2.935047029e-03f,  1.146158436e-03f,
       3.918675648e-04f,  1.167849550e-04f,  3.018984899e-05f,
       6.734270301e-06f,  1.289142801e-06f,  2.105907413e-07f,
       2.918761588e-08f,  7.274536043e-02f,  1.698108464e-01f,
       2.762833536e-01f,  3.874863684e-01f,  3.875184357e-01f,
       3.875217438e-01f,  1.910958588e-01f},
      {7.978845835e-01f,  7.489486337e-01f,  6.155068874e-01f,
       4.323074818e-01f,  2.421482056e-01f,  8.118098229e-02f,
       -3.051819652e-02f, -9.027884901e-02f, -1.078750789e-01f,
       -9.837815911e-02f, -7.624538988e-02f, -5.206602067e-02f,
       -3.176765889e-02f, -1.739691198e-02f, -8.549459279e-03f,
       -3.760210937e-03f, -1.474059536e-03f, -5.125415046e-04f,
       -1.572314650e-04f, -4.231665662e-05f, -9.934145055e-06f,
       -2.022209173e-06f, -3.548002212e-07f, -5.332800512e-08f,
       -6.824401932e-09f, -9.027884901e-02f, -3.051819652e-02f,
       8.118098229e-02f,  4.303989410e-01f,  4.304001033e-01f,
       4.303999841e-01f,  7.489486337e-01f},
      {5.000000000e-01f,  6.953541040e-01f,  8.673698902e-01f,
       9.989382625e-01f,  1.082964063e+00f,  1.122492671e+00f,
       1.127710819e+00f,  1.111596942e+00f,  1.086099267e+00f,
       1.059914589e+00f,  1.037951589e+00f,  1.021948934e+00f,
       1.011584163e+00f,  1.005564332e+00f,  1.002422690e+00f,
       1.000951409e+00f,  1.000335097e+00f,  1.000105262e+00f,
       1.000029325e+00f,  1.000007153e+00f,  1.000001550e+00f,
       1.000000238e+00f,  1.000000000e+00f,  1.000000000e+00f,
       1.000000000e+00f,  -1.115969792e-01f, -1.277107894e-01f,
       -1.224926338e-01f, 0.000000000e+00f,  0.000000000e+00f,
       0.000000000e+00f,  3.046458960e-01f},
  };
  static constexpr float kZh = -7.524614334e-01f, kZl = 1.133962790e-08f;
};

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// g f'(x) (g for x >= kHi) from Pieces (GeluPrimePieces or
// GeluTanhPrimePieces): every lane, valid where Pieces::kLo < x.
template <class Pieces, class D, class V = hn::Vec<D>>
HWY_INLINE V PrimePiecesVjp(D d, V x, V g) {
  const hn::RebindToSigned<D> di;
  const V shifter = hn::Set(d, 12582912.0f);
  const V t = hn::MulAdd(x, hn::Set(d, 4.0f), shifter);
  const V n = hn::Sub(t, shifter);
  const V yr =
      hn::Sub(hn::Sub(x, hn::Set(d, Pieces::kZh)), hn::Set(d, Pieces::kZl));
  const auto near_root =
      hn::Le(hn::Abs(hn::Add(n, hn::Set(d, 3.0f))), hn::Set(d, 1.0f));
  const V y =
      hn::IfThenElse(near_root, yr, hn::MulAdd(n, hn::Set(d, -0.25f), x));
  const auto k = hn::BitCast(di, t).raw;
  V p = GeluPieces::Coefficient(d, Pieces::kC[0], k);
  for (int i = 1; i <= Pieces::kDegree; ++i) {
    p = hn::MulAdd(p, y, GeluPieces::Coefficient(d, Pieces::kC[i], k));
  }
  return hn::IfThenElse(hn::Ge(x, hn::Set(d, Pieces::kHi)), g, hn::Mul(g, p));
}
#endif

// The array loop's MapSplit hooks for a VJP from Pieces (AVX-512, float32
// lanes) above Pieces::kLo and Op's pair form (FromFinite::EvalVjp) below,
// and EvalVjp giving the same lane by lane a vector at a time (the loop's
// remainders; half precision).
template <class Op, class Pieces>
struct FromFiniteSplitVjp : FromFinite<Op> {
  // Through MapSplit where GeluPieces is enabled (float32 lanes only).
  static constexpr bool kSplitVjp = GeluPieces::kEnabled;
  template <class D>
  static constexpr bool Enabled() {
    return GeluPieces::kEnabled && sizeof(hn::TFromD<D>) == 4;
  }
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V SplitVjp(D d, V x, V g, hn::Mask<D>* tail) const {
    *tail = hn::Not(hn::Gt(x, hn::Set(d, hn::TFromD<D>(Pieces::kLo))));
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    if constexpr (Enabled<D>()) return PrimePiecesVjp<Pieces>(d, x, g);
#endif
    return op().TailVjp(d, x, g);  // not called
  }
  // The lanes at or below Pieces::kLo (Op may have a shorter form for
  // them, with the same results).
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V TailVjp(D d, V x, V g) const {
    return FromFinite<Op>::EvalVjp(d, x, g);
  }
  // f' from the same pieces (g = 1) where the VJP uses them, so that the
  // VJP stays g times the Derivative's f' within a rounding (near the root
  // too, where the old gelu_tanh f' has only its absolute bound).
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 1 && Enabled<D>()) {
      hn::Mask<D> tail;
      const V pieces = SplitVjp(d, x, hn::Set(d, hn::TFromD<D>(1)), &tail);
      if (HWY_LIKELY(hn::AllFalse(d, tail))) return pieces;
      return hn::IfThenElse(tail, FromFinite<Op>::template Eval<1>(d, x),
                            pieces);
    }
    return FromFinite<Op>::template Eval<kOrder>(d, x);
  }
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalVjp(D d, V x, V g) const {
    if constexpr (Enabled<D>()) {
      hn::Mask<D> tail;
      const V pieces = SplitVjp(d, x, g, &tail);
      if (HWY_LIKELY(hn::AllFalse(d, tail))) return pieces;
      return hn::IfThenElse(tail, op().TailVjp(d, x, g), pieces);
    }
    return FromFinite<Op>::EvalVjp(d, x, g);
  }

 private:
  HWY_INLINE const Op& op() const { return static_cast<const Op&>(*this); }

 public:
};

// gelu, float32 lanes. a = |x| (clamped to 20, where e^(-a^2/2) = 0),
// E = e^(-a^2/2) from a^2 = p + pl exact (TwoProdLo) so that E has no
// argument error (SPEC.md §4: gelu(x) for x << 0 would amplify it by x^2),
// Phi(-a) = q = E h(a), phi = E k, k = 1/sqrt(2 pi):
//   f   = x q (x < 0), x (1 - q) (x >= 0), except for |x| <= 1/2, where
//         1 - q sits just above 1/2 (coarse ULP) and h's rounding would
//         show: there f = x/2 + x^2 R(x^2), R of degree 4 (fit 1.2e-9);
//   f'  = E (x k + h) (x < 0), 1 + E (x k - h) (x >= 0), except on
//         [-1.5, 0.5], where x k + h cancels (f' has its root z = -0.7518
//         there) or 1 + E(..) sits above 1/2: (x - z) G(x - z),
//         z = zh + zl, G of degree 13 (fit 5.5e-9), which keeps relative
//         accuracy up to the root;
//   f'' = E k (2 - x^2).
// E is subnormal from |x| = 13.22 while f' and f'' stay normal out to
// 13.34 and 13.57: ExpLo's 2^64 scale keeps its digits (no Tail band).
struct GeluK : FromFiniteSplitVjp<GeluK, GeluPrimePieces> {
  // f of a vector whose lanes all have |x| <= kBulk (every finite x of the
  // benchmarks' uniform [-10, 10] and all but 1 in 10^30 of normal(0, 1)
  // ones): ValueBulk; otherwise (NaN, +-inf or a deeper tail in a lane)
  // EvalFinite and FixNonFinite.
  static constexpr float kBulk = 11.5f;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 0 && GeluPieces::kEnabled) {
      // Lanes below GeluPieces::kLo (and NaN) from the formulas below:
      // which formula a lane gets depends on its x only.
      const V pieces = GeluPieces::Value(d, x);
      const auto tail = hn::Not(hn::Ge(x, hn::Set(d, GeluPieces::kLo)));
      if (HWY_LIKELY(hn::AllFalse(d, tail))) return pieces;
      return hn::IfThenElse(tail, TailValue(d, x), pieces);
    }
    if constexpr (kOrder == 0) return Value(d, x);
    return FromFiniteSplitVjp<GeluK, GeluPrimePieces>::Eval<kOrder>(d, x);
  }
  // h(a) for f: from GeluTailPieces where a < its kHi (on AVX-512; every
  // lane, or kAllIn: the caller knows that all are), ErfcxHalf elsewhere.
  // Which one depends on the lane's a only.
  template <bool kAllIn = false, class D, class V = hn::Vec<D>>
  static HWY_INLINE V TailH(D d, V a) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    const V pieces = GeluTailPieces::Value(d, a);
    if constexpr (kAllIn) return pieces;
    return hn::IfThenElse(hn::Lt(a, hn::Set(d, GeluTailPieces::kHi)), pieces,
                          ErfcxHalf(d, a));
#else
    return ErfcxHalf(d, a);
#endif
  }
  // The VJP of the lanes at or below GeluPrimePieces::kLo (and NaN, -inf):
  // EvalFinite<1, true>'s x < 0 formula outside its band, which is what
  // it gives there, without the other formulas.
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V TailVjp(D d, V x, V g) const {
    const V a = hn::Min(hn::Abs(x), hn::Set(d, 20.0f));
    const V p = hn::Mul(a, a);
    const V m_half = hn::Set(d, -0.5f);
    const V es =
        ExpLo(d, hn::Mul(p, m_half), hn::Mul(TwoProdLo(d, a, a, p), m_half));
    const V t = hn::MulAdd(
        x, hn::Set(d, -1.13351701e-08f),
        hn::MulAdd(x, hn::Set(d, 0.398942280401432677940f), ErfcxHalf(d, a)));
    const V et = hn::Mul(es, t);
    return VjpFromPair(d, x, g, et, TwoProdLo(d, es, t, et),
                       hn::Set(d, kExpLoScale));
  }
  // f through the array loop's MapSplit (core/activation-inl.h) where
  // GeluPieces is enabled: the same results as Eval<0>, lane by lane.
  static constexpr bool kSplitTail = GeluPieces::kEnabled;
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V SplitValue(D d, V x, hn::Mask<D>* tail) const {
    *tail = hn::Not(hn::Ge(x, hn::Set(d, GeluPieces::kLo)));
    return GeluPieces::Value(d, x);
  }
  // f of the lanes below GeluPieces::kLo (the others of a vector as
  // Value would give them where |x| <= kBulk, but for the range test).
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V TailValue(D d, V x) const {
    const V a = hn::Abs(x);
    if (HWY_LIKELY(
            hn::AllTrue(d, hn::Lt(a, hn::Set(d, GeluTailPieces::kHi))))) {
      return ValueBulk<false, true>(d, x, a);
    }
    if (HWY_LIKELY(hn::AllTrue(d, hn::Le(a, hn::Set(d, kBulk))))) {
      return ValueBulk<false>(d, x, a);
    }
    return FromFinite<GeluK>::Eval<0>(d, x);
  }
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V Value(D d, V x) const {
    const V a = hn::Abs(x);
    if (HWY_LIKELY(hn::AllTrue(d, hn::Le(a, hn::Set(d, kBulk))))) {
      return ValueBulk(d, x, a);
    }
    return FromFinite<GeluK>::Eval<0>(d, x);
  }
  // f for |x| = a <= kBulk: the formulas of EvalFinite without its clamp
  // and 2^64 scale (E >= e^-66.2 is normal, and so is E times x h's
  // rounding error), with -a^2/2 = hi + lo exactly from (-a/2) a.
  // kNonNegative = false: right only for x < 0 (the x >= 0 formulas left
  // out), with h from TailH (kTailPiecesIn: every a below
  // GeluTailPieces::kHi).
  template <bool kNonNegative = true, bool kTailPiecesIn = false, class D,
            class V = hn::Vec<D>>
  HWY_INLINE V ValueBulk(D d, V x, V a) const {
    const V m = hn::Mul(a, hn::Set(d, -0.5f));  // exact
    const V hi = hn::Mul(m, a);
    const V e = ExpLo32<false>(d, hi, hn::MulSub(m, a, hi));
    const V h = kNonNegative ? ErfcxHalf(d, a) : TailH<kTailPiecesIn>(d, a);
    // P = x Phi(-|x|) rounded once: x h = xh + xhl exactly.
    const V xh = hn::Mul(x, h);
    const V pq = hn::MulAdd(xh, e, hn::Mul(TwoProdLo(d, x, h, xh), e));
    if constexpr (!kNonNegative) return pq;
    const V far = hn::IfNegativeThenElse(x, pq, hn::Sub(x, pq));
    // |x| <= 1/2: x/2 + a^2 R(a^2) as in EvalFinite, in hi = -a^2/2 (the
    // coefficients times powers of -2, exact): x/2 + hi R'(hi).
    V r = hn::Set(d, 1.098109788e-04f * 32);
    r = hn::MulAdd(r, hi, hn::Set(d, -1.186145935e-03f * -16));
    r = hn::MulAdd(r, hi, hn::Set(d, 9.973457083e-03f * 8));
    r = hn::MulAdd(r, hi, hn::Set(d, -6.649037451e-02f * -4));
    r = hn::MulAdd(r, hi, hn::Set(d, 3.989422917e-01f * 2));
    const V near = hn::NegMulAdd(hi, r, hn::Mul(x, hn::Set(d, 0.5f)));
    return hn::IfThenElse(hn::Le(a, hn::Set(d, 0.5f)), near, far);
  }
  // With kWantLo (kOrder 1), f' = (result + *lo) * *scale for VjpFromPair.
  template <int kOrder, bool kWantLo = false, class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalFinite(D d, V x, V* lo = nullptr, V* scale = nullptr) const {
    static_assert(sizeof(hn::TFromD<D>) == 4, "float32 kernel");
    const V one = hn::Set(d, 1.0f);
    const V a = hn::Min(hn::Abs(x), hn::Set(d, 20.0f));
    const V p = hn::Mul(a, a);
    const V m_half = hn::Set(d, -0.5f);
    const V sc = hn::Set(d, kExpLoScale);
    // es = E 2^64.
    const V es =
        ExpLo(d, hn::Mul(p, m_half), hn::Mul(TwoProdLo(d, a, a, p), m_half));
    const V k = hn::Set(d, 0.398942280401432677940f);
    const auto neg = hn::Lt(x, hn::Zero(d));
    if constexpr (kOrder == 2) {
      return hn::Mul(
          hn::Mul(hn::Mul(es, k), hn::NegMulAdd(a, a, hn::Set(d, 2.0f))), sc);
    }
    const V h = kOrder == 0 ? TailH(d, a) : ErfcxHalf(d, a);
    if constexpr (kOrder == 0) {
      // x < 0: (x h) E, in that order: E h can be subnormal while f is
      // not (E itself is subnormal only where f is too). x >= 0: 1 - E h
      // with one rounding.
      const V e = hn::Mul(es, sc);
      // x h = xh + xhl exactly, so that f rounds once after h and E.
      const V xh = hn::Mul(x, h);
      const V xhl = TwoProdLo(d, x, h, xh);
      const V fneg = hn::MulAdd(xh, e, hn::Mul(xhl, e));
      // x >= 0: x - x Phi(-x), as ValueBulk (the same bits on either path).
      const V far = hn::IfNegativeThenElse(x, fneg, hn::Sub(x, fneg));
      V r = hn::Set(d, 1.098109788e-04f);
      r = hn::MulAdd(r, p, hn::Set(d, -1.186145935e-03f));
      r = hn::MulAdd(r, p, hn::Set(d, 9.973457083e-03f));
      r = hn::MulAdd(r, p, hn::Set(d, -6.649037451e-02f));
      r = hn::MulAdd(r, p, hn::Set(d, 3.989422917e-01f));
      const V near = hn::MulAdd(p, r, hn::Mul(x, hn::Set(d, 0.5f)));
      return hn::IfThenElse(hn::Le(a, hn::Set(d, 0.5f)), near, far);
    }
    // x k with k as a pair (k's rounding, 2.8e-8, would be amplified by the
    // partial cancellation of x k + h for x in (-2, -1.35)).
    const V t =
        hn::MulAdd(x, hn::Set(d, -1.13351701e-08f),  // k - float(k)
                   hn::MulAdd(x, k, hn::IfThenElse(neg, h, hn::Neg(h))));
    // x >= 0: 1 + E t with one rounding.
    const V et = hn::Mul(es, t);
    const V e = hn::Mul(es, sc);
    const V fpos = hn::MulAdd(e, t, one);
    const V far = hn::IfThenElse(neg, hn::Mul(et, sc), fpos);
    const V near = GeluPrimeNearRoot(d, x);
    // Below -1.42 the expansion itself cancels (G falls to 0.16 at -1.5).
    const auto band =
        hn::And(hn::Ge(x, hn::Set(d, -1.42f)), hn::Le(x, hn::Set(d, 0.5f)));
    if constexpr (kWantLo) {
      // x < 0 outside the band: es t = et + lo exactly, scale 2^-64. The
      // rounding of 1 + E t (x >= 0.5, f' in (1, 1.13]) and of the
      // expansion are left out.
      const auto sneg = hn::AndNot(band, neg);
      *lo = hn::IfThenElseZero(sneg, TwoProdLo(d, es, t, et));
      *scale = hn::IfThenElse(sneg, sc, one);
      return hn::IfThenElse(band, near, hn::IfThenElse(neg, et, fpos));
    }
    return hn::IfThenElse(band, near, far);
  }
};

// gelu_tanh, float32 lanes (targets with FMA) and float64 lanes (every
// target; pairs of doubles, TwoProdLo by Dekker's product without FMA,
// divisions as RecipNR describes): x sigma(v), v = 2u = c1 x + c3 x^3,
// c1 = 2 sqrt(2/pi), c3 = 0.044715 c1. sigma(v) for v << 0 is e^v, whose
// relative error is |v| (up to 87) times that of v: v is formed as a float
// pair vh + vl (x^2 exact by TwoProdLo, the products and the sum c1 + c3
// x^2 with their errors), and e = e^-|v| = ExpLo(-|vh|, -sign(vh) vl).
// With r = 1/(1 + e), all with one division:
//   f   = x e / (1 + e) (x < 0), x / (1 + e) (x >= 0);
//   f'  = sigma(v) + x v' sigma'(v)
//       = e (1 + e + x v') / (1+e)^2 (x < 0), (1 + e (1 + x v'))/(1+e)^2:
//         for x < 0, 1 + x v' cancels (in part for x in (-2, -1), fully
//         near the root -0.75), so x v' is a float pair too and 1 + x v' a
//         TwoSum; (1+e)^2 comes from OnePlusSquared;
//   f'' = sigma'(v) (2 v' + x v'' - x v'^2 tanh(v/2))
//       = e ((2 v' + 6 c3 x^2)(1 + e) - |x| v'^2 (1 - e)) / (1+e)^3.
// x is clamped to [-20, 20] inside v: sigma(v) is 0 or 1 in float32 there.
// x sigma(v) is normal down to x = -10.1, e^v only to v = -87.3 (x = -9.9),
// and f', f'' out to |x| = 11: ExpLo's 2^64 scale keeps e's digits there.
// float64: the clamp is 22.5; x sigma(v) is normal down to x = -21.5, e^v
// only to v = -708 (x = -20.9), f'' to x = -21.9.
struct GeluTanhK : FromFiniteSplitVjp<GeluTanhK, GeluTanhPrimePieces> {
  // The constants as pairs hi + lo of T: c1 = 2 sqrt(2/pi), c3 = 0.044715
  // c1, d3 = 3 c3 and 6 c3 (scripts/fit_gelu_f64.py prints the float64
  // ones); kClamp: |x| beyond which sigma(v) is 0 or 1 and e^v (times
  // 2^64) 0 or subnormal.
  template <typename T>
  struct Consts;
  // c1 + c * x^2 as a pair (mh, ml), x^2 = x2 + x2l exactly.
  template <class D, class V = hn::Vec<D>, typename T = hn::TFromD<D>>
  static HWY_INLINE V Poly2(D d, T c1h, T c1l, T ch, T cl, V x2, V x2l, V* ml) {
    const V vch = hn::Set(d, ch);
    const V ph = hn::Mul(vch, x2);
    V pl = TwoProdLo(d, vch, x2, ph);
    pl = hn::MulAdd(vch, x2l, hn::MulAdd(hn::Set(d, cl), x2, pl));
    // TwoSum(c1h, ph).
    const V c1 = hn::Set(d, c1h);
    const V mh = hn::Add(c1, ph);
    const V bv = hn::Sub(mh, c1);
    const V err = hn::Add(hn::Sub(c1, hn::Sub(mh, bv)), hn::Sub(ph, bv));
    *ml = hn::Add(err, hn::Add(pl, hn::Set(d, c1l)));
    return mh;
  }
  // With kWantLo (kOrder 1), f' = (result + *lo) * *scale for VjpFromPair.
  template <int kOrder, bool kWantLo = false, class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalFinite(D d, V x, V* lo = nullptr, V* scale = nullptr) const {
    using T = hn::TFromD<D>;
    using C = Consts<T>;
    const V one = hn::Set(d, T(1));
    const V xc =
        hn::Min(hn::Max(x, hn::Set(d, -C::kClamp)), hn::Set(d, C::kClamp));
    const V x2 = hn::Mul(xc, xc);
    const V x2l = TwoProdLo(d, xc, xc, x2);
    V ml;
    const V mh = Poly2(d, C::kC1h, C::kC1l, C::kC3h, C::kC3l, x2, x2l, &ml);
    const V vh = hn::Mul(xc, mh);
    const V vl = hn::MulAdd(xc, ml, TwoProdLo(d, xc, mh, vh));
    const auto neg = hn::Lt(x, hn::Zero(d));
    const V sc = hn::Set(d, T(kExpLoScale));  // es * sc = e
    const V es =
        ExpLo(d, hn::Neg(hn::Abs(vh)), hn::IfThenElse(neg, vl, hn::Neg(vl)));
    const V e = hn::Mul(es, sc);
    const V ope = hn::Add(one, e);
    if constexpr (kOrder == 0) {
      // The clamped xc: x < 0: xc e (x e would be wrong beyond the clamp,
      // where es, 0 or subnormal, is e^-|v| of the clamped v); x > kClamp:
      // sigma(v) = 1 exactly, and without FMA the division's residual
      // (Dekker's product) would overflow for huge x.
      const V q =
          DivNR(d, hn::IfThenElse(neg, hn::Mul(hn::Mul(xc, es), sc), xc), ope);
      return hn::IfThenElse(hn::Gt(x, hn::Set(d, C::kClamp)), x, q);
    }
    if constexpr (kOrder == 1) {
      // x v' = v + 2 c3 x^3, v the pair (vh, vl), 2 c3 x^3 the pair
      // (w3, w3l) (2 c3 x and its product with x^2 + x2l, with their
      // errors; 2 c3's own rounding, 3.4e-8, is left out).
      const V k2 = hn::Set(d, 2 * C::kC3h);
      const V c2x = hn::Mul(k2, xc);
      const V w3 = hn::Mul(c2x, x2);
      const V w3l = hn::MulAdd(TwoProdLo(d, k2, xc, c2x), x2,
                               hn::MulAdd(c2x, x2l, TwoProdLo(d, c2x, x2, w3)));
      // x < 0: u = vh + w3 and th = 1 + u with their errors (TwoSum), then
      // S = th + (e + the low parts).
      const V u = hn::Add(vh, w3);
      const V ub = hn::Sub(u, vh);
      const V ul = hn::Add(hn::Sub(vh, hn::Sub(u, ub)), hn::Sub(w3, ub));
      const V th = hn::Add(one, u);
      const V tb = hn::Sub(th, one);
      const V tl = hn::Add(hn::Sub(one, hn::Sub(th, tb)), hn::Sub(u, tb));
      const V lows = hn::Add(e, hn::Add(hn::Add(tl, ul), hn::Add(vl, w3l)));
      // es S as an exact pair, taken into the division's residual; the
      // 2^-64 applied after the division (a subnormal low part would cost
      // a microcode assist per operation on x86).
      const V sum = hn::Add(th, lows);
      const V snh = hn::Mul(es, sum);
      const V snl = TwoProdLo(d, es, sum, snh);
      const V sp = hn::MulAdd(e, hn::Add(hn::Add(one, vh), w3), one);
      const V nh = hn::IfThenElse(neg, snh, sp);
      const V nl = hn::IfThenElseZero(neg, snl);
      const V den = OnePlusSquared(d, e);
      const V sfac = hn::IfThenElse(neg, sc, one);
      if constexpr (kWantLo) {
        *scale = sfac;
        return DivPairNRSplit(d, nh, nl, den, lo);
      }
      const V q = DivPairNR(d, nh, nl, den);
      return hn::Mul(q, sfac);
    }
    const V dv =
        hn::MulAdd(hn::Set(d, C::kD3h), x2, hn::Set(d, C::kC1h));  // v'
    // 2 v' + x v'' = 2 v' + 6 c3 x^2.
    const V a = hn::MulAdd(hn::Set(d, C::kC6h), x2, hn::Add(dv, dv));
    const V b = hn::Mul(hn::Mul(hn::Abs(xc), hn::Mul(dv, dv)), hn::Sub(one, e));
    const V num = hn::Mul(hn::Mul(es, hn::MulSub(a, ope, b)), sc);
    return DivNR(d, num, hn::Mul(OnePlusSquared(d, e), ope));
  }
};

template <>
struct GeluTanhK::Consts<float> {
  static constexpr float kC1h = 1.595769167e+00f, kC1l = -4.534068054e-08f;
  static constexpr float kC3h = 7.135481387e-02f, kC3l = 2.398832466e-09f;
  static constexpr float kD3h = 2.140644491e-01f, kC6h = 4.281288981e-01f;
  static constexpr float kClamp = 20.0f;
};
template <>
struct GeluTanhK::Consts<double> {
  static constexpr double kC1h = 1.5957691216057308;
  static constexpr double kC1l = -9.9693088091109202e-17;
  static constexpr double kC3h = 0.071354816272600249;
  static constexpr double kC3l = -6.175149918155315e-19;
  static constexpr double kD3h = 0.21406444881780073;
  static constexpr double kC6h = 0.42812889763560147;
  // v = -752 (e^v 2^64 below the smallest normal) at x = -22.15.
  static constexpr double kClamp = 22.5;
};

// ---------------------------------------------------------------------------
// Targets without FMA (SSSE3, SSE4, EMU128, SCALAR): the float32 kernels
// above need exact products (TwoProdLo falls back to Dekker's, but the
// polynomials and corrections lose about 1 ULP without fused operations, and
// gelu then exceeds 4 ULP). These work in float64 lanes instead.

// ---------------------------------------------------------------------------
// Erfcx: the scaled complementary error function erfc(t) e^(t^2), t >= 0.
//
// Valid lane types: float64 (used for float32 results).
// Max relative error: 3.3e-10 (0.006 float32 ULP) on [0, 10.6]; for t > 10.6
// the polynomial extrapolates smoothly (s >= -1.38) and only meets results that
// underflow in float32 (gelu(x) for x < -14.9). Form: erfcx(t) = w P(s), w =
// 1/(t + 2), s = (w - mid)/half, P of degree 12 interpolating erfcx(t)(t + 2)
// at the Chebyshev nodes of w in [1/12.6, 1/2]. erfcx ~ 1/(sqrt(pi) t) for
// large t, so P is smooth in w.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Erfcx(D d, V t) {
  using T = hn::TFromD<D>;
  const V w = hn::Div(hn::Set(d, T(1)), hn::Add(t, hn::Set(d, T(2))));
  const V s = hn::Mul(hn::Sub(w, hn::Set(d, T(0.28968253968253965))),
                      hn::Set(d, T(1.0 / 0.21031746031746032)));
  V p = hn::Set(d, T(-3.6619160908280847e-07));
  p = hn::MulAdd(p, s, hn::Set(d, T(-4.4398352482736359e-06)));
  p = hn::MulAdd(p, s, hn::Set(d, T(1.2678230951129956e-05)));
  p = hn::MulAdd(p, s, hn::Set(d, T(2.5287677611862895e-05)));
  p = hn::MulAdd(p, s, hn::Set(d, T(-0.00014502019685434209)));
  p = hn::MulAdd(p, s, hn::Set(d, T(9.3998307179833965e-06)));
  p = hn::MulAdd(p, s, hn::Set(d, T(0.001261825744723493)));
  p = hn::MulAdd(p, s, hn::Set(d, T(-0.0013660953118178679)));
  p = hn::MulAdd(p, s, hn::Set(d, T(-0.012721135816726986)));
  p = hn::MulAdd(p, s, hn::Set(d, T(0.012750048071569963)));
  p = hn::MulAdd(p, s, hn::Set(d, T(0.20761087618557161)));
  p = hn::MulAdd(p, s, hn::Set(d, T(0.65473825380435036)));
  p = hn::MulAdd(p, s, hn::Set(d, T(1.137828687669626)));
  return hn::Mul(p, w);
}

// Applies fn(dd, x) in float64 lanes to a float32 vector: promote each half,
// compute, demote (one rounding to float32). With split, also returns the
// rounding error of that demotion, as float: fn(x) = hi + lo.
template <class DF, class Fn, class VF = hn::Vec<DF>>
HWY_INLINE VF InDouble(DF df, VF x, const Fn& fn, VF* lo_part = nullptr) {
#if HWY_TARGET == HWY_SCALAR
  const hn::Rebind<double, DF> dd;
  const auto v = fn(dd, hn::PromoteTo(dd, x));
  const VF hi = hn::DemoteTo(df, v);
  if (lo_part) *lo_part = hn::DemoteTo(df, hn::Sub(v, hn::PromoteTo(dd, hi)));
  return hi;
#else
  const hn::Half<DF> dh;
  const hn::Rebind<double, decltype(dh)> dd;
  const auto v0 = fn(dd, hn::PromoteTo(dd, hn::LowerHalf(dh, x)));
  const auto v1 = fn(dd, hn::PromoteTo(dd, hn::UpperHalf(dh, x)));
  const auto h0 = hn::DemoteTo(dh, v0);
  const auto h1 = hn::DemoteTo(dh, v1);
  if (lo_part) {
    *lo_part =
        hn::Combine(df, hn::DemoteTo(dh, hn::Sub(v1, hn::PromoteTo(dd, h1))),
                    hn::DemoteTo(dh, hn::Sub(v0, hn::PromoteTo(dd, h0))));
  }
  return hn::Combine(df, h1, h0);
#endif
}

// gelu, float32, for targets without FMA (see the header comment): in float64
// lanes, E = e^(-x^2/2) (x*x exact), q = erfc(|x|/sqrt2)/2 = E erfcx(t)/2, Phi
// = q (x < 0) or 1 - q, phi = E/sqrt(2 pi).
struct GeluDoubleK : NoTail {
  static constexpr bool kFixup = true;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D df, V xf) const {
    static_assert(sizeof(hn::TFromD<D>) == 4, "float32 kernel");
    return InDouble(df, xf, [](auto d, auto x) {
      using VD = decltype(x);
      const VD half = hn::Set(d, 0.5);
      const VD e = hn::Exp(d, hn::Mul(hn::Mul(x, x), hn::Set(d, -0.5)));
      const VD t = hn::Mul(hn::Abs(x), hn::Set(d, 0.70710678118654752440));
      const VD q = hn::Mul(hn::Mul(e, half), Erfcx(d, t));
      const VD cdf = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), q,
                                    hn::Sub(hn::Set(d, 1.0), q));
      if constexpr (kOrder == 0) return hn::Mul(x, cdf);
      const VD pdf = hn::Mul(e, hn::Set(d, 0.39894228040143267794));
      if constexpr (kOrder == 1) {
        const auto band =
            hn::And(hn::Ge(x, hn::Set(d, -1.5)), hn::Le(x, hn::Set(d, 0.5)));
        return hn::IfThenElse(band, GeluPrimeNearRoot(d, x),
                              hn::MulAdd(x, pdf, cdf));
      }
      return hn::Mul(pdf, hn::NegMulAdd(x, x, hn::Set(d, 2.0)));
    });
  }
};

// gelu_tanh, float32, for targets without FMA: x sigma(v), v = 2u = 2
// sqrt(2/pi)(x + 0.044715 x^3), f, f' and f'' wholly in float64 lanes (f'
// cancels in part for x in (-2, -1)).
struct GeluTanhDoubleK {
  static constexpr bool kFixup = true;
  static constexpr bool kHasTail = true;
  // x sigma(v) is normal down to x = -10.1, e^v only to v = -87.3 (x = -9.9).
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE hn::Mask<D> Tail(D d, V x) const {
    return InBand(d, x, -11.5, -9.4, -11.5, -9.4);
  }
  static constexpr double kK0 = 0.79788456080286535588;  // sqrt(2/pi)
  static constexpr double kK1 = 0.044715;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    using T = hn::TFromD<D>;
    static_assert(sizeof(T) == 4, "float32 kernel");
    if constexpr (kOrder >= 1) {
      return InDouble(d, x, [](auto dd, auto xd) {
        using VD = decltype(xd);
        const VD x2 = hn::Mul(xd, xd);
        const VD k0 = hn::Set(dd, kK0);
        const VD u = hn::Mul(hn::Mul(k0, xd),
                             hn::MulAdd(hn::Set(dd, kK1), x2, hn::Set(dd, 1)));
        const VD v = hn::Add(u, u);
        const Logistic<decltype(dd)> l(dd, v);
        const VD du =
            hn::Mul(k0, hn::MulAdd(hn::Set(dd, 3 * kK1), x2, hn::Set(dd, 1.0)));
        if constexpr (kOrder == 1) {
          // sigma(v) + 2x u' sigma'(v): the terms cancel in part for
          // x in (-2, -1), hence float64 here too.
          return hn::MulAdd(hn::Mul(hn::Add(xd, xd), du), l.Prime(),
                            l.Sigma(v));
        }
        const VD d2u = hn::Mul(hn::Set(dd, 6 * kK0 * kK1), xd);
        // sigma'(v) (4u' + 2x u'' - 4x u'^2 tanh u).
        const VD th = hn::Tanh(dd, u);
        VD acc = hn::Mul(hn::Set(dd, 4.0), du);
        acc = hn::MulAdd(hn::Add(xd, xd), d2u, acc);
        acc = hn::NegMulAdd(hn::Mul(hn::Mul(hn::Set(dd, 4.0), xd), du),
                            hn::Mul(du, th), acc);
        return hn::Mul(l.Prime(), acc);
      });
    }
    // x sigma(v) wholly in float64 lanes: v split into float hi + lo and
    // e^-|v| in float32 reached 4.10 ULP (x = -1.854, every 3rd float of
    // [-4, -1.2], tests/core/gelu_simd_test.cc).
    return InDouble(d, x, [](auto dd, auto xd0) {
      using VD = decltype(xd0);
      // sigma(v) is 0 or 1 in float32 beyond |x| = 20; the clamp keeps v
      // finite.
      const VD xd =
          hn::Min(hn::Max(xd0, hn::Set(dd, -20.0)), hn::Set(dd, 20.0));
      const VD x2 = hn::Mul(xd, xd);
      const VD v = hn::Mul(hn::Mul(hn::Set(dd, 2 * kK0), xd),
                           hn::MulAdd(hn::Set(dd, kK1), x2, hn::Set(dd, 1.0)));
      const Logistic<decltype(dd)> l(dd, v);
      return hn::Mul(xd0, l.Sigma(v));
    });
  }
};

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
