//! The reference backend: the resolved policy compiled through the system libseccomp.
//!
//! kakoi rules are ordered (first match decides); libseccomp rules are an unordered union.
//! The translation makes them disjoint: for each syscall, rule k is added with the
//! condition `C_k && !C_j` for every earlier rule j with a different action, in disjunctive
//! normal form, one libseccomp
//! rule per conjunction; rules whose action equals the default are left out (nothing
//! matching is the same as the default). Each ABI is compiled in its own filter and the
//! filters are merged, so per-arch conditions and argument positions stay exact.
//!
//! Limits of libseccomp 2.5 that this backend reports as errors rather than paper over:
//! one comparison per argument in a rule (several are rewritten into intervals where
//! possible), no negated masked comparison, and no argument rule on the direct socket
//! calls of i386 (libseccomp insists on also rewriting them into `socketcall`). libseccomp
//! also compares all 64 bits of an argument for `!=`, `<`, `<=`, `>`, `>=`; for a 32-bit
//! argument that is exact only when the high half is zero or a sign extension, which is
//! what libc passes (equality is compared on the low half with a mask, exactly).

use std::io::{Read, Seek};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{Action, CmpOpOrd, ConcreteCmp, ConcreteCond, Origin, Seccomp, SeccompFlag};

use super::{Host, Program};

/// Why a policy could not be compiled through libseccomp.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{origin}: libseccomp cannot express this rule on {arch}: {why}")]
    Inexpressible {
        origin: String,
        arch: &'static str,
        why: String,
    },
    #[error("libseccomp refused {what}: {source}")]
    Libseccomp {
        what: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("cannot export the BPF program: {0}")]
    Export(#[source] std::io::Error),
}

fn lib<T>(
    what: impl FnOnce() -> String,
    r: Result<T, libseccomp::error::SeccompError>,
) -> Result<T, Error> {
    r.map_err(|source| Error::Libseccomp {
        what: what(),
        source,
    })
}

fn scmp_arch(a: Arch) -> ScmpArch {
    match a {
        Arch::X86_64 => ScmpArch::X8664,
        Arch::X86 => ScmpArch::X86,
        Arch::X32 => ScmpArch::X32,
        Arch::Aarch64 => ScmpArch::Aarch64,
    }
}

fn scmp_action(a: Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(i32::from(e)),
        Action::KillProcess => ScmpAction::KillProcess,
        Action::KillThread => ScmpAction::KillThread,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
        Action::Trace(n) => ScmpAction::Trace(n),
        Action::Notify => ScmpAction::Notify,
    }
}

/// A literal of a DNF conjunction.
type Conj = Vec<ConcreteCmp>;

const MAX_CONJUNCTIONS: usize = 256;

fn origin_text(o: &Origin) -> String {
    format!("{}:{}:{}", o.file, o.line, o.column)
}

/// Disjunctive normal form of `c` (or of its negation).
fn dnf(c: &ConcreteCond, negate: bool) -> Result<Vec<Conj>, String> {
    Ok(match (c, negate) {
        (ConcreteCond::Const(b), n) => {
            if *b != n {
                vec![vec![]]
            } else {
                vec![]
            }
        }
        (ConcreteCond::Not(c), n) => dnf(c, !n)?,
        (ConcreteCond::Or(v), false) | (ConcreteCond::And(v), true) => {
            let mut out = Vec::new();
            for c in v {
                out.extend(dnf(c, negate)?);
            }
            out
        }
        (ConcreteCond::And(v), false) | (ConcreteCond::Or(v), true) => {
            let mut acc: Vec<Conj> = vec![vec![]];
            for c in v {
                let d = dnf(c, negate)?;
                let mut next = Vec::new();
                for a in &acc {
                    for b in &d {
                        let mut x = a.clone();
                        x.extend(b.iter().copied());
                        next.push(x);
                    }
                }
                if next.len() > MAX_CONJUNCTIONS {
                    return Err(format!(
                        "the condition expands to more than {MAX_CONJUNCTIONS} libseccomp rules"
                    ));
                }
                acc = next;
            }
            acc
        }
        (ConcreteCond::Cmp(c), negate) => {
            let op = if !negate {
                c.op
            } else {
                match c.op {
                    CmpOpOrd::Eq => CmpOpOrd::Ne,
                    CmpOpOrd::Ne => CmpOpOrd::Eq,
                    CmpOpOrd::Lt => CmpOpOrd::Ge,
                    CmpOpOrd::Le => CmpOpOrd::Gt,
                    CmpOpOrd::Gt => CmpOpOrd::Le,
                    CmpOpOrd::Ge => CmpOpOrd::Lt,
                }
            };
            if c.mask.is_some() && op != CmpOpOrd::Eq {
                return Err(
                    "a masked comparison other than `==` (libseccomp has only masked equality)"
                        .into(),
                );
            }
            vec![vec![ConcreteCmp { op, ..*c }]]
        }
    })
}

/// Rewrite a conjunction so that each argument is compared at most once, as libseccomp
/// requires: several plain comparisons of one argument become the union of the intervals
/// they leave open (`x != 38 && x != 40` -> `x <= 37 || x == 39 || x >= 41`); masked
/// equalities with disjoint masks merge into one. Returns the equivalent disjunction.
fn one_cmp_per_arg(conj: &Conj) -> Result<Vec<Conj>, String> {
    let mut groups: std::collections::BTreeMap<u8, Vec<ConcreteCmp>> = Default::default();
    for c in conj {
        groups.entry(c.index).or_default().push(*c);
    }
    let mut acc: Vec<Conj> = vec![vec![]];
    for (index, g) in groups {
        let options: Vec<Option<ConcreteCmp>> = if g.len() == 1 {
            vec![Some(g[0])]
        } else if g.iter().all(|c| c.mask.is_none()) {
            let low32 = g[0].low32;
            let max = if low32 { 0xffff_ffff } else { u64::MAX };
            let mut set: Vec<(u64, u64)> = vec![(0, max)];
            for c in &g {
                let v = c.value & max;
                let allowed: Vec<(u64, u64)> = match c.op {
                    CmpOpOrd::Eq => vec![(v, v)],
                    CmpOpOrd::Ne => [(v > 0).then(|| (0, v - 1)), (v < max).then(|| (v + 1, max))]
                        .into_iter()
                        .flatten()
                        .collect(),
                    CmpOpOrd::Lt => (v > 0).then(|| (0, v - 1)).into_iter().collect(),
                    CmpOpOrd::Le => vec![(0, v)],
                    CmpOpOrd::Gt => (v < max).then(|| (v + 1, max)).into_iter().collect(),
                    CmpOpOrd::Ge => vec![(v, max)],
                };
                let mut next = Vec::new();
                for &(a, b) in &set {
                    for &(c2, d) in &allowed {
                        let (lo, hi) = (a.max(c2), b.min(d));
                        if lo <= hi {
                            next.push((lo, hi));
                        }
                    }
                }
                set = next;
            }
            let mut opts = Vec::new();
            for (lo, hi) in set {
                let mk = |op, value| {
                    Some(ConcreteCmp {
                        index,
                        low32,
                        signed32: g[0].signed32,
                        mask: None,
                        op,
                        value,
                    })
                };
                opts.push(if lo == 0 && hi == max {
                    None
                } else if lo == hi {
                    mk(CmpOpOrd::Eq, lo)
                } else if lo == 0 {
                    mk(CmpOpOrd::Le, hi)
                } else if hi == max {
                    mk(CmpOpOrd::Ge, lo)
                } else {
                    return Err(format!("argument {index} must lie in {lo:#x}..={hi:#x}, which takes two comparisons"));
                });
            }
            opts
        } else if g.iter().all(|c| c.op == CmpOpOrd::Eq && c.mask.is_some()) {
            let (mut mask, mut value) = (0u64, 0u64);
            for c in &g {
                let m = c.mask.expect("checked");
                if mask & m != 0 {
                    return Err(format!(
                        "two masked comparisons of argument {index} with overlapping masks"
                    ));
                }
                mask |= m;
                value |= c.value & m;
            }
            vec![Some(ConcreteCmp {
                index,
                low32: g[0].low32,
                signed32: g[0].signed32,
                mask: Some(mask),
                op: CmpOpOrd::Eq,
                value,
            })]
        } else {
            return Err(format!(
                "a mix of masked and plain comparisons of argument {index}"
            ));
        };
        let mut next = Vec::new();
        for a in &acc {
            for o in &options {
                let mut x = a.clone();
                x.extend(o.iter().copied());
                next.push(x);
            }
        }
        acc = next;
    }
    Ok(acc)
}

fn arg_compare(c: &ConcreteCmp, arch: Arch) -> ScmpArgCompare {
    let low = if c.low32 { 0xffff_ffff } else { u64::MAX };
    let op = match (c.op, c.mask) {
        (CmpOpOrd::Eq, Some(m)) => ScmpCompareOp::MaskedEqual(m & low),
        // Equality on a 32-bit argument: compare the low half only, exactly.
        (CmpOpOrd::Eq, None) if c.low32 && arch.is_64bit() => ScmpCompareOp::MaskedEqual(low),
        (CmpOpOrd::Eq, None) => ScmpCompareOp::Equal,
        (CmpOpOrd::Ne, _) => ScmpCompareOp::NotEqual,
        (CmpOpOrd::Lt, _) => ScmpCompareOp::Less,
        (CmpOpOrd::Le, _) => ScmpCompareOp::LessOrEqual,
        (CmpOpOrd::Gt, _) => ScmpCompareOp::Greater,
        (CmpOpOrd::Ge, _) => ScmpCompareOp::GreaterEqual,
    };
    // A sign-extended negative 32-bit constant is what libc passes for a negative int.
    let datum = if c.low32
        && c.signed32
        && arch.is_64bit()
        && c.op != CmpOpOrd::Eq
        && c.value & 0x8000_0000 != 0
        && c.value <= 0xffff_ffff
    {
        c.value | 0xffff_ffff_0000_0000
    } else if c.low32 {
        c.value & low
    } else {
        c.value
    };
    ScmpArgCompare::new(u32::from(c.index), op, datum)
}

/// Compile one ABI into its own single-arch filter. Syscalls the system libseccomp does
/// not know are left to the default action and listed in `skipped`.
fn arch_filter(
    s: &Seccomp,
    arch: Arch,
    skipped: &mut Vec<String>,
) -> Result<ScmpFilterContext, Error> {
    let mut ctx = lib(
        || "a new filter".into(),
        ScmpFilterContext::new(scmp_action(s.default_action)),
    )?;
    let native = ScmpArch::native();
    lib(
        || format!("arch {}", arch.name()),
        ctx.add_arch(scmp_arch(arch)),
    )?;
    if native != scmp_arch(arch) {
        lib(
            || "removing the native arch".into(),
            ctx.remove_arch(native),
        )?;
    }
    lib(
        || "the bad-arch action".into(),
        ctx.set_act_badarch(scmp_action(s.bad_arch_action)),
    )?;
    let rules = s.for_arch(arch);
    // Group rule indexes by syscall number, keeping order.
    let mut by_nr: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, r) in rules.iter().enumerate() {
        for nr in &r.nrs {
            by_nr.entry(*nr).or_default().push(i);
        }
    }
    for (nr, idxs) in by_nr {
        // libseccomp takes syscall numbers in the *native* numbering (negative pseudo
        // numbers for calls the native arch lacks) and translates them to each arch by
        // name, so pass the name's native resolution.
        let name = catalogue::syscall_by_nr(arch, nr)
            .expect("numbers come from the catalogue")
            .name;
        let Ok(sys) = ScmpSyscall::from_name(name) else {
            skipped.push(format!("{}:{name}", arch.name()));
            continue;
        };
        // Conditions of earlier conditional rules, with their actions.
        let mut earlier: Vec<(Action, &ConcreteCond)> = Vec::new();
        // libseccomp insists on rewriting i386's direct socket calls into `socketcall`
        // when they carry argument checks, and refuses them in exact mode.
        const I386_SOCKET_CALLS: std::ops::RangeInclusive<u32> = 359..=373;
        if arch == Arch::X86 && I386_SOCKET_CALLS.contains(&nr) {
            if let Some(r) = idxs.iter().map(|&i| &rules[i]).find(|r| r.cond.is_some()) {
                return Err(Error::Inexpressible {
                    origin: origin_text(&s.rules[r.rule].origin),
                    arch: arch.name(),
                    why: format!("libseccomp cannot check the arguments of i386's direct `{name}`; kakoi's own generator can"),
                });
            }
        }
        for i in idxs {
            let r = &rules[i];
            let origin = origin_text(&s.rules[r.rule].origin);
            let inexpressible = |why: String| Error::Inexpressible {
                origin: origin.clone(),
                arch: arch.name(),
                why,
            };
            if r.action != s.default_action {
                let mut parts = vec![r.cond.clone().unwrap_or(ConcreteCond::Const(true))];
                // Only earlier rules with a different action need excluding: where one
                // of the same action matches first, the outcome is the same.
                parts.extend(
                    earlier
                        .iter()
                        .filter(|(a, _)| *a != r.action)
                        .map(|(_, c)| ConcreteCond::Not(Box::new((*c).clone()))),
                );
                let conjs = dnf(&ConcreteCond::And(parts), false).map_err(inexpressible)?;
                let mut flat = Vec::new();
                for conj in &conjs {
                    // libseccomp treats x32 as a 32-bit ABI and compares only the low
                    // word, but x32 passes 64-bit arguments (`loff_t`, `long`) whole.
                    if arch == Arch::X32 && conj.iter().any(|c| !c.low32) {
                        return Err(inexpressible(
                            "libseccomp compares only the low 32 bits of a 64-bit argument on x32"
                                .into(),
                        ));
                    }
                    flat.extend(one_cmp_per_arg(conj).map_err(|why| inexpressible(why.clone()))?);
                }
                for conj in flat {
                    let cmps: Vec<ScmpArgCompare> =
                        conj.iter().map(|c| arg_compare(c, arch)).collect();
                    lib(
                        || format!("the rule at {origin} for `{name}`"),
                        ctx.add_rule_conditional_exact(scmp_action(r.action), sys, &cmps),
                    )?;
                }
            }
            match &r.cond {
                None => break, // later rules for this syscall can never match
                Some(c) => earlier.push((r.action, c)),
            }
        }
    }
    Ok(ctx)
}

/// Compile the policy for one host.
pub fn compile(s: &Seccomp, host: Host) -> Result<Program, Error> {
    let mut skipped = Vec::new();
    let mut merged: Option<ScmpFilterContext> = None;
    for &arch in host.abis() {
        if !s.arches.contains(&arch) {
            continue;
        }
        let f = arch_filter(s, arch, &mut skipped)?;
        match &mut merged {
            None => merged = Some(f),
            Some(m) => {
                lib(|| format!("merging {}", arch.name()), m.merge(f))?;
            }
        }
    }
    let mut ctx = match merged {
        Some(m) => m,
        None => arch_filter(s, host.abis()[0], &mut skipped)?,
    };
    for f in &s.flags {
        match f {
            SeccompFlag::Log => lib(|| "the log flag".into(), ctx.set_ctl_log(true))?,
            SeccompFlag::SpecAllow => lib(|| "the spec-allow flag".into(), ctx.set_ctl_ssb(true))?,
            SeccompFlag::Tsync => lib(|| "the tsync flag".into(), ctx.set_ctl_tsync(true))?,
        };
    }
    let mut file = tempfile::tempfile().map_err(Error::Export)?;
    lib(|| "the export".into(), ctx.export_bpf(&file))?;
    let mut bpf = Vec::new();
    file.rewind().map_err(Error::Export)?;
    file.read_to_end(&mut bpf).map_err(Error::Export)?;
    Ok(Program { host, bpf, skipped })
}
