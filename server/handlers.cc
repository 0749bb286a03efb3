#include "server/handlers.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "core/activation.h"
#include "core/analyze.h"
#include "core/functions.h"
#include "core/softmax.h"
#include "server/parallel.h"
#include "server/tensor_codec.h"

namespace actsvc::server {
namespace {

// What to tell a client whose response would be too large.
constexpr absl::string_view kSplitTheInput =
    "split the input into smaller requests";

std::string FunctionString(Function f) {
  return v1::Function_Name(static_cast<v1::Function>(f));
}

// The function, alpha and axis a FunctionSpec asks for, once validated.
struct ResolvedSpec {
  Function function = Function::kIdentity;
  double alpha = 0;
  int axis = -1;  // as given (may be negative); only softmax uses it
};

absl::StatusOr<ResolvedSpec> ResolveSpec(const v1::FunctionSpec& spec) {
  const int number = spec.function();
  if (number < static_cast<int>(kFirstFunction) ||
      number > static_cast<int>(kLastFunction)) {
    std::vector<std::string> names;
    for (int i = static_cast<int>(kFirstFunction);
         i <= static_cast<int>(kLastFunction); ++i) {
      names.push_back(FunctionString(static_cast<Function>(i)));
    }
    const std::string given =
        number == v1::FUNCTION_UNSPECIFIED
            ? std::string("FUNCTION_UNSPECIFIED (or spec is missing)")
            : absl::StrCat(number, ", not a known Function");
    return absl::InvalidArgumentError(absl::StrCat("spec.function is ", given,
                                                   "; expected one of ",
                                                   absl::StrJoin(names, ", ")));
  }
  ResolvedSpec resolved;
  resolved.function = static_cast<Function>(number);
  const bool takes_alpha = TakesAlpha(resolved.function);
  if (spec.has_alpha()) {
    if (!takes_alpha) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.alpha = ", spec.alpha(), " is set but ",
          FunctionString(resolved.function),
          " takes no alpha (only LEAKY_RELU and ELU do); leave it unset"));
    }
    if (!std::isfinite(spec.alpha())) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.alpha = ", spec.alpha(),
                       " is not finite; expected a finite "
                       "number (default ",
                       DefaultAlpha(resolved.function), ")"));
    }
    resolved.alpha = spec.alpha();
  } else if (takes_alpha) {
    resolved.alpha = DefaultAlpha(resolved.function);
  }
  if (spec.has_axis()) resolved.axis = spec.axis();
  return resolved;
}

struct ResolvedAxis {
  int axis;  // in [0, rank)
  AxisView view;
};

absl::StatusOr<ResolvedAxis> ResolveAxis(const ResolvedSpec& spec,
                                         const TensorView& x) {
  if (x.rank() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input.shape is [] (a scalar), but ", FunctionString(spec.function),
        " acts along spec.axis and needs rank >= 1"));
  }
  const std::optional<int> axis = NormalizeAxis(spec.axis, x.rank());
  if (!axis) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.axis = ", spec.axis, " is out of range for input of rank ",
        x.rank(), " (expected ", -x.rank(), "..", x.rank() - 1, ")"));
  }
  // An empty tensor has nothing to compute, but its other dims may be huge:
  // visiting its outer x inner rows of 0 values could take hours (a 46-byte
  // request did), and their count may overflow int64. It has no rows.
  if (x.size() == 0) return ResolvedAxis{*axis, AxisView{0, 0, 0}};
  return ResolvedAxis{*axis, MakeAxisView(x.shape(), *axis)};
}

absl::StatusOr<TensorView> DecodeRequired(bool present,
                                          const v1::Tensor& tensor,
                                          absl::string_view name) {
  if (!present) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is missing"));
  }
  return DecodeTensor(tensor, name);
}

// `other` must match `reference` in dtype and shape (its encoding is free).
absl::Status CheckSameLayout(const TensorView& other, absl::string_view name,
                             const TensorView& reference,
                             absl::string_view reference_name) {
  if (other.dtype() != reference.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".dtype is ", v1::DataType_Name(other.dtype()),
                     ", expected ", v1::DataType_Name(reference.dtype()),
                     " (the dtype of ", reference_name, ")"));
  }
  if (other.shape() != reference.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ".shape ", ShapeString(other.shape()), " does not match ",
        reference_name, ".shape ", ShapeString(reference.shape())));
  }
  return absl::OkStatus();
}

// Sums wire sizes, -1 (too large to count) absorbing.
int64_t AddBytes(int64_t a, int64_t b) {
  int64_t sum;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum)) return -1;
  return sum;
}

absl::Status CheckResponseBytes(const ComputeContext& context, int64_t bytes,
                                absl::string_view what,
                                absl::string_view instead) {
  if (bytes >= 0 && bytes <= context.max_message_bytes) {
    return absl::OkStatus();
  }
  const std::string size =
      bytes < 0 ? std::string("more than 2^63") : absl::StrCat(bytes);
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " would be ", size, " bytes, over the message size limit of ",
      context.max_message_bytes, " bytes (--max_message_mb); ", instead));
}

// Runs body(begin, end) over [0, total) in steps of `step` units, checking
// the call before each step so that abandoned work stops early.
template <typename Body>
absl::Status RunChunked(const ComputeContext& context, int64_t total,
                        int64_t step, const Body& body) {
  if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
  step = std::max<int64_t>(step, 1);
  for (int64_t begin = 0; begin < total;) {
    const int64_t end = total - begin > step ? begin + step : total;
    body(begin, end);
    begin = end;
    if (begin < total) {
      if (absl::Status alive = context.CheckAlive(); !alive.ok()) {
        return alive;
      }
    }
  }
  return absl::OkStatus();
}

// RunChunked for bodies that may run concurrently on disjoint ranges: when
// the work (total units of unit_elements elements) reaches
// context.parallel_threshold_elements, the chunks go to the threads of
// context.chunk_pool. The call is still checked before every chunk but the
// first, and once it fails no further chunk starts.
template <typename Body>
absl::Status RunChunkedParallel(const ComputeContext& context, int64_t total,
                                int64_t step, int64_t unit_elements,
                                const Body& body) {
  step = std::max<int64_t>(step, 1);
  const int64_t chunks = total / step + (total % step != 0);
  const bool large = total >= context.parallel_threshold_elements /
                                  std::max<int64_t>(unit_elements, 1);
  if (context.chunk_pool == nullptr || context.chunk_pool->threads() < 2 ||
      chunks < 2 || !large) {
    return RunChunked(context, total, step, body);
  }
  if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
  absl::Mutex mu;
  absl::Status status;  // guarded by mu
  std::atomic<bool> stop{false};
  context.chunk_pool->ParallelFor(chunks, [&](int64_t chunk) {
    if (stop.load(std::memory_order_relaxed)) return;
    if (chunk > 0) {
      absl::MutexLock lock(&mu);
      if (!status.ok()) return;
      status = context.CheckAlive();
      if (!status.ok()) {
        stop.store(true, std::memory_order_relaxed);
        return;
      }
    }
    const int64_t begin = chunk * step;
    body(begin, std::min(total, begin + step));
  });
  absl::MutexLock lock(&mu);
  return status;
}

// How many units of `unit_elements` elements make one chunk (at least 1).
int64_t UnitsPerChunk(const ComputeContext& context, int64_t unit_elements) {
  return std::max<int64_t>(
      1, context.chunk_elements / std::max<int64_t>(unit_elements, 1));
}

template <typename T>
absl::Status ElementwiseDerivativeInto(const ResolvedSpec& spec, int order,
                                       absl::Span<const T> x,
                                       const ComputeContext& context,
                                       absl::Span<T> y) {
  return RunChunkedParallel(
      context, static_cast<int64_t>(x.size()), context.chunk_elements, 1,
      [&](int64_t b, int64_t e) {
        Derivative<T>(spec.function, spec.alpha, order, x.subspan(b, e - b),
                      y.subspan(b, e - b));
      });
}

template <typename T>
absl::Status EvaluateAs(const ResolvedSpec& spec, const TensorView& x,
                        const ComputeContext& context, v1::Tensor* out) {
  std::optional<ResolvedAxis> axis;
  if (!IsElementwise(spec.function)) {
    absl::StatusOr<ResolvedAxis> resolved = ResolveAxis(spec, x);
    if (!resolved.ok()) return resolved.status();
    axis = *resolved;
  }
  if (absl::Status s = CheckResponseBytes(
          context, TensorWireBytes(x.size(), sizeof(T), x.rank()),
          "the Evaluate response", kSplitTheInput);
      !s.ok()) {
    return s;
  }
  OutputTensor<T> y(out, x.shape(), x.encoding(), x.size());
  const absl::Span<const T> xs = x.values<T>();
  const absl::Span<T> ys = y.values();
  absl::Status status;
  if (axis) {
    const AxisView v = axis->view;
    status = RunChunkedParallel(
        context, v.outer, UnitsPerChunk(context, v.size * v.inner),
        v.size * v.inner, [&](int64_t b, int64_t e) {
          SoftmaxForward<T>(spec.function, v, xs, ys, b, e);
        });
  } else {
    status = RunChunkedParallel(context, x.size(), context.chunk_elements, 1,
                                [&](int64_t b, int64_t e) {
                                  Evaluate<T>(spec.function, spec.alpha,
                                              xs.subspan(b, e - b),
                                              ys.subspan(b, e - b));
                                });
  }
  y.Commit();
  return status;
}

template <typename T>
absl::Status DerivativeAs(const ResolvedSpec& spec, int order,
                          const TensorView& x, const TensorView* g,
                          const ComputeContext& context, v1::Tensor* out) {
  std::optional<ResolvedAxis> axis;
  if (!IsElementwise(spec.function)) {
    absl::StatusOr<ResolvedAxis> resolved = ResolveAxis(spec, x);
    if (!resolved.ok()) return resolved.status();
    axis = *resolved;
  }
  if (absl::Status s = CheckResponseBytes(
          context, TensorWireBytes(x.size(), sizeof(T), x.rank()),
          "the Derivative response", kSplitTheInput);
      !s.ok()) {
    return s;
  }
  OutputTensor<T> y(out, x.shape(), x.encoding(), x.size());
  const absl::Span<const T> xs = x.values<T>();
  const absl::Span<T> ys = y.values();
  absl::Status status;
  if (g == nullptr) {
    status = ElementwiseDerivativeInto<T>(spec, order, xs, context, ys);
  } else if (axis) {
    const AxisView v = axis->view;
    const absl::Span<const T> gs = g->values<T>();
    status = RunChunkedParallel(
        context, v.outer, UnitsPerChunk(context, v.size * v.inner),
        v.size * v.inner, [&](int64_t b, int64_t e) {
          SoftmaxVjp<T>(spec.function, v, xs, gs, ys, b, e);
        });
  } else {
    const absl::Span<const T> gs = g->values<T>();
    status = RunChunkedParallel(
        context, x.size(), context.chunk_elements, 1,
        [&](int64_t b, int64_t e) {
          Vjp<T>(spec.function, spec.alpha, xs.subspan(b, e - b),
                 gs.subspan(b, e - b), ys.subspan(b, e - b));
        });
  }
  y.Commit();
  return status;
}

template <typename T>
absl::Status JacobianAs(const ResolvedSpec& spec, bool dense,
                        const TensorView& x, const ComputeContext& context,
                        v1::JacobianResponse* response) {
  const absl::Span<const T> xs = x.values<T>();
  v1::Tensor* out = response->mutable_jacobian();

  if (IsElementwise(spec.function) && !dense) {
    if (absl::Status s = CheckResponseBytes(
            context, TensorWireBytes(x.size(), sizeof(T), x.rank()),
            "the Jacobian response", kSplitTheInput);
        !s.ok()) {
      return s;
    }
    OutputTensor<T> diag(out, x.shape(), x.encoding(), x.size());
    absl::Status status =
        ElementwiseDerivativeInto<T>(spec, 1, xs, context, diag.values());
    diag.Commit();
    response->set_diagonal(true);
    return status;
  }

  // Dense: one [c, c] matrix per row.
  std::vector<int64_t> shape;
  int64_t c;
  std::optional<AxisView> view;
  if (IsElementwise(spec.function)) {
    if (x.rank() == 0) {
      return absl::InvalidArgumentError(
          "dense = true needs input of rank >= 1 (input.shape is []): the "
          "matrices are taken per last-axis row; use dense = false for a "
          "scalar");
    }
    c = x.shape().back();
    shape.assign(x.shape().begin(), x.shape().end());
    shape.push_back(c);
  } else {
    absl::StatusOr<ResolvedAxis> resolved = ResolveAxis(spec, x);
    if (!resolved.ok()) return resolved.status();
    view = resolved->view;
    c = x.shape()[resolved->axis];
    for (int d = 0; d < x.rank(); ++d) {
      if (d != resolved->axis) shape.push_back(x.shape()[d]);
    }
    shape.push_back(c);
    shape.push_back(c);
  }
  const int64_t elements = CheckedProduct(shape);
  const std::string instead =
      IsElementwise(spec.function)
          ? "use dense = false for the diagonal, or Derivative with "
            "upstream_grad (VJP)"
          : "use Derivative with upstream_grad (VJP) instead of the dense "
            "Jacobian";
  if (absl::Status s = CheckResponseBytes(
          context,
          TensorWireBytes(elements, sizeof(T), static_cast<int>(shape.size())),
          absl::StrCat("the dense Jacobian ", ShapeString(shape)), instead);
      !s.ok()) {
    return s;
  }
  if (context.max_jacobian_bytes > 0 &&
      elements > context.max_jacobian_bytes / static_cast<int64_t>(sizeof(T))) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the dense Jacobian ", ShapeString(shape), " would be ",
        elements * static_cast<int64_t>(sizeof(T)),
        " bytes of values, over the dense Jacobian limit of ",
        context.max_jacobian_bytes, " bytes (--max_jacobian_mb); ", instead));
  }
  OutputTensor<T> jac(out, shape, x.encoding(), elements);
  const absl::Span<T> js = jac.values();
  absl::Status status;
  if (view) {
    const AxisView v = *view;
    status = RunChunkedParallel(
        context, v.outer, UnitsPerChunk(context, v.inner * c * c),
        v.inner * c * c, [&](int64_t b, int64_t e) {
          SoftmaxJacobian<T>(spec.function, v, xs, js, b, e);
        });
  } else if (x.size() > 0) {  // else c * c below may overflow
    const int64_t rows = x.size() / c;
    std::vector<T> diag;
    status = RunChunked(
        context, rows, UnitsPerChunk(context, c * c),
        [&](int64_t b, int64_t e) {
          diag.resize((e - b) * c);
          Derivative<T>(spec.function, spec.alpha, 1,
                        xs.subspan(b * c, (e - b) * c), absl::MakeSpan(diag));
          DiagonalToDense<T>(diag, c, js.subspan(b * c * c, (e - b) * c * c));
        });
  }
  jac.Commit();
  response->set_diagonal(false);
  return status;
}

struct CrossEntropyLabels {
  absl::Span<const int64_t> class_indices;
  const TensorView* target_probs = nullptr;
};

template <typename T>
absl::Status CrossEntropyAs(const TensorView& logits,
                            const CrossEntropyLabels& labels,
                            Reduction reduction,
                            const CrossEntropyOptions& options,
                            bool return_probabilities,
                            const ComputeContext& context,
                            v1::SoftmaxCrossEntropyResponse* response) {
  const int64_t classes = logits.shape().back();
  const int64_t rows = logits.size() / classes;
  const absl::Span<const int64_t> leading =
      logits.shape().subspan(0, logits.rank() - 1);
  const bool per_row = reduction == Reduction::kNone;

  int64_t bytes = TensorWireBytes(per_row ? rows : 1, sizeof(T),
                                  per_row ? logits.rank() - 1 : 0);
  const int64_t logits_bytes =
      TensorWireBytes(logits.size(), sizeof(T), logits.rank());
  bytes = AddBytes(bytes, logits_bytes);
  if (return_probabilities) bytes = AddBytes(bytes, logits_bytes);
  if (absl::Status s = CheckResponseBytes(
          context, bytes, "the SoftmaxCrossEntropy response",
          return_probabilities
              ? "leave return_probabilities unset, or split the batch into "
                "smaller requests"
              : "split the batch into smaller requests");
      !s.ok()) {
    return s;
  }

  const Encoding encoding = logits.encoding();
  OutputTensor<T> loss(response->mutable_loss(),
                       per_row ? leading : absl::Span<const int64_t>(),
                       encoding, per_row ? rows : 1);
  OutputTensor<T> grad(response->mutable_grad_logits(), logits.shape(),
                       encoding, logits.size());
  std::optional<OutputTensor<T>> probs;
  if (return_probabilities) {
    probs.emplace(response->mutable_probabilities(), logits.shape(), encoding,
                  logits.size());
  }
  // Reduced losses need the per-row values somewhere before summing.
  std::vector<T> row_loss_scratch(per_row ? 0 : rows);
  const absl::Span<T> row_loss =
      per_row ? loss.values() : absl::MakeSpan(row_loss_scratch);
  const absl::Span<const T> target_probs =
      labels.target_probs ? labels.target_probs->values<T>()
                          : absl::Span<const T>();
  const absl::Span<T> probs_values = probs ? probs->values() : absl::Span<T>();

  CrossEntropyPartial total;
  absl::Status status = RunChunked(
      context, rows, UnitsPerChunk(context, classes),
      [&](int64_t b, int64_t e) {
        const CrossEntropyPartial part = CrossEntropyRows<T>(
            classes, logits.values<T>(), labels.class_indices, target_probs,
            options, row_loss, grad.values(), probs_values, b, e);
        total.counted_rows += part.counted_rows;
        total.loss_sum += part.loss_sum;
      });
  if (status.ok()) {
    ReduceCrossEntropy<T>(reduction, total, grad.values(), loss.values());
  }
  loss.Commit();
  grad.Commit();
  if (probs) probs->Commit();
  return status;
}

}  // namespace

absl::Status ComputeContext::CheckAlive() const {
  // The deadline first: gRPC also marks a call cancelled when it expires,
  // and the client should hear the more specific reason.
  if (std::chrono::system_clock::now() >= deadline) {
    return absl::DeadlineExceededError(
        "the call's deadline passed while computing; the rest of the work "
        "was skipped");
  }
  if (is_cancelled && is_cancelled()) {
    return absl::CancelledError(
        "the call was cancelled; the rest of the work was skipped");
  }
  return absl::OkStatus();
}

absl::Status HandleEvaluate(const v1::EvaluateRequest& request,
                            const ComputeContext& context,
                            v1::EvaluateResponse* response) {
  absl::StatusOr<ResolvedSpec> spec = ResolveSpec(request.spec());
  if (!spec.ok()) return spec.status();
  absl::StatusOr<TensorView> x =
      DecodeRequired(request.has_input(), request.input(), "input");
  if (!x.ok()) return x.status();
  v1::Tensor* out = response->mutable_output();
  return x->dtype() == v1::FLOAT32
             ? EvaluateAs<float>(*spec, *x, context, out)
             : EvaluateAs<double>(*spec, *x, context, out);
}

absl::Status HandleDerivative(const v1::DerivativeRequest& request,
                              const ComputeContext& context,
                              v1::DerivativeResponse* response) {
  absl::StatusOr<ResolvedSpec> spec = ResolveSpec(request.spec());
  if (!spec.ok()) return spec.status();
  const int order = request.order() == 0 ? 1 : request.order();
  if (order != 1 && order != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("order = ", request.order(),
                     " is not supported; expected 1 or 2 (0 means 1)"));
  }
  absl::StatusOr<TensorView> x =
      DecodeRequired(request.has_input(), request.input(), "input");
  if (!x.ok()) return x.status();

  std::optional<TensorView> g;
  if (request.has_upstream_grad()) {
    if (order != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("upstream_grad is set with order = ", order,
                       "; the vector-Jacobian product needs order 1"));
    }
    absl::StatusOr<TensorView> decoded =
        DecodeTensor(request.upstream_grad(), "upstream_grad");
    if (!decoded.ok()) return decoded.status();
    if (absl::Status s =
            CheckSameLayout(*decoded, "upstream_grad", *x, "input");
        !s.ok()) {
      return s;
    }
    g = *std::move(decoded);
  } else if (!IsElementwise(spec->function)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upstream_grad is missing: the derivative of ",
        FunctionString(spec->function),
        " is a matrix per row; pass upstream_grad for the vector-Jacobian "
        "product, or call the Jacobian RPC for the matrix"));
  }
  v1::Tensor* out = response->mutable_output();
  const TensorView* g_ptr = g ? &*g : nullptr;
  return x->dtype() == v1::FLOAT32
             ? DerivativeAs<float>(*spec, order, *x, g_ptr, context, out)
             : DerivativeAs<double>(*spec, order, *x, g_ptr, context, out);
}

absl::Status HandleJacobian(const v1::JacobianRequest& request,
                            const ComputeContext& context,
                            v1::JacobianResponse* response) {
  absl::StatusOr<ResolvedSpec> spec = ResolveSpec(request.spec());
  if (!spec.ok()) return spec.status();
  absl::StatusOr<TensorView> x =
      DecodeRequired(request.has_input(), request.input(), "input");
  if (!x.ok()) return x.status();
  return x->dtype() == v1::FLOAT32
             ? JacobianAs<float>(*spec, request.dense(), *x, context, response)
             : JacobianAs<double>(*spec, request.dense(), *x, context,
                                  response);
}

absl::Status HandleSoftmaxCrossEntropy(
    const v1::SoftmaxCrossEntropyRequest& request,
    const ComputeContext& context, v1::SoftmaxCrossEntropyResponse* response) {
  absl::StatusOr<TensorView> logits =
      DecodeRequired(request.has_logits(), request.logits(), "logits");
  if (!logits.ok()) return logits.status();
  if (logits->rank() == 0) {
    return absl::InvalidArgumentError(
        "logits.shape is [] (a scalar); expected rank >= 1 with the classes "
        "on the last axis");
  }
  const int64_t classes = logits->shape().back();
  if (classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("logits.shape ", ShapeString(logits->shape()),
                     " has 0 classes on its last axis; expected at least 1"));
  }
  const int64_t rows = logits->size() / classes;

  Reduction reduction;
  switch (request.reduction()) {
    case v1::SoftmaxCrossEntropyRequest::MEAN:
      reduction = Reduction::kMean;
      break;
    case v1::SoftmaxCrossEntropyRequest::SUM:
      reduction = Reduction::kSum;
      break;
    case v1::SoftmaxCrossEntropyRequest::NONE:
      reduction = Reduction::kNone;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("reduction = ", request.reduction(),
                       " is not a known Reduction; expected MEAN, SUM or "
                       "NONE"));
  }

  CrossEntropyOptions options;
  const double smoothing = request.label_smoothing();
  if (!(smoothing >= 0 && smoothing < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("label_smoothing = ", smoothing, " is outside [0, 1)"));
  }
  options.label_smoothing = smoothing;

  CrossEntropyLabels labels;
  std::optional<TensorView> target_probs;
  if (request.has_target_probs()) {
    if (request.has_ignore_index()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ignore_index = ", request.ignore_index(),
          " is set but the labels are target_probs; ignore_index applies to "
          "class_indices only (as in PyTorch)"));
    }
    absl::StatusOr<TensorView> decoded =
        DecodeTensor(request.target_probs(), "target_probs");
    if (!decoded.ok()) return decoded.status();
    if (absl::Status s =
            CheckSameLayout(*decoded, "target_probs", *logits, "logits");
        !s.ok()) {
      return s;
    }
    target_probs = *std::move(decoded);
    labels.target_probs = &*target_probs;
  } else {
    if (request.class_indices_size() != rows) {
      return absl::InvalidArgumentError(absl::StrCat(
          "class_indices has ", request.class_indices_size(),
          " values, expected ", rows, " (one per row of logits.shape ",
          ShapeString(logits->shape()),
          "); or set target_probs with the shape of logits"));
    }
    if (request.has_ignore_index()) {
      options.ignore_index = request.ignore_index();
    }
    for (int i = 0; i < request.class_indices_size(); ++i) {
      const int64_t label = request.class_indices(i);
      if ((label < 0 || label >= classes) && label != options.ignore_index) {
        return absl::InvalidArgumentError(absl::StrCat(
            "class_indices[", i, "] = ", label, " is out of range [0, ",
            classes, ")",
            options.ignore_index ? absl::StrCat(" and is not ignore_index = ",
                                                *options.ignore_index)
                                 : ""));
      }
    }
    labels.class_indices = absl::MakeConstSpan(request.class_indices().data(),
                                               request.class_indices_size());
  }
  return logits->dtype() == v1::FLOAT32
             ? CrossEntropyAs<float>(*logits, labels, reduction, options,
                                     request.return_probabilities(), context,
                                     response)
             : CrossEntropyAs<double>(*logits, labels, reduction, options,
                                      request.return_probabilities(), context,
                                      response);
}

void HandleListFunctions(v1::ListFunctionsResponse* response) {
  for (const FunctionInfo& info : AllFunctions()) {
    v1::FunctionInfo* out = response->add_functions();
    out->set_function(static_cast<v1::Function>(info.function));
    out->set_name(info.name);
    for (const std::string& alias : info.aliases) out->add_aliases(alias);
    out->set_elementwise(info.elementwise);
    for (const ParameterInfo& parameter : info.parameters) {
      v1::Parameter* p = out->add_parameters();
      p->set_name(parameter.name);
      p->set_default_value(parameter.default_value);
      p->set_valid_range(parameter.valid_range);
      p->set_description(parameter.description);
    }
    out->set_formula(info.formula);
    out->set_derivative_formula(info.derivative_formula);
    out->set_second_derivative_formula(info.second_derivative_formula);
    out->set_stable_form(info.stable_form);
    out->set_output_range(info.output_range);
    out->set_derivative_range(info.derivative_range);
    out->set_saturates(info.saturates);
    out->set_notes(info.notes);
  }
}

absl::Status HandleStreamRequest(const v1::StreamRequest& request,
                                 const ComputeContext& context,
                                 v1::StreamResponse* response) {
  switch (request.request_case()) {
    case v1::StreamRequest::kEvaluate:
      return HandleEvaluate(request.evaluate(), context,
                            response->mutable_evaluate());
    case v1::StreamRequest::kDerivative:
      return HandleDerivative(request.derivative(), context,
                              response->mutable_derivative());
    case v1::StreamRequest::REQUEST_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "request is empty; set exactly one of evaluate or derivative");
}

namespace {

template <typename T>
absl::Status AnalyzeAs(const ResolvedSpec& spec, double epsilon,
                       const TensorView& x, const ComputeContext& context,
                       GradientFlowCounts* counts) {
  const absl::Span<const T> xs = x.values<T>();
  return RunChunked(
      context, x.size(), context.chunk_elements, [&](int64_t b, int64_t e) {
        AccumulateGradientFlow<T>(spec.function, spec.alpha, epsilon,
                                  xs.subspan(b, e - b), counts);
      });
}

}  // namespace

absl::Status HandleAnalyze(const v1::AnalyzeRequest& request,
                           const ComputeContext& context,
                           v1::AnalyzeResponse* response) {
  absl::StatusOr<ResolvedSpec> spec = ResolveSpec(request.spec());
  if (!spec.ok()) return spec.status();
  if (!IsElementwise(spec->function)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.function is ", FunctionString(spec->function),
        ", but Analyze needs an elementwise function: the Jacobian of ",
        FunctionString(spec->function),
        " is a full matrix per row, with no per-unit f'(x) to gate the "
        "gradient (eq. 3.2.27); call Jacobian for the matrices"));
  }
  double epsilon = request.epsilon();
  if (epsilon == 0) {
    epsilon = kDefaultSaturationEpsilon;
  } else if (!(epsilon > 0) || !std::isfinite(epsilon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon = ", epsilon,
                     " is not a finite positive number; expected e.g. 1e-3 "
                     "(0 or unset means ",
                     kDefaultSaturationEpsilon, ")"));
  }
  std::optional<int> layers;
  if (request.has_layers()) {
    if (request.layers() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers = ", request.layers(),
                       " is negative; expected L >= 0 (or leave it unset)"));
    }
    layers = request.layers();
  }
  absl::StatusOr<TensorView> x =
      DecodeRequired(request.has_input(), request.input(), "input");
  if (!x.ok()) return x.status();

  GradientFlowCounts counts;
  const absl::Status status =
      x->dtype() == v1::FLOAT32
          ? AnalyzeAs<float>(*spec, epsilon, *x, context, &counts)
          : AnalyzeAs<double>(*spec, epsilon, *x, context, &counts);
  if (!status.ok()) return status;

  const GradientFlowReport r = SummarizeGradientFlow(counts, layers);
  response->set_units(r.units);
  response->set_nan_count(r.nan_units);
  response->set_epsilon(epsilon);
  response->set_zero_outputs(r.zero_outputs);
  response->set_saturated_units(r.saturated);
  response->set_dead_units(r.dead);
  response->set_sparsity(r.sparsity);
  response->set_saturated_fraction(r.saturated_fraction);
  response->set_dead_fraction(r.dead_fraction);
  response->set_min_derivative(r.min_derivative);
  response->set_max_derivative(r.max_derivative);
  response->set_mean_derivative(r.mean_derivative);
  response->set_mean_abs_derivative(r.mean_abs_derivative);
  response->set_max_abs_derivative(r.max_abs_derivative);
  if (r.attenuation) response->set_attenuation(*r.attenuation);
  return absl::OkStatus();
}

}  // namespace actsvc::server
