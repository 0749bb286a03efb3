#include "core/activation.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "core/reference.h"

namespace actsvc {
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
void MapOrder(Function f, double alpha, int order, absl::Span<const T> x,
              absl::Span<T> y) {
  reference::VisitElementwise(f, [&](auto op) {
    using Op = decltype(op);
    for (size_t i = 0; i < x.size(); ++i) {
      y[i] = reference::EvalAt<Op>(order, alpha, x[i]);
    }
  });
}

}  // namespace

template <typename T>
void Evaluate(Function f, double alpha, absl::Span<const T> x,
              absl::Span<T> y) {
  MapOrder(f, alpha, 0, x, y);
}

template <typename T>
void Derivative(Function f, double alpha, int order, absl::Span<const T> x,
                absl::Span<T> y) {
  MapOrder(f, alpha, order, x, y);
}

template <typename T>
void Vjp(Function f, double alpha, absl::Span<const T> x, absl::Span<const T> g,
         absl::Span<T> y) {
  reference::VisitElementwise(f, [&](auto op) {
    using Op = decltype(op);
    using W = reference::Wider<T>;
    for (size_t i = 0; i < x.size(); ++i) {
      const T xi = x[i];
      // One rounding: the product is formed in W from the unrounded f'.
      const W d = std::isnan(xi)
                      ? static_cast<W>(xi)
                      : Op::Eval(1, static_cast<W>(alpha), static_cast<W>(xi));
      y[i] = static_cast<T>(static_cast<W>(g[i]) * d);
    }
  });
}

template <typename T>
void DiagonalToDense(absl::Span<const T> diag, int64_t c, absl::Span<T> dense) {
  std::fill(dense.begin(), dense.end(), T(0));
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
  template void DiagonalToDense<T>(absl::Span<const T>, int64_t, absl::Span<T>);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
#undef ACTSVC_INSTANTIATE

}  // namespace actsvc
