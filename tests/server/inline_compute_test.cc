// Which thread computes a call (ServerOptions::inline_compute_kb): a small
// unary request is computed on the gRPC thread that read it, a larger one
// (or a dense Jacobian whose response would be larger) on a compute thread,
// and with inline_compute_kb = 0 every call on a compute thread. The
// answers are the same either way.
#include <grpcpp/grpcpp.h>
#include <pthread.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "server/server.h"
#include "server/worker_pool.h"
#include "tests/server/calls.h"
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
  // The names of the threads that computed since the last call.
  std::vector<std::string> TakeAll() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(names_, {});
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

// A dense Jacobian's work grows with the square of its rows: a small
// request whose response is small too computes inline; one whose response
// would be over the budget goes to a compute thread before any work, and
// answers the same.
TEST_F(InlineComputeTest,
       DenseJacobiansComputeInlineOnlyWhenTheirResponseIsSmall) {
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/16));
  const auto jacobian = [&](int64_t c, v1::JacobianResponse* response) {
    grpc::ClientContext context;
    v1::JacobianRequest request;
    request.mutable_spec()->set_function(v1::SOFTMAX);
    *request.mutable_input() =
        MakeTensor<float>({1, c}, Ramp<float>(c), Encoding::kRaw);
    const grpc::Status status = stub_->Jacobian(&context, request, response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return names_.TakeAll();
  };
  v1::JacobianResponse small;
  const std::vector<std::string> small_threads = jacobian(4, &small);
  ASSERT_EQ(small_threads.size(), 1u);  // 64 bytes of values
  EXPECT_NE(small_threads[0], kCompute);
  // 256 values, 1 KiB of request; 65,536 values, 256 KiB of response. The
  // hook ran once on the gRPC thread, then on the compute thread.
  v1::JacobianResponse large;
  const std::vector<std::string> threads = jacobian(256, &large);
  ASSERT_EQ(threads.size(), 2u);
  EXPECT_NE(threads[0], kCompute);
  EXPECT_EQ(threads[1], kCompute);

  // The same answers as with every call on a compute thread.
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/0));
  v1::JacobianResponse small_pooled;
  v1::JacobianResponse large_pooled;
  EXPECT_EQ(jacobian(4, &small_pooled), std::vector<std::string>{kCompute});
  EXPECT_EQ(jacobian(256, &large_pooled), std::vector<std::string>{kCompute});
  EXPECT_EQ(small.SerializeAsString(), small_pooled.SerializeAsString());
  EXPECT_EQ(large.SerializeAsString(), large_pooled.SerializeAsString());
}

TEST_F(InlineComputeTest, AnalyzeComputesInline) {
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/64));
  grpc::ClientContext context;
  v1::AnalyzeRequest request;
  request.mutable_spec()->set_function(v1::SIGMOID);
  *request.mutable_input() =
      MakeTensor<float>({64}, Ramp<float>(64), Encoding::kRaw);
  v1::AnalyzeResponse response;
  const grpc::Status status = stub_->Analyze(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(names_.Take(), kCompute);
}

// KServe's ModelInfer takes the same way: a small gelu inline, a small
// request to a dense Jacobian model with a large response on a compute
// thread (after its check on the gRPC thread), and its statistics count
// each call once.
TEST_F(InlineComputeTest, ModelInferComputesInlineWhenSmall) {
  ASSERT_NO_FATAL_FAILURE(Start(/*inline_compute_kb=*/16));
  grpc::GenericStub generic(testing::ChannelTo(server_->port()));
  const auto infer = [&](const std::string& model, int64_t c) {
    inference::ModelInferRequest request;
    request.set_model_name(model);
    auto* input = request.add_inputs();
    input->set_name("x");
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(c);
    const std::vector<float> x = Ramp<float>(c);
    request.add_raw_input_contents(std::string(
        reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float)));
    grpc::ByteBuffer response;
    const grpc::Status status = testing::UnaryCall(
        generic, "/inference.GRPCInferenceService/ModelInfer",
        request.SerializeAsString(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return names_.TakeAll();
  };
  const std::vector<std::string> gelu = infer("gelu", 64);
  ASSERT_EQ(gelu.size(), 1u);
  EXPECT_NE(gelu[0], kCompute);
  const std::vector<std::string> jacobian = infer("softmax.jacobian", 256);
  ASSERT_EQ(jacobian.size(), 2u);
  EXPECT_NE(jacobian[0], kCompute);
  EXPECT_EQ(jacobian[1], kCompute);

  inference::ModelStatisticsRequest stats_request;
  stats_request.set_name("softmax.jacobian");
  grpc::ByteBuffer stats_bytes;
  ASSERT_TRUE(testing::UnaryCall(
                  generic, "/inference.GRPCInferenceService/ModelStatistics",
                  stats_request.SerializeAsString(), &stats_bytes)
                  .ok());
  grpc::ByteBuffer copy = stats_bytes;
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(
      grpc::SerializationTraits<
          inference::ModelStatisticsResponse>::Deserialize(&copy, &stats)
          .ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  EXPECT_EQ(stats.model_stats(0).inference_stats().success().count(), 1u);
  EXPECT_EQ(stats.model_stats(0).inference_stats().fail().count(), 0u);
}

}  // namespace
}  // namespace actsvc::server
