// Scalar reference formulas for every function of SPEC.md §1: f, f', f'' in
// stable forms, and the probabilities of a softmax row. The vectorized
// kernels send here the lanes and rows they do not compute themselves
// (intermediate underflow bands of core/activation-inl.h, softmax rows with
// NaN or ±inf, the limits at ±inf, the rare half-precision lanes near a
// rounding boundary); ReferenceEvaluate (core/activation.h) runs them over
// arrays for the scalar baseline of bench/kernels.cc.
//
// Each formula runs in a wider type W than the result T (float in double,
// double in x87 long double) and is rounded once at the end. With the stable
// forms below no step loses more than a few W ulps, so the result is within
// about 1 ulp of T everywhere, tails included: the wider type absorbs the
// argument rounding that makes e.g. erfc(-x/sqrt2) ill-conditioned for x << 0.
//
// Conventions (SPEC §1): NaN in gives NaN out for f, f' and f'' alike;
// infinities give the mathematical limits; relu'(0) = 0; the x > 0 branch of
// leaky_relu and elu is strict, so their derivatives at 0 are alpha.
#ifndef ACTSVC_CORE_REFERENCE_H_
#define ACTSVC_CORE_REFERENCE_H_

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "core/activation.h"

namespace actsvc::reference {

template <typename T>
struct WiderOf;
template <>
struct WiderOf<float> {
  using type = double;
};
template <>
struct WiderOf<double> {
  using type = long double;
};
template <typename T>
using Wider = typename WiderOf<T>::type;

// Constants to long double precision; W(k) rounds them once.
inline constexpr long double kSqrt1_2 = 0.707106781186547524400844362104849039L;
inline constexpr long double kInvSqrt2Pi =
    0.398942280401432677939946059934381868L;  // 1/sqrt(2 pi)
inline constexpr long double kSqrt2OverPi =
    0.797884560802865355879892119868763737L;
inline constexpr long double kGeluTanhCubic = 0.044715L;
// SELU's constants as SPEC §1 (and PyTorch) state them, in double.
inline constexpr double kSeluLambda = 1.0507009873554805;
inline constexpr double kSeluAlpha = 1.6732632423543772;

// sigma(x) = 1 / (1 + e^-x). In the left tail e^-x is large and exact to
// relative precision, so sigma keeps its digits there.
template <typename W>
W Sigmoid(W x) {
  return W(1) / (W(1) + std::exp(-x));
}

// sigma'(x) = sigma(x) sigma(-x) = e^-|x| / (1 + e^-|x|)^2, never 1 - sigma
// (which rounds to 0 once sigma rounds to 1).
template <typename W>
W SigmoidPrime(W x) {
  const W e = std::exp(-std::fabs(x));
  const W d = W(1) + e;
  return e / (d * d);
}

// sigma''(x) = -sigma'(x) tanh(x/2).
template <typename W>
W SigmoidSecond(W x) {
  return -SigmoidPrime(x) * std::tanh(x / W(2));
}

// Phi(x) = erfc(-x/sqrt2)/2: 1 + erf(x/sqrt2) cancels for x < -3.
template <typename W>
W NormalCdf(W x) {
  return W(0.5) * std::erfc(-x * W(kSqrt1_2));
}

template <typename W>
W NormalPdf(W x) {
  return W(kInvSqrt2Pi) * std::exp(-(x * x) / W(2));
}

// One struct per function: Eval(order, alpha, x) gives f (order 0), f' (1)
// or f'' (2) for a finite or infinite, non-NaN x.
struct Identity {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    return order == 0 ? x : order == 1 ? W(1) : W(0);
  }
};

struct SigmoidFn {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    return order == 0   ? Sigmoid(x)
           : order == 1 ? SigmoidPrime(x)
                        : SigmoidSecond(x);
  }
};

struct TanhFn {
  // sech^2 x = 4 e^-2|x| / (1 + e^-2|x|)^2, never 1 - tanh^2.
  template <typename W>
  static W Sech2(W x) {
    const W e = std::exp(W(-2) * std::fabs(x));
    const W d = W(1) + e;
    return W(4) * e / (d * d);
  }
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    if (order == 0) return std::tanh(x);
    if (order == 1) return Sech2(x);
    return W(-2) * std::tanh(x) * Sech2(x);
  }
};

struct Relu {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    if (order == 0) return x > 0 ? x : W(0);
    if (order == 1) return x > 0 ? W(1) : W(0);
    return W(0);
  }
};

struct LeakyRelu {
  template <typename W>
  static W Eval(int order, W alpha, W x) {
    // alpha * -inf would be NaN for alpha = 0, whose limit is 0.
    if (order == 0) return x > 0 ? x : (alpha == 0 ? W(0) : alpha * x);
    if (order == 1) return x > 0 ? W(1) : alpha;
    return W(0);
  }
};

// x g(x) with a gate g from 0 at -inf to 1 at +inf (GELU, its tanh form,
// SiLU) at x = +-inf, where the formulas compute inf*0: f = x or 0,
// f' = 1 or 0, f'' = 0.
template <typename W>
W GatedLimitAtInf(int order, W x) {
  if (order == 0) return x > 0 ? x : W(0);
  if (order == 1) return x > 0 ? W(1) : W(0);
  return W(0);
}

struct Gelu {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    if (std::isinf(x)) return GatedLimitAtInf(order, x);
    if (order == 0) return x * NormalCdf(x);
    if (order == 1) return NormalCdf(x) + x * NormalPdf(x);
    return NormalPdf(x) * (W(2) - x * x);
  }
};

// 0.5 x (1 + tanh u), u = sqrt(2/pi)(x + 0.044715 x^3), computed as
// x sigma(2u): 1 + tanh u cancels for x << 0.
struct GeluTanh {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    if (std::isinf(x)) return GatedLimitAtInf(order, x);
    const W k0 = W(kSqrt2OverPi);
    const W k1 = W(kGeluTanhCubic);
    const W x2 = x * x;
    const W u = k0 * (x + k1 * x2 * x);
    if (order == 0) return x * Sigmoid(W(2) * u);
    const W du = k0 * (W(1) + W(3) * k1 * x2);  // u'
    const W ds = SigmoidPrime(W(2) * u);        // sigma'(2u)
    if (order == 1) return Sigmoid(W(2) * u) + W(2) * x * du * ds;
    // f'' = sigma'(2u) (4u' + 2x u'' - 4x u'^2 tanh u), u'' = 6 k0 k1 x.
    const W d2u = W(6) * k0 * k1 * x;
    return ds *
           (W(4) * du + W(2) * x * d2u - W(4) * x * du * du * std::tanh(u));
  }
};

struct Silu {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    if (std::isinf(x)) return GatedLimitAtInf(order, x);
    if (order == 0) return x * Sigmoid(x);
    if (order == 1) return Sigmoid(x) * (W(1) + x * Sigmoid(-x));
    // sigma'(x)(2 + x(1 - 2 sigma(x))), with 1 - 2 sigma(x) = -tanh(x/2).
    return SigmoidPrime(x) * (W(2) - x * std::tanh(x / W(2)));
  }
};

struct Softplus {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    if (order == 0) {
      return (x > 0 ? x : W(0)) + std::log1p(std::exp(-std::fabs(x)));
    }
    return order == 1 ? Sigmoid(x) : SigmoidPrime(x);
  }
};

struct Elu {
  template <typename W>
  static W Eval(int order, W alpha, W x) {
    if (x > 0) return order == 0 ? x : order == 1 ? W(1) : W(0);
    return order == 0 ? alpha * std::expm1(x) : alpha * std::exp(x);
  }
};

struct Selu {
  template <typename W>
  static W Eval(int order, W /*alpha*/, W x) {
    return W(kSeluLambda) * Elu::Eval(order, W(kSeluAlpha), x);
  }
};

// Calls fn(op) with the formula struct of an elementwise function, so that a
// caller switches once per array, not per element. Vector functions abort:
// reaching here with one is a bug in the caller, not a user error.
template <typename Fn>
decltype(auto) VisitElementwise(Function f, Fn&& fn) {
  switch (f) {
    case Function::kIdentity:
      return fn(Identity{});
    case Function::kSigmoid:
      return fn(SigmoidFn{});
    case Function::kTanh:
      return fn(TanhFn{});
    case Function::kRelu:
      return fn(Relu{});
    case Function::kLeakyRelu:
      return fn(LeakyRelu{});
    case Function::kGelu:
      return fn(Gelu{});
    case Function::kGeluTanh:
      return fn(GeluTanh{});
    case Function::kSilu:
      return fn(Silu{});
    case Function::kSoftplus:
      return fn(Softplus{});
    case Function::kElu:
      return fn(Elu{});
    case Function::kSelu:
      return fn(Selu{});
    case Function::kSoftmax:
    case Function::kLogSoftmax:
      break;
  }
  std::abort();
}

// f (order 0), f' (1) or f'' (2) of an elementwise function at x, in T.
template <typename Op, typename T>
T EvalAt(int order, double alpha, T x) {
  using W = Wider<T>;
  if (std::isnan(x)) return x;
  return static_cast<T>(
      Op::Eval(order, static_cast<W>(alpha), static_cast<W>(x)));
}

template <typename T>
T Elementwise(Function f, double alpha, int order, T x) {
  return VisitElementwise(
      f, [&](auto op) { return EvalAt<decltype(op)>(order, alpha, x); });
}

// The probabilities p and log-probabilities of one softmax row of n values
// at x[0], x[stride], ..., in W. With m the row's maximum and
// rest = sum of e^(x_i - m) over every entry but one maximal one,
// log Z = log1p(rest) keeps full relative accuracy when p_max is close to 1.
// A NaN anywhere gives a NaN row; +inf entries share the mass equally (one
// +inf gives a one-hot row); a row of all -inf is NaN.
template <typename T>
void SoftmaxRowProbabilities(const T* x, int64_t n, int64_t stride,
                             std::vector<Wider<T>>& p,
                             std::vector<Wider<T>>& log_p) {
  using W = Wider<T>;
  p.resize(n);
  log_p.resize(n);
  const W nan = std::numeric_limits<W>::quiet_NaN();
  const W inf = std::numeric_limits<W>::infinity();
  int64_t arg_max = 0;
  int64_t pos_inf = 0;
  bool has_nan = false;
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i * stride];
    has_nan |= std::isnan(v);
    if (v > x[arg_max * stride]) arg_max = i;
    pos_inf += (v == std::numeric_limits<T>::infinity());
  }
  const W m = n > 0 ? static_cast<W>(x[arg_max * stride]) : W(0);
  if (has_nan || m == -inf) {
    for (int64_t i = 0; i < n; ++i) p[i] = log_p[i] = nan;
    return;
  }
  if (pos_inf > 0) {
    const W share = W(1) / static_cast<W>(pos_inf);
    for (int64_t i = 0; i < n; ++i) {
      const bool top = x[i * stride] == std::numeric_limits<T>::infinity();
      p[i] = top ? share : W(0);
      log_p[i] = top ? std::log(share) : -inf;
    }
    return;
  }
  W rest = 0;
  for (int64_t i = 0; i < n; ++i) {
    p[i] = std::exp(static_cast<W>(x[i * stride]) - m);
    if (i != arg_max) rest += p[i];
  }
  const W log_z = std::log1p(rest);
  const W z = W(1) + rest;
  for (int64_t i = 0; i < n; ++i) {
    p[i] /= z;
    log_p[i] = (static_cast<W>(x[i * stride]) - m) - log_z;
  }
}

}  // namespace actsvc::reference

#endif  // ACTSVC_CORE_REFERENCE_H_
