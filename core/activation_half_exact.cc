// The half-precision results that need no rounding (HalfExact in
// core/activation_half.h): identity and relu (f, f', f'', VJP) and
// leaky_relu's f' and f''. Each result is a copy of x or g, a select
// between x and +0 or between g and +-0, or one of two constants either side
// of 0, so it is computed on the 16-bit patterns themselves, 32 lanes to an
// AVX-512 vector, never widened: relu is a signed 16-bit max with 0 (every
// pattern with the sign bit set is <= 0, -0 included, and gives +0).
//
// Bit for bit what the general path (core/activation_half.cc) returns, which
// tests/core/half_exact_test.cc checks for every input of both types on every
// target: the float32 kernels return x, 1, alpha or +0 there (NaN only for
// NaN), and those round exactly. Where the general path's result depends on
// the target or on the NaN's payload (NaN in x or g: widening and narrowing
// quiet it, or replace it without F16C; relu's VJP with g = +-inf and x <= 0
// forms inf * 0), the vector holding such a lane is handed to this target's
// general path instead: a rare path, whose results are its own by
// construction. leaky_relu's f' constants (alpha rounded to the half type)
// are the general path's results for x = 1 and x = -1.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/activation_half_exact.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <type_traits>

#include "core/activation_half.h"
#include "core/half.h"
#include "core/stores.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using internal::HalfExact;
using internal::HalfParams;

// This target's general half kernels (core/activation_half.cc).
void ElementwiseF16(const HalfParams& p, const Float16* x, const Float16* g,
                    Float16* y, size_t n);
void ElementwiseBF16(const HalfParams& p, const BFloat16* x, const BFloat16* g,
                     BFloat16* y, size_t n);

namespace {

template <typename H>
HWY_NOINLINE void General(const HalfParams& p, const H* x, const H* g, H* y,
                          size_t n) {
  HalfParams general = p;
  general.exact = HalfExact::kNone;
  if constexpr (std::is_same_v<H, Float16>) {
    ElementwiseF16(general, x, g, y, n);
  } else {
    ElementwiseBF16(general, x, g, y, n);
  }
}

// Whether op is a VJP's (it reads g).
constexpr bool IsVjp(HalfExact op) {
  return op == HalfExact::kCopyGrad || op == HalfExact::kReluGrad;
}

// The loop-invariant vectors, in 16-bit signed lanes.
template <class D>
struct ExactConsts {
  hn::Vec<D> magnitude;  // 0x7FFF
  hn::Vec<D> inf;        // the +inf pattern
  hn::Vec<D> max;        // the largest finite one
  hn::Vec<D> sign;       // 0x8000
  hn::Vec<D> c1, c0;     // kConstant: the result for x > 0, and otherwise
  ExactConsts(D d, uint16_t inf_bits, uint16_t c1_bits, uint16_t c0_bits)
      : magnitude(hn::Set(d, int16_t{0x7FFF})),
        inf(hn::Set(d, static_cast<int16_t>(inf_bits))),
        max(hn::Set(d, static_cast<int16_t>(inf_bits - 1))),
        sign(hn::Set(d, static_cast<int16_t>(0x8000))),
        c1(hn::Set(d, static_cast<int16_t>(c1_bits))),
        c0(hn::Set(d, static_cast<int16_t>(c0_bits))) {}
};

// The result of kOp for the patterns x (and g); *special: the lanes that
// must take the general path instead.
template <HalfExact kOp, class D, class V = hn::Vec<D>>
HWY_INLINE V ExactVec(D d, const ExactConsts<D>& c, V x, V g,
                      hn::Mask<D>* special) {
  // |x| > inf as patterns: NaN.
  auto bad = hn::Gt(hn::And(x, c.magnitude), c.inf);
  if constexpr (kOp == HalfExact::kCopyGrad) {
    bad = hn::Or(bad, hn::Gt(hn::And(g, c.magnitude), c.inf));
  } else if constexpr (kOp == HalfExact::kReluGrad) {
    bad = hn::Or(bad, hn::Gt(hn::And(g, c.magnitude), c.max));  // inf too
  }
  *special = bad;
  // x > +0 as a signed pattern: the positive numbers, +inf (and NaN).
  if constexpr (kOp == HalfExact::kCopy) {
    return x;
  } else if constexpr (kOp == HalfExact::kRelu) {
    return hn::Max(x, hn::Zero(d));
  } else if constexpr (kOp == HalfExact::kConstant) {
    return hn::IfThenElse(hn::Gt(x, hn::Zero(d)), c.c1, c.c0);
  } else if constexpr (kOp == HalfExact::kCopyGrad) {
    return g;
  } else {
    static_assert(kOp == HalfExact::kReluGrad);
    return hn::IfThenElse(hn::Gt(x, hn::Zero(d)), g, hn::And(g, c.sign));
  }
}

// y[i, i + count) for count <= one vector, through padded copies (0 pads:
// never special).
template <HalfExact kOp, typename H, class D>
HWY_INLINE void ExactPartial(D d, const ExactConsts<D>& c, const HalfParams& p,
                             const H* x, const H* g, H* y, size_t count) {
  constexpr bool kVjp = IsVjp(kOp);
  using T = hn::TFromD<D>;
  HWY_ALIGN T xb[HWY_MAX_BYTES / sizeof(T)] = {};
  HWY_ALIGN T gb[HWY_MAX_BYTES / sizeof(T)] = {};
  std::memcpy(xb, x, count * sizeof(H));
  if constexpr (kVjp) std::memcpy(gb, g, count * sizeof(H));
  hn::Mask<D> special;
  const hn::Vec<D> v =
      ExactVec<kOp>(d, c, hn::Load(d, xb), hn::Load(d, gb), &special);
  if (HWY_UNLIKELY(!hn::AllFalse(d, special))) {
    return General(p, x, g, y, count);
  }
  hn::Store(v, d, xb);
  std::memcpy(y, xb, count * sizeof(H));
}

// Whole pairs of vectors from i; returns where it stopped. kStream: y + i
// is vector-aligned, the stores are non-temporal.
template <HalfExact kOp, bool kStream, typename H, class D>
HWY_INLINE size_t ExactPairs(D d, const ExactConsts<D>& c, const HalfParams& p,
                             const H* x, const H* g, H* y, size_t i, size_t n) {
  constexpr bool kVjp = IsVjp(kOp);
  using T = hn::TFromD<D>;
  using V = hn::Vec<D>;
  const size_t lanes = hn::Lanes(d);
  const T* xt = reinterpret_cast<const T*>(x);
  const T* gt = reinterpret_cast<const T*>(g);
  T* yt = reinterpret_cast<T*>(y);
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const V x0 = hn::LoadU(d, xt + i), x1 = hn::LoadU(d, xt + i + lanes);
    V g0 = x0, g1 = x1;
    if constexpr (kVjp) {
      g0 = hn::LoadU(d, gt + i);
      g1 = hn::LoadU(d, gt + i + lanes);
    }
    hn::Mask<D> s0, s1;
    const V y0 = ExactVec<kOp>(d, c, x0, g0, &s0);
    const V y1 = ExactVec<kOp>(d, c, x1, g1, &s1);
    // Both inputs are read before y is written: y may be x or g.
    if (HWY_UNLIKELY(!hn::AllFalse(d, hn::Or(s0, s1)))) {
      General(p, x + i, kVjp ? g + i : g, y + i, 2 * lanes);
      continue;
    }
    if constexpr (kStream) {
      hn::Stream(y0, d, yt + i);
      hn::Stream(y1, d, yt + i + lanes);
    } else {
      hn::StoreU(y0, d, yt + i);
      hn::StoreU(y1, d, yt + i + lanes);
    }
  }
  return i;
}

template <HalfExact kOp, typename H>
HWY_NOINLINE void ExactArray(const HalfParams& p, uint16_t c1, uint16_t c0,
                             const H* x, const H* g, H* y, size_t n) {
  constexpr bool kVjp = IsVjp(kOp);
  using D = hn::ScalableTag<int16_t>;
  const D d;
  const size_t lanes = hn::Lanes(d);
  const uint16_t inf = std::is_same_v<H, Float16> ? 0x7C00 : 0x7F80;
  const ExactConsts<D> c(d, inf, c1, c0);
  size_t i = 0;
  const uintptr_t yaddr = reinterpret_cast<uintptr_t>(y);
  if (StreamOutput(StoreUse::kElementwise, n * sizeof(H)) &&
      yaddr % sizeof(H) == 0) {
    // The first elements up to a vector boundary of y, then aligned
    // non-temporal stores.
    const size_t mis = (yaddr / sizeof(H)) % lanes;
    if (mis != 0) {
      ExactPartial<kOp>(d, c, p, x, g, y, lanes - mis);
      i = lanes - mis;
    }
    i = ExactPairs<kOp, true>(d, c, p, x, g, y, i, n);
    hwy::FlushStream();
  } else {
    i = ExactPairs<kOp, false>(d, c, p, x, g, y, i, n);
  }
  for (; i < n; i += lanes) {
    const size_t count = n - i < lanes ? n - i : lanes;
    ExactPartial<kOp>(d, c, p, x + i, kVjp ? g + i : g, y + i, count);
  }
}

template <typename H>
void ExactKernel(const HalfParams& p, const H* x, const H* g, H* y, size_t n) {
  constexpr bool kF16 = std::is_same_v<H, Float16>;
  const uint16_t one = kF16 ? 0x3C00 : 0x3F80;
  switch (p.exact) {
    case HalfExact::kCopy:
      return ExactArray<HalfExact::kCopy>(p, 0, 0, x, g, y, n);
    case HalfExact::kRelu:
      return ExactArray<HalfExact::kRelu>(p, 0, 0, x, g, y, n);
    case HalfExact::kConstant: {
      // f'' is +0, identity's f' 1, relu's 1 or +0 (the float32 kernels'
      // values, exact in both types); leaky_relu's f' is 1 or alpha rounded
      // as the general path rounds it.
      uint16_t c1 = 0, c0 = 0;
      if (p.kind == ElementwiseKind::kDerivative1) {
        c1 = one;
        c0 = p.f == Function::kIdentity ? one : 0;
        if (p.f == Function::kLeakyRelu) {
          const H probe[2] = {HalfFromBits<H>(one),
                              HalfFromBits<H>(one | 0x8000)};
          H out[2];
          General(p, probe, static_cast<const H*>(nullptr), out, 2);
          c1 = HalfBits(out[0]);
          c0 = HalfBits(out[1]);
        }
      }
      return ExactArray<HalfExact::kConstant>(p, c1, c0, x, g, y, n);
    }
    case HalfExact::kCopyGrad:
      return ExactArray<HalfExact::kCopyGrad>(p, 0, 0, x, g, y, n);
    case HalfExact::kReluGrad:
      return ExactArray<HalfExact::kReluGrad>(p, 0, 0, x, g, y, n);
    case HalfExact::kNone:
      break;
  }
  General(p, x, g, y, n);
}

}  // namespace

void ElementwiseExactF16(const HalfParams& p, const Float16* x,
                         const Float16* g, Float16* y, size_t n) {
  ExactKernel(p, x, g, y, n);
}
void ElementwiseExactBF16(const HalfParams& p, const BFloat16* x,
                          const BFloat16* g, BFloat16* y, size_t n) {
  ExactKernel(p, x, g, y, n);
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace actsvc {

HWY_EXPORT(ElementwiseExactF16);
HWY_EXPORT(ElementwiseExactBF16);

namespace internal {

void ElementwiseHalfExact(const HalfParams& p, const Float16* x,
                          const Float16* g, Float16* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(ElementwiseExactF16)(p, x, g, y, n);
}

void ElementwiseHalfExact(const HalfParams& p, const BFloat16* x,
                          const BFloat16* g, BFloat16* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(ElementwiseExactBF16)(p, x, g, y, n);
}

}  // namespace internal
}  // namespace actsvc
#endif  // HWY_ONCE
