// Deadlines, cancellation, shutdown and connection age, each on a server of
// its own (whose before-compute hook can hold calls in flight).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/activation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/calls.h"
#include "tests/server/metrics_reader.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::grpc::StatusCode;
using testing::Call;
using testing::CallsEnded;
using testing::ChannelTo;
using testing::GoodEvaluate;
using ::testing::HasSubstr;
using testing::HoldEachCall;
using testing::kMaxMessageMb;
using testing::MakeTensor;
using testing::Ramp;
using testing::SetTimeout;
using testing::StartServer;
using testing::Stub;
using testing::ValuesOf;

// ---------------------------------------------------------------------------
// Deadlines, cancellation and shutdown, on servers of their own whose
// before-compute hook holds calls in flight.

// Waits up to 5 s for `done`.
bool Eventually(const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

v1::EvaluateRequest LargeEvaluate() {
  v1::EvaluateRequest request = GoodEvaluate(v1::GELU);
  *request.mutable_input() =
      MakeTensor<float>({500000}, Ramp<float>(500000), Encoding::kRaw);
  return request;
}

// A server of its own whose before-compute hook holds each call in flight.
class InFlightTest : public ::testing::Test {
 protected:
  // Starts the server, holding each call for `hold`.
  void Start(std::chrono::milliseconds hold) {
    absl::StatusOr<std::unique_ptr<Server>> server =
        StartServer(4, HoldEachCall(hold, &entered_));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::ActivationService::NewStub(ChannelTo(server_->port()));
  }

  // The server noticed how the one call ended, and skipped the work rather
  // than finishing it.
  void ExpectEndedWithoutTheWork(absl::StatusCode code) {
    EXPECT_TRUE(Eventually([&] { return CallsEnded(*server_, code) == 1; }))
        << code;
    EXPECT_EQ(CallsEnded(*server_, absl::StatusCode::kOk), 0);
  }

  std::atomic<bool> entered_{false};
  std::unique_ptr<Server> server_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(InFlightTest, DeadlinePassedOnALargeRequest) {
  ASSERT_NO_FATAL_FAILURE(Start(std::chrono::milliseconds(300)));
  grpc::ClientContext context;
  SetTimeout(&context, std::chrono::milliseconds(150));
  v1::EvaluateResponse response;
  EXPECT_EQ(stub_->Evaluate(&context, LargeEvaluate(), &response).error_code(),
            StatusCode::DEADLINE_EXCEEDED);
  ExpectEndedWithoutTheWork(absl::StatusCode::kDeadlineExceeded);
}

TEST_F(InFlightTest, CancelledCallStops) {
  ASSERT_NO_FATAL_FAILURE(Start(std::chrono::milliseconds(200)));
  grpc::ClientContext context;
  std::thread canceller([&] {
    Eventually([&] { return entered_.load(); });
    context.TryCancel();
  });
  v1::EvaluateResponse response;
  EXPECT_EQ(stub_->Evaluate(&context, LargeEvaluate(), &response).error_code(),
            StatusCode::CANCELLED);
  canceller.join();
  ExpectEndedWithoutTheWork(absl::StatusCode::kCancelled);
}

TEST_F(InFlightTest, ShutdownDrainsInFlightCalls) {
  ASSERT_NO_FATAL_FAILURE(Start(std::chrono::milliseconds(400)));
  const int port = server_->port();
  const v1::EvaluateRequest request = GoodEvaluate(v1::TANH);
  std::vector<float> expected(4);
  actsvc::Evaluate<float>(Function::kTanh, 0, std::vector<float>{1, 2, 3, 4},
                          absl::MakeSpan(expected));

  grpc::Status in_flight_status;
  v1::EvaluateResponse in_flight_response;
  std::thread in_flight([&] {
    auto stub = v1::ActivationService::NewStub(ChannelTo(port));
    in_flight_status =
        Call(*stub, &Stub::Evaluate, request, &in_flight_response);
  });
  ASSERT_TRUE(Eventually([&] { return entered_.load(); }));

  std::atomic<bool> shut_down{false};
  std::thread shutdown([&] {
    server_->Shutdown(absl::Seconds(5));
    shut_down = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(shut_down);  // still draining the call above
  {
    // A new call during the drain is refused.
    auto stub = v1::ActivationService::NewStub(ChannelTo(port));
    v1::EvaluateResponse response;
    EXPECT_EQ(Call(*stub, &Stub::Evaluate, request, &response).error_code(),
              StatusCode::UNAVAILABLE);
  }
  in_flight.join();
  shutdown.join();
  ASSERT_TRUE(in_flight_status.ok()) << in_flight_status.error_message();
  EXPECT_EQ(ValuesOf<float>(in_flight_response.output()), expected);
}

TEST(ServiceLifecycleTest, CannotBindAnAddressInUse) {
  absl::StatusOr<std::unique_ptr<Server>> first = StartServer(1);
  ASSERT_TRUE(first.ok());
  ServerOptions options;
  options.address = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(second.status().message(),
            absl::StrCat("port ", (*first)->port(),
                         " is in use; pass --address or stop the other "
                         "server"));
  // On every interface, too (what the default address 0.0.0.0 binds).
  options.address = absl::StrCat("0.0.0.0:", (*first)->port());
  EXPECT_THAT(Server::Start(options).status().message(),
              HasSubstr(" is in use; "));
}

// --max_connection_age_s: the server closes an old connection (after its
// calls), the channel notices and connects again for the next call.
TEST(ServiceLifecycleTest, MaxConnectionAgeRecyclesConnections) {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.max_connection_age_s = 1;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  std::shared_ptr<grpc::Channel> channel = ChannelTo((*server)->port());
  auto stub = v1::ActivationService::NewStub(channel);
  auto list = [&stub] {
    grpc::ClientContext context;
    v1::ListFunctionsResponse response;
    return stub->ListFunctions(&context, v1::ListFunctionsRequest(), &response)
        .ok();
  };
  ASSERT_TRUE(list());
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // Age 1 s (gRPC adds up to 10% jitter), no calls to wait for.
  EXPECT_TRUE(Eventually(
      [&] { return channel->GetState(false) != GRPC_CHANNEL_READY; }));
  EXPECT_TRUE(list());  // a new connection serves the next call
}

// Without the flag a connection stays up.
TEST(ServiceLifecycleTest, ConnectionsLiveWithoutMaxAge) {
  absl::StatusOr<std::unique_ptr<Server>> server = StartServer(kMaxMessageMb);
  ASSERT_TRUE(server.ok()) << server.status();
  std::shared_ptr<grpc::Channel> channel = ChannelTo((*server)->port());
  auto stub = v1::ActivationService::NewStub(channel);
  grpc::ClientContext context;
  v1::ListFunctionsResponse response;
  ASSERT_TRUE(
      stub->ListFunctions(&context, v1::ListFunctionsRequest(), &response)
          .ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
}

}  // namespace
}  // namespace actsvc::server
