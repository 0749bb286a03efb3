// Softmax cross-entropy (CrossEntropyRows + ReduceCrossEntropy) against a
// long double reference, PyTorch's definitions of label smoothing and
// ignore_index, complex-step derivatives of the loss, the composition of
// log_softmax and −Σ y·log p, and extreme logits.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/softmax.h"
#include "gtest/gtest.h"
#include "tests/core/accuracy.h"
#include "tests/core/oracle.h"
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

using LD = long double;
// Labels of a batch: class indices or probability rows (exactly one).
template <typename T>
struct Labels {
  std::vector<int64_t> indices;
  std::vector<T> probs;
};

// What the core returns for a batch.
template <typename T>
struct Result {
  std::vector<T> row_loss, grad, probs, loss;
  CrossEntropyPartial partial;
};

template <typename T>
Result<T> Run(int64_t classes, const std::vector<T>& logits,
              const Labels<T>& labels, const CrossEntropyOptions& options,
              Reduction reduction) {
  const int64_t rows = logits.size() / classes;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Result<T> r;
  r.row_loss.assign(rows, nan);
  r.grad.assign(logits.size(), nan);
  r.probs.assign(logits.size(), nan);
  r.partial = CrossEntropyRows<T>(
      classes, absl::MakeConstSpan(logits), absl::MakeConstSpan(labels.indices),
      absl::MakeConstSpan(labels.probs), options, absl::MakeSpan(r.row_loss),
      absl::MakeSpan(r.grad), absl::MakeSpan(r.probs), 0, rows);
  if (reduction == Reduction::kNone) {
    r.loss = r.row_loss;
    ReduceCrossEntropy<T>(reduction, r.partial, absl::MakeSpan(r.grad),
                          absl::MakeSpan(r.loss));
  } else {
    r.loss.assign(1, nan);
    ReduceCrossEntropy<T>(reduction, r.partial, absl::MakeSpan(r.grad),
                          absl::MakeSpan(r.loss));
  }
  return r;
}

// The reference of SPEC.md §1 in long double, smoothing as PyTorch:
// y' = (1 − ε)·y + ε/C; ignored rows contribute nothing.
struct RowExpect {
  bool ignored = false;
  LD loss = 0;
  LD loss_scale = 0;  // Σ |y_c|(|lse − max| + |z_c − max|): for tolerances
  std::vector<LD> grad, p;
};

template <typename T>
std::vector<RowExpect> Expect(int64_t classes, const std::vector<T>& logits,
                              const Labels<T>& labels,
                              const CrossEntropyOptions& options) {
  const int64_t rows = logits.size() / classes;
  std::vector<RowExpect> out(rows);
  const LD eps = options.label_smoothing;
  for (int64_t r = 0; r < rows; ++r) {
    RowExpect& e = out[r];
    const T* z = logits.data() + r * classes;
    const auto [arg_max, m, rest] =
        FirstMaxAndRest<LD>(z, classes, [](LD v) { return std::exp(v); });
    const LD log_sum = std::log1p(rest);  // lse − max, keeps small values
    for (int64_t c = 0; c < classes; ++c) {
      e.p.push_back(std::exp(z[c] - m) / (1 + rest));
    }
    if (labels.probs.empty() && options.ignore_index &&
        labels.indices[r] == *options.ignore_index) {
      e.ignored = true;
      e.grad.assign(classes, 0);
      continue;
    }
    std::vector<LD> y(classes);
    LD sum_y = 0;
    for (int64_t c = 0; c < classes; ++c) {
      const LD t = labels.probs.empty()
                       ? (labels.indices[r] == c ? 1 : 0)
                       : static_cast<LD>(labels.probs[r * classes + c]);
      y[c] = (1 - eps) * t + eps / classes;
      sum_y += y[c];
    }
    for (int64_t c = 0; c < classes; ++c) {
      // y_c (lse − z_c) = y_c (log_sum − (z_c − m)).
      e.loss += y[c] * (log_sum - (z[c] - m));
      e.loss_scale += std::fabs(y[c]) * (log_sum + std::fabs(z[c] - m));
      e.grad.push_back(e.p[c] * sum_y - y[c]);
    }
  }
  return out;
}

template <typename T>
LD LossTolerance(const RowExpect& e, int64_t classes) {
  return (4 + classes) * kEps<T> * e.loss_scale + 4 * UlpAt<T>(e.loss);
}
template <typename T>
LD GradTolerance(LD want, LD p, int64_t classes) {
  return (4 + classes) * kEps<T> * (std::fabs(p) + std::fabs(want)) +
         4 * UlpAt<T>(want);
}

template <typename T>
std::vector<T> RandomLogits(size_t n, uint64_t seed, double lo = -5,
                            double hi = 5) {
  return RandomValues<T>(n, seed, lo, hi);
}

template <typename T>
std::vector<T> RandomDistributions(int64_t rows, int64_t classes, uint64_t seed,
                                   double total = 1) {
  Random random(seed);
  std::vector<T> y(rows * classes);
  for (int64_t r = 0; r < rows; ++r) {
    LD sum = 0;
    for (int64_t c = 0; c < classes; ++c) {
      y[r * classes + c] = static_cast<T>(random.Uniform(0, 1));
      sum += y[r * classes + c];
    }
    for (int64_t c = 0; c < classes; ++c) {
      y[r * classes + c] = static_cast<T>(y[r * classes + c] / sum * total);
    }
  }
  return y;
}

template <typename T>
void CheckRows(const char* what, int64_t classes, const std::vector<T>& logits,
               const Labels<T>& labels, const CrossEntropyOptions& options) {
  const auto want = Expect<T>(classes, logits, labels, options);
  const auto got = Run<T>(classes, logits, labels, options, Reduction::kNone);
  int64_t counted = 0;
  LD loss_sum = 0;
  for (size_t r = 0; r < want.size(); ++r) {
    const RowExpect& e = want[r];
    counted += e.ignored ? 0 : 1;
    loss_sum += e.loss;
    EXPECT_NEAR(got.row_loss[r], e.loss, LossTolerance<T>(e, classes))
        << what << " row " << r;
    EXPECT_GE(got.row_loss[r], 0) << what << " row " << r;
    for (int64_t c = 0; c < classes; ++c) {
      const size_t k = r * classes + c;
      EXPECT_NEAR(got.grad[k], e.grad[c],
                  GradTolerance<T>(e.grad[c], e.p[c], classes))
          << what << " row " << r << " class " << c;
      EXPECT_NEAR(
          got.probs[k], e.p[c],
          (4 + classes) * kEps<T> * e.p[c] + std::numeric_limits<T>::min())
          << what << " row " << r << " class " << c;
    }
  }
  EXPECT_EQ(got.partial.counted_rows, counted) << what;
  EXPECT_NEAR(static_cast<double>(got.partial.loss_sum),
              static_cast<double>(loss_sum),
              static_cast<double>(8 * kEps<T> * (loss_sum + 1)))
      << what;
}

template <typename T>
class CrossEntropyTest : public ::testing::Test {};
TYPED_TEST_SUITE(CrossEntropyTest, FloatTypes, DtypeNames);

TYPED_TEST(CrossEntropyTest, ClassIndices) {
  using T = TypeParam;
  for (int64_t classes : {1, 2, 3, 7, 64}) {
    const int64_t rows = 9;
    Labels<T> labels;
    Random random(classes);
    for (int64_t r = 0; r < rows; ++r) {
      labels.indices.push_back(random.Int(0, classes - 1));
    }
    CheckRows<T>("indices", classes, RandomLogits<T>(rows * classes, classes),
                 labels, {});
  }
}

TYPED_TEST(CrossEntropyTest, Probabilities) {
  using T = TypeParam;
  const int64_t classes = 6, rows = 8;
  const auto logits = RandomLogits<T>(rows * classes, 3);
  for (double total : {1.0, 0.7, 2.0}) {  // Σy ≠ 1: grad = p·Σy − y
    Labels<T> labels;
    labels.probs = RandomDistributions<T>(rows, classes, 4, total);
    CheckRows<T>("probabilities", classes, logits, labels, {});
  }
}

// One logit far above the others (p_k = 1 − O(1e-12) in float32, 1 −
// O(1e-25) in float64): the loss, about lse = log1p(rest), keeps its
// relative accuracy (LossTolerance scales with it; folding lse into m + lse
// lost it), with smoothing (label at the top class or not) and with
// probability targets equal to p rounded to T. grad_k = p_k Σy − y_k is
// formed as (Σ_{c≠k} y_c − y_k rest) / (1 + rest) and checked to 4 ULP
// against __float128 where the labels are class indices; with the rounded-p
// targets it is a difference of rounding errors (|grad_k| ~ 1e-19 in
// float32) and is held to CheckRows' tolerance only: rest comes from the
// SIMD kernel's float32 e^(z − m), not from a wider type.
TYPED_TEST(CrossEntropyTest, DominantLogitKeepsGradientDigits) {
  using T = TypeParam;
  const int64_t classes = 37, rows = 6;
  const T top = sizeof(T) == 4 ? T(30) : T(60);
  std::vector<T> logits = RandomLogits<T>(rows * classes, 90, -2, 2);
  for (int64_t r = 0; r < rows; ++r)
    logits[r * classes + (5 * r) % classes] = top;
  auto quad_p = [&](int64_t r, int64_t c) {
    const T* z = logits.data() + r * classes;
    const T m = *std::max_element(z, z + classes);
    Quad sum = 0;
    for (int64_t i = 0; i < classes; ++i) sum += expq(Quad(z[i]) - Quad(m));
    return expq(Quad(z[c]) - Quad(m)) / sum;
  };
  for (int kind = 0; kind < 3; ++kind) {
    Labels<T> labels;
    CrossEntropyOptions options;
    if (kind < 2) {
      // kind 0: the label is the top class; kind 1: another class.
      options.label_smoothing = 0.1;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t k = (5 * r) % classes;
        labels.indices.push_back(kind == 0 ? k : (k + 3) % classes);
      }
    } else {
      // Targets: p itself, rounded to T (Σy ≈ 1, y_k ≈ p_k).
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < classes; ++c) {
          labels.probs.push_back(static_cast<T>(quad_p(r, c)));
        }
      }
    }
    CheckRows<T>("dominant logit", classes, logits, labels, options);
    const auto got = Run<T>(classes, logits, labels, options, Reduction::kNone);
    const Quad eps = options.label_smoothing;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t k = (5 * r) % classes;
      Quad sum_y = 0, y_k = 0;
      for (int64_t c = 0; c < classes; ++c) {
        const Quad t = labels.probs.empty()
                           ? Quad(labels.indices[r] == c ? 1 : 0)
                           : Quad(labels.probs[r * classes + c]);
        const Quad y = (1 - eps) * t + eps / classes;
        sum_y += y;
        if (c == k) y_k = y;
      }
      if (kind == 2) continue;
      const Quad want = quad_p(r, k) * sum_y - y_k;
      const Verdict v = Judge<T>(got.grad[r * classes + k], want, 4, 0);
      EXPECT_TRUE(v.ok) << "kind " << kind << " row " << r << ": grad_k "
                        << Describe<T>(got.grad[r * classes + k]) << " want "
                        << Describe(want) << " (" << v.ulp << " ULP)";
    }
  }
}

// Class indices equal their one-hot probability rows.
TYPED_TEST(CrossEntropyTest, IndicesEqualOneHot) {
  using T = TypeParam;
  const int64_t classes = 5, rows = 6;
  const auto logits = RandomLogits<T>(rows * classes, 8);
  Labels<T> by_index, one_hot;
  one_hot.probs.assign(rows * classes, 0);
  for (int64_t r = 0; r < rows; ++r) {
    by_index.indices.push_back(r % classes);
    one_hot.probs[r * classes + r % classes] = 1;
  }
  for (double smoothing : {0.0, 0.2}) {
    CrossEntropyOptions options;
    options.label_smoothing = smoothing;
    const auto a = Run<T>(classes, logits, by_index, options, Reduction::kNone);
    const auto b = Run<T>(classes, logits, one_hot, options, Reduction::kNone);
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_NEAR(a.row_loss[r], b.row_loss[r], 2 * UlpAt<T>(a.row_loss[r]));
    }
    for (size_t k = 0; k < a.grad.size(); ++k) {
      EXPECT_NEAR(a.grad[k], b.grad[k], 2 * UlpAt<T>(a.grad[k]));
    }
  }
}

TYPED_TEST(CrossEntropyTest, Reductions) {
  using T = TypeParam;
  const int64_t classes = 4, rows = 5;
  const auto logits = RandomLogits<T>(rows * classes, 12);
  Labels<T> labels;
  labels.indices = {0, 3, 1, 1, 2};
  const auto none = Run<T>(classes, logits, labels, {}, Reduction::kNone);
  const auto sum = Run<T>(classes, logits, labels, {}, Reduction::kSum);
  const auto mean = Run<T>(classes, logits, labels, {}, Reduction::kMean);
  LD total = 0;
  for (T l : none.row_loss) total += l;
  ASSERT_EQ(sum.loss.size(), 1u);
  ASSERT_EQ(mean.loss.size(), 1u);
  EXPECT_NEAR(sum.loss[0], total, 8 * UlpAt<T>(total));
  EXPECT_NEAR(mean.loss[0], total / rows, 8 * UlpAt<T>(total / rows));
  for (size_t k = 0; k < none.grad.size(); ++k) {
    EXPECT_EQ(sum.grad[k], none.grad[k]) << "sum leaves the gradient";
    EXPECT_NEAR(mean.grad[k], LD(none.grad[k]) / rows,
                2 * UlpAt<T>(LD(none.grad[k]) / rows))
        << "mean divides the gradient by the rows";
  }
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(none.loss[r], none.row_loss[r]) << "none leaves the losses";
  }
}

// PyTorch: y' = (1 − ε)·onehot + ε/C, for indices and for probabilities.
TYPED_TEST(CrossEntropyTest, LabelSmoothingAsPyTorch) {
  using T = TypeParam;
  {
    // F.cross_entropy([[1., 2., 3.]], [0], label_smoothing=0.1)
    //   = 0.9·(−log p0) + 0.1·mean_c(−log p_c) = lse − Σ y'z = 2.30760596.
    Labels<T> labels;
    labels.indices = {0};
    CrossEntropyOptions options;
    options.label_smoothing = 0.1;
    const auto r =
        Run<T>(3, {T(1), T(2), T(3)}, labels, options, Reduction::kMean);
    const LD lse = 3 + std::log1p(std::exp(-1.0L) + std::exp(-2.0L));
    EXPECT_NEAR(r.loss[0], lse - 1.1L, 4 * UlpAt<T>(lse - 1.1L));
    EXPECT_NEAR(r.loss[0], 2.30760596, 1e-6);
  }
  const int64_t classes = 7, rows = 6;
  const auto logits = RandomLogits<T>(rows * classes, 40);
  for (double eps : {0.05, 0.3, 0.9}) {
    CrossEntropyOptions options;
    options.label_smoothing = eps;
    Labels<T> by_index;
    for (int64_t r = 0; r < rows; ++r) by_index.indices.push_back(r);
    CheckRows<T>("smoothed indices", classes, logits, by_index, options);
    Labels<T> soft;
    soft.probs = RandomDistributions<T>(rows, classes, 41);
    CheckRows<T>("smoothed probabilities", classes, logits, soft, options);
    // Smoothing is the same as passing the smoothed distribution.
    Labels<T> explicit_targets;
    explicit_targets.probs.assign(rows * classes, 0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < classes; ++c) {
        explicit_targets.probs[r * classes + c] = static_cast<T>(
            (1 - LD(eps)) * (c == r ? 1 : 0) + LD(eps) / classes);
      }
    }
    const auto a = Run<T>(classes, logits, by_index, options, Reduction::kSum);
    const auto b =
        Run<T>(classes, logits, explicit_targets, {}, Reduction::kSum);
    EXPECT_NEAR(a.loss[0], b.loss[0], 16 * kEps<T> * std::fabs(b.loss[0]));
  }
}

// ignore_index: a negative sentinel and a valid class, as PyTorch allows.
TYPED_TEST(CrossEntropyTest, IgnoreIndex) {
  using T = TypeParam;
  const int64_t classes = 4, rows = 6;
  const auto logits = RandomLogits<T>(rows * classes, 50);
  for (int64_t ignore : {int64_t{-100}, int64_t{2}}) {
    CrossEntropyOptions options;
    options.ignore_index = ignore;
    Labels<T> labels;
    labels.indices = {0, ignore, 3, ignore, 1, ignore == 2 ? 0 : 2};
    CheckRows<T>("ignore_index", classes, logits, labels, options);
    const auto none =
        Run<T>(classes, logits, labels, options, Reduction::kNone);
    const auto mean =
        Run<T>(classes, logits, labels, options, Reduction::kMean);
    EXPECT_EQ(none.partial.counted_rows, 4);
    LD total = 0;
    for (int64_t r = 0; r < rows; ++r) {
      total += none.row_loss[r];
      if (labels.indices[r] != ignore) continue;
      EXPECT_EQ(none.row_loss[r], 0) << "ignored row " << r;
      for (int64_t c = 0; c < classes; ++c) {
        EXPECT_EQ(none.grad[r * classes + c], 0) << "ignored row " << r;
        EXPECT_EQ(mean.grad[r * classes + c], 0) << "ignored row " << r;
      }
    }
    // The mean counts only the rows not ignored, for loss and gradient.
    EXPECT_NEAR(mean.loss[0], total / 4, 8 * UlpAt<T>(total / 4));
    for (size_t k = 0; k < none.grad.size(); ++k) {
      EXPECT_NEAR(mean.grad[k], LD(none.grad[k]) / 4,
                  2 * UlpAt<T>(LD(none.grad[k]) / 4));
    }
  }
  // With smoothing, an ignored row still counts for nothing.
  CrossEntropyOptions options;
  options.ignore_index = -1;
  options.label_smoothing = 0.25;
  Labels<T> labels;
  labels.indices = {-1, 1, -1, 0, 3, 2};
  CheckRows<T>("ignore_index with smoothing", classes, logits, labels, options);
}

// Mean over no counted row: the loss is NaN (0/0, as PyTorch), while the
// ignored rows' gradient stays 0 (PyTorch's backward never writes them).
TYPED_TEST(CrossEntropyTest, MeanWithEveryRowIgnored) {
  using T = TypeParam;
  const int64_t classes = 3;
  CrossEntropyOptions options;
  options.ignore_index = -100;
  Labels<T> labels;
  labels.indices = {-100, -100};
  const auto r = Run<T>(classes, RandomLogits<T>(6, 60), labels, options,
                        Reduction::kMean);
  EXPECT_EQ(r.partial.counted_rows, 0);
  EXPECT_TRUE(std::isnan(r.loss[0]));
  size_t nonzero = 0;
  for (T g : r.grad) nonzero += g == 0 ? 0 : 1;
  EXPECT_EQ(nonzero, 0u) << "ignored rows have gradient 0, got " << r.grad[0]
                         << " (0/0 from dividing by 0 counted rows?)";
  const auto s =
      Run<T>(classes, RandomLogits<T>(6, 60), labels, options, Reduction::kSum);
  EXPECT_EQ(s.loss[0], 0);
}

// The gradient against the complex step of the loss, per logit.
using C = std::complex<LD>;
C RowLoss(const std::vector<C>& z, const std::vector<LD>& y) {
  C sum = 0, dot = 0;
  LD sum_y = 0;
  for (size_t c = 0; c < z.size(); ++c) {
    sum += std::exp(z[c]);
    dot += y[c] * z[c];
    sum_y += y[c];
  }
  return std::log(sum) * sum_y - dot;
}

TYPED_TEST(CrossEntropyTest, GradientMatchesComplexStep) {
  using T = TypeParam;
  const LD rtol = sizeof(T) == 4 ? 1e-6L : 1e-12L;
  const LD h = 1e-30L;
  const int64_t classes = 5, rows = 7;
  const auto logits = RandomLogits<T>(rows * classes, 70);
  for (bool by_index : {true, false}) {
    for (double eps : {0.0, 0.15}) {
      for (Reduction reduction : {Reduction::kSum, Reduction::kMean}) {
        CrossEntropyOptions options;
        options.label_smoothing = eps;
        Labels<T> labels;
        if (by_index) {
          labels.indices = {0, 4, 2, 2, 1, 3, 0};
        } else {
          labels.probs = RandomDistributions<T>(rows, classes, 71, 1.3);
        }
        const auto got = Run<T>(classes, logits, labels, options, reduction);
        const LD scale = reduction == Reduction::kMean ? LD(1) / rows : 1;
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<LD> y(classes);
          for (int64_t c = 0; c < classes; ++c) {
            const LD t = by_index ? (labels.indices[r] == c ? 1 : 0)
                                  : LD(labels.probs[r * classes + c]);
            y[c] = (1 - LD(eps)) * t + LD(eps) / classes;
          }
          LD max_grad = 0;
          std::vector<LD> want(classes);
          for (int64_t j = 0; j < classes; ++j) {
            std::vector<C> z(classes);
            for (int64_t c = 0; c < classes; ++c) {
              z[c] = C(logits[r * classes + c], c == j ? h : 0);
            }
            want[j] = scale * RowLoss(z, y).imag() / h;
            max_grad = std::max(max_grad, std::fabs(want[j]));
          }
          for (int64_t j = 0; j < classes; ++j) {
            EXPECT_NEAR(got.grad[r * classes + j], want[j],
                        rtol * (std::fabs(want[j]) + 1e-3L * max_grad))
                << (by_index ? "indices" : "probabilities") << " eps " << eps
                << " row " << r << " logit " << j;
          }
        }
      }
    }
  }
}

// The fused loss and gradient equal the composition of their parts:
// log_softmax (core) then −Σ y·log p, and softmax (core)·Σy − y.
TYPED_TEST(CrossEntropyTest, EqualsCompositionOfParts) {
  using T = TypeParam;
  const int64_t classes = 9, rows = 5;
  const auto logits = RandomLogits<T>(rows * classes, 80, -8, 8);
  Labels<T> labels;
  labels.probs = RandomDistributions<T>(rows, classes, 81);
  const AxisView v{rows, classes, 1};
  std::vector<T> log_p(logits.size()), p(logits.size());
  SoftmaxForward<T>(Function::kLogSoftmax, v, absl::MakeConstSpan(logits),
                    absl::MakeSpan(log_p));
  SoftmaxForward<T>(Function::kSoftmax, v, absl::MakeConstSpan(logits),
                    absl::MakeSpan(p));
  const auto got = Run<T>(classes, logits, labels, {}, Reduction::kNone);
  for (int64_t r = 0; r < rows; ++r) {
    LD loss = 0, scale = 0, sum_y = 0;
    for (int64_t c = 0; c < classes; ++c) {
      const LD y = labels.probs[r * classes + c];
      loss -= y * log_p[r * classes + c];
      scale += std::fabs(y * log_p[r * classes + c]);
      sum_y += y;
    }
    EXPECT_NEAR(got.row_loss[r], loss, 8 * kEps<T> * scale) << "row " << r;
    for (int64_t c = 0; c < classes; ++c) {
      const size_t k = r * classes + c;
      const LD g = LD(p[k]) * sum_y - LD(labels.probs[k]);
      EXPECT_NEAR(got.grad[k], g, 8 * kEps<T> * (std::fabs(g) + p[k]))
          << "row " << r << " class " << c;
      EXPECT_TRUE(got.probs[k] == p[k] ||
                  std::fabs(got.probs[k] - p[k]) <= 2 * UlpAt<T>(p[k]));
    }
  }
}

// Logits far apart: the loss is a difference of logits, never the log of a
// rounded (here underflowed) probability.
TYPED_TEST(CrossEntropyTest, ExtremeLogits) {
  using T = TypeParam;
  struct Case {
    std::vector<T> z;
    int64_t label;
    LD loss;  // exact to well below an ULP of T
  };
  const Case cases[] = {
      {{0, -200}, 1, 200},
      {{0, -200}, 0, std::exp(-200.0L)},
      {{T(1e4), T(-1e4), 0}, 1, 2e4},
      {{T(1e4), T(-1e4), 0}, 2, 1e4},
      {{T(1e4), T(-1e4), 0}, 0, std::exp(-1e4L)},
      {{T(-1e4), T(1e4), 0, T(3e3)}, 0, 2e4},
      {{50, 0, 0}, 1, 50 + std::log1p(2 * std::exp(-50.0L))},
  };
  for (const Case& c : cases) {
    const int64_t classes = c.z.size();
    Labels<T> labels;
    labels.indices = {c.label};
    const auto r = Run<T>(classes, c.z, labels, {}, Reduction::kNone);
    EXPECT_TRUE(std::isfinite(r.row_loss[0])) << c.z[0] << " " << c.label;
    const LD tol = std::max<LD>(4 * UlpAt<T>(c.loss),
                                c.loss < std::numeric_limits<T>::min()
                                    ? std::numeric_limits<T>::min()
                                    : 0);
    EXPECT_NEAR(r.row_loss[0], c.loss, tol) << "label " << c.label;
    for (int64_t k = 0; k < classes; ++k) {
      EXPECT_TRUE(std::isfinite(r.grad[k]));
      EXPECT_GE(r.grad[k], -1);
      EXPECT_LE(r.grad[k], 1);
    }
    // The gradient of the true class is p − 1.
    EXPECT_NEAR(r.grad[c.label], r.probs[c.label] - LD(1), 2 * kEps<T>);
  }
  // Probability targets over the same spread.
  Labels<T> labels;
  labels.probs = {T(0.5), T(0.5), T(0)};
  const auto r =
      Run<T>(3, {T(1e4), T(-1e4), T(0)}, labels, {}, Reduction::kNone);
  EXPECT_NEAR(r.row_loss[0], 1e4, 4 * UlpAt<T>(1e4));
  EXPECT_NEAR(r.grad[0], 0.5, 2 * kEps<T>);
  EXPECT_NEAR(r.grad[1], -0.5, 2 * kEps<T>);
}

TYPED_TEST(CrossEntropyTest, NaNLogitsGiveNaNRowOnly) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Labels<T> labels;
  labels.indices = {0, 1};
  const auto r = Run<T>(3, {T(1), nan, T(0), T(1), T(2), T(3)}, labels, {},
                        Reduction::kNone);
  EXPECT_TRUE(std::isnan(r.row_loss[0]));
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(std::isnan(r.grad[c]));
  EXPECT_TRUE(std::isfinite(r.row_loss[1]));
  for (int c = 3; c < 6; ++c) EXPECT_TRUE(std::isfinite(r.grad[c]));
}

// Rows computed in chunks add up to the whole batch.
TYPED_TEST(CrossEntropyTest, ChunkedRowsAddUp) {
  using T = TypeParam;
  const int64_t classes = 6, rows = 10;
  const auto logits = RandomLogits<T>(rows * classes, 90);
  std::vector<int64_t> indices = {0, 1, 2, 3, 4, 5, -1, 0, -1, 2};
  CrossEntropyOptions options;
  options.ignore_index = -1;
  options.label_smoothing = 0.1;
  Labels<T> labels;
  labels.indices = indices;
  const auto whole = Run<T>(classes, logits, labels, options, Reduction::kNone);
  std::vector<T> row_loss(rows), grad(rows * classes);
  CrossEntropyPartial total;
  for (int64_t begin : {0, 3, 7}) {
    const int64_t end = begin == 0 ? 3 : begin == 3 ? 7 : rows;
    const CrossEntropyPartial part = CrossEntropyRows<T>(
        classes, absl::MakeConstSpan(logits), absl::MakeConstSpan(indices), {},
        options, absl::MakeSpan(row_loss), absl::MakeSpan(grad), {}, begin,
        end);
    total.counted_rows += part.counted_rows;
    total.loss_sum += part.loss_sum;
  }
  EXPECT_EQ(total.counted_rows, whole.partial.counted_rows);
  EXPECT_EQ(total.counted_rows, 8);
  EXPECT_NEAR(static_cast<double>(total.loss_sum),
              static_cast<double>(whole.partial.loss_sum),
              static_cast<double>(4 * kEps<T> * whole.partial.loss_sum));
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(row_loss[r], whole.row_loss[r]);
  for (size_t k = 0; k < grad.size(); ++k) EXPECT_EQ(grad[k], whole.grad[k]);
}

}  // namespace
}  // namespace test
}  // namespace actsvc
