#include "server/kserve/models.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/functions.h"

namespace actsvc::server::kserve {
namespace {

TensorSpec Float(std::string name, int rank) {
  return TensorSpec{std::move(name), "FP32", std::vector<int64_t>(rank, -1),
                    true};
}

OutputSpec Output(std::string name, int rank,
                  OutputRole role = OutputRole::kOutput) {
  return OutputSpec{Float(std::move(name), rank), role};
}

std::vector<std::string> FunctionParameters(Function f) {
  std::vector<std::string> parameters;
  if (TakesAlpha(f)) parameters.push_back("alpha");
  if (!IsElementwise(f)) parameters.push_back("axis");
  return parameters;
}

Model FunctionModel(const FunctionInfo& info, ModelKind kind,
                    absl::string_view suffix) {
  Model model;
  model.name = absl::StrCat(info.name, suffix);
  model.kind = kind;
  model.function = info.function;
  model.inputs.push_back(Float("x", 2));
  model.parameters = FunctionParameters(info.function);
  return model;
}

std::vector<Model> MakeModels() {
  std::vector<Model> models;
  for (const FunctionInfo& info : AllFunctions()) {
    Model forward = FunctionModel(info, ModelKind::kForward, "");
    forward.outputs.push_back(Output("y", 2));
    models.push_back(std::move(forward));
    if (IsElementwise(info.function)) {
      Model d1 = FunctionModel(info, ModelKind::kDerivative1, ".d1");
      d1.outputs.push_back(Output("dy", 2));
      models.push_back(std::move(d1));
      Model d2 = FunctionModel(info, ModelKind::kDerivative2, ".d2");
      d2.outputs.push_back(Output("d2y", 2));
      models.push_back(std::move(d2));
    }
    Model vjp = FunctionModel(info, ModelKind::kVjp, ".vjp");
    vjp.inputs.push_back(Float("grad", 2));
    vjp.outputs.push_back(Output("x_grad", 2));
    models.push_back(std::move(vjp));
    Model jacobian = FunctionModel(info, ModelKind::kJacobian, ".jacobian");
    jacobian.outputs.push_back(
        Output("jacobian", 3, OutputRole::kJacobianDense));
    models.push_back(std::move(jacobian));
  }
  // loss is [R] for reduction "none" and a scalar for "mean" and "sum":
  // listed as [-1].
  const std::vector<OutputSpec> cross_entropy_outputs = {
      Output("loss", 1, OutputRole::kLoss),
      Output("grad_logits", 2, OutputRole::kGradLogits),
      Output("probabilities", 2, OutputRole::kProbabilities)};
  Model labels;
  labels.name = "softmax_cross_entropy";
  labels.kind = ModelKind::kCrossEntropyLabels;
  labels.inputs = {Float("logits", 2),
                   TensorSpec{"labels", "INT64", {-1}, false}};
  labels.outputs = cross_entropy_outputs;
  labels.parameters = {"reduction", "label_smoothing", "ignore_index"};
  models.push_back(std::move(labels));
  Model probs;
  probs.name = "softmax_cross_entropy.probs";
  probs.kind = ModelKind::kCrossEntropyProbs;
  probs.inputs = {Float("logits", 2), Float("target_probs", 2)};
  probs.outputs = cross_entropy_outputs;
  probs.parameters = {"reduction", "label_smoothing"};
  models.push_back(std::move(probs));
  return models;
}

}  // namespace

const std::vector<Model>& AllModels() {
  static const std::vector<Model>* const kModels =
      new std::vector<Model>(MakeModels());
  return *kModels;
}

absl::StatusOr<const Model*> FindModel(absl::string_view name,
                                       absl::string_view version) {
  for (const Model& model : AllModels()) {
    if (model.name != name) continue;
    if (!version.empty() && version != kModelVersion) {
      return absl::NotFoundError(
          absl::StrCat("Request for unknown model: '", name, "' version ",
                       version, " is not found; its one version is ",
                       kModelVersion, " (or leave the version empty)"));
    }
    return &model;
  }
  return absl::NotFoundError(absl::StrCat(
      "Request for unknown model: '", name,
      "' is not found; the models are each function's name (\"gelu\"), with "
      ".d1, .d2, .vjp or .jacobian, and softmax_cross_entropy[.probs] "
      "(RepositoryIndex lists them)"));
}

int ModelIndex(const Model& model) {
  return static_cast<int>(&model - AllModels().data());
}

absl::string_view DatatypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "FP32";
    case DType::kFloat64:
      return "FP64";
    case DType::kFloat16:
      return "FP16";
    case DType::kBFloat16:
      return "BF16";
  }
  UnknownDType(dtype);
}

std::string ForModel(const Model& model) {
  return absl::StrCat(" for model '", model.name, "'");
}

absl::Status InvalidForModel(const Model& model, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(message, ForModel(model)));
}

}  // namespace actsvc::server::kserve
