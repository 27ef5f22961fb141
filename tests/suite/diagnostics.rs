//! Data-driven: each `fixtures/invalid/*.kakoi` starts with a comment saying what it
//! tests; its rendered diagnostics are an insta snapshot. Each must have at least one
//! error, each `fixtures/valid/*.kakoi` none, each `fixtures/warnings/*.kakoi` warnings
//! only.

use crate::util;

fn rendered(path: &std::path::Path) -> (String, usize, usize) {
    let rel = path
        .strip_prefix(util::root())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let l = kakoi::cli::load(&rel).unwrap();
    let errors = l.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = l.diagnostics.len() - errors;
    (
        policy_lang::diagnostics::render(&l.map, &l.diagnostics, false),
        errors,
        warnings,
    )
}

#[test]
fn invalid_fixtures() {
    let files = util::files(&util::root().join("fixtures/invalid"), "kakoi");
    assert!(files.len() >= 40, "only {} invalid fixtures", files.len());
    for f in files {
        let (text, errors, _) = rendered(&f);
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(errors > 0, "{name} has no error:\n{text}");
        insta::with_settings!({ snapshot_path => "snapshots/invalid", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[test]
fn warning_fixtures() {
    for f in util::files(&util::root().join("fixtures/warnings"), "kakoi") {
        let (text, errors, warnings) = rendered(&f);
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            errors == 0 && warnings > 0,
            "{name}: {errors} errors, {warnings} warnings:\n{text}"
        );
        insta::with_settings!({ snapshot_path => "snapshots/warnings", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[test]
fn valid_fixtures() {
    for f in util::files(&util::root().join("fixtures/valid"), "kakoi") {
        let (text, errors, warnings) = rendered(&f);
        assert!(errors == 0 && warnings == 0, "{}:\n{text}", f.display());
    }
}

/// `kakoi fmt` is idempotent and never changes what a policy means: on every fixture and
/// shipped policy without syntax errors, formatting twice gives the same text, and the
/// formatted policy resolves to the same IR (or the same diagnostics).
#[test]
fn formatting_is_idempotent_and_preserves_meaning() {
    use policy_lang::{format::format, FileId};
    let mut files = Vec::new();
    for d in [
        "fixtures/valid",
        "fixtures/warnings",
        "fixtures/invalid",
        "profiles",
    ] {
        files.extend(util::files(&util::root().join(d), "kakoi"));
    }
    let mut formatted = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let Ok(once) = format(FileId(0), &text) else {
            continue;
        };
        formatted += 1;
        let twice = format(FileId(0), &once).unwrap();
        assert_eq!(once, twice, "{}: not idempotent", f.display());
        let name = f.to_string_lossy().into_owned();
        let meaning = |t: &str| {
            let mut map = policy_lang::SourceMap::new();
            let id = map.add(name.clone(), t.to_string());
            let c = policy_lang::check(&mut map, id, &kakoi::loader::FsLoader);
            let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
            (
                c.policy.map(|p| {
                    serde_json::to_string(
                        &p.seccomp
                            .rules
                            .iter()
                            .map(|r| (&r.syscalls, &r.action, &r.cond))
                            .collect::<Vec<_>>(),
                    )
                    .unwrap()
                        + &serde_json::to_string(&p.capabilities).unwrap()
                        + &serde_json::to_string(&p.filesystem).unwrap()
                        + &serde_json::to_string(&p.process).unwrap()
                }),
                codes,
            )
        };
        assert_eq!(
            meaning(&text),
            meaning(&once),
            "{}: formatting changed the meaning",
            f.display()
        );
    }
    assert!(formatted > 40);
}

/// Every example of the language reference (policy-lang/README.md) is a valid policy, and
/// warns only where being a fragment makes it (no `seccomp` section: W0511; ports without
/// the seccomp rules for them: W0503; `time-offset` shown without `namespaces`: W0510).
#[test]
fn the_language_reference_examples_are_valid() {
    let text = std::fs::read_to_string(util::root().join("policy-lang/README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = 0;
    for (i, block) in text.split("```kakoi\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap();
        let f = dir.path().join(format!("example-{i}.kakoi"));
        std::fs::write(&f, block).unwrap();
        let l = kakoi::cli::load(f.to_str().unwrap()).unwrap();
        let bad: Vec<policy_lang::diagnostics::Diagnostic> = l
            .diagnostics
            .iter()
            .filter(|d| d.is_error() || !["W0511", "W0503", "W0510"].contains(&d.code))
            .cloned()
            .collect();
        assert!(
            bad.is_empty(),
            "example {i}:\n{block}\n{}",
            policy_lang::diagnostics::render(&l.map, &bad, false)
        );
        blocks += 1;
    }
    assert!(blocks >= 10, "{blocks} examples found");
}
