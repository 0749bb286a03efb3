// The wire path (server/wire.h) against protobuf's: for every RPC and
// both encodings, the method the server runs answers with exactly the bytes
// of the protobuf-serialized response of the same RPC body, however the
// request's bytes are cut into slices; bad requests get the same status;
// malformed bytes are refused as protobuf refuses them.
#include "server/wire.h"

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/method_table.h"
#include "server/v1/service.h"
#include "tests/server/byte_buffers.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using testing::Cuts;
using testing::Flatten;
using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::Ramp;
using testing::SentInPlace;
using testing::Sliced;

// What a method of the server answers, and what the same RPC body answers
// on protobuf's messages.
struct Outcome {
  absl::Status status;
  std::string bytes;
};

class WireTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterActivationService(&methods_); }

  Outcome CallMethod(absl::string_view rpc, const grpc::ByteBuffer& request) {
    ComputeContext context;
    context.max_message_bytes = int64_t{64} << 20;
    // Every value on the wire, however small the request (small messages
    // whole: small_message_test.cc).
    context.small_message_bytes = 0;
    int64_t elements = 0;
    grpc::ByteBuffer response;
    Outcome outcome;
    outcome.status =
        methods_.CallUnary(absl::StrCat("/actsvc.v1.ActivationService/", rpc),
                           request, context, &elements, &response);
    if (outcome.status.ok()) outcome.bytes = Flatten(response);
    return outcome;
  }

  // The request, however cut, gets from the method exactly the answer the
  // body gives on protobuf's messages.
  template <typename Request, typename Response>
  void ExpectSameAnswer(absl::string_view rpc, const Request& request,
                        absl::Status (*handler)(const Request&,
                                                const ComputeContext&,
                                                Response*, TensorIo)) {
    ComputeContext context;
    context.max_message_bytes = int64_t{64} << 20;
    Response response;
    const absl::Status expected_status =
        handler(request, context, &response, TensorIo{});
    const std::string expected =
        expected_status.ok() ? response.SerializeAsString() : "";
    const std::string bytes = request.SerializeAsString();
    for (const std::vector<size_t>& cuts : Cuts(bytes.size())) {
      SCOPED_TRACE(absl::StrCat(rpc, " cut in ", cuts.size() + 1));
      const Outcome got = CallMethod(rpc, Sliced(bytes, cuts));
      EXPECT_EQ(got.status, expected_status);
      EXPECT_TRUE(got.bytes == expected)
          << got.bytes.size() << " bytes, expected " << expected.size();
    }
  }

  MethodTable methods_;
};

template <typename H>
std::vector<H> HalfRamp(int64_t n, double lo, double hi) {
  std::vector<H> values;
  for (double v : Ramp<double>(n, lo, hi)) {
    values.push_back(HalfFromDouble<H>(v));
  }
  return values;
}

v1::Tensor Input(const std::vector<int64_t>& shape, v1::DataType dtype,
                 Encoding encoding, double lo = -6, double hi = 6) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  switch (dtype) {
    case v1::FLOAT16:
      return MakeTensor<Float16>(shape, HalfRamp<Float16>(n, lo, hi), encoding);
    case v1::BFLOAT16:
      return MakeTensor<BFloat16>(shape, HalfRamp<BFloat16>(n, lo, hi),
                                  encoding);
    case v1::FLOAT64:
      return MakeTensor<double>(shape, Ramp<double>(n, lo, hi), encoding);
    default:
      return MakeTensor<float>(shape, Ramp<float>(n, lo, hi), encoding);
  }
}

struct Layout {
  v1::DataType dtype;
  Encoding encoding;
};
const Layout kLayouts[] = {
    {v1::FLOAT32, Encoding::kRaw},  {v1::FLOAT32, Encoding::kTyped},
    {v1::FLOAT64, Encoding::kRaw},  {v1::FLOAT64, Encoding::kTyped},
    {v1::FLOAT16, Encoding::kRaw},  {v1::FLOAT16, Encoding::kTyped},
    {v1::BFLOAT16, Encoding::kRaw}, {v1::BFLOAT16, Encoding::kTyped}};

TEST_F(WireTest, EvaluateAnswersAsProtobufWould) {
  for (const Layout& l : kLayouts) {
    for (v1::Function f : {v1::IDENTITY, v1::GELU, v1::SOFTMAX}) {
      v1::EvaluateRequest request;
      request.mutable_spec()->set_function(f);
      *request.mutable_input() = Input({3, 17}, l.dtype, l.encoding);
      ExpectSameAnswer("Evaluate", request, &HandleEvaluate);
    }
  }
}

TEST_F(WireTest, DerivativeAndVjpAnswerAsProtobufWould) {
  for (const Layout& l : kLayouts) {
    v1::DerivativeRequest request;
    request.mutable_spec()->set_function(v1::TANH);
    request.set_order(2);
    *request.mutable_input() = Input({5, 9}, l.dtype, l.encoding);
    ExpectSameAnswer("Derivative", request, &HandleDerivative);

    v1::DerivativeRequest vjp;
    vjp.mutable_spec()->set_function(v1::LOG_SOFTMAX);
    *vjp.mutable_input() = Input({4, 11}, l.dtype, l.encoding);
    *vjp.mutable_upstream_grad() = Input({4, 11}, l.dtype, l.encoding, -1, 1);
    ExpectSameAnswer("Derivative", vjp, &HandleDerivative);
  }
}

TEST_F(WireTest, JacobianAnswersAsProtobufWould) {
  for (const Layout& l : kLayouts) {
    for (bool dense : {false, true}) {
      v1::JacobianRequest request;
      request.mutable_spec()->set_function(dense ? v1::SOFTMAX : v1::SILU);
      request.set_dense(dense);
      *request.mutable_input() = Input({2, 6}, l.dtype, l.encoding);
      ExpectSameAnswer("Jacobian", request, &HandleJacobian);
    }
  }
}

TEST_F(WireTest, CrossEntropyAnswersAsProtobufWould) {
  for (const Layout& l : kLayouts) {
    for (bool probabilities : {false, true}) {
      v1::SoftmaxCrossEntropyRequest request;
      *request.mutable_logits() = Input({3, 7}, l.dtype, l.encoding);
      for (int label : {1, 6, 0}) request.add_class_indices(label);
      request.set_reduction(v1::SoftmaxCrossEntropyRequest::NONE);
      request.set_return_probabilities(probabilities);
      ExpectSameAnswer("SoftmaxCrossEntropy", request,
                       &HandleSoftmaxCrossEntropy);

      v1::SoftmaxCrossEntropyRequest soft;
      *soft.mutable_logits() = Input({2, 5}, l.dtype, l.encoding);
      *soft.mutable_target_probs() =
          Input({2, 5}, l.dtype, l.encoding, 0.1, 0.1);
      soft.set_return_probabilities(probabilities);
      ExpectSameAnswer("SoftmaxCrossEntropy", soft, &HandleSoftmaxCrossEntropy);
    }
  }
}

TEST_F(WireTest, AnalyzeAnswersAsProtobufWould) {
  for (const Layout& l : kLayouts) {
    v1::AnalyzeRequest request;
    request.mutable_spec()->set_function(v1::SIGMOID);
    request.set_layers(4);
    *request.mutable_input() = Input({8, 8}, l.dtype, l.encoding);
    ExpectSameAnswer("Analyze", request, &HandleAnalyze);
  }
}

TEST_F(WireTest, BadRequestsGetTheSameStatus) {
  std::vector<v1::EvaluateRequest> bad;
  v1::EvaluateRequest base;
  base.mutable_spec()->set_function(v1::RELU);
  *base.mutable_input() = Input({2, 3}, v1::FLOAT32, Encoding::kRaw);
  // raw_data one value short, and one byte over.
  bad.push_back(base);
  bad.back().mutable_input()->mutable_raw_data()->resize(20);
  bad.push_back(base);
  bad.back().mutable_input()->mutable_raw_data()->push_back('\0');
  // Two encodings at once.
  bad.push_back(base);
  bad.back().mutable_input()->add_float_data(1.0f);
  // float_data in a FLOAT64 tensor; too few typed values.
  bad.push_back(base);
  bad.back().mutable_input()->clear_raw_data();
  bad.back().mutable_input()->set_dtype(v1::FLOAT64);
  for (int i = 0; i < 6; ++i) bad.back().mutable_input()->add_float_data(i);
  bad.push_back(base);
  bad.back().mutable_input()->clear_raw_data();
  for (int i = 0; i < 5; ++i) bad.back().mutable_input()->add_float_data(i);
  // No data; a negative dim; an unknown dtype; no function.
  bad.push_back(base);
  bad.back().mutable_input()->clear_raw_data();
  bad.push_back(base);
  bad.back().mutable_input()->set_shape(0, -2);
  bad.push_back(base);
  bad.back().mutable_input()->set_dtype(static_cast<v1::DataType>(7));
  bad.push_back(base);
  bad.back().clear_spec();
  for (const v1::EvaluateRequest& request : bad) {
    SCOPED_TRACE(request.ShortDebugString().substr(0, 200));
    ComputeContext context;
    v1::EvaluateResponse response;
    const absl::Status expected =
        HandleEvaluate(request, context, &response, TensorIo{});
    ASSERT_EQ(expected.code(), absl::StatusCode::kInvalidArgument);
    ExpectSameAnswer("Evaluate", request, &HandleEvaluate);
  }
}

// The wire reader and protobuf agree on every message: the same fields, or
// both refuse it.
void ExpectSameParse(const std::string& bytes) {
  v1::DerivativeRequest expected;
  const bool valid =
      expected.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  for (const std::vector<size_t>& cuts : Cuts(bytes.size())) {
    WireRequest wire(TensorWireFields());
    const TensorData data(&wire);
    v1::DerivativeRequest got;
    ASSERT_EQ(wire.Parse(Sliced(bytes, cuts), &got), valid);
    if (!valid) continue;
    for (v1::Tensor* t :
         {got.has_input() ? got.mutable_input() : nullptr,
          got.has_upstream_grad() ? got.mutable_upstream_grad() : nullptr}) {
      if (t == nullptr) continue;
      const std::string raw(data.Bytes(*t, v1::Tensor::kRawDataFieldNumber, 1));
      const std::string floats(
          data.Bytes(*t, v1::Tensor::kFloatDataFieldNumber, 4));
      const std::string doubles(
          data.Bytes(*t, v1::Tensor::kDoubleDataFieldNumber, 8));
      t->set_raw_data(raw);
      t->mutable_float_data()->Resize(floats.size() / 4, 0);
      if (!floats.empty()) {
        std::memcpy(t->mutable_float_data()->mutable_data(), floats.data(),
                    floats.size());
      }
      t->mutable_double_data()->Resize(doubles.size() / 8, 0);
      if (!doubles.empty()) {
        std::memcpy(t->mutable_double_data()->mutable_data(), doubles.data(),
                    doubles.size());
      }
    }
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(got, expected))
        << got.ShortDebugString() << "\nexpected\n"
        << expected.ShortDebugString();
  }
}

TEST(WireRequestTest, ReadsWhatProtobufReads) {
  v1::DerivativeRequest request;
  request.mutable_spec()->set_function(v1::GELU);
  *request.mutable_input() = Input({2, 5}, v1::FLOAT32, Encoding::kRaw);
  *request.mutable_upstream_grad() =
      Input({2, 5}, v1::FLOAT64, Encoding::kTyped);
  const std::string bytes = request.SerializeAsString();
  ExpectSameParse(bytes);
  // Truncated anywhere.
  for (size_t n = 0; n < bytes.size(); n += 3) {
    ExpectSameParse(bytes.substr(0, n));
  }
  // Fields protobuf merges or skips: a second input (merged), a second
  // raw_data (the last wins), unpacked float_data, an unknown field of
  // every wire type, a group.
  std::string twice = bytes + request.SerializeAsString();
  ExpectSameParse(twice);
  v1::DerivativeRequest second_raw;
  second_raw.mutable_input()->set_raw_data(std::string(40, 'x'));
  ExpectSameParse(bytes + second_raw.SerializeAsString());
  // input { float_data (unpacked) 1.0f }: field 2 { 0x25 <4 bytes> }.
  ExpectSameParse(bytes + std::string("\x12\x05\x25\x00\x00\x80\x3f", 7));
  ExpectSameParse(bytes + std::string("\xf8\x01\x05", 3));  // varint
  ExpectSameParse(bytes + std::string("\xf9\x01"
                                      "12345678",
                                      10));                   // fixed64
  ExpectSameParse(bytes + std::string("\xfa\x01\x02zz", 5));  // bytes
  ExpectSameParse(bytes + std::string("\xfd\x01"
                                      "1234",
                                      6));                      // fixed32
  ExpectSameParse(bytes + std::string("\xfb\x01\xfc\x01", 4));  // group
  // A wrong wire type for input, and for raw_data inside it.
  ExpectSameParse(std::string("\x10\x05", 2) + bytes);
  ExpectSameParse(std::string("\x12\x02\x18\x07", 4) + bytes);
  // A length past the end; a varint of 11 bytes.
  ExpectSameParse(bytes + std::string("\x12\x7f", 2));
  ExpectSameParse(bytes + std::string("\x18") + std::string(10, '\xff') +
                  std::string("\x01"));
  // Tags and lengths padded past 5 bytes, which protobuf refuses: raw_data's
  // length, input's length and raw_data's tag, each in a message of its own (a
  // second input would leave the message to protobuf). A length whose varint
  // runs past the message holding it is the fuzz regression
  // length_varint_past_its_message.
  ExpectSameParse(std::string("\x12\x07\x1a\x80\x80\x80\x80\x80\x00", 9));
  ExpectSameParse(std::string("\x12\x80\x80\x80\x80\x80\x00", 7));
  ExpectSameParse(std::string("\x12\x07\x9a\x80\x80\x80\x80\x00\x00", 9));
  ExpectSameParse(std::string("\x12\x80\x80\x80\x80\x00", 6));  // valid
}

TEST(WireRequestTest, ReadsRawDataInPlaceWhenItCan) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::RELU);
  *request.mutable_input() = Input({1, 1024}, v1::FLOAT32, Encoding::kRaw);
  const std::string bytes = request.SerializeAsString();
  const size_t at = bytes.find(request.input().raw_data());
  ASSERT_NE(at, std::string::npos);
  // The values in a slice of their own, aligned as grpc::Slice allocates.
  const grpc::ByteBuffer buffer = Sliced(bytes, {at, at + 4096});
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 2u);  // the values are the last field
  WireRequest wire(TensorWireFields());
  v1::EvaluateRequest parsed;
  ASSERT_TRUE(wire.Parse(buffer, &parsed));
  EXPECT_EQ(wire.external_fields(), 1);
  EXPECT_TRUE(parsed.input().raw_data().empty());
  const absl::string_view in_place = TensorData(&wire).Bytes(
      parsed.input(), v1::Tensor::kRawDataFieldNumber, 4);
  if (reinterpret_cast<uintptr_t>(slices[1].begin()) % 4 == 0) {
    EXPECT_EQ(in_place.data(),
              reinterpret_cast<const char*>(slices[1].begin()));
  }
  EXPECT_EQ(in_place, request.input().raw_data());
  // Spread over slices at odd offsets: gathered once, aligned.
  const grpc::ByteBuffer spread = Sliced(bytes, {at + 1, at + 2001, at + 3});
  WireRequest gathered(TensorWireFields());
  ASSERT_TRUE(gathered.Parse(spread, &parsed));
  const TensorData in_gathered(&gathered);
  const absl::string_view copy =
      in_gathered.Bytes(parsed.input(), v1::Tensor::kRawDataFieldNumber, 8);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(copy.data()) % 8, 0u);
  EXPECT_EQ(copy, request.input().raw_data());
  EXPECT_EQ(
      copy.data(),
      in_gathered.Bytes(parsed.input(), v1::Tensor::kRawDataFieldNumber, 8)
          .data());
}

TEST(WireResponseTest, DataBuffersBecomeSlicesOfTheirOwn) {
  v1::SoftmaxCrossEntropyResponse response;
  response.mutable_loss()->set_dtype(v1::FLOAT32);
  response.mutable_grad_logits()->set_dtype(v1::FLOAT32);
  response.mutable_grad_logits()->add_shape(1 << 16);
  WireResponse wire(TensorWireFields());
  void* loss =
      wire.Allocate(&response.loss(), v1::Tensor::kRawDataFieldNumber, 4);
  void* grad = wire.Allocate(&response.grad_logits(),
                             v1::Tensor::kFloatDataFieldNumber, 4 << 16);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(grad) % 64, 0u);
  std::memset(loss, 1, 4);
  std::memset(grad, 2, 4 << 16);
  grpc::ByteBuffer out;
  ASSERT_TRUE(wire.Serialize(response, &out).ok());
  EXPECT_TRUE(SentInPlace(out, grad)) << "the gradient was copied";

  response.mutable_loss()->set_raw_data(std::string(4, '\1'));
  for (int i = 0; i < (1 << 16); ++i) {
    float value;
    std::memset(&value, 2, 4);
    response.mutable_grad_logits()->add_float_data(value);
  }
  EXPECT_TRUE(Flatten(out) == response.SerializeAsString());
}

}  // namespace
}  // namespace actsvc::server
