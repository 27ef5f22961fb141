//! The in-sandbox probe: run as the payload of `kakoi run`, it reports what the sandbox
//! looks like from inside, as one JSON object on stdout. Tests assert on this report, not
//! on the launcher's own belief.
//!
//! Arguments are actions, run in order after the report is gathered; each adds an entry
//! to `actions` with "ok" or the errno name:
//!   read:PATH   write:PATH   exec:PATH   fork:N (how many children could be forked)
//!   alloc:MIB (touch that much memory)   exit:CODE   signal:SIG (kill itself)
//!   wait-signal:SIG (block until SIG arrives, then report)   sleep:MS   tcp-bind:PORT
//!   owner:PATH (uid:gid as seen inside)
//!   privs-after-exec:PATH (run PATH, a copy of this probe, as `PATH ids`: its euid and
//!   CapEff after the exec, to see whether a setuid or file-capability binary gained anything)
//!   parent-exe (CVE-2019-5736: open the launcher's /proc/PPID/exe, then reopen it for
//!   writing through /proc/self/fd; "no parent" when the launcher is outside the pid namespace)
//!
//! Built by `cargo test` (examples are); used from `tests/suite/launch.rs`.

use std::collections::BTreeMap;
use std::io::Write;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn errno_name(e: &std::io::Error) -> String {
    let n = e.raw_os_error().unwrap_or(0);
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EROFS => "EROFS",
        libc::EAGAIN => "EAGAIN",
        libc::ENOSYS => "ENOSYS",
        libc::EINVAL => "EINVAL",
        libc::EXDEV => "EXDEV",
        libc::ENOMEM => "ENOMEM",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EBADF => "EBADF",
        libc::ESRCH => "ESRCH",
        libc::ENOTTY => "ENOTTY",
        libc::EIO => "EIO",
        libc::EFAULT => "EFAULT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        _ => return format!("errno {n}"),
    };
    name.to_string()
}

fn result(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => errno_name(&e),
    }
}

/// The result of a raw system call: "ok" or the errno's name.
fn sys_result(r: libc::c_long) -> String {
    if r < 0 {
        errno_name(&std::io::Error::last_os_error())
    } else {
        "ok".into()
    }
}

fn stat_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One escape attempt, by name (`escape:NAME`), run in a forked child so that a kill by the
/// seccomp filter is reported too. Each tries one way out; the result is "ok" (the call
/// succeeded), an errno name, "signal N", or for the walks "contained" / "ESCAPED".
fn escape(name: &str) -> String {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return "pipe failed".into();
    }
    // SAFETY: the probe is single-threaded; the child only makes system calls, writes its
    // answer to the pipe and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let out = attempt(name);
        // SAFETY: writing a valid buffer to our pipe, then leaving without unwinding.
        unsafe {
            libc::write(fds[1], out.as_ptr().cast(), out.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for 256 bytes.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is a valid out-pointer.
    unsafe {
        libc::close(fds[0]);
        libc::waitpid(pid, &mut status, 0);
    }
    if libc::WIFSIGNALED(status) {
        return format!("signal {}", libc::WTERMSIG(status));
    }
    String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
}

/// Reach the launcher's executable as runc's CVE-2019-5736 exploit did.
fn parent_exe() -> String {
    use std::os::unix::fs::OpenOptionsExt;
    // SAFETY: getppid cannot fail.
    let ppid = unsafe { libc::getppid() };
    if ppid == 0 {
        return "no parent".into();
    }
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{ppid}/exe"))
    {
        Ok(f) => f,
        Err(e) => return errno_name(&e),
    };
    use std::os::fd::AsRawFd;
    let reopen = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", f.as_raw_fd()));
    format!("opened; write {}", result(reopen.map(drop)))
}

fn attempt(name: &str) -> String {
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (tmp, proc_, dot, tmpfs) = (c("/tmp"), c("/proc"), c("."), c("tmpfs"));
    // SAFETY: every call below is a raw system call whose arguments are valid
    // NUL-terminated strings that outlive the call, buffers we own, null pointers where the
    // kernel accepts them, or integers; the probe is an attacker and wants exactly these.
    unsafe {
        match name {
            "mount" => sys_result(libc::syscall(
                libc::SYS_mount,
                tmpfs.as_ptr(),
                tmp.as_ptr(),
                tmpfs.as_ptr(),
                0,
                0,
            )),
            "umount" => sys_result(libc::syscall(
                libc::SYS_umount2,
                proc_.as_ptr(),
                libc::MNT_DETACH,
            )),
            "pivot_root" => sys_result(libc::syscall(
                libc::SYS_pivot_root,
                tmp.as_ptr(),
                tmp.as_ptr(),
            )),
            "unshare-user" => sys_result(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
            "unshare-mount" => sys_result(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS)),
            "setns" => {
                let f = libc::open(c("/proc/self/ns/mnt").as_ptr(), libc::O_RDONLY);
                sys_result(libc::syscall(libc::SYS_setns, f, 0))
            }
            "chroot-walk" => {
                let before = stat_id("/");
                if libc::chroot(tmp.as_ptr()) != 0 {
                    return format!("chroot {}", errno_name(&std::io::Error::last_os_error()));
                }
                for _ in 0..32 {
                    libc::chdir(c("..").as_ptr());
                }
                libc::chroot(dot.as_ptr());
                if stat_id("/") == before {
                    "contained".into()
                } else {
                    "ESCAPED".into()
                }
            }
            // pid 1's root: the sandbox's own, or not reachable at all.
            "proc1-root" => match std::fs::metadata("/proc/1/root/.") {
                Err(e) => errno_name(&e),
                Ok(_) if stat_id("/proc/1/root/.") == stat_id("/") => "contained".into(),
                Ok(_) => "ESCAPED".into(),
            },
            "ptrace-outside" => sys_result(libc::syscall(
                libc::SYS_ptrace,
                libc::PTRACE_ATTACH,
                4_000_000,
                0,
                0,
            )),
            "open_by_handle_at" => {
                let mut h = [0u8; 16];
                h[0] = 8; // handle_bytes
                sys_result(libc::syscall(
                    libc::SYS_open_by_handle_at,
                    libc::AT_FDCWD,
                    h.as_mut_ptr(),
                    libc::O_RDONLY,
                ))
            }
            "keyctl" => sys_result(libc::syscall(
                libc::SYS_keyctl,
                0,  /* GET_KEYRING_ID */
                -3, /* session */
                0,
            )),
            "add_key" => sys_result(libc::syscall(
                libc::SYS_add_key,
                c("user").as_ptr(),
                c("k").as_ptr(),
                c("v").as_ptr(),
                1,
                -2,
            )),
            "bpf" => sys_result(libc::syscall(libc::SYS_bpf, 5 /* PROG_LOAD */, 0, 0)),
            "perf_event_open" => {
                sys_result(libc::syscall(libc::SYS_perf_event_open, 0, 0, -1, -1, 0))
            }
            "kexec_load" => sys_result(libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0)),
            "init_module" => sys_result(libc::syscall(libc::SYS_init_module, 0, 0, c("").as_ptr())),
            "socket-alg" => sys_result(libc::syscall(
                libc::SYS_socket,
                38, /* AF_ALG */
                libc::SOCK_SEQPACKET,
                0,
            )),
            "socket-raw" => sys_result(libc::syscall(
                libc::SYS_socket,
                libc::AF_INET,
                libc::SOCK_RAW,
                libc::IPPROTO_ICMP,
            )),
            "socket-packet" => sys_result(libc::syscall(
                libc::SYS_socket,
                libc::AF_PACKET,
                libc::SOCK_RAW,
                0,
            )),
            "io_uring_setup" => sys_result(libc::syscall(libc::SYS_io_uring_setup, 1, 0)),
            "userfaultfd" => sys_result(libc::syscall(libc::SYS_userfaultfd, 0)),
            "personality" => sys_result(libc::syscall(
                libc::SYS_personality,
                0x0400000, /* READ_IMPLIES_EXEC */
            )),
            "tiocsti" => {
                let ch = b'x';
                sys_result(libc::syscall(
                    libc::SYS_ioctl,
                    0,
                    libc::TIOCSTI,
                    &ch as *const u8,
                ))
            }
            // L3: make the stdin terminal the controlling tty (works when it has no
            // session), then push input into it.
            "tiocsti-ctty" => {
                let ch = b'x';
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                sys_result(libc::syscall(
                    libc::SYS_ioctl,
                    0,
                    libc::TIOCSTI,
                    &ch as *const u8,
                ))
            }
            "write-sysrq" => result(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/proc/sysrq-trigger")
                    .map(drop),
            ),
            "write-proc-sys" => result(std::fs::write("/proc/sys/kernel/hostname", "escaped")),
            "write-sys" => result(std::fs::write("/sys/kernel/uevent_helper", "/tmp/x")),
            "cgroup-release-agent" => {
                let d = c("/tmp/cg");
                libc::mkdir(d.as_ptr(), 0o755);
                sys_result(libc::syscall(
                    libc::SYS_mount,
                    c("cgroup").as_ptr(),
                    d.as_ptr(),
                    c("cgroup").as_ptr(),
                    0,
                    c("rdma").as_ptr(),
                ))
            }
            "clone-newuser" => sys_result(libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWUSER as libc::c_long | libc::SIGCHLD as libc::c_long,
                0,
                0,
                0,
                0,
            )),
            _ => "unknown escape".into(),
        }
    }
}

fn clock(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec
}

fn rlimit(res: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a valid out-pointer.
    unsafe { libc::getrlimit(res, &mut l) };
    (l.rlim_cur, l.rlim_max)
}

fn fork_children(n: usize) -> (usize, String) {
    let mut pids = Vec::new();
    let mut err = String::new();
    for _ in 0..n {
        // SAFETY: the child only sleeps and exits.
        match unsafe { libc::fork() } {
            0 => {
                std::thread::sleep(std::time::Duration::from_millis(300));
                // SAFETY: leave the child without running the parent's destructors.
                unsafe { libc::_exit(0) };
            }
            -1 => {
                err = errno_name(&std::io::Error::last_os_error());
                break;
            }
            pid => pids.push(pid),
        }
    }
    for p in &pids {
        // SAFETY: reaping our own children.
        unsafe { libc::waitpid(*p, std::ptr::null_mut(), 0) };
    }
    (pids.len(), err)
}

fn main() {
    // `probe ids`: only the effective uid and CapEff, for privs-after-exec.
    if std::env::args().nth(1).as_deref() == Some("ids") {
        // capget, not /proc/self/status: Landlock may hide this process's /proc entry.
        let mut head = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this thread
        let mut data = [0u32; 6]; // (effective, permitted, inheritable) for words 0 and 1
                                  // SAFETY: geteuid cannot fail; capget gets a valid header and room for two words.
        let (euid, r) = unsafe {
            (
                libc::geteuid(),
                libc::syscall(libc::SYS_capget, head.as_mut_ptr(), data.as_mut_ptr()),
            )
        };
        let eff = if r == 0 {
            u64::from(data[3]) << 32 | u64::from(data[0])
        } else {
            u64::MAX
        };
        println!("euid {euid} capeff {eff:016x}");
        return;
    }

    let status = read("/proc/self/status");
    let mut r = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        r.insert(k.to_string(), v);
    };
    for k in [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Uid",
        "Gid",
        "Groups",
        "SigIgn",
    ] {
        put(k, status_field(&status, &format!("{k}:")).into());
    }
    put("uid_map", read("/proc/self/uid_map").into());
    put("gid_map", read("/proc/self/gid_map").into());
    put("setgroups", read("/proc/self/setgroups").trim().into());
    let mut ns = BTreeMap::new();
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        let link = std::fs::read_link(format!("/proc/self/ns/{n}"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        ns.insert(n, link);
    }
    put("ns", serde_json::to_value(ns).unwrap());
    let mounts: Vec<serde_json::Value> = read("/proc/self/mountinfo")
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            let fstype = right.split_whitespace().next()?;
            Some(serde_json::json!({"target": f.get(4)?, "options": f.get(5)?, "root": f.get(3)?, "fstype": fstype, "source_dev": f.get(2)?}))
        })
        .collect();
    put("mounts", mounts.into());
    put("cgroup", read("/proc/self/cgroup").into());
    put("hostname", read("/proc/sys/kernel/hostname").trim().into());
    let mut ifaces: Vec<String> = read("/proc/net/dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    ifaces.sort();
    put("interfaces", ifaces.into());
    put("addresses", read("/proc/net/fib_trie").into());
    put("pid", std::process::id().into());
    // SAFETY: no arguments.
    put("ppid", unsafe { libc::getppid() }.into());
    put(
        "cwd",
        std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
            .into(),
    );
    put(
        "env",
        std::env::vars()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .into(),
    );
    let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let t = std::fs::read_link(e.path())
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!("{}={t}", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    put("fds", fds.into());
    put("monotonic", clock(libc::CLOCK_MONOTONIC).into());
    put("boottime", clock(libc::CLOCK_BOOTTIME).into());
    let (s, h) = rlimit(libc::RLIMIT_NOFILE);
    put("nofile", serde_json::json!([s, h]));

    let mut actions = Vec::new();
    let mut exit_code = 0;
    for a in std::env::args().skip(1) {
        let (verb, arg) = a.split_once(':').unwrap_or((&a, ""));
        let out: String = match verb {
            "read" => result(std::fs::read(arg).map(drop)),
            "write" => result(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(arg)
                    .and_then(|mut f| f.write_all(b"probe\n")),
            ),
            // The names in a directory, sorted, comma-separated.
            "entries" => match std::fs::read_dir(arg) {
                Ok(d) => {
                    let mut names: Vec<String> = d
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    names.join(",")
                }
                Err(e) => errno_name(&e),
            },
            "exec" => result(std::process::Command::new(arg).status().map(drop)),
            "fork" => {
                let (n, e) = fork_children(arg.parse().unwrap_or(0));
                format!("{n} {e}")
            }
            "alloc" => {
                let mib: usize = arg.parse().unwrap_or(0);
                let mut v: Vec<u8> = Vec::with_capacity(mib << 20);
                v.resize(mib << 20, 1);
                format!(
                    "ok {}",
                    v.iter().step_by(4096).map(|b| *b as usize).sum::<usize>()
                )
            }
            "exit" => {
                exit_code = arg.parse().unwrap_or(1);
                "ok".into()
            }
            "signal" => {
                let _ = std::io::stdout().flush();
                // SAFETY: sending a signal to ourselves.
                unsafe { libc::raise(arg.parse().unwrap_or(libc::SIGKILL)) };
                "survived".into()
            }
            "wait-signal" => {
                let sig: i32 = arg.parse().unwrap_or(libc::SIGUSR1);
                // SAFETY: sigset_t is plain data, initialised by sigemptyset.
                let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
                let mut got = 0;
                // SAFETY: `set` is valid; block the signal, then wait for it.
                unsafe {
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, sig);
                    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    println!("ready");
                    let _ = std::io::stdout().flush();
                    libc::sigwait(&set, &mut got);
                }
                format!("got {got}")
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(arg.parse().unwrap_or(0)));
                "ok".into()
            }
            "owner" => match std::fs::metadata(arg) {
                Ok(m) => {
                    use std::os::unix::fs::MetadataExt;
                    format!("{}:{}", m.uid(), m.gid())
                }
                Err(e) => errno_name(&e),
            },
            "tcp-bind" => result(
                std::net::TcpListener::bind(("127.0.0.1", arg.parse().unwrap_or(0))).map(drop),
            ),
            // mknod-block:PATH:MAJOR:MINOR: make a block device node, then open it.
            "mknod-block" => {
                let mut it = arg.rsplitn(3, ':');
                let minor: u32 = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
                let major: u32 = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
                let path = std::ffi::CString::new(it.next().unwrap_or("")).unwrap_or_default();
                // SAFETY: `path` is NUL-terminated and outlives the call.
                let r = unsafe {
                    libc::mknod(
                        path.as_ptr(),
                        libc::S_IFBLK | 0o600,
                        libc::makedev(major, minor),
                    )
                };
                if r != 0 {
                    format!("mknod {}", errno_name(&std::io::Error::last_os_error()))
                } else {
                    result(std::fs::File::open(path.to_str().unwrap_or("")).map(drop))
                }
            }
            "escape" => escape(arg),
            "parent-exe" => parent_exe(),
            "privs-after-exec" => match std::process::Command::new(arg).arg("ids").output() {
                Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
                Err(e) => errno_name(&e),
            },
            _ => "unknown action".into(),
        };
        actions.push(serde_json::json!({"action": a, "result": out}));
    }
    r.insert("actions".into(), actions.into());
    println!("{}", serde_json::Value::Object(r));
    std::process::exit(exit_code);
}
