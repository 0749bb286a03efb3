// Softmax along an axis: the public API of core/softmax.h (but the
// cross-entropy, core/cross_entropy.cc) and the row kernels. Rows of at most
// kSoftmaxColumnMaxClasses values run the column kernel
// (core/softmax_columns.cc). Longer contiguous rows (the last axis,
// inner == 1) run the per-target SIMD row kernels of core/softmax_row-inl.h,
// compiled once per instruction set here (hwy/foreach_target.h) and chosen
// at run time, as is the stats kernel the dense Jacobian and the
// cross-entropy take p, the maximum and rest from. Longer strided rows
// (inner > 1) run the same kernels in tiles (core/softmax_tiles.h). Dense
// Jacobians form J in reference::Wider<T>. Rows with NaN or ±inf use the
// scalar reference (core/reference.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/softmax.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include "core/softmax_row-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

void SoftmaxRowsF32(SoftmaxOp op, const float* x, const float* g, float* y,
                    size_t n, size_t rows, float* scratch, bool stream,
                    SoftmaxSpecialRowFn special, void* context) {
  SoftmaxRows<float>(op, x, g, y, n, rows, scratch, stream, special, context);
}
void SoftmaxRowsF64(SoftmaxOp op, const double* x, const double* g, double* y,
                    size_t n, size_t rows, double* scratch, bool stream,
                    SoftmaxSpecialRowFn special, void* context) {
  SoftmaxRows<double>(op, x, g, y, n, rows, scratch, stream, special, context);
}

bool SoftmaxStatsF32(const float* x, size_t n, float* p, float* max,
                     double* rest) {
  return SoftmaxStats<float>(x, n, p, max, rest);
}
bool SoftmaxStatsF64(const double* x, size_t n, double* p, double* max,
                     long double* rest) {
  return SoftmaxStats<double>(x, n, p, max, rest);
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/reference.h"
#include "core/softmax.h"
#include "core/softmax_internal.h"
#include "core/softmax_tiles.h"
#include "core/stores.h"

namespace actsvc {

HWY_EXPORT(SoftmaxRowsF32);
HWY_EXPORT(SoftmaxRowsF64);
HWY_EXPORT(SoftmaxStatsF32);
HWY_EXPORT(SoftmaxStatsF64);

namespace internal {

template <typename T>
bool SimdStats(const T* x, int64_t n, T* p, T* max, reference::Wider<T>* rest) {
  if constexpr (sizeof(T) == 4) {
    return HWY_DYNAMIC_DISPATCH(SoftmaxStatsF32)(x, n, p, max, rest);
  } else {
    return HWY_DYNAMIC_DISPATCH(SoftmaxStatsF64)(x, n, p, max, rest);
  }
}

template <typename T>
void SimdRows(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y,
              int64_t ob, int64_t oe) {
  if (v.size == 0 || oe <= ob) return;
  // The scratch row starts on a cache line: the kernels' loads and stores
  // to it then never split a line.
  constexpr size_t kAlign = 64 / sizeof(T);
  thread_local std::vector<T> scratch_buffer;
  if (scratch_buffer.size() < static_cast<size_t>(v.size) + kAlign) {
    scratch_buffer.resize(v.size + kAlign);
  }
  T* scratch = scratch_buffer.data();
  scratch +=
      (kAlign - reinterpret_cast<uintptr_t>(scratch) / sizeof(T) % kAlign) %
      kAlign;
  // Non-temporal stores for outputs beyond the caches (core/stores.h).
  const bool stream = StreamOutput(
      StoreUse::kSoftmaxRows,
      static_cast<size_t>(oe - ob) * static_cast<size_t>(v.size) * sizeof(T));
  struct Context {
    SoftmaxOp op;
    AxisView v;
    const T *x, *g;
    T* y;
    int64_t ob;
  } ctx{op, v, x, g, y, ob};
  const SoftmaxSpecialRowFn special = [](void* p, size_t row) {
    const Context& c = *static_cast<const Context*>(p);
    ReferenceRow<T>(c.op, c.v, c.x, c.g, c.y,
                    (c.ob + static_cast<int64_t>(row)) * c.v.size);
  };
  const int64_t off = ob * v.size;
  const T* gp = g ? g + off : nullptr;
  if constexpr (sizeof(T) == 4) {
    HWY_DYNAMIC_DISPATCH(SoftmaxRowsF32)
    (op, x + off, gp, y + off, v.size, oe - ob, scratch, stream, special, &ctx);
  } else {
    HWY_DYNAMIC_DISPATCH(SoftmaxRowsF64)
    (op, x + off, gp, y + off, v.size, oe - ob, scratch, stream, special, &ctx);
  }
}

#define ACTSVC_INSTANTIATE(T)                                                  \
  template bool SimdStats<T>(const T*, int64_t, T*, T*, reference::Wider<T>*); \
  template void SimdRows<T>(SoftmaxOp, AxisView, const T*, const T*, T*,       \
                            int64_t, int64_t);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
#undef ACTSVC_INSTANTIATE

}  // namespace internal

namespace {

using internal::ColumnRows;
using internal::ForEachTile;
using internal::GatherTile;
using internal::RowScratch;
using internal::Scratch;
using internal::SimdRows;
using internal::SimdStats;
using internal::TileColumns;
using internal::TiledRows;
using internal::Tiles;
using internal::TileScratch;

// op (as SimdRows) over the rows of outer slices [ob, oe), on the kernel
// that suits the row length and layout.
template <typename T>
void AnyRows(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y, int64_t ob,
             int64_t oe) {
  if (v.size <= kSoftmaxColumnMaxClasses) {
    return ColumnRows<T>(op, v, x, g, y, ob, oe);
  }
  if (v.inner == 1) return SimdRows<T>(op, v, x, g, y, ob, oe);
  TiledRows<T>(op, v, x, g, y, ob, oe);
}

// The dense Jacobian of one contiguous row x of n >= 1 values into j[n][n].
// p, the maximum m and rest = Σ_{i≠k} e^(x_i − m) come from the SIMD stats
// kernel (p_scratch holds n values); the first maximum k takes
// p_k = 1 / (1 + rest) and 1 − p_k = rest / (1 + rest) in W, which keep
// their digits when p_k is close to 1. Special rows take p from the
// reference. J is formed in W: softmax p_a (δ_ab − p_b), log_softmax
// δ_ab − p_b.
template <typename T>
void JacobianRow(bool log, const T* x, int64_t n, T* p_scratch, T* j) {
  using W = reference::Wider<T>;
  RowScratch<T>& s = Scratch<T>();
  T m;
  W rest;
  if (SimdStats<T>(x, n, p_scratch, &m, &rest)) {
    const int64_t k = std::find(x, x + n, m) - x;
    s.p.resize(n);
    for (int64_t c = 0; c < n; ++c) s.p[c] = static_cast<W>(p_scratch[c]);
    s.p[k] = W(1) / (W(1) + rest);
    const W q_k = rest / (W(1) + rest);
    for (int64_t a = 0; a < n; ++a) {
      const W pa = s.p[a];
      const W qa = a == k ? q_k : W(1) - pa;  // 1 − p_a
      for (int64_t b = 0; b < n; ++b) {
        const W e = a == b ? qa : -s.p[b];  // δ_ab − p_b
        j[a * n + b] = static_cast<T>(log ? e : pa * e);
      }
    }
    return;
  }
  reference::SoftmaxRowProbabilities(x, n, 1, s.p, s.log_p);
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t b = 0; b < n; ++b) {
      const W delta = a == b ? W(1) : W(0);
      j[a * n + b] =
          static_cast<T>(log ? delta - s.p[b] : s.p[a] * (delta - s.p[b]));
    }
  }
}

}  // namespace

AxisView MakeAxisView(absl::Span<const int64_t> shape, int axis) {
  AxisView v;
  for (int d = 0; d < axis; ++d) v.outer *= shape[d];
  v.size = shape[axis];
  for (size_t d = axis + 1; d < shape.size(); ++d) v.inner *= shape[d];
  return v;
}

std::optional<int> NormalizeAxis(int axis, int rank) {
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) return std::nullopt;
  return a;
}

template <typename T>
void SoftmaxForward(Function f, AxisView v, absl::Span<const T> x,
                    absl::Span<T> y, int64_t outer_begin, int64_t outer_end) {
  if (outer_end < 0) outer_end = v.outer;
  AnyRows<T>(ForwardOp(f), v, x.data(), nullptr, y.data(), outer_begin,
             outer_end);
}

template <typename T>
void SoftmaxVjp(Function f, AxisView v, absl::Span<const T> x,
                absl::Span<const T> g, absl::Span<T> y, int64_t outer_begin,
                int64_t outer_end) {
  if (outer_end < 0) outer_end = v.outer;
  AnyRows<T>(VjpOp(f), v, x.data(), g.data(), y.data(), outer_begin, outer_end);
}

template <typename T>
void SoftmaxVjpFromOutput(Function f, AxisView v, absl::Span<const T> y,
                          absl::Span<const T> g, absl::Span<T> dx,
                          int64_t outer_begin, int64_t outer_end) {
  if (outer_end < 0) outer_end = v.outer;
  AnyRows<T>(VjpFromOutputOp(f), v, y.data(), g.data(), dx.data(), outer_begin,
             outer_end);
}

template <typename T>
void SoftmaxJacobian(Function f, AxisView v, absl::Span<const T> x,
                     absl::Span<T> jac, int64_t outer_begin,
                     int64_t outer_end) {
  const bool log = f == Function::kLogSoftmax;
  const int64_t n = v.size;
  if (outer_end < 0) outer_end = v.outer;
  if (n == 0 || outer_end <= outer_begin) return;
  thread_local std::vector<T> p;
  if (p.size() < static_cast<size_t>(n)) p.resize(n);
  if (v.inner == 1) {
    for (int64_t o = outer_begin; o < outer_end; ++o) {
      JacobianRow<T>(log, x.data() + o * n, n, p.data(),
                     jac.data() + o * n * n);
    }
    return;
  }
  TileScratch<T>& s = Tiles<T>();
  const size_t need = static_cast<size_t>(TileColumns<T>(v, 1) * n);
  if (s.x.size() < need) s.x.resize(need);
  ForEachTile<T>(v, outer_begin, outer_end, 1,
                 [&](int64_t o, int64_t i0, int64_t b) {
                   GatherTile(v, x.data(), o, i0, b, s.x.data());
                   for (int64_t r = 0; r < b; ++r) {
                     const int64_t row = o * v.inner + i0 + r;
                     JacobianRow<T>(log, s.x.data() + r * n, n, p.data(),
                                    jac.data() + row * n * n);
                   }
                 });
}

#define ACTSVC_INSTANTIATE(T)                                               \
  template void SoftmaxForward<T>(Function, AxisView, absl::Span<const T>,  \
                                  absl::Span<T>, int64_t, int64_t);         \
  template void SoftmaxVjp<T>(Function, AxisView, absl::Span<const T>,      \
                              absl::Span<const T>, absl::Span<T>, int64_t,  \
                              int64_t);                                     \
  template void SoftmaxVjpFromOutput<T>(                                    \
      Function, AxisView, absl::Span<const T>, absl::Span<const T>,         \
      absl::Span<T>, int64_t, int64_t);                                     \
  template void SoftmaxJacobian<T>(Function, AxisView, absl::Span<const T>, \
                                   absl::Span<T>, int64_t, int64_t);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
#undef ACTSVC_INSTANTIATE

}  // namespace actsvc
#endif  // HWY_ONCE
