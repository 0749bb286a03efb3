// Per-target pieces the softmax kernels share: the ops, compensated sums,
// the exact x − m and e^(hi + lo). The row kernel (softmax and log_softmax
// along a contiguous row, forward and VJPs) is core/softmax_row-inl.h, the
// column kernel for short rows core/softmax_column-inl.h; both are compiled
// once per instruction set by core/softmax.cc and core/softmax_columns.cc
// through hwy/foreach_target.h. The plain C++ API is core/softmax.h, the
// scalar oracle reference::SoftmaxRowProbabilities in core/reference.h.

#ifndef ACTSVC_CORE_SOFTMAX_INL_COMMON_H_
#define ACTSVC_CORE_SOFTMAX_INL_COMMON_H_
#include <stddef.h>

#include "core/softmax.h"
// Lambdas in the kernels are always inlined (GCC otherwise leaves a large
// one as a call per vector).
#if defined(__GNUC__) || defined(__clang__)
#define ACTSVC_LAMBDA_INLINE __attribute__((always_inline))
#else
#define ACTSVC_LAMBDA_INLINE
#endif
namespace actsvc {
// Called by the row kernels for every special row they skip.
using SoftmaxSpecialRowFn = void (*)(void* context, size_t row);
}  // namespace actsvc
#endif  // ACTSVC_CORE_SOFTMAX_INL_COMMON_H_

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_SOFTMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_SOFTMAX_INL_H_
#undef ACTSVC_CORE_SOFTMAX_INL_H_
#else
#define ACTSVC_CORE_SOFTMAX_INL_H_
#endif

#include <stddef.h>
#include <stdint.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/reference.h"
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s + c += v, with the rounding error of every addition kept in c (Knuth's
// TwoSum: exact for any magnitudes, no branch).
template <class D, class V = hn::Vec<D>>
HWY_INLINE void CompensatedAdd(D, V v, V& s, V& c) {
  const V t = hn::Add(s, v);
  const V bb = hn::Sub(t, s);
  const V err = hn::Add(hn::Sub(s, hn::Sub(t, bb)), hn::Sub(v, bb));
  s = t;
  c = hn::Add(c, err);
}

// The same for |s| >= |v| in every lane (Dekker's Fast2Sum, exact under
// that condition): three operations instead of six.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void FastCompensatedAdd(D, V v, V& s, V& c) {
  const V t = hn::Add(s, v);
  c = hn::Add(c, hn::Sub(v, hn::Sub(t, s)));
  s = t;
}

// Σ of the lanes of (s − bias) and c in the wider type, where each s − bias
// is exact in T (bias 0, or 1 with s in [1, 2^24)). float32 lanes are
// promoted to float64 vectors; otherwise four scalar partial sums keep the
// dependency chain short.
template <class D, class V = hn::Vec<D>>
HWY_INLINE reference::Wider<hn::TFromD<D>> SumLanes(D d, V s, V c,
                                                    hn::TFromD<D> bias = 0) {
  using T = hn::TFromD<D>;
  using W = reference::Wider<T>;
  const size_t lanes = hn::Lanes(d);
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
  if constexpr (sizeof(T) == 4) {
    if (lanes >= 2) {
      const hn::Half<D> dh;
      const hn::Rebind<double, decltype(dh)> dd;
      const V sb = hn::Sub(s, hn::Set(d, bias));
      const auto sum =
          hn::Add(hn::Add(hn::PromoteTo(dd, hn::LowerHalf(dh, sb)),
                          hn::PromoteTo(dd, hn::UpperHalf(dh, sb))),
                  hn::Add(hn::PromoteTo(dd, hn::LowerHalf(dh, c)),
                          hn::PromoteTo(dd, hn::UpperHalf(dh, c))));
      return hn::GetLane(hn::SumOfLanes(dd, sum));
    }
  }
#endif
  HWY_ALIGN T buf[2 * HWY_MAX_BYTES / sizeof(T)];
  hn::Store(s, d, buf);
  hn::Store(c, d, buf + lanes);
  W part[4] = {};
  for (size_t i = 0; i < lanes; ++i) {
    part[i % 4] += static_cast<W>(buf[i]) - static_cast<W>(bias);
  }
  for (size_t i = 0; i < lanes; ++i) part[i % 4] += buf[lanes + i];
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// x − m = hi + lo exactly. kKind, chosen per row from its max m and min by
// WithDiffKind: 1 when |m| >= |x| for every x (m >= 0, min >= −m) and 2
// when |x| >= |m| (m <= 0): Dekker's Fast2Sum with the larger operand
// first, exact there, three operations; 0 otherwise: TwoSum, six.
template <int kKind, class V>
HWY_INLINE void TwoDiff(V x, V neg_m, V& hi, V& lo) {
  hi = hn::Add(x, neg_m);
  if constexpr (kKind == 1) {
    lo = hn::Sub(x, hn::Sub(hi, neg_m));
  } else if constexpr (kKind == 2) {
    lo = hn::Sub(neg_m, hn::Sub(hi, x));
  } else {
    const V bb = hn::Sub(hi, x);
    lo = hn::Add(hn::Sub(x, hn::Sub(hi, bb)), hn::Sub(neg_m, bb));
  }
}

// f(std::integral_constant<int, kKind>) for the TwoDiff kind of a row.
template <typename T, class F>
HWY_INLINE auto WithDiffKind(T max, T min, const F& f) {
  if (max >= 0 && min >= -max) return f(std::integral_constant<int, 1>());
  if (max <= 0) return f(std::integral_constant<int, 2>());
  return f(std::integral_constant<int, 0>());
}

// e^(hi + lo) for hi <= 40 (hi <= 0 in the forward kernels) and
// |lo| <= ulp(hi)/2; exactly 1 at hi = lo = 0, correctly rounded once into
// the subnormal range, 0 below about −104.
// float32: hi is clamped at −110, k = round(hi / ln 2) by the magic-bias
// rounding (XNNPACK's f32 expminus kernels), then Cody-Waite reduction
// r = (hi − k ln2_hi) + (lo − k ln2_lo) with the 17-bit ln2_hi of Cephes and
// hwy::Exp, so that the first difference is exact and r is rounded once
// (|r| <= ln2/2 + 2^-24). e^r is a degree-6 polynomial (coefficients fitted
// here, relative error 4e-9 ≈ 0.07 ULP on [−ln2/2, ln2/2]; c0 = c1 = 1),
// in Horner form, so e^r − 1 is never formed. The coefficients carry a
// factor 2^-64 and the result is multiplied by 2^(k+64), read from the low
// bits of the magic-biased k: the product is exact for normal results and
// rounds once for subnormal ones (no second scaling step as in hwy::Exp).
// Max error (float32): 0.89 ULP with FMA, 1.16 ULP where MulAdd is a
// product and a sum (SSE4 and below); a subnormal result within 0.86
// denorm_min.
// float64: hwy::Exp (1 ULP) times (1 + lo).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpOfSum(D d, V hi, V lo) {
  using T = hn::TFromD<D>;
  if constexpr (sizeof(T) == 4) {
    const hn::RebindToSigned<D> di;
    const V magic = hn::Set(d, 12583103.0f);  // 0x1.8p23 + 127 + 64
    const V h = hn::Max(hi, hn::Set(d, -110.0f));
    const V t = hn::MulAdd(h, hn::Set(d, 1.44269502f), magic);
    const V k = hn::Sub(t, magic);
    const V r1 = hn::NegMulAdd(k, hn::Set(d, 0.693145751953125f), h);
    const V r = hn::Add(r1, hn::NegMulAdd(k, hn::Set(d, 1.42860677e-6f), lo));
    V q =
        hn::MulAdd(hn::Set(d, 0x1.6a2174p-74f), r, hn::Set(d, 0x1.123b8ap-71f));
    q = hn::MulAdd(q, r, hn::Set(d, 0x1.5558fcp-69f));
    q = hn::MulAdd(q, r, hn::Set(d, 0x1.55549p-67f));
    q = hn::MulAdd(q, r, hn::Set(d, 0x1.fffffcp-66f));
    q = hn::MulAdd(q, r, hn::Set(d, 0x1p-64f));
    q = hn::MulAdd(q, r, hn::Set(d, 0x1p-64f));
    const V scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, t)));
    return hn::Mul(q, scale);
  } else {
    const V e = hn::Exp(d, hi);
    return hn::MulAdd(e, lo, e);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
