// ActivationService in-process on a loopback port (the server that
// service_test.cc starts for the binary): ListFunctions, health and
// reflection, the size limit, the Stream RPC, and malformed messages.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "core/activation.h"
#include "core/functions.h"
#include "core/softmax.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/byte_buffers.h"
#include "tests/server/calls.h"
#include "tests/server/server_test_util.h"
#include "tests/server/service_fixture.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::grpc::StatusCode;
using testing::Call;
using testing::CoreFunction;
using testing::EncodingOf;
using testing::ExpectStatus;
using testing::Flatten;
using testing::GoodEvaluate;
using ::testing::HasSubstr;
using testing::kMaxMessageBytes;
using testing::MakeTensor;
using testing::Ramp;
using testing::ServiceTest;
using testing::SetTimeout;
using testing::SharedServer;
using testing::Spec;
using testing::Stub;
using testing::UnaryCall;
using testing::ValuesOf;

// ---------------------------------------------------------------------------
// ListFunctions and health.

TEST_F(ServiceTest, ListFunctionsReportsCoreMetadata) {
  v1::ListFunctionsResponse response;
  ASSERT_TRUE(
      Call(*stub_, &Stub::ListFunctions, v1::ListFunctionsRequest(), &response)
          .ok());
  const std::vector<FunctionInfo>& core = actsvc::AllFunctions();
  ASSERT_EQ(response.functions_size(), 13);
  ASSERT_EQ(core.size(), 13u);
  for (int i = 0; i < 13; ++i) {
    const v1::FunctionInfo& got = response.functions(i);
    const FunctionInfo& want = core[i];
    EXPECT_EQ(got.function(), static_cast<int>(want.function));
    EXPECT_EQ(got.function(), i + 1);
    EXPECT_EQ(got.name(), want.name);
    EXPECT_EQ(got.elementwise(), want.elementwise);
    EXPECT_EQ(got.aliases_size(), static_cast<int>(want.aliases.size()));
    ASSERT_EQ(got.parameters_size(), static_cast<int>(want.parameters.size()));
    for (int p = 0; p < got.parameters_size(); ++p) {
      EXPECT_EQ(got.parameters(p).name(), want.parameters[p].name);
      EXPECT_EQ(got.parameters(p).default_value(),
                want.parameters[p].default_value);
      EXPECT_EQ(got.parameters(p).valid_range(),
                want.parameters[p].valid_range);
    }
    EXPECT_EQ(got.formula(), want.formula);
    EXPECT_EQ(got.derivative_formula(), want.derivative_formula);
    EXPECT_EQ(got.second_derivative_formula(), want.second_derivative_formula);
    EXPECT_EQ(got.stable_form(), want.stable_form);
    EXPECT_EQ(got.output_range(), want.output_range);
    EXPECT_EQ(got.derivative_range(), want.derivative_range);
    EXPECT_EQ(got.saturates(), want.saturates);
    EXPECT_EQ(got.notes(), want.notes);
  }
  const v1::FunctionInfo& gelu = response.functions(v1::GELU - 1);
  EXPECT_EQ(gelu.name(), "gelu");
  // SPEC §1 erratum 3: GELU' dips below 0.
  EXPECT_THAT(gelu.derivative_range(), HasSubstr("-0.1289"));
  const v1::FunctionInfo& leaky = response.functions(v1::LEAKY_RELU - 1);
  ASSERT_EQ(leaky.parameters_size(), 1);
  EXPECT_EQ(leaky.parameters(0).name(), "alpha");
  EXPECT_EQ(leaky.parameters(0).default_value(), 0.01);
  EXPECT_FALSE(response.functions(v1::SOFTMAX - 1).elementwise());
}

TEST_F(ServiceTest, HealthReportsServing) {
  auto health = grpc::health::v1::Health::NewStub(SharedServer::channel_);
  for (const std::string service : {"", "actsvc.v1.ActivationService"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

// That reflection resolves every service it lists is
// e2e.ReflectionE2eTest: this binary links health's descriptor through its
// Health stub, whatever the server itself does.
TEST_F(ServiceTest, ReflectionListsTheServices) {
  // The reflection protos are not installed, so the call is made on raw
  // bytes: ServerReflectionRequest{list_services: ""} is field 7, length 0.
  const grpc::internal::RpcMethod method(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      stream(grpc::internal::ClientReaderWriterFactory<
             grpc::ByteBuffer, grpc::ByteBuffer>::Create(SharedServer::channel_
                                                             .get(),
                                                         method, &context));
  grpc::Slice slice(std::string("\x3a\x00", 2));
  ASSERT_TRUE(stream->Write(grpc::ByteBuffer(&slice, 1)));
  stream->WritesDone();
  grpc::ByteBuffer response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_THAT(bytes, HasSubstr("actsvc.v1.ActivationService"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  EXPECT_TRUE(stream->Finish().ok());
}

// ---------------------------------------------------------------------------
// SPEC §3 over the wire: what only a server can show (the catalogue of bad
// fields is in v1_codec_test.cc, against the RPC bodies).

TEST_F(ServiceTest, OversizedRequest) {
  v1::EvaluateRequest request = GoodEvaluate();
  const int64_t n = kMaxMessageBytes / 4 + 1000;
  *request.mutable_input() =
      MakeTensor<float>({n}, std::vector<float>(n, 1.0f), Encoding::kRaw);
  v1::EvaluateResponse response;
  // Our words, not gRPC's "Received message larger than max".
  ExpectStatus(Evaluate(request, &response), StatusCode::RESOURCE_EXHAUSTED,
               {absl::StrCat("over the message size limit of ",
                             kMaxMessageBytes, " bytes (--max_message_mb)")});
  // And the server keeps serving.
  EXPECT_TRUE(Evaluate(GoodEvaluate(), &response).ok());
}

// ---------------------------------------------------------------------------
// Stream.

TEST_F(ServiceTest, OversizedStreamMessageEndsTheStream) {
  const int64_t n = kMaxMessageBytes / 4 + 1000;
  v1::StreamRequest big;
  *big.mutable_evaluate()->mutable_spec() = Spec(v1::RELU);
  *big.mutable_evaluate()->mutable_input() =
      MakeTensor<float>({n}, std::vector<float>(n, 1.0f), Encoding::kRaw);
  v1::StreamRequest small = big;
  *small.mutable_evaluate()->mutable_input() =
      MakeTensor<float>({2}, {-1.0f, 1.0f}, Encoding::kRaw);
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  stream->Write(small);
  stream->Write(big);  // may fail once the server has ended the call
  stream->WritesDone();
  v1::StreamResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(ValuesOf<float>(response.evaluate().output()),
            (std::vector<float>{0.0f, 1.0f}));
  EXPECT_FALSE(stream->Read(&response));
  ExpectStatus(stream->Finish(), StatusCode::RESOURCE_EXHAUSTED,
               {"--max_message_mb"});
}

v1::StreamRequest StreamEvaluate(v1::Function f, const std::vector<float>& x) {
  v1::StreamRequest request;
  *request.mutable_evaluate()->mutable_spec() = Spec(f);
  *request.mutable_evaluate()->mutable_input() =
      MakeTensor<float>({static_cast<int64_t>(x.size())}, x, Encoding::kRaw);
  return request;
}

v1::StreamRequest StreamDerivative(v1::Function f,
                                   const std::vector<float>& x) {
  v1::StreamRequest request;
  *request.mutable_derivative()->mutable_spec() = Spec(f);
  *request.mutable_derivative()->mutable_input() =
      MakeTensor<float>({static_cast<int64_t>(x.size())}, x, Encoding::kTyped);
  return request;
}

std::vector<float> CoreValues(const v1::StreamRequest& request) {
  const bool evaluate = request.has_evaluate();
  const v1::Tensor& input =
      evaluate ? request.evaluate().input() : request.derivative().input();
  const Function f =
      CoreFunction(evaluate ? request.evaluate().spec().function()
                            : request.derivative().spec().function());
  const double alpha = TakesAlpha(f) ? DefaultAlpha(f) : 0.0;
  const std::vector<float> x = ValuesOf<float>(input);
  std::vector<float> y(x.size());
  if (evaluate) {
    actsvc::Evaluate<float>(f, alpha, x, absl::MakeSpan(y));
  } else {
    actsvc::Derivative<float>(f, alpha, 1, x, absl::MakeSpan(y));
  }
  return y;
}

TEST_F(ServiceTest, StreamAnswersInOrder) {
  std::vector<v1::StreamRequest> requests;
  for (int i = 0; i < 20; ++i) {
    const std::vector<float> x = Ramp<float>(1 + i * 150, -i, i);
    const v1::Function f = static_cast<v1::Function>(1 + i % 11);
    requests.push_back(i % 2 ? StreamDerivative(f, x) : StreamEvaluate(f, x));
  }
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  for (const v1::StreamRequest& request : requests) {
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  v1::StreamResponse response;
  for (const v1::StreamRequest& request : requests) {
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_EQ(response.has_evaluate(), request.has_evaluate());
    const v1::Tensor& out = response.has_evaluate()
                                ? response.evaluate().output()
                                : response.derivative().output();
    EXPECT_EQ(ValuesOf<float>(out), CoreValues(request));
    EXPECT_EQ(EncodingOf(out),
              request.has_evaluate() ? Encoding::kRaw : Encoding::kTyped);
  }
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServiceTest, BadRequestEndsTheStreamAfterEarlierResponses) {
  std::vector<v1::StreamRequest> requests = {
      StreamEvaluate(v1::GELU, Ramp<float>(10)),
      StreamDerivative(v1::SIGMOID, Ramp<float>(20)),
      StreamEvaluate(v1::SIGMOID, Ramp<float>(5)),
      StreamEvaluate(v1::TANH, Ramp<float>(5)),
  };
  requests[2].mutable_evaluate()->mutable_spec()->set_alpha(0.5);
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  for (const v1::StreamRequest& request : requests) {
    stream->Write(request);  // may fail once the server has ended the call
  }
  stream->WritesDone();
  v1::StreamResponse response;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(stream->Read(&response)) << i;
    const v1::Tensor& out = response.has_evaluate()
                                ? response.evaluate().output()
                                : response.derivative().output();
    EXPECT_EQ(ValuesOf<float>(out), CoreValues(requests[i]));
  }
  EXPECT_FALSE(stream->Read(&response));
  ExpectStatus(stream->Finish(), StatusCode::INVALID_ARGUMENT,
               {"stream request #2", "spec.alpha"});
}

TEST_F(ServiceTest, EmptyStreamRequest) {
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  stream->Write(v1::StreamRequest());
  stream->WritesDone();
  v1::StreamResponse response;
  EXPECT_FALSE(stream->Read(&response));
  ExpectStatus(stream->Finish(), StatusCode::INVALID_ARGUMENT,
               {"stream request #0", "evaluate or derivative"});
}

// Bytes no message parses from: field 1, length-delimited, whose length
// runs past the end.
const char kMalformed[] = "\x0a\xff\xff\xff\xff\x0f garbage";

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// A Stream call carrying `messages` as they are, then a half-close; counts
// the responses. (bench/soak.sh found that gRPC's typed stream ended such a
// call OK, as if the client had half-closed at the malformed message.)
grpc::Status RawStream(const std::vector<std::string>& messages,
                       int* responses) {
  grpc::GenericStub stub(SharedServer::channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  SetTimeout(&context, std::chrono::seconds(10));
  // One operation at a time, so the queue returns it next.
  auto wait = [&cq] {
    void* tag;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    return ok;
  };
  auto call =
      stub.PrepareCall(&context, "/actsvc.v1.ActivationService/Stream", &cq);
  call->StartCall(nullptr);
  EXPECT_TRUE(wait());
  bool writing = true;
  for (const std::string& message : messages) {
    if (!writing) break;
    call->Write(Buffer(message), nullptr);
    writing = wait();  // false once the server has ended the call
  }
  if (writing) {
    call->WritesDone(nullptr);
    wait();
  }
  grpc::ByteBuffer response;
  *responses = 0;
  while (true) {
    call->Read(&response, nullptr);
    if (!wait()) break;
    ++*responses;
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  wait();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(ServiceTest, MalformedStreamMessageIsInvalidArgument) {
  const std::string good =
      StreamEvaluate(v1::GELU, Ramp<float>(10)).SerializeAsString();
  int responses = 0;
  ExpectStatus(RawStream({good, kMalformed, good}, &responses),
               StatusCode::INVALID_ARGUMENT,
               {"stream request #1", "not a valid actsvc.v1.StreamRequest"});
  EXPECT_EQ(responses, 1);
  // Well-formed messages still go through the same path.
  ASSERT_TRUE(RawStream({good, good}, &responses).ok());
  EXPECT_EQ(responses, 2);
}

TEST_F(ServiceTest, MalformedListFunctionsRequestIsInvalidArgument) {
  grpc::GenericStub stub(SharedServer::channel_);
  for (const std::string& bytes : {std::string(kMalformed), std::string()}) {
    grpc::ByteBuffer response;
    const grpc::Status status = UnaryCall(
        stub, "/actsvc.v1.ActivationService/ListFunctions", bytes, &response);
    if (bytes.empty()) {
      // The empty message is a valid ListFunctionsRequest.
      ASSERT_TRUE(status.ok()) << status.error_message();
      v1::ListFunctionsResponse functions;
      ASSERT_TRUE(functions.ParseFromString(Flatten(response)));
      EXPECT_EQ(functions.functions_size(), 13);
    } else {
      ExpectStatus(status, StatusCode::INVALID_ARGUMENT,
                   {"not a valid actsvc.v1.ListFunctionsRequest"});
    }
  }
}

TEST_F(ServiceTest, GoodCallsAreAnsweredWhileBadOnesArrive) {
  const std::vector<float> x = Ramp<float>(4000);
  std::vector<float> expected(x.size());
  actsvc::Evaluate<float>(Function::kGelu, 0, x, absl::MakeSpan(expected));
  std::atomic<int> good_ok{0}, bad_rejected{0};
  std::thread good([&] {
    auto stub = v1::ActivationService::NewStub(SharedServer::channel_);
    v1::EvaluateRequest request = GoodEvaluate(v1::GELU);
    *request.mutable_input() = MakeTensor<float>({4000}, x, Encoding::kRaw);
    for (int i = 0; i < 40; ++i) {
      v1::EvaluateResponse response;
      if (Call(*stub, &Stub::Evaluate, request, &response).ok() &&
          ValuesOf<float>(response.output()) == expected) {
        ++good_ok;
      }
    }
  });
  std::thread bad([&] {
    auto stub = v1::ActivationService::NewStub(SharedServer::channel_);
    for (int i = 0; i < 40; ++i) {
      v1::EvaluateRequest request = GoodEvaluate();
      request.mutable_input()->mutable_raw_data()->resize(i % 15);
      v1::EvaluateResponse response;
      if (Call(*stub, &Stub::Evaluate, request, &response).error_code() ==
          StatusCode::INVALID_ARGUMENT) {
        ++bad_rejected;
      }
    }
  });
  good.join();
  bad.join();
  EXPECT_EQ(good_ok, 40);
  EXPECT_EQ(bad_rejected, 40);
}

}  // namespace
}  // namespace actsvc::server
