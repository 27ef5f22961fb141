//! Checks across layers: places where what one layer allows another denies (so the
//! policy does not mean what it seems to), or where every layer lets something dangerous
//! through. Warnings only; they point at the sections involved.

use std::collections::BTreeMap;

use crate::catalogue;
use crate::diagnostics::{Diagnostic, Span};
use crate::ir::{Access, Action, NetMode, Policy};

/// Syscalls that change the mount table.
const MOUNT_CALLS: &[&str] = &[
    "mount",
    "umount2",
    "fsmount",
    "move_mount",
    "open_tree",
    "pivot_root",
    "mount_setattr",
];

/// Whether the filter allows `name` for at least some arguments: an allowing rule comes
/// before any unconditional rule for it, or nothing decides it and the default allows.
fn allowed_anyhow(p: &Policy, name: &str) -> bool {
    let s = &p.seccomp;
    if !s.enabled {
        return true;
    }
    for r in s
        .rules
        .iter()
        .filter(|r| r.syscalls.iter().any(|x| x == name))
    {
        if r.action == Action::Allow {
            return true;
        }
        if r.cond.is_none() {
            return false;
        }
    }
    s.default_action == Action::Allow
}

/// Directories that merged-`/usr` systems (Debian 12, Fedora, Arch, Ubuntu) make symlinks
/// into `/usr`: Landlock follows the link, so a rule on either name covers both.
const MERGED_USR: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// `path` and its other name on a merged-`/usr` system.
fn merged_usr_aliases(path: &str) -> Vec<String> {
    let mut out = vec![path.to_string()];
    let top = |p: &str| {
        MERGED_USR
            .iter()
            .any(|d| p == *d || p.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
    };
    if top(path) {
        out.push(format!("/usr{path}"));
    } else if let Some(rest) = path.strip_prefix("/usr").filter(|r| top(r)) {
        out.push(rest.to_string());
    }
    out
}

/// What every program needs from seccomp to start (`(calls, what)`: one of the calls
/// must be allowed), on the ABIs a program of this host runs in. Measured: each of these
/// denied alone makes `/bin/true` (glibc, dynamic) or a static glibc binary fail before
/// `main` (ld.so "cannot apply additional memory protection", "cannot set %fs base
/// address", "cannot open shared object file", …).
fn start_calls(arch: catalogue::Arch) -> Vec<(&'static [&'static str], &'static str)> {
    use catalogue::Arch;
    let mut v: Vec<(&'static [&'static str], &'static str)> = vec![
        (&["execve", "execveat"], "every program"),
        (&["mprotect"], "every program"),
        (&["exit_group", "exit"], "every program"),
    ];
    match arch {
        Arch::X86_64 | Arch::X32 => {
            v.push((&["arch_prctl"], "every program"));
            v.push((&["openat", "open"], "dynamically linked programs"));
        }
        Arch::Aarch64 => v.push((&["openat"], "dynamically linked programs")),
        // i386 programs are checked as the compat ABI they are by the host's rules.
        _ => return Vec::new(),
    }
    v.extend([
        (&["mmap"][..], "dynamically linked programs"),
        (&["read"][..], "dynamically linked programs"),
        (&["pread64"][..], "dynamically linked programs"),
        (&["close"][..], "dynamically linked programs"),
        (&["newfstatat"][..], "dynamically linked programs"),
    ]);
    v
}

pub(crate) fn check(p: &Policy, sections: &BTreeMap<&'static str, Span>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let at = |name: &str| sections.get(name).cloned();
    let warn = |code,
                msg: String,
                primary: Option<Span>,
                label: &str,
                others: Vec<(Option<Span>, &str)>,
                help: &str| {
        let primary = primary.or_else(|| others.iter().find_map(|(s, _)| s.clone()))?;
        let mut d = Diagnostic::warning(code, msg, primary)
            .with_label(label)
            .with_help(help);
        for (s, l) in others {
            if let Some(s) = s {
                if Some(&s) != d.span.as_ref() {
                    d = d.with_secondary(s, l);
                }
            }
        }
        Some(d)
    };
    let caps_hold = |c: &str| {
        p.capabilities
            .bounding
            .iter()
            .chain(&p.capabilities.permitted)
            .any(|x| x == c)
    };

    // X001: every layer lets the sandbox mount.
    let aa_denies_mount = p.apparmor.as_ref().is_some_and(|a| {
        a.rules
            .iter()
            .any(|r| r.text.trim_start().starts_with("deny mount"))
    });
    if caps_hold("SYS_ADMIN")
        && MOUNT_CALLS.iter().any(|c| allowed_anyhow(p, c))
        && !aa_denies_mount
    {
        out.extend(warn(
            "W0501",
            "the sandbox can change its mount table".into(),
            at("seccomp"),
            "seccomp allows mount calls",
            vec![(at("capabilities"), "and CAP_SYS_ADMIN is held")],
            "deny the @mount set in `seccomp`, drop SYS_ADMIN, or add `rule \"deny mount,\"` to `apparmor`",
        ));
    }

    // Socket families allowed by seccomp but not by `network families` (AppArmor and
    // SELinux rules are generated from the families, so those sockets fail there).
    if !p.network.families.is_empty() && allowed_anyhow(p, "socket") {
        if let Some(d) = catalogue::syscall("socket") {
            let s = &p.seccomp;
            let mut extra = Vec::new();
            for a in &s.arches {
                let Some(nr) = d.nr(*a) else { continue };
                for fam in 1..46u64 {
                    if s.decide(a.audit_arch(), nr, &[fam, 1, 0, 0, 0, 0]).action != Action::Allow {
                        continue;
                    }
                    let name = catalogue::constant_names()
                        .filter(|n| {
                            n.starts_with("AF_")
                                && *n != "AF_LOCAL"
                                && *n != "AF_ROUTE"
                                && *n != "AF_FILE"
                        })
                        .find(|n| catalogue::constant(n, *a) == Some(fam))
                        .map(|n| n.trim_start_matches("AF_").to_string());
                    if let Some(n) = name {
                        if !p.network.families.contains(&n) && !extra.contains(&n) {
                            extra.push(n);
                        }
                    }
                }
            }
            if !extra.is_empty() {
                let mut list = extra
                    .iter()
                    .take(6)
                    .map(|f| f.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ");
                if extra.len() > 6 {
                    list.push_str(&format!(" and {} more", extra.len() - 6));
                }
                out.extend(warn(
                    "W0502",
                    format!("seccomp allows socket families that `network families` leaves out: {list}"),
                    at("seccomp"),
                    "`socket` is allowed for them here",
                    vec![(at("network"), "but the LSM profiles allow only these families")],
                    "restrict `socket` with `if family in {…}` in `seccomp`, or add the families to `network families`",
                ));
            }
        }
    }

    // Landlock ports for calls seccomp denies.
    for (ports, call, what) in [
        (&p.network.tcp_bind, "bind", "tcp-bind"),
        (&p.network.tcp_connect, "connect", "tcp-connect"),
    ] {
        if ports.as_ref().is_some_and(|v| !v.is_empty()) && !allowed_anyhow(p, call) {
            out.extend(warn(
                "W0503",
                format!("`{what}` lists ports but seccomp denies `{call}`"),
                at("network"),
                "these ports can never be used",
                vec![(at("seccomp"), "denies the call")],
                "allow the call in `seccomp`, or remove the ports",
            ));
        }
    }

    // Published ports the sandbox cannot listen on.
    if let Some(bind) = &p.network.tcp_bind {
        let blocked: Vec<String> = p
            .network
            .publish
            .iter()
            .filter(|x| !x.udp && !bind.contains(&x.sandbox))
            .map(|x| format!("{} -> {}", x.host, x.sandbox))
            .collect();
        if !blocked.is_empty() {
            out.extend(warn(
                "W0513",
                format!(
                    "published ports the sandbox cannot listen on: {}",
                    blocked.join(", ")
                ),
                at("network"),
                "`tcp-bind` (Landlock) does not list their sandbox ports",
                vec![],
                "add the sandbox ports to `tcp-bind`, or remove the `publish` lines",
            ));
        }
    }

    // An interface on a network, but no socket family to use it with.
    let fams = &p.network.families;
    if p.network.mode.eth0().is_some()
        && !fams.is_empty()
        && !fams.iter().any(|f| f == "INET" || f == "INET6")
    {
        out.extend(warn(
            "W0514",
            "the sandbox has a network interface, but `families` allows no IP socket".into(),
            at("network"),
            "`mode veth` or `macvlan` gives it eth0, and `families` leaves out inet and inet6",
            vec![],
            "add `inet` (and `inet6`) to `families`, or use `mode none`",
        ));
    }

    // A network without an interface to use.
    if matches!(p.network.mode, NetMode::None)
        && p.network
            .tcp_connect
            .as_ref()
            .is_some_and(|v| !v.is_empty())
    {
        out.extend(warn(
            "W0504",
            "`tcp-connect` lists ports but the sandbox has no network".into(),
            at("network"),
            "`mode none` gives only `lo`",
            vec![],
            "use `mode veth` (or `host`) to reach other machines, or drop the ports",
        ));
    }

    // Seccomp rules no program can start under.
    if p.seccomp.enabled {
        let mut missing: Vec<(String, &str)> = Vec::new();
        for a in &p.seccomp.arches {
            for (calls, what) in start_calls(*a) {
                if !calls.iter().any(|c| allowed_anyhow(p, c)) {
                    let name = format!("`{}`", calls[0]);
                    if !missing.iter().any(|(n, _)| *n == name) {
                        missing.push((name, what));
                    }
                }
            }
        }
        if !missing.is_empty() {
            let mut by_what: Vec<String> = Vec::new();
            for what in ["every program", "dynamically linked programs"] {
                let names: Vec<&str> = missing
                    .iter()
                    .filter(|(_, w)| *w == what)
                    .map(|(n, _)| n.as_str())
                    .collect();
                if !names.is_empty() {
                    by_what.push(format!("{} ({what})", names.join(", ")));
                }
            }
            out.extend(warn(
                "W0511",
                format!(
                    "the seccomp rules cannot start a program: they deny {}",
                    by_what.join("; ")
                ),
                // A policy without a `seccomp` section denies everything (the default).
                at("seccomp")
                    .or_else(|| at("policy"))
                    .or_else(|| sections.values().next().cloned()),
                "the C library's start-up code makes these calls before `main`, and stops when one fails",
                vec![],
                "allow the `@default` set (systemd's: what every program calls), or these calls; `kakoi explain POLICY CALL` shows the rule that denies one",
            ));
        }
        let spawn = ["clone", "clone3", "fork", "vfork"];
        if missing.is_empty() && !spawn.iter().any(|c| allowed_anyhow(p, c)) {
            out.extend(warn(
                "W0512",
                "the seccomp rules let no process or thread be created: `clone`, `clone3`, `fork` and `vfork` are denied".into(),
                at("seccomp"),
                "shells, `system()`, `posix_spawn`, thread pools and Python's multiprocessing fail",
                vec![],
                "allow `clone` (with `if flags & CLONE_NEWUSER == 0` to keep namespaces out) and `clone3` (errno(ENOSYS) makes libc fall back to clone), or ignore this for a job that is one single-threaded process",
            ));
        }
    }

    // The program cannot run under the access rules.
    if let Some(prog) = p.process.argv.first() {
        let rules = &p.filesystem.access;
        let covered = |acc: Access| {
            merged_usr_aliases(prog).iter().any(|prog| {
                rules.iter().any(|r| {
                    r.access.contains(&acc)
                        && (prog == &r.path
                            || prog.starts_with(&format!("{}/", r.path.trim_end_matches('/'))))
                })
            })
        };
        if !rules.is_empty() && prog.starts_with('/') && !covered(Access::Exec) {
            out.extend(warn(
                "W0505",
                format!("the access rules do not let `{prog}` execute"),
                at("filesystem"),
                "no `exec` rule covers it",
                vec![(at("process"), "the program is named here")],
                "add its directory to `exec` in `filesystem`",
            ));
        }
    }

    // Access rules that leave ordinary programs unable to work.
    let rules = &p.filesystem.access;
    let under = |path: &str, base: &str| {
        let base = base.trim_end_matches('/');
        path == base || base.is_empty() || path.starts_with(&format!("{base}/"))
    };
    let grants = |path: &str, acc: Option<Access>| {
        rules
            .iter()
            .any(|r| under(path, &r.path) && acc.is_none_or(|a| r.access.contains(&a)))
    };
    let unreadable: Vec<&str> = rules
        .iter()
        .filter(|r| {
            r.access
                .iter()
                .any(|a| matches!(a, Access::Write | Access::Make))
        })
        .map(|r| r.path.as_str())
        // Device nodes are written without being read (`> /dev/null`); /dev/shm is a directory.
        .filter(|path| !under(path, "/dev") || under(path, "/dev/shm"))
        .filter(|path| !grants(path, Some(Access::Read)))
        .collect();
    if !unreadable.is_empty() {
        out.extend(warn(
            "W0507",
            format!("writable but not readable: {}", unreadable.join(", ")),
            at("filesystem"),
            "files made here cannot be read back (or a directory listed)",
            vec![],
            "add these paths to `read` as well: programs read back what they write (editors, compilers, databases, `ls .`)",
        ));
    }
    let devices: Vec<&str> = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/shm"]
        .into_iter()
        .filter(|d| !grants(d, None))
        .collect();
    if !rules.is_empty() && !devices.is_empty() {
        out.extend(warn(
            "W0508",
            format!("the access rules give nothing on {}", devices.join(", ")),
            at("filesystem"),
            "ordinary programs open these (shells redirect to /dev/null, libraries read /dev/urandom, POSIX semaphores live in /dev/shm)",
            vec![],
            "add `read` (and `write` for /dev/null and /dev/shm) on them; they are the sandbox's own device nodes and tmpfs",
        ));
    }
    let own_proc = rules.iter().find(|r| {
        ["/proc/self", "/proc/thread-self"]
            .iter()
            .any(|s| under(&r.path, s))
    });
    if let Some(r) = own_proc {
        if !grants("/proc", Some(Access::Read)) {
            out.extend(warn(
                "W0509",
                format!("`{}` is granted, but it names only the process that loads the rules", r.path),
                at("filesystem"),
                "Landlock resolves the path once: a child's /proc/self is another directory",
                vec![],
                "grant `read` on \"/proc\" (the sandbox's own, in its pid namespace), or drop the rule",
            ));
        }
    }
    if !p.process.time_offsets.is_empty()
        && p.namespaces.get(crate::ir::NsKind::Time) != &crate::ir::NsMode::New
    {
        out.extend(warn(
            "W0510",
            "`time-offset` is set, but the sandbox has no time namespace of its own".into(),
            at("process"),
            "the offsets are not applied",
            vec![(at("namespaces"), "the time namespace is not `on` here")],
            "add `time on` to `namespaces`, or remove the offsets",
        ));
    }

    // Writable for Landlock, denied by an extra AppArmor rule.
    if let Some(a) = &p.apparmor {
        for r in &p.filesystem.access {
            if !r
                .access
                .iter()
                .any(|x| matches!(x, Access::Write | Access::Make | Access::Remove))
            {
                continue;
            }
            for rule in &a.rules {
                let t = rule.text.trim();
                if let Some(rest) = t.strip_prefix("deny ") {
                    let path = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_matches('"');
                    let perms = rest.split_whitespace().nth(1).unwrap_or("");
                    let base = path
                        .trim_end_matches("/**")
                        .trim_end_matches("/*")
                        .trim_end_matches('/');
                    if perms.contains('w')
                        && !base.is_empty()
                        && (r.path.starts_with(base) || base.starts_with(&r.path))
                    {
                        out.extend(warn(
                            "W0506",
                            format!("`{}` is writable under Landlock but AppArmor denies writing `{path}`", r.path),
                            at("apparmor"),
                            "this extra rule denies it",
                            vec![(at("filesystem"), "the access rules allow it")],
                            "make the layers agree: remove the write access or the AppArmor denial",
                        ));
                    }
                }
            }
        }
    }
    out
}
