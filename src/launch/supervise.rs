//! The launcher while the payload runs: it forwards signals, relays the standard
//! descriptors and the terminal's size, enforces the wall-time limit, and returns the
//! payload's exit once its process is gone (the plan's `Supervise` step).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::error::{At, StepError};
use super::os::{Ended, Supervision};
use super::sys;

/// The signals the launcher forwards to the payload (blocked from before the clone and
/// read from a signalfd).
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Supervise until the payload's process ends, then reap it.
pub fn run(s: Supervision) -> Result<Ended, StepError> {
    let Supervision {
        pidfd,
        signals,
        relay,
        cgroup,
        timeout_ms,
        bare_pid1,
    } = s;
    let deadline = timeout_ms.map(|t| Instant::now() + Duration::from_millis(t));
    let mut timed_out = false;
    let mut interrupts = 0;
    loop {
        let wait_ms = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut interest = vec![(pidfd.as_fd(), libc::POLLIN), (signals, libc::POLLIN)];
        interest.extend(relay.interest());
        let rev = sys::poll(&interest, wait_ms).at("poll")?;
        drop(interest);
        if rev[0] != 0 {
            break;
        }
        relay.ready(&rev[2..]);
        if rev[1] != 0 {
            while let Some(sig) = sys::read_signal(signals) {
                match sig {
                    libc::SIGCHLD | libc::SIGPIPE => continue,
                    // The sandbox's terminal takes the caller's size; its kernel tells
                    // the foreground process group.
                    libc::SIGWINCH if relay.resize() => continue,
                    _ => {}
                }
                // Without kakoi's init, a payload that is pid 1 of its namespace ignores
                // signals it has no handler for: a second interrupt kills it.
                let sig = if bare_pid1 && matches!(sig, libc::SIGINT | libc::SIGTERM | libc::SIGHUP)
                {
                    interrupts += 1;
                    if interrupts > 1 {
                        libc::SIGKILL
                    } else {
                        sig
                    }
                } else {
                    sig
                };
                let _ = sys::pidfd_send_signal(pidfd, sig);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
            timed_out = true;
            let _ = sys::pidfd_send_signal(pidfd, libc::SIGKILL);
            cgroup.kill_all();
        }
    }
    let exit = sys::wait_pidfd(pidfd).at("wait for the payload")?;
    Ok(Ended { exit, timed_out })
}
