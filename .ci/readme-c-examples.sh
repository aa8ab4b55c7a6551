#!/usr/bin/env bash
# Compiles every ```c block of README.md against the C library's headers,
# laid out as `cargo cinstall` installs them (<includedir>/hangsafe/ with
# runner.h, hangsafe.h and hangsafe/hangsafe.h), with the flags
# `pkg-config --cflags hangsafe` gives. Each block is a complete
# translation unit (functions the example leaves to the reader are
# declared in it), so a block that stops compiling fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
inc="$work/include/hangsafe"
mkdir -p "$inc/hangsafe"
cp crates/hangsafe-capi/include/runner.h crates/hangsafe-capi/include/hangsafe.h "$inc/"
cp crates/hangsafe-capi/include/nested/hangsafe.h "$inc/hangsafe/hangsafe.h"

# One file per block: readme-1.c, readme-2.c, ... (line numbers kept in a
# #line directive, so a diagnostic names README.md and its line).
awk -v dir="$work" '
  /^```c[[:space:]]*$/ { n++; f = dir "/readme-" n ".c"; printf "#line %d \"README.md\"\n", NR + 1 > f; inblock = 1; next }
  /^```/ && inblock   { inblock = 0; close(f); next }
  inblock             { print > f }
' README.md

shopt -s nullglob
blocks=("$work"/readme-*.c)
if [ ${#blocks[@]} -eq 0 ]; then
  echo "README.md has no \`\`\`c block: nothing to compile (is the fence still \`\`\`c?)" >&2
  exit 1
fi
for f in "${blocks[@]}"; do
  cc -std=gnu11 -fsyntax-only -Wall -Wextra -Werror -I "$inc" "$f"
done
echo "README C examples: ${#blocks[@]} blocks compile"
