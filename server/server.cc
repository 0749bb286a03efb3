#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.pb.h"
#include "server/kserve/rest.h"

namespace actsvc::server {
namespace {

// How long a drained server lets gRPC's GOAWAY reach its clients.
constexpr int kGoawayMs = 500;
// How long a server refuses new calls (and says NOT_SERVING) before closing.
constexpr int kLameDuckMs = 300;
// How far over --max_message_mb gRPC still reads a request (2047 MiB, the
// largest limit, plus this still fits an int).
constexpr int kRequestHeadroomBytes = 64 << 10;

}  // namespace

void AddChannelArguments(const ServerOptions& options,
                         grpc::ServerBuilder* builder) {
  // gRPC sets SO_REUSEPORT by default: a second server on a busy port would
  // start "successfully" and take half the connections. Fail instead.
  builder->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (options.max_connection_age_s > 0) {
    const int age_ms = options.max_connection_age_s * 1000;
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, age_ms);
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, age_ms);
  }
  if (options.keepalive_time_s > 0) {
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                                options.keepalive_time_s * 1000);
  }
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                              options.keepalive_timeout_s * 1000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                              options.keepalive_permit_without_calls ? 1 : 0);
  // gRPC refuses requests over its limit in its own words; a little
  // headroom lets those just over ours reach the calls, which refuse them
  // naming --max_message_mb (calls.cc). Responses keep the exact limit.
  const int max_bytes = static_cast<int>(options.max_message_bytes());
  builder->SetMaxReceiveMessageSize(max_bytes + kRequestHeadroomBytes);
  builder->SetMaxSendMessageSize(max_bytes);
}

namespace {

ComputeContext ComputeDefaults(const ServerOptions& options,
                               ChunkPool* chunk_pool) {
  ComputeContext compute;
  compute.max_message_bytes = options.max_message_bytes();
  compute.max_jacobian_bytes = options.max_jacobian_bytes();
  compute.max_elements = options.max_elements;
  compute.chunk_elements = options.chunk_elements;
  compute.chunk_pool = chunk_pool;
  compute.parallel_threshold_elements = options.parallel_threshold_elements;
  return compute;
}

// The port of "host:port" when another socket listens on it (so that our
// listener cannot bind it), else 0. Binding the way gRPC does (SO_REUSEADDR,
// no SO_REUSEPORT) and closing at once leaves nothing behind.
int PortInUse(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port <= 0) {
    return 0;
  }
  absl::string_view host = absl::string_view(address).substr(0, colon);
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string host_text(host);
  if (getaddrinfo(host_text.empty() ? nullptr : host_text.c_str(),
                  address.c_str() + colon + 1, &hints, &found) != 0) {
    return 0;
  }
  bool in_use = false;
  for (addrinfo* a = found; a != nullptr && !in_use; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    in_use = bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
  }
  freeaddrinfo(found);
  return in_use ? port : 0;
}

absl::Status PortInUseError(int port) {
  return absl::UnavailableError(absl::StrCat(
      "port ", port, " is in use; pass --address or stop the other server"));
}

}  // namespace

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return address;
  return address.substr(0, colon);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  if (absl::Status valid = CheckOptions(options); !valid.ok()) return valid;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  // gRPC's default health service parses its messages without protobuf, so
  // nothing else links health.proto's descriptor. Reflection lists the
  // service all the same; naming the descriptor here keeps the generated
  // code in the binary and puts the file in the pool reflection reads.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  // Process-wide switches; both must be set before a builder is created.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  // Before gRPC tries: its own failure is several lines of internal detail.
  if (const int busy = PortInUse(options.address); busy != 0) {
    return PortInUseError(busy);
  }

  std::unique_ptr<Server> server(new Server());
  RegisterActivationService(&server->methods_);
  server->kserve_ = std::make_unique<kserve::InferenceService>();
  server->kserve_->Register(&server->methods_);
  std::vector<std::pair<std::string, std::string>> names;
  for (const Method& method : server->methods_.methods()) {
    names.emplace_back(method.api, method.name);
  }
  server->metrics_ = std::make_unique<Metrics>(names);
  server->calls_ = std::make_unique<CallTracker>(options.max_concurrent_calls,
                                                 server->metrics_.get());
  const int threads = ComputeThreads(options);
  server->chunk_pool_ = std::make_unique<ChunkPool>(threads - 1);
  server->workers_ = std::make_unique<WorkerPool>(threads);
  CallEnvironment env;
  env.methods = &server->methods_;
  env.calls = server->calls_.get();
  env.workers = server->workers_.get();
  env.inline_compute_bytes = options.inline_compute_bytes();
  env.compute = ComputeDefaults(options, server->chunk_pool_.get());
  env.before_compute_for_testing = options.before_compute_for_testing;
  server->generic_service_ = std::make_unique<GenericService>(std::move(env));

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, *credentials, &server->port_);
  AddChannelArguments(options, &builder);
  server->activation_service_ = std::make_unique<GeneratedActivationService>(
      server->generic_service_.get());
  builder.RegisterService(server->activation_service_.get());
  server->inference_service_ =
      std::make_unique<kserve::GeneratedInferenceService>(
          server->generic_service_.get());
  builder.RegisterService(server->inference_service_.get());
  builder.RegisterCallbackGenericService(server->generic_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    // Taken meanwhile?
    if (const int busy = PortInUse(options.address); busy != 0) {
      return PortInUseError(busy);
    }
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.address,
        options.tls.enabled()
            ? " (or the TLS certificate, key or client CA is not valid PEM, "
              "or the key does not match the certificate)"
            : ""));
  }
  server->bound_address_ =
      absl::StrCat(HostOf(options.address), ":", server->port_);

  if (absl::Status http = server->StartHttp(options); !http.ok()) return http;
  if (absl::Status rest = server->StartRest(options); !rest.ok()) return rest;

  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(v1::ActivationService::service_full_name(), true);
  health->SetServingStatus(inference::GRPCInferenceService::service_full_name(),
                           true);
  return server;
}

absl::Status Server::StartHttp(const ServerOptions& options) {
  if (options.metrics_address.empty()) return absl::OkStatus();
  const CallTracker* calls = calls_.get();
  HttpRoute metrics{"GET", "/metrics", [calls](const HttpRequest&) {
                      HttpResponse response;
                      response.content_type =
                          "text/plain; version=0.0.4; charset=utf-8";
                      response.body = calls->RenderMetrics();
                      return response;
                    }};
  HttpServerOptions http;
  http.address = options.metrics_address;
  http.threads = options.http_threads;
  http.max_body_bytes = options.max_message_bytes();
  absl::StatusOr<std::unique_ptr<HttpServer>> started = HttpServer::Start(
      http, {std::move(metrics)}, workers_.get(), calls_.get());
  if (!started.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics: ", started.status().message()));
  }
  http_ = *std::move(started);
  return absl::OkStatus();
}

absl::Status Server::StartRest(const ServerOptions& options) {
  if (options.http_address.empty()) return absl::OkStatus();
  HttpServerOptions http;
  http.address = options.http_address;
  http.threads = options.http_threads;
  http.max_body_bytes = options.max_message_bytes();
  absl::StatusOr<std::unique_ptr<HttpServer>> started = HttpServer::Start(
      http,
      kserve::RestRoutes(kserve_.get(),
                         ComputeDefaults(options, chunk_pool_.get())),
      workers_.get(), calls_.get());
  if (!started.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot serve KServe v2 REST: ",
                                               started.status().message()));
  }
  rest_ = *std::move(started);
  return absl::OkStatus();
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  // Probes see NOT_SERVING first, so load balancers stop sending; calls that
  // start from now on are refused, and the ones already started (a large
  // request may still be uploading) get the grace period to end. gRPC's own
  // Shutdown would also wait for idle client connections to close; ours ends
  // soon after the last call does, and cancels whatever outlives the grace.
  server_->GetHealthCheckService()->SetServingStatus(false);
  calls_->StartDraining();
  // Clients that watch health (round_robin with a healthCheckConfig) stop
  // picking this server once they see NOT_SERVING: give them that moment
  // even when no call is in flight.
  const absl::Time lame_duck_end =
      absl::Now() + absl::Milliseconds(kLameDuckMs);
  const bool idle = calls_->WaitUntilIdle(grace);
  absl::SleepFor(std::min(grace, lame_duck_end - absl::Now()));
  // Clients still send new calls here until gRPC's GOAWAY reaches them, and
  // a call cut by the final cancellation would fail as CANCELLED, which no
  // client retries. So gRPC gets a moment to say GOAWAY (the calls that
  // arrive meanwhile are refused with UNAVAILABLE, which clients retry)
  // before it cancels what is left.
  server_->Shutdown(std::chrono::system_clock::now() +
                    (idle ? std::chrono::milliseconds(kGoawayMs)
                          : std::chrono::milliseconds(0)));
  server_->Wait();
  // Scrapes could watch the drain until here. civetweb takes up to its poll
  // quantum (2 s) to stop.
  http_.reset();
  rest_.reset();
}

Server::~Server() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

}  // namespace actsvc::server
