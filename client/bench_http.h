// `actsvc bench --protocol=http`: the KServe v2 workload (bench_kserve.h)
// sent to the REST endpoint (POST /v2/models/{m}/infer) with the binary
// tensor data extension, or JSON bodies with --http_json, in a closed loop
// of blocking calls (one thread and one connection per call outstanding;
// the server closes each connection after its answer). Answers are checked
// as the own API's, and each level is one report row as for gRPC.
#ifndef ACTSVC_CLIENT_BENCH_HTTP_H_
#define ACTSVC_CLIENT_BENCH_HTTP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "actsvc/bench/v1/report.pb.h"
#include "client/bench_load.h"

namespace actsvc::client::bench {

struct HttpWorkload {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string request;  // the whole HTTP request, sent by every call
  int64_t body_bytes = 0;
  int64_t elements = 0;
};

// The HTTP request of `kserve` (a workload UseKServe rewrote) for the REST
// endpoint at `http_target` ("host:port"): binary tensor data (answers
// binary too), or JSON data with `json`. INVALID_ARGUMENT for a bad target.
absl::StatusOr<HttpWorkload> MakeHttpWorkload(const Workload& kserve,
                                              absl::string_view http_target,
                                              bool json);

// The body of an infer answer (JSON, and the binary outputs after it when
// `header_length` >= 0) as a ModelInferResponse with raw_output_contents.
absl::StatusOr<std::string> InferAnswerAsProto(const std::string& body,
                                               int64_t header_length);

// Every closed-loop level of options.concurrency, one row each; answers
// are checked (every options.check_every-th) with CheckResponse(kserve).
std::vector<actsvc::bench::v1::Row> RunHttpLoad(const LoadOptions& options,
                                                const HttpWorkload& http,
                                                const Workload& kserve);

}  // namespace actsvc::client::bench

#endif  // ACTSVC_CLIENT_BENCH_HTTP_H_
