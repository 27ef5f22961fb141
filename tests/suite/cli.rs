use crate::util::{self, kakoi, run, stderr, stdout};

#[test]
fn check_exit_codes() {
    let ok = run(&["check", "default", "strict"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let bad = run(&["check", "fixtures/invalid/unknown-syscall.kakoi"]);
    assert_eq!(bad.status.code(), Some(1));
    let missing = run(&["check", "no/such/file.kakoi"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read `no/such/file.kakoi`"));
    let usage = run(&["check"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn check_json_reports_positions() {
    let o = run(&[
        "check",
        "--format",
        "json",
        "fixtures/invalid/unknown-syscall.kakoi",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v["policies"][0]["diagnostics"][0];
    assert_eq!(d["code"], "E0207");
    assert_eq!(d["severity"], "error");
    assert!(d["line"].as_u64().unwrap() > 1);
    assert!(d["column"].as_u64().unwrap() > 1);
    assert!(d["help"].as_str().unwrap().contains("did you mean"));
}

#[test]
fn deny_warnings_turns_warnings_into_failure() {
    let f = "fixtures/warnings/shadowed.kakoi";
    assert_eq!(run(&["check", f]).status.code(), Some(0));
    assert_eq!(run(&["check", "--deny-warnings", f]).status.code(), Some(1));
}

#[test]
fn compile_writes_a_complete_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let o = run(&["compile", "default", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], 1);
    for a in manifest["artifacts"].as_array().unwrap() {
        let bytes = std::fs::read(out.join(a["name"].as_str().unwrap())).unwrap();
        assert_eq!(bytes.len() as u64, a["bytes"].as_u64().unwrap());
    }
    assert!(out.join("seccomp.x86_64.bpf").is_file());
    // Replacing an existing bundle works and leaves no temporary directories.
    let o = run(&["compile", "strict", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("b")]);
}

#[test]
fn compile_errors_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let o = run(&[
        "compile",
        "fixtures/invalid/unknown-syscall.kakoi",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing was written"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A non-bundle directory is never overwritten.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "keep").unwrap();
    let o = run(&["compile", "default", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a kakoi bundle"));
    assert_eq!(
        std::fs::read_to_string(out.join("precious.txt")).unwrap(),
        "keep"
    );
}

#[test]
fn compile_into_an_unwritable_place_fails_cleanly() {
    let o = run(&["compile", "default", "-o", "/proc/kakoi-bundle"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot write the bundle"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn emit_prints_one_artifact() {
    let o = run(&["compile", "default", "--emit", "policy"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "default");
    let o = run(&["compile", "default", "--emit", "seccomp-x86_64"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout.len() % 8, 0);
    let o = run(&["compile", "default", "--emit", "seccomp-aarch64"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no `seccomp-aarch64` artifact"));
    // Every kind the help names is accepted and prints the bundle's file.
    for (kind, starts) in [
        ("caps", "{"),
        ("landlock", "{"),
        ("lsm", "{"),
        ("apparmor", "# AppArmor profile"),
        ("selinux", ";"),
    ] {
        let o = run(&["compile", "web-server", "--emit", kind]);
        assert_eq!(o.status.code(), Some(0), "{kind}: {}", stderr(&o));
        assert!(stdout(&o).starts_with(starts), "{kind}: {}", stdout(&o));
    }
}

#[test]
fn help_completions_and_man_page() {
    let o = run(&["--help"]);
    assert!(stdout(&o).contains("Examples:"));
    let o = run(&["completions", "bash"]);
    assert!(stdout(&o).contains("_kakoi"));
    let o = run(&["man"]);
    assert!(stdout(&o).contains(".TH kakoi"));
    let o = run(&["profiles"]);
    for n in ["default", "strict", "web-server", "python-batch"] {
        assert!(stdout(&o).contains(n));
    }
    let o = run(&["profiles", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "strict", "web-server", "python-batch"]);
    assert!(v[0]["source"].as_str().unwrap().contains("seccomp"));
}

#[test]
fn local_extends_resolves_relative_to_the_file() {
    let o = util::run(&["check", "fixtures/valid/extends-local.kakoi"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn fmt_check_and_rewrite() {
    let o = run(&[
        "fmt",
        "--check",
        "profiles/default.kakoi",
        "profiles/strict.kakoi",
        "profiles/web-server.kakoi",
        "profiles/python-batch.kakoi",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "shipped policies are not formatted:\n{}",
        stdout(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.kakoi");
    std::fs::write(&f, "seccomp{\nallow   read # keep me\n}\n").unwrap();
    let p = f.to_str().unwrap();
    let o = run(&["fmt", "--check", p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("p.kakoi"));
    assert_eq!(run(&["fmt", p]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "seccomp {\n    allow read  # keep me\n}\n"
    );
    // A file with syntax errors is reported and left alone.
    std::fs::write(&f, "seccomp {\n allow read %\n}\n").unwrap();
    let o = run(&["fmt", p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unexpected `%`"));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "seccomp {\n allow read %\n}\n"
    );
}

#[test]
fn compile_shows_apparmor_parser_errors_at_the_policy_rule() {
    if !["/usr/sbin/apparmor_parser"]
        .iter()
        .any(|p| std::path::Path::new(p).is_file())
    {
        assert!(
            std::env::var("CI").is_err(),
            "apparmor_parser must be installed under CI"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.kakoi");
    std::fs::write(
        &f,
        "apparmor optional {\n    rule \"capability net_bind_servce,\"\n}\n",
    )
    .unwrap();
    let out = dir.path().join("b");
    let o = run(&["compile", f.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("error[E1201]: apparmor_parser rejects the generated artifact"),
        "{e}"
    );
    assert!(e.contains("bad.kakoi:2:10"), "{e}");
    assert!(e.contains("Invalid capability net_bind_servce"), "{e}");
    assert!(!out.exists());
}

#[test]
fn plan_prints_the_launch_steps() {
    let o = run(&["plan", "strict", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("launch plan for `strict`: /bin/true"));
    assert!(out.contains("pivot_root") && out.contains("seccomp(SECCOMP_SET_MODE_FILTER)"));
    let o = run(&["plan", "default", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["steps"].as_array().unwrap().len() > 10);
}

#[test]
fn explain_names_the_deciding_rule() {
    let o = run(&["explain", "default", "socket", "2", "1", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("socket(2, 1, 0) on x86_64: allow"), "{out}");
    assert!(out.contains("<shipped>/default.kakoi:"), "{out}");
    let out = stdout(&run(&["explain", "default", "socket", "38", "5", "0"]));
    assert!(
        out.contains("errno(EPERM)") && out.contains("the `default` action"),
        "{out}"
    );
    let out = stdout(&run(&["explain", "default", "getpid", "--arch", "x86"]));
    assert!(
        out.contains("kill-process") && out.contains("`bad-arch`"),
        "{out}"
    );
    let o = run(&["explain", "default", "mout"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean `mount`?"));
}

/// `kakoi compile` onto a full file system and a read-only one, in a private mount
/// namespace (tmpfs mounts the host never sees): each fails with exit 2 and a message
/// naming the cause, leaves no temporary files, and an existing bundle stays intact.
#[test]
fn compile_onto_a_full_or_read_only_file_system_leaves_nothing() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let script = r#"
set -u
m=$D/m
mkdir -p $m
step() { echo "== $1"; }
mount -t tmpfs -o size=16k tmpfs $m
step tiny; $K compile default -o $m/b 2>&1; echo "rc=$?"; ls -A $m
umount $m
mount -t tmpfs -o size=1m tmpfs $m
step first; $K compile default -o $m/b >/dev/null 2>&1; echo "rc=$?"
sha256sum $m/b/* > $D/before
dd if=/dev/zero of=$m/filler bs=4k 2>/dev/null
step full; $K compile strict -o $m/b 2>&1; echo "rc=$?"; ls -A $m
sha256sum $m/b/* | cmp -s - $D/before && echo "bundle intact"
rm $m/filler
mount -o remount,ro $m
step readonly; $K compile default -o $m/c 2>&1; echo "rc=$?"; ls -A $m
"#;
    let o = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("K", env!("CARGO_BIN_EXE_kakoi"))
        .env("D", d.path())
        .output()
        .unwrap();
    let out = stdout(&o);
    let section = |name: &str| -> String {
        out.split(&format!("== {name}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no `{name}` in:\n{out}\n{}", stderr(&o)))
            .split("== ")
            .next()
            .unwrap()
            .to_string()
    };
    let tiny = section("tiny");
    assert!(tiny.contains("No space left on device"), "{tiny}");
    assert!(
        tiny.trim_end().ends_with("rc=2"),
        "nothing listed after rc: {tiny}"
    );
    assert!(section("first").contains("rc=0"), "{out}");
    let full = section("full");
    assert!(full.contains("No space left on device"), "{full}");
    assert!(
        full.contains("rc=2\nb\nfiller\n"),
        "only the old bundle and the filler: {full}"
    );
    assert!(full.contains("bundle intact"), "{full}");
    let ro = section("readonly");
    assert!(ro.contains("read-only filesystem"), "{ro}");
    assert!(
        ro.contains("rc=2\nb\n") && ro.trim_end().ends_with("b"),
        "{ro}"
    );
}

#[test]
fn a_launch_reads_every_policy_field_but_the_seccomp_rules() {
    // `kakoi run --bundle` skips the seccomp rules of policy.json (the bundle's filter was
    // compiled from them) and reads everything else as a full load does.
    let host = kakoi::host::arch();
    for name in kakoi::profiles::names() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("b");
        let o = run(&["compile", name, "-o", b.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let full = kakoi::bundle::load_dir(&b, host).unwrap();
        let launch = kakoi::bundle::load_dir_for_launch(&b, host).unwrap();
        assert!(!full.policy.seccomp.rules.is_empty(), "{name}");
        let mut want = full.policy.clone();
        want.seccomp.rules.clear();
        assert_eq!(launch.policy, want, "{name}");
        assert_eq!(launch.seccomp, full.seccomp, "{name}");
    }
}

/// A JSON profile where a policy goes is refused with the command that reads it, not
/// hundreds of syntax errors; `check --format json` reports an unreadable file in JSON.
#[test]
fn json_where_a_policy_goes_and_unreadable_files_under_json() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("profile.json");
    std::fs::write(&f, r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}"#).unwrap();
    for args in [vec!["compile", "-o"], vec!["check"]] {
        let mut c = kakoi();
        c.args(&args);
        if args[0] == "compile" {
            c.arg(d.path().join("out"));
        }
        let o = c.arg(&f).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("is JSON, not a kakoi policy") && e.contains("kakoi import"),
            "{e}"
        );
        assert!(e.lines().count() <= 3, "{e}");
    }
    let o = kakoi()
        .args(["check", "--format", "json"])
        .arg(d.path().join("missing.kakoi"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["policies"][0]["ok"], false);
    assert!(v["policies"][0]["error"]
        .as_str()
        .unwrap()
        .contains("cannot read"));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}
