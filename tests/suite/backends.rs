//! The other layers: capability sets, Landlock rules, the AppArmor profile and the SELinux
//! module of every shipped policy (snapshots), accepted by the real `apparmor_parser` and
//! `secilc`, queried with `sesearch`, and Landlock enforced live.
//!
//! Tests named `*_with_apparmor_parser`, `*_with_secilc` and `*_with_sesearch` need those
//! tools (Debian packages apparmor, secilc, setools; `.ci/run` installs them): without
//! them they are skipped, except under CI, where they fail.

use kakoi::backends::{apparmor, caps, landlock, selinux, validate};
use kakoi::{cli, profiles};

use crate::util;

fn tool(name: &str) -> bool {
    let found = ["/usr/sbin", "/usr/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(name).is_file());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "`{name}` must be installed under CI"
        );
        eprintln!("skipped: `{name}` is not installed");
    }
    found
}

fn policies() -> Vec<(String, policy_lang::Policy)> {
    let v = util::policy_corpus();
    v.into_iter()
        .map(|n| {
            let p = cli::load(&n)
                .unwrap()
                .policy
                .unwrap_or_else(|| panic!("{n}"));
            (n, p)
        })
        .collect()
}

#[test]
fn shipped_artifacts_snapshots() {
    for name in profiles::names() {
        let p = cli::load(name).unwrap().policy.unwrap();
        insta::with_settings!({ snapshot_path => "snapshots/artifacts", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("{name}.apparmor"), apparmor::generate(&p).text);
            insta::assert_snapshot!(format!("{name}.selinux"), selinux::module(&p));
            insta::assert_json_snapshot!(format!("{name}.caps"), caps::generate(&p.capabilities));
            insta::assert_json_snapshot!(format!("{name}.landlock"), landlock::generate(&p));
        });
    }
}

#[test]
fn capability_masks() {
    let p = cli::load("default").unwrap().policy.unwrap();
    let v = caps::generate(&p.capabilities);
    assert_eq!(v["bounding"].as_array().unwrap().len(), 14);
    assert_eq!(v["inheritable"].as_array().unwrap().len(), 0);
    // CHOWN(0) DAC_OVERRIDE(1) FOWNER(3) FSETID(4) KILL(5) SETGID(6) SETUID(7) SETPCAP(8)
    // NET_BIND_SERVICE(10) NET_RAW(13) SYS_CHROOT(18) MKNOD(27) AUDIT_WRITE(29) SETFCAP(31)
    assert_eq!(v["masks"]["bounding"], "0x00000000a80425fb");
    assert_eq!(v["last_cap"], 40);
}

#[test]
fn landlock_abi_follows_the_rights_used() {
    let ll = |name: &str| landlock::generate(&cli::load(name).unwrap().policy.unwrap());
    assert!(ll("default").is_empty());
    let strict = ll("strict");
    assert_eq!(strict.abi, 5, "write grants ioctl_dev (ABI 5)");
    assert_eq!(strict.handled_net, 0);
    let web = ll("web-server");
    assert_eq!(
        web.handled_net,
        landlock::NET_BIND_TCP | landlock::NET_CONNECT_TCP
    );
    assert_eq!(web.ports.len(), 1);
    let every = ll("fixtures/valid/every-construct.kakoi");
    assert_eq!(every.enforcement, policy_lang::ir::Enforcement::Required);
}

#[test]
fn every_profile_compiles_with_apparmor_parser() {
    if !tool("apparmor_parser") {
        return;
    }
    for (name, p) in policies() {
        let profile = apparmor::generate(&p);
        let findings = validate::apparmor(&profile).unwrap();
        assert!(
            findings.is_empty(),
            "{name}: {findings:?}\n{}",
            profile.text
        );
    }
}

#[test]
fn parser_errors_map_back_to_the_policy_with_apparmor_parser() {
    if !tool("apparmor_parser") {
        return;
    }
    let text = "apparmor optional {\n    rule [\"deny /etc/shadow r,\", \"capability net_bind_servce,\"]\n}\n";
    let (map, checked) = policy_lang::check_str("bad.kakoi", text);
    let _ = map;
    let p = checked.policy.unwrap();
    let findings = validate::apparmor(&apparmor::generate(&p)).unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let o = findings[0].origin.as_ref().expect("mapped to the policy");
    assert_eq!((o.file.as_str(), o.line, o.column), ("bad.kakoi", 2, 34));
    assert!(
        findings[0]
            .message
            .contains("Invalid capability net_bind_servce"),
        "{findings:?}"
    );
}

#[test]
fn every_module_builds_with_secilc() {
    if !tool("secilc") {
        return;
    }
    for (name, p) in policies() {
        let module = selinux::module(&p);
        let (findings, bin) = validate::selinux(&module).unwrap();
        assert!(
            findings.is_empty() && bin.is_some(),
            "{name}: {findings:?}\n{module}"
        );
    }
}

#[test]
fn neverallow_guards_reject_a_module_that_grants_too_much_with_secilc() {
    if !tool("secilc") {
        return;
    }
    let text = "capabilities {\n    keep SYS_MODULE\n    acknowledge SYS_MODULE\n}\n";
    let (_, checked) = policy_lang::check_str("too-much.kakoi", text);
    let module = selinux::module(&checked.policy.unwrap());
    let (findings, bin) = validate::selinux(&module).unwrap();
    assert!(bin.is_none());
    assert!(
        findings.iter().any(|f| f.message.contains("neverallow")),
        "{findings:?}"
    );
}

#[test]
fn compiled_policy_answers_queries_with_sesearch() {
    if !tool("secilc") || !tool("sesearch") {
        return;
    }
    let p = cli::load("web-server").unwrap().policy.unwrap();
    let (_, bin) = validate::selinux(&selinux::module(&p)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.bin");
    std::fs::write(&path, bin.unwrap()).unwrap();
    let q = |args: &[&str]| {
        let o = std::process::Command::new("sesearch")
            .args(args)
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let t = "kakoi_web_server.process";
    assert!(
        q(&["-A", "-s", t, "-t", "usr_t", "-c", "file", "-p", "execute"])
            .contains("allow kakoi_web_server.process usr_t:file")
    );
    assert!(
        q(&["-A", "-s", t, "-c", "capability", "-p", "net_bind_service"])
            .contains("net_bind_service")
    );
    assert!(
        q(&["-A", "-s", t, "-t", "shadow_t"]).trim().is_empty(),
        "no access to shadow_t"
    );
    assert!(q(&["-A", "-s", t, "-c", "capability", "-p", "sys_admin"])
        .trim()
        .is_empty());
}

/// A forked child restricts itself with the web-server policy's Landlock rules: it may
/// read /etc but not /root, and may not write /etc; a second child, not restricted,
/// reads /root to show the denial is Landlock's.
#[test]
fn landlock_denies_live() {
    let p = cli::load("web-server").unwrap().policy.unwrap();
    let rules = landlock::generate(&p);
    let probe = |restrict: bool| -> [i32; 3] {
        let mut fds = [0i32; 2];
        // SAFETY: pipe(2) fills the two-element array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child opens files, writes three ints to the pipe and exits; the
        // Landlock setup allocates, which is fine in the single-threaded child of a fork
        // as long as no lock is held across fork, and the test harness holds none here.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut res = [0i32; 3];
            if restrict && kakoi::apply::landlock::restrict_self(&rules).is_err() {
                // SAFETY: leaving the child.
                unsafe { libc::_exit(3) };
            }
            let try_open = |path: &str, flags: i32| -> i32 {
                let c = std::ffi::CString::new(path).unwrap();
                // SAFETY: a valid C string; the fd is closed at once.
                let fd = unsafe { libc::open(c.as_ptr(), flags) };
                if fd >= 0 {
                    // SAFETY: closing the fd just opened.
                    unsafe { libc::close(fd) };
                    0
                } else {
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
                }
            };
            res[0] = try_open("/etc/hostname", libc::O_RDONLY);
            res[1] = try_open("/root", libc::O_RDONLY | libc::O_DIRECTORY);
            res[2] = try_open("/etc/hostname", libc::O_WRONLY);
            // SAFETY: writing the result array to our pipe, then exiting.
            unsafe {
                libc::write(fds[1], res.as_ptr().cast(), 12);
                libc::_exit(0);
            }
        }
        let mut out = [0i32; 3];
        // SAFETY: reading 12 bytes into `out`, then reaping our child.
        unsafe {
            libc::close(fds[1]);
            assert_eq!(libc::read(fds[0], out.as_mut_ptr().cast(), 12), 12);
            libc::close(fds[0]);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            assert_eq!(libc::WEXITSTATUS(st), 0);
        }
        out
    };
    let free = probe(false);
    assert_eq!(
        free[1], 0,
        "/root must be readable without Landlock for this test to mean anything"
    );
    let confined = probe(true);
    assert_eq!(confined[0], 0, "reading /etc is allowed");
    assert_eq!(confined[1], libc::EACCES, "reading /root is denied");
    assert_eq!(confined[2], libc::EACCES, "writing /etc is denied");
}
