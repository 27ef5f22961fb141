//! kakoi's integration tests, one binary (ripgrep's layout).
//!
//! Modules:
//! - `util`: helpers to run the built `kakoi` binary and make temp dirs.
//! - `audit`: `kakoi audit` and `kakoi diff` on fixtures of every format, Docker's profile,
//!   raw BPF mistakes, baselines, SARIF, a live process.
//! - `backends`: capability, Landlock, AppArmor and SELinux artifacts; real parsers;
//!   Landlock live.
//! - `diagnostics`: every fixture in `fixtures/invalid/` is checked and its rendered
//!   diagnostics are snapshot-tested; `fixtures/valid/` must check clean.
//! - `differential`: 400 random Docker/OCI JSON profiles per run, kakoi's reading against
//!   the program runc would load through libseccomp, on x86_64, x86 and x32.
//! - `docker`: Docker's real profile imported and compared with runc's compilation; OCI
//!   export round trips.
//! - `profiles`: every shipped policy checks clean, compiles deterministically, and its
//!   seccomp programs equal the policy's own meaning.
//! - `seccomp`: both backends against the policy on a corpus and random policies, the
//!   size/speed/cache targets of kakoi's generator, and the live kernel.
//! - `libseccomp`: libseccomp's regression cases the language can express
//!   (`fixtures/libseccomp`), with their expected verdicts.
//! - `launch`: `kakoi run` checked from inside by the probe (examples/probe.rs): caps,
//!   namespaces, mounts, cgroups, limits, id maps (root and rootless), networking, exits.
//! - `redteam`, `redteam_run`: one regression test per red-team finding, without and
//!   with root (L3 and L5 are in `launch`, next to the probe they use).
//! - `catalogue`: the syscall catalogue against the running kernel (tracefs) and the
//!   compat ABIs' own argument lists.
//! - `workloads`: the shipped policies running real programs (shell, tar, git, gcc,
//!   sqlite3, python threads and multiprocessing) as root and rootless; one SIGTERM.
//! - `oci`: kakoi as an OCI runtime (runc's lifecycle through `kakoi-runtime`).
//! - `cli`: exit codes, `--format json`, `--emit`, atomic bundle writes, completions, man.

mod audit;
mod backends;
mod catalogue;
mod cli;
mod diagnostics;
mod differential;
mod docker;
mod fuzz;
mod launch;
mod libseccomp;
mod live;
mod oci;
mod profiles;
mod redteam;
mod redteam_run;
mod seccomp;
mod util;
mod workloads;
