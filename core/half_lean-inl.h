// leaky_relu's lean half path, per target (core/activation_half.cc; the
// bound it rests on: HalfLeanBelow in core/activation_half_table.cc): the
// check that sends a pair of vectors to the rounding test, and bfloat16's
// pair widened as even and odd lanes on AVX-512. Included by
// core/activation_half.cc, which compiles kernels once per instruction set
// (hwy/foreach_target.h).
//
// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_HALF_LEAN_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_HALF_LEAN_INL_H_
#undef ACTSVC_CORE_HALF_LEAN_INL_H_
#else
#define ACTSVC_CORE_HALF_LEAN_INL_H_
#endif

#include <stddef.h>
#include <stdint.h>

#include "core/activation-inl.h"
#include "core/half.h"
#include "core/half_convert-inl.h"
#include "hwy/highway.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Whether the pair of vectors at x (and g, the VJP) has a lane that the
// lean path must test (HalfParams::lean_below): an operand (x for f, g for
// the VJP) whose magnitude bits are below `below`, or, for the VJP, x NaN
// (HalfLeanBelow checks x = +-1 and +-inf only). For the VJP in one
// comparison: min(|g|, inf - |x|) on the bits, saturated, is below `below`
// where either holds, and for the rare x within `below` patterns of inf
// (harmless: those pairs are tested). On the 16-bit patterns, a pair in one
// vector where the target has twice float32's lanes of uint16_t (every
// target but HWY_SCALAR).
template <bool kVjp, typename H, class D>
HWY_INLINE bool LeanFires(D df, const H* x, const H* g, uint16_t below) {
  const auto fires = [&](auto du, size_t offset) {
    const auto magnitude = [&](const H* p) {
      return hn::And(
          hn::LoadU(du, reinterpret_cast<const uint16_t*>(p) + offset),
          hn::Set(du, uint16_t{0x7FFF}));
    };
    auto m = magnitude(kVjp ? g : x);
    if constexpr (kVjp) {
      m = hn::Min(m, hn::SaturatedSub(hn::Set(du, HalfFormat<H>::kInfBits),
                                      magnitude(x)));
    }
    return !hn::AllFalse(du, hn::Lt(m, hn::Set(du, below)));
  };
  const hn::Rebind<uint16_t, D> half;  // float32's lanes
  if constexpr (hn::MaxLanes(hn::ScalableTag<uint16_t>()) ==
                2 * hn::MaxLanes(D())) {
    (void)half;
    return fires(hn::ScalableTag<uint16_t>(), 0);
  } else {
    return fires(half, 0) || fires(half, hn::Lanes(df));
  }
}

#if ACTSVC_NATIVE_BF16
// The lean path's pair of bfloat16 vectors (AVX-512 with AVX512-BF16): the
// 32 values at x (and g) widened as even and odd lanes of one 512-bit load
// (each 32-bit word holds two: the even one << 16, the odd one masked), so
// one shift and one mask where LoadWiden takes a zero-extension and a shift
// per 16; the op is elementwise, so the lanes' order does not matter to it.
// Rounded by vcvtne2ps2bf16 as StorePair rounds (the same bits lane by
// lane), then put back in order by one vpermw.
template <int kOrder, bool kVjp, class D, class Op>
HWY_INLINE void EvenOddPair(D df, const Op& op, const Limits<float>& lim,
                            const BFloat16* x, const BFloat16* g, BFloat16* y,
                            bool stream) {
  static_assert(hn::MaxLanes(D()) == 16, "512-bit vectors");
  using V = hn::Vec<D>;
  const hn::RebindToUnsigned<D> du;
  const auto high = hn::Set(du, 0xFFFF0000u);
  const auto split = [&](const BFloat16* p, V* even, V* odd) {
    const auto w = hn::LoadU(du, reinterpret_cast<const uint32_t*>(p));
    *even = hn::BitCast(df, hn::ShiftLeft<16>(w));
    *odd = hn::BitCast(df, hn::And(w, high));
  };
  V xe, xo, ge, go;
  split(x, &xe, &xo);
  if constexpr (kVjp) {
    split(g, &ge, &go);
  } else {
    ge = xe;
    go = xo;
  }
  const V ye = Apply<kOrder, kVjp>(df, op, xe, &ge, lim);
  const V yo = Apply<kOrder, kVjp>(df, op, xo, &go, lim);
  __m512i r;  // ye's 16 results, then yo's
  asm("vcvtne2ps2bf16 %[lo], %[hi], %[r]"
      : [r] "=v"(r)
      : [lo] "v"(ye.raw), [hi] "v"(yo.raw));
  // Result j comes from lane j / 2 of ye (j even) or of yo (j odd).
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11,
                                         26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                         5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  r = _mm512_permutexvar_epi16(order, r);
  if (stream) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(y), r);
  } else {
    _mm512_storeu_si512(reinterpret_cast<void*>(y), r);
  }
}
#endif

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
