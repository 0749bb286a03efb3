#include "server/tensor.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace actsvc::server {

// Request bytes are little-endian on every wire we speak and used in place.
#ifndef ABSL_IS_LITTLE_ENDIAN
#error "tensor decoding assumes a little-endian host"
#endif

// The size of the type VisitDType stores the values as: 4, 8, and 2 for the
// 16-bit patterns of core/half.h.
static_assert(sizeof(Float16) == 2 && sizeof(BFloat16) == 2);
int64_t DTypeSize(DType dtype) {
  return VisitDType(dtype,
                    [](auto t) { return static_cast<int64_t>(sizeof(t)); });
}

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "FLOAT32";
    case DType::kFloat64:
      return "FLOAT64";
    case DType::kFloat16:
      return "FLOAT16";
    case DType::kBFloat16:
      return "BFLOAT16";
  }
  UnknownDType(dtype);
}

void UnknownDType(DType dtype) {
  std::fprintf(stderr, "unknown DType value %d\n", static_cast<int>(dtype));
  std::abort();
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

int64_t CheckedProduct(absl::Span<const int64_t> dims) {
  for (int64_t d : dims) {
    if (d == 0) return 0;
  }
  int64_t product = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(product, d, &product)) return -1;
  }
  return product;
}

int64_t DeclaredElements(absl::Span<const int64_t> shape) {
  int64_t elements = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) return 0;
  }
  for (const int64_t dim : shape) {
    if (__builtin_mul_overflow(elements, dim, &elements)) return 0;
  }
  return elements;
}

int64_t TensorWireBytes(int64_t elements, int64_t element_size, int rank) {
  int64_t bytes;
  if (elements < 0 || __builtin_mul_overflow(elements, element_size, &bytes)) {
    return -1;
  }
  // Tags, length prefixes and dtype: a few bytes; each dim a varint of at
  // most 10 bytes plus its share of the packed length.
  const int64_t framing = 32 + 11 * static_cast<int64_t>(rank);
  if (__builtin_add_overflow(bytes, framing, &bytes)) return -1;
  return bytes;
}

absl::Status TensorView::CheckShape(absl::string_view name, DType dtype,
                                    absl::Span<const int64_t> shape,
                                    int64_t* size) {
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".shape[", i, "] = ", shape[i], " is negative (shape ",
          ShapeString(shape), "); every dim must be >= 0"));
    }
  }
  const int64_t elements = CheckedProduct(shape);
  int64_t bytes;
  if (elements < 0 ||
      __builtin_mul_overflow(elements, DTypeSize(dtype), &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".shape ", ShapeString(shape),
                     " has too many elements: the byte count overflows int64"));
  }
  *size = elements;
  return absl::OkStatus();
}

absl::StatusOr<TensorView> TensorView::Header(std::string name, DType dtype,
                                              absl::Span<const int64_t> shape) {
  TensorView view;
  if (absl::Status s = CheckShape(name, dtype, shape, &view.size_); !s.ok()) {
    return s;
  }
  view.name_ = std::move(name);
  view.dtype_ = dtype;
  view.shape_ = shape;
  return view;
}

void* TensorView::AllocateCopy() {
  aligned_copy_.resize((bytes() + sizeof(double) - 1) / sizeof(double));
  return aligned_copy_.data();
}

absl::StatusOr<TensorView> TensorView::Make(std::string name, DType dtype,
                                            absl::Span<const int64_t> shape,
                                            const void* data) {
  absl::StatusOr<TensorView> view = Header(std::move(name), dtype, shape);
  if (!view.ok()) return view;
  if (reinterpret_cast<uintptr_t>(data) % DTypeSize(dtype) == 0) {
    view->data_ = data;
  } else {
    std::memcpy(view->AllocateCopy(), data, view->bytes());
  }
  return view;
}

absl::StatusOr<TensorView> TensorView::MakeRounded(
    std::string name, DType dtype, absl::Span<const int64_t> shape,
    absl::Span<const float> values) {
  absl::StatusOr<TensorView> view = Header(std::move(name), dtype, shape);
  if (!view.ok()) return view;
  void* data = view->AllocateCopy();
  switch (dtype) {
    case DType::kFloat16:
      NarrowToHalf(values,
                   absl::MakeSpan(static_cast<Float16*>(data), view->size_));
      return view;
    case DType::kBFloat16:
      NarrowToHalf(values,
                   absl::MakeSpan(static_cast<BFloat16*>(data), view->size_));
      return view;
    case DType::kFloat32:
    case DType::kFloat64:
      std::fprintf(stderr, "MakeRounded: %s is not a half dtype\n",
                   DTypeName(dtype).data());
      std::abort();  // a bug in the caller
  }
  UnknownDType(dtype);
}

}  // namespace actsvc::server
