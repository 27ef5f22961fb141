//! The reference backend: the resolved policy compiled through the system libseccomp.
//!
//! kakoi rules are ordered (first match decides); libseccomp rules are an unordered union.
//! [`super::union`] makes them disjoint. Each ABI is compiled in its own filter and the
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
use policy_lang::ir::{Action, CmpOpOrd, ConcreteCmp, Origin, Seccomp, SeccompFlag};

use super::{union, Host, Program};

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

fn origin_text(o: &Origin) -> String {
    format!("{}:{}:{}", o.file, o.line, o.column)
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
    let rules = union::union_rules(s, arch).map_err(|u| Error::Inexpressible {
        origin: origin_text(&s.rules[u.rule].origin),
        arch: arch.name(),
        why: u.why,
    })?;
    for r in rules {
        let origin = origin_text(&s.rules[r.rule].origin);
        let inexpressible = |why: String| Error::Inexpressible {
            origin: origin.clone(),
            arch: arch.name(),
            why,
        };
        // libseccomp insists on rewriting i386's direct socket calls into `socketcall`
        // when they carry argument checks, and refuses them in exact mode.
        const I386_SOCKET_CALLS: std::ops::RangeInclusive<u32> = 359..=373;
        if arch == Arch::X86 && I386_SOCKET_CALLS.contains(&r.nr) && !r.cmps.is_empty() {
            return Err(inexpressible(format!(
                "libseccomp cannot check the arguments of i386's direct `{}`; kakoi's own generator can",
                r.name
            )));
        }
        // libseccomp treats x32 as a 32-bit ABI and compares only the low word, but x32
        // passes 64-bit arguments (`loff_t`, `long`) whole.
        if arch == Arch::X32 && r.cmps.iter().any(|c| !c.low32) {
            return Err(inexpressible(
                "libseccomp compares only the low 32 bits of a 64-bit argument on x32".into(),
            ));
        }
        // libseccomp takes syscall numbers in the *native* numbering (negative pseudo
        // numbers for calls the native arch lacks) and translates them to each arch by
        // name, so pass the name's native resolution.
        let Ok(sys) = ScmpSyscall::from_name(r.name) else {
            let tag = format!("{}:{}", arch.name(), r.name);
            if !skipped.contains(&tag) {
                skipped.push(tag);
            }
            continue;
        };
        let cmps: Vec<ScmpArgCompare> = r.cmps.iter().map(|c| arg_compare(c, arch)).collect();
        let added = ctx.add_rule_conditional_exact(scmp_action(r.action), sys, &cmps);
        // libseccomp adds `socketcall(SYS_X)` (and `ipc(X)`) itself for each of i386's
        // direct socket and IPC calls, with the call's action: a policy that decides the
        // two differently (a rule whose condition always holds on the direct call, a
        // later unconditional one for the multiplexer) collides with it.
        let multiplexed =
            r.name == "socketcall" || r.name == "ipc" || catalogue::multiplexed(r.name).is_some();
        if arch == Arch::X86 && multiplexed && added.is_err() {
            return Err(inexpressible(format!(
                "libseccomp ties i386's direct `{}` to its multiplexer's call, which this policy decides differently",
                r.name
            )));
        }
        lib(|| format!("the rule at {origin} for `{}`", r.name), added)?;
    }
    Ok(ctx)
}

/// Compile the policy for one host.
pub fn compile(s: &Seccomp, host: Host) -> Result<Program, Error> {
    compile_layout(s, host, Layout::Priority)
}

/// libseccomp's two layouts (`SCMP_FLTATR_CTL_OPTIMIZE` 1 and 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The default: syscalls tested one after another, by priority.
    Priority,
    /// A binary tree over syscall numbers.
    Tree,
}

impl Layout {
    fn level(self) -> u32 {
        match self {
            Layout::Priority => 1,
            Layout::Tree => 2,
        }
    }
}

/// Compile the policy for one host with one of libseccomp's layouts.
pub fn compile_layout(s: &Seccomp, host: Host, layout: Layout) -> Result<Program, Error> {
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
    lib(|| "the layout".into(), ctx.set_ctl_optimize(layout.level()))?;
    for f in &s.flags {
        match f {
            SeccompFlag::Log => lib(|| "the log flag".into(), ctx.set_ctl_log(true))?,
            SeccompFlag::SpecAllow => lib(|| "the spec-allow flag".into(), ctx.set_ctl_ssb(true))?,
            SeccompFlag::Tsync => lib(|| "the tsync flag".into(), ctx.set_ctl_tsync(true))?,
        };
    }
    Ok(Program {
        host,
        bpf: export(&ctx)?,
        skipped,
        unknown_as_default: s.unknown_action != s.default_action,
    })
}

/// The system libseccomp's version, `major.minor.micro`.
pub fn version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into())
}

/// The syscall names the system libseccomp cannot resolve. runc, crun and Podman hand
/// every name of an OCI profile to libseccomp and leave out, without a word, the ones it
/// does not know: those syscalls get the profile's default action under them.
pub fn unknown_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|n| ScmpSyscall::from_name(n).is_err())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the system libseccomp knows `name` as a syscall of `arch` (it drops a rule's
/// syscall on an ABI of the filter where it does not: map_shadow_stack on x32 in 2.5).
pub fn known_on(name: &str, arch: Arch) -> bool {
    ScmpSyscall::from_name_by_arch(name, scmp_arch(arch)).is_ok_and(|s| s.as_raw_syscall() >= 0)
}

/// The raw BPF of a libseccomp filter.
pub(crate) fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, Error> {
    let mut file = tempfile::tempfile().map_err(Error::Export)?;
    lib(|| "the export".into(), ctx.export_bpf(&file))?;
    let mut bpf = Vec::new();
    file.rewind().map_err(Error::Export)?;
    file.read_to_end(&mut bpf).map_err(Error::Export)?;
    Ok(bpf)
}

/// Whether moby keeps a profile entry for `target`: every capability `includes` names is
/// held and none `excludes` names, the kernel is at least `minKernel`, and the host's
/// architecture (Go's GOARCH) is included and not excluded.
pub(crate) fn entry_applies(e: &serde_json::Value, target: &super::json::Target) -> bool {
    let host_arch = match target.host {
        Host::X86_64 => "amd64",
        Host::Aarch64 => "arm64",
    };
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let has_cap = |c: &String| target.caps.contains(c.trim_start_matches("CAP_"));
    let (inc, exc) = (&e["includes"], &e["excludes"]);
    let min_ok = inc["minKernel"].as_str().is_none_or(|k| {
        let mut it = k.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0)) <= target.kernel
    });
    list(&inc["caps"]).iter().all(has_cap)
        && !list(&exc["caps"]).iter().any(has_cap)
        && (list(&inc["arches"]).is_empty() || list(&inc["arches"]).iter().any(|a| a == host_arch))
        && !list(&exc["arches"]).iter().any(|a| a == host_arch)
        && min_ok
}

/// What runc loads for a Docker/OCI profile: the JSON handed straight to libseccomp,
/// after moby resolved `includes`/`excludes` for `target` (names libseccomp does not know
/// and rules it refuses for one ABI are skipped, as runc does). For comparisons and
/// benchmarks: this is the filter containers run under today.
pub fn compile_docker_json(
    text: &str,
    target: &super::json::Target,
    layout: Layout,
) -> Result<Vec<u8>, Error> {
    use serde_json::Value;
    let bad = |what: &str| {
        Error::Export(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            what.to_string(),
        ))
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let doc = doc.pointer("/linux/seccomp").unwrap_or(&doc);
    let errno = |v: &Value| v.as_i64().unwrap_or(1) as i32;
    let action = |a: &Value, e: &Value| -> Result<ScmpAction, Error> {
        Ok(match a.as_str().unwrap_or("") {
            "SCMP_ACT_ALLOW" => ScmpAction::Allow,
            "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno(e)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
            "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
            "SCMP_ACT_TRAP" => ScmpAction::Trap,
            "SCMP_ACT_LOG" => ScmpAction::Log,
            "SCMP_ACT_TRACE" => ScmpAction::Trace(errno(e) as u16),
            "SCMP_ACT_NOTIFY" => ScmpAction::Notify,
            other => return Err(bad(&format!("unknown action `{other}`"))),
        })
    };
    let default = action(&doc["defaultAction"], &doc["defaultErrnoRet"])?;
    let mut ctx = lib(|| "a new filter".into(), ScmpFilterContext::new(default))?;
    let native = target.host.abis()[0];
    // An OCI config lists ABIs in `architectures` (moby turns `archMap` into it).
    for a in doc["architectures"].as_array().into_iter().flatten() {
        let a = match a.as_str().unwrap_or("") {
            "SCMP_ARCH_X86" if native == Arch::X86_64 => ScmpArch::X86,
            "SCMP_ARCH_X32" if native == Arch::X86_64 => ScmpArch::X32,
            _ => continue,
        };
        // Listed twice (or in archMap too): libseccomp says EEXIST, runc goes on.
        if !lib(|| "an arch".into(), ctx.is_arch_present(a))? {
            lib(|| "an arch".into(), ctx.add_arch(a))?;
        }
    }
    if let Some(map) = doc["archMap"].as_array() {
        for m in map {
            if m["architecture"].as_str()
                == Some(&format!("SCMP_ARCH_{}", native.name().to_uppercase()))
            {
                for sub in m["subArchitectures"].as_array().into_iter().flatten() {
                    let a = match sub.as_str().unwrap_or("") {
                        "SCMP_ARCH_X86" => ScmpArch::X86,
                        "SCMP_ARCH_X32" => ScmpArch::X32,
                        _ => continue,
                    };
                    lib(|| "an arch".into(), ctx.add_arch(a))?;
                }
            }
        }
    }
    for e in doc["syscalls"].as_array().into_iter().flatten() {
        if !entry_applies(e, target) {
            continue;
        }
        let act = action(&e["action"], &e["errnoRet"])?;
        // runc skips an entry with the default action (libseccomp would refuse it).
        if act == default {
            continue;
        }
        let cmps: Vec<ScmpArgCompare> = e["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let v = c["value"].as_u64().unwrap_or(0);
                let two = c["valueTwo"].as_u64().unwrap_or(0);
                let (op, datum) = match c["op"].as_str().unwrap_or("") {
                    "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, v),
                    "SCMP_CMP_LT" => (ScmpCompareOp::Less, v),
                    "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, v),
                    "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, v),
                    "SCMP_CMP_GT" => (ScmpCompareOp::Greater, v),
                    "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(v), two),
                    _ => (ScmpCompareOp::Equal, v),
                };
                ScmpArgCompare::new(c["index"].as_u64().unwrap_or(0) as u32, op, datum)
            })
            .collect();
        // runc: when one argument is compared more than once, every comparison becomes
        // a rule of its own (any of them matches); otherwise one rule with all of them.
        let mut seen = std::collections::BTreeSet::new();
        let repeated = e["args"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| !seen.insert(c["index"].as_u64().unwrap_or(0)));
        let sets: Vec<Vec<ScmpArgCompare>> = if repeated {
            cmps.iter().map(|c| vec![*c]).collect()
        } else {
            vec![cmps]
        };
        let names = e["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str());
        for n in names {
            // runc skips a name libseccomp does not know, and refuses the profile when
            // libseccomp refuses a rule (the container does not start).
            if let Ok(sys) = ScmpSyscall::from_name(n) {
                for set in &sets {
                    lib(
                        || format!("the rule for `{n}` (runc would not start the container)"),
                        ctx.add_rule_conditional(act, sys, set),
                    )?;
                }
            }
        }
    }
    lib(|| "the layout".into(), ctx.set_ctl_optimize(layout.level()))?;
    export(&ctx)
}
