// The float16 and bfloat16 paths of the elementwise functions, exhaustively:
// all 65,536 bit patterns of each type through f, f', f'' and the VJP of
// every function, on every instruction set compiled in and supported here
// (hwy::SetSupportedTargetsForTest, as simd_accuracy_test), against the
// quad oracle. The contract (SPEC.md §1, docs/accuracy.md):
//  - NaN in gives NaN out; a true result at or beyond the overflow
//    threshold (max + ulp/2) gives that infinity; a true 0 gives ±0;
//  - a subnormal result within one subnormal step of the true value;
//  - every other result within 1 ULP of the half type (of the true value's
//    binade);
//  - the correctly rounded value for >= 99.99% of the inputs whose true
//    result is normal, zero or overflows.
// One input out of bound fails the test; the output prints, per (target,
// function, kind, type), how many were not correctly rounded and the
// largest error in ULPs.
// Also: array handling at chunk boundaries and misalignments, in place.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/activation_half.h"
#include "core/half.h"
#include "core/stores.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/oracle.h"
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

// Upstream gradients, exact in both types: magnitudes around 1, and (every
// third block of 11) scaled far up or down, so that the VJP's products
// reach the subnormal and overflow ranges too.
template <typename H>
std::vector<H> Upstream(size_t n) {
  const int far = HalfFormat<H>::kMaxExponent / 2 + 4;  // 2^11 or 2^67
  std::vector<H> g(n);
  for (size_t i = 0; i < n; ++i) {
    const double base = 0.375 * (int(i % 11) - 5) + 0.25;
    const int scale = (i / 11) % 3 == 0 ? 0 : (i / 11) % 3 == 1 ? far : -far;
    g[i] = HalfFromDouble<H>(std::ldexp(base, scale));
  }
  return g;
}

// The half format's numbers, in quad.
template <typename H>
struct Grid {
  static constexpr int kDigits = HalfFormat<H>::kDigits;
  static constexpr int kMinExp = HalfFormat<H>::kMinExponent;
  static Quad MinNormal() { return ldexpq(1, kMinExp); }
  static Quad SubnormalStep() { return ldexpq(1, kMinExp - (kDigits - 1)); }
  static Quad Ulp(Quad v) {  // spacing in v's binade (normal v)
    return ldexpq(1, ilogbq(v) - (kDigits - 1));
  }
  static Quad Max() {
    return ldexpq(2 - ldexpq(1, -(kDigits - 1)), HalfFormat<H>::kMaxExponent);
  }
  static Quad OverflowThreshold() { return Max() + Ulp(Max()) / 2; }
  // v rounded to nearest even in H (quad's rintq rounds to nearest even).
  static Quad Round(Quad v) {
    if (isnanq(v)) return v;
    const Quad a = fabsq(v);
    if (a >= OverflowThreshold()) return v > 0 ? HUGE_VALQ : -HUGE_VALQ;
    const int e = a < MinNormal() ? kMinExp : ilogbq(a);
    const Quad q = ldexpq(1, e - (kDigits - 1));
    const Quad r = rintq(a / q) * q;
    return v < 0 ? -r : r;
  }
};

struct Tally {
  size_t failures = 0;
  size_t counted = 0;     // true result normal, zero or overflowing
  size_t misrounded = 0;  // of those, not the correctly rounded value
  double max_ulp = 0;
  std::string first;
};

template <typename H>
std::string Describe(H v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "0x%04x (%.9g)", HalfBits(v),
                static_cast<double>(HalfToFloat(v)));
  return buf;
}

template <typename H>
void Judge(H got_h, Quad want, H x, Tally& t) {
  using G = Grid<H>;
  const double got_d = HalfToFloat(got_h);
  const Quad got = got_d;
  bool ok;
  bool counted = true;
  if (isnanq(want)) {
    ok = std::isnan(got_d);
    counted = false;
  } else if (fabsq(want) >= G::OverflowThreshold()) {
    ok = std::isinf(got_d) && (got_d > 0) == (want > 0);
  } else if (std::isnan(got_d) || std::isinf(got_d)) {
    ok = false;
  } else if (want == 0) {
    ok = got == 0;
  } else if (fabsq(want) < G::MinNormal()) {
    ok = fabsq(got - want) <= G::SubnormalStep();
    counted = false;
  } else {
    const double ulp = static_cast<double>(fabsq(got - want) / G::Ulp(want));
    t.max_ulp = std::max(t.max_ulp, ulp);
    ok = ulp <= 1;
  }
  if (counted) {
    ++t.counted;
    const Quad cr = G::Round(want);
    if (!(cr == got)) ++t.misrounded;
  }
  if (!ok && ++t.failures <= 6) {
    t.first += "\n  x = " + Describe(x) + "  got " + Describe(got_h) +
               "  want " + QuadToString(want);
  }
}

template <typename H>
void Exhaustive(const Case& c) {
  const std::vector<H> x = AllPatterns<H>();
  const std::vector<H> g = Upstream<H>(x.size());
  std::vector<Jet> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    want[i] = OracleJet(c.function, c.alpha, Quad(HalfToFloat(x[i])));
  }
  // The public API's paths, and the VJP by its f' table (which the public
  // API takes once the key has seen 262,144 values).
  const bool table = internal::HalfExactOf(c.function, ElementwiseKind::kVjp) ==
                         internal::HalfExact::kNone &&
                     c.function != Function::kLeakyRelu;
  ForEachTarget([&](int64_t target) {
    ASSERT_STREQ(KernelTargetName(), hwy::TargetName(target));
    for (int k = 0; k < 4 + table; ++k) {
      const ElementwiseKind kind = k < 4 ? kKinds[k] : ElementwiseKind::kVjp;
      const int order = OrderOf(kind);
      std::vector<H> y(x.size(), HalfFromBits<H>(0x7E00));
      if (k < 4) {
        RunKind<H>(c, kind, x, g, absl::MakeSpan(y));
      } else {
        internal::ElementwiseHalfVjpByTable(c.function, c.alpha, x.data(),
                                            g.data(), y.data(), x.size());
      }
      Tally t;
      for (size_t i = 0; i < x.size(); ++i) {
        Quad w = want[i][order];
        if (kind == ElementwiseKind::kVjp) w = w * Quad(HalfToFloat(g[i]));
        Judge<H>(y[i], w, x[i], t);
      }
      std::printf(
          "%-7s %-22s %s %-8s  not correctly rounded %zu of %zu, max %.3f "
          "ULP\n",
          hwy::TargetName(target), c.label,
          k < 4 ? KindName(kind) : "vjp(table)", HalfFormat<H>::kName,
          t.misrounded, t.counted, t.max_ulp);
      const std::string where =
          std::string(hwy::TargetName(target)) + " " + c.label + " " +
          (k < 4 ? KindName(kind) : "vjp(table)") + " " + HalfFormat<H>::kName;
      EXPECT_EQ(t.failures, 0u)
          << where << ": " << t.failures << " inputs out of bound" << t.first;
      // >= 99.99% correctly rounded.
      EXPECT_LE(t.misrounded * 10000, t.counted) << where;
    }
  });
}

// The VJP with upstream gradients at the edges, every finite x with |x| <=
// 16 (where f' is normal in float64): +-inf and NaN (inf times a float32 f'
// that underflowed to 0 is NaN in float32, a lane the half path must
// recompute), the largest finite value and magnitudes whose products
// cross the overflow threshold, and gradients that put the products among
// the subnormals. Judged as Exhaustive judges, every lane in bound and
// >= 99.99% correctly rounded.
template <typename H>
void SpecialUpstream(const Case& c) {
  using G = Grid<H>;
  std::vector<H> x;
  for (H v : AllPatterns<H>()) {
    const float f = HalfToFloat(v);
    if (std::isfinite(f) && std::fabs(f) <= 16) x.push_back(v);
  }
  std::vector<Quad> f1(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    f1[i] = OracleJet(c.function, c.alpha, Quad(HalfToFloat(x[i])))[1];
  }
  const double max = static_cast<double>(G::Max());
  const double tiny = static_cast<double>(G::SubnormalStep());
  const double gs[] = {INFINITY,     -INFINITY,   NAN,     max,
                       -max / 3,     max / 1.5,   max / 7, tiny * 3,
                       -tiny * 1000, tiny * 40000};
  const bool table = internal::HalfExactOf(c.function, ElementwiseKind::kVjp) ==
                         internal::HalfExact::kNone &&
                     c.function != Function::kLeakyRelu;
  ForEachTarget([&](int64_t target) {
    for (int k = 0; k < 1 + table; ++k)
      for (double gv : gs) {
        const std::vector<H> g(x.size(), HalfFromDouble<H>(gv));
        std::vector<H> y(x.size(), HalfFromBits<H>(0x7E00));
        if (k == 0) {
          RunKind<H>(c, ElementwiseKind::kVjp, x, g, absl::MakeSpan(y));
        } else {
          internal::ElementwiseHalfVjpByTable(c.function, c.alpha, x.data(),
                                              g.data(), y.data(), x.size());
        }
        Tally t;
        for (size_t i = 0; i < x.size(); ++i) {
          Judge<H>(y[i], f1[i] * Quad(HalfToFloat(g[i])), x[i], t);
        }
        const std::string where = std::string(hwy::TargetName(target)) + " " +
                                  c.label + " " + HalfFormat<H>::kName +
                                  (k == 0 ? "" : " (table)") +
                                  " g = " + std::to_string(gv);
        EXPECT_EQ(t.failures, 0u)
            << where << ": " << t.failures << " inputs out of bound" << t.first;
        EXPECT_LE(t.misrounded * 10000, t.counted) << where;
      }
  });
}

// The VJP by its f' table (g times f' in float32 looked up, the rounding
// test with K = 2), every x with each of several upstream gradients (around
// 1, far up and far down: products among the subnormals and beyond the
// range; the largest finite value; +-inf with |x| <= 16, NaNs), every
// target: in bound and correctly rounded for every lane (Exhaustive's bound
// is >= 99.99%), and bit for bit the general path's (f' per chunk, the
// same values).
template <typename H>
void VjpTable(const Case& c) {
  using G = Grid<H>;  // G::Max()
  const std::vector<H> all = AllPatterns<H>();
  const int far = HalfFormat<H>::kMaxExponent / 2 + 4;  // 2^11 or 2^67
  const double gs[] = {1.0,
                       -0.625,
                       1.75,
                       std::ldexp(1.375, far),
                       std::ldexp(-1.5, -far),
                       INFINITY,
                       NAN,
                       static_cast<double>(G::Max())};
  std::vector<H> x, g;
  std::vector<Quad> want;
  std::vector<Quad> f1(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    f1[i] = OracleJet(c.function, c.alpha, Quad(HalfToFloat(all[i])))[1];
  }
  for (double gv : gs) {
    const H gh = HalfFromDouble<H>(gv);
    for (size_t i = 0; i < all.size(); ++i) {
      // +-inf as SpecialUpstream takes them: where f' is normal in
      // float64 (an f' that underflows there gives inf * 0 = NaN).
      if (std::isinf(gv) && !(std::fabs(HalfToFloat(all[i])) <= 16)) {
        continue;
      }
      x.push_back(all[i]);
      g.push_back(gh);
      want.push_back(f1[i] * Quad(HalfToFloat(gh)));
    }
  }
  // NaNs with payloads, quiet and signalling, for every x: the NaN of f'
  // (x NaN, or bfloat16's marker far in the tails) meets g's.
  const bool f16 = std::is_same_v<H, Float16>;
  for (const uint16_t bits : {f16 ? 0x7D55 : 0x7F95, f16 ? 0xFE55 : 0xFFD5}) {
    for (size_t i = 0; i < all.size(); ++i) {
      x.push_back(all[i]);
      g.push_back(HalfFromBits<H>(bits));
      want.push_back(nanq(""));
    }
  }
  ForEachTarget([&](int64_t target) {
    std::vector<H> got(x.size()), general(x.size());
    internal::ElementwiseHalfVjpByTable(c.function, c.alpha, x.data(), g.data(),
                                        got.data(), x.size());
    internal::ElementwiseHalfGeneral(c.function, ElementwiseKind::kVjp, c.alpha,
                                     x.data(), g.data(), general.data(),
                                     x.size());
    Tally t;
    size_t differ = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      Judge<H>(got[i], want[i], x[i], t);
      differ += HalfBits(got[i]) != HalfBits(general[i]);
    }
    const std::string where = std::string(hwy::TargetName(target)) + " " +
                              c.label + " vjp(table) " + HalfFormat<H>::kName;
    std::printf(
        "%s: not correctly rounded %zu of %zu, max %.3f ULP; differs from "
        "the general path in %zu\n",
        where.c_str(), t.misrounded, t.counted, t.max_ulp, differ);
    EXPECT_EQ(t.failures, 0u)
        << where << ": " << t.failures << " inputs out of bound" << t.first;
    EXPECT_EQ(t.misrounded, 0u) << where;
    EXPECT_EQ(differ, 0u) << where;
  });
}

// The VJP's table itself, every entry on every target: f' within 0.5
// float32 ULP (and 2^-16 of one: the float64 value's own error) of the
// quad oracle's wherever that is a normal float32, which VjpTable's K = 2
// rests on; bfloat16's NaN where it is not (x finite), float16's of the
// oracle's sign (or 0) there.
template <typename H>
void F1TableEntries(const Case& c) {
  const std::vector<H> all = AllPatterns<H>();
  ForEachTarget([&](int64_t target) {
    const std::shared_ptr<const float> t =
        internal::HalfF1Table<H>(c.function, c.alpha, 1, /*force=*/true);
    ASSERT_NE(t, nullptr);
    size_t bad = 0;
    double max_ulp = 0;
    std::string first;
    for (size_t i = 0; i < all.size(); ++i) {
      const float xf = HalfToFloat(all[i]);
      const Quad want = OracleJet(c.function, c.alpha, Quad(xf))[1];
      const float got = t.get()[i];
      bool ok;
      if (isnanq(want)) {
        ok = std::isnan(got);
      } else if (fabsq(want) >= ldexpq(1, -126)) {
        const double ulp = static_cast<double>(fabsq(Quad(got) - want) /
                                               ldexpq(1, ilogbq(want) - 23));
        max_ulp = std::max(max_ulp, ulp);
        ok = ulp <= 0.5 + 0x1p-16;
      } else if (!std::isfinite(xf)) {
        ok = got == 0;
      } else if (std::is_same_v<H, BFloat16>) {
        ok = std::isnan(got);
      } else {
        ok = got == 0 || (got < 0) == (want < 0);
      }
      if (!ok && ++bad <= 5) {
        first += "\n  x = " + Describe(all[i]) + " got " + std::to_string(got) +
                 " want " + QuadToString(want);
      }
    }
    const std::string where = std::string(hwy::TargetName(target)) + " " +
                              c.label + " f' table " + HalfFormat<H>::kName;
    std::printf("%s: max %.6f float32 ULP\n", where.c_str(), max_ulp);
    EXPECT_EQ(bad, 0u) << where << first;
  });
}

class HalfAccuracyTest : public ::testing::TestWithParam<Case> {};

// The functions whose VJP takes f' from the float64 kernel or its table:
// all whose VJP rounds (not identity's or relu's) but leaky_relu's, a
// multiply by alpha in float32 lanes.
class HalfVjpTableTest : public ::testing::TestWithParam<Case> {};

std::vector<Case> RoundedVjpCases() {
  std::vector<Case> cases;
  for (const Case& c : kCases) {
    if (internal::HalfExactOf(c.function, ElementwiseKind::kVjp) ==
            internal::HalfExact::kNone &&
        c.function != Function::kLeakyRelu) {
      cases.push_back(c);
    }
  }
  return cases;
}

TEST_P(HalfVjpTableTest, Float16Entries) {
  F1TableEntries<Float16>(GetParam());
}
TEST_P(HalfVjpTableTest, BFloat16Entries) {
  F1TableEntries<BFloat16>(GetParam());
}
TEST_P(HalfVjpTableTest, Float16) { VjpTable<Float16>(GetParam()); }
TEST_P(HalfVjpTableTest, BFloat16) { VjpTable<BFloat16>(GetParam()); }

INSTANTIATE_TEST_SUITE_P(RoundedVjp, HalfVjpTableTest,
                         ::testing::ValuesIn(RoundedVjpCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.label);
                         });

TEST_P(HalfAccuracyTest, Float16AllInputs) { Exhaustive<Float16>(GetParam()); }
TEST_P(HalfAccuracyTest, BFloat16AllInputs) {
  Exhaustive<BFloat16>(GetParam());
}
TEST_P(HalfAccuracyTest, Float16VjpSpecialUpstream) {
  SpecialUpstream<Float16>(GetParam());
}
TEST_P(HalfAccuracyTest, BFloat16VjpSpecialUpstream) {
  SpecialUpstream<BFloat16>(GetParam());
}

// Lengths around the vector and chunk sizes, at offsets 0..3, in place and
// out of place: each element equals, bit for bit, the result for its input
// in one long array, and nothing outside the output is written.
template <typename H>
void CheckArrays(const Case& c) {
  const std::vector<H> all = AllPatterns<H>();
  std::vector<H> pool(3000);
  for (size_t i = 0; i < pool.size(); ++i) {
    pool[i] = all[(i * 7919) % all.size()];
  }
  const std::vector<H> gpool = Upstream<H>(pool.size());
  const H canary = HalfFromBits<H>(0x7E01);
  ForEachTarget([&](int64_t target) {
    for (ElementwiseKind kind : kKinds) {
      std::vector<H> expected(pool.size());
      RunKind<H>(c, kind, pool, gpool, absl::MakeSpan(expected));
      for (size_t len :
           {0, 1, 7, 15, 16, 17, 33, 1023, 1024, 1025, 2047, 2990}) {
        for (size_t offset = 0; offset < 4; ++offset) {
          const auto x = absl::MakeConstSpan(pool).subspan(offset, len);
          const auto g = absl::MakeConstSpan(gpool).subspan(offset, len);
          for (bool in_place : {false, true}) {
            std::vector<H> buf(len + 8, canary);
            const absl::Span<H> y = absl::MakeSpan(buf).subspan(offset, len);
            if (in_place) std::copy(x.begin(), x.end(), y.begin());
            RunKind<H>(c, kind, in_place ? absl::Span<const H>(y) : x, g, y);
            for (size_t i = 0; i < len; ++i) {
              ASSERT_EQ(HalfBits(y[i]), HalfBits(expected[offset + i]))
                  << hwy::TargetName(target) << " " << c.label << " "
                  << KindName(kind) << " len " << len << " offset " << offset
                  << (in_place ? " in place" : "") << " index " << i;
            }
            for (size_t i = 0; i < buf.size(); ++i) {
              if (i >= offset && i < offset + len) continue;
              ASSERT_EQ(HalfBits(buf[i]), HalfBits(canary))
                  << "wrote outside at " << i;
            }
          }
        }
      }
    }
  });
}

TEST_P(HalfAccuracyTest, ArraysFloat16) { CheckArrays<Float16>(GetParam()); }
TEST_P(HalfAccuracyTest, ArraysBFloat16) { CheckArrays<BFloat16>(GetParam()); }

INSTANTIATE_TEST_SUITE_P(AllElementwise, HalfAccuracyTest,
                         ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.label);
                         });

// The VJP of an array of 2^21 + 37 values (4 MiB and more: its inputs
// prefetched, its output streamed where that is on and the output is
// aligned), with non-temporal stores on and off, at an aligned and an
// unaligned output, out of place and in place (into g), and for bfloat16
// with and without vcvtne2ps2bf16: each element as the same path (the
// general one, or the f' table's) gives it in slices of 4,096 (no
// streaming, no prefetch).
template <typename H>
void RunVjp(bool table, Function f, absl::Span<const H> x,
            absl::Span<const H> g, absl::Span<H> y) {
  if (table) {
    internal::ElementwiseHalfVjpByTable(f, 0.0, x.data(), g.data(), y.data(),
                                        x.size());
  } else {
    internal::ElementwiseHalfGeneral(f, ElementwiseKind::kVjp, 0.0, x.data(),
                                     g.data(), y.data(), x.size());
  }
}

template <typename H>
void LongVjp(Function f, bool table) {
  const std::vector<H> all = AllPatterns<H>();
  const size_t n = (size_t{1} << 21) + 37;
  std::vector<H> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = all[(i * 40503) % all.size()];
  const std::vector<H> g = Upstream<H>(n);
  std::vector<H> want(n);
  for (size_t at = 0; at < n; at += 4096) {
    const size_t len = std::min<size_t>(4096, n - at);
    RunVjp<H>(table, f, absl::MakeConstSpan(x).subspan(at, len),
              absl::MakeConstSpan(g).subspan(at, len),
              absl::MakeSpan(want).subspan(at, len));
  }
  const H canary = HalfFromBits<H>(0x7E01);
  for (const bool native : {true, false}) {
    internal::UseNativeBFloat16(native);
    for (const NonTemporalStores nt :
         {NonTemporalStores::kOn, NonTemporalStores::kOff}) {
      SetNonTemporalStores(nt);
      for (size_t offset : {0, 3, 32}) {
        for (const bool in_place : {false, true}) {
          std::vector<H> buf(n + 40, canary);
          const absl::Span<H> y = absl::MakeSpan(buf).subspan(offset, n);
          if (in_place) std::copy(g.begin(), g.end(), y.begin());
          RunVjp<H>(table, f, absl::MakeConstSpan(x),
                    in_place ? absl::Span<const H>(y) : absl::MakeConstSpan(g),
                    y);
          size_t wrong = 0, first = n;
          for (size_t i = 0; i < n; ++i) {
            if (HalfBits(y[i]) != HalfBits(want[i])) {
              if (wrong++ == 0) first = i;
            }
          }
          EXPECT_EQ(wrong, 0u)
              << (table ? "table" : "general") << " native " << native
              << " streamed " << (nt == NonTemporalStores::kOn) << " offset "
              << offset << (in_place ? " in place" : "") << ", first at "
              << first;
          EXPECT_EQ(HalfBits(buf[offset + n]), HalfBits(canary));
          if (offset > 0) {
            EXPECT_EQ(HalfBits(buf[offset - 1]), HalfBits(canary));
          }
        }
      }
    }
  }
  SetNonTemporalStores(NonTemporalStores::kByCpu);
  internal::UseNativeBFloat16(true);
}

TEST(HalfLongVjpTest, Float16) {
  for (Function f : {Function::kSigmoid, Function::kGelu, Function::kElu}) {
    LongVjp<Float16>(f, /*table=*/false);
  }
}
TEST(HalfLongVjpTest, BFloat16) {
  for (Function f : {Function::kSigmoid, Function::kGelu, Function::kElu}) {
    LongVjp<BFloat16>(f, /*table=*/false);
  }
}
TEST(HalfLongVjpTest, Float16Table) {
  for (Function f : {Function::kSigmoid, Function::kGelu, Function::kElu}) {
    LongVjp<Float16>(f, /*table=*/true);
  }
}
TEST(HalfLongVjpTest, BFloat16Table) {
  for (Function f : {Function::kSigmoid, Function::kGelu, Function::kElu}) {
    LongVjp<BFloat16>(f, /*table=*/true);
  }
}

// The scalar and array conversions against each other and against exact
// arithmetic: every pattern widens to its value and narrows back to itself
// (NaN to a NaN); values between neighbours round to nearest even.
template <typename H>
void CheckConversions() {
  const std::vector<H> all = AllPatterns<H>();
  std::vector<float> wide(all.size());
  std::vector<double> mids;
  std::vector<float> probes;
  for (uint32_t i = 0; i < 65536; ++i) {
    const float v = HalfToFloat(all[i]);
    const uint16_t back = HalfBits(HalfFromDouble<H>(v));
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(HalfFromBits<H>(back)))) << i;
    } else {
      EXPECT_EQ(back, i) << "pattern " << i;
    }
  }
  // Midpoints between consecutive positive finite values (ties to even),
  // and points a quarter of the way (to the nearer one).
  const uint16_t inf_bits = HalfBits(HalfFromDouble<H>(INFINITY));
  for (uint32_t i = 0; i + 1 < inf_bits; ++i) {
    const double lo = HalfToFloat(HalfFromBits<H>(uint16_t(i)));
    const double hi = HalfToFloat(HalfFromBits<H>(uint16_t(i + 1)));
    const uint16_t even = (i % 2 == 0) ? uint16_t(i) : uint16_t(i + 1);
    ASSERT_EQ(HalfBits(HalfFromDouble<H>((lo + hi) / 2)), even) << i;
    ASSERT_EQ(HalfBits(HalfFromDouble<H>(lo + (hi - lo) / 4)), i) << i;
    ASSERT_EQ(HalfBits(HalfFromDouble<H>(-(lo + (hi - lo) * 0.75))),
              0x8000 | (i + 1))
        << i;
    probes.push_back(static_cast<float>((lo + hi) / 2));
    probes.push_back(static_cast<float>(lo + (hi - lo) / 4));
    probes.push_back(-static_cast<float>(lo + (hi - lo) * 0.75));
  }
  probes.push_back(1e30f);
  probes.push_back(-std::numeric_limits<float>::max());
  probes.push_back(INFINITY);
  probes.push_back(std::numeric_limits<float>::denorm_min());
  ForEachTarget([&](int64_t target) {
    WidenHalf(absl::MakeConstSpan(all), absl::MakeSpan(wide));
    for (size_t i = 0; i < all.size(); ++i) {
      const float want = HalfToFloat(all[i]);
      ASSERT_TRUE(std::memcmp(&wide[i], &want, 4) == 0 ||
                  (std::isnan(want) && std::isnan(wide[i])))
          << hwy::TargetName(target) << " widen " << i;
    }
    std::vector<H> narrow(probes.size());
    NarrowToHalf(absl::MakeConstSpan(probes), absl::MakeSpan(narrow));
    for (size_t i = 0; i < probes.size(); ++i) {
      ASSERT_EQ(HalfBits(narrow[i]), HalfBits(HalfFromDouble<H>(probes[i])))
          << hwy::TargetName(target) << " narrow " << probes[i];
    }
  });
}

TEST(HalfConversionTest, Float16) { CheckConversions<Float16>(); }
TEST(HalfConversionTest, BFloat16) { CheckConversions<BFloat16>(); }

}  // namespace
}  // namespace test
}  // namespace actsvc
