// Splits the chunks of one large request over threads. The calling thread (a
// per-call WorkerPool thread) always works too, and helpers come from a
// separate pool whose threads never wait on anything, so no thread can be
// stuck waiting for a chunk worker that is itself waiting: there is no
// deadlock however many calls share the pool. A ParallelFor called from a
// helper thread runs inline.
#ifndef ACTSVC_SERVER_PARALLEL_H_
#define ACTSVC_SERVER_PARALLEL_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "server/worker_pool.h"

namespace actsvc::server {

class ChunkPool {
 public:
  // helpers < 1: no helper threads, every ParallelFor runs inline.
  explicit ChunkPool(int helpers)
      : helpers_(helpers),
        pool_(helpers < 1 ? nullptr : new WorkerPool(helpers)) {}

  // The threads a ParallelFor can use: the caller and the helpers.
  int threads() const { return helpers_ < 1 ? 1 : helpers_ + 1; }

  // Runs fn(i) for every i in [0, count), each exactly once, on the calling
  // thread and up to `helpers` pool threads; returns when all have run. fn
  // must be safe to call concurrently for different i.
  template <typename Fn>
  void ParallelFor(int64_t count, const Fn& fn) {
    if (count <= 0) return;
    if (pool_ == nullptr || count == 1 || InHelper()) {
      for (int64_t i = 0; i < count; ++i) fn(i);
      return;
    }
    // Shared with the helper tasks, which may start after this call has
    // returned: they then find no index left and never touch fn.
    struct State {
      std::atomic<int64_t> next{0};
      int64_t count = 0;
      void (*run)(const void* fn, int64_t i) = nullptr;
      const void* fn = nullptr;
      absl::Mutex mu;
      int64_t done ABSL_GUARDED_BY(mu) = 0;
    };
    auto state = std::make_shared<State>();
    state->count = count;
    state->fn = &fn;
    state->run = [](const void* f, int64_t i) {
      (*static_cast<const Fn*>(f))(i);
    };
    const auto work = [](State& s) {
      int64_t finished = 0;
      for (int64_t i; (i = s.next.fetch_add(1)) < s.count; ++finished) {
        s.run(s.fn, i);
      }
      if (finished > 0) {
        absl::MutexLock lock(&s.mu);
        s.done += finished;
      }
    };
    const int64_t helpers = std::min<int64_t>(helpers_, count - 1);
    for (int64_t h = 0; h < helpers; ++h) {
      pool_->Submit([state, work] {
        InHelper() = true;
        work(*state);
        InHelper() = false;
      });
    }
    work(*state);
    absl::MutexLock lock(&state->mu);
    const State* s = state.get();
    state->mu.Await(absl::Condition(
        +[](const State* st)
             ABSL_NO_THREAD_SAFETY_ANALYSIS { return st->done == st->count; },
        s));
  }

 private:
  static bool& InHelper() {
    thread_local bool in_helper = false;
    return in_helper;
  }

  int helpers_;
  std::unique_ptr<WorkerPool> pool_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_PARALLEL_H_
