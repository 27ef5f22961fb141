//! Commands on existing profiles: audit, import, diff.

use super::*;

/// Read one input into the auditor's model.
pub(super) fn subject(
    input: &str,
    fmt: Option<crate::audit::InputFormat>,
    color: bool,
) -> Result<crate::audit::Subject, Failure> {
    use crate::audit::{load, InputFormat};
    let fmt = match fmt {
        Some(f) => f,
        None => load::detect(input).map_err(Failure::from)?,
    };
    let read = || read_text(input);
    match fmt {
        InputFormat::Policy => {
            let (p, _) = load_ok(input, color)?;
            load::policy(&p, input, None).map_err(Failure::from)
        }
        InputFormat::Bundle => {
            let host = crate::host::arch();
            let (b, tampered) = crate::bundle::load_dir_for_audit(Path::new(input), host)
                .map_err(|m| Failure::usage(format!("invalid bundle `{input}`: {m}")))?;
            let prog = match &b.seccomp {
                Some(bytes) => {
                    Some(crate::bpf::decode(bytes).map_err(|e| Failure::usage(e.to_string()))?)
                }
                None => None,
            };
            let mut s = load::policy(&b.policy, input, prog).map_err(Failure::from)?;
            s.tampered = tampered.map(|why| {
                let file = Path::new(input).join(format!("seccomp.{}.bpf", host.name()));
                (
                    why.to_string(),
                    crate::audit::Location::file(&file.display().to_string()),
                )
            });
            Ok(s)
        }
        InputFormat::SeccompJson => load::seccomp_json(input, &read()?).map_err(Failure::from),
        InputFormat::Bpf => {
            let bytes = read_bytes(input)?;
            load::bpf_file(input, &bytes).map_err(Failure::from)
        }
        InputFormat::Oci => load::oci(input, &read()?).map_err(Failure::from),
        InputFormat::Apparmor => Ok(load::apparmor(input, &read()?)),
        InputFormat::Process => {
            let pid = input
                .parse()
                .map_err(|_| Failure::usage(format!("`{input}` is not a pid")))?;
            crate::audit::live::process(pid).map_err(Failure::from)
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn audit_cmd(
    inputs: &[String],
    pids: &[i32],
    fmt: Option<crate::audit::InputFormat>,
    format: AuditFormat,
    fail_on: Option<crate::audit::Severity>,
    threshold: Option<f64>,
    baseline: Option<&Path>,
    write_baseline: Option<&Path>,
    color: bool,
) -> Result<(), Failure> {
    use crate::audit::{self, report, Baseline, InputFormat};
    if inputs.is_empty() && pids.is_empty() {
        return Err(Failure::usage(
            "nothing to audit: give INPUT files or --pid PID",
        ));
    }
    let base: Option<Baseline> = match baseline {
        Some(p) => {
            let text = read_text(p)?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| Failure::usage(format!("baseline `{}`: {e}", p.display())))?,
            )
        }
        None => None,
    };
    let mut reports = Vec::new();
    for i in inputs {
        let s = subject(i, fmt, color)?;
        reports.push(audit::audit(&s, base.as_ref()));
    }
    for p in pids {
        let s = subject(&p.to_string(), Some(InputFormat::Process), color)?;
        reports.push(audit::audit(&s, base.as_ref()));
    }
    if let Some(path) = write_baseline {
        let text =
            serde_json::to_string_pretty(&Baseline::of(&reports)).expect("serializes") + "\n";
        write_atomic(path, text.as_bytes())
            .map_err(|e| Failure::usage(format!("cannot write `{}`: {e}", path.display())))?;
        eprintln!(
            "wrote {} ({} findings accepted)",
            path.display(),
            reports.iter().map(|r| r.findings.len()).sum::<usize>()
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let text = match format {
        AuditFormat::Human => report::human(
            &reports,
            use_color(ColorChoice::Auto, std::io::stdout().is_terminal()) && color_allowed(),
        ),
        AuditFormat::Json => {
            serde_json::to_string_pretty(&report::json(&reports)).expect("serializes") + "\n"
        }
        AuditFormat::Sarif => {
            serde_json::to_string_pretty(&report::sarif(&reports)).expect("serializes") + "\n"
        }
    };
    let _ = out.write_all(text.as_bytes());
    let failed = reports.iter().any(|r| {
        fail_on.is_some_and(|f| r.findings.iter().any(|x| x.severity >= f))
            || threshold.is_some_and(|t| r.score > t)
    });
    if failed {
        return Err(Failure {
            code: exit::POLICY,
            message: None,
        });
    }
    Ok(())
}

pub(super) fn import_cmd(
    input: Option<&str>,
    pid: Option<i32>,
    output: Option<&Path>,
    fmt: Option<crate::audit::InputFormat>,
    arches: &[String],
    color: bool,
) -> Result<(), Failure> {
    let (s, input) = match (pid, input) {
        (Some(pid), _) => (
            crate::audit::live::process(pid).map_err(Failure::from)?,
            format!("pid {pid}"),
        ),
        (None, Some(input)) => {
            let mut s = subject(input, fmt, color)?;
            if matches!(
                s.format,
                crate::audit::InputFormat::SeccompJson | crate::audit::InputFormat::Oci
            ) {
                let bytes = crate::input::read(Path::new(input), crate::input::PROFILE_LIMIT)
                    .map_err(|e| Failure::usage(e.to_string()))?;
                let text = String::from_utf8_lossy(&bytes);
                let target = crate::seccomp::json::Target::docker_default();
                match crate::seccomp::json::runc_refusal(&text, &target) {
                    Some(n) => s.notes.push(n),
                    // The reading the policy is written from must decide as runc's
                    // program does, but for kakoi's named differences.
                    None => {
                        if let Some(rules) = s.seccomp().and_then(|v| v.rules.as_ref()) {
                            let a = crate::seccomp::runc::compare(&text, &target, rules)
                                .map_err(|e| {
                                    Failure::usage(format!(
                                        "cannot import `{input}`: kakoi's reading differs from runc's program at {e} (a kakoi bug: please report it with the profile)"
                                    ))
                                })?;
                            s.notes.push(a.note());
                        }
                    }
                }
            }
            (s, input.to_string())
        }
        (None, None) => unreachable!("clap requires INPUT or --pid"),
    };
    let input = input.as_str();
    let only: Vec<policy_lang::catalogue::Arch> = arches
        .iter()
        .filter_map(|a| policy_lang::catalogue::Arch::from_name(a))
        .collect();
    let text = crate::audit::import::import(&s, input, &only)
        .map_err(|e| Failure::usage(format!("cannot import `{input}`: {e}")))?;
    match output {
        Some(path) => {
            write_atomic(path, text.as_bytes())
                .map_err(|e| Failure::usage(format!("cannot write `{}`: {e}", path.display())))?;
            eprintln!(
                "wrote {} (same decisions as {input}, checked per ABI)",
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

pub(super) fn diff_cmd(old: &str, new: &str, format: Format, color: bool) -> Result<(), Failure> {
    let a = subject(old, None, color)?;
    let b = subject(new, None, color)?;
    let d = crate::audit::diff::diff(&a, &b);
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&d).expect("serializes"));
    } else {
        print!("{}", crate::audit::diff::human(&d));
    }
    if d.widened {
        return Err(Failure {
            code: exit::POLICY,
            message: None,
        });
    }
    Ok(())
}
