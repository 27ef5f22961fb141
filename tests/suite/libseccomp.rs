//! libseccomp's own regression tests that kakoi's language can express, translated into
//! `fixtures/libseccomp/*.kakoi` with their expected verdicts (`# expect ARCH SYSCALL A0
//! … A5 ACTION` rows; `N` is any value, `lo-hi` a range). Each row is checked against the
//! policy's own meaning and against both compiled programs (kakoi's generator and
//! libseccomp), run by the BPF interpreter.

use kakoi::bpf;
use kakoi::seccomp::{self, Backend, Host};
use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::Action;

use crate::util::{files, root};

fn parse_action(s: &str) -> Action {
    match s {
        "allow" => Action::Allow,
        "kill-thread" => Action::KillThread,
        "kill-process" => Action::KillProcess,
        "trap" => Action::Trap,
        "log" => Action::Log,
        other => match other
            .strip_prefix("errno(")
            .and_then(|e| e.strip_suffix(')'))
        {
            Some(e) => Action::Errno(e.parse().unwrap()),
            None => panic!("unknown action `{other}`"),
        },
    }
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

/// The values a row's field stands for.
fn values(field: &str, arch: Arch) -> Vec<u64> {
    let max = if arch.is_64bit() {
        u64::MAX
    } else {
        0xffff_ffff
    };
    if field == "N" {
        return vec![0, 0x1234_5678, max];
    }
    if let Some((lo, hi)) = field.split_once('-') {
        let (lo, hi) = (num(lo), num(hi));
        return vec![lo, lo + (hi - lo) / 2, hi];
    }
    vec![num(field)]
}

#[test]
fn libseccomps_regression_cases_decide_as_libseccomp_expects() {
    let mut rows = 0;
    let mut decisions = 0;
    let fixtures = files(&root().join("fixtures/libseccomp"), "kakoi");
    assert!(fixtures.len() >= 3);
    for path in fixtures {
        let name = path
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let p = kakoi::cli::load(&name)
            .unwrap()
            .policy
            .unwrap_or_else(|| panic!("{name}"));
        let s = &p.seccomp;
        let progs: Vec<(Backend, Vec<bpf::Insn>)> = [Backend::Kakoi, Backend::Libseccomp]
            .into_iter()
            .map(|b| {
                let prog = seccomp::compile_checked(s, Host::X86_64, b).unwrap();
                (b, bpf::decode(&prog.bpf).unwrap())
            })
            .collect();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter_map(|l| l.strip_prefix("# expect ")) {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 9, "{name}: {line}");
            let arch = Arch::from_name(f[0]).unwrap();
            let nr = match f[1].parse::<u32>() {
                Ok(n) => n | arch.nr_offset(),
                Err(_) => catalogue::syscall(f[1]).and_then(|d| d.nr(arch)).unwrap(),
            };
            let want = parse_action(f[8]);
            rows += 1;
            // Every combination of the fields' values.
            let mut vectors = vec![[0u64; 6]];
            for (i, field) in f[2..8].iter().enumerate() {
                vectors = vectors
                    .into_iter()
                    .flat_map(|v| {
                        values(field, arch).into_iter().map(move |x| {
                            let mut v = v;
                            v[i] = x;
                            v
                        })
                    })
                    .collect();
            }
            for args in vectors {
                let got = s.decide(arch.audit_arch(), nr, &args).action;
                assert_eq!(
                    got,
                    want,
                    "{name}: {line}: policy says {} for {args:x?}",
                    got.to_source()
                );
                for (b, prog) in &progs {
                    let data = bpf::Data {
                        nr,
                        arch: arch.audit_arch(),
                        ip: 0,
                        args,
                    };
                    let r = bpf::ret_action(bpf::run(prog, &data).ret);
                    assert_eq!(
                        r,
                        want,
                        "{name}: {line}: {b:?} program gives {} for {args:x?}",
                        r.to_source()
                    );
                }
                decisions += 1;
            }
        }
    }
    assert!(rows >= 70, "{rows} rows");
    eprintln!("libseccomp regression cases: {rows} rows, {decisions} argument vectors, each decided by the policy and both programs");
}
