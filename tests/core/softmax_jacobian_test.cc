// Dense softmax Jacobians from the SIMD stats kernel against __float128,
// strided and special rows included (CheckJacobian), on every instruction
// set compiled in and supported here.
#include <quadmath.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/reference.h"
#include "core/softmax.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/softmax_test_util.h"
#include "tests/core/test_util.h"
#include "tests/core/ulp_budgets.h"

namespace actsvc {
namespace test {
namespace {

// Dense Jacobians (p from the SIMD stats kernel, J formed in Wider<T>)
// against __float128 from the same logits, on every target: J_ab within
// 4 ULP beyond 8ε p_a (δ_ab + p_b) (softmax, p_a (δ_ab − p_b)) or 8ε p_b
// (log_softmax, δ_ab − p_b), what the rounding of p (within 4 ULP) allows;
// J_kk of the first maximum k within 4 ULP alone: 1 − p_k comes from rest,
// so it keeps its digits when p_k is close to 1. Rows contiguous and strided
// ([2, n, 3] axis 1, the same bits); special rows the reference's bits.
// The Jacobians of rows of every kind and length against the oracle, and
// the same rows strided: [2, n, 3] along axis 1 gives the same bits.
template <typename T>
void CheckJacobianRows(bool log, Random& rng) {
  using L = std::numeric_limits<T>;
  const Q eps = L::epsilon();
  const Function f = log ? Function::kLogSoftmax : Function::kSoftmax;
  const std::vector<int64_t> lengths = {1,  2,  3,  4,  5,  7,  8,  9,
                                        15, 16, 17, 31, 33, 64, 65, 127};
  double max_ulp = 0;
  size_t failures = 0;
  std::string first;
  for (int64_t n : lengths) {
    for (int kind = 0; kind < kRowKinds; ++kind) {
      const std::vector<T> x = MakeRow<T>(kind, n, rng);
      std::vector<T> jac(n * n, L::quiet_NaN());
      SoftmaxJacobian<T>(f, AxisView{1, n, 1}, absl::MakeConstSpan(x),
                         absl::MakeSpan(jac));
      // The oracle: p and 1 − p, that of the first maximum k from rest.
      const MaxAndRest<Q> top =
          FirstMaxAndRest<Q>(x.data(), n, [](Q v) { return expq(v); });
      const int64_t k = static_cast<int64_t>(top.k);
      const Q rest = top.rest;
      std::vector<Q> p(n), q(n);
      for (int64_t i = 0; i < n; ++i) {
        p[i] = expq(Q(x[i]) - top.max) / (1 + rest);
        q[i] = i == k ? rest / (1 + rest) : 1 - p[i];
      }
      for (int64_t a = 0; a < n; ++a) {
        for (int64_t b = 0; b < n; ++b) {
          const Q e = a == b ? q[a] : -p[b];
          const Q want = log ? e : p[a] * e;
          // J_kk from rest alone: within 4 ULP, nothing more.
          const Q scale = a == k && b == k ? 0
                          : log            ? p[b]
                                           : p[a] * ((a == b ? 1 : 0) + p[b]);
          const double u = UlpError(jac[a * n + b], want, 8 * eps * scale);
          max_ulp = std::max(max_ulp, u);
          if (u > 4 && failures++ == 0) {
            char buf[200];
            std::snprintf(buf, sizeof(buf),
                          " first: n=%lld kind=%d J[%lld][%lld] got=%.17g "
                          "want=%.17g (%.3g ulp)",
                          static_cast<long long>(n), kind,
                          static_cast<long long>(a), static_cast<long long>(b),
                          static_cast<double>(jac[a * n + b]),
                          static_cast<double>(want), u);
            first = buf;
          }
        }
      }
      // The same rows strided: [2, n, 3] along axis 1, row (1, 2) = x.
      std::vector<T> xs(2 * n * 3);
      for (T& v : xs) v = static_cast<T>(rng.Uniform(-4, 4));
      for (int64_t i = 0; i < n; ++i) xs[(n + i) * 3 + 2] = x[i];
      std::vector<T> jac_s(6 * n * n, L::quiet_NaN());
      SoftmaxJacobian<T>(f, AxisView{2, n, 3}, absl::MakeConstSpan(xs),
                         absl::MakeSpan(jac_s));
      for (int64_t i = 0; i < n * n; ++i) {
        ASSERT_TRUE(SameBits(jac_s[5 * n * n + i], jac[i]))
            << Dtype<T>() << " n=" << n << " kind=" << kind
            << " strided J entry " << i;
      }
    }
  }
  std::printf("%-8s %-20s %s max %.3f ULP (budget 4)\n", KernelTargetName(),
              log ? "log_softmax_jacobian" : "softmax_jacobian", Dtype<T>(),
              max_ulp);
  EXPECT_EQ(failures, 0u) << KernelTargetName() << " " << Dtype<T>() << first;
}

// Special rows, contiguous and strided (chunked by outer index): the
// reference's p and the formula in W, bit for bit.
template <typename T>
void CheckJacobianSpecials(bool log, Random& rng) {
  using L = std::numeric_limits<T>;
  using W = reference::Wider<T>;
  const Function f = log ? Function::kLogSoftmax : Function::kSoftmax;
  for (int64_t n : {1, 2, 5, 17, 33}) {
    constexpr int64_t kRows = 6;
    std::vector<T> x(kRows * n);
    for (T& v : x) v = static_cast<T>(rng.Uniform(-8, 8));
    // Row 1: one +inf; 2: all −inf; 3: a NaN; 4: max and lowest;
    // 0, 5 ordinary.
    x[1 * n + n / 2] = L::infinity();
    for (int64_t i = 0; i < n; ++i) x[2 * n + i] = -L::infinity();
    x[3 * n + n - 1] = L::quiet_NaN();
    x[4 * n] = L::max();
    x[4 * n + n - 1] = n > 1 ? L::lowest() : L::max();
    std::vector<T> want(kRows * n * n);
    std::vector<W> p, log_p;
    for (int64_t r = 1; r <= 4; ++r) {
      reference::SoftmaxRowProbabilities(x.data() + r * n, n, 1, p, log_p);
      for (int64_t a = 0; a < n; ++a) {
        for (int64_t b = 0; b < n; ++b) {
          const W delta = a == b ? W(1) : W(0);
          want[(r * n + a) * n + b] =
              static_cast<T>(log ? delta - p[b] : p[a] * (delta - p[b]));
        }
      }
    }
    for (int64_t r : {int64_t{0}, kRows - 1}) {
      SoftmaxJacobian<T>(f, AxisView{1, n, 1},
                         absl::MakeConstSpan(x.data() + r * n, n),
                         absl::MakeSpan(want.data() + r * n * n, n * n));
    }
    std::vector<T> jac(want.size(), L::quiet_NaN());
    SoftmaxJacobian<T>(f, AxisView{kRows, n, 1}, absl::MakeConstSpan(x),
                       absl::MakeSpan(jac));
    // Strided: [2, n, 3] with row (o, i) = x row 3o + i, in two chunks.
    std::vector<T> xs = Transpose(x, 2, 3, n);
    std::vector<T> jac_s(want.size(), L::quiet_NaN());
    SoftmaxJacobian<T>(f, AxisView{2, n, 3}, absl::MakeConstSpan(xs),
                       absl::MakeSpan(jac_s), 0, 1);
    SoftmaxJacobian<T>(f, AxisView{2, n, 3}, absl::MakeConstSpan(xs),
                       absl::MakeSpan(jac_s), 1, 2);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_TRUE(SameBits(jac[i], want[i]))
          << KernelTargetName() << " " << Dtype<T>() << " n=" << n
          << " row=" << i / (n * n) << " entry " << i % (n * n)
          << " got=" << jac[i] << " want=" << want[i];
      ASSERT_TRUE(SameBits(jac_s[i], want[i]))
          << KernelTargetName() << " " << Dtype<T>() << " strided n=" << n
          << " row=" << i / (n * n) << " entry " << i % (n * n)
          << " got=" << jac_s[i] << " want=" << want[i];
    }
  }
}

template <typename T>
void CheckJacobian() {
  ForEachTarget([&](int64_t /*target*/) {
    Random rng(41);
    for (bool log : {false, true}) {
      CheckJacobianRows<T>(log, rng);
      CheckJacobianSpecials<T>(log, rng);
      if (::testing::Test::HasFatalFailure()) return;
    }
  });
}

TEST(SoftmaxSimdTest, JacobianFloat32) { CheckJacobian<float>(); }
TEST(SoftmaxSimdTest, JacobianFloat64) { CheckJacobian<double>(); }

}  // namespace
}  // namespace test
}  // namespace actsvc
