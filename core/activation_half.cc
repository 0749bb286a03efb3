// Elementwise functions in float16 and bfloat16 (core/activation_half.h):
// chunks of the input are widened to float32, run through this target's
// float32 array loop for the function's op (core/elementwise_ops-inl.h: the
// same op and loop as core/activation.cc's), and rounded once to the half
// type.
//
// Why the float64 lanes: a float32 result y within K float32 ULPs of the
// true value rounds to the correctly rounded half value unless a rounding
// boundary of the half type (a midpoint between two neighbours, or the
// overflow threshold) lies within K ULPs of y. Near small |x| such
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

// The lanes of y, a float32 result within K ULPs of the true value, whose
// rounding to H might differ from the true value's: the bits that rounding
// drops lie within K of 1000...0 (a midpoint, or the overflow threshold,
// in y's binade: its ULP is constant there). float16 results below 2^-14
// sit on the subnormal grid of step 2^-24: |y| + 2^-14 has that step as
// the weight of its 14th bit, so the same test on its dropped bits finds
// them (the addition's rounding, at most half of its last bit, and K ULPs
// of y below 2^-14 are within one more of those bits). bfloat16 flags every
// nonzero result below float32's smallest normal, where the float32
// kernels only promise an absolute error of that size. inf is never
// flagged, nor NaN unless its payload looks like a midpoint (it is then
// recomputed: NaN again). Branch-free: one vector's test costs the same
// whatever its values.
template <typename H, class D>
HWY_INLINE hn::Mask<D> Untrusted(D df, hn::Vec<D> y, int32_t k) {
  const hn::RebindToSigned<D> di;
  using VI = hn::Vec<decltype(di)>;
  constexpr bool kF16 = std::is_same_v<H, Float16>;
  constexpr int32_t kDropped = kF16 ? 0x1FFF : 0xFFFF;
  const hn::Vec<D> a = hn::Abs(y);
  VI ai = hn::BitCast(di, a);
  VI tol = hn::Set(di, k + 1);
  if constexpr (kF16) {
    constexpr float kMinNormal = 0x1p-14f;
    const auto normal = hn::Ge(a, hn::Set(df, kMinNormal));
    const VI shifted = hn::BitCast(di, hn::Add(a, hn::Set(df, kMinNormal)));
    ai = hn::IfThenElse(hn::RebindMask(di, normal), ai, shifted);
    tol = hn::IfThenElse(hn::RebindMask(di, normal), tol, hn::Set(di, k + 2));
  }
  const VI dist = hn::Abs(hn::Sub(hn::And(ai, hn::Set(di, kDropped)),
                                  hn::Set(di, (kDropped + 1) / 2)));
  const auto near = hn::Lt(dist, tol);
  if constexpr (kF16) {
    return hn::RebindMask(df, near);
  } else {
    const VI raw = hn::BitCast(di, a);
    const auto normal = hn::Gt(raw, hn::Set(di, 0x007FFFFF));
    const auto tiny = hn::AndNot(normal, hn::Gt(raw, hn::Zero(di)));
    return hn::RebindMask(df, hn::Or(hn::And(near, normal), tiny));
  }
}

// |y|'s bits, as int32.
template <class D, class V = hn::Vec<D>>
HWY_INLINE hn::Vec<hn::RebindToSigned<D>> MagnitudeBits(D df, V y) {
  const hn::RebindToSigned<D> di;
  return hn::And(hn::BitCast(di, y), hn::Set(di, 0x7FFFFFFF));
}

// The values `step` float32 steps below (clamped at 0) and above the
// magnitude whose bits are a: the bracket the MayRoundAway tests round.
template <class D, class V = hn::Vec<D>,
          class VI = hn::Vec<hn::RebindToSigned<D>>>
HWY_INLINE void Bracket(D df, VI a, VI step, V* lo, V* hi) {
  *lo = hn::BitCast(
      df, hn::Max(hn::Sub(a, step), hn::Zero(hn::RebindToSigned<D>())));
  *hi = hn::BitCast(df, hn::Add(a, step));
}

#if ACTSVC_F16C
// Whether a lane of y0 or y1, float32 results within k ULPs of the true
// values, may round to float16 otherwise than its true value: the values k
// + 1 float32 steps below and above |y| (its bits minus and plus k + 1,
// below clamped at 0) round to different float16 numbers, a rounding
// boundary (a midpoint, subnormal or normal, or the overflow threshold)
// lying between them. F16C rounds both, and the test is one comparison of
// 16-bit lanes per pair, without Suspect's mask operations. It fires too
// for +-inf and for the NaN that inf * 0 gives (the bits above them are
// NaN, or another NaN payload), whose lanes Suspect then sorts out; a NaN
// from a NaN input may not fire it, and its result is NaN either way. For
// normal results it fires wherever Untrusted flags a lane; for
// float16 subnormal results it is exact where Untrusted's test is wider,
// and Suspect then flags a superset of the lanes that need it.
template <class D, class V = hn::Vec<D>>
HWY_INLINE bool MayRoundAwayF16(D df, V y0, V y1, int32_t k) {
  const hn::RebindToSigned<D> di;
  const hn::Rebind<hwy::float16_t, D> df16;
  const hn::RebindToUnsigned<decltype(df16)> du16;
  const auto step = hn::Set(di, k + 1);
  const auto differ = [&](V y) {
    V lo, hi;
    Bracket(df, MagnitudeBits(df, y), step, &lo, &hi);
    return hn::Xor(hn::BitCast(du16, hn::DemoteTo(df16, lo)),
                   hn::BitCast(du16, hn::DemoteTo(df16, hi)));
  };
  const auto both = hn::Or(differ(y0), differ(y1));
  return !hn::AllFalse(du16, hn::Ne(both, hn::Zero(du16)));
}
#endif

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

// The loop-invariant vectors of the test below.
template <class D>
struct RoundParams {
  // 2^126, 1 / float32's smallest normal: |g f'| < |g| 2^-126 is tested as
  // |g f'| 2^126 < |g| (exact), never forming a subnormal (each costs a
  // microcode assist on x86).
  hn::Vec<D> inv_tiny;
  hn::Vec<D> zero_lo;  // bfloat16: a zero at x <= zero_lo is suspect
  hn::Vec<D> zero_hi;  // ... and at x >= zero_hi (inf: never)
  int32_t ulp_budget;
  bool exact_zero_f1;
  RoundParams(D df, const HalfParams& p)
      : inv_tiny(hn::Set(df, 0x1p126f)),
        zero_lo(hn::Set(df, -p.zero_tail_x)),
        zero_hi(hn::Set(df, p.zero_tail_negative_only
                                ? std::numeric_limits<float>::infinity()
                                : p.zero_tail_x)),
        ulp_budget(p.ulp_budget),
        exact_zero_f1(p.exact_zero_f1) {}
};

// The float32 result y of the lanes at x (kVjp: g f', g the upstream
// gradient) as it will be rounded to H; returns the lanes whose rounding
// cannot be trusted.
// Branch-free, so that the loop below branches once per pair of vectors,
// on rare lanes only.
template <typename H, bool kVjp, class D, class V = hn::Vec<D>>
HWY_INLINE hn::Mask<D> Suspect(D df, const RoundParams<D>& rp, V x, V g, V y) {
  auto extra = hn::FirstN(df, 0);
  if constexpr (kVjp) {
    // y = g f' from the float32 VJP kernel. Where f' is below float32's
    // normal range (0 included), |g f'| < |g| 2^-126: g f' may still be a
    // normal bfloat16 (g up to 2^128) that the float32 kernel lost, and
    // inf * (f' underflowed to 0) gives NaN where the answer is +-inf.
    if (!rp.exact_zero_f1) {
      auto lost = hn::And(hn::IsNaN(y), hn::Not(hn::IsNaN(g)));
      if constexpr (std::is_same_v<H, BFloat16>) {
        lost =
            hn::Or(lost, hn::Lt(hn::Mul(hn::Abs(y), rp.inv_tiny), hn::Abs(g)));
      }
      extra = hn::And(lost, hn::IsFinite(x));
    }
  } else if constexpr (std::is_same_v<H, BFloat16>) {
    // A zero far out in a tail may be a float32 underflow of a value
    // bfloat16 holds (x infinite: the limit, exact).
    const auto tail = hn::Or(hn::Le(x, rp.zero_lo), hn::Ge(x, rp.zero_hi));
    extra = hn::And(hn::Eq(y, hn::Zero(df)), hn::And(tail, hn::IsFinite(x)));
  }
  return hn::Or(Untrusted<H>(df, y, rp.ulp_budget), extra);
}

#if ACTSVC_NATIVE_BF16
// The bracket of MayRoundAwayF16 for the bfloat16 VJP, both pairs of
// bounds rounded by vcvtne2ps2bf16 (the rounding NarrowStore2Native
// stores), with the two tests that bracket cannot make: a nonzero result
// below float32's smallest normal (vcvtne2ps2bf16 takes those as 0, and
// the float32 kernels promise only an absolute error there), and
// Suspect's |g f'| < |g| 2^-126 (f' may have underflowed in float32; y =
// 0 with g = 0 does not fire it). It fires wherever Suspect flags a lane.
template <class D, class V = hn::Vec<D>>
HWY_INLINE bool MayRoundAwayBF16Vjp(D df, const RoundParams<D>& rp, V y0, V y1,
                                    V g0, V g1) {
  const hn::RebindToSigned<D> di;
  const hn::RebindToUnsigned<D> du;
  const hn::Repartition<uint16_t, D> d16;
  const auto step = hn::Set(di, rp.ulp_budget + 1);
  const auto a0 = MagnitudeBits(df, y0);
  const auto a1 = MagnitudeBits(df, y1);
  V lo0, hi0, lo1, hi1;
  Bracket(df, a0, step, &lo0, &hi0);
  Bracket(df, a1, step, &lo1, &hi1);
  __m512i rlo, rhi;
  asm("vcvtne2ps2bf16 %[lo], %[hi], %[r]"
      : [r] "=v"(rlo)
      : [lo] "v"(lo0.raw), [hi] "v"(lo1.raw));
  asm("vcvtne2ps2bf16 %[lo], %[hi], %[r]"
      : [r] "=v"(rhi)
      : [lo] "v"(hi0.raw), [hi] "v"(hi1.raw));
  const hn::Vec<decltype(d16)> differ =
      hn::Xor(hn::Vec<decltype(d16)>{rlo}, hn::Vec<decltype(d16)>{rhi});
  // 0 < |y| < 2^-126: |y| bits - 1 below 0x7FFFFF, unsigned.
  const auto tiny_top = hn::Set(du, 0x7FFFFFu);
  const auto one = hn::Set(du, 1u);
  const auto tiny0 = hn::Lt(hn::Sub(hn::BitCast(du, a0), one), tiny_top);
  const auto tiny1 = hn::Lt(hn::Sub(hn::BitCast(du, a1), one), tiny_top);
  const auto lost0 = hn::Lt(hn::Mul(hn::Abs(y0), rp.inv_tiny), hn::Abs(g0));
  const auto lost1 = hn::Lt(hn::Mul(hn::Abs(y1), rp.inv_tiny), hn::Abs(g1));
  const auto extra = hn::Or(hn::Or(hn::RebindMask(df, tiny0), lost0),
                            hn::Or(hn::RebindMask(df, tiny1), lost1));
  return !hn::AllFalse(d16, hn::Ne(differ, hn::Zero(d16))) ||
         !hn::AllFalse(df, extra);
}
#endif

// The bfloat16 test of the table VJP (kTable) where vcvtne2ps2bf16 rounds:
// y = g t[x] is within 1.5 float32 ULPs of the true value, and bfloat16's
// grid is float32's upper 16 bits, subnormals and the overflow threshold
// included, so a rounding boundary lies within k + 1 steps of |y| exactly
// where its lower 16 bits lie within k + 1 of 0x8000. Also: a nonzero |y|
// below float32's smallest normal (vcvtne2ps2bf16 takes it as 0), and NaN:
// the table holds NaN where f' is below float32's normal range (BuildF1),
// whose lanes Suspect sends to the float64 recomputation. It fires wherever
// Suspect flags a lane.
template <class D, class V = hn::Vec<D>>
HWY_INLINE bool MayRoundAwayBF16Table(D df, V y0, V y1, int32_t k) {
  const hn::RebindToUnsigned<D> du;
  const auto near = [&](V y) {
    const auto a = hn::BitCast(du, MagnitudeBits(df, y));
    const auto dropped =
        hn::And(hn::Add(a, hn::Set(du, uint32_t(k + 1))), hn::Set(du, 0xFFFFu));
    const auto tiny =
        hn::Lt(hn::Sub(a, hn::Set(du, 1u)), hn::Set(du, 0x7FFFFFu));
    // dropped in [0x8000, 0x8000 + 2k + 2], or tiny.
    const auto mid = hn::Lt(hn::Sub(dropped, hn::Set(du, 0x8000u)),
                            hn::Set(du, uint32_t(2 * k + 3)));
    return hn::Or(hn::RebindMask(df, hn::Or(mid, tiny)), hn::IsNaN(y));
  };
  return !hn::AllFalse(df, hn::Or(near(y0), near(y1)));
}

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

// The fused loop's vectors at x (and g: the VJP): m <= Lanes(df) values
// widened (a padded copy when m is short), and the op's result for them.
template <int kOrder, bool kVjp, class D, class Op, typename H,
          class V = hn::Vec<D>>
HWY_INLINE void FusedVectors(D df, const Op& op, const Limits<float>& lim,
                             const H* x, const H* g, size_t m, V* xv, V* gv,
                             V* yv) {
  HWY_ALIGN H xb[HWY_MAX_BYTES / sizeof(float)];
  HWY_ALIGN H gb[HWY_MAX_BYTES / sizeof(float)];
  if (HWY_UNLIKELY(m != hn::Lanes(df))) {
    std::memset(xb, 0, sizeof(xb));
    std::memset(gb, 0, sizeof(gb));
    std::memcpy(xb, x, m * sizeof(H));
    if (kVjp) std::memcpy(gb, g, m * sizeof(H));
    x = xb;
    g = gb;
  }
  *xv = LoadWiden<H>(df, x);
  *gv = kVjp ? LoadWiden<H>(df, g) : *xv;
  *yv = Apply<kOrder, kVjp>(df, op, *xv, gv, lim);
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
  HWY_ALIGN H xb[HWY_MAX_BYTES / sizeof(float)];
  HWY_ALIGN H gb[HWY_MAX_BYTES / sizeof(float)];
  if (HWY_UNLIKELY(m != hn::Lanes(df))) {
    std::memset(xb, 0, sizeof(xb));
    std::memset(gb, 0, sizeof(gb));
    std::memcpy(xb, x, m * sizeof(H));
    std::memcpy(gb, g, m * sizeof(H));
    x = xb;
    g = gb;
  }
  const auto bits = hn::LoadU(du16, reinterpret_cast<const uint16_t*>(x));
  *xv = LoadWiden<H>(df, x);
  *gv = LoadWiden<H>(df, g);
  const auto index = hn::BitCast(di, hn::PromoteTo(du, bits));
  *yv = hn::Mul(*gv, hn::GatherIndex(df, t, index));
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
  HWY_ALIGN H gb[HWY_MAX_BYTES / sizeof(float)];
  if (HWY_UNLIKELY(m != hn::Lanes(df))) {
    std::memset(gb, 0, sizeof(gb));
    std::memcpy(gb, g, m * sizeof(H));
    g = gb;
  }
  *xv = hn::Load(df, xf);
  *gv = LoadWiden<H>(df, g);
  *yv = hn::Mul(*gv, hn::Load(df, t));
}

// Whether a lane of y0 or y1 is NaN.
template <class D, class V = hn::Vec<D>>
HWY_INLINE bool AnyNaN(D df, V y0, V y1) {
  return !hn::AllFalse(df, hn::Or(hn::IsNaN(y0), hn::IsNaN(y1)));
}

// y = g f' with g's NaN (quieted) where g is NaN: f' may be NaN too, and
// which of two NaNs a multiply returns depends on the order the compiler
// gave its operands, so that the table's and the chunk's VJP, whose
// multiplies differ, would disagree in the NaN's bits.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V NaNOfG(D /*df*/, V g, V y) {
  return hn::IfThenElse(hn::IsNaN(g), hn::Add(g, g), y);
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
HWY_NOINLINE void HalfChunks(const Op& op, const HalfParams& p, const H* x,
                             const H* g, H* y, size_t n) {
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
    if (prefetch) {  // the chunks 4 KiB ahead, as the float32 loops do
      PrefetchAhead<kChunk * sizeof(H)>(x + begin);
      if (kVjp) PrefetchAhead<kChunk * sizeof(H)>(g + begin);
    }
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
      V x0, x1, g0, g1, y0, y1;
      vectors(i, lanes, &x0, &g0, &y0);
      vectors(i + lanes, lanes, &x1, &g1, &y1);
      StorePair<kNativeBF16>(df, y0, y1, out + i, stream);
#if ACTSVC_F16C
      if constexpr (std::is_same_v<H, Float16>) {
        // The bracket first: one test per pair, the full one (the same
        // lanes as without it) only where it fires.
        if (HWY_LIKELY(!MayRoundAwayF16(df, y0, y1, rp.ulp_budget) &&
                       (!kF1 || !AnyNaN(df, y0, y1)))) {
          continue;
        }
      }
#endif
#if ACTSVC_NATIVE_BF16
      if constexpr (kNativeBF16 && kF1) {
        if (HWY_LIKELY(!MayRoundAwayBF16Table(df, y0, y1, rp.ulp_budget))) {
          continue;
        }
      } else if constexpr (kNativeBF16 && kVjp) {
        if (HWY_LIKELY(!MayRoundAwayBF16Vjp(df, rp, y0, y1, g0, g1))) {
          continue;
        }
      }
#endif
      const auto m0 = Suspect<H, kVjp>(df, rp, x0, g0, y0);
      const auto m1 = Suspect<H, kVjp>(df, rp, x1, g1, y1);
      if (HWY_UNLIKELY(!hn::AllFalse(df, hn::Or(m0, m1)))) {
        Append<kVjp>(df, m0, x0, g0, at + i, &flagged);
        Append<kVjp>(df, m1, x1, g1, at + i + lanes, &flagged);
      }
      if constexpr (kF1) {
        if (!hn::AllFalse(df, hn::Or(hn::IsNaN(g0), hn::IsNaN(g1)))) {
          StorePair<kNativeBF16>(df, NaNOfG(df, g0, y0), NaNOfG(df, g1, y1),
                                 out + i, stream);
        }
      }
    }
    for (; i < count; i += lanes) {
      const size_t m = std::min(lanes, count - i);
      V xv, gv, yv;
      vectors(i, m, &xv, &gv, &yv);
      if constexpr (kF1) yv = NaNOfG(df, gv, yv);
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
// general path), the general one only, or the VJP's table (built now).
enum class Path { kBest, kGeneral, kTableVjp };

template <typename H>
void Run(Function f, ElementwiseKind kind, double alpha, const H* x, const H* g,
         H* y, size_t n, Path path) {
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
  HalfParams p = MakeParams(f, kind, alpha);
  p.exact = exact;
  if (exact != HalfExact::kNone) return ElementwiseHalfExact(p, x, g, y, n);
  p.f1_table = f1.get();
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
