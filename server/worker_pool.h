// A fixed set of threads that runs the compute of every call but the small
// ones (--inline_compute_kb, computed on the gRPC thread that read them), so
// that the gRPC callback threads never block on long math.
#ifndef ACTSVC_SERVER_WORKER_POOL_H_
#define ACTSVC_SERVER_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace actsvc::server {

class WorkerPool {
 public:
  // The name of each of the pool's threads.
  static constexpr char kThreadName[] = "actsvc-compute";

  // threads < 1 means one.
  explicit WorkerPool(int threads);
  // Runs every task already submitted, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(std::function<void()> task);
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void Run();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_WORKER_POOL_H_
