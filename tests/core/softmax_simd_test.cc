// Over 800 lines (about 1,000): one fixture over every SIMD target for the
// row kernel's accuracy, specials and layouts; it splits with issue 21's
// shared test tables (tests by concern: rows, columns, VJPs).
//
// The SIMD softmax kernels (core/softmax_row-inl.h, contiguous rows) on every
// instruction set compiled in and supported here
// (hwy::SetSupportedTargetsForTest):
//  - accuracy against a __float128 computation from the same inputs: p and
//    log p within 4 ULP for normal results (a subnormal p within the
//    smallest normal); the VJPs within 4 ULP plus the error that the
//    condition of the result allows, 8ε Σ_a |J_ai g_a| (with J of the exact
//    p); the maxima are printed per target.
//  - rows of every length 1..2N−1 (N = 4 AVX-512 vectors) at misalignments
//    0..3, with ties, a dominant logit (log p_max = −log1p(rest) with rest
//    tiny), wide ranges, large offsets of either sign, in place and out of
//    place, outputs pre-filled with NaN;
//  - special rows (NaN, ±inf, all −inf, a range that overflows) equal bit for
//    bit to the scalar reference, also when mixed with ordinary rows;
//  - the same for the VJPs from the forward output (SoftmaxVjpFromOutput),
//    against the formula at the y given (see CheckFromOutput);
//  - strided rows (inner > 1, run in tiles through the same kernels, or on
//    the column kernel for C <= kSoftmaxColumnMaxClasses in both layouts)
//    equal bit for bit to the contiguous rows, in place and by outer
//    sub-ranges (CheckStrided);
//  - the column kernel for every C <= kSoftmaxColumnMaxClasses, contiguous
//    and strided, against __float128 with the same budgets, special rows
//    bit for bit (CheckColumns);
//  - dense Jacobians from the SIMD stats kernel against __float128, strided
//    and special rows included (CheckJacobian).
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
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

using Q = __float128;

struct TargetScope {
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

template <typename T>
const char* Dtype() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

template <typename T>
Q Ulp(Q v) {
  using L = std::numeric_limits<T>;
  v = fabsq(v);
  if (!(v >= static_cast<Q>(L::min()))) return L::denorm_min();
  return ldexpq(1, ilogbq(v) - (L::digits - 1));
}

// softmax, log_softmax and both VJPs of one row in __float128.
struct QuadRow {
  std::vector<Q> p, log_p, vjp, log_vjp, vjp_scale, log_vjp_scale;
};

// The first maximum k is kept apart as in the kernels: with rest = Σ_{i≠k}
// e^(x_i − m), log Σ = log1p(rest) and 1 − p_k = rest / (1 + rest), which
// 1 + rest in __float128 would lose when rest < 1e-34 (a logit ahead by 80).
template <typename T>
QuadRow Oracle(const T* x, const T* g, size_t n) {
  QuadRow r;
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    if (x[i] > x[k]) k = i;
  }
  const Q m = x[k];
  Q rest = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i != k) rest += expq(static_cast<Q>(x[i]) - m);
  }
  const Q sum = 1 + rest;
  const Q log_sum = log1pq(rest);
  const Q one_minus_pk = rest / sum;
  Q dot_rest = 0, abs_dot = 0, abs_dot_rest = 0, gsum_rest = 0, abs_gsum = 0;
  for (size_t i = 0; i < n; ++i) {
    const Q t = static_cast<Q>(x[i]) - m;
    r.p.push_back(expq(t) / sum);
    r.log_p.push_back(t - log_sum);
    if (i != k) {
      dot_rest += r.p[i] * g[i];
      abs_dot_rest += r.p[i] * fabsq(g[i]);
      gsum_rest += g[i];
    }
    abs_dot += r.p[i] * fabsq(g[i]);
    abs_gsum += fabsq(g[i]);
  }
  const Q dot = dot_rest + r.p[k] * g[k];
  const Q gsum = gsum_rest + g[k];
  for (size_t i = 0; i < n; ++i) {
    const Q gi = g[i];
    // 1 − p_i: from rest for k, directly otherwise (p_i <= 1/2 there).
    const Q q = i == k ? one_minus_pk : 1 - r.p[i];
    r.vjp.push_back(i == k ? r.p[k] * (gi * q - dot_rest)
                           : r.p[i] * (gi - dot));
    r.log_vjp.push_back(i == k ? gi * q - r.p[k] * gsum_rest
                               : gi - r.p[i] * gsum);
    // Σ_a |J_ai g_a|: the condition of the result for exact p (for k
    // without abs_dot − p_k |g_k|, which would lose a rest below 1e-34).
    const Q ag = fabsq(gi);
    r.vjp_scale.push_back(
        r.p[i] * (ag * q + (i == k ? abs_dot_rest : abs_dot - r.p[i] * ag)));
    r.log_vjp_scale.push_back(ag * q + r.p[i] * (abs_gsum - ag));
  }
  return r;
}

// Error in ULP of want; a result below the smallest normal counts as 0 when
// within the smallest normal, else as a large number.
template <typename T>
double UlpError(T got, Q want, Q abs_extra = 0) {
  const Q err = fabsq(static_cast<Q>(got) - want);
  if (std::isnan(got)) return 1e30;
  if (fabsq(want) < static_cast<Q>(std::numeric_limits<T>::min())) {
    return err <= static_cast<Q>(std::numeric_limits<T>::min()) + abs_extra
               ? 0
               : 1e30;
  }
  const Q excess = err > abs_extra ? err - abs_extra : 0;
  return static_cast<double>(excess / Ulp<T>(want));
}

constexpr int kOps = 4;
const char* const kOpNames[kOps] = {"softmax", "log_softmax", "softmax_vjp",
                                    "log_softmax_vjp"};

// Runs op over `rows` contiguous rows of n; in place means y aliases x
// (forward) or g (VJP).
template <typename T>
void Run(int op, const T* x, const T* g, T* y, size_t n, size_t rows) {
  const AxisView v{static_cast<int64_t>(rows), static_cast<int64_t>(n), 1};
  const size_t total = n * rows;
  const Function f = op % 2 ? Function::kLogSoftmax : Function::kSoftmax;
  if (op < 2) {
    SoftmaxForward<T>(f, v, absl::MakeConstSpan(x, total),
                      absl::MakeSpan(y, total));
  } else {
    SoftmaxVjp<T>(f, v, absl::MakeConstSpan(x, total),
                  absl::MakeConstSpan(g, total), absl::MakeSpan(y, total));
  }
}

// Row generators: a kind of row of length n.
template <typename T>
std::vector<T> MakeRow(int kind, size_t n, Random& rng) {
  std::vector<T> x(n);
  const double scale = kind == 0 ? 1 : kind == 1 ? 10 : kind == 2 ? 60 : 4;
  for (T& v : x) v = static_cast<T>(rng.Uniform(-scale, scale));
  if (kind == 3 && n > 1) {  // one dominant logit: rest is tiny
    for (T& v : x) v = static_cast<T>(rng.Uniform(-40, -30));
    x[rng.Int(0, n - 1)] = T(0.5);
  }
  if (kind == 4 && n > 2) {  // ties at the maximum
    for (size_t i = 0; i < n; i += 3) x[i] = T(7);
  }
  if (kind == 5) {  // large offsets: x − m must be formed exactly
    for (T& v : x) v = static_cast<T>(1000 + rng.Uniform(-20, 20));
  }
  if (kind == 6) {  // the same below zero (the kernels split x − m by sign)
    for (T& v : x) v = static_cast<T>(-1000 + rng.Uniform(-20, 20));
  }
  if (kind == 7 && n > 1) {  // a dominant logit below zero
    for (T& v : x) v = static_cast<T>(rng.Uniform(-40, -30));
    x[rng.Int(0, n - 1)] = T(-0.5);
  }
  return x;
}
constexpr int kRowKinds = 8;

template <typename T>
void CheckAccuracy() {
  TargetScope scope;
  constexpr size_t kN = 4 * 64 / sizeof(T);
  std::vector<size_t> lengths;
  for (size_t n = 1; n < 2 * kN; ++n) lengths.push_back(n);
  for (size_t n : {1000, 1001, 4099}) lengths.push_back(n);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
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
            if (u > 4) {
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
      std::printf("%-8s %-16s %s max %.3f ULP (budget 4)\n",
                  hwy::TargetName(target), kOpNames[op], Dtype<T>(),
                  max_ulp[op]);
      EXPECT_EQ(failures[op], 0u)
          << hwy::TargetName(target) << " " << kOpNames[op] << " " << Dtype<T>()
          << first[op];
    }
  }
}

TEST(SoftmaxSimdTest, AccuracyFloat32) { CheckAccuracy<float>(); }
TEST(SoftmaxSimdTest, AccuracyFloat64) { CheckAccuracy<double>(); }

// A batch of rows of every length 1..2N−1 at misalignments 0..3, in place
// and out of place, with special rows mixed in: ordinary rows give the same
// bits as the row computed alone; special rows the scalar reference's bits.
template <typename T>
void CheckRowsAndSpecials() {
  TargetScope scope;
  using L = std::numeric_limits<T>;
  using W = reference::Wider<T>;
  constexpr size_t kN = 4 * 64 / sizeof(T);
  const T inf = L::infinity();
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
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
              const bool same = std::memcmp(&yp[i], &want[i], sizeof(T)) == 0 ||
                                (std::isnan(yp[i]) && std::isnan(want[i]));
              ASSERT_TRUE(same)
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
  }
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
template <typename T>
void CheckFromOutput() {
  TargetScope scope;
  using L = std::numeric_limits<T>;
  using W = reference::Wider<T>;
  constexpr size_t kN = 4 * 64 / sizeof(T);
  std::vector<size_t> lengths;
  for (size_t n = 1; n < 2 * kN; ++n) lengths.push_back(n);
  for (size_t n : {1000, 1001, 4099}) lengths.push_back(n);
  const Q eps = L::epsilon();
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (bool log : {false, true}) {
      const Function f = log ? Function::kLogSoftmax : Function::kSoftmax;
      const char* name =
          log ? "log_softmax_vjp_from_output" : "softmax_vjp_from_output";
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
              if (u > 4 && failures++ == 0) {
                char buf[200];
                std::snprintf(buf, sizeof(buf),
                              " first: n=%zu kind=%d alias=%d i=%zu y=%.17g "
                              "g=%.17g got=%.17g want=%.17g (%.3g ulp)",
                              n, kind, alias, i, static_cast<double>(y[i]),
                              static_cast<double>(g[i]),
                              static_cast<double>(dx[i]),
                              static_cast<double>(want[i]), u);
                first = buf;
              }
            }
          }
        }
      }
      std::printf("%-8s %-28s %s max %.3f ULP (budget 4)\n",
                  hwy::TargetName(target), name, Dtype<T>(), max_ulp);
      EXPECT_EQ(failures, 0u) << hwy::TargetName(target) << " " << name << " "
                              << Dtype<T>() << first;

      // Special rows among ordinary ones, every length.
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
            f,
            AxisView{static_cast<int64_t>(kRows), static_cast<int64_t>(n), 1},
            absl::MakeConstSpan(y), absl::MakeConstSpan(g), absl::MakeSpan(dx));
        for (size_t i = 0; i < y.size(); ++i) {
          const bool same = std::memcmp(&dx[i], &want[i], sizeof(T)) == 0 ||
                            (std::isnan(dx[i]) && std::isnan(want[i]));
          ASSERT_TRUE(same)
              << hwy::TargetName(target) << " " << name << " " << Dtype<T>()
              << " n=" << n << " row=" << i / n << " i=" << i % n
              << " got=" << dx[i] << " want=" << want[i];
        }
      }
    }
  }
}

TEST(SoftmaxSimdTest, FromOutputFloat32) { CheckFromOutput<float>(); }
TEST(SoftmaxSimdTest, FromOutputFloat64) { CheckFromOutput<double>(); }

// ---------------------------------------------------------------------------
// Strided rows (inner > 1), which run the contiguous kernels on tiles
// gathered from the tensor: every op on [3, C, K] along axis 1 gives, bit
// for bit, the contiguous (inner == 1) result of the same rows after
// transposing, on the same target; special rows included (a +inf, a NaN,
// all −inf, a range that overflows; for the VJPs from the output NaN and inf
// in y or g). Also in place (y aliasing x or g; dx aliasing y or g) and for
// outer sub-ranges, which give the bits of the whole call. K = 70 spans
// more than one tile (at most 64 columns).

// op: 0 softmax, 1 log_softmax, 2, 3 their VJPs from x, 4, 5 from y.
constexpr int kAllOps = 6;
const char* const kAllOpNames[kAllOps] = {
    "softmax", "log_softmax",        "softmax_vjp",
    "log_vjp", "softmax_vjp_from_y", "log_vjp_from_y"};

template <typename T>
void RunView(int op, AxisView v, const T* x, const T* g, T* y,
             int64_t outer_begin = 0, int64_t outer_end = -1) {
  const size_t total = static_cast<size_t>(v.elements());
  const Function f = op % 2 ? Function::kLogSoftmax : Function::kSoftmax;
  const auto xs = absl::MakeConstSpan(x, total);
  const auto ys = absl::MakeSpan(y, total);
  if (op < 2) {
    SoftmaxForward<T>(f, v, xs, ys, outer_begin, outer_end);
  } else if (op < 4) {
    SoftmaxVjp<T>(f, v, xs, absl::MakeConstSpan(g, total), ys, outer_begin,
                  outer_end);
  } else {
    SoftmaxVjpFromOutput<T>(f, v, xs, absl::MakeConstSpan(g, total), ys,
                            outer_begin, outer_end);
  }
}

// [outer, C, K] -> [outer, K, C] and back (the same function both ways with
// the two inner sizes swapped).
template <typename T>
std::vector<T> Transpose(const std::vector<T>& a, int64_t outer, int64_t rows,
                         int64_t cols) {
  std::vector<T> t(a.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        t[(o * cols + c) * rows + r] = a[(o * rows + r) * cols + c];
      }
    }
  }
  return t;
}

template <typename T>
bool SameBits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 ||
         (std::isnan(a) && std::isnan(b));
}

template <typename T>
void CheckStrided() {
  TargetScope scope;
  using L = std::numeric_limits<T>;
  const T inf = L::infinity();
  constexpr int64_t kOuter = 3;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    Random rng(29);
    size_t checked = 0;
    // C up to kSoftmaxColumnMaxClasses runs the column kernel (both layouts
    // alike), longer rows the row kernel in tiles.
    for (int64_t c :
         {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{7},
          int64_t{8}, int64_t{16}, int64_t{31}, kSoftmaxColumnMaxClasses,
          kSoftmaxColumnMaxClasses + 1, int64_t{1000}, int64_t{1001}}) {
      for (int64_t k : {2, 5, 17, 33, 70}) {
        const AxisView strided{kOuter, c, k};
        const AxisView contiguous{kOuter * k, c, 1};
        const size_t total = static_cast<size_t>(strided.elements());
        // Logits (ordinary rows of the MakeRow kinds, and special ones),
        // upstream gradients, and the forward outputs of the logits.
        std::vector<T> xt(total), gt(total);  // transposed: [outer, K, C]
        for (int64_t r = 0; r < kOuter * k; ++r) {
          const std::vector<T> row =
              MakeRow<T>(static_cast<int>(r % kRowKinds), c, rng);
          std::copy(row.begin(), row.end(), xt.begin() + r * c);
        }
        for (T& v : gt) v = static_cast<T>(rng.Uniform(-2, 2));
        // Row 1: one +inf; row 2: all −inf; row 3: a NaN; row k + 1: max and
        // lowest (x − m overflows).
        xt[1 * c + c / 2] = inf;
        for (int64_t i = 0; i < c; ++i) xt[2 * c + i] = -inf;
        xt[3 * c + c - 1] = L::quiet_NaN();
        xt[(k + 1) * c] = L::max();
        xt[(k + 1) * c + c - 1] = c > 1 ? L::lowest() : L::max();
        for (int op = 0; op < kAllOps; ++op) {
          std::vector<T> in_t = xt, g_t = gt;
          if (op >= 4) {  // the VJPs from y take a forward output
            std::vector<T> y_t(total);
            RunView<T>(op % 2, contiguous, xt.data(), nullptr, y_t.data());
            in_t = y_t;
            // y special rows: a NaN in y (row 0), +inf in y (row k), a
            // NaN in g (row 2k), −inf in g (row 2k + 1).
            in_t[c / 2] = L::quiet_NaN();
            in_t[k * c + c - 1] = inf;
            g_t[2 * k * c] = L::quiet_NaN();
            g_t[(2 * k + 1) * c + c / 3] = -inf;
          }
          std::vector<T> want_t(total, L::quiet_NaN());
          RunView<T>(op, contiguous, in_t.data(), g_t.data(), want_t.data());
          const std::vector<T> in = Transpose(in_t, kOuter, k, c);
          const std::vector<T> g = Transpose(g_t, kOuter, k, c);
          const std::vector<T> want = Transpose(want_t, kOuter, k, c);
          // 0: out of place; 1: y aliasing x (or y); 2: y aliasing g;
          // 3: out of place by outer sub-ranges [0, 1), [1, 3).
          for (int mode = 0; mode < 4; ++mode) {
            if (mode == 2 && op < 2) continue;
            std::vector<T> xb = in, gb = g, yb(total, L::quiet_NaN());
            T* yp = mode == 1 ? xb.data() : mode == 2 ? gb.data() : yb.data();
            if (mode == 3) {
              RunView<T>(op, strided, xb.data(), gb.data(), yp, 0, 1);
              RunView<T>(op, strided, xb.data(), gb.data(), yp, 1, kOuter);
            } else {
              RunView<T>(op, strided, xb.data(), gb.data(), yp);
            }
            for (size_t i = 0; i < total; ++i) {
              ASSERT_TRUE(SameBits(yp[i], want[i]))
                  << hwy::TargetName(target) << " " << kAllOpNames[op] << " "
                  << Dtype<T>() << " C=" << c << " K=" << k << " mode=" << mode
                  << " o=" << i / (c * k) << " c=" << i / k % c
                  << " i=" << i % k << " got=" << yp[i] << " want=" << want[i];
            }
            checked += total;
          }
        }
      }
    }
    std::printf("%-8s strided %s: %zu values equal to the contiguous rows\n",
                hwy::TargetName(target), Dtype<T>(), checked);
  }
}

TEST(SoftmaxSimdTest, StridedRowsFloat32) { CheckStrided<float>(); }
TEST(SoftmaxSimdTest, StridedRowsFloat64) { CheckStrided<double>(); }

// ---------------------------------------------------------------------------
// The column kernel (rows of C <= kSoftmaxColumnMaxClasses values, a vector
// of rows at once) on every target, float32 and float64, every C, both
// layouts: contiguous [75, C] (tiles of 64 rows and a partial one) and
// strided [2, C, 37] along axis 1 (full vectors and a partial one). Rows of
// the MakeRow kinds (ties, a dominant logit with rest tiny, large offsets),
// all equal, a range wide enough that most e^(x − m) underflow, and special
// rows. Ops 0-3 against the __float128 oracle with the budgets of
// CheckAccuracy; the VJPs from the output against the formula at the y given
// with those of CheckFromOutput. Special rows: the formula in Wider<T> on
// the reference's p, bit for bit. In place (y aliasing x, or g for the VJPs
// from x) gives the same bits. The maxima are printed per target and layout.
template <typename T>
void CheckColumns() {
  TargetScope scope;
  using L = std::numeric_limits<T>;
  using W = reference::Wider<T>;
  const Q eps = L::epsilon();
  const T inf = L::infinity();
  constexpr int kKinds = kRowKinds + 3;
  const double wide = sizeof(T) == 4 ? 60 : 400;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    Random rng(53);
    double max_ulp[2][kAllOps] = {};
    size_t failures[2][kAllOps] = {};
    std::string first[2][kAllOps];
    size_t specials = 0;
    for (int64_t c = 1; c <= kSoftmaxColumnMaxClasses; ++c) {
      for (int layout = 0; layout < 2; ++layout) {
        const AxisView v = layout ? AxisView{2, c, 37} : AxisView{75, c, 1};
        const int64_t rows = v.rows();
        const size_t total = static_cast<size_t>(v.elements());
        const auto at = [&](int64_t r, int64_t i) {
          return static_cast<size_t>((r / v.inner * c + i) * v.inner +
                                     r % v.inner);
        };
        std::vector<T> x(total), g(total);
        std::vector<bool> special(rows, false);
        for (int64_t r = 0; r < rows; ++r) {
          const int kind = static_cast<int>(r % kKinds);
          std::vector<T> row;
          if (kind < kRowKinds) {
            row = MakeRow<T>(kind, c, rng);
          } else if (kind == kRowKinds) {  // all equal: ties count 1 each
            row.assign(c, static_cast<T>(rng.Uniform(-3, 3)));
          } else if (kind == kRowKinds + 1) {  // wide: most e_i underflow
            row.resize(c);
            for (T& a : row) a = static_cast<T>(rng.Uniform(-wide, wide));
            row[rng.Int(0, c - 1)] = static_cast<T>(wide);
          } else {  // special
            row = MakeRow<T>(0, c, rng);
            const int which = static_cast<int>(r / kKinds % 5);
            if (which == 0) row[c / 2] = inf;
            if (which == 1) row.assign(c, -inf);
            if (which == 2) row[c - 1] = L::quiet_NaN();
            if (which == 3) row[0] = -inf;
            if (which == 4) {
              row[0] = L::max();
              row[c - 1] = c > 1 ? L::lowest() : L::max();
            }
            special[r] = which != 4 || c > 1;
          }
          for (int64_t i = 0; i < c; ++i) x[at(r, i)] = row[i];
        }
        for (T& a : g) a = static_cast<T>(rng.Uniform(-2, 2));
        // The forward outputs, the y of the VJPs from the output.
        std::vector<T> fwd[2];
        for (int op = 0; op < 2; ++op) {
          fwd[op].assign(total, L::quiet_NaN());
          RunView<T>(op, v, x.data(), nullptr, fwd[op].data());
        }
        for (int op = 0; op < kAllOps; ++op) {
          const std::vector<T>& in = op < 4 ? x : fwd[op % 2];
          std::vector<T> y(total, L::quiet_NaN());
          RunView<T>(op, v, in.data(), g.data(), y.data());
          // In place: the same bits.
          std::vector<T> xa = in, ga = g;
          T* ya = op == 2 || op == 3 ? ga.data() : xa.data();
          RunView<T>(op, v, xa.data(), ga.data(), ya);
          for (size_t i = 0; i < total; ++i) {
            ASSERT_TRUE(SameBits(ya[i], y[i]))
                << hwy::TargetName(target) << " " << kAllOpNames[op] << " "
                << Dtype<T>() << " C=" << c << " layout=" << layout
                << " in place, element " << i;
          }
          std::vector<T> xr(c), gr(c), yr(c);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t i = 0; i < c; ++i) {
              xr[i] = in[at(r, i)];
              gr[i] = g[at(r, i)];
              yr[i] = y[at(r, i)];
            }
            std::vector<Q> want(c), scale(c, 0);
            bool exact = false;  // a special row: the formula in W
            if (op < 4) {
              if (special[r]) {
                exact = true;
                ++specials;
              } else {
                const QuadRow q = Oracle(xr.data(), gr.data(), c);
                for (int64_t i = 0; i < c; ++i) {
                  want[i] = op == 0   ? q.p[i]
                            : op == 1 ? q.log_p[i]
                            : op == 2 ? q.vjp[i]
                                      : q.log_vjp[i];
                  scale[i] = op == 2   ? q.vjp_scale[i]
                             : op == 3 ? q.log_vjp_scale[i]
                                       : 0;
                }
              }
            } else {
              const bool log = op == 5;
              for (int64_t i = 0; i < c; ++i) {
                if (std::isnan(xr[i]) || (xr[i] == inf) ||
                    (!log && xr[i] == -inf)) {
                  exact = true;
                }
              }
              if (!exact) {
                Q acc = 0, abs_acc = 0;
                for (int64_t i = 0; i < c; ++i) {
                  const Q p = log ? expq(Q(xr[i])) : Q(xr[i]);
                  acc += log ? Q(gr[i]) : Q(gr[i]) * p;
                  abs_acc += log ? fabsq(gr[i]) : fabsq(gr[i]) * p;
                }
                for (int64_t i = 0; i < c; ++i) {
                  const Q p = log ? expq(Q(xr[i])) : Q(xr[i]);
                  want[i] = log ? gr[i] - p * acc : p * (gr[i] - acc);
                  scale[i] = p * abs_acc;
                }
              }
            }
            if (exact) {
              std::vector<W> p(c), log_p(c);
              if (op < 4) {
                reference::SoftmaxRowProbabilities(xr.data(), c, 1, p, log_p);
              } else {
                for (int64_t i = 0; i < c; ++i) {
                  p[i] = op == 5 ? std::exp(W(xr[i])) : W(xr[i]);
                }
              }
              W acc = 0;
              for (int64_t i = 0; i < c; ++i) {
                acc += op % 2 && op >= 3 ? W(gr[i]) : W(gr[i]) * p[i];
              }
              for (int64_t i = 0; i < c; ++i) {
                const W gi = gr[i];
                const T w = static_cast<T>(op == 0   ? p[i]
                                           : op == 1 ? log_p[i]
                                           : op % 2  ? gi - p[i] * acc
                                                     : p[i] * (gi - acc));
                ASSERT_TRUE(SameBits(yr[i], w))
                    << hwy::TargetName(target) << " " << kAllOpNames[op] << " "
                    << Dtype<T>() << " C=" << c << " layout=" << layout
                    << " special row " << r << " i=" << i << " got=" << yr[i]
                    << " want=" << w;
              }
              continue;
            }
            for (int64_t i = 0; i < c; ++i) {
              const double u = UlpError(yr[i], want[i], 8 * eps * scale[i]);
              max_ulp[layout][op] = std::max(max_ulp[layout][op], u);
              if (u > 4 && failures[layout][op]++ == 0) {
                char buf[200];
                std::snprintf(
                    buf, sizeof(buf),
                    " first: C=%lld row=%lld kind=%lld i=%lld "
                    "x=%.17g got=%.17g want=%.17g (%.3g ulp)",
                    static_cast<long long>(c), static_cast<long long>(r),
                    static_cast<long long>(r % kKinds),
                    static_cast<long long>(i), static_cast<double>(xr[i]),
                    static_cast<double>(yr[i]), static_cast<double>(want[i]),
                    u);
                first[layout][op] = buf;
                for (int64_t j = 0; j < c; ++j) {
                  std::snprintf(buf, sizeof(buf), " (x%lld=%a g=%a)",
                                static_cast<long long>(j),
                                static_cast<double>(xr[j]),
                                static_cast<double>(gr[j]));
                  first[layout][op] += buf;
                }
              }
            }
          }
        }
      }
    }
    for (int layout = 0; layout < 2; ++layout) {
      for (int op = 0; op < kAllOps; ++op) {
        std::printf("%-8s columns %-10s %-18s %s max %.3f ULP (budget 4)\n",
                    hwy::TargetName(target), layout ? "strided" : "contiguous",
                    kAllOpNames[op], Dtype<T>(), max_ulp[layout][op]);
        EXPECT_EQ(failures[layout][op], 0u)
            << hwy::TargetName(target) << " " << kAllOpNames[op] << " "
            << Dtype<T>() << " layout " << layout << first[layout][op];
      }
    }
    EXPECT_GT(specials, 0u);
  }
}

// Tensors without rows ([2, 3, 0] along axis 1; [0, 3] along the last)
// touch nothing.
TEST(SoftmaxSimdTest, ColumnsWithoutRows) {
  for (const AxisView v : {AxisView{2, 3, 0}, AxisView{0, 3, 1}}) {
    for (int op = 0; op < kAllOps; ++op) {
      RunView<float>(op, v, nullptr, nullptr, nullptr);
    }
  }
}

TEST(SoftmaxSimdTest, ColumnsFloat32) { CheckColumns<float>(); }
TEST(SoftmaxSimdTest, ColumnsFloat64) { CheckColumns<double>(); }

// Dense Jacobians (p from the SIMD stats kernel, J formed in Wider<T>)
// against __float128 from the same logits, on every target: J_ab within
// 4 ULP beyond 8ε p_a (δ_ab + p_b) (softmax, p_a (δ_ab − p_b)) or 8ε p_b
// (log_softmax, δ_ab − p_b), what the rounding of p (within 4 ULP) allows;
// J_kk of the first maximum k within 4 ULP alone: 1 − p_k comes from rest,
// so it keeps its digits when p_k is close to 1. Rows contiguous and strided
// ([2, n, 3] axis 1, the same bits); special rows the reference's bits.
template <typename T>
void CheckJacobian() {
  TargetScope scope;
  using L = std::numeric_limits<T>;
  using W = reference::Wider<T>;
  const Q eps = L::epsilon();
  const std::vector<int64_t> lengths = {1,  2,  3,  4,  5,  7,  8,  9,
                                        15, 16, 17, 31, 33, 64, 65, 127};
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    Random rng(41);
    for (bool log : {false, true}) {
      const Function f = log ? Function::kLogSoftmax : Function::kSoftmax;
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
          int64_t k = 0;
          for (int64_t i = 0; i < n; ++i) {
            if (x[i] > x[k]) k = i;
          }
          Q rest = 0;
          for (int64_t i = 0; i < n; ++i) {
            if (i != k) rest += expq(Q(x[i]) - Q(x[k]));
          }
          std::vector<Q> p(n), q(n);
          for (int64_t i = 0; i < n; ++i) {
            p[i] = expq(Q(x[i]) - Q(x[k])) / (1 + rest);
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
                              static_cast<long long>(a),
                              static_cast<long long>(b),
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
                << hwy::TargetName(target) << " " << Dtype<T>() << " n=" << n
                << " kind=" << kind << " strided J entry " << i;
          }
        }
      }
      std::printf("%-8s %-20s %s max %.3f ULP (budget 4)\n",
                  hwy::TargetName(target),
                  log ? "log_softmax_jacobian" : "softmax_jacobian", Dtype<T>(),
                  max_ulp);
      EXPECT_EQ(failures, 0u)
          << hwy::TargetName(target) << " " << Dtype<T>() << first;

      // Special rows, contiguous and strided (chunked by outer index): the
      // reference's p and the formula in W, bit for bit.
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
              << hwy::TargetName(target) << " " << Dtype<T>() << " n=" << n
              << " row=" << i / (n * n) << " entry " << i % (n * n)
              << " got=" << jac[i] << " want=" << want[i];
          ASSERT_TRUE(SameBits(jac_s[i], want[i]))
              << hwy::TargetName(target) << " " << Dtype<T>()
              << " strided n=" << n << " row=" << i / (n * n) << " entry "
              << i % (n * n) << " got=" << jac_s[i] << " want=" << want[i];
        }
      }
    }
  }
}

TEST(SoftmaxSimdTest, JacobianFloat32) { CheckJacobian<float>(); }
TEST(SoftmaxSimdTest, JacobianFloat64) { CheckJacobian<double>(); }

}  // namespace
}  // namespace test
}  // namespace actsvc
