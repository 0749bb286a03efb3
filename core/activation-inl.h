// Per-target SIMD kernels of the elementwise functions (SPEC.md §1): f, f',
// f'' and the VJP g * f'(x), float32 and float64. Compiled once per
// instruction set by core/activation.cc through hwy/foreach_target.h; the
// plain C++ API is core/activation.h, the scalar oracle core/reference.h.
//
// Valid lane types: float32, float64. Valid range: every finite x; NaN in
// gives NaN out, +-inf the limits of core/reference.h.
// Max error (SPEC.md §4; every target; the table of
// tests/core/ulp_budgets.h): f, f' and the VJP g * f' 4 ULP, f'' 16 ULP,
// for results that are normal numbers; a subnormal result within the
// smallest normal; within +-0.5 of an interior zero of f' or f'' (silu) the
// absolute bound 4 * 2^-(digits - 1) (x4 for f''). Maxima measured per
// target: BENCHMARKS.md, "Accuracy of the kernels".
// How:
//  - Every logistic quantity comes from e = e^-|x| in (0, 1], which never
//    overflows and keeps relative accuracy in both tails: sigma(x) = 1/(1+e)
//    or e/(1+e), sigma'(x) = e/(1+e)^2, sech^2 x = 4 e2/(1+e2)^2 with
//    e2 = e^-2|x|. Never 1 - sigma or 1 - tanh^2.
//  - tanh(|x|/2) = -expm1(-|x|)/(1+e), which keeps its digits for small |x|.
//  - float32: e^t, expm1(t), 1/s and a/b come from core/fast_math-inl.h
//    (ExpNeg, Reciprocal, Divide; their contracts are there); float64 uses
//    hn::Exp, hn::Expm1 and division.
//  - gelu and gelu_tanh live in core/gelu-inl.h.
// Special values: +-inf's limits are patched in by the array loop (the
// formulas would form inf*0 there) unless the op's float32 formulas give
// them already (kNativeSpecialsF32: sigmoid and tanh on x86).

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_ACTIVATION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_ACTIVATION_INL_H_
#undef ACTSVC_CORE_ACTIVATION_INL_H_
#else
#define ACTSVC_CORE_ACTIVATION_INL_H_
#endif

#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <type_traits>

#include "core/activation.h"
#include "core/fast_math-inl.h"
#include "core/reference.h"
#include "core/stores.h"
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class V = hn::Vec<D>>
HWY_INLINE V OnePlusSquared(D d, V e);

// The logistic quantities of x from e = e^-|x|: s = 1 + e, r = 1/s.
// float32: e from ExpNeg (core/fast_math-inl.h, <= 1 ULP, subnormals kept),
// r by Reciprocal (0.5625 ULP of the rounded 1 + e); float64: hn::Exp, Div.
template <class D, class V = hn::Vec<D>>
struct Logistic {
  ExpNeg<D> ex;
  V e, r;
  HWY_INLINE Logistic(D d, V x) : ex(d, hn::Neg(hn::Abs(x))) {
    e = ex.Exp(d);
    r = Reciprocal(d, hn::Add(hn::Set(d, hn::TFromD<D>(1)), e));
  }
  // sigma(x) and sigma'(x) = e/(1+e)^2.
  HWY_INLINE V Sigma(V x) const {
    return hn::IfThenElse(hn::Lt(x, hn::Zero(D())), hn::Mul(e, r), r);
  }
  // (1+e)^2; float32: as 1 + e (2 + e), one FMA (up to 0.75 ULP more than
  // OnePlusSquared's single rounding, within the budgets; five operations
  // less).
  HWY_INLINE V OnePlusESquared() const {
    const D d;
    using T = hn::TFromD<D>;
    if constexpr (sizeof(T) == 4) {
      return hn::MulAdd(e, hn::Add(e, hn::Set(d, T(2))), hn::Set(d, T(1)));
    }
    return OnePlusSquared(d, e);
  }
  HWY_INLINE V Prime() const { return Divide(D(), e, OnePlusESquared()); }
  // expm1(-|x|), from the same range reduction as e in float32.
  HWY_INLINE V Em() const { return ex.Expm1(D()); }
};

// (1 + e)^2 for 0 <= e <= 1 with one rounding: s = 1 + e is split exactly
// (Fast2Sum) into s + err and s^2 exactly (TwoProdLo: FMA, or Dekker's
// product without it) into dh + dl, so that
// e/(1+e)^2 costs one rounding of the exponential, one here and one for the
// division (about 2 ULP instead of 4 for e r r).
template <class D, class V>
HWY_INLINE V OnePlusSquared(D d, V e) {
  const V one = hn::Set(d, hn::TFromD<D>(1));
  const V s = hn::Add(one, e);
  const V err = hn::Sub(e, hn::Sub(s, one));
  const V dh = hn::Mul(s, s);
  const V dl = TwoProdLo(d, s, s, dh);
  return hn::Add(dh, hn::MulAdd(hn::Add(s, s), err, dl));
}

// sigma''(x) = -sigma'(x) tanh(x/2), tanh(|x|/2) = -expm1(-|x|)/(1+e).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V SigmoidSecond(D d, V x, const Logistic<D>& l) {
  const V v = hn::Mul(l.Prime(), hn::Mul(l.Em(), l.r));
  return hn::IfThenElse(hn::Lt(x, hn::Zero(d)), hn::Neg(v), v);
}

// ---------------------------------------------------------------------------
// One struct per function; Eval<kOrder>(d, x) is f, f' or f'' for finite x.
// kFixup: whether the array loop must patch in NaN and the +-inf limits;
// kNativeSpecialsF32 (optional): not needed in float32 lanes after all.
// Tail<kOrder>(d, x), where defined (kHasTail; for kOrder >= kTailMinOrder,
// 0 unless declared): the lanes whose result is a normal number but some
// intermediate exponential is subnormal (e^-|x| below 2^-126 while
// x e^-|x| is not, for instance) and so carries too few digits. Those lanes
// are computed by the scalar reference instead (the bands are narrow and
// far out in the tails).

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
  // The VJP, g f'(x). On AVX-512, f' of float32 lanes is one vfixupimmps
  // (alpha, kept for zeros, negatives and -inf; 1 for positives and +inf;
  // x quieted for NaN) in place of Eval<1>'s two comparisons and two
  // selects: the half VJP's fused loop is bound by those ports (BENCHMARKS.md,
  // "Session 17"). Classification treats denormals as zero only under
  // MXCSR.DAZ, which nothing here sets.
  static constexpr bool kVjpPair = true;
  template <class D, class V = hn::Vec<D>>
  HWY_INLINE V EvalVjp(D d, V x, V g) const {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    using T = hn::TFromD<D>;
    if constexpr (sizeof(T) == 4 && hn::MaxLanes(D()) == 16) {
      // Tokens per class, 4 bits each from QNaN up: QNaN(x) (2) for QNaN
      // and SNaN, dest for zero, +1 (10) for one, dest for -inf, +1 for
      // +inf, dest for negative, +1 for positive.
      constexpr int kTable = static_cast<int>(0xA0A0A022u);
      const V f1{_mm512_fixupimm_ps(hn::Set(d, T(alpha)).raw, x.raw,
                                    _mm512_set1_epi32(kTable), 0)};
      return hn::Mul(g, f1);
    }
#endif
    return hn::Mul(g, Eval<1>(d, x));
  }
};

// leaky_relu for 0 < alpha <= 1 (as T; activation.cc picks it): f is
// max(x, alpha x), the same value as the select's (bit for bit: +-0 and -inf
// too, and NaN where x is) in one operation less. A type of its own, so that
// the test on alpha is not repeated in the loop.
struct LeakyReluUnitK : LeakyReluK {
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 0) {
      return hn::Max(x, hn::Mul(x, hn::Set(d, hn::TFromD<D>(alpha))));
    }
    return LeakyReluK::Eval<kOrder>(d, x);
  }
};

// sigma(+-inf) = 1, 0, sigma'(+-inf) = 0 and sigma'' = -0 come out of the
// float32 formulas (e = 0), and NaN stays NaN where ACTSVC_MAX_KEEPS_NAN
// (float64's hn::Exp gives 0 for NaN: patched).
struct SigmoidK : NoTail {
  static constexpr bool kFixup = true;
  static constexpr bool kNativeSpecialsF32 = ACTSVC_MAX_KEEPS_NAN;
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    const Logistic<D> l(d, x);
    if constexpr (kOrder == 0) return l.Sigma(x);
    if constexpr (kOrder == 1) return l.Prime();
    if constexpr (kOrder == 2) return SigmoidSecond(d, x, l);
  }
};

// tanh from one e2 = e^-2|x| split (ExpNeg): em = expm1(-2|x|),
// tanh|x| = -em/(2 + em), which keeps its digits for small |x| (the form of
// math-inl.h's Tanh, with the float32 helpers); sech^2 x = 4 e2/(1 + e2)^2.
// As sigmoid's, the formulas give tanh(+-inf) = +-1 and 0 for sech^2.
struct TanhK {
  static constexpr bool kFixup = true;
  static constexpr bool kNativeSpecialsF32 = ACTSVC_MAX_KEEPS_NAN;
  static constexpr bool kHasTail = true;
  static constexpr int kTailMinOrder = 1;  // tanh itself has no tail
  // sech^2 x = 4 e^-2|x|: e^-2|x| is subnormal from |x| > 43.7.
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE hn::Mask<D> Tail(D d, V x) const {
    return InBand(d, hn::Abs(x), 43, 46, 350, 375);
  }
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    using T = hn::TFromD<D>;
    const ExpNeg<D, false> ex(d, hn::Mul(hn::Abs(x), hn::Set(d, T(-2))));
    V th;
    if constexpr (kOrder != 1) {
      const V em = ex.Expm1(d);
      // em/(2 + em) is -tanh|x|; CopySign sets the sign of x.
      // float32: em * (1/(2 + em)) is less accurate than the division
      // (within the budget) but two operations shorter.
      const V den = hn::Add(em, hn::Set(d, T(2)));
      const V mag =
          sizeof(T) == 4 ? hn::Mul(em, Reciprocal(d, den)) : hn::Div(em, den);
      th = hn::CopySign(mag, x);
      if constexpr (kOrder == 0) return th;
    }
    const V e2 = ex.Exp(d);
    const V sech2 =
        Divide(d, hn::Mul(e2, hn::Set(d, T(4))),
               hn::MulAdd(e2, hn::Add(e2, hn::Set(d, T(2))), hn::Set(d, T(1))));
    if constexpr (kOrder == 1) return sech2;
    return hn::Mul(hn::Mul(th, hn::Set(d, T(-2))), sech2);
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
      return Divide(d, num, l.OnePlusESquared());
    }
    // sigma'(x) (2 + |x| expm1(-|x|)/(1+e)).
    const V t = hn::MulAdd(hn::Mul(hn::Abs(x), l.Em()), l.r, hn::Set(d, T(2)));
    return hn::Mul(l.Prime(), t);
  }
};

struct SoftplusK : NoTail {
  static constexpr bool kFixup = true;
#if HWY_NATIVE_FMA
  // log1p(e) for float32 e in [0, 1] (Highway's Log1p takes any e, through
  // a logarithm and a division): 2 atanh(s) = 2s + s z P(z), s = e/(2 + e)
  // in [0, 1/3], z = s^2, P of degree 4 (relative least squares at
  // Chebyshev nodes on [0, 1/9] against (2 atanh(s) - 2s)/s^3, rounded from
  // the highest order down with refits). s is e/(2 + e) with 2 + e as an
  // exact pair in the division's residual step (Divide's form), and 2s + sz
  // P rounds once. Max error: 1.09 ULP for exact e (float32 emulation over
  // every 2^-21 of [0, 1] and down to 1e-38); e's own error (ExpNeg, 1 ULP)
  // passes through at most once (log1p's condition number is below 1).
  template <class D, class V = hn::Vec<D>>
  static HWY_INLINE V Log1pOfUnit(D d, V e) {
    const V two = hn::Set(d, 2.0f);
    const V den = hn::Add(two, e);
    const V den_lo = hn::Sub(e, hn::Sub(den, two));  // exact: 2 >= e
    const V r = Reciprocal(d, den);
    const V q0 = hn::Mul(e, r);
    const V res = hn::NegMulAdd(q0, den_lo, hn::NegMulAdd(q0, den, e));
    const V s = hn::MulAdd(res, r, q0);
    const V z = hn::Mul(s, s);
    const V p = Horner(d, z, hn::Set(d, 2.322172076e-01f), 2.170707285e-01f,
                       2.859233320e-01f, 3.999970555e-01f, 6.666666865e-01f);
    return hn::MulAdd(hn::Mul(s, z), p, hn::Add(s, s));
  }
#endif
  template <int kOrder, class D, class V = hn::Vec<D>>
  HWY_INLINE V Eval(D d, V x) const {
    if constexpr (kOrder == 0) {
      // The result is subnormal where e is: no subnormal e needed.
      const V e = ExpNeg<D, false>(d, hn::Neg(hn::Abs(x))).Exp(d);
#if HWY_NATIVE_FMA
      if constexpr (sizeof(hn::TFromD<D>) == 4) {
        return hn::Add(hn::Max(x, hn::Zero(d)), Log1pOfUnit(d, e));
      }
#endif
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
    // Where alpha e^x is normal but e^x is not, Tail sends x to the
    // reference: no subnormal e^x needed.
    const ExpNeg<D, false> ex(d, hn::Min(x, hn::Zero(d)));
    if constexpr (kOrder == 0) {
      const V neg = hn::Mul(sa, ex.Expm1(d));
      return hn::IfThenElse(pos, hn::Mul(x, hn::Set(d, T(scale))), neg);
    }
    const V neg = hn::Mul(sa, ex.Exp(d));
    return hn::IfThenElse(pos, hn::Set(d, T(kOrder == 1 ? scale : 0.0)), neg);
  }
};

// ---------------------------------------------------------------------------
// Array loops.

// What the loop needs besides the op: the +-inf limits (from the
// reference, in T) and the function for the scalar tail path.
template <typename T>
struct Limits {
  T pos_inf, neg_inf;
  Function f;
  double alpha;
};

// Op::kNativeSpecialsF32, false where Op does not declare it.
template <class Op, class = void>
struct NativeSpecialsF32 : std::false_type {};
template <class Op>
struct NativeSpecialsF32<Op, std::void_t<decltype(Op::kNativeSpecialsF32)>>
    : std::bool_constant<Op::kNativeSpecialsF32> {};

// Op::kTailMinOrder (optional): the lowest order with a Tail band.
template <class Op, class = void>
struct TailMinOrder : std::integral_constant<int, 0> {};
template <class Op>
struct TailMinOrder<Op, std::void_t<decltype(Op::kTailMinOrder)>>
    : std::integral_constant<int, Op::kTailMinOrder> {};

// y with the lanes of tail replaced by the scalar reference at x (only those
// lanes: a result never depends on its neighbours). Out of line: the rare
// path's call would otherwise make the hot loop spill its constants.
template <int kOrder, class D, class V = hn::Vec<D>>
HWY_NOINLINE V ReferenceLanes(D d, V x, V y, hn::Mask<D> tail,
                              const Limits<hn::TFromD<D>>& lim) {
  using T = hn::TFromD<D>;
  HWY_ALIGN T buf[HWY_MAX_BYTES / sizeof(T)];
  hn::Store(x, d, buf);
  for (size_t i = 0; i < hn::Lanes(d); ++i) {
    buf[i] = reference::Elementwise<T>(lim.f, lim.alpha, kOrder, buf[i]);
  }
  return hn::IfThenElse(tail, hn::Load(d, buf), y);
}

// Op::kVjpPair (optional): the op computes the VJP itself (EvalVjp, every
// lane incl. NaN and +-inf), from f' as hi + lo, so that f' is not rounded
// before the product (core/gelu-inl.h).
template <class Op, class = void>
struct VjpPair : std::false_type {};
template <class Op>
struct VjpPair<Op, std::void_t<decltype(Op::kVjpPair)>>
    : std::bool_constant<Op::kVjpPair> {};

template <int kOrder, bool kVjp, class Op, class D, class V = hn::Vec<D>>
HWY_INLINE V Apply(D d, const Op& op, V x, const V* g,
                   const Limits<hn::TFromD<D>>& lim) {
  using T = hn::TFromD<D>;
  if constexpr (kVjp && VjpPair<Op>::value) {
    static_assert(!Op::kHasTail && !Op::kFixup, "EvalVjp takes every lane");
    return op.EvalVjp(d, x, *g);
  }
  V y = op.template Eval<kOrder>(d, x);
  if constexpr (Op::kHasTail && kOrder >= TailMinOrder<Op>::value) {
    const auto tail = op.template Tail<kOrder>(d, x);
    if (HWY_UNLIKELY(!hn::AllFalse(d, tail))) {
      y = ReferenceLanes<kOrder>(d, x, y, tail, lim);
    }
  }
  if constexpr (Op::kFixup &&
                !(sizeof(T) == 4 && NativeSpecialsF32<Op>::value)) {
    // One test per vector; the patch only where a lane is NaN or +-inf.
    if (HWY_UNLIKELY(!hn::AllTrue(d, hn::IsFinite(x)))) {
      const V inf =
          hn::IfThenElse(hn::Gt(x, hn::Zero(d)), hn::Set(d, lim.pos_inf),
                         hn::Set(d, lim.neg_inf));
      y = hn::IfThenElse(hn::IsInf(x), inf, y);
      y = hn::IfThenElse(hn::IsNaN(x), x, y);
    }
  }
  if constexpr (kVjp) y = hn::Mul(*g, y);
  return y;
}

// Whether an output of `bytes` bytes is written with non-temporal stores
// (hn::Stream): core/stores.h.
inline bool StreamArray(size_t bytes) {
  return StreamOutput(StoreUse::kElementwise, bytes);
}

// Whether the inputs of an array of `bytes` bytes are prefetched ahead of
// the loop (PrefetchAhead, core/stores.h): beyond the caches. Not below: at
// 64K elements, in L2, the prefetches cost 10-18% (BENCHMARKS.md, "Session
// 12: an Intel guest").
inline bool PrefetchArray(size_t bytes) {
  return BeyondCaches(StoreUse::kElementwise, bytes);
}

// y[i, i + count) for count <= one vector, through a padded vector.
template <int kOrder, bool kVjp, class Op, class D, typename T>
HWY_INLINE void MapPartial(D d, const Op& op, const T* x, const T* g, T* y,
                           size_t count, const Limits<T>& lim) {
  HWY_ALIGN T xb[HWY_MAX_BYTES / sizeof(T)] = {};
  HWY_ALIGN T gb[HWY_MAX_BYTES / sizeof(T)] = {};
  std::memcpy(xb, x, count * sizeof(T));
  if constexpr (kVjp) std::memcpy(gb, g, count * sizeof(T));
  const hn::Vec<D> gv = hn::Load(d, gb);
  hn::Store(Apply<kOrder, kVjp>(d, op, hn::Load(d, xb), &gv, lim), d, xb);
  std::memcpy(y, xb, count * sizeof(T));
}

// Whole pairs of vectors from i; returns where it stopped. kStream: y + i
// is vector-aligned, the stores are non-temporal. prefetch: x (and g)
// are prefetched ahead (PrefetchArray).
template <int kOrder, bool kVjp, bool kStream, class Op, class D, typename T>
HWY_INLINE size_t MapPairs(D d, const Op& op, const T* x, const T* g, T* y,
                           size_t i, size_t n, const Limits<T>& lim,
                           bool prefetch) {
  using V = hn::Vec<D>;
  const size_t lanes = hn::Lanes(d);
  constexpr size_t kPairBytes = 2 * hn::MaxLanes(d) * sizeof(T);
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    if (prefetch) {
      PrefetchAhead<kPairBytes>(x + i);
      if constexpr (kVjp) PrefetchAhead<kPairBytes>(g + i);
    }
    const V x0 = hn::LoadU(d, x + i);
    const V x1 = hn::LoadU(d, x + i + lanes);
    V g0, g1;
    if constexpr (kVjp) {
      g0 = hn::LoadU(d, g + i);
      g1 = hn::LoadU(d, g + i + lanes);
    }
    const V y0 = Apply<kOrder, kVjp>(d, op, x0, &g0, lim);
    const V y1 = Apply<kOrder, kVjp>(d, op, x1, &g1, lim);
    if constexpr (kStream) {
      hn::Stream(y0, d, y + i);
      hn::Stream(y1, d, y + i + lanes);
    } else {
      hn::StoreU(y0, d, y + i);
      hn::StoreU(y1, d, y + i + lanes);
    }
  }
  return i;
}

// Op::kSplitTail (optional): the op's f takes two formulas, a short one for
// most lanes and a long one for the others (its tail lanes, chosen by x
// alone, so that a result never depends on its neighbours): SplitValue(d,
// x, &tail) returns the short one for every lane and the mask of tail
// lanes, TailValue(d, x) the long one. MapSplit then evaluates the tail
// lanes in a second pass, gathered densely, instead of both formulas for
// every vector that holds one.
// Op::kSplitVjp (optional): the same for the VJP, SplitVjp(d, x, g, &tail)
// and TailVjp(d, x, g).
template <class Op, class = void>
struct SplitTail : std::false_type {};
template <class Op>
struct SplitTail<Op, std::void_t<decltype(Op::kSplitTail)>>
    : std::bool_constant<Op::kSplitTail> {};
template <class Op, class = void>
struct SplitVjp : std::false_type {};
template <class Op>
struct SplitVjp<Op, std::void_t<decltype(Op::kSplitVjp)>>
    : std::bool_constant<Op::kSplitVjp> {};

// `no` with the lanes of mask replaced, in order, by the first lanes of
// packed (Expand; hwy 1.0 has none).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpandInto(D d, V no, hn::Mask<D> mask, V packed) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if constexpr (sizeof(hn::TFromD<D>) == 4 && hn::MaxLanes(d) == 16) {
    return V{_mm512_mask_expand_ps(no.raw, mask.raw, packed.raw)};
  }
#endif
  using T = hn::TFromD<D>;
  constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(T);
  HWY_ALIGN T out[kMaxLanes], in[kMaxLanes];
  HWY_ALIGN T pick[kMaxLanes];
  hn::Store(no, d, out);
  hn::Store(packed, d, in);
  hn::Store(hn::IfThenElseZero(mask, hn::Set(d, T(1))), d, pick);
  for (size_t i = 0, k = 0; i < hn::Lanes(d); ++i) {
    if (pick[i] != T(0)) out[i] = in[k++];
  }
  return hn::Load(d, out);
}

// f over y[0, m), m <= kSplitBlock, for an Op with kSplitTail: pass 1
// stores each vector without a tail lane to y (non-temporal stores with
// kStream; y vector-aligned; x and g prefetched ahead with prefetch),
// keeps the others in a local block and gathers
// the x of their tail lanes with Compress; pass 2 evaluates those, a whole
// vector at a time; pass 3 expands them into place on the way to y.
constexpr size_t kSplitBlock = 1024;
template <bool kVjp, bool kStream, class Op, class D, typename T>
HWY_INLINE void MapSplitBlock(D d, const Op& op, const T* x, const T* g, T* y,
                              size_t m, bool prefetch) {
  using V = hn::Vec<D>;
  constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(T);
  HWY_ALIGN T out[kSplitBlock];
  HWY_ALIGN T tail_x[kSplitBlock + kMaxLanes];
  HWY_ALIGN T tail_g[kVjp ? kSplitBlock + kMaxLanes : 1];
  uint8_t tail_bits[kSplitBlock / 8 + 8];
  uint32_t held[kSplitBlock];  // the offsets of the vectors kept in out
  const size_t lanes = hn::Lanes(d);
  const size_t bytes_per_mask = (lanes + 7) / 8;
  const size_t full = m - m % lanes;
  size_t count = 0, num_held = 0;
  for (size_t j = 0; j < m; j += lanes) {
    if (prefetch) {
      PrefetchAhead<hn::MaxLanes(d) * sizeof(T)>(x + j);
      if constexpr (kVjp) PrefetchAhead<hn::MaxLanes(d) * sizeof(T)>(g + j);
    }
    V xv, gv, v;
    hn::Mask<D> tail;
    if (HWY_LIKELY(j < full)) {
      xv = hn::LoadU(d, x + j);
      if constexpr (kVjp) {
        gv = hn::LoadU(d, g + j);
        v = op.SplitVjp(d, xv, gv, &tail);
      } else {
        v = op.SplitValue(d, xv, &tail);
      }
    } else {
      HWY_ALIGN T xb[kMaxLanes] = {};
      std::memcpy(xb, x + j, (m - j) * sizeof(T));
      xv = hn::Load(d, xb);
      if constexpr (kVjp) {
        HWY_ALIGN T gb[kMaxLanes] = {};
        std::memcpy(gb, g + j, (m - j) * sizeof(T));
        gv = hn::Load(d, gb);
        v = op.SplitVjp(d, xv, gv, &tail);
      } else {
        v = op.SplitValue(d, xv, &tail);
      }
      tail = hn::And(tail, hn::FirstN(d, m - j));
      hn::Store(v, d, out + j);  // copied to y below
      if (hn::AllFalse(d, tail)) break;
    }
    if (HWY_LIKELY(hn::AllFalse(d, tail))) {
      if constexpr (kStream) {
        hn::Stream(v, d, y + j);
      } else {
        hn::StoreU(v, d, y + j);
      }
      continue;
    }
    hn::Store(v, d, out + j);
    hn::StoreMaskBits(d, tail, tail_bits + num_held * bytes_per_mask);
    held[num_held++] = static_cast<uint32_t>(j);
    hn::StoreU(hn::Compress(xv, tail), d, tail_x + count);
    if constexpr (kVjp) hn::StoreU(hn::Compress(gv, tail), d, tail_g + count);
    count += hn::CountTrue(d, tail);
  }
  // The last vector's padding.
  hn::StoreU(hn::Zero(d), d, tail_x + count);
  if constexpr (kVjp) hn::StoreU(hn::Zero(d), d, tail_g + count);
  for (size_t k = 0; k < count; k += lanes) {
    const V tx = hn::Load(d, tail_x + k);
    if constexpr (kVjp) {
      hn::Store(op.TailVjp(d, tx, hn::Load(d, tail_g + k)), d, tail_x + k);
    } else {
      hn::Store(op.TailValue(d, tx), d, tail_x + k);
    }
  }
  size_t k = 0;
  for (size_t h = 0; h < num_held; ++h) {
    const size_t j = held[h];
    const auto tail = hn::LoadMaskBits(d, tail_bits + h * bytes_per_mask);
    const V v =
        ExpandInto(d, hn::Load(d, out + j), tail, hn::LoadU(d, tail_x + k));
    k += hn::CountTrue(d, tail);
    if (HWY_LIKELY(j < full)) {
      if constexpr (kStream) {
        hn::Stream(v, d, y + j);
      } else {
        hn::StoreU(v, d, y + j);
      }
    } else {
      hn::Store(v, d, out + j);
    }
  }
  if (full < m) std::memcpy(y + full, out + full, (m - full) * sizeof(T));
}

template <bool kVjp, class Op, typename T>
HWY_INLINE void MapSplit(const Op& op, const T* x, const T* g, T* y, size_t n) {
  const hn::ScalableTag<T> d;
  const size_t lanes = hn::Lanes(d);
  const uintptr_t yaddr = reinterpret_cast<uintptr_t>(y);
  const bool prefetch = PrefetchArray(n * sizeof(T));
  size_t i = 0;
  if (StreamArray(n * sizeof(T)) && yaddr % sizeof(T) == 0) {
    // Up to a vector boundary of y, then blocks with non-temporal stores.
    const size_t mis = (yaddr / sizeof(T)) % lanes;
    if (mis != 0) {
      MapSplitBlock<kVjp, false>(d, op, x, g, y, lanes - mis, prefetch);
      i = lanes - mis;
    }
    for (; i < n; i += kSplitBlock) {
      const size_t m = n - i < kSplitBlock ? n - i : kSplitBlock;
      MapSplitBlock<kVjp, true>(d, op, x + i, kVjp ? g + i : g, y + i, m,
                                prefetch);
    }
    hwy::FlushStream();
    return;
  }
  for (; i < n; i += kSplitBlock) {
    const size_t m = n - i < kSplitBlock ? n - i : kSplitBlock;
    MapSplitBlock<kVjp, false>(d, op, x + i, kVjp ? g + i : g, y + i, m,
                               prefetch);
  }
}

template <int kOrder, bool kVjp, class Op, typename T>
HWY_NOINLINE void MapArray(const Op& op_arg, const T* x, const T* g, T* y,
                           size_t n, Limits<T> lim) {
  // A local copy: the stores to y cannot change it, so the compiler hoists
  // the op's parameters (leaky_relu's alpha tests, elu's constants) out of
  // the loop instead of reloading them for every vector.
  const Op op = op_arg;
  if constexpr (sizeof(T) == 4 && kOrder == 0 && !kVjp &&
                SplitTail<Op>::value) {
    return MapSplit<false>(op, x, g, y, n);
  }
  if constexpr (sizeof(T) == 4 && kVjp && SplitVjp<Op>::value) {
    return MapSplit<true>(op, x, g, y, n);
  }
  const hn::ScalableTag<T> d;
  const size_t lanes = hn::Lanes(d);
  size_t i = 0;
  const uintptr_t yaddr = reinterpret_cast<uintptr_t>(y);
  const bool prefetch = PrefetchArray(n * sizeof(T));
  if (n >= 4 * lanes && yaddr % sizeof(T) == 0) {
    // The first elements up to a vector boundary of y, then aligned stores:
    // a misaligned vector store writes two cache lines (malloc's large
    // blocks start 16 bytes into a page; x is then aligned too).
    const size_t mis = (yaddr / sizeof(T)) % lanes;
    if (mis != 0) {
      MapPartial<kOrder, kVjp>(d, op, x, g, y, lanes - mis, lim);
      i = lanes - mis;
    }
    if (StreamArray(n * sizeof(T))) {
      i = MapPairs<kOrder, kVjp, true>(d, op, x, g, y, i, n, lim, prefetch);
      hwy::FlushStream();
    } else {
      i = MapPairs<kOrder, kVjp, false>(d, op, x, g, y, i, n, lim, prefetch);
    }
  } else {
    i = MapPairs<kOrder, kVjp, false>(d, op, x, g, y, i, n, lim, prefetch);
  }
  // The remainder (fewer than 2 vectors), one padded vector at a time.
  for (; i < n; i += lanes) {
    const size_t count = n - i < lanes ? n - i : lanes;
    MapPartial<kOrder, kVjp>(d, op, x + i, kVjp ? g + i : g, y + i, count, lim);
  }
}

template <class Op, typename T>
HWY_INLINE void RunKind(const Op& op, ElementwiseKind kind, const T* x,
                        const T* g, T* y, size_t n, Limits<T> lim) {
  switch (kind) {
    case ElementwiseKind::kValue:
      return MapArray<0, false>(op, x, g, y, n, lim);
    case ElementwiseKind::kDerivative1:
      return MapArray<1, false>(op, x, g, y, n, lim);
    case ElementwiseKind::kDerivative2:
      return MapArray<2, false>(op, x, g, y, n, lim);
    case ElementwiseKind::kVjp:
      return MapArray<1, true>(op, x, g, y, n, lim);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
