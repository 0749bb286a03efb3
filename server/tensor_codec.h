// Tensor decoding (validation into a typed view) and encoding (sizing a
// response tensor so that core writes straight into it).
#ifndef ACTSVC_SERVER_TENSOR_CODEC_H_
#define ACTSVC_SERVER_TENSOR_CODEC_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "actsvc/v1/activation.pb.h"

namespace actsvc::server {

// How a tensor's values travel: packed bytes or a repeated field.
enum class Encoding { kRaw, kTyped };

template <typename T>
inline constexpr v1::DataType kDataTypeOf =
    std::is_same_v<T, float> ? v1::FLOAT32 : v1::FLOAT64;

// "[2,3]".
std::string ShapeString(absl::Span<const int64_t> shape);

// A validated tensor. It points into the message it was decoded from, which
// must outlive it, except when raw bytes had to be copied for alignment.
class TensorView {
 public:
  v1::DataType dtype() const { return dtype_; }
  Encoding encoding() const { return encoding_; }
  absl::Span<const int64_t> shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t size() const { return size_; }

  // Precondition: kDataTypeOf<T> == dtype().
  template <typename T>
  absl::Span<const T> values() const {
    const void* data = aligned_copy_.empty() ? data_ : aligned_copy_.data();
    return absl::MakeConstSpan(static_cast<const T*>(data), size_);
  }

 private:
  friend absl::StatusOr<TensorView> DecodeTensor(const v1::Tensor& tensor,
                                                 absl::string_view name);

  v1::DataType dtype_ = v1::DATA_TYPE_UNSPECIFIED;
  Encoding encoding_ = Encoding::kRaw;
  absl::Span<const int64_t> shape_;
  int64_t size_ = 0;
  const void* data_ = nullptr;
  // Holds the values when raw_data was not aligned for the element type
  // (then data_ is unused); double elements suit both float and double.
  std::vector<double> aligned_copy_;
};

// Validates `tensor` (dtype, dims, exactly one encoding, value count) and
// returns its view. Errors are INVALID_ARGUMENT and name the field as
// `name`.field, with the expected and the actual value.
absl::StatusOr<TensorView> DecodeTensor(const v1::Tensor& tensor,
                                        absl::string_view name);

// The product of dims (all >= 0), or -1 when it overflows int64.
int64_t CheckedProduct(absl::Span<const int64_t> dims);

// The bytes `elements` values of `element_size` take on the wire in a
// tensor of the given rank, with a bound on the framing; -1 on overflow.
int64_t TensorWireBytes(int64_t elements, int64_t element_size, int rank);

// Sizes a response tensor: shape, dtype and `size` values in `encoding`,
// then hands out the memory to compute into. Call Commit() after writing.
template <typename T>
class OutputTensor {
 public:
  OutputTensor(v1::Tensor* out, absl::Span<const int64_t> shape,
               Encoding encoding, int64_t size)
      : out_(out) {
    out->Clear();
    out->mutable_shape()->Add(shape.begin(), shape.end());
    out->set_dtype(kDataTypeOf<T>);
    if (encoding == Encoding::kTyped) {
      T* data = ResizeTyped(out, size);
      values_ = absl::MakeSpan(data, size);
      return;
    }
    std::string* raw = out->mutable_raw_data();
    raw->resize(static_cast<size_t>(size) * sizeof(T));
    if (reinterpret_cast<uintptr_t>(raw->data()) % alignof(T) == 0) {
      values_ = absl::MakeSpan(reinterpret_cast<T*>(raw->data()), size);
    } else {
      scratch_.resize(size);
      values_ = absl::MakeSpan(scratch_);
    }
  }
  OutputTensor(const OutputTensor&) = delete;
  OutputTensor& operator=(const OutputTensor&) = delete;

  absl::Span<T> values() { return values_; }

  // Moves the values into raw_data when they were computed in scratch.
  void Commit() {
    if (!scratch_.empty()) {
      std::memcpy(out_->mutable_raw_data()->data(), scratch_.data(),
                  scratch_.size() * sizeof(T));
      scratch_.clear();
    }
  }

 private:
  static T* ResizeTyped(v1::Tensor* out, int64_t size) {
    if constexpr (std::is_same_v<T, float>) {
      out->mutable_float_data()->Resize(static_cast<int>(size), 0.0f);
      return out->mutable_float_data()->mutable_data();
    } else {
      out->mutable_double_data()->Resize(static_cast<int>(size), 0.0);
      return out->mutable_double_data()->mutable_data();
    }
  }

  v1::Tensor* out_;
  absl::Span<T> values_;
  std::vector<T> scratch_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_TENSOR_CODEC_H_
