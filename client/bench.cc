#include "client/bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/format.h"
#include "google/protobuf/util/json_util.h"

namespace actsvc::client::bench {
namespace {

namespace bv1 = ::actsvc::bench::v1;

std::vector<std::string> SplitList(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (absl::ConsumePrefix(&text, "[")) absl::ConsumeSuffix(&text, "]");
  std::vector<std::string> items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    items.emplace_back(absl::StripAsciiWhitespace(item));
  }
  return items;
}

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace

absl::StatusOr<std::vector<int>> ParseConcurrencyLevels(
    absl::string_view text) {
  std::vector<int> levels;
  for (const std::string& item : SplitList(text)) {
    int level = 0;
    if (!absl::SimpleAtoi(item, &level) || level < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", item, "' is not a positive integer (e.g. 1,8,64)"));
    }
    levels.push_back(level);
  }
  return levels;
}

absl::StatusOr<std::vector<double>> ParseRateLevels(absl::string_view text) {
  std::vector<double> levels;
  for (const std::string& item : SplitList(text)) {
    double level = 0;
    if (!absl::SimpleAtod(item, &level) || !(level > 0) || std::isinf(level)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", item, "' is not a positive rate (e.g. 100,500.5)"));
    }
    levels.push_back(level);
  }
  return levels;
}

absl::StatusOr<Warmup> ParseWarmup(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  Warmup warmup;
  if (text.empty()) return warmup;
  if (absl::SimpleAtoi(text, &warmup.count)) {
    if (warmup.count < 0) {
      return absl::InvalidArgumentError("--warmup must not be negative");
    }
    return warmup;
  }
  if (!absl::ParseDuration(text, &warmup.time) ||
      warmup.time < absl::ZeroDuration() ||
      warmup.time == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--warmup='", text,
                     "' is neither a time (2s, 500ms) nor a number of calls"));
  }
  return warmup;
}

absl::StatusOr<Arrival> ArrivalFromName(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "constant" || lower == "const") return Arrival::kConstant;
  if (lower == "poisson") return Arrival::kPoisson;
  return absl::InvalidArgumentError(
      absl::StrCat("--arrival=", name, " is not one of constant, poisson"));
}

ArrivalSchedule::ArrivalSchedule(double rate, Arrival arrival, uint64_t seed)
    : rate_(rate), arrival_(arrival), rng_(seed) {}

int64_t ArrivalSchedule::NextNs() {
  if (arrival_ == Arrival::kConstant) {
    // From the index, not a running sum: no drift over millions of calls.
    return static_cast<int64_t>(std::llround(index_++ * 1e9 / rate_));
  }
  const int64_t now = static_cast<int64_t>(std::llround(offset_s_ * 1e9));
  std::exponential_distribution<double> gap(rate_);
  offset_s_ += gap(rng_);
  ++index_;
  return now;
}

int64_t Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // Rank ceil(q/100 * n), 1-based, at least 1. The small epsilon keeps
  // 99.9% of 1000 at rank 999 despite 0.999 * 1000 = 999.0000000000001.
  int64_t rank = static_cast<int64_t>(std::ceil(q / 100.0 * n - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(sorted.size()));
  return sorted[rank - 1];
}

bv1::Latency Summarize(const std::vector<int64_t>& sorted_ns) {
  bv1::Latency latency;
  if (sorted_ns.empty()) return latency;
  long double sum = 0;
  for (int64_t v : sorted_ns) sum += v;
  const long double mean = sum / sorted_ns.size();
  long double squares = 0;
  for (int64_t v : sorted_ns) squares += (v - mean) * (v - mean);
  latency.set_min_ms(Ms(sorted_ns.front()));
  latency.set_mean_ms(static_cast<double>(mean) / 1e6);
  latency.set_stddev_ms(
      static_cast<double>(std::sqrt(squares / sorted_ns.size())) / 1e6);
  latency.set_p50_ms(Ms(Percentile(sorted_ns, 50)));
  latency.set_p90_ms(Ms(Percentile(sorted_ns, 90)));
  latency.set_p95_ms(Ms(Percentile(sorted_ns, 95)));
  latency.set_p99_ms(Ms(Percentile(sorted_ns, 99)));
  latency.set_p999_ms(Ms(Percentile(sorted_ns, 99.9)));
  latency.set_max_ms(Ms(sorted_ns.back()));
  return latency;
}

std::vector<bv1::HistogramBucket> Histogram(
    const std::vector<int64_t>& sorted_ns, int buckets) {
  std::vector<bv1::HistogramBucket> out;
  if (sorted_ns.empty() || buckets < 1) return out;
  const int64_t lo = sorted_ns.front();
  const int64_t hi = sorted_ns.back();
  if (lo == hi) buckets = 1;
  const double width = static_cast<double>(hi - lo) / buckets;
  size_t next = 0;
  for (int b = 0; b < buckets; ++b) {
    const int64_t upper =
        b + 1 == buckets ? hi : lo + static_cast<int64_t>(width * (b + 1));
    int64_t count = 0;
    while (next < sorted_ns.size() && sorted_ns[next] <= upper) {
      ++count;
      ++next;
    }
    bv1::HistogramBucket bucket;
    bucket.set_upper_ms(Ms(upper));
    bucket.set_count(count);
    out.push_back(bucket);
  }
  return out;
}

std::vector<bv1::Interval> Timeline(const Tally& tally, int intervals) {
  std::vector<bv1::Interval> out;
  const int64_t window_ns = absl::ToInt64Nanoseconds(tally.window);
  if (window_ns <= 0 || intervals < 1 || tally.ok_completed_ns.empty() ||
      tally.ok_completed_ns.size() != tally.ok_latencies_ns.size()) {
    return out;
  }
  std::vector<std::vector<int64_t>> latencies(intervals);
  for (size_t i = 0; i < tally.ok_completed_ns.size(); ++i) {
    const int64_t at = tally.ok_completed_ns[i] - tally.window_begin_ns;
    const int64_t bin =
        std::clamp<int64_t>(at * intervals / window_ns, 0, intervals - 1);
    latencies[bin].push_back(tally.ok_latencies_ns[i]);
  }
  const double width_s = window_ns / 1e9 / intervals;
  for (int b = 0; b < intervals; ++b) {
    std::vector<int64_t>& sample = latencies[b];
    std::sort(sample.begin(), sample.end());
    bv1::Interval interval;
    interval.set_start_s(b * width_s);
    interval.set_duration_s(width_s);
    interval.set_ok(static_cast<int64_t>(sample.size()));
    interval.set_ok_rps(sample.size() / width_s);
    if (!sample.empty()) {
      interval.set_p50_ms(Ms(Percentile(sample, 50)));
      interval.set_p99_ms(Ms(Percentile(sample, 99)));
      interval.set_max_ms(Ms(sample.back()));
    }
    out.push_back(interval);
  }
  return out;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Tally::Add(absl::string_view code, absl::string_view message) {
  Kind& kind = kinds[std::string(code)];
  if (kind.count++ == 0 || (kind.sample_message.empty() && !message.empty())) {
    kind.sample_message = std::string(message);
  }
}

void Tally::AddOk(int64_t latency_ns, int64_t completed_ns,
                  absl::string_view wrong) {
  ok_latencies_ns.push_back(latency_ns);
  ok_completed_ns.push_back(completed_ns);
  if (!wrong.empty()) {
    ++wrong_answers;
    Add("WRONG_ANSWER", wrong);
  } else {
    Add("OK", "");
  }
}

ProcessCounters ReadProcessCounters(int pid) {
  ProcessCounters counters;
  std::ifstream file(pid == 0 ? std::string("/proc/self/stat")
                              : absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(file)),
                   std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: fields count from its ')'.
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return counters;
  std::vector<std::string> fields =
      absl::StrSplit(text.substr(paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state): minflt is field 10, utime 14, stime 15.
  if (fields.size() < 13) return counters;
  int64_t minflt = 0, utime = 0, stime = 0;
  if (!absl::SimpleAtoi(fields[7], &minflt) ||
      !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return counters;
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  counters.valid = true;
  counters.minor_faults = minflt;
  counters.cpu_s = (utime + stime) / ticks;
  return counters;
}

bv1::Row MakeRow(Tally tally, int64_t elements, int64_t request_bytes,
                 int64_t response_bytes) {
  bv1::Row row;
  for (bv1::Interval& interval : Timeline(tally)) {
    *row.add_timeline() = std::move(interval);
  }
  std::sort(tally.ok_latencies_ns.begin(), tally.ok_latencies_ns.end());
  int64_t ok = 0;
  if (auto it = tally.kinds.find("OK"); it != tally.kinds.end()) {
    ok = it->second.count;
  }
  const double seconds = absl::ToDoubleSeconds(tally.window);
  const double per_s = seconds > 0 ? 1.0 / seconds : 0;
  row.set_requests(tally.requests);
  row.set_ok(ok);
  row.set_errors(tally.requests - ok);
  row.set_wrong_answers(tally.wrong_answers);
  row.set_checked(tally.checked);
  row.set_delayed_sends(tally.delayed_sends);
  row.set_duration_s(seconds);
  row.set_rps(tally.requests * per_s);
  row.set_ok_rps(ok * per_s);
  row.set_elements_per_s(static_cast<double>(ok) * elements * per_s);
  row.set_request_mb_per_s(static_cast<double>(ok) * request_bytes * per_s /
                           1e6);
  row.set_response_mb_per_s(static_cast<double>(ok) * response_bytes * per_s /
                            1e6);
  *row.mutable_latency() = Summarize(tally.ok_latencies_ns);
  for (bv1::HistogramBucket& b : Histogram(tally.ok_latencies_ns)) {
    *row.add_histogram() = std::move(b);
  }
  // OK first, then by count.
  std::vector<std::pair<std::string, Tally::Kind>> kinds(tally.kinds.begin(),
                                                         tally.kinds.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto& a, const auto& b) {
                     if ((a.first == "OK") != (b.first == "OK"))
                       return a.first == "OK";
                     return a.second.count > b.second.count;
                   });
  for (const auto& [code, kind] : kinds) {
    bv1::StatusCount* status = row.add_statuses();
    status->set_code(code);
    status->set_count(kind.count);
    status->set_sample_message(kind.sample_message);
  }
  return row;
}

void AddProcessFigures(const ProcessCounters& server_begin,
                       const ProcessCounters& server_end,
                       const ProcessCounters& client_begin,
                       const ProcessCounters& client_end, bv1::Row* row) {
  if (row->requests() == 0) return;
  const double calls = static_cast<double>(row->requests());
  if (server_begin.valid && server_end.valid) {
    row->set_server_minor_faults_per_call(
        (server_end.minor_faults - server_begin.minor_faults) / calls);
    row->set_server_cpu_ms_per_call((server_end.cpu_s - server_begin.cpu_s) *
                                    1e3 / calls);
  }
  if (client_begin.valid && client_end.valid) {
    row->set_client_minor_faults_per_call(
        (client_end.minor_faults - client_begin.minor_faults) / calls);
    row->set_client_cpu_ms_per_call((client_end.cpu_s - client_begin.cpu_s) *
                                    1e3 / calls);
  }
}

namespace {

std::string LevelName(const bv1::Config& config, const bv1::Row& row) {
  if (config.mode() == "open") {
    return absl::StrFormat("rps=%g (%s)", row.target_rps(), config.arrival());
  }
  return absl::StrCat("concurrency=", row.concurrency());
}

std::string Bar(int64_t count, int64_t largest, int width) {
  if (largest == 0) return "";
  const int n = static_cast<int>(
      std::lround(static_cast<double>(count) * width / largest));
  return std::string(n == 0 && count > 0 ? 1 : n, '#');
}

}  // namespace

namespace {

// One level's block of the text report.
void AppendRow(const bv1::Config& c, const bv1::Row& row, std::string* out) {
  const bv1::Latency& l = row.latency();
  absl::StrAppendFormat(out, "\n%s\n", LevelName(c, row));
  absl::StrAppendFormat(
      out,
      "  requests   %d in %.2fs: %.1f/s (OK %.1f/s), %d errors "
      "(%d wrong answers, %d checked)\n",
      row.requests(), row.duration_s(), row.rps(), row.ok_rps(), row.errors(),
      row.wrong_answers(), row.checked());
  absl::StrAppendFormat(
      out,
      "  throughput %.4g elements/s, request %.1f MB/s, response %.1f "
      "MB/s\n",
      row.elements_per_s(), row.request_mb_per_s(), row.response_mb_per_s());
  if (row.delayed_sends() > 0) {
    absl::StrAppendFormat(out,
                          "  delayed    %d sends waited for a free slot "
                          "(latency counts from the schedule)\n",
                          row.delayed_sends());
  }
  if (row.server_cpu_ms_per_call() > 0 ||
      row.server_minor_faults_per_call() > 0) {
    absl::StrAppendFormat(
        out,
        "  per call   server %.3f ms CPU, %.1f minor faults; client %.3f "
        "ms CPU, %.1f minor faults\n",
        row.server_cpu_ms_per_call(), row.server_minor_faults_per_call(),
        row.client_cpu_ms_per_call(), row.client_minor_faults_per_call());
  }
  absl::StrAppendFormat(
      out,
      "  latency ms min %.3f  mean %.3f  stddev %.3f  max %.3f\n"
      "             p50 %.3f  p90 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f\n",
      l.min_ms(), l.mean_ms(), l.stddev_ms(), l.max_ms(), l.p50_ms(),
      l.p90_ms(), l.p95_ms(), l.p99_ms(), l.p999_ms());
  int64_t largest = 0;
  for (const auto& b : row.histogram()) largest = std::max(largest, b.count());
  if (largest > 0) absl::StrAppend(out, "  histogram (ms, OK calls)\n");
  for (const auto& b : row.histogram()) {
    absl::StrAppendFormat(out, "    %10.3f [%8d] %s\n", b.upper_ms(), b.count(),
                          Bar(b.count(), largest, 40));
  }
  absl::StrAppend(out, "  status\n");
  for (const auto& s : row.statuses()) {
    absl::StrAppendFormat(out, "    %-20s %10d%s\n", s.code(), s.count(),
                          s.sample_message().empty()
                              ? ""
                              : absl::StrCat("  e.g. ", s.sample_message()));
  }
}

}  // namespace

std::string FormatText(const bv1::Report& report) {
  const bv1::Config& c = report.config();
  std::string out = absl::StrFormat(
      "actsvc bench: %s%s %s%s %s %s %s -> %s (%d connection%s, %s)\n",
      c.protocol() == "kserve"      ? "kserve ModelInfer, "
      : c.protocol() == "http"      ? "KServe REST (binary), "
      : c.protocol() == "http-json" ? "KServe REST (JSON), "
                                    : "",
      c.rpc(), c.function(),
      c.rpc() == "derivative" ? absl::StrCat(" order ", c.order()) : "",
      CompactShape(c.shape()), c.dtype(), c.encoding(), c.target(),
      c.connections(), c.connections() == 1 ? "" : "s", c.load_balancing());
  absl::StrAppendFormat(
      &out,
      "  request %d bytes, %d elements; %s per level%s; responses checked %s\n",
      c.request_bytes(), c.elements(),
      c.requests() > 0 ? absl::StrCat(c.requests(), " calls")
                       : absl::StrFormat("%gs", c.duration_s()),
      c.warmup().empty() || c.warmup() == "0"
          ? ""
          : absl::StrCat(" after a warmup of ", c.warmup()),
      c.check_every() > 0 ? absl::StrCat("1 in ", c.check_every()) : "never");
  for (const bv1::Row& row : report.rows()) AppendRow(c, row, &out);
  if (report.rows_size() > 1) {
    absl::StrAppendFormat(&out, "\n%-22s %12s %10s %10s %10s %12s %8s\n",
                          "level", "QPS", "p50 ms", "p99 ms", "max ms",
                          "req MB/s", "errors");
    for (const bv1::Row& row : report.rows()) {
      absl::StrAppendFormat(
          &out, "%-22s %12.1f %10.3f %10.3f %10.3f %12.1f %8d\n",
          LevelName(c, row), row.ok_rps(), row.latency().p50_ms(),
          row.latency().p99_ms(), row.latency().max_ms(),
          row.request_mb_per_s(), row.errors());
    }
  }
  return out;
}

std::string FormatCsv(const bv1::Report& report) {
  const bv1::Config& c = report.config();
  std::string out =
      "rpc,function,shape,dtype,encoding,mode,concurrency,target_rps,"
      "requests,ok,errors,wrong_answers,checked,duration_s,rps,ok_rps,"
      "elements_per_s,request_mb_per_s,response_mb_per_s,min_ms,mean_ms,"
      "stddev_ms,p50_ms,p90_ms,p95_ms,p99_ms,p999_ms,max_ms,delayed_sends,"
      "server_minor_faults_per_call,server_cpu_ms_per_call,"
      "client_minor_faults_per_call,client_cpu_ms_per_call\n";
  for (const bv1::Row& r : report.rows()) {
    const bv1::Latency& l = r.latency();
    absl::StrAppend(
        &out,
        absl::StrJoin(
            std::vector<std::string>{
                c.rpc(),
                c.function(),
                absl::StrCat("\"", CompactShape(c.shape()), "\""),
                c.dtype(),
                c.encoding(),
                c.mode(),
                absl::StrCat(r.concurrency()),
                absl::StrCat(r.target_rps()),
                absl::StrCat(r.requests()),
                absl::StrCat(r.ok()),
                absl::StrCat(r.errors()),
                absl::StrCat(r.wrong_answers()),
                absl::StrCat(r.checked()),
                absl::StrFormat("%.6f", r.duration_s()),
                absl::StrFormat("%.3f", r.rps()),
                absl::StrFormat("%.3f", r.ok_rps()),
                absl::StrFormat("%.6g", r.elements_per_s()),
                absl::StrFormat("%.3f", r.request_mb_per_s()),
                absl::StrFormat("%.3f", r.response_mb_per_s()),
                absl::StrFormat("%.6f", l.min_ms()),
                absl::StrFormat("%.6f", l.mean_ms()),
                absl::StrFormat("%.6f", l.stddev_ms()),
                absl::StrFormat("%.6f", l.p50_ms()),
                absl::StrFormat("%.6f", l.p90_ms()),
                absl::StrFormat("%.6f", l.p95_ms()),
                absl::StrFormat("%.6f", l.p99_ms()),
                absl::StrFormat("%.6f", l.p999_ms()),
                absl::StrFormat("%.6f", l.max_ms()),
                absl::StrCat(r.delayed_sends()),
                absl::StrFormat("%.3f", r.server_minor_faults_per_call()),
                absl::StrFormat("%.6f", r.server_cpu_ms_per_call()),
                absl::StrFormat("%.3f", r.client_minor_faults_per_call()),
                absl::StrFormat("%.6f", r.client_cpu_ms_per_call())},
            ","),
        "\n");
  }
  return out;
}

std::string FormatJson(const bv1::Report& report) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Cannot fail: the message has no Any fields.
  (void)google::protobuf::util::MessageToJsonString(report, &json, options);
  return json;
}

}  // namespace actsvc::client::bench
