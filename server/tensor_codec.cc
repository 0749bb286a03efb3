#include "server/tensor_codec.h"

#include <cstring>

#include "absl/base/config.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace actsvc::server {
namespace {

// raw_data is little-endian on the wire and is used in place.
#ifndef ABSL_IS_LITTLE_ENDIAN
#error "raw_data decoding assumes a little-endian host"
#endif

std::string DataTypeString(v1::DataType dtype) {
  const std::string& name = v1::DataType_Name(dtype);
  return name.empty() ? absl::StrCat(static_cast<int>(dtype)) : name;
}

int64_t ElementSize(v1::DataType dtype) {
  return dtype == v1::FLOAT32 ? sizeof(float) : sizeof(double);
}

}  // namespace

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

int64_t CheckedProduct(absl::Span<const int64_t> dims) {
  // A zero dim wins over an overflow among the others: the tensor is empty.
  for (int64_t d : dims) {
    if (d == 0) return 0;
  }
  int64_t product = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(product, d, &product)) return -1;
  }
  return product;
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

absl::StatusOr<TensorView> DecodeTensor(const v1::Tensor& tensor,
                                        absl::string_view name) {
  TensorView view;
  const v1::DataType dtype = tensor.dtype();
  if (dtype != v1::FLOAT32 && dtype != v1::FLOAT64) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".dtype is ", DataTypeString(dtype),
                     ", expected FLOAT32 or FLOAT64"));
  }
  view.dtype_ = dtype;
  view.shape_ = absl::MakeConstSpan(tensor.shape().data(), tensor.shape_size());
  for (int i = 0; i < tensor.shape_size(); ++i) {
    if (tensor.shape(i) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".shape[", i, "] = ", tensor.shape(i), " is negative (shape ",
          ShapeString(view.shape_), "); every dim must be >= 0"));
    }
  }
  const int64_t element_size = ElementSize(dtype);
  const int64_t size = CheckedProduct(view.shape_);
  int64_t expected_bytes;
  if (size < 0 || __builtin_mul_overflow(size, element_size, &expected_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".shape ", ShapeString(view.shape_),
                     " has too many elements: the byte count overflows int64"));
  }
  view.size_ = size;

  const bool has_raw = !tensor.raw_data().empty();
  const bool has_float = tensor.float_data_size() > 0;
  const bool has_double = tensor.double_data_size() > 0;
  if (has_raw + has_float + has_double > 1) {
    std::vector<absl::string_view> fields;
    if (has_raw) fields.push_back("raw_data");
    if (has_float) fields.push_back("float_data");
    if (has_double) fields.push_back("double_data");
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has data in ", absl::StrJoin(fields, " and "),
                     "; set exactly one of raw_data, float_data, double_data"));
  }
  if (has_float && dtype != v1::FLOAT32) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".float_data is set but ", name, ".dtype is ",
                     DataTypeString(dtype),
                     "; float_data needs FLOAT32 (use double_data "
                     "or raw_data)"));
  }
  if (has_double && dtype != v1::FLOAT64) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".double_data is set but ", name, ".dtype is ",
                     DataTypeString(dtype),
                     "; double_data needs FLOAT64 (use float_data "
                     "or raw_data)"));
  }

  const std::string layout =
      absl::StrCat("shape ", ShapeString(view.shape_), " x ", element_size,
                   " bytes of ", DataTypeString(dtype));
  if (has_float || has_double) {
    const int64_t count =
        has_float ? tensor.float_data_size() : tensor.double_data_size();
    if (count != size) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, has_float ? ".float_data" : ".double_data",
                       " has ", count, " values, expected ", size, " (shape ",
                       ShapeString(view.shape_), ")"));
    }
    view.encoding_ = Encoding::kTyped;
    view.data_ = has_float
                     ? static_cast<const void*>(tensor.float_data().data())
                     : static_cast<const void*>(tensor.double_data().data());
    return view;
  }

  // Raw, or no data at all, which only an empty tensor may have.
  view.encoding_ = Encoding::kRaw;
  const std::string& raw = tensor.raw_data();
  if (!has_raw && size > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has no data, expected ", expected_bytes, " bytes in ", name,
        ".raw_data (", layout, ") or ", size, " values in ", name,
        dtype == v1::FLOAT32 ? ".float_data" : ".double_data"));
  }
  if (static_cast<int64_t>(raw.size()) != expected_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".raw_data has ", raw.size(), " bytes, expected ",
                     expected_bytes, " (", layout, ")"));
  }
  if (reinterpret_cast<uintptr_t>(raw.data()) % element_size == 0) {
    view.data_ = raw.data();
  } else {
    view.aligned_copy_.resize((raw.size() + sizeof(double) - 1) /
                              sizeof(double));
    std::memcpy(view.aligned_copy_.data(), raw.data(), raw.size());
  }
  return view;
}

}  // namespace actsvc::server
