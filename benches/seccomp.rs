//! Seccomp code generation side by side, in one run: the shipped default policy and
//! Docker's real profile, compiled by libseccomp (its default and binary-tree layouts, as
//! runc would) and by kakoi's generator. Reports, per program: length, instructions
//! executed per allowed syscall (mean and worst), allowed syscalls served by the kernel's
//! action cache, and compile time. Run with `cargo bench --bench seccomp`; `-- --json`
//! prints JSON.

use std::time::Instant;

use kakoi::seccomp::libseccomp::{self, Layout};
use kakoi::seccomp::{codegen, json, stats, Host};
use kakoi::{bpf, cli};
use policy_lang::ir::Seccomp;

struct Row {
    input: &'static str,
    compiler: &'static str,
    length: usize,
    abis: Vec<stats::AbiStats>,
    compile_us: f64,
}

/// Median of `n` timed runs of `f`, in microseconds.
fn time(n: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn row(input: &'static str, compiler: &'static str, s: &Seccomp, prog: &[u8], us: f64) -> Row {
    let insns = bpf::decode(prog).expect("valid program");
    bpf::validate(&insns).expect("valid program");
    let st = stats::stats(s, &insns, Host::X86_64);
    Row {
        input,
        compiler,
        length: st.length,
        abis: st.abis,
        compile_us: us,
    }
}

fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let n = 200;
    let mut rows = Vec::new();

    let p = cli::load("default")
        .ok()
        .and_then(|l| l.policy)
        .expect("default policy");
    let s = &p.seccomp;
    for (name, layout) in [
        ("libseccomp (default layout)", Layout::Priority),
        ("libseccomp (binary tree)", Layout::Tree),
    ] {
        let prog = libseccomp::compile_layout(s, Host::X86_64, layout).expect("compiles");
        let us = time(n, || {
            drop(libseccomp::compile_layout(s, Host::X86_64, layout))
        });
        rows.push(row("default.kakoi", name, s, &prog.bpf, us));
    }
    let prog = codegen::compile(s, Host::X86_64);
    let us = time(n, || drop(codegen::compile(s, Host::X86_64)));
    rows.push(row("default.kakoi", "kakoi", s, &prog.bpf, us));

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/docker-default-seccomp.json"
    );
    match std::fs::read_to_string(path) {
        Err(e) => eprintln!("skipped Docker's profile: {path}: {e}"),
        Ok(text) => {
            let target = json::Target::docker_default();
            let imported = json::import("docker", &text, &target).expect("imports");
            let s = &imported.seccomp;
            for (name, layout) in [
                ("runc + libseccomp (default layout)", Layout::Priority),
                ("runc + libseccomp (binary tree)", Layout::Tree),
            ] {
                let prog =
                    libseccomp::compile_docker_json(&text, &target, layout).expect("compiles");
                let us = time(n, || {
                    drop(libseccomp::compile_docker_json(&text, &target, layout))
                });
                rows.push(row("Docker default.json", name, s, &prog, us));
            }
            let prog = codegen::compile(s, Host::X86_64);
            let us = time(n, || drop(codegen::compile(s, Host::X86_64)));
            rows.push(row(
                "Docker default.json",
                "kakoi (imported)",
                s,
                &prog.bpf,
                us,
            ));
        }
    }

    if json_out {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!({"input": r.input, "compiler": r.compiler, "length": r.length, "compile_us": r.compile_us, "abis": r.abis}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        return;
    }
    println!("| input | compiler | ABI | length | mean insns / allowed | worst | cached / arg-independent allows | compile (median) |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        for a in &r.abis {
            println!(
                "| {} | {} | {} | {} | {:.1} | {} | {}/{} | {:.0} µs |",
                r.input,
                r.compiler,
                a.arch,
                r.length,
                a.mean_insns,
                a.worst_insns,
                a.cache_eligible,
                a.argument_independent,
                r.compile_us
            );
        }
    }
    // Ratios for the targets of the default policy on x86_64.
    let find = |c: &str| {
        rows.iter()
            .find(|r| r.input == "default.kakoi" && r.compiler == c)
            .expect("row")
    };
    let (prio, tree, own) = (
        find("libseccomp (default layout)"),
        find("libseccomp (binary tree)"),
        find("kakoi"),
    );
    println!();
    println!(
        "default.kakoi, x86_64: kakoi length = {:.2} × libseccomp default layout (target ≤ 0.33); mean instructions = {:.2} × libseccomp binary tree (target ≤ 0.67); compile {:.0} µs (target ≤ 2000)",
        own.length as f64 / prio.length as f64,
        own.abis[0].mean_insns / tree.abis[0].mean_insns,
        own.compile_us
    );
}
