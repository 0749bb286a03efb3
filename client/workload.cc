#include "client/workload.h"

#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/answer_check.h"
#include "client/answers.h"
#include "core/softmax.h"

namespace actsvc::client::bench {
namespace {

namespace v1 = ::actsvc::v1;

// The expected answer of the workload's RPC into `w`.
absl::Status ComputeExpected(const WorkloadSpec& ws, const InputValues& x,
                             const std::vector<double>& g,
                             const std::vector<int64_t>& labels, Workload* w) {
  absl::StatusOr<Answer> answer;
  switch (ws.rpc) {
    case Rpc::kEvaluate:
    case Rpc::kStream:
      answer = ExpectedEvaluate(ws.spec, x);
      break;
    case Rpc::kDerivative:
      answer = ExpectedDerivative(ws.spec, ws.order, x);
      break;
    case Rpc::kVjp:
      answer = ExpectedVjp(ws.spec, x, g);
      break;
    case Rpc::kJacobian:
      answer = ExpectedJacobian(ws.spec, ws.dense, x);
      break;
    case Rpc::kXent: {
      CrossEntropyInput in;
      in.logits = x;
      in.class_indices = labels;
      absl::StatusOr<CrossEntropyAnswer> xent = ExpectedCrossEntropy(in);
      if (!xent.ok()) return xent.status();
      w->expected_loss = xent->loss.values.at(0);
      answer = std::move(xent->grad_logits);
      break;
    }
  }
  if (!answer.ok()) return answer.status();
  w->expected_shape = std::move(answer->shape);
  w->expected = std::move(answer->values);
  return absl::OkStatus();
}

// The request of the workload's RPC, serialized, and its method.
void BuildRequest(const WorkloadSpec& ws, const std::vector<double>& x,
                  const std::vector<double>& g,
                  const std::vector<int64_t>& labels, Workload* w) {
  const v1::Tensor input = MakeTensor(ws.shape, ws.dtype, x, ws.encoding);
  const std::string service = "/actsvc.v1.ActivationService/";
  switch (ws.rpc) {
    case Rpc::kEvaluate:
    case Rpc::kStream: {
      v1::EvaluateRequest request;
      *request.mutable_spec() = ws.spec;
      *request.mutable_input() = input;
      if (ws.rpc == Rpc::kStream) {
        v1::StreamRequest stream_request;
        *stream_request.mutable_evaluate() = std::move(request);
        w->method = service + "Stream";
        w->request = Serialize(stream_request);
      } else {
        w->method = service + "Evaluate";
        w->request = Serialize(request);
      }
      break;
    }
    case Rpc::kDerivative:
    case Rpc::kVjp: {
      v1::DerivativeRequest request;
      *request.mutable_spec() = ws.spec;
      *request.mutable_input() = input;
      request.set_order(ws.rpc == Rpc::kVjp ? 1 : ws.order);
      if (ws.rpc == Rpc::kVjp) {
        *request.mutable_upstream_grad() =
            MakeTensor(ws.shape, ws.dtype, g, ws.encoding);
      }
      w->method = service + "Derivative";
      w->request = Serialize(request);
      break;
    }
    case Rpc::kJacobian: {
      v1::JacobianRequest request;
      *request.mutable_spec() = ws.spec;
      *request.mutable_input() = input;
      request.set_dense(ws.dense);
      w->method = service + "Jacobian";
      w->request = Serialize(request);
      break;
    }
    case Rpc::kXent: {
      v1::SoftmaxCrossEntropyRequest request;
      *request.mutable_logits() = input;
      request.mutable_class_indices()->Add(labels.begin(), labels.end());
      w->method = service + "SoftmaxCrossEntropy";
      w->request = Serialize(request);
      break;
    }
  }
  w->request_bytes = static_cast<int64_t>(w->request.Length());
}

std::string CompareTensor(const v1::Tensor& tensor, const Workload& w) {
  return CheckTensor(tensor,
                     Want{w.expected_shape, w.dtype, w.expected, std::nullopt});
}

// A response of type Response whose tensor `output` holds the workload's
// answer.
template <typename Response>
std::string CheckOutput(const grpc::ByteBuffer& bytes, const Workload& w,
                        const v1::Tensor& (Response::*output)() const) {
  Response r;
  if (!Parse(bytes, &r)) {
    return absl::StrCat("unparsable ", Response::descriptor()->name());
  }
  return CompareTensor((r.*output)(), w);
}

std::string CheckCrossEntropy(const grpc::ByteBuffer& response,
                              const Workload& w) {
  v1::SoftmaxCrossEntropyResponse r;
  if (!Parse(response, &r)) return "unparsable SoftmaxCrossEntropyResponse";
  absl::StatusOr<std::vector<double>> loss = TensorValues(r.loss());
  if (!loss.ok() || loss->size() != 1) return "loss is not one value";
  if (!Close((*loss)[0], w.expected_loss, w.dtype)) {
    return absl::StrFormat("loss %.9g, expected %.9g", (*loss)[0],
                           w.expected_loss);
  }
  std::string grad = CompareTensor(r.grad_logits(), w);
  return grad.empty() ? "" : absl::StrCat("grad_logits: ", grad);
}

std::string CheckOwnResponse(const Workload& w,
                             const grpc::ByteBuffer& response) {
  switch (w.rpc) {
    case Rpc::kEvaluate:
      return CheckOutput(response, w, &v1::EvaluateResponse::output);
    case Rpc::kStream: {
      v1::StreamResponse r;
      if (!Parse(response, &r) || !r.has_evaluate()) {
        return "not a StreamResponse with an evaluate response";
      }
      return CompareTensor(r.evaluate().output(), w);
    }
    case Rpc::kDerivative:
    case Rpc::kVjp:
      return CheckOutput(response, w, &v1::DerivativeResponse::output);
    case Rpc::kJacobian:
      return CheckOutput(response, w, &v1::JacobianResponse::jacobian);
    case Rpc::kXent:
      return CheckCrossEntropy(response, w);
  }
  return "unknown rpc";
}

std::string CheckEcho(const Workload& w, const grpc::ByteBuffer& response) {
  grpc::Slice got;
  grpc::Slice sent;
  if (!response.DumpToSingleSlice(&got).ok() ||
      !w.request.DumpToSingleSlice(&sent).ok() ||
      absl::string_view(reinterpret_cast<const char*>(got.begin()),
                        got.size()) !=
          absl::string_view(reinterpret_cast<const char*>(sent.begin()),
                            sent.size())) {
    return absl::StrCat("the echo method answered ", response.Length(),
                        " bytes that are not the request's ",
                        w.request.Length());
  }
  return "";
}

}  // namespace

namespace {

constexpr std::pair<Rpc, absl::string_view> kRpcNames[] = {
    {Rpc::kEvaluate, "evaluate"}, {Rpc::kDerivative, "derivative"},
    {Rpc::kVjp, "vjp"},           {Rpc::kJacobian, "jacobian"},
    {Rpc::kXent, "xent"},         {Rpc::kStream, "stream"}};

}  // namespace

absl::StatusOr<Rpc> RpcFromName(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const auto& [rpc, rpc_name] : kRpcNames) {
    if (rpc_name == lower) return rpc;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--rpc=", name,
                   " is not one of evaluate, derivative, vjp, jacobian, xent, "
                   "stream"));
}

absl::string_view RpcName(Rpc rpc) {
  for (const auto& [r, name] : kRpcNames) {
    if (r == rpc) return name;
  }
  return "?";
}

absl::StatusOr<Workload> BuildWorkload(const WorkloadSpec& ws) {
  absl::StatusOr<int64_t> count = ElementCount(ws.shape);
  if (!count.ok()) return count.status();
  const int64_t elem_size = static_cast<int64_t>(DtypeSize(ws.dtype));
  // Generous: grad or dense outputs may be a multiple of this.
  if (*count > (int64_t{1} << 31) / elem_size / 2) {
    return absl::InvalidArgumentError(
        "--shape is too large for one message (2 GiB)");
  }
  Workload w;
  w.rpc = ws.rpc;
  w.dtype = ws.dtype;
  w.elements = *count;
  std::mt19937_64 rng(ws.seed);
  const InputValues x{ws.shape, ws.dtype,
                      RandomValues(rng, *count, -8, 8, ws.dtype)};
  std::vector<double> g;
  if (ws.rpc == Rpc::kVjp) g = RandomValues(rng, *count, -1, 1, ws.dtype);
  std::vector<int64_t> labels;
  if (ws.rpc == Rpc::kXent && !ws.shape.empty() && ws.shape.back() > 0) {
    const int64_t c = ws.shape.back();
    std::uniform_int_distribution<int64_t> dist(0, c - 1);
    labels.resize(*count / c);
    for (int64_t& l : labels) l = dist(rng);
  }
  if (absl::Status computed = ComputeExpected(ws, x, g, labels, &w);
      !computed.ok()) {
    return computed;
  }
  BuildRequest(ws, x.values, g, labels, &w);
  return w;
}

std::string CheckResponse(const Workload& w, const grpc::ByteBuffer& response) {
  if (w.echo) return CheckEcho(w, response);
  if (!w.to_own_response) return CheckOwnResponse(w, response);
  grpc::ByteBuffer own;
  const std::string wrong = w.to_own_response(response, &own);
  return wrong.empty() ? CheckOwnResponse(w, own) : wrong;
}

}  // namespace actsvc::client::bench
