// Protocol-neutral operations and the one Validate of every semantic check of
// SPEC §3. A codec turns its protocol's request into a *Request below (the
// fields as the client sent them, tensors already read into views), Validate
// turns that into an operation compute can run, and nothing else checks
// requests. A protocol adds its own words only through names: a tensor's
// name, and the names in FunctionRequest.
#ifndef ACTSVC_SERVER_OPS_H_
#define ACTSVC_SERVER_OPS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/functions.h"
#include "core/softmax.h"
#include "server/tensor.h"

namespace actsvc::server {

// A request tensor as a codec read it. A tensor the client did not send has
// neither a view nor an error; one the codec could not read has the error,
// which Validate reports at the point of the tensor in its order of checks.
struct TensorArg {
  std::string name;  // for "is missing": "input", "logits"
  std::optional<TensorView> view;
  absl::Status error;
  // The element count the client declared (DeclaredElements), the measure
  // of the request's work for --max_elements and the metrics.
  int64_t declared_elements = 0;

  bool present() const { return view.has_value() || !error.ok(); }
};

// The function a request asks for, as sent.
struct FunctionRequest {
  int function = 0;  // a Function value, or anything a client sent
  std::optional<double> alpha;
  std::optional<int> axis;
  // How errors name these fields.
  absl::string_view function_field = "spec.function";
  absl::string_view alpha_field = "spec.alpha";
  absl::string_view axis_field = "spec.axis";
};

struct EvaluateRequest {
  FunctionRequest function;
  TensorArg x;
};

// f'(x) or f''(x); with g, the vector-Jacobian product.
struct DerivativeRequest {
  FunctionRequest function;
  int order = 0;  // 0 means 1
  TensorArg x;
  TensorArg g;  // not present: no VJP
};

struct JacobianRequest {
  FunctionRequest function;
  bool dense = false;
  TensorArg x;
};

struct CrossEntropyRequest {
  TensorArg logits;
  // The reduction as sent: a codec maps its own values, and keeps an
  // unknown one as the error Validate reports in its turn.
  absl::StatusOr<Reduction> reduction = Reduction::kMean;
  double label_smoothing = 0;
  std::optional<int64_t> ignore_index;
  // Labels: target_probs when present, else class_indices.
  TensorArg target_probs;
  absl::Span<const int64_t> class_indices;
  bool return_probabilities = false;
};

struct AnalyzeRequest {
  FunctionRequest function;
  double epsilon = 0;  // 0 means kDefaultSaturationEpsilon
  std::optional<int64_t> layers;
  TensorArg x;
};

// The operations compute runs: every field checked.
struct ResolvedFunction {
  Function function = Function::kIdentity;
  double alpha = 0;
  int axis = -1;  // as given (may be negative); vector functions only
};

// The axis a vector function acts along.
struct ResolvedAxis {
  int axis;  // in [0, rank)
  AxisView view;
};

struct EvaluateOp {
  ResolvedFunction function;
  TensorView x;
  std::optional<ResolvedAxis> axis;  // vector functions
};

// f'(x) or f''(x) of an elementwise function.
struct DerivativeOp {
  ResolvedFunction function;
  int order = 1;
  TensorView x;
};

// g ⊙ f'(x), or the VJP of softmax or log_softmax along axis.
struct VjpOp {
  ResolvedFunction function;
  TensorView x;
  TensorView g;
  std::optional<ResolvedAxis> axis;
};

struct JacobianOp {
  ResolvedFunction function;
  bool dense = false;
  TensorView x;
  std::optional<ResolvedAxis> axis;  // vector functions
};

struct CrossEntropyOp {
  TensorView logits;
  int64_t classes = 0;
  int64_t rows = 0;
  Reduction reduction = Reduction::kMean;
  CrossEntropyOptions options;
  std::optional<TensorView> target_probs;
  absl::Span<const int64_t> class_indices;  // when there is no target_probs
  bool return_probabilities = false;
};

struct AnalyzeOp {
  ResolvedFunction function;
  double epsilon = 0;
  std::optional<int> layers;
  TensorView x;
};

// RESOURCE_EXHAUSTED when `elements` is over `max_elements` (> 0).
absl::Status CheckElements(int64_t elements, int64_t max_elements);

// Every check of SPEC §3 for each request, in a fixed order: first the main
// tensor's declared size against max_elements (when > 0), then the fields.
// Errors are INVALID_ARGUMENT (RESOURCE_EXHAUSTED for the size) and name the
// field with the expected and the actual value.
absl::StatusOr<EvaluateOp> Validate(EvaluateRequest request,
                                    int64_t max_elements);
absl::StatusOr<std::variant<DerivativeOp, VjpOp>> Validate(
    DerivativeRequest request, int64_t max_elements);
absl::StatusOr<JacobianOp> Validate(JacobianRequest request,
                                    int64_t max_elements);
absl::StatusOr<CrossEntropyOp> Validate(CrossEntropyRequest request,
                                        int64_t max_elements);
absl::StatusOr<AnalyzeOp> Validate(AnalyzeRequest request,
                                   int64_t max_elements);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_OPS_H_
