// Small messages travel whole (server/wire.h, ComputeContext::
// small_message_bytes): a request of at most the limit is parsed by protobuf,
// response values under it go into the message, and a response with no value
// apart is protobuf's own serialization. The answers are the bytes the RPC
// bodies give on protobuf's messages, for every RPC and encoding, on either
// side of the limit; the request's memory is computed in only above it.
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/method_table.h"
#include "server/options.h"
#include "server/v1/service.h"
#include "server/wire.h"
#include "tests/server/byte_buffers.h"
#include "tests/server/inplace_fixture.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using testing::Flatten;
using testing::MakeTensor;
using testing::OwnedRequest;
using testing::RandomTensor;
using testing::SpecWithAlpha;

// Values from lo up to 6, in `encoding` (half values typed as float_data).
v1::Tensor Tensor(const std::vector<int64_t>& shape, v1::DataType dtype,
                  Encoding encoding, double lo) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const std::vector<double> ramp = testing::Ramp<double>(n, lo, 6);
  switch (dtype) {
    case v1::FLOAT16:
    case v1::BFLOAT16: {
      std::vector<Float16> f16;
      std::vector<BFloat16> bf16;
      for (double v : ramp) {
        f16.push_back(HalfFromDouble<Float16>(v));
        bf16.push_back(HalfFromDouble<BFloat16>(v));
      }
      return dtype == v1::FLOAT16 ? MakeTensor<Float16>(shape, f16, encoding)
                                  : MakeTensor<BFloat16>(shape, bf16, encoding);
    }
    case v1::FLOAT64:
      return MakeTensor<double>(shape, ramp, encoding);
    default:
      return MakeTensor<float>(shape, testing::Ramp<float>(n, lo, 6), encoding);
  }
}

v1::EvaluateRequest Evaluate(v1::Function f, v1::DataType dtype, int64_t n) {
  v1::EvaluateRequest request;
  *request.mutable_spec() = SpecWithAlpha(f);
  *request.mutable_input() = RandomTensor(dtype, {1, n}, 11);
  return request;
}

TEST(WireRequestSmallTest, AtMostTheLimitIsParsedWhole) {
  const v1::EvaluateRequest request = Evaluate(v1::SIGMOID, v1::FLOAT32, 300);
  const std::string bytes = request.SerializeAsString();
  const int64_t size = static_cast<int64_t>(bytes.size());
  for (const int64_t limit : {size, size + 1}) {
    WireRequest wire(TensorWireFields(), limit);
    v1::EvaluateRequest parsed;
    ASSERT_TRUE(wire.Parse(testing::Sliced(bytes, {7, 100}), &parsed));
    EXPECT_EQ(wire.external_fields(), 0) << "limit " << limit;
    EXPECT_TRUE(parsed.SerializeAsString() == bytes) << "limit " << limit;
  }
  WireRequest wire(TensorWireFields(), size - 1);
  v1::EvaluateRequest parsed;
  ASSERT_TRUE(wire.Parse(testing::Sliced(bytes, {7, 100}), &parsed));
  EXPECT_EQ(wire.external_fields(), 1) << "one byte over: raw_data apart";
  EXPECT_TRUE(parsed.input().raw_data().empty());
}

TEST(WireRequestSmallTest, MalformedSmallRequestsAreRefused) {
  const std::string bytes =
      Evaluate(v1::SIGMOID, v1::FLOAT32, 64).SerializeAsString();
  for (const std::string& bad :
       {bytes.substr(0, bytes.size() - 3), std::string("\x0a\xff", 2),
        std::string("\x0b", 1), bytes + std::string("\x12\x05", 2)}) {
    WireRequest wire(TensorWireFields(), int64_t{1} << 20);
    v1::EvaluateRequest parsed;
    EXPECT_FALSE(wire.Parse(testing::Sliced(bad, {}), &parsed))
        << bad.size() << " bytes";
  }
}

TEST(WireResponseSmallTest, ValuesUnderTheLimitStayInTheMessage) {
  WireResponse response(TensorWireFields(), 100);
  EXPECT_FALSE(response.TakesApart(99));
  EXPECT_TRUE(response.TakesApart(100));
  EXPECT_TRUE(WireResponse(TensorWireFields()).TakesApart(0));

  // Nothing apart: protobuf's serialization, whole.
  v1::EvaluateResponse message;
  *message.mutable_output() = RandomTensor(v1::FLOAT32, {3, 5}, 2);
  grpc::ByteBuffer out;
  ASSERT_TRUE(response.Serialize(message, &out).ok());
  EXPECT_TRUE(Flatten(out) == message.SerializeAsString());
}

class SmallMessageTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterActivationService(&methods_); }

  static ComputeContext Context(int64_t small_bytes) {
    ComputeContext context;
    context.max_message_bytes = int64_t{64} << 20;
    context.request_writable = true;
    context.small_message_bytes = small_bytes;
    return context;
  }

  // The method's answer against the body's on messages, the request's
  // bytes in two slices of its own memory; returns whether the request's
  // memory was written (computed in place).
  template <typename Request, typename Response>
  bool ExpectProtobufAnswer(absl::string_view rpc, const Request& request,
                            absl::Status (*handler)(const Request&,
                                                    const ComputeContext&,
                                                    Response*, TensorIo),
                            int64_t small_bytes) {
    const ComputeContext context = Context(small_bytes);
    Response expected;
    EXPECT_TRUE(handler(request, context, &expected, TensorIo{}).ok());
    const std::string bytes = request.SerializeAsString();
    OwnedRequest owned(bytes, {bytes.size() / 3});
    grpc::ByteBuffer response;
    int64_t elements = 0;
    const absl::Status status =
        methods_.CallUnary(absl::StrCat("/actsvc.v1.ActivationService/", rpc),
                           owned.buffer(), context, &elements, &response);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_TRUE(Flatten(response) == expected.SerializeAsString())
        << rpc << ": " << Flatten(response).size() << " bytes, expected "
        << expected.ByteSizeLong();
    return owned.Bytes() != bytes;
  }

  MethodTable methods_;
};

TEST_F(SmallMessageTest, TheServersLimitIsAFewKiB) {
  EXPECT_EQ(ComputeContext().small_message_bytes, kDefaultSmallMessageBytes);
  EXPECT_GE(kDefaultSmallMessageBytes, 4096 + 64) << "[1,1024] float32";
  EXPECT_LT(kDefaultSmallMessageBytes, int64_t{64} << 10);
}

// Either side of the limit, every dtype and encoding that computes in
// place: the same answer; the request's memory written only above it.
TEST_F(SmallMessageTest, EvaluateWholeUpToTheLimitInPlaceAbove) {
  for (const auto& [dtype, encoding] : testing::kVariants) {
    v1::EvaluateRequest request = Evaluate(v1::GELU, dtype, 500);
    if (encoding == Encoding::kTyped) {
      *request.mutable_input() =
          dtype == v1::FLOAT32
              ? MakeTensor<float>({1, 500}, testing::Values<float>(500, 3),
                                  Encoding::kTyped)
              : MakeTensor<double>({1, 500}, testing::Values<double>(500, 3),
                                   Encoding::kTyped);
    }
    const int64_t size = static_cast<int64_t>(request.ByteSizeLong());
    SCOPED_TRACE(absl::StrCat(v1::DataType_Name(dtype),
                              testing::Typed(encoding), ", ", size, " bytes"));
    EXPECT_FALSE(
        ExpectProtobufAnswer("Evaluate", request, &HandleEvaluate, size))
        << "whole: the request's memory is not written";
    EXPECT_TRUE(
        ExpectProtobufAnswer("Evaluate", request, &HandleEvaluate, size - 1))
        << "over the limit: computed in place";
  }
}

// Every RPC of the own API, small, under the server's limit: protobuf's
// answer, in both encodings, half dtypes included.
TEST_F(SmallMessageTest, EveryRpcAnswersAsProtobufWould) {
  const int64_t limit = kDefaultSmallMessageBytes;
  for (const v1::DataType dtype :
       {v1::FLOAT32, v1::FLOAT64, v1::FLOAT16, v1::BFLOAT16}) {
    for (const Encoding encoding : {Encoding::kRaw, Encoding::kTyped}) {
      SCOPED_TRACE(
          absl::StrCat(v1::DataType_Name(dtype), testing::Typed(encoding)));
      const auto tensor = [&](std::vector<int64_t> shape, double lo) {
        return Tensor(shape, dtype, encoding, lo);
      };
      v1::EvaluateRequest evaluate;
      *evaluate.mutable_spec() = SpecWithAlpha(v1::ELU);
      *evaluate.mutable_input() = tensor({4, 50}, -7);
      ExpectProtobufAnswer("Evaluate", evaluate, &HandleEvaluate, limit);

      v1::DerivativeRequest derivative;
      *derivative.mutable_spec() = SpecWithAlpha(v1::GELU_TANH);
      *derivative.mutable_input() = tensor({4, 50}, -5);
      derivative.set_order(2);
      ExpectProtobufAnswer("Derivative", derivative, &HandleDerivative, limit);
      derivative.clear_order();
      *derivative.mutable_upstream_grad() = tensor({4, 50}, -2);
      ExpectProtobufAnswer("Derivative", derivative, &HandleDerivative, limit);

      v1::JacobianRequest jacobian;
      *jacobian.mutable_spec() = SpecWithAlpha(v1::SOFTMAX);
      // [2,80]: a dense answer of 2 x 80 x 80 values, over the limit in
      // every dtype: it goes apart from a request parsed whole.
      *jacobian.mutable_input() = tensor({2, 80}, -3);
      ExpectProtobufAnswer("Jacobian", jacobian, &HandleJacobian, limit);
      jacobian.mutable_spec()->set_function(v1::SILU);
      ExpectProtobufAnswer("Jacobian", jacobian, &HandleJacobian, limit);

      v1::SoftmaxCrossEntropyRequest sce;
      *sce.mutable_logits() = tensor({3, 40}, -9);
      for (int i = 0; i < 3; ++i) sce.add_class_indices(i * 7);
      sce.set_return_probabilities(true);
      ExpectProtobufAnswer("SoftmaxCrossEntropy", sce,
                           &HandleSoftmaxCrossEntropy, limit);

      v1::AnalyzeRequest analyze;
      *analyze.mutable_spec() = SpecWithAlpha(v1::TANH);
      *analyze.mutable_input() = tensor({2, 30}, -4);
      ExpectProtobufAnswer("Analyze", analyze, &HandleAnalyze, limit);
    }
  }
}

}  // namespace
}  // namespace actsvc::server
