//! Seccomp compilation: both backends against the policy's own meaning, on the shipped
//! policies, a corpus of fixtures, and random policies; the size and speed targets of
//! kakoi's generator; and the live kernel.

use kakoi::seccomp::{self, stats, Backend, Host};
use kakoi::{bpf, cli};
use policy_lang::catalogue::{self, Arch, ArgKind};
use policy_lang::ir::{Action, ArgCmp, CmpOp, Cond, ConstExpr, Origin, Rule, Seccomp, SeccompFlag};
use proptest::prelude::*;

use crate::util;

fn corpus() -> Vec<String> {
    util::policy_corpus()
}

/// kakoi's generator compiles every policy of the corpus into a valid program equal to
/// the policy; libseccomp either does the same or says precisely what it cannot express.
#[test]
fn corpus_compiles_and_equals_the_policy() {
    let mut checked = 0;
    for name in corpus() {
        let p = cli::load(&name)
            .unwrap()
            .policy
            .unwrap_or_else(|| panic!("{name} has errors"));
        for host in Host::for_policy(&p.seccomp) {
            seccomp::compile_checked(&p.seccomp, host, Backend::Kakoi)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            match seccomp::compile_checked(&p.seccomp, host, Backend::Libseccomp) {
                Ok(_) => {}
                Err(seccomp::Error::Libseccomp(seccomp::libseccomp::Error::Inexpressible {
                    ..
                })) => {}
                // A libseccomp miscompilation, caught before anything is written.
                Err(seccomp::Error::Mismatch { .. }) if name.contains("libseccomp-") => {}
                Err(e) => panic!("{name}: libseccomp: {e}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked}");
}

/// The targets of issue 3 on the Docker-equivalent default policy: a third of
/// libseccomp's length, two thirds of the instructions per allowed syscall of
/// libseccomp's binary-tree layout (kakoi's mean must be below 10 where libseccomp's
/// tree measures about 15), and every argument-independent ALLOW served by the cache.
#[test]
fn default_policy_meets_the_size_and_speed_targets() {
    let p = cli::load("default").unwrap().policy.unwrap();
    let host = Host::X86_64;
    let lib = seccomp::compile_checked(&p.seccomp, host, Backend::Libseccomp).unwrap();
    let own = seccomp::compile_checked(&p.seccomp, host, Backend::Kakoi).unwrap();
    let own_insns = bpf::decode(&own.bpf).unwrap();
    let st = stats::stats(&p.seccomp, &own_insns, host);
    assert!(
        own.len() * 3 <= lib.len(),
        "kakoi {} vs libseccomp {}",
        own.len(),
        lib.len()
    );
    let x = &st.abis[0];
    assert!(x.mean_insns <= 10.0, "mean {}", x.mean_insns);
    assert_eq!(
        x.cache_eligible, x.argument_independent,
        "not cached: {:?}",
        x.not_cached
    );
    assert!(x.argument_independent > 290);
}

/// Every argument-independent ALLOW of every corpus policy is cache-eligible (x86_64,
/// i386 and aarch64; the kernel never caches x32).
#[test]
fn argument_independent_allows_are_cache_eligible() {
    for name in corpus() {
        let p = cli::load(&name).unwrap().policy.unwrap();
        for host in Host::for_policy(&p.seccomp) {
            let prog = seccomp::compile_checked(&p.seccomp, host, Backend::Kakoi).unwrap();
            let st = stats::stats(&p.seccomp, &bpf::decode(&prog.bpf).unwrap(), host);
            for a in st.abis {
                assert!(
                    a.not_cached.is_empty(),
                    "{name} {}: {:?}",
                    a.arch,
                    a.not_cached
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// random policies

/// Syscalls with value arguments on every arch, for random conditions.
const POOL: &[&str] = &[
    "read",
    "write",
    "socket",
    "ioctl",
    "clone",
    "personality",
    "kill",
    "lseek",
    "fcntl",
    "prctl",
    "mmap",
    "madvise",
    "getpid",
    "exit_group",
    "close",
    "dup3",
    "setuid",
    "mount",
    "ptrace",
    "umask",
];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(Action::Allow),
        2 => (1u16..200).prop_map(Action::Errno),
        1 => Just(Action::KillProcess),
        1 => Just(Action::KillThread),
        1 => Just(Action::Trap),
        1 => Just(Action::Log),
        1 => (0u16..5).prop_map(Action::Trace),
    ]
}

fn value(kind: ArgKind) -> BoxedStrategy<u64> {
    let small = prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(0xffff_ffff),
        0u64..4096
    ];
    if kind.is_32bit() {
        prop_oneof![small, any::<u32>().prop_map(u64::from)].boxed()
    } else {
        prop_oneof![small, Just(0x1_0000_0000u64), Just(u64::MAX), any::<u64>()].boxed()
    }
}

fn leaf(syscall: &'static str) -> BoxedStrategy<Cond> {
    let args: Vec<(&'static str, ArgKind)> = catalogue::syscall(syscall)
        .unwrap()
        .signature()
        .unwrap()
        .iter()
        .filter(|a| a.kind != ArgKind::Ptr)
        .map(|a| (a.name, a.kind))
        .collect();
    let arch = proptest::sample::subsequence(Arch::ALL.to_vec(), 1..=3).prop_map(Cond::Arch);
    if args.is_empty() {
        return arch.boxed();
    }
    let cmp = proptest::sample::select(args).prop_flat_map(|(name, kind)| {
        let op = prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Ne),
            Just(CmpOp::Lt),
            Just(CmpOp::Le),
            Just(CmpOp::Gt),
            Just(CmpOp::Ge)
        ];
        (
            op,
            value(kind),
            proptest::option::weighted(0.3, value(kind)),
        )
            .prop_map(move |(op, v, m)| {
                // Masks only with equality, as the language allows any but these are the
                // forms that matter.
                let mask = if matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    m.map(ConstExpr::Num)
                } else {
                    None
                };
                Cond::Arg(ArgCmp {
                    arg: name.to_string(),
                    mask,
                    op,
                    value: ConstExpr::Num(v),
                })
            })
    });
    prop_oneof![4 => cmp, 1 => arch].boxed()
}

fn cond(syscall: &'static str) -> BoxedStrategy<Cond> {
    leaf(syscall)
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..3).prop_map(Cond::And),
                proptest::collection::vec(inner.clone(), 1..3).prop_map(Cond::Or),
                inner.prop_map(|c| Cond::Not(Box::new(c))),
            ]
        })
        .boxed()
}

fn rule() -> impl Strategy<Value = Rule> {
    let origin = Origin {
        file: "random".into(),
        line: 1,
        column: 1,
    };
    prop_oneof![
        // Unconditional rules over several syscalls.
        (action(), proptest::sample::subsequence(POOL.to_vec(), 1..5)).prop_map({
            let origin = origin.clone();
            move |(action, names)| Rule {
                action,
                syscalls: names.iter().map(|s| s.to_string()).collect(),
                cond: None,
                origin: origin.clone(),
            }
        }),
        // A conditional rule on one syscall.
        proptest::sample::select(POOL.to_vec())
            .prop_flat_map(|s| (action(), Just(s), cond(s)))
            .prop_map(move |(action, s, c)| Rule {
                action,
                syscalls: vec![s.to_string()],
                cond: Some(c),
                origin: origin.clone()
            }),
    ]
}

fn policy() -> impl Strategy<Value = Seccomp> {
    (
        action(),
        prop_oneof![
            Just(Action::KillProcess),
            Just(Action::Errno(1)),
            Just(Action::Allow)
        ],
        proptest::sample::subsequence(Arch::ALL.to_vec(), 1..=4),
        proptest::collection::vec(rule(), 0..10),
    )
        .prop_map(|(default_action, bad_arch_action, arches, mut rules)| {
            for r in &mut rules {
                r.syscalls.sort();
            }
            Seccomp {
                enabled: true,
                default_action,
                bad_arch_action,
                unknown_action: if default_action == Action::Allow {
                    Action::Allow
                } else {
                    Action::Errno(38)
                },
                arches,
                flags: Vec::<SeccompFlag>::new(),
                acknowledged: Vec::new(),
                rules,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random policies: kakoi's program always equals the policy. libseccomp's program
    /// either equals it, or libseccomp says what it cannot express, or (libseccomp bugs,
    /// see `libseccomp_miscompilation_is_caught`) the verification refuses it; it is never
    /// invalid BPF.
    #[test]
    fn random_policies_compile_to_equal_programs(s in policy()) {
        for host in Host::for_policy(&s) {
            let r = seccomp::compile_checked(&s, host, Backend::Kakoi);
            prop_assert!(r.is_ok(), "kakoi: {}", r.unwrap_err());
            let r = libseccomp_outcome(&s, host);
            prop_assert!(r.is_ok(), "libseccomp: {}", r.unwrap_err());
        }
    }
}

/// A libseccomp 2.5 code-generation bug found by the random policies above: its program
/// for this policy allows `lseek(fd, 0, 0xfffffffe)`, which the policy denies. The
/// verification catches it, so `compile_checked` refuses libseccomp's program, while
/// kakoi's program is right.
#[test]
fn libseccomp_miscompilation_is_caught() {
    let p = cli::load("fixtures/seccomp/libseccomp-accumulator.kakoi")
        .unwrap()
        .policy
        .unwrap();
    let raw = seccomp::libseccomp::compile(&p.seccomp, Host::X86_64).unwrap();
    let insns = bpf::decode(&raw.bpf).unwrap();
    let lseek = syscall_nr("lseek");
    let data = bpf::Data {
        nr: lseek,
        arch: Arch::X86_64.audit_arch(),
        args: [3, 0, 0xffff_fffe, 0, 0, 0],
        ..Default::default()
    };
    assert_eq!(
        bpf::ret_action(bpf::run(&insns, &data).ret),
        Action::Allow,
        "libseccomp fixed this?"
    );
    assert_eq!(
        p.seccomp.decide(data.arch, lseek, &data.args).action,
        Action::Errno(1)
    );
    assert!(matches!(
        seccomp::compile_checked(&p.seccomp, Host::X86_64, Backend::Libseccomp),
        Err(seccomp::Error::Mismatch { .. })
    ));
    let own = seccomp::compile_checked(&p.seccomp, Host::X86_64, Backend::Kakoi).unwrap();
    let own = bpf::decode(&own.bpf).unwrap();
    assert_eq!(bpf::ret_action(bpf::run(&own, &data).ret), Action::Errno(1));
}

fn syscall_nr(name: &str) -> u32 {
    catalogue::syscall(name).unwrap().nr(Arch::X86_64).unwrap()
}

/// libseccomp's verdict on a policy, in a forked child with a time limit: libseccomp 2.5
/// can take minutes merging some rule sets (seen on random policies), which is its
/// problem, not a wrong program. `Err` only for an invalid program or an unexpected error.
fn libseccomp_outcome(s: &Seccomp, host: Host) -> Result<(), String> {
    // SAFETY: the child only compiles and exits; if it deadlocks on a lock another thread
    // held at fork time, the time limit below ends it like a slow libseccomp.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match seccomp::compile_checked(s, host, Backend::Libseccomp) {
            Ok(_)
            | Err(seccomp::Error::Libseccomp(seccomp::libseccomp::Error::Inexpressible {
                ..
            }))
            | Err(seccomp::Error::Mismatch { .. }) => 0,
            Err(seccomp::Error::Invalid { .. }) => 3,
            Err(_) => 2,
        };
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    for _ in 0..1000 {
        // SAFETY: polling our own child.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return match libc::WEXITSTATUS(status) {
                0 => Ok(()),
                3 => Err("libseccomp produced invalid BPF".into()),
                c => Err(format!("libseccomp failed (child exit {c})")),
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: ending and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    Ok(())
}
