// KServe v2 ModelInfer: decode, validate and compute a request as the
// server does (the MethodTable's body of
// /inference.GRPCInferenceService/ModelInfer), and check the answer: a
// response names its model and has one well-sized raw_output_contents per
// output; a failure is NOT_FOUND, INVALID_ARGUMENT or RESOURCE_EXHAUSTED.
#include "absl/strings/str_cat.h"
#include "inference/grpc_service.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

int64_t DatatypeSize(const std::string& datatype) {
  if (datatype == "FP32") return 4;
  if (datatype == "FP64") return 8;
  if (datatype == "FP16" || datatype == "BF16") return 2;
  return -1;
}

void FuzzModelInfer(const uint8_t* data, size_t size) {
  std::string response_bytes;
  const absl::Status status = RunKServeInfer(data, size, &response_bytes);
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kNotFound) {
      Check(!status.message().empty(), "an error without a message");
      return;
    }
    CheckFailure(status);
    return;
  }
  inference::ModelInferRequest request;
  Check(request.ParseFromArray(data, static_cast<int>(size)),
        "the server accepted a request that does not parse");
  inference::ModelInferResponse response;
  Check(response.ParseFromString(response_bytes),
        "the response does not parse");
  Check(response.model_name() == request.model_name(),
        "the response names another model");
  Check(response.model_version() == "1", "the response's version is not 1");
  Check(response.id() == request.id(),
        "the response's id is not the request's");
  Check(response.outputs_size() > 0, "a response without outputs");
  Check(response.raw_output_contents_size() == response.outputs_size(),
        "not one raw_output_contents per output");
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    const int64_t element_size = DatatypeSize(output.datatype());
    Check(element_size > 0,
          absl::StrCat("output datatype '", output.datatype(), "'"));
    const int64_t elements = server::CheckedProduct(
        absl::MakeConstSpan(output.shape().data(), output.shape_size()));
    Check(elements >= 0, "an output shape that overflows");
    Check(static_cast<int64_t>(response.raw_output_contents(i).size()) ==
              elements * element_size,
          absl::StrCat("output '", output.name(), "' has ",
                       response.raw_output_contents(i).size(), " bytes for ",
                       elements, " elements"));
  }
}

}  // namespace
}  // namespace actsvc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  actsvc::fuzz::FuzzModelInfer(data, size);
  return 0;
}
