//! The launcher's system calls: every `unsafe` block of `kakoi run` is in this module, each
//! a thin wrapper that turns a raw call into `io::Result`. Callers stay safe code.
//!
//! Wrappers take Rust types (`&CStr`, `BorrowedFd`) so the pointers handed to the kernel are
//! valid for the call; none keeps a pointer after it returns.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn check_int(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Take ownership of a file descriptor a successful call returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that nothing else
    // owns; wrapping it makes it closed exactly once.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// What `clone3` returned in this process.
pub enum Forked {
    Child,
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// `clone3` with `flags` (namespace flags, `CLONE_INTO_CGROUP` when `cgroup` is given),
/// always `CLONE_PIDFD` and `SIGCHLD` as the exit signal.
///
/// The child is a copy of this process; it must only call [`Forked::Child`]-safe code
/// (the launcher is single-threaded when it calls this, so the allocator is not locked).
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd>) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args: libc::clone_args =
        // SAFETY: `clone_args` is a plain C struct of integers; all-zero is its documented
        // "nothing set" value.
        unsafe { std::mem::zeroed() };
    args.flags = flags | libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup {
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, initialised clone_args of the size passed; `pidfd` lives
    // across the call. Without CLONE_VM the child gets its own copy of memory, so it
    // returning into Rust code is the same as after fork(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match check(r)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
            pidfd: owned(pidfd as libc::c_long),
        }),
    }
}

/// `fork(2)`: used only by the child, to enter a time namespace.
pub fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the caller (the sandbox child) is single-threaded.
    let r = unsafe { libc::fork() };
    match check_int(r)? {
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Leave the process now, without running destructors or atexit handlers (which belong to
/// the launcher, not to its copy in the child).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with an integer argument.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

pub fn setns(fd: BorrowedFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor borrowed for the call.
    check_int(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// A new network namespace with its loopback up, made by the calling thread, which then
/// returns to the namespace it was in. The descriptor keeps the new namespace alive; its
/// owner is the caller's user namespace.
pub fn new_netns() -> io::Result<OwnedFd> {
    // The namespaces are named by sockets in them (`SIOCGSKNS`), not through /proc: a
    // process that looks up /proc/self/… leaves dentries the kernel flushes at its exit.
    let home = match inet_socket().and_then(|s| socket_netns(s.as_fd())) {
        Ok(fd) => fd,
        // SIOCGSKNS needs CAP_NET_ADMIN over the namespace, which a launcher in a user
        // namespace may lack for its own.
        Err(_) => OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net")?),
    };
    unshare(libc::CLONE_NEWNET)?;
    let made = inet_socket().and_then(|s| {
        set_up(s.as_fd(), "lo")?;
        socket_netns(s.as_fd())
    });
    // Back home before anything else, whatever happened in the new namespace.
    setns(home.as_fd(), libc::CLONE_NEWNET)?;
    made
}

fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let s = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    Ok(owned(s as libc::c_long))
}

/// The network namespace of a socket, as a new descriptor (CLOEXEC).
fn socket_netns(sock: BorrowedFd) -> io::Result<OwnedFd> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor.
    let fd = check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGSKNS) })?;
    Ok(owned(fd as libc::c_long))
}

/// The CPUs a process may run on (`pid` 0: the caller).
pub fn cpu_affinity(pid: libc::pid_t) -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    check_int(unsafe { libc::sched_getaffinity(pid, std::mem::size_of_val(&set), &mut set) })?;
    Ok(set)
}

pub fn set_cpu_affinity(pid: libc::pid_t, set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size passed, read by the kernel.
    check_int(unsafe { libc::sched_setaffinity(pid, std::mem::size_of_val(set), set) }).map(drop)
}

/// `set` without the CPU the caller is running on, unless that leaves nothing.
pub fn cpus_but_this_one(set: &libc::cpu_set_t) -> Option<libc::cpu_set_t> {
    // SAFETY: no arguments; returns -1 on failure.
    let here = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
    let mut others = *set;
    // SAFETY: `others` is a valid cpu_set_t; CPU_CLR ignores numbers beyond its size.
    unsafe { libc::CPU_CLR(here, &mut others) };
    // SAFETY: reads a valid cpu_set_t.
    (unsafe { libc::CPU_COUNT(&others) } > 0).then_some(others)
}

pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the prctl options used by the launcher take integer arguments only.
    check_int(unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) })
}

pub fn getppid() -> libc::pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getppid() }
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes for the call.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// `mount(2)` with optional source, type and data.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a NUL-terminated string borrowed for the call.
    check_int(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) })
        .map(drop)
}

pub fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `target` is a NUL-terminated string borrowed for the call.
    check_int(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: both paths are NUL-terminated strings borrowed for the call.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

pub const OPEN_TREE_CLONE: libc::c_uint = 1;
pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `open_tree(dfd, path, flags)`: with `OPEN_TREE_CLONE` a detached copy of the mount.
pub fn open_tree(dfd: BorrowedFd, path: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `dfd` is open, `path` is NUL-terminated; both borrowed for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dfd.as_raw_fd(),
            path.as_ptr(),
            flags | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    check(r).map(owned)
}

/// Attach the mount `from` on the file `to` refers to (both as fds: the destination is
/// exactly the verified object, never a path that could be swapped).
pub fn move_mount_fd(from: BorrowedFd, to: BorrowedFd) -> io::Result<()> {
    move_mount_at(from, to, c"")
}

/// Attach the mount `from` on `to_path` relative to the directory `to` (on `to` itself
/// when the path is empty). The path is walked as `openat` would: callers give only a
/// name they just made in a directory no one else can write to.
pub fn move_mount_at(from: BorrowedFd, to: BorrowedFd, to_path: &CStr) -> io::Result<()> {
    let empty = c"";
    let flags = if to_path.is_empty() {
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    } else {
        MOVE_MOUNT_F_EMPTY_PATH
    };
    // SAFETY: both fds are open and both paths are NUL-terminated strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            to_path.as_ptr(),
            flags,
        )
    };
    check(r).map(drop)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE?, …)`.
pub fn mount_setattr(
    fd: BorrowedFd,
    recursive: bool,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |f| f.as_raw_fd() as u64),
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr of the size passed; the fds are open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r).map(drop)
}

/// `openat2(dfd, path, {flags, mode, resolve})`, always `O_CLOEXEC`.
pub fn openat2(
    dfd: BorrowedFd,
    path: &CStr,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let mut how: libc::open_how =
        // SAFETY: `open_how` is a plain C struct of integers; zero is "nothing set".
        unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    // SAFETY: `how` is valid for the size passed, `path` NUL-terminated, `dfd` open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dfd.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    check(r).map(owned)
}

pub fn mkdirat(dfd: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `dfd` is open and `name` NUL-terminated, borrowed for the call.
    check_int(unsafe { libc::mkdirat(dfd.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// The target of the symlink `name` in `dfd` (EINVAL: not a symlink).
pub fn readlinkat(dfd: BorrowedFd, name: &CStr) -> io::Result<String> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `dfd` is open, `name` NUL-terminated and `buf` writable for its length.
    let n = check(unsafe {
        libc::readlinkat(
            dfd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    } as libc::c_long)?;
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A character device node `name` in `dfd`, mode 0666 (the umask applies).
pub fn mknod_char(dfd: BorrowedFd, name: &CStr, rdev: libc::dev_t) -> io::Result<()> {
    // SAFETY: `dfd` is open and `name` NUL-terminated, borrowed for the call.
    check_int(unsafe { libc::mknodat(dfd.as_raw_fd(), name.as_ptr(), libc::S_IFCHR | 0o666, rdev) })
        .map(drop)
}

/// The file system type (`f_type`) of `path`.
pub fn statfs_type(path: &CStr) -> io::Result<i64> {
    // SAFETY: `statfs` is plain data; zero is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` a valid out-pointer for the call.
    check_int(unsafe { libc::statfs(path.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// Take an exclusive `flock` on `fd`, waiting for it; released when the file is closed.
/// (`File::lock` needs Rust 1.89, above kakoi's minimum.)
pub fn lock_exclusive(fd: BorrowedFd) -> io::Result<()> {
    loop {
        // SAFETY: `fd` is open; flock has no memory arguments.
        match check_int(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|_| ()),
        }
    }
}

pub fn fstatfs_type(fd: BorrowedFd) -> io::Result<i64> {
    // SAFETY: `statfs` is plain data; zero is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a valid out-pointer for the call.
    check_int(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type as i64)
}

pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: `stat` is plain data; zero is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a valid out-pointer; the empty path with
    // AT_EMPTY_PATH names the fd itself.
    check_int(unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            &mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// Mark every descriptor from `first` up `CLOEXEC` (CVE-2024-21626: nothing of the
/// launcher leaks into the payload).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check_int(unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) })
        .map(drop)
}

pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: `pidfd` is open; a null siginfo means "as kill(2) would send it".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// How a waited-for process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Reap the process behind `pidfd` (blocking).
pub fn wait_pidfd(pidfd: BorrowedFd) -> io::Result<Exit> {
    // SAFETY: `siginfo_t` is plain data; zero is valid before the kernel fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid out-pointer; P_PIDFD takes the fd as the id.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        match check_int(r) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    // SAFETY: after a successful WEXITED wait the kernel filled si_code and si_status.
    let status = unsafe { info.si_status() };
    Ok(if info.si_code == libc::CLD_EXITED {
        Exit::Code(status)
    } else {
        Exit::Signal(status)
    })
}

/// Reap `pid` (blocking); used by the time-namespace intermediate.
pub fn waitpid(pid: libc::pid_t) -> io::Result<Exit> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        match check_int(r) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    })
}

/// A set of signals, for blocking and for `signalfd`.
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn of(signals: &[libc::c_int]) -> SigSet {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
        let mut s: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `s` is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut s) };
        for &sig in signals {
            // SAFETY: `s` is a valid sigset_t; an invalid signal number only returns EINVAL.
            unsafe { libc::sigaddset(&mut s, sig) };
        }
        SigSet(s)
    }

    /// Set the calling thread's signal mask to exactly this set.
    pub fn set_mask(&self) -> io::Result<()> {
        // SAFETY: the set is valid; the old mask is not wanted (null).
        let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(())
    }

    pub fn signalfd(&self) -> io::Result<OwnedFd> {
        // SAFETY: the set is valid; -1 asks for a new descriptor.
        let r = unsafe { libc::signalfd(-1, &self.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        check_int(r).map(|fd| owned(fd as libc::c_long))
    }
}

/// The signals whose disposition is "ignore", as a mask (bit `n - 1` for signal `n`): the
/// only dispositions an `execve` keeps (caught signals revert to their default). Read
/// from `SigIgn` in /proc/self/status (one read, where asking for each signal takes 64
/// system calls), or asked through the raw system call without /proc (which also reaches
/// the two signals the C library reserves).
pub fn ignored_signals() -> u64 {
    let status = read_small(std::path::Path::new("/proc/self/status")).unwrap_or_default();
    let from_proc = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
    from_proc.unwrap_or_else(ask_ignored_signals)
}

/// A small /proc or cgroup file's text, in one read. Such files report a size of 0, from
/// which `fs::read_to_string` would grow its buffer over several reads (eight for
/// /proc/self/status). Longer text (a busy `cgroup.procs`) is cut at 4 KiB.
pub fn read_small(path: &std::path::Path) -> io::Result<String> {
    let mut buf = [0u8; 4096];
    let n = io::Read::read(&mut std::fs::File::open(path)?, &mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn ask_ignored_signals() -> u64 {
    let mut mask = 0;
    for sig in 1..=64 {
        // The kernel's struct sigaction begins with the handler on every architecture;
        // 8 words hold it whole.
        let mut old = [0u64; 8];
        // SAFETY: a null new action only queries; `old` is large enough for the kernel's
        // struct sigaction, and 8 is the size of its signal set.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<u64>(),
                old.as_mut_ptr(),
                8usize,
            )
        };
        if r == 0 && old[0] == libc::SIG_IGN as u64 {
            mask |= 1 << (sig - 1);
        }
    }
    mask
}

/// Reset the signals of `mask` (see [`ignored_signals`]) to their default disposition:
/// the payload must not inherit the launcher's ignored signals.
pub fn reset_signals(mask: u64) {
    for sig in 1..=64 {
        if mask & 1 << (sig - 1) != 0 {
            // SIG_DFL is 0: an all-zero action (no flags, empty mask).
            let dfl = [0u64; 8];
            // SAFETY: `dfl` is a valid kernel struct sigaction; errors (SIGKILL, SIGSTOP,
            // which are never ignored) are ignored.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
    }
}

/// Read one pending signal from a `signalfd`.
pub fn read_signal(fd: BorrowedFd) -> Option<libc::c_int> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of `size` bytes.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    (n == size as isize).then_some(info.ssi_signo as libc::c_int)
}

/// `poll` on `fds` for input; returns which are readable, or none on timeout.
pub fn poll_in(fds: &[BorrowedFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of `p.len()` pollfd entries.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    match check_int(r) {
        Ok(_) => Ok(p.iter().map(|x| x.revents != 0).collect()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(vec![false; fds.len()]),
        Err(e) => Err(e),
    }
}

pub fn setrlimit(pid: libc::pid_t, resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let l = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `l` is a valid rlimit64; the old value is not wanted (null).
    check_int(unsafe {
        libc::prlimit64(
            pid,
            resource as libc::__rlimit_resource_t,
            &l,
            std::ptr::null_mut(),
        )
    })
    .map(drop)
}

/// The calling process's supplementary groups.
pub fn getgroups() -> io::Result<Vec<libc::gid_t>> {
    // SAFETY: a size of 0 asks only for the count; the pointer is not used.
    let n = check_int(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut v = vec![0; n as usize];
    // SAFETY: `v` has room for the `n` groups the kernel may write.
    let got = check_int(unsafe { libc::getgroups(n, v.as_mut_ptr()) })?;
    v.truncate(got as usize);
    Ok(v)
}

pub fn setgroups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: pointer and length describe `groups` for the call.
    check_int(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }).map(drop)
}

pub fn setresgid(g: libc::gid_t) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments (libc applies it to every thread).
    check_int(unsafe { libc::setresgid(g, g, g) }).map(drop)
}

pub fn setresuid(u: libc::uid_t) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check_int(unsafe { libc::setresuid(u, u, u) }).map(drop)
}

/// Install a classic BPF seccomp filter (`prog` is a raw `sock_filter` array).
pub fn seccomp_filter(prog: &[u8], flags: libc::c_ulong) -> io::Result<()> {
    if prog.len() % 8 != 0 || prog.is_empty() || prog.len() / 8 > u16::MAX as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // The bytes may not be aligned for sock_filter: copy them.
    let insns: Vec<libc::sock_filter> = prog
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `insns`, which outlives the call; the kernel copies it.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// Bring a network interface up (`SIOCSIFFLAGS` with `IFF_UP`) in the current netns.
pub fn link_up(name: &str) -> io::Result<()> {
    set_up(inet_socket()?.as_fd(), name)
}

/// `SIOCSIFFLAGS` with `IFF_UP` for `name`, through `sock` (its network namespace).
fn set_up(sock: BorrowedFd, name: &str) -> io::Result<()> {
    // SAFETY: ifreq is plain data; zero is a valid start.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq; SIOCGIFFLAGS fills the flags union member.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the flags member was just written by the kernel.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: `req` is a valid ifreq with the name and new flags.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

/// `execve`; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = env.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated arrays of NUL-terminated strings that
    // outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// A pipe whose ends are both `CLOEXEC`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((owned(fds[0] as libc::c_long), owned(fds[1] as libc::c_long)))
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments.
    check_int(unsafe { libc::setsid() }).map(drop)
}

/// Set the file mode creation mask; returns the previous one.
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask takes and returns a plain integer; it cannot fail.
    unsafe { libc::umask(mask) }
}

/// Set the three capability sets at once (`capset`, version 3: 64-bit sets).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        Data {
            effective: lo(effective),
            permitted: lo(permitted),
            inheritable: lo(inheritable),
        },
        Data {
            effective: hi(effective),
            permitted: hi(permitted),
            inheritable: hi(inheritable),
        },
    ];
    // SAFETY: `hdr` and the two-element `data` array are the v3 layout capset reads.
    check(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) })
        .map(drop)
}

pub fn symlinkat(target: &CStr, dfd: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and `dfd` is open, borrowed for the call.
    check_int(unsafe { libc::symlinkat(target.as_ptr(), dfd.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// A new filesystem instance as a detached mount: `fsopen(fstype)`, one `fsconfig` per
/// option (`None`: a flag), `FSCONFIG_CMD_CREATE`, `fsmount(attrs)`.
pub fn fs_mount(
    fstype: &CStr,
    options: &[(&str, Option<&str>)],
    attrs: u64,
) -> io::Result<OwnedFd> {
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: `fstype` is NUL-terminated; FSOPEN_CLOEXEC is the only flag.
    let fsfd =
        check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1 as libc::c_uint) })
            .map(owned)?;
    // The mount's source as /proc/self/mountinfo shows it: the file system's name unless
    // given (`proc`, `sysfs`, as mount(8) and container runtimes set it, not "none").
    let own_source = fstype.to_str().unwrap_or("none");
    let source = [("source", Some(own_source))];
    let has_source = options.iter().any(|(k, _)| *k == "source");
    let all = options.iter().chain(source.iter().filter(|_| !has_source));
    for (k, v) in all {
        let key = CString::new(*k).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let val = v
            .map(CString::new)
            .transpose()
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let (cmd, vp) = match &val {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: `fsfd` is open; key and value are NUL-terminated (or null for a flag).
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                cmd,
                key.as_ptr(),
                vp,
                0,
            )
        })?;
    }
    // SAFETY: `fsfd` is open; CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })?;
    // SAFETY: `fsfd` is a configured filesystem context; FSMOUNT_CLOEXEC = 1.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fsfd.as_raw_fd(),
            1 as libc::c_uint,
            attrs,
        )
    })
    .map(owned)
}

pub fn fchdir(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor borrowed for the call.
    check_int(unsafe { libc::fchdir(fd.as_raw_fd()) }).map(drop)
}

/// `/` of the calling process as an `O_PATH` directory fd.
pub fn open_root() -> io::Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated literal.
    let r = unsafe {
        libc::open(
            c"/".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    check_int(r).map(|fd| owned(fd as libc::c_long))
}

pub fn prctl_ambient_raise(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check_int(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

/// Close a descriptor this process holds a copy of but does not own as a Rust value (the
/// time-namespace intermediate's copy of the error pipe, after `fork`).
pub fn close_raw(fd: RawFd) {
    // SAFETY: after fork, the intermediate never touches the Rust value that owns this
    // descriptor again (it only waits and exits), so closing it here cannot double-close.
    unsafe { libc::close(fd) };
}

/// A connected pair of `AF_UNIX` sequenced-packet sockets (for passing descriptors).
/// Sequenced packets, not datagrams: a reader whose peer is gone (a SIGKILLed launcher)
/// gets end-of-file, where a datagram socket would wait forever.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((owned(fds[0] as libc::c_long), owned(fds[1] as libc::c_long)))
}

/// Send descriptors (`SCM_RIGHTS`) with a one-byte message.
pub fn send_fds(sock: BorrowedFd, fds: &[BorrowedFd]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let payload = std::mem::size_of_val(raw.as_slice());
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    let mut cbuf = vec![0u8; space.max(1)];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data; zero is "nothing set".
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the control buffer holds one header of CMSG_SPACE(payload) bytes, so
        // CMSG_FIRSTHDR is non-null and CMSG_DATA has room for `payload` bytes.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
            std::ptr::copy_nonoverlapping(raw.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), payload);
        }
    }
    // SAFETY: `msg` points at `iov`, `byte` and `cbuf`, which outlive the call.
    check(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) } as libc::c_long).map(drop)
}

/// Receive up to `max` descriptors sent with [`send_fds`].
pub fn recv_fds(sock: BorrowedFd, max: usize) -> io::Result<Vec<OwnedFd>> {
    let payload = max * std::mem::size_of::<RawFd>();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    let mut cbuf = vec![0u8; space.max(1)];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data; zero is "nothing set".
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` points at buffers that outlive the call; received fds get CLOEXEC.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    check(n as libc::c_long)?;
    let mut out = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `cbuf`, within
    // `msg_controllen`; each SCM_RIGHTS payload is an array of new descriptors we own.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..n {
                    out.push(owned(std::ptr::read_unaligned(data.add(i)) as libc::c_long));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(out)
}

/// A pidfd for `pid` (`pidfd_open`): readable once the process has exited.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).map(owned)
}

/// The calling thread's name (`comm`, as `ps` shows it).
pub fn set_name(name: &CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::getpid() }
}

/// Close every descriptor in `first..=last`.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments; the caller owns no Rust value for
    // these descriptors any more (the init after fork, the payload before exec).
    check_int(unsafe { libc::close_range(first, last, 0) }).map(drop)
}

/// `dup2(from, to)`; the new descriptor is not `CLOEXEC`.
pub fn dup2(from: BorrowedFd, to: RawFd) -> io::Result<()> {
    // SAFETY: `from` is open; `to` names a slot the caller hands over to the payload.
    check_int(unsafe { libc::dup2(from.as_raw_fd(), to) }).map(drop)
}

/// Set or clear `O_NONBLOCK` on a descriptor this process owns the file description of.
pub fn set_nonblocking(fd: BorrowedFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an open descriptor with integer arguments.
    let flags = check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) }).map(drop)
}

/// `read(2)` into `buf`.
pub fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check(n as libc::c_long).map(|n| n as usize)
}

/// `write(2)` of `buf`.
pub fn write(fd: BorrowedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    check(n as libc::c_long).map(|n| n as usize)
}

/// `poll` for each (descriptor, events); returns the `revents` of each.
pub fn poll(
    fds: &[(BorrowedFd, libc::c_short)],
    timeout_ms: i32,
) -> io::Result<Vec<libc::c_short>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|(f, ev)| libc::pollfd {
            fd: f.as_raw_fd(),
            events: *ev,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of `p.len()` pollfd entries.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    match check_int(r) {
        Ok(_) => Ok(p.iter().map(|x| x.revents).collect()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(vec![0; fds.len()]),
        Err(e) => Err(e),
    }
}

/// Whether `fd` is a terminal.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// The file status of descriptor `fd` (a raw number: stdio may be closed).
pub fn fstat_raw(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    check_int(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// The file system magic of descriptor `fd` (a raw number).
pub fn fstatfs_raw(fd: RawFd) -> io::Result<i64> {
    // SAFETY: statfs is plain data, filled by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    check_int(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st.f_type as i64)
}

/// Borrow a standard descriptor (0, 1 or 2) this process holds open.
pub fn stdio(fd: RawFd) -> BorrowedFd<'static> {
    debug_assert!((0..=2).contains(&fd));
    // SAFETY: the standard descriptors stay open for the life of the launcher (the launch
    // checks that each is open, or opens /dev/null on it, before using them).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// A new pseudo-terminal of the devpts instance mounted at `ptmx`'s directory: the master,
/// unlocked, and its slave opened from it (`TIOCGPTPEER`, no path lookup).
pub fn open_pty(ptmx: &CStr) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: `ptmx` is NUL-terminated.
    let m = check_int(unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    let master = owned(m as libc::c_long);
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int.
    check_int(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let s = check_int(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    Ok((master, owned(s as libc::c_long)))
}

/// Make the terminal `fd` the caller's controlling terminal (the caller leads a session
/// without one).
pub fn set_controlling_tty(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// The window size of terminal `fd`.
pub fn window_size(fd: BorrowedFd) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain data.
    let mut w: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut w) })?;
    Ok(w)
}

pub fn set_window_size(fd: BorrowedFd, w: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, w) }).map(drop)
}

/// A terminal's settings.
#[derive(Clone, Copy)]
pub struct Termios(libc::termios);

pub fn tcgetattr(fd: BorrowedFd) -> io::Result<Termios> {
    // SAFETY: termios is plain data, filled by the call.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid out-pointer.
    check_int(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) })?;
    Ok(Termios(t))
}

pub fn tcsetattr(fd: BorrowedFd, t: &Termios) -> io::Result<()> {
    // SAFETY: `t` is a valid termios.
    check_int(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSADRAIN, &t.0) }).map(drop)
}

impl Termios {
    /// These settings in raw mode (no echo, no line editing, no signals from keys): the
    /// sandbox's own terminal does all of that.
    pub fn raw(&self) -> Termios {
        let mut t = self.0;
        // SAFETY: `t` is a valid termios.
        unsafe { libc::cfmakeraw(&mut t) };
        Termios(t)
    }
}

/// `fchown` of a descriptor.
pub fn fchown(fd: BorrowedFd, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: plain syscall on an open descriptor.
    check_int(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// How a child of the init changed state.
pub enum ChildEvent {
    Exited(libc::pid_t, Exit),
    /// Stopped for its tracer (this process) by a signal.
    Traced(libc::pid_t, libc::c_int),
    /// Stopped by a signal (job control), not traced.
    Stopped(libc::pid_t, libc::c_int),
}

/// One child's change of state, without blocking (`None`: nothing to report).
pub fn wait_any() -> io::Result<Option<ChildEvent>> {
    // SAFETY: siginfo_t is plain data; zero is valid before the kernel fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer. __WALL: clone children too; a tracee's
    // stops are reported to its tracer with WSTOPPED.
    let r = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WSTOPPED | libc::WNOHANG | libc::__WALL,
        )
    };
    match check_int(r) {
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    // SAFETY: after a successful waitid the kernel filled si_pid (zero: nothing ready).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => ChildEvent::Exited(pid, Exit::Code(status)),
        libc::CLD_KILLED | libc::CLD_DUMPED => ChildEvent::Exited(pid, Exit::Signal(status)),
        libc::CLD_TRAPPED => ChildEvent::Traced(pid, status),
        _ => ChildEvent::Stopped(pid, status),
    }))
}

/// Detach from a tracee, letting it go on with `sig` (0: none).
pub fn ptrace_detach(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PTRACE_DETACH takes integer arguments.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long,
        )
    })
    .map(drop)
}

/// Make a FIFO at `path` (mode 0600).
pub fn mkfifo(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string.
    check_int(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }).map(drop)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ignored_signals_from_proc_match_asking_each() {
        // Rust programs (this test harness too) ignore SIGPIPE.
        let asked = super::ask_ignored_signals();
        assert_ne!(asked & 1 << (libc::SIGPIPE - 1), 0);
        assert_eq!(super::ignored_signals(), asked);
    }
}
