// The half-precision path of the elementwise functions (core/activation.h
// dispatches here for Float16 and BFloat16): float32 kernels on widened
// inputs, one rounding to the half type, and a float64 recomputation of the
// few lanes whose float32 result lies too close to a rounding boundary.
#ifndef ACTSVC_CORE_ACTIVATION_HALF_H_
#define ACTSVC_CORE_ACTIVATION_HALF_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/activation.h"
#include "core/half.h"

namespace actsvc::internal {

// The (function, kind) combinations whose half result needs no rounding:
// each is a copy of x or g, relu's select between them and zero, or one of
// two constants, so core/activation_half_exact.cc computes it on the 16-bit
// patterns themselves, bit for bit what the general path returns. Lanes
// where that path's result depends on the target (NaN in x or g, and relu's
// VJP with g infinite: inf * 0) take the general path.
enum class HalfExact : uint8_t {
  kNone,      // the general path: float32 kernel, rounding test, float64
  kCopy,      // identity: x
  kRelu,      // relu: x > 0 ? x : +0
  kConstant,  // f' or f'' of identity, relu, leaky_relu: x > 0 ? c1 : c0
  kCopyGrad,  // identity's VJP: g
  kReluGrad,  // relu's VJP: x > 0 ? g : +-0 with g's sign
};

// What the per-target half kernels need besides the arrays.
struct HalfParams {
  Function f;
  ElementwiseKind kind;
  double alpha;
  float pos_inf, neg_inf;       // the float32 limits at +-inf, for the kernel
  double pos_inf64, neg_inf64;  // the float64 ones, for the recomputation
  int32_t ulp_budget;           // K: the float32 result's error bound in ULPs
  bool exact_zero_f1;  // f'(x) = 0 is exact (identity, relu, leaky_relu)
  // bfloat16: a zero result at |x| >= zero_tail_x may be a float32
  // underflow of a true value bfloat16 can hold (inf: zeros are structural;
  // zero_tail_negative_only: only x <= -zero_tail_x, for elu and selu).
  float zero_tail_x;
  bool zero_tail_negative_only;
  HalfExact exact = HalfExact::kNone;  // unless the result is exact (above)
  // bfloat16 on AVX-512 targets: round with AVX512-BF16's vcvtne2ps2bf16
  // (this CPU has it, and UseNativeBFloat16 did not turn it off).
  bool native_bf16;
  // The VJP from a table (HalfF1Table): g f'(x) as float32 g times
  // f1_table[bits(x)]; null: f' computed per chunk, the same values
  // (HalfF1Values). Either way within 1.5 float32 ULPs (ulp_budget 2).
  const float* f1_table = nullptr;
  // leaky_relu's f and VJP, once HalfLeanBelow has checked alpha (below):
  // a pair of vectors is rounded without the rounding test unless a lane's
  // operand (x for f, g for the VJP) has magnitude bits below lean_below,
  // or (the VJP) x is NaN. -1: every pair is tested.
  int32_t lean_below = -1;
};

// Whether the bfloat16 rounding may use AVX512-BF16's vcvtne2ps2bf16 where
// the CPU has it (the default): the same results as the integer rounding,
// which the tests check by turning it off. Not for concurrent use with the
// kernels.
void UseNativeBFloat16(bool use);

// The exact path's kind for f and kind, kNone where the result must be
// rounded.
HalfExact HalfExactOf(Function f, ElementwiseKind kind);

// The kernel of `kind` over n half values (g non-null for the VJP). y may be
// x or g. Precondition: IsElementwise(f), alpha finite.
void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const Float16* x, const Float16* g, Float16* y, size_t n);
void ElementwiseHalf(Function f, ElementwiseKind kind, double alpha,
                     const BFloat16* x, const BFloat16* g, BFloat16* y,
                     size_t n);

// The general path alone, also where ElementwiseHalf takes the exact one:
// the tests compare the two bit for bit.
void ElementwiseHalfGeneral(Function f, ElementwiseKind kind, double alpha,
                            const Float16* x, const Float16* g, Float16* y,
                            size_t n);
void ElementwiseHalfGeneral(Function f, ElementwiseKind kind, double alpha,
                            const BFloat16* x, const BFloat16* g, BFloat16* y,
                            size_t n);

// The VJP through HalfF1Table's table, built now if need be (the tests
// compare it with the general path). Precondition: HalfExactOf(f, kVjp) ==
// kNone, f not leaky_relu (whose VJP never takes a table).
void ElementwiseHalfVjpByTable(Function f, double alpha, const Float16* x,
                               const Float16* g, Float16* y, size_t n);
void ElementwiseHalfVjpByTable(Function f, double alpha, const BFloat16* x,
                               const BFloat16* g, BFloat16* y, size_t n);

// The exact path (core/activation_half_exact.cc, this machine's best
// target). Precondition: p.exact != HalfExact::kNone.
void ElementwiseHalfExact(const HalfParams& p, const Float16* x,
                          const Float16* g, Float16* y, size_t n);
void ElementwiseHalfExact(const HalfParams& p, const BFloat16* x,
                          const BFloat16* g, BFloat16* y, size_t n);

// f, f' or f'' (not the VJP) by table lookup (core/activation_half_table.cc):
// the general path's result for each of the 65,536 patterns, computed once
// per (type, function, kind, alpha, target) and cached. Returns false, having
// done nothing, where the caller is to take the general path (the VJP, n ==
// 0, leaky_relu, whose general path is faster, or a key whose table is not
// worth building yet); `force` builds it now (leaky_relu too).
// y may be x. native_bf16: HalfParams::native_bf16 (part of the key).
bool ElementwiseHalfTable(Function f, ElementwiseKind kind, double alpha,
                          bool native_bf16, const Float16* x, Float16* y,
                          size_t n, bool force);
bool ElementwiseHalfTable(Function f, ElementwiseKind kind, double alpha,
                          bool native_bf16, const BFloat16* x, BFloat16* y,
                          size_t n, bool force);

// f' of n values x of the half type H (Float16 or BFloat16) as the VJP
// uses it: the float64 kernel's (this machine's best target), rounded once
// to float32; for BFloat16, NaN where x is finite and that f' is below
// float32's normal range. The general path computes the same per chunk, so
// the table's results are its own.
template <typename H>
void HalfF1Values(Function f, double alpha, const H* x, float* t, size_t n);

// The VJP's table for H (Float16 or BFloat16), function and alpha, from the
// same cache as ElementwiseHalfTable's (n counted toward the key's 65,536,
// `force` builds now): HalfF1Values of each of the 65,536 patterns (f'
// within 0.5 float32 ULP and a hair). 256 KiB; null where the caller is to
// compute f' per chunk (not worth building yet, or tables are off) or the
// VJP takes no f' (leaky_relu's multiply). The pointer keeps the table
// alive.
template <typename H>
std::shared_ptr<const float> HalfF1Table(Function f, double alpha, size_t n,
                                         bool force);

// leaky_relu's f or VJP (kind kValue or kVjp) of H for alpha: its float32
// multiply rounded once to H is what the tested general path returns for
// every operand whose magnitude bits are at least the returned bound (the
// f of every input, the VJP of every g at x = -1, +1, -inf and +inf),
// found by running both over all 65,536 patterns. The bound covers what
// double rounding gets wrong (typically products below the half type's
// normal range: float16 alpha = 0.01, 21 inputs of 65,536). From the same
// cache as the tables (n counted toward the key's 262,144, `force` checks
// now); -1 where the caller is to test every pair (not worth checking yet,
// or tables are off).
template <typename H>
int32_t HalfLeanBelow(Function f, ElementwiseKind kind, double alpha,
                      bool native_bf16, size_t n, bool force);

// The general path with HalfParams::lean_below set (leaky_relu's f and VJP;
// HalfLeanBelow's bound, or 0 for no rounding test at all, as its check
// runs it).
void ElementwiseHalfLean(Function f, ElementwiseKind kind, double alpha,
                         const Float16* x, const Float16* g, Float16* y,
                         size_t n, int32_t lean_below);
void ElementwiseHalfLean(Function f, ElementwiseKind kind, double alpha,
                         const BFloat16* x, const BFloat16* g, BFloat16* y,
                         size_t n, int32_t lean_below);

// What the table cache holds (tests and benchmarks).
struct HalfTableStats {
  size_t keys = 0;       // keys known: built tables and counters toward one
  size_t tables = 0;     // tables (and leaky_relu bounds) built or being built
  size_t bytes = 0;      // reserved by the keys (a table's each)
  size_t max_bytes = 0;  // the bound on bytes (12 MiB)
  uint64_t builds = 0;   // builds started since the process began
};
HalfTableStats GetHalfTableStats();
// Drops every cached table and count (a table in use lives until its call
// returns).
void ClearHalfTables();

// The lookup loop: the CPU's choice (the default: gathers where
// PreferGathers in core/stores.h says so), 64-bit loads and stores around
// scalar table loads, or AVX-512 gathers where the target has them (scalar
// loads elsewhere).
enum class HalfTableLoop { kByCpu, kScalar, kGather };
void SetHalfTableLoop(HalfTableLoop loop);
// Whether ElementwiseHalf may take the table path (the default); tests turn
// it off to compare the general path through the public API.
void UseHalfTables(bool use);

}  // namespace actsvc::internal

#endif  // ACTSVC_CORE_ACTIVATION_HALF_H_
