// Scale-out on one machine: three servers on loopback ports behind the
// client's round_robin policy, driven by `actsvc bench`. Each serves about a
// third of the calls, and losing one mid-run (SIGTERM: it drains; SIGKILL: its
// calls fail over through the retry policy) costs no call.
#include <signal.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/e2e/processes.h"

namespace actsvc::e2e {
namespace {

constexpr int kBackends = 3;

// Calls a server logged as served (its debug line per request).
int CallsServed(const ServerProcess& server) {
  const std::string log = server.Log();
  int count = 0;
  for (size_t at = log.find("Evaluate from "); at != std::string::npos;
       at = log.find("Evaluate from ", at + 1)) {
    if (log.compare(log.find(": ", at), 6, ": OK i") == 0) ++count;
  }
  return count;
}

class ScaleOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> addresses;
    for (int i = 0; i < kBackends; ++i) {
      absl::StatusOr<std::unique_ptr<ServerProcess>> server =
          ServerProcess::Start(ACTSVC_SERVER_PATH,
                               {"--log_level=debug", "--compute_threads=1",
                                "--shutdown_grace_s=10"});
      ASSERT_TRUE(server.ok()) << server.status();
      addresses.push_back((*server)->target());  // 127.0.0.1:PORT
      servers_.push_back(*std::move(server));
    }
    target_ = absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
  }

  // Runs the load tester for `seconds` against all backends.
  ProcessResult Bench(int seconds) {
    return RunProcess(
        {ACTSVC_CLI_PATH, absl::StrCat("--target=", target_), "--timeout_s=10",
         "bench", "--rpc=evaluate", "--function=gelu", "--shape=1,256",
         "--concurrency=4", "--lb=round_robin", "--check_every=10",
         absl::StrCat("--duration=", seconds, "s"), "--progress=false"},
        absl::Seconds(seconds + 30));
  }

  static std::string Describe(const ProcessResult& r) {
    return absl::StrCat("exit ", r.exit_code, "\nstdout:\n", r.out,
                        "\nstderr:\n", r.err);
  }

  std::vector<std::unique_ptr<ServerProcess>> servers_;
  std::string target_;
};

TEST_F(ScaleOutTest, RoundRobinSpreadsCallsEvenly) {
  ProcessResult r = Bench(2);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  int total = 0;
  std::vector<int> served;
  for (const auto& server : servers_) {
    served.push_back(CallsServed(*server));
    total += served.back();
  }
  ASSERT_GT(total, 300) << Describe(r);
  for (int i = 0; i < kBackends; ++i) {
    EXPECT_GT(served[i], total / 5)
        << "backend " << i << " served " << served[i] << " of " << total;
    EXPECT_LT(served[i], total / 2)
        << "backend " << i << " served " << served[i] << " of " << total;
  }
}

// Loses backend 0 one second into a three-second run; bench exits 0 only
// when every call returned OK with the right answer.
void LoseOneMidRun(int signal_number,
                   std::vector<std::unique_ptr<ServerProcess>>& servers,
                   const std::function<ProcessResult(int)>& bench) {
  ProcessResult r;
  std::thread load([&] { r = bench(3); });
  absl::SleepFor(absl::Seconds(1));
  const int before = CallsServed(*servers[0]);
  servers[0]->Signal(signal_number);
  load.join();
  EXPECT_EQ(r.exit_code, 0) << "exit " << r.exit_code << "\n"
                            << r.out << "\n"
                            << r.err;
  EXPECT_GT(before, 50) << "backend 0 took no load before the signal";
  // The others carried on after it.
  for (int i = 1; i < kBackends; ++i) {
    EXPECT_GT(CallsServed(*servers[i]), before) << "backend " << i;
  }
}

TEST_F(ScaleOutTest, SigtermToOneBackendLosesNoCall) {
  LoseOneMidRun(SIGTERM, servers_, [this](int s) { return Bench(s); });
  std::optional<int> code = servers_[0]->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << servers_[0]->Log();
}

TEST_F(ScaleOutTest, SigkillToOneBackendLosesNoCall) {
  LoseOneMidRun(SIGKILL, servers_, [this](int s) { return Bench(s); });
}

}  // namespace
}  // namespace actsvc::e2e
