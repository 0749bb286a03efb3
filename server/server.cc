#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace actsvc::server {

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return address;
  return address.substr(0, colon);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  if (options.max_message_mb < 1 || options.max_message_mb > 2047) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_mb = ", options.max_message_mb,
                     " is outside 1..2047 (gRPC limits are int bytes)"));
  }
  if (options.max_elements < 0 || options.max_concurrent_calls < 0 ||
      options.max_jacobian_mb < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_elements = ", options.max_elements,
                     ", max_concurrent_calls = ", options.max_concurrent_calls,
                     " and max_jacobian_mb = ", options.max_jacobian_mb,
                     " must be >= 0 (0: no limit)"));
  }
  constexpr int kMaxSeconds = 2000000;  // keeps milliseconds in an int
  if (options.keepalive_time_s < 0 || options.keepalive_time_s > kMaxSeconds ||
      options.keepalive_timeout_s < 1 ||
      options.keepalive_timeout_s > kMaxSeconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keepalive_time_s = ", options.keepalive_time_s, " must be in 0..",
        kMaxSeconds, " and keepalive_timeout_s = ", options.keepalive_timeout_s,
        " in 1..", kMaxSeconds));
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  // Process-wide switches; both must be set before a builder is created.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  const int max_bytes = options.max_message_mb * 1024 * 1024;
  ServiceOptions service_options;
  service_options.max_message_bytes = max_bytes;
  service_options.compute_threads = options.compute_threads;
  service_options.chunk_elements = options.chunk_elements;
  service_options.parallel_threshold_elements =
      options.parallel_threshold_elements;
  service_options.max_elements = options.max_elements;
  service_options.max_concurrent_calls = options.max_concurrent_calls;
  service_options.max_jacobian_bytes = int64_t{options.max_jacobian_mb} << 20;
  service_options.before_compute_for_testing =
      options.before_compute_for_testing;

  std::unique_ptr<Server> server(new Server());
  server->service_ =
      std::make_unique<ActivationServiceImpl>(std::move(service_options));

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, *credentials, &server->port_);
  // gRPC sets SO_REUSEPORT by default: a second server on a busy port would
  // start "successfully" and take half the connections. Fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (options.max_connection_age_s > 0) {
    const int age_ms = options.max_connection_age_s * 1000;
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, age_ms);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, age_ms);
  }
  if (options.keepalive_time_s > 0) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                               options.keepalive_time_s * 1000);
  }
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             options.keepalive_timeout_s * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             options.keepalive_permit_without_calls ? 1 : 0);
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  builder.RegisterService(server->service_.get());
  builder.RegisterCallbackGenericService(server->service_->unary_methods());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.address,
        options.tls.enabled()
            ? " (or the TLS certificate, key or client CA is not valid PEM, "
              "or the key does not match the certificate)"
            : ""));
  }
  server->bound_address_ =
      absl::StrCat(HostOf(options.address), ":", server->port_);

  if (!options.metrics_address.empty()) {
    ActivationServiceImpl* service = server->service_.get();
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> metrics =
        MetricsHttpServer::Start(options.metrics_address, [service] {
          return service->RenderMetrics();
        });
    if (!metrics.ok()) return metrics.status();
    server->metrics_http_ = *std::move(metrics);
  }

  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(v1::ActivationService::service_full_name(), true);
  return server;
}

namespace {
// How long a drained server lets gRPC's GOAWAY reach its clients.
constexpr int kGoawayMs = 500;
// How long a server refuses new calls (and says NOT_SERVING) before closing.
constexpr int kLameDuckMs = 300;
}  // namespace

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  // Probes see NOT_SERVING first, so load balancers stop sending; calls that
  // start from now on are refused, and the ones already started (a large
  // request may still be uploading) get the grace period to end. gRPC's own
  // Shutdown would also wait for idle client connections to close; ours ends
  // soon after the last call does, and cancels whatever outlives the grace.
  server_->GetHealthCheckService()->SetServingStatus(false);
  service_->StartDraining();
  // Clients that watch health (round_robin with a healthCheckConfig) stop
  // picking this server once they see NOT_SERVING: give them that moment
  // even when no call is in flight.
  const absl::Time lame_duck_end =
      absl::Now() + absl::Milliseconds(kLameDuckMs);
  const bool idle = service_->WaitUntilIdle(grace);
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
  metrics_http_.reset();
}

Server::~Server() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

}  // namespace actsvc::server
