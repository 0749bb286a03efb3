// actsvc-server: parses flags, serves until SIGTERM or SIGINT, then drains.
// Every flag's default and range check lives in server/options.h.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/activation.h"
#include "server/memory.h"
#include "server/options.h"
#include "server/server.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

#ifndef ACTSVC_VERSION
#define ACTSVC_VERSION "unknown"
#endif

namespace {
const actsvc::server::ServerOptions kDefaults;
}  // namespace

ABSL_FLAG(std::string, address, kDefaults.address,
          "host:port to listen on; port 0 picks a free port (logged)");
ABSL_FLAG(int, max_message_mb, kDefaults.max_message_mb,
          "largest request and response in MiB (1..2047); larger requests "
          "and responses fail with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, memory_cache_mb, kDefaults.memory_cache_mb,
          "MiB of free memory kept for the next calls' tensors and messages "
          "(0..1048576); beyond it, free memory goes back to the system "
          "within a second");
ABSL_FLAG(int, shutdown_grace_s, kDefaults.shutdown_grace_s,
          "on SIGTERM/SIGINT, seconds in-flight calls may take to finish");
ABSL_FLAG(std::string, log_level, kDefaults.log_level,
          "trace, debug (one line per request), info, warn or error");
ABSL_FLAG(int, max_connection_age_s, kDefaults.max_connection_age_s,
          "when > 0, close connections older than this (after letting their "
          "calls finish) so clients re-resolve and reach new replicas");
ABSL_FLAG(int64_t, max_elements, kDefaults.max_elements,
          "when > 0, requests whose tensor has more elements fail with "
          "RESOURCE_EXHAUSTED (0: only --max_message_mb limits them)");
ABSL_FLAG(int, max_concurrent_calls, kDefaults.max_concurrent_calls,
          "when > 0, compute calls beyond this many in flight fail at once "
          "with RESOURCE_EXHAUSTED instead of queueing (0: no limit)");
ABSL_FLAG(int, max_jacobian_mb, kDefaults.max_jacobian_mb,
          "when > 0, dense Jacobians (c*c values per row of c) larger than "
          "this many MiB fail with RESOURCE_EXHAUSTED (0: only "
          "--max_message_mb limits them)");
ABSL_FLAG(int, keepalive_time_s, kDefaults.keepalive_time_s,
          "when > 0, ping idle client connections this often and close "
          "those that do not answer (0: gRPC's default, 2 hours)");
ABSL_FLAG(int, keepalive_timeout_s, kDefaults.keepalive_timeout_s,
          "seconds to wait for a keepalive ping's answer");
ABSL_FLAG(bool, keepalive_permit_without_calls,
          kDefaults.keepalive_permit_without_calls,
          "let clients send keepalive pings on connections with no call "
          "(otherwise gRPC sends such clients GOAWAY)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server; with --tls_key, serve TLS "
          "only");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; when given, clients must present a certificate it "
          "verifies (mutual TLS)");
ABSL_FLAG(std::string, metrics_address, kDefaults.metrics_address,
          "when set, host:port (or port) of an HTTP endpoint serving "
          "Prometheus metrics at /metrics (off by default)");
ABSL_FLAG(std::string, http_address, kDefaults.http_address,
          "when set, host:port (or port) of the KServe v2 REST endpoint "
          "(/v2/...; off by default; the gRPC port always serves KServe v2 "
          "as inference.GRPCInferenceService)");
ABSL_FLAG(int, http_threads, kDefaults.http_threads,
          "threads of the HTTP endpoint that read requests and write "
          "answers (its compute runs on the --compute_threads)");
ABSL_FLAG(int, compute_threads, kDefaults.compute_threads,
          "threads computing requests (0: one per CPU)");
ABSL_FLAG(int, inline_compute_kb, kDefaults.inline_compute_kb,
          "unary requests (all but the streams) of at most this many KiB, "
          "whose response is no larger, are computed on the gRPC thread "
          "that read them, saving the hop to a compute thread (0..2096128; "
          "0: never)");
ABSL_FLAG(int64_t, parallel_threshold_elements,
          kDefaults.parallel_threshold_elements,
          "a request with at least this many elements computes its chunks "
          "on up to --compute_threads threads");

namespace {

actsvc::server::Server* volatile g_exiting_server = nullptr;

actsvc::server::ServerOptions OptionsFromFlags() {
  actsvc::server::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  options.memory_cache_mb = absl::GetFlag(FLAGS_memory_cache_mb);
  options.shutdown_grace_s = absl::GetFlag(FLAGS_shutdown_grace_s);
  options.log_level = absl::GetFlag(FLAGS_log_level);
  options.compute_threads = absl::GetFlag(FLAGS_compute_threads);
  options.inline_compute_kb = absl::GetFlag(FLAGS_inline_compute_kb);
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
  options.http_address = absl::GetFlag(FLAGS_http_address);
  options.http_threads = absl::GetFlag(FLAGS_http_threads);
  return options;
}

// -h, --help, -help or --helpshort before any "--".
bool WantsHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "-h" || arg == "--help" || arg == "-help" ||
        arg == "--helpshort" || arg == "-helpshort") {
      return true;
    }
  }
  return false;
}

// Abseil's own --help lists only the flags of a file named after the
// program (actsvc-server.cc), so it printed "No flags matched" and exited
// 1. This lists the flags of this file, on stdout, for an exit code of 0.
void PrintHelp() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    // Abseil keeps __FILE__ without its leading '/'.
    if (absl::EndsWith(__FILE__, flag->Filename())) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  std::printf("%s\n\nusage: actsvc-server [flags]\n\nflags:\n",
              std::string(absl::ProgramUsageMessage()).c_str());
  for (const absl::CommandLineFlag* flag : flags) {
    const std::string default_value = flag->DefaultValue();
    std::printf("  --%s%s\n      %s\n", std::string(flag->Name()).c_str(),
                default_value.empty()
                    ? ""
                    : absl::StrCat(" (default: ", default_value, ")").c_str(),
                flag->Help().c_str());
  }
  std::printf(
      "  --version\n      print the version and exit\n"
      "  -h, --help\n      this message\n");
}

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("actsvc");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

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
  if (WantsHelp(argc, argv)) {
    PrintHelp();
    return 0;
  }
  absl::ParseCommandLine(argc, argv);

  const actsvc::server::ServerOptions options = OptionsFromFlags();
  const absl::Status valid = actsvc::server::CheckOptions(options);
  SetUpLogging(valid.ok() ? options.log_level : "info");
  if (!valid.ok()) {
    spdlog::error("{}", std::string(valid.message()));
    return 2;
  }

  actsvc::server::ConfigureAllocator(options.memory_cache_bytes());
  // Debian builds Abseil without NDEBUG, so every absl::Mutex lock, gRPC's
  // own included, would also record the lock order in a global graph to
  // detect deadlocks (4-5% of the server's CPU on small calls). The tests,
  // which start servers in their own processes, keep the detection.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Blocked before any thread starts, so every thread inherits the mask and
  // the signals wait for sigwait below instead of running a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

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
      options.max_message_mb, (*server)->compute_threads(),
      options.shutdown_grace_s, actsvc::KernelTargetName());
  const actsvc::server::MemoryKeeper memory(options.memory_cache_bytes(),
                                            absl::Seconds(1));
  if ((*server)->metrics_port() != 0) {
    spdlog::info(
        "Prometheus metrics at /metrics on port {} (--metrics_address={})",
        (*server)->metrics_port(), options.metrics_address);
  }

  if ((*server)->http_port() != 0) {
    spdlog::info("KServe v2 REST at /v2 on port {} (--http_address={})",
                 (*server)->http_port(), options.http_address);
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}; health NOT_SERVING, draining for up to {} s",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
               options.shutdown_grace_s);
  (*server)->Shutdown(absl::Seconds(options.shutdown_grace_s));
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
