//! A running process (`kakoi audit --pid PID`): capabilities, no_new_privs and seccomp
//! mode from `/proc/PID/status`, its filters through `PTRACE_SECCOMP_GET_FILTER` (needs
//! CAP_SYS_ADMIN), LSM label, and its namespaces against pid 1's.

use std::collections::{BTreeMap, BTreeSet};

use policy_lang::catalogue::{self, Arch};

use super::model::*;
use super::sym::Class;
use crate::bpf;

fn caps(hex: &str) -> BTreeSet<String> {
    let v = u64::from_str_radix(hex.trim(), 16).unwrap_or(0);
    catalogue::capabilities()
        .iter()
        .filter(|c| catalogue::capability(c).is_some_and(|n| v & (1u64 << n) != 0))
        .map(|c| c.to_string())
        .collect()
}

/// The seccomp filters attached to `pid`, most recent first.
pub fn filters(pid: i32) -> Result<Vec<Vec<bpf::Insn>>, super::Error> {
    const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;
    // SAFETY: attaching to another process by pid; no memory is shared.
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) } < 0 {
        return Err(super::Error::Ptrace {
            pid,
            what: "ptrace attach",
            source: std::io::Error::last_os_error(),
        });
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; waiting for the attach stop (__WALL: threads too).
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    let mut out = Vec::new();
    let mut err = None;
    for index in 0..64u64 {
        // With a null buffer the call returns the filter's length in instructions.
        // SAFETY: a null data pointer only asks for the length.
        let n = unsafe {
            libc::ptrace(
                PTRACE_SECCOMP_GET_FILTER,
                pid,
                index,
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT)
                && index == 0
                && e.raw_os_error() != Some(libc::EINVAL)
            {
                err = Some(super::Error::Ptrace {
                    pid,
                    what: "PTRACE_SECCOMP_GET_FILTER",
                    source: e,
                });
            }
            break;
        }
        let mut buf = vec![
            libc::sock_filter {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0
            };
            n as usize
        ];
        // SAFETY: `buf` has room for the `n` instructions the kernel reported.
        let m = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf.as_mut_ptr()) };
        if m < 0 {
            break;
        }
        out.push(
            buf.iter()
                .map(|i| bpf::Insn {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect(),
        );
    }
    // SAFETY: detaching the tracee attached above.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The decision tables of stacked filters: the kernel applies the most restrictive.
fn stacked(progs: Vec<Vec<bpf::Insn>>, location: Location) -> SeccompView {
    let filters = progs.len();
    let mut views: Vec<SeccompView> = progs
        .into_iter()
        .map(|p| SeccompView::from_prog(p, location.clone()))
        .collect();
    let mut first = views.remove(0);
    for v in &views {
        for (arch, table) in first.tables.iter_mut() {
            for (name, class) in table.iter_mut() {
                let other = v.tables[arch][name].clone();
                *class = match (&*class, &other) {
                    (Class::Deny(_), _) => class.clone(),
                    (_, Class::Deny(_)) => other,
                    (Class::Conditional, _) | (_, Class::Conditional) => Class::Conditional,
                    _ => Class::Allow,
                };
            }
        }
        if !v.default.allows() {
            first.default = v.default.clone();
        }
        first.too_complex |= v.too_complex;
    }
    first.filters = filters;
    first
}

/// Read a live process.
/// The limits that apply to a process in the cgroups of `proc_cgroup` (its
/// `/proc/PID/cgroup`): for each controller, the smallest limit from its cgroup up to the
/// hierarchy's root.
pub fn cgroup_limits(
    proc_cgroup: &str,
    layout: &crate::host::cgroups::Layout,
    location: Location,
) -> LimitsView {
    use crate::host::cgroups::Hierarchy;
    // The directory chain (leaf first) of the process's cgroup for `controller`.
    let chain = |controller: &str| -> Vec<(bool, std::path::PathBuf)> {
        let Some(h) = layout.controllers.get(controller) else {
            return Vec::new();
        };
        let (v2, mount) = match h {
            Hierarchy::V1 { mount } => (false, mount),
            Hierarchy::V2 { mount } => (true, mount),
        };
        let path = proc_cgroup.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if v2 {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == controller)
            };
            hit.then(|| path.to_string())
        });
        let Some(path) = path else { return Vec::new() };
        let root = std::path::PathBuf::from(mount);
        let mut dir = root.join(path.trim_start_matches('/'));
        let mut out = Vec::new();
        loop {
            out.push((v2, dir.clone()));
            if dir == root || !dir.pop() || !dir.starts_with(&root) {
                break;
            }
        }
        out
    };
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
    let num = |t: &str| t.trim().parse::<u64>().ok();
    // v1 reports "unlimited" as a page-rounded i64::MAX.
    let limited = |v: u64| (v < 1 << 62).then_some(v);
    let min = |vals: Vec<u64>| vals.into_iter().min();
    let memory = min(chain("memory")
        .into_iter()
        .filter_map(|(v2, d)| {
            let f = if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            read(d.join(f)).as_deref().and_then(num).and_then(limited)
        })
        .collect());
    let pids = min(chain("pids")
        .into_iter()
        .filter_map(|(_, d)| read(d.join("pids.max")).as_deref().and_then(num))
        .collect());
    let cpu = chain("cpu")
        .into_iter()
        .filter_map(|(v2, d)| {
            let (q, p) = if v2 {
                let t = read(d.join("cpu.max"))?;
                let mut f = t.split_whitespace();
                (
                    f.next()?.parse::<i64>().ok()?,
                    f.next()?.parse::<u64>().ok()?,
                )
            } else {
                (
                    read(d.join("cpu.cfs_quota_us"))?
                        .trim()
                        .parse::<i64>()
                        .ok()?,
                    read(d.join("cpu.cfs_period_us"))?
                        .trim()
                        .parse::<u64>()
                        .ok()?,
                )
            };
            (q > 0 && p > 0).then(|| q as f64 / p as f64)
        })
        .reduce(f64::min);
    LimitsView {
        memory,
        pids,
        cpu,
        location,
    }
}

pub fn process(pid: i32) -> Result<Subject, super::Error> {
    let dir = format!("/proc/{pid}");
    let status =
        std::fs::read_to_string(format!("{dir}/status")).map_err(|source| super::Error::Proc {
            path: format!("{dir}/status"),
            source,
        })?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    let name = format!("pid {pid} ({})", field("Name:").unwrap_or_default());
    let loc = Location::file(&format!("{dir}/status"));
    let mut s = Subject::new(&name, InputFormat::Process);
    s.caps = Some(CapView {
        bounding: caps(&field("CapBnd:").unwrap_or_default()),
        effective: caps(&field("CapEff:").unwrap_or_default()),
        permitted: caps(&field("CapPrm:").unwrap_or_default()),
        inheritable: caps(&field("CapInh:").unwrap_or_default()),
        ambient: caps(&field("CapAmb:").unwrap_or_default()),
        location: loc.clone(),
    });
    s.no_new_privs = Some((field("NoNewPrivs:").as_deref() == Some("1"), loc.clone()));
    s.uid = field("Uid:")
        .and_then(|u| u.split_whitespace().nth(1).and_then(|e| e.parse().ok()))
        .map(|u| (u, loc.clone()));
    let mode = field("Seccomp:").unwrap_or_default();
    s.seccomp = Some(match mode.as_str() {
        "2" => match filters(pid) {
            Ok(f) if !f.is_empty() => Some(stacked(f, loc.clone())),
            Ok(_) => None,
            Err(e) => {
                s.notes
                    .push(format!("filters not readable ({e}); run as root"));
                // Known to be filtered: judge nothing about the filter's contents.
                let allow_all = vec![bpf::Insn {
                    code: bpf::RET,
                    jt: 0,
                    jf: 0,
                    k: bpf::RET_ALLOW,
                }];
                let mut v = SeccompView::from_prog(allow_all, loc.clone());
                for t in v.tables.values_mut() {
                    for c in t.values_mut() {
                        *c = Class::Conditional;
                    }
                }
                v.default = Class::Conditional;
                Some(v)
            }
        },
        "1" => {
            // Strict mode: read, write, _exit, sigreturn only.
            let strict = ["read", "write", "exit", "rt_sigreturn"];
            let mut v = SeccompView::from_prog(
                vec![bpf::Insn {
                    code: bpf::RET,
                    jt: 0,
                    jf: 0,
                    k: bpf::RET_KILL_PROCESS,
                }],
                loc.clone(),
            );
            for (arch, t) in v.tables.iter_mut() {
                if *arch == Arch::X86_64 {
                    for n in strict {
                        t.insert(catalogue::syscall(n).map_or(n, |d| d.name), Class::Allow);
                    }
                }
            }
            Some(v)
        }
        _ => None,
    });
    let mut ns = BTreeMap::new();
    for (k, file) in [
        ("cgroup", "cgroup"),
        ("ipc", "ipc"),
        ("mount", "mnt"),
        ("net", "net"),
        ("pid", "pid"),
        ("time", "time"),
        ("user", "user"),
        ("uts", "uts"),
    ] {
        let mine = std::fs::read_link(format!("{dir}/ns/{file}")).ok();
        let init = std::fs::read_link(format!("/proc/1/ns/{file}")).ok();
        if let (Some(a), Some(b)) = (mine, init) {
            if let Some(k) = policy_lang::ir::NsKind::from_name(k) {
                ns.insert(k, a != b);
            }
        }
    }
    s.namespaces = Some((ns, Location::file(&format!("{dir}/ns"))));
    let cgroup = std::fs::read_to_string(format!("{dir}/cgroup")).unwrap_or_default();
    s.limits = Some(cgroup_limits(
        &cgroup,
        &crate::host::cgroups::host_layout(),
        Location::file(&format!("{dir}/cgroup")),
    ));
    let label = std::fs::read_to_string(format!("{dir}/attr/current"))
        .ok()
        .map(|l| l.trim_end_matches('\0').trim().to_string())
        .filter(|l| !l.is_empty());
    if crate::host::selinux_enabled() {
        s.selinux = Some((
            label.clone(),
            Location::file(&format!("{dir}/attr/current")),
        ));
    }
    if std::path::Path::new("/sys/kernel/security/apparmor").exists() {
        let aa = std::fs::read_to_string(format!("{dir}/attr/apparmor/current"))
            .ok()
            .map(|l| l.trim().to_string());
        let confined = aa.as_deref().filter(|l| *l != "unconfined");
        s.apparmor = Some(AppArmorView {
            profile: confined.map(|l| l.split(' ').next().unwrap_or(l).to_string()),
            complain: confined.is_some_and(|l| l.contains("(complain)")),
            lines: Vec::new(),
            location: Location::file(&format!("{dir}/attr/apparmor/current")),
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::cgroups::{Hierarchy, Layout};

    /// Limits from a fake hybrid tree: v1 memory and pids, v2 cpu; the smallest value on
    /// the way to the root wins, and "max" or v1's huge value means unlimited.
    #[test]
    fn limits_are_the_smallest_up_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let put = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("memory/memory.limit_in_bytes", "9223372036854771712\n");
        put("memory/a/memory.limit_in_bytes", "1073741824\n");
        put("memory/a/b/memory.limit_in_bytes", "9223372036854771712\n");
        put("pids/pids.max", "max\n");
        put("pids/a/b/pids.max", "64\n");
        put("unified/a/cpu.max", "50000 100000\n");
        put("unified/a/b/cpu.max", "max 100000\n");
        let mut layout = Layout::default();
        for (c, dir, v2) in [
            ("memory", "memory", false),
            ("pids", "pids", false),
            ("cpu", "unified", true),
        ] {
            let mount = root.join(dir).display().to_string();
            let h = if v2 {
                Hierarchy::V2 { mount }
            } else {
                Hierarchy::V1 { mount }
            };
            layout.controllers.insert(c.to_string(), h);
        }
        let procs = "12:pids:/a/b\n7:memory:/a/b\n0::/a/b\n";
        let l = cgroup_limits(procs, &layout, Location::file("x"));
        assert_eq!(l.memory, Some(1 << 30));
        assert_eq!(l.pids, Some(64));
        assert_eq!(l.cpu, Some(0.5));
        // Not in any limited cgroup.
        let l = cgroup_limits(
            "12:pids:/\n7:memory:/\n0::/\n",
            &layout,
            Location::file("x"),
        );
        assert_eq!((l.memory, l.pids, l.cpu), (None, None, None));
    }
}
