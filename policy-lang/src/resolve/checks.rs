//! Whole-policy checks once every layer is applied, and the resolved [`Policy`].

use super::*;

impl Builder {
    pub(super) fn finish(&mut self, map: &SourceMap) -> Option<Policy> {
        let mut rules = std::mem::take(&mut self.rules);
        for (r, span) in &mut rules {
            let (line, column) = line_col(map, span);
            r.origin = Origin {
                file: map.name(span.file).to_string(),
                line,
                column,
            };
        }
        let arches = self.arches.clone().unwrap_or_else(|| vec![Arch::X86_64]);
        let default_action = self
            .default_action
            .unwrap_or(Action::Errno(self.deny_errno));
        let root = self.root;
        self.check_rules(&rules, &arches, default_action, root);
        self.check_size(&rules);
        self.check_abis(&rules, &arches);
        self.check_socketcall(&rules, &arches, default_action);
        self.check_network();
        self.check_caps();

        let caps = |s: &BTreeSet<u32>| {
            s.iter()
                .map(|c| catalogue::capabilities()[*c as usize].to_string())
                .collect()
        };
        let policy = Policy {
            name: self.name.clone().unwrap_or_default(),
            description: self.description.clone(),
            sources: self.sources.clone(),
            seccomp: Seccomp {
                enabled: self.seccomp_enabled,
                default_action,
                bad_arch_action: self.bad_arch_action.unwrap_or(Action::KillProcess),
                unknown_action: self.unknown_action.unwrap_or(default_action),
                arches,
                flags: self.flags.clone(),
                rules: rules.into_iter().map(|(r, _)| r).collect(),
                acknowledged: self.mux_acknowledged.keys().copied().collect(),
            },
            capabilities: Capabilities {
                bounding: caps(&self.caps.bounding),
                effective: caps(&self.caps.effective),
                permitted: caps(&self.caps.permitted),
                inheritable: caps(&self.caps.inheritable),
                ambient: caps(&self.caps.ambient),
            },
            identity: self.identity.clone(),
            namespaces: Namespaces({
                let mut ns = self.namespaces.clone();
                // `network { mode host }` is the host's network namespace.
                if self.network.mode == NetMode::Host {
                    ns.insert(NsKind::Net, NsMode::Host);
                }
                ns
            }),
            filesystem: Filesystem {
                rootfs: self.rootfs.clone(),
                overlays: self.overlays.clone(),
                binds: self.binds.clone(),
                tmpfs: self.tmpfs.clone(),
                masked: dedup(&self.masked),
                readonly: dedup(&self.readonly),
                access: self.access.clone(),
                landlock: self.landlock,
                landlock_scopes: self.landlock_scopes.clone(),
                propagation: self.propagation,
            },
            network: self.network.clone(),
            resources: self.resources.clone(),
            process: self.process.clone(),
            selinux: self.selinux.clone(),
            apparmor: self.apparmor.clone().map(|mut a| {
                for (r, span) in a.rules.iter_mut().zip(&self.aa_rule_spans) {
                    let (line, column) = line_col(map, span);
                    r.origin = Origin {
                        file: map.name(span.file).to_string(),
                        line,
                        column,
                    };
                }
                a
            }),
        };
        // Across layers only when each layer is whole: a rule dropped for an error would
        // make them report what the user did not write (a misspelt `read` as denied).
        let mut warnings = if self.diags.iter().any(|d| d.is_error()) {
            Vec::new()
        } else {
            crate::coherence::check(&policy, &self.sections)
        };
        if let Some(root) = self.root {
            // Report what the user can change: the root file's sections come first.
            warnings.sort_by_key(|d| d.span.as_ref().map(|s| s.file != root));
        }
        self.diags.extend(warnings);
        Some(policy)
    }

    /// `mode macvlan` is whole; `nat` and `publish` have a veth network.
    fn check_network(&mut self) {
        if self.macvlan_mode {
            match self.macvlan.clone() {
                Some((Some(parent), Some(address), gateway, _)) => {
                    self.network.mode = NetMode::Macvlan {
                        parent,
                        address,
                        gateway,
                    }
                }
                other => {
                    if let Some(span) = other
                        .map(|(_, _, _, s)| s)
                        .or_else(|| self.sections.get("network").cloned())
                    {
                        self.diags.push(
                        Diagnostic::error("E0806", "`mode macvlan` needs a `parent` and an `address`", span)
                            .with_label("the macvlan interface is made on a host link, with an address of its network")
                            .with_help("write `macvlan {\n    parent \"eth0\"\n    address \"192.168.1.50/24\"\n}`"),
                    );
                    }
                }
            }
        }
        if (self.network.nat || !self.network.publish.is_empty())
            && !matches!(self.network.mode, NetMode::Veth { .. })
        {
            if let Some(span) = self.sections.get("network").cloned() {
                self.diags.push(
                    Diagnostic::error("E0805", "`nat` and `publish` need `mode veth`", span)
                        .with_label("the sandbox has no interface on a network of the host's")
                        .with_help("add `mode veth` (root), or remove `nat` and `publish`"),
                );
            }
        }
    }

    /// Warn about rules that can never match (every syscall already decided by earlier
    /// unconditional rules) and rules that change nothing (same action as the default,
    /// and no later rule for those syscalls).
    ///
    /// Only rules of the root file are reported: a rule inherited through `extends` that
    /// the root overrides is dead by design, and the user cannot edit it anyway.
    pub(super) fn check_rules(
        &mut self,
        rules: &[(Rule, Span)],
        arches: &[Arch],
        default: Action,
        root: Option<FileId>,
    ) {
        let exists = |s: &str| {
            catalogue::syscall(s).is_some_and(|d| arches.iter().any(|a| d.nr(*a).is_some()))
        };
        let mut decided: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, (r, span)) in rules.iter().enumerate() {
            let live: Vec<&str> = r
                .syscalls
                .iter()
                .map(String::as_str)
                .filter(|s| exists(s))
                .collect();
            let report = Some(span.file) == root;
            if live.is_empty() && report {
                self.warn(
                    span.file,
                    span.range.clone(),
                    "W0201",
                    "rule names no syscall of the target architectures",
                )
                .help = Some(format!(
                    "targets are {}",
                    arches
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
            if report && !live.is_empty() && live.iter().all(|s| decided.contains_key(s)) {
                let first = decided[live[0]];
                let d = Diagnostic::warning("W0202", "rule can never match", span.clone())
                    .with_label("every syscall here is decided by an earlier rule")
                    .with_secondary(rules[first].1.clone(), "this rule matches first")
                    .with_help("rules are checked in order and the first match decides; move this rule up or remove it");
                self.diags.push(d);
            }
            if r.cond.is_none() {
                for s in &live {
                    decided.entry(s).or_insert(i);
                }
            }
        }
        // Redundant: unconditional, same action as the default, nothing later names them.
        // The names each rule's successors mention, built from the end (linear).
        let mut later_sets: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); rules.len()];
        let mut acc: BTreeSet<&str> = BTreeSet::new();
        for (i, (r, _)) in rules.iter().enumerate().rev() {
            if r.cond.is_none() && r.action == default {
                later_sets[i] = acc.clone();
            }
            acc.extend(r.syscalls.iter().map(String::as_str));
        }
        for (i, (r, span)) in rules.iter().enumerate() {
            if r.cond.is_some() || r.action != default || Some(span.file) != root {
                continue;
            }
            let later = &later_sets[i];
            let earlier_decides = r
                .syscalls
                .iter()
                .all(|s| decided.get(s.as_str()).is_some_and(|&j| j < i));
            if !earlier_decides && r.syscalls.iter().all(|s| !later.contains(s.as_str())) {
                self.warn(
                    span.file,
                    span.range.clone(),
                    "W0203",
                    "rule changes nothing",
                )
                .label(format!(
                    "the default action is already `{}`",
                    default.to_source()
                ))
                .help = Some("remove the rule, or move it before a rule it should override".into());
            }
        }
    }

    /// A seccomp program holds at most 4096 instructions, and every argument comparison
    /// takes at least one: a policy with more can never be loaded. Refused here, before
    /// the compilers (whose work grows with the conditions) see it.
    pub(super) fn check_size(&mut self, rules: &[(Rule, Span)]) {
        fn comparisons(c: &Cond) -> usize {
            match c {
                Cond::And(v) | Cond::Or(v) => v.iter().map(comparisons).sum(),
                Cond::Not(c) => comparisons(c),
                Cond::Arch(_) => 0,
                Cond::Arg(_) => 1,
            }
        }
        let mut total = 0usize;
        for (r, span) in rules {
            total += r.cond.as_ref().map_or(0, comparisons);
            if total > MAX_COMPARISONS {
                let all: usize = rules
                    .iter()
                    .map(|(r, _)| r.cond.as_ref().map_or(0, comparisons))
                    .sum();
                // The rule's first character: the rule itself may be thousands of
                // characters long.
                let at = span.range.start..(span.range.start + 1).min(span.range.end);
                self.err(
                    span.file,
                    at,
                    "E0313",
                    format!("the seccomp rules compare arguments {all} times, more than a program can hold"),
                )
                .label(format!("the comparisons up to here pass {MAX_COMPARISONS}"))
                .help = Some(format!(
                    "a seccomp program holds at most {MAX_COMPARISONS} instructions and each comparison takes one; use ranges (`fd <= 64`) or masks instead of long lists"
                ));
                return;
            }
        }
    }

    /// An argument rule must mean something on every targeted ABI where its syscalls
    /// exist: i386 `mmap` and `select` take one pointer to their arguments, a 64-bit
    /// argument takes two registers on i386, `clone`'s last two arguments swap places
    /// (E0314). Arch tests in the condition (`arch != x86 && …`) limit where it applies.
    pub(super) fn check_abis(&mut self, rules: &[(Rule, Span)], arches: &[Arch]) {
        for (r, span) in rules {
            let Some(c) = &r.cond else { continue };
            for &arch in arches {
                let Some(s) = r.syscalls.iter().find(|s| {
                    catalogue::syscall(s).is_some_and(|d| d.nr(arch).is_some())
                        && c.concrete(arch, s).is_none()
                }) else {
                    continue;
                };
                let def = catalogue::syscall(s).expect("names were checked");
                let why = match def.args(arch) {
                    None if arch == Arch::X86 && def.splits_on_i386() => format!(
                        "on x86 `{s}` passes a 64-bit argument in two registers, so its arguments are not where this rule looks"
                    ),
                    None => format!("no argument signature of `{s}` is known on {}", arch.name()),
                    Some(args) => {
                        let list: Vec<String> = args
                            .iter()
                            .map(|a| {
                                if a.kind == catalogue::ArgKind::Ptr {
                                    format!("`{}` (a pointer)", a.name)
                                } else {
                                    format!("`{}`", a.name)
                                }
                            })
                            .collect();
                        format!("on {} `{s}` takes {}", arch.name(), if list.is_empty() { "no arguments".into() } else { list.join(", ") })
                    }
                };
                let mut help = format!(
                    "limit the rule to the other ABIs (`if arch != {} && …`), write one for {} alone, or drop `{}` from `arches`",
                    arch.name(),
                    arch.name(),
                    arch.name()
                );
                if s == "mmap" && arch == Arch::X86 {
                    help.push_str(
                        "; i386 programs map memory with `mmap2`, whose arguments are registers",
                    );
                }
                self.diags.push(
                    Diagnostic::error(
                        "E0314",
                        format!("this argument rule cannot be checked on {}", arch.name()),
                        span.clone(),
                    )
                    .with_label(why)
                    .with_help(help),
                );
            }
        }
    }

    /// On i386, socket and SysV IPC calls can also go through `socketcall` and `ipc`,
    /// where seccomp cannot see their arguments: a rule on their arguments is enforced
    /// only if the multiplexer's matching call is not allowed (E0312). Rules that decide
    /// the call whatever its arguments cover the multiplexer too ([`ir::implied_mux`]).
    pub(super) fn check_socketcall(
        &mut self,
        rules: &[(Rule, Span)],
        arches: &[Arch],
        default: Action,
    ) {
        let plain: Vec<Rule> = rules.iter().map(|(r, _)| r.clone()).collect();
        let needed = crate::ir::bypassable_muxes(&plain, default, arches);
        for (m, span) in &self.mux_acknowledged {
            if !needed.contains(m) {
                self.diags.push(
                    Diagnostic::warning(
                        "W0204",
                        format!("`acknowledge {}` changes nothing", m.name()),
                        span.clone(),
                    )
                    .with_label(if arches.contains(&Arch::X86) {
                        "no argument rule here can be bypassed through it"
                    } else {
                        "`x86` is not in `arches`"
                    })
                    .with_help("remove it: it records an accepted bypass, and there is none"),
                );
            }
        }
        if !arches.contains(&Arch::X86) {
            return;
        }
        for (r, span) in rules {
            let Some(c) = &r.cond else { continue };
            let Some((name, mux, call)) = r
                .syscalls
                .iter()
                .find_map(|s| catalogue::multiplexed(s).map(|(m, n)| (s, m, n)))
            else {
                continue;
            };
            // A condition that is constant on x86 does not look at the arguments there.
            if matches!(c.concrete(Arch::X86, name), Some(ConcreteCond::Const(_))) {
                continue;
            }
            if self.mux_acknowledged.contains_key(&mux) {
                continue;
            }
            let Some(opened) =
                crate::ir::mux_opened_by(rules.iter().map(|(r, _)| r), default, mux, call)
            else {
                continue;
            };
            let m = mux.name();
            let how = match mux {
                catalogue::Mux::Socketcall => format!("SYS_{}", name.to_ascii_uppercase()),
                catalogue::Mux::Ipc => call.to_string(),
            };
            // The kernel reads only the low 16 bits of `ipc`'s call.
            let test = match mux {
                catalogue::Mux::Socketcall => format!("call == {how}"),
                catalogue::Mux::Ipc => format!("call & 0xffff == {how}"),
            };
            let mut d = Diagnostic::error("E0312", format!("argument rule can be bypassed through `{m}` on x86"), span.clone())
                .with_label(format!("i386 programs can make `{name}` through `{m}({how}, …)`, whose arguments seccomp cannot see"))
                .with_help(format!("deny that call of the multiplexer in a rule checked first (`deny {m} if {test}`), so i386 programs make `{name}` directly; drop `x86` from `arches`; or accept the bypass with `acknowledge {m}` (what runc does with Docker's profile)"));
            match opened {
                Some(i) => {
                    d = d.with_secondary(
                        rules[i].1.clone(),
                        format!("`{m}({how}, …)` is allowed here"),
                    )
                }
                None => d.label.push_str(" (the default action allows it)"),
            }
            self.diags.push(d);
        }
    }

    pub(super) fn check_caps(&mut self) {
        use crate::catalogue::EFFECTIVELY_ROOT;
        let c = &self.caps;
        let at = |d: Diagnostic| match &c.section {
            Some(s) => Diagnostic {
                span: Some(s.clone()),
                ..d
            },
            None => d,
        };
        let mut out = Vec::new();
        if !c
            .ambient
            .iter()
            .all(|x| c.permitted.contains(x) && c.inheritable.contains(x))
        {
            out.push(at(Diagnostic::global(
                "E0402",
                "ambient capabilities must also be permitted and inheritable",
            )
            .with_help(
                "add them to `permitted` and `inheritable`, or remove them from `ambient`",
            )));
        }
        if !c.effective.is_subset(&c.permitted) {
            out.push(at(Diagnostic::global("E0403", "effective capabilities must also be permitted")
                .with_help("add them to `permitted` (or use `keep`, which sets bounding, permitted and effective)")));
        }
        for cap in c.bounding.union(&c.permitted) {
            let name = catalogue::capabilities()[*cap as usize];
            if !EFFECTIVELY_ROOT.contains(&name) || c.acknowledged.contains(cap) {
                continue;
            }
            if let Some(span) = c.granted_at.get(cap) {
                out.push(
                    Diagnostic::warning("W0401", format!("capability `{name}` is effectively root"), span.clone())
                        .with_label("granted here")
                        .with_help(format!(
                            "drop it, or write `acknowledge {name}` in `capabilities` to accept the risk"
                        )),
                );
            }
        }
        self.diags.extend(out);
    }
}
