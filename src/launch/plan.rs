//! The launch plan: every step `kakoi run` takes, typed, with the values it uses, built
//! once from the policy and the host's facts ([`build`], pure). `kakoi run --dry-run` and
//! `kakoi plan` print it; the launcher runs it ([`super::parent`] the parent's steps,
//! [`super::child`] the child's), so the two cannot differ. The order is the one of
//! `docs/launch.md`; each step says why it comes where it does.

use std::fmt;

use policy_lang::catalogue::Arch;
use policy_lang::ir::{Bind, Enforcement, Namespaces, NsKind, NsMode, Policy, Publish};
use serde::Serialize;

use super::cgroup::{Hierarchy, Layout, Limit};
use super::error::{Hint, StepError};
use super::ids::Maps;
use super::mounts::Root;
use super::net::Veth;
use crate::backends::landlock::Ruleset;
use crate::host::Facts;

/// Who takes a step: the launcher, or its clone child (then the sandbox's processes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Parent,
    Child,
}

/// The sandbox's cgroups: the files and values written (`cgroup::limits`), on the
/// hierarchies that carry each controller.
#[derive(Clone, Debug)]
pub struct CgroupStep {
    pub limits: Vec<Limit>,
    /// `cgroup required`: a limit that cannot be written fails the launch.
    pub strict: bool,
    /// The sandbox's processes are in the cgroup itself (no pid namespace: no init of
    /// ours to put them in a leaf below it).
    pub leaf: bool,
    /// Joined after the clone by writing the child's pid (a v1 or hybrid host), or at
    /// the clone (`CLONE_INTO_CGROUP`, a pure v2 host).
    pub after_clone: bool,
    /// The host's layout when known at planning (`None`: read after the clone, while
    /// the child works; the launcher's own cgroup or `--cgroup-parent` below that).
    pub layout: Option<Layout>,
    /// `--cgroup-parent`.
    pub parent: Option<String>,
    /// The cgroup's own name (a detached container's); `None`: `kakoi-<pid>-<start>`.
    pub name: Option<String>,
}

/// One resource limit of the payload's process (`setrlimit` on its pid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub name: String,
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// The process a child must not outlive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// The launcher, through its pidfd.
    Launcher,
    /// The sandbox's init (kakoi's, forked before).
    Init,
}

/// The seccomp program and how it is installed.
#[derive(Clone, Debug)]
pub struct Seccomp {
    pub program: Vec<u8>,
    /// `seccomp(2)` flags (`SECCOMP_FILTER_FLAG_*`).
    pub flags: u64,
    /// The ABIs the program decides (the rest are killed).
    pub abis: Vec<Arch>,
    /// Installed before the capabilities are dropped: without no_new_privs, installing
    /// a filter needs CAP_SYS_ADMIN.
    pub before_caps: bool,
}

/// A step of the launch.
#[derive(Clone, Debug)]
pub enum Step {
    // The launcher, before the clone.
    /// Lease an address of the veth network (`mode veth` without a fixed one: the first
    /// free one).
    Lease(Veth),
    Nat(Veth),
    Publish(Vec<Publish>),
    /// Standard descriptors (relay pipes, a terminal) and the CLOEXEC sweep.
    Preflight,
    Cgroup(CgroupStep),
    Clone {
        /// Namespaces made by the clone (cgroup and time: the child unshares them).
        new: Vec<NsKind>,
        /// The network namespace is made by the launcher meanwhile and passed over.
        net_aside: bool,
        into_cgroup: bool,
        /// The child builds the sandbox before "go", while the launcher does its part.
        early: bool,
    },
    // The launcher, after the clone.
    NetAside,
    Rlimits(Vec<Rlimit>),
    /// The payload's OOM score adjustment (an OCI config's `process.oomScoreAdj`).
    OomScoreAdj(i32),
    /// Namespaced kernel parameters, written in the sandbox's own namespaces before its
    /// root is built (and /proc/sys made read-only).
    Sysctl(Vec<(String, String)>),
    IdMaps(Maps),
    Idmapped(Vec<Bind>),
    HostVeth(Veth),
    Macvlan(String),
    Go,
    Supervise {
        timeout_ms: Option<u64>,
        /// The payload is pid 1 without kakoi's init: a second interrupt kills it.
        bare_pid1: bool,
        /// The sandbox has its own pid namespace (its cgroup empties with its init).
        pid_ns: bool,
    },
    // The child.
    DieWith(Parent),
    Undumpable,
    /// The audit login uid, when unset (`None`: the launcher's user is not mapped).
    LoginUid(Option<u32>),
    Session,
    AwaitGo,
    ReceiveIdmapped(usize),
    EnterUserNs {
        uid: u32,
        gid: u32,
    },
    Join(Vec<(NsKind, String)>),
    UnshareCgroup,
    UnshareTime(Vec<(String, i64)>),
    ForkInit {
        subreaper: bool,
    },
    Hostname(String),
    /// Join the network namespace the launcher made (without a mount namespace: inside
    /// [`Step::Root`] otherwise).
    JoinNet,
    Loopback,
    Eth0 {
        /// `None`: the leased one.
        address: Option<String>,
        gateway: Option<String>,
    },
    Root {
        root: Box<Root>,
        /// The launcher's network namespace is joined inside, just before /sys.
        join_net: bool,
    },
    AppArmor(String),
    SELinux(String),
    Chdir(String),
    Stdio {
        uid: u32,
        gid: u32,
    },
    Cloexec,
    /// Look the command up in the sandbox's PATH.
    Lookup(String),
    Seccomp(Seccomp),
    Bounding(u64),
    KeepCaps(bool),
    Groups(Vec<u32>),
    Gid(u32),
    Uid(u32),
    Capset {
        effective: u64,
        permitted: u64,
        inheritable: u64,
    },
    Ambient(Vec<u32>),
    NoNewPrivs,
    Landlock(Ruleset),
    /// Reset the launcher's signal dispositions and mask.
    Signals,
    /// Detached (`kakoi oci create`): tell the launcher the container is created, then
    /// wait until `kakoi oci start` opens this FIFO.
    AwaitStart(std::path::PathBuf),
    Exec(Vec<String>),
    /// Detached: once the child waits for its start, leave it (and its cgroups) running.
    Created,
}

/// The plan: the steps in the order they happen (the launcher's and the child's
/// interleaved where they synchronise: "go").
#[derive(Clone, Debug)]
pub struct Plan {
    pub policy: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub steps: Vec<Step>,
    /// Things the plan cannot do on this host, with what the policy says about them.
    pub warnings: Vec<String>,
}

fn caps(mask: u64) -> String {
    let names: Vec<&str> = (0..64)
        .filter(|c| mask & (1u64 << c) != 0)
        .map(|c| policy_lang::catalogue::capability_name(c).unwrap_or("?"))
        .collect();
    names.join(" ")
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}G", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n => n.to_string(),
    }
}

fn limit(n: u64) -> String {
    if n == u64::MAX {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

impl Step {
    pub fn by(&self) -> By {
        use Step::*;
        match self {
            Lease(_)
            | Nat(_)
            | Publish(_)
            | Preflight
            | Cgroup(_)
            | Clone { .. }
            | NetAside
            | Rlimits(_)
            | OomScoreAdj(_)
            | IdMaps(_)
            | Idmapped(_)
            | HostVeth(_)
            | Macvlan(_)
            | Go
            | Supervise { .. }
            | Created => By::Parent,
            _ => By::Child,
        }
    }

    /// Why the step comes where it does.
    pub fn why(&self) -> &'static str {
        use Step::*;
        match self {
            Lease(_) => "before the clone, so the child configures it; given back on every exit path",
            Nat(_) => "outbound traffic needs the host's address (`nat on`)",
            Publish(_) => "the address is leased before the clone, so the rules exist before the payload listens",
            Preflight => "nothing of the launcher leaks into the payload (CVE-2024-21626); a closed descriptor is opened on /dev/null before a pipe takes its number",
            Cgroup(_) => "every later step, and the payload from its first instruction, is accounted",
            Clone { .. } => "no window outside the cgroup; the cgroup namespace root is the sandbox's own cgroup",
            NetAside => "the costliest namespace is made while the child builds its root",
            Rlimits(_) => "raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace",
            OomScoreAdj(_) => "lowering it needs CAP_SYS_RESOURCE in the initial user namespace: the launcher writes it",
            Sysctl(_) => "from inside the namespaces they belong to, while /proc/sys is still writable",
            IdMaps(_) => "the child blocks on a pipe until its identity exists",
            Idmapped(_) => "idmapping a host file system needs CAP_SYS_ADMIN in the initial user namespace",
            HostVeth(_) | Macvlan(_) => "the network namespace must exist before its interfaces",
            Go => "the child's steps that need the launcher's set-up wait for it",
            Supervise { .. } => "nothing of the sandbox outlives it",
            DieWith(Parent::Launcher) => "the sandbox dies with the launcher (checked after setting: it may have died before)",
            DieWith(Parent::Init) => "a change of ids cleared the parent-death signal",
            Undumpable => "nothing can ptrace privileged set-up (CVE-2016-8659)",
            LoginUid(_) => "an unset login uid could be set to anything by the payload",
            Session => "a new session cannot type into the caller's terminal (TIOCSTI)",
            AwaitGo => "EOF: the launcher died, and the child exits",
            ReceiveIdmapped(_) => "the launcher made them once the user namespace existed",
            EnterUserNs { .. } => "the clone kept the host's ids, which the maps may not cover",
            Join(_) => "user first: it decides what the others may do",
            UnshareCgroup => "once the child is in every cgroup: their root is the namespace's root",
            UnshareTime(_) => "offsets are written before any process is inside; they apply to children",
            ForkInit { .. } => "kakoi's init is pid 1: it forwards signals and reaps (one Ctrl-C stops the payload)",
            Hostname(_) => "in the sandbox's own UTS namespace",
            JoinNet | Loopback => "a network namespace starts with lo down",
            Eth0 { .. } => "the launcher moved the interface in",
            Root { .. } => "destinations resolved inside the new root with openat2(RESOLVE_IN_ROOT) (CVE-2021-30465); symlinked /proc or /sys refused (CVE-2023-27561); masks after the pivot (CVE-2025-31133); never chroot alone",
            AppArmor(_) => "labels take effect at execve; procfs is checked with fstatfs (CVE-2019-16884)",
            SELinux(_) => "labels take effect at execve; without a trailing newline, or the write does nothing",
            Chdir(_) => "no host cwd may leak into the payload (CVE-2024-21626)",
            Stdio { .. } => "the payload's descriptors 0-2 only; a terminal of the sandbox's own devpts",
            Cloexec => "no host fd may leak into the payload (CVE-2024-21626)",
            Lookup(_) => "the command is looked up inside the sandbox, after pivot_root",
            Seccomp(s) if s.before_caps => "without no_new_privs, installing a filter needs CAP_SYS_ADMIN: before the drop",
            Seccomp(_) => "the last syscall before exec: the filter must only allow execve",
            Bounding(_) => "while CAP_SETPCAP is held",
            KeepCaps(true) => "the permitted set survives the change of ids",
            KeepCaps(false) => "cleared once the sets are final",
            Groups(_) | Gid(_) | Uid(_) => "groups and group before the user: afterwards they could not be changed",
            Capset { .. } => "exactly the policy's sets; inheritable empty unless asked (CVE-2022-29162)",
            Ambient(_) => "cleared, then only the policy's",
            NoNewPrivs => "from here setuid and file-capability binaries gain nothing",
            Landlock(_) => "after every mount: a Landlocked thread may not change its mount topology",
            Signals => "only ignored dispositions survive an execve; the launcher's mask must not",
            AwaitStart(_) => "the OCI lifecycle: `create` sets the container up, `start` runs the command; before the last filter, which must only allow execve",
            Created => "`create` returns with the container waiting for `start`",
            Exec(_) => "a failure before this is reported to the parent as (step, errno) and exit 125/126/127",
        }
    }
}

/// Where the sandbox's cgroup goes in the hierarchy at `mount`.
fn leaf(layout: &Layout, mount: &str) -> String {
    match layout.parent(mount) {
        Some(p) => format!("{}/kakoi-<pid>-<start>", p.display()),
        None => "nowhere: the launcher's cgroup is outside this mount".into(),
    }
}

impl fmt::Display for CgroupStep {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Some(layout) = &self.layout else {
            let files: Vec<String> = self
                .limits
                .iter()
                .map(|l| {
                    let v: Vec<String> = l.v2.iter().map(|(f, v)| format!("{f}={v}")).collect();
                    format!("{} [{}]", l.controller, v.join(", "))
                })
                .collect();
            return write!(
                f,
                "create the cgroup (below {}) and write its limits: {}; then write the child's pid into each cgroup before it runs",
                self.parent.as_deref().unwrap_or("the launcher's own cgroup"),
                if files.is_empty() { "none".into() } else { files.join("; ") }
            );
        };
        let mut parts = Vec::new();
        let mut any_v1 = false;
        for l in &self.limits {
            let (files, version, mount) = match layout.controllers.get(l.controller) {
                Some(Hierarchy::V2 { mount }) => (&l.v2, "v2", mount),
                Some(Hierarchy::V1 { mount }) => {
                    any_v1 = true;
                    (&l.v1, "v1", mount)
                }
                None => continue,
            };
            let written: Vec<String> = files.iter().map(|(f, v)| format!("{f}={v}")).collect();
            parts.push(format!(
                "{} ({version}, {})",
                written.join(", "),
                leaf(layout, mount)
            ));
        }
        if parts.is_empty() {
            let where_ = match &layout.unified {
                Some(m) => leaf(layout, m),
                None => "each hierarchy".into(),
            };
            write!(f, "create the cgroup ({where_}): no limits")?;
        } else {
            write!(
                f,
                "create the cgroup and write its limits: {}",
                parts.join(", ")
            )?;
        }
        if any_v1 {
            write!(f, "; on v1, an idle cgroup with the same limits is taken from the pool instead (renamed)")?;
        }
        if self.after_clone {
            write!(
                f,
                "; then write the child's pid into each cgroup before it runs"
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        use Step::*;
        match self {
            Lease(v) => match v.address {
                Some(a) => write!(f, "lease the address {a}/{} (refused if a running sandbox holds it)", v.prefix),
                None => write!(f, "lease the first free address of {}/{} (in {})", v.network, v.prefix, super::net::LEASES),
            },
            Nat(v) => write!(f, "nftables table `ip kakoi`: masquerade {}/{} to other networks (kept); net.ipv4.ip_forward=1", v.network, v.prefix),
            Publish(ports) => {
                let p: Vec<String> = ports
                    .iter()
                    .map(|x| format!("{} {} -> {}", if x.udp { "udp" } else { "tcp" }, x.host, x.sandbox))
                    .collect();
                write!(f, "nftables table `ip kakoi`: DNAT the host's own addresses' {} to the sandbox's address (prerouting and output; removed when the sandbox ends)", p.join(", "))
            }
            Preflight => write!(f, "set up the payload's stdio (relay pipes or a terminal); mark every fd from 3 CLOEXEC"),
            Cgroup(c) => c.fmt(f),
            Clone { new, net_aside, into_cgroup, early } => {
                let names: Vec<&str> = new.iter().map(|k| k.name()).collect();
                write!(
                    f,
                    "clone3 with new {} namespaces, CLONE_PIDFD{}{}{}",
                    if names.is_empty() { "(no)".into() } else { names.join(", ") },
                    if *into_cgroup { ", CLONE_INTO_CGROUP (the v2 leaf)" } else { "" },
                    if *net_aside { "; the network namespace is made by the launcher meanwhile" } else { "" },
                    if *early { "; the child builds the sandbox before \"go\" (moved to another CPU meanwhile)" } else { "" }
                )
            }
            NetAside => write!(f, "create the network namespace (lo up) and pass it to the child over a socket"),
            OomScoreAdj(n) => write!(f, "oom_score_adj {n}"),
            Sysctl(kv) => write!(
                f,
                "sysctl {}",
                kv.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Rlimits(r) => {
                let l: Vec<String> = r.iter().map(|r| format!("{}={}/{}", r.name, limit(r.soft), limit(r.hard))).collect();
                write!(f, "set rlimits: {}", l.join(", "))
            }
            IdMaps(m) => {
                let text = |m: &[policy_lang::ir::IdMap]| -> String {
                    m.iter().map(|e| format!("{} {} {}", e.inside, e.outside, e.count)).collect::<Vec<_>>().join("; ")
                };
                write!(
                    f,
                    "{}uid_map `{}`, gid_map `{}`{}",
                    if m.helper { "" } else { "setgroups=deny (unprivileged), then " },
                    text(&m.uid),
                    text(&m.gid),
                    if m.helper { " through newuidmap/newgidmap" } else { "" }
                )
            }
            Idmapped(b) => write!(f, "make {} idmapped bind(s) ({}): open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) with the sandbox's user namespace; pass them to the child over SCM_RIGHTS", b.len(), b.iter().map(|b| b.source.as_str()).collect::<Vec<_>>().join(", ")),
            HostVeth(v) => match &v.bridge {
                Some(b) => write!(f, "create a veth pair, move one end into the sandbox as eth0, attach the other to bridge {b} (made if missing, with {}/{}, and kept), up", v.gateway, v.prefix),
                None => write!(f, "create a veth pair, move one end into the sandbox as eth0, give the other {} peer the sandbox's address (a point-to-point link), up", v.gateway),
            },
            Macvlan(parent) => write!(f, "make a bridge-mode macvlan on {parent} as the sandbox's eth0"),
            Go => write!(f, "give the child its CPUs back; \"go\", with the signals to reset before exec"),
            Supervise { timeout_ms, bare_pid1, .. } => {
                write!(f, "supervise: pidfd wait, forward signals")?;
                if *bare_pid1 {
                    write!(f, " (a second interrupt is SIGKILL: the payload is pid 1 without kakoi's init)")?;
                }
                if let Some(t) = timeout_ms {
                    write!(f, ", kill after {t} ms")?;
                }
                write!(f, "; exit with the payload's status (128+signal); kill and remove the cgroup (a clean v1 one goes back to the pool), the published-port rules, the lease and any host veth")
            }
            DieWith(Parent::Launcher) => write!(f, "PR_SET_PDEATHSIG(SIGKILL), then check the launcher's pidfd"),
            DieWith(Parent::Init) => write!(f, "PR_SET_PDEATHSIG(SIGKILL) again, then check the init is still the parent"),
            Undumpable => write!(f, "PR_SET_DUMPABLE 0"),
            LoginUid(Some(u)) => write!(f, "set the audit login uid to {u} if unset"),
            LoginUid(None) => write!(f, "leave the audit login uid (the launcher's user is not mapped)"),
            Session => write!(f, "setsid"),
            AwaitGo => write!(f, "wait for the launcher's \"go\""),
            ReceiveIdmapped(n) => write!(f, "receive {n} idmapped bind(s)"),
            EnterUserNs { uid, gid } => write!(f, "setresgid {gid}, setresuid {uid} in the new user namespace"),
            Join(j) => {
                let l: Vec<String> = j.iter().map(|(k, p)| format!("{} ({p})", k.name())).collect();
                write!(f, "setns into {}", l.join(", "))
            }
            UnshareCgroup => write!(f, "unshare(CLONE_NEWCGROUP)"),
            UnshareTime(o) => {
                let l: Vec<String> = o.iter().map(|(c, s)| format!("{c} {s}s")).collect();
                write!(f, "unshare(CLONE_NEWTIME), write offsets [{}]", l.join(", "))
            }
            ForkInit { subreaper } => write!(f, "fork: this process stays as the sandbox's init{}, the child goes on to be the payload", if *subreaper { " (a subreaper: no pid namespace)" } else { " (pid 1)" }),
            Hostname(h) => write!(f, "sethostname({h})"),
            JoinNet => write!(f, "join the network namespace the launcher made"),
            Loopback => write!(f, "bring lo up"),
            Eth0 { address, gateway } => {
                write!(f, "eth0: address {}, up", address.as_deref().unwrap_or("(the leased one)"))?;
                if let Some(g) = gateway {
                    write!(f, ", default route via {g}")?;
                }
                Ok(())
            }
            Root { root, join_net } => fmt_root(root, *join_net, f),
            AppArmor(p) => write!(f, "AppArmor: write `exec {p}` to /proc/thread-self/attr/apparmor/exec (verified procfs)"),
            SELinux(l) => write!(f, "SELinux: write `{l}` to attr/keycreate and attr/exec (verified procfs)"),
            Chdir(c) => write!(f, "chdir({c}); refuse a working directory outside the sandbox"),
            Stdio { uid, gid } => write!(f, "install the payload's stdio (a terminal is chowned to {uid}:{gid}, made controlling, its master sent to the launcher)"),
            Cloexec => write!(f, "CLOEXEC sweep from fd 3"),
            Lookup(a) => write!(f, "look up `{a}` in the sandbox's PATH"),
            Seccomp(s) => write!(
                f,
                "seccomp(SECCOMP_SET_MODE_FILTER) with the precompiled program ({} instructions; {}; flags {:#x})",
                s.program.len() / 8,
                s.abis.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "),
                s.flags
            ),
            Bounding(m) => write!(f, "drop the bounding set to [{}]", caps(*m)),
            KeepCaps(on) => write!(f, "PR_SET_KEEPCAPS {}", u8::from(*on)),
            Groups(g) => write!(f, "setgroups {g:?}"),
            Gid(g) => write!(f, "setresgid {g}"),
            Uid(u) => write!(f, "setresuid {u}"),
            Capset { effective, permitted, inheritable } => write!(f, "capset permitted [{}], effective [{}], inheritable [{}]", caps(*permitted), caps(*effective), caps(*inheritable)),
            Ambient(a) => write!(f, "clear the ambient set, raise [{}]", a.iter().map(|c| policy_lang::catalogue::capability_name(*c).unwrap_or("?")).collect::<Vec<_>>().join(" ")),
            NoNewPrivs => write!(f, "PR_SET_NO_NEW_PRIVS"),
            Landlock(l) if l.is_empty() => write!(f, "Landlock: no rules (nothing to restrict)"),
            Landlock(l) => write!(f, "Landlock (ABI {}, {:?}): {} path rules, {} port rules", l.abi, l.enforcement, l.paths.len(), l.ports.len()),
            Signals => write!(f, "reset signal dispositions; unblock signals"),
            AwaitStart(fifo) => write!(f, "report \"created\", then wait for `start` on {}", fifo.display()),
            Created => write!(f, "wait for the child's \"created\"; leave it and its cgroups running (no parent-death signal to the launcher)"),
            Exec(argv) => write!(f, "execve({})", argv.join(" ")),
        }
    }
}

fn fmt_root(r: &Root, join_net: bool, f: &mut fmt::Formatter) -> fmt::Result {
    use policy_lang::ir::{Propagation, Rootfs};
    let fs = &r.fs;
    let overlay_root = fs.overlays.iter().any(|o| o.target == "/");
    let root = match &fs.rootfs {
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
    let prop = match fs.propagation {
        Propagation::Private => "rprivate",
        Propagation::Slave => "rslave",
    };
    let mut parts = vec![format!("make / {prop}; build the new root: {root}")];
    for o in &fs.overlays {
        parts.push(format!(
            "overlay on {}: lower {}, upper {}",
            o.target,
            o.lower.join(":"),
            o.upper.as_deref().unwrap_or("tmpfs")
        ));
    }
    for b in &fs.binds {
        parts.push(format!(
            "bind {} -> {} ({}{}, nodev{})",
            b.source,
            b.target,
            if b.readonly { "ro" } else { "rw" },
            if b.idmap { ", idmapped" } else { "" },
            if b.suid { "" } else { ", nosuid" }
        ));
    }
    for t in &fs.tmpfs {
        parts.push(format!(
            "tmpfs on {}{}",
            t.target,
            t.size
                .map(|n| format!(" size={}", size(n)))
                .unwrap_or_default()
        ));
    }
    parts.push(
        "fresh /proc; minimal /dev (null, zero, full, random, urandom, tty, devpts newinstance)"
            .into(),
    );
    parts.push(
        "pivot_root(\".\", \".\"), make the old root private, umount2(MNT_DETACH), chdir(\"/\")"
            .into(),
    );
    if !fs.masked.is_empty() || !fs.readonly.is_empty() {
        parts.push(format!(
            "mask {} paths with the verified /dev/null; remount {} paths read-only",
            fs.masked.len(),
            fs.readonly.len()
        ));
    }
    parts.push(if join_net {
        "join the network namespace the launcher made, then /sys read-only (it shows the mounter's network namespace)".into()
    } else {
        "/sys read-only".into()
    });
    write!(f, "{}", parts.join("; "))
}

/// A step as printed: who, what, why.
#[derive(Serialize)]
struct Printed<'a> {
    by: By,
    what: String,
    why: &'a str,
}

impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct P<'a> {
            policy: &'a str,
            argv: &'a [String],
            steps: Vec<Printed<'a>>,
            warnings: &'a [String],
        }
        P {
            policy: &self.policy,
            argv: &self.argv,
            steps: self
                .steps
                .iter()
                .map(|st| Printed {
                    by: st.by(),
                    what: st.to_string(),
                    why: st.why(),
                })
                .collect(),
            warnings: &self.warnings,
        }
        .serialize(s)
    }
}

/// What the plan is built from besides the policy: what `run::prepare` settled (the
/// compiled programs, the labels that apply on this host, the id maps).
pub struct Inputs {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// The precompiled seccomp program for this host (`None`: `seccomp off`).
    pub seccomp: Option<Vec<u8>>,
    pub landlock: Ruleset,
    /// The AppArmor profile to apply (`None`: none, or the LSM is absent and optional).
    pub apparmor: Option<String>,
    pub selinux: Option<String>,
    /// The cgroup layout, when read before the launch (`None`: read after the clone).
    pub layout: Option<Layout>,
    pub cgroup_parent: Option<String>,
    /// Detached (an OCI runtime's `create`): the FIFO `start` opens, and the exact cgroup
    /// name (no launcher pid in it: the cgroup outlives the launcher).
    pub detach: Option<Detach>,
}

/// How a detached launch waits for its start.
#[derive(Clone, Debug)]
pub struct Detach {
    pub fifo: std::path::PathBuf,
    /// The cgroup's own name, below `cgroup_parent`.
    pub cgroup_name: String,
    /// The config mounts mqueue on /dev/mqueue.
    pub mqueue: bool,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// `linux.sysctl`: namespaced kernel parameters (checked by the translation).
    pub sysctl: Vec<(String, String)>,
}

/// The namespaces a launch by `facts`' user makes: the policy's, with a user namespace
/// added without root.
pub fn namespaces(p: &Policy, facts: &Facts) -> Namespaces {
    let mut ns = p.namespaces.clone();
    if (facts.uid != 0 || p.identity.rootless) && ns.get(NsKind::User) == &NsMode::Host {
        ns.0.insert(NsKind::User, NsMode::New);
    }
    ns
}

/// Whether the child can build its sandbox before the launcher's "go": nothing it does
/// then needs the launcher (no user namespace to be mapped, no namespace to join, no
/// idmapped binds to receive, no veth to configure). Its own cgroup, time and forked
/// namespaces come after "go", once the launcher has moved it into its v1 cgroups.
pub fn early(p: &Policy, ns: &Namespaces) -> bool {
    NsKind::ALL
        .iter()
        .all(|k| !matches!(ns.get(*k), NsMode::Join(_)))
        && ns.get(NsKind::User) != &NsMode::New
        && !p.filesystem.binds.iter().any(|b| b.idmap)
        && p.network.mode.eth0().is_none()
}

fn cap_mask(names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|n| policy_lang::catalogue::capability(n))
        .fold(0, |m, c| m | 1u64 << c)
}

/// The plan for running `inputs.argv` under `p` on the host `facts` describes.
pub fn build(p: &Policy, mut inputs: Inputs, facts: &Facts) -> Result<Plan, StepError> {
    let mut s = Vec::new();
    let mut warnings = Vec::new();
    let ns = namespaces(p, facts);
    let new = |k: NsKind| ns.get(k) == &NsMode::New;
    if facts.uid != 0 && p.namespaces.get(NsKind::User) == &NsMode::Host {
        warnings.push("launched without root: a user namespace is added".into());
    }

    // The launcher, before the clone: the network's host side that needs only the address.
    let veth = if new(NsKind::Net) {
        Veth::of(&p.network.mode).map_err(|m| StepError::new("veth", m))?
    } else {
        None
    };
    if let Some(v) = &veth {
        s.push(Step::Lease(v.clone()));
        if p.network.nat {
            s.push(Step::Nat(v.clone()));
        }
        if !p.network.publish.is_empty() {
            s.push(Step::Publish(p.network.publish.clone()));
        }
    }
    s.push(Step::Preflight);
    let detach = inputs.detach.take();
    let mut cgroup = cgroup_step(
        p,
        inputs.layout.take(),
        inputs.cgroup_parent.take(),
        facts,
        new(NsKind::Pid),
        &mut warnings,
    )?;
    cgroup.name = detach.as_ref().map(|d| d.cgroup_name.clone());
    let after_clone = cgroup.after_clone;
    let mut cgroup = Some(Step::Cgroup(cgroup));
    if !after_clone {
        s.extend(cgroup.take());
    }
    let early = early(p, &ns);
    let sysctl = detach
        .as_ref()
        .map(|d| d.sysctl.clone())
        .unwrap_or_default();
    // Network parameters are written from inside the network namespace before the root:
    // the clone makes it then, not the launcher meanwhile.
    let net_aside = early && new(NsKind::Net) && sysctl.is_empty();
    s.push(Step::Clone {
        new: NsKind::ALL
            .into_iter()
            .filter(|k| new(*k) && !matches!(k, NsKind::Cgroup | NsKind::Time))
            .filter(|k| !(*k == NsKind::Net && net_aside))
            .collect(),
        net_aside,
        into_cgroup: !after_clone,
        early,
    });

    // The child up to "go".
    let userns = new(NsKind::User);
    let maps = if userns {
        Some(super::ids::id_maps(p, facts.uid, facts.gid, &facts.groups)?)
    } else {
        None
    };
    if let Some(m) = maps.as_ref().filter(|m| !m.kept_groups.is_empty()) {
        warnings.push(format!(
            "the caller's supplementary groups {:?} stay with the sandbox: without a subordinate gid (/etc/subgid) and newgidmap, a user namespace cannot drop them",
            m.kept_groups
        ));
    }
    // The audit login uid is the launcher's user, as seen inside.
    let login_uid = match &maps {
        None => Some(facts.uid),
        Some(m) => m.uid.iter().find_map(|e| {
            (facts.uid >= e.outside && facts.uid - e.outside < e.count)
                .then(|| e.inside + (facts.uid - e.outside))
        }),
    };
    let root = new(NsKind::Mount).then(|| {
        let mut r = Root::of(p, &ns, facts.selinux);
        r.mqueue = detach.as_ref().is_some_and(|d| d.mqueue);
        Box::new(r)
    });
    if root.is_none() {
        warnings.push("no mount namespace: the payload sees the host's file system".into());
    }
    let sandbox = Sandbox {
        p,
        ns: &ns,
        root,
        veth: veth.as_ref(),
        sysctl,
    };
    s.push(Step::DieWith(Parent::Launcher));
    let joins: Vec<(NsKind, String)> = {
        let mut j: Vec<(NsKind, String)> = NsKind::ALL
            .into_iter()
            .filter_map(|k| match ns.get(k) {
                NsMode::Join(path) => Some((k, path.clone())),
                _ => None,
            })
            .collect();
        j.sort_by_key(|(k, _)| *k != NsKind::User);
        j
    };
    let after_go = child_until_go(
        &sandbox, early, net_aside, login_uid, userns, &joins, facts, &mut s,
    );

    // The launcher after the clone, up to "go".
    if net_aside {
        s.push(Step::NetAside);
    }
    s.extend(cgroup.take());
    launcher_setup(p, maps, veth.as_ref(), userns, new(NsKind::Net), &mut s)?;
    if let Some(n) = detach.as_ref().and_then(|d| d.oom_score_adj) {
        s.push(Step::OomScoreAdj(n));
    }
    s.push(Step::Go);
    s.extend(after_go);

    // The child after "go": the init, the rest of the sandbox, then the payload's own
    // process: labels, credentials, Landlock, seccomp, exec.
    let joined_fork = joins
        .iter()
        .any(|(k, _)| matches!(k, NsKind::Pid | NsKind::Time));
    let init = p.process.init || new(NsKind::Time) || (!early && joined_fork);
    if init {
        s.push(Step::ForkInit {
            subreaper: !new(NsKind::Pid),
        });
    }
    if !early {
        sandbox.isolate(&mut s, false);
    }
    let (argv, env) = (inputs.argv.clone(), std::mem::take(&mut inputs.env));
    payload_steps(p, inputs, facts, init, &mut s, &mut warnings);
    match detach {
        None => s.push(Step::Supervise {
            timeout_ms: p.process.timeout_ms,
            bare_pid1: !init && new(NsKind::Pid),
            pid_ns: new(NsKind::Pid),
        }),
        Some(d) => {
            if init {
                return Err(StepError::new(
                    "create",
                    "a detached container runs its command as its first process: no init, no time namespace, no joined pid namespace",
                ));
            }
            // Nothing dies with the launcher: `create` exits and the container goes on.
            s.retain(|st| !matches!(st, Step::DieWith(_)));
            let at = s
                .iter()
                .position(|st| matches!(st, Step::Signals))
                .map_or(s.len(), |i| i + 1);
            s.insert(at, Step::AwaitStart(d.fifo));
            s.push(Step::Created);
        }
    }
    Ok(Plan {
        policy: p.name.clone(),
        argv,
        env,
        steps: s,
        warnings,
    })
}

/// The payload's own process, after the init's fork: labels, working directory, stdio,
/// seccomp (first without no_new_privs), credentials, Landlock, seccomp, exec.
fn payload_steps(
    p: &Policy,
    inputs: Inputs,
    facts: &Facts,
    init: bool,
    s: &mut Vec<Step>,
    warnings: &mut Vec<String>,
) {
    if let Some(a) = inputs.apparmor {
        s.push(Step::AppArmor(a));
    }
    if let Some(l) = inputs.selinux {
        s.push(Step::SELinux(l));
    }
    s.push(Step::Chdir(p.process.cwd.clone()));
    let id = &p.identity;
    let (user, group) = (id.user.unwrap_or(0), id.group.unwrap_or(0));
    s.push(Step::Stdio {
        uid: user,
        gid: group,
    });
    s.push(Step::Cloexec);
    let argv0 = inputs.argv.first().cloned().unwrap_or_default();
    s.push(Step::Lookup(argv0));
    let nnp = p.process.no_new_privs;
    let seccomp = inputs.seccomp.map(|program| Seccomp {
        program,
        flags: super::run::seccomp_flags(&p.seccomp.flags) as u64,
        abis: facts
            .arch
            .abis()
            .iter()
            .filter(|a| p.seccomp.arches.contains(a))
            .copied()
            .collect(),
        before_caps: !nnp,
    });
    if !nnp {
        s.extend(seccomp.clone().map(Step::Seccomp));
        warnings
            .push("no_new_privs is off: setuid binaries in the sandbox can gain privileges".into());
    }
    let c = &p.capabilities;
    s.push(Step::Bounding(cap_mask(&c.bounding)));
    s.push(Step::KeepCaps(true));
    s.push(Step::Groups(id.groups.clone()));
    s.push(Step::Gid(group));
    s.push(Step::Uid(user));
    s.push(Step::DieWith(if init {
        Parent::Init
    } else {
        Parent::Launcher
    }));
    s.push(Step::Capset {
        effective: cap_mask(&c.effective),
        permitted: cap_mask(&c.permitted),
        inheritable: cap_mask(&c.inheritable),
    });
    s.push(Step::Ambient(
        c.ambient
            .iter()
            .filter_map(|a| policy_lang::catalogue::capability(a))
            .collect(),
    ));
    s.push(Step::KeepCaps(false));
    if nnp {
        s.push(Step::NoNewPrivs);
    }
    s.push(Step::Landlock(inputs.landlock));
    s.push(Step::Signals);
    if nnp {
        s.extend(seccomp.map(Step::Seccomp));
    }
    s.push(Step::Exec(inputs.argv));
}

/// The cgroup step: the limits' files, on the layout when it is known now; a warning for
/// each limit whose controller this user has nowhere.
fn cgroup_step(
    p: &Policy,
    layout: Option<Layout>,
    parent: Option<String>,
    facts: &Facts,
    pid_ns: bool,
    warnings: &mut Vec<String>,
) -> Result<CgroupStep, StepError> {
    let layout = match (layout, &parent) {
        (Some(l), Some(parent)) => Some(l.under(parent).map_err(|m| StepError::new("cgroup", m))?),
        (l, _) => l,
    };
    let name = None;
    let r = &p.resources;
    let limits = super::cgroup::limits(r);
    let strict = r.cgroup == Some(Enforcement::Required);
    if let Some(layout) = &layout {
        for l in &limits {
            if !layout.controllers.contains_key(l.controller) {
                let what: Vec<String> = l.v2.iter().map(|(f, v)| format!("{f}={v}")).collect();
                warnings.push(format!(
                    "no `{}` controller is available to this user: `{}` {}",
                    l.controller,
                    what.join(", "),
                    if strict {
                        "cannot be enforced and the policy requires it (launch fails)"
                    } else {
                        "is skipped (`cgroup optional`)"
                    }
                ));
            }
        }
    }
    Ok(CgroupStep {
        limits,
        strict,
        leaf: !pid_ns,
        after_clone: facts.cgroup_v1,
        layout,
        parent,
        name,
    })
}

/// The launcher's set-up after the clone, while the child waits for "go": rlimits, id
/// maps, idmapped binds, the host side of the network.
fn launcher_setup(
    p: &Policy,
    maps: Option<Maps>,
    veth: Option<&Veth>,
    userns: bool,
    new_net: bool,
    s: &mut Vec<Step>,
) -> Result<(), StepError> {
    if !p.resources.rlimits.is_empty() {
        let mut l = Vec::new();
        for r in &p.resources.rlimits {
            let resource = policy_lang::catalogue::rlimit(&r.name)
                .ok_or_else(|| StepError::new("rlimit", format!("unknown rlimit `{}`", r.name)))?;
            l.push(Rlimit {
                name: r.name.clone(),
                resource,
                soft: r.soft,
                hard: r.hard,
            });
        }
        s.push(Step::Rlimits(l));
    }
    if let Some(m) = maps {
        s.push(Step::IdMaps(m));
    }
    let idmapped: Vec<Bind> = p
        .filesystem
        .binds
        .iter()
        .filter(|b| b.idmap)
        .cloned()
        .collect();
    if !idmapped.is_empty() {
        if !userns {
            return Err(StepError::new(
                "idmap",
                "idmapped binds need a user namespace",
            ))
            .hint("add `namespaces { user on }` with a uid-map, or drop `idmap`");
        }
        s.push(Step::Idmapped(idmapped));
    }
    if let Some(v) = veth {
        if matches!(p.network.mode, policy_lang::ir::NetMode::Veth { .. }) {
            s.push(Step::HostVeth(v.clone()));
        }
    }
    if let policy_lang::ir::NetMode::Macvlan { parent, .. } = &p.network.mode {
        if new_net {
            s.push(Step::Macvlan(parent.clone()));
        }
    }
    Ok(())
}

/// The child's steps that make the sandbox itself.
struct Sandbox<'a> {
    p: &'a Policy,
    ns: &'a Namespaces,
    root: Option<Box<Root>>,
    veth: Option<&'a Veth>,
    sysctl: Vec<(String, String)>,
}

impl Sandbox<'_> {
    fn makes(&self, k: NsKind) -> bool {
        self.ns.get(k) == &NsMode::New
    }

    /// Hostname, network and the new root. `net_aside`: the launcher makes the network
    /// namespace, joined inside the root's steps (or alone, without a mount namespace).
    fn isolate(&self, s: &mut Vec<Step>, net_aside: bool) {
        let p = self.p;
        if self.makes(NsKind::Uts) {
            if let Some(h) = &p.process.hostname {
                s.push(Step::Hostname(h.clone()));
            }
        }
        if net_aside {
            if self.root.is_none() {
                s.push(Step::JoinNet);
            }
        } else if self.makes(NsKind::Net) {
            s.push(Step::Loopback);
            if let Some((address, gateway)) = p.network.mode.eth0() {
                // A veth's address is the lease's (a fixed one is leased too).
                s.push(Step::Eth0 {
                    address: match self.veth {
                        Some(_) => None,
                        None => address.map(str::to_string),
                    },
                    gateway: match self.veth {
                        Some(v) => Some(v.gateway.to_string()),
                        None => gateway.map(str::to_string),
                    },
                });
            }
        }
        if !self.sysctl.is_empty() {
            s.push(Step::Sysctl(self.sysctl.clone()));
        }
        if let Some(root) = &self.root {
            s.push(Step::Root {
                root: root.clone(),
                join_net: net_aside,
            });
        }
    }

    /// The cgroup namespace (once in every cgroup) and the time namespace.
    fn late_namespaces(&self, s: &mut Vec<Step>) {
        if self.makes(NsKind::Cgroup) {
            s.push(Step::UnshareCgroup);
        }
        if self.makes(NsKind::Time) {
            s.push(Step::UnshareTime(self.p.process.time_offsets.clone()));
        }
    }
}

/// The child's first steps: up to "go" into `s`, and those right after it (returned):
/// its own process's set-up, its user namespace, joined namespaces, the late ones.
#[allow(clippy::too_many_arguments)]
fn child_until_go(
    sandbox: &Sandbox,
    early: bool,
    net_aside: bool,
    login_uid: Option<u32>,
    userns: bool,
    joins: &[(NsKind, String)],
    facts: &Facts,
    s: &mut Vec<Step>,
) -> Vec<Step> {
    let mut after_go = Vec::new();
    let p = sandbox.p;
    if early {
        s.push(Step::Undumpable);
        s.push(Step::LoginUid(login_uid));
        s.push(Step::Session);
        sandbox.isolate(s, net_aside);
        s.push(Step::AwaitGo);
        sandbox.late_namespaces(&mut after_go);
    } else {
        s.push(Step::AwaitGo);
        after_go.push(Step::Undumpable);
        let n = p.filesystem.binds.iter().filter(|b| b.idmap).count();
        if n > 0 {
            after_go.push(Step::ReceiveIdmapped(n));
        }
        after_go.push(Step::Session);
        if userns {
            let (uid, gid) = super::ids::entry_ids(p, facts.uid);
            after_go.push(Step::EnterUserNs { uid, gid });
            after_go.push(Step::DieWith(Parent::Launcher));
        }
        after_go.push(Step::LoginUid(login_uid));
        if !joins.is_empty() {
            after_go.push(Step::Join(joins.to_vec()));
        }
        sandbox.late_namespaces(&mut after_go);
    }

    after_go
}
