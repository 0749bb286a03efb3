// ActivationService in-process on a loopback port, called through the
// generated stub; every result is compared with core called directly.
//
// Over 800 lines (about 950): every test here shares one server (the
// SharedServer environment and the ServiceTest fixture); the lifecycle tests,
// which need servers of their own, are in service_lifecycle_test.cc. The
// rest splits by RPC group once the fixture moves into server_test_util.h
// with issue 21's shared test tables.
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
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::grpc::StatusCode;
using testing::EncodingOf;
using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::Ramp;
using testing::ShapeOf;
using testing::ValuesOf;
using namespace testing;  // NOLINT: the helpers of server_test_util.h

// One server for the whole binary; tests that need their own make one.
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
  static std::unique_ptr<Server> server_;
  static std::shared_ptr<grpc::Channel> channel_;
};
std::unique_ptr<Server> SharedServer::server_;
std::shared_ptr<grpc::Channel> SharedServer::channel_;
::testing::Environment* const kSharedServer =
    ::testing::AddGlobalTestEnvironment(new SharedServer);

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

void ExpectStatus(const grpc::Status& status, StatusCode code,
                  const std::vector<std::string>& substrings) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  for (const std::string& s : substrings) {
    EXPECT_THAT(status.error_message(), HasSubstr(s));
  }
}

int64_t Elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Function CoreFunction(v1::Function f) { return static_cast<Function>(f); }

// ---------------------------------------------------------------------------
// Results match core, in both dtypes and both encodings.

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
            const AxisView v = MakeAxisView(
                shape, *NormalizeAxis(axis, static_cast<int>(shape.size())));
            SoftmaxForward<T>(CoreFunction(f), v, x, absl::MakeSpan(expected));
          } else {
            actsvc::Evaluate<T>(CoreFunction(f), alpha, x,
                                absl::MakeSpan(expected));
          }

          v1::EvaluateResponse response;
          const grpc::Status status = this->Evaluate(request, &response);
          ASSERT_TRUE(status.ok()) << status.error_message();
          EXPECT_EQ(ShapeOf(response.output()), shape);
          EXPECT_EQ(EncodingOf(response.output()), encoding);
          EXPECT_EQ(ValuesOf<T>(response.output()), expected);
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
          const grpc::Status status = this->Derivative(request, &response);
          ASSERT_TRUE(status.ok()) << status.error_message();
          EXPECT_EQ(ShapeOf(response.output()), shape);
          EXPECT_EQ(EncodingOf(response.output()), encoding);
          EXPECT_EQ(ValuesOf<T>(response.output()), expected);
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
          const AxisView v = MakeAxisView(
              shape, *NormalizeAxis(axis, static_cast<int>(shape.size())));
          SoftmaxVjp<T>(CoreFunction(f), v, x, g, absl::MakeSpan(expected));
        } else {
          Vjp<T>(CoreFunction(f), DefaultAlpha(CoreFunction(f)), x, g,
                 absl::MakeSpan(expected));
        }
        v1::DerivativeResponse response;
        const grpc::Status status = this->Derivative(request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        EXPECT_EQ(ShapeOf(response.output()), shape);
        EXPECT_EQ(EncodingOf(response.output()), encoding);
        EXPECT_EQ(ValuesOf<T>(response.output()), expected);
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

TYPED_TEST(ServiceTypedTest, SoftmaxCrossEntropyMatchesCore) {
  using T = TypeParam;
  using Req = v1::SoftmaxCrossEntropyRequest;
  struct Case {
    std::vector<int64_t> shape;
    Req::Reduction reduction;
    Reduction core_reduction;
    bool target_probs;
    double smoothing;
    bool ignore;
  };
  // [300, 7] spans several chunks of rows.
  const Case cases[] = {
      {{2, 3, 4}, Req::MEAN, Reduction::kMean, false, 0, false},
      {{2, 3, 4}, Req::SUM, Reduction::kSum, false, 0.1, false},
      {{2, 3, 4}, Req::NONE, Reduction::kNone, false, 0, true},
      {{6, 4}, Req::MEAN, Reduction::kMean, true, 0.2, false},
      {{5}, Req::NONE, Reduction::kNone, true, 0, false},
      {{300, 7}, Req::MEAN, Reduction::kMean, false, 0.05, true},
      {{300, 7}, Req::NONE, Reduction::kNone, true, 0, false},
  };
  for (Encoding encoding : kEncodings) {
    for (const Case& c : cases) {
      SCOPED_TRACE(absl::StrCat("rank ", c.shape.size(), " reduction ",
                                c.reduction, " probs ", c.target_probs));
      const int64_t classes = c.shape.back();
      const int64_t n = Elements(c.shape);
      const int64_t rows = n / classes;
      const std::vector<T> logits = Ramp<T>(n, -4, 5);
      std::vector<int64_t> indices;
      std::vector<T> probs;
      Req request;
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
      const CrossEntropyExpected<T> expected = CoreCrossEntropy<T>(
          classes, logits, indices, probs, options, c.core_reduction);

      v1::SoftmaxCrossEntropyResponse response;
      const grpc::Status status = this->CrossEntropy(request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      const std::vector<int64_t> loss_shape =
          c.reduction == Req::NONE
              ? std::vector<int64_t>(c.shape.begin(), c.shape.end() - 1)
              : std::vector<int64_t>{};
      EXPECT_EQ(ShapeOf(response.loss()), loss_shape);
      EXPECT_EQ(ShapeOf(response.grad_logits()), c.shape);
      EXPECT_EQ(ShapeOf(response.probabilities()), c.shape);
      for (const v1::Tensor* t : {&response.loss(), &response.grad_logits(),
                                  &response.probabilities()}) {
        EXPECT_EQ(EncodingOf(*t), encoding);
        EXPECT_EQ(t->dtype(), ToProto(kDTypeOf<T>));
      }
      // The loss sums per chunk: equal up to the order of a long double sum.
      ExpectNear(ValuesOf<T>(response.loss()), expected.loss);
      ExpectNear(ValuesOf<T>(response.grad_logits()), expected.grad);
      EXPECT_EQ(ValuesOf<T>(response.probabilities()), expected.probs);
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
// ListFunctions and health.

TEST_F(ServiceTest, ListFunctionsReportsCoreMetadata) {
  v1::ListFunctionsResponse response;
  ASSERT_TRUE(
      Call(*stub_, &Stub::ListFunctions, v1::ListFunctionsRequest(), &response)
          .ok());
  const std::vector<FunctionInfo>& core = actsvc::AllFunctions();
  ASSERT_EQ(response.functions_size(), 13);
  ASSERT_EQ(core.size(), 13u);
  for (int i = 0; i < 13; ++i) {
    const v1::FunctionInfo& got = response.functions(i);
    const FunctionInfo& want = core[i];
    EXPECT_EQ(got.function(), static_cast<int>(want.function));
    EXPECT_EQ(got.function(), i + 1);
    EXPECT_EQ(got.name(), want.name);
    EXPECT_EQ(got.elementwise(), want.elementwise);
    EXPECT_EQ(got.aliases_size(), static_cast<int>(want.aliases.size()));
    ASSERT_EQ(got.parameters_size(), static_cast<int>(want.parameters.size()));
    for (int p = 0; p < got.parameters_size(); ++p) {
      EXPECT_EQ(got.parameters(p).name(), want.parameters[p].name);
      EXPECT_EQ(got.parameters(p).default_value(),
                want.parameters[p].default_value);
      EXPECT_EQ(got.parameters(p).valid_range(),
                want.parameters[p].valid_range);
    }
    EXPECT_EQ(got.formula(), want.formula);
    EXPECT_EQ(got.derivative_formula(), want.derivative_formula);
    EXPECT_EQ(got.second_derivative_formula(), want.second_derivative_formula);
    EXPECT_EQ(got.stable_form(), want.stable_form);
    EXPECT_EQ(got.output_range(), want.output_range);
    EXPECT_EQ(got.derivative_range(), want.derivative_range);
    EXPECT_EQ(got.saturates(), want.saturates);
    EXPECT_EQ(got.notes(), want.notes);
  }
  const v1::FunctionInfo& gelu = response.functions(v1::GELU - 1);
  EXPECT_EQ(gelu.name(), "gelu");
  // SPEC §1 erratum 3: GELU' dips below 0.
  EXPECT_THAT(gelu.derivative_range(), HasSubstr("-0.1289"));
  const v1::FunctionInfo& leaky = response.functions(v1::LEAKY_RELU - 1);
  ASSERT_EQ(leaky.parameters_size(), 1);
  EXPECT_EQ(leaky.parameters(0).name(), "alpha");
  EXPECT_EQ(leaky.parameters(0).default_value(), 0.01);
  EXPECT_FALSE(response.functions(v1::SOFTMAX - 1).elementwise());
}

TEST_F(ServiceTest, HealthReportsServing) {
  auto health = grpc::health::v1::Health::NewStub(SharedServer::channel_);
  for (const std::string service : {"", "actsvc.v1.ActivationService"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

// That reflection resolves every service it lists is
// e2e.ReflectionE2eTest: this binary links health's descriptor through its
// Health stub, whatever the server itself does.
TEST_F(ServiceTest, ReflectionListsTheServices) {
  // The reflection protos are not installed, so the call is made on raw
  // bytes: ServerReflectionRequest{list_services: ""} is field 7, length 0.
  const grpc::internal::RpcMethod method(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      stream(grpc::internal::ClientReaderWriterFactory<
             grpc::ByteBuffer, grpc::ByteBuffer>::Create(SharedServer::channel_
                                                             .get(),
                                                         method, &context));
  grpc::Slice slice(std::string("\x3a\x00", 2));
  ASSERT_TRUE(stream->Write(grpc::ByteBuffer(&slice, 1)));
  stream->WritesDone();
  grpc::ByteBuffer response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_THAT(bytes, HasSubstr("actsvc.v1.ActivationService"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  EXPECT_TRUE(stream->Finish().ok());
}

// ---------------------------------------------------------------------------
// SPEC §3 over the wire: what only a server can show (the catalogue of bad
// fields is in v1_codec_test.cc, against the RPC bodies).

TEST_F(ServiceTest, OversizedRequest) {
  v1::EvaluateRequest request = GoodEvaluate();
  const int64_t n = kMaxMessageBytes / 4 + 1000;
  *request.mutable_input() =
      MakeTensor<float>({n}, std::vector<float>(n, 1.0f), Encoding::kRaw);
  v1::EvaluateResponse response;
  // Our words, not gRPC's "Received message larger than max".
  ExpectStatus(Evaluate(request, &response), StatusCode::RESOURCE_EXHAUSTED,
               {absl::StrCat("over the message size limit of ",
                             kMaxMessageBytes, " bytes (--max_message_mb)")});
  // And the server keeps serving.
  EXPECT_TRUE(Evaluate(GoodEvaluate(), &response).ok());
}

// ---------------------------------------------------------------------------
// Stream.

TEST_F(ServiceTest, OversizedStreamMessageEndsTheStream) {
  const int64_t n = kMaxMessageBytes / 4 + 1000;
  v1::StreamRequest big;
  *big.mutable_evaluate()->mutable_spec() = Spec(v1::RELU);
  *big.mutable_evaluate()->mutable_input() =
      MakeTensor<float>({n}, std::vector<float>(n, 1.0f), Encoding::kRaw);
  v1::StreamRequest small = big;
  *small.mutable_evaluate()->mutable_input() =
      MakeTensor<float>({2}, {-1.0f, 1.0f}, Encoding::kRaw);
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  stream->Write(small);
  stream->Write(big);  // may fail once the server has ended the call
  stream->WritesDone();
  v1::StreamResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(ValuesOf<float>(response.evaluate().output()),
            (std::vector<float>{0.0f, 1.0f}));
  EXPECT_FALSE(stream->Read(&response));
  ExpectStatus(stream->Finish(), StatusCode::RESOURCE_EXHAUSTED,
               {"--max_message_mb"});
}

v1::StreamRequest StreamEvaluate(v1::Function f, const std::vector<float>& x) {
  v1::StreamRequest request;
  *request.mutable_evaluate()->mutable_spec() = Spec(f);
  *request.mutable_evaluate()->mutable_input() =
      MakeTensor<float>({static_cast<int64_t>(x.size())}, x, Encoding::kRaw);
  return request;
}

v1::StreamRequest StreamDerivative(v1::Function f,
                                   const std::vector<float>& x) {
  v1::StreamRequest request;
  *request.mutable_derivative()->mutable_spec() = Spec(f);
  *request.mutable_derivative()->mutable_input() =
      MakeTensor<float>({static_cast<int64_t>(x.size())}, x, Encoding::kTyped);
  return request;
}

std::vector<float> CoreValues(const v1::StreamRequest& request) {
  const bool evaluate = request.has_evaluate();
  const v1::Tensor& input =
      evaluate ? request.evaluate().input() : request.derivative().input();
  const Function f =
      CoreFunction(evaluate ? request.evaluate().spec().function()
                            : request.derivative().spec().function());
  const double alpha = TakesAlpha(f) ? DefaultAlpha(f) : 0.0;
  const std::vector<float> x = ValuesOf<float>(input);
  std::vector<float> y(x.size());
  if (evaluate) {
    actsvc::Evaluate<float>(f, alpha, x, absl::MakeSpan(y));
  } else {
    actsvc::Derivative<float>(f, alpha, 1, x, absl::MakeSpan(y));
  }
  return y;
}

TEST_F(ServiceTest, StreamAnswersInOrder) {
  std::vector<v1::StreamRequest> requests;
  for (int i = 0; i < 20; ++i) {
    const std::vector<float> x = Ramp<float>(1 + i * 150, -i, i);
    const v1::Function f = static_cast<v1::Function>(1 + i % 11);
    requests.push_back(i % 2 ? StreamDerivative(f, x) : StreamEvaluate(f, x));
  }
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  for (const v1::StreamRequest& request : requests) {
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  v1::StreamResponse response;
  for (const v1::StreamRequest& request : requests) {
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_EQ(response.has_evaluate(), request.has_evaluate());
    const v1::Tensor& out = response.has_evaluate()
                                ? response.evaluate().output()
                                : response.derivative().output();
    EXPECT_EQ(ValuesOf<float>(out), CoreValues(request));
    EXPECT_EQ(EncodingOf(out),
              request.has_evaluate() ? Encoding::kRaw : Encoding::kTyped);
  }
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServiceTest, BadRequestEndsTheStreamAfterEarlierResponses) {
  std::vector<v1::StreamRequest> requests = {
      StreamEvaluate(v1::GELU, Ramp<float>(10)),
      StreamDerivative(v1::SIGMOID, Ramp<float>(20)),
      StreamEvaluate(v1::SIGMOID, Ramp<float>(5)),
      StreamEvaluate(v1::TANH, Ramp<float>(5)),
  };
  requests[2].mutable_evaluate()->mutable_spec()->set_alpha(0.5);
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  for (const v1::StreamRequest& request : requests) {
    stream->Write(request);  // may fail once the server has ended the call
  }
  stream->WritesDone();
  v1::StreamResponse response;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(stream->Read(&response)) << i;
    const v1::Tensor& out = response.has_evaluate()
                                ? response.evaluate().output()
                                : response.derivative().output();
    EXPECT_EQ(ValuesOf<float>(out), CoreValues(requests[i]));
  }
  EXPECT_FALSE(stream->Read(&response));
  ExpectStatus(stream->Finish(), StatusCode::INVALID_ARGUMENT,
               {"stream request #2", "spec.alpha"});
}

TEST_F(ServiceTest, EmptyStreamRequest) {
  grpc::ClientContext context;
  auto stream = stub_->Stream(&context);
  stream->Write(v1::StreamRequest());
  stream->WritesDone();
  v1::StreamResponse response;
  EXPECT_FALSE(stream->Read(&response));
  ExpectStatus(stream->Finish(), StatusCode::INVALID_ARGUMENT,
               {"stream request #0", "evaluate or derivative"});
}

// Bytes no message parses from: field 1, length-delimited, whose length
// runs past the end.
const char kMalformed[] = "\x0a\xff\xff\xff\xff\x0f garbage";

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// A Stream call carrying `messages` as they are, then a half-close; counts
// the responses. (bench/soak.sh found that gRPC's typed stream ended such a
// call OK, as if the client had half-closed at the malformed message.)
grpc::Status RawStream(const std::vector<std::string>& messages,
                       int* responses) {
  grpc::GenericStub stub(SharedServer::channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  // One operation at a time, so the queue returns it next.
  auto wait = [&cq] {
    void* tag;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    return ok;
  };
  auto call =
      stub.PrepareCall(&context, "/actsvc.v1.ActivationService/Stream", &cq);
  call->StartCall(nullptr);
  EXPECT_TRUE(wait());
  bool writing = true;
  for (const std::string& message : messages) {
    if (!writing) break;
    call->Write(Buffer(message), nullptr);
    writing = wait();  // false once the server has ended the call
  }
  if (writing) {
    call->WritesDone(nullptr);
    wait();
  }
  grpc::ByteBuffer response;
  *responses = 0;
  while (true) {
    call->Read(&response, nullptr);
    if (!wait()) break;
    ++*responses;
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  wait();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(ServiceTest, MalformedStreamMessageIsInvalidArgument) {
  const std::string good =
      StreamEvaluate(v1::GELU, Ramp<float>(10)).SerializeAsString();
  int responses = 0;
  ExpectStatus(RawStream({good, kMalformed, good}, &responses),
               StatusCode::INVALID_ARGUMENT,
               {"stream request #1", "not a valid actsvc.v1.StreamRequest"});
  EXPECT_EQ(responses, 1);
  // Well-formed messages still go through the same path.
  ASSERT_TRUE(RawStream({good, good}, &responses).ok());
  EXPECT_EQ(responses, 2);
}

TEST_F(ServiceTest, MalformedListFunctionsRequestIsInvalidArgument) {
  grpc::GenericStub stub(SharedServer::channel_);
  for (const std::string& bytes : {std::string(kMalformed), std::string()}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    const grpc::ByteBuffer request = Buffer(bytes);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, "/actsvc.v1.ActivationService/ListFunctions",
                   grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status status) { done.set_value(status); });
    const grpc::Status status = done.get_future().get();
    if (bytes.empty()) {
      // The empty message is a valid ListFunctionsRequest.
      ASSERT_TRUE(status.ok()) << status.error_message();
      std::vector<grpc::Slice> slices;
      ASSERT_TRUE(response.Dump(&slices).ok());
      std::string serialized;
      for (const grpc::Slice& s : slices) {
        serialized.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
      v1::ListFunctionsResponse functions;
      ASSERT_TRUE(functions.ParseFromString(serialized));
      EXPECT_EQ(functions.functions_size(), 13);
    } else {
      ExpectStatus(status, StatusCode::INVALID_ARGUMENT,
                   {"not a valid actsvc.v1.ListFunctionsRequest"});
    }
  }
}

TEST_F(ServiceTest, GoodCallsAreAnsweredWhileBadOnesArrive) {
  const std::vector<float> x = Ramp<float>(4000);
  std::vector<float> expected(x.size());
  actsvc::Evaluate<float>(Function::kGelu, 0, x, absl::MakeSpan(expected));
  std::atomic<int> good_ok{0}, bad_rejected{0};
  std::thread good([&] {
    auto stub = v1::ActivationService::NewStub(SharedServer::channel_);
    v1::EvaluateRequest request = GoodEvaluate(v1::GELU);
    *request.mutable_input() = MakeTensor<float>({4000}, x, Encoding::kRaw);
    for (int i = 0; i < 40; ++i) {
      v1::EvaluateResponse response;
      if (Call(*stub, &Stub::Evaluate, request, &response).ok() &&
          ValuesOf<float>(response.output()) == expected) {
        ++good_ok;
      }
    }
  });
  std::thread bad([&] {
    auto stub = v1::ActivationService::NewStub(SharedServer::channel_);
    for (int i = 0; i < 40; ++i) {
      v1::EvaluateRequest request = GoodEvaluate();
      request.mutable_input()->mutable_raw_data()->resize(i % 15);
      v1::EvaluateResponse response;
      if (Call(*stub, &Stub::Evaluate, request, &response).error_code() ==
          StatusCode::INVALID_ARGUMENT) {
        ++bad_rejected;
      }
    }
  });
  good.join();
  bad.join();
  EXPECT_EQ(good_ok, 40);
  EXPECT_EQ(bad_rejected, 40);
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
