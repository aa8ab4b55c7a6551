#!/usr/bin/env bash
# install-test.sh - install the C library into a temporary prefix as a user
# would, then build and run examples/client.c with pkg-config only (no
# rpath; LD_LIBRARY_PATH of the prefix for the shared build), linked both
# shared and static. Run by .ci/run.
#
# With cargo-c installed (`cargo cinstall` works), that is the installer,
# and install.sh is checked to produce the same files and .pc. Without it,
# install.sh is the installer (see install.sh for why cargo-c may be
# missing). HANGSAFE_INSTALL_CARGO_C=1 installs cargo-c first (29 CPU
# minutes: 65 minutes on this busy 2-core machine, over CI's 30-minute
# budget, so not done by default).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo_c_version=0.10.24

if ! cargo cinstall --version >/dev/null 2>&1 && [ "${HANGSAFE_INSTALL_CARGO_C:-0}" = 1 ]; then
  timeout 1800 cargo install cargo-c --version "$cargo_c_version" --locked
fi

layout() { (cd "$1" && find . \( -type f -o -type l \) -printf '%y %p %l\n' | sort); }

if cargo cinstall --version >/dev/null 2>&1; then
  echo "installer: cargo cinstall ($(cargo cinstall --version 2>/dev/null | head -1))"
  cargo cinstall -p hangsafe-capi --release --prefix "$tmp/prefix" --libdir lib
  bash install.sh --prefix "$tmp/prefix" --libdir lib --destdir "$tmp/script"
  if ! diff <(layout "$tmp/prefix") <(layout "$tmp/script$tmp/prefix"); then
    echo "install.sh and cargo cinstall install different files" >&2; exit 1
  fi
  if ! diff "$tmp/prefix/lib/pkgconfig/hangsafe.pc" "$tmp/script$tmp/prefix/lib/pkgconfig/hangsafe.pc"; then
    echo "install.sh and cargo cinstall write different .pc files" >&2; exit 1
  fi
else
  echo "installer: install.sh (cargo-c is not installed)"
  bash install.sh --prefix "$tmp/prefix" --libdir lib
fi
layout "$tmp/prefix"
cat "$tmp/prefix/lib/pkgconfig/hangsafe.pc"

export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
so="$tmp/prefix/lib/libhangsafe.so.0"
readelf -d "$so" | grep -q 'Library soname: \[libhangsafe.so.0\]'
if nm -D --defined-only "$so" | grep -v ' A HANGSAFE_0' | grep -qv '@@HANGSAFE_0$'; then
  echo "the installed library exports unversioned symbols" >&2; exit 1
fi
if readelf -S -W "$so" | grep -q '\.debug_'; then
  echo "the installed library has debug info" >&2; exit 1
fi
ls -lL "$so" "$tmp/prefix/lib/libhangsafe.a"

cflags=(-Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE)
# shellcheck disable=SC2046 # pkg-config output is meant to be split
cc "${cflags[@]}" examples/client.c -o "$tmp/client" $(pkg-config --cflags --libs hangsafe)
if readelf -d "$tmp/client" | grep -qE 'RPATH|RUNPATH'; then
  echo "the client has an rpath" >&2; exit 1
fi
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/client"

# Static: the same flags with --static, naming the archive (a plain
# -lhangsafe picks the shared library when both are installed).
# shellcheck disable=SC2046
cc "${cflags[@]}" examples/client.c -o "$tmp/client-static" \
  $(pkg-config --static --cflags --libs hangsafe | sed 's/-lhangsafe/-l:libhangsafe.a/')
if ldd "$tmp/client-static" | grep -q hangsafe; then
  echo "the static client loads libhangsafe" >&2; exit 1
fi
"$tmp/client-static"
echo "install test: 2 passed, 0 failed"
