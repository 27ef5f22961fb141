//! What a Docker/OCI seccomp profile means under runc, and whether a kakoi reading of it
//! decides the same.
//!
//! runc hands a profile's entries to libseccomp one by one ([`super::libseccomp::
//! compile_docker_json`] does the same); the program libseccomp then writes is what
//! containers run under today. [`compare`] runs that program and a kakoi policy side by
//! side on the argument values the profile's comparisons make interesting, per ABI, and
//! accepts a disagreement only where it is one of kakoi's named differences:
//!
//! - **argument widths**: a 32-bit argument (`int`, `unsigned int`) of a 64-bit ABI is
//!   compared on its low word, as the kernel reads it (libseccomp compares 64 bits); on
//!   x32 a `long` argument is compared on its whole register (libseccomp: the low word);
//! - **libseccomp's program is not what runc asked for**: libseccomp 2.5 compiles some
//!   64-bit ordered comparisons wrongly; kakoi does what the entry says (checked against a
//!   direct evaluation of the entry, [`intent`]);
//! - **overlapping conditional entries of different actions**: libseccomp orders them by
//!   its own precedence; the import reads such syscalls back from libseccomp's program,
//!   and keeps file order (and notes it) only where that program cannot be decompiled.

use std::collections::BTreeSet;

use policy_lang::catalogue::{self, Arch, ArgKind};
use policy_lang::ir::{Action, Seccomp};
use serde_json::Value;

use super::json::Target;
use super::libseccomp::{compile_docker_json, entry_applies, Layout};
use crate::bpf;

/// How a kakoi reading and runc's program compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    /// Decisions compared.
    pub decisions: usize,
    /// Disagreements that are kakoi's reading of argument widths.
    pub widths: usize,
    /// Decisions where libseccomp's program is not what the entry asks for.
    pub miscompiled: usize,
    /// Disagreements on overlapping conditional entries of different actions.
    pub overlaps: usize,
}

impl Agreement {
    /// One line for the import's notes.
    pub fn note(&self) -> String {
        let mut n = format!(
            "decides as runc's program does ({} decisions compared",
            self.decisions
        );
        if self.widths + self.miscompiled + self.overlaps > 0 {
            n.push_str(&format!(
                "; differs by design in {}: argument widths, where kakoi compares what the kernel reads; {}: libseccomp's program is not what the entry asks for; {}: overlapping conditional entries kept in file order",
                self.widths, self.miscompiled, self.overlaps
            ));
        }
        n.push(')');
        n
    }
}

/// The profile's entries that apply on `target`, with the default action's text.
struct Profile<'a> {
    entries: Vec<&'a Value>,
    default: Action,
}

fn action(e: &Value, key: &str, errno_key: &str) -> Option<Action> {
    let errno = || e[errno_key].as_u64().map_or(1, |v| v as u16);
    Some(match e[key].as_str()? {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno()),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno()),
        "SCMP_ACT_NOTIFY" => Action::Notify,
        _ => return None,
    })
}

fn names(e: &Value) -> impl Iterator<Item = &str> {
    e["names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(e["name"].as_str())
}

fn args(e: &Value) -> &[Value] {
    e["args"].as_array().map_or(&[], Vec::as_slice)
}

/// `(arg & 0) == x` always holds.
fn trivial(c: &Value) -> bool {
    c["op"] == "SCMP_CMP_MASKED_EQ" && c["value"].as_u64() == Some(0)
}

/// What the one entry naming `name` asks for, evaluated directly: its comparisons all
/// required, or any one when an argument is compared twice, each as libseccomp means it
/// (64 bits on x86_64, the low word on i386 and x32). `None` when several entries name
/// the syscall (then libseccomp's own resolution is the meaning).
fn intent(p: &Profile, name: &str, arch: Arch, a: &[u64; 6]) -> Option<Action> {
    let mut naming = p.entries.iter().filter(|e| names(e).any(|n| n == name));
    let Some(e) = naming.next() else {
        return Some(p.default);
    };
    if naming.next().is_some() {
        return None;
    }
    let width = if arch == Arch::X86_64 {
        u64::MAX
    } else {
        0xffff_ffff
    };
    let test = |c: &Value| {
        let Some(&x) = c["index"].as_u64().and_then(|i| a.get(i as usize)) else {
            return false;
        };
        let x = x & width;
        let v = c["value"].as_u64().unwrap_or(0) & width;
        let two = c["valueTwo"].as_u64().unwrap_or(0) & width;
        match c["op"].as_str().unwrap_or("") {
            "SCMP_CMP_NE" => x != v,
            "SCMP_CMP_LT" => x < v,
            "SCMP_CMP_LE" => x <= v,
            "SCMP_CMP_GT" => x > v,
            "SCMP_CMP_GE" => x >= v,
            "SCMP_CMP_MASKED_EQ" => x & v == two & v,
            _ => x == v,
        }
    };
    let cmps = args(e);
    let mut seen = BTreeSet::new();
    let repeated = cmps.iter().any(|c| !seen.insert(c["index"].as_u64()));
    let hit = if repeated {
        cmps.iter().any(test)
    } else {
        cmps.iter().all(test)
    };
    let act = action(e, "action", "errnoRet")?;
    Some(if hit && act != p.default {
        act
    } else {
        p.default
    })
}

/// Whether a disagreement on `name` can come from argument widths: an entry naming it
/// compares an argument that is narrower in one reading than in the other (a 32-bit one
/// on a 64-bit ABI, any on x32), with a value or an argument whose high half is not 0.
fn width_matters(p: &Profile, name: &str, arch: Arch, a: &[u64; 6]) -> bool {
    if !arch.is_64bit() {
        return false;
    }
    let Some(sig) = catalogue::syscall(name).and_then(|d| d.args(arch)) else {
        return false;
    };
    let high = |v: u64| v >> 32 != 0;
    p.entries
        .iter()
        .filter(|e| names(e).any(|n| n == name))
        .any(|e| {
            args(e).iter().any(|c| {
                let i = c["index"].as_u64().unwrap_or(0) as usize;
                sig.get(i)
                    .is_some_and(|x| x.kind.is_32bit() || arch == Arch::X32)
                    && (high(a.get(i).copied().unwrap_or(0))
                        || high(c["value"].as_u64().unwrap_or(0))
                        || high(c["valueTwo"].as_u64().unwrap_or(0)))
            })
        })
}

/// Whether `name` is named by conditional entries of different actions and by no
/// unconditional one.
fn conditional_overlap(p: &Profile, name: &str) -> bool {
    let mut actions = BTreeSet::new();
    for e in p.entries.iter().filter(|e| names(e).any(|n| n == name)) {
        let cmps = args(e);
        if cmps.iter().all(trivial) {
            return false;
        }
        actions.insert(action(e, "action", "errnoRet"));
    }
    actions.len() > 1
}

/// The argument vectors worth deciding for `name` on `arch`: every compared argument at
/// each value the profile compares it with (±1, masked forms) and at the edges of its
/// width, all combinations of the compared arguments (capped), as libc passes them (a
/// 32-bit argument sign- or zero-extended, i386 registers 32 bits wide).
fn vectors(p: &Profile, name: &str, arch: Arch) -> Vec<[u64; 6]> {
    let sig = catalogue::syscall(name)
        .and_then(|d| d.args(arch))
        .unwrap_or(&[]);
    let fix = |i: usize, v: u64| -> u64 {
        let kind = sig.get(i).map(|a| a.kind);
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
    let mut per: std::collections::BTreeMap<usize, BTreeSet<u64>> = Default::default();
    for e in p.entries.iter().filter(|e| names(e).any(|n| n == name)) {
        for c in args(e) {
            let i = c["index"].as_u64().unwrap_or(0) as usize;
            if i >= 6 {
                continue;
            }
            let v = c["value"].as_u64().unwrap_or(0);
            let two = c["valueTwo"].as_u64().unwrap_or(0);
            let set = per.entry(i).or_default();
            for x in [
                0,
                1,
                u64::MAX,
                0x7fff_ffff,
                0x8000_0000,
                0xffff_ffff,
                0x1_0000_0000,
                v,
                v.wrapping_add(1),
                v.wrapping_sub(1),
                two,
                two & v,
                (two & v) | !v,
            ] {
                set.insert(fix(i, x));
            }
        }
    }
    let mut out = vec![[0u64; 6]];
    for (i, vals) in per {
        let mut next = Vec::new();
        for v in &out {
            for x in &vals {
                let mut w = *v;
                w[i] = *x;
                next.push(w);
            }
        }
        // Three compared arguments at most in full; past that, each on its own.
        if next.len() > 20_000 {
            let mut each = out.clone();
            for x in &vals {
                let mut w = out[0];
                w[i] = *x;
                each.push(w);
            }
            next = each;
        }
        out = next;
    }
    out
}

/// Compare `mine` (kakoi's reading of the profile `text`) with the program runc would load
/// for `target`, on every ABI `mine` targets: every syscall the profile names, on the
/// vectors of [`vectors`], and one vector of every other syscall.
pub fn compare(text: &str, target: &Target, mine: &Seccomp) -> Result<Agreement, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let doc = doc.pointer("/linux/seccomp").unwrap_or(&doc);
    let theirs = compile_docker_json(&doc.to_string(), target, Layout::Priority)
        .map_err(|e| e.to_string())?;
    let prog = bpf::decode(&theirs).map_err(|e| e.to_string())?;
    let default = action(doc, "defaultAction", "defaultErrnoRet")
        .ok_or("the profile has no defaultAction")?;
    let entries: Vec<&Value> = doc["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| entry_applies(e, target))
        .filter(|e| action(e, "action", "errnoRet") != Some(default))
        .collect();
    let p = Profile { entries, default };
    let named: BTreeSet<&str> = p.entries.iter().flat_map(|e| names(e)).collect();
    let mut out = Agreement::default();
    for &arch in &mine.arches {
        let mut decider = policy_lang::ir::Decider::new(mine);
        for d in catalogue::syscalls() {
            let Some(nr) = d.nr(arch) else { continue };
            // libseccomp leaves out names it does not know on an ABI: those get the
            // default action under runc, and the bundle's notes say so; they are not
            // compared here.
            if !super::libseccomp::known_on(d.name, arch) {
                continue;
            }
            let vs = if named.contains(d.name) {
                vectors(&p, d.name, arch)
            } else {
                vec![[0u64; 6]]
            };
            for a in vs {
                let want = decider.decide(arch.audit_arch(), nr, &a).action;
                let data = bpf::Data {
                    nr,
                    arch: arch.audit_arch(),
                    ip: 0,
                    args: a,
                };
                let got = bpf::ret_action(bpf::run(&prog, &data).ret);
                out.decisions += 1;
                let asked = intent(&p, d.name, arch, &a).unwrap_or(got);
                if asked != got {
                    out.miscompiled += 1;
                }
                if want == got || want == asked {
                    continue;
                }
                if width_matters(&p, d.name, arch, &a) {
                    out.widths += 1;
                } else if conditional_overlap(&p, d.name) {
                    out.overlaps += 1;
                } else {
                    return Err(format!(
                        "{}:{}{a:x?}: kakoi {}, runc {}",
                        arch.name(),
                        d.name,
                        want.to_source(),
                        got.to_source()
                    ));
                }
            }
        }
    }
    Ok(out)
}
