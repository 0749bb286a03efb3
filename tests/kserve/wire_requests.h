// Requests of KServe v2 as bytes on the wire, for the tests of its wire
// path (server/wire.h with InferWireFields) and of computing in place.
#ifndef ACTSVC_TESTS_KSERVE_WIRE_REQUESTS_H_
#define ACTSVC_TESTS_KSERVE_WIRE_REQUESTS_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "inference/grpc_service.pb.h"

namespace actsvc::server::kserve::testing {

constexpr absl::string_view kInfer =
    "/inference.GRPCInferenceService/ModelInfer";
constexpr absl::string_view kStream =
    "/inference.GRPCInferenceService/ModelStreamInfer";

inline size_t DatatypeSize(absl::string_view datatype) {
  if (datatype == "FP64" || datatype == "INT64") return 8;
  if (datatype == "FP16" || datatype == "BF16") return 2;
  return 4;
}

// An input of random bytes (NaN, ±inf and huge values among them, as
// perf_analyzer sends), or of `labels` when they are given.
inline void AddInput(inference::ModelInferRequest* request,
                     const std::string& name, const std::string& datatype,
                     const std::vector<int64_t>& shape, std::mt19937* random,
                     const std::vector<int64_t>& labels = {}) {
  auto* input = request->add_inputs();
  input->set_name(name);
  input->set_datatype(datatype);
  int64_t n = 1;
  for (int64_t d : shape) {
    input->add_shape(d);
    n *= d;
  }
  std::string bytes(static_cast<size_t>(n) * DatatypeSize(datatype), '\0');
  if (!labels.empty()) {
    for (int64_t i = 0; i < n; ++i) {
      if (datatype == "INT64") {
        std::memcpy(&bytes[8 * i], &labels[i % labels.size()], 8);
      } else {
        const auto label = static_cast<int32_t>(labels[i % labels.size()]);
        std::memcpy(&bytes[4 * i], &label, 4);
      }
    }
  } else {
    for (char& c : bytes) c = static_cast<char>((*random)() & 0xff);
  }
  request->add_raw_input_contents(std::move(bytes));
}

}  // namespace actsvc::server::kserve::testing

#endif  // ACTSVC_TESTS_KSERVE_WIRE_REQUESTS_H_
