//! Real programs under the shipped policies: the job each policy is meant for, run with
//! the programs users run (sh, coreutils, tar, sed, git, gcc, sqlite3, python3), as root
//! and rootless. Root is required (CI runs as root); without it the tests say so and
//! pass only outside CI.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::launch::{tempdir, test_user};
use crate::need_root;
use crate::util::{kakoi, stderr, stdout};

/// Whether Debian's `/usr/bin/PROGRAM` is installed (`.ci/run` installs it; a missing one
/// fails under CI and skips the test, saying so, elsewhere).
fn have(program: &str) -> bool {
    have_at(&format!("/usr/bin/{program}"))
}

/// [`have`] for a program elsewhere (`/usr/sbin/nginx`).
fn have_at(path: &str) -> bool {
    let found = Path::new(path).exists();
    assert!(
        found || std::env::var("CI").is_err(),
        "{path} is missing under CI (scripts/setup.sh installs it)"
    );
    if !found {
        eprintln!("skipped: {path} is not installed");
    }
    found
}

/// `kakoi run -p POLICY -- sh -c SCRIPT`, as `user` (uid, gid) or as root.
fn run_sh(policy: &str, script: &str, user: Option<(u32, u32)>) -> Output {
    let mut c = kakoi();
    c.current_dir("/")
        .args(["run", "-T", "-p", policy, "--", "/bin/sh", "-c", script])
        .stdin(Stdio::null());
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c.output().unwrap()
}

/// A shell job on files in /tmp: write, read back, edit in place, archive, list, delete,
/// and a child reading its own /proc/self.
const FILE_JOB: &str = r#"set -e
cd /tmp
echo one > a
cat a
sed -i s/one/two/ a
cat a
mkdir d && cp a d/b && ls . d | tr '\n' ' ' && echo
tar czf x.tgz a d && tar tzf x.tgz | sort | tr '\n' ' ' && echo
rm -r a d x.tgz
ls -A | wc -l
sh -c 'grep ^Name: /proc/self/status'
seq 1 100 | sort -rn | head -3 | tr '\n' ' ' && echo
"#;

const FILE_JOB_OUT: &str = "one\ntwo\n.: a d  d: b \na d/ d/b \n0\nName:\tgrep\n100 99 98 \n";

/// git, gcc and sqlite3 in /tmp (HOME is the sandbox's /tmp under `rootfs host`). The
/// compiled program runs where the policy lets /tmp execute (`default`) and is refused
/// where it does not (`strict`: nothing written is executable).
const DEV_JOB: &str = r#"set -e
cd /tmp
git config --global user.email t@example.org
git config --global user.name T
git init -q repo && cd repo
echo 'int main(void) { return 42; }' > m.c
git add m.c && git commit -qm first && git log --format=%s
gcc -o m m.c
./m 2>/dev/null || echo "exit $?"
sqlite3 /tmp/db.sqlite 'create table t(x); insert into t values (1), (2); select sum(x) from t;'
"#;

#[test]
fn the_shell_job_runs_in_tmp_under_strict_and_default() {
    need_root!();
    for policy in ["strict", "default"] {
        for user in [None, Some(test_user())] {
            let o = run_sh(policy, FILE_JOB, user);
            assert!(o.status.success(), "{policy} {user:?}: {}", stderr(&o));
            assert_eq!(stdout(&o), FILE_JOB_OUT, "{policy} {user:?}");
        }
    }
}

#[test]
fn git_gcc_and_sqlite_run_under_default_and_strict() {
    need_root!();
    if !["git", "gcc", "sqlite3"].iter().all(|p| have(p)) {
        return;
    }
    for (policy, ran) in [("default", "exit 42"), ("strict", "exit 126")] {
        let o = run_sh(policy, DEV_JOB, None);
        assert!(o.status.success(), "{policy}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("first\n{ran}\n3\n"), "{policy}");
    }
    for (policy, ran) in [("default", "exit 42"), ("strict", "exit 126")] {
        let o = run_sh(policy, DEV_JOB, Some(test_user()));
        assert!(o.status.success(), "{policy} rootless: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!("first\n{ran}\n3\n"),
            "{policy} rootless"
        );
    }
}

const PY_JOB: &str = r#"
import json, multiprocessing as mp, os, tempfile, threading

def square(x):
    return x * x

def main():
    out = {}
    got = []
    threads = [threading.Thread(target=lambda i=i: got.append(i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["threads"] = sorted(got)
    for method in ["fork", "spawn", "forkserver"]:
        ctx = mp.get_context(method)
        with ctx.Pool(2) as pool:
            out[method] = pool.map(square, range(5))
        q = ctx.Queue()
        p = ctx.Process(target=q.put, args=(method,))
        p.start()
        out[method + "-queue"] = q.get()
        p.join()
        with ctx.Lock():
            pass
    with tempfile.NamedTemporaryFile("w+", dir="/tmp") as f:
        f.write("scratch")
        f.flush()
        f.seek(0)
        out["tmp"] = f.read()
    out["input"] = open("/data/in/input.txt").read()
    with open("/data/out/result.json.part", "w") as f:
        json.dump(out, f)
    os.replace("/data/out/result.json.part", "/data/out/result.json")
    print(json.load(open("/data/out/result.json"))["input"], end="")

if __name__ == "__main__":
    main()
"#;

/// The test's directories for [`PY_JOB`]: (tempdir, its `in` with the job and its input,
/// its `out`, writable by any uid the job runs as).
fn py_job_dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tempdir();
    let (input, output) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir(&input).unwrap();
    std::fs::create_dir(&output).unwrap();
    std::fs::write(input.join("job.py"), PY_JOB).unwrap();
    std::fs::write(input.join("input.txt"), "batch input\n").unwrap();
    for f in [&input.join("job.py"), &input.join("input.txt")] {
        std::fs::set_permissions(f, PermissionsExt::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&output, PermissionsExt::from_mode(0o777)).unwrap();
    (d, input, output)
}

/// Run [`PY_JOB`] under `policy` (which binds the job's directories on /data/in and
/// /data/out, and names the job as its command) and check its results.
fn run_py_job(policy: &std::path::Path, output: &std::path::Path, user: Option<(u32, u32)>) {
    let _ = std::fs::remove_file(output.join("result.json"));
    let mut c = kakoi();
    c.current_dir("/")
        .args(["run", "-T", "-p"])
        .arg(policy)
        .stdin(Stdio::null());
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{policy:?} {user:?}: {}", stderr(&o));
    assert_eq!(stdout(&o), "batch input\n", "{user:?}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("result.json")).unwrap())
            .unwrap();
    assert_eq!(r["threads"], serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7]));
    for m in ["fork", "spawn", "forkserver"] {
        assert_eq!(r[m], serde_json::json!([0, 1, 4, 9, 16]), "{m}");
        assert_eq!(r[format!("{m}-queue")], m);
    }
    assert_eq!(r["tmp"], "scratch");
}

/// `python-batch`: threads, every multiprocessing start method, /tmp, reading /data/in
/// and writing /data/out, with the test's own directories bound there (never the host's
/// /data).
#[test]
fn python_batch_runs_a_job_with_threads_and_every_start_method() {
    need_root!();
    if !have("python3") {
        return;
    }
    // The job runs as uid 1000 inside; the results directory is the job's to write.
    let (d, input, output) = py_job_dirs();
    // Rootless, uid 1000 inside is one of the caller's subordinate ids: `subids` maps them.
    let write_policy = |name: &str, extra: &str| {
        let policy = d.path().join(name);
        std::fs::write(
            &policy,
            format!(
                "extends \"python-batch\"\nfilesystem {{\n    bind \"{}\" -> \"/data/in\" ro\n    bind \"{}\" -> \"/data/out\" rw\n}}\n{extra}",
                input.display(),
                output.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&policy, PermissionsExt::from_mode(0o644)).unwrap();
        let check = kakoi()
            .args(["check", "--deny-warnings"])
            .arg(&policy)
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", stderr(&check));
        policy
    };
    let rootful = write_policy("batch.kakoi", "");
    let rootless = write_policy(
        "batch-rootless.kakoi",
        &format!(
            "identity {{\n    subids \"{}\"\n}}\n",
            crate::launch::TEST_USER
        ),
    );
    run_py_job(&rootful, &output, None);
    run_py_job(&rootless, &output, Some(test_user()));
}

/// One SIGTERM stops a payload that has no handler (the init forwards it; the payload is
/// not pid 1), as root and rootless; the exit status is the signal's.
#[test]
fn one_sigterm_stops_a_long_running_payload() {
    need_root!();
    let (uid, gid) = test_user();
    for user in [None, Some((uid, gid))] {
        let mut c = kakoi();
        c.current_dir("/")
            .args(["run", "-T", "--", "sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = user {
            c.uid(uid).gid(gid);
        }
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let pid = child.id() as i32;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                panic!("{user:?}: still running 5 s after one SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(143), "{user:?}: {status:?}");
    }
}

/// Clock offsets in a time namespace, root and rootless: the sandbox's boot time is the
/// host's plus the offset (written while the launcher is still dumpable, so an
/// unprivileged launcher can write its own /proc/self/timens_offsets).
#[test]
fn time_offsets_apply_root_and_rootless() {
    need_root!();
    let d = tempdir();
    let policy = d.path().join("clock.kakoi");
    std::fs::write(
        &policy,
        "extends \"default\"\nnamespaces {\n    time on\n}\nprocess {\n    time-offset boottime 1000s\n}\n",
    )
    .unwrap();
    std::fs::set_permissions(&policy, PermissionsExt::from_mode(0o644)).unwrap();
    let uptime = |text: &str| -> f64 { text.split_whitespace().next().unwrap().parse().unwrap() };
    for user in [None, Some(test_user())] {
        let mut c = kakoi();
        c.current_dir("/")
            .args(["run", "-T", "-p"])
            .arg(&policy)
            .args(["--", "cat", "/proc/uptime"])
            .stdin(Stdio::null());
        if let Some((uid, gid)) = user {
            c.uid(uid).gid(gid);
        }
        let host = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
        let o = c.output().unwrap();
        assert!(o.status.success(), "{user:?}: {}", stderr(&o));
        let inside = uptime(&stdout(&o));
        assert!(
            (inside - host - 1000.0).abs() < 5.0,
            "{user:?}: host {host}, sandbox {inside}"
        );
    }
}

/// A static program, compiled here with gcc, for roots that hold no C library.
fn static_program(dir: &Path, name: &str, source: &str) -> std::path::PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let exe = dir.join(name);
    let o = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&exe)
        .arg(&c)
        .output()
        .unwrap();
    assert!(o.status.success(), "gcc -static: {}", stderr(&o));
    exe
}

/// An overlay on `/` is the image, as in OCI: the first `lower` layer is on top, and the
/// host's /usr is not bound over it (it used to be, mixing the host's programs with the
/// image's /etc).
#[test]
fn an_overlay_root_is_its_layers_first_on_top() {
    need_root!();
    if !have("gcc") {
        return;
    }
    let d = tempdir();
    let (top, bottom) = (d.path().join("top"), d.path().join("bottom"));
    for dir in [top.join("etc"), top.join("bin"), bottom.join("etc")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(top.join("etc/layer"), "top\n").unwrap();
    std::fs::write(bottom.join("etc/layer"), "bottom\n").unwrap();
    std::fs::write(bottom.join("etc/only-bottom"), "yes\n").unwrap();
    let exe = static_program(
        d.path(),
        "layers",
        r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void show(const char *path) {
    char b[64] = "-";
    FILE *f = fopen(path, "r");
    if (f) { if (!fgets(b, sizeof b, f)) b[0] = 0; fclose(f); }
    b[strcspn(b, "\n")] = 0;
    printf("%s=%s ", path, b);
}
int main(void) {
    show("/etc/layer");
    show("/etc/only-bottom");
    printf("host-usr=%d\n", access("/usr/bin/env", F_OK) == 0);
    return 0;
}
"#,
    );
    std::fs::rename(&exe, top.join("bin/layers")).unwrap();
    let p = d.path().join("overlay-root.kakoi");
    std::fs::write(
        &p,
        format!(
            "extends \"default\"\nfilesystem {{\n    overlay \"/\" lower [\"{}\", \"{}\"] upper tmpfs\n}}\n",
            top.display(),
            bottom.display()
        ),
    )
    .unwrap();
    let o = kakoi()
        .args(["run", "-T", "--policy"])
        .arg(&p)
        .args(["--", "/bin/layers"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "/etc/layer=top /etc/only-bottom=yes host-usr=0"
    );
    let plan = kakoi()
        .args(["run", "--dry-run", "--policy"])
        .arg(&p)
        .args(["--", "/bin/layers"])
        .output()
        .unwrap();
    assert!(
        stdout(&plan).contains("nothing of the host's is bound in"),
        "{}",
        stdout(&plan)
    );
}

/// The checker's start-up warnings say what a real launch does: with W0511 no program
/// starts, with W0512 a shell cannot fork, and a policy free of W0505 on a merged-/usr
/// host (an `exec` rule on /usr/bin, the program named /bin/sh) runs.
#[test]
fn the_checkers_start_up_warnings_match_real_launches() {
    need_root!();
    let fixture = |name: &str| {
        format!(
            "{}/fixtures/warnings/{name}.kakoi",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let check = |name: &str| {
        let o = kakoi().args(["check", &fixture(name)]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    let run = |name: &str, script: &str| {
        kakoi()
            .args([
                "run",
                "-T",
                "--policy",
                &fixture(name),
                "--",
                "/bin/sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(check("cannot-start-a-program").contains("W0511"));
    let o = run("cannot-start-a-program", "echo started");
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(!stdout(&o).contains("started"));
    assert!(
        stderr(&o).contains("cannot set %fs base address"),
        "{}",
        stderr(&o)
    );

    assert!(check("no-process-creation").contains("W0512"));
    let o = run("no-process-creation", "/bin/true && echo forked");
    assert!(!stdout(&o).contains("forked"), "{}", stdout(&o));
    assert!(stderr(&o).contains("Cannot fork"), "{}", stderr(&o));

    let warnings = check("merged-usr");
    assert!(!warnings.contains("W0505"), "{warnings}");
    let o = run("merged-usr", "echo ran");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "ran");
}

/// The caller's side of a pseudo-terminal that `kakoi run -t` runs on, as a user's
/// terminal emulator would hold it.
struct Terminal {
    master: std::fs::File,
    seen: String,
}

impl Terminal {
    /// Start `c` on a new pty of `rows` × `cols` as its controlling terminal.
    fn spawn(mut c: Command, rows: u16, cols: u16) -> (Terminal, crate::util::Reaped) {
        use std::os::fd::FromRawFd;
        let (mut m, mut s) = (0, 0);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors it opened; the other arguments are
        // null (no name) or point at a live winsize.
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are owned here only.
        let (master, slave) =
            unsafe { (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s)) };
        c.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: between fork and exec only async-signal-safe calls: a new session, and
        // the pty on stdin as its controlling terminal.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = crate::util::Reaped::new(c.spawn().unwrap());
        (
            Terminal {
                master,
                seen: String::new(),
            },
            child,
        )
    }

    fn send(&mut self, text: &str) {
        use std::io::Write;
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Read until `needle` has been printed (after what earlier calls consumed); the text
    /// up to and including it.
    fn expect(&mut self, needle: &str) -> String {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self.seen.find(needle) {
                let upto: String = self.seen.drain(..i + needle.len()).collect();
                return upto;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "never printed {needle:?}; got {:?}",
                self.seen
            );
            let mut p = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            unsafe { libc::poll(&mut p, 1, left.as_millis().min(500) as i32) };
            if p.revents & libc::POLLIN != 0 {
                let mut b = [0u8; 4096];
                match self.master.read(&mut b) {
                    Ok(n) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&b[..n])),
                    // EIO: every slave end is closed (the launcher exited).
                    _ => panic!("the terminal closed before {needle:?}; got {:?}", self.seen),
                }
            }
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one live winsize; the kernel signals SIGWINCH to the
        // terminal's foreground process group (the launcher's).
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(r, 0);
    }
}

/// `kakoi run -t -- /bin/sh -i` is a working terminal: job control is on, Ctrl-C stops a
/// foreground job and not the shell, window size changes reach the sandbox, the payload's
/// terminal is the sandbox's own pty (never the caller's), and the shell's exit status is
/// kakoi's. As root and rootless.
#[test]
fn an_interactive_shell_under_t_has_a_working_terminal() {
    need_root!();
    for user in [None, Some(test_user())] {
        let who = if user.is_some() { "rootless" } else { "root" };
        let mut c = kakoi();
        c.current_dir("/").args([
            "run",
            "-t",
            "-p",
            "default",
            "-e",
            "PS1=sandbox> ",
            "--",
            "/bin/sh",
            "-i",
        ]);
        if let Some((uid, gid)) = user {
            c.uid(uid).gid(gid);
        }
        let (mut t, mut child) = Terminal::spawn(c, 30, 90);
        t.send("echo started-$((6*7))\n");
        t.expect("started-42");
        // Job control on: a plain sh says "can't access tty; job control turned off".
        let banner = t.expect("sandbox> ");
        assert!(!banner.contains("job control"), "{who}: {banner}");
        t.send("stty size; echo pts: $(ls /dev/pts)\n");
        let out = t.expect("sandbox> ");
        assert!(out.contains("30 90"), "{who}: {out}");
        // A devpts of the sandbox's own, holding only its pty: the caller's is not there.
        assert!(out.contains("pts: 0 ptmx"), "{who}: {out}");
        // A foreground job, stopped by one Ctrl-C; the shell lives on.
        t.send("sleep 100\n");
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        t.send("\x03");
        t.expect("^C");
        t.send("echo status-$?\n");
        t.expect("status-130");
        assert!(start.elapsed() < Duration::from_secs(5), "{who}");
        // A new size reaches the sandbox's terminal.
        t.resize(50, 132);
        std::thread::sleep(Duration::from_millis(200));
        t.send("stty size\n");
        t.expect("50 132");
        t.send("exit 3\n");
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(3), "{who}: {:?}", t.seen);
    }
}

/// A Python HTTP server and a client in one sandbox, over its own loopback.
const HTTP_JOB: &str = r#"
import http.server, threading, urllib.request, os
os.makedirs("/tmp/site", exist_ok=True)
open("/tmp/site/index.html", "w").write("served from the sandbox\n")
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory="/tmp/site", **k)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=s.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{s.server_address[1]}/index.html"
print(urllib.request.urlopen(url, timeout=5).read().decode(), end="")
s.shutdown()
"#;

fn run_python(policy: &str, script: &str, user: Option<(u32, u32)>) -> Output {
    let mut c = kakoi();
    c.current_dir("/")
        .args([
            "run",
            "-T",
            "-p",
            policy,
            "--",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .stdin(Stdio::null());
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c.output().unwrap()
}

fn hand_written() -> String {
    format!(
        "{}/fixtures/workloads/hand-written.kakoi",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// An HTTP server and client on the sandbox's own loopback (its network namespace has
/// only `lo`), under the policies that allow inet sockets, root and rootless; `strict`
/// refuses the socket.
#[test]
fn an_http_server_and_client_talk_over_the_sandbox_loopback() {
    need_root!();
    if !have("python3") {
        return;
    }
    for policy in ["default".to_string(), hand_written()] {
        for user in [None, Some(test_user())] {
            let o = run_python(&policy, HTTP_JOB, user);
            assert!(o.status.success(), "{policy} {user:?}: {}", stderr(&o));
            assert_eq!(stdout(&o), "served from the sandbox\n", "{policy} {user:?}");
        }
    }
    let o = run_python("strict", HTTP_JOB, None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("PermissionError: [Errno 1] Operation not permitted"),
        "{}",
        stderr(&o)
    );
}

/// A policy written from the language reference alone (fixtures/workloads/
/// hand-written.kakoi: it extends nothing) runs every workload, root and rootless.
#[test]
fn a_policy_written_from_the_language_reference_runs_every_workload() {
    need_root!();
    if !["git", "gcc", "sqlite3", "python3"].iter().all(|p| have(p)) {
        return;
    }
    let check = kakoi()
        .args(["check", "--deny-warnings", &hand_written()])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let (d, input, output) = py_job_dirs();
    let batch = d.path().join("batch.kakoi");
    std::fs::write(
        &batch,
        format!(
            "extends \"{}\"\nfilesystem {{\n    bind \"{}\" -> \"/data/in\" ro\n    bind \"{}\" -> \"/data/out\" rw\n    read [\"/data/in\", \"/data/out\"]\n    write \"/data/out\"\n    make \"/data/out\"\n    remove \"/data/out\"\n}}\nprocess {{\n    argv [\"/usr/bin/python3\", \"/data/in/job.py\"]\n}}\n",
            hand_written(),
            input.display(),
            output.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&batch, PermissionsExt::from_mode(0o644)).unwrap();
    for user in [None, Some(test_user())] {
        let o = run_sh(&hand_written(), FILE_JOB, user);
        assert!(o.status.success(), "{user:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), FILE_JOB_OUT, "{user:?}");
        let o = run_sh(&hand_written(), DEV_JOB, user);
        assert!(o.status.success(), "{user:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "first\nexit 42\n3\n", "{user:?}");
        run_py_job(&batch, &output, user);
    }
}

/// A network namespace of the test's own, removed on drop: every bridge, address and
/// listener of a veth test lives in it (never in the host's).
struct TestNetns(String);

impl TestNetns {
    fn new(tag: &str) -> TestNetns {
        let name = format!("kakoi-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let ns = TestNetns(name);
        ns.ip(&["netns", "add", &ns.0]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let o = Command::new("ip").args(args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
    }

    /// `program` run in the namespace: `nsenter --net` switches the network namespace
    /// only (`ip netns exec` would also mount a new /sys, hiding the cgroup hierarchies).
    fn command(&self, program: &std::ffi::OsStr) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.0)).arg(program);
        c
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

const NGINX_CONF: &str = "worker_processes 1;
pid /tmp/nginx.pid;
error_log /var/log/www/error.log;
events { worker_connections 64; }
http {
    access_log /var/log/www/access.log;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server {
        listen 8080;
        root /srv/www;
    }
}
";

/// `web-server` runs Debian's nginx as its job says: it serves /srv/www on port 8080 of
/// its veth address, writes its logs to /var/log/www, cannot write its document root,
/// and stops on one SIGTERM. The bridge the policy names is made in a network namespace
/// of the test's own, where kakoi and the client run.
#[test]
fn web_server_serves_files_and_writes_logs_on_its_port() {
    need_root!();
    if !have_at("/usr/sbin/nginx") || !have("curl") {
        return;
    }
    let d = tempdir();
    let (www, log, conf) = (
        d.path().join("www"),
        d.path().join("log"),
        d.path().join("conf"),
    );
    for dir in [&www, &log, &conf] {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::write(www.join("index.html"), "hello from kakoi\n").unwrap();
    std::fs::write(conf.join("nginx.conf"), NGINX_CONF).unwrap();
    for f in [www.join("index.html"), conf.join("nginx.conf")] {
        std::fs::set_permissions(f, PermissionsExt::from_mode(0o644)).unwrap();
    }
    // The server runs as www-data (33), as the policy says; its log directory is its own.
    std::os::unix::fs::chown(&log, Some(33), Some(33)).unwrap();
    let policy = d.path().join("www.kakoi");
    std::fs::write(
        &policy,
        format!(
            "extends \"web-server\"\nfilesystem {{\n    bind \"{}\" -> \"/srv/www\" ro\n    bind \"{}\" -> \"/var/log/www\" rw\n    bind \"{}\" -> \"/srv/conf\"\n    read \"/srv/conf\"\n}}\nprocess {{\n    argv [\"/usr/sbin/nginx\", \"-e\", \"/var/log/www/error.log\", \"-c\", \"/srv/conf/nginx.conf\", \"-g\", \"daemon off;\"]\n}}\n",
            www.display(),
            log.display(),
            conf.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&policy, PermissionsExt::from_mode(0o644)).unwrap();

    // No hand-made bridge: kakoi makes kakoi0 (with 10.88.0.1/16) in the namespace.
    let ns = TestNetns::new("web");
    ns.ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    let mut server = crate::util::Reaped::new(
        ns.command(kakoi().get_program())
            .args(["run", "-T", "-p"])
            .arg(&policy)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The server's address: the lease its launcher (nsenter execs kakoi in place) holds.
    let deadline = Instant::now() + Duration::from_secs(60);
    let leases = Path::new(kakoi::launch::net::LEASES).join("10.88.0.0-16");
    let address = loop {
        let mine = std::fs::read_dir(&leases)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|t| t.split_whitespace().next() == Some(&server.id().to_string()))
            });
        if let Some(e) = mine {
            break e.file_name().to_string_lossy().into_owned();
        }
        assert!(Instant::now() < deadline, "no lease for the server");
        std::thread::sleep(Duration::from_millis(20));
    };
    let curl = |path: &str| {
        ns.command("curl".as_ref())
            .args(["-s", "--max-time", "2", "-w", "\n%{http_code}"])
            .arg(format!("http://{address}:8080{path}"))
            .output()
            .unwrap()
    };
    let page = loop {
        let o = curl("/");
        if o.status.success() {
            break stdout(&o);
        }
        assert!(
            Instant::now() < deadline && server.try_wait().unwrap().is_none(),
            "nginx never answered: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(page, "hello from kakoi\n\n200");
    assert!(stdout(&curl("/missing")).ends_with("404"));
    // SIGTERM to kakoi, forwarded by its init: nginx's fast shutdown, exit status 0.
    // SAFETY: signalling the nsenter child, which execs kakoi in place.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let o = server.take().wait_with_output().unwrap();
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(5));
    let access = std::fs::read_to_string(log.join("access.log")).unwrap();
    assert!(access.contains("\"GET / HTTP/1.1\" 200"), "{access}");
    assert!(
        access.starts_with("10.88.0.1 "),
        "the client is the bridge's address: {access}"
    );
    assert!(access.contains("\"GET /missing HTTP/1.1\" 404"), "{access}");
    assert!(!leases.join(&address).exists(), "the address is given back");
    assert!(
        std::fs::read_to_string(log.join("error.log"))
            .unwrap()
            .contains("/srv/www/missing"),
        "the error log is written"
    );
    assert_eq!(
        std::fs::read_dir(&www).unwrap().count(),
        1,
        "the document root is unchanged"
    );
}
