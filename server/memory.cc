#include "server/memory.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <new>

#include "spdlog/spdlog.h"

namespace actsvc::server {

namespace {

// Large blocks are mapped in multiples of this, so that sizes that differ a
// little share blocks.
constexpr int64_t kBlockGranule = int64_t{2} << 20;

struct BufferCache {
  std::mutex mu;
  int64_t limit = 0;                   // guarded by mu
  int64_t cached = 0;                  // guarded by mu
  std::multimap<int64_t, void*> free;  // by mapped size; guarded by mu
};

BufferCache& Cache() {
  static BufferCache* cache = new BufferCache();
  return *cache;
}

int64_t MappedSize(int64_t bytes) {
  return (bytes + kBlockGranule - 1) / kBlockGranule * kBlockGranule;
}

}  // namespace

void* AllocateBuffer(int64_t bytes) {
  if (bytes < kLargestReusedBlock) {
    return std::aligned_alloc(
        64, static_cast<size_t>((std::max<int64_t>(bytes, 1) + 63) & ~63));
  }
  const int64_t size = MappedSize(bytes);
  BufferCache& cache = Cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.free.find(size);
    if (it != cache.free.end()) {
      void* block = it->second;
      cache.free.erase(it);
      cache.cached -= size;
      return block;
    }
  }
  void* block = mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) throw std::bad_alloc();
  return block;
}

void FreeBuffer(void* block, int64_t bytes) {
  if (block == nullptr) return;
  if (bytes < kLargestReusedBlock) {
    std::free(block);
    return;
  }
  const int64_t size = MappedSize(bytes);
  BufferCache& cache = Cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    if (cache.cached + size <= cache.limit) {
      cache.free.emplace(size, block);
      cache.cached += size;
      return;
    }
  }
  munmap(block, static_cast<size_t>(size));
}

int64_t ReleaseCachedBuffers() {
  BufferCache& cache = Cache();
  std::multimap<int64_t, void*> blocks;
  int64_t released = 0;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    blocks.swap(cache.free);
    released = cache.cached;
    cache.cached = 0;
  }
  for (const auto& [size, block] : blocks) {
    munmap(block, static_cast<size_t>(size));
  }
  return released;
}

void ConfigureAllocator(int64_t cache_bytes) {
  {
    BufferCache& cache = Cache();
    std::lock_guard<std::mutex> lock(cache.mu);
    cache.limit = cache_bytes;
  }
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
    ReleaseCachedBuffers();
    malloc_trim(0);
    ++trims_;
    spdlog::debug(
        "returned free memory to the system: {} MiB held, {} MiB "
        "after (--memory_cache_mb {})",
        held >> 20, HeldBytes() >> 20, cache_bytes_ >> 20);
  }
}

}  // namespace actsvc::server
