// Elementwise functions over arrays: the per-target kernels of
// core/activation-inl.h, compiled once per instruction set here
// (hwy/foreach_target.h) and chosen at run time (HWY_DYNAMIC_DISPATCH), so
// that one binary runs the best code on every x86-64 or Arm host.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/activation.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include "core/activation-inl.h"
#include "core/elementwise_ops-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

// One entry per dtype: the function's kernel applied over the array for
// kind (f, f', f'' or VJP). Every elementwise function has one, in float32
// and float64.
template <typename T>
void ElementwiseKernel(Function f, ElementwiseKind kind, double alpha,
                       const T* x, const T* g, T* y, size_t n, T pos_inf,
                       T neg_inf) {
  const Limits<T> lim{pos_inf, neg_inf, f, alpha};
  VisitElementwiseOp<T>(f, kind, alpha, [&](const auto& op) {
    RunKind(op, kind, x, g, y, n, lim);
  });
}

void ElementwiseF32(Function f, ElementwiseKind kind, double alpha,
                    const float* x, const float* g, float* y, size_t n,
                    float pos_inf, float neg_inf) {
  ElementwiseKernel<float>(f, kind, alpha, x, g, y, n, pos_inf, neg_inf);
}
void ElementwiseF64(Function f, ElementwiseKind kind, double alpha,
                    const double* x, const double* g, double* y, size_t n,
                    double pos_inf, double neg_inf) {
  ElementwiseKernel<double>(f, kind, alpha, x, g, y, n, pos_inf, neg_inf);
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <limits>
#include <string>

#include "absl/strings/ascii.h"
#include "core/activation_half.h"
#include "core/half.h"
#include "core/reference.h"

namespace actsvc {

HWY_EXPORT(ElementwiseF32);
HWY_EXPORT(ElementwiseF64);

namespace {

struct NameEntry {
  absl::string_view name;
  Function function;
};

// Canonical names first (FunctionName returns the first match), then aliases.
constexpr NameEntry kNames[] = {
    {"identity", Function::kIdentity},
    {"sigmoid", Function::kSigmoid},
    {"tanh", Function::kTanh},
    {"relu", Function::kRelu},
    {"leaky_relu", Function::kLeakyRelu},
    {"gelu", Function::kGelu},
    {"gelu_tanh", Function::kGeluTanh},
    {"silu", Function::kSilu},
    {"softplus", Function::kSoftplus},
    {"elu", Function::kElu},
    {"selu", Function::kSelu},
    {"softmax", Function::kSoftmax},
    {"log_softmax", Function::kLogSoftmax},
    // Aliases.
    {"linear", Function::kIdentity},
    {"logistic", Function::kSigmoid},
    {"leakyrelu", Function::kLeakyRelu},
    {"gelu_erf", Function::kGelu},
    {"gelu_new", Function::kGeluTanh},
    {"swish", Function::kSilu},
    {"logsoftmax", Function::kLogSoftmax},
};

}  // namespace

bool IsElementwise(Function f) {
  return f != Function::kSoftmax && f != Function::kLogSoftmax;
}

absl::string_view FunctionName(Function f) {
  for (const NameEntry& e : kNames) {
    if (e.function == f) return e.name;
  }
  return "unknown";
}

std::optional<Function> FunctionFromName(absl::string_view name) {
  std::string key = absl::AsciiStrToLower(name);
  std::replace(key.begin(), key.end(), '-', '_');
  for (const NameEntry& e : kNames) {
    if (e.name == key) return e.function;
  }
  return std::nullopt;
}

bool TakesAlpha(Function f) {
  return f == Function::kLeakyRelu || f == Function::kElu;
}

double DefaultAlpha(Function f) {
  switch (f) {
    case Function::kLeakyRelu:
      return 0.01;
    case Function::kElu:
      return 1.0;
    default:
      return 0.0;
  }
}

namespace {

template <typename T>
void Dispatch(Function f, ElementwiseKind kind, double alpha, const T* x,
              const T* g, T* y, size_t n) {
  if constexpr (kIsHalf<T>) {
    internal::ElementwiseHalf(f, kind, alpha, x, g, y, n);
  } else {
    if (n == 0) return;
    const int order = OrderOf(kind);
    constexpr T kInf = std::numeric_limits<T>::infinity();
    const T pos = reference::Elementwise<T>(f, alpha, order, kInf);
    const T neg = reference::Elementwise<T>(f, alpha, order, -kInf);
    if constexpr (sizeof(T) == 4) {
      HWY_DYNAMIC_DISPATCH(ElementwiseF32)
      (f, kind, alpha, x, g, y, n, pos, neg);
    } else {
      HWY_DYNAMIC_DISPATCH(ElementwiseF64)
      (f, kind, alpha, x, g, y, n, pos, neg);
    }
  }
}

}  // namespace

const char* KernelTargetName() {
  // The index HWY_DYNAMIC_DISPATCH uses, resolved the same way.
  const int64_t targets = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(targets & -targets);
}

template <typename T>
void Evaluate(Function f, double alpha, absl::Span<const T> x,
              absl::Span<T> y) {
  Dispatch<T>(f, ElementwiseKind::kValue, alpha, x.data(), nullptr, y.data(),
              x.size());
}

template <typename T>
void Derivative(Function f, double alpha, int order, absl::Span<const T> x,
                absl::Span<T> y) {
  Dispatch<T>(f, KindOfOrder(order), alpha, x.data(), nullptr, y.data(),
              x.size());
}

template <typename T>
void Vjp(Function f, double alpha, absl::Span<const T> x, absl::Span<const T> g,
         absl::Span<T> y) {
  Dispatch<T>(f, ElementwiseKind::kVjp, alpha, x.data(), g.data(), y.data(),
              x.size());
}

// Half types: the float64 reference, rounded once.
template <typename T>
void ReferenceEvaluate(Function f, double alpha, int order,
                       absl::Span<const T> x, absl::Span<T> y) {
  if constexpr (kIsHalf<T>) {
    for (size_t i = 0; i < x.size(); ++i) {
      y[i] = HalfFromDouble<T>(
          reference::Elementwise<double>(f, alpha, order, ToDouble(x[i])));
    }
  } else {
    reference::VisitElementwise(f, [&](auto op) {
      using Op = decltype(op);
      for (size_t i = 0; i < x.size(); ++i) {
        y[i] = reference::EvalAt<Op>(order, alpha, x[i]);
      }
    });
  }
}

template <typename T>
void DiagonalToDense(absl::Span<const T> diag, int64_t c, absl::Span<T> dense) {
  std::fill(dense.begin(), dense.end(), T{});  // +0 in every dtype
  if (c == 0) return;
  const int64_t rows = static_cast<int64_t>(diag.size()) / c;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < c; ++i) {
      dense[(r * c + i) * c + i] = diag[r * c + i];
    }
  }
}

#define ACTSVC_INSTANTIATE(T)                                             \
  template void Evaluate<T>(Function, double, absl::Span<const T>,        \
                            absl::Span<T>);                               \
  template void Derivative<T>(Function, double, int, absl::Span<const T>, \
                              absl::Span<T>);                             \
  template void Vjp<T>(Function, double, absl::Span<const T>,             \
                       absl::Span<const T>, absl::Span<T>);               \
  template void ReferenceEvaluate<T>(Function, double, int,               \
                                     absl::Span<const T>, absl::Span<T>); \
  template void DiagonalToDense<T>(absl::Span<const T>, int64_t, absl::Span<T>);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
ACTSVC_INSTANTIATE(Float16)
ACTSVC_INSTANTIATE(BFloat16)
#undef ACTSVC_INSTANTIATE

}  // namespace actsvc
#endif  // HWY_ONCE
