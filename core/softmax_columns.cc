// Softmax rows of at most kSoftmaxColumnMaxClasses values on the column
// kernel of core/softmax_column-inl.h, compiled once per instruction set
// here (hwy/foreach_target.h) and chosen at run time: strided rows directly
// on the tensor, contiguous rows in transposed tiles of 64 rows.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/softmax_columns.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

// Must come after foreach_target.h.
#include "core/softmax_column-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace actsvc {
namespace HWY_NAMESPACE {

void SoftmaxColumnsF32(SoftmaxOp op, const float* x, const float* g, float* y,
                       size_t classes, size_t stride, size_t count,
                       size_t blocks, size_t block_stride,
                       SoftmaxSpecialRowFn special, void* context) {
  SoftmaxColumns<float>(op, x, g, y, classes, stride, count, blocks,
                        block_stride, special, context);
}
void SoftmaxColumnsF64(SoftmaxOp op, const double* x, const double* g,
                       double* y, size_t classes, size_t stride, size_t count,
                       size_t blocks, size_t block_stride,
                       SoftmaxSpecialRowFn special, void* context) {
  SoftmaxColumns<double>(op, x, g, y, classes, stride, count, blocks,
                         block_stride, special, context);
}

}  // namespace HWY_NAMESPACE
}  // namespace actsvc
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <cstdint>

#include "core/softmax_internal.h"
#include "core/softmax_tiles.h"

namespace actsvc {

HWY_EXPORT(SoftmaxColumnsF32);
HWY_EXPORT(SoftmaxColumnsF64);

namespace internal {
namespace {

// Rows of v.size <= kSoftmaxColumnMaxClasses on the column kernel. The special
// rows' context: row r of the kernel call is the row at
// (r / count) * block_stride + r % count of x, g and y, with stride v.inner.
template <typename T>
struct ColumnContext {
  SoftmaxOp op;
  AxisView v;
  const T *x, *g;
  T* y;
  size_t count, block_stride;
};

template <typename T>
void ColumnSpecialRow(void* p, size_t row) {
  const ColumnContext<T>& c = *static_cast<const ColumnContext<T>*>(p);
  ReferenceRow<T>(
      c.op, c.v, c.x, c.g, c.y,
      static_cast<int64_t>(row / c.count * c.block_stride + row % c.count));
}

template <typename T>
void Columns(SoftmaxOp op, const T* x, const T* g, T* y, size_t classes,
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
}  // namespace

template <typename T>
void ColumnRows(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y,
                int64_t ob, int64_t oe) {
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
  const bool vjp = IsVjpOp(op);
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

template void ColumnRows<float>(SoftmaxOp, AxisView, const float*, const float*,
                                float*, int64_t, int64_t);
template void ColumnRows<double>(SoftmaxOp, AxisView, const double*,
                                 const double*, double*, int64_t, int64_t);

}  // namespace internal
}  // namespace actsvc
#endif  // HWY_ONCE
