#!/usr/bin/env bash
# Install the system packages kakoi needs to build and test, non-interactively.
# Safe to run again: it installs only what is missing.
set -euo pipefail
pkgs=(libseccomp-dev pkg-config apparmor secilc setools uidmap iproute2 passwd runc
  nftables  # nat and publish
  git gcc libc6-dev sqlite3 python3 nginx-light curl util-linux  # the workloads of tests/suite/workloads.rs
  qemu-system-x86 busybox-static cpio bc)  # the last four: the QEMU enforcement checks
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # No package may start a service (nginx would listen on the host's port 80): without a
  # policy-rc.d, one that refuses is in place for the install only.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$guard" >/dev/null
    $sudo_cmd chmod 755 "$guard"
  fi
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ -z "$guard" ] || $sudo_cmd rm -f "$guard"
fi
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
# Microsoft's SARIF validator, for the test of `kakoi audit --format sarif` (needs npm).
"$(dirname "$0")/get-sarif-multitool.sh" || echo "warning: SARIF multitool not installed; the SARIF schema check will be skipped" >&2
