// The protocol-neutral path without protobuf or gRPC: Validate holds every
// check of SPEC §3 and names fields with the words the protocol gave it;
// Run writes through an OutputSink; DType's switch covers every value.
#include "server/ops.h"

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "core/activation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/compute.h"
#include "server/tensor.h"

namespace actsvc::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A tensor the way a codec reads one: shape and values owned by the test,
// which must outlive the views made of it (as a request outlives its views).
struct Owned {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

TensorArg Arg(const std::string& name, const Owned& t) {
  TensorArg arg;
  arg.name = name;
  arg.declared_elements = DeclaredElements(t.shape);
  absl::StatusOr<TensorView> view =
      TensorView::Make(name, DType::kFloat32, t.shape, t.values.data());
  if (view.ok()) {
    arg.view = *std::move(view);
  } else {
    arg.error = view.status();
  }
  return arg;
}

TensorArg Missing(const std::string& name) {
  TensorArg arg;
  arg.name = name;
  return arg;
}

// Names as another protocol would give them (the KServe style).
FunctionRequest Fn(Function f) {
  FunctionRequest function;
  function.function = static_cast<int>(f);
  function.function_field = "model";
  function.alpha_field = "parameter 'alpha'";
  function.axis_field = "parameter 'axis'";
  return function;
}

template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result,
                   const std::vector<std::string>& substrings,
                   absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), code) << result.status();
  for (const std::string& s : substrings) {
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(s));
  }
}

const Owned kGood{{2, 2}, {1, 2, 3, 4}};

TEST(ValidateTest, FunctionNumberAlphaAndAxisUseTheProtocolsNames) {
  EvaluateRequest request{Fn(Function::kSigmoid), Arg("input 'x'", kGood)};
  request.function.function = 99;
  ExpectInvalid(Validate(request, 0), {"model is 99", "IDENTITY"});
  request.function.function = 0;
  ExpectInvalid(Validate(request, 0), {"model is FUNCTION_UNSPECIFIED"});

  request = {Fn(Function::kLeakyRelu), Arg("input 'x'", kGood)};
  request.function.alpha = std::numeric_limits<double>::infinity();
  ExpectInvalid(Validate(request, 0),
                {"parameter 'alpha' = inf is not finite"});
  request = {Fn(Function::kSigmoid), Arg("input 'x'", kGood)};
  request.function.alpha = 0.5;
  ExpectInvalid(Validate(request, 0),
                {"parameter 'alpha' = 0.5 is set but SIGMOID takes no alpha"});

  request = {Fn(Function::kSoftmax), Arg("input 'x'", kGood)};
  request.function.axis = 2;
  ExpectInvalid(Validate(request, 0),
                {"parameter 'axis' = 2 is out of range for input of rank 2"});
  const Owned scalar{{}, {1}};
  request = {Fn(Function::kSoftmax), Arg("input 'x'", scalar)};
  ExpectInvalid(Validate(request, 0),
                {"input 'x'.shape is [] (a scalar)", "parameter 'axis'"});
}

TEST(ValidateTest, ResolvesDefaultsAndAxis) {
  EvaluateRequest request{Fn(Function::kElu), Arg("x", kGood)};
  absl::StatusOr<EvaluateOp> op = Validate(request, 0);
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_EQ(op->function.alpha, 1.0);
  EXPECT_FALSE(op->axis.has_value());
  request = {Fn(Function::kLogSoftmax), Arg("x", kGood)};
  request.function.axis = -2;
  op = Validate(request, 0);
  ASSERT_TRUE(op.ok()) << op.status();
  ASSERT_TRUE(op->axis.has_value());
  EXPECT_EQ(op->axis->axis, 0);
}

TEST(ValidateTest, MissingAndUnreadableTensors) {
  EvaluateRequest request{Fn(Function::kTanh), Missing("input 'x'")};
  ExpectInvalid(Validate(request, 0), {"input 'x' is missing"});
  const Owned negative{{2, -1}, {}};
  request.x = Arg("input 'x'", negative);
  ExpectInvalid(Validate(request, 0), {"input 'x'.shape[1] = -1 is negative"});
  const Owned huge{{int64_t{1} << 62, 4}, {}};
  request.x = Arg("input 'x'", huge);
  ExpectInvalid(Validate(request, 0), {"byte count overflows int64"});
}

TEST(ValidateTest, ElementLimitComesFirst) {
  // Over the limit and with an unknown function: the size is reported.
  EvaluateRequest request{Fn(Function::kTanh), Arg("x", kGood)};
  request.function.function = 99;
  ExpectInvalid(Validate(request, 3), {"4 elements", "--max_elements"},
                absl::StatusCode::kResourceExhausted);
  ExpectInvalid(Validate(request, 4), {"is 99"});
}

TEST(ValidateTest, DerivativeOrderAndVjp) {
  DerivativeRequest request{Fn(Function::kTanh), 3, Arg("x", kGood),
                            Missing("grad")};
  ExpectInvalid(Validate(request, 0), {"order = 3", "expected 1 or 2"});
  request.order = 0;
  absl::StatusOr<std::variant<DerivativeOp, VjpOp>> op = Validate(request, 0);
  ASSERT_TRUE(op.ok()) << op.status();
  ASSERT_TRUE(std::holds_alternative<DerivativeOp>(*op));
  EXPECT_EQ(std::get<DerivativeOp>(*op).order, 1);

  request.g = Arg("grad", kGood);
  request.order = 2;
  ExpectInvalid(Validate(request, 0), {"grad is set with order = 2"});
  request.order = 1;
  op = Validate(request, 0);
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_TRUE(std::holds_alternative<VjpOp>(*op));

  const Owned flat{{4}, {1, 2, 3, 4}};
  request.g = Arg("grad", flat);
  ExpectInvalid(Validate(request, 0),
                {"grad.shape [4] does not match x.shape [2,2]"});
  request = {Fn(Function::kSoftmax), 1, Arg("x", kGood), Missing("grad")};
  ExpectInvalid(Validate(request, 0), {"grad is missing", "SOFTMAX"});
}

TEST(ValidateTest, Jacobian) {
  const Owned scalar{{}, {1}};
  JacobianRequest request{Fn(Function::kRelu), true, Arg("x", scalar)};
  ExpectInvalid(Validate(request, 0), {"dense = true needs input of rank"});
  request.dense = false;
  EXPECT_TRUE(Validate(request, 0).ok());
}

TEST(ValidateTest, CrossEntropy) {
  const Owned logits{{2, 3}, {1, 2, 3, 4, 5, 6}};
  const std::vector<int64_t> labels = {0, 5};
  CrossEntropyRequest request;
  request.logits = Arg("logits", logits);
  request.target_probs = Missing("target_probs");
  request.class_indices = labels;
  ExpectInvalid(Validate(request, 0),
                {"class_indices[1] = 5 is out of range [0, 3)"});
  request.ignore_index = 5;
  EXPECT_TRUE(Validate(request, 0).ok());
  request.label_smoothing = 1;
  ExpectInvalid(Validate(request, 0), {"label_smoothing = 1"});
  request.label_smoothing = 0;
  request.reduction = absl::InvalidArgumentError("reduction = 9");
  ExpectInvalid(Validate(request, 0), {"reduction = 9"});
  request.reduction = Reduction::kSum;
  request.target_probs = Arg("target_probs", logits);
  ExpectInvalid(Validate(request, 0), {"ignore_index = 5 is set"});
  request.ignore_index.reset();
  absl::StatusOr<CrossEntropyOp> op = Validate(request, 0);
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_EQ(op->rows, 2);
  EXPECT_EQ(op->classes, 3);
  const Owned no_classes{{2, 0}, {}};
  request.logits = Arg("logits", no_classes);
  ExpectInvalid(Validate(request, 0), {"logits.shape [2,0] has 0 classes"});
}

TEST(ValidateTest, Analyze) {
  AnalyzeRequest request{Fn(Function::kSoftmax), 0, std::nullopt,
                         Arg("x", kGood)};
  ExpectInvalid(Validate(request, 0), {"elementwise"});
  request.function = Fn(Function::kTanh);
  request.epsilon = -1;
  ExpectInvalid(Validate(request, 0), {"epsilon = -1"});
  request.epsilon = 0;
  request.layers = -2;
  ExpectInvalid(Validate(request, 0), {"layers = -2"});
  request.layers = 3;
  absl::StatusOr<AnalyzeOp> op = Validate(request, 0);
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_EQ(op->epsilon, 1e-3);
  EXPECT_EQ(op->layers, 3);
}

// Collects outputs in vectors of its own, by role.
class VectorSink final : public OutputSink {
 public:
  void* Allocate(OutputRole role, DType dtype, absl::Span<const int64_t> shape,
                 int64_t elements) override {
    Output& out = outputs[role];
    out.dtype = dtype;
    out.shape.assign(shape.begin(), shape.end());
    out.bytes.assign(elements * DTypeSize(dtype), '\xff');
    return out.bytes.data();
  }
  void Finish() override { ++finished; }

  struct Output {
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::map<OutputRole, Output> outputs;
  int finished = 0;
};

TEST(RunTest, WritesThroughTheSink) {
  const Owned x{{3}, {-1, 0, 2}};
  absl::StatusOr<EvaluateOp> op =
      Validate(EvaluateRequest{Fn(Function::kRelu), Arg("x", x)}, 0);
  ASSERT_TRUE(op.ok());
  VectorSink sink;
  ASSERT_TRUE(server::Run(*op, ComputeContext(), &sink).ok());
  EXPECT_EQ(sink.finished, 1);
  const VectorSink::Output& y = sink.outputs.at(OutputRole::kOutput);
  EXPECT_EQ(y.dtype, DType::kFloat32);
  EXPECT_THAT(y.shape, ElementsAre(3));
  std::vector<float> values(3);
  std::memcpy(values.data(), y.bytes.data(), 12);
  EXPECT_THAT(values, ElementsAre(0, 0, 2));
}

TEST(RunTest, JacobianRolesAndResponseLimit) {
  const Owned x{{2, 3}, {1, 2, 3, 4, 5, 6}};
  absl::StatusOr<JacobianOp> op =
      Validate(JacobianRequest{Fn(Function::kSoftmax), false, Arg("x", x)}, 0);
  ASSERT_TRUE(op.ok());
  VectorSink sink;
  ASSERT_TRUE(server::Run(*op, ComputeContext(), &sink).ok());
  EXPECT_THAT(sink.outputs.at(OutputRole::kJacobianDense).shape,
              ElementsAre(2, 3, 3));
  op = Validate(JacobianRequest{Fn(Function::kGelu), false, Arg("x", x)}, 0);
  VectorSink diagonal;
  ASSERT_TRUE(server::Run(*op, ComputeContext(), &diagonal).ok());
  EXPECT_EQ(diagonal.outputs.count(OutputRole::kJacobianDiagonal), 1u);

  ComputeContext small;
  small.max_message_bytes = 64;
  op = Validate(JacobianRequest{Fn(Function::kSoftmax), false, Arg("x", x)}, 0);
  VectorSink refused;
  const absl::Status status = server::Run(*op, small, &refused);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()), HasSubstr("[2,3,3]"));
  EXPECT_TRUE(refused.outputs.empty());  // refused before any allocation
  EXPECT_EQ(refused.finished, 0);
}

TEST(DTypeTest, EverySwitchKnowsEveryValue) {
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4);
  EXPECT_EQ(DTypeSize(DType::kFloat64), 8);
  EXPECT_EQ(DTypeName(DType::kFloat64), "FLOAT64");
  EXPECT_EQ(VisitDType(DType::kFloat32, [](auto t) { return sizeof(t); }), 4u);
  EXPECT_EQ(VisitDType(DType::kFloat64, [](auto t) { return sizeof(t); }), 8u);
  EXPECT_EQ(kDTypeOf<double>, DType::kFloat64);
}

TEST(DTypeDeathTest, UnknownValueAbortsLoudly) {
  EXPECT_DEATH(DTypeSize(static_cast<DType>(7)), "unknown DType value 7");
}

TEST(TensorViewTest, UnalignedValuesAreCopiedOnce) {
  std::vector<char> bytes(4 * 3 + 1);
  const float values[3] = {1.5f, -2, 3};
  std::memcpy(bytes.data() + 1, values, sizeof(values));
  const std::vector<int64_t> shape = {3};
  absl::StatusOr<TensorView> view =
      TensorView::Make("x", DType::kFloat32, shape, bytes.data() + 1);
  ASSERT_TRUE(view.ok());
  EXPECT_THAT(view->values<float>(), ElementsAre(1.5f, -2, 3));
  // Aligned values are read in place.
  view = TensorView::Make("x", DType::kFloat32, shape, values);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->values<float>().data(), values);
}

}  // namespace
}  // namespace actsvc::server
