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
//  - float32 on AVX-512 (16 lanes): f, f' and the VJP of gelu and
//    gelu_tanh, from 32 table-driven polynomial pieces of width 1/4
//    (GeluPieces, GeluTanhPieces, GeluPrimePieces, GeluTanhPrimePieces in
//    core/gelu_pieces-inl.h; coefficients picked per lane by vpermt2ps) where x
//    lies in their range, which holds most of a network's pre-activations; the
//    lanes below it (the tail) by the formulas above, gathered densely by the
//    array loop's MapSplit (core/activation-inl.h), gelu f's with erfcx/2 from
//    GeluTailPieces. Which formula a lane gets depends on its x only.
//  - float32 on targets without FMA (SSSE3, SSE4, SCALAR): float64 lanes
//    (GeluDoubleK, GeluTanhDoubleK in core/gelu_double-inl.h), as exact
//    products and one-rounding polynomials are not available there; gelu' near
//    its root from the same expansion.
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
#include "core/gelu_pieces-inl.h"
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
  // f' as the VJP with g = 1, lane by lane (the pieces, and the tail's own
  // form below them), so that the VJP stays g times the Derivative's f'
  // within a rounding (near the root too, where the old gelu_tanh f' has
  // only its absolute bound).
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 1 && Enabled<D>()) {
      hn::Mask<D> tail;
      const V pieces = SplitVjp(d, x, hn::Set(d, hn::TFromD<D>(1)), &tail);
      if (HWY_LIKELY(hn::AllFalse(d, tail))) return pieces;
      return hn::IfThenElse(
          tail,
          op().TailVjp(d, InTail(d, x, tail), hn::Set(d, hn::TFromD<D>(1))),
          pieces);
    }
    return FromFinite<Op>::template Eval<kOrder>(d, x);
  }
  // x in the tail lanes, Pieces::kLo in the others: the tail's formulas
  // then form no inf or NaN in lanes whose result the blend drops (they
  // would take VjpFromPair's slow path).
  template <class D, class V = hn::Vec<D>>
  static HWY_INLINE V InTail(D d, V x, hn::Mask<D> tail) {
    return hn::IfThenElse(tail, x, hn::Set(d, hn::TFromD<D>(Pieces::kLo)));
  }
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalVjp(D d, V x, V g) const {
    if constexpr (Enabled<D>()) {
      hn::Mask<D> tail;
      const V pieces = SplitVjp(d, x, g, &tail);
      if (HWY_LIKELY(hn::AllFalse(d, tail))) return pieces;
      return hn::IfThenElse(tail, op().TailVjp(d, InTail(d, x, tail), g),
                            pieces);
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
  // v = c1 x + c3 x^3 as the pair vh + vl (returned, and *vl), from x^2 =
  // x2 + x2l exactly (*x2, *x2l, which the callers' other terms use) and c1
  // + c3 x^2 as the pair of Poly2.
  template <class D, class V = hn::Vec<D>>
  static HWY_INLINE V VPair(D d, V x, V* vl, V* x2, V* x2l) {
    using C = Consts<hn::TFromD<D>>;
    *x2 = hn::Mul(x, x);
    *x2l = TwoProdLo(d, x, x, *x2);
    V ml;
    const V mh = Poly2(d, C::kC1h, C::kC1l, C::kC3h, C::kC3l, *x2, *x2l, &ml);
    const V vh = hn::Mul(x, mh);
    *vl = hn::MulAdd(x, ml, TwoProdLo(d, x, mh, vh));
    return vh;
  }
  // f: on AVX-512 (float32 lanes), GeluTanhPieces where x >= its kLo, the
  // pair form (EvalFinite) below it; through the array loop's MapSplit
  // (SplitValue, TailValue), or a vector at a time here (the loop's
  // remainders, the half types). Which one depends on the lane's x only.
  static constexpr bool kSplitTail = GeluTanhPieces::kEnabled;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 0 && Enabled<D>()) {
      hn::Mask<D> tail;
      const V pieces = SplitValue(d, x, &tail);
      if (HWY_LIKELY(hn::AllFalse(d, tail))) return pieces;
      return hn::IfThenElse(tail, TailValue(d, x), pieces);
    }
    return FromFiniteSplitVjp<GeluTanhK, GeluTanhPrimePieces>::Eval<kOrder>(d,
                                                                            x);
  }
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V SplitValue(D d, V x, hn::Mask<D>* tail) const {
    *tail = hn::Not(hn::Ge(x, hn::Set(d, GeluTanhPieces::kLo)));
    return GeluTanhPieces::Value(d, x);
  }
  // f of the lanes below GeluTanhPieces::kLo (and NaN, -inf): EvalFinite<0>'s
  // x < 0 formula, which is what it gives there, without the other sign's.
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V TailValue(D d, V x) const {
    using T = hn::TFromD<D>;
    const V xc = hn::Max(x, hn::Set(d, -Consts<T>::kClamp));
    V vl, x2, x2l;
    const V vh = VPair(d, xc, &vl, &x2, &x2l);
    const V sc = hn::Set(d, T(kExpLoScale));
    const V es = ExpLo(d, vh, vl);
    const V ope = hn::MulAdd(es, sc, hn::Set(d, T(1)));
    return FixNonFinite<0>(d, x, DivNR(d, hn::Mul(hn::Mul(xc, es), sc), ope));
  }
  // The VJP of the lanes at or below GeluTanhPrimePieces::kLo (and NaN,
  // -inf): on AVX-512 (float32 lanes), TailPiecesVjp where x >= -17.5
  // (every such lane of a network's pre-activations); the pair form
  // (FromFinite::EvalVjp) elsewhere. Which one depends on the lane's x only.
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V TailVjp(D d, V x, V g) const {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    if constexpr (sizeof(hn::TFromD<D>) == 4) {
      const auto in = hn::Ge(x, hn::Set(d, GeluTanhTailPieces::kLo));
      const V pieces = TailPiecesVjp(d, x, g);
      if (HWY_LIKELY(hn::AllTrue(d, in))) return pieces;
      return hn::IfThenElse(in, pieces,
                            FromFinite<GeluTanhK>::EvalVjp(d, x, g));
    }
#endif
    return FromFinite<GeluTanhK>::EvalVjp(d, x, g);
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // g f'(x) for -17.5 <= x <= -1.875, float32 lanes: f' = e q(x) with e
  // = e^v from the pair v = vh + vl as EvalFinite forms it (x < 0: ExpLo of
  // (vh, vl), times 2^64) and q from GeluTanhTailPieces; es q as an exact
  // pair into VjpFromPair. About half the operations of EvalFinite<1>,
  // which computes both signs' formulas and 1 + x v' as TwoSums for the
  // cancellation near the root (none here: 1 + x v' <= -3.4).
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V TailPiecesVjp(D d, V x, V g) const {
    V vl, x2, x2l;
    const V vh = VPair(d, x, &vl, &x2, &x2l);
    const V es = ExpLo(d, vh, vl);
    const V q = GeluTanhTailPieces::Value(d, x);
    const V hi = hn::Mul(es, q);
    return VjpFromPair(d, x, g, hi, TwoProdLo(d, es, q, hi),
                       hn::Set(d, kExpLoScale));
  }
#endif
  // With kWantLo (kOrder 1), f' = (result + *lo) * *scale for VjpFromPair.
  template <int kOrder, bool kWantLo = false, class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalFinite(D d, V x, V* lo = nullptr, V* scale = nullptr) const {
    using T = hn::TFromD<D>;
    using C = Consts<T>;
    const V one = hn::Set(d, T(1));
    const V xc =
        hn::Min(hn::Max(x, hn::Set(d, -C::kClamp)), hn::Set(d, C::kClamp));
    V vl, x2, x2l;
    const V vh = VPair(d, xc, &vl, &x2, &x2l);
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

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
