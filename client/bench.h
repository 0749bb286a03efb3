// The load tester's own logic, apart from gRPC: sweep and warmup parsing, the
// open-loop arrival schedule, latency statistics and the report (text, CSV,
// and the actsvc.bench.v1.Report message rendered as JSON).
#ifndef ACTSVC_CLIENT_BENCH_H_
#define ACTSVC_CLIENT_BENCH_H_

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "actsvc/bench/v1/report.pb.h"

namespace actsvc::client::bench {

// Sweep levels: "8", "1,8,64" or "[1, 8, 64]". Each must be positive.
absl::StatusOr<std::vector<int>> ParseConcurrencyLevels(absl::string_view text);
absl::StatusOr<std::vector<double>> ParseRateLevels(absl::string_view text);

// --warmup: a time ("2s", "500ms") or a number of calls ("100"); "" or "0"
// is none. Calls sent during the warmup are left out of the report.
struct Warmup {
  absl::Duration time = absl::ZeroDuration();
  int64_t count = 0;
};
absl::StatusOr<Warmup> ParseWarmup(absl::string_view text);

enum class Arrival { kConstant, kPoisson };
absl::StatusOr<Arrival> ArrivalFromName(absl::string_view name);

// The send times of an open loop, as offsets from its start: call i of a
// constant rate R at i/R; Poisson arrivals at the partial sums of exponential
// gaps of mean 1/R drawn from `seed` (the same seed, the same schedule).
class ArrivalSchedule {
 public:
  ArrivalSchedule(double rate, Arrival arrival, uint64_t seed);
  // The offset of the next call, in nanoseconds; never decreases.
  int64_t NextNs();

 private:
  double rate_;
  Arrival arrival_;
  std::mt19937_64 rng_;
  int64_t index_ = 0;
  double offset_s_ = 0;
};

// Nearest-rank percentile (q in [0, 100]) of an ascending sample: the
// smallest value with at least q% of the sample at or below it. 0 for an
// empty sample.
int64_t Percentile(const std::vector<int64_t>& sorted, double q);

// Min, mean, standard deviation (population), p50...p99.9 and max, in ms.
actsvc::bench::v1::Latency Summarize(const std::vector<int64_t>& sorted_ns);

// `buckets` equal-width buckets from min to max (one when they are equal).
std::vector<actsvc::bench::v1::HistogramBucket> Histogram(
    const std::vector<int64_t>& sorted_ns, int buckets = 10);

// The steady clock, in nanoseconds: the clock of every time in a Tally.
int64_t NowNs();

// What one load level produced, collected by the runner.
struct Tally;

// The OK calls of `tally` by completion time, in `intervals` equal parts of
// its window (none when the window is empty or there are no samples).
std::vector<actsvc::bench::v1::Interval> Timeline(const Tally& tally,
                                                  int intervals = 20);

struct Tally {
  int64_t requests = 0;  // calls completed in the window
  int64_t wrong_answers = 0;
  int64_t checked = 0;
  int64_t delayed_sends = 0;
  std::vector<int64_t> ok_latencies_ns;  // status OK (right or wrong answer)
  // When each of ok_latencies_ns completed (same order), and when the
  // window began, on one clock.
  std::vector<int64_t> ok_completed_ns;
  int64_t window_begin_ns = 0;
  struct Kind {
    int64_t count = 0;
    std::string sample_message;
  };
  std::map<std::string, Kind> kinds;  // by code name; "WRONG_ANSWER" too
  absl::Duration window = absl::ZeroDuration();

  // Records one call: `code` is a gRPC code name.
  void Add(absl::string_view code, absl::string_view message);
  // Records a call that succeeded: its latency and completion time, and OK
  // or, when `wrong` says what is wrong with the answer, WRONG_ANSWER.
  void AddOk(int64_t latency_ns, int64_t completed_ns, absl::string_view wrong);
};

// Process counters from /proc/PID/stat; nullopt-like zeros when unreadable.
struct ProcessCounters {
  bool valid = false;
  int64_t minor_faults = 0;
  double cpu_s = 0;  // user + system
};
// pid 0: this process.
ProcessCounters ReadProcessCounters(int pid);

// Builds a row from a tally. `elements`, `request_bytes` and
// `response_bytes` are per call.
actsvc::bench::v1::Row MakeRow(Tally tally, int64_t elements,
                               int64_t request_bytes, int64_t response_bytes);

// Fills the per-call process figures of `row` from counters taken at the
// start and end of its window.
void AddProcessFigures(const ProcessCounters& server_begin,
                       const ProcessCounters& server_end,
                       const ProcessCounters& client_begin,
                       const ProcessCounters& client_end,
                       actsvc::bench::v1::Row* row);

// Human-readable report: one block per row, then a summary table when there
// are several rows.
std::string FormatText(const actsvc::bench::v1::Report& report);
// One header line, then one line per row.
std::string FormatCsv(const actsvc::bench::v1::Report& report);
// Protobuf's JSON mapping, indented, fields with default values included.
std::string FormatJson(const actsvc::bench::v1::Report& report);

}  // namespace actsvc::client::bench

#endif  // ACTSVC_CLIENT_BENCH_H_
