// The load generator of `actsvc bench`: channels, and the closed-loop and
// open-loop drivers of a workload (client/workload.h) over the load
// library's calls (client/calls.h).
#ifndef ACTSVC_CLIENT_BENCH_LOAD_H_
#define ACTSVC_CLIENT_BENCH_LOAD_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "actsvc/bench/v1/report.pb.h"
#include "client/bench.h"
#include "client/tls.h"
#include "client/workload.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::client::bench {

struct LoadOptions {
  std::string target = "localhost:50051";
  TlsOptions tls;                  // plaintext unless enabled
  std::string lb = "round_robin";  // or pick_first
  int connections = 1;
  bool open_loop = false;
  std::vector<int> concurrency = {1};  // closed loop: the sweep
  int max_outstanding = 0;  // open loop: cap on calls in flight (0: 10000)
  std::vector<double> rps;  // open loop: the sweep
  Arrival arrival = Arrival::kConstant;
  absl::Duration duration = absl::Seconds(10);  // per level, when requests 0
  int64_t requests = 0;                         // per level, when > 0
  Warmup warmup;
  int64_t check_every = 100;  // 0: never
  absl::Duration timeout = absl::Seconds(30);
  uint64_t seed = 1;
  int server_pid = 0;     // > 0: read its page faults and CPU time per level
  bool progress = false;  // a progress line on stderr
};

// The service config of every channel: the load balancing policy, and
// retries of UNAVAILABLE (every RPC of the service is idempotent).
std::string ServiceConfigJson(absl::string_view lb);

// `connections` channels, each on its own TCP connection(s), waiting until
// each is connected (at most `connect_timeout`). UNAVAILABLE if one is not.
absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> ConnectChannels(
    const LoadOptions& options, absl::Duration connect_timeout);

// Runs every level of the sweep, one row each, in order.
std::vector<actsvc::bench::v1::Row> RunLoad(
    const LoadOptions& options, const Workload& workload,
    const std::vector<std::shared_ptr<grpc::Channel>>& channels);

}  // namespace actsvc::client::bench

#endif  // ACTSVC_CLIENT_BENCH_LOAD_H_
