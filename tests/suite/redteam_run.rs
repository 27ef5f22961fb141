//! The red-team findings (issue 27) against `kakoi run`: one regression test per finding,
//! each of which failed before its fix. They need root (the launcher runs as root here,
//! as in CI, where a missing root is a failure) and use only programs of the host (`sh`,
//! `python3`, `cp`), through policies that extend the shipped `default`.
//!
//! L3 (TIOCSTI) is `launch::tiocsti_cannot_reach_the_callers_terminal`, L5 (a launcher
//! killed at any moment) is `launch::load_with_killed_launchers_leaves_nothing`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{kakoi, stderr, stdout};

/// Whether the test can run: root. Under `CI=true` a missing root is a failure.
fn need_root() -> bool {
    if nix_is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "the red-team battery needs root"
    );
    eprintln!("skipped: the red-team battery needs root");
    false
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("kakoi-redteam-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), PermissionsExt::from_mode(0o755)).unwrap();
    d
}

/// A policy extending `default` with `body`.
fn policy(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.kakoi"));
    std::fs::write(&p, format!("kakoi 1\nextends \"default\"\n{body}\n")).unwrap();
    p
}

/// `kakoi run --policy P -- sh -c SCRIPT`.
fn sh(policy: &Path, script: &str) -> Command {
    let mut c = kakoi();
    c.args(["run", "--policy"])
        .arg(policy)
        .args(["--", "/bin/sh", "-c", script]);
    c
}

fn run(mut c: Command) -> Output {
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// The pids of a launch's sandbox (its init and the payload), once there are two.
fn sandbox_pids(launcher: u32) -> Vec<i32> {
    let procs = format!("the pids cgroup of launcher {launcher}");
    for _ in 0..500 {
        let pids: Vec<i32> = crate::launch::launch_procs(launcher)
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        if pids.len() >= 2 {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no sandbox in {procs}");
}

fn all_gone(pids: &[i32], within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if pids.iter().all(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).map_or(true, |s| s.contains(") Z "))
        }) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// E1: the caller's stdout is a host file; the payload (host root, with FOWNER and FSETID)
/// cannot chmod it setuid or write it through /proc/self/fd: it holds a pipe. The same
/// for a host file given as stdin, which it cannot reopen for writing.
#[test]
fn e1_the_callers_files_are_relayed_not_handed_over() {
    if !need_root() {
        return;
    }
    let d = tempdir();
    let p = policy(d.path(), "e1", "");
    let out = d.path().join("out");
    let f = std::fs::File::create(&out).unwrap();
    std::fs::set_permissions(&out, PermissionsExt::from_mode(0o644)).unwrap();
    let o = sh(
        &p,
        "echo hello; chmod 4755 /proc/self/fd/1; chown 65534 /proc/self/fd/1; \
         python3 -c 'import os; os.setxattr(\"/proc/self/fd/1\", \"user.x\", b\"1\")' 2>/dev/null; true",
    )
    .stdin(Stdio::null())
    .stdout(f)
    .status()
    .unwrap();
    assert!(o.success());
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o644, "the host file's mode changed");
    assert_eq!(m.uid(), 0, "the host file's owner changed");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello\n");
    assert!(
        xattr_absent(&out, "user.x"),
        "an xattr was set on the host file"
    );

    let input = d.path().join("in");
    std::fs::write(&input, "original\n").unwrap();
    let o = sh(
        &p,
        "cat; echo tampered > /proc/self/fd/0; chmod 4755 /proc/self/fd/0; true",
    )
    .stdin(std::fs::File::open(&input).unwrap())
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "original\n");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "original\n");
    assert_eq!(
        std::fs::metadata(&input).unwrap().mode() & 0o7777,
        0o644 & !umask()
    );
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map_or(0o022, |v| u32::from_str_radix(v.trim(), 8).unwrap())
}

fn xattr_absent(path: &Path, name: &str) -> bool {
    let o = Command::new("python3")
        .args([
            "-c",
            "import os,sys; print(sys.argv[2] in os.listxattr(sys.argv[1]))",
        ])
        .arg(path)
        .arg(name)
        .output()
        .unwrap();
    stdout(&o).trim() == "False"
}

/// The seccomp rules SECURITY.md gives for a payload that is the host's root and writes a
/// bind: no setuid or setgid mode can be set (so no such binary lands on the host).
pub const NO_SETID_RULES: &str = "seccomp {
    deny [chmod, fchmod] if mode & 0o6000 != 0
    deny [fchmodat, fchmodat2] if mode & 0o6000 != 0
    deny open if mode & 0o6000 != 0
    deny creat if mode & 0o6000 != 0
    deny openat if mode & 0o6000 != 0
    deny mknod if mode & 0o6000 != 0
    deny mknodat if mode & 0o6000 != 0
    errno(ENOSYS) openat2
}
capabilities {
    drop [SETFCAP]
}";

/// E2: a `rw` bind of a host directory is `nosuid`: a setuid-root binary in it gives a
/// payload user nothing, even without no_new_privs. With SECURITY.md's rules the payload
/// (the host's root) cannot leave a setuid or file-capability binary there for the host's
/// users either.
#[test]
fn e2_a_writable_bind_is_nosuid() {
    if !need_root() {
        return;
    }
    let d = tempdir();
    let srv = d.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    std::fs::set_permissions(&srv, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::copy("/usr/bin/id", srv.join("id")).unwrap();
    std::fs::set_permissions(srv.join("id"), PermissionsExt::from_mode(0o4755)).unwrap();
    let bind = format!(
        "filesystem {{\n    bind \"{}\" -> \"/mnt\" rw\n}}",
        srv.display()
    );
    let p = policy(
        d.path(),
        "e2",
        &format!("{bind}\nidentity {{\n    user 1000\n    group 1000\n}}\nprocess {{\n    no-new-privs off\n}}"),
    );
    let o = run(sh(&p, "/mnt/id -u; grep ' /mnt ' /proc/self/mountinfo"));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("1000"),
        "the setuid bit took effect: {out}"
    );
    let opts = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(5))
        .unwrap_or("");
    assert!(opts.split(',').any(|o| o == "nosuid"), "not nosuid: {out}");

    std::fs::remove_file(srv.join("id")).unwrap();
    let p = policy(
        d.path(),
        "e2-no-setid",
        &format!("{bind}\n{NO_SETID_RULES}"),
    );
    run(sh(
        &p,
        "cp /bin/true /mnt/t; chmod 4755 /mnt/t; chmod g+s /mnt/t; \
         python3 -c 'import os; os.open(\"/mnt/u\", os.O_CREAT | os.O_WRONLY, 0o6755)' 2>/dev/null; \
         python3 -c 'import os; os.setxattr(\"/mnt/t\", \"security.capability\", bytes([0,0,0,2]) + bytes(16))' 2>/dev/null; true",
    ));
    assert!(srv.join("t").exists(), "the payload could write the bind");
    for e in std::fs::read_dir(&srv).unwrap().flatten() {
        let m = e.metadata().unwrap();
        assert_eq!(
            m.mode() & 0o6000,
            0,
            "{} is setuid/setgid",
            e.path().display()
        );
        assert!(
            xattr_absent(&e.path(), "security.capability"),
            "{} has file capabilities",
            e.path().display()
        );
    }
}

/// L1: with a policy user other than root (the credential change used to clear the
/// parent-death signal), a SIGKILLed launcher takes the sandbox with it.
#[test]
fn l1_a_non_root_payload_dies_with_its_launcher() {
    if !need_root() {
        return;
    }
    let d = tempdir();
    let p = policy(
        d.path(),
        "l1",
        "identity {\n    user 1000\n    group 1000\n}",
    );
    let mut child = kakoi()
        .args(["run", "--policy"])
        .arg(&p)
        .args(["--", "/bin/sleep", "100"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pids = sandbox_pids(child.id());
    // Once the payload has changed its credentials (the step that used to clear the
    // parent-death signal).
    let as_1000 = || {
        pids.iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .any(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.contains("1000"))
            })
    };
    let t = Instant::now();
    while !as_1000() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the payload never ran as 1000"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        all_gone(&pids, Duration::from_secs(2)),
        "{pids:?} outlived the launcher"
    );
}

/// L4: a mount the host makes under a bound directory after the launch does not appear
/// in the sandbox (private propagation).
#[test]
fn l4_host_mounts_made_after_launch_stay_outside() {
    if !need_root() {
        return;
    }
    let d = tempdir();
    let shared = d.path().join("shared");
    std::fs::create_dir_all(shared.join("sub")).unwrap();
    let p = policy(
        d.path(),
        "l4",
        &format!(
            "filesystem {{\n    bind \"{}\" -> \"/mnt\"\n}}",
            shared.display()
        ),
    );
    let mut child = sh(
        &p,
        "echo ready; read go; grep -c ' /mnt/sub ' /proc/self/mountinfo; ls /mnt/sub",
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let sub = shared.join("sub");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1M", "kakoi-l4"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(sub.join("host-file"), "x").unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let _ = child.wait();
    let _ = Command::new("umount").arg(&sub).status();
    assert_eq!(rest, "0\n", "the host's new mount is visible inside");
}

/// L6: the sandbox has its own /etc/hostname, /etc/hosts and /etc/resolv.conf, and the
/// host's secrets read as empty.
#[test]
fn l6_the_hosts_etc_secrets_are_masked() {
    if !need_root() {
        return;
    }
    let d = tempdir();
    let p = policy(d.path(), "l6", "process {\n    hostname \"box\"\n}");
    let o = run(sh(
        &p,
        "cat /etc/hostname; grep -c box /etc/hosts; \
         for f in /etc/shadow /etc/gshadow /etc/machine-id /etc/subuid; do \
           [ -e $f ] && printf '%s %s\\n' $f $(wc -c < $f); done; \
         ls /etc/ssl/private | wc -l",
    ));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("box"), "{out}");
    assert_ne!(
        lines.next(),
        Some("0"),
        "/etc/hosts names the sandbox: {out}"
    );
    for l in lines.by_ref() {
        if let Some((f, n)) = l.split_once(' ') {
            assert_eq!(n, "0", "{f} is readable: {out}");
        } else {
            assert_eq!(l, "0", "/etc/ssl/private lists files: {out}");
        }
    }
    // The host really has the secrets the sandbox cannot read.
    assert!(std::fs::metadata("/etc/shadow").unwrap().len() > 0);
}

/// L7 has its test with the rootless ones (`launch::rootless_*`).
///
/// L8: kernel-layout files are masked, a netlink uevent socket is refused, and the
/// payload cannot set its login uid.
#[test]
fn l8_kernel_layout_uevents_and_loginuid() {
    if !need_root() {
        return;
    }
    let d = tempdir();
    let p = policy(d.path(), "l8", "");
    let o = run(sh(
        &p,
        "for f in /proc/kpagecount /proc/kpageflags /proc/kpagecgroup /proc/slabinfo \
                  /proc/vmallocinfo /proc/pagetypeinfo /sys/kernel/vmcoreinfo; do \
           [ -e $f ] && printf '%s %s\\n' $f $(head -c 64 $f 2>/dev/null | wc -c); done; \
         python3 -c 'import socket\ntry:\n socket.socket(16, socket.SOCK_DGRAM, 15); print(\"uevent open\")\nexcept OSError as e: print(\"uevent\", e.errno)'; \
         (echo 0 > /proc/self/loginuid) 2>/dev/null && echo loginuid written || echo loginuid refused",
    ));
    let out = stdout(&o);
    let mut seen = 0;
    for l in out.lines() {
        if let Some((f, n)) = l.split_once(' ').filter(|(f, _)| f.starts_with('/')) {
            assert_eq!(n, "0", "{f} is readable: {out}");
            seen += 1;
        }
    }
    assert!(seen >= 5, "{out}");
    assert!(out.contains("uevent 1\n"), "{out}");
    assert!(out.contains("loginuid refused"), "{out}");
}

/// A payload that stops itself under `ptrace(PTRACE_TRACEME)` (so that only a tracer
/// could resume it) no longer hangs the launcher: the init detaches it (so it is stopped
/// as an untraced process would be), the launcher says so, and `timeout` holds. (With
/// capabilities the init lacks, as under `default` as root, TRACEME itself is refused.)
#[test]
fn a_traceme_payload_does_not_hang_the_launcher() {
    if !need_root() {
        return;
    }
    let d = tempdir();
    let p = policy(
        d.path(),
        "traceme",
        "identity {\n    user 1000\n    group 1000\n}\nprocess {\n    timeout 3s\n}",
    );
    let mut c = sh(
        &p,
        "exec python3 -c 'import ctypes, os, signal\n\
assert ctypes.CDLL(None).ptrace(0, 0, 0, 0) == 0\n\
os.kill(os.getpid(), signal.SIGSTOP)'",
    );
    let t = Instant::now();
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    let o = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(o) => o,
        Err(_) => {
            // SAFETY: signalling the launcher this test started, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the launcher hangs on a PTRACE_TRACEME payload");
        }
    };
    assert!(t.elapsed() < Duration::from_secs(20));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(137), "{err}");
    assert!(
        err.contains("PTRACE_TRACEME"),
        "the launcher says why: {err}"
    );
    assert!(err.contains("time limit"), "{err}");
}
