#include "client/values.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/tensor.h"

namespace actsvc::client {
namespace {

absl::string_view StripBrackets(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  const bool bracketed =
      (absl::StartsWith(text, "[") && absl::EndsWith(text, "]")) ||
      (absl::StartsWith(text, "(") && absl::EndsWith(text, ")"));
  if (bracketed) {
    text.remove_prefix(1);
    text.remove_suffix(1);
  }
  return absl::StripAsciiWhitespace(text);
}

// Splits on commas; "" gives no items, but an empty item between commas is
// an error (a typo like "1,,2" should not silently drop a value).
absl::StatusOr<std::vector<absl::string_view>> SplitList(
    absl::string_view text, absl::string_view what) {
  std::vector<absl::string_view> items;
  text = StripBrackets(text);
  if (text.empty()) return items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("empty item in ", what, " list '", text, "'"));
    }
    items.push_back(item);
  }
  return items;
}

std::optional<double> ParseSpecial(absl::string_view item) {
  const std::string lower = absl::AsciiStrToLower(item);
  absl::string_view v = lower;
  bool negative = absl::ConsumePrefix(&v, "-");
  if (!negative) absl::ConsumePrefix(&v, "+");
  if (v == "inf" || v == "infinity") {
    return negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
  }
  if (v == "nan") {
    return negative ? -std::numeric_limits<double>::quiet_NaN()
                    : std::numeric_limits<double>::quiet_NaN();
  }
  return std::nullopt;
}

// strtof/strtod: correctly rounded, and they keep subnormals and report
// overflow, which the CLI turns into an error rather than a silent inf.
template <typename T>
absl::StatusOr<double> ParseNumber(absl::string_view item) {
  const std::string s(item);
  char* end = nullptr;
  errno = 0;
  T value;
  if constexpr (std::is_same_v<T, float>) {
    value = std::strtof(s.c_str(), &end);
  } else {
    value = std::strtod(s.c_str(), &end);
  }
  if (end == s.c_str() || *end != '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat("'", item, "' is not a number"));
  }
  if (errno == ERANGE && std::isinf(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", item, "' overflows ",
                     std::is_same_v<T, float> ? "float32" : "float64",
                     "; write inf if that is what you mean"));
  }
  return static_cast<double>(value);
}

// The comma-separated integers of `text`, a list of `what` (as SplitList
// says); errors name an item after `item_prefix`. With `nonnegative`, the
// first item that is not an integer or is negative is an error.
absl::StatusOr<std::vector<int64_t>> IntegerList(absl::string_view text,
                                                 absl::string_view what,
                                                 absl::string_view item_prefix,
                                                 bool nonnegative) {
  absl::StatusOr<std::vector<absl::string_view>> items = SplitList(text, what);
  if (!items.ok()) return items.status();
  std::vector<int64_t> values;
  for (absl::string_view item : *items) {
    int64_t v;
    if (!absl::SimpleAtoi(item, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat(item_prefix, "'", item, "' is not an integer"));
    }
    if (nonnegative && v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(item_prefix, v, " is negative"));
    }
    values.push_back(v);
  }
  return values;
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseValues(absl::string_view text,
                                                actsvc::v1::DataType dtype) {
  absl::StatusOr<std::vector<absl::string_view>> items =
      SplitList(text, "value");
  if (!items.ok()) return items.status();
  std::vector<double> values;
  values.reserve(items->size());
  for (absl::string_view item : *items) {
    if (std::optional<double> special = ParseSpecial(item)) {
      values.push_back(*special);
      continue;
    }
    absl::StatusOr<double> v = dtype == actsvc::v1::FLOAT32
                                   ? ParseNumber<float>(item)
                                   : ParseNumber<double>(item);
    if (!v.ok()) return v.status();
    // float16 and bfloat16: rounded once from the decimal's double.
    const double rounded = RoundToDtype(*v, dtype);
    if (std::isinf(rounded) && !std::isinf(*v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", item, "' overflows ", DtypeName(dtype),
                       "; write inf if that is what you mean"));
    }
    values.push_back(rounded);
  }
  return values;
}

absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (lower == "scalar") return std::vector<int64_t>{};
  // "2x3" reads naturally on a command line.
  for (char& c : lower) {
    if (c == 'x') c = ',';
  }
  return IntegerList(lower, "shape", "shape dimension ",
                     /*nonnegative=*/true);
}

absl::StatusOr<std::vector<int64_t>> ParseIntegers(absl::string_view text) {
  return IntegerList(text, "integer", "", /*nonnegative=*/false);
}

}  // namespace actsvc::client
