//! Fuzz harnesses: one function per hostile-input surface, each asserting what must hold
//! for any input (it panics otherwise). `fuzz/` drives them with libFuzzer (`make fuzz`);
//! `tests/suite/fuzz.rs` replays the committed corpora and a bounded random run through
//! the same functions on every `cargo test`.
//!
//! | harness | surface | invariants beyond "no panic, no hang" |
//! |---|---|---|
//! | [`policy_text`] | parser, resolver, formatter, compiler | diagnostics point inside the text; formatting is idempotent and keeps the meaning; an accepted policy compiles to programs equal to it |
//! | [`policy_gen`] | compiler | a generated valid policy compiles, validates and decides as the IR on every ABI and boundary argument |
//! | [`seccomp_json`] | Docker/OCI seccomp JSON and OCI `config.json` readers, auditor, importer | an import is refused or decides exactly as the input |
//! | [`bpf_program`] | BPF decoder, validator, interpreter, symbolic executor, auditor | a decoded program re-encodes to the same bytes; every concrete run's result is among the symbolic outcomes |
//! | [`apparmor_text`] | AppArmor reader, auditor | reports render as text, JSON and SARIF |
//! | [`bundle_files`] | bundle loader | a loaded bundle's filter is valid BPF |

use std::collections::BTreeMap;

use policy_lang::catalogue::{self, Arch, ArgKind};
use policy_lang::{Loader, SourceMap};

use crate::audit::{self, import, load};
use crate::bpf;
use crate::seccomp::{self, Backend, Host};

/// Serves the shipped policies only: a fuzzed `extends` never reads the disk.
struct Shipped;

impl Loader for Shipped {
    fn load(&self, name: &str, _from: &str) -> Result<(String, String), String> {
        crate::profiles::get(name)
            .map(|t| (crate::loader::shipped_display(name), t.to_string()))
            .ok_or_else(|| format!("no shipped policy named `{name}`"))
    }
}

/// Every host's kakoi program must be produced (`compile_checked` validates it and checks
/// it against the IR on every ABI, syscall and boundary argument).
fn compiles_equal(s: &policy_lang::ir::Seccomp, text: &str) {
    if !s.enabled {
        return;
    }
    for host in Host::for_policy(s) {
        if let Err(e) = seccomp::compile_checked(s, host, Backend::Kakoi) {
            panic!("{}: {e}\n--- policy ---\n{text}", host.name());
        }
    }
}

/// A policy without its source positions (`origin`): what formatting must keep.
fn meaning(p: &policy_lang::Policy) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("origin");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(p).expect("the IR serializes");
    strip(&mut v);
    v
}

/// Parse, resolve, format and compile arbitrary text.
pub fn policy_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut map = SourceMap::new();
    let root = map.add("fuzz.kakoi", text.as_ref());
    let checked = policy_lang::check(&mut map, root, &Shipped);
    for d in &checked.diagnostics {
        for sp in d.span.iter().chain(d.labels.iter().map(|l| &l.span)) {
            let t = map.text(sp.file);
            assert!(
                sp.range.start <= sp.range.end
                    && sp.range.end <= t.len()
                    && t.is_char_boundary(sp.range.start)
                    && t.is_char_boundary(sp.range.end),
                "{}: span {:?} outside its file ({} bytes)",
                d.code,
                sp.range,
                t.len()
            );
        }
    }
    let _ = policy_lang::diagnostics::render(&map, &checked.diagnostics, false);
    assert_eq!(
        checked.policy.is_some(),
        !checked.has_errors(),
        "a policy comes back exactly when there is no error"
    );
    if let Ok(once) = policy_lang::format::format(root, &text) {
        let twice = policy_lang::format::format(root, &once)
            .unwrap_or_else(|e| panic!("formatted text does not parse: {e:?}\n{once}"));
        assert_eq!(once, twice, "formatting is not idempotent");
        if let Some(p) = &checked.policy {
            let mut m2 = SourceMap::new();
            let r2 = m2.add("fuzz.kakoi", once.as_str());
            let again = policy_lang::check(&mut m2, r2, &Shipped);
            let q = again
                .policy
                .unwrap_or_else(|| panic!("the formatted policy has errors:\n{once}"));
            assert_eq!(
                meaning(p),
                meaning(&q),
                "formatting changed the policy's meaning:\n{once}"
            );
        }
    }
    if let Some(p) = &checked.policy {
        compiles_equal(&p.seccomp, &text);
    }
}

/// A byte cursor for structured generation: past the end it reads zeros, so every input
/// yields a (small) policy.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        let v = usize::from(self.byte()) << 8 | usize::from(self.byte());
        v % n.max(1)
    }

    fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }

    /// A value, mostly from the edges where comparisons go wrong.
    fn value(&mut self, kind: ArgKind) -> u64 {
        let edges: [u64; 10] = [
            0,
            1,
            2,
            0x7f,
            0xffff_ffff,
            0x8000_0000,
            0x1_0000_0000,
            u64::MAX,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
        ];
        let v = if self.byte() % 2 == 0 {
            *self.pick(&edges)
        } else {
            (0..8).fold(0u64, |v, _| v << 8 | u64::from(self.byte()))
        };
        if kind.is_32bit() {
            v & 0xffff_ffff
        } else {
            v
        }
    }

    fn action(&mut self) -> String {
        match self.below(9) {
            0 | 1 => "allow".into(),
            2 => "deny".into(),
            3 => format!("errno({})", 1 + self.below(133)),
            4 => "kill-process".into(),
            5 => "kill-thread".into(),
            6 => "trap".into(),
            7 => "log".into(),
            _ => format!("trace({})", self.below(1000)),
        }
    }

    fn cond(&mut self, args: &[(&str, ArgKind)], depth: usize) -> String {
        let (name, kind) = *self.pick(args);
        match self.below(if depth > 2 { 4 } else { 7 }) {
            0 => {
                let op = *self.pick(&["==", "!=", "<", "<=", ">", ">="]);
                format!("{name} {op} {:#x}", self.value(kind))
            }
            1 => {
                // Mostly a value inside the mask (others are E0315).
                let mask = self.value(kind);
                let v = self.value(kind);
                let v = if self.byte() % 8 == 0 { v } else { v & mask };
                format!("{name} & {mask:#x} == {v:#x}")
            }
            2 => {
                let n = 1 + self.below(4);
                let vs: Vec<String> = (0..n).map(|_| format!("{:#x}", self.value(kind))).collect();
                format!("{name} in {{{}}}", vs.join(", "))
            }
            3 => format!("{name} == {:#x}", self.value(kind)),
            4 => format!(
                "({} && {})",
                self.cond(args, depth + 1),
                self.cond(args, depth + 1)
            ),
            5 => format!(
                "({} || {})",
                self.cond(args, depth + 1),
                self.cond(args, depth + 1)
            ),
            _ => format!("!({})", self.cond(args, depth + 1)),
        }
    }
}

/// Generate a valid-looking seccomp policy from `data` (the compiler fuzzer's input).
pub fn generate_policy(data: &[u8]) -> String {
    let mut c = Cursor::new(data);
    let syscalls: Vec<&catalogue::SyscallDef> = catalogue::syscalls()
        .iter()
        .filter(|d| d.nr(Arch::X86_64).is_some() || d.nr(Arch::Aarch64).is_some())
        .collect();
    let mut arches: Vec<&str> = ["x86_64", "x86", "x32", "aarch64"]
        .into_iter()
        .filter(|_| c.byte() % 3 != 0)
        .collect();
    // i386 and x32 go with x86_64 (E0211).
    if arches.is_empty()
        || (arches.iter().any(|a| *a == "x86" || *a == "x32") && !arches.contains(&"x86_64"))
    {
        arches.insert(0, "x86_64");
    }
    let targets: Vec<Arch> = arches.iter().filter_map(|a| Arch::from_name(a)).collect();
    let mut o = format!(
        "kakoi 1\nseccomp {{\n    default {}\n    arches [{}]\n",
        c.action(),
        arches.join(", ")
    );
    for _ in 0..1 + c.below(24) {
        let d = *c.pick(&syscalls);
        // Arguments that are registers on every targeted ABI the syscall has (E0314).
        let located = |name: &str| {
            targets.iter().filter(|a| d.nr(**a).is_some()).all(|a| {
                d.args(*a)
                    .is_some_and(|g| g.iter().any(|x| x.name == name && x.kind != ArgKind::Ptr))
            })
        };
        let args: Vec<(&str, ArgKind)> = d
            .signature()
            .unwrap_or(&[])
            .iter()
            .filter(|a| a.kind != ArgKind::Ptr && located(a.name))
            .map(|a| (a.name, a.kind))
            .collect();
        let action = c.action();
        if !args.is_empty() && c.byte() % 2 == 0 {
            o.push_str(&format!(
                "    {action} {} if {}\n",
                d.name,
                c.cond(&args, 0)
            ));
        } else {
            o.push_str(&format!("    {action} {}\n", d.name));
        }
    }
    o.push_str("}\n");
    o
}

/// The compiler fuzzer: a generated policy that the checker accepts must compile to a
/// program equal to it. Returns whether it was accepted (the smoke test wants most to be).
pub fn policy_gen(data: &[u8]) -> bool {
    let text = generate_policy(data);
    let (_, checked) = policy_lang::check_str("gen.kakoi", &text);
    match checked.policy {
        Some(p) => {
            compiles_equal(&p.seccomp, &text);
            true
        }
        None => false,
    }
}

/// Render every report format (none may panic).
fn render(r: &audit::Report) {
    let rs = std::slice::from_ref(r);
    let _ = audit::report::human(rs, false);
    let _ = serde_json::to_string(&audit::report::json(rs)).expect("report JSON");
    let _ = serde_json::to_string(&audit::report::sarif(rs)).expect("report SARIF");
}

/// Importing is refused or exact: a mismatch is a bug.
fn imports_exactly(s: &audit::Subject) {
    for only in [&[][..], &[Arch::X86_64][..]] {
        if let Err(import::ImportError::Mismatch(m)) = import::import(s, "fuzz", only) {
            panic!("the importer changed the decisions ({only:?}): {m}");
        }
    }
}

/// Docker/OCI seccomp JSON and OCI runtime `config.json`: read, audit, diff against
/// itself, import.
pub fn seccomp_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for s in [
        load::seccomp_json("fuzz.json", &text),
        load::oci("config.json", &text),
    ]
    .into_iter()
    .flatten()
    {
        render(&audit::audit(&s, None));
        let d = audit::diff::diff(&s, &s);
        assert!(!d.widened, "a profile widens itself");
        imports_exactly(&s);
    }
}

/// A raw BPF program: decode, validate, run, execute symbolically, audit, import.
pub fn bpf_program(data: &[u8]) {
    // The first 16 bytes are the syscall a concrete run sees; the rest is the program.
    let (head, code) = data.split_at(data.len().min(16));
    let Ok(prog) = bpf::decode(code) else { return };
    assert_eq!(bpf::encode(&prog), code, "decode/encode round trip");
    if bpf::validate(&prog).is_err() {
        return;
    }
    let word = |i: usize| {
        let mut b = [0u8; 4];
        for (j, x) in b.iter_mut().enumerate() {
            *x = head.get(i * 4 + j).copied().unwrap_or(0);
        }
        u32::from_le_bytes(b)
    };
    // One of the known ABIs, or a foreign one.
    let arch = Arch::ALL
        .get(word(0) as usize % 5)
        .map_or(0xdead_beef, |a| a.audit_arch());
    let nr = word(1) % 1024;
    let v = u64::from(word(2)) << 32 | u64::from(word(3));
    let data = bpf::Data {
        nr,
        arch,
        ip: v,
        args: [v, !v, v >> 1, 0, u64::MAX, v & 0xffff_ffff],
    };
    let run = bpf::run(&prog, &data);
    assert!(
        run.steps <= prog.len(),
        "a validated program only jumps forward"
    );
    if let Some(outs) = audit::sym::outcomes(&prog, arch, nr) {
        assert!(
            outs.contains(&run.ret),
            "a concrete run returned {:#x}, not among the symbolic outcomes {outs:x?}",
            run.ret
        );
    }
    let Ok(s) = load::bpf_file("fuzz.bpf", code) else {
        return;
    };
    render(&audit::audit(&s, None));
    imports_exactly(&s);
}

/// AppArmor profile text: read (includes only from regular files), audit, render.
pub fn apparmor_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    render(&audit::audit(&load::apparmor("fuzz.apparmor", &text), None));
}

/// A bundle: the input is split at `\0\0` into manifest, policy.json and filter. When
/// the first byte is odd the manifest is ignored and a consistent one (right sizes and
/// hashes) is built, so that the policy and filter checks behind it are reached.
pub fn bundle_files(data: &[u8]) {
    let split: Vec<&[u8]> = split_parts(data);
    let (manifest, policy, filter) = (split[0], split[1], split[2]);
    let host = Host::X86_64;
    let bpf_name = format!("seccomp.{}.bpf", host.name());
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("policy.json".into(), policy.to_vec());
    files.insert(bpf_name.clone(), filter.to_vec());
    let manifest = if data.first().is_some_and(|b| b % 2 == 1) {
        let entries = [
            crate::bundle::entry("policy.json", policy),
            crate::bundle::entry(&bpf_name, filter),
        ];
        serde_json::to_vec(&serde_json::json!({
            "format": crate::bundle::FORMAT,
            "artifacts": entries,
        }))
        .expect("manifest JSON")
    } else {
        manifest.to_vec()
    };
    files.insert("manifest.json".into(), manifest);
    let read = |name: &str| {
        files
            .get(name)
            .cloned()
            .ok_or_else(|| crate::bundle::LoadError::NoFile { name: name.into() })
    };
    if let Ok(l) = crate::bundle::load_with(&read, host) {
        if let Some(b) = &l.seccomp {
            let insns = bpf::decode(b).expect("a loaded filter decodes");
            bpf::validate(&insns).expect("a loaded filter is valid");
        }
        // What a launch reads of a bundle that loads whole: the same, but the rules.
        let launch = crate::bundle::load_with_for_launch(&read, host)
            .expect("a bundle that loads whole loads for a launch");
        let mut want = l.policy.clone();
        want.seccomp.rules.clear();
        assert_eq!(
            launch.policy, want,
            "a launch reads the policy as a full load does"
        );
        assert_eq!(launch.seccomp, l.seccomp);
    }
}

fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(3);
    let mut rest = data;
    for _ in 0..2 {
        match rest.windows(2).position(|w| w == [0, 0]) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + 2..];
            }
            None => {
                out.push(rest);
                rest = &[];
            }
        }
    }
    out.push(rest);
    out
}
