//! The kakoi policy language: grammar, syntax tree, name resolution, the resolved IR and
//! diagnostics.
//!
//! Pipeline (one module per stage): text --[`syntax`]--> syntax tree --[`resolve`]-->
//! [`ir::Policy`]. Every stage reports problems as [`Diagnostic`]s and keeps going.
//!
//! Architecture invariant: this crate is pure. It does no I/O (other files come through
//! a [`Loader`] the caller implements), reads no process state, and has no `unsafe`.
#![forbid(unsafe_code)]

pub mod catalogue;
mod coherence;
pub mod diagnostics;
pub mod format;
pub mod ir;
pub mod resolve;
pub mod source;
pub mod syntax;

pub use diagnostics::{Diagnostic, Severity, Span};
pub use ir::Policy;
pub use resolve::{Loader, NoLoader};
pub use source::{FileId, SourceMap};

/// The result of checking a policy: the policy if it has no errors, and every diagnostic.
#[derive(Debug)]
pub struct Checked {
    pub policy: Option<Policy>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parse and resolve the policy in file `root` of `map`.
pub fn check(map: &mut SourceMap, root: FileId, loader: &dyn Loader) -> Checked {
    let (policy, diagnostics) = resolve::resolve(map, root, loader);
    Checked {
        policy,
        diagnostics,
    }
}

/// Convenience: check a single policy text with no other files available.
pub fn check_str(name: &str, text: &str) -> (SourceMap, Checked) {
    let mut map = SourceMap::new();
    let id = map.add(name, text);
    let checked = check(&mut map, id, &NoLoader);
    (map, checked)
}
