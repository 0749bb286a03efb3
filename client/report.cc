#include "client/report.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;

// Display width of UTF-8 text: one column per code point.
size_t Width(absl::string_view text) {
  return std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  });
}

std::string Pad(absl::string_view text, size_t width) {
  std::string out(text);
  out.append(width > Width(text) ? width - Width(text) : 0, ' ');
  return out;
}

std::string ParametersText(const v1::FunctionInfo& info) {
  std::vector<std::string> parts;
  for (const v1::Parameter& p : info.parameters()) {
    parts.push_back(absl::StrCat(p.name(), "=", p.default_value()));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, " ");
}

// Nine significant digits: enough for any float32 statistic.
std::string FormatStat(double v) { return absl::StrFormat("%.9g", v); }

// A count with its fraction of the analyzed units, e.g. "3 (0.6)".
std::string CountAndFraction(int64_t count, double fraction) {
  return absl::StrCat(count, " (", FormatStat(fraction), ")");
}

}  // namespace

std::string FormatFunctionTable(const v1::ListFunctionsResponse& list) {
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "PARAMS", "SATURATES", "f'(x)", "f' RANGE"}};
  for (const v1::FunctionInfo& info : list.functions()) {
    std::string name = info.name();
    if (!info.aliases().empty()) {
      absl::StrAppend(&name, " (", absl::StrJoin(info.aliases(), ", "), ")");
    }
    rows.push_back({name, ParametersText(info), info.saturates() ? "yes" : "no",
                    info.derivative_formula(), info.derivative_range()});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c + 1 < row.size(); ++c) {
      widths[c] = std::max(widths[c], Width(row[c]));
    }
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t c = 0; c + 1 < row.size(); ++c) {
      absl::StrAppend(&out, Pad(row[c], widths[c]), "  ");
    }
    absl::StrAppend(&out, row.back(), "\n");
  }
  absl::StrAppend(
      &out, "\n'actsvc list --function=NAME' shows one function in full.\n");
  return out;
}

std::string FormatFunctionDetails(const v1::FunctionInfo& info) {
  std::string out = info.name();
  if (!info.aliases().empty()) {
    absl::StrAppend(&out, " (", absl::StrJoin(info.aliases(), ", "), ")");
  }
  out += "\n";
  auto line = [&out](absl::string_view label, absl::string_view text) {
    if (!text.empty()) absl::StrAppendFormat(&out, "  %-18s %s\n", label, text);
  };
  line("kind", info.elementwise() ? "elementwise" : "vector (along an axis)");
  for (const v1::Parameter& p : info.parameters()) {
    line("parameter",
         absl::StrCat(p.name(), " = ", p.default_value(), "  ", p.valid_range(),
                      p.description().empty() ? "" : "  ", p.description()));
  }
  line("f(x)", info.formula());
  line("f'(x)", info.derivative_formula());
  line("f''(x)", info.second_derivative_formula());
  line("stable form", info.stable_form());
  line("output range", info.output_range());
  line("f' range", info.derivative_range());
  line("saturates", info.saturates() ? "yes" : "no");
  line("notes", info.notes());
  return out;
}

std::string FormatAnalysis(const v1::AnalyzeResponse& response,
                           int32_t layers) {
  std::vector<std::pair<std::string, std::string>> rows = {
      {"units", absl::StrCat(response.units())},
      {"nan_count", absl::StrCat(response.nan_count())},
      {"epsilon", FormatStat(response.epsilon())},
      {"sparsity (f(x) = 0)",
       CountAndFraction(response.zero_outputs(), response.sparsity())},
      {"saturated (|f'(x)| < eps)",
       CountAndFraction(response.saturated_units(),
                        response.saturated_fraction())},
      {"dead (f'(x) = 0)",
       CountAndFraction(response.dead_units(), response.dead_fraction())},
      {"min f'", FormatStat(response.min_derivative())},
      {"max f'", FormatStat(response.max_derivative())},
      {"mean f'", FormatStat(response.mean_derivative())},
      {"mean |f'|", FormatStat(response.mean_abs_derivative())},
      {"max |f'| (gradient gate)", FormatStat(response.max_abs_derivative())},
  };
  if (response.has_attenuation()) {
    rows.push_back({absl::StrCat("attenuation (mean |f'|)^", layers),
                    FormatStat(response.attenuation())});
  }
  std::string out;
  for (const auto& [name, value] : rows) {
    absl::StrAppendFormat(&out, "%-30s %s\n", name, value);
  }
  return out;
}

}  // namespace actsvc::client
