// Small helpers shared by the core tests: calling the array API on vectors,
// ULP spacing, a deterministic random source.
#ifndef ACTSVC_TESTS_CORE_TEST_UTIL_H_
#define ACTSVC_TESTS_CORE_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"

namespace actsvc {
namespace test {

// f^(order)(x) for every element, through the array API; the output is
// pre-filled with NaN so that an element left unwritten shows.
template <typename T>
std::vector<T> Apply(Function f, double alpha, int order,
                     const std::vector<T>& x) {
  std::vector<T> y(x.size(), std::numeric_limits<T>::quiet_NaN());
  if (order == 0) {
    Evaluate<T>(f, alpha, absl::MakeConstSpan(x), absl::MakeSpan(y));
  } else {
    Derivative<T>(f, alpha, order, absl::MakeConstSpan(x), absl::MakeSpan(y));
  }
  return y;
}

template <typename T>
T Apply1(Function f, double alpha, int order, T x) {
  return Apply<T>(f, alpha, order, std::vector<T>{x})[0];
}

// Spacing of T at v: the ULP of v's binade, or the smallest subnormal for
// subnormal and zero v.
template <typename T>
long double UlpAt(long double v) {
  using L = std::numeric_limits<T>;
  v = std::fabs(v);
  if (!(v >= L::min())) return L::denorm_min();
  return std::ldexp(1.0L, std::ilogb(v) - (L::digits - 1));
}

template <typename T>
constexpr long double kEps = std::numeric_limits<T>::epsilon();

// Default α of the functions that take one (SPEC.md §1).
inline double AlphaFor(Function f) {
  if (f == Function::kLeakyRelu) return 0.01;
  if (f == Function::kElu) return 1.0;
  return 0;
}

// The elementwise functions, in enum order.
inline std::vector<Function> ElementwiseFunctions() {
  return {Function::kIdentity, Function::kSigmoid,   Function::kTanh,
          Function::kRelu,     Function::kLeakyRelu, Function::kGelu,
          Function::kGeluTanh, Function::kSilu,      Function::kSoftplus,
          Function::kElu,      Function::kSelu};
}

// Deterministic randomness: tests fail the same way on every run.
class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  double Uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(engine_);
  }
  int64_t Int(int64_t lo, int64_t hi) {  // inclusive
    return std::uniform_int_distribution<int64_t>(lo, hi)(engine_);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace test
}  // namespace actsvc

#endif  // ACTSVC_TESTS_CORE_TEST_UTIL_H_
