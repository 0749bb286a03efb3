// Parsing of the CLI's inline values: "--x=1,-2.5,inf,nan", "--shape=2,3",
// "--labels=0,2".
#ifndef ACTSVC_CLIENT_VALUES_H_
#define ACTSVC_CLIENT_VALUES_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "actsvc/v1/activation.pb.h"

namespace actsvc::client {

// Comma-separated numbers; also inf, +inf, -inf, infinity and nan (any case).
// Each value is rounded once, directly from its decimal text to `dtype` (no
// double rounding through float64), then widened to double exactly.
// Whitespace around values and an enclosing [...] are allowed; "" is no
// values.
absl::StatusOr<std::vector<double>> ParseValues(absl::string_view text,
                                                actsvc::v1::DataType dtype);

// "2,3", "[2, 3]", "2x3"; "[]" or "scalar" for a 0-d tensor. Dims must be
// non-negative integers.
absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view text);

// Comma-separated integers (class indices, possibly negative).
absl::StatusOr<std::vector<int64_t>> ParseIntegers(absl::string_view text);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_VALUES_H_
