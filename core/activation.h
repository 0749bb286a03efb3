// Elementwise activation functions: values, first and second derivatives and
// vector-Jacobian products over whole arrays. Plain C++ over absl::Span: no
// gRPC, no protobuf, no logging. The math is defined in reference.h; see
// SPEC.md §1 for the contract (stable forms, IEEE semantics, accuracy).
#ifndef ACTSVC_CORE_ACTIVATION_H_
#define ACTSVC_CORE_ACTIVATION_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace actsvc {

// Every function of the service. The numbers equal actsvc.v1.Function's, so a
// static_cast maps one to the other.
enum class Function : int {
  kIdentity = 1,
  kSigmoid = 2,
  kTanh = 3,
  kRelu = 4,
  kLeakyRelu = 5,
  kGelu = 6,
  kGeluTanh = 7,
  kSilu = 8,
  kSoftplus = 9,
  kElu = 10,
  kSelu = 11,
  kSoftmax = 12,
  kLogSoftmax = 13,
};
inline constexpr Function kFirstFunction = Function::kIdentity;
inline constexpr Function kLastFunction = Function::kLogSoftmax;

// True for the functions applied to each element on its own; false for
// softmax and log_softmax, which act along an axis (see softmax.h).
bool IsElementwise(Function f);

// Lower-case name ("gelu_tanh"), as in the CLI and ListFunctions.
absl::string_view FunctionName(Function f);

// Parses a name or alias ("swish" for silu, "gelu_erf" for gelu), any case,
// '-' or '_'. nullopt when unknown.
std::optional<Function> FunctionFromName(absl::string_view name);

// Whether f takes the `alpha` parameter (leaky_relu, elu), and its default.
bool TakesAlpha(Function f);
double DefaultAlpha(Function f);

// What an elementwise kernel computes over an array: f, f', f'' or the
// vector-Jacobian product g * f'. The dispatched kernels take it as is
// (core/activation.cc, core/activation_half.cc).
enum class ElementwiseKind : int {
  kValue = 0,        // f(x)
  kDerivative1 = 1,  // f'(x)
  kDerivative2 = 2,  // f''(x)
  kVjp = 3,          // g * f'(x)
};

// The kind that computes derivative `order` (0 = f, 1 = f', 2 = f'').
constexpr ElementwiseKind KindOfOrder(int order) {
  return order == 0   ? ElementwiseKind::kValue
         : order == 1 ? ElementwiseKind::kDerivative1
                      : ElementwiseKind::kDerivative2;
}

// The derivative order a kind evaluates f at: the VJP takes f'.
constexpr int OrderOf(ElementwiseKind kind) {
  switch (kind) {
    case ElementwiseKind::kValue:
      return 0;
    case ElementwiseKind::kDerivative1:
    case ElementwiseKind::kVjp:
      return 1;
    case ElementwiseKind::kDerivative2:
      return 2;
  }
  return 0;
}

// y[i] = f(x[i]). Precondition: IsElementwise(f), x.size() == y.size(),
// alpha finite. y may be x (in place).
template <typename T>
void Evaluate(Function f, double alpha, absl::Span<const T> x, absl::Span<T> y);

// y[i] = f'(x[i]) (order 1) or f''(x[i]) (order 2). Same preconditions.
template <typename T>
void Derivative(Function f, double alpha, int order, absl::Span<const T> x,
                absl::Span<T> y);

// y[i] = g[i] * f'(x[i]), the vector-Jacobian product. y may be x or g.
template <typename T>
void Vjp(Function f, double alpha, absl::Span<const T> x, absl::Span<const T> g,
         absl::Span<T> y);

// The scalar reference (core/reference.h) over an array: f (order 0), f' or
// f''. For benchmarks and tests; the entry points above are the fast path.
template <typename T>
void ReferenceEvaluate(Function f, double alpha, int order,
                       absl::Span<const T> x, absl::Span<T> y);

// The instruction set the kernels run on in this process ("AVX3", "AVX2",
// "SSE4", "NEON", "EMU128", ...), chosen at run time.
const char* KernelTargetName();

// Expands a diagonal (rows * c values: f'(x) per last-axis row) into dense
// [rows, c, c] matrices, zero off the diagonal. dense.size() == diag.size()*c.
template <typename T>
void DiagonalToDense(absl::Span<const T> diag, int64_t c, absl::Span<T> dense);

}  // namespace actsvc

#endif  // ACTSVC_CORE_ACTIVATION_H_
