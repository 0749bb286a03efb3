// The HTTP endpoint's route table, its limits, compute routes on the worker
// pool, and the HTTP status map beside the gRPC one.
#include "server/http_server.h"

#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/options.h"
#include "server/status.h"
#include "tests/server/http_client.h"

namespace actsvc::server {
namespace {

using ::testing::HasSubstr;
using testing::HttpRaw;

std::string Post(int port, const std::string& path, const std::string& body) {
  return HttpRaw(port, absl::StrCat("POST ", path,
                                    " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    "Connection: close\r\nContent-Length: ",
                                    body.size(), "\r\n\r\n", body));
}

std::string Get(int port, const std::string& path) {
  return HttpRaw(port, absl::StrCat("GET ", path,
                                    " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    "Connection: close\r\n\r\n"));
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(int64_t max_body_bytes = 1 << 20) {
    HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.max_body_bytes = max_body_bytes;
    std::vector<HttpRoute> routes;
    routes.push_back({"GET", "/hello", [this](const HttpRequest& r) {
                        HttpResponse response;
                        response.body = absl::StrCat("hello ", r.query);
                        hello_thread_ = std::this_thread::get_id();
                        return response;
                      }});
    routes.push_back({"POST", "/v2/models/",
                      [this](const HttpRequest& r) {
                        HttpResponse response;
                        response.status = 201;
                        response.content_type = "application/json";
                        response.headers.emplace_back("X-Path", r.path);
                        const std::string* type = r.Header("content-length");
                        response.body = absl::StrCat(
                            r.body.size(), " bytes, length header ",
                            type == nullptr ? "none" : *type);
                        compute_thread_ = std::this_thread::get_id();
                        return response;
                      },
                      /*compute=*/true});
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start(options, std::move(routes), &workers_, &calls_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  WorkerPool workers_{1};
  Metrics metrics_{std::vector<std::pair<std::string, std::string>>{}};
  CallTracker calls_{/*max_concurrent_calls=*/1, &metrics_};
  std::unique_ptr<HttpServer> server_;
  std::atomic<std::thread::id> hello_thread_{};
  std::atomic<std::thread::id> compute_thread_{};
};

TEST_F(HttpServerTest, RoutesByPathPrefixAndMethod) {
  Start();
  EXPECT_THAT(Get(server_->port(), "/hello?name=x"), HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(Get(server_->port(), "/hello?name=x"), HasSubstr("hello name=x"));
  const std::string posted =
      Post(server_->port(), "/v2/models/gelu/infer", std::string(1000, 'a'));
  EXPECT_THAT(posted, HasSubstr("HTTP/1.1 201"));
  EXPECT_THAT(posted, HasSubstr("Content-Type: application/json"));
  EXPECT_THAT(posted, HasSubstr("X-Path: /v2/models/gelu/infer"));
  EXPECT_THAT(posted, HasSubstr("1000 bytes, length header 1000"));
  EXPECT_THAT(Get(server_->port(), "/nothing"), HasSubstr("HTTP/1.1 404"));
  EXPECT_THAT(Get(server_->port(), "/v2/models/gelu"),
              HasSubstr("HTTP/1.1 405"));
}

TEST_F(HttpServerTest, ComputeRoutesRunOnTheWorkerPool) {
  Start();
  // The pool's one thread: whatever a task submitted to it runs on.
  std::atomic<std::thread::id> pool_thread{};
  absl::Notification seen;
  workers_.Submit([&] {
    pool_thread = std::this_thread::get_id();
    seen.Notify();
  });
  seen.WaitForNotification();
  ASSERT_THAT(Post(server_->port(), "/v2/models/x", "{}"),
              HasSubstr("HTTP/1.1 201"));
  ASSERT_THAT(Get(server_->port(), "/hello"), HasSubstr("HTTP/1.1 200"));
  EXPECT_EQ(compute_thread_.load(), pool_thread.load());
  EXPECT_NE(hello_thread_.load(), pool_thread.load());
}

TEST_F(HttpServerTest, ComputeRoutesAreAdmittedLikeGrpcCalls) {
  absl::Notification entered, release;
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  std::vector<HttpRoute> routes;
  routes.push_back({"POST", "/slow",
                    [&](const HttpRequest&) {
                      entered.Notify();
                      release.WaitForNotification();
                      return HttpResponse();
                    },
                    /*compute=*/true, "ModelInfer"});
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(options, std::move(routes), &workers_, &calls_);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::string first;
  std::thread holder([&] { first = Post(port, "/slow", "{}"); });
  entered.WaitForNotification();
  EXPECT_EQ(calls_.CallsInFlight(), 1);
  // Over --max_concurrent_calls = 1: refused at once, as over gRPC.
  const std::string refused = Post(port, "/slow", "{}");
  EXPECT_THAT(refused, HasSubstr("HTTP/1.1 429"));
  EXPECT_THAT(refused, HasSubstr("--max_concurrent_calls"));
  EXPECT_THAT(refused, HasSubstr("ModelInfer was not started"));
  release.Notify();
  holder.join();
  EXPECT_THAT(first, HasSubstr("HTTP/1.1 200"));
  // Draining: 503, and the in-flight count saw every call end.
  calls_.StartDraining();
  EXPECT_THAT(Post(port, "/slow", "{}"), HasSubstr("HTTP/1.1 503"));
  EXPECT_TRUE(calls_.WaitUntilIdle(absl::Seconds(5)));
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413) {
  Start(/*max_body_bytes=*/100);
  const std::string response =
      Post(server_->port(), "/v2/models/x", std::string(101, 'b'));
  EXPECT_THAT(response, HasSubstr("HTTP/1.1 413"));
  EXPECT_THAT(response, HasSubstr("over the limit of 100 bytes"));
  EXPECT_THAT(Post(server_->port(), "/v2/models/x", std::string(100, 'b')),
              HasSubstr("HTTP/1.1 201"));
}

TEST(HttpServerStartTest, BusyPortIsUnavailable) {
  WorkerPool workers(1);
  Metrics metrics(std::vector<std::pair<std::string, std::string>>{});
  CallTracker calls(0, &metrics);
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<HttpServer>> first =
      HttpServer::Start(options, {}, &workers, &calls);
  ASSERT_TRUE(first.ok());
  options.address = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<HttpServer>> second =
      HttpServer::Start(options, {}, &workers, &calls);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(StatusMapTest, HttpAndGrpcSideBySide) {
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kOk), 200);
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(ToHttpStatus(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(OptionsTest, EveryRangeIsChecked) {
  EXPECT_TRUE(CheckOptions(ServerOptions()).ok());
  const auto message = [](void (*change)(ServerOptions*)) {
    ServerOptions options;
    change(&options);
    const absl::Status status = CheckOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    return std::string(status.message());
  };
  EXPECT_THAT(message([](ServerOptions* o) { o->max_message_mb = 0; }),
              HasSubstr("max_message_mb = 0"));
  EXPECT_THAT(message([](ServerOptions* o) { o->max_elements = -1; }),
              HasSubstr("max_elements = -1"));
  EXPECT_THAT(message([](ServerOptions* o) { o->keepalive_timeout_s = 0; }),
              HasSubstr("keepalive_timeout_s = 0"));
  EXPECT_THAT(message([](ServerOptions* o) { o->max_connection_age_s = -1; }),
              HasSubstr("--max_connection_age_s=-1 is outside 0..2000000"));
  EXPECT_THAT(message([](ServerOptions* o) { o->http_threads = 0; }),
              HasSubstr("--http_threads=0"));
  EXPECT_THAT(message([](ServerOptions* o) { o->shutdown_grace_s = -1; }),
              HasSubstr("--shutdown_grace_s=-1 is negative"));
  EXPECT_THAT(message([](ServerOptions* o) { o->log_level = "loud"; }),
              HasSubstr("--log_level=loud"));
  ServerOptions cpus;
  EXPECT_GE(ComputeThreads(cpus), 1);
  cpus.compute_threads = 3;
  EXPECT_EQ(ComputeThreads(cpus), 3);
}

}  // namespace
}  // namespace actsvc::server
