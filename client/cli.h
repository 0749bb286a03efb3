// The actsvc CLI as a library: `client/main.cc` is its main, and the tests
// (tests/client/cli_test.cc) run its commands against an in-process server.
#ifndef ACTSVC_CLIENT_CLI_H_
#define ACTSVC_CLIENT_CLI_H_

#include "absl/strings/string_view.h"

namespace actsvc::client {

// Parses the command line into the flags (client/cli_flags.h), runs the
// command and returns the exit code: 0 success, 1 the call failed (or the
// server is not serving), 2 usage error. `version` is what --version prints
// after "actsvc ".
int RunCli(int argc, const char* const* argv, absl::string_view version);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_CLI_H_
