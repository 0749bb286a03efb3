// The Open Inference Protocol's ModelInferRequest on the one request path:
// decoded into a request of server/ops.h for the model it names (tensors
// read in place from raw_input_contents or typed contents, parameters as
// double, int64 or string), and answered through an OutputSink that writes
// each output into the response's raw_output_contents. Errors are Triton's
// in style: they name the model and the input.
#ifndef ACTSVC_SERVER_KSERVE_CODEC_H_
#define ACTSVC_SERVER_KSERVE_CODEC_H_

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/grpc_service.pb.h"
#include "server/kserve/models.h"
#include "server/ops.h"
#include "server/tensor.h"
#include "server/wire.h"

namespace actsvc::server::kserve {

using InferRequest = std::variant<EvaluateRequest, DerivativeRequest,
                                  JacobianRequest, CrossEntropyRequest>;

// A ModelInferRequest as its model's request of ops.h. It points into the
// message it was decoded from, which must outlive it.
struct DecodedInfer {
  const Model* model = nullptr;
  InferRequest request;
  // The outputs to answer, in the response's order: those the request
  // lists, or every output of the model when it lists none.
  std::vector<const OutputSpec*> outputs;
  // The labels of cross-entropy as int64 (the span in the request points
  // here).
  std::vector<int64_t> labels;
  // The declared elements of the model's first input, the measure of the
  // request's work.
  int64_t elements = 0;
  // The index in raw_input_contents of each of the model's inputs, in the
  // model's order, when the request sent its values raw; else empty.
  std::vector<int> raw_index;
};

// Where Decode takes the values of raw_input_contents from: read (gathered
// when they must be), or, with kLeaveInPlace, left where the WireRequest
// read them apart: a float input then gets a view without values (its
// values are computed in place where they lie: RunInPlace, compute.h).
enum class RawValues { kRead, kLeaveInPlace };

// KServe v2's data fields on the wire (wire.h): a ModelInferRequest's
// raw_input_contents and a ModelInferResponse's raw_output_contents.
absl::Span<const WireField> InferWireFields();

// NOT_FOUND for an unknown model or version; INVALID_ARGUMENT for an
// unknown, repeated or missing input, an unknown output, a parameter of the
// wrong type or name, raw_input_contents beside typed contents or not one
// per input, and (in the request's TensorArgs, for Validate to report in
// its order) a datatype, shape or byte count that does not fit.
// `wire`: the WireRequest (with InferWireFields) that parsed `message` and
// holds its raw_input_contents, or nullptr when they are in the message.
absl::StatusOr<DecodedInfer> Decode(const inference::ModelInferRequest& message,
                                    const WireRequest* wire = nullptr,
                                    RawValues raw_values = RawValues::kRead);

// `status` naming `model` when it is INVALID_ARGUMENT and does not yet.
absl::Status WithModel(absl::Status status, const Model& model);

// Writes the selected outputs of a model into a ModelInferResponse: each an
// InferOutputTensor (name, datatype, shape) and its raw_output_contents.
// With a WireResponse (with InferWireFields) the values go into its
// buffers, which become raw_output_contents as it serializes the response;
// without, into the message, sized once and written in place (through a
// scratch copy only when the string's buffer is not aligned for the type).
// Outputs compute writes but the request did not ask for go to scratch
// memory and are dropped.
class InferResponseSink final : public OutputSink {
 public:
  InferResponseSink(const std::vector<const OutputSpec*>& outputs,
                    inference::ModelInferResponse* response,
                    WireResponse* wire = nullptr);

  void* Allocate(OutputRole role, DType dtype, absl::Span<const int64_t> shape,
                 int64_t elements) override;
  void Finish() override;

  // Output `role` (of x's dtype and shape) is the from_index-th
  // raw_input_contents of `request`, overwritten in place with it
  // (RunInPlace): its raw_output_contents are sent as those bytes
  // (WireResponse::Resend). Needs a WireResponse; false (nothing set) when
  // the output is not answered or `wire` did not read that value apart.
  bool SendInPlace(OutputRole role, DType dtype,
                   absl::Span<const int64_t> shape, const WireRequest& wire,
                   const inference::ModelInferRequest& request, int from_index);

 private:
  static constexpr int kRawOutputs =
      inference::ModelInferResponse::kRawOutputContentsFieldNumber;
  static constexpr int kRoles =
      static_cast<int>(OutputRole::kProbabilities) + 1;
  inference::ModelInferResponse* const response_;
  WireResponse* const wire_;
  int answered_ = 0;             // outputs in the response
  std::vector<bool> allocated_;  // by position
  // The response position of each role, or -1 when it is not answered.
  std::array<int, kRoles> position_{};
  // Values computed apart from the response: (position or -1, values).
  std::vector<std::pair<int, std::vector<double>>> scratch_;
};

}  // namespace actsvc::server::kserve

#endif  // ACTSVC_SERVER_KSERVE_CODEC_H_
