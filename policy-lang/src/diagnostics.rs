//! Diagnostics: what every phase reports instead of failing.
//!
//! A [`Diagnostic`] is plain data (severity, code, message, spans, help). Phases collect
//! them into a `Vec` and keep going; the caller decides how to show them. [`render`]
//! turns them into the familiar caret snippets (a pure function: it writes to a `String`).
//!
//! Message style (see ARCHITECTURE.md): lowercase, no final period, user input in
//! backticks, details in `help`.

use std::ops::Range;

use codespan_reporting::diagnostic as cs;
use codespan_reporting::term::{self, termcolor};
use serde::Serialize;

use crate::source::{FileId, SourceMap};

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A location in one source file, as a byte range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    pub file: FileId,
    pub range: Range<usize>,
}

impl Span {
    pub fn new(file: FileId, range: Range<usize>) -> Self {
        Span { file, range }
    }
}

/// A secondary label pointing at related source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One error or warning, with where it is and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable identifier, e.g. `E0101`, for documentation and suppression.
    pub code: &'static str,
    pub message: String,
    pub span: Option<Span>,
    /// Text shown under the caret of the primary span.
    pub label: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: Some(span),
            label: String::new(),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(code, message, span)
        }
    }

    /// An error that belongs to no particular place (e.g. a file that could not be read).
    pub fn global(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: None,
            label: String::new(),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Set the primary label in place (for diagnostics already pushed to a list).
    pub fn label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = label.into();
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Line and column (both 1-based) of a span's start, for JSON output and tests.
pub fn line_col(map: &SourceMap, span: &Span) -> (usize, usize) {
    map.line_col(span.file, span.range.start)
}

/// Render diagnostics as caret snippets. `color` adds ANSI colours.
pub fn render(map: &SourceMap, diags: &[Diagnostic], color: bool) -> String {
    let mut files = codespan_reporting::files::SimpleFiles::new();
    for (name, text) in map.iter() {
        files.add(name.to_string(), text.to_string());
    }
    let config = term::Config::default();
    let mut buf = if color {
        termcolor::Buffer::ansi()
    } else {
        termcolor::Buffer::no_color()
    };
    for d in diags {
        let mut c = match d.severity {
            Severity::Error => cs::Diagnostic::error(),
            Severity::Warning => cs::Diagnostic::warning(),
        }
        .with_code(d.code)
        .with_message(&d.message);
        let mut labels = Vec::new();
        if let Some(span) = &d.span {
            labels.push(cs::Label::primary(span.file.0, span.range.clone()).with_message(&d.label));
        }
        for l in &d.labels {
            labels.push(
                cs::Label::secondary(l.span.file.0, l.span.range.clone()).with_message(&l.message),
            );
        }
        c = c.with_labels(labels);
        if let Some(h) = &d.help {
            c = c.with_notes(vec![format!("help: {h}")]);
        }
        // Writing into an in-memory buffer cannot fail except on a span outside its
        // file, which is a bug in the phase that made the diagnostic.
        term::emit(&mut buf, &config, &files, &c).expect("diagnostic span inside its file");
    }
    String::from_utf8_lossy(buf.as_slice()).into_owned()
}

/// Suggest the closest of `candidates` to `name`, for "did you mean" help lines.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `help: did you mean `x`?` text, when there is a close candidate.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    suggest(name, candidates).map(|s| format!("did you mean `{s}`?"))
}
