// What the in-place tests (inplace_test.cc, inplace_softmax_test.cc) share:
// requests of every dtype and encoding with values of every kind, and the
// fixture that runs a request however its bytes are cut and checks the
// answer against the protobuf-serialized one and where it was computed.
#ifndef ACTSVC_TESTS_SERVER_INPLACE_FIXTURE_H_
#define ACTSVC_TESTS_SERVER_INPLACE_FIXTURE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/method_table.h"
#include "server/v1/service.h"
#include "server/wire.h"
#include "tests/server/byte_buffers.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_util.h"

namespace actsvc::server::testing {

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

inline v1::Tensor RandomTensor(v1::DataType dtype,
                               const std::vector<int64_t>& shape,
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
inline std::string DataBytes(const v1::Tensor& tensor) {
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
inline v1::Tensor RandomTensor(v1::DataType dtype,
                               const std::vector<int64_t>& shape, uint32_t seed,
                               Encoding encoding) {
  if (encoding == Encoding::kRaw) return RandomTensor(dtype, shape, seed);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return dtype == v1::FLOAT64
             ? MakeTensor<double>(shape, Values<double>(n, seed), encoding)
             : MakeTensor<float>(shape, Values<float>(n, seed), encoding);
}

inline int ElementSize(v1::DataType dtype) {
  return dtype == v1::FLOAT64 ? 8 : dtype == v1::FLOAT32 ? 4 : 2;
}

inline constexpr v1::DataType kDTypes[] = {v1::FLOAT32, v1::FLOAT64,
                                           v1::FLOAT16, v1::BFLOAT16};
// Every dtype in raw_data, and the typed encodings whose values are the
// tensor's own bytes (float_data of FLOAT32, double_data of FLOAT64).
inline constexpr std::pair<v1::DataType, Encoding> kVariants[] = {
    {v1::FLOAT32, Encoding::kRaw},   {v1::FLOAT64, Encoding::kRaw},
    {v1::FLOAT16, Encoding::kRaw},   {v1::BFLOAT16, Encoding::kRaw},
    {v1::FLOAT32, Encoding::kTyped}, {v1::FLOAT64, Encoding::kTyped}};

inline const char* Typed(Encoding encoding) {
  return encoding == Encoding::kTyped ? " typed" : "";
}

inline constexpr v1::Function kElementwise[] = {
    v1::IDENTITY,   v1::SIGMOID, v1::TANH,      v1::RELU,
    v1::LEAKY_RELU, v1::GELU,    v1::GELU_TANH, v1::SILU,
    v1::SOFTPLUS,   v1::ELU,     v1::SELU};

// f, with an alpha of its own for leaky_relu and elu.
inline v1::FunctionSpec SpecWithAlpha(v1::Function f) {
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
inline const v1::Tensor& Result(const v1::JacobianResponse& response) {
  return response.jacobian();
}

class InPlaceTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterActivationService(&methods_); }

  static ComputeContext Context() {
    ComputeContext context;
    context.max_message_bytes = int64_t{64} << 20;
    context.request_writable = true;
    // Every value on the wire, however small the request: these tests are
    // of the wire path (small messages whole: SmallMessageTest).
    context.small_message_bytes = 0;
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

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_INPLACE_FIXTURE_H_
