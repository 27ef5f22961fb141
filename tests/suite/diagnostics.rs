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
