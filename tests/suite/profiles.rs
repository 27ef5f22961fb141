use kakoi::bundle::Validate;
use kakoi::seccomp::{self, Backend, Host};
use kakoi::{bpf, bundle, cli, profiles};

use crate::util;

/// Every shipped policy checks without errors or warnings.
#[test]
fn shipped_policies_check_clean() {
    for name in profiles::names() {
        let l = cli::load(name).unwrap_or_else(|_| panic!("{name} loads"));
        let text = policy_lang::diagnostics::render(&l.map, &l.diagnostics, false);
        assert!(l.diagnostics.is_empty(), "{name}:\n{text}");
        assert!(l.policy.is_some());
    }
}

/// The policies of `bench/` (and the QEMU harness's) check clean too: a benchmark of a
/// policy with warnings would measure something else than it says.
#[test]
fn bench_policies_check_clean() {
    for dir in ["bench", "tests/vm"] {
        for e in std::fs::read_dir(util::root().join(dir)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "kakoi") {
                let o = util::run(&["check", "--deny-warnings", p.to_str().unwrap()]);
                assert!(o.status.success(), "{}: {}", p.display(), util::stderr(&o));
            }
        }
    }
}

const LIBSECCOMP_2_5_UNKNOWN: &[&str] = &[
    "cachestat",
    "fchmodat2",
    "futex_requeue",
    "futex_wait",
    "futex_wake",
    "getxattrat",
    "listmount",
    "listxattrat",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lsm_set_self_attr",
    "map_shadow_stack",
    "mseal",
    "removexattrat",
    "setxattrat",
    "statmount",
    "uretprobe",
];

/// The compiled seccomp program of every shipped policy decides exactly what the policy
/// says, on every syscall number of x86_64 (and its compat ABIs), on foreign arches and
/// on boundary argument values.
#[test]
fn shipped_seccomp_programs_equal_the_policy() {
    for name in profiles::names() {
        let l = cli::load(name).unwrap();
        let p = l.policy.unwrap();
        for host in Host::for_policy(&p.seccomp) {
            let prog = seccomp::libseccomp::compile(&p.seccomp, host).unwrap();
            let insns = bpf::decode(&prog.bpf).unwrap();
            bpf::validate(&insns).unwrap_or_else(|e| panic!("{name}: {e}"));
            // The system libseccomp (2.5) predates these syscalls of Linux 6.12; the
            // backend says so instead of guessing their numbers.
            for s in &prog.skipped {
                let name = s.split_once(':').unwrap().1;
                assert!(
                    LIBSECCOMP_2_5_UNKNOWN.contains(&name),
                    "{name}: skipped unexpectedly"
                );
            }
            match seccomp::verify::verify(
                &p.seccomp,
                &insns,
                host,
                &prog.skipped,
                prog.unknown_as_default,
            ) {
                Ok(cov) => assert!(cov.cases > 400, "{name}: only {} cases", cov.cases),
                Err(m) => panic!(
                    "{name} on {}: {} mismatches, first:\n{}",
                    host.name(),
                    m.len(),
                    m.iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

/// Compiling twice gives byte-identical artifacts.
#[test]
fn bundles_are_deterministic() {
    for name in profiles::names() {
        let a = cli::load(name).unwrap();
        let b = cli::load(name).unwrap();
        let x = bundle::build(
            a.policy.as_ref().unwrap(),
            &a.map,
            Backend::Kakoi,
            Validate::Never,
        )
        .unwrap();
        let y = bundle::build(
            b.policy.as_ref().unwrap(),
            &b.map,
            Backend::Kakoi,
            Validate::Never,
        )
        .unwrap();
        assert_eq!(x.len(), y.len());
        for (x, y) in x.iter().zip(&y) {
            assert_eq!(x.name, y.name);
            assert!(
                x.bytes == y.bytes,
                "{name}: {} differs between runs",
                x.name
            );
        }
    }
}

/// What the default policy means, spot-checked against Docker's profile semantics.
#[test]
fn default_policy_decides_like_docker() {
    use policy_lang::catalogue::{syscall, Arch};
    use policy_lang::ir::Action;
    let p = cli::load("default").unwrap().policy.unwrap();
    let x = Arch::X86_64.audit_arch();
    let nr = |n: &str| syscall(n).unwrap().nr(Arch::X86_64).unwrap();
    let d = |n: &str, args: [u64; 6]| p.seccomp.decide(x, nr(n), &args).action;
    assert_eq!(d("read", [0; 6]), Action::Allow);
    assert_eq!(d("mount", [0; 6]), Action::Errno(1));
    assert_eq!(d("clone3", [0; 6]), Action::Errno(38));
    assert_eq!(d("socket", [2, 1, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(d("socket", [38, 1, 0, 0, 0, 0]), Action::Errno(1)); // AF_ALG
    assert_eq!(d("socket", [40, 1, 0, 0, 0, 0]), Action::Errno(1)); // AF_VSOCK
    assert_eq!(d("clone", [0x11, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(d("clone", [0x1000_0000, 0, 0, 0, 0, 0]), Action::Errno(1)); // CLONE_NEWUSER
    assert_eq!(
        d("personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        d("personality", [0x0040_0000, 0, 0, 0, 0, 0]),
        Action::Errno(1)
    ); // READ_IMPLIES_EXEC
       // x32 and i386 entry points are a foreign ABI for this policy.
    assert_eq!(
        p.seccomp.decide(x, 0x4000_0000, &[0; 6]).action,
        Action::KillProcess
    );
    assert_eq!(
        p.seccomp.decide(Arch::X86.audit_arch(), 3, &[0; 6]).action,
        Action::KillProcess
    );
    assert_eq!(p.capabilities.bounding.len(), 14);
}

/// The Docker-derived allow-list matches the real profile in ../shared/data.
#[test]
fn container_default_set_matches_dockers_profile() {
    let Some(path) = util::shared_data("docker-default-seccomp.json") else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let first = &v["syscalls"][0];
    assert_eq!(first["action"], "SCMP_ACT_ALLOW");
    let docker: std::collections::BTreeSet<&str> = first["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let ours = policy_lang::catalogue::expand_group("container-default").unwrap();
    // Every name of ours is Docker's; Docker's extra names are unknown to Linux 6.12's
    // x86/arm64 tables (other arches' calls).
    assert!(ours.iter().all(|n| docker.contains(n)));
    for n in docker.difference(&ours) {
        assert!(
            policy_lang::catalogue::syscall(n).is_none(),
            "{n} is known but missing"
        );
    }
}
