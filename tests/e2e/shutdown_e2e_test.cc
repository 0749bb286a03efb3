// Graceful shutdown of the real server: SIGTERM while large calls are in
// flight lets them finish, refuses new calls, and exits 0 (SPEC §3).
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "gtest/gtest.h"
#include "tests/e2e/processes.h"

namespace actsvc::e2e {
namespace {

namespace v1 = ::actsvc::v1;

// 16M float32 = 64 MiB per tensor: long enough on the wire and in the
// kernel (page faults on fresh buffers dominate) to still be running when
// the signal lands.
constexpr int64_t kElements = int64_t{16} << 20;
constexpr int64_t kJacobianRows = 16;
constexpr int64_t kJacobianCols = 1024;  // 16 x 1024 x 1024 = 16M outputs
constexpr int kConcurrentJacobians = 2;

std::unique_ptr<ServerProcess> StartServer(
    const std::vector<std::string>& flags) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(ACTSVC_SERVER_PATH, flags);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

float InputAt(int64_t i) { return static_cast<float>(i % 2001 - 1000) / 100; }

v1::Tensor Float32Tensor(std::vector<int64_t> shape, int64_t n) {
  v1::Tensor tensor;
  tensor.mutable_shape()->Add(shape.begin(), shape.end());
  tensor.set_dtype(v1::FLOAT32);
  std::string* raw = tensor.mutable_raw_data();
  raw->resize(n * sizeof(float));
  for (int64_t i = 0; i < n; ++i) {
    const float x = InputAt(i);
    std::memcpy(raw->data() + i * sizeof(float), &x, sizeof(float));
  }
  return tensor;
}

double Gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

float Float32At(const std::string& raw, int64_t i) {
  float y;
  std::memcpy(&y, raw.data() + i * sizeof(float), sizeof(float));
  return y;
}

v1::StreamRequest GeluStreamRequest(v1::Tensor input) {
  v1::StreamRequest request;
  request.mutable_evaluate()->mutable_spec()->set_function(v1::GELU);
  *request.mutable_evaluate()->mutable_input() = std::move(input);
  return request;
}

struct CallResult {
  grpc::Status status;
  v1::JacobianResponse response;
  absl::Time done;
};

using Stub = v1::ActivationService::Stub;
using GeluStream =
    grpc::ClientReaderWriter<v1::StreamRequest, v1::StreamResponse>;

// A ListFunctions call with a 5 s deadline.
grpc::Status ListFunctions(Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::ListFunctionsResponse list;
  return stub.ListFunctions(&context, v1::ListFunctionsRequest(), &list);
}

// Has a one-element gelu answered on the stream, so the server has taken
// the call, then sends the 16M-element one.
void SendLargeStreamRequest(GeluStream& stream) {
  ASSERT_TRUE(stream.Write(GeluStreamRequest(Float32Tensor({1}, 1))));
  v1::StreamResponse response;
  ASSERT_TRUE(stream.Read(&response)) << stream.Finish().error_message();
  ASSERT_TRUE(
      stream.Write(GeluStreamRequest(Float32Tensor({kElements}, kElements))));
}

v1::JacobianRequest DenseGeluJacobianRequest() {
  v1::JacobianRequest request;
  request.mutable_spec()->set_function(v1::GELU);
  request.set_dense(true);
  *request.mutable_input() = Float32Tensor({kJacobianRows, kJacobianCols},
                                           kJacobianRows * kJacobianCols);
  return request;
}

// One thread a result, each calling Jacobian with `request` (which must
// outlive the threads) and noting when it returned.
std::vector<std::thread> StartJacobians(Stub& stub,
                                        const v1::JacobianRequest& request,
                                        std::vector<CallResult>& results) {
  std::vector<std::thread> calls;
  calls.reserve(results.size());
  for (CallResult& result : results) {
    calls.emplace_back([&stub, &request, &result] {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
      result.status = stub.Jacobian(&context, request, &result.response);
      result.done = absl::Now();
    });
  }
  return calls;
}

// The stream's large answer, in full and correct, then the stream's end.
void CheckLargeStreamAnswer(GeluStream& stream, const ServerProcess& server) {
  stream.WritesDone();
  v1::StreamResponse response;
  ASSERT_TRUE(stream.Read(&response))
      << stream.Finish().error_message() << "\nserver log:\n"
      << server.Log();
  ASSERT_TRUE(response.has_evaluate());
  const v1::Tensor& output = response.evaluate().output();
  ASSERT_EQ(output.shape_size(), 1);
  EXPECT_EQ(output.shape(0), kElements);
  ASSERT_EQ(output.raw_data().size(), kElements * sizeof(float));
  for (int64_t i : {int64_t{0}, int64_t{1000}, int64_t{1234}, kElements - 1}) {
    const double want = Gelu(InputAt(i));
    EXPECT_NEAR(Float32At(output.raw_data(), i), want,
                1e-6 * std::abs(want) + 1e-30)
        << "x = " << InputAt(i);
  }
  EXPECT_FALSE(stream.Read(&response));
  grpc::Status stream_status = stream.Finish();
  EXPECT_TRUE(stream_status.ok()) << stream_status.error_message();
}

// A Jacobian that was in flight at `sigterm_at`: answered in full.
void CheckDrainedJacobian(const CallResult& result, absl::Time sigterm_at,
                          const ServerProcess& server) {
  ASSERT_TRUE(result.status.ok())
      << result.status.error_code() << ": " << result.status.error_message()
      << "\nserver log:\n"
      << server.Log();
  EXPECT_GT(result.done, sigterm_at)
      << "the Jacobian finished before SIGTERM, so it proved nothing; "
         "make it larger";
  const v1::Tensor& jacobian = result.response.jacobian();
  EXPECT_FALSE(result.response.diagonal());
  ASSERT_EQ(jacobian.shape_size(), 3);
  EXPECT_EQ(jacobian.shape(0), kJacobianRows);
  EXPECT_EQ(jacobian.shape(1), kJacobianCols);
  EXPECT_EQ(jacobian.shape(2), kJacobianCols);
  ASSERT_EQ(jacobian.raw_data().size(),
            kJacobianRows * kJacobianCols * kJacobianCols * sizeof(float));
  // Row 0, (0, 1): off the diagonal.
  EXPECT_EQ(Float32At(jacobian.raw_data(), 1), 0.0f);
}

// Called once the last call has returned: the server exits 0 at once.
void ExpectExitWithLastCall(ServerProcess& server, Stub& stub) {
  const absl::Time last_call_done = absl::Now();
  std::optional<int> exit_code = server.Wait(absl::Seconds(40));
  ASSERT_TRUE(exit_code.has_value()) << "still running after the grace";
  EXPECT_EQ(*exit_code, 0) << server.Log();
  // The drain ends with the last call, not when idle connections (this
  // test's channel is still open) or the grace period run out.
  EXPECT_LT(absl::Now() - last_call_done, absl::Seconds(3));

  // And nothing answers once it is gone.
  EXPECT_EQ(ListFunctions(stub).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Calls the server holds when the signal lands: a Stream it has already
// answered on, carrying the 16M-element gelu request, and unary Jacobians
// whose requests are tiny but whose 64 MiB answers take a while. (A request
// still uploading has its own test below.)
TEST(ShutdownTest, SigtermDrainsInFlightCallsAndExitsZero) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--max_message_mb=256", "--shutdown_grace_s=30"});
  ASSERT_NE(server, nullptr);
  auto channel = MakeChannel(server->target());
  auto stub = v1::ActivationService::NewStub(channel);

  grpc::ClientContext stream_context;
  stream_context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  auto stream = stub->Stream(&stream_context);
  ASSERT_NO_FATAL_FAILURE(SendLargeStreamRequest(*stream));

  const v1::JacobianRequest jacobian_request = DenseGeluJacobianRequest();
  std::vector<CallResult> results(kConcurrentJacobians);
  std::vector<std::thread> calls =
      StartJacobians(*stub, jacobian_request, results);
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time sigterm_at = absl::Now();
  server->Signal(SIGTERM);

  // Give the server a moment to handle the signal; then it must refuse new
  // work while the old calls drain.
  absl::SleepFor(absl::Milliseconds(300));
  {
    auto new_channel = MakeChannel(server->target());
    auto new_stub = v1::ActivationService::NewStub(new_channel);
    grpc::Status status = ListFunctions(*new_stub);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << "a call after SIGTERM: " << status.error_message();
  }

  ASSERT_NO_FATAL_FAILURE(CheckLargeStreamAnswer(*stream, *server));
  for (std::thread& t : calls) t.join();
  for (const CallResult& result : results) {
    ASSERT_NO_FATAL_FAILURE(CheckDrainedJacobian(result, sigterm_at, *server));
  }
  ExpectExitWithLastCall(*server, *stub);
}

// A unary call whose request is still on its way when SIGTERM lands must
// complete: the call is opened (headers sent) before the signal and its
// 64 MiB request message is written only after it, which is what a slow
// upload looks like to the server.
TEST(ShutdownTest, SigtermWhileRequestUploadsStillCompletes) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--max_message_mb=256", "--shutdown_grace_s=30"});
  ASSERT_NE(server, nullptr);
  auto channel = MakeChannel(server->target());
  grpc::GenericStub generic(channel);
  grpc::CompletionQueue cq;
  auto step = [&cq](void* tag) {
    void* got = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&got, &ok));
    EXPECT_EQ(got, tag);
    return ok;
  };
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      generic.PrepareCall(&context, "/actsvc.v1.ActivationService/Evaluate",
                          &cq);
  int tags[5];
  call->StartCall(&tags[0]);
  ASSERT_TRUE(step(&tags[0]));
  absl::SleepFor(absl::Milliseconds(200));  // the headers reach the server

  server->Signal(SIGTERM);
  absl::SleepFor(absl::Milliseconds(300));  // it is draining now

  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::GELU);
  *request.mutable_input() = Float32Tensor({kElements}, kElements);
  grpc::ByteBuffer request_bytes;
  bool own = false;
  ASSERT_TRUE(grpc::SerializationTraits<v1::EvaluateRequest>::Serialize(
                  request, &request_bytes, &own)
                  .ok());
  call->Write(request_bytes, &tags[1]);
  const bool wrote = step(&tags[1]);
  call->WritesDone(&tags[2]);
  step(&tags[2]);
  grpc::ByteBuffer response_bytes;
  call->Read(&response_bytes, &tags[3]);
  const bool read = step(&tags[3]);
  grpc::Status status;
  call->Finish(&status, &tags[4]);
  step(&tags[4]);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": "
                           << status.error_message() << "\nserver log:\n"
                           << server->Log();
  ASSERT_TRUE(wrote && read);
  v1::EvaluateResponse response;
  ASSERT_TRUE(grpc::SerializationTraits<v1::EvaluateResponse>::Deserialize(
                  &response_bytes, &response)
                  .ok());
  ASSERT_EQ(response.output().raw_data().size(), kElements * sizeof(float));
  const double want = Gelu(InputAt(1234));
  EXPECT_NEAR(Float32At(response.output().raw_data(), 1234), want,
              1e-6 * std::abs(want));

  std::optional<int> exit_code = server->Wait(absl::Seconds(40));
  ASSERT_TRUE(exit_code.has_value()) << "still running after the grace";
  EXPECT_EQ(*exit_code, 0) << server->Log();
}

TEST(ShutdownTest, IdleServerExitsZeroOnSigterm) {
  std::unique_ptr<ServerProcess> server = StartServer({"--shutdown_grace_s=5"});
  ASSERT_NE(server, nullptr);
  const absl::Time start = absl::Now();
  server->Signal(SIGTERM);
  std::optional<int> exit_code = server->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 0) << server->Log();
  // Nothing to drain: it should not sit out the grace period.
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_NE(server->Log().find("listening on 127.0.0.1:"), std::string::npos)
      << server->Log();
}

TEST(ShutdownTest, SigintAlsoDrainsAndExitsZero) {
  std::unique_ptr<ServerProcess> server = StartServer({"--shutdown_grace_s=5"});
  ASSERT_NE(server, nullptr);
  server->Signal(SIGINT);
  std::optional<int> exit_code = server->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 0) << server->Log();
}

}  // namespace
}  // namespace actsvc::e2e
