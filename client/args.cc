#include "client/args.h"

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace actsvc::client {

absl::StatusOr<ParsedArgs> ParseArgs(int argc, const char* const* argv) {
  ParsedArgs parsed;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      parsed.positional.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    absl::string_view name = body;
    absl::string_view value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    if (name == "h" || name == "help" || name == "helpfull") {
      parsed.help = true;
      continue;
    }
    if (name == "version") {
      parsed.version = true;
      continue;
    }

    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      flag = absl::FindCommandLineFlag(name.substr(2));
      negated = flag != nullptr && flag->IsOfType<bool>();
      if (!negated) flag = nullptr;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    std::string text;
    if (negated) {
      if (has_value) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      }
      text = "false";
    } else if (has_value) {
      text = std::string(value);
    } else if (flag->IsOfType<bool>()) {
      text = "true";
    } else if (i + 1 < argc) {
      text = argv[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name, " needs a value"));
    }
    std::string error;
    if (!flag->ParseFrom(text, &error)) {
      // Abseil's own words for a duration without a unit are nearly empty.
      if (flag->IsOfType<absl::Duration>()) {
        error = "a duration is a number with a unit, e.g. 10s, 500ms or 2m";
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "bad value '", text, "' for --", flag->Name(), ": ", error));
    }
    parsed.specified.insert(std::string(flag->Name()));
  }
  return parsed;
}

std::string TargetWithPort(const std::string& target, int default_port) {
  // Schemes (dns:, unix:, ipv4:, ...) and bare IPv6 addresses are gRPC's.
  if (target.empty() || target.find('/') != std::string::npos) return target;
  if (target[0] == '[') {
    return target.find("]:") != std::string::npos || target.back() != ']'
               ? target
               : absl::StrCat(target, ":", default_port);
  }
  if (target.find(':') != std::string::npos) return target;
  return absl::StrCat(target, ":", default_port);
}

}  // namespace actsvc::client
