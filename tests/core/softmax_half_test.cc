// Softmax, log_softmax, their VJPs and Jacobians, and the softmax
// cross-entropy in float16 and bfloat16, on every instruction set compiled
// in and supported here: rows of random half values against a long double
// reference. The bounds (core/softmax.h, docs/accuracy.md):
//  - softmax, log_softmax, the Jacobian, probabilities and the loss: within
//    1 ULP of the half type of the true value (a subnormal result within
//    one subnormal step; a loss beyond the type's range is +inf);
//  - the VJPs and the gradient, which cancel: 1 ULP of the half type plus
//    the float32 kernels' own condition term, 16 float32 ULPs of the sum of
//    the magnitudes that cancel.
// The output prints the share of results that are correctly rounded.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/half.h"
#include "core/reference.h"
#include "core/softmax.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

using LD = long double;

// float32's unit roundoff, in which the half kernels compute.
constexpr LD kEps32 = 0x1p-24L;

template <typename H>
LD HalfUlp(LD v) {
  const int min_exp = HalfFormat<H>::kMinExponent;
  const int e = std::max(std::ilogb(std::fabs(v)), min_exp);
  return std::ldexp(LD(1), e - (HalfFormat<H>::kDigits - 1));
}

// Checks got against want within 1 half ULP of want (one subnormal step
// below the normal range, where HalfUlp gives that step) plus `extra`.
struct Check {
  size_t total = 0, correctly_rounded = 0, failures = 0;
  std::string first;

  template <typename H>
  void Add(H got, LD want, LD extra, const std::string& where) {
    ++total;
    const double g = HalfToFloat(got);
    correctly_rounded +=
        HalfBits(got) == HalfBits(HalfFromDouble<H>(static_cast<double>(want)));
    // The magnitude from which a value rounds to inf: max + ulp(max)/2.
    const LD overflow =
        std::ldexp(LD(2) - std::ldexp(LD(1), -HalfFormat<H>::kDigits),
                   HalfFormat<H>::kMaxExponent);
    bool ok;
    if (std::isnan(want)) {
      ok = std::isnan(g);
    } else if (std::fabs(want) >= overflow) {
      ok = std::isinf(g) && (g > 0) == (want > 0);
    } else {
      ok = std::fabs(LD(g) - want) <= HalfUlp<H>(want) + extra;
    }
    if (!ok && ++failures <= 5) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "\n  %s got %.9g want %.12Lg",
                    where.c_str(), g, want);
      first += buf;
    }
  }
};

template <typename H>
std::vector<H> RandomHalves(size_t n, Random& rng, double lo, double hi) {
  std::vector<H> v(n);
  for (H& h : v) h = HalfFromDouble<H>(rng.Uniform(lo, hi));
  return v;
}

template <typename H>
std::vector<LD> Wide(const std::vector<H>& h) {
  std::vector<LD> w(h.size());
  for (size_t i = 0; i < h.size(); ++i) w[i] = HalfToFloat(h[i]);
  return w;
}

// Float16 and BFloat16, named as HalfFormat names them.
template <typename H>
class SoftmaxHalfTest : public ::testing::Test {};
struct HalfNames {
  template <typename H>
  static std::string GetName(int) {
    return HalfFormat<H>::kName;
  }
};
using HalfTypes = ::testing::Types<Float16, BFloat16>;
TYPED_TEST_SUITE(SoftmaxHalfTest, HalfTypes, HalfNames);

// Prints how many of `c`'s values were correctly rounded, and expects no
// failures.
template <typename H>
void Report(const char* what, int64_t target, const Check& c) {
  std::printf("%-7s %-8s %-26s correctly rounded %zu of %zu\n",
              hwy::TargetName(target), HalfFormat<H>::kName, what,
              c.correctly_rounded, c.total);
  EXPECT_EQ(c.failures, 0u)
      << hwy::TargetName(target) << " " << what << c.first;
}

// Layouts: [rows, classes] along the last axis and [outer, classes, inner]
// along the middle one (the strided kernels).
struct Layout {
  int64_t outer, size, inner;
};
const Layout kLayouts[] = {{7, 1, 1},   {5, 5, 1},    {9, 32, 1},    {3, 33, 3},
                           {4, 257, 1}, {2, 1000, 5}, {1, 100000, 1}};

TYPED_TEST(SoftmaxHalfTest, Rows) {
  using H = TypeParam;
  ForEachTarget([&](int64_t target) {
    Check fwd, vjp, jac;
    Random rng(17);
    for (const Layout& l : kLayouts) {
      const AxisView v{l.outer, l.size, l.inner};
      const size_t n = static_cast<size_t>(v.elements());
      const std::vector<H> x = RandomHalves<H>(n, rng, -8, 8);
      const std::vector<H> g = RandomHalves<H>(n, rng, -2, 2);
      for (Function f : {Function::kSoftmax, Function::kLogSoftmax}) {
        const bool log = f == Function::kLogSoftmax;
        std::vector<H> y(n), dx(n);
        SoftmaxForward<H>(f, v, x, absl::MakeSpan(y));
        SoftmaxVjp<H>(f, v, x, g, absl::MakeSpan(dx));
        const bool dense = l.size <= 64;
        std::vector<H> j(dense ? v.rows() * l.size * l.size : 0);
        if (dense) SoftmaxJacobian<H>(f, v, x, absl::MakeSpan(j));
        std::vector<double> xd(l.size);
        std::vector<LD> p, log_p;
        for (int64_t o = 0; o < l.outer; ++o) {
          for (int64_t i = 0; i < l.inner; ++i) {
            const int64_t base = o * l.size * l.inner + i;
            for (int64_t c = 0; c < l.size; ++c) {
              xd[c] = HalfToFloat(x[base + c * l.inner]);
            }
            reference::SoftmaxRowProbabilities<double>(xd.data(), l.size, 1, p,
                                                       log_p);
            LD dot = 0, sum_g = 0, mag = 0;
            for (int64_t c = 0; c < l.size; ++c) {
              const LD gc = HalfToFloat(g[base + c * l.inner]);
              dot += gc * p[c];
              sum_g += gc;
              mag += std::fabs(gc) * (log ? 1 : p[c]);
            }
            const std::string where = std::string(FunctionName(f)) + " [" +
                                      std::to_string(l.outer) + "," +
                                      std::to_string(l.size) + "," +
                                      std::to_string(l.inner) + "]";
            for (int64_t c = 0; c < l.size; ++c) {
              const int64_t at = base + c * l.inner;
              fwd.Add(y[at], log ? log_p[c] : p[c], 0, where);
              const LD gc = HalfToFloat(g[at]);
              const LD want = log ? gc - p[c] * sum_g : p[c] * (gc - dot);
              const LD cond = log ? std::fabs(gc) + p[c] * mag
                                  : p[c] * (std::fabs(gc) + mag);
              vjp.Add(dx[at], want, 16 * kEps32 * cond, where + " vjp");
            }
            if (!dense) continue;
            const int64_t row = o * l.inner + i;
            for (int64_t a = 0; a < l.size; ++a) {
              for (int64_t b = 0; b < l.size; ++b) {
                const LD delta = a == b ? 1 : 0;
                const LD want = log ? delta - p[b] : p[a] * (delta - p[b]);
                jac.Add(j[(row * l.size + a) * l.size + b], want, 0,
                        where + " jacobian");
              }
            }
          }
        }
      }
    }
    Report<H>("softmax, log_softmax", target, fwd);
    Report<H>("their VJPs", target, vjp);
    Report<H>("their Jacobians", target, jac);
  });
}

// Cross-entropy with class indices and with probability targets, loss
// reduced as NONE (per row), and the SUM and MEAN reductions over the same
// rows. The probabilities and per-row loss: 1 half ULP; the gradient
// p Σy − y: 1 half ULP plus 16 float32 ULPs of p Σy + y.
TYPED_TEST(SoftmaxHalfTest, CrossEntropy) {
  using H = TypeParam;
  ForEachTarget([&](int64_t target) {
    Check loss_c, grad_c, prob_c, reduced_c;
    Random rng(23);
    for (int64_t classes : {1, 3, 10, 100, 1000, 100000}) {
      const int64_t rows = classes >= 1000 ? 2 : 6;
      const size_t n = static_cast<size_t>(rows * classes);
      const std::vector<H> z = RandomHalves<H>(n, rng, -10, 10);
      std::vector<H> t = RandomHalves<H>(n, rng, 0, 1);
      std::vector<int64_t> labels(rows);
      for (int64_t& k : labels) k = rng.Int(0, classes - 1);
      for (bool by_index : {true, false}) {
        std::vector<H> row_loss(rows), grad(n), probs(n);
        const CrossEntropyPartial part = CrossEntropyRows<H>(
            classes, z,
            by_index ? absl::MakeConstSpan(labels)
                     : absl::Span<const int64_t>(),
            by_index ? absl::Span<const H>() : absl::MakeConstSpan(t), {},
            absl::MakeSpan(row_loss), absl::MakeSpan(grad),
            absl::MakeSpan(probs), 0, rows);
        ASSERT_EQ(part.counted_rows, rows);
        LD total = 0;
        std::vector<double> zd(classes);
        std::vector<LD> p, log_p;
        const std::string where = std::string(by_index ? "indices" : "probs") +
                                  " C=" + std::to_string(classes);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < classes; ++c) {
            zd[c] = HalfToFloat(z[r * classes + c]);
          }
          reference::SoftmaxRowProbabilities<double>(zd.data(), classes, 1, p,
                                                     log_p);
          LD loss = 0, sum_y = 0;
          std::vector<LD> y(classes);
          for (int64_t c = 0; c < classes; ++c) {
            y[c] = by_index ? LD(labels[r] == c)
                            : LD(HalfToFloat(t[r * classes + c]));
            sum_y += y[c];
            loss -= y[c] * log_p[c];
          }
          total += loss;
          loss_c.Add(row_loss[r], loss, 0, where);
          for (int64_t c = 0; c < classes; ++c) {
            const size_t at = static_cast<size_t>(r * classes + c);
            prob_c.Add(probs[at], p[c], 0, where);
            grad_c.Add(grad[at], p[c] * sum_y - y[c],
                       16 * kEps32 * (p[c] * sum_y + y[c]), where);
          }
        }
        // SUM and MEAN of the same rows (MEAN divides the gradient too).
        std::vector<H> loss1(1);
        ReduceCrossEntropy<H>(Reduction::kSum, part, absl::MakeSpan(grad),
                              absl::MakeSpan(loss1));
        reduced_c.Add(loss1[0], total, 0, where + " sum");
        const std::vector<H> unreduced = grad;
        ReduceCrossEntropy<H>(Reduction::kMean, part, absl::MakeSpan(grad),
                              absl::MakeSpan(loss1));
        reduced_c.Add(loss1[0], total / rows, 0, where + " mean");
        for (size_t i = 0; i < n; ++i) {
          reduced_c.Add(grad[i], LD(HalfToFloat(unreduced[i])) / rows, 0,
                        where + " mean grad");
        }
      }
    }
    Report<H>("cross-entropy loss", target, loss_c);
    Report<H>("cross-entropy gradient", target, grad_c);
    Report<H>("cross-entropy probabilities", target, prob_c);
    Report<H>("cross-entropy reductions", target, reduced_c);
  });
}

// IEEE rows: NaN gives a NaN row, one +inf a one-hot row, all −inf NaN.
TYPED_TEST(SoftmaxHalfTest, SpecialRows) {
  using H = TypeParam;
  const H nan = HalfFromDouble<H>(NAN), inf = HalfFromDouble<H>(INFINITY);
  const H one = HalfFromDouble<H>(1), ninf = HalfFromDouble<H>(-INFINITY);
  const std::vector<H> x = {one,       nan,  one, /**/ one, inf, one,
                            /**/ ninf, ninf, ninf};
  std::vector<H> y(x.size());
  SoftmaxForward<H>(Function::kSoftmax, AxisView{3, 3, 1}, x,
                    absl::MakeSpan(y));
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE(std::isnan(HalfToFloat(y[c])));
    EXPECT_EQ(HalfToFloat(y[3 + c]), c == 1 ? 1.0f : 0.0f);
    EXPECT_TRUE(std::isnan(HalfToFloat(y[6 + c])));
  }
}

}  // namespace
}  // namespace test
}  // namespace actsvc
