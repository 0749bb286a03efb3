// Conversions between host values and actsvc.v1.Tensor, in either wire
// encoding. The client runs on little-endian hosts, like the raw_data format.
#ifndef ACTSVC_CLIENT_TENSOR_H_
#define ACTSVC_CLIENT_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "actsvc/v1/activation.pb.h"

namespace actsvc::client {

enum class Encoding {
  kRaw,    // Tensor.raw_data: packed bytes, the fast path
  kTyped,  // Tensor.float_data / double_data
};

// "raw" or "typed".
absl::StatusOr<Encoding> EncodingFromName(absl::string_view name);
// "float32" / "float64" / "float16" / "bfloat16" (also "f4", "f8", "f2",
// "float", "double", "half", "bf16").
absl::StatusOr<actsvc::v1::DataType> DtypeFromName(absl::string_view name);
absl::string_view DtypeName(actsvc::v1::DataType dtype);
size_t DtypeSize(actsvc::v1::DataType dtype);

// v rounded to `dtype` once (nearest, ties to even), as a double (exact).
double RoundToDtype(double v, actsvc::v1::DataType dtype);

// Product of the dims; INVALID_ARGUMENT for a negative dim or overflow.
absl::StatusOr<int64_t> ElementCount(absl::Span<const int64_t> shape);

// Builds a tensor from values already rounded to `dtype` (see ParseValues),
// so the narrowing here is exact. FLOAT16 and BFLOAT16: 2-byte patterns in
// raw_data, or the values in float_data.
actsvc::v1::Tensor MakeTensor(absl::Span<const int64_t> shape,
                              actsvc::v1::DataType dtype,
                              absl::Span<const double> values,
                              Encoding encoding);

// Builds a tensor from packed little-endian bytes of `from_dtype`, converting
// to `to_dtype` when they differ (rounding once to nearest even).
actsvc::v1::Tensor MakeTensorFromBytes(absl::Span<const int64_t> shape,
                                       actsvc::v1::DataType from_dtype,
                                       absl::string_view bytes,
                                       actsvc::v1::DataType to_dtype,
                                       Encoding encoding);

// The values of a tensor in either encoding, widened to double (exact).
// Checks that the data matches the shape.
absl::StatusOr<std::vector<double>> TensorValues(
    const actsvc::v1::Tensor& tensor);

// The data as packed little-endian bytes, whatever the encoding.
absl::StatusOr<std::string> TensorBytes(const actsvc::v1::Tensor& tensor);

// Rewrites raw_data as float_data/double_data, so that a JSON rendering shows
// numbers instead of base64.
absl::Status ConvertToTyped(actsvc::v1::Tensor* tensor);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_TENSOR_H_
