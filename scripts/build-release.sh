#!/usr/bin/env bash
# The release binary as shipped: target/static/dist/kakoi, a static PIE (glibc and
# libseccomp linked in, still position-independent for ASLR), built with the `dist`
# profile (release with whole-program LTO: 12 % less code, fewer pages faulted in per
# launch). A launcher is started over and over; the static PIE starts about 0.35 ms
# sooner on the development VM than the dynamic build, which spends that in the dynamic
# loader (three libraries, symbol binding, their relocations). `+crt-static` is given to
# the final link only (`cargo rustc`): proc-macro crates cannot be built static. Its own
# target directory keeps the test builds (dynamic libseccomp) from rebuilding after it,
# and back. scripts/launch.order (`make launch-order`) lists the functions a launch runs,
# in the order it runs them; the linker places them first and together in .text, so a
# launch faults in 10 windows of code instead of 30 (see scripts/launch-order.py).
set -euo pipefail
cd "$(dirname "$0")/.."
LIBSECCOMP_LIB_PATH=$(pkg-config --variable=libdir libseccomp)
if [[ ! -f $LIBSECCOMP_LIB_PATH/libseccomp.a ]]; then
    echo "build-release: no libseccomp.a in $LIBSECCOMP_LIB_PATH (Debian: apt-get install libseccomp-dev)" >&2
    exit 2
fi
export LIBSECCOMP_LIB_PATH LIBSECCOMP_LINK_TYPE=static
# The ordering is an option of LLD, Rust's default linker on x86_64 Linux since 1.90.
order=()
minor=$(rustc --version | sed -nE 's/^rustc 1\.([0-9]+).*/\1/p')
if [[ -n $minor && $minor -ge 90 ]]; then
    order=(-C link-arg=-Wl,--symbol-ordering-file="$PWD/scripts/launch.order"
        -C link-arg=-Wl,--no-warn-symbol-ordering)
else
    echo "build-release: rustc before 1.90 links with the system linker: no function ordering" >&2
fi
# Cargo does not see the ordering file change: the binary (and cargo's copy of it, which
# would be linked back in its place) is removed when it is older, so that it is relinked.
bin=target/static/dist/kakoi
if [[ -f $bin && scripts/launch.order -nt $bin ]]; then
    rm -f "$bin" target/static/dist/deps/kakoi-*
fi
cargo rustc --profile dist --locked --bin kakoi --target-dir target/static "$@" \
    -- -C target-feature=+crt-static "${order[@]}"
