//! The red-team findings (issue 27), one regression test each, named after the finding
//! (E1, E2 escapes; L1–L9 leaks; D1–D5 denial of service). SECURITY.md's table lists them
//! with what now blocks each. The launcher's findings need root and live in `launch.rs`
//! next to the probe they use; the ones here need no privilege.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::util::{kakoi, stderr, stdout};

/// Run `cmd`, killing it if it has not finished within `limit`: a stall is a failure of
/// the finding's fix (this is a hang guard, far above the expected time, not a benchmark).
fn finishes(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kakoi runs");
    let pid = child.id() as i32;
    // The output is read while the command runs (a full pipe would stall it).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    match rx.recv_timeout(limit) {
        Ok(o) => o,
        Err(_) => {
            // SAFETY: signalling the child this test started, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let o = rx.recv().unwrap();
            panic!(
                "still running after {limit:?}: {:?}\nstderr: {}",
                cmd.get_args().collect::<Vec<_>>(),
                short(&stderr(&o))
            );
        }
    }
}

/// The first lines of a message, each cut at 200 characters.
fn short(s: &str) -> String {
    s.lines()
        .take(20)
        .map(|l| l.chars().take(200).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

const LIMIT: Duration = Duration::from_secs(60);

/// A raw seccomp program: `(code, jt, jf, k)` each, little-endian `sock_filter`s.
fn bpf(insns: &[(u16, u8, u8, u32)]) -> Vec<u8> {
    insns
        .iter()
        .flat_map(|&(c, t, f, k)| {
            let mut b = c.to_le_bytes().to_vec();
            b.extend([t, f]);
            b.extend(k.to_le_bytes());
            b
        })
        .collect()
}

/// 15 levels of argument branches that join again, then a long straight run: 2^15 paths,
/// each some 4,000 instructions long, for every syscall of every ABI. Following them all
/// took minutes.
fn crafted_filter() -> Vec<u8> {
    let mut p = vec![
        (0x20, 0, 0, 4),           // ld arch
        (0x15, 1, 0, 0xc000_003e), // x86_64?
        (0x06, 0, 0, 0),           // kill
    ];
    for level in 0..15u32 {
        p.push((0x20, 0, 0, 16 + 8 * (level % 6))); // ld an argument
        p.push((0x15, 1, 0, level)); // both branches continue below
    }
    while p.len() < 4094 {
        p.push((0x20, 0, 0, 0));
    }
    p.push((0x06, 0, 0, 0x7fff_0000)); // allow
    bpf(&p)
}

/// D1: a crafted filter (which a sandbox can install with prctl) no longer stalls
/// `kakoi audit` (and so `audit --pid`); the report says it was too complex to follow.
#[test]
fn d1_a_crafted_filter_does_not_stall_the_auditor() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("crafted.bpf");
    std::fs::write(&f, crafted_filter()).unwrap();
    let mut c = kakoi();
    c.args(["audit", "--format", "json"]).arg(&f);
    let o = finishes(c, LIMIT);
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let ids: Vec<&str> = report["reports"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"SCMP012"), "{ids:?}");
    // The same program cannot be imported as a policy, and says why at once.
    let mut c = kakoi();
    c.arg("import").arg(&f);
    let o = finishes(c, LIMIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("too complex"), "{}", stderr(&o));
}

/// D2: a diamond of `use` files (each of 24 levels uses both files of the next) resolves
/// each file once: 48 applications, not 2^24.
#[test]
fn d2_a_diamond_of_uses_resolves_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = 24;
    for i in 0..n {
        let next = if i + 1 < n {
            format!("use \"./d{0}.kakoi\"\nuse \"./e{0}.kakoi\"\n", i + 1)
        } else {
            "resources {\n    pids 77\n}\n".into()
        };
        for p in ["d", "e"] {
            std::fs::write(
                dir.path().join(format!("{p}{i}.kakoi")),
                format!("kakoi 1\n{next}"),
            )
            .unwrap();
        }
    }
    let mut c = kakoi();
    c.args(["compile", "--emit", "policy"])
        .arg(dir.path().join("d0.kakoi"));
    let o = finishes(c, LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["resources"]["pids"], 77);
    // 5,000 uses of the same policy: applied once.
    let many = dir.path().join("many.kakoi");
    std::fs::write(
        &many,
        format!("kakoi 1\n{}", "use \"default\"\n".repeat(5000)),
    )
    .unwrap();
    let mut c = kakoi();
    c.arg("check").arg(&many);
    let o = finishes(c, LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// D3: a condition of 20,000 comparisons is refused by the checker (a program holds at
/// most 4,096 instructions) instead of compiling for minutes; one just under the limit
/// compiles or is refused by the program's length, at once.
#[test]
fn d3_huge_conditions_are_refused_before_compilation() {
    let dir = tempfile::tempdir().unwrap();
    let cond = |n: usize| {
        (0..n)
            .map(|i| format!("fd == {i}"))
            .collect::<Vec<_>>()
            .join(" || ")
    };
    let write = |name: &str, n: usize| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "kakoi 1\nseccomp {{\n    default errno(EPERM)\n    arches [x86_64]\n    allow write if {}\n    allow @container-default\n}}\n",
                cond(n)
            ),
        )
        .unwrap();
        p
    };
    let huge = write("huge.kakoi", 20_000);
    for cmd in ["check", "compile"] {
        let mut c = kakoi();
        c.arg(cmd).arg(&huge);
        if cmd == "compile" {
            c.args(["--emit", "policy"]);
        }
        let o = finishes(c, LIMIT);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}", short(&stderr(&o)));
        assert!(
            stderr(&o).contains("E0313"),
            "{cmd}: {}",
            short(&stderr(&o))
        );
    }
    let big = write("big.kakoi", 4000);
    let mut c = kakoi();
    c.args(["compile", "--emit", "seccomp-x86_64"]).arg(&big);
    let o = finishes(c, LIMIT);
    assert!(
        stderr(&o).contains("more than the kernel's 4096"),
        "{}",
        short(&stderr(&o))
    );
}

/// D4: a FIFO or a device as an input, an `extends` target or a bundle file is refused at
/// once instead of blocking forever or reading gigabytes.
#[test]
fn d4_non_regular_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let ext = dir.path().join("ext.kakoi");
    std::fs::write(&ext, "kakoi 1\nextends \"./fifo\"\n").unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["check".into(), fifo.display().to_string()],
            2,
            "a FIFO",
        ),
        (vec!["check".into(), ext.display().to_string()], 1, "a FIFO"),
        (
            vec!["audit".into(), fifo.display().to_string()],
            2,
            "a FIFO",
        ),
        (
            vec!["audit".into(), "/dev/zero".into()],
            2,
            "a character device",
        ),
        (
            vec!["check".into(), "/dev/zero".into()],
            2,
            "a character device",
        ),
        (
            vec!["import".into(), "/dev/zero".into()],
            2,
            "a character device",
        ),
        (
            vec!["disasm".into(), "/dev/zero".into()],
            2,
            "a character device",
        ),
        (
            vec!["explain".into(), "/dev/zero".into(), "read".into()],
            2,
            "a character device",
        ),
    ];
    for (args, code, what) in cases {
        let mut c = kakoi();
        c.args(&args);
        let o = finishes(c, LIMIT);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
    }
    // A bundle whose policy.json is a FIFO, and one whose filter is /dev/zero.
    let bundle = dir.path().join("b");
    let o = kakoi()
        .args(["compile", "default", "-o"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for (file, target) in [
        ("policy.json", fifo.as_path()),
        ("seccomp.x86_64.bpf", Path::new("/dev/zero")),
    ] {
        let copy = dir.path().join(format!("copy-{file}"));
        copy_dir(&bundle, &copy);
        std::fs::remove_file(copy.join(file)).unwrap();
        std::os::unix::fs::symlink(target, copy.join(file)).unwrap();
        for args in [vec!["audit"], vec!["run", "--dry-run", "--bundle"]] {
            let mut c = kakoi();
            c.args(&args).arg(&copy);
            let o = finishes(c, LIMIT);
            assert_ne!(o.status.code(), Some(0), "{args:?} {file}: {}", stdout(&o));
            assert!(
                stderr(&o).contains("not a regular file"),
                "{args:?} {file}: {}",
                stderr(&o)
            );
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Recompute a bundle manifest's entry for `name` after its bytes changed, as an attacker
/// who can write the bundle would.
fn rehash(bundle: &Path, name: &str) {
    use sha2::Digest;
    let bytes = std::fs::read(bundle.join(name)).unwrap();
    let m = bundle.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    for a in v["artifacts"].as_array_mut().unwrap() {
        if a["name"] == name {
            a["sha256"] = format!("{:x}", sha2::Sha256::digest(&bytes)).into();
            a["bytes"] = bytes.len().into();
        }
    }
    std::fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// L9: a signed bundle is refused once anything in it changes, even with the manifest's
/// hashes recomputed; an unsigned one is refused under `--verify-key`; and a filter that
/// contradicts its own `policy.json` (an allow-all program swapped in) is refused by the
/// launcher and by `kakoi audit`, signed or not.
#[test]
fn l9_signed_bundles_and_contradicting_filters() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("ci.key");
    let o = kakoi().arg("keygen").arg("-o").arg(&key).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let public = d.path().join("ci.key.pub");
    let b = d.path().join("b");
    let o = kakoi()
        .args(["compile", "default", "--sign"])
        .arg(&key)
        .arg("-o")
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let dry = |bundle: &Path, key: Option<&Path>| {
        let mut c = kakoi();
        c.args(["run", "--dry-run", "--bundle"]).arg(bundle);
        if let Some(k) = key {
            c.arg("--verify-key").arg(k);
        }
        c.arg("--").arg("/bin/true");
        c.output().unwrap()
    };
    let o = dry(&b, Some(&public));
    assert!(o.status.success(), "{}", stderr(&o));

    // policy.json gains CAP_SYS_ADMIN; the hashes are recomputed.
    let pj = b.join("policy.json");
    let mut p: serde_json::Value = serde_json::from_slice(&std::fs::read(&pj).unwrap()).unwrap();
    let caps = &mut p["capabilities"];
    for set in ["bounding", "permitted", "effective"] {
        if let Some(v) = caps[set].as_array_mut() {
            v.push("SYS_ADMIN".into());
        }
    }
    std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
    rehash(&b, "policy.json");
    let o = dry(&b, Some(&public));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));

    // An unsigned bundle under --verify-key.
    std::fs::remove_file(b.join("manifest.json.minisig")).unwrap();
    let o = dry(&b, Some(&public));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not signed"), "{}", stderr(&o));

    // An allow-all filter in a fresh bundle, hashes recomputed: no key needed to refuse it.
    let c = d.path().join("c");
    let o = kakoi()
        .args(["compile", "default", "-o"])
        .arg(&c)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(
        c.join("seccomp.x86_64.bpf"),
        bpf(&[(0x06, 0, 0, 0x7fff_0000)]),
    )
    .unwrap();
    rehash(&c, "seccomp.x86_64.bpf");
    let o = dry(&c, None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("contradicts policy.json"),
        "{}",
        stderr(&o)
    );
    // The auditor reports it as a critical finding (SCMP013), at the filter's file, and
    // fails a `--fail-on critical` gate.
    let o = kakoi()
        .args(["audit", "--format", "json", "--fail-on", "critical"])
        .arg(&c)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let f = v["reports"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "SCMP013")
        .unwrap_or_else(|| panic!("{}", stdout(&o)));
    assert_eq!(f["severity"], "critical");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("contradicts policy.json"),
        "{f}"
    );
    assert!(
        f["location"]["file"]
            .as_str()
            .unwrap()
            .ends_with("seccomp.x86_64.bpf"),
        "{f}"
    );
}
