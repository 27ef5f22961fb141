//! Commands on policies: check, compile, fmt, stats, disasm, explain.

use super::*;

pub(super) fn diag_json(map: &SourceMap, d: &Diagnostic) -> serde_json::Value {
    let (file, line, column) = match &d.span {
        Some(s) => {
            let (l, c) = line_col(map, s);
            (Some(map.name(s.file).to_string()), Some(l), Some(c))
        }
        None => (None, None, None),
    };
    serde_json::json!({
        "severity": d.severity,
        "code": d.code,
        "message": d.message,
        "file": file,
        "line": line,
        "column": column,
        "label": d.label,
        "help": d.help,
    })
}

pub(super) fn check(
    policies: &[String],
    format: Format,
    deny_warnings: bool,
    color: bool,
) -> Result<(), Failure> {
    let mut failed = false;
    let mut unreadable = None;
    let mut reports = Vec::new();
    for p in policies {
        let loaded = match load(p) {
            Ok(l) => l,
            Err(f) => {
                let message = f.message.clone().unwrap_or_default();
                match format {
                    // Under JSON the error is part of the report, not a line of text.
                    Format::Json => reports.push(serde_json::json!({
                        "policy": p,
                        "ok": false,
                        "error": message,
                    })),
                    Format::Human => eprintln!("error: {message}"),
                }
                unreadable = Some(f);
                continue;
            }
        };
        let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = loaded.diagnostics.len() - errors;
        failed |= errors > 0 || (deny_warnings && warnings > 0);
        match format {
            Format::Human => {
                eprint!("{}", render(&loaded.map, &loaded.diagnostics, color));
                let name = loaded.map.name(policy_lang::FileId(0));
                if errors == 0 {
                    eprintln!("{name}: ok ({warnings} warning{})", if warnings == 1 { "" } else { "s" });
                } else {
                    eprintln!("{name}: {errors} error{}, {warnings} warning{}", plural(errors), plural(warnings));
                }
            }
            Format::Json => reports.push(serde_json::json!({
                "policy": loaded.map.name(policy_lang::FileId(0)),
                "ok": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": loaded.diagnostics.iter().map(|d| diag_json(&loaded.map, d)).collect::<Vec<_>>(),
            })),
        }
    }
    if format == Format::Json {
        let doc = serde_json::json!({ "format": 1, "policies": reports });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("json values serialize")
        );
    }
    if let Some(f) = unreadable {
        return Err(Failure {
            code: f.code,
            message: None,
        });
    }
    if failed {
        return Err(Failure::policy());
    }
    Ok(())
}

pub(super) fn compile(
    policy: &str,
    output: Option<PathBuf>,
    emit: Option<String>,
    backend: Backend,
    validate: Validate,
    sign: Option<PathBuf>,
    color: bool,
) -> Result<(), Failure> {
    let loaded = load(policy)?;
    eprint!("{}", render(&loaded.map, &loaded.diagnostics, color));
    let Some(p) = loaded.policy else {
        let n = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!(
            "error: `{policy}` has {n} error{}; nothing was written",
            plural(n)
        );
        return Err(Failure::policy());
    };
    let arts = bundle::build(&p, &loaded.map, backend, validate).map_err(|e| {
        match e {
            // Point at the policy statement behind each rejected line.
            bundle::Error::Rejected { tool, findings } => {
                let diags: Vec<Diagnostic> = findings
                    .iter()
                    .map(|f| {
                        let span = f.origin.as_ref().and_then(|o| span_of(&loaded.map, o));
                        let msg = format!("{tool} rejects the generated artifact");
                        let d = match span {
                            Some(span) => Diagnostic::error("E1201", msg, span).with_label(f.message.clone()),
                            None => Diagnostic::global("E1201", format!("{msg}: {}", f.message)),
                        };
                        d.with_help("fix the rule in the policy; `kakoi compile --emit apparmor` (or `selinux`) shows the generated text")
                    })
                    .collect();
                eprint!("{}", render(&loaded.map, &diags, color));
            }
            e => eprintln!("error: {e}"),
        }
        Failure::policy()
    })?;
    for n in bundle::notes(&arts) {
        eprintln!("note: {n}");
    }
    if let Some(kind) = emit {
        let Some(a) = bundle::emit(&arts, &kind) else {
            return Err(Failure::usage(format!(
                "this policy has no `{kind}` artifact (its targets: {})",
                p.seccomp
                    .arches
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let mut out = std::io::stdout().lock();
        if kind.starts_with("seccomp-") && out.is_terminal() {
            return Err(Failure::usage(
                "refusing to write binary BPF to a terminal; redirect stdout to a file",
            ));
        }
        out.write_all(&a.bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Failure::usage(format!("cannot write to stdout: {e}")))?;
    }
    let mut arts = arts;
    if let Some(key) = &sign {
        let manifest = bundle::emit(&arts, "manifest").expect("every bundle has a manifest");
        let comment = format!("kakoi bundle of `{}`", p.name);
        let sig = crate::sign::sign(key, &manifest.bytes, &comment)
            .map_err(|e| Failure::usage(format!("cannot sign: {e}\nhint: {}", e.hint())))?;
        arts.push(bundle::Artifact {
            name: crate::sign::SIGNATURE.into(),
            bytes: sig,
        });
    }
    if let Some(dir) = output {
        bundle::write_dir(&dir, &arts).map_err(|e| Failure::usage(e.to_string()))?;
        eprintln!("wrote {} ({} artifacts)", dir.display(), arts.len());
    }
    Ok(())
}

pub(super) fn fmt(files: &[PathBuf], check: bool, color: bool) -> Result<(), Failure> {
    let mut unformatted = 0;
    let mut failed = false;
    for path in files {
        let shown = path.display().to_string();
        let text = read_text(path)?;
        let mut map = SourceMap::new();
        let id = map.add(shown.clone(), text.clone());
        match policy_lang::format::format(id, &text) {
            Err(diags) => {
                eprint!("{}", render(&map, &diags, color));
                failed = true;
            }
            Ok(out) if out == text => {}
            Ok(out) => {
                unformatted += 1;
                if check {
                    println!("{shown}");
                } else {
                    write_atomic(path, out.as_bytes())
                        .map_err(|e| Failure::usage(format!("cannot write `{shown}`: {e}")))?;
                    eprintln!("formatted {shown}");
                }
            }
        }
    }
    if failed || (check && unformatted > 0) {
        if check && unformatted > 0 {
            eprintln!(
                "{unformatted} file{} would be reformatted; run `kakoi fmt` on them",
                plural(unformatted)
            );
        }
        return Err(Failure::policy());
    }
    Ok(())
}

pub(super) fn stats(policy: &str, format: Format, color: bool) -> Result<(), Failure> {
    use crate::seccomp::{compile_checked, stats::stats, Host};
    let (p, _) = load_ok(policy, color)?;
    let mut rows = Vec::new();
    for host in Host::for_policy(&p.seccomp) {
        for backend in [Backend::Kakoi, Backend::Libseccomp] {
            match compile_checked(&p.seccomp, host, backend) {
                Ok(prog) => {
                    let insns = crate::bpf::decode(&prog.bpf).expect("checked program");
                    rows.push((backend, Ok(stats(&p.seccomp, &insns, host))));
                }
                Err(e) => rows.push((backend, Err(e.to_string()))),
            }
        }
    }
    if format == Format::Json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(b, r)| match r {
                Ok(s) => serde_json::json!({ "backend": b, "stats": s }),
                Err(e) => serde_json::json!({ "backend": b, "error": e }),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("stats serialize")
        );
        return Ok(());
    }
    println!(
        "{:<11} {:<8} {:<8} {:>6} {:>8} {:>10} {:>6} {:>14}",
        "backend", "host", "abi", "length", "allowed", "mean insns", "worst", "cached/indep."
    );
    for (b, r) in &rows {
        let name = format!("{b:?}").to_lowercase();
        match r {
            Ok(s) => {
                for a in &s.abis {
                    println!(
                        "{name:<11} {:<8} {:<8} {:>6} {:>8} {:>10.1} {:>6} {:>14}",
                        s.host,
                        a.arch,
                        s.length,
                        a.allowed,
                        a.mean_insns,
                        a.worst_insns,
                        format!("{}/{}", a.cache_eligible, a.argument_independent)
                    );
                }
            }
            Err(e) => println!("{name:<11} cannot compile: {e}"),
        }
    }
    Ok(())
}

pub(super) fn disasm(
    input: &str,
    backend: Backend,
    host: &str,
    color: bool,
) -> Result<(), Failure> {
    use crate::seccomp::{compile_checked, Host};
    let bytes = if input.ends_with(".bpf")
        || std::path::Path::new(input)
            .extension()
            .is_some_and(|e| e == "bpf")
    {
        read_bytes(input)?
    } else {
        let (p, _) = load_ok(input, color)?;
        let host = if host == "aarch64" {
            Host::Aarch64
        } else {
            Host::X86_64
        };
        compile_checked(&p.seccomp, host, backend)
            .map_err(|e| Failure {
                code: exit::POLICY,
                message: Some(e.to_string()),
            })?
            .bpf
    };
    let insns = crate::bpf::decode(&bytes).map_err(|e| Failure {
        code: exit::POLICY,
        message: Some(format!("`{input}`: {e}")),
    })?;
    if let Err(e) = crate::bpf::validate(&insns) {
        eprintln!("warning: `{input}` would be rejected by the kernel: {e}");
    }
    print!("{}", crate::bpf::Disasm(&insns));
    Ok(())
}

/// The span of the statement written at `origin`: a quoted value to its closing quote,
/// anything else to the end of its line.
pub(super) fn span_of(
    map: &SourceMap,
    origin: &policy_lang::ir::Origin,
) -> Option<policy_lang::Span> {
    let (line, col) = (origin.line, origin.column);
    let file = map.find(&origin.file)?;
    let text = map.text(file);
    let start = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum::<usize>()
        + text
            .split_inclusive('\n')
            .nth(line - 1)?
            .char_indices()
            .nth(col - 1)?
            .0;
    // A quoted value ends at its closing quote; anything else at the end of the line.
    let end = if text[start..].starts_with('"') {
        text[start + 1..]
            .find('"')
            .map_or(text.len(), |i| start + i + 2)
    } else {
        text[start..].find('\n').map_or(text.len(), |i| start + i)
    };
    Some(policy_lang::Span::new(file, start..end))
}

pub(super) fn explain(
    input: &str,
    syscall: &str,
    args: &[String],
    arch: &str,
    format: Format,
    color: bool,
) -> Result<(), Failure> {
    use policy_lang::catalogue::{self, Arch};
    let arch = Arch::from_name(arch).expect("clap checked the arch");
    let nr = match syscall.parse::<u32>() {
        Ok(n) => n | arch.nr_offset(),
        Err(_) => {
            let d = catalogue::syscall(syscall).ok_or_else(|| {
                let hint = policy_lang::diagnostics::did_you_mean(
                    syscall,
                    catalogue::syscalls().iter().map(|d| d.name),
                );
                Failure::usage(format!(
                    "unknown syscall `{syscall}`{}",
                    hint.map(|h| format!("; {h}")).unwrap_or_default()
                ))
            })?;
            d.nr(arch).ok_or_else(|| {
                Failure::usage(format!("`{syscall}` does not exist on {}", arch.name()))
            })?
        }
    };
    if args.len() > 6 {
        return Err(Failure::usage("a syscall takes at most 6 arguments"));
    }
    let mut regs = [0u64; 6];
    for (i, a) in args.iter().enumerate() {
        let v = match a.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => a.parse::<i64>().ok().map(|v| v as u64),
        };
        regs[i] =
            v.ok_or_else(|| Failure::usage(format!("argument {} `{a}` is not a number", i + 1)))?;
    }
    let name = catalogue::syscall_by_nr(arch, nr).map_or("?", |d| d.name);
    use crate::audit::explain::{self, Filter};
    let filter = if input.ends_with(".bpf") {
        let bytes = read_bytes(input)?;
        let insns =
            crate::bpf::decode(&bytes).map_err(|e| Failure::usage(format!("`{input}`: {e}")))?;
        crate::bpf::validate(&insns)
            .map_err(|e| Failure::usage(format!("`{input}` is not a valid program: {e}")))?;
        Filter::Program(insns)
    } else if input.ends_with(".json") {
        let text = read_text(input)?;
        let imported = crate::seccomp::json::import(
            input,
            &text,
            &crate::seccomp::json::Target::docker_default(),
        )
        .map_err(|e| Failure {
            code: exit::POLICY,
            message: Some(e.to_string()),
        })?;
        Filter::Json {
            input: input.to_string(),
            seccomp: imported.seccomp,
        }
    } else {
        Filter::Policy(Box::new(load_ok(input, color)?.0))
    };
    let e = explain::explain(&filter, arch, nr, &regs);
    let (action, rule) = (e.action, Some(e.because));
    if format == Format::Json {
        let v = serde_json::json!({ "syscall": name, "nr": nr, "arch": arch.name(), "args": regs, "action": action.to_source(), "because": rule });
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        println!(
            "{name}({}) on {}: {}",
            args.join(", "),
            arch.name(),
            action.to_source()
        );
        if let Some(r) = rule {
            println!("  because: {r}");
        }
    }
    Ok(())
}
