// One message of the Stream RPC: parse a StreamRequest and answer it as the
// stream's reactor does (HandleStreamRequest).
#include <string>

#include "absl/strings/str_cat.h"
#include "server/v1/service.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace actsvc;  // NOLINT: the fuzz entry point is outside it
  v1::StreamRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  v1::StreamResponse response;
  const absl::Status status =
      server::HandleStreamRequest(request, fuzz::FuzzContext(), &response);
  if (!status.ok()) {
    fuzz::CheckFailure(status);
    return 0;
  }
  const std::string bytes = response.SerializeAsString();
  fuzz::Check(static_cast<int64_t>(bytes.size()) <= fuzz::kMaxMessageBytes,
              absl::StrCat("a response of ", bytes.size(), " bytes"));
  switch (request.request_case()) {
    case v1::StreamRequest::kEvaluate:
      fuzz::Check(response.has_evaluate(), "not an Evaluate response");
      fuzz::CheckSameLayout(response.evaluate().output(),
                            request.evaluate().input(), "evaluate.output");
      break;
    case v1::StreamRequest::kDerivative:
      fuzz::Check(response.has_derivative(), "not a Derivative response");
      fuzz::CheckSameLayout(response.derivative().output(),
                            request.derivative().input(), "derivative.output");
      break;
    case v1::StreamRequest::REQUEST_NOT_SET:
      fuzz::Check(false, "an empty StreamRequest was answered");
  }
  return 0;
}
