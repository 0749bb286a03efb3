// An independent high-precision oracle for the elementwise functions of
// SPEC.md §1: f, f' and f'' in __float128 (113-bit significand), from stable
// forms. It shares no code with core/reference.h, so a formula error in one
// is not hidden by the same error in the other.
//
// Conventions (SPEC.md §1): relu'(0) = 0, leaky_relu'(0) = α, elu'(0) =
// elu''(0) = α (the x > 0 branch is strict); NaN in gives NaN out for every
// order; ±∞ give the mathematical limits.
//
// Accuracy: every formula below is a product or quotient of terms that quad
// computes to a few units in 2^-113, apart from the sums Φ + xφ (gelu') and
// 1 + xσ(−x) (silu') near their zeros, where the cancellation costs a few
// bits of 113. That leaves > 50 bits of margin over a float64 ULP.
#ifndef ACTSVC_TESTS_CORE_ORACLE_H_
#define ACTSVC_TESTS_CORE_ORACLE_H_

#include <quadmath.h>

#include <array>
#include <cstdlib>
#include <string>

#include "core/activation.h"

namespace actsvc {
namespace test {

using Quad = __float128;

// f, f', f'' at one point.
using Jet = std::array<Quad, 3>;

inline Quad QuadNaN() { return nanq(""); }
inline Quad QuadInf() { return HUGE_VALQ; }

// The constants as SPEC.md §1 gives them (they are float64 values).
inline constexpr double kSeluLambda = 1.0507009873554805;
inline constexpr double kSeluAlpha = 1.6732632423543772;

// Logistic quantities of t from one exponential, each with full relative
// accuracy: e = e^-|t| and em = e^-|t| − 1. Computing one from the other by
// adding 1 would lose the small one (em for tiny |t|, e for large |t|).
struct Logistic {
  Quad e;
  Quad em;
  Quad t;

  explicit Logistic(Quad t_in) : t(t_in) {
    const Quad a = fabsq(t);
    if (a < 0.5Q) {
      em = expm1q(-a);
      e = 1 + em;
    } else {
      e = expq(-a);
      em = e - 1;
    }
  }
  // σ(t) and σ(−t).
  Quad Plus() const { return t >= 0 ? 1 / (1 + e) : e / (1 + e); }
  Quad Minus() const { return t >= 0 ? e / (1 + e) : 1 / (1 + e); }
  // σ'(t) = e^-|t| / (1 + e^-|t|)².
  Quad Prime() const { return e / ((1 + e) * (1 + e)); }
  // tanh(t/2) = (1 − e^-|t|) / (1 + e^-|t|), with the sign of t.
  Quad TanhHalf() const {
    const Quad th = -em / (1 + e);
    return t < 0 ? -th : th;
  }
};

inline Quad SqrtTwoOverPi() { return sqrtq(2 / M_PIq); }
inline Quad GeluTanhCubic() { return 0.044715Q; }

// f, f', f'' of `f` (elementwise) at x; alpha is used by leaky_relu and elu.
inline Jet OracleJet(Function f, double alpha, Quad x) {
  const Quad nan = QuadNaN();
  if (isnanq(x)) return {nan, nan, nan};
  const Quad inf = QuadInf();
  const Quad a = alpha;
  switch (f) {
    case Function::kIdentity:
      return {x, 1, 0};
    case Function::kSigmoid: {
      const Logistic s(x);
      const Quad sp = s.Prime();
      return {s.Plus(), sp, -sp * s.TanhHalf()};
    }
    case Function::kTanh: {
      // tanh x = tanh(2x / 2); sech² x = 4σ'(2x).
      const Logistic s(2 * x);
      const Quad th = s.TanhHalf();
      const Quad sech2 = 4 * s.Prime();
      return {th, sech2, -2 * th * sech2};
    }
    case Function::kRelu:
      if (x > 0) return {x, 1, 0};
      return {0, 0, 0};
    case Function::kLeakyRelu:
      if (x > 0) return {x, 1, 0};
      return {a * x, a, 0};
    case Function::kGelu: {
      if (x == inf) return {inf, 1, 0};
      if (x == -inf) return {0, 0, 0};
      // x² is exact in quad for a float64 x (106 bits), so φ carries no
      // amplified argument error; Φ = ½ erfc(−x/√2) keeps the left tail.
      const Quad phi = expq(-(x * x) / 2) / sqrtq(2 * M_PIq);
      const Quad cdf = erfcq(-x / M_SQRT2q) / 2;
      return {x * cdf, cdf + x * phi, phi * (2 - x * x)};
    }
    case Function::kGeluTanh: {
      if (x == inf) return {inf, 1, 0};
      if (x == -inf) return {0, 0, 0};
      // f = x σ(2u), u = c(x + k x³); ½(1 + tanh u) = σ(2u).
      const Quad c = SqrtTwoOverPi();
      const Quad k = GeluTanhCubic();
      const Quad u = c * (x + k * x * x * x);
      const Quad du = c * (1 + 3 * k * x * x);
      const Quad d2u = 6 * c * k * x;
      const Logistic s(2 * u);
      const Quad sig = s.Plus();
      const Quad sp = s.Prime();     // σ'(2u)
      const Quad th = s.TanhHalf();  // tanh(u)
      // f'' = 2u'σ'·2 + 2xu''σ' + 2xu'·σ''(2u)·2u', σ''(t) = −σ'(t)tanh(t/2).
      return {x * sig, sig + 2 * x * du * sp,
              sp * (4 * du + 2 * x * d2u - 4 * x * du * du * th)};
    }
    case Function::kSilu: {
      if (x == inf) return {inf, 1, 0};
      if (x == -inf) return {0, 0, 0};
      const Logistic s(x);
      // f'' = σ'(x)(2 + x(1 − 2σ(x))) and 1 − 2σ(x) = −tanh(x/2).
      return {x * s.Plus(), s.Plus() * (1 + x * s.Minus()),
              s.Prime() * (2 - x * s.TanhHalf())};
    }
    case Function::kSoftplus: {
      const Logistic s(x);
      const Quad relu = x > 0 ? x : Quad(0);
      return {relu + log1pq(s.e), s.Plus(), s.Prime()};
    }
    case Function::kElu:
      if (x > 0) return {x, 1, 0};
      return {a * expm1q(x), a * expq(x), a * expq(x)};
    case Function::kSelu: {
      const Quad lambda = kSeluLambda;
      const Quad sa = kSeluAlpha;
      if (x > 0) return {lambda * x, lambda, 0};
      const Quad ex = expq(x);
      return {lambda * sa * expm1q(x), lambda * sa * ex, lambda * sa * ex};
    }
    case Function::kSoftmax:
    case Function::kLogSoftmax:
      break;
  }
  std::abort();  // Not an elementwise function.
}

inline Quad Oracle(Function f, double alpha, int order, Quad x) {
  return OracleJet(f, alpha, x)[order];
}

inline std::string QuadToString(Quad x) {
  char buf[64];
  quadmath_snprintf(buf, sizeof(buf), "%.25Qg", x);
  return buf;
}

}  // namespace test
}  // namespace actsvc

#endif  // ACTSVC_TESTS_CORE_ORACLE_H_
