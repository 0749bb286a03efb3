#include "server/kserve/parameters.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace actsvc::server::kserve {
namespace {

// Parameters Triton's clients may send that say nothing to actsvc.
constexpr absl::string_view kIgnoredParameters[] = {
    "sequence_id", "sequence_start", "sequence_end",
    "priority",    "timeout",        "binary_data_output"};

std::string ParameterName(absl::string_view name) {
  return absl::StrCat("parameters.", name);
}

// A number given as double, int64, uint64 or string.
absl::StatusOr<double> Number(absl::string_view name,
                              const inference::InferParameter& p,
                              const Model& model) {
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kDoubleParam:
      return p.double_param();
    case inference::InferParameter::kInt64Param:
      return static_cast<double>(p.int64_param());
    case inference::InferParameter::kUint64Param:
      return static_cast<double>(p.uint64_param());
    case inference::InferParameter::kStringParam: {
      double value;
      if (absl::SimpleAtod(p.string_param(), &value)) return value;
      return InvalidForModel(
          model, absl::StrCat(ParameterName(name), " = \"", p.string_param(),
                              "\" is not a number"));
    }
    case inference::InferParameter::kBoolParam:
    case inference::InferParameter::PARAMETER_CHOICE_NOT_SET:
      break;
  }
  return InvalidForModel(model,
                         absl::StrCat(ParameterName(name),
                                      " is not a number; expected a double, "
                                      "int64 or string parameter"));
}

// An integer given as int64, uint64, an integral double, or a string.
absl::StatusOr<int64_t> Integer(absl::string_view name,
                                const inference::InferParameter& p,
                                const Model& model) {
  if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) {
    return p.int64_param();
  }
  if (p.parameter_choice_case() == inference::InferParameter::kStringParam) {
    int64_t value;
    if (absl::SimpleAtoi(p.string_param(), &value)) return value;
  }
  if (p.parameter_choice_case() == inference::InferParameter::kUint64Param &&
      p.uint64_param() <= uint64_t{std::numeric_limits<int64_t>::max()}) {
    return static_cast<int64_t>(p.uint64_param());
  }
  absl::StatusOr<double> number = Number(name, p, model);
  if (!number.ok()) return number.status();
  // 2^63 is the first double past int64.
  if (std::trunc(*number) != *number || !(std::fabs(*number) < 0x1p63)) {
    return InvalidForModel(model, absl::StrCat(ParameterName(name), " = ",
                                               *number, " is not an integer"));
  }
  return static_cast<int64_t>(*number);
}

// A parameter's value into *field, or the error reading it.
template <typename T, typename Field>
absl::Status Store(absl::StatusOr<T> value, Field* field) {
  if (!value.ok()) return value.status();
  *field = *std::move(value);
  return absl::OkStatus();
}

// The function's parameters (alpha, axis) into `function`.
absl::Status ReadFunctionParameter(absl::string_view name,
                                   const inference::InferParameter& p,
                                   const Model& model,
                                   FunctionRequest* function) {
  if (name == "alpha") return Store(Number(name, p, model), &function->alpha);
  absl::StatusOr<int64_t> axis = Integer(name, p, model);
  if (!axis.ok()) return axis.status();
  if (*axis < std::numeric_limits<int>::min() ||
      *axis > std::numeric_limits<int>::max()) {
    return InvalidForModel(model, absl::StrCat(ParameterName(name), " = ",
                                               *axis, " is out of range"));
  }
  function->axis = static_cast<int>(*axis);
  return absl::OkStatus();
}

absl::Status ReadCrossEntropyParameter(absl::string_view name,
                                       const inference::InferParameter& p,
                                       const Model& model,
                                       CrossEntropyRequest* request) {
  if (name == "reduction") {
    const std::string& value = p.string_param();
    if (p.parameter_choice_case() != inference::InferParameter::kStringParam ||
        (value != "mean" && value != "sum" && value != "none")) {
      request->reduction = InvalidForModel(
          model, absl::StrCat(ParameterName(name),
                              " must be the string \"mean\", \"sum\" or "
                              "\"none\"",
                              p.parameter_choice_case() ==
                                      inference::InferParameter::kStringParam
                                  ? absl::StrCat(", got \"", value, "\"")
                                  : ""));
    } else {
      request->reduction = value == "mean"  ? Reduction::kMean
                           : value == "sum" ? Reduction::kSum
                                            : Reduction::kNone;
    }
    return absl::OkStatus();
  }
  if (name == "label_smoothing") {
    return Store(Number(name, p, model), &request->label_smoothing);
  }
  return Store(Integer(name, p, model), &request->ignore_index);
}

// Calls read(name, parameter, model, target) for each parameter the model
// takes; any other is INVALID_ARGUMENT unless Triton's clients send it on
// their own. In the order of their names: a protobuf map's own order
// differs from one parse of the same bytes to the next, and the error of a
// request with two wrong parameters must not.
template <typename Target>
absl::Status ReadParameters(
    const InferParameters& parameters, const Model& model,
    absl::Status (*read)(absl::string_view, const inference::InferParameter&,
                         const Model&, Target*),
    Target* target) {
  std::vector<std::pair<absl::string_view, const inference::InferParameter*>>
      sorted;
  sorted.reserve(parameters.size());
  for (const auto& [name, value] : parameters) {
    sorted.emplace_back(name, &value);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [name, parameter] : sorted) {
    const inference::InferParameter& value = *parameter;
    const bool known =
        std::find(model.parameters.begin(), model.parameters.end(), name) !=
        model.parameters.end();
    if (known) {
      if (absl::Status s = read(name, value, model, target); !s.ok()) return s;
      continue;
    }
    if (std::find(std::begin(kIgnoredParameters), std::end(kIgnoredParameters),
                  name) != std::end(kIgnoredParameters)) {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "unexpected parameter '", name, "'", ForModel(model), "; it takes ",
        model.parameters.empty() ? std::string("none")
                                 : absl::StrJoin(model.parameters, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadFunctionParameters(const InferParameters& parameters,
                                    const Model& model,
                                    FunctionRequest* function) {
  return ReadParameters(parameters, model, &ReadFunctionParameter, function);
}

absl::Status ReadCrossEntropyParameters(const InferParameters& parameters,
                                        const Model& model,
                                        CrossEntropyRequest* request) {
  return ReadParameters(parameters, model, &ReadCrossEntropyParameter, request);
}

}  // namespace actsvc::server::kserve
