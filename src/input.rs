//! Reading the files users name: policies, profiles, programs, bundles.
//!
//! Every input is a regular file of bounded size. A FIFO would block the reader forever
//! and `/dev/zero` would be read until memory runs out, so both are refused before a byte
//! is read: the file is opened with `O_NONBLOCK` (opening a FIFO then returns at once),
//! checked with `fstat`, and read up to its limit plus one byte (a file that grows while it
//! is read is refused too).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// A policy file (`.kakoi`): far larger than any real policy.
pub const POLICY_LIMIT: u64 = 1 << 20;
/// A profile to audit or import (Docker/OCI JSON, AppArmor text, raw BPF), a bundle file.
pub const PROFILE_LIMIT: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("`{path}` is larger than {limit} bytes, the limit for this input")]
    TooLarge { path: String, limit: u64 },
    #[error("`{path}` is not UTF-8 text")]
    NotText { path: String },
}

impl InputError {
    /// The hint to print with the error.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            InputError::NotRegular { .. } => {
                Some("kakoi reads its inputs from regular files; copy the data into one first")
            }
            InputError::TooLarge { .. } => {
                Some("inputs are bounded so that a hostile file cannot exhaust memory")
            }
            _ => None,
        }
    }
}

fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The bytes of the regular file `path`, at most `limit` of them.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let shown = || path.display().to_string();
    let io = |source| InputError::Io {
        path: shown(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular {
            path: shown(),
            kind: kind(meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(InputError::TooLarge {
            path: shown(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: shown(),
            limit,
        });
    }
    Ok(bytes)
}

/// The text of the regular file `path`, at most `limit` bytes of UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    String::from_utf8(read(path, limit)?).map_err(|_| InputError::NotText {
        path: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(st.unwrap().success());
        assert!(matches!(
            read(&fifo, POLICY_LIMIT),
            Err(InputError::NotRegular { kind: "a FIFO", .. })
        ));
        assert!(matches!(
            read(Path::new("/dev/zero"), POLICY_LIMIT),
            Err(InputError::NotRegular {
                kind: "a character device",
                ..
            })
        ));
        assert!(matches!(
            read(dir.path(), POLICY_LIMIT),
            Err(InputError::NotRegular { .. })
        ));
    }

    #[test]
    fn sizes_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(matches!(read(&big, 1024), Err(InputError::TooLarge { .. })));
        assert_eq!(read(&big, 2048).unwrap().len(), 2048);
        assert!(read_text(&big, 4096).is_ok());
    }
}
