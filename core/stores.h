// Whether the kernels write large outputs with non-temporal stores.
//
// Outputs beyond the caches (from 4 MiB for the elementwise kernels, 8 MiB
// for the softmax rows: StreamOutput) may be written with non-temporal
// stores (hn::Stream), which skip the read for ownership of each output
// line.
// Whether that pays depends on the CPU and the kernel, so it is decided per
// kernel family from the CPU's vendor, once per process (BENCHMARKS.md,
// "Non-temporal stores by CPU", has the measurements):
//  - elementwise array loops: on. Intel Xeon: 16M-element relu from 0.88x
//    to 1.0x memcpy; AMD EPYC (Zen 4): identity and relu 1.4-1.6x faster,
//    gelu 1.1-1.25x.
//  - softmax rows: on, but off on AMD, where they cost 20-40% at 16M
//    elements (rows of 1,000 float32 values end mid cache line, so that
//    lines are written in two parts).
//  - the half types' table lookups (64-bit movnti, four results each): on,
//    but off on Intel, where they ran at 0.4x plain stores (Xeon, 16M
//    float16 sigmoid and gelu f: 1.0 against 2.6-2.8 elements/ns).
// The results are the same either way; only the speed differs.
#ifndef ACTSVC_CORE_STORES_H_
#define ACTSVC_CORE_STORES_H_

#include <stddef.h>
#include <stdint.h>

namespace actsvc {

// The kernel families that choose.
enum class StoreUse : int {
  kElementwise = 0,  // the elementwise array loops, float32 to bfloat16
  kSoftmaxRows = 1,  // core/softmax.cc's row kernel
  kHalfTables = 2,   // core/activation_half_table.cc's lookups
};

// The choice, overridable for a whole process.
enum class NonTemporalStores : int {
  kByCpu = 0,  // the vendor's choice above (the default)
  kOn = 1,
  kOff = 2,
};

// True when outputs of `use` beyond the caches are to be written with
// non-temporal stores in this process. Cheap: a load of a value decided
// once.
bool UseNonTemporalStores(StoreUse use);

// True when an output of `bytes` bytes of `use` is to be written with
// non-temporal stores: at least the family's threshold (4 MiB elementwise,
// where an output no longer fits in L2; 8 MiB for softmax rows, whose
// outputs would only evict the next rows' inputs) and
// UseNonTemporalStores(use).
bool StreamOutput(StoreUse use, size_t bytes);

// True when an output of `bytes` bytes of `use` lies beyond the caches: at
// least the family's threshold above, whatever the store choice. The
// elementwise loops then prefetch their inputs ahead (PrefetchAhead
// below).
bool BeyondCaches(StoreUse use, size_t bytes);

// Prefetches kBytes bytes of input at p + kPrefetchAhead bytes, for loops
// over inputs beyond the caches. The CPU's own prefetchers stop at 4 KiB
// page boundaries; a loop whose values take long to compute then waits for
// memory at each page instead of computing while it arrives (16M float32
// elements on an Intel Xeon: sigmoid 1.38 -> 2.06 elements/ns, gelu_tanh
// 0.77 -> 1.31; BENCHMARKS.md, "Session 12: an Intel guest"). The address
// is formed as an integer: it may lie past the array's end (a prefetch
// never faults).
// The compiler's builtin, always inlined, not hwy::Prefetch: this header is
// compiled outside the per-target code, and gcc 12 neither inlined
// hwy::Prefetch (target "sse2") through it into the AVX-512 kernels nor
// kept the call (a function with no effect but a prefetch counts as const),
// so that from cf0ed23 to this change the float32 array loops prefetched
// nothing (16M on an Intel Xeon: sigmoid f 1.40-1.44 -> 1.71-1.74
// elements/ns with it, gelu_tanh f 1.08-1.11 -> 1.34-1.36; BENCHMARKS.md,
// "Session 16").
constexpr uintptr_t kPrefetchAhead = 4096;
template <size_t kBytes>
inline __attribute__((always_inline)) void PrefetchAhead(const void* p) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(p) + kPrefetchAhead;
  for (size_t b = 0; b < kBytes; b += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(at + b), /*rw=*/0,
                       /*locality=*/3);
  }
}

// Overrides the choice for every kernel family in this process (benchmarks
// compare both ways); kByCpu restores the default. Not for use while
// kernels run on other threads.
void SetNonTemporalStores(NonTemporalStores mode);

// Whether the half types' table lookups (core/activation_half_table.cc)
// are to use AVX-512 gathers rather than scalar loads, decided once per
// process: on Intel, unless the kernel reports the Downfall (GDS) microcode
// mitigation, which makes gathers several times slower (Xeon with AVX512-FP16,
// not affected: float16 f 1.3x faster at 64K elements, 1.45x at 16M with
// non-temporal stores; BENCHMARKS.md, "Session 16"); not on AMD Zen 4, where
// scalar loads win by 1.3x from 4K to 64K elements.
bool PreferGathers();

// The CPU vendor as this choice sees it: "Intel", "AMD" or "other", for
// benchmark logs.
const char* StoreVendorName();

}  // namespace actsvc

#endif  // ACTSVC_CORE_STORES_H_
