//! One model for every input the auditor reads: kakoi policies and bundles, Docker/OCI
//! seccomp JSON, raw BPF, OCI `config.json`, AppArmor profile text, and a live process.
//! Each layer is `None` when the input says nothing about it (so rules about it do not
//! apply), and items keep where they came from (file and line, or a JSON pointer).

use std::collections::{BTreeMap, BTreeSet};

use policy_lang::catalogue::Arch;
use policy_lang::ir::{Action, NsKind, Seccomp};
use serde::Serialize;

use super::sym::{self, Class};
use crate::bpf::{self, Insn};
use crate::seccomp::{codegen, Host};

/// Where something was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// RFC 6901 pointer, for JSON inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl Location {
    pub fn file(f: &str) -> Location {
        Location {
            file: f.to_string(),
            ..Default::default()
        }
    }
    pub fn line(f: &str, line: usize) -> Location {
        Location {
            file: f.to_string(),
            line: Some(line),
            pointer: None,
        }
    }
    pub fn pointer(f: &str, p: impl Into<String>) -> Location {
        Location {
            file: f.to_string(),
            line: None,
            pointer: Some(p.into()),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(p) = &self.pointer {
            write!(f, "#{p}")?;
        }
        Ok(())
    }
}

/// The input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// A kakoi policy (file or shipped name).
    Policy,
    /// A bundle directory written by `kakoi compile -o`.
    Bundle,
    /// Docker / Podman / OCI seccomp JSON.
    SeccompJson,
    /// A raw `struct sock_filter` array.
    Bpf,
    /// An OCI runtime `config.json`.
    Oci,
    /// AppArmor profile text.
    Apparmor,
    /// A running process (`--pid`).
    Process,
}

/// The seccomp layer, as decision tables per ABI.
#[derive(Clone, Debug)]
pub struct SeccompView {
    /// The program analysed (compiled from the policy for policies and JSON profiles).
    pub prog: Vec<Insn>,
    pub tables: BTreeMap<Arch, BTreeMap<&'static str, Class>>,
    /// What an unknown syscall number on the native ABI gets.
    pub default: Class,
    /// The rules, for inputs that have them (policy, JSON): for locating findings.
    pub rules: Option<Seccomp>,
    /// Where each rule came from (by index in `rules`).
    pub rule_locations: Vec<Location>,
    /// Where the filter as a whole is written.
    pub location: Location,
    /// How many filters the tables combine (a process can stack several); `prog` is
    /// the first.
    pub filters: usize,
    /// The program has more paths than the auditor follows ([`sym::Budget`]): some
    /// syscalls are taken as conditional without being followed to the end.
    pub too_complex: bool,
}

impl SeccompView {
    /// Analyse a program.
    pub fn from_prog(prog: Vec<Insn>, location: Location) -> SeccompView {
        let budget = sym::Budget::new(sym::Budget::PROGRAM);
        let tables = Arch::ALL
            .iter()
            .map(|a| (*a, sym::table_within(&prog, *a, &budget)))
            .collect();
        let default = sym::classify_within(&prog, Arch::X86_64.audit_arch(), 1023, &budget);
        SeccompView {
            prog,
            tables,
            default,
            too_complex: budget.spent(),
            rules: None,
            rule_locations: Vec::new(),
            filters: 1,
            location,
        }
    }

    /// Compile rules (kakoi's generator, checked against the rules) and analyse them.
    pub fn from_rules(
        s: &Seccomp,
        rule_locations: Vec<Location>,
        location: Location,
    ) -> Result<SeccompView, super::Error> {
        let prog =
            crate::seccomp::compile_checked(s, Host::X86_64, crate::seccomp::Backend::Kakoi)?;
        let bad = |source| super::Error::Bpf {
            name: "the compiled program".into(),
            source,
        };
        let insns = bpf::decode(&prog.bpf).map_err(bad)?;
        let mut v = SeccompView::from_prog(insns, location);
        if s.arches.contains(&Arch::Aarch64) {
            let p = codegen::compile(s, Host::Aarch64);
            let insns = bpf::decode(&p.bpf).map_err(bad)?;
            v.tables
                .insert(Arch::Aarch64, sym::table(&insns, Arch::Aarch64));
        }
        v.rules = Some(s.clone());
        v.rule_locations = rule_locations;
        Ok(v)
    }

    pub fn class(&self, arch: Arch, syscall: &str) -> Option<&Class> {
        self.tables.get(&arch)?.get(syscall)
    }

    /// Whether any syscall of this ABI gets through.
    pub fn abi_enabled(&self, arch: Arch) -> bool {
        self.tables
            .get(&arch)
            .is_some_and(|t| t.values().any(Class::allows))
    }

    /// Where the rule deciding `syscall` is written, if the input has rules.
    pub fn locate(&self, syscall: &str) -> Location {
        if let Some(s) = &self.rules {
            if let Some(i) = s
                .rules
                .iter()
                .position(|r| r.syscalls.iter().any(|n| n == syscall))
            {
                if let Some(l) = self.rule_locations.get(i) {
                    return l.clone();
                }
            }
        }
        self.location.clone()
    }

    /// The action for one concrete call on x86_64.
    pub fn run(&self, syscall: &str, args: [u64; 6]) -> Option<Action> {
        let nr = policy_lang::catalogue::syscall(syscall)?.nr(Arch::X86_64)?;
        let data = bpf::Data {
            nr,
            arch: Arch::X86_64.audit_arch(),
            ip: 0,
            args,
        };
        Some(bpf::ret_action(bpf::run(&self.prog, &data).ret))
    }
}

/// Capability sets (names without `CAP_`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapView {
    pub bounding: BTreeSet<String>,
    pub effective: BTreeSet<String>,
    pub permitted: BTreeSet<String>,
    pub inheritable: BTreeSet<String>,
    pub ambient: BTreeSet<String>,
    pub location: Location,
}

impl CapView {
    /// Every capability the process holds or can regain.
    pub fn held(&self) -> BTreeSet<String> {
        self.bounding.union(&self.permitted).cloned().collect()
    }
}

/// A mount of an OCI config or a policy bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountView {
    pub source: String,
    pub destination: String,
    pub kind: String,
    pub options: Vec<String>,
    pub location: Location,
}

/// AppArmor, as far as the input tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppArmorView {
    /// `None`: no profile (unconfined).
    pub profile: Option<String>,
    pub complain: bool,
    /// Profile text, when the input carries it: (line number, line).
    pub lines: Vec<(usize, String)>,
    pub location: Location,
}

/// Everything the auditor knows about one input.
/// cgroup limits; `None` is unlimited.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LimitsView {
    /// Bytes.
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    /// CPUs (quota / period).
    pub cpu: Option<f64>,
    pub location: Location,
}

impl LimitsView {
    /// The limits as (name, text), `unlimited` where there is none.
    pub fn items(&self) -> [(&'static str, String); 3] {
        let show = |v: Option<String>| v.unwrap_or_else(|| "unlimited".into());
        [
            ("memory", show(self.memory.map(|m| format!("{m} bytes")))),
            ("pids", show(self.pids.map(|p| p.to_string()))),
            ("cpu", show(self.cpu.map(|c| format!("{c} CPUs")))),
        ]
    }
}

#[derive(Clone, Debug)]
pub struct Subject {
    pub name: String,
    pub format: InputFormat,
    /// `Some(None)`: the input is about a sandbox and has no seccomp filter; `None`: the
    /// input does not describe seccomp at all.
    pub seccomp: Option<Option<SeccompView>>,
    pub caps: Option<CapView>,
    pub no_new_privs: Option<(bool, Location)>,
    /// Namespace kind -> whether the sandbox gets its own.
    pub namespaces: Option<(BTreeMap<NsKind, bool>, Location)>,
    pub masked: Option<(Vec<String>, Location)>,
    pub readonly: Option<(Vec<String>, Location)>,
    pub mounts: Option<Vec<MountView>>,
    pub rootfs_readonly: Option<(bool, Location)>,
    pub uid: Option<(u32, Location)>,
    pub apparmor: Option<AppArmorView>,
    /// SELinux process label (`None` inside: no label).
    pub selinux: Option<(Option<String>, Location)>,
    /// Resource limits, for inputs that describe them (policies, OCI configs, processes).
    pub limits: Option<LimitsView>,
    /// A bundle whose filter contradicts its own policy.json: what and where.
    pub tampered: Option<(String, Location)>,
    /// Notes on what could not be read exactly.
    pub notes: Vec<String>,
}

impl Subject {
    pub fn new(name: &str, format: InputFormat) -> Subject {
        Subject {
            name: name.to_string(),
            format,
            seccomp: None,
            caps: None,
            no_new_privs: None,
            namespaces: None,
            masked: None,
            readonly: None,
            mounts: None,
            rootfs_readonly: None,
            uid: None,
            apparmor: None,
            selinux: None,
            limits: None,
            tampered: None,
            notes: Vec::new(),
        }
    }

    pub fn seccomp(&self) -> Option<&SeccompView> {
        self.seccomp.as_ref().and_then(|s| s.as_ref())
    }
}

pub use policy_lang::catalogue::DOCKER_DEFAULT_CAPS as DOCKER_CAPS;

/// The action a `Deny` class carries, for messages.
pub fn deny_action(c: &Class) -> Option<Action> {
    match c {
        Class::Deny(a) => Some(*a),
        _ => None,
    }
}
