#include "server/metrics.h"

#include <civetweb.h>

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace actsvc::server {
namespace {

std::string FormatSeconds(double seconds) {
  return absl::StrFormat("%g", seconds);
}

}  // namespace

void Metrics::RecordCall(absl::string_view rpc, absl::StatusCode code,
                         double elapsed_seconds, int64_t elements) {
  size_t index = 0;
  while (index < kRpcs.size() && kRpcs[index] != rpc) ++index;
  if (index == kRpcs.size()) return;
  PerRpc& counters = rpcs_[index];
  const int code_index = static_cast<int>(code);
  if (code_index >= 0 && code_index < kCodes) {
    counters.calls[code_index].fetch_add(1, std::memory_order_relaxed);
  }
  size_t bucket = 0;
  while (bucket < kBucketSeconds.size() &&
         elapsed_seconds > kBucketSeconds[bucket]) {
    ++bucket;
  }
  counters.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  counters.nanoseconds.fetch_add(static_cast<int64_t>(elapsed_seconds * 1e9),
                                 std::memory_order_relaxed);
  counters.elements.fetch_add(elements, std::memory_order_relaxed);
}

std::string Metrics::Render(int64_t calls_in_flight) const {
  std::string out;
  absl::StrAppend(&out,
                  "# HELP actsvc_requests_total Calls finished, by RPC and "
                  "gRPC status code (a stream counts once).\n"
                  "# TYPE actsvc_requests_total counter\n");
  for (size_t r = 0; r < kRpcs.size(); ++r) {
    for (int code = 0; code < kCodes; ++code) {
      const int64_t n = rpcs_[r].calls[code].load(std::memory_order_relaxed);
      // OK always, so that every RPC has a series from the start.
      if (n == 0 && code != 0) continue;
      absl::StrAppend(
          &out, "actsvc_requests_total{rpc=\"", kRpcs[r], "\",code=\"",
          absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "\"} ",
          n, "\n");
    }
  }
  absl::StrAppend(&out,
                  "# HELP actsvc_request_duration_seconds Time from a call's "
                  "start to its end, as the server sees it.\n"
                  "# TYPE actsvc_request_duration_seconds histogram\n");
  for (size_t r = 0; r < kRpcs.size(); ++r) {
    const PerRpc& counters = rpcs_[r];
    int64_t cumulative = 0;
    for (size_t b = 0; b < counters.buckets.size(); ++b) {
      cumulative += counters.buckets[b].load(std::memory_order_relaxed);
      const std::string le = b < kBucketSeconds.size()
                                 ? FormatSeconds(kBucketSeconds[b])
                                 : std::string("+Inf");
      absl::StrAppend(&out, "actsvc_request_duration_seconds_bucket{rpc=\"",
                      kRpcs[r], "\",le=\"", le, "\"} ", cumulative, "\n");
    }
    absl::StrAppend(
        &out, "actsvc_request_duration_seconds_sum{rpc=\"", kRpcs[r], "\"} ",
        FormatSeconds(counters.nanoseconds.load(std::memory_order_relaxed) *
                      1e-9),
        "\n", "actsvc_request_duration_seconds_count{rpc=\"", kRpcs[r], "\"} ",
        cumulative, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP actsvc_elements_processed_total Tensor elements of "
                  "the requests answered successfully.\n"
                  "# TYPE actsvc_elements_processed_total counter\n");
  for (size_t r = 0; r < kRpcs.size(); ++r) {
    absl::StrAppend(&out, "actsvc_elements_processed_total{rpc=\"", kRpcs[r],
                    "\"} ", rpcs_[r].elements.load(std::memory_order_relaxed),
                    "\n");
  }
  absl::StrAppend(&out,
                  "# HELP actsvc_calls_in_flight Compute calls started and "
                  "not yet ended.\n"
                  "# TYPE actsvc_calls_in_flight gauge\n"
                  "actsvc_calls_in_flight ",
                  calls_in_flight, "\n");
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, std::function<std::string()> render) {
  static const unsigned kInitialized = mg_init_library(0);
  (void)kInitialized;

  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->render_ = std::move(render);
  // civetweb reports why it cannot start through this callback only.
  struct StartError {
    static int Log(const ::mg_connection* /*connection*/, const char* message) {
      Message() = message;
      return 1;
    }
    static std::string& Message() {
      static thread_local std::string message;
      return message;
    }
  };
  StartError::Message().clear();
  mg_callbacks callbacks{};
  callbacks.log_message = &StartError::Log;
  const char* options[] = {
      "listening_ports",    address.c_str(), "num_threads", "2",
      "request_timeout_ms", "10000",         nullptr};
  server->context_ = mg_start(&callbacks, nullptr, options);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ",
                     StartError::Message().empty() ? "civetweb failed to start"
                                                   : StartError::Message()));
  }
  mg_server_port ports[4] = {};
  const int count = mg_get_server_ports(server->context_, 4, ports);
  if (count > 0) server->port_ = ports[0].port;
  mg_set_request_handler(server->context_, "/metrics$",
                         &MetricsHttpServer::HandleMetrics, server.get());
  return server;
}

int MetricsHttpServer::HandleMetrics(::mg_connection* connection, void* self) {
  const std::string body = static_cast<MetricsHttpServer*>(self)->render_();
  mg_send_http_ok(connection, "text/plain; version=0.0.4; charset=utf-8",
                  static_cast<long long>(body.size()));
  mg_write(connection, body.data(), body.size());
  return 200;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (context_ != nullptr) mg_stop(context_);
}

}  // namespace actsvc::server
