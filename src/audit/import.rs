//! `kakoi import`: a Docker/OCI seccomp JSON profile or a raw BPF program as a readable
//! kakoi policy, checked to compile to the same decisions as the input.
//!
//! JSON profiles keep their rules (argument conditions included). Raw BPF is decompiled
//! per ABI: a syscall whose decision does not depend on its arguments becomes a plain rule
//! (from the decision tables, [`sym`]); one that does is followed path by path
//! ([`paths`]), and every reachable path whose action is not the default becomes a rule
//! whose condition is the comparisons the path made. The result is checked: same decision
//! tables, and for each argument-dependent syscall, the same action on a witness of every
//! path of both programs.
use std::collections::{BTreeMap, BTreeSet};

use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{Action, Cond, ConstExpr, Seccomp};

use super::model::SeccompView;
use super::paths::{self, Constraint, Test, Width};
use super::sym::{self, Class};
use crate::bpf;

fn const_src(c: &ConstExpr) -> String {
    match c {
        ConstExpr::Num(n) if *n > 4096 => format!("{n:#x}"),
        ConstExpr::Num(n) => n.to_string(),
        ConstExpr::Name(n) => n.clone(),
        ConstExpr::And(a, b) => format!("({} & {})", const_src(a), const_src(b)),
        ConstExpr::Or(a, b) => format!("({} | {})", const_src(a), const_src(b)),
    }
}

/// A condition in the policy language (fully parenthesised where it nests).
pub fn cond_src(c: &Cond) -> String {
    match c {
        Cond::Arg(a) => match &a.mask {
            Some(m) => format!(
                "{} & {} {} {}",
                a.arg,
                const_src(m),
                a.op.as_str(),
                const_src(&a.value)
            ),
            None => format!("{} {} {}", a.arg, a.op.as_str(), const_src(&a.value)),
        },
        Cond::Arch(v) => format!(
            "arch in {{{}}}",
            v.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
        ),
        Cond::Not(c) => format!("!({})", cond_src(c)),
        Cond::And(v) => v.iter().map(nested).collect::<Vec<_>>().join(" && "),
        Cond::Or(v) => v.iter().map(nested).collect::<Vec<_>>().join(" || "),
    }
}

fn nested(c: &Cond) -> String {
    match c {
        Cond::And(_) | Cond::Or(_) => format!("({})", cond_src(c)),
        _ => cond_src(c),
    }
}

fn names_src(v: &[&str]) -> String {
    if v.len() == 1 {
        return v[0].to_string();
    }
    if v.len() <= 8 {
        return format!("[{}]", v.join(", "));
    }
    let lines: Vec<String> = v
        .chunks(8)
        .map(|c| format!("        {},", c.join(", ")))
        .collect();
    format!("[\n{}\n    ]", lines.join("\n"))
}

/// The `seccomp` section for a resolved filter.
pub fn seccomp_src(s: &Seccomp) -> String {
    let mut o = String::from("seccomp {\n");
    o.push_str(&format!("    default {}\n", s.default_action.to_source()));
    o.push_str(&format!("    bad-arch {}\n", s.bad_arch_action.to_source()));
    o.push_str(&format!("    unknown {}\n", s.unknown_action.to_source()));
    o.push_str(&format!(
        "    arches [{}]\n",
        s.arches
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !s.acknowledged.is_empty() {
        let names: Vec<&str> = s.acknowledged.iter().map(|m| m.name()).collect();
        o.push_str(
            "    # i386 programs can make the calls these multiplex with any arguments: the\n",
        );
        o.push_str("    # argument rules below hold for the direct calls only (as under runc)\n");
        o.push_str(&format!("    acknowledge {}\n", names_src(&names)));
    }
    for r in &s.rules {
        let names: Vec<&str> = r.syscalls.iter().map(String::as_str).collect();
        o.push_str(&format!(
            "    {} {}",
            r.action.to_source(),
            names_src(&names)
        ));
        if let Some(c) = &r.cond {
            o.push_str(&format!(" if {}", cond_src(c)));
        }
        o.push('\n');
    }
    o.push_str("}\n");
    o
}

/// Why an import failed.
#[derive(Debug)]
pub enum ImportError {
    /// The input has no seccomp filter, or holds what the language or the decompiler
    /// cannot say (the message explains).
    Refused(String),
    /// The generated policy's decisions differ from the input's: a bug in the importer,
    /// never printed as a result.
    Mismatch(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Refused(m) => f.write_str(m),
            ImportError::Mismatch(m) => write!(f, "the imported policy would differ: {m}"),
        }
    }
}

/// The policy text `kakoi import` writes for `s` (named `input` in its header), checked to
/// have the same decision tables as the input on every ABI the input enables.
///
/// `only`, when not empty, restricts the policy (and the check) to those ABIs.
pub fn import(s: &super::Subject, input: &str, only: &[Arch]) -> Result<String, ImportError> {
    let Some(v) = s.seccomp() else {
        return Err(ImportError::Refused(
            "it has no seccomp filter to import".into(),
        ));
    };
    if v.filters > 1 {
        return Err(ImportError::Refused(format!(
            "it has {} stacked seccomp filters; a policy describes one",
            v.filters
        )));
    }
    if v.too_complex {
        return Err(ImportError::Refused(format!(
            "it is too complex to follow exactly: its paths take more than {} instructions to follow (SCMP012)",
            super::sym::Budget::PROGRAM
        )));
    }
    let mut v = v.clone();
    if !only.is_empty() {
        v.tables.retain(|a, _| only.contains(a));
        if let Some(r) = &mut v.rules {
            r.arches.retain(|a| only.contains(a));
            r.acknowledged =
                policy_lang::ir::bypassable_muxes(&r.rules, r.default_action, &r.arches);
        }
        if Arch::ALL.iter().all(|a| !v.abi_enabled(*a)) {
            return Err(ImportError::Refused(format!(
                "the input enables none of {}",
                only.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let v = &v;
    let body = match &v.rules {
        Some(rules) => seccomp_src(rules),
        None => acknowledge_open_muxes(from_tables(v).map_err(ImportError::Refused)?),
    };
    let mut text = format!("# Imported by `kakoi import` from {input}.\n");
    for n in &s.notes {
        text.push_str(&format!("# note: {n}\n"));
    }
    for m in v.rules.iter().flat_map(|r| &r.acknowledged) {
        text.push_str(&format!(
            "# note: on x86 the profile's argument rules on calls that `{m}` multiplexes hold for the direct calls only: i386 programs can make them through `{m}`, whose arguments seccomp cannot see, as under runc (`acknowledge {m}`; audit finding SCMP010)\n",
            m = m.name()
        ));
    }
    text.push_str("kakoi 1\n\n");
    text.push_str(&body);
    verify(&text, v)?;
    Ok(text)
}

/// A decompiled program that checks the arguments of an i386 socket or IPC call while
/// leaving its multiplexer open means what `acknowledge` says: the section gets the
/// statement (after `arches`) for exactly the multiplexers the rules need it for
/// ([`policy_lang::ir::bypassable_muxes`], on the section resolved with both).
fn acknowledge_open_muxes(body: String) -> String {
    let with = |names: &[&str]| -> Option<String> {
        let i = body.find("\n    arches [")? + 1;
        let at = i + body[i..].find('\n')? + 1;
        Some(format!(
            "{}    # i386 programs can make the calls these multiplex with any arguments: the\n    # argument rules below hold for the direct calls only\n    acknowledge {}\n{}",
            &body[..at],
            names_src(names),
            &body[at..]
        ))
    };
    let Some(both) = with(&["socketcall", "ipc"]) else {
        return body;
    };
    let (_, checked) = policy_lang::check_str("imported.kakoi", &format!("kakoi 1\n{both}"));
    let Some(p) = checked.policy else {
        return body;
    };
    let s = &p.seccomp;
    let needed: Vec<&str> =
        policy_lang::ir::bypassable_muxes(&s.rules, s.default_action, &s.arches)
            .into_iter()
            .map(|m| m.name())
            .collect();
    if needed.is_empty() {
        return body;
    }
    with(&needed).unwrap_or(body)
}

/// Decompile an argument-independent program from its decision tables.
pub fn from_tables(v: &SeccompView) -> Result<String, String> {
    let arches: Vec<Arch> = Arch::ALL
        .into_iter()
        .filter(|a| v.abi_enabled(*a))
        .collect();
    if arches.is_empty() {
        return Err("the program allows no syscall on any ABI".into());
    }
    let mut conditional = BTreeSet::new();
    // The default: the most common denial on the enabled ABIs.
    let mut counts: BTreeMap<Action, usize> = BTreeMap::new();
    for a in &arches {
        for c in v.tables[a].values() {
            match c {
                Class::Deny(x) => *counts.entry(*x).or_default() += 1,
                Class::Conditional => {}
                Class::Allow => {}
            }
        }
    }
    let default = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(a, _)| *a)
        .unwrap_or(Action::Errno(1));
    let bad_arch = match sym::classify(&v.prog, 0x1234_5678, 39) {
        Class::Deny(a) => a,
        _ => {
            return Err(
                "the program does not check the architecture: a policy cannot express that".into(),
            )
        }
    };
    let unknown = match sym::classify(
        &v.prog,
        arches[0].audit_arch(),
        1023 | arches[0].nr_offset(),
    ) {
        Class::Deny(a) => a,
        Class::Allow => Action::Allow,
        Class::Conditional => default,
    };
    // (action, syscall) -> ABIs where it holds.
    let mut rules: BTreeMap<(Action, &str), BTreeSet<Arch>> = BTreeMap::new();
    for a in &arches {
        for (name, c) in &v.tables[a] {
            let action = match c {
                Class::Allow => Action::Allow,
                Class::Deny(x) => *x,
                Class::Conditional => {
                    conditional.insert((*a, *name));
                    continue;
                }
            };
            if action != default {
                rules.entry((action, name)).or_default().insert(*a);
            }
        }
    }
    // Argument-dependent syscalls: one rule per path that does not end in the default.
    let mut cond_rules: BTreeMap<(String, Action, String), BTreeSet<Arch>> = BTreeMap::new();
    for &(arch, name) in &conditional {
        for (action, cond) in decompile(&v.prog, arch, name, default)
            .map_err(|e| format!("cannot decompile {}:{name}: {e}", arch.name()))?
        {
            cond_rules
                .entry((name.to_string(), action, cond))
                .or_default()
                .insert(arch);
        }
    }
    // Group names with the same action and ABIs into one rule.
    let mut grouped: BTreeMap<(Action, Vec<Arch>), Vec<&str>> = BTreeMap::new();
    for ((action, name), abis) in rules {
        grouped
            .entry((action, abis.into_iter().collect()))
            .or_default()
            .push(name);
    }
    let mut o = String::from("seccomp {\n");
    o.push_str(&format!("    default {}\n", default.to_source()));
    o.push_str(&format!("    bad-arch {}\n", bad_arch.to_source()));
    o.push_str(&format!("    unknown {}\n", unknown.to_source()));
    o.push_str(&format!(
        "    arches [{}]\n",
        arches
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for ((action, abis), names) in grouped {
        o.push_str(&format!("    {} {}", action.to_source(), names_src(&names)));
        // A rule naming a syscall absent on an ABI does not apply there, so the
        // condition is needed only where the name exists on an ABI it must not cover.
        let needs = arches
            .iter()
            .any(|a| !abis.contains(a) && names.iter().any(|n| v.tables[a].contains_key(n)));
        if needs {
            o.push_str(&format!(
                " if arch in {{{}}}",
                abis.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        o.push('\n');
    }
    for ((name, action, cond), abis) in cond_rules {
        let needs = arches
            .iter()
            .any(|a| !abis.contains(a) && v.tables[a].contains_key(name.as_str()));
        let arch_test = needs.then(|| {
            format!(
                "arch in {{{}}}",
                abis.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
            )
        });
        let parts: Vec<String> = arch_test
            .into_iter()
            .chain((!cond.is_empty()).then_some(cond))
            .collect();
        o.push_str(&format!("    {} {name}", action.to_source()));
        if !parts.is_empty() {
            o.push_str(&format!(" if {}", parts.join(" && ")));
        }
        o.push('\n');
    }
    o.push_str("}\n");
    Ok(o)
}

/// The rules for one argument-dependent syscall on `arch`: (action, condition) for each
/// reachable path not ending in `default`. An empty condition means "always" (every
/// comparison on the path is implied by how C callers pass arguments).
pub(crate) fn decompile(
    prog: &[bpf::Insn],
    arch: Arch,
    name: &str,
    default: Action,
) -> Result<Vec<(Action, String)>, String> {
    let nr = catalogue::syscall(name)
        .and_then(|d| d.nr(arch))
        .ok_or("not in the catalogue")?;
    let width = paths::widths(name, arch);
    let mut reachable: Vec<(Action, Vec<Constraint>)> = Vec::new();
    for p in paths::paths(prog, arch.audit_arch(), nr, 4096)? {
        let action = bpf::ret_action(p.ret);
        match paths::witness(&p, &width) {
            Ok(_) => {}
            Err(paths::NoWitness::Unreachable) => continue,
            // The search over masked comparisons may just have missed: refuse rather
            // than guess.
            Err(paths::NoWitness::NotFound) => {
                return Err(format!(
                    "no arguments were found that follow one of its paths (to {}), and kakoi cannot show it is unreachable",
                    action.to_source()
                ))
            }
        }
        reachable.push((action, p.constraints));
    }
    // Whether some arguments could meet all of `cs` (yes, unless shown otherwise).
    let may_meet = |cs: Vec<Constraint>| {
        let p = paths::Path {
            constraints: cs,
            ret: 0,
        };
        paths::witness(&p, &width) != Err(paths::NoWitness::Unreachable)
    };
    let mut rules: Vec<(Action, Vec<String>)> = Vec::new();
    for (action, cs) in &reachable {
        if *action == default {
            continue;
        }
        // Drop each comparison whose absence lets no argument of a path with another
        // action in: paths are disjoint, so the rules can be in any order.
        let mut kept = cs.clone();
        let mut i = 0;
        while i < kept.len() {
            let mut without = kept.clone();
            without.remove(i);
            let overlaps = reachable.iter().any(|(other, ocs)| {
                other != action && may_meet(without.iter().chain(ocs).copied().collect())
            });
            if overlaps {
                i += 1;
            } else {
                kept = without;
            }
        }
        if let Some(terms) = path_terms(&kept, name, arch)? {
            rules.push((*action, terms));
        }
    }
    Ok(merge_equalities(rules))
}

/// Rules with the same action whose condition is one `ARG == VALUE` on the same argument
/// become one `ARG in {…}`; every condition is joined with `&&`.
fn merge_equalities(rules: Vec<(Action, Vec<String>)>) -> Vec<(Action, String)> {
    let mut sets: BTreeMap<(Action, String), Vec<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for (action, terms) in rules {
        if let [t] = terms.as_slice() {
            if let Some((arg, value)) = t.split_once(" == ").filter(|(a, _)| !a.contains(' ')) {
                sets.entry((action, arg.to_string()))
                    .or_default()
                    .push(value.to_string());
                continue;
            }
        }
        let mut seen = BTreeSet::new();
        let terms: Vec<String> = terms
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect();
        out.push((action, terms.join(" && ")));
    }
    for ((action, arg), mut values) in sets {
        values.sort_by_key(|v| parse_num(v));
        out.push((
            action,
            match values.as_slice() {
                [v] => format!("{arg} == {v}"),
                _ => format!("{arg} in {{{}}}", values.join(", ")),
            },
        ));
    }
    out
}

/// The comparisons of a path, in the language; `None` when the path cannot be taken by a
/// C caller.
fn path_terms(cs: &[Constraint], name: &str, arch: Arch) -> Result<Option<Vec<String>>, String> {
    let mut terms: Vec<String> = Vec::new();
    // Whole-word equalities on both halves of a 64-bit argument become one comparison.
    let mut eq: BTreeMap<usize, [Option<u32>; 2]> = BTreeMap::new();
    // An upper half of 0 with a lower half below some bound is just `ARG < bound`: the
    // lower half's whole-word comparisons are then written on the argument itself.
    let below = |i: usize| {
        let on = |upper: bool| cs.iter().filter(move |c| c.arg() == Some((i, upper)));
        on(true).any(|c| c.mask == u32::MAX && c.test == Test::Eq && c.holds && c.k == 0)
            && on(false)
                .any(|c| c.mask == u32::MAX && matches!(c.test, Test::Gt | Test::Ge) && !c.holds)
    };
    for c in cs {
        let (i, upper) = c
            .arg()
            .ok_or("it compares the instruction pointer, which a policy cannot")?;
        if c.mask == 0 {
            // `word & 0`: decided without the argument.
            if c.eval(0) {
                continue;
            }
            return Ok(None);
        }
        let (arg, width) = paths::argument(name, arch, i)?;
        if upper && width != Width::Full {
            // The upper half follows the lower: keep only what that implies.
            let (t0, t1) = (c.eval(0), width == Width::Sign && c.eval(u32::MAX));
            match (t0, t1) {
                (true, true) => {}
                (false, false) => return Ok(None),
                (true, false) if width == Width::Zero => {}
                (true, false) => terms.push(format!("{arg} < 0x80000000")),
                (false, true) => terms.push(format!("{arg} >= 0x80000000")),
            }
            continue;
        }
        if width == Width::Full && below(i) && c.mask == u32::MAX {
            if !upper {
                terms.push(term(arg, Width::Zero, false, c));
            } else if !(c.test == Test::Eq && c.holds && c.k == 0) {
                terms.push(term(arg, width, upper, c));
            }
            continue;
        }
        if width == Width::Full && c.mask == u32::MAX && c.test == Test::Eq && c.holds {
            let slot = eq.entry(i).or_default();
            if slot[usize::from(upper)].is_none() {
                slot[usize::from(upper)] = Some(c.k);
                continue;
            }
        }
        terms.push(term(arg, width, upper, c));
    }
    for (i, halves) in eq {
        let (arg, _) = paths::argument(name, arch, i)?;
        let t = match halves {
            [Some(lo), Some(hi)] => {
                format!("{arg} == {}", hex(u64::from(hi) << 32 | u64::from(lo)))
            }
            [Some(lo), None] => format!("{arg} & 0xffffffff == {}", hex(u64::from(lo))),
            [None, Some(hi)] => {
                format!("{arg} & 0xffffffff00000000 == {}", hex(u64::from(hi) << 32))
            }
            [None, None] => continue,
        };
        terms.push(t);
    }
    Ok(Some(terms))
}

fn parse_num(v: &str) -> u64 {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap_or(u64::MAX),
        None => v.parse().unwrap_or(u64::MAX),
    }
}

fn hex(v: u64) -> String {
    if v < 10 {
        v.to_string()
    } else {
        format!("{v:#x}")
    }
}

/// One comparison on one half of argument `arg`.
fn term(arg: &str, width: Width, upper: bool, c: &Constraint) -> String {
    let shift = if upper { 32 } else { 0 };
    let (mut mask, mut k) = (u64::from(c.mask) << shift, u64::from(c.k) << shift);
    let op = match (c.test, c.holds) {
        (Test::Eq, true) => "==",
        (Test::Eq, false) => "!=",
        (Test::Gt, true) => ">",
        (Test::Gt, false) => "<=",
        (Test::Ge, true) => ">=",
        (Test::Ge, false) => "<",
        (Test::Set, holds) => {
            // (word & mask) & k != 0
            mask &= k;
            k = 0;
            if holds {
                "!="
            } else {
                "=="
            }
        }
    };
    // A 32-bit argument is compared on its lower half only: no mask needed for all of it.
    let whole = width != Width::Full && !upper && mask == 0xffff_ffff;
    if whole {
        format!("{arg} {op} {}", hex(k))
    } else {
        format!("{arg} & {} {op} {}", hex(mask), hex(k))
    }
}

/// Check that `text` compiles to the same decision tables as `v` on `v`'s enabled ABIs.
pub fn verify(text: &str, v: &SeccompView) -> Result<(), ImportError> {
    let (_, checked) = policy_lang::check_str("imported.kakoi", text);
    let p = checked.policy.ok_or_else(|| {
        let errs: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == policy_lang::diagnostics::Severity::Error)
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        ImportError::Refused(format!(
            "kakoi's checker refuses what the profile does ({}); the policy would not be accepted as it stands; `--arches` imports only some ABIs, e.g. x86_64,x32",
            errs.join("; ")
        ))
    })?;
    let mine = SeccompView::from_rules(
        &p.seccomp,
        Vec::new(),
        super::Location::file("imported.kakoi"),
    )
    .map_err(|e| ImportError::Mismatch(e.to_string()))?;
    let progs = Programs::new(v, &p.seccomp, &mine);
    for a in Arch::ALL {
        if !v.abi_enabled(a) && !mine.abi_enabled(a) {
            continue;
        }
        let Some(table) = v.tables.get(&a) else {
            continue;
        };
        for (name, c) in table {
            let other = mine.tables.get(&a).and_then(|t| t.get(name));
            if other == Some(c) {
                continue;
            }
            // Decision tables keep every outcome a path could reach with any 64-bit
            // arguments; a policy speaks of what C callers pass. Where a table says
            // "conditional", compare the classes of the paths such callers can take.
            let refined = match (progs.get(a), catalogue::syscall(name).and_then(|d| d.nr(a))) {
                (Some((theirs, ours)), Some(nr))
                    if *c == Class::Conditional || other == Some(&Class::Conditional) =>
                {
                    let width = paths::widths(name, a);
                    let x = paths::reachable_class(theirs, a.audit_arch(), nr, &width);
                    let y = paths::reachable_class(ours, a.audit_arch(), nr, &width);
                    x.is_some() && x == y
                }
                _ => false,
            };
            if !refined {
                return Err(ImportError::Mismatch(format!(
                    "{}:{name}: the input says {}, the generated policy {}",
                    a.name(),
                    c.text(),
                    other.map_or("nothing".into(), Class::text)
                )));
            }
        }
    }
    same_on_every_path(v, &mine, &progs)
}

/// The input's program and the generated policy's for each ABI. Programs are per host:
/// for aarch64, rules (ours, and the input's when it has them) are compiled for it; a raw
/// aarch64 program is the input's own.
struct Programs<'v> {
    input: &'v [bpf::Insn],
    ours: Vec<bpf::Insn>,
    input_a64: Option<Vec<bpf::Insn>>,
    ours_a64: Option<Vec<bpf::Insn>>,
}

impl<'v> Programs<'v> {
    fn new(v: &'v SeccompView, s: &Seccomp, mine: &SeccompView) -> Self {
        use crate::seccomp::{codegen, Host};
        let for_aarch64 = |s: &Seccomp| {
            s.arches
                .contains(&Arch::Aarch64)
                .then(|| bpf::decode(&codegen::compile(s, Host::Aarch64).bpf).ok())
                .flatten()
        };
        Programs {
            input: &v.prog,
            ours: mine.prog.clone(),
            input_a64: v.rules.as_ref().and_then(for_aarch64),
            ours_a64: for_aarch64(s),
        }
    }

    /// (input's, ours) for ABI `a`.
    fn get(&self, a: Arch) -> Option<(&[bpf::Insn], &[bpf::Insn])> {
        match a {
            Arch::Aarch64 => Some((
                self.input_a64.as_deref().unwrap_or(self.input),
                self.ours_a64.as_deref()?,
            )),
            _ => Some((self.input, &self.ours)),
        }
    }
}

/// For each argument-dependent syscall of `v`, the generated policy's program and the
/// input's give the same action on a witness of every path of either program.
fn same_on_every_path(
    v: &SeccompView,
    mine: &SeccompView,
    progs: &Programs,
) -> Result<(), ImportError> {
    for a in Arch::ALL.into_iter().filter(|a| v.abi_enabled(*a)) {
        let Some((theirs, ours)) = progs.get(a) else {
            continue;
        };
        for (name, c) in &v.tables[&a] {
            let ours_class = mine.tables.get(&a).and_then(|t| t.get(name));
            if *c != Class::Conditional && ours_class != Some(&Class::Conditional) {
                continue;
            }
            let nr = catalogue::syscall(name)
                .and_then(|d| d.nr(a))
                .expect("a table name has a number");
            let width = paths::widths(name, a);
            for prog in [theirs, ours] {
                let ps = paths::paths(prog, a.audit_arch(), nr, 4096)
                    .map_err(|e| ImportError::Refused(format!("{}:{name}: {e}", a.name())))?;
                for path in ps {
                    let Ok(args) = paths::witness(&path, &width) else {
                        continue;
                    };
                    let data = bpf::Data {
                        nr,
                        arch: a.audit_arch(),
                        ip: 0,
                        args,
                    };
                    let (x, y) = (
                        bpf::ret_action(bpf::run(theirs, &data).ret),
                        bpf::ret_action(bpf::run(ours, &data).ret),
                    );
                    if x != y {
                        return Err(ImportError::Mismatch(format!(
                            "{}:{name} with arguments {args:#x?}: the input says {}, the generated policy {}",
                            a.name(),
                            x.to_source(),
                            y.to_source()
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::{codegen, Host};

    fn view(text: &str) -> SeccompView {
        let (_, c) = policy_lang::check_str("t.kakoi", text);
        let p = c.policy.expect("valid");
        let prog = codegen::compile(&p.seccomp, Host::X86_64);
        SeccompView::from_prog(
            bpf::decode(&prog.bpf).unwrap(),
            crate::audit::Location::file("t"),
        )
    }

    fn policy(rule: &str) -> String {
        format!(
            "kakoi 1\nseccomp {{\n    default errno(EPERM)\n    arches [x86_64]\n    {rule}\n}}\n"
        )
    }

    /// The decision tables cannot tell `fd < 3` from `fd < 4` (both conditional); the
    /// check on every path's witness does.
    #[test]
    fn a_wrong_condition_is_caught() {
        let v = view(&policy("allow ioctl if fd < 3"));
        assert!(verify(&policy("allow ioctl if fd <= 2"), &v).is_ok());
        assert!(matches!(
            verify(&policy("allow ioctl if fd < 4"), &v),
            Err(ImportError::Mismatch(m)) if m.contains("ioctl")
        ));
        assert!(matches!(
            verify(&policy("errno(EACCES) ioctl if fd < 3"), &v),
            Err(ImportError::Mismatch(_))
        ));
    }

    /// A process's stacked filters are refused, not imported as the first one alone.
    #[test]
    fn stacked_filters_are_refused() {
        let mut s = crate::audit::Subject::new("pid 1", crate::audit::InputFormat::Process);
        let mut v = view(&policy("allow ioctl if fd < 3"));
        v.filters = 2;
        s.seccomp = Some(Some(v));
        assert!(matches!(
            import(&s, "pid 1", &[]),
            Err(ImportError::Refused(m)) if m.contains("2 stacked")
        ));
    }

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> bpf::Insn {
        bpf::Insn { code, jt, jf, k }
    }

    /// Found by fuzzing: a comparison no argument can pass (`(hi & 0) == 0x8000`) made the
    /// decision table say "conditional" while the decompiled policy, rightly, denies.
    /// The table now counts only reachable paths.
    #[test]
    fn unreachable_paths_do_not_make_a_syscall_conditional() {
        let (ld, jeq, and, ret) = (
            bpf::LD | bpf::ABS,
            bpf::JMP | bpf::JEQ,
            bpf::ALU | 0x50,
            bpf::RET,
        );
        let clone = catalogue::syscall("clone")
            .unwrap()
            .nr(Arch::X86_64)
            .unwrap();
        let prog = vec![
            insn(ld, 0, 0, 4),
            insn(jeq, 1, 0, Arch::X86_64.audit_arch()),
            insn(ret, 0, 0, bpf::RET_KILL_PROCESS),
            insn(ld, 0, 0, 0),
            insn(jeq, 1, 0, clone),
            insn(ret, 0, 0, bpf::RET_ERRNO | 1),
            insn(ld, 0, 0, 20), // args[0].hi
            insn(and, 0, 0, 0),
            insn(jeq, 0, 1, 0x8000),
            insn(ret, 0, 0, bpf::RET_ALLOW),
            insn(ret, 0, 0, bpf::RET_ERRNO | 1),
        ];
        assert_eq!(
            sym::classify(&prog, Arch::X86_64.audit_arch(), clone),
            Class::Deny(Action::Errno(1))
        );
    }

    /// An argument-dependent program decompiles to one rule per allowing path, and the
    /// result passes its own check.
    #[test]
    fn from_tables_decompiles_and_checks_itself() {
        let v = view(&policy("allow ioctl if fd < 3 || fd > 100"));
        let text = format!("kakoi 1\n{}", from_tables(&v).unwrap());
        assert!(text.contains("allow ioctl if fd < 3"), "{text}");
        assert!(text.contains("allow ioctl if fd > 0x64"), "{text}");
        verify(&text, &v).unwrap();
    }
}
