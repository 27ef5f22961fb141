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

mod capabilities;
mod checks;
mod filesystem;
mod identity;
mod lsm;
mod namespaces;
mod network;
mod process;
mod resources;
mod seccomp;
mod values;

use seccomp::*;
use values::*;

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
}
