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

/// Where each controller kakoi uses lives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub controllers: BTreeMap<String, Hierarchy>,
    /// The cgroup2 mount, if any (used for v2 controllers and `cgroup.kill`).
    pub unified: Option<String>,
}

/// The controllers kakoi sets limits with.
pub const CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "io"];

/// Read the layout from mountinfo text; `v2_controllers` is the content of the unified
/// root's `cgroup.controllers` (empty when there is none or it offers none).
pub fn detect(mountinfo: &str, v2_controllers: &str) -> Layout {
    let mut layout = Layout::default();
    let offered: Vec<&str> = v2_controllers.split_whitespace().collect();
    for line in mountinfo.lines() {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = left.split_whitespace().nth(4).unwrap_or("").to_string();
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap_or("");
        let superopts = r.nth(1).unwrap_or("");
        match fstype {
            "cgroup2" => {
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
            }
            "cgroup" => {
                for opt in superopts.split(',') {
                    // v1 calls the io controller blkio.
                    let name = if opt == "blkio" { "io" } else { opt };
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
            _ => {}
        }
    }
    // A v2 controller wins over a v1 mount of the same name only if v2 offers it, which
    // the kernel allows only when no v1 hierarchy holds it; keep v1 otherwise.
    layout
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
        let l = detect(HYBRID, "");
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
        let l = detect(PURE_V2, "cpuset cpu io memory hugetlb pids rdma misc");
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
        assert!(detect(PURE_V2, "").controllers.is_empty());
    }
}
