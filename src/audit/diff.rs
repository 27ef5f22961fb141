//! `kakoi diff OLD NEW`: what NEW allows that OLD did not (and the reverse), per ABI and
//! syscall, argument values, capabilities, no_new_privs, namespaces and masked paths.
//! Inputs may be of different formats; both are read into the same model.

use std::collections::BTreeSet;

use policy_lang::catalogue::Arch;
use serde::Serialize;

use super::model::{SeccompView, Subject};
use super::sym::Class;
use crate::bpf;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub layer: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<&'static str>,
    pub item: String,
    pub old: String,
    pub new: String,
    /// NEW allows something OLD denied.
    pub widens: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub old: String,
    pub new: String,
    pub changes: Vec<Change>,
    pub widened: bool,
}

fn rank(c: &Class) -> u8 {
    match c {
        Class::Deny(_) => 0,
        Class::Conditional => 1,
        Class::Allow => 2,
    }
}

/// Constants the programs compare against, and their neighbours: the values where
/// argument decisions can change.
fn candidates(progs: &[&[bpf::Insn]]) -> Vec<u64> {
    let mut v: BTreeSet<u64> = [0, 1, 2, u64::from(u32::MAX)].into_iter().collect();
    for p in progs {
        for i in p.iter() {
            if i.code & 0x07 == bpf::JMP && i.code & 0xf0 != bpf::JA {
                let k = u64::from(i.k);
                v.insert(k);
                v.insert(k.wrapping_add(1) & 0xffff_ffff);
                v.insert(k.saturating_sub(1));
            }
        }
    }
    v.into_iter().take(256).collect()
}

fn run(prog: &[bpf::Insn], arch: Arch, nr: u32, args: [u64; 6]) -> bool {
    let data = bpf::Data {
        nr,
        arch: arch.audit_arch(),
        ip: 0,
        args,
    };
    super::sym::lets_through(bpf::ret_action(bpf::run(prog, &data).ret))
}

fn seccomp(old: &SeccompView, new: &SeccompView, out: &mut Vec<Change>) {
    let cands = candidates(&[&old.prog, &new.prog]);
    for (arch, nt) in &new.tables {
        let Some(ot) = old.tables.get(arch) else {
            continue;
        };
        for (name, nc) in nt {
            let Some(oc) = ot.get(name) else { continue };
            if oc == nc {
                if *nc == Class::Conditional && *arch != Arch::Aarch64 {
                    // Same class: compare decisions on the values the programs test.
                    let nr = policy_lang::catalogue::syscall(name).and_then(|d| d.nr(*arch));
                    let Some(nr) = nr else { continue };
                    let mut opened = Vec::new();
                    let mut closed = Vec::new();
                    for i in 0..6 {
                        for &v in &cands {
                            let mut args = [0u64; 6];
                            args[i] = v;
                            let (o, n) = (
                                run(&old.prog, *arch, nr, args),
                                run(&new.prog, *arch, nr, args),
                            );
                            if n && !o {
                                opened.push(format!("arg{i}={v:#x}"));
                            } else if o && !n {
                                closed.push(format!("arg{i}={v:#x}"));
                            }
                        }
                    }
                    let show = |v: &[String]| {
                        let mut s = v.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
                        if v.len() > 6 {
                            s.push_str(&format!(" and {} more", v.len() - 6));
                        }
                        s
                    };
                    if !opened.is_empty() {
                        out.push(Change {
                            layer: "seccomp",
                            arch: Some(arch.name()),
                            item: name.to_string(),
                            old: "conditional".into(),
                            new: format!("also allows {}", show(&opened)),
                            widens: true,
                        });
                    }
                    if !closed.is_empty() {
                        out.push(Change {
                            layer: "seccomp",
                            arch: Some(arch.name()),
                            item: name.to_string(),
                            old: "conditional".into(),
                            new: format!("no longer allows {}", show(&closed)),
                            widens: false,
                        });
                    }
                }
                continue;
            }
            out.push(Change {
                layer: "seccomp",
                arch: Some(arch.name()),
                item: name.to_string(),
                old: oc.text(),
                new: nc.text(),
                widens: rank(nc) > rank(oc),
            });
        }
    }
}

/// The semantic difference between two subjects.
pub fn diff(old: &Subject, new: &Subject) -> Diff {
    let mut changes = Vec::new();
    match (old.seccomp(), new.seccomp()) {
        (Some(o), Some(n)) => seccomp(o, n, &mut changes),
        (Some(_), None) if new.seccomp.is_some() => changes.push(Change {
            layer: "seccomp",
            arch: None,
            item: "filter".into(),
            old: "present".into(),
            new: "none".into(),
            widens: true,
        }),
        (None, Some(_)) if old.seccomp.is_some() => changes.push(Change {
            layer: "seccomp",
            arch: None,
            item: "filter".into(),
            old: "none".into(),
            new: "present".into(),
            widens: false,
        }),
        _ => {}
    }
    if let (Some(o), Some(n)) = (&old.caps, &new.caps) {
        let (oh, nh) = (o.held(), n.held());
        for c in nh.difference(&oh) {
            changes.push(Change {
                layer: "capabilities",
                arch: None,
                item: c.clone(),
                old: "dropped".into(),
                new: "held".into(),
                widens: true,
            });
        }
        for c in oh.difference(&nh) {
            changes.push(Change {
                layer: "capabilities",
                arch: None,
                item: c.clone(),
                old: "held".into(),
                new: "dropped".into(),
                widens: false,
            });
        }
        for (set, a, b) in [
            ("inheritable", &o.inheritable, &n.inheritable),
            ("ambient", &o.ambient, &n.ambient),
        ] {
            for c in b.difference(a) {
                changes.push(Change {
                    layer: "capabilities",
                    arch: None,
                    item: format!("{c} ({set})"),
                    old: "absent".into(),
                    new: "set".into(),
                    widens: true,
                });
            }
        }
    }
    if let (Some((o, _)), Some((n, _))) = (&old.no_new_privs, &new.no_new_privs) {
        if o != n {
            changes.push(Change {
                layer: "process",
                arch: None,
                item: "no_new_privs".into(),
                old: o.to_string(),
                new: n.to_string(),
                widens: *o && !*n,
            });
        }
    }
    if let (Some((o, _)), Some((n, _))) = (&old.namespaces, &new.namespaces) {
        for (k, nv) in n {
            if let Some(ov) = o.get(k) {
                if ov != nv {
                    let t = |own: bool| {
                        if own {
                            "own".to_string()
                        } else {
                            "host".to_string()
                        }
                    };
                    changes.push(Change {
                        layer: "namespaces",
                        arch: None,
                        item: k.name().to_string(),
                        old: t(*ov),
                        new: t(*nv),
                        widens: *ov && !*nv,
                    });
                }
            }
        }
    }
    if let (Some(o), Some(n)) = (&old.limits, &new.limits) {
        let as_f = |v: Option<u64>| v.map(|x| x as f64);
        for ((item, ot), (_, nt), ov, nv) in [
            (
                o.items()[0].clone(),
                n.items()[0].clone(),
                as_f(o.memory),
                as_f(n.memory),
            ),
            (
                o.items()[1].clone(),
                n.items()[1].clone(),
                as_f(o.pids),
                as_f(n.pids),
            ),
            (o.items()[2].clone(), n.items()[2].clone(), o.cpu, n.cpu),
        ] {
            if ov == nv {
                continue;
            }
            // Unlimited is the widest.
            let widens = match (ov, nv) {
                (Some(_), None) => true,
                (Some(a), Some(b)) => b > a,
                _ => false,
            };
            changes.push(Change {
                layer: "resources",
                arch: None,
                item: item.to_string(),
                old: ot,
                new: nt,
                widens,
            });
        }
    }
    for (layer, o, n) in [
        ("masked paths", &old.masked, &new.masked),
        ("read-only paths", &old.readonly, &new.readonly),
    ] {
        if let (Some((o, _)), Some((n, _))) = (o, n) {
            let (o, n): (BTreeSet<&String>, BTreeSet<&String>) =
                (o.iter().collect(), n.iter().collect());
            for p in o.difference(&n) {
                changes.push(Change {
                    layer,
                    arch: None,
                    item: (*p).clone(),
                    old: "listed".into(),
                    new: "not listed".into(),
                    widens: true,
                });
            }
            for p in n.difference(&o) {
                changes.push(Change {
                    layer,
                    arch: None,
                    item: (*p).clone(),
                    old: "not listed".into(),
                    new: "listed".into(),
                    widens: false,
                });
            }
        }
    }
    let widened = changes.iter().any(|c| c.widens);
    Diff {
        old: old.name.clone(),
        new: new.name.clone(),
        changes,
        widened,
    }
}

/// The human form: widening changes first, then the rest; seccomp changes with the same
/// ABI and the same old and new decision are grouped on one line.
pub fn human(d: &Diff) -> String {
    let mut o = format!("--- {}\n+++ {}\n", d.old, d.new);
    for widens in [true, false] {
        // (layer, arch, old, new) -> items
        type Key<'a> = (&'a str, Option<&'a str>, &'a str, &'a str);
        let mut groups: Vec<(Key, Vec<&str>)> = Vec::new();
        for c in d.changes.iter().filter(|c| c.widens == widens) {
            let key = (c.layer, c.arch, c.old.as_str(), c.new.as_str());
            match groups
                .iter_mut()
                .find(|(k, _)| *k == key && c.layer == "seccomp" && !c.new.contains("allows"))
            {
                Some((_, items)) => items.push(&c.item),
                None => groups.push((key, vec![&c.item])),
            }
        }
        for ((layer, arch, old, new), items) in groups {
            let arch = arch.map(|a| format!("[{a}] ")).unwrap_or_default();
            let shown: Vec<&str> = items.iter().take(10).copied().collect();
            let more = if items.len() > 10 {
                format!(" and {} more", items.len() - 10)
            } else {
                String::new()
            };
            let count = if items.len() > 1 {
                format!(" ({} syscalls)", items.len())
            } else {
                String::new()
            };
            o.push_str(&format!(
                "{} {layer}: {arch}{}{more}{count}: {old} -> {new}\n",
                if widens { "+" } else { "-" },
                shown.join(", "),
            ));
        }
    }
    if d.changes.is_empty() {
        o.push_str("no semantic difference\n");
    } else if d.widened {
        o.push_str("NEW allows what OLD denied\n");
    } else {
        o.push_str("NEW allows nothing that OLD denied\n");
    }
    o
}
