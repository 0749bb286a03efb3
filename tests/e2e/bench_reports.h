// What the end-to-end tests of `actsvc bench` share: scratch paths for its
// reports, and the JSON report read back.
#ifndef ACTSVC_TESTS_E2E_BENCH_REPORTS_H_
#define ACTSVC_TESTS_E2E_BENCH_REPORTS_H_

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "actsvc/bench/v1/report.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace actsvc::e2e {

// $TEST_TMPDIR (or /tmp)/actsvc_<test>_<pid>_<name>.
inline std::string TempPath(absl::string_view test, absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/actsvc_", test, "_",
                      getpid(), "_", name);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The report `actsvc bench --json=<path>` wrote; a failure when it does not
// parse.
inline bench::v1::Report ReadReport(const std::string& path) {
  bench::v1::Report report;
  const auto status =
      google::protobuf::util::JsonStringToMessage(ReadFile(path), &report);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return report;
}

// The call counts of a report's row.
struct RowCounts {
  int64_t requests, ok, errors, wrong_answers, checked;
};

// `report` has one row, with the counts `want`.
inline void ExpectOneRow(const bench::v1::Report& report,
                         const RowCounts& want) {
  ASSERT_EQ(report.rows_size(), 1);
  const bench::v1::Row& row = report.rows(0);
  EXPECT_EQ(row.requests(), want.requests);
  EXPECT_EQ(row.ok(), want.ok);
  EXPECT_EQ(row.errors(), want.errors);
  EXPECT_EQ(row.wrong_answers(), want.wrong_answers);
  EXPECT_EQ(row.checked(), want.checked);
}

}  // namespace actsvc::e2e

#endif  // ACTSVC_TESTS_E2E_BENCH_REPORTS_H_
