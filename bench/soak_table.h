// The soak's table of cases (bench/soak_main.cc runs them): each case is one
// call, unary or stream, with the statuses SPEC.md §3 allows for it and a
// check of each answer. TableBuilder makes the table; its parts live in
// files by concern: valid calls (soak_valid.cc), invalid calls and limits
// (soak_invalid.cc), deadlines and cancels (soak_deadlines.cc), and the
// KServe v2 calls (soak_kserve.cc). Answers are the load library's
// (client/answers.h, client/answer_check.h).
#ifndef ACTSVC_BENCH_SOAK_TABLE_H_
#define ACTSVC_BENCH_SOAK_TABLE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "actsvc/v1/activation.pb.h"
#include "client/answer_check.h"
#include "client/answers.h"
#include "client/calls.h"
#include "client/format.h"
#include "client/tensor.h"
#include "core/activation.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::soak {

using Code = ::grpc::StatusCode;
using ::actsvc::client::Encoding;
// "" when a response is right, else what is wrong.
using Check = std::function<std::string(const grpc::ByteBuffer&)>;

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

// The server's limits, which the table's limit cases go just over.
struct Limits {
  int64_t max_elements;
  int64_t max_message_bytes;
};

// "/actsvc.v1.ActivationService/<rpc>".
std::string Method(absl::string_view rpc);
absl::string_view DtypeTag(actsvc::v1::DataType dtype);
absl::string_view EncodingTag(Encoding e);

// The function a FunctionSpec names.
struct Fn {
  Function f = Function::kIdentity;
  std::optional<double> alpha;  // set in the request when given
  std::optional<int> axis;      // softmax/log_softmax

  actsvc::v1::FunctionSpec Spec() const;
  std::string Name() const;  // "elu(0.5)", "softmax@-1"
};

// An input tensor and what it holds.
struct Input {
  std::vector<int64_t> shape;
  actsvc::v1::DataType dtype = actsvc::v1::FLOAT32;
  Encoding encoding = Encoding::kRaw;
  std::vector<double> values;  // already rounded to dtype

  actsvc::v1::Tensor Tensor() const;
  std::string Tag() const;  // "f32/raw/[3,5]"
  client::InputValues AsValues() const { return {shape, dtype, values}; }
  // An output tensor of the request's dtype and encoding.
  client::Want Like(client::Answer answer) const;
  client::Want Like(std::vector<double> values) const {
    return Like(client::Answer{shape, std::move(values)});
  }
};

// The client's answers (the core's, in the input's dtype).
std::vector<double> Forward(const Fn& fn, const Input& in);
std::vector<double> Derivative(const Fn& fn, int order, const Input& in);
std::vector<double> Vjp(const Fn& fn, const Input& in, const Input& g);
// The Jacobian as a dense Jacobian request answers it.
client::Answer DenseJacobian(const Fn& fn, const Input& in);

// "" when `got` is `want` (24 values compared); else "<field>: <what>".
std::string CheckField(const actsvc::v1::Tensor& got, const client::Want& want,
                       absl::string_view field);

// The output (JacobianResponse: the jacobian, with its diagonal flag) of a
// response of type Response.
template <typename Response>
Check CheckOutput(client::Want want, bool diagonal = false) {
  return [want = std::move(want), diagonal](const grpc::ByteBuffer& bytes) {
    Response r;
    if (!client::Parse(bytes, &r)) {
      return absl::StrCat("unparsable ", Response::descriptor()->name());
    }
    if constexpr (std::is_same_v<Response, actsvc::v1::JacobianResponse>) {
      if (r.diagonal() != diagonal) {
        return absl::StrCat("diagonal = ", r.diagonal(), ", expected ",
                            diagonal);
      }
      return CheckField(r.jacobian(), want, "jacobian");
    } else {
      return CheckField(r.output(), want, "output");
    }
  };
}

// A StreamResponse holding an evaluate (or derivative) response.
Check CheckStreamOutput(client::Want want, bool derivative);

class TableBuilder {
 public:
  TableBuilder(const Limits& limits, uint64_t seed)
      : limits_(limits), rng_(seed) {}

  // Every case, the KServe v2 ones (soak_kserve.h) last.
  std::vector<Case> Build();

 private:
  // soak_valid.cc
  void AddEvaluate();
  void AddDerivative();
  void AddVjp(size_t* turn);
  void AddJacobian();
  void AddDenseJacobian(size_t* turn);
  struct Xent;
  void AddCrossEntropy();
  void AddCrossEntropyCase(const Xent& x);
  void AddAnalyze();
  void AddListFunctionsAndHealth();
  void AddHealth();
  void AddStream();

  // soak_invalid.cc: INVALID_ARGUMENT per SPEC.md §3, then the limits.
  void AddInvalidSpec();
  void AddInvalidTensor();
  void AddInvalidDerivative();
  void AddInvalidJacobian();
  void AddInvalidCrossEntropy();
  void AddInvalidCrossEntropyLabels();
  void AddInvalidAnalyze();
  void AddUnknownMethods();
  void AddInvalidStream();
  void AddLimits();
  void AddJacobianLimits();

  // soak_deadlines.cc: large requests with tiny deadlines, and calls the
  // client cancels.
  struct Large;
  void AddDeadlinesAndCancels();
  void AddDeadlines(const Large& large);
  void AddCancels(const Large& large);

  // The pieces every part builds with (soak_table.cc).

  // Values of `dtype` uniform in [lo, hi); with `specials`, the first ones
  // are NaN, the infinities, signed zeros, a subnormal, the largest finite
  // values and tails.
  std::vector<double> Values(int64_t n, actsvc::v1::DataType dtype,
                             bool specials, double lo = -8, double hi = 8);
  Input MakeInput(std::vector<int64_t> shape, actsvc::v1::DataType dtype,
                  Encoding encoding, bool specials = false);

  Case& AddUnary(std::string name, std::string group, absl::string_view rpc,
                 const google::protobuf::Message& request,
                 std::vector<Code> expected, Check check = nullptr,
                 int weight = 10);
  void AddValid(std::string name, absl::string_view rpc,
                const google::protobuf::Message& request, Check check,
                int weight = 10);
  void AddInvalidArgument(std::string name, absl::string_view rpc,
                          const google::protobuf::Message& request);
  // A case sending `bytes` as they are to `method`.
  Case& AddRaw(std::string name, std::string group, std::string method,
               grpc::ByteBuffer bytes, Code expected);

  // A Stream message and the check of its response.
  struct StreamMessage {
    actsvc::v1::StreamRequest request;
    Check check;  // null for a message that fails the stream
    std::string tag;
  };
  StreamMessage StreamEvaluate(const Fn& fn, const Input& in);
  StreamMessage StreamDerivative(const Fn& fn, int order, const Input& in);
  StreamMessage StreamVjp(const Fn& fn, const Input& in);
  static StreamMessage StreamBad(actsvc::v1::StreamRequest request,
                                 std::string tag);
  // A stream of `messages`; every message before the first bad one is
  // answered and checked.
  Case& AddStreamCase(std::string name, std::string group,
                      const std::vector<StreamMessage>& messages,
                      std::vector<Code> expected, int weight = 10);

  static std::vector<Function> AllFunctions();
  static std::vector<Function> Elementwise();
  // The four (dtype, encoding) pairs, in turn.
  static std::pair<actsvc::v1::DataType, Encoding> Variant(size_t i);
  // Elementwise shapes, from a scalar to empty tensors; taken in turn.
  std::vector<int64_t> ElementwiseShape();
  // Softmax shapes with an axis each, taken in turn.
  std::pair<std::vector<int64_t>, std::optional<int>> SoftmaxShape();
  // A function spec for the turn: leaky_relu and elu sometimes with an
  // explicit alpha, softmax with an axis (and its shape).
  Fn FnFor(Function f, size_t turn, std::vector<int64_t>* shape);
  // The turn's function (FnFor) into `fn`, and an input of its shape (or
  // `shape`) in the (dtype, encoding) pair Variant(variant).
  Input TurnInput(Function f, size_t turn, size_t variant, bool specials,
                  Fn* fn,
                  std::optional<std::vector<int64_t>> shape = std::nullopt);

  const Limits limits_;
  std::mt19937_64 rng_;
  std::vector<Case> cases_;
  size_t shape_turn_ = 0;
  size_t softmax_turn_ = 0;
};

}  // namespace actsvc::soak

#endif  // ACTSVC_BENCH_SOAK_TABLE_H_
