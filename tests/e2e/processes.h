// Real processes for the end-to-end tests: a server on a free loopback port
// that is always stopped, and one-shot runs of the CLI with their output.
#ifndef ACTSVC_TESTS_E2E_PROCESSES_H_
#define ACTSVC_TESTS_E2E_PROCESSES_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::e2e {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs argv[0] (a path) with its arguments and waits, killing it after
// `timeout`.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         absl::Duration timeout = absl::Seconds(30));

// `cli --target=<target> <command> <flags...>`: one command of the CLI at
// `cli` against a server, killed after `timeout`.
ProcessResult RunCliCommand(const std::string& cli, const std::string& target,
                            const std::string& command,
                            const std::vector<std::string>& flags,
                            absl::Duration timeout);

// A port that was free a moment ago: bind 127.0.0.1:0, read it, close.
absl::StatusOr<int> PickFreePort();

// A channel with no client-side message size limit.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

// One actsvc-server process. The destructor always stops it (SIGTERM, then
// SIGKILL), and the kernel kills it if the test process dies first.
class ServerProcess {
 public:
  // Starts the server on a free port with `extra_flags` and waits until
  // Health/Check answers SERVING (at most `ready_timeout`). Retries on
  // another port if the chosen one was taken meanwhile.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::vector<std::string>& extra_flags,
      absl::Duration ready_timeout = absl::Seconds(15));

  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& target() const { return target_; }
  pid_t pid() const { return pid_; }

  // Sends a signal; the process keeps running until it exits on its own.
  void Signal(int signal) const;

  // Waits for the process to exit, up to `timeout`. Returns its exit code,
  // or 128 + the signal that killed it; nullopt if it is still running.
  std::optional<int> Wait(absl::Duration timeout);

  // SIGTERM, wait `grace`, then SIGKILL. Returns the exit status as Wait.
  int Stop(absl::Duration grace = absl::Seconds(10));

  // What the server wrote to stdout and stderr so far.
  std::string Log() const;

 private:
  ServerProcess(pid_t pid, std::string target, std::string log_path)
      : pid_(pid), target_(std::move(target)), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string target_;
  std::string log_path_;
  std::optional<int> exit_status_;
};

}  // namespace actsvc::e2e

#endif  // ACTSVC_TESTS_E2E_PROCESSES_H_
