// Checks of the test oracle itself: its derivatives against central
// differences of its own lower orders (in quad, so ~1e-20 accurate), its
// values against long double <cmath> where both are accurate, and the
// limits at ±∞ and NaN.
#include "tests/core/oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/activation.h"
#include "gtest/gtest.h"
#include "tests/core/accuracy.h"

namespace actsvc {
namespace test {
namespace {

struct Case {
  Function f;
  double alpha;
};
const Case kCases[] = {
    {Function::kIdentity, 0},     {Function::kSigmoid, 0},
    {Function::kTanh, 0},         {Function::kRelu, 0},
    {Function::kLeakyRelu, 0.01}, {Function::kGelu, 0},
    {Function::kGeluTanh, 0},     {Function::kSilu, 0},
    {Function::kSoftplus, 0},     {Function::kElu, 1.0},
    {Function::kElu, 0.3},        {Function::kSelu, 0},
};

std::string Name(const Case& c) { return std::string(FunctionName(c.f)); }

TEST(OracleTest, DerivativesMatchCentralDifferences) {
  const Quad h = 1e-11Q;
  for (const Case& c : kCases) {
    for (double xd = -30.03125; xd <= 30; xd += 0.0625) {
      // Stay away from the kinks at 0 of relu, leaky_relu, elu, selu.
      if (std::fabs(xd) < 1e-3) continue;
      const Quad x = xd;
      const Jet at = OracleJet(c.f, c.alpha, x);
      const Jet plus = OracleJet(c.f, c.alpha, x + h);
      const Jet minus = OracleJet(c.f, c.alpha, x - h);
      for (int order = 1; order <= 2; ++order) {
        const Quad fd = (plus[order - 1] - minus[order - 1]) / (2 * h);
        // Truncation error h²/6·f''' is ~1e-19 relative here; rounding
        // of f^(order-1) in quad adds |f^(order-1)|·2^-113/h.
        const Quad tol =
            1e-16Q * fabsq(at[order]) + 1e-21Q * fabsq(at[order - 1]) + 1e-300Q;
        EXPECT_LE(static_cast<double>(fabsq(fd - at[order])),
                  static_cast<double>(tol))
            << Name(c) << " order " << order << " x=" << xd << " oracle "
            << QuadToString(at[order]) << " fd " << QuadToString(fd);
      }
    }
  }
}

TEST(OracleTest, ValuesMatchLongDoubleWhereItIsAccurate) {
  for (long double x = -5.0L; x <= 5.0L; x += 0.015625L) {
    const long double tol = 64 * std::numeric_limits<long double>::epsilon();
    auto check = [&](Function f, double alpha, long double want) {
      const long double got = static_cast<long double>(Oracle(f, alpha, 0, x));
      EXPECT_LE(std::fabs(got - want), tol * std::fabs(want) + 1e-30L)
          << FunctionName(f) << " x=" << static_cast<double>(x);
    };
    check(Function::kSigmoid, 0, 1 / (1 + std::exp(-x)));
    check(Function::kTanh, 0, std::tanh(x));
    check(Function::kGelu, 0, x * std::erfc(-x / std::sqrt(2.0L)) / 2);
    const long double u = std::sqrt(2 / 3.14159265358979323846264338L) *
                          (x + 0.044715L * x * x * x);
    // 1 + tanh u cancels for u < 0; x σ(2u) does not.
    if (x >= -1) check(Function::kGeluTanh, 0, x / 2 * (1 + std::tanh(u)));
    check(Function::kGeluTanh, 0, x / (1 + std::exp(-2 * u)));
    check(Function::kSilu, 0, x / (1 + std::exp(-x)));
    check(Function::kSoftplus, 0, std::log1p(std::exp(x)));
    check(Function::kElu, 1.0, x > 0 ? x : std::expm1(x));
    check(Function::kSelu, 0,
          static_cast<long double>(kSeluLambda) *
              (x > 0 ? x : kSeluAlpha * std::expm1(x)));
  }
}

TEST(OracleTest, KnownValues) {
  // σ'(6), σ'(20), tanh'(10), gelu(−8), gelu's extrema (SPEC.md §1 errata).
  EXPECT_NEAR(static_cast<double>(Oracle(Function::kSigmoid, 0, 1, 6)),
              0.0024665, 5e-8);
  EXPECT_NEAR(static_cast<double>(Oracle(Function::kSigmoid, 0, 1, 20)),
              2.0611536e-9, 1e-16);
  EXPECT_NEAR(static_cast<double>(Oracle(Function::kTanh, 0, 1, 10)), 8.2446e-9,
              1e-13);
  EXPECT_NEAR(static_cast<double>(Oracle(Function::kGelu, 0, 0, -8)), -4.98e-15,
              1e-17);
  EXPECT_NEAR(static_cast<double>(Oracle(Function::kGelu, 0, 1, -M_SQRT2q)),
              -0.12890, 1e-5);
  EXPECT_NEAR(static_cast<double>(Oracle(Function::kGelu, 0, 1, M_SQRT2q)),
              1.12890, 1e-5);
  EXPECT_NEAR(static_cast<double>(Oracle(Function::kGelu, 0, 0, -0.75179Q)),
              -0.16997, 1e-5);
  // Deep tails keep their relative accuracy: σ'(−100) = e^−100 (1+...).
  EXPECT_NEAR(
      static_cast<double>(Oracle(Function::kSigmoid, 0, 1, -100) / expq(-100)),
      1.0, 1e-30);
  // gelu(x) ~ −φ(x)(1 − 1/x² + 3/x⁴) as x → −∞.
  const Quad x = -30;
  const Quad phi = expq(-x * x / 2) / sqrtq(2 * M_PIq);
  EXPECT_NEAR(
      static_cast<double>(Oracle(Function::kGelu, 0, 0, x) /
                          (-phi * (1 - 1 / (x * x) + 3 / (x * x * x * x)))),
      1.0, 1e-6);
}

TEST(OracleTest, LimitsAndNaN) {
  const Quad inf = QuadInf();
  for (const Case& c : kCases) {
    const Jet n = OracleJet(c.f, c.alpha, QuadNaN());
    for (int order = 0; order < 3; ++order) {
      EXPECT_TRUE(isnanq(n[order])) << Name(c) << order;
    }
    for (Quad x : {inf, -inf}) {
      const Jet j = OracleJet(c.f, c.alpha, x);
      for (int order = 0; order < 3; ++order) {
        EXPECT_FALSE(isnanq(j[order])) << Name(c) << order;
      }
    }
  }
  EXPECT_TRUE(Oracle(Function::kSigmoid, 0, 0, inf) == 1);
  EXPECT_TRUE(Oracle(Function::kSigmoid, 0, 1, inf) == 0);
  EXPECT_TRUE(Oracle(Function::kSigmoid, 0, 1, -inf) == 0);
  EXPECT_TRUE(Oracle(Function::kGelu, 0, 0, -inf) == 0);
  EXPECT_TRUE(Oracle(Function::kSilu, 0, 0, -inf) == 0);
  EXPECT_TRUE(Oracle(Function::kSoftplus, 0, 0, inf) == inf);
  EXPECT_TRUE(Oracle(Function::kElu, 0.5, 0, -inf) == -0.5Q);
  EXPECT_TRUE(Oracle(Function::kRelu, 0, 1, 0) == 0);
  EXPECT_TRUE(Oracle(Function::kLeakyRelu, 0.01, 1, 0) == Quad(0.01));
  EXPECT_TRUE(Oracle(Function::kElu, 0.5, 1, 0) == 0.5Q);
  EXPECT_TRUE(Oracle(Function::kElu, 0.5, 2, 0) == 0.5Q);
}

// The rules of accuracy.h: each must reject what SPEC.md §4 rejects.
TEST(AccuracyRulesTest, JudgeAppliesTheSpecRules) {
  using L = std::numeric_limits<float>;
  const Quad one = 1;
  const float ulp1 = L::epsilon();  // spacing at 1 (binade [1, 2))
  EXPECT_TRUE((Judge<float>(1.0f, one, 4, 0).ok));
  EXPECT_TRUE((Judge<float>(1.0f + 4 * ulp1, one, 4, 0).ok));
  EXPECT_FALSE((Judge<float>(1.0f + 5 * ulp1, one, 4, 0).ok));
  EXPECT_NEAR(Judge<float>(1.0f + 3 * ulp1, one, 4, 0).ulp, 3, 1e-9);
  // Below 1 the spacing halves: 1 − 4·(ε/2) is 4 ULP of want = 1 − tiny.
  EXPECT_TRUE((Judge<float>(1.0f - 2 * ulp1, one - 1e-20Q, 4, 0).ok));
  EXPECT_FALSE((Judge<float>(1.0f - 3 * ulp1, one - 1e-20Q, 4, 0).ok));
  // NaN only matches NaN; a NaN result never passes otherwise.
  EXPECT_TRUE((Judge<float>(L::quiet_NaN(), QuadNaN(), 4, 0).ok));
  EXPECT_FALSE((Judge<float>(0.0f, QuadNaN(), 4, 0).ok));
  EXPECT_FALSE((Judge<float>(L::quiet_NaN(), one, 4, 0).ok));
  // Infinities and overflow: the same infinity only.
  EXPECT_TRUE((Judge<float>(L::infinity(), QuadInf(), 4, 0).ok));
  EXPECT_FALSE((Judge<float>(-L::infinity(), QuadInf(), 4, 0).ok));
  EXPECT_FALSE((Judge<float>(L::max(), QuadInf(), 4, 0).ok));
  EXPECT_TRUE((Judge<float>(L::infinity(), Quad(L::max()) * 1.1Q, 4, 0).ok));
  EXPECT_FALSE((Judge<float>(L::max(), Quad(L::max()) * 1.1Q, 4, 0).ok));
  EXPECT_FALSE((Judge<float>(L::infinity(), Quad(L::max()), 4, 0).ok));
  EXPECT_TRUE((Judge<float>(L::max(), Quad(L::max()), 4, 0).ok));
  // A structural zero: ±0 or ±denorm_min.
  EXPECT_TRUE((Judge<float>(-0.0f, Quad(0), 4, 0).ok));
  EXPECT_TRUE((Judge<float>(L::denorm_min(), Quad(0), 4, 0).ok));
  EXPECT_FALSE((Judge<float>(2 * L::denorm_min(), Quad(0), 4, 0).ok));
  EXPECT_FALSE((Judge<float>(1e-30f, Quad(0), 4, 0).ok));
  // A subnormal true value: off by at most the smallest normal.
  const Quad sub = Quad(L::min()) / 3;
  EXPECT_TRUE((Judge<float>(0.0f, sub, 4, 0).ok));
  EXPECT_TRUE((Judge<float>(L::min(), sub, 4, 0).ok));
  EXPECT_FALSE((Judge<float>(2 * L::min(), sub, 4, 0).ok));
  EXPECT_FALSE((Judge<float>(-L::min(), sub, 4, 0).ok));
  // Near an interior zero the absolute bound applies as well.
  const Quad small = 1e-7Q;
  EXPECT_FALSE((Judge<float>(3e-7f, small, 4, 0).ok));
  EXPECT_TRUE((Judge<float>(3e-7f, small, 4, 4 * ulp1).ok));
  EXPECT_FALSE((Judge<float>(7e-7f, small, 4, 4 * ulp1).ok));
  // float64 spacing.
  const double ulp1d = std::numeric_limits<double>::epsilon();
  EXPECT_TRUE((Judge<double>(1.0 + 4 * ulp1d, one, 4, 0).ok));
  EXPECT_FALSE((Judge<double>(1.0 + 5 * ulp1d, one, 4, 0).ok));
  EXPECT_TRUE((Judge<double>(std::numeric_limits<double>::min(),
                             Quad(std::numeric_limits<double>::min()) / 7, 4, 0)
                   .ok));
}

TEST(AccuracyRulesTest, SweepCoversBothSignsAndSpecials) {
  const std::vector<float> x = SweepInputs<float>(1u << 20, 1.0, 30, 1.0);
  size_t negative = 0, positive = 0, nan = 0, inf = 0, subnormal = 0;
  for (float v : x) {
    if (std::isnan(v)) ++nan;
    if (std::isinf(v)) ++inf;
    if (v != 0 && std::fabs(v) < std::numeric_limits<float>::min()) {
      ++subnormal;
    }
    if (std::signbit(v))
      ++negative;
    else
      ++positive;
  }
  EXPECT_GE(nan, 2u);
  EXPECT_EQ(inf, 2u);
  EXPECT_GE(subnormal, 4u);
  EXPECT_GT(negative, 2000u);
  EXPECT_GT(positive, 2000u);
  EXPECT_NE(std::find(x.begin(), x.end(), std::numeric_limits<float>::max()),
            x.end());
}

}  // namespace
}  // namespace test
}  // namespace actsvc
