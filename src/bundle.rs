//! The compiled bundle: every artifact of a policy plus a manifest, written atomically.
//!
//! Architecture invariant: building the artifacts ([`build`]) is pure and deterministic
//! (no timestamps, sorted keys); only [`write_dir`] touches the file system, and it either
//! leaves a complete bundle or nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use policy_lang::{ir, Policy, SourceMap};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backends;
use crate::seccomp::{self, Backend, Host};

/// Whether to run the real consumers (`apparmor_parser`, `secilc`) on the LSM artifacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Validate {
    /// When the tools are installed; otherwise say so in the manifest's notes.
    #[default]
    Auto,
    /// Always; a missing tool is an error.
    Always,
    Never,
}

/// Bundle layout version, bumped on incompatible changes.
pub const FORMAT: u32 = 1;

/// One file of a bundle.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct ManifestEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: usize,
}

/// The manifest's record of one artifact.
pub fn entry(name: &str, bytes: &[u8]) -> ManifestEntry {
    ManifestEntry {
        name: name.to_string(),
        sha256: hex(&Sha256::digest(bytes)),
        bytes: bytes.len(),
    }
}

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub format: u32,
    pub kakoi: &'static str,
    pub policy: String,
    pub sources: Vec<String>,
    /// SHA-256 over every source file's name and text, in order.
    pub source_sha256: String,
    pub targets: Vec<&'static str>,
    /// The seccomp code generator used.
    pub backend: Backend,
    pub artifacts: Vec<ManifestEntry>,
    /// What the backends could not honour exactly, one line each.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    #[error("{tool} rejected the generated artifact:\n{}", findings.iter().map(|f| format!("  {}{}", f.origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default(), f.message)).collect::<Vec<_>>().join("\n"))]
    Rejected {
        tool: &'static str,
        findings: Vec<backends::validate::Finding>,
    },
    #[error(transparent)]
    Validator(backends::validate::Error),
    #[error("`{path}` exists and is not a kakoi bundle")]
    NotABundle { path: PathBuf },
    #[error("cannot write the bundle `{path}` ({doing}): {source}")]
    Io {
        path: PathBuf,
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why a bundle cannot be read back: every reader of a bundle (`kakoi run --bundle`,
/// `kakoi audit`, `load_with`) checks it whole first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{name}: no such file")]
    NoFile { name: String },
    /// The manifest or the policy is not what this kakoi writes.
    #[error("{file}: {why}")]
    Malformed { file: String, why: String },
    /// A file differs from what the manifest says.
    #[error("{file}: {why}")]
    Modified { file: String, why: String },
    #[error("the bundle has no {file}{}", if file.starts_with("seccomp.") { " (compiled for another machine type?)" } else { "" })]
    Missing { file: String },
    #[error("{file}: {source}")]
    Filter {
        file: String,
        #[source]
        source: crate::bpf::Error,
    },
    #[error("{file} contradicts policy.json: {why}")]
    Contradicts { file: String, why: Contradiction },
    #[error("policy.json has seccomp off, but the bundle has a filter ({file}): one of them was changed")]
    StrayFilter { file: String },
}

/// A decision of a bundle's filter that its `policy.json` does not make (see
/// [`contradiction`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} gets {}, the policy says {}", got.to_source(), says.to_source())]
pub struct Contradiction {
    pub what: &'static str,
    pub got: ir::Action,
    pub says: ir::Action,
}

/// A source of a bundle's files by name.
pub type Reader<'a> = dyn Fn(&str) -> Result<Vec<u8>, LoadError> + 'a;

/// The kinds `--emit` accepts, with the artifact each one prints.
pub const EMIT_KINDS: &[&str] = &[
    "policy",
    "manifest",
    "seccomp-x86_64",
    "seccomp-aarch64",
    "seccomp-json-x86_64",
    "seccomp-json-aarch64",
    "caps",
    "landlock",
    "apparmor",
    "selinux",
    "lsm",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("IR types serialize");
    s.push(b'\n');
    s
}

/// Build every artifact and the manifest (last in the list).
pub fn build(
    policy: &Policy,
    map: &SourceMap,
    backend: Backend,
    validate: Validate,
) -> Result<Vec<Artifact>, Error> {
    let mut arts = vec![Artifact {
        name: "policy.json".into(),
        bytes: json(policy),
    }];
    let mut notes = Vec::new();
    if policy.seccomp.enabled {
        for host in Host::for_policy(&policy.seccomp) {
            let prog = seccomp::compile_checked(&policy.seccomp, host, backend)?;
            if prog.unknown_as_default {
                notes.push(format!(
                    "seccomp.{}.bpf: libseccomp cannot name unknown syscall numbers; they get the default action, not `unknown`",
                    host.name()
                ));
            }
            if !prog.skipped.is_empty() {
                notes.push(format!(
                    "seccomp.{}.bpf: the system libseccomp does not know {}; they get the default action",
                    host.name(),
                    prog.skipped.join(", ")
                ));
            }
            arts.push(Artifact {
                name: format!("seccomp.{}.bpf", host.name()),
                bytes: prog.bpf,
            });
            // The same filter as OCI `linux.seccomp` JSON (also what Docker's
            // `--security-opt seccomp=` and Podman take), where the format can say it.
            match seccomp::json::export_oci(&policy.seccomp, host) {
                Ok(v) => {
                    let names = v["syscalls"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|e| e["names"].as_array().into_iter().flatten())
                        .filter_map(|n| n.as_str());
                    let names: Vec<&str> = names.collect();
                    let mut dropped = seccomp::libseccomp::unknown_names(names.iter().copied());
                    // Known to libseccomp, but not on one of the filter's ABIs.
                    for &abi in host
                        .abis()
                        .iter()
                        .filter(|a| policy.seccomp.arches.contains(a))
                    {
                        for n in &names {
                            let in_kernel = policy_lang::catalogue::syscall(n)
                                .is_some_and(|d| d.nr(abi).is_some());
                            if in_kernel
                                && !dropped.iter().any(|d| d == n)
                                && !seccomp::libseccomp::known_on(n, abi)
                            {
                                dropped.push(format!("{n} on {}", abi.name()));
                            }
                        }
                    }
                    dropped.sort();
                    dropped.dedup();
                    if !dropped.is_empty() {
                        notes.push(format!(
                            "seccomp.{}.json: runc, crun and Podman built on libseccomp {} leave out {} (unknown to it) without a word: those syscalls get the default action there, unlike under `kakoi run`",
                            host.name(),
                            seccomp::libseccomp::version(),
                            dropped.join(", ")
                        ));
                    }
                    let native = host.abis()[0];
                    let denied: Vec<&str> = ["setgroups", "setresgid", "setresuid", "capset"]
                        .into_iter()
                        .filter(|n| {
                            policy_lang::catalogue::syscall(n)
                                .and_then(|d| d.nr(native))
                                .is_some_and(|nr| {
                                    let a = policy.seccomp.decide(native.audit_arch(), nr, &[0; 6]);
                                    !matches!(a.action, ir::Action::Allow | ir::Action::Log)
                                })
                        })
                        .collect();
                    if !denied.is_empty() {
                        notes.push(format!(
                            "seccomp.{}.json denies {}: runc and crun load a profile before changing credentials when `noNewPrivileges` is false, so use it with `noNewPrivileges: true` (kakoi audit: OCI006)",
                            host.name(),
                            denied.join(", ")
                        ));
                    }
                    arts.push(Artifact {
                        name: format!("seccomp.{}.json", host.name()),
                        bytes: json(&v),
                    })
                }
                Err(why) => notes.push(format!("seccomp.{}.json: not written: {why}", host.name())),
            }
        }
    }
    // The other layers.
    arts.push(Artifact {
        name: "caps.json".into(),
        bytes: json(&backends::caps::generate(&policy.capabilities)),
    });
    arts.push(Artifact {
        name: "landlock.json".into(),
        bytes: json(&backends::landlock::generate(policy)),
    });
    let profile = backends::apparmor::generate(policy);
    let module = backends::selinux::module(policy);
    let lsm = serde_json::json!({
        "apparmor": {
            "profile": profile.name,
            "mode": policy.apparmor.as_ref().map(|a| a.mode),
            "enforcement": policy.apparmor.as_ref().map(|a| a.enforcement),
        },
        "selinux": {
            "label": backends::selinux::label(policy),
            "random_level": policy.selinux.as_ref().is_some_and(|s| s.level == policy_lang::ir::Level::Random),
            "mount_label": policy.selinux.as_ref().and_then(|s| s.mount_label.clone()),
            "enforcement": policy.selinux.as_ref().map(|s| s.enforcement),
            "module": backends::selinux::block_name(policy),
        },
    });
    arts.push(Artifact {
        name: "lsm.json".into(),
        bytes: json(&lsm),
    });
    if validate != Validate::Never {
        match backends::validate::apparmor(&profile) {
            Ok(f) if f.is_empty() => {}
            Ok(f) => {
                return Err(Error::Rejected {
                    tool: "apparmor_parser",
                    findings: f,
                })
            }
            Err(e) if validate == Validate::Always => return Err(Error::Validator(e)),
            Err(e) => notes.push(format!("apparmor.profile: not validated: {e}")),
        }
        match backends::validate::selinux(&module) {
            Ok((f, _)) if f.is_empty() => {}
            Ok((f, _)) => {
                return Err(Error::Rejected {
                    tool: "secilc",
                    findings: f,
                })
            }
            Err(e) if validate == Validate::Always => return Err(Error::Validator(e)),
            Err(e) => notes.push(format!("selinux.cil: not validated: {e}")),
        }
    }
    arts.push(Artifact {
        name: "apparmor.profile".into(),
        bytes: profile.text.into_bytes(),
    });
    arts.push(Artifact {
        name: "selinux.cil".into(),
        bytes: module.into_bytes(),
    });
    let mut h = Sha256::new();
    for name in &policy.sources {
        let text = map.find(name).map_or("", |id| map.text(id));
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    let manifest = Manifest {
        format: FORMAT,
        kakoi: env!("CARGO_PKG_VERSION"),
        policy: policy.name.clone(),
        sources: policy.sources.clone(),
        source_sha256: hex(&h.finalize()),
        targets: policy.seccomp.arches.iter().map(|a| a.name()).collect(),
        backend,
        artifacts: arts.iter().map(|a| entry(&a.name, &a.bytes)).collect(),
        notes,
    };
    arts.push(Artifact {
        name: "manifest.json".into(),
        bytes: json(&manifest),
    });
    Ok(arts)
}

/// The artifact `--emit KIND` prints.
pub fn emit<'a>(arts: &'a [Artifact], kind: &str) -> Option<&'a Artifact> {
    let name = match kind {
        "policy" => "policy.json".to_string(),
        "manifest" => "manifest.json".to_string(),
        "caps" => "caps.json".to_string(),
        "landlock" => "landlock.json".to_string(),
        "apparmor" => "apparmor.profile".to_string(),
        "selinux" => "selinux.cil".to_string(),
        "lsm" => "lsm.json".to_string(),
        k if k.starts_with("seccomp-json-") => {
            format!("seccomp.{}.json", &k["seccomp-json-".len()..])
        }
        k => match k.strip_prefix("seccomp-") {
            Some(host) => format!("seccomp.{host}.bpf"),
            None => return None,
        },
    };
    arts.iter().find(|a| a.name == name)
}

/// Write the bundle into directory `dir`: into a temporary sibling first, then renamed
/// into place, so a failure leaves no partial bundle. An existing bundle is replaced; any
/// other existing non-empty directory is left alone.
pub fn write_dir(dir: &Path, arts: &[Artifact]) -> Result<(), Error> {
    // Every I/O error names the bundle, not the staging path it happened on (which is
    // removed), and only the errno (tempfile adds its own path to some).
    let io = |doing: String| {
        let path = dir.to_path_buf();
        move |e: std::io::Error| Error::Io {
            path,
            doing,
            source: plain(e),
        }
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let existing = dir.exists();
    if existing {
        let empty = fs::read_dir(dir)
            .map_err(io("reading it".into()))?
            .next()
            .is_none();
        if !empty && !dir.join("manifest.json").is_file() {
            return Err(Error::NotABundle {
                path: dir.to_path_buf(),
            });
        }
    }
    let base = dir
        .file_name()
        .map_or("bundle".into(), |n| n.to_string_lossy().into_owned());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{base}.tmp-"))
        .tempdir_in(&parent)
        .map_err(io(format!("staging it in `{}`", parent.display())))?;
    for a in arts {
        let p = tmp.path().join(&a.name);
        let doing = || format!("writing {}", a.name);
        let mut f = fs::File::create(&p).map_err(io(doing()))?;
        f.write_all(&a.bytes).map_err(io(doing()))?;
        f.sync_all().map_err(io(doing()))?;
    }
    let staged = tmp.keep();
    let finish = || -> Result<(), Error> {
        if existing {
            let old = parent.join(format!(".{base}.old-{}", std::process::id()));
            fs::rename(dir, &old).map_err(io("moving the previous bundle aside".into()))?;
            if let Err(e) = fs::rename(&staged, dir) {
                // Put the previous bundle back before reporting.
                let _ = fs::rename(&old, dir);
                return Err(io("renaming it into place".into())(e));
            }
            fs::remove_dir_all(&old).map_err(io(format!(
                "it is in place, but the previous one is left at `{}`",
                old.display()
            )))?;
        } else {
            fs::rename(&staged, dir).map_err(io("renaming it into place".into()))?;
        }
        Ok(())
    };
    let r = finish();
    if r.is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    r
}

/// An I/O error without the path tempfile adds to some (the staging path is removed).
fn plain(e: std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(n) => std::io::Error::from_raw_os_error(n),
        None if e.get_ref().is_some() => e.kind().into(),
        None => e,
    }
}

/// The notes recorded in a built bundle's manifest.
pub fn notes(arts: &[Artifact]) -> Vec<String> {
    arts.iter()
        .find(|a| a.name == "manifest.json")
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m.bytes).ok())
        .and_then(|v| v["notes"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect()
}

/// A bundle read back for launching: the policy and this host's precompiled filter.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Policy,
    /// `seccomp.<host>.bpf`, when the policy has seccomp on.
    pub seccomp: Option<Vec<u8>>,
}

/// Read a bundle directory and check it before anything uses it: the manifest's format,
/// every listed file's size and SHA-256, the policy, and the filter's shape (whole
/// instructions, valid BPF). A malformed or truncated bundle is an error.
pub fn load_dir(dir: &Path, host: Host) -> Result<Loaded, LoadError> {
    load_from(&dir_reader(dir), host, &|_| true, false, true)
}

/// [`load_dir`] for `kakoi audit`: a filter that contradicts `policy.json` is not an
/// error but what the audit reports (the second value, the contradiction found).
pub fn load_dir_for_audit(
    dir: &Path,
    host: Host,
) -> Result<(Loaded, Option<LoadError>), LoadError> {
    let b = load_from(&dir_reader(dir), host, &|_| true, false, false)?;
    let file = format!("seccomp.{}.bpf", host.name());
    let why = match &b.seccomp {
        Some(bytes) => {
            let insns = crate::bpf::decode(bytes).map_err(|source| LoadError::Filter {
                file: file.clone(),
                source,
            })?;
            contradiction(&b.policy.seccomp, host, &insns).err()
        }
        None => None,
    };
    Ok((b, why.map(|why| LoadError::Contradicts { file, why })))
}

/// [`load_dir`] for `kakoi run`: only the files a launch uses (`policy.json` and this
/// host's filter) are read, and checked the same way; the artifacts for other consumers
/// (AppArmor, SELinux, OCI…) are left alone. The policy comes without its seccomp rules:
/// the launch installs the precompiled filter.
pub fn load_dir_for_launch(dir: &Path, host: Host) -> Result<Loaded, LoadError> {
    load_with_for_launch(&dir_reader(dir), host)
}

/// `policy.json` as a launch reads it: the seccomp rules, most of the file and of the time
/// to read it, are skipped (the filter compiled from them is in the bundle); every other
/// field as [`Policy`] has it. The conversion names every field of `Policy`, so one added
/// there and not here does not compile.
#[derive(serde::Deserialize)]
struct LaunchPolicy {
    name: String,
    description: Option<String>,
    sources: Vec<String>,
    seccomp: LaunchSeccomp,
    capabilities: ir::Capabilities,
    identity: ir::Identity,
    namespaces: ir::Namespaces,
    filesystem: ir::Filesystem,
    network: ir::Network,
    resources: ir::Resources,
    process: ir::Process,
    selinux: Option<ir::SeLinux>,
    apparmor: Option<ir::AppArmor>,
}

#[derive(serde::Deserialize)]
struct LaunchSeccomp {
    enabled: bool,
    default_action: ir::Action,
    bad_arch_action: ir::Action,
    unknown_action: ir::Action,
    arches: Vec<policy_lang::catalogue::Arch>,
    flags: Vec<ir::SeccompFlag>,
    #[allow(dead_code)] // read past, not kept
    rules: serde::de::IgnoredAny,
}

impl From<LaunchPolicy> for Policy {
    fn from(p: LaunchPolicy) -> Policy {
        let s = p.seccomp;
        Policy {
            name: p.name,
            description: p.description,
            sources: p.sources,
            seccomp: ir::Seccomp {
                enabled: s.enabled,
                default_action: s.default_action,
                bad_arch_action: s.bad_arch_action,
                unknown_action: s.unknown_action,
                arches: s.arches,
                flags: s.flags,
                rules: Vec::new(),
                acknowledged: Vec::new(),
            },
            capabilities: p.capabilities,
            identity: p.identity,
            namespaces: p.namespaces,
            filesystem: p.filesystem,
            network: p.network,
            resources: p.resources,
            process: p.process,
            selinux: p.selinux,
            apparmor: p.apparmor,
        }
    }
}

/// [`load_dir_for_launch`] over any source of files (see [`load_with`]).
pub fn load_with_for_launch(read: &Reader, host: Host) -> Result<Loaded, LoadError> {
    let filter = format!("seccomp.{}.bpf", host.name());
    load_from(
        read,
        host,
        &|name| name == "policy.json" || name == filter,
        true,
        true,
    )
}

fn dir_reader(dir: &Path) -> impl Fn(&str) -> Result<Vec<u8>, LoadError> + '_ {
    |name: &str| {
        Ok(crate::input::read(
            &dir.join(name),
            crate::input::PROFILE_LIMIT,
        )?)
    }
}

/// [`load_dir`] over any source of files: `read` gives a bundle file's bytes by name.
pub fn load_with(read: &Reader, host: Host) -> Result<Loaded, LoadError> {
    load_from(read, host, &|_| true, false, true)
}

/// Check and read the listed files that `wanted` names. `launch_only`: the policy's
/// seccomp rules are not kept (see [`LaunchPolicy`]).
fn load_from(
    read: &Reader,
    host: Host,
    wanted: &dyn Fn(&str) -> bool,
    launch_only: bool,
    check_filter: bool,
) -> Result<Loaded, LoadError> {
    let malformed = |file: &str, why: String| LoadError::Malformed {
        file: file.into(),
        why,
    };
    let manifest: serde_json::Value = serde_json::from_slice(&read("manifest.json")?)
        .map_err(|e| malformed("manifest.json", e.to_string()))?;
    if manifest["format"].as_u64() != Some(u64::from(FORMAT)) {
        return Err(malformed(
            "manifest.json",
            format!(
                "bundle format {} (this kakoi reads {FORMAT})",
                manifest["format"]
            ),
        ));
    }
    let entries = manifest["artifacts"]
        .as_array()
        .ok_or_else(|| malformed("manifest.json", "no `artifacts` list".into()))?;
    let mut listed = Vec::new();
    for e in entries {
        let (Some(name), Some(sum), Some(len)) = (
            e["name"].as_str(),
            e["sha256"].as_str(),
            e["bytes"].as_u64(),
        ) else {
            return Err(malformed(
                "manifest.json",
                "an artifact entry lacks name, sha256 or bytes".into(),
            ));
        };
        if name.contains('/') || name.starts_with('.') {
            return Err(malformed(
                "manifest.json",
                format!("artifact name `{name}` is not a plain file name"),
            ));
        }
        if !wanted(name) {
            continue;
        }
        let bytes = read(name)?;
        if bytes.len() as u64 != len {
            return Err(LoadError::Modified {
                file: name.into(),
                why: format!(
                    "{} bytes, the manifest says {len} (truncated or modified)",
                    bytes.len()
                ),
            });
        }
        if hex(&Sha256::digest(&bytes)) != sum {
            return Err(LoadError::Modified {
                file: name.into(),
                why: "SHA-256 differs from the manifest (modified)".into(),
            });
        }
        listed.push((name.to_string(), bytes));
    }
    let get = |n: &str| listed.iter().find(|(name, _)| name == n).map(|(_, b)| b);
    let policy_json = get("policy.json").ok_or_else(|| LoadError::Missing {
        file: "policy.json".into(),
    })?;
    let policy: Policy = if launch_only {
        serde_json::from_slice::<LaunchPolicy>(policy_json).map(Policy::from)
    } else {
        serde_json::from_slice(policy_json)
    }
    .map_err(|e| malformed("policy.json", e.to_string()))?;
    let seccomp = if policy.seccomp.enabled {
        let name = format!("seccomp.{}.bpf", host.name());
        let b = get(&name).ok_or_else(|| LoadError::Missing { file: name.clone() })?;
        let bad = |source| LoadError::Filter {
            file: name.clone(),
            source,
        };
        let insns = crate::bpf::decode(b).map_err(bad)?;
        crate::bpf::validate(&insns).map_err(bad)?;
        if check_filter {
            contradiction(&policy.seccomp, host, &insns).map_err(|why| LoadError::Contradicts {
                file: name.clone(),
                why,
            })?;
        }
        Some(b.clone())
    } else {
        if let Some((n, _)) = listed.iter().find(|(n, _)| n.ends_with(".bpf")) {
            return Err(LoadError::StrayFilter { file: n.clone() });
        }
        None
    };
    Ok(Loaded { policy, seccomp })
}

/// What a launch can check of a filter against its `policy.json` in a few runs of the
/// interpreter (microseconds): a foreign architecture, and each compat ABI the policy
/// leaves out, get the policy's `bad-arch` action, and a number no kernel assigns gets
/// its `unknown` (or, from libseccomp, its default) action. An allow-all program, or one
/// from another policy, fails here even when the manifest's hashes were recomputed.
pub fn contradiction(
    s: &ir::Seccomp,
    host: Host,
    prog: &[crate::bpf::Insn],
) -> Result<(), Contradiction> {
    use policy_lang::catalogue::Arch;
    let decide = |arch: u32, nr: u32| {
        let data = crate::bpf::Data {
            nr,
            arch,
            ip: 0,
            args: [0; 6],
        };
        crate::bpf::ret_action(crate::bpf::run(prog, &data).ret)
    };
    let foreign = match host {
        Host::X86_64 => Arch::Aarch64.audit_arch(),
        Host::Aarch64 => Arch::X86_64.audit_arch(),
    };
    let mut cases = vec![("a foreign architecture", foreign, 0)];
    if host == Host::X86_64 {
        if !s.arches.contains(&Arch::X86) {
            cases.push((
                "the i386 ABI, which the policy leaves out",
                Arch::X86.audit_arch(),
                20,
            ));
        }
        if !s.arches.contains(&Arch::X32) {
            cases.push((
                "the x32 ABI, which the policy leaves out",
                Arch::X32.audit_arch(),
                0x4000_0027,
            ));
        }
    }
    for (what, arch, nr) in cases {
        let got = decide(arch, nr);
        if got != s.bad_arch_action {
            return Err(Contradiction {
                what,
                got,
                says: s.bad_arch_action,
            });
        }
    }
    let native = host.abis()[0];
    if s.arches.contains(&native) {
        // Far above every syscall number of the ABI, and no x32 bit.
        let got = decide(native.audit_arch(), 0x3fff_0000);
        if got != s.unknown_action && got != s.default_action {
            return Err(Contradiction {
                what: "a syscall number no kernel assigns",
                got,
                says: s.unknown_action,
            });
        }
    }
    Ok(())
}
