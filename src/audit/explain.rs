//! `kakoi explain`: the action a seccomp filter takes for one call, and the reason, for
//! each kind of input: a policy (the deciding rule's statement), a Docker/OCI JSON
//! profile (the deciding entry's JSON pointer), a raw BPF program (run on the call).

use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{Action, Policy, Seccomp};

use crate::bpf::Insn;

/// A filter to explain a call against.
pub enum Filter {
    Policy(Box<Policy>),
    /// A JSON profile, as read for runc (`input` names it in the reason).
    Json {
        input: String,
        seccomp: Seccomp,
    },
    /// A validated program.
    Program(Vec<Insn>),
}

/// What the filter does with the call, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    pub action: Action,
    pub because: String,
}

/// The decision of `filter` for syscall `nr` of `arch` with arguments `args`.
pub fn explain(filter: &Filter, arch: Arch, nr: u32, args: &[u64; 6]) -> Explained {
    let (action, because) = match filter {
        Filter::Program(insns) => {
            let data = crate::bpf::Data {
                nr,
                arch: arch.audit_arch(),
                args: *args,
                ip: 0,
            };
            let run = crate::bpf::run(insns, &data);
            (
                crate::bpf::ret_action(run.ret),
                format!(
                    "the program returns {:#010x} after {} instructions",
                    run.ret, run.steps
                ),
            )
        }
        Filter::Json { input, seccomp } => {
            let d = seccomp.decide(arch.audit_arch(), nr, args);
            let why = match d.rule {
                // The import records an entry's index (1-based) as its line.
                Some(i) => format!("{input}: /syscalls/{}", seccomp.rules[i].origin.line - 1),
                None => format!("{input}: defaultAction"),
            };
            (d.action, why)
        }
        Filter::Policy(p) => {
            let d = p.seccomp.decide(arch.audit_arch(), nr, args);
            let why = match d.rule {
                Some(i) => format!("{}: rule {}", p.seccomp.rules[i].origin, i + 1),
                None if !p.seccomp.arches.contains(&arch) => format!(
                    "{} is not a target architecture of the policy: the `bad-arch` action",
                    arch.name()
                ),
                None if catalogue::syscall_by_nr(arch, nr).is_none() => {
                    "no syscall has this number: the `unknown` action".into()
                }
                None => "no rule matches: the `default` action".into(),
            };
            (d.action, why)
        }
    };
    Explained { action, because }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_input_kind_names_what_decided() {
        let (_, c) = policy_lang::check_str(
            "p.kakoi",
            "seccomp {\n default errno(EPERM)\n allow read\n}\n",
        );
        let p = c.policy.unwrap();
        let read = catalogue::syscall("read")
            .unwrap()
            .nr(Arch::X86_64)
            .unwrap();
        let e = explain(
            &Filter::Policy(Box::new(p.clone())),
            Arch::X86_64,
            read,
            &[0; 6],
        );
        assert_eq!(e.action, Action::Allow);
        assert!(e.because.starts_with("p.kakoi:3:"), "{}", e.because);
        let e = explain(
            &Filter::Policy(Box::new(p.clone())),
            Arch::X86_64,
            read + 1,
            &[0; 6],
        );
        assert_eq!(e.because, "no rule matches: the `default` action");
        let e = explain(
            &Filter::Policy(Box::new(p.clone())),
            Arch::Aarch64,
            63,
            &[0; 6],
        );
        assert!(
            e.because.contains("not a target architecture"),
            "{}",
            e.because
        );
        let prog = crate::seccomp::compile_checked(
            &p.seccomp,
            crate::seccomp::Host::X86_64,
            crate::seccomp::Backend::Kakoi,
        )
        .unwrap();
        let insns = crate::bpf::decode(&prog.bpf).unwrap();
        let e = explain(&Filter::Program(insns), Arch::X86_64, read, &[0; 6]);
        assert_eq!(e.action, Action::Allow);
        assert!(
            e.because.starts_with("the program returns 0x7fff0000"),
            "{}",
            e.because
        );
    }
}
