// Non-temporal stores (core/stores.h) change only the speed: the kernels'
// outputs beyond the streaming thresholds are bit for bit the same with
// them and without, for the elementwise array loops (MapArray, MapSplit)
// and the softmax rows, whichever way the CPU's vendor decides; and so are
// large arrays, whose inputs the array loops prefetch, and their pieces.
#include "core/stores.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/activation.h"
#include "core/softmax.h"

namespace actsvc {
namespace {

// 6 MiB of float32: beyond the elementwise kernels' 4 MiB threshold and
// short of softmax's 8 MiB; 12 MiB rows of float32 for softmax.
constexpr size_t kElementwise = size_t{3} << 19;
constexpr int64_t kRows = 3072, kClasses = 1024;

std::vector<float> Uniform(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-10.0f, 10.0f);
  std::vector<float> v(n);
  for (float& e : v) e = u(rng);
  return v;
}

// Restores the vendor's choice when a test ends.
class StoresTest : public ::testing::Test {
 protected:
  ~StoresTest() override { SetNonTemporalStores(NonTemporalStores::kByCpu); }

  template <class Run>
  static void ExpectSameBothWays(StoreUse use, size_t n, const Run& run) {
    std::vector<float> with(n), without(n);
    SetNonTemporalStores(NonTemporalStores::kOn);
    ASSERT_TRUE(UseNonTemporalStores(use));
    run(absl::MakeSpan(with));
    SetNonTemporalStores(NonTemporalStores::kOff);
    ASSERT_FALSE(UseNonTemporalStores(use));
    run(absl::MakeSpan(without));
    EXPECT_EQ(std::memcmp(with.data(), without.data(), n * sizeof(float)), 0);
  }
};

TEST_F(StoresTest, TheOverrideTakesAndByCpuIsTheDefault) {
  const std::string vendor = StoreVendorName();
  for (const StoreUse use : {StoreUse::kElementwise, StoreUse::kSoftmaxRows,
                             StoreUse::kHalfTables}) {
    SCOPED_TRACE(testing::Message() << vendor << " " << static_cast<int>(use));
    const bool by_cpu = UseNonTemporalStores(use);
    switch (use) {
      case StoreUse::kElementwise:
        EXPECT_TRUE(by_cpu);
        break;
      case StoreUse::kSoftmaxRows:
        EXPECT_EQ(by_cpu, vendor != "AMD");
        break;
      case StoreUse::kHalfTables:
        EXPECT_EQ(by_cpu, vendor != "Intel");
        break;
    }
    SetNonTemporalStores(NonTemporalStores::kOn);
    EXPECT_TRUE(UseNonTemporalStores(use));
    SetNonTemporalStores(NonTemporalStores::kOff);
    EXPECT_FALSE(UseNonTemporalStores(use));
    SetNonTemporalStores(NonTemporalStores::kByCpu);
    EXPECT_EQ(UseNonTemporalStores(use), by_cpu);
  }
}

TEST_F(StoresTest, OutputsStreamFromTheirFamilysThreshold) {
  constexpr size_t kMiB = size_t{1} << 20;
  SetNonTemporalStores(NonTemporalStores::kOn);
  EXPECT_FALSE(StreamOutput(StoreUse::kElementwise, 4 * kMiB - 1));
  EXPECT_TRUE(StreamOutput(StoreUse::kElementwise, 4 * kMiB));
  EXPECT_FALSE(StreamOutput(StoreUse::kSoftmaxRows, 8 * kMiB - 1));
  EXPECT_TRUE(StreamOutput(StoreUse::kSoftmaxRows, 8 * kMiB));
  SetNonTemporalStores(NonTemporalStores::kOff);
  EXPECT_FALSE(StreamOutput(StoreUse::kElementwise, 64 * kMiB));
  EXPECT_FALSE(StreamOutput(StoreUse::kSoftmaxRows, 64 * kMiB));
  // Beyond the caches (the inputs prefetched) whatever the store choice.
  EXPECT_FALSE(BeyondCaches(StoreUse::kElementwise, 4 * kMiB - 1));
  EXPECT_TRUE(BeyondCaches(StoreUse::kElementwise, 4 * kMiB));
  EXPECT_FALSE(BeyondCaches(StoreUse::kSoftmaxRows, 8 * kMiB - 1));
  EXPECT_TRUE(BeyondCaches(StoreUse::kSoftmaxRows, 8 * kMiB));
}

// An array beyond the caches, its inputs prefetched ahead of the loop (to
// and past its end), gives the bits of the same values computed in pieces
// that are not (64K elements, as the server's chunks).
TEST_F(StoresTest, LargeArraysGiveTheBitsOfTheirPieces) {
  const std::vector<float> x = Uniform(kElementwise, 5);
  const std::vector<float> g = Uniform(kElementwise, 6);
  constexpr size_t kPiece = 65536;
  for (const Function f :
       {Function::kSigmoid, Function::kGelu, Function::kGeluTanh}) {
    for (const bool vjp : {false, true}) {
      SCOPED_TRACE(testing::Message() << FunctionName(f) << " vjp " << vjp);
      const auto run = [&](size_t begin, size_t n, float* y) {
        const auto xs = absl::MakeConstSpan(x).subspan(begin, n);
        const auto ys = absl::MakeSpan(y, n);
        if (vjp) {
          Vjp<float>(f, 0.0, xs, absl::MakeConstSpan(g).subspan(begin, n), ys);
        } else {
          Evaluate<float>(f, 0.0, xs, ys);
        }
      };
      std::vector<float> whole(x.size()), pieces(x.size());
      run(0, x.size(), whole.data());
      for (size_t i = 0; i < x.size(); i += kPiece) {
        run(i, std::min(kPiece, x.size() - i), pieces.data() + i);
      }
      EXPECT_EQ(std::memcmp(whole.data(), pieces.data(), x.size() * 4), 0);
    }
  }
}

TEST_F(StoresTest, ElementwiseResultsAreTheSameEitherWay) {
  const std::vector<float> x = Uniform(kElementwise, 1);
  const std::vector<float> g = Uniform(kElementwise, 2);
  // sigmoid through MapArray; gelu's value and VJP through MapSplit. An
  // output misaligned by one element takes the unaligned head too.
  for (const Function f : {Function::kSigmoid, Function::kGelu}) {
    for (const size_t skip : {size_t{0}, size_t{1}}) {
      SCOPED_TRACE(testing::Message() << FunctionName(f) << " skip " << skip);
      const auto xs = absl::MakeConstSpan(x).subspan(skip);
      const auto gs = absl::MakeConstSpan(g).subspan(skip);
      ExpectSameBothWays(
          StoreUse::kElementwise, xs.size(),
          [&](absl::Span<float> y) { Evaluate<float>(f, 0.0, xs, y); });
      ExpectSameBothWays(
          StoreUse::kElementwise, xs.size(),
          [&](absl::Span<float> y) { Vjp<float>(f, 0.0, xs, gs, y); });
    }
  }
}

TEST_F(StoresTest, SoftmaxResultsAreTheSameEitherWay) {
  const size_t n = static_cast<size_t>(kRows * kClasses);
  const std::vector<float> x = Uniform(n, 3);
  const std::vector<float> g = Uniform(n, 4);
  const std::vector<int64_t> shape = {kRows, kClasses};
  const AxisView v = MakeAxisView(shape, 1);
  for (const Function f : {Function::kSoftmax, Function::kLogSoftmax}) {
    SCOPED_TRACE(FunctionName(f));
    ExpectSameBothWays(StoreUse::kSoftmaxRows, n, [&](absl::Span<float> y) {
      SoftmaxForward<float>(f, v, x, y);
    });
    ExpectSameBothWays(StoreUse::kSoftmaxRows, n, [&](absl::Span<float> y) {
      SoftmaxVjp<float>(f, v, x, g, y);
    });
  }
}

}  // namespace
}  // namespace actsvc
