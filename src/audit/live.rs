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
pub fn filters(pid: i32) -> Result<Vec<Vec<bpf::Insn>>, String> {
    const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;
    // SAFETY: attaching to another process by pid; no memory is shared.
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) } < 0 {
        return Err(format!(
            "ptrace attach to {pid}: {}",
            std::io::Error::last_os_error()
        ));
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
                err = Some(format!("PTRACE_SECCOMP_GET_FILTER: {e}"));
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
    }
    first
}

/// Read a live process.
pub fn process(pid: i32) -> Result<Subject, String> {
    let dir = format!("/proc/{pid}");
    let status = std::fs::read_to_string(format!("{dir}/status"))
        .map_err(|e| format!("{dir}/status: {e}"))?;
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
            ns.insert(k.to_string(), a != b);
        }
    }
    s.namespaces = Some((ns, Location::file(&format!("{dir}/ns"))));
    let label = std::fs::read_to_string(format!("{dir}/attr/current"))
        .ok()
        .map(|l| l.trim_end_matches('\0').trim().to_string())
        .filter(|l| !l.is_empty());
    if crate::launch::run::selinux_enabled() {
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
