//! Docker, Podman and OCI seccomp JSON: import into the IR, export from it.
//!
//! Import resolves what is conditional in Docker's format against a target, as moby does
//! when it writes the OCI spec: `archMap` picks the ABIs of the host, and `includes` /
//! `excludes` by capability, kernel version and host architecture are decided once. Args follow runc: several
//! comparisons of one syscall entry are ANDed, except that comparisons of the same
//! argument are ORed. The entries of the file are a union (as libseccomp reads them);
//! where two entries of different actions could both match a syscall, the import says so.
//!
//! Export writes the union form of the policy ([`super::union`]) for one host.

use std::collections::BTreeSet;

use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{
    Action, ArgCmp, CmpOp, CmpOpOrd, ConcreteCmp, Cond, ConstExpr, Origin, Rule, Seccomp,
};
use serde_json::{json, Value};

use super::{union, Host};

/// What the imported profile is resolved against.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: Host,
    /// Capabilities the container holds (names without `CAP_`).
    pub caps: BTreeSet<String>,
    /// Kernel version for `minKernel` (major, minor).
    pub kernel: (u32, u32),
}

impl Target {
    /// Docker's default capability set on an x86_64 host, kernel 6.12.
    pub fn docker_default() -> Self {
        let caps = catalogue::DOCKER_DEFAULT_CAPS;
        Target {
            host: Host::X86_64,
            caps: caps.iter().map(|c| c.to_string()).collect(),
            kernel: (6, 12),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{name}:{line}:{column}: not valid JSON: {message}")]
    Syntax {
        name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{name}: {pointer}: {message}")]
    Profile {
        name: String,
        pointer: String,
        message: String,
    },
}

/// An imported profile: the IR and what did not carry over exactly.
#[derive(Clone, Debug)]
pub struct Imported {
    pub seccomp: Seccomp,
    pub notes: Vec<String>,
}

fn scmp_arch(name: &str) -> Option<Arch> {
    Some(match name {
        "SCMP_ARCH_X86_64" => Arch::X86_64,
        "SCMP_ARCH_X86" => Arch::X86,
        "SCMP_ARCH_X32" => Arch::X32,
        "SCMP_ARCH_AARCH64" => Arch::Aarch64,
        _ => return None,
    })
}

fn scmp_arch_name(a: Arch) -> &'static str {
    match a {
        Arch::X86_64 => "SCMP_ARCH_X86_64",
        Arch::X86 => "SCMP_ARCH_X86",
        Arch::X32 => "SCMP_ARCH_X32",
        Arch::Aarch64 => "SCMP_ARCH_AARCH64",
    }
}

fn errno_value(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().filter(|e| *e < 4096).map(|e| e as u16),
        Value::String(s) => catalogue::constant(s, Arch::X86_64)
            .filter(|e| *e < 4096)
            .map(|e| e as u16),
        _ => None,
    }
}

struct Ctx<'a> {
    name: &'a str,
}

impl Ctx<'_> {
    fn err(&self, pointer: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Profile {
            name: self.name.to_string(),
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    fn action(&self, v: &Value, errno: Option<u16>, ptr: &str) -> Result<Action, Error> {
        let s = v
            .as_str()
            .ok_or_else(|| self.err(ptr, "the action must be a string"))?;
        Ok(match s {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(1)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(1)), // runc: EPERM without errnoRet
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => Action::Notify,
            other => return Err(self.err(ptr, format!("unknown action `{other}`"))),
        })
    }
}

fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split('.');
    Some((
        it.next()?.parse().ok()?,
        it.next().unwrap_or("0").parse().ok()?,
    ))
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Import a Docker/Podman/OCI seccomp profile.
/// Whether runc would refuse the profile: it hands the entries to libseccomp, which
/// refuses some combinations (a rule conflicting with one already added), and the
/// container does not start. The note to give, if so. (A libseccomp compilation, about
/// 10 ms for Docker's profile: `kakoi import` asks, the auditor's hot path does not.)
pub fn runc_refusal(text: &str, target: &Target) -> Option<String> {
    let e = crate::seccomp::libseccomp::compile_docker_json(
        text,
        target,
        crate::seccomp::libseccomp::Layout::Priority,
    )
    .err()?;
    Some(format!(
        "runc refuses this profile with libseccomp {} ({e}): a container would not start with it",
        crate::seccomp::libseccomp::version()
    ))
}

pub fn import(name: &str, text: &str, target: &Target) -> Result<Imported, Error> {
    let doc: Value = serde_json::from_str(text).map_err(|e| Error::Syntax {
        name: name.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    // OCI runtime config: the profile sits at linux.seccomp.
    let doc = doc.pointer("/linux/seccomp").unwrap_or(&doc);
    let cx = Ctx { name };
    let mut notes = Vec::new();
    if !doc.is_object() {
        return Err(cx.err("", "a seccomp profile is a JSON object"));
    }
    let default_errno = doc
        .get("defaultErrnoRet")
        .or_else(|| doc.get("defaultErrno"))
        .map(|v| errno_value(v).ok_or_else(|| cx.err("/defaultErrnoRet", "not an errno")))
        .transpose()?;
    let default_action = cx.action(
        doc.get("defaultAction").unwrap_or(&Value::Null),
        default_errno,
        "/defaultAction",
    )?;

    // Which ABIs: archMap's entry for the host, or `architectures`.
    let native = target.host.abis()[0];
    let mut arches: Vec<Arch> = Vec::new();
    if let Some(map) = doc.get("archMap").and_then(Value::as_array) {
        for (i, m) in map.iter().enumerate() {
            let main = m.get("architecture").and_then(Value::as_str).unwrap_or("");
            if scmp_arch(main) == Some(native) {
                arches.push(native);
                for sub in str_list(m.get("subArchitectures").unwrap_or(&Value::Null)) {
                    match scmp_arch(sub) {
                        Some(a) if target.host.abis().contains(&a) => arches.push(a),
                        _ => notes.push(format!(
                            "/archMap/{i}: `{sub}` is not an ABI of a {} host; left out",
                            target.host.name()
                        )),
                    }
                }
            }
        }
    } else if let Some(list) = doc.get("architectures").and_then(Value::as_array) {
        for (i, a) in list.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            match scmp_arch(a) {
                Some(a) if target.host.abis().contains(&a) => arches.push(a),
                _ => notes.push(format!(
                    "/architectures/{i}: `{a}` is not an ABI of a {} host; left out",
                    target.host.name()
                )),
            }
        }
    }
    // libseccomp's filter always holds the native ABI (runc adds the listed ones to it),
    // so the rules apply to native calls whatever the list says.
    if !arches.contains(&native) {
        if !arches.is_empty() {
            notes.push(format!(
                "the native ABI {} is not listed; runc's libseccomp filter holds it anyway, and so does this import",
                native.name()
            ));
        }
        arches.push(native);
    }
    arches.sort();
    arches.dedup();

    let mut rules = Vec::new();
    let syscalls = doc
        .get("syscalls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, entry) in syscalls.iter().enumerate() {
        let ptr = format!("/syscalls/{i}");
        let errno = entry
            .get("errnoRet")
            .or_else(|| entry.get("errno"))
            .map(|v| {
                errno_value(v).ok_or_else(|| cx.err(format!("{ptr}/errnoRet"), "not an errno"))
            })
            .transpose()?;
        let action = cx.action(
            entry.get("action").unwrap_or(&Value::Null),
            errno,
            &format!("{ptr}/action"),
        )?;
        // includes: every listed cap held, kernel new enough, and (per arch) listed arches.
        let inc = entry.get("includes").cloned().unwrap_or(Value::Null);
        let exc = entry.get("excludes").cloned().unwrap_or(Value::Null);
        let caps_ok = str_list(&inc["caps"])
            .iter()
            .all(|c| target.caps.contains(c.trim_start_matches("CAP_")));
        let caps_excluded = str_list(&exc["caps"])
            .iter()
            .any(|c| target.caps.contains(c.trim_start_matches("CAP_")));
        let kernel_ok = match inc.get("minKernel").and_then(Value::as_str) {
            None => true,
            Some(k) => {
                kernel_version(k).ok_or_else(|| {
                    cx.err(
                        format!("{ptr}/includes/minKernel"),
                        format!("`{k}` is not a kernel version"),
                    )
                })? <= target.kernel
            }
        };
        if !caps_ok || caps_excluded || !kernel_ok {
            continue;
        }
        // Like moby, `arches` name the host's architecture (Go's GOARCH), and a
        // matching entry applies to every ABI of the filter.
        let host_arch = match target.host {
            Host::X86_64 => "amd64",
            Host::Aarch64 => "arm64",
        };
        let inc_arches = str_list(&inc["arches"]);
        if !inc_arches.is_empty() && !inc_arches.contains(&host_arch) {
            continue;
        }
        if str_list(&exc["arches"]).contains(&host_arch) {
            continue;
        }
        let mut args = entry
            .get("args")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // `(arg & 0) == x` holds for every argument: libseccomp treats it as no comparison.
        // runc makes comparisons of an argument compared twice alternatives (one that always
        // holds makes the entry unconditional) and the others all required (one that always
        // holds can be left out).
        let always = |a: &Value| {
            a.get("op").and_then(Value::as_str) == Some("SCMP_CMP_MASKED_EQ")
                && a.get("value").and_then(Value::as_u64) == Some(0)
        };
        if args.iter().any(always) {
            let mut seen = BTreeSet::new();
            let repeated = args
                .iter()
                .any(|a| !seen.insert(a.get("index").and_then(Value::as_u64)));
            notes.push(format!(
                "{ptr}: a comparison with mask 0 always holds; left out"
            ));
            if repeated {
                args.clear();
            } else {
                args.retain(|a| !always(a));
            }
        }
        let mut names: Vec<&str> = str_list(entry.get("names").unwrap_or(&Value::Null));
        if let Some(n) = entry.get("name").and_then(Value::as_str) {
            names.push(n);
        }
        let origin = Origin {
            file: name.to_string(),
            line: i + 1,
            column: 0,
        };
        let mut known = Vec::new();
        for n in names {
            match catalogue::syscall(n) {
                Some(d) if arches.iter().any(|a| d.nr(*a).is_some()) => known.push(d),
                Some(_) => {}
                None => notes.push(format!(
                    "{ptr}: `{n}` is not a syscall of Linux {}'s x86 or arm64 tables; left out",
                    catalogue::KERNEL_VERSION
                )),
            }
        }
        if known.is_empty() {
            continue;
        }
        if args.is_empty() {
            rules.push(Rule {
                action,
                syscalls: known.iter().map(|d| d.name.to_string()).collect(),
                cond: None,
                origin: origin.clone(),
            });
            continue;
        }
        // Argument conditions name arguments per syscall: one rule per syscall.
        for d in known {
            let sig = d.signature().unwrap_or(&[]);
            let mut cmps = Vec::new();
            for (j, a) in args.iter().enumerate() {
                let aptr = format!("{ptr}/args/{j}");
                let index = a
                    .get("index")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| cx.err(&aptr, "`index` is missing"))?
                    as usize;
                let Some(arg) = sig.get(index) else {
                    return Err(cx.err(&aptr, format!("`{}` has no argument {index}", d.name)));
                };
                let value = a.get("value").and_then(Value::as_u64).unwrap_or(0);
                let two = a.get("valueTwo").and_then(Value::as_u64).unwrap_or(0);
                let op = a.get("op").and_then(Value::as_str).unwrap_or("");
                let (op, mask, v) = match op {
                    "SCMP_CMP_NE" => (CmpOp::Ne, None, value),
                    "SCMP_CMP_LT" => (CmpOp::Lt, None, value),
                    "SCMP_CMP_LE" => (CmpOp::Le, None, value),
                    "SCMP_CMP_EQ" => (CmpOp::Eq, None, value),
                    "SCMP_CMP_GE" => (CmpOp::Ge, None, value),
                    "SCMP_CMP_GT" => (CmpOp::Gt, None, value),
                    // libseccomp compares `(arg & mask) == (datum & mask)`: bits of the
                    // datum outside the mask take no part.
                    "SCMP_CMP_MASKED_EQ" => {
                        if two & !value != 0 {
                            notes.push(format!(
                                "{aptr}: valueTwo {two:#x} has bits outside the mask {value:#x}; libseccomp ignores them, and so does this import ({:#x})",
                                two & value
                            ));
                        }
                        (CmpOp::Eq, Some(ConstExpr::Num(value)), two & value)
                    }
                    other => {
                        return Err(
                            cx.err(format!("{aptr}/op"), format!("unknown operator `{other}`"))
                        )
                    }
                };
                if arg.kind.is_32bit() && v >> 32 != 0 && v < 0xffff_ffff_8000_0000 {
                    notes.push(format!(
                        "{aptr}: `{}` of `{}` is a 32-bit argument: kakoi compares its low word with {:#x}, as the kernel reads it; libseccomp compares all 64 bits with {v:#x}",
                        arg.name,
                        d.name,
                        v & 0xffff_ffff
                    ));
                }
                cmps.push((
                    index,
                    Cond::Arg(ArgCmp {
                        arg: arg.name.to_string(),
                        mask,
                        op,
                        value: ConstExpr::Num(v),
                    }),
                ));
            }
            // runc: comparisons of one argument are alternatives, of different arguments
            // all required.
            let indexes: BTreeSet<usize> = cmps.iter().map(|(i, _)| *i).collect();
            let cond = if indexes.len() < cmps.len() {
                Cond::Or(cmps.into_iter().map(|(_, c)| c).collect())
            } else {
                Cond::And(cmps.into_iter().map(|(_, c)| c).collect())
            };
            rules.push(Rule {
                action,
                syscalls: vec![d.name.to_string()],
                cond: Some(cond),
                origin: origin.clone(),
            });
        }
    }
    // libseccomp refuses an entry whose action is the default one (runc skips it), so it
    // cannot shadow a later entry as a first-match reading would have it.
    let before = rules.len();
    rules.retain(|r| r.action != default_action);
    if rules.len() < before {
        notes.push(format!(
            "{} entries have the default action; runc and libseccomp leave them out, and so does this import",
            before - rules.len()
        ));
    }
    // libseccomp keeps, for a syscall that has an unconditional entry, only that entry:
    // one added after conditional ones replaces them, conditional ones added after it are
    // redundant. So it decides the syscall whatever the file's order.
    let unconditional: BTreeSet<String> = rules
        .iter()
        .filter(|r| r.cond.is_none())
        .flat_map(|r| r.syscalls.iter().cloned())
        .collect();
    let before = rules.len();
    rules.retain(|r| r.cond.is_none() || !r.syscalls.iter().any(|s| unconditional.contains(s)));
    if rules.len() < before {
        notes.push(format!(
            "{} conditional entries name a syscall that an unconditional entry decides; libseccomp keeps only the unconditional one, and so does this import",
            before - rules.len()
        ));
    }
    // Conditional entries of different actions for one syscall: where their conditions
    // overlap, libseccomp decides by its own precedence (neither the first nor the last
    // entry, and documented nowhere but in its code). Those syscalls are read back from
    // the program libseccomp makes of the profile, as runc would load it.
    let mut seen: std::collections::BTreeMap<&str, BTreeSet<Action>> = Default::default();
    for r in rules.iter().filter(|r| r.cond.is_some()) {
        for s in &r.syscalls {
            seen.entry(s.as_str()).or_default().insert(r.action);
        }
    }
    let overlapping: Vec<String> = seen
        .into_iter()
        .filter(|(_, a)| a.len() > 1)
        .map(|(s, _)| s.to_string())
        .collect();
    if !overlapping.is_empty() {
        let list = overlapping
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match libseccomp_resolution(text, target, &overlapping, &arches, default_action, &rules)
        {
            Ok(resolved) => {
                for r in &mut rules {
                    r.syscalls.retain(|s| !overlapping.contains(s));
                }
                rules.retain(|r| !r.syscalls.is_empty());
                rules.extend(resolved);
                notes.push(format!(
                    "{list}: conditional entries of different actions, which libseccomp orders by its own precedence where they overlap; their rules here are read back from libseccomp's program of the profile (what runc loads), per ABI"
                ));
            }
            Err(why) => notes.push(format!(
                "{list}: conditional entries of different actions; where they overlap, libseccomp's precedence decides under runc and file order under kakoi ({why})"
            )),
        }
    }
    notes.push(
        "calls of an architecture the profile leaves out get kill-process (the whole sandbox ends), where libseccomp's default kills the calling thread only".into(),
    );
    // runc and libseccomp check argument rules on i386 socket and IPC calls on the direct
    // calls only, while the profile leaves the multiplexer open: the same meaning here,
    // said out loud.
    // (`kakoi import` names it in a note; `kakoi audit` reports SCMP010.)
    let acknowledged = policy_lang::ir::bypassable_muxes(&rules, default_action, &arches);
    Ok(Imported {
        seccomp: Seccomp {
            enabled: true,
            default_action,
            bad_arch_action: Action::KillProcess,
            unknown_action: default_action,
            arches,
            flags: Vec::new(),
            rules,
            acknowledged,
        },
        notes,
    })
}

/// The rules that decide `names` as libseccomp's program of the profile does: its paths
/// for each syscall on each ABI, decompiled (`kakoi import` of raw BPF does the same), one
/// rule per path that does not end in the default.
fn libseccomp_resolution(
    text: &str,
    target: &Target,
    names: &[String],
    arches: &[Arch],
    default: Action,
    rules: &[Rule],
) -> Result<Vec<Rule>, String> {
    use super::libseccomp::{compile_docker_json, known_on, Layout};
    if let Some(n) = names.iter().find(|n| {
        arches
            .iter()
            .any(|a| catalogue::syscall(n).is_some_and(|d| d.nr(*a).is_some()) && !known_on(n, *a))
    }) {
        return Err(format!("libseccomp does not know `{n}`"));
    }
    let prog = compile_docker_json(text, target, Layout::Priority).map_err(|e| e.to_string())?;
    let prog = crate::bpf::decode(&prog).map_err(|e| e.to_string())?;
    let mut src = format!(
        "seccomp {{\n    default {}\n    arches [{}]\n",
        default.to_source(),
        arches
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in names {
        for a in arches {
            if catalogue::syscall(n).and_then(|d| d.nr(*a)).is_none() {
                continue;
            }
            for (action, cond) in crate::audit::import::decompile(&prog, *a, n, default)? {
                let on = (arches.len() > 1).then(|| format!("arch == {}", a.name()));
                let cond = match (on, cond.is_empty()) {
                    (Some(on), true) => format!(" if {on}"),
                    (Some(on), false) => format!(" if {on} && ({cond})"),
                    (None, true) => String::new(),
                    (None, false) => format!(" if {cond}"),
                };
                src.push_str(&format!("    {} {n}{cond}\n", action.to_source()));
            }
        }
    }
    src.push_str("}\n");
    let (_, checked) = policy_lang::check_str("libseccomp.kakoi", &src);
    let p = checked.policy.ok_or_else(|| {
        checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    // Each rule keeps the place of the profile's first entry for its syscall.
    Ok(p.seccomp
        .rules
        .into_iter()
        .map(|mut r| {
            if let Some(o) = rules.iter().find(|x| x.syscalls == r.syscalls) {
                r.origin = o.origin.clone();
            }
            r
        })
        .collect())
}

fn action_json(a: Action) -> Value {
    match a {
        Action::Allow => json!({ "action": "SCMP_ACT_ALLOW" }),
        Action::Errno(e) => json!({ "action": "SCMP_ACT_ERRNO", "errnoRet": e }),
        Action::KillProcess => json!({ "action": "SCMP_ACT_KILL_PROCESS" }),
        Action::KillThread => json!({ "action": "SCMP_ACT_KILL_THREAD" }),
        Action::Trap => json!({ "action": "SCMP_ACT_TRAP" }),
        Action::Log => json!({ "action": "SCMP_ACT_LOG" }),
        Action::Trace(n) => json!({ "action": "SCMP_ACT_TRACE", "errnoRet": n }),
        Action::Notify => json!({ "action": "SCMP_ACT_NOTIFY" }),
    }
}

/// A union rule as JSON parts: syscall name, action object, comparisons array.
type Entry = (String, Value, Value);

/// One comparison as OCI JSON. Equality on a 32-bit argument is a masked equality on
/// the low word, so runc/crun compare it exactly as kakoi means it.
fn cmp_json(c: &ConcreteCmp) -> Value {
    let op = match c.op {
        CmpOpOrd::Eq => "SCMP_CMP_EQ",
        CmpOpOrd::Ne => "SCMP_CMP_NE",
        CmpOpOrd::Lt => "SCMP_CMP_LT",
        CmpOpOrd::Le => "SCMP_CMP_LE",
        CmpOpOrd::Gt => "SCMP_CMP_GT",
        CmpOpOrd::Ge => "SCMP_CMP_GE",
    };
    match (c.op, c.mask) {
        (CmpOpOrd::Eq, Some(m)) => {
            json!({ "index": c.index, "value": m, "valueTwo": c.value & m, "op": "SCMP_CMP_MASKED_EQ" })
        }
        (CmpOpOrd::Eq, None) if c.low32 => {
            json!({ "index": c.index, "value": 0xffff_ffffu64, "valueTwo": c.value & 0xffff_ffff, "op": "SCMP_CMP_MASKED_EQ" })
        }
        _ => json!({ "index": c.index, "value": c.value, "valueTwo": 0, "op": op }),
    }
}

/// Export the policy's filter for one host as an OCI `linux.seccomp` object. Every ABI of
/// the host the policy targets must have the same union rules for the syscalls they share
/// (the format has one list for all architectures); otherwise this says where they differ.
pub fn export_oci(s: &Seccomp, host: Host) -> Result<Value, String> {
    let abis: Vec<Arch> = host
        .abis()
        .iter()
        .copied()
        .filter(|a| s.arches.contains(a))
        .collect();
    // Per ABI: (name, action JSON, comparisons JSON), sorted.
    let mut lists: Vec<(Arch, Vec<Entry>)> = Vec::new();
    for &a in &abis {
        let rules = union::union_rules(s, a).map_err(|u| {
            format!(
                "{}:{}: {}",
                s.rules[u.rule].origin.file, s.rules[u.rule].origin.line, u.why
            )
        })?;
        let mut v: Vec<Entry> = rules
            .iter()
            .map(|r| {
                (
                    r.name.to_string(),
                    action_json(r.action),
                    Value::Array(r.cmps.iter().map(cmp_json).collect()),
                )
            })
            .collect();
        v.sort_by_key(|x| format!("{}{}{}", x.0, x.1, x.2));
        lists.push((a, v));
    }
    if let Some((first, base)) = lists.first() {
        for (a, other) in &lists[1..] {
            let shared = |n: &str| {
                [*first, *a]
                    .iter()
                    .all(|arch| catalogue::syscall(n).and_then(|d| d.nr(*arch)).is_some())
            };
            let x: Vec<_> = base.iter().filter(|r| shared(&r.0)).collect();
            let y: Vec<_> = other.iter().filter(|r| shared(&r.0)).collect();
            if x != y {
                return Err(format!(
                    "rules differ between {} and {}; OCI JSON has one list for all architectures",
                    first.name(),
                    a.name()
                ));
            }
        }
    }
    // One entry per (action, comparisons), listing the names.
    let mut entries: Vec<(Value, Value, BTreeSet<String>)> = Vec::new();
    for (_, rules) in &lists {
        for (name, action, cmps) in rules {
            match entries.iter_mut().find(|e| &e.0 == action && &e.1 == cmps) {
                Some(e) => {
                    e.2.insert(name.clone());
                }
                None => entries.push((action.clone(), cmps.clone(), [name.clone()].into())),
            }
        }
    }
    let syscalls: Vec<Value> = entries
        .into_iter()
        .map(|(action, cmps, names)| {
            let mut e = action;
            e["names"] = json!(names);
            if cmps.as_array().is_some_and(|a| !a.is_empty()) {
                e["args"] = cmps;
            }
            e
        })
        .collect();
    let mut out = json!({
        "defaultAction": action_json(s.default_action)["action"],
        "architectures": abis.iter().map(|a| scmp_arch_name(*a)).collect::<Vec<_>>(),
        "syscalls": syscalls,
    });
    if let Action::Errno(e) = s.default_action {
        out["defaultErrnoRet"] = json!(e);
    }
    Ok(out)
}
