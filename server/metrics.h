// What the server tells its operators: per-method call counts by status
// code, latency histograms and elements processed, labelled by the API and
// the method, in the Prometheus text format (served at /metrics by
// http_server.h).
#ifndef ACTSVC_SERVER_METRICS_H_
#define ACTSVC_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace actsvc::server {

// Counters for a fixed list of methods; recording is thread-safe and
// lock-free.
class Metrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf is implied).
  static constexpr std::array<double, 14> kBucketSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1,     2.5,  5,     10};

  // (api, method) pairs, in output order; a method's index is its place.
  explicit Metrics(
      const std::vector<std::pair<std::string, std::string>>& methods);

  // The index of (api, method), or -1.
  int IndexOf(absl::string_view api, absl::string_view method) const;

  // Counts one finished call of method `index` (ignored when out of range).
  // `elements`: of the requests it answered.
  void RecordCall(int index, absl::StatusCode code, double elapsed_seconds,
                  int64_t elements);

  // The Prometheus text exposition format (version 0.0.4).
  std::string Render(int64_t calls_in_flight) const;

 private:
  static constexpr int kCodes = 17;
  struct PerMethod {
    std::string labels;  // api="...",rpc="..."
    std::string api;
    std::string method;
    std::array<std::atomic<int64_t>, kCodes> calls{};
    // Not cumulative: bucket i counts calls in (bound i-1, bound i]; the
    // last one is +Inf.
    std::array<std::atomic<int64_t>, kBucketSeconds.size() + 1> buckets{};
    std::atomic<int64_t> nanoseconds{0};
    std::atomic<int64_t> elements{0};
  };
  std::deque<PerMethod> methods_;  // a deque: atomics do not move
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_METRICS_H_
