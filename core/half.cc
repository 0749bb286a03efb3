// Half-precision conversions: the scalar ones (exact arithmetic on the
// significand, one rounding) and whole arrays through the per-target forms
// of core/half_convert-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/half.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include "core/half.h"
#include "core/half_convert-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

// Converts n values, one float vector's worth at a time:
// convert(df, from, to) converts Lanes(df) of them. The last partial vector
// goes through zero-padded aligned buffers.
template <typename From, typename To, typename Convert>
void ConvertArray(const From* from, To* to, size_t n, Convert convert) {
  const hn::ScalableTag<float> df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) convert(df, from + i, to + i);
  if (i == n) return;
  HWY_ALIGN From from_buffer[HWY_MAX_BYTES / sizeof(float)] = {};
  HWY_ALIGN To to_buffer[HWY_MAX_BYTES / sizeof(float)];
  std::memcpy(from_buffer, from + i, (n - i) * sizeof(From));
  convert(df, from_buffer, to_buffer);
  std::memcpy(to + i, to_buffer, (n - i) * sizeof(To));
}

template <typename H>
void WidenArray(const H* h, float* f, size_t n) {
  ConvertArray(h, f, n, [](auto df, const H* from, float* to) HWY_ATTR {
    hn::StoreU(LoadWiden(df, from), df, to);
  });
}

template <typename H>
void NarrowArray(const float* f, H* h, size_t n) {
  ConvertArray(f, h, n, [](auto df, const float* from, H* to) HWY_ATTR {
    NarrowStore(df, hn::LoadU(df, from), to);
  });
}

void WidenF16(const Float16* h, float* f, size_t n) { WidenArray(h, f, n); }
void WidenBF16(const BFloat16* h, float* f, size_t n) { WidenArray(h, f, n); }
void NarrowF16(const float* f, Float16* h, size_t n) { NarrowArray(f, h, n); }
void NarrowBF16(const float* f, BFloat16* h, size_t n) { NarrowArray(f, h, n); }

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>

namespace actsvc {

HWY_EXPORT(WidenF16);
HWY_EXPORT(WidenBF16);
HWY_EXPORT(NarrowF16);
HWY_EXPORT(NarrowBF16);

namespace {

// |v| rounded to a format with `digits` significand bits, smallest normal
// 2^min_exp and largest finite below 2^(max_exp + 1), as a pattern without
// the sign: exponent field << (digits - 1) plus the fraction. The scaled
// significand is an exact double (a power-of-two scaling), std::nearbyint
// rounds it to nearest even, and a carry out of the fraction moves into the
// exponent field by itself (up to the inf pattern).
uint16_t RoundMagnitude(double a, int digits, int min_exp, int max_exp) {
  const int frac_bits = digits - 1;
  const uint32_t inf = uint32_t((max_exp - min_exp + 2)) << frac_bits;
  if (std::isnan(a)) return uint16_t(inf | (1u << (frac_bits - 1)));
  if (a == 0) return 0;
  if (std::isinf(a)) return uint16_t(inf);
  const int e = std::ilogb(a);
  if (e > max_exp) return uint16_t(inf);
  if (e < min_exp) {  // subnormal: multiples of 2^(min_exp - frac_bits)
    return uint16_t(std::nearbyint(std::ldexp(a, frac_bits - min_exp)));
  }
  const double m =
      std::nearbyint(std::ldexp(a, frac_bits - e));  // [2^f, 2^(f+1)]
  const uint32_t biased = uint32_t(e - min_exp + 1);
  return uint16_t((biased << frac_bits) + (uint32_t(m) - (1u << frac_bits)));
}

uint16_t SignBit(double v) { return std::signbit(v) ? 0x8000 : 0; }

}  // namespace

uint16_t Float16BitsFromDouble(double v) {
  return SignBit(v) | RoundMagnitude(std::fabs(v), 11, -14, 15);
}

uint16_t BFloat16BitsFromDouble(double v) {
  return SignBit(v) | RoundMagnitude(std::fabs(v), 8, -126, 127);
}

float Float16BitsToFloat(uint16_t bits) {
  const int exp = (bits >> 10) & 0x1F;
  const int frac = bits & 0x3FF;
  float mag;
  if (exp == 0x1F) {
    mag = frac == 0 ? INFINITY : NAN;
  } else if (exp == 0) {
    mag = std::ldexp(float(frac), -24);
  } else {
    mag = std::ldexp(float(frac | 0x400), exp - 25);
  }
  return (bits & 0x8000) ? -mag : mag;
}

void WidenHalf(absl::Span<const Float16> h, absl::Span<float> f) {
  HWY_DYNAMIC_DISPATCH(WidenF16)(h.data(), f.data(), h.size());
}
void WidenHalf(absl::Span<const BFloat16> h, absl::Span<float> f) {
  HWY_DYNAMIC_DISPATCH(WidenBF16)(h.data(), f.data(), h.size());
}
void NarrowToHalf(absl::Span<const float> f, absl::Span<Float16> h) {
  HWY_DYNAMIC_DISPATCH(NarrowF16)(f.data(), h.data(), f.size());
}
void NarrowToHalf(absl::Span<const float> f, absl::Span<BFloat16> h) {
  HWY_DYNAMIC_DISPATCH(NarrowBF16)(f.data(), h.data(), f.size());
}

}  // namespace actsvc
#endif  // HWY_ONCE
