//! `KAKOI_TRACE=1 kakoi run …`: the launch's phases with their time since `kakoi run`
//! started, on stderr (the child's marks are prefixed with `child`). Costs one branch per
//! mark when off.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

/// Start the clock if `KAKOI_TRACE` is set. Called once, when `kakoi run` starts.
pub fn start() {
    START.get_or_init(|| std::env::var_os("KAKOI_TRACE").map(|_| Instant::now()));
}

/// Print `what` with the time since [`start`], when tracing.
pub fn mark(what: &str) {
    if let Some(Some(t0)) = START.get() {
        use std::io::Write;
        // One write per line: the parent and the child trace to the same stderr, and
        // `eprintln!` writes a line in pieces that the other process's could split.
        let line = format!("kakoi: {:>6} µs  {what}\n", t0.elapsed().as_micros());
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Whether `KAKOI_TRACE` is on.
pub fn on() -> bool {
    matches!(START.get(), Some(Some(_)))
}

/// Mark the start of the plan's step `index` (`KAKOI_TRACE` shows every step run, with
/// the text `--dry-run` prints for it).
pub fn step(index: usize, step: &super::plan::Step) {
    if let Some(Some(_)) = START.get() {
        mark(&format!("step {}: {step}", index + 1));
    }
}
