//! kakoi as an OCI runtime: runc's command line (`kakoi-runtime …`, or `kakoi oci …`),
//! the container lifecycle (`create`, `start`, `state`, `kill`, `delete`, `run`) kept
//! under `--root`, and `spec`/`features`/`list`. A container is a detached launch of
//! the plan built from its `config.json` ([`config`]): the same launcher as
//! `kakoi run`, which waits for `start` on a FIFO just before the command's exec.

pub mod config;
pub mod state;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::launch::run;
use state::{State, Status};

/// runc's global options (those kakoi has no use for are accepted and ignored, as the
/// engines that call runtimes pass them).
#[derive(Debug, Parser)]
#[command(
    name = "kakoi-runtime",
    version,
    about = "kakoi as an OCI runtime (runc's command line)",
    after_help = "Examples:\n  kakoi-runtime spec                       # write a default config.json here\n  kakoi-runtime create --bundle B ID && kakoi-runtime start ID\n  kakoi-runtime state ID\n  kakoi-runtime kill ID TERM && kakoi-runtime delete ID\n  podman --runtime /usr/local/bin/kakoi-runtime run --rootfs DIR sh"
)]
pub struct Cli {
    /// Where container state is kept.
    #[arg(long, global = true, default_value = "/run/kakoi/oci")]
    pub root: PathBuf,
    /// Log file (errors are also written there, as runc does).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
    /// Accepted for compatibility (kakoi manages cgroupfs directly).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for compatibility (kakoi detects rootless launches itself).
    #[arg(long)]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Cmd,
}

/// What `create` and `run` take.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long, short, default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Accepted for compatibility (kakoi always pivots).
    #[arg(long)]
    no_pivot: bool,
    /// Accepted for compatibility.
    #[arg(long)]
    no_new_keyring: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a container from a bundle; it waits for `start`.
    Create(CreateArgs),
    /// Run a created container's command.
    Start { id: String },
    /// A container's state, as JSON.
    State { id: String },
    /// Send a signal (default TERM) to a container's process.
    Kill {
        /// Every process of the container (its cgroup).
        #[arg(long, short)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Remove a stopped container (with --force, any).
    Delete {
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// Create, start and wait for a container; exit with its status.
    Run {
        #[arg(long, short)]
        detach: bool,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// What this runtime supports, as JSON.
    Features,
    /// The containers under --root.
    List {
        #[arg(long, short, default_value = "table")]
        format: String,
        #[arg(long, short)]
        quiet: bool,
    },
    /// The container's processes (pids on the host).
    Ps {
        #[arg(long, short, default_value = "table")]
        format: String,
        id: String,
    },
}

/// A failure: its message (also logged to `--log`) and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
    }
}

/// Run the runtime's command line `args` (with the program name first).
pub fn main(args: impl IntoIterator<Item = String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let (log, json) = (cli.log.clone(), cli.log_format == "json");
    match run_cmd(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("kakoi-runtime: {}", f.message);
            if let Some(path) = log {
                let line = if json {
                    serde_json::json!({"level": "error", "msg": f.message}).to_string()
                } else {
                    format!("level=error msg={:?}", f.message)
                };
                if let Ok(mut file) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = writeln!(file, "{line}");
                }
            }
            f.code
        }
    }
}

fn run_cmd(cli: Cli) -> Result<i32, Failure> {
    let root = cli.root;
    match cli.command {
        Cmd::Create(a) => create(&root, &a),
        Cmd::Start { id } => start(&root, &id),
        Cmd::State { id } => {
            let s = State::load(&root, &id).map_err(fail)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&s.oci()).expect("serializes")
            );
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let s = State::load(&root, &id).map_err(fail)?;
            let sig =
                state::signal(&signal).ok_or_else(|| fail(format!("unknown signal `{signal}`")))?;
            s.kill(sig, all).map_err(fail)?;
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            let s = match State::load(&root, &id) {
                Ok(s) => s,
                // runc: deleting a container that does not exist is not an error with --force.
                Err(_) if force => return Ok(0),
                Err(e) => return Err(fail(e)),
            };
            s.delete(force).map_err(fail)?;
            Ok(0)
        }
        Cmd::Run { detach, create: a } => {
            create(&root, &a)?;
            let id = a.id;
            start(&root, &id)?;
            if detach {
                return Ok(0);
            }
            let s = State::load(&root, &id).map_err(fail)?;
            let code = s.wait();
            let _ = s.delete(true);
            Ok(code)
        }
        Cmd::Spec { bundle, rootless } => spec(&bundle, rootless),
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&features()).expect("serializes")
            );
            Ok(0)
        }
        Cmd::List { format, quiet } => {
            let all = State::all(&root);
            if format == "json" {
                let v: Vec<_> = all.iter().map(State::oci).collect();
                println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
            } else if quiet {
                for s in &all {
                    println!("{}", s.id);
                }
            } else {
                println!("ID\tPID\tSTATUS\tBUNDLE\tCREATED");
                for s in &all {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        s.id,
                        s.pid,
                        s.status().name(),
                        s.bundle.display(),
                        s.created
                    );
                }
            }
            Ok(0)
        }
        Cmd::Ps { format, id } => {
            let s = State::load(&root, &id).map_err(fail)?;
            let pids = s.pids();
            if format == "json" {
                println!("{}", serde_json::to_string(&pids).expect("serializes"));
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
            Ok(0)
        }
    }
}

/// `create`: translate the bundle's config, launch it detached, record its state.
fn create(root: &Path, a: &CreateArgs) -> Result<i32, Failure> {
    let (id, bundle, pid_file) = (a.id.as_str(), a.bundle.as_path(), a.pid_file.as_deref());
    if a.preserve_fds > 0 {
        return Err(fail("`--preserve-fds` is not supported by kakoi yet"));
    }
    let bundle = std::fs::canonicalize(bundle)
        .map_err(|e| fail(format!("bundle {}: {e}", bundle.display())))?;
    let c = config::load(&bundle).map_err(|e| fail(e.to_string()))?;
    if c.terminal || a.console_socket.is_some() {
        return Err(fail(
            "config.json: `process.terminal` (a console socket) is not supported by kakoi yet",
        ));
    }
    let dir = State::reserve(root, id).map_err(fail)?;
    let result = (|| {
        let fifo = dir.join(state::FIFO);
        state::mkfifo(&fifo).map_err(fail)?;
        // The container's root opens it for writing, through its user namespace when it
        // has one: owned by the host ids its root maps to, as runc makes it.
        let host_id = |m: &[policy_lang::ir::IdMap]| {
            m.iter()
                .find(|e| e.inside == 0 && e.count > 0)
                .map(|e| e.outside)
        };
        let ids = &c.policy.identity;
        if host_id(&ids.uid_map).is_some() || host_id(&ids.gid_map).is_some() {
            use std::os::unix::fs::PermissionsExt;
            std::os::unix::fs::chown(&fifo, host_id(&ids.uid_map), host_id(&ids.gid_map))
                .and_then(|()| {
                    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o622))
                })
                .map_err(|e| fail(format!("{}: {e}", fifo.display())))?;
        }
        let facts = crate::host::Facts::probe_for(Some(&c.policy))
            .map_err(|e| fail(format!("cannot read /proc/self: {e}")))?;
        let (parent, name) = match &c.cgroups_path {
            Some(p) => {
                let p = format!("/{}", p.trim_start_matches('/'));
                match p.rsplit_once('/') {
                    Some(("", n)) => (None, n.to_string()),
                    Some((parent, n)) => (Some(parent.to_string()), n.to_string()),
                    None => (None, p),
                }
            }
            None => (None, format!("kakoi-oci-{id}")),
        };
        let options = run::Options {
            argv: c.argv.clone(),
            env: c.env.clone(),
            seccomp: None,
            tty: crate::launch::stdio::Tty::Inherit,
            cgroup_parent: parent,
            read_layout: false,
            detach: Some(crate::launch::plan::Detach {
                fifo,
                cgroup_name: name,
                mqueue: c.mqueue,
                oom_score_adj: c.oom_score_adj,
                sysctl: c.sysctl.clone(),
            }),
        };
        let step_failure = |e: crate::launch::error::StepError| Failure {
            message: match &e.hint {
                Some(h) => format!("{}: {}\n  hint: {h}", e.step, e.message),
                None => format!("{}: {}", e.step, e.message),
            },
            code: e.exit_code(),
        };
        let launch = run::prepare(&c.policy, options, &facts).map_err(step_failure)?;
        match run::run(&launch) {
            run::Outcome::Created { pid, cgroups } => {
                let s = State::new(id, pid, &bundle, cgroups, c.annotations.clone());
                s.save(&dir).map_err(fail)?;
                if let Some(f) = pid_file {
                    std::fs::write(f, format!("{pid}"))
                        .map_err(|e| fail(format!("pid file {}: {e}", f.display())))?;
                }
                Ok(0)
            }
            run::Outcome::Failed(e) => Err(step_failure(e)),
            run::Outcome::Exited { code, .. } => Ok(code),
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// `start`: let a created container run its command.
fn start(root: &Path, id: &str) -> Result<i32, Failure> {
    let s = State::load(root, id).map_err(fail)?;
    match s.status() {
        Status::Created => {}
        other => {
            return Err(fail(format!(
                "cannot start a container that is {}",
                other.name()
            )))
        }
    }
    s.start().map_err(fail)?;
    Ok(0)
}

fn spec(bundle: &Path, rootless: bool) -> Result<i32, Failure> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(fail(format!("{} already exists", path.display())));
    }
    let spec = if rootless {
        use std::os::unix::fs::MetadataExt;
        let me = std::fs::metadata("/proc/self").map_err(|e| fail(e.to_string()))?;
        oci_spec::runtime::Spec::rootless(me.uid(), me.gid())
    } else {
        oci_spec::runtime::Spec::default()
    };
    let text = serde_json::to_string_pretty(&spec).expect("serializes") + "\n";
    std::fs::write(&path, text).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    Ok(0)
}

/// What `features` reports: the runtime-spec's `features.json` shape.
fn features() -> serde_json::Value {
    let ns: Vec<&str> = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"].to_vec();
    let caps: Vec<String> = policy_lang::catalogue::capabilities()
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": [],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "private", "rprivate", "slave", "rslave"],
        "linux": {
            "namespaces": ns,
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": { "enabled": true },
            "apparmor": { "enabled": true },
            "selinux": { "enabled": false },
        },
        "annotations": { "io.github.kakoi.policy": "a shipped policy name or a path: Landlock and the coherence checks for the container (not yet)" },
    })
}
