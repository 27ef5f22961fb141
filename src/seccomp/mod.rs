//! Seccomp backend: the resolved policy -> raw BPF programs, one per host architecture.
//!
//! A host architecture's program covers every ABI that host can enter the kernel with and
//! the policy targets: an x86_64 host program checks x86_64, and i386 and x32 when the
//! policy lists them (the kernel feeds all three to one filter). `seccomp.x86_64.bpf`
//! is that program; `seccomp.aarch64.bpf` the aarch64 one.
//!
//! The reference backend is libseccomp ([`libseccomp`]). Its limits are documented there.

pub mod codegen;
pub mod json;
pub mod libseccomp;
pub mod runc;
pub mod stats;
pub mod union;
pub mod verify;

use policy_lang::catalogue::Arch;
use policy_lang::ir::Seccomp;

/// A host machine type and the ABIs its programs cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    X86_64,
    Aarch64,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::X86_64 => "x86_64",
            Host::Aarch64 => "aarch64",
        }
    }

    /// The native ABI and the compat ABIs a program for this host covers.
    pub fn abis(self) -> &'static [Arch] {
        match self {
            Host::X86_64 => &[Arch::X86_64, Arch::X86, Arch::X32],
            Host::Aarch64 => &[Arch::Aarch64],
        }
    }

    /// Hosts the policy needs a program for: those whose native ABI it targets.
    pub fn for_policy(s: &Seccomp) -> Vec<Host> {
        [Host::X86_64, Host::Aarch64]
            .into_iter()
            .filter(|h| s.arches.contains(&h.abis()[0]))
            .collect()
    }
}

/// One compiled program.
#[derive(Clone, Debug)]
pub struct Program {
    pub host: Host,
    /// Raw `struct sock_filter` array, little-endian.
    pub bpf: Vec<u8>,
    /// `arch:syscall` the backend could not name (newer than its syscall table); they
    /// get the default action.
    pub skipped: Vec<String>,
    /// Syscall numbers unknown to the catalogue get the default action instead of the
    /// policy's `unknown` action (libseccomp can only name the syscalls it knows).
    pub unknown_as_default: bool,
}

impl Program {
    pub fn len(&self) -> usize {
        self.bpf.len() / 8
    }
    pub fn is_empty(&self) -> bool {
        self.bpf.is_empty()
    }
}

/// Which code generator compiles the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// kakoi's own generator: range coalescing, an optimal search tree, cache-friendly.
    #[default]
    Kakoi,
    /// The system libseccomp (the reference).
    Libseccomp,
}

/// Why a program could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Libseccomp(#[from] libseccomp::Error),
    #[error("the {backend:?} program for {host} is not valid BPF: {source}")]
    Invalid {
        backend: Backend,
        host: &'static str,
        #[source]
        source: crate::bpf::Error,
    },
    #[error("the {backend:?} program for {host} disagrees with the policy ({count} cases), first: {first}")]
    Mismatch {
        backend: Backend,
        host: &'static str,
        count: usize,
        first: String,
    },
}

/// Compile, validate, and check the program against the policy's own meaning
/// ([`verify::verify`]) before handing it out: a program that disagrees is never emitted.
pub fn compile_checked(s: &Seccomp, host: Host, backend: Backend) -> Result<Program, Error> {
    let prog = match backend {
        Backend::Kakoi => codegen::compile(s, host),
        Backend::Libseccomp => libseccomp::compile(s, host)?,
    };
    let insns = crate::bpf::decode(&prog.bpf)
        .and_then(|i| crate::bpf::validate(&i).map(|()| i))
        .map_err(|source| Error::Invalid {
            backend,
            host: host.name(),
            source,
        })?;
    if let Err(m) = verify::verify(s, &insns, host, &prog.skipped, prog.unknown_as_default) {
        return Err(Error::Mismatch {
            backend,
            host: host.name(),
            count: m.len(),
            first: m[0].to_string(),
        });
    }
    Ok(prog)
}
