//! A container's state under `--root`: `ID/state.json` (its process, by pid and start
//! time, so a reused pid is not taken for it; its bundle and cgroups) and `ID/exec.fifo`,
//! which exists from `create` until `start`. Creating `ID/` is the lock against two
//! containers with one id; everything else only reads or removes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::launch::sys;

/// The FIFO a created container waits on.
pub const FIFO: &str = "exec.fifo";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// The process's start time (clock ticks after boot).
    pub start: u64,
    pub bundle: PathBuf,
    /// When it was created (seconds since the epoch).
    pub created: u64,
    pub cgroups: Vec<PathBuf>,
    pub annotations: BTreeMap<String, String>,
    #[serde(skip)]
    dir: PathBuf,
}

/// The runtime-spec's statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// Make a FIFO (mode 0600).
pub fn mkfifo(path: &Path) -> Result<(), String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: a NUL byte in the path", path.display()))?;
    sys::mkfifo(&c).map_err(|e| format!("mkfifo {}: {e}", path.display()))
}

/// A signal by name (`KILL`, `SIGKILL`) or number.
pub fn signal(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = text.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        "PIPE" => libc::SIGPIPE,
        _ => return None,
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

/// Whether `pid` with start time `start` is a live (not zombie) process.
fn alive(pid: i32, start: u64) -> bool {
    crate::launch::owner::stat(pid as u32).is_some_and(|(state, s)| state != 'Z' && s == start)
}

impl State {
    /// Claim `root/ID` for a new container (fails when the id is taken).
    pub fn reserve(root: &Path, id: &str) -> Result<PathBuf, String> {
        if !valid_id(id) {
            return Err(format!(
                "invalid container id `{id}` (letters, digits, -, _, ., +)"
            ));
        }
        std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let dir = root.join(id);
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!("container `{id}` already exists"),
            _ => format!("{}: {e}", dir.display()),
        })?;
        Ok(dir)
    }

    pub fn new(
        id: &str,
        pid: i32,
        bundle: &Path,
        cgroups: Vec<PathBuf>,
        annotations: BTreeMap<String, String>,
    ) -> State {
        State {
            id: id.to_string(),
            pid,
            start: crate::launch::owner::start_time(pid as u32).unwrap_or(0),
            bundle: bundle.to_path_buf(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cgroups,
            annotations,
            dir: PathBuf::new(),
        }
    }

    /// Write `state.json` in `dir` (atomically: a reader sees all of it or none).
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let tmp = dir.join(".state.json");
        let text = serde_json::to_string(self).expect("serializes");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, dir.join("state.json")))
            .map_err(|e| format!("{}: {e}", dir.display()))
    }

    pub fn load(root: &Path, id: &str) -> Result<State, String> {
        if !valid_id(id) {
            return Err(format!("invalid container id `{id}`"));
        }
        let dir = root.join(id);
        let text = std::fs::read_to_string(dir.join("state.json"))
            .map_err(|_| format!("container `{id}` does not exist"))?;
        let mut s: State =
            serde_json::from_str(&text).map_err(|e| format!("{id}: state.json: {e}"))?;
        s.dir = dir;
        Ok(s)
    }

    /// Every container under `root`, by id.
    pub fn all(root: &Path) -> Vec<State> {
        let mut v: Vec<State> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| State::load(root, &e.file_name().to_string_lossy()).ok())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn status(&self) -> Status {
        if !alive(self.pid, self.start) {
            Status::Stopped
        } else if self.dir.join(FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// The runtime-spec's state JSON.
    pub fn oci(&self) -> serde_json::Value {
        let status = self.status();
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.id,
            "status": status.name(),
            "bundle": self.bundle,
            "annotations": self.annotations,
            "created": self.created,
        });
        if status != Status::Stopped {
            v["pid"] = serde_json::json!(self.pid);
        }
        v
    }

    /// Let the created container run: open the FIFO's other end and take its byte.
    pub fn start(&self) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let fifo = self.dir.join(FIFO);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| format!("{}: {e}", fifo.display()))?;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut b = [0u8; 1];
        loop {
            match f.read(&mut b) {
                Ok(1) => break,
                // No writer yet (its blocked open is being woken), or no data yet.
                Ok(_) | Err(_) if alive(self.pid, self.start) => {}
                _ => return Err("the container's process exited before its start".into()),
            }
            if std::time::Instant::now() > until {
                return Err("the container did not take its start".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = std::fs::remove_file(&fifo);
        Ok(())
    }

    /// Signal the container's process (with `all`, every process of its cgroups).
    pub fn kill(&self, sig: i32, all: bool) -> Result<(), String> {
        if all {
            for p in self.pids() {
                let _ = sys::kill(p, sig);
            }
            return Ok(());
        }
        if !alive(self.pid, self.start) {
            return Err(format!("container `{}` is not running", self.id));
        }
        sys::kill(self.pid, sig).map_err(|e| format!("kill {}: {e}", self.pid))
    }

    /// The pids in the container's cgroups.
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .cgroups
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        if v.is_empty() && alive(self.pid, self.start) {
            v.push(self.pid);
        }
        v.sort();
        v.dedup();
        v
    }

    /// Wait for the container's process, the caller's child (`run`); its exit status.
    pub fn wait(&self) -> i32 {
        match sys::waitpid(self.pid) {
            Ok(sys::Exit::Code(c)) => c,
            Ok(sys::Exit::Signal(s)) => 128 + s,
            Err(_) => 0,
        }
    }

    /// Remove the container: its cgroups and state (`force`: killing it first).
    pub fn delete(&self, force: bool) -> Result<(), String> {
        let status = self.status();
        if status != Status::Stopped {
            if !force && status == Status::Running {
                return Err(format!(
                    "cannot delete container `{}` that is not stopped: {}",
                    self.id,
                    status.name()
                ));
            }
            let _ = sys::kill(self.pid, libc::SIGKILL);
            for p in self.pids() {
                let _ = sys::kill(p, libc::SIGKILL);
            }
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while alive(self.pid, self.start) && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        for d in &self.cgroups {
            for _ in 0..500 {
                match std::fs::remove_dir(d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(2))
                    }
                    _ => break,
                }
            }
        }
        std::fs::remove_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))
    }
}
