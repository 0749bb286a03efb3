// The server's limits and deadlines (SPEC §3): each limit is hit, and the
// server then goes on serving.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/metrics_reader.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::grpc::StatusCode;
using ::testing::AllOf;
using testing::CallsEnded;
using testing::ElementsAnswered;
using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::Ramp;
using Stub = v1::ActivationService::Stub;
using Clock = std::chrono::system_clock;

std::unique_ptr<Server> StartOrDie(ServerOptions options) {
  options.address = "127.0.0.1:0";
  if (options.compute_threads < 2) options.compute_threads = 2;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

std::unique_ptr<Stub> StubTo(const Server& server) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return v1::ActivationService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server.port()),
                                grpc::InsecureChannelCredentials(), args));
}

v1::EvaluateRequest EvaluateOf(int64_t n) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::TANH);
  *request.mutable_input() =
      MakeTensor<float>({n}, Ramp<float>(n), Encoding::kRaw);
  return request;
}

grpc::Status Evaluate(Stub& stub, const v1::EvaluateRequest& request,
                      absl::Duration timeout = absl::Seconds(10)) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::EvaluateResponse response;
  return stub.Evaluate(&context, request, &response);
}

// A small call that must succeed: the server is still serving.
void ExpectServing(Stub& stub) {
  const grpc::Status status = Evaluate(stub, EvaluateOf(8));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// A server started with the options of one test, and a stub to it.
class LimitsTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options) {
    server_ = StartOrDie(std::move(options));
    ASSERT_NE(server_, nullptr);
    stub_ = StubTo(*server_);
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<Stub> stub_;
};

// Pings every second, and a second to answer, even on an idle connection.
ServerOptions KeepaliveEverySecond() {
  ServerOptions options;
  options.keepalive_time_s = 1;
  options.keepalive_timeout_s = 1;
  options.keepalive_permit_without_calls = true;
  return options;
}

TEST_F(LimitsTest, MaxElementsRefusesLargerRequestsThenServes) {
  ServerOptions options;
  options.max_elements = 1000;
  ASSERT_NO_FATAL_FAILURE(Start(options));

  grpc::Status status = Evaluate(*stub_, EvaluateOf(1001));
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("1001 elements"), HasSubstr("1000"),
                    HasSubstr("--max_elements")));

  // A shape whose product overflows int64 is invalid, not over the limit.
  v1::EvaluateRequest overflow = EvaluateOf(4);
  overflow.mutable_input()->clear_shape();
  overflow.mutable_input()->add_shape(int64_t{1} << 62);
  overflow.mutable_input()->add_shape(4);
  status = Evaluate(*stub_, overflow);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("input.shape"));

  v1::SoftmaxCrossEntropyRequest cross_entropy;
  *cross_entropy.mutable_logits() =
      MakeTensor<float>({11, 100}, Ramp<float>(1100), Encoding::kRaw);
  grpc::ClientContext context;
  v1::SoftmaxCrossEntropyResponse cross_entropy_response;
  status = stub_->SoftmaxCrossEntropy(&context, cross_entropy,
                                      &cross_entropy_response);
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);

  // A stream request over the limit ends its stream.
  grpc::ClientContext stream_context;
  auto stream = stub_->Stream(&stream_context);
  v1::StreamRequest stream_request;
  *stream_request.mutable_evaluate() = EvaluateOf(1000);
  v1::StreamResponse stream_response;
  ASSERT_TRUE(stream->Write(stream_request));
  EXPECT_TRUE(stream->Read(&stream_response));
  *stream_request.mutable_evaluate() = EvaluateOf(5000);
  stream->Write(stream_request);
  EXPECT_FALSE(stream->Read(&stream_response));
  status = stream->Finish();
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("stream request #1"), HasSubstr("5000")));

  EXPECT_TRUE(Evaluate(*stub_, EvaluateOf(1000)).ok());
  ExpectServing(*stub_);
  EXPECT_EQ(ElementsAnswered(*server_), 1000 + 1000 + 8);
}

TEST_F(LimitsTest, MaxConcurrentCallsRefusesAtOnceThenServes) {
  absl::Notification release;
  std::atomic<bool> hold{true};
  ServerOptions options;
  options.max_concurrent_calls = 2;
  options.compute_threads = 2;
  options.inline_compute_kb = 0;  // hold compute threads, not gRPC's
  options.before_compute_for_testing = [&] {
    if (hold.load()) release.WaitForNotification();
  };
  ASSERT_NO_FATAL_FAILURE(Start(options));

  std::vector<grpc::Status> held(2);
  std::vector<std::thread> threads;
  for (grpc::Status& status : held) {
    threads.emplace_back([&] { status = Evaluate(*stub_, EvaluateOf(16)); });
  }
  const absl::Time wait_until = absl::Now() + absl::Seconds(10);
  while (server_->calls().CallsInFlight() < 2 && absl::Now() < wait_until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(server_->calls().CallsInFlight(), 2);

  // Refused at once, not queued behind the held calls.
  const absl::Time start = absl::Now();
  grpc::Status status = Evaluate(*stub_, EvaluateOf(16));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("limit of 2 concurrent calls"),
                    HasSubstr("--max_concurrent_calls")));
  grpc::ClientContext stream_context;
  auto stream = stub_->Stream(&stream_context);
  stream->WritesDone();
  status = stream->Finish();
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  // ListFunctions is cheap and not limited.
  {
    grpc::ClientContext context;
    v1::ListFunctionsResponse functions;
    EXPECT_TRUE(
        stub_->ListFunctions(&context, v1::ListFunctionsRequest(), &functions)
            .ok());
  }

  hold.store(false);
  release.Notify();
  for (std::thread& thread : threads) thread.join();
  for (const grpc::Status& s : held) EXPECT_TRUE(s.ok()) << s.error_message();
  // A call counts until the server is done with it, a moment after its
  // client has the status.
  ASSERT_TRUE(server_->calls().WaitUntilIdle(absl::Seconds(5)));
  ExpectServing(*stub_);
  EXPECT_EQ(CallsEnded(*server_, absl::StatusCode::kOk), 3 + 1);
}

TEST_F(LimitsTest, MessageSizeLimitsThenServes) {
  ServerOptions options;
  options.max_message_mb = 1;
  ASSERT_NO_FATAL_FAILURE(Start(options));

  // A request just over --max_message_mb reaches the service, which
  // refuses it naming the flag; one more than 64 KiB over is refused by
  // gRPC itself, in its own words.
  grpc::Status status = Evaluate(*stub_, EvaluateOf(262144 + 1000));
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("(--max_message_mb)"));
  ExpectServing(*stub_);
  status = Evaluate(*stub_, EvaluateOf(300000));
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  ExpectServing(*stub_);

  // A dense Jacobian of 1024 x 1024 floats (4 MiB) over the 1 MiB limit.
  v1::JacobianRequest jacobian;
  jacobian.mutable_spec()->set_function(v1::SOFTMAX);
  *jacobian.mutable_input() =
      MakeTensor<float>({1, 1024}, Ramp<float>(1024), Encoding::kRaw);
  jacobian.set_dense(true);
  {
    grpc::ClientContext context;
    v1::JacobianResponse response;
    status = stub_->Jacobian(&context, jacobian, &response);
  }
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("--max_message_mb"), HasSubstr("VJP")));
  *jacobian.mutable_input() =
      MakeTensor<float>({1, 256}, Ramp<float>(256), Encoding::kRaw);
  {
    grpc::ClientContext context;
    v1::JacobianResponse response;
    status = stub_->Jacobian(&context, jacobian, &response);
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  ExpectServing(*stub_);
}

// --max_jacobian_mb caps the dense Jacobian, whose c^2 values per row of c
// inputs make a small request expensive, below the message limit; the
// diagonal form and the VJP stay open.
TEST_F(LimitsTest, MaxJacobianMbRefusesLargeDenseJacobiansThenServes) {
  ServerOptions options;
  options.max_jacobian_mb = 1;
  ASSERT_NO_FATAL_FAILURE(Start(options));

  auto jacobian = [&](v1::Function f, int64_t rows, int64_t c, bool dense) {
    v1::JacobianRequest request;
    request.mutable_spec()->set_function(f);
    *request.mutable_input() =
        MakeTensor<float>({rows, c}, Ramp<float>(rows * c), Encoding::kRaw);
    request.set_dense(dense);
    grpc::ClientContext context;
    v1::JacobianResponse response;
    return stub_->Jacobian(&context, request, &response);
  };
  // 2 x 1024 x 1024 floats = 8 MiB, within the 64 MiB message limit.
  grpc::Status status = jacobian(v1::SOFTMAX, 2, 1024, true);
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("--max_jacobian_mb"),
                    HasSubstr("[2,1024,1024] would be 8388608 bytes"),
                    HasSubstr("VJP")));
  status = jacobian(v1::TANH, 1, 1024, true);  // 4 MiB: over as well
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("dense = false"));
  // 512 x 512 floats = exactly 1 MiB: allowed; the diagonal is not capped.
  status = jacobian(v1::SOFTMAX, 1, 512, true);
  EXPECT_TRUE(status.ok()) << status.error_message();
  status = jacobian(v1::TANH, 1024, 1024, false);
  EXPECT_TRUE(status.ok()) << status.error_message();
  ExpectServing(*stub_);
}

TEST_F(LimitsTest, StartRefusesBadLimits) {
  const std::vector<std::pair<std::string, std::function<void(ServerOptions*)>>>
      bad = {
          {"max_elements", [](ServerOptions* o) { o->max_elements = -1; }},
          {"max_concurrent_calls",
           [](ServerOptions* o) { o->max_concurrent_calls = -1; }},
          {"keepalive_timeout_s",
           [](ServerOptions* o) { o->keepalive_timeout_s = 0; }},
          {"keepalive_time_s",
           [](ServerOptions* o) { o->keepalive_time_s = -1; }},
          {"max_jacobian_mb",
           [](ServerOptions* o) { o->max_jacobian_mb = -1; }},
      };
  for (const auto& [name, make_bad] : bad) {
    ServerOptions options;
    options.address = "127.0.0.1:0";
    make_bad(&options);
    EXPECT_EQ(Server::Start(options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
}

// The server pings an idle connection every second; the client answers, so
// the connection and its calls carry on.
TEST_F(LimitsTest, KeepalivePingsKeepAnIdleConnectionServing) {
  std::unique_ptr<Server> server = StartOrDie(KeepaliveEverySecond());
  ASSERT_NE(server, nullptr);
  grpc::ChannelArguments args;
  // The client pings too, no more often than the server's 5 min minimum
  // allows, so it is not sent GOAWAY for it.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 300000);
  auto channel =
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server->port()),
                                grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<Stub> stub = v1::ActivationService::NewStub(channel);
  ExpectServing(*stub);
  absl::SleepFor(absl::Milliseconds(2500));
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  ExpectServing(*stub);
}

// A raw HTTP/2 peer: sends the client preface and an empty SETTINGS frame,
// acknowledges the server's SETTINGS, then reads and never answers a PING.
// Returns how long the server kept the connection open (up to `limit`).
absl::Duration SilentPeerLifetime(int port, absl::Duration limit) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // Preface, SETTINGS (empty), SETTINGS ACK: 9-byte frame headers
  // (length 24 bits, type, flags, stream id 31 bits).
  const std::string hello = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                            std::string("\0\0\0\x04\0\0\0\0\0", 9) +
                            std::string("\0\0\0\x04\x01\0\0\0\0", 9);
  EXPECT_EQ(send(fd, hello.data(), hello.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(hello.size()));
  const absl::Time start = absl::Now();
  const absl::Time end = start + limit;
  char buf[4096];
  while (absl::Now() < end) {
    pollfd p{fd, POLLIN, 0};
    const int ms =
        static_cast<int>(absl::ToInt64Milliseconds(end - absl::Now()) + 1);
    if (poll(&p, 1, ms) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;  // closed (or reset) by the server
  }
  const absl::Duration lifetime = absl::Now() - start;
  close(fd);
  return lifetime;
}

// --keepalive_time_s / --keepalive_timeout_s: a peer that stops answering
// pings is disconnected after about their sum; without keepalive the same
// peer stays connected; either way the server goes on serving.
TEST_F(LimitsTest, KeepaliveClosesAPeerThatDoesNotAnswerPings) {
  ASSERT_NO_FATAL_FAILURE(Start(KeepaliveEverySecond()));
  const absl::Duration lifetime =
      SilentPeerLifetime(server_->port(), absl::Seconds(10));
  std::printf("silent peer disconnected after %s\n",
              absl::FormatDuration(lifetime).c_str());
  EXPECT_GE(lifetime, absl::Milliseconds(900));
  EXPECT_LT(lifetime, absl::Seconds(6));
  ExpectServing(*stub_);

  std::unique_ptr<Server> plain = StartOrDie(ServerOptions());
  ASSERT_NE(plain, nullptr);
  EXPECT_GE(SilentPeerLifetime(plain->port(), absl::Seconds(4)),
            absl::Seconds(4));
  ExpectServing(*StubTo(*plain));
}

// A server that takes a request of 16M elements (64 MiB).
class DeadlineTest : public LimitsTest {
 protected:
  static constexpr int64_t kHugeElements = int64_t{16} << 20;

  // Starts the server and connects; notes the elements answered so far.
  void StartForHugeRequests(ServerOptions options) {
    options.max_message_mb = 128;
    ASSERT_NO_FATAL_FAILURE(Start(std::move(options)));
    ExpectServing(*stub_);  // connected, so the deadline is all upload
    elements_before_ = ElementsAnswered(*server_);
  }

  int64_t elements_before_ = 0;
};

// 16M elements with a 1 ms deadline: the client gets DEADLINE_EXCEEDED, and
// the server drops the call at once instead of computing it.
TEST_F(DeadlineTest, HugeRequestWithTinyDeadlineLeavesTheServerIdle) {
  ASSERT_NO_FATAL_FAILURE(StartForHugeRequests(ServerOptions()));
  const v1::EvaluateRequest huge = EvaluateOf(kHugeElements);
  const grpc::Status status = Evaluate(*stub_, huge, absl::Milliseconds(1));
  const absl::Time returned = absl::Now();
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED)
      << status.error_message();

  EXPECT_TRUE(server_->calls().WaitUntilIdle(absl::Milliseconds(100)))
      << server_->calls().CallsInFlight() << " calls still in flight";
  const grpc::Status small = Evaluate(*stub_, EvaluateOf(8));
  EXPECT_TRUE(small.ok()) << small.error_message();
  EXPECT_LT(absl::Now() - returned, absl::Milliseconds(100));
  EXPECT_EQ(ElementsAnswered(*server_), elements_before_ + 8);
  EXPECT_EQ(CallsEnded(*server_, absl::StatusCode::kOk), 2);
}

// The deadline passes once the request has arrived: the work stops at the
// first chunk boundary, long before 16M elements are computed.
TEST_F(DeadlineTest, WorkStopsWhenTheDeadlinePassesDuringTheCall) {
  std::atomic<int64_t> deadline_ns{0};
  ServerOptions options;
  options.before_compute_for_testing = [&] {
    const int64_t ns = deadline_ns.load();
    if (ns != 0) {
      std::this_thread::sleep_until(
          Clock::time_point(std::chrono::nanoseconds(ns)) +
          std::chrono::milliseconds(5));
    }
  };
  ASSERT_NO_FATAL_FAILURE(StartForHugeRequests(options));
  const v1::EvaluateRequest huge = EvaluateOf(kHugeElements);
  grpc::ClientContext context;
  // Long enough for the upload, usually; if not, the call still ends on time.
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(2);
  context.set_deadline(deadline);
  deadline_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        deadline.time_since_epoch())
                        .count());
  v1::EvaluateResponse response;
  const grpc::Status status = stub_->Evaluate(&context, huge, &response);
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED);
  deadline_ns.store(0);

  // What matters here is that no work was done after the deadline (the
  // test above bounds the time to idle).
  const absl::Time returned = absl::Now();
  EXPECT_TRUE(server_->calls().WaitUntilIdle(absl::Seconds(5)));
  std::fprintf(stderr, "idle %s after the client's DEADLINE_EXCEEDED\n",
               absl::FormatDuration(absl::Now() - returned).c_str());
  ExpectServing(*stub_);
  EXPECT_EQ(ElementsAnswered(*server_), elements_before_ + 8);
  // The server saw the call end on its deadline, not run to completion.
  EXPECT_EQ(CallsEnded(*server_, absl::StatusCode::kOk), 2);
  EXPECT_EQ(CallsEnded(*server_, absl::StatusCode::kDeadlineExceeded) +
                CallsEnded(*server_, absl::StatusCode::kCancelled),
            1);
}

}  // namespace
}  // namespace actsvc::server
