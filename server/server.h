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
#include "server/service.h"

namespace actsvc::server {

struct ServerOptions {
  std::string address = "0.0.0.0:50051";  // port 0 picks a free port
  // Largest request and response, in MiB: gRPC refuses larger requests, the
  // service larger responses (both with RESOURCE_EXHAUSTED).
  int max_message_mb = 64;
  int compute_threads = 1;
  int64_t chunk_elements = 65536;
  // When > 0, a connection older than this gets a GOAWAY (and this long
  // again to finish its calls), so that clients re-resolve and spread over
  // new replicas. 0: connections live as long as the client keeps them.
  int max_connection_age_s = 0;
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

  // Health turns NOT_SERVING and new calls are refused (UNAVAILABLE); calls
  // in flight may finish within `grace`, after which they are cancelled.
  // Returns once every call has ended.
  void Shutdown(absl::Duration grace);

 private:
  Server() = default;

  std::unique_ptr<ActivationServiceImpl> service_;  // outlives server_
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string bound_address_;
  bool shut_down_ = false;
};

// The host of "host:port" (IPv6 hosts keep their brackets).
std::string HostOf(const std::string& address);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_SERVER_H_
