#include "client/tensor.h"

#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/format.h"
#include "core/half.h"

namespace actsvc::client {
namespace {

using actsvc::v1::DataType;

bool IsHalf(DataType dtype) {
  return dtype == actsvc::v1::FLOAT16 || dtype == actsvc::v1::BFLOAT16;
}

// The value of element i of packed little-endian `bytes` of `dtype`.
double ReadValue(absl::string_view bytes, size_t i, DataType dtype) {
  const char* p = bytes.data() + i * DtypeSize(dtype);
  switch (dtype) {
    case actsvc::v1::FLOAT64: {
      double v;
      std::memcpy(&v, p, 8);
      return v;
    }
    case actsvc::v1::FLOAT16:
    case actsvc::v1::BFLOAT16: {
      uint16_t bits;
      std::memcpy(&bits, p, 2);
      return dtype == actsvc::v1::FLOAT16 ? Float16BitsToFloat(bits)
                                          : BFloat16BitsToFloat(bits);
    }
    default: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
  }
}

// Appends v to `out` as `dtype`, rounded once.
void AppendValue(double v, DataType dtype, std::string* out) {
  char buf[8];
  switch (dtype) {
    case actsvc::v1::FLOAT64:
      std::memcpy(buf, &v, 8);
      break;
    case actsvc::v1::FLOAT16:
    case actsvc::v1::BFLOAT16: {
      const uint16_t bits = dtype == actsvc::v1::FLOAT16
                                ? Float16BitsFromDouble(v)
                                : BFloat16BitsFromDouble(v);
      std::memcpy(buf, &bits, 2);
      break;
    }
    default: {
      const float f = static_cast<float>(v);
      std::memcpy(buf, &f, 4);
      break;
    }
  }
  out->append(buf, DtypeSize(dtype));
}

}  // namespace

absl::StatusOr<Encoding> EncodingFromName(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "raw") return Encoding::kRaw;
  if (lower == "typed") return Encoding::kTyped;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown encoding '", name, "'; expected raw or typed"));
}

absl::StatusOr<DataType> DtypeFromName(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "float32" || lower == "f4" || lower == "float") {
    return actsvc::v1::FLOAT32;
  }
  if (lower == "float64" || lower == "f8" || lower == "double") {
    return actsvc::v1::FLOAT64;
  }
  if (lower == "float16" || lower == "f2" || lower == "half") {
    return actsvc::v1::FLOAT16;
  }
  if (lower == "bfloat16" || lower == "bf16") return actsvc::v1::BFLOAT16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name,
                   "'; expected float32, float64, float16 or bfloat16"));
}

absl::string_view DtypeName(DataType dtype) {
  switch (dtype) {
    case actsvc::v1::FLOAT32:
      return "float32";
    case actsvc::v1::FLOAT64:
      return "float64";
    case actsvc::v1::FLOAT16:
      return "float16";
    case actsvc::v1::BFLOAT16:
      return "bfloat16";
    default:
      return "unspecified";
  }
}

size_t DtypeSize(DataType dtype) {
  switch (dtype) {
    case actsvc::v1::FLOAT64:
      return 8;
    case actsvc::v1::FLOAT16:
    case actsvc::v1::BFLOAT16:
      return 2;
    default:
      return 4;
  }
}

double RoundToDtype(double v, DataType dtype) {
  switch (dtype) {
    case actsvc::v1::FLOAT64:
      return v;
    case actsvc::v1::FLOAT16:
      return Float16BitsToFloat(Float16BitsFromDouble(v));
    case actsvc::v1::BFLOAT16:
      return BFloat16BitsToFloat(BFloat16BitsFromDouble(v));
    default:
      return static_cast<float>(v);
  }
}

absl::StatusOr<int64_t> ElementCount(absl::Span<const int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape ", FormatShape(shape), " has a negative dimension"));
    }
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / 8 / d) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", FormatShape(shape), " is too large"));
    }
    count *= d;
  }
  return count;
}

actsvc::v1::Tensor MakeTensor(absl::Span<const int64_t> shape, DataType dtype,
                              absl::Span<const double> values,
                              Encoding encoding) {
  actsvc::v1::Tensor tensor;
  tensor.mutable_shape()->Add(shape.begin(), shape.end());
  tensor.set_dtype(dtype);
  if (encoding == Encoding::kTyped) {
    if (dtype == actsvc::v1::FLOAT64) {
      tensor.mutable_double_data()->Add(values.begin(), values.end());
    } else {
      tensor.mutable_float_data()->Reserve(static_cast<int>(values.size()));
      for (double v : values) {
        tensor.add_float_data(static_cast<float>(RoundToDtype(v, dtype)));
      }
    }
    return tensor;
  }
  std::string* raw = tensor.mutable_raw_data();
  raw->reserve(values.size() * DtypeSize(dtype));
  for (double v : values) AppendValue(v, dtype, raw);
  return tensor;
}

actsvc::v1::Tensor MakeTensorFromBytes(absl::Span<const int64_t> shape,
                                       DataType from_dtype,
                                       absl::string_view bytes,
                                       DataType to_dtype, Encoding encoding) {
  actsvc::v1::Tensor tensor;
  tensor.mutable_shape()->Add(shape.begin(), shape.end());
  tensor.set_dtype(to_dtype);
  std::string* raw = tensor.mutable_raw_data();
  if (from_dtype == to_dtype) {
    raw->assign(bytes.data(), bytes.size());
  } else {
    const size_t n = bytes.size() / DtypeSize(from_dtype);
    raw->reserve(n * DtypeSize(to_dtype));
    for (size_t i = 0; i < n; ++i) {
      AppendValue(ReadValue(bytes, i, from_dtype), to_dtype, raw);
    }
  }
  if (encoding == Encoding::kTyped) {
    // Cannot fail: the bytes were sized from a validated array.
    ConvertToTyped(&tensor).IgnoreError();
  }
  return tensor;
}

absl::StatusOr<std::string> TensorBytes(const actsvc::v1::Tensor& tensor) {
  const DataType dtype = tensor.dtype();
  if (dtype != actsvc::v1::FLOAT32 && dtype != actsvc::v1::FLOAT64 &&
      !IsHalf(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor has unsupported dtype ", dtype));
  }
  absl::StatusOr<int64_t> count = ElementCount(tensor.shape());
  if (!count.ok()) return count.status();
  const size_t n = static_cast<size_t>(*count);
  std::string bytes;
  if (!tensor.raw_data().empty() || n == 0) {
    bytes = tensor.raw_data();
  } else if (dtype == actsvc::v1::FLOAT32 && tensor.float_data_size() > 0) {
    bytes.assign(reinterpret_cast<const char*>(tensor.float_data().data()),
                 tensor.float_data_size() * sizeof(float));
  } else if (dtype == actsvc::v1::FLOAT64 && tensor.double_data_size() > 0) {
    bytes.assign(reinterpret_cast<const char*>(tensor.double_data().data()),
                 tensor.double_data_size() * sizeof(double));
  } else if (IsHalf(dtype)) {
    // float_data of a half tensor: values the server widened exactly.
    for (float f : tensor.float_data()) AppendValue(f, dtype, &bytes);
  }
  if (bytes.size() != n * DtypeSize(dtype)) {
    return absl::DataLossError(
        absl::StrCat("tensor of shape ", FormatShape(tensor.shape()), " ",
                     DtypeName(dtype), " carries ", bytes.size(),
                     " bytes of data; expected ", n * DtypeSize(dtype)));
  }
  return bytes;
}

absl::StatusOr<std::vector<double>> TensorValues(
    const actsvc::v1::Tensor& tensor) {
  absl::StatusOr<std::string> bytes = TensorBytes(tensor);
  if (!bytes.ok()) return bytes.status();
  std::vector<double> values(bytes->size() / DtypeSize(tensor.dtype()));
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = ReadValue(*bytes, i, tensor.dtype());
  }
  return values;
}

absl::Status ConvertToTyped(actsvc::v1::Tensor* tensor) {
  if (tensor->raw_data().empty()) return absl::OkStatus();
  absl::StatusOr<std::string> bytes = TensorBytes(*tensor);
  if (!bytes.ok()) return bytes.status();
  tensor->clear_raw_data();
  if (tensor->dtype() == actsvc::v1::FLOAT64) {
    const size_t n = bytes->size() / sizeof(double);
    tensor->mutable_double_data()->Resize(static_cast<int>(n), 0.0);
    std::memcpy(tensor->mutable_double_data()->mutable_data(), bytes->data(),
                bytes->size());
  } else if (IsHalf(tensor->dtype())) {
    const size_t n = bytes->size() / 2;
    for (size_t i = 0; i < n; ++i) {
      tensor->add_float_data(
          static_cast<float>(ReadValue(*bytes, i, tensor->dtype())));
    }
  } else {
    const size_t n = bytes->size() / sizeof(float);
    tensor->mutable_float_data()->Resize(static_cast<int>(n), 0.0f);
    std::memcpy(tensor->mutable_float_data()->mutable_data(), bytes->data(),
                bytes->size());
  }
  return absl::OkStatus();
}

}  // namespace actsvc::client
