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

    // The program cannot run under the access rules.
    if let Some(prog) = p.process.argv.first() {
        let rules = &p.filesystem.access;
        let covered = |acc: Access| {
            rules.iter().any(|r| {
                r.access.contains(&acc)
                    && (prog == &r.path
                        || prog.starts_with(&format!("{}/", r.path.trim_end_matches('/'))))
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
