// The own API (actsvc.v1) on the one request path: its messages become the
// protocol-neutral requests of server/ops.h, and its response messages are
// the OutputSink compute writes into. Tensors travel in one of two
// encodings; a response uses the encoding of its request's main tensor.
#ifndef ACTSVC_SERVER_V1_CODEC_H_
#define ACTSVC_SERVER_V1_CODEC_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "actsvc/v1/activation.pb.h"
#include "server/ops.h"
#include "server/tensor.h"
#include "server/wire.h"

namespace actsvc::server {

// How a tensor's values travel: packed bytes or a repeated field.
enum class Encoding { kRaw, kTyped };

// The own API's value of a dtype.
v1::DataType ToProto(DType dtype);

// The own API's data fields on the wire (wire.h): a Tensor's raw_data,
// float_data and double_data.
absl::Span<const WireField> TensorWireFields();

// Where the values of a request's Tensors are: in the message itself, or
// where a WireRequest (wire.h, with TensorWireFields) read them in place
// from the received bytes.
class TensorData {
 public:
  // Where a data field read apart by the WireRequest stays, when its values
  // are the tensor's own (raw_data; float_data of FLOAT32, double_data of
  // FLOAT64): DecodeTensor reads its size only, and gives the tensor a view
  // without values (its values are computed in place where they lie:
  // RunInPlace, compute.h).
  enum LeaveInPlace { kLeaveInPlace };

  TensorData() = default;
  explicit TensorData(const WireRequest* wire) : wire_(wire) {}
  TensorData(const WireRequest* wire, LeaveInPlace)
      : wire_(wire), leave_in_place_(true) {}
  // The bytes of data field `field` of `tensor` (Tensor::kRawDataFieldNumber,
  // kFloatDataFieldNumber or kDoubleDataFieldNumber; typed values as their
  // little-endian bytes), aligned to `alignment` where the memory allows.
  absl::string_view Bytes(const v1::Tensor& tensor, int field,
                          int alignment) const;
  // With kLeaveInPlace, the byte count of `tensor`'s data field `field` when
  // the WireRequest read it apart and it holds values of `dtype` as they
  // are (left where it lies); else nullopt.
  std::optional<int64_t> LeftSize(const v1::Tensor& tensor, int field,
                                  DType dtype) const;

 private:
  const WireRequest* wire_ = nullptr;
  bool leave_in_place_ = false;
};

// A v1::Tensor read in place: its view and how its values travelled.
struct DecodedTensor {
  TensorView view;
  Encoding encoding = Encoding::kRaw;
};

// Validates `tensor` (dtype, dims, exactly one encoding, value count) and
// returns its view. Errors are INVALID_ARGUMENT and name the field as
// `name`.field, with the expected and the actual value.
absl::StatusOr<DecodedTensor> DecodeTensor(const v1::Tensor& tensor,
                                           absl::string_view name,
                                           const TensorData& data = {});

// The requests of ops.h as the messages state them, and the encoding of
// their main tensor (raw when it could not be read).
template <typename Request>
struct Decoded {
  Request request;
  Encoding encoding = Encoding::kRaw;
};
// `data`: where the values of the message's Tensors are.
Decoded<EvaluateRequest> Decode(const v1::EvaluateRequest& message,
                                const TensorData& data = {});
Decoded<DerivativeRequest> Decode(const v1::DerivativeRequest& message,
                                  const TensorData& data = {});
Decoded<JacobianRequest> Decode(const v1::JacobianRequest& message,
                                const TensorData& data = {});
Decoded<CrossEntropyRequest> Decode(
    const v1::SoftmaxCrossEntropyRequest& message, const TensorData& data = {});
AnalyzeRequest Decode(const v1::AnalyzeRequest& message,
                      const TensorData& data = {});

// The elements of a request's main tensor as declared, the measure of its
// work (0 for a StreamRequest with neither request).
int64_t ElementsOf(const v1::EvaluateRequest& r);
int64_t ElementsOf(const v1::DerivativeRequest& r);
int64_t ElementsOf(const v1::JacobianRequest& r);
int64_t ElementsOf(const v1::SoftmaxCrossEntropyRequest& r);
int64_t ElementsOf(const v1::AnalyzeRequest& r);
int64_t ElementsOf(const v1::StreamRequest& r);

// Writes outputs into the v1::Tensor fields of a response message, in one
// encoding. With a WireResponse, the values go into its buffers, which
// become the data fields as it serializes the response (wire.h); without,
// into the message: raw_data is sized once and written in place (through a
// scratch copy only when std::string's buffer is not aligned for the type).
class MessageSink final : public OutputSink {
 public:
  // `targets`: the response tensor of each role the response has.
  MessageSink(Encoding encoding,
              std::initializer_list<std::pair<OutputRole, v1::Tensor*>> targets,
              WireResponse* wire = nullptr);

  int64_t WireBytes(DType dtype, int rank, int64_t elements) const override;
  void* Allocate(OutputRole role, DType dtype, absl::Span<const int64_t> shape,
                 int64_t elements) override;
  void Finish() override;

  // Output `role` (of x's dtype and shape) is a request's data field that
  // was overwritten in place with it (RunInPlace): the response's raw_data
  // (or float_data, double_data for the typed encoding) is sent as the
  // request's bytes (WireResponse::Resend), data field `from_field` of
  // `from`. Needs a WireResponse, and for the typed encoding FLOAT32 or
  // FLOAT64; false (nothing set) when `request` did not read that field
  // apart.
  bool SendInPlace(OutputRole role, DType dtype,
                   absl::Span<const int64_t> shape, const WireRequest& request,
                   const v1::Tensor& from, int from_field);

  bool allocated(OutputRole role) const {
    return allocated_[static_cast<int>(role)];
  }

 private:
  static constexpr int kRoles =
      static_cast<int>(OutputRole::kProbabilities) + 1;
  const Encoding encoding_;
  WireResponse* const wire_;
  std::array<v1::Tensor*, kRoles> targets_{};
  std::array<bool, kRoles> allocated_{};
  // Values computed apart from an unaligned raw_data: (role, values).
  std::vector<std::pair<OutputRole, std::vector<double>>> scratch_;
  // Half values of a typed response, widened into float_data by Finish.
  struct TypedHalf {
    OutputRole role;
    DType dtype;
    int64_t elements;
    std::vector<double> values;
  };
  std::vector<TypedHalf> typed_halves_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_V1_CODEC_H_
