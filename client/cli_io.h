// The CLI's commands share these: their context (the parsed command line
// and the channel), the requests' parts built from flags (function spec,
// input and companion tensors), the printing of responses, and the
// reporting of errors with the CLI's exit codes.
#ifndef ACTSVC_CLIENT_CLI_IO_H_
#define ACTSVC_CLIENT_CLI_IO_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "actsvc/v1/activation.pb.h"
#include "client/args.h"
#include "client/tensor.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::client {

// Exit codes: 0 success, 1 the call failed (or the server is not serving),
// 2 usage error.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct Context {
  ParsedArgs args;
  std::shared_ptr<grpc::Channel> channel;
  bool json = false;
  Encoding encoding = Encoding::kRaw;

  bool Has(absl::string_view flag) const {
    return args.specified.count(std::string(flag)) > 0;
  }
  // A call's context with the --timeout_s deadline.
  std::unique_ptr<grpc::ClientContext> CallContext() const;
};

// A problem with the command line: exit 2.
absl::Status UsageError(absl::string_view message);
// A local file named by --<flag> cannot be used: the user's to fix (exit
// 2), in words of its own rather than a status code like a server's.
absl::Status FileFlagError(absl::string_view flag, const absl::Status& status);

// Each prints to stderr and returns the exit code: "usage error: ..." (2),
// "error: <CODE_NAME>: <message>" (1); a client-side INVALID_ARGUMENT is
// the user's input (2), anything else such as an unreadable file a
// failure (1).
int ReportUsage(const absl::Status& status);
int ReportError(int code, absl::string_view message);
int ReportRpcError(const grpc::Status& status);
int ReportLocalError(const absl::Status& status);

// The message as JSON (protobuf's mapping, defaults included) on stdout.
void PrintJson(const google::protobuf::Message& message);

// --function (a name or alias), with --alpha and --axis when given.
absl::StatusOr<actsvc::v1::FunctionSpec> SpecFromFlags(const Context& ctx);
absl::StatusOr<actsvc::v1::DataType> DtypeFlag();

// The main input: --x (with --shape) or --x_npy. Its dtype is --dtype when
// given, else the file's (npy) or float32. `what` names it in errors.
absl::StatusOr<actsvc::v1::Tensor> InputTensor(const Context& ctx,
                                               absl::string_view what);

// A tensor shaped like `like` (the upstream gradient, the target
// probabilities), from --<flag> or --<flag>_npy; nullopt when neither is set.
absl::StatusOr<std::optional<actsvc::v1::Tensor>> CompanionTensor(
    const Context& ctx, absl::string_view flag, const std::string& text,
    const std::string& npy_path, const actsvc::v1::Tensor& like);

// "<name>: <dtype> <shape>" and the values, on stdout.
absl::Status PrintTensor(absl::string_view name,
                         const actsvc::v1::Tensor& tensor);

// Prints `tensors` (name, tensor) or the whole response as JSON, after
// saving the main one to --out_npy when given; the exit code.
int Finish(const Context& ctx, google::protobuf::Message* response,
           const std::vector<std::pair<absl::string_view, actsvc::v1::Tensor*>>&
               tensors,
           const actsvc::v1::Tensor& main_tensor);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_CLI_IO_H_
