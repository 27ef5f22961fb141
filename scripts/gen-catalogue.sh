#!/usr/bin/env bash
# Regenerate policy-lang/src/catalogue/generated.rs: the syscalls of Linux 6.18 (the kernel
# these machines run), read from Debian's linux-source package, with the machine's
# `systemd-analyze` and Docker's default profile in ../shared/data.
#
# Debian ships no 6.18 source package; its trixie-backports 7.2 package is used, pinned by
# checksum, and gen-catalogue.py keeps the syscalls numbered up to 6.18's last (numbers
# only grow, on every ABI at once). tests/suite/catalogue.rs checks the result against
# the running kernel. KAKOI_KSRC=DIR uses an unpacked kernel tree instead.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=${KAKOI_KSRC_CACHE:-"$top/target/ksrc"}
ver=7.2
deb="linux-source-${ver}_7.2.11-1~bpo13+1_all.deb"
sha=97a3aac3a9eeb8f18e8b0511af9261c54605fd23b712f1a48144360a123738a2
src=${KAKOI_KSRC:-"$work/linux-source-$ver"}
mkdir -p "$work"
command -v systemd-analyze >/dev/null || { echo "needs systemd-analyze (package systemd)" >&2; exit 1; }
if [ ! -d "$src" ]; then
  cd "$work"
  if [ ! -f "$deb" ]; then
    curl -fsSL -o "$deb.part" "http://deb.debian.org/debian/pool/main/l/linux/$deb"
    mv "$deb.part" "$deb"
  fi
  echo "$sha  $deb" | sha256sum -c --quiet - || { echo "checksum mismatch: $deb" >&2; exit 1; }
  rm -rf pkg
  dpkg-deb -x "$deb" pkg
  tar -xJf "pkg/usr/src/linux-source-$ver.tar.xz" --wildcards \
    "linux-source-$ver/*.c" "linux-source-$ver/*.h" "linux-source-$ver/*.tbl" \
    "linux-source-$ver/arch/arm64/kernel/Makefile.syscalls"
  rm -rf pkg
fi
python3 "$top/scripts/gen-catalogue.py" "$src" \
  "$top/../shared/data/docker-default-seccomp.json" "$top/policy-lang/src/catalogue/generated.rs"
