// KServe v2 REST infer bodies: JSON, or a JSON header followed by binary
// tensor data. The input is one byte choosing the model, four bytes of
// Inference-Header-Content-Length (little-endian; negative: no header),
// then the body; it is parsed, run and answered as the REST endpoint does
// (ParseInferRequest, InferenceService::Infer, WriteInferResponse). A body
// is refused with INVALID_ARGUMENT or RESOURCE_EXHAUSTED, or answered with
// JSON that parses and a binary part the JSON accounts for.
#include <cstring>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "server/kserve/json.h"
#include "server/kserve/models.h"
#include "server/kserve/service.h"
#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

void FuzzRestInfer(const uint8_t* data, size_t size) {
  if (size < 5) return;
  const auto& models = server::kserve::AllModels();
  const server::kserve::Model& model = models[data[0] % models.size()];
  int32_t header;
  std::memcpy(&header, data + 1, 4);
  const absl::string_view body(reinterpret_cast<const char*>(data + 5),
                               size - 5);
  inference::ModelInferRequest request;
  request.set_model_name(model.name);
  server::kserve::OutputFormat format;
  absl::Status status = server::kserve::ParseInferRequest(
      body, header < 0 ? std::nullopt : std::optional<int64_t>(header),
      &request, &format);
  if (!status.ok()) {
    CheckFailure(status);
    return;
  }
  static server::kserve::InferenceService* const kService =
      new server::kserve::InferenceService();
  inference::ModelInferResponse response;
  int64_t elements = 0;
  std::string answer;
  int64_t json_length = -1;
  status = kService->Infer(request, FuzzContext(), &elements, &response, [&] {
    answer = server::kserve::WriteInferResponse(response, format, &json_length);
    return absl::OkStatus();
  });
  if (!status.ok()) {
    CheckFailure(status);
    return;
  }
  const size_t json_size =
      json_length < 0 ? answer.size() : static_cast<size_t>(json_length);
  Check(json_size <= answer.size(), "a JSON length past the body");
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNanAndInfFlag>(answer.data(), json_size);
  Check(!doc.HasParseError() && doc.IsObject(),
        "the response's JSON does not parse");
  Check(doc.HasMember("outputs") && doc["outputs"].IsArray(),
        "the response has no outputs array");
  size_t binary = 0;
  for (const auto& output : doc["outputs"].GetArray()) {
    if (output.HasMember("parameters")) {
      binary += output["parameters"]["binary_data_size"].GetUint64();
    } else {
      Check(output.HasMember("data") && output["data"].IsArray(),
            "an output with neither data nor binary_data_size");
    }
  }
  Check(
      json_size + binary == answer.size(),
      absl::StrCat("binary_data_size adds up to ", binary, " but the body has ",
                   answer.size() - json_size, " bytes after the JSON"));
}

}  // namespace
}  // namespace actsvc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  actsvc::fuzz::FuzzRestInfer(data, size);
  return 0;
}
