// The CLI's commands (client/cli.h) run in this process against a fake
// ActivationService in this process: each command builds its request from
// the flags, makes its one call and prints the answer, with the CLI's exit
// codes. (tests/e2e/cli_e2e_test.cc runs the binary against the server.)
#include "client/cli.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "client/tensor.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;
using ::testing::HasSubstr;

// Answers every call with its input (the derivative: the upstream gradient
// when given), and keeps the last request of each kind; a function of
// RELU gets INVALID_ARGUMENT.
class FakeService final : public v1::ActivationService::Service {
 public:
  grpc::Status Evaluate(grpc::ServerContext*, const v1::EvaluateRequest* r,
                        v1::EvaluateResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    evaluate_ = *r;
    if (r->spec().function() == v1::RELU) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no relu here");
    }
    *response->mutable_output() = r->input();
    return grpc::Status::OK;
  }
  grpc::Status Derivative(grpc::ServerContext*, const v1::DerivativeRequest* r,
                          v1::DerivativeResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    derivative_ = *r;
    *response->mutable_output() =
        r->has_upstream_grad() ? r->upstream_grad() : r->input();
    return grpc::Status::OK;
  }
  grpc::Status SoftmaxCrossEntropy(
      grpc::ServerContext*, const v1::SoftmaxCrossEntropyRequest* r,
      v1::SoftmaxCrossEntropyResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    xent_ = *r;
    *response->mutable_loss() =
        MakeTensor({}, v1::FLOAT32, {0.5}, Encoding::kRaw);
    *response->mutable_grad_logits() = r->logits();
    return grpc::Status::OK;
  }
  grpc::Status Stream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::StreamResponse, v1::StreamRequest>* stream)
      override {
    v1::StreamRequest request;
    while (stream->Read(&request)) {
      v1::StreamResponse response;
      if (request.has_evaluate()) {
        *response.mutable_evaluate()->mutable_output() =
            request.evaluate().input();
      } else {
        *response.mutable_derivative()->mutable_output() =
            request.derivative().input();
      }
      stream->Write(response);
    }
    return grpc::Status::OK;
  }

  v1::EvaluateRequest evaluate() {
    std::lock_guard<std::mutex> lock(mu_);
    return evaluate_;
  }
  v1::DerivativeRequest derivative() {
    std::lock_guard<std::mutex> lock(mu_);
    return derivative_;
  }
  v1::SoftmaxCrossEntropyRequest xent() {
    std::lock_guard<std::mutex> lock(mu_);
    return xent_;
  }

 private:
  std::mutex mu_;
  v1::EvaluateRequest evaluate_;
  v1::DerivativeRequest derivative_;
  v1::SoftmaxCrossEntropyRequest xent_;
};

class CliTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    target_ = absl::StrCat("--target=127.0.0.1:", port);
  }
  void TearDown() override { server_->Shutdown(); }

  struct Result {
    int exit_code;
    std::string out;
    std::string err;
  };
  // actsvc --target=<the fake> <args>, its flags restored afterwards.
  Result Run(std::vector<std::string> args) {
    absl::FlagSaver saver;
    std::vector<const char*> argv = {"actsvc", target_.c_str()};
    for (const std::string& a : args) argv.push_back(a.c_str());
    testing::internal::CaptureStdout();
    testing::internal::CaptureStderr();
    const int code =
        RunCli(static_cast<int>(argv.size()), argv.data(), "test-version");
    std::string out = testing::internal::GetCapturedStdout();
    std::string err = testing::internal::GetCapturedStderr();
    return {code, std::move(out), std::move(err)};
  }

  // Run, expecting exit code 0.
  Result Ok(std::vector<std::string> args) {
    Result r = Run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
};

TEST_F(CliTest, EvaluateSendsTheFlagsAndPrintsTheOutput) {
  const Result r =
      Ok({"evaluate", "--function=swish", "--x=1,2,3,4", "--shape=2,2"});
  EXPECT_THAT(r.out, HasSubstr("output: float32 [2, 2]"));
  const v1::EvaluateRequest sent = service_.evaluate();
  EXPECT_EQ(sent.spec().function(), v1::SILU);
  EXPECT_FALSE(sent.spec().has_alpha());
  EXPECT_THAT(sent.input().shape(), testing::ElementsAre(2, 2));
  EXPECT_EQ(sent.input().raw_data().size(), 16u);
}

TEST_F(CliTest, DerivativeSendsOrderAndUpstreamGradient) {
  const Result r =
      Ok({"--dtype=float64", "--encoding=typed", "derivative", "--function=elu",
          "--alpha=0.5", "--x=1,2", "--grad=3,4", "--order=1"});
  const v1::DerivativeRequest sent = service_.derivative();
  EXPECT_EQ(sent.spec().alpha(), 0.5);
  EXPECT_EQ(sent.order(), 1);
  EXPECT_THAT(sent.upstream_grad().double_data(), testing::ElementsAre(3, 4));
  EXPECT_THAT(r.out, HasSubstr("output: float64 [2]"));
}

TEST_F(CliTest, CrossEntropyPrintsLossAndGradient) {
  const Result r = Ok({"xent", "--x=1,2,3,4,5,6", "--shape=2,3", "--labels=2,0",
                       "--reduction=sum"});
  EXPECT_THAT(r.out, HasSubstr("loss: float32 []"));
  EXPECT_THAT(r.out, HasSubstr("grad_logits: float32 [2, 3]"));
  const v1::SoftmaxCrossEntropyRequest sent = service_.xent();
  EXPECT_THAT(sent.class_indices(), testing::ElementsAre(2, 0));
  EXPECT_EQ(sent.reduction(), v1::SoftmaxCrossEntropyRequest::SUM);
  EXPECT_FALSE(sent.has_ignore_index());
}

TEST_F(CliTest, StreamAnswersEachRequestInOrder) {
  const Result r = Ok({"stream", "--function=gelu", "--x=1,2",
                       "--ops=evaluate,derivative2", "--repeat=2"});
  EXPECT_THAT(r.out, HasSubstr("[0] evaluate output"));
  EXPECT_THAT(r.out, HasSubstr("[3] derivative2 (f'') output"));
}

TEST_F(CliTest, JsonPrintsTheResponse) {
  const Result r = Ok({"--json", "evaluate", "--function=gelu", "--x=1.5"});
  EXPECT_THAT(r.out, HasSubstr("\"floatData\":[1.5]"));
}

TEST_F(CliTest, HealthPrintsServing) {
  const Result r = Ok({"health"});
  EXPECT_EQ(r.out, "SERVING\n");
}

TEST_F(CliTest, AServerErrorExitsOneWithItsStatus) {
  const Result r = Run({"evaluate", "--function=relu", "--x=1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: INVALID_ARGUMENT: no relu here\n");
}

TEST_F(CliTest, UsageErrorsExitTwoBeforeAnyCall) {
  Result r = Run({"evaluate", "--x=1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--function is required"));
  r = Run({"evaluate", "--function=gelu", "--x=1", "--labels=0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--labels does not apply to 'evaluate'"));
  r = Run({"stream", "--function=gelu", "--x=1", "--ops=evaluate,cube"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("'cube' is not one of"));
  r = Run({"evaluate", "--function=gelu", "--x=1", "extra"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unexpected argument 'extra'"));
  EXPECT_EQ(service_.evaluate().ByteSizeLong(), 0u);
}

TEST_F(CliTest, VersionAndHelp) {
  Result r = Run({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "actsvc test-version\n");
  r = Run({"help", "derivative"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("--grad_npy"));
}

}  // namespace
}  // namespace actsvc::client
