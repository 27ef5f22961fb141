//! Landlock rules: the policy's file access rules, TCP ports and scopes as Landlock access
//! rights, with the ABI they need.
//!
//! What a kakoi access word grants (and the ABI that introduced each right):
//! `read` = read_file, read_dir (1); `write` = write_file (1), truncate (3), ioctl_dev (5);
//! `exec` = execute (1); `make` = make_reg, make_dir, make_sym, make_sock, make_fifo (1),
//! refer (2); `remove` = remove_file, remove_dir (1). A policy with any access rule
//! handles *every* filesystem right of the ABI, so whatever is not granted (device
//! creation, for one) is denied. Ports are handled when the policy lists them (an empty
//! list denies every bind or connect).

use policy_lang::ir::{Access, Enforcement, LandlockScope, Policy};
use serde::Serialize;

/// A Landlock filesystem right: name, bit (`LANDLOCK_ACCESS_FS_*`), ABI.
pub const FS_RIGHTS: &[(&str, u64, u8)] = &[
    ("execute", 1 << 0, 1),
    ("write_file", 1 << 1, 1),
    ("read_file", 1 << 2, 1),
    ("read_dir", 1 << 3, 1),
    ("remove_dir", 1 << 4, 1),
    ("remove_file", 1 << 5, 1),
    ("make_char", 1 << 6, 1),
    ("make_dir", 1 << 7, 1),
    ("make_reg", 1 << 8, 1),
    ("make_sock", 1 << 9, 1),
    ("make_fifo", 1 << 10, 1),
    ("make_block", 1 << 11, 1),
    ("make_sym", 1 << 12, 1),
    ("refer", 1 << 13, 2),
    ("truncate", 1 << 14, 3),
    ("ioctl_dev", 1 << 15, 5),
];

/// `LANDLOCK_ACCESS_NET_*`, ABI 4.
pub const NET_BIND_TCP: u64 = 1 << 0;
pub const NET_CONNECT_TCP: u64 = 1 << 1;
/// `LANDLOCK_SCOPE_*`, ABI 6.
pub const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
pub const SCOPE_SIGNAL: u64 = 1 << 1;

fn rights(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| FS_RIGHTS.iter().find(|r| r.0 == *n).expect("known right").1)
        .fold(0, |a, b| a | b)
}

/// The rights an access word grants.
pub fn access_rights(a: Access) -> u64 {
    match a {
        Access::Read => rights(&["read_file", "read_dir"]),
        Access::Write => rights(&["write_file", "truncate", "ioctl_dev"]),
        Access::Exec => rights(&["execute"]),
        Access::Make => rights(&[
            "make_reg",
            "make_dir",
            "make_sym",
            "make_sock",
            "make_fifo",
            "refer",
        ]),
        Access::Remove => rights(&["remove_file", "remove_dir"]),
    }
}

/// Names of the filesystem rights in a mask.
pub fn fs_names(mask: u64) -> Vec<&'static str> {
    FS_RIGHTS
        .iter()
        .filter(|r| mask & r.1 != 0)
        .map(|r| r.0)
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathRule {
    pub path: String,
    pub access: Vec<&'static str>,
    pub mask: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortRule {
    pub port: u16,
    pub access: Vec<&'static str>,
    pub mask: u64,
}

/// The Landlock ruleset of a policy (`landlock.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ruleset {
    pub enforcement: Enforcement,
    /// Lowest Landlock ABI that enforces all of it.
    pub abi: u8,
    pub handled_fs: u64,
    pub handled_net: u64,
    pub scoped: u64,
    pub paths: Vec<PathRule>,
    pub ports: Vec<PortRule>,
}

impl Ruleset {
    /// Whether the ruleset restricts anything at all.
    pub fn is_empty(&self) -> bool {
        self.handled_fs == 0 && self.handled_net == 0 && self.scoped == 0
    }
}

pub fn generate(p: &Policy) -> Ruleset {
    let fs = &p.filesystem;
    let mut abi = 0u8;
    let mut handled_fs = 0;
    let mut paths = Vec::new();
    if !fs.access.is_empty() {
        // Handle every right up to the ABI the granted rights need (at least 1), so
        // anything not granted is denied.
        let granted: u64 = fs
            .access
            .iter()
            .flat_map(|r| r.access.iter())
            .map(|a| access_rights(*a))
            .fold(0, |a, b| a | b);
        abi = FS_RIGHTS
            .iter()
            .filter(|r| granted & r.1 != 0)
            .map(|r| r.2)
            .max()
            .unwrap_or(1);
        handled_fs = FS_RIGHTS
            .iter()
            .filter(|r| r.2 <= abi)
            .map(|r| r.1)
            .fold(0, |a, b| a | b);
        for r in &fs.access {
            let mask = r
                .access
                .iter()
                .map(|a| access_rights(*a))
                .fold(0, |a, b| a | b);
            paths.push(PathRule {
                path: r.path.clone(),
                access: fs_names(mask),
                mask,
            });
        }
    }
    let mut handled_net = 0;
    let mut ports: Vec<PortRule> = Vec::new();
    for (list, bit, name) in [
        (&p.network.tcp_bind, NET_BIND_TCP, "bind_tcp"),
        (&p.network.tcp_connect, NET_CONNECT_TCP, "connect_tcp"),
    ] {
        if let Some(list) = list {
            handled_net |= bit;
            abi = abi.max(4);
            for port in list {
                match ports.iter_mut().find(|r| r.port == *port) {
                    Some(r) => {
                        r.mask |= bit;
                        r.access.push(name);
                    }
                    None => ports.push(PortRule {
                        port: *port,
                        access: vec![name],
                        mask: bit,
                    }),
                }
            }
        }
    }
    ports.sort_by_key(|r| r.port);
    let mut scoped = 0;
    for s in &fs.landlock_scopes {
        scoped |= match s {
            LandlockScope::AbstractUnix => SCOPE_ABSTRACT_UNIX,
            LandlockScope::Signal => SCOPE_SIGNAL,
        };
        abi = abi.max(6);
    }
    Ruleset {
        enforcement: fs.landlock,
        abi,
        handled_fs,
        handled_net,
        scoped,
        paths,
        ports,
    }
}
