// The half-precision storage types (IEEE binary16 and bfloat16), their
// correctly rounded conversions, and whole-array conversions to and from
// float32. Values of these types are stored as 16-bit patterns
// (hwy::float16_t, hwy::bfloat16_t) and computed in float32 lanes; every
// conversion to a half type rounds to nearest, ties to even, once.
#ifndef ACTSVC_CORE_HALF_H_
#define ACTSVC_CORE_HALF_H_

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "absl/types/span.h"
#include "hwy/base.h"

namespace actsvc {

using Float16 = hwy::float16_t;
using BFloat16 = hwy::bfloat16_t;

template <typename T>
inline constexpr bool kIsHalf =
    std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

// The format of a half type: significand bits (with the implicit one) and
// the exponent of its smallest normal, as std::numeric_limits would give.
template <typename H>
struct HalfFormat;
template <>
struct HalfFormat<Float16> {
  static constexpr int kDigits = 11;
  static constexpr int kMinExponent = -14;      // smallest normal 2^-14
  static constexpr int kMaxExponent = 15;       // largest finite < 2^16
  static constexpr uint16_t kInfBits = 0x7C00;  // +inf; NaN above it
  static constexpr const char* kName = "float16";
};
template <>
struct HalfFormat<BFloat16> {
  static constexpr int kDigits = 8;
  static constexpr int kMinExponent = -126;
  static constexpr int kMaxExponent = 127;
  static constexpr uint16_t kInfBits = 0x7F80;  // +inf; NaN above it
  static constexpr const char* kName = "bfloat16";
};

// The 16-bit pattern of a half value and back (hwy::float16_t is a native
// type on some Arm compilers, a struct elsewhere: memcpy serves both).
template <typename H>
uint16_t HalfBits(H h) {
  static_assert(sizeof(H) == 2, "a half type");
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
template <typename H>
H HalfFromBits(uint16_t bits) {
  H h;
  std::memcpy(&h, &bits, 2);
  return h;
}

// v rounded to nearest, ties to even, once: beyond the largest finite value
// (at or above the midpoint to the next power of two) gives ±inf, NaN gives
// a quiet NaN of v's sign, subnormal results keep their digits.
uint16_t Float16BitsFromDouble(double v);
uint16_t BFloat16BitsFromDouble(double v);

template <typename H>
H HalfFromDouble(double v) {
  if constexpr (std::is_same_v<H, Float16>) {
    return HalfFromBits<H>(Float16BitsFromDouble(v));
  } else {
    return HalfFromBits<H>(BFloat16BitsFromDouble(v));
  }
}

// The exact value of a half pattern.
float Float16BitsToFloat(uint16_t bits);
inline float BFloat16BitsToFloat(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

template <typename H>
float HalfToFloat(H h) {
  if constexpr (std::is_same_v<H, Float16>) {
    return Float16BitsToFloat(HalfBits(h));
  } else {
    return BFloat16BitsToFloat(HalfBits(h));
  }
}

// A value of any dtype as double (exact): for the code that inspects values
// (NaN tests, comparisons) the same way in every dtype.
template <typename T>
double ToDouble(T v) {
  if constexpr (kIsHalf<T>) {
    return HalfToFloat(v);
  } else {
    return static_cast<double>(v);
  }
}

// Whole arrays, vectorized on every target (the best one picked at run
// time). Precondition: equal sizes. Narrowing rounds each value once.
void WidenHalf(absl::Span<const Float16> h, absl::Span<float> f);
void WidenHalf(absl::Span<const BFloat16> h, absl::Span<float> f);
void NarrowToHalf(absl::Span<const float> f, absl::Span<Float16> h);
void NarrowToHalf(absl::Span<const float> f, absl::Span<BFloat16> h);

}  // namespace actsvc

#endif  // ACTSVC_CORE_HALF_H_
