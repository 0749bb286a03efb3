#include "server/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace actsvc::server {
namespace {

std::string FormatSeconds(double seconds) {
  return absl::StrFormat("%g", seconds);
}

// A metric's HELP and TYPE lines, which open its series.
void AppendHeader(std::string* out, absl::string_view name,
                  absl::string_view help, absl::string_view type) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type,
                  "\n");
}

}  // namespace

Metrics::Metrics(
    const std::vector<std::pair<std::string, std::string>>& methods) {
  for (const auto& [api, method] : methods) {
    PerMethod& m = methods_.emplace_back();
    m.api = api;
    m.method = method;
    // `rpc` keeps the label name of the first release, so dashboards that
    // group by it still work; `api` tells protocols apart.
    m.labels = absl::StrCat("api=\"", api, "\",rpc=\"", method, "\"");
  }
}

int Metrics::IndexOf(absl::string_view api, absl::string_view method) const {
  for (size_t i = 0; i < methods_.size(); ++i) {
    if (methods_[i].api == api && methods_[i].method == method) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void Metrics::RecordCall(int index, absl::StatusCode code,
                         double elapsed_seconds, int64_t elements) {
  if (index < 0 || index >= static_cast<int>(methods_.size())) return;
  PerMethod& counters = methods_[index];
  const int code_index = static_cast<int>(code);
  if (code_index >= 0 && code_index < kCodes) {
    counters.calls[code_index].fetch_add(1, std::memory_order_relaxed);
  }
  size_t bucket = 0;
  while (bucket < kBucketSeconds.size() &&
         elapsed_seconds > kBucketSeconds[bucket]) {
    ++bucket;
  }
  counters.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  counters.nanoseconds.fetch_add(static_cast<int64_t>(elapsed_seconds * 1e9),
                                 std::memory_order_relaxed);
  counters.elements.fetch_add(elements, std::memory_order_relaxed);
}

std::string Metrics::Render(int64_t calls_in_flight) const {
  std::string out;
  AppendHeader(&out, "actsvc_requests_total",
               "Calls finished, by API, RPC and gRPC status code (a stream "
               "counts once).",
               "counter");
  for (const PerMethod& m : methods_) {
    for (int code = 0; code < kCodes; ++code) {
      const int64_t n = m.calls[code].load(std::memory_order_relaxed);
      // OK always, so that every method has a series from the start.
      if (n == 0 && code != 0) continue;
      absl::StrAppend(
          &out, "actsvc_requests_total{", m.labels, ",code=\"",
          absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "\"} ",
          n, "\n");
    }
  }
  AppendHeader(&out, "actsvc_request_duration_seconds",
               "Time from a call's start to its end, as the server sees it.",
               "histogram");
  for (const PerMethod& m : methods_) {
    int64_t cumulative = 0;
    for (size_t b = 0; b < m.buckets.size(); ++b) {
      cumulative += m.buckets[b].load(std::memory_order_relaxed);
      const std::string le = b < kBucketSeconds.size()
                                 ? FormatSeconds(kBucketSeconds[b])
                                 : std::string("+Inf");
      absl::StrAppend(&out, "actsvc_request_duration_seconds_bucket{", m.labels,
                      ",le=\"", le, "\"} ", cumulative, "\n");
    }
    absl::StrAppend(
        &out, "actsvc_request_duration_seconds_sum{", m.labels, "} ",
        FormatSeconds(m.nanoseconds.load(std::memory_order_relaxed) * 1e-9),
        "\n", "actsvc_request_duration_seconds_count{", m.labels, "} ",
        cumulative, "\n");
  }
  AppendHeader(&out, "actsvc_elements_processed_total",
               "Tensor elements of the requests answered successfully.",
               "counter");
  for (const PerMethod& m : methods_) {
    absl::StrAppend(&out, "actsvc_elements_processed_total{", m.labels, "} ",
                    m.elements.load(std::memory_order_relaxed), "\n");
  }
  AppendHeader(&out, "actsvc_calls_in_flight",
               "Compute calls started and not yet ended.", "gauge");
  absl::StrAppend(&out, "actsvc_calls_in_flight ", calls_in_flight, "\n");
  return out;
}

}  // namespace actsvc::server
