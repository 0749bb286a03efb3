// Human-readable rendering of tensors, numpy style: nested brackets, every
// value with enough digits to round-trip (%.9g float32, %.17g float64), and
// large tensors summarized by their first and last items along each axis.
#ifndef ACTSVC_CLIENT_FORMAT_H_
#define ACTSVC_CLIENT_FORMAT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "actsvc/v1/activation.pb.h"

namespace actsvc::client {

struct FormatOptions {
  // Tensors with more elements are summarized, as numpy's threshold.
  int64_t threshold = 1000;
  // Items kept at each end of a summarized axis, as numpy's edgeitems.
  int64_t edge_items = 3;
  // Lines of the innermost axis wrap after this many characters.
  int line_width = 80;
};

// "[2, 3]"; "[]" for a scalar.
std::string FormatShape(absl::Span<const int64_t> shape);
// "[2,3]": the compact form of the bench report, the soak's case names and
// the answer checker's messages.
std::string CompactShape(absl::Span<const int64_t> shape);

// One value, "%.9g" for float32 and "%.17g" for float64; inf, -inf, nan.
std::string FormatValue(double value, actsvc::v1::DataType dtype);

// The values laid out by `shape`, without a trailing newline. Precondition:
// values.size() == product(shape).
std::string FormatValues(absl::Span<const int64_t> shape,
                         absl::Span<const double> values,
                         actsvc::v1::DataType dtype,
                         const FormatOptions& options = {});

// "<name>: float32 [2, 3]" (plus a note when summarized), a newline, then
// the values and a final newline.
std::string FormatNamedTensor(absl::string_view name,
                              absl::Span<const int64_t> shape,
                              absl::Span<const double> values,
                              actsvc::v1::DataType dtype,
                              const FormatOptions& options = {});

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_FORMAT_H_
