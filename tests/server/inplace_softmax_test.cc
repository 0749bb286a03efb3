// softmax and log_softmax computed in place, slab by slab (compute.h's
// RunInPlace): Evaluate and the VJP along any axis, in every dtype and
// encoding, however the request's bytes are cut, answer exactly as the
// protobuf-serialized response of the same RPC body; rows chunked over
// threads, and slabs of no values.
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/parallel.h"
#include "server/v1/service.h"
#include "tests/server/byte_buffers.h"
#include "tests/server/inplace_fixture.h"

namespace actsvc::server {
namespace {

using testing::BodyOutcome;
using testing::DataBytes;
using testing::ElementSize;
using testing::Flatten;
using testing::InPlaceTest;
using testing::kDTypes;
using testing::kVariants;
using testing::OwnedRequest;
using testing::RandomTensor;
using testing::RunBody;
using testing::Typed;

// softmax and log_softmax along any axis, f and the VJP, slab by slab: a
// slab whole in one piece computed there, one cut anywhere (mid-value too)
// through a buffer.
struct SoftmaxLayout {
  std::vector<int64_t> shape;
  std::optional<int> axis;
};
constexpr v1::Function kSoftmaxes[] = {v1::SOFTMAX, v1::LOG_SOFTMAX};
const SoftmaxLayout kSoftmaxLayouts[] = {
    {{3, 37}, std::nullopt}, {{4, 5, 6}, 1}, {{2, 50}, 0}, {{1, 64}, -1}};

std::string Describe(v1::DataType dtype, Encoding encoding, v1::Function f,
                     const SoftmaxLayout& layout) {
  return absl::StrCat(v1::DataType_Name(dtype), Typed(encoding), " ",
                      v1::Function_Name(f), " ", layout.shape.size(),
                      "-d axis ", layout.axis.value_or(-1));
}

v1::FunctionSpec SoftmaxSpec(v1::Function f, const SoftmaxLayout& layout) {
  v1::FunctionSpec spec;
  spec.set_function(f);
  if (layout.axis) spec.set_axis(*layout.axis);
  return spec;
}

TEST_F(InPlaceTest, SoftmaxAnswersAsProtobufWould) {
  for (const auto& [dtype, encoding] : kVariants) {
    for (v1::Function f : kSoftmaxes) {
      for (const SoftmaxLayout& layout : kSoftmaxLayouts) {
        SCOPED_TRACE(Describe(dtype, encoding, f, layout));
        v1::EvaluateRequest request;
        *request.mutable_spec() = SoftmaxSpec(f, layout);
        *request.mutable_input() =
            RandomTensor(dtype, layout.shape, f, encoding);
        ExpectInPlace("Evaluate", request, &HandleEvaluate, {&request.input()},
                      Context(), 13);
      }
    }
  }
}

TEST_F(InPlaceTest, SoftmaxVjpAnswersAsProtobufWould) {
  for (const auto& [dtype, encoding] : kVariants) {
    for (v1::Function f : kSoftmaxes) {
      for (const SoftmaxLayout& layout : kSoftmaxLayouts) {
        SCOPED_TRACE(Describe(dtype, encoding, f, layout));
        v1::DerivativeRequest request;
        *request.mutable_spec() = SoftmaxSpec(f, layout);
        *request.mutable_input() =
            RandomTensor(dtype, layout.shape, f, encoding);
        *request.mutable_upstream_grad() =
            RandomTensor(dtype, layout.shape, 100 + f, encoding);
        ExpectInPlace("Derivative", request, &HandleDerivative,
                      {&request.input(), &request.upstream_grad()}, Context(),
                      17);
      }
    }
  }
}

// A tensor with no values whose raw_data is on the wire all the same (an
// empty bytes field, which protobuf itself never writes): softmax's slabs of
// no values, in place, answer as protobuf's message would.
TEST_F(InPlaceTest, SoftmaxOfNoValuesWithAnEmptyRawDataField) {
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{3, 0}, std::vector<int64_t>{0, 4}}) {
    v1::EvaluateRequest request;
    request.mutable_spec()->set_function(v1::SOFTMAX);
    request.mutable_spec()->set_axis(0);
    request.mutable_input()->set_dtype(v1::FLOAT32);
    for (int64_t d : shape) request.mutable_input()->add_shape(d);
    v1::EvaluateResponse expected;
    ASSERT_TRUE(HandleEvaluate(request, Context(), &expected, TensorIo{}).ok());
    // input { ... raw_data: "" }, by hand: field 2 around the tensor's
    // bytes and field 3 of length 0.
    const std::string tensor =
        request.input().SerializeAsString() + std::string("\x1a\x00", 2);
    v1::EvaluateRequest spec_only = request;
    spec_only.clear_input();
    const std::string bytes = spec_only.SerializeAsString() + "\x12" +
                              static_cast<char>(tensor.size()) + tensor;
    OwnedRequest owned(bytes, {});
    const BodyOutcome got = RunBody(&HandleEvaluate, owned.buffer(), Context());
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(got.written, 1);
    v1::EvaluateResponse response;
    ASSERT_TRUE(response.ParseFromString(got.bytes));
    EXPECT_EQ(response.output().raw_data(), "");
    EXPECT_EQ(response.output().shape_size(), 2);
  }
}

// Softmax rows as chunks over threads, each row in many pieces or one.
TEST_F(InPlaceTest, SoftmaxRowsGoOverThreadsAndPieces) {
  ChunkPool pool(2);
  const ComputeContext context =
      ChunkedContext(&pool, 3000);  // one row per chunk
  for (v1::DataType dtype : kDTypes) {
    SCOPED_TRACE(v1::DataType_Name(dtype));
    v1::EvaluateRequest request;
    request.mutable_spec()->set_function(v1::LOG_SOFTMAX);
    *request.mutable_input() = RandomTensor(dtype, {5, 3001}, 12);
    v1::EvaluateResponse expected;
    ASSERT_TRUE(HandleEvaluate(request, context, &expected, TensorIo{}).ok());
    const std::string bytes = request.SerializeAsString();
    // One piece, rows of many pieces, and rows of one piece each.
    const size_t row = 3001 * static_cast<size_t>(ElementSize(dtype));
    const size_t at = bytes.find(DataBytes(request.input()));
    std::vector<size_t> rows;
    for (size_t r = 1; r < 5; ++r) rows.push_back(at + r * row);
    std::vector<size_t> small;
    for (size_t c = 1; c < bytes.size(); c += 997) small.push_back(c);
    for (const std::vector<size_t>& cuts :
         {std::vector<size_t>{}, small, rows}) {
      OwnedRequest owned(bytes, cuts);
      grpc::ByteBuffer response;
      int64_t elements = 0;
      ASSERT_TRUE(methods_
                      .CallUnary("/actsvc.v1.ActivationService/Evaluate",
                                 owned.buffer(), context, &elements, &response)
                      .ok());
      EXPECT_TRUE(Flatten(response) == expected.SerializeAsString())
          << cuts.size() + 1 << " pieces";
      EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
    }
  }
}

}  // namespace
}  // namespace actsvc::server
