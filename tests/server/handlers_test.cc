// The RPC bodies without a network: chunked work stops when the call does.
#include <atomic>
#include <chrono>
#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/v1/service.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::Ramp;

v1::EvaluateRequest LargeEvaluate(v1::Function function,
                                  const std::vector<int64_t>& shape) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(function);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  *request.mutable_input() =
      MakeTensor<float>(shape, Ramp<float>(n), Encoding::kRaw);
  return request;
}

// A context whose cancellation checks count themselves in *checks: the call
// is cancelled from check number `cancel_at` on.
ComputeContext CancelledAtCheck(int cancel_at, int* checks) {
  ComputeContext context;
  context.is_cancelled = [cancel_at, checks] { return ++*checks >= cancel_at; };
  return context;
}

TEST(HandlersTest, CancellationStopsBetweenChunks) {
  const v1::EvaluateRequest request =
      LargeEvaluate(v1::GELU, {int64_t{100} * 1000});
  int checks = 0;
  ComputeContext context = CancelledAtCheck(4, &checks);
  context.chunk_elements = 1000;  // 100 chunks
  v1::EvaluateResponse response;
  const absl::Status status = HandleEvaluate(request, context, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  // Checked before chunks 1..4; the 4th check stopped the remaining 96.
  EXPECT_EQ(checks, 4);
}

TEST(HandlersTest, CancellationStopsSoftmaxBetweenOuterSlices) {
  const v1::EvaluateRequest request = LargeEvaluate(v1::SOFTMAX, {500, 100});
  int checks = 0;
  ComputeContext context = CancelledAtCheck(3, &checks);
  context.chunk_elements = 1000;  // 10 rows of 100 per chunk, 50 chunks
  v1::EvaluateResponse response;
  EXPECT_EQ(HandleEvaluate(request, context, &response).code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(checks, 3);
}

TEST(HandlersTest, PassedDeadlineStopsBeforeAnyWork) {
  const v1::EvaluateRequest request = LargeEvaluate(v1::TANH, {4096});
  ComputeContext context;
  context.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  v1::EvaluateResponse response;
  const absl::Status status = HandleEvaluate(request, context, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_THAT(status.message(), HasSubstr("deadline"));
}

TEST(HandlersTest, CrossEntropyChecksBetweenRowChunks) {
  v1::SoftmaxCrossEntropyRequest request;
  *request.mutable_logits() =
      MakeTensor<double>({1000, 10}, Ramp<double>(10000), Encoding::kRaw);
  for (int i = 0; i < 1000; ++i) request.add_class_indices(i % 10);
  int checks = 0;
  ComputeContext context = CancelledAtCheck(6, &checks);
  context.chunk_elements = 100;  // 10 rows per chunk
  v1::SoftmaxCrossEntropyResponse response;
  EXPECT_EQ(HandleSoftmaxCrossEntropy(request, context, &response).code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(checks, 6);
}

TEST(HandlersTest, ResponseOverTheLimitIsRefusedBeforeComputing) {
  v1::JacobianRequest request;
  request.mutable_spec()->set_function(v1::LOG_SOFTMAX);
  *request.mutable_input() =
      MakeTensor<float>({2, 300}, Ramp<float>(600), Encoding::kRaw);
  ComputeContext context;
  context.max_message_bytes = int64_t{100} * 1000;
  int checks = 0;
  context.is_cancelled = [&checks] { return ++checks < 0; };
  v1::JacobianResponse response;
  const absl::Status status = HandleJacobian(request, context, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("100000 bytes"));
  EXPECT_THAT(status.message(), HasSubstr("[2,300,300]"));
  EXPECT_THAT(status.message(), HasSubstr("upstream_grad (VJP)"));
  EXPECT_EQ(checks, 0);
}

TEST(HandlersTest, EmptyTensorsGiveEmptyResults) {
  const ComputeContext context;
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{0, 3}, std::vector<int64_t>{3, 0}}) {
    v1::EvaluateRequest evaluate;
    evaluate.mutable_spec()->set_function(v1::SOFTMAX);
    *evaluate.mutable_input() = MakeTensor<float>(shape, {}, Encoding::kRaw);
    v1::EvaluateResponse evaluated;
    ASSERT_TRUE(HandleEvaluate(evaluate, context, &evaluated).ok());
    EXPECT_EQ(testing::ShapeOf(evaluated.output()), shape);

    v1::JacobianRequest jacobian;
    *jacobian.mutable_spec() = evaluate.spec();
    *jacobian.mutable_input() = evaluate.input();
    v1::JacobianResponse jac;
    ASSERT_TRUE(HandleJacobian(jacobian, context, &jac).ok());
    EXPECT_EQ(testing::ShapeOf(jac.jacobian()),
              (std::vector<int64_t>{shape[0], shape[1], shape[1]}));
    EXPECT_TRUE(jac.jacobian().raw_data().empty());

    jacobian.mutable_spec()->set_function(v1::RELU);
    jacobian.set_dense(true);
    ASSERT_TRUE(HandleJacobian(jacobian, context, &jac).ok());
    EXPECT_EQ(testing::ShapeOf(jac.jacobian()),
              (std::vector<int64_t>{shape[0], shape[1], shape[1]}));
  }

  v1::SoftmaxCrossEntropyRequest xent;
  *xent.mutable_logits() = MakeTensor<double>({0, 4}, {}, Encoding::kRaw);
  xent.set_reduction(v1::SoftmaxCrossEntropyRequest::NONE);
  v1::SoftmaxCrossEntropyResponse response;
  ASSERT_TRUE(HandleSoftmaxCrossEntropy(xent, context, &response).ok());
  EXPECT_EQ(testing::ShapeOf(response.loss()), (std::vector<int64_t>{0}));
  EXPECT_EQ(testing::ShapeOf(response.grad_logits()),
            (std::vector<int64_t>{0, 4}));
}

TEST(HandlersTest, CrossEntropyMeanOverNoCountedRowsIsNan) {
  v1::SoftmaxCrossEntropyRequest request;
  *request.mutable_logits() =
      MakeTensor<float>({2, 3}, Ramp<float>(6), Encoding::kTyped);
  request.add_class_indices(-1);
  request.add_class_indices(-1);
  request.set_ignore_index(-1);
  v1::SoftmaxCrossEntropyResponse response;
  ASSERT_TRUE(
      HandleSoftmaxCrossEntropy(request, ComputeContext(), &response).ok());
  ASSERT_EQ(response.loss().float_data_size(), 1);
  EXPECT_TRUE(std::isnan(response.loss().float_data(0)));  // as PyTorch
}

// ---------------------------------------------------------------------------
// Analyze.

v1::AnalyzeRequest AnalyzeOf(v1::Function function, v1::Tensor input) {
  v1::AnalyzeRequest request;
  request.mutable_spec()->set_function(function);
  *request.mutable_input() = std::move(input);
  return request;
}

TEST(HandlersTest, AnalyzeMergesChunks) {
  // relu over a ramp with an exact split: 300 of 1000 values <= 0.
  std::vector<double> x(1000);
  for (int i = 0; i < 1000; ++i) x[i] = i - 299;  // -299..700
  v1::AnalyzeRequest request =
      AnalyzeOf(v1::RELU, MakeTensor<double>({10, 100}, x, Encoding::kTyped));
  request.set_layers(2);
  ComputeContext context;
  context.chunk_elements = 64;  // 16 chunks, the last one partial
  v1::AnalyzeResponse response;
  ASSERT_TRUE(HandleAnalyze(request, context, &response).ok());
  EXPECT_EQ(response.units(), 1000);
  EXPECT_EQ(response.zero_outputs(), 300);
  EXPECT_EQ(response.dead_units(), 300);
  EXPECT_DOUBLE_EQ(response.mean_derivative(), 0.7);
  ASSERT_TRUE(response.has_attenuation());
  EXPECT_DOUBLE_EQ(response.attenuation(), 0.49);
}

TEST(HandlersTest, AnalyzeStopsBetweenChunks) {
  const v1::AnalyzeRequest request = AnalyzeOf(
      v1::GELU,
      MakeTensor<float>({100000}, Ramp<float>(100000), Encoding::kRaw));
  int checks = 0;
  ComputeContext context = CancelledAtCheck(4, &checks);
  context.chunk_elements = 1000;
  v1::AnalyzeResponse response;
  EXPECT_EQ(HandleAnalyze(request, context, &response).code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(checks, 4);
  context.is_cancelled = nullptr;
  context.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  EXPECT_EQ(HandleAnalyze(request, context, &response).code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace actsvc::server
