// The soak's KServe v2 calls (bench/soak.cc adds them to its table): valid
// ModelInfer calls of each kind of model, FP32 and FP64, raw and typed, with
// NaN and infinities among the inputs, each answer checked against the
// client's core; invalid ones with the status each must get; and
// ModelStreamInfer streams with a failing request in the middle, answered
// in place while the stream goes on.
#ifndef ACTSVC_BENCH_SOAK_KSERVE_H_
#define ACTSVC_BENCH_SOAK_KSERVE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace actsvc::soak {

struct KServeCall {
  std::string name;   // "kserve/gelu.d1/FP32/raw"
  std::string group;  // "ModelInfer valid"
  std::string method;
  bool stream = false;
  std::vector<grpc::ByteBuffer> messages;  // unary: exactly one
  // One per response: "" when it is right, else what is wrong.
  std::vector<std::function<std::string(const grpc::ByteBuffer&)>> checks;
  grpc::StatusCode expected = grpc::StatusCode::OK;
};

// `max_elements`: the server's --max_elements (a call just over it must be
// refused with RESOURCE_EXHAUSTED).
std::vector<KServeCall> KServeCalls(uint64_t seed, int64_t max_elements);

}  // namespace actsvc::soak

#endif  // ACTSVC_BENCH_SOAK_KSERVE_H_
