// The whole server as main runs it (and as the tests run it in-process).
//
// The path of a request, whatever its protocol:
//   codec (server/v1/codec.h: the API's message → a request of ops.h)
//   → Validate (ops.h: every check of SPEC §3, one place)
//   → Run (compute.h: limits, chunks, deadlines, the core kernels)
//   → OutputSink (the codec's: compute writes into the response's memory)
//   → codec (the response message, serialized once).
// Around it: calls.h admits, counts and records each call and serves every
// gRPC method registered in the MethodTable through one callback generic
// service; compute runs on a WorkerPool (helpers for large requests on a
// ChunkPool); http_server.h serves /metrics (and any HTTP route) on the
// same worker pool. options.h holds every setting and its default.
#ifndef ACTSVC_SERVER_SERVER_H_
#define ACTSVC_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/calls.h"
#include "server/http_server.h"
#include "server/kserve/service.h"
#include "server/method_table.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/parallel.h"
#include "server/v1/service.h"
#include "server/worker_pool.h"

namespace actsvc::server {

// The gRPC channel arguments of `options` (connection age, keepalive,
// message limits, no SO_REUSEPORT), as actsvc-server sets them; the echo
// baseline of bench/ sets the same.
void AddChannelArguments(const ServerOptions& options,
                         grpc::ServerBuilder* builder);

class Server {
 public:
  // Checks the options, binds and starts serving; health reports SERVING
  // once this returns. INVALID_ARGUMENT for options out of range,
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
  CallTracker& calls() { return *calls_; }
  int compute_threads() const { return workers_->size(); }
  // The bound port of the HTTP endpoint; 0 when it is off.
  int metrics_port() const { return http_ == nullptr ? 0 : http_->port(); }
  // The bound port of the KServe v2 REST endpoint; 0 when it is off.
  int http_port() const { return rest_ == nullptr ? 0 : rest_->port(); }

  // Health turns NOT_SERVING and new calls are refused (UNAVAILABLE); calls
  // in flight may finish within `grace`, after which they are cancelled.
  // Returns once every call has ended.
  void Shutdown(absl::Duration grace);

 private:
  Server() = default;
  // The HTTP endpoint, when options.metrics_address is set.
  absl::Status StartHttp(const ServerOptions& options);
  // The KServe v2 REST endpoint, when options.http_address is set.
  absl::Status StartRest(const ServerOptions& options);

  // Destroyed in reverse order: the HTTP endpoint and the gRPC server go
  // first, then the workers (whose tasks use the services, the tracker and
  // the chunk pool), then what the calls used.
  MethodTable methods_;
  std::unique_ptr<kserve::InferenceService> kserve_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<CallTracker> calls_;
  std::unique_ptr<ChunkPool> chunk_pool_;
  std::unique_ptr<GenericService> generic_service_;
  std::unique_ptr<GeneratedActivationService> activation_service_;
  std::unique_ptr<kserve::GeneratedInferenceService> inference_service_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<HttpServer> rest_;
  int port_ = 0;
  std::string bound_address_;
  bool shut_down_ = false;
};

// The host of "host:port" (IPv6 hosts keep their brackets).
std::string HostOf(const std::string& address);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_SERVER_H_
