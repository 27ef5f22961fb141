#!/usr/bin/env python3
"""Generate policy-lang/src/catalogue/generated.rs: kakoi's syscall catalogue.

Sources (nothing is typed in by hand):
  * syscall numbers: the kernel's own tables, arch/x86/entry/syscalls/syscall_64.tbl
    (x86_64 and x32), syscall_32.tbl (i386) and scripts/syscall.tbl (aarch64, with the
    ABIs listed in arch/arm64/kernel/Makefile.syscalls);
  * argument names and C types: the SYSCALL_DEFINEn(...) definitions in the kernel's C
    sources, falling back to the asmlinkage prototypes in include/linux/syscalls.h;
  * systemd's syscall groups: `systemd-analyze syscall-filter` on the generating machine;
  * @container-default: the unconditional allow-list of Docker's default seccomp profile
    (../shared/data/docker-default-seccomp.json).

Regenerate with:  make catalogue   (runs scripts/gen-catalogue.sh, which fetches
Debian's linux-source package and calls this script)

i386 and x32 on an x86_64 kernel enter the compat entry points the tables name (the
fifth column of syscall_32.tbl, `compat_sys_*` entries of syscall_64.tbl); their
COMPAT_SYSCALL_DEFINEs give those ABIs' real argument lists where they differ from
x86_64's (i386 `mmap` is old_mmap, one pointer).
"""
import json
import os
import re
import subprocess
import sys

KSRC = sys.argv[1]
DOCKER_JSON = sys.argv[2]
OUT = sys.argv[3]

# The kernel the catalogue describes. The sources may be newer (Debian ships no 6.18
# source package): syscall numbers only grow, and every table gives a new syscall the
# next number on every ABI at once, so 6.18's syscalls are those numbered up to LAST.
# Linux 6.17 added file_getattr/file_setattr (468, 469); 6.18 added none; 6.19's listns
# is 470. Checked against a running 6.18 kernel's tracefs (events/syscalls/sys_enter_*):
# tests/suite/catalogue.rs compares the catalogue with the machine's own kernel.
KERNEL = "6.18"
LAST = 469
# x32's own legacy range (512-547) is below 548 and not a new syscall.
X32_LEGACY = range(512, 548)

ARCHES = ["x86_64", "x86", "x32", "aarch64"]
# arch/arm64/kernel/Makefile.syscalls: syscall_abis_64 += renameat rlimit memfd_secret
ARM64_ABIS = {"common", "64", "renameat", "rlimit", "memfd_secret"}


def read_tbl(path, abis):
    """[(name, nr, native entry, compat entry)] of the ABIs `abis`, up to LAST."""
    out = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        nr, abi, name = int(parts[0]), parts[1], parts[2]
        entry = parts[3] if len(parts) > 3 else None
        # The fifth column is the compat entry point, `-` for none (a sixth may say
        # `noreturn`).
        compat = parts[4] if len(parts) > 4 and parts[4] != "-" else None
        if nr > LAST and nr not in X32_LEGACY:
            continue
        if abi in abis:
            out.append((name, nr, entry, compat))
    return out


ARM64_TBL = f"{KSRC}/arch/arm64/tools/syscall_64.tbl"
if not os.path.exists(ARM64_TBL):
    ARM64_TBL = f"{KSRC}/scripts/syscall.tbl"
tables = {
    "x86_64": read_tbl(f"{KSRC}/arch/x86/entry/syscalls/syscall_64.tbl", {"common", "64"}),
    "x32": read_tbl(f"{KSRC}/arch/x86/entry/syscalls/syscall_64.tbl", {"common", "x32"}),
    "x86": read_tbl(f"{KSRC}/arch/x86/entry/syscalls/syscall_32.tbl", {"i386"}),
    "aarch64": read_tbl(ARM64_TBL, ARM64_ABIS),
}

# --- signatures -------------------------------------------------------------------------

DEFINE_RE = re.compile(r"\b(?:COMPAT_)?SYSCALL_DEFINE(\d)\(\s*(\w+)\s*((?:,[^)]*)?)\)", re.S)


def split_define(argtext):
    # "int, dfd, const char __user *, filename" -> [("int","dfd"), ...]
    items = [a.strip() for a in argtext.strip().lstrip(",").split(",")]
    items = [" ".join(i.split()) for i in items if i]
    return list(zip(items[0::2], items[1::2]))


defs = {}  # name -> {prefix: [(type, name)]}
compat_defs = {}  # COMPAT_SYSCALL_DEFINEs: the entry points of i386 (and x32) on x86_64


def scan_defines():
    for root, _dirs, files in os.walk(KSRC):
        rel = os.path.relpath(root, KSRC)
        if rel.startswith(("tools", "Documentation", "samples", "arch/um")):
            continue
        for f in files:
            if not f.endswith(".c"):
                continue
            path = os.path.join(root, f)
            try:
                text = open(path, encoding="utf-8", errors="replace").read()
            except OSError:
                continue
            if "SYSCALL_DEFINE" not in text:
                continue
            for m in DEFINE_RE.finditer(text):
                n, name, args = int(m.group(1)), m.group(2), m.group(3)
                pairs = split_define(args)
                if m.group(0).startswith("COMPAT_"):
                    # An unparsable one (compat_arg_u64_dual…) is recorded as unknown.
                    where = "x86" if rel.startswith("arch/x86") else "generic"
                    if where == "x86" or not rel.startswith("arch/"):
                        compat_defs.setdefault(name, {}).setdefault(
                            where, pairs if len(pairs) == n else None)
                    continue
                if len(pairs) != n:
                    continue
                if name == "clone" and rel == "kernel":
                    # kernel/fork.c defines clone under #ifdef CONFIG_CLONE_BACKWARDS{,2,3};
                    # x86 takes the #else layout (child_tidptr before tls), arm64 selects
                    # CLONE_BACKWARDS (tls before child_tidptr) in arch/arm64/Kconfig.
                    names = [p[1] for p in pairs]
                    if names[3:5] == ["child_tidptr", "tls"]:
                        defs.setdefault(name, {})["x86"] = pairs
                    elif names[3:5] == ["tls", "child_tidptr"] and names[1] == "newsp":
                        defs.setdefault(name, {})["arm64"] = pairs
                    continue
                where = "x86" if rel.startswith("arch/x86") else (
                    "arm64" if rel.startswith("arch/arm64") else (
                        "arch" if rel.startswith("arch/") else "generic"))
                defs.setdefault(name, {}).setdefault(where, pairs)


PROTO_RE = re.compile(r"asmlinkage\s+long\s+sys_(\w+)\(([^)]*)\);", re.S)


def scan_protos():
    text = open(f"{KSRC}/include/linux/syscalls.h").read()
    protos = {}
    for m in PROTO_RE.finditer(text):
        name, args = m.group(1), " ".join(m.group(2).split())
        if args == "void" or not args:
            pairs = []
        else:
            pairs = []
            for a in args.split(","):
                a = a.strip()
                mm = re.match(r"(.*?)(\w+)(\s*\[\s*\])?$", a)
                if not mm:
                    pairs = None
                    break
                ty, an = mm.group(1).strip(), mm.group(2)
                if not ty:  # unnamed parameter
                    pairs = None
                    break
                if mm.group(3):
                    ty += " *"
                pairs.append((ty, an))
        if pairs is not None:
            protos.setdefault(name, pairs)
    return protos


scan_defines()
protos = scan_protos()

INT32 = {"int", "s32", "__s32", "pid_t", "timer_t", "clockid_t", "mqd_t", "key_serial_t",
         "rwf_t", "key_perm_t", "key_t"}
UINT32 = {"unsigned int", "unsigned", "u32", "__u32", "uid_t", "gid_t", "umode_t", "qid_t",
          "unsigned short", "u16", "__u16", "old_uid_t", "old_gid_t", "fmode_t", "unsigned char"}
INT64 = {"long", "ssize_t", "off_t", "loff_t", "s64", "__s64", "__kernel_old_time_t",
         "long long", "time_t", "__kernel_off_t", "__kernel_loff_t"}
UINT64 = {"unsigned long", "size_t", "u64", "__u64", "aio_context_t", "__kernel_size_t",
          "unsigned long long", "__kernel_ulong_t", "old_sigset_t"}
PTR_TYPEDEFS = {"cap_user_header_t", "cap_user_data_t", "__sighandler_t"}

unknown_types = set()


COMPAT_SIGNED = {"compat_int_t", "compat_long_t", "compat_off_t", "compat_pid_t",
                 "compat_ssize_t", "compat_key_t", "compat_timer_t", "compat_clock_t",
                 "compat_time_t", "old_time32_t", "compat_clockid_t", "compat_loff_t"}


def classify(ty):
    t = ty.replace("__user", "").replace("const ", "").replace("volatile ", "")
    t = " ".join(t.split())
    if "*" in t or t in PTR_TYPEDEFS or t in ("compat_uptr_t", "compat_caddr_t"):
        return "Ptr"
    if t.startswith("compat_") or t in ("old_sigset_t32",):
        # Compat entry points take 32-bit values (an i386 register, or the low half of
        # an x32 one).
        return "I32" if t in COMPAT_SIGNED else "U32"
    if t.startswith("enum "):
        return "U32"
    if t in INT32:
        return "I32"
    if t in UINT32:
        return "U32"
    if t in INT64:
        return "I64"
    if t in UINT64:
        return "U64"
    unknown_types.add(t)
    return "U64"


def entry_base(entry):
    e = entry.split("/")[0]
    for p in ("__x64_sys_", "__ia32_sys_", "__x32_compat_sys_", "sys_", "compat_sys_"):
        if e.startswith(p):
            return e[len(p):]
    return e


UNKNOWN = "unknown"  # an entry point whose signature the sources do not give plainly


def compat_signature(name, compat):
    """The signature of a compat entry point (`compat_sys_X`): what i386 and x32 really
    call on an x86_64 kernel. UNKNOWN when it cannot be read."""
    if not compat.startswith("compat_sys_"):
        # A native function serves the compat ABI too (`sys_getsockopt`).
        return signature(name, compat, ["x86"]) or UNKNOWN
    d = compat_defs.get(entry_base(compat))
    if not d:
        return UNKNOWN
    sig = d.get("x86", d.get("generic"))
    return UNKNOWN if sig is None else sig


def signature(name, entry, prefer):
    base = entry_base(entry) if entry else name
    for cand in (base, name):
        d = defs.get(cand)
        if d:
            for where in prefer + ["generic", "arch"]:
                if where in d:
                    return d[where]
        if cand in protos:
            return protos[cand]
    return None


catalogue = {}  # name -> dict
for arch in ARCHES:
    for name, nr, entry, compat in tables[arch]:
        c = catalogue.setdefault(name, {"nr": {}, "sig": None, "sig_aarch64": None,
                                        "sig_x86": None, "sig_x32": None})
        c["nr"][arch] = nr
        if arch in ("x86_64", "x86") and c["sig"] is None:
            c["sig"] = signature(name, entry, ["x86"])
        if arch == "x86":
            # On an x86_64 kernel i386 enters the compat entry point where there is one
            # (`sys_old_mmap compat_sys_ia32_mmap`), else the native one with 32-bit
            # registers.
            c["sig_x86"] = (compat_signature(name, compat) if compat
                            else signature(name, entry, ["x86"]))
        if arch == "x32" and entry and entry.startswith("compat_sys_"):
            c["sig_x32"] = compat_signature(name, entry)
        if arch == "aarch64":
            s = signature(name, entry, ["arm64"])
            if c["sig"] is None:
                c["sig"] = s
            elif s is not None and s != c["sig"]:
                c["sig_aarch64"] = s

# --- systemd groups ---------------------------------------------------------------------


def systemd_groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                         capture_output=True, text=True, check=True).stdout
    groups, cur, desc = {}, None, {}
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line.strip()
            groups[cur] = []
        elif cur and line.strip().startswith("#"):
            desc.setdefault(cur, line.strip().lstrip("# ").strip())
        elif cur and line.strip():
            groups[cur].append(line.strip())
    groups.pop("@known", None)
    return groups, desc


groups, group_desc = systemd_groups()

# --- Docker default allow-list ----------------------------------------------------------

docker = json.load(open(DOCKER_JSON))
container_default = []
for s in docker["syscalls"]:
    if s["action"] != "SCMP_ACT_ALLOW" or s.get("args") or s.get("includes") or s.get("excludes"):
        continue
    container_default.extend(s["names"])
container_default = sorted(set(container_default))

# --- symbolic constants -----------------------------------------------------------------
# (header, name prefixes) from the same kernel tree; values are evaluated in order so later
# definitions may refer to earlier ones (e.g. SOCK_CLOEXEC = O_CLOEXEC).
CONST_SOURCES = [
    ("include/uapi/asm-generic/errno-base.h", ("E",)),
    ("include/uapi/asm-generic/errno.h", ("E",)),
    ("include/uapi/asm-generic/fcntl.h", ("O_", "F_", "AT_")),
    ("include/uapi/linux/fcntl.h", ("AT_", "F_")),
    ("include/uapi/asm-generic/mman-common.h", ("PROT_", "MAP_", "MADV_", "MLOCK_")),
    ("include/uapi/asm-generic/mman.h", ("MAP_", "MCL_")),
    ("include/uapi/linux/mman.h", ("MAP_",)),
    ("arch/x86/include/uapi/asm/mman.h", ("MAP_32BIT",)),
    ("include/linux/socket.h", ("AF_", "PF_", "MSG_", "SOL_")),
    ("include/linux/net.h", ("SOCK_",)),
    ("include/uapi/linux/in.h", ("IPPROTO_",)),
    ("include/uapi/linux/net.h", ("SYS_",)),
    ("include/uapi/linux/sched.h", ("CLONE_", "SCHED_")),
    ("include/uapi/linux/personality.h", ("PER_", "UNAME26", "ADDR_", "FDPIC_", "MMAP_", "READ_IMPLIES", "SHORT_", "WHOLE_", "STICKY_", "ADDR_LIMIT")),
    ("include/uapi/linux/prctl.h", ("PR_",)),
    ("include/uapi/linux/capability.h", ("CAP_",)),
    ("include/uapi/asm-generic/ioctls.h", ("TIOC", "TC", "FIO", "TIOCS")),
    ("include/uapi/asm-generic/signal.h", ("SIG",)),
]
# arch/arm64/include/uapi/asm/fcntl.h overrides a few O_* flags on aarch64.
ARM64_CONST_SOURCES = [("arch/arm64/include/uapi/asm/fcntl.h", ("O_",))]

DEFINE_LINE = re.compile(r"^\s*#\s*define\s+([A-Z_][A-Z0-9_]*)\s+(.+?)\s*(?:/\*.*)?$")
ENUM_LINE = re.compile(r"^\s*([A-Z_][A-Z0-9_]*)\s*=\s*([^,/]+?)\s*,?\s*(?:/\*.*)?$")


def c_eval(expr, env):
    e = expr.strip()
    e = re.sub(r"(0x[0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", e)
    if re.search(r"[^\w\s()|&<>~+\-*/]", e):
        return None
    e = re.sub(r"\b0([0-7]+)\b", r"0o\1", e)
    try:
        v = eval(e, {"__builtins__": {}}, dict(env))
    except Exception:
        return None
    return v if isinstance(v, int) else None


def read_consts(sources, env):
    out = {}
    for header, prefixes in sources:
        path = f"{KSRC}/{header}"
        if not os.path.exists(path):
            raise SystemExit(f"missing {path}")
        text = open(path).read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        for line in text.splitlines():
            m = DEFINE_LINE.match(line) or ENUM_LINE.match(line)
            if not m or not m.group(1).startswith(prefixes):
                continue
            v = c_eval(m.group(2), {**env, **out})
            if v is not None and m.group(1) not in out:
                out[m.group(1)] = v & 0xFFFFFFFFFFFFFFFF if v < 0 else v
    return out


constants = read_consts(CONST_SOURCES, {})
constants_arm64 = {k: v for k, v in read_consts(ARM64_CONST_SOURCES, {}).items()
                   if constants.get(k) != v}
# CAP_LAST_CAP and friends are not capabilities.
capabilities = sorted(((v, k[4:]) for k, v in constants.items()
                       if k.startswith("CAP_") and k not in ("CAP_LAST_CAP",) and
                       isinstance(v, int) and v < 64 and not k.startswith("CAP_TO")))

# --- write Rust -------------------------------------------------------------------------


def kinds(sig):
    return None if sig is None else [(n, classify(t)) for t, n in sig]


FIXED64 = {"loff_t", "u64", "__u64", "s64", "__s64", "long long", "unsigned long long",
           "__kernel_loff_t"}


def splits_on_i386(sig):
    """64-bit types take two registers on i386, shifting later argument positions; an
    entry point whose signature is unknown cannot be mapped either."""
    if sig is None:
        return False
    if sig == UNKNOWN:
        return True
    plain = [" ".join(t.replace("__user", "").replace("const ", "").split()) for t, _ in sig]
    return any(t in FIXED64 for t in plain)


def shape(sig):
    """Where values are: how many arguments, and which are pointers. Two signatures of
    one shape put the same values at the same positions (the compat one may name them
    differently, `len` for `size`: x86_64's names are kept)."""
    return None if sig in (None, UNKNOWN) else [classify(t) == "Ptr" for t, _ in sig]


def abi_override(c, key):
    """The ABI's own signature when its shape differs from x86_64's, else None."""
    sig = c[key]
    if sig in (None, UNKNOWN) or shape(sig) == shape(c["sig"]):
        return None
    return sig


def i386_split(c):
    if "x86" not in c["nr"]:
        return False
    sig = c["sig_x86"] if c["sig_x86"] is not None else c["sig"]
    return splits_on_i386(sig)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from catalogue_rs import write_rust  # noqa: E402

write_rust(
    OUT, KERNEL,
    [(name, [catalogue[name]["nr"].get(a) for a in ARCHES], kinds(catalogue[name]["sig"]),
      kinds(catalogue[name]["sig_aarch64"]), kinds(abi_override(catalogue[name], "sig_x86")),
      kinds(abi_override(catalogue[name], "sig_x32")), i386_split(catalogue[name]))
     for name in sorted(catalogue)],
    [(g[1:], group_desc.get(g, ""), groups[g]) for g in sorted(groups)]
    + [("container-default", "Docker's default seccomp allow-list (unconditional part)",
        container_default)],
    [(k, constants[k], constants_arm64.get(k)) for k in sorted(constants)],
    capabilities)

for key, abi in (("sig_x86", "i386"), ("sig_x32", "x32")):
    differ = sorted(n for n, c in catalogue.items() if abi_override(c, key) is not None)
    print(f"{abi} signatures unlike x86_64's ({len(differ)}): {' '.join(differ)}",
          file=sys.stderr)
opaque = sorted(n for n, c in catalogue.items() if i386_split(c))
print(f"no argument rules on i386 ({len(opaque)}): {' '.join(opaque)}", file=sys.stderr)
missing = [n for n, c in catalogue.items() if c["sig"] is None]
print(f"{len(catalogue)} syscalls, {len(groups) + 1} groups, "
      f"{len(container_default)} in @container-default, {len(constants)} constants, "
      f"{len(capabilities)} capabilities", file=sys.stderr)
print(f"no signature for {len(missing)}: {' '.join(sorted(missing))}", file=sys.stderr)
if unknown_types:
    print(f"types classified as 64-bit by default: {sorted(unknown_types)}", file=sys.stderr)
