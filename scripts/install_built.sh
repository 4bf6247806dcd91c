#!/usr/bin/env bash
# Install the libraries of an existing CMake build folder into python/mlff/lib/ atomically:
# stage with DESTDIR, then rename over the old files, so processes that already mapped
# the old libraries (a training running meanwhile) keep working and nothing half-copied
# is ever loaded.  Used by scripts/build_plugin.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${1:-$ROOT/build}"
LIBDIR="$ROOT/python/mlff/lib"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
DESTDIR="$STAGE" cmake --install "$BUILD_DIR" >/dev/null
mkdir -p "$LIBDIR"
[ -f "$STAGE$LIBDIR/libmlff_ops.so" ] || { echo "install_built.sh: $BUILD_DIR installed no libmlff_ops.so" >&2; exit 1; }
# the plugin's two libraries are absent from a build with -DMLFF_PLUGIN=OFF
for f in mlffplugin.so libmlff_pair.so libmlff_ops.so libmlff_cuda_emulation.so; do
  src="$STAGE$LIBDIR/$f"
  [ -f "$src" ] || continue
  cp "$src" "$LIBDIR/.$f.new"
  mv -f "$LIBDIR/.$f.new" "$LIBDIR/$f"
done
