// The accuracy budgets of the float32 and float64 kernels, one table, in the
// style of Highway's math_test: a row per (function, dtype), a column per
// direction (f, f', f'' and the VJP g * f', indexed by ElementwiseKind; for
// softmax and log_softmax by SoftmaxOp). The accuracy tests look their bound
// up here (BudgetOf, NearZeroOf) instead of applying one rule to every
// function.
//
// The numbers are the contracts the code and the docs state: SPEC.md §4 and
// docs/accuracy.md (f, f' and the VJP 4 ULP, f'' 16 ULP, in both dtypes),
// core/activation-inl.h and core/gelu-inl.h (the elementwise kernels),
// core/softmax_row-inl.h and core/softmax_column-inl.h (softmax: p and
// log p 4 ULP; the VJPs 4 ULP beyond the condition of their sums).
//
// Near zero: within ±0.5 of an interior zero of f' or f'' SPEC.md §4 allows
// the absolute error near_zero · 2^-(digits − 1) instead of the ULP budget
// (0: no such exception). It applies to gelu, gelu_tanh and silu, except
// float32 gelu' and its VJP, which core/gelu-inl.h states within 4 ULP
// there too (a local expansion around the root).
#ifndef ACTSVC_TESTS_CORE_ULP_BUDGETS_H_
#define ACTSVC_TESTS_CORE_ULP_BUDGETS_H_

#include <cstdlib>

#include "core/activation.h"
#include "core/softmax.h"

namespace actsvc {
namespace test {

enum class Dtype { kFloat32, kFloat64 };

template <typename T>
constexpr Dtype DtypeOf() {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float32 or float64");
  return sizeof(T) == 4 ? Dtype::kFloat32 : Dtype::kFloat64;
}

// One row: the budgets of f, f', f'' and the VJP, in ElementwiseKind order.
struct ElementwiseBudget {
  Function function;
  Dtype dtype;
  double ulp[4];
  double near_zero[4];  // in units of 2^-(digits − 1); 0: none
};

// clang-format off
inline constexpr ElementwiseBudget kElementwiseBudgets[] = {
    // function            dtype            f  f'  f'' vjp   near zero
    {Function::kIdentity,  Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kIdentity,  Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kSigmoid,   Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kSigmoid,   Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kTanh,      Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kTanh,      Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kRelu,      Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kRelu,      Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kLeakyRelu, Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kLeakyRelu, Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kGelu,      Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 16, 0}},
    {Function::kGelu,      Dtype::kFloat64, {4, 4, 16, 4}, {0, 4, 16, 4}},
    {Function::kGeluTanh,  Dtype::kFloat32, {4, 4, 16, 4}, {0, 4, 16, 4}},
    {Function::kGeluTanh,  Dtype::kFloat64, {4, 4, 16, 4}, {0, 4, 16, 4}},
    {Function::kSilu,      Dtype::kFloat32, {4, 4, 16, 4}, {0, 4, 16, 4}},
    {Function::kSilu,      Dtype::kFloat64, {4, 4, 16, 4}, {0, 4, 16, 4}},
    {Function::kSoftplus,  Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kSoftplus,  Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kElu,       Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kElu,       Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kSelu,      Dtype::kFloat32, {4, 4, 16, 4}, {0, 0, 0, 0}},
    {Function::kSelu,      Dtype::kFloat64, {4, 4, 16, 4}, {0, 0, 0, 0}},
};
// clang-format on

// Softmax along an axis: p or log p (forward), and the VJPs from x and from
// the forward output, which are judged beyond the condition of their sums
// (8ε Σ_a |J_ai g_a| from x; 8ε y_i Σ_j |g_j| y_j or 8ε e^(y_i) Σ_j |g_j|
// from y; see core/softmax.h).
struct SoftmaxBudget {
  SoftmaxOp op;
  Dtype dtype;
  double ulp;
};

// clang-format off
inline constexpr SoftmaxBudget kSoftmaxBudgets[] = {
    {SoftmaxOp::kSoftmax,                  Dtype::kFloat32, 4},
    {SoftmaxOp::kSoftmax,                  Dtype::kFloat64, 4},
    {SoftmaxOp::kLogSoftmax,               Dtype::kFloat32, 4},
    {SoftmaxOp::kLogSoftmax,               Dtype::kFloat64, 4},
    {SoftmaxOp::kSoftmaxVjp,               Dtype::kFloat32, 4},
    {SoftmaxOp::kSoftmaxVjp,               Dtype::kFloat64, 4},
    {SoftmaxOp::kLogSoftmaxVjp,            Dtype::kFloat32, 4},
    {SoftmaxOp::kLogSoftmaxVjp,            Dtype::kFloat64, 4},
    {SoftmaxOp::kSoftmaxVjpFromOutput,     Dtype::kFloat32, 4},
    {SoftmaxOp::kSoftmaxVjpFromOutput,     Dtype::kFloat64, 4},
    {SoftmaxOp::kLogSoftmaxVjpFromOutput,  Dtype::kFloat32, 4},
    {SoftmaxOp::kLogSoftmaxVjpFromOutput,  Dtype::kFloat64, 4},
};
// clang-format on

// The row of (f, T); aborts when the table has none (a test asking for a
// budget nobody stated).
template <typename T>
const ElementwiseBudget& RowOf(Function f) {
  for (const ElementwiseBudget& b : kElementwiseBudgets) {
    if (b.function == f && b.dtype == DtypeOf<T>()) return b;
  }
  std::abort();
}

template <typename T>
double BudgetOf(Function f, ElementwiseKind kind) {
  return RowOf<T>(f).ulp[static_cast<int>(kind)];
}

// The near-zero absolute bound's factor (0: none) of (f, kind, T).
template <typename T>
double NearZeroOf(Function f, ElementwiseKind kind) {
  return RowOf<T>(f).near_zero[static_cast<int>(kind)];
}

template <typename T>
double BudgetOf(SoftmaxOp op) {
  for (const SoftmaxBudget& b : kSoftmaxBudgets) {
    if (b.op == op && b.dtype == DtypeOf<T>()) return b.ulp;
  }
  std::abort();
}

}  // namespace test
}  // namespace actsvc

#endif  // ACTSVC_TESTS_CORE_ULP_BUDGETS_H_
