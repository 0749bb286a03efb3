// Elementwise functions in float16 and bfloat16 (core/activation_half.h):
// chunks of the input are widened to float32, run through this target's
// float32 array loop for the function's op (core/elementwise_ops-inl.h: the
// same op and loop as core/activation.cc's), and rounded once to the half
// type.
//
// Why the float64 lanes (the test itself: core/half_round-inl.h): a
// float32 result y within K float32 ULPs of the true value rounds to the
// correctly rounded half value unless a rounding boundary of the half type
// (a midpoint between two neighbours, or the overflow threshold) lies
// within K ULPs of y. Near small |x| such
// boundaries are hit in earnest: sigma(x) ~ 1/2 + x/4 sits on a float16
// midpoint for small float16 x, and its next term is below float32's
// resolution, so that even a correctly rounded float32 kernel plus one
// rounding misses 7 to 10 of the 65,536 float16 inputs (SPEC.md §1). Those
// lanes, a few per thousand at most, are collected, recomputed in this
// target's float64 kernel (within 4 float64 ULPs) and rounded from there to
// the half type; the rare lane that lies within that error of a rounding
// boundary takes the long double reference (core/reference.h), as
// CORE-MATH's rounding tests do.
// K is the float32 kernels' budget (SPEC.md §4) plus one: 5 for f and f'
// (the float32 kernels' 4 ULP), 17 for f''; 2 for the VJP (below).
// bfloat16 shares float32's exponent range: a result below float32's
// smallest normal (where the float32 kernels only promise an absolute
// error of that size) is recomputed too, and so is a VJP whose float32 f'
// underflowed where the true f' is not 0 (g up to 2^128 can bring it back
// into range), and a zero result out in the tails, where the float32
// kernels flush what bfloat16 can still hold.
// Contract (docs/accuracy.md; tests/core/half_accuracy_test.cc runs all
// 65,536 inputs of each type on every target): correctly rounded except
// where the float64 reference itself is within its own error of a
// midpoint; NaN in gives NaN out, results beyond the range give +-inf.
// The results that need no rounding at all (identity, relu, leaky_relu's
// derivatives: HalfExact in core/activation_half.h) skip all of this: they
// are computed on the 16-bit patterns by core/activation_half_exact.cc, bit
// for bit what this path returns. f, f' and f'' of the others, once a key
// has seen 262,144 elements, are looked up in a table of this path's results
// for all 65,536 inputs (core/activation_half_table.cc).
// leaky_relu's f and VJP, a multiply by alpha, go fused (Source::kFused),
// and once the key has seen 262,144 elements and its alpha's check has
// shown where the plain rounding of that multiply is the tested path's
// (HalfLeanBelow: all but the tiny operands, typically), skip the rounding
// test for every pair of vectors without such an operand (LeanFires, in
// core/half_lean-inl.h).
// The VJP (but leaky_relu's) is g times f' in float32, the float64 kernel's
// f' rounded once (F1Values): within 1.5 float32 ULPs, so K = 2, and the
// same test and recomputation. f' comes per chunk from the float64 kernel,
// or, once the key has seen 262,144 elements, from a table of the same
// values for all 65,536 inputs (Source::kTable), by gathers.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/activation_half.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>

#include "core/activation-inl.h"
#include "core/activation_half.h"
#include "core/elementwise_ops-inl.h"
#include "core/half.h"
#include "core/half_convert-inl.h"
#include "core/half_lean-inl.h"
#include "core/half_round-inl.h"
#include "core/reference.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

// This target's float64 kernel, defined in core/activation.cc.
void ElementwiseF64(Function f, ElementwiseKind kind, double alpha,
                    const double* x, const double* g, double* y, size_t n,
                    double pos_inf, double neg_inf);

using internal::HalfParams;

// The values are widened, computed and rounded in chunks of this many (a
// multiple of every vector length).
constexpr size_t kChunk = 1024;

// Whether v, within 2^-48 |v| of the true value t, might round to H
// otherwise than t: a rounding boundary of H (a midpoint of its grid,
// subnormal or normal, or the overflow threshold, the midpoint above its
// largest finite) lies within 2^-46 |v| of v. s is |v| in units of H's
// spacing at v, exactly (a power-of-two scaling), so s - floor(s) - 1/2 is
// exact too. 0, inf and NaN round exactly.
template <typename H>
inline bool NearMidpoint(double v) {
  constexpr bool kF16 = std::is_same_v<H, Float16>;
  constexpr int kDigits = kF16 ? 11 : 8;
  constexpr int kMinExp = kF16 ? -14 : -126;
  const double a = std::fabs(v);
  if (!(a > 0) || std::isinf(a)) return false;
  uint64_t bits;
  std::memcpy(&bits, &a, 8);
  const int e = static_cast<int>(bits >> 52) - 1023;  // -1023: subnormal
  const int q = std::max(e, kMinExp) - (kDigits - 1);
  const uint64_t scale_bits = static_cast<uint64_t>(1023 - q) << 52;
  double scale;
  std::memcpy(&scale, &scale_bits, 8);
  const double s = a * scale;
  const double d = s - std::floor(s) - 0.5;
  return std::fabs(d) <= s * 0x1p-46;
}

// The flagged lanes (their x, g and index into out, as collected)
// recomputed in this target's float64 kernel, whose result v is within 4
// float64 ULPs of the true value (the VJP's product adds half of one): v
// rounded to H once, which is correct unless v lies near a rounding
// boundary of H (NearMidpoint); then the long double reference decides.
// Out of line: the rare path.
template <typename H>
HWY_NOINLINE void ResolveFlagged(const HalfParams& p, const float* xf,
                                 const float* gf, const int32_t* idx,
                                 size_t count, H* out) {
  const int order = OrderOf(p.kind);
  const bool vjp = p.kind == ElementwiseKind::kVjp;
  constexpr size_t kBlock = 64;
  for (size_t begin = 0; begin < count; begin += kBlock) {
    const size_t n = std::min(kBlock, count - begin);
    HWY_ALIGN double xd[kBlock] = {};
    HWY_ALIGN double yd[kBlock] = {};
    for (size_t k = 0; k < n; ++k) xd[k] = xf[begin + k];
    ElementwiseF64(p.f, KindOfOrder(order), p.alpha, xd, nullptr, yd, n,
                   p.pos_inf64, p.neg_inf64);
    for (size_t k = 0; k < n; ++k) {
      double v = yd[k];
      if (vjp) v *= static_cast<double>(gf[begin + k]);
      if (HWY_UNLIKELY(NearMidpoint<H>(v))) {
        v = reference::Elementwise<double>(p.f, p.alpha, order, xd[k]);
        if (vjp) v *= static_cast<double>(gf[begin + k]);
      }
      out[idx[begin + k]] = HalfFromDouble<H>(v);
    }
  }
}

// Where the lanes flagged for recomputation go: their x, g (VJP) and index
// into the window of y that starts at `base`, appended. They are resolved
// when the next chunk might not fit, and at the end: about one lane in a
// thousand is flagged, so resolving per chunk paid the float64 kernel's
// call for one or two lanes at a time (BENCHMARKS.md, "Session 14").
struct Flagged {
  static constexpr size_t kCapacity = 2 * kChunk;
  static constexpr size_t kRoom = kCapacity + HWY_MAX_BYTES / sizeof(float);
  HWY_ALIGN float x[kRoom];
  HWY_ALIGN float g[kRoom];
  HWY_ALIGN int32_t index[kRoom];
  size_t count = 0;
  size_t base = 0;
  // Whether the chunk at `begin` must wait for the lanes held to be
  // resolved: it might flag all of its lanes, or its indices outgrow int32.
  bool Full(size_t begin) const {
    return count > kCapacity - kChunk || begin - base > (size_t{1} << 30);
  }
};

// A pair of results rounded to H and stored at p (streamed with stream):
// by vcvtne2ps2bf16 where kNativeBF16, else NarrowStore2.
template <bool kNativeBF16, typename H, class D, class V = hn::Vec<D>>
HWY_INLINE void StorePair(D df, V y0, V y1, H* p, bool stream) {
#if ACTSVC_NATIVE_BF16
  if constexpr (kNativeBF16) return NarrowStore2Native(df, y0, y1, p, stream);
#endif
  NarrowStore2(df, y0, y1, p, stream);
}

// Appends the lanes `near` of the vector at index `at` of the window:
// compressed into registers and stored whole (the arrays have a vector's
// room beyond kCapacity), as MapSplit gathers its tail lanes.
// (CompressStore to memory is microcoded on AMD Zen 4; a loop over the
// mask's bits mispredicted its branches.)
template <bool kVjp, class D, class V = hn::Vec<D>>
HWY_INLINE void Append(D df, hn::Mask<D> near, V x, V g, size_t at,
                       Flagged* flagged) {
  const hn::RebindToSigned<D> di;
  const size_t c = flagged->count;
  hn::StoreU(hn::Compress(x, near), df, flagged->x + c);
  if constexpr (kVjp) hn::StoreU(hn::Compress(g, near), df, flagged->g + c);
  const auto index =
      hn::Add(hn::Iota(di, 0), hn::Set(di, static_cast<int32_t>(at)));
  hn::StoreU(hn::Compress(index, hn::RebindMask(di, near)), di,
             flagged->index + c);
  flagged->count = c + hn::CountTrue(df, near);
}

// `count` half values at h widened into f (whole vectors: f has room).
template <typename H, class D>
HWY_INLINE void Widen(D df, const H* h, float* f, size_t count) {
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    hn::Store(LoadWiden(df, h + i), df, f + i);
  }
  if (i < count) {
    HWY_ALIGN H buf[HWY_MAX_BYTES / sizeof(float)] = {};
    std::memcpy(buf, h + i, (count - i) * sizeof(H));
    hn::Store(LoadWiden(df, buf), df, f + i);
  }
}

// A vector's worth of half values at p, for loads of whole vectors: p
// itself, or where only m < lanes of them are valid, a copy padded with
// zeros.
template <typename H>
struct ShortVector {
  HWY_ALIGN H buf[HWY_MAX_BYTES / sizeof(float)];
  const H* Of(const H* p, size_t m, size_t lanes) {
    if (HWY_LIKELY(m == lanes)) return p;
    std::memset(buf, 0, sizeof(buf));
    std::memcpy(buf, p, m * sizeof(H));
    return buf;
  }
};

// The fused loop's vectors at x (and g: the VJP): m <= Lanes(df) values
// widened (a padded copy when m is short), and the op's result for them.
template <int kOrder, bool kVjp, class D, class Op, typename H,
          class V = hn::Vec<D>>
HWY_INLINE void FusedVectors(D df, const Op& op, const Limits<float>& lim,
                             const H* x, const H* g, size_t m, V* xv, V* gv,
                             V* yv) {
  ShortVector<H> xs, gs;
  x = xs.Of(x, m, hn::Lanes(df));
  if (kVjp) g = gs.Of(g, m, hn::Lanes(df));
  *xv = LoadWiden<H>(df, x);
  *gv = kVjp ? LoadWiden<H>(df, g) : *xv;
  *yv = Apply<kOrder, kVjp>(df, op, *xv, gv, lim);
}

// g t, with g's NaN (quieted) where both are NaN: t (f') may be NaN too,
// and which of two NaNs a multiply returns depends on the order of its
// operands, which the compiler may swap, so that the table's VJP and the
// chunks', whose multiplies are compiled apart, would disagree in the NaN's
// bits. x86 returns the first source operand: vmulps with g first, in asm
// that keeps that order; elsewhere a blend.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V MulGFirst(D /*df*/, V g, V t) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && \
    (HWY_COMPILER_GCC || HWY_COMPILER_CLANG)
  decltype(g.raw) r;
#if HWY_TARGET <= HWY_AVX3
  asm("vmulps %[t], %[g], %[r]" : [r] "=v"(r) : [g] "v"(g.raw), [t] "v"(t.raw));
#else
  asm("vmulps %[t], %[g], %[r]" : [r] "=x"(r) : [g] "x"(g.raw), [t] "x"(t.raw));
#endif
  return V{r};
#else
  return hn::IfThenElse(hn::IsNaN(g), hn::Add(g, g), hn::Mul(g, t));
#endif
}

// The table VJP's vectors at x and g (m <= Lanes(df) values, padded as in
// FusedVectors): y = g t[bits(x)], t the float32 f' of every pattern
// (HalfF1Table), by one gather per vector (vgatherdps on AVX2 and AVX-512,
// Highway's loop elsewhere).
template <typename H, class D, class V = hn::Vec<D>>
HWY_INLINE void TableVectors(D df, const float* t, const H* x, const H* g,
                             size_t m, V* xv, V* gv, V* yv) {
  const hn::RebindToSigned<D> di;
  const hn::RebindToUnsigned<D> du;
  const hn::Rebind<uint16_t, D> du16;
  ShortVector<H> xs, gs;
  x = xs.Of(x, m, hn::Lanes(df));
  g = gs.Of(g, m, hn::Lanes(df));
  const auto bits = hn::LoadU(du16, reinterpret_cast<const uint16_t*>(x));
  *xv = LoadWiden<H>(df, x);
  *gv = LoadWiden<H>(df, g);
  const auto index = hn::BitCast(di, hn::PromoteTo(du, bits));
  *yv = MulGFirst(df, *gv, hn::GatherIndex(df, t, index));
}

// f' of n <= kChunk values x (widened from the half type) as the VJP's
// table holds it: the float64 kernel's, rounded once to float32; for
// bfloat16, NaN where x is finite and that is below float32's normal range
// (the VJP then recomputes the lane in float64: g up to 2^128 may bring the
// product back into range). float16's products with such an f' are below
// 2^-110, 0 in float16, with the sign of this f'.
template <typename H>
HWY_INLINE void F1Values(const HalfParams& p, const float* x, size_t n,
                         float* t) {
  HWY_ALIGN double xd[kChunk];
  HWY_ALIGN double yd[kChunk];
  for (size_t i = 0; i < n; ++i) xd[i] = x[i];
  ElementwiseF64(p.f, ElementwiseKind::kDerivative1, p.alpha, xd, nullptr, yd,
                 n, p.pos_inf64, p.neg_inf64);
  for (size_t i = 0; i < n; ++i) {
    float f1 = static_cast<float>(yd[i]);
    if (std::is_same_v<H, BFloat16> && std::isfinite(x[i]) &&
        !(std::fabs(f1) >= std::numeric_limits<float>::min())) {
      f1 = std::numeric_limits<float>::quiet_NaN();
    }
    t[i] = f1;
  }
}

// The chunk VJP's vectors at i of the chunk (m <= Lanes(df) values): x from
// the widened xf, g widened (a padded copy when m is short), y = g t[i].
template <typename H, class D, class V = hn::Vec<D>>
HWY_INLINE void F1Vectors(D df, const float* xf, const float* t, const H* g,
                          size_t m, V* xv, V* gv, V* yv) {
  ShortVector<H> gs;
  g = gs.Of(g, m, hn::Lanes(df));
  *xv = hn::Load(df, xf);
  *gv = LoadWiden<H>(df, g);
  *yv = MulGFirst(df, *gv, hn::Load(df, t));
}

// Where HalfChunks takes a chunk's float32 results from.
enum class Source {
  kBuffers,  // f, f', f'': widen, the op's array loop, round: three passes
  kFused,    // one pass through the op's Apply (the cheap ops)
  kF1Chunk,  // the VJP: f' of the chunk (F1Values), then g f' and round
  kTable,    // the VJP: one pass, g times f' looked up (TableVectors)
};

// The half kernel of one op and order (kVjp: the VJP), chunk by chunk
// of kChunk values. kBuffers, in three passes over L1-resident float32
// buffers: widen, the op's own array loop (MapArray: the float32 kernel
// exactly as it runs for float32 arrays, whatever it does per array), then
// round, test and store in pairs of vectors. kFused (the cheap ops:
// leaky_relu), in one: each pair of vectors widened, through the op's Apply
// (the array loop's per-vector step, the same bits), rounded, tested and
// stored; for the transcendental functions that is slower, their float32
// loop then sharing its registers and scheduler with the rounding test
// (BENCHMARKS.md). The VJPs of the others (the op is not used): kF1Chunk,
// f' of the chunk from the float64 kernel (F1Values), then one pass of g f'
// rounded and tested; kTable, once the VJP's f' table is built, one pass
// from TableVectors, the same f' looked up. Either way the store branches
// once per pair where a lane needs the float64 recomputation; the flagged
// lanes are resolved in batches (Flagged).
template <typename H, int kOrder, bool kVjp, bool kNativeBF16, Source kSource,
          class Op>
HWY_NOINLINE void HalfChunks(const Op& op_arg, const HalfParams& p, const H* x,
                             const H* g, H* y, size_t n) {
  // A local copy, as MapArray keeps: the vector stores to y may alias the
  // caller's op, whose alpha would then be converted and broadcast again for
  // every pair (BENCHMARKS.md, "Session 16").
  const Op op = op_arg;
  using D = hn::ScalableTag<float>;
  using V = hn::Vec<D>;
  const D df;
  const size_t lanes = hn::Lanes(df);
  const Limits<float> lim{p.pos_inf, p.neg_inf, p.f, p.alpha};
  const RoundParams<D> rp(df, p);
  constexpr bool kBuffered = kSource == Source::kBuffers;
  constexpr bool kF1 = kSource == Source::kF1Chunk || kSource == Source::kTable;
  HWY_ALIGN float xf[kBuffered || kF1 ? kChunk : 1];
  HWY_ALIGN float gf[kBuffered ? kChunk : 1];
  HWY_ALIGN float yf[kBuffered || kF1 ? kChunk : 1];
  Flagged flagged;
  const bool prefetch = PrefetchArray(n * sizeof(H));
  // The lean path (leaky_relu): every pair (f, no bound), or those
  // LeanFires lets through.
  const bool lean_all = !kVjp && p.lean_below == 0;
  const bool lean_some = p.lean_below >= 0;
  // y's pairs of vectors (4 Lanes bytes) with non-temporal stores, where
  // the elementwise loops stream theirs; then a first short chunk reaches
  // y's first aligned pair, and every later chunk's pairs are aligned.
  const uintptr_t yaddr = reinterpret_cast<uintptr_t>(y);
  const size_t pair_bytes = 4 * lanes;
  const bool stream = ACTSVC_HALF_STREAM && StreamArray(n * sizeof(H)) &&
                      yaddr % sizeof(H) == 0;
  const size_t head =
      stream ? (pair_bytes - yaddr % pair_bytes) % pair_bytes / sizeof(H) : 0;
  size_t count = 0;
  for (size_t begin = 0; begin < n; begin += count) {
    count = std::min(begin == 0 && head != 0 ? head : kChunk, n - begin);
    if constexpr (kBuffered) {
      const size_t padded = (count + lanes - 1) / lanes * lanes;
      // Both inputs are read before y is written: y may be x or g.
      Widen(df, x + begin, xf, count);
      if (kVjp) Widen(df, g + begin, gf, count);
      MapArray<kOrder, kVjp>(op, xf, gf, yf, padded, lim);
    } else if constexpr (kSource == Source::kF1Chunk) {
      Widen(df, x + begin, xf, count);  // read before y is written
      F1Values<H>(p, xf, count, yf);
    }
    // The vectors of x, g (x where there is none) and y at i of the chunk,
    // m <= lanes of them valid.
    const auto vectors = [&](size_t i, size_t m, V* xv, V* gv, V* yv) {
      if constexpr (kSource == Source::kFused) {
        FusedVectors<kOrder, kVjp>(df, op, lim, x + begin + i,
                                   kVjp ? g + begin + i : nullptr, m, xv, gv,
                                   yv);
      } else if constexpr (kSource == Source::kTable) {
        TableVectors<H>(df, p.f1_table, x + begin + i, g + begin + i, m, xv, gv,
                        yv);
      } else if constexpr (kSource == Source::kF1Chunk) {
        F1Vectors<H>(df, xf + i, yf + i, g + begin + i, m, xv, gv, yv);
      } else {
        (void)m;
        *xv = hn::Load(df, xf + i);
        *gv = kVjp ? hn::Load(df, gf + i) : *xv;
        *yv = hn::Load(df, yf + i);
      }
    };
    if (flagged.Full(begin)) {
      if (stream) hwy::FlushStream();  // before y's flagged lanes are written
      ResolveFlagged(p, flagged.x, kVjp ? flagged.g : nullptr, flagged.index,
                     flagged.count, y + flagged.base);
      flagged.count = 0;
      flagged.base = begin;
    }
    // The indices of this chunk's flagged lanes in the window.
    const size_t at = begin - flagged.base;
    H* out = y + begin;
    size_t i = 0;
    for (; i + 2 * lanes <= count; i += 2 * lanes) {
      if (prefetch) {  // 4 KiB ahead, as the float32 loops do
        PrefetchAhead<2 * hn::MaxLanes(df) * sizeof(H)>(x + begin + i);
        if (kVjp)
          PrefetchAhead<2 * hn::MaxLanes(df) * sizeof(H)>(g + begin + i);
      }
      // Tested before y is written (y may be x or g).
      bool lean = false;
      if constexpr (kSource == Source::kFused) {
        lean = lean_all ||
               (lean_some &&
                !LeanFires<kVjp>(df, x + begin + i, kVjp ? g + begin + i : x,
                                 static_cast<uint16_t>(p.lean_below)));
      }
#if ACTSVC_NATIVE_BF16
      if constexpr (kNativeBF16 && kSource == Source::kFused) {
        if (lean) {
          EvenOddPair<kOrder, kVjp>(df, op, lim, x + begin + i,
                                    kVjp ? g + begin + i : nullptr, out + i,
                                    stream);
          continue;
        }
      }
#endif
      V x0, x1, g0, g1, y0, y1;
      vectors(i, lanes, &x0, &g0, &y0);
      vectors(i + lanes, lanes, &x1, &g1, &y1);
      StorePair<kNativeBF16>(df, y0, y1, out + i, stream);
      if (lean) continue;
#if ACTSVC_F16C
      if constexpr (std::is_same_v<H, Float16>) {
        // The bracket first: one test per pair, the full one (the same
        // lanes as without it) only where it fires.
        if (HWY_LIKELY(!MayRoundAwayF16(df, y0, y1, rp.ulp_budget))) continue;
      }
#endif
      if constexpr (std::is_same_v<H, BFloat16> &&
                    (kVjp || kSource == Source::kFused)) {
        // The VJPs and leaky_relu's f: no zero tail (Suspect's extra).
        if (HWY_LIKELY(!MayRoundAwayBF16Window(df, y0, y1, rp.ulp_budget))) {
          continue;
        }
      }
      const auto m0 = Suspect<H, kVjp>(df, rp, x0, g0, y0);
      const auto m1 = Suspect<H, kVjp>(df, rp, x1, g1, y1);
      if (HWY_UNLIKELY(!hn::AllFalse(df, hn::Or(m0, m1)))) {
        Append<kVjp>(df, m0, x0, g0, at + i, &flagged);
        Append<kVjp>(df, m1, x1, g1, at + i + lanes, &flagged);
      }
    }
    for (; i < count; i += lanes) {
      const size_t m = std::min(lanes, count - i);
      V xv, gv, yv;
      vectors(i, m, &xv, &gv, &yv);
      const auto near =
          hn::And(Suspect<H, kVjp>(df, rp, xv, gv, yv), hn::FirstN(df, m));
      HWY_ALIGN H yb[HWY_MAX_BYTES / sizeof(float)];
      NarrowStore(df, yv, yb);
      std::memcpy(out + i, yb, m * sizeof(H));
      if (!hn::AllFalse(df, near)) {
        Append<kVjp>(df, near, xv, gv, at + i, &flagged);
      }
    }
  }
  if (stream) hwy::FlushStream();
  // y of the flagged lanes is written last: y may be x or g, whose values
  // the lanes held keep, and every later chunk reads only beyond them.
  if (flagged.count != 0) {
    ResolveFlagged(p, flagged.x, kVjp ? flagged.g : nullptr, flagged.index,
                   flagged.count, y + flagged.base);
  }
}

template <typename H, bool kNativeBF16>
void HalfKernelOf(const HalfParams& p, const H* x, const H* g, H* y, size_t n) {
  if (p.kind == ElementwiseKind::kVjp && p.f1_table != nullptr) {
    return HalfChunks<H, 1, true, kNativeBF16, Source::kTable>(IdentityK(), p,
                                                               x, g, y, n);
  }
  VisitElementwiseOp<float>(p.f, p.kind, p.alpha, [&](const auto& op) {
    // The ops whose float32 step is a multiply at most go fused.
    constexpr bool kCheap =
        std::is_base_of_v<LeakyReluK, std::decay_t<decltype(op)>>;
    constexpr Source kSource = kCheap ? Source::kFused : Source::kBuffers;
    switch (p.kind) {
      case ElementwiseKind::kValue:
        return HalfChunks<H, 0, false, kNativeBF16, kSource>(op, p, x, g, y, n);
      case ElementwiseKind::kDerivative1:
        return HalfChunks<H, 1, false, kNativeBF16, kSource>(op, p, x, g, y, n);
      case ElementwiseKind::kDerivative2:
        return HalfChunks<H, 2, false, kNativeBF16, kSource>(op, p, x, g, y, n);
      case ElementwiseKind::kVjp:
        // f' from the float64 kernel, as the VJP's table holds it.
        return HalfChunks < H, 1, true, kNativeBF16,
               kCheap ? Source::kFused : Source::kF1Chunk > (op, p, x, g, y, n);
    }
  });
}

template <typename H>
void HalfKernel(const HalfParams& p, const H* x, const H* g, H* y, size_t n) {
#if ACTSVC_NATIVE_BF16
  if constexpr (std::is_same_v<H, BFloat16>) {
    if (p.native_bf16) return HalfKernelOf<H, true>(p, x, g, y, n);
  }
#endif
  HalfKernelOf<H, false>(p, x, g, y, n);
}

void ElementwiseF16(const HalfParams& p, const Float16* x, const Float16* g,
                    Float16* y, size_t n) {
  HalfKernel(p, x, g, y, n);
}

// F1Values over n half values x, widened as HalfChunks widens them (the
// same NaN payloads), for the VJP's table.
template <typename H>
void F1Array(const HalfParams& p, const H* x, float* t, size_t n) {
  const hn::ScalableTag<float> df;
  HWY_ALIGN float xf[kChunk];
  for (size_t begin = 0; begin < n; begin += kChunk) {
    const size_t count = std::min(kChunk, n - begin);
    Widen(df, x + begin, xf, count);
    F1Values<H>(p, xf, count, t + begin);
  }
}
void F1ArrayF16(const HalfParams& p, const Float16* x, float* t, size_t n) {
  F1Array(p, x, t, n);
}
void F1ArrayBF16(const HalfParams& p, const BFloat16* x, float* t, size_t n) {
  F1Array(p, x, t, n);
}
void ElementwiseBF16(const HalfParams& p, const BFloat16* x, const BFloat16* g,
                     BFloat16* y, size_t n) {
  HalfKernel(p, x, g, y, n);
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace actsvc {

HWY_EXPORT(ElementwiseF16);
HWY_EXPORT(ElementwiseBF16);
HWY_EXPORT(F1ArrayF16);
HWY_EXPORT(F1ArrayBF16);

namespace internal {

HalfExact HalfExactOf(Function f, ElementwiseKind kind) {
  const bool relu = f == Function::kRelu;
  if (f != Function::kIdentity && !relu) {
    // leaky_relu's f' and f'' are constants either side of 0; f and the
    // VJP multiply by alpha.
    const bool constant = kind == ElementwiseKind::kDerivative1 ||
                          kind == ElementwiseKind::kDerivative2;
    return f == Function::kLeakyRelu && constant ? HalfExact::kConstant
                                                 : HalfExact::kNone;
  }
  switch (kind) {
    case ElementwiseKind::kValue:
      return relu ? HalfExact::kRelu : HalfExact::kCopy;
    case ElementwiseKind::kDerivative1:
    case ElementwiseKind::kDerivative2:
      return HalfExact::kConstant;
    case ElementwiseKind::kVjp:
      return relu ? HalfExact::kReluGrad : HalfExact::kCopyGrad;
  }
  return HalfExact::kNone;
}

namespace {

std::atomic<bool> use_native_bf16{true};

bool CpuHasAvx512BF16() {
#if HWY_ARCH_X86 && (HWY_COMPILER_GCC || HWY_COMPILER_CLANG)
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

bool NativeBFloat16() {
  return use_native_bf16.load(std::memory_order_relaxed) && CpuHasAvx512BF16();
}

HalfParams MakeParams(Function f, ElementwiseKind kind, double alpha) {
  const int order = OrderOf(kind);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  HalfParams p;
  p.f = f;
  p.kind = kind;
  p.alpha = alpha;
  p.pos_inf = reference::Elementwise<float>(f, alpha, order, kInf);
  p.neg_inf = reference::Elementwise<float>(f, alpha, order, -kInf);
  p.pos_inf64 = reference::Elementwise<double>(f, alpha, order, kInf);
  p.neg_inf64 = reference::Elementwise<double>(f, alpha, order, -kInf);
  // The float32 kernels' budgets plus one, but for the VJPs from f' in
  // float32 within 0.5 ULP (F1Values; not leaky_relu's, g alpha): g f' is
  // within 1.5 ULPs.
  const bool f1_values =
      kind == ElementwiseKind::kVjp && f != Function::kLeakyRelu;
  p.ulp_budget = order == 2 ? 17 : f1_values ? 2 : 5;
  p.exact_zero_f1 = f == Function::kIdentity || f == Function::kRelu ||
                    f == Function::kLeakyRelu;
  // The float32 kernels underflow only where some e^-|x| does, far beyond
  // |x| = 8; closer in a zero result is exact.
  p.zero_tail_x =
      p.exact_zero_f1 ? std::numeric_limits<float>::infinity() : 8.0f;
  p.zero_tail_negative_only = f == Function::kElu || f == Function::kSelu;
  p.native_bf16 = NativeBFloat16();
  return p;
}

// Which of the half paths Run may take: the best (exact, a table, the
// general path, leaky_relu's lean one), the general one only (lean_below
// as given), or the VJP's table (built now).
enum class Path { kBest, kGeneral, kTableVjp };

template <typename H>
void Run(Function f, ElementwiseKind kind, double alpha, const H* x, const H* g,
         H* y, size_t n, Path path, int32_t lean_below = -1) {
  if (n == 0) return;
  // The results that need no rounding take the exact path; the others a
  // table where there is one or it is worth building (before MakeParams,
  // whose reference evaluations at +-inf a small call would notice).
  const bool best = path == Path::kBest;
  const HalfExact exact = best ? HalfExactOf(f, kind) : HalfExact::kNone;
  if (best && exact == HalfExact::kNone &&
      ElementwiseHalfTable(f, kind, alpha, NativeBFloat16(), x, y, n,
                           /*force=*/false)) {
    return;
  }
  // The VJP's table, held for the call.
  std::shared_ptr<const float> f1;
  if (kind == ElementwiseKind::kVjp && exact == HalfExact::kNone &&
      path != Path::kGeneral) {
    f1 = HalfF1Table<H>(f, alpha, n, /*force=*/path == Path::kTableVjp);
  }
  if (best && exact == HalfExact::kNone && f == Function::kLeakyRelu) {
    lean_below = HalfLeanBelow<H>(f, kind, alpha, NativeBFloat16(), n,
                                  /*force=*/false);
  }
  HalfParams p = MakeParams(f, kind, alpha);
  p.exact = exact;
  if (exact != HalfExact::kNone) return ElementwiseHalfExact(p, x, g, y, n);
  p.f1_table = f1.get();
  p.lean_below = lean_below;
  if constexpr (std::is_same_v<H, Float16>) {
    HWY_DYNAMIC_DISPATCH(ElementwiseF16)(p, x, g, y, n);
  } else {
    HWY_DYNAMIC_DISPATCH(ElementwiseBF16)(p, x, g, y, n);
  }
}

}  // namespace

void UseNativeBFloat16(bool use) {
  use_native_bf16.store(use, std::memory_order_relaxed);
}

void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const Float16* x, const Float16* g, Float16* y, size_t n) {
  Run(f, kind, alpha, x, g, y, n, Path::kBest);
}

void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const BFloat16* x, const BFloat16* g, BFloat16* y,
                     size_t n) {
  Run(f, kind, alpha, x, g, y, n, Path::kBest);
}

void ElementwiseHalfGeneral(Function f, ElementwiseKind kind, double alpha,
                            const Float16* x, const Float16* g, Float16* y,
                            size_t n) {
  Run(f, kind, alpha, x, g, y, n, Path::kGeneral);
}

void ElementwiseHalfGeneral(Function f, ElementwiseKind kind, double alpha,
                            const BFloat16* x, const BFloat16* g, BFloat16* y,
                            size_t n) {
  Run(f, kind, alpha, x, g, y, n, Path::kGeneral);
}

void ElementwiseHalfLean(Function f, ElementwiseKind kind, double alpha,
                         const Float16* x, const Float16* g, Float16* y,
                         size_t n, int32_t lean_below) {
  Run(f, kind, alpha, x, g, y, n, Path::kGeneral, lean_below);
}

void ElementwiseHalfLean(Function f, ElementwiseKind kind, double alpha,
                         const BFloat16* x, const BFloat16* g, BFloat16* y,
                         size_t n, int32_t lean_below) {
  Run(f, kind, alpha, x, g, y, n, Path::kGeneral, lean_below);
}

template <typename H>
void HalfF1Values(Function f, double alpha, const H* x, float* t, size_t n) {
  const HalfParams p = MakeParams(f, ElementwiseKind::kVjp, alpha);
  if constexpr (std::is_same_v<H, Float16>) {
    HWY_DYNAMIC_DISPATCH(F1ArrayF16)(p, x, t, n);
  } else {
    HWY_DYNAMIC_DISPATCH(F1ArrayBF16)(p, x, t, n);
  }
}
template void HalfF1Values(Function, double, const Float16*, float*, size_t);
template void HalfF1Values(Function, double, const BFloat16*, float*, size_t);

void ElementwiseHalfVjpByTable(Function f, double alpha, const Float16* x,
                               const Float16* g, Float16* y, size_t n) {
  Run(f, ElementwiseKind::kVjp, alpha, x, g, y, n, Path::kTableVjp);
}

void ElementwiseHalfVjpByTable(Function f, double alpha, const BFloat16* x,
                               const BFloat16* g, BFloat16* y, size_t n) {
  Run(f, ElementwiseKind::kVjp, alpha, x, g, y, n, Path::kTableVjp);
}

}  // namespace internal
}  // namespace actsvc
#endif  // HWY_ONCE
