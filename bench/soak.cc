// Over 800 lines (about 2,000) until issue 21: its driver, stream call and
// answer checker duplicate client/bench_load.cc's and move into one load
// library under client/, leaving this file its case tables and a main.
//
// actsvc-soak: the driver of bench/soak.sh. Keeps --concurrency calls
// outstanding (a closed loop over gRPC's callback API) against a running
// actsvc-server for --duration; each call is a case drawn at random (seeded)
// from a fixed table that covers every RPC of actsvc.v1.ActivationService,
// grpc.health.v1.Health/Check and KServe v2's ModelInfer and
// ModelStreamInfer (soak_kserve.h): valid requests (float32 and float64, raw
// and typed encodings, shapes from scalars to empty tensors) whose answers are
// checked against the client's core, and invalid ones, each with the status
// SPEC.md §3 gives it. Prints the calls per case, class and status; exits 1
// on any unexpected status or wrong answer, showing the first few.
//
// The table assumes the server's limits: pass the same --max_elements and
// --max_message_mb as the server's (soak.sh does).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "actsvc/v1/activation.pb.h"
#include "bench/soak_kserve.h"
#include "client/bench_load.h"
#include "client/tensor.h"
#include "core/activation.h"
#include "core/analyze.h"
#include "core/softmax.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "the server, host:port");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(20),
          "how long to keep calls outstanding, e.g. 20s or 5m");
ABSL_FLAG(int, concurrency, 64, "calls outstanding at all times");
ABSL_FLAG(uint64_t, seed, 1, "seed of the inputs and of the case draws");
ABSL_FLAG(int64_t, max_elements, 262144,
          "the server's --max_elements: requests over it expect "
          "RESOURCE_EXHAUSTED, the large cases are this size");
ABSL_FLAG(int, max_message_mb, 16,
          "the server's --max_message_mb: dense Jacobians over it expect "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "deadline of every call but the tiny-deadline cases: a call that "
          "takes longer is a stall, and fails the soak");
ABSL_FLAG(bool, verify, false,
          "call every case once, in order, one at a time, and print what "
          "the server answered (status and message) against what the case "
          "expects; exit 1 on any difference");
ABSL_FLAG(bool, list, false, "print the table of cases and exit");
ABSL_FLAG(int, progress_s, 10,
          "a progress line on stderr this often (0: never)");
ABSL_FLAG(int, show_failures, 8,
          "failures printed in full: the first of each case, at most this "
          "many cases");

namespace {

namespace v1 = ::actsvc::v1;
using ::actsvc::AxisView;
using ::actsvc::Function;
using ::actsvc::client::Encoding;
using ::actsvc::client::bench::Parse;
using ::actsvc::client::bench::Serialize;
using Code = ::grpc::StatusCode;

constexpr int kCodes = 17;  // gRPC status codes 0..16

const char* CodeName(int code) {
  static const char* const kNames[kCodes] = {"OK",
                                             "CANCELLED",
                                             "UNKNOWN",
                                             "INVALID_ARGUMENT",
                                             "DEADLINE_EXCEEDED",
                                             "NOT_FOUND",
                                             "ALREADY_EXISTS",
                                             "PERMISSION_DENIED",
                                             "RESOURCE_EXHAUSTED",
                                             "FAILED_PRECONDITION",
                                             "ABORTED",
                                             "OUT_OF_RANGE",
                                             "UNIMPLEMENTED",
                                             "INTERNAL",
                                             "UNAVAILABLE",
                                             "DATA_LOSS",
                                             "UNAUTHENTICATED"};
  return code >= 0 && code < kCodes ? kNames[code] : "?";
}

grpc::ByteBuffer Bytes(absl::string_view bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

// Calls fn with a value of the C++ type of `dtype` (float or double).
template <typename Fn>
auto ByDtype(v1::DataType dtype, Fn fn) {
  return dtype == v1::FLOAT32 ? fn(float{}) : fn(double{});
}

template <typename T>
std::vector<T> Narrow(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
template <typename T>
std::vector<double> Widen(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

int64_t Product(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// ---------------------------------------------------------------------------
// Checks of response tensors.

// What a response tensor must hold.
struct Want {
  std::vector<int64_t> shape;
  v1::DataType dtype = v1::FLOAT32;
  Encoding encoding = Encoding::kRaw;
  std::vector<double> values;
};

bool Close(double got, double want, v1::DataType dtype) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  // The server runs the same core, but may split the work into chunks (and
  // sums of a reduction in another order): a few hundred ulps, far below
  // any real mistake.
  const bool f32 = dtype == v1::FLOAT32;
  const double atol = f32 ? 1e-5 : 1e-12;
  const double rtol = f32 ? 1e-4 : 1e-10;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

double ValueAt(const v1::Tensor& t, int64_t i) {
  if (t.dtype() == v1::FLOAT32) {
    if (t.float_data_size() > 0) return t.float_data(static_cast<int>(i));
    float v;
    std::memcpy(&v, t.raw_data().data() + i * sizeof(float), sizeof(float));
    return v;
  }
  if (t.double_data_size() > 0) return t.double_data(static_cast<int>(i));
  double v;
  std::memcpy(&v, t.raw_data().data() + i * sizeof(double), sizeof(double));
  return v;
}

// "" when `got` has the shape, dtype and encoding wanted, and its values at
// up to 24 evenly spaced positions (every one of a small tensor) are close
// to the wanted ones.
std::string CheckTensor(const v1::Tensor& got, const Want& want,
                        absl::string_view field) {
  if (got.dtype() != want.dtype) {
    return absl::StrCat(field, ".dtype ", v1::DataType_Name(got.dtype()),
                        ", expected ", v1::DataType_Name(want.dtype));
  }
  if (!std::equal(got.shape().begin(), got.shape().end(), want.shape.begin(),
                  want.shape.end())) {
    return absl::StrCat(field, ".shape [", absl::StrJoin(got.shape(), ","),
                        "], expected ", ShapeString(want.shape));
  }
  const int64_t n = static_cast<int64_t>(want.values.size());
  const int64_t size = want.dtype == v1::FLOAT32 ? 4 : 8;
  const int64_t typed = want.dtype == v1::FLOAT32 ? got.float_data_size()
                                                  : got.double_data_size();
  const int64_t raw = static_cast<int64_t>(got.raw_data().size());
  const bool is_typed = typed > 0;
  if (n > 0 && is_typed != (want.encoding == Encoding::kTyped)) {
    return absl::StrCat(field, " is ", is_typed ? "typed" : "raw",
                        ", expected the request's encoding (",
                        is_typed ? "raw" : "typed", ")");
  }
  if ((is_typed ? typed : raw / size) != n || (is_typed && raw != 0) ||
      (!is_typed && raw % size != 0)) {
    return absl::StrCat(field, " holds ", typed, " typed values and ", raw,
                        " raw bytes, expected ", n, " values");
  }
  const int64_t samples = std::min<int64_t>(n, 24);
  for (int64_t k = 0; k < samples; ++k) {
    const int64_t i = samples == n ? k : k * (n - 1) / (samples - 1);
    const double g = ValueAt(got, i);
    if (!Close(g, want.values[i], want.dtype)) {
      return absl::StrFormat("%s[%d] = %.9g, expected %.9g", field, i, g,
                             want.values[i]);
    }
  }
  return "";
}

using Check = std::function<std::string(const grpc::ByteBuffer&)>;

template <typename Response>
Check CheckOutput(Want want, bool diagonal = false) {
  return [want = std::move(want), diagonal](const grpc::ByteBuffer& bytes) {
    Response r;
    if (!Parse(bytes, &r)) {
      return absl::StrCat("unparsable ", Response::descriptor()->name());
    }
    if constexpr (std::is_same_v<Response, v1::JacobianResponse>) {
      if (r.diagonal() != diagonal) {
        return absl::StrCat("diagonal = ", r.diagonal(), ", expected ",
                            diagonal);
      }
      return CheckTensor(r.jacobian(), want, "jacobian");
    } else {
      return CheckTensor(r.output(), want, "output");
    }
  };
}

// A StreamResponse holding an evaluate (or derivative) response.
Check CheckStreamOutput(Want want, bool derivative) {
  return [want = std::move(want), derivative](const grpc::ByteBuffer& bytes) {
    v1::StreamResponse r;
    if (!Parse(bytes, &r)) return std::string("unparsable StreamResponse");
    if (derivative != r.has_derivative() || derivative == r.has_evaluate()) {
      return absl::StrCat("a StreamResponse without its ",
                          derivative ? "derivative" : "evaluate", " response");
    }
    return CheckTensor(
        derivative ? r.derivative().output() : r.evaluate().output(), want,
        "output");
  };
}

// ---------------------------------------------------------------------------
// The table.

struct Case {
  std::string name;
  std::string group;  // "<RPC> <valid|invalid|limit|deadline|cancel>"
  bool stream = false;
  std::string method;
  std::vector<grpc::ByteBuffer> messages;  // unary: exactly one
  // One per response expected before the final status; for a unary call a
  // check when OK is expected (or accepted).
  std::vector<Check> checks;
  // Acceptable final statuses; the first is the one SPEC.md gives.
  std::vector<Code> expected;
  // Stream: fewer responses than checks are fine (a cancelled stream).
  bool fewer_responses_ok = false;
  bool half_close = true;  // stream: WritesDone after the last message
  absl::Duration deadline = absl::ZeroDuration();  // zero: --timeout
  // When set, the client cancels the call this long after it starts
  // (unary) or after `cancel_after_responses` responses (stream).
  std::optional<absl::Duration> cancel_after;
  int cancel_after_responses = 0;
  int weight = 10;  // relative frequency; the large cases are rarer
};

struct Limits {
  int64_t max_elements;
  int64_t max_message_bytes;
};

constexpr absl::string_view kService = "/actsvc.v1.ActivationService/";

std::string Method(absl::string_view rpc) {
  return absl::StrCat(kService, rpc);
}

absl::string_view DtypeTag(v1::DataType dtype) {
  return dtype == v1::FLOAT32 ? "f32" : "f64";
}
absl::string_view EncodingTag(Encoding e) {
  return e == Encoding::kRaw ? "raw" : "typed";
}

// The function a FunctionSpec names, with the alpha the server uses.
struct Fn {
  Function f;
  std::optional<double> alpha;  // set in the request when given
  std::optional<int> axis;      // softmax/log_softmax

  double Alpha() const { return alpha ? *alpha : actsvc::DefaultAlpha(f); }
  int Axis() const { return axis ? *axis : -1; }
  v1::FunctionSpec Spec() const {
    v1::FunctionSpec spec;
    spec.set_function(static_cast<v1::Function>(f));
    if (alpha) spec.set_alpha(*alpha);
    if (axis) spec.set_axis(*axis);
    return spec;
  }
  std::string Name() const {
    std::string name(actsvc::FunctionName(f));
    if (alpha) absl::StrAppend(&name, "(", *alpha, ")");
    if (axis) absl::StrAppend(&name, "@", *axis);
    return name;
  }
};

// An input tensor and what it holds.
struct Input {
  std::vector<int64_t> shape;
  v1::DataType dtype = v1::FLOAT32;
  Encoding encoding = Encoding::kRaw;
  std::vector<double> values;  // already rounded to dtype

  v1::Tensor Tensor() const {
    return actsvc::client::MakeTensor(shape, dtype, values, encoding);
  }
  std::string Tag() const {
    return absl::StrCat(DtypeTag(dtype), "/", EncodingTag(encoding), "/",
                        ShapeString(shape));
  }
  Want Like(std::vector<double> out) const {
    return Want{shape, dtype, encoding, std::move(out)};
  }
  AxisView View(int axis) const {
    const int rank = static_cast<int>(shape.size());
    return actsvc::MakeAxisView(shape, *actsvc::NormalizeAxis(axis, rank));
  }
};

// The client's answers, computed by the core in the request's dtype.
std::vector<double> Forward(const Fn& fn, const Input& in) {
  return ByDtype(in.dtype, [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> x = Narrow<T>(in.values);
    std::vector<T> y(x.size());
    if (actsvc::IsElementwise(fn.f)) {
      actsvc::Evaluate<T>(fn.f, fn.Alpha(), x, absl::MakeSpan(y));
    } else {
      actsvc::SoftmaxForward<T>(fn.f, in.View(fn.Axis()), x, absl::MakeSpan(y));
    }
    return Widen(y);
  });
}

std::vector<double> Derivative(const Fn& fn, int order, const Input& in) {
  return ByDtype(in.dtype, [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> x = Narrow<T>(in.values);
    std::vector<T> y(x.size());
    actsvc::Derivative<T>(fn.f, fn.Alpha(), order, x, absl::MakeSpan(y));
    return Widen(y);
  });
}

std::vector<double> Vjp(const Fn& fn, const Input& in, const Input& g) {
  return ByDtype(in.dtype, [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> x = Narrow<T>(in.values);
    const std::vector<T> gs = Narrow<T>(g.values);
    std::vector<T> y(x.size());
    if (actsvc::IsElementwise(fn.f)) {
      actsvc::Vjp<T>(fn.f, fn.Alpha(), x, gs, absl::MakeSpan(y));
    } else {
      actsvc::SoftmaxVjp<T>(fn.f, in.View(fn.Axis()), x, gs, absl::MakeSpan(y));
    }
    return Widen(y);
  });
}

// Dense Jacobians and their shape (see JacobianResponse).
Want DenseJacobian(const Fn& fn, const Input& in) {
  Want want;
  want.dtype = in.dtype;
  want.encoding = in.encoding;
  const int rank = static_cast<int>(in.shape.size());
  if (actsvc::IsElementwise(fn.f)) {
    const int64_t c = in.shape.back();
    want.shape = in.shape;
    want.shape.push_back(c);
    const std::vector<double> diag = Derivative(fn, 1, in);
    want.values = ByDtype(in.dtype, [&](auto tag) {
      using T = decltype(tag);
      std::vector<T> dense(diag.size() * c);
      actsvc::DiagonalToDense<T>(Narrow<T>(diag), c, absl::MakeSpan(dense));
      return Widen(dense);
    });
    return want;
  }
  const int axis = *actsvc::NormalizeAxis(fn.Axis(), rank);
  const AxisView view = actsvc::MakeAxisView(in.shape, axis);
  for (int d = 0; d < rank; ++d) {
    if (d != axis) want.shape.push_back(in.shape[d]);
  }
  want.shape.push_back(view.size);
  want.shape.push_back(view.size);
  want.values = ByDtype(in.dtype, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> jac(view.rows() * view.size * view.size);
    actsvc::SoftmaxJacobian<T>(fn.f, view, Narrow<T>(in.values),
                               absl::MakeSpan(jac));
    return Widen(jac);
  });
  return want;
}

class TableBuilder {
 public:
  TableBuilder(const Limits& limits, uint64_t seed)
      : limits_(limits), rng_(seed) {}

  std::vector<Case> Build() {
    AddEvaluate();
    AddDerivative();
    AddJacobian();
    AddCrossEntropy();
    AddAnalyze();
    AddListFunctionsAndHealth();
    AddStream();
    AddInvalid();
    AddLimits();
    AddDeadlinesAndCancels();
    AddKServe();
    return std::move(cases_);
  }

  // KServe v2 (bench/soak_kserve.h): ModelInfer and ModelStreamInfer.
  void AddKServe() {
    for (actsvc::soak::KServeCall& call :
         actsvc::soak::KServeCalls(rng_(), limits_.max_elements)) {
      Case c;
      c.name = std::move(call.name);
      c.group = std::move(call.group);
      c.stream = call.stream;
      c.method = std::move(call.method);
      c.messages = std::move(call.messages);
      c.checks = std::move(call.checks);
      c.expected = {call.expected};
      cases_.push_back(std::move(c));
    }
  }

 private:
  // Values of `dtype` uniform in [lo, hi); with `specials`, the first ones
  // are NaN, the infinities, signed zeros, a subnormal, the largest finite
  // values and tails.
  std::vector<double> Values(int64_t n, v1::DataType dtype, bool specials,
                             double lo = -8, double hi = 8) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<double> values(n);
    for (double& v : values) {
      v = dist(rng_);
      if (dtype == v1::FLOAT32) v = static_cast<float>(v);
    }
    if (specials) {
      const bool f32 = dtype == v1::FLOAT32;
      const double inf = std::numeric_limits<double>::infinity();
      const std::vector<double> kSpecials = {
          std::nan(""),
          inf,
          -inf,
          0.0,
          -0.0,
          f32 ? std::numeric_limits<float>::denorm_min()
              : std::numeric_limits<double>::denorm_min(),
          f32 ? std::numeric_limits<float>::max()
              : std::numeric_limits<double>::max(),
          f32 ? -std::numeric_limits<float>::max()
              : -std::numeric_limits<double>::max(),
          30.0,
          -30.0,
          -0.75,
          1.5};
      for (size_t i = 0; i < kSpecials.size() && i < values.size(); ++i) {
        values[i] = kSpecials[i];
      }
    }
    return values;
  }

  Input MakeInput(std::vector<int64_t> shape, v1::DataType dtype,
                  Encoding encoding, bool specials = false) {
    Input in{std::move(shape), dtype, encoding, {}};
    in.values = Values(Product(in.shape), dtype, specials);
    return in;
  }

  void AddUnary(std::string name, std::string group, absl::string_view rpc,
                const google::protobuf::Message& request,
                std::vector<Code> expected, Check check = nullptr,
                int weight = 10) {
    Case c;
    c.name = std::move(name);
    c.group = std::move(group);
    c.method = Method(rpc);
    c.messages.push_back(Serialize(request));
    if (check) c.checks.push_back(std::move(check));
    c.expected = std::move(expected);
    c.weight = weight;
    cases_.push_back(std::move(c));
  }
  void AddValid(std::string name, absl::string_view rpc,
                const google::protobuf::Message& request, Check check,
                int weight = 10) {
    AddUnary(std::move(name), absl::StrCat(rpc, " valid"), rpc, request,
             {Code::OK}, std::move(check), weight);
  }
  void AddInvalidArgument(std::string name, absl::string_view rpc,
                          const google::protobuf::Message& request) {
    AddUnary(std::move(name), absl::StrCat(rpc, " invalid"), rpc, request,
             {Code::INVALID_ARGUMENT});
  }

  static std::vector<Function> AllFunctions() {
    std::vector<Function> all;
    for (int i = static_cast<int>(actsvc::kFirstFunction);
         i <= static_cast<int>(actsvc::kLastFunction); ++i) {
      all.push_back(static_cast<Function>(i));
    }
    return all;
  }
  static std::vector<Function> Elementwise() {
    std::vector<Function> all = AllFunctions();
    all.erase(
        std::remove_if(all.begin(), all.end(),
                       [](Function f) { return !actsvc::IsElementwise(f); }),
        all.end());
    return all;
  }

  // The four (dtype, encoding) pairs, in turn.
  static std::pair<v1::DataType, Encoding> Variant(size_t i) {
    static const std::pair<v1::DataType, Encoding> kVariants[] = {
        {v1::FLOAT32, Encoding::kRaw},
        {v1::FLOAT64, Encoding::kTyped},
        {v1::FLOAT32, Encoding::kTyped},
        {v1::FLOAT64, Encoding::kRaw}};
    return kVariants[i % 4];
  }

  // Elementwise shapes, from a scalar to empty tensors; taken in turn.
  std::vector<int64_t> ElementwiseShape() {
    static const std::vector<std::vector<int64_t>> kShapes = {
        {},    {7}, {3, 5},    {0},       {4, 33}, {2, 3, 4},
        {130}, {1}, {2, 0, 4}, {1, 1, 1}, {65},    {16, 16}};
    return kShapes[shape_turn_++ % kShapes.size()];
  }
  // Softmax shapes with an axis each, taken in turn.
  std::pair<std::vector<int64_t>, std::optional<int>> SoftmaxShape() {
    static const std::vector<
        std::pair<std::vector<int64_t>, std::optional<int>>>
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

  // A function spec for the turn: leaky_relu and elu sometimes with an
  // explicit alpha, softmax with an axis (and its shape).
  Fn FnFor(Function f, size_t turn, std::vector<int64_t>* shape) {
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

  void AddEvaluate() {
    for (Function f : AllFunctions()) {
      for (size_t v = 0; v < 4; ++v) {
        std::vector<int64_t> shape;
        const Fn fn = FnFor(f, v, &shape);
        const auto [dtype, encoding] = Variant(v + static_cast<size_t>(f));
        const Input in = MakeInput(shape, dtype, encoding, v == 0);
        v1::EvaluateRequest r;
        *r.mutable_spec() = fn.Spec();
        *r.mutable_input() = in.Tensor();
        AddValid(absl::StrCat("evaluate/", fn.Name(), "/", in.Tag()),
                 "Evaluate", r,
                 CheckOutput<v1::EvaluateResponse>(in.Like(Forward(fn, in))));
      }
    }
  }

  void AddDerivative() {
    size_t turn = 0;
    for (Function f : Elementwise()) {
      // f' and f'' (order 0 means 1), then the VJP.
      for (int order : {1, 2, 0}) {
        ++turn;
        std::vector<int64_t> shape;
        const Fn fn = FnFor(f, turn, &shape);
        const auto [dtype, encoding] = Variant(turn);
        const Input in = MakeInput(shape, dtype, encoding, turn % 3 == 0);
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
    for (Function f : AllFunctions()) {
      const int times = actsvc::IsElementwise(f) ? 1 : 4;
      for (int i = 0; i < times; ++i) {
        ++turn;
        std::vector<int64_t> shape;
        const Fn fn = FnFor(f, turn, &shape);
        const auto [dtype, encoding] = Variant(turn);
        const Input in = MakeInput(shape, dtype, encoding, turn % 5 == 0);
        // The upstream gradient's encoding is free: sometimes the other one.
        Input g{in.shape, dtype,
                turn % 3 == 0 ? (encoding == Encoding::kRaw ? Encoding::kTyped
                                                            : Encoding::kRaw)
                              : encoding,
                Values(Product(in.shape), dtype, false, -1, 1)};
        v1::DerivativeRequest r;
        *r.mutable_spec() = fn.Spec();
        *r.mutable_input() = in.Tensor();
        *r.mutable_upstream_grad() = g.Tensor();
        if (turn % 2 == 0) r.set_order(1);
        AddValid(absl::StrCat("vjp/", fn.Name(), "/", in.Tag(), "/g_",
                              EncodingTag(g.encoding)),
                 "Derivative", r,
                 CheckOutput<v1::DerivativeResponse>(in.Like(Vjp(fn, in, g))));
      }
    }
  }

  void AddJacobian() {
    size_t turn = 0;
    for (Function f : Elementwise()) {
      ++turn;
      std::vector<int64_t> shape;
      const Fn fn = FnFor(f, turn, &shape);
      const auto [dtype, encoding] = Variant(turn);
      const Input in = MakeInput(shape, dtype, encoding, turn % 4 == 0);
      v1::JacobianRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = in.Tensor();
      AddValid(absl::StrCat("jacobian/diagonal/", fn.Name(), "/", in.Tag()),
               "Jacobian", r,
               CheckOutput<v1::JacobianResponse>(in.Like(Derivative(fn, 1, in)),
                                                 /*diagonal=*/true));
    }
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
      ++turn;
      const auto [dtype, encoding] = Variant(turn);
      const Fn fn{d.f, std::nullopt, d.axis};
      const Input in = MakeInput(d.shape, dtype, encoding, turn % 4 == 0);
      v1::JacobianRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = in.Tensor();
      // Ignored by softmax and log_softmax: set for some, not others.
      r.set_dense(actsvc::IsElementwise(d.f) || turn % 2 == 0);
      AddValid(absl::StrCat("jacobian/dense/", fn.Name(), "/", in.Tag()),
               "Jacobian", r,
               CheckOutput<v1::JacobianResponse>(DenseJacobian(fn, in)));
    }
  }

  // Softmax cross-entropy, answered by the core's CrossEntropyRows.
  struct Xent {
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

  void AddCrossEntropy() {
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

  void AddCrossEntropyCase(const Xent& x) {
    const int64_t c = x.shape.back();
    const int64_t rows = c == 0 ? 0 : Product(x.shape) / c;
    const Input logits = MakeInput(x.shape, x.dtype, x.encoding, false);
    v1::SoftmaxCrossEntropyRequest r;
    *r.mutable_logits() = logits.Tensor();
    r.set_reduction(x.reduction);
    r.set_label_smoothing(x.smoothing);
    r.set_return_probabilities(x.probabilities);
    std::vector<int64_t> labels;
    std::vector<double> probs;
    if (x.target_probs) {
      // Random non-negative rows, normalized (rounded to dtype).
      probs = Values(Product(x.shape), x.dtype, false, 0, 1);
      for (int64_t row = 0; row < rows; ++row) {
        double sum = 0;
        for (int64_t j = 0; j < c; ++j) sum += probs[row * c + j];
        for (int64_t j = 0; j < c; ++j) {
          double& p = probs[row * c + j];
          p /= sum;
          if (x.dtype == v1::FLOAT32) p = static_cast<float>(p);
        }
      }
      // Its encoding is free: the other one than the logits'.
      *r.mutable_target_probs() = actsvc::client::MakeTensor(
          x.shape, x.dtype, probs,
          x.encoding == Encoding::kRaw ? Encoding::kTyped : Encoding::kRaw);
    } else {
      std::uniform_int_distribution<int64_t> dist(0,
                                                  std::max<int64_t>(c - 1, 0));
      labels.resize(rows);
      for (int64_t& l : labels) l = dist(rng_);
      for (int row : x.ignored_rows) labels[row] = *x.ignore_index;
      r.mutable_class_indices()->Add(labels.begin(), labels.end());
      if (x.ignore_index) r.set_ignore_index(*x.ignore_index);
    }

    const bool per_row = x.reduction == v1::SoftmaxCrossEntropyRequest::NONE;
    std::vector<int64_t> loss_shape;
    if (per_row) loss_shape.assign(x.shape.begin(), x.shape.end() - 1);
    std::vector<double> loss, grad, p;
    ByDtype(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      const std::vector<T> z = Narrow<T>(logits.values);
      const std::vector<T> y = Narrow<T>(probs);
      std::vector<T> row_loss(rows), g(z.size()),
          pr(x.probabilities ? z.size() : 0);
      actsvc::CrossEntropyOptions options;
      options.label_smoothing = x.smoothing;
      options.ignore_index = x.ignore_index;
      const actsvc::CrossEntropyPartial total = actsvc::CrossEntropyRows<T>(
          c, z, labels, y, options, absl::MakeSpan(row_loss), absl::MakeSpan(g),
          absl::MakeSpan(pr), 0, rows);
      const actsvc::Reduction reduction =
          x.reduction == v1::SoftmaxCrossEntropyRequest::MEAN
              ? actsvc::Reduction::kMean
          : x.reduction == v1::SoftmaxCrossEntropyRequest::SUM
              ? actsvc::Reduction::kSum
              : actsvc::Reduction::kNone;
      std::vector<T> reduced(1);
      actsvc::ReduceCrossEntropy<T>(
          reduction, total, absl::MakeSpan(g),
          per_row ? absl::MakeSpan(row_loss) : absl::MakeSpan(reduced));
      loss = Widen(per_row ? row_loss : reduced);
      grad = Widen(g);
      p = Widen(pr);
      return 0;
    });
    const Want want_loss{loss_shape, x.dtype, x.encoding, loss};
    const Want want_grad = logits.Like(grad);
    const std::optional<Want> want_probs =
        x.probabilities ? std::optional<Want>(logits.Like(p)) : std::nullopt;
    Check check = [want_loss, want_grad,
                   want_probs](const grpc::ByteBuffer& bytes) {
      v1::SoftmaxCrossEntropyResponse r;
      if (!Parse(bytes, &r)) {
        return std::string("unparsable SoftmaxCrossEntropyResponse");
      }
      std::string wrong = CheckTensor(r.loss(), want_loss, "loss");
      if (wrong.empty()) {
        wrong = CheckTensor(r.grad_logits(), want_grad, "grad_logits");
      }
      if (wrong.empty() && want_probs) {
        wrong = CheckTensor(r.probabilities(), *want_probs, "probabilities");
      }
      if (wrong.empty() && !want_probs && r.has_probabilities()) {
        wrong = "probabilities were not asked for";
      }
      return wrong;
    };
    std::string name = absl::StrCat(
        "xent/", v1::SoftmaxCrossEntropyRequest::Reduction_Name(x.reduction),
        "/", logits.Tag(), x.target_probs ? "/target_probs" : "/indices");
    if (x.smoothing != 0) absl::StrAppend(&name, "/smoothing", x.smoothing);
    if (x.ignore_index) absl::StrAppend(&name, "/ignore", *x.ignore_index);
    if (x.probabilities) absl::StrAppend(&name, "/probabilities");
    AddValid(std::move(name), "SoftmaxCrossEntropy", r, std::move(check));
  }

  void AddAnalyze() {
    size_t turn = 0;
    for (Function f : Elementwise()) {
      ++turn;
      std::vector<int64_t> shape;
      const Fn fn = FnFor(f, turn, &shape);
      if (turn % 4 == 1) shape = {1000};
      const auto [dtype, encoding] = Variant(turn);
      const Input in = MakeInput(shape, dtype, encoding, turn % 3 == 0);
      const double epsilon = turn % 2 == 0 ? 0.01 * turn : 0;
      const std::optional<int> layers =
          turn % 3 == 1 ? std::nullopt : std::optional<int>(turn % 5 * 2);
      v1::AnalyzeRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = in.Tensor();
      if (epsilon != 0) r.set_epsilon(epsilon);
      if (layers) r.set_layers(*layers);
      const actsvc::GradientFlowReport want = ByDtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        actsvc::GradientFlowCounts counts;
        actsvc::AccumulateGradientFlow<T>(
            fn.f, fn.Alpha(),
            epsilon == 0 ? actsvc::kDefaultSaturationEpsilon : epsilon,
            Narrow<T>(in.values), &counts);
        return actsvc::SummarizeGradientFlow(counts, layers);
      });
      Check check = [want](const grpc::ByteBuffer& bytes) {
        v1::AnalyzeResponse r;
        if (!Parse(bytes, &r)) return std::string("unparsable AnalyzeResponse");
        const std::pair<int64_t, int64_t> counts[] = {
            {r.units(), want.units},
            {r.nan_count(), want.nan_units},
            {r.zero_outputs(), want.zero_outputs},
            {r.saturated_units(), want.saturated},
            {r.dead_units(), want.dead}};
        for (const auto& [got, expected] : counts) {
          if (got != expected) {
            return absl::StrCat("counts (units, nan, zero, saturated, dead) ",
                                r.units(), ", ", r.nan_count(), ", ",
                                r.zero_outputs(), ", ", r.saturated_units(),
                                ", ", r.dead_units(), "; expected ", want.units,
                                ", ", want.nan_units, ", ", want.zero_outputs,
                                ", ", want.saturated, ", ", want.dead);
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
          if (!Close(got, expected, v1::FLOAT64)) {
            return absl::StrFormat(
                "statistic %.17g, expected %.17g (sparsity, min, max, mean, "
                "mean |f'|, max |f'|)",
                got, expected);
          }
        }
        if (r.has_attenuation() != want.attenuation.has_value() ||
            (want.attenuation &&
             !Close(r.attenuation(), *want.attenuation, v1::FLOAT64))) {
          return absl::StrCat(
              "attenuation ",
              r.has_attenuation() ? absl::StrCat(r.attenuation()) : "unset",
              ", expected ",
              want.attenuation ? absl::StrCat(*want.attenuation) : "unset");
        }
        return std::string();
      };
      AddValid(absl::StrCat("analyze/", fn.Name(), "/", in.Tag(), "/eps",
                            epsilon, layers ? absl::StrCat("/L", *layers) : ""),
               "Analyze", r, std::move(check));
    }
  }

  void AddListFunctionsAndHealth() {
    AddValid(
        "listfunctions", "ListFunctions", v1::ListFunctionsRequest(),
        [](const grpc::ByteBuffer& bytes) {
          v1::ListFunctionsResponse r;
          if (!Parse(bytes, &r)) {
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
                                  ", expected ", actsvc::FunctionName(all[i]));
            }
          }
          return std::string();
        });
    // The garbage does not parse as a ListFunctionsRequest.
    {
      Case c;
      c.name = "listfunctions/unparsable";
      c.group = "ListFunctions invalid";
      c.method = Method("ListFunctions");
      c.messages.push_back(Bytes("\xff\xff\xff"));
      c.expected = {Code::INVALID_ARGUMENT};
      cases_.push_back(std::move(c));
    }
    for (const std::string service : {"", "actsvc.v1.ActivationService"}) {
      grpc::health::v1::HealthCheckRequest r;
      r.set_service(service);
      Case c;
      c.name = absl::StrCat("health/check/\"", service, "\"");
      c.group = "Health valid";
      c.method = "/grpc.health.v1.Health/Check";
      c.messages.push_back(Serialize(r));
      c.checks.push_back([](const grpc::ByteBuffer& bytes) {
        grpc::health::v1::HealthCheckResponse r;
        if (!Parse(bytes, &r)) return std::string("unparsable health answer");
        if (r.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
          return absl::StrCat(
              "status ",
              grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                  r.status()),
              ", expected SERVING");
        }
        return std::string();
      });
      c.expected = {Code::OK};
      cases_.push_back(std::move(c));
    }
    grpc::health::v1::HealthCheckRequest unknown;
    unknown.set_service("no.such.Service");
    Case c;
    c.name = "health/check/unknown_service";
    c.group = "Health invalid";
    c.method = "/grpc.health.v1.Health/Check";
    c.messages.push_back(Serialize(unknown));
    c.expected = {Code::NOT_FOUND};
    cases_.push_back(std::move(c));
  }

  // A Stream message and the check of its response.
  struct StreamMessage {
    v1::StreamRequest request;
    Check check;  // null for a message that fails the stream
    std::string tag;
  };

  StreamMessage StreamEvaluate(const Fn& fn, const Input& in) {
    StreamMessage m;
    *m.request.mutable_evaluate()->mutable_spec() = fn.Spec();
    *m.request.mutable_evaluate()->mutable_input() = in.Tensor();
    m.check = CheckStreamOutput(in.Like(Forward(fn, in)), false);
    m.tag = absl::StrCat("E:", fn.Name());
    return m;
  }
  StreamMessage StreamDerivative(const Fn& fn, int order, const Input& in) {
    StreamMessage m;
    v1::DerivativeRequest* d = m.request.mutable_derivative();
    *d->mutable_spec() = fn.Spec();
    *d->mutable_input() = in.Tensor();
    d->set_order(order);
    m.check = CheckStreamOutput(in.Like(Derivative(fn, order, in)), true);
    m.tag = absl::StrCat("D", order, ":", fn.Name());
    return m;
  }
  StreamMessage StreamVjp(const Fn& fn, const Input& in) {
    StreamMessage m;
    const Input g{in.shape, in.dtype, in.encoding,
                  Values(Product(in.shape), in.dtype, false, -1, 1)};
    v1::DerivativeRequest* d = m.request.mutable_derivative();
    *d->mutable_spec() = fn.Spec();
    *d->mutable_input() = in.Tensor();
    *d->mutable_upstream_grad() = g.Tensor();
    m.check = CheckStreamOutput(in.Like(Vjp(fn, in, g)), true);
    m.tag = absl::StrCat("V:", fn.Name());
    return m;
  }
  StreamMessage StreamBad(v1::StreamRequest request, std::string tag) {
    return StreamMessage{std::move(request), nullptr, std::move(tag)};
  }

  // A stream of `messages`; every message before the first bad one is
  // answered and checked.
  void AddStreamCase(std::string name, std::string group,
                     const std::vector<StreamMessage>& messages,
                     std::vector<Code> expected, int weight = 10) {
    Case c;
    c.stream = true;
    c.method = Method("Stream");
    std::vector<std::string> tags;
    bool failed = false;
    for (const StreamMessage& m : messages) {
      c.messages.push_back(Serialize(m.request));
      tags.push_back(m.tag);
      if (!m.check) failed = true;
      if (!failed) c.checks.push_back(m.check);
    }
    c.name = absl::StrCat("stream/", name, "/[", absl::StrJoin(tags, ","), "]");
    c.group = std::move(group);
    c.expected = std::move(expected);
    c.weight = weight;
    cases_.push_back(std::move(c));
  }

  void AddStream() {
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
         StreamDerivative(gelu, 1,
                          MakeInput({}, v1::FLOAT32, Encoding::kTyped)),
         StreamEvaluate(tanh,
                        MakeInput({64}, v1::FLOAT32, Encoding::kRaw, true))},
        {Code::OK});
    AddStreamCase(
        "valid", "Stream valid",
        {StreamDerivative(
            elu, 2, MakeInput({2, 9}, v1::FLOAT64, Encoding::kRaw, true))},
        {Code::OK});
    AddStreamCase("empty", "Stream valid", {}, {Code::OK});

    v1::StreamRequest bad_order;
    *bad_order.mutable_derivative()->mutable_spec() = tanh.Spec();
    *bad_order.mutable_derivative()->mutable_input() =
        MakeInput({4}, v1::FLOAT32, Encoding::kRaw).Tensor();
    bad_order.mutable_derivative()->set_order(3);
    AddStreamCase(
        "bad_third", "Stream invalid",
        {StreamEvaluate(gelu, MakeInput({8}, v1::FLOAT32, Encoding::kRaw)),
         StreamDerivative(tanh, 1,
                          MakeInput({2, 2}, v1::FLOAT64, Encoding::kTyped)),
         StreamBad(bad_order, "order3"),
         StreamEvaluate(gelu, MakeInput({8}, v1::FLOAT32, Encoding::kRaw))},
        {Code::INVALID_ARGUMENT});
    AddStreamCase("unset_request", "Stream invalid",
                  {StreamBad(v1::StreamRequest(), "unset")},
                  {Code::INVALID_ARGUMENT});
    v1::StreamRequest softmax_no_g;
    *softmax_no_g.mutable_derivative()->mutable_spec() = softmax.Spec();
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
        {StreamEvaluate(gelu, MakeInput({4}, v1::FLOAT32, Encoding::kRaw)),
         StreamBad(v1::StreamRequest(), "unparsable")},
        {Code::INVALID_ARGUMENT});
    cases_.back().messages.back() = Bytes("\x0a\xff\xff\xff\xff\x0f garbage");
    v1::StreamRequest over;
    *over.mutable_evaluate()->mutable_spec() = gelu.Spec();
    over.mutable_evaluate()->mutable_input()->add_shape(limits_.max_elements +
                                                        1);
    over.mutable_evaluate()->mutable_input()->set_dtype(v1::FLOAT32);
    AddStreamCase(
        "over_max_elements", "Stream limit",
        {StreamEvaluate(gelu, MakeInput({8}, v1::FLOAT32, Encoding::kTyped)),
         StreamBad(over, "over_max_elements")},
        {Code::RESOURCE_EXHAUSTED});
  }

  // Invalid requests: INVALID_ARGUMENT per SPEC.md §3.
  void AddInvalid() {
    const Fn gelu{Function::kGelu, std::nullopt, std::nullopt};
    const Input x = MakeInput({3, 5}, v1::FLOAT32, Encoding::kRaw);
    auto evaluate = [&](const v1::FunctionSpec& spec, const v1::Tensor& t) {
      v1::EvaluateRequest r;
      *r.mutable_spec() = spec;
      *r.mutable_input() = t;
      return r;
    };
    v1::FunctionSpec unspecified;
    v1::FunctionSpec unknown;
    unknown.set_function(static_cast<v1::Function>(99));
    AddInvalidArgument("evaluate/function_unspecified", "Evaluate",
                       evaluate(unspecified, x.Tensor()));
    AddInvalidArgument("evaluate/function_99", "Evaluate",
                       evaluate(unknown, x.Tensor()));
    {
      v1::EvaluateRequest r;
      *r.mutable_input() = x.Tensor();
      AddInvalidArgument("evaluate/spec_missing", "Evaluate", r);
      v1::EvaluateRequest no_input;
      *no_input.mutable_spec() = gelu.Spec();
      AddInvalidArgument("evaluate/input_missing", "Evaluate", no_input);
    }
    v1::Tensor t = x.Tensor();
    t.set_dtype(v1::DATA_TYPE_UNSPECIFIED);
    AddInvalidArgument("evaluate/dtype_unspecified", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = x.Tensor();
    t.set_dtype(static_cast<v1::DataType>(7));
    AddInvalidArgument("evaluate/dtype_7", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = x.Tensor();
    t.set_shape(0, -3);
    AddInvalidArgument("evaluate/negative_dim", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t.clear_shape();
    t.add_shape(-1);
    t.add_shape(int64_t{1} << 40);
    AddInvalidArgument("evaluate/negative_dim_and_huge_dim", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = x.Tensor();
    t.mutable_raw_data()->resize(14 * 4);
    AddInvalidArgument("evaluate/raw_bytes_short", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t.mutable_raw_data()->resize(15 * 4 + 3);
    AddInvalidArgument("evaluate/raw_bytes_ragged", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = x.Tensor();
    t.set_dtype(v1::FLOAT64);  // 60 bytes: 7.5 doubles
    AddInvalidArgument("evaluate/raw_bytes_for_other_dtype", "Evaluate",
                       evaluate(gelu.Spec(), t));
    const Input typed = MakeInput({3, 5}, v1::FLOAT32, Encoding::kTyped);
    t = typed.Tensor();
    t.mutable_float_data()->RemoveLast();
    AddInvalidArgument("evaluate/typed_count_short", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = typed.Tensor();
    t.add_float_data(1);
    AddInvalidArgument("evaluate/typed_count_long", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = typed.Tensor();
    t.set_dtype(v1::FLOAT64);
    AddInvalidArgument("evaluate/float_data_for_float64", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = x.Tensor();
    t.add_float_data(1);
    AddInvalidArgument("evaluate/raw_and_float_data", "Evaluate",
                       evaluate(gelu.Spec(), t));
    t = x.Tensor();
    t.clear_raw_data();
    AddInvalidArgument("evaluate/no_data", "Evaluate",
                       evaluate(gelu.Spec(), t));
    v1::FunctionSpec spec = Fn{Function::kLeakyRelu, std::nan(""), {}}.Spec();
    AddInvalidArgument("evaluate/alpha_nan", "Evaluate",
                       evaluate(spec, x.Tensor()));
    spec =
        Fn{Function::kElu, std::numeric_limits<double>::infinity(), {}}.Spec();
    AddInvalidArgument("evaluate/alpha_inf", "Evaluate",
                       evaluate(spec, x.Tensor()));
    spec = Fn{Function::kSigmoid, 0.5, {}}.Spec();
    AddInvalidArgument("evaluate/alpha_on_sigmoid", "Evaluate",
                       evaluate(spec, x.Tensor()));
    spec = Fn{Function::kSoftmax, {}, 2}.Spec();
    AddInvalidArgument("evaluate/softmax_axis_2_of_rank_2", "Evaluate",
                       evaluate(spec, x.Tensor()));
    spec = Fn{Function::kLogSoftmax, {}, -3}.Spec();
    AddInvalidArgument("evaluate/log_softmax_axis_-3_of_rank_2", "Evaluate",
                       evaluate(spec, x.Tensor()));
    spec = Fn{Function::kSoftmax, {}, {}}.Spec();
    AddInvalidArgument(
        "evaluate/softmax_of_scalar", "Evaluate",
        evaluate(spec, MakeInput({}, v1::FLOAT64, Encoding::kRaw).Tensor()));
    {
      Case c;
      c.name = "evaluate/unparsable";
      c.group = "Evaluate invalid";
      c.method = Method("Evaluate");
      c.messages.push_back(Bytes("\x0a\xff\xff\xff\xff\x0f garbage"));
      c.expected = {Code::INVALID_ARGUMENT};
      cases_.push_back(std::move(c));
    }

    // Derivative.
    const Fn tanh{Function::kTanh, std::nullopt, std::nullopt};
    const Fn softmax{Function::kSoftmax, std::nullopt, std::nullopt};
    const Input g = MakeInput({3, 5}, v1::FLOAT32, Encoding::kTyped);
    auto derivative = [&](const Fn& fn, int order, const v1::Tensor* upstream) {
      v1::DerivativeRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = x.Tensor();
      r.set_order(order);
      if (upstream) *r.mutable_upstream_grad() = *upstream;
      return r;
    };
    AddInvalidArgument("derivative/order_3", "Derivative",
                       derivative(tanh, 3, nullptr));
    AddInvalidArgument("derivative/order_-1", "Derivative",
                       derivative(tanh, -1, nullptr));
    v1::Tensor gt = g.Tensor();
    AddInvalidArgument("derivative/vjp_with_order_2", "Derivative",
                       derivative(tanh, 2, &gt));
    AddInvalidArgument("derivative/softmax_without_upstream", "Derivative",
                       derivative(softmax, 1, nullptr));
    AddInvalidArgument(
        "derivative/log_softmax_order_2_without_upstream", "Derivative",
        derivative(Fn{Function::kLogSoftmax, {}, {}}, 2, nullptr));
    gt = MakeInput({5, 3}, v1::FLOAT32, Encoding::kRaw).Tensor();
    AddInvalidArgument("derivative/upstream_shape_mismatch", "Derivative",
                       derivative(tanh, 1, &gt));
    gt = MakeInput({3, 5}, v1::FLOAT64, Encoding::kRaw).Tensor();
    AddInvalidArgument("derivative/upstream_dtype_mismatch", "Derivative",
                       derivative(softmax, 1, &gt));
    gt = g.Tensor();
    gt.mutable_float_data()->RemoveLast();
    AddInvalidArgument("derivative/upstream_count_mismatch", "Derivative",
                       derivative(tanh, 1, &gt));
    {
      v1::DerivativeRequest r = derivative(tanh, 1, nullptr);
      r.clear_input();
      AddInvalidArgument("derivative/input_missing", "Derivative", r);
      r = derivative(Fn{Function::kSoftmax, {}, 5}, 1, &gt);
      *r.mutable_upstream_grad() = g.Tensor();
      AddInvalidArgument("derivative/softmax_vjp_axis_5", "Derivative", r);
    }

    // Jacobian.
    auto jacobian = [&](const Fn& fn, const v1::Tensor& in, bool dense) {
      v1::JacobianRequest r;
      *r.mutable_spec() = fn.Spec();
      *r.mutable_input() = in;
      r.set_dense(dense);
      return r;
    };
    AddInvalidArgument(
        "jacobian/dense_of_scalar", "Jacobian",
        jacobian(gelu, MakeInput({}, v1::FLOAT32, Encoding::kRaw).Tensor(),
                 true));
    AddInvalidArgument(
        "jacobian/softmax_axis_-3_of_rank_2", "Jacobian",
        jacobian(Fn{Function::kSoftmax, {}, -3}, x.Tensor(), false));
    AddInvalidArgument(
        "jacobian/function_99", "Jacobian",
        jacobian(Fn{static_cast<Function>(99), {}, {}}, x.Tensor(), false));
    t = x.Tensor();
    t.mutable_raw_data()->resize(16);
    AddInvalidArgument("jacobian/raw_bytes_short", "Jacobian",
                       jacobian(softmax, t, true));

    // SoftmaxCrossEntropy: logits [4, 3].
    const Input logits = MakeInput({4, 3}, v1::FLOAT32, Encoding::kRaw);
    auto xent = [&](std::vector<int64_t> labels) {
      v1::SoftmaxCrossEntropyRequest r;
      *r.mutable_logits() = logits.Tensor();
      r.mutable_class_indices()->Add(labels.begin(), labels.end());
      return r;
    };
    AddInvalidArgument("xent/label_equal_to_classes", "SoftmaxCrossEntropy",
                       xent({0, 1, 3, 2}));
    AddInvalidArgument("xent/label_negative", "SoftmaxCrossEntropy",
                       xent({0, -1, 1, 2}));
    v1::SoftmaxCrossEntropyRequest r = xent({0, -100, 1, 5});
    r.set_ignore_index(-100);
    AddInvalidArgument("xent/label_out_of_range_with_ignore_index",
                       "SoftmaxCrossEntropy", r);
    AddInvalidArgument("xent/three_labels_for_four_rows", "SoftmaxCrossEntropy",
                       xent({0, 1, 2}));
    AddInvalidArgument("xent/no_labels", "SoftmaxCrossEntropy", xent({}));
    r = xent({0, 1, 2, 0});
    r.set_label_smoothing(1.0);
    AddInvalidArgument("xent/smoothing_1", "SoftmaxCrossEntropy", r);
    r.set_label_smoothing(-0.1);
    AddInvalidArgument("xent/smoothing_-0.1", "SoftmaxCrossEntropy", r);
    r.set_label_smoothing(std::nan(""));
    AddInvalidArgument("xent/smoothing_nan", "SoftmaxCrossEntropy", r);
    r = xent({});
    *r.mutable_target_probs() =
        MakeInput({4, 2}, v1::FLOAT32, Encoding::kRaw).Tensor();
    AddInvalidArgument("xent/target_probs_shape_mismatch",
                       "SoftmaxCrossEntropy", r);
    *r.mutable_target_probs() =
        MakeInput({4, 3}, v1::FLOAT64, Encoding::kRaw).Tensor();
    AddInvalidArgument("xent/target_probs_dtype_mismatch",
                       "SoftmaxCrossEntropy", r);
    *r.mutable_target_probs() =
        MakeInput({4, 3}, v1::FLOAT32, Encoding::kRaw).Tensor();
    r.set_ignore_index(0);
    AddInvalidArgument("xent/ignore_index_with_target_probs",
                       "SoftmaxCrossEntropy", r);
    r = xent({0});
    *r.mutable_logits() = MakeInput({}, v1::FLOAT32, Encoding::kRaw).Tensor();
    AddInvalidArgument("xent/scalar_logits", "SoftmaxCrossEntropy", r);
    r = xent({0, 0, 0});
    *r.mutable_logits() =
        MakeInput({3, 0}, v1::FLOAT64, Encoding::kRaw).Tensor();
    AddInvalidArgument("xent/zero_classes", "SoftmaxCrossEntropy", r);
    r = xent({0, 1, 2, 0});
    r.clear_logits();
    AddInvalidArgument("xent/logits_missing", "SoftmaxCrossEntropy", r);
    r = xent({0, 1, 2, 0});
    r.set_reduction(static_cast<v1::SoftmaxCrossEntropyRequest::Reduction>(5));
    AddInvalidArgument("xent/reduction_5", "SoftmaxCrossEntropy", r);

    // Analyze.
    auto analyze = [&](const Fn& fn) {
      v1::AnalyzeRequest a;
      *a.mutable_spec() = fn.Spec();
      *a.mutable_input() = x.Tensor();
      return a;
    };
    AddInvalidArgument("analyze/softmax", "Analyze", analyze(softmax));
    AddInvalidArgument("analyze/function_unspecified", "Analyze",
                       analyze(Fn{static_cast<Function>(0), {}, {}}));
    v1::AnalyzeRequest a = analyze(gelu);
    a.set_epsilon(-1);
    AddInvalidArgument("analyze/epsilon_-1", "Analyze", a);
    a.set_epsilon(std::nan(""));
    AddInvalidArgument("analyze/epsilon_nan", "Analyze", a);
    a = analyze(gelu);
    a.set_layers(-2);
    AddInvalidArgument("analyze/layers_-2", "Analyze", a);
    a = analyze(gelu);
    a.clear_input();
    AddInvalidArgument("analyze/input_missing", "Analyze", a);

    // Methods nobody serves.
    for (const std::string method :
         {"/actsvc.v1.ActivationService/Softmax",
          "/actsvc.v2.ActivationService/Evaluate", "/no.Such/Method"}) {
      Case c;
      c.name = absl::StrCat("unknown_method", method);
      c.group = "Unknown method";
      c.method = method;
      c.messages.push_back(Serialize(evaluate(gelu.Spec(), x.Tensor())));
      c.expected = {Code::UNIMPLEMENTED};
      cases_.push_back(std::move(c));
    }
  }

  // Requests over --max_elements, dense Jacobians over --max_message_mb:
  // RESOURCE_EXHAUSTED.
  void AddLimits() {
    const int64_t over = limits_.max_elements + 1;
    const Fn gelu{Function::kGelu, std::nullopt, std::nullopt};
    const Fn softmax{Function::kSoftmax, std::nullopt, std::nullopt};
    auto shape_only = [](std::vector<int64_t> shape, v1::DataType dtype) {
      v1::Tensor t;
      t.mutable_shape()->Add(shape.begin(), shape.end());
      t.set_dtype(dtype);
      return t;
    };
    auto add = [&](std::string name, absl::string_view rpc,
                   const google::protobuf::Message& request, int weight = 10) {
      AddUnary(std::move(name), absl::StrCat(rpc, " limit"), rpc, request,
               {Code::RESOURCE_EXHAUSTED}, nullptr, weight);
    };
    v1::EvaluateRequest e;
    *e.mutable_spec() = gelu.Spec();
    *e.mutable_input() = shape_only({over}, v1::FLOAT32);
    add(absl::StrCat("evaluate/over_max_elements/shape_only/[", over, "]"),
        "Evaluate", e);
    // The whole tensor sent: the server reads it all before refusing it.
    *e.mutable_input() =
        MakeInput({over}, v1::FLOAT32, Encoding::kRaw).Tensor();
    add(absl::StrCat("evaluate/over_max_elements/f32/raw/[", over, "]"),
        "Evaluate", e, 1);
    // No tensor has a shape whose element count overflows int64: invalid,
    // not over the limit (validation names input.shape).
    *e.mutable_input() =
        shape_only({int64_t{1} << 40, int64_t{1} << 40}, v1::FLOAT64);
    AddUnary("evaluate/element_count_overflows", "Evaluate invalid", "Evaluate",
             e, {Code::INVALID_ARGUMENT}, nullptr, 10);

    v1::DerivativeRequest d;
    *d.mutable_spec() = gelu.Spec();
    *d.mutable_input() = shape_only({2, over / 2 + 1}, v1::FLOAT64);
    d.set_order(2);
    add("derivative/over_max_elements/shape_only", "Derivative", d);

    v1::JacobianRequest j;
    *j.mutable_spec() = gelu.Spec();
    *j.mutable_input() = shape_only({over}, v1::FLOAT32);
    add("jacobian/over_max_elements/shape_only", "Jacobian", j);
    // Dense Jacobians whose response would exceed --max_message_mb: c^2
    // values per row of c, so a small request.
    const int64_t c =
        static_cast<int64_t>(std::sqrt(limits_.max_message_bytes / 8.0)) + 8;
    *j.mutable_spec() = softmax.Spec();
    *j.mutable_input() =
        MakeInput({1, c}, v1::FLOAT64, Encoding::kRaw).Tensor();
    add(absl::StrCat("jacobian/dense_over_max_message/softmax/f64/[1,", c, "]"),
        "Jacobian", j);
    const int64_t c32 =
        static_cast<int64_t>(std::sqrt(limits_.max_message_bytes / 4.0 / 2)) +
        8;
    *j.mutable_spec() = gelu.Spec();
    *j.mutable_input() =
        MakeInput({2, c32}, v1::FLOAT32, Encoding::kTyped).Tensor();
    j.set_dense(true);
    add(absl::StrCat("jacobian/dense_over_max_message/gelu/f32/[2,", c32, "]"),
        "Jacobian", j);

    v1::SoftmaxCrossEntropyRequest x;
    *x.mutable_logits() = shape_only({over, 1}, v1::FLOAT32);
    add("xent/over_max_elements/shape_only", "SoftmaxCrossEntropy", x);

    v1::AnalyzeRequest a;
    *a.mutable_spec() = gelu.Spec();
    *a.mutable_input() = shape_only({1, over}, v1::FLOAT64);
    add("analyze/over_max_elements/shape_only", "Analyze", a);
  }

  // Large requests (--max_elements elements) with a tiny deadline, and
  // calls the client cancels midway.
  void AddDeadlinesAndCancels() {
    const int64_t n = limits_.max_elements;
    const Fn gelu{Function::kGelu, std::nullopt, std::nullopt};
    const Fn silu{Function::kSilu, std::nullopt, std::nullopt};
    const Fn softmax{Function::kSoftmax, std::nullopt, std::nullopt};
    const Input big32 = MakeInput({n}, v1::FLOAT32, Encoding::kRaw);
    const Input big64 = MakeInput({4, n / 4}, v1::FLOAT64, Encoding::kRaw);

    v1::EvaluateRequest e;
    *e.mutable_spec() = gelu.Spec();
    *e.mutable_input() = big64.Tensor();
    const Check check_e =
        CheckOutput<v1::EvaluateResponse>(big64.Like(Forward(gelu, big64)));
    v1::DerivativeRequest d;
    *d.mutable_spec() = silu.Spec();
    *d.mutable_input() = big32.Tensor();
    d.set_order(2);
    const Check check_d = CheckOutput<v1::DerivativeResponse>(
        big32.Like(Derivative(silu, 2, big32)));
    v1::SoftmaxCrossEntropyRequest x;
    const int64_t classes = 128;
    const Input logits =
        MakeInput({n / classes, classes}, v1::FLOAT32, Encoding::kRaw);
    *x.mutable_logits() = logits.Tensor();
    for (int64_t i = 0; i < n / classes; ++i) x.add_class_indices(i % classes);

    // A tiny deadline: the call may still finish in time (then it is
    // checked), otherwise DEADLINE_EXCEEDED.
    for (int us : {300, 2000}) {
      AddUnary(absl::StrCat("evaluate/deadline_", us, "us/", gelu.Name(), "/",
                            big64.Tag()),
               "Evaluate deadline", "Evaluate", e,
               {Code::DEADLINE_EXCEEDED, Code::OK}, check_e, 1);
      cases_.back().deadline = absl::Microseconds(us);
    }
    AddUnary(absl::StrCat("derivative/deadline_1000us/", silu.Name(),
                          "/order2/", big32.Tag()),
             "Derivative deadline", "Derivative", d,
             {Code::DEADLINE_EXCEEDED, Code::OK}, check_d, 1);
    cases_.back().deadline = absl::Microseconds(1000);
    AddUnary(absl::StrCat("xent/deadline_1000us/", logits.Tag()),
             "SoftmaxCrossEntropy deadline", "SoftmaxCrossEntropy", x,
             {Code::DEADLINE_EXCEEDED, Code::OK}, nullptr, 1);
    cases_.back().checks.push_back([](const grpc::ByteBuffer& bytes) {
      v1::SoftmaxCrossEntropyResponse r;
      return Parse(bytes, &r) && r.loss().shape_size() == 0
                 ? std::string()
                 : std::string("not a scalar-loss response");
    });
    cases_.back().deadline = absl::Microseconds(1000);

    // Cancelled by the client as soon as it is started. The server may
    // still answer first (the cancel and the answer cross on the wire: OK
    // came 14 times in ~21,000 in a 10-minute soak), so either outcome is
    // right, and an answer is checked; the report counts each.
    AddUnary(absl::StrCat("evaluate/cancel_at_once/", big64.Tag()),
             "Evaluate cancel", "Evaluate", e, {Code::CANCELLED, Code::OK},
             check_e, 2);
    cases_.back().cancel_after = absl::ZeroDuration();
    // Cancelled while uploading or computing; the answer may win the race
    // (then it is checked).
    for (int us : {500, 3000}) {
      AddUnary(absl::StrCat("derivative/cancel_after_", us, "us/", silu.Name(),
                            "/order2/", big32.Tag()),
               "Derivative cancel", "Derivative", d,
               {Code::CANCELLED, Code::OK}, check_d, 2);
      cases_.back().cancel_after = absl::Microseconds(us);
    }
    // A stream cancelled after its first answer while the second, large
    // request is uploading or computing: never half-closed, it cannot end
    // OK, so CANCELLED whatever the timing.
    for (int us : {0, 1000}) {
      AddStreamCase(
          absl::StrCat("cancel_after_first_answer_plus_", us, "us"),
          "Stream cancel",
          {StreamVjp(softmax, MakeInput({3, 7}, v1::FLOAT32, Encoding::kRaw)),
           StreamEvaluate(gelu, big64)},
          {Code::CANCELLED}, 2);
      Case& c = cases_.back();
      c.half_close = false;
      c.fewer_responses_ok = true;
      c.cancel_after = absl::Microseconds(us);
      c.cancel_after_responses = 1;
    }
    AddStreamCase(
        "deadline_1000us", "Stream deadline",
        {StreamEvaluate(gelu, MakeInput({8}, v1::FLOAT64, Encoding::kRaw)),
         StreamDerivative(silu, 2, big32)},
        {Code::DEADLINE_EXCEEDED, Code::OK}, 1);
    cases_.back().deadline = absl::Microseconds(1000);
    cases_.back().fewer_responses_ok = true;
  }

  const Limits limits_;
  std::mt19937_64 rng_;
  std::vector<Case> cases_;
  size_t shape_turn_ = 0;
  size_t softmax_turn_ = 0;
};

// ---------------------------------------------------------------------------
// The driver.

// Cancels calls at given times, from its own thread.
class Canceller {
 public:
  Canceller() : thread_([this] { Loop(); }) {}
  ~Canceller() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // The context stays alive until then: cancelling a call that has ended is
  // harmless, cancelling a destroyed context is not.
  void CancelAt(absl::Time when, std::shared_ptr<grpc::ClientContext> context) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.emplace(when, std::move(context));
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (pending_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const absl::Time next = pending_.begin()->first;
      if (absl::Now() < next) {
        cv_.wait_until(lock, absl::ToChronoTime(next));
        continue;
      }
      std::shared_ptr<grpc::ClientContext> context =
          std::move(pending_.begin()->second);
      pending_.erase(pending_.begin());
      lock.unlock();
      context->TryCancel();
      context.reset();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<absl::Time, std::shared_ptr<grpc::ClientContext>> pending_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the rest exists
};

// How one call ended.
struct Outcome {
  int code = 0;
  std::string message;  // the server's (or gRPC's) error message
  std::string wrong;    // what is wrong with an answer; "" when right
  int responses = 0;    // stream
};

struct CaseTally {
  std::array<int64_t, kCodes> codes{};
  int64_t wrong = 0;          // unexpected status or wrong answer
  std::string first_message;  // of a non-OK status, for --verify
};

class Driver {
 public:
  Driver(const std::vector<Case>& cases, std::shared_ptr<grpc::Channel> channel,
         absl::Duration timeout, uint64_t seed, int show_failures)
      : cases_(cases),
        stub_(std::move(channel)),
        timeout_(timeout),
        rng_(seed),
        show_failures_(show_failures),
        tallies_(cases.size()) {
    std::vector<int> weights;
    for (const Case& c : cases_) weights.push_back(c.weight);
    draw_ = std::discrete_distribution<size_t>(weights.begin(), weights.end());
  }

  // Keeps `concurrency` calls outstanding until `duration` has passed, then
  // waits for the last ones. In sequence mode, calls every case once, in
  // order, with concurrency 1.
  void Run(int concurrency, absl::Duration duration, bool sequence,
           int progress_s) {
    sequence_ = sequence;
    start_ = absl::Now();
    stop_at_ = start_ + duration;
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_ = concurrency;
    }
    for (int slot = 0; slot < concurrency; ++slot) IssueNext();
    std::unique_lock<std::mutex> lock(mu_);
    absl::Time next_progress = start_ + absl::Seconds(progress_s);
    while (active_ > 0) {
      if (progress_s <= 0) {
        cv_.wait(lock);
        continue;
      }
      cv_.wait_until(lock, absl::ToChronoTime(next_progress));
      if (absl::Now() >= next_progress && active_ > 0) {
        const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
        std::fprintf(stderr,
                     "actsvc-soak: %6.1f s, %lld calls (%.0f/s), %lld "
                     "unexpected, %d slots active\n",
                     elapsed, static_cast<long long>(calls_),
                     calls_ / std::max(elapsed, 1e-9),
                     static_cast<long long>(failures_), active_);
        next_progress += absl::Seconds(progress_s);
      }
    }
    end_ = absl::Now();
  }

  int64_t calls() const { return calls_; }
  int64_t failures() const { return failures_; }
  double seconds() const { return absl::ToDoubleSeconds(end_ - start_); }
  const std::vector<CaseTally>& tallies() const { return tallies_; }
  const std::vector<std::string>& failure_lines() const { return shown_; }

 private:
  class StreamCall;

  void IssueNext();

  void Finish(size_t index, Outcome outcome) {
    const Case& c = cases_[index];
    const bool expected =
        std::find(c.expected.begin(), c.expected.end(),
                  static_cast<Code>(outcome.code)) != c.expected.end();
    if (outcome.code == 0 && c.stream && outcome.wrong.empty() &&
        outcome.responses != static_cast<int>(c.checks.size())) {
      outcome.wrong =
          absl::StrCat("the stream ended OK after ", outcome.responses,
                       " responses, expected ", c.checks.size());
    }
    if (outcome.code != 0 && c.stream && outcome.wrong.empty() && expected &&
        !c.fewer_responses_ok &&
        outcome.responses != static_cast<int>(c.checks.size())) {
      outcome.wrong =
          absl::StrCat("the stream failed after ", outcome.responses,
                       " responses, expected ", c.checks.size());
    }
    const bool bad = !expected || !outcome.wrong.empty();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_;
      CaseTally& t = tallies_[index];
      if (outcome.code >= 0 && outcome.code < kCodes) ++t.codes[outcome.code];
      if (outcome.code != 0 && t.first_message.empty()) {
        t.first_message = outcome.message;
      }
      if (bad) {
        ++t.wrong;
        ++failures_;
        // The first failure of each case, up to show_failures_ of them.
        if (t.wrong == 1 && static_cast<int>(shown_.size()) < show_failures_) {
          std::vector<std::string> want;
          for (Code code : c.expected) want.push_back(CodeName(code));
          shown_.push_back(absl::StrCat(
              c.name, ": got ", CodeName(outcome.code),
              outcome.message.empty()
                  ? ""
                  : absl::StrCat(" (", outcome.message, ")"),
              ", expected ", absl::StrJoin(want, " or "),
              outcome.wrong.empty()
                  ? ""
                  : absl::StrCat("; wrong answer: ", outcome.wrong),
              absl::StrFormat(" [at %.1f s]",
                              absl::ToDoubleSeconds(absl::Now() - start_))));
        }
      }
    }
    IssueNext();
  }

  const std::vector<Case>& cases_;
  grpc::GenericStub stub_;
  const absl::Duration timeout_;
  Canceller canceller_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::mt19937_64 rng_;
  std::discrete_distribution<size_t> draw_;
  const int show_failures_;
  bool sequence_ = false;
  size_t next_in_sequence_ = 0;
  absl::Time start_, stop_at_, end_;
  int active_ = 0;
  int64_t calls_ = 0;
  int64_t failures_ = 0;
  std::vector<CaseTally> tallies_;
  std::vector<std::string> shown_;
};

// One Stream call: writes the case's messages in turn (then half-closes,
// unless the case cancels), reads and checks the responses, and may cancel
// after some of them.
class Driver::StreamCall
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(Driver* driver, size_t index,
             std::shared_ptr<grpc::ClientContext> context)
      : driver_(driver),
        index_(index),
        case_(driver->cases_[index]),
        context_(std::move(context)) {
    driver_->stub_.PrepareBidiStreamingCall(context_.get(), case_.method,
                                            grpc::StubOptions(), this);
    StartRead(&response_);
    if (!case_.messages.empty()) {
      next_write_ = 1;
      StartWrite(&case_.messages[0]);
    } else if (case_.half_close) {
      StartWritesDone();
    }
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return;  // the call is ending: OnDone follows
    if (next_write_ < case_.messages.size()) {
      StartWrite(&case_.messages[next_write_++]);
    } else if (case_.half_close) {
      StartWritesDone();
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    const int i = responses_++;
    if (wrong_.empty()) {
      wrong_ = i < static_cast<int>(case_.checks.size())
                   ? case_.checks[i](response_)
                   : absl::StrCat("an unexpected response #", i);
      if (!wrong_.empty()) wrong_ = absl::StrCat("response #", i, ": ", wrong_);
    }
    if (case_.cancel_after && responses_ == case_.cancel_after_responses) {
      if (*case_.cancel_after == absl::ZeroDuration()) {
        context_->TryCancel();
      } else {
        driver_->canceller_.CancelAt(absl::Now() + *case_.cancel_after,
                                     context_);
      }
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    Outcome outcome;
    outcome.code = status.error_code();
    outcome.message = status.error_message();
    outcome.wrong = std::move(wrong_);
    outcome.responses = responses_;
    Driver* driver = driver_;
    const size_t index = index_;
    delete this;
    driver->Finish(index, std::move(outcome));
  }

 private:
  Driver* const driver_;
  const size_t index_;
  const Case& case_;
  std::shared_ptr<grpc::ClientContext> context_;
  grpc::ByteBuffer response_;
  size_t next_write_ = 0;  // touched by the write callbacks only
  int responses_ = 0;      // and these by the read callbacks only
  std::string wrong_;
};

void Driver::IssueNext() {
  size_t index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const bool over = sequence_ ? next_in_sequence_ >= cases_.size()
                                : absl::Now() >= stop_at_;
    if (over) {
      --active_;
      cv_.notify_all();
      return;
    }
    index = sequence_ ? next_in_sequence_++ : draw_(rng_);
  }
  const Case& c = cases_[index];
  auto context = std::make_shared<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(
      absl::Now() +
      (c.deadline > absl::ZeroDuration() ? c.deadline : timeout_)));
  if (c.stream) {
    new StreamCall(this, index, std::move(context));
    return;
  }
  struct Call {
    std::shared_ptr<grpc::ClientContext> context;
    grpc::ByteBuffer response;
  };
  auto* call = new Call{context, {}};
  stub_.UnaryCall(call->context.get(), c.method, grpc::StubOptions(),
                  &c.messages[0], &call->response,
                  [this, call, index](grpc::Status status) {
                    Outcome outcome;
                    outcome.code = status.error_code();
                    outcome.message = status.error_message();
                    const Case& c = cases_[index];
                    if (status.ok() && !c.checks.empty()) {
                      outcome.wrong = c.checks[0](call->response);
                    }
                    delete call;
                    Finish(index, std::move(outcome));
                  });
  if (c.cancel_after) {
    if (*c.cancel_after == absl::ZeroDuration()) {
      context->TryCancel();
    } else {
      canceller_.CancelAt(absl::Now() + *c.cancel_after, context);
    }
  }
}

std::string CodeCounts(const std::array<int64_t, kCodes>& codes) {
  std::vector<std::string> parts;
  for (int code = 0; code < kCodes; ++code) {
    if (codes[code] > 0) {
      parts.push_back(absl::StrCat(CodeName(code), "=", codes[code]));
    }
  }
  return absl::StrJoin(parts, " ");
}

std::string ExpectedString(const Case& c) {
  std::vector<std::string> want;
  for (Code code : c.expected) want.push_back(CodeName(code));
  return absl::StrJoin(want, "|");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Soak test of a running actsvc-server: a closed loop of valid and "
      "invalid calls of every RPC, each answer and status checked. See "
      "bench/soak.sh.");
  absl::ParseCommandLine(argc, argv);
  const Limits limits{absl::GetFlag(FLAGS_max_elements),
                      int64_t{absl::GetFlag(FLAGS_max_message_mb)} << 20};
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  if (limits.max_elements < 1024 || limits.max_message_bytes <= 0 ||
      concurrency < 1) {
    std::fprintf(stderr,
                 "actsvc-soak: --max_elements must be >= 1024, "
                 "--max_message_mb and --concurrency >= 1\n");
    return 2;
  }
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const std::vector<Case> cases = TableBuilder(limits, seed).Build();
  if (absl::GetFlag(FLAGS_list)) {
    for (const Case& c : cases) {
      std::printf("%-34s %-28s w=%-2d %s\n", c.group.c_str(),
                  ExpectedString(c).c_str(), c.weight, c.name.c_str());
    }
    std::printf("%zu cases\n", cases.size());
    return 0;
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(
          absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    std::fprintf(stderr, "actsvc-soak: cannot connect to %s\n",
                 absl::GetFlag(FLAGS_target).c_str());
    return 1;
  }

  const bool verify = absl::GetFlag(FLAGS_verify);
  Driver driver(cases, channel, absl::GetFlag(FLAGS_timeout), seed,
                verify ? static_cast<int>(cases.size())
                       : absl::GetFlag(FLAGS_show_failures));
  driver.Run(verify ? 1 : concurrency, absl::GetFlag(FLAGS_duration), verify,
             verify ? 0 : absl::GetFlag(FLAGS_progress_s));

  const std::vector<CaseTally>& tallies = driver.tallies();
  if (verify) {
    for (size_t i = 0; i < cases.size(); ++i) {
      const CaseTally& t = tallies[i];
      std::printf("%s %-40s %-30s got %s %s\n", t.wrong ? "FAIL" : "ok  ",
                  cases[i].name.c_str(), ExpectedString(cases[i]).c_str(),
                  CodeCounts(t.codes).c_str(), t.first_message.c_str());
    }
  } else {
    // By class, then by case.
    std::map<std::string, CaseTally> by_group;
    std::array<int64_t, kCodes> total{};
    for (size_t i = 0; i < cases.size(); ++i) {
      CaseTally& g = by_group[cases[i].group];
      for (int code = 0; code < kCodes; ++code) {
        g.codes[code] += tallies[i].codes[code];
        total[code] += tallies[i].codes[code];
      }
      g.wrong += tallies[i].wrong;
    }
    std::printf("by case (calls, statuses, unexpected):\n");
    for (size_t i = 0; i < cases.size(); ++i) {
      const CaseTally& t = tallies[i];
      int64_t calls = 0;
      for (int64_t n : t.codes) calls += n;
      std::printf(
          "  %-66s %7lld  %s%s\n", cases[i].name.c_str(),
          static_cast<long long>(calls), CodeCounts(t.codes).c_str(),
          t.wrong ? absl::StrCat("  UNEXPECTED=", t.wrong).c_str() : "");
    }
    std::printf("by class (calls, statuses, unexpected):\n");
    for (const auto& [group, t] : by_group) {
      int64_t calls = 0;
      for (int64_t n : t.codes) calls += n;
      std::printf(
          "  %-30s %9lld  %s%s\n", group.c_str(), static_cast<long long>(calls),
          CodeCounts(t.codes).c_str(),
          t.wrong ? absl::StrCat("  UNEXPECTED=", t.wrong).c_str() : "");
    }
    std::printf("statuses: %s\n", CodeCounts(total).c_str());
    std::printf(
        "calls: %lld in %.1f s, %.0f calls/s, concurrency %d, %zu cases, "
        "seed %llu\n",
        static_cast<long long>(driver.calls()), driver.seconds(),
        driver.calls() / std::max(driver.seconds(), 1e-9), concurrency,
        cases.size(), static_cast<unsigned long long>(seed));
  }
  const std::vector<std::string>& failures = driver.failure_lines();
  if (driver.failures() > 0) {
    std::printf(
        "%lld unexpected outcomes; the first of each case (at most "
        "%zu):\n",
        static_cast<long long>(driver.failures()), failures.size());
    for (const std::string& line : failures) {
      std::printf("  %s\n", line.c_str());
    }
    std::printf("FAIL: %lld unexpected statuses or wrong answers\n",
                static_cast<long long>(driver.failures()));
    return 1;
  }
  std::printf("PASS: every status and answer as expected\n");
  return 0;
}
