//! What a seccomp filter costs a running program, per system call, in one run: no filter,
//! kakoi's `default` policy, Docker's real profile compiled by kakoi, and Docker's profile
//! compiled by libseccomp as runc does (its default layout). Three calls:
//!
//! - `getppid()`: allowed without looking at arguments, so the kernel's action cache
//!   answers before the filter runs;
//! - `personality(0xffffffff)` (a query): allowed only for listed argument values, so the
//!   filter runs to the argument check;
//! - `syslog(SIZE_BUFFER)`: denied (EPERM) by every profile here.
//!
//! Each measurement runs in a fresh child process (a filter cannot be removed): `ROUNDS`
//! rounds of `ITERS` calls, the median ns per call; three passes over the filters, and
//! the median of the three. Run with
//! `cargo bench --bench filter` (`-- --json` for JSON, as `make bench` does).

use std::process::Command;
use std::time::Instant;

use kakoi::cli;
use kakoi::seccomp::libseccomp::{self, Layout};
use kakoi::seccomp::{codegen, json, Host};

const ROUNDS: usize = 15;
const ITERS: usize = 100_000;

/// The filters measured, by name: `None` is no filter.
fn program(name: &str) -> Option<Vec<u8>> {
    let docker = || {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/docker-default-seccomp.json"
        );
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    match name {
        "none" => None,
        "kakoi default" => {
            let p = cli::load("default")
                .ok()
                .and_then(|l| l.policy)
                .expect("default policy");
            Some(codegen::compile(&p.seccomp, Host::X86_64).bpf)
        }
        "Docker profile, kakoi" => {
            let target = json::Target::docker_default();
            let imported = json::import("docker", &docker(), &target).expect("imports");
            Some(codegen::compile(&imported.seccomp, Host::X86_64).bpf)
        }
        "Docker profile, libseccomp (runc)" => {
            let target = json::Target::docker_default();
            Some(
                libseccomp::compile_docker_json(&docker(), &target, Layout::Priority)
                    .expect("compiles"),
            )
        }
        other => panic!("unknown filter {other}"),
    }
}

const FILTERS: &[&str] = &[
    "none",
    "kakoi default",
    "Docker profile, kakoi",
    "Docker profile, libseccomp (runc)",
];

/// (label, syscall number, arguments)
const CALLS: &[(&str, libc::c_long, [libc::c_long; 3])] = &[
    ("getppid (cached allow)", libc::SYS_getppid, [0, 0, 0]),
    (
        "personality(0xffffffff) (argument check)",
        libc::SYS_personality,
        [0xffff_ffff, 0, 0],
    ),
    ("syslog(SIZE_BUFFER) (denied)", libc::SYS_syslog, [10, 0, 0]),
];

fn measure(n: libc::c_long, a: [libc::c_long; 3]) -> f64 {
    let mut per_call: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..ITERS {
                // SAFETY: the three calls measured take integer arguments only (no
                // pointers), and none changes the process in a way that matters here.
                std::hint::black_box(unsafe { libc::syscall(n, a[0], a[1], a[2]) });
            }
            t.elapsed().as_nanos() as f64 / ITERS as f64
        })
        .collect();
    per_call.sort_by(|x, y| x.total_cmp(y));
    per_call[per_call.len() / 2]
}

/// In the child: install the filter, time every call, print one JSON object.
fn child(name: &str) {
    if let Some(prog) = program(name) {
        kakoi::launch::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).expect("no_new_privs");
        kakoi::launch::sys::seccomp_filter(&prog, 0).expect("install the filter");
    }
    let mut out = serde_json::Map::new();
    for (label, n, a) in CALLS {
        out.insert((*label).into(), measure(*n, *a).into());
    }
    let length = program(name).map_or(0, |p| p.len() / 8);
    println!(
        "{}",
        serde_json::json!({"filter": name, "length": length, "ns": out})
    );
}

fn main() {
    if let Ok(name) = std::env::var("KAKOI_FILTER_BENCH_CHILD") {
        child(&name);
        return;
    }
    let json_out = std::env::args().any(|a| a == "--json");
    let exe = std::env::current_exe().expect("own path");
    // Three passes over the filters, each child measured once per pass; the median of the
    // three per call keeps a noisy moment on the machine from landing on one filter.
    let mut passes: Vec<Vec<serde_json::Value>> = vec![Vec::new(); FILTERS.len()];
    for _ in 0..3 {
        for (i, f) in FILTERS.iter().enumerate() {
            let o = Command::new(&exe)
                .env("KAKOI_FILTER_BENCH_CHILD", f)
                .output()
                .expect("run the child");
            assert!(
                o.status.success(),
                "{f}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            passes[i].push(serde_json::from_slice(&o.stdout).expect("child's JSON"));
        }
    }
    let rows: Vec<serde_json::Value> = passes
        .into_iter()
        .map(|runs| {
            let mut ns = serde_json::Map::new();
            for (label, _, _) in CALLS {
                let mut v: Vec<f64> = runs
                    .iter()
                    .map(|r| r["ns"][label].as_f64().unwrap_or(f64::NAN))
                    .collect();
                v.sort_by(|a, b| a.total_cmp(b));
                ns.insert((*label).into(), v[v.len() / 2].into());
            }
            serde_json::json!({"filter": runs[0]["filter"], "length": runs[0]["length"], "ns": ns})
        })
        .collect();
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("serializes")
        );
        return;
    }
    let base = &rows[0]["ns"];
    println!("| filter | instructions | call | ns per call (median) | × no filter |");
    println!("|---|---:|---|---:|---:|");
    for r in &rows {
        for (label, _, _) in CALLS {
            let ns = r["ns"][label].as_f64().unwrap_or(f64::NAN);
            let b = base[label].as_f64().unwrap_or(f64::NAN);
            println!(
                "| {} | {} | {label} | {ns:.0} | {:.2} |",
                r["filter"].as_str().unwrap_or(""),
                r["length"],
                ns / b
            );
        }
    }
}
