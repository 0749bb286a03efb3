// The soak's driver: a closed loop (client/driver.h) of calls drawn at
// random (seeded, by weight) from the table, or each case once in order
// (--verify); every call's status and answers judged against its case.
#ifndef ACTSVC_BENCH_SOAK_DRIVER_H_
#define ACTSVC_BENCH_SOAK_DRIVER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "bench/soak_table.h"
#include "client/driver.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::soak {

constexpr int kCodes = 17;  // gRPC status codes 0..16
// "OK", "CANCELLED", ...
const char* CodeName(int code);

// How one call ended.
struct Outcome {
  int code = 0;
  std::string message;  // the server's (or gRPC's) error message
  std::string wrong;    // what is wrong with an answer; "" when right
  int responses = 0;    // stream
};

// The calls of one case (or class) by status.
struct CaseTally {
  std::array<int64_t, kCodes> codes{};
  int64_t wrong = 0;          // unexpected status or wrong answer
  std::string first_message;  // of a non-OK status, for --verify

  int64_t calls() const;
};

class CaseDriver {
 public:
  CaseDriver(const std::vector<Case>& cases,
             std::shared_ptr<grpc::Channel> channel, absl::Duration timeout,
             uint64_t seed, int show_failures);

  // Keeps `concurrency` calls outstanding until `duration` has passed, then
  // waits for the last ones. In sequence mode, calls every case once, in
  // order, with concurrency 1.
  void Run(int concurrency, absl::Duration duration, bool sequence,
           int progress_s);

  int64_t calls() const { return calls_; }
  int64_t failures() const { return failures_; }
  double seconds() const { return absl::ToDoubleSeconds(end_ - start_); }
  const std::vector<CaseTally>& tallies() const { return tallies_; }
  const std::vector<std::string>& failure_lines() const { return shown_; }

 private:
  // Starts the next call, which runs `done` when it ends; false when the
  // run is over.
  bool IssueNext(std::function<void()> done);
  void StartStream(size_t index, std::shared_ptr<grpc::ClientContext> context,
                   std::function<void()> done);
  // Cancels per the case, `cancel_after` from now.
  void Cancel(const Case& c,
              const std::shared_ptr<grpc::ClientContext>& context);
  void Finish(size_t index, Outcome outcome);
  void PrintProgress();

  const std::vector<Case>& cases_;
  grpc::GenericStub stub_;
  const absl::Duration timeout_;
  client::Canceller canceller_;
  client::ClosedLoop loop_;

  std::mutex mu_;
  std::mt19937_64 rng_;
  std::discrete_distribution<size_t> draw_;
  const int show_failures_;
  bool sequence_ = false;
  size_t next_in_sequence_ = 0;
  absl::Time start_, stop_at_, end_;
  int64_t calls_ = 0;
  int64_t failures_ = 0;
  std::vector<CaseTally> tallies_;
  std::vector<std::string> shown_;
};

}  // namespace actsvc::soak

#endif  // ACTSVC_BENCH_SOAK_DRIVER_H_
