// The actsvc CLI against a real actsvc-server: each test runs the binary and
// checks its output and exit code.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/npy.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/e2e/processes.h"

namespace actsvc::e2e {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

class CliTest : public ::testing::Test {
 protected:
  // One server for the suite: the CLI is stateless and so is the service.
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(ACTSVC_SERVER_PATH, {"--shutdown_grace_s=5"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "the server did not start";
  }

  static ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(),
                {ACTSVC_CLI_PATH, absl::StrCat("--target=", server_->target()),
                 "--timeout_s=20"});
    return RunProcess(args);
  }

  // The numbers on the value lines of a readable tensor (after its header).
  static std::vector<double> Values(const std::string& out) {
    std::vector<double> values;
    bool header = true;
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      if (header) {
        header = false;
        continue;
      }
      for (absl::string_view token :
           absl::StrSplit(line, absl::ByAnyChar("[], "), absl::SkipEmpty())) {
        double v;
        if (absl::SimpleAtod(token, &v)) values.push_back(v);
      }
    }
    return values;
  }

  static ServerProcess* server_;
};

ServerProcess* CliTest::server_ = nullptr;

std::string Describe(const ProcessResult& r) {
  return absl::StrCat("exit ", r.exit_code, "\nstdout:\n", r.out, "\nstderr:\n",
                      r.err);
}

TEST_F(CliTest, HealthPrintsServing) {
  ProcessResult r = Cli({"health"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "SERVING\n");
}

TEST_F(CliTest, HealthOfNoServerFails) {
  absl::StatusOr<int> port = PickFreePort();
  ASSERT_TRUE(port.ok());
  ProcessResult r =
      RunProcess({ACTSVC_CLI_PATH, absl::StrCat("--target=127.0.0.1:", *port),
                  "--timeout_s=5", "health"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: UNAVAILABLE: "));
}

TEST_F(CliTest, ListShowsEveryFunction) {
  ProcessResult r = Cli({"list"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* name : {"identity", "sigmoid", "tanh", "relu", "leaky_relu",
                           "gelu", "gelu_tanh", "silu", "softplus", "elu",
                           "selu", "softmax", "log_softmax"}) {
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\n", name, " "))) << name;
  }
  EXPECT_THAT(r.out, HasSubstr("alpha=0.01"));
}

TEST_F(CliTest, ListJsonParses) {
  ProcessResult r = Cli({"--json", "list"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  actsvc::v1::ListFunctionsResponse response;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(r.out, &response).ok())
      << r.out;
  EXPECT_EQ(response.functions_size(), 13);
}

TEST_F(CliTest, EvaluateSigmoidAtZeroIsOneHalf) {
  ProcessResult r = Cli({"evaluate", "--function=sigmoid", "--x=0"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "output: float32 [1]\n[0.5]\n");
}

TEST_F(CliTest, EvaluateKeepsTheTails) {
  ProcessResult r = Cli({"evaluate", "--function=gelu", "--dtype=float64",
                         "--x=-8,0,inf,-inf,nan"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, StartsWith("output: float64 [5]\n"));
  // gelu(-8) = -8 Φ(-8) = -4.97676845941742e-15; "1 + erf" would give 0.
  EXPECT_THAT(r.out, HasSubstr("[-4.97676845941742"));
  EXPECT_THAT(r.out, HasSubstr(", 0, inf, 0, nan]"));
}

TEST_F(CliTest, EvaluateAliasAndShape) {
  ProcessResult r =
      Cli({"evaluate", "--function=swish", "--shape=2,2", "--x=0,1,-1,2"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // The layout exactly; the values to 6 digits (the kernels promise 4 ulp,
  // not correct rounding).
  EXPECT_THAT(r.out,
              MatchesRegex("output: float32 \\[2, 2\\]\n"
                           "\\[\\[0, 0\\.731058[0-9]*\\],\n"
                           " \\[-0\\.268941[0-9]*, 1\\.76159[0-9]*\\]\\]\n"));
}

TEST_F(CliTest, DerivativeOfSigmoidAt20IsNotZero) {
  ProcessResult r = Cli({"derivative", "--function=sigmoid", "--x=20"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<double> v = Values(r.out);
  ASSERT_EQ(v.size(), 1u) << r.out;
  // σ'(20) = e^-20 / (1 + e^-20)^2; σ(1 - σ) rounds to 0 in float32.
  EXPECT_NEAR(v[0], 2.0611536e-9, 1e-15) << r.out;
}

TEST_F(CliTest, SecondDerivative) {
  ProcessResult r = Cli({"derivative", "--function=tanh", "--order=2",
                         "--dtype=float64", "--x=0,1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<double> v = Values(r.out);
  ASSERT_EQ(v.size(), 2u) << r.out;
  const double sech2 = 1 / (std::cosh(1.0) * std::cosh(1.0));
  EXPECT_EQ(v[0], 0);
  EXPECT_NEAR(v[1], -2 * std::tanh(1.0) * sech2, 1e-15);
}

TEST_F(CliTest, DerivativeWithGradIsTheVjp) {
  ProcessResult r = Cli({"derivative", "--function=softmax", "--x=1,2,3",
                         "--grad=1,0,0", "--dtype=float64"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<double> v = Values(r.out);
  ASSERT_EQ(v.size(), 3u) << r.out;
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const double p[] = {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z};
  // p ⊙ (g - <g, p>) with g = e_0.
  EXPECT_NEAR(v[0], p[0] * (1 - p[0]), 1e-15);
  EXPECT_NEAR(v[1], -p[1] * p[0], 1e-15);
  EXPECT_NEAR(v[2], -p[2] * p[0], 1e-15);
}

TEST_F(CliTest, SoftmaxDerivativeWithoutGradIsInvalid) {
  ProcessResult r = Cli({"derivative", "--function=softmax", "--x=1,2,3"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: INVALID_ARGUMENT: "));
}

TEST_F(CliTest, DenseSoftmaxJacobian) {
  ProcessResult r =
      Cli({"jacobian", "--function=softmax", "--dtype=float64", "--x=0,0"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, StartsWith("jacobian: float64 [2, 2]\n"));
  std::vector<double> v = Values(r.out);
  ASSERT_EQ(v.size(), 4u) << r.out;
  // p = (1/2, 1/2): diag(p) - p pᵀ.
  EXPECT_EQ(v[0], 0.25);
  EXPECT_EQ(v[1], -0.25);
  EXPECT_EQ(v[2], -0.25);
  EXPECT_EQ(v[3], 0.25);
}

TEST_F(CliTest, ElementwiseJacobianDiagonalAndDense) {
  ProcessResult diagonal =
      Cli({"jacobian", "--function=leaky_relu", "--alpha=0.1", "--x=-1,2"});
  ASSERT_EQ(diagonal.exit_code, 0) << Describe(diagonal);
  EXPECT_EQ(diagonal.out,
            "jacobian (diagonal): float32 [2]\n[0.100000001, 1]\n");
  ProcessResult dense = Cli({"jacobian", "--function=leaky_relu", "--alpha=0.1",
                             "--x=-1,2", "--dense"});
  ASSERT_EQ(dense.exit_code, 0) << Describe(dense);
  EXPECT_EQ(dense.out,
            "jacobian: float32 [2, 2]\n[[0.100000001, 0],\n [0, 1]]\n");
}

TEST_F(CliTest, CrossEntropyWithLabels) {
  ProcessResult r = Cli({"xent", "--dtype=float64", "--shape=2,3",
                         "--x=0,0,0,0,0,0", "--labels=0,2", "--probs"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // Uniform logits: loss = log 3 per row; grad = (p - y) / 2 rows.
  EXPECT_THAT(r.out, HasSubstr("loss: float64 []\n1.0986122886681098\n"));
  EXPECT_THAT(r.out, HasSubstr("grad_logits: float64 [2, 3]\n"
                               "[[-0.33333333333333331, 0.16666666666666666, "
                               "0.16666666666666666],\n"));
  EXPECT_THAT(r.out, HasSubstr("probabilities: float64 [2, 3]\n"));
}

TEST_F(CliTest, CrossEntropyWithTargetProbsAndNoReduction) {
  ProcessResult r = Cli({"xent", "--dtype=float64", "--shape=1,2", "--x=0,0",
                         "--target_probs=0.5,0.5", "--reduction=none"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("loss: float64 [1]\n[0.69314718055994529]\n"));
  EXPECT_THAT(r.out, HasSubstr("grad_logits: float64 [1, 2]\n[[0, 0]]\n"));
}

TEST_F(CliTest, JsonOutputHasTheFields) {
  ProcessResult r =
      Cli({"--json", "evaluate", "--function=sigmoid", "--x=0,2"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  actsvc::v1::EvaluateResponse response;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(r.out, &response).ok())
      << r.out;
  EXPECT_EQ(response.output().dtype(), actsvc::v1::FLOAT32);
  ASSERT_EQ(response.output().shape_size(), 1);
  EXPECT_EQ(response.output().shape(0), 2);
  ASSERT_EQ(response.output().float_data_size(), 2);
  EXPECT_EQ(response.output().float_data(0), 0.5f);
  EXPECT_THAT(r.out, AllOf(HasSubstr("\"output\""), HasSubstr("\"floatData\""),
                           HasSubstr("\"FLOAT32\"")));
}

TEST_F(CliTest, TypedEncodingGivesTheSameValues) {
  ProcessResult raw = Cli({"evaluate", "--function=gelu", "--x=-3,0.5,7"});
  ProcessResult typed =
      Cli({"--encoding=typed", "evaluate", "--function=gelu", "--x=-3,0.5,7"});
  ASSERT_EQ(raw.exit_code, 0) << Describe(raw);
  ASSERT_EQ(typed.exit_code, 0) << Describe(typed);
  EXPECT_EQ(raw.out, typed.out);
}

TEST_F(CliTest, NpyInAndOut) {
  const std::string dir = ::testing::TempDir();
  const std::string in_path = absl::StrCat(dir, "/cli_e2e_in.npy");
  const std::string out_path = absl::StrCat(dir, "/cli_e2e_out.npy");
  client::NpyArray in;
  in.shape = {2, 2};
  in.dtype = actsvc::v1::FLOAT64;
  const double x[] = {-1, 0, 1, 30};
  in.data.assign(reinterpret_cast<const char*>(x), sizeof(x));
  ASSERT_TRUE(client::WriteNpyFile(in_path, in).ok());

  ProcessResult r =
      Cli({"evaluate", "--function=relu", absl::StrCat("--x_npy=", in_path),
           absl::StrCat("--out_npy=", out_path)});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, StartsWith("output: float64 [2, 2]\n"));
  absl::StatusOr<client::NpyArray> out = client::ReadNpyFile(out_path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(out->dtype, actsvc::v1::FLOAT64);
  const double want[] = {0, 0, 1, 30};
  EXPECT_EQ(out->data,
            std::string(reinterpret_cast<const char*>(want), sizeof(want)));
  std::remove(in_path.c_str());
  std::remove(out_path.c_str());
}

// float16 and bfloat16 (issue 14): values rounded by the client, results
// printed with the type's digits; float16 .npy in and out, bfloat16 .npy as
// '<u2' bit patterns, a float32 .npy rounded to --dtype.
TEST_F(CliTest, HalfDtypes) {
  ProcessResult r =
      Cli({"--dtype=float16", "evaluate", "--function=sigmoid", "--x=0.1,-20"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // σ(0.0999755859375) = 0.52497... -> float16 0.5249; σ(-20) = 2.06e-09 is
  // below float16's smallest subnormal (5.96e-08): 0.
  EXPECT_EQ(r.out, "output: float16 [2]\n[0.5249, 0]\n");
  r = Cli({"--dtype=bfloat16", "--encoding=typed", "derivative",
           "--function=tanh", "--x=40"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // sech²(40) = 4e^-80 = 7.22e-35: a normal bfloat16 (float32's exponent
  // range), 0 in float16.
  EXPECT_THAT(r.out, StartsWith("output: bfloat16 [1]\n[7.2"));

  const std::string dir = ::testing::TempDir();
  const std::string in_path = absl::StrCat(dir, "/cli_e2e_half_in.npy");
  const std::string out_path = absl::StrCat(dir, "/cli_e2e_half_out.npy");
  client::NpyArray in;
  in.shape = {3};
  in.dtype = actsvc::v1::FLOAT32;
  const float x[] = {-1, 2.00390625f, 3};  // 2 + 2^-8 rounds to bfloat16 2
  in.data.assign(reinterpret_cast<const char*>(x), sizeof(x));
  ASSERT_TRUE(client::WriteNpyFile(in_path, in).ok());
  for (const char* dtype : {"float16", "bfloat16"}) {
    r = Cli({absl::StrCat("--dtype=", dtype), "evaluate", "--function=relu",
             absl::StrCat("--x_npy=", in_path),
             absl::StrCat("--out_npy=", out_path)});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    absl::StatusOr<client::NpyArray> out = client::ReadNpyFile(out_path);
    ASSERT_TRUE(out.ok()) << out.status();
    const bool f16 = std::string(dtype) == "float16";
    EXPECT_EQ(out->dtype, f16 ? actsvc::v1::FLOAT16 : actsvc::v1::BFLOAT16);
    // float16: 0, 2.00390625 (exact: 2 + 2^-8), 3; bfloat16: 0, 2, 3.
    const uint16_t want16[] = {0x0000, 0x4002, 0x4200};
    const uint16_t wantbf[] = {0x0000, 0x4000, 0x4040};
    EXPECT_EQ(
        out->data,
        std::string(reinterpret_cast<const char*>(f16 ? want16 : wantbf), 6))
        << dtype;
    // The half file reads back as its own dtype.
    r = Cli({"evaluate", "--function=identity",
             absl::StrCat("--x_npy=", out_path)});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_THAT(r.out, StartsWith(absl::StrCat("output: ", dtype, " [3]\n")));
  }
  std::remove(in_path.c_str());
  std::remove(out_path.c_str());
}

TEST_F(CliTest, StreamAnswersInOrder) {
  ProcessResult r = Cli({"stream", "--function=sigmoid", "--x=0",
                         "--ops=evaluate,derivative,derivative2"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, StartsWith("[0] evaluate output: float32 [1]\n[0.5]\n"
                                "[1] derivative output: float32 [1]\n[0.25]\n"
                                "[2] derivative2 (f'') output: float32 "
                                "[1]\n"));
  // σ''(0) = 0, possibly printed as -0.
  EXPECT_THAT(r.out, ::testing::EndsWith("0]\n"));
}

TEST_F(CliTest, InvalidRequestExitsOneWithTheStatus) {
  // The axis is the server's to check; the client sends it as given.
  ProcessResult r =
      Cli({"evaluate", "--function=softmax", "--axis=3", "--x=1,2"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: INVALID_ARGUMENT: "));
  EXPECT_THAT(r.err, HasSubstr("axis"));
  EXPECT_EQ(r.out, "");
}

TEST_F(CliTest, ShapeThatDoesNotFitIsTheServersInvalidArgument) {
  ProcessResult r =
      Cli({"evaluate", "--function=sigmoid", "--shape=2,2", "--x=1,2,3"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("error: INVALID_ARGUMENT: "));
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"evaluate", "--x=1"},                         // no --function
           {"evaluate", "--function=nope", "--x=1"},      // unknown name
           {"evaluate", "--function=relu"},               // no input
           {"evaluate", "--function=relu", "--x=1,abc"},  // bad value
           {"evaluate", "--function=relu", "--x=1", "--shape=-1"},
           {"evaluate", "--function=relu", "--x=1", "--labels=0"},
           {"frobnicate"},
           {"health", "--no_such_flag"},
           {"--dtype=int8", "evaluate", "--function=relu", "--x=1"},
           {"--dtype=float16", "evaluate", "--function=relu", "--x=1e5"},
           {"xent", "--x=1,2"},  // no labels
       }) {
    ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n"
                              << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("usage error: ")) << absl::StrJoin(args, " ");
  }
}

// Local files the CLI cannot use are usage errors in words of their own:
// no status code like a server's, no crash, and no call made.
TEST_F(CliTest, FileProblemsAreUsageErrors) {
  const std::string dir = ::testing::TempDir();
  const std::string garbage = absl::StrCat(dir, "cli_e2e_garbage.npy");
  std::ofstream(garbage) << "this is not a .npy file\n";
  const std::string missing = absl::StrCat(dir, "cli_e2e_missing.npy");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"evaluate", "--function=relu", "--x_npy=" + dir},
            "--x_npy: " + dir + " is a directory, not a .npy file"},
           {{"evaluate", "--function=relu", "--x_npy=" + garbage},
            "--x_npy: " + garbage + ": not a .npy file"},
           {{"evaluate", "--function=relu", "--x_npy=" + missing},
            "--x_npy: cannot open " + missing + ": No such file or directory"},
           {{"derivative", "--function=relu", "--x=1", "--grad_npy=" + dir},
            "--grad_npy: " + dir + " is a directory"},
           {{"stream", "--function=relu", "--x=1", "--grad_npy=" + missing},
            "--grad_npy: cannot open " + missing},
           {{"xent", "--x=1,2", "--target_probs_npy=" + garbage},
            "--target_probs_npy: " + garbage + ": not a .npy file"},
           {{"evaluate", "--function=relu", "--x=1", "--out_npy=" + dir},
            "--out_npy: " + dir + " is a directory"},
           {{"evaluate", "--function=relu", "--x=1",
             "--out_npy=/nonexistent/out.npy"},
            "--out_npy: cannot write /nonexistent/out.npy: no directory "
            "/nonexistent"},
       }) {
    ProcessResult r = Cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n"
                              << Describe(r);
    EXPECT_THAT(r.err, StartsWith("usage error: " + c.message))
        << absl::StrJoin(c.args, " ");
    EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
  }
  std::remove(garbage.c_str());
}

// gRPC takes a target without a port to mean 443; the CLI means 50051.
TEST_F(CliTest, TargetWithoutAPortMeansTheDefaultPort) {
  // A name that never resolves: the call goes nowhere, whatever listens.
  ProcessResult r = RunProcess(
      {ACTSVC_CLI_PATH, "--target=actsvc.invalid", "--timeout_s=2", "health"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, StartsWith("note: --target=actsvc.invalid has no port; "
                                "using actsvc.invalid:50051\n"));
  EXPECT_THAT(r.err, Not(HasSubstr(":443")));
}

TEST_F(CliTest, DurationWithoutAUnitSaysWhichUnit) {
  ProcessResult r = Cli({"bench", "--function=relu", "--duration=1"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--duration: a duration is a number with a "
                               "unit, e.g. 10s, 500ms or 2m"));
}

TEST_F(CliTest, HelpListsTheCommands) {
  for (const char* help : {"help", "--help"}) {
    ProcessResult r = RunProcess({ACTSVC_CLI_PATH, help});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    for (const char* command : {"health", "list", "evaluate", "derivative",
                                "jacobian", "xent", "stream"}) {
      EXPECT_THAT(r.out, HasSubstr(absl::StrCat("  ", command, " ")));
    }
  }
}

TEST_F(CliTest, VersionPrintsTheVersion) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--version"}, {"--version", "health"}}) {
    args.insert(args.begin(), ACTSVC_CLI_PATH);
    ProcessResult r = RunProcess(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_THAT(r.out, MatchesRegex("actsvc [0-9]+\\.[0-9]+\\.[0-9]+\n"));
    EXPECT_EQ(r.err, "");
  }
}

}  // namespace
}  // namespace actsvc::e2e
