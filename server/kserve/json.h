// The Open Inference Protocol's REST bodies (KServe v2 HTTP/REST, with the
// binary tensor data extension) to and from its gRPC messages, so that the
// REST endpoint runs the very path ModelInfer runs. JSON through rapidjson
// (Debian's rapidjson-dev, which Triton's HTTP endpoint also uses): numbers
// are written as numbers, 64-bit counters included, and no zero-valued
// field is dropped. Chosen over nlohmann-json by measurement: a [64, 1000]
// FP32 request (1.26 MB) parses in 14 ms (numbers read exactly) against
// 19 ms, and 64,000 floats are written in 6 ms against 14 ms (BENCHMARKS.md).
#ifndef ACTSVC_SERVER_KSERVE_JSON_H_
#define ACTSVC_SERVER_KSERVE_JSON_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "inference/grpc_service.pb.h"

namespace actsvc::server::kserve {

// How the outputs of an infer request are to be answered: as JSON data, or
// as binary tensor data after the JSON header.
struct OutputFormat {
  bool binary_by_default = false;      // the request's binary_data_output
  std::map<std::string, bool> binary;  // an output's binary_data

  bool Binary(const std::string& output) const {
    const auto it = binary.find(output);
    return it == binary.end() ? binary_by_default : it->second;
  }
};

// Parses an infer request body into `request` (model name and version come
// from the URL and are set by the caller). `header_length`: the value of
// Inference-Header-Content-Length when present: the JSON is that many bytes
// and binary tensor data follows, each input with binary_data_size taking
// its bytes in order. JSON data (flat or nested, row-major) becomes typed
// contents, or raw bytes when other inputs are binary. INVALID_ARGUMENT
// naming what is wrong.
absl::Status ParseInferRequest(absl::string_view body,
                               std::optional<int64_t> header_length,
                               inference::ModelInferRequest* request,
                               OutputFormat* format);

// The response body: JSON, followed by the binary outputs' bytes when there
// are any (*json_length then is the length of the JSON part, else -1).
std::string WriteInferResponse(const inference::ModelInferResponse& response,
                               const OutputFormat& format,
                               int64_t* json_length);

std::string ToJson(const inference::ServerMetadataResponse& metadata);
std::string ToJson(const inference::ModelMetadataResponse& metadata);
std::string ToJson(const inference::ModelConfigResponse& config);
std::string ToJson(const inference::ModelStatisticsResponse& statistics);
std::string ToJson(const inference::RepositoryIndexResponse& index);
// {"error": message}
std::string ErrorJson(absl::string_view message);

}  // namespace actsvc::server::kserve

#endif  // ACTSVC_SERVER_KSERVE_JSON_H_
