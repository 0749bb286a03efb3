// The own API's codec without a server: tensors read in place, responses
// written through MessageSink, and the SPEC §3 catalogue of bad requests
// answered by the RPC bodies.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/v1/codec.h"
#include "server/v1/service.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::Ramp;

MATCHER_P(IsInvalidArgumentWith, substring, "") {
  return arg.status().code() == absl::StatusCode::kInvalidArgument &&
         ::testing::Value(std::string(arg.status().message()),
                          HasSubstr(substring));
}

TEST(DecodeTensorTest, RawFloat32) {
  const v1::Tensor t = MakeTensor<float>({2, 2}, {1, 2, 3, 4}, Encoding::kRaw);
  absl::StatusOr<DecodedTensor> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->view.dtype(), DType::kFloat32);
  EXPECT_EQ(view->encoding, Encoding::kRaw);
  EXPECT_THAT(view->view.shape(), ElementsAre(2, 2));
  EXPECT_THAT(view->view.template values<float>(), ElementsAre(1, 2, 3, 4));
}

TEST(DecodeTensorTest, TypedFloat64) {
  const v1::Tensor t = MakeTensor<double>({3}, {1, 2, 3}, Encoding::kTyped);
  absl::StatusOr<DecodedTensor> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->encoding, Encoding::kTyped);
  EXPECT_THAT(view->view.template values<double>(), ElementsAre(1, 2, 3));
}

TEST(DecodeTensorTest, ScalarHasOneElement) {
  const v1::Tensor t = MakeTensor<double>({}, {2.5}, Encoding::kRaw);
  absl::StatusOr<DecodedTensor> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->view.rank(), 0);
  EXPECT_THAT(view->view.template values<double>(), ElementsAre(2.5));
}

TEST(DecodeTensorTest, EmptyTensorWithoutDataIsRaw) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT32);
  t.add_shape(3);
  t.add_shape(0);
  absl::StatusOr<DecodedTensor> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->view.size(), 0);
  EXPECT_EQ(view->encoding, Encoding::kRaw);
}

TEST(DecodeTensorTest, ZeroDimWinsOverHugeDims) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT64);
  t.add_shape(int64_t{1} << 40);
  t.add_shape(int64_t{1} << 40);
  t.add_shape(0);
  absl::StatusOr<DecodedTensor> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->view.size(), 0);
}

TEST(DecodeTensorTest, DtypeUnspecified) {
  v1::Tensor t = MakeTensor<float>({1}, {1}, Encoding::kRaw);
  t.set_dtype(v1::DATA_TYPE_UNSPECIFIED);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith(
                  "input.dtype is DATA_TYPE_UNSPECIFIED, expected FLOAT32, "
                  "FLOAT64, FLOAT16 or BFLOAT16"));
}

TEST(DecodeTensorTest, UnknownDtypeNumber) {
  v1::Tensor t = MakeTensor<float>({1}, {1}, Encoding::kRaw);
  t.set_dtype(static_cast<v1::DataType>(9));
  EXPECT_THAT(DecodeTensor(t, "x"), IsInvalidArgumentWith("x.dtype is 9"));
}

TEST(DecodeTensorTest, NegativeDim) {
  v1::Tensor t = MakeTensor<float>({2, -3}, {}, Encoding::kRaw);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("input.shape[1] = -3 is negative"));
}

TEST(DecodeTensorTest, ShapeOverflow) {
  v1::Tensor t = MakeTensor<double>({int64_t{1} << 31, int64_t{1} << 31, 4},
                                    {1}, Encoding::kRaw);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("has too many elements"));
}

TEST(DecodeTensorTest, RawByteCountMismatch) {
  const v1::Tensor t = MakeTensor<float>({2, 2}, {1, 2, 3}, Encoding::kRaw);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("input.raw_data has 12 bytes, expected 16 "
                                    "(shape [2,2] x 4 bytes of FLOAT32)"));
}

TEST(DecodeTensorTest, TypedCountMismatch) {
  const v1::Tensor t = MakeTensor<double>({2, 2}, {1, 2, 3}, Encoding::kTyped);
  EXPECT_THAT(
      DecodeTensor(t, "upstream_grad"),
      IsInvalidArgumentWith(
          "upstream_grad.double_data has 3 values, expected 4 (shape [2,2])"));
}

// Typed data of the other dtype, and data in two fields at once.
TEST(DecodeTensorTest, DataInTheWrongOrInTwoFields) {
  v1::Tensor float_data = MakeTensor<float>({2}, {1, 2}, Encoding::kTyped);
  float_data.set_dtype(v1::FLOAT64);
  v1::Tensor double_data = MakeTensor<double>({2}, {1, 2}, Encoding::kTyped);
  double_data.set_dtype(v1::FLOAT32);
  v1::Tensor both = MakeTensor<float>({2}, {1, 2}, Encoding::kTyped);
  both.set_raw_data(std::string(8, '\0'));
  const std::pair<const v1::Tensor*, const char*> cases[] = {
      {&float_data, "input.float_data is set but input.dtype is FLOAT64"},
      {&double_data, "input.double_data is set but input.dtype is FLOAT32"},
      {&both, "input has data in raw_data and float_data; set exactly one"},
  };
  for (const auto& [tensor, message] : cases) {
    EXPECT_THAT(DecodeTensor(*tensor, "input"), IsInvalidArgumentWith(message));
  }
}

TEST(DecodeTensorTest, NoDataForNonEmptyShape) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT32);
  t.add_shape(4);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("input has no data, expected 16 bytes"));
}

TEST(MessageSinkTest, RawHasShapeDtypeAndBytes) {
  v1::Tensor out;
  MessageSink sink(Encoding::kRaw, {{OutputRole::kOutput, &out}});
  const absl::Span<double> y = sink.AllocateAs<double>(
      OutputRole::kOutput, std::vector<int64_t>{2, 3}, 6);
  ASSERT_EQ(y.size(), 6u);
  // Compute writes straight into the response's raw_data.
  EXPECT_EQ(static_cast<void*>(y.data()),
            static_cast<void*>(out.mutable_raw_data()->data()));
  for (int i = 0; i < 6; ++i) y[i] = i;
  sink.Finish();
  EXPECT_TRUE(sink.allocated(OutputRole::kOutput));
  EXPECT_FALSE(sink.allocated(OutputRole::kLoss));
  EXPECT_THAT(out.shape(), ElementsAre(2, 3));
  EXPECT_EQ(out.dtype(), v1::FLOAT64);
  EXPECT_EQ(out.raw_data().size(), 6 * sizeof(double));
  EXPECT_THAT(testing::ValuesOf<double>(out), ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(MessageSinkTest, TypedUsesTheRepeatedField) {
  v1::Tensor out;
  MessageSink sink(Encoding::kTyped, {{OutputRole::kOutput, &out}});
  const absl::Span<float> y =
      sink.AllocateAs<float>(OutputRole::kOutput, std::vector<int64_t>{3}, 3);
  for (int i = 0; i < 3; ++i) y[i] = i + 0.5f;
  sink.Finish();
  EXPECT_TRUE(out.raw_data().empty());
  EXPECT_THAT(out.float_data(), ElementsAre(0.5f, 1.5f, 2.5f));
}

TEST(TensorWireBytesTest, GuardsOverflow) {
  EXPECT_EQ(TensorWireBytes(std::numeric_limits<int64_t>::max() / 2, 8, 1), -1);
  EXPECT_GE(TensorWireBytes(10, 4, 2), 40);
}

// ---------------------------------------------------------------------------
// SPEC §3: every bad input gets its status and a message naming the field,
// from the RPC bodies (codec → Validate → Run) without a server.

using StatusCode = absl::StatusCode;

constexpr int64_t kMaxMessageBytes = int64_t{1} << 20;

class CatalogueTest : public ::testing::Test {
 protected:
  CatalogueTest() {
    context_.max_message_bytes = kMaxMessageBytes;
    context_.chunk_elements = 1024;
  }
  absl::Status Evaluate(const v1::EvaluateRequest& r, v1::EvaluateResponse* o) {
    return HandleEvaluate(r, context_, o);
  }
  absl::Status Derivative(const v1::DerivativeRequest& r,
                          v1::DerivativeResponse* o) {
    return HandleDerivative(r, context_, o);
  }
  absl::Status Jacobian(const v1::JacobianRequest& r, v1::JacobianResponse* o) {
    return HandleJacobian(r, context_, o);
  }
  absl::Status CrossEntropy(const v1::SoftmaxCrossEntropyRequest& r,
                            v1::SoftmaxCrossEntropyResponse* o) {
    return HandleSoftmaxCrossEntropy(r, context_, o);
  }

  ComputeContext context_;
};

void ExpectStatus(const absl::Status& status, StatusCode code,
                  const std::vector<std::string>& substrings) {
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& s : substrings) {
    EXPECT_THAT(std::string(status.message()), HasSubstr(s));
  }
}

v1::FunctionSpec Spec(v1::Function f) {
  v1::FunctionSpec spec;
  spec.set_function(f);
  return spec;
}

v1::EvaluateRequest GoodEvaluate(v1::Function f = v1::SIGMOID) {
  v1::EvaluateRequest request;
  *request.mutable_spec() = Spec(f);
  *request.mutable_input() =
      MakeTensor<float>({2, 2}, {1, 2, 3, 4}, Encoding::kRaw);
  return request;
}

TEST_F(CatalogueTest, UnknownFunction) {
  v1::EvaluateRequest request = GoodEvaluate();
  request.mutable_spec()->set_function(static_cast<v1::Function>(99));
  v1::EvaluateResponse response;
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec.function is 99", "IDENTITY", "LOG_SOFTMAX"});
  request.mutable_spec()->set_function(v1::FUNCTION_UNSPECIFIED);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec.function is FUNCTION_UNSPECIFIED"});
  request.clear_spec();
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec is missing"});
}

TEST_F(CatalogueTest, MissingTensor) {
  v1::EvaluateRequest request = GoodEvaluate();
  request.clear_input();
  v1::EvaluateResponse response;
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"input is missing"});
  v1::SoftmaxCrossEntropyRequest xent;
  v1::SoftmaxCrossEntropyResponse xent_response;
  ExpectStatus(CrossEntropy(xent, &xent_response), StatusCode::kInvalidArgument,
               {"logits is missing"});
}

TEST_F(CatalogueTest, TensorErrors) {
  v1::EvaluateRequest request = GoodEvaluate();
  v1::EvaluateResponse response;

  request.mutable_input()->set_dtype(v1::DATA_TYPE_UNSPECIFIED);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"input.dtype is DATA_TYPE_UNSPECIFIED"});

  request = GoodEvaluate();
  request.mutable_input()->set_shape(0, -1);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"input.shape[0] = -1 is negative"});

  request = GoodEvaluate();
  request.mutable_input()->mutable_raw_data()->resize(12);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"input.raw_data has 12 bytes, expected 16 (shape [2,2] x 4 "
                "bytes of FLOAT32)"});

  request = GoodEvaluate();
  *request.mutable_input() =
      MakeTensor<float>({2, 2}, {1, 2, 3}, Encoding::kTyped);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"input.float_data has 3 values, expected 4"});

  request = GoodEvaluate();
  *request.mutable_input() =
      MakeTensor<float>({2, 2}, {1, 2, 3, 4}, Encoding::kTyped);
  request.mutable_input()->set_dtype(v1::FLOAT64);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"input.float_data is set but input.dtype is FLOAT64"});

  request = GoodEvaluate();
  request.mutable_input()->add_float_data(1);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"raw_data and float_data", "set exactly one"});
}

TEST_F(CatalogueTest, AxisOutOfRange) {
  v1::EvaluateRequest request = GoodEvaluate(v1::SOFTMAX);
  request.mutable_spec()->set_axis(3);
  v1::EvaluateResponse response;
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec.axis = 3 is out of range for input of rank 2 (expected "
                "-2..1)"});
  request.mutable_spec()->set_axis(-3);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec.axis = -3"});
  // A scalar has no axis to act along.
  *request.mutable_input() = MakeTensor<float>({}, {1}, Encoding::kRaw);
  request.mutable_spec()->clear_axis();
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"input.shape is []", "rank >= 1"});
}

TEST_F(CatalogueTest, AlphaErrors) {
  v1::EvaluateRequest request = GoodEvaluate(v1::LEAKY_RELU);
  v1::EvaluateResponse response;
  request.mutable_spec()->set_alpha(std::numeric_limits<double>::infinity());
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec.alpha = inf is not finite"});
  request.mutable_spec()->set_alpha(std::nan(""));
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec.alpha = nan is not finite"});
  request = GoodEvaluate(v1::SIGMOID);
  request.mutable_spec()->set_alpha(0.5);
  ExpectStatus(Evaluate(request, &response), StatusCode::kInvalidArgument,
               {"spec.alpha = 0.5 is set but SIGMOID takes no alpha"});
}

TEST_F(CatalogueTest, DerivativeErrors) {
  v1::DerivativeRequest request;
  *request.mutable_spec() = Spec(v1::TANH);
  *request.mutable_input() =
      MakeTensor<double>({3}, {1, 2, 3}, Encoding::kTyped);
  v1::DerivativeResponse response;

  request.set_order(3);
  ExpectStatus(Derivative(request, &response), StatusCode::kInvalidArgument,
               {"order = 3", "expected 1 or 2"});
  request.set_order(-1);
  ExpectStatus(Derivative(request, &response), StatusCode::kInvalidArgument,
               {"order = -1"});

  request.set_order(2);
  *request.mutable_upstream_grad() =
      MakeTensor<double>({3}, {1, 1, 1}, Encoding::kRaw);
  ExpectStatus(Derivative(request, &response), StatusCode::kInvalidArgument,
               {"upstream_grad is set with order = 2"});

  request.set_order(1);
  *request.mutable_upstream_grad() =
      MakeTensor<float>({3}, {1, 1, 1}, Encoding::kRaw);
  ExpectStatus(Derivative(request, &response), StatusCode::kInvalidArgument,
               {"upstream_grad.dtype is FLOAT32, expected FLOAT64"});
  *request.mutable_upstream_grad() =
      MakeTensor<double>({1, 3}, {1, 1, 1}, Encoding::kRaw);
  ExpectStatus(Derivative(request, &response), StatusCode::kInvalidArgument,
               {"upstream_grad.shape [1,3] does not match input.shape [3]"});
  *request.mutable_upstream_grad() =
      MakeTensor<double>({3}, {1, 1}, Encoding::kRaw);
  ExpectStatus(Derivative(request, &response), StatusCode::kInvalidArgument,
               {"upstream_grad.raw_data has 16 bytes, expected 24"});
}

TEST_F(CatalogueTest, SoftmaxDerivativeNeedsUpstreamGrad) {
  v1::DerivativeRequest request;
  *request.mutable_spec() = Spec(v1::SOFTMAX);
  *request.mutable_input() =
      MakeTensor<float>({2, 2}, {1, 2, 3, 4}, Encoding::kRaw);
  v1::DerivativeResponse response;
  ExpectStatus(Derivative(request, &response), StatusCode::kInvalidArgument,
               {"upstream_grad is missing", "SOFTMAX", "Jacobian RPC"});
}

TEST_F(CatalogueTest, DenseJacobianOfScalar) {
  v1::JacobianRequest request;
  *request.mutable_spec() = Spec(v1::RELU);
  *request.mutable_input() = MakeTensor<float>({}, {1}, Encoding::kRaw);
  request.set_dense(true);
  v1::JacobianResponse response;
  ExpectStatus(Jacobian(request, &response), StatusCode::kInvalidArgument,
               {"dense = true needs input of rank >= 1"});
}

TEST_F(CatalogueTest, CrossEntropyLabelErrors) {
  v1::SoftmaxCrossEntropyRequest request;
  *request.mutable_logits() =
      MakeTensor<float>({4, 5}, Ramp<float>(20), Encoding::kRaw);
  v1::SoftmaxCrossEntropyResponse response;

  for (int64_t label : {0, 1, 2, 7}) request.add_class_indices(label);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"class_indices[3] = 7 is out of range [0, 5)"});
  request.set_class_indices(3, -1);
  request.set_ignore_index(-100);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"class_indices[3] = -1 is out of range [0, 5) and is not "
                "ignore_index = -100"});
  request.set_class_indices(3, -100);
  EXPECT_TRUE(CrossEntropy(request, &response).ok());

  request.mutable_class_indices()->RemoveLast();
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"class_indices has 3 values, expected 4", "[4,5]"});

  request.clear_class_indices();
  request.clear_ignore_index();
  *request.mutable_target_probs() =
      MakeTensor<float>({4, 4}, Ramp<float>(16), Encoding::kRaw);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"target_probs.shape [4,4] does not match logits.shape [4,5]"});
  *request.mutable_target_probs() =
      MakeTensor<double>({4, 5}, Ramp<double>(20), Encoding::kRaw);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"target_probs.dtype is FLOAT64, expected FLOAT32"});
  *request.mutable_target_probs() =
      MakeTensor<float>({4, 5}, Ramp<float>(20), Encoding::kTyped);
  request.set_ignore_index(0);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"ignore_index = 0 is set but the labels are target_probs"});
}

TEST_F(CatalogueTest, CrossEntropySmoothingAndShapeErrors) {
  v1::SoftmaxCrossEntropyRequest request;
  *request.mutable_logits() =
      MakeTensor<double>({2, 3}, Ramp<double>(6), Encoding::kTyped);
  request.add_class_indices(0);
  request.add_class_indices(1);
  v1::SoftmaxCrossEntropyResponse response;
  request.set_label_smoothing(1.0);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"label_smoothing = 1 is outside [0, 1)"});
  request.set_label_smoothing(std::nan(""));
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"label_smoothing = nan is outside [0, 1)"});
  request.set_label_smoothing(-0.1);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"label_smoothing = -0.1"});
  request.set_label_smoothing(0);
  request.set_reduction(
      static_cast<v1::SoftmaxCrossEntropyRequest::Reduction>(9));
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"reduction = 9"});

  request.set_reduction(v1::SoftmaxCrossEntropyRequest::MEAN);
  *request.mutable_logits() = MakeTensor<double>({}, {1}, Encoding::kRaw);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"logits.shape is []"});
  *request.mutable_logits() = MakeTensor<double>({2, 0}, {}, Encoding::kRaw);
  ExpectStatus(CrossEntropy(request, &response), StatusCode::kInvalidArgument,
               {"logits.shape [2,0] has 0 classes"});
}

TEST_F(CatalogueTest, DenseJacobianOverTheLimit) {
  // 600 x 600 doubles = 2.9 MB, over the 1 MiB limit.
  v1::JacobianRequest request;
  *request.mutable_spec() = Spec(v1::SOFTMAX);
  *request.mutable_input() =
      MakeTensor<double>({1, 600}, Ramp<double>(600), Encoding::kRaw);
  v1::JacobianResponse response;
  ExpectStatus(Jacobian(request, &response), StatusCode::kResourceExhausted,
               {absl::StrCat(kMaxMessageBytes), "[1,600,600]",
                "use Derivative with upstream_grad (VJP)"});
  *request.mutable_spec() = Spec(v1::GELU);
  request.set_dense(true);
  ExpectStatus(Jacobian(request, &response), StatusCode::kResourceExhausted,
               {absl::StrCat(kMaxMessageBytes), "dense = false"});
  // The diagonal of the same input fits.
  request.set_dense(false);
  EXPECT_TRUE(Jacobian(request, &response).ok());
}

}  // namespace
}  // namespace actsvc::server
