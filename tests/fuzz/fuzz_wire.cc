// The wire path (server/wire.h) against protobuf, both ways, with the own
// API's data fields and with KServe v2's. The first byte picks the message
// type, the second how its bytes are cut into slices; the rest is the
// message. Reading: the wire reader accepts exactly what protobuf parses,
// and reads the same fields (its data fields put back). Writing: the message
// with its data fields moved into WireResponse buffers serializes to exactly
// protobuf's bytes. Computing in place (the own API's Evaluate, Derivative,
// Jacobian and Stream, with the request's bytes the method's to overwrite, in
// slices that own their memory, cut as above): the method answers exactly what
// the RPC body answers on protobuf's message, with the same status, chunks
// split over a helper thread; and KServe v2's ModelInfer so answers exactly
// what the same method answers on bytes it may not overwrite.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "actsvc/v1/activation.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "inference/grpc_service.pb.h"
#include "server/kserve/codec.h"
#include "server/kserve/service.h"
#include "server/method_table.h"
#include "server/parallel.h"
#include "server/v1/codec.h"
#include "server/v1/service.h"
#include "server/wire.h"
#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using server::WireField;

struct Kind {
  const Message* prototype;
  absl::Span<const WireField> fields;
};

Kind Pick(uint8_t kind) {
  const absl::Span<const WireField> own = server::TensorWireFields();
  const absl::Span<const WireField> kserve = server::kserve::InferWireFields();
  const Kind kinds[] = {
      {&v1::EvaluateRequest::default_instance(), own},
      {&v1::DerivativeRequest::default_instance(), own},
      {&v1::JacobianRequest::default_instance(), own},
      {&v1::SoftmaxCrossEntropyRequest::default_instance(), own},
      {&v1::AnalyzeRequest::default_instance(), own},
      {&v1::StreamRequest::default_instance(), own},
      {&inference::ModelInferRequest::default_instance(), kserve},
      {&inference::ModelInferResponse::default_instance(), kserve},
      {&inference::ModelStreamInferResponse::default_instance(), kserve},
  };
  return kinds[kind % std::size(kinds)];
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

// Calls fn(message, data field) for every data field of `fields` that
// messages set in `message` (at any depth, through singular message
// fields) have.
template <typename Fn>
void ForEachDataField(Message* message, absl::Span<const WireField> fields,
                      Fn&& fn) {
  for (const WireField& f : fields) {
    if (f.holder == message->GetDescriptor()) {
      fn(message, message->GetDescriptor()->FindFieldByNumber(f.number));
    }
  }
  const auto* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> set;
  reflection->ListFields(*message, &set);
  for (const FieldDescriptor* field : set) {
    if (field->type() == FieldDescriptor::TYPE_MESSAGE &&
        !field->is_repeated()) {
      ForEachDataField(reflection->MutableMessage(message, field), fields, fn);
    }
  }
}

// The field's values as its bytes on the wire (one string a value of a
// repeated bytes field; one string of packed values otherwise).
std::vector<std::string> Values(const Message& m, const FieldDescriptor* f) {
  const auto* r = m.GetReflection();
  std::vector<std::string> values;
  if (f->type() == FieldDescriptor::TYPE_BYTES) {
    if (!f->is_repeated()) {
      if (!r->GetString(m, f).empty()) values.push_back(r->GetString(m, f));
      return values;
    }
    for (int i = 0; i < r->FieldSize(m, f); ++i) {
      values.push_back(r->GetRepeatedString(m, f, i));
    }
    return values;
  }
  std::string packed;
  for (int i = 0; i < r->FieldSize(m, f); ++i) {
    if (f->type() == FieldDescriptor::TYPE_FLOAT) {
      const float v = r->GetRepeatedFloat(m, f, i);
      packed.append(reinterpret_cast<const char*>(&v), sizeof v);
    } else {
      const double v = r->GetRepeatedDouble(m, f, i);
      packed.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
  }
  if (!packed.empty()) values.push_back(packed);
  return values;
}

// Sets the field from `values` (as Values returns them).
void SetValues(Message* m, const FieldDescriptor* f,
               const std::vector<std::string>& values) {
  const auto* r = m->GetReflection();
  r->ClearField(m, f);
  for (const std::string& v : values) {
    if (f->type() == FieldDescriptor::TYPE_BYTES) {
      if (f->is_repeated()) {
        r->AddString(m, f, v);
      } else {
        r->SetString(m, f, v);
      }
    } else if (f->type() == FieldDescriptor::TYPE_FLOAT) {
      Check(v.size() % 4 == 0, "typed data that is not whole values");
      for (size_t at = 0; at < v.size(); at += 4) {
        float x;
        std::memcpy(&x, v.data() + at, 4);
        r->AddFloat(m, f, x);
      }
    } else {
      Check(v.size() % 8 == 0, "typed data that is not whole values");
      for (size_t at = 0; at < v.size(); at += 8) {
        double x;
        std::memcpy(&x, v.data() + at, 8);
        r->AddDouble(m, f, x);
      }
    }
  }
}

// Puts the values the wire reader read apart back into the message (none
// when it left the message whole to protobuf: they are in it then).
void PutBack(const server::WireRequest& wire, Message* m,
             const FieldDescriptor* f) {
  const int count = wire.Count(*m, f->number());
  if (count == 0) return;
  Check(Values(*m, f).empty(), "a data field both read apart and parsed");
  std::vector<std::string> values;
  for (int i = 0; i < count; ++i) {
    const std::optional<absl::string_view> read =
        wire.Find(*m, f->number(), i, 8);
    Check(read.has_value(), "a counted value that cannot be found");
    Check(reinterpret_cast<uintptr_t>(read->data()) % 8 == 0 || read->empty(),
          "a value not aligned as asked");
    if (!read->empty() || f->is_repeated()) values.emplace_back(*read);
  }
  SetValues(m, f, values);
}

// Moves the field's values into `wire`.
void MoveOut(Message* m, const FieldDescriptor* f, server::WireResponse* wire) {
  const std::vector<std::string> values = Values(*m, f);
  m->GetReflection()->ClearField(m, f);
  for (size_t i = 0; i < values.size(); ++i) {
    void* to = wire->Allocate(m, f->number(), static_cast<int>(i),
                              static_cast<int64_t>(values[i].size()));
    if (!values[i].empty()) std::memcpy(to, values[i].data(), values[i].size());
  }
}

std::string Deterministic(const Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

void FreeBlock(void* block) { std::free(block); }

// As Sliced, in slices that own their memory (never inlined): a request
// whose bytes the method may overwrite.
grpc::ByteBuffer OwnedSlices(const uint8_t* data, size_t size, uint8_t cut) {
  std::vector<grpc::Slice> slices;
  const size_t step = cut == 0 ? (size == 0 ? 1 : size) : 1 + cut % 17;
  for (size_t at = 0; at < size; at += step) {
    const size_t n = std::min(step, size - at);
    void* block = std::malloc(n);
    std::memcpy(block, data + at, n);
    slices.emplace_back(block, n, &FreeBlock);
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
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

const server::MethodTable& Methods() {
  static const server::MethodTable* const kMethods = [] {
    auto* table = new server::MethodTable();
    server::RegisterActivationService(table);
    return table;
  }();
  return *kMethods;
}

// Runs the method in place and the body on `message` (what protobuf parsed
// of the same bytes); both answers must be the same.
template <typename Request, typename Response>
void CheckInPlace(const std::string& rpc,
                  absl::Status (*handler)(const Request&,
                                          const server::ComputeContext&,
                                          Response*, server::TensorIo),
                  const Message& message, const uint8_t* data, size_t size,
                  uint8_t cut) {
  static server::ChunkPool* const kPool = new server::ChunkPool(1);
  server::ComputeContext context = FuzzContext();
  context.chunk_pool = kPool;
  context.parallel_threshold_elements = 4 * kChunkElements;
  Response expected;
  const absl::Status expected_status =
      handler(static_cast<const Request&>(message), context, &expected, {});
  context.request_writable = true;
  const server::Method* method =
      Methods().Find("/actsvc.v1.ActivationService/" + rpc);
  Check(method != nullptr, "no such method");
  const grpc::ByteBuffer request = OwnedSlices(data, size, cut);
  grpc::ByteBuffer response;
  int64_t elements = 0;
  const absl::Status status =
      method->unary ? method->unary(request, context, &elements, &response)
                    : method->stream(request, 0, context, &elements, &response);
  if (method->stream && !expected_status.ok()) {
    // The Stream names the request's index in its messages.
    Check(status.code() == expected_status.code(),
          "in place: another status than protobuf's body");
    return;
  }
  Check(status == expected_status,
        "in place: another status than protobuf's body");
  if (status.ok()) {
    Check(Flatten(response) == expected.SerializeAsString(),
          "in place: other bytes than protobuf's body");
  }
}

// ModelInfer with the request's bytes its to overwrite (computing in place
// where it applies) answers as ModelInfer on bytes it may not overwrite.
void CheckModelInferInPlace(const uint8_t* data, size_t size, uint8_t cut) {
  static server::ChunkPool* const kPool = new server::ChunkPool(1);
  static server::kserve::InferenceService* const kService =
      new server::kserve::InferenceService();
  static const server::MethodTable* const kTable = [] {
    auto* table = new server::MethodTable();
    kService->Register(table);
    return table;
  }();
  const server::Method* method =
      kTable->Find("/inference.GRPCInferenceService/ModelInfer");
  Check(method != nullptr, "no ModelInfer method");
  server::ComputeContext context = FuzzContext();
  context.chunk_pool = kPool;
  context.parallel_threshold_elements = 4 * kChunkElements;
  int64_t elements = 0;
  grpc::ByteBuffer expected;
  const absl::Status expected_status =
      method->unary(Sliced(data, size, 0), context, &elements, &expected);
  context.request_writable = true;
  grpc::ByteBuffer response;
  const absl::Status status = method->unary(OwnedSlices(data, size, cut),
                                            context, &elements, &response);
  Check(status == expected_status,
        "ModelInfer in place: another status than on read-only bytes");
  if (status.ok()) {
    Check(Flatten(response) == Flatten(expected),
          "ModelInfer in place: other bytes than on read-only bytes");
  }
}

}  // namespace
}  // namespace actsvc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace actsvc::fuzz;  // NOLINT: one entry point
  if (size < 2) return 0;
  const Kind kind = Pick(data[0]);
  const uint8_t cut = data[1];
  data += 2;
  size -= 2;

  std::unique_ptr<google::protobuf::Message> expected(kind.prototype->New());
  const bool valid = expected->ParseFromArray(data, static_cast<int>(size));
  std::unique_ptr<google::protobuf::Message> got(kind.prototype->New());
  actsvc::server::WireRequest wire(kind.fields);
  Check(wire.Parse(Sliced(data, size, cut), got.get()) == valid,
        valid ? "the wire reader refused a message protobuf parses"
              : "the wire reader accepted a message protobuf refuses");
  if (!valid) return 0;
  ForEachDataField(
      got.get(), kind.fields,
      [&](google::protobuf::Message* m,
          const google::protobuf::FieldDescriptor* f) { PutBack(wire, m, f); });
  // Bytes, not MessageDifferencer: NaN values must match too; maps in key
  // order (two maps with the same entries may iterate apart).
  Check(Deterministic(*got) == Deterministic(*expected),
        "the wire reader read other fields than protobuf");

  if (kind.prototype == &actsvc::v1::EvaluateRequest::default_instance()) {
    CheckInPlace("Evaluate", &actsvc::server::HandleEvaluate, *expected, data,
                 size, cut);
  } else if (kind.prototype ==
             &actsvc::v1::DerivativeRequest::default_instance()) {
    CheckInPlace("Derivative", &actsvc::server::HandleDerivative, *expected,
                 data, size, cut);
  } else if (kind.prototype ==
             &actsvc::v1::JacobianRequest::default_instance()) {
    CheckInPlace("Jacobian", &actsvc::server::HandleJacobian, *expected, data,
                 size, cut);
  } else if (kind.prototype == &actsvc::v1::StreamRequest::default_instance()) {
    CheckInPlace("Stream", &actsvc::server::HandleStreamRequest, *expected,
                 data, size, cut);
  } else if (kind.prototype ==
             &inference::ModelInferRequest::default_instance()) {
    CheckModelInferInPlace(data, size, cut);
  }

  // Responses carry no unknown fields (protobuf writes those last).
  expected->DiscardUnknownFields();
  const std::string reference = expected->SerializeAsString();
  actsvc::server::WireResponse out(kind.fields);
  ForEachDataField(
      expected.get(), kind.fields,
      [&](google::protobuf::Message* m,
          const google::protobuf::FieldDescriptor* f) { MoveOut(m, f, &out); });
  grpc::ByteBuffer written;
  Check(out.Serialize(*expected, &written).ok(), "Serialize failed");
  Check(Flatten(written) == reference,
        "the wire writer's bytes differ from protobuf's");
  return 0;
}
