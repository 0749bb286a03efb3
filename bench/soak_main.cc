// actsvc-soak: the driver of bench/soak.sh. Keeps --concurrency calls
// outstanding (a closed loop over gRPC's callback API) against a running
// actsvc-server for --duration; each call is a case drawn at random (seeded)
// from a fixed table (bench/soak_table.h) that covers every RPC of
// actsvc.v1.ActivationService, grpc.health.v1.Health/Check and KServe v2's
// ModelInfer and ModelStreamInfer: valid requests (float32 and float64, raw
// and typed encodings, shapes from scalars to empty tensors) whose answers
// are checked against the client's core, and invalid ones, each with the
// status SPEC.md §3 gives it. Prints the calls per case, class and status,
// and how the races between a cancel and the answer came out; exits 1 on
// any unexpected status or wrong answer, showing the first few.
//
// The table assumes the server's limits: pass the same --max_elements and
// --max_message_mb as the server's (soak.sh does).
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/soak_driver.h"
#include "bench/soak_table.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "the server, host:port");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(20),
          "how long to keep calls outstanding, e.g. 20s or 5m");
ABSL_FLAG(int, concurrency, 64, "calls outstanding at all times");
ABSL_FLAG(uint64_t, seed, 1, "seed of the inputs and of the case draws");
ABSL_FLAG(int64_t, max_elements, 262144,
          "the server's --max_elements: requests over it expect "
          "RESOURCE_EXHAUSTED, the large cases are this size");
ABSL_FLAG(int, max_message_mb, 16,
          "the server's --max_message_mb: dense Jacobians over it expect "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "deadline of every call but the tiny-deadline cases: a call that "
          "takes longer is a stall, and fails the soak");
ABSL_FLAG(bool, verify, false,
          "call every case once, in order, one at a time, and print what "
          "the server answered (status and message) against what the case "
          "expects; exit 1 on any difference");
ABSL_FLAG(bool, list, false, "print the table of cases and exit");
ABSL_FLAG(int, progress_s, 10,
          "a progress line on stderr this often (0: never)");
ABSL_FLAG(int, show_failures, 8,
          "failures printed in full: the first of each case, at most this "
          "many cases");

namespace actsvc::soak {
namespace {

std::string CodeCounts(const std::array<int64_t, kCodes>& codes) {
  std::vector<std::string> parts;
  for (int code = 0; code < kCodes; ++code) {
    if (codes[code] > 0) {
      parts.push_back(absl::StrCat(CodeName(code), "=", codes[code]));
    }
  }
  return absl::StrJoin(parts, " ");
}

std::string ExpectedString(const Case& c) {
  std::vector<std::string> want;
  for (Code code : c.expected) want.push_back(CodeName(static_cast<int>(code)));
  return absl::StrJoin(want, "|");
}

std::string Unexpected(const CaseTally& t) {
  return t.wrong ? absl::StrCat("  UNEXPECTED=", t.wrong) : "";
}

void PrintList(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    std::printf("%-34s %-28s w=%-2d %s\n", c.group.c_str(),
                ExpectedString(c).c_str(), c.weight, c.name.c_str());
  }
  std::printf("%zu cases\n", cases.size());
}

void PrintVerify(const std::vector<Case>& cases,
                 const std::vector<CaseTally>& tallies) {
  for (size_t i = 0; i < cases.size(); ++i) {
    const CaseTally& t = tallies[i];
    std::printf("%s %-40s %-30s got %s %s\n", t.wrong ? "FAIL" : "ok  ",
                cases[i].name.c_str(), ExpectedString(cases[i]).c_str(),
                CodeCounts(t.codes).c_str(), t.first_message.c_str());
  }
}

// By case, by class, the statuses of all, and the cancel races: a call
// cancelled at once (or midway) may still be answered first, which is
// right; the counts show how often each side won.
void PrintSummary(const std::vector<Case>& cases,
                  const std::vector<CaseTally>& tallies) {
  std::map<std::string, CaseTally> by_group;
  std::array<int64_t, kCodes> total{};
  std::printf("by case (calls, statuses, unexpected):\n");
  for (size_t i = 0; i < cases.size(); ++i) {
    const CaseTally& t = tallies[i];
    CaseTally& g = by_group[cases[i].group];
    for (int code = 0; code < kCodes; ++code) {
      g.codes[code] += t.codes[code];
      total[code] += t.codes[code];
    }
    g.wrong += t.wrong;
    std::printf("  %-66s %7lld  %s%s\n", cases[i].name.c_str(),
                static_cast<long long>(t.calls()), CodeCounts(t.codes).c_str(),
                Unexpected(t).c_str());
  }
  std::printf("by class (calls, statuses, unexpected):\n");
  for (const auto& [group, t] : by_group) {
    std::printf("  %-30s %9lld  %s%s\n", group.c_str(),
                static_cast<long long>(t.calls()), CodeCounts(t.codes).c_str(),
                Unexpected(t).c_str());
  }
  std::printf("statuses: %s\n", CodeCounts(total).c_str());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const bool race = c.cancel_after && !c.stream &&
                      std::find(c.expected.begin(), c.expected.end(),
                                Code::OK) != c.expected.end();
    if (!race) continue;
    const auto& codes = tallies[i].codes;
    std::printf("cancel race %s: CANCELLED=%lld OK=%lld (answered first)\n",
                c.name.c_str(), static_cast<long long>(codes[1]),
                static_cast<long long>(codes[0]));
  }
}

// The report's end: the unexpected outcomes, if any, and the verdict.
int PrintVerdict(const CaseDriver& driver) {
  const std::vector<std::string>& failures = driver.failure_lines();
  if (driver.failures() == 0) {
    std::printf("PASS: every status and answer as expected\n");
    return 0;
  }
  std::printf(
      "%lld unexpected outcomes; the first of each case (at most %zu):\n",
      static_cast<long long>(driver.failures()), failures.size());
  for (const std::string& line : failures) std::printf("  %s\n", line.c_str());
  std::printf("FAIL: %lld unexpected statuses or wrong answers\n",
              static_cast<long long>(driver.failures()));
  return 1;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Soak test of a running actsvc-server: a closed loop of valid and "
      "invalid calls of every RPC, each answer and status checked. See "
      "bench/soak.sh.");
  absl::ParseCommandLine(argc, argv);
  const Limits limits{absl::GetFlag(FLAGS_max_elements),
                      int64_t{absl::GetFlag(FLAGS_max_message_mb)} << 20};
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  if (limits.max_elements < 1024 || limits.max_message_bytes <= 0 ||
      concurrency < 1) {
    std::fprintf(stderr,
                 "actsvc-soak: --max_elements must be >= 1024, "
                 "--max_message_mb and --concurrency >= 1\n");
    return 2;
  }
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const std::vector<Case> cases = TableBuilder(limits, seed).Build();
  if (absl::GetFlag(FLAGS_list)) {
    PrintList(cases);
    return 0;
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  const std::string target = absl::GetFlag(FLAGS_target);
  auto channel = grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(
          absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    std::fprintf(stderr, "actsvc-soak: cannot connect to %s\n", target.c_str());
    return 1;
  }
  const bool verify = absl::GetFlag(FLAGS_verify);
  CaseDriver driver(cases, channel, absl::GetFlag(FLAGS_timeout), seed,
                    verify ? static_cast<int>(cases.size())
                           : absl::GetFlag(FLAGS_show_failures));
  driver.Run(verify ? 1 : concurrency, absl::GetFlag(FLAGS_duration), verify,
             verify ? 0 : absl::GetFlag(FLAGS_progress_s));
  if (verify) {
    PrintVerify(cases, driver.tallies());
  } else {
    PrintSummary(cases, driver.tallies());
    std::printf(
        "calls: %lld in %.1f s, %.0f calls/s, concurrency %d, %zu cases, "
        "seed %llu\n",
        static_cast<long long>(driver.calls()), driver.seconds(),
        driver.calls() / std::max(driver.seconds(), 1e-9), concurrency,
        cases.size(), static_cast<unsigned long long>(seed));
  }
  return PrintVerdict(driver);
}

}  // namespace
}  // namespace actsvc::soak

int main(int argc, char** argv) { return actsvc::soak::Main(argc, argv); }
