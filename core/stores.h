// Whether the kernels write large outputs with non-temporal stores.
//
// Outputs beyond the caches (the elementwise array loops' 4 MiB, the
// softmax rows' 8 MiB) may be written with non-temporal stores
// (hn::Stream), which skip the read for ownership of each output line.
// Whether that pays depends on the CPU and the kernel, so it is decided per
// kernel family from the CPU's vendor, once per process (BENCHMARKS.md,
// "Non-temporal stores by CPU", has the measurements):
//  - elementwise array loops: on. Intel Xeon: 16M-element relu from 0.88x
//    to 1.0x memcpy; AMD EPYC (Zen 4): identity and relu 1.4-1.6x faster,
//    gelu 1.1-1.25x.
//  - softmax rows: on, but off on AMD, where they cost 20-40% at 16M
//    elements (rows of 1,000 float32 values end mid cache line, so that
//    lines are written in two parts).
// The results are the same either way; only the speed differs.
#ifndef ACTSVC_CORE_STORES_H_
#define ACTSVC_CORE_STORES_H_

namespace actsvc {

// The kernel families that choose.
enum class StoreUse : int {
  kElementwise = 0,  // core/activation-inl.h's MapArray and MapSplit
  kSoftmaxRows = 1,  // core/softmax.cc's row kernel
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

// Overrides the choice for every kernel family in this process (benchmarks
// compare both ways); kByCpu restores the default. Not for use while
// kernels run on other threads.
void SetNonTemporalStores(NonTemporalStores mode);

// The CPU vendor as this choice sees it: "Intel", "AMD" or "other", for
// benchmark logs.
const char* StoreVendorName();

}  // namespace actsvc

#endif  // ACTSVC_CORE_STORES_H_
