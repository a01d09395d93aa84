#!/usr/bin/env bash
# `make deb`: builds the Debian package (debian/, dpkg-buildpackage -us -uc -b) from a copy of
# the working tree under /tmp, because dpkg-buildpackage writes its results into the parent
# directory and its own build leaves files behind; the repository stays untouched.
# Usage: tools/build_deb.sh [OUTDIR]   (default build/deb). Prints the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/cached-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
ver=$(dpkg-parsechangelog -S Version)
src="$work/cached-$ver"
mkdir "$src"
# What git tracks plus new files not ignored (so uncommitted edits are packaged too); a
# tracked file deleted in the work tree is skipped.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$src"
else
  tar --exclude=./build --exclude=./build-asan --exclude=./build-fuzz --exclude=./cached \
    -cf - . | tar -xf - -C "$src"
fi
# Only the .deb is kept: no -dbgsym package.
export DEB_BUILD_OPTIONS="noddebs ${DEB_BUILD_OPTIONS:-}"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j2) >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  echo "tools/build_deb.sh: dpkg-buildpackage failed" >&2
  exit 1
fi
cp "$work"/cached_"$ver"_*.deb "$out"/
ls "$out"/cached_"$ver"_*.deb
