// The float32 helpers of the kernels against their own contracts, on every
// instruction set compiled in and supported here (the targets the other
// SIMD tests run): ExpNeg (core/fast_math-inl.h) with and without
// subnormal results, Reciprocal, Divide, ExpLo32 and ErfcxHalf
// (core/gelu-inl.h), ExpOfSum (core/softmax-inl.h). Each over the domain its
// contract states, against long double (erfcx: __float128), with the max
// error the contract states as the budget; the max found is printed.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tests/core/fast_math_test.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include "core/fast_math-inl.h"
#include "core/gelu-inl.h"
#include "core/softmax-inl.h"
#include "hwy/highway.h"

#ifndef ACTSVC_TESTS_CORE_FAST_MATH_TEST_ONCE_
#define ACTSVC_TESTS_CORE_FAST_MATH_TEST_ONCE_
namespace actsvc::test {
// The helper a call evaluates: y = helper(a) or helper(a, b).
enum class Helper {
  kExp,         // ExpNeg<D>(a).Exp: e^a
  kExpm1,       // ExpNeg<D>(a).Expm1: e^a − 1
  kExpNoSub,    // ExpNeg<D, false>(a).Exp
  kExpm1NoSub,  // ExpNeg<D, false>(a).Expm1
  kReciprocal,  // 1/a
  kDivide,      // a/b
  kExpLo,       // ExpLo32(a, b) * 2^-64: e^(a + b)
  kErfcxHalf,   // erfcx(a/√2)/2
  kExpOfSum,    // e^(a + b)
};
}  // namespace actsvc::test
#endif

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// y[i] = helper(a[i], b[i]); n is a multiple of every vector length.
void ApplyHelper(test::Helper helper, const float* a, const float* b, float* y,
                 size_t n) {
  using test::Helper;
  const hn::ScalableTag<float> d;
  using D = decltype(d);
  for (size_t i = 0; i < n; i += hn::Lanes(d)) {
    const auto va = hn::LoadU(d, a + i);
    const auto vb = hn::LoadU(d, b + i);
    hn::Vec<D> r = hn::Zero(d);
    switch (helper) {
      case Helper::kExp:
        r = ExpNeg<D>(d, va).Exp(d);
        break;
      case Helper::kExpm1:
        r = ExpNeg<D>(d, va).Expm1(d);
        break;
      case Helper::kExpNoSub:
        r = ExpNeg<D, false>(d, va).Exp(d);
        break;
      case Helper::kExpm1NoSub:
        r = ExpNeg<D, false>(d, va).Expm1(d);
        break;
      case Helper::kReciprocal:
        r = Reciprocal(d, va);
        break;
      case Helper::kDivide:
        r = Divide(d, va, vb);
        break;
      case Helper::kExpLo:
        r = hn::Mul(ExpLo32(d, va, vb), hn::Set(d, kExpLoScale));
        break;
      case Helper::kErfcxHalf:
        r = ErfcxHalf(d, va);
        break;
      case Helper::kExpOfSum:
        r = ExpOfSum(d, va, vb);
        break;
    }
    hn::StoreU(r, d, y + i);
  }
}

bool TargetHasFma() { return HWY_NATIVE_FMA != 0; }

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/oracle.h"
#include "tests/core/test_util.h"

namespace actsvc {

HWY_EXPORT(ApplyHelper);
HWY_EXPORT(TargetHasFma);

namespace test {
namespace {

float FloatFromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint32_t BitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Every `step`-th float of [lo, hi] (by bit pattern, each sign apart), and
// both ends.
std::vector<float> FloatsIn(float lo, float hi, uint32_t step) {
  std::vector<float> x;
  auto walk = [&](float from, float to) {  // 0 <= from <= to
    for (uint64_t u = BitsOf(from); u <= BitsOf(to); u += step) {
      x.push_back(FloatFromBits(static_cast<uint32_t>(u)));
    }
  };
  if (lo < 0) {
    const size_t first = x.size();
    walk(hi < 0 ? -hi : 0.0f, -lo);
    for (size_t i = first; i < x.size(); ++i) x[i] = -x[i];
  }
  if (hi >= 0) walk(lo > 0 ? lo : 0.0f, hi);
  x.push_back(lo);
  x.push_back(hi);
  return x;
}

// What one helper promises over its domain: the ULP budget for results in
// the normal range (on targets with and without FMA) and, for subnormal
// results, the absolute budget in units of the smallest subnormal (0: the
// helper promises nothing there; those results are skipped).
struct Contract {
  const char* name;
  Helper helper;
  double ulp_fma, ulp_no_fma;
  double subnormal_denorms;
  std::vector<float> a, b;  // b: zeros where the helper takes one argument
  std::function<long double(float, float)> want;
};

struct Found {
  double max_ulp = 0, max_ulp_at = 0, max_denorms = 0;
  size_t failures = 0;
  std::string first;
};

void Check(const Contract& c) {
  std::vector<float> a = c.a, b = c.b;
  if (b.empty()) b.assign(a.size(), 0.0f);
  // Padded to a multiple of every vector length with the first input.
  while (a.size() % 64 != 0) {
    a.push_back(a[0]);
    b.push_back(b[0]);
  }
  std::vector<long double> want(a.size());
  for (size_t i = 0; i < a.size(); ++i) want[i] = c.want(a[i], b[i]);
  const long double min_normal = std::numeric_limits<float>::min();
  const long double denorm = std::numeric_limits<float>::denorm_min();
  ForEachTarget([&](int64_t target) {
    const double budget =
        HWY_DYNAMIC_DISPATCH(TargetHasFma)() ? c.ulp_fma : c.ulp_no_fma;
    std::vector<float> y(a.size());
    HWY_DYNAMIC_DISPATCH(ApplyHelper)
    (c.helper, a.data(), b.data(), y.data(), a.size());
    Found f;
    for (size_t i = 0; i < a.size(); ++i) {
      const long double err = std::fabs(y[i] - want[i]);
      bool ok;
      if (std::fabs(want[i]) < min_normal) {
        if (c.subnormal_denorms == 0) continue;
        f.max_denorms = std::fmax(f.max_denorms, double(err / denorm));
        ok = err <= c.subnormal_denorms * denorm;
      } else {
        const double ulp = double(err / UlpAt<float>(want[i]));
        if (ulp > f.max_ulp) {
          f.max_ulp = ulp;
          f.max_ulp_at = a[i];
        }
        ok = ulp <= budget;
      }
      if (!ok && ++f.failures <= 6) {
        char line[160];
        std::snprintf(line, sizeof(line), "\n  a = %a b = %a  got %a  want %La",
                      a[i], b[i], y[i], want[i]);
        f.first += line;
      }
    }
    std::printf(
        "%-7s %-12s max %.3f ULP (budget %.4g) at %a, subnormal %.3f "
        "denorm_min, n=%zu\n",
        hwy::TargetName(target), c.name, f.max_ulp, budget, f.max_ulp_at,
        f.max_denorms, a.size());
    EXPECT_EQ(f.failures, 0u)
        << hwy::TargetName(target) << " " << c.name << f.first;
  });
}

long double Exp(float a, float b) {
  return std::exp(static_cast<long double>(a) + b);
}
long double Expm1(float a, float) {
  return std::expm1(static_cast<long double>(a));
}

// ExpNeg: t <= 0. Exp within 0.98 ULP where e^t >= 2^-126 (with
// kSubnormal, a subnormal e^t keeps its absolute accuracy: within one
// rounding to its spacing, 1 denorm_min); Expm1 within 0.88 ULP.
TEST(FastMathTest, ExpNeg) {
  const std::vector<float> t = FloatsIn(-104.0f, 0.0f, 257);
  Check({"exp", Helper::kExp, 0.98, 0.98, 1, t, {}, Exp});
  Check({"expm1", Helper::kExpm1, 0.88, 0.88, 0, t, {}, Expm1});
  const std::vector<float> t88 = FloatsIn(-88.0f, 0.0f, 257);
  Check({"exp nosub", Helper::kExpNoSub, 0.98, 0.98, 0, t88, {}, Exp});
  Check({"expm1 nosub", Helper::kExpm1NoSub, 0.88, 0.88, 0, t88, {}, Expm1});
}

// Reciprocal: 1/s for the s the kernels pass, [1, 4]: 0.5625 ULP.
TEST(FastMathTest, Reciprocal) {
  Check({"reciprocal",
         Helper::kReciprocal,
         0.5625,
         0.5625,
         0,
         FloatsIn(1.0f, 4.0f, 7),
         {},
         [](float s, float) { return 1.0L / s; }});
}

// Divide: a/b for b in [1, 4] and |a| <= 4: 0.625 ULP.
TEST(FastMathTest, Divide) {
  const std::vector<float> b = FloatsIn(1.0f, 4.0f, 13);
  std::vector<float> a(b.size());
  Random rng(5);
  for (float& v : a) v = static_cast<float>(rng.Uniform(-4, 4));
  Check({"divide", Helper::kDivide, 0.625, 0.625, 0, a, b,
         [](float x, float y) { return static_cast<long double>(x) / y; }});
}

// ExpOfSum: e^(hi + lo) for hi in [−104, 0], lo = 0: 0.89 ULP with FMA,
// 1.16 without; a subnormal result within 0.86 denorm_min.
TEST(FastMathTest, ExpOfSum) {
  Check({"exp_of_sum",
         Helper::kExpOfSum,
         0.89,
         1.16,
         0.86,
         FloatsIn(-104.0f, 0.0f, 257),
         {},
         Exp});
}

// ExpLo32: e^(hi + lo) * 2^64 for hi <= 0, |lo| <= ulp(hi)/2 (here lo 0,
// and a quarter ULP of hi of either sign): 1 ULP while the result is
// normal.
TEST(FastMathTest, ExpLo32) {
  const std::vector<float> hi = FloatsIn(-87.0f, 0.0f, 257);
  Check({"exp_lo lo=0", Helper::kExpLo, 1, 1, 0, hi, {}, Exp});
  std::vector<float> lo(hi.size());
  for (size_t i = 0; i < hi.size(); ++i) {
    const float q = static_cast<float>(UlpAt<float>(hi[i]) / 4);
    lo[i] = i % 2 == 0 ? q : -q;
  }
  Check({"exp_lo", Helper::kExpLo, 1, 1, 0, hi, lo, Exp});
}

// ErfcxHalf: h(a) = erfcx(a/√2)/2 for a in [0, 14.5]: 2.9 ULP.
TEST(FastMathTest, ErfcxHalf) {
  std::vector<float> a = FloatsIn(0.0f, 14.5f, 1031);
  for (double t = 0; t <= 14.5; t += 1.0 / 4096) a.push_back(float(t));
  Check({"erfcx_half",
         Helper::kErfcxHalf,
         2.9,
         2.9,
         0,
         a,
         {},
         [](float x, float) {
           const Quad t = Quad(x) / sqrtq(2);
           return static_cast<long double>(erfcq(t) * expq(t * t) / 2);
         }});
}

}  // namespace
}  // namespace test
}  // namespace actsvc
#endif  // HWY_ONCE
