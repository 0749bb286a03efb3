// Memory across calls (server/memory.h), on the real binary: after warm-up a
// 16 MiB call does not fault its pages in anew, and after a burst of large
// calls the server shrinks back to at most --memory_cache_mb above where it
// started. Allocator behaviour, so not under a sanitizer's allocator.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "actsvc/bench/v1/report.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/bench_reports.h"
#include "tests/e2e/processes.h"

namespace actsvc::e2e {
namespace {

namespace bv1 = ::actsvc::bench::v1;

// VmRSS of `pid`, in bytes (-1 when unreadable).
int64_t ResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "VmRSS:")) continue;
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, " kB");
    int64_t kib = 0;
    if (absl::SimpleAtoi(rest, &kib)) return kib << 10;
  }
  return -1;
}

ProcessResult Bench(const std::string& target,
                    const std::vector<std::string>& flags) {
  return RunCliCommand(ACTSVC_CLI_PATH, target, "bench", flags,
                       absl::Seconds(60));
}

class MemoryE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef ACTSVC_SANITIZED
    GTEST_SKIP() << "the sanitizer's allocator replaces glibc's";
#endif
  }
};

// Faults per call of `dtype` [4,1048576] sigmoid after a warm-up.
double FaultsPerCall(const ServerProcess& server, const std::string& dtype) {
  const std::string json =
      TempPath("memory", absl::StrCat("faults_", dtype, ".json"));
  const ProcessResult run =
      Bench(server.target(),
            {"--function=sigmoid", "--shape=4,1048576", "--concurrency=1",
             absl::StrCat("--dtype=", dtype), "--requests=20", "--warmup=40",
             "--check_every=5", "--json", json,
             absl::StrCat("--server_pid=", server.pid())});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  const bv1::Report report = ReadReport(json);
  if (report.rows_size() != 1) return -1;
  EXPECT_EQ(report.rows(0).ok(), 20);
  return report.rows(0).server_minor_faults_per_call();
}

TEST_F(MemoryE2eTest, LargeCallsReuseTheirPages) {
  auto server = ServerProcess::Start(ACTSVC_SERVER_PATH, {});
  ASSERT_TRUE(server.ok()) << server.status();
  // Each of the request, the input, the output and the response is 4096
  // pages: with malloc's defaults a call faulted about 12,000 of them.
  const double float32 = FaultsPerCall(**server, "float32");
  EXPECT_GE(float32, 0);
  EXPECT_LT(float32, 1000);
  // 32 MiB tensors, over glibc's largest reused block: the server keeps
  // those buffers itself (about 16,000 faults per call otherwise).
  const double float64 = FaultsPerCall(**server, "float64");
  EXPECT_GE(float64, 0);
  EXPECT_LT(float64, 1000);
}

TEST_F(MemoryE2eTest, ABurstShrinksBackToTheCache) {
  constexpr int64_t kCacheMb = 64;
  auto server = ServerProcess::Start(
      ACTSVC_SERVER_PATH, {absl::StrCat("--memory_cache_mb=", kCacheMb)});
  ASSERT_TRUE(server.ok()) << server.status();
  // One small call first, so the baseline has the threads and connection.
  ASSERT_EQ(Bench((*server)->target(),
                  {"--function=relu", "--shape=1,1024", "--requests=5"})
                .exit_code,
            0);
  const int64_t before = ResidentBytes((*server)->pid());
  ASSERT_GT(before, 0);
  // 16 concurrent 16 MiB calls: several hundred MiB in flight.
  const ProcessResult burst =
      Bench((*server)->target(),
            {"--function=tanh", "--shape=4,1048576", "--concurrency=16",
             "--requests=32", "--check_every=0"});
  ASSERT_EQ(burst.exit_code, 0) << burst.out << burst.err;
  // The keeper looks once a second.
  const int64_t bound = before + ((kCacheMb + 16) << 20);
  int64_t after = ResidentBytes((*server)->pid());
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (after > bound && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(200));
    after = ResidentBytes((*server)->pid());
  }
  EXPECT_LE(after, bound) << "resident " << (after >> 20) << " MiB, "
                          << (before >> 20) << " MiB before the burst";
}

}  // namespace
}  // namespace actsvc::e2e
