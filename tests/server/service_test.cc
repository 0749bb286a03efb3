// ActivationService in-process on a loopback port, called through the
// generated stub: every result compared with core called directly, in both
// dtypes and both encodings, and Analyze. The calls themselves (metadata,
// health, limits, the stream, malformed messages) are in
// service_calls_test.cc; tests that need servers of their own in
// service_lifecycle_test.cc.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "actsvc/v1/activation.grpc.pb.h"
#include "core/activation.h"
#include "core/functions.h"
#include "core/softmax.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/server_test_util.h"
#include "tests/server/service_fixture.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::grpc::StatusCode;
using testing::Call;
using testing::CoreFunction;
using testing::Elements;
using testing::EncodingOf;
using testing::ExpectStatus;
using testing::MakeTensor;
using testing::Ramp;
using testing::ServiceTest;
using testing::ShapeOf;
using testing::SharedServer;
using testing::Spec;
using testing::Stub;
using testing::ValuesOf;

::testing::Environment* const kSharedServer =
    ::testing::AddGlobalTestEnvironment(new SharedServer);

// ---------------------------------------------------------------------------
// Results match core, in both dtypes and both encodings.

// A call's answer: OK, and the response's output of `shape`, in
// `encoding`, holding exactly `expected` (read once the call has returned).
template <typename T, typename Response>
void ExpectAnswer(const grpc::Status& status, const Response& response,
                  const std::vector<int64_t>& shape, Encoding encoding,
                  const std::vector<T>& expected) {
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ShapeOf(response.output()), shape);
  EXPECT_EQ(EncodingOf(response.output()), encoding);
  EXPECT_EQ(ValuesOf<T>(response.output()), expected);
}

template <typename T>
class ServiceTypedTest : public ServiceTest {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ServiceTypedTest, FloatTypes);

const std::vector<std::vector<int64_t>> kShapes = {
    {7}, {2, 3, 4}, {3, 700}, {}};
const Encoding kEncodings[] = {Encoding::kRaw, Encoding::kTyped};

std::vector<v1::Function> AllFunctions() {
  std::vector<v1::Function> all;
  for (int f = v1::IDENTITY; f <= v1::LOG_SOFTMAX; ++f) {
    all.push_back(static_cast<v1::Function>(f));
  }
  return all;
}

bool IsVector(v1::Function f) {
  return f == v1::SOFTMAX || f == v1::LOG_SOFTMAX;
}

// The rows of `shape` along `axis` (negative counts from the end), as the
// server reads spec.axis.
AxisView AxisOf(const std::vector<int64_t>& shape, int axis) {
  return MakeAxisView(shape,
                      *NormalizeAxis(axis, static_cast<int>(shape.size())));
}

TYPED_TEST(ServiceTypedTest, EvaluateMatchesCore) {
  using T = TypeParam;
  for (Encoding encoding : kEncodings) {
    for (const std::vector<int64_t>& shape : kShapes) {
      for (v1::Function f : AllFunctions()) {
        const bool vector = IsVector(f);
        if (vector && shape.empty()) continue;
        // Softmax along the first axis too, where rows are strided.
        const std::vector<int> axes =
            vector ? std::vector<int>{-1, 0} : std::vector<int>{-1};
        for (int axis : axes) {
          SCOPED_TRACE(absl::StrCat(v1::Function_Name(f), " shape rank ",
                                    shape.size(), " axis ", axis, " typed ",
                                    encoding == Encoding::kTyped));
          const std::vector<T> x = Ramp<T>(Elements(shape));
          v1::EvaluateRequest request;
          *request.mutable_spec() = Spec(f);
          double alpha = 0;
          if (f == v1::LEAKY_RELU) {
            alpha = 0.2;
            request.mutable_spec()->set_alpha(alpha);
          } else if (TakesAlpha(CoreFunction(f))) {
            alpha = DefaultAlpha(CoreFunction(f));
          }
          if (vector) request.mutable_spec()->set_axis(axis);
          *request.mutable_input() = MakeTensor<T>(shape, x, encoding);

          std::vector<T> expected(x.size());
          if (vector) {
            SoftmaxForward<T>(CoreFunction(f), AxisOf(shape, axis), x,
                              absl::MakeSpan(expected));
          } else {
            actsvc::Evaluate<T>(CoreFunction(f), alpha, x,
                                absl::MakeSpan(expected));
          }

          v1::EvaluateResponse response;
          ExpectAnswer(this->Evaluate(request, &response), response, shape,
                       encoding, expected);
        }
      }
    }
  }
}

TYPED_TEST(ServiceTypedTest, DerivativeMatchesCore) {
  using T = TypeParam;
  for (Encoding encoding : kEncodings) {
    for (const std::vector<int64_t>& shape : kShapes) {
      for (v1::Function f : AllFunctions()) {
        if (IsVector(f)) continue;
        for (int order : {0, 1, 2}) {
          SCOPED_TRACE(absl::StrCat(v1::Function_Name(f), " order ", order,
                                    " rank ", shape.size()));
          const std::vector<T> x = Ramp<T>(Elements(shape));
          v1::DerivativeRequest request;
          *request.mutable_spec() = Spec(f);
          request.set_order(order);
          *request.mutable_input() = MakeTensor<T>(shape, x, encoding);
          const double alpha =
              TakesAlpha(CoreFunction(f)) ? DefaultAlpha(CoreFunction(f)) : 0.0;
          std::vector<T> expected(x.size());
          actsvc::Derivative<T>(CoreFunction(f), alpha, order == 0 ? 1 : order,
                                x, absl::MakeSpan(expected));

          v1::DerivativeResponse response;
          ExpectAnswer(this->Derivative(request, &response), response, shape,
                       encoding, expected);
        }
      }
    }
  }
}

TYPED_TEST(ServiceTypedTest, VjpMatchesCore) {
  using T = TypeParam;
  for (Encoding encoding : kEncodings) {
    // upstream_grad in the other encoding: only dtype and shape must match.
    const Encoding g_encoding =
        encoding == Encoding::kRaw ? Encoding::kTyped : Encoding::kRaw;
    for (const std::vector<int64_t>& shape : kShapes) {
      for (v1::Function f : {v1::GELU, v1::ELU, v1::SOFTMAX, v1::LOG_SOFTMAX}) {
        if (IsVector(f) && shape.empty()) continue;
        const int axis = shape.size() > 1 ? 0 : -1;
        SCOPED_TRACE(
            absl::StrCat(v1::Function_Name(f), " rank ", shape.size()));
        const std::vector<T> x = Ramp<T>(Elements(shape));
        const std::vector<T> g = Ramp<T>(Elements(shape), -2, 3);
        v1::DerivativeRequest request;
        *request.mutable_spec() = Spec(f);
        if (IsVector(f)) request.mutable_spec()->set_axis(axis);
        *request.mutable_input() = MakeTensor<T>(shape, x, encoding);
        *request.mutable_upstream_grad() = MakeTensor<T>(shape, g, g_encoding);
        std::vector<T> expected(x.size());
        if (IsVector(f)) {
          SoftmaxVjp<T>(CoreFunction(f), AxisOf(shape, axis), x, g,
                        absl::MakeSpan(expected));
        } else {
          Vjp<T>(CoreFunction(f), DefaultAlpha(CoreFunction(f)), x, g,
                 absl::MakeSpan(expected));
        }
        v1::DerivativeResponse response;
        ExpectAnswer(this->Derivative(request, &response), response, shape,
                     encoding, expected);
      }
    }
  }
}

TYPED_TEST(ServiceTypedTest, JacobianMatchesCore) {
  using T = TypeParam;
  for (Encoding encoding : kEncodings) {
    const std::vector<int64_t> shape = {2, 3, 4};
    const std::vector<T> x = Ramp<T>(24);
    std::vector<T> diag(24);
    actsvc::Derivative<T>(Function::kSilu, 0, 1, x, absl::MakeSpan(diag));

    v1::JacobianRequest request;
    *request.mutable_spec() = Spec(v1::SILU);
    *request.mutable_input() = MakeTensor<T>(shape, x, encoding);
    v1::JacobianResponse response;
    ASSERT_TRUE(this->Jacobian(request, &response).ok());
    EXPECT_TRUE(response.diagonal());
    EXPECT_EQ(ShapeOf(response.jacobian()), shape);
    EXPECT_EQ(EncodingOf(response.jacobian()), encoding);
    EXPECT_EQ(ValuesOf<T>(response.jacobian()), diag);

    request.set_dense(true);
    ASSERT_TRUE(this->Jacobian(request, &response).ok());
    std::vector<T> dense(24 * 4);
    DiagonalToDense<T>(diag, 4, absl::MakeSpan(dense));
    EXPECT_FALSE(response.diagonal());
    EXPECT_EQ(ShapeOf(response.jacobian()), (std::vector<int64_t>{2, 3, 4, 4}));
    EXPECT_EQ(EncodingOf(response.jacobian()), encoding);
    EXPECT_EQ(ValuesOf<T>(response.jacobian()), dense);

    // Softmax along the middle axis: the axis moves to the end, as [C, C].
    for (v1::Function f : {v1::SOFTMAX, v1::LOG_SOFTMAX}) {
      *request.mutable_spec() = Spec(f);
      request.mutable_spec()->set_axis(1);
      request.set_dense(false);  // ignored: always dense
      ASSERT_TRUE(this->Jacobian(request, &response).ok());
      std::vector<T> expected(2 * 4 * 3 * 3);
      SoftmaxJacobian<T>(CoreFunction(f), MakeAxisView(shape, 1), x,
                         absl::MakeSpan(expected));
      EXPECT_FALSE(response.diagonal());
      EXPECT_EQ(ShapeOf(response.jacobian()),
                (std::vector<int64_t>{2, 4, 3, 3}));
      EXPECT_EQ(EncodingOf(response.jacobian()), encoding);
      EXPECT_EQ(ValuesOf<T>(response.jacobian()), expected);
    }
  }
}

TYPED_TEST(ServiceTypedTest, JacobianOfLongRowsRunsInChunks) {
  using T = TypeParam;
  // 3 x 40 x 40 = 4800 outputs: several chunks of 1024.
  const std::vector<int64_t> shape = {3, 40};
  const std::vector<T> x = Ramp<T>(120);
  v1::JacobianRequest request;
  *request.mutable_spec() = Spec(v1::SOFTMAX);
  *request.mutable_input() = MakeTensor<T>(shape, x, Encoding::kRaw);
  v1::JacobianResponse response;
  ASSERT_TRUE(this->Jacobian(request, &response).ok());
  std::vector<T> expected(3 * 40 * 40);
  SoftmaxJacobian<T>(Function::kSoftmax, MakeAxisView(shape, 1), x,
                     absl::MakeSpan(expected));
  EXPECT_EQ(ValuesOf<T>(response.jacobian()), expected);

  *request.mutable_spec() = Spec(v1::TANH);
  request.set_dense(true);
  ASSERT_TRUE(this->Jacobian(request, &response).ok());
  std::vector<T> diag(120);
  actsvc::Derivative<T>(Function::kTanh, 0, 1, x, absl::MakeSpan(diag));
  DiagonalToDense<T>(diag, 40, absl::MakeSpan(expected));
  EXPECT_EQ(ValuesOf<T>(response.jacobian()), expected);
}

// Core's cross-entropy over the whole batch at once.
template <typename T>
struct CrossEntropyExpected {
  std::vector<T> loss, grad, probs;
};
template <typename T>
CrossEntropyExpected<T> CoreCrossEntropy(int64_t classes,
                                         const std::vector<T>& logits,
                                         const std::vector<int64_t>& indices,
                                         const std::vector<T>& target_probs,
                                         const CrossEntropyOptions& options,
                                         Reduction reduction) {
  const int64_t rows = logits.size() / classes;
  CrossEntropyExpected<T> e;
  std::vector<T> row_loss(rows);
  e.grad.resize(logits.size());
  e.probs.resize(logits.size());
  const CrossEntropyPartial total = CrossEntropyRows<T>(
      classes, logits, indices, target_probs, options, absl::MakeSpan(row_loss),
      absl::MakeSpan(e.grad), absl::MakeSpan(e.probs), 0, rows);
  e.loss = reduction == Reduction::kNone ? row_loss : std::vector<T>(1);
  ReduceCrossEntropy<T>(reduction, total, absl::MakeSpan(e.grad),
                        absl::MakeSpan(e.loss));
  return e;
}

template <typename T>
void ExpectNear(const std::vector<T>& actual, const std::vector<T>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  const double tolerance = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i],
                tolerance * std::max(1.0, std::abs(double{expected[i]})))
        << "at " << i;
  }
}

using CrossEntropyRequest = v1::SoftmaxCrossEntropyRequest;

struct CrossEntropyCase {
  std::vector<int64_t> shape;
  CrossEntropyRequest::Reduction reduction;
  Reduction core_reduction;
  bool target_probs;
  double smoothing;
  bool ignore;
};
// [300, 7] spans several chunks of rows.
const CrossEntropyCase kCrossEntropyCases[] = {
    {{2, 3, 4}, CrossEntropyRequest::MEAN, Reduction::kMean, false, 0, false},
    {{2, 3, 4}, CrossEntropyRequest::SUM, Reduction::kSum, false, 0.1, false},
    {{2, 3, 4}, CrossEntropyRequest::NONE, Reduction::kNone, false, 0, true},
    {{6, 4}, CrossEntropyRequest::MEAN, Reduction::kMean, true, 0.2, false},
    {{5}, CrossEntropyRequest::NONE, Reduction::kNone, true, 0, false},
    {{300, 7}, CrossEntropyRequest::MEAN, Reduction::kMean, false, 0.05, true},
    {{300, 7}, CrossEntropyRequest::NONE, Reduction::kNone, true, 0, false},
};

// A case's request (logits in `encoding`, target_probs in the other one)
// and core's answer to it.
template <typename T>
struct CrossEntropyCall {
  CrossEntropyRequest request;
  CrossEntropyExpected<T> expected;
};
template <typename T>
CrossEntropyCall<T> MakeCrossEntropyCall(const CrossEntropyCase& c,
                                         Encoding encoding) {
  const int64_t classes = c.shape.back();
  const int64_t n = Elements(c.shape);
  const int64_t rows = n / classes;
  const std::vector<T> logits = Ramp<T>(n, -4, 5);
  std::vector<int64_t> indices;
  std::vector<T> probs;
  CrossEntropyCall<T> call;
  CrossEntropyRequest& request = call.request;
  *request.mutable_logits() = MakeTensor<T>(c.shape, logits, encoding);
  request.set_reduction(c.reduction);
  request.set_label_smoothing(c.smoothing);
  request.set_return_probabilities(true);
  CrossEntropyOptions options;
  options.label_smoothing = c.smoothing;
  if (c.target_probs) {
    probs.assign(n, T(1) / classes);
    for (int64_t r = 0; r < rows; ++r) {
      probs[r * classes] += T(0.5);
      probs[r * classes + classes - 1] -= T(0.5) / classes;
    }
    *request.mutable_target_probs() = MakeTensor<T>(
        c.shape, probs,
        encoding == Encoding::kRaw ? Encoding::kTyped : Encoding::kRaw);
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      indices.push_back(c.ignore && r % 3 == 1 ? -100 : (r * 5) % classes);
      request.add_class_indices(indices.back());
    }
    if (c.ignore) {
      request.set_ignore_index(-100);
      options.ignore_index = -100;
    }
  }
  call.expected = CoreCrossEntropy<T>(classes, logits, indices, probs, options,
                                      c.core_reduction);
  return call;
}

// The response's shapes, encoding and dtype, and its values against core's.
template <typename T>
void ExpectCrossEntropyResponse(const v1::SoftmaxCrossEntropyResponse& response,
                                const CrossEntropyCase& c, Encoding encoding,
                                const CrossEntropyExpected<T>& expected) {
  const std::vector<int64_t> loss_shape =
      c.reduction == CrossEntropyRequest::NONE
          ? std::vector<int64_t>(c.shape.begin(), c.shape.end() - 1)
          : std::vector<int64_t>{};
  EXPECT_EQ(ShapeOf(response.loss()), loss_shape);
  EXPECT_EQ(ShapeOf(response.grad_logits()), c.shape);
  EXPECT_EQ(ShapeOf(response.probabilities()), c.shape);
  for (const v1::Tensor* t :
       {&response.loss(), &response.grad_logits(), &response.probabilities()}) {
    EXPECT_EQ(EncodingOf(*t), encoding);
    EXPECT_EQ(t->dtype(), ToProto(kDTypeOf<T>));
  }
  // The loss sums per chunk: equal up to the order of a long double sum.
  ExpectNear(ValuesOf<T>(response.loss()), expected.loss);
  ExpectNear(ValuesOf<T>(response.grad_logits()), expected.grad);
  EXPECT_EQ(ValuesOf<T>(response.probabilities()), expected.probs);
}

TYPED_TEST(ServiceTypedTest, SoftmaxCrossEntropyMatchesCore) {
  using T = TypeParam;
  for (Encoding encoding : kEncodings) {
    for (const CrossEntropyCase& c : kCrossEntropyCases) {
      SCOPED_TRACE(absl::StrCat("rank ", c.shape.size(), " reduction ",
                                c.reduction, " probs ", c.target_probs));
      const CrossEntropyCall<T> call = MakeCrossEntropyCall<T>(c, encoding);
      v1::SoftmaxCrossEntropyResponse response;
      const grpc::Status status = this->CrossEntropy(call.request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ExpectCrossEntropyResponse<T>(response, c, encoding, call.expected);
    }
  }
}

TEST_F(ServiceTest, ProbabilitiesOnlyWhenAsked) {
  v1::SoftmaxCrossEntropyRequest request;
  *request.mutable_logits() =
      MakeTensor<float>({2, 3}, Ramp<float>(6), Encoding::kRaw);
  request.add_class_indices(0);
  request.add_class_indices(2);
  v1::SoftmaxCrossEntropyResponse response;
  ASSERT_TRUE(CrossEntropy(request, &response).ok());
  EXPECT_FALSE(response.has_probabilities());
  EXPECT_EQ(ValuesOf<float>(response.loss()).size(), 1u);
}

TEST_F(ServiceTest, EmptyTensorWithoutDataAnswersRaw) {
  v1::EvaluateRequest request;
  *request.mutable_spec() = Spec(v1::SIGMOID);
  request.mutable_input()->set_dtype(v1::FLOAT64);
  request.mutable_input()->add_shape(0);
  request.mutable_input()->add_shape(5);
  v1::EvaluateResponse response;
  ASSERT_TRUE(Evaluate(request, &response).ok());
  EXPECT_EQ(ShapeOf(response.output()), (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(response.output().dtype(), v1::FLOAT64);
  EXPECT_TRUE(response.output().raw_data().empty());
}

// ---------------------------------------------------------------------------
// Analyze: gradient-flow diagnostics (SPEC §2), through the generic path.

class AnalyzeServiceTest : public ServiceTest {
 protected:
  grpc::Status Analyze(const v1::AnalyzeRequest& r, v1::AnalyzeResponse* o) {
    return Call(*stub_, &Stub::Analyze, r, o);
  }
  template <typename T>
  static v1::AnalyzeRequest Request(v1::Function f, std::vector<T> x,
                                    Encoding encoding = Encoding::kRaw) {
    v1::AnalyzeRequest request;
    *request.mutable_spec() = Spec(f);
    const int64_t n = static_cast<int64_t>(x.size());
    *request.mutable_input() = MakeTensor<T>({n}, x, encoding);
    return request;
  }
};

TEST_F(AnalyzeServiceTest, ReluKnownAnswers) {
  v1::AnalyzeRequest request = Request<float>(v1::RELU, {-2, -1, 0, 1, 2});
  request.set_layers(3);
  v1::AnalyzeResponse r;
  ASSERT_TRUE(Analyze(request, &r).ok());
  EXPECT_EQ(r.units(), 5);
  EXPECT_EQ(r.nan_count(), 0);
  EXPECT_EQ(r.epsilon(), 1e-3);  // the default
  EXPECT_EQ(r.zero_outputs(), 3);
  EXPECT_EQ(r.dead_units(), 3);
  EXPECT_EQ(r.saturated_units(), 3);
  EXPECT_DOUBLE_EQ(r.sparsity(), 0.6);
  EXPECT_DOUBLE_EQ(r.dead_fraction(), 0.6);
  EXPECT_DOUBLE_EQ(r.saturated_fraction(), 0.6);
  EXPECT_EQ(r.min_derivative(), 0);
  EXPECT_EQ(r.max_derivative(), 1);
  EXPECT_DOUBLE_EQ(r.mean_derivative(), 0.4);
  EXPECT_EQ(r.max_abs_derivative(), 1);
  ASSERT_TRUE(r.has_attenuation());
  EXPECT_DOUBLE_EQ(r.attenuation(), 0.064);
}

TEST_F(AnalyzeServiceTest, SigmoidGateAndAttenuation) {
  v1::AnalyzeRequest request =
      Request<double>(v1::SIGMOID, {0}, Encoding::kTyped);
  request.set_layers(10);
  v1::AnalyzeResponse r;
  ASSERT_TRUE(Analyze(request, &r).ok());
  EXPECT_EQ(r.max_abs_derivative(), 0.25);
  EXPECT_EQ(r.attenuation(), std::pow(0.25, 10));
  request.clear_layers();
  ASSERT_TRUE(Analyze(request, &r).ok());
  EXPECT_FALSE(r.has_attenuation());
}

TEST_F(AnalyzeServiceTest, SeedSaturationBounds) {
  v1::AnalyzeRequest request =
      Request<float>(v1::SIGMOID, {-7, -6, -5.9f, 0, 5.9f, 6, 7});
  request.set_epsilon(0.0025);
  v1::AnalyzeResponse r;
  ASSERT_TRUE(Analyze(request, &r).ok());
  EXPECT_EQ(r.epsilon(), 0.0025);
  EXPECT_EQ(r.saturated_units(), 4);
  EXPECT_EQ(r.dead_units(), 0);
  request = Request<double>(v1::TANH, {-3, -2.9, 0, 2.9, 3});
  request.set_epsilon(0.01);
  ASSERT_TRUE(Analyze(request, &r).ok());
  EXPECT_EQ(r.saturated_units(), 2);
  EXPECT_EQ(r.zero_outputs(), 1);
}

TEST_F(AnalyzeServiceTest, NaNAndEmptyInputs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  v1::AnalyzeResponse r;
  ASSERT_TRUE(Analyze(Request<double>(v1::TANH, {nan, 0, nan}), &r).ok());
  EXPECT_EQ(r.units(), 1);
  EXPECT_EQ(r.nan_count(), 2);
  EXPECT_EQ(r.sparsity(), 1);
  EXPECT_EQ(r.mean_derivative(), 1);
  ASSERT_TRUE(Analyze(Request<float>(v1::TANH, {}), &r).ok());
  EXPECT_EQ(r.units(), 0);
  EXPECT_TRUE(std::isnan(r.sparsity()));
  EXPECT_TRUE(std::isnan(r.mean_abs_derivative()));
}

TEST_F(AnalyzeServiceTest, Errors) {
  v1::AnalyzeResponse r;
  v1::AnalyzeRequest request = Request<float>(v1::SOFTMAX, {1, 2});
  ExpectStatus(Analyze(request, &r), StatusCode::INVALID_ARGUMENT,
               {"elementwise", "SOFTMAX", "Jacobian"});
  request.mutable_spec()->set_function(v1::LOG_SOFTMAX);
  ExpectStatus(Analyze(request, &r), StatusCode::INVALID_ARGUMENT,
               {"LOG_SOFTMAX"});
  request = Request<float>(v1::TANH, {1, 2});
  for (double bad : {-1e-3, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    request.set_epsilon(bad);
    ExpectStatus(Analyze(request, &r), StatusCode::INVALID_ARGUMENT,
                 {"epsilon"});
  }
  request.set_epsilon(0);
  request.set_layers(-1);
  ExpectStatus(Analyze(request, &r), StatusCode::INVALID_ARGUMENT,
               {"layers = -1"});
  request.clear_layers();
  request.clear_input();
  ExpectStatus(Analyze(request, &r), StatusCode::INVALID_ARGUMENT,
               {"input is missing"});
  request = Request<float>(v1::TANH, {1, 2});
  request.clear_spec();
  ExpectStatus(Analyze(request, &r), StatusCode::INVALID_ARGUMENT,
               {"spec is missing"});
  request = Request<float>(v1::TANH, {1, 2});
  request.mutable_input()->set_raw_data(std::string(4, '\0'));
  ExpectStatus(Analyze(request, &r), StatusCode::INVALID_ARGUMENT, {"4", "8"});
}

}  // namespace
}  // namespace actsvc::server
