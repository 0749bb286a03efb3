// The SIMD kernels on every instruction set compiled in and supported by this
// machine (hwy::SetSupportedTargetsForTest), not only the one dispatch picks:
//  - accuracy against the quad oracle (SPEC.md §4), in the style of
//    Highway's math_test: for each (function, order, dtype, target) sample
//    bit patterns over the whole finite range split at ±0, a dense grid, the
//    tails and the special values; print the max ULP, then assert the
//    budget of the row (tests/core/ulp_budgets.h).
//  - array handling: every length 0..2N-1 (N = 4 vectors of the widest
//    target) at several misalignments, in place and out of place, outputs
//    pre-filled with NaN; each element must equal, bit for bit, the same
//    target's result for that input computed in a long array.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/accuracy.h"
#include "tests/core/oracle.h"
#include "tests/core/test_util.h"
#include "tests/core/ulp_budgets.h"

namespace actsvc {
namespace test {
namespace {

template <typename T>
std::vector<T> Upstream(size_t n) {
  // Exact in both dtypes; of both signs and magnitudes around 1.
  std::vector<T> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = T(0.375) * T(int(i % 11) - 5) + T(0.25);
  return g;
}

// The kind of c over x into y, pre-filled with NaN.
template <typename T>
void Run(const Case& c, ElementwiseKind kind, const std::vector<T>& x,
         const std::vector<T>& g, std::vector<T>& y) {
  y.assign(x.size(), std::numeric_limits<T>::quiet_NaN());
  RunKind<T>(c, kind, x, g, absl::MakeSpan(y));
}

template <typename T>
void SweepAllTargets(const Case& c, const std::vector<T>& x) {
  const std::vector<T> g = Upstream<T>(x.size());
  std::vector<Jet> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    want[i] = OracleJet(c.function, c.alpha, x[i]);
  }
  std::vector<double> zeros[3];
  for (int order = 0; order < 3; ++order) {
    zeros[order] = InteriorZeros(c.function, order);
  }
  const double eps = std::ldexp(1.0, -(kDigits<T> - 1));
  ForEachTarget([&](int64_t target) {
    ASSERT_STREQ(KernelTargetName(), hwy::TargetName(target));
    for (ElementwiseKind kind : kKinds) {
      const int order = OrderOf(kind);
      const double budget = BudgetOf<T>(c.function, kind);
      const double near_zero = NearZeroOf<T>(c.function, kind);
      std::vector<T> y;
      Run<T>(c, kind, x, g, y);
      double max_ulp = 0, max_at = 0, max_near = 0;
      size_t failures = 0;
      std::string first;
      for (size_t i = 0; i < x.size(); ++i) {
        Quad w = want[i][order];
        double scale = 1;
        if (kind == ElementwiseKind::kVjp) {
          w = w * Quad(g[i]);
          scale = std::fabs(static_cast<double>(g[i]));
        }
        const double bound =
            std::isfinite(x[i])
                ? scale *
                      NearZeroBound<T>(zeros[order], near_zero, double(x[i]))
                : 0;
        const Verdict v = Judge<T>(y[i], w, budget, bound);
        if (v.rule == Rule::kUlp && v.ulp > max_ulp) {
          max_ulp = v.ulp;
          max_at = static_cast<double>(x[i]);
        }
        if (v.rule == Rule::kNearZero && v.ok) {
          max_near = std::max(max_near, v.abs_error / eps);
        }
        if (!v.ok && ++failures <= 6) {
          first += "\n  x = " + Describe<T>(x[i]) + "  got " +
                   Describe<T>(y[i]) + "  want " + Describe(w);
        }
      }
      std::printf(
          "%-7s %-22s %s %s  max %6.3f ULP (budget %2.0f) at %-16a "
          "near-zero %.3f eps  n=%zu\n",
          hwy::TargetName(target), c.label, KindName(kind), DtypeName<T>(),
          max_ulp, budget, max_at, max_near, x.size());
      EXPECT_EQ(failures, 0u)
          << hwy::TargetName(target) << " " << c.label << " " << KindName(kind)
          << " " << DtypeName<T>() << ": " << failures << " failures" << first;
    }
  });
}

class SimdAccuracyTest : public ::testing::TestWithParam<Case> {};

TEST_P(SimdAccuracyTest, Float32) {
  SweepAllTargets<float>(GetParam(),
                         SweepInputs<float>(8191, 1.0 / 512, 100, 1.0 / 64));
}

TEST_P(SimdAccuracyTest, Float64) {
  SweepAllTargets<double>(
      GetParam(), SweepInputs<double>((0x7FEFFFFFFFFFFFFFull / 40000) | 1,
                                      1.0 / 128, 760, 1.0 / 4));
}

// Lengths 0..2N-1 at misalignments 0..3, in place and out of place: each
// element equals the same target's result for its input in a long array.
template <typename T>
void CheckArrays(const Case& c) {
  constexpr size_t kMaxLen =
      2 * 4 * 64 / sizeof(T);  // 2N, N = 4 AVX-512 vectors
  Random rng(7);
  std::vector<T> pool(kMaxLen + 8);
  for (T& v : pool) v = static_cast<T>(rng.Uniform(-12, 12));
  pool[3] = std::numeric_limits<T>::quiet_NaN();
  pool[5] = std::numeric_limits<T>::infinity();
  pool[8] = -std::numeric_limits<T>::infinity();
  pool[13] = T(-0.0);
  const std::vector<T> gpool = Upstream<T>(pool.size());
  ForEachTarget([&](int64_t target) {
    for (ElementwiseKind kind : kKinds) {
      std::vector<T> expected;
      Run<T>(c, kind, pool, gpool, expected);
      for (size_t offset = 0; offset < 4; ++offset) {
        for (size_t len = 0; len + offset <= kMaxLen; ++len) {
          const auto x = absl::MakeConstSpan(pool).subspan(offset, len);
          const auto g = absl::MakeConstSpan(gpool).subspan(offset, len);
          for (bool in_place : {false, true}) {
            // A NaN-filled buffer, the output at `offset` inside it.
            std::vector<T> buf(len + 8, std::numeric_limits<T>::quiet_NaN());
            const absl::Span<T> y = absl::MakeSpan(buf).subspan(offset, len);
            if (in_place) std::copy(x.begin(), x.end(), y.begin());
            RunKind<T>(c, kind, in_place ? absl::Span<const T>(y) : x, g, y);
            for (size_t i = 0; i < len; ++i) {
              const T want = expected[offset + i];
              const bool same = std::memcmp(&y[i], &want, sizeof(T)) == 0 ||
                                (std::isnan(y[i]) && std::isnan(want));
              ASSERT_TRUE(same)
                  << hwy::TargetName(target) << " " << c.label << " "
                  << KindName(kind) << " len " << len << " offset " << offset
                  << (in_place ? " in place" : "") << " index " << i
                  << " x = " << Describe<T>(x[i]) << " got "
                  << Describe<T>(y[i]) << " want " << Describe<T>(want);
            }
            // Nothing written outside [offset, offset + len).
            for (size_t i = 0; i < buf.size(); ++i) {
              if (i >= offset && i < offset + len) continue;
              ASSERT_TRUE(std::isnan(buf[i])) << "wrote outside at " << i;
            }
          }
        }
      }
    }
  });
}

TEST_P(SimdAccuracyTest, ArraysFloat32) { CheckArrays<float>(GetParam()); }
TEST_P(SimdAccuracyTest, ArraysFloat64) { CheckArrays<double>(GetParam()); }

// Outputs of 4 MiB and more take the non-temporal store path of the array
// loop (core/stores.h, StreamOutput): each element must equal, bit
// for bit, what the same target computes for it in short (cached) pieces,
// at an aligned and a misaligned output, in place and out of place, with
// nothing written outside the output.
template <typename T>
void CheckLargeArrays(const Case& c) {
  const size_t n = (size_t{4} << 20) / sizeof(T) + 37;
  constexpr size_t kPiece = 1000;
  Random rng(11);
  std::vector<T> pool(n + 8);
  for (T& v : pool) v = static_cast<T>(rng.Uniform(-12, 12));
  pool[100] = std::numeric_limits<T>::quiet_NaN();
  pool[n / 2] = std::numeric_limits<T>::infinity();
  pool[n - 3] = -std::numeric_limits<T>::infinity();
  const std::vector<T> gpool = Upstream<T>(pool.size());
  ForEachTarget([&](int64_t target) {
    for (ElementwiseKind kind :
         {ElementwiseKind::kValue, ElementwiseKind::kVjp}) {
      for (size_t offset : {0, 1}) {
        const auto x = absl::MakeConstSpan(pool).subspan(offset, n);
        const auto g = absl::MakeConstSpan(gpool).subspan(offset, n);
        auto run = [&](absl::Span<const T> in, absl::Span<const T> up,
                       absl::Span<T> out) { RunKind<T>(c, kind, in, up, out); };
        std::vector<T> expected(n);
        for (size_t i = 0; i < n; i += kPiece) {
          const size_t len = std::min(kPiece, n - i);
          run(x.subspan(i, len), g.subspan(i, len),
              absl::MakeSpan(expected).subspan(i, len));
        }
        for (bool in_place : {false, true}) {
          std::vector<T> buf(n + 8, std::numeric_limits<T>::quiet_NaN());
          const absl::Span<T> y = absl::MakeSpan(buf).subspan(offset, n);
          if (in_place) std::copy(x.begin(), x.end(), y.begin());
          run(in_place ? absl::Span<const T>(y) : x, g, y);
          size_t mismatches = 0, first = n;
          for (size_t i = 0; i < n; ++i) {
            const bool same =
                std::memcmp(&y[i], &expected[i], sizeof(T)) == 0 ||
                (std::isnan(y[i]) && std::isnan(expected[i]));
            if (!same && mismatches++ == 0) first = i;
          }
          EXPECT_EQ(mismatches, 0u)
              << hwy::TargetName(target) << " " << c.label << " "
              << KindName(kind) << " offset " << offset
              << (in_place ? " in place" : "") << " first at " << first;
          for (size_t i = 0; i < buf.size(); ++i) {
            if (i >= offset && i < offset + n) continue;
            ASSERT_TRUE(std::isnan(buf[i])) << "wrote outside at " << i;
          }
        }
      }
    }
  });
}

TEST(SimdLargeArraysTest, StreamedOutputsMatchShortPieces) {
  for (const Case& c : kCases) {
    const bool checked =
#ifdef ACTSVC_SANITIZED
        // Under the sanitizers (-O0 kernels): one exact loop and one with
        // pieces, a few minutes less.
        c.function == Function::kRelu || c.function == Function::kGelu;
#else
        c.function == Function::kRelu || c.function == Function::kSigmoid ||
        c.function == Function::kGelu || c.function == Function::kElu;
#endif
    if (!checked) continue;
    CheckLargeArrays<float>(c);
    CheckLargeArrays<double>(c);
  }
}

INSTANTIATE_TEST_SUITE_P(AllElementwise, SimdAccuracyTest,
                         ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.label);
                         });

TEST(SimdTargetsTest, SeveralTargetsRun) {
  const std::vector<int64_t> targets = Targets();
  std::printf("targets compiled in and supported:");
  for (int64_t t : targets) std::printf(" %s", hwy::TargetName(t));
  std::printf("\ndispatched: %s\n", KernelTargetName());
  EXPECT_GE(targets.size(), 2u);
}

}  // namespace
}  // namespace test
}  // namespace actsvc
