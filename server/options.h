// Every setting of the server, each default written once: main's flags take
// their defaults from here, and CheckOptions holds every range check.
#ifndef ACTSVC_SERVER_OPTIONS_H_
#define ACTSVC_SERVER_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "server/tls.h"

namespace actsvc::server {

// Largest request and response: gRPC refuses larger requests, the service
// larger responses (both with RESOURCE_EXHAUSTED).
inline constexpr int kDefaultMaxMessageMb = 64;
// Work runs in chunks of about this many output elements; the deadline and
// cancellation are checked before each one.
inline constexpr int64_t kDefaultChunkElements = 65536;
// Work of at least this many elements splits its chunks over the compute
// threads (server/parallel.h).
inline constexpr int64_t kDefaultParallelThresholdElements = int64_t{1} << 20;
// Requests up to this size are parsed by protobuf whole, and response
// values under it written into the message (ComputeContext::
// small_message_bytes; the crossover measured in BENCHMARKS.md, "Small
// calls").
inline constexpr int64_t kDefaultSmallMessageBytes = 20 << 10;
// Threads of the HTTP endpoint that read requests and write answers.
inline constexpr int kDefaultHttpThreads = 2;
// Free memory kept for the next calls (server/memory.h).
inline constexpr int kDefaultMemoryCacheMb = 256;
// Unary requests up to this size, whose response is no larger, are
// computed on the gRPC thread that read them (server/calls.cc):
// one chunk of float32 values (kDefaultChunkElements), a few tens of
// microseconds of math, which costs less than a hop to a compute thread.
inline constexpr int kDefaultInlineComputeKb = 256;

struct ServerOptions {
  std::string address = "0.0.0.0:50051";      // port 0 picks a free port
  int max_message_mb = kDefaultMaxMessageMb;  // 1..2047
  // Free memory the process keeps for the next calls' tensors and messages
  // (server/memory.h); beyond it, free memory goes back to the system.
  int memory_cache_mb = kDefaultMemoryCacheMb;  // 0..1048576
  // Threads computing requests; 0 (or less) means one per CPU.
  int compute_threads = 0;
  // A unary request (every RPC but Stream, ModelStreamInfer and the
  // metadata ones) of at most this many KiB, whose response is no larger,
  // is computed on the gRPC thread that read it, not on a compute thread
  // (0: every call goes to the compute threads).
  int inline_compute_kb = kDefaultInlineComputeKb;  // 0..2096128
  int64_t chunk_elements = kDefaultChunkElements;
  int64_t parallel_threshold_elements = kDefaultParallelThresholdElements;
  // When > 0, a connection older than this gets a GOAWAY (and this long
  // again to finish its calls), so that clients re-resolve and spread over
  // new replicas. 0: connections live as long as the client keeps them.
  int max_connection_age_s = 0;
  // When > 0, a request whose main tensor (input, or logits) has more
  // elements is refused with RESOURCE_EXHAUSTED before any work is done.
  int64_t max_elements = 0;
  // When > 0, compute calls (all but ListFunctions; a stream counts once)
  // beyond this many in flight are refused at once with RESOURCE_EXHAUSTED
  // instead of waiting in an unbounded queue.
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
  // When set, "host:port" (or "port") of the HTTP endpoint, which serves
  // Prometheus metrics at /metrics; port 0 picks a free port.
  std::string metrics_address;
  // When set, "host:port" (or "port") of the Open Inference Protocol's
  // REST endpoint (KServe v2: /v2/...); port 0 picks a free port.
  std::string http_address;
  // Threads of each HTTP endpoint that read requests and write answers (the
  // compute of an HTTP call runs on the compute threads).
  int http_threads = kDefaultHttpThreads;
  // On SIGTERM/SIGINT, how long in-flight calls may take to finish.
  int shutdown_grace_s = 10;
  // trace, debug, info, warn, error or off.
  std::string log_level = "info";
  // Runs before each unary call's (or stream message's) compute, on the
  // thread that computes it. Tests use it to hold a call in flight, with
  // inline_compute_kb = 0 so that no gRPC thread is held.
  std::function<void()> before_compute_for_testing;

  int64_t max_message_bytes() const { return int64_t{max_message_mb} << 20; }
  int64_t memory_cache_bytes() const { return int64_t{memory_cache_mb} << 20; }
  int64_t max_jacobian_bytes() const { return int64_t{max_jacobian_mb} << 20; }
  int64_t inline_compute_bytes() const {
    return int64_t{inline_compute_kb} << 10;
  }
};

// INVALID_ARGUMENT naming the flag, its value and its range when one is out
// of range; OK otherwise.
absl::Status CheckOptions(const ServerOptions& options);

// compute_threads, with 0 resolved to the number of CPUs.
int ComputeThreads(const ServerOptions& options);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_OPTIONS_H_
