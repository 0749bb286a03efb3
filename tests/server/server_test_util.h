// Helpers for the tests that run the whole server in-process on a loopback
// port (service_test.cc, service_lifecycle_test.cc).
#ifndef ACTSVC_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define ACTSVC_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "server/server.h"
#include "tests/server/test_util.h"

namespace actsvc::server::testing {

using Stub = v1::ActivationService::Stub;

inline constexpr int kMaxMessageMb = 1;
inline constexpr int64_t kMaxMessageBytes = int64_t{kMaxMessageMb} << 20;

inline std::shared_ptr<grpc::Channel> ChannelTo(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

inline absl::StatusOr<std::unique_ptr<Server>> StartServer(
    int max_message_mb, std::function<void()> before_compute = nullptr) {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.max_message_mb = max_message_mb;
  options.compute_threads = 2;
  // Small chunks, so that multi-chunk paths run on small tensors.
  options.chunk_elements = 1024;
  options.before_compute_for_testing = std::move(before_compute);
  // A held call holds a compute thread, never a gRPC thread.
  if (options.before_compute_for_testing) options.inline_compute_kb = 0;
  return Server::Start(options);
}

template <typename Request, typename Response>
inline grpc::Status Call(Stub& stub,
                         grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                      const Request&,
                                                      Response*),
                         const Request& request, Response* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  return (stub.*method)(&context, request, response);
}

inline v1::FunctionSpec Spec(v1::Function f) {
  v1::FunctionSpec spec;
  spec.set_function(f);
  return spec;
}

inline v1::EvaluateRequest GoodEvaluate(v1::Function f = v1::SIGMOID) {
  v1::EvaluateRequest request;
  *request.mutable_spec() = Spec(f);
  *request.mutable_input() =
      MakeTensor<float>({2, 2}, {1, 2, 3, 4}, Encoding::kRaw);
  return request;
}

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_SERVER_TEST_UTIL_H_
