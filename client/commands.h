// The commands of the actsvc CLI (client/cli.cc maps their names): each
// builds its request from the flags (client/cli_flags.h), makes one call
// and prints the answer (client/cli_io.h), and returns the exit code.
#ifndef ACTSVC_CLIENT_COMMANDS_H_
#define ACTSVC_CLIENT_COMMANDS_H_

#include "client/cli_io.h"

namespace actsvc::client {

// grpc.health.v1.Health/Check, retried until SERVING for --wait_s.
int RunHealth(const Context& ctx);
// The function table, or one function's details (--function).
int RunList(const Context& ctx);
int RunEvaluate(const Context& ctx);
int RunDerivative(const Context& ctx);
int RunJacobian(const Context& ctx);
int RunXent(const Context& ctx);
// One Stream call: the --ops requests for the input, --repeat times.
int RunStream(const Context& ctx);
int RunAnalyze(const Context& ctx);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_COMMANDS_H_
