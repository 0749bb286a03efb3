// TLS and mutual TLS, with a CA, server and client certificates made by
// openssl at test time.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/tls_test_util.h"

namespace actsvc::server {
namespace {

using ::grpc::StatusCode;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using testing::TestPki;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestPki();
    ASSERT_TRUE(pki_->Make()) << "openssl failed; see the log above";
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  std::unique_ptr<Server> Start(bool mutual) {
    ServerOptions options;
    options.address = "127.0.0.1:0";
    options.tls.cert = pki_->Path("server.pem");
    options.tls.key = pki_->Path("server.key");
    if (mutual) options.tls.client_ca = pki_->Path("ca.pem");
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  // A TLS channel that trusts our CA, presenting `client` ("client" or
  // "other_client", from another CA) when not empty.
  std::shared_ptr<grpc::Channel> TlsChannel(const Server& server,
                                            const std::string& client = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki_->Read("ca.pem");
    if (!client.empty()) {
      ssl.pem_cert_chain = pki_->Read(client + ".pem");
      ssl.pem_private_key = pki_->Read(client + ".key");
    }
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                               grpc::SslCredentials(ssl));
  }

  static grpc::Status Evaluate(const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = v1::ActivationService::NewStub(channel);
    v1::EvaluateRequest request;
    request.mutable_spec()->set_function(v1::RELU);
    request.mutable_input()->set_dtype(v1::FLOAT32);
    request.mutable_input()->add_shape(2);
    request.mutable_input()->add_float_data(-1);
    request.mutable_input()->add_float_data(2);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    v1::EvaluateResponse response;
    grpc::Status status = stub->Evaluate(&context, request, &response);
    if (status.ok()) {
      EXPECT_THAT(response.output().float_data(), ::testing::ElementsAre(0, 2));
    }
    return status;
  }

  static TestPki* pki_;
};
TestPki* TlsTest::pki_ = nullptr;

TEST_F(TlsTest, HealthAndCallsWorkOverTls) {
  std::unique_ptr<Server> server = Start(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  std::shared_ptr<grpc::Channel> channel = TlsChannel(*server);
  auto health = Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  HealthCheckResponse response;
  const grpc::Status status =
      health->Check(&context, HealthCheckRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  const grpc::Status evaluated = Evaluate(channel);
  EXPECT_TRUE(evaluated.ok()) << evaluated.error_message();
}

TEST_F(TlsTest, PlaintextClientIsRefused) {
  std::unique_ptr<Server> server = Start(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(
      Evaluate(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()),
                                   grpc::InsecureChannelCredentials()))
          .error_code(),
      StatusCode::UNAVAILABLE);
  // ... and the server goes on serving TLS clients.
  EXPECT_TRUE(Evaluate(TlsChannel(*server)).ok());
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateFromItsCa) {
  std::unique_ptr<Server> server = Start(/*mutual=*/true);
  ASSERT_NE(server, nullptr);
  const grpc::Status with_ours = Evaluate(TlsChannel(*server, "client"));
  EXPECT_TRUE(with_ours.ok()) << with_ours.error_message();
  EXPECT_EQ(Evaluate(TlsChannel(*server)).error_code(),
            StatusCode::UNAVAILABLE);
  EXPECT_EQ(Evaluate(TlsChannel(*server, "other_client")).error_code(),
            StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      Evaluate(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()),
                                   grpc::InsecureChannelCredentials()))
          .error_code(),
      StatusCode::UNAVAILABLE);
  EXPECT_TRUE(Evaluate(TlsChannel(*server, "client")).ok());
}

TEST_F(TlsTest, StartRefusesIncompleteOrUnreadableTlsFiles) {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.tls.cert = pki_->Path("server.pem");
  EXPECT_EQ(Server::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.tls.cert.clear();
  options.tls.client_ca = pki_->Path("ca.pem");
  EXPECT_EQ(Server::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.tls.cert = pki_->Path("server.pem");
  options.tls.key = pki_->Path("no-such.key");
  const absl::Status missing = Server::Start(options).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.message()), ::testing::HasSubstr("no-such"));
}

}  // namespace
}  // namespace actsvc::server
