// Function names, aliases and properties (activation.h), and the metadata
// of functions.h checked against the oracle: the ranges it states are the
// correct ones of SPEC.md §1, not the seed's.
#include "core/functions.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

#include "core/activation.h"
#include "gtest/gtest.h"
#include "tests/core/oracle.h"
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

struct Named {
  Function f;
  const char* name;
};
const Named kNames[] = {
    {Function::kIdentity, "identity"},
    {Function::kSigmoid, "sigmoid"},
    {Function::kTanh, "tanh"},
    {Function::kRelu, "relu"},
    {Function::kLeakyRelu, "leaky_relu"},
    {Function::kGelu, "gelu"},
    {Function::kGeluTanh, "gelu_tanh"},
    {Function::kSilu, "silu"},
    {Function::kSoftplus, "softplus"},
    {Function::kElu, "elu"},
    {Function::kSelu, "selu"},
    {Function::kSoftmax, "softmax"},
    {Function::kLogSoftmax, "log_softmax"},
};

TEST(FunctionNameTest, NamesAndRoundTrip) {
  ASSERT_EQ(std::size(kNames), 13u);
  for (size_t i = 0; i < std::size(kNames); ++i) {
    const Named& n = kNames[i];
    EXPECT_EQ(static_cast<int>(n.f), static_cast<int>(i) + 1);
    EXPECT_EQ(FunctionName(n.f), n.name);
    EXPECT_EQ(FunctionFromName(n.name), n.f) << n.name;
    EXPECT_EQ(FunctionFromName(FunctionName(n.f)), n.f) << n.name;
  }
  EXPECT_EQ(kFirstFunction, Function::kIdentity);
  EXPECT_EQ(kLastFunction, Function::kLogSoftmax);
}

TEST(FunctionNameTest, AliasesCaseAndSeparators) {
  EXPECT_EQ(FunctionFromName("swish"), Function::kSilu);
  EXPECT_EQ(FunctionFromName("SWISH"), Function::kSilu);
  EXPECT_EQ(FunctionFromName("gelu_erf"), Function::kGelu);
  EXPECT_EQ(FunctionFromName("gelu-erf"), Function::kGelu);
  EXPECT_EQ(FunctionFromName("GELU"), Function::kGelu);
  EXPECT_EQ(FunctionFromName("Gelu-Tanh"), Function::kGeluTanh);
  EXPECT_EQ(FunctionFromName("LEAKY-RELU"), Function::kLeakyRelu);
  EXPECT_EQ(FunctionFromName("Leaky_ReLU"), Function::kLeakyRelu);
  EXPECT_EQ(FunctionFromName("log-softmax"), Function::kLogSoftmax);
  EXPECT_EQ(FunctionFromName("SoftMax"), Function::kSoftmax);
  for (const char* unknown : {"", "foo", "gelu_", "relu6", "soft max", "-",
                              "sigmoid ", "swishh", "log_"}) {
    EXPECT_EQ(FunctionFromName(unknown), std::nullopt) << '"' << unknown << '"';
  }
}

TEST(FunctionNameTest, PropertiesOfEachFunction) {
  for (const Named& n : kNames) {
    const bool vector =
        n.f == Function::kSoftmax || n.f == Function::kLogSoftmax;
    EXPECT_EQ(IsElementwise(n.f), !vector) << n.name;
    const bool alpha = n.f == Function::kLeakyRelu || n.f == Function::kElu;
    EXPECT_EQ(TakesAlpha(n.f), alpha) << n.name;
  }
  EXPECT_EQ(DefaultAlpha(Function::kLeakyRelu), 0.01);
  EXPECT_EQ(DefaultAlpha(Function::kElu), 1.0);
}

// ---------------------------------------------------------------------------

// Every decimal number in a text ("[-0.12890, 1.12890]", also with U+2212).
std::vector<double> NumbersIn(const std::string& text) {
  std::string s;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "\xE2\x88\x92") == 0) {  // U+2212 minus
      s += '-';
      i += 2;
    } else {
      s += text[i];
    }
  }
  std::vector<double> out;
  for (size_t i = 0; i < s.size();) {
    const bool starts = std::isdigit(static_cast<unsigned char>(s[i])) ||
                        (s[i] == '-' && i + 1 < s.size() &&
                         std::isdigit(static_cast<unsigned char>(s[i + 1])));
    if (!starts) {
      ++i;
      continue;
    }
    char* end = nullptr;
    out.push_back(std::strtod(s.c_str() + i, &end));
    i = end - s.c_str();
  }
  return out;
}

bool Mentions(const std::string& text, double value, double tolerance) {
  for (double v : NumbersIn(text)) {
    if (std::fabs(v - value) <= tolerance) return true;
  }
  return false;
}

// The extremum of the oracle's f^(order) on [lo, hi], by golden sections.
double OracleExtremum(Function f, int order, double lo, double hi,
                      bool minimum) {
  Quad a = lo, b = hi;
  const Quad g = (sqrtq(5) - 1) / 2;
  auto value = [&](Quad x) {
    const Quad v = Oracle(f, 0, order, x);
    return minimum ? v : -v;
  };
  for (int i = 0; i < 200; ++i) {
    const Quad c = b - g * (b - a), d = a + g * (b - a);
    if (value(c) < value(d)) {
      b = d;
    } else {
      a = c;
    }
  }
  return static_cast<double>(Oracle(f, 0, order, (a + b) / 2));
}

TEST(AllFunctionsTest, OneEntryPerFunctionInEnumOrder) {
  const std::vector<FunctionInfo>& all = AllFunctions();
  ASSERT_EQ(all.size(), 13u);
  for (size_t i = 0; i < all.size(); ++i) {
    const FunctionInfo& info = all[i];
    EXPECT_EQ(info.function, kNames[i].f);
    EXPECT_EQ(info.name, kNames[i].name);
    EXPECT_EQ(info.name, FunctionName(info.function));
    EXPECT_EQ(info.elementwise, IsElementwise(info.function)) << info.name;
    EXPECT_FALSE(info.formula.empty()) << info.name;
    EXPECT_FALSE(info.derivative_formula.empty()) << info.name;
    EXPECT_FALSE(info.output_range.empty()) << info.name;
    EXPECT_FALSE(info.derivative_range.empty()) << info.name;
    for (const std::string& alias : info.aliases) {
      EXPECT_EQ(FunctionFromName(alias), info.function) << alias;
    }
    // The alpha parameter, where there is one, with its default.
    bool has_alpha = false;
    for (const ParameterInfo& p : info.parameters) {
      if (p.name != "alpha") continue;
      has_alpha = true;
      EXPECT_EQ(p.default_value, DefaultAlpha(info.function)) << info.name;
    }
    EXPECT_EQ(has_alpha, TakesAlpha(info.function)) << info.name;
  }
  const FunctionInfo& silu = all[static_cast<int>(Function::kSilu) - 1];
  EXPECT_NE(std::find(silu.aliases.begin(), silu.aliases.end(), "swish"),
            silu.aliases.end());
  EXPECT_TRUE(all[static_cast<int>(Function::kSigmoid) - 1].saturates);
  EXPECT_TRUE(all[static_cast<int>(Function::kTanh) - 1].saturates);
  EXPECT_FALSE(all[static_cast<int>(Function::kIdentity) - 1].saturates);
  EXPECT_FALSE(all[static_cast<int>(Function::kRelu) - 1].saturates);
}

// The ranges stated are the correct ones (SPEC.md §1 errata), checked
// against the oracle's extrema.
TEST(AllFunctionsTest, RangesAreTheCorrectOnes) {
  const std::vector<FunctionInfo>& all = AllFunctions();
  auto info = [&](Function f) -> const FunctionInfo& {
    return all[static_cast<int>(f) - 1];
  };
  const FunctionInfo& gelu = info(Function::kGelu);
  // GELU' has a negative minimum; the seed's "(0, 1)" is wrong.
  EXPECT_NE(gelu.derivative_range.find("-0.1289"), std::string::npos)
      << gelu.derivative_range;
  const double gelu_dmin =
      OracleExtremum(Function::kGelu, 1, -3, 0, /*minimum=*/true);
  const double gelu_dmax = OracleExtremum(Function::kGelu, 1, 0, 3, false);
  const double gelu_min = OracleExtremum(Function::kGelu, 0, -3, 0, true);
  EXPECT_NEAR(gelu_dmin, -0.12890, 5e-6);
  EXPECT_TRUE(Mentions(gelu.derivative_range, gelu_dmin, 1e-4))
      << gelu.derivative_range;
  EXPECT_TRUE(Mentions(gelu.derivative_range, gelu_dmax, 1e-4))
      << gelu.derivative_range;
  EXPECT_TRUE(Mentions(gelu.output_range, gelu_min, 1e-4)) << gelu.output_range;

  const FunctionInfo& gelu_tanh = info(Function::kGeluTanh);
  EXPECT_TRUE(Mentions(gelu_tanh.derivative_range,
                       OracleExtremum(Function::kGeluTanh, 1, -3, 0, true),
                       1e-4))
      << gelu_tanh.derivative_range;
  EXPECT_TRUE(Mentions(gelu_tanh.derivative_range,
                       OracleExtremum(Function::kGeluTanh, 1, 0, 3, false),
                       1e-4))
      << gelu_tanh.derivative_range;
  EXPECT_TRUE(Mentions(gelu_tanh.output_range,
                       OracleExtremum(Function::kGeluTanh, 0, -3, 0, true),
                       1e-4))
      << gelu_tanh.output_range;

  const FunctionInfo& silu = info(Function::kSilu);
  EXPECT_TRUE(Mentions(silu.output_range,
                       OracleExtremum(Function::kSilu, 0, -4, 0, true), 1e-4))
      << silu.output_range;
  EXPECT_TRUE(Mentions(silu.derivative_range,
                       OracleExtremum(Function::kSilu, 1, -5, 0, true), 1e-4))
      << silu.derivative_range;
  EXPECT_TRUE(Mentions(silu.derivative_range,
                       OracleExtremum(Function::kSilu, 1, 0, 5, false), 1e-4))
      << silu.derivative_range;

  EXPECT_TRUE(Mentions(info(Function::kSigmoid).derivative_range, 0.25, 0))
      << info(Function::kSigmoid).derivative_range;
  const double lambda_alpha = kSeluLambda * kSeluAlpha;
  EXPECT_TRUE(
      Mentions(info(Function::kSelu).output_range, -lambda_alpha, 1e-12))
      << info(Function::kSelu).output_range;
}

}  // namespace
}  // namespace test
}  // namespace actsvc
