//! The `seccomp` section: actions, rules, conditions on arguments.

use super::*;

impl Builder {
    pub(super) fn seccomp(&mut self, file: FileId, stmt: &Stmt) {
        // `seccomp off` disables the filter; `seccomp { … }` configures it.
        if let [Value {
            kind: ValueKind::Word(w),
            span,
        }] = stmt.values.as_slice()
        {
            match w.as_str() {
                "off" => self.seccomp_enabled = false,
                "on" => self.seccomp_enabled = true,
                _ => {
                    self.err(
                        file,
                        span.clone(),
                        "E0114",
                        "expected `on`, `off` or a block",
                    );
                }
            }
            if stmt.block.is_none() {
                return;
            }
        }
        let Some(block) = self.section_block(file, stmt) else {
            return;
        };
        for s in block {
            let a = Args { file, stmt: s };
            let kw = s.keyword.name.as_str();
            match kw {
                "default" | "bad-arch" | "unknown" => {
                    if !self.expect_count(&a, 1, "one action") {
                        continue;
                    }
                    if let Some(act) = self.action(file, &s.values[0]) {
                        match kw {
                            "default" => self.default_action = Some(act),
                            "bad-arch" => self.bad_arch_action = Some(act),
                            _ => self.unknown_action = Some(act),
                        }
                    }
                }
                "deny-errno" => {
                    if self.expect_count(&a, 1, "one errno") {
                        if let Some(e) = self.errno(file, &s.values[0]) {
                            self.deny_errno = e;
                        }
                    }
                }
                "arches" => self.arches(file, s),
                "flags" => {
                    let mut flags = Vec::new();
                    for v in Self::flat(&s.values) {
                        let f = match &v.kind {
                            ValueKind::Word(w) if w == "log" => SeccompFlag::Log,
                            ValueKind::Word(w) if w == "spec-allow" => SeccompFlag::SpecAllow,
                            ValueKind::Word(w) if w == "tsync" => SeccompFlag::Tsync,
                            _ => {
                                self.err(
                                    file,
                                    v.span.clone(),
                                    "E0203",
                                    format!("unknown seccomp flag `{}`", value_text(v)),
                                )
                                .label("not a flag")
                                .help = Some("flags are log, spec-allow and tsync".into());
                                continue;
                            }
                        };
                        if !flags.contains(&f) {
                            flags.push(f);
                        }
                    }
                    self.flags = flags;
                }
                "acknowledge" => self.acknowledge(file, s),
                _ => {
                    if let Some(rule) = self.rule(file, s) {
                        self.file_rules
                            .push((rule, Span::new(file, s.span.clone())));
                    }
                }
            }
        }
    }

    /// acknowledge socketcall|ipc
    fn acknowledge(&mut self, file: FileId, s: &Stmt) {
        for v in Self::flat(&s.values) {
            match catalogue::Mux::ALL
                .into_iter()
                .find(|m| matches!(&v.kind, ValueKind::Word(w) if w == m.name()))
            {
                Some(m) => {
                    self.mux_acknowledged
                        .insert(m, Span::new(file, v.span.clone()));
                }
                None => {
                    self.err(
                        file,
                        v.span.clone(),
                        "E0212",
                        format!("cannot acknowledge `{}`", value_text(v)),
                    )
                    .label("not an i386 multiplexer")
                    .help = Some("`acknowledge` names `socketcall` or `ipc`: the i386 multiplexers through which argument rules on socket and SysV IPC calls can be bypassed".into());
                }
            }
        }
    }

    /// arches [x86_64, x86, x32, aarch64]
    fn arches(&mut self, file: FileId, s: &Stmt) {
        let mut arches = Vec::new();
        for v in Self::flat(&s.values) {
            match &v.kind {
                ValueKind::Word(w) if Arch::from_name(w).is_some() => {
                    let arch = Arch::from_name(w).expect("checked");
                    if !arches.contains(&arch) {
                        arches.push(arch);
                    }
                }
                _ => {
                    let txt = value_text(v);
                    let d = self
                        .err(
                            file,
                            v.span.clone(),
                            "E0201",
                            format!("unknown architecture `{txt}`"),
                        )
                        .label("not a target architecture");
                    d.help = Some(
                        did_you_mean(&txt, ["x86_64", "x86", "x32", "aarch64"])
                            .unwrap_or_else(|| "targets are x86_64, x86, x32 and aarch64".into()),
                    );
                }
            }
        }
        let compat: Vec<&str> = arches
            .iter()
            .filter(|a| matches!(a, Arch::X86 | Arch::X32))
            .map(|a| a.name())
            .collect();
        if arches.is_empty() {
            self.err(file, s.span.clone(), "E0202", "no target architecture")
                .label("list at least one");
        } else if !compat.is_empty() && !arches.contains(&Arch::X86_64) {
            // i386 and x32 exist only as compat ABIs of an x86_64 kernel,
            // and every program there is started by an x86_64 `execve`.
            self.err(
                file,
                s.span.clone(),
                "E0211",
                format!("`{}` without `x86_64`", compat.join("` and `")),
            )
            .label("i386 and x32 run on an x86_64 kernel, whose own ABI this leaves out")
            .help = Some(format!(
                "add `x86_64` (`arches [x86_64, {}]`): without it the filter would give every x86_64 call, the launcher's `execve` among them, the bad-arch action",
                compat.join(", ")
            ));
        } else {
            arches.sort();
            self.arches = Some(arches);
        }
    }

    const ACTIONS: &'static [&'static str] = &[
        "allow",
        "deny",
        "errno",
        "kill-process",
        "kill-thread",
        "kill",
        "trap",
        "log",
        "trace",
        "notify",
    ];

    pub(super) fn action_word(
        &mut self,
        file: FileId,
        name: &str,
        span: Range<usize>,
        args: &[Value],
    ) -> Option<Action> {
        let no_args = |b: &mut Self, a: Action| -> Option<Action> {
            if !args.is_empty() {
                b.err(
                    file,
                    span.clone(),
                    "E0204",
                    format!("`{name}` takes no argument"),
                );
                return None;
            }
            Some(a)
        };
        match name {
            "allow" => no_args(self, Action::Allow),
            "deny" => no_args(self, Action::Errno(self.deny_errno)),
            "kill-process" => no_args(self, Action::KillProcess),
            "kill-thread" | "kill" => no_args(self, Action::KillThread),
            "trap" => no_args(self, Action::Trap),
            "log" => no_args(self, Action::Log),
            "notify" => no_args(self, Action::Notify),
            "errno" | "trace" => {
                let [arg] = args else {
                    self.err(file, span, "E0204", format!("`{name}` takes one argument"))
                        .help = Some(format!(
                        "write `{name}({})`",
                        if name == "errno" { "EPERM" } else { "1" }
                    ));
                    return None;
                };
                if name == "errno" {
                    self.errno(file, arg).map(Action::Errno)
                } else {
                    self.integer(file, arg, 0xffff)
                        .map(|n| Action::Trace(n as u16))
                }
            }
            _ => {
                let d = self
                    .err(file, span, "E0205", format!("unknown action `{name}`"))
                    .label("not a seccomp action");
                d.help = Some(did_you_mean(name, Self::ACTIONS.iter().copied()).unwrap_or_else(|| {
                    "actions are allow, deny, errno(E…), kill-process, kill-thread, trap, log, trace(n), notify".into()
                }));
                None
            }
        }
    }

    pub(super) fn action(&mut self, file: FileId, v: &Value) -> Option<Action> {
        match &v.kind {
            ValueKind::Word(w) => self.action_word(file, w, v.span.clone(), &[]),
            ValueKind::Call(id, args) => self.action_word(file, &id.name, id.span.clone(), args),
            _ => {
                self.err(file, v.span.clone(), "E0205", "expected an action")
                    .label("not an action")
                    .help = Some("write e.g. `allow`, `errno(EPERM)` or `kill-process`".into());
                None
            }
        }
    }

    pub(super) fn errno(&mut self, file: FileId, v: &Value) -> Option<u16> {
        match &v.kind {
            ValueKind::Number(_) => self.integer(file, v, 4095).map(|n| n as u16),
            ValueKind::Word(w) => {
                let val = w
                    .starts_with('E')
                    .then(|| catalogue::constant(w, Arch::X86_64))
                    .flatten();
                match val {
                    Some(e) if e < 4096 => Some(e as u16),
                    _ => {
                        let d = self
                            .err(
                                file,
                                v.span.clone(),
                                "E0206",
                                format!("unknown errno `{w}`"),
                            )
                            .label("not an errno name");
                        d.help = Some(
                            did_you_mean(
                                w,
                                catalogue::constant_names().filter(|n| n.starts_with('E')),
                            )
                            .unwrap_or_else(|| {
                                "use a name like EPERM or ENOSYS, or a number".into()
                            }),
                        );
                        None
                    }
                }
            }
            _ => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0206",
                    "expected an errno name or number",
                );
                None
            }
        }
    }

    /// `ACTION SYSCALLS… [if COND]`
    pub(super) fn rule(&mut self, file: FileId, s: &Stmt) -> Option<Rule> {
        let name = s.keyword.name.as_str();
        let action = if Self::ACTIONS.contains(&name) {
            self.action_word(
                file,
                name,
                s.keyword.span.clone(),
                s.head_args.as_deref().unwrap_or(&[]),
            )
        } else {
            let keys = [
                "default",
                "bad-arch",
                "unknown",
                "deny-errno",
                "arches",
                "flags",
            ];
            let all: Vec<&str> = keys.iter().chain(Self::ACTIONS).copied().collect();
            let d = self
                .err(
                    file,
                    s.keyword.span.clone(),
                    "E0205",
                    format!("unknown action `{name}`"),
                )
                .label("expected an action or a seccomp setting");
            d.help = Some(did_you_mean(name, all).unwrap_or_else(|| {
                "a rule is `ACTION SYSCALL… [if CONDITION]`, e.g. `allow read write`".into()
            }));
            None
        };
        let mut syscalls = BTreeSet::new();
        let values = s.values.as_slice();
        for v in Self::flat(values) {
            match &v.kind {
                ValueKind::Word(w) => {
                    if catalogue::syscall(w).is_some() {
                        syscalls.insert(w.clone());
                    } else {
                        let d = self
                            .err(
                                file,
                                v.span.clone(),
                                "E0207",
                                format!("unknown syscall `{w}`"),
                            )
                            .label("not a syscall of x86_64, x86, x32 or aarch64");
                        d.help = Some(
                            did_you_mean(w, catalogue::syscalls().iter().map(|d| d.name))
                                .unwrap_or_else(|| {
                                    format!(
                                        "the catalogue follows Linux {}",
                                        catalogue::KERNEL_VERSION
                                    )
                                }),
                        );
                    }
                }
                ValueKind::SetRef(g) => match catalogue::expand_group(g) {
                    Some(set) => syscalls.extend(set.into_iter().map(String::from)),
                    None => {
                        let d = self
                            .err(
                                file,
                                v.span.clone(),
                                "E0208",
                                format!("unknown syscall set `@{g}`"),
                            )
                            .label("not a syscall set");
                        d.help = Some(
                            match crate::diagnostics::suggest(
                                g,
                                catalogue::groups().iter().map(|g| g.name),
                            ) {
                                Some(h) => format!("did you mean `@{h}`?"),
                                None => format!(
                                    "sets are {}",
                                    catalogue::groups()
                                        .iter()
                                        .map(|g| format!("@{}", g.name))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            },
                        );
                    }
                },
                _ => {
                    self.err(
                        file,
                        v.span.clone(),
                        "E0209",
                        "expected a syscall name or `@set`",
                    )
                    .label("not a syscall");
                }
            }
        }
        if syscalls.is_empty() && !s.values.is_empty() {
            return None;
        }
        if s.values.is_empty() {
            self.err(file, s.span.clone(), "E0210", "rule names no syscall")
                .label("expected syscall names after the action")
                .help = Some(format!("write e.g. `{} read write`", s.keyword.name));
            return None;
        }
        let names: Vec<String> = syscalls.into_iter().collect();
        let cond = match &s.cond {
            None => None,
            Some(e) => Some(self.cond(file, e, &names)?),
        };
        // The origin is filled in by `finish`, which has the source map.
        Some(Rule {
            action: action?,
            syscalls: names,
            cond,
            origin: Origin {
                file: String::new(),
                line: 0,
                column: 0,
            },
        })
    }

    pub(super) fn cond(&mut self, file: FileId, e: &Expr, syscalls: &[String]) -> Option<Cond> {
        Some(match &e.kind {
            ExprKind::Or(v) => Cond::Or(
                v.iter()
                    .map(|e| self.cond(file, e, syscalls))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect::<Option<_>>()?,
            ),
            ExprKind::And(v) => Cond::And(
                v.iter()
                    .map(|e| self.cond(file, e, syscalls))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect::<Option<_>>()?,
            ),
            ExprKind::Not(c) => Cond::Not(Box::new(self.cond(file, c, syscalls)?)),
            ExprKind::In(lhs, set) => {
                if let OperandKind::Name(n) = &lhs.kind {
                    if n == "arch" {
                        let arches = set
                            .iter()
                            .map(|o| self.arch_operand(file, o))
                            .collect::<Vec<_>>()
                            .into_iter()
                            .collect::<Option<Vec<_>>>()?;
                        return Some(Cond::Arch(arches));
                    }
                }
                let parts = set
                    .iter()
                    .map(|o| self.cmp(file, lhs, syntax::CmpOp::Eq, o, e.span.clone(), syscalls))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect::<Option<Vec<_>>>()?;
                if parts.is_empty() {
                    self.err(file, e.span.clone(), "E0301", "empty set")
                        .label("`in {}` never matches");
                    return None;
                }
                Cond::Or(parts)
            }
            ExprKind::Cmp(l, op, r) => {
                let is_arch = |o: &Operand| matches!(&o.kind, OperandKind::Name(n) if n == "arch");
                if is_arch(l) || is_arch(r) {
                    let other = if is_arch(l) { r } else { l };
                    let arch = self.arch_operand(file, other)?;
                    return match op {
                        syntax::CmpOp::Eq => Some(Cond::Arch(vec![arch])),
                        syntax::CmpOp::Ne => Some(Cond::Not(Box::new(Cond::Arch(vec![arch])))),
                        _ => {
                            self.err(
                                file,
                                e.span.clone(),
                                "E0302",
                                "`arch` can only be compared with `==`, `!=` or `in`",
                            );
                            None
                        }
                    };
                }
                self.cmp(file, l, *op, r, e.span.clone(), syscalls)?
            }
        })
    }

    pub(super) fn arch_operand(&mut self, file: FileId, o: &Operand) -> Option<Arch> {
        if let OperandKind::Name(n) = &o.kind {
            if let Some(a) = Arch::from_name(n) {
                return Some(a);
            }
        }
        self.err(file, o.span.clone(), "E0201", "expected an architecture")
            .label("not x86_64, x86, x32 or aarch64");
        None
    }

    /// One comparison: one side names an argument (optionally masked), the other is a
    /// constant expression.
    pub(super) fn cmp(
        &mut self,
        file: FileId,
        l: &Operand,
        op: syntax::CmpOp,
        r: &Operand,
        span: Range<usize>,
        syscalls: &[String],
    ) -> Option<Cond> {
        let arg_side = |o: &Operand| -> Option<(String, Option<Operand>)> {
            match &o.kind {
                OperandKind::Name(n) if catalogue::constant(n, Arch::X86_64).is_none() => {
                    Some((n.clone(), None))
                }
                OperandKind::Bit(BitOp::And, a, m) => match &a.kind {
                    OperandKind::Name(n) if catalogue::constant(n, Arch::X86_64).is_none() => {
                        Some((n.clone(), Some((**m).clone())))
                    }
                    _ => None,
                },
                _ => None,
            }
        };
        let (arg, mask, op, value) = match (arg_side(l), arg_side(r)) {
            (Some((a, m)), None) => (a, m, op, r),
            (None, Some((a, m))) => (a, m, flip(op), l),
            (Some(_), Some(_)) => {
                // Both sides look like names: report the one that is not an argument.
                let (a, _) = arg_side(l).expect("checked");
                self.check_arg(file, l.span.clone(), &a, syscalls)?;
                let d = self
                    .err(file, r.span.clone(), "E0303", "expected a constant")
                    .label("compare an argument with a constant");
                if let OperandKind::Name(n) = &r.kind {
                    d.help = did_you_mean(n, catalogue::constant_names());
                }
                return None;
            }
            (None, None) => {
                self.err(file, span, "E0304", "comparison names no argument")
                    .label("one side must be an argument of the syscall")
                    .help = Some(format!(
                    "arguments of `{}` are {}",
                    syscalls[0],
                    arg_names(&syscalls[0])
                ));
                return None;
            }
        };
        let arg_span = if arg_side(l).is_some() {
            l.span.clone()
        } else {
            r.span.clone()
        };
        let kind = self.check_arg(file, arg_span, &arg, syscalls)?;
        let value = self.const_expr(file, value)?;
        let mask = match &mask {
            Some(m) => Some(self.const_expr(file, m)?),
            None => None,
        };
        // Range checks against the argument's width, on the x86_64 values.
        let v = value.eval(Arch::X86_64);
        if kind.is_32bit() && v > 0xffff_ffff && v < 0xffff_ffff_8000_0000 {
            self.err(
                file,
                span.clone(),
                "E0305",
                format!("`{v:#x}` does not fit the 32-bit argument `{arg}`"),
            )
            .label("only the low 32 bits of this argument are compared")
            .help = Some("use a value below 0x100000000".into());
            return None;
        }
        if let (Some(m), CmpOp::Eq | CmpOp::Ne) = (&mask, op) {
            let (m, v) = (m.eval(Arch::X86_64), value.eval(Arch::X86_64));
            let width = if kind.is_32bit() {
                0xffff_ffff
            } else {
                u64::MAX
            };
            let outside = v & width & !m;
            if outside != 0 {
                let never = if op == CmpOp::Eq { "never" } else { "always" };
                self.err(
                    file,
                    span.clone(),
                    "E0315",
                    format!("this comparison is {never} true: `{v:#x}` has bits outside the mask `{m:#x}`"),
                )
                .label(format!("`{arg} & {m:#x}` cannot have the bits {outside:#x}"))
                .help = Some(format!(
                    "compare with a value inside the mask (`{:#x}`), or widen the mask to `{:#x}`",
                    v & m,
                    m | v
                ));
                return None;
            }
        }
        Some(Cond::Arg(ArgCmp {
            arg,
            mask,
            op,
            value,
        }))
    }

    /// Check that `arg` is an argument of every syscall in the rule, at the same position,
    /// and can be filtered. Returns its kind.
    pub(super) fn check_arg(
        &mut self,
        file: FileId,
        span: Range<usize>,
        arg: &str,
        syscalls: &[String],
    ) -> Option<catalogue::ArgKind> {
        let mut found: Option<(usize, catalogue::ArgKind)> = None;
        for s in syscalls {
            let def = catalogue::syscall(s).expect("names were checked");
            let Some(sig) = def.signature() else {
                self.err(
                    file,
                    span,
                    "E0306",
                    format!("no argument signature is known for `{s}`"),
                )
                .label("cannot filter its arguments")
                .help = Some("write a separate rule without a condition for this syscall".into());
                return None;
            };
            // An argument of one ABI's own signature (i386 `pread64`'s `poslo`) is named
            // too; E0314 checks that the rule means something on every targeted ABI.
            let sig = std::iter::once(sig)
                .chain(
                    [Arch::Aarch64, Arch::X86, Arch::X32]
                        .into_iter()
                        .filter_map(|a| def.args(a)),
                )
                .find(|g| g.iter().any(|a| a.name == arg))
                .unwrap_or(sig);
            let Some(i) = sig.iter().position(|a| a.name == arg) else {
                let d = self
                    .err(
                        file,
                        span,
                        "E0307",
                        format!("`{s}` has no argument `{arg}`"),
                    )
                    .label("unknown argument");
                d.help = Some(match did_you_mean(arg, sig.iter().map(|a| a.name)) {
                    Some(h) => h,
                    None => format!("arguments of `{s}` are {}", arg_names(s)),
                });
                return None;
            };
            let kind = sig[i].kind;
            if kind == catalogue::ArgKind::Ptr {
                let mut d = Diagnostic::error(
                    "E0308",
                    format!("argument `{arg}` of `{s}` is a pointer"),
                    Span::new(file, span),
                )
                .with_label("seccomp sees only the address, not what it points to");
                d.help = Some(if s == "clone3" {
                    "deny `clone3` with `errno(ENOSYS)` so libc falls back to `clone`, whose flags are a register".into()
                } else {
                    "pointer arguments cannot be filtered by seccomp; restrict the syscall as a whole, or use Landlock or an LSM rule".into()
                });
                self.diags.push(d);
                return None;
            }
            if let Some((j, _)) = found {
                if j != i {
                    self.err(file, span, "E0309", format!("argument `{arg}` is not at the same position in every syscall of this rule"))
                        .help = Some("write one rule per syscall".into());
                    return None;
                }
            }
            found = Some((i, kind));
        }
        found.map(|(_, k)| k)
    }

    pub(super) fn const_expr(&mut self, file: FileId, o: &Operand) -> Option<ConstExpr> {
        Some(match &o.kind {
            OperandKind::Number(n) => match (n.int, &n.unit) {
                (Some(i), None) if (-(1i128 << 63)..(1i128 << 64)).contains(&i) => {
                    ConstExpr::Num(i as u64)
                }
                _ => {
                    self.err(
                        file,
                        o.span.clone(),
                        "E0310",
                        format!("`{}` is not a 64-bit integer", n.text),
                    )
                    .label("invalid constant");
                    return None;
                }
            },
            OperandKind::Name(n) => {
                if catalogue::constant(n, Arch::X86_64).is_none() {
                    let d = self
                        .err(
                            file,
                            o.span.clone(),
                            "E0311",
                            format!("unknown constant `{n}`"),
                        )
                        .label("not a known constant");
                    d.help = did_you_mean(n, catalogue::constant_names());
                    return None;
                }
                ConstExpr::Name(n.clone())
            }
            OperandKind::Bit(op, a, b) => {
                let a = Box::new(self.const_expr(file, a)?);
                let b = Box::new(self.const_expr(file, b)?);
                match op {
                    BitOp::And => ConstExpr::And(a, b),
                    BitOp::Or => ConstExpr::Or(a, b),
                }
            }
        })
    }

    // -----------------------------------------------------------------------------------
    // capabilities
}

/// The kernel's limit on a seccomp program's length (BPF_MAXINSNS), and so on the
/// argument comparisons of a policy.
pub(super) const MAX_COMPARISONS: usize = 4096;

pub(super) fn flip(op: syntax::CmpOp) -> syntax::CmpOp {
    use syntax::CmpOp::*;
    match op {
        Lt => Gt,
        Le => Ge,
        Gt => Lt,
        Ge => Le,
        o => o,
    }
}

pub(super) fn arg_names(syscall: &str) -> String {
    match catalogue::syscall(syscall).and_then(|d| d.signature()) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|a| format!("`{}`", a.name))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    }
}

pub(super) fn ranges_overlap(a: u32, n: u32, b: u32, m: u32) -> bool {
    let (a, n, b, m) = (u64::from(a), u64::from(n), u64::from(b), u64::from(m));
    a < b + m && b < a + n
}
