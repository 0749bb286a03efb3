// gelu in float64 lanes (SPEC.md §1), for float64 arrays on every target,
// used by core/activation.cc through the array loops of
// core/activation-inl.h. The float32 kernels are in core/gelu-inl.h, and so
// is gelu_tanh for both types (GeluTanhK).
//
// Max error: as every elementwise kernel (core/activation-inl.h): f, f' and
// the VJP 4 ULP, f'' 16 ULP, on every target; see GeluF64K. Coefficients:
// scripts/fit_gelu_f64.py (mpmath, 40 digits).

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_GELU_F64_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_GELU_F64_INL_H_
#undef ACTSVC_CORE_GELU_F64_INL_H_
#else
#define ACTSVC_CORE_GELU_F64_INL_H_
#endif

#include "core/activation-inl.h"
#include "core/fast_math-inl.h"
#include "core/gelu-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ErfcxHalf64: h(a) = erfcx(a/sqrt2)/2 = Phi(-a) e^(a^2/2) as an unrounded
// pair hh + hl, for a in [3/4, 40].
// Valid lane types: float64. Valid range: a in [3/4, 40] (the fit's).
// Max error: the fit, 2.8e-19 relative, plus the Horner roundings of N and D
// damped by g/(a + g) (< 0.44, and < 1/a^2 for large a); tested through
// gelu f = -a E h (x < -3/4).
// Form: h = k / (a + g(a)), k = 1/sqrt(2 pi), g = N/D (after the continued
// fraction of erfcx, as ErfcxHalf of core/gelu-inl.h), y = a - 3/4, N and D
// of degrees 9 and 10 with positive coefficients; then h = k D / (a D + N)
// with numerator and denominator as exact pairs and one division, whose
// residual gives hl.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ErfcxHalf64(D d, V a, V* hl) {
  const V y = hn::Sub(a, hn::Set(d, 0.75));
  const V num =
      Horner(d, y, hn::Set(d, 2.5082200269377512e-07), 8.5828939431675306e-06,
             0.00014139863366077963, 0.0014604161099724367, 0.01037882071945918,
             0.052561396533602728, 0.18991295889609686, 0.47406195234127418,
             0.74818063136844348, 0.57877796522120706);
  const V den =
      Horner(d, y, hn::Set(d, 2.5082200269639992e-07), 8.7710104446586873e-06,
             0.00014833744817200397, 0.0015832546374040825,
             0.011742833074025624, 0.063015576310614177, 0.24732600900027235,
             0.70087904573309057, 1.3746167367251458, 1.6916905674747371, 1);
  // k D = nh + nl, a D + N = dh + dl (Fast2Sum: a D >= 3/4 > N(0) and
  // grows faster than N).
  const V kh = hn::Set(d, 0.3989422804014327);
  const V nh = hn::Mul(kh, den);
  const V nl = hn::MulAdd(hn::Set(d, -2.49232720227773e-17), den,
                          TwoProdLo(d, kh, den, nh));
  const V ad = hn::Mul(a, den);
  const V dh = hn::Add(ad, num);
  const V dl = hn::Add(hn::Add(hn::Sub(ad, dh), num), TwoProdLo(d, a, den, ad));
  const V r = hn::Div(hn::Set(d, 1.0), dh);
  const V q = hn::Mul(nh, r);
  // (nh + nl - q (dh + dl)) / dh.
  *hl = hn::Mul(hn::NegMulAdd(q, dl, hn::Add(Residual(d, nh, q, dh), nl)), r);
  return q;
}

// gelu, float64 lanes, every target (FMA or Dekker's products).
// a = |x| (clamped to 40: beyond, every result is 0, or subnormal for f''),
// E = e^(-a^2/2) from a^2 = p + pl exact (TwoProdLo) and ExpLo64 (es = E
// 2^64), k = 1/sqrt(2 pi) as a pair:
//  - |x| < 3/4, u = x^2: Phi(x) = 1/2 + x P(u), gelu'(x) = 1/2 + x S(u)
//    (P, S of degrees 9 and 10, fits 7e-20 and 5e-21; their constant terms
//    as pairs). f = x (1/2 + x P), f' = 1/2 + x S, with x P (x S) and the
//    sum 1/2 + x P as exact pairs: for x < 0 the sum cancels by up to 1.2x
//    (f) or fully (f' at its root -0.7518, just outside; SPEC.md §4's
//    absolute bound holds within 1/2 of it).
//  - |x| >= 3/4: h = hh + hl = ErfcxHalf64(a), Phi(-a) = E h, phi = E k:
//      f  = -a h E (x < 0; a h as an exact pair), x (1 - E h) (x >= 0);
//      f' = E t (x < 0), 1 - E t (x >= 0), t = h - a k (the pair k;
//           t cancels near the root, and by at most 1/0.86 beyond
//           x = -1.25).
//  - f'' = E k (2 - a^2) for every x (2 - a^2 from the pair a^2: exact for
//    a^2 in [1, 4], around its zeros +-sqrt2).
// The VJP g f' is formed from f' as hi + lo (EvalVjp), as in core/gelu-inl.h.
struct GeluF64K : NoTail {
  // NaN and +-inf are patched in by Eval (FixNonFinite), not the loop.
  static constexpr bool kFixup = false;
  // The VJP from f' = hi + lo (EvalVjp).
  static constexpr bool kVjpPair = true;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 1) {
      V lo, scale;
      const V hi = EvalFinite<1>(d, x, &lo, &scale);
      return FixNonFinite<1>(d, x, hn::Mul(hn::Add(hi, lo), scale));
    } else {
      return FixNonFinite<kOrder>(d, x, EvalFinite<kOrder>(d, x));
    }
  }
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalVjp(D d, V x, V g) const {
    V lo, scale;
    const V hi = EvalFinite<1>(d, x, &lo, &scale);
    return VjpFromPair(d, x, g, hi, lo, scale);
  }

  // Phi(x) - 1/2 = x P(u) (kS false) or gelu'(x) - 1/2 = x S(u) (kS true).
  template <bool kS, class D, class V = hn::Vec<D>>
  static HWY_INLINE V NearZero(D d, V u) {
    if constexpr (kS) {
      V q = hn::Set(d, 9.77608710383449e-11);
      q = hn::MulAdd(q, u, hn::Set(d, -2.2409719588006365e-09));
      q = hn::MulAdd(q, u, hn::Set(d, 4.0909101546306077e-08));
      q = hn::MulAdd(q, u, hn::Set(d, -6.5962003190948843e-07));
      q = hn::MulAdd(q, u, hn::Set(d, 9.3235688861717435e-06));
      q = hn::MulAdd(q, u, hn::Set(d, -0.00011333587471877521));
      q = hn::MulAdd(q, u, hn::Set(d, 0.0011543468761136399));
      q = hn::MulAdd(q, u, hn::Set(d, -0.0094986257238402413));
      q = hn::MulAdd(q, u, hn::Set(d, 0.059841342060214776));
      q = hn::MulAdd(q, u, hn::Set(d, -0.26596152026762176));
      // S(0) = 2k = 0.79788456080286541 - 4.98465440455546e-17.
      q = hn::MulAdd(q, u, hn::Set(d, -4.98465440455546e-17));
      return hn::Add(q, hn::Set(d, 0.79788456080286541));
    } else {
      V q = hn::Set(d, -9.9529544479903191e-11);
      q = hn::MulAdd(q, u, hn::Set(d, 2.2577361335440922e-09));
      q = hn::MulAdd(q, u, hn::Set(d, -4.1216311268309538e-08));
      q = hn::MulAdd(q, u, hn::Set(d, 6.6596522238030266e-07));
      q = hn::MulAdd(q, u, hn::Set(d, -9.4446552383860149e-06));
      q = hn::MulAdd(q, u, hn::Set(d, 0.00011543468746214624));
      q = hn::MulAdd(q, u, hn::Set(d, -0.0011873282154670926));
      q = hn::MulAdd(q, u, hn::Set(d, 0.0099735570100352271));
      q = hn::MulAdd(q, u, hn::Set(d, -0.066490380066905441));
      // P(0) = k = 0.3989422804014327 - 2.49232720227773e-17.
      q = hn::MulAdd(q, u, hn::Set(d, -2.49232720227773e-17));
      return hn::Add(q, hn::Set(d, 0.3989422804014327));
    }
  }

  // kOrder 0 or 2: the result. kOrder 1: f' = (result + *lo) * *scale.
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalFinite(D d, V x, V* lo = nullptr, V* scale = nullptr) const {
    static_assert(sizeof(hn::TFromD<D>) == 8, "float64 kernel");
    const V one = hn::Set(d, 1.0);
    const V a = hn::Min(hn::Abs(x), hn::Set(d, 40.0));
    const V p = hn::Mul(a, a);
    const V pl = TwoProdLo(d, a, a, p);
    const V m_half = hn::Set(d, -0.5);
    const V es = ExpLo64(d, hn::Mul(p, m_half), hn::Mul(pl, m_half));
    const V sc = hn::Set(d, kExpLo64Scale);
    const V kh = hn::Set(d, 0.3989422804014327);
    if constexpr (kOrder == 2) {
      const V m = hn::Sub(hn::Sub(hn::Set(d, 2.0), p), pl);
      return hn::Mul(hn::Mul(hn::Mul(es, kh), m), sc);
    }
    const auto small = hn::Lt(a, hn::Set(d, 0.75));
    const auto neg = hn::Lt(x, hn::Zero(d));
    V near = hn::Zero(d), near_lo = hn::Zero(d);
    if (!hn::AllFalse(d, small)) {
      // 1/2 + x c as s + sl (x c = m + ml exactly; Fast2Sum, |m| < 1/2).
      const V half = hn::Set(d, 0.5);
      const V c = NearZero<kOrder == 1>(d, p);
      const V m = hn::Mul(x, c);
      const V ml = TwoProdLo(d, x, c, m);
      const V s = hn::Add(half, m);
      const V sl = hn::Add(hn::Add(hn::Sub(half, s), m), ml);
      if constexpr (kOrder == 0) {
        near = hn::MulAdd(x, s, hn::Mul(x, sl));
      } else {
        near = s;
        near_lo = sl;
      }
    }
    if (hn::AllTrue(d, small)) {
      if constexpr (kOrder == 1) {
        *lo = near_lo;
        *scale = one;
      }
      return near;
    }
    V hl;
    const V hh = ErfcxHalf64(d, hn::Max(a, hn::Set(d, 0.75)), &hl);
    const V e = hn::Mul(es, sc);
    if constexpr (kOrder == 0) {
      // x < 0: -(a h) E, a h = ah + ahl exactly, one rounding before the
      // exact scaling. x >= 0: x (1 - E h).
      const V ah = hn::Mul(a, hh);
      const V ahl = hn::MulAdd(a, hl, TwoProdLo(d, a, hh, ah));
      const V fneg = hn::Neg(hn::Mul(hn::MulAdd(ah, es, hn::Mul(ahl, es)), sc));
      const V fpos =
          hn::Mul(x, hn::NegMulAdd(e, hl, hn::NegMulAdd(e, hh, one)));
      return hn::IfThenElse(small, near, hn::IfThenElse(neg, fneg, fpos));
    } else {
      // t = h - a k with a k = ak + akl exactly (k = kh + kl): one rounding
      // where t cancels in part (x in (-2, -1.25): NegMulAdd without FMA,
      // a k rounded first, reached 4.30 ULP in f' at x = -1.276).
      const V ak = hn::Mul(a, kh);
      const V akl = hn::MulAdd(a, hn::Set(d, -2.49232720227773e-17),
                               TwoProdLo(d, a, kh, ak));
      const V t = hn::Add(hn::Sub(hh, ak), hn::Sub(hl, akl));
      // x < 0: es t = et + etl exactly, scale 2^-64. x >= 0: 1 - E t (its
      // rounding left out; f' in [0.77, 1.13] there).
      const V et = hn::Mul(es, t);
      const V etl = TwoProdLo(d, es, t, et);
      const V fpos = hn::NegMulAdd(e, t, one);
      const auto sneg = hn::AndNot(small, neg);
      *lo = hn::IfThenElse(small, near_lo, hn::IfThenElseZero(neg, etl));
      *scale = hn::IfThenElse(sneg, sc, one);
      return hn::IfThenElse(small, near, hn::IfThenElse(neg, et, fpos));
    }
  }
};

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
