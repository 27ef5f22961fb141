//! The launcher (`kakoi run`): [`run::prepare`] settles what a launch needs and builds
//! the typed plan ([`plan`], printed by `kakoi run --dry-run` and `kakoi plan`); the
//! launcher runs that plan: its own steps in [`parent`], the child's in [`child`], the
//! payload's supervision in [`supervise`], every effect through the [`os::Os`] seam
//! (the real one, or a recorder for tests). The new root is built in [`mounts`], cgroups
//! in [`cgroup`], networks in [`net`], id maps in [`ids`]. Every `unsafe` block of the
//! launcher is in [`sys`].

pub mod cgroup;

/// What kakoi leaves on the host for a launch (a cgroup's name, an address lease, a
/// published port's rule) names its launcher as "PID START": the pid and the process's
/// start time (clock ticks after boot, `/proc/PID/stat`), which tell a launcher that is
/// gone from a later process given the same pid.
pub(crate) mod owner {
    /// A process's start time, if it runs.
    pub fn start_time(pid: u32) -> Option<u64> {
        stat(pid).map(|(_, start)| start)
    }

    /// A process's state letter (`R`, `S`, `Z`…) and start time, if it exists.
    pub fn stat(pid: u32) -> Option<(char, u64)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: fields after the
        // last ')'; the state is field 3, the start time field 22.
        let mut f = stat.rsplit_once(')')?.1.split_whitespace();
        let state = f.next()?.chars().next()?;
        Some((state, f.nth(18)?.parse().ok()?))
    }

    /// This process's mark: (pid, start time).
    pub fn me() -> (u32, u64) {
        let pid = std::process::id();
        (pid, start_time(pid).unwrap_or(0))
    }

    /// The mark "PID START" at the start of `text`.
    fn parse(text: &str) -> Option<(u32, u64)> {
        let mut f = text.split_whitespace();
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    }

    /// Whether the launcher `text` marks still runs (false for no mark).
    pub fn alive(text: &str) -> bool {
        parse(text).is_some_and(|(pid, start)| start_time(pid) == Some(start))
    }

    /// Whether `text` marks a launcher that is gone (false for no mark).
    pub fn gone(text: &str) -> bool {
        parse(text).is_some_and(|(pid, start)| start_time(pid) != Some(start))
    }
}
pub mod child;
pub mod error;
pub mod ids;
mod init;
pub mod mounts;
pub mod net;
pub mod os;
pub mod parent;
pub mod plan;
pub mod run;
pub mod stdio;
pub mod supervise;
#[allow(unsafe_code)]
pub mod sys;
#[cfg(test)]
mod tests;
pub mod trace;
