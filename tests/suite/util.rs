use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The project root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `kakoi` command with colours off.
pub fn kakoi() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kakoi"));
    c.env("NO_COLOR", "1").current_dir(root());
    c
}

pub fn run(args: &[&str]) -> Output {
    kakoi().args(args).output().expect("kakoi runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Files with `ext` directly in `dir`, sorted.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// The policies every backend is tried on: the shipped ones, then the fixtures that
/// check clean (`fixtures/valid`, `fixtures/seccomp`), as names `kakoi` accepts.
pub fn policy_corpus() -> Vec<String> {
    let mut v: Vec<String> = kakoi::profiles::names().map(String::from).collect();
    for d in ["fixtures/valid", "fixtures/seccomp"] {
        for f in files(&root().join(d), "kakoi") {
            v.push(
                f.strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    v
}

/// A file of ../shared/data (real profiles), or `None` with a message when the folder is
/// absent; under `CI=true` its absence is a failure.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let path = root().join("../shared/data").join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").is_err(),
        "{} is missing under CI",
        path.display()
    );
    eprintln!("skipped: {} not found", path.display());
    None
}

/// xorshift64*: deterministic, so a failure names a seed that reproduces it.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// A child process the test started, killed and reaped if the test ends (or panics)
/// while it runs: a failed assertion must not leave a server or a sandbox behind.
pub struct Reaped(Option<std::process::Child>);

impl Reaped {
    pub fn new(c: std::process::Child) -> Reaped {
        Reaped(Some(c))
    }

    /// The child, for the test to wait for itself.
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("taken once")
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("not taken")
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("not taken")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
