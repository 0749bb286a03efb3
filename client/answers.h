// The load library's expected values: what a right response holds, computed
// by the client's own core in the request's dtype (float32, float64, float16
// or bfloat16), so that `actsvc bench` and the soak (bench/soak*.cc) check
// answers the same way. Inputs are values already rounded to the dtype
// (RandomValues, RoundToDtype); outputs are widened to double exactly.
#ifndef ACTSVC_CLIENT_ANSWERS_H_
#define ACTSVC_CLIENT_ANSWERS_H_

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "actsvc/v1/activation.pb.h"
#include "core/analyze.h"
#include "core/softmax.h"

namespace actsvc::client {

// `n` values of `dtype` uniform in [lo, hi), each rounded to the dtype.
std::vector<double> RandomValues(std::mt19937_64& rng, int64_t n, double lo,
                                 double hi, actsvc::v1::DataType dtype);

// Overwrites the first values with NaN, +-inf, +-0, the smallest subnormal,
// +-the largest finite value of `dtype`, and a few tail and interior values.
void PutSpecialValues(actsvc::v1::DataType dtype, std::vector<double>* values);

// An input tensor's shape, dtype and values (already of the dtype).
struct InputValues {
  std::vector<int64_t> shape;
  actsvc::v1::DataType dtype = actsvc::v1::FLOAT32;
  std::vector<double> values;
};

// An output: its shape and values.
struct Answer {
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// f(x), as Evaluate answers. INVALID_ARGUMENT when the spec's axis does not
// fit the shape (or softmax of a scalar).
absl::StatusOr<Answer> ExpectedEvaluate(const actsvc::v1::FunctionSpec& spec,
                                        const InputValues& x);
// f'(x) or f''(x) of an elementwise function (order 1 or 2).
absl::StatusOr<Answer> ExpectedDerivative(const actsvc::v1::FunctionSpec& spec,
                                          int order, const InputValues& x);
// The VJP with upstream gradient `g` (of x's shape and dtype).
absl::StatusOr<Answer> ExpectedVjp(const actsvc::v1::FunctionSpec& spec,
                                   const InputValues& x,
                                   absl::Span<const double> g);
// The Jacobian as JacobianResponse holds it: the diagonal of an elementwise
// function (dense: [..., C, C] per last-axis row), or [..., C, C] along the
// axis of softmax and log_softmax (the axis moved last).
absl::StatusOr<Answer> ExpectedJacobian(const actsvc::v1::FunctionSpec& spec,
                                        bool dense, const InputValues& x);

// Softmax cross-entropy over logits [..., C] with class indices (one per
// row) or target probabilities (of the logits' shape).
struct CrossEntropyInput {
  InputValues logits;
  std::vector<int64_t> class_indices;
  std::vector<double> target_probs;  // empty: class_indices
  CrossEntropyOptions options;
  Reduction reduction = Reduction::kMean;
  bool probabilities = false;
};
struct CrossEntropyAnswer {
  Answer loss;  // a scalar, or one per row for Reduction::kNone
  Answer grad_logits;
  Answer probabilities;  // when asked for
};
absl::StatusOr<CrossEntropyAnswer> ExpectedCrossEntropy(
    const CrossEntropyInput& in);

// Analyze's statistics of an elementwise function over x; epsilon 0 is the
// default.
GradientFlowReport ExpectedAnalysis(const actsvc::v1::FunctionSpec& spec,
                                    double epsilon, std::optional<int> layers,
                                    const InputValues& x);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_ANSWERS_H_
