//! Reading each input format into a [`Subject`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use policy_lang::ir::{AaMode, NsKind, NsMode, Policy, Rootfs};
use serde_json::Value;

use super::model::*;
use super::Error;
use crate::bpf;
use crate::seccomp::json;

/// Guess the format of `input` (a path, or a shipped policy name).
pub fn detect(input: &str) -> Result<InputFormat, Error> {
    let p = Path::new(input);
    if p.is_dir() {
        return if p.join("manifest.json").is_file() {
            Ok(InputFormat::Bundle)
        } else {
            Err(Error::NotABundle {
                input: input.into(),
            })
        };
    }
    if input.ends_with(".kakoi") || (!p.exists() && crate::profiles::get(input).is_some()) {
        return Ok(InputFormat::Policy);
    }
    let bytes = crate::input::read(p, crate::input::PROFILE_LIMIT)?;
    if input.ends_with(".bpf") {
        return Ok(InputFormat::Bpf);
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(InputFormat::Bpf);
    };
    let t = text.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        let v: Value = serde_json::from_str(text).map_err(|source| Error::Json {
            name: input.into(),
            source,
        })?;
        if v.get("ociVersion").is_some() || v.get("process").is_some() || v.get("linux").is_some() {
            return Ok(InputFormat::Oci);
        }
        if v.get("defaultAction").is_some() || v.get("syscalls").is_some() {
            return Ok(InputFormat::SeccompJson);
        }
        return Err(Error::UnknownJson {
            input: input.into(),
        });
    }
    if text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("profile ")
            || l.starts_with("#include")
            || l.starts_with("include ")
            || l.starts_with("abi ")
    }) || text.contains("capability") && text.contains('{')
    {
        return Ok(InputFormat::Apparmor);
    }
    if text
        .lines()
        .any(|l| l.trim_start().starts_with("seccomp") || l.trim_start().starts_with("kakoi "))
    {
        return Ok(InputFormat::Policy);
    }
    Err(Error::UnknownFormat {
        input: input.into(),
    })
}

fn caps_of(c: &policy_lang::ir::Capabilities, location: Location) -> CapView {
    let set = |v: &Vec<String>| v.iter().cloned().collect::<BTreeSet<String>>();
    CapView {
        bounding: set(&c.bounding),
        effective: set(&c.effective),
        permitted: set(&c.permitted),
        inheritable: set(&c.inheritable),
        ambient: set(&c.ambient),
        location,
    }
}

/// A resolved policy (from a file, a shipped name or a bundle).
pub fn policy(p: &Policy, name: &str, prog: Option<Vec<bpf::Insn>>) -> Result<Subject, Error> {
    let file = p
        .sources
        .first()
        .cloned()
        .unwrap_or_else(|| name.to_string());
    let loc = Location::file(&file);
    let mut s = Subject::new(
        name,
        if prog.is_some() {
            InputFormat::Bundle
        } else {
            InputFormat::Policy
        },
    );
    let r = &p.resources;
    s.limits = Some(LimitsView {
        memory: r.memory,
        pids: r.pids,
        cpu: r.cpu_quota.map(|q| q as f64 / r.cpu_period.max(1) as f64),
        location: loc.clone(),
    });
    s.seccomp = Some(if p.seccomp.enabled {
        let locs = p
            .seccomp
            .rules
            .iter()
            .map(|r| Location::line(&r.origin.file, r.origin.line))
            .collect();
        let mut v = SeccompView::from_rules(&p.seccomp, locs, loc.clone())?;
        if let Some(prog) = prog {
            // Audit the program that will actually be loaded.
            let rules = v.rules.take();
            let rl = std::mem::take(&mut v.rule_locations);
            v = SeccompView::from_prog(prog, loc.clone());
            v.rules = rules;
            v.rule_locations = rl;
        }
        Some(v)
    } else {
        None
    });
    s.caps = Some(caps_of(&p.capabilities, loc.clone()));
    s.no_new_privs = Some((p.process.no_new_privs, loc.clone()));
    let ns: BTreeMap<NsKind, bool> = NsKind::ALL
        .iter()
        .map(|k| (*k, p.namespaces.get(*k) != &NsMode::Host))
        .collect();
    s.namespaces = Some((ns, loc.clone()));
    s.masked = Some((p.filesystem.masked.clone(), loc.clone()));
    s.readonly = Some((p.filesystem.readonly.clone(), loc.clone()));
    let mut mounts: Vec<MountView> = p
        .filesystem
        .binds
        .iter()
        .map(|b| MountView {
            source: b.source.clone(),
            destination: b.target.clone(),
            kind: "bind".into(),
            options: vec![if b.readonly { "ro".into() } else { "rw".into() }],
            location: loc.clone(),
        })
        .collect();
    // kakoi always mounts a fresh /proc and a read-only /sys.
    mounts.push(MountView {
        source: "proc".into(),
        destination: "/proc".into(),
        kind: "proc".into(),
        options: vec![],
        location: loc.clone(),
    });
    mounts.push(MountView {
        source: "sysfs".into(),
        destination: "/sys".into(),
        kind: "sysfs".into(),
        options: vec!["ro".into()],
        location: loc.clone(),
    });
    s.mounts = Some(mounts);
    let ro = match &p.filesystem.rootfs {
        Rootfs::Host => true,
        Rootfs::Dir { readonly, .. } => *readonly,
    };
    s.rootfs_readonly = Some((ro, loc.clone()));
    s.uid = Some((p.identity.user.unwrap_or(0), loc.clone()));
    s.apparmor = Some(match &p.apparmor {
        Some(a) => {
            let text = crate::backends::apparmor::generate(p).text;
            AppArmorView {
                profile: Some(a.profile.clone()),
                complain: a.mode == AaMode::Complain,
                lines: text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| (i + 1, l.to_string()))
                    .collect(),
                location: loc.clone(),
            }
        }
        None => AppArmorView {
            profile: None,
            complain: false,
            lines: Vec::new(),
            location: loc.clone(),
        },
    });
    s.selinux = Some((crate::backends::selinux::label(p), loc));
    Ok(s)
}

/// A Docker / Podman / OCI seccomp profile, resolved for Docker's default capabilities.
pub fn seccomp_json(name: &str, text: &str) -> Result<Subject, Error> {
    let imported = json::import(name, text, &json::Target::docker_default())?;
    let locs = imported
        .seccomp
        .rules
        .iter()
        .map(|r| Location::pointer(name, format!("/syscalls/{}", r.origin.line - 1)))
        .collect();
    let mut s = Subject::new(name, InputFormat::SeccompJson);
    s.seccomp = Some(Some(SeccompView::from_rules(
        &imported.seccomp,
        locs,
        Location::pointer(name, "/defaultAction"),
    )?));
    s.notes = imported.notes;
    s.notes.push(
        "`includes`/`excludes` resolved for Docker's 14 default capabilities on x86_64".into(),
    );
    Ok(s)
}

/// A raw BPF program.
pub fn bpf_file(name: &str, bytes: &[u8]) -> Result<Subject, Error> {
    let bad = |source| Error::Bpf {
        name: name.into(),
        source,
    };
    let insns = bpf::decode(bytes).map_err(bad)?;
    bpf::validate(&insns).map_err(bad)?;
    let mut s = Subject::new(name, InputFormat::Bpf);
    s.seccomp = Some(Some(SeccompView::from_prog(insns, Location::file(name))));
    Ok(s)
}

fn strip_cap(c: &str) -> String {
    c.trim_start_matches("CAP_").to_uppercase()
}

/// An OCI runtime `config.json`.
pub fn oci(name: &str, text: &str) -> Result<Subject, Error> {
    let v: Value = serde_json::from_str(text).map_err(|source| Error::Json {
        name: name.into(),
        source,
    })?;
    let mut s = Subject::new(name, InputFormat::Oci);
    let at = |p: &str| Location::pointer(name, p);
    let list = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(strip_cap).collect())
            .unwrap_or_default()
    };
    let caps = &v["process"]["capabilities"];
    s.caps = Some(CapView {
        bounding: list(&caps["bounding"]),
        effective: list(&caps["effective"]),
        permitted: list(&caps["permitted"]),
        inheritable: list(&caps["inheritable"]),
        ambient: list(&caps["ambient"]),
        location: at("/process/capabilities"),
    });
    s.no_new_privs = Some((
        v["process"]["noNewPrivileges"].as_bool().unwrap_or(false),
        at("/process/noNewPrivileges"),
    ));
    s.uid = Some((
        v["process"]["user"]["uid"].as_u64().unwrap_or(0) as u32,
        at("/process/user/uid"),
    ));
    let mut ns: BTreeMap<NsKind, bool> = NsKind::ALL.iter().map(|k| (*k, false)).collect();
    for n in v["linux"]["namespaces"].as_array().into_iter().flatten() {
        // A namespace with a path joins an existing one: it is not the host's either.
        if let Some(kind) = NsKind::from_name(n["type"].as_str().unwrap_or("")) {
            ns.insert(kind, true);
        }
    }
    s.namespaces = Some((ns, at("/linux/namespaces")));
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let res = &v["linux"]["resources"];
    let quota = res["cpu"]["quota"].as_i64().filter(|q| *q > 0);
    let period = res["cpu"]["period"]
        .as_u64()
        .filter(|p| *p > 0)
        .unwrap_or(100_000);
    s.limits = Some(LimitsView {
        memory: res["memory"]["limit"]
            .as_i64()
            .filter(|m| *m > 0)
            .map(|m| m as u64),
        pids: res["pids"]["limit"]
            .as_i64()
            .filter(|p| *p > 0)
            .map(|p| p as u64),
        cpu: quota.map(|q| q as f64 / period as f64),
        location: at("/linux/resources"),
    });
    s.masked = Some((strs(&v["linux"]["maskedPaths"]), at("/linux/maskedPaths")));
    s.readonly = Some((
        strs(&v["linux"]["readonlyPaths"]),
        at("/linux/readonlyPaths"),
    ));
    s.mounts = Some(
        v["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, m)| MountView {
                source: m["source"].as_str().unwrap_or("").to_string(),
                destination: m["destination"].as_str().unwrap_or("").to_string(),
                kind: m["type"].as_str().unwrap_or("bind").to_string(),
                options: strs(&m["options"]),
                location: at(&format!("/mounts/{i}")),
            })
            .collect(),
    );
    if let Some(p) = v["linux"]["rootfsPropagation"].as_str() {
        if p.contains("shared") {
            if let Some(m) = s.mounts.as_mut() {
                m.push(MountView {
                    source: "/".into(),
                    destination: "/".into(),
                    kind: "rootfs".into(),
                    options: vec![p.to_string()],
                    location: at("/linux/rootfsPropagation"),
                });
            }
        }
    }
    s.rootfs_readonly = Some((
        v["root"]["readonly"].as_bool().unwrap_or(false),
        at("/root/readonly"),
    ));
    let aa = v["process"]["apparmorProfile"].as_str();
    s.apparmor = Some(AppArmorView {
        profile: aa
            .filter(|p| !p.is_empty() && *p != "unconfined")
            .map(String::from),
        complain: false,
        lines: Vec::new(),
        location: at("/process/apparmorProfile"),
    });
    s.selinux = Some((
        v["process"]["selinuxLabel"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(String::from),
        at("/process/selinuxLabel"),
    ));
    s.seccomp = Some(match v["linux"].get("seccomp") {
        Some(sc) if !sc.is_null() => {
            let sub = seccomp_json(name, &sc.to_string())?;
            let mut view = sub.seccomp.flatten().expect("seccomp_json sets it");
            for l in view.rule_locations.iter_mut() {
                l.pointer = l.pointer.as_ref().map(|p| format!("/linux/seccomp{p}"));
            }
            view.location = at("/linux/seccomp");
            Some(view)
        }
        _ => None,
    });
    Ok(s)
}

/// AppArmor profile text, with `include`s read where the files exist.
pub fn apparmor(name: &str, text: &str) -> Subject {
    let mut s = Subject::new(name, InputFormat::Apparmor);
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    expand(text, 0, &mut lines, &mut seen);
    let header_at = text.lines().position(|l| {
        let l = l.trim_start();
        (l.starts_with("profile ") || l.starts_with('/')) && l.trim_end().ends_with('{')
    });
    let header = header_at.and_then(|i| text.lines().nth(i));
    let profile = header.map(|h| {
        let h = h.trim_start().trim_start_matches("profile ");
        h.split_whitespace().next().unwrap_or("").to_string()
    });
    let complain = header.is_some_and(|h| h.contains("complain") || h.contains("unconfined"));
    let own: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect();
    s.apparmor = Some(AppArmorView {
        profile,
        complain,
        lines: own.into_iter().chain(lines).collect(),
        location: match header_at {
            Some(i) => Location::line(name, i + 1),
            None => Location::file(name),
        },
    });
    s
}

/// An included file's text: regular files up to 1 MiB only, so that a hostile profile
/// naming `/dev/zero` or a FIFO cannot hang or exhaust the auditor.
fn read_include(path: &str) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut t = String::new();
    f.take(1 << 20).read_to_string(&mut t).ok()?;
    Some(t)
}

fn expand(text: &str, depth: usize, out: &mut Vec<(usize, String)>, seen: &mut BTreeSet<String>) {
    if depth > 8 {
        return;
    }
    for l in text.lines() {
        let t = l.trim();
        let inc = t
            .strip_prefix("#include")
            .or_else(|| t.strip_prefix("include if exists"))
            .or_else(|| t.strip_prefix("include"));
        let Some(inc) = inc else { continue };
        let path = inc
            .trim()
            .trim_matches(|c| c == '<' || c == '>' || c == '"');
        let full = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/etc/apparmor.d/{path}")
        };
        if !seen.insert(full.clone()) {
            continue;
        }
        if let Some(t) = read_include(&full) {
            // Included lines carry line 0: they are not in the audited file.
            out.extend(t.lines().map(|l| (0, l.to_string())));
            expand(&t, depth + 1, out, seen);
        }
    }
}
