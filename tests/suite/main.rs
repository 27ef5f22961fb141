//! kakoi's integration tests, one binary (ripgrep's layout).
//!
//! Modules:
//! - `util`: helpers to run the built `kakoi` binary and make temp dirs.
//! - `diagnostics`: every fixture in `fixtures/invalid/` is checked and its rendered
//!   diagnostics are snapshot-tested; `fixtures/valid/` must check clean.
//! - `profiles`: every shipped policy checks clean, compiles deterministically, and its
//!   seccomp programs equal the policy's own meaning.
//! - `cli`: exit codes, `--format json`, `--emit`, atomic bundle writes, completions, man.

mod cli;
mod diagnostics;
mod profiles;
mod util;
