// The flags of the actsvc CLI's commands (client/cli_flags.cc), declared for
// the library's parts that read them: the commands (commands.cc), their
// inputs and outputs (cli_io.cc), the command line (cli.cc) and `bench`
// (bench_cli.cc), which shares --target, --function, --shape and others.
#ifndef ACTSVC_CLIENT_CLI_FLAGS_H_
#define ACTSVC_CLIENT_CLI_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, target);
ABSL_DECLARE_FLAG(double, timeout_s);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_server_name);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(std::string, dtype);
ABSL_DECLARE_FLAG(std::string, encoding);
ABSL_DECLARE_FLAG(double, wait_s);
ABSL_DECLARE_FLAG(std::string, function);
ABSL_DECLARE_FLAG(double, alpha);
ABSL_DECLARE_FLAG(int32_t, axis);
ABSL_DECLARE_FLAG(int32_t, order);
ABSL_DECLARE_FLAG(std::string, shape);
ABSL_DECLARE_FLAG(std::string, x);
ABSL_DECLARE_FLAG(std::string, x_npy);
ABSL_DECLARE_FLAG(std::string, grad);
ABSL_DECLARE_FLAG(std::string, grad_npy);
ABSL_DECLARE_FLAG(bool, dense);
ABSL_DECLARE_FLAG(std::string, labels);
ABSL_DECLARE_FLAG(std::string, target_probs);
ABSL_DECLARE_FLAG(std::string, target_probs_npy);
ABSL_DECLARE_FLAG(std::string, reduction);
ABSL_DECLARE_FLAG(double, label_smoothing);
ABSL_DECLARE_FLAG(int64_t, ignore_index);
ABSL_DECLARE_FLAG(bool, probs);
ABSL_DECLARE_FLAG(std::string, ops);
ABSL_DECLARE_FLAG(int32_t, repeat);
ABSL_DECLARE_FLAG(double, epsilon);
ABSL_DECLARE_FLAG(int32_t, layers);
ABSL_DECLARE_FLAG(std::string, out_npy);

#endif  // ACTSVC_CLIENT_CLI_FLAGS_H_
