// Server reflection of the real actsvc-server binary: every service it lists
// must resolve to its descriptor, as grpcurl and Postman need. In-process
// tests cannot show this: a test that uses the health stub links health's
// descriptor itself, whereas the server's health service uses none.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "tests/e2e/processes.h"

namespace actsvc::e2e {
namespace {

// The length-delimited fields `number` of a serialized message, read without
// its descriptor.
std::vector<std::string> FieldsOf(const std::string& bytes, int number) {
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes)) return {};
  std::vector<std::string> out;
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& field = fields.field(i);
    if (field.number() == number &&
        field.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out.push_back(field.length_delimited());
    }
  }
  return out;
}

// A reflection stream on raw bytes (the reflection protos are not
// installed): ServerReflectionRequest and ServerReflectionResponse are
// written and read by field number.
class ReflectionStream {
 public:
  explicit ReflectionStream(grpc::ChannelInterface* channel)
      : method_(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            grpc::internal::RpcMethod::BIDI_STREAMING) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(20));
    stream_.reset(grpc::internal::ClientReaderWriterFactory<
                  grpc::ByteBuffer, grpc::ByteBuffer>::Create(channel, method_,
                                                              &context_));
  }

  // Sends a request with field `number` set to `value`; returns the
  // response's bytes ("" when none came).
  std::string Ask(int number, const std::string& value) {
    google::protobuf::UnknownFieldSet request;
    request.AddLengthDelimited(number, value);
    std::string bytes;
    request.SerializeToString(&bytes);
    grpc::Slice slice(bytes);
    if (!stream_->Write(grpc::ByteBuffer(&slice, 1))) return "";
    grpc::ByteBuffer response;
    if (!stream_->Read(&response)) return "";
    std::vector<grpc::Slice> slices;
    if (!response.Dump(&slices).ok()) return "";
    std::string out;
    for (const grpc::Slice& s : slices) {
      out.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return out;
  }

  grpc::Status Finish() {
    stream_->WritesDone();
    return stream_->Finish();
  }

 private:
  grpc::ClientContext context_;
  const grpc::internal::RpcMethod method_;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      stream_;
};

// ServerReflectionRequest fields.
constexpr int kFileContainingSymbol = 4;
constexpr int kListServices = 7;
// ServerReflectionResponse fields.
constexpr int kFileDescriptorResponse = 4;
constexpr int kListServicesResponse = 6;
constexpr int kErrorResponse = 7;

TEST(ReflectionE2eTest, EveryListedServiceResolves) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(ACTSVC_SERVER_PATH, {});
  ASSERT_TRUE(server.ok()) << server.status();
  std::shared_ptr<grpc::Channel> channel = MakeChannel((*server)->target());
  ReflectionStream stream(channel.get());

  std::vector<std::string> services;
  const std::string listed = stream.Ask(kListServices, "");
  for (const std::string& list : FieldsOf(listed, kListServicesResponse)) {
    for (const std::string& service : FieldsOf(list, 1)) {
      for (const std::string& name : FieldsOf(service, 1)) {
        services.push_back(name);
      }
    }
  }
  EXPECT_THAT(services,
              ::testing::IsSupersetOf(
                  {"actsvc.v1.ActivationService", "grpc.health.v1.Health",
                   "grpc.reflection.v1alpha.ServerReflection",
                   "inference.GRPCInferenceService"}));

  for (const std::string& service : services) {
    const std::string answer = stream.Ask(kFileContainingSymbol, service);
    for (const std::string& error : FieldsOf(answer, kErrorResponse)) {
      const std::vector<std::string> message = FieldsOf(error, 2);
      ADD_FAILURE() << service << ": "
                    << (message.empty() ? "error" : message.front());
    }
    bool described = false;
    for (const std::string& files : FieldsOf(answer, kFileDescriptorResponse)) {
      for (const std::string& bytes : FieldsOf(files, 1)) {
        google::protobuf::FileDescriptorProto file;
        ASSERT_TRUE(file.ParseFromString(bytes)) << service;
        for (const google::protobuf::ServiceDescriptorProto& s :
             file.service()) {
          described |= absl::StrCat(file.package(), ".", s.name()) == service;
        }
      }
    }
    EXPECT_TRUE(described) << service << " has no descriptor";
  }
  EXPECT_TRUE(stream.Finish().ok());
  EXPECT_EQ((*server)->Stop(), 0) << (*server)->Log();
}

}  // namespace
}  // namespace actsvc::e2e
