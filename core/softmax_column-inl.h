// Per-target SIMD column kernel of softmax and log_softmax for short rows.
// Compiled once per instruction set by core/softmax_columns.cc; shared
// pieces in core/softmax-inl.h.
//
// Column kernel (SoftmaxColumns): rows of C <= kSoftmaxColumnMaxClasses values
// (softmax.cc sends every such row here, strided or contiguous), a vector of
// rows at once: lane j holds row j, class c of the vector is one load at
// x + c·stride + j, so a row costs no horizontal reduction, no masked row
// tail and no per-row log1p or division (what the row kernels pay per row
// shorter than a vector).
// Max error: as the row kernels (core/softmax_row-inl.h), on every target.
// Per vector of rows, in T lanes:
//  - m = max over c; a lane is special when a NaN or ±inf is in its row or
//    max − min overflows (as RowMax). The vector is computed anyway; the
//    special lanes are not stored and their rows go to the same callback
//    (the reference) after the vector's stores.
//  - e_c = ExpOfSum of x_c − m as an exact TwoSum pair; rest = Σ e_c over
//    c ≠ k (k the first maximum of the lane, tracked with masks: ties count
//    1 each), TwoSum-compensated, and z = 1 + rest as a TwoSum pair.
//  - p_c = e_c · (1/z), 1/z from one Newton step on 1/z_hi with the FMA
//    residual (the pair's low part included): about ½ ULP.
//  - log p_c = (x_c − m) − log1p(rest): log1p of the pair in float64 lanes
//    for float32 (then rounded once), hn::Log1p(s) + c/(1 + s) for float64
//    (2 ULP), per lane in long double on HWY_SCALAR float32.
//  - VJPs from x as the row kernel: the sums leave out k, whose output
//    takes 1 − p_k = rest · (1/z); ⟨g, p⟩ or Σg as a TwoSum pair in T
//    lanes subtracted as hi + lo. VJPs from y: ⟨g, y⟩ (products' errors by
//    FMA) or Σg TwoSum-compensated in T lanes.

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_SOFTMAX_COLUMN_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_SOFTMAX_COLUMN_INL_H_
#undef ACTSVC_CORE_SOFTMAX_COLUMN_INL_H_
#else
#define ACTSVC_CORE_SOFTMAX_COLUMN_INL_H_
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

// ---------------------------------------------------------------------------
// The column kernel: rows of C <= kSoftmaxColumnMaxClasses classes, a vector of
// rows at once. Lane j of a vector holds row j; class c of those rows is
// the vector at x + c * stride + j (see the top of this file).

// log1p(s + c) for a compensated pair s + c >= 0 (c small against s).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Log1pOfPair(D d, V s, V c) {
  using T = hn::TFromD<D>;
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
  if constexpr (sizeof(T) == 4) {
    if (hn::Lanes(d) >= 2) {
      const hn::Half<D> dh;
      const hn::Rebind<double, decltype(dh)> dd;
      const auto lo =
          hn::Log1p(dd, hn::Add(hn::PromoteTo(dd, hn::LowerHalf(dh, s)),
                                hn::PromoteTo(dd, hn::LowerHalf(dh, c))));
      const auto hi =
          hn::Log1p(dd, hn::Add(hn::PromoteTo(dd, hn::UpperHalf(dh, s)),
                                hn::PromoteTo(dd, hn::UpperHalf(dh, c))));
      return hn::Combine(d, hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo));
    }
  }
#endif
  if constexpr (sizeof(T) == 8) {
    // log1p(s + c) = log1p(s) + c / (1 + s) to first order in c.
    return hn::Add(hn::Log1p(d, s), hn::Div(c, hn::Add(s, hn::Set(d, T(1)))));
  } else {
    using W = reference::Wider<T>;
    const size_t lanes = hn::Lanes(d);
    HWY_ALIGN T bs[HWY_MAX_BYTES / sizeof(T)];
    HWY_ALIGN T bc[HWY_MAX_BYTES / sizeof(T)];
    hn::Store(s, d, bs);
    hn::Store(c, d, bc);
    for (size_t i = 0; i < lanes; ++i) {
      bs[i] = static_cast<T>(std::log1p(static_cast<W>(bs[i]) + bc[i]));
    }
    return hn::Load(d, bs);
  }
}

// 1 / (zh + zl) for zh >= 1, |zl| <= ulp(zh): one Newton step from
// 1 / zh with the residual 1 − zh q formed by FMA (exact there).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V InverseOfPair(D d, V zh, V zl) {
  const V one = hn::Set(d, hn::TFromD<D>(1));
  const V q = hn::Div(one, zh);
  const V r = hn::NegMulAdd(zl, q, hn::NegMulAdd(zh, q, one));
  return hn::MulAdd(q, r, q);
}

// The column kernel's pieces take the loads of class c of the vector of
// rows, X(c) and G(c), and put(special, f), which stores f(c) for every
// class but the special lanes; each returns the special lanes.

// The VJP from the output of softmax: a = ⟨g, y⟩ compensated (the products'
// errors by FMA), rounded to T; dx = y ⊙ (g − a).
template <class D, class XF, class GF, class Put>
HWY_INLINE hn::Mask<D> ColumnSoftmaxVjpFromOutput(D d, size_t C, const XF& X,
                                                  const GF& G, const Put& put) {
  using V = hn::Vec<D>;
  using M = hn::Mask<D>;
  V s = hn::Zero(d), cs = hn::Zero(d);
  for (size_t c = 0; c < C; ++c) {
    const V gv = G(c), yv = X(c);
    const V prod = hn::Mul(gv, yv);
    cs = hn::Add(cs, hn::MulSub(gv, yv, prod));
    CompensatedAdd(d, prod, s, cs);
  }
  const V a = hn::Add(s, cs);
  const M special = hn::Not(hn::IsFinite(a));
  put(special, [&](size_t c) ACTSVC_LAMBDA_INLINE {
    return hn::Mul(X(c), hn::Sub(G(c), a));
  });
  return special;
}

// The VJP from the output of log_softmax: Σg compensated as hi + lo;
// dx = g − e^y Σg. Lanes whose y is not log-probabilities are special.
template <class D, class XF, class GF, class Put>
HWY_INLINE hn::Mask<D> ColumnLogSoftmaxVjpFromOutput(D d, size_t C, const XF& X,
                                                     const GF& G,
                                                     const Put& put) {
  using T = hn::TFromD<D>;
  using V = hn::Vec<D>;
  using M = hn::Mask<D>;
  V ymax = X(0), ysum = hn::Zero(d);
  V s = hn::Zero(d), cs = hn::Zero(d);
  for (size_t c = 0; c < C; ++c) {
    const V yv = X(c);
    ymax = hn::Max(ymax, yv);
    ysum = hn::Add(ysum, yv);
    CompensatedAdd(d, G(c), s, cs);
  }
  const V hi = hn::Add(s, cs);
  const V lo = hn::Sub(cs, hn::Sub(hi, s));
  const V inf = hn::Set(d, std::numeric_limits<T>::infinity());
  const M special =
      hn::Or(hn::Or(hn::Not(hn::Le(ymax, hn::Set(d, T(40)))), hn::IsNaN(ysum)),
             hn::Or(hn::Eq(ysum, inf), hn::Not(hn::IsFinite(hi))));
  put(special, [&](size_t c) ACTSVC_LAMBDA_INLINE {
    const V p = ExpOfSum(d, X(c), hn::Zero(d));
    return hn::NegMulAdd(p, lo, hn::NegMulAdd(p, hi, G(c)));
  });
  return special;
}

// The VJPs from x (log: of log_softmax), after pass 2 left e_c in e, the
// compensated rest as rs + rc, the first maximum's class kidx and g_k in
// gk, and inv = 1/z = p_k.
template <class D, class GF, class Put, class V = hn::Vec<D>>
HWY_INLINE void ColumnVjpFromLogits(D d, bool log, size_t C,
                                    hn::TFromD<D>* HWY_RESTRICT e, V inv,
                                    V kidx, V gk, V rs, V rc,
                                    hn::Mask<D> special, const GF& G,
                                    const Put& put) {
  using T = hn::TFromD<D>;
  const size_t lanes = hn::Lanes(d);
  // The VJPs from x: p_c = e_c / z into e; a' = Σ_{c≠k} g_c p_c (softmax)
  // or Σ_{c≠k} g_c (log_softmax), compensated; then a = a' + g_k p_k (or
  // + g_k) as hi + lo. Class k's output takes 1 − p_k = rest / z.
  V as = hn::Zero(d), ac = hn::Zero(d);
  // as + ac += g p (the product's error by FMA) or g (log_softmax).
  const auto add = [&](V gv, V pv) ACTSVC_LAMBDA_INLINE {
    if (log) {
      CompensatedAdd(d, gv, as, ac);
    } else {
      const V prod = hn::Mul(gv, pv);
      ac = hn::Add(ac, hn::MulSub(gv, pv, prod));
      CompensatedAdd(d, prod, as, ac);
    }
  };
  for (size_t c = 0; c < C; ++c) {
    const V pv = hn::Mul(hn::Load(d, e + c * lanes), inv);
    hn::Store(pv, d, e + c * lanes);
    add(hn::IfThenZeroElse(hn::Eq(kidx, hn::Set(d, static_cast<T>(c))), G(c)),
        pv);
  }
  const V a_rest = hn::Add(as, ac);
  const V qk = hn::Mul(hn::Add(rs, rc), inv);  // 1 − p_k
  add(gk, inv);
  const V ah = hn::Add(as, ac);
  const V al = hn::Sub(ac, hn::Sub(ah, as));
  if (log) {
    // g_k − p_k Σg = g_k (1 − p_k) − p_k Σ_{c≠k} g_c.
    const V out_k = hn::MulSub(gk, qk, hn::Mul(inv, a_rest));
    put(special, [&](size_t c) ACTSVC_LAMBDA_INLINE {
      const V pv = hn::Load(d, e + c * lanes);
      const V out = hn::NegMulAdd(pv, al, hn::NegMulAdd(pv, ah, G(c)));
      return hn::IfThenElse(hn::Eq(kidx, hn::Set(d, static_cast<T>(c))), out_k,
                            out);
    });
  } else {
    // p_k (g_k − ⟨g, p⟩) = p_k (g_k (1 − p_k) − Σ_{c≠k} g_c p_c).
    const V out_k = hn::Mul(inv, hn::MulSub(gk, qk, a_rest));
    put(special, [&](size_t c) ACTSVC_LAMBDA_INLINE {
      const V pv = hn::Load(d, e + c * lanes);
      const V out = hn::Mul(pv, hn::Sub(hn::Sub(G(c), ah), al));
      return hn::IfThenElse(hn::Eq(kidx, hn::Set(d, static_cast<T>(c))), out_k,
                            out);
    });
  }
}

// One vector of rows: class c at x + c * stride (g likewise, null for the
// forward ops). e: scratch of C * Lanes values. store(c, v, ok, all_ok)
// writes the outputs of class c, ok the lanes to write. Returns the special
// lanes (nothing is stored for them).
template <class D, class Store>
HWY_INLINE hn::Mask<D> ColumnVector(D d, SoftmaxOp op,
                                    const hn::TFromD<D>* HWY_RESTRICT x,
                                    const hn::TFromD<D>* HWY_RESTRICT g,
                                    size_t stride, size_t C,
                                    hn::TFromD<D>* HWY_RESTRICT e,
                                    const Store& store) {
  using T = hn::TFromD<D>;
  using V = hn::Vec<D>;
  using M = hn::Mask<D>;
  const size_t lanes = hn::Lanes(d);
  const auto X = [&](size_t c) ACTSVC_LAMBDA_INLINE {
    return hn::LoadU(d, x + c * stride);
  };
  const auto G = [&](size_t c) ACTSVC_LAMBDA_INLINE {
    return hn::LoadU(d, g + c * stride);
  };
  const auto put = [&](M special, const auto& f) ACTSVC_LAMBDA_INLINE {
    const M ok = hn::Not(special);
    const bool all_ok = hn::AllFalse(d, special);
    for (size_t c = 0; c < C; ++c) store(c, f(c), ok, all_ok);
  };
  if (op == SoftmaxOp::kSoftmaxVjpFromOutput) {
    return ColumnSoftmaxVjpFromOutput(d, C, X, G, put);
  }
  if (op == SoftmaxOp::kLogSoftmaxVjpFromOutput) {
    return ColumnLogSoftmaxVjpFromOutput(d, C, X, G, put);
  }
  // Pass 1: m, and the special lanes (NaN, ±inf, a range that overflows).
  V vmax = X(0);
  V vmin = vmax;
  V vnan = hn::Sub(vmax, vmax);
  for (size_t c = 1; c < C; ++c) {
    const V v = X(c);
    vmax = hn::Max(vmax, v);
    vmin = hn::Min(vmin, v);
    vnan = hn::Add(vnan, hn::Sub(v, v));
  }
  const M special = hn::Not(hn::IsFinite(hn::Add(vnan, hn::Sub(vmax, vmin))));
  const V neg_m = hn::Neg(vmax);
  // Pass 2: e_c = e^(x_c − m) into e; rest = Σ e_c but the first maximum k
  // of each lane (TwoSum-compensated), k as a class number, and g_k.
  const bool vjp =
      op == SoftmaxOp::kSoftmaxVjp || op == SoftmaxOp::kLogSoftmaxVjp;
  V rs = hn::Zero(d), rc = hn::Zero(d);
  V kidx = hn::Zero(d), gk = hn::Zero(d);
  M found = hn::FirstN(d, 0);
  for (size_t c = 0; c < C; ++c) {
    const V v = X(c);
    V hi, lo;
    TwoDiff<0>(v, neg_m, hi, lo);
    const V ev = ExpOfSum(d, hi, lo);
    hn::Store(ev, d, e + c * lanes);
    const M is_k = hn::AndNot(found, hn::Eq(v, vmax));
    found = hn::Or(found, is_k);
    CompensatedAdd(d, hn::IfThenZeroElse(is_k, ev), rs, rc);
    if (vjp) {
      kidx = hn::IfThenElse(is_k, hn::Set(d, static_cast<T>(c)), kidx);
      gk = hn::IfThenElse(is_k, G(c), gk);
    }
  }
  if (op == SoftmaxOp::kLogSoftmax) {
    // log p = (x − m) − log1p(rest).
    const V l = Log1pOfPair(d, rs, rc);
    put(special, [&](size_t c) ACTSVC_LAMBDA_INLINE {
      return hn::Sub(hn::Add(X(c), neg_m), l);
    });
    return special;
  }
  // z = 1 + rest as a pair (TwoSum: rest may exceed 1), and 1 / z = p_k.
  const V one = hn::Set(d, T(1));
  V zh = one, zl = rc;
  CompensatedAdd(d, rs, zh, zl);
  const V inv = InverseOfPair(d, zh, zl);
  if (op == SoftmaxOp::kSoftmax) {
    put(special, [&](size_t c) ACTSVC_LAMBDA_INLINE {
      return hn::Mul(hn::Load(d, e + c * lanes), inv);
    });
    return special;
  }
  ColumnVjpFromLogits(d, op == SoftmaxOp::kLogSoftmaxVjp, C, e, inv, kidx, gk,
                      rs, rc, special, G, put);
  return special;
}

// `blocks` blocks of `count` rows of C <= kSoftmaxColumnMaxClasses classes: row
// j of block b has class c at x[b * block_stride + c * stride + j] (g and
// y likewise; y may be x or g). Special rows are left to
// special(context, b * count + j), called after the other rows of their
// vector are stored (theirs is not written).
template <typename T>
HWY_NOINLINE void SoftmaxColumns(SoftmaxOp op, const T* x, const T* g, T* y,
                                 size_t C, size_t stride, size_t count,
                                 size_t blocks, size_t block_stride,
                                 SoftmaxSpecialRowFn special, void* context) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  using M = hn::Mask<decltype(d)>;
  constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(T);
  const size_t lanes = hn::Lanes(d);
  HWY_ALIGN T e[kSoftmaxColumnMaxClasses * kMaxLanes];
  HWY_ALIGN T xb[kSoftmaxColumnMaxClasses * kMaxLanes];
  HWY_ALIGN T gb[kSoftmaxColumnMaxClasses * kMaxLanes];
  HWY_ALIGN T yb[kSoftmaxColumnMaxClasses * kMaxLanes];
  HWY_ALIGN T sp[kMaxLanes];
  const auto report = [&](M sm, size_t row0, size_t n) {
    hn::Store(hn::IfThenElseZero(sm, hn::Set(d, T(1))), d, sp);
    for (size_t l = 0; l < n; ++l) {
      if (sp[l] != 0) special(context, row0 + l);
    }
  };
  for (size_t b = 0; b < blocks; ++b) {
    const size_t off = b * block_stride;
    const T* xo = x + off;
    const T* go = g ? g + off : nullptr;
    T* yo = y + off;
    size_t j = 0;
    for (; j + lanes <= count; j += lanes) {
      const M sm = ColumnVector(
          d, op, xo + j, go ? go + j : nullptr, stride, C, e,
          [&](size_t c, V v, M ok, bool all_ok) ACTSVC_LAMBDA_INLINE {
            T* p = yo + c * stride + j;
            if (HWY_LIKELY(all_ok)) {
              hn::StoreU(v, d, p);
            } else {
              hn::BlendedStore(v, ok, d, p);
            }
          });
      if (HWY_UNLIKELY(!hn::AllFalse(d, sm))) report(sm, b * count + j, lanes);
    }
    if (j < count) {
      // The last rows, fewer than a vector, through buffers (padded with
      // zeros: ordinary rows whose outputs are dropped).
      const size_t n = count - j;
      for (size_t c = 0; c < C; ++c) {
        for (size_t l = 0; l < lanes; ++l) {
          xb[c * lanes + l] = l < n ? xo[c * stride + j + l] : T(0);
          gb[c * lanes + l] = go && l < n ? go[c * stride + j + l] : T(0);
        }
      }
      const M sm = ColumnVector(
          d, op, xb, go ? gb : nullptr, lanes, C, e,
          [&](size_t c, V v, M, bool)
              ACTSVC_LAMBDA_INLINE { hn::Store(v, d, yb + c * lanes); });
      hn::Store(hn::IfThenElseZero(sm, hn::Set(d, T(1))), d, sp);
      for (size_t c = 0; c < C; ++c) {
        for (size_t l = 0; l < n; ++l) {
          if (sp[l] == 0) yo[c * stride + j + l] = yb[c * lanes + l];
        }
      }
      if (HWY_UNLIKELY(!hn::AllFalse(d, sm))) report(sm, b * count + j, n);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
