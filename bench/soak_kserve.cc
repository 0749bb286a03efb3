#include "bench/soak_kserve.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "client/bench_load.h"
#include "core/activation.h"
#include "core/softmax.h"
#include "inference/grpc_service.pb.h"

namespace actsvc::soak {
namespace {

using ::actsvc::client::bench::Parse;
using ::actsvc::client::bench::Serialize;
using Check = std::function<std::string(const grpc::ByteBuffer&)>;

constexpr char kInfer[] = "/inference.GRPCInferenceService/ModelInfer";
constexpr char kStreamInfer[] =
    "/inference.GRPCInferenceService/ModelStreamInfer";

bool Close(double got, double want, bool f32) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  const double atol = f32 ? 1e-5 : 1e-12;
  const double rtol = f32 ? 1e-4 : 1e-10;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

// The values of output `name` of a response, as doubles.
std::string OutputValues(const inference::ModelInferResponse& r,
                         const std::string& name, bool f32,
                         std::vector<int64_t>* shape,
                         std::vector<double>* values) {
  for (int i = 0; i < r.outputs_size(); ++i) {
    if (r.outputs(i).name() != name) continue;
    if (r.outputs(i).datatype() != (f32 ? "FP32" : "FP64")) {
      return absl::StrCat(name, " has datatype ", r.outputs(i).datatype());
    }
    if (i >= r.raw_output_contents_size()) {
      return absl::StrCat(name, " has no raw_output_contents");
    }
    shape->assign(r.outputs(i).shape().begin(), r.outputs(i).shape().end());
    const std::string& raw = r.raw_output_contents(i);
    const size_t size = f32 ? 4 : 8;
    values->resize(raw.size() / size);
    for (size_t k = 0; k < values->size(); ++k) {
      if (f32) {
        float v;
        std::memcpy(&v, raw.data() + k * 4, 4);
        (*values)[k] = v;
      } else {
        std::memcpy(&(*values)[k], raw.data() + k * 8, 8);
      }
    }
    return "";
  }
  return absl::StrCat("no output ", name);
}

// A response whose output `name` has `shape` and is close to `want`, and
// whose id is `id`.
Check CheckOutput(std::string id, std::string name, std::vector<int64_t> shape,
                  std::vector<double> want, bool f32) {
  return [=](const grpc::ByteBuffer& bytes) -> std::string {
    inference::ModelInferResponse r;
    if (!Parse(bytes, &r)) return "unparsable ModelInferResponse";
    if (r.id() != id) return absl::StrCat("id '", r.id(), "', expected ", id);
    std::vector<int64_t> got_shape;
    std::vector<double> got;
    if (std::string e = OutputValues(r, name, f32, &got_shape, &got);
        !e.empty()) {
      return e;
    }
    if (got_shape != shape || got.size() != want.size()) {
      return absl::StrCat(name, " has ", got.size(), " values, expected ",
                          want.size());
    }
    for (size_t i = 0; i < got.size(); ++i) {
      if (!Close(got[i], want[i], f32)) {
        return absl::StrFormat("%s[%d] = %.9g, expected %.9g", name, i, got[i],
                               want[i]);
      }
    }
    return "";
  };
}

// A ModelStreamInferResponse: the answer `inner` checks, or (with no
// `inner`) an error_message naming the request's id.
Check CheckStreamResponse(Check inner, std::string id) {
  return [inner = std::move(inner),
          id = std::move(id)](const grpc::ByteBuffer& bytes) -> std::string {
    inference::ModelStreamInferResponse r;
    if (!Parse(bytes, &r)) return "unparsable ModelStreamInferResponse";
    if (!inner) {
      if (r.error_message().empty())
        return "no error_message for a bad request";
      if (r.infer_response().id() != id) {
        return absl::StrCat("error response id '", r.infer_response().id(),
                            "', expected ", id);
      }
      return "";
    }
    if (!r.error_message().empty()) {
      return absl::StrCat("error_message: ", r.error_message());
    }
    return inner(Serialize(r.infer_response()));
  };
}

class Builder {
 public:
  Builder(uint64_t seed, int64_t max_elements)
      : rng_(seed), max_elements_(max_elements) {}

  std::vector<KServeCall> Build() {
    for (const bool f32 : {true, false}) {
      for (const bool raw : {true, false}) {
        AddElementwise("gelu", Function::kGelu, 0, f32, raw);
        AddElementwise("tanh.d1", Function::kTanh, 1, f32, raw);
        AddElementwise("silu.d2", Function::kSilu, 2, f32, raw);
        AddVjp(f32, raw);
        AddSoftmax(f32, raw);
      }
    }
    AddCrossEntropy();
    AddInvalid();
    AddStream();
    return std::move(calls_);
  }

 private:
  // n values uniform in [-8, 8), the first ones NaN, ±inf, ±0 and tails.
  std::vector<double> Values(int64_t n, bool f32) {
    std::uniform_real_distribution<double> dist(-8, 8);
    std::vector<double> v(n);
    for (double& x : v) x = f32 ? static_cast<float>(dist(rng_)) : dist(rng_);
    const double inf = std::numeric_limits<double>::infinity();
    const double specials[] = {std::nan(""), inf, -inf, 0.0, -0.0, 30, -30};
    for (size_t i = 0; i < std::size(specials) && i < v.size(); ++i) {
      v[i] = specials[i];
    }
    return v;
  }

  static void AddInput(inference::ModelInferRequest* r, const std::string& name,
                       const std::vector<int64_t>& shape,
                       const std::vector<double>& values, bool f32, bool raw) {
    auto* input = r->add_inputs();
    input->set_name(name);
    input->set_datatype(f32 ? "FP32" : "FP64");
    input->mutable_shape()->Add(shape.begin(), shape.end());
    if (raw) {
      std::string bytes;
      for (double v : values) {
        if (f32) {
          const float f = static_cast<float>(v);
          bytes.append(reinterpret_cast<const char*>(&f), 4);
        } else {
          bytes.append(reinterpret_cast<const char*>(&v), 8);
        }
      }
      r->add_raw_input_contents(std::move(bytes));
    } else if (f32) {
      for (double v : values) {
        input->mutable_contents()->add_fp32_contents(static_cast<float>(v));
      }
    } else {
      input->mutable_contents()->mutable_fp64_contents()->Add(values.begin(),
                                                              values.end());
    }
  }

  // The core's answer, in the datatype's precision.
  template <typename Op>
  static std::vector<double> Compute(const std::vector<double>& x, bool f32,
                                     Op op) {
    std::vector<double> out(x.size());
    if (f32) {
      std::vector<float> xs(x.begin(), x.end()), ys(x.size());
      op(absl::MakeConstSpan(xs), absl::MakeSpan(ys));
      out.assign(ys.begin(), ys.end());
    } else {
      std::vector<double> ys(x.size());
      op(absl::MakeConstSpan(x), absl::MakeSpan(ys));
      out = ys;
    }
    return out;
  }

  static std::string Tag(bool f32, bool raw) {
    return absl::StrCat(f32 ? "FP32" : "FP64", "/", raw ? "raw" : "typed");
  }

  void AddUnary(std::string name, std::string group,
                const inference::ModelInferRequest& request,
                grpc::StatusCode expected, Check check = nullptr) {
    KServeCall c;
    c.name = std::move(name);
    c.group = std::move(group);
    c.method = kInfer;
    c.messages.push_back(Serialize(request));
    if (check) c.checks.push_back(std::move(check));
    c.expected = expected;
    calls_.push_back(std::move(c));
  }

  void AddElementwise(const std::string& model, Function f, int order, bool f32,
                      bool raw) {
    const std::vector<int64_t> shape = {8, 64};
    const std::vector<double> x = Values(8 * 64, f32);
    inference::ModelInferRequest r;
    r.set_model_name(model);
    r.set_id(model);
    AddInput(&r, "x", shape, x, f32, raw);
    const std::vector<double> y = Compute(x, f32, [&](auto in, auto out) {
      if (order == 0) {
        Evaluate(f, 0, in, out);
      } else {
        Derivative(f, 0, order, in, out);
      }
    });
    const char* output = order == 0 ? "y" : order == 1 ? "dy" : "d2y";
    AddUnary(absl::StrCat("kserve/", model, "/", Tag(f32, raw)),
             "ModelInfer valid", r, grpc::StatusCode::OK,
             CheckOutput(model, output, shape, y, f32));
  }

  void AddVjp(bool f32, bool raw) {
    const std::vector<int64_t> shape = {4, 32};
    const std::vector<double> x = Values(128, f32);
    std::vector<double> g = Values(128, f32);
    for (double& v : g) v = std::isfinite(v) ? v / 8 : 1;
    inference::ModelInferRequest r;
    r.set_model_name("sigmoid.vjp");
    r.set_id("vjp");
    AddInput(&r, "x", shape, x, f32, raw);
    AddInput(&r, "grad", shape, g, f32, raw);
    std::vector<double> want(x.size());
    if (f32) {
      std::vector<float> xs(x.begin(), x.end()), gs(g.begin(), g.end()),
          ys(x.size());
      Vjp<float>(Function::kSigmoid, 0, xs, gs, absl::MakeSpan(ys));
      want.assign(ys.begin(), ys.end());
    } else {
      Vjp<double>(Function::kSigmoid, 0, x, g, absl::MakeSpan(want));
    }
    AddUnary(absl::StrCat("kserve/sigmoid.vjp/", Tag(f32, raw)),
             "ModelInfer valid", r, grpc::StatusCode::OK,
             CheckOutput("vjp", "x_grad", shape, want, f32));
  }

  void AddSoftmax(bool f32, bool raw) {
    const std::vector<int64_t> shape = {6, 10};
    std::vector<double> x = Values(60, f32);
    for (double& v : x) v = std::isfinite(v) ? v : 1;  // finite rows
    inference::ModelInferRequest r;
    r.set_model_name("softmax");
    r.set_id("softmax");
    AddInput(&r, "x", shape, x, f32, raw);
    (*r.mutable_parameters())["axis"].set_string_param("0");
    const AxisView view = MakeAxisView(shape, 0);
    const std::vector<double> y = Compute(x, f32, [&](auto in, auto out) {
      SoftmaxForward(Function::kSoftmax, view, in, out);
    });
    AddUnary(absl::StrCat("kserve/softmax/axis0/", Tag(f32, raw)),
             "ModelInfer valid", r, grpc::StatusCode::OK,
             CheckOutput("softmax", "y", shape, y, f32));
  }

  void AddCrossEntropy() {
    // Uniform logits: p = 1/C everywhere, so grad = p - onehot exactly
    // enough to check, and the loss is log C per row (mean).
    const int64_t rows = 5, classes = 4;
    inference::ModelInferRequest r;
    r.set_model_name("softmax_cross_entropy");
    r.set_id("xent");
    AddInput(&r, "logits", {rows, classes},
             std::vector<double>(rows * classes, 0.5), true, true);
    auto* labels = r.add_inputs();
    labels->set_name("labels");
    labels->set_datatype("INT32");
    labels->add_shape(rows);
    std::vector<int32_t> l = {0, 1, 2, 3, 0};
    r.add_raw_input_contents(
        std::string(reinterpret_cast<const char*>(l.data()), l.size() * 4));
    r.add_outputs()->set_name("loss");
    AddUnary("kserve/softmax_cross_entropy/INT32 labels", "ModelInfer valid", r,
             grpc::StatusCode::OK,
             CheckOutput("xent", "loss", {}, {std::log(4.0)}, true));
  }

  void AddInvalid() {
    inference::ModelInferRequest good;
    good.set_model_name("relu");
    AddInput(&good, "x", {4}, {1, -1, 2, -2}, true, true);
    inference::ModelInferRequest r = good;
    r.set_model_name("relu.d3");
    AddUnary("kserve/unknown model", "ModelInfer invalid", r,
             grpc::StatusCode::NOT_FOUND);
    r = good;
    r.mutable_inputs(0)->set_shape(0, 5);
    AddUnary("kserve/byte size mismatch", "ModelInfer invalid", r,
             grpc::StatusCode::INVALID_ARGUMENT);
    r = good;
    r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
    AddUnary("kserve/raw and typed", "ModelInfer invalid", r,
             grpc::StatusCode::INVALID_ARGUMENT);
    r = good;
    (*r.mutable_parameters())["alpha"].set_bool_param(true);
    AddUnary("kserve/unexpected parameter", "ModelInfer invalid", r,
             grpc::StatusCode::INVALID_ARGUMENT);
    r = inference::ModelInferRequest();
    r.set_model_name("identity");
    AddInput(&r, "x", {max_elements_ + 1}, {}, true, true);
    r.mutable_raw_input_contents(0)->assign((max_elements_ + 1) * 4, '\0');
    AddUnary("kserve/over --max_elements", "ModelInfer limit", r,
             grpc::StatusCode::RESOURCE_EXHAUSTED);
    KServeCall garbage;
    garbage.name = "kserve/malformed ModelInferRequest";
    garbage.group = "ModelInfer invalid";
    garbage.method = kInfer;
    const std::string bytes = "\x0a\xff\xff\xff\xff\x0f garbage";
    grpc::Slice slice(bytes.data(), bytes.size());
    garbage.messages.emplace_back(&slice, 1);
    garbage.expected = grpc::StatusCode::INVALID_ARGUMENT;
    calls_.push_back(std::move(garbage));
  }

  void AddStream() {
    KServeCall c;
    c.name = "kserve/stream/[gelu,bad,tanh.d1]";
    c.group = "ModelStreamInfer valid";
    c.method = kStreamInfer;
    c.stream = true;
    for (const char* model : {"gelu", "bad", "tanh.d1"}) {
      const bool bad = std::string(model) == "bad";
      const std::vector<double> x = Values(16, true);
      inference::ModelInferRequest r;
      r.set_model_name(bad ? "gelu" : model);
      r.set_id(model);
      AddInput(&r, bad ? "z" : "x", {16}, x, true, true);
      c.messages.push_back(Serialize(r));
      Check inner;
      if (!bad) {
        const bool d1 = std::string(model) == "tanh.d1";
        const std::vector<double> y = Compute(x, true, [&](auto in, auto out) {
          if (d1) {
            Derivative(Function::kTanh, 0, 1, in, out);
          } else {
            Evaluate(Function::kGelu, 0, in, out);
          }
        });
        inner = CheckOutput(model, d1 ? "dy" : "y", {16}, y, true);
      }
      c.checks.push_back(CheckStreamResponse(std::move(inner), model));
    }
    calls_.push_back(std::move(c));
  }

  std::mt19937_64 rng_;
  const int64_t max_elements_;
  std::vector<KServeCall> calls_;
};

}  // namespace

std::vector<KServeCall> KServeCalls(uint64_t seed, int64_t max_elements) {
  return Builder(seed, max_elements).Build();
}

}  // namespace actsvc::soak
