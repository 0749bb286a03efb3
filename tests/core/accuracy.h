// The accuracy rules of SPEC.md §4, applied to one result against the quad
// oracle, and the inputs the sweeps use.
//
// ULP distance: |got − want| / ulp(want), where want is the oracle's value
// (not rounded to T) and ulp(want) the spacing of T in want's binade:
// 2^(⌊log2 |want|⌋ − (digits − 1)). A correctly rounded result is within 0.5.
//
// Special cases, in order:
//  - want NaN: got must be NaN (either sign). got NaN otherwise fails.
//  - want ±∞, or |want| large enough to round to ±∞ in T: got must be that
//    same infinity.
//  - want == 0 exactly (a structural zero such as relu(−3), tanh(0),
//    relu''(x), or a value below even quad's range): |got| <= the smallest
//    subnormal of T, either sign. The correctly rounded result is ±0, and
//    the only other acceptable answer is the rounding of a true value in
//    (0, denorm_min) upwards; anything larger, e.g. relu'(−1) = 1e-45, is a
//    wrong gradient rather than a rounding error. (This is stricter than the
//    subnormal rule below, which exists for the rounding of nonzero tiny
//    results.)
//  - 0 < |want| < T's smallest normal (the result is subnormal): the error
//    may be at most the smallest normal, |got − want| <= min_normal.
//  - within ±0.5 of an interior zero of f' or f'' (gelu, gelu_tanh, silu),
//    for that order: pass if |got − want| <= the row's near-zero bound
//    (tests/core/ulp_budgets.h: 4·2^-(digits−1), ×4 for f'') or the ULP
//    budget holds.
#ifndef ACTSVC_TESTS_CORE_ACCURACY_H_
#define ACTSVC_TESTS_CORE_ACCURACY_H_

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/activation.h"
#include "gtest/gtest.h"
#include "tests/core/oracle.h"

namespace actsvc {
namespace test {

template <typename T>
constexpr int kDigits = std::numeric_limits<T>::digits;  // 24 or 53

template <typename T>
const char* DtypeName() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// float32 and float64, for typed tests named by their dtype.
using FloatTypes = ::testing::Types<float, double>;
struct DtypeNames {
  template <typename T>
  static std::string GetName(int) {
    return DtypeName<T>();
  }
};

// Spacing of T in the binade of the (normal) value v.
template <typename T>
Quad UlpOf(Quad v) {
  return ldexpq(1, ilogbq(v) - (kDigits<T> - 1));
}

// The magnitude from which a value rounds to ±∞ in T: max + ulp(max)/2.
template <typename T>
Quad OverflowThreshold() {
  const Quad max = std::numeric_limits<T>::max();
  return max + UlpOf<T>(max) / 2;
}

// Hex and decimal for messages: "0x1.8p+1 (3)".
template <typename T>
std::string Describe(T v) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%a (%.*g)", static_cast<double>(v),
                std::numeric_limits<T>::max_digits10, static_cast<double>(v));
  return buf;
}

inline std::string Describe(Quad v) {
  char buf[96];
  quadmath_snprintf(buf, sizeof(buf), "%Qa (%.25Qg)", v, v);
  return buf;
}

enum class Rule { kUlp, kNaN, kInfinity, kZero, kSubnormal, kNearZero };

struct Verdict {
  bool ok = true;
  Rule rule = Rule::kUlp;
  double ulp = 0;        // |got − want| / ulp(want) for kUlp and kNearZero
  double abs_error = 0;  // |got − want| for kSubnormal and kNearZero
};

// Judges got against want. near_zero_bound > 0 allows that absolute error
// (the interior-zero exception); 0 means no exception here.
template <typename T>
Verdict Judge(T got, Quad want, double ulp_budget, double near_zero_bound) {
  Verdict v;
  const Quad g = got;
  if (isnanq(want)) {
    v.rule = Rule::kNaN;
    v.ok = std::isnan(got);
    return v;
  }
  if (std::isnan(got)) {
    v.ok = false;
    v.ulp = INFINITY;
    return v;
  }
  if (isinfq(want) || fabsq(want) >= OverflowThreshold<T>()) {
    v.rule = Rule::kInfinity;
    v.ok = std::isinf(got) && (got > 0) == (want > 0);
    return v;
  }
  if (std::isinf(got)) {
    v.ok = false;
    v.ulp = INFINITY;
    return v;
  }
  const Quad err = fabsq(g - want);
  if (want == 0) {
    v.rule = Rule::kZero;
    v.abs_error = static_cast<double>(err);
    v.ok = err <= std::numeric_limits<T>::denorm_min();
    return v;
  }
  if (fabsq(want) < std::numeric_limits<T>::min()) {
    v.rule = Rule::kSubnormal;
    v.abs_error = static_cast<double>(err);
    v.ok = err <= std::numeric_limits<T>::min();
    return v;
  }
  v.ulp = static_cast<double>(err / UlpOf<T>(want));
  v.ok = v.ulp <= ulp_budget;
  if (near_zero_bound > 0) {
    v.rule = Rule::kNearZero;
    v.abs_error = static_cast<double>(err);
    v.ok = v.ok || err <= near_zero_bound;
  }
  return v;
}

// ---------------------------------------------------------------------------
// Interior zeros of f' and f'' (SPEC.md §4 exception), found from the oracle
// by a sign-change scan of [−8, 8] and bisection in quad.

inline bool HasInteriorZeroException(Function f) {
  return f == Function::kGelu || f == Function::kGeluTanh ||
         f == Function::kSilu;
}

inline std::vector<double> InteriorZeros(Function f, int order) {
  std::vector<double> zeros;
  if (order == 0 || !HasInteriorZeroException(f)) return zeros;
  const Quad step = 1.0Q / 64;
  for (Quad lo = -8; lo < 8; lo += step) {
    Quad a = lo, b = lo + step;
    Quad fa = Oracle(f, 0, order, a), fb = Oracle(f, 0, order, b);
    if (fa == 0) {
      zeros.push_back(static_cast<double>(a));
      continue;
    }
    if ((fa < 0) == (fb < 0) || fb == 0) continue;
    for (int i = 0; i < 120; ++i) {
      const Quad m = (a + b) / 2;
      const Quad fm = Oracle(f, 0, order, m);
      if ((fm < 0) == (fa < 0)) {
        a = m;
        fa = fm;
      } else {
        b = m;
      }
    }
    zeros.push_back(static_cast<double>((a + b) / 2));
  }
  return zeros;
}

// The absolute bound near an interior zero: factor · 2^-(digits − 1) (the
// row's near_zero of tests/core/ulp_budgets.h) when x is within 0.5 of one
// of `zeros`, else 0.
template <typename T>
double NearZeroBound(const std::vector<double>& zeros, double factor,
                     double x) {
  for (double z : zeros) {
    if (std::fabs(x - z) <= 0.5) {
      return factor * std::ldexp(1.0, -(kDigits<T> - 1));
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Inputs.

template <typename T>
struct Bits;
template <>
struct Bits<float> {
  using U = uint32_t;
  static constexpr U kSign = 0x80000000u;
  static constexpr U kMaxFinite = 0x7F7FFFFFu;
};
template <>
struct Bits<double> {
  using U = uint64_t;
  static constexpr U kSign = 0x8000000000000000ull;
  static constexpr U kMaxFinite = 0x7FEFFFFFFFFFFFFFull;
};

template <typename T>
T FromBits(typename Bits<T>::U u) {
  T x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// ±0, ±smallest and largest subnormal, ±smallest normal, ±largest finite,
// ±∞, NaN of both signs, ±1, ±ε.
template <typename T>
std::vector<T> SpecialValues() {
  using L = std::numeric_limits<T>;
  const T largest_subnormal = L::min() - L::denorm_min();
  std::vector<T> v = {T(0),     L::denorm_min(), largest_subnormal,
                      L::min(), L::max(),        L::infinity(),
                      T(1),     L::epsilon(),    T(0.5),
                      T(2)};
  const size_t n = v.size();
  for (size_t i = 0; i < n; ++i) v.push_back(-v[i]);
  v.push_back(L::quiet_NaN());
  v.push_back(-L::quiet_NaN());
  return v;
}

// Every `step`-th finite bit pattern of each sign (the ranges split at ±0,
// as Highway's math_test), a dense grid on [−20, 20], the tails
// 20 < |x| <= tail_max, and the special values.
template <typename T>
std::vector<T> SweepInputs(typename Bits<T>::U step, double grid_step,
                           double tail_max, double tail_step) {
  using U = typename Bits<T>::U;
  std::vector<T> x;
  for (U sign : {U(0), Bits<T>::kSign}) {
    for (U u = 0; u <= Bits<T>::kMaxFinite; u += step) {
      x.push_back(FromBits<T>(u | sign));
      if (Bits<T>::kMaxFinite - u < step) break;
    }
  }
  for (double t = -20; t <= 20; t += grid_step) x.push_back(static_cast<T>(t));
  for (double t = 20 + tail_step; t <= tail_max; t += tail_step) {
    x.push_back(static_cast<T>(t));
    x.push_back(static_cast<T>(-t));
  }
  for (T s : SpecialValues<T>()) x.push_back(s);
  return x;
}

}  // namespace test
}  // namespace actsvc

#endif  // ACTSVC_TESTS_CORE_ACCURACY_H_
