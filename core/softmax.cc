// Softmax along an axis. Rows of at most kSoftmaxColumnMaxClasses values run
// the column kernel of core/softmax-inl.h (ColumnRows): strided rows
// directly on the tensor, contiguous rows in transposed tiles of 64 rows.
// Longer contiguous rows (the last axis, inner == 1) run the
// per-target SIMD row kernels of core/softmax-inl.h, compiled once per
// instruction set here (hwy/foreach_target.h) and chosen at run time, as are
// the cross-entropy rows (their p, max and rest from the SIMD stats kernel;
// loss and gradient from those in reference::Wider<T>).
// Longer strided rows (inner > 1) run the same kernels in tiles, without a
// transposed copy of the tensor: for each outer index and each tile of up to
// 64 inner columns (fewer when the tile would exceed about 512 KiB), the
// tile's rows are gathered into a contiguous thread-local scratch [b][size]
// (x, and g for the VJPs), the contiguous row kernel runs over them in place,
// and the results are scattered back to their strided positions. A tile is
// gathered before any output of it is written and tiles do not overlap, so
// in-place calls work; a strided row gives the same bits as the same row
// contiguous. Dense Jacobians take p, the maximum and rest from the SIMD
// stats kernel (strided rows through the same tiles) and form J in
// reference::Wider<T>. Rows with NaN or ±inf use the scalar reference
// (core/reference.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/softmax.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include "core/softmax-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

void SoftmaxRowsF32(int op, const float* x, const float* g, float* y, size_t n,
                    size_t rows, float* scratch, bool stream,
                    SoftmaxSpecialRowFn special, void* context) {
  SoftmaxRows<float>(static_cast<SoftmaxOp>(op), x, g, y, n, rows, scratch,
                     stream, special, context);
}
void SoftmaxRowsF64(int op, const double* x, const double* g, double* y,
                    size_t n, size_t rows, double* scratch, bool stream,
                    SoftmaxSpecialRowFn special, void* context) {
  SoftmaxRows<double>(static_cast<SoftmaxOp>(op), x, g, y, n, rows, scratch,
                      stream, special, context);
}

void SoftmaxColumnsF32(int op, const float* x, const float* g, float* y,
                       size_t classes, size_t stride, size_t count,
                       size_t blocks, size_t block_stride,
                       SoftmaxSpecialRowFn special, void* context) {
  SoftmaxColumns<float>(static_cast<SoftmaxOp>(op), x, g, y, classes, stride,
                        count, blocks, block_stride, special, context);
}
void SoftmaxColumnsF64(int op, const double* x, const double* g, double* y,
                       size_t classes, size_t stride, size_t count,
                       size_t blocks, size_t block_stride,
                       SoftmaxSpecialRowFn special, void* context) {
  SoftmaxColumns<double>(static_cast<SoftmaxOp>(op), x, g, y, classes, stride,
                         count, blocks, block_stride, special, context);
}

bool SoftmaxStatsF32(const float* x, size_t n, float* p, float* max,
                     double* rest) {
  return SoftmaxStats<float>(x, n, p, max, rest);
}
bool SoftmaxStatsF64(const double* x, size_t n, double* p, double* max,
                     long double* rest) {
  return SoftmaxStats<double>(x, n, p, max, rest);
}

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
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/reference.h"
#include "core/softmax.h"

namespace actsvc {

HWY_EXPORT(SoftmaxRowsF32);
HWY_EXPORT(SoftmaxRowsF64);
HWY_EXPORT(SoftmaxColumnsF32);
HWY_EXPORT(SoftmaxColumnsF64);
HWY_EXPORT(SoftmaxStatsF32);
HWY_EXPORT(SoftmaxStatsF64);
HWY_EXPORT(TransposeF32);
HWY_EXPORT(TransposeF64);

namespace {

template <typename T>
struct RowScratch {
  std::vector<reference::Wider<T>> p, log_p;
};

template <typename T>
RowScratch<T>& Scratch() {
  thread_local RowScratch<T> scratch;
  return scratch;
}

// The reference for one row at `off` with stride `inner` (y may be x).
template <typename T>
void ReferenceForwardRow(bool log, AxisView v, const T* x, T* y, int64_t off) {
  RowScratch<T>& s = Scratch<T>();
  reference::SoftmaxRowProbabilities(x + off, v.size, v.inner, s.p, s.log_p);
  for (int64_t c = 0; c < v.size; ++c) {
    y[off + c * v.inner] = static_cast<T>(log ? s.log_p[c] : s.p[c]);
  }
}

// softmax: p ⊙ (g − <g, p>); log_softmax: g − p Σg. y may be x or g.
template <typename T>
void ReferenceVjpRow(bool log, AxisView v, const T* x, const T* g, T* y,
                     int64_t off) {
  using W = reference::Wider<T>;
  RowScratch<T>& s = Scratch<T>();
  reference::SoftmaxRowProbabilities(x + off, v.size, v.inner, s.p, s.log_p);
  W acc = 0;
  for (int64_t c = 0; c < v.size; ++c) {
    const W gc = static_cast<W>(g[off + c * v.inner]);
    acc += log ? gc : gc * s.p[c];
  }
  for (int64_t c = 0; c < v.size; ++c) {
    const int64_t k = off + c * v.inner;
    const W gc = static_cast<W>(g[k]);
    y[k] = static_cast<T>(log ? gc - s.p[c] * acc : s.p[c] * (gc - acc));
  }
}

// The VJP from the forward output y in W: softmax y ⊙ (g − <g, y>);
// log_softmax g − e^y Σg. dx may be y or g.
template <typename T>
void ReferenceVjpFromOutputRow(bool log, AxisView v, const T* y, const T* g,
                               T* dx, int64_t off) {
  using W = reference::Wider<T>;
  W acc = 0;
  for (int64_t c = 0; c < v.size; ++c) {
    const int64_t k = off + c * v.inner;
    acc += log ? static_cast<W>(g[k])
               : static_cast<W>(g[k]) * static_cast<W>(y[k]);
  }
  for (int64_t c = 0; c < v.size; ++c) {
    const int64_t k = off + c * v.inner;
    const W gc = static_cast<W>(g[k]);
    const W yc = static_cast<W>(y[k]);
    dx[k] = static_cast<T>(log ? gc - std::exp(yc) * acc : yc * (gc - acc));
  }
}

// Outputs of at least this many bytes are written with non-temporal stores
// (they would only evict the inputs of the next rows from the caches).
constexpr size_t kStreamBytes = size_t{8} << 20;

// The SIMD softmax of one contiguous row, its max and rest; false for a
// special row (nothing written).
template <typename T>
bool SimdStats(const T* x, int64_t n, T* p, T* max, reference::Wider<T>* rest) {
  if constexpr (sizeof(T) == 4) {
    return HWY_DYNAMIC_DISPATCH(SoftmaxStatsF32)(x, n, p, max, rest);
  } else {
    return HWY_DYNAMIC_DISPATCH(SoftmaxStatsF64)(x, n, p, max, rest);
  }
}

// Runs the SIMD kernel over the contiguous rows [ob, oe) (v.inner == 1);
// special rows go to the reference. op as SoftmaxOp in softmax-inl.h.
template <typename T>
void SimdRows(int op, AxisView v, const T* x, const T* g, T* y, int64_t ob,
              int64_t oe) {
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
  const bool stream =
      static_cast<size_t>(oe - ob) * static_cast<size_t>(v.size) * sizeof(T) >=
      kStreamBytes;
  struct Context {
    int op;
    AxisView v;
    const T *x, *g;
    T* y;
    int64_t ob;
  } ctx{op, v, x, g, y, ob};
  const SoftmaxSpecialRowFn special = [](void* p, size_t row) {
    const Context& c = *static_cast<const Context*>(p);
    const int64_t off = (c.ob + static_cast<int64_t>(row)) * c.v.size;
    if (c.op < 2) {
      ReferenceForwardRow<T>(c.op == 1, c.v, c.x, c.y, off);
    } else if (c.op >= 4) {
      ReferenceVjpFromOutputRow<T>(c.op == 5, c.v, c.x, c.g, c.y, off);
    } else {
      ReferenceVjpRow<T>(c.op == 3, c.v, c.x, c.g, c.y, off);
    }
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

// Strided rows (inner > 1) in tiles. A tile is b <= TileColumns inner
// columns i0 .. i0 + b − 1 of one outer index o: b rows of v.size values,
// gathered into a contiguous scratch [b][v.size] so that the contiguous
// kernels run on them. `arrays` tile buffers of that size are live at once;
// together they stay within about 512 KiB (L2), and b >= 1. (64 columns
// rather than 16: 10-18% faster on [16, 1000, 64] float32 axis 1.)
constexpr int64_t kMaxTileColumns = 64;
constexpr size_t kTileBytes = size_t{512} << 10;

template <typename T>
int64_t TileColumns(AxisView v, int arrays) {
  const size_t row_bytes =
      static_cast<size_t>(v.size) * sizeof(T) * static_cast<size_t>(arrays);
  const int64_t fit = row_bytes == 0
                          ? kMaxTileColumns
                          : static_cast<int64_t>(kTileBytes / row_bytes);
  return std::max<int64_t>(1, std::min({fit, kMaxTileColumns, v.inner}));
}

// Calls fn(o, i0, b) for every tile of the outer slices [ob, oe).
template <typename T, typename Fn>
void ForEachTile(AxisView v, int64_t ob, int64_t oe, int arrays, Fn&& fn) {
  const int64_t tile = TileColumns<T>(v, arrays);
  for (int64_t o = ob; o < oe; ++o) {
    for (int64_t i0 = 0; i0 < v.inner; i0 += tile) {
      fn(o, i0, std::min(tile, v.inner - i0));
    }
  }
}

// dst[j * dst_stride + i] = src[i * src_stride + j], i < rows, j < cols.
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

// The b strided rows of tile (o, i0) of src into dst[b][v.size]: the tile
// is [v.size][b] in src with row stride v.inner.
template <typename T>
void GatherTile(AxisView v, const T* src, int64_t o, int64_t i0, int64_t b,
                T* dst) {
  Transpose(src + o * v.size * v.inner + i0, v.inner, dst, v.size, v.size, b);
}

// The inverse: src[b][v.size] to the b strided rows of tile (o, i0) of dst.
template <typename T>
void ScatterTile(AxisView v, const T* src, int64_t o, int64_t i0, int64_t b,
                 T* dst) {
  Transpose(src, v.size, dst + o * v.size * v.inner + i0, v.inner, b, v.size);
}

template <typename T>
struct TileScratch {
  std::vector<T> x, g;
};

template <typename T>
TileScratch<T>& Tiles() {
  thread_local TileScratch<T> tiles;
  return tiles;
}

// Runs op (as SimdRows) over the strided rows of outer slices [ob, oe)
// (v.inner > 1), tile by tile: x (and g for the VJPs) is gathered, the
// contiguous kernel writes its output over the gathered x (forward) or g
// (VJPs), which the kernels and the reference allow, and that is scattered
// to y. Special rows go to the reference on the gathered row, which gives
// the bits of the reference on the strided row.
template <typename T>
void TiledRows(int op, AxisView v, const T* x, const T* g, T* y, int64_t ob,
               int64_t oe) {
  if (v.size == 0 || oe <= ob) return;
  const bool vjp = op >= 2;
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

// Rows of v.size <= kColumnMaxClasses on the column kernel. The special
// rows' context: row r of the kernel call is the row at
// (r / count) * block_stride + r % count of x, g and y, with stride v.inner.
template <typename T>
struct ColumnContext {
  int op;
  AxisView v;
  const T *x, *g;
  T* y;
  size_t count, block_stride;
};

template <typename T>
void ColumnSpecialRow(void* p, size_t row) {
  const ColumnContext<T>& c = *static_cast<const ColumnContext<T>*>(p);
  const int64_t off =
      static_cast<int64_t>(row / c.count * c.block_stride + row % c.count);
  if (c.op < 2) {
    ReferenceForwardRow<T>(c.op == 1, c.v, c.x, c.y, off);
  } else if (c.op >= 4) {
    ReferenceVjpFromOutputRow<T>(c.op == 5, c.v, c.x, c.g, c.y, off);
  } else {
    ReferenceVjpRow<T>(c.op == 3, c.v, c.x, c.g, c.y, off);
  }
}

template <typename T>
void Columns(int op, const T* x, const T* g, T* y, size_t classes,
             size_t stride, size_t count, size_t blocks, size_t block_stride,
             ColumnContext<T>* ctx) {
  if constexpr (sizeof(T) == 4) {
    HWY_DYNAMIC_DISPATCH(SoftmaxColumnsF32)
    (op, x, g, y, classes, stride, count, blocks, block_stride,
     &ColumnSpecialRow<T>, ctx);
  } else {
    HWY_DYNAMIC_DISPATCH(SoftmaxColumnsF64)
    (op, x, g, y, classes, stride, count, blocks, block_stride,
     &ColumnSpecialRow<T>, ctx);
  }
}

// Strided rows (inner > 1): the column kernel directly on the tensor, the
// inner columns of one outer index contiguous, no copies. Contiguous rows
// (inner == 1): tiles of up to 64 rows are transposed into a [C][64]
// scratch (x, and g for the VJPs), the kernel writes over the scratch x
// (forward) or g (VJPs), special rows take the reference on the scratch,
// and the tile is transposed back to y. Either way a row sees the same
// arithmetic, so strided and contiguous rows give the same bits.
template <typename T>
void ColumnRows(int op, AxisView v, const T* x, const T* g, T* y, int64_t ob,
                int64_t oe) {
  if (v.size == 0 || v.inner == 0 || oe <= ob) return;
  const size_t classes = static_cast<size_t>(v.size);
  if (v.inner > 1) {
    const size_t block = classes * static_cast<size_t>(v.inner);
    const size_t off = static_cast<size_t>(ob) * block;
    const T* gp = g ? g + off : nullptr;
    ColumnContext<T> ctx{
        op, v, x + off, gp, y + off, static_cast<size_t>(v.inner), block};
    Columns<T>(op, x + off, gp, y + off, classes, v.inner, v.inner,
               static_cast<size_t>(oe - ob), block, &ctx);
    return;
  }
  constexpr int64_t kTile = 64;
  const bool vjp = op >= 2;
  TileScratch<T>& s = Tiles<T>();
  const size_t need = classes * kTile;
  if (s.x.size() < need) s.x.resize(need);
  if (vjp && s.g.size() < need) s.g.resize(need);
  T* sx = s.x.data();
  T* sg = vjp ? s.g.data() : nullptr;
  T* out = vjp ? sg : sx;
  for (int64_t r0 = ob; r0 < oe; r0 += kTile) {
    const int64_t b = std::min(kTile, oe - r0);
    const int64_t off = r0 * v.size;
    Transpose(x + off, v.size, sx, kTile, b, v.size);
    if (vjp) Transpose(g + off, v.size, sg, kTile, b, v.size);
    ColumnContext<T> ctx{op,  AxisView{1, v.size, kTile}, sx, sg,
                         out, static_cast<size_t>(b),     0};
    Columns<T>(op, sx, sg, out, classes, kTile, static_cast<size_t>(b), 1, 0,
               &ctx);
    Transpose(out, kTile, y + off, v.size, v.size, b);
  }
}

// op (as SimdRows) over the rows of outer slices [ob, oe), on the kernel
// that suits the row length and layout.
template <typename T>
void AnyRows(int op, AxisView v, const T* x, const T* g, T* y, int64_t ob,
             int64_t oe) {
  if (v.size <= static_cast<int64_t>(kColumnMaxClasses)) {
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
  const bool log = f == Function::kLogSoftmax;
  if (outer_end < 0) outer_end = v.outer;
  AnyRows<T>(log ? 1 : 0, v, x.data(), nullptr, y.data(), outer_begin,
             outer_end);
}

template <typename T>
void SoftmaxVjp(Function f, AxisView v, absl::Span<const T> x,
                absl::Span<const T> g, absl::Span<T> y, int64_t outer_begin,
                int64_t outer_end) {
  const bool log = f == Function::kLogSoftmax;
  if (outer_end < 0) outer_end = v.outer;
  AnyRows<T>(log ? 3 : 2, v, x.data(), g.data(), y.data(), outer_begin,
             outer_end);
}

template <typename T>
void SoftmaxVjpFromOutput(Function f, AxisView v, absl::Span<const T> y,
                          absl::Span<const T> g, absl::Span<T> dx,
                          int64_t outer_begin, int64_t outer_end) {
  const bool log = f == Function::kLogSoftmax;
  if (outer_end < 0) outer_end = v.outer;
  AnyRows<T>(log ? 5 : 4, v, y.data(), g.data(), dx.data(), outer_begin,
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

template <typename T>
CrossEntropyPartial CrossEntropyRows(int64_t classes,
                                     absl::Span<const T> logits,
                                     absl::Span<const int64_t> class_indices,
                                     absl::Span<const T> target_probs,
                                     const CrossEntropyOptions& options,
                                     absl::Span<T> row_loss, absl::Span<T> grad,
                                     absl::Span<T> probs, int64_t row_begin,
                                     int64_t row_end) {
  using W = reference::Wider<T>;
  RowScratch<T>& s = Scratch<T>();
  const W eps = static_cast<W>(options.label_smoothing);
  const W spread = eps / static_cast<W>(classes);
  const bool by_index = target_probs.empty();
  std::vector<W> y(classes);
  CrossEntropyPartial partial;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t off = r * classes;
    const T* z = logits.data() + off;
    T* gr = grad.data() + off;
    const bool ignored = by_index && options.ignore_index.has_value() &&
                         class_indices[r] == *options.ignore_index;
    // p from the SIMD kernel, into the gradient row (rows with NaN or ±inf
    // go to the reference below). With m = max z and rest = Σ e^(z_c − m)
    // over all but the first maximum k: log Σ e^z − m = log1p(rest), and
    // p_k = 1/(1 + rest), 1 − p_k = rest/(1 + rest) keep their digits when
    // p_k is close to 1.
    T m;
    W rest;
    if (classes > 0 && SimdStats<T>(z, classes, gr, &m, &rest)) {
      if (!probs.empty()) std::copy(gr, gr + classes, probs.begin() + off);
      if (ignored) {
        row_loss[r] = T(0);
        std::fill(gr, gr + classes, T(0));
        continue;
      }
      const W lse = std::log1p(rest);
      W loss;
      if (by_index && eps == 0) {
        // One-hot label: gr already holds p, and only p_label − 1 changes;
        // loss = −log p_label = log1p(rest) − (z_label − m).
        const int64_t label = class_indices[r];
        const T z_label = z[label];
        loss = lse - (static_cast<W>(z_label) - m);
        gr[label] = static_cast<T>(
            z_label == m
                ? -rest / (W(1) + rest)
                : std::exp(static_cast<W>(z_label) - m) / (W(1) + rest) - W(1));
      } else {
        // y = (1 − ε) t + ε/C; loss = Σ y_c (lse + (m − z_c)), every term
        // >= 0 (a zero y_c adds 0: z is finite here), lse kept apart from
        // m − z_c (lse + m would drop a tiny lse); grad = p Σy − y, p_k from
        // rest. Four partial sums, so that the loops are not bound by the
        // latency of one accumulator.
        const W a = W(1) - eps;
        const W mw = static_cast<W>(m);
        const int64_t k = std::find(z, z + classes, m) - z;
        // sy_rest = Σ_{c≠k} y_c, summed without y_k: Σy − y_k would cancel
        // where y_k is close to 1.
        W sum_y, y_k, sy_rest;
        W acc[4] = {0, 0, 0, 0};
        if (by_index) {
          // Σy = (1 − ε) + C ε/C; loss = ε/C (C lse + Σ (m − z_c)) + (1 − ε)
          // (lse + (m − z_label)).
          const int64_t label = class_indices[r];
          int64_t c = 0;
          for (; c + 4 <= classes; c += 4) {
            for (int j = 0; j < 4; ++j) acc[j] += mw - static_cast<W>(z[c + j]);
          }
          for (; c < classes; ++c) acc[0] += mw - static_cast<W>(z[c]);
          sum_y = a + spread * static_cast<W>(classes);
          y_k = k == label ? a + spread : spread;
          sy_rest = spread * static_cast<W>(classes - 1) + (k == label ? 0 : a);
          loss = spread * (static_cast<W>(classes) * lse +
                           ((acc[0] + acc[1]) + (acc[2] + acc[3]))) +
                 a * (lse + (mw - static_cast<W>(z[label])));
          const W p_label = static_cast<W>(gr[label]);
          for (int64_t c2 = 0; c2 < classes; ++c2) {
            gr[c2] = static_cast<T>(static_cast<W>(gr[c2]) * sum_y - spread);
          }
          gr[label] = static_cast<T>(p_label * sum_y - (a + spread));
        } else {
          const T* t = target_probs.data() + off;
          W ys[4] = {0, 0, 0, 0};
          int64_t c = 0;
          for (; c + 4 <= classes; c += 4) {
            for (int j = 0; j < 4; ++j) {
              const W yc = a * static_cast<W>(t[c + j]) + spread;
              ys[j] += c + j == k ? W(0) : yc;
              acc[j] += yc * (lse + (mw - static_cast<W>(z[c + j])));
            }
          }
          for (; c < classes; ++c) {
            const W yc = a * static_cast<W>(t[c]) + spread;
            ys[0] += c == k ? W(0) : yc;
            acc[0] += yc * (lse + (mw - static_cast<W>(z[c])));
          }
          y_k = a * static_cast<W>(t[k]) + spread;
          sy_rest = (ys[0] + ys[1]) + (ys[2] + ys[3]);
          sum_y = sy_rest + y_k;
          loss = (acc[0] + acc[1]) + (acc[2] + acc[3]);
          for (int64_t c2 = 0; c2 < classes; ++c2) {
            gr[c2] = static_cast<T>(static_cast<W>(gr[c2]) * sum_y -
                                    (a * static_cast<W>(t[c2]) + spread));
          }
        }
        // p_k Σy − y_k = (Σ_{c≠k} y_c − y_k rest) / (1 + rest).
        gr[k] = static_cast<T>((sy_rest - y_k * rest) / (W(1) + rest));
      }
      row_loss[r] = static_cast<T>(loss);
      partial.counted_rows += 1;
      partial.loss_sum += static_cast<long double>(loss);
      continue;
    }
    reference::SoftmaxRowProbabilities(logits.data() + off, classes, 1, s.p,
                                       s.log_p);
    if (!probs.empty()) {
      for (int64_t c = 0; c < classes; ++c) {
        probs[off + c] = static_cast<T>(s.p[c]);
      }
    }
    if (ignored) {
      row_loss[r] = T(0);
      for (int64_t c = 0; c < classes; ++c) grad[off + c] = T(0);
      continue;
    }
    for (int64_t c = 0; c < classes; ++c) {
      const W t = by_index ? W(class_indices[r] == c ? 1 : 0)
                           : static_cast<W>(target_probs[off + c]);
      y[c] = (W(1) - eps) * t + spread;
    }
    // Σ y_c (logsumexp − z_c) = −Σ y_c log p_c; a zero label contributes
    // nothing even where log p_c = −inf.
    W loss = 0;
    W sum_y = 0;
    for (int64_t c = 0; c < classes; ++c) {
      sum_y += y[c];
      if (y[c] != 0) loss -= y[c] * s.log_p[c];
    }
    for (int64_t c = 0; c < classes; ++c) {
      grad[off + c] = static_cast<T>(s.p[c] * sum_y - y[c]);
    }
    row_loss[r] = static_cast<T>(loss);
    partial.counted_rows += 1;
    partial.loss_sum += static_cast<long double>(loss);
  }
  return partial;
}

template <typename T>
void ReduceCrossEntropy(Reduction reduction, const CrossEntropyPartial& total,
                        absl::Span<T> grad, absl::Span<T> loss) {
  switch (reduction) {
    case Reduction::kNone:
      return;
    case Reduction::kSum:
      loss[0] = static_cast<T>(total.loss_sum);
      return;
    case Reduction::kMean: {
      // 0 / 0 is NaN when every row is ignored, as in PyTorch; the
      // gradient of ignored rows stays 0 then.
      const long double n = static_cast<long double>(total.counted_rows);
      loss[0] = static_cast<T>(total.loss_sum / n);
      if (total.counted_rows == 0) return;
      for (T& g : grad) g = static_cast<T>(static_cast<long double>(g) / n);
      return;
    }
  }
}

#define ACTSVC_INSTANTIATE(T)                                                \
  template void SoftmaxForward<T>(Function, AxisView, absl::Span<const T>,   \
                                  absl::Span<T>, int64_t, int64_t);          \
  template void SoftmaxVjp<T>(Function, AxisView, absl::Span<const T>,       \
                              absl::Span<const T>, absl::Span<T>, int64_t,   \
                              int64_t);                                      \
  template void SoftmaxVjpFromOutput<T>(                                     \
      Function, AxisView, absl::Span<const T>, absl::Span<const T>,          \
      absl::Span<T>, int64_t, int64_t);                                      \
  template void SoftmaxJacobian<T>(Function, AxisView, absl::Span<const T>,  \
                                   absl::Span<T>, int64_t, int64_t);         \
  template CrossEntropyPartial CrossEntropyRows<T>(                          \
      int64_t, absl::Span<const T>, absl::Span<const int64_t>,               \
      absl::Span<const T>, const CrossEntropyOptions&, absl::Span<T>,        \
      absl::Span<T>, absl::Span<T>, int64_t, int64_t);                       \
  template void ReduceCrossEntropy<T>(Reduction, const CrossEntropyPartial&, \
                                      absl::Span<T>, absl::Span<T>);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
#undef ACTSVC_INSTANTIATE

}  // namespace actsvc
#endif  // HWY_ONCE
