// The whole server as main runs it (and as the tests run it in-process):
// ActivationService with health checking and reflection, message limits, and
// a draining shutdown.
#ifndef ACTSVC_SERVER_SERVER_H_
#define ACTSVC_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/metrics.h"
#include "server/service.h"
#include "server/tls.h"

namespace actsvc::server {

struct ServerOptions {
  std::string address = "0.0.0.0:50051";  // port 0 picks a free port
  // Largest request and response, in MiB: gRPC refuses larger requests, the
  // service larger responses (both with RESOURCE_EXHAUSTED).
  int max_message_mb = 64;
  int compute_threads = 1;
  int64_t chunk_elements = 65536;
  // See ServiceOptions: larger work splits its chunks over compute_threads.
  int64_t parallel_threshold_elements = int64_t{1} << 20;
  // When > 0, a connection older than this gets a GOAWAY (and this long
  // again to finish its calls), so that clients re-resolve and spread over
  // new replicas. 0: connections live as long as the client keeps them.
  int max_connection_age_s = 0;
  // See ServiceOptions: 0 means no limit.
  int64_t max_elements = 0;
  int max_concurrent_calls = 0;
  // When > 0, dense Jacobians over this many MiB of values are refused
  // with RESOURCE_EXHAUSTED (0: only max_message_mb limits them).
  int max_jacobian_mb = 0;
  // When > 0, the server pings an idle connection this often and closes it
  // when no answer comes within keepalive_timeout_s (0: gRPC's 2 hours).
  int keepalive_time_s = 0;
  int keepalive_timeout_s = 20;
  // Whether clients may send keepalive pings on connections with no call
  // (and the server pings those too); otherwise gRPC sends GOAWAY to
  // clients that do.
  bool keepalive_permit_without_calls = false;
  TlsFiles tls;  // all empty: plaintext
  // When set, "host:port" (or "port") of an HTTP endpoint serving
  // Prometheus metrics at /metrics; port 0 picks a free port.
  std::string metrics_address;
  std::function<void()> before_compute_for_testing;
};

class Server {
 public:
  // Binds and starts serving; health reports SERVING once this returns.
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options);

  // Shuts down if Shutdown was not called.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  // The address with the bound port, e.g. "0.0.0.0:50051".
  const std::string& bound_address() const { return bound_address_; }
  ActivationServiceImpl& service() { return *service_; }
  // The bound port of the metrics endpoint; 0 when it is off.
  int metrics_port() const {
    return metrics_http_ == nullptr ? 0 : metrics_http_->port();
  }

  // Health turns NOT_SERVING and new calls are refused (UNAVAILABLE); calls
  // in flight may finish within `grace`, after which they are cancelled.
  // Returns once every call has ended.
  void Shutdown(absl::Duration grace);

 private:
  Server() = default;

  std::unique_ptr<ActivationServiceImpl> service_;  // outlives server_
  std::unique_ptr<grpc::Server> server_;
  // Renders from service_, so it is declared (and destroyed) after it.
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  int port_ = 0;
  std::string bound_address_;
  bool shut_down_ = false;
};

// The host of "host:port" (IPv6 hosts keep their brackets).
std::string HostOf(const std::string& address);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_SERVER_H_
