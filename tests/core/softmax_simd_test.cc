// The SIMD softmax kernels (core/softmax-inl.h, contiguous rows) on every
// instruction set compiled in and supported here
// (hwy::SetSupportedTargetsForTest):
//  - accuracy against a __float128 computation from the same inputs: p and
//    log p within 4 ULP for normal results (a subnormal p within the
//    smallest normal); the VJPs within 4 ULP plus the error that the
//    condition of the result allows, 8ε Σ_a |J_ai g_a| (with J of the exact
//    p); the maxima are printed per target.
//  - rows of every length 1..2N−1 (N = 4 AVX-512 vectors) at misalignments
//    0..3, with ties, a dominant logit (log p_max = −log1p(rest) with rest
//    tiny), wide ranges, in place and out of place, outputs pre-filled with
//    NaN;
//  - special rows (NaN, ±inf, all −inf, a range that overflows) equal bit for
//    bit to the scalar reference, also when mixed with ordinary rows.
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

template <typename T>
QuadRow Oracle(const T* x, const T* g, size_t n) {
  QuadRow r;
  Q m = x[0];
  for (size_t i = 0; i < n; ++i) m = std::max<Q>(m, x[i]);
  Q sum = 0;
  for (size_t i = 0; i < n; ++i) sum += expq(static_cast<Q>(x[i]) - m);
  const Q log_sum = logq(sum);
  Q dot = 0, abs_dot = 0, gsum = 0, abs_gsum = 0;
  for (size_t i = 0; i < n; ++i) {
    const Q t = static_cast<Q>(x[i]) - m;
    r.p.push_back(expq(t) / sum);
    r.log_p.push_back(t - log_sum);
    dot += r.p[i] * g[i];
    abs_dot += r.p[i] * fabsq(g[i]);
    gsum += g[i];
    abs_gsum += fabsq(g[i]);
  }
  for (size_t i = 0; i < n; ++i) {
    r.vjp.push_back(r.p[i] * (g[i] - dot));
    r.log_vjp.push_back(g[i] - r.p[i] * gsum);
    // Σ_a |J_ai g_a|: the condition of the result for exact p.
    const Q ag = fabsq(static_cast<Q>(g[i]));
    r.vjp_scale.push_back(r.p[i] * (ag * (1 - r.p[i]) + abs_dot - r.p[i] * ag));
    r.log_vjp_scale.push_back(ag * (1 - r.p[i]) + r.p[i] * (abs_gsum - ag));
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
  return x;
}
constexpr int kRowKinds = 6;

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

}  // namespace
}  // namespace test
}  // namespace actsvc
