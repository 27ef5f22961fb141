#!/usr/bin/env python3
"""Write bench/REPORT.md and its SVG charts from the results of bench/run.sh.

usage: report.py RESULTS_DIR OUT_DIR
"""

import html
import json
import os
import re
import statistics
import sys


def load(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read() if name.endswith(".txt") else json.load(f)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def bars(title, unit, rows, highlight=()):
    """Horizontal bars with error bars: rows = [(label, value, error or None)]."""
    w, left, right, bar_h, gap, top = 860, 330, 90, 20, 8, 40
    h = top + len(rows) * (bar_h + gap) + 30
    vmax = max((v + (e or 0)) for _, v, e in rows) * 1.05 or 1
    scale = (w - left - right) / vmax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14" '
           f'font-weight="bold">{html.escape(title)}</text>']
    for i, (label, v, e) in enumerate(rows):
        y = top + i * (bar_h + gap)
        colour = "#c0392b" if label in highlight else "#5b7db1"
        out.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7}" text-anchor="end">'
                   f'{html.escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{max(v * scale, 1):.1f}" '
                   f'height="{bar_h}" fill="{colour}"/>')
        end = left + v * scale
        if e:
            lo, hi = left + max(v - e, 0) * scale, left + (v + e) * scale
            mid = y + bar_h / 2
            out.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" '
                       f'stroke="black"/>')
            for x in (lo, hi):
                out.append(f'<line x1="{x:.1f}" y1="{y + 4}" x2="{x:.1f}" '
                           f'y2="{y + bar_h - 4}" stroke="black"/>')
            end = hi
        out.append(f'<text x="{end + 6:.1f}" y="{y + bar_h * 0.7}">{v:.2f} {unit}</text>')
    axis_y = top + len(rows) * (bar_h + gap)
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{w - right}" y2="{axis_y}" '
               f'stroke="#888"/>')
    out.append('</svg>')
    return "\n".join(out) + "\n"


def ms(s):
    return s * 1e3


def interleaved_table(rows):
    """The head-to-head run: every command once per round, in turn."""
    by = {r["tool"]: r for r in rows}
    floor = by.get("exec (floor)")
    bwrap = by.get("bwrap --unshare-all")
    kakoi = by.get("kakoi run --bundle (full hardening)")
    md = ["## Head to head, interleaved", "",
          f"`bench/measure.py interleaved`: {rows[0]['runs']} rounds, each running every "
          "command once, in turn (the order reversed every other round), so that drift of "
          "the machine during the run falls on all of them alike; hyperfine above runs "
          "each command's runs one after another. Times are from spawn to exit, as seen "
          "by a Python parent, whose own spawn cost is in every number (see the floor).", "",
          "| launcher | mean ± σ (ms) | median | p10 | p90 | mean × bwrap | median × bwrap |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mb = r["mean"] / bwrap["mean"] if bwrap else float("nan")
        db = r["median"] / bwrap["median"] if bwrap else float("nan")
        md.append(f"| {r['tool']} | {r['mean']:.2f} ± {r['stddev']:.2f} | {r['median']:.2f} | "
                  f"{r['p10']:.2f} | {r['p90']:.2f} | {mb:.2f} | {db:.2f} |")
    md.append("")
    if kakoi and bwrap:
        md.append(f"- kakoi (full hardening) / `bwrap --unshare-all`, means: "
                  f"**{kakoi['mean'] / bwrap['mean']:.2f}×** (target ≤ 1.00); medians: "
                  f"{kakoi['median'] / bwrap['median']:.2f}×")
        if floor:
            md.append(f"- the same above the floor (the launchers' own time, without "
                      f"process start-up of the payload and the parent's spawn): means "
                      f"{(kakoi['mean'] - floor['mean']) / (bwrap['mean'] - floor['mean']):.2f}×")
    crun = by.get("crun run (Docker's seccomp, cgroups)")
    if kakoi and crun:
        md.append(f"- crun run / kakoi, means: **{crun['mean'] / kakoi['mean']:.1f}×** "
                  f"(target ≥ 8×)")
    md.append("")
    return md


VARIANTS = {
    "full": "full hardening (bench/hardened.kakoi)",
    "no-cgroups": "without the cgroup limits (memory, pids, cpu)",
    "no-landlock": "without the Landlock rules",
    "no-seccomp": "without the seccomp filter (`seccomp off`)",
    "no-netns": "without a network namespace (`net off`)",
}


def variant_table(rows):
    """kakoi with one part of its hardening taken out at a time (bench/variants.py)."""
    by = {r["tool"]: r for r in rows}
    bwrap, full = by.get("bwrap --unshare-all"), by.get("full")
    if not (bwrap and full):
        return []
    md = ["## What each part of the hardening costs", "",
          "`bench/variants.py` writes `bench/hardened.kakoi` with one part taken out at a "
          f"time; each is launched in the same interleaved rounds ({full['runs']}) as "
          "`bwrap --unshare-all --ro-bind / /`. The part's cost is the full launch's median "
          "minus the variant's.", "",
          "| kakoi launch | mean ± σ (ms) | median | cost of the part (ms) | mean × bwrap |",
          "|---|---:|---:|---:|---:|"]
    md.append(f"| `bwrap --unshare-all` (no cgroups, Landlock or seccomp) | "
              f"{bwrap['mean']:.2f} ± {bwrap['stddev']:.2f} | {bwrap['median']:.2f} | | 1.00 |")
    for key, what in VARIANTS.items():
        r = by.get(key)
        if not r:
            continue
        cost = "" if key == "full" else f"{full['median'] - r['median']:.2f}"
        md.append(f"| {what} | {r['mean']:.2f} ± {r['stddev']:.2f} | {r['median']:.2f} | "
                  f"{cost} | {r['mean'] / bwrap['mean']:.2f} |")
    md.append("")
    return md


def phase_table(text, kakoi):
    """Median time of each `KAKOI_TRACE` mark over the traced launches."""
    marks = {}
    for line in text.splitlines():
        m = re.match(r"kakoi:\s+(\d+) µs  (.*)", line)
        if m:
            # Numbers in a mark (pids, clone flags) differ between launches.
            what = re.sub(r"0x[0-9a-f]+|\b\d+\b", "N", m.group(2))
            marks.setdefault(what, []).append(int(m.group(1)))
    if not marks:
        return []
    rows = sorted((statistics.median(v), k, len(v)) for k, v in marks.items())
    md = ["## Where kakoi's launch time goes", "",
          "`KAKOI_TRACE=1 kakoi run --bundle …` over 100 launches of the full hardening: "
          "the median time at which each phase was reached, from the start of `kakoi run` "
          "(after process start-up and argument parsing). The child (marks `child:`) "
          "builds its root while the parent makes the network namespace and the v1 "
          "cgroups, so their steps overlap.", "",
          "| phase reached | median µs | step (µs) |", "|---|---:|---:|"]
    prev = 0
    for t, what, _ in rows:
        md.append(f"| {what} | {t:.0f} | {t - prev:.0f} |")
        prev = t
    if kakoi:
        total = ms(kakoi["median"]) * 1000
        if total >= prev:
            md.append(f"| process start-up, arguments, exit (the rest of the median "
                      f"launch, {total:.0f} µs) | | {total - prev:.0f} |")
            md.append("")
        else:
            # The traced launches ran in a slower stretch of the run than hyperfine's.
            md += ["", f"These traced launches ran slower than the hyperfine runs above "
                   f"(whose median launch took {total:.0f} µs in all): the machine's load "
                   "drifted during the run, so compare the steps with each other only."]
    md.append("")
    return md


def main():
    res, out = sys.argv[1], sys.argv[2]
    machine = load(res, "machine.json") or {}
    launch = load(res, "launch.json")
    conc = load(res, "concurrency.json")
    rss = load(res, "rss.json")
    compile_ = load(res, "compile.json")
    filt = load(res, "filter.json")
    codegen = load(res, "codegen.json")
    audit = load(res, "audit.txt")
    phases = load(res, "phases.txt")
    inter = load(res, "interleaved.json")
    variants = load(res, "variants.json")
    kakoi = None

    md = ["# kakoi benchmarks", "",
          "Generated by `make bench` (bench/run.sh, then bench/report.py); every number "
          "below comes from one run on one machine, so compare within this page only. "
          "Ratios are what carry over to other machines.", ""]
    md += ["| machine | |", "|---|---|"]
    for k in ("date", "kernel", "cpu", "cpus", "memory_gib", "kakoi", "crun", "runc",
              "bwrap", "hyperfine", "libseccomp", "launch_order"):
        if k in machine:
            md.append(f"| {k} | {machine[k]} |")
    md.append("")

    if launch:
        r = {x["command"]: x for x in launch["results"]}
        kakoi = r.get("kakoi run --bundle (full hardening)")
        bwrap = r.get("bwrap --unshare-all")
        md += ["## Launch latency of `/bin/true`", "",
               "hyperfine, one after another, same machine, same run. *Full hardening* is "
               "`bench/hardened.kakoi`: pid, mount, ipc, uts, net and cgroup namespaces; "
               "memory, pids and cpu limits in cgroups; `pivot_root` into a read-only root "
               "with masked /proc paths; Docker's 14 capabilities; no_new_privs; Docker's "
               "seccomp allow-list; Landlock rules. crun and runc get the same namespaces, "
               "limits, capabilities, masks and Docker's own seccomp profile in an OCI "
               "bundle (bench/oci.py; OCI has no Landlock). bubblewrap and unshare do no "
               "seccomp and no cgroups. kakoi is the static release binary, installed with "
               "`install` and its page cache dropped, so that it is read back from disk as "
               "bwrap, crun and their libraries are (on this machine a freshly written "
               "copy of the same file launches about 0.1 ms faster until its pages are "
               "evicted); its functions are laid out by scripts/launch.order (the launch "
               "path's code together: the machine table says how much of it the build "
               "still has), and its v1 cgroups come from the pool after the first launch "
               "(see ARCHITECTURE.md).", "",
               "![launch latency](launch.svg)", "",
               "| launcher | mean ± σ (ms) | median | min | max | × kakoi --bundle |",
               "|---|---:|---:|---:|---:|---:|"]
        for x in launch["results"]:
            ratio = x["mean"] / kakoi["mean"] if kakoi else float("nan")
            md.append(f"| {x['command']} | {ms(x['mean']):.2f} ± {ms(x['stddev']):.2f} | "
                      f"{ms(x['median']):.2f} | {ms(x['min']):.2f} | {ms(x['max']):.2f} | "
                      f"{ratio:.2f} |")
        md.append("")
        if kakoi and bwrap:
            md.append(f"- kakoi (full hardening) / `bwrap --unshare-all`: "
                      f"**{kakoi['mean'] / bwrap['mean']:.2f}×** (target ≤ 1.00)")
        for peer in ("crun run (Docker's seccomp, cgroups)",
                     "runc run (Docker's seccomp, cgroups)"):
            if kakoi and peer in r:
                md.append(f"- {peer.split(' (')[0]} / kakoi: "
                          f"**{r[peer]['mean'] / kakoi['mean']:.1f}×** slower"
                          + (" (target ≥ 8×)" if peer.startswith("crun") else ""))
        md.append("")
        write(os.path.join(out, "launch.svg"), bars(
            "Launch latency of /bin/true (mean ± σ, ms; lower is better)", "ms",
            [(x["command"], ms(x["mean"]), ms(x["stddev"])) for x in launch["results"]],
            highlight=[k for k in r if k.startswith("kakoi")]))

    if inter:
        md += interleaved_table(inter)

    if variants:
        md += variant_table(variants)

    if phases:
        md += phase_table(phases, kakoi)

    if conc:
        md += ["## 50 launches at once", "",
               "All 50 started together, 5 rounds; the wall time is the round's, the "
               "percentiles are over every launch of every round.", "",
               "![50 parallel launches](concurrency.svg)", "",
               "| launcher | wall for 50 (median ms) | per launch p50 (ms) | p99 (ms) | failed |",
               "|---|---:|---:|---:|---:|"]
        for x in conc:
            md.append(f"| {x['tool']} | {x['wall_ms_median']:.1f} | {x['launch_ms_p50']:.1f}"
                      f" | {x['launch_ms_p99']:.1f} | {x['failures']} |")
        md.append("")
        write(os.path.join(out, "concurrency.svg"), bars(
            "50 launches at once: wall time of the batch (median of rounds, ms)", "ms",
            [(x["tool"], x["wall_ms_median"], None) for x in conc],
            highlight=[x["tool"] for x in conc if x["tool"].startswith("kakoi")]))

    if filt:
        calls = list(filt[0]["ns"].keys())
        base = filt[0]["ns"]
        md += ["## What the seccomp filter costs each system call", "",
               "`cargo bench --bench filter`: a fresh process per filter, 15 rounds of "
               "100,000 calls, median ns per call; three passes over the filters, median of "
               "the three. A cached allow skips the filter, but any filter puts the "
               "process on the kernel's slower syscall-entry path.", "",
               "![filter cost](filter.svg)", "",
               "| filter | instructions | " + " | ".join(calls) + " |",
               "|---|---:|" + "---:|" * len(calls)]
        for x in filt:
            cells = [f"{x['ns'][c]:.0f} ns ({x['ns'][c] / base[c]:.2f}×)" for c in calls]
            md.append(f"| {x['filter']} | {x['length']} | " + " | ".join(cells) + " |")
        md.append("")
        rows = []
        for x in filt:
            for c in calls:
                rows.append((f"{x['filter']}: {c.split(' (')[0]}", x["ns"][c], None))
        write(os.path.join(out, "filter.svg"), bars(
            "ns per system call (median; lower is better)", "ns", rows,
            highlight=[r[0] for r in rows if "kakoi" in r[0]]))

    if codegen:
        md += ["## Seccomp code generation", "",
               "`cargo bench --bench seccomp`: program length, instructions executed per "
               "allowed syscall (mean, worst), allowed syscalls the kernel's action cache "
               "serves, and compile time (median of 200).", "",
               "| input | compiler | ABI | length | mean | worst | cached / arg-independent | compile (µs) |",
               "|---|---|---|---:|---:|---:|---:|---:|"]
        for x in codegen:
            for a in x["abis"]:
                md.append(f"| {x['input']} | {x['compiler']} | {a['arch']} | {x['length']} | "
                          f"{a['mean_insns']:.1f} | {a['worst_insns']} | "
                          f"{a['cache_eligible']}/{a['argument_independent']} | "
                          f"{x['compile_us']:.0f} |")
        md.append("")

    if compile_:
        md += ["## `kakoi compile` of every shipped profile", "",
               "Every backend (seccomp for each ABI checked against the policy, "
               "capabilities, Landlock, AppArmor through the real `apparmor_parser`, "
               "SELinux CIL through the real `secilc`), written atomically.", "",
               "| profile | mean ± σ (ms) |", "|---|---:|"]
        for x in compile_["results"]:
            md.append(f"| {x['command']} | {ms(x['mean']):.1f} ± {ms(x['stddev']):.1f} |")
        md.append("")

    if audit:
        line = next((l for l in audit.splitlines() if l.startswith("audited")), audit.strip())
        md += ["## Audit throughput", "", "`cargo bench --bench audit`: " + line, ""]

    if rss:
        md += ["## Peak memory", "",
               "Peak resident set size of the process and the descendants it waits for "
               "(median of 5), measured by `examples/peak_rss.rs`; its own pre-exec copy "
               "sets a floor of about 2 MiB (the `exec /bin/true` row).", "", "| command | peak RSS (MiB) |", "|---|---:|"]
        for x in rss:
            md.append(f"| {x['tool']} | {x['peak_rss_kib'] / 1024:.1f} |")
        md.append("")

    md += ["## How to reproduce", "",
           "`make bench` as root (it installs crun, runc, bubblewrap and hyperfine from "
           "Debian; on a hybrid-cgroup host it moves `hugetlb` to a v1 hierarchy for crun "
           "during the run and back at the end). `BENCH_QUICK=1 make bench` is a short "
           "check of the script. `KAKOI_TRACE=1 kakoi run …` shows where one launch "
           "spends its time.", ""]
    write(os.path.join(out, "REPORT.md"), "\n".join(md))


if __name__ == "__main__":
    main()
