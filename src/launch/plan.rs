//! The launch plan: the steps `kakoi run` takes, in the order of the design notes
//! (`launcher.md`), with the concrete values each step uses. Pure: the host facts it needs
//! (cgroup layout, the caller's uid, the command line) are passed in.

use policy_lang::catalogue::Arch;
use policy_lang::ir::{Enforcement, Level, NsKind, NsMode, Policy, Rootfs};
use serde::Serialize;

use super::cgroup::{Hierarchy, Layout};
use crate::backends;
use crate::seccomp::Host;

/// One step: who runs it (parent or child), what, and why it comes here.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub by: &'static str,
    pub what: String,
    pub why: &'static str,
}

/// What the launch needs from the host.
#[derive(Clone, Debug)]
pub struct LaunchHost {
    pub uid: u32,
    pub gid: u32,
    pub cgroups: Layout,
    pub arch: Host,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub policy: String,
    pub argv: Vec<String>,
    pub steps: Vec<Step>,
    /// Things the plan cannot do on this host, with what the policy says about them.
    pub warnings: Vec<String>,
}

fn step(by: &'static str, what: impl Into<String>, why: &'static str) -> Step {
    Step {
        by,
        what: what.into(),
        why,
    }
}

/// Where the sandbox's cgroup goes in the hierarchy at `mount`.
fn leaf(layout: &Layout, mount: &str) -> String {
    match layout.parent(mount) {
        Some(p) => format!("{}/kakoi-<pid>-<start>", p.display()),
        None => "nowhere: the launcher's cgroup is outside this mount".into(),
    }
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}G", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n => n.to_string(),
    }
}

/// The plan for running `argv` (the policy's own when empty) under `p` on `host`.
pub fn plan(p: &Policy, argv: &[String], host: &LaunchHost) -> Plan {
    let mut s = Vec::new();
    let mut warnings = Vec::new();
    let argv = if argv.is_empty() {
        p.process.argv.clone()
    } else {
        argv.to_vec()
    };
    let rootless = host.uid != 0 || p.identity.rootless;

    s.push(step("parent", "validate the bundle; open the rootfs and layer directories as O_PATH fds; mark every fd CLOEXEC", "failing before any namespace exists is cheap and leaks nothing (CVE-2024-21626)"));

    // cgroups: the files and values the launcher writes (`cgroup::limits`, one source),
    // on the hierarchy that carries each controller here.
    let r = &p.resources;
    let limits = super::cgroup::limits(r);
    if !limits.is_empty() {
        let mut parts = Vec::new();
        let mut any_v1 = false;
        for l in &limits {
            let (files, version, mount) = match host.cgroups.controllers.get(l.controller) {
                Some(Hierarchy::V2 { mount }) => (&l.v2, "v2", mount),
                Some(Hierarchy::V1 { mount }) => {
                    any_v1 = true;
                    (&l.v1, "v1", mount)
                }
                None => {
                    let fatal = r.cgroup == Some(Enforcement::Required);
                    let what: Vec<String> = l.v2.iter().map(|(f, v)| format!("{f}={v}")).collect();
                    warnings.push(format!(
                        "no `{}` controller is available to this user: `{}` {}",
                        l.controller,
                        what.join(", "),
                        if fatal {
                            "cannot be enforced and the policy requires it (launch fails)"
                        } else {
                            "is skipped (`cgroup optional`)"
                        }
                    ));
                    continue;
                }
            };
            let written: Vec<String> = files.iter().map(|(f, v)| format!("{f}={v}")).collect();
            parts.push(format!(
                "{} ({version}, {})",
                written.join(", "),
                leaf(&host.cgroups, mount)
            ));
        }
        if !parts.is_empty() {
            s.push(step(
                "parent",
                format!(
                    "create the cgroup and write its limits: {}{}",
                    parts.join(", "),
                    if any_v1 {
                        "; on v1, an idle cgroup with the same limits is taken from the pool instead (renamed)"
                    } else {
                        ""
                    }
                ),
                "every later step, and the payload from its first instruction, is accounted",
            ));
        }
    }
    if !r.rlimits.is_empty() {
        let l: Vec<String> = r
            .rlimits
            .iter()
            .map(|r| {
                format!(
                    "{}={}/{}",
                    r.name,
                    if r.soft == u64::MAX {
                        "unlimited".into()
                    } else {
                        r.soft.to_string()
                    },
                    if r.hard == u64::MAX {
                        "unlimited".into()
                    } else {
                        r.hard.to_string()
                    }
                )
            })
            .collect();
        s.push(step(
            "parent",
            format!("set rlimits: {}", l.join(", ")),
            "raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace",
        ));
    }

    // namespaces
    let mut new = Vec::new();
    let mut join = Vec::new();
    for k in NsKind::ALL {
        match p.namespaces.get(k) {
            NsMode::New => new.push(k.name()),
            NsMode::Join(path) => join.push(format!("{} ({path})", k.name())),
            NsMode::Host => {}
        }
    }
    let user_ns = new.contains(&"user") || rootless;
    if rootless && !new.contains(&"user") {
        new.push("user");
        warnings.push("launched without root: a user namespace is added".into());
    }
    // cgroup and time namespaces are entered by the child itself: cgroup once it is in
    // every cgroup (v1 ones are joined after the clone), time before anything is inside.
    let clone_ns: Vec<&str> = new
        .iter()
        .copied()
        .filter(|n| *n != "time" && *n != "cgroup")
        .collect();
    let any_v1 = host
        .cgroups
        .controllers
        .values()
        .any(|h| matches!(h, Hierarchy::V1 { .. }));
    // On a v1 or hybrid host every cgroup (a v2 leaf too) is joined after the clone, by
    // writing the child's pid: the layout is then read while the child works.
    let into_cgroup = host.cgroups.unified.is_some() && !any_v1;
    s.push(step(
        "parent",
        format!(
            "clone3 with new {} namespaces, CLONE_PIDFD{}",
            clone_ns.join(", "),
            if into_cgroup {
                ", CLONE_INTO_CGROUP (the v2 leaf)"
            } else {
                "; then write the child's pid into each cgroup before it runs"
            }
        ),
        "no window outside the cgroup; the cgroup namespace root is the sandbox's own cgroup",
    ));
    if !join.is_empty() {
        s.push(step(
            "child",
            format!("setns into {}", join.join(", ")),
            "joined namespaces come before the ones that depend on them",
        ));
    }
    if user_ns {
        let maps = if let Some(u) = &p.identity.subids {
            format!("uid_map `0 {} 1` plus the ranges of `{u}` in /etc/subuid and /etc/subgid, through newuidmap/newgidmap", host.uid)
        } else if p.identity.uid_map.is_empty() && host.uid == 0 {
            "uid_map and gid_map `0 0 4294967295` (root keeps its ids; the namespace confines capabilities)".to_string()
        } else if p.identity.uid_map.is_empty() {
            format!("uid_map `0 {} 1`, gid_map `0 {} 1`", host.uid, host.gid)
        } else {
            let m: Vec<String> = p
                .identity
                .uid_map
                .iter()
                .map(|m| format!("{} {} {}", m.inside, m.outside, m.count))
                .collect();
            format!(
                "uid_map `{}` (newuidmap/newgidmap for ranges)",
                m.join("; ")
            )
        };
        s.push(step(
            "parent",
            format!("setgroups=deny, then {maps}"),
            "the child blocks on a pipe until its identity exists",
        ));
    }
    match super::net::Veth::of(&p.network.mode) {
        Ok(Some(v)) => {
            let address = match v.address {
                Some(a) => format!(
                    "{a}/{} (leased, refused if a running sandbox holds it)",
                    v.prefix
                ),
                None => format!(
                    "the first free one of {}/{} (leased in {})",
                    v.network,
                    v.prefix,
                    super::net::LEASES
                ),
            };
            let host_end = match &v.bridge {
                Some(b) => format!(
                    "attach the other to bridge {b} (made if missing, with {}/{}, and kept)",
                    v.gateway, v.prefix
                ),
                None => format!(
                    "give the other {} peer the sandbox's address (a point-to-point link)",
                    v.gateway
                ),
            };
            s.push(step(
                "parent",
                format!("lease an address: {address}; create a veth pair, move one end into the sandbox as eth0, {host_end}; in the sandbox: the address, eth0 up, default route via {}", v.gateway),
                "the network namespace must exist before its interfaces",
            ));
            if p.network.nat {
                s.push(step(
                    "parent",
                    format!("nftables table `ip kakoi`: masquerade {}/{} to other networks (kept); net.ipv4.ip_forward=1", v.network, v.prefix),
                    "outbound traffic needs the host's address (`nat on`)",
                ));
            }
            if !p.network.publish.is_empty() {
                let ports: Vec<String> = p
                    .network
                    .publish
                    .iter()
                    .map(|x| {
                        format!(
                            "{} {} -> {}",
                            if x.udp { "udp" } else { "tcp" },
                            x.host,
                            x.sandbox
                        )
                    })
                    .collect();
                s.push(step(
                    "parent",
                    format!("nftables table `ip kakoi`: DNAT the host's own addresses' {} to the sandbox's address (prerouting and output; removed when the sandbox ends)", ports.join(", ")),
                    "the address is leased before the clone, so the rules exist before the payload listens",
                ));
            }
        }
        Ok(None) => {
            if let policy_lang::ir::NetMode::Macvlan {
                parent,
                address,
                gateway,
            } = &p.network.mode
            {
                s.push(step(
                    "parent",
                    format!(
                        "make a bridge-mode macvlan on {parent} as the sandbox's eth0; in the sandbox: {address}, eth0 up{}",
                        gateway.as_ref().map_or(String::new(), |g| format!(", default route via {g}"))
                    ),
                    "the network namespace must exist before its interfaces",
                ));
            }
        }
        Err(e) => warnings.push(format!("`mode veth`: {e} (the launch fails)")),
    }
    let idmapped = p.filesystem.binds.iter().filter(|b| b.idmap).count();
    if idmapped > 0 {
        s.push(step(
            "parent",
            format!("make {idmapped} idmapped bind(s): open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) with the sandbox's user namespace; pass them to the child over SCM_RIGHTS"),
            "idmapping a host file system needs CAP_SYS_ADMIN in the initial user namespace",
        ));
    }
    s.push(step(
        "child",
        format!(
            "PR_SET_PDEATHSIG(SIGKILL), then wait for the parent's \"go\" (EOF: it died); PR_SET_DUMPABLE 0; setsid{}{}",
            if user_ns { "; setresuid/setresgid 0 in the new user namespace" } else { "" },
            if new.contains(&"cgroup") { "; unshare(CLONE_NEWCGROUP)" } else { "" }
        ),
        "the payload dies with the launcher; nothing can ptrace privileged setup (CVE-2016-8659); a new session cannot type into the terminal (TIOCSTI)",
    ));
    if new.contains(&"time") {
        let offs: Vec<String> = p
            .process
            .time_offsets
            .iter()
            .map(|(c, o)| format!("{c} {o}s"))
            .collect();
        s.push(step(
            "child",
            format!(
                "unshare(CLONE_NEWTIME), write offsets [{}], fork",
                offs.join(", ")
            ),
            "time namespaces apply to children only",
        ));
    }

    // mounts
    if new.contains(&"mount") {
        let overlay_root = p.filesystem.overlays.iter().any(|o| o.target == "/");
        let root = match &p.filesystem.rootfs {
            Rootfs::Host if overlay_root => {
                "the overlay on / (its layers are the whole root: nothing of the host's is bound in)"
                    .to_string()
            }
            Rootfs::Host => {
                "a tmpfs root with the host's /usr, /bin, /sbin, /lib, /lib64, /etc bound read-only"
                    .to_string()
            }
            Rootfs::Dir { path, readonly } => format!(
                "{path} ({})",
                if *readonly { "read-only" } else { "read-write" }
            ),
        };
        let prop = match p.filesystem.propagation {
            policy_lang::ir::Propagation::Private => "rprivate",
            policy_lang::ir::Propagation::Slave => "rslave",
        };
        s.push(step(
            "child",
            format!("make / {prop}; build the new root: {root}"),
            "mounts must not propagate between the sandbox and the host",
        ));
        for o in &p.filesystem.overlays {
            s.push(step(
                "child",
                format!(
                    "overlay on {}: lower {}, upper {}",
                    o.target,
                    o.lower.join(":"),
                    o.upper.as_deref().unwrap_or("tmpfs")
                ),
                "layers before the binds that go over them",
            ));
        }
        for b in &p.filesystem.binds {
            s.push(step("child", format!("bind {} -> {} ({}{}, nodev{})", b.source, b.target, if b.readonly { "ro" } else { "rw" }, if b.idmap { ", idmapped" } else { "" }, if b.suid { "" } else { ", nosuid" }), "destinations resolved inside the new root with openat2(RESOLVE_IN_ROOT) (CVE-2021-30465)"));
        }
        for t in &p.filesystem.tmpfs {
            s.push(step(
                "child",
                format!(
                    "tmpfs on {}{}",
                    t.target,
                    t.size
                        .map(|n| format!(" size={}", size(n)))
                        .unwrap_or_default()
                ),
                "scratch space",
            ));
        }
        s.push(step("child", "fresh /proc; minimal /dev (null, zero, full, random, urandom, tty, devpts newinstance); /sys read-only", "symlinked /proc or /sys destinations are refused (CVE-2023-27561)"));
        s.push(step(
            "child",
            "pivot_root(\".\", \".\"), make the old root private, umount2(MNT_DETACH), chdir(\"/\")",
            "never chroot alone: a privileged process escapes a chroot",
        ));
        if !p.filesystem.masked.is_empty() || !p.filesystem.readonly.is_empty() {
            s.push(step(
                "child",
                format!(
                    "mask {} paths with the verified /dev/null; remount {} paths read-only",
                    p.filesystem.masked.len(),
                    p.filesystem.readonly.len()
                ),
                "after the pivot, on the paths the payload will see (CVE-2025-31133)",
            ));
        }
    } else {
        warnings.push("no mount namespace: the payload sees the host's file system".into());
    }
    if let Some(h) = &p.process.hostname {
        if new.contains(&"uts") {
            s.push(step(
                "child",
                format!("sethostname({h})"),
                "in the sandbox's own UTS namespace",
            ));
        }
    }
    if new.contains(&"net") {
        s.push(step(
            "child",
            "bring lo up",
            "a network namespace starts with lo down",
        ));
    }

    // LSMs
    if let Some(a) = &p.apparmor {
        s.push(step("child", format!("AppArmor: write `exec {}` to /proc/thread-self/attr/apparmor/exec (verified procfs)", a.profile), "labels take effect at execve; procfs is checked with fstatfs (CVE-2019-16884)"));
    }
    if let Some(se) = &p.selinux {
        let level = match &se.level {
            Level::Random => " (a random MCS category pair)".to_string(),
            Level::Fixed(_) => String::new(),
        };
        s.push(step(
            "child",
            format!(
                "SELinux: write `{}`{level} to attr/exec and attr/keycreate",
                backends::selinux::label(p).unwrap_or_default()
            ),
            "without a trailing newline, or the write does nothing",
        ));
    }

    // credentials
    let c = &p.capabilities;
    s.push(step(
        "child",
        format!(
            "chdir({}); CLOEXEC sweep; refuse an unreachable cwd",
            p.process.cwd
        ),
        "no host fd or cwd may leak into the payload (CVE-2024-21626)",
    ));
    let user = p
        .identity
        .user
        .map_or_else(|| "0".to_string(), |u| u.to_string());
    let group = p
        .identity
        .group
        .map_or_else(|| "0".to_string(), |g| g.to_string());
    s.push(step("child", format!("drop the bounding set to [{}]; setgroups {:?}; setresgid {group}; setresuid {user}; capset permitted [{}], effective [{}], inheritable [{}]; ambient [{}]", c.bounding.join(" "), p.identity.groups, c.permitted.join(" "), c.effective.join(" "), c.inheritable.join(" "), c.ambient.join(" ")), "bounding first while CAP_SETPCAP is held; inheritable empty unless asked (CVE-2022-29162)"));
    if p.process.no_new_privs {
        s.push(step(
            "child",
            "PR_SET_NO_NEW_PRIVS",
            "from here setuid and file-capability binaries gain nothing",
        ));
    } else {
        warnings
            .push("no_new_privs is off: setuid binaries in the sandbox can gain privileges".into());
    }
    let ll = backends::landlock::generate(p);
    if !ll.is_empty() {
        s.push(step(
            "child",
            format!(
                "Landlock (ABI {}, {:?}): {} path rules, {} port rules",
                ll.abi,
                ll.enforcement,
                ll.paths.len(),
                ll.ports.len()
            ),
            "after every mount: a Landlocked thread may not change its mount topology",
        ));
    }
    if p.seccomp.enabled {
        let abis: Vec<&str> = host
            .arch
            .abis()
            .iter()
            .filter(|a| p.seccomp.arches.contains(a))
            .map(|a| a.name())
            .collect();
        s.push(step(
            "child",
            format!(
                "seccomp(SECCOMP_SET_MODE_FILTER) with the precompiled seccomp.{}.bpf ({})",
                host.arch.name(),
                abis.join(", ")
            ),
            "the last syscall before exec: the filter must only allow execve",
        ));
        if !p.seccomp.arches.contains(&Arch::X86_64) && host.arch == Host::X86_64 {
            warnings.push("the policy does not target x86_64: a native payload is killed at its first syscall".into());
        }
    }
    s.push(step(
        "child",
        format!("execve({})", argv.join(" ")),
        "a failure before this is reported to the parent as (step, errno) and exit 125/126/127",
    ));
    let mut sup = "supervise: pidfd wait, forward signals".to_string();
    if let Some(t) = p.process.timeout_ms {
        sup.push_str(&format!(", kill after {} ms", t));
    }
    sup.push_str("; exit with the payload's status (128+signal); kill and remove the cgroup (a clean v1 one goes back to the pool) and any host veth");
    s.push(step("parent", sup, "nothing of the sandbox outlives it"));
    Plan {
        policy: p.name.clone(),
        argv,
        steps: s,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::cgroup;

    fn host(uid: u32, v2: bool) -> LaunchHost {
        let layout = if v2 {
            cgroup::detect(
                "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                "cpu io memory pids",
                "0::/user.slice/kakoi.scope\n",
            )
        } else {
            cgroup::detect("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n38 31 0:35 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n", "", "7:memory:/limited\n")
        };
        LaunchHost {
            uid,
            gid: uid,
            cgroups: layout,
            arch: Host::X86_64,
        }
    }

    fn policy(text: &str) -> Policy {
        let (_, c) = policy_lang::check_str("t.kakoi", text);
        c.policy.expect("valid")
    }

    fn index(p: &Plan, needle: &str) -> usize {
        p.steps
            .iter()
            .position(|s| s.what.contains(needle))
            .unwrap_or_else(|| panic!("no step `{needle}`"))
    }

    #[test]
    fn steps_come_in_the_safe_order() {
        let p = policy("filesystem {\n read \"/usr\"\n exec \"/usr/bin\"\n}\nresources {\n pids 10\n}\nprocess {\n argv [\"/usr/bin/true\"]\n}\n");
        let plan = plan(&p, &[], &host(0, true));
        let order = [
            "create the cgroup",
            "clone3",
            "pivot_root",
            "drop the bounding set",
            "PR_SET_NO_NEW_PRIVS",
            "Landlock",
            "seccomp(",
            "execve(",
        ];
        let idx: Vec<usize> = order.iter().map(|n| index(&plan, n)).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
        assert!(plan.steps[index(&plan, "clone3")]
            .what
            .contains("CLONE_INTO_CGROUP"));
    }

    #[test]
    fn v1_hosts_name_v1_files_and_join_after_clone() {
        let p = policy("resources {\n memory 64M\n pids 10\n}\n");
        let plan = plan(&p, &[], &host(0, false));
        let cg = &plan.steps[index(&plan, "create the cgroup")].what;
        // The files and values the launcher writes, below the caller's own cgroup.
        assert!(
            cg.contains("memory.limit_in_bytes=67108864 (v1, /sys/fs/cgroup/memory/limited/kakoi-<pid>-<start>)"),
            "{cg}"
        );
        let clone = &plan.steps[index(&plan, "clone3")].what;
        assert!(
            clone.contains("write the child's pid into each cgroup") && !clone.contains("INTO"),
            "{clone}"
        );
    }

    /// `--dry-run` prints what the launcher writes, not the policy's words: v1 clamps
    /// `blkio.weight` to 1000, v2 limits swap alone (`memory.swap.max` = swap - memory).
    #[test]
    fn the_cgroup_step_names_the_files_the_launcher_writes() {
        let p = policy("resources {\n memory 64M\n memory-swap 128M\n io-weight 5000\n}\n");
        for (v2, want) in [
            (
                false,
                ["memory.memsw.limit_in_bytes=134217728", "blkio.weight=1000"],
            ),
            (true, ["memory.swap.max=67108864", "io.weight=default 5000"]),
        ] {
            let plan = plan(&p, &[], &host(0, v2));
            let cg = &plan.steps[index(&plan, "create the cgroup")].what;
            let limits = crate::launch::cgroup::limits(&p.resources);
            for w in want {
                assert!(cg.contains(w), "{cg}");
            }
            // One source: every file the launcher writes is named.
            for l in &limits {
                for (f, v) in if v2 { &l.v2 } else { &l.v1 } {
                    assert!(cg.contains(&format!("{f}={v}")), "{f}={v}: {cg}");
                }
            }
        }
    }

    #[test]
    fn rootless_adds_a_user_namespace_and_reports_missing_cgroups() {
        let p = policy("resources {\n cpu 0.5\n cgroup required\n}\n");
        let plan = plan(&p, &["/bin/true".into()], &host(1000, false));
        assert!(plan.steps[index(&plan, "clone3")].what.contains("user"));
        assert!(plan
            .steps
            .iter()
            .any(|s| s.what.contains("uid_map `0 1000 1`")));
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("`cpu`") && w.contains("launch fails")),
            "{:?}",
            plan.warnings
        );
        assert_eq!(plan.argv, ["/bin/true"]);
    }
}
