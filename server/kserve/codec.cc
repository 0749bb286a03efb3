// One idea (about 600 lines): a ModelInferRequest decoded for its model
// (inputs matched by name, raw or typed values, parameters, outputs) and its
// response's sink. Split by concern, each part would export the input
// matching and the error wording the others need.
#include "server/kserve/codec.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/kserve/parameters.h"

namespace actsvc::server::kserve {
namespace {

using InputTensor = inference::ModelInferRequest::InferInputTensor;

std::string InputFor(absl::string_view name, const Model& model) {
  return absl::StrCat("input '", name, "'", ForModel(model));
}

// DatatypeName's inverse: "FP32" is kFloat32; nullopt for any other name.
std::optional<DType> FloatDType(absl::string_view datatype) {
  for (DType d : kDTypes) {
    if (DatatypeName(d) == datatype) return d;
  }
  return std::nullopt;
}

// The contents fields set in `contents`, by name.
std::vector<absl::string_view> ContentFields(
    const inference::InferTensorContents& c) {
  std::vector<absl::string_view> fields;
  if (c.bool_contents_size() > 0) fields.push_back("bool_contents");
  if (c.int_contents_size() > 0) fields.push_back("int_contents");
  if (c.int64_contents_size() > 0) fields.push_back("int64_contents");
  if (c.uint_contents_size() > 0) fields.push_back("uint_contents");
  if (c.uint64_contents_size() > 0) fields.push_back("uint64_contents");
  if (c.fp32_contents_size() > 0) fields.push_back("fp32_contents");
  if (c.fp64_contents_size() > 0) fields.push_back("fp64_contents");
  if (c.bytes_contents_size() > 0) fields.push_back("bytes_contents");
  return fields;
}

// Where the values of an input are: raw bytes, or typed contents.
// Where a request's raw_input_contents are: in the message, or read apart
// by a WireRequest.
class RawInputs {
 public:
  RawInputs(const inference::ModelInferRequest& message,
            const WireRequest* wire, RawValues values)
      : message_(message),
        wire_(wire),
        leave_in_place_(values == RawValues::kLeaveInPlace) {}

  // Those the WireRequest read apart, or (when it left the request to
  // protobuf whole) those in the message: one of the two is 0.
  int size() const {
    return (wire_ != nullptr ? wire_->Count(message_, kRawInputs) : 0) +
           message_.raw_input_contents_size();
  }
  // The i-th, aligned to `alignment` where the memory allows.
  absl::string_view Get(int i, int alignment) const {
    if (wire_ != nullptr) {
      if (std::optional<absl::string_view> read =
              wire_->Find(message_, kRawInputs, i, alignment)) {
        return *read;
      }
    }
    return message_.raw_input_contents(i);
  }
  // With RawValues::kLeaveInPlace, the byte count of the i-th when the
  // WireRequest read it apart (it stays where it lies); else nullopt.
  std::optional<int64_t> LeftSize(int i) const {
    if (!leave_in_place_ || wire_ == nullptr) return std::nullopt;
    return wire_->Size(message_, kRawInputs, i);
  }

 private:
  static constexpr int kRawInputs =
      inference::ModelInferRequest::kRawInputContentsFieldNumber;
  const inference::ModelInferRequest& message_;
  const WireRequest* wire_;
  const bool leave_in_place_;
};

struct Values {
  const InputTensor* input = nullptr;
  const RawInputs* raw = nullptr;  // nullptr: typed contents
  int index = 0;                   // in raw
  absl::string_view Raw(int alignment) const {
    return raw->Get(index, alignment);
  }
};

// The typed values of `input` from the one field `field` of its contents,
// checked against `size`. *count: how many there are.
absl::Status CheckTyped(const Values& values, absl::string_view field,
                        int64_t count, int64_t size, const Model& model) {
  const std::vector<absl::string_view> fields =
      ContentFields(values.input->contents());
  if (size > 0 && fields.empty()) {
    return InvalidForModel(model,
                           absl::StrCat("input '", values.input->name(),
                                        "' has no data: expected its values in "
                                        "raw_input_contents or in contents.",
                                        field));
  }
  if (fields.size() > 1 || (fields.size() == 1 && fields[0] != field)) {
    return InvalidForModel(
        model, absl::StrCat("input '", values.input->name(), "' has datatype ",
                            values.input->datatype(), " but its values are in ",
                            "contents.", absl::StrJoin(fields, " and "),
                            "; expected contents.", field));
  }
  if (count != size) {
    return InvalidForModel(
        model,
        absl::StrCat("unexpected number of values in "
                     "contents.",
                     field, " for input '", values.input->name(),
                     "'. Expected ", size, " (shape ",
                     ShapeString(values.input->shape()), "), got ", count));
  }
  return absl::OkStatus();
}

// `got`: the byte count of the input's raw_input_contents.
absl::Status CheckRawBytes(const Values& values, int64_t expected, int64_t got,
                           const Model& model) {
  if (got == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "input byte size mismatch for input '", values.input->name(), "'",
      ForModel(model), ". Expected ", expected, ", got ", got));
}

// A float input (FP32, FP64, FP16 or BF16) as a TensorArg: its view or its
// error.
TensorArg ReadFloat(const Values& values, const Model& model) {
  const InputTensor& input = *values.input;
  TensorArg arg;
  arg.name = input.name();
  arg.declared_elements = DeclaredElements(input.shape());
  const std::optional<DType> dtype = FloatDType(input.datatype());
  if (!dtype) {
    arg.error = absl::InvalidArgumentError(absl::StrCat(
        "unexpected datatype ",
        input.datatype().empty() ? "''" : input.datatype(), " for ",
        InputFor(input.name(), model), "; expected FP32, FP64, FP16 or BF16"));
    return arg;
  }
  const absl::Span<const int64_t> shape(input.shape().data(),
                                        input.shape_size());
  int64_t size = 0;
  if (absl::Status s =
          TensorView::CheckShape(input.name(), *dtype, shape, &size);
      !s.ok()) {
    arg.error = WithModel(s, model);
    return arg;
  }
  const void* data = nullptr;
  absl::Status status;
  if (values.raw != nullptr) {
    // Left where they lie (data stays nullptr: a view without values), or
    // read.
    const std::optional<int64_t> left = values.raw->LeftSize(values.index);
    const absl::string_view raw =
        left ? absl::string_view() : values.Raw(DTypeSize(*dtype));
    status =
        CheckRawBytes(values, size * DTypeSize(*dtype),
                      left ? *left : static_cast<int64_t>(raw.size()), model);
    data = raw.data();
  } else if (*dtype == DType::kFloat16 || *dtype == DType::kBFloat16) {
    // The protocol has no typed contents for the half types.
    status = absl::InvalidArgumentError(absl::StrCat(
        InputFor(input.name(), model), " is ", input.datatype(),
        ", which travels only in raw_input_contents (the protocol has no "
        "typed contents for it)"));
  } else if (*dtype == DType::kFloat32) {
    const auto& c = input.contents().fp32_contents();
    status = CheckTyped(values, "fp32_contents", c.size(), size, model);
    data = c.data();
  } else {
    const auto& c = input.contents().fp64_contents();
    status = CheckTyped(values, "fp64_contents", c.size(), size, model);
    data = c.data();
  }
  if (!status.ok()) {
    arg.error = status;
    return arg;
  }
  absl::StatusOr<TensorView> view =
      TensorView::Make(input.name(), *dtype, shape, data);
  if (view.ok()) {
    arg.view = *std::move(view);
  } else {
    arg.error = WithModel(view.status(), model);
  }
  return arg;
}

// Class indices (INT64 or INT32) of shape logits.shape without its last
// axis, as int64 in *labels.
absl::Status ReadLabels(const Values& values, const TensorArg& logits,
                        const Model& model, std::vector<int64_t>* labels) {
  const InputTensor& input = *values.input;
  const bool is64 = input.datatype() == "INT64";
  if (!is64 && input.datatype() != "INT32") {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected datatype ",
                     input.datatype().empty() ? "''" : input.datatype(),
                     " for ", InputFor(input.name(), model),
                     "; expected INT64 or INT32 class indices"));
  }
  const absl::Span<const int64_t> shape(input.shape().data(),
                                        input.shape_size());
  int64_t size = 0;
  // CheckShape takes a dtype only for its size: FLOAT64 has INT64's.
  if (absl::Status s = TensorView::CheckShape(
          input.name(), is64 ? DType::kFloat64 : DType::kFloat32, shape, &size);
      !s.ok()) {
    return WithModel(s, model);
  }
  if (logits.view) {
    const absl::Span<const int64_t> leading =
        logits.view->shape().subspan(0, logits.view->rank() - 1);
    if (logits.view->rank() >= 1 && shape != leading) {
      return InvalidForModel(
          model,
          absl::StrCat("labels.shape ", ShapeString(shape),
                       " does not match logits.shape ",
                       ShapeString(logits.view->shape()),
                       " without its last axis (", ShapeString(leading), ")"));
    }
  }
  if (values.raw != nullptr) {
    const absl::string_view raw = values.Raw(1);
    if (absl::Status s = CheckRawBytes(values, size * (is64 ? 8 : 4),
                                       static_cast<int64_t>(raw.size()), model);
        !s.ok()) {
      return s;
    }
    labels->resize(size);
    if (is64) {
      std::memcpy(labels->data(), raw.data(), size * 8);
    } else {
      for (int64_t i = 0; i < size; ++i) {
        int32_t label;
        std::memcpy(&label, raw.data() + 4 * i, 4);
        (*labels)[i] = label;
      }
    }
    return absl::OkStatus();
  }
  const auto& c = input.contents();
  if (is64) {
    if (absl::Status s = CheckTyped(values, "int64_contents",
                                    c.int64_contents_size(), size, model);
        !s.ok()) {
      return s;
    }
    labels->assign(c.int64_contents().begin(), c.int64_contents().end());
  } else {
    if (absl::Status s = CheckTyped(values, "int_contents",
                                    c.int_contents_size(), size, model);
        !s.ok()) {
      return s;
    }
    labels->assign(c.int_contents().begin(), c.int_contents().end());
  }
  return absl::OkStatus();
}

// The outputs to answer, in the request's order (all when none is listed).
absl::StatusOr<std::vector<const OutputSpec*>> SelectOutputs(
    const inference::ModelInferRequest& message, const Model& model) {
  std::vector<const OutputSpec*> selected;
  if (message.outputs_size() == 0) {
    for (const OutputSpec& output : model.outputs) selected.push_back(&output);
    return selected;
  }
  for (const auto& requested : message.outputs()) {
    const OutputSpec* found = nullptr;
    for (const OutputSpec& output : model.outputs) {
      if (output.tensor.name == requested.name()) found = &output;
    }
    if (found == nullptr) {
      std::vector<absl::string_view> names;
      for (const OutputSpec& output : model.outputs) {
        names.push_back(output.tensor.name);
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected inference output '", requested.name(), "'",
          ForModel(model), "; its outputs are ", absl::StrJoin(names, ", ")));
    }
    if (std::find(selected.begin(), selected.end(), found) != selected.end()) {
      return InvalidForModel(model, absl::StrCat("output '", requested.name(),
                                                 "' is requested twice"));
    }
    for (const auto& [name, value] : requested.parameters()) {
      if (name == "classification" ||
          absl::StartsWith(name, "shared_memory_")) {
        return InvalidForModel(model, absl::StrCat("output parameter '", name,
                                                   "' is not supported"));
      }
    }
    selected.push_back(found);
  }
  return selected;
}

// The request's input for each of the model's inputs, in the model's
// order. The values point into `raw_inputs` when the request sent them raw.
absl::StatusOr<std::vector<Values>> MatchInputs(
    const inference::ModelInferRequest& message, const Model& model,
    const RawInputs& raw_inputs) {
  const bool raw = raw_inputs.size() > 0;
  if (raw && raw_inputs.size() != message.inputs_size()) {
    return InvalidForModel(model,
                           absl::StrCat("expected ", message.inputs_size(),
                                        " raw_input_contents (one per input, "
                                        "in the order of inputs), got ",
                                        raw_inputs.size()));
  }
  // The request's input for each of the model's inputs.
  std::vector<Values> inputs(model.inputs.size());
  for (int i = 0; i < message.inputs_size(); ++i) {
    const InputTensor& input = message.inputs(i);
    size_t k = 0;
    while (k < model.inputs.size() && model.inputs[k].name != input.name()) ++k;
    if (k == model.inputs.size()) {
      std::vector<absl::string_view> names;
      for (const TensorSpec& spec : model.inputs) names.push_back(spec.name);
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected inference input '", input.name(), "'", ForModel(model),
          "; its inputs are ", absl::StrJoin(names, ", ")));
    }
    if (inputs[k].input != nullptr) {
      return InvalidForModel(
          model, absl::StrCat("input '", input.name(), "' is given twice"));
    }
    if (raw && !ContentFields(input.contents()).empty()) {
      return InvalidForModel(model, absl::StrCat("contents field must not be "
                                                 "specified when using "
                                                 "raw_input_contents for '",
                                                 input.name(), "'"));
    }
    for (const auto& [name, value] : input.parameters()) {
      if (absl::StartsWith(name, "shared_memory_")) {
        return InvalidForModel(model,
                               absl::StrCat("input '", input.name(),
                                            "' uses shared memory ('", name,
                                            "'), which is not supported; send "
                                            "the values in the request"));
      }
    }
    inputs[k].input = &input;
    if (raw) {
      inputs[k].raw = &raw_inputs;
      inputs[k].index = i;
    }
  }
  for (size_t k = 0; k < model.inputs.size(); ++k) {
    if (inputs[k].input == nullptr) {
      return InvalidForModel(
          model,
          absl::StrCat("expected ", model.inputs.size(), " inputs but got ",
                       message.inputs_size(), ": input '", model.inputs[k].name,
                       "' is missing"));
    }
  }
  return inputs;
}

// A cross-entropy model's request: the logits, the labels (kept in
// decoded->labels) or target probabilities, and the parameters.
absl::Status DecodeCrossEntropy(const inference::ModelInferRequest& message,
                                const Model& model,
                                const std::vector<Values>& inputs,
                                DecodedInfer* decoded) {
  CrossEntropyRequest request;
  request.logits = ReadFloat(inputs[0], model);
  if (model.kind == ModelKind::kCrossEntropyProbs) {
    request.target_probs = ReadFloat(inputs[1], model);
  } else if (absl::Status s =
                 ReadLabels(inputs[1], request.logits, model, &decoded->labels);
             !s.ok()) {
    return s;
  }
  if (absl::Status s =
          ReadCrossEntropyParameters(message.parameters(), model, &request);
      !s.ok()) {
    return s;
  }
  request.class_indices = decoded->labels;
  request.return_probabilities = false;
  for (const OutputSpec* output : decoded->outputs) {
    if (output->role == OutputRole::kProbabilities) {
      request.return_probabilities = true;
    }
  }
  decoded->request = std::move(request);
  return absl::OkStatus();
}

// Any other model's request: its function with the parameters, x, and g
// for the VJP.
absl::Status DecodeFunction(const inference::ModelInferRequest& message,
                            const Model& model,
                            const std::vector<Values>& inputs,
                            DecodedInfer* decoded) {
  FunctionRequest function;
  function.function = static_cast<int>(model.function);
  function.alpha_field = "parameters.alpha";
  function.axis_field = "parameters.axis";
  if (absl::Status s =
          ReadFunctionParameters(message.parameters(), model, &function);
      !s.ok()) {
    return s;
  }
  TensorArg x = ReadFloat(inputs[0], model);
  switch (model.kind) {
    case ModelKind::kForward:
      decoded->request = EvaluateRequest{function, std::move(x)};
      break;
    case ModelKind::kDerivative1:
    case ModelKind::kDerivative2: {
      DerivativeRequest request;
      request.function = function;
      request.order = model.kind == ModelKind::kDerivative1 ? 1 : 2;
      request.x = std::move(x);
      decoded->request = std::move(request);
      break;
    }
    case ModelKind::kVjp: {
      DerivativeRequest request;
      request.function = function;
      request.order = 1;
      request.x = std::move(x);
      request.g = ReadFloat(inputs[1], model);
      decoded->request = std::move(request);
      break;
    }
    case ModelKind::kJacobian: {
      JacobianRequest request;
      request.function = function;
      request.dense = true;
      request.x = std::move(x);
      decoded->request = std::move(request);
      break;
    }
    case ModelKind::kCrossEntropyLabels:
    case ModelKind::kCrossEntropyProbs:
      break;  // DecodeCrossEntropy
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WithModel(absl::Status status, const Model& model) {
  if (status.code() != absl::StatusCode::kInvalidArgument ||
      absl::StrContains(status.message(), "for model '")) {
    return status;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(status.message(), ForModel(model)));
}

absl::Span<const WireField> InferWireFields() {
  static const WireField kFields[] = {
      {inference::ModelInferRequest::descriptor(),
       inference::ModelInferRequest::kRawInputContentsFieldNumber, 1},
      {inference::ModelInferResponse::descriptor(),
       inference::ModelInferResponse::kRawOutputContentsFieldNumber, 1},
  };
  return kFields;
}

absl::StatusOr<DecodedInfer> Decode(const inference::ModelInferRequest& message,
                                    const WireRequest* wire,
                                    RawValues raw_values) {
  absl::StatusOr<const Model*> found =
      FindModel(message.model_name(), message.model_version());
  if (!found.ok()) return found.status();
  const Model& model = **found;
  DecodedInfer decoded;
  decoded.model = &model;

  const RawInputs raw_inputs(message, wire, raw_values);
  absl::StatusOr<std::vector<Values>> inputs =
      MatchInputs(message, model, raw_inputs);
  if (!inputs.ok()) return inputs.status();
  for (const Values& values : *inputs) {
    if (values.raw != nullptr) decoded.raw_index.push_back(values.index);
  }
  absl::StatusOr<std::vector<const OutputSpec*>> outputs =
      SelectOutputs(message, model);
  if (!outputs.ok()) return outputs.status();
  decoded.outputs = *std::move(outputs);
  decoded.elements = DeclaredElements((*inputs)[0].input->shape());

  const bool cross_entropy = model.kind == ModelKind::kCrossEntropyLabels ||
                             model.kind == ModelKind::kCrossEntropyProbs;
  if (absl::Status s =
          cross_entropy ? DecodeCrossEntropy(message, model, *inputs, &decoded)
                        : DecodeFunction(message, model, *inputs, &decoded);
      !s.ok()) {
    return s;
  }
  return decoded;
}

InferResponseSink::InferResponseSink(
    const std::vector<const OutputSpec*>& outputs,
    inference::ModelInferResponse* response, WireResponse* wire)
    : response_(response),
      wire_(wire),
      answered_(static_cast<int>(outputs.size())),
      allocated_(outputs.size()) {
  position_.fill(-1);
  for (size_t i = 0; i < outputs.size(); ++i) {
    position_[static_cast<int>(outputs[i]->role)] = static_cast<int>(i);
    response->add_outputs()->set_name(outputs[i]->tensor.name);
    if (wire_ == nullptr) response->add_raw_output_contents();
  }
}

void* InferResponseSink::Allocate(OutputRole role, DType dtype,
                                  absl::Span<const int64_t> shape,
                                  int64_t elements) {
  const int position = position_[static_cast<int>(role)];
  const int64_t bytes = elements * DTypeSize(dtype);
  const size_t words = (bytes + sizeof(double) - 1) / sizeof(double);
  if (position < 0) {
    scratch_.emplace_back(-1, std::vector<double>(words));
    return scratch_.back().second.data();
  }
  auto* output = response_->mutable_outputs(position);
  output->set_datatype(std::string(DatatypeName(dtype)));
  output->mutable_shape()->Assign(shape.begin(), shape.end());
  allocated_[position] = true;
  if (wire_ != nullptr) {
    return wire_->Allocate(response_, kRawOutputs, position, bytes);
  }
  std::string* raw = response_->mutable_raw_output_contents(position);
  raw->resize(static_cast<size_t>(bytes));
  if (reinterpret_cast<uintptr_t>(raw->data()) % DTypeSize(dtype) == 0) {
    return raw->data();
  }
  scratch_.emplace_back(position, std::vector<double>(words));
  return scratch_.back().second.data();
}

bool InferResponseSink::SendInPlace(OutputRole role, DType dtype,
                                    absl::Span<const int64_t> shape,
                                    const WireRequest& wire,
                                    const inference::ModelInferRequest& request,
                                    int from_index) {
  const int position = position_[static_cast<int>(role)];
  if (position < 0 || wire_ == nullptr ||
      !wire_->Resend(response_, kRawOutputs, position, wire, request,
                     inference::ModelInferRequest::kRawInputContentsFieldNumber,
                     from_index)) {
    return false;
  }
  auto* output = response_->mutable_outputs(position);
  output->set_datatype(std::string(DatatypeName(dtype)));
  output->mutable_shape()->Assign(shape.begin(), shape.end());
  allocated_[position] = true;
  return true;
}

void InferResponseSink::Finish() {
  for (auto& [position, values] : scratch_) {
    if (position < 0) continue;
    std::string* raw = response_->mutable_raw_output_contents(position);
    std::memcpy(raw->data(), values.data(), raw->size());
  }
  scratch_.clear();
  // One raw_output_contents per output, in order, computed or not.
  if (wire_ != nullptr) {
    for (int position = 0; position < answered_; ++position) {
      if (!allocated_[position]) {
        wire_->Allocate(response_, kRawOutputs, position, 0);
        allocated_[position] = true;
      }
    }
  }
}

}  // namespace actsvc::server::kserve
