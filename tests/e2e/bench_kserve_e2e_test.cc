// `actsvc bench --protocol=kserve|http` against actsvc-server: each RPC the
// load tester drives, sent as ModelInfer (or to the REST endpoint) to the
// model that computes it, every answer checked against the client's core;
// and the combinations no model computes refused before any call.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "actsvc/bench/v1/report.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/bench_reports.h"
#include "tests/e2e/processes.h"

namespace actsvc::e2e {
namespace {

namespace bv1 = ::actsvc::bench::v1;
using ::testing::HasSubstr;

// `actsvc bench` against `server` with `flags`, then those of `workload`,
// every answer checked: it succeeds, its output says `says`, and *report is
// the report it wrote to `json`.
void RunBench(const ServerProcess& server, std::vector<std::string> flags,
              const std::vector<std::string>& workload, const std::string& json,
              const std::string& says, bv1::Report* report) {
  flags.insert(flags.end(), {"--concurrency=2", "--warmup=0", "--check_every=1",
                             "--json", json});
  flags.insert(flags.end(), workload.begin(), workload.end());
  const ProcessResult run = RunCliCommand(ACTSVC_CLI_PATH, server.target(),
                                          "bench", flags, absl::Seconds(40));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr(says));
  *report = ReadReport(json);
}

TEST(BenchKServeE2eTest, EveryRpcAsModelInferWithEveryAnswerChecked) {
  auto server = ServerProcess::Start(ACTSVC_SERVER_PATH, {});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::vector<std::vector<std::string>> workloads = {
      {"--rpc=evaluate", "--function=gelu"},
      {"--rpc=derivative", "--order=2", "--function=tanh"},
      {"--rpc=vjp", "--function=softmax"},
      {"--rpc=jacobian", "--dense", "--function=silu", "--shape=4,16"},
      {"--rpc=xent", "--shape=8,10"},
      {"--rpc=evaluate", "--function=elu", "--dtype=float64",
       "--encoding=typed"}};
  const std::string json = TempPath("bench", "kserve.json");
  for (const std::vector<std::string>& workload : workloads) {
    SCOPED_TRACE(workload[0] + " " + workload[1]);
    bv1::Report report;
    ASSERT_NO_FATAL_FAILURE(
        RunBench(**server, {"--protocol=kserve", "--requests=60"}, workload,
                 json, "kserve ModelInfer", &report));
    EXPECT_EQ(report.config().protocol(), "kserve");
    ASSERT_NO_FATAL_FAILURE(
        ExpectOneRow(report, {/*requests=*/60, /*ok=*/60, /*errors=*/0,
                              /*wrong_answers=*/0, /*checked=*/60}));
  }
}

// --protocol=http: the same over KServe v2 REST, binary and JSON bodies.
TEST(BenchKServeE2eTest, RestBinaryAndJsonWithEveryAnswerChecked) {
  absl::StatusOr<int> http_port = PickFreePort();
  ASSERT_TRUE(http_port.ok()) << http_port.status();
  const std::string http = absl::StrCat("127.0.0.1:", *http_port);
  auto server = ServerProcess::Start(ACTSVC_SERVER_PATH,
                                     {absl::StrCat("--http_address=", http)});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string json = TempPath("bench", "http.json");
  for (const std::vector<std::string>& workload :
       std::vector<std::vector<std::string>>{
           {"--rpc=vjp", "--function=log_softmax"},
           {"--rpc=xent", "--shape=8,10", "--http_json"},
           {"--rpc=derivative", "--function=elu", "--alpha=0.5",
            "--dtype=float64", "--http_json"}}) {
    SCOPED_TRACE(workload[0] + " " + workload[1]);
    bv1::Report report;
    ASSERT_NO_FATAL_FAILURE(
        RunBench(**server,
                 {"--protocol=http", absl::StrCat("--http_target=", http),
                  "--requests=40"},
                 workload, json, "KServe REST", &report));
    ASSERT_EQ(report.rows_size(), 1);
    EXPECT_EQ(report.rows(0).ok(), 40);
    EXPECT_EQ(report.rows(0).wrong_answers(), 0);
    EXPECT_EQ(report.rows(0).checked(), 40);
  }
}

TEST(BenchKServeE2eTest, WhatNoModelComputesIsAUsageError) {
  const std::string target = "127.0.0.1:1";  // never contacted
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{
           {"--protocol=kserve", "--rpc=stream", "--function=relu"},
           {"--protocol=kserve", "--rpc=jacobian", "--function=relu"},
           {"--protocol=grpc", "--function=relu"},
           {"--protocol=http", "--function=relu", "--rps=10",
            "--http_target=127.0.0.1:1"}}) {
    const ProcessResult run = RunCliCommand(ACTSVC_CLI_PATH, target, "bench",
                                            flags, absl::Seconds(10));
    EXPECT_EQ(run.exit_code, 2) << flags[1] << ": " << run.err;
    EXPECT_THAT(run.err, HasSubstr("--protocol"));
  }
}

}  // namespace
}  // namespace actsvc::e2e
