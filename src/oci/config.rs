//! An OCI bundle's `config.json` as a kakoi launch: the same policy IR and plan as every
//! policy (not a second launcher). What kakoi cannot do is an error naming the field,
//! never a silent skip.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use policy_lang::ir::{Bind, IdMap, NsKind, NsMode, Policy, Propagation, Rlimit, Rootfs, Tmpfs};
use serde::Serialize;

/// Why a config cannot run under kakoi.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Load {
        path: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("config.json: `{field}` is not supported by kakoi{}", if why.is_empty() { String::new() } else { format!(": {why}") })]
    Unsupported { field: String, why: String },
    #[error("config.json: `{field}`: {why}")]
    Invalid { field: String, why: String },
}

fn unsupported(field: impl Into<String>, why: impl Into<String>) -> Error {
    Error::Unsupported {
        field: field.into(),
        why: why.into(),
    }
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// A container, as kakoi runs it.
#[derive(Clone, Debug)]
pub struct Container {
    pub policy: Policy,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub terminal: bool,
    /// `linux.cgroupsPath`: the container's cgroup, the same path in every hierarchy.
    pub cgroups_path: Option<String>,
    /// `mqueue` on /dev/mqueue is among the mounts.
    pub mqueue: bool,
    /// `linux.sysctl`, namespaced ones only.
    pub sysctl: Vec<(String, String)>,
    pub oom_score_adj: Option<i32>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The JSON name of a spec enum value (`CAP_CHOWN`, `RLIMIT_NOFILE`, `network`).
fn name<T: Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A policy that confines nothing by itself: every field is then set from the config.
fn blank() -> Policy {
    let (_, c) = policy_lang::check_str("config.json", "seccomp off\n");
    let mut p = c.policy.expect("a blank policy resolves");
    p.name = "oci".into();
    p.namespaces.0.clear();
    p.filesystem.masked.clear();
    p.filesystem.readonly.clear();
    p.filesystem.tmpfs.clear();
    p.filesystem.binds.clear();
    p.filesystem.access.clear();
    p.resources.memory = None;
    p.resources.memory_swap = None;
    p.resources.pids = None;
    p.resources.cpu_quota = None;
    p.resources.rlimits.clear();
    p.process.init = false;
    p.process.hostname = None;
    p
}

/// Load `bundle/config.json` and translate it.
pub fn load(bundle: &Path) -> Result<Container, Error> {
    let path = bundle.join("config.json");
    let spec = Spec::load(&path).map_err(|source| Error::Load {
        path: path.display().to_string(),
        source,
    })?;
    translate(&spec, bundle)
}

/// `config.json` (read from `bundle`) as a kakoi container.
pub fn translate(spec: &Spec, bundle: &Path) -> Result<Container, Error> {
    let mut p = blank();
    if spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().is_some()
            || h.create_runtime().is_some()
            || h.create_container().is_some()
            || h.start_container().is_some()
            || h.poststart().is_some()
            || h.poststop().is_some()
    }) {
        return Err(unsupported("hooks", "not yet"));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "a container needs a process"))?;
    let argv = process.args().clone().unwrap_or_default();
    if argv.is_empty() {
        return Err(invalid("process.args", "empty"));
    }
    let env = process.env().clone().unwrap_or_default();
    p.process.cwd = process.cwd().display().to_string();
    p.process.no_new_privs = process.no_new_privileges().unwrap_or(false);

    let user = process.user();
    p.identity.user = Some(user.uid());
    p.identity.group = Some(user.gid());
    p.identity.groups = user.additional_gids().clone().unwrap_or_default();
    let caps = |set: Option<&oci_spec::runtime::Capabilities>| -> Vec<String> {
        let mut v: Vec<String> = set
            .into_iter()
            .flatten()
            .map(|c| name(c).trim_start_matches("CAP_").to_string())
            .filter(|c| policy_lang::catalogue::capability(c).is_some())
            .collect();
        v.sort();
        v
    };
    match process.capabilities() {
        Some(c) => {
            p.capabilities.bounding = caps(c.bounding().as_ref());
            p.capabilities.effective = caps(c.effective().as_ref());
            p.capabilities.permitted = caps(c.permitted().as_ref());
            p.capabilities.inheritable = caps(c.inheritable().as_ref());
            p.capabilities.ambient = caps(c.ambient().as_ref());
        }
        None => {
            p.capabilities.bounding.clear();
            p.capabilities.effective.clear();
            p.capabilities.permitted.clear();
            p.capabilities.inheritable.clear();
            p.capabilities.ambient.clear();
        }
    }
    for r in process.rlimits().iter().flatten() {
        let typ = name(&r.typ());
        let n = typ.trim_start_matches("RLIMIT_").to_ascii_lowercase();
        if policy_lang::catalogue::rlimit(&n).is_none() {
            return Err(unsupported(
                format!("process.rlimits {typ}"),
                "unknown limit",
            ));
        }
        p.resources.rlimits.push(Rlimit {
            name: n,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    if let Some(a) = process.apparmor_profile() {
        p.apparmor = Some(policy_lang::ir::AppArmor {
            profile: a.clone(),
            ..lsm_apparmor()
        });
    }
    if process.selinux_label().is_some() {
        return Err(unsupported("process.selinuxLabel", "not yet"));
    }
    p.process.hostname = spec.hostname().clone();

    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "a container needs a root"))?;
    let root_path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    p.filesystem.rootfs = Rootfs::Dir {
        path: root_path.display().to_string(),
        readonly: root.readonly().unwrap_or(false),
    };
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount(&mut p, m, bundle).map_err(|e| match e {
            Error::Unsupported { field, why } => unsupported(format!("mounts[{i}] {field}"), why),
            e => e,
        })?;
    }
    let mut cgroups_path = None;
    let mut sysctl = Vec::new();
    if let Some(linux) = spec.linux() {
        for n in linux.namespaces().iter().flatten() {
            let t = name(&n.typ());
            let kind = NsKind::from_name(&t)
                .ok_or_else(|| unsupported(format!("linux.namespaces {t}"), ""))?;
            let mode = match n.path() {
                Some(path) => NsMode::Join(path.display().to_string()),
                None => NsMode::New,
            };
            p.namespaces.0.insert(kind, mode);
        }
        let map = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<IdMap> {
            v.iter()
                .flatten()
                .map(|m| IdMap {
                    inside: m.container_id(),
                    outside: m.host_id(),
                    count: m.size(),
                })
                .collect()
        };
        p.identity.uid_map = map(linux.uid_mappings());
        p.identity.gid_map = map(linux.gid_mappings());
        p.filesystem.masked = linux.masked_paths().clone().unwrap_or_default();
        p.filesystem.readonly = linux.readonly_paths().clone().unwrap_or_default();
        for (k, v) in linux.sysctl().iter().flatten() {
            // Only the parameters of the namespaces the container has of its own: any
            // other would change the host.
            let own = |kind: NsKind| p.namespaces.get(kind) != &NsMode::Host;
            let ipc = matches!(
                k.as_str(),
                "kernel.msgmax"
                    | "kernel.msgmnb"
                    | "kernel.msgmni"
                    | "kernel.sem"
                    | "kernel.shmall"
                    | "kernel.shmmax"
                    | "kernel.shmmni"
                    | "kernel.shm_rmid_forced"
            ) || k.starts_with("fs.mqueue.");
            let ok = if ipc {
                own(NsKind::Ipc)
            } else if k.starts_with("net.") {
                own(NsKind::Net)
            } else if matches!(k.as_str(), "kernel.hostname" | "kernel.domainname") {
                own(NsKind::Uts)
            } else {
                false
            };
            if !ok || k.contains("..") || v.contains('\0') {
                return Err(invalid(
                    format!("linux.sysctl {k}"),
                    "not a parameter of a namespace the container has of its own (it would change the host)",
                ));
            }
            sysctl.push((k.clone(), v.clone()));
        }
        sysctl.sort();
        if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(unsupported(
                "linux.devices",
                "kakoi's /dev holds null, zero, full, random, urandom, tty, ptmx and pts only",
            ));
        }
        if let Some(s) = linux.seccomp() {
            let text = serde_json::to_string(s).expect("serializes");
            let imported = crate::seccomp::json::import(
                "config.json linux.seccomp",
                &text,
                &crate::seccomp::json::Target {
                    host: crate::host::arch(),
                    caps: p.capabilities.bounding.iter().cloned().collect(),
                    kernel: kernel_version(),
                },
            )
            .map_err(|e| invalid("linux.seccomp", e.to_string()))?;
            p.seccomp = imported.seccomp;
        }
        match linux.rootfs_propagation().as_deref() {
            None | Some("private") | Some("rprivate") => {}
            Some("slave") | Some("rslave") => p.filesystem.propagation = Propagation::Slave,
            Some(other) => {
                return Err(unsupported(
                    format!("linux.rootfsPropagation {other}"),
                    "kakoi's mounts are private or slave",
                ))
            }
        }
        if let Some(r) = linux.resources() {
            resources(&mut p, r)?;
        }
        if linux.mount_label().is_some() {
            return Err(unsupported("linux.mountLabel", "not yet"));
        }
        cgroups_path = linux
            .cgroups_path()
            .as_ref()
            .map(|c| c.display().to_string());
    }
    Ok(Container {
        policy: p,
        argv,
        env,
        terminal: process.terminal().unwrap_or(false),
        oom_score_adj: process.oom_score_adj(),
        cgroups_path,
        sysctl,
        mqueue: spec.mounts().iter().flatten().any(|m| {
            m.typ().as_deref() == Some("mqueue") && m.destination() == Path::new("/dev/mqueue")
        }),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

fn lsm_apparmor() -> policy_lang::ir::AppArmor {
    let (_, c) = policy_lang::check_str(
        "config.json",
        "apparmor optional {\n    profile \"oci\"\n}\n",
    );
    c.policy
        .and_then(|p| p.apparmor)
        .expect("an AppArmor section resolves")
}

/// One of `mounts`: the special file systems kakoi makes itself, binds and tmpfs.
fn mount(p: &mut Policy, m: &Mount, bundle: &Path) -> Result<(), Error> {
    let dest = m.destination().display().to_string();
    let typ = m.typ().clone().unwrap_or_default();
    let opts: Vec<String> = m.options().clone().unwrap_or_default();
    let has = |o: &str| opts.iter().any(|x| x == o);
    let bind = typ == "bind" || has("bind") || has("rbind");
    // What kakoi's new root has anyway, as the runtime spec's defaults ask.
    let builtin = matches!(
        (typ.as_str(), dest.as_str()),
        ("proc", "/proc")
            | ("tmpfs", "/dev")
            | ("devpts", "/dev/pts")
            | ("tmpfs", "/dev/shm")
            | ("sysfs", "/sys")
            | ("mqueue", "/dev/mqueue")
            | ("cgroup", "/sys/fs/cgroup")
            | ("cgroup2", "/sys/fs/cgroup")
    );
    if builtin && !bind {
        return Ok(());
    }
    if bind {
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| invalid(format!("mount {dest}"), "a bind needs a source"))?;
        let source: PathBuf = if source.is_absolute() {
            source.clone()
        } else {
            bundle.join(source)
        };
        for o in &opts {
            if !matches!(
                o.as_str(),
                "bind"
                    | "rbind"
                    | "ro"
                    | "rw"
                    | "nosuid"
                    | "suid"
                    | "nodev"
                    | "dev"
                    | "noexec"
                    | "exec"
                    | "private"
                    | "rprivate"
                    | "slave"
                    | "rslave"
            ) {
                return Err(unsupported(format!("option {o}"), "of a bind mount"));
            }
        }
        p.filesystem.binds.push(Bind {
            source: source.display().to_string(),
            target: dest,
            readonly: has("ro"),
            idmap: false,
            suid: !has("nosuid"),
        });
        return Ok(());
    }
    if typ == "tmpfs" {
        let mut t = Tmpfs {
            target: dest.clone(),
            size: None,
            mode: None,
        };
        for o in &opts {
            if let Some(s) = o.strip_prefix("size=") {
                t.size = Some(size(s).ok_or_else(|| invalid(format!("mount {dest}"), o))?);
            } else if let Some(m) = o.strip_prefix("mode=") {
                t.mode = Some(
                    u32::from_str_radix(m, 8).map_err(|_| invalid(format!("mount {dest}"), o))?,
                );
            } else if !matches!(
                o.as_str(),
                "nosuid" | "nodev" | "noexec" | "strictatime" | "relatime" | "rw"
            ) {
                return Err(unsupported(format!("option {o}"), "of a tmpfs mount"));
            }
        }
        p.filesystem.tmpfs.push(t);
        return Ok(());
    }
    Err(unsupported(
        format!("type {typ} on {dest}"),
        "kakoi mounts binds and tmpfs",
    ))
}

/// The running kernel's (major, minor), for a profile's `minKernel` (as runc reads it).
fn kernel_version() -> (u32, u32) {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = r.trim().split(['.', '-']).map(|n| n.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// `size=` of a tmpfs: bytes, or with k, m, g.
fn size(s: &str) -> Option<u64> {
    let (n, mul) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().ok()?.checked_mul(mul)
}

/// `linux.resources`: the limits kakoi's cgroup step writes.
fn resources(p: &mut Policy, r: &oci_spec::runtime::LinuxResources) -> Result<(), Error> {
    // What kakoi's cgroup step cannot write yet is refused, not left out.
    let mut unset = Vec::new();
    if let Some(c) = r.cpu() {
        for (set, name) in [
            (c.shares().is_some(), "cpu.shares"),
            (c.idle().is_some(), "cpu.idle"),
            (c.burst().is_some(), "cpu.burst"),
            (c.realtime_runtime().is_some(), "cpu.realtimeRuntime"),
            (c.realtime_period().is_some(), "cpu.realtimePeriod"),
            (c.cpus().is_some(), "cpu.cpus"),
            (c.mems().is_some(), "cpu.mems"),
        ] {
            if set {
                unset.push(name);
            }
        }
    }
    if let Some(m) = r.memory() {
        for (set, name) in [
            (m.reservation().is_some(), "memory.reservation"),
            (m.kernel().is_some(), "memory.kernel"),
            (m.kernel_tcp().is_some(), "memory.kernelTCP"),
            (m.swappiness().is_some(), "memory.swappiness"),
            (
                m.disable_oom_killer() == Some(true),
                "memory.disableOOMKiller",
            ),
        ] {
            if set {
                unset.push(name);
            }
        }
    }
    if r.rdma().is_some() {
        unset.push("rdma");
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        unset.push("unified");
    }
    if !unset.is_empty() {
        return Err(unsupported(
            format!("linux.resources ({})", unset.join(", ")),
            "not yet",
        ));
    }
    let res = &mut p.resources;
    if let Some(m) = r.memory() {
        res.memory = m.limit().filter(|l| *l > 0).map(|l| l as u64);
        res.memory_swap = m.swap().filter(|l| *l > 0).map(|l| l as u64);
    }
    if let Some(pids) = r.pids() {
        let l = pids.limit();
        if l > 0 {
            res.pids = Some(l as u64);
        }
    }
    if let Some(c) = r.cpu() {
        if let (Some(q), Some(per)) = (c.quota(), c.period()) {
            if q > 0 && per > 0 {
                res.cpu_quota = Some(q as u64);
                res.cpu_period = per;
            }
        }
    }
    for d in r.devices().iter().flatten() {
        // Every device denied (the spec's default) is what kakoi's /dev gives.
        if d.allow() {
            return Err(unsupported(
                "linux.resources.devices",
                "allowing devices: kakoi's /dev has its fixed nodes only",
            ));
        }
    }
    if r.block_io().is_some() || r.hugepage_limits().is_some() || r.network().is_some() {
        return Err(unsupported(
            "linux.resources (blockIO, hugepageLimits, network)",
            "not yet",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// runc's default `config.json` (`kakoi oci spec`) reads as the container it describes.
    #[test]
    fn the_default_spec_translates() {
        let spec = Spec::default();
        let c = translate(&spec, Path::new("/b")).unwrap();
        assert_eq!(c.argv, ["sh"]);
        assert!(!c.policy.seccomp.enabled);
        assert_eq!(
            c.policy.filesystem.rootfs,
            Rootfs::Dir {
                path: "/b/rootfs".into(),
                readonly: true
            }
        );
        for k in [
            NsKind::Pid,
            NsKind::Net,
            NsKind::Ipc,
            NsKind::Uts,
            NsKind::Mount,
        ] {
            assert_eq!(c.policy.namespaces.get(k), &NsMode::New, "{k:?}");
        }
        assert_eq!(c.policy.namespaces.get(NsKind::User), &NsMode::Host);
        assert!(c.policy.capabilities.bounding.contains(&"KILL".to_string()));
        assert!(!c
            .policy
            .capabilities
            .bounding
            .contains(&"SYS_ADMIN".to_string()));
        assert!(c
            .policy
            .filesystem
            .masked
            .contains(&"/proc/kcore".to_string()));
        assert!(c.policy.process.no_new_privs);
        assert!(
            !c.policy.process.init,
            "the command is the container's first process"
        );
        assert_eq!(c.policy.resources.rlimits[0].name, "nofile");
        assert!(
            c.mqueue
                || !spec
                    .mounts()
                    .iter()
                    .flatten()
                    .any(|m| m.typ().as_deref() == Some("mqueue"))
        );
    }

    /// What kakoi cannot do is an error naming the field.
    #[test]
    fn unsupported_fields_are_errors_not_skips() {
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        // A host-wide parameter is refused; one of the container's own namespaces is not.
        v["linux"]["sysctl"] = serde_json::json!({"vm.overcommit_memory": "1"});
        let spec: Spec = serde_json::from_value(v.clone()).unwrap();
        let e = translate(&spec, Path::new("/b")).unwrap_err().to_string();
        assert!(e.contains("linux.sysctl vm.overcommit_memory"), "{e}");
        v["linux"]["sysctl"] =
            serde_json::json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "8"});
        let spec: Spec = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            translate(&spec, Path::new("/b")).unwrap().sysctl,
            [
                ("kernel.shmmni".to_string(), "8".to_string()),
                ("net.ipv4.ip_forward".to_string(), "1".to_string())
            ]
        );
        v["linux"]["sysctl"] = serde_json::json!({});
        let mut w = serde_json::to_value(Spec::default()).unwrap();
        w["mounts"] = serde_json::json!([{"destination": "/x", "type": "nfs", "source": "h:/e"}]);
        let spec: Spec = serde_json::from_value(w).unwrap();
        let e = translate(&spec, Path::new("/b")).unwrap_err().to_string();
        assert!(e.contains("mounts[0]") && e.contains("nfs"), "{e}");
        let mut h = serde_json::to_value(Spec::default()).unwrap();
        h["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/true"}]});
        let spec: Spec = serde_json::from_value(h).unwrap();
        assert!(translate(&spec, Path::new("/b"))
            .unwrap_err()
            .to_string()
            .contains("hooks"));
    }

    /// Limits kakoi's cgroup step cannot write are refused, not left out.
    #[test]
    fn resources_kakoi_cannot_write_are_refused() {
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        v["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 32},
            "cpu": {"quota": 50000, "period": 100000},
        });
        let spec: Spec = serde_json::from_value(v.clone()).unwrap();
        let r = translate(&spec, Path::new("/b")).unwrap().policy.resources;
        assert_eq!(
            (r.memory, r.pids, r.cpu_quota, r.cpu_period),
            (Some(64 << 20), Some(32), Some(50000), 100000)
        );
        v["linux"]["resources"]["cpu"]["shares"] = serde_json::json!(512);
        v["linux"]["resources"]["memory"]["swappiness"] = serde_json::json!(10);
        let spec: Spec = serde_json::from_value(v).unwrap();
        let e = translate(&spec, Path::new("/b")).unwrap_err().to_string();
        assert!(
            e.contains("cpu.shares") && e.contains("memory.swappiness"),
            "{e}"
        );
    }

    #[test]
    fn binds_and_tmpfs_keep_their_options() {
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        v["mounts"] = serde_json::json!([
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=16m", "mode=1777"]},
        ]);
        let spec: Spec = serde_json::from_value(v).unwrap();
        let c = translate(&spec, Path::new("/b")).unwrap();
        let b = &c.policy.filesystem.binds[0];
        assert_eq!(
            (b.source.as_str(), b.target.as_str(), b.readonly, b.suid),
            ("/b/data", "/data", true, false)
        );
        let t = &c.policy.filesystem.tmpfs[0];
        assert_eq!((t.size, t.mode), (Some(16 << 20), Some(0o1777)));
    }
}
