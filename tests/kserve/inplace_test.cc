// KServe v2's ModelInfer computed in place (ComputeContext::request_writable;
// wire.cc's "In place", compute.h's RunInPlace, service.cc's InPlaceFor):
// for every function's model F, F.d1, F.d2 and F.vjp (softmax and
// log_softmax slab by slab), in FP32, FP64, FP16 and BF16, however the
// request's bytes are cut into slices (inside values too, and in slices of
// one byte), the answer is exactly the one the same method gives without
// request_writable (and the message path gives), and the values were
// computed in raw_input_contents' own memory and sent from there as
// raw_output_contents. Where in place does not apply (typed contents, the
// message path, invalid requests, Jacobians, cross-entropy, a request that
// may not be written), the request is left as it was and answered as
// before.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/activation.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "server/kserve/codec.h"
#include "server/kserve/models.h"
#include "server/kserve/service.h"
#include "server/method_table.h"
#include "server/options.h"
#include "server/wire.h"
#include "tests/kserve/wire_requests.h"
#include "tests/server/byte_buffers.h"

namespace actsvc::server::kserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;
using server::testing::Flatten;
using server::testing::InPlaceCuts;
using server::testing::OwnedRequest;
using server::testing::Sliced;
using testing::AddInput;
using testing::DatatypeSize;
using testing::kInfer;
using testing::kStream;

constexpr const char* kDatatypes[] = {"FP32", "FP64", "FP16", "BF16"};

// A request of `model` with raw inputs of `shape` in `datatype`, and alpha
// when the model takes it.
ModelInferRequest RawRequest(const Model& model, const std::string& datatype,
                             const std::vector<int64_t>& shape, uint32_t seed) {
  std::mt19937 random(seed);
  ModelInferRequest request;
  request.set_model_name(model.name);
  request.set_id(absl::StrCat("id-", model.name));
  for (const TensorSpec& input : model.inputs) {
    AddInput(&request, input.name, datatype, shape, &random);
  }
  for (const std::string& parameter : model.parameters) {
    if (parameter == "alpha") {
      (*request.mutable_parameters())["alpha"].set_double_param(0.3);
    }
  }
  return request;
}

// The models computed in place: every function's F, .d1, .d2 and .vjp
// (softmax and log_softmax slab by slab); not a Jacobian.
std::vector<const Model*> InPlaceModels() {
  std::vector<const Model*> models;
  for (const Model& model : AllModels()) {
    if (model.kind == ModelKind::kForward ||
        model.kind == ModelKind::kDerivative1 ||
        model.kind == ModelKind::kDerivative2 ||
        model.kind == ModelKind::kVjp) {
      models.push_back(&model);
    }
  }
  return models;
}

class KServeInPlaceTest : public ::testing::Test {
 protected:
  void SetUp() override { service_.Register(&methods_); }

  static ComputeContext Context(bool writable = true) {
    ComputeContext context;
    context.max_message_bytes = int64_t{64} << 20;
    context.request_writable = writable;
    // Every value on the wire, however small the request: these tests are
    // of the wire path (small requests whole: SmallRequestsTravelWhole).
    context.small_message_bytes = 0;
    return context;
  }

  // Infer on the message path (no WireRequest), as the REST endpoint runs
  // it.
  absl::Status InferMessage(const ModelInferRequest& request,
                            const ComputeContext& context,
                            ModelInferResponse* response) {
    int64_t elements = 0;
    return service_.Infer(request, context, &elements, response,
                          [] { return absl::OkStatus(); });
  }

  // ModelInfer through the method table, on `buffer`.
  absl::Status CallInfer(const grpc::ByteBuffer& buffer,
                         const ComputeContext& context,
                         grpc::ByteBuffer* response) {
    int64_t elements = 0;
    return methods_.CallUnary(kInfer, buffer, context, &elements, response);
  }

  // What Infer does with a WireRequest of its own: the status, the answer,
  // and how many values it handed out to be written in place.
  struct Outcome {
    absl::Status status;
    std::string bytes;
    int written = 0;
  };
  Outcome RunInfer(const grpc::ByteBuffer& buffer,
                   const ComputeContext& context) {
    ModelInferRequest request;
    WireRequest in(InferWireFields());
    EXPECT_TRUE(in.Parse(buffer, &request));
    ModelInferResponse response;
    WireResponse out(InferWireFields());
    grpc::ByteBuffer serialized;
    int64_t elements = 0;
    Outcome outcome;
    outcome.status = service_.Infer(
        request, context, &elements, &response,
        [&] { return out.Serialize(response, &serialized); }, {&in, &out});
    outcome.written = in.writable_fields();
    if (outcome.status.ok()) outcome.bytes = Flatten(serialized);
    return outcome;
  }

  // The request, cut each way into slices of its own memory, gets from
  // ModelInfer (computing in place) exactly the answer ModelInfer gives
  // without request_writable, which is the message path's; the request's
  // memory then holds the answer's values where one of its
  // raw_input_contents lay, every other byte unchanged.
  void ExpectInPlace(const ModelInferRequest& request, size_t step) {
    const std::string bytes = request.SerializeAsString();
    grpc::ByteBuffer reference;
    ASSERT_TRUE(CallInfer(Sliced(bytes, {}), Context(false), &reference).ok());
    const std::string expected = Flatten(reference);
    // The message path (protobuf's) agrees.
    ModelInferResponse message_response;
    ASSERT_TRUE(InferMessage(request, Context(), &message_response).ok());
    ASSERT_TRUE(message_response.SerializeAsString() == expected);
    ASSERT_EQ(message_response.raw_output_contents_size(), 1);
    const std::string& result = message_response.raw_output_contents(0);
    const std::string& first = request.raw_input_contents(0);
    const size_t at = bytes.find(first);
    ASSERT_NE(at, std::string::npos);
    const int element =
        static_cast<int>(DatatypeSize(request.inputs(0).datatype()));
    for (const std::vector<size_t>& cuts :
         InPlaceCuts(bytes.size(), at, first.size(), element, step)) {
      SCOPED_TRACE(absl::StrCat("cut in ", cuts.size() + 1));
      OwnedRequest owned(bytes, cuts);
      grpc::ByteBuffer response;
      const absl::Status status =
          CallInfer(owned.buffer(), Context(), &response);
      ASSERT_TRUE(status.ok()) << status;
      EXPECT_TRUE(Flatten(response) == expected)
          << "the in-place answer differs from the usual path's";
      // Written where one raw input lay; nothing else touched.
      const std::string now = owned.Bytes();
      bool found = false;
      for (const std::string& operand : request.raw_input_contents()) {
        std::string expect_now = bytes;
        expect_now.replace(bytes.find(operand), result.size(), result);
        found = found || now == expect_now;
      }
      EXPECT_TRUE(found) << "the request's memory does not hold the answer";
      if (cuts.empty()) {
        EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
      }
    }
    // Infer itself handed the values out to be written, once.
    OwnedRequest owned(bytes, {at + 3});
    EXPECT_EQ(RunInfer(owned.buffer(), Context()).written, 1);
  }

  InferenceService service_;
  MethodTable methods_;
};

TEST_F(KServeInPlaceTest, ModelsAnswerAsBeforeHoweverCut) {
  const std::vector<const Model*> models = InPlaceModels();
  // F, .d1, .d2 and .vjp of each elementwise function; softmax's and
  // log_softmax's F and .vjp.
  ASSERT_GE(models.size(), 44u);
  uint32_t seed = 0;
  for (const Model* model : models) {
    for (const char* datatype : kDatatypes) {
      SCOPED_TRACE(absl::StrCat(model->name, " ", datatype));
      const ModelInferRequest request =
          RawRequest(*model, datatype, {3, 13}, ++seed);
      ExpectInPlace(request, model->function == Function::kGelu ? 7 : 41);
    }
  }
}

// An empty tensor: an empty raw_input_contents resent as an empty
// raw_output_contents.
TEST_F(KServeInPlaceTest, EmptyTensor) {
  for (const char* name : {"relu", "tanh.vjp"}) {
    SCOPED_TRACE(name);
    const ModelInferRequest request =
        RawRequest(**FindModel(name, ""), "FP32", {0, 5}, 1);
    const std::string bytes = request.SerializeAsString();
    grpc::ByteBuffer reference;
    ASSERT_TRUE(CallInfer(Sliced(bytes, {}), Context(false), &reference).ok());
    OwnedRequest owned(bytes, {bytes.size() / 2});
    grpc::ByteBuffer response;
    ASSERT_TRUE(CallInfer(owned.buffer(), Context(), &response).ok());
    EXPECT_TRUE(Flatten(response) == Flatten(reference));
  }
}

// The VJP's inputs in either order (grad first), and a request that names
// its one output: still in place, as before.
TEST_F(KServeInPlaceTest, InputsInAnyOrderAndANamedOutput) {
  ModelInferRequest request =
      RawRequest(**FindModel("silu.vjp", ""), "FP32", {4, 29}, 3);
  request.mutable_inputs()->SwapElements(0, 1);
  request.mutable_raw_input_contents()->SwapElements(0, 1);
  request.add_outputs()->set_name("x_grad");
  ExpectInPlace(request, 29);
}

// The VJP writes into the operand in fewer pieces, either one, and sends
// its bytes from where they lie.
TEST_F(KServeInPlaceTest, VjpWritesIntoEitherOperand) {
  const ModelInferRequest request =
      RawRequest(**FindModel("gelu.vjp", ""), "FP32", {500}, 4);
  const std::string bytes = request.SerializeAsString();
  grpc::ByteBuffer reference;
  ASSERT_TRUE(CallInfer(Sliced(bytes, {}), Context(false), &reference).ok());
  ModelInferResponse expected;
  ASSERT_TRUE(expected.ParseFromString(Flatten(reference)));
  const std::string& result = expected.raw_output_contents(0);
  const size_t x_at = bytes.find(request.raw_input_contents(0));
  const size_t g_at = bytes.find(request.raw_input_contents(1));
  ASSERT_LT(x_at, g_at);
  for (bool into_g : {false, true}) {
    SCOPED_TRACE(into_g ? "into grad" : "into x");
    // The other operand in slices of 100 bytes (some inside values).
    const size_t from = into_g ? x_at : g_at;
    std::vector<size_t> cuts = {x_at, g_at};
    for (size_t c = from + 101; c < from + 2000; c += 100) cuts.push_back(c);
    std::sort(cuts.begin(), cuts.end());
    OwnedRequest owned(bytes, cuts);
    grpc::ByteBuffer response;
    ASSERT_TRUE(CallInfer(owned.buffer(), Context(), &response).ok());
    EXPECT_TRUE(Flatten(response) == Flatten(reference));
    std::string expect_now = bytes;
    expect_now.replace(into_g ? g_at : x_at, result.size(), result);
    EXPECT_TRUE(owned.Bytes() == expect_now)
        << "not written into " << (into_g ? "grad" : "x") << " alone";
    EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
  }
}

// ModelStreamInfer's messages compute in place too.
TEST_F(KServeInPlaceTest, StreamComputesInPlace) {
  const Method* stream = methods_.Find(kStream);
  ASSERT_NE(stream, nullptr);
  const ModelInferRequest request =
      RawRequest(**FindModel("elu.d2", ""), "FP64", {50}, 5);
  const std::string bytes = request.SerializeAsString();
  int64_t elements = 0;
  grpc::ByteBuffer reference;
  ASSERT_TRUE(
      stream
          ->stream(Sliced(bytes, {}), 0, Context(false), &elements, &reference)
          .ok());
  OwnedRequest owned(bytes, {bytes.size() - 13});
  grpc::ByteBuffer response;
  ASSERT_TRUE(
      stream->stream(owned.buffer(), 0, Context(), &elements, &response).ok());
  EXPECT_TRUE(Flatten(response) == Flatten(reference));
  ModelStreamInferResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(response)));
  EXPECT_TRUE(parsed.error_message().empty());
  EXPECT_FALSE(owned.Bytes() == bytes) << "not computed in place";
  EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
}

// In place where it applies, and only there: elsewhere the request is read
// as before, answered (or refused) as before, and left as it was.
TEST_F(KServeInPlaceTest, TakenOnlyWhereItApplies) {
  struct Case {
    std::string name;
    ModelInferRequest request;
    ComputeContext context = Context();
  };
  std::vector<Case> cases;
  const ModelInferRequest gelu =
      RawRequest(**FindModel("gelu", ""), "FP32", {2, 40}, 6);
  // Typed contents: nothing raw to compute in.
  cases.push_back({"fp32_contents", gelu});
  {
    ModelInferRequest& r = cases.back().request;
    r.clear_raw_input_contents();
    for (int i = 0; i < 80; ++i) {
      r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(0.25f * i);
    }
  }
  // A request that may not be written.
  cases.push_back({"not writable", gelu, Context(false)});
  // Invalid requests: the usual path says what is wrong.
  cases.push_back({"short bytes", gelu});
  cases.back().request.mutable_raw_input_contents(0)->pop_back();
  cases.push_back({"raw beside contents", gelu});
  cases.back().request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(
      1);
  cases.push_back({"unknown datatype", gelu});
  cases.back().request.mutable_inputs(0)->set_datatype("INT8");
  cases.push_back({"unknown output", gelu});
  cases.back().request.add_outputs()->set_name("dy");
  cases.push_back({"output twice", gelu});
  cases.back().request.add_outputs()->set_name("y");
  cases.back().request.add_outputs()->set_name("y");
  cases.push_back({"axis of an elementwise function", gelu});
  (*cases.back().request.mutable_parameters())["axis"].set_int64_param(1);
  cases.push_back({"unknown version", gelu});
  cases.back().request.set_model_version("2");
  cases.push_back({"two raw for one input", gelu});
  cases.back().request.add_raw_input_contents("abcd");
  cases.push_back({"too many elements", gelu});
  cases.back().context.max_elements = 10;
  // Too large a response: refused before any write.
  cases.push_back({"response over the limit", gelu});
  cases.back().context.max_message_bytes = 300;
  cases.push_back(
      {"vjp, grad of another shape",
       RawRequest(**FindModel("tanh.vjp", ""), "FP16", {2, 40}, 7)});
  cases.back().request.mutable_inputs(1)->set_shape(1, 41);
  cases.back().request.mutable_raw_input_contents(1)->append("wxyz");
  cases.push_back(
      {"vjp, grad of another datatype",
       RawRequest(**FindModel("tanh.vjp", ""), "FP32", {2, 40}, 8)});
  cases.back().request.mutable_inputs(1)->set_datatype("FP64");
  cases.back().request.mutable_raw_input_contents(1)->append(320, '\0');
  // Not one output of the input's shape.
  for (const char* model :
       {"gelu.jacobian", "softmax.jacobian", "softmax_cross_entropy.probs"}) {
    cases.push_back(
        {model, RawRequest(**FindModel(model, ""), "FP32", {4, 10}, 9)});
  }
  {
    Case labels{"softmax_cross_entropy",
                RawRequest(**FindModel("softmax_cross_entropy.probs", ""),
                           "FP32", {4, 10}, 10)};
    ModelInferRequest& r = labels.request;
    r.set_model_name("softmax_cross_entropy");
    r.mutable_inputs(1)->set_name("labels");
    r.mutable_inputs(1)->set_datatype("INT64");
    r.mutable_inputs(1)->clear_shape();
    r.mutable_inputs(1)->add_shape(4);
    std::string label_bytes(32, '\0');
    for (int i = 0; i < 4; ++i) label_bytes[8 * i] = static_cast<char>(i);
    *r.mutable_raw_input_contents(1) = label_bytes;
    cases.push_back(labels);
  }
  int refused = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string bytes = c.request.SerializeAsString();
    // As before: the method without request_writable.
    grpc::ByteBuffer reference;
    ComputeContext read_only = c.context;
    read_only.request_writable = false;
    const absl::Status expected =
        CallInfer(Sliced(bytes, {}), read_only, &reference);
    refused += !expected.ok();
    for (const std::vector<size_t>& cuts :
         std::vector<std::vector<size_t>>{{}, {bytes.size() / 3}}) {
      OwnedRequest owned(bytes, cuts);
      grpc::ByteBuffer response;
      const absl::Status status =
          CallInfer(owned.buffer(), c.context, &response);
      EXPECT_EQ(status, expected);
      if (status.ok() && expected.ok()) {
        EXPECT_TRUE(Flatten(response) == Flatten(reference));
      }
      EXPECT_TRUE(owned.Bytes() == bytes) << "the request was written";
      OwnedRequest again(bytes, cuts);
      const Outcome outcome = RunInfer(again.buffer(), c.context);
      EXPECT_EQ(outcome.status, expected);
      // A response over the limit is refused by RunInPlace's own check,
      // before any write; everywhere else nothing is handed out.
      if (c.name != "response over the limit") {
        EXPECT_EQ(outcome.written, 0);
      }
      EXPECT_TRUE(again.Bytes() == bytes) << "the request was written";
    }
  }
  EXPECT_EQ(refused, 12);
}

// The message path (the REST endpoint's): no WireRequest, nothing written,
// even where the context says the request may be.
TEST_F(KServeInPlaceTest, MessagePathIsUnchanged) {
  const ModelInferRequest request =
      RawRequest(**FindModel("sigmoid", ""), "BF16", {3, 17}, 11);
  const ModelInferRequest copy = request;
  ModelInferResponse writable;
  ModelInferResponse read_only;
  ASSERT_TRUE(InferMessage(request, Context(), &writable).ok());
  ASSERT_TRUE(InferMessage(request, Context(false), &read_only).ok());
  EXPECT_TRUE(writable.SerializeAsString() == read_only.SerializeAsString());
  EXPECT_TRUE(request.SerializeAsString() == copy.SerializeAsString());
}

// A request of at most ComputeContext::small_message_bytes is parsed by
// protobuf and answered from the message (what the message path answers,
// its memory untouched); one byte over the limit, in place.
TEST_F(KServeInPlaceTest, SmallRequestsTravelWhole) {
  for (const Model* model : InPlaceModels()) {
    SCOPED_TRACE(model->name);
    const ModelInferRequest request = RawRequest(*model, "FP32", {2, 40}, 13);
    ModelInferResponse expected;
    ASSERT_TRUE(InferMessage(request, Context(), &expected).ok());
    const std::string bytes = request.SerializeAsString();
    const int64_t size = static_cast<int64_t>(bytes.size());
    ASSERT_LE(size, kDefaultSmallMessageBytes);
    for (const int64_t limit : {kDefaultSmallMessageBytes, size, size - 1}) {
      ComputeContext context = Context();
      context.small_message_bytes = limit;
      OwnedRequest owned(bytes, {bytes.size() / 2});
      grpc::ByteBuffer response;
      ASSERT_TRUE(CallInfer(owned.buffer(), context, &response).ok());
      EXPECT_TRUE(Flatten(response) == expected.SerializeAsString())
          << "limit " << limit;
      // (identity's values are its answer: in place, nothing changes.)
      if (model->function != Function::kIdentity) {
        EXPECT_EQ(owned.Bytes() != bytes, limit < size)
            << "limit " << limit << ": computed in place only over it";
      }
    }
  }
}

// An in-place inference counts in its model's statistics as any other.
TEST_F(KServeInPlaceTest, StatisticsCountInPlaceInferences) {
  const ModelInferRequest request =
      RawRequest(**FindModel("softplus.d1", ""), "FP32", {100}, 12);
  const std::string bytes = request.SerializeAsString();
  for (int i = 0; i < 3; ++i) {
    OwnedRequest owned(bytes, {});
    grpc::ByteBuffer response;
    ASSERT_TRUE(CallInfer(owned.buffer(), Context(), &response).ok());
    EXPECT_FALSE(owned.Bytes() == bytes) << "not computed in place";
  }
  inference::ModelStatisticsRequest stats_request;
  stats_request.set_name("softplus.d1");
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(service_.ModelStatistics(stats_request, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  const auto& s = stats.model_stats(0);
  EXPECT_EQ(s.inference_count(), 3);
  EXPECT_EQ(s.execution_count(), 3);
  EXPECT_EQ(s.inference_stats().success().count(), 3);
  EXPECT_EQ(s.inference_stats().compute_infer().count(), 3);
  EXPECT_EQ(s.inference_stats().fail().count(), 0);
}

}  // namespace
}  // namespace actsvc::server::kserve
