//! `kakoi run`: check a policy against the host and settle what the launch needs
//! ([`prepare`]: the seccomp program, the labels that apply, the environment), which
//! makes the plan ([`super::plan`]); then run it ([`run`]: the launcher's steps in
//! [`super::parent`], the child's in [`super::child`], supervision in
//! [`super::supervise`]). Nothing is created before [`run`].

use std::io::Read;

use policy_lang::ir::{Enforcement, Level, Policy, Rootfs};

use super::error::{Hint, StepError};
pub use super::parent::Outcome;
use super::plan::{self, Plan};
use super::stdio::Tty;
use crate::backends;
use crate::host::Facts;
use crate::seccomp;

/// A launch, ready to run: its plan, and how the launcher talks to the caller.
pub struct Launch {
    pub plan: Plan,
    /// Whether the payload gets a terminal.
    pub tty: Tty,
    /// The launcher's own uid.
    pub uid: u32,
}

/// What `kakoi run` adds to the policy.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The command (the policy's own when empty).
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs added to the policy's environment.
    pub env: Vec<String>,
    /// A bundle's precompiled seccomp program (`None`: compiled now).
    pub seccomp: Option<Vec<u8>>,
    pub tty: Tty,
    /// Where the sandbox's cgroups are made (`None`: below the launcher's own cgroup).
    pub cgroup_parent: Option<String>,
    /// Read the cgroup layout now even where the launch reads it after the clone (a
    /// dry run prints where each file is written).
    pub read_layout: bool,
    /// Detached, as an OCI runtime's `create` (see [`plan::Detach`]).
    pub detach: Option<plan::Detach>,
}

/// A random MCS pair `s0:cA,cB` (A < B), as container runtimes choose one per sandbox.
fn random_level() -> String {
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    let a = u16::from_le_bytes([b[0], b[1]]) % 1024;
    let mut c = u16::from_le_bytes([b[2], b[3]]) % 1023;
    if c >= a {
        c += 1;
    }
    let (lo, hi) = if a < c { (a, c) } else { (c, a) };
    format!("s0:c{lo},c{hi}")
}

/// Check the policy against the host and compile what the child needs. Nothing is created.
pub fn prepare(policy: &Policy, o: Options, facts: &Facts) -> Result<Launch, StepError> {
    let mut warnings = Vec::new();
    let argv = if o.argv.is_empty() {
        policy.process.argv.clone()
    } else {
        o.argv
    };
    if argv.is_empty() {
        return Err(StepError::new("command", "no command to run"))
            .hint("give one after `--`, or set `process { argv [...] }` in the policy");
    }
    let seccomp = match o.seccomp {
        Some(p) => Some(p),
        None if policy.seccomp.enabled => {
            let host = facts.arch;
            if !policy.seccomp.arches.contains(&host.abis()[0]) {
                return Err(StepError::new(
                    "seccomp",
                    format!("the policy does not target {}", host.name()),
                ))
                .hint("add the host's architecture to `seccomp { arches [...] }`");
            }
            let prog = seccomp::compile_checked(&policy.seccomp, host, seccomp::Backend::Kakoi)
                .map_err(|e| StepError::new("compile seccomp", e.to_string()))?;
            Some(prog.bpf)
        }
        None => None,
    };
    if let Some(p) = &seccomp {
        let insns = crate::bpf::decode(p)
            .and_then(|i| crate::bpf::validate(&i).map(|()| i))
            .map_err(|e| StepError::new("validate seccomp", e.to_string()))?;
        if insns.is_empty() {
            return Err(StepError::new("validate seccomp", "empty program"));
        }
    }
    let apparmor = match &policy.apparmor {
        None => false,
        Some(_) if facts.apparmor => true,
        Some(a) if a.enforcement == Enforcement::Required => {
            return Err(StepError::new("apparmor", "the kernel has no AppArmor")).hint(
                "this policy says `apparmor required`; say `apparmor optional` to run without it",
            );
        }
        Some(_) => {
            warnings.push("AppArmor is not enabled in this kernel: the profile is not applied (`apparmor optional`)".into());
            false
        }
    };
    let selinux = match &policy.selinux {
        None => None,
        Some(se) if facts.selinux => {
            let level = match &se.level {
                Level::Fixed(l) => l.clone(),
                Level::Random => random_level(),
            };
            // The type the module defines (`kakoi_NAME.process`) unless the policy names
            // one of the system's own: the same one `selinux.cil` and `lsm.json` carry.
            let t = backends::selinux::process_type(policy);
            Some(format!("{}:{}:{t}:{level}", se.user, se.role))
        }
        Some(se) if se.enforcement == Enforcement::Required => {
            return Err(StepError::new("selinux", "the kernel has no SELinux")).hint(
                "this policy says `selinux required`; say `selinux optional` to run without it",
            );
        }
        Some(_) => {
            warnings.push(
                "SELinux is not enabled in this kernel: the label is not applied (`selinux optional`)"
                    .into(),
            );
            None
        }
    };
    if facts.uid != 0 && policy.network.mode.eth0().is_some() {
        return Err(StepError::new(
            "network",
            "a veth pair or a macvlan interface needs root on the host",
        ))
        .hint("use `network { mode none }` or `mode host` when launching without root");
    }
    let landlock = backends::landlock::generate(policy);
    let mut env = policy.process.env.clone();
    env.extend(o.env);
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", default_home(policy)));
    }
    if !has(&env, "TERM") {
        if let Ok(t) = std::env::var("TERM") {
            env.push(format!("TERM={t}"));
        }
    }
    // On a pure v2 host the leaf is made before the clone (`CLONE_INTO_CGROUP`): the layout
    // is read now. On a v1 or hybrid host the launcher reads it after the clone, while the
    // child works.
    let layout = (o.read_layout || !facts.cgroup_v1).then(super::cgroup::host_layout);
    let mut plan = plan::build(
        policy,
        plan::Inputs {
            argv,
            env,
            seccomp,
            landlock,
            apparmor: if apparmor {
                policy.apparmor.as_ref().map(|a| a.profile.clone())
            } else {
                None
            },
            selinux,
            layout,
            cgroup_parent: o.cgroup_parent,
            detach: o.detach,
        },
        facts,
    )?;
    warnings.append(&mut plan.warnings);
    plan.warnings = warnings;
    Ok(Launch {
        plan,
        tty: o.tty,
        uid: facts.uid,
    })
}

/// `HOME` when the policy sets none: a directory that exists and the payload may write.
/// Under `rootfs host` the host's home directories are not in the sandbox, so it is the
/// sandbox's own `/tmp` tmpfs when there is one; otherwise `/root` for uid 0 (as Docker
/// sets it; the image has it) and `/` for other users.
fn default_home(policy: &Policy) -> &'static str {
    let tmp = policy.filesystem.tmpfs.iter().any(|t| t.target == "/tmp");
    if tmp && matches!(policy.filesystem.rootfs, Rootfs::Host) {
        "/tmp"
    } else if policy.identity.user.unwrap_or(0) == 0 {
        "/root"
    } else {
        "/"
    }
}

/// Run the prepared launch to the end.
pub fn run(l: &Launch) -> Outcome {
    match super::parent::launch(&l.plan, l.tty, l.uid, &mut super::os::Real) {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e),
    }
}

/// The `seccomp(2)` flags of the policy's `flags`, as libseccomp would set them.
pub fn seccomp_flags(flags: &[policy_lang::ir::SeccompFlag]) -> libc::c_ulong {
    use policy_lang::ir::SeccompFlag;
    flags.iter().fold(0, |f, flag| {
        f | match flag {
            SeccompFlag::Log => libc::SECCOMP_FILTER_FLAG_LOG,
            SeccompFlag::SpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            SeccompFlag::Tsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        }
    })
}
