#!/usr/bin/env bash
# The release binary as shipped: target/static/dist/kakoi, a static PIE (glibc and
# libseccomp linked in, still position-independent for ASLR), built with the `dist`
# profile (release with whole-program LTO: 12 % less code, fewer pages faulted in per
# launch). A launcher is started over and over; the static PIE starts about 0.35 ms
# sooner on the development VM than the dynamic build, which spends that in the dynamic
# loader (three libraries, symbol binding, their relocations). `+crt-static` is given to
# the final link only (`cargo rustc`): proc-macro crates cannot be built static. Its own
# target directory keeps the test builds (dynamic libseccomp) from rebuilding after it,
# and back.
set -euo pipefail
cd "$(dirname "$0")/.."
LIBSECCOMP_LIB_PATH=$(pkg-config --variable=libdir libseccomp)
if [[ ! -f $LIBSECCOMP_LIB_PATH/libseccomp.a ]]; then
    echo "build-release: no libseccomp.a in $LIBSECCOMP_LIB_PATH (Debian: apt-get install libseccomp-dev)" >&2
    exit 2
fi
export LIBSECCOMP_LIB_PATH LIBSECCOMP_LINK_TYPE=static
cargo rustc --profile dist --locked --bin kakoi --target-dir target/static "$@" \
    -- -C target-feature=+crt-static
