// Memory reused across calls, within a cap (--memory_cache_mb).
//
// Left to its defaults, glibc's malloc hands a large freed block back to the
// kernel (munmap, or a trim of the heap's top), so the next call's tensors
// and gRPC's request slices first-touch fresh pages: about 12,000 minor
// faults for a [4,1048576] float32 call, at about 15 µs each on these
// machines (BENCHMARKS.md, "## Moving tensors"). Reusing the blocks instead
// is what makes a large call cost its copies and nothing else.
#ifndef ACTSVC_SERVER_MEMORY_H_
#define ACTSVC_SERVER_MEMORY_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "absl/time/time.h"

namespace actsvc::server {

// The largest block glibc serves from its heap rather than mmap (its limit
// for M_MMAP_THRESHOLD on 64-bit): larger ones are still mapped per call.
inline constexpr int64_t kLargestReusedBlock = int64_t{32} << 20;

// Process-wide, once at start-up before the server's threads: one heap (no
// per-thread arenas), blocks below kLargestReusedBlock come from it and are
// reused, and free memory at its top goes back to the kernel only beyond
// `cache_bytes`. Has no
// effect under a sanitizer's allocator.
void ConfigureAllocator(int64_t cache_bytes);

// Memory for tensor values that travel through the server (wire.h's
// buffers), 64-byte aligned. Blocks under kLargestReusedBlock come from
// malloc; larger ones, which glibc would map and unmap on every call, are
// kept for reuse here, up to the cache ConfigureAllocator was given (0
// without it: then they are unmapped when freed). `bytes` of FreeBuffer is
// that of the AllocateBuffer that returned `block`.
void* AllocateBuffer(int64_t bytes);
void FreeBuffer(void* block, int64_t bytes);
// Unmaps the large blocks kept for reuse; returns their bytes.
int64_t ReleaseCachedBuffers();

// Free memory the process holds for reuse, estimated as its resident bytes
// beyond what it had at `baseline` that malloc does not count as allocated.
struct MemoryUse {
  int64_t resident_bytes = 0;
  int64_t allocated_bytes = 0;  // malloc's in-use blocks, mapped ones too
};
MemoryUse ReadMemoryUse();

// Every `period`, returns the free memory the allocator holds beyond
// `cache_bytes` to the kernel (the cached large buffers and malloc_trim), so
// that after a burst of large calls the process shrinks back to what it had at
// start, what is in use and at most `cache_bytes` more.
class MemoryKeeper {
 public:
  MemoryKeeper(int64_t cache_bytes, absl::Duration period);
  ~MemoryKeeper();
  MemoryKeeper(const MemoryKeeper&) = delete;
  MemoryKeeper& operator=(const MemoryKeeper&) = delete;

  // The free memory held for reuse now, as the keeper measures it.
  int64_t HeldBytes() const;
  // How many times memory was returned.
  int64_t trims() const;

 private:
  void Run();

  const int64_t cache_bytes_;
  const absl::Duration period_;
  const MemoryUse baseline_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  int64_t trims_ = 0;      // guarded by mu_
  std::thread thread_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_MEMORY_H_
