#!/usr/bin/env python3
"""Policies for the report's cost table: bench/hardened.kakoi with one part of its
hardening taken out each, written to OUT_DIR.

usage: variants.py PROFILES/default.kakoi BENCH/hardened.kakoi OUT_DIR
"""

import os
import re
import sys


def without_block(text, name):
    """`text` without its top-level `name { ... }` block (these blocks nest no braces)."""
    out, n = re.subn(rf"^{name} \{{\n.*?^\}}\n", "", text, flags=re.S | re.M)
    if n != 1:
        sys.exit(f"variants.py: expected one `{name}` block")
    return out


def main():
    default, hardened, out = sys.argv[1:4]
    d = open(default).read()
    h = open(hardened).read()
    if not re.search(r'^extends "default"$', h, re.M):
        sys.exit("variants.py: hardened.kakoi must extend `default`")
    own = without_block(re.sub(r'^extends "default"\n', "", h, flags=re.M), "resources")
    landlock = re.compile(r"^\s+(read|exec|write|make|remove|landlock)\b.*\n", re.M)
    if not landlock.search(h):
        sys.exit("variants.py: hardened.kakoi has no Landlock rules")
    variants = {
        "full": h,
        # `extends` cannot take the default's limits away: the default without them.
        "no-cgroups": without_block(d, "resources") + "\n" + own,
        "no-landlock": landlock.sub("", h),
        "no-seccomp": h + "\nseccomp off\n",
        "no-netns": h + "\nnamespaces {\n    net off\n}\n",
    }
    os.makedirs(out, exist_ok=True)
    for name, text in variants.items():
        with open(os.path.join(out, f"{name}.kakoi"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
