// The load library's drivers: a closed loop that keeps a number of calls
// outstanding, and a canceller that cancels calls at given times. The open
// loop of `actsvc bench` (client/bench_load.cc) sends on a schedule over
// the same calls (client/calls.h).
#ifndef ACTSVC_CLIENT_DRIVER_H_
#define ACTSVC_CLIENT_DRIVER_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::client {

// A closed loop: `slots` calls outstanding at all times. Each slot calls
// `next(slot, done)`, which either starts one call that runs `done` once
// when it ends (true; the slot then calls `next` again), or returns false
// when the slot has no more calls to make (the slot ends).
class ClosedLoop {
 public:
  using Next = std::function<bool(int slot, std::function<void()> done)>;

  // Blocks until every slot has ended; meanwhile calls `tick` every
  // `tick_every` (none when zero or `tick` is empty).
  void Run(int slots, Next next,
           absl::Duration tick_every = absl::ZeroDuration(),
           const std::function<void()>& tick = nullptr);

  // Slots still making calls.
  int active();

 private:
  void Issue(int slot);

  Next next_;
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
};

// Cancels calls at given times, from its own thread.
class Canceller {
 public:
  Canceller();
  ~Canceller();

  // Cancels the call of `context` at `when` (at once when it has passed).
  // The context is kept alive until then: cancelling a call that has ended
  // is harmless, cancelling a destroyed context is not.
  void CancelAt(absl::Time when, std::shared_ptr<grpc::ClientContext> context);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<absl::Time, std::shared_ptr<grpc::ClientContext>> pending_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the rest exists
};

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_DRIVER_H_
