// The load generator of `actsvc bench`: the request built and serialized once,
// the answer the client computes for it with the core, channels, and the
// closed-loop and open-loop drivers over gRPC's callback API.
#ifndef ACTSVC_CLIENT_BENCH_LOAD_H_
#define ACTSVC_CLIENT_BENCH_LOAD_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "actsvc/bench/v1/report.pb.h"
#include "actsvc/v1/activation.pb.h"
#include "client/bench.h"
#include "client/tensor.h"
#include "client/tls.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::client::bench {

// A message as one slice that every call sending it shares (serialized once).
grpc::ByteBuffer Serialize(const google::protobuf::Message& message);
// Parses a (possibly multi-slice) buffer into `message`; false when invalid.
bool Parse(const grpc::ByteBuffer& buffer, google::protobuf::Message* message);

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

struct LoadOptions {
  std::string target = "localhost:50051";
  TlsOptions tls;                  // plaintext unless enabled
  std::string lb = "round_robin";  // or pick_first
  int connections = 1;
  bool open_loop = false;
  std::vector<int> concurrency = {1};  // closed loop: the sweep
  int max_outstanding = 0;  // open loop: cap on calls in flight (0: 10000)
  std::vector<double> rps;  // open loop: the sweep
  Arrival arrival = Arrival::kConstant;
  absl::Duration duration = absl::Seconds(10);  // per level, when requests 0
  int64_t requests = 0;                         // per level, when > 0
  Warmup warmup;
  int64_t check_every = 100;  // 0: never
  absl::Duration timeout = absl::Seconds(30);
  uint64_t seed = 1;
  int server_pid = 0;     // > 0: read its page faults and CPU time per level
  bool progress = false;  // a progress line on stderr
};

// The service config of every channel: the load balancing policy, and
// retries of UNAVAILABLE (every RPC of the service is idempotent).
std::string ServiceConfigJson(absl::string_view lb);

// `connections` channels, each on its own TCP connection(s), waiting until
// each is connected (at most `connect_timeout`). UNAVAILABLE if one is not.
absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> ConnectChannels(
    const LoadOptions& options, absl::Duration connect_timeout);

// Runs every level of the sweep, one row each, in order.
std::vector<actsvc::bench::v1::Row> RunLoad(
    const LoadOptions& options, const Workload& workload,
    const std::vector<std::shared_ptr<grpc::Channel>>& channels);

}  // namespace actsvc::client::bench

#endif  // ACTSVC_CLIENT_BENCH_LOAD_H_
