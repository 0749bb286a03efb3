// RunInPlace (compute.h): Evaluate, Derivative and the VJP computed over
// the request's own memory, in pieces as the wire cut it, with the same
// chunks (chunks.h) and kernels as Run: elementwise functions value by
// value, softmax and log_softmax slab by slab.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/activation.h"
#include "core/softmax.h"
#include "server/chunks.h"
#include "server/compute.h"

namespace actsvc::server {
namespace {

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

// f's derivative of `order` over x's pieces, after the response check
// (naming `response`): Derivative's, and the diagonal Jacobian's (order 1).
absl::Status DerivativeInPlace(const ResolvedFunction& f, int order,
                               const TensorView& xt, BytePieces x,
                               const ComputeContext& context,
                               const OutputSink& sink,
                               absl::string_view response) {
  if (absl::Status s = CheckSameSizeResponse(context, sink, xt, response);
      !s.ok()) {
    return s;
  }
  return UnaryInPlace(xt, x, context, [&](auto in, auto out) {
    using T = typename decltype(out)::value_type;
    Derivative<T>(f.function, f.alpha, order, in, out);
  });
}

}  // namespace

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
  return DerivativeInPlace(op.function, op.order, op.x, x, context, sink,
                           "the Derivative response");
}

absl::Status RunInPlace(const JacobianOp& op, BytePieces x,
                        const ComputeContext& context, const OutputSink& sink) {
  if (op.axis || op.dense) {
    return absl::InternalError("only a diagonal Jacobian runs in place");
  }
  return DerivativeInPlace(op.function, 1, op.x, x, context, sink,
                           "the Jacobian response");
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

}  // namespace actsvc::server
