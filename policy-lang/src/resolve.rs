//! Syntax tree -> resolved [`Policy`]: `extends`/`use`, keyword meaning, name resolution,
//! defaults, and checks that need the whole policy (shadowed rules, socketcall bypass).
//!
//! Layering: a file's `extends` parent is applied first, then each `use` in order, then the
//! file's own statements. Settings written later override earlier ones; lists (mounts,
//! masked paths…) accumulate; seccomp rules of a later layer are checked *before* the
//! rules of the layers it builds on, so the most specific rule wins under first-match.
//!
//! Architecture invariant: no I/O. Other policy files come through the caller's [`Loader`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::catalogue::{self, Arch};
use crate::diagnostics::{did_you_mean, line_col, Diagnostic, Span};
use crate::ir::*;
use crate::source::{FileId, SourceMap};
use crate::syntax::{self, BitOp, Expr, ExprKind, Operand, OperandKind, Stmt, Value, ValueKind};

/// Finds the text of policies named by `extends` and `use`.
pub trait Loader {
    /// Resolve `name` (as written, e.g. `default` or `./base.kakoi`) relative to the file
    /// named `from`; return a display name and the text, or a message saying why not.
    fn load(&self, name: &str, from: &str) -> Result<(String, String), String>;

    /// Names of the policies that can be named without a path (for help messages).
    fn shipped(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A loader that knows no other files (for tests and single-file checks).
pub struct NoLoader;

impl Loader for NoLoader {
    fn load(&self, name: &str, _from: &str) -> Result<(String, String), String> {
        Err(format!("no policy named `{name}` is available"))
    }
}

const SECTIONS: &[&str] = &[
    "seccomp",
    "capabilities",
    "identity",
    "namespaces",
    "filesystem",
    "network",
    "resources",
    "process",
    "selinux",
    "apparmor",
];
const TOP_LEVEL: &[&str] = &["kakoi", "policy", "description", "extends", "use"];

/// A `macvlan` block as written: parent, address, gateway, and where it is.
type MacvlanBlock = (Option<String>, Option<String>, Option<String>, Span);

/// Resolve the policy in `root` (already added to `map`).
pub fn resolve(
    map: &mut SourceMap,
    root: FileId,
    loader: &dyn Loader,
) -> (Option<Policy>, Vec<Diagnostic>) {
    let mut b = Builder::new();
    let default_name = policy_name_from_file(map.name(root));
    b.name = Some(default_name);
    b.root = Some(root);
    b.rules = b.apply_file(map, root, loader, &mut Vec::new());
    b.sources.reverse();
    let policy = b.finish(map);
    let diags = b.diags;
    let has_errors = diags.iter().any(Diagnostic::is_error);
    (if has_errors { None } else { policy }, diags)
}

fn policy_name_from_file(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.strip_suffix(".kakoi").unwrap_or(base).to_string()
}

#[derive(Default)]
struct CapSets {
    /// Where each capability was last granted, for warnings.
    granted_at: BTreeMap<u32, Span>,
    /// Risky capabilities the policy accepts knowingly (`acknowledge`).
    acknowledged: BTreeSet<u32>,
    /// The `capabilities` section, for errors about the sets as a whole.
    section: Option<Span>,
    bounding: BTreeSet<u32>,
    effective: BTreeSet<u32>,
    permitted: BTreeSet<u32>,
    inheritable: BTreeSet<u32>,
    ambient: BTreeSet<u32>,
}

struct Builder {
    root: Option<FileId>,
    /// The keyword span of each section, the most specific layer's.
    sections: BTreeMap<&'static str, Span>,
    diags: Vec<Diagnostic>,
    sources: Vec<String>,
    name: Option<String>,
    description: Option<String>,
    // seccomp
    seccomp_enabled: bool,
    /// Multiplexers whose bypass of argument rules the policy accepts (`acknowledge`).
    mux_acknowledged: BTreeMap<catalogue::Mux, Span>,
    /// `mode macvlan`, and the `macvlan` block (parent, address, gateway, where).
    macvlan_mode: bool,
    macvlan: Option<MacvlanBlock>,
    default_action: Option<Action>,
    bad_arch_action: Option<Action>,
    unknown_action: Option<Action>,
    deny_errno: u16,
    arches: Option<Vec<Arch>>,
    flags: Vec<SeccompFlag>,
    /// Rules of the file being applied, in written order.
    file_rules: Vec<(Rule, Span)>,
    /// All rules in first-match order, once the root file is applied.
    rules: Vec<(Rule, Span)>,
    caps: CapSets,
    identity: Identity,
    namespaces: BTreeMap<NsKind, NsMode>,
    rootfs: Rootfs,
    overlays: Vec<Overlay>,
    binds: Vec<Bind>,
    tmpfs: Vec<Tmpfs>,
    masked: Vec<String>,
    readonly: Vec<String>,
    access: Vec<PathRule>,
    landlock: Enforcement,
    landlock_scopes: Vec<LandlockScope>,
    propagation: Propagation,
    /// Spans of the `apparmor` extra rules, in order, for their origins.
    aa_rule_spans: Vec<Span>,
    network: Network,
    resources: Resources,
    process: Process,
    selinux: Option<SeLinux>,
    apparmor: Option<AppArmor>,
}

/// Values of a statement, with the statement for error spans.
struct Args<'a> {
    file: FileId,
    stmt: &'a Stmt,
}

impl Builder {
    fn new() -> Self {
        let mut namespaces = BTreeMap::new();
        for k in [
            NsKind::Cgroup,
            NsKind::Ipc,
            NsKind::Mount,
            NsKind::Net,
            NsKind::Pid,
            NsKind::Uts,
        ] {
            namespaces.insert(k, NsMode::New);
        }
        Builder {
            root: None,
            sections: BTreeMap::new(),
            diags: Vec::new(),
            sources: Vec::new(),
            name: None,
            description: None,
            seccomp_enabled: true,
            mux_acknowledged: BTreeMap::new(),
            macvlan_mode: false,
            macvlan: None,
            default_action: None,
            bad_arch_action: None,
            unknown_action: None,
            deny_errno: 1,
            arches: None,
            flags: Vec::new(),
            file_rules: Vec::new(),
            rules: Vec::new(),
            caps: CapSets::default(),
            identity: Identity::default(),
            namespaces,
            rootfs: Rootfs::Host,
            overlays: Vec::new(),
            binds: Vec::new(),
            tmpfs: Vec::new(),
            masked: Vec::new(),
            readonly: Vec::new(),
            access: Vec::new(),
            landlock: Enforcement::BestEffort,
            landlock_scopes: Vec::new(),
            propagation: Propagation::Private,
            aa_rule_spans: Vec::new(),
            network: Network {
                mode: NetMode::None,
                families: Vec::new(),
                tcp_bind: None,
                tcp_connect: None,
                nat: false,
                publish: Vec::new(),
            },
            resources: Resources {
                cpu_period: 100_000,
                ..Resources::default()
            },
            process: Process {
                argv: vec!["/bin/sh".into()],
                env: vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ],
                cwd: "/".into(),
                no_new_privs: true,
                hostname: None,
                time_offsets: Vec::new(),
                timeout_ms: None,
                init: true,
            },
            selinux: None,
            apparmor: None,
        }
    }

    /// A later `bind` or `tmpfs` on a target replaces an earlier one there (an inherited
    /// mount would otherwise be hidden by it, and still need its source).
    fn unmount(&mut self, target: &str) {
        self.binds.retain(|b| b.target != target);
        self.tmpfs.retain(|t| t.target != target);
    }

    fn err(
        &mut self,
        file: FileId,
        range: Range<usize>,
        code: &'static str,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::error(code, msg, Span::new(file, range)));
        self.diags.last_mut().expect("just pushed")
    }

    fn warn(
        &mut self,
        file: FileId,
        range: Range<usize>,
        code: &'static str,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::warning(code, msg, Span::new(file, range)));
        self.diags.last_mut().expect("just pushed")
    }

    // -----------------------------------------------------------------------------------
    // files and layering

    /// Apply one file (its includes first) and return its seccomp rules in first-match
    /// order: its own rules, then those of its `use`s (the last one first), then those of
    /// the policy it extends.
    fn apply_file(
        &mut self,
        map: &mut SourceMap,
        file: FileId,
        loader: &dyn Loader,
        stack: &mut Vec<String>,
    ) -> Vec<(Rule, Span)> {
        let name = map.name(file).to_string();
        stack.push(name.clone());
        self.sources.push(name.clone());
        let (tree, diags) = syntax::parse(file, map.text(file));
        self.diags.extend(diags);
        let outer_rules = std::mem::take(&mut self.file_rules);
        let mut included: Vec<Vec<(Rule, Span)>> = Vec::new();
        let mut seen_section = false;
        let mut seen_extends = false;
        for stmt in &tree.stmts {
            let kw = stmt.keyword.name.as_str();
            match kw {
                "extends" | "use" => {
                    if seen_section {
                        self.err(
                            file,
                            stmt.keyword.span.clone(),
                            "E0102",
                            format!("`{kw}` after a section"),
                        )
                        .label("must come before any section")
                        .help = Some("put `extends` and `use` at the top of the file".into());
                        continue;
                    }
                    if kw == "extends" {
                        if seen_extends {
                            self.err(
                                file,
                                stmt.span.clone(),
                                "E0103",
                                "a policy extends at most one other policy",
                            )
                            .help = Some("combine further policies with `use`".into());
                            continue;
                        }
                        seen_extends = true;
                    }
                    let Some(target) = self.one_string(file, stmt) else {
                        continue;
                    };
                    match loader.load(&target, &name) {
                        Err(why) => {
                            let shipped = loader.shipped();
                            let d = self
                                .err(
                                    file,
                                    stmt.values[0].span.clone(),
                                    "E0104",
                                    format!("cannot load `{target}`"),
                                )
                                .label(why.clone());
                            d.help = Some(match crate::diagnostics::suggest(&target, shipped.iter().map(String::as_str)) {
                                _ if target.contains('/') => "a relative path is relative to the file that names it".to_string(),
                                Some(s) => format!("did you mean `{s}`?"),
                                _ if shipped.is_empty() => format!("a local file needs a path like `./{target}.kakoi`"),
                                _ => format!("shipped policies are {}; a local file needs a path like `./{target}.kakoi`", shipped.join(", ")),
                            });
                        }
                        Ok((display, text)) => {
                            if stack.contains(&display) {
                                self.err(
                                    file,
                                    stmt.values[0].span.clone(),
                                    "E0105",
                                    format!("`{target}` includes itself"),
                                )
                                .label(format!("cycle: {} -> {display}", stack.join(" -> ")));
                                continue;
                            }
                            // A file included again (a diamond of `use`s, the same
                            // `use` twice) is applied once, where it is first included:
                            // applying it again could only repeat its settings and add
                            // rules that its first copy shadows, and re-applying makes
                            // resolution exponential in the depth of a diamond.
                            if self.sources.contains(&display) {
                                continue;
                            }
                            let id = match map.find(&display) {
                                Some(id) => id,
                                None => map.add(display, text),
                            };
                            let saved = std::mem::take(&mut self.file_rules);
                            included.push(self.apply_file(map, id, loader, stack));
                            self.file_rules = saved;
                        }
                    }
                }
                _ => {
                    if SECTIONS.contains(&kw) {
                        seen_section = true;
                    }
                    self.top_stmt(file, stmt);
                }
            }
        }
        stack.pop();
        let mut rules = std::mem::replace(&mut self.file_rules, outer_rules);
        for inc in included.into_iter().rev() {
            rules.extend(inc);
        }
        rules
    }

    fn top_stmt(&mut self, file: FileId, stmt: &Stmt) {
        let kw = stmt.keyword.name.as_str();
        // `policy` too: warnings about a section the file leaves out point at the name.
        if let Some(name) = SECTIONS.iter().chain(&["policy"]).find(|s| **s == kw) {
            self.sections
                .insert(name, Span::new(file, stmt.keyword.span.clone()));
        }
        match kw {
            "kakoi" => {
                let ok = matches!(stmt.values.as_slice(), [Value { kind: ValueKind::Number(n), .. }] if n.int == Some(1));
                if !ok {
                    self.err(
                        file,
                        stmt.span.clone(),
                        "E0106",
                        "unsupported language version",
                    )
                    .label("this kakoi reads `kakoi 1`");
                }
            }
            "policy" => self.name = self.one_string(file, stmt),
            "description" => self.description = self.one_string(file, stmt),
            "seccomp" => self.seccomp(file, stmt),
            "capabilities" => {
                self.caps.section = Some(Span::new(file, stmt.keyword.span.clone()));
                self.block(file, stmt, Self::capabilities_stmt)
            }
            "identity" => self.block(file, stmt, Self::identity_stmt),
            "namespaces" => self.block(file, stmt, Self::namespaces_stmt),
            "filesystem" => self.block(file, stmt, Self::filesystem_stmt),
            "network" => self.block(file, stmt, Self::network_stmt),
            "resources" => self.block(file, stmt, Self::resources_stmt),
            "process" => self.block(file, stmt, Self::process_stmt),
            "selinux" => self.selinux(file, stmt),
            "apparmor" => self.apparmor(file, stmt),
            _ => {
                let all: Vec<&str> = SECTIONS.iter().chain(TOP_LEVEL).copied().collect();
                let d = self
                    .err(
                        file,
                        stmt.keyword.span.clone(),
                        "E0101",
                        format!("unknown statement `{kw}`"),
                    )
                    .label("not a section or top-level setting");
                d.help = Some(
                    did_you_mean(kw, all.iter().copied())
                        .unwrap_or_else(|| format!("sections are {}", SECTIONS.join(", "))),
                );
            }
        }
    }

    /// Run `f` for each statement of a section's block.
    fn block(&mut self, file: FileId, stmt: &Stmt, f: fn(&mut Self, Args<'_>)) {
        let Some(block) = self.section_block(file, stmt) else {
            return;
        };
        for s in block {
            f(self, Args { file, stmt: s });
        }
    }

    fn section_block<'s>(&mut self, file: FileId, stmt: &'s Stmt) -> Option<&'s [Stmt]> {
        match &stmt.block {
            Some(b) => Some(b),
            None => {
                self.err(
                    file,
                    stmt.keyword.span.clone(),
                    "E0107",
                    format!("`{}` needs a block", stmt.keyword.name),
                )
                .label("expected `{` after this")
                .help = Some(format!("write `{} {{ … }}`", stmt.keyword.name));
                None
            }
        }
    }

    fn unknown_key(&mut self, a: &Args<'_>, section: &str, keys: &[&str]) {
        let kw = &a.stmt.keyword.name;
        let d = self
            .err(
                a.file,
                a.stmt.keyword.span.clone(),
                "E0108",
                format!("unknown setting `{kw}` in `{section}`"),
            )
            .label(format!("not a `{section}` setting"));
        d.help = Some(
            did_you_mean(kw, keys.iter().copied())
                .unwrap_or_else(|| format!("`{section}` takes {}", keys.join(", "))),
        );
    }

    fn no_cond_or_block(&mut self, a: &Args<'_>) {
        if let Some(c) = &a.stmt.cond {
            self.err(
                a.file,
                c.span.clone(),
                "E0109",
                "a condition is only allowed on seccomp rules",
            )
            .label("not allowed here");
        }
        if a.stmt.block.is_some() && !matches!(a.stmt.keyword.name.as_str(), "veth" | "macvlan") {
            self.err(
                a.file,
                a.stmt.span.clone(),
                "E0110",
                format!("`{}` takes no block", a.stmt.keyword.name),
            );
        }
    }

    // -----------------------------------------------------------------------------------
    // value helpers

    fn expect_count(&mut self, a: &Args<'_>, n: usize, what: &str) -> bool {
        if a.stmt.values.len() == n {
            return true;
        }
        let span = if a.stmt.values.len() > n {
            a.stmt.values[n].span.clone()
        } else {
            a.stmt.span.clone()
        };
        let label = if a.stmt.values.len() > n {
            "unexpected value"
        } else {
            "missing value"
        };
        self.err(
            a.file,
            span,
            "E0111",
            format!("`{}` takes {what}", a.stmt.keyword.name),
        )
        .label(label);
        false
    }

    fn one_string(&mut self, file: FileId, stmt: &Stmt) -> Option<String> {
        let a = Args { file, stmt };
        if !self.expect_count(&a, 1, "one string") {
            return None;
        }
        self.string(file, &stmt.values[0])
    }

    /// A string that contains a NUL byte, which no system call can take (the kernel
    /// would see it end there): an error.
    fn nul(&mut self, file: FileId, v: &Value, s: &str) -> bool {
        if !s.contains('\0') {
            return false;
        }
        self.err(file, v.span.clone(), "E0119", "a NUL byte in a string")
            .label("holds a NUL byte")
            .help = Some(
            "remove the NUL byte (a program, argument, path or variable cannot hold one)".into(),
        );
        true
    }

    fn string(&mut self, file: FileId, v: &Value) -> Option<String> {
        match &v.kind {
            ValueKind::Str(s) if self.nul(file, v, s) => None,
            ValueKind::Str(s) => Some(s.clone()),
            ValueKind::Word(w) => Some(w.clone()),
            _ => {
                self.err(file, v.span.clone(), "E0112", "expected a string")
                    .label("not a string");
                None
            }
        }
    }

    fn path(&mut self, file: FileId, v: &Value) -> Option<String> {
        match &v.kind {
            ValueKind::Str(s) if self.nul(file, v, s) => None,
            ValueKind::Str(s) if s.starts_with('/') => {
                if s.split('/').any(|c| c == "..") {
                    self.err(
                        file,
                        v.span.clone(),
                        "E0113",
                        format!("path `{s}` contains `..`"),
                    )
                    .label("not allowed in sandbox paths")
                    .help = Some("write the path without `..` components".into());
                    return None;
                }
                Some(s.clone())
            }
            ValueKind::Str(s) => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0113",
                    format!("path `{s}` is not absolute"),
                )
                .label("expected a path starting with `/`")
                .help = Some(format!("write `\"/{s}\"`"));
                None
            }
            _ => {
                self.err(file, v.span.clone(), "E0112", "expected a quoted path")
                    .label("not a string")
                    .help = Some("paths are strings, e.g. `\"/usr\"`".into());
                None
            }
        }
    }

    /// Values flattened: `a b [c, d]` -> a, b, c, d.
    fn flat(values: &[Value]) -> Vec<&Value> {
        let mut out = Vec::new();
        for v in values {
            match &v.kind {
                ValueKind::List(items) => out.extend(Self::flat(items)),
                _ => out.push(v),
            }
        }
        out
    }

    fn paths(&mut self, file: FileId, values: &[Value]) -> Vec<String> {
        Self::flat(values)
            .into_iter()
            .filter_map(|v| self.path(file, v))
            .collect()
    }

    fn on_off(&mut self, a: &Args<'_>) -> Option<bool> {
        if !self.expect_count(a, 1, "`on` or `off`") {
            return None;
        }
        match &a.stmt.values[0].kind {
            ValueKind::Word(w) if w == "on" || w == "true" || w == "yes" => Some(true),
            ValueKind::Word(w) if w == "off" || w == "false" || w == "no" => Some(false),
            _ => {
                self.err(
                    a.file,
                    a.stmt.values[0].span.clone(),
                    "E0114",
                    "expected `on` or `off`",
                )
                .label("not a switch");
                None
            }
        }
    }

    fn integer(&mut self, file: FileId, v: &Value, max: u64) -> Option<u64> {
        match &v.kind {
            ValueKind::Number(n) if n.unit.is_none() => match n.int {
                Some(i) if i >= 0 && (i as u128) <= u128::from(max) => Some(i as u64),
                _ => {
                    self.err(
                        file,
                        v.span.clone(),
                        "E0115",
                        format!("`{}` is out of range", n.text),
                    )
                    .label(format!("expected a whole number from 0 to {max}"));
                    None
                }
            },
            _ => {
                self.err(file, v.span.clone(), "E0115", "expected a whole number")
                    .label("not a number");
                None
            }
        }
    }

    /// A size with an optional binary unit: `512`, `64K`, `256M`, `2G` (bytes).
    fn size(&mut self, file: FileId, v: &Value) -> Option<u64> {
        let ValueKind::Number(n) = &v.kind else {
            self.err(file, v.span.clone(), "E0116", "expected a size")
                .label("not a size")
                .help = Some("write a size like `256M` or `2G`".into());
            return None;
        };
        let mult: u64 = match n.unit.as_deref() {
            None | Some("B") => 1,
            Some("K" | "k" | "Ki" | "KiB" | "KB") => 1 << 10,
            Some("M" | "Mi" | "MiB" | "MB") => 1 << 20,
            Some("G" | "Gi" | "GiB" | "GB") => 1 << 30,
            Some("T" | "Ti" | "TiB" | "TB") => 1 << 40,
            Some(u) => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0116",
                    format!("unknown size unit `{u}`"),
                )
                .label("not a size unit")
                .help = Some("use K, M, G or T (powers of 1024)".into());
                return None;
            }
        };
        match n.value {
            Some(x) if x >= 0.0 && x * (mult as f64) < 1.8e19 => Some((x * mult as f64) as u64),
            _ => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0116",
                    format!("size `{}` is out of range", n.text),
                );
                None
            }
        }
    }

    /// A duration: `30s`, `100ms`, `2m`, `1h`, `1d`, `500us`, in microseconds.
    fn duration_us(&mut self, file: FileId, v: &Value) -> Option<i128> {
        let ValueKind::Number(n) = &v.kind else {
            self.err(file, v.span.clone(), "E0117", "expected a duration")
                .label("not a duration")
                .help = Some("write a duration like `30s` or `100ms`".into());
            return None;
        };
        let mult: f64 = match n.unit.as_deref() {
            Some("us") => 1.0,
            Some("ms") => 1e3,
            Some("s") => 1e6,
            Some("m" | "min") => 60e6,
            Some("h") => 3600e6,
            Some("d") => 86400e6,
            None => {
                self.err(file, v.span.clone(), "E0117", "a duration needs a unit")
                    .label("unit missing")
                    .help = Some(format!(
                    "write `{}s` for seconds or `{}ms` for milliseconds",
                    n.text, n.text
                ));
                return None;
            }
            Some(u) => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0117",
                    format!("unknown duration unit `{u}`"),
                )
                .label("not a time unit")
                .help = Some("use us, ms, s, m, h or d".into());
                return None;
            }
        };
        n.value.map(|x| (x * mult) as i128)
    }

    fn enforcement(&mut self, file: FileId, v: &Value) -> Option<Enforcement> {
        match &v.kind {
            ValueKind::Word(w) if w == "required" => Some(Enforcement::Required),
            ValueKind::Word(w) if w == "best-effort" || w == "optional" => {
                Some(Enforcement::BestEffort)
            }
            _ => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0118",
                    "expected `required` or `optional`",
                )
                .label("not an enforcement level");
                None
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // seccomp

    fn seccomp(&mut self, file: FileId, stmt: &Stmt) {
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
                "arches" => {
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
                                        .unwrap_or_else(|| {
                                            "targets are x86_64, x86, x32 and aarch64".into()
                                        }),
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
                "acknowledge" => {
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
                _ => {
                    if let Some(rule) = self.rule(file, s) {
                        self.file_rules
                            .push((rule, Span::new(file, s.span.clone())));
                    }
                }
            }
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

    fn action_word(
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

    fn action(&mut self, file: FileId, v: &Value) -> Option<Action> {
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

    fn errno(&mut self, file: FileId, v: &Value) -> Option<u16> {
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
    fn rule(&mut self, file: FileId, s: &Stmt) -> Option<Rule> {
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

    fn cond(&mut self, file: FileId, e: &Expr, syscalls: &[String]) -> Option<Cond> {
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

    fn arch_operand(&mut self, file: FileId, o: &Operand) -> Option<Arch> {
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
    fn cmp(
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
    fn check_arg(
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

    fn const_expr(&mut self, file: FileId, o: &Operand) -> Option<ConstExpr> {
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

    fn cap_list(&mut self, a: &Args<'_>) -> Option<BTreeSet<u32>> {
        let mut out = BTreeSet::new();
        let mut ok = true;
        for v in Self::flat(&a.stmt.values) {
            let ValueKind::Word(w) = &v.kind else {
                self.err(
                    a.file,
                    v.span.clone(),
                    "E0401",
                    "expected a capability name",
                )
                .label("not a capability");
                ok = false;
                continue;
            };
            match catalogue::capability(w) {
                Some(c) => {
                    out.insert(c);
                }
                None => {
                    let bare = w.to_ascii_uppercase();
                    let bare = bare.strip_prefix("CAP_").unwrap_or(&bare).to_string();
                    let d = self
                        .err(
                            a.file,
                            v.span.clone(),
                            "E0401",
                            format!("unknown capability `{w}`"),
                        )
                        .label("not a Linux capability");
                    d.help = did_you_mean(&bare, catalogue::capabilities().iter().copied());
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn capabilities_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let kw = a.stmt.keyword.name.as_str();
        let all_word = matches!(a.stmt.values.as_slice(), [Value { kind: ValueKind::Word(w), .. }] if w == "all");
        let all: BTreeSet<u32> = (0..catalogue::capabilities().len() as u32).collect();
        let set = if all_word {
            Some(all)
        } else if matches!(
            kw,
            "drop"
                | "keep"
                | "add"
                | "bounding"
                | "effective"
                | "permitted"
                | "inheritable"
                | "ambient"
                | "acknowledge"
        ) {
            self.cap_list(&a)
        } else {
            None
        };
        let c = &mut self.caps;
        if let (Some(_), "keep" | "add" | "bounding" | "effective" | "permitted" | "ambient") =
            (&set, kw)
        {
            for v in Self::flat(&a.stmt.values) {
                if let ValueKind::Word(w) = &v.kind {
                    if let Some(cap) = catalogue::capability(w) {
                        c.granted_at.insert(cap, Span::new(a.file, v.span.clone()));
                    }
                }
            }
        }
        match kw {
            "acknowledge" => {
                if let Some(set) = set {
                    c.acknowledged.extend(set)
                }
            }
            "drop" => {
                let Some(set) = set else { return };
                for s in [
                    &mut c.bounding,
                    &mut c.effective,
                    &mut c.permitted,
                    &mut c.inheritable,
                    &mut c.ambient,
                ] {
                    s.retain(|x| !set.contains(x));
                }
            }
            "keep" | "add" => {
                let Some(set) = set else { return };
                for s in [&mut c.bounding, &mut c.effective, &mut c.permitted] {
                    s.extend(set.iter().copied());
                }
            }
            "bounding" => {
                if let Some(s) = set {
                    c.bounding = s
                }
            }
            "effective" => {
                if let Some(s) = set {
                    c.effective = s
                }
            }
            "permitted" => {
                if let Some(s) = set {
                    c.permitted = s
                }
            }
            "inheritable" => {
                if let Some(s) = set {
                    c.inheritable = s
                }
            }
            "ambient" => {
                if let Some(s) = set {
                    c.ambient = s
                }
            }
            _ => self.unknown_key(
                &a,
                "capabilities",
                &[
                    "drop",
                    "keep",
                    "bounding",
                    "effective",
                    "permitted",
                    "inheritable",
                    "ambient",
                ],
            ),
        }
    }

    // -----------------------------------------------------------------------------------
    // identity

    fn identity_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        match a.stmt.keyword.name.as_str() {
            "user" | "group" => {
                if !self.expect_count(&a, 1, "one numeric id") {
                    return;
                }
                let id = self
                    .integer(f, &a.stmt.values[0], u64::from(u32::MAX - 1))
                    .map(|v| v as u32);
                if a.stmt.keyword.name == "user" {
                    self.identity.user = id
                } else {
                    self.identity.group = id
                }
            }
            "groups" => {
                self.identity.groups = Self::flat(&a.stmt.values)
                    .into_iter()
                    .filter_map(|v| {
                        self.integer(f, v, u64::from(u32::MAX - 1))
                            .map(|v| v as u32)
                    })
                    .collect();
            }
            "uid-map" | "gid-map" => {
                if !self.expect_count(&a, 3, "three numbers: inside outside count") {
                    return;
                }
                let n: Vec<Option<u64>> = a
                    .stmt
                    .values
                    .iter()
                    .map(|v| self.integer(f, v, u64::from(u32::MAX)))
                    .collect();
                let [Some(i), Some(o), Some(c)] = n[..] else {
                    return;
                };
                if c == 0 || i + c > 1 << 32 || o + c > 1 << 32 {
                    self.err(f, a.stmt.span.clone(), "E0501", "id range out of bounds")
                        .label("count must be > 0 and ranges below 2^32");
                    return;
                }
                let m = IdMap {
                    inside: i as u32,
                    outside: o as u32,
                    count: c as u32,
                };
                let (list, what) = if a.stmt.keyword.name == "uid-map" {
                    (&self.identity.uid_map, "uid")
                } else {
                    (&self.identity.gid_map, "gid")
                };
                if list.iter().any(|x| {
                    ranges_overlap(x.inside, x.count, m.inside, m.count)
                        || ranges_overlap(x.outside, x.count, m.outside, m.count)
                }) {
                    self.err(
                        f,
                        a.stmt.span.clone(),
                        "E0502",
                        format!("overlapping {what} map ranges"),
                    )
                    .help = Some("the kernel rejects maps whose ranges overlap".into());
                    return;
                }
                if a.stmt.keyword.name == "uid-map" {
                    self.identity.uid_map.push(m)
                } else {
                    self.identity.gid_map.push(m)
                }
            }
            "subids" => self.identity.subids = self.one_string(f, a.stmt),
            "rootless" => {
                if let Some(b) = self.on_off(&a) {
                    self.identity.rootless = b
                }
            }
            _ => self.unknown_key(
                &a,
                "identity",
                &[
                    "user", "group", "groups", "uid-map", "gid-map", "subids", "rootless",
                ],
            ),
        }
    }

    // -----------------------------------------------------------------------------------
    // namespaces

    fn namespaces_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let kw = a.stmt.keyword.name.as_str();
        let kinds: Vec<NsKind> = if kw == "all" {
            NsKind::ALL.to_vec()
        } else if let Some(k) = NsKind::ALL.iter().find(|k| {
            k.name() == kw
                || (kw == "mnt" && **k == NsKind::Mount)
                || (kw == "network" && **k == NsKind::Net)
        }) {
            vec![*k]
        } else {
            let names: Vec<&str> = NsKind::ALL
                .iter()
                .map(|k| k.name())
                .chain(["all"])
                .collect();
            self.unknown_key(&a, "namespaces", &names);
            return;
        };
        let mode = match a.stmt.values.as_slice() {
            [Value {
                kind: ValueKind::Word(w),
                ..
            }] if w == "on" || w == "new" => NsMode::New,
            [Value {
                kind: ValueKind::Word(w),
                ..
            }] if w == "off" || w == "host" => NsMode::Host,
            [Value {
                kind: ValueKind::Word(w),
                ..
            }, p]
                if w == "join" && kw != "all" =>
            {
                let Some(p) = self.path(a.file, p) else {
                    return;
                };
                NsMode::Join(p)
            }
            _ => {
                self.err(
                    a.file,
                    a.stmt.span.clone(),
                    "E0601",
                    format!("`{kw}` takes `on`, `off` or `join \"PATH\"`"),
                )
                .help = Some(format!("e.g. `{kw} on`"));
                return;
            }
        };
        for k in kinds {
            self.namespaces.insert(k, mode.clone());
        }
    }

    // -----------------------------------------------------------------------------------
    // filesystem

    fn filesystem_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        let vals = &a.stmt.values;
        match a.stmt.keyword.name.as_str() {
            "rootfs" => match vals.as_slice() {
                [Value {
                    kind: ValueKind::Word(w),
                    ..
                }] if w == "host" => self.rootfs = Rootfs::Host,
                [p, rest @ ..] if matches!(p.kind, ValueKind::Str(_)) => {
                    let Some(path) = self.path(f, p) else { return };
                    let readonly = match rest {
                        [] => true,
                        [Value {
                            kind: ValueKind::Word(w),
                            ..
                        }] if w == "ro" => true,
                        [Value {
                            kind: ValueKind::Word(w),
                            ..
                        }] if w == "rw" => false,
                        _ => {
                            self.err(
                                f,
                                a.stmt.span.clone(),
                                "E0701",
                                "expected `ro` or `rw` after the rootfs path",
                            );
                            return;
                        }
                    };
                    self.rootfs = Rootfs::Dir { path, readonly };
                }
                _ => {
                    self.err(
                        f,
                        a.stmt.span.clone(),
                        "E0701",
                        "`rootfs` takes `host` or a path",
                    )
                    .help = Some("write `rootfs host` or `rootfs \"/srv/root\" ro`".into());
                }
            },
            "bind" => {
                // bind "SRC" [-> "DST"] [ro|rw] [idmap]
                let mut it = vals.iter().peekable();
                let Some(src) = it.next().and_then(|v| self.path(f, v)) else {
                    if vals.is_empty() {
                        self.err(
                            f,
                            a.stmt.span.clone(),
                            "E0702",
                            "`bind` needs a source path",
                        )
                        .help = Some("write `bind \"/src\" -> \"/dst\" ro`".into());
                    }
                    return;
                };
                let mut dst = src.clone();
                if matches!(
                    it.peek(),
                    Some(Value {
                        kind: ValueKind::Arrow,
                        ..
                    })
                ) {
                    it.next();
                    match it.next() {
                        Some(v) => match self.path(f, v) {
                            Some(p) => dst = p,
                            None => return,
                        },
                        None => {
                            self.err(
                                f,
                                a.stmt.span.clone(),
                                "E0702",
                                "`->` needs a destination path",
                            );
                            return;
                        }
                    }
                }
                let (mut readonly, mut idmap, mut suid) = (true, false, None);
                for v in it {
                    match &v.kind {
                        ValueKind::Word(w) if w == "ro" => readonly = true,
                        ValueKind::Word(w) if w == "rw" => readonly = false,
                        ValueKind::Word(w) if w == "idmap" => idmap = true,
                        ValueKind::Word(w) if w == "suid" => suid = Some(v.span.clone()),
                        _ => {
                            self.err(
                                f,
                                v.span.clone(),
                                "E0703",
                                format!("unknown bind option `{}`", value_text(v)),
                            )
                            .label("expected `ro`, `rw`, `idmap` or `suid`");
                            return;
                        }
                    }
                }
                if let (Some(at), false) = (&suid, readonly) {
                    self.warn(
                        f,
                        at.clone(),
                        "W0701",
                        "a writable `suid` bind lets the sandbox plant set-user-ID files on the host",
                    )
                    .label("files made here keep their set-user-ID bit and file capabilities for every host user")
                    .help = Some("drop `suid` (binds are `nosuid` by default), or bind read-only".into());
                }
                self.unmount(&dst);
                self.binds.push(Bind {
                    source: src,
                    target: dst,
                    readonly,
                    idmap,
                    suid: suid.is_some(),
                });
            }
            "tmpfs" => {
                let Some(target) = vals.first().and_then(|v| self.path(f, v)) else {
                    if vals.is_empty() {
                        self.err(f, a.stmt.span.clone(), "E0704", "`tmpfs` needs a path");
                    }
                    return;
                };
                let mut t = Tmpfs {
                    target,
                    size: None,
                    mode: None,
                };
                let mut rest = vals[1..].iter();
                while let Some(k) = rest.next() {
                    let key = value_text(k);
                    let Some(v) = rest.next() else {
                        self.err(f, k.span.clone(), "E0704", format!("`{key}` needs a value"));
                        return;
                    };
                    match key.as_str() {
                        "size" => t.size = self.size(f, v),
                        "mode" => t.mode = self.integer(f, v, 0o7777).map(|m| m as u32),
                        _ => {
                            self.err(
                                f,
                                k.span.clone(),
                                "E0704",
                                format!("unknown tmpfs option `{key}`"),
                            )
                            .label("expected `size` or `mode`");
                            return;
                        }
                    }
                }
                self.unmount(&t.target);
                self.tmpfs.push(t);
            }
            "overlay" => self.overlay(&a),
            "mask" => {
                let p = self.paths(f, vals);
                self.masked.extend(p)
            }
            "readonly" => {
                let p = self.paths(f, vals);
                self.readonly.extend(p)
            }
            kw @ ("read" | "write" | "exec" | "make" | "remove") => {
                let access = match kw {
                    "read" => Access::Read,
                    "write" => Access::Write,
                    "exec" => Access::Exec,
                    "make" => Access::Make,
                    _ => Access::Remove,
                };
                for p in self.paths(f, vals) {
                    match self.access.iter_mut().find(|r| r.path == p) {
                        Some(r) => {
                            if !r.access.contains(&access) {
                                r.access.push(access);
                                r.access.sort();
                            }
                        }
                        None => self.access.push(PathRule {
                            path: p,
                            access: vec![access],
                        }),
                    }
                }
            }
            "landlock" => {
                if self.expect_count(&a, 1, "`required` or `optional`") {
                    if let Some(e) = self.enforcement(f, &vals[0]) {
                        self.landlock = e
                    }
                }
            }
            "landlock-scope" => {
                let mut scopes = Vec::new();
                for v in Self::flat(vals) {
                    match value_text(v).as_str() {
                        "signal" => scopes.push(LandlockScope::Signal),
                        "abstract-unix" => scopes.push(LandlockScope::AbstractUnix),
                        other => {
                            let d = self
                                .err(
                                    f,
                                    v.span.clone(),
                                    "E0708",
                                    format!("unknown Landlock scope `{other}`"),
                                )
                                .label("not a scope");
                            d.help = Some(
                                did_you_mean(other, ["signal", "abstract-unix"]).unwrap_or_else(
                                    || "scopes are `signal` and `abstract-unix`".into(),
                                ),
                            );
                        }
                    }
                }
                scopes.sort();
                scopes.dedup();
                self.landlock_scopes = scopes;
            }
            "propagation" => {
                if !self.expect_count(&a, 1, "`private` or `slave`") {
                    return;
                }
                match value_text(&vals[0]).as_str() {
                    "private" => self.propagation = Propagation::Private,
                    "slave" => {
                        self.propagation = Propagation::Slave;
                        self.warn(
                            f,
                            a.stmt.span.clone(),
                            "W0702",
                            "mounts the host makes later appear inside with the host's flags",
                        )
                        .label("not read-only, nodev or nosuid unless the host made them so")
                        .help = Some("keep the default `propagation private` unless the sandbox must see new host mounts".into());
                    }
                    other => {
                        self.err(
                            f,
                            vals[0].span.clone(),
                            "E0709",
                            format!("unknown propagation `{other}`"),
                        )
                        .label("expected `private` or `slave`");
                    }
                }
            }
            _ => self.unknown_key(
                &a,
                "filesystem",
                &[
                    "rootfs",
                    "bind",
                    "tmpfs",
                    "overlay",
                    "mask",
                    "readonly",
                    "read",
                    "write",
                    "exec",
                    "make",
                    "remove",
                    "landlock",
                    "landlock-scope",
                    "propagation",
                ],
            ),
        }
    }

    /// overlay "/target" lower ["/a", "/b"] upper "/u" work "/w"   (upper tmpfs: no upper)
    fn overlay(&mut self, a: &Args<'_>) {
        let f = a.file;
        let vals = &a.stmt.values;
        let Some(target) = vals.first().and_then(|v| self.path(f, v)) else {
            if vals.is_empty() {
                self.err(
                    f,
                    a.stmt.span.clone(),
                    "E0705",
                    "`overlay` needs a target path",
                )
                .help = Some("write `overlay \"/\" lower [\"/img\"] upper tmpfs`".into());
            }
            return;
        };
        let mut ov = Overlay {
            lower: Vec::new(),
            upper: None,
            work: None,
            target,
        };
        let mut rest = vals[1..].iter();
        while let Some(k) = rest.next() {
            let key = value_text(k);
            let Some(v) = rest.next() else {
                self.err(f, k.span.clone(), "E0705", format!("`{key}` needs a value"));
                return;
            };
            match key.as_str() {
                "lower" => ov.lower = self.paths(f, std::slice::from_ref(v)),
                "upper" if matches!(&v.kind, ValueKind::Word(w) if w == "tmpfs") => ov.upper = None,
                "upper" => ov.upper = self.path(f, v),
                "work" => ov.work = self.path(f, v),
                _ => {
                    self.err(
                        f,
                        k.span.clone(),
                        "E0705",
                        format!("unknown overlay option `{key}`"),
                    )
                    .label("expected `lower`, `upper` or `work`");
                    return;
                }
            }
        }
        if ov.lower.is_empty() {
            self.err(
                f,
                a.stmt.span.clone(),
                "E0706",
                "overlay needs at least one lower layer",
            )
            .help = Some("add `lower [\"/path\"]`".into());
            return;
        }
        if ov.upper.is_some() != ov.work.is_some() {
            self.err(f, a.stmt.span.clone(), "E0707", "a persistent upper layer needs a work directory, and only then")
                .help = Some("give both `upper \"/u\"` and `work \"/w\"` on the same filesystem, or `upper tmpfs`".into());
            return;
        }
        self.overlays.push(ov);
    }

    // -----------------------------------------------------------------------------------
    // network

    fn network_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        match a.stmt.keyword.name.as_str() {
            "mode" => {
                if !self.expect_count(&a, 1, "`none`, `host`, `veth` or `macvlan`") {
                    return;
                }
                match value_text(&a.stmt.values[0]).as_str() {
                    "none" => {
                        self.macvlan_mode = false;
                        self.network.mode = NetMode::None
                    }
                    "host" => {
                        self.macvlan_mode = false;
                        self.network.mode = NetMode::Host
                    }
                    "veth" => {
                        self.macvlan_mode = false;
                        if !matches!(self.network.mode, NetMode::Veth { .. }) {
                            self.network.mode = NetMode::Veth {
                                bridge: None,
                                address: None,
                                gateway: None,
                                subnet: None,
                            }
                        }
                    }
                    // Its settings come from the `macvlan` block (checked at the end).
                    "macvlan" => self.macvlan_mode = true,
                    other => {
                        let d = self
                            .err(
                                f,
                                a.stmt.values[0].span.clone(),
                                "E0801",
                                format!("unknown network mode `{other}`"),
                            )
                            .label("expected `none`, `host`, `veth` or `macvlan`");
                        d.help = did_you_mean(other, ["none", "host", "veth", "macvlan"]);
                    }
                }
            }
            "macvlan" => {
                let (mut parent, mut address, mut gateway) = (None, None, None);
                for s in a.stmt.block.iter().flatten() {
                    let v = self.one_string(f, s);
                    match s.keyword.name.as_str() {
                        "parent" => parent = v,
                        "address" => address = v.filter(|x| self.cidr(f, s, x, true)),
                        "gateway" => gateway = v.filter(|x| self.cidr(f, s, x, false)),
                        _ => self.unknown_key(
                            &Args { file: f, stmt: s },
                            "macvlan",
                            &["parent", "address", "gateway"],
                        ),
                    }
                }
                self.macvlan = Some((parent, address, gateway, Span::new(f, a.stmt.span.clone())));
            }
            "veth" => {
                let (mut bridge, mut address, mut gateway, mut subnet) = (None, None, None, None);
                for s in a.stmt.block.iter().flatten() {
                    let v = self.one_string(f, s);
                    match s.keyword.name.as_str() {
                        "bridge" => bridge = v,
                        "address" => address = v.filter(|x| self.cidr(f, s, x, true)),
                        "gateway" => gateway = v.filter(|x| self.cidr(f, s, x, false)),
                        "subnet" => subnet = v.filter(|x| self.cidr(f, s, x, true)),
                        _ => self.unknown_key(
                            &Args { file: f, stmt: s },
                            "veth",
                            &["bridge", "address", "gateway", "subnet"],
                        ),
                    }
                }
                self.network.mode = NetMode::Veth {
                    bridge,
                    address,
                    gateway,
                    subnet,
                };
            }
            "families" => {
                let mut fams = Vec::new();
                for v in Self::flat(&a.stmt.values) {
                    let name = value_text(v).to_ascii_uppercase();
                    let bare = name.strip_prefix("AF_").unwrap_or(&name).to_string();
                    if catalogue::constant(&format!("AF_{bare}"), Arch::X86_64).is_some() {
                        if !fams.contains(&bare) {
                            fams.push(bare)
                        }
                    } else {
                        let d = self
                            .err(
                                f,
                                v.span.clone(),
                                "E0802",
                                format!("unknown socket family `{}`", value_text(v)),
                            )
                            .label("not an AF_* family");
                        d.help = did_you_mean(
                            &format!("AF_{bare}"),
                            catalogue::constant_names().filter(|n| n.starts_with("AF_")),
                        )
                        .map(|h| h.replace("AF_", ""));
                    }
                }
                self.network.families = fams;
            }
            kw @ ("tcp-bind" | "tcp-connect") => {
                let ports: Vec<u16> = Self::flat(&a.stmt.values)
                    .into_iter()
                    .filter_map(|v| self.integer(f, v, 65535).map(|p| p as u16))
                    .collect();
                if kw == "tcp-bind" {
                    self.network.tcp_bind = Some(ports)
                } else {
                    self.network.tcp_connect = Some(ports)
                }
            }
            "nat" => {
                if let Some(on) = self.on_off(&a) {
                    self.network.nat = on;
                }
            }
            "publish" => {
                // `publish HOST -> SANDBOX [tcp|udp]`
                let v = &a.stmt.values;
                let port = |b: &mut Self, i: usize| v.get(i).and_then(|x| b.integer(f, x, 65535));
                let arrow = matches!(v.get(1).map(|x| &x.kind), Some(ValueKind::Arrow));
                let proto = match v.get(3).map(value_text).as_deref() {
                    None | Some("tcp") => Some(false),
                    Some("udp") => Some(true),
                    Some(_) => None,
                };
                match (port(self, 0), arrow, port(self, 2), proto, v.len() <= 4) {
                    (Some(h), true, Some(s), Some(udp), true) if h > 0 && s > 0 => {
                        let p = crate::ir::Publish {
                            udp,
                            host: h as u16,
                            sandbox: s as u16,
                        };
                        self.network
                            .publish
                            .retain(|x| (x.udp, x.host) != (p.udp, p.host));
                        self.network.publish.push(p);
                    }
                    _ => {
                        self.err(
                            f,
                            a.stmt.span.clone(),
                            "E0804",
                            "expected `publish HOST_PORT -> SANDBOX_PORT`, then `tcp` (default) or `udp`",
                        )
                        .help = Some("e.g. `publish 8080 -> 80`, `publish 5353 -> 53 udp`".into());
                    }
                }
            }
            _ => self.unknown_key(
                &a,
                "network",
                &[
                    "mode",
                    "veth",
                    "macvlan",
                    "families",
                    "tcp-bind",
                    "tcp-connect",
                    "nat",
                    "publish",
                ],
            ),
        }
    }

    fn cidr(&mut self, f: FileId, s: &Stmt, text: &str, prefix: bool) -> bool {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ok_addr = addr.parse::<std::net::IpAddr>().is_ok();
        let ok_len = match len {
            None => !prefix,
            Some(l) => l
                .parse::<u8>()
                .is_ok_and(|n| n <= if addr.contains(':') { 128 } else { 32 }),
        };
        if !(ok_addr && ok_len) {
            self.err(
                f,
                s.values.first().map_or(s.span.clone(), |v| v.span.clone()),
                "E0803",
                format!("invalid address `{text}`"),
            )
            .help = Some(if prefix {
                "write an address with a prefix length, e.g. `\"10.88.0.2/24\"`".into()
            } else {
                "write an address, e.g. `\"10.88.0.1\"`".into()
            });
        }
        ok_addr && ok_len
    }

    // -----------------------------------------------------------------------------------
    // resources

    fn resources_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        let kw = a.stmt.keyword.name.as_str();
        if kw == "rlimit" {
            return self.rlimit(&a);
        }
        if !self.expect_count(&a, 1, "one value") {
            return;
        }
        let v = &a.stmt.values[0];
        match kw {
            "memory" => self.resources.memory = self.size(f, v),
            "memory-swap" => self.resources.memory_swap = self.size(f, v),
            "pids" => self.resources.pids = self.integer(f, v, 1 << 22),
            "cpu" => {
                // Cores, as a fraction: `cpu 0.5` is 50 ms per 100 ms.
                match &v.kind {
                    ValueKind::Number(n)
                        if n.unit.is_none() && n.value.is_some_and(|x| x > 0.0 && x <= 4096.0) =>
                    {
                        self.resources.cpu_quota = Some(
                            (n.value.expect("checked") * self.resources.cpu_period as f64) as u64,
                        )
                    }
                    _ => {
                        self.err(f, v.span.clone(), "E0901", "expected a number of CPUs")
                            .label("e.g. `0.5` or `2`");
                    }
                }
            }
            "cpu-weight" => {
                self.resources.cpu_weight = self.integer(f, v, 10000).filter(|w| {
                    let ok = *w >= 1;
                    if !ok {
                        self.err(
                            f,
                            v.span.clone(),
                            "E0902",
                            "cpu-weight ranges from 1 to 10000",
                        );
                    }
                    ok
                })
            }
            "io-weight" => {
                self.resources.io_weight = self.integer(f, v, 10000).filter(|w| {
                    let ok = *w >= 1;
                    if !ok {
                        self.err(
                            f,
                            v.span.clone(),
                            "E0902",
                            "io-weight ranges from 1 to 10000",
                        );
                    }
                    ok
                })
            }
            "cgroup" => self.resources.cgroup = self.enforcement(f, v),
            _ => self.unknown_key(
                &a,
                "resources",
                &[
                    "memory",
                    "memory-swap",
                    "pids",
                    "cpu",
                    "cpu-weight",
                    "io-weight",
                    "rlimit",
                    "cgroup",
                ],
            ),
        }
    }

    fn rlimit(&mut self, a: &Args<'_>) {
        let names = || catalogue::RLIMITS.iter().map(|(n, _)| *n);
        let f = a.file;
        let vals = &a.stmt.values;
        if vals.len() < 2 || vals.len() > 3 {
            self.err(
                f,
                a.stmt.span.clone(),
                "E0903",
                "`rlimit` takes a name, a soft limit and an optional hard limit",
            )
            .help = Some("write `rlimit nofile 1024 4096`".into());
            return;
        }
        let name = value_text(&vals[0]);
        if catalogue::rlimit(&name).is_none() {
            let d = self
                .err(
                    f,
                    vals[0].span.clone(),
                    "E0904",
                    format!("unknown rlimit `{name}`"),
                )
                .label("not a resource limit");
            d.help = Some(did_you_mean(&name, names()).unwrap_or_else(|| {
                format!("limits are {}", names().collect::<Vec<_>>().join(", "))
            }));
            return;
        }
        let lim = |b: &mut Self, v: &Value| -> Option<u64> {
            if matches!(&v.kind, ValueKind::Word(w) if w == "unlimited") {
                return Some(u64::MAX);
            }
            match &v.kind {
                ValueKind::Number(n) if n.unit.is_some() => b.size(f, v),
                _ => b.integer(f, v, u64::MAX - 1),
            }
        };
        let Some(soft) = lim(self, &vals[1]) else {
            return;
        };
        let hard = match vals.get(2) {
            Some(v) => match lim(self, v) {
                Some(h) => h,
                None => return,
            },
            None => soft,
        };
        if soft > hard {
            self.err(
                f,
                a.stmt.span.clone(),
                "E0905",
                "soft limit above hard limit",
            )
            .help = Some("the soft limit must not exceed the hard limit".into());
            return;
        }
        self.resources.rlimits.retain(|r| r.name != name);
        self.resources.rlimits.push(Rlimit { name, soft, hard });
    }

    // -----------------------------------------------------------------------------------
    // process

    fn process_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        match a.stmt.keyword.name.as_str() {
            "argv" => {
                let v: Vec<String> = Self::flat(&a.stmt.values)
                    .into_iter()
                    .filter_map(|v| self.string(f, v))
                    .collect();
                if v.is_empty() {
                    self.err(
                        f,
                        a.stmt.span.clone(),
                        "E1001",
                        "`argv` needs at least the program",
                    );
                } else {
                    self.process.argv = v
                }
            }
            "env" => {
                for v in Self::flat(&a.stmt.values) {
                    let Some(s) = self.string(f, v) else { continue };
                    if !s.contains('=') || s.starts_with('=') {
                        self.err(
                            f,
                            v.span.clone(),
                            "E1002",
                            format!("`{s}` is not `NAME=value`"),
                        )
                        .help = Some("write `\"NAME=value\"`".into());
                        continue;
                    }
                    let key = s.split('=').next().unwrap_or("").to_string();
                    self.process
                        .env
                        .retain(|e| !e.starts_with(&format!("{key}=")));
                    self.process.env.push(s);
                }
            }
            "cwd" => {
                if self.expect_count(&a, 1, "one path") {
                    if let Some(p) = self.path(f, &a.stmt.values[0]) {
                        self.process.cwd = p
                    }
                }
            }
            "init" => {
                if let Some(b) = self.on_off(&a) {
                    self.process.init = b
                }
            }
            "no-new-privs" => {
                if let Some(b) = self.on_off(&a) {
                    self.process.no_new_privs = b
                }
            }
            "hostname" => {
                if let Some(h) = self.one_string(f, a.stmt) {
                    if h.is_empty()
                        || h.len() > 64
                        || !h
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    {
                        self.err(
                            f,
                            a.stmt.values[0].span.clone(),
                            "E1003",
                            format!("invalid hostname `{h}`"),
                        )
                        .help = Some("use up to 64 letters, digits, `-` and `.`".into());
                    } else {
                        self.process.hostname = Some(h);
                    }
                }
            }
            "time-offset" => {
                if !self.expect_count(&a, 2, "a clock (`monotonic` or `boottime`) and an offset") {
                    return;
                }
                let clock = value_text(&a.stmt.values[0]);
                if clock != "monotonic" && clock != "boottime" {
                    let d = self
                        .err(
                            f,
                            a.stmt.values[0].span.clone(),
                            "E1004",
                            format!("unknown clock `{clock}`"),
                        )
                        .label("expected `monotonic` or `boottime`");
                    d.help = did_you_mean(&clock, ["monotonic", "boottime"]);
                    return;
                }
                let Some(us) = self.duration_us(f, &a.stmt.values[1]) else {
                    return;
                };
                self.process.time_offsets.retain(|(c, _)| *c != clock);
                self.process
                    .time_offsets
                    .push((clock, (us / 1_000_000) as i64));
            }
            "timeout" => {
                if !self.expect_count(&a, 1, "one duration") {
                    return;
                }
                if let Some(us) = self.duration_us(f, &a.stmt.values[0]) {
                    if us <= 0 {
                        self.err(
                            f,
                            a.stmt.values[0].span.clone(),
                            "E1005",
                            "timeout must be positive",
                        );
                    } else {
                        self.process.timeout_ms = Some((us / 1000) as u64)
                    }
                }
            }
            _ => self.unknown_key(
                &a,
                "process",
                &[
                    "argv",
                    "env",
                    "cwd",
                    "init",
                    "no-new-privs",
                    "hostname",
                    "time-offset",
                    "timeout",
                ],
            ),
        }
    }

    // -----------------------------------------------------------------------------------
    // LSMs

    fn lsm_enforcement(&mut self, file: FileId, stmt: &Stmt) -> Option<Enforcement> {
        match stmt.values.as_slice() {
            [] => Some(Enforcement::Required),
            [v] => self.enforcement(file, v),
            [_, v, ..] => {
                self.err(file, v.span.clone(), "E1101", "unexpected value")
                    .label("expected `{`");
                None
            }
        }
    }

    fn selinux(&mut self, file: FileId, stmt: &Stmt) {
        let enforcement = self.lsm_enforcement(file, stmt);
        let Some(block) = self.section_block(file, stmt) else {
            return;
        };
        let mut s = SeLinux {
            enforcement: enforcement.unwrap_or(Enforcement::Required),
            user: "system_u".into(),
            role: "system_r".into(),
            r#type: "container_t".into(),
            level: Level::Fixed("s0".into()),
            mount_label: None,
        };
        for st in block {
            let a = Args { file, stmt: st };
            self.no_cond_or_block(&a);
            match st.keyword.name.as_str() {
                k @ ("user" | "role" | "type") => {
                    let Some(v) = self.one_string(file, st) else {
                        continue;
                    };
                    if !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                        || v.is_empty()
                    {
                        self.err(
                            file,
                            st.values[0].span.clone(),
                            "E1102",
                            format!("invalid SELinux {k} `{v}`"),
                        )
                        .help = Some("SELinux identifiers use letters, digits, `_` and `.`".into());
                        continue;
                    }
                    match k {
                        "user" => s.user = v,
                        "role" => s.role = v,
                        _ => s.r#type = v,
                    }
                }
                "level" => match st.values.as_slice() {
                    [Value {
                        kind: ValueKind::Word(w),
                        ..
                    }] if w == "random" => s.level = Level::Random,
                    [v] => {
                        let Some(l) = self.string(file, v) else {
                            continue;
                        };
                        if !valid_mls_level(&l) {
                            self.err(
                                file,
                                v.span.clone(),
                                "E1103",
                                format!("invalid MLS level `{l}`"),
                            )
                            .label("expected `s0` or `s0:cN,cM`")
                            .help = Some("write `level \"s0:c12,c34\"` or `level random`".into());
                            continue;
                        }
                        s.level = Level::Fixed(l);
                    }
                    _ => {
                        self.expect_count(&a, 1, "a level or `random`");
                    }
                },
                "mount-label" => s.mount_label = self.one_string(file, st),
                _ => self.unknown_key(
                    &a,
                    "selinux",
                    &["user", "role", "type", "level", "mount-label"],
                ),
            }
        }
        if enforcement.is_some() {
            self.selinux = Some(s);
        }
    }

    fn apparmor(&mut self, file: FileId, stmt: &Stmt) {
        let enforcement = self.lsm_enforcement(file, stmt);
        let Some(block) = self.section_block(file, stmt) else {
            return;
        };
        let mut rule_spans = Vec::new();
        let mut p = AppArmor {
            enforcement: enforcement.unwrap_or(Enforcement::Required),
            profile: format!("kakoi-{}", self.name.clone().unwrap_or_default()),
            mode: AaMode::Enforce,
            rules: Vec::new(),
        };
        for st in block {
            let a = Args { file, stmt: st };
            self.no_cond_or_block(&a);
            match st.keyword.name.as_str() {
                "profile" => {
                    if let Some(n) = self.one_string(file, st) {
                        if n.is_empty()
                            || n.chars()
                                .any(|c| c.is_whitespace() || c == '"' || c == '\0')
                        {
                            self.err(
                                file,
                                st.values[0].span.clone(),
                                "E1104",
                                format!("invalid AppArmor profile name `{n}`"),
                            );
                        } else {
                            p.profile = n;
                        }
                    }
                }
                "mode" => match st.values.first().map(value_text).as_deref() {
                    Some("enforce") => p.mode = AaMode::Enforce,
                    Some("complain") => p.mode = AaMode::Complain,
                    _ => {
                        self.err(
                            file,
                            st.span.clone(),
                            "E1105",
                            "expected `mode enforce` or `mode complain`",
                        );
                    }
                },
                "rule" => {
                    for v in Self::flat(&st.values) {
                        if let Some(r) = self.string(file, v) {
                            let r = r.trim().to_string();
                            if !r.ends_with(',') {
                                self.err(
                                    file,
                                    v.span.clone(),
                                    "E1106",
                                    "AppArmor rules end with `,`",
                                )
                                .help = Some(format!("write `\"{r},\"`"));
                                continue;
                            }
                            p.rules.push(AaRule {
                                text: r,
                                origin: Origin {
                                    file: String::new(),
                                    line: 0,
                                    column: 0,
                                },
                            });
                            rule_spans.push(Span::new(file, v.span.clone()));
                        }
                    }
                }
                _ => self.unknown_key(&a, "apparmor", &["profile", "mode", "rule"]),
            }
        }
        if enforcement.is_some() {
            self.aa_rule_spans = rule_spans;
            self.apparmor = Some(p);
        }
    }

    // -----------------------------------------------------------------------------------
    // whole-policy checks

    fn finish(&mut self, map: &SourceMap) -> Option<Policy> {
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

    /// Warn about rules that can never match (every syscall already decided by earlier
    /// unconditional rules) and rules that change nothing (same action as the default,
    /// and no later rule for those syscalls).
    ///
    /// Only rules of the root file are reported: a rule inherited through `extends` that
    /// the root overrides is dead by design, and the user cannot edit it anyway.
    fn check_rules(
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
    fn check_size(&mut self, rules: &[(Rule, Span)]) {
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
    fn check_abis(&mut self, rules: &[(Rule, Span)], arches: &[Arch]) {
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
    fn check_socketcall(&mut self, rules: &[(Rule, Span)], arches: &[Arch], default: Action) {
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

    fn check_caps(&mut self) {
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

/// The kernel's limit on a seccomp program's length (BPF_MAXINSNS), and so on the
/// argument comparisons of a policy.
const MAX_COMPARISONS: usize = 4096;

fn flip(op: syntax::CmpOp) -> syntax::CmpOp {
    use syntax::CmpOp::*;
    match op {
        Lt => Gt,
        Le => Ge,
        Gt => Lt,
        Ge => Le,
        o => o,
    }
}

fn arg_names(syscall: &str) -> String {
    match catalogue::syscall(syscall).and_then(|d| d.signature()) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|a| format!("`{}`", a.name))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    }
}

fn value_text(v: &Value) -> String {
    match &v.kind {
        ValueKind::Word(w) => w.clone(),
        ValueKind::Str(s) => s.clone(),
        ValueKind::Number(n) => n.text.clone(),
        ValueKind::SetRef(s) => format!("@{s}"),
        ValueKind::List(_) => "[…]".into(),
        ValueKind::Call(id, _) => format!("{}(…)", id.name),
        ValueKind::Arrow => "->".into(),
    }
}

fn ranges_overlap(a: u32, n: u32, b: u32, m: u32) -> bool {
    let (a, n, b, m) = (u64::from(a), u64::from(n), u64::from(b), u64::from(m));
    a < b + m && b < a + n
}

fn valid_mls_level(l: &str) -> bool {
    let (sens, cats) = match l.split_once(':') {
        Some((s, c)) => (s, Some(c)),
        None => (l, None),
    };
    let sens_ok = sens
        .strip_prefix('s')
        .is_some_and(|n| n.parse::<u16>().is_ok_and(|n| n < 16));
    let cats_ok = cats.is_none_or(|c| {
        !c.is_empty()
            && c.split(',').all(|part| {
                part.split('.').all(|x| {
                    x.strip_prefix('c')
                        .is_some_and(|n| n.parse::<u16>().is_ok_and(|n| n < 1024))
                })
            })
    });
    sens_ok && cats_ok
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.iter()
        .filter(|s| seen.insert(s.as_str()))
        .cloned()
        .collect()
}
