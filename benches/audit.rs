//! Audit throughput: 1,000 seccomp profiles derived from Docker's real profile (each drops
//! a different pseudo-random tenth of its allow-list, flips its default on every 50th, and
//! adds an unfiltered dangerous call on every 7th) are read, compiled, executed symbolically
//! per ABI and checked against the whole rule catalogue. Prints profiles per second and the
//! findings by rule. Run with `cargo bench --bench audit`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/docker-default-seccomp.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let base: Value = serde_json::from_str(&text).expect("JSON");
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000usize);
    // Deterministic pseudo-random variants (xorshift).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let profiles: Vec<String> = (0..n)
        .map(|i| {
            let mut v = base.clone();
            let names = v["syscalls"][0]["names"]
                .as_array_mut()
                .expect("allow-list");
            names.retain(|_| next() % 10 != 0);
            if i % 50 == 0 {
                v["defaultAction"] = Value::from("SCMP_ACT_ALLOW");
            }
            if i % 7 == 0 {
                v["syscalls"].as_array_mut().unwrap().push(
                    serde_json::json!({"names": ["bpf", "unshare"], "action": "SCMP_ACT_ALLOW"}),
                );
            }
            v.to_string()
        })
        .collect();
    let t = Instant::now();
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    let mut worst = 0.0f64;
    for (i, p) in profiles.iter().enumerate() {
        let s = kakoi::audit::load::seccomp_json(&format!("variant-{i}.json"), p).expect("audits");
        let r = kakoi::audit::audit(&s, None);
        worst = worst.max(r.score);
        for f in &r.findings {
            *by_rule.entry(f.id.as_str()).or_default() += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!("audited {n} profiles in {secs:.2} s: {:.0} profiles/s ({:.2} ms each); worst exposure {worst:.1}", n as f64 / secs, secs * 1e3 / n as f64);
    for (id, count) in by_rule {
        println!("  {id:<8} {count}");
    }
}
