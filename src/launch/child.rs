//! The launcher's clone child: the plan's child steps, from the clone to `execve`,
//! through [`Os`].
//!
//! The clone child enters the namespaces and, in most launches, builds the new root, then
//! forks: it stays as the sandbox's init ([`super::init`]) and its child goes on to be the
//! payload (labels, working directory, standard descriptors, credentials, no_new_privs,
//! Landlock, seccomp, exec). A step that fails is reported to the launcher over the
//! `CLOEXEC` error pipe, which closes without data at the payload's exec.
//!
//! Every process here dies with the one that made it: `PR_SET_PDEATHSIG` is set first
//! thing and again after each change of credentials (which clears it), each time followed
//! by a check that the parent is still there (it may have died before the setting took).

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

use super::error::{At, Hint, StepError};
use super::os::{Os, Watch};
use super::plan::{By, Parent, Plan, Step};
use super::stdio::ChildStdio;
use super::trace::{mark, step as mark_step};

/// What the clone child inherits from the launcher for its steps.
pub struct Fds {
    /// "go": the launcher's set-up is done (and the signals to reset before exec).
    pub go: OwnedFd,
    /// The socket the idmapped binds arrive on.
    pub idmapped: Option<OwnedFd>,
    /// The socket the network namespace arrives on (made by the launcher meanwhile).
    pub net: Option<OwnedFd>,
    pub stdio: ChildStdio,
    /// The write end of the notes pipe: the init reports events on it.
    pub notes: OwnedFd,
    /// A pidfd of the launcher: readable once it has exited.
    pub launcher: OwnedFd,
    /// The sandbox's leased address (`mode veth`).
    pub address: Option<Ipv4Addr>,
    /// Detached: where to say "created", and the start FIFO (opened `O_PATH`).
    pub ready: Option<OwnedFd>,
    pub start: Option<OwnedFd>,
}

/// Run the child's steps; on failure, report over `err` (the error pipe) and exit. Never
/// returns. The pipe stays open here until the payload's exec closes it (`CLOEXEC`).
pub fn main<O: Os>(plan: &Plan, fds: Fds, err: OwnedFd, os: &mut O) -> ! {
    let e = match steps(plan, fds, os) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = e.exit_code();
    let _ = std::fs::File::from(err).write_all(&e.encode());
    super::sys::exit_now(code)
}

/// What the child's steps hand on to later ones.
struct State {
    go: Option<OwnedFd>,
    idmapped_sock: Option<OwnedFd>,
    idmapped: Vec<OwnedFd>,
    net: Option<OwnedFd>,
    stdio: Option<ChildStdio>,
    notes: Option<OwnedFd>,
    launcher: OwnedFd,
    address: Option<Ipv4Addr>,
    /// The signals the launcher ignores (from "go").
    ignored: u64,
    init: Option<libc::pid_t>,
    exe: Option<String>,
    ready: Option<OwnedFd>,
    start: Option<OwnedFd>,
}

/// The child's steps, in the plan's order; returns only on failure (the last is `execve`).
pub fn steps<O: Os>(
    plan: &Plan,
    fds: Fds,
    os: &mut O,
) -> Result<std::convert::Infallible, StepError> {
    let mut st = State {
        go: Some(fds.go),
        idmapped_sock: fds.idmapped,
        idmapped: Vec::new(),
        net: fds.net,
        stdio: Some(fds.stdio),
        notes: Some(fds.notes),
        launcher: fds.launcher,
        address: fds.address,
        ignored: 0,
        init: None,
        exe: None,
        ready: fds.ready,
        start: fds.start,
    };
    mark("child: started");
    for (i, step) in plan.steps.iter().enumerate() {
        if step.by() != By::Child {
            continue;
        }
        os.begin(i);
        mark_step(i, step);
        step_of(plan, step, &mut st, os)?;
    }
    Err(StepError::new("plan", "the plan has no exec step"))
}

/// Die with the parent: set the parent-death signal, then make sure the parent did not die
/// before it was set.
fn die_with<O: Os>(st: &State, parent: Parent, os: &mut O) -> Result<(), StepError> {
    os.prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .at("PR_SET_PDEATHSIG")?;
    let watch = match (parent, st.init) {
        (Parent::Init, Some(pid)) => Watch::Init(pid),
        _ => Watch::Launcher(st.launcher.as_fd()),
    };
    if os.parent_gone(watch) {
        os.exit_now(125);
    }
    Ok(())
}

/// Run one of the child's steps (the launcher's are no-ops here).
fn step_of<O: Os>(plan: &Plan, step: &Step, st: &mut State, os: &mut O) -> Result<(), StepError> {
    use Step::*;
    match step {
        DieWith(_)
        | Undumpable
        | LoginUid(_)
        | Session
        | AwaitGo
        | ReceiveIdmapped(_)
        | EnterUserNs { .. }
        | Join(_)
        | UnshareCgroup
        | UnshareTime(_)
        | ForkInit { .. } => namespace_step(step, st, os),
        Hostname(_) | JoinNet | Loopback | Eth0 { .. } | Sysctl(_) | Root { .. } => {
            sandbox_step(plan, step, st, os)
        }
        _ => payload_step(plan, step, st, os),
    }
}

/// The child's own process: death with the launcher, "go", its namespaces, the init.
fn namespace_step<O: Os>(step: &Step, st: &mut State, os: &mut O) -> Result<(), StepError> {
    match step {
        Step::DieWith(parent) => die_with(st, *parent, os)?,
        Step::Undumpable => os.prctl(libc::PR_SET_DUMPABLE, 0).at("PR_SET_DUMPABLE")?,
        Step::LoginUid(Some(uid)) => os.set_login_uid(*uid),
        Step::Session => os
            .setsid()
            .at("setsid")
            .hint("a new session keeps the payload from the caller's terminal")?,
        Step::AwaitGo => {
            mark("child: waiting for the parent");
            let go = st.go.take().expect("one go");
            match os.await_go(go) {
                Some(ignored) => st.ignored = ignored,
                None => os.exit_now(125),
            }
        }
        Step::ReceiveIdmapped(n) => {
            let sock = st
                .idmapped_sock
                .take()
                .ok_or_else(|| StepError::new("receive the idmapped binds", "no socket"))?;
            let v = os
                .recv_fds(sock.as_fd(), *n)
                .at("receive the idmapped binds")?;
            if v.len() != *n {
                return Err(StepError::new(
                    "receive the idmapped binds",
                    format!("got {} of {n}", v.len()),
                ));
            }
            st.idmapped = v;
        }
        Step::EnterUserNs { uid, gid } => {
            // Become root of the new user namespace: the clone kept the host's ids, which
            // the maps may not cover (files created with unmapped ids fail: EOVERFLOW).
            // See `ids::entry_ids` for an unprivileged caller's map of one id.
            os.setresgid(*gid)
                .at(format!("setresgid {gid} in the user namespace"))
                .hint(format!("the gid map must map {gid}"))?;
            os.setresuid(*uid)
                .at(format!("setresuid {uid} in the user namespace"))
                .hint(format!("the uid map must map {uid}"))?;
        }
        Step::Join(joins) => {
            for (k, path) in joins {
                os.setns(*k, path)?;
            }
        }
        Step::UnshareCgroup => os
            .unshare(libc::CLONE_NEWCGROUP)
            .at("unshare the cgroup namespace")?,
        Step::UnshareTime(offsets) => {
            os.unshare(libc::CLONE_NEWTIME)
                .at("unshare the time namespace")?;
            let text: String = offsets
                .iter()
                .map(|(c, o)| format!("{c} {o} 0\n"))
                .collect();
            if !text.is_empty() {
                os.write_time_offsets(&text)?;
            }
        }
        Step::ForkInit { subreaper } => {
            let notes = st.notes.take().expect("one init");
            st.init = Some(os.fork_init(*subreaper, notes)?);
        }
        _ => {}
    }
    Ok(())
}

/// The sandbox: hostname, network, the new root.
fn sandbox_step<O: Os>(
    plan: &Plan,
    step: &Step,
    st: &mut State,
    os: &mut O,
) -> Result<(), StepError> {
    match step {
        Step::Hostname(h) => os.sethostname(h).at("sethostname")?,
        Step::JoinNet => {
            let sock = st
                .net
                .take()
                .ok_or_else(|| StepError::new("network", "no namespace socket"))?;
            os.join_netns(sock)?;
        }
        Step::Loopback => os.link_up("lo").at("bring lo up")?,
        Step::Sysctl(kv) => {
            for (k, v) in kv {
                os.write_sysctl(k, v)
                    .at(format!("sysctl {k}={v}"))
                    .hint("only the sysctls of the sandbox's own namespaces can be set")?;
            }
        }
        Step::Eth0 { address, gateway } => {
            let leased = st.address.zip(plan.steps.iter().find_map(|s| match s {
                Step::Lease(v) => Some(v.prefix),
                _ => None,
            }));
            let address = match (address, leased) {
                (Some(a), _) => Some(a.clone()),
                (None, Some((a, prefix))) => Some(format!("{a}/{prefix}")),
                (None, None) => None,
            };
            if let Some(a) = &address {
                os.ip(&["addr", "add", a, "dev", "eth0"])?;
            }
            os.ip(&["link", "set", "eth0", "up"])?;
            if let Some(g) = gateway {
                os.ip(&["route", "add", "default", "via", g])?;
            }
        }
        Step::Root { root, join_net } => {
            // The sandbox's own address, for its /etc/hosts.
            let leased = st.address.map(|a| a.to_string());
            let fixed = plan.steps.iter().find_map(|s| match s {
                Step::Eth0 {
                    address: Some(a), ..
                } => Some(a.split('/').next().unwrap_or(a).to_string()),
                _ => None,
            });
            let net = if *join_net { st.net.take() } else { None };
            let idmapped = std::mem::take(&mut st.idmapped);
            os.build_root(root, leased.or(fixed).as_deref(), idmapped, net)?;
            mark("child: root built");
        }
        _ => {}
    }
    Ok(())
}

/// The payload's process: labels, working directory, stdio, credentials, Landlock,
/// seccomp, exec.
fn payload_step<O: Os>(
    plan: &Plan,
    step: &Step,
    st: &mut State,
    os: &mut O,
) -> Result<(), StepError> {
    match step {
        Step::AppArmor(profile) => {
            let text = format!("exec {profile}");
            os.write_attr("/proc/thread-self/attr/apparmor/exec", &text)
                .or_else(|_| os.write_attr("/proc/thread-self/attr/exec", &text))
                .at("set the AppArmor exec profile")
                .hint(format!(
                    "load the profile first: apparmor_parser -r apparmor.profile (profile `{profile}`)"
                ))?;
        }
        Step::SELinux(label) => {
            os.write_attr("/proc/thread-self/attr/keycreate", label)
                .at("set the SELinux key label")?;
            os.write_attr("/proc/thread-self/attr/exec", label)
                .at("set the SELinux exec label")
                .hint("load the module first: semodule -i, or secilc with the base policy")?;
        }
        Step::Chdir(dir) => os.chdir(dir)?,
        Step::Stdio { uid, gid } => {
            let stdio = st.stdio.take().expect("one stdio");
            os.install_stdio(stdio, *uid, *gid)?;
        }
        Step::Cloexec => os.cloexec_from(3).at("mark fds CLOEXEC")?,
        Step::Lookup(argv0) => {
            let exe = os.lookup(argv0, &plan.env).ok_or_else(|| StepError {
                step: "execve".into(),
                errno: libc::ENOENT,
                message: format!("`{argv0}` not found in the sandbox's PATH"),
                hint: Some("the command is looked up inside the sandbox, after pivot_root".into()),
                stage: super::error::Stage::Exec,
            })?;
            st.exe = Some(exe);
            mark("child: labels, cwd");
        }
        Step::Seccomp(s) => os
            .seccomp(&s.program, s.flags)
            .at("install the seccomp filter")?,
        Step::Bounding(mask) => {
            for cap in 0..64u32 {
                if mask & (1u64 << cap) == 0 {
                    match os.drop_bounding(cap) {
                        // Past the kernel's last capability (no /proc read for
                        // cap_last_cap).
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                        r => r.at(format!("drop capability {cap} from the bounding set"))?,
                    };
                }
            }
        }
        Step::KeepCaps(on) => os
            .prctl(libc::PR_SET_KEEPCAPS, u64::from(*on) as libc::c_ulong)
            .at("PR_SET_KEEPCAPS")?,
        Step::Groups(groups) => {
            if let Err(e) = os.setgroups(groups) {
                // A user namespace may deny setgroups (its gid map was written without
                // newgidmap): fine when there are no groups to set.
                if !os.setgroups_denied() {
                    return Err(e).at("setgroups");
                }
                if !groups.is_empty() {
                    return Err(StepError::new(
                        "setgroups",
                        "supplementary groups need setgroups, which this user namespace denies",
                    ))
                    .hint(
                        "give the user subordinate ids (`subids`) so newgidmap can allow setgroups",
                    );
                }
            }
        }
        Step::Gid(g) => os
            .setresgid(*g)
            .at(format!("setresgid {g}"))
            .hint("the group must be mapped in the user namespace")?,
        Step::Uid(u) => os
            .setresuid(*u)
            .at(format!("setresuid {u}"))
            .hint("the user must be mapped in the user namespace")?,
        Step::Capset {
            effective,
            permitted,
            inheritable,
        } => os
            .capset(*effective, *permitted, *inheritable)
            .at("capset")?,
        Step::Ambient(caps) => {
            os.clear_ambient().at("clear ambient capabilities")?;
            for c in caps {
                os.raise_ambient(*c)
                    .at(format!("raise ambient capability {c}"))?;
            }
        }
        Step::NoNewPrivs => os
            .prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
            .at("PR_SET_NO_NEW_PRIVS")?,
        Step::Landlock(rules) => {
            mark("child: credentials");
            os.landlock(rules)
                .map_err(|e| StepError::new("landlock", e.to_string()))
                .hint("`landlock required` fails on kernels without the rights it needs; `landlock optional` degrades")?;
            mark("child: landlock");
        }
        Step::Signals => os.reset_signals(st.ignored).at("unblock signals")?,
        Step::AwaitStart(_) => {
            let (Some(ready), Some(fifo)) = (st.ready.take(), st.start.take()) else {
                return Err(StepError::new("create", "no start FIFO"));
            };
            os.await_start(ready, fifo)?;
        }
        Step::Exec(argv) => {
            let exe = st.exe.take().unwrap_or_else(|| argv[0].clone());
            let e = os.execve(&exe, argv, &plan.env);
            return Err(e)
                .at("execve")
                .hint("the filter and the access rules must allow executing the command")
                .map_err(StepError::at_exec);
        }
        // The launcher's steps.
        _ => {}
    }
    Ok(())
}
