//! Run the real consumers on generated artifacts: `apparmor_parser` on AppArmor
//! profiles (against a pinned features file, warnings as errors) and `secilc` on CIL
//! modules (against kakoi's base policy). Parser errors are mapped back to the policy
//! statement that produced the offending line.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::apparmor::{LineSource, Profile};
use super::selinux::BASE_POLICY;

/// The AppArmor feature set profiles are compiled against, pinned so results do not
/// depend on the machine (Debian's `apparmor` 3.0 default features).
pub const APPARMOR_FEATURES: &str = include_str!("../../fixtures/apparmor/features");

/// A problem a real consumer reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The policy statement behind the line, when the line maps to one.
    pub origin: Option<policy_lang::ir::Origin>,
    /// The generated line, 1-based, when the tool named one.
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("`{tool}` is not installed (package `{package}`)")]
    Missing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("cannot run `{tool}`: {source}")]
    Run {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn find(tool: &'static str, package: &'static str) -> Result<PathBuf, Error> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Missing { tool, package })
}

/// Compile a profile with `apparmor_parser -Q -K --Werror` against the pinned features.
/// `Ok(findings)`: empty when the parser accepted it.
pub fn apparmor(profile: &Profile) -> Result<Vec<Finding>, Error> {
    let parser = find("apparmor_parser", "apparmor")?;
    let dir = tempfile::tempdir().map_err(|source| Error::Run {
        tool: "apparmor_parser",
        source,
    })?;
    let features = dir.path().join("features");
    let file = dir.path().join(&profile.name);
    std::fs::write(&features, APPARMOR_FEATURES).map_err(|source| Error::Run {
        tool: "apparmor_parser",
        source,
    })?;
    std::fs::write(&file, &profile.text).map_err(|source| Error::Run {
        tool: "apparmor_parser",
        source,
    })?;
    let out = Command::new(parser)
        .args(["-Q", "-K", "--Werror", "-M"])
        .arg(&features)
        .arg("-o")
        .arg(dir.path().join("out.bin"))
        .arg(&file)
        .output()
        .map_err(|source| Error::Run {
            tool: "apparmor_parser",
            source,
        })?;
    if out.status.success() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let mut findings = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        // "AppArmor parser error for F in profile F at line 7: Invalid capability x."
        let line = l
            .split(" at line ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.trim().parse::<usize>().ok());
        let message = l
            .rsplit_once(": ")
            .map_or(l, |(_, m)| m)
            .trim_end_matches('.')
            .to_string();
        let origin = line
            .and_then(|n| profile.lines.get(n - 1))
            .and_then(|s| match s {
                LineSource::Rule(o) => Some(o.clone()),
                _ => None,
            });
        findings.push(Finding {
            origin,
            line,
            message,
        });
    }
    Ok(findings)
}

/// Build the base policy plus `module` with `secilc`; returns the findings and, when
/// accepted, the binary policy.
pub fn selinux(module: &str) -> Result<(Vec<Finding>, Option<Vec<u8>>), Error> {
    let secilc = find("secilc", "secilc")?;
    let run = |source| Error::Run {
        tool: "secilc",
        source,
    };
    let dir = tempfile::tempdir().map_err(run)?;
    let base = dir.path().join("base.cil");
    let m = dir.path().join("module.cil");
    let out_path = dir.path().join("policy.bin");
    std::fs::write(&base, BASE_POLICY).map_err(run)?;
    std::fs::write(&m, module).map_err(run)?;
    let out = Command::new(secilc)
        .args(["-M", "true", "-f", "/dev/null", "-o"])
        .arg(&out_path)
        .arg(&base)
        .arg(&m)
        .output()
        .map_err(run)?;
    if out.status.success() {
        return Ok((Vec::new(), Some(std::fs::read(&out_path).map_err(run)?)));
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let findings = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line = l
                .rsplit_once("module.cil:")
                .and_then(|(_, n)| n.trim().parse().ok());
            Finding {
                origin: None,
                line,
                message: l.trim().to_string(),
            }
        })
        .collect();
    Ok((findings, None))
}
