// Shared by the fuzz targets of tests/fuzz: the ComputeContext they run with
// and the checks every answer must pass. A failed check aborts, which
// libFuzzer (and the replay tests) report as a crash.
#ifndef ACTSVC_TESTS_FUZZ_FUZZ_UTIL_H_
#define ACTSVC_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "actsvc/v1/activation.pb.h"
#include "server/compute.h"

namespace actsvc::fuzz {

// Modest limits keep every input fast: a response of at most 4 MiB, the
// server's --max_elements at 2^16, and chunks of 64 elements so that inputs
// of a few hundred bytes already run the chunk loops.
inline constexpr int64_t kMaxMessageBytes = int64_t{4} << 20;
inline constexpr int64_t kMaxElements = int64_t{1} << 16;
inline constexpr int64_t kChunkElements = 64;

server::ComputeContext FuzzContext();

// The product of the dims (0 when one is 0, as the server counts), or -1
// when it overflows int64.
int64_t Elements(const v1::Tensor& tensor);

// Aborts with `what` unless `condition`.
void Check(bool condition, absl::string_view what);

// A failed call must say why with a code the server documents for bad or too
// large requests: INVALID_ARGUMENT or RESOURCE_EXHAUSTED (there is no
// deadline and no cancellation here).
void CheckFailure(const absl::Status& status);

// `tensor` is a well-formed response tensor: a known dtype, dims >= 0, and
// exactly as many values as its shape holds in one encoding.
void CheckTensor(const v1::Tensor& tensor, absl::string_view name);

// `output` has the shape and dtype of `input` (a validated request tensor).
void CheckSameLayout(const v1::Tensor& output, const v1::Tensor& input,
                     absl::string_view name);

// Runs the unary compute RPC `rpc` ("Evaluate", ...) on the serialized
// request `data` as the server does (its MethodTable's unary body),
// checks the element count it measured and the response's size, and returns
// the status and the serialized response.
absl::Status RunUnary(absl::string_view rpc, const uint8_t* data, size_t size,
                      std::string* response_bytes);

// As RunUnary, for KServe v2's ModelInfer
// (/inference.GRPCInferenceService/ModelInfer).
absl::Status RunKServeInfer(const uint8_t* data, size_t size,
                            std::string* response_bytes);

template <typename Request, typename Response>
using ResponseCheck = void (*)(const Request&, const Response&);

// RunUnary, then checks the outcome: a failure with CheckFailure, a response
// (parsed as `Response`) with `check_response(request, response)`.

template <typename Request, typename Response>
void FuzzUnary(absl::string_view rpc, const uint8_t* data, size_t size,
               ResponseCheck<Request, Response> check_response) {
  std::string response_bytes;
  const absl::Status status = RunUnary(rpc, data, size, &response_bytes);
  if (!status.ok()) {
    CheckFailure(status);
    return;
  }
  // The server parsed this request: so must we.
  Request request;
  Check(request.ParseFromArray(data, static_cast<int>(size)),
        "the server accepted a request that does not parse");
  Response response;
  Check(response.ParseFromString(response_bytes),
        "the response does not parse");
  check_response(request, response);
}

// The check of the elementwise methods (Evaluate, Derivative): the output has
// the input's shape and dtype.
template <typename Request, typename Response>
void CheckOutputLikeInput(const Request& request, const Response& response) {
  CheckSameLayout(response.output(), request.input(), "output");
}

}  // namespace actsvc::fuzz

// Defines the libFuzzer entry point of the unary method `Method` of
// actsvc.v1.ActivationService: FuzzUnary with its request and response
// types, and `check`, a ResponseCheck in namespace actsvc::fuzz.
#define ACTSVC_FUZZ_UNARY(Method, check)                                    \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    ::actsvc::fuzz::FuzzUnary<::actsvc::v1::Method##Request,                \
                              ::actsvc::v1::Method##Response>(              \
        #Method, data, size, &::actsvc::fuzz::check);                       \
    return 0;                                                               \
  }

#endif  // ACTSVC_TESTS_FUZZ_FUZZ_UTIL_H_
