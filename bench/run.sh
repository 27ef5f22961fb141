#!/usr/bin/env bash
# `make bench`: kakoi side by side with the peers, in one run on this machine, written to
# bench/REPORT.md (tables) and bench/*.svg (charts). Needs root (crun, runc and kakoi
# launch sandboxes with cgroup limits). Installs the peers from Debian packages.
#
#   BENCH_RUNS=N      hyperfine runs per launcher (default 200)
#   BENCH_QUICK=1     a short run to check the script (20 runs, 2 concurrency rounds)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
RUNS=${BENCH_RUNS:-200}
ROUNDS=5
if [[ -n "${BENCH_QUICK:-}" ]]; then RUNS=20; ROUNDS=2; fi
DOCKER_PROFILE=$ROOT/../shared/data/docker-default-seccomp.json

say() { printf '\n== %s\n' "$*" >&2; }

if [[ $(id -u) != 0 ]]; then
    echo "make bench launches crun, runc and kakoi with cgroup limits: run it as root" >&2
    exit 2
fi
if [[ ! -f $DOCKER_PROFILE ]]; then
    echo "missing $DOCKER_PROFILE (Docker's default seccomp profile, see ../shared/data/README.md)" >&2
    exit 2
fi

say "peers (Debian packages)"
need=()
for p in crun runc bubblewrap hyperfine util-linux python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi

say "build (release)"
cargo build --release --locked --example peak_rss >&2
scripts/build-release.sh >&2
WORK=$(mktemp -d /tmp/kakoi-bench.XXXXXX)
# Measured as installed (`install`, as `cargo install` and packages put a binary in
# place), and then read back from disk, as bwrap, crun and their libraries are: the page
# cache of a freshly written file (the linker's output, or a new copy) launches at a
# different speed until it is evicted. Dropping the file's pages makes the next exec read
# it as it will be read after a reboot.
install -D -m 0755 "$ROOT/target/static/dist/kakoi" "$WORK/bin/kakoi"
KAKOI=$WORK/bin/kakoi
sync "$KAKOI"
dd if="$KAKOI" iflag=nocache count=0 status=none
HUGETLB_MOVED=
cleanup() {
    if [[ -n $HUGETLB_MOVED ]]; then
        umount /sys/fs/cgroup/hugetlb 2>/dev/null && rmdir /sys/fs/cgroup/hugetlb 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$OUT"

say "inputs: kakoi bundle, OCI bundle with Docker's profile"
"$KAKOI" compile bench/hardened.kakoi -o "$WORK/kakoi-bundle" >&2
python3 bench/oci.py "$DOCKER_PROFILE" "$WORK/oci"

# crun refuses hybrid cgroups while a controller (hugetlb here) sits on the v2 hierarchy:
# move it to a v1 hierarchy for the run (machine.md), and back at exit.
if [[ -f /sys/fs/cgroup/unified/cgroup.controllers ]] \
    && ! crun run --bundle "$WORK/oci" kakoi-bench-probe >/dev/null 2>&1; then
    if grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers; then
        mkdir -p /sys/fs/cgroup/hugetlb
        mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
        HUGETLB_MOVED=1
        echo "moved hugetlb to a v1 hierarchy for crun (restored at exit)" >&2
    fi
fi
for t in "crun run --bundle $WORK/oci kakoi-bench-check" "runc run --bundle $WORK/oci kakoi-bench-check" \
    "$KAKOI run --bundle $WORK/kakoi-bundle -- /bin/true"; do
    $t >&2 || { echo "bench: \`$t\` failed" >&2; exit 1; }
done

BWRAP_FS=(--ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib
    --symlink usr/lib64 /lib64 --ro-bind /etc /etc --proc /proc --dev /dev --tmpfs /tmp)
say "launch latency of /bin/true ($RUNS runs each)"
hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$OUT/launch.json" \
    -n "exec (floor)" "/bin/true" \
    -n "unshare (6 namespaces)" "unshare --pid --fork --mount --uts --ipc --net --cgroup /bin/true" \
    -n "bwrap --unshare-all" "bwrap --unshare-all --ro-bind / / /bin/true" \
    -n "bwrap --unshare-all, kakoi's file system" "bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL ${BWRAP_FS[*]} /bin/true" \
    -n "kakoi run --bundle (full hardening)" "$KAKOI run --bundle $WORK/kakoi-bundle -- /bin/true" \
    -n "kakoi run --policy (compiled at launch)" "$KAKOI run --policy bench/hardened.kakoi -- /bin/true" \
    -n "crun run (Docker's seccomp, cgroups)" "crun run --bundle $WORK/oci kakoi-bench-crun" \
    -n "runc run (Docker's seccomp, cgroups)" "runc run --bundle $WORK/oci kakoi-bench-runc" >&2

say "head to head, interleaved ($((RUNS * 2)) rounds)"
python3 bench/measure.py interleaved "$OUT/interleaved.json" "$((RUNS * 2))" \
    "exec (floor)" -- /bin/true :: \
    "bwrap --unshare-all" -- bwrap --unshare-all --ro-bind / / /bin/true :: \
    "kakoi run --bundle (full hardening)" -- "$KAKOI" run --bundle "$WORK/kakoi-bundle" -- /bin/true :: \
    "crun run (Docker's seccomp, cgroups)" -- crun run --bundle "$WORK/oci" kakoi-bench-il

say "what each part of the hardening costs (kakoi variants, interleaved, $RUNS rounds)"
python3 bench/variants.py profiles/default.kakoi bench/hardened.kakoi "$WORK/variants"
variant_cmds=()
for v in full no-cgroups no-landlock no-seccomp no-netns; do
    "$KAKOI" compile "$WORK/variants/$v.kakoi" -o "$WORK/variants/$v" >&2
    variant_cmds+=(:: "$v" -- "$KAKOI" run --bundle "$WORK/variants/$v" -- /bin/true)
done
python3 bench/measure.py interleaved "$OUT/variants.json" "$RUNS" \
    "bwrap --unshare-all" -- bwrap --unshare-all --ro-bind / / /bin/true "${variant_cmds[@]}"

say "where kakoi's launch time goes (KAKOI_TRACE, 100 launches)"
: >"$OUT/phases.txt"
for ((i = 0; i < 100; i++)); do
    KAKOI_TRACE=1 "$KAKOI" run --bundle "$WORK/kakoi-bundle" -- /bin/true 2>>"$OUT/phases.txt" >/dev/null
done

say "50 launches at once"
python3 bench/measure.py concurrency "$OUT/concurrency.json" 50 "$ROUNDS" \
    "kakoi run --bundle" -- "$KAKOI" run --bundle "$WORK/kakoi-bundle" -- /bin/true :: \
    "bwrap --unshare-all" -- bwrap --unshare-all --ro-bind / / /bin/true :: \
    "crun run" -- crun run --bundle "$WORK/oci" "kb-{i}" :: \
    "runc run" -- runc run --bundle "$WORK/oci" "kb-{i}"

say "peak RSS"
python3 bench/measure.py rss "$OUT/rss.json" \
    "exec /bin/true (floor)" -- /bin/true :: \
    "kakoi run --bundle" -- "$KAKOI" run --bundle "$WORK/kakoi-bundle" -- /bin/true :: \
    "kakoi run --policy" -- "$KAKOI" run --policy bench/hardened.kakoi -- /bin/true :: \
    "kakoi compile default (with apparmor_parser, secilc)" -- "$KAKOI" compile default -o "$WORK/rss-bundle" :: \
    "bwrap --unshare-all" -- bwrap --unshare-all --ro-bind / / /bin/true :: \
    "crun run" -- crun run --bundle "$WORK/oci" kakoi-bench-rss :: \
    "runc run" -- runc run --bundle "$WORK/oci" kakoi-bench-rss

say "compile time of every shipped profile (all backends, apparmor_parser and secilc included)"
compile_cmds=()
for p in $("$KAKOI" profiles --format json | python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)))'); do
    compile_cmds+=(-n "$p" "$KAKOI compile $p -o $WORK/c-$p")
done
hyperfine -N --warmup 3 --runs "$((RUNS / 4 > 10 ? RUNS / 4 : 10))" --export-json "$OUT/compile.json" "${compile_cmds[@]}" >&2

say "seccomp filter cost per system call"
cargo bench --locked --bench filter -- --json >"$OUT/filter.json"
say "seccomp code generation"
cargo bench --locked --bench seccomp -- --json >"$OUT/codegen.json"
say "audit throughput"
cargo bench --locked --bench audit | tee "$OUT/audit.txt" >&2

say "machine"
{
    echo "{"
    echo "\"kernel\": \"$(uname -r)\","
    echo "\"cpus\": $(nproc),"
    echo "\"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\","
    echo "\"memory_gib\": $(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo),"
    echo "\"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\","
    echo "\"kakoi\": \"$("$KAKOI" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))\","
    for t in crun runc bwrap hyperfine; do
        echo "\"$t\": \"$($t --version 2>&1 | head -1 | sed 's/"//g')\","
    done
    # How many of scripts/launch.order's functions the build still has (see
    # scripts/launch-order.py): a stale file lays out less of the launch path.
    ordered=$(grep -v '^#' scripts/launch.order | grep -c . || true)
    present=$(grep -v '^#' scripts/launch.order | grep -Fxf <(nm --defined-only "$KAKOI" | awk '{print $3}') | grep -c . || true)
    echo "\"launch_order\": \"$present of $ordered functions found\","
    echo "\"libseccomp\": \"$(dpkg-query -W -f='${Version}' libseccomp2)\""
    echo "}"
} >"$OUT/machine.json"

say "report"
python3 bench/report.py "$OUT" bench
echo "wrote bench/REPORT.md" >&2
