#include "tests/e2e/processes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace actsvc::e2e {
namespace {

std::string TempPath(absl::string_view stem) {
  const char* dir = std::getenv("TMPDIR");
  std::string path =
      absl::StrCat(dir != nullptr && *dir ? dir : "/tmp", "/", stem, ".XXXXXX");
  int fd = mkstemp(path.data());
  if (fd >= 0) close(fd);
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// fork + exec rather than posix_spawn for PR_SET_PDEATHSIG: a test that
// crashes must not leave a server behind. Only async-signal-safe calls run
// between fork and exec.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;  // parent, or -1

  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the parent died before prctl
  const int in = open("/dev/null", O_RDONLY);
  const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err =
      err_path == out_path
          ? out
          : open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0 || err < 0) _exit(127);
  dup2(in, STDIN_FILENO);
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  execv(args[0], args.data());
  _exit(127);
}

// waitpid until `timeout`; the raw wait status, or nullopt if still running.
std::optional<int> WaitPid(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool IsServing(const std::shared_ptr<grpc::Channel>& channel,
               absl::Duration timeout) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(true);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status =
      stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  return status.ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         absl::Duration timeout) {
  ProcessResult result;
  const std::string out_path = TempPath("actsvc-e2e-out");
  const std::string err_path = TempPath("actsvc-e2e-err");
  const pid_t pid = Spawn(argv, out_path, err_path);
  if (pid < 0) {
    result.err = absl::StrCat("fork failed: ", std::strerror(errno));
    return result;
  }
  std::optional<int> status = WaitPid(pid, timeout);
  if (!status.has_value()) {
    kill(pid, SIGKILL);
    status = WaitPid(pid, absl::Seconds(10));
    result.timed_out = true;
  }
  result.exit_code = result.timed_out || !status.has_value()
                         ? -1
                         : (WIFEXITED(*status) ? WEXITSTATUS(*status) : -1);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  return result;
}

ProcessResult RunCliCommand(const std::string& cli, const std::string& target,
                            const std::string& command,
                            const std::vector<std::string>& flags,
                            absl::Duration timeout) {
  std::vector<std::string> argv = {cli, absl::StrCat("--target=", target),
                                   command};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return RunProcess(argv, timeout);
}

absl::StatusOr<int> PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError(
        absl::StrCat("bind/getsockname failed: ", std::strerror(errno)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // The server is polled while it starts; keep reconnect attempts frequent.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  // A fresh connection per channel, so one test's channel state (GOAWAY,
  // backoff) never leaks into another's.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::vector<std::string>& extra_flags,
    absl::Duration ready_timeout) {
  std::string last_log;
  constexpr int kAttempts = 3;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    absl::StatusOr<int> port = PickFreePort();
    if (!port.ok()) return port.status();
    const std::string target = absl::StrCat("127.0.0.1:", *port);
    std::vector<std::string> argv = {binary,
                                     absl::StrCat("--address=", target)};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    const std::string log_path = TempPath("actsvc-e2e-server-log");
    const pid_t pid = Spawn(argv, log_path, log_path);
    if (pid < 0) {
      return absl::InternalError(
          absl::StrCat("fork failed: ", std::strerror(errno)));
    }
    std::unique_ptr<ServerProcess> server(
        new ServerProcess(pid, target, log_path));

    auto channel = MakeChannel(target);
    const absl::Time deadline = absl::Now() + ready_timeout;
    while (absl::Now() < deadline) {
      if (IsServing(channel, absl::Milliseconds(250))) return server;
      if (server->Wait(absl::ZeroDuration()).has_value()) break;
    }
    last_log = server->Log();
    if (!server->exit_status_.has_value()) {
      server->Stop(absl::Seconds(2));
      return absl::DeadlineExceededError(absl::StrCat(
          "actsvc-server (", absl::StrJoin(argv, " "), ") not SERVING after ",
          absl::FormatDuration(ready_timeout), "; its log:\n", last_log));
    }
    // It exited: most likely the port was taken between pick and bind; try
    // another one.
  }
  return absl::UnavailableError(
      absl::StrCat("actsvc-server exited during startup ", kAttempts,
                   " times; last log:\n", last_log));
}

ServerProcess::~ServerProcess() {
  Stop();
  unlink(log_path_.c_str());
}

void ServerProcess::Signal(int signal) const {
  if (!exit_status_.has_value()) kill(pid_, signal);
}

std::optional<int> ServerProcess::Wait(absl::Duration timeout) {
  if (!exit_status_.has_value()) {
    std::optional<int> status = WaitPid(pid_, timeout);
    if (status.has_value()) exit_status_ = DecodeStatus(*status);
  }
  return exit_status_;
}

int ServerProcess::Stop(absl::Duration grace) {
  if (exit_status_.has_value()) return *exit_status_;
  kill(pid_, SIGTERM);
  if (std::optional<int> code = Wait(grace)) return *code;
  kill(pid_, SIGKILL);
  return Wait(absl::Seconds(10)).value_or(-1);
}

std::string ServerProcess::Log() const { return ReadFile(log_path_); }

}  // namespace actsvc::e2e
