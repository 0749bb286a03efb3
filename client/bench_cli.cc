#include "client/bench_cli.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/bench.h"
#include "client/bench_http.h"
#include "client/bench_kserve.h"
#include "client/bench_load.h"
#include "client/cli_flags.h"
#include "client/cli_io.h"
#include "client/tensor.h"
#include "client/values.h"
#include "core/activation.h"

ABSL_FLAG(std::string, rpc, "evaluate",
          "the call: evaluate, derivative (--order 1 or 2), vjp (derivative "
          "with a random upstream gradient), jacobian (--dense), xent "
          "(softmax cross-entropy, random labels), stream (evaluate requests "
          "on long-lived Stream calls)");
ABSL_FLAG(std::string, protocol, "actsvc",
          "actsvc (the own API), kserve (the same computation as ModelInfer "
          "of the Open Inference Protocol, on the model that computes it: "
          "gelu, gelu.d1, gelu.vjp, gelu.jacobian, softmax_cross_entropy) or "
          "http (the same over KServe v2 REST at --http_target, binary tensor "
          "data; closed loop only)");
ABSL_FLAG(std::string, http_target, "",
          "--protocol=http: host:port of the server's --http_address");
ABSL_FLAG(bool, http_json, false,
          "--protocol=http: JSON bodies (data as numbers) instead of binary "
          "tensor data");
ABSL_FLAG(std::string, concurrency, "1",
          "closed loop: calls outstanding; a list (1,8,64) sweeps, one report "
          "row each. With --rps: the cap on calls in flight (default 10000). "
          "ghz: -c");
ABSL_FLAG(std::string, rps, "",
          "open loop: calls sent per second whatever the latency; a list "
          "sweeps. Latency counts from each call's scheduled time (no "
          "coordinated omission). ghz: -r");
ABSL_FLAG(std::string, arrival, "constant",
          "open loop: constant (even gaps) or poisson (exponential gaps from "
          "--seed)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "measured time per level, e.g. 30s, 2m (ignored with --requests). "
          "ghz: -z");
ABSL_FLAG(int64_t, requests, 0,
          "measured calls per level instead of --duration. ghz: -n, --total");
ABSL_FLAG(std::string, warmup, "0",
          "per level, left out of the report: a time (2s) or a number of "
          "calls (100). ghz: --skipFirst");
ABSL_FLAG(int32_t, connections, 1,
          "channels, each with its own TCP connection; calls are spread over "
          "them");
ABSL_FLAG(std::string, lb, "round_robin",
          "load balancing over the target's addresses: round_robin or "
          "pick_first. ghz: --lb-strategy");
ABSL_FLAG(int64_t, check_every, 100,
          "compare every k-th response with the client's own computation "
          "(0: never); a wrong answer is an error of its own kind");
ABSL_FLAG(uint64_t, seed, 1, "seed of the random inputs and Poisson arrivals");
ABSL_FLAG(std::string, bench_json, "",
          "write the report as JSON (actsvc.bench.v1.Report) to this file; "
          "spelled --json FILE");
ABSL_FLAG(std::string, csv, "", "write the report as CSV to this file");
ABSL_FLAG(int32_t, server_pid, 0,
          "a server on this machine: report its minor page faults and CPU "
          "time per call, from /proc/PID/stat");
ABSL_FLAG(std::string, method, "",
          "send the request to this gRPC method instead of the RPC's own, "
          "e.g. /actsvc.bench.v1.Echo/Echo of bench/echo_server.cc; each "
          "checked response must then be the request's own bytes");
ABSL_FLAG(bool, progress, true,
          "a progress line on stderr, when stderr is a terminal");

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;
namespace bv1 = ::actsvc::bench::v1;

// Like ReportUsage, pointing to bench's own help.
int Usage(absl::string_view message) {
  std::fprintf(stderr, "usage error: %s\nrun 'actsvc help bench' for usage\n",
               std::string(message).c_str());
  return kExitUsage;
}

bool IsBoolText(absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  return t == "true" || t == "false" || t == "1" || t == "0" || t == "yes" ||
         t == "no" || t == "t" || t == "f" || t == "y" || t == "n";
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  return static_cast<bool>(file);
}

}  // namespace

const std::vector<absl::string_view>& BenchFlagNames() {
  static const auto* flags = new std::vector<absl::string_view>{
      "rpc",         "function", "alpha",       "axis",        "order",
      "dense",       "shape",    "concurrency", "rps",         "arrival",
      "duration",    "requests", "warmup",      "connections", "lb",
      "check_every", "seed",     "bench_json",  "csv",         "server_pid",
      "method",      "progress", "protocol",    "http_target", "http_json"};
  return *flags;
}

absl::string_view BenchHelpNotes() {
  return R"(
The request (random inputs in [-8, 8) from --seed, --shape default 1,1024) is
built and serialized once and sent by every call. Closed loop: --concurrency N
keeps N calls outstanding. Open loop: --rps R sends R calls per second
(--arrival constant|poisson) however slow the server is; latency counts from
each call's scheduled send time. Each level of a sweep (--concurrency 1,8,64
or --rps 100,1000) gives one report row, after its own --warmup.

Reported per level: requests, RPS, elements/s, MB/s, latency min / mean /
stddev / p50 / p90 / p95 / p99 / p99.9 / max of the calls that returned OK, a
histogram, and counts by status code with a sample message each
(WRONG_ANSWER: a checked response that differs from the client's own
computation). Text on stdout (a bare --json: JSON instead), --json FILE and
--csv FILE for machines. Every RPC is retried on UNAVAILABLE (service config).

--target takes any gRPC target: localhost:50051, dns:///host:port,
ipv4:127.0.0.1:5001,127.0.0.1:5002 (with --lb round_robin to spread calls).
Flags may also be spelled with dashes (--check-every); ghz's -c, -n, -z, -r
and --total work. Exit code 1 when any call failed or answered wrongly.

examples:
  actsvc bench --function=gelu --shape=64,1000 --concurrency=1,8,64 --duration=5s
  actsvc bench --function=sigmoid --rps=1000,5000 --arrival=poisson --warmup=1s
  actsvc bench --rpc=derivative --order=2 --function=tanh -n 10000 -c 16
  actsvc bench --rpc=xent --shape=32,1000 --json report.json --csv report.csv
  actsvc --target=ipv4:127.0.0.1:5001,127.0.0.1:5002 bench --function=relu \
      --connections=4 --concurrency=64
)";
}

std::vector<std::string> RewriteBenchArgs(int argc, const char* const* argv) {
  std::vector<std::string> out(argv, argv + argc);
  // Find the command: the first operand that is not a flag's value.
  int command = -1;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') {
      command = i;
      break;
    }
    absl::string_view name = arg;
    if (!absl::ConsumePrefix(&name, "--")) absl::ConsumePrefix(&name, "-");
    if (absl::StrContains(name, '=')) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag != nullptr && !flag->IsOfType<bool>()) ++i;  // its value
  }
  if (command < 0 || out[command] != "bench") return out;

  std::vector<std::string> rewritten(out.begin(), out.begin() + command + 1);
  for (int i = command + 1; i < argc; ++i) {
    std::string arg = out[i];
    if (arg == "--") {
      rewritten.insert(rewritten.end(), out.begin() + i, out.end());
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      rewritten.push_back(arg);
      continue;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    std::string name(body.substr(0, body.find('=')));
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      value = std::string(body.substr(eq + 1));
    }
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    if (name == "c") name = "concurrency";
    if (name == "n" || name == "total") name = "requests";
    if (name == "z") name = "duration";
    if (name == "r") name = "rps";
    if (name == "lb_strategy") name = "lb";
    if (name == "skip_first" || name == "skipFirst") name = "warmup";
    if (name == "json") {
      if (value.has_value() && !IsBoolText(*value)) {
        name = "bench_json";
      } else if (!value.has_value() && i + 1 < argc &&
                 !absl::StartsWith(out[i + 1], "-")) {
        name = "bench_json";
        value = out[++i];
      }
    }
    rewritten.push_back(value.has_value()
                            ? absl::StrCat("--", name, "=", *value)
                            : absl::StrCat("--", name));
  }
  return rewritten;
}

int WriteReport(const bv1::Report& report);

using Given = std::function<bool(absl::string_view)>;

// The workload's flags into `ws`; INVALID_ARGUMENT says which is wrong.
// `function_name` is the function's canonical name (softmax for xent).
absl::Status WorkloadFromFlags(const Given& given, bench::WorkloadSpec* ws,
                               std::string* function_name) {
  absl::StatusOr<bench::Rpc> rpc = bench::RpcFromName(absl::GetFlag(FLAGS_rpc));
  if (!rpc.ok()) return rpc.status();
  ws->rpc = *rpc;
  *function_name = "softmax";
  if (ws->rpc != bench::Rpc::kXent) {
    *function_name = absl::GetFlag(FLAGS_function);
    if (function_name->empty()) {
      return UsageError("--function is required, e.g. --function=gelu");
    }
    std::optional<Function> f = FunctionFromName(*function_name);
    if (!f.has_value()) {
      return UsageError(absl::StrCat("unknown function '", *function_name,
                                     "'; 'actsvc list' shows the names"));
    }
    *function_name = std::string(FunctionName(*f));
    ws->spec.set_function(static_cast<v1::Function>(static_cast<int>(*f)));
    if (given("alpha")) ws->spec.set_alpha(absl::GetFlag(FLAGS_alpha));
    if (given("axis")) ws->spec.set_axis(absl::GetFlag(FLAGS_axis));
  } else if (given("function") || given("alpha") || given("axis")) {
    return UsageError("--rpc=xent takes no --function, --alpha or --axis");
  }
  ws->order = absl::GetFlag(FLAGS_order);
  ws->dense = absl::GetFlag(FLAGS_dense);
  const std::string shape_text = absl::GetFlag(FLAGS_shape).empty()
                                     ? "1,1024"
                                     : absl::GetFlag(FLAGS_shape);
  absl::StatusOr<std::vector<int64_t>> shape = ParseShape(shape_text);
  if (!shape.ok()) {
    return UsageError(absl::StrCat("--shape: ", shape.status().message()));
  }
  ws->shape = *shape;
  absl::StatusOr<v1::DataType> dtype =
      DtypeFromName(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return dtype.status();
  ws->dtype = *dtype;
  absl::StatusOr<Encoding> encoding =
      EncodingFromName(absl::GetFlag(FLAGS_encoding));
  if (!encoding.ok()) return encoding.status();
  ws->encoding = *encoding;
  ws->seed = absl::GetFlag(FLAGS_seed);
  return absl::OkStatus();
}

// The connection flags into `options`.
absl::Status ConnectionFromFlags(bench::LoadOptions* options) {
  options->target = absl::GetFlag(FLAGS_target);
  options->tls.ca = absl::GetFlag(FLAGS_tls_ca);
  options->tls.cert = absl::GetFlag(FLAGS_tls_cert);
  options->tls.key = absl::GetFlag(FLAGS_tls_key);
  options->tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  options->lb = absl::GetFlag(FLAGS_lb);
  if (options->lb != "round_robin" && options->lb != "pick_first") {
    return UsageError(absl::StrCat("--lb=", options->lb,
                                   " is not one of round_robin, pick_first"));
  }
  options->connections = absl::GetFlag(FLAGS_connections);
  if (options->connections < 1 || options->connections > 1000) {
    return UsageError("--connections must be in [1, 1000]");
  }
  return absl::OkStatus();
}

// The loop's flags (closed or open, levels, arrivals) into `options`.
absl::Status LoopFromFlags(const Given& given, bench::LoadOptions* options) {
  options->open_loop = given("rps");
  absl::StatusOr<std::vector<int>> concurrency =
      bench::ParseConcurrencyLevels(absl::GetFlag(FLAGS_concurrency));
  if (!concurrency.ok()) {
    return UsageError(
        absl::StrCat("--concurrency: ", concurrency.status().message()));
  }
  options->concurrency = *concurrency;
  if (options->open_loop) {
    absl::StatusOr<std::vector<double>> rps =
        bench::ParseRateLevels(absl::GetFlag(FLAGS_rps));
    if (!rps.ok()) {
      return UsageError(absl::StrCat("--rps: ", rps.status().message()));
    }
    options->rps = *rps;
    if (given("concurrency")) {
      if (concurrency->size() != 1) {
        return UsageError(
            "with --rps, --concurrency is the cap on calls in flight: one "
            "value, not a list (sweep one or the other)");
      }
      options->max_outstanding = concurrency->front();
    }
  } else if (given("arrival")) {
    return UsageError("--arrival applies to the open loop: give --rps");
  }
  absl::StatusOr<bench::Arrival> arrival =
      bench::ArrivalFromName(absl::GetFlag(FLAGS_arrival));
  if (!arrival.ok()) return arrival.status();
  options->arrival = *arrival;
  return absl::OkStatus();
}

// How long and how each level runs: duration or requests, warm-up,
// checks, deadlines, the server's pid, progress.
absl::Status LevelFromFlags(bench::LoadOptions* options) {
  options->duration = absl::GetFlag(FLAGS_duration);
  options->requests = absl::GetFlag(FLAGS_requests);
  if (options->requests < 0) {
    return UsageError("--requests must not be negative");
  }
  if (options->requests == 0 && !(options->duration > absl::ZeroDuration() &&
                                  options->duration < absl::Hours(24 * 7))) {
    return UsageError("--duration must be positive (e.g. 10s)");
  }
  if (options->requests > 0) options->duration = absl::ZeroDuration();
  absl::StatusOr<bench::Warmup> warmup =
      bench::ParseWarmup(absl::GetFlag(FLAGS_warmup));
  if (!warmup.ok()) return warmup.status();
  options->warmup = *warmup;
  options->check_every = absl::GetFlag(FLAGS_check_every);
  if (options->check_every < 0) {
    return UsageError("--check_every must be >= 0");
  }
  options->timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  if (!(options->timeout > absl::ZeroDuration())) {
    return UsageError("--timeout_s must be positive");
  }
  options->seed = absl::GetFlag(FLAGS_seed);
  options->server_pid = absl::GetFlag(FLAGS_server_pid);
  options->progress = absl::GetFlag(FLAGS_progress) && isatty(2);
  return absl::OkStatus();
}

// --protocol and --method applied to the workload: KServe's ModelInfer, its
// HTTP form (`http`), or an echo method. `protocol` as the report names it.
absl::Status ProtocolFromFlags(const bench::WorkloadSpec& ws,
                               const bench::LoadOptions& options,
                               bench::Workload* workload,
                               std::optional<bench::HttpWorkload>* http,
                               std::string* protocol) {
  *protocol = absl::GetFlag(FLAGS_protocol);
  if (*protocol == "kserve" || *protocol == "http") {
    if (absl::Status s = bench::UseKServe(ws, workload); !s.ok()) {
      return UsageError(s.message());
    }
  } else if (*protocol != "actsvc") {
    return UsageError(absl::StrCat("--protocol=", *protocol,
                                   " is not actsvc, kserve or http"));
  }
  if (*protocol == "http") {
    if (options.open_loop) {
      return UsageError("--protocol=http runs a closed loop only (no --rps)");
    }
    absl::StatusOr<bench::HttpWorkload> made =
        bench::MakeHttpWorkload(*workload, absl::GetFlag(FLAGS_http_target),
                                absl::GetFlag(FLAGS_http_json));
    if (!made.ok()) return UsageError(made.status().message());
    *http = *std::move(made);
    if (absl::GetFlag(FLAGS_http_json)) *protocol = "http-json";
  }
  const std::string method = absl::GetFlag(FLAGS_method);
  if (method.empty()) return absl::OkStatus();
  if (ws.rpc == bench::Rpc::kStream || http->has_value()) {
    return UsageError(
        "--method sends unary gRPC calls; it does not go with --rpc=stream "
        "or --protocol=http");
  }
  if (method.size() < 4 || method[0] != '/' ||
      method.find('/', 1) == std::string::npos) {
    return UsageError(absl::StrCat("--method=", method,
                                   " is not a gRPC method path like "
                                   "/package.Service/Method"));
  }
  workload->method = method;
  workload->echo = true;
  return absl::OkStatus();
}

// The report's record of the run's settings.
bv1::Config MakeConfig(const bench::WorkloadSpec& ws,
                       const bench::LoadOptions& options,
                       const bench::Workload& workload,
                       const std::string& protocol,
                       const std::string& function_name) {
  bv1::Config config;
  config.set_target(options.target);
  config.set_load_balancing(options.lb);
  config.set_connections(options.connections);
  config.set_rpc(std::string(bench::RpcName(ws.rpc)));
  config.set_method(workload.echo ? workload.method : "");
  config.set_protocol(protocol);
  config.set_function(function_name);
  config.mutable_shape()->Add(ws.shape.begin(), ws.shape.end());
  config.set_dtype(std::string(DtypeName(ws.dtype)));
  config.set_encoding(ws.encoding == Encoding::kRaw ? "raw" : "typed");
  config.set_order(ws.rpc == bench::Rpc::kDerivative ? ws.order : 0);
  config.set_seed(ws.seed);
  config.set_mode(options.open_loop ? "open" : "closed");
  config.set_arrival(options.open_loop
                         ? (options.arrival == bench::Arrival::kPoisson
                                ? "poisson"
                                : "constant")
                         : "");
  config.set_duration_s(absl::ToDoubleSeconds(options.duration));
  config.set_requests(options.requests);
  config.set_warmup(absl::GetFlag(FLAGS_warmup));
  config.set_check_every(options.check_every);
  config.set_timeout_s(absl::ToDoubleSeconds(options.timeout));
  config.set_request_bytes(workload.request_bytes);
  config.set_elements(workload.elements);
  config.set_started_at(
      absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()));
  return config;
}

int RunBench(const std::set<std::string>& specified) {
  const Given given = [&](absl::string_view flag) {
    return specified.count(std::string(flag)) > 0;
  };
  bench::WorkloadSpec ws;
  bench::LoadOptions options;
  std::string function_name;
  for (absl::Status s :
       {WorkloadFromFlags(given, &ws, &function_name),
        ConnectionFromFlags(&options), LoopFromFlags(given, &options),
        LevelFromFlags(&options)}) {
    if (!s.ok()) return Usage(s.message());
  }
  absl::StatusOr<bench::Workload> workload = bench::BuildWorkload(ws);
  if (!workload.ok()) {
    if (workload.status().code() == absl::StatusCode::kInvalidArgument) {
      return Usage(workload.status().message());
    }
    std::fprintf(stderr, "error: %s\n", workload.status().ToString().c_str());
    return kExitFailure;
  }
  std::optional<bench::HttpWorkload> http;
  std::string protocol;
  if (absl::Status s =
          ProtocolFromFlags(ws, options, &*workload, &http, &protocol);
      !s.ok()) {
    return Usage(s.message());
  }
  bv1::Report report;
  *report.mutable_config() =
      MakeConfig(ws, options, *workload, protocol, function_name);
  if (http) {
    report.mutable_config()->set_target(absl::GetFlag(FLAGS_http_target));
    report.mutable_config()->set_request_bytes(http->body_bytes);
    for (bv1::Row& row : bench::RunHttpLoad(options, *http, *workload)) {
      *report.add_rows() = std::move(row);
    }
    return WriteReport(report);
  }
  absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> channels =
      bench::ConnectChannels(options,
                             std::min(options.timeout, absl::Seconds(10)));
  if (!channels.ok()) {
    std::fprintf(stderr, "error: %s: %s\n",
                 absl::StatusCodeToString(channels.status().code()).c_str(),
                 std::string(channels.status().message()).c_str());
    return kExitFailure;
  }
  for (bv1::Row& row : bench::RunLoad(options, *workload, *channels)) {
    *report.add_rows() = std::move(row);
  }
  return WriteReport(report);
}

// Prints the report and writes its files; the exit code.
int WriteReport(const bv1::Report& report) {
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", bench::FormatJson(report).c_str());
  } else {
    std::fputs(bench::FormatText(report).c_str(), stdout);
  }
  std::fflush(stdout);
  int exit_code = kExitOk;
  if (const std::string path = absl::GetFlag(FLAGS_bench_json); !path.empty()) {
    if (!WriteFile(path, bench::FormatJson(report) + "\n")) {
      std::fprintf(stderr, "error: cannot write %s\n", path.c_str());
      exit_code = kExitFailure;
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_csv); !path.empty()) {
    if (!WriteFile(path, bench::FormatCsv(report))) {
      std::fprintf(stderr, "error: cannot write %s\n", path.c_str());
      exit_code = kExitFailure;
    }
  }
  for (const bv1::Row& row : report.rows()) {
    if (row.errors() > 0 || row.requests() == 0) exit_code = kExitFailure;
  }
  return exit_code;
}

}  // namespace actsvc::client
