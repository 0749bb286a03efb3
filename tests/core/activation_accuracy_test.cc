// ULP accuracy of every elementwise function, order and dtype against the
// quad oracle (SPEC.md §4), in the style of Highway's math_test: the table
// of (function, order, dtype, budget) in tests/core/ulp_budgets.h; inputs
// sampled across every bit pattern of each sign, dense grids, the tails and the
// special values; the maximum ULP found is printed per row, then the budget
// asserted.
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
#include "tests/core/test_util.h"
#include "tests/core/ulp_budgets.h"

namespace actsvc {
namespace test {
namespace {

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

// The results of f, f' and f'' over x (pre-filled with NaN).
template <typename T>
void EvaluateOrders(const Case& c, const std::vector<T>& x,
                    std::vector<T> (&out)[3]) {
  for (int order = 0; order < 3; ++order) {
    out[order].assign(x.size(), std::numeric_limits<T>::quiet_NaN());
    RunKind<T>(c, KindOfOrder(order), x, {}, absl::MakeSpan(out[order]));
  }
}

// Adds one judged result to its row.
template <typename T>
void Record(const Verdict& v, double budget, T x, T got, Quad want,
            RowStats& s) {
  const double eps = std::ldexp(1.0, -(kDigits<T> - 1));
  ++s.samples;
  if (v.rule == Rule::kUlp || v.rule == Rule::kNearZero) {
    if (v.rule == Rule::kNearZero) {
      s.max_near_zero_abs = std::max(s.max_near_zero_abs, v.abs_error / eps);
    }
    if (v.ulp > s.max_ulp &&
        (v.rule == Rule::kUlp || !v.ok || v.ulp <= budget)) {
      s.max_ulp = v.ulp;
      s.max_ulp_at = static_cast<double>(x);
    }
  } else if (v.rule == Rule::kSubnormal) {
    ++s.subnormal_results;
    s.max_subnormal_abs = std::max(s.max_subnormal_abs,
                                   v.abs_error / std::numeric_limits<T>::min());
  }
  if (!v.ok) {
    ++s.failures;
    if (s.messages.size() < 8) {
      s.messages.push_back("x = " + Describe<T>(x) + "  got " +
                           Describe<T>(got) + "  want " + Describe(want));
    }
  }
}

// Prints the row, adds it to the table and asserts its budget.
template <typename T>
void Report(const Case& c, int order, double budget, const RowStats& s) {
  char line[320];
  std::snprintf(line, sizeof(line),
                "%-22s %s %s  max %7.3f ULP (budget %2.0f) at %-14a  "
                "near-zero max %6.3f eps  subnormal results %zu (max %.3g "
                "min_normal)  n=%zu",
                c.label, KindName(KindOfOrder(order)), DtypeName<T>(),
                s.max_ulp, budget, s.max_ulp_at, s.max_near_zero_abs,
                s.subnormal_results, s.max_subnormal_abs, s.samples);
  std::printf("%s\n", line);
  {
    std::lock_guard<std::mutex> lock(table_mutex);
    char key[64];
    std::snprintf(key, sizeof(key), "%02d %-22s %s %d", int(c.function),
                  c.label, DtypeName<T>(), order);
    Table()[key] = line;
  }
  std::string first;
  for (const auto& m : s.messages) first += m + "\n  ";
  EXPECT_EQ(s.failures, 0u)
      << c.label << " " << KindName(KindOfOrder(order)) << " " << DtypeName<T>()
      << ": " << s.failures << " of " << s.samples << " outside the budget of "
      << budget << " ULP; first: \n  " << first;
}

// f, f' and f'' of c at every x against the oracle, each order with the
// budget of its row in tests/core/ulp_budgets.h.
template <typename T>
void SweepAndCheck(const Case& c, const std::vector<T>& x) {
  std::vector<T> out[3];
  EvaluateOrders<T>(c, x, out);
  std::vector<double> zeros[3];
  double budget[3], near_zero[3];
  for (int order = 0; order < 3; ++order) {
    zeros[order] = InteriorZeros(c.function, order);
    budget[order] = BudgetOf<T>(c.function, KindOfOrder(order));
    near_zero[order] = NearZeroOf<T>(c.function, KindOfOrder(order));
  }
  RowStats stats[3];
  for (size_t i = 0; i < x.size(); ++i) {
    const Jet want = OracleJet(c.function, c.alpha, x[i]);
    for (int order = 0; order < 3; ++order) {
      const double bound =
          std::isfinite(x[i]) ? NearZeroBound<T>(zeros[order], near_zero[order],
                                                 static_cast<double>(x[i]))
                              : 0;
      const T got = out[order][i];
      const Verdict v = Judge<T>(got, want[order], budget[order], bound);
      Record<T>(v, budget[order], x[i], got, want[order], stats[order]);
    }
  }
  for (int order = 0; order < 3; ++order) {
    Report<T>(c, order, budget[order], stats[order]);
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
