// `actsvc bench --protocol=kserve`: the same workload sent as the Open
// Inference Protocol's ModelInfer (inference.GRPCInferenceService) to the
// model that computes it (gelu, gelu.d1, gelu.vjp, gelu.jacobian,
// softmax_cross_entropy), with the same tensors in raw_input_contents (or
// typed contents) and the answer checked by the same comparison, so the two
// protocols can be compared in one run.
#ifndef ACTSVC_CLIENT_BENCH_KSERVE_H_
#define ACTSVC_CLIENT_BENCH_KSERVE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/workload.h"
#include "grpcpp/grpcpp.h"
#include "inference/grpc_service.pb.h"

namespace actsvc::client::bench {

// The model of the Open Inference Protocol that computes `spec`'s workload:
// "gelu", "tanh.d2", "softmax.vjp", "elu.jacobian",
// "softmax_cross_entropy". INVALID_ARGUMENT for what no model computes
// (the stream RPC; the diagonal Jacobian of an elementwise function, as the
// models' Jacobians are dense: pass --dense).
absl::StatusOr<std::string> KServeModel(const WorkloadSpec& spec);

// Rewrites a workload built by BuildWorkload into a ModelInfer call of the
// same computation; its answers are checked as the own API's.
absl::Status UseKServe(const WorkloadSpec& spec, Workload* workload);

// The protocol's name of a float dtype ("FP32", "FP64", "FP16", "BF16"),
// and back (DATA_TYPE_UNSPECIFIED for any other).
absl::string_view KServeDatatype(actsvc::v1::DataType dtype);
actsvc::v1::DataType DtypeOfKServe(absl::string_view datatype);

// Adds `tensor` as input `name` of `request`, in the encoding it has (raw:
// raw_input_contents; typed: fp32/fp64 contents).
void AddKServeInput(const actsvc::v1::Tensor& tensor, const std::string& name,
                    inference::ModelInferRequest* request);

// Output `name` of a response as the own API's tensor (raw data); false
// when the response has no such output with raw contents.
bool KServeOutputTensor(const inference::ModelInferResponse& response,
                        const std::string& name, actsvc::v1::Tensor* tensor);

}  // namespace actsvc::client::bench

#endif  // ACTSVC_CLIENT_BENCH_KSERVE_H_
