#include "client/cli_io.h"

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli_flags.h"
#include "client/format.h"
#include "client/npy.h"
#include "client/values.h"
#include "core/activation.h"
#include "google/protobuf/util/json_util.h"

namespace actsvc::client {

namespace v1 = ::actsvc::v1;

std::unique_ptr<grpc::ClientContext> Context::CallContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(
      absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_timeout_s))));
  return context;
}

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

namespace {

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

}  // namespace

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

}  // namespace actsvc::client
