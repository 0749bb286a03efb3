// Host-side pieces the softmax files share (core/softmax.cc, the row
// kernels and the public API; core/softmax_columns.cc; core/softmax_tiles.cc;
// core/cross_entropy.cc). Not part of the API.
#ifndef ACTSVC_CORE_SOFTMAX_INTERNAL_H_
#define ACTSVC_CORE_SOFTMAX_INTERNAL_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/reference.h"
#include "core/softmax.h"

namespace actsvc::internal {

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
inline void ReferenceForwardRow(bool log, AxisView v, const T* x, T* y,
                                int64_t off) {
  RowScratch<T>& s = Scratch<T>();
  reference::SoftmaxRowProbabilities(x + off, v.size, v.inner, s.p, s.log_p);
  for (int64_t c = 0; c < v.size; ++c) {
    y[off + c * v.inner] = static_cast<T>(log ? s.log_p[c] : s.p[c]);
  }
}

// softmax: p ⊙ (g − <g, p>); log_softmax: g − p Σg. y may be x or g.
template <typename T>
inline void ReferenceVjpRow(bool log, AxisView v, const T* x, const T* g, T* y,
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
inline void ReferenceVjpFromOutputRow(bool log, AxisView v, const T* y,
                                      const T* g, T* dx, int64_t off) {
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

// The reference for op (core/softmax.h) on one row at `off` with stride
// `inner`: what the kernels leave to it (rows with NaN or ±inf, ...).
template <typename T>
inline void ReferenceRow(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y,
                         int64_t off) {
  const bool log = IsLogOp(op);
  if (!IsVjpOp(op)) {
    ReferenceForwardRow<T>(log, v, x, y, off);
  } else if (IsVjpFromOutputOp(op)) {
    ReferenceVjpFromOutputRow<T>(log, v, x, g, y, off);
  } else {
    ReferenceVjpRow<T>(log, v, x, g, y, off);
  }
}

// The SIMD softmax of one contiguous row, its max and rest; false for a
// special row (nothing written). core/softmax.cc.
template <typename T>
bool SimdStats(const T* x, int64_t n, T* p, T* max, reference::Wider<T>* rest);

// Runs the SIMD row kernel over the contiguous rows [ob, oe)
// (v.inner == 1); special rows go to the reference. core/softmax.cc.
template <typename T>
void SimdRows(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y,
              int64_t ob, int64_t oe);

// Rows of v.size <= kSoftmaxColumnMaxClasses on the column kernel, strided
// or contiguous. core/softmax_columns.cc.
template <typename T>
void ColumnRows(SoftmaxOp op, AxisView v, const T* x, const T* g, T* y,
                int64_t ob, int64_t oe);

}  // namespace actsvc::internal

#endif  // ACTSVC_CORE_SOFTMAX_INTERNAL_H_
