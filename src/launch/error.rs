//! A launch step that failed: which step, the errno, and a hint. The child sends it to the
//! parent over a `CLOEXEC` pipe (closed without data when `execve` succeeds).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepError {
    pub step: String,
    /// 0 when the failure has no errno.
    pub errno: i32,
    pub message: String,
    pub hint: Option<String>,
    /// Whether executing the command failed (its errno then picks 126 or 127), or a step
    /// before it.
    #[serde(skip)]
    pub stage: Stage,
}

/// Where a launch failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stage {
    /// A step of the set-up: exit status 125.
    #[default]
    Setup,
    /// The command's own `execve`: 127 not found, 126 not executable.
    Exec,
}

impl StepError {
    pub fn new(step: impl Into<String>, message: impl Into<String>) -> StepError {
        StepError {
            step: step.into(),
            errno: 0,
            message: message.into(),
            hint: None,
            stage: Stage::Setup,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> StepError {
        self.hint = Some(hint.into());
        self
    }

    /// The launcher's exit code, as container runtimes use them: 127 the command was not
    /// found, 126 it could not be executed, 125 anything else failed before exec.
    pub fn exit_code(&self) -> i32 {
        if self.stage == Stage::Exec {
            match self.errno {
                libc::ENOENT | libc::ENOTDIR => crate::exit::NOT_FOUND,
                _ => crate::exit::CANNOT_EXECUTE,
            }
        } else {
            crate::exit::LAUNCH
        }
    }

    /// Wire format: fields separated by NUL bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for f in [
            self.step.as_str(),
            &self.errno.to_string(),
            &self.message,
            self.hint.as_deref().unwrap_or(""),
            if self.stage == Stage::Exec {
                "exec"
            } else {
                ""
            },
        ] {
            v.extend_from_slice(f.replace('\0', " ").as_bytes());
            v.push(0);
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<StepError> {
        let s = String::from_utf8_lossy(b);
        let f: Vec<&str> = s.split('\0').collect();
        if f.len() < 4 {
            return None;
        }
        Some(StepError {
            step: f[0].to_string(),
            errno: f[1].parse().ok()?,
            message: f[2].to_string(),
            hint: (!f[3].is_empty()).then(|| f[3].to_string()),
            stage: if f.get(4) == Some(&"exec") {
                Stage::Exec
            } else {
                Stage::Setup
            },
        })
    }

    /// The same failure, as the command's own exec (exit status 126 or 127).
    pub fn at_exec(mut self) -> StepError {
        self.stage = Stage::Exec;
        self
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.message)
    }
}

impl std::error::Error for StepError {}

/// `.at("step")` on an `io::Result`; `.hint("…")` on the result.
pub trait At<T> {
    fn at(self, step: impl Into<String>) -> Result<T, StepError>;
}

impl<T> At<T> for std::io::Result<T> {
    fn at(self, step: impl Into<String>) -> Result<T, StepError> {
        self.map_err(|e| StepError {
            step: step.into(),
            errno: e.raw_os_error().unwrap_or(0),
            message: e.to_string(),
            hint: None,
            stage: Stage::Setup,
        })
    }
}

pub trait Hint<T> {
    fn hint(self, hint: impl Into<String>) -> Result<T, StepError>;
}

impl<T> Hint<T> for Result<T, StepError> {
    fn hint(self, hint: impl Into<String>) -> Result<T, StepError> {
        self.map_err(|mut e| {
            e.hint.get_or_insert_with(|| hint.into());
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_status_follows_the_stage_not_the_steps_name() {
        let mut e = StepError::new("execve", "not found");
        e.errno = libc::ENOENT;
        assert_eq!(e.exit_code(), 125, "a set-up step, whatever its name");
        let e = e.at_exec();
        assert_eq!(e.exit_code(), 127);
        let mut denied = e.clone();
        denied.errno = libc::EACCES;
        assert_eq!(denied.exit_code(), 126);
        // The stage crosses the pipe from the child.
        for x in [e, denied, StepError::new("mount", "busy").with_hint("h")] {
            assert_eq!(StepError::decode(&x.encode()), Some(x));
        }
    }
}
