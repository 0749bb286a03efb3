// The load library's answer checker: whether a response tensor holds what
// the client's core computed (client/answers.h), within a tolerance per
// dtype. Shared by `actsvc bench` and the soak (bench/soak*.cc).
#ifndef ACTSVC_CLIENT_ANSWER_CHECK_H_
#define ACTSVC_CLIENT_ANSWER_CHECK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actsvc/v1/activation.pb.h"
#include "client/tensor.h"

namespace actsvc::client {

// |got - want| <= atol + rtol * |want|.
struct Tolerance {
  double atol;
  double rtol;
};

// Server and client may run different cores (scalar, vectorized, split into
// chunks, sums in another order): a few hundred ulps of float32 and
// float64, far below any real mistake; the half types are rounded once from
// float32, so 2 ulps of their own (bfloat16 has 8 bits, float16 11).
Tolerance ToleranceFor(actsvc::v1::DataType dtype);

// NaN matches NaN, an infinity only itself, anything else within
// ToleranceFor(dtype).
bool Close(double got, double want, actsvc::v1::DataType dtype);

// What a response tensor must hold.
struct Want {
  std::vector<int64_t> shape;
  actsvc::v1::DataType dtype = actsvc::v1::FLOAT32;
  std::vector<double> values;
  // When set, a non-empty tensor must use this encoding (the request's).
  std::optional<Encoding> encoding;
};

// "" when `got` has the wanted dtype, shape (encoding) and values; else what
// differs, e.g. "shape [6], expected [2,3]" or "1 of 6 values differ; first
// at [4]: got 1, expected 0.5". `samples` > 0 compares only that many
// evenly spaced values (every one of a smaller tensor).
std::string CheckTensor(const actsvc::v1::Tensor& got, const Want& want,
                        int64_t samples = 0);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_ANSWER_CHECK_H_
