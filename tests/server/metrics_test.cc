// The Prometheus endpoint, scraped over a plain socket after some calls.
#include "server/metrics.h"

#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/http_client.h"

namespace actsvc::server {
namespace {

using ::testing::HasSubstr;
using testing::HttpGet;
using ::testing::Not;

v1::EvaluateRequest Relu(int n) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::RELU);
  request.mutable_input()->set_dtype(v1::FLOAT32);
  request.mutable_input()->add_shape(n);
  for (int i = 0; i < n; ++i) request.mutable_input()->add_float_data(i);
  return request;
}

// gRPC and metrics on free ports.
ServerOptions WithMetrics() {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics_address = "127.0.0.1:0";
  return options;
}

std::unique_ptr<v1::ActivationService::Stub> StubTo(const Server& server) {
  return v1::ActivationService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                          grpc::InsecureChannelCredentials()));
}

TEST(MetricsTest, ScrapeCountsCallsByStatusLatencyAndElements) {
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(WithMetrics());
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->metrics_port(), 0);

  auto stub = StubTo(**server);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::EvaluateResponse response;
    ASSERT_TRUE(stub->Evaluate(&context, Relu(10), &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::EvaluateResponse response;
    v1::EvaluateRequest bad = Relu(10);
    bad.mutable_input()->add_shape(-1);
    EXPECT_EQ(stub->Evaluate(&context, bad, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }

  // A call ends on the server (OnDone) just after the client has its status.
  ASSERT_TRUE((*server)->calls().WaitUntilIdle(absl::Seconds(5)));
  const std::string scrape = HttpGet((*server)->metrics_port(), "/metrics");
  EXPECT_THAT(scrape, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(scrape, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(scrape, HasSubstr("# TYPE actsvc_requests_total counter\n"));
  EXPECT_THAT(
      scrape,
      HasSubstr("actsvc_requests_total{api=\"actsvc.v1.ActivationService\",rpc="
                "\"Evaluate\",code=\"OK\"} 3\n"));
  EXPECT_THAT(scrape, HasSubstr("actsvc_requests_total{api=\"actsvc.v1."
                                "ActivationService\",rpc=\"Evaluate\","
                                "code=\"INVALID_ARGUMENT\"} 1\n"));
  EXPECT_THAT(scrape, HasSubstr("actsvc_requests_total{api=\"actsvc.v1."
                                "ActivationService\",rpc=\"Jacobian\","
                                "code=\"OK\"} 0\n"));
  EXPECT_THAT(scrape, Not(HasSubstr("rpc=\"Jacobian\",code=\"INVALID")));
  EXPECT_THAT(scrape,
              HasSubstr("# TYPE actsvc_request_duration_seconds histogram\n"));
  EXPECT_THAT(scrape, HasSubstr("actsvc_request_duration_seconds_bucket{"
                                "api=\"actsvc.v1.ActivationService\",rpc="
                                "\"Evaluate\",le=\"+Inf\"} 4\n"));
  EXPECT_THAT(
      scrape,
      HasSubstr("actsvc_request_duration_seconds_count{"
                "api=\"actsvc.v1.ActivationService\",rpc=\"Evaluate\"} 4\n"));
  EXPECT_THAT(scrape, HasSubstr("actsvc_request_duration_seconds_bucket{"
                                "api=\"actsvc.v1.ActivationService\",rpc="
                                "\"Evaluate\",le=\"0.0005\"} "));
  EXPECT_THAT(
      scrape,
      HasSubstr("actsvc_elements_processed_total{"
                "api=\"actsvc.v1.ActivationService\",rpc=\"Evaluate\"} 30\n"));
  EXPECT_THAT(scrape, HasSubstr("actsvc_calls_in_flight 0\n"));

  EXPECT_THAT(HttpGet((*server)->metrics_port(), "/other"),
              HasSubstr("HTTP/1.1 404"));
  (*server)->Shutdown(absl::ZeroDuration());
  EXPECT_EQ(HttpGet((*server)->metrics_port(), "/metrics"), "");
}

// ListFunctions is served inline on gRPC's thread, apart from the compute
// methods; its duration used to be recorded as 0.
TEST(MetricsTest, ListFunctionsDurationIsMeasured) {
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(WithMetrics());
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = StubTo(**server);
  grpc::ClientContext context;
  v1::ListFunctionsResponse response;
  ASSERT_TRUE(
      stub->ListFunctions(&context, v1::ListFunctionsRequest(), &response)
          .ok());

  const std::string scrape = HttpGet((*server)->metrics_port(), "/metrics");
  const std::string sum =
      "actsvc_request_duration_seconds_sum{api=\"actsvc.v1."
      "ActivationService\",rpc=\"ListFunctions\"} ";
  const size_t at = scrape.find(sum);
  ASSERT_NE(at, std::string::npos) << scrape;
  const size_t begin = at + sum.size();
  double seconds = 0;
  ASSERT_TRUE(absl::SimpleAtod(
      scrape.substr(begin, scrape.find('\n', begin) - begin), &seconds));
  EXPECT_GT(seconds, 0);
  EXPECT_THAT(scrape, HasSubstr("actsvc_request_duration_seconds_count{api=\""
                                "actsvc.v1.ActivationService\",rpc=\""
                                "ListFunctions\"} 1\n"));
}

TEST(MetricsTest, OffByDefault) {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->metrics_port(), 0);
}

TEST(MetricsTest, StartFailsWhenTheMetricsPortIsTaken) {
  ServerOptions options = WithMetrics();
  absl::StatusOr<std::unique_ptr<Server>> first = Server::Start(options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.metrics_address =
      absl::StrCat("127.0.0.1:", (*first)->metrics_port());
  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("cannot serve metrics"));
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Metrics metrics(std::vector<std::pair<std::string, std::string>>{
      {"actsvc.v1.ActivationService", "Analyze"}});
  const int analyze = metrics.IndexOf("actsvc.v1.ActivationService", "Analyze");
  ASSERT_EQ(analyze, 0);
  metrics.RecordCall(analyze, absl::StatusCode::kOk, 0.0001, 5);
  metrics.RecordCall(analyze, absl::StatusCode::kOk, 0.003, 5);
  metrics.RecordCall(analyze, absl::StatusCode::kCancelled, 100, 0);
  EXPECT_EQ(metrics.IndexOf("actsvc.v1.ActivationService", "NoSuchRpc"), -1);
  metrics.RecordCall(
      metrics.IndexOf("actsvc.v1.ActivationService", "NoSuchRpc"),
      absl::StatusCode::kOk, 1, 1);
  const std::string text = metrics.Render(2);
  EXPECT_THAT(text, HasSubstr("{api=\"actsvc.v1.ActivationService\",rpc="
                              "\"Analyze\",le=\"0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("{api=\"actsvc.v1.ActivationService\",rpc="
                              "\"Analyze\",le=\"0.0025\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("{api=\"actsvc.v1.ActivationService\",rpc="
                              "\"Analyze\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("{api=\"actsvc.v1.ActivationService\",rpc="
                              "\"Analyze\",le=\"10\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("{api=\"actsvc.v1.ActivationService\",rpc="
                              "\"Analyze\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("actsvc_request_duration_seconds_sum{api="
                              "\"actsvc.v1.ActivationService\",rpc="
                              "\"Analyze\"} 100.003\n"));
  EXPECT_THAT(text, HasSubstr("code=\"CANCELLED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("actsvc_elements_processed_total{api=\"actsvc.v1."
                              "ActivationService\",rpc="
                              "\"Analyze\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("actsvc_calls_in_flight 2\n"));
  EXPECT_THAT(text, Not(HasSubstr("NoSuchRpc")));
}

}  // namespace
}  // namespace actsvc::server
