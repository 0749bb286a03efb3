// ULP accuracy of every elementwise function, order and dtype against the
// quad oracle (SPEC.md §4), in the style of Highway's math_test: a table of
// (function, order, dtype, budget); inputs sampled across every bit pattern
// of each sign, dense grids, the tails and the special values; the maximum
// ULP found is printed per row, then the budget asserted.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "gtest/gtest.h"
#include "tests/core/accuracy.h"
#include "tests/core/oracle.h"

namespace actsvc {
namespace test {
namespace {

// ULP budgets of SPEC.md §4 by (order, dtype).
struct Budget {
  int order;
  const char* name;
  double float32;
  double float64;
};
constexpr Budget kBudgets[] = {
    {0, "f  ", 4, 4},
    {1, "f' ", 4, 4},
    {2, "f''", 16, 16},
};

struct Case {
  Function function;
  double alpha;
  const char* label;
};

// Names the case in test listings (ctest shows "GetParam() = gelu").
void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

const Case kCases[] = {
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

// Sampling: ~3M float32 inputs per function (every 1427th finite bit pattern
// of each sign), ~200k float64 ones; every order is checked at each input.
constexpr uint32_t kFloatStep = 1427;
constexpr uint64_t kDoubleStep = (0x7FEFFFFFFFFFFFFFull / 100000) | 1;

// What one (function, order, dtype) row measured.
struct RowStats {
  size_t samples = 0;
  double max_ulp = 0;  // over results judged in ULPs
  double max_ulp_at = 0;
  double max_near_zero_abs = 0;  // in units of 2^-(digits-1)
  size_t subnormal_results = 0;
  double max_subnormal_abs = 0;  // in units of the smallest normal
  size_t failures = 0;
  std::vector<std::string> messages;  // the first few failures
};

// The measured table, printed once at the end when the binary runs whole.
std::mutex table_mutex;
std::map<std::string, std::string>& Table() {
  static auto* table = new std::map<std::string, std::string>;
  return *table;
}

class TablePrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    std::lock_guard<std::mutex> lock(table_mutex);
    if (Table().size() <= 1) return;
    std::printf("\nMax error by function x order x dtype:\n");
    for (const auto& [key, line] : Table()) std::printf("%s\n", line.c_str());
  }
};
const auto* const kTablePrinter =
    ::testing::AddGlobalTestEnvironment(new TablePrinter);

template <typename T>
void SweepAndCheck(const Case& c, const std::vector<T>& x) {
  std::vector<T> out[3];
  for (int order = 0; order < 3; ++order) {
    out[order].assign(x.size(), std::numeric_limits<T>::quiet_NaN());
    if (order == 0) {
      Evaluate<T>(c.function, c.alpha, absl::MakeConstSpan(x),
                  absl::MakeSpan(out[order]));
    } else {
      Derivative<T>(c.function, c.alpha, order, absl::MakeConstSpan(x),
                    absl::MakeSpan(out[order]));
    }
  }
  std::vector<double> zeros[3];
  for (int order = 0; order < 3; ++order) {
    zeros[order] = InteriorZeros(c.function, order);
  }

  const double eps = std::ldexp(1.0, -(kDigits<T> - 1));
  RowStats stats[3];
  for (size_t i = 0; i < x.size(); ++i) {
    const Jet want = OracleJet(c.function, c.alpha, x[i]);
    for (const Budget& b : kBudgets) {
      const int order = b.order;
      const double budget = sizeof(T) == 4 ? b.float32 : b.float64;
      const T got = out[order][i];
      const double bound =
          std::isfinite(x[i])
              ? NearZeroBound<T>(zeros[order], order, static_cast<double>(x[i]))
              : 0;
      const Verdict v = Judge<T>(got, want[order], budget, bound);
      RowStats& s = stats[order];
      ++s.samples;
      if (v.rule == Rule::kUlp || v.rule == Rule::kNearZero) {
        if (v.rule == Rule::kNearZero) {
          s.max_near_zero_abs =
              std::max(s.max_near_zero_abs, v.abs_error / eps);
        }
        if (v.ulp > s.max_ulp &&
            (v.rule == Rule::kUlp || !v.ok || v.ulp <= budget)) {
          s.max_ulp = v.ulp;
          s.max_ulp_at = static_cast<double>(x[i]);
        }
      } else if (v.rule == Rule::kSubnormal) {
        ++s.subnormal_results;
        s.max_subnormal_abs = std::max(
            s.max_subnormal_abs, v.abs_error / std::numeric_limits<T>::min());
      }
      if (!v.ok) {
        ++s.failures;
        if (s.messages.size() < 8) {
          s.messages.push_back("x = " + Describe<T>(x[i]) + "  got " +
                               Describe<T>(got) + "  want " +
                               Describe(want[order]));
        }
      }
    }
  }

  for (const Budget& b : kBudgets) {
    const RowStats& s = stats[b.order];
    const double budget = sizeof(T) == 4 ? b.float32 : b.float64;
    char line[320];
    std::snprintf(line, sizeof(line),
                  "%-22s %s %s  max %7.3f ULP (budget %2.0f) at %-14a  "
                  "near-zero max %6.3f eps  subnormal results %zu (max %.3g "
                  "min_normal)  n=%zu",
                  c.label, b.name, DtypeName<T>(), s.max_ulp, budget,
                  s.max_ulp_at, s.max_near_zero_abs, s.subnormal_results,
                  s.max_subnormal_abs, s.samples);
    std::printf("%s\n", line);
    {
      std::lock_guard<std::mutex> lock(table_mutex);
      char key[64];
      std::snprintf(key, sizeof(key), "%02d %-22s %s %d", int(c.function),
                    c.label, DtypeName<T>(), b.order);
      Table()[key] = line;
    }
    EXPECT_EQ(s.failures, 0u)
        << c.label << " " << b.name << " " << DtypeName<T>() << ": "
        << s.failures << " of " << s.samples << " outside the budget of "
        << budget << " ULP; first: \n  " << [&] {
             std::string all;
             for (const auto& m : s.messages) all += m + "\n  ";
             return all;
           }();
  }
}

class AccuracyTest : public ::testing::TestWithParam<Case> {};

TEST_P(AccuracyTest, Float32) {
  SweepAndCheck<float>(
      GetParam(), SweepInputs<float>(kFloatStep, 1.0 / 1024, 100, 1.0 / 256));
}

TEST_P(AccuracyTest, Float64) {
  // The float64 tails reach past the underflow of e^x (x ≈ −745) into the
  // subnormal results.
  SweepAndCheck<double>(
      GetParam(), SweepInputs<double>(kDoubleStep, 1.0 / 256, 760, 1.0 / 8));
}

INSTANTIATE_TEST_SUITE_P(AllElementwise, AccuracyTest,
                         ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.label);
                         });

// The interior zeros that get the absolute bound are where SPEC.md says.
TEST(InteriorZerosTest, MatchTheSpec) {
  struct Expected {
    Function f;
    int order;
    std::vector<double> zeros;
    double tolerance;
  };
  const double sqrt2 = std::sqrt(2.0);
  const Expected expected[] = {
      {Function::kGelu, 1, {-0.75179}, 1e-5},
      {Function::kGelu, 2, {-sqrt2, sqrt2}, 1e-12},
      {Function::kSilu, 1, {-1.2785}, 1e-4},
      {Function::kSilu, 2, {-2.3994, 2.3994}, 1e-4},
      // gelu_tanh approximates gelu to ~1e-3 in x.
      {Function::kGeluTanh, 1, {-0.7518}, 2e-3},
      {Function::kGeluTanh, 2, {-sqrt2, sqrt2}, 1e-2},
  };
  for (const Expected& e : expected) {
    const std::vector<double> got = InteriorZeros(e.f, e.order);
    std::printf("%s order %d zeros:", std::string(FunctionName(e.f)).c_str(),
                e.order);
    for (double z : got) std::printf(" %.17g", z);
    std::printf("\n");
    ASSERT_EQ(got.size(), e.zeros.size()) << FunctionName(e.f) << e.order;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], e.zeros[i], e.tolerance) << FunctionName(e.f);
    }
  }
  EXPECT_TRUE(InteriorZeros(Function::kGelu, 0).empty());
  EXPECT_TRUE(InteriorZeros(Function::kSigmoid, 2).empty());
}

}  // namespace
}  // namespace test
}  // namespace actsvc
