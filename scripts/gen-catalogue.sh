#!/usr/bin/env bash
# Regenerate policy-lang/src/catalogue/generated.rs from Debian's linux-source-6.12 package,
# the machine's `systemd-analyze` and Docker's default profile in ../shared/data.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=${KAKOI_KSRC_CACHE:-"$top/target/ksrc"}
mkdir -p "$work"
cd "$work"
if [ ! -d linux-source-6.12 ]; then
  command -v systemd-analyze >/dev/null || { echo "needs systemd-analyze (package systemd)" >&2; exit 1; }
  [ -f linux-source-6.12_*.deb ] || apt-get download linux-source-6.12
  dpkg-deb -x linux-source-6.12_*.deb pkg
  tar -xJf pkg/usr/src/linux-source-6.12.tar.xz --wildcards \
    'linux-source-6.12/*.c' 'linux-source-6.12/*.h' 'linux-source-6.12/*.tbl' \
    'linux-source-6.12/arch/arm64/kernel/Makefile.syscalls'
  rm -rf pkg
fi
python3 "$top/scripts/gen-catalogue.py" "$work/linux-source-6.12" \
  "$top/../shared/data/docker-default-seccomp.json" "$top/policy-lang/src/catalogue/generated.rs"
