// The wire path (server/v1/wire.h) against protobuf, both ways. The first
// byte picks the request message type, the second how its bytes are cut
// into slices; the rest is the message. Reading: the wire reader accepts
// exactly what protobuf parses, and reads the same fields (its data fields
// put back). Writing: the message with its data fields moved into
// WireResponse buffers serializes to exactly protobuf's bytes.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "actsvc/v1/activation.pb.h"
#include "google/protobuf/descriptor.h"
#include "server/v1/wire.h"
#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

const Message& Prototype(uint8_t kind) {
  switch (kind % 6) {
    case 0:
      return v1::EvaluateRequest::default_instance();
    case 1:
      return v1::DerivativeRequest::default_instance();
    case 2:
      return v1::JacobianRequest::default_instance();
    case 3:
      return v1::SoftmaxCrossEntropyRequest::default_instance();
    case 4:
      return v1::AnalyzeRequest::default_instance();
    default:
      return v1::StreamRequest::default_instance();
  }
}

// Slices of 1 + (cut % 17) bytes, or one slice when cut is 0.
grpc::ByteBuffer Sliced(const uint8_t* data, size_t size, uint8_t cut) {
  std::vector<grpc::Slice> slices;
  const size_t step = cut == 0 ? (size == 0 ? 1 : size) : 1 + cut % 17;
  for (size_t at = 0; at < size; at += step) {
    slices.emplace_back(data + at, std::min(step, size - at));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// Calls fn on every Tensor set in `message`, at any depth.
template <typename Fn>
void ForEachTensor(Message* message, Fn&& fn) {
  if (message->GetDescriptor() == v1::Tensor::descriptor()) {
    fn(static_cast<v1::Tensor*>(message));
    return;
  }
  const auto* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->type() == FieldDescriptor::TYPE_MESSAGE &&
        !field->is_repeated()) {
      ForEachTensor(reflection->MutableMessage(message, field), fn);
    }
  }
}

void PutBack(const server::WireRequest& wire, v1::Tensor* t) {
  const std::string raw(wire.Bytes(*t, v1::Tensor::kRawDataFieldNumber, 1));
  const std::string floats(
      wire.Bytes(*t, v1::Tensor::kFloatDataFieldNumber, 4));
  const std::string doubles(
      wire.Bytes(*t, v1::Tensor::kDoubleDataFieldNumber, 8));
  Check(floats.size() % 4 == 0 && doubles.size() % 8 == 0,
        "typed data that is not whole values");
  t->set_raw_data(raw);
  t->mutable_float_data()->Resize(static_cast<int>(floats.size() / 4), 0);
  if (!floats.empty()) {
    std::memcpy(t->mutable_float_data()->mutable_data(), floats.data(),
                floats.size());
  }
  t->mutable_double_data()->Resize(static_cast<int>(doubles.size() / 8), 0);
  if (!doubles.empty()) {
    std::memcpy(t->mutable_double_data()->mutable_data(), doubles.data(),
                doubles.size());
  }
}

// Moves the first non-empty data field of `t` into `wire`.
void MoveOut(v1::Tensor* t, server::WireResponse* wire) {
  std::string bytes;
  int field = 0;
  if (!t->raw_data().empty()) {
    field = v1::Tensor::kRawDataFieldNumber;
    bytes = t->raw_data();
    t->clear_raw_data();
  } else if (t->float_data_size() > 0) {
    field = v1::Tensor::kFloatDataFieldNumber;
    bytes.assign(reinterpret_cast<const char*>(t->float_data().data()),
                 t->float_data_size() * sizeof(float));
    t->clear_float_data();
  } else if (t->double_data_size() > 0) {
    field = v1::Tensor::kDoubleDataFieldNumber;
    bytes.assign(reinterpret_cast<const char*>(t->double_data().data()),
                 t->double_data_size() * sizeof(double));
    t->clear_double_data();
  } else {
    return;
  }
  void* to = wire->Allocate(t, field, static_cast<int64_t>(bytes.size()));
  std::memcpy(to, bytes.data(), bytes.size());
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  Check(buffer.Dump(&slices).ok(), "a response that cannot be read");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

}  // namespace
}  // namespace actsvc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace actsvc::fuzz;  // NOLINT: one entry point
  if (size < 2) return 0;
  const google::protobuf::Message& prototype = Prototype(data[0]);
  const uint8_t cut = data[1];
  data += 2;
  size -= 2;

  std::unique_ptr<google::protobuf::Message> expected(prototype.New());
  const bool valid = expected->ParseFromArray(data, static_cast<int>(size));
  std::unique_ptr<google::protobuf::Message> got(prototype.New());
  actsvc::server::WireRequest wire;
  Check(wire.Parse(Sliced(data, size, cut), got.get()) == valid,
        valid ? "the wire reader refused a message protobuf parses"
              : "the wire reader accepted a message protobuf refuses");
  if (!valid) return 0;
  ForEachTensor(got.get(), [&](actsvc::v1::Tensor* t) { PutBack(wire, t); });
  // Bytes, not MessageDifferencer: NaN values must match too.
  Check(got->SerializeAsString() == expected->SerializeAsString(),
        "the wire reader read other fields than protobuf");

  // Responses carry no unknown fields (protobuf writes those last).
  expected->DiscardUnknownFields();
  const std::string reference = expected->SerializeAsString();
  actsvc::server::WireResponse out;
  ForEachTensor(expected.get(),
                [&](actsvc::v1::Tensor* t) { MoveOut(t, &out); });
  grpc::ByteBuffer written;
  Check(out.Serialize(*expected, &written).ok(), "Serialize failed");
  Check(Flatten(written) == reference,
        "the wire writer's bytes differ from protobuf's");
  return 0;
}
