// actsvc: the command-line client of the activation service.
//
// Over 800 lines for now: one Run* per command, each the same call pattern;
// issue 21 moves the commands into the client library behind one call
// helper, which takes this file under the bar.
//
//   actsvc [global flags] <command> [flags]
//
// Exit codes: 0 success, 1 the call failed (or the server is not serving),
// 2 usage error. Errors go to stderr as "error: <CODE_NAME>: <message>".
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "client/args.h"
#include "client/bench_cli.h"
#include "client/format.h"
#include "client/npy.h"
#include "client/report.h"
#include "client/tensor.h"
#include "client/tls.h"
#include "client/values.h"
#include "core/activation.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

#ifndef ACTSVC_VERSION
#define ACTSVC_VERSION "unknown"
#endif

// Global flags.
ABSL_FLAG(std::string, target, "localhost:50051", "server address, host:port");
ABSL_FLAG(double, timeout_s, 30, "deadline of each call, in seconds");
ABSL_FLAG(std::string, tls_ca, "",
          "connect with TLS, verifying the server with this PEM CA bundle "
          "(any --tls_* flag turns TLS on; without --tls_ca: system roots)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate, for servers that require one (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "the name the server's certificate must carry, when not the "
          "--target host (e.g. when connecting by IP address)");
ABSL_FLAG(bool, json, false,
          "print the response as JSON (protobuf's mapping; tensors as "
          "floatData/doubleData)");
ABSL_FLAG(std::string, dtype, "float32",
          "float32, float64, float16 or bfloat16 (default for --x_npy: the "
          "file's dtype; a '<u2' .npy holds bfloat16 bit patterns, and any "
          "float .npy is rounded to --dtype by the client)");
ABSL_FLAG(
    std::string, encoding, "raw",
    "raw (packed bytes, the fast path) or typed (float_data/double_data)");

// Command flags.
ABSL_FLAG(double, wait_s, 0,
          "retry until SERVING or this many seconds have passed");
ABSL_FLAG(std::string, function, "",
          "function name or alias, e.g. sigmoid, gelu, swish, softmax");
ABSL_FLAG(double, alpha, 0,
          "parameter of leaky_relu and elu (default: the function's own)");
ABSL_FLAG(int32_t, axis, -1,
          "axis of softmax and log_softmax (default: the server's, -1)");
ABSL_FLAG(int32_t, order, 1, "1 for f'(x), 2 for f''(x) (default: 1)");
ABSL_FLAG(std::string, shape, "",
          "shape of --x, e.g. 2,3 or [] (default: 1-D of the values)");
ABSL_FLAG(std::string, x, "", "input values, e.g. 1,-2.5,inf,nan");
ABSL_FLAG(std::string, x_npy, "", "input from a .npy file (<f4 or <f8)");
ABSL_FLAG(std::string, grad, "",
          "upstream gradient (shape of x): returns the VJP g * f'(x)");
ABSL_FLAG(std::string, grad_npy, "", "upstream gradient from a .npy file");
ABSL_FLAG(bool, dense, false,
          "elementwise functions: the dense [..., C, C] Jacobian instead of "
          "the diagonal");
ABSL_FLAG(std::string, labels, "", "class index per row, e.g. 0,2");
ABSL_FLAG(std::string, target_probs, "",
          "target probabilities, shape of the logits");
ABSL_FLAG(std::string, target_probs_npy, "",
          "target probabilities from a .npy file");
ABSL_FLAG(std::string, reduction, "mean", "mean, sum or none");
ABSL_FLAG(double, label_smoothing, 0, "in [0, 1)");
ABSL_FLAG(int64_t, ignore_index, -100,
          "rows with this class index count for nothing (sent only when "
          "given)");
ABSL_FLAG(bool, probs, false, "also return softmax(logits)");
ABSL_FLAG(std::string, ops, "evaluate,derivative",
          "stream: the requests sent for the input, in order: evaluate, "
          "derivative, derivative2 (f'')");
ABSL_FLAG(int32_t, repeat, 1,
          "stream: send the --ops sequence this many times");
ABSL_FLAG(double, epsilon, 0,
          "analyze: a unit is saturated when |f'(x)| < epsilon (default: "
          "the server's, 1e-3)");
ABSL_FLAG(int32_t, layers, 0,
          "analyze: depth L for the attenuation (mean |f'|)^L (sent only "
          "when given)");
ABSL_FLAG(std::string, out_npy, "",
          "save the main output tensor (xent: grad_logits) to a .npy file");

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// The server's default port, for a --target without one.
constexpr int kDefaultPort = 50051;

const std::vector<absl::string_view>& GlobalFlags() {
  static const auto* flags = new std::vector<absl::string_view>{
      "target", "timeout_s", "json",    "dtype",          "encoding",
      "tls_ca", "tls_cert",  "tls_key", "tls_server_name"};
  return *flags;
}

struct Context {
  ParsedArgs args;
  std::shared_ptr<grpc::Channel> channel;
  bool json = false;
  Encoding encoding = Encoding::kRaw;

  bool Has(absl::string_view flag) const {
    return args.specified.count(std::string(flag)) > 0;
  }
  std::unique_ptr<grpc::ClientContext> CallContext() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(
        absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_timeout_s))));
    return context;
  }
};

struct Command {
  absl::string_view name;
  absl::string_view summary;
  std::vector<absl::string_view> flags;
  int (*run)(const Context&);
};

const std::vector<Command>& Commands();

// A problem with the command line: exit 2.
absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// A local file named by --<flag> cannot be used: the user's to fix (exit
// 2), in words of its own rather than a status code like a server's.
absl::Status FileFlagError(absl::string_view flag, const absl::Status& status) {
  return UsageError(absl::StrCat("--", flag, ": ", status.message()));
}

int ReportUsage(const absl::Status& status) {
  std::fprintf(stderr, "usage error: %s\nrun 'actsvc help' for usage\n",
               std::string(status.message()).c_str());
  return kExitUsage;
}

int ReportError(int code, absl::string_view message) {
  std::fprintf(
      stderr, "error: %s: %s\n",
      absl::StatusCodeToString(static_cast<absl::StatusCode>(code)).c_str(),
      std::string(message).c_str());
  return kExitFailure;
}

int ReportRpcError(const grpc::Status& status) {
  return ReportError(status.error_code(), status.error_message());
}

// Client-side INVALID_ARGUMENT is the user's input (exit 2); anything else,
// such as an unreadable file, is a failure (exit 1).
int ReportLocalError(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    return ReportUsage(status);
  }
  return ReportError(static_cast<int>(status.code()), status.message());
}

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  // Cannot fail for generated messages without Any fields.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::printf("%s\n", json.c_str());
}

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

// ---------------------------------------------------------------------------
// Building requests from flags.

absl::StatusOr<v1::FunctionSpec> SpecFromFlags(const Context& ctx) {
  const std::string name = absl::GetFlag(FLAGS_function);
  if (name.empty()) {
    return UsageError(
        "--function is required, e.g. --function=gelu "
        "(see 'actsvc list')");
  }
  std::optional<Function> f = FunctionFromName(name);
  if (!f.has_value()) {
    return UsageError(absl::StrCat("unknown function '", name,
                                   "'; 'actsvc list' shows the names"));
  }
  v1::FunctionSpec spec;
  spec.set_function(static_cast<v1::Function>(static_cast<int>(*f)));
  // Unset fields mean "the function's default"; only send what was given.
  if (ctx.Has("alpha")) spec.set_alpha(absl::GetFlag(FLAGS_alpha));
  if (ctx.Has("axis")) spec.set_axis(absl::GetFlag(FLAGS_axis));
  return spec;
}

absl::StatusOr<v1::DataType> DtypeFlag() {
  return DtypeFromName(absl::GetFlag(FLAGS_dtype));
}

// The main input: --x (with --shape) or --x_npy. Its dtype is --dtype when
// given, else the file's (npy) or float32.
absl::StatusOr<v1::Tensor> InputTensor(const Context& ctx,
                                       absl::string_view what) {
  const bool inline_values = ctx.Has("x");
  const bool from_file = ctx.Has("x_npy");
  if (inline_values == from_file) {
    return UsageError(absl::StrCat("give the ", what,
                                   " as exactly one of --x=1,2,3 or "
                                   "--x_npy=FILE"));
  }
  absl::StatusOr<v1::DataType> dtype = DtypeFlag();
  if (!dtype.ok()) return dtype.status();
  std::optional<std::vector<int64_t>> shape;
  if (ctx.Has("shape") && !absl::GetFlag(FLAGS_shape).empty()) {
    absl::StatusOr<std::vector<int64_t>> parsed =
        ParseShape(absl::GetFlag(FLAGS_shape));
    if (!parsed.ok()) {
      return UsageError(absl::StrCat("--shape: ", parsed.status().message()));
    }
    shape = *std::move(parsed);
  }

  if (from_file) {
    absl::StatusOr<NpyArray> array = ReadNpyFile(absl::GetFlag(FLAGS_x_npy));
    if (!array.ok()) return FileFlagError("x_npy", array.status());
    // --shape reshapes; a count that does not fit is the server's to report.
    if (!shape.has_value()) shape = array->shape;
    const v1::DataType to = ctx.Has("dtype") ? *dtype : array->dtype;
    return MakeTensorFromBytes(*shape, array->dtype, array->data, to,
                               ctx.encoding);
  }

  absl::StatusOr<std::vector<double>> values =
      ParseValues(absl::GetFlag(FLAGS_x), *dtype);
  if (!values.ok()) {
    return UsageError(absl::StrCat("--x: ", values.status().message()));
  }
  if (!shape.has_value()) {
    shape = std::vector<int64_t>{static_cast<int64_t>(values->size())};
  }
  // A count that does not fit the shape is sent as is: the server's
  // INVALID_ARGUMENT names the field and both numbers.
  return MakeTensor(*shape, *dtype, *values, ctx.encoding);
}

// A tensor shaped like `like` (the upstream gradient, the target
// probabilities), from --<flag> or --<flag>_npy; nullopt when neither is set.
absl::StatusOr<std::optional<v1::Tensor>> CompanionTensor(
    const Context& ctx, absl::string_view flag, const std::string& text,
    const std::string& npy_path, const v1::Tensor& like) {
  const std::string npy_flag = absl::StrCat(flag, "_npy");
  const bool inline_values = ctx.Has(flag);
  const bool from_file = ctx.Has(npy_flag);
  if (inline_values && from_file) {
    return UsageError(
        absl::StrCat("give only one of --", flag, " and --", npy_flag));
  }
  if (!inline_values && !from_file) return std::nullopt;
  if (from_file) {
    absl::StatusOr<NpyArray> array = ReadNpyFile(npy_path);
    if (!array.ok()) return FileFlagError(npy_flag, array.status());
    return MakeTensorFromBytes(array->shape, array->dtype, array->data,
                               like.dtype(), ctx.encoding);
  }
  absl::StatusOr<std::vector<double>> values = ParseValues(text, like.dtype());
  if (!values.ok()) {
    return UsageError(
        absl::StrCat("--", flag, ": ", values.status().message()));
  }
  std::vector<int64_t> shape(like.shape().begin(), like.shape().end());
  return MakeTensor(shape, like.dtype(), *values, ctx.encoding);
}

// ---------------------------------------------------------------------------
// Printing responses.

absl::Status PrintTensor(absl::string_view name, const v1::Tensor& tensor) {
  absl::StatusOr<std::vector<double>> values = TensorValues(tensor);
  if (!values.ok()) return values.status();
  std::vector<int64_t> shape(tensor.shape().begin(), tensor.shape().end());
  std::fputs(FormatNamedTensor(name, shape, *values, tensor.dtype()).c_str(),
             stdout);
  return absl::OkStatus();
}

absl::Status SaveNpy(const Context& ctx, const v1::Tensor& tensor) {
  if (!ctx.Has("out_npy")) return absl::OkStatus();
  absl::StatusOr<std::string> bytes = TensorBytes(tensor);
  if (!bytes.ok()) return bytes.status();
  NpyArray array;
  array.shape.assign(tensor.shape().begin(), tensor.shape().end());
  array.dtype = tensor.dtype();
  array.data = *std::move(bytes);
  absl::Status written = WriteNpyFile(absl::GetFlag(FLAGS_out_npy), array);
  if (!written.ok()) return FileFlagError("out_npy", written);
  return absl::OkStatus();
}

// Prints `tensors` (name, tensor) or the whole response as JSON, then saves
// the main one.
int Finish(
    const Context& ctx, google::protobuf::Message* response,
    const std::vector<std::pair<absl::string_view, v1::Tensor*>>& tensors,
    const v1::Tensor& main_tensor) {
  if (absl::Status saved = SaveNpy(ctx, main_tensor); !saved.ok()) {
    return ReportLocalError(saved);
  }
  if (ctx.json) {
    for (const auto& [name, tensor] : tensors) {
      if (absl::Status s = ConvertToTyped(tensor); !s.ok()) {
        return ReportLocalError(s);
      }
    }
    PrintJson(*response);
    return kExitOk;
  }
  for (const auto& [name, tensor] : tensors) {
    if (absl::Status s = PrintTensor(name, *tensor); !s.ok()) {
      return ReportLocalError(s);
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// Commands.

int RunHealth(const Context& ctx) {
  auto stub = Health::NewStub(ctx.channel);
  const absl::Duration wait = absl::Seconds(absl::GetFlag(FLAGS_wait_s));
  const absl::Time give_up = absl::Now() + wait;
  const absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  while (true) {
    grpc::ClientContext context;
    const absl::Time now = absl::Now();
    context.set_deadline(absl::ToChronoTime(
        now + (wait > absl::ZeroDuration() ? std::min(timeout, give_up - now)
                                           : timeout)));
    // While waiting, a refused connection is expected: queue the call until
    // the channel connects instead of failing at once.
    context.set_wait_for_ready(wait > absl::ZeroDuration());
    HealthCheckRequest request;
    HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    const bool serving =
        status.ok() && response.status() == HealthCheckResponse::SERVING;
    if (serving || absl::Now() + absl::Milliseconds(100) >= give_up) {
      if (!status.ok() && wait > absl::ZeroDuration() &&
          status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        return ReportError(
            static_cast<int>(absl::StatusCode::kUnavailable),
            absl::StrCat("no answer from ", absl::GetFlag(FLAGS_target),
                         " within --wait_s=", absl::GetFlag(FLAGS_wait_s)));
      }
      if (!status.ok()) return ReportRpcError(status);
      if (ctx.json) {
        PrintJson(response);
      } else {
        std::printf(
            "%s\n",
            HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
      }
      return serving ? kExitOk : kExitFailure;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

int RunList(const Context& ctx) {
  auto stub = v1::ActivationService::NewStub(ctx.channel);
  auto context = ctx.CallContext();
  v1::ListFunctionsResponse response;
  grpc::Status status =
      stub->ListFunctions(context.get(), v1::ListFunctionsRequest(), &response);
  if (!status.ok()) return ReportRpcError(status);

  if (ctx.Has("function")) {
    std::optional<Function> f = FunctionFromName(absl::GetFlag(FLAGS_function));
    if (!f.has_value()) {
      return ReportUsage(UsageError(absl::StrCat(
          "unknown function '", absl::GetFlag(FLAGS_function), "'")));
    }
    for (const v1::FunctionInfo& info : response.functions()) {
      if (static_cast<int>(info.function()) != static_cast<int>(*f)) continue;
      if (ctx.json) {
        PrintJson(info);
      } else {
        std::fputs(FormatFunctionDetails(info).c_str(), stdout);
      }
      return kExitOk;
    }
    return ReportError(static_cast<int>(absl::StatusCode::kNotFound),
                       "the server does not list that function");
  }
  if (ctx.json) {
    PrintJson(response);
    return kExitOk;
  }

  std::fputs(FormatFunctionTable(response).c_str(), stdout);
  return kExitOk;
}

int RunEvaluate(const Context& ctx) {
  v1::EvaluateRequest request;
  absl::StatusOr<v1::FunctionSpec> spec = SpecFromFlags(ctx);
  if (!spec.ok()) return ReportLocalError(spec.status());
  absl::StatusOr<v1::Tensor> input = InputTensor(ctx, "input");
  if (!input.ok()) return ReportLocalError(input.status());
  *request.mutable_spec() = *std::move(spec);
  *request.mutable_input() = *std::move(input);

  auto stub = v1::ActivationService::NewStub(ctx.channel);
  auto context = ctx.CallContext();
  v1::EvaluateResponse response;
  grpc::Status status = stub->Evaluate(context.get(), request, &response);
  if (!status.ok()) return ReportRpcError(status);
  return Finish(ctx, &response, {{"output", response.mutable_output()}},
                response.output());
}

int RunDerivative(const Context& ctx) {
  v1::DerivativeRequest request;
  absl::StatusOr<v1::FunctionSpec> spec = SpecFromFlags(ctx);
  if (!spec.ok()) return ReportLocalError(spec.status());
  absl::StatusOr<v1::Tensor> input = InputTensor(ctx, "input");
  if (!input.ok()) return ReportLocalError(input.status());
  absl::StatusOr<std::optional<v1::Tensor>> grad =
      CompanionTensor(ctx, "grad", absl::GetFlag(FLAGS_grad),
                      absl::GetFlag(FLAGS_grad_npy), *input);
  if (!grad.ok()) return ReportLocalError(grad.status());
  *request.mutable_spec() = *std::move(spec);
  *request.mutable_input() = *std::move(input);
  // The server validates the order, so that its message is the one shown.
  if (ctx.Has("order")) request.set_order(absl::GetFlag(FLAGS_order));
  if (grad->has_value()) *request.mutable_upstream_grad() = **std::move(grad);

  auto stub = v1::ActivationService::NewStub(ctx.channel);
  auto context = ctx.CallContext();
  v1::DerivativeResponse response;
  grpc::Status status = stub->Derivative(context.get(), request, &response);
  if (!status.ok()) return ReportRpcError(status);
  return Finish(ctx, &response, {{"output", response.mutable_output()}},
                response.output());
}

int RunJacobian(const Context& ctx) {
  v1::JacobianRequest request;
  absl::StatusOr<v1::FunctionSpec> spec = SpecFromFlags(ctx);
  if (!spec.ok()) return ReportLocalError(spec.status());
  absl::StatusOr<v1::Tensor> input = InputTensor(ctx, "input");
  if (!input.ok()) return ReportLocalError(input.status());
  *request.mutable_spec() = *std::move(spec);
  *request.mutable_input() = *std::move(input);
  request.set_dense(absl::GetFlag(FLAGS_dense));

  auto stub = v1::ActivationService::NewStub(ctx.channel);
  auto context = ctx.CallContext();
  v1::JacobianResponse response;
  grpc::Status status = stub->Jacobian(context.get(), request, &response);
  if (!status.ok()) return ReportRpcError(status);
  return Finish(ctx, &response,
                {{response.diagonal() ? "jacobian (diagonal)" : "jacobian",
                  response.mutable_jacobian()}},
                response.jacobian());
}

int RunXent(const Context& ctx) {
  v1::SoftmaxCrossEntropyRequest request;
  absl::StatusOr<v1::Tensor> logits = InputTensor(ctx, "logits");
  if (!logits.ok()) return ReportLocalError(logits.status());
  absl::StatusOr<std::optional<v1::Tensor>> targets =
      CompanionTensor(ctx, "target_probs", absl::GetFlag(FLAGS_target_probs),
                      absl::GetFlag(FLAGS_target_probs_npy), *logits);
  if (!targets.ok()) return ReportLocalError(targets.status());
  if (ctx.Has("labels") == targets->has_value()) {
    return ReportUsage(UsageError(
        "give the labels as exactly one of --labels=0,2 (class indices) or "
        "--target_probs / --target_probs_npy"));
  }
  if (ctx.Has("labels")) {
    absl::StatusOr<std::vector<int64_t>> labels =
        ParseIntegers(absl::GetFlag(FLAGS_labels));
    if (!labels.ok()) {
      return ReportUsage(
          UsageError(absl::StrCat("--labels: ", labels.status().message())));
    }
    request.mutable_class_indices()->Add(labels->begin(), labels->end());
  } else {
    *request.mutable_target_probs() = **std::move(targets);
  }
  const std::string reduction =
      absl::AsciiStrToLower(absl::GetFlag(FLAGS_reduction));
  v1::SoftmaxCrossEntropyRequest::Reduction r;
  if (!v1::SoftmaxCrossEntropyRequest::Reduction_Parse(
          absl::AsciiStrToUpper(reduction), &r)) {
    return ReportUsage(UsageError(absl::StrCat(
        "--reduction=", reduction, " is not one of mean, sum, none")));
  }
  *request.mutable_logits() = *std::move(logits);
  request.set_reduction(r);
  request.set_label_smoothing(absl::GetFlag(FLAGS_label_smoothing));
  if (ctx.Has("ignore_index")) {
    request.set_ignore_index(absl::GetFlag(FLAGS_ignore_index));
  }
  request.set_return_probabilities(absl::GetFlag(FLAGS_probs));

  auto stub = v1::ActivationService::NewStub(ctx.channel);
  auto context = ctx.CallContext();
  v1::SoftmaxCrossEntropyResponse response;
  grpc::Status status =
      stub->SoftmaxCrossEntropy(context.get(), request, &response);
  if (!status.ok()) return ReportRpcError(status);
  std::vector<std::pair<absl::string_view, v1::Tensor*>> tensors = {
      {"loss", response.mutable_loss()},
      {"grad_logits", response.mutable_grad_logits()}};
  if (response.has_probabilities()) {
    tensors.push_back({"probabilities", response.mutable_probabilities()});
  }
  return Finish(ctx, &response, tensors, response.grad_logits());
}

int RunStream(const Context& ctx) {
  absl::StatusOr<v1::FunctionSpec> spec = SpecFromFlags(ctx);
  if (!spec.ok()) return ReportLocalError(spec.status());
  absl::StatusOr<v1::Tensor> input = InputTensor(ctx, "input");
  if (!input.ok()) return ReportLocalError(input.status());
  absl::StatusOr<std::optional<v1::Tensor>> grad =
      CompanionTensor(ctx, "grad", absl::GetFlag(FLAGS_grad),
                      absl::GetFlag(FLAGS_grad_npy), *input);
  if (!grad.ok()) return ReportLocalError(grad.status());
  const int repeat = absl::GetFlag(FLAGS_repeat);
  if (repeat < 1) return ReportUsage(UsageError("--repeat must be >= 1"));

  std::vector<v1::StreamRequest> sequence;
  std::vector<std::string> labels;  // of each response, by --ops
  for (absl::string_view op :
       absl::StrSplit(absl::GetFlag(FLAGS_ops), ',', absl::SkipWhitespace())) {
    v1::StreamRequest request;
    if (op == "evaluate") {
      *request.mutable_evaluate()->mutable_spec() = *spec;
      *request.mutable_evaluate()->mutable_input() = *input;
    } else if (op == "derivative" || op == "derivative2") {
      v1::DerivativeRequest* d = request.mutable_derivative();
      *d->mutable_spec() = *spec;
      *d->mutable_input() = *input;
      d->set_order(op == "derivative2" ? 2 : 1);
      if (grad->has_value()) *d->mutable_upstream_grad() = **grad;
    } else {
      return ReportUsage(UsageError(
          absl::StrCat("--ops: '", op,
                       "' is not one of evaluate, derivative, derivative2")));
    }
    labels.push_back(op == "derivative2" ? "derivative2 (f'')"
                                         : std::string(op));
    sequence.push_back(std::move(request));
  }
  if (sequence.empty()) return ReportUsage(UsageError("--ops is empty"));

  auto stub = v1::ActivationService::NewStub(ctx.channel);
  auto context = ctx.CallContext();
  auto stream = stub->Stream(context.get());
  // Responses are read while requests are written: with both directions
  // flow-controlled, writing everything first could stall a long stream.
  std::vector<v1::StreamResponse> responses;
  std::thread reader([&stream, &responses] {
    v1::StreamResponse response;
    while (stream->Read(&response)) responses.push_back(std::move(response));
  });
  for (int r = 0; r < repeat; ++r) {
    for (const v1::StreamRequest& request : sequence) {
      if (!stream->Write(request)) break;  // Finish() reports why
    }
  }
  stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();

  // The responses that came back are shown even when the stream failed.
  int index = 0;
  for (v1::StreamResponse& response : responses) {
    v1::Tensor* tensor = response.has_evaluate()
                             ? response.mutable_evaluate()->mutable_output()
                             : response.mutable_derivative()->mutable_output();
    const std::string name = absl::StrCat(
        "[", index, "] ", labels[index % labels.size()], " output");
    ++index;
    if (ctx.json) {
      if (absl::Status s = ConvertToTyped(tensor); !s.ok()) {
        return ReportLocalError(s);
      }
      PrintJson(response);
    } else if (absl::Status s = PrintTensor(name, *tensor); !s.ok()) {
      return ReportLocalError(s);
    }
  }
  if (!status.ok()) return ReportRpcError(status);
  return kExitOk;
}

int RunAnalyze(const Context& ctx) {
  v1::AnalyzeRequest request;
  absl::StatusOr<v1::FunctionSpec> spec = SpecFromFlags(ctx);
  if (!spec.ok()) return ReportLocalError(spec.status());
  absl::StatusOr<v1::Tensor> input = InputTensor(ctx, "input");
  if (!input.ok()) return ReportLocalError(input.status());
  *request.mutable_spec() = *std::move(spec);
  *request.mutable_input() = *std::move(input);
  // The server validates both, so that its message is the one shown.
  if (ctx.Has("epsilon")) request.set_epsilon(absl::GetFlag(FLAGS_epsilon));
  if (ctx.Has("layers")) request.set_layers(absl::GetFlag(FLAGS_layers));

  auto stub = v1::ActivationService::NewStub(ctx.channel);
  auto context = ctx.CallContext();
  v1::AnalyzeResponse response;
  grpc::Status status = stub->Analyze(context.get(), request, &response);
  if (!status.ok()) return ReportRpcError(status);
  if (ctx.json) {
    PrintJson(response);
    return kExitOk;
  }
  std::fputs(FormatAnalysis(response, request.layers()).c_str(), stdout);
  return kExitOk;
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

int Main(int argc, char** argv) {
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
    std::printf("actsvc " ACTSVC_VERSION "\n");
    return kExitOk;
  }
  if (ctx.args.positional.empty()) {
    if (ctx.args.help) {
      PrintUsage();
      return kExitOk;
    }
    PrintUsage();
    return kExitUsage;
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
  if (command->name != "help" && ctx.args.positional.size() > 1) {
    return ReportUsage(UsageError(absl::StrCat(
        "unexpected argument '", ctx.args.positional[1], "' after ", name)));
  }
  // A flag of another command is a mistake worth reporting, not ignoring.
  for (const std::string& flag : ctx.args.specified) {
    const bool allowed = std::find(GlobalFlags().begin(), GlobalFlags().end(),
                                   flag) != GlobalFlags().end() ||
                         std::find(command->flags.begin(), command->flags.end(),
                                   flag) != command->flags.end();
    if (!allowed) {
      return ReportUsage(
          UsageError(absl::StrCat("--", flag, " does not apply to '", name,
                                  "' (see 'actsvc help ", name, "')")));
    }
  }

  absl::StatusOr<Encoding> encoding =
      EncodingFromName(absl::GetFlag(FLAGS_encoding));
  if (!encoding.ok()) return ReportUsage(encoding.status());
  if (absl::StatusOr<v1::DataType> dtype = DtypeFlag(); !dtype.ok()) {
    return ReportUsage(dtype.status());
  }
  if (!(absl::GetFlag(FLAGS_timeout_s) > 0)) {
    return ReportUsage(UsageError("--timeout_s must be positive"));
  }
  // Before the call, so that no work is lost to a path we cannot write.
  if (ctx.Has("out_npy")) {
    absl::Status writable = CheckNpyWritable(absl::GetFlag(FLAGS_out_npy));
    if (!writable.ok()) return ReportUsage(FileFlagError("out_npy", writable));
  }
  ctx.encoding = *encoding;
  ctx.json = absl::GetFlag(FLAGS_json);
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
  if (!channel.ok()) return ReportUsage(channel.status());
  ctx.channel = *std::move(channel);
  return command->run(ctx);
}

}  // namespace
}  // namespace actsvc::client

int main(int argc, char** argv) { return actsvc::client::Main(argc, argv); }
