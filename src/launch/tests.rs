//! The launch on the recording seam ([`Recorder`]): its order and values, without root,
//! and, for every shipped and test policy on several hosts, that the steps the plan
//! prints are exactly the steps that run, each doing its own work.

use std::os::fd::OwnedFd;

use policy_lang::ir::Policy;

use super::cgroup;
use super::error::Stage;
use super::os::{Recorder, RECORDED_PID};
use super::parent::{self, Outcome};
use super::plan::{self, By, Plan, Step};
use super::stdio::Tty;
use super::{child, stdio};
use crate::host::Facts;
use crate::seccomp::Host;

fn facts(uid: u32, v1: bool) -> Facts {
    Facts {
        arch: Host::X86_64,
        uid,
        gid: uid,
        groups: Vec::new(),
        apparmor: true,
        selinux: true,
        cgroup_v1: v1,
    }
}

fn layout(v1: bool) -> cgroup::Layout {
    if v1 {
        cgroup::detect(
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n38 31 0:35 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
            "",
            "7:memory:/limited\n",
        )
    } else {
        cgroup::detect(
            "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "cpu io memory pids",
            "0::/user.slice/kakoi.scope\n",
        )
    }
}

fn policy(text: &str) -> Policy {
    let (_, c) = policy_lang::check_str("t.kakoi", text);
    c.policy.expect("valid")
}

/// A program of four instructions stands for the compiled one.
const PROGRAM: [u8; 32] = [0; 32];

fn plan_for(p: &Policy, f: &Facts) -> Plan {
    let inputs = plan::Inputs {
        argv: vec!["/bin/true".into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        seccomp: p.seccomp.enabled.then(|| PROGRAM.to_vec()),
        landlock: crate::backends::landlock::generate(p),
        apparmor: p.apparmor.as_ref().map(|a| a.profile.clone()),
        selinux: p
            .selinux
            .as_ref()
            .map(|_| "system_u:system_r:kakoi_t:s0:c1,c2".into()),
        layout: Some(layout(f.cgroup_v1)),
        cgroup_parent: None,
        detach: None,
    };
    plan::build(p, inputs, f).expect("a plan")
}

fn null() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

/// Run the plan's launcher steps, then its child's, on the recorder.
fn record(plan: &Plan, f: &Facts) -> Recorder {
    let mut rec = Recorder::default();
    match parent::launch(plan, Tty::Never, f.uid, &mut rec) {
        Ok(Outcome::Exited { code: 0, .. }) => {}
        other => panic!("{other:?}"),
    }
    let fds = child::Fds {
        go: null(),
        idmapped: Some(null()),
        net: Some(null()),
        stdio: stdio::passed().0,
        notes: null(),
        launcher: null(),
        // The parent's lease (the recorder's: the network's first address).
        address: plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Lease(_)))
            .then(|| "10.88.0.2".parse().unwrap()),
        ready: Some(null()),
        start: Some(null()),
    };
    // The recorder's execve fails (ENOSYS): the child's steps end there.
    let e = child::steps(plan, fds, &mut rec).unwrap_err();
    assert_eq!(
        (e.stage, e.errno, e.step.as_str()),
        (Stage::Exec, libc::ENOSYS, "execve")
    );
    // The launcher and the child ran one after the other: in the plan's order (the two
    // meet at "go"), the calls are one order the real launch may take.
    rec.calls.sort_by_key(|(s, _)| *s);
    rec
}

/// The index of the first call starting with `prefix`.
fn at(rec: &Recorder, prefix: &str) -> usize {
    rec.position(prefix)
        .unwrap_or_else(|| panic!("no call `{prefix}` in {:#?}", rec.names()))
}

fn assert_order(rec: &Recorder, calls: &[&str]) {
    let idx: Vec<usize> = calls.iter().map(|c| at(rec, c)).collect();
    assert!(
        idx.windows(2).all(|w| w[0] < w[1]),
        "{calls:?} at {idx:?}: {:#?}",
        rec.names()
    );
}

const PR_SET_NO_NEW_PRIVS: &str = "prctl(38, 1)";

#[test]
fn a_hardened_launch_goes_in_the_safe_order() {
    let p = policy("filesystem {\n read \"/usr\"\n exec \"/usr/bin\"\n}\nresources {\n pids 10\n}\nprocess {\n argv [\"/usr/bin/true\"]\n}\n");
    let f = facts(0, false);
    let plan = plan_for(&p, &f);
    let rec = record(&plan, &f);
    assert_order(
        &rec,
        &[
            "prepare_stdio",
            "cloexec_from(3)",
            "cgroup_create([pids.max=10]",
            "block_signals",
            "clone3(",
            "build_root",
            "await_go",
            "new_netns",
            "go",
            "fork_init",
            "chdir(/)",
            "install_stdio(0, 0)",
            "capbset_drop(",
            "setgroups([])",
            "setresgid(0)",
            "setresuid(0)",
            "capset(",
            "ambient_clear",
            PR_SET_NO_NEW_PRIVS,
            "landlock(",
            "reset_signals",
            "seccomp(32 bytes",
            "execve(/bin/true",
        ],
    );
    // A pure v2 host: the child is born in its cgroup.
    assert!(plan.steps.iter().any(|s| matches!(
        s,
        Step::Clone {
            into_cgroup: true,
            ..
        }
    )));
}

#[test]
fn without_no_new_privs_the_filter_goes_in_before_the_drop() {
    let p = policy("process {\n no-new-privs off\n}\n");
    let f = facts(0, false);
    let rec = record(&plan_for(&p, &f), &f);
    assert_order(&rec, &["seccomp(", "capbset_drop(", "capset(", "execve("]);
    assert!(rec.position(PR_SET_NO_NEW_PRIVS).is_none());
}

#[test]
fn v1_hosts_join_every_cgroup_after_the_clone() {
    let p = policy("resources {\n memory 64M\n pids 10\n}\n");
    let f = facts(0, true);
    let plan = plan_for(&p, &f);
    let rec = record(&plan, &f);
    assert_order(
        &rec,
        &[
            "clone3(",
            "cgroup_create(",
            &format!("cgroup_join({RECORDED_PID}, v2 true)"),
            "go",
        ],
    );
    assert!(rec
        .names()
        .iter()
        .any(|c| c.starts_with("clone3(") && c.ends_with("into cgroup false)")));
    let cg = plan
        .steps
        .iter()
        .find(|s| matches!(s, Step::Cgroup(_)))
        .unwrap()
        .to_string();
    // The files and values the launcher writes, below the caller's own cgroup.
    assert!(
        cg.contains("memory.limit_in_bytes=67108864 (v1, /sys/fs/cgroup/memory/limited/kakoi-<pid>-<start>)")
            && cg.contains("write the child's pid into each cgroup"),
        "{cg}"
    );
}

/// `--dry-run` prints what the launcher writes, not the policy's words: v1 clamps
/// `blkio.weight` to 1000, v2 limits swap alone (`memory.swap.max` = swap - memory).
#[test]
fn the_cgroup_step_names_the_files_the_launcher_writes() {
    let p = policy("resources {\n memory 64M\n memory-swap 128M\n io-weight 5000\n}\n");
    for (v1, want) in [
        (
            true,
            ["memory.memsw.limit_in_bytes=134217728", "blkio.weight=1000"],
        ),
        (
            false,
            ["memory.swap.max=67108864", "io.weight=default 5000"],
        ),
    ] {
        let plan = plan_for(&p, &facts(0, v1));
        let Some(Step::Cgroup(c)) = plan.steps.iter().find(|s| matches!(s, Step::Cgroup(_))) else {
            panic!("no cgroup step")
        };
        let text = c.to_string();
        for w in want {
            assert!(text.contains(w), "{text}");
        }
        // One source: the step holds what the launcher writes, and prints all of it.
        assert_eq!(c.limits, cgroup::limits(&p.resources));
        for l in &c.limits {
            for (f, v) in if v1 { &l.v1 } else { &l.v2 } {
                assert!(text.contains(&format!("{f}={v}")), "{f}={v}: {text}");
            }
        }
    }
}

#[test]
fn rootless_adds_a_user_namespace_and_maps_the_caller() {
    let p = policy("resources {\n cpu 0.5\n cgroup required\n}\n");
    let f = facts(1000, false);
    let plan = plan_for(&p, &f);
    assert!(plan
        .warnings
        .iter()
        .any(|w| w.contains("a user namespace is added")));
    let rec = record(&plan, &f);
    let maps =
        format!("write_maps({RECORDED_PID}, uid [(0, 1000, 1)], gid [(0, 1000, 1)], helper false)");
    assert_order(
        &rec,
        &[
            "clone3(",
            &maps,
            "go",
            "prctl(4, 0)",
            "setresgid(0)",
            "setresuid(0)",
            "build_root",
        ],
    );
    // The child waits for its maps before anything else.
    assert!(
        at(&rec, "await_go") < at(&rec, "prctl(4, 0)"),
        "{:#?}",
        rec.names()
    );
}

#[test]
fn published_ports_and_nat_come_before_the_clone_and_veth_after() {
    let p = policy("network {\n mode veth\n nat on\n publish 8080 -> 80\n}\n");
    let f = facts(0, false);
    let rec = record(&plan_for(&p, &f), &f);
    let host = format!("kk{RECORDED_PID}");
    assert_order(
        &rec,
        &[
            "lease(10.88.0.2)",
            "nat(10.88.0.0/16)",
            "publish(10.88.0.2, 1 ports)",
            "clone3(",
            &format!("ip link add {host} type veth peer name eth0 netns {RECORDED_PID}"),
            &format!("ip addr add 10.88.0.1 peer 10.88.0.2/32 dev {host}"),
            &format!("ip link set {host} up"),
            "go",
            "link_up(lo)",
            "ip addr add 10.88.0.2/16 dev eth0",
            "ip route add default via 10.88.0.1",
            "build_root(address Some(\"10.88.0.2\")",
            "execve(",
            &format!("ip link del {host}"),
        ],
    );
}

/// For each policy, on a root and a rootless host with v2 and v1 cgroups: every call
/// belongs to a step, the steps run in the plan's order, and every printed step runs.
/// Some values are checked against the printed step's own.
#[test]
fn every_printed_step_runs_and_nothing_runs_outside_one() {
    let mut policies: Vec<(String, Policy)> = crate::profiles::names()
        .map(|n| {
            let l = crate::cli::load(n).unwrap_or_else(|_| panic!("{n} loads"));
            (n.to_string(), l.policy.expect("shipped policies are valid"))
        })
        .collect();
    for dir in ["fixtures/valid", "fixtures/workloads"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "kakoi") {
                let name = path.to_string_lossy().into_owned();
                let mut p = crate::cli::load(&name)
                    .unwrap_or_else(|_| panic!("{name} loads"))
                    .policy
                    .unwrap_or_else(|| panic!("{name} is valid"));
                // Subordinate ranges are the host's (/etc/subuid): the ids module's.
                p.identity.subids = None;
                policies.push((name, p));
            }
        }
    }
    policies.push((
        "features".into(),
        policy("namespaces {\n time on\n cgroup on\n}\nprocess {\n init off\n hostname \"h\"\n time-offset monotonic 1d\n no-new-privs off\n}\nresources {\n rlimit nofile 64 128\n}\nnetwork {\n mode macvlan\n macvlan {\n parent \"eth9\"\n address \"192.0.2.5/24\"\n gateway \"192.0.2.1\"\n }\n}\n"),
    ));
    policies.push((
        "bridge".into(),
        policy("network {\n mode veth\n veth {\n bridge \"kakoi0\"\n }\n nat on\n publish 8080 -> 80 udp\n}\n"),
    ));
    assert!(policies.len() >= 8, "{}", policies.len());
    for (name, p) in &policies {
        for (uid, v1) in [(0, false), (0, true), (1000, false)] {
            let f = facts(uid, v1);
            if uid != 0 && p.network.mode.eth0().is_some() {
                continue; // refused by `prepare` before any plan (root only)
            }
            let plan = plan_for(p, &f);
            let rec = record(&plan, &f);
            let ctx = format!("{name} (uid {uid}, v1 {v1})");
            // Nothing outside a step.
            assert!(
                rec.calls.iter().all(|(s, _)| s.is_some()),
                "{ctx}: calls outside every step: {:#?}",
                rec.calls
            );
            // Each side's calls in the plan's order.
            for by in [By::Parent, By::Child] {
                let order: Vec<usize> = rec
                    .calls
                    .iter()
                    .filter_map(|(s, _)| *s)
                    .filter(|s| plan.steps[*s].by() == by)
                    .collect();
                assert!(order.windows(2).all(|w| w[0] <= w[1]), "{ctx}: {order:?}");
            }
            // Every step runs (but those with nothing to do: an unmapped login uid, a
            // bounding set that keeps every capability).
            for (i, s) in plan.steps.iter().enumerate() {
                let calls: Vec<&str> = rec
                    .calls
                    .iter()
                    .filter(|(x, _)| *x == Some(i))
                    .map(|(_, c)| c.as_str())
                    .collect();
                let idle = matches!(s, Step::LoginUid(None))
                    || matches!(s, Step::Bounding(m) if m.count_ones() >= 41);
                assert!(
                    idle || !calls.is_empty(),
                    "{ctx}: step {} `{s}` ran nothing",
                    i + 1
                );
                // The values the step prints are the values used.
                let expect: Vec<String> = match s {
                    Step::Rlimits(l) => l
                        .iter()
                        .map(|r| {
                            format!(
                                "setrlimit({RECORDED_PID}, {}, {}, {})",
                                r.resource, r.soft, r.hard
                            )
                        })
                        .collect(),
                    Step::Capset {
                        effective,
                        permitted,
                        inheritable,
                    } => {
                        vec![format!(
                            "capset({effective:#x}, {permitted:#x}, {inheritable:#x})"
                        )]
                    }
                    Step::Gid(g) => vec![format!("setresgid({g})")],
                    Step::Uid(u) => vec![format!("setresuid({u})")],
                    Step::Groups(g) => vec![format!("setgroups({g:?})")],
                    Step::Hostname(h) => vec![format!("sethostname({h})")],
                    Step::Chdir(c) => vec![format!("chdir({c})")],
                    Step::Seccomp(x) => vec![format!(
                        "seccomp({} bytes, {:#x})",
                        x.program.len(),
                        x.flags
                    )],
                    Step::Exec(argv) => vec![format!("execve({}, {argv:?})", argv[0])],
                    Step::Ambient(caps) => std::iter::once("ambient_clear".to_string())
                        .chain(caps.iter().map(|c| format!("ambient_raise({c})")))
                        .collect(),
                    Step::Bounding(m) => (0..41)
                        .filter(|c| m & (1u64 << c) == 0)
                        .map(|c| format!("capbset_drop({c})"))
                        .collect(),
                    Step::SELinux(l) => vec![
                        format!("write /proc/thread-self/attr/keycreate {l}"),
                        format!("write /proc/thread-self/attr/exec {l}"),
                    ],
                    _ => continue,
                };
                assert_eq!(calls, expect, "{ctx}: step {} `{s}`", i + 1);
            }
        }
    }
}
