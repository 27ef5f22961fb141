//! `kakoi run`: apply a policy while creating the sandbox, then exec the payload and
//! supervise it. The order is the one in `launcher.md` (see ARCHITECTURE.md for where it
//! deviates); the child's steps are in [`child`], the system calls in [`super::sys`].

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use policy_lang::ir::{Enforcement, IdMap, Level, NetMode, NsKind, NsMode, Policy, Rootfs};

use super::cgroup::{self, Cgroup};
use super::child;
use super::error::{At, Hint, StepError};
use super::sys;
use super::trace::mark;
use crate::backends;
use crate::seccomp::{self, Host};

/// Everything the launch needs, prepared before any namespace exists.
pub struct Launch {
    pub policy: Policy,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// The precompiled seccomp program for this host (`None`: `seccomp off`).
    pub seccomp: Option<Vec<u8>>,
    pub landlock: backends::landlock::Ruleset,
    /// Whether to apply the AppArmor / SELinux labels (false: LSM absent, `optional`).
    pub apparmor: bool,
    pub selinux: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub warnings: Vec<String>,
    /// Whether the payload gets a terminal.
    pub tty: super::stdio::Tty,
    /// Where the sandbox's cgroups are made (`None`: below the launcher's own cgroup).
    pub cgroup_parent: Option<String>,
}

/// The host's machine type.
pub fn host_arch() -> Host {
    if cfg!(target_arch = "aarch64") {
        Host::Aarch64
    } else {
        Host::X86_64
    }
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
        && std::path::Path::new("/sys/kernel/security/apparmor").exists()
}

/// Whether SELinux is active on this host (selinuxfs is mounted).
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// A random MCS pair `s0:cA,cB` (A < B), as container runtimes choose one per sandbox.
fn random_level() -> String {
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    let a = u16::from_le_bytes([b[0], b[1]]) % 1024;
    let mut c = u16::from_le_bytes([b[2], b[3]]) % 1023;
    if c >= a {
        c += 1;
    }
    let (lo, hi) = if a < c { (a, c) } else { (c, a) };
    format!("s0:c{lo},c{hi}")
}

/// Check the policy against the host and compile what the child needs. Nothing is created.
pub fn prepare(
    policy: Policy,
    argv: Vec<String>,
    extra_env: Vec<String>,
    seccomp_prog: Option<Vec<u8>>,
) -> Result<Launch, StepError> {
    let mut warnings = Vec::new();
    let argv = if argv.is_empty() {
        policy.process.argv.clone()
    } else {
        argv
    };
    if argv.is_empty() {
        return Err(StepError::new("command", "no command to run"))
            .hint("give one after `--`, or set `process { argv [...] }` in the policy");
    }
    let seccomp = match seccomp_prog {
        Some(p) => Some(p),
        None if policy.seccomp.enabled => {
            let host = host_arch();
            if !policy.seccomp.arches.contains(&host.abis()[0]) {
                return Err(StepError::new(
                    "seccomp",
                    format!("the policy does not target {}", host.name()),
                ))
                .hint("add the host's architecture to `seccomp { arches [...] }`");
            }
            let prog = seccomp::compile_checked(&policy.seccomp, host, seccomp::Backend::Kakoi)
                .map_err(|e| StepError::new("compile seccomp", e.to_string()))?;
            Some(prog.bpf)
        }
        None => None,
    };
    if let Some(p) = &seccomp {
        let insns = crate::bpf::decode(p)
            .and_then(|i| crate::bpf::validate(&i).map(|()| i))
            .map_err(|e| StepError::new("validate seccomp", e.to_string()))?;
        if insns.is_empty() {
            return Err(StepError::new("validate seccomp", "empty program"));
        }
    }
    let apparmor = match &policy.apparmor {
        None => false,
        Some(_) if apparmor_enabled() => true,
        Some(a) if a.enforcement == Enforcement::Required => {
            return Err(StepError::new("apparmor", "the kernel has no AppArmor")).hint(
                "this policy says `apparmor required`; say `apparmor optional` to run without it",
            );
        }
        Some(_) => {
            warnings.push("AppArmor is not enabled in this kernel: the profile is not applied (`apparmor optional`)".into());
            false
        }
    };
    let selinux = match &policy.selinux {
        None => None,
        Some(se) if selinux_enabled() => {
            let level = match &se.level {
                Level::Fixed(l) => l.clone(),
                Level::Random => random_level(),
            };
            // The type the module defines (`kakoi_NAME.process`) unless the policy names
            // one of the system's own: the same one `selinux.cil` and `lsm.json` carry.
            let t = backends::selinux::process_type(&policy);
            Some(format!("{}:{}:{t}:{level}", se.user, se.role))
        }
        Some(se) if se.enforcement == Enforcement::Required => {
            return Err(StepError::new("selinux", "the kernel has no SELinux")).hint(
                "this policy says `selinux required`; say `selinux optional` to run without it",
            );
        }
        Some(_) => {
            warnings.push(
                "SELinux is not enabled in this kernel: the label is not applied (`selinux optional`)"
                    .into(),
            );
            None
        }
    };
    let me = std::fs::metadata("/proc/self").at("read /proc/self")?;
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = (me.uid(), me.gid());
    if uid != 0 && policy.network.mode.eth0().is_some() {
        return Err(StepError::new(
            "network",
            "a veth pair or a macvlan interface needs root on the host",
        ))
        .hint("use `network { mode none }` or `mode host` when launching without root");
    }
    let landlock = backends::landlock::generate(&policy);
    let mut env = policy.process.env.clone();
    env.extend(extra_env);
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", default_home(&policy)));
    }
    if !has(&env, "TERM") {
        if let Ok(t) = std::env::var("TERM") {
            env.push(format!("TERM={t}"));
        }
    }
    Ok(Launch {
        policy,
        argv,
        env,
        seccomp,
        landlock,
        apparmor,
        selinux,
        uid,
        gid,
        warnings,
        tty: super::stdio::Tty::Auto,
        cgroup_parent: None,
    })
}

/// `HOME` when the policy sets none: a directory that exists and the payload may write.
/// Under `rootfs host` the host's home directories are not in the sandbox, so it is the
/// sandbox's own `/tmp` tmpfs when there is one; otherwise `/root` for uid 0 (as Docker
/// sets it; the image has it) and `/` for other users.
fn default_home(policy: &Policy) -> &'static str {
    let tmp = policy.filesystem.tmpfs.iter().any(|t| t.target == "/tmp");
    if tmp && matches!(policy.filesystem.rootfs, Rootfs::Host) {
        "/tmp"
    } else if policy.identity.user.unwrap_or(0) == 0 {
        "/root"
    } else {
        "/"
    }
}

pub(super) fn clone_flag(k: NsKind) -> libc::c_int {
    match k {
        NsKind::Cgroup => libc::CLONE_NEWCGROUP,
        NsKind::Ipc => libc::CLONE_NEWIPC,
        NsKind::Mount => libc::CLONE_NEWNS,
        NsKind::Net => libc::CLONE_NEWNET,
        NsKind::Pid => libc::CLONE_NEWPID,
        NsKind::Time => libc::CLONE_NEWTIME,
        NsKind::User => libc::CLONE_NEWUSER,
        NsKind::Uts => libc::CLONE_NEWUTS,
    }
}

/// What the launch does with user namespaces and id maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
    /// Write through newuidmap/newgidmap (ranges beyond the caller's own id).
    pub helper: bool,
    /// The caller's supplementary groups that stay with the sandbox's processes: an
    /// unprivileged user namespace without a subordinate gid cannot drop them.
    pub kept_groups: Vec<u32>,
}

/// The name of the user `uid` in /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid.to_string()).then(|| name.to_string())
    })
}

/// Whether `tool` is an executable file in `$PATH`.
fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn subid_range(file: &str, user: &str, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        (who == user || who == uid.to_string())
            .then(|| Some((start.parse().ok()?, count.parse().ok()?)))?
    })
}

/// The uid and gid the launcher takes on entering the sandbox's user namespace, launched
/// by `caller`: 0, unless an unprivileged caller's map is the default one of a single id,
/// which maps the caller as the policy's user and group (root when it names none). 0 is
/// then unmapped, so the change of ids clears none of the namespace creator's capabilities.
pub fn entry_ids(p: &Policy, caller: u32) -> (u32, u32) {
    let id = &p.identity;
    let single = |m: &[IdMap]| caller != 0 && m.is_empty() && id.subids.is_none();
    (
        if single(&id.uid_map) {
            id.user.unwrap_or(0)
        } else {
            0
        },
        if single(&id.gid_map) {
            id.group.or(id.user).unwrap_or(0)
        } else {
            0
        },
    )
}

/// The uid and gid maps of the sandbox's user namespace.
pub fn id_maps(p: &Policy, uid: u32, gid: u32) -> Result<Maps, StepError> {
    let id = &p.identity;
    let mut maps = Maps {
        uid: id.uid_map.clone(),
        gid: id.gid_map.clone(),
        helper: false,
        kept_groups: Vec::new(),
    };
    if let Some(user) = &id.subids {
        let (us, uc) = subid_range("/etc/subuid", user, uid)
            .ok_or_else(|| StepError::new("id maps", format!("no /etc/subuid range for `{user}`")))
            .hint(format!(
                "add a line like `{user}:100000:65536` to /etc/subuid and /etc/subgid"
            ))?;
        let (gs, gc) = subid_range("/etc/subgid", user, uid)
            .ok_or_else(|| StepError::new("id maps", format!("no /etc/subgid range for `{user}`")))
            .hint(format!(
                "add a line like `{user}:100000:65536` to /etc/subgid"
            ))?;
        maps.uid = vec![
            IdMap {
                inside: 0,
                outside: uid,
                count: 1,
            },
            IdMap {
                inside: 1,
                outside: us,
                count: uc,
            },
        ];
        maps.gid = vec![
            IdMap {
                inside: 0,
                outside: gid,
                count: 1,
            },
            IdMap {
                inside: 1,
                outside: gs,
                count: gc,
            },
        ];
    }
    // Root keeps the host's ids (the user namespace then only confines capabilities);
    // anyone else is mapped to themselves as the policy's user and group (root when it
    // names none), as `unshare --map-user` does: `user 65534` runs without subids.
    let default_map = |own: u32, inside: u32| {
        vec![if uid == 0 {
            IdMap {
                inside: 0,
                outside: 0,
                count: u32::MAX,
            }
        } else {
            IdMap {
                inside,
                outside: own,
                count: 1,
            }
        }]
    };
    let (inside_uid, inside_gid) = entry_ids(p, uid);
    if maps.uid.is_empty() {
        maps.uid = default_map(uid, inside_uid);
    }
    if maps.gid.is_empty() {
        maps.gid = default_map(gid, inside_gid);
    }
    let own = |m: &[IdMap], me: u32| m.len() == 1 && m[0].count == 1 && m[0].outside == me;
    maps.helper = uid != 0 && !(own(&maps.uid, uid) && own(&maps.gid, gid));
    if uid != 0 && !maps.helper {
        // A gid map of one's own gid alone needs setgroups denied (newgidmap does the same
        // since CVE-2018-7169), and then the caller's supplementary groups cannot be
        // dropped: they would go on granting access inside (a member of `shadow` reads
        // /etc/shadow). One subordinate gid in the map lets newgidmap allow setgroups,
        // so the sandbox starts with the policy's groups only.
        let extra: Vec<u32> = sys::getgroups()
            .unwrap_or_default()
            .into_iter()
            .filter(|g| *g != gid)
            .collect();
        if !extra.is_empty() {
            let sub = user_name(uid)
                .and_then(|n| subid_range("/etc/subgid", &n, uid))
                .or_else(|| subid_range("/etc/subgid", &uid.to_string(), uid))
                .filter(|(_, count)| *count > 0);
            match sub {
                Some((start, _)) if in_path("newgidmap") && in_path("newuidmap") => {
                    let inside = maps
                        .gid
                        .iter()
                        .map(|m| m.inside + m.count)
                        .max()
                        .unwrap_or(1);
                    maps.gid.push(IdMap {
                        inside,
                        outside: start,
                        count: 1,
                    });
                    maps.helper = true;
                }
                _ => maps.kept_groups = extra,
            }
        }
    }
    Ok(maps)
}

fn map_text(m: &[IdMap]) -> String {
    m.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

/// Write the maps of `pid`; `launcher_uid` decides whether setgroups must be denied first.
fn write_maps(pid: i32, maps: &Maps, launcher_uid: u32) -> Result<(), StepError> {
    if maps.helper {
        for (tool, m) in [("newgidmap", &maps.gid), ("newuidmap", &maps.uid)] {
            let mut cmd = std::process::Command::new(tool);
            cmd.arg(pid.to_string());
            for e in m.iter() {
                cmd.args([
                    e.inside.to_string(),
                    e.outside.to_string(),
                    e.count.to_string(),
                ]);
            }
            let out = cmd
                .output()
                .at(format!("run {tool}"))
                .hint("install the `uidmap` package for newuidmap/newgidmap")?;
            if !out.status.success() {
                return Err(StepError::new(
                    format!("run {tool}"),
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ))
                .hint("the ranges must be granted to this user in /etc/subuid and /etc/subgid");
            }
        }
        return Ok(());
    }
    if launcher_uid != 0 {
        // An unprivileged map of one's own gid needs setgroups denied first.
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny").at("write setgroups=deny")?;
    }
    std::fs::write(format!("/proc/{pid}/gid_map"), map_text(&maps.gid))
        .at("write gid_map")
        .hint("each inside range must map to ids the launcher may use")?;
    std::fs::write(format!("/proc/{pid}/uid_map"), map_text(&maps.uid))
        .at("write uid_map")
        .hint("each inside range must map to ids the launcher may use")?;
    Ok(())
}

/// The `ip` tool of the host, for veth set-up.
pub(super) fn ip(args: &[&str]) -> Result<(), StepError> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .at(format!("ip {}", args.join(" ")))
        .hint("veth networking uses `ip` from iproute2")?;
    if !out.status.success() {
        return Err(StepError::new(
            format!("ip {}", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// The host end of the sandbox's veth pair.
fn veth_host_name(pid: i32) -> String {
    format!("kk{pid}")
}

/// How long the child polls for the parent's "go" before it blocks (see `await_go`).
pub(super) const GO_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// How the launch ended.
#[derive(Debug)]
pub enum Outcome {
    /// The payload ran; its exit code (128 + signal when killed).
    Exited {
        code: i32,
        timed_out: bool,
        oom_kills: u64,
    },
    /// A step before exec failed.
    Failed(StepError),
}

/// Run the prepared launch to the end.
pub fn run(l: &Launch) -> Outcome {
    match launch(l) {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e),
    }
}

fn launch(l: &Launch) -> Result<Outcome, StepError> {
    let rootless = l.uid != 0;
    let mut ns = l.policy.namespaces.clone();
    if rootless && ns.get(NsKind::User) == &NsMode::Host {
        ns.0.insert(NsKind::User, NsMode::New);
    }
    // `mode veth`: the network's defaults, and an address no running sandbox holds,
    // leased before the clone so the child configures it; given back when this returns.
    let veth_net = match ns.get(NsKind::Net) {
        NsMode::New => {
            super::net::Veth::of(&l.policy.network.mode).map_err(|m| StepError::new("veth", m))?
        }
        _ => None,
    };
    let lease = match &veth_net {
        Some(v) => Some(super::net::lease(
            v,
            std::path::Path::new(super::net::LEASES),
        )?),
        None => None,
    };
    let leased;
    let p = match (&veth_net, &lease) {
        (Some(v), Some(lease)) => {
            let mut q = l.policy.clone();
            if let NetMode::Veth {
                address, gateway, ..
            } = &mut q.network.mode
            {
                *address = Some(format!("{}/{}", lease.address, v.prefix));
                *gateway = Some(v.gateway.to_string());
            }
            leased = q;
            &leased
        }
        _ => &l.policy,
    };
    // Outbound NAT and published ports (nftables, kakoi's own table): before the clone,
    // the rules need only the address; the published ones go when this returns.
    let _published = match (&veth_net, &lease) {
        (Some(v), Some(lease)) => {
            if p.network.nat {
                super::net::ensure_nat(v)?;
            }
            if p.network.publish.is_empty() {
                None
            } else {
                Some(super::net::publish(lease.address, &p.network.publish)?)
            }
        }
        _ => None,
    };
    let userns = ns.get(NsKind::User) == &NsMode::New;
    let maps = if userns {
        Some(id_maps(p, l.uid, l.gid)?)
    } else {
        None
    };
    if let Some(m) = maps.as_ref().filter(|m| !m.kept_groups.is_empty()) {
        eprintln!(
            "kakoi: warning: the caller's supplementary groups {:?} stay with the sandbox: without a subordinate gid (/etc/subgid) and newgidmap, a user namespace cannot drop them",
            m.kept_groups
        );
    }

    // The audit login uid is set to the launcher's user, as seen inside (when it is
    // unset, a payload could set it to anything).
    let login_uid = match &maps {
        None => Some(l.uid),
        Some(m) => m.uid.iter().find_map(|e| {
            (l.uid >= e.outside && l.uid - e.outside < e.count)
                .then(|| e.inside + (l.uid - e.outside))
        }),
    };

    // Standard descriptors first: a closed one is opened on /dev/null before any pipe
    // below can take its number.
    let (child_stdio, mut relay) = super::stdio::prepare(l.tty).at("set up stdio")?;

    // Pre-flight: nothing of the launcher leaks into the payload (CVE-2024-21626).
    sys::cloexec_from(3).at("mark fds CLOEXEC")?;

    // cgroups. The host's layout takes a mountinfo read (some 40 µs). On a pure v2 host it
    // is read now: the v2 leaf is made before the clone and joined by `CLONE_INTO_CGROUP`.
    // On a v1 or hybrid host (/sys/fs/cgroup is a tmpfs) every cgroup is joined by writing
    // the child's pid before "go", so the parent reads it after the clone, while the child
    // works.
    let host_layout = || -> Result<cgroup::Layout, StepError> {
        let layout = cgroup::host_layout();
        match &l.cgroup_parent {
            Some(parent) => layout
                .under(parent)
                .map_err(|m| StepError::new("cgroup", m)),
            None => Ok(layout),
        }
    };
    let mut layout = if cgroup::v1_or_hybrid_host() {
        None
    } else {
        Some(host_layout()?)
    };
    let limits = cgroup::limits(&p.resources);
    let strict = p.resources.cgroup == Some(Enforcement::Required);
    let cgroup_error = |e: cgroup::Error| StepError {
        step: "cgroup".into(),
        errno: e.source.raw_os_error().unwrap_or(0),
        message: e.to_string(),
        hint: Some(if rootless {
            "without root, kakoi needs a delegated cgroup (e.g. `systemd-run --user --scope -p Delegate=yes kakoi run …`), or `cgroup optional` in the policy".into()
        } else {
            "check that the controller is mounted and enabled".into()
        }),
        stage: super::error::Stage::Setup,
    };
    let leaf = ns.get(NsKind::Pid) != &NsMode::New;
    let mut cg = match &layout {
        Some(layout) => Cgroup::create(layout, &limits, strict, leaf).map_err(cgroup_error)?,
        None => Cgroup::default(),
    };
    let v2fd: Option<OwnedFd> = match &cg.v2 {
        Some(d) => Some(
            std::fs::File::open(d)
                .map(OwnedFd::from)
                .at("open the cgroup")?,
        ),
        None => None,
    };

    // The network namespace is the costliest to create (about 0.6 ms in the kernel's
    // `setup_net`). When it would belong to the host's user namespace anyway (no user
    // namespace, the child builds its root before "go"), the parent makes it while the
    // child builds the root, and passes it over a socket; the child joins it before it
    // mounts /sys (sysfs shows the mounter's network namespace).
    let early = child::early(p, &ns);
    let net_aside = early && ns.get(NsKind::Net) == &NsMode::New;
    let net_pair = if net_aside {
        Some(sys::socketpair().at("create the namespace socket")?)
    } else {
        None
    };
    // Namespaces for clone3: cgroup and time are entered by the child itself (after it
    // is in its cgroups; time offsets must be written before any process is inside).
    let mut flags: u64 = 0;
    for k in NsKind::ALL {
        if ns.get(k) == &NsMode::New
            && !matches!(k, NsKind::Cgroup | NsKind::Time)
            && !(k == NsKind::Net && net_aside)
        {
            flags |= clone_flag(k) as u64;
        }
    }
    // Idmapped binds are made by the parent (it holds CAP_SYS_ADMIN over the host's file
    // systems) once the child's user namespace exists, and passed to the child.
    let idmapped: Vec<&policy_lang::ir::Bind> =
        p.filesystem.binds.iter().filter(|b| b.idmap).collect();
    if !idmapped.is_empty() && !userns {
        return Err(StepError::new(
            "idmap",
            "idmapped binds need a user namespace",
        ))
        .hint("add `namespaces { user on }` with a uid-map, or drop `idmap`");
    }
    let fd_pair = if idmapped.is_empty() {
        None
    } else {
        Some(sys::socketpair().at("create the descriptor socket")?)
    };
    let (go_r, go_w) = sys::pipe().at("create the sync pipe")?;
    let (err_r, err_w) = sys::pipe().at("create the error pipe")?;
    let (notes_r, notes_w) = sys::pipe().at("create the notes pipe")?;
    // The child and the init check through it that the launcher is still there.
    let me = sys::pidfd_open(sys::getpid()).at("open the launcher's pidfd")?;

    // Signals to forward are blocked from before the clone, and read from a signalfd.
    // SIGPIPE too: a relay write to a payload that closed its stdin gives EPIPE instead.
    let mut blocked: Vec<libc::c_int> = FORWARDED.to_vec();
    blocked.push(libc::SIGCHLD);
    blocked.push(libc::SIGPIPE);
    let set = sys::SigSet::of(&blocked);
    set.set_mask().at("block signals")?;
    let sfd = set.signalfd().at("create the signalfd")?;

    mark(&format!(
        "cgroup ready; clone3 flags {flags:#x}{}",
        match &cg.v2 {
            Some(d) => format!(" with CLONE_INTO_CGROUP {}", d.display()),
            None => String::new(),
        }
    ));
    // When the child builds its root while the parent does its own set-up (the network
    // namespace, v1 cgroups: hundreds of µs of kernel work each), the parent moves the
    // child to another CPU at once: the scheduler tends to start a child on its parent's
    // CPU, and the two would then take turns. The parent gives the child back the CPUs
    // it inherited just before "go", before anything of the payload's runs.
    let spread = early.then(|| sys::cpu_affinity(0).ok()).flatten();
    let forked = sys::clone3(flags, v2fd.as_ref().map(|f| f.as_fd()))
        .at("clone3")
        .hint("creating namespaces needs root, or user namespaces enabled for unprivileged users (sysctl kernel.unprivileged_userns_clone)")?;
    let (pid, pidfd) = match forked {
        sys::Forked::Child => {
            drop(go_w);
            drop(err_r);
            drop(notes_r);
            drop(sfd);
            drop(relay);
            let fds = child::Fds {
                go: go_r,
                idmapped: fd_pair.map(|(_, c)| (c, idmapped.len())),
                net: net_pair.map(|(_, c)| c),
                stdio: child_stdio,
                notes: notes_w,
                launcher: me,
                login_uid,
            };
            child::main(l, p, &ns, err_w, fds)
        }
        sys::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    // A placement hint only: the launch is correct wherever the child runs.
    let moved = spread
        .as_ref()
        .and_then(sys::cpus_but_this_one)
        .is_some_and(|others| sys::set_cpu_affinity(pid, &others).is_ok());
    // The parent keeps a read end of "go" until it writes: a child that failed early has
    // closed its own, and the write must not raise SIGPIPE.
    drop(err_w);
    drop(notes_w);
    drop(me);
    // The payload's ends of the relay pipes and of the terminal's socket.
    drop(child_stdio);

    let veth =
        matches!(p.network.mode, NetMode::Veth { .. }) && ns.get(NsKind::Net) == &NsMode::New;
    let macvlan = match &p.network.mode {
        NetMode::Macvlan { parent, .. } if ns.get(NsKind::Net) == &NsMode::New => Some(parent),
        _ => None,
    };
    // While the child builds its root (see `child::early`), the parent creates the v1
    // cgroups and moves the child into them: on v1 the move waits for an RCU grace period.
    let setup = (|| -> Result<(), StepError> {
        if let Some((sock, _)) = &net_pair {
            // First: the child waits for it before mounting /sys.
            let net = sys::new_netns()
                .at("create the network namespace")
                .hint("creating a network namespace needs CAP_SYS_ADMIN")?;
            sys::send_fds(sock.as_fd(), &[net.as_fd()]).at("pass the network namespace")?;
        }
        let layout = match layout.take() {
            Some(l) => l,
            None => {
                let l = host_layout()?;
                cg = Cgroup::create(&l, &limits, strict, leaf).map_err(cgroup_error)?;
                cg.attach_v2(pid).map_err(cgroup_error)?;
                l
            }
        };
        cg.create_v1(&layout, &limits, strict)
            .map_err(cgroup_error)?;
        cg.attach_v1(pid).map_err(cgroup_error)?;
        for r in &p.resources.rlimits {
            let res = rlimit_resource(&r.name)
                .ok_or_else(|| StepError::new("rlimit", format!("unknown rlimit `{}`", r.name)))?;
            sys::setrlimit(pid, res, r.soft, r.hard)
                .at(format!("rlimit {}", r.name))
                .hint("raising a hard limit needs CAP_SYS_RESOURCE")?;
        }
        if let Some(m) = &maps {
            write_maps(pid, m, l.uid)?;
        }
        if let Some((sock, _)) = &fd_pair {
            let userns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                .at("open the sandbox's user namespace")?;
            let root = sys::open_root().at("open /")?;
            let mut trees = Vec::new();
            for b in &idmapped {
                let src = CString::new(b.source.as_str()).unwrap_or_default();
                let t = sys::open_tree(
                    root.as_fd(),
                    &src,
                    sys::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32,
                )
                .at(format!("clone bind source {}", b.source))?;
                let ro = if b.readonly {
                    sys::MOUNT_ATTR_RDONLY
                } else {
                    0
                };
                let nosuid = if b.suid { 0 } else { sys::MOUNT_ATTR_NOSUID };
                sys::mount_setattr(t.as_fd(), true, sys::MOUNT_ATTR_IDMAP | sys::MOUNT_ATTR_NODEV | nosuid | ro, 0, Some(userns.as_fd()))
                    .at(format!("idmap bind {}", b.source))
                    .hint("idmapped mounts need root on the host and a file system that supports them (ext4, xfs, btrfs, tmpfs, overlayfs)")?;
                trees.push(t);
            }
            let borrowed: Vec<_> = trees.iter().map(|t| t.as_fd()).collect();
            sys::send_fds(sock.as_fd(), &borrowed).at("pass the idmapped binds")?;
        }
        if let (Some(v), Some(lease)) = (&veth_net, &lease) {
            if veth {
                let host = veth_host_name(pid);
                ip(&[
                    "link",
                    "add",
                    &host,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &pid.to_string(),
                ])?;
                match &v.bridge {
                    Some(b) => {
                        super::net::ensure_bridge(v, b)?;
                        ip(&["link", "set", &host, "master", b])?;
                    }
                    // No bridge: a point-to-point link, the gateway's address on this
                    // end with the sandbox's as its peer.
                    None => ip(&[
                        "addr",
                        "add",
                        &v.gateway.to_string(),
                        "peer",
                        &format!("{}/32", lease.address),
                        "dev",
                        &host,
                    ])?,
                }
                ip(&["link", "set", &host, "up"])?;
            }
        }
        if let Some(parent) = macvlan {
            // Made straight in the sandbox's network namespace, as its eth0 (a bridge-mode
            // macvlan: the sandbox is one more host on the parent's network).
            ip(&[
                "link",
                "add",
                "link",
                parent,
                "name",
                "eth0",
                "netns",
                &pid.to_string(),
                "type",
                "macvlan",
                "mode",
                "bridge",
            ])
            .map_err(|e| {
                e.with_hint(format!("the parent link `{parent}` must exist on the host"))
            })?;
        }
        if let Some(cpus) = spread.as_ref().filter(|_| moved) {
            // Every CPU the launcher could use, for the payload (see `spread`).
            sys::set_cpu_affinity(pid, cpus).at("restore the child's CPU affinity")?;
        }
        Ok(())
    })();
    let cleanup_veth = || {
        if veth {
            // Not /sys/class/net: sysfs may belong to another network namespace (nsenter
            // switches only the network); an absent link is just an error ignored here.
            let _ = ip(&["link", "del", &veth_host_name(pid)]);
        }
    };
    if let Err(e) = setup {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::wait_pidfd(pidfd.as_fd());
        cleanup_veth();
        // A step the child failed before "go" explains the parent's failure better.
        let mut report = Vec::new();
        let _ = std::fs::File::from(err_r).read_to_end(&mut report);
        return Err(StepError::decode(&report).unwrap_or(e));
    }
    for s in &cg.skipped {
        eprintln!("kakoi: warning: cgroup limit not applied (`cgroup optional`): {s}");
    }
    mark("parent set-up done (v1 cgroups, rlimits, maps, veth)");
    // Go, with the signals the child must reset before execve (it inherited the launcher's
    // dispositions; only ignored ones survive an execve), found here while it works.
    let mut go = [b'g'; 9];
    go[1..].copy_from_slice(&sys::ignored_signals().to_le_bytes());
    let _ = std::fs::File::from(go_w).write_all(&go);
    drop(go_r);
    cg.collect_stale();

    // The error pipe closes at exec (CLOEXEC); data means a step failed.
    let mut report = Vec::new();
    let _ = std::fs::File::from(err_r).read_to_end(&mut report);
    if !report.is_empty() {
        let _ = sys::wait_pidfd(pidfd.as_fd());
        cleanup_veth();
        let e = StepError::decode(&report).unwrap_or_else(|| {
            StepError::new("child", String::from_utf8_lossy(&report).to_string())
        });
        return Err(e);
    }

    mark("the payload is executing");
    // A terminal: its master, which the payload's process sent before its exec.
    relay.attach_terminal().at("receive the terminal")?;
    // Supervise: signals, the wall-time limit, and the relay of the standard descriptors.
    let deadline = p
        .process
        .timeout_ms
        .map(|t| Instant::now() + Duration::from_millis(t));
    let mut timed_out = false;
    let mut interrupts = 0;
    // Without kakoi's init, a payload that is pid 1 of its namespace ignores signals it
    // has no handler for: a second interrupt kills it.
    let bare_pid1 = !p.process.init && ns.get(NsKind::Pid) == &NsMode::New;
    loop {
        let wait_ms = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut interest = vec![(pidfd.as_fd(), libc::POLLIN), (sfd.as_fd(), libc::POLLIN)];
        interest.extend(relay.interest());
        let rev = sys::poll(&interest, wait_ms).at("poll")?;
        drop(interest);
        if rev[0] != 0 {
            break;
        }
        relay.ready(&rev[2..]);
        if rev[1] != 0 {
            while let Some(sig) = sys::read_signal(sfd.as_fd()) {
                match sig {
                    libc::SIGCHLD | libc::SIGPIPE => continue,
                    // The sandbox's terminal takes the caller's size; its kernel tells
                    // the foreground process group.
                    libc::SIGWINCH if relay.resize() => continue,
                    _ => {}
                }
                let sig = if bare_pid1 && matches!(sig, libc::SIGINT | libc::SIGTERM | libc::SIGHUP)
                {
                    interrupts += 1;
                    if interrupts > 1 {
                        libc::SIGKILL
                    } else {
                        sig
                    }
                } else {
                    sig
                };
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), sig);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
            timed_out = true;
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            cg.kill_all();
        }
    }
    let exit = sys::wait_pidfd(pidfd.as_fd()).at("wait for the payload")?;
    mark("the payload exited");
    let oom_kills = cg.oom_kills();
    cg.offer_for_reuse(oom_kills == 0, ns.get(NsKind::Pid) == &NsMode::New);
    drop(cg);
    // What the payload wrote before it ended; the pipes end once every process holding
    // them is gone (at once with a pid namespace, whose processes die with its init).
    relay.drain(Duration::from_millis(250));
    cleanup_veth();
    let mut notes = String::new();
    let _ = std::fs::File::from(notes_r).read_to_string(&mut notes);
    for n in notes.lines() {
        eprintln!("kakoi: note: {n}");
    }
    mark("cleaned up");
    let code = match exit {
        sys::Exit::Code(c) => c,
        sys::Exit::Signal(s) => 128 + s,
    };
    Ok(Outcome::Exited {
        code,
        timed_out,
        oom_kills,
    })
}

/// The `seccomp(2)` flags of the policy's `flags`, as libseccomp would set them.
pub(super) fn seccomp_flags(flags: &[policy_lang::ir::SeccompFlag]) -> libc::c_ulong {
    use policy_lang::ir::SeccompFlag;
    flags.iter().fold(0, |f, flag| {
        f | match flag {
            SeccompFlag::Log => libc::SECCOMP_FILTER_FLAG_LOG,
            SeccompFlag::SpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            SeccompFlag::Tsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        }
    })
}

fn rlimit_resource(name: &str) -> Option<libc::c_int> {
    policy_lang::catalogue::rlimit(name).map(|r| r as libc::c_int)
}
