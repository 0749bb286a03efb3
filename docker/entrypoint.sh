#!/bin/sh
# No arguments or flags only: run the server with them. Anything else is a
# command (actsvc, a shell): run it instead.
set -e
case "${1:-}" in
  ""|-*) exec actsvc-server "$@" ;;
  *) exec "$@" ;;
esac
