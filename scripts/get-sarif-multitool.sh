#!/usr/bin/env bash
# Install Microsoft's SARIF multitool (from the npm registry) under target/tools, for the
# test that validates `kakoi audit --format sarif` against the SARIF 2.1.0 schema.
# Safe to run again: does nothing when it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/tools/sarif-multitool
version=5.7.0
[ -x "$dest/Sarif.Multitool" ] && exit 0
command -v npm >/dev/null || { echo "npm is required to fetch the SARIF multitool" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@microsoft/sarif-multitool-linux@$version" >/dev/null)
mkdir -p "$tmp/x"
tar xzf "$tmp"/microsoft-sarif-multitool-linux-$version.tgz -C "$tmp/x"
mkdir -p target/tools
rm -rf "$dest"
mv "$tmp/x/package" "$dest"
chmod +x "$dest/Sarif.Multitool"
echo "installed $dest/Sarif.Multitool ($version)" >&2
