#!/usr/bin/env bash
# `make vm-test`: prove in a real kernel what this machine cannot enforce (AppArmor,
# SELinux, cgroup v2 with controllers) and cross-check Landlock and seccomp on an older
# kernel. Boots Debian's 6.1 kernel in QEMU (software emulation) once per case, with an
# initramfs holding busybox, kakoi and the case's files; prints a table of checks.
# Facts and pitfalls: ../shared/design/vm-harness.md.
#
#   tests/vm/run.sh [CASE...]     cases: tests/vm/cases/*.sh (default: all of them), or
#                                 tools in tests/vm/tools/ (apparmor-features: dump the
#                                 guest kernel's AppArmor features into fixtures/vm/)
#   VM_TIMEOUT=S                  host-side timeout per guest (default 300 s)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
VM=$ROOT/tests/vm
CACHE=$ROOT/target/vm
TIMEOUT=${VM_TIMEOUT:-300}
mkdir -p "$CACHE"
say() { printf '== %s\n' "$*" >&2; }
t_start=$(date +%s)

need=()
for p in qemu-system-x86 busybox-static cpio bc apparmor secilc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi

# The kernel: Debian's current 6.1 package, decompressed once (decompressing under
# emulation costs seconds per boot).
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ -n $pkg ]] || { echo "vm-test: no linux-image package found (apt-get update?)" >&2; exit 2; }
KDIR=$CACHE/$pkg
if [[ ! -f $KDIR/vmlinux ]]; then
    say "kernel: $pkg"
    mkdir -p "$KDIR"
    (cd "$KDIR" && apt-get download "$pkg" 2>/dev/null && dpkg-deb -x "$pkg"_*.deb x)
    python3 - "$KDIR"/x/boot/vmlinuz-* "$KDIR/vmlinux.tmp" <<'EOF'
import lzma, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit("no xz stream in " + sys.argv[1])
d = lzma.LZMADecompressor()
out = d.decompress(data[at:])
if not out.startswith(b"\x7fELF"):
    sys.exit("the xz stream is not an ELF kernel")
open(sys.argv[2], "wb").write(out)
EOF
    mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
    rm -rf "$KDIR/x" "$KDIR"/*.deb
fi
KVER=${pkg#linux-image-}

say "build kakoi"
cargo build --release --locked --bin kakoi >&2
KAKOI=$ROOT/target/release/kakoi

# The base initramfs: busybox, kakoi (without debug info) and its libraries.
BASE=$CACHE/base
rm -rf "$BASE" && mkdir -p "$BASE"/{bin,sbin,usr/bin,usr/sbin,etc,lib,lib64,newroot,proc,sys,dev,tmp,root}
cp /bin/busybox "$BASE/bin/busybox"
cp /bin/busybox "$BASE/usr/bin/busybox"   # for policies that execute only from /usr
cp "$VM/init" "$BASE/init" && chmod 755 "$BASE/init"
cp "$VM/lib.sh" "$BASE/lib.sh"
objcopy --strip-debug "$KAKOI" "$BASE/usr/bin/kakoi"
for lib in $(ldd "$KAKOI" | grep -o '/[^ ]*'); do
    mkdir -p "$BASE$(dirname "$lib")"
    cp -L "$lib" "$BASE$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$BASE/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$BASE/etc/group"
printf 'root:*:20000:0:99999:7:::\n' >"$BASE/etc/shadow"
echo guest >"$BASE/etc/hostname"
(cd "$BASE" && find . | cpio -o -H newc --quiet | gzip -1) >"$CACHE/base.cpio.gz"

# One guest per case. A case is a pair: tests/vm/cases/NAME.sh runs in the guest;
# NAME.host (optional, sourced here) prepares its files in $FILES and sets $APPEND.
cases=("$@")
if ((${#cases[@]} == 0)); then
    for f in "$VM"/cases/*.sh; do cases+=("$(basename "$f" .sh)"); done
fi
results=()
failed=0
for c in "${cases[@]}"; do
    dir=$VM/cases
    [[ -f $dir/$c.sh ]] || dir=$VM/tools
    [[ -f $dir/$c.sh ]] || { echo "vm-test: no case $c" >&2; exit 2; }
    FILES=$CACHE/case-$c
    rm -rf "$FILES" && mkdir -p "$FILES"
    cp "$dir/$c.sh" "$FILES/case.sh"
    APPEND=""
    if [[ -f $dir/$c.host ]]; then
        # shellcheck source=/dev/null
        source "$dir/$c.host"
    fi
    (cd "$FILES" && find . | cpio -o -H newc --quiet | gzip -1) >"$CACHE/case-$c.cpio.gz"
    cat "$CACHE/base.cpio.gz" "$CACHE/case-$c.cpio.gz" >"$CACHE/initrd-$c.gz"
    say "case $c: booting $KVER ($APPEND)"
    t0=$(date +%s.%N)
    set +e
    timeout --foreground -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -M pc -m 1024 \
        -smp 1 -nographic -no-reboot -monitor none -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=4 \
        -kernel "$KDIR/vmlinux" -initrd "$CACHE/initrd-$c.gz" \
        -append "console=ttyS0 panic=-1 quiet loglevel=4 $APPEND" \
        </dev/null >"$CACHE/$c.log" 2>&1
    qrc=$?
    set -e
    secs=$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo "?")
    tr -d '\r' <"$CACHE/$c.log" >"$CACHE/$c.log.txt"
    if ((qrc == 124 || qrc == 137)); then
        results+=("$c|guest|FAIL|timed out after ${TIMEOUT}s (log: target/vm/$c.log.txt)")
        failed=1
        continue
    fi
    if ! grep -q "VMTEST-END" "$CACHE/$c.log.txt"; then
        results+=("$c|guest|FAIL|no result (qemu exit $qrc; log: target/vm/$c.log.txt)")
        failed=1
        continue
    fi
    while IFS= read -r line; do
        name=$(echo "$line" | awk '{print $2}')
        verdict=$(echo "$line" | awk '{print $3}')
        detail=$(echo "$line" | cut -d' ' -f4-)
        results+=("$c|$name|$verdict|$detail")
        [[ $verdict == PASS ]] || failed=1
    done < <(grep "^CHECK " "$CACHE/$c.log.txt")
    if [[ -n ${COLLECT_AA_FEATURES:-} ]]; then
        out=$ROOT/fixtures/vm/apparmor-features
        rm -rf "$out.tmp" && mkdir -p "$out.tmp"
        grep '^AAFEAT ' "$CACHE/$c.log.txt" | while read -r _ f b64; do
            mkdir -p "$out.tmp/$(dirname "$f")"
            printf '%s' "$b64" | base64 -d >"$out.tmp/$f"
        done
        rm -rf "$out" && mv "$out.tmp" "$out"
        say "wrote $out ($(find "$out" -type f | wc -l) files)"
        COLLECT_AA_FEATURES=
    fi
    kernel=$(sed -n 's/.*VMTEST-BEGIN //p' "$CACHE/$c.log.txt" | head -1)
    results+=("$c|guest run|INFO|${secs}s, kernel $kernel")
done

total=$(($(date +%s) - t_start))
{
    echo
    printf '| %-10s | %-44s | %-6s | %s\n' case check result detail
    printf '|%s|%s|%s|%s\n' ------------ ---------------------------------------------- -------- -------
    for r in "${results[@]}"; do
        IFS='|' read -r c n v d <<<"$r"
        printf '| %-10s | %-44s | %-6s | %s\n' "$c" "$n" "$v" "$d"
    done
    echo
    echo "total: ${total}s; logs in target/vm/*.log.txt"
} | tee "$CACHE/results.md"
exit $failed
