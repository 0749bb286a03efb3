// The parameters of a ModelInferRequest, read for the model it names: each
// a double, int64, uint64 or string InferParameter, converted to what the
// model takes (alpha and axis of a function; reduction, label_smoothing and
// ignore_index of cross-entropy). A parameter the model does not take is
// INVALID_ARGUMENT, unless it is one Triton's clients send on their own
// (sequence_id, priority, timeout, ...), which is ignored. Errors name the
// parameter as "parameters.<name>" and the model, in Triton's style.
#ifndef ACTSVC_SERVER_KSERVE_PARAMETERS_H_
#define ACTSVC_SERVER_KSERVE_PARAMETERS_H_

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/map.h"
#include "inference/grpc_service.pb.h"
#include "server/kserve/models.h"
#include "server/ops.h"

namespace actsvc::server::kserve {

using InferParameters =
    google::protobuf::Map<std::string, inference::InferParameter>;

// alpha (a number) and axis (an integer that fits an int) into `function`.
absl::Status ReadFunctionParameters(const InferParameters& parameters,
                                    const Model& model,
                                    FunctionRequest* function);

// reduction ("mean", "sum" or "none"; an invalid one is kept in
// request->reduction as its error, for Validate to report in its order),
// label_smoothing (a number) and ignore_index (an integer) into `request`.
absl::Status ReadCrossEntropyParameters(const InferParameters& parameters,
                                        const Model& model,
                                        CrossEntropyRequest* request);

}  // namespace actsvc::server::kserve

#endif  // ACTSVC_SERVER_KSERVE_PARAMETERS_H_
