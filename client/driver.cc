#include "client/driver.h"

#include <utility>

#include "absl/time/clock.h"

namespace actsvc::client {

void ClosedLoop::Run(int slots, Next next, absl::Duration tick_every,
                     const std::function<void()>& tick) {
  next_ = std::move(next);
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_ = slots;
  }
  for (int slot = 0; slot < slots; ++slot) Issue(slot);
  const bool ticking = tick && tick_every > absl::ZeroDuration();
  absl::Time next_tick = absl::Now() + tick_every;
  std::unique_lock<std::mutex> lock(mu_);
  while (active_ > 0) {
    if (!ticking) {
      cv_.wait(lock);
      continue;
    }
    cv_.wait_until(lock, absl::ToChronoTime(next_tick));
    if (absl::Now() >= next_tick && active_ > 0) {
      lock.unlock();
      tick();
      lock.lock();
      next_tick += tick_every;
    }
  }
}

int ClosedLoop::active() {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

void ClosedLoop::Issue(int slot) {
  if (next_(slot, [this, slot] { Issue(slot); })) return;
  std::lock_guard<std::mutex> lock(mu_);
  --active_;
  cv_.notify_all();
}

Canceller::Canceller() : thread_([this] { Loop(); }) {}

Canceller::~Canceller() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Canceller::CancelAt(absl::Time when,
                         std::shared_ptr<grpc::ClientContext> context) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.emplace(when, std::move(context));
  }
  cv_.notify_all();
}

void Canceller::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (pending_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const absl::Time next = pending_.begin()->first;
    if (absl::Now() < next) {
      cv_.wait_until(lock, absl::ToChronoTime(next));
      continue;
    }
    std::shared_ptr<grpc::ClientContext> context =
        std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    lock.unlock();
    context->TryCancel();
    context.reset();
    lock.lock();
  }
}

}  // namespace actsvc::client
