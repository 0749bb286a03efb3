#include "client/answers.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "client/tensor.h"
#include "core/activation.h"
#include "core/half.h"

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;

// Calls fn with a value of the C++ type of `dtype`.
template <typename Fn>
auto VisitDtype(v1::DataType dtype, Fn fn) {
  switch (dtype) {
    case v1::FLOAT64:
      return fn(double{});
    case v1::FLOAT16:
      return fn(Float16{});
    case v1::BFLOAT16:
      return fn(BFloat16{});
    default:
      return fn(float{});
  }
}

// Values (already of T's dtype) as T: the half types are not arithmetic.
template <typename T>
std::vector<T> AsType(absl::Span<const double> v) {
  std::vector<T> out;
  out.reserve(v.size());
  for (double d : v) {
    if constexpr (kIsHalf<T>) {
      out.push_back(HalfFromDouble<T>(d));
    } else {
      out.push_back(static_cast<T>(d));
    }
  }
  return out;
}

template <typename T>
std::vector<double> Widen(absl::Span<const T> v) {
  std::vector<double> out;
  out.reserve(v.size());
  for (const T& t : v) out.push_back(ToDouble(t));
  return out;
}

Function FunctionOf(const v1::FunctionSpec& spec) {
  return static_cast<Function>(static_cast<int>(spec.function()));
}
double AlphaOf(const v1::FunctionSpec& spec) {
  return spec.has_alpha() ? spec.alpha() : DefaultAlpha(FunctionOf(spec));
}

// The view along the spec's axis (default -1) of x's shape for softmax and
// log_softmax; an empty view, which elementwise functions do not use,
// otherwise.
absl::StatusOr<AxisView> ViewOf(const v1::FunctionSpec& spec,
                                const std::vector<int64_t>& shape,
                                int* axis_out = nullptr) {
  if (IsElementwise(FunctionOf(spec))) return AxisView();
  const int rank = static_cast<int>(shape.size());
  if (rank == 0) {
    return absl::InvalidArgumentError(
        "softmax and xent need a shape of rank >= 1");
  }
  std::optional<int> axis =
      NormalizeAxis(spec.has_axis() ? spec.axis() : -1, rank);
  if (!axis.has_value()) {
    return absl::InvalidArgumentError("--axis is out of range for --shape");
  }
  if (axis_out != nullptr) *axis_out = *axis;
  return MakeAxisView(shape, *axis);
}

}  // namespace

std::vector<double> RandomValues(std::mt19937_64& rng, int64_t n, double lo,
                                 double hi, v1::DataType dtype) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> values(n);
  for (double& v : values) v = RoundToDtype(dist(rng), dtype);
  return values;
}

void PutSpecialValues(v1::DataType dtype, std::vector<double>* values) {
  const double inf = std::numeric_limits<double>::infinity();
  // The largest finite value and the smallest subnormal of each dtype.
  double max = std::numeric_limits<float>::max();
  double tiny = std::numeric_limits<float>::denorm_min();
  if (dtype == v1::FLOAT64) {
    max = std::numeric_limits<double>::max();
    tiny = std::numeric_limits<double>::denorm_min();
  } else if (dtype == v1::FLOAT16) {
    max = 65504;
    tiny = 0x1p-24;
  } else if (dtype == v1::BFLOAT16) {
    max = 0x1.fep127;
    tiny = 0x1p-133;
  }
  const double specials[] = {std::nan(""), inf,  -inf, 0.0,   -0.0,  tiny,
                             max,          -max, 30.0, -30.0, -0.75, 1.5};
  for (size_t i = 0; i < std::size(specials) && i < values->size(); ++i) {
    (*values)[i] = specials[i];
  }
}

namespace {

// f(x), or with an upstream gradient `g` the VJP.
absl::StatusOr<Answer> ForwardOrVjp(const v1::FunctionSpec& spec,
                                    const InputValues& x,
                                    std::optional<absl::Span<const double>> g) {
  const Function f = FunctionOf(spec);
  const absl::StatusOr<AxisView> view = ViewOf(spec, x.shape);
  if (!view.ok()) return view.status();
  return VisitDtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> in = AsType<T>(x.values);
    std::vector<T> y(in.size());
    if (g.has_value()) {
      const std::vector<T> gs = AsType<T>(*g);
      if (IsElementwise(f)) {
        Vjp<T>(f, AlphaOf(spec), in, gs, absl::MakeSpan(y));
      } else {
        SoftmaxVjp<T>(f, *view, in, gs, absl::MakeSpan(y));
      }
    } else if (IsElementwise(f)) {
      Evaluate<T>(f, AlphaOf(spec), in, absl::MakeSpan(y));
    } else {
      SoftmaxForward<T>(f, *view, in, absl::MakeSpan(y));
    }
    return Answer{x.shape, Widen<T>(y)};
  });
}

}  // namespace

absl::StatusOr<Answer> ExpectedEvaluate(const v1::FunctionSpec& spec,
                                        const InputValues& x) {
  return ForwardOrVjp(spec, x, std::nullopt);
}

absl::StatusOr<Answer> ExpectedDerivative(const v1::FunctionSpec& spec,
                                          int order, const InputValues& x) {
  const Function f = FunctionOf(spec);
  if (!IsElementwise(f)) {
    return absl::InvalidArgumentError(
        "the derivative of softmax/log_softmax is a matrix: use "
        "--rpc=vjp or --rpc=jacobian");
  }
  if (order != 1 && order != 2) {
    return absl::InvalidArgumentError("--order must be 1 or 2");
  }
  return VisitDtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> in = AsType<T>(x.values);
    std::vector<T> y(in.size());
    Derivative<T>(f, AlphaOf(spec), order, in, absl::MakeSpan(y));
    return Answer{x.shape, Widen<T>(y)};
  });
}

absl::StatusOr<Answer> ExpectedVjp(const v1::FunctionSpec& spec,
                                   const InputValues& x,
                                   absl::Span<const double> g) {
  return ForwardOrVjp(spec, x, g);
}

absl::StatusOr<Answer> ExpectedJacobian(const v1::FunctionSpec& spec,
                                        bool dense, const InputValues& x) {
  const Function f = FunctionOf(spec);
  if (IsElementwise(f)) {
    absl::StatusOr<Answer> diag = ExpectedDerivative(spec, 1, x);
    if (!diag.ok() || !dense) return diag;
    if (x.shape.empty()) {
      return absl::InvalidArgumentError(
          "a dense Jacobian needs a shape of rank >= 1");
    }
    const int64_t c = x.shape.back();
    Answer answer{x.shape, {}};
    answer.shape.push_back(c);
    answer.values = VisitDtype(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      std::vector<T> out(diag->values.size() * c);
      DiagonalToDense<T>(AsType<T>(diag->values), c, absl::MakeSpan(out));
      return Widen<T>(out);
    });
    return answer;
  }
  int axis = 0;
  absl::StatusOr<AxisView> view = ViewOf(spec, x.shape, &axis);
  if (!view.ok()) return view.status();
  Answer answer{x.shape, {}};
  answer.shape.erase(answer.shape.begin() + axis);
  answer.shape.push_back(view->size);
  answer.shape.push_back(view->size);
  answer.values = VisitDtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> out(view->rows() * view->size * view->size);
    SoftmaxJacobian<T>(f, *view, AsType<T>(x.values), absl::MakeSpan(out));
    return Widen<T>(out);
  });
  return answer;
}

absl::StatusOr<CrossEntropyAnswer> ExpectedCrossEntropy(
    const CrossEntropyInput& in) {
  const std::vector<int64_t>& shape = in.logits.shape;
  if (shape.empty()) {
    return absl::InvalidArgumentError(
        "softmax and xent need a shape of rank >= 1");
  }
  const int64_t c = shape.back();
  const int64_t n = static_cast<int64_t>(in.logits.values.size());
  const int64_t rows = c == 0 ? 0 : n / c;
  const bool per_row = in.reduction == Reduction::kNone;
  CrossEntropyAnswer answer;
  if (per_row) answer.loss.shape.assign(shape.begin(), shape.end() - 1);
  answer.grad_logits.shape = shape;
  if (in.probabilities) answer.probabilities.shape = shape;
  VisitDtype(in.logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> z = AsType<T>(in.logits.values);
    const std::vector<T> y = AsType<T>(in.target_probs);
    std::vector<T> row_loss(rows), grad(z.size()),
        probs(in.probabilities ? z.size() : 0);
    const CrossEntropyPartial total = CrossEntropyRows<T>(
        c, z, in.class_indices, y, in.options, absl::MakeSpan(row_loss),
        absl::MakeSpan(grad), absl::MakeSpan(probs), 0, rows);
    std::vector<T> reduced(1);
    ReduceCrossEntropy<T>(
        in.reduction, total, absl::MakeSpan(grad),
        per_row ? absl::MakeSpan(row_loss) : absl::MakeSpan(reduced));
    answer.loss.values = Widen<T>(per_row ? row_loss : reduced);
    answer.grad_logits.values = Widen<T>(grad);
    answer.probabilities.values = Widen<T>(probs);
    return 0;
  });
  return answer;
}

GradientFlowReport ExpectedAnalysis(const v1::FunctionSpec& spec,
                                    double epsilon, std::optional<int> layers,
                                    const InputValues& x) {
  return VisitDtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    GradientFlowCounts counts;
    AccumulateGradientFlow<T>(
        FunctionOf(spec), AlphaOf(spec),
        epsilon == 0 ? kDefaultSaturationEpsilon : epsilon, AsType<T>(x.values),
        &counts);
    return SummarizeGradientFlow(counts, layers);
  });
}

}  // namespace actsvc::client
