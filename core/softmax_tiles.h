// Strided softmax rows (inner > 1) in tiles, without a transposed copy of
// the tensor: for each outer index and each tile of up to 64 inner columns
// (fewer when the tile would exceed about 512 KiB), the tile's rows are
// gathered into a contiguous thread-local scratch [b][size] (x, and g for
// the VJPs), the contiguous row kernel runs over them in place, and the
// results are scattered back to their strided positions. A tile is gathered
// before any output of it is written and tiles do not overlap, so in-place
// calls work; a strided row gives the same bits as the same row contiguous.
// The transposes are per-target SIMD (core/softmax_tiles.cc); the dense
// Jacobian and the column kernel's contiguous tiles use them too.
#ifndef ACTSVC_CORE_SOFTMAX_TILES_H_
#define ACTSVC_CORE_SOFTMAX_TILES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/softmax.h"

namespace actsvc::internal {

// dst[j * dst_stride + i] = src[i * src_stride + j], i < rows, j < cols.
template <typename T>
void Transpose(const T* src, int64_t src_stride, T* dst, int64_t dst_stride,
               int64_t rows, int64_t cols);

// Strided rows (inner > 1) in tiles. A tile is b <= TileColumns inner
// columns i0 .. i0 + b − 1 of one outer index o: b rows of v.size values,
// gathered into a contiguous scratch [b][v.size] so that the contiguous
// kernels run on them. `arrays` tile buffers of that size are live at once;
// together they stay within about 512 KiB (L2), and b >= 1.
constexpr int64_t kMaxTileColumns = 64;
constexpr size_t kTileBytes = size_t{512} << 10;

template <typename T>
inline int64_t TileColumns(AxisView v, int arrays) {
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

// The b strided rows of tile (o, i0) of src into dst[b][v.size]: the tile
// is [v.size][b] in src with row stride v.inner.
template <typename T>
inline void GatherTile(AxisView v, const T* src, int64_t o, int64_t i0,
                       int64_t b, T* dst) {
  Transpose(src + o * v.size * v.inner + i0, v.inner, dst, v.size, v.size, b);
}

// The inverse: src[b][v.size] to the b strided rows of tile (o, i0) of dst.
template <typename T>
inline void ScatterTile(AxisView v, const T* src, int64_t o, int64_t i0,
                        int64_t b, T* dst) {
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
// (v.inner > 1), tile by tile. core/softmax_tiles.cc.
template <typename T>
void TiledRows(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y,
               int64_t ob, int64_t oe);

}  // namespace actsvc::internal

#endif  // ACTSVC_CORE_SOFTMAX_TILES_H_
