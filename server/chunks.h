// The chunk loop and the response-size checks that server/compute.cc (the
// operations, into an OutputSink) and server/compute_in_place.cc (over the
// request's own memory) share: one loop, so that both check the call
// between chunks and split large work over the chunk threads alike. For
// those two files only.
#ifndef ACTSVC_SERVER_CHUNKS_H_
#define ACTSVC_SERVER_CHUNKS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/softmax.h"
#include "server/compute.h"
#include "server/parallel.h"

namespace actsvc::server {

// What to tell a client whose response would be too large.
inline constexpr absl::string_view kSplitTheInput =
    "split the input into smaller requests";

// Sums wire sizes, -1 (too large to count) absorbing.
inline int64_t AddBytes(int64_t a, int64_t b) {
  int64_t sum;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum)) return -1;
  return sum;
}

inline absl::Status CheckResponseBytes(const ComputeContext& context,
                                       int64_t bytes, absl::string_view what,
                                       absl::string_view instead) {
  if (bytes >= 0 && bytes <= context.max_message_bytes) {
    return absl::OkStatus();
  }
  const std::string size =
      bytes < 0 ? std::string("more than 2^63") : absl::StrCat(bytes);
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " would be ", size, " bytes, over the message size limit of ",
      context.max_message_bytes, " bytes (--max_message_mb); ", instead));
}

// An output of x's shape and dtype must fit the response limit.
inline absl::Status CheckSameSizeResponse(const ComputeContext& context,
                                          const OutputSink& sink,
                                          const TensorView& x,
                                          absl::string_view what) {
  return CheckResponseBytes(context,
                            sink.WireBytes(x.dtype(), x.rank(), x.size()), what,
                            kSplitTheInput);
}

// Runs body(begin, end) over [0, total) in steps of `step` units, checking
// the call before each step so that abandoned work stops early.
template <typename Body>
absl::Status RunChunked(const ComputeContext& context, int64_t total,
                        int64_t step, const Body& body) {
  if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
  step = std::max<int64_t>(step, 1);
  for (int64_t begin = 0; begin < total;) {
    const int64_t end = total - begin > step ? begin + step : total;
    body(begin, end);
    begin = end;
    if (begin < total) {
      if (absl::Status alive = context.CheckAlive(); !alive.ok()) {
        return alive;
      }
    }
  }
  return absl::OkStatus();
}

// RunChunked for bodies that may run concurrently on disjoint ranges: when
// the work (total units of unit_elements elements) reaches
// context.parallel_threshold_elements, the chunks go to the threads of
// context.chunk_pool. The call is still checked before every chunk but the
// first, and once it fails no further chunk starts.
template <typename Body>
absl::Status RunChunkedParallel(const ComputeContext& context, int64_t total,
                                int64_t step, int64_t unit_elements,
                                const Body& body) {
  step = std::max<int64_t>(step, 1);
  const int64_t chunks = total / step + (total % step != 0);
  const bool large = total >= context.parallel_threshold_elements /
                                  std::max<int64_t>(unit_elements, 1);
  if (context.chunk_pool == nullptr || context.chunk_pool->threads() < 2 ||
      chunks < 2 || !large) {
    return RunChunked(context, total, step, body);
  }
  if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
  absl::Mutex mu;
  absl::Status status;  // guarded by mu
  std::atomic<bool> stop{false};
  context.chunk_pool->ParallelFor(chunks, [&](int64_t chunk) {
    if (stop.load(std::memory_order_relaxed)) return;
    if (chunk > 0) {
      absl::MutexLock lock(&mu);
      if (!status.ok()) return;
      status = context.CheckAlive();
      if (!status.ok()) {
        stop.store(true, std::memory_order_relaxed);
        return;
      }
    }
    const int64_t begin = chunk * step;
    body(begin, std::min(total, begin + step));
  });
  absl::MutexLock lock(&mu);
  return status;
}

// How many units of `unit_elements` elements make one chunk (at least 1).
inline int64_t UnitsPerChunk(const ComputeContext& context,
                             int64_t unit_elements) {
  return std::max<int64_t>(
      1, context.chunk_elements / std::max<int64_t>(unit_elements, 1));
}

// Rows of a vector function along its axis, `unit` elements per row group.
template <typename Body>
absl::Status RunRows(const ComputeContext& context, const AxisView& v,
                     int64_t unit, const Body& body) {
  return RunChunkedParallel(context, v.outer, UnitsPerChunk(context, unit),
                            unit, body);
}

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_CHUNKS_H_
