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
use policy_lang::catalogue::Arch;
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
        lib(
            || format!("the rule at {origin} for `{}`", r.name),
            ctx.add_rule_conditional_exact(scmp_action(r.action), sys, &cmps),
        )?;
    }
    Ok(ctx)
}

/// Compile the policy for one host.
pub fn compile(s: &Seccomp, host: Host) -> Result<Program, Error> {
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
    for f in &s.flags {
        match f {
            SeccompFlag::Log => lib(|| "the log flag".into(), ctx.set_ctl_log(true))?,
            SeccompFlag::SpecAllow => lib(|| "the spec-allow flag".into(), ctx.set_ctl_ssb(true))?,
            SeccompFlag::Tsync => lib(|| "the tsync flag".into(), ctx.set_ctl_tsync(true))?,
        };
    }
    let mut file = tempfile::tempfile().map_err(Error::Export)?;
    lib(|| "the export".into(), ctx.export_bpf(&file))?;
    let mut bpf = Vec::new();
    file.rewind().map_err(Error::Export)?;
    file.read_to_end(&mut bpf).map_err(Error::Export)?;
    Ok(Program { host, bpf, skipped })
}
