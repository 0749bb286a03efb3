// Reading and writing NumPy .npy files (format versions 1.0, 2.0 and 3.0):
// little-endian float32 ('<f4'), float64 ('<f8') and float16 ('<f2') arrays
// in C order, which is what np.save writes for those dtypes on every common
// host. numpy has no bfloat16: a bfloat16 array is its bit patterns as
// uint16 ('<u2'), as arr.view(np.uint16) of an ml_dtypes.bfloat16 array or
// the Python client's to_bfloat16_bits write them.
#ifndef ACTSVC_CLIENT_NPY_H_
#define ACTSVC_CLIENT_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "actsvc/v1/activation.pb.h"

namespace actsvc::client {

struct NpyArray {
  std::vector<int64_t> shape;  // [] is a scalar
  actsvc::v1::DataType dtype = actsvc::v1::FLOAT32;
  std::string data;  // packed little-endian values, row-major
};

// Parses the contents of a .npy file. Big-endian, Fortran-order and
// non-float dtypes are rejected with INVALID_ARGUMENT naming what was found.
absl::StatusOr<NpyArray> ParseNpy(absl::string_view contents);

// Serializes `array` as a version 1.0 file (2.0 when the header needs it),
// header padded to 64 bytes as np.save does.
absl::StatusOr<std::string> EncodeNpy(const NpyArray& array);

// Errors name the path and the cause: NOT_FOUND (no such file or
// directory), PERMISSION_DENIED, INVALID_ARGUMENT (a directory, or contents
// ParseNpy rejects); never a crash.
absl::StatusOr<NpyArray> ReadNpyFile(const std::string& path);

// OK when `path` could be written as a file: not a directory, and in an
// existing directory we may write. Lets a caller refuse before doing work.
absl::Status CheckNpyWritable(const std::string& path);

// Checks as CheckNpyWritable, then writes (replacing any file at `path`).
absl::Status WriteNpyFile(const std::string& path, const NpyArray& array);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_NPY_H_
