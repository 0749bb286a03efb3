#include "server/v1/service.h"

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/activation.h"
#include "core/functions.h"
#include "server/ops.h"
#include "server/v1/codec.h"

namespace actsvc::server {
namespace {

constexpr absl::string_view kService = "actsvc.v1.ActivationService";

const TensorData kInMessage;

// The TensorData the body's decode reads: the request's bytes when the
// wire reader kept its data apart, else the message.
const TensorData& In(const TensorIo& io) {
  return io.in != nullptr ? *io.in : kInMessage;
}

// A unary RPC on the wire (wire.h): the request's tensors read in place,
// the response's computed into buffers that become its slices.
template <typename Request, typename Response,
          absl::Status (*kHandler)(const Request&, const ComputeContext&,
                                   Response*, TensorIo)>
absl::Status WireBody(const grpc::ByteBuffer& request_bytes,
                      const ComputeContext& context, int64_t* elements,
                      grpc::ByteBuffer* response_bytes) {
  // Parsing a large request takes a while: not for a call already dead.
  if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
  Request request;
  WireRequest in(TensorWireFields(), context.small_message_bytes);
  if (!in.Parse(request_bytes, &request)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a valid ",
                     Request::descriptor()->full_name(), " message"));
  }
  *elements = ElementsOf(request);
  Response response;
  WireResponse out(TensorWireFields(), context.small_message_bytes);
  const TensorData data(&in);
  if (absl::Status status =
          kHandler(request, context, &response,
                   {&data, &out, context.request_writable ? &in : nullptr});
      !status.ok()) {
    return status;
  }
  return out.Serialize(response, response_bytes);
}

absl::Status ListFunctionsBody(const grpc::ByteBuffer& request_bytes,
                               const ComputeContext& /*context*/,
                               int64_t* /*elements*/,
                               grpc::ByteBuffer* response_bytes) {
  v1::ListFunctionsRequest request;
  if (!ParseMessage(request_bytes, &request)) {
    return absl::InvalidArgumentError(
        "the request is not a valid actsvc.v1.ListFunctionsRequest message");
  }
  v1::ListFunctionsResponse response;
  HandleListFunctions(&response);
  return SerializeMessage(response, response_bytes);
}

absl::Status StreamMessageBody(const grpc::ByteBuffer& request_bytes,
                               int64_t index, const ComputeContext& context,
                               int64_t* elements,
                               grpc::ByteBuffer* response_bytes) {
  v1::StreamRequest request;
  WireRequest in(TensorWireFields(), context.small_message_bytes);
  if (!in.Parse(request_bytes, &request)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream request #", index,
                     " is not a valid actsvc.v1.StreamRequest message"));
  }
  v1::StreamResponse response;
  WireResponse out(TensorWireFields(), context.small_message_bytes);
  const TensorData data(&in);
  if (absl::Status status = HandleStreamRequest(
          request, context, &response,
          {&data, &out, context.request_writable ? &in : nullptr});
      !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("stream request #", index,
                                                    ": ", status.message()));
  }
  *elements = ElementsOf(request);
  return out.Serialize(response, response_bytes);
}

template <typename Request, typename Response,
          absl::Status (*kHandler)(const Request&, const ComputeContext&,
                                   Response*, TensorIo)>
Method UnaryMethod(absl::string_view name) {
  Method method = MakeMethod(kService, name, MethodKind::kUnary);
  method.unary = &WireBody<Request, Response, kHandler>;
  return method;
}

// A request decoded and validated: its operation, and the encoding of the
// tensors it sent, which its response's tensors take.
template <typename Op>
struct Validated {
  Op op;
  Encoding encoding;
};

// Decodes an Evaluate, Derivative, Jacobian or SoftmaxCrossEntropy request
// and validates it; Op is what Validate makes of it.
template <typename Op, typename Message>
absl::StatusOr<Validated<Op>> DecodeAndValidate(const Message& request,
                                                const ComputeContext& context,
                                                const TensorIo& io) {
  auto decoded = Decode(request, In(io));
  absl::StatusOr<Op> op =
      Validate(std::move(decoded.request), context.max_elements);
  if (!op.ok()) return op.status();
  return Validated<Op>{*std::move(op), decoded.encoding};
}

constexpr int kRawData = v1::Tensor::kRawDataFieldNumber;

// Whether spec names a function (not a value that is no function: the
// usual path says why). Every function runs in place: softmax and
// log_softmax slab by slab, for Evaluate and the VJP (their order-1
// derivative without upstream_grad is not valid).
bool NamesFunction(const v1::FunctionSpec& spec) {
  const int f = spec.function();
  return f >= static_cast<int>(kFirstFunction) &&
         f <= static_cast<int>(kLastFunction);
}

// The data field of `tensor` that holds its values as they are and was read
// apart once, so that they can be computed where they lie: raw_data, or
// float_data of FLOAT32 or double_data of FLOAT64 (the same little-endian
// bytes); 0 when there is none.
int InPlaceField(const WireRequest& wire, const v1::Tensor& tensor) {
  if (wire.Count(tensor, kRawData) == 1) return kRawData;
  if (tensor.dtype() == v1::FLOAT32 &&
      wire.Count(tensor, v1::Tensor::kFloatDataFieldNumber) == 1) {
    return v1::Tensor::kFloatDataFieldNumber;
  }
  if (tensor.dtype() == v1::FLOAT64 &&
      wire.Count(tensor, v1::Tensor::kDoubleDataFieldNumber) == 1) {
    return v1::Tensor::kDoubleDataFieldNumber;
  }
  return 0;
}

// The response's values are those of data field `field` of the request
// tensor `from`, computed in place.
absl::Status SendInPlace(const TensorView& x, const WireRequest& wire,
                         const v1::Tensor& from, int field, MessageSink* sink,
                         OutputRole role = OutputRole::kOutput) {
  if (sink->SendInPlace(role, x.dtype(), x.shape(), wire, from, field)) {
    return absl::OkStatus();
  }
  return absl::InternalError("the in-place values cannot be sent");
}

// An operation that RunInPlace runs where the values of `input` lie, sent
// back as the response's tensor of `role`: nullopt when it does not apply
// (then nothing was written).
template <typename Op>
std::optional<absl::Status> InPlaceOnInput(
    const Op& op, const v1::Tensor& input, WireRequest* wire,
    const ComputeContext& context, MessageSink* sink,
    OutputRole role = OutputRole::kOutput) {
  const int field = InPlaceField(*wire, input);
  std::optional<std::vector<absl::Span<char>>> x = wire->Writable(input, field);
  if (!x) return std::nullopt;
  absl::Status status = RunInPlace(op, *x, context, *sink);
  if (status.ok()) {
    status = SendInPlace(op.x, *wire, input, field, sink, role);
  }
  return status;
}

std::optional<absl::Status> InPlace(const EvaluateOp& op,
                                    const v1::EvaluateRequest& request,
                                    WireRequest* wire,
                                    const ComputeContext& context,
                                    MessageSink* sink) {
  return InPlaceOnInput(op, request.input(), wire, context, sink);
}

// The diagonal Jacobian, as Derivative's order 1; not a dense one, nor
// one along an axis.
std::optional<absl::Status> InPlace(const JacobianOp& op,
                                    const v1::JacobianRequest& request,
                                    WireRequest* wire,
                                    const ComputeContext& context,
                                    MessageSink* sink) {
  if (op.axis || op.dense) return std::nullopt;
  return InPlaceOnInput(op, request.input(), wire, context, sink,
                        OutputRole::kJacobianDiagonal);
}

// The bytes of a tensor's values as one piece.
absl::Span<const char> ValueBytes(const TensorView& view) {
  return VisitDType(view.dtype(), [&](auto t) {
    const auto values = view.values<decltype(t)>();
    return absl::Span<const char>(reinterpret_cast<const char*>(values.data()),
                                  values.size() * sizeof(t));
  });
}

std::optional<absl::Status> InPlace(
    const std::variant<DerivativeOp, VjpOp>& variant,
    const v1::DerivativeRequest& request, WireRequest* wire,
    const ComputeContext& context, MessageSink* sink) {
  const v1::Tensor& x = request.input();
  if (const auto* op = std::get_if<DerivativeOp>(&variant)) {
    return InPlaceOnInput(*op, x, wire, context, sink);
  }
  const int x_field = InPlaceField(*wire, x);
  const VjpOp& op = std::get<VjpOp>(variant);
  // g's data field read apart (left where it lies, its view without
  // values), or g's values in its view (typed half values, or in the
  // message).
  const v1::Tensor& g = request.upstream_grad();
  const int g_field = InPlaceField(*wire, g);
  std::optional<std::vector<absl::Span<const char>>> g_pieces =
      g_field == 0 ? std::nullopt : wire->Readable(g, g_field);
  const std::optional<std::vector<absl::Span<const char>>> x_pieces =
      wire->Readable(x, x_field);
  if (!x_pieces) return std::nullopt;
  // Into the operand in fewer pieces: fewer slices to send.
  const bool y_is_g = g_pieces && g_pieces->size() < x_pieces->size();
  const v1::Tensor& y = y_is_g ? g : x;
  const int y_field = y_is_g ? g_field : x_field;
  std::vector<absl::Span<const char>> other =
      y_is_g
          ? *x_pieces
          : (g_pieces ? *std::move(g_pieces)
                      : std::vector<absl::Span<const char>>{ValueBytes(op.g)});
  std::optional<std::vector<absl::Span<char>>> y_pieces =
      wire->Writable(y, y_field);
  absl::Status status =
      RunInPlace(op, *y_pieces, other, y_is_g, context, *sink);
  if (status.ok()) status = SendInPlace(op.x, *wire, y, y_field, sink);
  return status;
}

// Evaluate, Derivative, the VJP and the diagonal Jacobian on raw_data, or
// on float_data of FLOAT32 or double_data of FLOAT64, where the request's
// bytes may be written (io.writable): decoded with those values left where
// they lie, validated, and computed in place into `output` (as `role`);
// nullopt (nothing written) where in place does not apply, or the request
// is not valid: the usual path then reads it and answers.
template <typename Op, typename Message>
std::optional<absl::Status> RunInPlaceIfItApplies(
    const Message& request, const ComputeContext& context, v1::Tensor* output,
    const TensorIo& io, OutputRole role = OutputRole::kOutput) {
  WireRequest* wire = io.writable;
  if (wire == nullptr || io.out == nullptr || !request.has_input() ||
      !NamesFunction(request.spec())) {
    return std::nullopt;
  }
  const int field = InPlaceField(*wire, request.input());
  if (field == 0) return std::nullopt;
  auto decoded = Decode(request, TensorData(wire, TensorData::kLeaveInPlace));
  if (decoded.encoding !=
      (field == kRawData ? Encoding::kRaw : Encoding::kTyped)) {
    return std::nullopt;
  }
  absl::StatusOr<Op> op =
      Validate(std::move(decoded.request), context.max_elements);
  if (!op.ok()) return std::nullopt;
  MessageSink sink(decoded.encoding, {{role, output}}, io.out);
  return InPlace(*op, request, wire, context, &sink);
}

// Evaluate and Derivative: the request decoded, validated and run into the
// response's one tensor, `output`.
template <typename Op, typename Message>
absl::Status RunIntoOutput(const Message& request,
                           const ComputeContext& context, v1::Tensor* output,
                           TensorIo io) {
  if (std::optional<absl::Status> done =
          RunInPlaceIfItApplies<Op>(request, context, output, io)) {
    return *done;
  }
  absl::StatusOr<Validated<Op>> v = DecodeAndValidate<Op>(request, context, io);
  if (!v.ok()) return v.status();
  MessageSink sink(v->encoding, {{OutputRole::kOutput, output}}, io.out);
  return Run(v->op, context, &sink);
}

}  // namespace

absl::Status HandleEvaluate(const v1::EvaluateRequest& request,
                            const ComputeContext& context,
                            v1::EvaluateResponse* response, TensorIo io) {
  return RunIntoOutput<EvaluateOp>(request, context, response->mutable_output(),
                                   io);
}

absl::Status HandleDerivative(const v1::DerivativeRequest& request,
                              const ComputeContext& context,
                              v1::DerivativeResponse* response, TensorIo io) {
  return RunIntoOutput<std::variant<DerivativeOp, VjpOp>>(
      request, context, response->mutable_output(), io);
}

absl::Status HandleJacobian(const v1::JacobianRequest& request,
                            const ComputeContext& context,
                            v1::JacobianResponse* response, TensorIo io) {
  v1::Tensor* jacobian = response->mutable_jacobian();
  // Only an elementwise function's diagonal runs in place: a dense Jacobian
  // (softmax's always is) is decoded once, below.
  const bool diagonal =
      !request.dense() && NamesFunction(request.spec()) &&
      IsElementwise(static_cast<Function>(request.spec().function()));
  if (std::optional<absl::Status> done =
          diagonal ? RunInPlaceIfItApplies<JacobianOp>(
                         request, context, jacobian, io,
                         OutputRole::kJacobianDiagonal)
                   : std::nullopt) {
    response->set_diagonal(true);
    return *done;
  }
  absl::StatusOr<Validated<JacobianOp>> v =
      DecodeAndValidate<JacobianOp>(request, context, io);
  if (!v.ok()) return v.status();
  MessageSink sink(v->encoding,
                   {{OutputRole::kJacobianDiagonal, jacobian},
                    {OutputRole::kJacobianDense, jacobian}},
                   io.out);
  const absl::Status status = Run(v->op, context, &sink);
  response->set_diagonal(sink.allocated(OutputRole::kJacobianDiagonal));
  return status;
}

absl::Status HandleSoftmaxCrossEntropy(
    const v1::SoftmaxCrossEntropyRequest& request,
    const ComputeContext& context, v1::SoftmaxCrossEntropyResponse* response,
    TensorIo io) {
  absl::StatusOr<Validated<CrossEntropyOp>> v =
      DecodeAndValidate<CrossEntropyOp>(request, context, io);
  if (!v.ok()) return v.status();
  MessageSink sink(
      v->encoding,
      {{OutputRole::kLoss, response->mutable_loss()},
       {OutputRole::kGradLogits, response->mutable_grad_logits()},
       {OutputRole::kProbabilities, response->mutable_probabilities()}},
      io.out);
  const absl::Status status = Run(v->op, context, &sink);
  // Only a response that asked for them carries probabilities.
  if (!v->op.return_probabilities) response->clear_probabilities();
  return status;
}

absl::Status HandleAnalyze(const v1::AnalyzeRequest& request,
                           const ComputeContext& context,
                           v1::AnalyzeResponse* response, TensorIo io) {
  absl::StatusOr<AnalyzeOp> op =
      Validate(Decode(request, In(io)), context.max_elements);
  if (!op.ok()) return op.status();
  absl::StatusOr<GradientFlowReport> report = Run(*op, context);
  if (!report.ok()) return report.status();
  const GradientFlowReport& r = *report;
  response->set_units(r.units);
  response->set_nan_count(r.nan_units);
  response->set_epsilon(op->epsilon);
  response->set_zero_outputs(r.zero_outputs);
  response->set_saturated_units(r.saturated);
  response->set_dead_units(r.dead);
  response->set_sparsity(r.sparsity);
  response->set_saturated_fraction(r.saturated_fraction);
  response->set_dead_fraction(r.dead_fraction);
  response->set_min_derivative(r.min_derivative);
  response->set_max_derivative(r.max_derivative);
  response->set_mean_derivative(r.mean_derivative);
  response->set_mean_abs_derivative(r.mean_abs_derivative);
  response->set_max_abs_derivative(r.max_abs_derivative);
  if (r.attenuation) response->set_attenuation(*r.attenuation);
  return absl::OkStatus();
}

void HandleListFunctions(v1::ListFunctionsResponse* response) {
  for (const FunctionInfo& info : AllFunctions()) {
    v1::FunctionInfo* out = response->add_functions();
    out->set_function(static_cast<v1::Function>(info.function));
    out->set_name(info.name);
    for (const std::string& alias : info.aliases) out->add_aliases(alias);
    out->set_elementwise(info.elementwise);
    for (const ParameterInfo& parameter : info.parameters) {
      v1::Parameter* p = out->add_parameters();
      p->set_name(parameter.name);
      p->set_default_value(parameter.default_value);
      p->set_valid_range(parameter.valid_range);
      p->set_description(parameter.description);
    }
    out->set_formula(info.formula);
    out->set_derivative_formula(info.derivative_formula);
    out->set_second_derivative_formula(info.second_derivative_formula);
    out->set_stable_form(info.stable_form);
    out->set_output_range(info.output_range);
    out->set_derivative_range(info.derivative_range);
    out->set_saturates(info.saturates);
    out->set_notes(info.notes);
  }
}

absl::Status HandleStreamRequest(const v1::StreamRequest& request,
                                 const ComputeContext& context,
                                 v1::StreamResponse* response, TensorIo io) {
  switch (request.request_case()) {
    case v1::StreamRequest::kEvaluate:
      return HandleEvaluate(request.evaluate(), context,
                            response->mutable_evaluate(), io);
    case v1::StreamRequest::kDerivative:
      return HandleDerivative(request.derivative(), context,
                              response->mutable_derivative(), io);
    case v1::StreamRequest::REQUEST_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "request is empty; set exactly one of evaluate or derivative");
}

grpc::ServerUnaryReactor* GeneratedActivationService::ListFunctions(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return generic_->ServeRawUnary(absl::StrCat("/", kService, "/ListFunctions"),
                                 context, request, response);
}

void RegisterActivationService(MethodTable* table) {
  table->Add(
      UnaryMethod<v1::EvaluateRequest, v1::EvaluateResponse, &HandleEvaluate>(
          "Evaluate"));
  table->Add(UnaryMethod<v1::DerivativeRequest, v1::DerivativeResponse,
                         &HandleDerivative>("Derivative"));
  table->Add(
      UnaryMethod<v1::JacobianRequest, v1::JacobianResponse, &HandleJacobian>(
          "Jacobian"));
  table->Add(
      UnaryMethod<v1::SoftmaxCrossEntropyRequest,
                  v1::SoftmaxCrossEntropyResponse, &HandleSoftmaxCrossEntropy>(
          "SoftmaxCrossEntropy"));
  table->Add(
      UnaryMethod<v1::AnalyzeRequest, v1::AnalyzeResponse, &HandleAnalyze>(
          "Analyze"));
  Method list = MakeMethod(kService, "ListFunctions", MethodKind::kUnaryInline);
  list.unary = &ListFunctionsBody;
  table->Add(std::move(list));
  Method stream = MakeMethod(kService, "Stream", MethodKind::kStream);
  stream.stream = &StreamMessageBody;
  table->Add(std::move(stream));
}

}  // namespace actsvc::server
