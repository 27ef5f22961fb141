//! The fuzz harnesses (`kakoi::fuzzing`) on every `cargo test`: each committed seed in
//! `fuzz/seeds/<target>/`, then a bounded number of deterministic mutations of them. The
//! long coverage-guided runs are `make fuzz` (cargo-fuzz, libFuzzer).

use std::path::PathBuf;

use kakoi::fuzzing;

use crate::util::Rng;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = crate::util::root().join("fuzz/seeds").join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p: PathBuf = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no seeds in {}", dir.display());
    v
}

/// One to four libFuzzer-like edits: flip a bit, set an interesting byte, insert or delete
/// a run, duplicate a slice, or splice in part of another seed.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = *[0u8, 0xff, b'{', b'}', b'\n', b'"', b'[', b'#', b'0', b'-']
                    .get(rng.below(10))
                    .unwrap();
            }
            2 => {
                let n = rng.below(8);
                for _ in 0..n {
                    v.insert(at, rng.next() as u8);
                }
            }
            3 if !v.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at.min(v.len())..end);
            }
            4 if !v.is_empty() => {
                let s = rng.below(v.len());
                let e = (s + 1 + rng.below(32)).min(v.len());
                let chunk = v[s..e].to_vec();
                let i = at.min(v.len());
                v.splice(i..i, chunk);
            }
            _ if !other.is_empty() => {
                let s = rng.below(other.len());
                let e = (s + 1 + rng.below(64)).min(other.len());
                let i = at.min(v.len());
                v.splice(i..i, other[s..e].iter().copied());
            }
            _ => {}
        }
    }
    v
}

/// Run `f` on every seed and on `per_seed` mutations of each; a panic names the input.
fn smoke(target: &str, per_seed: usize, f: fn(&[u8])) {
    let seeds = seeds(target);
    let mut rng = Rng(0x6b61_6b6f_6900_0000 | target.len() as u64);
    let run = |name: &str, data: &[u8]| {
        if std::panic::catch_unwind(|| f(data)).is_err() {
            let keep = std::env::temp_dir().join(format!("kakoi-fuzz-{target}-crash"));
            std::fs::write(&keep, data).unwrap();
            panic!(
                "{target} failed on {name}; the input is saved in {} (replay: cd fuzz && cargo +nightly fuzz run {target} {})",
                keep.display(),
                keep.display()
            );
        }
    };
    for (name, data) in &seeds {
        run(name, data);
    }
    for (i, (name, data)) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()].1;
        for k in 0..per_seed {
            let m = mutate(&mut rng, data, other);
            run(&format!("{name} mutation {k}"), &m);
        }
    }
}

#[test]
fn fuzz_policy_text() {
    smoke("policy_text", 6, fuzzing::policy_text);
}

#[test]
fn fuzz_seccomp_json() {
    smoke("seccomp_json", 20, fuzzing::seccomp_json);
}

#[test]
fn fuzz_bpf_program() {
    smoke("bpf_program", 40, fuzzing::bpf_program);
}

#[test]
fn fuzz_apparmor_text() {
    smoke("apparmor_text", 40, fuzzing::apparmor_text);
}

#[test]
fn fuzz_bundle_files() {
    smoke("bundle_files", 30, fuzzing::bundle_files);
}

/// Random valid policies compile to programs equal to the IR; the generator must produce
/// mostly accepted policies, or it tests nothing.
#[test]
fn fuzz_policy_gen() {
    let mut rng = Rng(0x5eed);
    let mut accepted = 0;
    let n = 150;
    for _ in 0..n {
        let len = rng.below(200);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if fuzzing::policy_gen(&data) {
            accepted += 1;
        }
    }
    for (_, s) in seeds("policy_gen") {
        fuzzing::policy_gen(&s);
    }
    assert!(
        accepted * 2 >= n,
        "only {accepted} of {n} generated policies were accepted"
    );
}
