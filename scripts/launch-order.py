#!/usr/bin/env python3
"""`make launch-order`: write scripts/launch.order, the functions a launch executes, in the
order it first executes them. scripts/build-release.sh hands the file to the linker
(`--symbol-ordering-file`), which places those functions first and together in .text.

Why: a launch runs about 600 of the binary's 4,400 functions, spread over 2.5 MB of code.
Each page fault on code maps one 64 KiB window (the kernel's fault-around), the launcher's
child faults the code in again after the clone (a file mapping's page tables are not
copied), and every mapped page is unmapped again at exit: on the development VM the
scattered layout cost 30 text windows per process; ordered, the launch code spans 8.

How: a uprobe on the entry of every function (tracefs), one launch of /bin/true under
bench/hardened.kakoi (the headline benchmark's sandbox), then the hits in time order.
Needs root and tracefs. The uprobes are removed whatever happens.

The entry of some of glibc's AVX-512 string functions (EVEX-encoded first instructions)
cannot be single-stepped out of line correctly, and their results come out wrong under a
uprobe. They are not probed; the variants of the vector extension the traced string
functions show the C library picked on this CPU are listed instead.

    scripts/launch-order.py [BINARY]     (default: target/static/dist/kakoi, built first)
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "scripts", "launch.order")
TRACEFS = "/sys/kernel/tracing"
GROUP = "kakoi_order"
# Not probed (see above): wrong results under a uprobe.
UNSAFE = re.compile(r"avx512|memcmp|bcmp")
# glibc's string-function variants, by vector extension.
ISA_TAGS = ("avx512", "evex", "avx2", "avx", "sse4", "ssse3", "sse2")


def tracefs_write(path, text, append=False):
    fd = os.open(f"{TRACEFS}/{path}", os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def functions(binary):
    """(file offset, name) of every sized function in an executable segment."""
    segs = []
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD" and "E" in f[6:-1]:
            segs.append((int(f[2], 16), int(f[1], 16), int(f[4], 16)))
    found = {}
    out = subprocess.run(["nm", "--defined-only", "-S", binary], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) != 4 or f[2] not in "tTwW" or int(f[1], 16) == 0:
            continue
        addr = int(f[0], 16)
        for vaddr, off, size in segs:
            if vaddr <= addr < vaddr + size:
                found.setdefault(addr - vaddr + off, f[3])
    return sorted(found.items())


def trace(binary, bundle):
    """Names of the functions one launch executes, in first-hit order; and the unprobed."""
    probes, skipped = {}, []
    for off, name in functions(binary):
        if UNSAFE.search(name):
            skipped.append(name)
        else:
            probes[f"f{off:x}"] = (off, name)
    cmd = [binary, "run", "--bundle", bundle, "--", "/bin/true"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm: page cache, cgroup pool
    try:
        fd = os.open(f"{TRACEFS}/uprobe_events", os.O_WRONLY | os.O_APPEND)
        try:
            for event, (off, _) in probes.items():
                os.write(fd, f"p:{GROUP}/{event} {binary}:0x{off:x}\n".encode())
        finally:
            os.close(fd)
        tracefs_write("buffer_size_kb", "65536")
        tracefs_write("trace", "")
        print(f"launch-order: {len(probes)} uprobes; enabling them takes minutes", file=sys.stderr)
        tracefs_write(f"events/{GROUP}/enable", "1")
        run = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        tracefs_write(f"events/{GROUP}/enable", "0")
        if run.returncode != 0:
            sys.exit(f"launch-order: the traced launch failed ({run.returncode})")
        hits, seen = [], set()
        with open(f"{TRACEFS}/trace") as t:
            for line in t:
                m = re.search(r"\s(f[0-9a-f]+):", line)
                if m and m.group(1) in probes and m.group(1) not in seen:
                    seen.add(m.group(1))
                    hits.append(probes[m.group(1)][1])
    finally:
        if os.path.isdir(f"{TRACEFS}/events/{GROUP}"):
            tracefs_write(f"events/{GROUP}/enable", "0")
        for event in probes:
            try:
                tracefs_write("uprobe_events", f"-:{GROUP}/{event}\n", append=True)
            except OSError:
                pass
    return hits, skipped


def main():
    if os.geteuid() != 0 or not os.path.isdir(TRACEFS):
        sys.exit("launch-order: needs root and tracefs (uprobes) at " + TRACEFS)
    if len(sys.argv) > 1:
        built = os.path.abspath(sys.argv[1])
    else:
        subprocess.run([os.path.join(ROOT, "scripts", "build-release.sh")], check=True)
        built = os.path.join(ROOT, "target", "static", "dist", "kakoi")
    with tempfile.TemporaryDirectory(prefix="kakoi-order.") as work:
        # A private copy: uprobes attach to the file, and the build may replace the original.
        binary = os.path.join(work, "kakoi")
        subprocess.run(["install", "-m", "0755", built, binary], check=True)
        bundle = os.path.join(work, "bundle")
        subprocess.run([binary, "compile", os.path.join(ROOT, "bench", "hardened.kakoi"), "-o", bundle],
                       check=True, stdout=subprocess.DEVNULL)
        hits, skipped = trace(binary, bundle)
    tags = {t for t in ISA_TAGS if any(f"_{t}" in h for h in hits)}
    if "evex" in tags:
        tags.add("avx512")  # EVEX encoding is AVX-512's: the same CPU takes those variants
    extra = [s for s in skipped if any(f"_{t}" in s for t in tags) and s not in hits]
    rust = sum(1 for h in hits if h.startswith(("_ZN", "_R")))
    text = (
        "# The functions `kakoi run --bundle` executes, in the order it first executes them:\n"
        "# the linker places them first in .text (scripts/build-release.sh). Written by\n"
        "# `make launch-order` (scripts/launch-order.py) from a uprobe trace of one launch\n"
        f"# under bench/hardened.kakoi: {rust} Rust and {len(hits) - rust} C functions traced,\n"
        f"# then {len(extra)} string-function variants of this CPU's vector extensions\n"
        f"# ({', '.join(sorted(tags)) or 'none'}) that cannot be traced. Names the build no\n"
        "# longer has are ignored; regenerate after changing the launch path.\n"
    )
    text += "".join(h + "\n" for h in hits + extra)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, OUT)
    print(f"launch-order: wrote {OUT}: {len(hits)} traced, {len(extra)} added", file=sys.stderr)


if __name__ == "__main__":
    main()
