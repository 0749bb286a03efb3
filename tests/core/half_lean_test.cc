// leaky_relu's lean half path (HalfLeanBelow, HalfParams::lean_below in
// core/activation_half.h) against the tested general path, bit for bit, on
// every instruction set: the f of every input and the VJP of every upstream
// gradient with x of every class (NaN patterns, zeros, infinities, tiny and
// large values), for alphas with and without double-rounding cases (the
// default 0.01 has float16 subnormal products that the plain multiply
// rounds wrongly), in place and at every length of a pair's remainder.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
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

using internal::ElementwiseHalfLean;
using internal::HalfLeanBelow;

// The default, ties and near-ties of both half types, results in the
// subnormal ranges, above 1, negative and zero.
// (1 + 2^-11 + 2^-30: float32 drops 2^-30 and the products of float16
// inputs with significand 1.0 land on ties that the true products lie
// beyond; 1 + 2^-8 + 2^-30 the same for bfloat16.)
constexpr double kAlphas[] = {0.01,
                              0.1,
                              1.0 / 3,
                              1 + 0x1p-11,
                              1 + 0x1p-11 + 0x1p-30,
                              1 + 0x1p-8 + 0x1p-30,
                              1e-6,
                              1e-40,
                              2.0,
                              -0.5,
                              0.0,
                              0x1p-3 + 0x1p-20};

constexpr ElementwiseKind kKinds[] = {ElementwiseKind::kValue,
                                      ElementwiseKind::kVjp};

// x of every class for the VJP, one per g: NaN patterns (quiet and
// signalling, both signs), zeros, infinities, subnormal and normal values.
template <typename H>
std::vector<H> MixedX(size_t n, uint64_t seed) {
  constexpr uint16_t kInf = HalfFormat<H>::kInfBits;
  const uint16_t specials[] = {0x0000,
                               0x8000,
                               kInf,
                               uint16_t(0x8000 | kInf),
                               uint16_t(kInf + 1),
                               uint16_t(0x8000 | (kInf + 1)),
                               0x7FFF,
                               0xFFFF,
                               uint16_t(kInf | (kInf >> 1 & ~kInf))};
  Random rng(seed);
  std::vector<H> x(n);
  for (size_t i = 0; i < n; ++i) {
    const double u = rng.Uniform(0, 1);
    const uint16_t bits = u < 0.3
                              ? specials[i % std::size(specials)]
                              : static_cast<uint16_t>(rng.Uniform(0, 65536));
    x[i] = HalfFromBits<H>(bits);
  }
  return x;
}

template <typename H>
std::vector<H> Leaky(ElementwiseKind kind, double alpha,
                     const std::vector<H>& x, const std::vector<H>& g,
                     int32_t lean_below) {
  std::vector<H> y(x.size());
  ElementwiseHalfLean(Function::kLeakyRelu, kind, alpha, x.data(),
                      kind == ElementwiseKind::kVjp ? g.data() : nullptr,
                      y.data(), x.size(), lean_below);
  return y;
}

template <typename H>
size_t Differ(const std::vector<H>& got, const std::vector<H>& want,
              const std::string& where) {
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (HalfBits(got[i]) != HalfBits(want[i]) && ++bad <= 3) {
      ADD_FAILURE() << where << " index " << i << ": lean 0x" << std::hex
                    << HalfBits(got[i]) << " tested 0x" << HalfBits(want[i]);
    }
  }
  return bad;
}

// Every alpha, both kinds, every target: the bound's lean path is the
// tested path, bit for bit.
template <typename H>
void LeanIsTested() {
  const std::vector<H> all = AllPatterns<H>();
  ForEachTarget([&](int64_t target) {
    for (const double alpha : kAlphas) {
      for (const ElementwiseKind kind : kKinds) {
        const std::string where = std::string(hwy::TargetName(target)) + " " +
                                  HalfFormat<H>::kName + " " + KindName(kind) +
                                  " alpha " + std::to_string(alpha);
        const int32_t below =
            HalfLeanBelow<H>(Function::kLeakyRelu, kind, alpha,
                             /*native_bf16=*/true, 1, /*force=*/true);
        ASSERT_GE(below, 0) << where;
        ASSERT_LE(below, 0x8000) << where;
        const bool vjp = kind == ElementwiseKind::kVjp;
        for (uint64_t seed = 1; seed <= (vjp ? 3 : 1); ++seed) {
          // f: x every pattern; the VJP: g every pattern, x mixed.
          const std::vector<H> x = vjp ? MixedX<H>(all.size(), seed) : all;
          const std::vector<H>& g = all;
          const std::vector<H> want = Leaky(kind, alpha, x, g, -1);
          EXPECT_EQ(Differ(Leaky(kind, alpha, x, g, below), want, where), 0u);
          // In place: y is x (f) or g (the VJP).
          std::vector<H> y = vjp ? g : x;
          ElementwiseHalfLean(
              Function::kLeakyRelu, kind, alpha, vjp ? x.data() : y.data(),
              vjp ? y.data() : nullptr, y.data(), y.size(), below);
          EXPECT_EQ(Differ(y, want, where + " in place"), 0u);
        }
      }
    }
  });
}

TEST(HalfLeanTest, Float16LeanIsTested) { LeanIsTested<Float16>(); }
TEST(HalfLeanTest, BFloat16LeanIsTested) { LeanIsTested<BFloat16>(); }

// The bound is what makes it so. At alpha = 1 + 2^-11 + 2^-30 float32's
// alpha drops the 2^-30, and the float32 products of float16 inputs with
// significand 1.0 (one per binade) are float16 ties that the true products
// lie beyond: the plain multiply misrounds normal results up to the
// largest, which the tested path corrects, and the bound sends nearly all
// inputs to the test. At
// 0.01 (the default; float16's subnormal products the tested path rounds
// as the plain one does, within the contract's subnormal step) and 0.5
// nothing needs it.
TEST(HalfLeanTest, TheBoundCoversDoubleRounding) {
  const std::vector<Float16> all = AllPatterns<Float16>();
  const ElementwiseKind f = ElementwiseKind::kValue;
  const double tie = 1 + 0x1p-11 + 0x1p-30;
  const std::vector<Float16> want = Leaky(f, tie, all, all, -1);
  const std::vector<Float16> plain = Leaky(f, tie, all, all, 0);
  size_t wrong = 0;
  uint16_t largest = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (HalfBits(plain[i]) != HalfBits(want[i])) {
      ++wrong;
      EXPECT_GE(i, 0x8000u) << "a positive x is exact";
      largest = std::max<uint16_t>(largest, i & 0x7FFF);
    }
  }
  EXPECT_GE(wrong, 25u);       // one a binade
  EXPECT_GT(largest, 0x7000);  // normal results, up to the large ones
  for (const ElementwiseKind kind : kKinds) {
    EXPECT_EQ(HalfLeanBelow<Float16>(Function::kLeakyRelu, kind, tie, true, 1,
                                     /*force=*/true),
              largest + 1)
        << KindName(kind);
    for (const double alpha : {0.01, 0.5}) {
      EXPECT_EQ(HalfLeanBelow<Float16>(Function::kLeakyRelu, kind, alpha, true,
                                       1, /*force=*/true),
                0)
          << KindName(kind) << " " << alpha;
    }
  }
}

// Lengths around a pair of vectors, at offsets: the lean pairs (bfloat16's
// even and odd lanes on AVX-512), the tested remainder and ShortVector's
// tail together.
template <typename H>
void Lengths() {
  const std::vector<H> all = AllPatterns<H>();
  std::vector<H> pool(300);
  for (size_t i = 0; i < pool.size(); ++i) {
    pool[i] = all[(i * 7919 + 0x8123) % all.size()];  // many tiny negatives
  }
  const std::vector<H> gs(pool.rbegin(), pool.rend());
  for (const ElementwiseKind kind : kKinds) {
    const bool vjp = kind == ElementwiseKind::kVjp;
    const int32_t below =
        HalfLeanBelow<H>(Function::kLeakyRelu, kind, 0.01, true, 1, true);
    for (size_t len = 1; len <= 260; ++len) {
      for (size_t offset : {0, 1, 3}) {
        // x and y at unaligned offsets; y is written only where it lies.
        const H* x = pool.data() + offset;
        const H* g = vjp ? gs.data() + offset : nullptr;
        std::vector<H> lean(len + 8), tested(len + 8);
        ElementwiseHalfLean(Function::kLeakyRelu, kind, 0.01, x, g,
                            lean.data() + offset % 2, len, below);
        ElementwiseHalfLean(Function::kLeakyRelu, kind, 0.01, x, g,
                            tested.data() + offset % 2, len, -1);
        EXPECT_EQ(Differ(lean, tested,
                         std::string(HalfFormat<H>::kName) + " " +
                             KindName(kind) + " len " + std::to_string(len) +
                             " offset " + std::to_string(offset)),
                  0u);
      }
    }
  }
}

TEST(HalfLeanTest, Float16Lengths) { Lengths<Float16>(); }
TEST(HalfLeanTest, BFloat16Lengths) { Lengths<BFloat16>(); }

// The public API takes the lean path once the key has seen 262,144
// elements, with the tested path's results.
TEST(HalfLeanTest, PublicApi) {
  internal::ClearHalfTables();
  const std::vector<BFloat16> all = AllPatterns<BFloat16>();
  const std::vector<BFloat16> want =
      Leaky(ElementwiseKind::kValue, 0.01, all, all, -1);
  const uint64_t builds = internal::GetHalfTableStats().builds;
  for (int call = 1; call <= 5; ++call) {
    std::vector<BFloat16> y(all.size());
    Evaluate<BFloat16>(Function::kLeakyRelu, 0.01, all, absl::MakeSpan(y));
    EXPECT_EQ(Differ(y, want, "call " + std::to_string(call)), 0u);
    EXPECT_EQ(internal::GetHalfTableStats().builds, builds + (call >= 4));
  }
}

}  // namespace
}  // namespace test
}  // namespace actsvc
