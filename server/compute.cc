// One idea (about 790 lines): each operation of ops.h run in chunks under
// the call's limits, deadline and chunk threads, into an OutputSink or (Run
// InPlace) over the request's own memory. The in-place runners share the
// chunk loop, the response checks and the per-op kernel calls with the
// others, so they stay beside them.
#include "server/compute.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "core/activation.h"
#include "core/softmax.h"
#include "server/parallel.h"

namespace actsvc::server {
namespace {

// The payload that marks NeedsComputeThread's status.
constexpr absl::string_view kNeedsComputeThreadUrl =
    "actsvc.server/needs-compute-thread";

// What to tell a client whose response would be too large.
constexpr absl::string_view kSplitTheInput =
    "split the input into smaller requests";

// Sums wire sizes, -1 (too large to count) absorbing.
int64_t AddBytes(int64_t a, int64_t b) {
  int64_t sum;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum)) return -1;
  return sum;
}

absl::Status CheckResponseBytes(const ComputeContext& context, int64_t bytes,
                                absl::string_view what,
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
absl::Status CheckSameSizeResponse(const ComputeContext& context,
                                   const OutputSink& sink, const TensorView& x,
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
int64_t UnitsPerChunk(const ComputeContext& context, int64_t unit_elements) {
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

template <typename T>
absl::Status DerivativeInto(const ResolvedFunction& spec, int order,
                            absl::Span<const T> x,
                            const ComputeContext& context, absl::Span<T> y) {
  return RunChunkedParallel(
      context, static_cast<int64_t>(x.size()), context.chunk_elements, 1,
      [&](int64_t b, int64_t e) {
        Derivative<T>(spec.function, spec.alpha, order, x.subspan(b, e - b),
                      y.subspan(b, e - b));
      });
}

template <typename T>
absl::Status EvaluateAs(const EvaluateOp& op, const ComputeContext& context,
                        OutputSink* sink) {
  const TensorView& x = op.x;
  const absl::Span<const T> xs = x.values<T>();
  const absl::Span<T> ys =
      sink->AllocateAs<T>(OutputRole::kOutput, x.shape(), x.size());
  if (op.axis) {
    const AxisView v = op.axis->view;
    return RunRows(context, v, v.size * v.inner, [&](int64_t b, int64_t e) {
      SoftmaxForward<T>(op.function.function, v, xs, ys, b, e);
    });
  }
  return RunChunkedParallel(
      context, x.size(), context.chunk_elements, 1, [&](int64_t b, int64_t e) {
        Evaluate<T>(op.function.function, op.function.alpha,
                    xs.subspan(b, e - b), ys.subspan(b, e - b));
      });
}

template <typename T>
absl::Status VjpAs(const VjpOp& op, const ComputeContext& context,
                   OutputSink* sink) {
  const TensorView& x = op.x;
  const absl::Span<const T> xs = x.values<T>();
  const absl::Span<const T> gs = op.g.values<T>();
  const absl::Span<T> ys =
      sink->AllocateAs<T>(OutputRole::kOutput, x.shape(), x.size());
  if (op.axis) {
    const AxisView v = op.axis->view;
    return RunRows(context, v, v.size * v.inner, [&](int64_t b, int64_t e) {
      SoftmaxVjp<T>(op.function.function, v, xs, gs, ys, b, e);
    });
  }
  return RunChunkedParallel(
      context, x.size(), context.chunk_elements, 1, [&](int64_t b, int64_t e) {
        Vjp<T>(op.function.function, op.function.alpha, xs.subspan(b, e - b),
               gs.subspan(b, e - b), ys.subspan(b, e - b));
      });
}

// The shape of the dense Jacobian and its matrix size c.
struct DenseLayout {
  std::vector<int64_t> shape;
  int64_t c = 0;
};

DenseLayout DenseJacobianLayout(const JacobianOp& op) {
  const TensorView& x = op.x;
  DenseLayout layout;
  if (!op.axis) {  // elementwise: one diagonal matrix per last-axis row
    layout.c = x.shape().back();
    layout.shape.assign(x.shape().begin(), x.shape().end());
    layout.shape.push_back(layout.c);
    return layout;
  }
  layout.c = x.shape()[op.axis->axis];
  for (int d = 0; d < x.rank(); ++d) {
    if (d != op.axis->axis) layout.shape.push_back(x.shape()[d]);
  }
  layout.shape.push_back(layout.c);
  layout.shape.push_back(layout.c);
  return layout;
}

absl::Status CheckDenseJacobianSize(const JacobianOp& op,
                                    const DenseLayout& layout,
                                    const ComputeContext& context,
                                    const OutputSink& sink) {
  const int64_t elements = CheckedProduct(layout.shape);
  const std::string instead =
      op.axis ? "use Derivative with upstream_grad (VJP) instead of the dense "
                "Jacobian"
              : "use dense = false for the diagonal, or Derivative with "
                "upstream_grad (VJP)";
  const std::string what =
      absl::StrCat("the dense Jacobian ", ShapeString(layout.shape));
  const DType dtype = op.x.dtype();
  const int64_t bytes =
      sink.WireBytes(dtype, static_cast<int>(layout.shape.size()), elements);
  if (absl::Status s = CheckResponseBytes(context, bytes, what, instead);
      !s.ok()) {
    return s;
  }
  const int64_t element_size = DTypeSize(dtype);
  if (context.max_jacobian_bytes > 0 &&
      elements > context.max_jacobian_bytes / element_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " would be ", elements * element_size,
        " bytes of values, over the dense Jacobian limit of ",
        context.max_jacobian_bytes, " bytes (--max_jacobian_mb); ", instead));
  }
  // c^2 outputs from c inputs: a small request may ask for much work.
  if (context.inline_response_bytes > 0 &&
      bytes > context.inline_response_bytes) {
    return NeedsComputeThread();
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status DenseJacobianAs(const JacobianOp& op, const DenseLayout& layout,
                             const ComputeContext& context, OutputSink* sink) {
  const absl::Span<const T> xs = op.x.values<T>();
  const int64_t c = layout.c;
  const absl::Span<T> js = sink->AllocateAs<T>(
      OutputRole::kJacobianDense, layout.shape, CheckedProduct(layout.shape));
  if (op.axis) {
    const AxisView v = op.axis->view;
    return RunRows(context, v, v.inner * c * c, [&](int64_t b, int64_t e) {
      SoftmaxJacobian<T>(op.function.function, v, xs, js, b, e);
    });
  }
  if (op.x.size() == 0) return absl::OkStatus();  // c * c may overflow
  const int64_t rows = op.x.size() / c;
  std::vector<T> diag;
  return RunChunked(
      context, rows, UnitsPerChunk(context, c * c), [&](int64_t b, int64_t e) {
        diag.resize((e - b) * c);
        Derivative<T>(op.function.function, op.function.alpha, 1,
                      xs.subspan(b * c, (e - b) * c), absl::MakeSpan(diag));
        DiagonalToDense<T>(diag, c, js.subspan(b * c * c, (e - b) * c * c));
      });
}

template <typename T>
absl::Status CrossEntropyAs(const CrossEntropyOp& op,
                            const ComputeContext& context, OutputSink* sink) {
  const TensorView& logits = op.logits;
  const bool per_row = op.reduction == Reduction::kNone;
  const absl::Span<const int64_t> leading =
      logits.shape().subspan(0, logits.rank() - 1);
  const absl::Span<T> loss = sink->AllocateAs<T>(
      OutputRole::kLoss, per_row ? leading : absl::Span<const int64_t>(),
      per_row ? op.rows : 1);
  const absl::Span<T> grad = sink->AllocateAs<T>(OutputRole::kGradLogits,
                                                 logits.shape(), logits.size());
  const absl::Span<T> probs =
      op.return_probabilities
          ? sink->AllocateAs<T>(OutputRole::kProbabilities, logits.shape(),
                                logits.size())
          : absl::Span<T>();
  // Reduced losses need the per-row values somewhere before summing.
  std::vector<T> row_loss_scratch(per_row ? 0 : op.rows);
  const absl::Span<T> row_loss =
      per_row ? loss : absl::MakeSpan(row_loss_scratch);
  const absl::Span<const T> target_probs =
      op.target_probs ? op.target_probs->values<T>() : absl::Span<const T>();
  CrossEntropyPartial total;
  absl::Status status =
      RunChunked(context, op.rows, UnitsPerChunk(context, op.classes),
                 [&](int64_t b, int64_t e) {
                   const CrossEntropyPartial part = CrossEntropyRows<T>(
                       op.classes, logits.values<T>(), op.class_indices,
                       target_probs, op.options, row_loss, grad, probs, b, e);
                   total.counted_rows += part.counted_rows;
                   total.loss_sum += part.loss_sum;
                 });
  if (status.ok()) ReduceCrossEntropy<T>(op.reduction, total, grad, loss);
  return status;
}

// Finishes the sink after a successful run.
absl::Status Finished(absl::Status status, OutputSink* sink) {
  if (status.ok()) sink->Finish();
  return status;
}

// An operation whose one output has x's shape and dtype: checks the response
// size, then runs body(T{}) with T x's compute type, then finishes the sink.
template <typename Body>
absl::Status RunSameSize(const TensorView& x, absl::string_view what,
                         const ComputeContext& context, OutputSink* sink,
                         const Body& body) {
  if (absl::Status s = CheckSameSizeResponse(context, *sink, x, what);
      !s.ok()) {
    return s;
  }
  return Finished(VisitDType(x.dtype(), body), sink);
}

// In place (RunInPlace): an elementwise kernel over values that lie in
// pieces of memory, the results written over them.

// A position in a tensor's byte pieces, moving forward; Byte is char where
// the pieces are written, const char where they are only read.
template <typename Byte>
class PieceCursor {
 public:
  PieceCursor() = default;
  PieceCursor(absl::Span<const absl::Span<Byte>> pieces, size_t piece,
              int64_t offset)
      : pieces_(pieces), piece_(piece), offset_(offset) {
    Settle();
  }

  Byte* at() const { return pieces_[piece_].data() + offset_; }
  // The bytes from here to the end of the current piece (0 at the end).
  int64_t left() const {
    return piece_ < pieces_.size()
               ? static_cast<int64_t>(pieces_[piece_].size()) - offset_
               : 0;
  }
  void Skip(int64_t n) {
    offset_ += n;
    Settle();
  }
  // The next n bytes, across pieces, copied out of or into them.
  void Read(void* to, int64_t n) {
    for (char* p = static_cast<char*>(to); n > 0;) {
      const int64_t m = std::min(n, left());
      std::memcpy(p, at(), static_cast<size_t>(m));
      p += m;
      n -= m;
      Skip(m);
    }
  }
  void Write(const void* from, int64_t n) {
    for (const char* p = static_cast<const char*>(from); n > 0;) {
      const int64_t m = std::min(n, left());
      std::memcpy(at(), p, static_cast<size_t>(m));
      p += m;
      n -= m;
      Skip(m);
    }
  }

 private:
  // Past the pieces that end here (and the empty ones).
  void Settle() {
    while (piece_ < pieces_.size() &&
           offset_ >= static_cast<int64_t>(pieces_[piece_].size())) {
      offset_ -= static_cast<int64_t>(pieces_[piece_].size());
      ++piece_;
    }
  }

  absl::Span<const absl::Span<Byte>> pieces_;
  size_t piece_ = 0;
  int64_t offset_ = 0;
};

// Where each piece starts: a cursor at any byte, for the chunks.
template <typename Byte>
class PieceIndex {
 public:
  explicit PieceIndex(absl::Span<const absl::Span<Byte>> pieces)
      : pieces_(pieces) {
    starts_.reserve(pieces.size());
    int64_t at = 0;
    for (const absl::Span<Byte>& p : pieces) {
      starts_.push_back(at);
      at += static_cast<int64_t>(p.size());
    }
  }
  // Precondition: `at` is below the pieces' total.
  PieceCursor<Byte> At(int64_t at) const {
    const size_t piece = static_cast<size_t>(
        std::upper_bound(starts_.begin(), starts_.end(), at) - starts_.begin() -
        1);
    return PieceCursor<Byte>(pieces_, piece, at - starts_[piece]);
  }

 private:
  absl::Span<const absl::Span<Byte>> pieces_;
  std::vector<int64_t> starts_;
};

// The bounce buffer of each operand, and the shortest run of values given a
// kernel call of its own where they lie (shorter ones are bounced with their
// neighbours).
constexpr int64_t kBounceBytes = 16384;
constexpr int64_t kMinRunValues = 16;

// kernel(x, g, y, n) over the values [begin, end) of `y` (written: x, or g
// when y_is_g) and `other` (read: the other operand of a VJP, else null):
// where the values of every operand lie whole in one piece, in place; a
// value that straddles pieces, short runs, and half values at an odd
// address go through the bounce buffers and back. (The half kernels' table
// lookup reads and writes the values as uint16_t, which needs 2-byte
// alignment, though Highway's half types are packed: alignof 1. The
// float32 and float64 kernels load and store x, g and y only through
// unaligned vector loads and stores or memcpy, and test y's alignment
// before their aligned and non-temporal stores: core/activation-inl.h,
// MapArray.)
template <typename T, typename Kernel>
void MapInPlace(const PieceIndex<char>& y, const PieceIndex<const char>* other,
                bool y_is_g, int64_t begin, int64_t end, const Kernel& kernel) {
  constexpr int64_t kSize = sizeof(T);
  constexpr int64_t kBounceValues = kBounceBytes / kSize;
  PieceCursor<char> yc = y.At(begin * kSize);
  PieceCursor<const char> oc;
  if (other != nullptr) oc = other->At(begin * kSize);
  // The values from here (at most `remaining`) whole in one piece of each.
  const auto whole = [&](int64_t remaining) {
    int64_t n = std::min(remaining, yc.left() / kSize);
    if (other != nullptr) n = std::min(n, oc.left() / kSize);
    return n;
  };
  const auto aligned = [](const char* p) {
    return reinterpret_cast<uintptr_t>(p) % sizeof(T) == 0;
  };
  // How many values from here run where they lie (0: bounce them).
  const auto in_place = [&](int64_t remaining) -> int64_t {
    const int64_t n = whole(remaining);
    if (kIsHalf<T> && n > 0 &&
        (!aligned(yc.at()) || (other != nullptr && !aligned(oc.at())))) {
      return 0;
    }
    return n >= kMinRunValues || (n > 0 && n == remaining) ? n : 0;
  };
  // kernel over n values: y's at yp (written), the other's at op.
  const auto run = [&](T* yp, const T* op, int64_t n) {
    if (other == nullptr) {
      kernel(yp, nullptr, yp, n);
    } else if (y_is_g) {
      kernel(op, yp, yp, n);
    } else {
      kernel(yp, op, yp, n);
    }
  };
  alignas(64) char yb[kBounceBytes];
  alignas(64) char ob[kBounceBytes];
  T* const yt = reinterpret_cast<T*>(yb);
  T* const ot = reinterpret_cast<T*>(ob);
  for (int64_t i = begin; i < end;) {
    if (const int64_t n = in_place(end - i); n > 0) {
      run(reinterpret_cast<T*>(yc.at()),
          other != nullptr ? reinterpret_cast<const T*>(oc.at()) : nullptr, n);
      yc.Skip(n * kSize);
      if (other != nullptr) oc.Skip(n * kSize);
      i += n;
      continue;
    }
    PieceCursor<char> out = yc;  // where the results go back
    int64_t m = 0;
    do {
      const int64_t k =
          std::max<int64_t>(1, std::min(whole(end - i - m), kBounceValues - m));
      yc.Read(yt + m, k * kSize);
      if (other != nullptr) oc.Read(ot + m, k * kSize);
      m += k;
    } while (i + m < end && m < kBounceValues && in_place(end - i - m) == 0);
    run(yt, ot, m);
    out.Write(yt, m * kSize);
    i += m;
  }
}

// MapInPlace over a tensor's `total` values in chunks, as Run's chunks go
// (in parallel when large): each chunk finds its own pieces.
template <typename T, typename Kernel>
absl::Status MapChunksInPlace(const ComputeContext& context, int64_t total,
                              BytePieces y, const ConstBytePieces* other,
                              bool y_is_g, const Kernel& kernel) {
  const PieceIndex<char> ys(y);
  std::optional<PieceIndex<const char>> os;
  if (other != nullptr) os.emplace(*other);
  return RunChunkedParallel(
      context, total, context.chunk_elements, 1, [&](int64_t b, int64_t e) {
        MapInPlace<T>(ys, os ? &*os : nullptr, y_is_g, b, e, kernel);
      });
}

}  // namespace

absl::Status NeedsComputeThread() {
  absl::Status status = absl::UnavailableError(
      "internal: the work is too large for the gRPC thread");
  status.SetPayload(kNeedsComputeThreadUrl, absl::Cord("1"));
  return status;
}

bool IsNeedsComputeThread(const absl::Status& status) {
  return status.GetPayload(kNeedsComputeThreadUrl).has_value();
}

absl::Status ComputeContext::CheckAlive() const {
  // The deadline first: gRPC also marks a call cancelled when it expires,
  // and the client should hear the more specific reason.
  if (std::chrono::system_clock::now() >= deadline) {
    return absl::DeadlineExceededError(
        "the call's deadline passed while computing; the rest of the work "
        "was skipped");
  }
  if (is_cancelled && is_cancelled()) {
    return absl::CancelledError(
        "the call was cancelled; the rest of the work was skipped");
  }
  return absl::OkStatus();
}

absl::Status Run(const EvaluateOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  return RunSameSize(op.x, "the Evaluate response", context, sink, [&](auto t) {
    return EvaluateAs<decltype(t)>(op, context, sink);
  });
}

absl::Status Run(const DerivativeOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  return RunSameSize(op.x, "the Derivative response", context, sink,
                     [&](auto t) {
                       using T = decltype(t);
                       return DerivativeInto<T>(
                           op.function, op.order, op.x.values<T>(), context,
                           sink->AllocateAs<T>(OutputRole::kOutput,
                                               op.x.shape(), op.x.size()));
                     });
}

absl::Status Run(const VjpOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  return RunSameSize(
      op.x, "the Derivative response", context, sink,
      [&](auto t) { return VjpAs<decltype(t)>(op, context, sink); });
}

absl::Status Run(const std::variant<DerivativeOp, VjpOp>& op,
                 const ComputeContext& context, OutputSink* sink) {
  return std::visit([&](const auto& o) { return Run(o, context, sink); }, op);
}

// kernel(in, out) (spans of x's value type) over each chunk of x's pieces,
// in place: the elementwise f and derivatives.
template <class Kernel>
absl::Status UnaryInPlace(const TensorView& xt, BytePieces x,
                          const ComputeContext& context, const Kernel& kernel) {
  return VisitDType(xt.dtype(), [&](auto t) {
    using T = decltype(t);
    return MapChunksInPlace<T>(context, xt.size(), x, nullptr, false,
                               [&](const T* in, const T*, T* out, int64_t n) {
                                 const size_t count = static_cast<size_t>(n);
                                 kernel(absl::MakeConstSpan(in, count),
                                        absl::MakeSpan(out, count));
                               });
  });
}

// A slab's values of type T at byte `at` of `pieces`: where they lie when
// they lie whole in one piece (and aligned), else read into *buffer (of one
// slab, allocated on first use). Whether they were read.
template <typename T, typename Byte>
bool SlabAt(const PieceIndex<Byte>& pieces, int64_t at, int64_t slab,
            std::unique_ptr<T[]>* buffer, T** values) {
  const int64_t bytes = slab * static_cast<int64_t>(sizeof(T));
  PieceCursor<Byte> cursor = pieces.At(at);
  *values = reinterpret_cast<T*>(const_cast<char*>(cursor.at()));
  if (cursor.left() >= bytes &&
      reinterpret_cast<uintptr_t>(*values) % sizeof(T) == 0) {
    return false;
  }
  if (*buffer == nullptr) buffer->reset(new T[slab]);
  *values = buffer->get();
  cursor.Read(*values, bytes);
  return true;
}

// kernel(view, y, other) on each slab of a vector function along axis view
// v (one outer index: its size × inner values, contiguous in the tensor),
// in place: y's slab (and other's, when `other` is not null) where it lies
// when it lies whole in one piece, else in a buffer of one slab, y's then
// written back. `view` is v for one slab; the kernels are Run's, on the
// same rows, and may write y over their operands (core/softmax.h), so the
// answer is the same to the bit.
template <typename T, typename Kernel>
absl::Status SlabsInPlace(const AxisView& v, BytePieces y,
                          const ConstBytePieces* other,
                          const ComputeContext& context, const Kernel& kernel) {
  const int64_t slab = v.size * v.inner;
  if (slab == 0) return context.CheckAlive();  // no values: nothing to do
  const AxisView one{1, v.size, v.inner};
  const int64_t bytes = slab * static_cast<int64_t>(sizeof(T));
  const PieceIndex<char> ys(y);
  std::optional<PieceIndex<const char>> os;
  if (other != nullptr) os.emplace(*other);
  return RunRows(context, v, slab, [&](int64_t b, int64_t e) {
    std::unique_ptr<T[]> y_buffer;
    std::unique_ptr<T[]> o_buffer;
    const size_t n = static_cast<size_t>(slab);
    for (int64_t o = b; o < e; ++o) {
      T* y_values = nullptr;
      const bool bounced = SlabAt<T>(ys, o * bytes, slab, &y_buffer, &y_values);
      T* o_values = nullptr;
      if (os) SlabAt<T>(*os, o * bytes, slab, &o_buffer, &o_values);
      kernel(one, absl::MakeSpan(y_values, n),
             absl::MakeConstSpan(o_values, os ? n : 0));
      if (bounced) ys.At(o * bytes).Write(y_values, bytes);
    }
  });
}

absl::Status RunInPlace(const EvaluateOp& op, BytePieces x,
                        const ComputeContext& context, const OutputSink& sink) {
  if (absl::Status s =
          CheckSameSizeResponse(context, sink, op.x, "the Evaluate response");
      !s.ok()) {
    return s;
  }
  const ResolvedFunction& f = op.function;
  if (op.axis) {  // softmax or log_softmax, y written over x
    return VisitDType(op.x.dtype(), [&](auto t) {
      using T = decltype(t);
      return SlabsInPlace<T>(
          op.axis->view, x, nullptr, context,
          [&](AxisView one, absl::Span<T> y, absl::Span<const T>) {
            SoftmaxForward<T>(f.function, one, y, y);
          });
    });
  }
  // identity's float32 and float64 values are their own results (the
  // kernel copies each value's bits, NaNs included): nothing to compute,
  // nothing to pass over. Not so for the half types, whose kernel quiets a
  // signaling NaN (widened to float32 and back; core/activation_half_exact.cc).
  if (f.function == Function::kIdentity &&
      (op.x.dtype() == DType::kFloat32 || op.x.dtype() == DType::kFloat64)) {
    return context.CheckAlive();
  }
  return UnaryInPlace(op.x, x, context, [&](auto in, auto out) {
    using T = typename decltype(out)::value_type;
    Evaluate<T>(f.function, f.alpha, in, out);
  });
}

absl::Status RunInPlace(const DerivativeOp& op, BytePieces x,
                        const ComputeContext& context, const OutputSink& sink) {
  if (absl::Status s =
          CheckSameSizeResponse(context, sink, op.x, "the Derivative response");
      !s.ok()) {
    return s;
  }
  const ResolvedFunction& f = op.function;
  return UnaryInPlace(op.x, x, context, [&](auto in, auto out) {
    using T = typename decltype(out)::value_type;
    Derivative<T>(f.function, f.alpha, op.order, in, out);
  });
}

absl::Status RunInPlace(const VjpOp& op, BytePieces y, ConstBytePieces other,
                        bool y_is_g, const ComputeContext& context,
                        const OutputSink& sink) {
  if (absl::Status s =
          CheckSameSizeResponse(context, sink, op.x, "the Derivative response");
      !s.ok()) {
    return s;
  }
  const ResolvedFunction& f = op.function;
  if (op.axis) {  // softmax's or log_softmax's, y written over x or g
    return VisitDType(op.x.dtype(), [&](auto t) {
      using T = decltype(t);
      return SlabsInPlace<T>(
          op.axis->view, y, &other, context,
          [&](AxisView one, absl::Span<T> ys, absl::Span<const T> os) {
            const absl::Span<const T> in = ys;
            SoftmaxVjp<T>(f.function, one, y_is_g ? os : in, y_is_g ? in : os,
                          ys);
          });
    });
  }
  return VisitDType(op.x.dtype(), [&](auto t) {
    using T = decltype(t);
    return MapChunksInPlace<T>(
        context, op.x.size(), y, &other, y_is_g,
        [&](const T* in, const T* grad, T* out, int64_t n) {
          const size_t count = static_cast<size_t>(n);
          Vjp<T>(f.function, f.alpha, absl::MakeConstSpan(in, count),
                 absl::MakeConstSpan(grad, count), absl::MakeSpan(out, count));
        });
  });
}

absl::Status Run(const JacobianOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  if (!op.axis && !op.dense) {
    return RunSameSize(op.x, "the Jacobian response", context, sink,
                       [&](auto t) {
                         using T = decltype(t);
                         return DerivativeInto<T>(
                             op.function, 1, op.x.values<T>(), context,
                             sink->AllocateAs<T>(OutputRole::kJacobianDiagonal,
                                                 op.x.shape(), op.x.size()));
                       });
  }
  const DenseLayout layout = DenseJacobianLayout(op);
  if (absl::Status s = CheckDenseJacobianSize(op, layout, context, *sink);
      !s.ok()) {
    return s;
  }
  return Finished(VisitDType(op.x.dtype(),
                             [&](auto t) {
                               return DenseJacobianAs<decltype(t)>(
                                   op, layout, context, sink);
                             }),
                  sink);
}

absl::Status Run(const CrossEntropyOp& op, const ComputeContext& context,
                 OutputSink* sink) {
  const TensorView& logits = op.logits;
  const bool per_row = op.reduction == Reduction::kNone;
  const DType dtype = logits.dtype();
  const int64_t logits_bytes =
      sink->WireBytes(dtype, logits.rank(), logits.size());
  int64_t bytes = sink->WireBytes(dtype, per_row ? logits.rank() - 1 : 0,
                                  per_row ? op.rows : 1);
  bytes = AddBytes(bytes, logits_bytes);
  if (op.return_probabilities) bytes = AddBytes(bytes, logits_bytes);
  if (absl::Status s = CheckResponseBytes(
          context, bytes, "the SoftmaxCrossEntropy response",
          op.return_probabilities
              ? "leave return_probabilities unset, or split the batch into "
                "smaller requests"
              : "split the batch into smaller requests");
      !s.ok()) {
    return s;
  }
  return Finished(VisitDType(dtype,
                             [&](auto t) {
                               return CrossEntropyAs<decltype(t)>(op, context,
                                                                  sink);
                             }),
                  sink);
}

absl::StatusOr<GradientFlowReport> Run(const AnalyzeOp& op,
                                       const ComputeContext& context) {
  GradientFlowCounts counts;
  const absl::Status status = VisitDType(op.x.dtype(), [&](auto t) {
    using T = decltype(t);
    const absl::Span<const T> xs = op.x.values<T>();
    return RunChunked(context, op.x.size(), context.chunk_elements,
                      [&](int64_t b, int64_t e) {
                        AccumulateGradientFlow<T>(
                            op.function.function, op.function.alpha, op.epsilon,
                            xs.subspan(b, e - b), &counts);
                      });
  });
  if (!status.ok()) return status;
  return SummarizeGradientFlow(counts, op.layers);
}

}  // namespace actsvc::server
