// The load tester's own logic, without a server: statistics, the open-loop
// schedule, sweep and warmup parsing, the report's fields, and the answer
// check against a perturbed response.
#include "client/bench.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "actsvc/bench/v1/report.pb.h"
#include "client/bench_kserve.h"
#include "client/bench_load.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace actsvc::client::bench {
namespace {

namespace v1 = ::actsvc::v1;
namespace bv1 = ::actsvc::bench::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int64_t> OneTo(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 1);
  return v;
}

TEST(PercentileTest, NearestRankOnOneToHundred) {
  const std::vector<int64_t> sample = OneTo(100);
  EXPECT_EQ(Percentile(sample, 0), 1);
  EXPECT_EQ(Percentile(sample, 50), 50);
  EXPECT_EQ(Percentile(sample, 90), 90);
  EXPECT_EQ(Percentile(sample, 95), 95);
  EXPECT_EQ(Percentile(sample, 99), 99);
  EXPECT_EQ(Percentile(sample, 99.9), 100);
  EXPECT_EQ(Percentile(sample, 100), 100);
}

TEST(PercentileTest, NinetyNinePointNineOfAThousand) {
  const std::vector<int64_t> sample = OneTo(1000);
  EXPECT_EQ(Percentile(sample, 99.9), 999);
  EXPECT_EQ(Percentile(sample, 50), 500);
}

TEST(PercentileTest, SmallAndEmptySamples) {
  EXPECT_EQ(Percentile({}, 50), 0);
  EXPECT_EQ(Percentile({7}, 0), 7);
  EXPECT_EQ(Percentile({7}, 99.9), 7);
  EXPECT_EQ(Percentile({1, 2}, 50), 1);
  EXPECT_EQ(Percentile({1, 2}, 51), 2);
}

TEST(SummarizeTest, KnownSampleInMilliseconds) {
  // 1..100 ms.
  std::vector<int64_t> sample = OneTo(100);
  for (int64_t& v : sample) v *= 1000000;
  const bv1::Latency l = Summarize(sample);
  EXPECT_DOUBLE_EQ(l.min_ms(), 1);
  EXPECT_DOUBLE_EQ(l.max_ms(), 100);
  EXPECT_DOUBLE_EQ(l.mean_ms(), 50.5);
  // Population standard deviation of 1..n: sqrt((n^2 - 1) / 12).
  EXPECT_NEAR(l.stddev_ms(), std::sqrt((100.0 * 100 - 1) / 12), 1e-9);
  EXPECT_DOUBLE_EQ(l.p50_ms(), 50);
  EXPECT_DOUBLE_EQ(l.p90_ms(), 90);
  EXPECT_DOUBLE_EQ(l.p95_ms(), 95);
  EXPECT_DOUBLE_EQ(l.p99_ms(), 99);
  EXPECT_DOUBLE_EQ(l.p999_ms(), 100);
}

TEST(HistogramTest, EqualBucketsCoverTheSample) {
  const std::vector<int64_t> sample = OneTo(100);
  const auto buckets = Histogram(sample, 10);
  ASSERT_EQ(buckets.size(), 10u);
  int64_t total = 0;
  for (const auto& b : buckets) total += b.count();
  EXPECT_EQ(total, 100);
  EXPECT_DOUBLE_EQ(buckets.back().upper_ms(), 100 / 1e6);
  EXPECT_EQ(Histogram({5, 5, 5}).size(), 1u);
  EXPECT_TRUE(Histogram({}).empty());
}

TEST(ArrivalScheduleTest, ConstantRateIsEvenlySpaced) {
  ArrivalSchedule schedule(4000, Arrival::kConstant, 1);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_EQ(schedule.NextNs(), int64_t{250000} * i) << "call " << i;
  }
}

TEST(ArrivalScheduleTest, ConstantRateDoesNotDrift) {
  ArrivalSchedule schedule(3, Arrival::kConstant, 1);  // 333333333.3 ns gaps
  int64_t last = 0;
  for (int i = 0; i <= 3000000; ++i) last = schedule.NextNs();
  EXPECT_EQ(last, int64_t{1000000} * 1000000000);  // 1e6 s, exactly
}

TEST(ArrivalScheduleTest, PoissonIsSeededWithTheRightMean) {
  ArrivalSchedule a(1000, Arrival::kPoisson, 42);
  ArrivalSchedule b(1000, Arrival::kPoisson, 42);
  ArrivalSchedule c(1000, Arrival::kPoisson, 43);
  EXPECT_EQ(a.NextNs(), 0);
  EXPECT_EQ(b.NextNs(), 0);
  c.NextNs();
  bool differs = false;
  int64_t previous = 0;
  int64_t t = 0;
  std::vector<double> gaps;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    t = a.NextNs();
    ASSERT_EQ(t, b.NextNs());
    differs |= t != c.NextNs();
    ASSERT_GE(t, previous);
    gaps.push_back((t - previous) / 1e9);
    previous = t;
  }
  EXPECT_TRUE(differs);
  // Mean gap 1 ms within 2% (the standard error is 0.3%), and the gaps of
  // an exponential have a coefficient of variation of 1.
  const double mean = t / 1e9 / n;
  EXPECT_NEAR(mean, 1e-3, 2e-5);
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  EXPECT_NEAR(std::sqrt(var / n) / mean, 1.0, 0.03);
}

TEST(SweepTest, ParsesLevels) {
  EXPECT_THAT(*ParseConcurrencyLevels("8"), ElementsAre(8));
  EXPECT_THAT(*ParseConcurrencyLevels("1,8,64"), ElementsAre(1, 8, 64));
  EXPECT_THAT(*ParseConcurrencyLevels("[1, 8, 64]"), ElementsAre(1, 8, 64));
  EXPECT_THAT(*ParseRateLevels("100,2500.5"), ElementsAre(100, 2500.5));
}

TEST(SweepTest, RejectsBadLevels) {
  for (const char* text : {"", "0", "-1", "1,,2", "x", "1.5"}) {
    EXPECT_FALSE(ParseConcurrencyLevels(text).ok()) << text;
  }
  for (const char* text : {"", "0", "-5", "inf", "nan", "a"}) {
    EXPECT_FALSE(ParseRateLevels(text).ok()) << text;
  }
}

TEST(WarmupTest, TimeOrCount) {
  EXPECT_EQ(ParseWarmup("2s")->time, absl::Seconds(2));
  EXPECT_EQ(ParseWarmup("500ms")->time, absl::Milliseconds(500));
  EXPECT_EQ(ParseWarmup("100")->count, 100);
  EXPECT_EQ(ParseWarmup("100")->time, absl::ZeroDuration());
  EXPECT_EQ(ParseWarmup("0")->count, 0);
  EXPECT_EQ(ParseWarmup("")->count, 0);
  EXPECT_FALSE(ParseWarmup("-1").ok());
  EXPECT_FALSE(ParseWarmup("soon").ok());
  EXPECT_FALSE(ParseWarmup("-2s").ok());
}

TEST(ArrivalTest, Names) {
  EXPECT_EQ(*ArrivalFromName("poisson"), Arrival::kPoisson);
  EXPECT_EQ(*ArrivalFromName("Constant"), Arrival::kConstant);
  EXPECT_FALSE(ArrivalFromName("uniform").ok());
}

Tally SampleTally() {
  Tally tally;
  tally.window = absl::Seconds(2);
  for (int i = 1; i <= 100; ++i) {
    tally.ok_latencies_ns.push_back(int64_t{i} * 1000000);
  }
  for (int i = 0; i < 97; ++i) tally.Add("OK", "");
  for (int i = 0; i < 3; ++i) tally.Add("WRONG_ANSWER", "1 of 4 values differ");
  tally.Add("UNAVAILABLE", "connection refused");
  tally.Add("UNAVAILABLE", "another message");
  tally.requests = 102;
  tally.wrong_answers = 3;
  tally.checked = 10;
  return tally;
}

TEST(TimelineTest, IntervalsByCompletionTime) {
  Tally tally;
  tally.window = absl::Seconds(2);
  tally.window_begin_ns = int64_t{5} * 1000000000;
  // 10 calls of 1 ms in the first second, 2 slow ones (50, 70 ms) in the
  // second, one exactly at the end of the window.
  for (int i = 0; i < 10; ++i) {
    tally.ok_latencies_ns.push_back(1000000);
    tally.ok_completed_ns.push_back(tally.window_begin_ns + i * 90000000);
  }
  for (int64_t ms : {50, 70}) {
    tally.ok_latencies_ns.push_back(ms * 1000000);
    tally.ok_completed_ns.push_back(tally.window_begin_ns + 1500000000);
  }
  tally.ok_latencies_ns.push_back(2000000);
  tally.ok_completed_ns.push_back(tally.window_begin_ns + 2000000000);
  const std::vector<bv1::Interval> timeline = Timeline(tally, 2);
  ASSERT_EQ(timeline.size(), 2u);
  EXPECT_DOUBLE_EQ(timeline[0].start_s(), 0);
  EXPECT_DOUBLE_EQ(timeline[0].duration_s(), 1);
  EXPECT_EQ(timeline[0].ok(), 10);
  EXPECT_DOUBLE_EQ(timeline[0].ok_rps(), 10);
  EXPECT_DOUBLE_EQ(timeline[0].p99_ms(), 1);
  EXPECT_DOUBLE_EQ(timeline[1].start_s(), 1);
  EXPECT_EQ(timeline[1].ok(), 3);  // the last call joins the last interval
  EXPECT_DOUBLE_EQ(timeline[1].max_ms(), 70);
  EXPECT_DOUBLE_EQ(timeline[1].p50_ms(), 50);
  // MakeRow carries it; no samples, no timeline.
  EXPECT_EQ(MakeRow(tally, 1, 1, 1).timeline_size(), 20);
  EXPECT_TRUE(Timeline(Tally()).empty());
}

TEST(ReportTest, RowFigures) {
  const bv1::Row row = MakeRow(SampleTally(), 1000, 4000, 4100);
  EXPECT_EQ(row.requests(), 102);
  EXPECT_EQ(row.ok(), 97);
  EXPECT_EQ(row.errors(), 5);
  EXPECT_EQ(row.wrong_answers(), 3);
  EXPECT_DOUBLE_EQ(row.duration_s(), 2);
  EXPECT_DOUBLE_EQ(row.rps(), 51);
  EXPECT_DOUBLE_EQ(row.ok_rps(), 48.5);
  EXPECT_DOUBLE_EQ(row.elements_per_s(), 48500);
  EXPECT_DOUBLE_EQ(row.request_mb_per_s(), 48.5 * 4000 / 1e6);
  EXPECT_DOUBLE_EQ(row.latency().p99_ms(), 99);
  ASSERT_EQ(row.statuses_size(), 3);
  EXPECT_EQ(row.statuses(0).code(), "OK");
  EXPECT_EQ(row.statuses(1).code(), "WRONG_ANSWER");
  EXPECT_EQ(row.statuses(1).sample_message(), "1 of 4 values differ");
  EXPECT_EQ(row.statuses(2).code(), "UNAVAILABLE");
  EXPECT_EQ(row.statuses(2).count(), 2);
  EXPECT_EQ(row.statuses(2).sample_message(), "connection refused");
}

TEST(ReportTest, JsonHasEveryField) {
  bv1::Report report;
  report.mutable_config()->set_rpc("evaluate");
  report.mutable_config()->set_function("gelu");
  report.mutable_config()->add_shape(1);
  report.mutable_config()->add_shape(1024);
  *report.add_rows() = MakeRow(SampleTally(), 1000, 4000, 4100);
  const std::string json = FormatJson(report);
  for (const char* field : {"\"config\"",
                            "\"rows\"",
                            "\"function\": \"gelu\"",
                            "\"requests\"",
                            "\"rps\"",
                            "\"elements_per_s\"",
                            "\"request_mb_per_s\"",
                            "\"latency\"",
                            "\"min_ms\"",
                            "\"mean_ms\"",
                            "\"stddev_ms\"",
                            "\"p50_ms\"",
                            "\"p90_ms\"",
                            "\"p95_ms\"",
                            "\"p99_ms\"",
                            "\"p999_ms\"",
                            "\"max_ms\"",
                            "\"histogram\"",
                            "\"statuses\"",
                            "\"sample_message\"",
                            "\"wrong_answers\"",
                            "\"server_minor_faults_per_call\""}) {
    EXPECT_THAT(json, HasSubstr(field));
  }
  bv1::Report back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_EQ(back.rows(0).latency().p50_ms(), 50);
  EXPECT_EQ(back.rows(0).statuses(1).code(), "WRONG_ANSWER");
}

TEST(ReportTest, CsvHasAHeaderAndOneLinePerRow) {
  bv1::Report report;
  report.mutable_config()->add_shape(4);
  report.mutable_config()->add_shape(8);
  *report.add_rows() = MakeRow(SampleTally(), 1000, 4000, 4100);
  *report.add_rows() = MakeRow(SampleTally(), 1000, 4000, 4100);
  std::vector<std::string> lines =
      absl::StrSplit(FormatCsv(report), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  const auto columns = [](const std::string& line) {
    // The shape is quoted: "[4,8]".
    int n = 1;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) ++n;
    }
    return n;
  };
  EXPECT_EQ(columns(lines[0]), columns(lines[1]));
  EXPECT_THAT(lines[0], HasSubstr("p99_ms"));
  EXPECT_THAT(lines[1], HasSubstr("\"[4,8]\""));
}

TEST(ReportTest, TextShowsStatusesWithSamples) {
  bv1::Report report;
  *report.add_rows() = MakeRow(SampleTally(), 1000, 4000, 4100);
  const std::string text = FormatText(report);
  EXPECT_THAT(text, HasSubstr("WRONG_ANSWER"));
  EXPECT_THAT(text, HasSubstr("e.g. connection refused"));
  EXPECT_THAT(text, HasSubstr("p99.9"));
}

// Evaluate of `f` on [2, 3] (float32, raw).
absl::StatusOr<Workload> EvaluateWorkload(v1::Function f) {
  WorkloadSpec spec;
  spec.spec.set_function(f);
  spec.shape = {2, 3};
  return BuildWorkload(spec);
}

TEST(WorkloadTest, ChecksResponsesAgainstTheCore) {
  absl::StatusOr<Workload> w = EvaluateWorkload(v1::SIGMOID);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->elements, 6);
  EXPECT_EQ(w->method, "/actsvc.v1.ActivationService/Evaluate");

  v1::EvaluateResponse right;
  *right.mutable_output() =
      MakeTensor(w->expected_shape, v1::FLOAT32, w->expected, Encoding::kRaw);
  EXPECT_EQ(CheckResponse(*w, Serialize(right)), "");

  std::vector<double> perturbed = w->expected;
  perturbed[4] += 0.01;
  v1::EvaluateResponse wrong;
  *wrong.mutable_output() =
      MakeTensor(w->expected_shape, v1::FLOAT32, perturbed, Encoding::kTyped);
  EXPECT_THAT(CheckResponse(*w, Serialize(wrong)),
              HasSubstr("1 of 6 values differ; first at [4]"));

  v1::EvaluateResponse reshaped = right;
  reshaped.mutable_output()->clear_shape();
  reshaped.mutable_output()->add_shape(6);
  EXPECT_THAT(CheckResponse(*w, Serialize(reshaped)),
              HasSubstr("shape [6], expected [2,3]"));
}

TEST(WorkloadTest, AnEchoMethodMustAnswerTheRequestItself) {
  absl::StatusOr<Workload> w = EvaluateWorkload(v1::IDENTITY);
  ASSERT_TRUE(w.ok()) << w.status();
  w->echo = true;
  // The request's own bytes, in other slices: right.
  grpc::Slice whole;
  ASSERT_TRUE(w->request.DumpToSingleSlice(&whole).ok());
  const std::string bytes(reinterpret_cast<const char*>(whole.begin()),
                          whole.size());
  grpc::Slice halves[] = {grpc::Slice(bytes.substr(0, 5)),
                          grpc::Slice(bytes.substr(5))};
  EXPECT_EQ(CheckResponse(*w, grpc::ByteBuffer(halves, 2)), "");
  // A right EvaluateResponse is not what an echo answers.
  v1::EvaluateResponse evaluated;
  *evaluated.mutable_output() =
      MakeTensor(w->expected_shape, v1::FLOAT32, w->expected, Encoding::kRaw);
  EXPECT_THAT(CheckResponse(*w, Serialize(evaluated)),
              HasSubstr("not the request's"));
}

TEST(WorkloadTest, SameSeedSameRequest) {
  WorkloadSpec spec;
  spec.rpc = Rpc::kVjp;
  spec.spec.set_function(v1::SOFTMAX);
  spec.shape = {4, 10};
  spec.seed = 7;
  absl::StatusOr<Workload> a = BuildWorkload(spec);
  absl::StatusOr<Workload> b = BuildWorkload(spec);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->expected, b->expected);
  EXPECT_EQ(a->request_bytes, b->request_bytes);
  spec.seed = 8;
  EXPECT_NE(BuildWorkload(spec)->expected, a->expected);
}

TEST(WorkloadTest, RejectsWhatTheServiceWould) {
  WorkloadSpec spec;
  spec.rpc = Rpc::kDerivative;
  spec.spec.set_function(v1::SOFTMAX);
  spec.shape = {4};
  EXPECT_EQ(BuildWorkload(spec).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(RpcFromName("echo").ok());
  EXPECT_EQ(*RpcFromName("XENT"), Rpc::kXent);
}

TEST(KServeTest, HalfTypesKeepTheirDatatype) {
  for (v1::DataType dtype :
       {v1::FLOAT32, v1::FLOAT64, v1::FLOAT16, v1::BFLOAT16}) {
    const v1::Tensor x = MakeTensor({2}, dtype, {0.5, -2}, Encoding::kRaw);
    inference::ModelInferRequest request;
    AddKServeInput(x, "x", &request);
    EXPECT_EQ(DtypeOfKServe(request.inputs(0).datatype()), dtype);
    ASSERT_EQ(request.raw_input_contents_size(), 1);
    EXPECT_EQ(request.raw_input_contents(0), x.raw_data());
    // The same bytes as an output come back as the same tensor.
    inference::ModelInferResponse response;
    auto* output = response.add_outputs();
    output->set_name("y");
    output->set_datatype(request.inputs(0).datatype());
    output->add_shape(2);
    response.add_raw_output_contents(x.raw_data());
    v1::Tensor y;
    ASSERT_TRUE(KServeOutputTensor(response, "y", &y));
    EXPECT_EQ(y.SerializeAsString(), x.SerializeAsString());
  }
  EXPECT_EQ(DtypeOfKServe("INT64"), v1::DATA_TYPE_UNSPECIFIED);
}

TEST(ServiceConfigTest, RetriesUnavailableWithTheChosenPolicy) {
  const std::string config = ServiceConfigJson("pick_first");
  EXPECT_THAT(config, HasSubstr("\"pick_first\""));
  EXPECT_THAT(config, HasSubstr("\"retryableStatusCodes\": [\"UNAVAILABLE\"]"));
  EXPECT_THAT(config, HasSubstr("actsvc.v1.ActivationService"));
}

}  // namespace
}  // namespace actsvc::client::bench
