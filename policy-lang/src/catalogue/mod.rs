//! The syscall catalogue: numbers per arch, typed argument signatures, systemd's syscall
//! groups, symbolic constants and capability names.
//!
//! Everything here is generated from kernel sources by `scripts/gen-catalogue.py`
//! (`generated.rs`); this module only adds lookups.

mod generated;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

pub use generated::KERNEL_VERSION;

/// A target architecture (one seccomp `AUDIT_ARCH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::X86 => "x86",
            Arch::X32 => "x32",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub fn from_name(s: &str) -> Option<Arch> {
        Some(match s {
            "x86_64" | "amd64" => Arch::X86_64,
            "x86" | "i386" | "i686" => Arch::X86,
            "x32" => Arch::X32,
            "aarch64" | "arm64" => Arch::Aarch64,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Registers are 64 bits wide (arguments fill all of `seccomp_data.args[i]`).
    pub fn is_64bit(self) -> bool {
        !matches!(self, Arch::X86)
    }

    /// Numbers of this ABI carry the x32 bit (`__X32_SYSCALL_BIT`) in `seccomp_data.nr`.
    pub fn nr_offset(self) -> u32 {
        if self == Arch::X32 {
            0x4000_0000
        } else {
            0
        }
    }

    /// `AUDIT_ARCH_*` value seen in `seccomp_data.arch` (x32 shares x86_64's).
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => 0xc000_003e,
            Arch::X86 => 0x4000_0003,
            Arch::Aarch64 => 0xc000_00b7,
        }
    }
}

/// How an argument is passed, on 64-bit ABIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgKind {
    /// `int` and friends: only the low 32 bits are meaningful.
    I32,
    /// `unsigned int`, `umode_t`, `uid_t`…: only the low 32 bits are meaningful.
    U32,
    /// `long`, `loff_t`…: all 64 bits.
    I64,
    /// `unsigned long`, `size_t`…: all 64 bits.
    U64,
    /// A pointer: the kernel reads memory the filter cannot see.
    Ptr,
}

impl ArgKind {
    pub fn is_32bit(self) -> bool {
        matches!(self, ArgKind::I32 | ArgKind::U32)
    }
    pub fn is_signed(self) -> bool {
        matches!(self, ArgKind::I32 | ArgKind::I64)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
}

#[derive(Debug)]
pub struct SyscallDef {
    pub name: &'static str,
    nr: [Option<u32>; 4],
    args: Option<&'static [Arg]>,
    args_aarch64: Option<&'static [Arg]>,
    args_i386: Option<&'static [Arg]>,
    args_x32: Option<&'static [Arg]>,
    i386_split: bool,
}

/// A name stored inline in the generated tables, where a `&str` would be a pointer: a
/// position-independent executable relocates every pointer in static data at start-up,
/// so the tables hold none (thousands of relocations and the pages they dirty) and are
/// decoded on first use instead.
#[derive(Clone, Copy)]
pub(crate) struct Name<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Name<N> {
    /// Checked when the tables are compiled: at most `N` bytes, all ASCII.
    pub(crate) const fn new(s: &str) -> Self {
        let b = s.as_bytes();
        assert!(
            b.len() <= N && N < 256,
            "catalogue name too long for its table"
        );
        let mut bytes = [0u8; N];
        let mut i = 0;
        while i < b.len() {
            assert!(b[i].is_ascii(), "catalogue names are ASCII");
            bytes[i] = b[i];
            i += 1;
        }
        Name {
            len: b.len() as u8,
            bytes,
        }
    }

    fn get(&'static self) -> &'static str {
        // ASCII, checked by `new`: the conversion cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// An argument signature in the generated tables (`known` false: none in the sources).
#[derive(Clone, Copy)]
pub(crate) struct RawArgs {
    known: bool,
    len: u8,
    items: [(Name<24>, ArgKind); 6],
}

pub(crate) const NO_ARGS: RawArgs = RawArgs {
    known: false,
    len: 0,
    items: [(Name::new(""), ArgKind::U64); 6],
};

/// The signature `list` (name, kind), for the generated tables.
pub(crate) const fn args(list: &[(&str, ArgKind)]) -> RawArgs {
    assert!(list.len() <= 6, "a syscall has at most six arguments");
    let mut out = NO_ARGS;
    out.known = true;
    out.len = list.len() as u8;
    let mut i = 0;
    while i < list.len() {
        out.items[i] = (Name::new(list[i].0), list[i].1);
        i += 1;
    }
    out
}

impl RawArgs {
    fn decode(&'static self) -> impl Iterator<Item = Arg> {
        self.items[..usize::from(self.len)]
            .iter()
            .map(|(n, kind)| Arg {
                name: n.get(),
                kind: *kind,
            })
    }
}

/// A syscall in the generated tables.
pub(crate) struct RawSyscall {
    name: Name<32>,
    nr: [Option<u32>; 4],
    args: RawArgs,
    /// Each ABI's own signature where it differs from x86_64's (NO_ARGS: the same).
    args_aarch64: RawArgs,
    args_i386: RawArgs,
    args_x32: RawArgs,
    i386_split: bool,
}

/// A systemd group in the generated tables; `members` are separated by spaces.
pub(crate) struct RawGroup {
    name: &'static str,
    description: &'static str,
    members: &'static str,
}

/// Every signature's arguments, in table order (x86_64's, aarch64's, i386's, x32's, per
/// syscall).
static ARGS: LazyLock<Vec<Arg>> = LazyLock::new(|| {
    generated::SYSCALLS
        .iter()
        .flat_map(|s| {
            s.args
                .decode()
                .chain(s.args_aarch64.decode())
                .chain(s.args_i386.decode())
                .chain(s.args_x32.decode())
        })
        .collect()
});

static SYSCALLS: LazyLock<Vec<SyscallDef>> = LazyLock::new(|| {
    let all: &'static [Arg] = &ARGS;
    let mut at = 0;
    let mut take = |a: &RawArgs| {
        let n = usize::from(a.len);
        let s = a.known.then(|| &all[at..at + n]);
        at += n;
        s
    };
    generated::SYSCALLS
        .iter()
        .map(|r| SyscallDef {
            name: r.name.get(),
            nr: r.nr,
            args: take(&r.args),
            args_aarch64: take(&r.args_aarch64),
            args_i386: take(&r.args_i386),
            args_x32: take(&r.args_x32),
            i386_split: r.i386_split,
        })
        .collect()
});

/// Every group's members, in table order.
static MEMBERS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    generated::SYSTEMD_GROUPS
        .iter()
        .flat_map(|g| g.members.split_whitespace())
        .collect()
});

static GROUPS: LazyLock<Vec<GroupDef>> = LazyLock::new(|| {
    let all: &'static [&'static str] = &MEMBERS;
    let mut at = 0;
    generated::SYSTEMD_GROUPS
        .iter()
        .map(|g| {
            let n = g.members.split_whitespace().count();
            let members = &all[at..at + n];
            at += n;
            GroupDef {
                name: g.name,
                description: g.description,
                members,
            }
        })
        .collect()
});

static CONSTANTS: LazyLock<Vec<(&'static str, u64, Option<u64>)>> = LazyLock::new(|| {
    generated::CONSTANTS
        .iter()
        .map(|(n, v, a)| (n.get(), *v, *a))
        .collect()
});

impl SyscallDef {
    /// The number of this syscall on `arch`, as the filter sees it (x32 bit included).
    pub fn nr(&self, arch: Arch) -> Option<u32> {
        self.nr[arch.index()].map(|n| n | arch.nr_offset())
    }

    /// Argument signature on `arch`, if the kernel sources gave one that argument rules
    /// can use. On i386 and x32 it is the compat entry point's (i386 `mmap` and `select`
    /// take one pointer to their arguments); none on i386 when a 64-bit argument takes
    /// two registers there or the entry point's signature is unknown.
    pub fn args(&self, arch: Arch) -> Option<&'static [Arg]> {
        match arch {
            Arch::X86_64 => self.args,
            Arch::Aarch64 => self.args_aarch64.or(self.args),
            Arch::X86 if self.i386_split => None,
            Arch::X86 => self.args_i386.or(self.args),
            Arch::X32 => self.args_x32.or(self.args),
        }
    }

    /// The signature used to resolve argument names (x86_64's, or the first known).
    pub fn signature(&self) -> Option<&'static [Arg]> {
        self.args.or(self.args_aarch64)
    }

    /// Whether an argument is 64-bit on every ABI (`loff_t`, `u64`…). On i386 such an
    /// argument occupies two registers, so argument positions there differ from the
    /// signature and argument rules cannot be mapped.
    pub fn splits_on_i386(&self) -> bool {
        self.i386_split
    }
}

#[derive(Debug)]
pub struct GroupDef {
    pub name: &'static str,
    pub description: &'static str,
    pub members: &'static [&'static str],
}

pub fn syscalls() -> &'static [SyscallDef] {
    &SYSCALLS
}

pub fn syscall(name: &str) -> Option<&'static SyscallDef> {
    let s: &'static [SyscallDef] = &SYSCALLS;
    s.binary_search_by(|d| d.name.cmp(name)).ok().map(|i| &s[i])
}

/// Name of syscall `nr` on `arch` (x32 numbers with their x32 bit).
pub fn syscall_by_nr(arch: Arch, nr: u32) -> Option<&'static SyscallDef> {
    SYSCALLS.iter().find(|d| d.nr(arch) == Some(nr))
}

/// An i386 multiplexer: one syscall number that reaches several calls, chosen by its
/// first argument (`call`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mux {
    /// `socketcall(call, args)`: `call` is `SYS_SOCKET`… (`include/uapi/linux/net.h`),
    /// compared whole (the kernel refuses any other value).
    Socketcall,
    /// `ipc(call, first, second, third, ptr, fifth)`: the low 16 bits of `call` are
    /// `SEMOP`… (`include/uapi/linux/ipc.h`); the kernel ignores the high 16 (an old
    /// interface version), so a filter must too.
    Ipc,
}

impl Mux {
    pub const ALL: [Mux; 2] = [Mux::Socketcall, Mux::Ipc];

    /// The multiplexer's own syscall name.
    pub fn name(self) -> &'static str {
        match self {
            Mux::Socketcall => "socketcall",
            Mux::Ipc => "ipc",
        }
    }

    /// The bits of `call` the kernel looks at.
    pub fn call_mask(self) -> Option<u64> {
        match self {
            Mux::Socketcall => None,
            Mux::Ipc => Some(0xffff),
        }
    }
}

/// The calls of `ipc(2)`, from `include/uapi/linux/ipc.h` (unchanged since Linux 1.x).
const IPC_CALLS: &[(&str, u32)] = &[
    ("semop", 1),
    ("semget", 2),
    ("semctl", 3),
    ("semtimedop", 4),
    ("msgsnd", 11),
    ("msgrcv", 12),
    ("msgget", 13),
    ("msgctl", 14),
    ("shmat", 21),
    ("shmdt", 22),
    ("shmget", 23),
    ("shmctl", 24),
];

/// Whether `name` can also be called through an i386 multiplexer, and with which `call`
/// value. The socket calls are the `SYS_*` constants of `linux/net.h` (`SYS_RECVMMSG`
/// is the time32 `recvmmsg`, as on the direct i386 entry).
pub fn multiplexed(name: &str) -> Option<(Mux, u32)> {
    if let Some((_, n)) = IPC_CALLS.iter().find(|(c, _)| *c == name) {
        return Some((Mux::Ipc, *n));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let sys = format!("SYS_{}", name.to_ascii_uppercase());
    // SYS_SOCKET..SYS_SENDMMSG are 1..=20; the other SYS_ names are not socket calls.
    match constant(&sys, Arch::X86) {
        Some(n @ 1..=20) => Some((Mux::Socketcall, n as u32)),
        _ => None,
    }
}

/// Highest syscall number of `arch` (x32 bit included).
pub fn max_nr(arch: Arch) -> u32 {
    SYSCALLS
        .iter()
        .filter_map(|d| d.nr(arch))
        .max()
        .unwrap_or(0)
}

pub fn groups() -> &'static [GroupDef] {
    &GROUPS
}

pub fn group(name: &str) -> Option<&'static GroupDef> {
    GROUPS.iter().find(|g| g.name == name)
}

/// The syscall names of a group, nested groups expanded; names unknown to the catalogue
/// (systemd lists some of other arches) are kept out.
pub fn expand_group(name: &str) -> Option<BTreeSet<&'static str>> {
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    fn walk(
        g: &'static GroupDef,
        out: &mut BTreeSet<&'static str>,
        seen: &mut BTreeSet<&'static str>,
    ) {
        if !seen.insert(g.name) {
            return;
        }
        for m in g.members {
            if let Some(sub) = m.strip_prefix('@') {
                if let Some(g) = group(sub) {
                    walk(g, out, seen);
                }
            } else if let Some(d) = syscall(m) {
                out.insert(d.name);
            }
        }
    }
    walk(group(name)?, &mut out, &mut seen);
    Some(out)
}

/// A symbolic constant's value on `arch`.
pub fn constant(name: &str, arch: Arch) -> Option<u64> {
    let c: &'static [(&'static str, u64, Option<u64>)] = &CONSTANTS;
    let i = c.binary_search_by(|(n, _, _)| (*n).cmp(name)).ok()?;
    let (_, v, a64) = c[i];
    Some(if arch == Arch::Aarch64 {
        a64.unwrap_or(v)
    } else {
        v
    })
}

/// Whether a constant has a different value on some arch.
pub fn constant_varies(name: &str) -> bool {
    let c: &'static [(&'static str, u64, Option<u64>)] = &CONSTANTS;
    c.binary_search_by(|(n, _, _)| (*n).cmp(name))
        .is_ok_and(|i| c[i].2.is_some())
}

pub fn constant_names() -> impl Iterator<Item = &'static str> {
    CONSTANTS.iter().map(|(n, _, _)| *n)
}

/// Capability names without the `CAP_` prefix, indexed by number.
/// Capabilities that amount to root on the host or in the kernel (the checker's W0401 and
/// the auditor's CAP002).
pub const EFFECTIVELY_ROOT: &[&str] = &[
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "BPF",
    "PERFMON",
    "SYS_BOOT",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "SETFCAP",
    "SYSLOG",
];

/// Docker's default capability set (the baseline of the auditor's CAP003 and of
/// importing Docker profiles).
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The resource limits a policy may set, with Linux's resource numbers (the generic ones of
/// `include/uapi/asm-generic/resource.h`, which x86 and arm64 use): one table for the
/// resolver's names and the launcher's `prlimit`.
pub const RLIMITS: &[(&str, u32)] = &[
    ("as", 9),
    ("core", 4),
    ("cpu", 0),
    ("data", 2),
    ("fsize", 1),
    ("locks", 10),
    ("memlock", 8),
    ("msgqueue", 12),
    ("nice", 13),
    ("nofile", 7),
    ("nproc", 6),
    ("rss", 5),
    ("rtprio", 14),
    ("rttime", 15),
    ("sigpending", 11),
    ("stack", 3),
];

/// The resource number of an rlimit name.
pub fn rlimit(name: &str) -> Option<u32> {
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

pub fn capabilities() -> &'static [&'static str] {
    generated::CAPABILITIES
}

/// A capability's number, from `NAME` or `CAP_NAME` (any case).
pub fn capability(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    generated::CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .map(|i| i as u32)
}

/// A capability's name (without `CAP_`) from its number.
pub fn capability_name(n: u32) -> Option<&'static str> {
    generated::CAPABILITIES.get(n as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_abi() {
        let read = syscall("read").unwrap();
        assert_eq!(read.nr(Arch::X86_64), Some(0));
        assert_eq!(read.nr(Arch::X86), Some(3));
        assert_eq!(read.nr(Arch::X32), Some(0x4000_0000));
        assert_eq!(read.nr(Arch::Aarch64), Some(63));
        assert_eq!(syscall("open").unwrap().nr(Arch::Aarch64), None);
        assert_eq!(syscall_by_nr(Arch::X86_64, 257).unwrap().name, "openat");
    }

    #[test]
    fn signatures_have_names_and_widths() {
        let args = syscall("openat").unwrap().signature().unwrap();
        let names: Vec<_> = args.iter().map(|a| a.name).collect();
        assert_eq!(names, ["dfd", "filename", "flags", "mode"]);
        assert_eq!(args[1].kind, ArgKind::Ptr);
        assert_eq!(args[2].kind, ArgKind::I32);
        let clone = syscall("clone").unwrap();
        assert_eq!(clone.args(Arch::X86_64).unwrap()[4].name, "tls");
        assert_eq!(clone.args(Arch::Aarch64).unwrap()[3].name, "tls");
    }

    #[test]
    fn groups_expand_nested_members() {
        let svc = expand_group("system-service").unwrap();
        assert!(svc.contains("read") && svc.contains("openat") && svc.contains("futex"));
        assert!(!svc.contains("mount"));
        assert!(expand_group("mount").unwrap().contains("pivot_root"));
        assert!(expand_group("container-default")
            .unwrap()
            .contains("openat"));
    }

    #[test]
    fn constants_and_capabilities() {
        assert_eq!(constant("EPERM", Arch::X86_64), Some(1));
        assert_eq!(constant("AF_VSOCK", Arch::X86_64), Some(40));
        assert_eq!(constant("O_DIRECTORY", Arch::X86_64), Some(0o200000));
        assert_eq!(constant("O_DIRECTORY", Arch::Aarch64), Some(0o40000));
        assert_eq!(capabilities().len(), 41);
        assert_eq!(capability("cap_checkpoint_restore"), Some(40));
        assert_eq!(capability("SYS_ADMIN"), Some(21));
    }
}
