// Per-target SIMD kernels of softmax and log_softmax along a contiguous row
// (the last axis), forward and VJP, float32 and float64. Compiled once per
// instruction set by core/softmax.cc through hwy/foreach_target.h; the plain
// C++ API is core/softmax.h, the scalar oracle
// reference::SoftmaxRowProbabilities in core/reference.h.
//
// Three passes over a row x of n values (the gemma.cpp Softmax structure):
//  1. m = max x, and whether the row is special: any NaN or ±inf, or a range
//     max − min that overflows. Special rows return false and the caller
//     sends them to the reference, which owns every IEEE case (one +inf gives
//     a one-hot row, all −inf gives NaN, ...).
//  2. e_i = e^(x_i − m) and rest = Σ e_i over every element but the first
//     maximum (ties count 1 each), so that z = 1 + rest and
//     log z = log1p(rest) keep relative accuracy when one logit dominates.
//  3. p_i = e_i / z, or log p_i = (x_i − m) − log1p(rest).
//
// Accuracy (SPEC.md §4; measured per target by
// tests/core/softmax_simd_test.cc against __float128):
//  - x − m is formed exactly as hi + lo (TwoSum): the rounding of hi would be
//    amplified by |x − m| in e^(x−m). e = Exp(hi)·(1 + lo); hwy::Exp is
//    within 1 ULP.
//  - rest is summed in T lanes with a TwoSum-compensated accumulator, then
//    the lanes are added in reference::Wider<T>: its relative error stays
//    about 1 ULP for any n, where a plain float sum of n = 1000 terms could
//    drift by tens of ULP.
//  - The VJP dot products ⟨g, p⟩ and Σg are compensated the same way (the
//    product's rounding error comes from an FMA), and subtracted from g as a
//    hi + lo pair. They leave out the first maximum k, whose p_k can be
//    close to 1: its output uses 1 − p_k = rest / (1 + rest) in Wider<T>
//    (1 − p_k in T would lose the digits that p_k (1 − p_k) g_k needs).
// Measured maxima, the same on AVX3, AVX2, SSE4, SSSE3 and SCALAR (rows of
// 1..2N−1, 1000, 1001 and 4099 values): p 2.56 ULP (float32) / 2.26
// (float64), log p 1.24 / 2.00; the budget asserted is 4 ULP for normal
// results. The VJPs stay within 8ε Σ_a |J_ai g_a| of the exact value (the
// condition of the result itself); measured excess beyond that: 0.

#ifndef ACTSVC_CORE_SOFTMAX_INL_COMMON_H_
#define ACTSVC_CORE_SOFTMAX_INL_COMMON_H_
#include <stddef.h>
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

#include <cmath>
#include <cstring>

#include "core/reference.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// What the kernels compute for one row.
enum class SoftmaxOp : int {
  kSoftmax = 0,        // y = p
  kLogSoftmax = 1,     // y = log p
  kSoftmaxVjp = 2,     // y = p ⊙ (g − ⟨g, p⟩)
  kLogSoftmaxVjp = 3,  // y = g − p Σg
};

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

// Σ of the lanes of s and c in the wider type (one rounding per lane).
template <class D, class V = hn::Vec<D>>
HWY_INLINE reference::Wider<hn::TFromD<D>> SumLanes(D d, V s, V c) {
  using T = hn::TFromD<D>;
  HWY_ALIGN T buf[2 * HWY_MAX_BYTES / sizeof(T)];
  const size_t lanes = hn::Lanes(d);
  hn::Store(s, d, buf);
  hn::Store(c, d, buf + lanes);
  reference::Wider<T> sum = 0;
  for (size_t i = 0; i < 2 * lanes; ++i) sum += buf[i];
  return sum;
}

// e^(x − m), with x − m = hi + lo formed exactly (x − m is finite: pass 1
// checked the row's range). Also returns hi and lo.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpShifted(D d, V x, V m, V& hi, V& lo) {
  const V neg_m = hn::Neg(m);
  hi = hn::Add(x, neg_m);
  const V bb = hn::Sub(hi, x);
  lo = hn::Add(hn::Sub(x, hn::Sub(hi, bb)), hn::Sub(neg_m, bb));
  const V e = hn::Exp(d, hi);
  return hn::MulAdd(e, lo, e);
}

// Pass 1: the row's maximum, or false when the row is special (see top).
template <typename T>
HWY_INLINE bool RowMax(const T* HWY_RESTRICT x, size_t n, T* max) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  HWY_ALIGN T pad[HWY_MAX_BYTES / sizeof(T)];
  const T* tail = x + (n >= lanes ? n - lanes : 0);
  if (n < lanes) {
    // Repeat x[0]: max, min and the NaN check are idempotent.
    for (size_t i = 0; i < lanes; ++i) pad[i] = i < n ? x[i] : x[0];
    tail = pad;
  }
  V vmax = hn::LoadU(d, tail);
  V vmin = vmax;
  V vnan = hn::Sub(vmax, vmax);  // x − x is NaN for NaN and ±inf
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::LoadU(d, x + i);
    vmax = hn::Max(vmax, v);
    vmin = hn::Min(vmin, v);
    vnan = hn::Add(vnan, hn::Sub(v, v));
  }
  const T m = hn::GetLane(hn::MaxOfLanes(d, vmax));
  const T lo = hn::GetLane(hn::MinOfLanes(d, vmin));
  if (!hn::AllFalse(d, hn::IsNaN(vnan))) return false;
  if (!std::isfinite(m - lo)) return false;
  *max = m;
  return true;
}

// One vector of pass 2: accumulates e^(x−m) of the lanes below m (and in
// `valid`) into s, c, counts the lanes equal to m, returns e.
template <class D, class V = hn::Vec<D>, class M = hn::Mask<D>>
HWY_INLINE V ExpAccumulate(D d, V x, V vm, M valid, V& s, V& c, size_t& ties) {
  V hi, lo;
  const V e = ExpShifted(d, x, vm, hi, lo);
  CompensatedAdd(d, hn::IfThenElseZero(hn::And(valid, hn::Lt(x, vm)), e), s, c);
  ties += hn::CountTrue(d, hn::And(valid, hn::Eq(x, vm)));
  return e;
}

// Pass 2: rest = Σ e^(x_i − m) over all but the first maximum; stores e in
// e_out when non-null (e_out may be x).
template <typename T>
HWY_INLINE reference::Wider<T> RowRest(const T* x, size_t n, T m, T* e_out) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  const V vm = hn::Set(d, m);
  const auto all = hn::FirstN(d, lanes);
  V s = hn::Zero(d), c = hn::Zero(d);
  size_t ties = 0;
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V e = ExpAccumulate(d, hn::LoadU(d, x + i), vm, all, s, c, ties);
    if (e_out) hn::StoreU(e, d, e_out + i);
  }
  if (i < n) {
    const size_t count = n - i;
    HWY_ALIGN T buf[HWY_MAX_BYTES / sizeof(T)] = {};
    std::memcpy(buf, x + i, count * sizeof(T));
    const V e = ExpAccumulate(d, hn::Load(d, buf), vm, hn::FirstN(d, count), s,
                              c, ties);
    if (e_out) {
      hn::Store(e, d, buf);
      std::memcpy(e_out + i, buf, count * sizeof(T));
    }
  }
  using W = reference::Wider<T>;
  return SumLanes(d, s, c) + static_cast<W>(ties - 1);
}

// y[i] = p[i] * scale, for the whole row (scalar tail: the same rounding).
template <typename T>
HWY_INLINE void Scale(const T* p, size_t n, T scale, T* y) {
  const hn::ScalableTag<T> d;
  const size_t lanes = hn::Lanes(d);
  const auto vs = hn::Set(d, scale);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::Mul(hn::LoadU(d, p + i), vs), d, y + i);
  }
  for (; i < n; ++i) y[i] = p[i] * scale;
}

// y = (x − m) − log z, as (hi − log z) + lo.
template <typename T>
HWY_INLINE void LogProbabilities(const T* x, size_t n, T m, T log_z, T* y) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  const V vm = hn::Set(d, m);
  const V vl = hn::Set(d, log_z);
  const auto one = [&](V x_vec) {
    const V neg_m = hn::Neg(vm);
    const V hi = hn::Add(x_vec, neg_m);
    const V bb = hn::Sub(hi, x_vec);
    const V lo = hn::Add(hn::Sub(x_vec, hn::Sub(hi, bb)), hn::Sub(neg_m, bb));
    return hn::Add(hn::Sub(hi, vl), lo);
  };
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(one(hn::LoadU(d, x + i)), d, y + i);
  }
  if (i < n) {
    const size_t count = n - i;
    HWY_ALIGN T buf[HWY_MAX_BYTES / sizeof(T)] = {};
    std::memcpy(buf, x + i, count * sizeof(T));
    hn::Store(one(hn::Load(d, buf)), d, buf);
    std::memcpy(y + i, buf, count * sizeof(T));
  }
}

// Pass 3 of the VJPs: p = e * inv in place in `p`, and returns
// Σ g_i p_i (softmax) or Σ g_i (log_softmax) over i ≠ k, compensated. The
// sum leaves out element k (the first maximum) because its term can be
// about as large as the sum itself and its output is formed apart.
template <bool kLog, typename T>
HWY_INLINE reference::Wider<T> NormalizeAndDot(const T* g, size_t n, T inv,
                                               size_t k, T* p) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  using M = hn::Mask<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  const V vinv = hn::Set(d, inv);
  V s = hn::Zero(d), c = hn::Zero(d);
  const auto one = [&](V gv, V ev, M keep) {
    const V pv = hn::Mul(ev, vinv);
    if constexpr (kLog) {
      CompensatedAdd(d, hn::IfThenElseZero(keep, gv), s, c);
    } else {
      const V gk = hn::IfThenElseZero(keep, gv);
      const V prod = hn::Mul(gk, pv);
      c = hn::Add(c, hn::MulSub(gk, pv, prod));  // the product's error
      CompensatedAdd(d, prod, s, c);
    }
    return pv;
  };
  // Lanes [0, count) except lane j.
  const auto keep_of = [&](size_t count, size_t j) {
    if (j >= count) return hn::FirstN(d, count);
    return hn::Xor(hn::FirstN(d, count),
                   hn::Xor(hn::FirstN(d, j + 1), hn::FirstN(d, j)));
  };
  const M all = hn::FirstN(d, lanes);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const M keep = k - i < lanes ? keep_of(lanes, k - i) : all;
    hn::StoreU(one(hn::LoadU(d, g + i), hn::LoadU(d, p + i), keep), d, p + i);
  }
  if (i < n) {
    const size_t count = n - i;
    HWY_ALIGN T gb[HWY_MAX_BYTES / sizeof(T)] = {};
    HWY_ALIGN T pb[HWY_MAX_BYTES / sizeof(T)] = {};
    std::memcpy(gb, g + i, count * sizeof(T));
    std::memcpy(pb, p + i, count * sizeof(T));
    const M keep = keep_of(count, k - i < lanes ? k - i : lanes);
    hn::Store(one(hn::Load(d, gb), hn::Load(d, pb), keep), d, pb);
    std::memcpy(p + i, pb, count * sizeof(T));
  }
  return SumLanes(d, s, c);
}

// y = p ⊙ ((g − a_hi) − a_lo) (softmax) or (g − p a_hi) − p a_lo
// (log_softmax). y may be g.
template <bool kLog, typename T>
HWY_INLINE void VjpOutput(const T* p, const T* g, size_t n, T a_hi, T a_lo,
                          T* y) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  const V vh = hn::Set(d, a_hi);
  const V vl = hn::Set(d, a_lo);
  const auto one = [&](V pv, V gv) {
    if constexpr (kLog) {
      return hn::NegMulAdd(pv, vl, hn::NegMulAdd(pv, vh, gv));
    } else {
      return hn::Mul(pv, hn::Sub(hn::Sub(gv, vh), vl));
    }
  };
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(one(hn::LoadU(d, p + i), hn::LoadU(d, g + i)), d, y + i);
  }
  if (i < n) {
    const size_t count = n - i;
    HWY_ALIGN T gb[HWY_MAX_BYTES / sizeof(T)] = {};
    HWY_ALIGN T pb[HWY_MAX_BYTES / sizeof(T)] = {};
    std::memcpy(gb, g + i, count * sizeof(T));
    std::memcpy(pb, p + i, count * sizeof(T));
    hn::Store(one(hn::Load(d, pb), hn::Load(d, gb)), d, gb);
    std::memcpy(y + i, gb, count * sizeof(T));
  }
}

// The index of the first x[i] == m (m is in x).
template <typename T>
HWY_INLINE size_t FirstIndexOf(const T* x, size_t n, T m) {
  const hn::ScalableTag<T> d;
  const size_t lanes = hn::Lanes(d);
  const auto vm = hn::Set(d, m);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const intptr_t pos = hn::FindFirstTrue(d, hn::Eq(hn::LoadU(d, x + i), vm));
    if (pos >= 0) return i + static_cast<size_t>(pos);
  }
  for (; i < n; ++i) {
    if (x[i] == m) return i;
  }
  return 0;
}

// One contiguous row of n >= 1 values. scratch holds n values (VJPs only).
// Returns false, having written nothing, for a special row.
template <typename T>
HWY_INLINE bool SoftmaxRow(SoftmaxOp op, const T* x, const T* g, T* y, size_t n,
                           T* scratch) {
  using W = reference::Wider<T>;
  T m;
  if (!RowMax(x, n, &m)) return false;
  switch (op) {
    case SoftmaxOp::kSoftmax: {
      const W rest = RowRest(x, n, m, y);
      Scale(y, n, static_cast<T>(W(1) / (W(1) + rest)), y);
      return true;
    }
    case SoftmaxOp::kLogSoftmax: {
      const W rest = RowRest<T>(x, n, m, nullptr);
      LogProbabilities(x, n, m, static_cast<T>(std::log1p(rest)), y);
      return true;
    }
    case SoftmaxOp::kSoftmaxVjp:
    case SoftmaxOp::kLogSoftmaxVjp: {
      const bool log = op == SoftmaxOp::kLogSoftmaxVjp;
      const W rest = RowRest(x, n, m, scratch);
      const W p_max = W(1) / (W(1) + rest);
      const T inv = static_cast<T>(p_max);
      // The first maximum's p can be close to 1, where 1 − p loses its
      // digits in T: its output is formed from rest in W, and the sums
      // leave its term out.
      const size_t k = FirstIndexOf(x, n, m);
      const W g_max = g[k];
      // a' = Σ_{i≠k} g_i p_i (softmax) or Σ_{i≠k} g_i (log_softmax).
      const W a_rest = log ? NormalizeAndDot<true>(g, n, inv, k, scratch)
                           : NormalizeAndDot<false>(g, n, inv, k, scratch);
      const W a = a_rest + g_max * (log ? W(1) : p_max);
      const T a_hi = static_cast<T>(a);
      const T a_lo = static_cast<T>(a - static_cast<W>(a_hi));
      if (log) {
        VjpOutput<true>(scratch, g, n, a_hi, a_lo, y);
        // g_k − p_k Σg = g_k (1 − p_k) − p_k Σ_{i≠k} g_i.
        y[k] = static_cast<T>(g_max * rest * p_max - p_max * a_rest);
      } else {
        VjpOutput<false>(scratch, g, n, a_hi, a_lo, y);
        // p_k (g_k − <g, p>) = p_k (g_k (1 − p_k) − Σ_{i≠k} g_i p_i).
        y[k] = static_cast<T>(p_max * (g_max * rest * p_max - a_rest));
      }
      return true;
    }
  }
  return false;
}

// For the fused cross-entropy: p = softmax(x) of one contiguous row of
// n >= 1 values, its maximum m and rest = Σ e^(x_i − m) over all but the
// first maximum. Returns false, having written nothing, for a special row.
template <typename T>
HWY_NOINLINE bool SoftmaxStats(const T* x, size_t n, T* p, T* max,
                               reference::Wider<T>* rest) {
  using W = reference::Wider<T>;
  if (!RowMax(x, n, max)) return false;
  *rest = RowRest(x, n, *max, p);
  Scale(p, n, static_cast<T>(W(1) / (W(1) + *rest)), p);
  return true;
}

// `rows` contiguous rows of n >= 1 values each; special rows are left to
// `special`. scratch holds n values (VJPs only).
template <typename T>
HWY_NOINLINE void SoftmaxRows(SoftmaxOp op, const T* x, const T* g, T* y,
                              size_t n, size_t rows, T* scratch,
                              SoftmaxSpecialRowFn special, void* context) {
  for (size_t r = 0; r < rows; ++r) {
    const size_t off = r * n;
    if (!SoftmaxRow(op, x + off, g ? g + off : nullptr, y + off, n, scratch)) {
      special(context, r);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
