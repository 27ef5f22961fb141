//! The sandbox's user namespace: its uid and gid maps (the policy's, subordinate ranges,
//! or the caller's own id), the ids the launcher takes on entering it, and writing the
//! maps (directly, or through newuidmap/newgidmap).

use policy_lang::ir::{IdMap, Policy};

use super::error::{At, Hint, StepError};

/// What the launch does with user namespaces and id maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
    /// Write through newuidmap/newgidmap (ranges beyond the caller's own id).
    pub helper: bool,
    /// The caller's supplementary groups that stay with the sandbox's processes: an
    /// unprivileged user namespace without a subordinate gid cannot drop them.
    pub kept_groups: Vec<u32>,
}

/// The name of the user `uid` in /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid.to_string()).then(|| name.to_string())
    })
}

/// Whether `tool` is an executable file in `$PATH`.
fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn subid_range(file: &str, user: &str, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        (who == user || who == uid.to_string())
            .then(|| Some((start.parse().ok()?, count.parse().ok()?)))?
    })
}

/// The uid and gid the launcher takes on entering the sandbox's user namespace, launched
/// by `caller`: 0, unless an unprivileged caller's map is the default one of a single id,
/// which maps the caller as the policy's user and group (root when it names none). 0 is
/// then unmapped, so the change of ids clears none of the namespace creator's capabilities.
pub fn entry_ids(p: &Policy, caller: u32) -> (u32, u32) {
    let id = &p.identity;
    let single = |m: &[IdMap]| caller != 0 && m.is_empty() && id.subids.is_none();
    (
        if single(&id.uid_map) {
            id.user.unwrap_or(0)
        } else {
            0
        },
        if single(&id.gid_map) {
            id.group.or(id.user).unwrap_or(0)
        } else {
            0
        },
    )
}

/// The uid and gid maps of the sandbox's user namespace.
pub fn id_maps(p: &Policy, uid: u32, gid: u32, groups: &[u32]) -> Result<Maps, StepError> {
    let id = &p.identity;
    let mut maps = Maps {
        uid: id.uid_map.clone(),
        gid: id.gid_map.clone(),
        helper: false,
        kept_groups: Vec::new(),
    };
    if let Some(user) = &id.subids {
        let (us, uc) = subid_range("/etc/subuid", user, uid)
            .ok_or_else(|| StepError::new("id maps", format!("no /etc/subuid range for `{user}`")))
            .hint(format!(
                "add a line like `{user}:100000:65536` to /etc/subuid and /etc/subgid"
            ))?;
        let (gs, gc) = subid_range("/etc/subgid", user, uid)
            .ok_or_else(|| StepError::new("id maps", format!("no /etc/subgid range for `{user}`")))
            .hint(format!(
                "add a line like `{user}:100000:65536` to /etc/subgid"
            ))?;
        maps.uid = vec![
            IdMap {
                inside: 0,
                outside: uid,
                count: 1,
            },
            IdMap {
                inside: 1,
                outside: us,
                count: uc,
            },
        ];
        maps.gid = vec![
            IdMap {
                inside: 0,
                outside: gid,
                count: 1,
            },
            IdMap {
                inside: 1,
                outside: gs,
                count: gc,
            },
        ];
    }
    // Root keeps the host's ids (the user namespace then only confines capabilities);
    // anyone else is mapped to themselves as the policy's user and group (root when it
    // names none), as `unshare --map-user` does: `user 65534` runs without subids.
    let default_map = |own: u32, inside: u32| {
        vec![if uid == 0 {
            IdMap {
                inside: 0,
                outside: 0,
                count: u32::MAX,
            }
        } else {
            IdMap {
                inside,
                outside: own,
                count: 1,
            }
        }]
    };
    let (inside_uid, inside_gid) = entry_ids(p, uid);
    if maps.uid.is_empty() {
        maps.uid = default_map(uid, inside_uid);
    }
    if maps.gid.is_empty() {
        maps.gid = default_map(gid, inside_gid);
    }
    let own = |m: &[IdMap], me: u32| m.len() == 1 && m[0].count == 1 && m[0].outside == me;
    maps.helper = uid != 0 && !(own(&maps.uid, uid) && own(&maps.gid, gid));
    if uid != 0 && !maps.helper {
        // A gid map of one's own gid alone needs setgroups denied (newgidmap does the same
        // since CVE-2018-7169), and then the caller's supplementary groups cannot be
        // dropped: they would go on granting access inside (a member of `shadow` reads
        // /etc/shadow). One subordinate gid in the map lets newgidmap allow setgroups,
        // so the sandbox starts with the policy's groups only.
        let extra: Vec<u32> = groups.iter().copied().filter(|g| *g != gid).collect();
        if !extra.is_empty() {
            let sub = user_name(uid)
                .and_then(|n| subid_range("/etc/subgid", &n, uid))
                .or_else(|| subid_range("/etc/subgid", &uid.to_string(), uid))
                .filter(|(_, count)| *count > 0);
            match sub {
                Some((start, _)) if in_path("newgidmap") && in_path("newuidmap") => {
                    let inside = maps
                        .gid
                        .iter()
                        .map(|m| m.inside + m.count)
                        .max()
                        .unwrap_or(1);
                    maps.gid.push(IdMap {
                        inside,
                        outside: start,
                        count: 1,
                    });
                    maps.helper = true;
                }
                _ => maps.kept_groups = extra,
            }
        }
    }
    Ok(maps)
}

fn map_text(m: &[IdMap]) -> String {
    m.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

/// Write the maps of `pid`; `launcher_uid` decides whether setgroups must be denied first.
pub fn write_maps(pid: i32, maps: &Maps, launcher_uid: u32) -> Result<(), StepError> {
    if maps.helper {
        for (tool, m) in [("newgidmap", &maps.gid), ("newuidmap", &maps.uid)] {
            let mut cmd = std::process::Command::new(tool);
            cmd.arg(pid.to_string());
            for e in m.iter() {
                cmd.args([
                    e.inside.to_string(),
                    e.outside.to_string(),
                    e.count.to_string(),
                ]);
            }
            let out = cmd
                .output()
                .at(format!("run {tool}"))
                .hint("install the `uidmap` package for newuidmap/newgidmap")?;
            if !out.status.success() {
                return Err(StepError::new(
                    format!("run {tool}"),
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ))
                .hint("the ranges must be granted to this user in /etc/subuid and /etc/subgid");
            }
        }
        return Ok(());
    }
    if launcher_uid != 0 {
        // An unprivileged map of one's own gid needs setgroups denied first.
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny").at("write setgroups=deny")?;
    }
    std::fs::write(format!("/proc/{pid}/gid_map"), map_text(&maps.gid))
        .at("write gid_map")
        .hint("each inside range must map to ids the launcher may use")?;
    std::fs::write(format!("/proc/{pid}/uid_map"), map_text(&maps.uid))
        .at("write uid_map")
        .hint("each inside range must map to ids the launcher may use")?;
    Ok(())
}
