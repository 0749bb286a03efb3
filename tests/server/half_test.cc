// FLOAT16 and BFLOAT16 through the own API (issue 14): the codec (raw
// 2-byte little-endian values; typed float_data rounded to the dtype once,
// answered with the half results widened exactly), every RPC on a loopback
// server in both dtypes and both encodings, each result bit for bit the
// core's, and the bad inputs of SPEC §3 for the half types.
#include "core/half.h"

#include <grpcpp/grpcpp.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "actsvc/v1/activation.grpc.pb.h"
#include "core/activation.h"
#include "core/softmax.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "server/v1/codec.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using testing::Call;
using testing::EncodingOf;
using ::testing::HasSubstr;
using testing::MakeTensor;
using testing::ShapeOf;
using testing::Spec;
using testing::Stub;
using testing::ValuesOf;
using StatusCode = grpc::StatusCode;

// ---------------------------------------------------------------------------
// The codec.

TEST(HalfCodecTest, RawFloat16IsTwoBytesLittleEndian) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT16);
  t.add_shape(2);
  t.set_raw_data(std::string("\x00\x3c\x00\xc0", 4));  // 1, -2
  absl::StatusOr<DecodedTensor> d = DecodeTensor(t, "input");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->view.dtype(), DType::kFloat16);
  EXPECT_EQ(d->encoding, Encoding::kRaw);
  const absl::Span<const Float16> v = d->view.values<Float16>();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(HalfToFloat(v[0]), 1.0f);
  EXPECT_EQ(HalfToFloat(v[1]), -2.0f);
}

TEST(HalfCodecTest, TypedFloatDataIsRoundedToNearestEven) {
  // 1 + 2^-11 lies halfway between float16 1 and 1 + 2^-10 (ties to the
  // even 1); 1 + 3 * 2^-11 between 1 + 2^-10 and 1 + 2^-9 (to 1 + 2^-9);
  // 1e5 is beyond float16's range (inf); bfloat16 keeps 8 bits.
  v1::Tensor t;
  t.add_shape(4);
  for (float f : {1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 1e5f, 1 + 0x1p-8f}) {
    t.add_float_data(f);
  }
  t.set_dtype(v1::FLOAT16);
  absl::StatusOr<DecodedTensor> h = DecodeTensor(t, "input");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->encoding, Encoding::kTyped);
  const absl::Span<const Float16> v = h->view.values<Float16>();
  EXPECT_EQ(HalfToFloat(v[0]), 1.0f);
  EXPECT_EQ(HalfToFloat(v[1]), 1 + 0x1p-9f);
  EXPECT_TRUE(std::isinf(HalfToFloat(v[2])));
  EXPECT_EQ(HalfToFloat(v[3]), 1 + 0x1p-8f);
  t.set_dtype(v1::BFLOAT16);
  absl::StatusOr<DecodedTensor> b = DecodeTensor(t, "input");
  ASSERT_TRUE(b.ok()) << b.status();
  const absl::Span<const BFloat16> w = b->view.values<BFloat16>();
  EXPECT_EQ(HalfToFloat(w[0]), 1.0f);
  EXPECT_EQ(HalfToFloat(w[2]), 99840.0f);  // 1e5 to 8 bits
  EXPECT_EQ(HalfToFloat(w[3]), 1.0f);      // 1 + 2^-8: a tie, to even
}

TEST(HalfCodecTest, TypedResponseHoldsTheHalfValuesWidened) {
  v1::Tensor out;
  MessageSink sink(Encoding::kTyped, {{OutputRole::kOutput, &out}});
  EXPECT_EQ(sink.WireBytes(DType::kBFloat16, 1, 1000),
            TensorWireBytes(1000, 4, 1));  // float_data: 4 bytes a value
  const std::vector<int64_t> shape = {3};
  auto* y = static_cast<BFloat16*>(
      sink.Allocate(OutputRole::kOutput, DType::kBFloat16, shape, 3));
  y[0] = HalfFromDouble<BFloat16>(0.1);
  y[1] = HalfFromDouble<BFloat16>(-3e38);
  y[2] = HalfFromDouble<BFloat16>(1e-40);  // subnormal
  const std::vector<float> want = {HalfToFloat(y[0]), HalfToFloat(y[1]),
                                   HalfToFloat(y[2])};
  sink.Finish();  // y is gone now
  EXPECT_EQ(out.dtype(), v1::BFLOAT16);
  EXPECT_TRUE(out.raw_data().empty());
  ASSERT_EQ(out.float_data_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out.float_data(i), want[i]);
  EXPECT_EQ(want[0], 0.10009765625f);
}

TEST(HalfCodecTest, RawResponseHasTwoBytesPerValue) {
  v1::Tensor out;
  MessageSink sink(Encoding::kRaw, {{OutputRole::kOutput, &out}});
  const std::vector<int64_t> shape = {2, 3};
  sink.Allocate(OutputRole::kOutput, DType::kFloat16, shape, 6);
  sink.Finish();
  EXPECT_EQ(out.dtype(), v1::FLOAT16);
  EXPECT_EQ(out.raw_data().size(), 12u);
  EXPECT_EQ(out.float_data_size(), 0);
}

// Malformed half tensors: INVALID_ARGUMENT naming the field, expected and
// actual (SPEC §3).
TEST(HalfCodecTest, OddAndWrongByteCounts) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT16);
  t.add_shape(3);
  t.set_raw_data(std::string(5, '\0'));
  absl::StatusOr<DecodedTensor> odd = DecodeTensor(t, "input");
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(odd.status().message()),
              HasSubstr("input.raw_data has 5 bytes, expected 6 (shape [3] x "
                        "2 bytes of FLOAT16)"));
  t.set_dtype(v1::BFLOAT16);
  t.set_raw_data(std::string(12, '\0'));  // float32-sized
  absl::StatusOr<DecodedTensor> wrong = DecodeTensor(t, "logits");
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr("logits.raw_data has 12 bytes, expected 6 (shape [3] "
                        "x 2 bytes of BFLOAT16)"));
}

TEST(HalfCodecTest, TypedErrors) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT16);
  t.add_shape(3);
  t.add_float_data(1);
  t.add_float_data(2);
  absl::StatusOr<DecodedTensor> count = DecodeTensor(t, "input");
  EXPECT_THAT(std::string(count.status().message()),
              HasSubstr("input.float_data has 2 values, expected 3"));
  t.clear_float_data();
  for (int i = 0; i < 3; ++i) t.add_double_data(i);
  absl::StatusOr<DecodedTensor> doubles = DecodeTensor(t, "input");
  EXPECT_EQ(doubles.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(doubles.status().message()),
              HasSubstr("input.double_data is set but input.dtype is FLOAT16; "
                        "double_data needs FLOAT64"));
}

// ---------------------------------------------------------------------------
// Every RPC on a loopback server.

class HalfServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<Server>> server =
        testing::StartServer(testing::kMaxMessageMb);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    channel_ =
        new std::shared_ptr<grpc::Channel>(testing::ChannelTo(server_->port()));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
  }

  std::unique_ptr<Stub> stub_ = v1::ActivationService::NewStub(*channel_);
  static Server* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};
Server* HalfServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* HalfServiceTest::channel_ = nullptr;

template <typename H>
std::vector<H> HalfRamp(int64_t n, double lo, double hi) {
  std::vector<H> v(n);
  for (int64_t i = 0; i < n; ++i) {
    v[i] = HalfFromDouble<H>(lo + (hi - lo) * double(i) / double(n - 1));
  }
  return v;
}

template <typename H>
std::vector<uint16_t> Bits(const std::vector<H>& v) {
  std::vector<uint16_t> b;
  for (H h : v) b.push_back(HalfBits(h));
  return b;
}

// Every RPC of one half type in one encoding on the inputs below, each
// answer bit for bit the core's on the same values: one method an RPC.
template <typename H>
class EveryRpcCheck {
 public:
  EveryRpcCheck(Stub& stub, Encoding enc) : stub_(stub), enc_(enc) {}

  // Evaluate, elementwise and softmax along axis 0.
  void CheckEvaluate() {
    for (v1::Function f : {v1::SIGMOID, v1::GELU, v1::ELU}) {
      v1::EvaluateRequest request;
      *request.mutable_spec() = Spec(f);
      *request.mutable_input() = MakeTensor<H>(shape_, x_, enc_);
      v1::EvaluateResponse response;
      ASSERT_TRUE(Call(stub_, &Stub::Evaluate, request, &response).ok());
      CheckOut(response.output(), Core(0, static_cast<Function>(f)), shape_);
    }
    v1::EvaluateRequest request;
    *request.mutable_spec() = Spec(v1::LOG_SOFTMAX);
    request.mutable_spec()->set_axis(0);
    *request.mutable_input() = MakeTensor<H>(shape_, x_, enc_);
    v1::EvaluateResponse response;
    ASSERT_TRUE(Call(stub_, &Stub::Evaluate, request, &response).ok());
    std::vector<H> want(x_.size());
    SoftmaxForward<H>(Function::kLogSoftmax, AxisView{1, 4, 300}, x_,
                      absl::MakeSpan(want));
    CheckOut(response.output(), want, shape_);
  }

  // Derivative: orders 1 and 2, the VJP, and the softmax VJP.
  void CheckDerivative() {
    for (int kind : {1, 2, 3}) {
      v1::DerivativeRequest request;
      *request.mutable_spec() = Spec(v1::SILU);
      request.set_order(kind == 2 ? 2 : 1);
      *request.mutable_input() = MakeTensor<H>(shape_, x_, enc_);
      if (kind == 3)
        *request.mutable_upstream_grad() = MakeTensor<H>(shape_, g_, enc_);
      v1::DerivativeResponse response;
      ASSERT_TRUE(Call(stub_, &Stub::Derivative, request, &response).ok());
      CheckOut(response.output(), Core(kind, Function::kSilu), shape_);
    }
    v1::DerivativeRequest request;
    *request.mutable_spec() = Spec(v1::SOFTMAX);
    *request.mutable_input() = MakeTensor<H>(shape_, x_, enc_);
    *request.mutable_upstream_grad() = MakeTensor<H>(shape_, g_, enc_);
    v1::DerivativeResponse response;
    ASSERT_TRUE(Call(stub_, &Stub::Derivative, request, &response).ok());
    std::vector<H> want(x_.size());
    SoftmaxVjp<H>(Function::kSoftmax, AxisView{4, 300, 1}, x_, g_,
                  absl::MakeSpan(want));
    CheckOut(response.output(), want, shape_);
  }

  // Jacobian: the diagonal, dense elementwise and dense softmax.
  void CheckJacobian() {
    const std::vector<int64_t> small = {3, 5};
    const std::vector<H> xs(x_.begin(), x_.begin() + 15);
    for (v1::Function f : {v1::TANH, v1::SOFTMAX}) {
      for (bool dense : {false, true}) {
        if (f == v1::SOFTMAX && !dense) continue;
        v1::JacobianRequest request;
        *request.mutable_spec() = Spec(f);
        request.set_dense(dense);
        *request.mutable_input() = MakeTensor<H>(small, xs, enc_);
        v1::JacobianResponse response;
        ASSERT_TRUE(Call(stub_, &Stub::Jacobian, request, &response).ok());
        std::vector<H> diag(15), want(dense ? 75 : 15);
        if (f == v1::SOFTMAX) {
          SoftmaxJacobian<H>(Function::kSoftmax, AxisView{3, 5, 1}, xs,
                             absl::MakeSpan(want));
        } else {
          Derivative<H>(Function::kTanh, 0, 1, xs, absl::MakeSpan(diag));
          if (dense) {
            DiagonalToDense<H>(diag, 5, absl::MakeSpan(want));
          } else {
            want = diag;
          }
        }
        CheckOut(response.jacobian(), want,
                 dense ? std::vector<int64_t>{3, 5, 5} : small);
      }
    }
  }

  // SoftmaxCrossEntropy: class indices (MEAN) and target_probs (NONE).
  void CheckCrossEntropy() {
    for (bool by_index : {true, false}) {
      v1::SoftmaxCrossEntropyRequest request;
      *request.mutable_logits() = MakeTensor<H>(shape_, x_, enc_);
      std::vector<int64_t> labels = {0, 17, 299, 150};
      std::vector<H> t(x_.size(), HalfFromDouble<H>(1.0 / 300));
      if (by_index) {
        for (int64_t k : labels) request.add_class_indices(k);
      } else {
        *request.mutable_target_probs() = MakeTensor<H>(shape_, t, enc_);
        request.set_reduction(v1::SoftmaxCrossEntropyRequest::NONE);
      }
      request.set_return_probabilities(true);
      v1::SoftmaxCrossEntropyResponse response;
      ASSERT_TRUE(
          Call(stub_, &Stub::SoftmaxCrossEntropy, request, &response).ok());
      std::vector<H> loss(4), grad(x_.size()), probs(x_.size()), reduced(1);
      const CrossEntropyPartial part = CrossEntropyRows<H>(
          300, x_, by_index ? labels : std::vector<int64_t>(),
          by_index ? std::vector<H>() : t, {}, absl::MakeSpan(loss),
          absl::MakeSpan(grad), absl::MakeSpan(probs), 0, 4);
      if (by_index) {
        ReduceCrossEntropy<H>(Reduction::kMean, part, absl::MakeSpan(grad),
                              absl::MakeSpan(reduced));
      }
      CheckOut(response.loss(), by_index ? reduced : loss,
               by_index ? std::vector<int64_t>{} : std::vector<int64_t>{4});
      CheckOut(response.grad_logits(), grad, shape_);
      CheckOut(response.probabilities(), probs, shape_);
    }
  }

  // Analyze: the half f' counts.
  void CheckAnalyze() {
    v1::AnalyzeRequest request;
    *request.mutable_spec() = Spec(v1::RELU);
    *request.mutable_input() = MakeTensor<H>(shape_, x_, enc_);
    v1::AnalyzeResponse response;
    ASSERT_TRUE(Call(stub_, &Stub::Analyze, request, &response).ok());
    EXPECT_DOUBLE_EQ(response.dead_fraction(), 0.5);
  }

  // Stream: an Evaluate and a Derivative, in order.
  void CheckStream() {
    grpc::ClientContext context;
    auto stream = stub_.Stream(&context);
    v1::StreamRequest e, d;
    *e.mutable_evaluate()->mutable_spec() = Spec(v1::SIGMOID);
    *e.mutable_evaluate()->mutable_input() = MakeTensor<H>(shape_, x_, enc_);
    *d.mutable_derivative()->mutable_spec() = Spec(v1::SIGMOID);
    d.mutable_derivative()->set_order(2);
    *d.mutable_derivative()->mutable_input() = MakeTensor<H>(shape_, x_, enc_);
    ASSERT_TRUE(stream->Write(e));
    ASSERT_TRUE(stream->Write(d));
    stream->WritesDone();
    v1::StreamResponse response;
    ASSERT_TRUE(stream->Read(&response));
    CheckOut(response.evaluate().output(), Core(0, Function::kSigmoid), shape_);
    ASSERT_TRUE(stream->Read(&response));
    CheckOut(response.derivative().output(), Core(2, Function::kSigmoid),
             shape_);
    EXPECT_TRUE(stream->Finish().ok());
  }

 private:
  // The core's answer on x_: kind 0 evaluates, 1 and 2 are the derivative
  // orders, 3 the VJP with g_.
  std::vector<H> Core(int kind, Function f) const {
    std::vector<H> y(x_.size());
    const double a = TakesAlpha(f) ? DefaultAlpha(f) : 0;
    if (kind == 0) Evaluate<H>(f, a, x_, absl::MakeSpan(y));
    if (kind == 1 || kind == 2) {
      Derivative<H>(f, a, kind, x_, absl::MakeSpan(y));
    }
    if (kind == 3) Vjp<H>(f, a, x_, g_, absl::MakeSpan(y));
    return y;
  }

  void CheckOut(const v1::Tensor& out, const std::vector<H>& want,
                const std::vector<int64_t>& want_shape) const {
    EXPECT_EQ(out.dtype(), dtype_);
    EXPECT_EQ(EncodingOf(out), enc_);
    EXPECT_EQ(ShapeOf(out), want_shape);
    EXPECT_EQ(Bits(ValuesOf<H>(out)), Bits(want));
  }

  Stub& stub_;
  const Encoding enc_;
  const std::vector<int64_t> shape_ = {4, 300};
  const std::vector<H> x_ = HalfRamp<H>(1200, -9, 9);
  const std::vector<H> g_ = HalfRamp<H>(1200, 2, -3);
  const v1::DataType dtype_ = ToProto(kDTypeOf<H>);
};

// A fatal failure in one RPC's check ends the whole check, as it did when
// this was one function.
template <typename H>
void CheckEveryRpc(Stub& stub, Encoding enc) {
  const char* what = enc == Encoding::kRaw ? "raw" : "typed";
  SCOPED_TRACE(std::string(HalfFormat<H>::kName) + " " + what);
  EveryRpcCheck<H> check(stub, enc);
  ASSERT_NO_FATAL_FAILURE(check.CheckEvaluate());
  ASSERT_NO_FATAL_FAILURE(check.CheckDerivative());
  ASSERT_NO_FATAL_FAILURE(check.CheckJacobian());
  ASSERT_NO_FATAL_FAILURE(check.CheckCrossEntropy());
  ASSERT_NO_FATAL_FAILURE(check.CheckAnalyze());
  ASSERT_NO_FATAL_FAILURE(check.CheckStream());
}

TEST_F(HalfServiceTest, EveryRpcFloat16Raw) {
  CheckEveryRpc<Float16>(*stub_, Encoding::kRaw);
}
TEST_F(HalfServiceTest, EveryRpcFloat16Typed) {
  CheckEveryRpc<Float16>(*stub_, Encoding::kTyped);
}
TEST_F(HalfServiceTest, EveryRpcBFloat16Raw) {
  CheckEveryRpc<BFloat16>(*stub_, Encoding::kRaw);
}
TEST_F(HalfServiceTest, EveryRpcBFloat16Typed) {
  CheckEveryRpc<BFloat16>(*stub_, Encoding::kTyped);
}

// NaN and ±inf are valid half inputs (SPEC.md §1): NaN out, the limits out.
TEST_F(HalfServiceTest, NanAndInfinityAreValid) {
  const std::vector<Float16> x = {HalfFromDouble<Float16>(NAN),
                                  HalfFromDouble<Float16>(INFINITY),
                                  HalfFromDouble<Float16>(-INFINITY)};
  v1::EvaluateRequest request;
  *request.mutable_spec() = Spec(v1::SIGMOID);
  *request.mutable_input() = MakeTensor<Float16>({3}, x, Encoding::kRaw);
  v1::EvaluateResponse response;
  ASSERT_TRUE(Call(*stub_, &Stub::Evaluate, request, &response).ok());
  const std::vector<Float16> y = ValuesOf<Float16>(response.output());
  EXPECT_TRUE(std::isnan(HalfToFloat(y[0])));
  EXPECT_EQ(HalfToFloat(y[1]), 1.0f);
  EXPECT_EQ(HalfToFloat(y[2]), 0.0f);
}

void ExpectInvalid(const grpc::Status& status,
                   const std::vector<std::string>& substrings) {
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  for (const std::string& s : substrings) {
    EXPECT_THAT(status.error_message(), HasSubstr(s));
  }
}

// A companion tensor of another dtype.
TEST_F(HalfServiceTest, CompanionOfAnotherDtype) {
  v1::DerivativeRequest d;
  *d.mutable_spec() = Spec(v1::SIGMOID);
  *d.mutable_input() = MakeTensor<Float16>(
      {2}, {HalfFromDouble<Float16>(1), HalfFromDouble<Float16>(2)},
      Encoding::kRaw);
  *d.mutable_upstream_grad() = MakeTensor<float>({2}, {1, 1}, Encoding::kRaw);
  v1::DerivativeResponse dr;
  ExpectInvalid(Call(*stub_, &Stub::Derivative, d, &dr),
                {"upstream_grad.dtype is FLOAT32, expected FLOAT16"});

  v1::SoftmaxCrossEntropyRequest c;
  *c.mutable_logits() = MakeTensor<Float16>(
      {1, 2}, {HalfFromDouble<Float16>(1), HalfFromDouble<Float16>(2)},
      Encoding::kRaw);
  *c.mutable_target_probs() = MakeTensor<BFloat16>(
      {1, 2}, {HalfFromDouble<BFloat16>(0.5), HalfFromDouble<BFloat16>(0.5)},
      Encoding::kRaw);
  v1::SoftmaxCrossEntropyResponse cr;
  ExpectInvalid(Call(*stub_, &Stub::SoftmaxCrossEntropy, c, &cr),
                {"target_probs.dtype is BFLOAT16, expected FLOAT16"});
}

TEST_F(HalfServiceTest, OddRawDataLength) {
  v1::EvaluateRequest request;
  *request.mutable_spec() = Spec(v1::RELU);
  request.mutable_input()->set_dtype(v1::BFLOAT16);
  request.mutable_input()->add_shape(2);
  request.mutable_input()->set_raw_data(std::string(3, '\x01'));
  v1::EvaluateResponse response;
  ExpectInvalid(Call(*stub_, &Stub::Evaluate, request, &response),
                {"input.raw_data has 3 bytes, expected 4", "BFLOAT16"});
}

}  // namespace
}  // namespace actsvc::server
