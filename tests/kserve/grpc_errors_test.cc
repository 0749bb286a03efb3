// The Open Inference Protocol's failures over gRPC: each bad request gets
// its precise status in Triton's words (naming the model and the input);
// ModelStreamInfer answers a failed request in place and goes on; the
// statistics count what happened; the limits hold as for the own API; and
// the RPCs actsvc does not serve say so.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/kserve/models.h"
#include "server/server.h"
#include "tests/kserve/kserve_test_util.h"
#include "tests/server/calls.h"

namespace actsvc::server::kserve {
namespace {

using ::grpc::StatusCode;
using ::testing::HasSubstr;
using namespace testing;  // NOLINT: the helpers of kserve_test_util.h
using server::testing::HoldEachCall;
using server::testing::SetTimeout;
using server::testing::UnaryCall;

class KServeErrorsTest : public KServeSuite<KServeErrorsTest> {
 public:
  static ServerOptions Options() {
    ServerOptions options;
    options.max_elements = 1000;
    return options;
  }

 protected:
  // Expects `request` to fail with `code` and a message holding each part.
  void ExpectError(const inference::ModelInferRequest& request, StatusCode code,
                   std::initializer_list<std::string> parts) {
    const grpc::Status status = Infer(request);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    for (const std::string& part : parts) {
      EXPECT_THAT(status.error_message(), HasSubstr(part));
    }
  }

  inference::ModelStatistics Stats(const std::string& model) {
    inference::ModelStatisticsRequest request;
    request.set_name(model);
    inference::ModelStatisticsResponse response;
    EXPECT_TRUE(Call(*stub_, &Stub::ModelStatistics, request, &response).ok());
    EXPECT_EQ(response.model_stats_size(), 1);
    return response.model_stats_size() == 1 ? response.model_stats(0)
                                            : inference::ModelStatistics();
  }
};

// An input of a request: its values in raw_input_contents, or typed.
struct In {
  std::string name;
  std::vector<int64_t> shape;
  std::variant<std::vector<float>, std::vector<double>, std::vector<int64_t>>
      values;
  bool raw = true;
};
using F32 = std::vector<float>;
using F64 = std::vector<double>;
using I64 = std::vector<int64_t>;

// A request of `model` with `inputs`.
inference::ModelInferRequest With(const std::string& model,
                                  const std::vector<In>& inputs) {
  inference::ModelInferRequest request = Request(model);
  for (const In& in : inputs) {
    std::visit(
        [&](const auto& values) {
          AddInput(&request, in.name, in.shape, values, in.raw);
        },
        in.values);
  }
  return request;
}

inference::ModelInferRequest Gelu(std::vector<float> x = {1, 2, 3, 4}) {
  inference::ModelInferRequest request = Request("gelu", "g");
  AddInput(&request, "x", {static_cast<int64_t>(x.size())}, x, true);
  return request;
}

TEST_F(KServeErrorsTest, UnknownModelOrVersionIsNotFound) {
  inference::ModelInferRequest request = Gelu();
  request.set_model_name("gleu");
  ExpectError(request, StatusCode::NOT_FOUND, {"'gleu'", "RepositoryIndex"});
  request = Gelu();
  request.set_model_version("2");
  ExpectError(request, StatusCode::NOT_FOUND, {"'gelu' version 2"});
  inference::ModelMetadataRequest metadata;
  metadata.set_name("nope");
  inference::ModelMetadataResponse ignored;
  EXPECT_EQ(Call(*stub_, &Stub::ModelMetadata, metadata, &ignored).error_code(),
            StatusCode::NOT_FOUND);
  inference::ModelConfigRequest config;
  config.set_name("gelu");
  config.set_version("0");
  inference::ModelConfigResponse ignored_config;
  EXPECT_EQ(
      Call(*stub_, &Stub::ModelConfig, config, &ignored_config).error_code(),
      StatusCode::NOT_FOUND);
  inference::ModelStatisticsRequest stats;
  stats.set_name("nope");
  inference::ModelStatisticsResponse ignored_stats;
  EXPECT_EQ(
      Call(*stub_, &Stub::ModelStatistics, stats, &ignored_stats).error_code(),
      StatusCode::NOT_FOUND);
}

TEST_F(KServeErrorsTest, InputsThatDoNotFitTheModel) {
  inference::ModelInferRequest request = Gelu();
  request.mutable_inputs(0)->set_name("input");
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"unexpected inference input 'input' for model 'gelu'",
               "its inputs are x"});
  request = With("gelu.vjp", {{"x", {2}, F32{1, 2}}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"expected 2 inputs but got 1", "input 'grad' is missing",
               "for model 'gelu.vjp'"});
  request = Gelu();
  AddInput(&request, "x", {1}, std::vector<float>{1}, true);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"input 'x' is given twice"});
  request = Gelu();
  request.add_outputs()->set_name("dy");
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"unexpected inference output 'dy' for model 'gelu'"});
}

TEST_F(KServeErrorsTest, DatatypesAndShapesThatDoNotFit) {
  inference::ModelInferRequest request = Gelu();
  request.mutable_inputs(0)->set_datatype("INT8");
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"unexpected datatype INT8 for input 'x' for model 'gelu'",
               "expected FP32, FP64, FP16 or BF16"});
  request = Gelu();
  request.mutable_inputs(0)->set_shape(0, -4);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"x.shape[0] = -4 is negative", "for model 'gelu'"});
  request = Gelu();
  request.mutable_inputs(0)->set_shape(0, 5);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"input byte size mismatch for input 'x' for model 'gelu'. "
               "Expected 20, got 16"});
  // The companion tensor of a VJP must match x in datatype and shape.
  request = With("tanh.vjp", {{"x", {2}, F32{1, 2}}, {"grad", {2}, F64{1, 2}}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"grad.dtype is FLOAT64, expected FLOAT32", "model 'tanh.vjp'"});
  // softmax needs rank >= 1.
  request = With("softmax", {{"x", {}, F32{1}}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"x.shape is []", "for model 'softmax'"});
}

TEST_F(KServeErrorsTest, RawAndTypedContentsMustNotMix) {
  inference::ModelInferRequest request =
      With("sigmoid.vjp",
           {{"x", {2}, F32{1, 2}}, {"grad", {2}, F32{1, 2}, /*raw=*/false}});
  request.add_raw_input_contents(RawBytes(std::vector<float>{1, 2}));
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"contents field must not be specified when using "
               "raw_input_contents for 'grad' for model 'sigmoid.vjp'"});
  // One raw_input_contents per input.
  request = With("sigmoid.vjp", {{"x", {2}, F32{1, 2}},
                                 {"grad", {2}, F32{1, 2}, /*raw=*/false}});
  request.mutable_inputs(1)->clear_contents();
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"expected 2 raw_input_contents", "got 1"});
}

TEST_F(KServeErrorsTest, TypedContentsInTheWrongFieldOrCount) {
  inference::ModelInferRequest request =
      With("relu", {{"x", {3}, F64{1, 2, 3}, /*raw=*/false}});
  request.mutable_inputs(0)->set_datatype("FP32");
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"input 'x' has datatype FP32 but its values are in "
               "contents.fp64_contents; expected contents.fp32_contents",
               "for model 'relu'"});
  request = With("relu", {{"x", {4}, F32{1, 2, 3}, /*raw=*/false}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"unexpected number of values in contents.fp32_contents for "
               "input 'x'. Expected 4 (shape [4]), got 3",
               "for model 'relu'"});
  request = With("relu", {{"x", {4}, F32{}, /*raw=*/false}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT, {"input 'x' has no data"});
}

TEST_F(KServeErrorsTest, ParametersOfTheWrongTypeOrName) {
  inference::ModelInferRequest request = With("elu", {{"x", {2}, F32{1, 2}}});
  (*request.mutable_parameters())["alpha"] = BoolParam(true);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"parameters.alpha is not a number", "for model 'elu'"});
  (*request.mutable_parameters())["alpha"] = StringParam("one");
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"parameters.alpha = \"one\" is not a number"});
  (*request.mutable_parameters())["alpha"] = StringParam("inf");
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"parameters.alpha = inf is not finite", "for model 'elu'"});
  request.mutable_parameters()->clear();
  (*request.mutable_parameters())["axis"] = Int64Param(0);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"unexpected parameter 'axis'", "takes alpha"});
  // Of several, always the first by name (a protobuf map's order differs
  // from one parse of the same bytes to the next).
  for (const char* name : {"zeta", "mu", "beta", "omega", "kappa", "delta"}) {
    (*request.mutable_parameters())[name] = Int64Param(0);
  }
  for (int i = 0; i < 8; ++i) {
    ExpectError(request, StatusCode::INVALID_ARGUMENT,
                {"unexpected parameter 'axis'"});
  }
  // Parameters Triton's clients send on their own are accepted.
  request.mutable_parameters()->clear();
  (*request.mutable_parameters())["priority"] = Int64Param(1);
  EXPECT_TRUE(Infer(request).ok());

  request = With("log_softmax", {{"x", {2, 2}, F32{1, 2, 3, 4}}});
  (*request.mutable_parameters())["axis"] = DoubleParam(0.5);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"parameters.axis = 0.5 is not an integer"});
  (*request.mutable_parameters())["axis"] = Int64Param(2);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"parameters.axis = 2 is out of range for input of rank 2",
               "for model 'log_softmax'"});
}

TEST_F(KServeErrorsTest, CrossEntropyLabelsAndReduction) {
  const std::vector<float> logits = {1, 2, 3, 4, 5, 6};
  inference::ModelInferRequest request =
      With("softmax_cross_entropy",
           {{"logits", {2, 3}, logits}, {"labels", {2}, I64{0, 3}}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"class_indices[1] = 3 is out of range [0, 3)",
               "for model 'softmax_cross_entropy'"});
  request = With("softmax_cross_entropy",
                 {{"logits", {2, 3}, logits}, {"labels", {3}, I64{0, 1, 2}}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"labels.shape [3] does not match logits.shape [2,3]"});
  request = With("softmax_cross_entropy",
                 {{"logits", {2, 3}, logits}, {"labels", {2}, F32{0, 1}}});
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"unexpected datatype FP32 for input 'labels'",
               "expected INT64 or INT32"});
  request =
      With("softmax_cross_entropy.probs",
           {{"logits", {2, 3}, logits}, {"target_probs", {2, 3}, logits}});
  (*request.mutable_parameters())["reduction"] = StringParam("avg");
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"parameters.reduction must be the string \"mean\", \"sum\" or "
               "\"none\", got \"avg\""});
  (*request.mutable_parameters())["reduction"] = Int64Param(1);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"parameters.reduction must be the string"});
  (*request.mutable_parameters())["reduction"] = StringParam("sum");
  (*request.mutable_parameters())["label_smoothing"] = DoubleParam(1);
  ExpectError(request, StatusCode::INVALID_ARGUMENT,
              {"label_smoothing = 1 is outside [0, 1)"});
}

TEST_F(KServeErrorsTest, LimitsHoldAsForTheOwnApi) {
  // --max_elements=1000 for this server.
  inference::ModelInferRequest request = Gelu(std::vector<float>(1001, 1.0f));
  ExpectError(request, StatusCode::RESOURCE_EXHAUSTED,
              {"1001 elements", "--max_elements"});
}

// A call whose deadline passes while it waits for a compute thread ends
// DEADLINE_EXCEEDED, as on the own API (and counts as a failure).
TEST(KServeDeadlineTest, DeadlinePassedBeforeCompute) {
  ServerOptions options;
  options.inline_compute_kb = 0;  // held on a compute thread, queued there
  options.before_compute_for_testing =
      HoldEachCall(std::chrono::milliseconds(300));
  absl::StatusOr<std::unique_ptr<Server>> server = StartKServeServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = StubTo((*server)->port());
  grpc::ClientContext context;
  SetTimeout(&context, std::chrono::milliseconds(150));
  inference::ModelInferResponse response;
  EXPECT_EQ(stub->ModelInfer(&context, Gelu(), &response).error_code(),
            StatusCode::DEADLINE_EXCEEDED);
}

TEST_F(KServeErrorsTest, StatisticsCountSuccessesFailuresAndPhases) {
  const inference::ModelStatistics before = Stats("selu");
  inference::ModelInferRequest good = With("selu", {{"x", {3}, F32{-1, 0, 1}}});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Infer(good).ok());
  inference::ModelInferRequest bad = good;
  bad.mutable_inputs(0)->set_shape(0, 4);
  EXPECT_FALSE(Infer(bad).ok());
  // A request that fails before Validate counts too.
  bad = good;
  bad.mutable_inputs(0)->set_name("y");
  EXPECT_FALSE(Infer(bad).ok());
  const inference::ModelStatistics after = Stats("selu");
  EXPECT_EQ(after.name(), "selu");
  EXPECT_EQ(after.version(), "1");
  EXPECT_EQ(after.inference_count() - before.inference_count(), 3u);
  EXPECT_EQ(after.execution_count() - before.execution_count(), 3u);
  const auto& a = after.inference_stats();
  const auto& b = before.inference_stats();
  EXPECT_EQ(a.success().count() - b.success().count(), 3u);
  EXPECT_EQ(a.fail().count() - b.fail().count(), 2u);
  // perf_analyzer stops unless these three counts agree.
  for (const auto& [phase, was] :
       {std::pair(&a.queue(), &b.queue()),
        std::pair(&a.compute_input(), &b.compute_input()),
        std::pair(&a.compute_infer(), &b.compute_infer()),
        std::pair(&a.compute_output(), &b.compute_output())}) {
    EXPECT_EQ(phase->count() - was->count(), 3u);
  }
  EXPECT_GT(a.success().ns(), b.success().ns());
  EXPECT_GT(a.compute_infer().ns(), b.compute_infer().ns());
  EXPECT_GE(a.success().ns() - b.success().ns(),
            a.compute_infer().ns() - b.compute_infer().ns());
  EXPECT_TRUE(a.has_cache_hit());
  EXPECT_TRUE(a.has_cache_miss());
  EXPECT_EQ(a.cache_hit().count(), 0u);
  EXPECT_EQ(a.cache_miss().count(), 0u);
  EXPECT_GT(after.last_inference(), 0u);
  // All models at once.
  inference::ModelStatisticsResponse all;
  ASSERT_TRUE(Call(*stub_, &Stub::ModelStatistics,
                   inference::ModelStatisticsRequest(), &all)
                  .ok());
  EXPECT_EQ(all.model_stats_size(), static_cast<int>(AllModels().size()));
}

TEST_F(KServeErrorsTest, StreamAnswersAFailedRequestInPlaceAndGoesOn) {
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ModelStreamInfer(&context);
  inference::ModelInferRequest first = Gelu();
  first.set_id("first");
  inference::ModelInferRequest middle = Gelu();
  middle.set_id("middle");
  middle.mutable_inputs(0)->set_name("z");
  inference::ModelInferRequest last = Gelu({-1, -2});
  last.set_id("last");
  for (const auto* request : {&first, &middle, &last}) {
    ASSERT_TRUE(stream->Write(*request));
  }
  stream->WritesDone();
  std::vector<inference::ModelStreamInferResponse> responses;
  inference::ModelStreamInferResponse response;
  while (stream->Read(&response)) responses.push_back(response);
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_EQ(responses[0].error_message(), "");
  EXPECT_EQ(responses[0].infer_response().id(), "first");
  EXPECT_EQ(OutputValues<float>(responses[0].infer_response(), "y").size(), 4u);
  EXPECT_THAT(responses[1].error_message(),
              HasSubstr("unexpected inference input 'z' for model 'gelu'"));
  EXPECT_EQ(responses[1].infer_response().id(), "middle");
  EXPECT_EQ(responses[1].infer_response().outputs_size(), 0);
  EXPECT_EQ(responses[2].error_message(), "");
  EXPECT_EQ(responses[2].infer_response().id(), "last");
  EXPECT_EQ(OutputValues<float>(responses[2].infer_response(), "y").size(), 2u);
}

TEST_F(KServeErrorsTest, OtherRpcsOfTritonAreUnimplementedWithAMessage) {
  grpc::GenericStub stub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials()));
  for (const char* method :
       {"RepositoryModelLoad", "SystemSharedMemoryRegister", "LogSettings"}) {
    grpc::ByteBuffer response;
    const grpc::Status status = UnaryCall(
        stub, absl::StrCat("/inference.GRPCInferenceService/", method), "",
        &response);
    EXPECT_EQ(status.error_code(), StatusCode::UNIMPLEMENTED) << method;
    EXPECT_THAT(status.error_message(), HasSubstr("not implemented by actsvc"));
  }
}

TEST_F(KServeErrorsTest, MalformedModelInferIsInvalidArgument) {
  grpc::GenericStub stub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials()));
  const std::string garbage = "\x0a\xff\xff\xff\xff\x0f";
  grpc::ByteBuffer response;
  const grpc::Status status = UnaryCall(
      stub, "/inference.GRPCInferenceService/ModelInfer", garbage, &response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("not a valid inference.ModelInferRequest"));
}

}  // namespace
}  // namespace actsvc::server::kserve
