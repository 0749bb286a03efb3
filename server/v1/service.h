// The own API, actsvc.v1.ActivationService, on the one request path: the
// body of each RPC (decode → Validate → Run into the response message) and
// their registration in the MethodTable.
#ifndef ACTSVC_SERVER_V1_SERVICE_H_
#define ACTSVC_SERVER_V1_SERVICE_H_

#include "absl/status/status.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "actsvc/v1/activation.pb.h"
#include "server/calls.h"
#include "server/compute.h"
#include "server/method_table.h"
#include "server/v1/codec.h"
#include "server/wire.h"

namespace actsvc::server {

// Where an RPC body reads its request's tensor values and writes its
// response's: by default the messages themselves; the methods the server
// runs read and write them on the wire (wire.h).
struct TensorIo {
  const TensorData* in = nullptr;  // nullptr: in the request message
  WireResponse* out = nullptr;     // nullptr: into the response message
  // The WireRequest `in` reads, when the request's bytes may be overwritten
  // (ComputeContext::request_writable) and `out` is set: Evaluate,
  // Derivative, the VJP and the diagonal Jacobian on raw_data (or typed
  // float32 and float64 values) then compute in place in the request's
  // memory and send it back (RunInPlace, compute.h; softmax's slab by
  // slab). nullptr: never.
  WireRequest* writable = nullptr;
};

// The RPC bodies, request in, response or status out; the unary methods
// and the Stream both call these, so they cannot diverge. No gRPC here: the
// call's deadline, cancellation and limits arrive as a ComputeContext.
absl::Status HandleEvaluate(const v1::EvaluateRequest& request,
                            const ComputeContext& context,
                            v1::EvaluateResponse* response, TensorIo io = {});
absl::Status HandleDerivative(const v1::DerivativeRequest& request,
                              const ComputeContext& context,
                              v1::DerivativeResponse* response,
                              TensorIo io = {});
absl::Status HandleJacobian(const v1::JacobianRequest& request,
                            const ComputeContext& context,
                            v1::JacobianResponse* response, TensorIo io = {});
absl::Status HandleSoftmaxCrossEntropy(
    const v1::SoftmaxCrossEntropyRequest& request,
    const ComputeContext& context, v1::SoftmaxCrossEntropyResponse* response,
    TensorIo io = {});
// Gradient-flow diagnostics (see AnalyzeRequest in activation.proto).
absl::Status HandleAnalyze(const v1::AnalyzeRequest& request,
                           const ComputeContext& context,
                           v1::AnalyzeResponse* response, TensorIo io = {});
void HandleListFunctions(v1::ListFunctionsResponse* response);
// One message of the Stream RPC: an Evaluate or a Derivative request.
absl::Status HandleStreamRequest(const v1::StreamRequest& request,
                                 const ComputeContext& context,
                                 v1::StreamResponse* response,
                                 TensorIo io = {});

// Adds the seven methods of ActivationService to `table`.
void RegisterActivationService(MethodTable* table);

// The generated service, registered with the server builder so that
// reflection lists it. Its methods are generic (served by the
// GenericService from the MethodTable) but one: gRPC lists a service only
// when a method is not generic, so ListFunctions is a raw callback method
// that the GenericService serves from the same table.
using GeneratedActivationServiceBase =
    v1::ActivationService::WithGenericMethod_Evaluate<
        v1::ActivationService::WithGenericMethod_Derivative<
            v1::ActivationService::WithGenericMethod_Jacobian<
                v1::ActivationService::WithGenericMethod_SoftmaxCrossEntropy<
                    v1::ActivationService::WithGenericMethod_Analyze<
                        v1::ActivationService::
                            WithRawCallbackMethod_ListFunctions<
                                v1::ActivationService::WithGenericMethod_Stream<
                                    v1::ActivationService::Service>>>>>>>;

class GeneratedActivationService final : public GeneratedActivationServiceBase {
 public:
  // `generic` serves ListFunctions and outlives this service.
  explicit GeneratedActivationService(GenericService* generic)
      : generic_(generic) {}
  grpc::ServerUnaryReactor* ListFunctions(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;

 private:
  GenericService* const generic_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_V1_SERVICE_H_
