// What a server's metrics say, read as an operator reads them: from the
// Prometheus text that /metrics serves (server/metrics.h), summed over
// every method of every API.
#ifndef ACTSVC_TESTS_SERVER_METRICS_READER_H_
#define ACTSVC_TESTS_SERVER_METRICS_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/server.h"

namespace actsvc::server::testing {

// The sum of the samples of metric `name` whose labels contain `label`
// (every sample when it is empty).
inline int64_t SumOfSamples(const std::string& text, absl::string_view name,
                            absl::string_view label = "") {
  int64_t sum = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat(name, "{"))) continue;
    if (!label.empty() && !absl::StrContains(line, label)) continue;
    int64_t value = 0;
    if (absl::SimpleAtoi(line.substr(line.rfind(' ') + 1), &value)) {
      sum += value;
    }
  }
  return sum;
}

// Calls (a stream counts once) that ended with `code`, as the server saw
// them: a client may see DEADLINE_EXCEEDED that the server never reached.
inline int64_t CallsEnded(Server& server, absl::StatusCode code) {
  return SumOfSamples(
      server.calls().RenderMetrics(), "actsvc_requests_total",
      absl::StrCat("code=\"", absl::StatusCodeToString(code), "\""));
}

// Elements of the requests answered successfully.
inline int64_t ElementsAnswered(Server& server) {
  return SumOfSamples(server.calls().RenderMetrics(),
                      "actsvc_elements_processed_total");
}

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_METRICS_READER_H_
