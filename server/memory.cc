#include "server/memory.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>

#include "spdlog/spdlog.h"

namespace actsvc::server {

void ConfigureAllocator(int64_t cache_bytes) {
  // One arena: malloc_trim returns only the main arena's top, and the
  // per-thread arenas' heaps were unmapped and faulted in again under a
  // single caller (2,200 faults per [4,1048576] sigmoid call with them, 0
  // without; small allocations stay lock-free in glibc's per-thread cache).
  mallopt(M_ARENA_MAX, 1);
  // Fixed values also switch off glibc's dynamic thresholds, which would
  // otherwise move with the sizes freed.
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kLargestReusedBlock));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min<int64_t>(
                                cache_bytes, std::numeric_limits<int>::max())));
}

MemoryUse ReadMemoryUse() {
  MemoryUse use;
  if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
    long pages = 0;
    long resident = 0;
    if (std::fscanf(statm, "%ld %ld", &pages, &resident) == 2) {
      use.resident_bytes = int64_t{resident} * sysconf(_SC_PAGESIZE);
    }
    std::fclose(statm);
  }
  const struct mallinfo2 info = mallinfo2();
  use.allocated_bytes = static_cast<int64_t>(info.uordblks + info.hblkhd);
  return use;
}

MemoryKeeper::MemoryKeeper(int64_t cache_bytes, absl::Duration period)
    : cache_bytes_(cache_bytes),
      period_(period),
      baseline_(ReadMemoryUse()),
      thread_([this] { Run(); }) {}

MemoryKeeper::~MemoryKeeper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

int64_t MemoryKeeper::HeldBytes() const {
  const MemoryUse now = ReadMemoryUse();
  return (now.resident_bytes - now.allocated_bytes) -
         (baseline_.resident_bytes - baseline_.allocated_bytes);
}

int64_t MemoryKeeper::trims() const {
  std::lock_guard<std::mutex> lock(mu_);
  return trims_;
}

void MemoryKeeper::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, absl::ToChronoMilliseconds(period_),
                         [this] { return stopping_; })) {
    const int64_t held = HeldBytes();
    if (held <= cache_bytes_) continue;
    malloc_trim(0);
    ++trims_;
    spdlog::debug(
        "returned free memory to the system: {} MiB held, {} MiB "
        "after (--memory_cache_mb {})",
        held >> 20, HeldBytes() >> 20, cache_bytes_ >> 20);
  }
}

}  // namespace actsvc::server
