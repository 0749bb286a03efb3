// The transport baseline of bench/service.sh: a gRPC server that answers
// every unary method with its request's bytes, built with actsvc-server's
// gRPC options (server/server.h's AddChannelArguments) and allocator
// settings (server/memory.h, at actsvc-server's default cache). What
// actsvc-server adds to a call beyond moving its bytes is the service
// table's "x echo" column.
//
//   actsvc-echo-server --address=127.0.0.1:50052 [--max_message_mb=64]
//
// `actsvc bench --method=/actsvc.bench.v1.Echo/Echo ...` drives it with the
// same request actsvc-server gets, and checks each answer is that request.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/memory.h"
#include "server/options.h"
#include "server/server.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50052",
          "listen address, host:port (port 0 picks a free one)");
ABSL_FLAG(int, max_message_mb, actsvc::server::ServerOptions{}.max_message_mb,
          "the largest request and response, in MiB (as actsvc-server's)");

namespace {

// One request message, answered with itself: its slices are shared, not
// copied, so this is what gRPC alone costs.
class EchoReactor final : public grpc::ServerGenericBidiReactor {
 public:
  EchoReactor() { StartRead(&message_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the client closed the call without a request"));
      return;
    }
    StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer message_;
};

// grpc.health.v1.HealthCheckResponse{status: SERVING}, serialized.
grpc::ByteBuffer ServingResponse() {
  static constexpr char kServing[] = {0x08, 0x01};
  grpc::Slice slice(kServing, sizeof(kServing));
  return grpc::ByteBuffer(&slice, 1);
}

// gRPC's default health service is not created beside a generic service, and
// the load client's round_robin channels watch health before they send:
// Check and Watch say SERVING for any service name (Watch until cancelled).
class HealthReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit HealthReactor(bool watch) : watch_(watch) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
      return;
    }
    response_ = ServingResponse();
    if (watch_) {
      StartWrite(&response_);
    } else {
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    }
  }
  void OnWriteDone(bool /*ok*/) override {}  // Watch: wait for the cancel
  void OnCancel() override {
    if (watch_) Finish(grpc::Status::CANCELLED);
  }
  void OnDone() override { delete this; }

 private:
  const bool watch_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

class EchoService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    if (context->method() == "/grpc.health.v1.Health/Check") {
      return new HealthReactor(/*watch=*/false);
    }
    if (context->method() == "/grpc.health.v1.Health/Watch") {
      return new HealthReactor(/*watch=*/true);
    }
    return new EchoReactor();
  }
};

volatile std::sig_atomic_t stop_requested = 0;

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  actsvc::server::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  if (absl::Status valid = actsvc::server::CheckOptions(options); !valid.ok()) {
    std::fprintf(stderr, "%s\n", std::string(valid.message()).c_str());
    return 2;
  }
  EchoService echo;
  actsvc::server::ConfigureAllocator(options.memory_cache_bytes());
  // As actsvc-server does (server/main.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const actsvc::server::MemoryKeeper memory(options.memory_cache_bytes(),
                                            absl::Seconds(1));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(),
                           &port);
  actsvc::server::AddChannelArguments(options, &builder);
  builder.RegisterCallbackGenericService(&echo);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cannot listen on %s\n", options.address.c_str());
    return 1;
  }
  std::fprintf(
      stderr, "actsvc-echo-server listening on %s\n",
      absl::StrCat(actsvc::server::HostOf(options.address), ":", port).c_str());
  std::signal(SIGTERM, [](int) { stop_requested = 1; });
  std::signal(SIGINT, [](int) { stop_requested = 1; });
  while (stop_requested == 0) {
    // A signal handler may not call Shutdown; poll instead.
    struct timespec tick = {0, 100 * 1000 * 1000};
    nanosleep(&tick, nullptr);
  }
  server->Shutdown();
  return 0;
}
