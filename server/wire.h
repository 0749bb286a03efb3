// Messages on the wire without copying their tensors.
//
// protobuf would copy a request's tensor bytes out of gRPC's slices into a
// string, and a response's into one more buffer as it serializes. Here a
// message travels as a skeleton, which protobuf parses or writes (the
// message with its data fields left empty), plus those data fields: the
// fields a protocol names in a WireField table (the own API's Tensor
// raw_data, float_data and double_data; KServe v2's raw_input_contents and
// raw_output_contents), bytes fields or packed fixed-width values, whose
// bytes are the little-endian values:
//  - a request's data is read in place from the received slices (gathered
//    once into one aligned buffer when it spans slices or is misaligned);
//  - a response's data is computed into buffers of its own, which go out as
//    slices of their own around the skeleton's bytes;
//  - or, where the caller owns the request's bytes (ComputeContext::
//    request_writable: a message gRPC received over the network), a
//    request's data field is overwritten in place with the response's values
//    (WireRequest::Writable) and sent back as sub-slices of the received
//    slices (WireResponse::Resend): no output buffer, no gather, no copy.
//    Why that memory may be written: the top of wire.cc's "In place".
// The bytes are those protobuf reads and writes: a request that the
// skeleton reader cannot take apart (a singular data field or a message on
// the way to one given twice, groups, anything malformed) is parsed by
// protobuf whole instead, and a response is byte-identical to the
// protobuf-serialized message.
//
// Small messages travel whole: a request of at most `small_bytes` (the
// constructors' argument; ComputeContext::small_message_bytes in the
// server) is parsed by protobuf, and a response whose values were all
// written into the message (TakesApart false) is serialized by it. Below
// a few KiB the skeleton's walk costs more than the copies it saves
// (bench/call_body.cc; BENCHMARKS.md, "Small calls").
#ifndef ACTSVC_SERVER_WIRE_H_
#define ACTSVC_SERVER_WIRE_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

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

// A data field of a protocol: field `number` of messages of type `holder`,
// a bytes field (singular or repeated) or a packed repeated fixed-width
// field whose byte count is a multiple of `element_size`.
struct WireField {
  const google::protobuf::Descriptor* holder;
  int number;
  int element_size;
};

// A request's data fields as they lie in its received bytes.
class WireRequest {
 public:
  // `fields`: the protocol's data fields; the table must outlive this. A
  // request of at most `small_bytes` bytes is parsed whole (nothing read
  // apart).
  explicit WireRequest(absl::Span<const WireField> fields,
                       int64_t small_bytes = 0)
      : table_(fields), small_bytes_(small_bytes) {}
  WireRequest(WireRequest&&) = default;
  WireRequest& operator=(WireRequest&&) = default;

  // Parses `bytes` into `message`, its data fields read in place (and left
  // empty in `message`). False when the bytes are not a valid message of
  // that type. `bytes` is not modified; the slices it holds are kept until
  // this is destroyed.
  bool Parse(const grpc::ByteBuffer& bytes, google::protobuf::Message* message);

  // The index-th value (0 for a field that is not a repeated bytes field)
  // of data field `number` of `holder` (a message inside the one last
  // parsed), aligned to `alignment` (a power of two up to 64); nullopt when
  // it was not read apart (it is in the message then, when it is set).
  std::optional<absl::string_view> Find(const google::protobuf::Message& holder,
                                        int number, int index,
                                        int alignment) const;
  // How many values of data field `number` of `holder` were read apart.
  int Count(const google::protobuf::Message& holder, int number) const;
  // The byte count of a value read apart (as Find finds it), without
  // reading it; nullopt when it was not read apart.
  std::optional<int64_t> Size(const google::protobuf::Message& holder,
                              int number, int index = 0) const;

  // The bytes of a value read apart (as Find finds it) where they lie in the
  // received slices, in order, to be overwritten in place (a value of a
  // packed type may straddle two pieces); nullopt when it was not read
  // apart. Precondition: the caller may write the request's bytes
  // (ComputeContext::request_writable; the top of wire.cc's "In place").
  // A later Find sees the bytes written.
  std::optional<std::vector<absl::Span<char>>> Writable(
      const google::protobuf::Message& holder, int number, int index = 0);

  // The same bytes, to be read only.
  std::optional<std::vector<absl::Span<const char>>> Readable(
      const google::protobuf::Message& holder, int number, int index = 0) const;

  // Data fields read in place (or gathered) rather than parsed, for tests.
  int external_fields() const { return static_cast<int>(fields_.size()); }
  // Values handed out by Writable, for tests.
  int writable_fields() const { return writable_fields_; }

 private:
  friend class WireResponse;
  struct Piece {
    const char* data;
    int64_t size;
    size_t slice;  // slices_[slice] holds it
  };
  struct Field {
    const google::protobuf::Message* holder;
    int number;
    int index;
    std::vector<Piece> pieces;  // in order; empty for a zero-length field
    int64_t size = 0;
    // The pieces gathered, when one piece at the asked alignment is not.
    mutable OwnedBuffer gathered;
  };

  const Field* FindField(const google::protobuf::Message& holder, int number,
                         int index) const;
  // The field's bytes as sub-slices of slices_ (references, no copy).
  std::vector<grpc::Slice> SubSlices(const Field& field) const;

  absl::Span<const WireField> table_;
  int64_t small_bytes_ = 0;
  std::vector<grpc::Slice> slices_;
  std::vector<Field> fields_;
  int writable_fields_ = 0;
};

// A response's data fields, computed into buffers of their own.
class WireResponse {
 public:
  // `fields`: the protocol's data fields; the table must outlive this.
  // Values under `small_bytes` bytes are the message's to hold (TakesApart).
  explicit WireResponse(absl::Span<const WireField> fields,
                        int64_t small_bytes = 0)
      : table_(fields), small_bytes_(small_bytes) {}
  WireResponse(WireResponse&&) = default;
  WireResponse& operator=(WireResponse&&) = default;

  // Whether a value of `bytes` bytes should travel apart (Allocate), rather
  // than in the message: from `small_bytes` on.
  bool TakesApart(int64_t bytes) const { return bytes >= small_bytes_; }

  // `bytes` bytes, 64-byte aligned, that become the index-th value (0 for a
  // field that is not a repeated bytes field) of data field `number` of
  // `holder` (a message inside the response this will serialize, set by the
  // time Serialize is called). A repeated bytes field needs every index from
  // 0 up to its last; a singular one at most one buffer.
  void* Allocate(const google::protobuf::Message* holder, int number, int index,
                 int64_t bytes);
  void* Allocate(const google::protobuf::Message* holder, int number,
                 int64_t bytes) {
    return Allocate(holder, number, 0, bytes);
  }

  // The index-th value (0 for a field that is not a repeated bytes field)
  // of data field `number` of `holder` is the from_index-th value `request`
  // read apart as data field `from_number` of `from_holder`, as it lies in
  // the received slices when Serialize is called (overwritten in place by
  // then: WireRequest::Writable). It goes out as sub-slices of those
  // slices, which keep the memory alive; the request must outlive
  // Serialize. False (nothing recorded) when the request did not read that
  // value apart. As with Allocate, a repeated bytes field needs every index
  // from 0 up to its last (allocated or resent).
  bool Resend(const google::protobuf::Message* holder, int number, int index,
              const WireRequest& request,
              const google::protobuf::Message& from_holder, int from_number,
              int from_index);
  // The same for a singular value (or index 0) from a singular one.
  bool Resend(const google::protobuf::Message* holder, int number,
              const WireRequest& request,
              const google::protobuf::Message& from_holder, int from_number) {
    return Resend(holder, number, 0, request, from_holder, from_number, 0);
  }

  // `response` with the allocated fields in their places, as slices: the
  // skeleton's bytes copied, each data buffer handed to gRPC as it is
  // (nothing allocated or resent: protobuf's serialization of `response`).
  absl::Status Serialize(const google::protobuf::Message& response,
                         grpc::ByteBuffer* out);

 private:
  struct Buffer {
    const google::protobuf::Message* holder;
    int number;
    int index;
    OwnedBuffer data;
    int64_t size = 0;
    // Resend: the request's value whose slices are this value.
    const WireRequest* request = nullptr;
    const WireRequest::Field* from = nullptr;
  };
  absl::Span<const WireField> table_;
  int64_t small_bytes_ = 0;
  std::vector<Buffer> buffers_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_WIRE_H_
