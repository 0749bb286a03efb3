#include "client/bench_http.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/http_socket.h"
#include "inference/grpc_service.pb.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace actsvc::client::bench {
namespace {

namespace bv1 = ::actsvc::bench::v1;
using Writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>,
                                 rapidjson::UTF8<>, rapidjson::CrtAllocator,
                                 rapidjson::kWriteNanAndInfFlag>;

int64_t ElementSize(const std::string& datatype) {
  if (datatype == "FP64" || datatype == "INT64") return 8;
  return 4;
}

// Writes the values of `bytes` (little-endian `datatype`) as JSON numbers.
void WriteData(const std::string& datatype, absl::string_view bytes,
               Writer* writer) {
  const int64_t size = ElementSize(datatype);
  writer->StartArray();
  for (size_t i = 0; i + size <= bytes.size(); i += size) {
    if (datatype == "FP32") {
      float v;
      std::memcpy(&v, bytes.data() + i, 4);
      if (std::isfinite(v)) {
        // The shortest text that reads back as the same float (a double's
        // would make a [4,1048576] body larger than the server takes).
        char text[32];
        const std::to_chars_result r =
            std::to_chars(text, text + sizeof(text), v);
        writer->RawValue(text, r.ptr - text, rapidjson::kNumberType);
      } else {
        writer->Double(v);
      }
    } else if (datatype == "FP64") {
      double v;
      std::memcpy(&v, bytes.data() + i, 8);
      writer->Double(v);
    } else if (datatype == "INT64") {
      int64_t v;
      std::memcpy(&v, bytes.data() + i, 8);
      writer->Int64(v);
    } else {
      int32_t v;
      std::memcpy(&v, bytes.data() + i, 4);
      writer->Int(v);
    }
  }
  writer->EndArray();
}

// The values of an input as bytes, from raw or typed contents.
std::string InputBytes(const inference::ModelInferRequest& r, int i) {
  if (i < r.raw_input_contents_size()) return r.raw_input_contents(i);
  const auto& c = r.inputs(i).contents();
  const auto bytes = [](const auto& field) {
    return std::string(reinterpret_cast<const char*>(field.data()),
                       field.size() * sizeof(*field.data()));
  };
  if (c.fp32_contents_size() > 0) return bytes(c.fp32_contents());
  if (c.fp64_contents_size() > 0) return bytes(c.fp64_contents());
  if (c.int64_contents_size() > 0) return bytes(c.int64_contents());
  return bytes(c.int_contents());
}

// One call: the whole answer, or why there is none.
struct Answer {
  int status = 0;
  int64_t header_length = -1;
  std::string body;
  std::string error;  // transport failure
};

Answer Exchange(const addrinfo* address, const std::string& request,
                absl::Duration timeout) {
  Answer answer;
  const int fd = socket(address->ai_family, SOCK_STREAM, 0);
  if (fd < 0) {
    answer.error = "socket failed";
    return answer;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(timeout));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
    answer.error = absl::StrCat("connect: ", std::strerror(errno));
    close(fd);
    return answer;
  }
  size_t sent = 0;
  const std::string raw = WriteThenReadAll(fd, request, &sent);
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || raw.size() < 12 ||
      !absl::SimpleAtoi(absl::string_view(raw).substr(9, 3), &answer.status)) {
    answer.error = sent < request.size() ? "send failed" : "no HTTP answer";
    return answer;
  }
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(raw).substr(0, end), "\r\n")) {
    if (absl::StartsWithIgnoreCase(line, "Inference-Header-Content-Length:")) {
      absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(32)),
                       &answer.header_length);
    }
  }
  answer.body = raw.substr(end + 4);
  return answer;
}

// The JSON part of the REST request of `r`: its tensors as JSON data
// (`json`), or described with their bytes appended to *binary.
std::string InferRequestJson(const inference::ModelInferRequest& r, bool json,
                             std::string* binary) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  writer.StartObject();
  writer.Key("inputs");
  writer.StartArray();
  for (int i = 0; i < r.inputs_size(); ++i) {
    const auto& input = r.inputs(i);
    const std::string bytes = InputBytes(r, i);
    writer.StartObject();
    writer.Key("name");
    writer.String(input.name().c_str());
    writer.Key("datatype");
    writer.String(input.datatype().c_str());
    writer.Key("shape");
    writer.StartArray();
    for (int64_t d : input.shape()) writer.Int64(d);
    writer.EndArray();
    if (json) {
      writer.Key("data");
      WriteData(input.datatype(), bytes, &writer);
    } else {
      writer.Key("parameters");
      writer.StartObject();
      writer.Key("binary_data_size");
      writer.Uint64(bytes.size());
      writer.EndObject();
      *binary += bytes;
    }
    writer.EndObject();
  }
  writer.EndArray();
  if (r.outputs_size() > 0) {
    writer.Key("outputs");
    writer.StartArray();
    for (const auto& output : r.outputs()) {
      writer.StartObject();
      writer.Key("name");
      writer.String(output.name().c_str());
      writer.EndObject();
    }
    writer.EndArray();
  }
  writer.Key("parameters");
  writer.StartObject();
  if (!json) {
    writer.Key("binary_data_output");
    writer.Bool(true);
  }
  for (const auto& [name, p] : r.parameters()) {
    writer.Key(name.c_str());
    if (p.parameter_choice_case() == inference::InferParameter::kDoubleParam) {
      writer.Double(p.double_param());
    } else {
      writer.Int64(p.int64_param());
    }
  }
  writer.EndObject();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

absl::StatusOr<HttpWorkload> MakeHttpWorkload(const Workload& kserve,
                                              absl::string_view http_target,
                                              bool json) {
  inference::ModelInferRequest r;
  if (!Parse(kserve.request, &r)) {
    return absl::InternalError("the KServe workload does not parse");
  }
  HttpWorkload http;
  const size_t colon = http_target.rfind(':');
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(http_target.substr(colon + 1), &http.port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_target=", http_target, " is not host:port"));
  }
  http.host = std::string(http_target.substr(0, colon));
  http.elements = kserve.elements;
  std::string binary;
  const std::string header = InferRequestJson(r, json, &binary);
  const std::string body = header + binary;
  http.body_bytes = static_cast<int64_t>(body.size());
  http.request = absl::StrCat(
      "POST /v2/models/", r.model_name(),
      "/infer HTTP/1.1\r\nHost: ", http_target, "\r\nContent-Type: ",
      json ? "application/json" : "application/octet-stream",
      "\r\nContent-Length: ", body.size(), "\r\n",
      json ? ""
           : absl::StrCat("Inference-Header-Content-Length: ", header.size(),
                          "\r\n"),
      "Connection: close\r\n\r\n", body);
  return http;
}

absl::StatusOr<std::string> InferAnswerAsProto(const std::string& body,
                                               int64_t header_length) {
  const size_t json_size =
      header_length >= 0 ? static_cast<size_t>(header_length) : body.size();
  if (json_size > body.size()) {
    return absl::InvalidArgumentError("header length past the body");
  }
  rapidjson::Document doc;
  // Normal precision: a few ulps at most, within the check's tolerance
  // (rapidjson 1.1.0's full-precision path is undefined on "0e300").
  doc.Parse<rapidjson::kParseNanAndInfFlag>(body.data(), json_size);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("outputs") ||
      !doc["outputs"].IsArray()) {
    return absl::InvalidArgumentError("the answer is not an infer response");
  }
  inference::ModelInferResponse response;
  size_t offset = json_size;
  for (const auto& out : doc["outputs"].GetArray()) {
    if (!out.HasMember("name") || !out.HasMember("datatype") ||
        !out.HasMember("shape")) {
      return absl::InvalidArgumentError("an output without name or shape");
    }
    auto* output = response.add_outputs();
    output->set_name(out["name"].GetString());
    output->set_datatype(out["datatype"].GetString());
    for (const auto& d : out["shape"].GetArray())
      output->add_shape(d.GetInt64());
    std::string* raw = response.add_raw_output_contents();
    if (out.HasMember("parameters") &&
        out["parameters"].HasMember("binary_data_size")) {
      const uint64_t size = out["parameters"]["binary_data_size"].GetUint64();
      if (size > body.size() - offset) {
        return absl::InvalidArgumentError("binary data past the body");
      }
      raw->assign(body, offset, size);
      offset += size;
    } else if (out.HasMember("data") && out["data"].IsArray()) {
      for (const auto& v : out["data"].GetArray()) {
        if (output->datatype() == "FP64") {
          const double d = v.GetDouble();
          raw->append(reinterpret_cast<const char*>(&d), 8);
        } else {
          const float f = static_cast<float>(v.GetDouble());
          raw->append(reinterpret_cast<const char*>(&f), 4);
        }
      }
    }
  }
  return response.SerializeAsString();
}

namespace {

// "" when the answer to a checked call holds the workload's answer.
std::string CheckAnswer(const Answer& answer, const Workload& kserve) {
  absl::StatusOr<std::string> proto =
      InferAnswerAsProto(answer.body, answer.header_length);
  if (!proto.ok()) return std::string(proto.status().message());
  grpc::Slice slice(*proto);
  return CheckResponse(kserve, grpc::ByteBuffer(&slice, 1));
}

// What the threads of one level record, under one lock.
struct LevelTally {
  std::mutex mu;
  Tally tally;
  int64_t response_bytes = 0;
  std::optional<int64_t> first_measured;
  int64_t last_completed = 0;

  // A measured call sent at t0 and answered at t1.
  void Record(const Answer& answer, int64_t t0, int64_t t1, bool checked,
              const std::string& wrong) {
    std::lock_guard<std::mutex> lock(mu);
    if (!first_measured) first_measured = t0;
    last_completed = std::max(last_completed, t1);
    ++tally.requests;
    if (checked) ++tally.checked;
    if (answer.status == 200) {
      response_bytes = static_cast<int64_t>(answer.body.size());
      tally.AddOk(t1 - t0, t1, wrong);
    } else if (!answer.error.empty()) {
      tally.Add("UNAVAILABLE", answer.error);
    } else {
      tally.Add(absl::StrCat("HTTP_", answer.status),
                answer.body.substr(0, 200));
    }
  }
};

// One level of the closed loop: `concurrency` threads, each sending the
// request again as soon as it is answered, until the level is over.
// `address` is null when the host did not resolve.
bv1::Row RunHttpLevel(const LoadOptions& options, const HttpWorkload& http,
                      const Workload& kserve, const addrinfo* address,
                      int concurrency) {
  LevelTally level;
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> measured{0};
  const int64_t begin = NowNs();
  const int64_t window_begin =
      begin + absl::ToInt64Nanoseconds(options.warmup.time);
  const int64_t end = window_begin + absl::ToInt64Nanoseconds(options.duration);
  level.last_completed = window_begin;
  const ProcessCounters server_begin =
      options.server_pid > 0 ? ReadProcessCounters(options.server_pid)
                             : ProcessCounters();
  const ProcessCounters client_begin = ReadProcessCounters(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      while (true) {
        const int64_t seq = started.fetch_add(1);
        const int64_t t0 = NowNs();
        const bool warmup = seq < options.warmup.count || t0 < window_begin;
        if (options.requests > 0) {
          if (!warmup && measured.fetch_add(1) >= options.requests) break;
        } else if (t0 >= end) {
          break;
        }
        Answer answer;
        if (address == nullptr) {
          answer.error = absl::StrCat("cannot resolve ", http.host);
        } else {
          answer = Exchange(address, http.request, options.timeout);
        }
        const int64_t t1 = NowNs();
        if (warmup) continue;
        const bool check = answer.status == 200 && options.check_every > 0 &&
                           seq % options.check_every == 0;
        level.Record(answer, t0, t1, check,
                     check ? CheckAnswer(answer, kserve) : "");
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const ProcessCounters server_end =
      options.server_pid > 0 ? ReadProcessCounters(options.server_pid)
                             : ProcessCounters();
  const ProcessCounters client_end = ReadProcessCounters(0);
  const int64_t window_start = level.first_measured.value_or(window_begin);
  level.tally.window_begin_ns = window_start;
  level.tally.window = absl::Nanoseconds(
      std::max<int64_t>(0, level.last_completed - window_start));
  bv1::Row row = MakeRow(std::move(level.tally), http.elements, http.body_bytes,
                         level.response_bytes);
  row.set_concurrency(concurrency);
  AddProcessFigures(server_begin, server_end, client_begin, client_end, &row);
  return row;
}

}  // namespace

std::vector<bv1::Row> RunHttpLoad(const LoadOptions& options,
                                  const HttpWorkload& http,
                                  const Workload& kserve) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* address = nullptr;
  const std::string port = absl::StrCat(http.port);
  const int resolved =
      getaddrinfo(http.host.c_str(), port.c_str(), &hints, &address);
  std::vector<bv1::Row> rows;
  for (const int concurrency : options.concurrency) {
    rows.push_back(RunHttpLevel(
        options, http, kserve, resolved == 0 ? address : nullptr, concurrency));
  }
  if (address != nullptr) freeaddrinfo(address);
  return rows;
}

}  // namespace actsvc::client::bench
