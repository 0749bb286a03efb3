// The op of each elementwise function (core/activation-inl.h,
// core/gelu-inl.h, core/gelu_f64-inl.h), chosen once per array: the one
// switch over Function that both array loops share, the float32/float64 one
// of core/activation.cc and the half one of core/activation_half.cc.
//
// VisitElementwiseOp<T>(f, kind, alpha, fn) calls fn(op) with the op for f
// in T lanes (float32 or float64); kind picks leaky_relu's value form.
// Precondition: IsElementwise(f).

// Per-target include guard (the skeleton.cc pattern).
#if defined(ACTSVC_CORE_ELEMENTWISE_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ACTSVC_CORE_ELEMENTWISE_OPS_INL_H_
#undef ACTSVC_CORE_ELEMENTWISE_OPS_INL_H_
#else
#define ACTSVC_CORE_ELEMENTWISE_OPS_INL_H_
#endif

#include <cmath>
#include <cstdlib>

#include "core/activation-inl.h"
#include "core/activation.h"
#include "core/gelu-inl.h"
#include "core/gelu_double-inl.h"
#include "core/gelu_f64-inl.h"
#include "core/reference.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

// Where alpha e^x stops being a normal T: x = ln(min normal) - ln|alpha|.
template <typename T>
double EluTailLo(double alpha) {
  const double a = std::fabs(alpha);
  return (sizeof(T) == 4 ? -105.0 : -746.0) - (a > 1 ? std::log(a) : 0.0);
}

template <typename T, class Fn>
HWY_INLINE void VisitElementwiseOp(Function f, ElementwiseKind kind,
                                   double alpha, const Fn& fn) {
  switch (f) {
    case Function::kIdentity:
      return fn(IdentityK{});
    case Function::kRelu:
      return fn(LeakyReluK{{}, 0.0});
    case Function::kLeakyRelu:
      if (kind == ElementwiseKind::kValue && T(alpha) > T(0) &&
          T(alpha) <= T(1)) {
        return fn(LeakyReluUnitK{{{}, alpha}});
      }
      return fn(LeakyReluK{{}, alpha});
    case Function::kSigmoid:
      return fn(SigmoidK{});
    case Function::kTanh:
      return fn(TanhK{});
    case Function::kSilu:
      return fn(SiluK{});
    case Function::kSoftplus:
      return fn(SoftplusK{});
    case Function::kElu:
      return fn(EluK{1.0, alpha, EluTailLo<T>(alpha)});
    case Function::kSelu: {
      const double sa = reference::kSeluLambda * reference::kSeluAlpha;
      return fn(EluK{reference::kSeluLambda, sa, EluTailLo<T>(sa)});
    }
    // float32: float32 lanes with FMA, float64 lanes without (see
    // core/gelu-inl.h); float64: GeluF64K (core/gelu_f64-inl.h) and
    // GeluTanhK on every target.
    case Function::kGelu:
      if constexpr (sizeof(T) == 8) {
        return fn(GeluF64K{});
      } else {
#if HWY_NATIVE_FMA
        return fn(GeluK{});
#else
        return fn(GeluDoubleK{});
#endif
      }
    case Function::kGeluTanh:
#if !HWY_NATIVE_FMA
      if constexpr (sizeof(T) == 4) return fn(GeluTanhDoubleK{});
#endif
      return fn(GeluTanhK{});
    default:
      break;
  }
  std::abort();  // softmax or log_softmax: IsElementwise(f) was false.
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
