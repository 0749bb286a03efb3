// Small helpers shared by the core tests: calling the array API on vectors,
// ULP spacing, the elementwise cases, the SIMD targets, a deterministic
// random source.
#ifndef ACTSVC_TESTS_CORE_TEST_UTIL_H_
#define ACTSVC_TESTS_CORE_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/half.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"

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

// The elementwise cases the accuracy sweeps run: every function at its
// default alpha, and leaky_relu and elu at a second one.
struct Case {
  Function function;
  double alpha;
  const char* label;
};

// Names the case in test listings (ctest shows "GetParam() = gelu").
inline void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

inline constexpr Case kCases[] = {
    {Function::kIdentity, 0, "identity"},
    {Function::kSigmoid, 0, "sigmoid"},
    {Function::kTanh, 0, "tanh"},
    {Function::kRelu, 0, "relu"},
    {Function::kLeakyRelu, 0.01, "leaky_relu"},
    {Function::kLeakyRelu, 0.2, "leaky_relu_alpha_0_2"},
    {Function::kGelu, 0, "gelu"},
    {Function::kGeluTanh, 0, "gelu_tanh"},
    {Function::kSilu, 0, "silu"},
    {Function::kSoftplus, 0, "softplus"},
    {Function::kElu, 1.0, "elu"},
    {Function::kElu, 0.5, "elu_alpha_0_5"},
    {Function::kSelu, 0, "selu"},
};

// f, f', f'' and the VJP g * f', in ElementwiseKind order.
inline constexpr ElementwiseKind kKinds[] = {
    ElementwiseKind::kValue, ElementwiseKind::kDerivative1,
    ElementwiseKind::kDerivative2, ElementwiseKind::kVjp};

// Every one of the 65,536 bit patterns of the half type H (Float16 or
// BFloat16), in order.
template <typename H>
std::vector<H> AllPatterns() {
  std::vector<H> x(65536);
  for (uint32_t i = 0; i < 65536; ++i) x[i] = HalfFromBits<H>(uint16_t(i));
  return x;
}

// "f  ", "f' ", "f''" or "vjp", for the tables the tests print.
inline const char* KindName(ElementwiseKind kind) {
  constexpr const char* kNames[] = {"f  ", "f' ", "f''", "vjp"};
  return kNames[static_cast<int>(kind)];
}

// y = kind of c over x through the array API (g: the VJP's upstream
// gradient, ignored otherwise). y may be x.
template <typename T>
void RunKind(const Case& c, ElementwiseKind kind, absl::Span<const T> x,
             absl::Span<const T> g, absl::Span<T> y) {
  switch (kind) {
    case ElementwiseKind::kValue:
      return Evaluate<T>(c.function, c.alpha, x, y);
    case ElementwiseKind::kDerivative1:
    case ElementwiseKind::kDerivative2:
      return Derivative<T>(c.function, c.alpha, OrderOf(kind), x, y);
    case ElementwiseKind::kVjp:
      return Vjp<T>(c.function, c.alpha, x, g, y);
  }
}

// The instruction sets compiled in and supported by this machine, best
// first; a test runs the kernels on each through
// hwy::SetSupportedTargetsForTest. Under the sanitizers the kernel files are
// built at -O0 (core/CMakeLists.txt) and run tens of times slower: there the
// tests take the best target and the narrowest vector one (128-bit: SSSE3
// on x86), the two ends of the vector widths and tail handling; not
// SCALAR or EMU128, one lane a vector, the slowest of all at -O0 (the plain
// build runs every target).
inline std::vector<int64_t> Targets() {
  std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
#ifdef ACTSVC_SANITIZED
  while (targets.size() > 2 &&
         (targets.back() == HWY_SCALAR || targets.back() == HWY_EMU128)) {
    targets.pop_back();
  }
  if (targets.size() > 2) targets = {targets.front(), targets.back()};
#endif
  return targets;
}

// Restores normal dispatch when a test ends, whatever happened.
struct TargetScope {
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

// Calls check(target) with dispatch set to each of Targets() in turn, the
// target named in any failure; stops after a fatal failure (an ASSERT in
// `check`), and restores normal dispatch.
template <typename Check>
void ForEachTarget(Check&& check) {
  TargetScope scope;
  for (int64_t target : Targets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    check(target);
    if (::testing::Test::HasFatalFailure()) return;
  }
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

// n values uniform in [lo, hi), the same ones for the same seed.
template <typename T>
std::vector<T> RandomValues(size_t n, uint64_t seed, double lo, double hi) {
  Random random(seed);
  std::vector<T> x(n);
  for (auto& v : x) v = static_cast<T>(random.Uniform(lo, hi));
  return x;
}

// The first maximum x[k] of a row x[0, n) and rest = Σ_{i≠k} e^(x_i − x_k),
// in the wide type W with its `exp`. The max term contributes exactly 1 to
// the sum, so log Σ = log1p(rest) and 1 − p_k = rest / (1 + rest) keep the
// accuracy that rounding 1 + rest would lose when one value dominates.
template <typename W>
struct MaxAndRest {
  size_t k;
  W max, rest;
};
template <typename W, typename T, typename Exp>
MaxAndRest<W> FirstMaxAndRest(const T* x, size_t n, Exp exp) {
  size_t k = 0;
  for (size_t i = 1; i < n; ++i) {
    if (x[i] > x[k]) k = i;
  }
  const W max = static_cast<W>(x[k]);
  W rest = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i != k) rest += exp(static_cast<W>(x[i]) - max);
  }
  return {k, max, rest};
}

}  // namespace test
}  // namespace actsvc

#endif  // ACTSVC_TESTS_CORE_TEST_UTIL_H_
