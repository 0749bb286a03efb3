// Command-line parsing onto Abseil flags, with the CLI's exit-code contract:
// absl::ParseCommandLine exits the process on a bad flag, whereas a usage
// error here is a Status the caller turns into exit code 2.
#ifndef ACTSVC_CLIENT_ARGS_H_
#define ACTSVC_CLIENT_ARGS_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace actsvc::client {

struct ParsedArgs {
  std::vector<std::string> positional;  // the command and its operands
  std::set<std::string> specified;      // names of the flags given
  bool help = false;                    // -h, --help, -help or --helpfull
  bool version = false;                 // --version or -version
};

// Accepts --name=value, --name value, -name=value; for bool flags also
// --name and --noname. "--" ends the flags. Sets each flag in the Abseil
// registry. Unknown flags and unparsable values are INVALID_ARGUMENT.
absl::StatusOr<ParsedArgs> ParseArgs(int argc, const char* const* argv);

// "host" and "[v6]" without a port get `default_port` (gRPC would use 443,
// the HTTPS port); "host:port", schemes such as unix:/path or dns:///x and
// bare IPv6 addresses are returned as they are.
std::string TargetWithPort(const std::string& target, int default_port);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_ARGS_H_
