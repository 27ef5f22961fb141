//! The launcher (`kakoi run`). This slice holds the launch *plan*: everything the launcher
//! will do, in order, computed from the policy and what the host offers, printed by
//! `kakoi run --dry-run`. Applying it is in progress (issue 5).

pub mod cgroup;
pub mod plan;
