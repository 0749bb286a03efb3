// `actsvc bench` against real servers: a short live run against
// actsvc-server (no errors, plausible figures, the JSON and CSV reports), and
// runs against a deliberately wrong server whose answers must be counted as
// wrong.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "actsvc/bench/v1/report.pb.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "client/tensor.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/e2e/bench_reports.h"
#include "tests/e2e/processes.h"

namespace actsvc::e2e {
namespace {

namespace v1 = ::actsvc::v1;
namespace bv1 = ::actsvc::bench::v1;
using ::testing::HasSubstr;

ProcessResult Bench(const std::string& target,
                    const std::vector<std::string>& flags) {
  return RunCliCommand(ACTSVC_CLI_PATH, target, "bench", flags,
                       absl::Seconds(40));
}

TEST(BenchE2eTest, TwoSecondsAgainstTheServer) {
  auto server = ServerProcess::Start(ACTSVC_SERVER_PATH, {});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string json = TempPath("bench", "live.json");
  const std::string csv = TempPath("bench", "live.csv");
  const ProcessResult run = Bench(
      (*server)->target(),
      {"--function=gelu", "--shape=4,256", "--concurrency=4", "--duration=2s",
       "--warmup=100", "--check-every=10", "--json", json, "--csv", csv,
       absl::StrCat("--server_pid=", (*server)->pid())});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr("concurrency=4"));
  EXPECT_THAT(run.out, HasSubstr("p99.9"));

  const bv1::Report report = ReadReport(json);
  EXPECT_EQ(report.config().function(), "gelu");
  EXPECT_EQ(report.config().elements(), 1024);
  ASSERT_EQ(report.rows_size(), 1);
  const bv1::Row& row = report.rows(0);
  EXPECT_EQ(row.concurrency(), 4);
  EXPECT_EQ(row.errors(), 0);
  EXPECT_EQ(row.wrong_answers(), 0);
  EXPECT_EQ(row.ok(), row.requests());
  // Even a loaded 2-core machine does 100 small calls a second.
  EXPECT_GT(row.requests(), 200);
  EXPECT_NEAR(row.duration_s(), 2, 0.5);
  EXPECT_NEAR(row.rps(), row.requests() / row.duration_s(), 1e-6 * row.rps());
  EXPECT_GE(row.checked(), row.requests() / 10 - 1);
  EXPECT_NEAR(row.elements_per_s(), row.ok_rps() * 1024,
              1e-6 * row.ok_rps() * 1024);
  EXPECT_GT(row.request_mb_per_s(), 0);
  const bv1::Latency& l = row.latency();
  EXPECT_GT(l.min_ms(), 0);
  EXPECT_LE(l.min_ms(), l.p50_ms());
  EXPECT_LE(l.p50_ms(), l.p90_ms());
  EXPECT_LE(l.p90_ms(), l.p99_ms());
  EXPECT_LE(l.p99_ms(), l.p999_ms());
  EXPECT_LE(l.p999_ms(), l.max_ms());
  EXPECT_LT(l.p50_ms(), 1000);
  // Little's law, closed loop: concurrency = throughput * mean latency.
  EXPECT_NEAR(row.rps() * l.mean_ms() / 1e3, 4, 1.0);
  ASSERT_EQ(row.statuses_size(), 1);
  EXPECT_EQ(row.statuses(0).code(), "OK");
  EXPECT_GT(row.server_cpu_ms_per_call(), 0);
  int64_t in_histogram = 0;
  for (const auto& b : row.histogram()) in_histogram += b.count();
  EXPECT_EQ(in_histogram, row.ok());

  std::vector<std::string> lines =
      absl::StrSplit(ReadFile(csv), '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 2u);
}

TEST(BenchE2eTest, OpenLoopSweepKeepsTheRate) {
  auto server = ServerProcess::Start(ACTSVC_SERVER_PATH, {});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string json = TempPath("bench", "open.json");
  const ProcessResult run = Bench(
      (*server)->target(), {"--rpc=stream", "--function=sigmoid",
                            "--rps=100,200", "--duration=1s", "--json", json});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const bv1::Report report = ReadReport(json);
  EXPECT_EQ(report.config().mode(), "open");
  ASSERT_EQ(report.rows_size(), 2);
  // A constant schedule sends exactly rate * duration calls.
  EXPECT_EQ(report.rows(0).requests(), 100);
  EXPECT_EQ(report.rows(1).requests(), 200);
  EXPECT_EQ(report.rows(1).target_rps(), 200);
  EXPECT_EQ(report.rows(1).errors(), 0);
}

// Answers Evaluate with f(x) + 0.5: well-formed, and wrong.
class WrongService final : public v1::ActivationService::Service {
  grpc::Status Evaluate(grpc::ServerContext*,
                        const v1::EvaluateRequest* request,
                        v1::EvaluateResponse* response) override {
    absl::StatusOr<std::vector<double>> x =
        client::TensorValues(request->input());
    if (!x.ok()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "");
    for (double& v : *x) v = v + 0.5;  // identity, perturbed
    std::vector<int64_t> shape(request->input().shape().begin(),
                               request->input().shape().end());
    *response->mutable_output() = client::MakeTensor(
        shape, request->input().dtype(), *x, client::Encoding::kRaw);
    return grpc::Status::OK;
  }
};

class WrongServer {
 public:
  WrongServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~WrongServer() { server_->Shutdown(); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  WrongService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST(BenchE2eTest, WrongAnswersAreCounted) {
  WrongServer server;
  const std::string json = TempPath("bench", "wrong.json");
  const ProcessResult run = Bench(
      server.target(), {"--function=identity", "--shape=8", "--requests=50",
                        "--concurrency=2", "--check-every=1", "--json", json});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr("WRONG_ANSWER"));
  const bv1::Report report = ReadReport(json);
  ASSERT_NO_FATAL_FAILURE(
      ExpectOneRow(report, {/*requests=*/50, /*ok=*/0, /*errors=*/50,
                            /*wrong_answers=*/50, /*checked=*/50}));
  const bv1::Row& row = report.rows(0);
  ASSERT_EQ(row.statuses_size(), 1);
  EXPECT_EQ(row.statuses(0).code(), "WRONG_ANSWER");
  EXPECT_THAT(row.statuses(0).sample_message(),
              HasSubstr("8 of 8 values differ"));
}

TEST(BenchE2eTest, OnlyCheckedResponsesCanBeWrong) {
  WrongServer server;
  const std::string json = TempPath("bench", "every5.json");
  const ProcessResult run = Bench(
      server.target(), {"--function=identity", "--shape=8", "--requests=50",
                        "--check-every=5", "--json", json});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  const bv1::Report report = ReadReport(json);
  ASSERT_EQ(report.rows_size(), 1);
  EXPECT_EQ(report.rows(0).checked(), 10);
  EXPECT_EQ(report.rows(0).wrong_answers(), 10);
  EXPECT_EQ(report.rows(0).ok(), 40);
}

TEST(BenchE2eTest, UnimplementedCallsAreCountedByStatus) {
  WrongServer server;  // implements Evaluate only
  const std::string json = TempPath("bench", "unimplemented.json");
  const ProcessResult run = Bench(
      server.target(),
      {"--rpc=jacobian", "--function=tanh", "--requests=20", "--json", json});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  const bv1::Report report = ReadReport(json);
  ASSERT_EQ(report.rows_size(), 1);
  ASSERT_EQ(report.rows(0).statuses_size(), 1);
  EXPECT_EQ(report.rows(0).statuses(0).code(), "UNIMPLEMENTED");
  EXPECT_EQ(report.rows(0).statuses(0).count(), 20);
}

TEST(BenchE2eTest, UsageErrors) {
  const std::string target = "127.0.0.1:1";              // never contacted
  EXPECT_EQ(Bench(target, {"--shape=4"}).exit_code, 2);  // no --function
  EXPECT_EQ(Bench(target, {"--function=relu", "--concurrency=0"}).exit_code, 2);
  EXPECT_EQ(Bench(target, {"--function=relu", "--rps=10", "--concurrency=1,2"})
                .exit_code,
            2);
  EXPECT_EQ(Bench(target, {"--function=relu", "--warmup=soon"}).exit_code, 2);
  EXPECT_EQ(Bench(target, {"--function=relu", "--lb=random"}).exit_code, 2);
  const ProcessResult help =
      RunProcess({ACTSVC_CLI_PATH, "help", "bench"}, absl::Seconds(10));
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag :
       {"--concurrency", "--rps", "--arrival", "--duration", "--requests",
        "--warmup", "--connections", "--lb", "--check_every", "--csv",
        "--json FILE", "--rpc", "--seed", "--target"}) {
    EXPECT_THAT(help.out, HasSubstr(flag));
  }
}

}  // namespace
}  // namespace actsvc::e2e
