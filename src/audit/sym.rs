//! Symbolic execution of a seccomp program: for a known `arch` and syscall `nr`, every
//! action the program can return when the arguments (and instruction pointer) are unknown.
//! Seccomp programs only jump forward, so every path ends; each comparison on an unknown
//! value explores both branches.

use std::collections::BTreeSet;

use policy_lang::catalogue::{self, Arch};

use crate::bpf::{self, Insn};

pub use super::machine::{class_of, lets_through, Budget, Class};
use super::machine::{step, Domain, Regs, Stop};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Known(u32),
    Unknown,
}

impl Domain for Val {
    fn known(v: u32) -> Self {
        Val::Known(v)
    }
    fn word(_: u32) -> Self {
        Val::Unknown
    }
    fn alu(code: u16, a: Self, src: Self) -> Self {
        match (a, src) {
            (Val::Known(a), Val::Known(s)) => Val::Known(bpf::alu(code, a, s)),
            // Negation and `& 0`-like identities are not tracked: unknown.
            _ => Val::Unknown,
        }
    }
}

/// Every return value reachable for (`audit_arch`, `nr`), arguments unknown. `None` when
/// the path count exceeds the limit (the caller treats that as conditional).
pub fn outcomes(prog: &[Insn], audit_arch: u32, nr: u32) -> Option<BTreeSet<u32>> {
    outcomes_within(prog, audit_arch, nr, &Budget::new(Budget::SYSCALL))
}

/// [`outcomes`], following at most what `budget` has left (`None` when it runs out).
pub fn outcomes_within(
    prog: &[Insn],
    audit_arch: u32,
    nr: u32,
    budget: &Budget,
) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    let mut paths = 0usize;
    let mut stack = vec![(0usize, Regs::<Val>::new())];
    while let Some((mut pc, mut r)) = stack.pop() {
        paths += 1;
        if paths > 20_000 {
            return None;
        }
        while let Some(i) = prog.get(pc).copied() {
            if !budget.step() {
                return None;
            }
            pc += 1;
            let src = match step(i, &mut pc, &mut r, audit_arch, nr) {
                None => continue,
                Some(Stop::Branch(src)) => src,
                Some(Stop::Return) => {
                    if i.code & 0x18 == bpf::A {
                        match r.a {
                            Val::Known(v) => {
                                out.insert(v);
                            }
                            // An unknown return value: it could be anything, allow included.
                            Val::Unknown => {
                                out.insert(bpf::RET_ALLOW);
                                out.insert(bpf::RET_KILL_PROCESS);
                            }
                        }
                    } else {
                        out.insert(i.k);
                    }
                    break;
                }
            };
            match (r.a, src) {
                (Val::Known(av), Val::Known(s)) => {
                    pc += usize::from(if bpf::jump_taken(i.code, av, s) {
                        i.jt
                    } else {
                        i.jf
                    });
                }
                _ if i.jt == i.jf => pc += usize::from(i.jt),
                _ => {
                    stack.push((pc + usize::from(i.jt), r));
                    pc += usize::from(i.jf);
                }
            }
        }
    }
    Some(out)
}

/// The class of (`audit_arch`, `nr`). Outcomes of paths that no arguments at all can take
/// (`arg == 5` then `arg == 6`) do not count: a syscall the symbolic run finds mixed is
/// checked path by path ([`super::paths::reachable_class`]) before it is called
/// conditional.
pub fn classify(prog: &[Insn], audit_arch: u32, nr: u32) -> Class {
    classify_within(prog, audit_arch, nr, &Budget::new(Budget::SYSCALL))
}

/// [`classify`] within `budget` (conditional when it runs out).
pub fn classify_within(prog: &[Insn], audit_arch: u32, nr: u32, budget: &Budget) -> Class {
    let Some(rets) = outcomes_within(prog, audit_arch, nr, budget) else {
        return Class::Conditional;
    };
    match class_of(&rets) {
        Class::Conditional => super::paths::reachable_class_within(
            prog,
            audit_arch,
            nr,
            &|_| super::paths::Width::Full,
            budget,
        )
        .unwrap_or(Class::Conditional),
        c => c,
    }
}

/// The decision table of one ABI: every syscall the catalogue knows for it, by name.
pub fn table(prog: &[Insn], arch: Arch) -> std::collections::BTreeMap<&'static str, Class> {
    table_within(prog, arch, &Budget::new(Budget::PROGRAM))
}

/// [`table`] within `budget`, shared with the program's other ABIs.
pub fn table_within(
    prog: &[Insn],
    arch: Arch,
    budget: &Budget,
) -> std::collections::BTreeMap<&'static str, Class> {
    catalogue::syscalls()
        .iter()
        .filter_map(|d| {
            d.nr(arch)
                .map(|nr| (d.name, classify_within(prog, arch.audit_arch(), nr, budget)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::{codegen, Host};
    use policy_lang::ir::Action;

    fn compile(text: &str) -> Vec<Insn> {
        let (_, c) = policy_lang::check_str("t.kakoi", text);
        let p = c.policy.expect("valid");
        bpf::decode(&codegen::compile(&p.seccomp, Host::X86_64).bpf).unwrap()
    }

    #[test]
    fn classes_follow_the_policy() {
        let prog = compile(
            "seccomp {\n default errno(EPERM)\n allow read\n allow socket if family == AF_INET\n kill-process ptrace\n}\n",
        );
        let t = table(&prog, Arch::X86_64);
        assert_eq!(t["read"], Class::Allow);
        assert_eq!(t["socket"], Class::Conditional);
        assert_eq!(t["ptrace"], Class::Deny(Action::KillProcess));
        assert_eq!(t["write"], Class::Deny(Action::Errno(1)));
        // The default targets x86_64 only: i386 is a foreign ABI.
        assert!(table(&prog, Arch::X86).values().all(|c| !c.allows()));
    }
}
