// The HTTP endpoint (civetweb): a table of routes, each answered by a
// handler that takes a whole request and returns a whole response. Handlers
// of routes marked `compute` are admitted by the same CallTracker as gRPC
// calls (draining, --max_concurrent_calls, the in-flight count) and run on
// the server's worker pool, so the compute-thread and concurrency limits
// hold for HTTP as for gRPC; civetweb's own threads (--http_threads) only
// read requests and write answers.
//
// Why civetweb: it is packaged in Debian 12 (libcivetweb-dev), is a small C
// library with no dependencies of its own, runs its own few threads apart
// from gRPC's, and a handler takes a few lines. libmicrohttpd would do as
// well but needs more code per response; Boost.Beast would mean writing the
// server loop ourselves.
#ifndef ACTSVC_SERVER_HTTP_SERVER_H_
#define ACTSVC_SERVER_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/calls.h"
#include "server/options.h"
#include "server/worker_pool.h"

struct mg_context;
struct mg_connection;

namespace actsvc::server {

struct HttpRequest {
  std::string method;  // "GET", "POST"
  std::string path;    // "/v2/models/gelu/infer", without the query
  std::string query;   // after '?', or empty
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When the request was read, before admission and the compute queue.
  std::chrono::steady_clock::time_point received;

  // The value of header `name` (case-insensitive), or nullptr.
  const std::string* Header(absl::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpRoute {
  std::string method;  // "GET", "POST"
  // A path, or a prefix when it ends in '/' ("/v2/models/").
  std::string path;
  HttpHandler handler;
  // Admits the call through the CallTracker and runs the handler on the
  // worker pool instead of the civetweb thread.
  bool compute = false;
  // How admission errors name the call ("ModelInfer").
  std::string name = "HTTP request";
};

struct HttpServerOptions {
  // "host:port" or "port" (all interfaces); port 0 picks a free one.
  std::string address;
  int threads = kDefaultHttpThreads;
  // Larger request bodies get 413 before they are read.
  int64_t max_body_bytes = int64_t{kDefaultMaxMessageMb} << 20;
};

class HttpServer {
 public:
  // UNAVAILABLE when it cannot listen. `workers` runs compute routes after
  // `calls` admits them; both must outlive the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, std::vector<HttpRoute> routes,
      WorkerPool* workers, CallTracker* calls);
  ~HttpServer();  // stops serving, waiting for requests in progress
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static int HandleRequest(::mg_connection* connection, void* self);
  // The route for method and path: nullptr with *status 404 (no path) or
  // 405 (no method).
  const HttpRoute* Match(absl::string_view method, absl::string_view path,
                         int* status) const;

  std::vector<HttpRoute> routes_;
  HttpServerOptions options_;
  HttpResponse RunCompute(const HttpRoute& route,
                          const HttpRequest& request) const;

  WorkerPool* workers_ = nullptr;
  CallTracker* calls_ = nullptr;
  ::mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_HTTP_SERVER_H_
