#include "client/format.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/tensor.h"

namespace actsvc::client {
namespace {

class Formatter {
 public:
  Formatter(absl::Span<const int64_t> shape, absl::Span<const double> values,
            actsvc::v1::DataType dtype, const FormatOptions& options,
            bool summarize)
      : shape_(shape),
        values_(values),
        dtype_(dtype),
        options_(options),
        summarize_(summarize),
        strides_(shape.size(), 1) {
    for (size_t d = shape.size(); d-- > 1;) {
      strides_[d - 1] = strides_[d] * shape[d];
    }
  }

  std::string Run() {
    if (shape_.empty()) return FormatValue(values_[0], dtype_);
    Append(0, 0);
    return std::move(out_);
  }

 private:
  // The indices shown along an axis of size n; -1 marks the "..." gap.
  std::vector<int64_t> ShownIndices(int64_t n) const {
    std::vector<int64_t> shown;
    const int64_t edge = options_.edge_items;
    if (summarize_ && n > 2 * edge) {
      for (int64_t i = 0; i < edge; ++i) shown.push_back(i);
      shown.push_back(-1);
      for (int64_t i = n - edge; i < n; ++i) shown.push_back(i);
    } else {
      for (int64_t i = 0; i < n; ++i) shown.push_back(i);
    }
    return shown;
  }

  size_t LineLength() const {
    size_t newline = out_.rfind('\n');
    return newline == std::string::npos ? out_.size()
                                        : out_.size() - newline - 1;
  }

  void Append(size_t dim, int64_t offset) {
    out_ += '[';
    const std::string indent(dim + 1, ' ');
    const bool innermost = dim + 1 == shape_.size();
    bool first = true;
    for (int64_t i : ShownIndices(shape_[dim])) {
      if (innermost) {
        std::string item =
            i < 0 ? "..." : FormatValue(values_[offset + i], dtype_);
        if (!first) {
          // Keep room for the separator and the closing brackets.
          if (LineLength() + 2 + item.size() + dim + 1 >
              static_cast<size_t>(options_.line_width)) {
            absl::StrAppend(&out_, ",\n", indent);
          } else {
            out_ += ", ";
          }
        }
        out_ += item;
      } else {
        if (!first) {
          // As numpy: a blank line between blocks of rank >= 2.
          absl::StrAppend(&out_, ",\n",
                          std::string(shape_.size() - dim - 2, '\n'), indent);
        }
        if (i < 0) {
          out_ += "...";
        } else {
          Append(dim + 1, offset + i * strides_[dim]);
        }
      }
      first = false;
    }
    out_ += ']';
  }

  absl::Span<const int64_t> shape_;
  absl::Span<const double> values_;
  actsvc::v1::DataType dtype_;
  const FormatOptions& options_;
  bool summarize_;
  std::vector<int64_t> strides_;
  std::string out_;
};

}  // namespace

std::string FormatShape(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string CompactShape(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

std::string FormatValue(double value, actsvc::v1::DataType dtype) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[32];
  // Enough digits to read the value back exactly (max_digits10).
  const char* format = "%.9g";
  if (dtype == actsvc::v1::FLOAT64) format = "%.17g";
  if (dtype == actsvc::v1::FLOAT16) format = "%.5g";
  if (dtype == actsvc::v1::BFLOAT16) format = "%.4g";
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

std::string FormatValues(absl::Span<const int64_t> shape,
                         absl::Span<const double> values,
                         actsvc::v1::DataType dtype,
                         const FormatOptions& options) {
  const bool summarize =
      static_cast<int64_t>(values.size()) > options.threshold;
  return Formatter(shape, values, dtype, options, summarize).Run();
}

std::string FormatNamedTensor(absl::string_view name,
                              absl::Span<const int64_t> shape,
                              absl::Span<const double> values,
                              actsvc::v1::DataType dtype,
                              const FormatOptions& options) {
  std::string header =
      absl::StrCat(name, ": ", DtypeName(dtype), " ", FormatShape(shape));
  if (static_cast<int64_t>(values.size()) > options.threshold) {
    absl::StrAppend(&header, " (", values.size(), " values; first and last ",
                    options.edge_items, " along each axis)");
  }
  return absl::StrCat(header, "\n", FormatValues(shape, values, dtype, options),
                      "\n");
}

}  // namespace actsvc::client
