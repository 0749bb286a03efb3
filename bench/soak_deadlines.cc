// The soak's deadlines and cancels: large requests (--max_elements
// elements) with a tiny deadline, and calls the client cancels at once,
// midway, or after a stream's first answer. Where the answer may win the
// race, OK is accepted too (and the answer checked); the report counts
// each outcome.
#include "absl/strings/str_cat.h"
#include "bench/soak_table.h"

namespace actsvc::soak {

namespace v1 = ::actsvc::v1;

// The large requests, built once for both parts.
struct TableBuilder::Large {
  Fn gelu{Function::kGelu, std::nullopt, std::nullopt};
  Fn silu{Function::kSilu, std::nullopt, std::nullopt};
  Input big32, big64, logits;
  v1::EvaluateRequest evaluate;  // gelu of big64
  Check check_evaluate;
  v1::DerivativeRequest derivative;  // silu'' of big32
  Check check_derivative;
  v1::SoftmaxCrossEntropyRequest xent;  // logits [n / 128, 128]
};

void TableBuilder::AddDeadlinesAndCancels() {
  const int64_t n = limits_.max_elements;
  Large large;
  large.big32 = MakeInput({n}, v1::FLOAT32, Encoding::kRaw);
  large.big64 = MakeInput({4, n / 4}, v1::FLOAT64, Encoding::kRaw);
  *large.evaluate.mutable_spec() = large.gelu.Spec();
  *large.evaluate.mutable_input() = large.big64.Tensor();
  large.check_evaluate = CheckOutput<v1::EvaluateResponse>(
      large.big64.Like(Forward(large.gelu, large.big64)));
  *large.derivative.mutable_spec() = large.silu.Spec();
  *large.derivative.mutable_input() = large.big32.Tensor();
  large.derivative.set_order(2);
  large.check_derivative = CheckOutput<v1::DerivativeResponse>(
      large.big32.Like(Derivative(large.silu, 2, large.big32)));
  const int64_t classes = 128;
  large.logits = MakeInput({n / classes, classes}, v1::FLOAT32, Encoding::kRaw);
  *large.xent.mutable_logits() = large.logits.Tensor();
  for (int64_t i = 0; i < n / classes; ++i) {
    large.xent.add_class_indices(i % classes);
  }
  AddDeadlines(large);
  AddCancels(large);
}

// A tiny deadline: the call may still finish in time (then it is checked),
// otherwise DEADLINE_EXCEEDED.
void TableBuilder::AddDeadlines(const Large& large) {
  const std::vector<Code> either = {Code::DEADLINE_EXCEEDED, Code::OK};
  for (int us : {300, 2000}) {
    AddUnary(absl::StrCat("evaluate/deadline_", us, "us/", large.gelu.Name(),
                          "/", large.big64.Tag()),
             "Evaluate deadline", "Evaluate", large.evaluate, either,
             large.check_evaluate, 1)
        .deadline = absl::Microseconds(us);
  }
  AddUnary(absl::StrCat("derivative/deadline_1000us/", large.silu.Name(),
                        "/order2/", large.big32.Tag()),
           "Derivative deadline", "Derivative", large.derivative, either,
           large.check_derivative, 1)
      .deadline = absl::Microseconds(1000);
  AddUnary(
      absl::StrCat("xent/deadline_1000us/", large.logits.Tag()),
      "SoftmaxCrossEntropy deadline", "SoftmaxCrossEntropy", large.xent, either,
      [](const grpc::ByteBuffer& bytes) {
        v1::SoftmaxCrossEntropyResponse r;
        return client::Parse(bytes, &r) && r.loss().shape_size() == 0
                   ? std::string()
                   : std::string("not a scalar-loss response");
      },
      1)
      .deadline = absl::Microseconds(1000);
  Case& stream = AddStreamCase(
      "deadline_1000us", "Stream deadline",
      {StreamEvaluate(large.gelu, MakeInput({8}, v1::FLOAT64, Encoding::kRaw)),
       StreamDerivative(large.silu, 2, large.big32)},
      either, 1);
  stream.deadline = absl::Microseconds(1000);
  stream.fewer_responses_ok = true;
}

void TableBuilder::AddCancels(const Large& large) {
  // Cancelled by the client as soon as it is started. The server may still
  // answer first (the cancel and the answer cross on the wire: OK came 14
  // times in ~21,000 in a 10-minute soak), so either outcome is right, and
  // an answer is checked; the report counts each.
  AddUnary(absl::StrCat("evaluate/cancel_at_once/", large.big64.Tag()),
           "Evaluate cancel", "Evaluate", large.evaluate,
           {Code::CANCELLED, Code::OK}, large.check_evaluate, 2)
      .cancel_after = absl::ZeroDuration();
  // Cancelled while uploading or computing; the answer may win the race
  // (then it is checked).
  for (int us : {500, 3000}) {
    AddUnary(absl::StrCat("derivative/cancel_after_", us, "us/",
                          large.silu.Name(), "/order2/", large.big32.Tag()),
             "Derivative cancel", "Derivative", large.derivative,
             {Code::CANCELLED, Code::OK}, large.check_derivative, 2)
        .cancel_after = absl::Microseconds(us);
  }
  // A stream cancelled after its first answer while the second, large
  // request is uploading or computing: never half-closed, it cannot end
  // OK, so CANCELLED whatever the timing.
  const Fn softmax{Function::kSoftmax, std::nullopt, std::nullopt};
  for (int us : {0, 1000}) {
    Case& c = AddStreamCase(
        absl::StrCat("cancel_after_first_answer_plus_", us, "us"),
        "Stream cancel",
        {StreamVjp(softmax, MakeInput({3, 7}, v1::FLOAT32, Encoding::kRaw)),
         StreamEvaluate(large.gelu, large.big64)},
        {Code::CANCELLED}, 2);
    c.half_close = false;
    c.fewer_responses_ok = true;
    c.cancel_after = absl::Microseconds(us);
    c.cancel_after_responses = 1;
  }
}

}  // namespace actsvc::soak
