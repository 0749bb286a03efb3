// Derivative (orders 1 and 2, and the VJP with upstream_grad).
#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

void CheckDerivative(const v1::DerivativeRequest& request,
                     const v1::DerivativeResponse& response) {
  CheckSameLayout(response.output(), request.input(), "output");
}

}  // namespace
}  // namespace actsvc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  actsvc::fuzz::FuzzUnary<actsvc::v1::DerivativeRequest,
                          actsvc::v1::DerivativeResponse>(
      "Derivative", data, size, &actsvc::fuzz::CheckDerivative);
  return 0;
}
