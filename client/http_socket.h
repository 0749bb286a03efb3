// The socket half of one HTTP/1.1 exchange, shared by the load tester's
// REST mode (client/bench_http.cc) and the tests of the server's HTTP
// endpoint (tests/server/http_client.h): one request per connection, the
// whole answer read until the server closes it. Header-only, so that the
// tests need no client library for it.
#ifndef ACTSVC_CLIENT_HTTP_SOCKET_H_
#define ACTSVC_CLIENT_HTTP_SOCKET_H_

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace actsvc::client {

// Writes `request` to the connected socket `fd` (a closed peer is a short
// write, not SIGPIPE), then reads until the peer closes or a read fails.
// Returns what was read; *sent is how many bytes of `request` went out.
inline std::string WriteThenReadAll(int fd, absl::string_view request,
                                    size_t* sent) {
  *sent = 0;
  while (*sent < request.size()) {
    const ssize_t n =
        send(fd, request.data() + *sent, request.size() - *sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    *sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buffer[65536];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) {
    raw.append(buffer, static_cast<size_t>(n));
  }
  return raw;
}

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_HTTP_SOCKET_H_
