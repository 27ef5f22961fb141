//! kakoi: security policy compiler, auditor and hardened launcher for Linux.
//!
//! The language lives in the `policy-lang` crate; this crate holds the backends, the
//! bundle writer and the CLI. See ARCHITECTURE.md for the map.
//!
//! `unsafe` is refused by the compiler everywhere but in the two modules that make raw
//! system calls: `launch::sys` and `audit::live` (ptrace). Each block has a `// SAFETY:`.
#![deny(unsafe_code)]

pub mod apply;
pub mod audit;
pub mod backends;
pub mod bpf;
pub mod bundle;
pub mod cli;
pub mod exit;
pub mod fuzzing;
pub mod host;
pub mod input;
pub mod launch;
pub mod loader;
pub mod oci;
pub mod profiles;
pub mod seccomp;
pub mod sign;

pub use policy_lang;
