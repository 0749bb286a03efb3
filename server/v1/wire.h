// The own API's messages on the wire without copying their tensors.
//
// protobuf would copy a request's raw_data out of gRPC's slices into a
// string, and a response's raw_data into one more buffer as it serializes.
// Here a message travels as a skeleton, which protobuf parses or writes (the
// message with the data fields of its Tensors left empty), plus those data
// fields (raw_data, and the packed float_data and double_data, whose bytes
// are the same little-endian values):
//  - a request's data is read in place from the received slices (gathered
//    once into one aligned buffer when it spans slices or is misaligned);
//  - a response's data is computed into buffers of its own, which go out as
//    slices of their own around the skeleton's bytes.
// The bytes are those protobuf reads and writes: a request that the
// skeleton reader cannot take apart (a data or message field given twice,
// groups, anything malformed) is parsed by protobuf whole instead, and a
// response is byte-identical to the protobuf-serialized message.
#ifndef ACTSVC_SERVER_V1_WIRE_H_
#define ACTSVC_SERVER_V1_WIRE_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "server/v1/codec.h"

namespace actsvc::server {

// A block of server/memory.h's AllocateBuffer, freed with it.
class OwnedBuffer {
 public:
  OwnedBuffer() = default;
  explicit OwnedBuffer(int64_t bytes);
  ~OwnedBuffer();
  OwnedBuffer(OwnedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(other.size_) {}
  OwnedBuffer& operator=(OwnedBuffer&& other) noexcept;

  char* get() const { return data_; }
  bool empty() const { return data_ == nullptr; }
  // Hands the block over: FreeBuffer(block, size) is the new owner's.
  char* release() { return std::exchange(data_, nullptr); }

 private:
  char* data_ = nullptr;
  int64_t size_ = 0;
};

// A request's Tensor data fields as they lie in its received bytes.
class WireRequest final : public TensorData {
 public:
  WireRequest() = default;
  WireRequest(WireRequest&&) = default;
  WireRequest& operator=(WireRequest&&) = default;

  // Parses `bytes` into `message`, its data fields read in place. False
  // when the bytes are not a valid message of that type. `bytes` is not
  // modified; the slices it holds are kept until this is destroyed.
  bool Parse(const grpc::ByteBuffer& bytes, google::protobuf::Message* message);

  // The data field `field` of `tensor` (a Tensor of the message last
  // parsed), aligned to `alignment` (a power of two up to 64).
  absl::string_view Bytes(const v1::Tensor& tensor, int field,
                          int alignment) const override;

  // Data fields read in place (or gathered) rather than parsed, for tests.
  int external_fields() const { return static_cast<int>(fields_.size()); }

 private:
  struct Piece {
    const char* data;
    int64_t size;
  };
  struct Field {
    const v1::Tensor* tensor;
    int number;
    std::vector<Piece> pieces;  // in order; empty for a zero-length field
    int64_t size = 0;
    // The pieces gathered, when one piece at the asked alignment is not.
    mutable OwnedBuffer gathered;
  };

  std::vector<grpc::Slice> slices_;
  std::vector<Field> fields_;
};

// A response's Tensor data fields, computed into buffers of their own.
class WireResponse {
 public:
  WireResponse() = default;
  WireResponse(WireResponse&&) = default;
  WireResponse& operator=(WireResponse&&) = default;

  // `bytes` bytes, 64-byte aligned, that become data field `field` of
  // `tensor` (a Tensor inside the response this will serialize, set by the
  // time Serialize is called). At most one field per tensor.
  void* Allocate(const v1::Tensor* tensor, int field, int64_t bytes);

  // `response` with the allocated fields in their places, as slices: the
  // skeleton's bytes copied, each data buffer handed to gRPC as it is.
  absl::Status Serialize(const google::protobuf::Message& response,
                         grpc::ByteBuffer* out);

 private:
  struct Buffer {
    const v1::Tensor* tensor;
    int number;
    OwnedBuffer data;
    int64_t size = 0;
  };
  std::vector<Buffer> buffers_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_V1_WIRE_H_
