// gelu and gelu_tanh for float32 arrays on targets without FMA (SSSE3, SSE4,
// EMU128, SCALAR), computed in float64 lanes: GeluDoubleK, GeluTanhDoubleK.
// Chosen by core/elementwise_ops-inl.h; the FMA kernels are in
// core/gelu-inl.h. Max error: as every elementwise kernel (4 ULP for f, f'
// and the VJP, 16 for f''; tests/core/ulp_budgets.h).

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_GELU_DOUBLE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_GELU_DOUBLE_INL_H_
#undef ACTSVC_CORE_GELU_DOUBLE_INL_H_
#else
#define ACTSVC_CORE_GELU_DOUBLE_INL_H_
#endif

#include "core/activation-inl.h"
#include "core/fast_math-inl.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------
// Targets without FMA (SSSE3, SSE4, EMU128, SCALAR): the float32 kernels
// of core/gelu-inl.h need exact products (TwoProdLo falls back to Dekker's, but
// the polynomials and corrections lose about 1 ULP without fused operations,
// and gelu then exceeds 4 ULP). These work in float64 lanes instead.

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
