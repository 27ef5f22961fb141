//! The resolved policy: what a policy means once `extends`/`use` are applied, names are
//! resolved and defaults are filled in. Backends are pure functions of this type.
//!
//! Architecture invariant: nothing here refers to syntax. Rules keep an [`Origin`] (file,
//! line, column) so tools can say which rule decided, but no spans or pest types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::{self, Arch};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    /// Files the policy was built from, root first.
    pub sources: Vec<String>,
    pub seccomp: Seccomp,
    pub capabilities: Capabilities,
    pub identity: Identity,
    pub namespaces: Namespaces,
    pub filesystem: Filesystem,
    pub network: Network,
    pub resources: Resources,
    pub process: Process,
    pub selinux: Option<SeLinux>,
    pub apparmor: Option<AppArmor>,
}

/// Where a rule or setting was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

// ---------------------------------------------------------------------------------------
// seccomp

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "action", content = "value", rename_all = "kebab-case")]
pub enum Action {
    Allow,
    Errno(u16),
    KillProcess,
    KillThread,
    Trap,
    Log,
    Trace(u16),
    Notify,
}

impl Action {
    /// The policy-language spelling (`errno(EPERM)` is shown by number: `errno(1)`).
    pub fn to_source(self) -> String {
        match self {
            Action::Allow => "allow".into(),
            Action::Errno(e) => format!("errno({})", errno_name(e).unwrap_or(&e.to_string())),
            Action::KillProcess => "kill-process".into(),
            Action::KillThread => "kill-thread".into(),
            Action::Trap => "trap".into(),
            Action::Log => "log".into(),
            Action::Trace(n) => format!("trace({n})"),
            Action::Notify => "notify".into(),
        }
    }
}

fn errno_name(e: u16) -> Option<&'static str> {
    // Prefer the canonical names for values with aliases.
    match e {
        11 => return Some("EAGAIN"),
        35 => return Some("EDEADLK"),
        _ => {}
    }
    catalogue::constant_names()
        .filter(|n| n.starts_with('E') && !n.starts_with("EXT"))
        .find(|n| catalogue::constant(n, Arch::X86_64) == Some(u64::from(e)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompFlag {
    Log,
    SpecAllow,
    Tsync,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seccomp {
    /// `false` when the policy says `seccomp off`: no filter is installed.
    pub enabled: bool,
    pub default_action: Action,
    /// For syscalls of an architecture the policy does not target (and x32 numbers on
    /// x86_64 unless x32 is targeted).
    pub bad_arch_action: Action,
    /// For syscall numbers the catalogue does not know on an arch (newer than Linux 6.18,
    /// or gaps in the table). `errno(ENOSYS)` lets libc fall back, as runc does.
    pub unknown_action: Action,
    pub arches: Vec<Arch>,
    pub flags: Vec<SeccompFlag>,
    /// Ordered: the first rule that matches a syscall decides.
    pub rules: Vec<Rule>,
    /// i386 multiplexers (`socketcall`, `ipc`) through which the policy knowingly lets
    /// argument rules on their calls be bypassed (`acknowledge socketcall`): what runc
    /// and libseccomp do with Docker's profile. Without it that is an error (E0312).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledged: Vec<catalogue::Mux>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub action: Action,
    /// Syscall names, sorted, sets expanded.
    pub syscalls: Vec<String>,
    pub cond: Option<Cond>,
    pub origin: Origin,
}

/// A condition on the arch and arguments of a syscall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// True on these arches.
    Arch(Vec<Arch>),
    Arg(ArgCmp),
}

/// A comparison operator of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CmpOp {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// `(arg & mask) OP value`, with constants kept symbolic where their value depends on the
/// arch (e.g. `O_DIRECTORY`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArgCmp {
    pub arg: String,
    pub mask: Option<ConstExpr>,
    pub op: CmpOp,
    pub value: ConstExpr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConstExpr {
    Num(u64),
    Name(String),
    And(Box<ConstExpr>, Box<ConstExpr>),
    Or(Box<ConstExpr>, Box<ConstExpr>),
}

impl ConstExpr {
    pub fn eval(&self, arch: Arch) -> u64 {
        match self {
            ConstExpr::Num(n) => *n,
            // Names were checked during resolution.
            ConstExpr::Name(n) => catalogue::constant(n, arch).unwrap_or(0),
            ConstExpr::And(a, b) => a.eval(arch) & b.eval(arch),
            ConstExpr::Or(a, b) => a.eval(arch) | b.eval(arch),
        }
    }
}

/// A comparison made concrete for one arch: register index, width and numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConcreteCmp {
    pub index: u8,
    /// Only the low 32 bits take part (a 32-bit argument, or any argument on i386).
    pub low32: bool,
    /// A signed 32-bit argument (`int`): libc passes it sign-extended to 64 bits.
    pub signed32: bool,
    pub mask: Option<u64>,
    #[serde(skip)]
    pub op: CmpOpOrd,
    pub value: u64,
}

/// `CmpOp` with an ordering, for use in sets and maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOpOrd {
    #[default]
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl From<CmpOp> for CmpOpOrd {
    fn from(o: CmpOp) -> Self {
        match o {
            CmpOp::Eq => CmpOpOrd::Eq,
            CmpOp::Ne => CmpOpOrd::Ne,
            CmpOp::Lt => CmpOpOrd::Lt,
            CmpOp::Le => CmpOpOrd::Le,
            CmpOp::Gt => CmpOpOrd::Gt,
            CmpOp::Ge => CmpOpOrd::Ge,
        }
    }
}

impl ConcreteCmp {
    /// Evaluate against the raw 64-bit register value.
    pub fn eval(&self, args: &[u64; 6]) -> bool {
        let mut a = args[self.index as usize];
        let mut v = self.value;
        if self.low32 {
            a &= 0xffff_ffff;
            v &= 0xffff_ffff;
        }
        if let Some(m) = self.mask {
            a &= m;
        }
        match self.op {
            CmpOpOrd::Eq => a == v,
            CmpOpOrd::Ne => a != v,
            CmpOpOrd::Lt => a < v,
            CmpOpOrd::Le => a <= v,
            CmpOpOrd::Gt => a > v,
            CmpOpOrd::Ge => a >= v,
        }
    }
}

impl Cond {
    /// Resolve against one arch and syscall: arch tests become constants, argument names
    /// become register indexes. `None` when an argument cannot be located on this arch
    /// (resolution rejects such policies, so backends never see it).
    pub fn concrete(&self, arch: Arch, syscall: &str) -> Option<ConcreteCond> {
        let sig = catalogue::syscall(syscall).and_then(|d| d.args(arch));
        self.concrete_with(arch, sig)
    }

    /// [`Cond::concrete`] with the syscall's signature on `arch` looked up once.
    fn concrete_with(&self, arch: Arch, sig: Option<&[catalogue::Arg]>) -> Option<ConcreteCond> {
        Some(match self {
            // An arch test that decides the whole condition on this ABI makes the other
            // parts moot (`arch == x86_64 && prot == 3` on x86, where `prot` is not a
            // register): only then may they be left unresolved.
            Cond::And(v) => {
                let parts: Vec<Option<ConcreteCond>> =
                    v.iter().map(|c| c.concrete_with(arch, sig)).collect();
                if parts.contains(&Some(ConcreteCond::Const(false))) {
                    return Some(ConcreteCond::Const(false));
                }
                ConcreteCond::And(parts.into_iter().collect::<Option<_>>()?)
            }
            Cond::Or(v) => {
                let parts: Vec<Option<ConcreteCond>> =
                    v.iter().map(|c| c.concrete_with(arch, sig)).collect();
                if parts.contains(&Some(ConcreteCond::Const(true))) {
                    return Some(ConcreteCond::Const(true));
                }
                ConcreteCond::Or(parts.into_iter().collect::<Option<_>>()?)
            }
            Cond::Not(c) => match c.concrete_with(arch, sig)? {
                ConcreteCond::Const(b) => ConcreteCond::Const(!b),
                c => ConcreteCond::Not(Box::new(c)),
            },
            Cond::Arch(a) => ConcreteCond::Const(a.contains(&arch)),
            Cond::Arg(c) => {
                let args = sig?;
                let index = args.iter().position(|a| a.name == c.arg)?;
                let kind = args[index].kind;
                let low32 = kind.is_32bit() || !arch.is_64bit();
                let width = if low32 { 0xffff_ffff } else { u64::MAX };
                let (mask, value) = (c.mask.as_ref().map(|m| m.eval(arch)), c.value.eval(arch));
                // `(a & m) == v` with bits of `v` outside `m` never holds: fold it here so
                // backends never see a masked comparison whose value the mask cuts.
                if let (Some(m), CmpOp::Eq | CmpOp::Ne) = (mask, c.op) {
                    if (value & width) & !m != 0 {
                        return Some(ConcreteCond::Const(c.op == CmpOp::Ne));
                    }
                }
                ConcreteCond::Cmp(ConcreteCmp {
                    index: index as u8,
                    low32: kind.is_32bit() || !arch.is_64bit(),
                    signed32: kind.is_32bit() && kind.is_signed(),
                    mask: c.mask.as_ref().map(|m| m.eval(arch)),
                    op: c.op.into(),
                    value: c.value.eval(arch),
                })
            }
        })
    }
}

/// A condition for one arch and syscall.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConcreteCond {
    Const(bool),
    And(Vec<ConcreteCond>),
    Or(Vec<ConcreteCond>),
    Not(Box<ConcreteCond>),
    Cmp(ConcreteCmp),
}

impl ConcreteCond {
    /// The value when only the first argument is known (`None`: it depends on others).
    pub fn eval_arg0(&self, a0: u64) -> Option<bool> {
        match self {
            ConcreteCond::Const(b) => Some(*b),
            // `And` is decided by one false part, `Or` by one true part.
            ConcreteCond::And(v) | ConcreteCond::Or(v) => {
                let decisive = matches!(self, ConcreteCond::Or(_));
                let r: Vec<Option<bool>> = v.iter().map(|c| c.eval_arg0(a0)).collect();
                if r.contains(&Some(decisive)) {
                    Some(decisive)
                } else if r.iter().all(|x| *x == Some(!decisive)) {
                    Some(!decisive)
                } else {
                    None
                }
            }
            ConcreteCond::Not(c) => c.eval_arg0(a0).map(|b| !b),
            ConcreteCond::Cmp(c) if c.index == 0 => Some(c.eval(&[a0, 0, 0, 0, 0, 0])),
            ConcreteCond::Cmp(_) => None,
        }
    }

    pub fn eval(&self, args: &[u64; 6]) -> bool {
        match self {
            ConcreteCond::Const(b) => *b,
            ConcreteCond::And(v) => v.iter().all(|c| c.eval(args)),
            ConcreteCond::Or(v) => v.iter().any(|c| c.eval(args)),
            ConcreteCond::Not(c) => !c.eval(args),
            ConcreteCond::Cmp(c) => c.eval(args),
        }
    }
}

/// One rule made concrete for an arch: syscall numbers instead of names.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchRule {
    pub action: Action,
    pub nrs: Vec<u32>,
    pub cond: Option<ConcreteCond>,
    /// Index into [`Seccomp::rules`].
    pub rule: usize,
}

/// The decision for one syscall, and which rule made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// `None` for the default or bad-arch action.
    pub rule: Option<usize>,
}

/// On i386, the socket calls and the SysV IPC calls can also be made through the
/// multiplexers `socketcall(SYS_X, args)` and `ipc(X, …)`, whose other arguments the filter
/// cannot see. A rule that decides such a call whatever its arguments also decides that
/// `call` of the multiplexer, at the rule's own place in the order (libseccomp adds the
/// same rules): without it `deny socket` would leave `socketcall(SYS_SOCKET, …)` to the
/// default action. A rule with argument conditions implies nothing (resolution refuses it
/// where the multiplexer is open: E0312).
///
/// The conditions on `call` for each multiplexer that `rule` implies on `arch`.
pub fn implied_mux(rule: &Rule, arch: Arch) -> Vec<(catalogue::Mux, ConcreteCond)> {
    if arch != Arch::X86 {
        return Vec::new();
    }
    let mut calls: std::collections::BTreeMap<catalogue::Mux, Vec<u32>> = Default::default();
    for s in &rule.syscalls {
        if let Some((mux, call)) = catalogue::multiplexed(s) {
            calls.entry(mux).or_default().push(call);
        }
    }
    if calls.is_empty() {
        return Vec::new();
    }
    if let Some(c) = &rule.cond {
        // Decided whatever the arguments only if the condition is constant on x86 (an
        // arch test); its argument positions are those of the first multiplexed call.
        let first = rule
            .syscalls
            .iter()
            .find(|s| catalogue::multiplexed(s).is_some());
        match first.and_then(|s| c.concrete(arch, s)) {
            Some(ConcreteCond::Const(true)) => {}
            _ => return Vec::new(),
        }
    }
    calls
        .into_iter()
        // A rule that names the multiplexer itself already decides all of it.
        .filter(|(mux, _)| !rule.syscalls.iter().any(|s| s == mux.name()))
        .map(|(mux, mut v)| {
            v.sort_unstable();
            v.dedup();
            (mux, mux_cond(mux, &v))
        })
        .collect()
}

/// The multiplexers through which an i386 program can get around an argument rule of
/// `rules` (one that looks at the arguments of a multiplexed call while that call of the
/// multiplexer is open): what E0312 refuses unless acknowledged.
pub fn bypassable_muxes(rules: &[Rule], default: Action, arches: &[Arch]) -> Vec<catalogue::Mux> {
    let mut out = Vec::new();
    if !arches.contains(&Arch::X86) {
        return out;
    }
    for r in rules {
        let Some(c) = &r.cond else { continue };
        for name in &r.syscalls {
            let Some((mux, call)) = catalogue::multiplexed(name) else {
                continue;
            };
            if out.contains(&mux)
                || matches!(c.concrete(Arch::X86, name), Some(ConcreteCond::Const(_)))
            {
                continue;
            }
            if mux_opened_by(rules, default, mux, call).is_some() {
                out.push(mux);
            }
        }
    }
    out.sort();
    out
}

/// Whether an i386 program may reach `call` of `mux` with some arguments: `None` when no
/// rule allows it, otherwise the rule that may (`Some(None)`: the default action). Rules
/// are in policy order; conditions on the multiplexer's other arguments count as "may".
pub fn mux_opened_by<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
    default: Action,
    mux: catalogue::Mux,
    call: u32,
) -> Option<Option<usize>> {
    let opens = |a: Action| matches!(a, Action::Allow | Action::Log);
    for (i, r) in rules.into_iter().enumerate() {
        let cond = if r.syscalls.iter().any(|s| s == mux.name()) {
            match &r.cond {
                None => None,
                Some(c) => match c.concrete(Arch::X86, mux.name()) {
                    None => continue,
                    Some(c) => Some(c),
                },
            }
        } else {
            match implied_mux(r, Arch::X86)
                .into_iter()
                .find(|(m, _)| *m == mux)
            {
                Some((_, c)) => Some(c),
                None => continue,
            }
        };
        let known = cond
            .as_ref()
            .map_or(Some(true), |c| c.eval_arg0(u64::from(call)));
        match known {
            Some(false) => {}
            Some(true) => return opens(r.action).then_some(Some(i)),
            None if opens(r.action) => return Some(Some(i)),
            None => {}
        }
    }
    opens(default).then_some(None)
}

/// `call ∈ calls` for a multiplexer: runs of consecutive values become ranges (of an
/// unmasked call).
fn mux_cond(mux: catalogue::Mux, calls: &[u32]) -> ConcreteCond {
    let cmp = |op: CmpOpOrd, value: u32| {
        ConcreteCond::Cmp(ConcreteCmp {
            index: 0,
            low32: true,
            signed32: false,
            mask: mux.call_mask(),
            op,
            value: u64::from(value),
        })
    };
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &c in calls {
        match runs.last_mut() {
            Some((_, hi)) if *hi + 1 == c => *hi = c,
            _ => runs.push((c, c)),
        }
    }
    let mut alts: Vec<ConcreteCond> = Vec::new();
    for (lo, hi) in runs {
        // A masked call (`ipc`) is matched by masked equality only: no backend has a
        // masked range (libseccomp has only masked equality).
        if hi - lo < 2 || mux.call_mask().is_some() {
            alts.extend((lo..=hi).map(|c| cmp(CmpOpOrd::Eq, c)));
        } else {
            alts.push(ConcreteCond::And(vec![
                cmp(CmpOpOrd::Ge, lo),
                cmp(CmpOpOrd::Le, hi),
            ]));
        }
    }
    if alts.len() == 1 {
        alts.pop().unwrap_or(ConcreteCond::Const(false))
    } else {
        ConcreteCond::Or(alts)
    }
}

impl Seccomp {
    /// The rules that apply on `arch`, in order, with names turned into numbers. Syscalls
    /// that do not exist on `arch` are left out. On x86 a rule is followed by the
    /// multiplexer calls it implies ([`implied_mux`]), with the same rule index.
    pub fn for_arch(&self, arch: Arch) -> Vec<ArchRule> {
        let mut out = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let nrs: Vec<u32> = r
                .syscalls
                .iter()
                .filter_map(|s| catalogue::syscall(s).and_then(|d| d.nr(arch)))
                .collect();
            let implied: Vec<ArchRule> = implied_mux(r, arch)
                .into_iter()
                .filter_map(|(mux, cond)| {
                    let nr = catalogue::syscall(mux.name())?.nr(arch)?;
                    Some(ArchRule {
                        action: r.action,
                        nrs: vec![nr],
                        cond: Some(cond),
                        rule: i,
                    })
                })
                .collect();
            if nrs.is_empty() {
                out.extend(implied);
                continue;
            }
            // A condition only depends on the syscall through argument positions, which
            // are the same for every syscall a multi-syscall rule names (resolution checks
            // this), so the first syscall is enough.
            let cond = match &r.cond {
                None => None,
                Some(c) => {
                    let first = r
                        .syscalls
                        .iter()
                        .find(|s| catalogue::syscall(s).and_then(|d| d.nr(arch)).is_some());
                    match first.and_then(|s| c.concrete(arch, s)) {
                        Some(ConcreteCond::Const(true)) => None,
                        Some(ConcreteCond::Const(false)) => continue,
                        Some(c) => Some(c),
                        None => continue,
                    }
                }
            };
            out.push(ArchRule {
                action: r.action,
                nrs,
                cond,
                rule: i,
            });
            out.extend(implied);
        }
        out
    }

    /// The policy's own meaning: the decision for a syscall, straight from the rules.
    /// This is the independent interpretation compiled filters are checked against.
    /// Deciding many argument vectors of one syscall: [`Decider`].
    pub fn decide(&self, audit_arch: u32, nr: u32, args: &[u64; 6]) -> Decision {
        Decider::new(self).decide(audit_arch, nr, args)
    }
}

/// How one rule stands for one syscall on one ABI: its action and condition.
type Candidate = (usize, Action, Option<ConcreteCond>);

/// [`Seccomp::decide`], with the rules that name each syscall and their conditions, made
/// concrete for its ABI, kept between calls: checking a program calls it for every
/// boundary argument vector of a syscall, and a condition is made concrete once instead
/// of once per vector (linear instead of quadratic in the condition's size).
pub struct Decider<'a> {
    s: &'a Seccomp,
    cache: std::collections::HashMap<(u32, u32), Result<Vec<Candidate>, Decision>>,
}

impl<'a> Decider<'a> {
    pub fn new(s: &'a Seccomp) -> Self {
        Decider {
            s,
            cache: std::collections::HashMap::new(),
        }
    }

    /// The decision for a syscall: the same as [`Seccomp::decide`].
    pub fn decide(&mut self, audit_arch: u32, nr: u32, args: &[u64; 6]) -> Decision {
        let s = self.s;
        if !s.enabled {
            return Decision {
                action: Action::Allow,
                rule: None,
            };
        }
        let candidates = self
            .cache
            .entry((audit_arch, nr))
            .or_insert_with(|| candidates(s, audit_arch, nr));
        let candidates = match candidates {
            Ok(c) => c,
            Err(d) => return *d,
        };
        for (i, action, cond) in candidates.iter() {
            if cond.as_ref().is_none_or(|c| c.eval(args)) {
                return Decision {
                    action: *action,
                    rule: Some(*i),
                };
            }
        }
        Decision {
            action: s.default_action,
            rule: None,
        }
    }
}

/// The rules that may decide a syscall, in order (`Err`: a decision that needs no rule).
fn candidates(s: &Seccomp, audit_arch: u32, nr: u32) -> Result<Vec<Candidate>, Decision> {
    let bad = Decision {
        action: s.bad_arch_action,
        rule: None,
    };
    // x86_64 and x32 share an AUDIT_ARCH; the x32 bit of the number tells them apart.
    let arch = if audit_arch == Arch::X86_64.audit_arch() {
        // Numbers with the x32 bit belong to x32 (and are a foreign ABI unless x32 is
        // targeted), except -1, which a tracer uses to skip a syscall and which stays
        // on the native path.
        let a = match nr {
            u32::MAX => Arch::X86_64,
            0x4000_0000.. => Arch::X32,
            _ => Arch::X86_64,
        };
        if !s.arches.contains(&a) {
            // Targeting x32 alone still sees native x86_64 numbers as a foreign ABI.
            return Err(bad);
        }
        a
    } else {
        match s.arches.iter().find(|a| a.audit_arch() == audit_arch) {
            Some(a) => *a,
            None => return Err(bad),
        }
    };
    let Some(def) = catalogue::syscall_by_nr(arch, nr) else {
        return Err(Decision {
            action: s.unknown_action,
            rule: None,
        });
    };
    let mux = catalogue::Mux::ALL
        .into_iter()
        .find(|m| arch == Arch::X86 && m.name() == def.name);
    let mut out = Vec::new();
    for (i, r) in s.rules.iter().enumerate() {
        if !r.syscalls.iter().any(|s| s == def.name) {
            if let Some(m) = mux {
                if let Some((_, c)) = implied_mux(r, arch).into_iter().find(|(x, _)| *x == m) {
                    out.push((i, r.action, Some(c)));
                }
            }
            continue;
        }
        match &r.cond {
            None => {
                out.push((i, r.action, None));
                // Nothing after an unconditional rule is reached.
                break;
            }
            Some(c) => match c.concrete(arch, def.name) {
                // A condition that cannot apply on this ABI never matches.
                None => {}
                Some(c) => out.push((i, r.action, Some(c))),
            },
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// capabilities

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Capability names without `CAP_`, sorted by number.
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub ambient: Vec<String>,
}

impl Capabilities {
    /// Every capability the process may hold or regain: bounding and permitted, sorted.
    pub fn held(&self) -> Vec<&String> {
        let mut v: Vec<&String> = self.bounding.iter().chain(&self.permitted).collect();
        v.sort();
        v.dedup();
        v
    }
}

// ---------------------------------------------------------------------------------------
// identity and namespaces

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub groups: Vec<u32>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    /// Take extra id ranges of this user from /etc/subuid and /etc/subgid at launch.
    pub subids: Option<String>,
    pub rootless: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    Cgroup,
    Ipc,
    Mount,
    Net,
    Pid,
    Time,
    User,
    Uts,
}

impl NsKind {
    pub const ALL: [NsKind; 8] = [
        NsKind::Cgroup,
        NsKind::Ipc,
        NsKind::Mount,
        NsKind::Net,
        NsKind::Pid,
        NsKind::Time,
        NsKind::User,
        NsKind::Uts,
    ];
    pub fn name(self) -> &'static str {
        match self {
            NsKind::Cgroup => "cgroup",
            NsKind::Ipc => "ipc",
            NsKind::Mount => "mount",
            NsKind::Net => "net",
            NsKind::Pid => "pid",
            NsKind::Time => "time",
            NsKind::User => "user",
            NsKind::Uts => "uts",
        }
    }

    /// The kind `name` names: kakoi's name, or the OCI runtime spec's (`network`).
    pub fn from_name(name: &str) -> Option<NsKind> {
        match name {
            "network" => Some(NsKind::Net),
            _ => NsKind::ALL.into_iter().find(|k| k.name() == name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "path", rename_all = "lowercase")]
pub enum NsMode {
    /// Share the launcher's namespace.
    Host,
    /// A new namespace.
    New,
    /// Join the namespace at this path (e.g. `/proc/1/ns/net`).
    Join(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces(pub BTreeMap<NsKind, NsMode>);

impl Namespaces {
    pub fn get(&self, k: NsKind) -> &NsMode {
        self.0.get(&k).unwrap_or(&NsMode::Host)
    }
}

// ---------------------------------------------------------------------------------------
// filesystem

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Rootfs {
    /// Built from the host's /usr, /bin, /lib*, /etc, read-only.
    Host,
    Dir {
        path: String,
        readonly: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    pub lower: Vec<String>,
    /// `None`: a tmpfs upper layer, discarded at exit.
    pub upper: Option<String>,
    pub work: Option<String>,
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: String,
    pub target: String,
    pub readonly: bool,
    pub idmap: bool,
    /// Set-user-ID bits and file capabilities count on this bind (`suid`). Off by default:
    /// a writable bind is a host directory, and a set-user-ID-root file the sandbox makes
    /// there would be one any host user can run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suid: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    pub target: String,
    pub size: Option<u64>,
    pub mode: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    Exec,
    Make,
    Remove,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    pub path: String,
    pub access: Vec<Access>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    Required,
    BestEffort,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    pub rootfs: Rootfs,
    pub overlays: Vec<Overlay>,
    pub binds: Vec<Bind>,
    pub tmpfs: Vec<Tmpfs>,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    /// File access rules (Landlock, AppArmor). Empty: no file access restriction.
    pub access: Vec<PathRule>,
    pub landlock: Enforcement,
    /// Landlock scopes (ABI 6): IPC the sandbox may not reach outside itself.
    pub landlock_scopes: Vec<LandlockScope>,
    /// How the sandbox's copies of host mounts receive mounts the host makes later.
    #[serde(default, skip_serializing_if = "Propagation::is_private")]
    pub propagation: Propagation,
}

/// Mount propagation from the host into the sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// Nothing the host mounts after the launch appears inside (the default).
    #[default]
    Private,
    /// Host mounts made later under a bound path appear inside (`rslave`), with the host's
    /// own mount flags: kakoi cannot make them read-only, nodev or nosuid.
    Slave,
}

impl Propagation {
    pub fn is_private(&self) -> bool {
        *self == Propagation::Private
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandlockScope {
    /// Connecting to abstract unix sockets created outside the sandbox.
    AbstractUnix,
    /// Sending signals to processes outside the sandbox.
    Signal,
}

// ---------------------------------------------------------------------------------------
// network

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum NetMode {
    /// Own network namespace with only `lo`.
    None,
    Host,
    Veth {
        bridge: Option<String>,
        address: Option<String>,
        gateway: Option<String>,
        /// The network addresses are leased from (`None`: 10.88.0.0/16, or the
        /// `address`'s own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet: Option<String>,
    },
    /// A macvlan interface on a host link (`parent`), with an address of the parent's
    /// network: the sandbox is one more host on it (root only).
    Macvlan {
        parent: String,
        address: String,
        gateway: Option<String>,
    },
}

impl NetMode {
    /// The sandbox's `eth0` address and gateway, for the modes that give it one.
    pub fn eth0(&self) -> Option<(Option<&str>, Option<&str>)> {
        match self {
            NetMode::Veth {
                address, gateway, ..
            } => Some((address.as_deref(), gateway.as_deref())),
            NetMode::Macvlan {
                address, gateway, ..
            } => Some((Some(address.as_str()), gateway.as_deref())),
            NetMode::None | NetMode::Host => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub mode: NetMode,
    /// Allowed socket families (`AF_*` names without the prefix), empty: not restricted.
    pub families: Vec<String>,
    /// TCP ports `bind` may use (Landlock); `None`: not restricted.
    pub tcp_bind: Option<Vec<u16>>,
    /// TCP ports `connect` may reach (Landlock); `None`: not restricted.
    pub tcp_connect: Option<Vec<u16>>,
    /// Outbound NAT for a `veth` network's subnet (`nat on`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nat: bool,
    /// Host ports forwarded to the sandbox (`publish 8080 -> 80`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<Publish>,
}

/// One published port: connections to `host` on the host's own addresses go to
/// `sandbox` on the sandbox's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub udp: bool,
    pub host: u16,
    pub sandbox: u16,
}

// ---------------------------------------------------------------------------------------
// resources and process

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub memory: Option<u64>,
    pub memory_swap: Option<u64>,
    pub pids: Option<u64>,
    /// CPU quota in microseconds per `cpu_period`.
    pub cpu_quota: Option<u64>,
    pub cpu_period: u64,
    pub cpu_weight: Option<u64>,
    pub io_weight: Option<u64>,
    pub rlimits: Vec<Rlimit>,
    /// Whether a missing cgroup (rootless, no delegation) is fatal.
    pub cgroup: Option<Enforcement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub no_new_privs: bool,
    pub hostname: Option<String>,
    /// Time-namespace offsets in seconds: (clock, offset).
    pub time_offsets: Vec<(String, i64)>,
    /// Wall-time limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// A small init (kakoi's own) between the launcher and the payload: forwards signals,
    /// reaps orphans. Off: the payload is pid 1 of its pid namespace itself.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub init: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

// ---------------------------------------------------------------------------------------
// LSMs

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Level {
    Fixed(String),
    /// A random pair of MCS categories chosen at launch.
    Random,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeLinux {
    pub enforcement: Enforcement,
    pub user: String,
    pub role: String,
    pub r#type: String,
    pub level: Level,
    pub mount_label: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AaMode {
    Enforce,
    Complain,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppArmor {
    pub enforcement: Enforcement,
    pub profile: String,
    pub mode: AaMode,
    /// Extra rules copied into the profile, with where they were written.
    pub rules: Vec<AaRule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AaRule {
    pub text: String,
    pub origin: Origin,
}
