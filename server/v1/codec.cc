#include "server/v1/codec.h"

#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/wire.h"

namespace actsvc::server {
namespace {

std::string DataTypeString(v1::DataType dtype) {
  const std::string& name = v1::DataType_Name(dtype);
  return name.empty() ? absl::StrCat(static_cast<int>(dtype)) : name;
}

// ToProto's inverse; nullopt for DATA_TYPE_UNSPECIFIED and unknown values.
std::optional<DType> FromProto(v1::DataType dtype) {
  for (DType d : kDTypes) {
    if (ToProto(d) == dtype) return d;
  }
  return std::nullopt;
}

// The repeated field that holds values of `dtype` in the typed encoding.
absl::string_view TypedField(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kFloat16:
    case DType::kBFloat16:
      return ".float_data";
    case DType::kFloat64:
      return ".double_data";
  }
  UnknownDType(dtype);
}

bool IsHalf(DType dtype) {
  return dtype == DType::kFloat16 || dtype == DType::kBFloat16;
}

// The data field of an output tensor of `dtype` in `encoding` (typed half
// values go into float_data, widened).
int OutputField(Encoding encoding, DType dtype) {
  if (encoding == Encoding::kRaw) return v1::Tensor::kRawDataFieldNumber;
  return dtype == DType::kFloat64 ? v1::Tensor::kDoubleDataFieldNumber
                                  : v1::Tensor::kFloatDataFieldNumber;
}

// A data field's bytes, or (bytes empty) only their count where they stay
// in the request's memory (TensorData::LeftSize).
struct FieldBytes {
  absl::string_view bytes;
  int64_t size = 0;
};

// The values of float_data or double_data, checked against dtype and size;
// nullptr when they stay where they lie.
absl::StatusOr<const void*> TypedValues(const v1::Tensor& tensor,
                                        absl::string_view name, DType dtype,
                                        int64_t size, const FieldBytes& floats,
                                        const FieldBytes& doubles) {
  const bool has_float = floats.size > 0;
  if (has_float && dtype == DType::kFloat64) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ".float_data is set but ", name, ".dtype is ", DTypeName(dtype),
        "; float_data needs FLOAT32, FLOAT16 or BFLOAT16 (use double_data or "
        "raw_data)"));
  }
  if (!has_float && dtype != DType::kFloat64) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ".double_data is set but ", name, ".dtype is ", DTypeName(dtype),
        "; double_data needs FLOAT64 (use float_data or "
        "raw_data)"));
  }
  const int64_t count =
      has_float ? floats.size / static_cast<int64_t>(sizeof(float))
                : doubles.size / static_cast<int64_t>(sizeof(double));
  if (count != size) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, TypedField(dtype), " has ", count, " values, expected ", size,
        " (shape ", ShapeString(tensor.shape()), ")"));
  }
  return static_cast<const void*>(has_float ? floats.bytes.data()
                                            : doubles.bytes.data());
}

// A tensor field of a request: its view, its read error, or absent.
TensorArg ReadTensor(bool present, const v1::Tensor& tensor, std::string name,
                     const TensorData& data, Encoding* encoding = nullptr) {
  TensorArg arg;
  arg.declared_elements = DeclaredElements(tensor.shape());
  if (present) {
    absl::StatusOr<DecodedTensor> decoded = DecodeTensor(tensor, name, data);
    if (decoded.ok()) {
      arg.view = std::move(decoded->view);
      if (encoding != nullptr) *encoding = decoded->encoding;
    } else {
      arg.error = decoded.status();
    }
  }
  arg.name = std::move(name);
  return arg;
}

FunctionRequest ReadSpec(const v1::FunctionSpec& spec) {
  FunctionRequest function;
  function.function = spec.function();
  if (spec.has_alpha()) function.alpha = spec.alpha();
  if (spec.has_axis()) function.axis = spec.axis();
  return function;
}

absl::StatusOr<Reduction> ReadReduction(int reduction) {
  switch (reduction) {
    case v1::SoftmaxCrossEntropyRequest::MEAN:
      return Reduction::kMean;
    case v1::SoftmaxCrossEntropyRequest::SUM:
      return Reduction::kSum;
    case v1::SoftmaxCrossEntropyRequest::NONE:
      return Reduction::kNone;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "reduction = ", reduction,
          " is not a known Reduction; expected MEAN, SUM or NONE"));
  }
}

}  // namespace

v1::DataType ToProto(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return v1::FLOAT32;
    case DType::kFloat64:
      return v1::FLOAT64;
    case DType::kFloat16:
      return v1::FLOAT16;
    case DType::kBFloat16:
      return v1::BFLOAT16;
  }
  UnknownDType(dtype);
}

absl::Span<const WireField> TensorWireFields() {
  static const WireField kFields[] = {
      {v1::Tensor::descriptor(), v1::Tensor::kRawDataFieldNumber, 1},
      {v1::Tensor::descriptor(), v1::Tensor::kFloatDataFieldNumber,
       sizeof(float)},
      {v1::Tensor::descriptor(), v1::Tensor::kDoubleDataFieldNumber,
       sizeof(double)},
  };
  return kFields;
}

absl::string_view TensorData::Bytes(const v1::Tensor& tensor, int field,
                                    int alignment) const {
  if (wire_ != nullptr) {
    if (std::optional<absl::string_view> read =
            wire_->Find(tensor, field, 0, alignment)) {
      return *read;
    }
  }
  switch (field) {
    case v1::Tensor::kRawDataFieldNumber:
      return tensor.raw_data();
    case v1::Tensor::kFloatDataFieldNumber:
      return {reinterpret_cast<const char*>(tensor.float_data().data()),
              tensor.float_data_size() * sizeof(float)};
    case v1::Tensor::kDoubleDataFieldNumber:
      return {reinterpret_cast<const char*>(tensor.double_data().data()),
              tensor.double_data_size() * sizeof(double)};
    default:
      return {};
  }
}

std::optional<int64_t> TensorData::LeftSize(const v1::Tensor& tensor, int field,
                                            DType dtype) const {
  if (!leave_in_place_ || wire_ == nullptr) return std::nullopt;
  const bool own_values =
      field == v1::Tensor::kRawDataFieldNumber ||
      (field == v1::Tensor::kFloatDataFieldNumber &&
       dtype == DType::kFloat32) ||
      (field == v1::Tensor::kDoubleDataFieldNumber && dtype == DType::kFloat64);
  if (!own_values) return std::nullopt;
  return wire_->Size(tensor, field);
}

absl::StatusOr<DecodedTensor> DecodeTensor(const v1::Tensor& tensor,
                                           absl::string_view name,
                                           const TensorData& data) {
  const std::optional<DType> dtype = FromProto(tensor.dtype());
  if (!dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".dtype is ", DataTypeString(tensor.dtype()),
                     ", expected FLOAT32, FLOAT64, FLOAT16 or BFLOAT16"));
  }
  const absl::Span<const int64_t> shape(tensor.shape().data(),
                                        tensor.shape_size());
  int64_t size;
  if (absl::Status s = TensorView::CheckShape(name, *dtype, shape, &size);
      !s.ok()) {
    return s;
  }
  // Each data field's bytes, or only their count when they stay where they
  // lie (then bytes is empty).
  const auto read = [&](int field, int alignment) {
    FieldBytes f;
    if (const std::optional<int64_t> left =
            data.LeftSize(tensor, field, *dtype)) {
      f.size = *left;
    } else {
      f.bytes = data.Bytes(tensor, field, alignment);
      f.size = static_cast<int64_t>(f.bytes.size());
    }
    return f;
  };
  const FieldBytes raw = read(v1::Tensor::kRawDataFieldNumber,
                              static_cast<int>(DTypeSize(*dtype)));
  const FieldBytes floats =
      read(v1::Tensor::kFloatDataFieldNumber, sizeof(float));
  const FieldBytes doubles =
      read(v1::Tensor::kDoubleDataFieldNumber, sizeof(double));
  const int64_t raw_size = raw.size;
  const bool has_raw = raw.size > 0;
  const bool has_float = floats.size > 0;
  const bool has_double = doubles.size > 0;
  if (has_raw + has_float + has_double > 1) {
    std::vector<absl::string_view> fields;
    if (has_raw) fields.push_back("raw_data");
    if (has_float) fields.push_back("float_data");
    if (has_double) fields.push_back("double_data");
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has data in ", absl::StrJoin(fields, " and "),
                     "; set exactly one of raw_data, float_data, double_data"));
  }
  DecodedTensor decoded;
  const void* values_at;
  if (has_float || has_double) {
    absl::StatusOr<const void*> values =
        TypedValues(tensor, name, *dtype, size, floats, doubles);
    if (!values.ok()) return values.status();
    decoded.encoding = Encoding::kTyped;
    if (IsHalf(*dtype)) {
      // float_data of a half dtype: each value rounded to it once.
      absl::StatusOr<TensorView> view = TensorView::MakeRounded(
          std::string(name), *dtype, shape,
          absl::MakeConstSpan(static_cast<const float*>(*values), size));
      if (!view.ok()) return view.status();
      decoded.view = *std::move(view);
      return decoded;
    }
    values_at = *values;
  } else {
    // Raw, or no data at all, which only an empty tensor may have.
    const int64_t expected_bytes = size * DTypeSize(*dtype);
    // For the messages only: not formatted on a good request's path.
    const auto layout = [&] {
      return absl::StrCat("shape ", ShapeString(shape), " x ",
                          DTypeSize(*dtype), " bytes of ", DTypeName(*dtype));
    };
    if (!has_raw && size > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " has no data, expected ", expected_bytes,
                       " bytes in ", name, ".raw_data (", layout(), ") or ",
                       size, " values in ", name, TypedField(*dtype)));
    }
    if (raw_size != expected_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".raw_data has ", raw_size, " bytes, expected ",
                       expected_bytes, " (", layout(), ")"));
    }
    values_at = raw.bytes.data();  // nullptr when left where it lies
  }
  absl::StatusOr<TensorView> view =
      TensorView::Make(std::string(name), *dtype, shape, values_at);
  if (!view.ok()) return view.status();
  decoded.view = *std::move(view);
  return decoded;
}

Decoded<EvaluateRequest> Decode(const v1::EvaluateRequest& message,
                                const TensorData& data) {
  Decoded<EvaluateRequest> decoded;
  decoded.request.function = ReadSpec(message.spec());
  decoded.request.x = ReadTensor(message.has_input(), message.input(), "input",
                                 data, &decoded.encoding);
  return decoded;
}

Decoded<DerivativeRequest> Decode(const v1::DerivativeRequest& message,
                                  const TensorData& data) {
  Decoded<DerivativeRequest> decoded;
  DerivativeRequest& request = decoded.request;
  request.function = ReadSpec(message.spec());
  request.order = message.order();
  request.x = ReadTensor(message.has_input(), message.input(), "input", data,
                         &decoded.encoding);
  request.g = ReadTensor(message.has_upstream_grad(), message.upstream_grad(),
                         "upstream_grad", data);
  return decoded;
}

Decoded<JacobianRequest> Decode(const v1::JacobianRequest& message,
                                const TensorData& data) {
  Decoded<JacobianRequest> decoded;
  decoded.request.function = ReadSpec(message.spec());
  decoded.request.dense = message.dense();
  decoded.request.x = ReadTensor(message.has_input(), message.input(), "input",
                                 data, &decoded.encoding);
  return decoded;
}

Decoded<CrossEntropyRequest> Decode(
    const v1::SoftmaxCrossEntropyRequest& message, const TensorData& data) {
  Decoded<CrossEntropyRequest> decoded;
  CrossEntropyRequest& request = decoded.request;
  request.logits = ReadTensor(message.has_logits(), message.logits(), "logits",
                              data, &decoded.encoding);
  request.reduction = ReadReduction(message.reduction());
  request.label_smoothing = message.label_smoothing();
  if (message.has_ignore_index()) request.ignore_index = message.ignore_index();
  request.target_probs = ReadTensor(
      message.has_target_probs(), message.target_probs(), "target_probs", data);
  request.class_indices = absl::MakeConstSpan(message.class_indices().data(),
                                              message.class_indices_size());
  request.return_probabilities = message.return_probabilities();
  return decoded;
}

AnalyzeRequest Decode(const v1::AnalyzeRequest& message,
                      const TensorData& data) {
  AnalyzeRequest request;
  request.function = ReadSpec(message.spec());
  request.epsilon = message.epsilon();
  if (message.has_layers()) request.layers = message.layers();
  request.x = ReadTensor(message.has_input(), message.input(), "input", data);
  return request;
}

int64_t ElementsOf(const v1::EvaluateRequest& r) {
  return DeclaredElements(r.input().shape());
}
int64_t ElementsOf(const v1::DerivativeRequest& r) {
  return DeclaredElements(r.input().shape());
}
int64_t ElementsOf(const v1::JacobianRequest& r) {
  return DeclaredElements(r.input().shape());
}
int64_t ElementsOf(const v1::SoftmaxCrossEntropyRequest& r) {
  return DeclaredElements(r.logits().shape());
}
int64_t ElementsOf(const v1::AnalyzeRequest& r) {
  return DeclaredElements(r.input().shape());
}
int64_t ElementsOf(const v1::StreamRequest& r) {
  switch (r.request_case()) {
    case v1::StreamRequest::kEvaluate:
      return ElementsOf(r.evaluate());
    case v1::StreamRequest::kDerivative:
      return ElementsOf(r.derivative());
    case v1::StreamRequest::REQUEST_NOT_SET:
      break;
  }
  return 0;
}

MessageSink::MessageSink(
    Encoding encoding,
    std::initializer_list<std::pair<OutputRole, v1::Tensor*>> targets,
    WireResponse* wire)
    : encoding_(encoding), wire_(wire) {
  for (const auto& [role, tensor] : targets) {
    targets_[static_cast<int>(role)] = tensor;
  }
}

bool MessageSink::SendInPlace(OutputRole role, DType dtype,
                              absl::Span<const int64_t> shape,
                              const WireRequest& request,
                              const v1::Tensor& from, int from_field) {
  const int index = static_cast<int>(role);
  v1::Tensor* out = targets_[index];
  if (wire_ == nullptr || (encoding_ == Encoding::kTyped && IsHalf(dtype)) ||
      !wire_->Resend(out, OutputField(encoding_, dtype), request, from,
                     from_field)) {
    return false;
  }
  allocated_[index] = true;
  out->Clear();
  out->mutable_shape()->Add(shape.begin(), shape.end());
  out->set_dtype(ToProto(dtype));
  return true;
}

void* MessageSink::Allocate(OutputRole role, DType dtype,
                            absl::Span<const int64_t> shape, int64_t elements) {
  const int index = static_cast<int>(role);
  v1::Tensor* out = targets_[index];
  allocated_[index] = true;
  out->Clear();
  out->mutable_shape()->Add(shape.begin(), shape.end());
  out->set_dtype(ToProto(dtype));
  const int64_t element_size = DTypeSize(dtype);
  // Typed half values are computed apart and widened into float_data by
  // Finish, into the message or a wire buffer. Small values go into the
  // message (WireResponse::TakesApart).
  if (wire_ != nullptr && wire_->TakesApart(elements * element_size) &&
      !(encoding_ == Encoding::kTyped && IsHalf(dtype))) {
    return wire_->Allocate(out, OutputField(encoding_, dtype),
                           elements * element_size);
  }
  if (encoding_ == Encoding::kTyped) {
    switch (dtype) {
      case DType::kFloat32:
        out->mutable_float_data()->Resize(static_cast<int>(elements), 0.0f);
        return out->mutable_float_data()->mutable_data();
      case DType::kFloat64:
        out->mutable_double_data()->Resize(static_cast<int>(elements), 0.0);
        return out->mutable_double_data()->mutable_data();
      case DType::kFloat16:
      case DType::kBFloat16: {
        // Computed as half values, widened into float_data by Finish.
        std::vector<double> values(
            (elements * element_size + sizeof(double) - 1) / sizeof(double));
        typed_halves_.push_back({role, dtype, elements, std::move(values)});
        return typed_halves_.back().values.data();
      }
    }
    UnknownDType(dtype);
  }
  std::string* raw = out->mutable_raw_data();
  raw->resize(static_cast<size_t>(elements * element_size));
  if (reinterpret_cast<uintptr_t>(raw->data()) % element_size == 0) {
    return raw->data();
  }
  std::vector<double> values((raw->size() + sizeof(double) - 1) /
                             sizeof(double));
  scratch_.emplace_back(role, std::move(values));
  return scratch_.back().second.data();
}

int64_t MessageSink::WireBytes(DType dtype, int rank, int64_t elements) const {
  // A typed half tensor travels as float_data: 4 bytes a value.
  const int64_t size =
      encoding_ == Encoding::kTyped && IsHalf(dtype) ? 4 : DTypeSize(dtype);
  return TensorWireBytes(elements, size, rank);
}

void MessageSink::Finish() {
  for (auto& [role, values] : scratch_) {
    std::string* raw = targets_[static_cast<int>(role)]->mutable_raw_data();
    std::memcpy(raw->data(), values.data(), raw->size());
  }
  scratch_.clear();
  for (TypedHalf& t : typed_halves_) {
    v1::Tensor* tensor = targets_[static_cast<int>(t.role)];
    float* to;
    if (wire_ != nullptr &&
        wire_->TakesApart(t.elements * static_cast<int64_t>(sizeof(float)))) {
      to = static_cast<float*>(
          wire_->Allocate(tensor, v1::Tensor::kFloatDataFieldNumber,
                          t.elements * static_cast<int64_t>(sizeof(float))));
    } else {
      tensor->mutable_float_data()->Resize(static_cast<int>(t.elements), 0.0f);
      to = tensor->mutable_float_data()->mutable_data();
    }
    const absl::Span<float> wide(to, t.elements);
    if (t.dtype == DType::kFloat16) {
      WidenHalf(
          absl::MakeConstSpan(reinterpret_cast<const Float16*>(t.values.data()),
                              t.elements),
          wide);
    } else {
      WidenHalf(
          absl::MakeConstSpan(
              reinterpret_cast<const BFloat16*>(t.values.data()), t.elements),
          wide);
    }
  }
  typed_halves_.clear();
}

}  // namespace actsvc::server
