// `actsvc bench`: the command-line face of the load tester. Its own flags
// live in bench_cli.cc; the flags it shares with the other commands
// (--target, --function, --shape, ...) are cli_flags.h's.
#ifndef ACTSVC_CLIENT_BENCH_CLI_H_
#define ACTSVC_CLIENT_BENCH_CLI_H_

#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace actsvc::client {

inline constexpr absl::string_view kBenchSummary =
    "load test: closed loop (--concurrency) or open loop (--rps), sweeps, "
    "checked answers, latency percentiles";

// Every flag `bench` accepts besides the global ones.
const std::vector<absl::string_view>& BenchFlagNames();

// What `actsvc help bench` prints after the flags: modes, examples.
absl::string_view BenchHelpNotes();

// When the command is `bench`, rewrites its arguments into the registry's
// spelling: --json FILE / --json=FILE (the report file; a bare --json still
// prints JSON on stdout) becomes --bench_json=FILE, dashes in flag names
// become underscores (--check-every), and ghz's short flags are understood
// (-c concurrency, -n requests, -z duration, -r rps, --total). Other
// command lines come back unchanged.
std::vector<std::string> RewriteBenchArgs(int argc, const char* const* argv);

// Runs the load test from the parsed flags; `specified` names those given.
// Exit codes: 0 every call succeeded with a right answer, 1 some did not (or
// no connection), 2 usage error.
int RunBench(const std::set<std::string>& specified);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_BENCH_CLI_H_
