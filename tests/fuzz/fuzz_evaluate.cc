// Evaluate: decode, validate and compute a request as the server does.
#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

void CheckEvaluate(const v1::EvaluateRequest& request,
                   const v1::EvaluateResponse& response) {
  CheckSameLayout(response.output(), request.input(), "output");
}

}  // namespace
}  // namespace actsvc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  actsvc::fuzz::FuzzUnary<actsvc::v1::EvaluateRequest,
                          actsvc::v1::EvaluateResponse>(
      "Evaluate", data, size, &actsvc::fuzz::CheckEvaluate);
  return 0;
}
