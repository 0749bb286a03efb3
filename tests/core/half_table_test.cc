// The half path's tables (core/activation_half_table.cc) against its general
// path, bit for bit, on every instruction set: every input of both types for
// every function that rounds and f, f', f'' (leaky_relu and elu at several
// alphas); lengths 1-1,025 at offsets 0-3, in place and out, through both
// lookup loops (scalar and gathers) and the streamed one; the public API's
// choice of path; the cache under concurrent first use, and its bound.
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/activation_half.h"
#include "core/half.h"
#include "core/stores.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/test_util.h"

namespace actsvc {
namespace test {
namespace {

using internal::ElementwiseHalfGeneral;
using internal::ElementwiseHalfTable;
using internal::HalfExact;
using internal::HalfExactOf;

// The cases of test_util.h and more alphas for leaky_relu and elu: ties and
// near-ties of the half types, subnormal, negative, large.
std::vector<Case> TableCases() {
  std::vector<Case> cases(std::begin(kCases), std::end(kCases));
  const Case more[] = {
      {Function::kLeakyRelu, 1.0 / 3, "leaky_relu_third"},
      {Function::kLeakyRelu, 1 + 0x1p-11, "leaky_relu_f16_tie"},
      {Function::kLeakyRelu, 1e-6, "leaky_relu_f16_subnormal"},
      {Function::kElu, 0.1, "elu_0_1"},
      {Function::kElu, 3.0, "elu_3"},
      {Function::kElu, 1 + 0x1p-8 + 0x1p-30, "elu_bf16_over_tie"},
  };
  cases.insert(cases.end(), std::begin(more), std::end(more));
  return cases;
}

constexpr ElementwiseKind kTableKinds[] = {ElementwiseKind::kValue,
                                           ElementwiseKind::kDerivative1,
                                           ElementwiseKind::kDerivative2};

template <typename H>
std::vector<H> General(const Case& c, ElementwiseKind kind,
                       const std::vector<H>& x) {
  std::vector<H> y(x.size());
  ElementwiseHalfGeneral(c.function, kind, c.alpha, x.data(), nullptr, y.data(),
                         x.size());
  return y;
}

// y through the table, built now if need be (the cache's native_bf16 key
// as ElementwiseHalf would pass it: on, the default).
template <typename H>
void Table(const Case& c, ElementwiseKind kind, const H* x, H* y, size_t n) {
  ASSERT_TRUE(ElementwiseHalfTable(c.function, kind, c.alpha,
                                   /*native_bf16=*/true, x, y, n,
                                   /*force=*/true));
}

template <typename H>
void ExpectSameBits(const std::vector<H>& got, const std::vector<H>& want,
                    const std::string& where) {
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (HalfBits(got[i]) != HalfBits(want[i]) && ++bad <= 5) {
      ADD_FAILURE() << where << " index " << i << ": table 0x" << std::hex
                    << HalfBits(got[i]) << " general 0x" << HalfBits(want[i]);
    }
  }
  EXPECT_EQ(bad, 0u) << where;
}

// Every input, every kind that rounds, every target: the table's result is
// the general path's.
template <typename H>
void AllInputs() {
  const std::vector<H> x = AllPatterns<H>();
  ForEachTarget([&](int64_t target) {
    for (const Case& c : TableCases()) {
      for (ElementwiseKind kind : kTableKinds) {
        if (HalfExactOf(c.function, kind) != HalfExact::kNone) continue;
        const std::vector<H> want = General(c, kind, x);
        std::vector<H> y(x.size());
        Table(c, kind, x.data(), y.data(), x.size());
        const std::string where = std::string(hwy::TargetName(target)) + " " +
                                  c.label + " " + KindName(kind) + " " +
                                  HalfFormat<H>::kName;
        ExpectSameBits(y, want, where);
        // And the public API (the general path at this length, then the
        // table once the key has seen 262,144, but for leaky_relu).
        for (int call = 0; call < 4; ++call) {
          std::vector<H> z(x.size());
          RunKind<H>(c, kind, x, {}, absl::MakeSpan(z));
          ExpectSameBits(z, want, where + " (public API)");
        }
      }
    }
  });
}

TEST(HalfTableTest, Float16AllInputs) { AllInputs<Float16>(); }
TEST(HalfTableTest, BFloat16AllInputs) { AllInputs<BFloat16>(); }

// Lengths 1..1,025 at offsets 0..3, in place and out, nothing outside the
// output written; both lookup loops; and an array long enough for the
// streamed stores, at an odd offset.
template <typename H>
void Arrays(internal::HalfTableLoop loop) {
  internal::SetHalfTableLoop(loop);
  const std::vector<H> all = AllPatterns<H>();
  std::vector<H> pool(1100);
  for (size_t i = 0; i < pool.size(); ++i) {
    pool[i] = all[(i * 7919 + 12345) % all.size()];
  }
  const H canary = HalfFromBits<H>(0x7E01);
  const Case c = {Function::kGelu, 0, "gelu"};
  for (ElementwiseKind kind : kTableKinds) {
    const std::vector<H> expected = General(c, kind, pool);
    for (size_t len = 1; len <= 1025; ++len) {
      for (size_t offset = 0; offset < 4; ++offset) {
        for (bool in_place : {false, true}) {
          std::vector<H> buf(len + 8, canary);
          H* y = buf.data() + offset;
          const H* x = pool.data() + offset;
          if (in_place) {
            std::copy(x, x + len, y);
            x = y;
          }
          Table(c, kind, x, y, len);
          for (size_t i = 0; i < buf.size(); ++i) {
            const bool inside = i >= offset && i < offset + len;
            const uint16_t want =
                inside ? HalfBits(expected[i]) : HalfBits(canary);
            ASSERT_EQ(HalfBits(buf[i]), want)
                << KindName(kind) << " len " << len << " offset " << offset
                << (in_place ? " in place" : "") << " at " << i;
          }
        }
      }
    }
  }
  // 2^21 + 37 values (4 MiB and more: x prefetched, y streamed or not as
  // the CPU's vendor decides; here both ways), output at an odd offset.
  const size_t n = (size_t{1} << 21) + 37;
  std::vector<H> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = all[(i * 40503) % all.size()];
  const std::vector<H> want = General(c, ElementwiseKind::kValue, x);
  for (const NonTemporalStores nt :
       {NonTemporalStores::kOn, NonTemporalStores::kOff}) {
    SetNonTemporalStores(nt);
    for (size_t offset : {0, 3, 32}) {
      std::vector<H> buf(n + 40, canary);
      Table(c, ElementwiseKind::kValue, x.data(), buf.data() + offset, n);
      const std::vector<H> got(buf.begin() + offset, buf.begin() + offset + n);
      ExpectSameBits(got, want,
                     "long, offset " + std::to_string(offset) + " streamed " +
                         std::to_string(nt == NonTemporalStores::kOn));
      EXPECT_EQ(HalfBits(buf[offset + n]), HalfBits(canary));
    }
  }
  SetNonTemporalStores(NonTemporalStores::kByCpu);
  internal::SetHalfTableLoop(internal::HalfTableLoop::kByCpu);
}

TEST(HalfTableTest, ArraysFloat16Scalar) {
  Arrays<Float16>(internal::HalfTableLoop::kScalar);
}
TEST(HalfTableTest, ArraysBFloat16Scalar) {
  Arrays<BFloat16>(internal::HalfTableLoop::kScalar);
}
TEST(HalfTableTest, ArraysFloat16Gather) {
  Arrays<Float16>(internal::HalfTableLoop::kGather);
}
TEST(HalfTableTest, ArraysBFloat16Gather) {
  Arrays<BFloat16>(internal::HalfTableLoop::kGather);
}

// The public API builds a key's table once the key has computed 262,144
// elements on the general path (65,536 for a VJP's f' table), and not
// before; the exact path never builds one, leaky_relu only its lean bound.
TEST(HalfTableTest, WhenToBuild) {
  internal::ClearHalfTables();
  const std::vector<Float16> all = AllPatterns<Float16>();
  const std::vector<Float16> x(all.begin(), all.begin() + 4096);
  std::vector<Float16> y(x.size());
  const std::vector<Float16> g(1, HalfFromBits<Float16>(0x3C00));
  const uint64_t builds = internal::GetHalfTableStats().builds;
  for (int call = 1; call <= 64; ++call) {
    Evaluate<Float16>(Function::kTanh, 0, x, absl::MakeSpan(y));
    EXPECT_EQ(internal::GetHalfTableStats().builds, builds + (call == 64))
        << "call " << call;
  }
  const std::vector<Float16> ones(all.size(), g[0]);
  std::vector<Float16> out(all.size());
  Evaluate<Float16>(Function::kRelu, 0, all, absl::MakeSpan(out));
  Evaluate<Float16>(Function::kLeakyRelu, 0.01, all, absl::MakeSpan(out));
  EXPECT_EQ(internal::GetHalfTableStats().builds, builds + 1);
  EXPECT_EQ(internal::GetHalfTableStats().tables, 1u);
  internal::UseHalfTables(false);
  Evaluate<Float16>(Function::kSigmoid, 0, all, absl::MakeSpan(out));
  EXPECT_EQ(internal::GetHalfTableStats().builds, builds + 1);
  internal::UseHalfTables(true);
  for (int call = 1; call <= 4; ++call) {
    Evaluate<Float16>(Function::kSigmoid, 0, all, absl::MakeSpan(out));
    EXPECT_EQ(internal::GetHalfTableStats().builds, builds + 1 + (call == 4));
  }
  // A VJP's f' table comes once the key has seen 65,536 values (its f' per
  // chunk costs what a build does); leaky_relu's VJP (a multiply, cheaper
  // than the lookup) never builds one, but its lean bound (HalfLeanBelow)
  // at 262,144 values, as a table of f would.
  const std::vector<Float16> gx(x.size(), g[0]);
  for (int call = 1; call <= 16; ++call) {
    Vjp<Float16>(Function::kTanh, 0, x, gx, absl::MakeSpan(y));
    Vjp<Float16>(Function::kLeakyRelu, 0.01, all, ones, absl::MakeSpan(out));
    EXPECT_EQ(internal::GetHalfTableStats().builds,
              builds + 2 + (call >= 4) + (call == 16))
        << "call " << call;
  }
  Vjp<Float16>(Function::kSigmoid, 0, all, ones, absl::MakeSpan(out));
  EXPECT_EQ(internal::GetHalfTableStats().builds, builds + 5);
  EXPECT_EQ(internal::GetHalfTableStats().tables, 5u);
}

// Threads calling the same keys at once on a cold cache, each with an
// array long enough to build at once: each key is built once, and every
// thread's results are the general path's.
TEST(HalfTableTest, ConcurrentFirstUse) {
  // 4 x 65,536 values: each thread's call builds, or waits for the build.
  std::vector<BFloat16> x = AllPatterns<BFloat16>();
  for (int k = 0; k < 2; ++k) x.insert(x.end(), x.begin(), x.end());
  const Case cases[] = {{Function::kSilu, 0, "silu"},
                        {Function::kElu, 0.25, "elu_0_25"}};
  std::vector<BFloat16> want[2];
  for (int k = 0; k < 2; ++k) {
    want[k] = General(cases[k], ElementwiseKind::kDerivative1, x);
  }
  for (int round = 0; round < 3; ++round) {
    internal::ClearHalfTables();
    const uint64_t builds = internal::GetHalfTableStats().builds;
    constexpr int kThreads = 8;
    std::vector<std::vector<BFloat16>> got(kThreads,
                                           std::vector<BFloat16>(x.size()));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const Case& c = cases[t % 2];
        Derivative<BFloat16>(c.function, c.alpha, 1, x, absl::MakeSpan(got[t]));
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(internal::GetHalfTableStats().builds, builds + 2);
    for (int t = 0; t < kThreads; ++t) {
      ExpectSameBits(got[t], want[t % 2], "thread " + std::to_string(t));
    }
  }
}

// More keys than the cache holds: it keeps at most its bound of keys and
// bytes (<= 12 MiB: 95 tables of f, f' or f'', 128 KiB each, or 48 of the
// VJP's 256 KiB), drops the least recently used, and a dropped key is
// rebuilt with the same results.
TEST(HalfTableTest, Bound) {
  internal::ClearHalfTables();
  const std::vector<Float16> x = AllPatterns<Float16>();
  const std::vector<Float16> g(x.size(), HalfFromBits<Float16>(0x3C00));
  std::vector<Float16> y(x.size());
  for (const bool vjp : {false, true}) {
    size_t max_keys = 0;
    for (int k = 0; k < 120; ++k) {
      const Case c = {Function::kElu, 0.01 * (k + 1), "elu"};
      if (vjp) {
        internal::ElementwiseHalfVjpByTable(c.function, c.alpha, x.data(),
                                            g.data(), y.data(), x.size());
      } else {
        Table(c, ElementwiseKind::kValue, x.data(), y.data(), x.size());
      }
      const internal::HalfTableStats s = internal::GetHalfTableStats();
      EXPECT_LE(s.bytes, s.max_bytes);
      EXPECT_LE(s.max_bytes, size_t{12} << 20);
      EXPECT_EQ(s.tables, s.keys);
      max_keys = std::max(max_keys, s.keys);
    }
    // The VJP's keys replace the others as they come, the least recent
    // first: 48 of them fill the cache.
    EXPECT_EQ(max_keys, vjp ? 94u : 95u);
    EXPECT_EQ(internal::GetHalfTableStats().keys, vjp ? 48u : 95u);
  }
  const Case first = {Function::kElu, 0.01, "elu"};
  Table(first, ElementwiseKind::kValue, x.data(), y.data(), x.size());
  ExpectSameBits(y, General(first, ElementwiseKind::kValue, x), "rebuilt");
  EXPECT_LE(internal::GetHalfTableStats().keys, 95u);
}

}  // namespace
}  // namespace test
}  // namespace actsvc
