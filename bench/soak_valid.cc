// The soak's valid calls: every RPC over the functions, dtypes, encodings
// and shapes in turn, each answer checked against the client's core.
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/soak_table.h"
#include "grpc/health/v1/health.pb.h"

namespace actsvc::soak {

namespace v1 = ::actsvc::v1;

void TableBuilder::AddEvaluate() {
  for (Function f : AllFunctions()) {
    for (size_t v = 0; v < 4; ++v) {
      Fn fn;
      const Input in = TurnInput(f, v, v + static_cast<size_t>(f), v == 0, &fn);
      v1::EvaluateRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = in.Tensor();
      AddValid(absl::StrCat("evaluate/", fn.Name(), "/", in.Tag()), "Evaluate",
               r, CheckOutput<v1::EvaluateResponse>(in.Like(Forward(fn, in))));
    }
  }
}

void TableBuilder::AddDerivative() {
  size_t turn = 0;
  for (Function f : Elementwise()) {
    // f' and f'' (order 0 means 1), then the VJP.
    for (int order : {1, 2, 0}) {
      ++turn;
      Fn fn;
      const Input in = TurnInput(f, turn, turn, turn % 3 == 0, &fn);
      v1::DerivativeRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = in.Tensor();
      if (order != 1) r.set_order(order);
      AddValid(absl::StrCat("derivative/", fn.Name(), "/order", order, "/",
                            in.Tag()),
               "Derivative", r,
               CheckOutput<v1::DerivativeResponse>(
                   in.Like(Derivative(fn, order == 0 ? 1 : order, in))));
    }
  }
  AddVjp(&turn);
}

void TableBuilder::AddVjp(size_t* turn) {
  for (Function f : AllFunctions()) {
    const int times = actsvc::IsElementwise(f) ? 1 : 4;
    for (int i = 0; i < times; ++i) {
      const size_t t = ++*turn;
      Fn fn;
      const Input in = TurnInput(f, t, t, t % 5 == 0, &fn);
      // The upstream gradient's encoding is free: sometimes the other one.
      const Encoding other =
          in.encoding == Encoding::kRaw ? Encoding::kTyped : Encoding::kRaw;
      const Input g{in.shape, in.dtype, t % 3 == 0 ? other : in.encoding,
                    Values(in.values.size(), in.dtype, false, -1, 1)};
      v1::DerivativeRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = in.Tensor();
      *r.mutable_upstream_grad() = g.Tensor();
      if (t % 2 == 0) r.set_order(1);
      AddValid(absl::StrCat("vjp/", fn.Name(), "/", in.Tag(), "/g_",
                            EncodingTag(g.encoding)),
               "Derivative", r,
               CheckOutput<v1::DerivativeResponse>(in.Like(Vjp(fn, in, g))));
    }
  }
}

void TableBuilder::AddJacobian() {
  size_t turn = 0;
  for (Function f : Elementwise()) {
    ++turn;
    Fn fn;
    const Input in = TurnInput(f, turn, turn, turn % 4 == 0, &fn);
    v1::JacobianRequest r;
    *r.mutable_spec() = fn.Spec();
    *r.mutable_input() = in.Tensor();
    AddValid(absl::StrCat("jacobian/diagonal/", fn.Name(), "/", in.Tag()),
             "Jacobian", r,
             CheckOutput<v1::JacobianResponse>(in.Like(Derivative(fn, 1, in)),
                                               /*diagonal=*/true));
  }
  AddDenseJacobian(&turn);
}

void TableBuilder::AddDenseJacobian(size_t* turn) {
  struct Dense {
    Function f;
    std::vector<int64_t> shape;
    std::optional<int> axis;
  };
  const std::vector<Dense> dense = {
      {Function::kGelu, {3, 5}, std::nullopt},
      {Function::kTanh, {2, 2, 4}, std::nullopt},
      {Function::kRelu, {1}, std::nullopt},
      {Function::kLeakyRelu, {0, 3}, std::nullopt},
      {Function::kSilu, {4, 0}, std::nullopt},
      {Function::kSoftmax, {3, 5}, std::nullopt},
      {Function::kSoftmax, {2, 3, 4}, 1},
      {Function::kSoftmax, {4, 6}, 0},
      {Function::kSoftmax, {2, 0}, -1},
      {Function::kLogSoftmax, {3, 5}, -1},
      {Function::kLogSoftmax, {2, 3, 4}, -3},
      {Function::kLogSoftmax, {64}, std::nullopt},
  };
  for (const Dense& d : dense) {
    const size_t t = ++*turn;
    const auto [dtype, encoding] = Variant(t);
    const Fn fn{d.f, std::nullopt, d.axis};
    const Input in = MakeInput(d.shape, dtype, encoding, t % 4 == 0);
    v1::JacobianRequest r;
    *r.mutable_spec() = fn.Spec();
    *r.mutable_input() = in.Tensor();
    // Ignored by softmax and log_softmax: set for some, not others.
    r.set_dense(actsvc::IsElementwise(d.f) || t % 2 == 0);
    AddValid(absl::StrCat("jacobian/dense/", fn.Name(), "/", in.Tag()),
             "Jacobian", r,
             CheckOutput<v1::JacobianResponse>(in.Like(DenseJacobian(fn, in))));
  }
}

// Softmax cross-entropy, answered by the core's CrossEntropyRows.
struct TableBuilder::Xent {
  std::vector<int64_t> shape;
  v1::DataType dtype;
  Encoding encoding;
  v1::SoftmaxCrossEntropyRequest::Reduction reduction;
  double smoothing = 0;
  std::optional<int64_t> ignore_index = std::nullopt;
  std::vector<int> ignored_rows = {};  // labelled with ignore_index
  bool target_probs = false;
  bool probabilities = false;
};

void TableBuilder::AddCrossEntropy() {
  using R = v1::SoftmaxCrossEntropyRequest;
  const std::vector<Xent> table = {
      {{8, 10}, v1::FLOAT32, Encoding::kRaw, R::MEAN},
      {{8, 10}, v1::FLOAT64, Encoding::kTyped, R::SUM},
      {{2, 3, 5}, v1::FLOAT32, Encoding::kTyped, R::NONE},
      {{6, 4}, v1::FLOAT64, Encoding::kRaw, R::MEAN, 0.1},
      {{6, 4}, v1::FLOAT32, Encoding::kRaw, R::MEAN, 0, -100, {1, 4}},
      {{5, 3}, v1::FLOAT64, Encoding::kRaw, R::NONE, 0, 1, {0, 2}},
      {{5, 3}, v1::FLOAT32, Encoding::kTyped, R::SUM, 0.3, 7, {3}},
      {{4, 7}, v1::FLOAT32, Encoding::kRaw, R::MEAN, 0, {}, {}, true, true},
      {{3, 5}, v1::FLOAT64, Encoding::kTyped, R::SUM, 0.2, {}, {}, true},
      {{2, 2, 3}, v1::FLOAT32, Encoding::kTyped, R::NONE, 0, {}, {}, true},
      {{1, 1}, v1::FLOAT32, Encoding::kRaw, R::MEAN},
      {{0, 4}, v1::FLOAT32, Encoding::kRaw, R::MEAN},
      {{0, 4}, v1::FLOAT64, Encoding::kTyped, R::NONE},
      {{3, 4}, v1::FLOAT64, Encoding::kRaw, R::MEAN, 0, -1, {0, 1, 2}},
      {{4, 6}, v1::FLOAT64, Encoding::kRaw, R::NONE, 0, {}, {}, false, true},
      {{10}, v1::FLOAT64, Encoding::kRaw, R::MEAN, 0.05},
      {{33, 130}, v1::FLOAT32, Encoding::kRaw, R::MEAN, 0.1, -100, {5}},
  };
  for (const Xent& x : table) AddCrossEntropyCase(x);
}

namespace {

Reduction ReductionOf(v1::SoftmaxCrossEntropyRequest::Reduction r) {
  switch (r) {
    case v1::SoftmaxCrossEntropyRequest::SUM:
      return Reduction::kSum;
    case v1::SoftmaxCrossEntropyRequest::NONE:
      return Reduction::kNone;
    default:
      return Reduction::kMean;
  }
}

// Rows of `probs` ([rows, c]) scaled to sum to 1, rounded to `dtype`.
void Normalize(int64_t c, v1::DataType dtype, std::vector<double>* probs) {
  for (size_t row = 0; c > 0 && row < probs->size() / c; ++row) {
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += (*probs)[row * c + j];
    for (int64_t j = 0; j < c; ++j) {
      double& p = (*probs)[row * c + j];
      p = client::RoundToDtype(p / sum, dtype);
    }
  }
}

// The loss, grad_logits and probabilities of a response.
Check CheckCrossEntropy(client::Want loss, client::Want grad,
                        std::optional<client::Want> probs) {
  return [loss = std::move(loss), grad = std::move(grad),
          probs = std::move(probs)](const grpc::ByteBuffer& bytes) {
    v1::SoftmaxCrossEntropyResponse r;
    if (!client::Parse(bytes, &r)) {
      return std::string("unparsable SoftmaxCrossEntropyResponse");
    }
    std::string wrong = CheckField(r.loss(), loss, "loss");
    if (wrong.empty()) wrong = CheckField(r.grad_logits(), grad, "grad_logits");
    if (wrong.empty() && probs) {
      wrong = CheckField(r.probabilities(), *probs, "probabilities");
    }
    if (wrong.empty() && !probs && r.has_probabilities()) {
      wrong = "probabilities were not asked for";
    }
    return wrong;
  };
}

}  // namespace

void TableBuilder::AddCrossEntropyCase(const Xent& x) {
  const int64_t c = x.shape.back();
  const Input logits = MakeInput(x.shape, x.dtype, x.encoding, false);
  client::CrossEntropyInput in;
  in.logits = logits.AsValues();
  in.options.label_smoothing = x.smoothing;
  in.options.ignore_index = x.ignore_index;
  in.reduction = ReductionOf(x.reduction);
  in.probabilities = x.probabilities;
  v1::SoftmaxCrossEntropyRequest r;
  *r.mutable_logits() = logits.Tensor();
  r.set_reduction(x.reduction);
  r.set_label_smoothing(x.smoothing);
  r.set_return_probabilities(x.probabilities);
  if (x.target_probs) {
    in.target_probs = Values(logits.values.size(), x.dtype, false, 0, 1);
    Normalize(c, x.dtype, &in.target_probs);
    // Its encoding is free: the other one than the logits'.
    *r.mutable_target_probs() = client::MakeTensor(
        x.shape, x.dtype, in.target_probs,
        x.encoding == Encoding::kRaw ? Encoding::kTyped : Encoding::kRaw);
  } else {
    std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(c - 1, 0));
    in.class_indices.resize(c == 0 ? 0 : logits.values.size() / c);
    for (int64_t& l : in.class_indices) l = dist(rng_);
    for (int row : x.ignored_rows) in.class_indices[row] = *x.ignore_index;
    r.mutable_class_indices()->Add(in.class_indices.begin(),
                                   in.class_indices.end());
    if (x.ignore_index) r.set_ignore_index(*x.ignore_index);
  }
  client::CrossEntropyAnswer want = *client::ExpectedCrossEntropy(in);
  std::optional<client::Want> probs;
  if (x.probabilities) probs = logits.Like(std::move(want.probabilities));
  std::string name = absl::StrCat(
      "xent/", v1::SoftmaxCrossEntropyRequest::Reduction_Name(x.reduction), "/",
      logits.Tag(), x.target_probs ? "/target_probs" : "/indices");
  if (x.smoothing != 0) absl::StrAppend(&name, "/smoothing", x.smoothing);
  if (x.ignore_index) absl::StrAppend(&name, "/ignore", *x.ignore_index);
  if (x.probabilities) absl::StrAppend(&name, "/probabilities");
  AddValid(std::move(name), "SoftmaxCrossEntropy", r,
           CheckCrossEntropy(logits.Like(std::move(want.loss)),
                             logits.Like(std::move(want.grad_logits)),
                             std::move(probs)));
}

namespace {

// An AnalyzeResponse against the client's statistics.
std::string CompareAnalysis(const v1::AnalyzeResponse& r,
                            const GradientFlowReport& want) {
  const std::pair<int64_t, int64_t> counts[] = {
      {r.units(), want.units},
      {r.nan_count(), want.nan_units},
      {r.zero_outputs(), want.zero_outputs},
      {r.saturated_units(), want.saturated},
      {r.dead_units(), want.dead}};
  for (const auto& [got, expected] : counts) {
    if (got != expected) {
      return absl::StrCat(
          "counts (units, nan, zero, saturated, dead) ", r.units(), ", ",
          r.nan_count(), ", ", r.zero_outputs(), ", ", r.saturated_units(),
          ", ", r.dead_units(), "; expected ", want.units, ", ", want.nan_units,
          ", ", want.zero_outputs, ", ", want.saturated, ", ", want.dead);
    }
  }
  const std::pair<double, double> stats[] = {
      {r.sparsity(), want.sparsity},
      {r.min_derivative(), want.min_derivative},
      {r.max_derivative(), want.max_derivative},
      {r.mean_derivative(), want.mean_derivative},
      {r.mean_abs_derivative(), want.mean_abs_derivative},
      {r.max_abs_derivative(), want.max_abs_derivative}};
  for (const auto& [got, expected] : stats) {
    if (!client::Close(got, expected, v1::FLOAT64)) {
      return absl::StrFormat(
          "statistic %.17g, expected %.17g (sparsity, min, max, mean, "
          "mean |f'|, max |f'|)",
          got, expected);
    }
  }
  if (r.has_attenuation() != want.attenuation.has_value() ||
      (want.attenuation &&
       !client::Close(r.attenuation(), *want.attenuation, v1::FLOAT64))) {
    return absl::StrCat(
        "attenuation ",
        r.has_attenuation() ? absl::StrCat(r.attenuation()) : "unset",
        ", expected ",
        want.attenuation ? absl::StrCat(*want.attenuation) : "unset");
  }
  return "";
}

}  // namespace

void TableBuilder::AddAnalyze() {
  size_t turn = 0;
  for (Function f : Elementwise()) {
    ++turn;
    Fn fn;
    const Input in =
        TurnInput(f, turn, turn, turn % 3 == 0, &fn,
                  turn % 4 == 1 ? std::optional(std::vector<int64_t>{1000})
                                : std::nullopt);
    const double epsilon = turn % 2 == 0 ? 0.01 * turn : 0;
    const std::optional<int> layers =
        turn % 3 == 1 ? std::nullopt : std::optional<int>(turn % 5 * 2);
    v1::AnalyzeRequest r;
    *r.mutable_spec() = fn.Spec();
    *r.mutable_input() = in.Tensor();
    if (epsilon != 0) r.set_epsilon(epsilon);
    if (layers) r.set_layers(*layers);
    const GradientFlowReport want =
        client::ExpectedAnalysis(fn.Spec(), epsilon, layers, in.AsValues());
    AddValid(absl::StrCat("analyze/", fn.Name(), "/", in.Tag(), "/eps", epsilon,
                          layers ? absl::StrCat("/L", *layers) : ""),
             "Analyze", r, [want](const grpc::ByteBuffer& bytes) {
               v1::AnalyzeResponse r;
               if (!client::Parse(bytes, &r)) {
                 return std::string("unparsable AnalyzeResponse");
               }
               return CompareAnalysis(r, want);
             });
  }
}

void TableBuilder::AddListFunctionsAndHealth() {
  AddValid("listfunctions", "ListFunctions", v1::ListFunctionsRequest(),
           [](const grpc::ByteBuffer& bytes) {
             v1::ListFunctionsResponse r;
             if (!client::Parse(bytes, &r)) {
               return std::string("unparsable ListFunctionsResponse");
             }
             const std::vector<Function> all = AllFunctions();
             if (r.functions_size() != static_cast<int>(all.size())) {
               return absl::StrCat(r.functions_size(), " functions, expected ",
                                   all.size());
             }
             for (size_t i = 0; i < all.size(); ++i) {
               const v1::FunctionInfo& info = r.functions(static_cast<int>(i));
               if (info.name() != actsvc::FunctionName(all[i]) ||
                   info.function() != static_cast<int>(all[i]) ||
                   info.elementwise() != actsvc::IsElementwise(all[i])) {
                 return absl::StrCat("functions[", i, "] is ", info.name(),
                                     ", expected ",
                                     actsvc::FunctionName(all[i]));
               }
             }
             return std::string();
           });
  // The garbage does not parse as a ListFunctionsRequest.
  AddRaw("listfunctions/unparsable", "ListFunctions invalid",
         Method("ListFunctions"), client::BytesBuffer("\xff\xff\xff"),
         Code::INVALID_ARGUMENT);
  AddHealth();
}

void TableBuilder::AddHealth() {
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  const std::string check = "/grpc.health.v1.Health/Check";
  for (const std::string service : {"", "actsvc.v1.ActivationService"}) {
    HealthCheckRequest r;
    r.set_service(service);
    Case& c = AddRaw(absl::StrCat("health/check/\"", service, "\""),
                     "Health valid", check, client::Serialize(r), Code::OK);
    c.checks.push_back([](const grpc::ByteBuffer& bytes) {
      HealthCheckResponse r;
      if (!client::Parse(bytes, &r)) {
        return std::string("unparsable health answer");
      }
      if (r.status() != HealthCheckResponse::SERVING) {
        return absl::StrCat("status ",
                            HealthCheckResponse::ServingStatus_Name(r.status()),
                            ", expected SERVING");
      }
      return std::string();
    });
  }
  HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  AddRaw("health/check/unknown_service", "Health invalid", check,
         client::Serialize(unknown), Code::NOT_FOUND);
}

void TableBuilder::AddStream() {
  const Fn gelu{Function::kGelu, std::nullopt, std::nullopt};
  const Fn tanh{Function::kTanh, std::nullopt, std::nullopt};
  const Fn sigmoid{Function::kSigmoid, std::nullopt, std::nullopt};
  const Fn elu{Function::kElu, 0.5, std::nullopt};
  const Fn softmax{Function::kSoftmax, std::nullopt, -1};
  const Fn log_softmax{Function::kLogSoftmax, std::nullopt, 0};
  AddStreamCase(
      "valid", "Stream valid",
      {StreamEvaluate(gelu, MakeInput({16}, v1::FLOAT32, Encoding::kRaw)),
       StreamDerivative(tanh, 2,
                        MakeInput({3, 5}, v1::FLOAT64, Encoding::kTyped)),
       StreamVjp(softmax, MakeInput({4, 6}, v1::FLOAT32, Encoding::kRaw))},
      {Code::OK});
  AddStreamCase(
      "valid", "Stream valid",
      {StreamEvaluate(log_softmax,
                      MakeInput({5, 2}, v1::FLOAT64, Encoding::kRaw)),
       StreamEvaluate(elu, MakeInput({0}, v1::FLOAT32, Encoding::kTyped)),
       StreamVjp(sigmoid, MakeInput({33}, v1::FLOAT64, Encoding::kRaw)),
       StreamDerivative(gelu, 1, MakeInput({}, v1::FLOAT32, Encoding::kTyped)),
       StreamEvaluate(tanh,
                      MakeInput({64}, v1::FLOAT32, Encoding::kRaw, true))},
      {Code::OK});
  AddStreamCase(
      "valid", "Stream valid",
      {StreamDerivative(elu, 2,
                        MakeInput({2, 9}, v1::FLOAT64, Encoding::kRaw, true))},
      {Code::OK});
  AddStreamCase("empty", "Stream valid", {}, {Code::OK});
}

}  // namespace actsvc::soak
