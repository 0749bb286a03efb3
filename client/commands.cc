#include "client/commands.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "client/cli_flags.h"
#include "client/report.h"
#include "client/values.h"
#include "core/activation.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using Stub = v1::ActivationService::Stub;

// The one call pattern of the commands: `build` fills the request from the
// flags (its error ends the command first: INVALID_ARGUMENT is a usage
// error), then one call of `rpc` (a Stub method) with the --timeout_s
// deadline, then `print` shows the response and gives the exit code.
template <typename Request, typename Response, typename Build, typename Print>
int CallCommand(const Context& ctx,
                grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&,
                                          Response*),
                Build build, Print print) {
  Request request;
  if (absl::Status s = build(&request); !s.ok()) return ReportLocalError(s);
  Stub stub(ctx.channel);
  std::unique_ptr<grpc::ClientContext> context = ctx.CallContext();
  Response response;
  if (grpc::Status s = (stub.*rpc)(context.get(), request, &response);
      !s.ok()) {
    return ReportRpcError(s);
  }
  return print(request, &response);
}

// The --function spec and the main input, which most commands send.
template <typename Request>
absl::Status SpecAndInput(const Context& ctx, Request* request) {
  absl::StatusOr<v1::FunctionSpec> spec = SpecFromFlags(ctx);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<v1::Tensor> input = InputTensor(ctx, "input");
  if (!input.ok()) return input.status();
  *request->mutable_spec() = *std::move(spec);
  *request->mutable_input() = *std::move(input);
  return absl::OkStatus();
}

// A `build` of CallCommand: the spec and the input only.
auto BuildSpecAndInput(const Context& ctx) {
  return [&ctx](auto* request) { return SpecAndInput(ctx, request); };
}

// A `print` of CallCommand: the response's one tensor, `output`.
auto PrintOutput(const Context& ctx) {
  return [&ctx](const auto& /*request*/, auto* response) {
    return Finish(ctx, response, {{"output", response->mutable_output()}},
                  response->output());
  };
}

// The requests of `actsvc stream`, one per --ops item, and their labels.
absl::Status StreamSequence(const v1::FunctionSpec& spec,
                            const v1::Tensor& input,
                            const std::optional<v1::Tensor>& grad,
                            std::vector<v1::StreamRequest>* sequence,
                            std::vector<std::string>* labels) {
  for (absl::string_view op :
       absl::StrSplit(absl::GetFlag(FLAGS_ops), ',', absl::SkipWhitespace())) {
    v1::StreamRequest request;
    if (op == "evaluate") {
      *request.mutable_evaluate()->mutable_spec() = spec;
      *request.mutable_evaluate()->mutable_input() = input;
    } else if (op == "derivative" || op == "derivative2") {
      v1::DerivativeRequest* d = request.mutable_derivative();
      *d->mutable_spec() = spec;
      *d->mutable_input() = input;
      d->set_order(op == "derivative2" ? 2 : 1);
      if (grad.has_value()) *d->mutable_upstream_grad() = *grad;
    } else {
      return UsageError(absl::StrCat(
          "--ops: '", op, "' is not one of evaluate, derivative, derivative2"));
    }
    labels->push_back(op == "derivative2" ? "derivative2 (f'')"
                                          : std::string(op));
    sequence->push_back(std::move(request));
  }
  return absl::OkStatus();
}

// Each response of a stream, as a tensor named by its request, or as JSON.
int PrintStreamResponses(const Context& ctx,
                         const std::vector<std::string>& labels,
                         std::vector<v1::StreamResponse>* responses) {
  int index = 0;
  for (v1::StreamResponse& response : *responses) {
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
  return kExitOk;
}

// The cross-entropy request: logits from --x, labels from --labels or
// --target_probs, --reduction and the options.
absl::Status XentRequest(const Context& ctx,
                         v1::SoftmaxCrossEntropyRequest* request) {
  absl::StatusOr<v1::Tensor> logits = InputTensor(ctx, "logits");
  if (!logits.ok()) return logits.status();
  absl::StatusOr<std::optional<v1::Tensor>> targets =
      CompanionTensor(ctx, "target_probs", absl::GetFlag(FLAGS_target_probs),
                      absl::GetFlag(FLAGS_target_probs_npy), *logits);
  if (!targets.ok()) return targets.status();
  if (ctx.Has("labels") == targets->has_value()) {
    return UsageError(
        "give the labels as exactly one of --labels=0,2 (class indices) or "
        "--target_probs / --target_probs_npy");
  }
  if (ctx.Has("labels")) {
    absl::StatusOr<std::vector<int64_t>> labels =
        ParseIntegers(absl::GetFlag(FLAGS_labels));
    if (!labels.ok()) {
      return UsageError(absl::StrCat("--labels: ", labels.status().message()));
    }
    request->mutable_class_indices()->Add(labels->begin(), labels->end());
  } else {
    *request->mutable_target_probs() = **std::move(targets);
  }
  const std::string reduction =
      absl::AsciiStrToLower(absl::GetFlag(FLAGS_reduction));
  v1::SoftmaxCrossEntropyRequest::Reduction r;
  if (!v1::SoftmaxCrossEntropyRequest::Reduction_Parse(
          absl::AsciiStrToUpper(reduction), &r)) {
    return UsageError(absl::StrCat("--reduction=", reduction,
                                   " is not one of mean, sum, none"));
  }
  *request->mutable_logits() = *std::move(logits);
  request->set_reduction(r);
  request->set_label_smoothing(absl::GetFlag(FLAGS_label_smoothing));
  if (ctx.Has("ignore_index")) {
    request->set_ignore_index(absl::GetFlag(FLAGS_ignore_index));
  }
  request->set_return_probabilities(absl::GetFlag(FLAGS_probs));
  return absl::OkStatus();
}

// The function table, or with --function that function's details.
int PrintList(const Context& ctx, const v1::ListFunctionsResponse& response) {
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
  } else {
    std::fputs(FormatFunctionTable(response).c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace

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
  return CallCommand(
      ctx, &Stub::ListFunctions,
      [](v1::ListFunctionsRequest*) { return absl::OkStatus(); },
      [&ctx](const v1::ListFunctionsRequest&,
             v1::ListFunctionsResponse* response) {
        return PrintList(ctx, *response);
      });
}

int RunEvaluate(const Context& ctx) {
  return CallCommand(ctx, &Stub::Evaluate, BuildSpecAndInput(ctx),
                     PrintOutput(ctx));
}

int RunDerivative(const Context& ctx) {
  return CallCommand(
      ctx, &Stub::Derivative,
      [&ctx](v1::DerivativeRequest* request) {
        if (absl::Status s = SpecAndInput(ctx, request); !s.ok()) return s;
        absl::StatusOr<std::optional<v1::Tensor>> grad =
            CompanionTensor(ctx, "grad", absl::GetFlag(FLAGS_grad),
                            absl::GetFlag(FLAGS_grad_npy), request->input());
        if (!grad.ok()) return grad.status();
        // The server validates the order, so that its message is shown.
        if (ctx.Has("order")) request->set_order(absl::GetFlag(FLAGS_order));
        if (grad->has_value()) {
          *request->mutable_upstream_grad() = **std::move(grad);
        }
        return absl::OkStatus();
      },
      PrintOutput(ctx));
}

int RunJacobian(const Context& ctx) {
  return CallCommand(
      ctx, &Stub::Jacobian,
      [&ctx](v1::JacobianRequest* request) {
        request->set_dense(absl::GetFlag(FLAGS_dense));
        return SpecAndInput(ctx, request);
      },
      [&ctx](const v1::JacobianRequest&, v1::JacobianResponse* response) {
        return Finish(
            ctx, response,
            {{response->diagonal() ? "jacobian (diagonal)" : "jacobian",
              response->mutable_jacobian()}},
            response->jacobian());
      });
}

int RunXent(const Context& ctx) {
  return CallCommand(
      ctx, &Stub::SoftmaxCrossEntropy,
      [&ctx](v1::SoftmaxCrossEntropyRequest* request) {
        return XentRequest(ctx, request);
      },
      [&ctx](const v1::SoftmaxCrossEntropyRequest&,
             v1::SoftmaxCrossEntropyResponse* response) {
        std::vector<std::pair<absl::string_view, v1::Tensor*>> tensors = {
            {"loss", response->mutable_loss()},
            {"grad_logits", response->mutable_grad_logits()}};
        if (response->has_probabilities()) {
          tensors.push_back(
              {"probabilities", response->mutable_probabilities()});
        }
        return Finish(ctx, response, tensors, response->grad_logits());
      });
}

int RunStream(const Context& ctx) {
  // The parts every request of the stream shares.
  v1::EvaluateRequest parts;
  if (absl::Status s = SpecAndInput(ctx, &parts); !s.ok()) {
    return ReportLocalError(s);
  }
  const v1::FunctionSpec& spec = parts.spec();
  const v1::Tensor& input = parts.input();
  absl::StatusOr<std::optional<v1::Tensor>> grad =
      CompanionTensor(ctx, "grad", absl::GetFlag(FLAGS_grad),
                      absl::GetFlag(FLAGS_grad_npy), input);
  if (!grad.ok()) return ReportLocalError(grad.status());
  const int repeat = absl::GetFlag(FLAGS_repeat);
  if (repeat < 1) return ReportUsage(UsageError("--repeat must be >= 1"));

  std::vector<v1::StreamRequest> sequence;
  std::vector<std::string> labels;  // of each response, by --ops
  if (absl::Status s = StreamSequence(spec, input, *grad, &sequence, &labels);
      !s.ok()) {
    return ReportUsage(s);
  }
  if (sequence.empty()) return ReportUsage(UsageError("--ops is empty"));

  Stub stub(ctx.channel);
  std::unique_ptr<grpc::ClientContext> context = ctx.CallContext();
  auto stream = stub.Stream(context.get());
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
  if (int printed = PrintStreamResponses(ctx, labels, &responses);
      printed != kExitOk) {
    return printed;
  }
  if (!status.ok()) return ReportRpcError(status);
  return kExitOk;
}

int RunAnalyze(const Context& ctx) {
  return CallCommand(
      ctx, &Stub::Analyze,
      [&ctx](v1::AnalyzeRequest* request) {
        // The server validates both, so that its message is the one shown.
        if (ctx.Has("epsilon")) {
          request->set_epsilon(absl::GetFlag(FLAGS_epsilon));
        }
        if (ctx.Has("layers")) request->set_layers(absl::GetFlag(FLAGS_layers));
        return SpecAndInput(ctx, request);
      },
      [&ctx](const v1::AnalyzeRequest& request, v1::AnalyzeResponse* response) {
        if (ctx.json) {
          PrintJson(*response);
        } else {
          std::fputs(FormatAnalysis(*response, request.layers()).c_str(),
                     stdout);
        }
        return kExitOk;
      });
}

}  // namespace actsvc::client
