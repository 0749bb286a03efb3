#include "tests/fuzz/fuzz_util.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/half.h"
#include "server/kserve/service.h"
#include "server/method_table.h"
#include "server/tensor.h"
#include "server/v1/service.h"

namespace actsvc::fuzz {

server::ComputeContext FuzzContext() {
  server::ComputeContext context;
  context.max_message_bytes = kMaxMessageBytes;
  context.chunk_elements = kChunkElements;
  context.max_elements = kMaxElements;
  return context;
}

int64_t Elements(const v1::Tensor& tensor) {
  return server::CheckedProduct(
      absl::MakeConstSpan(tensor.shape().data(), tensor.shape_size()));
}

void Check(bool condition, absl::string_view what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz check failed: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

void CheckFailure(const absl::Status& status) {
  Check(status.code() == absl::StatusCode::kInvalidArgument ||
            status.code() == absl::StatusCode::kResourceExhausted,
        absl::StrCat("unexpected status code: ", status.ToString()));
  Check(!status.message().empty(), "an error without a message");
}

void CheckTensor(const v1::Tensor& tensor, absl::string_view name) {
  const v1::DataType dtype = tensor.dtype();
  const bool half = dtype == v1::FLOAT16 || dtype == v1::BFLOAT16;
  Check(dtype == v1::FLOAT32 || dtype == v1::FLOAT64 || half,
        absl::StrCat(name, ": dtype ", dtype));
  for (const int64_t dim : tensor.shape()) {
    Check(dim >= 0, absl::StrCat(name, ": a negative dim"));
  }
  const int64_t size = Elements(tensor);
  Check(size >= 0, absl::StrCat(name, ": the shape overflows"));
  const int64_t element_size = dtype == v1::FLOAT64   ? 8
                               : dtype == v1::FLOAT32 ? 4
                                                      : 2;
  const int encodings = !tensor.raw_data().empty() +
                        (tensor.float_data_size() > 0) +
                        (tensor.double_data_size() > 0);
  Check(encodings <= 1, absl::StrCat(name, ": data in two encodings"));
  const int64_t values =
      static_cast<int64_t>(tensor.raw_data().size()) / element_size +
      tensor.float_data_size() + tensor.double_data_size();
  Check(static_cast<int64_t>(tensor.raw_data().size()) % element_size == 0,
        absl::StrCat(name, ": raw_data is not a whole number of values"));
  Check(values == size,
        absl::StrCat(name, ": ", values, " values for ", size, " elements"));
  Check(tensor.float_data_size() == 0 || dtype != v1::FLOAT64,
        absl::StrCat(name, ": float_data in a FLOAT64 tensor"));
  Check(tensor.double_data_size() == 0 || dtype == v1::FLOAT64,
        absl::StrCat(name, ": double_data in a ", v1::DataType_Name(dtype),
                     " tensor"));
  if (half) {
    // A typed half response holds half values widened: each float is one.
    const bool f16 = dtype == v1::FLOAT16;
    for (const float f : tensor.float_data()) {
      const double back = f16 ? HalfToFloat(HalfFromDouble<Float16>(f))
                              : HalfToFloat(HalfFromDouble<BFloat16>(f));
      Check(std::isnan(f) || back == f,
            absl::StrCat(name, ": float_data ", f, " is not a ",
                         v1::DataType_Name(dtype), " value"));
    }
  }
}

void CheckSameLayout(const v1::Tensor& output, const v1::Tensor& input,
                     absl::string_view name) {
  CheckTensor(output, name);
  Check(output.dtype() == input.dtype(),
        absl::StrCat(name, ": not the dtype of the input"));
  Check(std::equal(output.shape().begin(), output.shape().end(),
                   input.shape().begin(), input.shape().end()),
        absl::StrCat(name, ": not the shape of the input"));
}

namespace {

// Every API's methods, as the server registers them.
const server::MethodTable& Methods() {
  static const server::MethodTable* const kMethods = [] {
    auto* table = new server::MethodTable();
    server::RegisterActivationService(table);
    static server::kserve::InferenceService* const kKServe =
        new server::kserve::InferenceService();
    kKServe->Register(table);
    return table;
  }();
  return *kMethods;
}

absl::Status RunPath(const std::string& path, const uint8_t* data, size_t size,
                     std::string* response_bytes) {
  grpc::Slice slice(data, size);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  int64_t elements = -1;
  const absl::Status status =
      Methods().CallUnary(path, request, FuzzContext(), &elements, &response);
  Check(status.code() != absl::StatusCode::kUnimplemented,
        absl::StrCat("no RPC at ", path));
  if (!status.ok()) return status;
  Check(elements >= 0 && elements <= kMaxElements,
        absl::StrCat("answered a request of ", elements, " elements"));
  std::vector<grpc::Slice> slices;
  Check(response.Dump(&slices).ok(), "cannot read the response buffer");
  response_bytes->clear();
  for (const grpc::Slice& s : slices) {
    response_bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // The server promises never to send more than its message size limit.
  Check(static_cast<int64_t>(response_bytes->size()) <= kMaxMessageBytes,
        absl::StrCat("a response of ", response_bytes->size(),
                     " bytes, over the limit of ", kMaxMessageBytes));
  return status;
}

}  // namespace

absl::Status RunUnary(absl::string_view rpc, const uint8_t* data, size_t size,
                      std::string* response_bytes) {
  return RunPath(absl::StrCat("/actsvc.v1.ActivationService/", rpc), data, size,
                 response_bytes);
}

absl::Status RunKServeInfer(const uint8_t* data, size_t size,
                            std::string* response_bytes) {
  return RunPath("/inference.GRPCInferenceService/ModelInfer", data, size,
                 response_bytes);
}

}  // namespace actsvc::fuzz
