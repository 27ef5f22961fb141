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
    let found = Path::new("/usr/bin").join(program).exists();
    assert!(
        found || std::env::var("CI").is_err(),
        "/usr/bin/{program} is missing under CI (scripts/setup.sh installs it)"
    );
    if !found {
        eprintln!("skipped: /usr/bin/{program} is not installed");
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
fn strict_runs_a_shell_job_in_tmp() {
    need_root!();
    let o = run_sh("strict", FILE_JOB, None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), FILE_JOB_OUT);
    let (uid, gid) = test_user();
    let o = run_sh("strict", FILE_JOB, Some((uid, gid)));
    assert!(o.status.success(), "rootless: {}", stderr(&o));
    assert_eq!(stdout(&o), FILE_JOB_OUT, "rootless");
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
    let (uid, gid) = test_user();
    let o = run_sh("default", DEV_JOB, Some((uid, gid)));
    assert!(o.status.success(), "rootless: {}", stderr(&o));
    assert_eq!(stdout(&o), "first\nexit 42\n3\n", "rootless");
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

/// `python-batch`: threads, every multiprocessing start method, /tmp, reading /data/in
/// and writing /data/out, with the test's own directories bound there (never the host's
/// /data).
#[test]
fn python_batch_runs_a_job_with_threads_and_every_start_method() {
    need_root!();
    if !have("python3") {
        return;
    }
    let d = tempdir();
    let (input, output) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir(&input).unwrap();
    std::fs::create_dir(&output).unwrap();
    std::fs::write(input.join("job.py"), PY_JOB).unwrap();
    std::fs::write(input.join("input.txt"), "batch input\n").unwrap();
    for f in [&input.join("job.py"), &input.join("input.txt")] {
        std::fs::set_permissions(f, PermissionsExt::from_mode(0o644)).unwrap();
    }
    // The job runs as uid 1000 inside; the results directory is the job's to write.
    std::fs::set_permissions(&output, PermissionsExt::from_mode(0o777)).unwrap();
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
    let run = |policy: &std::path::Path, user: Option<(u32, u32)>| {
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
        assert!(o.status.success(), "{user:?}: {}", stderr(&o));
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
    };
    run(&rootful, None);
    run(&rootless, Some(test_user()));
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
