// Which thread computes a call (ServerOptions::inline_compute_kb): a small
// request of a method whose work follows its size is computed on the gRPC
// thread that read it; a larger one, a Jacobian or an Analyze on a compute
// thread; and with inline_compute_kb = 0, every call on a compute thread.
// The answers are the same either way.
#include <grpcpp/grpcpp.h>
#include <pthread.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "server/worker_pool.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using testing::MakeTensor;
using testing::Ramp;
using Stub = v1::ActivationService::Stub;

// The names of the threads that computed the calls, in order.
class ThreadNames {
 public:
  std::function<void()> Hook() {
    return [this] {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof(name));
      std::lock_guard<std::mutex> lock(mu_);
      names_.emplace_back(name);
    };
  }
  // The name of the one thread that computed since the last call.
  std::string Take() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string last = names_.size() == 1 ? names_[0] : "(none or several)";
    names_.clear();
    return last;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> names_;
};

class InlineComputeTest : public ::testing::Test {
 protected:
  void Start(int inline_compute_kb) {
    ServerOptions options;
    options.address = "127.0.0.1:0";
    options.compute_threads = 2;
    options.inline_compute_kb = inline_compute_kb;
    options.before_compute_for_testing = names_.Hook();
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::ActivationService::NewStub(testing::ChannelTo(server_->port()));
  }

  // Evaluates tanh on n float32 values; returns the computing thread.
  std::string EvaluateOn(int64_t n, v1::EvaluateResponse* response) {
    v1::EvaluateRequest request;
    request.mutable_spec()->set_function(v1::TANH);
    *request.mutable_input() =
        MakeTensor<float>({n}, Ramp<float>(n), Encoding::kRaw);
    grpc::ClientContext context;
    const grpc::Status status = stub_->Evaluate(&context, request, response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return names_.Take();
  }

  ThreadNames names_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Stub> stub_;
};

constexpr char kCompute[] = "actsvc-compute";

TEST_F(InlineComputeTest, SmallElementwiseRequestsComputeOnTheGrpcThread) {
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/4));
  v1::EvaluateResponse small;
  const std::string small_thread = EvaluateOn(1000, &small);  // ~4,000 bytes
  EXPECT_NE(small_thread, kCompute);
  EXPECT_NE(small_thread, "(none or several)");
  v1::EvaluateResponse large;
  EXPECT_EQ(EvaluateOn(1100, &large), kCompute);  // over 4 KiB

  // The same answers as on a compute thread.
  v1::EvaluateResponse pooled;
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/0));
  EXPECT_EQ(EvaluateOn(1000, &pooled), kCompute);
  EXPECT_EQ(small.SerializeAsString(), pooled.SerializeAsString());
}

TEST_F(InlineComputeTest, DerivativeAndSoftmaxCrossEntropyComputeInline) {
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/64));
  grpc::ClientContext derivative_context;
  v1::DerivativeRequest derivative;
  derivative.mutable_spec()->set_function(v1::SIGMOID);
  derivative.set_order(1);
  *derivative.mutable_input() =
      MakeTensor<float>({8}, Ramp<float>(8), Encoding::kRaw);
  v1::DerivativeResponse derivative_response;
  ASSERT_TRUE(
      stub_->Derivative(&derivative_context, derivative, &derivative_response)
          .ok());
  EXPECT_NE(names_.Take(), kCompute);

  grpc::ClientContext loss_context;
  v1::SoftmaxCrossEntropyRequest loss;
  *loss.mutable_logits() =
      MakeTensor<float>({2, 4}, Ramp<float>(8), Encoding::kRaw);
  loss.add_class_indices(0);
  loss.add_class_indices(3);
  v1::SoftmaxCrossEntropyResponse loss_response;
  const grpc::Status status =
      stub_->SoftmaxCrossEntropy(&loss_context, loss, &loss_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(names_.Take(), kCompute);
}

// A Jacobian's work grows with the square of its rows: even a small request
// goes to a compute thread.
TEST_F(InlineComputeTest, JacobiansAlwaysComputeOnAComputeThread) {
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/64));
  grpc::ClientContext context;
  v1::JacobianRequest request;
  request.mutable_spec()->set_function(v1::SOFTMAX);
  *request.mutable_input() =
      MakeTensor<float>({1, 4}, Ramp<float>(4), Encoding::kRaw);
  v1::JacobianResponse response;
  const grpc::Status status = stub_->Jacobian(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(names_.Take(), kCompute);
}

}  // namespace
}  // namespace actsvc::server
