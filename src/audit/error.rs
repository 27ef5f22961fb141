//! Why an input could not be read into the auditor's model: typed, with the input it is
//! about, like the writers' errors.

/// A reader's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read (missing, too large, not a regular file).
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("`{name}`: not valid JSON: {source}")]
    Json {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{input}` is a directory but not a kakoi bundle (no manifest.json)")]
    NotABundle { input: String },
    #[error("`{input}`: JSON, but neither an OCI config nor a seccomp profile")]
    UnknownJson { input: String },
    #[error("cannot tell the format of `{input}`; say it with --input-format")]
    UnknownFormat { input: String },
    /// A Docker/OCI seccomp profile runc would refuse, or kakoi cannot read.
    #[error(transparent)]
    Profile(#[from] crate::seccomp::json::Error),
    #[error("`{name}`: {source}")]
    Bpf {
        name: String,
        #[source]
        source: crate::bpf::Error,
    },
    /// The rules could not be compiled into a program to analyse.
    #[error(transparent)]
    Compile(#[from] crate::seccomp::Error),
    #[error("{path}: {source}")]
    Proc {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} of process {pid}: {source}")]
    Ptrace {
        pid: i32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Input(e) => e.hint().map(str::to_string),
            Error::Ptrace { .. } => Some("reading another process's filters needs root (CAP_SYS_ADMIN) and ptrace rights over it".into()),
            _ => None,
        }
    }
}
