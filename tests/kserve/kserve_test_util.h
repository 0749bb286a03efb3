// Helpers for the KServe v2 tests: a server on a loopback port, requests of
// the Open Inference Protocol, and the own API's answer to the same
// computation (the reference every model is checked against: both
// protocols must give the same bits, since they share one path).
#ifndef ACTSVC_TESTS_KSERVE_KSERVE_TEST_UTIL_H_
#define ACTSVC_TESTS_KSERVE_KSERVE_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/server.h"

namespace actsvc::server::kserve::testing {

using Stub = inference::GRPCInferenceService::Stub;
using InputTensor = inference::ModelInferRequest::InferInputTensor;

inline absl::StatusOr<std::unique_ptr<Server>> StartKServeServer(
    ServerOptions options = {}) {
  options.address = "127.0.0.1:0";
  options.compute_threads = 2;
  // Small chunks, so that multi-chunk paths run on small tensors.
  options.chunk_elements = 1024;
  return Server::Start(options);
}

inline std::unique_ptr<Stub> StubTo(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return inference::GRPCInferenceService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                grpc::InsecureChannelCredentials(), args));
}

// A suite's server, shared by its tests, and a stub to it. `Suite` may say
// how the server runs with a static `ServerOptions Options()`.
template <typename Suite>
class KServeSuite : public ::testing::Test {
 protected:
  static ServerOptions Options() { return {}; }
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<Server>> server =
        StartKServeServer(Suite::Options());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server).release();
    stub_ = StubTo(server_->port()).release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete server_;
  }
  // ModelInfer on the suite's server (its response dropped when `response`
  // is nullptr).
  static grpc::Status Infer(const inference::ModelInferRequest& request,
                            inference::ModelInferResponse* response = nullptr);

  inline static Server* server_ = nullptr;
  inline static Stub* stub_ = nullptr;
};

inline void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
}

template <typename Request, typename Response>
grpc::Status Call(Stub& stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*,
                                               const Request&, Response*),
                  const Request& request, Response* response) {
  grpc::ClientContext context;
  SetDeadline(&context);
  return (stub.*method)(&context, request, response);
}

template <typename Suite>
grpc::Status KServeSuite<Suite>::Infer(
    const inference::ModelInferRequest& request,
    inference::ModelInferResponse* response) {
  inference::ModelInferResponse ignored;
  return Call(*stub_, &Stub::ModelInfer, request,
              response == nullptr ? &ignored : response);
}

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(T));
}

template <typename T>
std::vector<T> FromRaw(const std::string& bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

template <typename T>
constexpr const char* DatatypeOf() {
  if constexpr (std::is_same_v<T, float>) return "FP32";
  if constexpr (std::is_same_v<T, double>) return "FP64";
  if constexpr (std::is_same_v<T, int64_t>) return "INT64";
  return "INT32";
}

// Adds input `name` with `values`, raw (in raw_input_contents) or typed.
template <typename T>
void AddInput(inference::ModelInferRequest* request, const std::string& name,
              const std::vector<int64_t>& shape, const std::vector<T>& values,
              bool raw) {
  InputTensor* input = request->add_inputs();
  input->set_name(name);
  input->set_datatype(DatatypeOf<T>());
  input->mutable_shape()->Add(shape.begin(), shape.end());
  if (raw) {
    request->add_raw_input_contents(RawBytes(values));
    return;
  }
  auto* c = input->mutable_contents();
  if constexpr (std::is_same_v<T, float>) {
    c->mutable_fp32_contents()->Add(values.begin(), values.end());
  } else if constexpr (std::is_same_v<T, double>) {
    c->mutable_fp64_contents()->Add(values.begin(), values.end());
  } else if constexpr (std::is_same_v<T, int64_t>) {
    c->mutable_int64_contents()->Add(values.begin(), values.end());
  } else {
    c->mutable_int_contents()->Add(values.begin(), values.end());
  }
}

inline inference::ModelInferRequest Request(const std::string& model,
                                            const std::string& id = "") {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_id(id);
  return request;
}

inline inference::InferParameter DoubleParam(double v) {
  inference::InferParameter p;
  p.set_double_param(v);
  return p;
}
inline inference::InferParameter Int64Param(int64_t v) {
  inference::InferParameter p;
  p.set_int64_param(v);
  return p;
}
inline inference::InferParameter StringParam(const std::string& v) {
  inference::InferParameter p;
  p.set_string_param(v);
  return p;
}
inline inference::InferParameter BoolParam(bool v) {
  inference::InferParameter p;
  p.set_bool_param(v);
  return p;
}

// The position of output `name` in a response, or -1.
inline int OutputIndex(const inference::ModelInferResponse& response,
                       const std::string& name) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() == name) return i;
  }
  return -1;
}

// The values of output `name`, read from raw_output_contents as T.
template <typename T>
std::vector<T> OutputValues(const inference::ModelInferResponse& response,
                            const std::string& name) {
  const int i = OutputIndex(response, name);
  EXPECT_GE(i, 0) << "no output " << name;
  if (i < 0) return {};
  EXPECT_EQ(response.outputs(i).datatype(), DatatypeOf<T>());
  EXPECT_EQ(response.raw_output_contents_size(), response.outputs_size());
  return FromRaw<T>(response.raw_output_contents(i));
}

inline std::vector<int64_t> OutputShape(
    const inference::ModelInferResponse& response, const std::string& name) {
  const int i = OutputIndex(response, name);
  if (i < 0) return {};
  return {response.outputs(i).shape().begin(),
          response.outputs(i).shape().end()};
}

}  // namespace actsvc::server::kserve::testing

#endif  // ACTSVC_TESTS_KSERVE_KSERVE_TEST_UTIL_H_
