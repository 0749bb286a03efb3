// Per-target conversions between half storage (core/half.h) and float32
// lanes. Included by the .cc files that compile
// kernels once per instruction set (hwy/foreach_target.h).
//
// Why not hn::PromoteTo/DemoteTo everywhere: in Highway 1.0.3 (Debian 12)
// DemoteTo to bfloat16 truncates on every target, and float16 DemoteTo and
// PromoteTo without F16C (SSE4, SSSE3, EMU128, SCALAR) truncate, do not
// overflow to inf and turn inf and NaN into finite numbers. The hardware
// conversions (F16C: vcvtps2ph with round-to-nearest-even, vcvtph2ps) are
// used where Highway emits them; elsewhere the integer forms below round to
// nearest even (F. Giesen's float_to_half_fast3_rtne and half_to_float).
//
// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_HALF_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_HALF_CONVERT_INL_H_
#undef ACTSVC_CORE_HALF_CONVERT_INL_H_
#else
#define ACTSVC_CORE_HALF_CONVERT_INL_H_
#endif

#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <type_traits>

#include "core/half.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Whether this target's hn::PromoteTo/DemoteTo for float16 are the F16C
// instructions (correctly rounded, IEEE specials).
#undef ACTSVC_F16C
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)
#define ACTSVC_F16C 1
#else
#define ACTSVC_F16C 0
#endif

// 16-bit patterns in 32-bit lanes, and back.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> LoadHalfBits(D /*df*/,
                                                         const void* p) {
  const hn::RebindToUnsigned<D> du;
  const hn::Rebind<uint16_t, D> du16;
  return hn::PromoteTo(du, hn::LoadU(du16, static_cast<const uint16_t*>(p)));
}
template <class D>
HWY_INLINE void StoreHalfBits(D /*df*/, hn::Vec<hn::RebindToUnsigned<D>> bits,
                              void* p) {
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint16_t, D> du16;
  hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, bits)), du16,
             static_cast<uint16_t*>(p));
}

// float16 pattern -> float32, exact (half_to_float).
template <class D>
HWY_INLINE hn::Vec<D> Float16BitsToF32(D df,
                                       hn::Vec<hn::RebindToUnsigned<D>> h) {
  const hn::RebindToUnsigned<D> du;
  using VU = hn::Vec<decltype(du)>;
  const VU shifted_exp = hn::Set(du, 0x7C00u << 13);
  VU o = hn::ShiftLeft<13>(hn::And(h, hn::Set(du, 0x7FFFu)));
  const VU exp = hn::And(o, shifted_exp);
  o = hn::Add(o, hn::Set(du, (127u - 15u) << 23));
  // inf and NaN: the exponent all ones.
  o = hn::IfThenElse(hn::Eq(exp, shifted_exp),
                     hn::Add(o, hn::Set(du, (128u - 16u) << 23)), o);
  // Zero and subnormals: renormalize through a float subtraction (exact).
  const hn::Vec<D> renorm =
      hn::Sub(hn::BitCast(df, hn::Add(o, hn::Set(du, 1u << 23))),
              hn::BitCast(df, hn::Set(du, 113u << 23)));
  o = hn::IfThenElse(hn::Eq(exp, hn::Zero(du)), hn::BitCast(du, renorm), o);
  return hn::BitCast(
      df, hn::Or(o, hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)))));
}

// float32 -> float16 pattern, round to nearest even; NaN -> quiet NaN, at
// or above 65520 -> inf (float_to_half_fast3_rtne).
template <class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> F32ToFloat16Bits(D df,
                                                             hn::Vec<D> v) {
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  using VU = hn::Vec<decltype(du)>;
  const VU b = hn::BitCast(du, v);
  const VU sign = hn::And(b, hn::Set(du, 0x80000000u));
  const VU a = hn::Xor(b, sign);
  const auto ai = hn::BitCast(di, a);  // a <= 0x7FFFFFFF: signed compares
  // Subnormal or zero results: adding 0.5f aligns the 10 bits at the bottom
  // and rounds to nearest even in the FPU.
  const VU sub =
      hn::Sub(hn::BitCast(du, hn::Add(hn::BitCast(df, a), hn::Set(df, 0.5f))),
              hn::Set(du, 126u << 23));
  const VU odd = hn::And(hn::ShiftRight<13>(a), hn::Set(du, 1));
  const VU normal = hn::ShiftRight<13>(hn::Add(
      hn::Add(a, hn::Set(du, (uint32_t(15 - 127) << 23) + 0xFFFu)), odd));
  VU r = hn::IfThenElse(hn::RebindMask(du, hn::Lt(ai, hn::Set(di, 113 << 23))),
                        sub, normal);
  const VU special =
      hn::IfThenElse(hn::RebindMask(du, hn::Gt(ai, hn::Set(di, 0x7F800000))),
                     hn::Set(du, 0x7E00u), hn::Set(du, 0x7C00u));
  r = hn::IfThenElse(
      hn::RebindMask(du, hn::Gt(ai, hn::Set(di, ((127 + 16) << 23) - 1))),
      special, r);
  return hn::Or(r, hn::ShiftRight<16>(sign));
}

// float32 -> bfloat16 pattern in the upper 16 bits of each lane, round to
// nearest even; NaN stays NaN (quieted), overflow carries into the inf
// pattern. The lower 16 bits are garbage.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> F32ToBFloat16HighBits(
    D /*df*/, hn::Vec<D> v) {
  const hn::RebindToUnsigned<D> du;
  const auto b = hn::BitCast(du, v);
  const auto odd = hn::And(hn::ShiftRight<16>(b), hn::Set(du, 1));
  const auto rounded = hn::Add(hn::Add(b, hn::Set(du, 0x7FFFu)), odd);
  const auto quiet = hn::Or(b, hn::Set(du, 0x400000u));
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), quiet, rounded);
}

// float32 -> bfloat16 pattern, round to nearest even; NaN stays NaN
// (quieted), overflow carries into the inf pattern.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> F32ToBFloat16Bits(D df,
                                                              hn::Vec<D> v) {
  return hn::ShiftRight<16>(F32ToBFloat16HighBits(df, v));
}

// Lanes(df) half values at p, widened exactly.
template <typename H, class D>
HWY_INLINE hn::Vec<D> LoadWiden(D df, const H* p) {
  if constexpr (std::is_same_v<H, Float16>) {
#if ACTSVC_F16C
    const hn::Rebind<hwy::float16_t, D> df16;
    return hn::PromoteTo(df, hn::LoadU(df16, p));
#else
    return Float16BitsToF32(df, LoadHalfBits(df, p));
#endif
  } else {
    return hn::BitCast(df, hn::ShiftLeft<16>(LoadHalfBits(df, p)));
  }
}

// v rounded to H (nearest even), Lanes(df) values stored at p.
template <typename H, class D>
HWY_INLINE void NarrowStore(D df, hn::Vec<D> v, H* p) {
  if constexpr (std::is_same_v<H, Float16>) {
#if ACTSVC_F16C
    const hn::Rebind<hwy::float16_t, D> df16;
    hn::StoreU(hn::DemoteTo(df16, v), df16, p);
#else
    StoreHalfBits(df, F32ToFloat16Bits(df, v), p);
#endif
  } else {
    StoreHalfBits(df, F32ToBFloat16Bits(df, v), p);
  }
}

// Whether this target can round float32 to bfloat16 with AVX512-BF16's
// vcvtne2ps2bf16 (NarrowStore2Native; the caller checks that the CPU has
// it). Highway 1.0.3 has no target with it, so it is inline assembly, which
// needs no target attribute.
#undef ACTSVC_NATIVE_BF16
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL) && \
    (HWY_COMPILER_GCC || HWY_COMPILER_CLANG)
#define ACTSVC_NATIVE_BF16 1
#else
#define ACTSVC_NATIVE_BF16 0
#endif

#if ACTSVC_NATIVE_BF16
// Two vectors of 16 floats rounded to bfloat16 by vcvtne2ps2bf16 and stored
// at p (v0's lanes first). The same bits as NarrowStore2 (round to nearest
// even, NaN quieted with its payload's high bits, overflow to inf) for every
// input except float32 subnormals, which it takes as zero: all 2^32 patterns
// compared (BENCHMARKS.md). Callers must not depend on those lanes.
// With stream, one non-temporal store (p 64-byte aligned).
template <class D>
HWY_INLINE void NarrowStore2Native(D /*df*/, hn::Vec<D> v0, hn::Vec<D> v1,
                                   BFloat16* p, bool stream = false) {
  static_assert(hn::MaxLanes(D()) == 16, "512-bit vectors");
  __m512i r;
  asm("vcvtne2ps2bf16 %[lo], %[hi], %[r]"
      : [r] "=v"(r)
      : [lo] "v"(v0.raw), [hi] "v"(v1.raw));
  if (stream) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(p), r);
  } else {
    _mm512_storeu_si512(reinterpret_cast<void*>(p), r);
  }
}
#endif

// Whether this target can stream a pair of narrowed vectors (one 64-byte
// non-temporal store: NarrowStore2's stream).
#undef ACTSVC_HALF_STREAM
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define ACTSVC_HALF_STREAM 1
#else
#define ACTSVC_HALF_STREAM 0
#endif

// Two vectors v0, v1 rounded to H and stored at p (v0's lanes first),
// 2 Lanes(df) values: bfloat16 packs both into one vector of 16-bit lanes
// with one two-table permute (ConcatOdd of the rounded bits) instead of
// narrowing each. With stream (ACTSVC_HALF_STREAM targets only; p aligned
// to the pair's 4 Lanes(df) bytes), one non-temporal store of the pair.
template <typename H, class D>
HWY_INLINE void NarrowStore2(D df, hn::Vec<D> v0, hn::Vec<D> v1, H* p,
                             bool stream = false) {
#if HWY_TARGET != HWY_SCALAR
  const hn::Repartition<uint16_t, D> d16;
  uint16_t* p16 = reinterpret_cast<uint16_t*>(p);
  if constexpr (std::is_same_v<H, BFloat16>) {
    const auto packed =
        hn::ConcatOdd(d16, hn::BitCast(d16, F32ToBFloat16HighBits(df, v1)),
                      hn::BitCast(d16, F32ToBFloat16HighBits(df, v0)));
#if ACTSVC_HALF_STREAM
    if (stream) return hn::Stream(packed, d16, p16);
#endif
    return hn::StoreU(packed, d16, p16);
  }
#if ACTSVC_HALF_STREAM
  if (stream) {
    const hn::Rebind<hwy::float16_t, D> df16;
    const hn::Rebind<uint16_t, D> dh;
    return hn::Stream(hn::Combine(d16, hn::BitCast(dh, hn::DemoteTo(df16, v1)),
                                  hn::BitCast(dh, hn::DemoteTo(df16, v0))),
                      d16, p16);
  }
#endif
#endif
  (void)stream;
  NarrowStore(df, v0, p);
  NarrowStore(df, v1, p + hn::Lanes(df));
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
