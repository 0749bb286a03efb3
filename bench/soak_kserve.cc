#include "bench/soak_kserve.h"

#include <cmath>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/bench_kserve.h"
#include "inference/grpc_service.pb.h"

namespace actsvc::soak {
namespace {

namespace v1 = ::actsvc::v1;
using ::actsvc::client::bench::AddKServeInput;
using ::actsvc::client::bench::KServeOutputTensor;

constexpr char kInfer[] = "/inference.GRPCInferenceService/ModelInfer";
constexpr char kStreamInfer[] =
    "/inference.GRPCInferenceService/ModelStreamInfer";

// A response whose output `name` is `want`, and whose id is `id`.
Check CheckOutput(std::string id, std::string name, client::Want want) {
  return [=](const grpc::ByteBuffer& bytes) -> std::string {
    inference::ModelInferResponse r;
    if (!client::Parse(bytes, &r)) return "unparsable ModelInferResponse";
    if (r.id() != id) return absl::StrCat("id '", r.id(), "', expected ", id);
    v1::Tensor output;
    if (!KServeOutputTensor(r, name, &output)) {
      return absl::StrCat("no output ", name, " with raw contents");
    }
    std::string wrong = client::CheckTensor(output, want);
    return wrong.empty() ? wrong : absl::StrCat(name, ": ", wrong);
  };
}

// A ModelStreamInferResponse: the answer `inner` checks, or (with no
// `inner`) an error_message naming the request's id.
Check CheckStreamResponse(Check inner, std::string id) {
  return [inner = std::move(inner),
          id = std::move(id)](const grpc::ByteBuffer& bytes) -> std::string {
    inference::ModelStreamInferResponse r;
    if (!client::Parse(bytes, &r)) return "unparsable ModelStreamInferResponse";
    if (!inner) {
      if (r.error_message().empty()) {
        return "no error_message for a bad request";
      }
      if (r.infer_response().id() != id) {
        return absl::StrCat("error response id '", r.infer_response().id(),
                            "', expected ", id);
      }
      return "";
    }
    if (!r.error_message().empty()) {
      return absl::StrCat("error_message: ", r.error_message());
    }
    return inner(client::Serialize(r.infer_response()));
  };
}

// What output values of x's shape and dtype must be: KServe answers in
// raw_output_contents whatever the request's encoding.
client::Want Like(const Input& x, std::vector<double> values) {
  return client::Want{x.shape, x.dtype, std::move(values), std::nullopt};
}

std::string Tag(v1::DataType dtype, Encoding encoding) {
  return absl::StrCat(dtype == v1::FLOAT32 ? "FP32" : "FP64", "/",
                      EncodingTag(encoding));
}

class Builder {
 public:
  Builder(uint64_t seed, int64_t max_elements)
      : rng_(seed), max_elements_(max_elements) {}

  std::vector<Case> Build() {
    for (const v1::DataType dtype : {v1::FLOAT32, v1::FLOAT64}) {
      for (const Encoding e : {Encoding::kRaw, Encoding::kTyped}) {
        AddElementwise("gelu", Function::kGelu, 0, dtype, e);
        AddElementwise("tanh.d1", Function::kTanh, 1, dtype, e);
        AddElementwise("silu.d2", Function::kSilu, 2, dtype, e);
        AddVjp(dtype, e);
        AddSoftmax(dtype, e);
      }
    }
    AddCrossEntropy();
    AddInvalid();
    AddStream();
    return std::move(cases_);
  }

 private:
  // n values uniform in [-8, 8), the first ones NaN, +-inf, +-0 and tails.
  Input MakeInput(std::vector<int64_t> shape, v1::DataType dtype,
                  Encoding encoding) {
    Input in{std::move(shape), dtype, encoding, {}};
    in.values = client::RandomValues(rng_, *client::ElementCount(in.shape), -8,
                                     8, dtype);
    client::PutSpecialValues(dtype, &in.values);
    return in;
  }

  Case& AddUnary(std::string name, std::string group,
                 const inference::ModelInferRequest& request, Code expected,
                 Check check = nullptr) {
    Case c;
    c.name = std::move(name);
    c.group = std::move(group);
    c.method = kInfer;
    c.messages.push_back(client::Serialize(request));
    if (check) c.checks.push_back(std::move(check));
    c.expected = {expected};
    cases_.push_back(std::move(c));
    return cases_.back();
  }

  void AddElementwise(const std::string& model, Function f, int order,
                      v1::DataType dtype, Encoding encoding) {
    const Input x = MakeInput({8, 64}, dtype, encoding);
    inference::ModelInferRequest r;
    r.set_model_name(model);
    r.set_id(model);
    AddKServeInput(x.Tensor(), "x", &r);
    const Fn fn{f, std::nullopt, std::nullopt};
    const std::vector<double> y =
        order == 0 ? Forward(fn, x) : Derivative(fn, order, x);
    const char* output = order == 0 ? "y" : order == 1 ? "dy" : "d2y";
    AddUnary(absl::StrCat("kserve/", model, "/", Tag(dtype, encoding)),
             "ModelInfer valid", r, Code::OK,
             CheckOutput(model, output, Like(x, y)));
  }

  void AddVjp(v1::DataType dtype, Encoding encoding) {
    const Input x = MakeInput({4, 32}, dtype, encoding);
    Input g = MakeInput({4, 32}, dtype, encoding);
    for (double& v : g.values) v = std::isfinite(v) ? v / 8 : 1;
    inference::ModelInferRequest r;
    r.set_model_name("sigmoid.vjp");
    r.set_id("vjp");
    AddKServeInput(x.Tensor(), "x", &r);
    AddKServeInput(g.Tensor(), "grad", &r);
    const Fn sigmoid{Function::kSigmoid, std::nullopt, std::nullopt};
    AddUnary(absl::StrCat("kserve/sigmoid.vjp/", Tag(dtype, encoding)),
             "ModelInfer valid", r, Code::OK,
             CheckOutput("vjp", "x_grad", Like(x, Vjp(sigmoid, x, g))));
  }

  void AddSoftmax(v1::DataType dtype, Encoding encoding) {
    Input x = MakeInput({6, 10}, dtype, encoding);
    for (double& v : x.values) v = std::isfinite(v) ? v : 1;  // finite rows
    inference::ModelInferRequest r;
    r.set_model_name("softmax");
    r.set_id("softmax");
    AddKServeInput(x.Tensor(), "x", &r);
    (*r.mutable_parameters())["axis"].set_string_param("0");
    const Fn softmax{Function::kSoftmax, std::nullopt, 0};
    AddUnary(absl::StrCat("kserve/softmax/axis0/", Tag(dtype, encoding)),
             "ModelInfer valid", r, Code::OK,
             CheckOutput("softmax", "y", Like(x, Forward(softmax, x))));
  }

  void AddCrossEntropy() {
    // Uniform logits: p = 1/C everywhere, so grad = p - onehot exactly
    // enough to check, and the loss is log C per row (mean).
    const int64_t rows = 5, classes = 4;
    inference::ModelInferRequest r;
    r.set_model_name("softmax_cross_entropy");
    r.set_id("xent");
    AddKServeInput(client::MakeTensor({rows, classes}, v1::FLOAT32,
                                      std::vector<double>(rows * classes, 0.5),
                                      Encoding::kRaw),
                   "logits", &r);
    auto* labels = r.add_inputs();
    labels->set_name("labels");
    labels->set_datatype("INT32");
    labels->add_shape(rows);
    std::vector<int32_t> l = {0, 1, 2, 3, 0};
    r.add_raw_input_contents(
        std::string(reinterpret_cast<const char*>(l.data()), l.size() * 4));
    r.add_outputs()->set_name("loss");
    AddUnary("kserve/softmax_cross_entropy/INT32 labels", "ModelInfer valid", r,
             Code::OK,
             CheckOutput(
                 "xent", "loss",
                 client::Want{{}, v1::FLOAT32, {std::log(4.0)}, std::nullopt}));
  }

  void AddInvalid() {
    inference::ModelInferRequest good;
    good.set_model_name("relu");
    AddKServeInput(
        client::MakeTensor({4}, v1::FLOAT32, {1, -1, 2, -2}, Encoding::kRaw),
        "x", &good);
    inference::ModelInferRequest r = good;
    r.set_model_name("relu.d3");
    AddUnary("kserve/unknown model", "ModelInfer invalid", r, Code::NOT_FOUND);
    r = good;
    r.mutable_inputs(0)->set_shape(0, 5);
    AddUnary("kserve/byte size mismatch", "ModelInfer invalid", r,
             Code::INVALID_ARGUMENT);
    r = good;
    r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
    AddUnary("kserve/raw and typed", "ModelInfer invalid", r,
             Code::INVALID_ARGUMENT);
    r = good;
    (*r.mutable_parameters())["alpha"].set_bool_param(true);
    AddUnary("kserve/unexpected parameter", "ModelInfer invalid", r,
             Code::INVALID_ARGUMENT);
    r = inference::ModelInferRequest();
    r.set_model_name("identity");
    v1::Tensor over;
    over.add_shape(max_elements_ + 1);
    over.set_dtype(v1::FLOAT32);
    over.mutable_raw_data()->assign((max_elements_ + 1) * 4, '\0');
    AddKServeInput(over, "x", &r);
    AddUnary("kserve/over --max_elements", "ModelInfer limit", r,
             Code::RESOURCE_EXHAUSTED);
    AddUnary("kserve/malformed ModelInferRequest", "ModelInfer invalid",
             inference::ModelInferRequest(), Code::INVALID_ARGUMENT)
        .messages[0] = client::BytesBuffer("\x0a\xff\xff\xff\xff\x0f garbage");
  }

  void AddStream() {
    Case c;
    c.name = "kserve/stream/[gelu,bad,tanh.d1]";
    c.group = "ModelStreamInfer valid";
    c.method = kStreamInfer;
    c.stream = true;
    c.expected = {Code::OK};
    for (const std::string model : {"gelu", "bad", "tanh.d1"}) {
      const bool bad = model == "bad";
      const Input x = MakeInput({16}, v1::FLOAT32, Encoding::kRaw);
      inference::ModelInferRequest r;
      r.set_model_name(bad ? "gelu" : model);
      r.set_id(model);
      AddKServeInput(x.Tensor(), bad ? "z" : "x", &r);
      c.messages.push_back(client::Serialize(r));
      Check inner;
      if (!bad) {
        const bool d1 = model == "tanh.d1";
        const Fn fn{d1 ? Function::kTanh : Function::kGelu, std::nullopt,
                    std::nullopt};
        inner =
            CheckOutput(model, d1 ? "dy" : "y",
                        Like(x, d1 ? Derivative(fn, 1, x) : Forward(fn, x)));
      }
      c.checks.push_back(CheckStreamResponse(std::move(inner), model));
    }
    cases_.push_back(std::move(c));
  }

  std::mt19937_64 rng_;
  const int64_t max_elements_;
  std::vector<Case> cases_;
};

}  // namespace

std::vector<Case> KServeCases(uint64_t seed, int64_t max_elements) {
  return Builder(seed, max_elements).Build();
}

}  // namespace actsvc::soak
