//! kakoi's reading of Docker/OCI JSON against what runc loads: random profiles, each
//! imported by kakoi (`seccomp::json::import`, the policy's own meaning `decide`) and
//! compiled the way runc does, straight through libseccomp
//! (`libseccomp::compile_docker_json`), then decided by both on boundary and random
//! argument vectors for x86_64, x86 and x32. Every disagreement must be one of kakoi's
//! named, deliberate differences (docs/seccomp-differences in SECURITY.md), or the test
//! fails.

use kakoi::bpf;
use kakoi::seccomp::json::{self, Target};
use kakoi::seccomp::libseccomp::{compile_docker_json, Layout};
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

/// Argument vectors for one syscall on one ABI: every boundary value at each position,
/// then random mixes. i386 registers are 32 bits (the kernel zero-extends them); a
/// 32-bit argument of a 64-bit ABI is passed by libc sign- or zero-extended, so the high
/// half is 0 or all ones.
fn vectors(rng: &mut Rng, name: &str, arch: Arch) -> Vec<[u64; 6]> {
    let args = catalogue::syscall(name)
        .and_then(|d| d.args(arch))
        .unwrap_or(&[]);
    let fix = |i: usize, v: u64| -> u64 {
        let kind = args.get(i).map(|a| a.kind);
        if !arch.is_64bit() {
            v & 0xffff_ffff
        } else if kind.is_some_and(ArgKind::is_32bit) {
            let lo = v & 0xffff_ffff;
            if kind.is_some_and(ArgKind::is_signed) && lo & 0x8000_0000 != 0 {
                lo | 0xffff_ffff_0000_0000
            } else {
                lo
            }
        } else {
            v
        }
    };
    let mut out = vec![[0u64; 6]];
    for i in 0..args.len() {
        for &v in VALUES {
            let mut a = [0u64; 6];
            a[i] = fix(i, v);
            out.push(a);
        }
    }
    for _ in 0..24 {
        let mut a = [0u64; 6];
        for (i, slot) in a.iter_mut().enumerate().take(args.len()) {
            *slot = fix(i, *rng.pick(VALUES));
        }
        out.push(a);
    }
    out
}

#[derive(Default, Debug)]
struct Counts {
    profiles: usize,
    decisions: usize,
    /// Disagreements that are kakoi's deliberate reading of argument widths.
    low_word: usize,
    /// Decisions where libseccomp's program is not what runc asked of it.
    miscompiled: usize,
    /// Profiles runc refuses (libseccomp refuses one of their rules).
    refused: usize,
    /// Disagreements on a syscall named by conditional entries of different actions
    /// (and no unconditional one): libseccomp orders them by its own rules.
    overlap: usize,
    failures: Vec<String>,
}

/// kakoi's deliberate difference: a 32-bit argument (`int`, `unsigned int`) of a 64-bit
/// ABI is compared on its low word, as the kernel reads it; libseccomp compares all 64
/// bits. They can disagree only where the syscall's entries compare a 32-bit argument
/// and a value or the argument has a non-zero high half.
///
/// And on x32: libseccomp treats it as a 32-bit ABI and compares the low word of every
/// argument, where the kernel reads a `long` argument's whole 64-bit register; kakoi
/// compares what the kernel reads.
fn low_word(text: &str, name: &str, arch: Arch, args: &[u64; 6]) -> bool {
    if !arch.is_64bit() {
        return false;
    }
    let narrow = |k: ArgKind| k.is_32bit() || arch == Arch::X32;
    let Some(sig) = catalogue::syscall(name).and_then(|d| d.args(arch)) else {
        return false;
    };
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let high = |v: u64| v >> 32 != 0;
    doc["syscalls"].as_array().unwrap().iter().any(|e| {
        e["names"].as_array().unwrap().iter().any(|n| n == name)
            && e["args"].as_array().unwrap().iter().any(|c| {
                let i = c["index"].as_u64().unwrap() as usize;
                sig.get(i).is_some_and(|a| narrow(a.kind))
                    && (high(args[i])
                        || high(c["value"].as_u64().unwrap())
                        || high(c["valueTwo"].as_u64().unwrap()))
            })
    })
}

/// Whether `name` is named by conditional entries of different actions and by no
/// unconditional one (comparisons with mask 0 always hold and do not count): how
/// libseccomp resolves such overlaps is its own (it is neither the first nor the last
/// entry); kakoi takes file order and its import says so in a note.
fn conditional_overlap(doc: &serde_json::Value, name: &str) -> bool {
    let mut actions = std::collections::BTreeSet::new();
    for e in doc["syscalls"].as_array().unwrap() {
        if !e["names"].as_array().unwrap().iter().any(|n| n == name) {
            continue;
        }
        let cmps = e["args"].as_array().unwrap();
        if cmps
            .iter()
            .all(|c| c["op"] == "SCMP_CMP_MASKED_EQ" && c["value"] == 0)
        {
            return false;
        }
        actions.insert(format!("{}{}", e["action"], e["errnoRet"]));
    }
    actions.len() > 1
}

/// What runc asks of libseccomp for one call, evaluated directly (no BPF): the entry that
/// names the syscall (one at most, see `profile`), its comparisons all required, or any
/// one of them when an argument is compared twice; each compared as libseccomp means it,
/// on 64 bits on x86_64 and on the low word on i386 and x32.
fn runc_intent(doc: &serde_json::Value, name: &str, arch: Arch, args: &[u64; 6]) -> Action {
    let errno = |v: &serde_json::Value| v.as_u64().map_or(1, |e| e as u16);
    let action = |e: &serde_json::Value, errno_key: &str| match e["action"]
        .as_str()
        .or(e["defaultAction"].as_str())
        .unwrap()
    {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno(&e[errno_key])),
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno(&e[errno_key])),
        other => panic!("{other}"),
    };
    let width = if arch == Arch::X86_64 {
        u64::MAX
    } else {
        0xffff_ffff
    };
    for e in doc["syscalls"].as_array().unwrap() {
        if !e["names"].as_array().unwrap().iter().any(|n| n == name) {
            continue;
        }
        let cmps = e["args"].as_array().unwrap();
        let test = |c: &serde_json::Value| {
            let a = args[c["index"].as_u64().unwrap() as usize] & width;
            let (v, two) = (
                c["value"].as_u64().unwrap() & width,
                c["valueTwo"].as_u64().unwrap() & width,
            );
            match c["op"].as_str().unwrap() {
                "SCMP_CMP_EQ" => a == v,
                "SCMP_CMP_NE" => a != v,
                "SCMP_CMP_LT" => a < v,
                "SCMP_CMP_LE" => a <= v,
                "SCMP_CMP_GT" => a > v,
                "SCMP_CMP_GE" => a >= v,
                "SCMP_CMP_MASKED_EQ" => a & v == two & v,
                other => panic!("{other}"),
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        let repeated = cmps.iter().any(|c| !seen.insert(c["index"].as_u64()));
        let hit = if repeated {
            cmps.iter().any(test)
        } else {
            cmps.iter().all(test)
        };
        let act = action(e, "errnoRet");
        let default = action(doc, "defaultErrnoRet");
        if hit && act != default {
            return act;
        }
    }
    action(doc, "defaultErrnoRet")
}

#[test]
fn kakoi_reads_docker_json_as_runc_and_libseccomp_enforce_it() {
    let target = Target::docker_default();
    let mut counts = Counts::default();
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let text = profile(&mut rng);
        let mine = json::import("random.json", &text, &target)
            .unwrap_or_else(|e| panic!("seed {seed}: kakoi refused\n{text}\n{e}"));
        let theirs = match compile_docker_json(&text, &target, Layout::Priority) {
            Ok(p) => p,
            // runc would not start the container: kakoi's import says so.
            Err(_) => {
                assert!(json::runc_refusal(&text, &target).is_some(), "seed {seed}");
                counts.refused += 1;
                continue;
            }
        };
        let prog = bpf::decode(&theirs).unwrap();
        let s = &mine.seccomp;
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        counts.profiles += 1;
        for &arch in &s.arches {
            for name in POOL {
                let Some(nr) = catalogue::syscall(name).and_then(|d| d.nr(arch)) else {
                    continue;
                };
                for args in vectors(&mut rng, name, arch) {
                    let want = s.decide(arch.audit_arch(), nr, &args).action;
                    let data = bpf::Data {
                        nr,
                        arch: arch.audit_arch(),
                        ip: 0,
                        args,
                    };
                    let got = bpf::ret_action(bpf::run(&prog, &data).ret);
                    counts.decisions += 1;
                    // Where entries overlap, libseccomp's resolution is what runc means:
                    // the oracle (first entry) is not.
                    let entries = doc["syscalls"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|e| e["names"].as_array().unwrap().iter().any(|n| n == name))
                        .count();
                    let intent = if entries > 1 {
                        got
                    } else {
                        runc_intent(&doc, name, arch, &args)
                    };
                    if intent != got {
                        // libseccomp 2.5 compiles some 64-bit ordered comparisons wrongly:
                        // its program does not do what runc asked for.
                        counts.miscompiled += 1;
                    }
                    if want == intent || want == got {
                        continue;
                    }
                    if low_word(&text, name, arch, &args) {
                        counts.low_word += 1;
                    } else if conditional_overlap(&doc, name) {
                        counts.overlap += 1;
                    } else {
                        counts.failures.push(format!(
                            "seed {seed}: {}:{name}{args:x?}: kakoi {}, runc {}\n{text}",
                            arch.name(),
                            want.to_source(),
                            got.to_source()
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "differential: {} profiles, {} decisions; deliberate differences: {} argument widths (the low word of 32-bit arguments, x32's whole registers), {} where libseccomp's program is not what runc asked for, {} on overlapping conditional entries; {} profiles runc refuses; {} disagreements",
        counts.profiles,
        counts.decisions,
        counts.low_word,
        counts.miscompiled,
        counts.overlap,
        counts.refused,
        counts.failures.len()
    );
    assert!(
        counts.failures.is_empty(),
        "{} disagreements; first:\n{}",
        counts.failures.len(),
        counts
            .failures
            .iter()
            .filter(|f| std::env::var("DIFF_SKIP").map_or(true, |s| !s
                .split(",")
                .any(|x| f.starts_with(&format!("seed {x}:")))))
            .take(1)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
