// Half-precision f, f' and f'' by table lookup (core/activation_half.h):
// a half type has 65,536 inputs, so for one (type, function, kind, alpha)
// the whole answer is a table of 65,536 half results, y = table[bits(x)].
// The VJP, g f'(x), depends on g too: its table holds f' in float32 for
// each pattern (BuildF1, the values the general path computes per chunk),
// which core/activation_half.cc multiplies by g and rounds with its
// rounding test (HalfF1Table), bit for bit the general path's VJP.
//
// The table is built by running this target's general half path
// (core/activation_half.cc: float32 kernel, rounding test, float64
// recomputation of flagged lanes) over all 65,536 patterns, so each entry is
// bit for bit what that path returns for the input, NaN patterns included
// (tests/core/half_table_test.cc checks every entry of every table against
// the general path on every target). No new formulas.
//
// The cache of tables, process-wide and thread-safe:
//  - Key: the half type, function, kind, alpha's bits, the dispatch target
//    (the general path's NaN bits depend on it, and the tests run every
//    target) and, for bfloat16, whether the AVX512-BF16 rounding is on
//    (the same results, but the tests compare the two ways).
//  - Bound: 12 MiB. Every key (a built table, or a count toward one)
//    reserves its table's bytes: 128 KiB (131,136 with padding) for f, f'
//    or f'', 256 KiB for the VJP's f', so the cache holds at most 95 keys of
//    the one and 48 of the other; before a new key goes in, the least
//    recently used ones are dropped until it fits. A caller holds its table
//    by shared_ptr, so a table dropped while in use lives until that call
//    returns. Every default-alpha key of both types fits: 50 of f, f' and
//    f'' (6.4 MiB) and 16 VJPs (4 MiB). leaky_relu's keys hold a bound
//    instead (below) and reserve 16 KiB each.
//  - leaky_relu's f and VJP (HalfLeanBelow): not a table (its multiply
//    beats a lookup) but a check of its alpha, built as a table is: the
//    general path over all 65,536 patterns with its rounding test and
//    without (the f of every x; the VJP of every g at x = -1, 1, -inf and
//    inf), and the bound of the operand magnitudes where they differ, below
//    which the lean path still tests (HalfParams::lean_below). For the
//    default alpha, 0.01, that bound is 0 for float16 on every target (its
//    double-rounded subnormal products are what the test's float64
//    recomputation gives too) and covers bfloat16's float32-subnormal
//    products on AVX-512 (vcvtne2ps2bf16 takes them as 0).
//  - When to build (ski rental): a build is one general-path pass over all
//    65,536 patterns, whose special and extreme values make it dearer than
//    a pass over an activation's inputs: measured on AMD Zen 4 as 1.2-2.0
//    passes of 65,536 uniform inputs in [-10, 10] for float16, 1.5-3.4 for
//    bfloat16 (50-190 us). Each key counts the elements it computes on the
//    general path; the call that brings the count to kBuildAfter (4 x
//    65,536) builds the table and uses it, and every later call uses it
//    whatever its length. So an array of 262,144 or more builds at once,
//    and a stream of smaller calls pays at most about one build's worth of
//    general-path work first: no caller pays more than about twice the
//    cost of the better choice in hindsight. A VJP's f' table costs
//    65,536 evaluations of the float64 f', as many as the general path
//    makes over 65,536 values: its key builds at that count
//    (kVjpBuildAfter).
//  - Concurrent first use: the build runs under the key's std::once_flag,
//    outside the cache's mutex: one thread builds, callers of the same key
//    wait for it, callers of other keys do not.
// The lookup, by CPU (PreferGathers in core/stores.h): AVX-512 gathers
// (vpgatherdd, scale 2) with the elementwise loops' non-temporal stores on
// Intel, where they run 1.3x faster than scalar loads at 64K elements and
// 1.45x at 16M (Xeon, BENCHMARKS.md "Session 16"), unless the Downfall (GDS)
// microcode mitigation slows gathers; a scalar loop (movzx loads) elsewhere:
// on AMD Zen 4 it beats the gathers by 1.3x from 4K to 64K elements and
// ties or wins at 16M.
// Not tabled: leaky_relu's f and VJP (its only kinds that round), whose
// general path, a float32 multiply, beats the scalar lookup (AMD Zen 4,
// float16 f at 64K: 4.9 elements/ns against 3.4); on the Intel Xeon the
// gathers' 6.4-6.9 and that path's 6.0-6.5 were within the noise of each
// other (BENCHMARKS.md, "Session 16"), and its lean path (the bound above)
// runs at 10-15 (session 17).
// The VJP's table lost in session lut14 (scalar lookups into a buffer, the
// rounding test of then) and won in session 15 (one gather per vector, the
// bracket tests): 1.4-3.5x the float32 kernel's path on an Intel Xeon
// (BENCHMARKS.md, "Session 15").
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/activation_half_table.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/activation_half.h"
#include "core/half.h"
#include "core/stores.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "hwy/targets.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

// y[i] = t[bits(x[i])] by AVX-512 gathers: 16 indices widened to 32 bits,
// vpgatherdd with scale 2 (each lane reads 4 bytes at t + 2 x[i]: the table
// has a padding entry), narrowed by vpmovdw. Returns how many it did (a
// multiple of 32; 0 on other targets).
size_t LookupGather(const uint16_t* t, const uint16_t* x, uint16_t* y, size_t n,
                    bool stream, bool prefetch) {
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
  size_t i = 0;
  const int* base = reinterpret_cast<const int*>(t);
  // The masked and zero-extending forms: the plain ones start from an
  // undefined register, which gcc 12 warns of.
  const __mmask16 all = 0xFFFF;
  const __m512i zero = _mm512_setzero_si512();
  for (; i + 32 <= n; i += 32) {
    if (prefetch) PrefetchAhead<64>(x + i);  // a line of x a step
    const __m512i i0 = _mm512_maskz_cvtepu16_epi32(
        all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    const __m512i i1 = _mm512_maskz_cvtepu16_epi32(
        all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 16)));
    const __m512i v0 = _mm512_mask_i32gather_epi32(zero, all, i0, base, 2);
    const __m512i v1 = _mm512_mask_i32gather_epi32(zero, all, i1, base, 2);
    const __m256i r0 = _mm512_maskz_cvtepi32_epi16(all, v0);
    const __m256i r1 = _mm512_maskz_cvtepi32_epi16(all, v1);
    __m256i* out = reinterpret_cast<__m256i*>(y + i);
    if (stream) {
      _mm256_stream_si256(out, r0);
      _mm256_stream_si256(out + 1, r1);
    } else {
      _mm256_storeu_si256(out, r0);
      _mm256_storeu_si256(out + 1, r1);
    }
  }
  return i;
#else
  (void)t, (void)x, (void)y, (void)n, (void)stream, (void)prefetch;
  return 0;
#endif
}

// The target HWY_DYNAMIC_DISPATCH chose (hwy::SupportedTargets() gives it
// too, but runs CPUID on every call: microseconds).
int64_t DispatchedTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace actsvc {

HWY_EXPORT(LookupGather);
HWY_EXPORT(DispatchedTarget);

namespace internal {
namespace {

constexpr size_t kPatterns = 65536;
// The bytes of tables the cache holds at most (see the top).
constexpr size_t kMaxBytes = size_t{12} << 20;
// General-path elements per key before its table is built (see the top).
constexpr uint64_t kBuildAfter = 4 * kPatterns;
constexpr uint64_t kVjpBuildAfter = kPatterns;
// What a lean key reserves (it holds a bound, no table): bounds their count
// at 768.
constexpr size_t kLeanBytes = size_t{16} << 10;

// What a key's slot holds.
enum class What : uint8_t {
  kTable,  // f, f' or f'': the results of every pattern
  kF1,     // the VJP: f' of every pattern in float32
  kLean,   // leaky_relu's f or VJP: HalfLeanBelow's bound
};

struct Table {
  // The results; one padding entry for the gathers' 4-byte reads.
  alignas(64) uint16_t bits[kPatterns + 32];
};

// The VJP's table: f' of each pattern in float32 (HalfF1Table).
struct F1Table {
  alignas(64) float f1[kPatterns];
};

struct Key {
  uint64_t alpha_bits;
  int64_t target;
  uint8_t bf16, function, kind, native_bf16, what;
  bool operator==(const Key& o) const {
    return alpha_bits == o.alpha_bits && target == o.target && bf16 == o.bf16 &&
           function == o.function && kind == o.kind &&
           native_bf16 == o.native_bf16 && what == o.what;
  }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = k.alpha_bits * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<uint64_t>(k.target) + 0x632BE59BD9B4E019ull + (h << 6);
    h ^= (uint64_t{k.what} << 32 | uint64_t{k.bf16} << 24 |
          uint64_t{k.function} << 16 | uint64_t{k.kind} << 8 | k.native_bf16) +
         (h >> 2);
    return static_cast<size_t>(h);
  }
};

struct Slot {
  std::once_flag once;
  std::unique_ptr<Table> table;  // set under `once` (f, f', f'')
  std::unique_ptr<F1Table> f1;   // set under `once` (the VJP)
  int32_t lean_below = -1;       // set under `once` (kLean)
  size_t bytes = 0;              // the table's size, reserved in the cache
  // Guarded by the cache's mutex:
  uint64_t general_elements = 0;  // computed on the general path so far
  uint64_t last_use = 0;
  bool building = false;  // the build was started (or done)
};

struct Cache {
  std::mutex mu;
  std::unordered_map<Key, std::shared_ptr<Slot>, KeyHash> slots;
  size_t bytes = 0;  // reserved by the slots
  uint64_t tick = 0;
  uint64_t builds = 0;
};

Cache& TheCache() {
  static Cache* cache = new Cache;  // never destroyed: used at exit
  return *cache;
}

std::atomic<int> loop_mode{static_cast<int>(HalfTableLoop::kByCpu)};
std::atomic<bool> use_tables{true};

// The general path over all 65,536 patterns, in chunks of 4,096 through
// stack buffers (no temporary arrays of the table's size to allocate).
template <typename H>
void BuildHalf(Function f, ElementwiseKind kind, double alpha, Slot* slot) {
  constexpr size_t kChunk = 4096;
  auto table = std::make_unique<Table>();
  H x[kChunk], y[kChunk];
  for (size_t begin = 0; begin < kPatterns; begin += kChunk) {
    for (size_t i = 0; i < kChunk; ++i) {
      x[i] = HalfFromBits<H>(static_cast<uint16_t>(begin + i));
    }
    ElementwiseHalfGeneral(f, kind, alpha, x, nullptr, y, kChunk);
    std::memcpy(table->bits + begin, y, sizeof(y));
  }
  std::memset(table->bits + kPatterns, 0, sizeof(table->bits) - kPatterns * 2);
  slot->table = std::move(table);
}

// f' of every pattern as the general path computes it (HalfF1Values), so
// that the table's VJP is the general path's bit for bit.
template <typename H>
void BuildF1(Function f, double alpha, Slot* slot) {
  auto table = std::make_unique<F1Table>();
  std::vector<H> x(kPatterns);
  for (size_t i = 0; i < kPatterns; ++i) {
    x[i] = HalfFromBits<H>(static_cast<uint16_t>(i));
  }
  HalfF1Values<H>(f, alpha, x.data(), table->f1, kPatterns);
  slot->f1 = std::move(table);
}

// leaky_relu's lean bound (HalfLeanBelow): each pattern's result on the
// general path, tested and lean (no test at all), for the f of every
// pattern x, or the VJP of every pattern g at each x of kVjpX; the bound is
// one above the largest magnitude (x's, g's) where they differ.
template <typename H>
void BuildLean(ElementwiseKind kind, double alpha, Slot* slot) {
  constexpr size_t kChunk = 4096;
  const bool vjp = kind == ElementwiseKind::kVjp;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  // f' is alpha at -1 and -inf, 1 at 1 and inf; the test's flags depend on
  // x only through whether it is finite.
  const float kVjpX[] = {-1.0f, 1.0f, -kInf, kInf};
  H x[kChunk], g[kChunk], tested[kChunk], lean[kChunk];
  int32_t below = 0;
  for (size_t pass = 0; pass < (vjp ? std::size(kVjpX) : 1); ++pass) {
    for (size_t begin = 0; begin < kPatterns; begin += kChunk) {
      for (size_t i = 0; i < kChunk; ++i) {
        const H pattern = HalfFromBits<H>(static_cast<uint16_t>(begin + i));
        x[i] = vjp ? HalfFromDouble<H>(kVjpX[pass]) : pattern;
        g[i] = pattern;
      }
      const H* gp = vjp ? g : nullptr;
      ElementwiseHalfLean(Function::kLeakyRelu, kind, alpha, x, gp, tested,
                          kChunk, -1);
      ElementwiseHalfLean(Function::kLeakyRelu, kind, alpha, x, gp, lean,
                          kChunk, 0);
      for (size_t i = 0; i < kChunk; ++i) {
        if (HalfBits(tested[i]) != HalfBits(lean[i])) {
          below = std::max<int32_t>(below, ((begin + i) & 0x7FFF) + 1);
        }
      }
    }
  }
  slot->lean_below = below;
}

// The key's slot with its table (or bound), built now if `force` or if this
// call brings the key's general-path count to kBuildAfter; null if the
// caller is to take the general path (its n counted). Before a new key goes
// in, the least recently used keys go until its table's bytes fit. The
// VJP's key holds an F1Table, leaky_relu's a bound, the others a Table.
template <typename H>
std::shared_ptr<Slot> Acquire(What what, Function f, ElementwiseKind kind,
                              double alpha, bool native_bf16, size_t n,
                              bool force) {
  const size_t bytes = what == What::kF1     ? sizeof(F1Table)
                       : what == What::kLean ? kLeanBytes
                                             : sizeof(Table);
  const uint64_t build_after = what == What::kF1 ? kVjpBuildAfter : kBuildAfter;
  constexpr bool kBF16 = std::is_same_v<H, BFloat16>;
  Key key;
  std::memcpy(&key.alpha_bits, &alpha, 8);
  key.target = HWY_DYNAMIC_DISPATCH(DispatchedTarget)();
  key.bf16 = kBF16;
  key.function = static_cast<uint8_t>(f);
  key.kind = static_cast<uint8_t>(kind);
  key.native_bf16 = kBF16 && native_bf16;
  key.what = static_cast<uint8_t>(what);
  Cache& cache = TheCache();
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.slots.find(key);
    if (it == cache.slots.end()) {
      while (!cache.slots.empty() && cache.bytes + bytes > kMaxBytes) {
        auto lru = cache.slots.begin();
        for (auto s = cache.slots.begin(); s != cache.slots.end(); ++s) {
          if (s->second->last_use < lru->second->last_use) lru = s;
        }
        cache.bytes -= lru->second->bytes;
        cache.slots.erase(lru);
      }
      it = cache.slots.emplace(key, std::make_shared<Slot>()).first;
      it->second->bytes = bytes;
      cache.bytes += bytes;
    }
    slot = it->second;
    slot->last_use = ++cache.tick;
    if (!slot->building) {
      slot->general_elements += n;
      if (!force && slot->general_elements < build_after) return nullptr;
      slot->building = true;
      ++cache.builds;
    }
  }
  Slot* s = slot.get();
  std::call_once(s->once, [&] {
    switch (what) {
      case What::kTable:
        return BuildHalf<H>(f, kind, alpha, s);
      case What::kF1:
        return BuildF1<H>(f, alpha, s);
      case What::kLean:
        return BuildLean<H>(kind, alpha, s);
    }
  });
  return slot;
}

// y[i] = t[x[i]]: per element a 16-bit load of x, one of t (movzx) and a
// 16-bit store, about 1.3 elements a cycle on AMD Zen 4 (three loads a
// cycle); kept scalar (no vectorizer: gcc would pack the results with
// pinsrw). Where `prefetch` (x beyond the caches), x is prefetched 4 KiB
// ahead, as the float32 array loops do (core/activation-inl.h), and four
// results are packed into one 64-bit store (1.4x the 16-bit stores on an
// Intel Xeon at 16M), with `stream` (y 8-byte aligned) a non-temporal one
// (movnti). BENCHMARKS.md, "Half tables", has the loops
// measured against each other and against gathers.
#if HWY_COMPILER_GCC_ACTUAL
__attribute__((optimize("no-tree-vectorize")))
#endif
void LookupScalar(const uint16_t* t, const uint16_t* x, uint16_t* y, size_t n,
                  bool stream, bool prefetch) {
  // One 64-byte line of x ahead per 32 elements.
  const auto ahead = [&](size_t i) {
    if (prefetch && i % 32 == 0) PrefetchAhead<64>(x + i);
  };
  size_t i = 0;
  if (!stream && !prefetch) {
    for (; i + 4 <= n; i += 4) {
      y[i] = t[x[i]];
      y[i + 1] = t[x[i + 1]];
      y[i + 2] = t[x[i + 2]];
      y[i + 3] = t[x[i + 3]];
    }
  }
  for (; i + 4 <= n; i += 4) {
    ahead(i);
    uint64_t in;
    std::memcpy(&in, x + i, 8);
    const uint64_t out =
        uint64_t{t[in & 0xFFFF]} | uint64_t{t[(in >> 16) & 0xFFFF]} << 16 |
        uint64_t{t[(in >> 32) & 0xFFFF]} << 32 | uint64_t{t[in >> 48]} << 48;
#if HWY_ARCH_X86
    if (stream) {
      _mm_stream_si64(reinterpret_cast<long long*>(y + i),
                      static_cast<long long>(out));
      continue;
    }
#endif
    std::memcpy(y + i, &out, 8);
  }
  for (; i < n; ++i) {
    uint16_t in;
    std::memcpy(&in, x + i, 2);
    std::memcpy(y + i, t + in, 2);
  }
}

void Lookup(const Table& table, const uint16_t* x, uint16_t* y, size_t n) {
  const uint16_t* t = table.bits;
  const auto loop =
      static_cast<HalfTableLoop>(loop_mode.load(std::memory_order_relaxed));
  const bool gather = loop == HalfTableLoop::kGather ||
                      (loop == HalfTableLoop::kByCpu && PreferGathers());
  const bool prefetch = BeyondCaches(StoreUse::kHalfTables, n * 2);
  // The gathers store whole vectors, as the elementwise loops do, and
  // stream them where those do; the scalar loop's 64-bit stores have a
  // choice of their own.
  const bool big = StreamOutput(
      gather ? StoreUse::kElementwise : StoreUse::kHalfTables, n * 2);
  size_t i = 0;
  if (big) {
    // Up to y's 64-byte boundary, then streamed (if y is 2-byte aligned).
    const uintptr_t a = reinterpret_cast<uintptr_t>(y);
    if (a % 2 == 0) {
      const size_t head = ((64 - a % 64) % 64) / 2;
      LookupScalar(t, x, y, head, false, false);
      i = head;
    }
  }
  const bool stream = big && reinterpret_cast<uintptr_t>(y + i) % 64 == 0;
  if (gather) {
    i += HWY_DYNAMIC_DISPATCH(LookupGather)(t, x + i, y + i, n - i, stream,
                                            prefetch);
  }
  LookupScalar(t, x + i, y + i, n - i, stream, prefetch);
  if (stream) hwy::FlushStream();
}

template <typename H>
bool Run(Function f, ElementwiseKind kind, double alpha, bool native_bf16,
         const H* x, H* y, size_t n, bool force) {
  if (kind == ElementwiseKind::kVjp || n == 0) return false;
  if (!force && (!use_tables.load(std::memory_order_relaxed) ||
                 f == Function::kLeakyRelu)) {
    return false;
  }
  const std::shared_ptr<Slot> slot =
      Acquire<H>(What::kTable, f, kind, alpha, native_bf16, n, force);
  if (slot == nullptr) return false;
  // H is a 16-bit pattern (core/half.h): read and written as such.
  Lookup(*slot->table, reinterpret_cast<const uint16_t*>(x),
         reinterpret_cast<uint16_t*>(y), n);
  return true;
}

}  // namespace

template <typename H>
std::shared_ptr<const float> HalfF1Table(Function f, double alpha, size_t n,
                                         bool force) {
  if (n == 0 || (!force && (!use_tables.load(std::memory_order_relaxed) ||
                            f == Function::kLeakyRelu))) {
    return nullptr;
  }
  std::shared_ptr<Slot> slot =
      Acquire<H>(What::kF1, f, ElementwiseKind::kVjp, alpha,
                 /*native_bf16=*/false, n, force);
  if (slot == nullptr) return nullptr;
  const float* f1 = slot->f1->f1;
  return std::shared_ptr<const float>(std::move(slot), f1);
}
template std::shared_ptr<const float> HalfF1Table<Float16>(Function, double,
                                                           size_t, bool);
template std::shared_ptr<const float> HalfF1Table<BFloat16>(Function, double,
                                                            size_t, bool);

template <typename H>
int32_t HalfLeanBelow(Function f, ElementwiseKind kind, double alpha,
                      bool native_bf16, size_t n, bool force) {
  if (n == 0 || f != Function::kLeakyRelu ||
      (kind != ElementwiseKind::kValue && kind != ElementwiseKind::kVjp) ||
      (!force && !use_tables.load(std::memory_order_relaxed))) {
    return -1;
  }
  const std::shared_ptr<Slot> slot =
      Acquire<H>(What::kLean, f, kind, alpha, native_bf16, n, force);
  return slot == nullptr ? -1 : slot->lean_below;
}
template int32_t HalfLeanBelow<Float16>(Function, ElementwiseKind, double, bool,
                                        size_t, bool);
template int32_t HalfLeanBelow<BFloat16>(Function, ElementwiseKind, double,
                                         bool, size_t, bool);

bool ElementwiseHalfTable(Function f, ElementwiseKind kind, double alpha,
                          bool native_bf16, const Float16* x, Float16* y,
                          size_t n, bool force) {
  return Run(f, kind, alpha, native_bf16, x, y, n, force);
}
bool ElementwiseHalfTable(Function f, ElementwiseKind kind, double alpha,
                          bool native_bf16, const BFloat16* x, BFloat16* y,
                          size_t n, bool force) {
  return Run(f, kind, alpha, native_bf16, x, y, n, force);
}

HalfTableStats GetHalfTableStats() {
  Cache& cache = TheCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  HalfTableStats s;
  s.keys = cache.slots.size();
  for (const auto& [key, slot] : cache.slots) {
    if (slot->building) ++s.tables;
  }
  s.bytes = cache.bytes;
  s.builds = cache.builds;
  s.max_bytes = kMaxBytes;
  return s;
}

void ClearHalfTables() {
  Cache& cache = TheCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.slots.clear();
  cache.bytes = 0;
}

void SetHalfTableLoop(HalfTableLoop loop) {
  loop_mode.store(static_cast<int>(loop), std::memory_order_relaxed);
}

void UseHalfTables(bool use) {
  use_tables.store(use, std::memory_order_relaxed);
}

}  // namespace internal
}  // namespace actsvc
#endif  // HWY_ONCE
