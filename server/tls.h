// Server credentials from PEM files: plaintext, TLS, or mutual TLS.
#ifndef ACTSVC_SERVER_TLS_H_
#define ACTSVC_SERVER_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace actsvc::server {

// Paths of PEM files; all empty means plaintext.
struct TlsFiles {
  std::string cert;  // the server's certificate chain
  std::string key;   // its private key
  // When set, clients must present a certificate that this CA bundle
  // verifies (mutual TLS); others are refused during the handshake.
  std::string client_ca;

  bool enabled() const { return !cert.empty() || !key.empty(); }
};

// INVALID_ARGUMENT when only one of cert and key is given, when client_ca is
// given without them, or when a file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// The whole file, or INVALID_ARGUMENT naming `what` and the path.
absl::StatusOr<std::string> ReadPemFile(const std::string& path,
                                        const std::string& what);

}  // namespace actsvc::server

#endif  // ACTSVC_SERVER_TLS_H_
