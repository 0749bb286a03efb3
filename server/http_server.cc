#include "server/http_server.h"

#include <civetweb.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/status.h"

namespace actsvc::server {
namespace {

// {"error": message}, the form the Open Inference Protocol's clients read
// (and a plain reader too).
HttpResponse Error(int status, absl::string_view message) {
  HttpResponse response;
  response.status = status;
  response.content_type = "application/json";
  response.body = "{\"error\":\"";
  for (const char c : message) {
    if (c == '"' || c == '\\') {
      response.body += '\\';
      response.body += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&response.body, "\\u00",
                      absl::Hex(static_cast<unsigned>(c), absl::kZeroPad2));
    } else {
      response.body += c;
    }
  }
  response.body += "\"}\n";
  return response;
}

// Reads the request line, headers and body; nullopt-like status != 0 when
// the request must be refused before a handler sees it.
int ReadRequest(::mg_connection* connection, int64_t max_body_bytes,
                HttpRequest* request) {
  const mg_request_info* info = mg_get_request_info(connection);
  request->method = info->request_method ? info->request_method : "";
  request->path = info->local_uri ? info->local_uri : "";
  request->query = info->query_string ? info->query_string : "";
  for (int i = 0; i < info->num_headers; ++i) {
    request->headers.emplace_back(info->http_headers[i].name,
                                  info->http_headers[i].value);
  }
  if (info->content_length > max_body_bytes) return 413;
  if (info->content_length > 0) {
    request->body.reserve(static_cast<size_t>(info->content_length));
  }
  char buffer[65536];
  for (int n; (n = mg_read(connection, buffer, sizeof(buffer))) > 0;) {
    if (static_cast<int64_t>(request->body.size()) + n > max_body_bytes) {
      return 413;
    }
    request->body.append(buffer, static_cast<size_t>(n));
  }
  return 0;
}

void Send(::mg_connection* connection, const HttpResponse& response) {
  mg_response_header_start(connection, response.status);
  mg_response_header_add(connection, "Content-Type",
                         response.content_type.c_str(), -1);
  const std::string length = absl::StrCat(response.body.size());
  mg_response_header_add(connection, "Content-Length", length.c_str(), -1);
  for (const auto& [name, value] : response.headers) {
    mg_response_header_add(connection, name.c_str(), value.c_str(),
                           static_cast<int>(value.size()));
  }
  mg_response_header_send(connection);
  mg_write(connection, response.body.data(), response.body.size());
}

}  // namespace

const std::string* HttpRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, std::vector<HttpRoute> routes,
    WorkerPool* workers, CallTracker* calls) {
  static const unsigned kInitialized = mg_init_library(0);
  (void)kInitialized;

  std::unique_ptr<HttpServer> server(new HttpServer());
  server->routes_ = std::move(routes);
  server->options_ = options;
  server->workers_ = workers;
  server->calls_ = calls;
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
  const std::string threads = absl::StrCat(options.threads);
  const char* civetweb_options[] = {"listening_ports",
                                    options.address.c_str(),
                                    "num_threads",
                                    threads.c_str(),
                                    "request_timeout_ms",
                                    "10000",
                                    nullptr};
  server->context_ = mg_start(&callbacks, nullptr, civetweb_options);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", options.address, ": ",
                     StartError::Message().empty() ? "civetweb failed to start"
                                                   : StartError::Message()));
  }
  mg_server_port ports[4] = {};
  const int count = mg_get_server_ports(server->context_, 4, ports);
  if (count > 0) server->port_ = ports[0].port;
  mg_set_request_handler(server->context_, "/", &HttpServer::HandleRequest,
                         server.get());
  return server;
}

const HttpRoute* HttpServer::Match(absl::string_view method,
                                   absl::string_view path, int* status) const {
  *status = 404;
  for (const HttpRoute& route : routes_) {
    const bool prefix = !route.path.empty() && route.path.back() == '/';
    const bool matches =
        prefix ? absl::StartsWith(path, route.path) : path == route.path;
    if (!matches) continue;
    if (route.method == method) return &route;
    *status = 405;
  }
  return nullptr;
}

int HttpServer::HandleRequest(::mg_connection* connection, void* self) {
  const HttpServer& server = *static_cast<HttpServer*>(self);
  HttpRequest request;
  if (ReadRequest(connection, server.options_.max_body_bytes, &request) ==
      413) {
    Send(connection,
         Error(413, absl::StrCat("the request body is over the limit of ",
                                 server.options_.max_body_bytes,
                                 " bytes (--max_message_mb)")));
    return 413;
  }
  request.received = std::chrono::steady_clock::now();
  int status;
  const HttpRoute* route = server.Match(request.method, request.path, &status);
  HttpResponse response;
  if (route == nullptr) {
    response = Error(
        status,
        absl::StrCat(status == 404 ? "no such path: " : "method not allowed: ",
                     request.method, " ", request.path));
  } else if (!route->compute) {
    response = route->handler(request);
  } else {
    response = server.RunCompute(*route, request);
  }
  Send(connection, response);
  return response.status;
}

HttpResponse HttpServer::RunCompute(const HttpRoute& route,
                                    const HttpRequest& request) const {
  const CallTracker::Scope scope(calls_);
  if (absl::Status admitted = calls_->CheckAdmission(route.name, scope);
      !admitted.ok()) {
    return Error(ToHttpStatus(admitted.code()), admitted.message());
  }
  HttpResponse response;
  absl::Notification done;
  workers_->Submit([&] {
    response = route.handler(request);
    done.Notify();
  });
  done.WaitForNotification();
  return response;
}

HttpServer::~HttpServer() {
  if (context_ != nullptr) mg_stop(context_);
}

}  // namespace actsvc::server
