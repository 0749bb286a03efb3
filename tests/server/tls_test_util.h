// A throwaway PKI for TLS tests, made with the openssl command: ca.pem (the
// CA), server.{pem,key} (SAN localhost and 127.0.0.1), client.{pem,key}
// from the same CA, and other_client.{pem,key} from another CA.
#ifndef ACTSVC_TESTS_SERVER_TLS_TEST_UTIL_H_
#define ACTSVC_TESTS_SERVER_TLS_TEST_UTIL_H_

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace actsvc::server::testing {

class TestPki {
 public:
  TestPki() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "actsvc-pki-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
  }
  ~TestPki() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // Makes every file; false (with openssl's output on stderr) on failure.
  bool Make() const {
    if (dir_.empty()) return false;
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
    std::string script = "set -e; cd '" + dir_ + "'\n";
    for (const char* ca : {"ca", "other_ca"}) {
      script += std::string("openssl req -x509 -nodes -days 2") + ec +
                " -subj /CN=actsvc-test-" + ca + " -keyout " + ca +
                ".key -out " + ca + ".pem\n";
    }
    script +=
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
        "extendedKeyUsage=serverAuth\\n' > server.ext\n"
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n";
    const struct {
      const char* name;
      const char* ca;
      const char* ext;
    } kLeaves[] = {{"server", "ca", "server.ext"},
                   {"client", "ca", "client.ext"},
                   {"other_client", "other_ca", "client.ext"}};
    for (const auto& leaf : kLeaves) {
      const std::string name = leaf.name, ca = leaf.ca;
      script += "openssl req -nodes" + ec + " -subj /CN=" + name + " -keyout " +
                name + ".key -out " + name + ".csr\n";
      script += "openssl x509 -req -days 2 -in " + name + ".csr -CA " + ca +
                ".pem -CAkey " + ca + ".key -CAcreateserial -extfile " +
                leaf.ext + " -out " + name + ".pem\n";
    }
    const std::string script_path = Path("make.sh");
    std::ofstream(script_path) << script;
    const std::string command =
        "sh '" + script_path + "' 2>'" + Path("openssl.log") + "' >/dev/null";
    if (std::system(command.c_str()) != 0) {
      std::fputs(Read("openssl.log").c_str(), stderr);
      return false;
    }
    return true;
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name));
    std::ostringstream contents;
    contents << in.rdbuf();
    return contents.str();
  }

 private:
  std::string dir_;
};

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_TLS_TEST_UTIL_H_
