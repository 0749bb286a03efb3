// The Open Inference Protocol over HTTP/REST (--http_address): every model
// with JSON bodies (flat and nested data, FP32 and FP64) and with the
// binary tensor data extension, each checked against the same model called
// over gRPC on the same server (one path: the same bits); metadata, config,
// index and statistics as JSON numbers; and the errors as {"error": ...}
// with 400, 404 and 413.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/half.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "server/kserve/models.h"
#include "server/server.h"
#include "tests/kserve/kserve_test_util.h"
#include "tests/server/http_client.h"
#include "tests/server/test_util.h"

namespace actsvc::server::kserve {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // NOLINT: the helpers of kserve_test_util.h
using server::testing::HttpAnswer;
using server::testing::HttpExchange;

constexpr int kMaxMessageMb = 1;

class KServeRestTest : public KServeSuite<KServeRestTest> {
 public:
  static ServerOptions Options() {
    ServerOptions options;
    options.http_address = "127.0.0.1:0";
    options.max_message_mb = kMaxMessageMb;
    return options;
  }

 protected:
  static HttpAnswer Get(const std::string& path) {
    return HttpExchange(server_->http_port(), "GET", path);
  }
  static HttpAnswer Post(
      const std::string& path, const std::string& body,
      const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return HttpExchange(server_->http_port(), "POST", path, body, headers);
  }
};

rapidjson::Document Parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag |
            rapidjson::kParseNanAndInfFlag>(text.data(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text.substr(0, 300);
  return doc;
}

// One input of a test request, its values as doubles.
struct Input {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// The model's inputs: x (and grad or target_probs) of shape [3, 5] in
// `datatype`, labels INT64.
std::vector<Input> InputsFor(const Model& model, const std::string& datatype) {
  std::vector<Input> inputs;
  const auto ramp = [](double lo, double hi) {
    const std::vector<double> v = server::testing::Ramp<double>(15, lo, hi);
    return v;
  };
  for (const TensorSpec& spec : model.inputs) {
    Input input{spec.name, datatype, {3, 5}, {}};
    if (spec.name == "labels") {
      input.datatype = "INT64";
      input.shape = {3};
      input.values = {0, 4, 2};
    } else if (spec.name == "target_probs") {
      input.values = ramp(0, 0.2);
    } else {
      input.values =
          ramp(spec.name == "grad" ? -2 : -6, spec.name == "grad" ? 3 : 6);
    }
    if (input.datatype == "FP32") {
      for (double& v : input.values) v = static_cast<float>(v);
    }
    inputs.push_back(std::move(input));
  }
  return inputs;
}

std::string Bytes(const Input& input) {
  std::string raw;
  for (double v : input.values) {
    if (input.datatype == "FP32") {
      const float f = static_cast<float>(v);
      raw.append(reinterpret_cast<const char*>(&f), 4);
    } else if (input.datatype == "FP64") {
      raw.append(reinterpret_cast<const char*>(&v), 8);
    } else if (input.datatype == "FP16" || input.datatype == "BF16") {
      const uint16_t bits = input.datatype == "FP16"
                                ? Float16BitsFromDouble(v)
                                : BFloat16BitsFromDouble(v);
      raw.append(reinterpret_cast<const char*>(&bits), 2);
    } else {
      const int64_t i = static_cast<int64_t>(v);
      raw.append(reinterpret_cast<const char*>(&i), 8);
    }
  }
  return raw;
}

// The JSON number of a value, exact for its datatype.
std::string Number(double v, const std::string& datatype) {
  if (datatype == "INT64") return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat(datatype == "FP32" ? "%.9g" : "%.17g", v);
}

// Data, nested by the first dim when `nested` (row-major either way).
std::string JsonData(const Input& input, bool nested) {
  std::vector<std::string> numbers;
  for (double v : input.values) numbers.push_back(Number(v, input.datatype));
  if (!nested || input.shape.size() != 2) {
    return absl::StrCat("[", absl::StrJoin(numbers, ","), "]");
  }
  std::vector<std::string> rows;
  const size_t c = static_cast<size_t>(input.shape[1]);
  for (size_t r = 0; r < numbers.size() / c; ++r) {
    rows.push_back(
        absl::StrCat("[",
                     absl::StrJoin(numbers.begin() + r * c,
                                   numbers.begin() + (r + 1) * c, ","),
                     "]"));
  }
  return absl::StrCat("[", absl::StrJoin(rows, ","), "]");
}

// The request body: JSON data, or binary data after the JSON (then
// *header_length is set).
std::string Body(const std::vector<Input>& inputs, bool binary, bool nested,
                 const std::string& extra, int64_t* header_length) {
  std::vector<std::string> tensors;
  std::string data;
  for (const Input& input : inputs) {
    std::string tensor = absl::StrCat(
        "{\"name\":\"", input.name, "\",\"datatype\":\"", input.datatype,
        "\",\"shape\":[", absl::StrJoin(input.shape, ","), "]");
    if (binary) {
      const std::string bytes = Bytes(input);
      absl::StrAppend(&tensor,
                      ",\"parameters\":{\"binary_data_size\":", bytes.size(),
                      "}}");
      data += bytes;
    } else {
      absl::StrAppend(&tensor, ",\"data\":", JsonData(input, nested), "}");
    }
    tensors.push_back(tensor);
  }
  std::string json = absl::StrCat("{\"id\":\"rest-1\",\"inputs\":[",
                                  absl::StrJoin(tensors, ","), "]", extra, "}");
  *header_length = binary ? static_cast<int64_t>(json.size()) : -1;
  return json + data;
}

// The same request over gRPC, the reference.
inference::ModelInferResponse OverGrpc(Stub& stub, const Model& model,
                                       const std::vector<Input>& inputs) {
  inference::ModelInferRequest request = Request(model.name);
  for (const Input& input : inputs) {
    auto* tensor = request.add_inputs();
    tensor->set_name(input.name);
    tensor->set_datatype(input.datatype);
    tensor->mutable_shape()->Add(input.shape.begin(), input.shape.end());
    request.add_raw_input_contents(Bytes(input));
  }
  inference::ModelInferResponse response;
  const grpc::Status status = Call(stub, &Stub::ModelInfer, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

// Checks a REST infer answer against the gRPC one: the same outputs, shapes
// and values (bit for bit once read back in the output's datatype).
void ExpectSame(const HttpAnswer& answer,
                const inference::ModelInferResponse& reference,
                bool binary_outputs) {
  ASSERT_EQ(answer.status, 200) << answer.body.substr(0, 300);
  std::string json = answer.body;
  std::string binary;
  if (binary_outputs) {
    int64_t length = 0;
    ASSERT_TRUE(absl::SimpleAtoi(
        answer.Header("Inference-Header-Content-Length"), &length));
    json = answer.body.substr(0, length);
    binary = answer.body.substr(length);
  } else {
    EXPECT_EQ(answer.Header("Inference-Header-Content-Length"), "");
  }
  const rapidjson::Document doc = Parse(json);
  EXPECT_EQ(std::string(doc["model_name"].GetString()), reference.model_name());
  EXPECT_EQ(std::string(doc["model_version"].GetString()), "1");
  EXPECT_EQ(std::string(doc["id"].GetString()), "rest-1");
  const auto& outputs = doc["outputs"];
  ASSERT_EQ(static_cast<int>(outputs.Size()), reference.outputs_size());
  size_t offset = 0;
  for (int i = 0; i < reference.outputs_size(); ++i) {
    const auto& out = outputs[i];
    const auto& want = reference.outputs(i);
    SCOPED_TRACE(want.name());
    EXPECT_EQ(std::string(out["name"].GetString()), want.name());
    EXPECT_EQ(std::string(out["datatype"].GetString()), want.datatype());
    std::vector<int64_t> shape;
    for (const auto& d : out["shape"].GetArray()) shape.push_back(d.GetInt64());
    EXPECT_EQ(shape,
              std::vector<int64_t>(want.shape().begin(), want.shape().end()));
    const std::string& raw = reference.raw_output_contents(i);
    if (binary_outputs) {
      EXPECT_EQ(out["parameters"]["binary_data_size"].GetUint64(), raw.size());
      EXPECT_EQ(binary.substr(offset, raw.size()), raw);
      offset += raw.size();
      continue;
    }
    std::string got;
    for (const auto& v : out["data"].GetArray()) {
      if (want.datatype() == "FP16" || want.datatype() == "BF16") {
        // Widened exactly: the number reads back to the same bits.
        const uint16_t bits = want.datatype() == "FP16"
                                  ? Float16BitsFromDouble(v.GetDouble())
                                  : BFloat16BitsFromDouble(v.GetDouble());
        got.append(reinterpret_cast<const char*>(&bits), 2);
      } else if (want.datatype() == "FP32") {
        const float f = static_cast<float>(v.GetDouble());
        got.append(reinterpret_cast<const char*>(&f), 4);
      } else {
        const double d = v.GetDouble();
        got.append(reinterpret_cast<const char*>(&d), 8);
      }
    }
    EXPECT_EQ(got, raw);
  }
}

// How a test of every model sends its data: the datatype, and binary (the
// binary tensor data extension) or JSON. JSON sends FP32 as nested arrays,
// FP64 flat. The half types travel in binary only (JSON has no half numbers
// to send), and come back in binary, or as JSON numbers widened exactly.
struct BodyKind {
  const char* datatype;
  bool binary;
};
void PrintTo(const BodyKind& kind, std::ostream* os) {
  *os << kind.datatype << (kind.binary ? " binary" : " JSON");
}

class KServeRestModelsTest : public KServeRestTest,
                             public ::testing::WithParamInterface<BodyKind> {};

TEST_P(KServeRestModelsTest, AnswerAsOverGrpc) {
  const auto [datatype, binary] = GetParam();
  for (const Model& model : AllModels()) {
    SCOPED_TRACE(
        absl::StrCat(model.name, " ", datatype, binary ? " binary" : " JSON"));
    const std::vector<Input> inputs = InputsFor(model, datatype);
    int64_t header_length;
    const std::string body =
        Body(inputs, binary, /*nested=*/std::string(datatype) == "FP32",
             binary ? ",\"parameters\":{\"binary_data_output\":true}" : "",
             &header_length);
    std::vector<std::pair<std::string, std::string>> headers;
    if (header_length >= 0) {
      headers.emplace_back("Inference-Header-Content-Length",
                           absl::StrCat(header_length));
    }
    const HttpAnswer answer =
        Post(absl::StrCat("/v2/models/", model.name, "/versions/1/infer"), body,
             headers);
    ExpectSame(answer, OverGrpc(*stub_, model, inputs), binary);
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryModel, KServeRestModelsTest,
    ::testing::Values(BodyKind{"FP32", false}, BodyKind{"FP64", false},
                      BodyKind{"FP32", true}, BodyKind{"FP64", true},
                      BodyKind{"FP16", true}, BodyKind{"BF16", true}),
    [](const ::testing::TestParamInfo<BodyKind>& info) {
      return absl::StrCat(info.param.datatype,
                          info.param.binary ? "Binary" : "Json");
    });

TEST_F(KServeRestTest, HalfOutputsAsJsonNumbers) {
  for (const char* datatype : {"FP16", "BF16"}) {
    const Model& model = **FindModel("gelu.vjp", "");
    SCOPED_TRACE(datatype);
    const std::vector<Input> inputs = InputsFor(model, datatype);
    int64_t header_length;
    const std::string body = Body(inputs, /*binary=*/true, /*nested=*/false,
                                  /*extra=*/"", &header_length);
    const HttpAnswer answer = HttpExchange(
        server_->http_port(), "POST", "/v2/models/gelu.vjp/infer", body,
        {{"Inference-Header-Content-Length", absl::StrCat(header_length)}});
    ExpectSame(answer, OverGrpc(*stub_, model, inputs),
               /*binary_outputs=*/false);
  }
}

// One input binary, one JSON; one output binary, the other JSON.
// JSON has no half numbers to send: FP16 and BF16 data must be binary.
TEST_F(KServeRestTest, HalfDataAsJsonIsRefused) {
  for (const char* datatype : {"FP16", "BF16"}) {
    SCOPED_TRACE(datatype);
    const HttpAnswer answer =
        Post("/v2/models/gelu/infer",
             absl::StrCat("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"",
                          datatype, "\",\"shape\":[2],\"data\":[1,2]}]}"));
    EXPECT_EQ(answer.status, 400);
    EXPECT_THAT(answer.body, HasSubstr("travels only as binary tensor data"));
  }
}

TEST_F(KServeRestTest, BinaryAndJsonMixPerTensor) {
  const Model& model = **FindModel("softmax_cross_entropy", "");
  const std::vector<Input> inputs = InputsFor(model, "FP32");
  const std::string logits = Bytes(inputs[0]);
  const std::string json = absl::StrCat(
      "{\"id\":\"rest-1\",\"inputs\":[{\"name\":\"logits\",\"datatype\":"
      "\"FP32\",\"shape\":[3,5],\"parameters\":{\"binary_data_size\":",
      logits.size(),
      "}},{\"name\":\"labels\",\"datatype\":\"INT64\",\"shape\":[3],"
      "\"data\":[0,4,2]}],\"outputs\":[{\"name\":\"loss\"},{\"name\":"
      "\"grad_logits\",\"parameters\":{\"binary_data\":true}}]}");
  const HttpAnswer answer =
      Post("/v2/models/softmax_cross_entropy/infer", json + logits,
           {{"Inference-Header-Content-Length", absl::StrCat(json.size())}});
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.Header("Content-Type"), "application/octet-stream");
  int64_t length = 0;
  ASSERT_TRUE(absl::SimpleAtoi(answer.Header("Inference-Header-Content-Length"),
                               &length));
  const rapidjson::Document doc = Parse(answer.body.substr(0, length));
  ASSERT_EQ(doc["outputs"].Size(), 2u);
  const inference::ModelInferResponse reference =
      OverGrpc(*stub_, model, inputs);
  const float loss =
      static_cast<float>(doc["outputs"][0]["data"][0].GetDouble());
  EXPECT_EQ(RawBytes(std::vector<float>{loss}),
            reference.raw_output_contents(OutputIndex(reference, "loss")));
  EXPECT_EQ(
      answer.body.substr(length),
      reference.raw_output_contents(OutputIndex(reference, "grad_logits")));
}

TEST_F(KServeRestTest, NanAndInfinityTravelAsJsonNumbers) {
  const HttpAnswer answer =
      Post("/v2/models/sigmoid/infer",
           "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[3],"
           "\"data\":[NaN,Infinity,-Infinity]}]}");
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_THAT(answer.body, HasSubstr("\"data\":[NaN,1,0]"));
}

// Numbers are read exactly (correctly rounded), whatever their spelling:
// identity answers each FP64 value with its own bits.
TEST_F(KServeRestTest, JsonNumbersAreReadExactly) {
  const HttpAnswer answer =
      Post("/v2/models/identity/infer",
           "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[8],"
           "\"data\":[0e300,0.1,-0.0,5e-324,Infinity,9007199254740993,"
           "18446744073709551616,2.2250738585072011e-308]}]}");
  ASSERT_EQ(answer.status, 200) << answer.body;
  const rapidjson::Document doc = Parse(answer.body);
  const auto& data = doc["outputs"][0]["data"];
  ASSERT_EQ(data.Size(), 8u);
  const std::vector<double> want = {0.0,
                                    0.1,
                                    -0.0,
                                    5e-324,
                                    std::numeric_limits<double>::infinity(),
                                    9007199254740992.0,
                                    18446744073709551616.0,
                                    2.2250738585072011e-308};
  for (size_t i = 0; i < want.size(); ++i) {
    const double got = data[static_cast<rapidjson::SizeType>(i)].GetDouble();
    EXPECT_EQ(std::memcmp(&got, &want[i], sizeof(double)), 0)
        << i << ": " << got << " vs " << want[i];
  }
  // A literal beyond double's range is refused by the JSON reader (clients
  // write Infinity).
  const HttpAnswer too_big =
      Post("/v2/models/identity/infer",
           "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],"
           "\"data\":[1e400]}]}");
  EXPECT_EQ(too_big.status, 400);
  EXPECT_THAT(too_big.body, HasSubstr("Number too big"));
}

TEST_F(KServeRestTest, HealthServerAndModelMetadata) {
  EXPECT_EQ(Get("/v2/health/live").status, 200);
  EXPECT_EQ(Get("/v2/health/ready").status, 200);
  const HttpAnswer server = Get("/v2");
  ASSERT_EQ(server.status, 200);
  const rapidjson::Document s = Parse(server.body);
  EXPECT_EQ(std::string(s["name"].GetString()), "actsvc");
  ASSERT_EQ(s["extensions"].Size(), 1u);
  EXPECT_EQ(std::string(s["extensions"][0].GetString()), "statistics");

  const HttpAnswer metadata = Get("/v2/models/softmax_cross_entropy");
  ASSERT_EQ(metadata.status, 200);
  const rapidjson::Document m = Parse(metadata.body);
  EXPECT_EQ(std::string(m["inputs"][1]["name"].GetString()), "labels");
  EXPECT_EQ(std::string(m["inputs"][1]["datatype"].GetString()), "INT64");
  EXPECT_EQ(m["inputs"][1]["shape"][0].GetInt64(), -1);
  EXPECT_EQ(m["outputs"].Size(), 3u);

  const HttpAnswer config = Get("/v2/models/gelu.jacobian/versions/1/config");
  ASSERT_EQ(config.status, 200);
  const rapidjson::Document c = Parse(config.body);
  EXPECT_EQ(c["max_batch_size"].GetInt(), 0);
  EXPECT_EQ(std::string(c["input"][0]["data_type"].GetString()), "TYPE_FP32");
  EXPECT_EQ(c["output"][0]["dims"].Size(), 3u);
  EXPECT_EQ(c["output"][0]["dims"][2].GetInt64(), -1);

  EXPECT_EQ(Get("/v2/models/gelu/ready").status, 200);
  EXPECT_EQ(Get("/v2/models/gelu/versions/2/ready").status, 404);
  const HttpAnswer index = Post("/v2/repository/index", "");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(Parse(index.body).Size(), AllModels().size());
}

TEST_F(KServeRestTest, StatisticsAreJsonNumbersThatMove) {
  const auto count = [](const rapidjson::Document& d, const char* what) {
    return d["model_stats"][0]["inference_stats"][what]["count"].GetUint64();
  };
  const rapidjson::Document before = Parse(Get("/v2/models/elu/stats").body);
  ASSERT_EQ(Post("/v2/models/elu/infer",
                 "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
                 "\"shape\":[2],\"data\":[-1,1]}]}")
                .status,
            200);
  ASSERT_EQ(Post("/v2/models/elu/infer",
                 "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
                 "\"shape\":[3],\"data\":[-1,1]}]}")
                .status,
            400);
  const rapidjson::Document after = Parse(Get("/v2/models/elu/stats").body);
  for (const char* phase : {"success", "queue", "compute_input",
                            "compute_infer", "compute_output"}) {
    EXPECT_EQ(count(after, phase) - count(before, phase), 1u) << phase;
  }
  EXPECT_EQ(count(after, "fail") - count(before, "fail"), 1u);
  EXPECT_TRUE(
      after["model_stats"][0]["inference_stats"]["cache_hit"]["ns"].IsUint64());
  EXPECT_TRUE(after["model_stats"][0]["inference_count"].IsUint64());
  const rapidjson::Document all = Parse(Get("/v2/models/stats").body);
  EXPECT_EQ(all["model_stats"].Size(), AllModels().size());
}

TEST_F(KServeRestTest, ErrorsAreJsonWithTheirStatus) {
  const auto expect = [](const HttpAnswer& answer, int status,
                         const std::string& part) {
    EXPECT_EQ(answer.status, status) << answer.body;
    EXPECT_EQ(answer.Header("Content-Type"), "application/json");
    const rapidjson::Document doc = Parse(answer.body);
    ASSERT_TRUE(doc.IsObject() && doc.HasMember("error")) << answer.body;
    EXPECT_THAT(std::string(doc["error"].GetString()), HasSubstr(part));
  };
  const std::string x =
      "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],"
      "\"data\":[1,2]}]}";
  expect(Post("/v2/models/nope/infer", x), 404, "unknown model: 'nope'");
  expect(Get("/v2/models/nope"), 404, "'nope'");
  expect(Get("/v2/models/gelu/bogus"), 404, "no such path");
  expect(Post("/v2/models/gelu/infer", "{\"inputs\":[1,"), 400,
         "not valid JSON");
  expect(Post("/v2/models/gelu/infer", "{\"inputs\":[{\"name\":\"x\"}]}"), 400,
         "\"datatype\"");
  expect(Post("/v2/models/gelu/infer",
              "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":"
              "[2],\"data\":[1,\"two\"]}]}"),
         400, "data value #1 is not a number");
  expect(Post("/v2/models/gelu/infer", x,
              {{"Inference-Header-Content-Length", "999"}}),
         400, "Inference-Header-Content-Length is 999");
  expect(Post("/v2/models/gelu/infer",
              "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":"
              "[2],\"parameters\":{\"binary_data_size\":8}}]}"),
         400, "no Inference-Header-Content-Length");
  const std::string header =
      "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],"
      "\"parameters\":{\"binary_data_size\":8}}]}";
  expect(
      Post("/v2/models/gelu/infer", header + std::string(12, '\0'),
           {{"Inference-Header-Content-Length", absl::StrCat(header.size())}}),
      400, "4 bytes of binary data no input claims");
  expect(
      Post("/v2/models/gelu/infer", header + std::string(4, '\0'),
           {{"Inference-Header-Content-Length", absl::StrCat(header.size())}}),
      400, "binary_data_size");
  expect(Post("/v2/models/gelu/infer",
              "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":"
              "[3],\"data\":[1,2]}]}"),
         400, "Expected 3 (shape [3]), got 2 for model 'gelu'");
  // Deeply nested data is refused, not recursed into.
  expect(Post("/v2/models/gelu/infer",
              absl::StrCat("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
                           "\"shape\":[1],\"data\":",
                           std::string(100000, '['), std::string(100000, ']'),
                           "}]}")),
         400, "nested over 64 levels");
  // Over --max_message_mb: 413 before the body is read.
  expect(Post("/v2/models/gelu/infer",
              std::string((kMaxMessageMb << 20) + 1, ' ')),
         413, "--max_message_mb");
}

}  // namespace
}  // namespace actsvc::server::kserve
