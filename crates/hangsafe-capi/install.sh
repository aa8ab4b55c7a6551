#!/usr/bin/env bash
# install.sh - install the C library without cargo-c, in the layout that
# `cargo cinstall` produces (see Cargo.toml, [package.metadata.capi]):
#
#   $libdir/libhangsafe.so.0.1.0, and the links libhangsafe.so.0 and libhangsafe.so to it
#   $libdir/libhangsafe.a
#   $libdir/pkgconfig/hangsafe.pc          (Cflags: -I${includedir}/hangsafe)
#   $includedir/hangsafe/runner.h, hangsafe.h, hangsafe/hangsafe.h
#
# Usage: install.sh [--prefix DIR] [--libdir DIR] [--includedir DIR]
#                   [--destdir DIR] [--target-dir DIR]
# --libdir and --includedir are relative to the prefix unless absolute;
# defaults /usr/local, lib, include. --destdir stages the install (the
# .pc still names the prefix), as packagers do.
#
# It exists because cargo-c is slow to build from crates.io on a small
# machine and Debian's packaged one (0.9.14) cannot read this workspace
# (its cargo predates lock file version 4); CI uses it when cargo-c is not
# installed, and compares the two layouts when it is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix=/usr/local libdir=lib includedir=include destdir= target_dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --libdir) libdir="$2"; shift 2 ;;
    --includedir) includedir="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    --target-dir) target_dir="$2"; shift 2 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
case "$libdir" in /*) ;; *) libdir="$prefix/$libdir" ;; esac
case "$includedir" in /*) ;; *) includedir="$prefix/$includedir" ;; esac

cd "$here"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' ../../Cargo.toml | head -1)
major=${version%%.*}
args=(build -p hangsafe-capi --lib --release)
[ -n "$target_dir" ] && args+=(--target-dir "$target_dir")
cargo "${args[@]}"
out="${target_dir:-$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')}/release"

lib="$destdir$libdir" inc="$destdir$includedir/hangsafe"
install -d "$lib/pkgconfig" "$inc/hangsafe"
install -m 755 "$out/libhangsafe.so" "$lib/libhangsafe.so.$version"
ln -sf "libhangsafe.so.$version" "$lib/libhangsafe.so.$major"
ln -sf "libhangsafe.so.$version" "$lib/libhangsafe.so"
install -m 644 "$out/libhangsafe.a" "$lib/libhangsafe.a"
install -m 644 include/runner.h include/hangsafe.h "$inc/"
install -m 644 include/nested/hangsafe.h "$inc/hangsafe/hangsafe.h"

pc_libdir="$libdir" pc_includedir="$includedir"
case "$libdir" in "$prefix"/*) pc_libdir="\${prefix}${libdir#"$prefix"}" ;; esac
case "$includedir" in "$prefix"/*) pc_includedir="\${prefix}${includedir#"$prefix"}" ;; esac
description=$(sed -n 's/^description = "\(.*\)"/\1/p' Cargo.toml | tail -1)
cat > "$lib/pkgconfig/hangsafe.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=$pc_libdir
includedir=$pc_includedir

Name: hangsafe
Description: $description
Version: $version
Libs: -L\${libdir} -lhangsafe
Cflags: -I\${includedir}/hangsafe
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
PC
echo "installed hangsafe $version into ${destdir}$prefix"
