// KServe v2's one service (about 510 lines, under the 800 at which a file is
// split): its methods' bodies over the shared request path, and the
// statistics they record. The codec, models, parameters and REST endpoint
// have files of their own.
#include "server/kserve/service.h"

#include <chrono>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/activation.h"
#include "server/kserve/codec.h"
#include "server/kserve/models.h"
#include "server/ops.h"

namespace actsvc::server::kserve {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr absl::string_view kService = "inference.GRPCInferenceService";

// What ServerMetadata reports.
constexpr absl::string_view kServerName = "actsvc";
#ifdef ACTSVC_VERSION
constexpr absl::string_view kServerVersion = ACTSVC_VERSION;
#else
constexpr absl::string_view kServerVersion = "unknown";
#endif

// Triton's RPCs that actsvc does not serve: its models are built in, and it
// has no shared memory, tracing or log settings to change.
constexpr absl::string_view kUnimplemented[] = {"RepositoryModelLoad",
                                                "RepositoryModelUnload",
                                                "SystemSharedMemoryStatus",
                                                "SystemSharedMemoryRegister",
                                                "SystemSharedMemoryUnregister",
                                                "CudaSharedMemoryStatus",
                                                "CudaSharedMemoryRegister",
                                                "CudaSharedMemoryUnregister",
                                                "TraceSetting",
                                                "LogSettings"};

int64_t Nanoseconds(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from)
      .count();
}

absl::Status NotValid(const google::protobuf::Message& message) {
  return absl::InvalidArgumentError(
      absl::StrCat("the request is not a valid ",
                   message.GetDescriptor()->full_name(), " message"));
}

template <typename Message>
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, Message* message) {
  if (ParseMessage(bytes, message)) return absl::OkStatus();
  return NotValid(*message);
}

// A ModelInferRequest, its raw_input_contents read in place by `wire`.
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, WireRequest* wire,
                          inference::ModelInferRequest* message) {
  if (wire->Parse(bytes, message)) return absl::OkStatus();
  return NotValid(*message);
}

inference::DataType ConfigType(const TensorSpec& tensor) {
  if (tensor.datatype == "INT64") return inference::TYPE_INT64;
  return inference::TYPE_FP32;
}

// The model a ModelReady, ModelMetadata, ModelConfig or ModelStatistics
// request names, by name and version.
template <typename ModelRequest>
absl::StatusOr<const Model*> ModelOf(const ModelRequest& request) {
  return FindModel(request.name(), request.version());
}

// A model's input or output as ModelMetadata states it.
void Describe(const TensorSpec& tensor,
              inference::ModelMetadataResponse::TensorMetadata* out) {
  out->set_name(tensor.name);
  out->set_datatype(tensor.datatype);
  out->mutable_shape()->Assign(tensor.dims.begin(), tensor.dims.end());
}

// The same as ModelConfig states it, in a ModelInput or a ModelOutput.
template <typename ConfigTensor>
void Describe(const TensorSpec& tensor, ConfigTensor* out) {
  out->set_name(tensor.name);
  out->set_data_type(ConfigType(tensor));
  out->mutable_dims()->Assign(tensor.dims.begin(), tensor.dims.end());
}

// The model's inputs, then its outputs, described into `inputs` and
// `outputs` (repeated fields of ModelMetadata or ModelConfig).
template <typename Inputs, typename Outputs>
void DescribeTensors(const Model& model, Inputs* inputs, Outputs* outputs) {
  for (const TensorSpec& input : model.inputs) Describe(input, inputs->Add());
  for (const OutputSpec& output : model.outputs) {
    Describe(output.tensor, outputs->Add());
  }
}

// A cheap method: parse Request, answer with `answer`.
template <typename Request, typename Response, typename Answer>
Method InlineMethod(absl::string_view name, Answer answer) {
  Method method = MakeMethod(kService, name, MethodKind::kUnaryInline);
  method.unary = [answer](const grpc::ByteBuffer& request_bytes,
                          const ComputeContext& /*context*/,
                          int64_t* /*elements*/,
                          grpc::ByteBuffer* response_bytes) -> absl::Status {
    Request request;
    if (absl::Status s = ParseRequest(request_bytes, &request); !s.ok()) {
      return s;
    }
    Response response;
    if (absl::Status s = answer(request, &response); !s.ok()) return s;
    return SerializeMessage(response, response_bytes);
  };
  return method;
}

// A cheap method that `service`'s own `answer` answers.
template <typename Request, typename Response>
Method InlineMethod(absl::string_view name, const InferenceService* service,
                    absl::Status (InferenceService::*answer)(const Request&,
                                                             Response*) const) {
  return InlineMethod<Request, Response>(
      name, [service, answer](const Request& request, Response* response) {
        return (service->*answer)(request, response);
      });
}

// The wire for an inference whose request is `request_bytes`: a small one
// (ComputeContext::small_message_bytes) was parsed whole and writes its
// outputs into the message (a model's outputs are at most a few times its
// inputs' size), which `out` then serializes as protobuf does.
InferWire WireFor(const grpc::ByteBuffer& request_bytes,
                  const ComputeContext& context, WireRequest* in,
                  WireResponse* out) {
  const bool small = static_cast<int64_t>(request_bytes.Length()) <=
                     context.small_message_bytes;
  return {in, small ? nullptr : out};
}

// ModelInfer: on the compute threads, or inline when small (calls.cc).
Method ModelInferMethod(InferenceService* service) {
  Method infer = MakeMethod(kService, "ModelInfer", MethodKind::kUnary);
  infer.unary = [service](const grpc::ByteBuffer& request_bytes,
                          const ComputeContext& context, int64_t* elements,
                          grpc::ByteBuffer* response_bytes) -> absl::Status {
    // Parsing a large request takes a while: not for a call already dead.
    if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
    inference::ModelInferRequest request;
    WireRequest in(InferWireFields(), context.small_message_bytes);
    if (absl::Status s = ParseRequest(request_bytes, &in, &request); !s.ok()) {
      return s;
    }
    inference::ModelInferResponse response;
    WireResponse out(InferWireFields());
    return service->Infer(
        request, context, elements, &response,
        [&] { return out.Serialize(response, response_bytes); },
        WireFor(request_bytes, context, &in, &out));
  };
  return infer;
}

// ModelStreamInfer: each message is answered, in order; a failed one with
// its error_message and id, and the stream goes on.
Method ModelStreamInferMethod(InferenceService* service) {
  Method stream = MakeMethod(kService, "ModelStreamInfer", MethodKind::kStream);
  stream.stream = [service](const grpc::ByteBuffer& request_bytes,
                            int64_t index, const ComputeContext& context,
                            int64_t* elements,
                            grpc::ByteBuffer* response_bytes) -> absl::Status {
    inference::ModelInferRequest request;
    WireRequest in(InferWireFields(), context.small_message_bytes);
    inference::ModelStreamInferResponse response;
    WireResponse out(InferWireFields());
    absl::Status status = ParseRequest(request_bytes, &in, &request);
    if (status.ok()) {
      status = service->Infer(
          request, context, elements, response.mutable_infer_response(),
          [&] { return out.Serialize(response, response_bytes); },
          WireFor(request_bytes, context, &in, &out));
    }
    if (status.ok()) return absl::OkStatus();
    *elements = 0;
    response.Clear();
    response.set_error_message(absl::StrCat(
        "stream request #", index, ": ",
        absl::StatusCodeToString(status.code()), ": ", status.message()));
    inference::ModelInferResponse* failed = response.mutable_infer_response();
    failed->set_id(request.id());
    failed->set_model_name(request.model_name());
    failed->set_model_version(request.model_version());
    return SerializeMessage(response, response_bytes);
  };
  return stream;
}

// The methods actsvc does not implement, each saying why.
void AddUnimplemented(MethodTable* table) {
  for (absl::string_view name : kUnimplemented) {
    Method method = MakeMethod(kService, name, MethodKind::kUnaryInline);
    method.unary = [name](const grpc::ByteBuffer&, const ComputeContext&,
                          int64_t*, grpc::ByteBuffer*) {
      return absl::UnimplementedError(absl::StrCat(
          kService, "/", name,
          " is not implemented by actsvc: its models are built in (see "
          "RepositoryIndex), and it has no shared memory, trace or log "
          "settings"));
    };
    table->Add(std::move(method));
  }
}

constexpr int kRawInputs =
    inference::ModelInferRequest::kRawInputContentsFieldNumber;

// An inference computed in place: its request decoded with the values of
// raw_input_contents left where they lie, and validated.
struct InPlaceInference {
  DecodedInfer decoded;
  std::variant<EvaluateOp, DerivativeOp, VjpOp> op;
};

// Where an inference computes in place, and only there: a function's
// model F, F.d1, F.d2 or F.vjp (softmax and log_softmax, which have no .d1
// or .d2, slab by slab; not a Jacobian or cross-entropy) whose request's
// bytes may be written
// (ComputeContext::request_writable, on the wire), every input's values in
// raw_input_contents read apart by the WireRequest, a valid request, and
// one output. nullopt (nothing written) otherwise: the usual path then
// decodes the request and answers, or says what is wrong with it.
std::optional<InPlaceInference> InPlaceFor(
    const inference::ModelInferRequest& request, const ComputeContext& context,
    const InferWire& wire) {
  if (!context.request_writable || wire.in == nullptr || wire.out == nullptr) {
    return std::nullopt;
  }
  absl::StatusOr<const Model*> found =
      FindModel(request.model_name(), request.model_version());
  if (!found.ok()) return std::nullopt;
  const Model& model = **found;
  const bool in_place_model = model.kind == ModelKind::kForward ||
                              model.kind == ModelKind::kDerivative1 ||
                              model.kind == ModelKind::kDerivative2 ||
                              model.kind == ModelKind::kVjp;
  if (!in_place_model || request.inputs_size() == 0 ||
      wire.in->Count(request, kRawInputs) != request.inputs_size()) {
    return std::nullopt;
  }
  absl::StatusOr<DecodedInfer> decoded =
      Decode(request, wire.in, RawValues::kLeaveInPlace);
  if (!decoded.ok() || decoded->outputs.size() != 1 ||
      decoded->outputs[0]->role != OutputRole::kOutput ||
      decoded->raw_index.size() != model.inputs.size()) {
    return std::nullopt;
  }
  std::optional<std::variant<EvaluateOp, DerivativeOp, VjpOp>> op;
  if (auto* evaluate = std::get_if<EvaluateRequest>(&decoded->request)) {
    absl::StatusOr<EvaluateOp> valid =
        Validate(std::move(*evaluate), context.max_elements);
    if (valid.ok()) op = *std::move(valid);
  } else if (auto* derivative =
                 std::get_if<DerivativeRequest>(&decoded->request)) {
    absl::StatusOr<std::variant<DerivativeOp, VjpOp>> valid =
        Validate(std::move(*derivative), context.max_elements);
    if (valid.ok()) {
      if (auto* d = std::get_if<DerivativeOp>(&*valid)) {
        op = std::move(*d);
      } else {
        op = std::get<VjpOp>(*std::move(valid));
      }
    }
  }
  if (!op) return std::nullopt;
  return InPlaceInference{*std::move(decoded), *std::move(op)};
}

// Runs an inference InPlaceFor took where its values lie, and sends the
// values written as the response's raw_output_contents: for the VJP, into
// the operand in fewer pieces (fewer slices to send), x or grad.
absl::Status RunInferenceInPlace(const InPlaceInference& in_place,
                                 const inference::ModelInferRequest& request,
                                 WireRequest* wire,
                                 const ComputeContext& context,
                                 InferResponseSink* sink) {
  const int x_index = in_place.decoded.raw_index[0];
  int written = x_index;  // the raw_input_contents written
  const absl::Status status = std::visit(
      [&](const auto& op) -> absl::Status {
        using Op = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<Op, VjpOp>) {
          const int g_index = in_place.decoded.raw_index[1];
          const auto x = wire->Readable(request, kRawInputs, x_index);
          const auto g = wire->Readable(request, kRawInputs, g_index);
          if (!x || !g) return absl::InternalError("no in-place values");
          const bool y_is_g = g->size() < x->size();
          written = y_is_g ? g_index : x_index;
          const std::vector<absl::Span<const char>>& other = y_is_g ? *x : *g;
          const auto y = wire->Writable(request, kRawInputs, written);
          return RunInPlace(op, *y, other, y_is_g, context, *sink);
        } else {
          const auto x = wire->Writable(request, kRawInputs, x_index);
          if (!x) return absl::InternalError("no in-place values");
          return RunInPlace(op, *x, context, *sink);
        }
      },
      in_place.op);
  if (!status.ok()) return status;
  const TensorView& x = std::visit(
      [](const auto& op) -> const TensorView& { return op.x; }, in_place.op);
  if (!sink->SendInPlace(OutputRole::kOutput, x.dtype(), x.shape(), *wire,
                         request, written)) {
    return absl::InternalError("the in-place values cannot be sent");
  }
  sink->Finish();
  return absl::OkStatus();
}

}  // namespace

absl::Status InferenceService::Infer(
    const inference::ModelInferRequest& request, const ComputeContext& context,
    int64_t* elements, inference::ModelInferResponse* response,
    const std::function<absl::Status()>& encode, InferWire wire) {
  const SteadyClock::time_point start = SteadyClock::now();
  const SteadyClock::time_point arrived =
      context.queued_at == SteadyClock::time_point{} ? start
                                                     : context.queued_at;
  InferTiming timing;
  timing.queue_ns = Nanoseconds(arrived, start);
  // Known before decoding, so that every failure of a request that names a
  // model counts in that model's statistics.
  absl::StatusOr<const Model*> named =
      FindModel(request.model_name(), request.model_version());
  const Model* model = named.ok() ? *named : nullptr;
  absl::Status status = [&]() -> absl::Status {
    // Decoded and validated already where it computes in place.
    std::optional<InPlaceInference> in_place =
        InPlaceFor(request, context, wire);
    absl::StatusOr<DecodedInfer> read;
    if (!in_place) {
      read = Decode(request, wire.in);
      if (!read.ok()) return read.status();
    }
    DecodedInfer& decoded = in_place ? in_place->decoded : *read;
    *elements = decoded.elements;
    if (absl::Status alive = context.CheckAlive(); !alive.ok()) return alive;
    response->set_model_name(model->name);
    response->set_model_version(std::string(kModelVersion));
    response->set_id(request.id());
    InferResponseSink sink(decoded.outputs, response, wire.out);
    // The request validated: its input phase ends, and `run` is timed as
    // the inference.
    const auto timed = [&](const auto& run) {
      const SteadyClock::time_point validated = SteadyClock::now();
      timing.input_ns = Nanoseconds(start, validated);
      absl::Status ran = run();
      timing.infer_ns = Nanoseconds(validated, SteadyClock::now());
      return ran;
    };
    if (in_place) {
      return timed([&] {
        return RunInferenceInPlace(*in_place, request, wire.in, context, &sink);
      });
    }
    return std::visit(
        [&](auto& neutral) -> absl::Status {
          auto op = Validate(std::move(neutral), context.max_elements);
          if (!op.ok()) return WithModel(op.status(), *model);
          return timed([&] { return Run(*op, context, &sink); });
        },
        decoded.request);
  }();
  if (status.ok()) {
    const SteadyClock::time_point computed = SteadyClock::now();
    status = encode();
    timing.output_ns = Nanoseconds(computed, SteadyClock::now());
  }
  // To be run again on a compute thread: not an outcome yet.
  if (IsNeedsComputeThread(status)) return status;
  if (model != nullptr) {
    if (status.ok()) {
      stats_.RecordSuccess(ModelIndex(*model), timing);
    } else {
      stats_.RecordFailure(ModelIndex(*model),
                           Nanoseconds(arrived, SteadyClock::now()));
    }
  }
  return status;
}

void InferenceService::ServerMetadata(
    inference::ServerMetadataResponse* response) const {
  response->set_name(std::string(kServerName));
  response->set_version(std::string(kServerVersion));
  response->add_extensions("statistics");
}

bool InferenceService::ModelReady(
    const inference::ModelReadyRequest& request) const {
  return ModelOf(request).ok();
}

absl::Status InferenceService::ModelMetadata(
    const inference::ModelMetadataRequest& request,
    inference::ModelMetadataResponse* response) const {
  absl::StatusOr<const Model*> model = ModelOf(request);
  if (!model.ok()) return model.status();
  response->set_name((*model)->name);
  response->add_versions(std::string(kModelVersion));
  response->set_platform(std::string(kPlatform));
  DescribeTensors(**model, response->mutable_inputs(),
                  response->mutable_outputs());
  return absl::OkStatus();
}

absl::Status InferenceService::ModelConfig(
    const inference::ModelConfigRequest& request,
    inference::ModelConfigResponse* response) const {
  absl::StatusOr<const Model*> model = ModelOf(request);
  if (!model.ok()) return model.status();
  inference::ModelConfig* config = response->mutable_config();
  config->set_name((*model)->name);
  config->set_platform(std::string(kPlatform));
  config->set_backend(std::string(kPlatform));
  config->set_max_batch_size(0);
  DescribeTensors(**model, config->mutable_input(), config->mutable_output());
  return absl::OkStatus();
}

absl::Status InferenceService::ModelStatistics(
    const inference::ModelStatisticsRequest& request,
    inference::ModelStatisticsResponse* response) const {
  if (request.name().empty()) {
    for (size_t i = 0; i < AllModels().size(); ++i) {
      *response->add_model_stats() = stats_.Snapshot(static_cast<int>(i));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<const Model*> model = ModelOf(request);
  if (!model.ok()) return model.status();
  *response->add_model_stats() = stats_.Snapshot(ModelIndex(**model));
  return absl::OkStatus();
}

void InferenceService::RepositoryIndex(
    inference::RepositoryIndexResponse* response) const {
  for (const Model& model : AllModels()) {
    auto* entry = response->add_models();
    entry->set_name(model.name);
    entry->set_version(std::string(kModelVersion));
    entry->set_state("READY");
  }
}

void InferenceService::Register(MethodTable* table) {
  using namespace inference;  // NOLINT: the protocol's message names
  table->Add(InlineMethod<ServerLiveRequest, ServerLiveResponse>(
      "ServerLive", [](const ServerLiveRequest&, ServerLiveResponse* r) {
        r->set_live(true);
        return absl::OkStatus();
      }));
  table->Add(InlineMethod<ServerReadyRequest, ServerReadyResponse>(
      "ServerReady", [](const ServerReadyRequest&, ServerReadyResponse* r) {
        r->set_ready(true);
        return absl::OkStatus();
      }));
  table->Add(InlineMethod<ModelReadyRequest, ModelReadyResponse>(
      "ModelReady", [this](const ModelReadyRequest& q, ModelReadyResponse* r) {
        r->set_ready(ModelReady(q));
        return absl::OkStatus();
      }));
  table->Add(InlineMethod<ServerMetadataRequest, ServerMetadataResponse>(
      "ServerMetadata",
      [this](const ServerMetadataRequest&, ServerMetadataResponse* r) {
        ServerMetadata(r);
        return absl::OkStatus();
      }));
  table->Add(
      InlineMethod("ModelMetadata", this, &InferenceService::ModelMetadata));
  table->Add(InlineMethod("ModelConfig", this, &InferenceService::ModelConfig));
  table->Add(InlineMethod("ModelStatistics", this,
                          &InferenceService::ModelStatistics));
  table->Add(InlineMethod<RepositoryIndexRequest, RepositoryIndexResponse>(
      "RepositoryIndex",
      [this](const RepositoryIndexRequest&, RepositoryIndexResponse* r) {
        RepositoryIndex(r);
        return absl::OkStatus();
      }));

  table->Add(ModelInferMethod(this));
  table->Add(ModelStreamInferMethod(this));
  AddUnimplemented(table);
}

grpc::ServerUnaryReactor* GeneratedInferenceService::ServerLive(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return generic_->ServeRawUnary(absl::StrCat("/", kService, "/ServerLive"),
                                 context, request, response);
}

}  // namespace actsvc::server::kserve
