//! Commands that launch: plan, run, gc.

use super::*;

pub(super) fn plan(
    policy: &str,
    format: Format,
    command: &[String],
    color: bool,
) -> Result<(), Failure> {
    let (p, _) = load_ok(policy, color)?;
    let facts = crate::host::Facts::probe()
        .map_err(|e| Failure::usage(format!("cannot read /proc/self: {e}")))?;
    let options = crate::launch::run::Options {
        argv: command.to_vec(),
        read_layout: true,
        ..Default::default()
    };
    let launch = crate::launch::run::prepare(&p, options, &facts).map_err(|e| {
        report(&e, format);
        Failure {
            code: e.exit_code(),
            message: None,
        }
    })?;
    print_plan(&launch.plan, format)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run_cmd(
    policy: &str,
    bundle: Option<&Path>,
    verify_key: Option<&Path>,
    rootfs: Option<String>,
    env: Vec<String>,
    tty: crate::launch::stdio::Tty,
    cgroup_parent: Option<String>,
    publish: Vec<String>,
    dry_run: bool,
    format: Format,
    command: Vec<String>,
    color: bool,
) -> Result<(), Failure> {
    use crate::launch::run::{self, Outcome};
    crate::launch::trace::start();
    // An input that cannot be read or has errors exits as in every other command (2, 1):
    // 125 is for a launch that failed.
    let (mut p, prog) = match bundle {
        Some(dir) => load_bundle(dir, verify_key)?,
        None => (load_ok(policy, color)?.0, None),
    };
    if let Some(r) = rootfs {
        p.filesystem.rootfs = policy_lang::ir::Rootfs::Dir {
            path: r,
            readonly: true,
        };
    }
    for spec in &publish {
        let x = parse_publish(spec).ok_or_else(|| {
            Failure::usage(format!(
                "`--publish {spec}`: expected HOST_PORT:SANDBOX_PORT, optionally /udp (e.g. 8080:80)"
            ))
        })?;
        if !matches!(p.network.mode, policy_lang::ir::NetMode::Veth { .. }) {
            return Err(Failure::usage(format!(
                "`--publish {spec}`: the policy's network is not `mode veth`, which published ports need"
            )));
        }
        p.network
            .publish
            .retain(|y| (y.udp, y.host) != (x.udp, x.host));
        p.network.publish.push(x);
    }
    for e in &env {
        if !e.contains('=') {
            return Err(Failure {
                code: exit::LAUNCH,
                message: Some(format!("`--env {e}`: expected KEY=VALUE")),
            });
        }
    }
    if let Some(parent) = &cgroup_parent {
        // A bad path is a usage error, before anything is read or made.
        crate::launch::cgroup::Layout::default()
            .under(parent)
            .map_err(Failure::usage)?;
    }
    let failed = |e: &crate::launch::error::StepError| {
        report(e, format);
        Failure {
            code: e.exit_code(),
            message: None,
        }
    };
    let facts = crate::host::Facts::probe_for(Some(&p))
        .map_err(|e| Failure::usage(format!("cannot read /proc/self: {e}")))?;
    let timeout_ms = p.process.timeout_ms;
    // The plan a dry run prints is the one `run` executes: both come from `prepare`.
    let options = run::Options {
        argv: command,
        env,
        seccomp: prog,
        tty,
        cgroup_parent,
        read_layout: dry_run,
        detach: None,
    };
    let launch = run::prepare(&p, options, &facts).map_err(|e| failed(&e))?;
    if dry_run {
        return print_plan(&launch.plan, format);
    }
    // The plan holds all the launch needs: the policy's memory is not the child's to copy.
    drop(p);
    crate::launch::trace::mark("policy loaded");
    for w in &launch.plan.warnings {
        eprintln!("kakoi: warning: {w}");
    }
    crate::launch::trace::mark("prepared (seccomp, Landlock rules, LSM checks)");
    match run::run(&launch) {
        Outcome::Failed(e) => {
            report(&e, format);
            Err(Failure {
                code: e.exit_code(),
                message: None,
            })
        }
        // `kakoi run` never detaches.
        Outcome::Created { .. } => Ok(()),
        Outcome::Exited {
            code,
            timed_out,
            oom_kills,
        } => {
            if timed_out {
                eprintln!(
                    "kakoi: the command ran past its time limit ({} ms) and was killed",
                    timeout_ms.unwrap_or(0)
                );
            }
            if oom_kills > 0 {
                eprintln!("kakoi: the OOM killer killed {oom_kills} process(es) in the sandbox's memory cgroup");
            }
            if code == 0 {
                Ok(())
            } else {
                Err(Failure {
                    code,
                    message: None,
                })
            }
        }
    }
}

/// A bundle's policy and seccomp program for this host, verified (with `verify_key`,
/// its signature too).
fn load_bundle(
    dir: &Path,
    verify_key: Option<&Path>,
) -> Result<(Policy, Option<Vec<u8>>), Failure> {
    let invalid = |m: crate::bundle::LoadError| {
        Failure::usage(format!("invalid bundle `{}`: {m}", dir.display()))
    };
    let b = match verify_key {
        None => crate::bundle::load_dir_for_launch(dir, crate::host::arch()).map_err(invalid)?,
        Some(key) => {
            // The manifest is read once: the bytes verified are the bytes whose
            // hashes the other files are checked against.
            let read = |name: &str| -> Result<Vec<u8>, crate::bundle::LoadError> {
                Ok(crate::input::read(
                    &dir.join(name),
                    crate::input::PROFILE_LIMIT,
                )?)
            };
            let manifest = read("manifest.json").map_err(invalid)?;
            let sig = match read(crate::sign::SIGNATURE) {
                Ok(s) => Some(s),
                Err(_) if !dir.join(crate::sign::SIGNATURE).exists() => None,
                Err(e) => return Err(invalid(e)),
            };
            crate::sign::verify(key, &manifest, sig.as_deref()).map_err(|e| {
                Failure::usage(format!(
                    "refusing bundle `{}`: {e}\nhint: {}",
                    dir.display(),
                    e.hint()
                ))
            })?;
            let cached = |name: &str| {
                if name == "manifest.json" {
                    Ok(manifest.clone())
                } else {
                    read(name)
                }
            };
            crate::bundle::load_with_for_launch(&cached, crate::host::arch()).map_err(invalid)?
        }
    };
    Ok((b.policy, b.seccomp))
}

/// A failed launch step on stderr: as JSON with `--format json`.
fn report(e: &crate::launch::error::StepError, format: Format) {
    if format == Format::Json {
        eprintln!("{}", serde_json::json!({"error": e}));
    } else {
        // io::Error's text ends in "(os error N)": say it once, as errno.
        let msg = e.message.split(" (os error").next().unwrap_or(&e.message);
        let errno = if e.errno != 0 {
            format!(" (errno {})", e.errno)
        } else {
            String::new()
        };
        eprintln!("kakoi: {}: {msg}{errno}", e.step);
        if let Some(h) = &e.hint {
            eprintln!("  hint: {h}");
        }
    }
}

/// `HOST:SANDBOX[/udp|/tcp]`, as `docker run -p` writes it.
pub(super) fn parse_publish(spec: &str) -> Option<policy_lang::ir::Publish> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (spec, "tcp"),
    };
    let (h, s) = ports.split_once(':')?;
    let port = |t: &str| t.parse::<u16>().ok().filter(|p| *p > 0);
    Some(policy_lang::ir::Publish {
        udp: match proto {
            "tcp" => false,
            "udp" => true,
            _ => return None,
        },
        host: port(h)?,
        sandbox: port(s)?,
    })
}

pub(super) fn gc(dry_run: bool, format: Format) -> Result<(), Failure> {
    let layout = crate::launch::cgroup::host_layout();
    let mut c = crate::launch::cgroup::gc(&layout, dry_run);
    // Address leases of launchers that are gone (`mode veth`).
    c.removed.extend(crate::launch::net::collect_stale_leases(
        Path::new(crate::launch::net::LEASES),
        dry_run,
    ));
    if format == Format::Json {
        let failed: Vec<_> = c
            .failed
            .iter()
            .map(|(p, e)| serde_json::json!({"path": p, "error": e}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"dry_run": dry_run, "removed": c.removed, "failed": failed, "live": c.live})
        );
    } else {
        for p in &c.removed {
            println!(
                "{} {}",
                if dry_run { "would remove" } else { "removed" },
                p.display()
            );
        }
        for (p, e) in &c.failed {
            eprintln!("kakoi: cannot remove {}: {e}", p.display());
        }
        eprintln!(
            "{} {} cgroup{}; left alone: {} of launches still running",
            if dry_run { "would remove" } else { "removed" },
            c.removed.len(),
            if c.removed.len() == 1 { "" } else { "s" },
            c.live
        );
    }
    if !dry_run && std::path::Path::new("/usr/sbin/nft").exists() {
        let n = crate::launch::net::collect_stale_rules();
        if n > 0 && format != Format::Json {
            eprintln!("removed {n} published-port rules of launchers that are gone (nftables table ip kakoi)");
        }
    }
    if c.failed.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: exit::POLICY,
            message: None,
        })
    }
}

pub(super) fn print_plan(plan: &crate::launch::plan::Plan, format: Format) -> Result<(), Failure> {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plan serializes")
        );
        return Ok(());
    }
    println!("launch plan for `{}`: {}", plan.policy, plan.argv.join(" "));
    for (i, s) in plan.steps.iter().enumerate() {
        let by = match s.by() {
            crate::launch::plan::By::Parent => "parent",
            crate::launch::plan::By::Child => "child",
        };
        println!("{:>2}. [{by}] {s}", i + 1);
        println!("      why: {}", s.why());
    }
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}
