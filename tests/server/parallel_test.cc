// The chunks of one large request on several threads (server/parallel.h):
// every chunk runs once, on more than one thread, with the same result as
// the serial loop, and the call still stops on its deadline and on
// cancellation between chunks.
#include "server/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/v1/service.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using testing::MakeTensor;
using testing::Ramp;

TEST(ChunkPoolTest, RunsEveryIndexOnceAndNestsInline) {
  ChunkPool pool(3);
  EXPECT_EQ(pool.threads(), 4);
  std::vector<std::atomic<int>> runs(1000);
  pool.ParallelFor(1000, [&](int64_t i) {
    runs[i].fetch_add(1);
    // A nested call from a helper (or the caller) must not wait on the
    // pool's threads.
    if (i % 100 == 0) pool.ParallelFor(3, [](int64_t) {});
  });
  for (const auto& r : runs) EXPECT_EQ(r.load(), 1);
}

TEST(ChunkPoolTest, NoHelpersRunsInline) {
  ChunkPool pool(0);
  EXPECT_EQ(pool.threads(), 1);
  const auto caller = std::this_thread::get_id();
  pool.ParallelFor(
      10, [&](int64_t) { EXPECT_EQ(std::this_thread::get_id(), caller); });
}

v1::EvaluateRequest Gelu(int64_t n, bool float64) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::GELU);
  if (float64) {
    *request.mutable_input() =
        MakeTensor<double>({n}, Ramp<double>(n), Encoding::kRaw);
  } else {
    *request.mutable_input() =
        MakeTensor<float>({n}, Ramp<float>(n), Encoding::kRaw);
  }
  return request;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

// Best of 3 wall times of HandleEvaluate.
double BestSeconds(const v1::EvaluateRequest& request,
                   const ComputeContext& context, v1::EvaluateResponse* out) {
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    out->Clear();
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(HandleEvaluate(request, context, out).ok());
    best = std::min(best, Seconds(start));
  }
  return best;
}

TEST(ParallelChunksTest, LargeRequestUsesSeveralThreadsSameResult) {
  // Over the 2^20 default threshold; ACTSVC_PARALLEL_TEST_N sets another
  // size for a timing by hand.
  int64_t n = int64_t{1} << 22;
  if (const char* env = std::getenv("ACTSVC_PARALLEL_TEST_N")) {
    n = std::max<int64_t>(std::atoll(env), int64_t{1} << 21);
  }
  const v1::EvaluateRequest request = Gelu(n, false);

  ComputeContext serial;
  serial.max_message_bytes = int64_t{1} << 30;
  v1::EvaluateResponse want;
  const double serial_s = BestSeconds(request, serial, &want);

  ChunkPool pool(1);
  ComputeContext context;
  context.max_message_bytes = serial.max_message_bytes;
  context.chunk_pool = &pool;
  std::mutex mu;
  std::set<std::thread::id> threads;
  int checks = 0;
  // Called before every chunk but the first, on the thread that runs it.
  context.is_cancelled = [&] {
    std::lock_guard<std::mutex> lock(mu);
    threads.insert(std::this_thread::get_id());
    ++checks;
    return false;
  };
  v1::EvaluateResponse got;
  const double parallel_s = BestSeconds(request, context, &got);
  std::printf("gelu float32 n=%lld: 1 thread %.1f ms, 2 threads %.1f ms\n",
              static_cast<long long>(n), 1e3 * serial_s, 1e3 * parallel_s);
  EXPECT_GE(threads.size(), 2u);
  // Per call: the initial check, then one before each later chunk.
  const int64_t chunks = n / context.chunk_elements;
  EXPECT_EQ(checks, 3 * chunks);
  EXPECT_EQ(got.output().raw_data(), want.output().raw_data());
}

TEST(ParallelChunksTest, BelowThresholdStaysOnTheCaller) {
  const v1::EvaluateRequest request = Gelu(int64_t{1} << 19, false);
  ChunkPool pool(1);
  ComputeContext context;
  context.chunk_pool = &pool;
  std::set<std::thread::id> threads;
  context.is_cancelled = [&] {
    threads.insert(std::this_thread::get_id());
    return false;
  };
  v1::EvaluateResponse response;
  ASSERT_TRUE(HandleEvaluate(request, context, &response).ok());
  EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(ParallelChunksTest, StopsOnDeadline) {
  // 64 chunks, and each check between them takes 1 ms: the 20 ms deadline
  // passes midway however fast the kernel is (float64 gelu used to be slow
  // enough on its own; since its SIMD kernel the whole call takes ~15 ms).
  const int64_t n = int64_t{1} << 22;
  const v1::EvaluateRequest request = Gelu(n, true);
  ChunkPool pool(1);
  ComputeContext context;
  context.chunk_pool = &pool;
  context.is_cancelled = [] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return false;
  };
  context.deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(20);
  v1::EvaluateResponse response;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = HandleEvaluate(request, context, &response);
  const double s = Seconds(start);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  // At most one chunk per thread past the deadline.
  EXPECT_LT(s, 0.5);
  std::printf("stopped after %.1f ms\n", 1e3 * s);
}

TEST(ParallelChunksTest, StopsOnCancellation) {
  const v1::EvaluateRequest request = Gelu(int64_t{1} << 21, false);
  ChunkPool pool(1);
  ComputeContext context;
  context.chunk_pool = &pool;
  std::atomic<int> checks{0};
  context.is_cancelled = [&] { return ++checks > 5; };
  v1::EvaluateResponse response;
  EXPECT_EQ(HandleEvaluate(request, context, &response).code(),
            absl::StatusCode::kCancelled);
  // Once a check fails no later chunk checks or starts.
  EXPECT_EQ(checks.load(), 6);
}

}  // namespace
}  // namespace actsvc::server
