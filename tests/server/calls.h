// Calls for the tests that run a server in-process, of either protocol: a
// deadline some time from now, a before-compute hook that holds each call in
// flight, and a unary call of raw bytes through the generic stub.
#ifndef ACTSVC_TESTS_SERVER_CALLS_H_
#define ACTSVC_TESTS_SERVER_CALLS_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>

namespace actsvc::server::testing {

// Sets `context`'s deadline `timeout` from now.
inline void SetTimeout(grpc::ClientContext* context,
                       std::chrono::milliseconds timeout) {
  context->set_deadline(std::chrono::system_clock::now() + timeout);
}

// A hook for ServerOptions::before_compute_for_testing that holds each call
// for `hold`, having set `*entered` (when given) as it came in.
inline std::function<void()> HoldEachCall(
    std::chrono::milliseconds hold, std::atomic<bool>* entered = nullptr) {
  return [hold, entered] {
    if (entered != nullptr) *entered = true;
    std::this_thread::sleep_for(hold);
  };
}

// Calls `method` (as "/package.Service/Method") with the bytes of `request`
// in one slice, within 10 s; its answer in `*response`.
inline grpc::Status UnaryCall(grpc::GenericStub& stub,
                              const std::string& method,
                              const std::string& request,
                              grpc::ByteBuffer* response) {
  grpc::ClientContext context;
  SetTimeout(&context, std::chrono::seconds(10));
  grpc::Slice slice(request);
  const grpc::ByteBuffer buffer(&slice, 1);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &buffer, response,
                 [&done](grpc::Status status) { done.set_value(status); });
  return done.get_future().get();
}

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_CALLS_H_
