//! `kakoi run`, checked from inside: the probe (`examples/probe.rs`, built by `cargo test`)
//! runs as the payload and reports what it sees; the tests compare that with the policy.
//!
//! These need root (CI runs as root); without it they say so and pass vacuously only
//! in that one case. The rootless tests run the launcher as an unprivileged user they
//! create (`kakoitest`).

use std::io::{BufRead, BufReader};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::{kakoi, stderr, stdout};

pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    })
}

#[macro_export]
macro_rules! need_root {
    () => {
        if !$crate::launch::is_root() {
            // Under CI a missing prerequisite is a failure, not a pass.
            assert!(
                std::env::var("CI").is_err(),
                "`kakoi run` tests need root under CI"
            );
            eprintln!("skipped: `kakoi run` tests need root");
            return;
        }
    };
}

/// The directory holding the built probe (target/<profile>/examples), built once per run
/// (`cargo test --test suite` alone does not build examples).
fn examples_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "probe"])
            .current_dir(crate::util::root())
            .status()
            .unwrap();
        assert!(st.success(), "building the probe failed");
    });
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    assert!(
        dir.join("probe").is_file(),
        "the probe is built by `cargo test` ({})",
        dir.display()
    );
    dir
}

/// A temporary directory others can read (for the rootless launcher).
pub(crate) fn tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("kakoi-run-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    d
}

/// Write a policy extending `default` (plus `extra`) that binds the probe at /probe.
fn policy(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let text = format!(
        "extends \"default\"\nfilesystem {{\n    bind \"{}\" -> \"/probe\"\n}}\n{extra}\n",
        examples_dir().display()
    );
    let p = dir.join(format!("{name}.kakoi"));
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    p
}

fn run_probe(policy: &Path, actions: &[&str]) -> Output {
    let mut c = kakoi();
    c.args(["run", "--policy"])
        .arg(policy)
        .args(["--", "/probe/probe"])
        .args(actions);
    c.output().unwrap()
}

/// The probe's report (the last line of its output).
fn report(o: &Output) -> Value {
    let out = stdout(o);
    let line = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no report; stderr: {}", stderr(o)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\nstderr: {}", stderr(o)))
}

fn action(r: &Value, i: usize) -> String {
    r["actions"][i]["result"].as_str().unwrap().to_string()
}

/// Run the probe with `(action, expected result)` pairs; assert each and return the report.
fn expect_actions(policy: &Path, want: &[(&str, &str)]) -> Value {
    let actions: Vec<&str> = want.iter().map(|(a, _)| *a).collect();
    let o = run_probe(policy, &actions);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    for (i, (a, expected)) in want.iter().enumerate() {
        assert_eq!(action(&r, i), *expected, "{a}");
    }
    r
}

fn mount<'a>(r: &'a Value, target: &str) -> Option<&'a Value> {
    r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["target"] == target)
}

/// Start the probe under `policy`, waiting for SIGUSR1; returns once it is running (its
/// first line, "ready", is returned too).
fn spawn_waiting(
    policy: &Path,
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    spawn_waiting_with(policy, &[])
}

/// [`spawn_waiting`] with extra environment variables for kakoi.
fn spawn_waiting_with(
    policy: &Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    let mut child = kakoi()
        .envs(env.iter().copied())
        .args(["run", "--policy"])
        .arg(policy)
        .args(["--", "/probe/probe", "wait-signal:10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (child, out, line)
}

/// Let a launch from [`spawn_waiting`] finish (SIGUSR1 ends the probe's wait), and check
/// that it succeeded.
fn release(mut child: std::process::Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    assert!(child.wait().unwrap().success());
}

fn my_ns(n: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{n}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Held by tests that count leftover cgroups and by the one that leaves one on purpose.
static CGROUP_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cgroup_lock() -> std::sync::MutexGuard<'static, ()> {
    CGROUP_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The directory of this test process's own cgroup in the hierarchy mounted at `mount`
/// (`v1`: which controller's line of /proc/self/cgroup names it): a launcher the test
/// starts inherits it, and makes its cgroups below it.
pub(crate) fn own_cgroup_dir(mount: &str, controller: Option<&str>) -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = match controller {
                None => ctrls.is_empty(),
                Some(c) => ctrls.split(',').any(|x| x == c),
            };
            hit.then(|| path.to_string())
        })
        .unwrap_or_else(|| "/".into());
    Path::new(mount).join(path.trim_start_matches('/'))
}

/// Where each launch of this test process makes its cgroups: (hierarchy mount, directory).
fn cgroup_parents() -> Vec<(String, PathBuf)> {
    use kakoi::launch::cgroup::Hierarchy;
    let layout = kakoi::launch::cgroup::host_layout();
    let mut v: Vec<(String, PathBuf)> = Vec::new();
    for (c, h) in &layout.controllers {
        let ctrl = if c == "io" { "blkio" } else { c.as_str() };
        let (mount, dir) = match h {
            Hierarchy::V1 { mount } => (mount.clone(), own_cgroup_dir(mount, Some(ctrl))),
            Hierarchy::V2 { mount } => (mount.clone(), own_cgroup_dir(mount, None)),
        };
        if !v.iter().any(|(m, _)| *m == mount) {
            v.push((mount, dir));
        }
    }
    if let Some(u) = &layout.unified {
        if !v.iter().any(|(m, _)| m == u) {
            v.push((u.clone(), own_cgroup_dir(u, None)));
        }
    }
    v
}

/// The cgroup of the launch by `launcher` (`kakoi-<pid>-<start time>`) in the hierarchy
/// of `controller` (`"unified"`: the v2 leaf), if it exists yet.
pub(crate) fn launch_cgroup(controller: &str, launcher: u32) -> Option<PathBuf> {
    use kakoi::launch::cgroup::Hierarchy;
    let layout = kakoi::launch::cgroup::host_layout();
    let ctrl = if controller == "io" {
        "blkio"
    } else {
        controller
    };
    let parent = match (controller, layout.controllers.get(controller)) {
        ("unified", _) => own_cgroup_dir(layout.unified.as_deref()?, None),
        (_, Some(Hierarchy::V1 { mount })) => own_cgroup_dir(mount, Some(ctrl)),
        (_, Some(Hierarchy::V2 { mount })) => own_cgroup_dir(mount, None),
        (_, None) => return None,
    };
    let prefix = format!("kakoi-{launcher}-");
    std::fs::read_dir(&parent)
        .ok()?
        .flatten()
        .find(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
}

/// The tasks of a launch's pids cgroup ("" until it exists).
pub(crate) fn launch_procs(launcher: u32) -> String {
    launch_cgroup("pids", launcher)
        .and_then(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .unwrap_or_default()
}

/// cgroup directories left by launchers (`kakoi-<pid>-<start>`) whose launcher is gone,
/// where this test process's launches make them.
fn leftover_cgroups() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for (_, base) in cgroup_parents() {
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            // Idle cgroups of the pool (`kakoi-pool-…`) are kept on purpose.
            let Some(rest) = n.strip_prefix("kakoi-") else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            let named = rest
                .split('-')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if named && !Path::new(&format!("/proc/{pid}")).exists() {
                v.push(e.path());
            }
        }
    }
    v
}

fn cap_mask(names: &[&str]) -> String {
    let m = names
        .iter()
        .map(|n| kakoi::policy_lang::catalogue::capability(n).unwrap())
        .fold(0u64, |m, c| m | 1 << c);
    format!("{m:016x}")
}

use kakoi::policy_lang::catalogue::DOCKER_DEFAULT_CAPS as DOCKER_CAPS;

#[test]
fn the_default_sandbox_seen_from_inside() {
    need_root!();
    let d = tempdir();
    let p = policy(d.path(), "default", "");
    let o = run_probe(
        &p,
        &[
            "entries:/proc/acpi",
            "write:/proc/acpi/x",
            "entries:/sys/firmware",
            "write:/dev/null",
            "read:/dev/null",
            "write:/dev/x",
            "write:/dev/shm/x",
            "entries:/dev",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    // Masked directories: empty and read-only (a copy of the root tmpfs's /proc directory,
    // not of the proc file system mounted on it).
    assert_eq!(action(&r, 0), "");
    assert_eq!(action(&r, 1), "EROFS");
    assert_eq!(action(&r, 2), "");
    // /dev: working nodes, read-only itself, a writable /dev/shm.
    assert_eq!(action(&r, 3), "ok");
    assert_eq!(action(&r, 4), "ok");
    assert_eq!(action(&r, 5), "EROFS");
    assert_eq!(action(&r, 6), "ok");
    assert_eq!(
        action(&r, 7),
        "fd,full,null,ptmx,pts,random,shm,stderr,stdin,stdout,tty,urandom,zero"
    );
    // Capabilities exactly the policy's; inheritable and ambient empty (CVE-2022-29162).
    let caps = cap_mask(DOCKER_CAPS);
    for k in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(r[k], caps, "{k}");
    }
    assert_eq!(r["CapInh"], "0000000000000000");
    assert_eq!(r["CapAmb"], "0000000000000000");
    assert_eq!(r["NoNewPrivs"], "1");
    assert_eq!(r["Seccomp"], "2");
    // New cgroup, ipc, mount, net, pid and uts namespaces; the host's user and time.
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "uts"] {
        assert_ne!(r["ns"][n], my_ns(n), "{n} namespace is new");
    }
    for n in ["user", "time"] {
        assert_eq!(r["ns"][n], my_ns(n), "{n} namespace is the host's");
    }
    // pid 1 is kakoi's init; the payload is its child.
    assert_eq!(r["pid"], 2);
    assert_eq!(r["ppid"], 1);
    assert_eq!(r["hostname"], "kakoi");
    assert_eq!(r["interfaces"], serde_json::json!(["lo"]));
    // The cgroup namespace root is the sandbox's own cgroup, on every hierarchy.
    for l in r["cgroup"].as_str().unwrap().lines() {
        assert!(l.ends_with(":/"), "{l}");
    }
    // The file system: read-only root, fresh /proc, masked and read-only paths, /sys ro.
    assert!(mount(&r, "/").unwrap()["options"]
        .as_str()
        .unwrap()
        .starts_with("ro"));
    assert_eq!(mount(&r, "/proc").unwrap()["fstype"], "proc");
    assert_eq!(mount(&r, "/tmp").unwrap()["fstype"], "tmpfs");
    assert_eq!(mount(&r, "/dev/pts").unwrap()["fstype"], "devpts");
    assert!(mount(&r, "/sys").unwrap()["options"]
        .as_str()
        .unwrap()
        .starts_with("ro"));
    assert!(mount(&r, "/proc/sys").unwrap()["options"]
        .as_str()
        .unwrap()
        .starts_with("ro"));
    let masked = mount(&r, "/proc/interrupts").expect("/proc/interrupts is masked");
    assert_eq!(masked["root"], "/dev/null");
    for m in ["/proc/acpi", "/sys/firmware"] {
        let m = mount(&r, m).expect("masked");
        assert_eq!(m["fstype"], "tmpfs");
        assert!(m["options"].as_str().unwrap().starts_with("ro"));
    }
    // /dev, the masks' directory and the root are one tmpfs instance.
    let dev = mount(&r, "/dev").unwrap();
    assert_eq!(dev["root"], "/dev");
    assert!(dev["options"].as_str().unwrap().starts_with("ro"));
    assert_eq!(dev["source_dev"], mount(&r, "/").unwrap()["source_dev"]);
    // No launcher descriptor leaks (CVE-2024-21626): 0, 1, 2 and the probe's own listing.
    let fds: Vec<&str> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        fds.iter().all(|f| f.starts_with("0=")
            || f.starts_with("1=")
            || f.starts_with("2=")
            || f.contains("/fd")),
        "{fds:?}"
    );
    assert_eq!(r["cwd"], "/");
    // The mount namespace did not propagate anything back.
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains("/probe"),
        "sandbox mounts leaked to the host"
    );
}

#[test]
fn limits_are_enforced_and_the_cgroup_removed() {
    need_root!();
    let _lock = cgroup_lock();
    let d = tempdir();
    let p = policy(
        d.path(),
        "limits",
        "resources {\n    pids 16\n    memory 256M\n    rlimit nofile 100 200\n    cgroup required\n}\n",
    );
    let o = run_probe(&p, &["fork:40"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    let forked = action(&r, 0);
    let n: usize = forked.split(' ').next().unwrap().parse().unwrap();
    assert!(
        n < 16 && forked.ends_with("EAGAIN"),
        "pids.max 16 must stop the forks: {forked}"
    );
    assert_eq!(r["nofile"], serde_json::json!([100, 200]));
    assert!(leftover_cgroups().is_empty(), "{:?}", leftover_cgroups());
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported() {
    need_root!();
    let d = tempdir();
    let p = policy(
        d.path(),
        "oom",
        "resources {\n    memory 32M\n    cgroup required\n}\n",
    );
    let o = run_probe(&p, &["alloc:256"]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("OOM killer"), "{}", stderr(&o));
    // v1 counts OOM kills per cgroup for good: that cgroup is not kept for reuse (the
    // next launch would report the kill as its own).
    assert!(
        pooled(
            "memory",
            "memory.limit_in_bytes",
            &(32u64 << 20).to_string()
        )
        .is_empty(),
        "a cgroup with an OOM kill was pooled"
    );
    let o = run_probe(&p, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("OOM killer"), "{}", stderr(&o));
}

/// The idle v1 cgroups of the pool (`kakoi-pool-<key>-<slot>`) in the hierarchy of
/// `controller` whose `file` holds `value`; none when the controller is on v2.
fn pooled(controller: &str, file: &str, value: &str) -> Vec<PathBuf> {
    let layout = kakoi::launch::cgroup::host_layout();
    let Some(kakoi::launch::cgroup::Hierarchy::V1 { mount }) = layout.controllers.get(controller)
    else {
        return Vec::new();
    };
    std::fs::read_dir(own_cgroup_dir(mount, Some(controller)))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kakoi-pool-")
                && std::fs::read_to_string(p.join(file)).is_ok_and(|v| v.trim() == value)
        })
        .collect()
}

#[test]
fn v1_cgroups_are_reused_with_their_limits() {
    need_root!();
    // Counts pooled cgroups: nothing may reap them meanwhile.
    let _lock = cgroup_lock();
    let layout = kakoi::launch::cgroup::host_layout();
    let Some(kakoi::launch::cgroup::Hierarchy::V1 { .. }) = layout.controllers.get("pids") else {
        eprintln!("skipped: the pids controller is not on a v1 hierarchy here");
        return;
    };
    let d = tempdir();
    // Limits no other test uses: the pool is keyed by them.
    let p = policy(
        d.path(),
        "pool",
        "resources {\n    pids 77\n    memory 77M\n    cgroup required\n}\n",
    );
    let o = run_probe(&p, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let idle = pooled("pids", "pids.max", "77");
    assert!(!idle.is_empty(), "the clean cgroup went back to the pool");
    assert!(!pooled(
        "memory",
        "memory.limit_in_bytes",
        &(77u64 << 20).to_string()
    )
    .is_empty());
    // The next launch takes one (renamed to its own name) and returns it.
    let (child, _out, _ready) = spawn_waiting(&p);
    let mine = launch_cgroup("pids", child.id()).unwrap();
    assert_eq!(
        pooled("pids", "pids.max", "77").len(),
        idle.len() - 1,
        "the launch took an idle cgroup"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("pids.max"))
            .unwrap()
            .trim(),
        "77"
    );
    release(child);
    assert!(!mine.exists());
    assert_eq!(pooled("pids", "pids.max", "77").len(), idle.len());
    // An idle cgroup whose limit was changed while it waited is not used as it is.
    for d in pooled("pids", "pids.max", "77") {
        std::fs::write(d.join("pids.max"), "99").unwrap();
    }
    let (child, _out, _ready) = spawn_waiting(&p);
    let mine = launch_cgroup("pids", child.id()).unwrap();
    assert_eq!(
        std::fs::read_to_string(mine.join("pids.max"))
            .unwrap()
            .trim(),
        "77"
    );
    release(child);
    assert!(!pooled("pids", "pids.max", "77").is_empty());
    // Other limits never take it.
    let q = policy(
        d.path(),
        "pool-other",
        "resources {\n    pids 78\n    memory 77M\n    cgroup required\n}\n",
    );
    let (child, _out, _ready) = spawn_waiting(&q);
    let theirs = launch_cgroup("pids", child.id()).unwrap().join("pids.max");
    assert_eq!(std::fs::read_to_string(theirs).unwrap().trim(), "78");
    assert_eq!(pooled("pids", "pids.max", "77").len(), idle.len());
    release(child);
}

/// A process's start time (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    after.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn dead_launchers_cgroups_and_idle_pools_are_reaped() {
    need_root!();
    let _lock = cgroup_lock();
    let layout = kakoi::launch::cgroup::host_layout();
    let Some(kakoi::launch::cgroup::Hierarchy::V1 { mount }) = layout.controllers.get("pids")
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the pids controller is not on v1 here"
        );
        eprintln!("skipped: the pids controller is not on a v1 hierarchy here");
        return;
    };
    let parent = own_cgroup_dir(mount, Some("pids"));
    let me = std::process::id();
    // A launcher that died, its pid since given to a live process (this test's own pid
    // with a start time that is not this process's).
    let stale = parent.join(format!("kakoi-{me}-{}", start_time(me) + 1));
    // A running launch's (a live process of ours, with its start time).
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let live = parent.join(format!(
        "kakoi-{}-{}",
        sleeper.id(),
        start_time(sleeper.id())
    ));
    // Idle cgroups of a pool: more than the bound, one idle for an hour.
    let key = format!("kakoi-pool-{me:08x}deadbeef");
    let slots: Vec<PathBuf> = (0..40).map(|k| parent.join(format!("{key}-{k}"))).collect();
    for d in slots.iter().chain([&stale, &live]) {
        std::fs::create_dir(d).unwrap();
    }
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(&slots[39])
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let pooled_in_parent = || {
        std::fs::read_dir(&parent)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("kakoi-pool-"))
            .count()
    };

    // A launch (the default policy limits pids) reaps next to its own cgroup.
    let d = tempdir();
    let p = policy(d.path(), "reap", "");
    let o = run_probe(&p, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "a dead launcher's cgroup is removed");
    assert!(live.exists(), "a live launcher's cgroup is kept");
    assert!(!slots[39].exists(), "a cgroup idle for an hour is removed");
    // The launch's own cgroup may have gone back to the pool after the reaping.
    let max = kakoi::launch::cgroup::POOL_MAX_IDLE + 1;
    assert!(
        pooled_in_parent() <= max,
        "{} idle cgroups",
        pooled_in_parent()
    );

    // `kakoi gc` removes every idle one, and leaves the live launch's alone.
    let o = kakoi().args(["gc", "--dry-run"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let left: Vec<&PathBuf> = slots.iter().filter(|s| s.exists()).collect();
    assert!(!left.is_empty());
    for s in &left {
        assert!(stdout(&o).contains(&format!("would remove {}", s.display())));
        assert!(s.exists(), "--dry-run removes nothing");
    }
    let o = kakoi().args(["gc", "--format", "json"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let removed: Vec<String> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    for s in left {
        assert!(
            removed.contains(&s.display().to_string()),
            "{s:?}: {removed:?}"
        );
        assert!(!s.exists());
    }
    assert!(!removed.contains(&live.display().to_string()));
    assert!(v["live"].as_u64().unwrap() >= 1);
    assert!(live.exists());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let o = kakoi().arg("gc").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!live.exists(), "once its launcher is gone, gc removes it");
    assert_eq!(pooled_in_parent(), 0);
}

#[test]
fn cgroups_go_below_a_configured_parent() {
    need_root!();
    let _lock = cgroup_lock();
    let d = tempdir();
    let p = policy(d.path(), "parent", "");
    let top = format!("kakoi-test-parent-{}", std::process::id());
    let parent = format!("/{top}/nested");
    let o = kakoi()
        .args(["run", "--dry-run", "--cgroup-parent", &parent, "--policy"])
        .arg(&p)
        .args(["--", "/probe/probe"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let layout = kakoi::launch::cgroup::host_layout();
    let (kakoi::launch::cgroup::Hierarchy::V1 { mount }
    | kakoi::launch::cgroup::Hierarchy::V2 { mount }) = &layout.controllers["pids"];
    let expected = format!("{mount}{parent}/kakoi-<pid>-<start>");
    assert!(stdout(&o).contains(&expected), "{}", stdout(&o));
    // The launch makes the parent, runs in it, and leaves nothing but the pool's idle cgroup.
    let (child, _out, _ready) = spawn_waiting_with(&p, &[("KAKOI_CGROUP_PARENT", &parent)]);
    let dir = Path::new(mount).join(&parent[1..]);
    let mine = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&format!("kakoi-{}-", child.id())));
    assert!(
        mine.is_some(),
        "the launch's cgroup is in {}",
        dir.display()
    );
    release(child);
    assert!(leftover_cgroups().is_empty());
    let o = kakoi().arg("gc").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for m in layout
        .controllers
        .values()
        .map(|h| match h {
            kakoi::launch::cgroup::Hierarchy::V1 { mount }
            | kakoi::launch::cgroup::Hierarchy::V2 { mount } => mount.clone(),
        })
        .chain(layout.unified.clone())
    {
        let _ = std::fs::remove_dir(Path::new(&m).join(&parent[1..]));
        let _ = std::fs::remove_dir(Path::new(&m).join(&top));
        assert!(!Path::new(&m).join(&top).exists(), "{m}/{top} is left");
    }
    // A relative parent is a usage error, before anything is made.
    let o = kakoi()
        .args(["run", "--cgroup-parent", "relative", "--policy"])
        .arg(&p)
        .args(["--", "/probe/probe"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("absolute cgroup path"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn time_namespace_offsets() {
    need_root!();
    let d = tempdir();
    let p = policy(
        d.path(),
        "time",
        "namespaces {\n    time on\n}\nprocess {\n    time-offset monotonic 10d\n}\n",
    );
    let o = run_probe(&p, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    assert_ne!(r["ns"]["time"], my_ns("time"));
    let host = {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec
    };
    let inside = r["monotonic"].as_i64().unwrap();
    assert!(
        (inside - host - 864_000).abs() < 5,
        "inside {inside}, host {host}"
    );
}

#[test]
fn exit_statuses_and_failed_steps() {
    need_root!();
    let _lock = cgroup_lock();
    let d = tempdir();
    let p = policy(d.path(), "codes", "");
    assert_eq!(run_probe(&p, &["exit:7"]).status.code(), Some(7));
    // pid 1 of a namespace cannot be killed from inside it: run this one as pid 2+.
    let host_pid = policy(d.path(), "host-pid", "namespaces {\n    pid off\n}\n");
    assert_eq!(
        run_probe(&host_pid, &["signal:9"]).status.code(),
        Some(128 + 9)
    );
    let o = kakoi()
        .args(["run", "--policy"])
        .arg(&p)
        .args(["--", "/no/such/command"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let o = kakoi()
        .args(["run", "--policy"])
        .arg(&p)
        .args(["--", "/etc/passwd"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    let bad = policy(
        d.path(),
        "bad-bind",
        "filesystem {\n    bind \"/no/such/source\" -> \"/data\"\n}\n",
    );
    let o = run_probe(&bad, &[]);
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("kakoi: open bind source /no/such/source: No such file or directory (errno 2)")
            && e.contains("hint:"),
        "{e}"
    );
    let slow = policy(d.path(), "timeout", "process {\n    timeout 300ms\n}\n");
    let o = run_probe(&slow, &["sleep:10000"]);
    assert_eq!(o.status.code(), Some(137));
    assert!(stderr(&o).contains("time limit"), "{}", stderr(&o));
    let o = kakoi()
        .args(["run", "--policy"])
        .arg(&p)
        .args(["--format", "json", "--", "/no/such/command"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(v["error"]["step"], "execve");
    assert_eq!(v["error"]["errno"], libc::ENOENT);
    assert!(leftover_cgroups().is_empty(), "{:?}", leftover_cgroups());
}

/// A tampered bundle is bad input: refused with exit status 2, like an unreadable policy,
/// before any namespace exists.
#[test]
fn bundles_run_and_tampered_ones_are_refused_before_any_namespace() {
    need_root!();
    let d = tempdir();
    let p = policy(d.path(), "bundle", "");
    let b = d.path().join("b");
    let o = kakoi()
        .arg("compile")
        .arg(&p)
        .arg("-o")
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kakoi()
        .args(["run", "--bundle"])
        .arg(&b)
        .args(["--", "/probe/probe"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(report(&o)["Seccomp"], "2");
    // A launch reads and checks only what it uses: a modified artifact for another
    // consumer does not stop it, while `kakoi audit`, which reads the whole bundle,
    // refuses it.
    let cil = b.join("selinux.cil");
    let text = std::fs::read_to_string(&cil).unwrap();
    std::fs::write(&cil, text.replace("(", "( ")).unwrap();
    let o = kakoi()
        .args(["run", "--bundle"])
        .arg(&b)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kakoi().arg("audit").arg(&b).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("selinux.cil"), "{}", stderr(&o));
    std::fs::write(&cil, text).unwrap();
    // The policy, same length, one byte changed.
    let pj = b.join("policy.json");
    let orig = std::fs::read(&pj).unwrap();
    let mut changed = orig.clone();
    let at = changed.iter().position(|&c| c == b'{').unwrap();
    changed.insert(at + 1, b' ');
    changed.retain({
        let mut dropped = false;
        move |&c| {
            if c == b'\n' && !dropped {
                dropped = true;
                return false;
            }
            true
        }
    });
    assert_eq!(changed.len(), orig.len());
    std::fs::write(&pj, &changed).unwrap();
    let o = kakoi()
        .args(["run", "--bundle"])
        .arg(&b)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("policy.json: SHA-256 differs"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&pj, &orig).unwrap();
    let bpf = b.join("seccomp.x86_64.bpf");
    let bytes = std::fs::read(&bpf).unwrap();
    std::fs::write(&bpf, &bytes[..bytes.len() - 3]).unwrap();
    let o = kakoi()
        .args(["run", "--bundle"])
        .arg(&b)
        .args(["--", "/probe/probe"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("truncated or modified"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "nothing ran");
}

#[test]
fn binds_tmpfs_and_a_persistent_overlay() {
    need_root!();
    let d = tempdir();
    let rw = d.path().join("rw");
    let ro = d.path().join("ro");
    let lower = d.path().join("lower");
    let upper = d.path().join("upper");
    for x in [&rw, &ro, &lower] {
        std::fs::create_dir(x).unwrap();
    }
    std::fs::write(lower.join("base"), "from the lower layer").unwrap();
    let top = d.path().join("top");
    std::fs::create_dir(&top).unwrap();
    std::fs::write(top.join("base"), "from the top layer").unwrap();
    std::fs::write(top.join("only-top"), "").unwrap();
    // A destination right below the root that exists there as a symlink (`/sbin` ->
    // `usr/sbin` on a merged-/usr host): it is not made anew but resolved inside the root.
    let sbin = d.path().join("sbin");
    std::fs::create_dir(&sbin).unwrap();
    std::fs::write(sbin.join("marker"), "").unwrap();
    let p = policy(
        d.path(),
        "binds",
        &format!(
            "filesystem {{\n    bind \"{}\" -> \"/tmp/under-tmpfs\" rw\n    bind \"{}\" -> \"/data/rw\" rw\n    bind \"{}\" -> \"/data/ro\"\n    overlay \"/layered\" lower [\"{}\"] upper \"{}\" work \"{}\"\n    tmpfs \"/scratch\" size 1M\n    overlay \"/stacked\" lower [\"{}\", \"{}\"] upper tmpfs\n    bind \"{}\" -> \"/sbin\"\n}}\n",
            rw.display(),
            rw.display(),
            ro.display(),
            lower.display(),
            upper.display(),
            d.path().join("work").display(),
            top.display(),
            lower.display(),
            sbin.display(),
        ),
    );
    let merged_usr = std::fs::read_link("/sbin").is_ok_and(|t| t == Path::new("usr/sbin"));
    let r = expect_actions(
        &p,
        &[
            ("read:/sbin/marker", "ok"),
            (
                "read:/usr/sbin/marker",
                if merged_usr { "ok" } else { "ENOENT" },
            ),
            ("write:/data/rw/out", "ok"),
            // A bind below the default's tmpfs /tmp: mounted after it, so not hidden.
            ("write:/tmp/under-tmpfs/out2", "ok"),
            ("write:/data/ro/out", "EROFS"),
            ("read:/layered/base", "ok"),
            ("write:/layered/new", "ok"),
            ("write:/scratch/x", "ok"),
            ("read:/stacked/only-top", "ok"),
            ("write:/stacked/tmp-upper", "ok"),
            // The default policy keeps CAP_MKNOD (as Docker does): a node the payload makes
            // is inert in every writable mount (nodev), and /dev itself is read-only.
            ("mknod-block:/data/rw/disk:8:0", "EACCES"),
            ("mknod-block:/layered/disk:8:0", "EACCES"),
            ("mknod-block:/tmp/disk:8:0", "EACCES"),
            ("mknod-block:/scratch/disk:8:0", "EACCES"),
            ("mknod-block:/dev/disk:8:0", "mknod EROFS"),
            ("read:/dev/null", "ok"),
            ("write:/dev/null", "ok"),
        ],
    );
    // The first lower layer is on top; the tmpfs upper layer is discarded.
    assert!(!top.join("tmp-upper").exists() && !lower.join("tmp-upper").exists());
    assert_eq!(mount(&r, "/stacked").unwrap()["fstype"], "overlay");
    // The old root is gone: no mount of the staging area or the host's root is visible.
    let targets: Vec<&str> = r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    assert!(
        targets.iter().all(|t| !t.starts_with("/tmp/root")),
        "{targets:?}"
    );
    assert_eq!(
        targets.iter().filter(|t| **t == "/").count(),
        1,
        "{targets:?}"
    );
    assert_eq!(std::fs::read_to_string(rw.join("out")).unwrap(), "probe\n");
    assert_eq!(std::fs::read_to_string(rw.join("out2")).unwrap(), "probe\n");
    assert!(
        upper.join("new").is_file(),
        "the overlay's upper layer persists"
    );
    assert!(!lower.join("new").exists(), "the lower layer is untouched");
    assert_eq!(mount(&r, "/scratch").unwrap()["fstype"], "tmpfs");
}

#[test]
fn idmapped_binds_keep_host_owners() {
    need_root!();
    let d = tempdir();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "host root's file").unwrap();
    let p = policy(
        d.path(),
        "idmap",
        &format!(
            "namespaces {{\n    user on\n}}\nidentity {{\n    uid-map 0 100000 65536\n    gid-map 0 100000 65536\n}}\nfilesystem {{\n    bind \"{0}\" -> \"/idmapped\" rw idmap\n    bind \"{0}\" -> \"/plain\"\n}}\n",
            data.display()
        ),
    );
    let r = expect_actions(
        &p,
        &[
            ("owner:/idmapped/f", "0:0"),
            ("owner:/plain/f", "65534:65534"),
            ("write:/idmapped/new", "ok"),
        ],
    );
    assert_eq!(
        r["uid_map"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(data.join("new")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "files made through the idmapped bind keep host owners"
    );
}

#[test]
fn a_rootfs_directory_user_and_groups() {
    need_root!();
    let d = tempdir();
    let rootfs = d.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::write(rootfs.join("marker"), "in the rootfs").unwrap();
    // A symlink planted in the rootfs may not redirect a bind to the host (CVE-2021-30465).
    std::os::unix::fs::symlink("/etc", rootfs.join("escape")).unwrap();
    let p = policy(
        d.path(),
        "rootfs",
        &format!(
            "filesystem {{\n    rootfs \"{}\" ro\n    bind \"/usr\"\n    bind \"/lib\"\n    bind \"/lib64\"\n    bind \"/bin\"\n    tmpfs \"/escape/kakoi-test\"\n}}\nidentity {{\n    user 1000\n    group 1000\n    groups [27, 100]\n}}\n",
            rootfs.display()
        ),
    );
    let r = expect_actions(&p, &[("read:/marker", "ok"), ("write:/marker2", "EROFS")]);
    assert_eq!(
        r["Uid"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(
        r["Gid"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(r["Groups"], "27 100");
    // Not root: exec cleared the permitted set (no ambient capabilities were asked for).
    assert_eq!(r["CapEff"], "0000000000000000");
    assert!(
        rootfs.join("etc/kakoi-test").is_dir(),
        "the tmpfs target was made inside the rootfs"
    );
    assert!(
        !Path::new("/etc/kakoi-test").exists(),
        "nothing was mounted on the host's /etc"
    );
}

#[test]
fn landlock_rules_from_the_policy() {
    need_root!();
    let d = tempdir();
    let p = policy(
        d.path(),
        "landlock",
        "filesystem {\n    read [\"/usr\", \"/lib\", \"/lib64\", \"/probe\", \"/proc\", \"/dev\", \"/etc/hostname\"]\n    exec [\"/usr\", \"/lib\", \"/lib64\", \"/probe\"]\n    write \"/tmp\"\n    make \"/tmp\"\n}\n",
    );
    expect_actions(
        &p,
        &[
            ("read:/etc/hostname", "ok"),
            ("read:/etc/passwd", "EACCES"),
            ("write:/tmp/x", "ok"),
            ("write:/dev/shm/x", "EACCES"),
        ],
    );
}

#[test]
fn signals_reach_the_payload() {
    need_root!();
    let d = tempdir();
    let p = policy(d.path(), "signals", "");
    let (mut child, mut out, line) = spawn_waiting(&p);
    assert_eq!(line.trim(), "ready");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let r: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(action(&r, 0), "got 10");
}

#[test]
fn the_launchers_ignored_signals_are_reset_for_the_payload() {
    need_root!();
    use std::os::unix::process::CommandExt;
    let d = tempdir();
    let p = policy(d.path(), "sigign", "");
    let mut c = kakoi();
    c.args(["run", "--policy"])
        .arg(&p)
        .args(["--", "/probe/probe"]);
    // SAFETY: only async-signal-safe calls (signal) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGUSR2, libc::SIGRTMIN() + 3] {
                libc::signal(sig, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Ignored signals survive an execve (kakoi itself ignores SIGPIPE); the probe, a Rust
    // program, ignores SIGPIPE again on its own.
    let r = report(&o);
    assert_eq!(r["SigIgn"], "0000000000001000", "{r}");
    // Control: the same probe started with those signals ignored keeps them.
    let mut c = Command::new(examples_dir().join("probe"));
    // SAFETY: only an async-signal-safe call (signal) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let ign = u64::from_str_radix(report(&o)["SigIgn"].as_str().unwrap(), 16).unwrap();
    assert_eq!(ign & 1, 1, "SIGHUP stays ignored across an execve");
}

#[test]
fn seccomp_flags_reach_the_kernel() {
    need_root!();
    // `log`: the kernel logs the filter's non-allow actions (here errno) to the audit log,
    // which goes to the kernel log without auditd.
    let denials = || -> usize {
        let o = Command::new("dmesg").output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("type=1326") && l.contains("syscall=272"))
            .count()
    };
    let d = tempdir();
    let unshare = |p: &Path| {
        let o = kakoi()
            .args(["run", "--policy"])
            .arg(p)
            .args(["--", "/usr/bin/unshare", "-U", "true"])
            .output()
            .unwrap();
        assert!(!o.status.success(), "unshare is denied by the filter");
    };
    // Control: without the flag an errno action is not logged.
    let before = denials();
    unshare(&policy(d.path(), "no-log", ""));
    assert_eq!(denials(), before);
    unshare(&policy(
        d.path(),
        "log",
        "seccomp {\n    flags [log, spec-allow]\n}\n",
    ));
    let logged = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        denials() > before
    });
    assert!(logged, "the denied unshare(2) was not logged");
}

#[test]
fn the_payload_dies_with_the_launcher() {
    need_root!();
    let _lock = cgroup_lock();
    let d = tempdir();
    let p = policy(d.path(), "pdeathsig", "");
    let (mut child, _out, _ready) = spawn_waiting(&p);
    let procs = launch_cgroup("pids", child.id())
        .unwrap()
        .join("cgroup.procs");
    // The sandbox's init and the payload.
    let procs_now = std::fs::read_to_string(&procs).unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    let pids: Vec<i32> = procs_now.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(!pids.is_empty(), "no process in {}", procs.display());
    let gone = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        pids.iter().all(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z "))
        })
    });
    assert!(gone, "{pids:?} outlived their launcher");
    // The killed launcher could not remove its cgroup; the next launch collects it.
    let o = run_probe(&p, &[]);
    assert!(o.status.success());
    assert!(!Path::new(&procs).exists(), "stale cgroup collected");
}

#[test]
fn dry_run_prints_the_plan() {
    let o = kakoi()
        .args(["run", "--dry-run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("pivot_root") && out.contains("execve(/bin/true)"),
        "{out}"
    );
}

/// The plan `--dry-run` prints is the plan the launcher runs: a real launch, traced
/// (`KAKOI_TRACE`), runs each printed step once, with the text the dry run printed for it,
/// and nothing else; as root and without.
#[test]
fn a_real_launch_runs_exactly_the_steps_the_dry_run_prints() {
    need_root!();
    let (uid, gid) = test_user();
    let d = tempdir();
    let hand_written = format!(
        "{}/fixtures/workloads/hand-written.kakoi",
        env!("CARGO_MANIFEST_DIR")
    );
    let limits = policy(
        d.path(),
        "limits",
        "resources {\n    memory 64M\n    pids 32\n    rlimit nofile 256 512\n}\nprocess {\n    hostname \"traced\"\n}\n",
    );
    let cases: Vec<(String, Option<(u32, u32)>)> = vec![
        ("default".into(), None),
        ("strict".into(), None),
        (hand_written, None),
        (limits.to_string_lossy().into_owned(), None),
        ("default".into(), Some((uid, gid))),
    ];
    for (p, user) in cases {
        let cmd = |dry: bool| {
            let mut c = kakoi();
            c.current_dir("/").args(["run", "--policy", &p]);
            if dry {
                c.args(["--dry-run", "--format", "json"]);
            } else {
                c.env("KAKOI_TRACE", "1");
            }
            c.args(["--", "/bin/true"]);
            if let Some((u, g)) = user {
                c.uid(u).gid(g);
            }
            c.output().unwrap()
        };
        let dry = cmd(true);
        assert!(dry.status.success(), "{p}: {}", stderr(&dry));
        let v: Value = serde_json::from_slice(&dry.stdout).unwrap();
        let printed: Vec<String> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["what"].as_str().unwrap().to_string())
            .collect();
        let real = cmd(false);
        assert!(real.status.success(), "{p}: {}", stderr(&real));
        let mut ran: Vec<(usize, String)> = stderr(&real)
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once("  step ")?;
                let (n, what) = rest.split_once(": ")?;
                Some((n.parse::<usize>().ok()? - 1, what.to_string()))
            })
            .collect();
        ran.sort();
        let expected: Vec<(usize, String)> = printed.into_iter().enumerate().collect();
        assert_eq!(ran, expected, "{p} as {user:?}");
    }
}

// ---------------------------------------------------------------------------------------
// networking, in a network namespace the test creates

struct NetNs(String);

impl NetNs {
    fn new(tag: &str) -> NetNs {
        let name = format!("kakoi-test-{tag}-{}", std::process::id());
        sh(&format!("ip netns add {name}"));
        NetNs(name)
    }
    fn exec(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.0))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn veth_networking_inside_a_test_namespace() {
    need_root!();
    let ns = NetNs::new("veth");
    ns.exec("ip link add kbr0 type bridge");
    ns.exec("ip addr add 10.231.0.1/24 dev kbr0");
    ns.exec("ip link set kbr0 up");
    let d = tempdir();
    let p = policy(
        d.path(),
        "veth",
        "network {\n    mode veth\n    veth {\n        bridge \"kbr0\"\n        address \"10.231.0.2/24\"\n        gateway \"10.231.0.1\"\n    }\n}\n",
    );
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_kakoi"),
            "run",
            "--policy",
        ])
        .arg(&p)
        .args(["--", "/probe/probe"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    assert_eq!(r["interfaces"], serde_json::json!(["eth0", "lo"]));
    assert!(r["addresses"].as_str().unwrap().contains("10.231.0.2"));
    assert!(
        !ns.exec("ip -o link").contains("kk"),
        "the host end is removed"
    );
}

/// The lease files of a subnet (`/run/kakoi/net/<network>-<prefix>/<address>`).
fn leases(subnet: &str) -> Vec<String> {
    let dir = Path::new(kakoi::launch::net::LEASES).join(subnet.replace('/', "-"));
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Python's HTTP server on every address of the test's network namespace, serving `dir`.
fn http_listener(ns: &NetNs, port: u16, dir: &Path) -> crate::util::Reaped {
    crate::util::Reaped::new(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.0))
            .args([
                "python3",
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "0.0.0.0",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `kakoi run` in the test's network namespace (`nsenter --net`, which keeps /sys and
/// so the cgroup hierarchies).
fn run_in(ns: &NetNs, policy: &Path, payload: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", ns.0))
        .args([env!("CARGO_BIN_EXE_kakoi"), "run", "-T", "--policy"])
        .arg(policy)
        .arg("--")
        .args(payload)
        .stdin(Stdio::null());
    c
}

/// `mode veth` without hand-made plumbing: the bridge is made (with the gateway's
/// address) when missing, 20 sandboxes started together get 20 distinct addresses of
/// the subnet, each reaches a listener on the host side, and every lease is given back.
#[test]
fn veth_makes_its_bridge_and_leases_distinct_addresses() {
    need_root!();
    let ns = NetNs::new("lease");
    ns.exec("ip link set lo up");
    let d = tempdir();
    let subnet = "10.233.0.0/24";
    let p = policy(
        d.path(),
        "lease",
        &format!("network {{\n    mode veth\n    veth {{\n        bridge \"kbr1\"\n        subnet \"{subnet}\"\n    }}\n}}\n"),
    );
    assert!(leases(subnet).is_empty(), "{:?}", leases(subnet));
    // A listener on the host side of the bridge, in the test's namespace.
    let mut server = http_listener(&ns, 8099, d.path());
    let fetch = "import urllib.request, time\nfor i in range(600):\n    try:\n        print(urllib.request.urlopen('http://10.233.0.1:8099/', timeout=2).status); break\n    except OSError:\n        time.sleep(0.1)\n";
    let children: Vec<std::process::Child> = (0..20)
        .map(|_| {
            run_in(&ns, &p, &["/bin/sh", "-c", &format!("grep -o '10\\.233\\.0\\.[0-9]*' /proc/net/fib_trie | sort -u | grep -v '\\.0$\\|\\.255$\\|\\.1$'; /usr/bin/python3 -c \"{fetch}\"; sleep 1")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let mut lines = out.lines();
        let addr = lines.next().unwrap_or("").to_string();
        assert!(addr.starts_with("10.233.0."), "{out}");
        assert_eq!(lines.next(), Some("200"), "the host side answers: {out}");
        assert!(seen.insert(addr.clone()), "{addr} given twice");
    }
    assert_eq!(seen.len(), 20);
    assert!(!seen.contains("10.233.0.1"), "the gateway is not leased");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        ns.exec("ip -o -4 addr show dev kbr1")
            .contains("10.233.0.1/24"),
        "the bridge was made with the gateway's address"
    );
    assert!(
        leases(subnet).is_empty(),
        "leases left: {:?}",
        leases(subnet)
    );
    assert!(!ns.exec("ip -o link").contains("kk"), "host ends removed");
}

/// Two sandboxes on one bridge reach each other: one serves on its leased address, the
/// other fetches from it.
#[test]
fn two_sandboxes_on_one_bridge_talk() {
    need_root!();
    let ns = NetNs::new("pair");
    ns.exec("ip link set lo up");
    let d = tempdir();
    let subnet = "10.235.0.0/24";
    let p = policy(
        d.path(),
        "pair",
        &format!("network {{\n    mode veth\n    veth {{\n        bridge \"kbr2\"\n        subnet \"{subnet}\"\n    }}\n}}\n"),
    );
    let server = crate::util::Reaped::new(
        run_in(
            &ns,
            &p,
            &[
                "/usr/bin/python3",
                "-m",
                "http.server",
                "8095",
                "--directory",
                "/etc",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    // The server's address: the lease its launcher (nsenter execs kakoi) holds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let dir = Path::new(kakoi::launch::net::LEASES).join(subnet.replace('/', "-"));
    let address = loop {
        let mine = leases(subnet).into_iter().find(|a| {
            std::fs::read_to_string(dir.join(a))
                .is_ok_and(|t| t.split_whitespace().next() == Some(&server.id().to_string()))
        });
        if let Some(a) = mine {
            break a;
        }
        assert!(std::time::Instant::now() < deadline, "no lease");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // Listening (seen from the bridge's side), however slowly a loaded machine starts it.
    loop {
        let o = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.0))
            .args(["curl", "-s", "-o", "/dev/null", "--max-time", "2"])
            .arg(format!("http://{address}:8095/hostname"))
            .status()
            .unwrap();
        if o.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let fetch = format!("import urllib.request, time\nfor i in range(600):\n    try:\n        print(urllib.request.urlopen('http://{address}:8095/hostname', timeout=2).status); break\n    except OSError as e:\n        err = e; time.sleep(0.1)\nelse:\n    print(err)\n");
    let o = run_in(&ns, &p, &["/usr/bin/python3", "-c", &fetch])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "200", "{}", stderr(&o));
    assert!(
        !leases(subnet).iter().any(|a| *a != address && {
            std::fs::read_to_string(dir.join(a)).is_ok_and(|t| !t.is_empty())
                && Path::new(&format!("/proc/{}", lease_pid(&dir.join(a)))).exists()
        }),
        "the client gave its address back: {:?}",
        leases(subnet)
    );
    drop(server);
}

/// The pid in a lease file ("PID START").
fn lease_pid(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .to_string()
}

/// `mode macvlan`: the sandbox is one more host on its parent's network. The parent is
/// one end of a veth pair in the test's namespace (this kernel has no dummy links); the
/// other end, in a second test namespace, serves a page the sandbox fetches. A missing
/// parent is a launch error that names it.
#[test]
fn macvlan_puts_the_sandbox_on_its_parents_network() {
    need_root!();
    let ns = NetNs::new("mv");
    let lan = NetNs::new("lan");
    ns.exec("ip link set lo up");
    sh(&format!(
        "ip -n {} link add p0 type veth peer name p1 netns {}",
        ns.0, lan.0
    ));
    ns.exec("ip link set p0 up");
    lan.exec("ip link set lo up");
    lan.exec("ip addr add 10.236.0.2/24 dev p1");
    lan.exec("ip link set p1 up");
    let d = tempdir();
    std::fs::write(d.path().join("index.html"), "on the lan\n").unwrap();
    let _server = http_listener(&lan, 8094, d.path());
    let p = policy(
        d.path(),
        "mv",
        "network {\n    mode macvlan\n    macvlan {\n        parent \"p0\"\n        address \"10.236.0.5/24\"\n        gateway \"10.236.0.2\"\n    }\n}\n",
    );
    let fetch = "import urllib.request, time\nfor i in range(600):\n    try:\n        print(urllib.request.urlopen('http://10.236.0.2:8094/', timeout=2).read().decode(), end=''); break\n    except OSError as e:\n        err = e; time.sleep(0.1)\nelse:\n    print(err)\n";
    let script =
        format!("ip -o -4 addr show eth0 | grep -o '10[.0-9/]*'; /usr/bin/python3 -c \"{fetch}\"");
    let o = run_in(&ns, &p, &["/bin/sh", "-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "10.236.0.5/24\non the lan\n");
    assert!(
        !ns.exec("ip -o link").contains("macvlan"),
        "nothing left on the host side"
    );
    let q = policy(
        d.path(),
        "mv-missing",
        "network {\n    mode macvlan\n    macvlan {\n        parent \"nosuch0\"\n        address \"10.236.0.6/24\"\n    }\n}\n",
    );
    let o = run_in(&ns, &q, &["/bin/true"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("the parent link `nosuch0` must exist"),
        "{}",
        stderr(&o)
    );
}

/// Without a bridge the host end is a point-to-point link (the gateway's address, the
/// sandbox's as its peer); a lease held by a running sandbox is refused to another, and
/// one left by a SIGKILLed launcher is taken over.
#[test]
fn veth_without_a_bridge_and_leases_of_killed_launchers() {
    need_root!();
    let ns = NetNs::new("p2p");
    ns.exec("ip link set lo up");
    let d = tempdir();
    let p = policy(
        d.path(),
        "p2p",
        "network {\n    mode veth\n    veth {\n        address \"10.234.0.9/24\"\n    }\n}\n",
    );
    let mut server = http_listener(&ns, 8097, d.path());
    let script = "ip -o -4 addr show eth0 | grep -o '10[.0-9/]*'; ip route | grep default; /usr/bin/python3 -c \"import urllib.request, time\nfor i in range(600):\n    try:\n        print(urllib.request.urlopen('http://10.234.0.1:8097/', timeout=2).status); break\n    except OSError:\n        time.sleep(0.1)\n\"; sleep 30";
    let mut first = crate::util::Reaped::new(
        run_in(&ns, &p, &["/bin/sh", "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(first.stdout.take().unwrap());
    let (mut addr, mut route) = (String::new(), String::new());
    out.read_line(&mut addr).unwrap();
    out.read_line(&mut route).unwrap();
    assert_eq!(addr.trim(), "10.234.0.9/24");
    assert!(
        route.starts_with("default via 10.234.0.1 dev eth0"),
        "{route}"
    );
    let mut status = String::new();
    out.read_line(&mut status).unwrap();
    assert_eq!(
        status.trim(),
        "200",
        "the host end answers over the point-to-point link"
    );
    let _ = server.kill();
    let _ = server.wait();
    let host = ns.exec("ip -o -4 addr show");
    assert!(
        host.contains("inet 10.234.0.1 peer 10.234.0.9/32"),
        "{host}"
    );
    assert_eq!(leases("10.234.0.0/24"), ["10.234.0.9"]);
    // The same address for a second sandbox is refused while the first runs.
    let o = run_in(&ns, &p, &["/bin/true"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("10.234.0.9 is the address of another running sandbox"),
        "{}",
        stderr(&o)
    );
    // SIGKILL: the launcher cannot give it back, and the next launch takes it over.
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(leases("10.234.0.0/24"), ["10.234.0.9"]);
    // `kakoi gc` tidies it (it is taken over anyway, below). It also removes idle pooled
    // cgroups: none may be counted meanwhile.
    {
        let _lock = cgroup_lock();
        let o = kakoi().args(["gc", "--format", "json"]).output().unwrap();
        let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert!(o.status.success(), "{v}");
        assert!(
            v["removed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str().unwrap().ends_with("/10.234.0.0-24/10.234.0.9")),
            "{v}"
        );
        assert!(leases("10.234.0.0/24").is_empty());
    }
    let o = run_in(&ns, &p, &["/bin/true"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(leases("10.234.0.0/24").is_empty());
}

/// Published ports and outbound NAT (nftables, in kakoi's own table), all inside test
/// network namespaces: a client on the host side reaches the sandbox's server through a
/// published port on one of the host's own addresses; the sandbox reaches a server on an
/// "outside" network that has no route back to its subnet, through the masquerade; the
/// published ports' rules go when the sandbox ends, and a SIGKILLed launcher's are
/// removed by the next launch that publishes.
#[test]
fn published_ports_and_outbound_nat() {
    need_root!();
    let nft = Path::new("/usr/sbin/nft").exists();
    assert!(
        nft || std::env::var_os("CI").is_none(),
        "nft is missing under CI"
    );
    if !nft {
        eprintln!("skipped: /usr/sbin/nft (nftables) is not installed");
        return;
    }
    let ns = NetNs::new("pub");
    let outside = NetNs::new("outside");
    ns.exec("ip link set lo up");
    ns.exec("ip addr add 192.0.2.1/32 dev lo");
    sh(&format!(
        "ip -n {} link add up0 type veth peer name up1 netns {}",
        ns.0, outside.0
    ));
    ns.exec("ip addr add 198.51.100.1/24 dev up0");
    ns.exec("ip link set up0 up");
    outside.exec("ip link set lo up");
    outside.exec("ip addr add 198.51.100.2/24 dev up1");
    outside.exec("ip link set up1 up");
    let d = tempdir();
    let site = d.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "published\n").unwrap();
    std::fs::set_permissions(&site, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut far = http_listener(&outside, 8096, d.path());
    let p = policy(
        d.path(),
        "pub",
        &format!(
            "filesystem {{\n    bind \"{}\" -> \"/srv\"\n}}\nnetwork {{\n    mode veth\n    veth {{\n        bridge \"kbp1\"\n        subnet \"10.241.0.0/24\"\n    }}\n    nat on\n    publish 9091 -> 8080\n}}\n",
            site.display()
        ),
    );
    let script = "/usr/bin/python3 -c \"import urllib.request, time\nfor i in range(600):\n    try:\n        print(urllib.request.urlopen('http://198.51.100.2:8096/', timeout=2).status, flush=True); break\n    except OSError as e:\n        err = e; time.sleep(0.1)\nelse:\n    print(err, flush=True)\n\"; exec /usr/bin/python3 -m http.server 8080 --directory /srv";
    let start = |ns: &NetNs| {
        let mut c = crate::util::Reaped::new(
            run_in(ns, &p, &["/bin/sh", "-c", script])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        (c, first)
    };
    let (server, first) = start(&ns);
    assert_eq!(
        first.trim(),
        "200",
        "the outside network answers through the masquerade"
    );
    let fetch = || {
        let o = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.0))
            .args([
                "curl",
                "-s",
                "--retry",
                "20",
                "--retry-connrefused",
                "--retry-delay",
                "0",
                "--max-time",
                "5",
                "http://192.0.2.1:9091/",
            ])
            .output()
            .unwrap();
        stdout(&o)
    };
    assert_eq!(fetch(), "published\n");
    let rules = ns.exec("nft list table ip kakoi");
    assert!(
        rules.contains("comment \"kakoi nat 10.241.0.0/24\""),
        "{rules}"
    );
    assert_eq!(rules.matches("dnat to 10.241.0.").count(), 2, "{rules}");
    // SIGTERM: the launch ends and takes its rules with it; the NAT rule stays.
    // SAFETY: signalling our own child (nsenter execs kakoi in place).
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let o = server.take().wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let rules = ns.exec("nft list table ip kakoi");
    assert!(!rules.contains("dnat"), "{rules}");
    assert!(rules.contains("masquerade"), "{rules}");
    // SIGKILL leaves the rules; the next launch that publishes removes them.
    let (mut killed, _) = start(&ns);
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(
        ns.exec("nft list table ip kakoi").matches("dnat").count(),
        2
    );
    let (again, _) = start(&ns);
    assert_eq!(
        ns.exec("nft list table ip kakoi").matches("dnat").count(),
        2
    );
    assert_eq!(fetch(), "published\n");
    // SAFETY: as above.
    unsafe { libc::kill(again.id() as i32, libc::SIGTERM) };
    again.take().wait_with_output().unwrap();
    assert!(!ns.exec("nft list table ip kakoi").contains("dnat"));
    let _ = far.kill();
    let _ = far.wait();
}

#[test]
fn joining_a_network_namespace_by_path() {
    need_root!();
    let ns = NetNs::new("join");
    ns.exec("ip link add vt7 type veth peer name vt8");
    let d = tempdir();
    let p = policy(
        d.path(),
        "join",
        &format!("namespaces {{\n    net join \"/run/netns/{}\"\n}}\n", ns.0),
    );
    let o = run_probe(&p, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    assert!(
        r["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "vt7"),
        "{}",
        r["interfaces"]
    );
}

// ---------------------------------------------------------------------------------------
// rootless: an unprivileged user the test creates

pub(crate) const TEST_USER: &str = "kakoitest";

/// The test user's uid and gid, creating the user (and its subordinate ids) if needed.
pub(crate) fn test_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, TEST_USER]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", TEST_USER])
            .status();
    }
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("{TEST_USER}:")))
        {
            let _ = std::fs::write(f, format!("{text}{TEST_USER}:300000:65536\n"));
        }
    }
    (
        id("-u").expect("test user exists"),
        id("-g").expect("test user exists"),
    )
}

fn run_as(uid: u32, gid: u32, policy: &Path) -> Output {
    kakoi()
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .args(["run", "--policy"])
        .arg(policy)
        .args(["--", "/probe/probe"])
        .output()
        .unwrap()
}

#[test]
fn rootless_with_a_single_id_map() {
    need_root!();
    let (uid, gid) = test_user();
    let d = tempdir();
    let p = policy(d.path(), "rootless", "");
    let o = run_as(uid, gid, &p);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    let words = |v: &Value| {
        v.as_str()
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(words(&r["uid_map"]), ["0", &uid.to_string(), "1"]);
    assert_eq!(words(&r["gid_map"]), ["0", &gid.to_string(), "1"]);
    assert_eq!(r["setgroups"], "deny");
    assert_ne!(r["ns"]["user"], my_ns("user"));
    assert_eq!(r["CapEff"], cap_mask(DOCKER_CAPS));
    assert_eq!(r["NoNewPrivs"], "1");
    assert_eq!(r["Seccomp"], "2");
    assert_eq!(r["interfaces"], serde_json::json!(["lo"]));
    assert!(
        stderr(&o).contains("cgroup limit not applied (`cgroup optional`)"),
        "{}",
        stderr(&o)
    );
    // `cgroup required` without a delegated cgroup: a clear failure before anything runs.
    let strict = policy(
        d.path(),
        "rootless-strict",
        "resources {\n    cgroup required\n}\n",
    );
    let o = run_as(uid, gid, &strict);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("delegated cgroup"), "{}", stderr(&o));
}

/// L7 (red team): a rootless launch by a member of a group (here one made for the test,
/// owning a 0640 file) does not keep that group in the sandbox: one subordinate gid in
/// the map lets newgidmap allow setgroups, and the sandbox drops the caller's groups.
#[test]
fn l7_rootless_sandboxes_drop_the_callers_groups() {
    need_root!();
    let (uid, gid) = test_user();
    let _ = Command::new("groupadd").args(["-f", "kakoi-l7"]).status();
    let o = Command::new("getent")
        .args(["group", "kakoi-l7"])
        .output()
        .unwrap();
    let group: u32 = stdout(&o).split(':').nth(2).unwrap().parse().unwrap();
    let d = tempdir();
    let secret = d.path().join("secret");
    std::fs::write(&secret, "group secret\n").unwrap();
    std::os::unix::fs::chown(&secret, Some(0), Some(group)).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let p = policy(
        d.path(),
        "l7",
        &format!(
            "filesystem {{\n    bind \"{}\" -> \"/d\"\n}}",
            d.path().display()
        ),
    );
    let as_member = |script: &str| {
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg(format!("--groups={group}"))
            .arg(env!("CARGO_BIN_EXE_kakoi"))
            .args(["run", "--policy"])
            .arg(&p)
            .args(["--", "/bin/sh", "-c", script])
            .current_dir("/")
            .output()
            .unwrap()
    };
    // The caller itself can read it: the test would show nothing otherwise.
    let o = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg(format!("--groups={group}"))
        .arg("cat")
        .arg(&secret)
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "group secret\n");
    let o = as_member("cat /d/secret 2>&1; cat /proc/self/status | grep ^Groups");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Permission denied"), "{out}");
    assert!(!out.contains("group secret"), "{out}");
}

#[test]
fn rootless_with_subordinate_id_ranges() {
    need_root!();
    if Command::new("newuidmap").arg("--help").output().is_err() {
        panic!("newuidmap is missing: scripts/setup.sh installs the uidmap package");
    }
    let (uid, gid) = test_user();
    let d = tempdir();
    let p = policy(
        d.path(),
        "subids",
        &format!("identity {{\n    subids \"{TEST_USER}\"\n    user 1000\n    group 1000\n}}\n"),
    );
    let o = run_as(uid, gid, &p);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    let lines: Vec<Vec<String>> = r["uid_map"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let sub: Vec<String> = std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{TEST_USER}:"))
                .map(|r| r.split(':').map(String::from).collect())
        })
        .unwrap();
    assert_eq!(
        lines,
        [
            vec!["0".to_string(), uid.to_string(), "1".into()],
            vec!["1".into(), sub[0].clone(), sub[1].clone()]
        ]
    );
    assert_eq!(
        r["Uid"].as_str().unwrap().split_whitespace().next(),
        Some("1000")
    );
    assert_eq!(
        r["Gid"].as_str().unwrap().split_whitespace().next(),
        Some("1000")
    );
    assert_eq!(r["setgroups"], "allow");
}

#[test]
fn every_namespace_on_and_the_host_network() {
    need_root!();
    let d = tempdir();
    let all = policy(d.path(), "all", "namespaces {\n    all on\n}\n");
    let r = report(&run_probe(&all, &[]));
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        assert_ne!(r["ns"][n], my_ns(n), "{n} namespace is new");
    }
    let host = policy(d.path(), "host-net", "network {\n    mode host\n}\n");
    let r = report(&run_probe(&host, &[]));
    assert_eq!(r["ns"]["net"], my_ns("net"));
    assert_ne!(r["ns"]["mnt"], my_ns("mnt"));
}

#[test]
fn process_settings_env_cwd_hostname() {
    need_root!();
    let d = tempdir();
    let p = policy(
        d.path(),
        "process",
        "process {\n    env [\"GREETING=hello\"]\n    cwd \"/tmp\"\n    hostname \"probe-host\"\n}\n",
    );
    let o = kakoi()
        .args(["run", "-e", "EXTRA=1", "--policy"])
        .arg(&p)
        .args(["--", "/probe/probe"])
        .output()
        .unwrap();
    let r = report(&o);
    let env: Vec<&str> = r["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"GREETING=hello") && env.contains(&"EXTRA=1"),
        "{env:?}"
    );
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "a default PATH: {env:?}"
    );
    assert!(
        !env.iter().any(|e| e.starts_with("CARGO")),
        "the launcher's environment does not leak: {env:?}"
    );
    assert_eq!(r["cwd"], "/tmp");
    assert_eq!(r["hostname"], "probe-host");
}

/// The launcher starts its child on another CPU while both set up (a placement hint),
/// but the payload runs on exactly the CPUs the launcher was given.
#[test]
fn the_payload_gets_the_launchers_cpus() {
    need_root!();
    let allowed = |cpus: Option<&str>| {
        let mut c = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.args(["-c", list, env!("CARGO_BIN_EXE_kakoi")]);
                c
            }
            None => kakoi(),
        };
        let o = c
            .args(["run", "--policy", "default", "--"])
            .args(["/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let own = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list"))
        .unwrap()
        .to_string();
    assert_eq!(allowed(None), own);
    assert_eq!(allowed(Some("0")), "Cpus_allowed_list:\t0");
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert_eq!(allowed(Some("1")), "Cpus_allowed_list:\t1");
        assert_eq!(allowed(Some("0,1")), "Cpus_allowed_list:\t0-1");
    }
}

#[test]
fn absent_lsms_required_fail_optional_warn() {
    need_root!();
    if Path::new("/sys/kernel/security/apparmor").exists()
        || Path::new("/sys/fs/selinux/enforce").exists()
    {
        eprintln!("skipped: an LSM is active here (the QEMU harness checks enforcement)");
        return;
    }
    let d = tempdir();
    let req = policy(
        d.path(),
        "aa-required",
        "apparmor required {\n    profile \"kakoi-test\"\n}\n",
    );
    let o = run_probe(&req, &[]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("no AppArmor"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let opt = policy(
        d.path(),
        "se-optional",
        "selinux optional {\n    type container_t\n    level random\n}\n",
    );
    let o = run_probe(&opt, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("SELinux is not enabled"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn limits_are_written_to_the_hosts_cgroups() {
    need_root!();
    let d = tempdir();
    let p = policy(
        d.path(),
        "cgroup-files",
        "resources {\n    memory 96M\n    memory-swap 128M\n    pids 50\n    cpu 0.5\n    cpu-weight 200\n    cgroup required\n}\n",
    );
    let (child, _out, _ready) = spawn_waiting(&p);
    let layout = kakoi::launch::cgroup::host_layout();
    let read = |ctrl: &str, v1: &str, v2: &str| -> String {
        let dir = launch_cgroup(ctrl, child.id()).unwrap();
        match &layout.controllers[ctrl] {
            kakoi::launch::cgroup::Hierarchy::V1 { .. } => std::fs::read_to_string(dir.join(v1)),
            kakoi::launch::cgroup::Hierarchy::V2 { .. } => std::fs::read_to_string(dir.join(v2)),
        }
        .unwrap()
        .trim()
        .to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes", "memory.max"),
        (96u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max", "pids.max"), "50");
    // v1 limits memory + swap together; v2 limits swap alone.
    assert_eq!(
        read("memory", "memory.memsw.limit_in_bytes", "memory.swap.max"),
        match &layout.controllers["memory"] {
            kakoi::launch::cgroup::Hierarchy::V1 { .. } => (128u64 << 20).to_string(),
            kakoi::launch::cgroup::Hierarchy::V2 { .. } => (32u64 << 20).to_string(),
        }
    );
    let cpu = read("cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(cpu.starts_with("50000"), "{cpu}");
    let payload: i32 = read("pids", "cgroup.procs", "cgroup.procs")
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host_view = std::fs::read_to_string(format!("/proc/{payload}/cgroup")).unwrap();
    let mem = launch_cgroup("memory", child.id()).unwrap();
    let name = mem.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        host_view.contains(&name),
        "the payload is in the sandbox's cgroup: {host_view}"
    );
    // Below the caller's own cgroup in every hierarchy (this host's test process sits in
    // memory:/process_api/…): a limited caller's limits hold for the sandbox.
    for (ctrl, line) in [("memory", "memory"), ("pids", "pids")] {
        if let kakoi::launch::cgroup::Hierarchy::V1 { mount } = &layout.controllers[ctrl] {
            let own = own_cgroup_dir(mount, Some(line));
            let dir = launch_cgroup(ctrl, child.id()).unwrap();
            assert_eq!(dir.parent().unwrap(), own, "{ctrl}");
        }
    }
    release(child);
}

/// The escape probes of SECURITY.md, each run by the probe as the payload in a forked child,
/// under the shipped `default` (Docker-equivalent) and `strict` policies: the exact result
/// of every attempt. "contained" means a chroot walk or `/proc/1/root` leads back to the
/// sandbox's own root.
const ESCAPES: &[(&str, &str, &str)] = &[
    // (probe, default, strict)
    ("mount", "EPERM", "EPERM"),
    ("umount", "EPERM", "EPERM"),
    ("pivot_root", "EPERM", "EPERM"),
    ("unshare-user", "EPERM", "EPERM"),
    ("unshare-mount", "EPERM", "EPERM"),
    ("clone-newuser", "EPERM", "EPERM"),
    ("setns", "EPERM", "EPERM"),
    ("chroot-walk", "contained", "chroot EPERM"),
    // pid 1 is kakoi's init, which is not dumpable: its root is out of reach.
    ("proc1-root", "EACCES", "EACCES"),
    ("ptrace-outside", "ESRCH", "EPERM"),
    ("open_by_handle_at", "EPERM", "EPERM"),
    ("keyctl", "EPERM", "EPERM"),
    ("add_key", "EPERM", "EPERM"),
    ("bpf", "EPERM", "EPERM"),
    ("perf_event_open", "EPERM", "EPERM"),
    ("kexec_load", "EPERM", "EPERM"),
    ("init_module", "EPERM", "EPERM"),
    ("socket-alg", "EPERM", "EPERM"),
    // Docker keeps CAP_NET_RAW; the sandbox's network namespace has only lo.
    ("socket-raw", "ok", "EPERM"),
    ("socket-packet", "ok", "EPERM"),
    ("io_uring_setup", "EPERM", "EPERM"),
    ("userfaultfd", "EPERM", "EPERM"),
    ("personality", "EPERM", "EPERM"),
    ("write-proc-sys", "EROFS", "EROFS"),
    ("write-sys", "EROFS", "EROFS"),
    ("cgroup-release-agent", "EPERM", "EPERM"),
];

fn escape_results(policy: &Path) -> Vec<(String, String)> {
    let actions: Vec<String> = ESCAPES
        .iter()
        .map(|(e, _, _)| format!("escape:{e}"))
        .collect();
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let o = run_probe(policy, &actions);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&o);
    (0..ESCAPES.len())
        .map(|i| (ESCAPES[i].0.to_string(), action(&r, i).to_string()))
        .collect()
}

#[test]
fn escape_probes_under_the_shipped_policies() {
    need_root!();
    let d = tempdir();
    let default = policy(d.path(), "escape-default", "");
    let strict = strict_policy(d.path(), "escape-strict", "");
    for (p, strict) in [(&default, false), (&strict, true)] {
        let want = ESCAPES.iter().map(|e| if strict { e.2 } else { e.1 });
        let mismatches: Vec<String> = escape_results(p)
            .into_iter()
            .zip(want)
            .filter(|((_, g), w)| g != w)
            .map(|((n, g), w)| format!("{n}: got {g}, want {w}"))
            .collect();
        assert!(mismatches.is_empty(), "{}: {mismatches:#?}", p.display());
    }
}

/// Write a strict-derived policy binding the probe at /probe, plus `extra` filesystem lines.
fn strict_policy(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{name}.kakoi"));
    std::fs::write(
        &p,
        format!(
            "extends \"strict\"\nfilesystem {{\n    bind \"{}\" -> \"/probe\"\n    read [\"/probe\"]\n    exec [\"/probe\"]\n{extra}}}\n",
            examples_dir().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    p
}

/// Copies of the probe that would raise privileges, in `dir`: `suid` (setuid root),
/// `fcap-raw` and `fcap-admin` (file capability CAP_NET_RAW or CAP_SYS_ADMIN, permitted and
/// effective).
fn privileged_probes(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (name, cap) in [
        ("suid", None),
        ("fcap-raw", Some("CAP_NET_RAW")),
        ("fcap-admin", Some("CAP_SYS_ADMIN")),
    ] {
        let p = dir.join(name);
        std::fs::copy(examples_dir().join("probe"), &p).unwrap();
        let mode = if cap.is_none() { 0o4755 } else { 0o755 };
        std::fs::set_permissions(&p, PermissionsExt::from_mode(mode)).unwrap();
        let Some(cap) = cap else { continue };
        // vfs_cap_data revision 2 with the effective flag: permitted and inheritable words
        // for capabilities 0-31, then 32-63, little-endian.
        let bits = u32::from_str_radix(&cap_mask(&[cap]), 16).unwrap();
        let xattr: Vec<u8> = [0x0200_0001u32, bits, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: NUL-terminated path and name; `xattr` is valid for its length.
        let r = unsafe {
            libc::setxattr(
                path.as_ptr(),
                c"security.capability".as_ptr(),
                xattr.as_ptr().cast(),
                xattr.len(),
                0,
            )
        };
        assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
    }
}

/// A setuid-root binary and file-capability binaries gain nothing in the sandbox; outside,
/// run by an unprivileged user, the same files do (so the test can fail).
#[test]
fn setuid_and_file_capability_binaries_gain_nothing() {
    need_root!();
    let d = tempdir();
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    privileged_probes(&bin);
    let ids = |name: &str| {
        let o = Command::new(bin.join(name))
            .arg("ids")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        stdout(&o).trim().to_string()
    };
    // Controls, outside: the setuid copy runs as root, the file capabilities are granted.
    assert!(ids("suid").starts_with("euid 0 capeff "), "{}", ids("suid"));
    assert_eq!(
        ids("fcap-raw"),
        format!("euid 65534 capeff {}", cap_mask(&["CAP_NET_RAW"]))
    );
    assert_eq!(
        ids("fcap-admin"),
        format!("euid 65534 capeff {}", cap_mask(&["CAP_SYS_ADMIN"]))
    );

    // `suid`: binds are nosuid by default, which alone would make the kernel ignore the
    // setuid bit and the file capabilities; this checks what stands behind that.
    let bind = format!("    bind \"{}\" -> \"/privs\" suid\n", bin.display());
    let default = policy(
        d.path(),
        "privs-default",
        &format!("filesystem {{\n{bind}}}"),
    );
    // strict, but with CAP_NET_RAW left in the bounding set, so that only no_new_privs
    // stands between fcap-raw and the capability.
    let strict = strict_policy(
        d.path(),
        "privs-strict",
        &format!("{bind}    read [\"/privs\"]\n    exec [\"/privs\"]\n}}\ncapabilities {{\n    bounding [CAP_NET_RAW]\n"),
    );
    let actions = [
        "privs-after-exec:/privs/suid",
        "privs-after-exec:/privs/fcap-raw",
        "privs-after-exec:/privs/fcap-admin",
    ];
    // Root with Docker's capabilities: nothing beyond them; the kernel refuses to run a
    // binary whose effective file capability lies outside the bounding set.
    let docker = format!("euid 0 capeff {}", cap_mask(DOCKER_CAPS));
    expect_actions(
        &default,
        &[
            (actions[0], &docker),
            (actions[1], &docker),
            (actions[2], "EPERM"),
        ],
    );
    // uid 65534: no_new_privs ignores the setuid bit and withholds CAP_NET_RAW.
    let nothing = "euid 65534 capeff 0000000000000000";
    expect_actions(
        &strict,
        &[
            (actions[0], nothing),
            (actions[1], nothing),
            (actions[2], "EPERM"),
        ],
    );
}

/// CVE-2019-5736: the payload cannot reach the launcher's executable. Its parent, kakoi's
/// init, is not dumpable: the ptrace access check on /proc/PPID/exe refuses a payload
/// without CAP_SYS_PTRACE over the host; without the init, the launcher is outside the
/// payload's pid namespace.
#[test]
fn the_launchers_executable_is_out_of_reach() {
    need_root!();
    let d = tempdir();
    // The payload's parent is kakoi's init, a copy of the launcher that is not dumpable.
    let own = policy(d.path(), "exe-pidns", "");
    expect_actions(&own, &[("parent-exe", "EACCES")]);
    // Without the init, the payload is pid 1 and the launcher is outside its namespace.
    let bare = policy(d.path(), "exe-noinit", "process {\n    init off\n}");
    expect_actions(&bare, &[("parent-exe", "no parent")]);
    let shared = policy(d.path(), "exe-hostpid", "namespaces {\n    pid off\n}");
    expect_actions(&shared, &[("parent-exe", "EACCES")]);
}

/// What a launch could leave behind, counted for the load test.
#[derive(Debug, Default, PartialEq)]
struct Residue {
    /// Processes whose command line carries the test's marker (launchers, payloads).
    processes: usize,
    /// Zombies among those, or children of this test process.
    zombies: usize,
    /// Host ends of veth pairs left in the test's network namespace: a sandbox's network
    /// namespace that outlived its processes would keep its pair.
    veth: usize,
    /// kakoi cgroups whose launcher is gone.
    stale_cgroups: usize,
    /// Mounts in the host's mount table, not counting /run/netns (other tests add those).
    host_mounts: usize,
}

fn residue(ns: &NetNs, marker: &str) -> Residue {
    let me = std::process::id().to_string();
    let mut r = Residue::default();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = e.path();
        let Ok(cmd) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: split after the last ')'.
        let tail: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, t)| t.split_whitespace().collect());
        let ours = String::from_utf8_lossy(&cmd).contains(marker);
        let zombie = tail.first() == Some(&"Z");
        if ours {
            r.processes += 1;
        }
        if zombie && (ours || tail.get(1) == Some(&me.as_str())) {
            r.zombies += 1;
        }
    }
    r.veth = ns
        .exec("ip -o link")
        .lines()
        .filter(|l| l.contains(": kk"))
        .count();
    r.stale_cgroups = leftover_cgroups().len();
    r.host_mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| !l.contains("/run/netns"))
        .count();
    r
}

/// 500 sequential and 50 concurrent launches (veth networking, cgroup limits), with one
/// launcher in ten SIGKILLed at a varying moment (during set-up or while the payload
/// runs). Afterwards nothing is left: no process, zombie, veth pair (so no network
/// namespace), host mount, or cgroup once the next launch has collected the killed
/// launchers' ones.
#[test]
fn load_with_killed_launchers_leaves_nothing() {
    need_root!();
    let _lock = cgroup_lock();
    let ns = NetNs::new("load");
    ns.exec("ip link add kbr0 type bridge");
    ns.exec("ip addr add 10.232.0.1/24 dev kbr0");
    ns.exec("ip link set kbr0 up");
    let d = tempdir();
    let marker = format!("kakoi-load-{}", std::process::id());
    let p = policy(
        d.path(),
        &marker,
        "network {\n    mode veth\n    veth {\n        bridge \"kbr0\"\n        subnet \"10.232.0.0/24\"\n    }\n}\nresources {\n    memory 64M\n    pids 32\n    cgroup required\n}\n",
    );
    let before = residue(&ns, &marker);
    let launcher = |payload: &[&str]| {
        // nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup mounts.
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", ns.0))
            .args([env!("CARGO_BIN_EXE_kakoi"), "run", "--policy"])
            .arg(&p)
            .arg("--")
            .args(payload)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let mut rng = 0x9e37_79b9_u64;
    let mut delay = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::time::Duration::from_micros(rng % 25_000)
    };
    let (mut killed, mut ok) = (0, 0);
    for i in 0..500 {
        if i % 10 == 7 {
            let mut c = launcher(&["/probe/probe", "sleep:100", &marker])
                .spawn()
                .unwrap();
            std::thread::sleep(delay());
            c.kill().unwrap();
            c.wait().unwrap();
            killed += 1;
        } else {
            let o = launcher(&["/bin/true"]).output().unwrap();
            assert!(o.status.success(), "launch {i}: {}", stderr(&o));
            ok += 1;
        }
    }
    let mut batch: Vec<_> = (0..50)
        .map(|_| {
            launcher(&["/probe/probe", "sleep:300", &marker])
                .spawn()
                .unwrap()
        })
        .collect();
    for i in (0..50).step_by(10) {
        std::thread::sleep(delay());
        batch[i + 3].kill().unwrap();
        killed += 1;
    }
    for (i, c) in batch.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        if i % 10 != 3 {
            assert!(o.status.success(), "concurrent launch {i}: {}", stderr(&o));
            ok += 1;
        }
    }
    // Payloads of killed launchers die by PDEATHSIG, asynchronously.
    let mut after = residue(&ns, &marker);
    for _ in 0..100 {
        if after.processes == 0 && after.zombies == 0 && after.veth == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        after = residue(&ns, &marker);
    }
    let awaiting = after.stale_cgroups;
    // The next launch collects the cgroups the killed launchers could not remove.
    let o = launcher(&["/bin/true"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let collected = residue(&ns, &marker);
    eprintln!(
        "load: {ok} launches completed, {killed} launchers killed; before {before:?}; after {after:?} ({awaiting} cgroups awaiting collection); after one more launch {collected:?}"
    );
    assert_eq!(
        collected,
        Residue {
            host_mounts: before.host_mounts,
            ..Residue::default()
        }
    );
    assert!(killed == 55 && ok == 495);
}

/// L3: TIOCSTI into the caller's terminal (a pty here, with no session, so the payload
/// could make it its controlling tty first). Without `-t` the payload's stdin is a relay
/// pipe (ENOTTY); with `-t` it is the sandbox's own pty. Either way nothing is queued on
/// the caller's terminal.
#[test]
fn tiocsti_cannot_reach_the_callers_terminal() {
    need_root!();
    let d = tempdir();
    let p = policy(d.path(), "tiocsti", "");
    for tty in [None, Some("-t")] {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: out-pointers for the two descriptors; no name, termios or winsize.
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "openpty");
        // SAFETY: `slave` is a descriptor we own; the child gets a duplicate as its stdin.
        let stdin = unsafe { Stdio::from_raw_fd(libc::dup(slave)) };
        let o = kakoi()
            .args(["run", "--policy"])
            .arg(&p)
            .args(tty)
            .args([
                "--",
                "/probe/probe",
                "escape:tiocsti",
                "escape:tiocsti-ctty",
            ])
            .stdin(stdin)
            .output()
            .unwrap();
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, the bytes waiting to be read on the terminal.
        let r = unsafe { libc::ioctl(slave, libc::FIONREAD, &mut queued) };
        assert_eq!(r, 0, "FIONREAD");
        // SAFETY: closing the two descriptors we opened.
        unsafe {
            libc::close(master);
            libc::close(slave);
        }
        assert!(o.status.success(), "{tty:?}: {}", stderr(&o));
        assert_eq!(
            queued, 0,
            "{tty:?}: input was pushed into the caller's terminal"
        );
        if tty.is_none() {
            let r = report(&o);
            assert_eq!(action(&r, 0), "ENOTTY");
            assert_eq!(action(&r, 1), "ENOTTY");
        } else {
            let out = stdout(&o);
            assert!(out.contains("\"actions\""), "{tty:?}: {out}");
        }
    }
}

/// The payload's stdout and stderr are its own (inherited, not relayed): 4 MiB of binary
/// data on stdout and a large stderr arrive intact.
#[test]
fn large_binary_output_passes_through() {
    need_root!();
    let d = tempdir();
    let p = policy(d.path(), "output", "");
    let o = kakoi()
        .args(["run", "--policy"])
        .arg(&p)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "head -c 4194304 /dev/urandom > /tmp/x; sha256sum < /tmp/x | cut -d' ' -f1 >&2; cat /tmp/x; seq 1 100000 >&2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), 4 << 20);
    let err = stderr(&o);
    let mut lines = err.lines().filter(|l| !l.starts_with("kakoi:"));
    let want = lines.next().unwrap().to_string();
    use sha2::Digest;
    let got: String = sha2::Sha256::digest(&o.stdout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, want, "stdout changed on the way");
    let numbers: Vec<&str> = lines.collect();
    assert_eq!(numbers.len(), 100_000);
    assert_eq!(numbers.last(), Some(&"100000"));
}
