// Security and operations flags end to end: the CLI's and the load tester's
// --tls_* flags against a mutual-TLS server (in-process, so that this test
// controls its certificates), the server binary's checks of its --tls_*
// flags, and its limit and metrics flags.
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/e2e/processes.h"
#include "tests/server/http_client.h"
#include "tests/server/tls_test_util.h"

namespace actsvc::e2e {
namespace {

using server::testing::HttpGet;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Describe(const ProcessResult& r) {
  return absl::StrCat("exit ", r.exit_code, "\nstdout:\n", r.out, "\nstderr:\n",
                      r.err);
}

class TlsE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new server::testing::TestPki();
    ASSERT_TRUE(pki_->Make());
    server::ServerOptions options;
    options.address = "127.0.0.1:0";
    options.compute_threads = 2;
    options.tls.cert = pki_->Path("server.pem");
    options.tls.key = pki_->Path("server.key");
    options.tls.client_ca = pki_->Path("ca.pem");
    absl::StatusOr<std::unique_ptr<server::Server>> server =
        server::Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  // The CLI with `tls_flags`, then `args`, against the server by IP address.
  static ProcessResult Cli(const std::vector<std::string>& tls_flags,
                           const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        ACTSVC_CLI_PATH, absl::StrCat("--target=127.0.0.1:", server_->port()),
        "--timeout_s=10"};
    argv.insert(argv.end(), tls_flags.begin(), tls_flags.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, absl::Seconds(40));
  }
  static std::vector<std::string> MutualTlsFlags(
      const std::string& client = "client") {
    return {"--tls_ca=" + pki_->Path("ca.pem"),
            "--tls_cert=" + pki_->Path(client + ".pem"),
            "--tls_key=" + pki_->Path(client + ".key"),
            "--tls_server_name=localhost"};
  }

  static server::testing::TestPki* pki_;
  static server::Server* server_;
};
server::testing::TestPki* TlsE2eTest::pki_ = nullptr;
server::Server* TlsE2eTest::server_ = nullptr;

TEST_F(TlsE2eTest, HealthAndEvaluateOverMutualTls) {
  ProcessResult r = Cli(MutualTlsFlags(), {"health"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "SERVING\n");
  r = Cli(MutualTlsFlags(), {"evaluate", "--function=relu", "--x=-1,2"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("2"));
}

TEST_F(TlsE2eTest, BenchOverMutualTls) {
  std::vector<std::string> args = {"bench",         "--function=gelu",
                                   "--requests=50", "--concurrency=2",
                                   "--shape=64",    "--progress=false"};
  ProcessResult r = Cli(MutualTlsFlags(), args);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(TlsE2eTest, ClientsTheServerDoesNotTrustAreRefused) {
  ProcessResult r = Cli({}, {"health"});  // plaintext
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: UNAVAILABLE: "));
  // TLS without a client certificate, and with one from another CA.
  r = Cli({"--tls_ca=" + pki_->Path("ca.pem")}, {"health"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: UNAVAILABLE: "));
  r = Cli(MutualTlsFlags("other_client"), {"health"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: UNAVAILABLE: "));
  std::vector<std::string> bench = {
      ACTSVC_CLI_PATH, absl::StrCat("--target=127.0.0.1:", server_->port()),
      "--timeout_s=2"};
  for (const std::string& flag : MutualTlsFlags("other_client")) {
    bench.push_back(flag);
  }
  bench.insert(bench.end(), {"bench", "--function=gelu", "--requests=5"});
  r = RunProcess(bench);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  // The server goes on serving the clients it trusts. (--wait_s: a loaded
  // machine can lose a first TLS handshake; the CLI then tries again.)
  r = Cli(MutualTlsFlags(), {"health", "--wait_s=10"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(TlsE2eTest, CliRefusesHalfAKeyPair) {
  ProcessResult r = Cli({"--tls_cert=" + pki_->Path("client.pem")}, {"health"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--tls_key"));
}

TEST(TlsServerFlagsTest, ServerRefusesIncompleteTlsFlags) {
  ProcessResult r = RunProcess(
      {ACTSVC_SERVER_PATH, "--address=127.0.0.1:0", "--tls_cert=/nonexistent"},
      absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--tls_key"));
  r = RunProcess({ACTSVC_SERVER_PATH, "--address=127.0.0.1:0",
                  "--tls_cert=/nonexistent.pem", "--tls_key=/nonexistent.key"},
                 absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("/nonexistent.pem"));
}

// --help and -h list the server's own flags on stdout and exit 0 (Abseil's
// --help found none of them: "No flags matched", exit 1).
TEST(ServerBinaryTest, HelpListsTheFlags) {
  for (const char* help : {"--help", "-h"}) {
    ProcessResult r = RunProcess({ACTSVC_SERVER_PATH, help}, absl::Seconds(20));
    EXPECT_EQ(r.exit_code, 0) << help << "\n" << Describe(r);
    EXPECT_THAT(r.out, HasSubstr("usage: actsvc-server [flags]"));
    for (const char* flag :
         {"--address (default: 0.0.0.0:50051)", "--max_message_mb",
          "--metrics_address", "--shutdown_grace_s", "--version"}) {
      EXPECT_THAT(r.out, HasSubstr(flag)) << help;
    }
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("No flags matched")));
  }
}

TEST(ServerBinaryTest, VersionExitsZero) {
  ProcessResult r =
      RunProcess({ACTSVC_SERVER_PATH, "--version"}, absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, StartsWith("actsvc-server "));
}

// A second server on a busy port says so in one line and exits 1, without
// gRPC's internal error dump.
TEST(ServerBinaryTest, BusyPortIsOneClearLine) {
  auto first = ServerProcess::Start(ACTSVC_SERVER_PATH, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string target = (*first)->target();
  const std::string port = target.substr(target.rfind(':') + 1);
  ProcessResult r =
      RunProcess({ACTSVC_SERVER_PATH, absl::StrCat("--address=", target)},
                 absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, ::testing::EndsWith(absl::StrCat(
                         ": port ", port,
                         " is in use; pass --address or stop the other "
                         "server\n")));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ((*first)->Stop(), 0) << (*first)->Log();
}

// The server binary maps its limit and metrics flags: a request over
// --max_elements is refused, and the refusal shows in the metrics it serves
// on the port it logs.
TEST(OpsServerFlagsTest, MaxElementsAndMetricsEndpoint) {
  auto server = ServerProcess::Start(
      ACTSVC_SERVER_PATH,
      {"--max_elements=4", "--max_concurrent_calls=8", "--keepalive_time_s=60",
       "--metrics_address=127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target = "--target=" + (*server)->target();
  ProcessResult r = RunProcess({ACTSVC_CLI_PATH, target, "evaluate",
                                "--function=relu", "--x=1,2,3,4,5"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: RESOURCE_EXHAUSTED: "));
  EXPECT_THAT(r.err, HasSubstr("--max_elements"));
  r = RunProcess(
      {ACTSVC_CLI_PATH, target, "evaluate", "--function=relu", "--x=1,2,3,4"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);

  // "Prometheus metrics at /metrics on port N", just after the listening
  // line, which may come a moment after health says SERVING.
  const std::string kPortLine = "/metrics on port ";
  int port = 0;
  for (int i = 0; i < 100 && port == 0; ++i) {
    const std::string log = (*server)->Log();
    const size_t at = log.find(kPortLine);
    if (at != std::string::npos) {
      const size_t begin = at + kPortLine.size();
      const size_t end = log.find(' ', begin);
      ASSERT_TRUE(absl::SimpleAtoi(log.substr(begin, end - begin), &port));
    } else {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  ASSERT_GT(port, 0) << (*server)->Log();
  const std::string scrape = HttpGet(port, "/metrics");
  EXPECT_THAT(scrape, HasSubstr("actsvc_requests_total{api=\"actsvc.v1."
                                "ActivationService\",rpc=\"Evaluate\","
                                "code=\"RESOURCE_EXHAUSTED\"} 1\n"));
  EXPECT_THAT(scrape, HasSubstr("actsvc_requests_total{api=\"actsvc.v1."
                                "ActivationService\",rpc=\"Evaluate\","
                                "code=\"OK\"} 1\n"));
  EXPECT_THAT(scrape, HasSubstr("actsvc_elements_processed_total{api=\"actsvc."
                                "v1.ActivationService\",rpc="
                                "\"Evaluate\"} 4\n"));
  EXPECT_EQ((*server)->Stop(), 0) << (*server)->Log();
}

}  // namespace
}  // namespace actsvc::e2e
