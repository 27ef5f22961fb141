//! The command line: clap structs (raw flags) -> validated configuration -> actions.
//!
//! Architecture invariant: nothing here has side effects before the arguments are fully
//! validated; every error reaches `main` as a [`Failure`] with its exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use policy_lang::diagnostics::{line_col, render};
use policy_lang::{Diagnostic, Policy, SourceMap};

use crate::bundle::Validate;
use crate::seccomp::Backend;
use crate::{bundle, loader};

/// Exit codes, one meaning each.
pub mod exit {
    /// Success; for `check`, no errors (warnings allowed).
    pub const OK: i32 = 0;
    /// The policy has errors (or warnings with `--deny-warnings`).
    pub const POLICY: i32 = 1;
    /// Bad usage, unreadable input, or an output that could not be written.
    pub const USAGE: i32 = 2;
}

const ABOUT: &str = "Security policy compiler, auditor and hardened launcher for Linux";

const LONG_ABOUT: &str = "\
kakoi (囲い, \"enclosure\") compiles one small policy language into every layer of a
workload's sandbox: seccomp BPF, capability sets, namespaces, mounts, cgroup limits,
Landlock rules and LSM profiles, as one deterministic bundle.

A POLICY argument is a path to a `.kakoi` file or the name of a shipped policy
(see `kakoi profiles`).";

const EXAMPLES: &str = "\
Examples:
  kakoi check profiles/*.kakoi          report every error and warning
  kakoi compile default -o bundle/      compile the embedded default policy
  kakoi compile my.kakoi --emit policy  print the resolved policy as JSON
  kakoi completions bash > /etc/bash_completion.d/kakoi";

#[derive(Debug, Parser)]
#[command(name = "kakoi", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// When to colour output: auto (a terminal and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Caret snippets with help lines.
    Human,
    /// One JSON document with every diagnostic (file, line, column, code, message, help).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check policies and report every error and warning.
    ///
    /// Exit status: 0 when no policy has errors, 1 when one does, 2 when a file cannot
    /// be read.
    Check {
        /// Policy files or shipped policy names.
        #[arg(required = true, value_name = "POLICY")]
        policies: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors (exit status 1).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Compile a policy into a bundle directory, or print one artifact.
    ///
    /// The bundle holds `policy.json` (the resolved policy), `seccomp.<arch>.bpf` (raw
    /// BPF for each host architecture the policy targets), `seccomp.<arch>.json` (the
    /// same filter as OCI `linux.seccomp` JSON, for runc, crun, Docker and Podman) and
    /// `manifest.json` (format version, source hash, and the SHA-256 of every artifact). It is written
    /// atomically: on any error nothing is left behind. Output is byte-identical across
    /// runs.
    Compile {
        /// Policy file or shipped policy name.
        #[arg(value_name = "POLICY")]
        policy: String,
        /// Write the bundle into this directory (replacing an existing bundle).
        #[arg(short, long, value_name = "DIR", required_unless_present = "emit")]
        output: Option<PathBuf>,
        /// Print one artifact to stdout instead: policy, manifest, seccomp-x86_64 (raw
        /// BPF), seccomp-json-x86_64 (OCI/Docker JSON), the aarch64 forms, caps,
        /// landlock, apparmor, selinux, lsm.
        #[arg(long, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(bundle::EMIT_KINDS))]
        emit: Option<String>,
        /// Seccomp code generator. Either way the program is checked against the policy's
        /// own meaning before it is written.
        #[arg(long, value_enum, default_value_t = Backend::Kakoi)]
        backend: Backend,
        /// Run `apparmor_parser` and `secilc` on the generated LSM artifacts (auto: when
        /// they are installed).
        #[arg(long, value_enum, default_value_t = Validate::Auto)]
        validate: Validate,
        /// Sign the bundle's manifest (which holds every artifact's SHA-256) with this
        /// minisign secret key (`kakoi keygen`, or `minisign -G`; an encrypted key's
        /// password comes from $KAKOI_SIGN_PASSWORD or the terminal). The signature is
        /// `manifest.json.minisig`; `kakoi run --bundle B --verify-key KEY.pub` checks it.
        #[arg(long, value_name = "KEY", requires = "output")]
        sign: Option<PathBuf>,
    },
    /// Rewrite policy files in the canonical layout (comments are kept).
    ///
    /// With `--check`, change nothing and exit 1 if a file is not formatted.
    Fmt {
        /// Policy files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Report files that would change, and exit 1 if any would.
        #[arg(long)]
        check: bool,
    },
    /// Show a policy's compiled seccomp programs side by side: length, instructions
    /// executed per allowed syscall, and how many allowed syscalls the kernel's action
    /// cache serves.
    Stats {
        /// Policy file or shipped policy name.
        #[arg(value_name = "POLICY")]
        policy: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Disassemble a raw seccomp BPF program (a `seccomp.<arch>.bpf` file), or the
    /// program a policy compiles to.
    Disasm {
        /// A `.bpf` file, or a policy file or shipped policy name.
        #[arg(value_name = "INPUT")]
        input: String,
        /// For a policy: the code generator.
        #[arg(long, value_enum, default_value_t = Backend::Kakoi)]
        backend: Backend,
        /// For a policy: the host architecture.
        #[arg(long, default_value = "x86_64", value_parser = ["x86_64", "aarch64"])]
        host: String,
    },
    /// Print the launch plan: every step the launcher takes for a policy on this host, in
    /// order, with its values (cgroup hierarchy detected from /proc/self/mountinfo).
    Plan {
        /// Policy file or shipped policy name.
        #[arg(value_name = "POLICY", default_value = "default")]
        policy: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// The command to run instead of the policy's `argv`.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Run a command in a sandbox built from a policy: namespaces, id maps, cgroup limits,
    /// a fresh root (pivot_root), then capabilities, no_new_privs, LSM labels, Landlock and
    /// the precompiled seccomp filter, in that order, and exec.
    ///
    /// Exit status: the command's own (128 + N when killed by signal N); 125 when kakoi
    /// fails before exec (the failed step, its errno and a hint are printed), 126 when the
    /// command cannot be executed, 127 when it is not found. With no policy the embedded
    /// `default` is used. Examples:
    ///
    ///   kakoi run -- /bin/true
    ///
    ///   kakoi run --policy strict --rootfs /srv/alpine -- /bin/sh -c 'id; ls /'
    ///
    ///   kakoi compile web.kakoi -o web.bundle && kakoi run --bundle web.bundle
    #[command(verbatim_doc_comment)]
    Run {
        /// Policy file or shipped policy name.
        #[arg(
            long,
            short,
            value_name = "POLICY",
            default_value = "default",
            conflicts_with = "bundle"
        )]
        policy: String,
        /// A bundle written by `kakoi compile -o DIR`: its policy and precompiled filter
        /// (checked against the manifest before anything is created).
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        /// Refuse the bundle unless its manifest is signed by this minisign public key
        /// (`kakoi compile --sign KEY` writes the signature; KEY.pub is the key).
        #[arg(long, value_name = "KEY.pub", requires = "bundle")]
        verify_key: Option<PathBuf>,
        /// Use this directory as the root file system (read-only) instead of the policy's.
        #[arg(long, value_name = "DIR")]
        rootfs: Option<String>,
        /// Extra environment variable for the command (repeatable).
        #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Give the command a terminal (the default when stdin is one): a pseudo-terminal
        /// of the sandbox's own, relayed to the caller's, with job control and Ctrl-C.
        #[arg(long, short = 't', conflicts_with = "no_tty")]
        tty: bool,
        /// No terminal, even when stdin is one: stdin, stdout and stderr are relayed
        /// through pipes (the caller's terminal never reaches the command).
        #[arg(long = "no-tty", short = 'T')]
        no_tty: bool,
        /// Publish a port: connections to HOST_PORT on the host's own addresses go to
        /// SANDBOX_PORT in the sandbox (`8080:80`, `5353:53/udp`; repeatable). Needs
        /// `mode veth` (root).
        #[arg(long, value_name = "HOST_PORT:SANDBOX_PORT[/udp]")]
        publish: Vec<String>,
        /// Make the sandbox's cgroups below this cgroup (a path such as `/batch`, the same
        /// in every hierarchy; made if missing) instead of below kakoi's own cgroup.
        #[arg(long, value_name = "PATH", env = "KAKOI_CGROUP_PARENT")]
        cgroup_parent: Option<String>,
        /// Print the launch plan instead of launching.
        #[arg(long)]
        dry_run: bool,
        /// Output format of --dry-run and of launch errors.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// The command and its arguments (default: the policy's `argv`).
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Audit profiles: what they allow and what is risky, with an exposure score.
    ///
    /// INPUT is a kakoi policy (file or shipped name), a bundle directory, a
    /// Docker/Podman/OCI seccomp JSON profile, a raw BPF program, an OCI runtime
    /// config.json, or AppArmor profile text (format detected, or --input-format); --pid
    /// audits a running process. Exit status: 0, or 1 when a finding is at or above
    /// --fail-on or the score is above --threshold, 2 on unreadable input. Examples:
    ///
    ///   kakoi audit docker-default.json
    ///
    ///   kakoi audit --format sarif config.json > kakoi.sarif
    ///
    ///   kakoi audit --fail-on high --baseline accepted.json profiles/*.json
    #[command(verbatim_doc_comment)]
    Audit {
        #[arg(value_name = "INPUT")]
        inputs: Vec<String>,
        /// Audit a running process (caps, no_new_privs, its seccomp filters, namespaces, label).
        #[arg(long, value_name = "PID")]
        pid: Vec<i32>,
        /// The input format (default: detected).
        #[arg(long, value_enum)]
        input_format: Option<crate::audit::InputFormat>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = AuditFormat::Human)]
        format: AuditFormat,
        /// Exit 1 when a finding has this severity or higher.
        #[arg(long, value_enum, value_name = "SEVERITY")]
        fail_on: Option<crate::audit::Severity>,
        /// Exit 1 when an input's exposure score is above this (0.0–10.0).
        #[arg(long, value_name = "SCORE")]
        threshold: Option<f64>,
        /// Accept the findings listed in this file (written by --write-baseline).
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        /// Write the current findings as a baseline file and exit 0.
        #[arg(long, value_name = "FILE")]
        write_baseline: Option<PathBuf>,
    },
    /// Compare two profiles semantically: per ABI, which syscalls, argument values,
    /// capabilities, namespaces and masked paths NEW allows that OLD denied (and the
    /// reverse). The inputs may be of different formats. Exit status as diff(1), for
    /// pull-request gates: 0 when NEW allows nothing OLD denied, 1 when NEW widens OLD,
    /// 2 on error.
    Diff {
        #[arg(value_name = "OLD")]
        old: String,
        #[arg(value_name = "NEW")]
        new: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Turn a Docker/OCI seccomp JSON profile (or an OCI config.json's `linux.seccomp`),
    /// a raw BPF program or a running process's filter into a readable kakoi policy.
    ///
    /// Raw BPF is decompiled per ABI by symbolic execution: argument-independent syscalls
    /// become plain rules, and each path of an argument-dependent one becomes a rule with
    /// the comparisons it made (`allow socket if family != AF_ALG && …`). The result is
    /// checked before it is written: the same decision table per ABI, and the same action
    /// on a witness of every path of both programs.
    ///
    /// Example: kakoi import --arches x86_64,x32 docker-default.json -o docker.kakoi
    Import {
        #[arg(value_name = "INPUT", required_unless_present = "pid")]
        input: Option<String>,
        /// Import the seccomp filter of a running process instead (root: it is read with
        /// PTRACE_SECCOMP_GET_FILTER).
        #[arg(long, value_name = "PID", conflicts_with = "input")]
        pid: Option<i32>,
        /// Write the policy here (atomically) instead of to standard output.
        #[arg(short, long, value_name = "POLICY.kakoi")]
        output: Option<PathBuf>,
        /// The input format (default: detected).
        #[arg(long, value_enum)]
        input_format: Option<crate::audit::InputFormat>,
        /// Import only these ABIs (comma-separated: x86_64, x86, x32, aarch64). For
        /// profiles the language refuses as they stand, e.g. Docker's, whose argument rules
        /// `socketcall` bypasses on x86.
        #[arg(long, value_name = "ARCH,…", value_delimiter = ',', value_parser = ["x86_64", "x86", "x32", "aarch64"])]
        arches: Vec<String>,
    },
    /// Explain the seccomp decision for one syscall: the action and the rule (with its
    /// source location) that decides it. INPUT is a policy, a Docker/OCI seccomp JSON
    /// profile, or a raw `.bpf` program (which has no rules: only the action).
    Explain {
        /// Policy, `.json` profile or `.bpf` program.
        #[arg(value_name = "INPUT")]
        input: String,
        /// Syscall name (or number).
        #[arg(value_name = "SYSCALL")]
        syscall: String,
        /// Argument values, in order (decimal or 0x hex).
        #[arg(value_name = "ARG")]
        args: Vec<String>,
        /// The ABI making the call.
        #[arg(long, default_value = "x86_64", value_parser = ["x86_64", "x86", "x32", "aarch64"])]
        arch: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Make a key pair for signed bundles (minisign format, Ed25519): the secret key at
    /// FILE (mode 0600, not encrypted; `minisign -G` makes an encrypted one) and the
    /// public key at FILE.pub. Existing files are never overwritten. Example:
    ///
    ///   kakoi keygen -o ci.key && kakoi compile web.kakoi --sign ci.key -o web.bundle
    ///
    ///   kakoi run --bundle web.bundle --verify-key ci.key.pub -- /srv/app
    #[command(verbatim_doc_comment)]
    Keygen {
        /// The secret key's file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Remove what kakoi left behind: the cgroups of launchers that were killed before
    /// they could clean up (told from a live launcher by its pid and start time), the
    /// idle cgroups of the v1 pool (launches keep some for reuse; each launch already
    /// removes those idle longer than 10 minutes next to its own), the address leases and
    /// published-port rules (nftables table `ip kakoi`) of killed launchers. Searches every
    /// cgroup hierarchy kakoi uses, wherever launches made them. Exit status: 0, or 1 when
    /// one could not be removed. Examples:
    ///
    ///   kakoi gc --dry-run
    ///
    ///   kakoi gc --format json
    #[command(verbatim_doc_comment)]
    Gc {
        /// List what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Output format (JSON: removed, failed, live).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// List the shipped policies embedded in this binary (name them wherever a policy file
    /// goes: `kakoi compile strict -o out/`).
    Profiles {
        /// Output format (JSON: name, description, source).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

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

fn diag_json(map: &SourceMap, d: &Diagnostic) -> serde_json::Value {
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

fn check(
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

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn compile(
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
                        let span = f.origin.as_deref().and_then(|o| span_of(&loaded.map, o));
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

fn fmt(files: &[PathBuf], check: bool, color: bool) -> Result<(), Failure> {
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

fn stats(policy: &str, format: Format, color: bool) -> Result<(), Failure> {
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

fn disasm(input: &str, backend: Backend, host: &str, color: bool) -> Result<(), Failure> {
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

/// The span of a one-character region at `file:line:column` in the source map.
fn span_of(map: &SourceMap, origin: &str) -> Option<policy_lang::Span> {
    let mut it = origin.rsplitn(3, ':');
    let col: usize = it.next()?.parse().ok()?;
    let line: usize = it.next()?.parse().ok()?;
    let file = map.find(it.next()?)?;
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

/// Output formats of `kakoi audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Human,
    Json,
    /// SARIF 2.1.0, for code scanning (GitHub, GitLab, Azure DevOps).
    Sarif,
}

/// Read one input into the auditor's model.
fn subject(
    input: &str,
    fmt: Option<crate::audit::InputFormat>,
    color: bool,
) -> Result<crate::audit::Subject, Failure> {
    use crate::audit::{load, InputFormat};
    let fmt = match fmt {
        Some(f) => f,
        None => load::detect(input).map_err(Failure::usage)?,
    };
    let read = || read_text(input);
    match fmt {
        InputFormat::Policy => {
            let (p, _) = load_ok(input, color)?;
            load::policy(&p, input, None).map_err(Failure::usage)
        }
        InputFormat::Bundle => {
            let host = crate::launch::run::host_arch();
            let (b, tampered) = crate::bundle::load_dir_for_audit(Path::new(input), host)
                .map_err(|m| Failure::usage(format!("invalid bundle `{input}`: {m}")))?;
            let prog = match &b.seccomp {
                Some(bytes) => {
                    Some(crate::bpf::decode(bytes).map_err(|e| Failure::usage(e.to_string()))?)
                }
                None => None,
            };
            let mut s = load::policy(&b.policy, input, prog).map_err(Failure::usage)?;
            s.tampered = tampered.map(|why| {
                let file = Path::new(input).join(format!("seccomp.{}.bpf", host.name()));
                (
                    why,
                    crate::audit::Location::file(&file.display().to_string()),
                )
            });
            Ok(s)
        }
        InputFormat::SeccompJson => load::seccomp_json(input, &read()?).map_err(Failure::usage),
        InputFormat::Bpf => {
            let bytes = read_bytes(input)?;
            load::bpf_file(input, &bytes).map_err(Failure::usage)
        }
        InputFormat::Oci => load::oci(input, &read()?).map_err(Failure::usage),
        InputFormat::Apparmor => Ok(load::apparmor(input, &read()?)),
        InputFormat::Process => {
            let pid = input
                .parse()
                .map_err(|_| Failure::usage(format!("`{input}` is not a pid")))?;
            crate::audit::live::process(pid).map_err(Failure::usage)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn audit_cmd(
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

fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn import_cmd(
    input: Option<&str>,
    pid: Option<i32>,
    output: Option<&Path>,
    fmt: Option<crate::audit::InputFormat>,
    arches: &[String],
    color: bool,
) -> Result<(), Failure> {
    let (s, input) = match (pid, input) {
        (Some(pid), _) => (
            crate::audit::live::process(pid).map_err(Failure::usage)?,
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

fn diff_cmd(old: &str, new: &str, format: Format, color: bool) -> Result<(), Failure> {
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

fn plan(policy: &str, format: Format, command: &[String], color: bool) -> Result<(), Failure> {
    let (p, _) = load_ok(policy, color)?;
    let facts = crate::host::Facts::probe()
        .map_err(|e| Failure::usage(format!("cannot read /proc/self: {e}")))?;
    let options = crate::launch::run::Options {
        argv: command.to_vec(),
        read_layout: true,
        ..Default::default()
    };
    let launch = crate::launch::run::prepare(&p, options, &facts).map_err(|e| {
        eprintln!("kakoi: {}: {}", e.step, e.message);
        if let Some(h) = &e.hint {
            eprintln!("  hint: {h}");
        }
        Failure {
            code: e.exit_code(),
            message: None,
        }
    })?;
    print_plan(&launch.plan, format)
}

#[allow(clippy::too_many_arguments)]
fn run_cmd(
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
    const LAUNCH_FAILED: i32 = 125;
    // An input that cannot be read or has errors exits as in every other command (2, 1):
    // 125 is for a launch that failed.
    let (mut p, prog) = match bundle {
        Some(dir) => {
            let invalid =
                |m: String| Failure::usage(format!("invalid bundle `{}`: {m}", dir.display()));
            let b = match verify_key {
                None => {
                    crate::bundle::load_dir_for_launch(dir, run::host_arch()).map_err(invalid)?
                }
                Some(key) => {
                    // The manifest is read once: the bytes verified are the bytes whose
                    // hashes the other files are checked against.
                    let read = |name: &str| {
                        crate::input::read(&dir.join(name), crate::input::PROFILE_LIMIT)
                            .map_err(|e| e.to_string())
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
                    crate::bundle::load_with_for_launch(&cached, run::host_arch())
                        .map_err(invalid)?
                }
            };
            (b.policy, b.seccomp)
        }
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
                code: LAUNCH_FAILED,
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
    let report = |e: &crate::launch::error::StepError| {
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
    };
    let failed = |e: &crate::launch::error::StepError| {
        report(e);
        Failure {
            code: e.exit_code(),
            message: None,
        }
    };
    let facts = crate::host::Facts::probe()
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
    };
    let launch = run::prepare(&p, options, &facts).map_err(|e| failed(&e))?;
    if dry_run {
        return print_plan(&launch.plan, format);
    }
    crate::launch::trace::mark("policy loaded");
    for w in &launch.plan.warnings {
        eprintln!("kakoi: warning: {w}");
    }
    crate::launch::trace::mark("prepared (seccomp, Landlock rules, LSM checks)");
    match run::run(&launch) {
        Outcome::Failed(e) => {
            report(&e);
            Err(Failure {
                code: e.exit_code(),
                message: None,
            })
        }
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

/// `HOST:SANDBOX[/udp|/tcp]`, as `docker run -p` writes it.
fn parse_publish(spec: &str) -> Option<policy_lang::ir::Publish> {
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

fn gc(dry_run: bool, format: Format) -> Result<(), Failure> {
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

fn print_plan(plan: &crate::launch::plan::Plan, format: Format) -> Result<(), Failure> {
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

fn explain(
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
    let (action, rule): (policy_lang::ir::Action, Option<String>) = if input.ends_with(".bpf") {
        let bytes = read_bytes(input)?;
        let insns =
            crate::bpf::decode(&bytes).map_err(|e| Failure::usage(format!("`{input}`: {e}")))?;
        crate::bpf::validate(&insns)
            .map_err(|e| Failure::usage(format!("`{input}` is not a valid program: {e}")))?;
        let data = crate::bpf::Data {
            nr,
            arch: arch.audit_arch(),
            args: regs,
            ip: 0,
        };
        let run = crate::bpf::run(&insns, &data);
        (
            crate::bpf::ret_action(run.ret),
            Some(format!(
                "the program returns {:#010x} after {} instructions",
                run.ret, run.steps
            )),
        )
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
        let d = imported.seccomp.decide(arch.audit_arch(), nr, &regs);
        let why = d.rule.map(|i| {
            format!(
                "{}: /syscalls/{}",
                input,
                imported.seccomp.rules[i].origin.line - 1
            )
        });
        (
            d.action,
            why.or_else(|| Some(format!("{input}: defaultAction"))),
        )
    } else {
        let (p, _) = load_ok(input, color)?;
        let d = p.seccomp.decide(arch.audit_arch(), nr, &regs);
        let why = match d.rule {
            Some(i) => {
                let o = &p.seccomp.rules[i].origin;
                format!("{}:{}:{}: rule {}", o.file, o.line, o.column, i + 1)
            }
            None if !p.seccomp.arches.contains(&arch) => {
                format!(
                    "{} is not a target architecture of the policy: the `bad-arch` action",
                    arch.name()
                )
            }
            None if catalogue::syscall_by_nr(arch, nr).is_none() => {
                "no syscall has this number: the `unknown` action".into()
            }
            None => "no rule matches: the `default` action".into(),
        };
        (d.action, Some(why))
    };
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
