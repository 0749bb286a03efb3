// The half-precision path of the elementwise functions (core/activation.h
// dispatches here for Float16 and BFloat16): float32 kernels on widened
// inputs, one rounding to the half type, and a float64 recomputation of the
// few lanes whose float32 result lies too close to a rounding boundary.
#ifndef ACTSVC_CORE_ACTIVATION_HALF_H_
#define ACTSVC_CORE_ACTIVATION_HALF_H_

#include <cstddef>
#include <cstdint>

#include "core/activation.h"
#include "core/half.h"

namespace actsvc::internal {

// What the per-target half kernels need besides the arrays.
struct HalfParams {
  Function f;
  ElementwiseKind kind;
  double alpha;
  float pos_inf, neg_inf;       // the float32 limits at +-inf, for the kernel
  double pos_inf64, neg_inf64;  // the float64 ones, for the recomputation
  int32_t ulp_budget;           // K: the float32 result's error bound in ULPs
  bool exact_zero_f1;  // f'(x) = 0 is exact (identity, relu, leaky_relu)
  // bfloat16: a zero result at |x| >= zero_tail_x may be a float32
  // underflow of a true value bfloat16 can hold (inf: zeros are structural;
  // zero_tail_negative_only: only x <= -zero_tail_x, for elu and selu).
  float zero_tail_x;
  bool zero_tail_negative_only;
};

// The kernel of `kind` over n half values (g non-null for the VJP). y may be
// x or g. Precondition: IsElementwise(f), alpha finite.
void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const Float16* x, const Float16* g, Float16* y, size_t n);
void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const BFloat16* x, const BFloat16* g, BFloat16* y,
                     size_t n);

}  // namespace actsvc::internal

#endif  // ACTSVC_CORE_ACTIVATION_HALF_H_
