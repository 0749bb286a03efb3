// actsvc: the command-line client of the activation service; the commands
// are the client library's (client/cli.h).
#include "client/cli.h"

#ifndef ACTSVC_VERSION
#define ACTSVC_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  return actsvc::client::RunCli(argc, argv, ACTSVC_VERSION);
}
