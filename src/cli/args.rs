//! The command line's clap types: commands, flags, their help and examples.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use crate::bundle::{self, Validate};
use crate::seccomp::Backend;

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
    /// kakoi as an OCI runtime, with runc's command line (the same as the binary invoked
    /// as `kakoi-runtime`): create, start, state, kill, delete, run, spec, features, list, ps.
    ///
    ///   kakoi oci spec && kakoi oci create --bundle . c1 && kakoi oci start c1
    ///   kakoi oci --root /run/kakoi/oci state c1
    #[command(verbatim_doc_comment)]
    Oci {
        /// runc's arguments.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
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

/// Output formats of `kakoi audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Human,
    Json,
    /// SARIF 2.1.0, for code scanning (GitHub, GitLab, Azure DevOps).
    Sarif,
}
