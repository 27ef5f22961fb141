//! The payload's standard descriptors, and the launcher's relay for them.
//!
//! A payload never holds one of the host's open files: with it, root in the sandbox could
//! `fchmod` the file behind `> out` to set-user-ID, set file capabilities on it, reopen
//! `/proc/self/fd/0` for writing, or type into the caller's terminal (`TIOCSTI`) and change
//! its settings. So each of the caller's descriptors 0, 1 and 2 reaches the payload as:
//!
//! - itself, when it is an anonymous pipe or a socket (nothing on the host's file systems
//!   is behind it; this is what container engines pass too);
//! - the sandbox's own `/dev/null`, when it is the host's null device;
//! - otherwise (a file, a FIFO on a file system, a terminal, another device) a pipe, which
//!   the launcher relays to and from the caller's descriptor while the payload runs.
//!
//! With a terminal (`kakoi run -t`, the default when stdin is one), the payload gets a
//! pseudo-terminal of the sandbox's own devpts instance as its controlling terminal, and
//! the launcher relays it to the caller's terminal, which it puts in raw mode meanwhile.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use super::sys;

/// `PIPEFS_MAGIC`: an anonymous pipe (a FIFO on a disk has its file system's magic).
const PIPEFS_MAGIC: i64 = 0x5049_5045;

/// What the payload gets for one standard descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The caller's descriptor itself (an anonymous pipe or a socket).
    Pass,
    /// The sandbox's `/dev/null`.
    Null,
    /// A pipe the launcher relays.
    Relay,
}

/// How the caller's descriptor `fd` reaches the payload.
pub fn classify(fd: RawFd) -> Kind {
    let Ok(st) = sys::fstat_raw(fd) else {
        return Kind::Null;
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => Kind::Pass,
        libc::S_IFIFO if sys::fstatfs_raw(fd).ok() == Some(PIPEFS_MAGIC) => Kind::Pass,
        libc::S_IFCHR if st.st_rdev == libc::makedev(1, 3) => Kind::Null,
        _ => Kind::Relay,
    }
}

/// Whether the launch gives the payload a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tty {
    /// When the caller's stdin and stdout are both terminals (so `kakoi run -- cmd | grep`
    /// keeps a clean byte stream, and `< file` is relayed as a pipe).
    #[default]
    Auto,
    Always,
    Never,
    /// The payload gets the launcher's descriptors as they are, whatever they are (an OCI
    /// runtime's caller hands it pipes or files, and no launcher stays to relay).
    Inherit,
}

/// The payload's side of the standard descriptors, made before the clone.
pub struct ChildStdio {
    pub kinds: [Kind; 3],
    /// The payload's ends of the relay pipes (`None` where not relayed).
    pub ends: [Option<OwnedFd>; 3],
    /// A terminal: the socket the payload's process sends the pty master over.
    pub pty: Option<OwnedFd>,
}

/// The launcher's side: what it relays while the payload runs.
pub struct ParentStdio {
    pumps: Vec<Pump>,
    /// A terminal: the socket the master arrives on, then the master.
    pty_sock: Option<OwnedFd>,
    master: Option<OwnedFd>,
    /// The caller's terminal settings, restored when the relay ends.
    restore: Option<(RawFd, sys::Termios)>,
}

/// Standard descriptors passed as they are, nothing relayed (for the recording seam).
pub fn passed() -> (ChildStdio, ParentStdio) {
    (
        ChildStdio {
            kinds: [Kind::Pass; 3],
            ends: [None, None, None],
            pty: None,
        },
        ParentStdio {
            pumps: Vec::new(),
            pty_sock: None,
            master: None,
            restore: None,
        },
    )
}

/// Set up the standard descriptors for a launch. Descriptors 0–2 the caller left closed
/// are opened on `/dev/null` first, so that no pipe the launcher makes takes their number.
pub fn prepare(tty: Tty) -> std::io::Result<(ChildStdio, ParentStdio)> {
    for fd in 0..=2 {
        if sys::fstat_raw(fd).is_err() {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            let null = OwnedFd::from(null);
            if std::os::fd::AsRawFd::as_raw_fd(&null) != fd {
                sys::dup2(null.as_fd(), fd)?;
            } else {
                // It took the free slot: keep it open for the payload.
                std::mem::forget(null);
            }
        }
    }
    let terminal = match tty {
        Tty::Always => true,
        Tty::Never => false,
        Tty::Auto => sys::isatty(0) && sys::isatty(1),
        Tty::Inherit => return Ok(passed()),
    };
    let mut parent = ParentStdio {
        pumps: Vec::new(),
        pty_sock: None,
        master: None,
        restore: None,
    };
    if terminal {
        let (mine, theirs) = sys::socketpair()?;
        parent.pty_sock = Some(mine);
        let child = ChildStdio {
            kinds: [Kind::Relay; 3],
            ends: [None, None, None],
            pty: Some(theirs),
        };
        return Ok((child, parent));
    }
    let kinds = [classify(0), classify(1), classify(2)];
    let mut ends: [Option<OwnedFd>; 3] = [None, None, None];
    for (fd, kind) in kinds.iter().enumerate() {
        if *kind != Kind::Relay {
            continue;
        }
        let (r, w) = sys::pipe()?;
        if fd == 0 {
            sys::set_nonblocking(w.as_fd(), true)?;
            parent
                .pumps
                .push(Pump::new(Side::Host(0), Side::Fd(w), false));
            ends[0] = Some(r);
        } else {
            sys::set_nonblocking(r.as_fd(), true)?;
            parent
                .pumps
                .push(Pump::new(Side::Fd(r), Side::Host(fd as RawFd), true));
            ends[fd] = Some(w);
        }
    }
    Ok((
        ChildStdio {
            kinds,
            ends,
            pty: None,
        },
        parent,
    ))
}

impl ChildStdio {
    /// Whether the payload gets a terminal.
    pub fn terminal(&self) -> bool {
        self.pty.is_some()
    }
}

/// One end of a pump: the caller's standard descriptor, or a descriptor of the launcher.
enum Side {
    Host(RawFd),
    Fd(OwnedFd),
}

impl Side {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Side::Host(fd) => sys::stdio(*fd),
            Side::Fd(f) => f.as_fd(),
        }
    }
}

/// Copies from one descriptor to another through a buffer.
struct Pump {
    from: Side,
    to: Option<Side>,
    buf: Vec<u8>,
    /// Bytes of `buf` not yet written.
    pending: std::ops::Range<usize>,
    /// `from` reached its end.
    eof: bool,
    /// Output toward the caller (drained at the end), not input toward the payload.
    output: bool,
    /// Bytes to write once `from` ends (a terminal's end-of-file character).
    at_eof: Option<u8>,
}

impl Pump {
    fn new(from: Side, to: Side, output: bool) -> Pump {
        Pump {
            from,
            to: Some(to),
            buf: vec![0; 64 << 10],
            pending: 0..0,
            eof: false,
            output,
            at_eof: None,
        }
    }

    fn done(&self) -> bool {
        self.to.is_none() || (self.eof && self.pending.is_empty())
    }

    /// What to poll for: input on `from` when the buffer is empty, room on `to` when not.
    fn interest(&self) -> Option<(BorrowedFd<'_>, libc::c_short)> {
        if self.done() {
            return None;
        }
        if self.pending.is_empty() {
            (!self.eof).then(|| (self.from.fd(), libc::POLLIN))
        } else {
            self.to.as_ref().map(|t| (t.fd(), libc::POLLOUT))
        }
    }

    /// Move what can be moved without blocking on `from`.
    fn run(&mut self) {
        if self.pending.is_empty() && !self.eof {
            match sys::read(self.from.fd(), &mut self.buf) {
                Ok(0) => self.end(),
                Ok(n) => self.pending = 0..n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: a terminal master whose every slave is closed.
                Err(_) => self.end(),
            }
        }
        while !self.pending.is_empty() {
            let Some(to) = &self.to else {
                self.pending = 0..0;
                break;
            };
            match sys::write(to.fd(), &self.buf[self.pending.clone()]) {
                Ok(n) => self.pending.start += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The payload closed its stdin, or the caller's output is gone: stop
                    // writing (output is still read, so the payload never blocks on it).
                    if self.output {
                        self.pending = 0..0;
                    } else {
                        self.to = None;
                    }
                }
            }
        }
        if self.eof && self.pending.is_empty() && !self.output {
            // End of input: the payload's stdin pipe closes when its write end is dropped;
            // a terminal gets its end-of-file character instead, as a typed ^D would.
            if let (Some(c), Some(to)) = (self.at_eof.take(), &self.to) {
                let _ = sys::write(to.fd(), &[c]);
            }
            self.to = None;
        }
    }

    fn end(&mut self) {
        self.eof = true;
    }
}

impl ParentStdio {
    /// Once the payload's process has sent it (before its exec): the terminal's master,
    /// relayed to the caller's stdin and stdout, whose terminal goes into raw mode.
    pub fn attach_terminal(&mut self) -> std::io::Result<()> {
        let Some(sock) = self.pty_sock.take() else {
            return Ok(());
        };
        let Some(master) = sys::recv_fds(sock.as_fd(), 1)?.into_iter().next() else {
            // The payload's process failed before it sent it (and reports why).
            return Ok(());
        };
        sys::set_nonblocking(master.as_fd(), true)?;
        let input = master.try_clone()?;
        let output = master.try_clone()?;
        if sys::isatty(0) {
            let t = sys::tcgetattr(sys::stdio(0))?;
            sys::tcsetattr(sys::stdio(0), &t.raw())?;
            self.restore = Some((0, t));
        }
        let mut inp = Pump::new(Side::Host(0), Side::Fd(input), false);
        // End of a non-terminal stdin: the terminal's EOF character (^D).
        inp.at_eof = Some(4);
        self.pumps.push(inp);
        self.pumps
            .push(Pump::new(Side::Fd(output), Side::Host(1), true));
        self.master = Some(master);
        Ok(())
    }

    /// Copy the caller's window size to the sandbox's terminal (on SIGWINCH). False when
    /// there is no terminal to resize.
    pub fn resize(&self) -> bool {
        let Some(m) = &self.master else {
            return false;
        };
        let host = if sys::isatty(0) { 0 } else { 1 };
        if let Ok(w) = sys::window_size(sys::stdio(host)) {
            let _ = sys::set_window_size(m.as_fd(), &w);
        }
        true
    }

    /// The descriptors to poll with their events, in pump order (see [`Self::ready`]).
    pub fn interest(&self) -> Vec<(BorrowedFd<'_>, libc::c_short)> {
        self.pumps.iter().filter_map(Pump::interest).collect()
    }

    /// Run the pumps whose descriptors [`Self::interest`] listed got events (`revents`,
    /// in the same order).
    pub fn ready(&mut self, revents: &[libc::c_short]) {
        let mut it = revents.iter();
        for p in &mut self.pumps {
            if p.interest().is_none() {
                continue;
            }
            if it.next().is_some_and(|r| *r != 0) {
                p.run();
            }
        }
    }

    /// After the payload's end: relay what is left of its output, waiting up to
    /// `linger` for the ends of the pipes (or terminal), which come once every process
    /// holding them is gone.
    pub fn drain(&mut self, linger: std::time::Duration) {
        // Input no longer matters.
        self.pumps.retain(|p| p.output);
        let until = std::time::Instant::now() + linger;
        loop {
            let interest = self.interest();
            if interest.is_empty() {
                break;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let Ok(rev) = sys::poll(&interest, left.as_millis().max(1) as i32) else {
                break;
            };
            drop(interest);
            self.ready(&rev);
        }
        self.restore_terminal();
    }

    fn restore_terminal(&mut self) {
        if let Some((fd, t)) = self.restore.take() {
            let _ = sys::tcsetattr(sys::stdio(fd), &t);
        }
    }
}

impl Drop for ParentStdio {
    fn drop(&mut self) {
        self.restore_terminal();
    }
}
