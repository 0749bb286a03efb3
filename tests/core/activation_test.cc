// Elementwise functions: IEEE special values and conventions, the seed's
// identities where they hold, the corrected statements of SPEC.md §1
// ("where the seed is wrong"), derivatives against complex-step
// differentiation, and the array API (lengths, misalignment, aliasing, VJP,
// DiagonalToDense).
#include "core/activation.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "tests/core/accuracy.h"
#include "tests/core/oracle.h"
#include "tests/core/test_util.h"
#include "tests/core/ulp_budgets.h"

namespace actsvc {
namespace test {
namespace {

std::string Name(Function f) { return std::string(FunctionName(f)); }

// ---------------------------------------------------------------------------
// Special values and conventions.

template <typename T>
class SpecialValuesTest : public ::testing::Test {};
TYPED_TEST_SUITE(SpecialValuesTest, FloatTypes, DtypeNames);

TYPED_TEST(SpecialValuesTest, NaNInGivesNaNOutForEveryOrder) {
  using T = TypeParam;
  for (Function f : ElementwiseFunctions()) {
    for (int order = 0; order < 3; ++order) {
      for (T nan : {std::numeric_limits<T>::quiet_NaN(),
                    -std::numeric_limits<T>::quiet_NaN()}) {
        EXPECT_TRUE(std::isnan(Apply1<T>(f, AlphaFor(f), order, nan)))
            << Name(f) << " order " << order;
      }
    }
  }
}

TYPED_TEST(SpecialValuesTest, InfinitiesGiveTheLimits) {
  using T = TypeParam;
  const T inf = std::numeric_limits<T>::infinity();
  auto at = [](Function f, int order, T x, double alpha = -1) {
    return Apply1<T>(f, alpha < 0 ? AlphaFor(f) : alpha, order, x);
  };
  // Zeros are compared with ==, which ignores their sign.
  EXPECT_EQ(at(Function::kIdentity, 0, inf), inf);
  EXPECT_EQ(at(Function::kIdentity, 0, -inf), -inf);
  EXPECT_EQ(at(Function::kIdentity, 1, -inf), 1);
  EXPECT_EQ(at(Function::kSigmoid, 0, inf), 1);
  EXPECT_EQ(at(Function::kSigmoid, 0, -inf), 0);
  EXPECT_EQ(at(Function::kTanh, 0, inf), 1);
  EXPECT_EQ(at(Function::kTanh, 0, -inf), -1);
  EXPECT_EQ(at(Function::kLeakyRelu, 0, -inf), -inf);
  EXPECT_EQ(at(Function::kLeakyRelu, 1, -inf), T(0.01));
  // The ReLU-like functions: f(∞) = ∞, f(−∞) = 0, f'(∞) = 1, f'(−∞) = 0.
  for (Function f : {Function::kRelu, Function::kGelu, Function::kGeluTanh,
                     Function::kSilu, Function::kSoftplus}) {
    EXPECT_EQ(at(f, 0, inf), inf) << Name(f);
    EXPECT_EQ(at(f, 0, -inf), 0) << Name(f);
    EXPECT_EQ(at(f, 1, inf), 1) << Name(f);
    EXPECT_EQ(at(f, 1, -inf), 0) << Name(f);
  }
  EXPECT_EQ(at(Function::kElu, 0, inf), inf);
  EXPECT_EQ(at(Function::kElu, 0, -inf), -1);
  EXPECT_EQ(at(Function::kElu, 0, -inf, 0.5), -0.5);
  EXPECT_EQ(at(Function::kElu, 1, -inf), 0);
  EXPECT_EQ(at(Function::kElu, 1, inf), 1);
  EXPECT_EQ(at(Function::kSelu, 0, inf), inf);
  EXPECT_EQ(at(Function::kSelu, 1, -inf), 0);
  const long double selu_floor = -static_cast<long double>(kSeluLambda) *
                                 static_cast<long double>(kSeluAlpha);
  EXPECT_NEAR(at(Function::kSelu, 0, -inf), selu_floor,
              2 * UlpAt<T>(selu_floor));
  EXPECT_NEAR(at(Function::kSelu, 1, inf), kSeluLambda,
              2 * UlpAt<T>(kSeluLambda));
  // σ'(±∞) = 0, and every second derivative vanishes at ±∞.
  for (T x : {inf, -inf}) {
    EXPECT_EQ(at(Function::kSigmoid, 1, x), 0) << x;
    EXPECT_EQ(at(Function::kTanh, 1, x), 0) << x;
    for (Function f : ElementwiseFunctions()) {
      EXPECT_EQ(at(f, 2, x), 0) << Name(f) << " f'' at " << x;
    }
  }
}

TYPED_TEST(SpecialValuesTest, ConventionsAtZero) {
  using T = TypeParam;
  for (T zero : {T(0), T(-0.0)}) {
    EXPECT_EQ(Apply1<T>(Function::kRelu, 0, 1, zero), 0) << zero;
    EXPECT_EQ(Apply1<T>(Function::kLeakyRelu, 0.01, 1, zero), T(0.01));
    EXPECT_EQ(Apply1<T>(Function::kLeakyRelu, 0.2, 1, zero), T(0.2));
    EXPECT_EQ(Apply1<T>(Function::kElu, 1.0, 1, zero), 1);
    EXPECT_EQ(Apply1<T>(Function::kElu, 0.5, 1, zero), T(0.5));
    EXPECT_EQ(Apply1<T>(Function::kElu, 0.5, 2, zero), T(0.5));
    const long double lambda_alpha = static_cast<long double>(kSeluLambda) *
                                     static_cast<long double>(kSeluAlpha);
    EXPECT_NEAR(Apply1<T>(Function::kSelu, 0, 1, zero), lambda_alpha,
                2 * UlpAt<T>(lambda_alpha));
    EXPECT_NEAR(Apply1<T>(Function::kSelu, 0, 2, zero), lambda_alpha,
                2 * UlpAt<T>(lambda_alpha));
    for (Function f : ElementwiseFunctions()) {
      if (f == Function::kSigmoid || f == Function::kSoftplus) continue;
      EXPECT_EQ(Apply1<T>(f, AlphaFor(f), 0, zero), 0) << Name(f);
    }
    EXPECT_EQ(Apply1<T>(Function::kSigmoid, 0, 0, zero), T(0.5));
    // f''(0) of the piecewise-linear functions is 0.
    for (Function f :
         {Function::kIdentity, Function::kRelu, Function::kLeakyRelu}) {
      EXPECT_EQ(Apply1<T>(f, AlphaFor(f), 2, zero), 0) << Name(f);
    }
  }
  // The x > 0 branch is strict; just above 0 it applies.
  const T tiny = std::numeric_limits<T>::denorm_min();
  EXPECT_EQ(Apply1<T>(Function::kRelu, 0, 1, tiny), 1);
  EXPECT_EQ(Apply1<T>(Function::kLeakyRelu, 0.01, 1, tiny), 1);
  EXPECT_EQ(Apply1<T>(Function::kElu, 0.5, 1, tiny), 1);
  EXPECT_EQ(Apply1<T>(Function::kElu, 0.5, 2, tiny), 0);
}

TYPED_TEST(SpecialValuesTest, IdentityIsBitExact) {
  using T = TypeParam;
  std::vector<T> x = SpecialValues<T>();
  x.pop_back();  // NaN payloads may be quieted; only their NaN-ness counts.
  x.pop_back();
  const std::vector<T> y = Apply<T>(Function::kIdentity, 0, 0, x);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(std::memcmp(&x[i], &y[i], sizeof(T)), 0) << Describe<T>(x[i]);
  }
}

TYPED_TEST(SpecialValuesTest, PiecewiseLinearSecondDerivativesAreZero) {
  using T = TypeParam;
  std::vector<T> x = SpecialValues<T>();
  x.resize(x.size() - 2);  // not NaN
  for (double t = -50; t <= 50; t += 0.375) x.push_back(static_cast<T>(t));
  for (Function f :
       {Function::kIdentity, Function::kRelu, Function::kLeakyRelu}) {
    const std::vector<T> y = Apply<T>(f, AlphaFor(f), 2, x);
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(y[i], 0) << Name(f) << " at " << Describe<T>(x[i]);
    }
  }
}

// ---------------------------------------------------------------------------
// The seed's identities where they hold. Each side comes from the core in T;
// the tolerance propagates the budgets (4 ULP per f, f') through the
// identity, so a wrong f or f' (beyond its budget) fails.

template <typename T>
class IdentitiesTest : public ::testing::Test {
 protected:
  static std::vector<T> Grid(double lo, double hi, double step) {
    std::vector<T> x;
    for (double t = lo; t <= hi; t += step) x.push_back(static_cast<T>(t));
    return x;
  }
  static long double U(long double v) { return 4 * UlpAt<T>(v); }
  // σ(x), σ'(x) and σ(−x) on the grid x.
  struct Sigmoids {
    std::vector<T> s, ds, s_minus;
  };
  static Sigmoids SigmoidsOn(const std::vector<T>& x) {
    return {Apply<T>(Function::kSigmoid, 0, 0, x),
            Apply<T>(Function::kSigmoid, 0, 1, x),
            Apply<T>(Function::kSigmoid, 0, 0, Negated(x))};
  }
  static std::vector<T> Negated(const std::vector<T>& x) {
    std::vector<T> minus_x(x.size());
    for (size_t i = 0; i < x.size(); ++i) minus_x[i] = -x[i];
    return minus_x;
  }
};
TYPED_TEST_SUITE(IdentitiesTest, FloatTypes, DtypeNames);

TYPED_TEST(IdentitiesTest, SigmoidPrimeIsSigmoidTimesOneMinusSigmoid) {
  const auto x = this->Grid(-4.99, 4.99, 1.0 / 128);
  const auto [s, ds, s_minus] = this->SigmoidsOn(x);
  for (size_t i = 0; i < x.size(); ++i) {
    const long double si = s[i];
    const long double self = si * (1 - si);
    // d(σ(1−σ))/dσ = 1 − 2σ carries σ's error into the self form.
    EXPECT_NEAR(ds[i], self,
                this->U(ds[i]) + std::fabs(1 - 2 * si) * this->U(si))
        << "x=" << x[i];
    // σ' = σ(x)σ(−x) is well conditioned: 4 + 4 + 4 ULP.
    const long double product = si * s_minus[i];
    EXPECT_NEAR(
        ds[i], product,
        this->U(ds[i]) + this->U(si) * s_minus[i] + this->U(s_minus[i]) * si)
        << "x=" << x[i];
  }
}

TYPED_TEST(IdentitiesTest, SigmoidPrimeIsSigmoidTimesSigmoidOfMinusXInTails) {
  using T = TypeParam;
  // Where the self form rounds to 0 (SPEC.md §1), the product form holds.
  const auto x = this->Grid(-100, 100, 0.25);
  const auto [s, ds, s_minus] = this->SigmoidsOn(x);
  for (size_t i = 0; i < x.size(); ++i) {
    const long double product = static_cast<long double>(s[i]) * s_minus[i];
    if (product < std::numeric_limits<T>::min()) continue;
    EXPECT_GT(ds[i], 0) << "x=" << x[i];
    EXPECT_NEAR(ds[i], product, 12 * UlpAt<T>(product)) << "x=" << x[i];
  }
}

TYPED_TEST(IdentitiesTest, TanhPrimeIsOneMinusTanhSquared) {
  using T = TypeParam;
  const auto x = this->Grid(-4.99, 4.99, 1.0 / 128);
  const auto t = Apply<T>(Function::kTanh, 0, 0, x);
  const auto dt = Apply<T>(Function::kTanh, 0, 1, x);
  for (size_t i = 0; i < x.size(); ++i) {
    const long double ti = t[i];
    EXPECT_NEAR(dt[i], 1 - ti * ti,
                this->U(dt[i]) + 2 * std::fabs(ti) * this->U(ti))
        << "x=" << x[i];
  }
}

TYPED_TEST(IdentitiesTest, TanhIsTwoSigmoidOfTwoXMinusOne) {
  using T = TypeParam;
  const auto x = this->Grid(-9.99, 9.99, 1.0 / 128);
  std::vector<T> two_x(x.size());
  for (size_t i = 0; i < x.size(); ++i) two_x[i] = 2 * x[i];
  const auto t = Apply<T>(Function::kTanh, 0, 0, x);
  const auto s = Apply<T>(Function::kSigmoid, 0, 0, two_x);
  for (size_t i = 0; i < x.size(); ++i) {
    const long double si = s[i];
    EXPECT_NEAR(t[i], 2 * si - 1, this->U(t[i]) + 2 * this->U(si))
        << "x=" << x[i];
  }
}

TYPED_TEST(IdentitiesTest, SoftplusDerivativesAreSigmoidAndItsDerivative) {
  using T = TypeParam;
  const auto x = this->Grid(-100, 100, 1.0 / 32);
  for (int order = 1; order <= 2; ++order) {
    const auto sp = Apply<T>(Function::kSoftplus, 0, order, x);
    const auto s = Apply<T>(Function::kSigmoid, 0, order - 1, x);
    for (size_t i = 0; i < x.size(); ++i) {
      const long double budget =
          BudgetOf<T>(Function::kSoftplus, KindOfOrder(order));
      const long double tol = budget * (UlpAt<T>(sp[i]) + UlpAt<T>(s[i]));
      const long double floor = std::fabs(s[i]) < std::numeric_limits<T>::min()
                                    ? std::numeric_limits<T>::min()
                                    : 0;
      EXPECT_NEAR(sp[i], s[i], std::max(tol, floor))
          << "order " << order << " x=" << x[i];
    }
  }
}

TYPED_TEST(IdentitiesTest, SigmoidOfMinusXIsOneMinusSigmoid) {
  const auto x = this->Grid(-30, 30, 1.0 / 64);
  const auto [s, ds, s_minus] = this->SigmoidsOn(x);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(s_minus[i], 1 - static_cast<long double>(s[i]),
                this->U(s_minus[i]) + this->U(s[i]))
        << "x=" << x[i];
  }
}

TYPED_TEST(IdentitiesTest, GeluPrimeOfMinusXIsOneMinusGeluPrime) {
  using T = TypeParam;
  const auto zeros = InteriorZeros(Function::kGelu, 1);
  const double near_zero =
      NearZeroOf<T>(Function::kGelu, ElementwiseKind::kDerivative1);
  const auto x = this->Grid(-12, 12, 1.0 / 128);
  const std::vector<T> minus_x = this->Negated(x);
  const auto g = Apply<T>(Function::kGelu, 0, 1, x);
  const auto g_minus = Apply<T>(Function::kGelu, 0, 1, minus_x);
  for (size_t i = 0; i < x.size(); ++i) {
    auto tol = [&](T at, long double v) {
      return std::max<long double>(
          this->U(v),
          NearZeroBound<T>(zeros, near_zero, static_cast<double>(at)));
    };
    EXPECT_NEAR(g_minus[i], 1 - static_cast<long double>(g[i]),
                tol(minus_x[i], g_minus[i]) + tol(x[i], g[i]))
        << "x=" << x[i];
  }
}

// ---------------------------------------------------------------------------
// The corrected statements of SPEC.md §1 ("where the seed is wrong"),
// measured on the core's results.

template <typename T>
class SeedErrataTest : public ::testing::Test {};
TYPED_TEST_SUITE(SeedErrataTest, FloatTypes, DtypeNames);

// Min or max of f^(order) over a fine grid, and where.
template <typename T>
std::pair<double, double> Extremum(Function f, int order, double lo, double hi,
                                   bool minimum) {
  std::vector<T> x;
  for (double t = lo; t <= hi; t += 1.0 / 8192) x.push_back(static_cast<T>(t));
  const auto y = Apply<T>(f, 0, order, x);
  size_t best = 0;
  for (size_t i = 1; i < y.size(); ++i) {
    if (minimum ? y[i] < y[best] : y[i] > y[best]) best = i;
  }
  return {static_cast<double>(y[best]), static_cast<double>(x[best])};
}

TYPED_TEST(SeedErrataTest, GeluDerivativeRangeAndGeluMinimum) {
  using T = TypeParam;
  const double sqrt2 = std::sqrt(2.0);
  // The extrema are flat (f''' ≈ ±0.41 there), so rounding moves the
  // grid's argmin by up to ~3e-4 in float32.
  auto [dmin, dmin_at] = Extremum<T>(Function::kGelu, 1, -4, 0, true);
  EXPECT_NEAR(dmin, -0.12890, 1e-5);
  EXPECT_NEAR(dmin_at, -sqrt2, 2e-3);
  auto [dmax, dmax_at] = Extremum<T>(Function::kGelu, 1, 0, 4, false);
  EXPECT_NEAR(dmax, 1.12890, 1e-5);
  EXPECT_NEAR(dmax_at, sqrt2, 2e-3);
  auto [fmin, fmin_at] = Extremum<T>(Function::kGelu, 0, -4, 0, true);
  EXPECT_NEAR(fmin, -0.16997, 1e-5);
  EXPECT_NEAR(fmin_at, -0.75179, 2e-3);
  // Global: over [−40, 40] nothing goes below or above those.
  auto [gmin, gmin_at] = Extremum<T>(Function::kGelu, 1, -40, 40, true);
  EXPECT_NEAR(gmin_at, -sqrt2, 2e-3);
  auto [gmax, gmax_at] = Extremum<T>(Function::kGelu, 1, -40, 40, false);
  EXPECT_NEAR(gmax_at, sqrt2, 2e-3);
  EXPECT_EQ(gmin, dmin);
  EXPECT_EQ(gmax, dmax);
}

TYPED_TEST(SeedErrataTest, GeluDerivativeIsNegativeBelowMinus0_7518) {
  using T = TypeParam;
  std::vector<T> x;
  for (double t = -0.7518; t >= -40; t -= 1.0 / 1024) {
    x.push_back(static_cast<T>(t));
  }
  const auto d = Apply<T>(Function::kGelu, 0, 1, x);
  for (size_t i = 0; i < x.size(); ++i) {
    // Once the true value is below T's normal range it may round to −0.
    const Quad want = Oracle(Function::kGelu, 0, 1, x[i]);
    if (-want >= std::numeric_limits<T>::min()) {
      EXPECT_LT(d[i], 0) << "x=" << Describe<T>(x[i]);
    } else {
      EXPECT_LE(d[i], 0) << "x=" << Describe<T>(x[i]);
    }
  }
  // And above 1 for x > 0.7518, until 1 + excess rounds to 1.
  x.clear();
  for (double t = 0.7519; t <= 40; t += 1.0 / 1024) {
    x.push_back(static_cast<T>(t));
  }
  const auto d_plus = Apply<T>(Function::kGelu, 0, 1, x);
  for (size_t i = 0; i < x.size(); ++i) {
    const Quad excess = Oracle(Function::kGelu, 0, 1, x[i]) - 1;
    if (excess > std::numeric_limits<T>::epsilon()) {
      EXPECT_GT(d_plus[i], 1) << "x=" << Describe<T>(x[i]);
    } else {
      EXPECT_GE(d_plus[i], 1) << "x=" << Describe<T>(x[i]);
    }
  }
}

TYPED_TEST(SeedErrataTest, SigmoidDerivativeBound) {
  using T = TypeParam;
  auto ds = [](double x) {
    return Apply1<T>(Function::kSigmoid, 0, 1, static_cast<T>(x));
  };
  EXPECT_NEAR(ds(6), 0.0024665, 5e-8);
  EXPECT_GT(ds(6), 0.002);
  // σ'(x) = 0.002 at |x| = 6.21060, so the seed's 6 is wrong and "6.2"
  // is a rounding of the threshold: σ'(6.2) = 0.0020212 > 0.002.
  EXPECT_NEAR(ds(6.2), 0.0020212, 1e-7);
  EXPECT_GT(ds(6.2), 0.002);
  EXPECT_LE(ds(6.2107), 0.002);
  for (double t = 6.2107; t <= 200; t += 1.0 / 64) {
    EXPECT_LE(ds(t), 0.002) << t;
    EXPECT_LE(ds(-t), 0.002) << -t;
  }
}

TYPED_TEST(SeedErrataTest, TailValuesAreNotZero) {
  using T = TypeParam;
  auto at = [](Function f, int order, double x) {
    return Apply1<T>(f, 0, order, static_cast<T>(x));
  };
  const double tol = sizeof(T) == 4 ? 1e-6 : 1e-14;
  auto ratio = [&](Function f, int order, double x) {
    return at(f, order, x) / static_cast<double>(Oracle(f, 0, order, x));
  };
  EXPECT_NEAR(ratio(Function::kSigmoid, 1, 20), 1, tol);
  EXPECT_NEAR(ratio(Function::kSigmoid, 1, -20), 1, tol);
  EXPECT_NEAR(ratio(Function::kTanh, 1, 10), 1, tol);
  EXPECT_NEAR(ratio(Function::kGelu, 0, -8), 1, tol);
  // The printed values of SPEC.md.
  EXPECT_NEAR(at(Function::kSigmoid, 1, 20), 2.0611536e-9, 1e-16);
  EXPECT_NEAR(at(Function::kTanh, 1, 10), 8.2446e-9, 1e-13);
  EXPECT_NEAR(at(Function::kGelu, 0, -8), -4.98e-15, 1e-17);
}

// ---------------------------------------------------------------------------
// Derivatives against complex-step differentiation: f'(x) = Im f(x+ih)/h
// with no cancellation. f'' is the complex step of our own f' formulas.
// Naive forms suffice for |x| <= 8 in long double.

using C = std::complex<long double>;
constexpr long double kStep = 1e-30L;

C Sigmoid(C z) { return 1.0L / (1.0L + std::exp(-z)); }
// σ'(z) = 1/(4 cosh²(z/2)): σ(z)σ(−z) would cancel in the imaginary part
// near 0, where σ'' is small.
C SigmoidPrime(C z) {
  const C c = std::cosh(z / 2.0L);
  return 1.0L / (4.0L * c * c);
}

// erfc on the complex line just off the real axis, exact to O(Im z²).
C ErfcNearReal(C z) {
  const long double x = z.real();
  const long double two_over_sqrt_pi = 1.1283791670955125738961589031215452L;
  return C(std::erfc(x), -z.imag() * two_over_sqrt_pi * std::exp(-x * x));
}
C Cdf(C z) { return 0.5L * ErfcNearReal(-z / std::sqrt(2.0L)); }
C Pdf(C z) {
  return std::exp(-z * z / 2.0L) / std::sqrt(2 * 3.14159265358979323846264338L);
}

constexpr long double kGeluC = 0.797884560802865355879892119868763737L;
constexpr long double kGeluK = 0.044715L;

// f (order 0) and f' (order 1) over the complex numbers.
C ComplexF(Function f, long double alpha, int order, C z) {
  const bool positive = z.real() > 0;
  const long double lambda = kSeluLambda, selu_alpha = kSeluAlpha;
  switch (f) {
    case Function::kIdentity:
      return order == 0 ? z : C(1);
    case Function::kSigmoid:
      return order == 0 ? Sigmoid(z) : SigmoidPrime(z);
    case Function::kTanh:
      return order == 0 ? std::tanh(z) : 1.0L / (std::cosh(z) * std::cosh(z));
    case Function::kRelu:
      return positive ? (order == 0 ? z : C(1)) : C(0);
    case Function::kLeakyRelu:
      return positive ? (order == 0 ? z : C(1))
                      : (order == 0 ? alpha * z : C(alpha));
    case Function::kGelu:
      return order == 0 ? z * Cdf(z) : Cdf(z) + z * Pdf(z);
    case Function::kGeluTanh: {
      // ½(1 + tanh u) = σ(2u): 1 + tanh u itself cancels for u ≪ 0.
      const C u = kGeluC * (z + kGeluK * z * z * z);
      if (order == 0) return z * Sigmoid(2.0L * u);
      const C du = kGeluC * (1.0L + 3 * kGeluK * z * z);
      return Sigmoid(2.0L * u) + 2.0L * z * SigmoidPrime(2.0L * u) * du;
    }
    case Function::kSilu:
      return order == 0 ? z * Sigmoid(z)
                        : Sigmoid(z) * (1.0L + z * Sigmoid(-z));
    case Function::kSoftplus:
      return order == 0 ? std::log(1.0L + std::exp(z)) : Sigmoid(z);
    case Function::kElu:
      if (positive) return order == 0 ? z : C(1);
      return order == 0 ? alpha * (std::exp(z) - 1.0L) : alpha * std::exp(z);
    case Function::kSelu:
      if (positive) return order == 0 ? lambda * z : C(lambda);
      return order == 0 ? lambda * selu_alpha * (std::exp(z) - 1.0L)
                        : lambda * selu_alpha * std::exp(z);
    default:
      break;
  }
  std::abort();
}

template <typename T>
class ComplexStepTest : public ::testing::Test {};
TYPED_TEST_SUITE(ComplexStepTest, FloatTypes, DtypeNames);

TYPED_TEST(ComplexStepTest, DerivativesMatch) {
  using T = TypeParam;
  const long double rtol = sizeof(T) == 4 ? 1e-6L : 1e-12L;
  Random random(7);
  std::vector<T> x;
  for (double t = -8; t <= 8; t += 1.0 / 61) x.push_back(static_cast<T>(t));
  for (int i = 0; i < 2000; ++i) {
    x.push_back(static_cast<T>(random.Uniform(-8, 8)));
  }
  for (Function f : ElementwiseFunctions()) {
    for (double alpha : {AlphaFor(f), 0.37}) {
      if (alpha != AlphaFor(f) && !TakesAlpha(f)) continue;
      for (int order = 1; order <= 2; ++order) {
        const auto zeros = InteriorZeros(f, order);
        const auto got = Apply<T>(f, alpha, order, x);
        double worst = 0;
        for (size_t i = 0; i < x.size(); ++i) {
          if (x[i] == 0) continue;  // the kinks of relu, leaky_relu, elu
          const long double xi = x[i];
          const long double want =
              ComplexF(f, alpha, order - 1, C(xi, kStep)).imag() / kStep;
          const long double err = std::fabs(got[i] - want);
          // Near an interior zero of f^(order) only an absolute error is
          // meaningful (SPEC.md §4), the one the ULP test allows.
          const long double atol =
              NearZeroBound<T>(zeros, NearZeroOf<T>(f, KindOfOrder(order)),
                               static_cast<double>(x[i]));
          const long double tol = std::max(rtol * std::fabs(want), atol);
          if (std::fabs(want) > 0) {
            worst = std::max<double>(worst, err / std::fabs(want));
          }
          EXPECT_LE(err, tol)
              << Name(f) << " alpha " << alpha << " order " << order
              << " x=" << Describe<T>(x[i]) << " got " << Describe<T>(got[i])
              << " want " << static_cast<double>(want);
        }
        std::printf("%-10s alpha %-5g order %d %s: max relative error %.3g\n",
                    Name(f).c_str(), alpha, order, DtypeName<T>(), worst);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The array API.

template <typename T>
class ArrayApiTest : public ::testing::Test {
 protected:
  // Values in [−12, 12] with a few special values mixed in.
  static std::vector<T> Inputs(size_t n, uint64_t seed) {
    Random random(seed);
    std::vector<T> x(n);
    for (auto& v : x) v = static_cast<T>(random.Uniform(-12, 12));
    const T specials[] = {T(0),
                          T(-0.0),
                          std::numeric_limits<T>::infinity(),
                          -std::numeric_limits<T>::infinity(),
                          std::numeric_limits<T>::denorm_min(),
                          T(-1e-3)};
    for (size_t i = 0; i < n; i += 7) x[i] = specials[(i / 7) % 6];
    return x;
  }
};
TYPED_TEST_SUITE(ArrayApiTest, FloatTypes, DtypeNames);

constexpr size_t kN = 64;

// Every length 0..2N−1 at offsets 0..3 elements, out of place and in place,
// output pre-filled with NaN; every element against the oracle, and the
// elements around the range untouched.
TYPED_TEST(ArrayApiTest, LengthsMisalignmentAndAliasing) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T guard = T(-12345.5);
  for (Function f : ElementwiseFunctions()) {
    const double alpha = AlphaFor(f);
    for (int order = 0; order < 3; ++order) {
      const auto zeros = InteriorZeros(f, order);
      const double budget = BudgetOf<T>(f, KindOfOrder(order));
      const double near_zero = NearZeroOf<T>(f, KindOfOrder(order));
      for (size_t len = 0; len < 2 * kN; ++len) {
        for (size_t offset = 0; offset < 4; ++offset) {
          for (bool in_place : {false, true}) {
            const auto values = this->Inputs(len, len * 31 + offset);
            std::vector<T> in(len + offset + 4, guard);
            std::copy(values.begin(), values.end(), in.begin() + offset);
            std::vector<T> out(len + offset + 4, guard);
            std::fill(out.begin() + offset, out.begin() + offset + len, nan);
            std::vector<T>& dst = in_place ? in : out;
            const auto x = absl::MakeConstSpan(in).subspan(offset, len);
            const auto y = absl::MakeSpan(dst).subspan(offset, len);
            if (order == 0) {
              Evaluate<T>(f, alpha, x, y);
            } else {
              Derivative<T>(f, alpha, order, x, y);
            }
            for (size_t i = 0; i < len; ++i) {
              const T got = dst[offset + i];
              const Verdict v =
                  Judge<T>(got, Oracle(f, alpha, order, values[i]), budget,
                           std::isfinite(values[i])
                               ? NearZeroBound<T>(zeros, near_zero, values[i])
                               : 0);
              ASSERT_TRUE(v.ok)
                  << Name(f) << " order " << order << " len " << len
                  << " offset " << offset << (in_place ? " in place" : "")
                  << " index " << i << " x=" << Describe<T>(values[i])
                  << " got " << Describe<T>(got);
            }
            for (size_t i = 0; i < offset; ++i) {
              ASSERT_EQ(dst[i], guard) << "wrote before the output";
            }
            for (size_t i = offset + len; i < dst.size(); ++i) {
              ASSERT_EQ(dst[i], guard) << "wrote past the output";
            }
          }
        }
      }
    }
  }
}

// Vjp(x, g) = g ⊙ f'(x), out of place and with y aliasing x or g, at every
// length and offset.
TYPED_TEST(ArrayApiTest, VjpIsUpstreamTimesDerivative) {
  using T = TypeParam;
  Random random(3);
  for (Function f : ElementwiseFunctions()) {
    const double alpha = AlphaFor(f);
    const auto zeros = InteriorZeros(f, 1);
    // The budget of f' plus one rounding (the product's).
    const double budget = BudgetOf<T>(f, ElementwiseKind::kDerivative1) + 1;
    const double vjp_budget = BudgetOf<T>(f, ElementwiseKind::kVjp);
    const double near_zero = NearZeroOf<T>(f, ElementwiseKind::kVjp);
    for (size_t len = 0; len < 2 * kN; ++len) {
      for (size_t offset = 0; offset < 4; ++offset) {
        const auto x_values = this->Inputs(len, len + 1000 * offset);
        std::vector<T> g_values(len);
        for (auto& v : g_values) v = static_cast<T>(random.Uniform(-3, 3));
        const auto d = Apply<T>(f, alpha, 1, x_values);
        for (int alias = 0; alias < 3; ++alias) {  // none, x, g
          std::vector<T> x(len + offset), g(len + offset),
              y(len + offset, std::numeric_limits<T>::quiet_NaN());
          std::copy(x_values.begin(), x_values.end(), x.begin() + offset);
          std::copy(g_values.begin(), g_values.end(), g.begin() + offset);
          std::vector<T>& dst = alias == 0 ? y : alias == 1 ? x : g;
          Vjp<T>(f, alpha, absl::MakeConstSpan(x).subspan(offset),
                 absl::MakeConstSpan(g).subspan(offset),
                 absl::MakeSpan(dst).subspan(offset));
          for (size_t i = 0; i < len; ++i) {
            const T got = dst[offset + i];
            const long double want =
                static_cast<long double>(g_values[i]) * d[i];
            if (std::isnan(want)) {
              EXPECT_TRUE(std::isnan(got));
              continue;
            }
            // g·f' rounded once from the exact f' or from f' in T: within
            // the budget of f' plus one rounding.
            const long double tol = std::max<long double>(
                budget * UlpAt<T>(want),
                std::fabs(want) < std::numeric_limits<T>::min()
                    ? std::numeric_limits<T>::min()
                    : 0);
            ASSERT_NEAR(got, want, tol)
                << Name(f) << " len " << len << " offset " << offset
                << " alias " << alias << " x=" << Describe<T>(x_values[i])
                << " g=" << g_values[i];
            if (alias != 0) continue;
            // And against the oracle: the VJP's own budget.
            const Verdict v = Judge<T>(
                got, Quad(g_values[i]) * Oracle(f, alpha, 1, x_values[i]),
                vjp_budget,
                std::isfinite(x_values[i])
                    ? 3 * NearZeroBound<T>(zeros, near_zero, x_values[i])
                    : 0);
            ASSERT_TRUE(v.ok)
                << Name(f) << " x=" << Describe<T>(x_values[i])
                << " g=" << g_values[i] << " got " << Describe<T>(got);
          }
        }
      }
    }
  }
}

TYPED_TEST(ArrayApiTest, DiagonalToDense) {
  using T = TypeParam;
  for (int64_t rows : {0, 1, 3}) {
    for (int64_t c : {1, 2, 5, 17}) {
      std::vector<T> diag(rows * c);
      for (size_t i = 0; i < diag.size(); ++i) diag[i] = T(1.5) + T(i);
      std::vector<T> dense(diag.size() * c,
                           std::numeric_limits<T>::quiet_NaN());
      DiagonalToDense<T>(absl::MakeConstSpan(diag), c, absl::MakeSpan(dense));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t a = 0; a < c; ++a) {
          for (int64_t b = 0; b < c; ++b) {
            const T want = a == b ? diag[r * c + a] : T(0);
            ASSERT_EQ(dense[(r * c + a) * c + b], want)
                << "rows " << rows << " c " << c << " at " << r << "," << a
                << "," << b;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace test
}  // namespace actsvc
