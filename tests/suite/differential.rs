//! kakoi's reading of Docker/OCI JSON against what runc loads: random profiles, each
//! imported by kakoi (`seccomp::json::import`, the policy's own meaning `decide`) and
//! compiled the way runc does, straight through libseccomp
//! (`libseccomp::compile_docker_json`), then decided by both on boundary and random
//! argument vectors for x86_64, x86 and x32. Every disagreement must be one of kakoi's
//! named, deliberate differences (docs/seccomp-differences in SECURITY.md), or the test
//! fails.

use kakoi::seccomp::json::{self, Target};
use kakoi::seccomp::libseccomp::{compile_docker_json, Layout};
use kakoi::seccomp::runc;
use policy_lang::catalogue::{self, Arch, ArgKind};
use policy_lang::ir::Action;

use crate::util::Rng;

/// Syscalls whose arguments are registers at the same positions on every x86 ABI.
const POOL: &[&str] = &[
    "read",
    "write",
    "socket",
    "personality",
    "kill",
    "fcntl",
    "mprotect",
    "ioctl",
    "prctl",
    "setuid",
    "dup3",
    "umask",
    "getpid",
    "lseek",
    "madvise",
];

const VALUES: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    0x10,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0003,
    0x7fff_ffff_ffff_ffff,
    0xffff_ffff_ffff_fffe,
    u64::MAX,
];

const ACTIONS: &[&str] = &[
    r#""action": "SCMP_ACT_ALLOW""#,
    r#""action": "SCMP_ACT_ERRNO", "errnoRet": 13"#,
    r#""action": "SCMP_ACT_ERRNO", "errnoRet": 1"#,
    r#""action": "SCMP_ACT_ERRNO""#,
    r#""action": "SCMP_ACT_KILL_PROCESS""#,
    r#""action": "SCMP_ACT_TRAP""#,
    r#""action": "SCMP_ACT_LOG""#,
    r#""action": "SCMP_ACT_TRACE""#,
];

const OPS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_GT",
    "SCMP_CMP_GE",
    "SCMP_CMP_MASKED_EQ",
];

fn nargs(name: &str) -> usize {
    catalogue::syscall(name)
        .and_then(|d| d.args(Arch::X86_64))
        .map_or(0, |a| a.len())
}

fn profile(rng: &mut Rng) -> String {
    let default = *rng.pick(&[
        r#""defaultAction": "SCMP_ACT_ERRNO""#,
        r#""defaultAction": "SCMP_ACT_ALLOW""#,
        r#""defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38"#,
    ]);
    let arches = *rng.pick(&[
        r#"["SCMP_ARCH_X86_64"]"#,
        r#"["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]"#,
        r#"["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]"#,
        r#"["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]"#,
    ]);
    let mut entries = Vec::new();
    // A syscall is named again by a third of the entries: overlapping entries are part of
    // what is compared (see `conditional_overlap` for the one kind that is only counted).
    let mut used: Vec<&str> = Vec::new();
    let mut fresh = |rng: &mut Rng| -> Option<&'static str> {
        let n = *rng.pick(POOL);
        (rng.below(3) == 0 || !used.contains(&n)).then(|| {
            used.push(n);
            n
        })
    };
    for _ in 0..1 + rng.below(8) {
        let Some(name) = fresh(rng) else { continue };
        let mut names = vec![format!("\"{name}\"")];
        let n = nargs(name);
        let mut args = Vec::new();
        if n > 0 && rng.below(3) > 0 {
            for _ in 0..1 + rng.below(2) {
                let index = rng.below(n);
                // Pointers cannot be compared (runc passes them, kakoi refuses them).
                let kind = catalogue::syscall(name)
                    .unwrap()
                    .args(Arch::X86_64)
                    .unwrap()[index]
                    .kind;
                if kind == ArgKind::Ptr {
                    continue;
                }
                let op = *rng.pick(OPS);
                let (v, two) = if op == "SCMP_CMP_MASKED_EQ" {
                    (*rng.pick(VALUES), *rng.pick(VALUES))
                } else {
                    (*rng.pick(VALUES), 0)
                };
                args.push(format!(
                    r#"{{"index": {index}, "op": "{op}", "value": {v}, "valueTwo": {two}}}"#
                ));
            }
        } else if rng.below(2) == 0 {
            if let Some(other) = fresh(rng) {
                names.push(format!("\"{other}\""));
            }
        }
        entries.push(format!(
            r#"{{"names": [{}], {}, "args": [{}]}}"#,
            names.join(", "),
            rng.pick(ACTIONS),
            args.join(", ")
        ));
    }
    format!(
        r#"{{{default}, "architectures": {arches}, "syscalls": [{}]}}"#,
        entries.join(",\n")
    )
}

#[test]
fn kakoi_reads_docker_json_as_runc_and_libseccomp_enforce_it() {
    let target = Target::docker_default();
    let (mut profiles, mut refused, mut total) = (0, 0, runc::Agreement::default());
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let text = profile(&mut rng);
        let mine = json::import("random.json", &text, &target)
            .unwrap_or_else(|e| panic!("seed {seed}: kakoi refused\n{text}\n{e}"));
        if compile_docker_json(&text, &target, Layout::Priority).is_err() {
            // runc would not start the container: `kakoi import` says so.
            assert!(json::runc_refusal(&text, &target).is_some(), "seed {seed}");
            refused += 1;
            continue;
        }
        let a = runc::compare(&text, &target, &mine.seccomp)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        profiles += 1;
        total.decisions += a.decisions;
        total.widths += a.widths;
        total.miscompiled += a.miscompiled;
        total.overlaps += a.overlaps;
    }
    eprintln!(
        "differential: {profiles} profiles ({refused} more runc refuses), {} decisions; named differences: {} argument widths, {} where libseccomp's program is not what the entry asks for, {} on overlapping conditional entries; 0 disagreements",
        total.decisions, total.widths, total.miscompiled, total.overlaps
    );
    assert!(
        profiles >= 350 && total.decisions > 300_000,
        "{profiles} profiles, {total:?}"
    );
}

/// The comparison fails when kakoi's reading is wrong: one action changed in an
/// imported profile is caught.
#[test]
fn the_runc_comparison_catches_a_wrong_reading() {
    let target = Target::docker_default();
    let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 8}]}]}"#;
    let mut s = json::import("p.json", text, &target).unwrap().seccomp;
    assert!(runc::compare(text, &target, &s).unwrap().decisions > 300);
    let last = s.rules.len() - 1;
    s.rules[last].action = Action::Log;
    let e = runc::compare(text, &target, &s).unwrap_err();
    assert!(e.contains("personality"), "{e}");
}

/// Overlapping conditional entries of different actions: under runc, libseccomp's own
/// precedence decides where they overlap (neither the first entry nor the last). kakoi's
/// import reads such syscalls back from libseccomp's program, so it decides as runc's
/// container does on every value, where a file-order reading would not.
#[test]
fn overlapping_conditional_entries_decide_as_libseccomp_does() {
    let target = Target::docker_default();
    let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_GE", "value": 8}]},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "args": [{"index": 0, "op": "SCMP_CMP_LE", "value": 16}]},
        {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 255, "valueTwo": 0}]},
        {"names": ["setns"], "action": "SCMP_ACT_LOG", "args": [{"index": 0, "op": "SCMP_CMP_LT", "value": 100}]}]}"#;
    let imported = json::import("overlap.json", text, &target).unwrap();
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("`personality`, `setns`")
                && n.contains("read back from libseccomp's program")),
        "{:?}",
        imported.notes
    );
    let a = runc::compare(text, &target, &imported.seccomp).unwrap();
    assert_eq!(a.overlaps, 0, "{a:?}");
    let prog =
        kakoi::bpf::decode(&compile_docker_json(text, &target, Layout::Priority).unwrap()).unwrap();
    let runc_decides = |nr: u32, args: [u64; 6]| {
        let data = kakoi::bpf::Data {
            nr,
            arch: Arch::X86_64.audit_arch(),
            ip: 0,
            args,
        };
        kakoi::bpf::ret_action(kakoi::bpf::run(&prog, &data).ret)
    };
    let personality = catalogue::syscall("personality")
        .unwrap()
        .nr(Arch::X86_64)
        .unwrap();
    let setns = catalogue::syscall("setns")
        .unwrap()
        .nr(Arch::X86_64)
        .unwrap();
    let mut file_order_differs = 0;
    // Values of the arguments' 32 bits (above them, kakoi reads what the kernel reads: a
    // named difference).
    for v in (0..=20u64).chain([0xffff]) {
        for (nr, args, first) in [
            // What the first matching entry says.
            (
                personality,
                [v, 0, 0, 0, 0, 0],
                if v >= 8 {
                    Action::Allow
                } else {
                    Action::Errno(38)
                },
            ),
            (
                setns,
                [v * 7, v << 8, 0, 0, 0, 0],
                if (v << 8) & 255 == 0 {
                    Action::Errno(22)
                } else if v * 7 < 100 {
                    Action::Log
                } else {
                    Action::Errno(1)
                },
            ),
        ] {
            let theirs = runc_decides(nr, args);
            let mine = imported
                .seccomp
                .decide(Arch::X86_64.audit_arch(), nr, &args)
                .action;
            assert_eq!(mine, theirs, "nr {nr} {args:x?}");
            if first != theirs {
                file_order_differs += 1;
            }
        }
    }
    assert!(
        file_order_differs > 0,
        "the profile does not show libseccomp's precedence"
    );
}
