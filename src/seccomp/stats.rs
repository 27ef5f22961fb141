//! Figures of a compiled program, per ABI: length, instructions executed for each
//! allowed syscall (mean and worst, arguments zero), and which allowed syscalls the
//! kernel's action cache serves.

use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{Action, Seccomp};
use serde::Serialize;

use super::Host;
use crate::bpf::{self, Data, Insn};

#[derive(Debug, Clone, Serialize)]
pub struct AbiStats {
    pub arch: &'static str,
    /// Syscalls of this ABI the program allows with all-zero arguments.
    pub allowed: usize,
    pub mean_insns: f64,
    pub worst_insns: usize,
    /// Allowed syscalls whose decision does not depend on arguments (per the policy).
    pub argument_independent: usize,
    /// Of those, how many the kernel's action cache would serve.
    pub cache_eligible: usize,
    /// Argument-independent allowed syscalls the cache would not serve.
    pub not_cached: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub host: &'static str,
    pub length: usize,
    pub abis: Vec<AbiStats>,
}

/// The kernel's own test (`seccomp_is_const_allow` in kernel/seccomp.c): follow the
/// program for (arch, nr) using only loads of `nr` and `arch`, constant jumps, `ALU AND K`
/// and `RET K`; the syscall is cached iff that path ends in `RET ALLOW`.
pub fn cache_allows(prog: &[Insn], arch: u32, nr: u32) -> bool {
    let mut a = 0u32;
    let mut pc = 0usize;
    while pc < prog.len() {
        let i = prog[pc];
        pc += 1;
        match i.code {
            c if c == bpf::LD | bpf::W | bpf::ABS => match i.k {
                0 => a = nr,
                4 => a = arch,
                _ => return false,
            },
            c if c == bpf::RET | bpf::K => return i.k == bpf::RET_ALLOW,
            c if c == bpf::JMP | bpf::JA => pc += i.k as usize,
            c if c == bpf::JMP | bpf::JEQ | bpf::K => {
                pc += usize::from(if a == i.k { i.jt } else { i.jf })
            }
            c if c == bpf::JMP | bpf::JGE | bpf::K => {
                pc += usize::from(if a >= i.k { i.jt } else { i.jf })
            }
            c if c == bpf::JMP | bpf::JGT | bpf::K => {
                pc += usize::from(if a > i.k { i.jt } else { i.jf })
            }
            c if c == bpf::JMP | bpf::JSET | bpf::K => {
                pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf })
            }
            c if c == bpf::ALU | 0x50 | bpf::K => a &= i.k,
            _ => return false,
        }
    }
    false
}

/// Whether the policy's decision for `nr` on `arch` is Allow whatever the arguments.
fn allow_without_args(s: &Seccomp, arch: Arch, nr: u32) -> bool {
    let rules = s.for_arch(arch);
    match rules.iter().find(|r| r.nrs.contains(&nr)) {
        Some(r) => r.cond.is_none() && r.action == Action::Allow,
        None => s.default_action == Action::Allow,
    }
}

pub fn stats(s: &Seccomp, prog: &[Insn], host: Host) -> Stats {
    let mut abis = Vec::new();
    for &arch in host.abis() {
        if !s.arches.contains(&arch) {
            continue;
        }
        let (mut allowed, mut total, mut worst, mut indep, mut cached) = (0, 0, 0, 0, 0);
        let mut not_cached = Vec::new();
        for d in catalogue::syscalls() {
            let Some(nr) = d.nr(arch) else { continue };
            let data = Data {
                nr,
                arch: arch.audit_arch(),
                ..Data::default()
            };
            let run = bpf::run(prog, &data);
            if bpf::ret_action(run.ret) != Action::Allow {
                continue;
            }
            allowed += 1;
            total += run.steps;
            worst = worst.max(run.steps);
            if allow_without_args(s, arch, nr) {
                indep += 1;
                // The kernel never caches x32 numbers (they carry bit 30).
                if cache_allows(prog, arch.audit_arch(), nr) && arch != Arch::X32 {
                    cached += 1;
                } else if arch != Arch::X32 {
                    not_cached.push(d.name);
                }
            }
        }
        abis.push(AbiStats {
            arch: arch.name(),
            allowed,
            mean_insns: if allowed == 0 {
                0.0
            } else {
                total as f64 / allowed as f64
            },
            worst_insns: worst,
            argument_independent: indep,
            cache_eligible: cached,
            not_cached,
        });
    }
    Stats {
        host: host.name(),
        length: prog.len(),
        abis,
    }
}
