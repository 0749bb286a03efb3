// Softmax and log-softmax along any axis, their VJPs (from the logits and
// from the forward output) and dense Jacobians, against a direct long double
// computation; the corrected Jacobian statements of SPEC.md §1 (symmetric,
// positive semidefinite, J·1 = 0, eigenvalues in [0, max p], rank C−1); IEEE
// special values; row lengths, aliasing and chunking.
#include "core/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "gtest/gtest.h"
#include "tests/core/accuracy.h"
#include "tests/core/oracle.h"
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

using LD = long double;
// softmax and log_softmax of one row in long double, the stable way.
struct RowRef {
  std::vector<LD> p, log_p;
  LD max = 0, log_sum = 0;  // log Σ e^(z−max)
};
// The max term contributes exactly 1 to the sum, so log Σ = log1p(rest):
// the log of the rounded sum would lose the relative accuracy of log p_max
// when one logit dominates.
RowRef Reference(const std::vector<LD>& z) {
  RowRef r;
  const auto [arg_max, max, rest] =
      FirstMaxAndRest<LD>(z.data(), z.size(), [](LD v) { return std::exp(v); });
  r.max = max;
  const LD sum = 1 + rest;
  r.log_sum = std::log1p(rest);
  for (LD v : z) {
    r.log_p.push_back(v - r.max - r.log_sum);
    r.p.push_back(std::exp(v - r.max) / sum);
  }
  return r;
}

// Tolerances for a result in T: the exponent's argument z − max carries a
// rounding error of ε|z − max| that exp turns into a relative one; the sum
// adds ~Cε. The core (computed in a wider type) is far inside these.
template <typename T>
LD SoftmaxTolerance(LD want, LD z_minus_max, int64_t c) {
  const LD rel = (8 + std::fabs(z_minus_max) + c) * kEps<T>;
  return std::max<LD>(rel * std::fabs(want), std::numeric_limits<T>::min());
}
template <typename T>
LD LogSoftmaxTolerance(LD want, LD z_minus_max, LD log_sum, int64_t c) {
  return 4 * UlpAt<T>(want) +
         (2 + c) * kEps<T> * (std::fabs(z_minus_max) + std::fabs(log_sum));
}

template <typename T>
bool SameBits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 ||
         (std::isnan(a) && std::isnan(b));
}

// `got` has the bits of `want` everywhere (NaN matching NaN); otherwise the
// first element that differs.
template <typename T>
::testing::AssertionResult AllSameBits(const std::vector<T>& got,
                                       const std::vector<T>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << got.size() << " values, expected " << want.size();
  }
  for (size_t i = 0; i < want.size(); ++i) {
    if (!SameBits(got[i], want[i])) {
      return ::testing::AssertionFailure()
             << "element " << i << " is " << got[i] << ", expected " << want[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// A kernel of two inputs, `run(a, b, out)`, gives the bits of `want` with its
// output on `a` and with its output on `b`.
template <typename T, typename Run>
void ExpectSameBitsInPlace(const std::vector<T>& a, const char* a_name,
                           const std::vector<T>& b, const char* b_name,
                           const std::vector<T>& want, const Run& run) {
  std::vector<T> on_a = a, on_b = b;
  run(absl::MakeConstSpan(on_a), absl::MakeConstSpan(b), absl::MakeSpan(on_a));
  run(absl::MakeConstSpan(a), absl::MakeConstSpan(on_b), absl::MakeSpan(on_b));
  EXPECT_TRUE(AllSameBits(on_a, want)) << "output aliasing " << a_name;
  EXPECT_TRUE(AllSameBits(on_b, want)) << "output aliasing " << b_name;
}

template <typename T>
std::vector<T> RandomLogits(size_t n, uint64_t seed, double lo = -10,
                            double hi = 10) {
  return RandomValues<T>(n, seed, lo, hi);
}

// Gathers row r of a tensor seen through v, and scatters it back.
template <typename T>
std::vector<LD> Row(const std::vector<T>& x, AxisView v, int64_t r) {
  const int64_t o = r / v.inner, i = r % v.inner;
  std::vector<LD> row(v.size);
  for (int64_t c = 0; c < v.size; ++c)
    row[c] = x[(o * v.size + c) * v.inner + i];
  return row;
}
int64_t Index(AxisView v, int64_t r, int64_t c) {
  return ((r / v.inner) * v.size + c) * v.inner + r % v.inner;
}

template <typename T>
std::vector<T> Forward(Function f, AxisView v, const std::vector<T>& x) {
  std::vector<T> y(x.size(), std::numeric_limits<T>::quiet_NaN());
  SoftmaxForward<T>(f, v, absl::MakeConstSpan(x), absl::MakeSpan(y));
  return y;
}

// ---------------------------------------------------------------------------

TEST(AxisTest, NormalizeAndView) {
  EXPECT_EQ(NormalizeAxis(-1, 3), 2);
  EXPECT_EQ(NormalizeAxis(-3, 3), 0);
  EXPECT_EQ(NormalizeAxis(2, 3), 2);
  EXPECT_EQ(NormalizeAxis(0, 1), 0);
  EXPECT_EQ(NormalizeAxis(3, 3), std::nullopt);
  EXPECT_EQ(NormalizeAxis(-4, 3), std::nullopt);
  EXPECT_EQ(NormalizeAxis(0, 0), std::nullopt);
  const int64_t shape[] = {3, 4, 5};
  const AxisView a0 = MakeAxisView(shape, 0), a1 = MakeAxisView(shape, 1),
                 a2 = MakeAxisView(shape, 2);
  EXPECT_EQ(a0.outer, 1);
  EXPECT_EQ(a0.size, 3);
  EXPECT_EQ(a0.inner, 20);
  EXPECT_EQ(a1.outer, 3);
  EXPECT_EQ(a1.size, 4);
  EXPECT_EQ(a1.inner, 5);
  EXPECT_EQ(a2.outer, 12);
  EXPECT_EQ(a2.size, 5);
  EXPECT_EQ(a2.inner, 1);
  for (const AxisView& v : {a0, a1, a2}) {
    EXPECT_EQ(v.elements(), 60);
    EXPECT_EQ(v.rows() * v.size, 60);
  }
}

template <typename T>
class SoftmaxTest : public ::testing::Test {};
TYPED_TEST_SUITE(SoftmaxTest, FloatTypes, DtypeNames);

// Every axis of a [3, 4, 5] tensor, against long double.
TYPED_TEST(SoftmaxTest, EveryAxisOf3DTensor) {
  using T = TypeParam;
  const int64_t shape[] = {3, 4, 5};
  const auto x = RandomLogits<T>(60, 11);
  for (int axis = 0; axis < 3; ++axis) {
    const AxisView v = MakeAxisView(shape, axis);
    const auto p = Forward<T>(Function::kSoftmax, v, x);
    const auto lp = Forward<T>(Function::kLogSoftmax, v, x);
    for (int64_t r = 0; r < v.rows(); ++r) {
      const std::vector<LD> z = Row(x, v, r);
      const RowRef ref = Reference(z);
      LD sum = 0;
      for (int64_t c = 0; c < v.size; ++c) {
        const int64_t k = Index(v, r, c);
        sum += p[k];
        EXPECT_NEAR(p[k], ref.p[c],
                    SoftmaxTolerance<T>(ref.p[c], z[c] - ref.max, v.size))
            << "axis " << axis << " row " << r << " c " << c;
        EXPECT_NEAR(lp[k], ref.log_p[c],
                    LogSoftmaxTolerance<T>(ref.log_p[c], z[c] - ref.max,
                                           ref.log_sum, v.size))
            << "axis " << axis << " row " << r << " c " << c;
      }
      EXPECT_NEAR(sum, 1, 4 * v.size * kEps<T>);
    }
  }
}

// Softmax over two classes is the sigmoid of the difference.
TYPED_TEST(SoftmaxTest, TwoClassesIsSigmoidOfDifference) {
  using T = TypeParam;
  std::vector<T> x, d;
  Random random(5);
  // Differences on a 1/64 grid are exact in T, so the core's own sigmoid
  // sees the same argument.
  for (int k = -64 * 40; k <= 64 * 40; k += 7) {
    const double z2 = std::round(random.Uniform(-50, 50) * 64) / 64;
    const double z1 = z2 + k / 64.0;
    x.push_back(static_cast<T>(z1));
    x.push_back(static_cast<T>(z2));
    d.push_back(static_cast<T>(k / 64.0));
  }
  const AxisView v{static_cast<int64_t>(d.size()), 2, 1};
  const auto p = Forward<T>(Function::kSoftmax, v, x);
  const auto s = Apply<T>(Function::kSigmoid, 0, 0, d);
  for (size_t i = 0; i < d.size(); ++i) {
    const Quad want = Oracle(Function::kSigmoid, 0, 0, Quad(d[i]));
    const Verdict verdict = Judge<T>(p[2 * i], want, 8, 0);
    EXPECT_TRUE(verdict.ok)
        << "z1 − z2 = " << d[i] << " softmax " << Describe<T>(p[2 * i])
        << " want " << Describe(want);
    EXPECT_NEAR(p[2 * i], s[i], 8 * UlpAt<T>(s[i])) << "z1 − z2 = " << d[i];
  }
}

// Row lengths 1..64 (contiguous and strided rows), out of place into NaN,
// in place, and in two chunks of outer slices: all equal.
TYPED_TEST(SoftmaxTest, LengthSweepAliasingAndChunks) {
  using T = TypeParam;
  for (Function f : {Function::kSoftmax, Function::kLogSoftmax}) {
    for (int64_t c = 1; c <= 64; ++c) {
      for (bool strided : {false, true}) {
        // [3, c] along axis 1, or [c, 3] along axis 0 (stride 3).
        const int64_t shape_rows[] = {3, c};
        const int64_t shape_cols[] = {c, 3};
        const AxisView v =
            strided ? MakeAxisView(shape_cols, 0) : MakeAxisView(shape_rows, 1);
        const auto x = RandomLogits<T>(3 * c, 100 + c, -20, 20);
        const auto y = Forward<T>(f, v, x);
        for (int64_t r = 0; r < v.rows(); ++r) {
          const std::vector<LD> z = Row(x, v, r);
          const RowRef ref = Reference(z);
          for (int64_t k = 0; k < c; ++k) {
            const T got = y[Index(v, r, k)];
            if (f == Function::kSoftmax) {
              ASSERT_NEAR(got, ref.p[k],
                          SoftmaxTolerance<T>(ref.p[k], z[k] - ref.max, c))
                  << "c " << c << " row " << r << " k " << k;
            } else {
              ASSERT_NEAR(got, ref.log_p[k],
                          LogSoftmaxTolerance<T>(ref.log_p[k], z[k] - ref.max,
                                                 ref.log_sum, c))
                  << "c " << c << " row " << r << " k " << k;
            }
          }
        }
        if (c == 1) {
          for (T v1 : y) EXPECT_EQ(v1, f == Function::kSoftmax ? 1 : 0);
        }
        std::vector<T> in_place = x;
        SoftmaxForward<T>(f, v, absl::MakeConstSpan(in_place),
                          absl::MakeSpan(in_place));
        std::vector<T> chunked(x.size(), std::numeric_limits<T>::quiet_NaN());
        for (int64_t o = 0; o < v.outer; ++o) {
          SoftmaxForward<T>(f, v, absl::MakeConstSpan(x),
                            absl::MakeSpan(chunked), o, o + 1);
        }
        ASSERT_TRUE(AllSameBits(in_place, y)) << "in place, c " << c;
        ASSERT_TRUE(AllSameBits(chunked, y)) << "chunked, c " << c;
      }
    }
  }
}

TYPED_TEST(SoftmaxTest, OuterRangeTouchesOnlyItsSlices) {
  using T = TypeParam;
  const int64_t shape[] = {4, 6, 2};
  const AxisView v = MakeAxisView(shape, 1);
  const auto x = RandomLogits<T>(48, 9);
  const auto whole = Forward<T>(Function::kSoftmax, v, x);
  std::vector<T> part(48, std::numeric_limits<T>::quiet_NaN());
  SoftmaxForward<T>(Function::kSoftmax, v, absl::MakeConstSpan(x),
                    absl::MakeSpan(part), 1, 3);
  for (int64_t i = 0; i < 48; ++i) {
    const int64_t o = i / 12;
    if (o >= 1 && o < 3) {
      EXPECT_TRUE(SameBits(part[i], whole[i])) << i;
    } else {
      EXPECT_TRUE(std::isnan(part[i])) << "wrote outside [1, 3) at " << i;
    }
  }
}

// IEEE special values, one row each, among ordinary rows.
TYPED_TEST(SoftmaxTest, SpecialValues) {
  using T = TypeParam;
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T huge = static_cast<T>(1e30);
  const std::vector<std::vector<T>> rows = {
      {1, 2, inf, 3},                // 0: one +inf: one-hot
      {-inf, 0, 1, 2},               // 1: −inf entries: p = 0, log p = −inf
      {-inf, -inf, -inf, -inf},      // 2: all −inf: NaN
      {1, nan, 2, 3},                // 3: NaN: the row is NaN
      {huge, -huge, 0, huge},        // 4: huge logits do not overflow
      {-huge, -huge, -huge, -huge},  // 5: equal huge logits: uniform
      {inf, -inf, 0, 1},             // 6: +inf with −inf: one-hot
      {0.5, -1, 2, 0},               // 7: ordinary
  };
  std::vector<T> x;
  for (const auto& r : rows) x.insert(x.end(), r.begin(), r.end());
  const AxisView v{static_cast<int64_t>(rows.size()), 4, 1};
  const auto p = Forward<T>(Function::kSoftmax, v, x);
  const auto lp = Forward<T>(Function::kLogSoftmax, v, x);
  auto P = [&](int r, int c) { return p[r * 4 + c]; };
  auto LP = [&](int r, int c) { return lp[r * 4 + c]; };
  const T log2 = static_cast<T>(std::log(2.0L));
  // Row r is one-hot at `hot`: p = 1 there and 0 elsewhere, log p = 0 there
  // and −inf elsewhere.
  auto expect_one_hot = [&](int r, int hot) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_EQ(P(r, c), c == hot ? 1 : 0) << "row " << r << " c " << c;
      EXPECT_EQ(LP(r, c), c == hot ? 0 : -inf) << "row " << r << " c " << c;
    }
  };

  expect_one_hot(0, 2);

  EXPECT_EQ(P(1, 0), 0);
  EXPECT_EQ(LP(1, 0), -inf);
  const RowRef ref1 = Reference({0, 1, 2});
  for (int c = 1; c < 4; ++c) {
    EXPECT_NEAR(P(1, c), ref1.p[c - 1], 8 * UlpAt<T>(ref1.p[c - 1]));
    EXPECT_NEAR(LP(1, c), ref1.log_p[c - 1], 8 * UlpAt<T>(ref1.log_p[c - 1]));
  }

  for (int c = 0; c < 4; ++c) {
    EXPECT_TRUE(std::isnan(P(2, c))) << "all −inf, c " << c;
    EXPECT_TRUE(std::isnan(LP(2, c))) << "all −inf, c " << c;
    EXPECT_TRUE(std::isnan(P(3, c))) << "NaN row, c " << c;
    EXPECT_TRUE(std::isnan(LP(3, c))) << "NaN row, c " << c;
  }

  EXPECT_EQ(P(4, 0), T(0.5));
  EXPECT_EQ(P(4, 1), 0);
  EXPECT_EQ(P(4, 2), 0);
  EXPECT_EQ(P(4, 3), T(0.5));
  EXPECT_NEAR(LP(4, 0), -log2, 2 * UlpAt<T>(log2));
  EXPECT_NEAR(LP(4, 3), -log2, 2 * UlpAt<T>(log2));
  EXPECT_NEAR(LP(4, 1), -2 * LD(huge), 2 * UlpAt<T>(2 * LD(huge)));
  EXPECT_NEAR(LP(4, 2), -LD(huge), 2 * UlpAt<T>(LD(huge)));

  for (int c = 0; c < 4; ++c) {
    EXPECT_EQ(P(5, c), T(0.25));
    EXPECT_NEAR(LP(5, c), -2 * log2, 2 * UlpAt<T>(2 * log2));
  }

  expect_one_hot(6, 0);

  // The ordinary row is untouched by its neighbours.
  const RowRef ref7 = Reference({0.5, -1, 2, 0});
  for (int c = 0; c < 4; ++c) {
    EXPECT_NEAR(P(7, c), ref7.p[c], 8 * UlpAt<T>(ref7.p[c]));
    EXPECT_NEAR(LP(7, c), ref7.log_p[c], 8 * UlpAt<T>(ref7.log_p[c]));
  }
}

// A spread of logits far beyond exp's range: nothing overflows and the
// tiny probabilities keep relative accuracy where they are normal.
TYPED_TEST(SoftmaxTest, WideLogitSpread) {
  using T = TypeParam;
  const std::vector<T> x = {T(0), T(-80), T(-200), T(-1e4), T(1e4), T(-7e3)};
  const AxisView v{1, 6, 1};
  const auto p = Forward<T>(Function::kSoftmax, v, x);
  const auto lp = Forward<T>(Function::kLogSoftmax, v, x);
  std::vector<LD> z(x.begin(), x.end());
  const RowRef ref = Reference(z);
  for (int c = 0; c < 6; ++c) {
    EXPECT_TRUE(std::isfinite(lp[c])) << c;
    EXPECT_NEAR(
        lp[c], ref.log_p[c],
        LogSoftmaxTolerance<T>(ref.log_p[c], z[c] - ref.max, ref.log_sum, 6))
        << c;
    EXPECT_NEAR(p[c], ref.p[c],
                SoftmaxTolerance<T>(ref.p[c], z[c] - ref.max, 6))
        << c;
  }
  EXPECT_EQ(p[4], 1);
  EXPECT_EQ(lp[4], 0);
  EXPECT_EQ(lp[3], T(-2e4));
}

// ---------------------------------------------------------------------------
// VJPs and Jacobians.

// Dense Jacobian of one row in long double: J[a][b] = d y_a / d z_b.
std::vector<LD> JacobianRef(Function f, const RowRef& ref) {
  const size_t n = ref.p.size();
  std::vector<LD> j(n * n);
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b < n; ++b) {
      const LD delta = a == b ? 1 : 0;
      j[a * n + b] = f == Function::kSoftmax ? ref.p[a] * (delta - ref.p[b])
                                             : delta - ref.p[b];
    }
  }
  return j;
}

// The VJP tests' inputs: logits x in [-6, 6] and upstream gradients g in
// [-2, 2] over a [3, 4, 5] tensor (seeds `seed` and seed + 1). Calls
// check(f, axis, v, x, g) for softmax and log_softmax along each axis.
template <typename T, typename Check>
void ForEachVjpCase(uint64_t seed, const Check& check) {
  const int64_t shape[] = {3, 4, 5};
  const auto x = RandomLogits<T>(60, seed, -6, 6);
  const auto g = RandomLogits<T>(60, seed + 1, -2, 2);
  for (Function f : {Function::kSoftmax, Function::kLogSoftmax}) {
    for (int axis = 0; axis < 3; ++axis) {
      check(f, axis, MakeAxisView(shape, axis), x, g);
    }
  }
}

// Row r of the VJP in long double: the row's softmax, its Jacobian J, its
// upstream gradient g, and for each b, jtg[b] = Σ_a J[a][b] g_a with
// scale[b] = Σ_a |J[a][b] g_a|.
struct VjpRef {
  RowRef row;
  std::vector<LD> j, g, jtg, scale;
};
template <typename T>
VjpRef VjpReference(Function f, AxisView v, int64_t r, const std::vector<T>& x,
                    const std::vector<T>& g) {
  VjpRef ref;
  ref.row = Reference(Row(x, v, r));
  ref.j = JacobianRef(f, ref.row);
  ref.g = Row(g, v, r);
  const int64_t n = v.size;
  ref.jtg.assign(n, 0);
  ref.scale.assign(n, 0);
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t a = 0; a < n; ++a) {
      ref.jtg[b] += ref.j[a * n + b] * ref.g[a];
      ref.scale[b] += std::fabs(ref.j[a * n + b] * ref.g[a]);
    }
  }
  return ref;
}

TYPED_TEST(SoftmaxTest, VjpIsJacobianTransposeTimesUpstream) {
  using T = TypeParam;
  ForEachVjpCase<T>(21, [](Function f, int axis, AxisView v,
                           const std::vector<T>& x, const std::vector<T>& g) {
    std::vector<T> y(60, std::numeric_limits<T>::quiet_NaN());
    SoftmaxVjp<T>(f, v, absl::MakeConstSpan(x), absl::MakeConstSpan(g),
                  absl::MakeSpan(y));
    std::vector<T> jac(v.rows() * v.size * v.size,
                       std::numeric_limits<T>::quiet_NaN());
    SoftmaxJacobian<T>(f, v, absl::MakeConstSpan(x), absl::MakeSpan(jac));
    const int64_t n = v.size;
    for (int64_t r = 0; r < v.rows(); ++r) {
      const VjpRef ref = VjpReference(f, v, r, x, g);
      for (int64_t b = 0; b < n; ++b) {
        const LD tol =
            (4 + 2 * n) * kEps<T> * ref.scale[b] + 4 * UlpAt<T>(ref.jtg[b]);
        EXPECT_NEAR(y[Index(v, r, b)], ref.jtg[b], tol)
            << FunctionName(f) << " axis " << axis << " row " << r << " b "
            << b;
      }
      // The dense Jacobian itself.
      for (int64_t a = 0; a < n; ++a) {
        for (int64_t b = 0; b < n; ++b) {
          const LD want = ref.j[a * n + b];
          const LD scale =
              f == Function::kSoftmax
                  ? ref.row.p[a] * ((a == b ? 1 : 0) + ref.row.p[b])
                  : (a == b ? 1 : 0) + ref.row.p[b];
          EXPECT_NEAR(jac[(r * n + a) * n + b], want,
                      (8 + n) * kEps<T> * scale + std::numeric_limits<T>::min())
              << FunctionName(f) << " axis " << axis << " row " << r << " J["
              << a << "][" << b << "]";
        }
      }
    }
    // In place: y aliasing x, and y aliasing g.
    ExpectSameBitsInPlace(x, "x", g, "g", y, [&](auto in, auto grad, auto out) {
      SoftmaxVjp<T>(f, v, in, grad, out);
    });
  });
}

// SoftmaxVjpFromOutput on every axis (rows of up to kSoftmaxColumnMaxClasses
// values, as here, on the SIMD column kernel in either layout; longer rows
// on the SIMD row kernel, strided ones in tiles), given the forward output: the
// same VJP as Jᵀg up to what the rounding of y carries (the tolerance adds
// y's condition: p_b (|g_b| + Σ_a p_a |g_a|) for softmax,
// p_b (1 + |log p_b|) Σ_a |g_a| for log_softmax); in place on y and on g
// gives the same bits.
TYPED_TEST(SoftmaxTest, VjpFromOutputIsJacobianTransposeTimesUpstream) {
  using T = TypeParam;
  ForEachVjpCase<T>(31, [](Function f, int axis, AxisView v,
                           const std::vector<T>& x, const std::vector<T>& g) {
    const bool log = f == Function::kLogSoftmax;
    const std::vector<T> y = Forward(f, v, x);
    std::vector<T> dx(60, std::numeric_limits<T>::quiet_NaN());
    SoftmaxVjpFromOutput<T>(f, v, absl::MakeConstSpan(y),
                            absl::MakeConstSpan(g), absl::MakeSpan(dx));
    const int64_t n = v.size;
    for (int64_t r = 0; r < v.rows(); ++r) {
      const VjpRef ref = VjpReference(f, v, r, x, g);
      LD abs_dot = 0, abs_sum = 0;
      for (int64_t a = 0; a < n; ++a) {
        abs_dot += ref.row.p[a] * std::fabs(ref.g[a]);
        abs_sum += std::fabs(ref.g[a]);
      }
      for (int64_t b = 0; b < n; ++b) {
        const LD scale =
            ref.scale[b] +
            (log ? ref.row.p[b] * (1 + std::fabs(ref.row.log_p[b])) * abs_sum
                 : ref.row.p[b] * (std::fabs(ref.g[b]) + abs_dot));
        const LD tol = (4 + 2 * n) * kEps<T> * scale + 4 * UlpAt<T>(ref.jtg[b]);
        EXPECT_NEAR(dx[Index(v, r, b)], ref.jtg[b], tol)
            << FunctionName(f) << " axis " << axis << " row " << r << " b "
            << b;
      }
    }
    // In place: dx aliasing y, and dx aliasing g.
    ExpectSameBitsInPlace(y, "y", g, "g", dx,
                          [&](auto in, auto grad, auto out) {
                            SoftmaxVjpFromOutput<T>(f, v, in, grad, out);
                          });
  });
}

// Eigenvalues of a small symmetric matrix by cyclic Jacobi rotations.
std::vector<LD> SymmetricEigenvalues(std::vector<LD> a, int n) {
  auto at = [&](int i, int j) -> LD& { return a[i * n + j]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    LD off = 0;
    for (int i = 0; i < n; ++i) {
      for (int j = i + 1; j < n; ++j) off += at(i, j) * at(i, j);
    }
    if (off < 1e-60L) break;
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) {
        if (at(p, q) == 0) continue;
        const LD theta = (at(q, q) - at(p, p)) / (2 * at(p, q));
        const LD t = (theta >= 0 ? 1 : -1) /
                     (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const LD c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) {  // A ← A·R
          const LD akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - s * akq;
          at(k, q) = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // A ← Rᵀ·A
          const LD apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - s * aqk;
          at(q, k) = s * apk + c * aqk;
        }
      }
    }
  }
  std::vector<LD> eig(n);
  for (int i = 0; i < n; ++i) eig[i] = at(i, i);
  std::sort(eig.begin(), eig.end());
  return eig;
}

TEST(JacobiTest, KnownSpectrum) {
  // [[2,1,0],[1,2,1],[0,1,2]]: 2 − √2, 2, 2 + √2.
  const auto e = SymmetricEigenvalues({2, 1, 0, 1, 2, 1, 0, 1, 2}, 3);
  EXPECT_NEAR(static_cast<double>(e[0]), 2 - std::sqrt(2.0), 1e-15);
  EXPECT_NEAR(static_cast<double>(e[1]), 2, 1e-15);
  EXPECT_NEAR(static_cast<double>(e[2]), 2 + std::sqrt(2.0), 1e-15);
}

// SPEC.md §1 "where the seed is wrong", items 1 and 2, on the core's J.
TYPED_TEST(SoftmaxTest, JacobianIsSymmetricPsdWithKernelOne) {
  using T = TypeParam;
  Random random(31);
  for (int64_t n : {2, 3, 4, 5, 8, 13}) {
    for (int trial = 0; trial < 20; ++trial) {
      const auto x = RandomLogits<T>(n, 1000 * n + trial, -2, 2);
      const AxisView v{1, n, 1};
      std::vector<T> jac(n * n);
      SoftmaxJacobian<T>(Function::kSoftmax, v, absl::MakeConstSpan(x),
                         absl::MakeSpan(jac));
      const RowRef ref = Reference(std::vector<LD>(x.begin(), x.end()));
      const LD max_p = *std::max_element(ref.p.begin(), ref.p.end());
      const LD tol = 8 * n * kEps<T>;
      std::vector<LD> j(jac.begin(), jac.end());
      for (int64_t a = 0; a < n; ++a) {
        LD row_sum = 0;
        for (int64_t b = 0; b < n; ++b) {
          EXPECT_NEAR(j[a * n + b], j[b * n + a], 2 * UlpAt<T>(j[a * n + b]))
              << "symmetric, n " << n;
          row_sum += j[a * n + b];
        }
        EXPECT_NEAR(row_sum, 0, tol) << "J·1 = 0, n " << n;
      }
      // vᵀJv = Var_p(v) >= 0 (positive, not negative, semidefinite).
      for (int k = 0; k < 10; ++k) {
        std::vector<LD> vec(n);
        for (auto& e : vec) e = random.Uniform(-3, 3);
        LD quad = 0, mean = 0, second = 0, scale = 0;
        for (int64_t a = 0; a < n; ++a) {
          for (int64_t b = 0; b < n; ++b) {
            quad += vec[a] * j[a * n + b] * vec[b];
            scale += std::fabs(vec[a] * j[a * n + b] * vec[b]);
          }
          mean += ref.p[a] * vec[a];
          second += ref.p[a] * vec[a] * vec[a];
        }
        const LD var = second - mean * mean;
        EXPECT_GE(quad, -4 * kEps<T> * scale) << "n " << n;
        EXPECT_NEAR(quad, var, 4 * n * kEps<T> * scale) << "n " << n;
      }
      // Spectrum: one 0 (eigenvector 1), the others interlace the sorted
      // p: p(1) <= μ1 <= p(2) <= ... <= μ(n−1) <= p(n) = max p. So they
      // lie in [0, max p], the rank is n − 1, and they are not the p_i:
      // their sum is the trace 1 − Σp² < 1 = Σp.
      std::vector<LD> sym(n * n);
      for (int64_t a = 0; a < n; ++a) {
        for (int64_t b = 0; b < n; ++b) {
          sym[a * n + b] = (j[a * n + b] + j[b * n + a]) / 2;
        }
      }
      const std::vector<LD> mu = SymmetricEigenvalues(sym, n);
      std::vector<LD> p_sorted = ref.p;
      std::sort(p_sorted.begin(), p_sorted.end());
      EXPECT_NEAR(mu[0], 0, tol) << "n " << n;
      int rank = 0;
      LD trace = 0, sum_p2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_GE(mu[i], -tol);
        EXPECT_LE(mu[i], max_p + tol);
        if (mu[i] > tol) ++rank;
        trace += mu[i];
        sum_p2 += ref.p[i] * ref.p[i];
        if (i >= 1) {
          EXPECT_GE(mu[i], p_sorted[i - 1] - tol) << "interlacing, n " << n;
          EXPECT_LE(mu[i], p_sorted[i] + tol) << "interlacing, n " << n;
        }
      }
      EXPECT_EQ(rank, n - 1) << "n " << n;
      EXPECT_NEAR(trace, 1 - sum_p2, tol);
      EXPECT_LT(trace, 1 - 1e-3);
    }
  }
}

TYPED_TEST(SoftmaxTest, LogSoftmaxJacobianRowsSumToZero) {
  using T = TypeParam;
  const int64_t n = 6;
  const auto x = RandomLogits<T>(n, 77);
  std::vector<T> jac(n * n);
  SoftmaxJacobian<T>(Function::kLogSoftmax, AxisView{1, n, 1},
                     absl::MakeConstSpan(x), absl::MakeSpan(jac));
  for (int64_t a = 0; a < n; ++a) {
    LD sum = 0;
    for (int64_t b = 0; b < n; ++b) sum += jac[a * n + b];
    EXPECT_NEAR(sum, 0, 8 * n * kEps<T>);
  }
}

}  // namespace
}  // namespace test
}  // namespace actsvc
