// The soak's invalid calls, each with the status SPEC.md §3 gives it:
// INVALID_ARGUMENT for bad specs, tensors, derivatives, Jacobians,
// cross-entropy labels, Analyze parameters and stream messages;
// UNIMPLEMENTED for methods nobody serves; RESOURCE_EXHAUSTED over the
// server's limits.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "bench/soak_table.h"

namespace actsvc::soak {
namespace {

namespace v1 = ::actsvc::v1;

const Fn kGelu{Function::kGelu, std::nullopt, std::nullopt};
const Fn kTanh{Function::kTanh, std::nullopt, std::nullopt};
const Fn kSoftmax{Function::kSoftmax, std::nullopt, std::nullopt};

// Bytes that are no message of the service: a length that runs past the
// end.
constexpr absl::string_view kGarbage = "\x0a\xff\xff\xff\xff\x0f garbage";

v1::EvaluateRequest Evaluate(const v1::FunctionSpec& spec,
                             const v1::Tensor& input) {
  v1::EvaluateRequest r;
  *r.mutable_spec() = spec;
  *r.mutable_input() = input;
  return r;
}

// A tensor with a shape and a dtype but no data.
v1::Tensor ShapeOnly(std::vector<int64_t> shape, v1::DataType dtype) {
  v1::Tensor t;
  t.mutable_shape()->Add(shape.begin(), shape.end());
  t.set_dtype(dtype);
  return t;
}

}  // namespace

void TableBuilder::AddInvalidSpec() {
  const v1::Tensor x = MakeInput({3, 5}, v1::FLOAT32, Encoding::kRaw).Tensor();
  auto add = [&](std::string name, const v1::FunctionSpec& spec) {
    AddInvalidArgument(absl::StrCat("evaluate/", name), "Evaluate",
                       Evaluate(spec, x));
  };
  add("function_unspecified", v1::FunctionSpec());
  add("function_99", Fn{static_cast<Function>(99), {}, {}}.Spec());
  v1::EvaluateRequest no_spec;
  *no_spec.mutable_input() = x;
  AddInvalidArgument("evaluate/spec_missing", "Evaluate", no_spec);
  v1::EvaluateRequest no_input;
  *no_input.mutable_spec() = kGelu.Spec();
  AddInvalidArgument("evaluate/input_missing", "Evaluate", no_input);
  add("alpha_nan", Fn{Function::kLeakyRelu, std::nan(""), {}}.Spec());
  add("alpha_inf",
      Fn{Function::kElu, std::numeric_limits<double>::infinity(), {}}.Spec());
  add("alpha_on_sigmoid", Fn{Function::kSigmoid, 0.5, {}}.Spec());
  add("softmax_axis_2_of_rank_2", Fn{Function::kSoftmax, {}, 2}.Spec());
  add("log_softmax_axis_-3_of_rank_2",
      Fn{Function::kLogSoftmax, {}, -3}.Spec());
  AddInvalidArgument(
      "evaluate/softmax_of_scalar", "Evaluate",
      Evaluate(kSoftmax.Spec(),
               MakeInput({}, v1::FLOAT64, Encoding::kRaw).Tensor()));
}

void TableBuilder::AddInvalidTensor() {
  const v1::Tensor raw =
      MakeInput({3, 5}, v1::FLOAT32, Encoding::kRaw).Tensor();
  const v1::Tensor typed =
      MakeInput({3, 5}, v1::FLOAT32, Encoding::kTyped).Tensor();
  // Each case edits a copy of one of the two.
  auto add = [&](std::string name, const v1::Tensor& from, auto edit) {
    v1::Tensor t = from;
    edit(&t);
    AddInvalidArgument(absl::StrCat("evaluate/", name), "Evaluate",
                       Evaluate(kGelu.Spec(), t));
  };
  add("dtype_unspecified", raw,
      [](v1::Tensor* t) { t->set_dtype(v1::DATA_TYPE_UNSPECIFIED); });
  add("dtype_7", raw,
      [](v1::Tensor* t) { t->set_dtype(static_cast<v1::DataType>(7)); });
  add("negative_dim", raw, [](v1::Tensor* t) { t->set_shape(0, -3); });
  add("negative_dim_and_huge_dim", raw, [](v1::Tensor* t) {
    t->clear_shape();
    t->add_shape(-1);
    t->add_shape(int64_t{1} << 40);
  });
  add("raw_bytes_short", raw,
      [](v1::Tensor* t) { t->mutable_raw_data()->resize(14 * 4); });
  add("raw_bytes_ragged", raw,
      [](v1::Tensor* t) { t->mutable_raw_data()->resize(15 * 4 + 3); });
  // 60 bytes: 7.5 doubles.
  add("raw_bytes_for_other_dtype", raw,
      [](v1::Tensor* t) { t->set_dtype(v1::FLOAT64); });
  add("typed_count_short", typed,
      [](v1::Tensor* t) { t->mutable_float_data()->RemoveLast(); });
  add("typed_count_long", typed, [](v1::Tensor* t) { t->add_float_data(1); });
  add("float_data_for_float64", typed,
      [](v1::Tensor* t) { t->set_dtype(v1::FLOAT64); });
  add("raw_and_float_data", raw, [](v1::Tensor* t) { t->add_float_data(1); });
  add("no_data", raw, [](v1::Tensor* t) { t->clear_raw_data(); });
  AddRaw("evaluate/unparsable", "Evaluate invalid", Method("Evaluate"),
         client::BytesBuffer(kGarbage), Code::INVALID_ARGUMENT);
}

void TableBuilder::AddInvalidDerivative() {
  const v1::Tensor x = MakeInput({3, 5}, v1::FLOAT32, Encoding::kRaw).Tensor();
  const v1::Tensor g =
      MakeInput({3, 5}, v1::FLOAT32, Encoding::kTyped).Tensor();
  auto derivative = [&](const Fn& fn, int order, const v1::Tensor* upstream) {
    v1::DerivativeRequest r;
    *r.mutable_spec() = fn.Spec();
    *r.mutable_input() = x;
    r.set_order(order);
    if (upstream) *r.mutable_upstream_grad() = *upstream;
    return r;
  };
  auto add = [&](std::string name, const v1::DerivativeRequest& r) {
    AddInvalidArgument(absl::StrCat("derivative/", name), "Derivative", r);
  };
  add("order_3", derivative(kTanh, 3, nullptr));
  add("order_-1", derivative(kTanh, -1, nullptr));
  add("vjp_with_order_2", derivative(kTanh, 2, &g));
  add("softmax_without_upstream", derivative(kSoftmax, 1, nullptr));
  add("log_softmax_order_2_without_upstream",
      derivative(Fn{Function::kLogSoftmax, {}, {}}, 2, nullptr));
  v1::Tensor gt = MakeInput({5, 3}, v1::FLOAT32, Encoding::kRaw).Tensor();
  add("upstream_shape_mismatch", derivative(kTanh, 1, &gt));
  gt = MakeInput({3, 5}, v1::FLOAT64, Encoding::kRaw).Tensor();
  add("upstream_dtype_mismatch", derivative(kSoftmax, 1, &gt));
  gt = g;
  gt.mutable_float_data()->RemoveLast();
  add("upstream_count_mismatch", derivative(kTanh, 1, &gt));
  v1::DerivativeRequest r = derivative(kTanh, 1, nullptr);
  r.clear_input();
  add("input_missing", r);
  add("softmax_vjp_axis_5", derivative(Fn{Function::kSoftmax, {}, 5}, 1, &g));
}

void TableBuilder::AddInvalidJacobian() {
  const v1::Tensor x = MakeInput({3, 5}, v1::FLOAT32, Encoding::kRaw).Tensor();
  auto add = [&](std::string name, const Fn& fn, const v1::Tensor& in,
                 bool dense) {
    v1::JacobianRequest r;
    *r.mutable_spec() = fn.Spec();
    *r.mutable_input() = in;
    r.set_dense(dense);
    AddInvalidArgument(absl::StrCat("jacobian/", name), "Jacobian", r);
  };
  add("dense_of_scalar", kGelu,
      MakeInput({}, v1::FLOAT32, Encoding::kRaw).Tensor(), true);
  add("softmax_axis_-3_of_rank_2", Fn{Function::kSoftmax, {}, -3}, x, false);
  add("function_99", Fn{static_cast<Function>(99), {}, {}}, x, false);
  v1::Tensor short_raw = x;
  short_raw.mutable_raw_data()->resize(16);
  add("raw_bytes_short", kSoftmax, short_raw, true);
}

void TableBuilder::AddInvalidCrossEntropy() {
  AddInvalidCrossEntropyLabels();
  // Logits [4, 3] with labels that fit, and something else wrong.
  const v1::Tensor logits =
      MakeInput({4, 3}, v1::FLOAT32, Encoding::kRaw).Tensor();
  v1::SoftmaxCrossEntropyRequest good;
  *good.mutable_logits() = logits;
  for (int64_t label : {0, 1, 2, 0}) good.add_class_indices(label);
  auto add = [&](std::string name, const v1::SoftmaxCrossEntropyRequest& r) {
    AddInvalidArgument(absl::StrCat("xent/", name), "SoftmaxCrossEntropy", r);
  };
  v1::SoftmaxCrossEntropyRequest r = good;
  for (double smoothing : {1.0, -0.1}) {
    r.set_label_smoothing(smoothing);
    add(absl::StrCat("smoothing_", smoothing), r);
  }
  r.set_label_smoothing(std::nan(""));
  add("smoothing_nan", r);
  r = good;
  r.clear_class_indices();
  *r.mutable_target_probs() =
      MakeInput({4, 2}, v1::FLOAT32, Encoding::kRaw).Tensor();
  add("target_probs_shape_mismatch", r);
  *r.mutable_target_probs() =
      MakeInput({4, 3}, v1::FLOAT64, Encoding::kRaw).Tensor();
  add("target_probs_dtype_mismatch", r);
  *r.mutable_target_probs() =
      MakeInput({4, 3}, v1::FLOAT32, Encoding::kRaw).Tensor();
  r.set_ignore_index(0);
  add("ignore_index_with_target_probs", r);
  r = good;
  r.clear_class_indices();
  r.add_class_indices(0);
  *r.mutable_logits() = MakeInput({}, v1::FLOAT32, Encoding::kRaw).Tensor();
  add("scalar_logits", r);
  r.add_class_indices(0);
  r.add_class_indices(0);
  *r.mutable_logits() = MakeInput({3, 0}, v1::FLOAT64, Encoding::kRaw).Tensor();
  add("zero_classes", r);
  r = good;
  r.clear_logits();
  add("logits_missing", r);
  r = good;
  r.set_reduction(static_cast<v1::SoftmaxCrossEntropyRequest::Reduction>(5));
  add("reduction_5", r);
}

void TableBuilder::AddInvalidCrossEntropyLabels() {
  const v1::Tensor logits =
      MakeInput({4, 3}, v1::FLOAT32, Encoding::kRaw).Tensor();
  auto add = [&](std::string name, std::vector<int64_t> labels,
                 std::optional<int64_t> ignore_index = std::nullopt) {
    v1::SoftmaxCrossEntropyRequest r;
    *r.mutable_logits() = logits;
    r.mutable_class_indices()->Add(labels.begin(), labels.end());
    if (ignore_index) r.set_ignore_index(*ignore_index);
    AddInvalidArgument(absl::StrCat("xent/", name), "SoftmaxCrossEntropy", r);
  };
  add("label_equal_to_classes", {0, 1, 3, 2});
  add("label_negative", {0, -1, 1, 2});
  add("label_out_of_range_with_ignore_index", {0, -100, 1, 5}, -100);
  add("three_labels_for_four_rows", {0, 1, 2});
  add("no_labels", {});
}

void TableBuilder::AddInvalidAnalyze() {
  const v1::Tensor x = MakeInput({3, 5}, v1::FLOAT32, Encoding::kRaw).Tensor();
  auto analyze = [&](const Fn& fn) {
    v1::AnalyzeRequest a;
    *a.mutable_spec() = fn.Spec();
    *a.mutable_input() = x;
    return a;
  };
  auto add = [&](std::string name, const v1::AnalyzeRequest& a) {
    AddInvalidArgument(absl::StrCat("analyze/", name), "Analyze", a);
  };
  add("softmax", analyze(kSoftmax));
  add("function_unspecified", analyze(Fn{static_cast<Function>(0), {}, {}}));
  v1::AnalyzeRequest a = analyze(kGelu);
  a.set_epsilon(-1);
  add("epsilon_-1", a);
  a.set_epsilon(std::nan(""));
  add("epsilon_nan", a);
  a = analyze(kGelu);
  a.set_layers(-2);
  add("layers_-2", a);
  a = analyze(kGelu);
  a.clear_input();
  add("input_missing", a);
}

void TableBuilder::AddUnknownMethods() {
  const v1::EvaluateRequest r = Evaluate(
      kGelu.Spec(), MakeInput({3, 5}, v1::FLOAT32, Encoding::kRaw).Tensor());
  for (const std::string method :
       {"/actsvc.v1.ActivationService/Softmax",
        "/actsvc.v2.ActivationService/Evaluate", "/no.Such/Method"}) {
    AddRaw(absl::StrCat("unknown_method", method), "Unknown method", method,
           client::Serialize(r), Code::UNIMPLEMENTED);
  }
}

void TableBuilder::AddInvalidStream() {
  const Fn sigmoid{Function::kSigmoid, std::nullopt, std::nullopt};
  v1::StreamRequest bad_order;
  *bad_order.mutable_derivative()->mutable_spec() = kTanh.Spec();
  *bad_order.mutable_derivative()->mutable_input() =
      MakeInput({4}, v1::FLOAT32, Encoding::kRaw).Tensor();
  bad_order.mutable_derivative()->set_order(3);
  AddStreamCase(
      "bad_third", "Stream invalid",
      {StreamEvaluate(kGelu, MakeInput({8}, v1::FLOAT32, Encoding::kRaw)),
       StreamDerivative(kTanh, 1,
                        MakeInput({2, 2}, v1::FLOAT64, Encoding::kTyped)),
       StreamBad(bad_order, "order3"),
       StreamEvaluate(kGelu, MakeInput({8}, v1::FLOAT32, Encoding::kRaw))},
      {Code::INVALID_ARGUMENT});
  AddStreamCase("unset_request", "Stream invalid",
                {StreamBad(v1::StreamRequest(), "unset")},
                {Code::INVALID_ARGUMENT});
  v1::StreamRequest softmax_no_g;
  *softmax_no_g.mutable_derivative()->mutable_spec() =
      Fn{Function::kSoftmax, std::nullopt, -1}.Spec();
  *softmax_no_g.mutable_derivative()->mutable_input() =
      MakeInput({2, 3}, v1::FLOAT32, Encoding::kRaw).Tensor();
  AddStreamCase("softmax_derivative_without_upstream", "Stream invalid",
                {StreamBad(softmax_no_g, "softmax_no_g")},
                {Code::INVALID_ARGUMENT});
  v1::StreamRequest unknown;
  unknown.mutable_evaluate()->mutable_spec()->set_function(
      static_cast<v1::Function>(99));
  *unknown.mutable_evaluate()->mutable_input() =
      MakeInput({3}, v1::FLOAT64, Encoding::kRaw).Tensor();
  AddStreamCase(
      "unknown_function", "Stream invalid",
      {StreamEvaluate(sigmoid, MakeInput({3}, v1::FLOAT64, Encoding::kRaw)),
       StreamBad(unknown, "function99")},
      {Code::INVALID_ARGUMENT});
  // Bytes that are no StreamRequest, after a good message.
  AddStreamCase(
      "unparsable_second", "Stream invalid",
      {StreamEvaluate(kGelu, MakeInput({4}, v1::FLOAT32, Encoding::kRaw)),
       StreamBad(v1::StreamRequest(), "unparsable")},
      {Code::INVALID_ARGUMENT})
      .messages.back() = client::BytesBuffer(kGarbage);
  v1::StreamRequest over;
  *over.mutable_evaluate()->mutable_spec() = kGelu.Spec();
  *over.mutable_evaluate()->mutable_input() =
      ShapeOnly({limits_.max_elements + 1}, v1::FLOAT32);
  AddStreamCase(
      "over_max_elements", "Stream limit",
      {StreamEvaluate(kGelu, MakeInput({8}, v1::FLOAT32, Encoding::kTyped)),
       StreamBad(over, "over_max_elements")},
      {Code::RESOURCE_EXHAUSTED});
}

// Requests over --max_elements, dense Jacobians over --max_message_mb:
// RESOURCE_EXHAUSTED.
void TableBuilder::AddLimits() {
  const int64_t over = limits_.max_elements + 1;
  auto add = [&](std::string name, absl::string_view rpc,
                 const google::protobuf::Message& request, int weight = 10) {
    AddUnary(std::move(name), absl::StrCat(rpc, " limit"), rpc, request,
             {Code::RESOURCE_EXHAUSTED}, nullptr, weight);
  };
  v1::EvaluateRequest e =
      Evaluate(kGelu.Spec(), ShapeOnly({over}, v1::FLOAT32));
  add(absl::StrCat("evaluate/over_max_elements/shape_only/[", over, "]"),
      "Evaluate", e);
  // The whole tensor sent: the server reads it all before refusing it.
  *e.mutable_input() = MakeInput({over}, v1::FLOAT32, Encoding::kRaw).Tensor();
  add(absl::StrCat("evaluate/over_max_elements/f32/raw/[", over, "]"),
      "Evaluate", e, 1);
  // No tensor has a shape whose element count overflows int64: invalid,
  // not over the limit (validation names input.shape).
  *e.mutable_input() =
      ShapeOnly({int64_t{1} << 40, int64_t{1} << 40}, v1::FLOAT64);
  AddUnary("evaluate/element_count_overflows", "Evaluate invalid", "Evaluate",
           e, {Code::INVALID_ARGUMENT}, nullptr, 10);

  v1::DerivativeRequest d;
  *d.mutable_spec() = kGelu.Spec();
  *d.mutable_input() = ShapeOnly({2, over / 2 + 1}, v1::FLOAT64);
  d.set_order(2);
  add("derivative/over_max_elements/shape_only", "Derivative", d);
  AddJacobianLimits();
  v1::SoftmaxCrossEntropyRequest x;
  *x.mutable_logits() = ShapeOnly({over, 1}, v1::FLOAT32);
  add("xent/over_max_elements/shape_only", "SoftmaxCrossEntropy", x);
  v1::AnalyzeRequest a;
  *a.mutable_spec() = kGelu.Spec();
  *a.mutable_input() = ShapeOnly({1, over}, v1::FLOAT64);
  add("analyze/over_max_elements/shape_only", "Analyze", a);
}

void TableBuilder::AddJacobianLimits() {
  auto add = [&](std::string name, const v1::JacobianRequest& r) {
    AddUnary(std::move(name), "Jacobian limit", "Jacobian", r,
             {Code::RESOURCE_EXHAUSTED});
  };
  v1::JacobianRequest j;
  *j.mutable_spec() = kGelu.Spec();
  *j.mutable_input() = ShapeOnly({limits_.max_elements + 1}, v1::FLOAT32);
  add("jacobian/over_max_elements/shape_only", j);
  // Dense Jacobians whose response would exceed --max_message_mb: c^2
  // values per row of c, so a small request.
  const int64_t c =
      static_cast<int64_t>(std::sqrt(limits_.max_message_bytes / 8.0)) + 8;
  *j.mutable_spec() = kSoftmax.Spec();
  *j.mutable_input() = MakeInput({1, c}, v1::FLOAT64, Encoding::kRaw).Tensor();
  add(absl::StrCat("jacobian/dense_over_max_message/softmax/f64/[1,", c, "]"),
      j);
  const int64_t c32 =
      static_cast<int64_t>(std::sqrt(limits_.max_message_bytes / 4.0 / 2)) + 8;
  *j.mutable_spec() = kGelu.Spec();
  *j.mutable_input() =
      MakeInput({2, c32}, v1::FLOAT32, Encoding::kTyped).Tensor();
  j.set_dense(true);
  add(absl::StrCat("jacobian/dense_over_max_message/gelu/f32/[2,", c32, "]"),
      j);
}

}  // namespace actsvc::soak
