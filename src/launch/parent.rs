//! The launcher's side of the plan: its steps, in order, through [`Os`]. The clone
//! child runs the child's steps ([`super::child`]); the two meet at "go" (the child's
//! steps before `AwaitGo` run while the launcher does its own after the clone).

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::cgroup::{self, Cgroup, Layout};
use super::child;
use super::error::{At, Hint, StepError};
use super::net::{Lease, Published};
use super::os::{Os, Supervision};
use super::plan::{By, CgroupStep, Plan, Step};
use super::stdio::Tty;
use super::sys;
use super::trace::{mark, step as mark_step};

/// How the launch ended.
#[derive(Debug)]
pub enum Outcome {
    /// The payload ran; its exit code (128 + signal when killed).
    Exited {
        code: i32,
        timed_out: bool,
        oom_kills: u64,
    },
    /// A step before exec failed.
    Failed(StepError),
    /// Detached: the container waits for its start (its command's pid on the host, and
    /// its cgroups, which outlive the launcher).
    Created {
        pid: i32,
        cgroups: Vec<std::path::PathBuf>,
    },
}

/// The host end of the sandbox's veth pair.
fn veth_host_name(pid: i32) -> String {
    format!("kk{pid}")
}

/// What the launcher's steps hand on to later ones.
#[derive(Default)]
struct State {
    address: Option<Ipv4Addr>,
    lease: Option<Lease>,
    published: Option<Published>,
    /// The payload's side of the standard descriptors (until the clone), the launcher's.
    child_stdio: Option<super::stdio::ChildStdio>,
    relay: Option<super::stdio::ParentStdio>,
    cgroup: Cgroup,
    layout: Option<Layout>,
    /// The pid and pidfd of the clone child.
    child: Option<(libc::pid_t, OwnedFd)>,
    /// The child's fds the launcher keeps until after the clone, and its own ends.
    net_sock: Option<OwnedFd>,
    fd_sock: Option<OwnedFd>,
    go: Option<(OwnedFd, OwnedFd)>,
    err: Option<OwnedFd>,
    notes: Option<OwnedFd>,
    signals: Option<OwnedFd>,
    /// The CPUs the launcher could use, when the child was moved off its CPU.
    spread: Option<libc::cpu_set_t>,
    /// A host veth to remove at the end.
    veth: Option<String>,
    /// Detached: the read end of the child's "created".
    ready: Option<OwnedFd>,
}

impl State {
    fn cleanup_veth<O: Os>(&self, os: &mut O) {
        // Not /sys/class/net: sysfs may belong to another network namespace (nsenter
        // switches only the network); an absent link is just an error ignored here.
        if let Some(host) = &self.veth {
            let _ = os.ip(&["link", "del", host]);
        }
    }
}

fn cgroup_error(rootless: bool) -> impl Fn(cgroup::Error) -> StepError {
    move |e: cgroup::Error| StepError {
        step: "cgroup".into(),
        errno: e.source.raw_os_error().unwrap_or(0),
        message: e.to_string(),
        hint: Some(if rootless {
            "without root, kakoi needs a delegated cgroup (e.g. `systemd-run --user --scope -p Delegate=yes kakoi run …`), or `cgroup optional` in the policy".into()
        } else {
            "check that the controller is mounted and enabled".into()
        }),
        stage: super::error::Stage::Setup,
    }
}

/// The layout the cgroup step uses: the plan's, or the host's read now.
fn layout_of<O: Os>(c: &CgroupStep, os: &mut O) -> Result<Layout, StepError> {
    match &c.layout {
        Some(l) => Ok(l.clone()),
        None => {
            let l = os.cgroup_layout();
            match &c.parent {
                Some(p) => l.under(p).map_err(|m| StepError::new("cgroup", m)),
                None => Ok(l),
            }
        }
    }
}

/// Run the plan's launcher steps to the end (the clone child runs the child's steps).
pub fn launch<O: Os>(
    plan: &Plan,
    tty: Tty,
    launcher_uid: u32,
    os: &mut O,
) -> Result<Outcome, StepError> {
    let rootless = launcher_uid != 0;
    let mut st = State::default();
    let mut cloned = false;
    for (i, step) in plan.steps.iter().enumerate() {
        if step.by() != By::Parent {
            continue;
        }
        os.begin(i);
        // The cgroup step is traced once its layout is read (see below).
        if !matches!(step, Step::Cgroup(_)) {
            mark_step(i, step);
        }
        let r = parent_step(plan, i, step, tty, rootless, launcher_uid, &mut st, os);
        if matches!(step, Step::Clone { .. }) {
            cloned = true;
        }
        match r {
            Ok(Some(outcome)) => return Ok(outcome),
            Ok(None) => {}
            Err(e) if cloned && st.child.is_some() && !matches!(step, Step::Supervise { .. }) => {
                // A step after the clone failed: end the child, and prefer the step the
                // child failed before "go", which explains the launcher's failure better.
                if let Some((_, pidfd)) = &st.child {
                    os.kill(pidfd.as_fd(), libc::SIGKILL);
                    let _ = os.wait(pidfd.as_fd());
                }
                st.cleanup_veth(os);
                let mut report = Vec::new();
                if let Some(err) = st.err.take() {
                    let _ = std::fs::File::from(err).read_to_end(&mut report);
                }
                return Err(StepError::decode(&report).unwrap_or(e));
            }
            Err(e) => return Err(e),
        }
    }
    Err(StepError::new("plan", "the plan has no supervision step"))
}

#[allow(clippy::too_many_arguments)]
fn parent_step<O: Os>(
    plan: &Plan,
    index: usize,
    step: &Step,
    tty: Tty,
    rootless: bool,
    launcher_uid: u32,
    st: &mut State,
    os: &mut O,
) -> Result<Option<Outcome>, StepError> {
    let pid = || st.child.as_ref().map_or(0, |(p, _)| *p);
    match step {
        Step::Lease(v) => {
            let (a, lease) = os.lease(v)?;
            st.address = Some(a);
            st.lease = lease;
        }
        Step::Nat(v) => os.ensure_nat(v)?,
        Step::Publish(ports) => {
            let a = st
                .address
                .ok_or_else(|| StepError::new("publish", "no address was leased"))?;
            st.published = os.publish(a, ports)?;
        }
        Step::Preflight => {
            // Standard descriptors first: a closed one is opened on /dev/null before any
            // pipe below can take its number.
            let (child, relay) = os.prepare_stdio(tty).at("set up stdio")?;
            st.child_stdio = Some(child);
            st.relay = Some(relay);
            os.cloexec_from(3).at("mark fds CLOEXEC")?;
        }
        Step::Cgroup(c) => cgroup(index, c, rootless, st, os)?,
        Step::Clone {
            new,
            net_aside,
            into_cgroup,
            early,
        } => clone(plan, new, *net_aside, *into_cgroup, *early, st, os)?,
        Step::NetAside => {
            // First: the child waits for it before mounting /sys.
            let net = os
                .new_netns()
                .at("create the network namespace")
                .hint("creating a network namespace needs CAP_SYS_ADMIN")?;
            let sock = st
                .net_sock
                .as_ref()
                .ok_or_else(|| StepError::new("network", "no namespace socket"))?;
            os.send_fds(sock.as_fd(), &[net.as_fd()])
                .at("pass the network namespace")?;
        }
        Step::Rlimits(l) => {
            for r in l {
                os.setrlimit(pid(), r.resource, r.soft, r.hard)
                    .at(format!("rlimit {}", r.name))
                    .hint("raising a hard limit needs CAP_SYS_RESOURCE")?;
            }
        }
        Step::IdMaps(m) => os.write_maps(pid(), m, launcher_uid)?,
        Step::OomScoreAdj(n) => os
            .write_proc_of(pid(), "oom_score_adj", &n.to_string())
            .at("write oom_score_adj")
            .hint("a score below the launcher's own needs CAP_SYS_RESOURCE")?,
        Step::Idmapped(binds) => {
            let trees = os.idmapped(pid(), binds)?;
            let borrowed: Vec<_> = trees.iter().map(|t| t.as_fd()).collect();
            let sock = st
                .fd_sock
                .as_ref()
                .ok_or_else(|| StepError::new("idmap", "no descriptor socket"))?;
            os.send_fds(sock.as_fd(), &borrowed)
                .at("pass the idmapped binds")?;
        }
        Step::HostVeth(v) => host_veth(v, st, os)?,
        Step::Macvlan(parent) => {
            // Made straight in the sandbox's network namespace, as its eth0 (a
            // bridge-mode macvlan: the sandbox is one more host on the parent's network).
            let netns = pid().to_string();
            os.ip(&[
                "link", "add", "link", parent, "name", "eth0", "netns", &netns, "type", "macvlan",
                "mode", "bridge",
            ])
            .map_err(|e| {
                e.with_hint(format!("the parent link `{parent}` must exist on the host"))
            })?;
        }
        Step::Go => {
            if let Some(cpus) = st.spread.take() {
                // Every CPU the launcher could use, for the payload (see the clone).
                os.set_cpu_affinity(pid(), &cpus)
                    .at("restore the child's CPU affinity")?;
            }
            for s in &st.cgroup.skipped {
                eprintln!("kakoi: warning: cgroup limit not applied (`cgroup optional`): {s}");
            }
            mark("parent set-up done (v1 cgroups, rlimits, maps, veth)");
            if let Some((go_r, go_w)) = st.go.take() {
                os.go(go_w);
                drop(go_r);
            }
            st.cgroup.collect_stale();
        }
        Step::Supervise {
            timeout_ms,
            bare_pid1,
            pid_ns,
        } => return supervise(st, *timeout_ms, *bare_pid1, *pid_ns, os).map(Some),
        Step::Created => return created(st, os).map(Some),
        _ => {}
    }
    Ok(None)
}

/// The host end of the veth pair: made with the sandbox's end in its network namespace,
/// on the bridge or as a point-to-point link, up.
fn host_veth<O: Os>(v: &super::net::Veth, st: &mut State, os: &mut O) -> Result<(), StepError> {
    let address = st
        .address
        .ok_or_else(|| StepError::new("veth", "no address was leased"))?;
    let host = veth_host_name(st.child.as_ref().map_or(0, |(p, _)| *p));
    let netns = st.child.as_ref().map_or(0, |(p, _)| *p).to_string();
    st.veth = Some(host.clone());
    os.ip(&[
        "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &netns,
    ])?;
    match &v.bridge {
        Some(b) => {
            os.ensure_bridge(v, b)?;
            os.ip(&["link", "set", &host, "master", b])?;
        }
        // No bridge: a point-to-point link, the gateway's address on this end with
        // the sandbox's as its peer.
        None => os.ip(&[
            "addr",
            "add",
            &v.gateway.to_string(),
            "peer",
            &format!("{address}/32"),
            "dev",
            &host,
        ])?,
    }
    os.ip(&["link", "set", &host, "up"])?;
    Ok(())
}

/// The cgroup step: made (and, after the clone, joined) on the layout read now or at
/// planning.
fn cgroup<O: Os>(
    index: usize,
    c: &CgroupStep,
    rootless: bool,
    st: &mut State,
    os: &mut O,
) -> Result<(), StepError> {
    let layout = layout_of(c, os)?;
    if super::trace::on() {
        // As `--dry-run` prints it: with the hierarchies the files go to.
        let resolved = CgroupStep {
            layout: Some(layout.clone()),
            ..c.clone()
        };
        mark_step(index, &Step::Cgroup(resolved));
    }
    let error = cgroup_error(rootless);
    if c.after_clone {
        st.cgroup = os
            .cgroup_create(&layout, &c.limits, c.strict, c.leaf, c.name.as_deref())
            .map_err(&error)?;
        os.cgroup_join(
            &mut st.cgroup,
            &layout,
            &c.limits,
            c.strict,
            st.child.as_ref().map_or(0, |(p, _)| *p),
            true,
        )
        .map_err(&error)?;
    } else {
        st.cgroup = os
            .cgroup_create(&layout, &c.limits, c.strict, c.leaf, c.name.as_deref())
            .map_err(&error)?;
    }
    st.layout = Some(layout);
    Ok(())
}

/// The `Clone` step: the pipes and sockets the two sides share, the signals blocked, and
/// `clone3`; the child goes on with the plan's child steps and never returns here.
#[allow(clippy::too_many_arguments)]
fn clone<O: Os>(
    plan: &Plan,
    new: &[policy_lang::ir::NsKind],
    net_aside: bool,
    into_cgroup: bool,
    early: bool,
    st: &mut State,
    os: &mut O,
) -> Result<(), StepError> {
    let v2fd: Option<OwnedFd> = match (&st.cgroup.v2, into_cgroup) {
        (Some(d), true) => Some(
            std::fs::File::open(d)
                .map(OwnedFd::from)
                .at("open the cgroup")?,
        ),
        _ => None,
    };
    let net_pair = if net_aside {
        Some(sys::socketpair().at("create the namespace socket")?)
    } else {
        None
    };
    let idmapped = plan.steps.iter().find_map(|s| match s {
        Step::Idmapped(b) => Some(b.len()),
        _ => None,
    });
    let fd_pair = match idmapped {
        Some(_) => Some(sys::socketpair().at("create the descriptor socket")?),
        None => None,
    };
    let (go_r, go_w) = sys::pipe().at("create the sync pipe")?;
    let (err_r, err_w) = sys::pipe().at("create the error pipe")?;
    let (notes_r, notes_w) = sys::pipe().at("create the notes pipe")?;
    // Detached: the child says "created" on a pipe of its own (the error pipe stays open
    // until its exec), and waits on the FIFO, opened here, outside its root.
    let detach = plan.steps.iter().find_map(|s| match s {
        Step::AwaitStart(fifo) => Some(fifo),
        _ => None,
    });
    let (ready, start) = match detach {
        Some(fifo) => {
            let start = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(fifo)
                .at(format!("open {}", fifo.display()))?;
            (
                Some(sys::pipe().at("create the ready pipe")?),
                Some(OwnedFd::from(start)),
            )
        }
        None => (None, None),
    };
    // The child and the init check through it that the launcher is still there.
    let me = sys::pidfd_open(sys::getpid()).at("open the launcher's pidfd")?;
    // Signals to forward are blocked from before the clone, and read from a
    // signalfd. SIGPIPE too: a relay write to a payload that closed its stdin
    // gives EPIPE instead.
    let mut blocked: Vec<libc::c_int> = super::supervise::FORWARDED.to_vec();
    blocked.push(libc::SIGCHLD);
    blocked.push(libc::SIGPIPE);
    st.signals = Some(os.block_signals(&blocked).at("block signals")?);
    let flags = new
        .iter()
        .fold(0u64, |f, k| f | super::os::clone_flag(*k) as u64);
    mark(&format!(
        "cgroup ready; clone3 flags {flags:#x}{}",
        match (&st.cgroup.v2, &v2fd) {
            (Some(d), Some(_)) => format!(" with CLONE_INTO_CGROUP {}", d.display()),
            _ => String::new(),
        }
    ));
    // When the child builds its root while the launcher does its own set-up (the
    // network namespace, v1 cgroups: hundreds of µs of kernel work each), the
    // launcher moves the child to another CPU at once: the scheduler tends to
    // start a child on its parent's CPU, and the two would then take turns. The
    // child gets back the CPUs it inherited at "go", before anything of the
    // payload's runs.
    let spread = early.then(|| sys::cpu_affinity(0).ok()).flatten();
    let forked = os
        .clone3(flags, v2fd.as_ref().map(|f| f.as_fd()))
        .at("clone3")
        .hint("creating namespaces needs root, or user namespaces enabled for unprivileged users (sysctl kernel.unprivileged_userns_clone)")?;
    match forked {
        sys::Forked::Child => {
            drop((go_w, err_r, notes_r, st.signals.take(), st.relay.take()));
            let child_stdio = st.child_stdio.take().expect("stdio before the clone");
            let fds = child::Fds {
                go: go_r,
                idmapped: fd_pair.map(|(_, c)| c),
                net: net_pair.map(|(_, c)| c),
                stdio: child_stdio,
                notes: notes_w,
                launcher: me,
                address: st.address,
                ready: ready.map(|(_, w)| w),
                start,
            };
            child::main(plan, fds, err_w, os)
        }
        sys::Forked::Parent { pid, pidfd } => {
            // A placement hint only: the launch is correct wherever the child runs.
            let moved = spread
                .as_ref()
                .and_then(sys::cpus_but_this_one)
                .is_some_and(|others| os.set_cpu_affinity(pid, &others).is_ok());
            st.spread = spread.filter(|_| moved);
            // The launcher keeps a read end of "go" until it writes: a child that
            // failed early has closed its own, and the write must not raise SIGPIPE.
            st.go = Some((go_r, go_w));
            drop((err_w, notes_w, me));
            st.err = Some(err_r);
            st.notes = Some(notes_r);
            st.net_sock = net_pair.map(|(p, _)| p);
            st.fd_sock = fd_pair.map(|(p, _)| p);
            st.child = Some((pid, pidfd));
            st.ready = ready.map(|(r, _)| r);
            // The payload's ends of the relay pipes and of the terminal's socket.
            st.child_stdio = None;
        }
    }
    Ok(())
}

/// The `Created` step: the child waits for its start; the launcher leaves it, and its
/// cgroups, running.
fn created<O: Os>(st: &mut State, os: &mut O) -> Result<Outcome, StepError> {
    let (pid, pidfd) = st
        .child
        .take()
        .ok_or_else(|| StepError::new("create", "no child"))?;
    let ready = st
        .ready
        .take()
        .ok_or_else(|| StepError::new("create", "no ready pipe"))?;
    if !os.await_created(ready) {
        // It failed before its start, and says why on the error pipe.
        let _ = os.wait(pidfd.as_fd());
        let mut report = Vec::new();
        if let Some(err) = st.err.take() {
            let _ = std::fs::File::from(err).read_to_end(&mut report);
        }
        return Err(StepError::decode(&report).unwrap_or_else(|| {
            StepError::new("create", "the container exited before it was created")
        }));
    }
    Ok(Outcome::Created {
        pid,
        cgroups: st.cgroup.detach(),
    })
}

/// The `Supervise` step: the child's report (the error pipe closes at exec), the terminal,
/// the payload's run, and the clean-up.
fn supervise<O: Os>(
    st: &mut State,
    timeout_ms: Option<u64>,
    bare_pid1: bool,
    pid_ns: bool,
    os: &mut O,
) -> Result<Outcome, StepError> {
    let (_, pidfd) = st
        .child
        .take()
        .ok_or_else(|| StepError::new("supervise", "no child"))?;
    let mut report = Vec::new();
    if let Some(err) = st.err.take() {
        let _ = std::fs::File::from(err).read_to_end(&mut report);
    }
    if !report.is_empty() {
        let _ = os.wait(pidfd.as_fd());
        st.cleanup_veth(os);
        return Err(StepError::decode(&report).unwrap_or_else(|| {
            StepError::new("child", String::from_utf8_lossy(&report).to_string())
        }));
    }
    mark("the payload is executing");
    let mut relay = st.relay.take().expect("stdio set up");
    // A terminal: its master, which the payload's process sent before its exec.
    relay.attach_terminal().at("receive the terminal")?;
    let signals = st.signals.take().expect("signals blocked");
    let ended = os.supervise(Supervision {
        pidfd: pidfd.as_fd(),
        signals: signals.as_fd(),
        relay: &mut relay,
        cgroup: &st.cgroup,
        timeout_ms,
        bare_pid1,
    })?;
    mark("the payload exited");
    let mut cg = std::mem::take(&mut st.cgroup);
    let oom_kills = cg.oom_kills();
    // The pid namespace emptied the cgroup with its init: a v1 cgroup may be reused.
    cg.offer_for_reuse(oom_kills == 0, pid_ns);
    drop(cg);
    // What the payload wrote before it ended; the pipes end once every process holding
    // them is gone (at once with a pid namespace, whose processes die with its init).
    relay.drain(std::time::Duration::from_millis(250));
    st.cleanup_veth(os);
    let mut notes = String::new();
    if let Some(n) = st.notes.take() {
        let _ = std::fs::File::from(n).read_to_string(&mut notes);
    }
    for n in notes.lines() {
        eprintln!("kakoi: note: {n}");
    }
    mark("cleaned up");
    let code = match ended.exit {
        sys::Exit::Code(c) => c,
        sys::Exit::Signal(s) => 128 + s,
    };
    Ok(Outcome::Exited {
        code,
        timed_out: ended.timed_out,
        oom_kills,
    })
}
