//! `kakoi audit` and `kakoi diff`: fixtures in every input format with the exact findings
//! expected (snapshots), Docker's real profile, hand-built raw BPF programs with the
//! classic mistakes, exit codes, baselines, SARIF (checked by Microsoft's SARIF
//! validator when installed), a live process, and semantic diffs.

use std::path::Path;

use kakoi::bpf::{self, Insn};
use serde_json::{json, Value};

use crate::util::{kakoi, root, stderr, stdout};

fn audit_json(args: &[&str]) -> (Value, i32) {
    let o = kakoi()
        .args(["audit", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let code = o.status.code().unwrap();
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    (v, code)
}

/// The part of a report a snapshot pins: score, band and each finding's id, severity,
/// message and location.
fn summary(report: &Value) -> Value {
    json!({
        "input": report["input"],
        "format": report["format"],
        "score": report["score"],
        "band": report["band"],
        "findings": report["findings"].as_array().unwrap().iter().map(|f| json!({
            "id": f["id"], "severity": f["severity"], "message": f["message"], "location": f["location"],
        })).collect::<Vec<_>>(),
    })
}

fn ids(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn fixtures_in_every_format_give_the_expected_findings() {
    let dir = root().join("fixtures/audit");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 6);
    for n in names {
        let (v, _) = audit_json(&[&format!("fixtures/audit/{n}")]);
        insta::with_settings!({ snapshot_path => "snapshots/audit", prepend_module_to_snapshot => false }, {
            insta::assert_json_snapshot!(n.clone(), summary(&v["reports"][0]));
        });
        let weak = n.starts_with("weak");
        let score = v["reports"][0]["score"].as_f64().unwrap();
        assert!(
            if weak { score >= 5.0 } else { score < 1.0 },
            "{n}: {score}"
        );
    }
    // Policies too: the shipped ones are audited without errors.
    for p in ["default", "strict", "web-server", "python-batch"] {
        let (v, _) = audit_json(&[p]);
        assert!(
            !ids(&v["reports"][0]).contains(&"SCMP001".to_string()),
            "{p}"
        );
    }
}

#[test]
fn dockers_default_profile_has_no_critical_findings() {
    let path = root().join("../shared/data/docker-default-seccomp.json");
    if !path.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "{} is missing under CI",
            path.display()
        );
        eprintln!("skipped: {} not found", path.display());
        return;
    }
    let (v, code) = audit_json(&[path.to_str().unwrap(), "--fail-on", "critical"]);
    assert_eq!(code, 0, "no critical finding");
    let r = &v["reports"][0];
    let found = ids(r);
    // What is true of Docker's profile: i386 and x32 are allowed, and i386 socketcall
    // bypasses the AF_ALG/AF_VSOCK rule.
    assert!(
        found.contains(&"SCMP004".into()) && found.contains(&"SCMP010".into()),
        "{found:?}"
    );
    for absent in [
        "SCMP001", "SCMP002", "SCMP003", "SCMP006", "SCMP007", "SCMP009",
    ] {
        assert!(!found.contains(&absent.to_string()), "{absent}: {found:?}");
    }
    assert!(r["score"].as_f64().unwrap() < 5.0);
}

const LD_NR: Insn = Insn {
    code: bpf::LD | bpf::W | bpf::ABS,
    jt: 0,
    jf: 0,
    k: 0,
};
const LD_ARCH: Insn = Insn {
    code: bpf::LD | bpf::W | bpf::ABS,
    jt: 0,
    jf: 0,
    k: 4,
};

fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
    Insn {
        code: bpf::JMP | bpf::JEQ,
        jt,
        jf,
        k,
    }
}
fn jge(k: u32, jt: u8, jf: u8) -> Insn {
    Insn {
        code: bpf::JMP | bpf::JGE,
        jt,
        jf,
        k,
    }
}
fn ret(k: u32) -> Insn {
    Insn {
        code: bpf::RET,
        jt: 0,
        jf: 0,
        k,
    }
}

fn audit_bpf(dir: &Path, name: &str, prog: &[Insn]) -> Vec<String> {
    let p = dir.join(format!("{name}.bpf"));
    std::fs::write(&p, bpf::encode(prog)).unwrap();
    let (v, _) = audit_json(&[p.to_str().unwrap()]);
    ids(&v["reports"][0])
}

#[test]
fn raw_bpf_mistakes_are_caught() {
    let d = tempfile::tempdir().unwrap();
    let ptrace = 101;
    let eperm = bpf::RET_ERRNO | 1;
    // A deny-list that never looks at the architecture.
    let no_arch = audit_bpf(
        d.path(),
        "no-arch",
        &[LD_NR, jeq(ptrace, 0, 1), ret(eperm), ret(bpf::RET_ALLOW)],
    );
    assert!(
        no_arch.contains(&"SCMP002".into()) && no_arch.contains(&"SCMP001".into()),
        "{no_arch:?}"
    );
    // Checks the arch, but x32 numbers slip past the ptrace denial.
    let x86_64 = 0xc000_003e;
    let no_x32 = audit_bpf(
        d.path(),
        "no-x32-guard",
        &[
            LD_ARCH,
            jeq(x86_64, 1, 0),
            ret(bpf::RET_KILL_PROCESS),
            LD_NR,
            jeq(ptrace, 0, 1),
            ret(eperm),
            ret(bpf::RET_ALLOW),
        ],
    );
    assert!(
        no_x32.contains(&"SCMP003".into()) && !no_x32.contains(&"SCMP002".into()),
        "{no_x32:?}"
    );
    // An allow-list with every guard, but a default that only logs.
    let read = 0;
    let permissive = audit_bpf(
        d.path(),
        "log-default",
        &[
            LD_ARCH,
            jeq(x86_64, 1, 0),
            ret(bpf::RET_KILL_PROCESS),
            LD_NR,
            jge(0x4000_0000, 0, 1),
            ret(bpf::RET_KILL_PROCESS),
            jeq(read, 0, 1),
            ret(bpf::RET_ALLOW),
            ret(bpf::RET_LOG),
        ],
    );
    assert!(permissive.contains(&"SCMP001".into()), "{permissive:?}");
    assert!(
        !permissive.contains(&"SCMP002".into()) && !permissive.contains(&"SCMP003".into()),
        "{permissive:?}"
    );
    // kakoi's own compilation of `strict` has none of these.
    let b = d.path().join("strict.bundle");
    assert!(kakoi()
        .arg("compile")
        .arg("strict")
        .arg("-o")
        .arg(&b)
        .output()
        .unwrap()
        .status
        .success());
    let (v, _) = audit_json(&[b.join("seccomp.x86_64.bpf").to_str().unwrap()]);
    let found = ids(&v["reports"][0]);
    for absent in ["SCMP001", "SCMP002", "SCMP003", "SCMP006", "SCMP007"] {
        assert!(!found.contains(&absent.to_string()), "{absent}: {found:?}");
    }
    // A bundle is audited as the program it will load, with the policy's other layers.
    let (v, _) = audit_json(&[b.to_str().unwrap()]);
    assert_eq!(v["reports"][0]["format"], "bundle");
}

#[test]
fn exit_codes_thresholds_and_baselines() {
    let weak = "fixtures/audit/weak-config.json";
    let o = kakoi().args(["audit", weak]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "findings alone do not fail");
    let o = kakoi()
        .args(["audit", "--fail-on", "high", weak])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = kakoi()
        .args(["audit", "--threshold", "5.0", weak])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = kakoi()
        .args([
            "audit",
            "--threshold",
            "5.0",
            "fixtures/audit/strong-config.json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let o = kakoi()
        .args(["audit", "/no/such/file.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
    // Accept today's findings; the same audit then passes the gate.
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("baseline.json");
    let o = kakoi()
        .args(["audit", weak, "--write-baseline"])
        .arg(&base)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (v, code) = audit_json(&[
        weak,
        "--fail-on",
        "high",
        "--baseline",
        base.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["reports"][0]["findings"], json!([]));
    assert!(v["reports"][0]["baselined"].as_u64().unwrap() >= 10);
}

/// Microsoft's SARIF multitool (`scripts/get-sarif-multitool.sh` installs it under
/// target/tools): validates against the SARIF 2.1.0 schema.
fn sarif_multitool() -> Option<std::path::PathBuf> {
    let p = root().join("target/tools/sarif-multitool/Sarif.Multitool");
    p.is_file().then_some(p)
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0() {
    let o = kakoi()
        .args([
            "audit",
            "--format",
            "sarif",
            "fixtures/audit/weak-config.json",
            "fixtures/audit/weak.apparmor",
            "fixtures/audit/weak-seccomp.json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), kakoi::audit::rules::RULES.len());
    let results = run["results"].as_array().unwrap();
    assert!(results.len() > 20);
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
    }
    // Line numbers for text inputs.
    assert!(results
        .iter()
        .any(|r| r["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64() == Some(4)));
    let Some(tool) = sarif_multitool() else {
        assert!(
            std::env::var("CI").is_err(),
            "the SARIF multitool is missing under CI (scripts/get-sarif-multitool.sh)"
        );
        eprintln!("skipped schema validation: run scripts/get-sarif-multitool.sh");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("kakoi.sarif");
    std::fs::write(&f, stdout(&o)).unwrap();
    let out = d.path().join("validation.sarif");
    let r = std::process::Command::new(tool)
        .arg("validate")
        .arg(&f)
        .arg("--output")
        .arg(&out)
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&r.stdout);
    assert!(log.contains("Analysis completed successfully"), "{log}");
    assert!(!log.contains(": error "), "schema or rule errors:\n{log}");
}

#[test]
fn a_live_process_is_audited_through_ptrace() {
    if !std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        eprintln!("skipped: reading another process's filters needs root");
        return;
    }
    let mut child = kakoi()
        .args(["run", "--", "/bin/sleep", "30"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let launcher = child.id();
    let mut payload = None;
    for _ in 0..200 {
        // The sandbox's init and the payload.
        let pids = crate::launch::launch_procs(launcher);
        payload = pids
            .lines()
            .filter_map(|l| l.parse::<i32>().ok())
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            });
        if payload.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = payload.expect("the payload started");
    let (v, _) = audit_json(&["--pid", &pid.to_string()]);
    // Its filter, read back and decompiled, argument checks included.
    let imported = kakoi()
        .args(["import", "--pid", &pid.to_string()])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let r = &v["reports"][0];
    assert_eq!(r["format"], "process");
    let found = ids(r);
    // The filter read back is kakoi's default: no permissive default, arch and x32 checked.
    for absent in [
        "SCMP001", "SCMP002", "SCMP003", "SCMP004", "OCI001", "OCI002",
    ] {
        assert!(!found.contains(&absent.to_string()), "{absent}: {found:?}");
    }
    assert!(
        found.contains(&"CAP003".into()),
        "NET_RAW is held: {found:?}"
    );
    assert!(imported.status.success(), "{}", stderr(&imported));
    let text = stdout(&imported);
    assert!(
        text.contains("allow clone if clone_flags & 0x7e020000 == 0"),
        "{text}"
    );
    // The default's pids and memory limits are read from the payload's cgroups.
    assert!(!found.contains(&"RES001".to_string()), "{found:?}");
    // This test process has neither.
    let (v, _) = audit_json(&["--pid", &std::process::id().to_string()]);
    let r = &v["reports"][0];
    let res: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "RES001")
        .collect();
    assert_eq!(res.len(), 1, "{r}");
    assert!(res[0]["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("/cgroup"));
}

#[test]
fn diff_gates_widening_changes() {
    let docker = root().join("../shared/data/docker-default-seccomp.json");
    if docker.exists() {
        // kakoi's default equals Docker's on x86_64 but for netlink uevent sockets
        // (protocol 15) and drops i386 and x32: narrower.
        let o = kakoi()
            .arg("diff")
            .arg(&docker)
            .arg("default")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        let out = stdout(&o);
        let x86_64: Vec<&str> = out.lines().filter(|l| l.contains("[x86_64]")).collect();
        assert_eq!(
            x86_64,
            ["- seccomp: [x86_64] socket: conditional -> no longer allows arg2=0xf"],
            "x86_64 decisions are the same but for socket protocol 15:\n{out}"
        );
        assert!(out.contains("[x86]") && out.contains("NEW allows nothing that OLD denied"));
        let o = kakoi()
            .arg("diff")
            .arg("default")
            .arg(&docker)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
    }
    let o = kakoi()
        .args(["diff", "default", "default"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("no semantic difference"));
    let o = kakoi()
        .args(["diff", "--format", "json", "strict", "default"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["widened"], true);
    // Argument-level: a wider socket rule is found as values newly allowed.
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.kakoi");
    let b = d.path().join("b.kakoi");
    std::fs::write(
        &a,
        "seccomp {\n    default errno(EPERM)\n    allow socket if family == AF_UNIX\n}\n",
    )
    .unwrap();
    std::fs::write(&b, "seccomp {\n    default errno(EPERM)\n    allow socket if family in {AF_UNIX, AF_INET}\n}\n").unwrap();
    let o = kakoi().arg("diff").arg(&a).arg(&b).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("socket") && stdout(&o).contains("arg0=0x2"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn import_gives_a_policy_with_the_same_decisions() {
    let d = tempfile::tempdir().unwrap();
    // JSON: rules carried over, checked, then equal by `kakoi diff`.
    let out = d.path().join("strong.kakoi");
    let o = kakoi()
        .args(["import", "fixtures/audit/strong-seccomp.json", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kakoi()
        .args(["diff", "fixtures/audit/strong-seccomp.json"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("no semantic difference"),
        "{}",
        stdout(&o)
    );
    // Raw BPF without argument checks: decompiled from its decision tables.
    let x86_64 = 0xc000_003e;
    let prog = [
        LD_ARCH,
        jeq(x86_64, 1, 0),
        ret(bpf::RET_KILL_PROCESS),
        LD_NR,
        jge(0x4000_0000, 0, 1),
        ret(bpf::RET_KILL_PROCESS),
        jeq(0, 3, 0),
        jeq(1, 2, 0),
        jeq(60, 1, 0),
        ret(bpf::RET_ERRNO | 1),
        ret(bpf::RET_ALLOW),
    ];
    let f = d.path().join("small.bpf");
    std::fs::write(&f, bpf::encode(&prog)).unwrap();
    let o = kakoi().arg("import").arg(&f).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("allow [exit, read, write]") && text.contains("default errno(EPERM)"),
        "{text}"
    );
    // Docker's profile imports whole: its argument rules on `socket` hold on x86 for the
    // direct call only, as under runc, and the policy says so (`acknowledge socketcall`,
    // a note); `--arches` imports some ABIs only.
    if let Some(docker) = crate::util::shared_data("docker-default-seccomp.json") {
        let o = kakoi().arg("import").arg(&docker).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("acknowledge socketcall"), "{text}");
        assert!(text.contains("as under runc (`acknowledge socketcall`; audit finding SCMP010)"));
        // Its compiled program decompiles to a policy that says the same.
        let full = d.path().join("docker-full.kakoi");
        std::fs::write(&full, &text).unwrap();
        let b = d.path().join("docker-bundle");
        let o = kakoi()
            .arg("compile")
            .arg(&full)
            .arg("-o")
            .arg(&b)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let o = kakoi()
            .arg("import")
            .arg(b.join("seccomp.x86_64.bpf"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("    acknowledge socketcall\n"),
            "{}",
            stdout(&o)
        );
        let out = d.path().join("docker.kakoi");
        let o = kakoi()
            .args(["import", "--arches", "x86_64,x32"])
            .arg(&docker)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("arches [x86_64, x32]"), "{text}");
        assert!(!text.contains("acknowledge"), "{text}");
    }
    // A policy that names no multiplexer, or another thing, in `acknowledge` is refused.
    let bad = d.path().join("ack.kakoi");
    std::fs::write(&bad, "seccomp {\n    acknowledge [socketcall, mmap]\n}\n").unwrap();
    let o = kakoi().arg("check").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("E0212"), "{}", stderr(&o));
}

/// Compile `policy` with `backend`, import its x86_64 program, and return the policy text
/// (after checking that `kakoi diff` finds no difference either way).
fn decompile(d: &Path, policy: &str, backend: &str) -> String {
    let b = d.join(format!("{}-{backend}", policy.replace('/', "_")));
    let o = kakoi()
        .args(["compile", "--backend", backend, policy, "-o"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bpf = b.join("seccomp.x86_64.bpf");
    let out = b.with_extension("kakoi");
    let o = kakoi()
        .arg("import")
        .arg(&bpf)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{policy} ({backend}): {}", stderr(&o));
    for (old, new) in [(&bpf, &out), (&out, &bpf)] {
        let o = kakoi().arg("diff").arg(old).arg(new).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    }
    std::fs::read_to_string(&out).unwrap()
}

/// The rules of a decompiled policy (the lines with a condition).
fn conditional_rules(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.contains(" if "))
        .collect()
}

/// Raw BPF with argument checks, from both code generators, decompiled by symbolic
/// execution into readable conditions; each result is checked by the importer and again
/// by `kakoi diff`.
#[test]
fn argument_checks_are_decompiled_from_raw_bpf() {
    let d = tempfile::tempdir().unwrap();
    for backend in ["kakoi", "libseccomp"] {
        let text = decompile(d.path(), "default", backend);
        let rules = conditional_rules(&text);
        for want in [
            "allow clone if clone_flags & 0x7e020000 == 0",
            "allow personality if personality in {0, 8, 0x20000, 0x20008, 0xffffffff}",
        ] {
            assert!(
                rules.contains(&want),
                "{backend}: no `{want}` in {rules:#?}"
            );
        }
        // socket without AF_ALG (0x26) and AF_VSOCK (0x28): kakoi writes it as two
        // exclusions, libseccomp's binary tree as ranges.
        let socket: Vec<&&str> = rules
            .iter()
            .filter(|r| r.starts_with("allow socket"))
            .collect();
        assert!(!socket.is_empty(), "{rules:#?}");
    }
    let text = decompile(
        d.path(),
        "fixtures/seccomp/nested-conditions.kakoi",
        "kakoi",
    );
    assert_eq!(
        conditional_rules(&text),
        [
            "allow ioctl if cmd != 0x5412 && fd < 3",
            "allow ioctl if cmd != 0x5412 && fd > 0x64",
            "allow prctl if option == 1 && arg2 <= 0x40",
            "allow prctl if option in {0xf, 0x10, 0x26}",
            "allow socket if family == 0xa && type & 1 != 0",
            "allow socket if family == 0xa && type == 2",
            "allow socket if family == 2 && type & 1 != 0",
            "allow socket if family == 2 && type == 2",
            "errno(EACCES) socket if family == 0x10 && protocol != 0 && protocol != 9",
            "log socket if family == 1",
        ]
    );
    for p in [
        "strict",
        "web-server",
        "python-batch",
        "fixtures/seccomp/wide-arguments.kakoi",
    ] {
        for backend in ["kakoi", "libseccomp"] {
            if p.contains("wide") && backend == "libseccomp" {
                continue; // libseccomp cannot compile it
            }
            decompile(d.path(), p, backend);
        }
    }
}

/// A hostile AppArmor profile whose includes name a device that never ends and a FIFO
/// with no writer: both are skipped (only regular files are read), and the audit finishes.
#[test]
fn apparmor_includes_of_devices_and_fifos_are_skipped() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let p = d.path().join("hostile.apparmor");
    std::fs::write(
        &p,
        format!(
            "include </dev/zero>\ninclude \"{}\"\nprofile hostile {{\n  capability,\n}}\n",
            fifo.display()
        ),
    )
    .unwrap();
    let (r, _) = audit_json(&[p.to_str().unwrap()]);
    assert!(
        ids(&r["reports"][0]).iter().any(|i| i.starts_with("AA")),
        "{r}"
    );
}

/// OCI006, checked with the real runtime: `strict`'s OCI seccomp JSON denies setgroups,
/// which runc calls after loading the profile when `noNewPrivileges` is false. The audit
/// says so for that config and not for the one with no_new_privs; runc starts the latter
/// and fails the former at setgroups.
#[test]
fn oci006_a_filter_that_stops_runc_without_no_new_privs() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("strict");
    let o = kakoi()
        .args(["compile", "strict", "-o"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("OCI006"), "{}", stderr(&o));
    let seccomp: Value =
        serde_json::from_slice(&std::fs::read(b.join("seccomp.x86_64.json")).unwrap()).unwrap();
    // A runc bundle: the host's /usr, read-only, as the whole file system.
    let bundle = dir.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    for d in ["usr", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    for (l, t) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        std::os::unix::fs::symlink(t, rootfs.join(l)).unwrap();
    }
    let config = |nnp: bool| {
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
                "env": ["PATH=/usr/bin:/bin"], "cwd": "/", "noNewPrivileges": nnp,
                "capabilities": {"bounding": ["CAP_SETUID", "CAP_SETGID"], "effective": ["CAP_SETUID", "CAP_SETGID"], "permitted": ["CAP_SETUID", "CAP_SETGID"]},
            },
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "kk",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
            ],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
                "seccomp": seccomp,
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"],
            },
        })
    };
    for nnp in [true, false] {
        let path = bundle.join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config(nnp)).unwrap()).unwrap();
        let (v, _) = audit_json(&[path.to_str().unwrap()]);
        let found = ids(&v["reports"][0]);
        assert_eq!(
            found.contains(&"OCI006".to_string()),
            !nnp,
            "nnp {nnp}: {found:?}"
        );
        // The real runtime, as root (CI runs as root and installs runc).
        let root = nix_root();
        if !root || !runc_installed() {
            continue;
        }
        let id = format!("kakoi-oci006-{}-{nnp}", std::process::id());
        let o = std::process::Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .output()
            .unwrap();
        let _ = std::process::Command::new("runc")
            .args(["delete", "-f", &id])
            .output();
        if nnp {
            assert!(o.status.success(), "runc: {}", stderr(&o));
        } else {
            assert!(!o.status.success());
            assert!(stderr(&o).contains("setgroups"), "runc: {}", stderr(&o));
        }
    }
}

fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root || std::env::var("CI").is_err(),
        "tests run as root under CI"
    );
    root
}

fn runc_installed() -> bool {
    let found = std::path::Path::new("/usr/sbin/runc").exists()
        || std::path::Path::new("/usr/bin/runc").exists();
    assert!(
        found || std::env::var("CI").is_err(),
        "runc must be installed under CI"
    );
    found
}
