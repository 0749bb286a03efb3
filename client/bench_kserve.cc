#include "client/bench_kserve.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/activation.h"
#include "inference/grpc_service.pb.h"

namespace actsvc::client::bench {
namespace {

namespace v1 = ::actsvc::v1;

constexpr std::pair<v1::DataType, absl::string_view> kDatatypes[] = {
    {v1::FLOAT32, "FP32"},
    {v1::FLOAT64, "FP64"},
    {v1::FLOAT16, "FP16"},
    {v1::BFLOAT16, "BF16"}};

// The own API's response to the workload's RPC, from a ModelInferResponse.
std::string ToOwnResponse(Rpc rpc, const grpc::ByteBuffer& kserve,
                          grpc::ByteBuffer* own) {
  inference::ModelInferResponse response;
  if (!Parse(kserve, &response)) return "unparsable ModelInferResponse";
  switch (rpc) {
    case Rpc::kEvaluate: {
      v1::EvaluateResponse r;
      if (!KServeOutputTensor(response, "y", r.mutable_output()))
        return "no output y";
      *own = Serialize(r);
      return "";
    }
    case Rpc::kDerivative:
    case Rpc::kVjp: {
      v1::DerivativeResponse r;
      const std::string name = response.outputs_size() == 1
                                   ? response.outputs(0).name()
                                   : std::string("dy");
      if (!KServeOutputTensor(response, name, r.mutable_output())) {
        return "no output dy, d2y or x_grad";
      }
      *own = Serialize(r);
      return "";
    }
    case Rpc::kJacobian: {
      v1::JacobianResponse r;
      if (!KServeOutputTensor(response, "jacobian", r.mutable_jacobian())) {
        return "no output jacobian";
      }
      *own = Serialize(r);
      return "";
    }
    case Rpc::kXent: {
      v1::SoftmaxCrossEntropyResponse r;
      if (!KServeOutputTensor(response, "loss", r.mutable_loss()) ||
          !KServeOutputTensor(response, "grad_logits",
                              r.mutable_grad_logits())) {
        return "no output loss or grad_logits";
      }
      *own = Serialize(r);
      return "";
    }
    case Rpc::kStream:
      break;
  }
  return "no KServe model for this RPC";
}

}  // namespace

void AddKServeInput(const v1::Tensor& tensor, const std::string& name,
                    inference::ModelInferRequest* request) {
  auto* input = request->add_inputs();
  input->set_name(name);
  input->set_datatype(std::string(KServeDatatype(tensor.dtype())));
  input->mutable_shape()->Add(tensor.shape().begin(), tensor.shape().end());
  if (!tensor.raw_data().empty() ||
      (tensor.float_data_size() == 0 && tensor.double_data_size() == 0)) {
    *request->add_raw_input_contents() = tensor.raw_data();
  } else if (tensor.float_data_size() > 0) {
    *input->mutable_contents()->mutable_fp32_contents() = tensor.float_data();
  } else {
    *input->mutable_contents()->mutable_fp64_contents() = tensor.double_data();
  }
}

bool KServeOutputTensor(const inference::ModelInferResponse& response,
                        const std::string& name, v1::Tensor* tensor) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    if (output.name() != name || i >= response.raw_output_contents_size()) {
      continue;
    }
    tensor->set_dtype(DtypeOfKServe(output.datatype()));
    tensor->mutable_shape()->Add(output.shape().begin(), output.shape().end());
    tensor->set_raw_data(response.raw_output_contents(i));
    return true;
  }
  return false;
}

absl::string_view KServeDatatype(v1::DataType dtype) {
  for (const auto& [d, name] : kDatatypes) {
    if (d == dtype) return name;
  }
  return "FP32";
}

v1::DataType DtypeOfKServe(absl::string_view datatype) {
  for (const auto& [d, name] : kDatatypes) {
    if (name == datatype) return d;
  }
  return v1::DATA_TYPE_UNSPECIFIED;
}

absl::StatusOr<std::string> KServeModel(const WorkloadSpec& spec) {
  if (spec.rpc == Rpc::kXent) return std::string("softmax_cross_entropy");
  const Function f = static_cast<Function>(spec.spec.function());
  const std::string name(FunctionName(f));
  switch (spec.rpc) {
    case Rpc::kEvaluate:
      return name;
    case Rpc::kDerivative:
      return absl::StrCat(name, spec.order == 2 ? ".d2" : ".d1");
    case Rpc::kVjp:
      return absl::StrCat(name, ".vjp");
    case Rpc::kJacobian:
      if (IsElementwise(f) && !spec.dense) {
        return absl::InvalidArgumentError(
            "--protocol=kserve: the models' Jacobians are dense ([..., C, "
            "C]); pass --dense for an elementwise function");
      }
      return absl::StrCat(name, ".jacobian");
    case Rpc::kStream:
    case Rpc::kXent:
      break;
  }
  return absl::InvalidArgumentError(
      "--protocol=kserve takes --rpc=evaluate, derivative, vjp, jacobian or "
      "xent (ModelStreamInfer is not driven by the load tester)");
}

absl::Status UseKServe(const WorkloadSpec& spec, Workload* workload) {
  absl::StatusOr<std::string> model = KServeModel(spec);
  if (!model.ok()) return model.status();
  inference::ModelInferRequest request;
  request.set_model_name(*model);
  if (spec.spec.has_alpha()) {
    (*request.mutable_parameters())["alpha"].set_double_param(
        spec.spec.alpha());
  }
  if (spec.spec.has_axis()) {
    (*request.mutable_parameters())["axis"].set_int64_param(spec.spec.axis());
  }
  const grpc::ByteBuffer& own = workload->request;
  switch (spec.rpc) {
    case Rpc::kEvaluate: {
      v1::EvaluateRequest r;
      if (!Parse(own, &r)) return absl::InternalError("unparsable workload");
      AddKServeInput(r.input(), "x", &request);
      break;
    }
    case Rpc::kDerivative:
    case Rpc::kVjp: {
      v1::DerivativeRequest r;
      if (!Parse(own, &r)) return absl::InternalError("unparsable workload");
      AddKServeInput(r.input(), "x", &request);
      if (spec.rpc == Rpc::kVjp)
        AddKServeInput(r.upstream_grad(), "grad", &request);
      break;
    }
    case Rpc::kJacobian: {
      v1::JacobianRequest r;
      if (!Parse(own, &r)) return absl::InternalError("unparsable workload");
      AddKServeInput(r.input(), "x", &request);
      break;
    }
    case Rpc::kXent: {
      v1::SoftmaxCrossEntropyRequest r;
      if (!Parse(own, &r)) return absl::InternalError("unparsable workload");
      AddKServeInput(r.logits(), "logits", &request);
      auto* labels = request.add_inputs();
      labels->set_name("labels");
      labels->set_datatype("INT64");
      labels->add_shape(r.class_indices_size());
      std::string bytes(r.class_indices_size() * sizeof(int64_t), '\0');
      if (!bytes.empty()) {
        std::memcpy(bytes.data(), r.class_indices().data(), bytes.size());
      }
      if (request.raw_input_contents_size() > 0) {
        *request.add_raw_input_contents() = std::move(bytes);
      } else {
        *labels->mutable_contents()->mutable_int64_contents() =
            r.class_indices();
      }
      // The own API's answer: no probabilities.
      request.add_outputs()->set_name("loss");
      request.add_outputs()->set_name("grad_logits");
      break;
    }
    case Rpc::kStream:
      break;
  }
  workload->method = "/inference.GRPCInferenceService/ModelInfer";
  workload->request = Serialize(request);
  workload->request_bytes = static_cast<int64_t>(workload->request.Length());
  const Rpc rpc = spec.rpc;
  workload->to_own_response = [rpc](const grpc::ByteBuffer& response,
                                    grpc::ByteBuffer* own) {
    return ToOwnResponse(rpc, response, own);
  };
  return absl::OkStatus();
}

}  // namespace actsvc::client::bench
