// Per-target SIMD row kernel of softmax and log_softmax along a contiguous
// row (the last axis), forward and VJP (from the logits x, or from the
// forward output y), float32 and float64, and the stats kernel the dense
// Jacobian and the cross-entropy use. Compiled once per instruction set by
// core/softmax.cc; shared pieces in core/softmax-inl.h.
// RowKernel is over 80 lines: one switch over the six ops, kept whole
// because split into one function per op (issue 21) the compiled row loop
// changed (SoftmaxRows<float> 1.4 KiB smaller on AVX2) and the VJP from
// the output measured about 3% slower.
//
// Forward, three passes over a row x of n values (the gemma.cpp Softmax
// structure):
//  1. m = max x, and whether the row is special: any NaN or ±inf, or a range
//     max − min that overflows. Special rows return false and the caller
//     sends them to the reference, which owns every IEEE case (one +inf gives
//     a one-hot row, all −inf gives NaN, ...).
//  2. softmax: e_i = e^(x_i − m) into a scratch row and z = Σ e_i.
//     log_softmax (and the VJPs from x): rest = Σ e_i over every element
//     but the first maximum k (ties count 1 each), so that
//     log z = log1p(rest) keeps relative accuracy when one logit dominates.
//  3. p_i = e_i · (1/z) (stored from the scratch row, so y may be x), or
//     log p_i = (x_i − m) − log1p(rest).
// Outputs of several MiB are written with non-temporal stores and the next
// row is prefetched during pass 2 (softmax.cc decides, by size).
//
// VJPs from the output (oneDNN's backward): one pass for ⟨g, y⟩ (softmax)
// or Σg (log_softmax), one for dx = y ⊙ (g − ⟨g, y⟩) or g − e^y Σg.
//
// Max error (SPEC.md §4; every target; tests/core/softmax_row_test.cc):
// p and log p 4 ULP for normal results (a subnormal p within the smallest
// normal). The VJPs from x: 4 ULP beyond 8ε Σ_a |J_ai g_a|, the condition
// of the result itself. The VJPs from y, against the formula at the y
// given: 4 ULP beyond 8ε y_i Σ_j |g_j| y_j (softmax) or 8ε e^(y_i) Σ_j |g_j|
// (log_softmax). Maxima measured: BENCHMARKS.md, "Accuracy of the kernels".
// How:
//  - x − m is formed exactly as hi + lo (TwoSum, or Fast2Sum when the row's
//    max and min allow): the rounding of hi would be amplified by |x − m|
//    in e^(x−m). ExpOfSum (below) takes hi + lo into its range reduction;
//    within 0.89 ULP (1.16 without FMA).
//  - z is summed in T lanes with Fast2Sum-compensated accumulators that start
//    at 1 (every e_i <= 1 keeps Fast2Sum exact), rest with TwoSum (it can be
//    tiny), then the lanes are added in reference::Wider<T>: relative error
//    about ε² for any n, where a plain float sum of n = 1000 terms could
//    drift by tens of ULP. p = e · (1/z) rounds twice (≤ 1 ULP with e's).
//  - log p = (x − m) − log z needs no TwoSum: both terms have the same sign,
//    so rounding x − m costs at most half an ULP of the result.
//  - The VJP from x: ⟨g, p⟩ and Σg are TwoSum-compensated (the product's
//    rounding error comes from an FMA), and subtracted from g as a hi + lo
//    pair. They leave out the first maximum k, whose p_k can be close to 1:
//    its output uses 1 − p_k = rest / (1 + rest) in Wider<T> (1 − p_k in T
//    would lose the digits that p_k (1 − p_k) g_k needs).
//  - The VJP from y: blocks of up to 8 vectors summed plainly (FMA), the
//    blocks with TwoSum (error ≤ 4ε Σ|terms|); ⟨g, y⟩ is then rounded to T
//    (½ε |⟨g, y⟩| more) so that the output pass is one subtraction and one
//    product. It is exact for the y given (see SoftmaxVjpFromOutput in
//    softmax.h for what that means near p_k = 1).

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_SOFTMAX_ROW_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_SOFTMAX_ROW_INL_H_
#undef ACTSVC_CORE_SOFTMAX_ROW_INL_H_
#else
#define ACTSVC_CORE_SOFTMAX_ROW_INL_H_
#endif

#include <stddef.h>
#include <stdint.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/reference.h"
#include "core/softmax-inl.h"
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Pass 1: the row's maximum, or false when the row is special (see top).
template <typename T>
HWY_INLINE bool RowMax(const T* HWY_RESTRICT x, size_t n, T* max, T* min) {
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
  *min = lo;
  return true;
}

// From here on a row has n >= Lanes(d) values (SoftmaxRow pads shorter
// rows); sums of e^(x − m) count only the first `valid` of them.

// Pass 2 of softmax: e_i = e^(x_i − m) into e (not x) and returns
// z = Σ e_i. Every e_i <= 1, so accumulators that start at 1 keep |s| >= e_i
// and Fast2Sum is exact; the 1s are taken out exactly in SumLanes. next:
// the next row, prefetched (or null).
template <int kKind, typename T>
HWY_INLINE reference::Wider<T> ExpAndSum(const T* HWY_RESTRICT x, size_t n,
                                         size_t valid, T m, T* HWY_RESTRICT e,
                                         const T* next) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  const V neg_m = hn::Set(d, -m);
  V s = hn::Set(d, T(1)), c = hn::Zero(d);
  const auto exp_at = [&](size_t i) ACTSVC_LAMBDA_INLINE {
    V hi, lo;
    TwoDiff<kKind>(hn::LoadU(d, x + i), neg_m, hi, lo);
    const V ev = ExpOfSum(d, hi, lo);
    hn::StoreU(ev, d, e + i);
    return ev;
  };
  if (valid < n) {  // one padded vector
    FastCompensatedAdd(d, hn::IfThenElseZero(hn::FirstN(d, valid), exp_at(0)),
                       s, c);
    return SumLanes(d, s, c, T(1));
  }
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    if (next && 2 * i + 2 * lanes <= n) {  // early, so the lines can arrive
      hwy::Prefetch(next + 2 * i);
      hwy::Prefetch(next + 2 * i + lanes);
    }
    FastCompensatedAdd(d, exp_at(i), s, c);
  }
  if (i < n) {  // the last vector overlaps lanes already summed
    const V ev = exp_at(n - lanes);
    FastCompensatedAdd(
        d, hn::IfThenZeroElse(hn::FirstN(d, i - (n - lanes)), ev), s, c);
  }
  return SumLanes(d, s, c, T(1));
}

// rest = Σ e^(x_i − m) over every i but k (the first maximum: ties count 1
// each), so that log z = log1p(rest) keeps its digits when one logit
// dominates; TwoSum-compensated (rest can be tiny, so no bias trick). Stores
// the e_i in e when non-null (e is not x).
template <int kKind, typename T>
HWY_INLINE reference::Wider<T> ExpRest(const T* HWY_RESTRICT x, size_t n,
                                       size_t valid, T m, size_t k,
                                       T* HWY_RESTRICT e, const T* next) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  using M = hn::Mask<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  const V neg_m = hn::Set(d, -m);
  V s = hn::Zero(d), c = hn::Zero(d);
  // Adds the vector at i, its lanes in keep, without lane k.
  const auto add = [&](size_t i, M keep, bool all) ACTSVC_LAMBDA_INLINE {
    V hi, lo;
    TwoDiff<kKind>(hn::LoadU(d, x + i), neg_m, hi, lo);
    V ev = ExpOfSum(d, hi, lo);
    if (e) hn::StoreU(ev, d, e + i);
    if (k - i < lanes) {
      keep = hn::AndNot(
          hn::AndNot(hn::FirstN(d, k - i), hn::FirstN(d, k - i + 1)), keep);
      all = false;
    }
    CompensatedAdd(d, all ? ev : hn::IfThenElseZero(keep, ev), s, c);
  };
  const M every = hn::FirstN(d, lanes);
  if (valid < n) {
    add(0, hn::FirstN(d, valid), false);
    return SumLanes(d, s, c);
  }
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    if (next && 2 * i + 2 * lanes <= n) {  // early, so the lines can arrive
      hwy::Prefetch(next + 2 * i);
      hwy::Prefetch(next + 2 * i + lanes);
    }
    add(i, every, true);
  }
  if (i < n) add(n - lanes, hn::Not(hn::FirstN(d, i - (n - lanes))), false);
  return SumLanes(d, s, c);
}

// y[i, i + lanes) = f(i) over the whole row. f(i) reads its inputs at
// [i, i + lanes) only, and y may be one of them: the last, overlapping
// vector is computed before anything is written. kStream: non-temporal
// stores (hn::Stream) for the aligned body, for outputs much larger than
// the caches; the partial cache lines at both ends get masked stores of
// their own elements only, so that no line receives both kinds of store.
template <bool kStream, class D, class F>
HWY_INLINE void WriteRow(D d, size_t n, hn::TFromD<D>* y, const F& f) {
  using T = hn::TFromD<D>;
  const size_t lanes = hn::Lanes(d);
  const auto last = f(n - lanes);
  if constexpr (kStream) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(y);
    const size_t mis = (addr / sizeof(T)) % lanes;
    const size_t head = mis ? lanes - mis : 0;
    if (addr % sizeof(T) == 0 && head + lanes <= n) {
      if (head) hn::BlendedStore(f(0), hn::FirstN(d, head), d, y);
      size_t i = head;
      for (; i + lanes <= n; i += lanes) hn::Stream(f(i), d, y + i);
      if (i < n) {
        hn::BlendedStore(last, hn::Not(hn::FirstN(d, i - (n - lanes))), d,
                         y + n - lanes);
      }
      return;
    }
  }
  for (size_t i = 0; i + lanes <= n; i += lanes) hn::StoreU(f(i), d, y + i);
  hn::StoreU(last, d, y + n - lanes);
}

// Σ a_i b_i (kProduct) or Σ a_i over the row, for the VJPs from the output:
// blocks of eight vectors are summed plainly (FMA; error <= 4ε Σ_block
// |term|) and the blocks TwoSum-compensated, so the result is within
// 4ε Σ |terms|.
template <bool kProduct, typename T>
HWY_INLINE reference::Wider<T> BlockSum(const T* a, const T* b, size_t n) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  V s = hn::Zero(d), c = hn::Zero(d);
  const auto term = [&](size_t i) ACTSVC_LAMBDA_INLINE {
    if constexpr (kProduct) {
      return hn::Mul(hn::LoadU(d, a + i), hn::LoadU(d, b + i));
    } else {
      return hn::LoadU(d, a + i);
    }
  };
  const auto acc = [&](size_t i, V t) ACTSVC_LAMBDA_INLINE {
    if constexpr (kProduct) {
      return hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), t);
    } else {
      return hn::Add(t, hn::LoadU(d, a + i));
    }
  };
  size_t i = 0;
  for (; i + 8 * lanes <= n; i += 8 * lanes) {
    V t = term(i);
    for (size_t j = 1; j < 8; ++j) t = acc(i + j * lanes, t);
    CompensatedAdd(d, t, s, c);
  }
  if (i < n) {  // fewer than 8 vectors left: one more block
    V t = hn::Zero(d);
    for (; i + lanes <= n; i += lanes) t = acc(i, t);
    if (i < n) {  // the last vector overlaps lanes already summed
      const size_t j = n - lanes;
      const V aj =
          hn::IfThenZeroElse(hn::FirstN(d, i - j), hn::LoadU(d, a + j));
      if constexpr (kProduct) {
        t = hn::MulAdd(aj, hn::LoadU(d, b + j), t);
      } else {
        t = hn::Add(t, aj);
      }
    }
    CompensatedAdd(d, t, s, c);
  }
  return SumLanes(d, s, c);
}

// max y and a NaN/+inf detector (Σ y) of a row of log-probabilities.
template <typename T>
HWY_INLINE void MaxAndSum(const T* y, size_t n, T* max, T* sum) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  V vmax = hn::LoadU(d, y + n - lanes);
  V vsum = vmax;
  for (size_t i = 0; i + lanes <= n; i += lanes) {
    const V v = hn::LoadU(d, y + i);
    vmax = hn::Max(vmax, v);
    vsum = hn::Add(vsum, v);
  }
  *max = hn::GetLane(hn::MaxOfLanes(d, vmax));
  *sum = hn::GetLane(hn::SumOfLanes(d, vsum));
}

// Pass 3 of the VJPs from logits: p = e * inv in place in `p`, and returns
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
  const auto one = [&](V gv, V ev, M keep) ACTSVC_LAMBDA_INLINE {
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
  const auto keep_of = [&](size_t count, size_t j) ACTSVC_LAMBDA_INLINE {
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

// `a` as a hi + lo pair in T (lo = 0 when a is not finite).
template <typename T>
HWY_INLINE void Split(reference::Wider<T> a, T* hi, T* lo) {
  *hi = static_cast<T>(a);
  *lo = std::isfinite(a)
            ? static_cast<T>(a - static_cast<reference::Wider<T>>(*hi))
            : T(0);
}

// One contiguous row of n >= Lanes values, the first `valid` of them real
// (the rest pads a short row). scratch holds n values. next_x, next_g: the
// next row's inputs to prefetch, or null. Returns false, having written
// nothing, for a special row.
template <bool kStream, typename T>
HWY_INLINE bool RowKernel(SoftmaxOp op, const T* x, const T* g, T* y, size_t n,
                          size_t valid, T* scratch, const T* next_x,
                          const T* next_g) {
  using W = reference::Wider<T>;
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  switch (op) {
    case SoftmaxOp::kSoftmaxVjpFromOutput: {
      // a = ⟨g, y⟩ (x holds y); a row with NaN, ±inf or an a beyond T's
      // range goes to the reference.
      const W a = BlockSum<true>(g, x, n);
      if (!std::isfinite(static_cast<T>(a))) return false;
      // a in T: its rounding, ½ε|a| ≤ ½ε Σ_j |g_j| y_j, is within the
      // contract, and the output pass is then one subtraction and one
      // product.
      const V va = hn::Set(d, static_cast<T>(a));
      WriteRow<kStream>(d, n, y, [&](size_t i) ACTSVC_LAMBDA_INLINE {
        if (kStream && next_x) {
          hwy::Prefetch(next_x + i);
          hwy::Prefetch(next_g + i);
        }
        return hn::Mul(hn::LoadU(d, x + i), hn::Sub(hn::LoadU(d, g + i), va));
      });
      return true;
    }
    case SoftmaxOp::kLogSoftmaxVjpFromOutput: {
      // S = Σg; y must be log-probabilities (<= 40, no NaN/+inf), else the
      // reference computes the row.
      T ymax, ysum;
      MaxAndSum(x, n, &ymax, &ysum);
      if (!(ymax <= T(40)) || std::isnan(ysum) ||
          (std::isinf(ysum) && ysum > 0)) {
        return false;
      }
      const W sum = BlockSum<false, T>(g, nullptr, n);
      if (!std::isfinite(static_cast<T>(sum))) return false;
      T s_hi, s_lo;
      Split<T>(sum, &s_hi, &s_lo);
      const V vh = hn::Set(d, s_hi), vl = hn::Set(d, s_lo);
      WriteRow<kStream>(d, n, y, [&](size_t i) ACTSVC_LAMBDA_INLINE {
        if (kStream && next_x) {
          hwy::Prefetch(next_x + i);
          hwy::Prefetch(next_g + i);
        }
        const V p = ExpOfSum(d, hn::LoadU(d, x + i), hn::Zero(d));
        return hn::NegMulAdd(p, vl, hn::NegMulAdd(p, vh, hn::LoadU(d, g + i)));
      });
      return true;
    }
    default:
      break;
  }
  T m, min;
  if (!RowMax(x, n, &m, &min)) return false;
  const T* next = kStream ? next_x : nullptr;
  switch (op) {
    case SoftmaxOp::kSoftmax: {
      const W z = WithDiffKind(m, min, [&](auto kind) ACTSVC_LAMBDA_INLINE {
        return ExpAndSum<decltype(kind)::value>(x, n, valid, m, scratch, next);
      });
      const V vinv = hn::Set(d, static_cast<T>(W(1) / z));
      WriteRow<kStream>(d, n, y, [&](size_t i) ACTSVC_LAMBDA_INLINE {
        return hn::Mul(hn::LoadU(d, scratch + i), vinv);
      });
      return true;
    }
    case SoftmaxOp::kLogSoftmax: {
      // log p = (x − m) − log1p(rest): x − m <= 0 and log z >= 0 have the
      // same sign in the difference, so rounding x − m costs at most half
      // an ULP of the result (no TwoSum needed here).
      const size_t k = FirstIndexOf(x, n, m);
      const W rest = WithDiffKind(m, min, [&](auto kind) ACTSVC_LAMBDA_INLINE {
        return ExpRest<decltype(kind)::value, T>(x, n, valid, m, k, nullptr,
                                                 next);
      });
      const V vm = hn::Set(d, m);
      const V vl = hn::Set(d, static_cast<T>(std::log1p(rest)));
      WriteRow<kStream>(d, n, y, [&](size_t i) ACTSVC_LAMBDA_INLINE {
        return hn::Sub(hn::Sub(hn::LoadU(d, x + i), vm), vl);
      });
      return true;
    }
    case SoftmaxOp::kSoftmaxVjp:
    case SoftmaxOp::kLogSoftmaxVjp: {
      const bool log = op == SoftmaxOp::kLogSoftmaxVjp;
      // The first maximum's p can be close to 1, where 1 − p loses its
      // digits in T: its output is formed from rest in W, and the sums
      // leave its term out.
      const size_t k = FirstIndexOf(x, n, m);
      const W rest = WithDiffKind(m, min, [&](auto kind) ACTSVC_LAMBDA_INLINE {
        return ExpRest<decltype(kind)::value>(x, n, valid, m, k, scratch, next);
      });
      const W p_max = W(1) / (W(1) + rest);
      const T inv = static_cast<T>(p_max);
      const W g_max = g[k];
      // a' = Σ_{i≠k} g_i p_i (softmax) or Σ_{i≠k} g_i (log_softmax).
      const W a_rest = log ? NormalizeAndDot<true>(g, n, inv, k, scratch)
                           : NormalizeAndDot<false>(g, n, inv, k, scratch);
      const W a = a_rest + g_max * (log ? W(1) : p_max);
      T a_hi, a_lo;
      Split<T>(a, &a_hi, &a_lo);
      const V vh = hn::Set(d, a_hi), vl = hn::Set(d, a_lo);
      if (log) {
        WriteRow<kStream>(d, n, y, [&](size_t i) ACTSVC_LAMBDA_INLINE {
          const V pv = hn::LoadU(d, scratch + i);
          return hn::NegMulAdd(pv, vl,
                               hn::NegMulAdd(pv, vh, hn::LoadU(d, g + i)));
        });
        // g_k − p_k Σg = g_k (1 − p_k) − p_k Σ_{i≠k} g_i.
        y[k] = static_cast<T>(g_max * rest * p_max - p_max * a_rest);
      } else {
        WriteRow<kStream>(d, n, y, [&](size_t i) ACTSVC_LAMBDA_INLINE {
          const V gv = hn::LoadU(d, g + i);
          return hn::Mul(hn::LoadU(d, scratch + i),
                         hn::Sub(hn::Sub(gv, vh), vl));
        });
        // p_k (g_k − <g, p>) = p_k (g_k (1 − p_k) − Σ_{i≠k} g_i p_i).
        y[k] = static_cast<T>(p_max * (g_max * rest * p_max - a_rest));
      }
      return true;
    }
    default:
      return false;
  }
}

// One contiguous row of n >= 1 values; rows shorter than a vector run
// padded (x with x[0], g with 0). Returns false, having written nothing,
// for a special row.
template <bool kStream, typename T>
HWY_INLINE bool SoftmaxRow(SoftmaxOp op, const T* x, const T* g, T* y, size_t n,
                           T* scratch, const T* next_x, const T* next_g) {
  const hn::ScalableTag<T> d;
  const size_t lanes = hn::Lanes(d);
  if (n >= lanes) {
    return RowKernel<kStream, T>(op, x, g, y, n, n, scratch, next_x, next_g);
  }
  HWY_ALIGN T xb[HWY_MAX_BYTES / sizeof(T)];
  HWY_ALIGN T gb[HWY_MAX_BYTES / sizeof(T)];
  HWY_ALIGN T yb[HWY_MAX_BYTES / sizeof(T)];
  HWY_ALIGN T sb[HWY_MAX_BYTES / sizeof(T)];
  for (size_t i = 0; i < lanes; ++i) {
    xb[i] = i < n ? x[i] : x[0];
    gb[i] = g && i < n ? g[i] : T(0);
  }
  if (!RowKernel<false, T>(op, xb, g ? gb : nullptr, yb, lanes, n, sb, nullptr,
                           nullptr)) {
    return false;
  }
  std::memcpy(y, yb, n * sizeof(T));
  return true;
}

// For the fused cross-entropy: p = softmax(x) of one contiguous row of
// n >= 1 values, its maximum m and rest = Σ e^(x_i − m) over all but the
// first maximum. Returns false, having written nothing, for a special row.
template <typename T>
HWY_NOINLINE bool SoftmaxStats(const T* x, size_t n, T* p, T* max,
                               reference::Wider<T>* rest) {
  using W = reference::Wider<T>;
  const hn::ScalableTag<T> d;
  const size_t lanes = hn::Lanes(d);
  HWY_ALIGN T xb[HWY_MAX_BYTES / sizeof(T)];
  HWY_ALIGN T pb[HWY_MAX_BYTES / sizeof(T)];
  const size_t valid = n;
  T* out = p;
  if (n < lanes) {
    for (size_t i = 0; i < lanes; ++i) xb[i] = i < n ? x[i] : x[0];
    x = xb;
    out = pb;
    n = lanes;
  }
  T min;
  if (!RowMax(x, n, max, &min)) return false;
  const size_t k = FirstIndexOf(x, n, *max);
  *rest = WithDiffKind(*max, min, [&](auto kind) ACTSVC_LAMBDA_INLINE {
    return ExpRest<decltype(kind)::value>(x, n, valid, *max, k, out,
                                          static_cast<const T*>(nullptr));
  });
  const auto vinv = hn::Set(d, static_cast<T>(W(1) / (W(1) + *rest)));
  WriteRow<false>(d, n, out, [&](size_t i) ACTSVC_LAMBDA_INLINE {
    return hn::Mul(hn::LoadU(d, out + i), vinv);
  });
  if (out != p) std::memcpy(p, out, valid * sizeof(T));
  return true;
}

// `rows` contiguous rows of n >= 1 values each; special rows are left to
// `special`. scratch holds n values. stream: non-temporal stores (for
// outputs much larger than the caches).
template <typename T>
HWY_NOINLINE void SoftmaxRows(SoftmaxOp op, const T* x, const T* g, T* y,
                              size_t n, size_t rows, T* scratch, bool stream,
                              SoftmaxSpecialRowFn special, void* context) {
  for (size_t r = 0; r < rows; ++r) {
    const size_t off = r * n;
    const bool more = r + 1 < rows;
    const T* gr = g ? g + off : nullptr;
    const T* next_x = more ? x + off + n : nullptr;
    const T* next_g = more && g ? g + off + n : next_x;
    const bool ok = stream ? SoftmaxRow<true>(op, x + off, gr, y + off, n,
                                              scratch, next_x, next_g)
                           : SoftmaxRow<false>(op, x + off, gr, y + off, n,
                                               scratch, next_x, next_g);
    if (!ok) special(context, r);
  }
  if (stream) hwy::FlushStream();
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
