// Gradient-flow diagnostics on inputs whose answers are known exactly, the
// seed's saturation bounds (sigmoid' < 0.0025 from |x| >= 6, tanh' < 0.01
// from |x| >= 3), NaN and empty inputs, and chunked accumulation.
#include "core/analyze.h"

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace actsvc {
namespace test {
namespace {

template <typename T>
GradientFlowReport Analyze(Function f, const std::vector<T>& x,
                           double epsilon = kDefaultSaturationEpsilon,
                           std::optional<int> layers = std::nullopt,
                           double alpha = 0) {
  GradientFlowCounts counts;
  AccumulateGradientFlow<T>(f, alpha, epsilon, absl::MakeConstSpan(x), &counts);
  return SummarizeGradientFlow(counts, layers);
}

template <typename T>
class AnalyzeTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(AnalyzeTest, Types);

TYPED_TEST(AnalyzeTest, ReluOnTheIntegersAroundZero) {
  using T = TypeParam;
  // relu(0) = 0 and relu'(0) = 0 (PyTorch's subgradient): three units of
  // five are both sparse and dead.
  const GradientFlowReport r =
      Analyze<T>(Function::kRelu, {-2, -1, 0, 1, 2}, 1e-3, 3);
  EXPECT_EQ(r.units, 5);
  EXPECT_EQ(r.nan_units, 0);
  EXPECT_EQ(r.zero_outputs, 3);
  EXPECT_EQ(r.dead, 3);
  EXPECT_EQ(r.saturated, 3);
  EXPECT_DOUBLE_EQ(r.sparsity, 0.6);
  EXPECT_DOUBLE_EQ(r.dead_fraction, 0.6);
  EXPECT_DOUBLE_EQ(r.saturated_fraction, 0.6);
  EXPECT_EQ(r.min_derivative, 0);
  EXPECT_EQ(r.max_derivative, 1);
  EXPECT_DOUBLE_EQ(r.mean_derivative, 0.4);
  EXPECT_DOUBLE_EQ(r.mean_abs_derivative, 0.4);
  EXPECT_EQ(r.max_abs_derivative, 1);
  ASSERT_TRUE(r.attenuation.has_value());
  EXPECT_DOUBLE_EQ(*r.attenuation, 0.4 * 0.4 * 0.4);
}

TYPED_TEST(AnalyzeTest, SigmoidAtZeroIsTheSteepestPoint) {
  using T = TypeParam;
  // sigma'(0) = 1/4 exactly; over L layers the gradient shrinks by 4^-L.
  for (int layers : {0, 1, 2, 10}) {
    const GradientFlowReport r =
        Analyze<T>(Function::kSigmoid, {0}, 1e-3, layers);
    EXPECT_EQ(r.max_abs_derivative, 0.25);
    EXPECT_EQ(r.min_derivative, 0.25);
    EXPECT_EQ(r.mean_derivative, 0.25);
    EXPECT_EQ(r.sparsity, 0);  // sigma(0) = 1/2
    EXPECT_EQ(r.saturated, 0);
    ASSERT_TRUE(r.attenuation.has_value());
    EXPECT_EQ(*r.attenuation, std::pow(0.25, layers)) << layers;
  }
}

TYPED_TEST(AnalyzeTest, SigmoidSaturatesFromSixWithEpsilon0025) {
  using T = TypeParam;
  // The seed: sigma'(x) < 0.0025 for |x| >= 6 (sigma'(6) = 0.0024665), and
  // not below it inside (|x| = 5.9: 0.0027181).
  const std::vector<T> x = {-200, -20, -6, -5.9, 0, 5.9, 6, 20, 200};
  const GradientFlowReport r = Analyze<T>(Function::kSigmoid, x, 0.0025);
  EXPECT_EQ(r.units, 9);
  EXPECT_EQ(r.saturated, 6);
  // sigma'(±200) = 1.4e-87 and sigma(-200) round to 0 in float32 only;
  // sigma'(20) is 2.06e-9, never 0: the service keeps the tails (SPEC §1).
  constexpr bool kFloat32 = sizeof(T) == 4;
  EXPECT_EQ(r.dead, kFloat32 ? 2 : 0);
  EXPECT_EQ(r.zero_outputs, kFloat32 ? 1 : 0);
  EXPECT_EQ(r.max_abs_derivative, 0.25);
  EXPECT_GT(r.min_derivative, -1e-300);  // never negative
}

TYPED_TEST(AnalyzeTest, TanhSaturatesFromThreeWithEpsilon001) {
  using T = TypeParam;
  // tanh'(3) = 0.0098660 < 0.01; tanh'(2.9) = 0.012040.
  const std::vector<T> x = {-4, -3, -2.9, 0, 2.9, 3, 4};
  const GradientFlowReport r = Analyze<T>(Function::kTanh, x, 0.01);
  EXPECT_EQ(r.saturated, 4);
  EXPECT_EQ(r.dead, 0);
  EXPECT_EQ(r.zero_outputs, 1);  // tanh(0) = 0
  EXPECT_EQ(r.max_abs_derivative, 1);
}

TYPED_TEST(AnalyzeTest, LeakyReluNeverDiesButGeluGoesNegative) {
  using T = TypeParam;
  const std::vector<T> x = {-3, -1, 0, 1, 3};
  GradientFlowReport r =
      Analyze<T>(Function::kLeakyRelu, x, 1e-3, std::nullopt, /*alpha=*/0.01);
  EXPECT_EQ(r.dead, 0);
  EXPECT_EQ(r.saturated, 0);  // 0.01 >= 1e-3
  EXPECT_EQ(r.zero_outputs, 1);
  EXPECT_NEAR(r.min_derivative, 0.01, 1e-9);
  EXPECT_FALSE(r.attenuation.has_value());
  // GELU' has its minimum -0.12890 at -sqrt(2) (SPEC §1, erratum 3): the
  // minimum is negative, and |f'| is what attenuates.
  r = Analyze<T>(Function::kGelu, {static_cast<T>(-std::sqrt(2.0))}, 1e-3, 1);
  EXPECT_NEAR(r.min_derivative, -0.12890, 1e-5);
  EXPECT_NEAR(*r.attenuation, 0.12890, 1e-5);
  EXPECT_NEAR(r.max_abs_derivative, 0.12890, 1e-5);
}

TYPED_TEST(AnalyzeTest, NaNInputsAreCountedAndLeftOut) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const GradientFlowReport r =
      Analyze<T>(Function::kRelu, {nan, -1, nan, 1}, 1e-3, 1);
  EXPECT_EQ(r.units, 2);
  EXPECT_EQ(r.nan_units, 2);
  EXPECT_DOUBLE_EQ(r.sparsity, 0.5);
  EXPECT_DOUBLE_EQ(r.mean_derivative, 0.5);
  EXPECT_DOUBLE_EQ(*r.attenuation, 0.5);
}

TYPED_TEST(AnalyzeTest, InfinitiesAreUnitsWithTheLimits) {
  using T = TypeParam;
  const T inf = std::numeric_limits<T>::infinity();
  const GradientFlowReport r =
      Analyze<T>(Function::kSigmoid, {-inf, inf}, 1e-3);
  EXPECT_EQ(r.units, 2);
  EXPECT_EQ(r.dead, 2);          // sigma'(±inf) = 0
  EXPECT_EQ(r.zero_outputs, 1);  // sigma(-inf) = 0
  EXPECT_EQ(r.max_abs_derivative, 0);
}

TYPED_TEST(AnalyzeTest, NoUnitsGiveNaNStatistics) {
  using T = TypeParam;
  for (const std::vector<T>& x :
       {std::vector<T>{},
        std::vector<T>{std::numeric_limits<T>::quiet_NaN()}}) {
    const GradientFlowReport r = Analyze<T>(Function::kTanh, x, 1e-3, 0);
    EXPECT_EQ(r.units, 0);
    EXPECT_EQ(r.nan_units, static_cast<int64_t>(x.size()));
    EXPECT_TRUE(std::isnan(r.sparsity));
    EXPECT_TRUE(std::isnan(r.saturated_fraction));
    EXPECT_TRUE(std::isnan(r.dead_fraction));
    EXPECT_TRUE(std::isnan(r.min_derivative));
    EXPECT_TRUE(std::isnan(r.max_derivative));
    EXPECT_TRUE(std::isnan(r.mean_derivative));
    EXPECT_TRUE(std::isnan(r.max_abs_derivative));
    ASSERT_TRUE(r.attenuation.has_value());
    EXPECT_TRUE(std::isnan(*r.attenuation));  // even for 0 layers
  }
}

TYPED_TEST(AnalyzeTest, ChunksMergeToTheWhole) {
  using T = TypeParam;
  // Longer than the internal block, split at uneven points.
  std::vector<T> x(5000);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<T>(-10.0 + 20.0 * static_cast<double>(i) / 4999.0);
  }
  GradientFlowCounts whole;
  AccumulateGradientFlow<T>(Function::kSilu, 0, 1e-3, absl::MakeConstSpan(x),
                            &whole);
  GradientFlowCounts merged;
  for (size_t b : {size_t{0}, size_t{7}, size_t{1500}, size_t{4096}}) {
    const size_t e = b == 0 ? 7 : b == 7 ? 1500 : b == 1500 ? 4096 : x.size();
    GradientFlowCounts part;
    AccumulateGradientFlow<T>(Function::kSilu, 0, 1e-3,
                              absl::MakeConstSpan(x).subspan(b, e - b), &part);
    merged.Merge(part);
  }
  const GradientFlowReport a = SummarizeGradientFlow(whole, 4);
  const GradientFlowReport b = SummarizeGradientFlow(merged, 4);
  EXPECT_EQ(a.units, 5000);
  EXPECT_EQ(a.saturated, b.saturated);
  EXPECT_EQ(a.min_derivative, b.min_derivative);
  EXPECT_EQ(a.max_derivative, b.max_derivative);
  EXPECT_DOUBLE_EQ(a.mean_derivative, b.mean_derivative);
  EXPECT_DOUBLE_EQ(*a.attenuation, *b.attenuation);
  // The mean of f' over a symmetric grid is (f(10) - f(-10)) / 20 to within
  // the trapezoid rule's error.
  const double silu10 = 10.0 / (1.0 + std::exp(-10.0));
  const double silu_m10 = -10.0 / (1.0 + std::exp(10.0));
  EXPECT_NEAR(a.mean_derivative, (silu10 - silu_m10) / 20.0, 2e-3);
}

}  // namespace
}  // namespace test
}  // namespace actsvc
