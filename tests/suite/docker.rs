//! Docker's real default profile (../shared/data): imported into kakoi's IR and compiled
//! by kakoi's generator, it decides every syscall exactly as libseccomp's compilation of
//! the original JSON, done the way moby and runc do it.

use kakoi::seccomp::libseccomp::Layout;
use kakoi::seccomp::{self, json, Backend, Host};
use kakoi::{bpf, cli};
use libseccomp::{ScmpArch, ScmpSyscall};
use policy_lang::catalogue::{self, Arch};

use crate::util;

fn docker_profile() -> Option<String> {
    let path = util::shared_data("docker-default-seccomp.json")?;
    Some(std::fs::read_to_string(path).unwrap())
}

#[test]
fn imported_docker_profile_decides_like_runc() {
    let Some(text) = docker_profile() else { return };
    let imported = json::import(
        "docker-default-seccomp.json",
        &text,
        &json::Target::docker_default(),
    )
    .unwrap();
    let s = &imported.seccomp;
    assert_eq!(s.arches, vec![Arch::X86_64, Arch::X86, Arch::X32]);
    let ours = seccomp::compile_checked(s, Host::X86_64, Backend::Kakoi).unwrap();
    let ours = bpf::decode(&ours.bpf).unwrap();
    let theirs = seccomp::libseccomp::compile_docker_json(
        &text,
        &json::Target::docker_default(),
        Layout::Priority,
    )
    .unwrap();
    let theirs = bpf::decode(&theirs).unwrap();
    bpf::validate(&theirs).unwrap();
    // Values Docker's rules compare against, plus zero.
    let mut values = vec![
        0u64,
        1,
        8,
        37,
        38,
        39,
        40,
        41,
        0x20000,
        0x20008,
        0xffff_ffff,
        0x7e02_0000,
        0x1000_0000,
        0x11,
    ];
    values.sort();
    let mut differ = Vec::new();
    let mut cases = 0;
    for arch in [Arch::X86_64, Arch::X32, Arch::X86] {
        let before = cases;
        for d in catalogue::syscalls() {
            let Some(nr) = d.nr(arch) else { continue };
            let scmp = match arch {
                Arch::X86_64 => ScmpArch::X8664,
                Arch::X86 => ScmpArch::X86,
                Arch::X32 => ScmpArch::X32,
                Arch::Aarch64 => ScmpArch::Aarch64,
            };
            // libseccomp 2.5 cannot name it on this ABI (or knows another number).
            let named =
                ScmpSyscall::from_name_by_arch(d.name, scmp).map(|s| s.as_raw_syscall() as u32);
            if named.ok() != Some(nr) {
                continue;
            }
            for &v in &values {
                let data = bpf::Data {
                    nr,
                    arch: arch.audit_arch(),
                    args: [v, v, 0, 0, 0, 0],
                    ..Default::default()
                };
                cases += 1;
                let a = bpf::ret_action(bpf::run(&ours, &data).ret);
                let b = bpf::ret_action(bpf::run(&theirs, &data).ret);
                if a != b {
                    differ.push(format!(
                        "{} {} arg {v:#x}: kakoi {} runc {}",
                        arch.name(),
                        d.name,
                        a.to_source(),
                        b.to_source()
                    ));
                }
            }
        }
        assert!(
            cases - before > 300 * values.len(),
            "{}: only {} cases",
            arch.name(),
            cases - before
        );
    }
    // On i386, libseccomp turns argument rules on the direct socket call into rules on
    // `socketcall` too; the direct `socket` call is what both must agree on elsewhere.
    differ.retain(|d| !d.starts_with("x86 socket"));
    assert!(
        differ.is_empty(),
        "{} of {cases} cases differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    assert!(cases > 5000);
}

/// The shipped default policy and Docker's profile allow the same x86_64 syscalls.
#[test]
fn shipped_default_matches_dockers_profile_on_x86_64() {
    let Some(text) = docker_profile() else { return };
    let imported = json::import("docker", &text, &json::Target::docker_default()).unwrap();
    let ours = cli::load("default").unwrap().policy.unwrap();
    let x = Arch::X86_64;
    let mut differ = Vec::new();
    for d in catalogue::syscalls() {
        let Some(nr) = d.nr(x) else { continue };
        for args in [
            [0u64; 6],
            [38, 5, 0, 0, 0, 0],
            [0x1000_0000, 0, 0, 0, 0, 0],
            [0xffff_ffff, 0, 0, 0, 0, 0],
        ] {
            let a = ours.seccomp.decide(x.audit_arch(), nr, &args).action;
            let b = imported.seccomp.decide(x.audit_arch(), nr, &args).action;
            if a != b {
                differ.push(format!(
                    "{} {args:x?}: kakoi {} docker {}",
                    d.name,
                    a.to_source(),
                    b.to_source()
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn oci_export_round_trips() {
    for name in ["default", "strict", "fixtures/seccomp/actions.kakoi"] {
        let p = cli::load(name).unwrap().policy.unwrap();
        for host in Host::for_policy(&p.seccomp) {
            let oci = json::export_oci(&p.seccomp, host).unwrap();
            let back = json::import(
                "export",
                &oci.to_string(),
                &json::Target {
                    host,
                    ..json::Target::docker_default()
                },
            )
            .unwrap();
            let a = seccomp::compile_checked(&p.seccomp, host, Backend::Kakoi).unwrap();
            // The round trip must mean the same: compare both programs on every syscall.
            let b = seccomp::compile_checked(&back.seccomp, host, Backend::Kakoi).unwrap();
            let (a, b) = (bpf::decode(&a.bpf).unwrap(), bpf::decode(&b.bpf).unwrap());
            for &arch in host.abis() {
                for d in catalogue::syscalls() {
                    let Some(nr) = d.nr(arch) else { continue };
                    for v in [0u64, 38, 40, 0x1000_0000, 0xffff_ffff] {
                        let data = bpf::Data {
                            nr,
                            arch: arch.audit_arch(),
                            args: [v; 6],
                            ..Default::default()
                        };
                        assert_eq!(
                            bpf::run(&a, &data).ret,
                            bpf::run(&b, &data).ret,
                            "{name} {} {} {v:#x}",
                            arch.name(),
                            d.name
                        );
                    }
                }
            }
        }
    }
}

/// A profile libseccomp refuses part of (a conditional and an unconditional `socket` rule
/// on an x86_64 + i386 filter): runc does not start the container, and `kakoi import`
/// says so in a note.
#[test]
fn import_notes_a_profile_runc_refuses() {
    let o = crate::util::kakoi()
        .args(["import", "fixtures/seccomp/runc-refuses.json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let text = crate::util::stdout(&o);
    assert!(text.contains("# note: runc refuses this profile"), "{text}");
}

/// `kakoi compile` says which syscalls a libseccomp-based runtime leaves out of the
/// bundle's OCI JSON (libseccomp 2.5 does not know Linux 6.8+'s listmount, statmount,
/// mseal, uretprobe…; on x32 not map_shadow_stack), and `kakoi import` says a profile
/// decides as runc's program does.
#[test]
fn exports_name_what_runc_drops_and_imports_are_checked_against_runc() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x32.kakoi");
    std::fs::write(
        &p,
        "extends \"default\"\nseccomp {\n    arches [x86_64, x32]\n}\n",
    )
    .unwrap();
    let o = crate::util::kakoi()
        .arg("compile")
        .arg(&p)
        .arg("-o")
        .arg(dir.path().join("b"))
        .output()
        .unwrap();
    let err = crate::util::stderr(&o);
    assert!(o.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("leave out"))
        .unwrap_or_else(|| panic!("{err}"));
    for n in [
        "listmount",
        "statmount",
        "mseal",
        "uretprobe",
        "map_shadow_stack on x32",
    ] {
        assert!(line.contains(n), "{n}: {line}");
    }
    let manifest = std::fs::read_to_string(dir.path().join("b/manifest.json")).unwrap();
    assert!(manifest.contains("leave out"), "{manifest}");
    let Some(docker) = crate::util::shared_data("docker-default-seccomp.json") else {
        return;
    };
    let o = crate::util::kakoi()
        .args(["import", "--arches", "x86_64,x32"])
        .arg(docker)
        .output()
        .unwrap();
    let text = crate::util::stdout(&o);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    assert!(
        text.contains("# note: decides as runc's program does ("),
        "{text}"
    );
}
