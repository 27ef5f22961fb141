#!/usr/bin/env python3
"""Write the OCI bundle that crun and runc launch in `make bench`: `/bin/true` with the
sandbox of bench/hardened.kakoi as far as the OCI runtime spec can say it (Landlock has
no OCI field).

Docker's default seccomp profile is resolved for amd64 and Docker's 14 default
capabilities the way moby does it (archMap, includes/excludes), so the runtimes load the
profile Docker would hand them.

usage: oci.py DOCKER_PROFILE.json BUNDLE_DIR
"""

import json
import os
import sys

CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

MASKED = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def docker_seccomp(profile):
    """moby's setupSeccomp for GOARCH=amd64 and the default capabilities."""
    arches = []
    for m in profile.get("archMap") or []:
        if m["architecture"] == "SCMP_ARCH_X86_64":
            arches = [m["architecture"]] + m.get("subArchitectures", [])
    rules = []
    for s in profile["syscalls"]:
        inc = s.get("includes") or {}
        exc = s.get("excludes") or {}
        if "amd64" in (exc.get("arches") or []):
            continue
        if any(c in CAPS for c in exc.get("caps") or []):
            continue
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in CAPS for c in inc["caps"]):
            continue
        r = {"names": s["names"], "action": s["action"]}
        if s.get("args"):
            r["args"] = s["args"]
        if "errnoRet" in s:
            r["errnoRet"] = s["errnoRet"]
        rules.append(r)
    out = {"defaultAction": profile["defaultAction"], "architectures": arches,
           "syscalls": rules}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return out


def config(seccomp):
    ro = ["nosuid", "noexec", "nodev", "ro"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro},
            {"destination": "/usr", "type": "bind", "source": "/usr",
             "options": ["rbind", "ro", "nosuid", "nodev"]},
            {"destination": "/etc", "type": "bind", "source": "/etc",
             "options": ["rbind", "ro", "nosuid", "nodev"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
        ],
        "linux": {
            "resources": {
                "memory": {"limit": 1 << 30},
                "pids": {"limit": 1024},
                "cpu": {"quota": 100000, "period": 100000},
            },
            "namespaces": [{"type": t} for t in
                           ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
            "seccomp": seccomp,
        },
    }


def main():
    profile_path, bundle = sys.argv[1], sys.argv[2]
    with open(profile_path) as f:
        profile = json.load(f)
    rootfs = os.path.join(bundle, "rootfs")
    for d in ("usr", "etc", "proc", "dev", "sys", "tmp"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                         ("sbin", "usr/sbin")):
        p = os.path.join(rootfs, link)
        if not os.path.islink(p):
            os.symlink(target, p)
    tmp = os.path.join(bundle, "config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(config(docker_seccomp(profile)), f, indent=2)
    os.replace(tmp, os.path.join(bundle, "config.json"))


if __name__ == "__main__":
    main()
