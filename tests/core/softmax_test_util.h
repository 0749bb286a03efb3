// What the SIMD softmax tests (softmax_row_test.cc, softmax_column_test.cc,
// softmax_jacobian_test.cc) share: the __float128 oracle of one row, the
// error measure, the calls of the public API by op index, the row
// generators.
#ifndef ACTSVC_TESTS_CORE_SOFTMAX_TEST_UTIL_H_
#define ACTSVC_TESTS_CORE_SOFTMAX_TEST_UTIL_H_

#include <quadmath.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/types/span.h"
#include "core/softmax.h"
#include "tests/core/test_util.h"
#include "tests/core/ulp_budgets.h"

namespace actsvc {
namespace test {

using Q = __float128;

// Op indices: 0 softmax, 1 log_softmax, 2, 3 their VJPs from x, 4, 5 from
// y (kOpOfIndex).
constexpr int kAllOps = 6;
const char* const kAllOpNames[kAllOps] = {
    "softmax", "log_softmax",        "softmax_vjp",
    "log_vjp", "softmax_vjp_from_y", "log_vjp_from_y"};

// The op of each index of kAllOpNames (kOpNames: the first four).
constexpr SoftmaxOp kOpOfIndex[kAllOps] = {SoftmaxOp::kSoftmax,
                                           SoftmaxOp::kLogSoftmax,
                                           SoftmaxOp::kSoftmaxVjp,
                                           SoftmaxOp::kLogSoftmaxVjp,
                                           SoftmaxOp::kSoftmaxVjpFromOutput,
                                           SoftmaxOp::kLogSoftmaxVjpFromOutput};

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
  const auto [k, m, rest] =
      FirstMaxAndRest<Q>(x, n, [](Q v) { return expq(v); });
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
  const Function f =
      IsLogOp(kOpOfIndex[op]) ? Function::kLogSoftmax : Function::kSoftmax;
  if (!IsVjpOp(kOpOfIndex[op])) {
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
void RunView(int op, AxisView v, const T* x, const T* g, T* y,
             int64_t outer_begin = 0, int64_t outer_end = -1) {
  const size_t total = static_cast<size_t>(v.elements());
  const SoftmaxOp o = kOpOfIndex[op];
  const Function f = IsLogOp(o) ? Function::kLogSoftmax : Function::kSoftmax;
  const auto xs = absl::MakeConstSpan(x, total);
  const auto ys = absl::MakeSpan(y, total);
  if (!IsVjpOp(o)) {
    SoftmaxForward<T>(f, v, xs, ys, outer_begin, outer_end);
  } else if (!IsVjpFromOutputOp(o)) {
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

// The ULP budget of op index `op` (tests/core/ulp_budgets.h).
template <typename T>
double OpBudget(int op) {
  return BudgetOf<T>(kOpOfIndex[op]);
}

}  // namespace test
}  // namespace actsvc

#endif  // ACTSVC_TESTS_CORE_SOFTMAX_TEST_UTIL_H_
