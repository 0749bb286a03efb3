// The RPCs computed in place (ComputeContext::request_writable; wire.cc's
// "In place", compute.h's RunInPlace): for Evaluate, Derivative (orders 1
// and 2), the VJP and the diagonal Jacobian of the elementwise functions,
// Evaluate and the VJP of softmax and log_softmax (slab by slab:
// inplace_softmax_test.cc), on
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
#include "tests/server/inplace_fixture.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using testing::BodyOutcome;
using testing::Cuts;
using testing::DataBytes;
using testing::ElementSize;
using testing::Flatten;
using testing::FreeBlock;
using testing::InPlaceCuts;
using testing::InPlaceTest;
using testing::kDTypes;
using testing::kElementwise;
using testing::kVariants;
using testing::MakeTensor;
using testing::OwnedRequest;
using testing::RandomTensor;
using testing::RunBody;
using testing::SentInPlace;
using testing::SpecWithAlpha;
using testing::Typed;

TEST_F(InPlaceTest, EvaluateAnswersAsProtobufWould) {
  for (const auto& [dtype, encoding] : kVariants) {
    for (v1::Function f : kElementwise) {
      SCOPED_TRACE(absl::StrCat(v1::DataType_Name(dtype), Typed(encoding), " ",
                                v1::Function_Name(f)));
      v1::EvaluateRequest request;
      *request.mutable_spec() = SpecWithAlpha(f);
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
      *request.mutable_spec() = SpecWithAlpha(f);
      *request.mutable_input() = RandomTensor(dtype, {3, 23}, f, encoding);
      ExpectInPlace("Jacobian", request, &HandleJacobian, {&request.input()},
                    Context(), 29);
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
        *request.mutable_spec() = SpecWithAlpha(f);
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
      *request.mutable_spec() = SpecWithAlpha(f);
      *request.mutable_input() = RandomTensor(dtype, {4, 29}, f, encoding);
      *request.mutable_upstream_grad() =
          RandomTensor(dtype, {4, 29}, 100 + f, encoding);
      ExpectInPlace("Derivative", request, &HandleDerivative,
                    {&request.input(), &request.upstream_grad()}, Context(),
                    f == v1::GELU ? 7 : 31);
    }
  }
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

// Half values at odd addresses once the core's half tables are built (after
// 262,144 values of a function; the lookup reads and writes uint16_t): they
// go through the bounce buffer, and the answer is still protobuf's.
TEST_F(InPlaceTest, HalfTablesAtOddAddresses) {
  for (v1::DataType dtype : {v1::FLOAT16, v1::BFLOAT16}) {
    for (v1::Function f : {v1::SIGMOID, v1::SOFTPLUS}) {
      SCOPED_TRACE(
          absl::StrCat(v1::DataType_Name(dtype), " ", v1::Function_Name(f)));
      v1::EvaluateRequest request;
      *request.mutable_spec() = SpecWithAlpha(f);
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
  *request.mutable_derivative()->mutable_spec() = SpecWithAlpha(v1::ELU);
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
        *request.mutable_spec() = SpecWithAlpha(kElementwise[seed % 11]);
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
        *evaluate.mutable_spec() = SpecWithAlpha(kElementwise[(seed + 3) % 11]);
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
