// `actsvc bench`'s workload: one request, built and serialized once and sent
// by every call, and the answer the client computes for it with its core
// (client/answers.h), checked by the load library's checker
// (client/answer_check.h).
#ifndef ACTSVC_CLIENT_WORKLOAD_H_
#define ACTSVC_CLIENT_WORKLOAD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "actsvc/v1/activation.pb.h"
#include "client/calls.h"
#include "client/tensor.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::client::bench {

using ::actsvc::client::Parse;
using ::actsvc::client::Serialize;

enum class Rpc { kEvaluate, kDerivative, kVjp, kJacobian, kXent, kStream };
// evaluate, derivative, vjp, jacobian, xent, stream.
absl::StatusOr<Rpc> RpcFromName(absl::string_view name);
absl::string_view RpcName(Rpc rpc);

struct WorkloadSpec {
  Rpc rpc = Rpc::kEvaluate;
  actsvc::v1::FunctionSpec spec;  // not used by xent
  int order = 1;                  // derivative: 1 or 2
  bool dense = false;             // jacobian of an elementwise function
  std::vector<int64_t> shape;
  actsvc::v1::DataType dtype = actsvc::v1::FLOAT32;
  Encoding encoding = Encoding::kRaw;
  uint64_t seed = 1;
};

// One request, serialized once and sent by every call, and what a right
// response holds. Inputs are uniform in [-8, 8) (upstream gradients in
// [-1, 1), labels uniform over the classes) from the seed.
struct Workload {
  Rpc rpc = Rpc::kEvaluate;
  std::string method;  // "/actsvc.v1.ActivationService/Evaluate"
  // The request goes to an echo method (--method): a right response is the
  // request's own bytes.
  bool echo = false;
  grpc::ByteBuffer request;  // a StreamRequest for Rpc::kStream
  int64_t request_bytes = 0;
  int64_t elements = 0;  // of the input
  actsvc::v1::DataType dtype = actsvc::v1::FLOAT32;
  // The main output (xent: grad_logits), computed by the client's core.
  std::vector<int64_t> expected_shape;
  std::vector<double> expected;
  double expected_loss = 0;  // xent (mean reduction)
  // When set, answers arrive in another protocol (bench_kserve.h): this
  // turns one into the own API's response to check, or says what is wrong.
  std::function<std::string(const grpc::ByteBuffer&, grpc::ByteBuffer*)>
      to_own_response;
};

// INVALID_ARGUMENT for combinations the service rejects (e.g. the derivative
// of softmax without an upstream gradient: use vjp).
absl::StatusOr<Workload> BuildWorkload(const WorkloadSpec& spec);

// "" when `response` (serialized, of the workload's RPC) holds the right
// answer within the float tolerance; otherwise what differs.
std::string CheckResponse(const Workload& workload,
                          const grpc::ByteBuffer& response);

}  // namespace actsvc::client::bench

#endif  // ACTSVC_CLIENT_WORKLOAD_H_
