// The Open Inference Protocol over HTTP/REST (KServe v2), on the HTTP
// endpoint of --http_address: health, server and model metadata, model
// readiness, config and statistics, the repository index, and
// POST /v2/models/{m}[/versions/{v}]/infer with JSON bodies or the binary
// tensor data extension, answered in kind. Each route translates into the
// gRPC messages and calls the same InferenceService, so REST and gRPC share
// one path. Errors are {"error": "..."} with 400, 404 for an unknown model
// (and 413 for a body over the size limit, from the endpoint itself).
#ifndef ACTSVC_SERVER_KSERVE_REST_H_
#define ACTSVC_SERVER_KSERVE_REST_H_

#include <vector>

#include "server/compute.h"
#include "server/http_server.h"
#include "server/kserve/service.h"

namespace actsvc::server::kserve {

// The routes; `service` outlives them. `compute`: the limits and chunking
// every infer call runs with (REST calls have no deadline).
std::vector<HttpRoute> RestRoutes(InferenceService* service,
                                  const ComputeContext& compute);

}  // namespace actsvc::server::kserve

#endif  // ACTSVC_SERVER_KSERVE_REST_H_
