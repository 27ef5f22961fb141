//! The facts about this host that compiling, launching and auditing depend on, probed
//! once ([`Facts::probe`]) and passed down: nothing below the command handlers asks the
//! host again mid-way (the launch plan is built from these, and tests build plans from
//! made-up ones).

use crate::seccomp::Host;

pub mod cgroups;

/// What a launch needs to know about the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub arch: Host,
    /// The launcher's own uid and gid (from /proc/self).
    pub uid: u32,
    pub gid: u32,
    /// The launcher's supplementary groups.
    pub groups: Vec<u32>,
    /// AppArmor is enabled and its securityfs is mounted.
    pub apparmor: bool,
    /// SELinux is active (selinuxfs is mounted).
    pub selinux: bool,
    /// Some cgroup controllers are on v1 hierarchies (a v1 or hybrid host, where
    /// /sys/fs/cgroup is a tmpfs): every cgroup is then joined after the clone, and the
    /// layout is read while the child works.
    pub cgroup_v1: bool,
}

/// The host's machine type.
pub fn arch() -> Host {
    if cfg!(target_arch = "aarch64") {
        Host::Aarch64
    } else {
        Host::X86_64
    }
}

/// Whether AppArmor is enabled in this kernel with its securityfs mounted.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
        && std::path::Path::new("/sys/kernel/security/apparmor").exists()
}

/// Whether SELinux is active on this host (selinuxfs is mounted).
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

impl Facts {
    /// Read the facts of this host and process.
    pub fn probe() -> std::io::Result<Facts> {
        Facts::probe_for(None)
    }

    /// [`Facts::probe`], leaving out what a launch of `policy` does not use (each probe
    /// is a system call on the launch's path): AppArmor when the policy names no
    /// profile, the supplementary groups when the launcher is root (they matter only to
    /// an unprivileged user namespace's gid map).
    pub fn probe_for(policy: Option<&policy_lang::Policy>) -> std::io::Result<Facts> {
        use std::os::unix::fs::MetadataExt;
        let me = std::fs::metadata("/proc/self")?;
        let uid = me.uid();
        Ok(Facts {
            arch: arch(),
            uid,
            gid: me.gid(),
            groups: if uid == 0 {
                Vec::new()
            } else {
                crate::launch::sys::getgroups().unwrap_or_default()
            },
            apparmor: policy.is_none_or(|p| p.apparmor.is_some()) && apparmor_enabled(),
            selinux: selinux_enabled(),
            cgroup_v1: cgroups::v1_or_hybrid_host(),
        })
    }
}
