// The fixture of the tests that share one in-process server on a loopback
// port (service_test.cc, service_calls_test.cc): the server, a stub to it,
// and their checks.
#ifndef ACTSVC_TESTS_SERVER_SERVICE_FIXTURE_H_
#define ACTSVC_TESTS_SERVER_SERVICE_FIXTURE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "actsvc/v1/activation.grpc.pb.h"
#include "core/functions.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/server_test_util.h"

namespace actsvc::server::testing {

// One server for the whole binary (service_test.cc registers it); tests
// that need their own make one.
class SharedServer : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Server>> server = StartServer(kMaxMessageMb);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = ChannelTo(server_->port());
  }
  void TearDown() override {
    channel_.reset();
    server_.reset();
  }
  inline static std::unique_ptr<Server> server_;
  inline static std::shared_ptr<grpc::Channel> channel_;
};

class ServiceTest : public ::testing::Test {
 protected:
  grpc::Status Evaluate(const v1::EvaluateRequest& r, v1::EvaluateResponse* o) {
    return Call(*stub_, &Stub::Evaluate, r, o);
  }
  grpc::Status Derivative(const v1::DerivativeRequest& r,
                          v1::DerivativeResponse* o) {
    return Call(*stub_, &Stub::Derivative, r, o);
  }
  grpc::Status Jacobian(const v1::JacobianRequest& r, v1::JacobianResponse* o) {
    return Call(*stub_, &Stub::Jacobian, r, o);
  }
  grpc::Status CrossEntropy(const v1::SoftmaxCrossEntropyRequest& r,
                            v1::SoftmaxCrossEntropyResponse* o) {
    return Call(*stub_, &Stub::SoftmaxCrossEntropy, r, o);
  }

  std::unique_ptr<Stub> stub_ =
      v1::ActivationService::NewStub(SharedServer::channel_);
};

inline void ExpectStatus(const grpc::Status& status, grpc::StatusCode code,
                         const std::vector<std::string>& substrings) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  for (const std::string& s : substrings) {
    EXPECT_THAT(status.error_message(), ::testing::HasSubstr(s));
  }
}

inline int64_t Elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

inline Function CoreFunction(v1::Function f) {
  return static_cast<Function>(f);
}

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_SERVICE_FIXTURE_H_
