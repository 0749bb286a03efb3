// KServe v2 on the wire path (server/wire.h with InferWireFields): the
// ModelInfer and ModelStreamInfer methods the server runs read
// raw_input_contents in place and write raw_output_contents as slices of
// their own, and answer with exactly the bytes of the protobuf-serialized
// response that the same inference gives on protobuf's messages, however
// the request's bytes are cut into slices; bad requests get the same status.
#include "server/wire.h"

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "server/kserve/codec.h"
#include "server/kserve/service.h"
#include "server/method_table.h"
#include "tests/kserve/wire_requests.h"
#include "tests/server/byte_buffers.h"

namespace actsvc::server::kserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;
using server::testing::Cuts;
using server::testing::Flatten;
using server::testing::SentInPlace;
using server::testing::Sliced;
using testing::AddInput;
using testing::DatatypeSize;
using testing::kInfer;
using testing::kStream;

ModelInferRequest Request(const std::string& model) {
  ModelInferRequest request;
  request.set_model_name(model);
  request.set_id(absl::StrCat("id-", model));
  return request;
}

// A model's request: its inputs, in order, and the outputs it asks for
// (when it asks for some, the request is also sent without them).
struct Input {
  const char* name;
  const char* datatype;  // nullptr: the float datatype of the round
  std::vector<int64_t> shape;
  std::vector<int64_t> labels = {};  // empty: random bytes
};
struct ModelRequest {
  const char* model;
  std::vector<Input> inputs;
  std::vector<const char*> outputs = {};
};

// The requests the wire path must answer as the message path does: the
// models' requests in each float datatype, and requests that fail.
std::vector<ModelInferRequest> Requests() {
  // Every kind of model; the cross-entropy with each label datatype, also
  // asking for a subset of its outputs out of the model's order; and empty
  // tensors (an empty raw_input_contents and raw_output_contents).
  const ModelRequest models[] = {
      {"gelu", {{"x", nullptr, {3, 37}}}},
      {"tanh.d1", {{"x", nullptr, {2, 50}}}},
      {"softmax.vjp", {{"x", nullptr, {4, 10}}, {"grad", nullptr, {4, 10}}}},
      {"log_softmax.jacobian", {{"x", nullptr, {2, 6}}}},
      {"softmax_cross_entropy",
       {{"logits", nullptr, {5, 9}}, {"labels", "INT64", {5}, {0, 8, 3, 1, 7}}},
       {"probabilities", "loss"}},
      {"softmax_cross_entropy",
       {{"logits", nullptr, {5, 9}}, {"labels", "INT32", {5}, {0, 8, 3, 1, 7}}},
       {"probabilities", "loss"}},
      {"softmax_cross_entropy.probs",
       {{"logits", nullptr, {3, 8}}, {"target_probs", nullptr, {3, 8}}}},
      {"relu", {{"x", nullptr, {0, 5}}}},
  };
  std::mt19937 random(7);
  std::vector<ModelInferRequest> requests;
  for (const char* datatype : {"FP32", "FP64", "FP16", "BF16"}) {
    for (const ModelRequest& m : models) {
      ModelInferRequest request = Request(m.model);
      for (const Input& in : m.inputs) {
        AddInput(&request, in.name,
                 in.datatype != nullptr ? in.datatype : datatype, in.shape,
                 &random, in.labels);
      }
      requests.push_back(request);
      if (m.outputs.empty()) continue;
      for (const char* output : m.outputs) {
        request.add_outputs()->set_name(output);
      }
      requests.push_back(request);
    }
  }
  // Failures: a byte count that does not fit, raw beside typed contents,
  // too few raw_input_contents.
  ModelInferRequest short_bytes = requests[0];
  short_bytes.mutable_raw_input_contents(0)->pop_back();
  requests.push_back(short_bytes);
  ModelInferRequest both = requests[0];
  both.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  requests.push_back(both);
  ModelInferRequest missing = requests[2];  // softmax.vjp, FP32
  missing.mutable_raw_input_contents()->RemoveLast();
  requests.push_back(missing);
  return requests;
}

class KServeWireTest : public ::testing::Test {
 protected:
  void SetUp() override { service_.Register(&methods_); }

  static ComputeContext Context() {
    ComputeContext context;
    context.max_message_bytes = int64_t{64} << 20;
    // Every value on the wire, however small the request (small requests
    // whole: inplace_test.cc, SmallRequestsTravelWhole).
    context.small_message_bytes = 0;
    return context;
  }

  // The answer of the message path (protobuf's ModelInferRequest).
  absl::Status Expected(const ModelInferRequest& request,
                        ModelInferResponse* response) {
    int64_t elements = 0;
    return service_.Infer(request, Context(), &elements, response,
                          [] { return absl::OkStatus(); });
  }

  InferenceService service_;
  MethodTable methods_;
};

TEST_F(KServeWireTest, ModelInferAnswersWithProtobufsBytesHoweverCut) {
  int answered = 0;
  int refused = 0;
  for (const ModelInferRequest& request : Requests()) {
    SCOPED_TRACE(request.model_name());
    ModelInferResponse response;
    int64_t elements = 0;
    const absl::Status expected_status = Expected(request, &response);
    const std::string expected =
        expected_status.ok() ? response.SerializeAsString() : "";
    ++(expected_status.ok() ? answered : refused);
    const std::string bytes = request.SerializeAsString();
    for (const std::vector<size_t>& cuts : Cuts(bytes.size(), 5)) {
      SCOPED_TRACE(absl::StrCat("cut in ", cuts.size() + 1));
      grpc::ByteBuffer out;
      const absl::Status status = methods_.CallUnary(
          kInfer, Sliced(bytes, cuts), Context(), &elements, &out);
      ASSERT_EQ(status, expected_status);
      if (!status.ok()) continue;
      EXPECT_TRUE(Flatten(out) == expected)
          << Flatten(out).size() << " bytes, expected " << expected.size();
      // The values went out as slices of their own.
      std::vector<grpc::Slice> slices;
      ASSERT_TRUE(out.Dump(&slices).ok());
      if (!response.raw_output_contents(0).empty()) {
        EXPECT_GE(slices.size(), 2u);
      }
    }
  }
  EXPECT_EQ(answered, 40);
  EXPECT_EQ(refused, 3);
}

// A request the skeleton reader leaves to protobuf (here for an unknown
// group, which it does not take apart) is answered as protobuf's message
// says: its raw_input_contents are then in the message, not read apart.
TEST_F(KServeWireTest, ARequestProtobufParsesWholeIsAnsweredAlike) {
  for (const ModelInferRequest& request : Requests()) {
    SCOPED_TRACE(request.model_name());
    ModelInferResponse response;
    const absl::Status expected_status = Expected(request, &response);
    std::string bytes = request.SerializeAsString();
    // Field 999, an empty group: start (wire type 3) and end (4) tags.
    for (const uint32_t tag : {(999u << 3) | 3, (999u << 3) | 4}) {
      for (uint32_t v = tag;; v >>= 7) {
        if (v < 0x80) {
          bytes.push_back(static_cast<char>(v));
          break;
        }
        bytes.push_back(static_cast<char>((v & 0x7f) | 0x80));
      }
    }
    grpc::ByteBuffer out;
    int64_t elements = 0;
    const absl::Status status = methods_.CallUnary(kInfer, Sliced(bytes, {}),
                                                   Context(), &elements, &out);
    ASSERT_EQ(status, expected_status);
    if (!status.ok()) continue;
    ModelInferResponse got;
    ASSERT_TRUE(got.ParseFromString(Flatten(out)));
    EXPECT_EQ(got.raw_output_contents_size(),
              response.raw_output_contents_size());
    for (int i = 0; i < got.raw_output_contents_size(); ++i) {
      EXPECT_TRUE(got.raw_output_contents(i) ==
                  response.raw_output_contents(i));
    }
  }
}

TEST_F(KServeWireTest, StreamAnswersWithProtobufsBytes) {
  const Method* stream = methods_.Find(kStream);
  ASSERT_NE(stream, nullptr);
  int answered = 0;
  for (const ModelInferRequest& request : Requests()) {
    SCOPED_TRACE(request.model_name());
    ModelStreamInferResponse expected;
    int64_t elements = 0;
    const absl::Status status = service_.Infer(
        request, Context(), &elements, expected.mutable_infer_response(),
        [] { return absl::OkStatus(); });
    if (!status.ok()) continue;  // failures: grpc_errors_test's stream test
    const std::string bytes = request.SerializeAsString();
    grpc::ByteBuffer out;
    ASSERT_TRUE(stream
                    ->stream(Sliced(bytes, {bytes.size() / 3}), 4, Context(),
                             &elements, &out)
                    .ok());
    EXPECT_TRUE(Flatten(out) == expected.SerializeAsString());
    ++answered;
  }
  EXPECT_EQ(answered, 40);
}

TEST(KServeWireRequestTest, ReadsRawInputsInPlace) {
  std::mt19937 random(3);
  ModelInferRequest request = Request("gelu.vjp");
  AddInput(&request, "x", "FP32", {1, 1024}, &random);
  AddInput(&request, "grad", "FP32", {1, 1024}, &random);
  const std::string bytes = request.SerializeAsString();
  const size_t x = bytes.find(request.raw_input_contents(0));
  const size_t grad = bytes.find(request.raw_input_contents(1));
  ASSERT_NE(x, std::string::npos);
  ASSERT_NE(grad, std::string::npos);
  // Each value in a slice of its own, aligned as grpc::Slice allocates.
  const grpc::ByteBuffer buffer =
      Sliced(bytes, {x, x + 4096, grad, grad + 4096});
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  WireRequest wire(InferWireFields());
  ModelInferRequest parsed;
  ASSERT_TRUE(wire.Parse(buffer, &parsed));
  EXPECT_EQ(parsed.raw_input_contents_size(), 0);
  EXPECT_EQ(wire.Count(parsed, 7), 2);
  const std::optional<absl::string_view> first = wire.Find(parsed, 7, 0, 4);
  const std::optional<absl::string_view> second = wire.Find(parsed, 7, 1, 4);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, request.raw_input_contents(0));
  EXPECT_EQ(*second, request.raw_input_contents(1));
  if (reinterpret_cast<uintptr_t>(slices[1].begin()) % 4 == 0) {
    EXPECT_EQ(first->data(), reinterpret_cast<const char*>(slices[1].begin()));
  }
  EXPECT_FALSE(wire.Find(parsed, 7, 2, 4).has_value());
}

TEST(KServeWireResponseTest, RawOutputsBecomeSlicesOfTheirOwn) {
  ModelInferResponse response;
  response.set_model_name("gelu");
  response.add_outputs()->set_name("y");
  response.add_outputs()->set_name("dy");
  WireResponse wire(InferWireFields());
  // Allocated out of order; the second empty.
  void* y = wire.Allocate(&response, 6, 0, 4 << 16);
  wire.Allocate(&response, 6, 1, 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y) % 64, 0u);
  std::memset(y, 3, 4 << 16);
  grpc::ByteBuffer out;
  ASSERT_TRUE(wire.Serialize(response, &out).ok());
  EXPECT_TRUE(SentInPlace(out, y)) << "y was copied";
  response.add_raw_output_contents(std::string(4 << 16, '\3'));
  response.add_raw_output_contents("");
  EXPECT_TRUE(Flatten(out) == response.SerializeAsString());
}

}  // namespace
}  // namespace actsvc::server::kserve
