// Channel credentials from the --tls_* flags, shared by the one-shot
// commands and `actsvc bench`.
#ifndef ACTSVC_CLIENT_TLS_H_
#define ACTSVC_CLIENT_TLS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace actsvc::client {

// Paths of PEM files and the name to verify; all empty means plaintext.
struct TlsOptions {
  std::string ca;    // CA bundle to verify the server (empty: system roots)
  std::string cert;  // client certificate chain, for mutual TLS
  std::string key;   // its private key
  // The name the server's certificate must carry, when it differs from the
  // target's host (e.g. connecting by IP address).
  std::string server_name;

  bool enabled() const {
    return !ca.empty() || !cert.empty() || !key.empty() || !server_name.empty();
  }
};

// Insecure credentials when `tls` is not enabled; otherwise TLS ones, and
// the server name override set in `args`. INVALID_ARGUMENT when only one of
// cert and key is given or a file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeChannelCredentials(const TlsOptions& tls, grpc::ChannelArguments* args);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_TLS_H_
