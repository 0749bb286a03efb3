// The tiles of strided softmax rows (core/softmax_tiles.h): the per-target
// SIMD transposes, compiled once per instruction set here
// (hwy/foreach_target.h), and the tile loop over the row kernel.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/softmax_tiles.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include <stddef.h>
#include <stdint.h>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols:
// the tile gather and scatter of strided rows. 4 x 4 (float32) or 2 x 2
// (float64) blocks are transposed in 128-bit vectors, the edges one value
// at a time.
template <typename T>
HWY_INLINE void TransposeBlocks(const T* src, size_t src_stride, T* dst,
                                size_t dst_stride, size_t rows, size_t cols) {
  size_t i = 0, j = 0;
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
  constexpr size_t kB = 16 / sizeof(T);
  const hn::FixedTag<T, kB> d;
  const hn::Repartition<uint64_t, decltype(d)> du;
  for (; i + kB <= rows; i += kB) {
    for (j = 0; j + kB <= cols; j += kB) {
      const T* s = src + i * src_stride + j;
      T* o = dst + j * dst_stride + i;
      if constexpr (kB == 4) {
        const auto v0 = hn::LoadU(d, s);
        const auto v1 = hn::LoadU(d, s + src_stride);
        const auto v2 = hn::LoadU(d, s + 2 * src_stride);
        const auto v3 = hn::LoadU(d, s + 3 * src_stride);
        // a0 b0 a1 b1, c0 d0 c1 d1, a2 b2 a3 b3, c2 d2 c3 d3
        const auto t0 = hn::BitCast(du, hn::InterleaveLower(d, v0, v1));
        const auto t1 = hn::BitCast(du, hn::InterleaveLower(d, v2, v3));
        const auto t2 = hn::BitCast(du, hn::InterleaveUpper(d, v0, v1));
        const auto t3 = hn::BitCast(du, hn::InterleaveUpper(d, v2, v3));
        hn::StoreU(hn::BitCast(d, hn::InterleaveLower(du, t0, t1)), d, o);
        hn::StoreU(hn::BitCast(d, hn::InterleaveUpper(du, t0, t1)), d,
                   o + dst_stride);
        hn::StoreU(hn::BitCast(d, hn::InterleaveLower(du, t2, t3)), d,
                   o + 2 * dst_stride);
        hn::StoreU(hn::BitCast(d, hn::InterleaveUpper(du, t2, t3)), d,
                   o + 3 * dst_stride);
      } else {
        const auto v0 = hn::LoadU(d, s);
        const auto v1 = hn::LoadU(d, s + src_stride);
        hn::StoreU(hn::InterleaveLower(d, v0, v1), d, o);
        hn::StoreU(hn::InterleaveUpper(d, v0, v1), d, o + dst_stride);
      }
    }
    for (; j < cols; ++j) {
      for (size_t r = i; r < i + kB; ++r) {
        dst[j * dst_stride + r] = src[r * src_stride + j];
      }
    }
  }
#endif
  for (; i < rows; ++i) {
    for (j = 0; j < cols; ++j)
      dst[j * dst_stride + i] = src[i * src_stride + j];
  }
}

// The same, with packed rows of 2, 3 or 4 values on either side (the tiles
// of short contiguous rows for the column kernel) through
// hn::LoadInterleaved / StoreInterleaved, a vector of rows at a time.
template <typename T>
HWY_INLINE void TransposeBlock(const T* src, size_t src_stride, T* dst,
                               size_t dst_stride, size_t rows, size_t cols) {
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  if (src_stride == cols && cols >= 2 && cols <= 4 && rows >= lanes) {
    size_t i = 0;
    for (; i + lanes <= rows; i += lanes) {
      const T* s = src + i * cols;
      T* o = dst + i;
      V v0, v1, v2, v3;
      if (cols == 2) {
        hn::LoadInterleaved2(d, s, v0, v1);
      } else if (cols == 3) {
        hn::LoadInterleaved3(d, s, v0, v1, v2);
      } else {
        hn::LoadInterleaved4(d, s, v0, v1, v2, v3);
      }
      hn::StoreU(v0, d, o);
      hn::StoreU(v1, d, o + dst_stride);
      if (cols >= 3) hn::StoreU(v2, d, o + 2 * dst_stride);
      if (cols == 4) hn::StoreU(v3, d, o + 3 * dst_stride);
    }
    return TransposeBlocks(src + i * cols, cols, dst + i, dst_stride, rows - i,
                           cols);
  }
  if (dst_stride == rows && rows >= 2 && rows <= 4 && cols >= lanes) {
    size_t j = 0;
    for (; j + lanes <= cols; j += lanes) {
      const T* s = src + j;
      T* o = dst + j * rows;
      const V v0 = hn::LoadU(d, s);
      const V v1 = hn::LoadU(d, s + src_stride);
      if (rows == 2) {
        hn::StoreInterleaved2(v0, v1, d, o);
      } else if (rows == 3) {
        hn::StoreInterleaved3(v0, v1, hn::LoadU(d, s + 2 * src_stride), d, o);
      } else {
        hn::StoreInterleaved4(v0, v1, hn::LoadU(d, s + 2 * src_stride),
                              hn::LoadU(d, s + 3 * src_stride), d, o);
      }
    }
    return TransposeBlocks(src + j, src_stride, dst + j * rows, rows, rows,
                           cols - j);
  }
#endif
  TransposeBlocks(src, src_stride, dst, dst_stride, rows, cols);
}

void TransposeF32(const float* src, size_t src_stride, float* dst,
                  size_t dst_stride, size_t rows, size_t cols) {
  TransposeBlock(src, src_stride, dst, dst_stride, rows, cols);
}
void TransposeF64(const double* src, size_t src_stride, double* dst,
                  size_t dst_stride, size_t rows, size_t cols) {
  TransposeBlock(src, src_stride, dst, dst_stride, rows, cols);
}
}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

#include "core/softmax_internal.h"
#include "core/softmax_tiles.h"

namespace actsvc {

HWY_EXPORT(TransposeF32);
HWY_EXPORT(TransposeF64);

namespace internal {

template <typename T>
void Transpose(const T* src, int64_t src_stride, T* dst, int64_t dst_stride,
               int64_t rows, int64_t cols) {
  if constexpr (sizeof(T) == 4) {
    HWY_DYNAMIC_DISPATCH(TransposeF32)
    (src, src_stride, dst, dst_stride, rows, cols);
  } else {
    HWY_DYNAMIC_DISPATCH(TransposeF64)
    (src, src_stride, dst, dst_stride, rows, cols);
  }
}

// Runs op (as SimdRows) over the strided rows of outer slices [ob, oe)
// (v.inner > 1), tile by tile: x (and g for the VJPs) is gathered, the
// contiguous kernel writes its output over the gathered x (forward) or g
// (VJPs), which the kernels and the reference allow, and that is scattered
// to y. Special rows go to the reference on the gathered row, which gives
// the bits of the reference on the strided row.
template <typename T>
void TiledRows(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y,
               int64_t ob, int64_t oe) {
  if (v.size == 0 || oe <= ob) return;
  const bool vjp = IsVjpOp(op);
  const int arrays = vjp ? 2 : 1;
  TileScratch<T>& s = Tiles<T>();
  const size_t need = static_cast<size_t>(TileColumns<T>(v, arrays) * v.size);
  if (s.x.size() < need) s.x.resize(need);
  if (vjp && s.g.size() < need) s.g.resize(need);
  ForEachTile<T>(v, ob, oe, arrays, [&](int64_t o, int64_t i0, int64_t b) {
    GatherTile(v, x, o, i0, b, s.x.data());
    if (vjp) GatherTile(v, g, o, i0, b, s.g.data());
    T* out = vjp ? s.g.data() : s.x.data();
    SimdRows<T>(op, AxisView{b, v.size, 1}, s.x.data(),
                vjp ? s.g.data() : nullptr, out, 0, b);
    ScatterTile(v, out, o, i0, b, y);
  });
}

#define ACTSVC_INSTANTIATE(T)                                             \
  template void Transpose<T>(const T*, int64_t, T*, int64_t, int64_t,     \
                             int64_t);                                    \
  template void TiledRows<T>(SoftmaxOp, AxisView, const T*, const T*, T*, \
                             int64_t, int64_t);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
#undef ACTSVC_INSTANTIATE

}  // namespace internal
}  // namespace actsvc
#endif  // HWY_ONCE
