//! Landlock: restrict the calling thread with a compiled [`Ruleset`] through the
//! `landlock` crate, and report what the kernel actually enforced.
//!
//! `required` rulesets fail when the kernel lacks a right they handle; `best-effort` ones
//! degrade to what the kernel supports and say so.

use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset as LlRuleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use policy_lang::ir::Enforcement;

use crate::backends::landlock::Ruleset;

/// What the kernel enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforced {
    /// Nothing to enforce: the policy restricts no file, port or scope.
    Nothing,
    Fully,
    Partially,
    /// The kernel has no Landlock (allowed only for best-effort rulesets).
    Not,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("landlock: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    #[error("landlock: cannot open `{path}`: {source}")]
    Path {
        path: String,
        #[source]
        source: landlock::PathFdError,
    },
    #[error("landlock: the ruleset has rights this kakoi does not know ({0:#x})")]
    Bits(u64),
}

/// Restrict the calling thread. Paths that do not exist are skipped (a rule for them
/// grants nothing anyway).
pub fn restrict_self(r: &Ruleset) -> Result<Enforced, Error> {
    if r.is_empty() {
        return Ok(Enforced::Nothing);
    }
    let level = match r.enforcement {
        Enforcement::Required => CompatLevel::HardRequirement,
        Enforcement::BestEffort => CompatLevel::BestEffort,
    };
    let fs = |bits: u64| BitFlags::<AccessFs>::from_bits(bits).map_err(|_| Error::Bits(bits));
    let net = |bits: u64| BitFlags::<AccessNet>::from_bits(bits).map_err(|_| Error::Bits(bits));
    let mut rs = LlRuleset::default().set_compatibility(level);
    if r.handled_fs != 0 {
        rs = rs.handle_access(fs(r.handled_fs)?)?;
    }
    if r.handled_net != 0 {
        rs = rs.handle_access(net(r.handled_net)?)?;
    }
    if r.scoped != 0 {
        rs =
            rs.scope(BitFlags::<Scope>::from_bits(r.scoped).map_err(|_| Error::Bits(r.scoped))?)?;
    }
    let mut created = rs.create()?;
    for p in &r.paths {
        let fd = match PathFd::new(&p.path) {
            Ok(fd) => fd,
            Err(_) if !std::path::Path::new(&p.path).exists() => continue,
            Err(source) => {
                return Err(Error::Path {
                    path: p.path.clone(),
                    source,
                })
            }
        };
        // Rights about directory entries do not apply beneath a file.
        const FILE_RIGHTS: u64 = 1 << 0 | 1 << 1 | 1 << 2 | 1 << 14 | 1 << 15;
        let is_dir = std::fs::metadata(&p.path).is_ok_and(|m| m.is_dir());
        let mask = if is_dir { p.mask } else { p.mask & FILE_RIGHTS };
        created = created.add_rule(PathBeneath::new(fd, fs(mask)?))?;
    }
    for p in &r.ports {
        created = created.add_rule(NetPort::new(p.port, net(p.mask)?))?;
    }
    let status = created.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partially,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}
