// The Open Inference Protocol (KServe v2), inference.GRPCInferenceService,
// on the one request path: the body of each RPC (ModelInfer: decode →
// Validate → Run into the response's raw_output_contents), the per-model
// statistics, and the methods' registration in the MethodTable, where the
// same admission, limits and deadlines hold as for the own API.
#ifndef ACTSVC_SERVER_KSERVE_SERVICE_H_
#define ACTSVC_SERVER_KSERVE_SERVICE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "inference/grpc_service.grpc.pb.h"
#include "inference/grpc_service.pb.h"
#include "server/calls.h"
#include "server/compute.h"
#include "server/kserve/stats.h"
#include "server/method_table.h"
#include "server/wire.h"

namespace actsvc::server::kserve {

// Where an inference's tensors travel: in the messages (the REST endpoint
// builds them), or on the wire (wire.h, with InferWireFields): `in` parsed
// the request, and `out` holds the response's raw_output_contents until
// `encode` serializes it. When the request's bytes may be overwritten
// (ComputeContext::request_writable), a function's model F, F.d1, F.d2 or
// F.vjp on raw_input_contents computes in place in `in`'s received bytes
// (softmax's slab by slab) and sends them back as its raw_output_contents
// (service.cc, InPlaceFor).
struct InferWire {
  WireRequest* in = nullptr;
  WireResponse* out = nullptr;
};

// The protocol's service and its statistics; one per server, outliving the
// gRPC server and the HTTP endpoint that call it.
class InferenceService {
 public:
  // One inference, as ModelInfer, a message of ModelStreamInfer and the
  // REST endpoint run it: decode, Validate, Run into `response` (or
  // RunInPlace where it applies: InferWire), then `encode` (the protocol's
  // serialization, timed as compute_output).
  // Records the request in its model's statistics (when the model exists),
  // timed from `context.queued_at`.
  absl::Status Infer(const inference::ModelInferRequest& request,
                     const ComputeContext& context, int64_t* elements,
                     inference::ModelInferResponse* response,
                     const std::function<absl::Status()>& encode,
                     InferWire wire = {});

  // The other RPCs; NOT_FOUND for an unknown model or version.
  void ServerMetadata(inference::ServerMetadataResponse* response) const;
  // Whether the model (and version) exists: all that do are ready.
  bool ModelReady(const inference::ModelReadyRequest& request) const;
  absl::Status ModelMetadata(const inference::ModelMetadataRequest& request,
                             inference::ModelMetadataResponse* response) const;
  absl::Status ModelConfig(const inference::ModelConfigRequest& request,
                           inference::ModelConfigResponse* response) const;
  absl::Status ModelStatistics(
      const inference::ModelStatisticsRequest& request,
      inference::ModelStatisticsResponse* response) const;
  void RepositoryIndex(inference::RepositoryIndexResponse* response) const;

  // Adds every method of GRPCInferenceService to `table` (those actsvc does
  // not implement answer UNIMPLEMENTED, saying why). This service must
  // outlive the table's use.
  void Register(MethodTable* table);

 private:
  ModelStatsTable stats_;
};

// The generated service, registered with the server builder so that
// reflection lists it. Its methods are generic (served by the
// GenericService from the MethodTable) but ServerLive: gRPC lists a service
// only when a method is not generic, so that one is a raw callback method
// the GenericService serves from the same table.
using GeneratedInferenceServiceBase = inference::GRPCInferenceService::
    WithRawCallbackMethod_ServerLive<inference::GRPCInferenceService::WithGenericMethod_ServerReady<
        inference::GRPCInferenceService::WithGenericMethod_ModelReady<
            inference::GRPCInferenceService::WithGenericMethod_ServerMetadata<
                inference::GRPCInferenceService::WithGenericMethod_ModelMetadata<
                    inference::GRPCInferenceService::WithGenericMethod_ModelInfer<
                        inference::GRPCInferenceService::
                            WithGenericMethod_ModelStreamInfer<
                                inference::GRPCInferenceService::
                                    WithGenericMethod_ModelConfig<
                                        inference::GRPCInferenceService::
                                            WithGenericMethod_ModelStatistics<
                                                inference::GRPCInferenceService::
                                                    WithGenericMethod_RepositoryIndex<
                                                        inference::
                                                            GRPCInferenceService::
                                                                Service>>>>>>>>>>;

class GeneratedInferenceService final : public GeneratedInferenceServiceBase {
 public:
  // `generic` serves ServerLive and outlives this service.
  explicit GeneratedInferenceService(GenericService* generic)
      : generic_(generic) {}
  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

 private:
  GenericService* const generic_;
};

}  // namespace actsvc::server::kserve

#endif  // ACTSVC_SERVER_KSERVE_SERVICE_H_
