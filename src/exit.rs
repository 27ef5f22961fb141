//! kakoi's exit codes, one meaning each, in one place: the commands' (`cli`), a launch's
//! (`launch::error::StepError::exit_code`, as container runtimes use them) and `main`'s.
//! `kakoi run` otherwise exits with the payload's status (128 + N when killed by signal N).

/// Success; for `check`, no errors (warnings allowed).
pub const OK: i32 = 0;
/// The policy has errors (or warnings with `--deny-warnings`); an audit over its limits.
pub const POLICY: i32 = 1;
/// Bad usage, unreadable input, or an output that could not be written.
pub const USAGE: i32 = 2;
/// A bug: kakoi panicked (Rust's own code for it).
pub const PANIC: i32 = 101;
/// A launch failed before the command ran.
pub const LAUNCH: i32 = 125;
/// The command was found but could not be executed.
pub const CANNOT_EXECUTE: i32 = 126;
/// The command was not found in the sandbox.
pub const NOT_FOUND: i32 = 127;
