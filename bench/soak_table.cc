#include "bench/soak_table.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "bench/soak_kserve.h"
#include "core/softmax.h"

namespace actsvc::soak {

namespace v1 = ::actsvc::v1;

std::vector<Case> TableBuilder::Build() {
  AddEvaluate();
  AddDerivative();
  AddJacobian();
  AddCrossEntropy();
  AddAnalyze();
  AddListFunctionsAndHealth();
  AddStream();
  AddInvalidStream();
  AddInvalidSpec();
  AddInvalidTensor();
  AddInvalidDerivative();
  AddInvalidJacobian();
  AddInvalidCrossEntropy();
  AddInvalidAnalyze();
  AddUnknownMethods();
  AddLimits();
  AddDeadlinesAndCancels();
  for (Case& c : KServeCases(rng_(), limits_.max_elements)) {
    cases_.push_back(std::move(c));
  }
  return std::move(cases_);
}

std::string Method(absl::string_view rpc) {
  return absl::StrCat("/actsvc.v1.ActivationService/", rpc);
}

absl::string_view DtypeTag(v1::DataType dtype) {
  if (dtype == v1::FLOAT64) return "f64";
  if (dtype == v1::FLOAT16) return "f16";
  return dtype == v1::BFLOAT16 ? "bf16" : "f32";
}

absl::string_view EncodingTag(Encoding e) {
  return e == Encoding::kRaw ? "raw" : "typed";
}

v1::FunctionSpec Fn::Spec() const {
  v1::FunctionSpec spec;
  spec.set_function(static_cast<v1::Function>(f));
  if (alpha) spec.set_alpha(*alpha);
  if (axis) spec.set_axis(*axis);
  return spec;
}

std::string Fn::Name() const {
  std::string name(actsvc::FunctionName(f));
  if (alpha) absl::StrAppend(&name, "(", *alpha, ")");
  if (axis) absl::StrAppend(&name, "@", *axis);
  return name;
}

v1::Tensor Input::Tensor() const {
  return client::MakeTensor(shape, dtype, values, encoding);
}

std::string Input::Tag() const {
  return absl::StrCat(DtypeTag(dtype), "/", EncodingTag(encoding), "/",
                      client::CompactShape(shape));
}

client::Want Input::Like(client::Answer answer) const {
  return client::Want{std::move(answer.shape), dtype, std::move(answer.values),
                      encoding};
}

// The table's requests are valid: an error here is a mistake in the table.
std::vector<double> Forward(const Fn& fn, const Input& in) {
  return client::ExpectedEvaluate(fn.Spec(), in.AsValues())->values;
}

std::vector<double> Derivative(const Fn& fn, int order, const Input& in) {
  return client::ExpectedDerivative(fn.Spec(), order, in.AsValues())->values;
}

std::vector<double> Vjp(const Fn& fn, const Input& in, const Input& g) {
  return client::ExpectedVjp(fn.Spec(), in.AsValues(), g.values)->values;
}

client::Answer DenseJacobian(const Fn& fn, const Input& in) {
  return *client::ExpectedJacobian(fn.Spec(), /*dense=*/true, in.AsValues());
}

std::string CheckField(const v1::Tensor& got, const client::Want& want,
                       absl::string_view field) {
  std::string wrong = client::CheckTensor(got, want, /*samples=*/24);
  return wrong.empty() ? wrong : absl::StrCat(field, ": ", wrong);
}

Check CheckStreamOutput(client::Want want, bool derivative) {
  return [want = std::move(want), derivative](const grpc::ByteBuffer& bytes) {
    v1::StreamResponse r;
    if (!client::Parse(bytes, &r)) {
      return std::string("unparsable StreamResponse");
    }
    if (derivative != r.has_derivative() || derivative == r.has_evaluate()) {
      return absl::StrCat("a StreamResponse without its ",
                          derivative ? "derivative" : "evaluate", " response");
    }
    return CheckField(
        derivative ? r.derivative().output() : r.evaluate().output(), want,
        "output");
  };
}

std::vector<double> TableBuilder::Values(int64_t n, v1::DataType dtype,
                                         bool specials, double lo, double hi) {
  std::vector<double> values = client::RandomValues(rng_, n, lo, hi, dtype);
  if (specials) client::PutSpecialValues(dtype, &values);
  return values;
}

Input TableBuilder::MakeInput(std::vector<int64_t> shape, v1::DataType dtype,
                              Encoding encoding, bool specials) {
  Input in{std::move(shape), dtype, encoding, {}};
  in.values = Values(*client::ElementCount(in.shape), dtype, specials);
  return in;
}

Case& TableBuilder::AddUnary(std::string name, std::string group,
                             absl::string_view rpc,
                             const google::protobuf::Message& request,
                             std::vector<Code> expected, Check check,
                             int weight) {
  Case c;
  c.name = std::move(name);
  c.group = std::move(group);
  c.method = Method(rpc);
  c.messages.push_back(client::Serialize(request));
  if (check) c.checks.push_back(std::move(check));
  c.expected = std::move(expected);
  c.weight = weight;
  cases_.push_back(std::move(c));
  return cases_.back();
}

void TableBuilder::AddValid(std::string name, absl::string_view rpc,
                            const google::protobuf::Message& request,
                            Check check, int weight) {
  AddUnary(std::move(name), absl::StrCat(rpc, " valid"), rpc, request,
           {Code::OK}, std::move(check), weight);
}

void TableBuilder::AddInvalidArgument(
    std::string name, absl::string_view rpc,
    const google::protobuf::Message& request) {
  AddUnary(std::move(name), absl::StrCat(rpc, " invalid"), rpc, request,
           {Code::INVALID_ARGUMENT});
}

Case& TableBuilder::AddRaw(std::string name, std::string group,
                           std::string method, grpc::ByteBuffer bytes,
                           Code expected) {
  Case c;
  c.name = std::move(name);
  c.group = std::move(group);
  c.method = std::move(method);
  c.messages.push_back(std::move(bytes));
  c.expected = {expected};
  cases_.push_back(std::move(c));
  return cases_.back();
}

TableBuilder::StreamMessage TableBuilder::StreamEvaluate(const Fn& fn,
                                                         const Input& in) {
  StreamMessage m;
  *m.request.mutable_evaluate()->mutable_spec() = fn.Spec();
  *m.request.mutable_evaluate()->mutable_input() = in.Tensor();
  m.check = CheckStreamOutput(in.Like(Forward(fn, in)), false);
  m.tag = absl::StrCat("E:", fn.Name());
  return m;
}

TableBuilder::StreamMessage TableBuilder::StreamDerivative(const Fn& fn,
                                                           int order,
                                                           const Input& in) {
  StreamMessage m;
  v1::DerivativeRequest* d = m.request.mutable_derivative();
  *d->mutable_spec() = fn.Spec();
  *d->mutable_input() = in.Tensor();
  d->set_order(order);
  m.check = CheckStreamOutput(in.Like(Derivative(fn, order, in)), true);
  m.tag = absl::StrCat("D", order, ":", fn.Name());
  return m;
}

TableBuilder::StreamMessage TableBuilder::StreamVjp(const Fn& fn,
                                                    const Input& in) {
  StreamMessage m;
  const Input g{
      in.shape, in.dtype, in.encoding,
      Values(*client::ElementCount(in.shape), in.dtype, false, -1, 1)};
  v1::DerivativeRequest* d = m.request.mutable_derivative();
  *d->mutable_spec() = fn.Spec();
  *d->mutable_input() = in.Tensor();
  *d->mutable_upstream_grad() = g.Tensor();
  m.check = CheckStreamOutput(in.Like(Vjp(fn, in, g)), true);
  m.tag = absl::StrCat("V:", fn.Name());
  return m;
}

TableBuilder::StreamMessage TableBuilder::StreamBad(v1::StreamRequest request,
                                                    std::string tag) {
  return StreamMessage{std::move(request), nullptr, std::move(tag)};
}

Case& TableBuilder::AddStreamCase(std::string name, std::string group,
                                  const std::vector<StreamMessage>& messages,
                                  std::vector<Code> expected, int weight) {
  Case c;
  c.stream = true;
  c.method = Method("Stream");
  std::vector<std::string> tags;
  bool failed = false;
  for (const StreamMessage& m : messages) {
    c.messages.push_back(client::Serialize(m.request));
    tags.push_back(m.tag);
    if (!m.check) failed = true;
    if (!failed) c.checks.push_back(m.check);
  }
  c.name = absl::StrCat("stream/", name, "/[", absl::StrJoin(tags, ","), "]");
  c.group = std::move(group);
  c.expected = std::move(expected);
  c.weight = weight;
  cases_.push_back(std::move(c));
  return cases_.back();
}

std::vector<Function> TableBuilder::AllFunctions() {
  std::vector<Function> all;
  for (int i = static_cast<int>(actsvc::kFirstFunction);
       i <= static_cast<int>(actsvc::kLastFunction); ++i) {
    all.push_back(static_cast<Function>(i));
  }
  return all;
}

std::vector<Function> TableBuilder::Elementwise() {
  std::vector<Function> all = AllFunctions();
  all.erase(
      std::remove_if(all.begin(), all.end(),
                     [](Function f) { return !actsvc::IsElementwise(f); }),
      all.end());
  return all;
}

std::pair<v1::DataType, Encoding> TableBuilder::Variant(size_t i) {
  static const std::pair<v1::DataType, Encoding> kVariants[] = {
      {v1::FLOAT32, Encoding::kRaw},
      {v1::FLOAT64, Encoding::kTyped},
      {v1::FLOAT32, Encoding::kTyped},
      {v1::FLOAT64, Encoding::kRaw}};
  return kVariants[i % 4];
}

std::vector<int64_t> TableBuilder::ElementwiseShape() {
  static const std::vector<std::vector<int64_t>> kShapes = {
      {},    {7}, {3, 5},    {0},       {4, 33}, {2, 3, 4},
      {130}, {1}, {2, 0, 4}, {1, 1, 1}, {65},    {16, 16}};
  return kShapes[shape_turn_++ % kShapes.size()];
}

std::pair<std::vector<int64_t>, std::optional<int>>
TableBuilder::SoftmaxShape() {
  static const std::vector<std::pair<std::vector<int64_t>, std::optional<int>>>
      kShapes = {{{3, 5}, std::nullopt},
                 {{2, 3, 4}, 1},
                 {{4, 33}, 0},
                 {{2, 0, 4}, -1},
                 {{7}, 0},
                 {{1, 1}, -2},
                 {{130}, -1},
                 {{2, 3, 4}, -3},
                 {{5, 2, 3}, 2}};
  return kShapes[softmax_turn_++ % kShapes.size()];
}

Fn TableBuilder::FnFor(Function f, size_t turn, std::vector<int64_t>* shape) {
  Fn fn{f, std::nullopt, std::nullopt};
  if (f == Function::kLeakyRelu && turn % 2 == 1) fn.alpha = 0.2;
  if (f == Function::kElu && turn % 2 == 0) fn.alpha = 0.5;
  if (actsvc::IsElementwise(f)) {
    *shape = ElementwiseShape();
  } else {
    auto [s, axis] = SoftmaxShape();
    *shape = s;
    fn.axis = axis;
  }
  return fn;
}

Input TableBuilder::TurnInput(Function f, size_t turn, size_t variant,
                              bool specials, Fn* fn,
                              std::optional<std::vector<int64_t>> shape) {
  std::vector<int64_t> turn_shape;
  *fn = FnFor(f, turn, &turn_shape);
  const auto [dtype, encoding] = Variant(variant);
  return MakeInput(shape.value_or(turn_shape), dtype, encoding, specials);
}

}  // namespace actsvc::soak
