//! Equivalence check: a compiled program against the policy's own meaning
//! ([`Seccomp::decide`]), on every syscall number of every ABI the host can enter the
//! kernel with, on foreign architectures, and on boundary argument values taken from the
//! policy's own constants.

use std::collections::BTreeSet;

use policy_lang::catalogue::{self, Arch, ArgKind};
use policy_lang::ir::{Action, ConcreteCond, Seccomp};

use super::Host;
use crate::bpf::{self, Data, Insn};

/// A syscall on which program and policy disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub arch: u32,
    pub nr: u32,
    pub args: [u64; 6],
    pub policy: Action,
    pub program: Action,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = Arch::ALL
            .iter()
            .filter(|a| a.audit_arch() == self.arch)
            .find_map(|a| catalogue::syscall_by_nr(*a, self.nr))
            .map_or("?", |d| d.name);
        write!(
            f,
            "arch {:#x} nr {:#x} ({name}) args {:x?}: policy says {}, program says {}",
            self.arch,
            self.nr,
            self.args,
            self.policy.to_source(),
            self.program.to_source()
        )
    }
}

/// What was checked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Coverage {
    pub cases: usize,
}

fn collect_values(c: &ConcreteCond, out: &mut BTreeSet<(u8, u64)>) {
    match c {
        ConcreteCond::Const(_) => {}
        ConcreteCond::And(v) | ConcreteCond::Or(v) => v.iter().for_each(|c| collect_values(c, out)),
        ConcreteCond::Not(c) => collect_values(c, out),
        ConcreteCond::Cmp(c) => {
            let v = c.value;
            for x in [v, v.wrapping_sub(1), v.wrapping_add(1), !v, v | 0x8000_0000] {
                out.insert((c.index, x));
            }
            if let Some(m) = c.mask {
                for bit in 0..64 {
                    if m >> bit & 1 == 1 {
                        out.insert((c.index, 1 << bit));
                        out.insert((c.index, (v & m) | 1 << bit));
                    }
                }
                out.insert((c.index, m));
            }
        }
    }
}

/// Widen a 32-bit value the way libc passes an `int` (sign extension) or `unsigned`.
fn as_passed(kind: Option<ArgKind>, v: u64, arch: Arch) -> u64 {
    if !arch.is_64bit() {
        return v & 0xffff_ffff;
    }
    match kind {
        Some(ArgKind::I32) => v as u32 as i32 as i64 as u64,
        Some(ArgKind::U32) => v & 0xffff_ffff,
        _ => v,
    }
}

/// Check `prog` (compiled for `host`) against the policy. Returns the first mismatches
/// (at most 20) or the number of cases checked. `exempt` lists `arch:syscall` the
/// backend declared it could not compile ([`super::Program::skipped`]): for those the
/// program is expected to give the default action instead.
pub fn verify(
    s: &Seccomp,
    prog: &[Insn],
    host: Host,
    exempt: &[String],
    unknown_as_default: bool,
) -> Result<Coverage, Vec<Mismatch>> {
    let exempt_nrs: BTreeSet<(u32, u32)> = exempt
        .iter()
        .filter_map(|e| {
            let (a, n) = e.split_once(':')?;
            let arch = Arch::from_name(a)?;
            Some((arch.audit_arch(), catalogue::syscall(n)?.nr(arch)?))
        })
        .collect();
    let mut bad = Vec::new();
    let mut cov = Coverage::default();
    let mut decider = policy_lang::ir::Decider::new(s);
    let mut unknown_nrs = std::collections::HashMap::new();
    let mut check = |arch: u32, nr: u32, args: [u64; 6]| {
        cov.cases += 1;
        // A program serves only the ABIs its host can enter the kernel with; any other
        // audit arch gets the bad-arch action, whatever the policy says of it.
        let foreign = host.abis().iter().all(|a| a.audit_arch() != arch);
        let mut want = if foreign {
            s.bad_arch_action
        } else {
            decider.decide(arch, nr, &args).action
        };
        if exempt_nrs.contains(&(arch, nr)) && want != s.bad_arch_action {
            want = s.default_action;
        }
        let unknown = *unknown_nrs.entry((arch, nr)).or_insert_with(|| {
            Arch::ALL
                .iter()
                .filter(|a| a.audit_arch() == arch)
                .all(|a| catalogue::syscall_by_nr(*a, nr).is_none())
        });
        if unknown_as_default
            && unknown
            && !foreign
            && want == s.unknown_action
            && want != s.bad_arch_action
        {
            want = s.default_action;
        }
        let data = Data {
            nr,
            arch,
            ip: 0x7fff_0000_1000,
            args,
        };
        let got = bpf::ret_action(bpf::run(prog, &data).ret);
        if want != got && bad.len() < 20 {
            bad.push(Mismatch {
                arch,
                nr,
                args,
                policy: want,
                program: got,
            });
        }
    };
    for &arch in host.abis() {
        let rules = s.for_arch(arch);
        let top = catalogue::max_nr(arch) - arch.nr_offset() + 64;
        for raw in 0..=top {
            let nr = raw | arch.nr_offset();
            check(arch.audit_arch(), nr, [0; 6]);
            // Boundary values of every condition on this syscall.
            let mut vals = BTreeSet::new();
            for r in rules.iter().filter(|r| r.nrs.contains(&nr)) {
                if let Some(c) = &r.cond {
                    collect_values(c, &mut vals);
                }
            }
            if vals.is_empty() {
                continue;
            }
            let sig = catalogue::syscall_by_nr(arch, nr).and_then(|d| d.args(arch));
            let kind = |i: u8| sig.and_then(|a| a.get(usize::from(i))).map(|a| a.kind);
            let list: Vec<(u8, u64)> = vals.into_iter().collect();
            for &(i, v) in &list {
                let mut args = [0u64; 6];
                args[usize::from(i)] = as_passed(kind(i), v, arch);
                check(arch.audit_arch(), nr, args);
            }
            // Pairs on different arguments, for conditions over several arguments.
            for &(i, v) in &list {
                for &(j, w) in &list {
                    if i < j {
                        let mut args = [0u64; 6];
                        args[usize::from(i)] = as_passed(kind(i), v, arch);
                        args[usize::from(j)] = as_passed(kind(j), w, arch);
                        check(arch.audit_arch(), nr, args);
                    }
                }
            }
        }
    }
    // The x32 bit, the tracer's -1, and foreign architectures.
    for nr in [
        u32::MAX,
        0x4000_0000,
        0x4000_0001,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fffe,
    ] {
        check(Arch::X86_64.audit_arch(), nr, [0; 6]);
    }
    for foreign in [
        Arch::Aarch64.audit_arch(),
        Arch::X86.audit_arch(),
        0x4000_0028, /* arm */
        0,
    ] {
        if host.abis().iter().all(|a| a.audit_arch() != foreign)
            || !s.arches.iter().any(|a| a.audit_arch() == foreign)
        {
            for nr in [0, 1, 59, 257] {
                check(foreign, nr, [0; 6]);
            }
        }
    }
    if bad.is_empty() {
        Ok(cov)
    } else {
        Err(bad)
    }
}
