// The actsvc command line: the table of commands, their help, and the
// parsing and checks before a command runs.
//
//   actsvc [global flags] <command> [flags]
//
// Exit codes: 0 success, 1 the call failed (or the server is not serving),
// 2 usage error. Errors go to stderr as "error: <CODE_NAME>: <message>".
#include "client/cli.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "client/bench_cli.h"
#include "client/cli_flags.h"
#include "client/commands.h"
#include "client/npy.h"
#include "client/tls.h"

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;

// The server's default port, for a --target without one.
constexpr int kDefaultPort = 50051;

const std::vector<absl::string_view>& GlobalFlags() {
  static const auto* flags = new std::vector<absl::string_view>{
      "target", "timeout_s", "json",    "dtype",          "encoding",
      "tls_ca", "tls_cert",  "tls_key", "tls_server_name"};
  return *flags;
}

struct Command {
  absl::string_view name;
  absl::string_view summary;
  std::vector<absl::string_view> flags;
  int (*run)(const Context&);
};

const std::vector<Command>& Commands();

TlsOptions TlsFlags() {
  TlsOptions tls;
  tls.ca = absl::GetFlag(FLAGS_tls_ca);
  tls.cert = absl::GetFlag(FLAGS_tls_cert);
  tls.key = absl::GetFlag(FLAGS_tls_key);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  return tls;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& target, const TlsOptions& tls) {
  grpc::ChannelArguments args;
  // The server enforces its own limit (RESOURCE_EXHAUSTED names it); the
  // client should not add a second, smaller one.
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // health --wait_s polls a server that is starting; the default backoff
  // (1 s growing to 120 s) would sleep past it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(tls, &args);
  if (!credentials.ok()) return credentials.status();
  return grpc::CreateCustomChannel(target, *credentials, args);
}

int RunHelp(const Context& ctx);

int RunBenchCommand(const Context& ctx) { return RunBench(ctx.args.specified); }

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"health",
       "check that the server is SERVING (exit 0) or not (exit 1)",
       {"wait_s"},
       RunHealth},
      {"list",
       "the functions, their parameters and derivative ranges",
       {"function"},
       RunList},
      {"evaluate",
       "f(x)",
       {"function", "alpha", "axis", "x", "x_npy", "shape", "out_npy"},
       RunEvaluate},
      {"derivative",
       "f'(x), f''(x) (--order=2) or the VJP g*f'(x) (--grad)",
       {"function", "alpha", "axis", "x", "x_npy", "shape", "order", "grad",
        "grad_npy", "out_npy"},
       RunDerivative},
      {"jacobian",
       "the Jacobian: the diagonal for elementwise functions (or --dense), "
       "[..., C, C] for softmax",
       {"function", "alpha", "axis", "x", "x_npy", "shape", "dense", "out_npy"},
       RunJacobian},
      {"xent",
       "softmax cross-entropy of logits (--x, classes on the last axis) "
       "against --labels or --target_probs",
       {"x", "x_npy", "shape", "labels", "target_probs", "target_probs_npy",
        "reduction", "label_smoothing", "ignore_index", "probs", "out_npy"},
       RunXent},
      {"stream",
       "one Stream call: the --ops requests (evaluate, derivative, "
       "derivative2) for the input, --repeat times; responses in order",
       {"function", "alpha", "axis", "x", "x_npy", "shape", "grad", "grad_npy",
        "ops", "repeat"},
       RunStream},
      {"analyze",
       "gradient-flow diagnostics of f over the input: sparsity, saturation "
       "(|f'| < --epsilon), dead units, range of f', the gate max |f'| and "
       "the attenuation (mean |f'|)^--layers",
       {"function", "alpha", "x", "x_npy", "shape", "epsilon", "layers"},
       RunAnalyze},
      {"bench", kBenchSummary, BenchFlagNames(), RunBenchCommand},
      {"help", "this message, or 'help <command>' for its flags", {}, RunHelp},
  };
  return *commands;
}

void PrintFlagHelp(absl::string_view name) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return;
  const std::string help = flag->Help();
  const std::string default_value = flag->DefaultValue();
  // Flags without a meaningful default say so in their help text.
  const bool show_default = !default_value.empty() &&
                            help.find("default") == std::string::npos &&
                            help.find("only when given") == std::string::npos;
  std::printf("  --%-18s %s%s\n", std::string(name).c_str(), help.c_str(),
              show_default
                  ? absl::StrCat(" (default: ", default_value, ")").c_str()
                  : "");
}

void PrintUsage() {
  std::printf(
      "actsvc: client of the activation service (actsvc.v1).\n\n"
      "usage: actsvc [global flags] <command> [flags]\n\ncommands:\n");
  for (const Command& c : Commands()) {
    std::printf("  %-11s %s\n", std::string(c.name).c_str(),
                std::string(c.summary).c_str());
  }
  std::printf("\nglobal flags:\n");
  for (absl::string_view f : GlobalFlags()) PrintFlagHelp(f);
  std::printf("  --%-18s %s\n", "version", "print the version and exit");
  std::printf(
      "\nexamples:\n"
      "  actsvc health --wait_s=10\n"
      "  actsvc evaluate --function=gelu --x=-8,0,1\n"
      "  actsvc derivative --function=sigmoid --x=20\n"
      "  actsvc derivative --function=softmax --x=1,2,3 --grad=1,0,0\n"
      "  actsvc jacobian --function=softmax --shape=2,3 --x=1,2,3,1,1,1\n"
      "  actsvc xent --shape=2,3 --x=1,2,3,1,1,1 --labels=2,0 --probs\n"
      "  actsvc analyze --function=sigmoid --x=-8,-6,0,6,8 --epsilon=0.0025 "
      "--layers=10\n"
      "  actsvc --json --dtype=float64 evaluate --function=tanh --x_npy=x.npy\n"
      "\nvalues accept inf, -inf and nan. Exit codes: 0 ok, 1 the call failed,"
      " 2 usage error.\n");
}

int RunHelp(const Context& ctx) {
  if (ctx.args.positional.size() < 2) {
    PrintUsage();
    return kExitOk;
  }
  for (const Command& c : Commands()) {
    if (c.name != ctx.args.positional[1]) continue;
    std::printf("actsvc %s: %s\n\nflags:\n", std::string(c.name).c_str(),
                std::string(c.summary).c_str());
    for (absl::string_view f : c.flags) PrintFlagHelp(f);
    std::printf("\nglobal flags:\n");
    for (absl::string_view f : GlobalFlags()) PrintFlagHelp(f);
    if (c.name == "bench") {
      std::fputs(std::string(BenchHelpNotes()).c_str(), stdout);
    }
    return kExitOk;
  }
  return ReportUsage(UsageError(
      absl::StrCat("unknown command '", ctx.args.positional[1], "'")));
}

// Where the command line is wrong for `command`: an operand after it, or a
// flag of another command (a mistake worth reporting, not ignoring).
absl::Status CheckCommandLine(const ParsedArgs& args, const Command& command) {
  const std::string& name = args.positional[0];
  if (command.name != "help" && args.positional.size() > 1) {
    return UsageError(absl::StrCat("unexpected argument '", args.positional[1],
                                   "' after ", name));
  }
  for (const std::string& flag : args.specified) {
    const bool allowed = std::find(GlobalFlags().begin(), GlobalFlags().end(),
                                   flag) != GlobalFlags().end() ||
                         std::find(command.flags.begin(), command.flags.end(),
                                   flag) != command.flags.end();
    if (!allowed) {
      return UsageError(absl::StrCat("--", flag, " does not apply to '", name,
                                     "' (see 'actsvc help ", name, "')"));
    }
  }
  return absl::OkStatus();
}

// The global flags into `ctx`, and its channel to --target (a usage error
// when a flag is wrong).
absl::Status Connect(Context* ctx) {
  absl::StatusOr<Encoding> encoding =
      EncodingFromName(absl::GetFlag(FLAGS_encoding));
  if (!encoding.ok()) return encoding.status();
  if (absl::StatusOr<v1::DataType> dtype = DtypeFlag(); !dtype.ok()) {
    return dtype.status();
  }
  if (!(absl::GetFlag(FLAGS_timeout_s) > 0)) {
    return UsageError("--timeout_s must be positive");
  }
  // Before the call, so that no work is lost to a path we cannot write.
  if (ctx->Has("out_npy")) {
    absl::Status writable = CheckNpyWritable(absl::GetFlag(FLAGS_out_npy));
    if (!writable.ok()) return FileFlagError("out_npy", writable);
  }
  ctx->encoding = *encoding;
  ctx->json = absl::GetFlag(FLAGS_json);
  // gRPC would take a target without a port to mean 443.
  const std::string target = absl::GetFlag(FLAGS_target);
  if (std::string with_port = TargetWithPort(target, kDefaultPort);
      with_port != target) {
    std::fprintf(stderr, "note: --target=%s has no port; using %s\n",
                 target.c_str(), with_port.c_str());
    absl::SetFlag(&FLAGS_target, with_port);
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(absl::GetFlag(FLAGS_target), TlsFlags());
  if (!channel.ok()) return channel.status();
  ctx->channel = *std::move(channel);
  return absl::OkStatus();
}

}  // namespace

int RunCli(int argc, const char* const* argv, absl::string_view version) {
  // bench spells some flags its own way (--json FILE, --check-every, -c).
  const std::vector<std::string> arg_strings = RewriteBenchArgs(argc, argv);
  std::vector<const char*> arg_ptrs;
  for (const std::string& a : arg_strings) arg_ptrs.push_back(a.c_str());
  absl::StatusOr<ParsedArgs> args =
      ParseArgs(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  if (!args.ok()) return ReportUsage(args.status());
  Context ctx;
  ctx.args = *std::move(args);
  if (ctx.args.version) {
    std::printf("actsvc %s\n", std::string(version).c_str());
    return kExitOk;
  }
  if (ctx.args.positional.empty()) {
    PrintUsage();
    return ctx.args.help ? kExitOk : kExitUsage;
  }
  const std::string& name = ctx.args.positional[0];
  const Command* command = nullptr;
  for (const Command& c : Commands()) {
    if (c.name == name) command = &c;
  }
  if (command == nullptr) {
    return ReportUsage(
        UsageError(absl::StrCat("unknown command '", name, "'")));
  }
  if (ctx.args.help) {
    ctx.args.positional = {"help", name};
    return RunHelp(ctx);
  }
  if (absl::Status s = CheckCommandLine(ctx.args, *command); !s.ok()) {
    return ReportUsage(s);
  }
  if (absl::Status s = Connect(&ctx); !s.ok()) return ReportUsage(s);
  return command->run(ctx);
}

}  // namespace actsvc::client
