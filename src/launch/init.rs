//! The sandbox's init: the process between the launcher and the payload.
//!
//! A payload that is pid 1 of its pid namespace ignores every signal it has no handler for
//! (the kernel protects a namespace's init), so one Ctrl-C or SIGTERM would not stop
//! `sleep`, and nothing reaps the orphans of its children. So the launcher's clone child
//! forks the payload and stays, as bubblewrap and tini do: it forwards every signal it
//! receives to the payload, reaps every child (orphans included: it is pid 1, or a child
//! subreaper without a pid namespace), and exits with the payload's status as soon as the
//! payload exits (the kernel then ends the rest of its pid namespace).
//!
//! It is kakoi's own code, so it gives up what it does not need first: every descriptor
//! but the one it reports notes on, every capability but CAP_KILL (the payload may change
//! its uid), and it is not dumpable, so the payload cannot ptrace it or open its
//! `/proc/1/exe` (the host's kakoi binary, CVE-2019-5736) without CAP_SYS_PTRACE over the
//! host's user namespace.

use std::os::fd::{AsFd, OwnedFd};

use super::sys;

/// Signals the init does not forward: those the kernel raises for a fault of the process
/// itself, and SIGCHLD, which tells it to reap.
const OWN: &[libc::c_int] = &[
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// Every signal the init forwards (and SIGCHLD), blocked before it forks so that none
/// arrives while it has no way to handle it; the payload unblocks them before exec.
pub fn signals() -> Vec<libc::c_int> {
    (1..=64)
        .filter(|s| !OWN.contains(s) && *s != libc::SIGKILL && *s != libc::SIGSTOP)
        // glibc reserves 32 and 33 for itself.
        .filter(|s| *s != 32 && *s != 33)
        .collect()
}

/// The init's loop, after the fork that made `payload`. `notes`: where to tell the
/// launcher about events it reports (a payload that asked to be traced). Never returns.
pub fn run(payload: libc::pid_t, notes: OwnedFd, subreaper: bool) -> ! {
    let code = match serve(payload, notes, subreaper) {
        Ok(code) => code,
        Err(_) => {
            // The init cannot do its work: the payload must not run unsupervised.
            let _ = sys::kill(payload, libc::SIGKILL);
            125
        }
    };
    sys::exit_now(code)
}

fn serve(payload: libc::pid_t, notes: OwnedFd, subreaper: bool) -> std::io::Result<i32> {
    use std::os::fd::AsRawFd;
    // Nothing of the launcher's but the notes pipe (its stdio included: the payload's own
    // copies are the ones that matter for end-of-file).
    let keep = notes.as_raw_fd() as u32;
    if keep > 0 {
        sys::close_range(0, keep - 1)?;
    }
    sys::close_range(keep + 1, u32::MAX)?;
    if subreaper {
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1)?;
    }
    sys::set_name(c"kakoi-init");
    // Only CAP_KILL: signalling a payload that changed its uid.
    const CAP_KILL: u32 = 5;
    let kill = 1u64 << CAP_KILL;
    for cap in 0..64u32 {
        if cap != CAP_KILL {
            match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                // Without CAP_SETPCAP (it was never held) the bounding set stays.
                _ => {}
            }
        }
    }
    let _ = sys::capset(kill, kill, 0);
    let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1);
    let mut set = signals();
    set.push(libc::SIGCHLD);
    let sfd = sys::SigSet::of(&set).signalfd()?;
    let mut notes = Some(notes);
    loop {
        // Reap first: the payload may have exited before the signalfd existed.
        while let Some(ev) = sys::wait_any()? {
            match ev {
                sys::ChildEvent::Exited(pid, exit) if pid == payload => {
                    return Ok(match exit {
                        sys::Exit::Code(c) => c,
                        sys::Exit::Signal(s) => 128 + s,
                    })
                }
                sys::ChildEvent::Exited(..) | sys::ChildEvent::Stopped(..) => {}
                sys::ChildEvent::Traced(pid, sig) => {
                    // PTRACE_TRACEME made the init its tracer: the init is no debugger,
                    // so the child goes on as if untraced (with its signal), instead of
                    // waiting for a tracer forever.
                    let _ = sys::ptrace_detach(pid, sig);
                    if let Some(n) = notes.take() {
                        let msg = format!(
                            "process {pid} asked to be traced by the sandbox's init (PTRACE_TRACEME); the init detached it\n"
                        );
                        let _ = sys::write(n.as_fd(), msg.as_bytes());
                    }
                }
            }
        }
        sys::poll_in(&[sfd.as_fd()], -1)?;
        while let Some(sig) = sys::read_signal(sfd.as_fd()) {
            if sig != libc::SIGCHLD {
                let _ = sys::kill(payload, sig);
            }
        }
    }
}
