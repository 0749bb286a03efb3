// The models of the Open Inference Protocol: one per computation, so that
// every input of a model is required and every output is computable from
// them (a request that lists no outputs gets all of them). For each of the
// thirteen functions F:
//   F             x        -> y         f(x)
//   F.d1, F.d2    x        -> dy, d2y   f'(x), f''(x)   (elementwise F only)
//   F.vjp         x, grad  -> x_grad    the vector-Jacobian product
//   F.jacobian    x        -> jacobian  [..., C, C], dense per row
// and softmax_cross_entropy (logits, labels) and
// softmax_cross_entropy.probs (logits, target_probs), each with outputs
// loss, grad_logits and probabilities. Each model has one version, "1".
#ifndef ACTSVC_SERVER_KSERVE_MODELS_H_
#define ACTSVC_SERVER_KSERVE_MODELS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/activation.h"
#include "server/tensor.h"

namespace actsvc::server::kserve {

// The one version of every model.
inline constexpr absl::string_view kModelVersion = "1";
// What ModelMetadata and ModelConfig report as the models' platform.
inline constexpr absl::string_view kPlatform = "actsvc";

enum class ModelKind {
  kForward,      // F
  kDerivative1,  // F.d1
  kDerivative2,  // F.d2
  kVjp,          // F.vjp
  kJacobian,     // F.jacobian
  kCrossEntropyLabels,
  kCrossEntropyProbs,
};

// A tensor as metadata and config list it. Float tensors are listed as
// FP32; the server also takes FP64 for them and answers in the input's
// datatype. Every dim is -1.
struct TensorSpec {
  std::string name;
  std::string datatype;  // "FP32", "INT64"
  std::vector<int64_t> dims;
  bool is_float = true;  // takes FP32 or FP64
};

// An output and the role compute writes it under.
struct OutputSpec {
  TensorSpec tensor;
  OutputRole role = OutputRole::kOutput;
};

struct Model {
  std::string name;  // "gelu", "gelu.d1", "softmax_cross_entropy.probs"
  ModelKind kind = ModelKind::kForward;
  Function function = Function::kIdentity;  // not for cross-entropy
  std::vector<TensorSpec> inputs;
  std::vector<OutputSpec> outputs;
  // The request parameters the model takes.
  std::vector<std::string> parameters;
};

// Every model, functions in enum order, each F followed by its derived
// models, then the two cross-entropy models. Built once.
const std::vector<Model>& AllModels();

// The model named `name` at `version` ("" or "1"); NOT_FOUND naming the
// model (and the version) otherwise.
absl::StatusOr<const Model*> FindModel(absl::string_view name,
                                       absl::string_view version);

// The position of `model` in AllModels().
int ModelIndex(const Model& model);

// The protocol's datatype name of a dtype: "FP32", "FP64".
absl::string_view DatatypeName(DType dtype);

// " for model 'name'", the end of Triton-worded errors about a model.
std::string ForModel(const Model& model);

// INVALID_ARGUMENT: `message` followed by ForModel(model).
absl::Status InvalidForModel(const Model& model, absl::string_view message);

}  // namespace actsvc::server::kserve

#endif  // ACTSVC_SERVER_KSERVE_MODELS_H_
