#include "server/ops.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/analyze.h"

namespace actsvc::server {
namespace {

// "LEAKY_RELU": the name errors use, as the own API's enum spells it.
std::string FunctionString(Function f) {
  return absl::AsciiStrToUpper(
      AllFunctions()[static_cast<int>(f) - static_cast<int>(kFirstFunction)]
          .name);
}

absl::StatusOr<ResolvedFunction> Resolve(const FunctionRequest& spec) {
  const int number = spec.function;
  if (number < static_cast<int>(kFirstFunction) ||
      number > static_cast<int>(kLastFunction)) {
    std::vector<std::string> names;
    for (int i = static_cast<int>(kFirstFunction);
         i <= static_cast<int>(kLastFunction); ++i) {
      names.push_back(FunctionString(static_cast<Function>(i)));
    }
    const std::string given =
        number == 0 ? std::string("FUNCTION_UNSPECIFIED (or spec is missing)")
                    : absl::StrCat(number, ", not a known Function");
    return absl::InvalidArgumentError(absl::StrCat(spec.function_field, " is ",
                                                   given, "; expected one of ",
                                                   absl::StrJoin(names, ", ")));
  }
  ResolvedFunction resolved;
  resolved.function = static_cast<Function>(number);
  const bool takes_alpha = TakesAlpha(resolved.function);
  if (spec.alpha) {
    if (!takes_alpha) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec.alpha_field, " = ", *spec.alpha, " is set but ",
          FunctionString(resolved.function),
          " takes no alpha (only LEAKY_RELU and ELU do); leave it unset"));
    }
    if (!std::isfinite(*spec.alpha)) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec.alpha_field, " = ", *spec.alpha,
                       " is not finite; expected a finite number (default ",
                       DefaultAlpha(resolved.function), ")"));
    }
    resolved.alpha = *spec.alpha;
  } else if (takes_alpha) {
    resolved.alpha = DefaultAlpha(resolved.function);
  }
  if (spec.axis) resolved.axis = *spec.axis;
  return resolved;
}

absl::StatusOr<ResolvedAxis> ResolveAxis(const FunctionRequest& request,
                                         const ResolvedFunction& spec,
                                         const TensorView& x) {
  if (x.rank() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(x.name(), ".shape is [] (a scalar), but ",
                     FunctionString(spec.function), " acts along ",
                     request.axis_field, " and needs rank >= 1"));
  }
  const std::optional<int> axis = NormalizeAxis(spec.axis, x.rank());
  if (!axis) {
    return absl::InvalidArgumentError(
        absl::StrCat(request.axis_field, " = ", spec.axis,
                     " is out of range for input of rank ", x.rank(),
                     " (expected ", -x.rank(), "..", x.rank() - 1, ")"));
  }
  // An empty tensor has nothing to compute, but its other dims may be huge:
  // visiting its outer x inner rows of 0 values could take hours (a 46-byte
  // request did), and their count may overflow int64. It has no rows.
  if (x.size() == 0) return ResolvedAxis{*axis, AxisView{0, 0, 0}};
  return ResolvedAxis{*axis, MakeAxisView(x.shape(), *axis)};
}

// The axis of a vector function; none for an elementwise one.
absl::StatusOr<std::optional<ResolvedAxis>> AxisIfVector(
    const FunctionRequest& request, const ResolvedFunction& spec,
    const TensorView& x) {
  if (IsElementwise(spec.function)) return std::optional<ResolvedAxis>();
  absl::StatusOr<ResolvedAxis> axis = ResolveAxis(request, spec, x);
  if (!axis.ok()) return axis.status();
  return std::optional<ResolvedAxis>(*axis);
}

// The view of a tensor the operation needs.
absl::StatusOr<TensorView> Required(TensorArg& arg) {
  if (!arg.error.ok()) return arg.error;
  if (!arg.view) {
    return absl::InvalidArgumentError(absl::StrCat(arg.name, " is missing"));
  }
  return *std::move(arg.view);
}

// `other` must match `reference` in dtype and shape.
absl::Status CheckSameLayout(const TensorView& other,
                             const TensorView& reference) {
  if (other.dtype() != reference.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat(other.name(), ".dtype is ", DTypeName(other.dtype()),
                     ", expected ", DTypeName(reference.dtype()),
                     " (the dtype of ", reference.name(), ")"));
  }
  if (other.shape() != reference.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        other.name(), ".shape ", ShapeString(other.shape()), " does not match ",
        reference.name(), ".shape ", ShapeString(reference.shape())));
  }
  return absl::OkStatus();
}

absl::Status CheckLabels(const CrossEntropyRequest& request,
                         const TensorView& logits, int64_t rows,
                         int64_t classes,
                         const std::optional<int64_t>& ignore_index) {
  const absl::Span<const int64_t> labels = request.class_indices;
  if (static_cast<int64_t>(labels.size()) != rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("class_indices has ", labels.size(), " values, expected ",
                     rows, " (one per row of ", logits.name(), ".shape ",
                     ShapeString(logits.shape()),
                     "); or set target_probs with the shape "
                     "of ",
                     logits.name()));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t label = labels[i];
    if ((label < 0 || label >= classes) && label != ignore_index) {
      return absl::InvalidArgumentError(absl::StrCat(
          "class_indices[", i, "] = ", label, " is out of range [0, ", classes,
          ")",
          ignore_index
              ? absl::StrCat(" and is not ignore_index = ", *ignore_index)
              : ""));
    }
  }
  return absl::OkStatus();
}

// The size limit on the main tensor, then the function: the first checks of
// every request that names a function.
absl::StatusOr<ResolvedFunction> ResolveWithinLimit(
    const FunctionRequest& function, const TensorArg& main,
    int64_t max_elements) {
  if (absl::Status s = CheckElements(main.declared_elements, max_elements);
      !s.ok()) {
    return s;
  }
  return Resolve(function);
}

// The function and its input x, checked in that order after the size
// limit: the first checks of Evaluate and Jacobian.
struct FunctionInput {
  ResolvedFunction spec;
  TensorView x;
};
absl::StatusOr<FunctionInput> ResolveInput(const FunctionRequest& function,
                                           TensorArg& x, int64_t max_elements) {
  absl::StatusOr<ResolvedFunction> spec =
      ResolveWithinLimit(function, x, max_elements);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<TensorView> view = Required(x);
  if (!view.ok()) return view.status();
  return FunctionInput{*spec, *std::move(view)};
}

}  // namespace

absl::Status CheckElements(int64_t elements, int64_t max_elements) {
  if (max_elements <= 0 || elements <= max_elements) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("the request's tensor has ", elements,
                   " elements, over the limit of ", max_elements,
                   " elements per request (--max_elements); split the input "
                   "into smaller requests"));
}

absl::StatusOr<EvaluateOp> Validate(EvaluateRequest request,
                                    int64_t max_elements) {
  absl::StatusOr<FunctionInput> in =
      ResolveInput(request.function, request.x, max_elements);
  if (!in.ok()) return in.status();
  absl::StatusOr<std::optional<ResolvedAxis>> axis =
      AxisIfVector(request.function, in->spec, in->x);
  if (!axis.ok()) return axis.status();
  return EvaluateOp{in->spec, std::move(in->x), *axis};
}

absl::StatusOr<std::variant<DerivativeOp, VjpOp>> Validate(
    DerivativeRequest request, int64_t max_elements) {
  absl::StatusOr<ResolvedFunction> spec =
      ResolveWithinLimit(request.function, request.x, max_elements);
  if (!spec.ok()) return spec.status();
  const int order = request.order == 0 ? 1 : request.order;
  if (order != 1 && order != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("order = ", request.order,
                     " is not supported; expected 1 or 2 (0 means 1)"));
  }
  absl::StatusOr<TensorView> x = Required(request.x);
  if (!x.ok()) return x.status();
  if (!request.g.present()) {
    if (!IsElementwise(spec->function)) {
      return absl::InvalidArgumentError(absl::StrCat(
          request.g.name, " is missing: the derivative of ",
          FunctionString(spec->function), " is a matrix per row; pass ",
          request.g.name,
          " for the vector-Jacobian product, or call the Jacobian RPC for "
          "the matrix"));
    }
    return DerivativeOp{*spec, order, *std::move(x)};
  }
  if (order != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(request.g.name, " is set with order = ", order,
                     "; the vector-Jacobian product needs order 1"));
  }
  absl::StatusOr<TensorView> g = Required(request.g);
  if (!g.ok()) return g.status();
  if (absl::Status s = CheckSameLayout(*g, *x); !s.ok()) return s;
  absl::StatusOr<std::optional<ResolvedAxis>> axis =
      AxisIfVector(request.function, *spec, *x);
  if (!axis.ok()) return axis.status();
  return VjpOp{*spec, *std::move(x), *std::move(g), *axis};
}

absl::StatusOr<JacobianOp> Validate(JacobianRequest request,
                                    int64_t max_elements) {
  absl::StatusOr<FunctionInput> in =
      ResolveInput(request.function, request.x, max_elements);
  if (!in.ok()) return in.status();
  if (IsElementwise(in->spec.function) && request.dense && in->x.rank() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dense = true needs input of rank >= 1 (", in->x.name(),
        ".shape is []): the matrices are taken per last-axis row; use "
        "dense = false for a scalar"));
  }
  absl::StatusOr<std::optional<ResolvedAxis>> axis =
      AxisIfVector(request.function, in->spec, in->x);
  if (!axis.ok()) return axis.status();
  return JacobianOp{in->spec, request.dense, std::move(in->x), *axis};
}

absl::StatusOr<CrossEntropyOp> Validate(CrossEntropyRequest request,
                                        int64_t max_elements) {
  if (absl::Status s =
          CheckElements(request.logits.declared_elements, max_elements);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TensorView> logits = Required(request.logits);
  if (!logits.ok()) return logits.status();
  const std::string& name = logits->name();
  if (logits->rank() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        name,
        ".shape is [] (a scalar); expected rank >= 1 with the classes "
        "on the last axis"));
  }
  CrossEntropyOp op;
  op.classes = logits->shape().back();
  if (op.classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".shape ", ShapeString(logits->shape()),
                     " has 0 classes on its last axis; expected at least 1"));
  }
  op.rows = logits->size() / op.classes;
  if (!request.reduction.ok()) return request.reduction.status();
  op.reduction = *request.reduction;
  const double smoothing = request.label_smoothing;
  if (!(smoothing >= 0 && smoothing < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("label_smoothing = ", smoothing, " is outside [0, 1)"));
  }
  op.options.label_smoothing = smoothing;
  if (request.target_probs.present()) {
    if (request.ignore_index) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ignore_index = ", *request.ignore_index,
          " is set but the labels "
          "are target_probs; ignore_index applies to class_indices only (as "
          "in PyTorch)"));
    }
    absl::StatusOr<TensorView> probs = Required(request.target_probs);
    if (!probs.ok()) return probs.status();
    if (absl::Status s = CheckSameLayout(*probs, *logits); !s.ok()) return s;
    op.target_probs = *std::move(probs);
  } else {
    if (absl::Status s = CheckLabels(request, *logits, op.rows, op.classes,
                                     request.ignore_index);
        !s.ok()) {
      return s;
    }
    op.options.ignore_index = request.ignore_index;
    op.class_indices = request.class_indices;
  }
  op.return_probabilities = request.return_probabilities;
  op.logits = *std::move(logits);
  return op;
}

absl::StatusOr<AnalyzeOp> Validate(AnalyzeRequest request,
                                   int64_t max_elements) {
  absl::StatusOr<ResolvedFunction> spec =
      ResolveWithinLimit(request.function, request.x, max_elements);
  if (!spec.ok()) return spec.status();
  if (!IsElementwise(spec->function)) {
    const std::string name = FunctionString(spec->function);
    return absl::InvalidArgumentError(absl::StrCat(
        request.function.function_field, " is ", name,
        ", but Analyze needs an elementwise function: the Jacobian of ", name,
        " is a full matrix per row, with no per-unit f'(x) to gate the "
        "gradient (docs/accuracy.md, section 'The gradient gate'); call "
        "Jacobian for the matrices"));
  }
  AnalyzeOp op;
  op.function = *spec;
  op.epsilon = request.epsilon;
  if (op.epsilon == 0) {
    op.epsilon = kDefaultSaturationEpsilon;
  } else if (!(op.epsilon > 0) || !std::isfinite(op.epsilon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon = ", op.epsilon,
                     " is not a finite positive number; expected e.g. 1e-3 "
                     "(0 or unset means ",
                     kDefaultSaturationEpsilon, ")"));
  }
  if (request.layers) {
    if (*request.layers < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers = ", *request.layers,
                       " is negative; expected L >= 0 (or leave it unset)"));
    }
    op.layers = static_cast<int>(*request.layers);
  }
  absl::StatusOr<TensorView> x = Required(request.x);
  if (!x.ok()) return x.status();
  op.x = *std::move(x);
  return op;
}

}  // namespace actsvc::server
