//! Where policy text comes from: files on disk and the embedded shipped policies.
//!
//! A bare name (`default`) means a shipped policy; anything with a `/` or ending in
//! `.kakoi` is a file, relative to the file that names it.

use std::path::{Path, PathBuf};

use policy_lang::Loader;

use crate::profiles;

/// Loads shipped policies by name and files relative to the including file.
pub struct FsLoader;

/// Display name used for an embedded policy in diagnostics.
pub fn shipped_display(name: &str) -> String {
    format!("<shipped>/{name}.kakoi")
}

/// Whether `name` refers to a file rather than a shipped policy.
pub fn is_path(name: &str) -> bool {
    name.contains('/') || name.ends_with(".kakoi")
}

/// Read a policy named on the command line: a path, or the name of a shipped policy.
pub fn read_root(name: &str) -> Result<(String, String), String> {
    if !is_path(name) && !Path::new(name).exists() {
        return match profiles::get(name) {
            Some(t) => Ok((shipped_display(name), t.to_string())),
            None => Err(format!(
                "no file and no shipped policy named `{name}` (shipped: {})",
                profiles::names().collect::<Vec<_>>().join(", ")
            )),
        };
    }
    crate::input::read_text(Path::new(name), crate::input::POLICY_LIMIT)
        .map(|t| (name.to_string(), t))
        .map_err(|e| match e.hint() {
            Some(h) => format!("{e}\n  help: {h}"),
            None => e.to_string(),
        })
}

impl Loader for FsLoader {
    fn load(&self, name: &str, from: &str) -> Result<(String, String), String> {
        if !is_path(name) {
            return profiles::get(name)
                .map(|t| (shipped_display(name), t.to_string()))
                .ok_or_else(|| format!("no shipped policy named `{name}`"));
        }
        if from.starts_with("<shipped>/") && !name.starts_with('/') {
            return Err("a shipped policy cannot include a relative file".into());
        }
        let base = Path::new(from).parent().unwrap_or(Path::new(""));
        let path: PathBuf = normalize(&if Path::new(name).is_absolute() {
            name.into()
        } else {
            base.join(name)
        });
        let shown = path.to_string_lossy().into_owned();
        crate::input::read_text(&path, crate::input::POLICY_LIMIT)
            .map(|t| (shown.clone(), t))
            .map_err(|e| e.to_string())
    }

    fn shipped(&self) -> Vec<String> {
        profiles::names().map(String::from).collect()
    }
}

/// Remove `.` and resolve `..` lexically, so one file has one display name (and include
/// cycles are seen at once).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}
