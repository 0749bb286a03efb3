// The methods every API registers, by gRPC path. gRPC C++ serves one
// callback generic service per server (a second is dropped), so the own API
// and any other protocol's methods all live in this one table, and the
// generic service of calls.h routes each call through it.
#ifndef ACTSVC_SERVER_METHOD_TABLE_H_
#define ACTSVC_SERVER_METHOD_TABLE_H_

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/compute.h"

namespace actsvc::server {

// A unary method over serialized messages: parse, validate, compute,
// serialize. *elements: the measure of the request's work (its main
// tensor's declared elements), for the metrics.
using UnaryBody = std::function<absl::Status(
    const grpc::ByteBuffer& request, const ComputeContext& context,
    int64_t* elements, grpc::ByteBuffer* response)>;
// One message of a bidirectional stream, the index-th (from 0): its answer,
// or a status that ends the stream.
using StreamBody =
    std::function<absl::Status(const grpc::ByteBuffer& request, int64_t index,
                               const ComputeContext& context, int64_t* elements,
                               grpc::ByteBuffer* response)>;

enum class MethodKind {
  // Runs on a compute thread, or on the gRPC thread that read it when the
  // request is small (calls.cc; its work follows its size, but for dense
  // Jacobians, which check their response first: NeedsComputeThread);
  // counts toward --max_concurrent_calls.
  kUnary,
  // Cheap and bounded (metadata): runs on the gRPC thread, is never
  // refused for concurrency, only while draining.
  kUnaryInline,
  // A bidirectional stream, one message at a time on a compute thread; the
  // stream counts once toward --max_concurrent_calls.
  kStream,
};

struct Method {
  std::string path;  // "/actsvc.v1.ActivationService/Evaluate"
  std::string api;   // "actsvc.v1.ActivationService"
  std::string name;  // "Evaluate"
  MethodKind kind = MethodKind::kUnary;
  UnaryBody unary;    // kUnary, kUnaryInline
  StreamBody stream;  // kStream
};

// A method of `api` ("actsvc.v1.ActivationService") named `name`, at the
// path gRPC gives it; its body is the caller's to set.
inline Method MakeMethod(absl::string_view api, absl::string_view name,
                         MethodKind kind) {
  Method method;
  method.path = absl::StrCat("/", api, "/", name);
  method.api = std::string(api);
  method.name = std::string(name);
  method.kind = kind;
  return method;
}

// A method body's protobuf message from the request's bytes (false when it
// is not a valid one), and its response into bytes.
template <typename Message>
bool ParseMessage(const grpc::ByteBuffer& bytes, Message* message) {
  grpc::ByteBuffer copy = bytes;  // shares the slices; Deserialize consumes it
  return grpc::SerializationTraits<Message>::Deserialize(&copy, message).ok();
}
template <typename Message>
absl::Status SerializeMessage(const Message& message, grpc::ByteBuffer* out) {
  bool own_buffer = false;
  const grpc::Status serialized =
      grpc::SerializationTraits<Message>::Serialize(message, out, &own_buffer);
  if (serialized.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cannot serialize the response: ",
                                          serialized.error_message()));
}

class MethodTable {
 public:
  // Before serving only. Method `index` keeps its place.
  void Add(Method method);
  // nullptr for a path no API registered.
  const Method* Find(absl::string_view path) const;
  // Position of a method in methods(), for per-method counters.
  int IndexOf(const Method* method) const {
    return static_cast<int>(method - methods_.data());
  }
  const std::vector<Method>& methods() const { return methods_; }

  // The body of the unary method at `path` as the server runs it, without a
  // call. UNIMPLEMENTED for an unknown path. For tests (the fuzz targets).
  absl::Status CallUnary(absl::string_view path,
                         const grpc::ByteBuffer& request,
                         const ComputeContext& context, int64_t* elements,
                         grpc::ByteBuffer* response) const;

 private:
  std::vector<Method> methods_;
};

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_METHOD_TABLE_H_
