//! The sandbox's cgroups: the files each limit is written to (v1 and v2), and the
//! [`Cgroup`] a launch makes, joins, kills and removes (or pools, on v1). Where each
//! controller lives is the host's layout ([`crate::host::cgroups`]).

use serde::Serialize;

pub use crate::host::cgroups::{
    detect, host_layout, v1_or_hybrid_host, Hierarchy, Layout, CONTROLLERS,
};

/// One limit, written to the hierarchy that carries its controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub controller: &'static str,
    /// (file, value) pairs in the order they must be written.
    pub v2: Vec<(&'static str, String)>,
    pub v1: Vec<(&'static str, String)>,
}

/// The limits a policy sets, with the files of both cgroup versions.
pub fn limits(r: &policy_lang::ir::Resources) -> Vec<Limit> {
    let mut out = Vec::new();
    if r.memory.is_some() || r.memory_swap.is_some() {
        let mut v2 = Vec::new();
        let mut v1 = Vec::new();
        if let Some(m) = r.memory {
            v2.push(("memory.max", m.to_string()));
            v1.push(("memory.limit_in_bytes", m.to_string()));
        }
        if let Some(total) = r.memory_swap {
            // v2 limits swap alone; v1 limits memory + swap.
            let swap = total.saturating_sub(r.memory.unwrap_or(0));
            v2.push(("memory.swap.max", swap.to_string()));
            if r.memory.is_none() {
                v1.push(("memory.limit_in_bytes", total.to_string()));
            }
            v1.push(("memory.memsw.limit_in_bytes", total.to_string()));
        }
        out.push(Limit {
            controller: "memory",
            v2,
            v1,
        });
    }
    if let Some(n) = r.pids {
        out.push(Limit {
            controller: "pids",
            v2: vec![("pids.max", n.to_string())],
            v1: vec![("pids.max", n.to_string())],
        });
    }
    if r.cpu_quota.is_some() || r.cpu_weight.is_some() {
        let mut v2 = Vec::new();
        let mut v1 = Vec::new();
        if let Some(q) = r.cpu_quota {
            v2.push(("cpu.max", format!("{q} {}", r.cpu_period)));
            v1.push(("cpu.cfs_period_us", r.cpu_period.to_string()));
            v1.push(("cpu.cfs_quota_us", q.to_string()));
        }
        if let Some(w) = r.cpu_weight {
            v2.push(("cpu.weight", w.to_string()));
            // The inverse of the kernel's v1-to-v2 mapping: weight 100 is 1024 shares.
            v1.push(("cpu.shares", (w * 1024 / 100).max(2).to_string()));
        }
        out.push(Limit {
            controller: "cpu",
            v2,
            v1,
        });
    }
    if let Some(w) = r.io_weight {
        out.push(Limit {
            controller: "io",
            v2: vec![("io.weight", format!("default {w}"))],
            v1: vec![("blkio.weight", w.clamp(10, 1000).to_string())],
        });
    }
    out
}

/// Why a cgroup could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

/// The launcher's cgroup in the hierarchy at `mount` is not in what is mounted there.
fn unplaced(mount: &str) -> Error {
    Error {
        what: format!(
            "the launcher's own cgroup is outside the hierarchy mounted at {mount} (another cgroup namespace's mount?): kakoi makes the sandbox's cgroups only below it; give one with --cgroup-parent"
        ),
        source: std::io::Error::from_raw_os_error(libc::ENOENT),
    }
}

fn err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error { what, source }
}

/// The sandbox's cgroups: one directory per v1 hierarchy used, and a v2 leaf (on the
/// unified hierarchy, even on a hybrid host where it carries no controller: it gives
/// `CLONE_INTO_CGROUP`, `cgroup.kill` and a cgroup namespace root of the sandbox's own).
/// Dropping it kills what is left inside and removes the directories, or returns clean
/// v1 directories to the pool (see [`Cgroup::create_v1`]).
#[derive(Debug, Default)]
pub struct Cgroup {
    /// The directories' name (`kakoi-<launcher pid>`).
    pub name: String,
    pub v2: Option<std::path::PathBuf>,
    pub v1: Vec<V1>,
    /// Limits that could not be set, and why (allowed when the policy says `optional`).
    pub skipped: Vec<String>,
}

/// One v1 cgroup of the launch.
#[derive(Debug)]
pub struct V1 {
    pub dir: std::path::PathBuf,
    /// `<hierarchy>/kakoi-pool-<key>`: the slots of idle cgroups with exactly these limits,
    /// once they are all written.
    pool: Option<std::path::PathBuf>,
    /// Whether the directory goes back to the pool when the launch ends (set by
    /// [`Cgroup::offer_for_reuse`] after its checks).
    reuse: bool,
    /// Whether it is the memory controller's (its charge is checked before reuse).
    memory: bool,
}

/// Idle v1 cgroups kept per hierarchy and set of limits. Making a v1 cgroup allocates
/// the controllers' per-CPU state and some 40 control files, and removing one leaves the
/// kernel's workers to free them after an RCU grace period: together about a third of a
/// millisecond of CPU per launch on three hierarchies. Renaming an idle one costs a few µs.
pub const POOL_SLOTS: usize = 8;

/// A reused memory cgroup starts with what its last payload left charged (page cache of
/// files it was first to read); one that holds more than this is removed, not kept.
const POOL_MAX_CHARGE: u64 = 4 << 20;

/// Idle cgroups older than this are removed by the next launch in the same parent (and by
/// `kakoi gc`): a pool serves launches that follow each other, not a policy run once a day.
pub const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// At most this many idle cgroups are kept in one parent directory, all pools together;
/// the oldest beyond it are removed by the next launch.
pub const POOL_MAX_IDLE: usize = 32;

/// The name of this launch's cgroups: `kakoi-<launcher pid>-<its start time>`. The start
/// time (clock ticks after boot, `/proc/PID/stat`) tells a dead launcher's cgroup from a
/// live one's even when its pid was given to another process.
pub fn name() -> String {
    let (pid, start) = super::owner::me();
    format!("kakoi-{pid}-{start}")
}

/// What a directory named by kakoi is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A launch's cgroup whose launcher still runs.
    Live,
    /// A launch's cgroup whose launcher is gone (killed before it could clean up).
    Stale,
    /// An idle cgroup of the pool.
    Pooled,
}

/// What the cgroup directory named `name` is, or `None` if kakoi did not name it.
pub fn kind(name: &str) -> Option<Kind> {
    let rest = name.strip_prefix("kakoi-")?;
    if rest.starts_with("pool-") {
        return Some(Kind::Pooled);
    }
    let (pid, start) = match rest.split_once('-') {
        Some((p, s)) => (p.parse::<u32>().ok()?, Some(s.parse::<u64>().ok()?)),
        // Named by kakoi before 0.2: the pid alone.
        None => (rest.parse::<u32>().ok()?, None),
    };
    let alive = match start {
        Some(s) => super::owner::alive(&format!("{pid} {s}")),
        None => std::path::Path::new(&format!("/proc/{pid}")).exists(),
    };
    Some(if alive { Kind::Live } else { Kind::Stale })
}

/// Create a cgroup directory (and a configured parent that is missing).
fn make_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by a killed launcher with the same pid and start time (after a reboot).
            std::fs::remove_dir(dir).map_err(|_| e)?;
            std::fs::create_dir(dir)
        }
        // A configured parent that does not exist yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir.parent().ok_or(e)?)?;
            std::fs::create_dir(dir)
        }
        r => r,
    }
}

/// Remove a cgroup and the cgroups below it (deepest first); fails on one that holds tasks.
fn remove_tree(dir: &std::path::Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    // A killed launcher's sandbox may still be exiting (PDEATHSIG): busy for a moment.
    for i in 0..50 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && i < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(4))
            }
            r => return r,
        }
    }
    Ok(())
}

/// How long ago a directory was last returned to its pool (its mtime, set by [`put_back`]).
fn idle_for(meta: &std::fs::Metadata) -> std::time::Duration {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or_default()
}

/// In one parent directory: remove the cgroups of launchers that were killed before they
/// could clean up (their payloads died with them: PDEATHSIG), so SIGKILLed launches do not
/// accumulate, and idle pooled cgroups beyond [`POOL_IDLE`] and [`POOL_MAX_IDLE`].
fn collect_stale(parent: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    let mut pooled = Vec::new();
    for e in rd.flatten() {
        let n = e.file_name();
        match n.to_str().and_then(kind) {
            Some(Kind::Stale) => {
                let _ = remove_tree(&e.path());
            }
            Some(Kind::Pooled) => {
                let idle = e.metadata().map(|m| idle_for(&m)).unwrap_or_default();
                pooled.push((idle, e.path()));
            }
            _ => {}
        }
    }
    // Longest idle first.
    pooled.sort_by_key(|p| std::cmp::Reverse(p.0));
    let excess = pooled.len().saturating_sub(POOL_MAX_IDLE);
    for (i, (idle, dir)) in pooled.iter().enumerate() {
        if i < excess || *idle > POOL_IDLE {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// What `kakoi gc` found: each directory removed (or, with `dry_run`, to remove), and
/// each that could not be, with why.
#[derive(Debug, Default, Serialize)]
pub struct Collected {
    pub removed: Vec<std::path::PathBuf>,
    pub failed: Vec<(std::path::PathBuf, String)>,
    /// Cgroups of launches still running, left alone.
    pub live: usize,
}

/// Remove, in every hierarchy of `layout`, every cgroup of a launcher that is gone and
/// every idle pooled cgroup, wherever in the tree they are. `dry_run` only lists them.
pub fn gc(layout: &Layout, dry_run: bool) -> Collected {
    let mut mounts: Vec<&String> = layout
        .controllers
        .values()
        .map(|h| match h {
            Hierarchy::V1 { mount } | Hierarchy::V2 { mount } => mount,
        })
        .chain(layout.unified.as_ref())
        .collect();
    mounts.sort();
    mounts.dedup();
    let mut out = Collected::default();
    for m in mounts {
        walk(std::path::Path::new(m), 0, dry_run, &mut out);
    }
    out
}

fn walk(dir: &std::path::Path, depth: usize, dry_run: bool, out: &mut Collected) {
    // Deeper trees than this are not made by any service manager.
    if depth > 32 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = e.path();
        match e.file_name().to_str().and_then(kind) {
            Some(Kind::Stale | Kind::Pooled) if dry_run => out.removed.push(path),
            Some(Kind::Stale | Kind::Pooled) => match remove_tree(&path) {
                Ok(()) => out.removed.push(path),
                Err(err) => out.failed.push((path, err.to_string())),
            },
            Some(Kind::Live) => out.live += 1,
            None => walk(&path, depth + 1, dry_run, out),
        }
    }
}

impl Cgroup {
    /// Create the v2 leaf (joined by `CLONE_INTO_CGROUP`) and write the limits of the
    /// controllers that live on v2. With `strict`, any limit that cannot be set is an
    /// error; otherwise it is recorded in `skipped`. The v1 part is [`Cgroup::create_v1`],
    /// done while the child sets itself up.
    ///
    /// Without a v2 limit the leaf is made only when `leaf` asks for it (for `cgroup.kill`
    /// when no pid namespace will end every process with the payload): each cgroup made
    /// and removed costs a launch about 100 µs.
    pub fn create(
        layout: &Layout,
        limits: &[Limit],
        strict: bool,
        leaf: bool,
    ) -> Result<Cgroup, Error> {
        Cgroup::create_named(layout, limits, strict, leaf, name())
    }

    /// [`Cgroup::create`] with the directories' name given (a detached container's).
    pub fn create_named(
        layout: &Layout,
        limits: &[Limit],
        strict: bool,
        leaf: bool,
        name: String,
    ) -> Result<Cgroup, Error> {
        let mut cg = Cgroup::default();
        cg.name = name;
        let v2_limit = limits.iter().any(|l| {
            matches!(
                layout.controllers.get(l.controller),
                Some(Hierarchy::V2 { .. })
            )
        });
        if let Some(u) = layout.unified.as_ref().filter(|_| leaf || v2_limit) {
            let Some(base) = layout.parent(u) else {
                if v2_limit {
                    cg.fail(strict, unplaced(u))?;
                }
                return Ok(cg);
            };
            let dir = base.join(&cg.name);
            match make_dir(&dir) {
                Ok(()) => cg.v2 = Some(dir),
                Err(e) => {
                    // Needed only if a v2 controller carries a limit.
                    if v2_limit {
                        cg.fail(strict, err(format!("create cgroup {}", dir.display()))(e))?;
                    }
                }
            }
        }
        for l in limits {
            if let (Some(Hierarchy::V2 { mount }), Some(dir)) =
                (layout.controllers.get(l.controller), cg.v2.clone())
            {
                let r = cg
                    .enable_v2_controller(std::path::Path::new(mount), &dir, l.controller)
                    .and_then(|()| write_all(&dir, &l.v2));
                if let Err(e) = r {
                    cg.fail(strict, e)?;
                }
            }
        }
        Ok(cg)
    }

    /// Create the v1 cgroups for `limits` and write their limits (then [`Cgroup::attach_v1`]).
    /// A limit whose controller is mounted nowhere is an error with `strict`.
    ///
    /// A hierarchy's cgroup is first taken from its pool: an idle `kakoi-pool-<key>-<slot>`
    /// directory, where the key is a hash of the limit files and values, is renamed to
    /// this launch's name (atomic: of launchers racing for a slot, one wins). It holds the
    /// same limits, no task, no child cgroup and no OOM kill (see [`Cgroup::offer_for_reuse`]).
    /// Only when the pool is empty is a directory made and its limits written.
    pub fn create_v1(
        &mut self,
        layout: &Layout,
        limits: &[Limit],
        strict: bool,
    ) -> Result<(), Error> {
        // The files of each hierarchy (co-mounted controllers share one), in the limits' order.
        let mut hierarchies: Vec<(&str, Vec<(&'static str, String)>)> = Vec::new();
        for l in limits {
            match layout.controllers.get(l.controller) {
                Some(Hierarchy::V2 { .. }) => {}
                Some(Hierarchy::V1 { mount }) => {
                    match hierarchies.iter_mut().find(|(m, _)| m == mount) {
                        Some((_, files)) => files.extend(l.v1.iter().cloned()),
                        None => hierarchies.push((mount, l.v1.clone())),
                    }
                }
                None => self.fail(
                    strict,
                    Error {
                        what: format!("no `{}` controller is available", l.controller),
                        source: std::io::Error::from_raw_os_error(libc::ENOENT),
                    },
                )?,
            }
        }
        for (mount, files) in hierarchies {
            let Some(parent) = layout.parent(mount) else {
                self.fail(strict, unplaced(mount))?;
                continue;
            };
            let dir = parent.join(&self.name);
            let pool = parent.join(format!("kakoi-pool-{}", pool_key(&files)));
            let memory = files.iter().any(|(f, _)| f.starts_with("memory."));
            // An idle cgroup whose limits were changed while it waited (by an administrator,
            // or a payload that reached its own files) is made anew: its limits are checked,
            // here, while the child builds its root.
            let claimed = claim(&pool, &dir);
            if claimed && !holds(&dir, &files) {
                // Removed, and made again below (which reports a directory left in place).
                let _ = std::fs::remove_dir(&dir);
            } else if claimed {
                self.v1.push(V1 {
                    dir,
                    pool: Some(pool),
                    reuse: false,
                    memory,
                });
                continue;
            }
            if let Err(e) = make_dir(&dir).map_err(err(format!("create cgroup {}", dir.display())))
            {
                self.fail(strict, e)?;
                continue;
            }
            let written = write_all(&dir, &files);
            self.v1.push(V1 {
                dir,
                // Not reusable under the key if a limit is missing.
                pool: written.is_ok().then_some(pool),
                reuse: false,
                memory,
            });
            if let Err(e) = written {
                self.fail(strict, e)?;
            }
        }
        Ok(())
    }

    /// Mark the v1 cgroups that may go back to the pool when the launch ends: those left
    /// as a fresh one would be. `clean` says no OOM kill happened in the sandbox (v1 counts
    /// them per cgroup, for good); each directory must also hold no task and no child
    /// cgroup, and a memory cgroup at most [`POOL_MAX_CHARGE`] bytes. `emptied`: the
    /// payload was pid 1 of its own pid namespace, whose end the kernel completes (every
    /// task in it exited, so out of its cgroups) before the payload can be waited for; the
    /// tasks are then not read.
    pub fn offer_for_reuse(&mut self, clean: bool, emptied: bool) {
        for v in &mut self.v1 {
            v.reuse = clean && v.pool.is_some() && idle(&v.dir, emptied, v.memory);
        }
    }

    /// A limit that could not be set: an error with `strict` (the cgroups made so far are
    /// removed), a recorded skip without.
    fn fail(&mut self, strict: bool, e: Error) -> Result<(), Error> {
        if strict {
            self.remove();
            Err(e)
        } else {
            self.skipped.push(e.to_string());
            Ok(())
        }
    }

    /// Enable a controller for the leaf in every ancestor's `cgroup.subtree_control`, from
    /// the hierarchy's `mount` down (a configured parent may be several levels deep). The
    /// leaf's parent is read first: when it has the controller, so do its ancestors.
    fn enable_v2_controller(
        &self,
        mount: &std::path::Path,
        leaf: &std::path::Path,
        ctrl: &str,
    ) -> Result<(), Error> {
        let enabled = |dir: &std::path::Path| {
            std::fs::read_to_string(dir.join("cgroup.subtree_control"))
                .is_ok_and(|cur| cur.split_whitespace().any(|c| c == ctrl))
        };
        let mut chain: Vec<&std::path::Path> = leaf
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(mount))
            .collect();
        if chain.first().is_none_or(|p| enabled(p)) {
            return Ok(());
        }
        chain.reverse();
        for dir in chain {
            if !enabled(dir) {
                let f = dir.join("cgroup.subtree_control");
                write_file(&f, &format!("+{ctrl}"))
                    .map_err(err(format!("write +{ctrl} to {}", f.display())))?;
            }
        }
        Ok(())
    }

    /// Remove the cgroups of launchers that were SIGKILLed, next to this launch's own.
    /// Called while the payload runs: it is not on the launch's path.
    pub fn collect_stale(&self) {
        for d in self.v2.iter().chain(self.v1.iter().map(|v| &v.dir)) {
            if let Some(parent) = d.parent() {
                collect_stale(parent);
            }
        }
    }

    /// Put `pid` into the v2 leaf, when it was made after the clone (see
    /// [`v1_or_hybrid_host`]).
    pub fn attach_v2(&self, pid: i32) -> Result<(), Error> {
        if let Some(d) = &self.v2 {
            let f = d.join("cgroup.procs");
            write_file(&f, &pid.to_string()).map_err(err(format!("write {}", f.display())))?;
        }
        Ok(())
    }

    /// Put `pid` into every v1 cgroup (v2 is joined by `CLONE_INTO_CGROUP`).
    pub fn attach_v1(&self, pid: i32) -> Result<(), Error> {
        for V1 { dir: d, .. } in &self.v1 {
            let f = d.join("cgroup.procs");
            write_file(&f, &pid.to_string()).map_err(err(format!("write {}", f.display())))?;
        }
        Ok(())
    }

    /// Whether the OOM killer killed something in the sandbox's memory cgroup.
    pub fn oom_kills(&self) -> u64 {
        let read = |p: std::path::PathBuf, key: &str| -> Option<u64> {
            super::sys::read_small(&p)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
        };
        let v2 = self
            .v2
            .as_ref()
            .and_then(|d| read(d.join("memory.events"), "oom_kill "));
        let v1 = self
            .v1
            .iter()
            .filter(|v| v.memory)
            .find_map(|v| read(v.dir.join("memory.oom_control"), "oom_kill "));
        v2.or(v1).unwrap_or(0)
    }

    /// Kill everything left in the cgroups: `cgroup.kill` on v2, SIGKILL to each member on
    /// v1 (the payload cannot escape a cgroup it cannot write to).
    pub fn kill_all(&self) {
        if let Some(d) = &self.v2 {
            let _ = write_file(&d.join("cgroup.kill"), "1");
        }
        for V1 { dir: d, .. } in &self.v1 {
            for _ in 0..100 {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                if procs.trim().is_empty() {
                    break;
                }
                for p in procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = super::sys::kill(p, libc::SIGKILL);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    /// Remove every directory, or return it to its pool (see [`Cgroup::offer_for_reuse`]).
    /// They are usually empty already (with a pid namespace, the kernel ends every process
    /// when the payload, its pid 1, exits), so removal is tried first; a cgroup still busy
    /// has what is left killed, and its removal is retried briefly while the kernel
    /// finishes tearing the killed tasks down.
    /// The directories, which this value no longer removes (a detached container's
    /// cgroups outlive the launcher: `kakoi oci delete` removes them).
    pub fn detach(&mut self) -> Vec<std::path::PathBuf> {
        self.v2
            .take()
            .into_iter()
            .chain(self.v1.drain(..).map(|v| v.dir))
            .collect()
    }

    pub fn remove(&mut self) {
        let gone = |d: &std::path::Path| match std::fs::remove_dir(d) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        self.v2 = self.v2.take().filter(|d| !gone(d));
        self.v1
            .retain(|v| !(v.reuse && v.pool.as_ref().is_some_and(|p| put_back(&v.dir, p))));
        self.v1.retain(|v| !gone(&v.dir));
        if self.v2.is_none() && self.v1.is_empty() {
            return;
        }
        self.kill_all();
        let busy: Vec<std::path::PathBuf> = self
            .v2
            .take()
            .into_iter()
            .chain(self.v1.drain(..).map(|v| v.dir))
            .collect();
        for d in busy {
            for i in 0..200 {
                if gone(&d) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_micros(200 * (i + 1)));
            }
        }
    }
}

/// The pool key of a hierarchy's limits: the first 8 bytes of the SHA-256 of its
/// `file=value` lines, in hex.
fn pool_key(files: &[(&'static str, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (f, v) in files {
        h.update(format!("{f}={v}\n"));
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Take an idle cgroup from `pool` (slots `<pool>-0` …) as `dir`.
fn claim(pool: &std::path::Path, dir: &std::path::Path) -> bool {
    let mut stale_removed = false;
    let mut k = 0;
    while k < POOL_SLOTS {
        let slot = slot(pool, k);
        match std::fs::rename(&slot, dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => k += 1,
            // A directory with this launcher's name, left by a killed launcher that had
            // the same pid: removed (if empty), and the slot tried again.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && !stale_removed => {
                stale_removed = true;
                if std::fs::remove_dir(dir).is_err() {
                    return false;
                }
            }
            // Renaming needs the same rights as making a cgroup; without them, making one
            // reports the error.
            Err(_) => return false,
        }
    }
    false
}

/// Put `dir` into the first free slot of `pool`; false if all are taken. The slot's mtime
/// records when it went idle (a rename keeps a kernfs directory's times).
fn put_back(dir: &std::path::Path, pool: &std::path::Path) -> bool {
    (0..POOL_SLOTS).any(|k| {
        let s = slot(pool, k);
        std::fs::rename(dir, &s).is_ok() && {
            let _ =
                std::fs::File::open(&s).and_then(|f| f.set_modified(std::time::SystemTime::now()));
            true
        }
    })
}

fn slot(pool: &std::path::Path, k: usize) -> std::path::PathBuf {
    let mut s = pool.as_os_str().to_owned();
    s.push(format!("-{k}"));
    s.into()
}

/// Whether a v1 cgroup is as a fresh one would be: no task, no child cgroup (a kernfs
/// directory's link count is 2 plus its subdirectories), and, for memory, at most
/// [`POOL_MAX_CHARGE`] bytes still charged.
fn idle(dir: &std::path::Path, emptied: bool, memory: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let no_tasks =
        emptied || super::sys::read_small(&dir.join("cgroup.procs")).is_ok_and(|t| t.is_empty());
    let no_children = std::fs::metadata(dir).is_ok_and(|m| m.nlink() == 2);
    let charge = if memory {
        super::sys::read_small(&dir.join("memory.usage_in_bytes"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    } else {
        0
    };
    no_tasks && no_children && charge <= POOL_MAX_CHARGE
}

/// Whether every limit file of `dir` holds the value the policy writes to it.
fn holds(dir: &std::path::Path, files: &[(&'static str, String)]) -> bool {
    files
        .iter()
        .all(|(f, v)| super::sys::read_small(&dir.join(f)).is_ok_and(|t| t.trim() == v))
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

fn write_all(dir: &std::path::Path, files: &[(&'static str, String)]) -> Result<(), Error> {
    for (f, v) in files {
        write_file(&dir.join(f), v)
            .map_err(err(format!("write {v} to {}", dir.join(f).display())))?;
    }
    Ok(())
}

/// Write a control file: opened write-only, without `std::fs::write`'s `O_CREAT |
/// O_TRUNC` (a control file always exists, and creating one takes the directory's lock).
fn write_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hierarchy where the launcher's cgroup is not visible has no place: making a
    /// cgroup there fails with ENOENT.
    #[test]
    fn an_unplaced_hierarchy_is_an_error() {
        assert!(matches!(
            unplaced("/sys/fs/cgroup").source.raw_os_error(),
            Some(libc::ENOENT)
        ));
    }

    #[test]
    fn names_tell_live_launchers_from_dead_ones() {
        let me = std::process::id();
        let mine = name();
        assert!(mine.starts_with(&format!("kakoi-{me}-")), "{mine}");
        assert_eq!(kind(&mine), Some(Kind::Live));
        // The same pid with another start time: a launcher that died, its pid reused.
        let start = crate::launch::owner::start_time(me).unwrap();
        assert_eq!(
            kind(&format!("kakoi-{me}-{}", start + 1)),
            Some(Kind::Stale)
        );
        // A pid no process has (above the kernel's pid_max limit).
        assert_eq!(kind("kakoi-4194305-12"), Some(Kind::Stale));
        assert_eq!(kind("kakoi-4194305"), Some(Kind::Stale));
        assert_eq!(kind(&format!("kakoi-{me}")), Some(Kind::Live));
        assert_eq!(kind("kakoi-pool-0123abcd-3"), Some(Kind::Pooled));
        for other in ["kakoi-app", "kakoi-1-x", "docker-1", "kakoi-"] {
            assert_eq!(kind(other), None, "{other}");
        }
    }
}
