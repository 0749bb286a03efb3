#include "server/options.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"

namespace actsvc::server {
namespace {

// Keeps milliseconds in an int, as gRPC's channel arguments take them.
constexpr int kMaxSeconds = 2000000;

absl::Status OutOfRange(absl::string_view flag, int64_t value,
                        absl::string_view range) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, "=", value, " is outside ", range));
}

}  // namespace

absl::Status CheckOptions(const ServerOptions& o) {
  if (o.max_message_mb < 1 || o.max_message_mb > 2047) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_mb = ", o.max_message_mb,
                     " is outside 1..2047 (gRPC limits are int bytes)"));
  }
  if (o.memory_cache_mb < 0 || o.memory_cache_mb > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_cache_mb = ", o.memory_cache_mb,
                     " is out of range; expected 0..1048576 (MiB)"));
  }
  if (o.max_elements < 0 || o.max_concurrent_calls < 0 ||
      o.max_jacobian_mb < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_elements = ", o.max_elements, ", max_concurrent_calls = ",
        o.max_concurrent_calls, " and max_jacobian_mb = ", o.max_jacobian_mb,
        " must be >= 0 (0: no limit)"));
  }
  if (o.keepalive_time_s < 0 || o.keepalive_time_s > kMaxSeconds ||
      o.keepalive_timeout_s < 1 || o.keepalive_timeout_s > kMaxSeconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keepalive_time_s = ", o.keepalive_time_s, " must be in 0..",
        kMaxSeconds, " and keepalive_timeout_s = ", o.keepalive_timeout_s,
        " in 1..", kMaxSeconds));
  }
  if (o.max_connection_age_s < 0 || o.max_connection_age_s > kMaxSeconds) {
    return OutOfRange("max_connection_age_s", o.max_connection_age_s,
                      absl::StrCat("0..", kMaxSeconds));
  }
  if (o.inline_compute_kb < 0 || o.inline_compute_kb > 2096128) {
    return OutOfRange("inline_compute_kb", o.inline_compute_kb, "0..2096128");
  }
  if (o.chunk_elements < 1) {
    return OutOfRange("chunk_elements", o.chunk_elements, "1..");
  }
  if (o.parallel_threshold_elements < 0) {
    return OutOfRange("parallel_threshold_elements",
                      o.parallel_threshold_elements, "0..");
  }
  if (o.http_threads < 1 || o.http_threads > 1024) {
    return OutOfRange("http_threads", o.http_threads, "1..1024");
  }
  if (o.shutdown_grace_s < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--shutdown_grace_s=", o.shutdown_grace_s, " is negative"));
  }
  static constexpr absl::string_view kLevels[] = {"trace", "debug", "info",
                                                  "warn",  "error", "off"};
  if (std::find(std::begin(kLevels), std::end(kLevels), o.log_level) ==
      std::end(kLevels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level=", o.log_level,
                     " is not one of trace, debug, info, warn, error"));
  }
  return absl::OkStatus();
}

int ComputeThreads(const ServerOptions& options) {
  if (options.compute_threads > 0) return options.compute_threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace actsvc::server
