//! The launcher's seam: every effect the launch has on the host and on the sandbox goes
//! through [`Os`]. [`Real`] makes the system calls (through [`super::sys`]); [`Recorder`]
//! only records them, tagged with the plan step that made them, so the launch order and
//! its values are tested without root, and a test checks that every step the plan prints
//! is the step that runs.
//!
//! Calls are as fine as the plan's steps need (each credential change is one call); the
//! new root ([`Os::build_root`]), the cgroups and the supervision loop are one call each.

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use policy_lang::ir::{Bind, NsKind, Publish};

use super::cgroup::{self, Cgroup, Layout, Limit};
use super::error::{At, Hint, StepError};
use super::ids::Maps;
use super::mounts::Root;
use super::net::{Lease, Published, Veth};
use super::stdio::{ChildStdio, Kind, ParentStdio, Tty};
use super::sys;
use crate::backends::landlock::Ruleset;

/// The process a child watches (see [`Os::parent_gone`]).
#[derive(Clone, Copy, Debug)]
pub enum Watch<'a> {
    /// The launcher, through its pidfd (in a new pid namespace it has no visible pid).
    Launcher(BorrowedFd<'a>),
    /// The sandbox's init, by pid.
    Init(libc::pid_t),
}

/// How the payload's supervision ended.
#[derive(Debug)]
pub struct Ended {
    pub exit: sys::Exit,
    pub timed_out: bool,
}

/// What the supervision loop watches.
pub struct Supervision<'a> {
    pub pidfd: BorrowedFd<'a>,
    pub signals: BorrowedFd<'a>,
    pub relay: &'a mut ParentStdio,
    pub cgroup: &'a Cgroup,
    pub timeout_ms: Option<u64>,
    pub bare_pid1: bool,
}

/// Every effect of a launch. See the module's documentation.
pub trait Os {
    /// The plan's step `index` begins: what follows is its doing.
    fn begin(&mut self, _index: usize) {}

    // The child's steps.
    fn prctl(&mut self, option: libc::c_int, arg: libc::c_ulong) -> std::io::Result<()>;
    /// Whether the watched process has died (the parent-death signal was set too late).
    fn parent_gone(&mut self, parent: Watch) -> bool;
    /// Exit at once (the parent died, or gave no "go").
    fn exit_now(&mut self, code: i32);
    fn set_login_uid(&mut self, uid: u32);
    fn setsid(&mut self) -> std::io::Result<()>;
    /// The launcher's "go" with the signals it ignores; `None`: it died first (EOF).
    fn await_go(&mut self, go: OwnedFd) -> Option<u64>;
    fn recv_fds(&mut self, sock: BorrowedFd, max: usize) -> std::io::Result<Vec<OwnedFd>>;
    fn setresgid(&mut self, gid: u32) -> std::io::Result<()>;
    fn setresuid(&mut self, uid: u32) -> std::io::Result<()>;
    fn setns(&mut self, kind: NsKind, path: &str) -> Result<(), StepError>;
    fn unshare(&mut self, flags: libc::c_int) -> std::io::Result<()>;
    fn write_time_offsets(&mut self, text: &str) -> Result<(), StepError>;
    /// Fork: the parent stays as the sandbox's init and never returns (`Real`); the child
    /// gets the init's pid.
    fn fork_init(&mut self, subreaper: bool, notes: OwnedFd) -> Result<libc::pid_t, StepError>;
    fn sethostname(&mut self, name: &str) -> std::io::Result<()>;
    /// Join the network namespace that arrives on `sock`.
    fn join_netns(&mut self, sock: OwnedFd) -> Result<(), StepError>;
    fn link_up(&mut self, name: &str) -> std::io::Result<()>;
    /// Write the kernel parameter `key` (`net.ipv4.ip_forward`) of this process's
    /// namespaces.
    fn write_sysctl(&mut self, key: &str, value: &str) -> std::io::Result<()>;
    /// Run the host's `ip` (inside the sandbox's network namespace in the child).
    fn ip(&mut self, args: &[&str]) -> Result<(), StepError>;
    fn build_root(
        &mut self,
        root: &Root,
        address: Option<&str>,
        idmapped: Vec<OwnedFd>,
        join_net: Option<OwnedFd>,
    ) -> Result<(), StepError>;
    /// Write an LSM attribute of `/proc/thread-self` (on a verified procfs).
    fn write_attr(&mut self, path: &str, text: &str) -> std::io::Result<()>;
    /// Change to `dir` and check that it is inside the sandbox.
    fn chdir(&mut self, dir: &str) -> Result<(), StepError>;
    fn install_stdio(&mut self, stdio: ChildStdio, uid: u32, gid: u32) -> Result<(), StepError>;
    fn cloexec_from(&mut self, fd: u32) -> std::io::Result<()>;
    /// The executable `argv0` names in the sandbox's `PATH` of `env`.
    fn lookup(&mut self, argv0: &str, env: &[String]) -> Option<String>;
    fn seccomp(&mut self, program: &[u8], flags: u64) -> std::io::Result<()>;
    /// Drop capability `cap` from the bounding set (`EINVAL`: past the kernel's last).
    fn drop_bounding(&mut self, cap: u32) -> std::io::Result<()>;
    fn setgroups(&mut self, groups: &[u32]) -> std::io::Result<()>;
    /// Whether the user namespace denies setgroups.
    fn setgroups_denied(&mut self) -> bool;
    fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()>;
    fn clear_ambient(&mut self) -> std::io::Result<()>;
    fn raise_ambient(&mut self, cap: u32) -> std::io::Result<()>;
    fn landlock(&mut self, rules: &Ruleset) -> Result<(), crate::apply::landlock::Error>;
    /// Reset the dispositions the launcher changed (all but `ignored`) and unblock all.
    fn reset_signals(&mut self, ignored: u64) -> std::io::Result<()>;
    /// Returns only on failure.
    fn execve(&mut self, path: &str, argv: &[String], env: &[String]) -> std::io::Error;

    // The launcher's steps.
    /// An address of `v` (and its lease, given back when dropped).
    fn lease(&mut self, v: &Veth) -> Result<(Ipv4Addr, Option<Lease>), StepError>;
    fn ensure_nat(&mut self, v: &Veth) -> Result<(), StepError>;
    fn publish(
        &mut self,
        address: Ipv4Addr,
        ports: &[Publish],
    ) -> Result<Option<Published>, StepError>;
    fn prepare_stdio(&mut self, tty: Tty) -> std::io::Result<(ChildStdio, ParentStdio)>;
    fn cgroup_layout(&mut self) -> Layout;
    /// The cgroups (`name`: their own name; `None`: this launch's `kakoi-<pid>-<start>`).
    fn cgroup_create(
        &mut self,
        layout: &Layout,
        limits: &[Limit],
        strict: bool,
        leaf: bool,
        name: Option<&str>,
    ) -> Result<Cgroup, cgroup::Error>;
    /// The v1 part of the cgroups, and the child moved into all of them.
    fn cgroup_join(
        &mut self,
        cg: &mut Cgroup,
        layout: &Layout,
        limits: &[Limit],
        strict: bool,
        pid: libc::pid_t,
        v2: bool,
    ) -> Result<(), cgroup::Error>;
    /// Block the signals the launcher forwards; their signalfd.
    fn block_signals(&mut self, signals: &[libc::c_int]) -> std::io::Result<OwnedFd>;
    fn clone3(&mut self, flags: u64, cgroup: Option<BorrowedFd>) -> std::io::Result<sys::Forked>;
    /// A new network namespace (its loopback up).
    fn new_netns(&mut self) -> std::io::Result<OwnedFd>;
    fn send_fds(&mut self, sock: BorrowedFd, fds: &[BorrowedFd]) -> std::io::Result<()>;
    fn setrlimit(
        &mut self,
        pid: libc::pid_t,
        resource: u32,
        soft: u64,
        hard: u64,
    ) -> std::io::Result<()>;
    fn write_maps(
        &mut self,
        pid: libc::pid_t,
        maps: &Maps,
        launcher_uid: u32,
    ) -> Result<(), StepError>;
    /// Idmapped copies of `binds` for the user namespace of `pid`.
    fn idmapped(&mut self, pid: libc::pid_t, binds: &[Bind]) -> Result<Vec<OwnedFd>, StepError>;
    /// Write `/proc/PID/FILE` (the child's, from the launcher).
    fn write_proc_of(&mut self, pid: libc::pid_t, file: &str, text: &str) -> std::io::Result<()>;
    fn ensure_bridge(&mut self, v: &Veth, name: &str) -> Result<(), StepError>;
    fn set_cpu_affinity(&mut self, pid: libc::pid_t, cpus: &libc::cpu_set_t)
        -> std::io::Result<()>;
    /// Write "go" with the signals the launcher ignores.
    fn go(&mut self, go: OwnedFd);
    fn kill(&mut self, pidfd: BorrowedFd, signal: libc::c_int);
    fn supervise(&mut self, s: Supervision) -> Result<Ended, StepError>;
    /// Detached: say "created" on `ready`, then wait until the other end of the FIFO
    /// (opened `O_PATH` as `fifo`) is opened by `start`.
    fn await_start(&mut self, ready: OwnedFd, fifo: OwnedFd) -> Result<(), StepError>;
    /// Detached: wait for the child's "created" on `ready` (false: it failed first).
    fn await_created(&mut self, ready: OwnedFd) -> bool;
    fn wait(&mut self, pidfd: BorrowedFd) -> std::io::Result<sys::Exit>;
}

/// The host itself.
pub struct Real;

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

/// How long the child polls for the parent's "go" before it blocks (see `await_go`).
pub(super) const GO_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

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

impl Os for Real {
    fn prctl(&mut self, option: libc::c_int, arg: libc::c_ulong) -> std::io::Result<()> {
        sys::prctl(option, arg).map(drop)
    }

    fn parent_gone(&mut self, parent: Watch) -> bool {
        match parent {
            Watch::Launcher(fd) => sys::poll_in(&[fd], 0).is_ok_and(|r| r[0]),
            Watch::Init(pid) => sys::getppid() != pid,
        }
    }

    fn exit_now(&mut self, code: i32) {
        sys::exit_now(code)
    }

    fn set_login_uid(&mut self, uid: u32) {
        // Unset (4294967295) only: a set login uid is the caller's session's, and stays.
        // Once set, the payload cannot change it without CAP_AUDIT_CONTROL.
        if sys::read_small(std::path::Path::new("/proc/self/loginuid"))
            .is_ok_and(|s| s.trim() == "4294967295")
        {
            let _ = std::fs::write("/proc/self/loginuid", uid.to_string());
        }
    }

    fn setsid(&mut self) -> std::io::Result<()> {
        sys::setsid()
    }

    /// It is usually less than [`GO_SPIN`] away (the parent's set-up and the child's root
    /// take about as long), so the child polls for it that long, yielding the CPU to
    /// anything else that would run, before it blocks: a blocked child is woken by an
    /// interprocessor interrupt, which on a virtual machine costs about as much as the
    /// wait.
    fn await_go(&mut self, go: OwnedFd) -> Option<u64> {
        let until = std::time::Instant::now() + GO_SPIN;
        while !sys::poll_in(&[go.as_fd()], 0).is_ok_and(|r| r[0])
            && std::time::Instant::now() < until
        {
            std::thread::yield_now();
        }
        let mut b = [0u8; 9];
        if std::fs::File::from(go).read_exact(&mut b).is_err() || b[0] != b'g' {
            return None;
        }
        Some(u64::from_le_bytes(b[1..].try_into().unwrap_or_default()))
    }

    fn recv_fds(&mut self, sock: BorrowedFd, max: usize) -> std::io::Result<Vec<OwnedFd>> {
        sys::recv_fds(sock, max)
    }

    fn setresgid(&mut self, gid: u32) -> std::io::Result<()> {
        sys::setresgid(gid)
    }

    fn setresuid(&mut self, uid: u32) -> std::io::Result<()> {
        sys::setresuid(uid)
    }

    fn setns(&mut self, kind: NsKind, path: &str) -> Result<(), StepError> {
        let f = std::fs::File::open(path).at(format!("open {} namespace {path}", kind.name()))?;
        sys::setns(f.as_fd(), clone_flag(kind))
            .at(format!("join {} namespace {path}", kind.name()))
            .hint("joining a namespace needs CAP_SYS_ADMIN over its owner")
    }

    fn unshare(&mut self, flags: libc::c_int) -> std::io::Result<()> {
        sys::unshare(flags)
    }

    fn write_time_offsets(&mut self, text: &str) -> Result<(), StepError> {
        // /proc/self of a process that is not dumpable belongs to the host's root: an
        // unprivileged launcher could not write its own offsets. Dumpable only for this
        // write (a process of the same user could ptrace it meanwhile, which gives that
        // user nothing the user namespace it owns does not).
        sys::prctl(libc::PR_SET_DUMPABLE, 1).at("PR_SET_DUMPABLE")?;
        let w = std::fs::write("/proc/self/timens_offsets", text).at("write time offsets");
        sys::prctl(libc::PR_SET_DUMPABLE, 0).at("PR_SET_DUMPABLE")?;
        w
    }

    fn fork_init(&mut self, subreaper: bool, notes: OwnedFd) -> Result<libc::pid_t, StepError> {
        // Every signal the init forwards is blocked before the fork, so none arrives
        // before it can handle it; the payload unblocks them before its exec.
        let mut all = super::init::signals();
        all.push(libc::SIGCHLD);
        sys::SigSet::of(&all).set_mask().at("block signals")?;
        let me = sys::getpid();
        match sys::fork().at("fork the payload")? {
            Some(payload) => super::init::run(payload, notes, subreaper),
            None => {
                drop(notes);
                Ok(me)
            }
        }
    }

    fn sethostname(&mut self, name: &str) -> std::io::Result<()> {
        sys::sethostname(name)
    }

    fn join_netns(&mut self, sock: OwnedFd) -> Result<(), StepError> {
        let fds = sys::recv_fds(sock.as_fd(), 1).at("receive the network namespace")?;
        let Some(net) = fds.first() else {
            // The parent failed, and reports why (or died: the socket's end of file).
            sys::exit_now(125);
        };
        sys::setns(net.as_fd(), libc::CLONE_NEWNET).at("join the network namespace")
    }

    fn link_up(&mut self, name: &str) -> std::io::Result<()> {
        sys::link_up(name)
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> std::io::Result<()> {
        // Dots are separators; a key holding a slash (an interface name) has it as a dot.
        let path: String = key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect();
        std::fs::write(format!("/proc/sys/{path}"), value)
    }

    fn ip(&mut self, args: &[&str]) -> Result<(), StepError> {
        ip(args)
    }

    fn build_root(
        &mut self,
        root: &Root,
        address: Option<&str>,
        idmapped: Vec<OwnedFd>,
        join_net: Option<OwnedFd>,
    ) -> Result<(), StepError> {
        match join_net {
            Some(sock) => {
                super::mounts::build(root, address, idmapped, Some(|| Real.join_netns(sock)))
            }
            None => super::mounts::build(root, address, idmapped, None::<fn() -> _>),
        }
    }

    fn write_attr(&mut self, path: &str, text: &str) -> std::io::Result<()> {
        write_proc(path, text)
    }

    fn chdir(&mut self, dir: &str) -> Result<(), StepError> {
        std::env::set_current_dir(dir).at(format!("chdir {dir}"))?;
        let here = std::env::current_dir().at("getcwd")?;
        if !here.starts_with("/") {
            return Err(StepError::new(
                "getcwd",
                "the working directory is outside the sandbox",
            ))
            .hint("CVE-2024-21626");
        }
        Ok(())
    }

    /// The payload's standard descriptors (see [`super::stdio`]): the relay pipes, the
    /// sandbox's /dev/null, or a terminal of the sandbox's devpts whose master goes to the
    /// launcher. Also makes the payload a session leader (with that terminal as its
    /// controlling terminal, or with none).
    fn install_stdio(&mut self, stdio: ChildStdio, uid: u32, gid: u32) -> Result<(), StepError> {
        // The payload forked by the init leads a session of its own; without the init,
        // the clone child already made one (EPERM: it leads it).
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
            sys::send_fds(sock.as_fd(), &[master.as_fd()])
                .at("pass the terminal to the launcher")?;
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
                    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
                        || st.st_rdev != libc::makedev(1, 3)
                    {
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

    fn cloexec_from(&mut self, fd: u32) -> std::io::Result<()> {
        sys::cloexec_from(fd)
    }

    fn lookup(&mut self, argv0: &str, env: &[String]) -> Option<String> {
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

    fn seccomp(&mut self, program: &[u8], flags: u64) -> std::io::Result<()> {
        sys::seccomp_filter(program, flags as libc::c_ulong)
    }

    fn drop_bounding(&mut self, cap: u32) -> std::io::Result<()> {
        sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong).map(drop)
    }

    fn setgroups(&mut self, groups: &[u32]) -> std::io::Result<()> {
        sys::setgroups(groups)
    }

    fn setgroups_denied(&mut self) -> bool {
        std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
    }

    fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
        sys::capset(effective, permitted, inheritable)
    }

    fn clear_ambient(&mut self) -> std::io::Result<()> {
        sys::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        )
        .map(drop)
    }

    fn raise_ambient(&mut self, cap: u32) -> std::io::Result<()> {
        sys::prctl_ambient_raise(cap)
    }

    fn landlock(&mut self, rules: &Ruleset) -> Result<(), crate::apply::landlock::Error> {
        crate::apply::landlock::restrict_self(rules).map(drop)
    }

    fn reset_signals(&mut self, ignored: u64) -> std::io::Result<()> {
        sys::reset_signals(ignored);
        sys::SigSet::of(&[]).set_mask()
    }

    fn execve(&mut self, path: &str, argv: &[String], env: &[String]) -> std::io::Error {
        // NUL bytes were refused when the policy was resolved, and by `kakoi run`'s
        // argument parser.
        let cs = |v: &[String]| -> Vec<CString> {
            v.iter()
                .map(|a| CString::new(a.as_str()).unwrap_or_default())
                .collect()
        };
        let path = CString::new(path).unwrap_or_default();
        sys::execve(&path, &cs(argv), &cs(env))
    }

    fn lease(&mut self, v: &Veth) -> Result<(Ipv4Addr, Option<Lease>), StepError> {
        let l = super::net::lease(v, std::path::Path::new(super::net::LEASES))?;
        Ok((l.address, Some(l)))
    }

    fn ensure_nat(&mut self, v: &Veth) -> Result<(), StepError> {
        super::net::ensure_nat(v)
    }

    fn publish(
        &mut self,
        address: Ipv4Addr,
        ports: &[Publish],
    ) -> Result<Option<Published>, StepError> {
        super::net::publish(address, ports).map(Some)
    }

    fn prepare_stdio(&mut self, tty: Tty) -> std::io::Result<(ChildStdio, ParentStdio)> {
        super::stdio::prepare(tty)
    }

    fn cgroup_layout(&mut self) -> Layout {
        cgroup::host_layout()
    }

    fn cgroup_create(
        &mut self,
        layout: &Layout,
        limits: &[Limit],
        strict: bool,
        leaf: bool,
        name: Option<&str>,
    ) -> Result<Cgroup, cgroup::Error> {
        match name {
            Some(n) => Cgroup::create_named(layout, limits, strict, leaf, n.to_string()),
            None => Cgroup::create(layout, limits, strict, leaf),
        }
    }

    fn cgroup_join(
        &mut self,
        cg: &mut Cgroup,
        layout: &Layout,
        limits: &[Limit],
        strict: bool,
        pid: libc::pid_t,
        v2: bool,
    ) -> Result<(), cgroup::Error> {
        if v2 {
            cg.attach_v2(pid)?;
        }
        cg.create_v1(layout, limits, strict)?;
        cg.attach_v1(pid)
    }

    fn block_signals(&mut self, signals: &[libc::c_int]) -> std::io::Result<OwnedFd> {
        let set = sys::SigSet::of(signals);
        set.set_mask()?;
        set.signalfd()
    }

    fn clone3(&mut self, flags: u64, cgroup: Option<BorrowedFd>) -> std::io::Result<sys::Forked> {
        sys::clone3(flags, cgroup)
    }

    fn new_netns(&mut self) -> std::io::Result<OwnedFd> {
        sys::new_netns()
    }

    fn send_fds(&mut self, sock: BorrowedFd, fds: &[BorrowedFd]) -> std::io::Result<()> {
        sys::send_fds(sock, fds)
    }

    fn setrlimit(
        &mut self,
        pid: libc::pid_t,
        resource: u32,
        soft: u64,
        hard: u64,
    ) -> std::io::Result<()> {
        sys::setrlimit(pid, resource as libc::c_int, soft, hard)
    }

    fn write_maps(
        &mut self,
        pid: libc::pid_t,
        maps: &Maps,
        launcher_uid: u32,
    ) -> Result<(), StepError> {
        super::ids::write_maps(pid, maps, launcher_uid)
    }

    fn write_proc_of(&mut self, pid: libc::pid_t, file: &str, text: &str) -> std::io::Result<()> {
        std::fs::write(format!("/proc/{pid}/{file}"), text)
    }

    fn idmapped(&mut self, pid: libc::pid_t, binds: &[Bind]) -> Result<Vec<OwnedFd>, StepError> {
        let userns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .at("open the sandbox's user namespace")?;
        let root = sys::open_root().at("open /")?;
        let mut trees = Vec::new();
        for b in binds {
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
            sys::mount_setattr(
                t.as_fd(),
                true,
                sys::MOUNT_ATTR_IDMAP | sys::MOUNT_ATTR_NODEV | nosuid | ro,
                0,
                Some(userns.as_fd()),
            )
            .at(format!("idmap bind {}", b.source))
            .hint("idmapped mounts need root on the host and a file system that supports them (ext4, xfs, btrfs, tmpfs, overlayfs)")?;
            trees.push(t);
        }
        Ok(trees)
    }

    fn ensure_bridge(&mut self, v: &Veth, name: &str) -> Result<(), StepError> {
        super::net::ensure_bridge(v, name)
    }

    fn set_cpu_affinity(
        &mut self,
        pid: libc::pid_t,
        cpus: &libc::cpu_set_t,
    ) -> std::io::Result<()> {
        sys::set_cpu_affinity(pid, cpus)
    }

    fn go(&mut self, go: OwnedFd) {
        // Go, with the signals the child must reset before execve (it inherited the
        // launcher's dispositions; only ignored ones survive an execve).
        let mut b = [b'g'; 9];
        b[1..].copy_from_slice(&sys::ignored_signals().to_le_bytes());
        let _ = std::fs::File::from(go).write_all(&b);
    }

    fn kill(&mut self, pidfd: BorrowedFd, signal: libc::c_int) {
        let _ = sys::pidfd_send_signal(pidfd, signal);
    }

    fn supervise(&mut self, s: Supervision) -> Result<Ended, StepError> {
        super::supervise::run(s)
    }

    fn wait(&mut self, pidfd: BorrowedFd) -> std::io::Result<sys::Exit> {
        sys::wait_pidfd(pidfd)
    }

    fn await_start(&mut self, ready: OwnedFd, fifo: OwnedFd) -> Result<(), StepError> {
        use std::os::fd::AsRawFd;
        std::fs::File::from(ready)
            .write_all(b"R")
            .at("report the container created")?;
        // Through the O_PATH descriptor: the FIFO is outside the container's root. The
        // open blocks until `start` opens the other end.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", fifo.as_raw_fd()))
            .at("wait for start")?;
        drop(fifo);
        f.write_all(b"0").at("wait for start")
    }

    fn await_created(&mut self, ready: OwnedFd) -> bool {
        let mut b = [0u8; 1];
        std::fs::File::from(ready).read_exact(&mut b).is_ok() && b[0] == b'R'
    }
}

/// Records each call with the plan step it belongs to (`None`: outside every step),
/// and succeeds; a clone returns as the launcher, with a made-up pid.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Vec<(Option<usize>, String)>,
    step: Option<usize>,
}

/// The pid the recorder's clone returns.
pub const RECORDED_PID: libc::pid_t = 4242;

impl Recorder {
    fn note(&mut self, call: String) {
        self.calls.push((self.step, call));
    }

    /// The calls alone, in order.
    pub fn names(&self) -> Vec<&str> {
        self.calls.iter().map(|(_, c)| c.as_str()).collect()
    }

    /// The index of the first call that starts with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.calls.iter().position(|(_, c)| c.starts_with(prefix))
    }
}

fn null() -> OwnedFd {
    std::fs::File::open("/dev/null")
        .expect("/dev/null opens")
        .into()
}

impl Os for Recorder {
    fn begin(&mut self, index: usize) {
        self.step = Some(index);
    }
    fn prctl(&mut self, option: libc::c_int, arg: libc::c_ulong) -> std::io::Result<()> {
        self.note(format!("prctl({option}, {arg})"));
        Ok(())
    }
    fn parent_gone(&mut self, parent: Watch) -> bool {
        self.note(format!("parent_gone({parent:?})"));
        false
    }
    fn exit_now(&mut self, code: i32) {
        self.note(format!("exit({code})"));
    }
    fn set_login_uid(&mut self, uid: u32) {
        self.note(format!("loginuid({uid})"));
    }
    fn setsid(&mut self) -> std::io::Result<()> {
        self.note("setsid".into());
        Ok(())
    }
    fn await_go(&mut self, _go: OwnedFd) -> Option<u64> {
        self.note("await_go".into());
        Some(0)
    }
    fn recv_fds(&mut self, _sock: BorrowedFd, max: usize) -> std::io::Result<Vec<OwnedFd>> {
        self.note(format!("recv_fds({max})"));
        Ok((0..max).map(|_| null()).collect())
    }
    fn setresgid(&mut self, gid: u32) -> std::io::Result<()> {
        self.note(format!("setresgid({gid})"));
        Ok(())
    }
    fn setresuid(&mut self, uid: u32) -> std::io::Result<()> {
        self.note(format!("setresuid({uid})"));
        Ok(())
    }
    fn setns(&mut self, kind: NsKind, path: &str) -> Result<(), StepError> {
        self.note(format!("setns({}, {path})", kind.name()));
        Ok(())
    }
    fn unshare(&mut self, flags: libc::c_int) -> std::io::Result<()> {
        self.note(format!("unshare({flags:#x})"));
        Ok(())
    }
    fn write_time_offsets(&mut self, text: &str) -> Result<(), StepError> {
        self.note(format!(
            "timens_offsets({})",
            text.trim_end().replace('\n', "; ")
        ));
        Ok(())
    }
    fn fork_init(&mut self, subreaper: bool, _notes: OwnedFd) -> Result<libc::pid_t, StepError> {
        self.note(format!("fork_init(subreaper {subreaper})"));
        Ok(1)
    }
    fn sethostname(&mut self, name: &str) -> std::io::Result<()> {
        self.note(format!("sethostname({name})"));
        Ok(())
    }
    fn join_netns(&mut self, _sock: OwnedFd) -> Result<(), StepError> {
        self.note("join_netns".into());
        Ok(())
    }
    fn link_up(&mut self, name: &str) -> std::io::Result<()> {
        self.note(format!("link_up({name})"));
        Ok(())
    }
    fn write_sysctl(&mut self, key: &str, value: &str) -> std::io::Result<()> {
        self.note(format!("sysctl({key}={value})"));
        Ok(())
    }
    fn ip(&mut self, args: &[&str]) -> Result<(), StepError> {
        self.note(format!("ip {}", args.join(" ")));
        Ok(())
    }
    fn build_root(
        &mut self,
        _root: &Root,
        address: Option<&str>,
        idmapped: Vec<OwnedFd>,
        join_net: Option<OwnedFd>,
    ) -> Result<(), StepError> {
        self.note(format!(
            "build_root(address {address:?}, {} idmapped, join_net {})",
            idmapped.len(),
            join_net.is_some()
        ));
        Ok(())
    }
    fn write_attr(&mut self, path: &str, text: &str) -> std::io::Result<()> {
        self.note(format!("write {path} {text}"));
        Ok(())
    }
    fn chdir(&mut self, dir: &str) -> Result<(), StepError> {
        self.note(format!("chdir({dir})"));
        Ok(())
    }
    fn install_stdio(&mut self, _stdio: ChildStdio, uid: u32, gid: u32) -> Result<(), StepError> {
        self.note(format!("install_stdio({uid}, {gid})"));
        Ok(())
    }
    fn cloexec_from(&mut self, fd: u32) -> std::io::Result<()> {
        self.note(format!("cloexec_from({fd})"));
        Ok(())
    }
    fn lookup(&mut self, argv0: &str, _env: &[String]) -> Option<String> {
        self.note(format!("lookup({argv0})"));
        Some(argv0.to_string())
    }
    fn seccomp(&mut self, program: &[u8], flags: u64) -> std::io::Result<()> {
        self.note(format!("seccomp({} bytes, {flags:#x})", program.len()));
        Ok(())
    }
    fn drop_bounding(&mut self, cap: u32) -> std::io::Result<()> {
        // The kernel's last capability, as a real kernel reports it.
        if cap > 40 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        self.note(format!("capbset_drop({cap})"));
        Ok(())
    }
    fn setgroups(&mut self, groups: &[u32]) -> std::io::Result<()> {
        self.note(format!("setgroups({groups:?})"));
        Ok(())
    }
    fn setgroups_denied(&mut self) -> bool {
        false
    }
    fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
        self.note(format!(
            "capset({effective:#x}, {permitted:#x}, {inheritable:#x})"
        ));
        Ok(())
    }
    fn clear_ambient(&mut self) -> std::io::Result<()> {
        self.note("ambient_clear".into());
        Ok(())
    }
    fn raise_ambient(&mut self, cap: u32) -> std::io::Result<()> {
        self.note(format!("ambient_raise({cap})"));
        Ok(())
    }
    fn landlock(&mut self, rules: &Ruleset) -> Result<(), crate::apply::landlock::Error> {
        self.note(format!(
            "landlock({} paths, {} ports)",
            rules.paths.len(),
            rules.ports.len()
        ));
        Ok(())
    }
    fn reset_signals(&mut self, ignored: u64) -> std::io::Result<()> {
        self.note(format!("reset_signals({ignored:#x})"));
        Ok(())
    }
    fn execve(&mut self, path: &str, argv: &[String], _env: &[String]) -> std::io::Error {
        self.note(format!("execve({path}, {argv:?})"));
        std::io::Error::from_raw_os_error(libc::ENOSYS)
    }
    fn lease(&mut self, v: &Veth) -> Result<(Ipv4Addr, Option<Lease>), StepError> {
        let a = v
            .address
            .unwrap_or(Ipv4Addr::from(u32::from(v.network) + 2));
        self.note(format!("lease({a})"));
        Ok((a, None))
    }
    fn ensure_nat(&mut self, v: &Veth) -> Result<(), StepError> {
        self.note(format!("nat({}/{})", v.network, v.prefix));
        Ok(())
    }
    fn publish(
        &mut self,
        address: Ipv4Addr,
        ports: &[Publish],
    ) -> Result<Option<Published>, StepError> {
        self.note(format!("publish({address}, {} ports)", ports.len()));
        Ok(None)
    }
    fn prepare_stdio(&mut self, _tty: Tty) -> std::io::Result<(ChildStdio, ParentStdio)> {
        self.note("prepare_stdio".into());
        Ok(super::stdio::passed())
    }
    fn cgroup_layout(&mut self) -> Layout {
        self.note("cgroup_layout".into());
        Layout::default()
    }
    fn cgroup_create(
        &mut self,
        _layout: &Layout,
        limits: &[Limit],
        strict: bool,
        leaf: bool,
        _name: Option<&str>,
    ) -> Result<Cgroup, cgroup::Error> {
        let files: Vec<String> = limits
            .iter()
            .flat_map(|l| l.v2.iter().map(|(f, v)| format!("{f}={v}")))
            .collect();
        self.note(format!(
            "cgroup_create([{}], strict {strict}, leaf {leaf})",
            files.join(", ")
        ));
        Ok(Cgroup::default())
    }
    fn cgroup_join(
        &mut self,
        _cg: &mut Cgroup,
        _layout: &Layout,
        _limits: &[Limit],
        _strict: bool,
        pid: libc::pid_t,
        v2: bool,
    ) -> Result<(), cgroup::Error> {
        self.note(format!("cgroup_join({pid}, v2 {v2})"));
        Ok(())
    }
    fn block_signals(&mut self, signals: &[libc::c_int]) -> std::io::Result<OwnedFd> {
        self.note(format!("block_signals({signals:?})"));
        Ok(null())
    }
    fn clone3(&mut self, flags: u64, cgroup: Option<BorrowedFd>) -> std::io::Result<sys::Forked> {
        self.note(format!(
            "clone3({flags:#x}, into cgroup {})",
            cgroup.is_some()
        ));
        Ok(sys::Forked::Parent {
            pid: RECORDED_PID,
            pidfd: null(),
        })
    }
    fn new_netns(&mut self) -> std::io::Result<OwnedFd> {
        self.note("new_netns".into());
        Ok(null())
    }
    fn send_fds(&mut self, _sock: BorrowedFd, fds: &[BorrowedFd]) -> std::io::Result<()> {
        self.note(format!("send_fds({})", fds.len()));
        Ok(())
    }
    fn setrlimit(
        &mut self,
        pid: libc::pid_t,
        resource: u32,
        soft: u64,
        hard: u64,
    ) -> std::io::Result<()> {
        self.note(format!("setrlimit({pid}, {resource}, {soft}, {hard})"));
        Ok(())
    }
    fn write_maps(
        &mut self,
        pid: libc::pid_t,
        maps: &Maps,
        _launcher_uid: u32,
    ) -> Result<(), StepError> {
        self.note(format!(
            "write_maps({pid}, uid {:?}, gid {:?}, helper {})",
            maps.uid
                .iter()
                .map(|m| (m.inside, m.outside, m.count))
                .collect::<Vec<_>>(),
            maps.gid
                .iter()
                .map(|m| (m.inside, m.outside, m.count))
                .collect::<Vec<_>>(),
            maps.helper
        ));
        Ok(())
    }
    fn write_proc_of(&mut self, pid: libc::pid_t, file: &str, text: &str) -> std::io::Result<()> {
        self.note(format!("write /proc/{pid}/{file} {text}"));
        Ok(())
    }
    fn idmapped(&mut self, pid: libc::pid_t, binds: &[Bind]) -> Result<Vec<OwnedFd>, StepError> {
        self.note(format!("idmapped({pid}, {} binds)", binds.len()));
        Ok(binds.iter().map(|_| null()).collect())
    }
    fn ensure_bridge(&mut self, _v: &Veth, name: &str) -> Result<(), StepError> {
        self.note(format!("ensure_bridge({name})"));
        Ok(())
    }
    fn set_cpu_affinity(
        &mut self,
        pid: libc::pid_t,
        _cpus: &libc::cpu_set_t,
    ) -> std::io::Result<()> {
        self.note(format!("set_cpu_affinity({pid})"));
        Ok(())
    }
    fn go(&mut self, _go: OwnedFd) {
        self.note("go".into());
    }
    fn kill(&mut self, _pidfd: BorrowedFd, signal: libc::c_int) {
        self.note(format!("kill({signal})"));
    }
    fn supervise(&mut self, s: Supervision) -> Result<Ended, StepError> {
        self.note(format!(
            "supervise(timeout {:?}, bare pid 1 {})",
            s.timeout_ms, s.bare_pid1
        ));
        Ok(Ended {
            exit: sys::Exit::Code(0),
            timed_out: false,
        })
    }
    fn wait(&mut self, _pidfd: BorrowedFd) -> std::io::Result<sys::Exit> {
        self.note("wait".into());
        Ok(sys::Exit::Code(0))
    }
    fn await_start(&mut self, _ready: OwnedFd, _fifo: OwnedFd) -> Result<(), StepError> {
        self.note("await_start".into());
        Ok(())
    }
    fn await_created(&mut self, _ready: OwnedFd) -> bool {
        self.note("await_created".into());
        true
    }
}
