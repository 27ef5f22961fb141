//! The launcher's clone child: every step from the clone to `execve`.
//!
//! The clone child enters the namespaces and, in most launches, builds the new root, then
//! forks: it stays as the sandbox's init ([`super::init`]) and its child goes on to be the
//! payload (labels, working directory, standard descriptors, credentials, no_new_privs,
//! Landlock, seccomp, exec). A step that fails is reported to the launcher over the
//! `CLOEXEC` error pipe, which closes without data at the payload's exec.
//!
//! Every process here dies with the one that made it: `PR_SET_PDEATHSIG` is set first
//! thing and again after each change of credentials (which clears it), each time followed
//! by a check that the parent is still there (it may have died before the setting took).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use policy_lang::ir::{NsKind, NsMode, Policy};

use super::error::{At, Hint, StepError};
use super::run::{clone_flag, ip, Launch, GO_SPIN};
use super::stdio::{ChildStdio, Kind};
use super::sys;
use super::trace::mark;

/// What the clone child inherits from the launcher for its steps.
pub struct Fds {
    /// "go": the launcher's set-up is done (and the signals to reset before exec).
    pub go: OwnedFd,
    /// The socket the idmapped binds arrive on, and how many.
    pub idmapped: Option<(OwnedFd, usize)>,
    /// The socket the network namespace arrives on (made by the launcher meanwhile).
    pub net: Option<OwnedFd>,
    pub stdio: ChildStdio,
    /// The write end of the notes pipe: the init reports events on it.
    pub notes: OwnedFd,
    /// A pidfd of the launcher: readable once it has exited.
    pub launcher: OwnedFd,
    /// The uid the launcher's user has inside the sandbox, which the audit login uid is
    /// set to when unset (the payload cannot change it later); `None`: not mapped.
    pub login_uid: Option<u32>,
}

/// The process the current one must not outlive.
enum Parent<'a> {
    /// The launcher, through its pidfd (in a new pid namespace it has no visible pid).
    Launcher(&'a OwnedFd),
    /// The sandbox's init, by pid.
    Init(libc::pid_t),
}

/// Die with the parent: set the parent-death signal, then make sure the parent did not die
/// before it was set.
fn die_with(parent: &Parent) -> Result<(), StepError> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).at("PR_SET_PDEATHSIG")?;
    let gone = match parent {
        Parent::Launcher(fd) => sys::poll_in(&[fd.as_fd()], 0).is_ok_and(|r| r[0]),
        Parent::Init(pid) => sys::getppid() != *pid,
    };
    if gone {
        sys::exit_now(125);
    }
    Ok(())
}

/// Run the child's steps; on failure, report over `err` (the error pipe) and exit. Never
/// returns. The pipe stays open here until the payload's exec closes it (`CLOEXEC`).
/// `p` is `l.policy` with what the parent settled before the clone (a leased veth address).
pub fn main(
    l: &Launch,
    p: &policy_lang::ir::Policy,
    ns: &policy_lang::ir::Namespaces,
    err: OwnedFd,
    fds: Fds,
) -> ! {
    let e = match steps(l, p, ns, fds) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = e.exit_code();
    let _ = std::fs::File::from(err).write_all(&e.encode());
    sys::exit_now(code)
}

fn write_proc(path: &str, text: &str) -> std::io::Result<()> {
    // The handle must be on a real procfs: a /proc overmount could redirect the
    // write (CVE-2019-16884).
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    if sys::fstatfs_type(f.as_fd())? != PROC_SUPER_MAGIC {
        return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
    }
    (&f).write_all(text.as_bytes())
}

fn cap_mask(names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|n| policy_lang::catalogue::capability(n))
        .fold(0, |m, c| m | 1u64 << c)
}

fn resolve(argv0: &str, env: &[String]) -> Option<String> {
    if argv0.contains('/') {
        return Some(argv0.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/bin:/bin");
    path.split(':').map(|d| format!("{d}/{argv0}")).find(|c| {
        std::fs::metadata(c).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        })
    })
}

/// Whether the child can build its sandbox before the parent's "go": nothing it does
/// then needs the parent (no user namespace to be mapped, no namespace to join, no
/// idmapped binds to receive, no veth to configure). Its own cgroup, time and forked
/// namespaces come after "go", once the parent has moved it into its v1 cgroups.
pub fn early(p: &Policy, ns: &policy_lang::ir::Namespaces) -> bool {
    NsKind::ALL
        .iter()
        .all(|k| !matches!(ns.get(*k), NsMode::Join(_)))
        && ns.get(NsKind::User) != &NsMode::New
        && !p.filesystem.binds.iter().any(|b| b.idmap)
        && p.network.mode.eth0().is_none()
}

/// The parent's "go", with the signals the launcher ignores (see
/// [`sys::ignored_signals`]); EOF means the parent died before writing it. It is usually
/// less than [`GO_SPIN`] away (the parent's set-up and the child's root take about as
/// long), so the child polls for it that long, yielding the CPU to anything else that
/// would run, before it blocks: a blocked child is woken by an interprocessor interrupt,
/// which on a virtual machine costs about as much as the wait.
fn await_go(go: OwnedFd) -> u64 {
    let until = std::time::Instant::now() + GO_SPIN;
    while !sys::poll_in(&[go.as_fd()], 0).is_ok_and(|r| r[0]) && std::time::Instant::now() < until {
        std::thread::yield_now();
    }
    let mut b = [0u8; 9];
    if std::fs::File::from(go).read_exact(&mut b).is_err() || b[0] != b'g' {
        sys::exit_now(125);
    }
    u64::from_le_bytes(b[1..].try_into().unwrap_or_default())
}

fn new_session() -> Result<(), StepError> {
    sys::setsid()
        .at("setsid")
        .hint("a new session keeps the payload from the caller's terminal")
}

/// Join the namespaces given by path (user first: it decides what the others may do).
/// Returns whether a fork is needed for them to apply (pid, time).
fn join_namespaces(ns: &policy_lang::ir::Namespaces) -> Result<bool, StepError> {
    let mut joins: Vec<(NsKind, &String)> = NsKind::ALL
        .iter()
        .filter_map(|k| match ns.get(*k) {
            NsMode::Join(path) => Some((*k, path)),
            _ => None,
        })
        .collect();
    joins.sort_by_key(|(k, _)| *k != NsKind::User);
    let mut must_fork = false;
    for (k, path) in joins {
        let f = std::fs::File::open(path).at(format!("open {} namespace {path}", k.name()))?;
        sys::setns(f.as_fd(), clone_flag(k))
            .at(format!("join {} namespace {path}", k.name()))
            .hint("joining a namespace needs CAP_SYS_ADMIN over its owner")?;
        must_fork |= matches!(k, NsKind::Pid | NsKind::Time);
    }
    Ok(must_fork)
}

/// The cgroup namespace (rooted at the cgroups the parent moved us into) and the time
/// namespace (offsets written before any process is inside). Returns whether a fork is
/// needed for a namespace to apply (time, and a joined pid namespace).
fn enter_late_namespaces(
    p: &Policy,
    ns: &policy_lang::ir::Namespaces,
    must_fork: bool,
) -> Result<bool, StepError> {
    if ns.get(NsKind::Cgroup) == &NsMode::New {
        sys::unshare(libc::CLONE_NEWCGROUP).at("unshare the cgroup namespace")?;
    }
    if ns.get(NsKind::Time) == &NsMode::New {
        sys::unshare(libc::CLONE_NEWTIME).at("unshare the time namespace")?;
        let offs: String = p
            .process
            .time_offsets
            .iter()
            .map(|(c, o)| format!("{c} {o} 0\n"))
            .collect();
        if !offs.is_empty() {
            // /proc/self of a process that is not dumpable belongs to the host's root: an
            // unprivileged launcher could not write its own offsets. Dumpable only for
            // this write (a process of the same user could ptrace it meanwhile, which
            // gives that user nothing the user namespace it owns does not).
            sys::prctl(libc::PR_SET_DUMPABLE, 1).at("PR_SET_DUMPABLE")?;
            let w = std::fs::write("/proc/self/timens_offsets", offs).at("write time offsets");
            sys::prctl(libc::PR_SET_DUMPABLE, 0).at("PR_SET_DUMPABLE")?;
            w?;
        }
        return Ok(true);
    }
    Ok(must_fork)
}

/// Join the network namespace the parent made (its loopback is up).
fn join_net_aside(sock: OwnedFd) -> Result<(), StepError> {
    let fds = sys::recv_fds(sock.as_fd(), 1).at("receive the network namespace")?;
    let Some(net) = fds.first() else {
        // The parent failed, and reports why (or died: the socket's end of file).
        sys::exit_now(125);
    };
    sys::setns(net.as_fd(), libc::CLONE_NEWNET).at("join the network namespace")
}

/// Hostname, network and the new root. `net`: the socket the parent passes the
/// network namespace over, when it makes it.
fn isolate(
    p: &Policy,
    ns: &policy_lang::ir::Namespaces,
    idmapped: Vec<OwnedFd>,
    net: Option<OwnedFd>,
) -> Result<(), StepError> {
    if ns.get(NsKind::Uts) == &NsMode::New {
        if let Some(h) = &p.process.hostname {
            sys::sethostname(h).at("sethostname")?;
        }
    }
    if let Some(sock) = net {
        if ns.get(NsKind::Mount) == &NsMode::New {
            return super::mounts::build(p, idmapped, Some(|| join_net_aside(sock)));
        }
        join_net_aside(sock)?;
    } else if ns.get(NsKind::Net) == &NsMode::New {
        sys::link_up("lo").at("bring lo up")?;
        if let Some((address, gateway)) = p.network.mode.eth0() {
            if let Some(a) = address {
                ip(&["addr", "add", a, "dev", "eth0"])?;
            }
            ip(&["link", "set", "eth0", "up"])?;
            if let Some(g) = gateway {
                ip(&["route", "add", "default", "via", g])?;
            }
        }
    }
    if ns.get(NsKind::Mount) == &NsMode::New {
        super::mounts::build(p, idmapped, None::<fn() -> _>)?;
    }
    Ok(())
}

/// Fork the payload off; this process stays as its init ([`super::init::run`], which
/// closes its copy of the error pipe with every other descriptor: only the payload
/// reports, and its exec closes the last copy). Returns the init's pid, in the payload.
fn fork_init(ns: &policy_lang::ir::Namespaces, notes: OwnedFd) -> Result<libc::pid_t, StepError> {
    // Every signal the init forwards is blocked before the fork, so none arrives before
    // it can handle it; the payload unblocks them before its exec.
    let mut all = super::init::signals();
    all.push(libc::SIGCHLD);
    sys::SigSet::of(&all).set_mask().at("block signals")?;
    let me = sys::getpid();
    match sys::fork().at("fork the payload")? {
        Some(payload) => {
            let subreaper = ns.get(NsKind::Pid) != &NsMode::New;
            super::init::run(payload, notes, subreaper)
        }
        None => {
            drop(notes);
            Ok(me)
        }
    }
}

/// The payload's standard descriptors (see [`super::stdio`]): the relay pipes, the
/// sandbox's /dev/null, or a terminal of the sandbox's devpts whose master goes to the
/// launcher. Also makes the payload a session leader (with that terminal as its
/// controlling terminal, or with none).
fn install_stdio(stdio: ChildStdio, uid: u32, gid: u32) -> Result<(), StepError> {
    // The payload forked by the init leads a session of its own; without the init, the
    // clone child already made one (EPERM: it leads it).
    match sys::setsid() {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        r => r.at("setsid")?,
    }
    if let Some(sock) = &stdio.pty {
        let (master, slave) = sys::open_pty(c"/dev/pts/ptmx")
            .at("open a terminal")
            .hint("the sandbox's /dev/pts gives the payload its terminal (`kakoi run -T` runs without one)")?;
        // The caller's window size, from its terminal (still open here until replaced).
        let host = [0, 1].into_iter().find(|fd| sys::isatty(*fd));
        if let Some(w) = host.and_then(|fd| sys::window_size(sys::stdio(fd)).ok()) {
            let _ = sys::set_window_size(slave.as_fd(), &w);
        }
        // The payload's user may reopen its terminal (/dev/tty, ttyname).
        sys::fchown(slave.as_fd(), uid, gid).at("chown the terminal")?;
        sys::set_controlling_tty(slave.as_fd()).at("set the controlling terminal")?;
        for fd in 0..=2 {
            sys::dup2(slave.as_fd(), fd).at("give the payload its terminal")?;
        }
        sys::send_fds(sock.as_fd(), &[master.as_fd()]).at("pass the terminal to the launcher")?;
        return Ok(());
    }
    for (fd, (kind, end)) in stdio.kinds.iter().zip(stdio.ends.iter()).enumerate() {
        let fd = fd as i32;
        match (kind, end) {
            (Kind::Pass, _) => {}
            (Kind::Relay, Some(end)) => {
                sys::dup2(end.as_fd(), fd).at("give the payload its relayed stdio")?
            }
            (_, _) => {
                let null = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .at("open the sandbox's /dev/null")?;
                let st = sys::fstat(null.as_fd()).at("stat /dev/null")?;
                if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
                    return Err(StepError::new(
                        "open the sandbox's /dev/null",
                        "/dev/null is not the null device",
                    ));
                }
                sys::dup2(null.as_fd(), fd).at("give the payload /dev/null")?;
            }
        }
    }
    Ok(())
}

/// The uid the launcher's user has inside the sandbox, for the audit login uid.
fn set_login_uid(uid: Option<u32>) {
    let Some(uid) = uid else { return };
    // Unset (4294967295) only: a set login uid is the caller's session's, and stays. Once
    // set, the payload cannot change it without CAP_AUDIT_CONTROL.
    if sys::read_small(std::path::Path::new("/proc/self/loginuid"))
        .is_ok_and(|s| s.trim() == "4294967295")
    {
        let _ = std::fs::write("/proc/self/loginuid", uid.to_string());
    }
}

fn steps(
    l: &Launch,
    p: &policy_lang::ir::Policy,
    ns: &policy_lang::ir::Namespaces,
    fds: Fds,
) -> Result<std::convert::Infallible, StepError> {
    let Fds {
        go,
        idmapped,
        net,
        stdio,
        notes,
        launcher,
        login_uid,
    } = fds;
    die_with(&Parent::Launcher(&launcher))?;
    mark("child: started");
    if early(p, ns) {
        // Nothing below needs the parent: build the root while it sets up the cgroups.
        sys::prctl(libc::PR_SET_DUMPABLE, 0).at("PR_SET_DUMPABLE")?;
        set_login_uid(login_uid);
        new_session()?;
        isolate(p, ns, Vec::new(), net)?;
        mark("child: root built, waiting for the parent");
        let ignored = await_go(go);
        let must_fork = enter_late_namespaces(p, ns, false)?;
        return payload(l, p, ns, stdio, notes, launcher, ignored, must_fork, None);
    }
    let ignored = await_go(go);
    sys::prctl(libc::PR_SET_DUMPABLE, 0).at("PR_SET_DUMPABLE")?;
    let idmapped_fds = match idmapped {
        Some((sock, n)) => {
            let v = sys::recv_fds(sock.as_fd(), n).at("receive the idmapped binds")?;
            if v.len() != n {
                return Err(StepError::new(
                    "receive the idmapped binds",
                    format!("got {} of {n}", v.len()),
                ));
            }
            v
        }
        None => Vec::new(),
    };
    new_session()?;
    if ns.get(NsKind::User) == &NsMode::New {
        // Become root of the new user namespace: the clone kept the host's ids,
        // which the maps may not cover (files created with unmapped ids fail:
        // EOVERFLOW). See `entry_ids` for an unprivileged caller's map of one id.
        let (u, g) = super::run::entry_ids(p, l.uid);
        sys::setresgid(g)
            .at(format!("setresgid {g} in the user namespace"))
            .hint(format!("the gid map must map {g}"))?;
        sys::setresuid(u)
            .at(format!("setresuid {u} in the user namespace"))
            .hint(format!("the uid map must map {u}"))?;
        die_with(&Parent::Launcher(&launcher))?;
    }
    set_login_uid(login_uid);
    let joined = join_namespaces(ns)?;
    let must_fork = enter_late_namespaces(p, ns, joined)?;
    // The root is built after the init's fork: a joined pid namespace applies to
    // children only, and the fresh /proc must show it.
    payload(
        l,
        p,
        ns,
        stdio,
        notes,
        launcher,
        ignored,
        must_fork,
        Some((idmapped_fds, net)),
    )
}

/// The root's parts still to build after the fork: the idmapped binds and the network
/// namespace's socket.
type Unbuilt = Option<(Vec<OwnedFd>, Option<OwnedFd>)>;

/// From the fork of the init to the payload's exec. `fork`: a namespace needs the fork
/// even without an init.
#[allow(clippy::too_many_arguments)]
fn payload(
    l: &Launch,
    p: &Policy,
    ns: &policy_lang::ir::Namespaces,
    stdio: ChildStdio,
    notes: OwnedFd,
    launcher: OwnedFd,
    ignored: u64,
    fork: bool,
    unbuilt: Unbuilt,
) -> Result<std::convert::Infallible, StepError> {
    let init = if p.process.init || fork {
        Some(fork_init(ns, notes)?)
    } else {
        drop(notes);
        None
    };
    let parent = match init {
        Some(pid) => Parent::Init(pid),
        None => Parent::Launcher(&launcher),
    };
    if let Some((idmapped, net)) = unbuilt {
        isolate(p, ns, idmapped, net)?;
        mark("child: root built");
    }

    // LSM labels take effect at execve.
    if l.apparmor {
        if let Some(a) = &p.apparmor {
            let text = format!("exec {}", a.profile);
            write_proc("/proc/thread-self/attr/apparmor/exec", &text)
                .or_else(|_| write_proc("/proc/thread-self/attr/exec", &text))
                .at("set the AppArmor exec profile")
                .hint(format!(
                    "load the profile first: apparmor_parser -r apparmor.profile (profile `{}`)",
                    a.profile
                ))?;
        }
    }
    if let Some(label) = &l.selinux {
        write_proc("/proc/thread-self/attr/keycreate", label).at("set the SELinux key label")?;
        write_proc("/proc/thread-self/attr/exec", label)
            .at("set the SELinux exec label")
            .hint("load the module first: semodule -i, or secilc with the base policy")?;
    }

    let cwd = &p.process.cwd;
    std::env::set_current_dir(cwd).at(format!("chdir {cwd}"))?;
    let here = std::env::current_dir().at("getcwd")?;
    if !here.starts_with("/") {
        return Err(StepError::new(
            "getcwd",
            "the working directory is outside the sandbox",
        ))
        .hint("CVE-2024-21626");
    }
    let id = &p.identity;
    let user = id.user.unwrap_or(0);
    let group = id.group.unwrap_or(0);
    install_stdio(stdio, user, group)?;
    sys::cloexec_from(3).at("mark fds CLOEXEC")?;
    let exe = resolve(&l.argv[0], &l.env).ok_or_else(|| StepError {
        step: "execve".into(),
        errno: libc::ENOENT,
        message: format!("`{}` not found in the sandbox's PATH", l.argv[0]),
        hint: Some("the command is looked up inside the sandbox, after pivot_root".into()),
        stage: super::error::Stage::Exec,
    })?;

    mark("child: labels, cwd");
    let nnp = p.process.no_new_privs;
    if !nnp {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: before the drop.
        if let Some(prog) = &l.seccomp {
            sys::seccomp_filter(prog, super::run::seccomp_flags(&p.seccomp.flags))
                .at("install the seccomp filter")?;
        }
    }

    // Credentials: bounding set while CAP_SETPCAP is held, keep caps across setuid,
    // ids, then exactly the policy's sets (inheritable empty unless asked).
    let c = &p.capabilities;
    let bounding = cap_mask(&c.bounding);
    for cap in 0..64u32 {
        if bounding & (1u64 << cap) == 0 {
            match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
                // Past the kernel's last capability (no /proc read for cap_last_cap).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                r => r.at(format!("drop capability {cap} from the bounding set"))?,
            };
        }
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).at("PR_SET_KEEPCAPS")?;
    if let Err(e) = sys::setgroups(&id.groups) {
        // A user namespace may deny setgroups (its gid map was written without
        // newgidmap): fine when there are no groups to set.
        let denied =
            std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        if !denied {
            return Err(e).at("setgroups");
        }
        if !id.groups.is_empty() {
            return Err(StepError::new(
                "setgroups",
                "supplementary groups need setgroups, which this user namespace denies",
            ))
            .hint("give the user subordinate ids (`subids`) so newgidmap can allow setgroups");
        }
    }
    sys::setresgid(group)
        .at(format!("setresgid {group}"))
        .hint("the group must be mapped in the user namespace")?;
    sys::setresuid(user)
        .at(format!("setresuid {user}"))
        .hint("the user must be mapped in the user namespace")?;
    // The change of ids cleared the parent-death signal.
    die_with(&parent)?;
    sys::capset(
        cap_mask(&c.effective),
        cap_mask(&c.permitted),
        cap_mask(&c.inheritable),
    )
    .at("capset")?;
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )
    .at("clear ambient capabilities")?;
    for a in &c.ambient {
        if let Some(n) = policy_lang::catalogue::capability(a) {
            sys::prctl_ambient_raise(n).at(format!("raise ambient {a}"))?;
        }
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).at("PR_SET_KEEPCAPS")?;
    if nnp {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).at("PR_SET_NO_NEW_PRIVS")?;
    }
    mark("child: credentials");
    match crate::apply::landlock::restrict_self(&l.landlock) {
        Ok(_) => {}
        Err(e) => {
            return Err(StepError::new("landlock", e.to_string()))
                .hint("`landlock required` fails on kernels without the rights it needs; `landlock optional` degrades");
        }
    }
    mark("child: landlock");
    sys::reset_signals(ignored);
    sys::SigSet::of(&[]).set_mask().at("unblock signals")?;
    let argv: Vec<CString> = l
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = l
        .env
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_default())
        .collect();
    let path = CString::new(exe).unwrap_or_default();
    if nnp {
        if let Some(prog) = &l.seccomp {
            sys::seccomp_filter(prog, super::run::seccomp_flags(&p.seccomp.flags))
                .at("install the seccomp filter")?;
        }
    }
    let e = sys::execve(&path, &argv, &env);
    Err(e)
        .at("execve")
        .hint("the filter and the access rules must allow executing the command")
        .map_err(StepError::at_exec)
}
