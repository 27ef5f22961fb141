//! The command line: clap structs (raw flags) -> validated configuration -> actions.
//!
//! Architecture invariant: nothing here has side effects before the arguments are fully
//! validated; every error reaches `main` as a [`Failure`] with its exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use policy_lang::diagnostics::{line_col, render};
use policy_lang::{Diagnostic, Policy, SourceMap};

use crate::bundle::Validate;
use crate::seccomp::Backend;
use crate::{bundle, loader};

mod args;
mod audit;
mod launch;
mod policy;

pub use args::*;
use audit::*;
use launch::*;
use policy::*;

/// Exit codes (see [`crate::exit`]).
pub use crate::exit;

/// A failure with the exit code it maps to; its message is printed by `main`.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: Option<String>,
}

impl Failure {
    fn usage(msg: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: Some(msg.into()),
        }
    }
    fn policy() -> Self {
        Failure {
            code: exit::POLICY,
            message: None,
        }
    }
}

/// An input the auditor cannot read is a usage error (2), with its hint.
impl From<crate::audit::Error> for Failure {
    fn from(e: crate::audit::Error) -> Self {
        Failure::usage(match e.hint() {
            Some(h) => format!("{e}\n  help: {h}"),
            None => e.to_string(),
        })
    }
}

fn use_color(choice: ColorChoice, stream_is_tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            stream_is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// A policy loaded and checked, with its sources for rendering.
pub struct Loaded {
    pub map: SourceMap,
    pub policy: Option<Policy>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Load and check a policy named on the command line.
pub fn load(name: &str) -> Result<Loaded, Failure> {
    let (display, text) = loader::read_root(name).map_err(Failure::usage)?;
    // A Docker/OCI profile or config.json given where a policy goes: hundreds of syntax
    // errors would say nothing useful.
    if text.trim_start().starts_with('{')
        && serde_json::from_str::<serde_json::Value>(&text).is_ok()
    {
        return Err(Failure::usage(format!(
            "`{display}` is JSON, not a kakoi policy\nhint: `kakoi import {display} -o policy.kakoi` turns a Docker/OCI seccomp profile (or a config.json's) into one; `kakoi audit {display}` audits it as it is"
        )));
    }
    let mut map = SourceMap::new();
    let root = map.add(display, text);
    let checked = policy_lang::check(&mut map, root, &loader::FsLoader);
    Ok(Loaded {
        map,
        policy: checked.policy,
        diagnostics: checked.diagnostics,
    })
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let color_err = use_color(cli.color, std::io::stderr().is_terminal());
    match cli.command {
        Command::Check {
            policies,
            format,
            deny_warnings,
        } => check(&policies, format, deny_warnings, color_err),
        Command::Compile {
            policy,
            output,
            emit,
            backend,
            validate,
            sign,
        } => compile(&policy, output, emit, backend, validate, sign, color_err),
        Command::Fmt { files, check } => fmt(&files, check, color_err),
        Command::Stats { policy, format } => stats(&policy, format, color_err),
        Command::Disasm {
            input,
            backend,
            host,
        } => disasm(&input, backend, &host, color_err),
        Command::Plan {
            policy,
            format,
            command,
        } => plan(&policy, format, &command, color_err),
        Command::Audit {
            inputs,
            pid,
            input_format,
            format,
            fail_on,
            threshold,
            baseline,
            write_baseline,
        } => audit_cmd(
            &inputs,
            &pid,
            input_format,
            format,
            fail_on,
            threshold,
            baseline.as_deref(),
            write_baseline.as_deref(),
            color_err,
        ),
        Command::Diff { old, new, format } => diff_cmd(&old, &new, format, color_err),
        Command::Import {
            input,
            pid,
            output,
            input_format,
            arches,
        } => import_cmd(
            input.as_deref(),
            pid,
            output.as_deref(),
            input_format,
            &arches,
            color_err,
        ),
        Command::Run {
            policy,
            bundle,
            verify_key,
            rootfs,
            env,
            tty,
            no_tty,
            cgroup_parent,
            publish,
            dry_run,
            format,
            command,
        } => run_cmd(
            &policy,
            bundle.as_deref(),
            verify_key.as_deref(),
            rootfs,
            env,
            match (tty, no_tty) {
                (true, _) => crate::launch::stdio::Tty::Always,
                (_, true) => crate::launch::stdio::Tty::Never,
                _ => crate::launch::stdio::Tty::Auto,
            },
            cgroup_parent,
            publish,
            dry_run,
            format,
            command,
            color_err,
        ),
        Command::Explain {
            input,
            syscall,
            args,
            arch,
            format,
        } => explain(&input, &syscall, &args, &arch, format, color_err),
        Command::Gc { dry_run, format } => gc(dry_run, format),
        Command::Oci { args } => {
            match crate::oci::main(std::iter::once("kakoi oci".to_string()).chain(args)) {
                0 => Ok(()),
                code => Err(Failure {
                    code,
                    message: None,
                }),
            }
        }
        Command::Keygen { output } => {
            let public = crate::sign::keygen(&output)
                .map_err(|e| Failure::usage(format!("{e}\nhint: {}", e.hint())))?;
            eprintln!(
                "wrote the secret key {} and the public key {}",
                output.display(),
                public.display()
            );
            Ok(())
        }
        Command::Profiles { format } => {
            let mut out = std::io::stdout().lock();
            let list = crate::profiles::SHIPPED.iter().map(|(name, text)| {
                let desc = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("description "))
                    .map(|d| d.trim_matches('"'))
                    .unwrap_or("");
                (*name, desc, *text)
            });
            if format == Format::Json {
                let v: Vec<_> = list
                    .map(|(name, desc, text)| {
                        serde_json::json!({"name": name, "description": desc, "source": text})
                    })
                    .collect();
                let _ = writeln!(out, "{}", serde_json::Value::from(v));
            } else {
                for (name, desc, _) in list {
                    let _ = writeln!(out, "{name:<14} {desc}");
                }
            }
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kakoi", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            man.render(&mut std::io::stdout())
                .map_err(|e| Failure::usage(format!("cannot write the man page: {e}")))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Replace a file's contents atomically (temporary file in the same directory, renamed
/// over the original), keeping its permissions.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), meta.permissions())?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Load a policy and fail (exit 1) with its diagnostics if it has errors.
fn load_ok(name: &str, color: bool) -> Result<(Policy, SourceMap), Failure> {
    let loaded = load(name)?;
    eprint!("{}", render(&loaded.map, &loaded.diagnostics, color));
    match loaded.policy {
        Some(p) => Ok((p, loaded.map)),
        None => Err(Failure::policy()),
    }
}

fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An input file's bytes: a regular file within [`crate::input::PROFILE_LIMIT`].
fn read_bytes(path: impl AsRef<std::path::Path>) -> Result<Vec<u8>, Failure> {
    crate::input::read(path.as_ref(), crate::input::PROFILE_LIMIT).map_err(input_failure)
}

/// An input file's text (see [`read_bytes`]).
fn read_text(path: impl AsRef<std::path::Path>) -> Result<String, Failure> {
    crate::input::read_text(path.as_ref(), crate::input::PROFILE_LIMIT).map_err(input_failure)
}

fn input_failure(e: crate::input::InputError) -> Failure {
    match e.hint() {
        Some(h) => Failure::usage(format!("{e}\n  help: {h}")),
        None => Failure::usage(e.to_string()),
    }
}
