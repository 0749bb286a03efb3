// About 650 lines, one concern: KServe v2 REST bodies to and from the
// protocol's messages (JSON data flat or nested, the binary extension).
#include "server/kserve/json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/half.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace actsvc::server::kserve {
namespace {

using Json = rapidjson::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>,
                                 rapidjson::UTF8<>, rapidjson::CrtAllocator,
                                 rapidjson::kWriteNanAndInfFlag>;

// Numbers handed over as text (read by ExactNumbers below), NaN and
// Infinity accepted as numbers (clients write them so), and no recursion
// however deep the body.
constexpr unsigned kParseFlags = rapidjson::kParseNumbersAsStringsFlag |
                                 rapidjson::kParseNanAndInfFlag |
                                 rapidjson::kParseIterativeFlag;

// Builds a Document from the reader's events, reading each number from its
// text with absl::SimpleAtod (correctly rounded, and faster than strtod)
// rather than with rapidjson's full-precision path, which in 1.1.0 is
// undefined for a zero significand with an exponent ("0e300": clz of 0;
// found by fuzz_rest_infer).
class ExactNumbers {
 public:
  explicit ExactNumbers(rapidjson::Document* doc) : doc_(*doc) {}

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.String(s, n, copy);
  }
  bool StartObject() { return doc_.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.Key(s, n, copy);
  }
  bool EndObject(rapidjson::SizeType members) {
    return doc_.EndObject(members);
  }
  bool StartArray() { return doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    return doc_.EndArray(elements);
  }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    const absl::string_view number(text, length);
    if (number.find_first_of(".eEIN") == absl::string_view::npos) {
      int64_t i;
      if (absl::SimpleAtoi(number, &i)) return doc_.Int64(i);
      uint64_t u;
      if (absl::SimpleAtoi(number, &u)) return doc_.Uint64(u);
    }
    // The reader has checked the grammar: digits, or NaN and Infinity.
    double d;
    if (!absl::SimpleAtod(number, &d)) return false;
    return doc_.Double(d);
  }

 private:
  rapidjson::Document& doc_;
};

// Parses `text` into `doc`; INVALID_ARGUMENT saying where it is not JSON.
absl::Status ParseJson(absl::string_view text, rapidjson::Document* doc) {
  rapidjson::ParseResult result;
  auto generate = [&](rapidjson::Document& target) {
    ExactNumbers handler(&target);
    rapidjson::Reader reader;
    rapidjson::MemoryStream stream(text.data(), text.size());
    result = reader.Parse<kParseFlags>(stream, handler);
    return !result.IsError();
  };
  doc->Populate(generate);
  if (!result.IsError()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("the request body is not valid JSON: ",
                   rapidjson::GetParseError_En(result.Code()), " at byte ",
                   result.Offset()));
}
// Nested data deeper than this is refused (a tensor has no more dims).
constexpr int kMaxDepth = 64;

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

const Json* Member(const Json& object, const char* name) {
  if (!object.IsObject()) return nullptr;
  const auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string String(const Json& value) {
  return std::string(value.GetString(), value.GetStringLength());
}

absl::Status ReadParameter(const std::string& where, const Json& value,
                           inference::InferParameter* out) {
  if (value.IsBool()) {
    out->set_bool_param(value.GetBool());
  } else if (value.IsString()) {
    out->set_string_param(String(value));
  } else if (value.IsInt64()) {
    out->set_int64_param(value.GetInt64());
  } else if (value.IsUint64()) {
    out->set_uint64_param(value.GetUint64());
  } else if (value.IsNumber()) {
    out->set_double_param(value.GetDouble());
  } else {
    return Invalid(
        absl::StrCat(where, " must be a bool, a number or a string"));
  }
  return absl::OkStatus();
}

// Reads `parameters` (a JSON object) into `out`, skipping `skip`, which the
// caller reads itself.
absl::Status ReadParameters(
    const std::string& where, const Json* parameters,
    google::protobuf::Map<std::string, inference::InferParameter>* out,
    absl::string_view skip = "") {
  if (parameters == nullptr) return absl::OkStatus();
  if (!parameters->IsObject()) {
    return Invalid(absl::StrCat(where, " must be an object"));
  }
  for (const auto& member : parameters->GetObject()) {
    const std::string name = String(member.name);
    if (name == skip) continue;
    if (absl::Status s = ReadParameter(absl::StrCat(where, ".", name),
                                       member.value, &(*out)[name]);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// JSON data of one input, flattened row-major into typed contents or raw
// bytes in the input's datatype. Values of a datatype actsvc does not take
// are left out: the decoder names the datatype.
class DataReader {
 public:
  DataReader(std::string name, std::string datatype,
             inference::InferTensorContents* contents, std::string* raw)
      : name_(std::move(name)),
        datatype_(std::move(datatype)),
        contents_(contents),
        raw_(raw) {}

  absl::Status Read(const Json& value, int depth = 0) {
    if (value.IsArray()) {
      if (depth >= kMaxDepth) {
        return Invalid(absl::StrCat("input '", name_, "': data is nested over ",
                                    kMaxDepth, " levels deep"));
      }
      for (const Json& element : value.GetArray()) {
        if (absl::Status s = Read(element, depth + 1); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    const int64_t index = count_++;
    if (datatype_ == "FP32" || datatype_ == "FP64") {
      if (!value.IsNumber()) return NotA(index, "a number");
      if (datatype_ == "FP32") {
        Append<float>(static_cast<float>(value.GetDouble()));
      } else {
        Append<double>(value.GetDouble());
      }
    } else if (datatype_ == "FP16" || datatype_ == "BF16") {
      return Invalid(absl::StrCat(
          "input '", name_, "' is ", datatype_,
          ", which travels only as binary tensor data (binary_data_size)"));
    } else if (datatype_ == "INT64") {
      if (!value.IsInt64()) return NotA(index, "an INT64 integer");
      Append<int64_t>(value.GetInt64());
    } else if (datatype_ == "INT32") {
      if (!value.IsInt()) return NotA(index, "an INT32 integer");
      Append<int32_t>(value.GetInt());
    }
    return absl::OkStatus();
  }

 private:
  absl::Status NotA(int64_t index, absl::string_view what) const {
    return Invalid(absl::StrCat("input '", name_, "': data value #", index,
                                " is not ", what, " (datatype ", datatype_,
                                ")"));
  }

  template <typename T>
  void Append(T value) {
    if (raw_ != nullptr) {
      raw_->append(reinterpret_cast<const char*>(&value), sizeof(T));
    } else if constexpr (std::is_same_v<T, float>) {
      contents_->add_fp32_contents(value);
    } else if constexpr (std::is_same_v<T, double>) {
      contents_->add_fp64_contents(value);
    } else if constexpr (std::is_same_v<T, int64_t>) {
      contents_->add_int64_contents(value);
    } else {
      contents_->add_int_contents(value);
    }
  }

  const std::string name_;
  const std::string datatype_;
  inference::InferTensorContents* const contents_;
  std::string* const raw_;
  int64_t count_ = 0;
};

void WriteFloat(float value, Writer* writer) {
  if (std::isnan(value)) {
    writer->RawValue("NaN", 3, rapidjson::kNumberType);
  } else if (std::isinf(value)) {
    writer->RawValue(value > 0 ? "Infinity" : "-Infinity", value > 0 ? 8 : 9,
                     rapidjson::kNumberType);
  } else if (value == 0 && std::signbit(value)) {
    // "-0" would read back as the integer 0.
    writer->RawValue("-0.0", 4, rapidjson::kNumberType);
  } else {
    // The shortest text that reads back as the same float.
    char text[32];
    const std::to_chars_result r =
        std::to_chars(text, text + sizeof(text), value);
    writer->RawValue(text, r.ptr - text, rapidjson::kNumberType);
  }
}

template <typename T>
void WriteValues(const std::string& raw, Writer* writer) {
  const size_t n = raw.size() / sizeof(T);
  writer->StartArray();
  for (size_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, raw.data() + i * sizeof(T), sizeof(T));
    if constexpr (std::is_same_v<T, float>) {
      WriteFloat(value, writer);
    } else if constexpr (kIsHalf<T>) {
      WriteFloat(HalfToFloat(value), writer);  // widened exactly
    } else {
      writer->Double(value);
    }
  }
  writer->EndArray();
}

void WriteShape(const google::protobuf::RepeatedField<int64_t>& shape,
                Writer* writer) {
  writer->StartArray();
  for (int64_t d : shape) writer->Int64(d);
  writer->EndArray();
}

void Key(const char* key, Writer* writer) { writer->Key(key); }
void StringMember(const char* key, const std::string& value, Writer* writer) {
  writer->Key(key);
  writer->String(value.c_str(), value.size());
}

void WriteDuration(const char* key, const inference::StatisticDuration& d,
                   Writer* writer) {
  Key(key, writer);
  writer->StartObject();
  Key("count", writer);
  writer->Uint64(d.count());
  Key("ns", writer);
  writer->Uint64(d.ns());
  writer->EndObject();
}

// The JSON text that `write` writes.
template <typename Write>
std::string JsonText(Write write) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  write(&writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// The JSON object whose members `write_members` writes.
template <typename WriteMembers>
std::string JsonObject(WriteMembers write_members) {
  return JsonText([&](Writer* writer) {
    writer->StartObject();
    write_members(writer);
    writer->EndObject();
  });
}

void WriteTensorMetadata(
    const google::protobuf::RepeatedPtrField<
        inference::ModelMetadataResponse::TensorMetadata>& tensors,
    Writer* writer) {
  writer->StartArray();
  for (const auto& t : tensors) {
    writer->StartObject();
    StringMember("name", t.name(), writer);
    StringMember("datatype", t.datatype(), writer);
    Key("shape", writer);
    WriteShape(t.shape(), writer);
    writer->EndObject();
  }
  writer->EndArray();
}

// A model configuration's inputs or outputs (ModelInput and ModelOutput
// have the same fields).
template <typename ConfigTensors>
void WriteConfigTensors(const ConfigTensors& tensors, Writer* writer) {
  writer->StartArray();
  for (const auto& t : tensors) {
    writer->StartObject();
    StringMember("name", t.name(), writer);
    StringMember("data_type", inference::DataType_Name(t.data_type()), writer);
    Key("dims", writer);
    WriteShape(t.dims(), writer);
    writer->EndObject();
  }
  writer->EndArray();
}

// One element of "inputs" into request->inputs (and, when any input is
// binary, its bytes into request->raw_input_contents): binary ones take
// their binary_data_size bytes of `binary` from *offset on.
absl::Status ReadInput(const Json& input, bool any_binary,
                       absl::string_view binary, size_t* offset,
                       inference::ModelInferRequest* request) {
  const Json* name = Member(input, "name");
  const Json* datatype = Member(input, "datatype");
  const Json* shape = Member(input, "shape");
  if (name == nullptr || !name->IsString() || datatype == nullptr ||
      !datatype->IsString() || shape == nullptr || !shape->IsArray()) {
    return Invalid(
        "each input must have a string \"name\", a string \"datatype\" and "
        "an array \"shape\"");
  }
  auto* tensor = request->add_inputs();
  tensor->set_name(String(*name));
  tensor->set_datatype(String(*datatype));
  for (const Json& d : shape->GetArray()) {
    if (!d.IsInt64()) {
      return Invalid(absl::StrCat("input '", tensor->name(),
                                  "': shape must hold integers"));
    }
    tensor->add_shape(d.GetInt64());
  }
  const Json* p = Member(input, "parameters");
  const Json* size = p == nullptr ? nullptr : Member(*p, "binary_data_size");
  if (absl::Status s = ReadParameters(
          absl::StrCat("input '", tensor->name(), "' parameters"), p,
          tensor->mutable_parameters(), "binary_data_size");
      !s.ok()) {
    return s;
  }
  std::string* raw = any_binary ? request->add_raw_input_contents() : nullptr;
  if (size != nullptr) {
    if (!size->IsUint64() || size->GetUint64() > binary.size() - *offset) {
      return Invalid(absl::StrCat("input '", tensor->name(),
                                  "': binary_data_size must be a count "
                                  "of bytes within the ",
                                  binary.size() - *offset,
                                  " bytes of binary data left"));
    }
    raw->assign(binary.data() + *offset, size->GetUint64());
    *offset += size->GetUint64();
    return absl::OkStatus();
  }
  const Json* data = Member(input, "data");
  if (data == nullptr) {
    return Invalid(absl::StrCat("input '", tensor->name(),
                                "' has neither \"data\" nor "
                                "binary_data_size"));
  }
  DataReader reader(tensor->name(), tensor->datatype(),
                    tensor->mutable_contents(), raw);
  return reader.Read(*data);
}

// The request's "outputs", when given, into request->outputs and the
// binary_data choices into *format.
absl::Status ReadOutputs(const Json& doc, inference::ModelInferRequest* request,
                         OutputFormat* format) {
  if (const Json* outputs = Member(doc, "outputs")) {
    if (!outputs->IsArray()) return Invalid("\"outputs\" must be an array");
    for (const Json& output : outputs->GetArray()) {
      const Json* name = Member(output, "name");
      if (name == nullptr || !name->IsString()) {
        return Invalid("each output must have a string \"name\"");
      }
      auto* requested = request->add_outputs();
      requested->set_name(String(*name));
      const Json* p = Member(output, "parameters");
      if (const Json* b = p == nullptr ? nullptr : Member(*p, "binary_data")) {
        if (!b->IsBool()) {
          return Invalid(absl::StrCat("output '", requested->name(),
                                      "': binary_data must be a bool"));
        }
        format->binary[requested->name()] = b->GetBool();
      }
      if (absl::Status s = ReadParameters(
              absl::StrCat("output '", requested->name(), "' parameters"), p,
              requested->mutable_parameters(), "binary_data");
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseInferRequest(absl::string_view body,
                               std::optional<int64_t> header_length,
                               inference::ModelInferRequest* request,
                               OutputFormat* format) {
  absl::string_view json = body;
  absl::string_view binary;
  if (header_length) {
    if (*header_length < 0 ||
        *header_length > static_cast<int64_t>(body.size())) {
      return Invalid(absl::StrCat("Inference-Header-Content-Length is ",
                                  *header_length, " but the body has ",
                                  body.size(), " bytes"));
    }
    json = body.substr(0, *header_length);
    binary = body.substr(*header_length);
  }
  rapidjson::Document doc;
  if (absl::Status s = ParseJson(json, &doc); !s.ok()) return s;
  if (!doc.IsObject()) return Invalid("the request body must be a JSON object");
  if (const Json* id = Member(doc, "id")) {
    if (!id->IsString()) return Invalid("id must be a string");
    request->set_id(String(*id));
  }
  const Json* parameters = Member(doc, "parameters");
  if (const Json* b = parameters == nullptr
                          ? nullptr
                          : Member(*parameters, "binary_data_output")) {
    if (!b->IsBool())
      return Invalid("parameters.binary_data_output must be a bool");
    format->binary_by_default = b->GetBool();
  }
  if (absl::Status s =
          ReadParameters("parameters", parameters,
                         request->mutable_parameters(), "binary_data_output");
      !s.ok()) {
    return s;
  }
  const Json* inputs = Member(doc, "inputs");
  if (inputs == nullptr || !inputs->IsArray()) {
    return Invalid("the request must have an array \"inputs\"");
  }
  // Whether any input is binary: then every input travels as raw bytes.
  bool any_binary = false;
  for (const Json& input : inputs->GetArray()) {
    const Json* p = Member(input, "parameters");
    if (p != nullptr && Member(*p, "binary_data_size") != nullptr) {
      any_binary = true;
    }
  }
  if (any_binary && !header_length) {
    return Invalid(
        "an input has binary_data_size but the request has no "
        "Inference-Header-Content-Length header");
  }
  size_t offset = 0;
  for (const Json& input : inputs->GetArray()) {
    if (absl::Status s = ReadInput(input, any_binary, binary, &offset, request);
        !s.ok()) {
      return s;
    }
  }
  if (offset != binary.size()) {
    return Invalid(absl::StrCat("the body has ", binary.size() - offset,
                                " bytes of binary data no input claims"));
  }
  return ReadOutputs(doc, request, format);
}

std::string WriteInferResponse(const inference::ModelInferResponse& response,
                               const OutputFormat& format,
                               int64_t* json_length) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  std::string binary;
  writer.StartObject();
  StringMember("model_name", response.model_name(), &writer);
  StringMember("model_version", response.model_version(), &writer);
  if (!response.id().empty()) StringMember("id", response.id(), &writer);
  Key("outputs", &writer);
  writer.StartArray();
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    const std::string& raw = response.raw_output_contents(i);
    writer.StartObject();
    StringMember("name", output.name(), &writer);
    StringMember("datatype", output.datatype(), &writer);
    Key("shape", &writer);
    WriteShape(output.shape(), &writer);
    if (format.Binary(output.name())) {
      Key("parameters", &writer);
      writer.StartObject();
      Key("binary_data_size", &writer);
      writer.Uint64(raw.size());
      writer.EndObject();
      binary += raw;
    } else {
      Key("data", &writer);
      if (output.datatype() == "FP64") {
        WriteValues<double>(raw, &writer);
      } else if (output.datatype() == "FP16") {
        WriteValues<Float16>(raw, &writer);
      } else if (output.datatype() == "BF16") {
        WriteValues<BFloat16>(raw, &writer);
      } else {
        WriteValues<float>(raw, &writer);
      }
    }
    writer.EndObject();
  }
  writer.EndArray();
  writer.EndObject();
  std::string body(buffer.GetString(), buffer.GetSize());
  *json_length = binary.empty() ? -1 : static_cast<int64_t>(body.size());
  body += binary;
  return body;
}

std::string ToJson(const inference::ServerMetadataResponse& metadata) {
  return JsonObject([&](Writer* writer) {
    StringMember("name", metadata.name(), writer);
    StringMember("version", metadata.version(), writer);
    Key("extensions", writer);
    writer->StartArray();
    for (const std::string& e : metadata.extensions())
      writer->String(e.c_str());
    writer->EndArray();
  });
}

std::string ToJson(const inference::ModelMetadataResponse& metadata) {
  return JsonObject([&](Writer* writer) {
    StringMember("name", metadata.name(), writer);
    Key("versions", writer);
    writer->StartArray();
    for (const std::string& v : metadata.versions()) writer->String(v.c_str());
    writer->EndArray();
    StringMember("platform", metadata.platform(), writer);
    Key("inputs", writer);
    WriteTensorMetadata(metadata.inputs(), writer);
    Key("outputs", writer);
    WriteTensorMetadata(metadata.outputs(), writer);
  });
}

std::string ToJson(const inference::ModelConfigResponse& response) {
  const inference::ModelConfig& config = response.config();
  return JsonObject([&](Writer* writer) {
    StringMember("name", config.name(), writer);
    StringMember("platform", config.platform(), writer);
    StringMember("backend", config.backend(), writer);
    Key("max_batch_size", writer);
    writer->Int(config.max_batch_size());
    Key("input", writer);
    WriteConfigTensors(config.input(), writer);
    Key("output", writer);
    WriteConfigTensors(config.output(), writer);
  });
}

std::string ToJson(const inference::ModelStatisticsResponse& statistics) {
  return JsonObject([&](Writer* writer) {
    Key("model_stats", writer);
    writer->StartArray();
    for (const auto& m : statistics.model_stats()) {
      writer->StartObject();
      StringMember("name", m.name(), writer);
      StringMember("version", m.version(), writer);
      Key("last_inference", writer);
      writer->Uint64(m.last_inference());
      Key("inference_count", writer);
      writer->Uint64(m.inference_count());
      Key("execution_count", writer);
      writer->Uint64(m.execution_count());
      Key("inference_stats", writer);
      writer->StartObject();
      const auto& s = m.inference_stats();
      WriteDuration("success", s.success(), writer);
      WriteDuration("fail", s.fail(), writer);
      WriteDuration("queue", s.queue(), writer);
      WriteDuration("compute_input", s.compute_input(), writer);
      WriteDuration("compute_infer", s.compute_infer(), writer);
      WriteDuration("compute_output", s.compute_output(), writer);
      WriteDuration("cache_hit", s.cache_hit(), writer);
      WriteDuration("cache_miss", s.cache_miss(), writer);
      writer->EndObject();
      Key("batch_stats", writer);
      writer->StartArray();
      writer->EndArray();
      writer->EndObject();
    }
    writer->EndArray();
  });
}

std::string ToJson(const inference::RepositoryIndexResponse& index) {
  return JsonText([&](Writer* writer) {
    writer->StartArray();
    for (const auto& model : index.models()) {
      writer->StartObject();
      StringMember("name", model.name(), writer);
      StringMember("version", model.version(), writer);
      StringMember("state", model.state(), writer);
      writer->EndObject();
    }
    writer->EndArray();
  });
}

std::string ErrorJson(absl::string_view message) {
  return JsonObject([&](Writer* writer) {
    Key("error", writer);
    writer->String(message.data(), message.size());
  });
}

}  // namespace actsvc::server::kserve
