// The load library shared by `actsvc bench` and the soak, without a server:
// expected values in every dtype, the answer checker's tolerances and
// messages, the closed loop and the canceller.
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "actsvc/v1/activation.pb.h"
#include "client/answer_check.h"
#include "client/answers.h"
#include "client/calls.h"
#include "client/driver.h"
#include "client/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace actsvc::client {
namespace {

namespace v1 = ::actsvc::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::FunctionSpec Spec(v1::Function f) {
  v1::FunctionSpec spec;
  spec.set_function(f);
  return spec;
}

TEST(ToleranceTest, EachDtypeHasItsOwn) {
  // A relative error of 2^-8 is a right bfloat16 answer (2 of its ulps) and
  // a wrong one in any other dtype.
  const double want = 1.0, got = 1.0 + 0x1p-8;
  EXPECT_TRUE(Close(got, want, v1::BFLOAT16));
  EXPECT_FALSE(Close(got, want, v1::FLOAT16));
  EXPECT_FALSE(Close(got, want, v1::FLOAT32));
  EXPECT_FALSE(Close(got, want, v1::FLOAT64));
  // 2 float16 ulps, but not 8.
  EXPECT_TRUE(Close(1.0 + 0x1p-10, want, v1::FLOAT16));
  EXPECT_FALSE(Close(1.0 + 0x1p-7, want, v1::FLOAT16));
  // float32: a few hundred float32 ulps; float64 far tighter.
  EXPECT_TRUE(Close(1.0 + 5e-5, want, v1::FLOAT32));
  EXPECT_FALSE(Close(1.0 + 5e-5, want, v1::FLOAT64));
  EXPECT_TRUE(Close(1.0 + 5e-11, want, v1::FLOAT64));
}

TEST(ToleranceTest, NanAndInfinitiesMatchOnlyThemselves) {
  const double inf = std::numeric_limits<double>::infinity();
  for (v1::DataType dtype :
       {v1::FLOAT32, v1::FLOAT64, v1::FLOAT16, v1::BFLOAT16}) {
    EXPECT_TRUE(Close(std::nan(""), std::nan(""), dtype));
    EXPECT_FALSE(Close(0, std::nan(""), dtype));
    EXPECT_TRUE(Close(inf, inf, dtype));
    EXPECT_FALSE(Close(-inf, inf, dtype));
    EXPECT_FALSE(Close(1e300, inf, dtype));
  }
}

TEST(CheckTensorTest, NamesWhatDiffers) {
  const Want want{{2, 2}, v1::FLOAT32, {1, 2, 3, 4}, std::nullopt};
  EXPECT_EQ(
      CheckTensor(MakeTensor({2, 2}, v1::FLOAT32, {1, 2, 3, 4}, Encoding::kRaw),
                  want),
      "");
  EXPECT_THAT(CheckTensor(MakeTensor({2, 2}, v1::FLOAT32, {1, 2, 3.5, 4},
                                     Encoding::kTyped),
                          want),
              HasSubstr("1 of 4 values differ; first at [2]: got 3.5"));
  EXPECT_THAT(
      CheckTensor(MakeTensor({4}, v1::FLOAT32, {1, 2, 3, 4}, Encoding::kRaw),
                  want),
      HasSubstr("shape [4], expected [2,2]"));
  EXPECT_THAT(
      CheckTensor(MakeTensor({2, 2}, v1::FLOAT64, {1, 2, 3, 4}, Encoding::kRaw),
                  want),
      HasSubstr("dtype FLOAT64, expected FLOAT32"));
  v1::Tensor short_data =
      MakeTensor({2, 2}, v1::FLOAT32, {1, 2, 3, 4}, Encoding::kRaw);
  short_data.mutable_raw_data()->resize(12);
  EXPECT_FALSE(CheckTensor(short_data, want).empty());
}

TEST(CheckTensorTest, EncodingWhenAskedAndSamples) {
  Want want{{100}, v1::FLOAT64, std::vector<double>(100, 1.0), Encoding::kRaw};
  std::vector<double> got(100, 1.0);
  EXPECT_THAT(
      CheckTensor(MakeTensor({100}, v1::FLOAT64, got, Encoding::kTyped), want),
      HasSubstr("typed, expected the request's encoding (raw)"));
  // Values between the samples are not compared.
  got[1] = 2;
  EXPECT_EQ(
      CheckTensor(MakeTensor({100}, v1::FLOAT64, got, Encoding::kRaw), want,
                  /*samples=*/24),
      "");
  got[99] = 2;  // the last is always a sample
  EXPECT_THAT(
      CheckTensor(MakeTensor({100}, v1::FLOAT64, got, Encoding::kRaw), want,
                  /*samples=*/24),
      HasSubstr("1 of 24 values compared differ; first at [99]"));
  EXPECT_THAT(
      CheckTensor(MakeTensor({100}, v1::FLOAT64, got, Encoding::kRaw), want),
      HasSubstr("2 of 100 values differ; first at [1]"));
  // One sample of many: the first.
  EXPECT_EQ(
      CheckTensor(MakeTensor({100}, v1::FLOAT64, got, Encoding::kRaw), want,
                  /*samples=*/1),
      "");
}

TEST(AnswersTest, EvaluateInEveryDtype) {
  for (v1::DataType dtype :
       {v1::FLOAT32, v1::FLOAT64, v1::FLOAT16, v1::BFLOAT16}) {
    const InputValues x{{3}, dtype, {0, 1, -1}};
    absl::StatusOr<Answer> y = ExpectedEvaluate(Spec(v1::SIGMOID), x);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_THAT(y->shape, ElementsAre(3));
    EXPECT_EQ(y->values[0], 0.5);
    for (size_t i = 1; i < 3; ++i) {
      const double exact = 1 / (1 + std::exp(-x.values[i]));
      EXPECT_TRUE(Close(y->values[i], exact, dtype)) << dtype;
      // Rounded to the dtype: an exact value of it.
      EXPECT_EQ(y->values[i], RoundToDtype(y->values[i], dtype));
    }
  }
}

TEST(AnswersTest, DerivativesVjpAndJacobians) {
  const InputValues x{{2, 2}, v1::FLOAT64, {0, 1, 2, 3}};
  absl::StatusOr<Answer> d = ExpectedDerivative(Spec(v1::RELU), 1, x);
  ASSERT_TRUE(d.ok());
  EXPECT_THAT(d->values, ElementsAre(0, 1, 1, 1));
  EXPECT_FALSE(ExpectedDerivative(Spec(v1::RELU), 3, x).ok());
  EXPECT_FALSE(ExpectedDerivative(Spec(v1::SOFTMAX), 1, x).ok());

  absl::StatusOr<Answer> vjp =
      ExpectedVjp(Spec(v1::RELU), x, std::vector<double>{5, 6, 7, 8});
  ASSERT_TRUE(vjp.ok());
  EXPECT_THAT(vjp->values, ElementsAre(0, 6, 7, 8));

  absl::StatusOr<Answer> dense =
      ExpectedJacobian(Spec(v1::RELU), /*dense=*/true, x);
  ASSERT_TRUE(dense.ok());
  EXPECT_THAT(dense->shape, ElementsAre(2, 2, 2));
  EXPECT_THAT(dense->values, ElementsAre(0, 0, 0, 1, 1, 0, 0, 1));

  // Softmax along axis 0 of [2, 3]: [3, 2, 2], the axis moved last.
  v1::FunctionSpec softmax = Spec(v1::SOFTMAX);
  softmax.set_axis(0);
  absl::StatusOr<Answer> jac = ExpectedJacobian(
      softmax, false, InputValues{{2, 3}, v1::FLOAT32, {0, 0, 0, 0, 0, 0}});
  ASSERT_TRUE(jac.ok());
  EXPECT_THAT(jac->shape, ElementsAre(3, 2, 2));
  EXPECT_THAT(jac->values, ElementsAre(0.25, -0.25, -0.25, 0.25, 0.25, -0.25,
                                       -0.25, 0.25, 0.25, -0.25, -0.25, 0.25));
  softmax.set_axis(2);
  EXPECT_FALSE(
      ExpectedEvaluate(softmax, InputValues{{2, 3}, v1::FLOAT32, {}}).ok());
}

TEST(AnswersTest, CrossEntropyReductions) {
  CrossEntropyInput in;
  in.logits = InputValues{{2, 4}, v1::FLOAT64, std::vector<double>(8, 0.5)};
  in.class_indices = {0, 3};
  in.probabilities = true;
  absl::StatusOr<CrossEntropyAnswer> mean = ExpectedCrossEntropy(in);
  ASSERT_TRUE(mean.ok());
  EXPECT_TRUE(mean->loss.shape.empty());
  EXPECT_NEAR(mean->loss.values.at(0), std::log(4.0), 1e-15);
  EXPECT_THAT(mean->probabilities.values, testing::Each(0.25));
  EXPECT_NEAR(mean->grad_logits.values[0], (0.25 - 1) / 2, 1e-15);
  in.reduction = Reduction::kNone;
  absl::StatusOr<CrossEntropyAnswer> none = ExpectedCrossEntropy(in);
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(none->loss.shape, ElementsAre(2));
  EXPECT_NEAR(none->grad_logits.values[0], 0.25 - 1, 1e-15);
}

TEST(AnswersTest, RandomAndSpecialValuesAreOfTheDtype) {
  std::mt19937_64 rng(7);
  for (v1::DataType dtype :
       {v1::FLOAT32, v1::FLOAT64, v1::FLOAT16, v1::BFLOAT16}) {
    std::vector<double> v = RandomValues(rng, 64, -8, 8, dtype);
    PutSpecialValues(dtype, &v);
    EXPECT_TRUE(std::isnan(v[0]));
    EXPECT_TRUE(std::isinf(v[1]));
    for (double d : v) {
      if (std::isnan(d)) continue;
      EXPECT_EQ(d, RoundToDtype(d, dtype)) << dtype;
      if (!std::isinf(d)) {
        EXPECT_FALSE(std::isinf(RoundToDtype(d, dtype))) << dtype;
      }
    }
    EXPECT_GT(v[5], 0);                           // the smallest subnormal
    EXPECT_EQ(RoundToDtype(v[5] / 2, dtype), 0);  // nothing below it
  }
}

TEST(CallsTest, SerializeAndParseRoundTrip) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(v1::GELU);
  *request.mutable_input() =
      MakeTensor({2}, v1::FLOAT32, {1, 2}, Encoding::kRaw);
  v1::EvaluateRequest parsed;
  ASSERT_TRUE(Parse(Serialize(request), &parsed));
  EXPECT_EQ(parsed.SerializeAsString(), request.SerializeAsString());
  EXPECT_FALSE(Parse(BytesBuffer("\x0a\xff\xff\xff\xff\x0f"), &parsed));
}

TEST(ClosedLoopTest, KeepsEverySlotBusyUntilItsCallsRunOut) {
  // Calls that end on another thread a little later; 100 calls in all.
  std::mutex mu;
  int started = 0, outstanding = 0, most_outstanding = 0;
  std::vector<std::thread> threads;
  ClosedLoop loop;
  std::atomic<int> ticks{0};
  loop.Run(
      4,
      [&](int, std::function<void()> done) {
        std::lock_guard<std::mutex> lock(mu);
        if (started == 100) return false;
        ++started;
        most_outstanding = std::max(most_outstanding, ++outstanding);
        threads.emplace_back([&, done] {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          {
            std::lock_guard<std::mutex> lock(mu);
            --outstanding;
          }
          done();
        });
        return true;
      },
      absl::Milliseconds(1), [&] { ++ticks; });
  EXPECT_EQ(started, 100);
  EXPECT_EQ(outstanding, 0);
  EXPECT_EQ(most_outstanding, 4);
  EXPECT_EQ(loop.active(), 0);
  for (std::thread& t : threads) t.join();
}

TEST(CancellerTest, CancelsAtTheTimeGiven) {
  Canceller canceller;
  auto later = std::make_shared<grpc::ClientContext>();
  auto now = std::make_shared<grpc::ClientContext>();
  const absl::Time start = absl::Now();
  canceller.CancelAt(start + absl::Seconds(1), later);
  canceller.CancelAt(start, now);
  // A cancelled context with no call is only observable by its owner: the
  // canceller must have let go of each once it has cancelled it.
  while (now.use_count() > 1 && absl::Now() < start + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(now.use_count(), 1);
  EXPECT_EQ(later.use_count(), 2);
  while (later.use_count() > 1 && absl::Now() < start + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(later.use_count(), 1);
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
}

}  // namespace
}  // namespace actsvc::client
