// The SIMD softmax row kernel (core/softmax_row-inl.h, contiguous rows) on
// every instruction set compiled in and supported here
// (hwy::SetSupportedTargetsForTest):
//  - accuracy against a __float128 computation from the same inputs: p and
//    log p within their budgets (tests/core/ulp_budgets.h) for normal
//    results (a subnormal p within the smallest normal); the VJPs within
//    their budgets plus the error that the condition of the result allows,
//    8ε Σ_a |J_ai g_a| (with J of the exact p); the maxima are printed per
//    target.
//  - rows of every length 1..2N−1 (N = 4 AVX-512 vectors) at misalignments
//    0..3, with ties, a dominant logit (log p_max = −log1p(rest) with rest
//    tiny), wide ranges, large offsets of either sign, in place and out of
//    place, outputs pre-filled with NaN;
//  - special rows (NaN, ±inf, all −inf, a range that overflows) equal bit for
//    bit to the scalar reference, also when mixed with ordinary rows;
//  - the same for the VJPs from the forward output (SoftmaxVjpFromOutput),
//    against the formula at the y given (see CheckFromOutput).
#include <quadmath.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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

template <typename T>
void CheckAccuracy() {
  constexpr size_t kN = 4 * 64 / sizeof(T);
  std::vector<size_t> lengths;
  for (size_t n = 1; n < 2 * kN; ++n) lengths.push_back(n);
  for (size_t n : {1000, 1001, 4099}) lengths.push_back(n);
  ForEachTarget([&](int64_t target) {
    double max_ulp[kOps] = {};
    size_t failures[kOps] = {};
    std::string first[kOps];
    Random rng(11);
    for (size_t n : lengths) {
      for (int kind = 0; kind < kRowKinds; ++kind) {
        const size_t offset = n % 4;
        std::vector<T> xs(n + 4), gs(n + 4);
        const std::vector<T> row = MakeRow<T>(kind, n, rng);
        std::copy(row.begin(), row.end(), xs.begin() + offset);
        for (T& v : gs) v = static_cast<T>(rng.Uniform(-2, 2));
        const T* x = xs.data() + offset;
        const T* g = gs.data() + offset;
        const QuadRow q = Oracle(x, g, n);
        for (int op = 0; op < kOps; ++op) {
          std::vector<T> ys(n + 4, std::numeric_limits<T>::quiet_NaN());
          T* y = ys.data() + offset;
          Run<T>(op, x, g, y, n, 1);
          for (size_t i = 0; i < n; ++i) {
            const Q eps = std::numeric_limits<T>::epsilon();
            double u = 0;
            switch (op) {
              case 0:
                u = UlpError(y[i], q.p[i]);
                break;
              case 1:
                u = UlpError(y[i], q.log_p[i]);
                break;
              case 2:
                u = UlpError(y[i], q.vjp[i], 8 * eps * q.vjp_scale[i]);
                break;
              case 3:
                u = UlpError(y[i], q.log_vjp[i], 8 * eps * q.log_vjp_scale[i]);
                break;
            }
            max_ulp[op] = std::max(max_ulp[op], u);
            if (u > OpBudget<T>(op)) {
              if (failures[op]++ == 0) {
                char buf[200];
                std::snprintf(buf, sizeof(buf),
                              " first: n=%zu kind=%d i=%zu x=%.17g got=%.17g "
                              "want=%.17g (%.3g ulp)",
                              n, kind, i, static_cast<double>(x[i]),
                              static_cast<double>(y[i]),
                              static_cast<double>(op == 0   ? q.p[i]
                                                  : op == 1 ? q.log_p[i]
                                                  : op == 2 ? q.vjp[i]
                                                            : q.log_vjp[i]),
                              u);
                first[op] = buf;
                for (size_t j = 0; j < std::min<size_t>(n, 4); ++j) {
                  std::snprintf(buf, sizeof(buf), " (x%zu=%a g%zu=%a)", j,
                                static_cast<double>(x[j]), j,
                                static_cast<double>(g[j]));
                  first[op] += buf;
                }
              }
            }
          }
        }
      }
    }
    for (int op = 0; op < kOps; ++op) {
      std::printf("%-8s %-16s %s max %.3f ULP (budget %.0f)\n",
                  hwy::TargetName(target), kOpNames[op], Dtype<T>(),
                  max_ulp[op], OpBudget<T>(op));
      EXPECT_EQ(failures[op], 0u)
          << hwy::TargetName(target) << " " << kOpNames[op] << " " << Dtype<T>()
          << first[op];
    }
  });
}

TEST(SoftmaxSimdTest, AccuracyFloat32) { CheckAccuracy<float>(); }
TEST(SoftmaxSimdTest, AccuracyFloat64) { CheckAccuracy<double>(); }

// A batch of rows of every length 1..2N−1 at misalignments 0..3, in place
// and out of place, with special rows mixed in: ordinary rows give the same
// bits as the row computed alone; special rows the scalar reference's bits.
template <typename T>
void CheckRowsAndSpecials() {
  using L = std::numeric_limits<T>;
  using W = reference::Wider<T>;
  constexpr size_t kN = 4 * 64 / sizeof(T);
  const T inf = L::infinity();
  ForEachTarget([&](int64_t target) {
    Random rng(5);
    for (size_t n = 1; n < 2 * kN; ++n) {
      constexpr size_t kRows = 7;
      std::vector<T> x(n * kRows), g(n * kRows);
      for (T& v : x) v = static_cast<T>(rng.Uniform(-8, 8));
      for (T& v : g) v = static_cast<T>(rng.Uniform(-2, 2));
      // Row 1: one +inf; row 2: all −inf; row 3: a NaN; row 4: a −inf;
      // row 5: max and −max (x − m overflows); rows 0, 6 ordinary.
      x[1 * n + n / 2] = inf;
      for (size_t i = 0; i < n; ++i) x[2 * n + i] = -inf;
      x[3 * n + n - 1] = L::quiet_NaN();
      x[4 * n] = -inf;
      x[5 * n] = L::max();
      x[5 * n + n - 1] = n > 1 ? L::lowest() : L::max();
      for (int op = 0; op < kOps; ++op) {
        std::vector<T> want(x.size());
        std::vector<W> p, log_p;
        for (size_t r = 0; r < kRows; ++r) {
          const bool special = (r >= 1 && r <= 4) || (r == 5 && n > 1);
          if (special) {
            reference::SoftmaxRowProbabilities(x.data() + r * n, n, 1, p,
                                               log_p);
            W acc = 0;
            for (size_t i = 0; i < n; ++i) {
              acc += op == 3 ? W(g[r * n + i]) : W(g[r * n + i]) * p[i];
            }
            for (size_t i = 0; i < n; ++i) {
              const W gi = g[r * n + i];
              want[r * n + i] = static_cast<T>(op == 0   ? p[i]
                                               : op == 1 ? log_p[i]
                                               : op == 2 ? p[i] * (gi - acc)
                                                         : gi - p[i] * acc);
            }
          } else {
            Run<T>(op, x.data() + r * n, g.data() + r * n, want.data() + r * n,
                   n, 1);
          }
        }
        for (size_t offset = 0; offset < 4; ++offset) {
          for (bool in_place : {false, true}) {
            std::vector<T> xb(x.size() + 4), gb(g.size() + 4);
            std::vector<T> yb(x.size() + 4, L::quiet_NaN());
            std::copy(x.begin(), x.end(), xb.begin() + offset);
            std::copy(g.begin(), g.end(), gb.begin() + offset);
            T* xp = xb.data() + offset;
            T* gp = gb.data() + offset;
            T* yp = yb.data() + offset;
            if (in_place) yp = op < 2 ? xp : gp;
            Run<T>(op, xp, gp, yp, n, kRows);
            for (size_t i = 0; i < x.size(); ++i) {
              ASSERT_TRUE(SameBits(yp[i], want[i]))
                  << hwy::TargetName(target) << " " << kOpNames[op] << " "
                  << Dtype<T>() << " n=" << n << " row=" << i / n
                  << " i=" << i % n << " offset=" << offset
                  << " in_place=" << in_place << " got=" << yp[i]
                  << " want=" << want[i];
            }
          }
        }
      }
    }
  });
}

TEST(SoftmaxSimdTest, RowsAndSpecialsFloat32) { CheckRowsAndSpecials<float>(); }
TEST(SoftmaxSimdTest, RowsAndSpecialsFloat64) {
  CheckRowsAndSpecials<double>();
}

// The VJPs from the forward output (SoftmaxVjpFromOutput), against a
// __float128 evaluation of the same formula at the same (y, g): softmax
// y ⊙ (g − ⟨g, y⟩) within 4 ULP beyond 8ε y_i Σ_j |g_j| y_j, log_softmax
// g − e^y Σg within 4 ULP beyond 8ε e^(y_i) Σ_j |g_j| (the conditions of
// the sums); y is the forward kernel's output for the rows of MakeRow (log
// rows also with −inf entries, p = 0). Rows of every length, misaligned,
// in place (dx aliasing y or g) and out of place, NaN-filled outputs.
// Special rows (NaN or inf in y or g, a dot product that overflows T) equal
// the formula evaluated in reference::Wider<T>, bit for bit.

// Rows of every length and kind from their forward output, against the
// formula at the y given in __float128.
template <typename T>
void CheckFromOutputRows(bool log) {
  using L = std::numeric_limits<T>;
  constexpr size_t kN = 4 * 64 / sizeof(T);
  std::vector<size_t> lengths;
  for (size_t n = 1; n < 2 * kN; ++n) lengths.push_back(n);
  for (size_t n : {1000, 1001, 4099}) lengths.push_back(n);
  const Q eps = L::epsilon();
  const Function f = log ? Function::kLogSoftmax : Function::kSoftmax;
  const char* name =
      log ? "log_softmax_vjp_from_output" : "softmax_vjp_from_output";
  const double budget = BudgetOf<T>(log ? SoftmaxOp::kLogSoftmaxVjpFromOutput
                                        : SoftmaxOp::kSoftmaxVjpFromOutput);
  double max_ulp = 0;
  size_t failures = 0;
  std::string first;
  Random rng(17);
  for (size_t n : lengths) {
    for (int kind = 0; kind <= kRowKinds; ++kind) {
      const size_t offset = n % 4;
      // kind == kRowKinds: log rows with a third of y at −inf.
      std::vector<T> x = MakeRow<T>(kind % kRowKinds, n, rng);
      std::vector<T> ys(n + 4), gs(n + 4);
      T* y = ys.data() + offset;
      T* g = gs.data() + offset;
      const AxisView v{1, static_cast<int64_t>(n), 1};
      SoftmaxForward<T>(f, v, absl::MakeConstSpan(x), absl::MakeSpan(y, n));
      if (kind == kRowKinds) {
        if (!log) continue;
        for (size_t i = 1; i < n; i += 3) y[i] = -L::infinity();
      }
      for (T& gv : gs) gv = static_cast<T>(rng.Uniform(-2, 2));
      std::vector<Q> want(n), scale(n);
      Q acc = 0, abs_acc = 0;
      for (size_t i = 0; i < n; ++i) {
        acc += log ? Q(g[i]) : Q(g[i]) * y[i];
        abs_acc += log ? fabsq(g[i]) : fabsq(g[i]) * y[i];
      }
      for (size_t i = 0; i < n; ++i) {
        const Q p = log ? expq(Q(y[i])) : Q(y[i]);
        want[i] = log ? g[i] - p * acc : p * (g[i] - acc);
        scale[i] = p * abs_acc;
      }
      for (int alias = 0; alias < 3; ++alias) {  // none, dx = y, dx = g
        std::vector<T> yc(ys), gc(gs);
        std::vector<T> dxs(n + 4, L::quiet_NaN());
        T* yp = yc.data() + offset;
        T* gp = gc.data() + offset;
        T* dx = alias == 0 ? dxs.data() + offset : alias == 1 ? yp : gp;
        SoftmaxVjpFromOutput<T>(f, v, absl::MakeConstSpan(yp, n),
                                absl::MakeConstSpan(gp, n),
                                absl::MakeSpan(dx, n));
        for (size_t i = 0; i < n; ++i) {
          const double u = UlpError(dx[i], want[i], 8 * eps * scale[i]);
          max_ulp = std::max(max_ulp, u);
          if (u > budget && failures++ == 0) {
            char buf[200];
            std::snprintf(buf, sizeof(buf),
                          " first: n=%zu kind=%d alias=%d i=%zu y=%.17g "
                          "g=%.17g got=%.17g want=%.17g (%.3g ulp)",
                          n, kind, alias, i, static_cast<double>(y[i]),
                          static_cast<double>(g[i]), static_cast<double>(dx[i]),
                          static_cast<double>(want[i]), u);
            first = buf;
          }
        }
      }
    }
  }
  std::printf("%-8s %-28s %s max %.3f ULP (budget %.0f)\n", KernelTargetName(),
              name, Dtype<T>(), max_ulp, budget);
  EXPECT_EQ(failures, 0u) << KernelTargetName() << " " << name << " "
                          << Dtype<T>() << first;
}

// Special rows among ordinary ones, every length: the formula in Wider<T>,
// bit for bit.
template <typename T>
void CheckFromOutputSpecials(bool log) {
  using L = std::numeric_limits<T>;
  using W = reference::Wider<T>;
  constexpr size_t kN = 4 * 64 / sizeof(T);
  const Function f = log ? Function::kLogSoftmax : Function::kSoftmax;
  const char* name =
      log ? "log_softmax_vjp_from_output" : "softmax_vjp_from_output";
  Random srng(23);
  for (size_t n = 1; n < 2 * kN; ++n) {
    constexpr size_t kRows = 7;
    std::vector<T> y(n * kRows), g(n * kRows);
    for (T& gv : g) gv = static_cast<T>(srng.Uniform(-2, 2));
    for (size_t r = 0; r < kRows; ++r) {
      std::vector<T> x = MakeRow<T>(0, n, srng);
      SoftmaxForward<T>(f, AxisView{1, static_cast<int64_t>(n), 1},
                        absl::MakeConstSpan(x),
                        absl::MakeSpan(y.data() + r * n, n));
    }
    // Row 1: a NaN in y; 2: a NaN in g; 3: +inf in y; 4: −inf in g;
    // 5: g so large that the dot product or Σg overflows T; 0, 6
    // ordinary.
    y[1 * n + n / 2] = L::quiet_NaN();
    g[2 * n] = L::quiet_NaN();
    y[3 * n + n - 1] = L::infinity();
    g[4 * n + n / 3] = -L::infinity();
    for (size_t i = 0; i < n; ++i) g[5 * n + i] = L::max();
    if (!log) {
      for (size_t i = 0; i < n; ++i) y[5 * n + i] = T(1);
    }
    std::vector<T> want(y.size());
    for (size_t r = 0; r < kRows; ++r) {
      const T* yr = y.data() + r * n;
      const T* gr = g.data() + r * n;
      T* wr = want.data() + r * n;
      if (r >= 1 && r <= 5) {
        W acc = 0;
        for (size_t i = 0; i < n; ++i) {
          acc += log ? W(gr[i]) : W(gr[i]) * W(yr[i]);
        }
        for (size_t i = 0; i < n; ++i) {
          wr[i] = static_cast<T>(log ? W(gr[i]) - std::exp(W(yr[i])) * acc
                                     : W(yr[i]) * (W(gr[i]) - acc));
        }
      } else {
        SoftmaxVjpFromOutput<T>(f, AxisView{1, static_cast<int64_t>(n), 1},
                                absl::MakeConstSpan(yr, n),
                                absl::MakeConstSpan(gr, n),
                                absl::MakeSpan(wr, n));
      }
    }
    std::vector<T> dx(y.size(), L::quiet_NaN());
    SoftmaxVjpFromOutput<T>(
        f, AxisView{static_cast<int64_t>(kRows), static_cast<int64_t>(n), 1},
        absl::MakeConstSpan(y), absl::MakeConstSpan(g), absl::MakeSpan(dx));
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_TRUE(SameBits(dx[i], want[i]))
          << KernelTargetName() << " " << name << " " << Dtype<T>()
          << " n=" << n << " row=" << i / n << " i=" << i % n
          << " got=" << dx[i] << " want=" << want[i];
    }
  }
}

template <typename T>
void CheckFromOutput() {
  ForEachTarget([&](int64_t /*target*/) {
    for (bool log : {false, true}) {
      CheckFromOutputRows<T>(log);
      CheckFromOutputSpecials<T>(log);
      if (::testing::Test::HasFatalFailure()) return;
    }
  });
}

TEST(SoftmaxSimdTest, FromOutputFloat32) { CheckFromOutput<float>(); }
TEST(SoftmaxSimdTest, FromOutputFloat64) { CheckFromOutput<double>(); }

}  // namespace
}  // namespace test
}  // namespace actsvc
