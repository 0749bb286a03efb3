// The half path's exact kernels (core/activation_half_exact.cc: identity and
// relu, f, f', f'' and the VJP; leaky_relu's f' and f'') against its general
// path (float32 kernel, rounding test, float64 recomputation;
// core/activation_half.cc), bit for bit, on every instruction set compiled
// in and supported here: all 65,536 inputs of each type; for the VJP, all
// inputs against upstream gradients that are zeros, subnormals, normals,
// the largest finite, infinities and NaNs of either sign (each against every
// x), and four permutations of all 65,536 patterns; lengths around the
// vector sizes at misaligned offsets, in place, and an array long enough for
// the non-temporal stores. And the general bfloat16 path's rounding by
// AVX512-BF16 against its integer rounding, bit for bit.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/activation_half.h"
#include "core/half.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

using internal::ElementwiseHalfGeneral;
using internal::HalfExact;
using internal::HalfExactOf;

// leaky_relu's alphas: the default and others whose rounding to the half
// types is inexact, a tie, just above a tie (float32 rounds it onto the
// tie: the general path recomputes it in float64), subnormal in float16 or
// in float32, beyond float16's range, 0 and 1.
const Case kExactCases[] = {
    {Function::kIdentity, 0, "identity"},
    {Function::kRelu, 0, "relu"},
    {Function::kLeakyRelu, 0.01, "leaky_relu"},
    {Function::kLeakyRelu, 0.2, "leaky_relu_0_2"},
    {Function::kLeakyRelu, 1.0 / 3, "leaky_relu_third"},
    {Function::kLeakyRelu, -0.5, "leaky_relu_minus_half"},
    {Function::kLeakyRelu, 0, "leaky_relu_0"},
    {Function::kLeakyRelu, 1, "leaky_relu_1"},
    {Function::kLeakyRelu, 1 + 0x1p-11, "leaky_relu_f16_tie"},
    {Function::kLeakyRelu, 1 + 0x1p-11 + 0x1p-30, "leaky_relu_f16_over_tie"},
    {Function::kLeakyRelu, 1 + 0x1p-8 + 0x1p-30, "leaky_relu_bf16_over_tie"},
    {Function::kLeakyRelu, 1e-6, "leaky_relu_f16_subnormal"},
    {Function::kLeakyRelu, 1e-40, "leaky_relu_f32_subnormal"},
    {Function::kLeakyRelu, 70000, "leaky_relu_beyond_f16"},
};

// Gradient patterns of either sign: zero, the smallest and largest
// subnormals, the smallest normal, 1, 1.5, the largest finite, inf, a quiet
// NaN, a signalling NaN and the NaN of all ones.
template <typename H>
std::vector<uint16_t> SpecialGradients() {
  constexpr bool kF16 = std::is_same_v<H, Float16>;
  const uint16_t mags[] = {0,
                           1,
                           uint16_t(kF16 ? 0x03FF : 0x007F),
                           uint16_t(kF16 ? 0x0400 : 0x0080),
                           HalfBits(HalfFromDouble<H>(1.0)),
                           HalfBits(HalfFromDouble<H>(1.5)),
                           uint16_t(kF16 ? 0x7BFF : 0x7F7F),
                           uint16_t(kF16 ? 0x7C00 : 0x7F80),
                           uint16_t(kF16 ? 0x7E00 : 0x7FC0),
                           uint16_t(kF16 ? 0x7C01 : 0x7F81),
                           0x7FFF};
  std::vector<uint16_t> out;
  for (uint16_t m : mags) {
    out.push_back(m);
    out.push_back(uint16_t(m | 0x8000));
  }
  return out;
}

// The exact path (through the public API) and the general path on the same
// arrays, bit for bit; y may be x (in_place).
template <typename H>
void ExpectSame(const Case& c, ElementwiseKind kind, absl::Span<const H> x,
                absl::Span<const H> g, const std::string& what,
                bool in_place = false) {
  std::vector<H> want(x.size()), got(x.begin(), x.end());
  ElementwiseHalfGeneral(c.function, kind, c.alpha, x.data(),
                         kind == ElementwiseKind::kVjp ? g.data() : nullptr,
                         want.data(), x.size());
  if (!in_place) got.assign(x.size(), HalfFromBits<H>(0x7E01));
  RunKind<H>(c, kind, in_place ? absl::MakeConstSpan(got) : x, g,
             absl::MakeSpan(got));
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < x.size(); ++i) {
    if (HalfBits(got[i]) == HalfBits(want[i])) continue;
    if (++bad <= 6) {
      char buf[96];
      std::snprintf(buf, sizeof(buf),
                    "\n  [%zu] x 0x%04x g 0x%04x: exact 0x%04x general 0x%04x",
                    i, HalfBits(x[i]),
                    kind == ElementwiseKind::kVjp ? HalfBits(g[i]) : 0,
                    HalfBits(got[i]), HalfBits(want[i]));
      first += buf;
    }
  }
  EXPECT_EQ(bad, 0u) << c.label << " " << KindName(kind) << " "
                     << HalfFormat<H>::kName << " " << what << first;
}

template <typename H>
void AllInputs(const Case& c) {
  const std::vector<H> x = AllPatterns<H>();
  const auto xs = absl::MakeConstSpan(x);
  ForEachTarget([&](int64_t target) {
    for (ElementwiseKind kind : kKinds) {
      if (HalfExactOf(c.function, kind) == HalfExact::kNone) continue;
      if (kind != ElementwiseKind::kVjp) {
        ExpectSame<H>(c, kind, xs, xs, "all inputs");
        continue;
      }
      for (uint16_t gb : SpecialGradients<H>()) {
        const std::vector<H> g(x.size(), HalfFromBits<H>(gb));
        char what[32];
        std::snprintf(what, sizeof(what), "g = 0x%04x", gb);
        ExpectSame<H>(c, kind, xs, absl::MakeConstSpan(g), what);
      }
      for (uint32_t k = 0; k < 4; ++k) {
        std::vector<H> g(x.size());
        for (uint32_t i = 0; i < x.size(); ++i) {
          g[i] = HalfFromBits<H>(uint16_t(i * 40503u + k * 12345u));
        }
        ExpectSame<H>(c, kind, xs, absl::MakeConstSpan(g),
                      "g permutation " + std::to_string(k));
      }
    }
    (void)target;
  });
}

// Lengths around the vector sizes (and their pairs) at offsets 0..3, in
// place and out of place, from a pool that holds every pattern (NaN lanes:
// the hand-over to the general path in whole and partial vectors); and
// 2^21 + 37 values from offset 1, beyond the non-temporal stores' threshold.
template <typename H>
void Arrays(const Case& c) {
  std::vector<H> pool(1 << 16), gpool(1 << 16);
  for (uint32_t i = 0; i < pool.size(); ++i) {
    pool[i] = HalfFromBits<H>(uint16_t(i * 7919u));
    // Mostly finite gradients, so that most vectors take the exact path.
    gpool[i] = HalfFromBits<H>(uint16_t((i * 4099u) & 0xBFFF));
  }
  std::vector<H> big(size_t{1} << 21 | 38), gbig(big.size());
  for (size_t i = 0; i < big.size(); ++i) {
    const uint16_t b = uint16_t(i * 2654435761u >> 16);
    big[i] = HalfFromBits<H>(b & 0xBFFF);  // no NaN, no inf
    gbig[i] = HalfFromBits<H>(uint16_t(b * 31u) & 0xBFFF);
  }
  big[size_t{1} << 20] = HalfFromBits<H>(0x7FFF);  // one NaN
  ForEachTarget([&](int64_t target) {
    for (ElementwiseKind kind : kKinds) {
      if (HalfExactOf(c.function, kind) == HalfExact::kNone) continue;
      for (size_t len : {1, 7, 31, 32, 33, 63, 64, 65, 100, 129, 1000, 1025}) {
        for (size_t offset = 0; offset < 4; ++offset) {
          const auto x = absl::MakeConstSpan(pool).subspan(offset, len);
          const auto g = absl::MakeConstSpan(gpool).subspan(offset, len);
          for (bool in_place : {false, true}) {
            ExpectSame<H>(c, kind, x, g,
                          "len " + std::to_string(len) + " offset " +
                              std::to_string(offset),
                          in_place);
          }
        }
      }
      ExpectSame<H>(c, kind, absl::MakeConstSpan(big).subspan(1),
                    absl::MakeConstSpan(gbig).subspan(1), "2^21 + 37 values");
    }
    (void)target;
  });
}

class HalfExactTest : public ::testing::TestWithParam<Case> {};

TEST_P(HalfExactTest, Float16AllInputs) { AllInputs<Float16>(GetParam()); }
TEST_P(HalfExactTest, BFloat16AllInputs) { AllInputs<BFloat16>(GetParam()); }
TEST_P(HalfExactTest, ArraysFloat16) { Arrays<Float16>(GetParam()); }
TEST_P(HalfExactTest, ArraysBFloat16) { Arrays<BFloat16>(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Exact, HalfExactTest, ::testing::ValuesIn(kExactCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.label);
                         });

// The general bfloat16 path rounds with vcvtne2ps2bf16 where the CPU has
// AVX512-BF16 (AVX-512 targets), which takes float32 subnormals as zero: the
// lanes where that differs are recomputed anyway (the rounding test flags
// every nonzero float32 subnormal), so every function and kind returns the
// same bits as with the integer rounding, for all 65,536 inputs (the VJP
// against two permutations of all 65,536 gradients, whose products
// underflow float32 often).
TEST(NativeBFloat16Test, SameAsIntegerRounding) {
  const std::vector<BFloat16> x = AllPatterns<BFloat16>();
  std::vector<BFloat16> g(x.size() * 2);
  for (uint32_t i = 0; i < g.size(); ++i) {
    g[i] =
        HalfFromBits<BFloat16>(uint16_t(i * (i < x.size() ? 40503u : 4099u)));
  }
  std::vector<BFloat16> x2(x);
  x2.insert(x2.end(), x.begin(), x.end());
  struct Restore {
    ~Restore() { internal::UseNativeBFloat16(true); }
  } restore;
  ForEachTarget([&](int64_t target) {
    for (const Case& c : kCases) {
      for (ElementwiseKind kind : kKinds) {
        const bool vjp = kind == ElementwiseKind::kVjp;
        const std::vector<BFloat16>& xs = vjp ? x2 : x;
        std::vector<BFloat16> native(xs.size()), integer(xs.size());
        internal::UseNativeBFloat16(true);
        ElementwiseHalfGeneral(c.function, kind, c.alpha, xs.data(),
                               vjp ? g.data() : nullptr, native.data(),
                               xs.size());
        internal::UseNativeBFloat16(false);
        ElementwiseHalfGeneral(c.function, kind, c.alpha, xs.data(),
                               vjp ? g.data() : nullptr, integer.data(),
                               xs.size());
        size_t bad = 0;
        for (size_t i = 0; i < xs.size(); ++i) {
          if (HalfBits(native[i]) == HalfBits(integer[i])) continue;
          if (++bad <= 4) {
            ADD_FAILURE() << c.label << " " << KindName(kind) << " x 0x"
                          << std::hex << HalfBits(xs[i]) << " g 0x"
                          << (vjp ? HalfBits(g[i]) : 0) << ": native 0x"
                          << HalfBits(native[i]) << " integer 0x"
                          << HalfBits(integer[i]);
          }
        }
        EXPECT_EQ(bad, 0u) << c.label << " " << KindName(kind);
      }
    }
    (void)target;
  });
}

// The combinations that take the exact path: every kind of identity and
// relu, leaky_relu's f' and f'' (its f and VJP round alpha x); nothing of
// the other functions.
TEST(HalfExactOfTest, Combinations) {
  for (ElementwiseKind kind : kKinds) {
    EXPECT_NE(HalfExactOf(Function::kIdentity, kind), HalfExact::kNone);
    EXPECT_NE(HalfExactOf(Function::kRelu, kind), HalfExact::kNone);
    const bool derivative = kind == ElementwiseKind::kDerivative1 ||
                            kind == ElementwiseKind::kDerivative2;
    EXPECT_EQ(HalfExactOf(Function::kLeakyRelu, kind) != HalfExact::kNone,
              derivative);
    for (Function f : ElementwiseFunctions()) {
      if (f == Function::kIdentity || f == Function::kRelu ||
          f == Function::kLeakyRelu) {
        continue;
      }
      EXPECT_EQ(HalfExactOf(f, kind), HalfExact::kNone);
    }
  }
}

}  // namespace
}  // namespace test
}  // namespace actsvc
