// A minimal HTTP/1.1 client for the tests of the server's HTTP endpoint
// (metrics, KServe v2 REST): one request per connection, the whole answer
// read until the server closes.
#ifndef ACTSVC_TESTS_SERVER_HTTP_CLIENT_H_
#define ACTSVC_TESTS_SERVER_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/http_socket.h"

namespace actsvc::server::testing {

struct HttpAnswer {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The value of header `name` (case-insensitive), or "".
  std::string Header(absl::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (absl::EqualsIgnoreCase(key, name)) return value;
    }
    return "";
  }
};

// Sends `request` as it is to 127.0.0.1:`port`; the whole answer as it
// came, or "" when the connection fails.
inline std::string HttpRaw(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string raw;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
      0) {
    size_t sent = 0;
    raw = ::actsvc::client::WriteThenReadAll(fd, request, &sent);
  }
  close(fd);
  return raw;
}

// GET `path`: the whole answer as it came (status line, headers, body).
inline std::string HttpGet(int port, const std::string& path) {
  return HttpRaw(port, absl::StrCat("GET ", path,
                                    " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    "Connection: close\r\n\r\n"));
}

// `method` `path` with `body` and `headers`, the answer taken apart.
inline HttpAnswer HttpExchange(
    int port, const std::string& method, const std::string& path,
    const std::string& body = "",
    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  std::string request = absl::StrCat(method, " ", path,
                                     " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Connection: close\r\n");
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&request, name, ": ", value, "\r\n");
  }
  if (method == "POST") {
    absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  HttpAnswer answer;
  const std::string raw = HttpRaw(port, request);
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return answer;
  const std::vector<std::string> lines =
      absl::StrSplit(raw.substr(0, end), "\r\n");
  // "HTTP/1.1 200 OK"
  if (lines.empty() || lines[0].size() < 12 ||
      !absl::SimpleAtoi(lines[0].substr(9, 3), &answer.status)) {
    return answer;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    answer.headers.emplace_back(
        lines[i].substr(0, colon),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  answer.body = raw.substr(end + 4);
  return answer;
}

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_HTTP_CLIENT_H_
