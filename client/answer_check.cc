#include "client/answer_check.h"

#include <algorithm>
#include <cmath>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/format.h"

namespace actsvc::client {

namespace v1 = ::actsvc::v1;

Tolerance ToleranceFor(v1::DataType dtype) {
  switch (dtype) {
    case v1::FLOAT64:
      return {1e-12, 1e-10};
    case v1::FLOAT16:
      return {1e-7, 0x1p-9};
    case v1::BFLOAT16:
      return {1e-7, 0x1p-6};
    default:
      return {1e-5, 1e-4};
  }
}

bool Close(double got, double want, v1::DataType dtype) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  const Tolerance tol = ToleranceFor(dtype);
  return std::fabs(got - want) <= tol.atol + tol.rtol * std::fabs(want);
}

namespace {

// "" when a non-empty tensor uses `encoding`.
std::string CheckEncoding(const v1::Tensor& got, Encoding encoding) {
  const bool typed = got.raw_data().empty() &&
                     (got.float_data_size() > 0 || got.double_data_size() > 0);
  const bool raw = !got.raw_data().empty();
  if (!typed && !raw) return "";  // no data: the count check decides
  if (typed == (encoding == Encoding::kTyped)) return "";
  return absl::StrCat(typed ? "typed" : "raw",
                      ", expected the request's encoding (",
                      typed ? "raw" : "typed", ")");
}

}  // namespace

std::string CheckTensor(const v1::Tensor& got, const Want& want,
                        int64_t samples) {
  if (got.dtype() != want.dtype) {
    return absl::StrCat("dtype ", v1::DataType_Name(got.dtype()), ", expected ",
                        v1::DataType_Name(want.dtype));
  }
  if (!std::equal(got.shape().begin(), got.shape().end(), want.shape.begin(),
                  want.shape.end())) {
    return absl::StrCat("shape ", CompactShape(got.shape()), ", expected ",
                        CompactShape(want.shape));
  }
  if (want.encoding.has_value()) {
    if (std::string wrong = CheckEncoding(got, *want.encoding);
        !wrong.empty()) {
      return wrong;
    }
  }
  absl::StatusOr<std::vector<double>> values = TensorValues(got);
  if (!values.ok()) return std::string(values.status().message());
  const int64_t n = static_cast<int64_t>(values->size());
  if (values->size() != want.values.size()) {
    return absl::StrCat(n, " values, expected ", want.values.size());
  }
  const int64_t compared = samples > 0 ? std::min(n, samples) : n;
  int64_t wrong = 0;
  int64_t first = -1;
  for (int64_t k = 0; k < compared; ++k) {
    const int64_t i =
        compared == n || compared == 1 ? k : k * (n - 1) / (compared - 1);
    if (!Close((*values)[i], want.values[i], want.dtype)) {
      if (first < 0) first = i;
      ++wrong;
    }
  }
  if (wrong == 0) return "";
  return absl::StrFormat(
      "%d of %d values %sdiffer; first at [%d]: got %.9g, expected %.9g", wrong,
      compared, compared == n ? "" : "compared ", first, (*values)[first],
      want.values[first]);
}

}  // namespace actsvc::client
