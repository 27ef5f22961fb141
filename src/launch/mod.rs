//! The launcher (`kakoi run`): the launch plan ([`plan`], printed by `kakoi run --dry-run`
//! and `kakoi plan`), and applying it ([`run`], with the child's file system in
//! [`mounts`] and cgroups in [`cgroup`]). Every `unsafe` block of the launcher is in
//! [`sys`].

pub mod cgroup;
mod child;
pub mod error;
mod init;
pub mod mounts;
pub mod net;
pub mod plan;
pub mod run;
pub mod stdio;
#[allow(unsafe_code)]
pub mod sys;
pub mod trace;
