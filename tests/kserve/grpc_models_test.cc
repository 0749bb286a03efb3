// Every model of the Open Inference Protocol over gRPC, in both float
// datatypes and both encodings, checked against the own API computing the
// same thing in-process; metadata, config and the repository index; the
// request parameters in each of their types; and a call of every model
// shaped as perf_analyzer's default.
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.pb.h"
#include "core/functions.h"
#include "gtest/gtest.h"
#include "server/kserve/models.h"
#include "server/server.h"
#include "server/v1/service.h"
#include "tests/kserve/kserve_test_util.h"
#include "tests/server/test_util.h"

namespace actsvc::server::kserve {
namespace {

using server::testing::MakeTensor;
using server::testing::Ramp;
using server::testing::ShapeOf;
using server::testing::ValuesOf;
using namespace testing;  // NOLINT: the helpers of kserve_test_util.h

class KServeModelsTest : public KServeSuite<KServeModelsTest> {};

// The tensors the own API answered for the same computation, by the KServe
// output name.
using Expected = std::vector<std::pair<std::string, v1::Tensor>>;

v1::FunctionSpec SpecOf(const Model& model) {
  v1::FunctionSpec spec;
  spec.set_function(static_cast<v1::Function>(model.function));
  return spec;
}

// Fills `request` with the model's inputs (x of shape [3, 5], and grad,
// labels or target_probs) and returns the own API's answer.
template <typename T>
Expected BuildAndReference(const Model& model, bool raw,
                           inference::ModelInferRequest* request) {
  const std::vector<int64_t> shape = {3, 5};
  const std::vector<T> x = Ramp<T>(15);
  const std::vector<T> g = Ramp<T>(15, -2, 3);
  const server::Encoding encoding = server::Encoding::kRaw;
  const ComputeContext context;
  AddInput(request, model.inputs[0].name, shape, x, raw);
  switch (model.kind) {
    case ModelKind::kForward: {
      v1::EvaluateRequest own;
      *own.mutable_spec() = SpecOf(model);
      *own.mutable_input() = MakeTensor<T>(shape, x, encoding);
      v1::EvaluateResponse answer;
      EXPECT_TRUE(HandleEvaluate(own, context, &answer).ok());
      return {{"y", answer.output()}};
    }
    case ModelKind::kDerivative1:
    case ModelKind::kDerivative2:
    case ModelKind::kVjp: {
      v1::DerivativeRequest own;
      *own.mutable_spec() = SpecOf(model);
      *own.mutable_input() = MakeTensor<T>(shape, x, encoding);
      own.set_order(model.kind == ModelKind::kDerivative2 ? 2 : 1);
      if (model.kind == ModelKind::kVjp) {
        AddInput(request, "grad", shape, g, raw);
        *own.mutable_upstream_grad() = MakeTensor<T>(shape, g, encoding);
      }
      v1::DerivativeResponse answer;
      EXPECT_TRUE(HandleDerivative(own, context, &answer).ok());
      return {{model.outputs[0].tensor.name, answer.output()}};
    }
    case ModelKind::kJacobian: {
      v1::JacobianRequest own;
      *own.mutable_spec() = SpecOf(model);
      *own.mutable_input() = MakeTensor<T>(shape, x, encoding);
      own.set_dense(true);
      v1::JacobianResponse answer;
      EXPECT_TRUE(HandleJacobian(own, context, &answer).ok());
      return {{"jacobian", answer.jacobian()}};
    }
    case ModelKind::kCrossEntropyLabels:
    case ModelKind::kCrossEntropyProbs: {
      v1::SoftmaxCrossEntropyRequest own;
      *own.mutable_logits() = MakeTensor<T>(shape, x, encoding);
      own.set_return_probabilities(true);
      if (model.kind == ModelKind::kCrossEntropyLabels) {
        const std::vector<int64_t> labels = {0, 4, 2};
        AddInput(request, "labels", {3}, labels, raw);
        own.mutable_class_indices()->Add(labels.begin(), labels.end());
      } else {
        const std::vector<T> probs = Ramp<T>(15, 0, 0.2);
        AddInput(request, "target_probs", shape, probs, raw);
        *own.mutable_target_probs() = MakeTensor<T>(shape, probs, encoding);
      }
      v1::SoftmaxCrossEntropyResponse answer;
      EXPECT_TRUE(HandleSoftmaxCrossEntropy(own, context, &answer).ok());
      return {{"loss", answer.loss()},
              {"grad_logits", answer.grad_logits()},
              {"probabilities", answer.probabilities()}};
    }
  }
  return {};
}

template <typename T>
void ExpectSameAsOwnApi(const inference::ModelInferResponse& response,
                        const Expected& expected) {
  ASSERT_EQ(response.outputs_size(), static_cast<int>(expected.size()));
  for (const auto& [name, tensor] : expected) {
    SCOPED_TRACE(name);
    EXPECT_EQ(OutputShape(response, name), ShapeOf(tensor));
    const std::vector<T> got = OutputValues<T>(response, name);
    const std::vector<T> want = ValuesOf<T>(tensor);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      // Bit for bit: both protocols run the same path.
      EXPECT_EQ(std::memcmp(&got[i], &want[i], sizeof(T)), 0)
          << "at " << i << ": " << got[i] << " vs " << want[i];
    }
  }
}

template <typename T>
void CheckEveryModel(Stub& stub, bool raw) {
  for (const Model& model : AllModels()) {
    SCOPED_TRACE(absl::StrCat(model.name, " ", DatatypeOf<T>(),
                              raw ? " raw" : " typed"));
    inference::ModelInferRequest request = Request(model.name, "id-7");
    const Expected expected = BuildAndReference<T>(model, raw, &request);
    inference::ModelInferResponse response;
    const grpc::Status status =
        Call(stub, &Stub::ModelInfer, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.model_name(), model.name);
    EXPECT_EQ(response.model_version(), "1");
    EXPECT_EQ(response.id(), "id-7");
    ExpectSameAsOwnApi<T>(response, expected);
  }
}

TEST_F(KServeModelsTest, EveryModelMatchesTheOwnApiFp32Raw) {
  CheckEveryModel<float>(*stub_, true);
}
TEST_F(KServeModelsTest, EveryModelMatchesTheOwnApiFp32Typed) {
  CheckEveryModel<float>(*stub_, false);
}
TEST_F(KServeModelsTest, EveryModelMatchesTheOwnApiFp64Raw) {
  CheckEveryModel<double>(*stub_, true);
}
TEST_F(KServeModelsTest, EveryModelMatchesTheOwnApiFp64Typed) {
  CheckEveryModel<double>(*stub_, false);
}

TEST_F(KServeModelsTest, RepositoryIndexListsOneModelPerComputation) {
  std::set<std::string> expected = {"softmax_cross_entropy",
                                    "softmax_cross_entropy.probs"};
  for (const FunctionInfo& info : AllFunctions()) {
    for (const char* suffix : {"", ".vjp", ".jacobian"}) {
      expected.insert(absl::StrCat(info.name, suffix));
    }
    if (info.elementwise) {
      expected.insert(absl::StrCat(info.name, ".d1"));
      expected.insert(absl::StrCat(info.name, ".d2"));
    }
  }
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(Call(*stub_, &Stub::RepositoryIndex,
                   inference::RepositoryIndexRequest(), &index)
                  .ok());
  std::set<std::string> listed;
  for (const auto& model : index.models()) {
    listed.insert(model.name());
    EXPECT_EQ(model.version(), "1");
    EXPECT_EQ(model.state(), "READY");
  }
  EXPECT_EQ(listed, expected);
  EXPECT_EQ(index.models_size(), static_cast<int>(expected.size()));
}

TEST_F(KServeModelsTest, ServerIsLiveAndReadyWithTheStatisticsExtension) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(
      Call(*stub_, &Stub::ServerLive, inference::ServerLiveRequest(), &live)
          .ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(
      Call(*stub_, &Stub::ServerReady, inference::ServerReadyRequest(), &ready)
          .ok());
  EXPECT_TRUE(ready.ready());
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(Call(*stub_, &Stub::ServerMetadata,
                   inference::ServerMetadataRequest(), &metadata)
                  .ok());
  EXPECT_EQ(metadata.name(), "actsvc");
  EXPECT_FALSE(metadata.version().empty());
  ASSERT_EQ(metadata.extensions_size(), 1);
  EXPECT_EQ(metadata.extensions(0), "statistics");
}

TEST_F(KServeModelsTest, ModelReadyForEveryModelAndVersionOneOnly) {
  for (const Model& model : AllModels()) {
    for (const char* version : {"", "1"}) {
      inference::ModelReadyRequest request;
      request.set_name(model.name);
      request.set_version(version);
      inference::ModelReadyResponse ready;
      ASSERT_TRUE(Call(*stub_, &Stub::ModelReady, request, &ready).ok());
      EXPECT_TRUE(ready.ready()) << model.name << " version " << version;
    }
  }
  for (const auto& [name, version] :
       std::vector<std::pair<std::string, std::string>>{
           {"gelu", "2"}, {"nope", ""}, {"gelu.d3", "1"}}) {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse ready;
    ASSERT_TRUE(Call(*stub_, &Stub::ModelReady, request, &ready).ok());
    EXPECT_FALSE(ready.ready()) << name << " version " << version;
  }
}

TEST_F(KServeModelsTest, MetadataAndConfigListTheSameTensors) {
  for (const Model& model : AllModels()) {
    SCOPED_TRACE(model.name);
    inference::ModelMetadataRequest mreq;
    mreq.set_name(model.name);
    inference::ModelMetadataResponse metadata;
    ASSERT_TRUE(Call(*stub_, &Stub::ModelMetadata, mreq, &metadata).ok());
    inference::ModelConfigRequest creq;
    creq.set_name(model.name);
    creq.set_version("1");
    inference::ModelConfigResponse config;
    ASSERT_TRUE(Call(*stub_, &Stub::ModelConfig, creq, &config).ok());
    EXPECT_EQ(metadata.name(), model.name);
    ASSERT_EQ(metadata.versions_size(), 1);
    EXPECT_EQ(metadata.versions(0), "1");
    const inference::ModelConfig& c = config.config();
    EXPECT_EQ(c.name(), model.name);
    EXPECT_EQ(c.max_batch_size(), 0);
    ASSERT_EQ(c.input_size(), metadata.inputs_size());
    ASSERT_EQ(c.output_size(), metadata.outputs_size());
    for (int i = 0; i < c.input_size(); ++i) {
      const auto& m = metadata.inputs(i);
      EXPECT_EQ(c.input(i).name(), m.name());
      EXPECT_EQ(std::vector<int64_t>(c.input(i).dims().begin(),
                                     c.input(i).dims().end()),
                std::vector<int64_t>(m.shape().begin(), m.shape().end()));
      EXPECT_EQ(c.input(i).data_type(), m.datatype() == "INT64"
                                            ? inference::TYPE_INT64
                                            : inference::TYPE_FP32);
      for (int64_t d : m.shape()) EXPECT_EQ(d, -1);
    }
    for (int i = 0; i < c.output_size(); ++i) {
      const auto& m = metadata.outputs(i);
      EXPECT_EQ(c.output(i).name(), m.name());
      EXPECT_EQ(m.datatype(), "FP32");
      EXPECT_EQ(std::vector<int64_t>(c.output(i).dims().begin(),
                                     c.output(i).dims().end()),
                std::vector<int64_t>(m.shape().begin(), m.shape().end()));
    }
  }
}

// perf_analyzer's default: metadata first, then every listed input (each
// -1 filled from --shape), the values random bytes from one buffer that
// all inputs share (so NaN, infinities and huge values arrive), and no
// outputs listed. Class indices cannot be random bytes: they are zeros
// (perf_analyzer --input-data zero), as the README says.
TEST_F(KServeModelsTest,
       PerfAnalyzerDefaultCallOfEveryModelAnswersEveryOutput) {
  std::mt19937_64 random(19);
  std::string buffer(4 * 8 * 8, '\0');
  for (char& c : buffer) c = static_cast<char>(random());
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(Call(*stub_, &Stub::RepositoryIndex,
                   inference::RepositoryIndexRequest(), &index)
                  .ok());
  for (const auto& entry : index.models()) {
    SCOPED_TRACE(entry.name());
    inference::ModelMetadataRequest mreq;
    mreq.set_name(entry.name());
    inference::ModelMetadataResponse metadata;
    ASSERT_TRUE(Call(*stub_, &Stub::ModelMetadata, mreq, &metadata).ok());
    inference::ModelInferRequest request = Request(entry.name());
    for (const auto& input : metadata.inputs()) {
      auto* tensor = request.add_inputs();
      tensor->set_name(input.name());
      tensor->set_datatype(input.datatype());
      int64_t elements = 1;
      for (int d = 0; d < input.shape_size(); ++d) {
        const int64_t dim = d == 0 ? 4 : 8;  // --shape name:4,8
        tensor->add_shape(dim);
        elements *= dim;
      }
      const int64_t bytes = elements * (input.datatype() == "INT64" ? 8 : 4);
      request.add_raw_input_contents(input.datatype() == "INT64"
                                         ? std::string(bytes, '\0')
                                         : buffer.substr(0, bytes));
    }
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.outputs_size(), metadata.outputs_size());
    ASSERT_EQ(response.raw_output_contents_size(), metadata.outputs_size());
    for (int i = 0; i < metadata.outputs_size(); ++i) {
      const auto& out = response.outputs(i);
      EXPECT_EQ(out.name(), metadata.outputs(i).name());
      EXPECT_EQ(out.datatype(), "FP32");
      int64_t elements = 1;
      for (int64_t d : out.shape()) elements *= d;
      EXPECT_EQ(static_cast<int64_t>(response.raw_output_contents(i).size()),
                4 * elements)
          << out.name();
    }
  }
}

TEST_F(KServeModelsTest, OutputsAreAnsweredInTheOrderRequested) {
  inference::ModelInferRequest request = Request("softmax_cross_entropy");
  AddInput(&request, "logits", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6},
           true);
  AddInput(&request, "labels", {2}, std::vector<int32_t>{2, 0}, true);
  request.add_outputs()->set_name("probabilities");
  request.add_outputs()->set_name("loss");
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "probabilities");
  EXPECT_EQ(response.outputs(1).name(), "loss");
  EXPECT_EQ(OutputShape(response, "loss"), std::vector<int64_t>{});
  const std::vector<float> p = OutputValues<float>(response, "probabilities");
  ASSERT_EQ(p.size(), 6u);
  EXPECT_NEAR(p[0] + p[1] + p[2], 1.0f, 1e-6f);
}

// Each parameter in each type a client may send it as gives what the own
// API gives for the same value.
TEST_F(KServeModelsTest, ParametersAsDoubleInt64OrString) {
  const std::vector<float> x = Ramp<float>(6);
  const std::vector<int64_t> shape = {2, 3};
  // leaky_relu's alpha.
  for (const auto& alpha :
       {DoubleParam(2.0), Int64Param(2), StringParam("2")}) {
    inference::ModelInferRequest request = Request("leaky_relu");
    AddInput(&request, "x", shape, x, true);
    (*request.mutable_parameters())["alpha"] = alpha;
    inference::ModelInferResponse response;
    ASSERT_TRUE(Infer(request, &response).ok());
    const std::vector<float> y = OutputValues<float>(response, "y");
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(y[i], x[i] > 0 ? x[i] : 2.0f * x[i]);
    }
  }
  // softmax's axis, against the own API along axis 0.
  v1::EvaluateRequest own;
  own.mutable_spec()->set_function(v1::SOFTMAX);
  own.mutable_spec()->set_axis(0);
  *own.mutable_input() = MakeTensor<float>(shape, x, server::Encoding::kRaw);
  v1::EvaluateResponse answer;
  ASSERT_TRUE(HandleEvaluate(own, ComputeContext(), &answer).ok());
  for (const auto& axis : {DoubleParam(0), Int64Param(0), StringParam("0"),
                           StringParam("-2"), Int64Param(-2)}) {
    inference::ModelInferRequest request = Request("softmax");
    AddInput(&request, "x", shape, x, false);
    (*request.mutable_parameters())["axis"] = axis;
    inference::ModelInferResponse response;
    ASSERT_TRUE(Infer(request, &response).ok());
    EXPECT_EQ(OutputValues<float>(response, "y"),
              ValuesOf<float>(answer.output()));
  }
  // Cross-entropy's reduction, label_smoothing and ignore_index.
  v1::SoftmaxCrossEntropyRequest ce;
  *ce.mutable_logits() = MakeTensor<float>(shape, x, server::Encoding::kRaw);
  ce.add_class_indices(1);
  ce.add_class_indices(-100);
  ce.set_reduction(v1::SoftmaxCrossEntropyRequest::NONE);
  ce.set_label_smoothing(0.25);
  ce.set_ignore_index(-100);
  v1::SoftmaxCrossEntropyResponse ce_answer;
  ASSERT_TRUE(HandleSoftmaxCrossEntropy(ce, ComputeContext(), &ce_answer).ok());
  for (const auto& [smoothing, ignore] : std::vector<
           std::pair<inference::InferParameter, inference::InferParameter>>{
           {DoubleParam(0.25), Int64Param(-100)},
           {StringParam("0.25"), StringParam("-100")},
           {StringParam("0.25"), DoubleParam(-100)}}) {
    inference::ModelInferRequest request = Request("softmax_cross_entropy");
    AddInput(&request, "logits", shape, x, true);
    AddInput(&request, "labels", {2}, std::vector<int64_t>{1, -100}, true);
    (*request.mutable_parameters())["reduction"] = StringParam("none");
    (*request.mutable_parameters())["label_smoothing"] = smoothing;
    (*request.mutable_parameters())["ignore_index"] = ignore;
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(OutputValues<float>(response, "loss"),
              ValuesOf<float>(ce_answer.loss()));
    EXPECT_EQ(OutputValues<float>(response, "grad_logits"),
              ValuesOf<float>(ce_answer.grad_logits()));
    EXPECT_EQ(OutputShape(response, "loss"), std::vector<int64_t>{2});
  }
}

// The half types travel as raw bytes (the protocol has no typed contents
// for them) and answer as the own API does, bit for bit.
template <typename H>
void CheckHalf(Stub& stub, const char* datatype) {
  SCOPED_TRACE(datatype);
  const std::vector<int64_t> shape = {3, 5};
  std::vector<H> x;
  for (double v : Ramp<double>(15, -4, 4)) x.push_back(HalfFromDouble<H>(v));
  inference::ModelInferRequest request = Request("gelu", "half");
  InputTensor* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype(datatype);
  input->mutable_shape()->Add(shape.begin(), shape.end());
  request.add_raw_input_contents(RawBytes(x));
  inference::ModelInferResponse response;
  const grpc::Status status = Call(stub, &Stub::ModelInfer, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).datatype(), datatype);

  v1::EvaluateRequest own;
  own.mutable_spec()->set_function(v1::GELU);
  *own.mutable_input() = MakeTensor<H>(shape, x, Encoding::kRaw);
  v1::EvaluateResponse answer;
  ComputeContext context;
  ASSERT_TRUE(HandleEvaluate(own, context, &answer).ok());
  EXPECT_TRUE(response.raw_output_contents(0) == answer.output().raw_data());

  // Typed contents: refused, naming where the values go.
  inference::ModelInferRequest typed = Request("gelu");
  InputTensor* t = typed.add_inputs();
  t->set_name("x");
  t->set_datatype(datatype);
  t->add_shape(2);
  t->mutable_contents()->add_fp32_contents(1);
  t->mutable_contents()->add_fp32_contents(2);
  const grpc::Status refused = Call(stub, &Stub::ModelInfer, typed, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("travels only in raw_input_contents"),
            std::string::npos)
      << refused.error_message();
}

TEST_F(KServeModelsTest, HalfTypesTravelRawAndMatchTheOwnApi) {
  CheckHalf<Float16>(*stub_, "FP16");
  CheckHalf<BFloat16>(*stub_, "BF16");
}

}  // namespace
}  // namespace actsvc::server::kserve
