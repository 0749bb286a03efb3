// actsvc-server: parses flags, serves until SIGTERM or SIGINT, then drains.
#include <signal.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/activation.h"
#include "server/server.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

#ifndef ACTSVC_VERSION
#define ACTSVC_VERSION "unknown"
#endif

ABSL_FLAG(std::string, address, "0.0.0.0:50051",
          "host:port to listen on; port 0 picks a free port (logged)");
ABSL_FLAG(int, max_message_mb, 64,
          "largest request and response in MiB (1..2047); larger requests "
          "and responses fail with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, shutdown_grace_s, 10,
          "on SIGTERM/SIGINT, seconds in-flight calls may take to finish");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug (one line per request), info, warn or error");
ABSL_FLAG(int, max_connection_age_s, 0,
          "when > 0, close connections older than this (after letting their "
          "calls finish) so clients re-resolve and reach new replicas");
ABSL_FLAG(int64_t, max_elements, 0,
          "when > 0, requests whose tensor has more elements fail with "
          "RESOURCE_EXHAUSTED (0: only --max_message_mb limits them)");
ABSL_FLAG(int, max_concurrent_calls, 0,
          "when > 0, compute calls beyond this many in flight fail at once "
          "with RESOURCE_EXHAUSTED instead of queueing (0: no limit)");
ABSL_FLAG(int, max_jacobian_mb, 0,
          "when > 0, dense Jacobians (c*c values per row of c) larger than "
          "this many MiB fail with RESOURCE_EXHAUSTED (0: only "
          "--max_message_mb limits them)");
ABSL_FLAG(int, keepalive_time_s, 0,
          "when > 0, ping idle client connections this often and close "
          "those that do not answer (0: gRPC's default, 2 hours)");
ABSL_FLAG(int, keepalive_timeout_s, 20,
          "seconds to wait for a keepalive ping's answer");
ABSL_FLAG(bool, keepalive_permit_without_calls, false,
          "let clients send keepalive pings on connections with no call "
          "(otherwise gRPC sends such clients GOAWAY)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server; with --tls_key, serve TLS "
          "only");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; when given, clients must present a certificate it "
          "verifies (mutual TLS)");
ABSL_FLAG(std::string, metrics_address, "",
          "when set, host:port (or port) of an HTTP endpoint serving "
          "Prometheus metrics at /metrics (off by default)");
ABSL_FLAG(int, compute_threads,
          static_cast<int>(std::thread::hardware_concurrency()),
          "threads computing requests (default: the number of CPUs)");
ABSL_FLAG(int64_t, parallel_threshold_elements, int64_t{1} << 20,
          "a request with at least this many elements computes its chunks "
          "on up to --compute_threads threads");

namespace {
actsvc::server::Server* volatile g_exiting_server = nullptr;
}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage_config;
  usage_config.version_string = [] {
    return std::string("actsvc-server " ACTSVC_VERSION "\n");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(
      "Serves actsvc.v1.ActivationService (gRPC), with health checking and "
      "reflection.");
  absl::ParseCommandLine(argc, argv);

  auto logger = spdlog::stderr_color_mt("actsvc");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  const std::string level_name = absl::GetFlag(FLAGS_log_level);
  const spdlog::level::level_enum level = spdlog::level::from_str(level_name);
  // from_str answers "off" for anything it does not know.
  if (level == spdlog::level::off && level_name != "off") {
    spdlog::error(
        "--log_level={} is not one of trace, debug, info, warn, "
        "error",
        level_name);
    return 2;
  }
  spdlog::set_level(level);

  // Blocked before any thread starts, so every thread inherits the mask and
  // the signals wait for sigwait below instead of running a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  actsvc::server::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  options.compute_threads = absl::GetFlag(FLAGS_compute_threads);
  options.parallel_threshold_elements =
      absl::GetFlag(FLAGS_parallel_threshold_elements);
  options.max_connection_age_s = absl::GetFlag(FLAGS_max_connection_age_s);
  options.max_elements = absl::GetFlag(FLAGS_max_elements);
  options.max_jacobian_mb = absl::GetFlag(FLAGS_max_jacobian_mb);
  options.max_concurrent_calls = absl::GetFlag(FLAGS_max_concurrent_calls);
  options.keepalive_time_s = absl::GetFlag(FLAGS_keepalive_time_s);
  options.keepalive_timeout_s = absl::GetFlag(FLAGS_keepalive_timeout_s);
  options.keepalive_permit_without_calls =
      absl::GetFlag(FLAGS_keepalive_permit_without_calls);
  options.tls.cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (options.max_connection_age_s < 0 ||
      options.max_connection_age_s > 2000000) {
    spdlog::error("--max_connection_age_s={} is outside 0..2000000",
                  options.max_connection_age_s);
    return 2;
  }
  if (options.compute_threads < 1) {
    options.compute_threads =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  const int grace_s = absl::GetFlag(FLAGS_shutdown_grace_s);
  if (grace_s < 0) {
    spdlog::error("--shutdown_grace_s={} is negative", grace_s);
    return 2;
  }

  absl::StatusOr<std::unique_ptr<actsvc::server::Server>> server =
      actsvc::server::Server::Start(options);
  if (!server.ok()) {
    spdlog::error("actsvc-server {}: {}", ACTSVC_VERSION,
                  std::string(server.status().message()));
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  spdlog::info(
      "actsvc-server {} listening on {} ({}, max_message_mb={}, "
      "compute_threads={}, shutdown_grace_s={}, kernels={})",
      ACTSVC_VERSION, (*server)->bound_address(),
      !options.tls.enabled()          ? "plaintext"
      : options.tls.client_ca.empty() ? "TLS"
                                      : "mutual TLS",
      options.max_message_mb, (*server)->service().compute_threads(), grace_s,
      actsvc::KernelTargetName());
  if ((*server)->metrics_port() != 0) {
    spdlog::info(
        "Prometheus metrics at /metrics on port {} (--metrics_address={})",
        (*server)->metrics_port(), options.metrics_address);
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}; health NOT_SERVING, draining for up to {} s",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT", grace_s);
  (*server)->Shutdown(absl::Seconds(grace_s));
  spdlog::info("shut down cleanly");
  // Every call has ended and the listener is closed. gRPC 1.51's server
  // destructor can then stall for about 10 s on connections a client still
  // holds open (grpc/grpc#41050), so the process exits without running it;
  // a global keeps the server reachable for the leak checker. (It is
  // volatile because the compiler drops stores to a static nobody reads,
  // and LeakSanitizer then reported the Server as leaked.)
  g_exiting_server = server->release();
  return 0;
}
