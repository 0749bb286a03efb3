# shellcheck shell=bash
# Shell functions the bench/*.sh scripts share; each sources this file.

# parse_args HELP_LINES VALUE_FLAGS SWITCHES ARGS...
# Reads a script's command line:
#   -h, --help       prints lines HELP_LINES (a sed range, e.g. 2,28) of the
#                    script and exits 0;
#   --NAME VALUE     for each NAME in the space-separated VALUE_FLAGS, sets
#                    the variable NAME to VALUE;
#   --NAME           for each NAME=VAR=VALUE in the space-separated SWITCHES,
#                    sets the variable VAR to VALUE.
# Any other argument lands in the array `unparsed`, in order.
parse_args() {
  local help_lines="$1" value_flags=" $2 " switches=" $3 " name assignment
  shift 3
  unparsed=()
  while [[ $# -gt 0 ]]; do
    name="${1#--}"
    if [[ "$1" == -h || "$1" == --help ]]; then
      sed -n "${help_lines}p" "$0"
      exit 0
    elif [[ "$1" == --* && "$value_flags" == *" $name "* ]]; then
      printf -v "$name" '%s' "$2"
      shift 2
    elif [[ "$1" == --* && "$switches" == *" $name="* ]]; then
      assignment="${switches#* "$name"=}"
      assignment="${assignment%% *}"
      printf -v "${assignment%%=*}" '%s' "${assignment#*=}"
      shift
    else
      unparsed+=("$1")
      shift
    fi
  done
}

# Fails (exit 2) on the first argument parse_args did not know.
no_unparsed_args() {
  if [[ ${#unparsed[@]} -gt 0 ]]; then
    echo "unknown argument: ${unparsed[0]} (see --help)" >&2
    exit 2
  fi
}

# require_bins WHAT BIN...: fails (exit 2) naming the first BIN that is not
# an executable, with WHAT saying how to build it.
require_bins() {
  local what="$1" bin
  shift
  for bin in "$@"; do
    [[ -x "$bin" ]] || { echo "missing $bin: build $what" >&2; exit 2; }
  done
}

# make_out_dir NAME: the --out directory in $out, or a new temporary one
# named after NAME when --out was not given.
make_out_dir() {
  if [[ -z "$out" ]]; then out="$(mktemp -d "/tmp/$1.XXXXXX")"; fi
  mkdir -p "$out"
}

# A TCP port free on the loopback interface right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
