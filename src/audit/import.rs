//! `kakoi import`: a Docker/OCI seccomp JSON profile or a raw BPF program as a readable
//! kakoi policy, checked to compile to the same decision table as the input.
//!
//! JSON profiles keep their rules (argument conditions included). Raw BPF is decompiled
//! from its decision tables (symbolic execution per ABI): every syscall whose decision
//! does not depend on its arguments becomes a rule; a program with argument-dependent
//! decisions is refused, naming those syscalls (decompiling argument conditions is not
//! done yet).

use std::collections::{BTreeMap, BTreeSet};

use policy_lang::catalogue::Arch;
use policy_lang::ir::{Action, Cond, ConstExpr, Seccomp};

use super::model::SeccompView;
use super::sym::{self, Class};

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
pub fn import(s: &super::Subject, input: &str) -> Result<String, ImportError> {
    let Some(v) = s.seccomp() else {
        return Err(ImportError::Refused(
            "it has no seccomp filter to import".into(),
        ));
    };
    let body = match &v.rules {
        Some(rules) => seccomp_src(rules),
        None => from_tables(v).map_err(ImportError::Refused)?,
    };
    let mut text = format!("# Imported by `kakoi import` from {input}.\n");
    for n in &s.notes {
        text.push_str(&format!("# note: {n}\n"));
    }
    text.push_str("kakoi 1\n\n");
    text.push_str(&body);
    verify(&text, v)?;
    Ok(text)
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
                    conditional.insert(format!("{}:{name}", a.name()));
                    continue;
                }
            };
            if action != default {
                rules.entry((action, name)).or_default().insert(*a);
            }
        }
    }
    if !conditional.is_empty() {
        let shown: Vec<String> = conditional.iter().take(12).cloned().collect();
        return Err(format!(
            "{} syscall(s) are decided by their arguments ({}{}); decompiling argument conditions is not supported yet",
            conditional.len(),
            shown.join(", "),
            if conditional.len() > 12 { ", …" } else { "" }
        ));
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
    o.push_str("}\n");
    Ok(o)
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
            "kakoi's checker refuses what the profile does ({}); the policy would not be accepted as it stands",
            errs.join("; ")
        ))
    })?;
    let mine = SeccompView::from_rules(
        &p.seccomp,
        Vec::new(),
        super::Location::file("imported.kakoi"),
    )
    .map_err(ImportError::Mismatch)?;
    for a in Arch::ALL {
        if !v.abi_enabled(a) && !mine.abi_enabled(a) {
            continue;
        }
        for (name, c) in &v.tables[&a] {
            let other = mine.tables.get(&a).and_then(|t| t.get(name));
            if other != Some(c) {
                return Err(ImportError::Mismatch(format!(
                    "{}:{name}: the input says {}, the generated policy {}",
                    a.name(),
                    c.text(),
                    other.map_or("nothing".into(), Class::text)
                )));
            }
        }
    }
    Ok(())
}
