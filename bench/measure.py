#!/usr/bin/env python3
"""Measurements of `make bench` that hyperfine does not make.

  measure.py concurrency OUT.json N ROUNDS NAME -- CMD... [:: NAME -- CMD...]
      N launches at once, ROUNDS times, per tool: wall time of each round and of each
      launch (p50, p99). `{i}` in a command becomes the launch's index (container ids).
  measure.py interleaved OUT.json RUNS NAME -- CMD... [:: NAME -- CMD...]
      RUNS rounds, each running every command once (in turn, the order reversed every
      other round), so drift of the machine during the run falls on all commands alike;
      wall time of each run from spawn to exit (mean, median, p10, p90).
  measure.py rss OUT.json NAME -- CMD... [:: NAME -- CMD...]
      peak resident set size of each command (the largest of the process and the
      descendants it waited for), median of 5 runs; needs target/release/examples/peak_rss.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time


def groups(args):
    """NAME -- CMD... [:: NAME -- CMD...] -> [(name, argv)]"""
    out, cur = [], []
    for a in args + ["::"]:
        if a == "::":
            if cur:
                sep = cur.index("--")
                out.append((" ".join(cur[:sep]), cur[sep + 1:]))
            cur = []
        else:
            cur.append(a)
    return out


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def concurrency(out, n, rounds, tools):
    results = []
    for name, argv in tools:
        walls, each, failures = [], [], 0
        for r in range(rounds):
            t0 = time.perf_counter()
            procs = []
            for i in range(n):
                cmd = [a.replace("{i}", f"{os.getpid()}-{r}-{i}") for a in argv]
                procs.append((time.perf_counter(), subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            pending = dict((p.pid, (t, p)) for t, p in procs)
            while pending:
                pid, status = os.wait()
                if pid in pending:
                    t, p = pending.pop(pid)
                    each.append((time.perf_counter() - t) * 1e3)
                    p.returncode = os.waitstatus_to_exitcode(status)
                    if p.returncode != 0:
                        failures += 1
            walls.append((time.perf_counter() - t0) * 1e3)
        results.append({
            "tool": name, "command": argv, "parallel": n, "rounds": rounds,
            "wall_ms_median": statistics.median(walls), "wall_ms": walls,
            "launch_ms_p50": pct(each, 50), "launch_ms_p99": pct(each, 99),
            "failures": failures,
        })
        print(f"{name}: {n} at once, wall {statistics.median(walls):.1f} ms (median of "
              f"{rounds}), per launch p50 {pct(each, 50):.1f} ms p99 {pct(each, 99):.1f} ms, "
              f"{failures} failed", file=sys.stderr)
    write(out, results)


def run_once(argv):
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        t = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, null, 1),
                                            (os.POSIX_SPAWN_DUP2, null, 2)])
        _, status = os.waitpid(pid, 0)
        return (time.perf_counter() - t) * 1e3, os.waitstatus_to_exitcode(status)
    finally:
        os.close(null)


def interleaved(out, runs, tools):
    for _ in range(20):  # warm-up
        for _, argv in tools:
            run_once(argv)
    times = [[] for _ in tools]
    failures = [0 for _ in tools]
    for r in range(runs):
        order = range(len(tools)) if r % 2 == 0 else reversed(range(len(tools)))
        for k in order:
            ms, rc = run_once(tools[k][1])
            times[k].append(ms)
            failures[k] += rc != 0
    results = []
    for (name, argv), t, f in zip(tools, times, failures):
        results.append({
            "tool": name, "command": argv, "runs": runs, "times_ms": t,
            "mean": statistics.mean(t), "stddev": statistics.stdev(t),
            "median": statistics.median(t), "p10": pct(t, 10), "p90": pct(t, 90),
            "failures": f,
        })
        print(f"{name}: mean {statistics.mean(t):.2f} ms, median {statistics.median(t):.2f} "
              f"ms ({runs} runs, {f} failed)", file=sys.stderr)
    write(out, results)


PEAK_RSS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "../target/release/examples/peak_rss")


def rss_of(argv):
    """Measured by examples/peak_rss.rs: a fork of this Python process would count its own
    13 MiB (the kernel keeps the pre-exec image's peak)."""
    rc, kib = subprocess.run([PEAK_RSS] + argv, capture_output=True, text=True,
                             check=True).stdout.split()
    return int(rc), int(kib)


def rss(out, tools):
    results = []
    for name, argv in tools:
        runs = [rss_of(argv) for _ in range(5)]
        kib = statistics.median(k for _, k in runs)
        failed = sum(1 for rc, _ in runs if rc != 0)
        results.append({"tool": name, "command": argv, "peak_rss_kib": kib,
                        "failures": failed})
        print(f"{name}: peak RSS {kib / 1024:.1f} MiB ({failed} failed)", file=sys.stderr)
    write(out, results)


def write(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(tmp, path)


def main():
    what, out = sys.argv[1], sys.argv[2]
    if what == "concurrency":
        n, rounds = int(sys.argv[3]), int(sys.argv[4])
        concurrency(out, n, rounds, groups(sys.argv[5:]))
    elif what == "interleaved":
        interleaved(out, int(sys.argv[3]), groups(sys.argv[4:]))
    elif what == "rss":
        rss(out, groups(sys.argv[3:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
