// Per-target SIMD kernels of gelu and gelu_tanh (SPEC.md §1), used by
// core/activation.cc through the array loops of core/activation-inl.h.
//
// Accuracy (SPEC.md §4; enforced per target by
// tests/core/simd_accuracy_test.cc):
//  - gelu (float32) works in float64 lanes: x*x is exact there, so
//    e^(-x^2/2) carries no argument rounding, and erfc comes from Erfcx below.
//  - gelu_tanh (float32): the argument v = 2u of sigma is formed in float64
//    lanes and split into float hi + lo; e^-|v| = e^-|hi| (1 - sign(hi) lo).
//    Its rounding would otherwise be amplified by |v| (~87 where the result
//    underflows).
//  - float64 gelu and gelu_tanh have no kernel here: activation.cc sends
//    them to the long-double reference (an erfc to float64 accuracy is
//    future work; see BENCHMARKS.md).

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
// Erfcx: the scaled complementary error function erfc(t) e^(t^2), t >= 0.
//
// Valid lane types: float64 (used for float32 results).
// Max relative error: 3.3e-10 (0.006 float32 ULP) on [0, 10.6], measured in
// __float128 against erfcq(t)*expq(t*t); for t > 10.6 the polynomial
// extrapolates smoothly (s >= -1.38) and only meets results that underflow
// in float32 (gelu(x) for x < -14.9).
// Form: erfcx(t) = w P(s), w = 1/(t + 2), s = (w - mid)/half, P of degree 12
// interpolating erfcx(t)(t + 2) at the Chebyshev nodes of w in
// [1/12.6, 1/2]. erfcx ~ 1/(sqrt(pi) t) for large t, so P is smooth in w.
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

// gelu, float32 only (see the header comment): in float64 lanes,
// E = e^(-x^2/2) (x*x exact), q = erfc(|x|/sqrt2)/2 = E erfcx(t)/2,
// Phi = q (x < 0) or 1 - q, phi = E/sqrt(2 pi).
struct GeluK : NoTail {
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
      if constexpr (kOrder == 1) return hn::MulAdd(x, pdf, cdf);
      return hn::Mul(pdf, hn::NegMulAdd(x, x, hn::Set(d, 2.0)));
    });
  }
};

// gelu_tanh, float32 only: x sigma(v), v = 2u = 2 sqrt(2/pi)(x + 0.044715
// x^3). f splits v into float hi + lo (see the header comment); f' and f''
// run wholly in float64 lanes (f' cancels in part for x in (-2, -1)).
struct GeluTanhK {
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
    // v = 2u in float64, split into hi + lo.
    V vl;
    const V vh = InDouble(
        d, x,
        [](auto dd, auto xd0) {
          // sigma(v) is 0 or 1 in float32 beyond |x| = 20; the clamp keeps
          // v finite in float32.
          const auto xd =
              hn::Min(hn::Max(xd0, hn::Set(dd, -20.0)), hn::Set(dd, 20.0));
          const auto x2 = hn::Mul(xd, xd);
          return hn::Mul(hn::Mul(hn::Set(dd, 2 * kK0), xd),
                         hn::MulAdd(hn::Set(dd, kK1), x2, hn::Set(dd, 1.0)));
        },
        &vl);
    // e = e^-|v| = e^-|hi| (1 - sign(hi) lo).
    const V e0 = hn::Exp(d, hn::Neg(hn::Abs(vh)));
    const V slo = hn::IfThenElse(hn::Lt(vh, hn::Zero(d)), hn::Neg(vl), vl);
    const V e = hn::NegMulAdd(e0, slo, e0);
    const V r = hn::Div(hn::Set(d, T(1)), hn::Add(hn::Set(d, T(1)), e));
    const V sig = hn::IfThenElse(hn::Lt(vh, hn::Zero(d)), hn::Mul(e, r), r);
    return hn::Mul(x, sig);
  }
};

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
