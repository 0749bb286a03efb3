// Calls, whatever their protocol: admission (draining and
// --max_concurrent_calls), the count of calls in flight, and the record of
// each finished call (metrics and log). And the one callback generic
// service that serves every gRPC method of the MethodTable with a unary or
// a stream reactor, computing on the worker pool.
#ifndef ACTSVC_SERVER_CALLS_H_
#define ACTSVC_SERVER_CALLS_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/compute.h"
#include "server/method_table.h"
#include "server/metrics.h"
#include "server/parallel.h"
#include "server/worker_pool.h"

namespace actsvc::server {

class CallTracker {
 public:
  // `metrics` outlives the tracker. max_concurrent_calls 0: no limit.
  CallTracker(int max_concurrent_calls, Metrics* metrics)
      : max_concurrent_calls_(max_concurrent_calls), metrics_(metrics) {}

  // Counts a call from its start to its end, for WaitUntilIdle and
  // --max_concurrent_calls.
  class Scope {
   public:
    explicit Scope(CallTracker* tracker);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

    // Calls in flight when this one started, itself included.
    int64_t in_flight_at_start() const { return in_flight_at_start_; }

   private:
    CallTracker* const tracker_;
    int64_t in_flight_at_start_ = 0;
  };

  // UNAVAILABLE once draining, naming the method.
  absl::Status CheckAccepting(absl::string_view method) const;
  // CheckAccepting, then RESOURCE_EXHAUSTED when the call started beyond
  // max_concurrent_calls.
  absl::Status CheckAdmission(absl::string_view method,
                              const Scope& scope) const;

  // Shutdown, first step: every call that starts from now on is refused
  // with UNAVAILABLE; calls already started go on.
  void StartDraining();
  // Second step: waits until every call has ended, at most `timeout`.
  // Returns whether none is left.
  bool WaitUntilIdle(absl::Duration timeout);
  // Calls started and not yet ended, refused ones included.
  int64_t CallsInFlight() const;

  // Logs the outcome of a call of metrics method `method_index` named `name`
  // from `context`'s peer and counts it. `elements`: of the requests
  // answered (0 for a failed unary call). The peer's name (a string gRPC
  // builds under a lock) is asked for only when the line is logged.
  void Record(int method_index, absl::string_view name,
              const grpc::ServerContextBase& context,
              const absl::Status& status, double elapsed_ms,
              int64_t elements = 0);

  // The Prometheus text of every call so far.
  std::string RenderMetrics() const {
    return metrics_->Render(CallsInFlight());
  }

 private:
  const int max_concurrent_calls_;
  Metrics* const metrics_;
  std::atomic<bool> draining_{false};
  mutable std::mutex mu_;
  std::condition_variable idle_;
  int64_t in_flight_ = 0;  // guarded by mu_
};

// What every call's compute needs from the server.
struct CallEnvironment {
  const MethodTable* methods = nullptr;
  CallTracker* calls = nullptr;
  WorkerPool* workers = nullptr;
  // Unary requests (MethodKind::kUnary) up to this size are
  // computed on the gRPC thread that read them.
  int64_t inline_compute_bytes = 0;
  // Limits and chunking; each call adds its deadline and cancellation.
  ComputeContext compute;
  // Runs before each unary call's (or stream message's) compute, on the
  // thread that computes it. Tests use it to hold a call in flight.
  std::function<void()> before_compute_for_testing;

  ComputeContext ContextFor(grpc::ServerContextBase* context) const;
};

// Serves every method of env.methods, whatever its service: a unary method
// as gRPC's unary calls behave (one request message, then one response and
// the status, or the status alone), a stream one message at a time. A
// reactor exists from the call's headers on, so Shutdown's drain covers a
// large request still uploading; and the messages are parsed by the
// methods, so a malformed one gets INVALID_ARGUMENT (gRPC would answer a
// typed method's with UNIMPLEMENTED and no message, or end a stream as if
// the client had half-closed).
class GenericService final : public grpc::CallbackGenericService {
 public:
  explicit GenericService(CallEnvironment env) : env_(std::move(env)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

  // Serves the inline unary method at `path` from a raw callback method of
  // a generated service. gRPC lists a service for reflection only when one
  // of its methods is not generic, so each API keeps one such method, and
  // routes it here, through the same table, admission and metrics.
  grpc::ServerUnaryReactor* ServeRawUnary(absl::string_view path,
                                          grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response);

 private:
  const CallEnvironment env_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_CALLS_H_
