#!/usr/bin/env bash
# Fails when a C++ source is not clang-format (Google style) clean.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.h' '*.cc' 2>/dev/null || find core server client tests bench -name '*.h' -o -name '*.cc')
if [ ${#files[@]} -eq 0 ]; then exit 0; fi
clang-format --dry-run --Werror "${files[@]}"
echo "check-format: ${#files[@]} files clean"
