// What the server tells its operators: per-RPC call counts by status code,
// latency histograms and elements processed (Metrics), served in the
// Prometheus text format over HTTP by civetweb (MetricsHttpServer).
//
// Why civetweb: it is packaged in Debian 12 (libcivetweb-dev), is a small C
// library with no dependencies of its own, runs its own few threads apart
// from gRPC's, and one GET handler takes a few lines. libmicrohttpd would do
// as well but needs more code per response; Boost.Beast would mean writing
// the server loop ourselves.
#ifndef ACTSVC_SERVER_METRICS_H_
#define ACTSVC_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct mg_context;
struct mg_connection;

namespace actsvc::server {

// Counters for every RPC of ActivationService; thread-safe and lock-free.
class Metrics {
 public:
  // The RPCs counted, in output order.
  static constexpr std::array<absl::string_view, 7> kRpcs = {
      "Evaluate", "Derivative",    "Jacobian", "SoftmaxCrossEntropy",
      "Analyze",  "ListFunctions", "Stream"};
  // Upper bounds of the latency buckets, in seconds (+Inf is implied).
  static constexpr std::array<double, 14> kBucketSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1,     2.5,  5,     10};

  // Counts one finished call of `rpc` (ignored when not in kRpcs).
  // `elements`: of the requests it answered.
  void RecordCall(absl::string_view rpc, absl::StatusCode code,
                  double elapsed_seconds, int64_t elements);

  // The Prometheus text exposition format (version 0.0.4).
  std::string Render(int64_t calls_in_flight) const;

 private:
  static constexpr int kCodes = 17;
  struct PerRpc {
    std::array<std::atomic<int64_t>, kCodes> calls{};
    // Not cumulative: bucket i counts calls in (bound i-1, bound i]; the
    // last one is +Inf.
    std::array<std::atomic<int64_t>, kBucketSeconds.size() + 1> buckets{};
    std::atomic<int64_t> nanoseconds{0};
    std::atomic<int64_t> elements{0};
  };
  std::array<PerRpc, kRpcs.size()> rpcs_;
};

// GET /metrics on its own port, rendered from `render` on each scrape.
class MetricsHttpServer {
 public:
  // `address`: "host:port" or "port" (all interfaces); port 0 picks a free
  // one. UNAVAILABLE when it cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::function<std::string()> render);
  ~MetricsHttpServer();  // stops serving, waiting for scrapes in progress
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  static int HandleMetrics(::mg_connection* connection, void* self);

  std::function<std::string()> render_;
  ::mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_METRICS_H_
