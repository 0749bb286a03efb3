// Per-target SIMD kernels of the elementwise functions (SPEC.md §1): f, f',
// f'' and the VJP g * f'(x), float32 and float64. Compiled once per
// instruction set by core/activation.cc through hwy/foreach_target.h; the
// plain C++ API is core/activation.h, the scalar oracle core/reference.h.
//
// Accuracy (SPEC.md §4; enforced per target by
// tests/core/simd_accuracy_test.cc, which prints the measured maxima):
//  - Every logistic quantity comes from e = e^-|x| in (0, 1], which never
//    overflows and keeps relative accuracy in both tails: sigma(x) = 1/(1+e)
//    or e/(1+e), sigma'(x) = e/(1+e)^2, sech^2 x = 4 e2/(1+e2)^2 with
//    e2 = e^-2|x|. Never 1 - sigma or 1 - tanh^2.
//  - tanh(|x|/2) = -expm1(-|x|)/(1+e), which keeps its digits for small |x|.
//  - gelu (float32) works in float64 lanes: x*x is exact there, so
//    e^(-x^2/2) carries no argument rounding, and erfc comes from Erfcx below.
//  - gelu_tanh (float32): the argument v = 2u of sigma is formed in float64
//    lanes and split into float hi + lo; e^-|v| = e^-|hi| (1 - sign(hi) lo).
//    Its rounding would otherwise be amplified by |v| (~87 where the result
//    underflows).
//  - float64 gelu and gelu_tanh have no kernel here: activation.cc sends
//    them to the long-double reference (an erfc to float64 accuracy is
//    future work; see BENCHMARKS.md).
// NaN in gives NaN out; +-inf give the limits of core/reference.h, patched
// in by the array loop (the formulas would form inf*0 there).

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_ACTIVATION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_ACTIVATION_INL_H_
#undef ACTSVC_CORE_ACTIVATION_INL_H_
#else
#define ACTSVC_CORE_ACTIVATION_INL_H_
#endif

#include <stddef.h>

#include <cstring>

#include "core/activation.h"
#include "core/reference.h"
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

template <class D, class V = hn::Vec<D>>
HWY_INLINE V OnePlusSquared(D d, V e);

// The logistic quantities of x from e = e^-|x|: s = 1 + e, r = 1/s.
template <class D, class V = hn::Vec<D>>
struct Logistic {
  V e, r;
  HWY_INLINE Logistic(D d, V x) {
    e = hn::Exp(d, hn::Neg(hn::Abs(x)));
    r = hn::Div(hn::Set(d, hn::TFromD<D>(1)),
                hn::Add(hn::Set(d, hn::TFromD<D>(1)), e));
  }
  // sigma(x) and sigma'(x) = e/(1+e)^2.
  HWY_INLINE V Sigma(V x) const {
    return hn::IfThenElse(hn::Lt(x, hn::Zero(D())), hn::Mul(e, r), r);
  }
  HWY_INLINE V Prime() const { return hn::Div(e, OnePlusSquared(D(), e)); }
};

// (1 + e)^2 for 0 <= e <= 1 with one rounding: s = 1 + e is split exactly
// (Fast2Sum) into s + err and s^2 exactly (FMA) into dh + dl, so that
// e/(1+e)^2 costs one rounding of the exponential, one here and one for the
// division (about 2 ULP instead of 4 for e r r).
template <class D, class V>
HWY_INLINE V OnePlusSquared(D d, V e) {
  const V one = hn::Set(d, hn::TFromD<D>(1));
  const V s = hn::Add(one, e);
  const V err = hn::Sub(e, hn::Sub(s, one));
  const V dh = hn::Mul(s, s);
  const V dl = hn::MulSub(s, s, dh);
  return hn::Add(dh, hn::MulAdd(hn::Add(s, s), err, dl));
}

// sigma''(x) = -sigma'(x) tanh(x/2), tanh(|x|/2) = -expm1(-|x|)/(1+e).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V SigmoidSecond(D d, V x, const Logistic<D>& l) {
  const V em = hn::Expm1(d, hn::Neg(hn::Abs(x)));
  const V v = hn::Mul(l.Prime(), hn::Mul(em, l.r));
  return hn::IfThenElse(hn::Lt(x, hn::Zero(d)), hn::Neg(v), v);
}

// ---------------------------------------------------------------------------
// One struct per function; Eval<kOrder>(d, x) is f, f' or f'' for finite x.
// kFixup: whether the array loop must patch in NaN and the +-inf limits.
// Tail<kOrder>(d, x), where defined: the lanes whose result is a normal
// number but some intermediate exponential is subnormal (e^-|x| below
// 2^-126 while x e^-|x| is not, for instance) and so carries too few
// digits. A vector with such a lane is computed by the scalar reference
// instead (the bands are narrow and far out in the tails).

// Lanes with lo <= x <= hi, bounds for float32 and float64.
template <class D, class V = hn::Vec<D>>
HWY_INLINE hn::Mask<D> InBand(D d, V x, double lo32, double hi32, double lo64,
                              double hi64) {
  using T = hn::TFromD<D>;
  const bool f32 = sizeof(T) == 4;
  return hn::And(hn::Ge(x, hn::Set(d, T(f32 ? lo32 : lo64))),
                 hn::Le(x, hn::Set(d, T(f32 ? hi32 : hi64))));
}

struct NoTail {
  static constexpr bool kHasTail = false;
};

struct IdentityK : NoTail {
  static constexpr bool kFixup = false;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    using T = hn::TFromD<D>;
    if constexpr (kOrder == 0) return x;
    // 1 or 0; NaN for NaN.
    const V c = hn::Set(d, T(kOrder == 1 ? 1 : 0));
    return hn::IfThenElse(hn::IsNaN(x), x, c);
  }
};

// leaky_relu with alpha; relu is alpha = 0 (the product alpha*x is then
// skipped: 0 * -inf would be NaN).
struct LeakyReluK : NoTail {
  static constexpr bool kFixup = false;
  double alpha;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    using T = hn::TFromD<D>;
    const auto pos = hn::Gt(x, hn::Zero(d));
    if constexpr (kOrder == 0) {
      if (alpha == 0)
        return hn::IfThenElseZero(hn::Not(hn::Le(x, hn::Zero(d))), x);
      return hn::IfThenElse(pos, x, hn::Mul(x, hn::Set(d, T(alpha))));
    } else {
      const V v = kOrder == 1 ? hn::IfThenElse(pos, hn::Set(d, T(1)),
                                               hn::Set(d, T(alpha)))
                              : hn::Zero(d);
      return hn::IfThenElse(hn::IsNaN(x), x, v);
    }
  }
};

struct SigmoidK : NoTail {
  static constexpr bool kFixup = true;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    const Logistic<D> l(d, x);
    if constexpr (kOrder == 0) return l.Sigma(x);
    if constexpr (kOrder == 1) return l.Prime();
    if constexpr (kOrder == 2) return SigmoidSecond(d, x, l);
  }
};

struct TanhK {
  static constexpr bool kFixup = true;
  static constexpr bool kHasTail = true;
  // sech^2 x = 4 e^-2|x|: e^-2|x| is subnormal from |x| > 43.7.
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE hn::Mask<D> Tail(D d, V x) const {
    if constexpr (kOrder == 0) return hn::FirstN(d, 0);  // Tanh has no tail
    return InBand(d, hn::Abs(x), 43, 46, 350, 375);
  }
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    using T = hn::TFromD<D>;
    if constexpr (kOrder == 0) return hn::Tanh(d, x);
    // sech^2 x = 4 e2 / (1 + e2)^2, e2 = e^-2|x|.
    const V e2 = hn::Exp(d, hn::Mul(hn::Abs(x), hn::Set(d, T(-2))));
    const V sech2 =
        hn::Div(hn::Mul(e2, hn::Set(d, T(4))), OnePlusSquared(d, e2));
    if constexpr (kOrder == 1) return sech2;
    return hn::Mul(hn::Mul(hn::Tanh(d, x), hn::Set(d, T(-2))), sech2);
  }
};

struct SiluK {
  static constexpr bool kFixup = true;
  static constexpr bool kHasTail = true;
  // x e^-|x| is normal out to |x| = 91.9 (float32), e^-|x| only to 87.3.
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE hn::Mask<D> Tail(D d, V x) const {
    return InBand(d, hn::Abs(x), 80, 110, 700, 760);
  }
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    using T = hn::TFromD<D>;
    const Logistic<D> l(d, x);
    if constexpr (kOrder == 0) return hn::Mul(x, l.Sigma(x));
    const V one = hn::Set(d, T(1));
    if constexpr (kOrder == 1) {
      // x >= 0: (1 + e (1 + x))/(1+e)^2; x < 0: e ((1 + x) + e)/(1+e)^2.
      // 1 + x is exact where it matters (x < -1/2).
      const V xp1 = hn::Add(one, x);
      const V neg = hn::Mul(l.e, hn::Add(xp1, l.e));
      const V pos = hn::MulAdd(l.e, xp1, one);
      const V num = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), neg, pos);
      return hn::Div(num, OnePlusSquared(d, l.e));
    }
    // sigma'(x) (2 + |x| expm1(-|x|)/(1+e)).
    const V a = hn::Abs(x);
    const V em = hn::Expm1(d, hn::Neg(a));
    const V t = hn::MulAdd(hn::Mul(a, em), l.r, hn::Set(d, T(2)));
    return hn::Mul(l.Prime(), t);
  }
};

struct SoftplusK : NoTail {
  static constexpr bool kFixup = true;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 0) {
      const V e = hn::Exp(d, hn::Neg(hn::Abs(x)));
      return hn::Add(hn::Max(x, hn::Zero(d)), hn::Log1p(d, e));
    }
    const Logistic<D> l(d, x);
    if constexpr (kOrder == 1) return l.Sigma(x);
    return l.Prime();
  }
};

// elu with alpha, and selu = lambda * elu(alpha_selu): x > 0 gives
// scale * x, else scale * alpha * expm1(x) (f) or scale * alpha * e^x.
struct EluK {
  static constexpr bool kFixup = true;
  static constexpr bool kHasTail = true;
  double scale;        // 1 for elu, lambda for selu
  double scale_alpha;  // alpha or lambda * alpha_selu, rounded once
  double tail_lo;      // alpha e^x can be normal while e^x is not, down to
                       // about -(min exponent + ln|alpha|)
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE hn::Mask<D> Tail(D d, V x) const {
    return InBand(d, x, tail_lo, -80, tail_lo, -700);
  }
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    using T = hn::TFromD<D>;
    const auto pos = hn::Gt(x, hn::Zero(d));
    const V sa = hn::Set(d, T(scale_alpha));
    if constexpr (kOrder == 0) {
      const V neg = hn::Mul(sa, hn::Expm1(d, hn::Min(x, hn::Zero(d))));
      return hn::IfThenElse(pos, hn::Mul(x, hn::Set(d, T(scale))), neg);
    }
    const V neg = hn::Mul(sa, hn::Exp(d, hn::Min(x, hn::Zero(d))));
    return hn::IfThenElse(pos, hn::Set(d, T(kOrder == 1 ? scale : 0.0)), neg);
  }
};

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

// ---------------------------------------------------------------------------
// Array loops.

// What the loop computes: f, f', f'' or the VJP g * f'.
enum class Kind : int { kF = 0, kD1 = 1, kD2 = 2, kVjp = 3 };

// What the loop needs besides the op: the +-inf limits (from the
// reference, in T) and the function for the scalar tail path.
template <typename T>
struct Limits {
  T pos_inf, neg_inf;
  Function f;
  double alpha;
};

template <int kOrder, bool kVjp, class Op, class D, class V = hn::Vec<D>>
HWY_INLINE V Apply(D d, const Op& op, V x, const V* g,
                   const Limits<hn::TFromD<D>>& lim) {
  using T = hn::TFromD<D>;
  V y = op.template Eval<kOrder>(d, x);
  if constexpr (Op::kHasTail) {
    if (HWY_UNLIKELY(!hn::AllFalse(d, op.template Tail<kOrder>(d, x)))) {
      HWY_ALIGN T buf[HWY_MAX_BYTES / sizeof(T)];
      hn::Store(x, d, buf);
      for (size_t i = 0; i < hn::Lanes(d); ++i) {
        buf[i] = reference::Elementwise<T>(lim.f, lim.alpha, kOrder, buf[i]);
      }
      // Only the lanes in the band: a result never depends on its
      // neighbours.
      y = hn::IfThenElse(op.template Tail<kOrder>(d, x), hn::Load(d, buf), y);
    }
  }
  if constexpr (Op::kFixup) {
    const V inf =
        hn::IfThenElse(hn::Gt(x, hn::Zero(d)), hn::Set(d, lim.pos_inf),
                       hn::Set(d, lim.neg_inf));
    y = hn::IfThenElse(hn::IsInf(x), inf, y);
    y = hn::IfThenElse(hn::IsNaN(x), x, y);
  }
  if constexpr (kVjp) y = hn::Mul(*g, y);
  return y;
}

template <int kOrder, bool kVjp, class Op, typename T>
HWY_NOINLINE void MapArray(const Op& op, const T* x, const T* g, T* y, size_t n,
                           Limits<T> lim) {
  const hn::ScalableTag<T> d;
  const size_t lanes = hn::Lanes(d);
  using V = hn::Vec<decltype(d)>;
  size_t i = 0;
  if (n >= 2 * lanes) {
    for (; i <= n - 2 * lanes; i += 2 * lanes) {
      const V x0 = hn::LoadU(d, x + i);
      const V x1 = hn::LoadU(d, x + i + lanes);
      V g0, g1;
      if constexpr (kVjp) {
        g0 = hn::LoadU(d, g + i);
        g1 = hn::LoadU(d, g + i + lanes);
      }
      const V y0 = Apply<kOrder, kVjp>(d, op, x0, &g0, lim);
      const V y1 = Apply<kOrder, kVjp>(d, op, x1, &g1, lim);
      hn::StoreU(y0, d, y + i);
      hn::StoreU(y1, d, y + i + lanes);
    }
  }
  // The remainder (fewer than 2 vectors), one padded vector at a time.
  for (; i < n; i += lanes) {
    const size_t count = n - i < lanes ? n - i : lanes;
    HWY_ALIGN T xb[HWY_MAX_BYTES / sizeof(T)] = {};
    HWY_ALIGN T gb[HWY_MAX_BYTES / sizeof(T)] = {};
    std::memcpy(xb, x + i, count * sizeof(T));
    if constexpr (kVjp) std::memcpy(gb, g + i, count * sizeof(T));
    const V gv = hn::Load(d, gb);
    hn::Store(Apply<kOrder, kVjp>(d, op, hn::Load(d, xb), &gv, lim), d, xb);
    std::memcpy(y + i, xb, count * sizeof(T));
  }
}

template <class Op, typename T>
HWY_INLINE void RunKind(const Op& op, Kind kind, const T* x, const T* g, T* y,
                        size_t n, Limits<T> lim) {
  switch (kind) {
    case Kind::kF:
      return MapArray<0, false>(op, x, g, y, n, lim);
    case Kind::kD1:
      return MapArray<1, false>(op, x, g, y, n, lim);
    case Kind::kD2:
      return MapArray<2, false>(op, x, g, y, n, lim);
    case Kind::kVjp:
      return MapArray<1, true>(op, x, g, y, n, lim);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
