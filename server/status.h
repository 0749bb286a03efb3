// The one place where internal errors become wire statuses.
#ifndef ACTSVC_SERVER_STATUS_H_
#define ACTSVC_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace actsvc::server {

// Maps an absl::Status to the grpc::Status sent to the client, keeping the
// code and the message. Codes absl does not know become UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_STATUS_H_
