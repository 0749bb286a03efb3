// The RPCs computed in place (ComputeContext::request_writable; wire.cc's
// "In place", compute.h's RunInPlace): for Evaluate, Derivative (orders 1
// and 2), the VJP and the diagonal Jacobian of the elementwise functions,
// Evaluate and the VJP of softmax and log_softmax (slab by slab), on
// raw_data in every dtype, and on the typed float_data of FLOAT32 and
// double_data of FLOAT64, however the request's bytes are cut into slices
// (inside values too, and in slices of one byte), the answer is exactly the
// protobuf-serialized response of the same RPC body, and the values were
// computed in the request's own memory and sent from there. The chunks of
// a large request over threads, the Stream, identity (which must not touch
// the values at all), and every case where in place does not apply (the
// request is then left as it was).
#include <grpcpp/grpcpp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/method_table.h"
#include "server/parallel.h"
#include "server/v1/service.h"
#include "server/wire.h"
#include "tests/server/byte_buffers.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using testing::Cuts;
using testing::Flatten;
using testing::FreeBlock;
using testing::InPlaceCuts;
using testing::MakeTensor;
using testing::OwnedRequest;
using testing::SentInPlace;

// Values of every kind: ordinary ones, and any bit pattern (NaNs with
// payloads, infinities, subnormals, signed zeros) every third.
template <typename T>
std::vector<T> Values(int64_t n, uint32_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> ordinary(-9, 9);
  std::vector<T> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    T& v = values[static_cast<size_t>(i)];
    if (i % 3 == 2) {
      const uint64_t bits = random();
      std::memcpy(&v, &bits, sizeof(T));
    } else if constexpr (kIsHalf<T>) {
      v = HalfFromDouble<T>(ordinary(random));
    } else {
      v = static_cast<T>(ordinary(random));
    }
  }
  return values;
}

v1::Tensor RandomTensor(v1::DataType dtype, const std::vector<int64_t>& shape,
                        uint32_t seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  switch (dtype) {
    case v1::FLOAT64:
      return MakeTensor<double>(shape, Values<double>(n, seed), Encoding::kRaw);
    case v1::FLOAT16:
      return MakeTensor<Float16>(shape, Values<Float16>(n, seed),
                                 Encoding::kRaw);
    case v1::BFLOAT16:
      return MakeTensor<BFloat16>(shape, Values<BFloat16>(n, seed),
                                  Encoding::kRaw);
    default:
      return MakeTensor<float>(shape, Values<float>(n, seed), Encoding::kRaw);
  }
}

// The bytes of a tensor's values as the wire carries them: raw_data, or
// the packed float_data or double_data.
std::string DataBytes(const v1::Tensor& tensor) {
  if (tensor.float_data_size() > 0) {
    return std::string(
        reinterpret_cast<const char*>(tensor.float_data().data()),
        tensor.float_data_size() * sizeof(float));
  }
  if (tensor.double_data_size() > 0) {
    return std::string(
        reinterpret_cast<const char*>(tensor.double_data().data()),
        tensor.double_data_size() * sizeof(double));
  }
  return tensor.raw_data();
}

// A tensor of `dtype` in `encoding` (float32 and float64 only when typed).
v1::Tensor RandomTensor(v1::DataType dtype, const std::vector<int64_t>& shape,
                        uint32_t seed, Encoding encoding) {
  if (encoding == Encoding::kRaw) return RandomTensor(dtype, shape, seed);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return dtype == v1::FLOAT64
             ? MakeTensor<double>(shape, Values<double>(n, seed), encoding)
             : MakeTensor<float>(shape, Values<float>(n, seed), encoding);
}

int ElementSize(v1::DataType dtype) {
  return dtype == v1::FLOAT64 ? 8 : dtype == v1::FLOAT32 ? 4 : 2;
}

constexpr v1::DataType kDTypes[] = {v1::FLOAT32, v1::FLOAT64, v1::FLOAT16,
                                    v1::BFLOAT16};
// Every dtype in raw_data, and the typed encodings whose values are the
// tensor's own bytes (float_data of FLOAT32, double_data of FLOAT64).
constexpr std::pair<v1::DataType, Encoding> kVariants[] = {
    {v1::FLOAT32, Encoding::kRaw},   {v1::FLOAT64, Encoding::kRaw},
    {v1::FLOAT16, Encoding::kRaw},   {v1::BFLOAT16, Encoding::kRaw},
    {v1::FLOAT32, Encoding::kTyped}, {v1::FLOAT64, Encoding::kTyped}};

const char* Typed(Encoding encoding) {
  return encoding == Encoding::kTyped ? " typed" : "";
}

constexpr v1::Function kElementwise[] = {
    v1::IDENTITY,   v1::SIGMOID, v1::TANH,      v1::RELU,
    v1::LEAKY_RELU, v1::GELU,    v1::GELU_TANH, v1::SILU,
    v1::SOFTPLUS,   v1::ELU,     v1::SELU};

v1::FunctionSpec Spec(v1::Function f) {
  v1::FunctionSpec spec;
  spec.set_function(f);
  if (f == v1::LEAKY_RELU) spec.set_alpha(0.2);
  if (f == v1::ELU) spec.set_alpha(0.7);
  return spec;
}

// The response's one tensor.
template <typename Response>
const v1::Tensor& Result(const Response& response) {
  return response.output();
}
const v1::Tensor& Result(const v1::JacobianResponse& response) {
  return response.jacobian();
}

class InPlaceTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterActivationService(&methods_); }

  static ComputeContext Context() {
    ComputeContext context;
    context.max_message_bytes = int64_t{64} << 20;
    context.request_writable = true;
    return context;
  }

  // Context() with large requests' chunks over `pool`'s threads.
  static ComputeContext ChunkedContext(ChunkPool* pool,
                                       int64_t chunk_elements) {
    ComputeContext context = Context();
    context.chunk_pool = pool;
    context.parallel_threshold_elements = 4096;
    context.chunk_elements = chunk_elements;
    return context;
  }

  // The request, cut each way into slices of its own memory, gets from the
  // method (computing in place) exactly the answer the body gives on
  // protobuf's messages; the request's memory then holds the answer's
  // values where one of `operands` (raw values in the request) lay, the
  // other bytes unchanged.
  template <typename Request, typename Response>
  void ExpectInPlace(absl::string_view rpc, const Request& request,
                     absl::Status (*handler)(const Request&,
                                             const ComputeContext&, Response*,
                                             TensorIo),
                     const std::vector<const v1::Tensor*>& operands,
                     const ComputeContext& context = Context(),
                     size_t step = 7) {
    Response expected;
    ASSERT_TRUE(handler(request, context, &expected, TensorIo{}).ok());
    const std::string expected_bytes = expected.SerializeAsString();
    const std::string result = DataBytes(Result(expected));
    const std::string bytes = request.SerializeAsString();
    const std::string first = DataBytes(*operands.front());
    const size_t at = bytes.find(first);
    ASSERT_NE(at, std::string::npos);
    const int element = ElementSize(operands.front()->dtype());
    for (const std::vector<size_t>& cuts :
         InPlaceCuts(bytes.size(), at, first.size(), element, step)) {
      SCOPED_TRACE(absl::StrCat(rpc, " cut in ", cuts.size() + 1));
      OwnedRequest owned(bytes, cuts);
      grpc::ByteBuffer response;
      int64_t elements = 0;
      const absl::Status status =
          methods_.CallUnary(absl::StrCat("/actsvc.v1.ActivationService/", rpc),
                             owned.buffer(), context, &elements, &response);
      ASSERT_TRUE(status.ok()) << status;
      EXPECT_TRUE(Flatten(response) == expected_bytes)
          << "the in-place answer differs from protobuf's";
      // Written where one operand lay; nothing else touched.
      const std::string now = owned.Bytes();
      bool found = false;
      for (const v1::Tensor* operand : operands) {
        const size_t from = bytes.find(DataBytes(*operand));
        std::string expect_now = bytes;
        expect_now.replace(from, result.size(), result);
        found = found || now == expect_now;
      }
      EXPECT_TRUE(found) << "the request's memory does not hold the answer";
      if (cuts.empty()) {
        EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
      }
    }
  }

  MethodTable methods_;
};

TEST_F(InPlaceTest, EvaluateAnswersAsProtobufWould) {
  for (const auto& [dtype, encoding] : kVariants) {
    for (v1::Function f : kElementwise) {
      SCOPED_TRACE(absl::StrCat(v1::DataType_Name(dtype), Typed(encoding), " ",
                                v1::Function_Name(f)));
      v1::EvaluateRequest request;
      *request.mutable_spec() = Spec(f);
      *request.mutable_input() = RandomTensor(dtype, {3, 37}, f, encoding);
      ExpectInPlace("Evaluate", request, &HandleEvaluate, {&request.input()},
                    Context(), f == v1::GELU ? 7 : 29);
    }
  }
}

// The diagonal Jacobian of every elementwise function; a dense one keeps
// the usual path (TakenOnlyWhereItApplies).
TEST_F(InPlaceTest, DiagonalJacobianAnswersAsProtobufWould) {
  for (const auto& [dtype, encoding] : kVariants) {
    for (v1::Function f : kElementwise) {
      SCOPED_TRACE(absl::StrCat(v1::DataType_Name(dtype), Typed(encoding), " ",
                                v1::Function_Name(f)));
      v1::JacobianRequest request;
      *request.mutable_spec() = Spec(f);
      *request.mutable_input() = RandomTensor(dtype, {3, 23}, f, encoding);
      ExpectInPlace("Jacobian", request, &HandleJacobian, {&request.input()},
                    Context(), 29);
    }
  }
}

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

TEST_F(InPlaceTest, DerivativesAnswerAsProtobufWould) {
  for (const auto& [dtype, encoding] : kVariants) {
    for (v1::Function f : kElementwise) {
      for (int order : {0, 1, 2}) {
        SCOPED_TRACE(absl::StrCat(v1::DataType_Name(dtype), Typed(encoding),
                                  " ", v1::Function_Name(f), " order ", order));
        v1::DerivativeRequest request;
        *request.mutable_spec() = Spec(f);
        request.set_order(order);
        *request.mutable_input() =
            RandomTensor(dtype, {37, 3}, f + order, encoding);
        ExpectInPlace("Derivative", request, &HandleDerivative,
                      {&request.input()}, Context(), f == v1::SIGMOID ? 7 : 31);
      }
    }
  }
}

TEST_F(InPlaceTest, VjpAnswersAsProtobufWould) {
  for (const auto& [dtype, encoding] : kVariants) {
    for (v1::Function f : kElementwise) {
      SCOPED_TRACE(absl::StrCat(v1::DataType_Name(dtype), Typed(encoding), " ",
                                v1::Function_Name(f)));
      v1::DerivativeRequest request;
      *request.mutable_spec() = Spec(f);
      *request.mutable_input() = RandomTensor(dtype, {4, 29}, f, encoding);
      *request.mutable_upstream_grad() =
          RandomTensor(dtype, {4, 29}, 100 + f, encoding);
      ExpectInPlace("Derivative", request, &HandleDerivative,
                    {&request.input(), &request.upstream_grad()}, Context(),
                    f == v1::GELU ? 7 : 31);
    }
  }
}

// The body with a WireRequest of its own: whether it computed in place
// (WireRequest::writable_fields), and the answer against protobuf's.
struct BodyOutcome {
  absl::Status status;
  std::string bytes;
  int written = 0;
};

template <typename Request, typename Response>
BodyOutcome RunBody(absl::Status (*handler)(const Request&,
                                            const ComputeContext&, Response*,
                                            TensorIo),
                    const grpc::ByteBuffer& bytes,
                    const ComputeContext& context) {
  WireRequest wire(TensorWireFields());
  Request parsed;
  EXPECT_TRUE(wire.Parse(bytes, &parsed));
  WireResponse out(TensorWireFields());
  const TensorData data(&wire);
  Response response;
  BodyOutcome outcome;
  outcome.status =
      handler(parsed, context, &response,
              {&data, &out, context.request_writable ? &wire : nullptr});
  outcome.written = wire.writable_fields();
  grpc::ByteBuffer serialized;
  if (outcome.status.ok()) {
    EXPECT_TRUE(out.Serialize(response, &serialized).ok());
    outcome.bytes = Flatten(serialized);
  }
  return outcome;
}

// In place where it applies, and only there: elsewhere the request is read
// as before, and left as it was.
TEST_F(InPlaceTest, TakenOnlyWhereItApplies) {
  struct Case {
    std::string name;
    v1::DerivativeRequest request;
    int written;
  };
  std::vector<Case> cases;
  v1::DerivativeRequest base;
  base.mutable_spec()->set_function(v1::TANH);
  *base.mutable_input() = RandomTensor(v1::FLOAT32, {2, 40}, 1);
  cases.push_back({"derivative", base, 1});
  cases.push_back({"vjp", base, 1});
  *cases.back().request.mutable_upstream_grad() =
      RandomTensor(v1::FLOAT32, {2, 40}, 2);
  // A typed upstream_grad: in place in x, g read from its values.
  cases.push_back({"vjp, typed g", cases.back().request, 1});
  cases.back().request.mutable_upstream_grad()->clear_raw_data();
  for (int i = 0; i < 80; ++i) {
    cases.back().request.mutable_upstream_grad()->add_float_data(0.5f * i);
  }
  // A typed FLOAT32 input: its float_data are its values' bytes, computed
  // in place too; the response is typed.
  cases.push_back({"typed x", base, 1});
  cases.back().request.mutable_input()->clear_raw_data();
  for (int i = 0; i < 80; ++i) {
    cases.back().request.mutable_input()->add_float_data(0.25f * i);
  }
  // float_data of FLOAT16 are float32 values rounded to the dtype: not the
  // tensor's own bytes, so not in place.
  cases.push_back({"typed float16 x", cases.back().request, 0});
  cases.back().request.mutable_input()->set_dtype(v1::FLOAT16);
  // Softmax's VJP, slab by slab; its derivative without upstream_grad is
  // not valid.
  cases.push_back({"softmax vjp", cases[1].request, 1});
  cases.back().request.mutable_spec()->set_function(v1::SOFTMAX);
  cases.push_back({"softmax derivative", base, 0});
  cases.back().request.mutable_spec()->set_function(v1::SOFTMAX);
  // Invalid: the usual path says why.
  cases.push_back({"short raw_data", base, 0});
  cases.back().request.mutable_input()->mutable_raw_data()->resize(300);
  cases.push_back({"order 3", base, 0});
  cases.back().request.set_order(3);
  cases.push_back({"vjp of order 2", cases[1].request, 0});
  cases.back().request.set_order(2);
  cases.push_back({"g of another shape", cases[1].request, 0});
  cases.back().request.mutable_upstream_grad()->set_shape(0, 40);
  cases.back().request.mutable_upstream_grad()->set_shape(1, 2);
  cases.push_back({"no function", base, 0});
  cases.back().request.clear_spec();
  cases.push_back({"over max_elements", base, 0});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ComputeContext context = Context();
    if (c.name == "over max_elements") context.max_elements = 10;
    v1::DerivativeResponse expected;
    const absl::Status expected_status =
        HandleDerivative(c.request, context, &expected, TensorIo{});
    const std::string bytes = c.request.SerializeAsString();
    for (const std::vector<size_t>& cuts :
         {std::vector<size_t>{}, std::vector<size_t>{bytes.size() / 2 + 1}}) {
      OwnedRequest owned(bytes, cuts);
      const BodyOutcome got =
          RunBody(&HandleDerivative, owned.buffer(), context);
      EXPECT_EQ(got.status, expected_status);
      EXPECT_EQ(got.written, c.written);
      if (expected_status.ok()) {
        EXPECT_TRUE(got.bytes == expected.SerializeAsString());
      }
      if (c.written == 0) {
        EXPECT_TRUE(owned.Bytes() == bytes) << "the request was written";
      }
      // Without request_writable, never.
      OwnedRequest kept(bytes, cuts);
      ComputeContext read_only = context;
      read_only.request_writable = false;
      const BodyOutcome not_written =
          RunBody(&HandleDerivative, kept.buffer(), read_only);
      EXPECT_EQ(not_written.written, 0);
      EXPECT_EQ(not_written.status, expected_status);
      EXPECT_TRUE(not_written.bytes == got.bytes);
      EXPECT_TRUE(kept.Bytes() == bytes);
    }
  }
  // Evaluate of softmax: in place (slab by slab). The Jacobian: its
  // diagonal in place (a response over the limit refused before any
  // write); a dense one (sigmoid's, or softmax's) not; answered as before.
  v1::EvaluateRequest softmax;
  softmax.mutable_spec()->set_function(v1::SOFTMAX);
  *softmax.mutable_input() = RandomTensor(v1::FLOAT64, {3, 9}, 3);
  OwnedRequest owned(softmax.SerializeAsString(), {});
  EXPECT_EQ(RunBody(&HandleEvaluate, owned.buffer(), Context()).written, 1);
  struct JacobianCase {
    v1::Function function;
    bool dense;
    int64_t max_message_bytes;
    int written;
  };
  for (const JacobianCase& c :
       {JacobianCase{v1::SIGMOID, false, int64_t{64} << 20, 1},
        JacobianCase{v1::SIGMOID, true, int64_t{64} << 20, 0},
        JacobianCase{v1::SOFTMAX, false, int64_t{64} << 20, 0},
        JacobianCase{v1::SIGMOID, false, 100, 1}}) {
    SCOPED_TRACE(absl::StrCat(v1::Function_Name(c.function), " dense ", c.dense,
                              " limit ", c.max_message_bytes));
    v1::JacobianRequest jacobian;
    jacobian.mutable_spec()->set_function(c.function);
    jacobian.set_dense(c.dense);
    *jacobian.mutable_input() = RandomTensor(v1::FLOAT32, {3, 9}, 4);
    ComputeContext context = Context();
    context.max_message_bytes = c.max_message_bytes;
    v1::JacobianResponse expected;
    const absl::Status expected_status =
        HandleJacobian(jacobian, context, &expected, TensorIo{});
    const std::string jacobian_bytes = jacobian.SerializeAsString();
    OwnedRequest jacobian_owned(jacobian_bytes, {});
    const BodyOutcome j =
        RunBody(&HandleJacobian, jacobian_owned.buffer(), context);
    EXPECT_EQ(j.status, expected_status);
    EXPECT_EQ(j.written, c.written);
    if (expected_status.ok()) {
      EXPECT_TRUE(j.bytes == expected.SerializeAsString());
    }
    if (c.written == 0 || !expected_status.ok()) {
      EXPECT_TRUE(jacobian_owned.Bytes() == jacobian_bytes);
    }
  }
}

// A response over the limit is refused as before, the request untouched.
TEST_F(InPlaceTest, TooLargeResponseIsRefusedBeforeAnyWrite) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::SIGMOID);
  *request.mutable_input() = RandomTensor(v1::FLOAT32, {1000}, 5);
  ComputeContext context = Context();
  context.max_message_bytes = 3000;
  v1::EvaluateResponse ignored;
  const absl::Status expected =
      HandleEvaluate(request, context, &ignored, TensorIo{});
  ASSERT_EQ(expected.code(), absl::StatusCode::kResourceExhausted);
  const std::string bytes = request.SerializeAsString();
  OwnedRequest owned(bytes, {bytes.size() / 3});
  const BodyOutcome got = RunBody(&HandleEvaluate, owned.buffer(), context);
  EXPECT_EQ(got.status, expected);
  EXPECT_TRUE(owned.Bytes() == bytes);
}

// The VJP writes into the operand in fewer pieces, either one, and sends
// its bytes from where they lie.
TEST_F(InPlaceTest, VjpWritesIntoEitherOperand) {
  v1::DerivativeRequest request;
  request.mutable_spec()->set_function(v1::SILU);
  *request.mutable_input() = RandomTensor(v1::FLOAT32, {500}, 6);
  *request.mutable_upstream_grad() = RandomTensor(v1::FLOAT32, {500}, 7);
  v1::DerivativeResponse expected;
  ASSERT_TRUE(HandleDerivative(request, Context(), &expected, TensorIo{}).ok());
  const std::string bytes = request.SerializeAsString();
  const std::string& result = expected.output().raw_data();
  const size_t x_at = bytes.find(request.input().raw_data());
  const size_t g_at = bytes.find(request.upstream_grad().raw_data());
  ASSERT_LT(x_at, g_at);
  for (bool into_g : {false, true}) {
    SCOPED_TRACE(into_g ? "into g" : "into x");
    // The other operand in slices of 100 bytes (some inside values).
    const size_t from = into_g ? x_at : g_at;
    std::vector<size_t> cuts = {from};
    for (size_t c = from + 101; c < from + 2000; c += 100) cuts.push_back(c);
    if (into_g) cuts.push_back(g_at);  // g in one slice of its own
    if (!into_g) {
      cuts.insert(cuts.begin(), x_at);
    }
    std::sort(cuts.begin(), cuts.end());
    OwnedRequest owned(bytes, cuts);
    grpc::ByteBuffer response;
    int64_t elements = 0;
    ASSERT_TRUE(methods_
                    .CallUnary("/actsvc.v1.ActivationService/Derivative",
                               owned.buffer(), Context(), &elements, &response)
                    .ok());
    EXPECT_TRUE(Flatten(response) == expected.SerializeAsString());
    std::string expect_now = bytes;
    expect_now.replace(into_g ? g_at : x_at, result.size(), result);
    EXPECT_TRUE(owned.Bytes() == expect_now)
        << "not written into " << (into_g ? "g" : "x") << " alone";
    EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
  }
}

// The transport's slices share blocks with other frames: the values are
// sent as sub-slices of the request's memory, and no byte outside them is
// written.
TEST_F(InPlaceTest, SendsSubSlicesOfASharedBlock) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::GELU);
  *request.mutable_input() = RandomTensor(v1::BFLOAT16, {2, 1000}, 8);
  const std::string message = request.SerializeAsString();
  // One block: 9 bytes before (a frame header), the message in frames of
  // 777 bytes with 9 more between them, 9 after.
  std::string block_bytes(9, '\x5a');
  std::vector<std::pair<size_t, size_t>> frames;  // in the block
  for (size_t at = 0; at < message.size(); at += 777) {
    const size_t n = std::min<size_t>(777, message.size() - at);
    frames.emplace_back(block_bytes.size(), n);
    block_bytes.append(message, at, n);
    block_bytes.append(9, '\x5a');
  }
  char* block = static_cast<char*>(std::malloc(block_bytes.size()));
  std::memcpy(block, block_bytes.data(), block_bytes.size());
  grpc::Slice whole(block, block_bytes.size(), &FreeBlock);
  std::vector<grpc::Slice> slices;
  for (const auto& [at, n] : frames) slices.push_back(whole.sub(at, at + n));
  grpc::ByteBuffer buffer(slices.data(), slices.size());

  v1::EvaluateResponse expected;
  ASSERT_TRUE(HandleEvaluate(request, Context(), &expected, TensorIo{}).ok());
  grpc::ByteBuffer response;
  int64_t elements = 0;
  ASSERT_TRUE(methods_
                  .CallUnary("/actsvc.v1.ActivationService/Evaluate", buffer,
                             Context(), &elements, &response)
                  .ok());
  EXPECT_TRUE(Flatten(response) == expected.SerializeAsString());
  // The response's slices of values lie in the block, where the request's
  // values were.
  const size_t values_at = message.find(request.input().raw_data());
  const size_t first_frame = values_at / 777;
  const char* values_in_block =
      block + frames[first_frame].first + values_at % 777;
  EXPECT_TRUE(SentInPlace(response, values_in_block));
  // The block holds the message with the values replaced, and the rest.
  std::string message_now = message;
  message_now.replace(values_at, expected.output().raw_data().size(),
                      expected.output().raw_data());
  std::string expect_block(9, '\x5a');
  for (size_t at = 0; at < message_now.size(); at += 777) {
    expect_block.append(message_now, at, 777);
    expect_block.append(9, '\x5a');
  }
  EXPECT_TRUE(std::string(block, block_bytes.size()) == expect_block);
}

// identity's f in place neither reads nor writes float32 or float64 values:
// they sit on a page the process may not touch, and the call still answers.
// (The half types' identity quiets signaling NaNs, as the usual path does:
// EvaluateAnswersAsProtobufWould.)
TEST_F(InPlaceTest, IdentityDoesNotTouchTheValues) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (v1::DataType dtype : {v1::FLOAT32, v1::FLOAT64}) {
    SCOPED_TRACE(v1::DataType_Name(dtype));
    v1::EvaluateRequest request;
    request.mutable_spec()->set_function(v1::IDENTITY);
    const int64_t n = static_cast<int64_t>(page) / ElementSize(dtype);
    *request.mutable_input() = RandomTensor(dtype, {n}, 9);
    const std::string bytes = request.SerializeAsString();
    const std::string& raw = request.input().raw_data();
    const size_t at = bytes.find(raw);
    ASSERT_EQ(at + raw.size(), bytes.size());  // the last field
    void* mapped = mmap(nullptr, page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mapped, MAP_FAILED);
    std::memcpy(mapped, raw.data(), raw.size());
    std::vector<grpc::Slice> slices;
    slices.emplace_back(bytes.data(), at);
    slices.emplace_back(
        grpc::Slice(mapped, raw.size(), grpc::Slice::STATIC_SLICE));
    const grpc::ByteBuffer buffer(slices.data(), slices.size());
    ASSERT_EQ(mprotect(mapped, page, PROT_NONE), 0);
    grpc::ByteBuffer response;
    int64_t elements = 0;
    const absl::Status status =
        methods_.CallUnary("/actsvc.v1.ActivationService/Evaluate", buffer,
                           Context(), &elements, &response);
    ASSERT_EQ(mprotect(mapped, page, PROT_READ), 0);
    EXPECT_TRUE(status.ok()) << status;
    v1::EvaluateResponse expected;
    ASSERT_TRUE(HandleEvaluate(request, Context(), &expected, TensorIo{}).ok());
    EXPECT_TRUE(Flatten(response) == expected.SerializeAsString());
    EXPECT_TRUE(SentInPlace(response, mapped));
    response.Clear();
    slices.clear();
    ASSERT_EQ(munmap(mapped, page), 0);
  }
}

// A request large enough to be chunked over threads: each chunk finds its
// own pieces, values straddling them included.
TEST_F(InPlaceTest, ParallelChunksGoOverThePieces) {
  ChunkPool pool(2);
  const ComputeContext context =
      ChunkedContext(&pool, 1000);  // chunks end inside pieces
  for (v1::DataType dtype : kDTypes) {
    SCOPED_TRACE(v1::DataType_Name(dtype));
    v1::DerivativeRequest request;
    request.mutable_spec()->set_function(v1::GELU_TANH);
    *request.mutable_input() = RandomTensor(dtype, {3, 10007}, 10);
    *request.mutable_upstream_grad() = RandomTensor(dtype, {3, 10007}, 11);
    v1::DerivativeResponse expected;
    ASSERT_TRUE(HandleDerivative(request, context, &expected, TensorIo{}).ok());
    v1::EvaluateRequest evaluate;
    evaluate.mutable_spec()->set_function(v1::SIGMOID);
    *evaluate.mutable_input() = request.input();
    v1::EvaluateResponse evaluated;
    ASSERT_TRUE(HandleEvaluate(evaluate, context, &evaluated, TensorIo{}).ok());
    // Pieces of 1 to 3,000 bytes, anywhere.
    for (uint32_t seed : {1u, 2u}) {
      std::mt19937 random(seed);
      for (const bool vjp : {false, true}) {
        const std::string bytes =
            vjp ? request.SerializeAsString() : evaluate.SerializeAsString();
        std::vector<size_t> cuts;
        for (size_t c = 1 + random() % 3000; c < bytes.size();
             c += 1 + random() % 3000) {
          cuts.push_back(c);
        }
        OwnedRequest owned(bytes, cuts);
        grpc::ByteBuffer response;
        int64_t elements = 0;
        ASSERT_TRUE(methods_
                        .CallUnary(vjp ? "/actsvc.v1.ActivationService/"
                                         "Derivative"
                                       : "/actsvc.v1.ActivationService/"
                                         "Evaluate",
                                   owned.buffer(), context, &elements,
                                   &response)
                        .ok());
        EXPECT_TRUE(Flatten(response) == (vjp ? expected.SerializeAsString()
                                              : evaluated.SerializeAsString()))
            << (vjp ? "vjp" : "sigmoid");
        EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
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

// Half values at odd addresses once the core's half tables are built (after
// 262,144 values of a function; the lookup reads and writes uint16_t): they
// go through the bounce buffer, and the answer is still protobuf's.
TEST_F(InPlaceTest, HalfTablesAtOddAddresses) {
  for (v1::DataType dtype : {v1::FLOAT16, v1::BFLOAT16}) {
    for (v1::Function f : {v1::SIGMOID, v1::SOFTPLUS}) {
      SCOPED_TRACE(
          absl::StrCat(v1::DataType_Name(dtype), " ", v1::Function_Name(f)));
      v1::EvaluateRequest request;
      *request.mutable_spec() = Spec(f);
      *request.mutable_input() = RandomTensor(dtype, {300000}, 13);
      v1::EvaluateResponse expected;
      ASSERT_TRUE(
          HandleEvaluate(request, Context(), &expected, TensorIo{}).ok());
      const std::string bytes = request.SerializeAsString();
      for (size_t first : {size_t{0}, size_t{1}}) {
        std::vector<size_t> cuts;  // pieces of 4,097 bytes from `first`
        for (size_t c = 11 + first; c < bytes.size(); c += 4097) {
          cuts.push_back(c);
        }
        OwnedRequest owned(bytes, cuts);
        grpc::ByteBuffer response;
        int64_t elements = 0;
        ASSERT_TRUE(methods_
                        .CallUnary("/actsvc.v1.ActivationService/Evaluate",
                                   owned.buffer(), Context(), &elements,
                                   &response)
                        .ok());
        EXPECT_TRUE(Flatten(response) == expected.SerializeAsString());
        EXPECT_TRUE(owned.Holds(response)) << "the values were copied";
      }
    }
  }
}

// The Stream's messages compute in place too.
TEST_F(InPlaceTest, StreamComputesInPlace) {
  const Method* stream = methods_.Find("/actsvc.v1.ActivationService/Stream");
  ASSERT_NE(stream, nullptr);
  v1::StreamRequest request;
  *request.mutable_derivative()->mutable_spec() = Spec(v1::ELU);
  *request.mutable_derivative()->mutable_input() =
      RandomTensor(v1::FLOAT64, {50}, 12);
  v1::StreamResponse expected;
  ASSERT_TRUE(
      HandleStreamRequest(request, Context(), &expected, TensorIo{}).ok());
  const std::string bytes = request.SerializeAsString();
  OwnedRequest owned(bytes, {bytes.size() - 13});
  grpc::ByteBuffer response;
  int64_t elements = 0;
  ASSERT_TRUE(
      stream->stream(owned.buffer(), 0, Context(), &elements, &response).ok());
  EXPECT_TRUE(Flatten(response) == expected.SerializeAsString());
  EXPECT_FALSE(owned.Bytes() == bytes) << "not computed in place";
}

// Over the network: calls of every dtype on one connection at once (their
// frames interleaved in the transport's read buffers) each get exactly the
// answer protobuf's body gives, computed in the request's memory.
TEST(InPlaceServerTest, ConcurrentCallsOnOneConnectionGetTheirOwnAnswers) {
  absl::StatusOr<std::unique_ptr<Server>> server = testing::StartServer(4);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::shared_ptr<grpc::Channel> channel =
      testing::ChannelTo((*server)->port());
  ComputeContext context;
  context.max_message_bytes = int64_t{4} << 20;
  constexpr int kThreads = 4;
  constexpr int kCalls = 6;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto stub = v1::ActivationService::NewStub(channel);
      for (int c = 0; c < kCalls; ++c) {
        const uint32_t seed = static_cast<uint32_t>(100 * t + c);
        const v1::DataType dtype = kDTypes[(t + c) % 4];
        const int64_t n = 1000 + 37 * seed + (c % 2) * 150000;
        v1::DerivativeRequest request;
        *request.mutable_spec() = Spec(kElementwise[seed % 11]);
        *request.mutable_input() = RandomTensor(dtype, {n}, seed);
        if (c % 3 == 2) {
          *request.mutable_upstream_grad() = RandomTensor(dtype, {n}, seed + 7);
        } else {
          request.set_order(1 + c % 2);
        }
        v1::DerivativeResponse expected;
        ASSERT_TRUE(
            HandleDerivative(request, context, &expected, TensorIo{}).ok());
        v1::DerivativeResponse got;
        const grpc::Status status =
            testing::Call(*stub, &testing::Stub::Derivative, request, &got);
        ASSERT_TRUE(status.ok()) << status.error_message();
        EXPECT_TRUE(got.SerializeAsString() == expected.SerializeAsString())
            << "thread " << t << " call " << c;

        v1::EvaluateRequest evaluate;
        *evaluate.mutable_spec() = Spec(kElementwise[(seed + 3) % 11]);
        *evaluate.mutable_input() = request.input();
        v1::EvaluateResponse evaluated;
        ASSERT_TRUE(
            HandleEvaluate(evaluate, context, &evaluated, TensorIo{}).ok());
        v1::EvaluateResponse got_evaluated;
        ASSERT_TRUE(testing::Call(*stub, &testing::Stub::Evaluate, evaluate,
                                  &got_evaluated)
                        .ok());
        EXPECT_TRUE(got_evaluated.SerializeAsString() ==
                    evaluated.SerializeAsString())
            << "thread " << t << " call " << c;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

}  // namespace
}  // namespace actsvc::server
