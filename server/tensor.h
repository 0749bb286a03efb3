// Tensors as every protocol hands them to the one request path: a DType of
// our own, a TensorView over request bytes, and the OutputSink through which
// compute writes straight into the memory that becomes the response.
#ifndef ACTSVC_SERVER_TENSOR_H_
#define ACTSVC_SERVER_TENSOR_H_

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/half.h"

namespace actsvc::server {

// The element types of request and response tensors. Adding one means
// adding it to kDTypes, to every switch on DType (tensor.cc, VisitDType,
// each protocol's name for it) and to DTypeOfStorage; each switch fails
// loudly on a value it does not know. kFloat16 is IEEE binary16, kBFloat16
// bfloat16: 2 bytes each, computed in float32 by the core.
enum class DType : uint8_t { kFloat32, kFloat64, kFloat16, kBFloat16 };
// Every DType, in enum order: each protocol parses a dtype's name by
// looking it up here, as the inverse of its switch from DType to name.
inline constexpr DType kDTypes[] = {DType::kFloat32, DType::kFloat64,
                                    DType::kFloat16, DType::kBFloat16};

// Bytes per element.
int64_t DTypeSize(DType dtype);
// "FLOAT32", as the own API names it.
absl::string_view DTypeName(DType dtype);
// Aborts the process: a DType value outside the enum is a bug, not input.
[[noreturn]] void UnknownDType(DType dtype);

// Calls fn(T{}) with T the C++ type values of `dtype` are stored as, in
// requests, responses and the core's array API: float, double, Float16 or
// BFloat16 (core/half.h). The storage type is not always the compute type:
// the core computes the half types in float32 lanes and rounds once, so
// code here never does arithmetic on T (ToDouble reads a value).
template <typename Fn>
decltype(auto) VisitDType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32:
      return fn(float{});
    case DType::kFloat64:
      return fn(double{});
    case DType::kFloat16:
      return fn(Float16{});
    case DType::kBFloat16:
      return fn(BFloat16{});
  }
  UnknownDType(dtype);
}

// The DType whose values are stored as T: float, double, Float16 or
// BFloat16 (VisitDType's inverse; any other T does not compile).
template <typename T>
constexpr DType DTypeOfStorage() {
  if constexpr (std::is_same_v<T, float>) return DType::kFloat32;
  if constexpr (std::is_same_v<T, double>) return DType::kFloat64;
  if constexpr (std::is_same_v<T, Float16>) return DType::kFloat16;
  if constexpr (std::is_same_v<T, BFloat16>) return DType::kBFloat16;
}
template <typename T>
inline constexpr DType kDTypeOf = DTypeOfStorage<T>();

// "[2,3]".
std::string ShapeString(absl::Span<const int64_t> shape);

// The product of dims (all >= 0), or -1 when it overflows int64. A zero dim
// wins over an overflow among the others: the tensor is empty.
int64_t CheckedProduct(absl::Span<const int64_t> dims);

// The element count a client declared: the product of `shape`, or 0 when a
// dim is negative or the product overflows (no tensor has that shape;
// validation refuses it with INVALID_ARGUMENT, not as over a limit).
int64_t DeclaredElements(absl::Span<const int64_t> shape);

// The bytes `elements` values of `element_size` take on the wire in a
// tensor of the given rank, with a bound on the framing; -1 on overflow.
int64_t TensorWireBytes(int64_t elements, int64_t element_size, int rank);

// A request tensor, validated: dtype, shape and exactly shape's product of
// values. It points into the request it was read from, which must outlive
// it, except when the values had to be copied for alignment.
class TensorView {
 public:
  // Checks `shape` (dims >= 0, element count and byte count within int64)
  // and returns a view of its values at `data`, which must hold exactly
  // that many values of `dtype` (the caller checks the count, in its own
  // words). Errors are INVALID_ARGUMENT and name the tensor as `name`.
  static absl::StatusOr<TensorView> Make(std::string name, DType dtype,
                                         absl::Span<const int64_t> shape,
                                         const void* data);
  // The same for float32 values of a half dtype (a typed request's
  // float_data): the view owns them, each rounded to `dtype` once (nearest,
  // ties to even). Precondition: dtype is kFloat16 or kBFloat16 and
  // `values` holds shape's product of values.
  static absl::StatusOr<TensorView> MakeRounded(std::string name, DType dtype,
                                                absl::Span<const int64_t> shape,
                                                absl::Span<const float> values);
  // Checks `shape` as Make does; stores the product in *size.
  static absl::Status CheckShape(absl::string_view name, DType dtype,
                                 absl::Span<const int64_t> shape,
                                 int64_t* size);

  // As errors name it: "input", "upstream_grad".
  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  absl::Span<const int64_t> shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t size() const { return size_; }
  int64_t bytes() const { return size_ * DTypeSize(dtype_); }

  // Precondition: kDTypeOf<T> == dtype().
  template <typename T>
  absl::Span<const T> values() const {
    const void* data = aligned_copy_.empty() ? data_ : aligned_copy_.data();
    return absl::MakeConstSpan(static_cast<const T*>(data), size_);
  }

 private:
  // A view of `shape` without its values yet: Make and MakeRounded's
  // checks and header.
  static absl::StatusOr<TensorView> Header(std::string name, DType dtype,
                                           absl::Span<const int64_t> shape);
  // Sizes aligned_copy_ for the view's values and returns where they go.
  void* AllocateCopy();

  std::string name_;
  DType dtype_ = DType::kFloat32;
  absl::Span<const int64_t> shape_;
  int64_t size_ = 0;
  const void* data_ = nullptr;
  // Holds the values when they were not aligned for the element type, or
  // were rounded from float32 (then data_ is unused); double elements suit
  // every dtype.
  std::vector<double> aligned_copy_;
};

// The tensors a response holds; a protocol names each in its own words.
enum class OutputRole {
  kOutput,            // f(x), f'(x), f''(x) or the VJP
  kJacobianDiagonal,  // the Jacobian of an elementwise function, as f'(x)
  kJacobianDense,     // one [c, c] matrix per row
  kLoss,              // cross-entropy: a scalar, or one value per row
  kGradLogits,
  kProbabilities,
};

// Where compute writes a response's tensors. Each protocol supplies one that
// hands out the memory of its response, so values are written once, where
// they will be sent from.
class OutputSink {
 public:
  virtual ~OutputSink() = default;

  // The bytes an output tensor of `elements` values of `dtype` in `rank`
  // dims takes in the response (-1 when it overflows): the response limit
  // is checked against the sum of these before any work is done.
  virtual int64_t WireBytes(DType dtype, int rank, int64_t elements) const {
    return TensorWireBytes(elements, DTypeSize(dtype), rank);
  }

  // Memory for the `elements` values of `dtype` of output `role`, whose
  // shape is `shape`, aligned for the element type and valid until the
  // sink is destroyed. Each role is allocated at most once per response.
  virtual void* Allocate(OutputRole role, DType dtype,
                         absl::Span<const int64_t> shape, int64_t elements) = 0;

  // Called once after compute wrote every output.
  virtual void Finish() {}

  template <typename T>
  absl::Span<T> AllocateAs(OutputRole role, absl::Span<const int64_t> shape,
                           int64_t elements) {
    return absl::MakeSpan(
        static_cast<T*>(Allocate(role, kDTypeOf<T>, shape, elements)),
        elements);
  }
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_TENSOR_H_
