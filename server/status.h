// The one place where internal errors become wire statuses: gRPC's and
// HTTP's, side by side.
#ifndef ACTSVC_SERVER_STATUS_H_
#define ACTSVC_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace actsvc::server {

// Maps an absl::Status to the grpc::Status sent to the client, keeping the
// code and the message. Codes absl does not know become UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The HTTP status code of an absl::Status (200 for OK), as gRPC's HTTP
// mapping (google/api/code.proto) gives it.
int ToHttpStatus(absl::StatusCode code);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_STATUS_H_
