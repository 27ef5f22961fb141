//! Which cgroup hierarchy carries each controller, read from `/proc/self/mountinfo`
//! (passed in as text, so tests run against fake trees, as Firecracker's jailer does).
//!
//! v2 (unified): one `cgroup2` mount whose `cgroup.controllers` lists the controllers.
//! v1: one `cgroup` mount per controller (its options name it). Hybrid machines have both;
//! a controller counts as v2 only if the v2 root actually offers it.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "version", rename_all = "lowercase")]
pub enum Hierarchy {
    V1 { mount: String },
    V2 { mount: String },
}

/// Where each controller kakoi uses lives, and where in each hierarchy the sandbox's
/// cgroups are made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub controllers: BTreeMap<String, Hierarchy>,
    /// The cgroup2 mount, if any (used for v2 controllers and `cgroup.kill`).
    pub unified: Option<String>,
    /// The directory each hierarchy (by mount point) makes the sandbox's cgroups in: the
    /// launcher's own cgroup there, so a limited caller's limits hold for the sandbox too
    /// (v1 and v2 limits are hierarchical), or a configured parent ([`Layout::under`]).
    /// A hierarchy missing here has no place: the launcher's cgroup is not inside what is
    /// mounted (another cgroup namespace's mount), and nothing is made in it.
    pub parents: BTreeMap<String, std::path::PathBuf>,
}

/// The controllers kakoi sets limits with.
pub const CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "io"];

/// One cgroup mount of mountinfo.
struct Mount<'a> {
    point: &'a str,
    /// The directory of the hierarchy the mount shows (`/` unless a sub-tree is mounted).
    root: &'a str,
    v2: bool,
    /// v1: the mount's options (they name its controllers).
    options: Vec<&'a str>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<Mount<'_>> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut l = left.split_whitespace();
        let root = l.nth(3).unwrap_or("/");
        let point = l.next().unwrap_or("");
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap_or("");
        let superopts = r.nth(1).unwrap_or("");
        if fstype == "cgroup2" || fstype == "cgroup" {
            out.push(Mount {
                point,
                root,
                v2: fstype == "cgroup2",
                options: superopts.split(',').collect(),
            });
        }
    }
    out
}

/// Read the layout from mountinfo text; `v2_controllers` is the content of the unified
/// root's `cgroup.controllers` (empty when there is none or it offers none) and
/// `own_cgroups` the launcher's `/proc/self/cgroup` (a hierarchy it names no cgroup of
/// counts as its root).
pub fn detect(mountinfo: &str, v2_controllers: &str, own_cgroups: &str) -> Layout {
    let mut layout = Layout::default();
    let offered: Vec<&str> = v2_controllers.split_whitespace().collect();
    for m in cgroup_mounts(mountinfo) {
        let mountpoint = m.point.to_string();
        if m.v2 {
            layout.unified = Some(mountpoint.clone());
            for c in CONTROLLERS {
                if offered.contains(c) {
                    layout.controllers.insert(
                        c.to_string(),
                        Hierarchy::V2 {
                            mount: mountpoint.clone(),
                        },
                    );
                }
            }
        } else {
            for opt in &m.options {
                // v1 calls the io controller blkio.
                let name = if *opt == "blkio" { "io" } else { opt };
                if CONTROLLERS.contains(&name) && !layout.controllers.contains_key(name) {
                    layout.controllers.insert(
                        name.to_string(),
                        Hierarchy::V1 {
                            mount: mountpoint.clone(),
                        },
                    );
                }
            }
        }
        // The launcher's cgroup in this hierarchy: the `/proc/self/cgroup` line of v2
        // (`0::PATH`) or the one whose controllers this mount carries.
        let own = own_cgroups
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                let hit = if m.v2 {
                    ctrls.is_empty()
                } else {
                    !ctrls.is_empty() && ctrls.split(',').all(|c| m.options.contains(&c))
                };
                hit.then_some(path)
            })
            .unwrap_or("/");
        if let Some(dir) = place(m.point, m.root, own) {
            layout.parents.insert(mountpoint, dir);
        }
    }
    // A v2 controller wins over a v1 mount of the same name only if v2 offers it, which
    // the kernel allows only when no v1 hierarchy holds it; keep v1 otherwise.
    layout
}

/// The directory of cgroup `path` (of the hierarchy) under a mount of the hierarchy's
/// `root`, if the mount shows it.
fn place(point: &str, root: &str, path: &str) -> Option<std::path::PathBuf> {
    let rel = if root == "/" {
        path
    } else {
        path.strip_prefix(root)
            .filter(|r| r.is_empty() || r.starts_with('/'))?
    };
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    let mut dir = std::path::PathBuf::from(point);
    if !rel.is_empty() {
        dir.push(rel);
    }
    Some(dir)
}

impl Layout {
    /// Make the sandbox's cgroups below `parent` (a cgroup path such as `/batch/kakoi`,
    /// the same in every hierarchy, as runc's `cgroupsPath`) instead of the launcher's own
    /// cgroup. Missing directories are made at launch.
    pub fn under(mut self, parent: &str) -> Result<Layout, String> {
        if !parent.starts_with('/') || parent.split('/').any(|c| c == ".." || c == ".") {
            return Err(format!(
                "cgroup parent `{parent}` must be an absolute cgroup path without `.` or `..` (e.g. `/kakoi`)"
            ));
        }
        let mounts: Vec<String> = self
            .controllers
            .values()
            .map(|h| match h {
                Hierarchy::V1 { mount } | Hierarchy::V2 { mount } => mount.clone(),
            })
            .chain(self.unified.clone())
            .collect();
        self.parents.clear();
        for m in mounts {
            let dir = std::path::Path::new(&m).join(parent.trim_start_matches('/'));
            self.parents.insert(m, dir);
        }
        Ok(self)
    }

    /// Where the sandbox's cgroups go in the hierarchy mounted at `mount`.
    pub fn parent(&self, mount: &str) -> Option<&std::path::Path> {
        self.parents.get(mount).map(|p| p.as_path())
    }
}

/// Whether /sys/fs/cgroup is a tmpfs holding v1 hierarchies (and on a hybrid host the
/// unified one): its sandbox cgroups are then joined by writing the child's pid, not by
/// `CLONE_INTO_CGROUP`. One `statfs`, where [`host_layout`] reads mountinfo.
pub fn v1_or_hybrid_host() -> bool {
    crate::launch::sys::statfs_type(c"/sys/fs/cgroup").is_ok_and(|t| t == libc::TMPFS_MAGIC)
}

/// The layout of this host, read from `/proc/self/mountinfo` and the unified root.
pub fn host_layout() -> Layout {
    let mountinfo = read_proc("/proc/self/mountinfo");
    let own = read_proc("/proc/self/cgroup");
    let layout = detect(&mountinfo, "", &own);
    match &layout.unified {
        Some(u) => {
            let offered =
                std::fs::read_to_string(format!("{u}/cgroup.controllers")).unwrap_or_default();
            detect(&mountinfo, &offered, &own)
        }
        None => layout,
    }
}

/// A /proc file's text. Such files report size 0, so `read_to_string` starts with tiny
/// reads, and the kernel formats the text again for each; one large buffer reads it at once.
fn read_proc(path: &str) -> String {
    use std::io::Read;
    let mut text = String::with_capacity(16 * 1024);
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_or_else(|_| String::new(), |_| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const PURE_V2: &str = "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

    #[test]
    fn hybrid_keeps_limits_on_v1() {
        let l = detect(HYBRID, "", "");
        assert_eq!(
            l.controllers["memory"],
            Hierarchy::V1 {
                mount: "/sys/fs/cgroup/memory".into()
            }
        );
        assert_eq!(
            l.controllers["io"],
            Hierarchy::V1 {
                mount: "/sys/fs/cgroup/blkio".into()
            }
        );
        assert_eq!(l.unified.as_deref(), Some("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn pure_v2_uses_the_unified_root() {
        let l = detect(PURE_V2, "cpuset cpu io memory hugetlb pids rdma misc", "");
        for c in CONTROLLERS {
            assert_eq!(
                l.controllers[*c],
                Hierarchy::V2 {
                    mount: "/sys/fs/cgroup".into()
                }
            );
        }
    }

    #[test]
    fn v2_without_controllers_offers_nothing() {
        assert!(detect(PURE_V2, "", "").controllers.is_empty());
    }

    #[test]
    fn cgroups_are_made_below_the_launchers_own() {
        let own =
            "12:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/batch\n0::/user.slice/u.scope\n";
        let mi = format!(
            "{HYBRID}33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        );
        let l = detect(&mi, "", own);
        // A `cpu` mount alone is not the `cpu,cpuacct` hierarchy: no line names it, so
        // its root is the launcher's (as the kernel says for a hierarchy it is not in).
        for (mount, dir) in [
            ("memory", "memory/process_api/abc"),
            ("pids", "pids"),
            ("unified", "unified/user.slice/u.scope"),
            ("cpu,cpuacct", "cpu,cpuacct/batch"),
            ("cpu", "cpu"),
        ] {
            let got = l.parent(&format!("/sys/fs/cgroup/{mount}"));
            assert_eq!(
                got,
                Some(std::path::Path::new(&format!("/sys/fs/cgroup/{dir}"))),
                "{mount}"
            );
        }
    }

    #[test]
    fn a_mounted_sub_tree_places_relative_to_its_root() {
        let mi = "41 31 0:38 /docker/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let l = detect(mi, "memory", "0::/docker/c1/app\n");
        assert_eq!(
            l.parent("/sys/fs/cgroup").unwrap(),
            std::path::Path::new("/sys/fs/cgroup/app")
        );
        // A cgroup outside the mounted sub-tree (or above a cgroup namespace's root) has
        // no place: nothing is made above the launcher.
        let l = detect(mi, "memory", "0::/docker/c2\n");
        assert_eq!(l.parent("/sys/fs/cgroup"), None);
        let l = detect(PURE_V2, "memory", "0::/../sibling\n");
        assert_eq!(l.parent("/sys/fs/cgroup"), None);
    }

    #[test]
    fn a_configured_parent_is_the_same_path_in_every_hierarchy() {
        let l = detect(HYBRID, "", "4:memory:/process_api/abc\n")
            .under("/batch/kakoi")
            .unwrap();
        for m in [
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/unified",
        ] {
            assert_eq!(
                l.parent(m).unwrap(),
                std::path::Path::new(m).join("batch/kakoi")
            );
        }
        for bad in ["batch", "/a/../b", "/./a"] {
            let e = detect(HYBRID, "", "").under(bad).unwrap_err();
            assert!(e.contains("absolute cgroup path"), "{e}");
        }
    }
}
