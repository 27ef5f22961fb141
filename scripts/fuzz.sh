#!/usr/bin/env bash
# Coverage-guided fuzzing of every kakoi::fuzzing harness with cargo-fuzz (libFuzzer).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Installs cargo-fuzz if needed, builds with optimisation and debug assertions (integer
# overflow panics) and no sanitizer (the fuzzed code is safe Rust; this also builds on
# stable). Each target starts from its committed seeds (fuzz/seeds/<target>) plus the corpus
# grown by earlier runs (target/fuzz-corpus/<target>). Prints one line per target and
# exits 1 if any target found a crash (the input is in fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(policy_text policy_gen seccomp_json bpf_program apparmor_text bundle_files)
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
flags=(-O -a -s none)
# Short runs (CI) use a fixed seed, so that the same commit explores the same inputs.
seed=()
[ "$secs" -le 60 ] && seed=(-seed=1)
mkdir -p target/fuzz-corpus
if ! (cd fuzz && cargo fuzz build "${flags[@]}") >target/fuzz-corpus/build.log 2>&1; then
    tail -30 target/fuzz-corpus/build.log
    exit 2
fi
status=0
printf '%-14s %10s %8s %8s %s\n' target runs seconds corpus result
for t in "${targets[@]}"; do
    corpus=target/fuzz-corpus/$t
    mkdir -p "$corpus"
    cp -n fuzz/seeds/"$t"/* "$corpus"/
    log=target/fuzz-corpus/$t.log
    start=$(date +%s)
    if (cd fuzz && cargo fuzz run "${flags[@]}" "$t" "../$corpus" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 "${seed[@]}") >"$log" 2>&1; then
        result="0 crashes"
    else
        result="CRASH: see $log and fuzz/artifacts/$t/"
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    printf '%-14s %10s %8s %8s %s\n' "$t" "${runs:-?}" "$(($(date +%s) - start))" \
        "$(ls "$corpus" | wc -l)" "$result"
done
exit $status
