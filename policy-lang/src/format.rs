//! The canonical layout of a policy (`kakoi fmt`): four-space indentation, one space
//! between values, `[a, b]` lists (one item per line when long), conditions with minimal
//! parentheses, at most one blank line in a row. Comments are kept: whole-line comments
//! before the statement they precede, end-of-line comments after it. A statement with a
//! comment inside it (e.g. within a multi-line list) is kept as written, re-indented.
//!
//! Formatting is idempotent: `format(format(x)) == format(x)`.

use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::{self, BitOp, Expr, ExprKind, Operand, OperandKind, Stmt, Value, ValueKind};

const WIDTH: usize = 100;
const INDENT: &str = "    ";

/// A comment found in the source: byte offset of `#`, its text, and whether it is the
/// first non-blank thing on its line.
struct Comment {
    at: usize,
    text: String,
    own_line: bool,
}

fn comments(text: &str) -> Vec<Comment> {
    let mut out = Vec::new();
    let mut line_start = 0;
    // Lines end where the grammar's NEWLINE does: at `\n`, `\r\n` or a lone `\r`.
    for line in text.split_inclusive(['\n', '\r']) {
        let mut in_str = false;
        let mut esc = false;
        for (i, c) in line.char_indices() {
            if in_str {
                match (esc, c) {
                    (true, _) => esc = false,
                    (false, '\\') => esc = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
            } else if c == '"' {
                in_str = true;
            } else if c == '#' {
                out.push(Comment {
                    at: line_start + i,
                    text: line[i..].trim_end().to_string(),
                    own_line: line[..i].trim().is_empty(),
                });
                break;
            }
        }
        line_start += line.len();
    }
    out
}

/// Format a policy. Returns the diagnostics instead when it has syntax errors.
pub fn format(file: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let (tree, diags) = syntax::parse(file, text);
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut f = Formatter {
        text,
        comments: comments(text),
        next: 0,
        out: String::new(),
    };
    f.stmts(&tree.stmts, 0, 0);
    f.flush_comments(text.len(), 0, None);
    let mut out = f.out.trim_end().to_string();
    out.push('\n');
    Ok(out)
}

struct Formatter<'t> {
    text: &'t str,
    comments: Vec<Comment>,
    /// Index of the first comment not yet written.
    next: usize,
    out: String,
}

impl Formatter<'_> {
    fn line_of(&self, at: usize) -> usize {
        self.text[..at].matches('\n').count()
    }

    /// Whether the source has a blank line between `from` and `to`.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let gap = &self.text[from.min(to)..to];
        gap.split('\n')
            .skip(1)
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .any(|l| l.trim().is_empty())
    }

    /// Write the comments that start before `before`, each on its own line.
    fn flush_comments(&mut self, before: usize, depth: usize, mut last_end: Option<usize>) {
        while self.next < self.comments.len() && self.comments[self.next].at < before {
            let c = &self.comments[self.next];
            if let Some(end) = last_end {
                if self.blank_between(end, c.at)
                    && !self.out.ends_with("\n\n")
                    && !self.out.ends_with("{\n")
                {
                    self.out.push('\n');
                }
            }
            let text = c.text.clone();
            last_end = Some(c.at + text.len());
            self.out.push_str(&INDENT.repeat(depth));
            self.out.push_str(&text);
            self.out.push('\n');
            self.next += 1;
        }
    }

    fn stmts(&mut self, stmts: &[Stmt], depth: usize, start: usize) {
        let mut prev_end: Option<usize> = if depth == 0 { None } else { Some(start) };
        for s in stmts {
            let lead = self.comments[self.next..]
                .iter()
                .take_while(|c| c.at < s.span.start)
                .map(|c| c.at)
                .next()
                .unwrap_or(s.span.start);
            if let Some(end) = prev_end {
                if self.blank_between(end, lead)
                    && !self.out.ends_with("\n\n")
                    && !self.out.ends_with("{\n")
                {
                    self.out.push('\n');
                }
            }
            self.flush_comments(s.span.start, depth, None);
            self.stmt(s, depth);
            prev_end = Some(s.span.end);
        }
    }

    fn stmt(&mut self, s: &Stmt, depth: usize) {
        let ind = INDENT.repeat(depth);
        // The statement's own line(s): up to its block, if any.
        let head_end = s.block.as_ref().map_or(s.span.end, |_| {
            self.text[s.span.start..s.span.end]
                .find('{')
                .map_or(s.span.end, |i| s.span.start + i)
        });
        let interior = self.comments[self.next..]
            .iter()
            .any(|c| c.at < head_end && self.line_of(c.at) != self.line_of(head_end));
        if interior {
            // Keep as written, re-indented, comments included.
            let raw = &self.text[s.span.start..head_end];
            let mut first = true;
            for line in raw.trim_end().lines() {
                self.out.push_str(if first { &ind } else { "" });
                if !first {
                    self.out.push_str(&ind);
                    if !line.trim_start().starts_with([']', ')']) {
                        self.out.push_str(INDENT);
                    }
                }
                self.out.push_str(line.trim());
                self.out.push('\n');
                first = false;
            }
            while self.next < self.comments.len() && self.comments[self.next].at < head_end {
                self.next += 1;
            }
            self.out.pop();
        } else {
            let build = |wrap: bool| {
                let mut line = format!("{ind}{}", s.keyword.name);
                if let Some(args) = &s.head_args {
                    line.push('(');
                    line.push_str(
                        &args
                            .iter()
                            .map(|v| value(v, 0, false))
                            .collect::<Vec<_>>()
                            .join(", "),
                    );
                    line.push(')');
                }
                for v in &s.values {
                    line.push(' ');
                    line.push_str(&value(v, depth, wrap));
                }
                if let Some(c) = &s.cond {
                    line.push_str(" if ");
                    line.push_str(&expr(c, 0));
                }
                line
            };
            let mut line = build(false);
            if line.len() > WIDTH
                && s.values
                    .iter()
                    .any(|v| matches!(v.kind, ValueKind::List(_)))
            {
                line = build(true);
            }
            self.out.push_str(&line);
        }
        match &s.block {
            None => {
                self.trailing_comment(s.span.end);
                self.out.push('\n');
            }
            Some(block) => {
                self.out.push_str(" {");
                let open = head_end + 1;
                self.trailing_comment(open);
                self.out.push('\n');
                self.stmts(block, depth + 1, open);
                // Comments before the closing brace.
                let close = s.span.end - 1;
                self.flush_comments(close, depth + 1, block.last().map(|b| b.span.end));
                self.out.push_str(&ind);
                self.out.push('}');
                self.trailing_comment(s.span.end);
                self.out.push('\n');
            }
        }
    }

    /// An end-of-line comment on the line where `end` is.
    fn trailing_comment(&mut self, end: usize) {
        if let Some(c) = self.comments.get(self.next) {
            let between = self.text.get(end.min(c.at)..c.at).unwrap_or("");
            if !c.own_line
                && c.at >= end.saturating_sub(1)
                && self.line_of(c.at) == self.line_of(end.saturating_sub(1))
                && between
                    .trim_matches(|ch: char| ch.is_whitespace() || ch == ';' || ch == '{')
                    .is_empty()
            {
                self.out.push_str("  ");
                self.out.push_str(&c.text);
                self.next += 1;
            }
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Print a value; lists are on one line unless `wrap`, when they are packed into lines
/// one level deeper than `depth`.
fn value(v: &Value, depth: usize, wrap: bool) -> String {
    match &v.kind {
        ValueKind::Word(w) => w.clone(),
        ValueKind::Str(s) => quote(s),
        ValueKind::Number(n) => n.text.clone(),
        ValueKind::SetRef(s) => format!("@{s}"),
        ValueKind::Arrow => "->".into(),
        ValueKind::Call(id, args) => {
            format!(
                "{}({})",
                id.name,
                args.iter()
                    .map(|a| value(a, depth, false))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        ValueKind::List(items) => {
            let parts: Vec<String> = items.iter().map(|a| value(a, depth + 1, false)).collect();
            if !wrap || parts.is_empty() {
                return format!("[{}]", parts.join(", "));
            }
            let ind = INDENT.repeat(depth + 1);
            let mut s = String::from("[\n");
            let mut line = String::new();
            for p in parts {
                if !line.is_empty() && ind.len() + line.len() + p.len() + 2 > WIDTH {
                    s.push_str(&ind);
                    s.push_str(line.trim_end());
                    s.push('\n');
                    line.clear();
                }
                line.push_str(&p);
                line.push_str(", ");
            }
            s.push_str(&ind);
            s.push_str(line.trim_end());
            s.push('\n');
            s.push_str(&INDENT.repeat(depth));
            s.push(']');
            s
        }
    }
}

/// Print an expression; `prec` is the binding strength of the context (0 or, 1 and, 2 not).
fn expr(e: &Expr, prec: u8) -> String {
    let (s, mine) = match &e.kind {
        ExprKind::Or(v) => (
            v.iter()
                .map(|e| expr(e, 1))
                .collect::<Vec<_>>()
                .join(" || "),
            0,
        ),
        ExprKind::And(v) => (
            v.iter()
                .map(|e| expr(e, 2))
                .collect::<Vec<_>>()
                .join(" && "),
            1,
        ),
        ExprKind::Not(inner) => (format!("!{}", expr(inner, 3)), 3),
        ExprKind::Cmp(l, op, r) => (
            format!("{} {} {}", operand(l, None), op.as_str(), operand(r, None)),
            2,
        ),
        ExprKind::In(l, set) => (
            format!(
                "{} in {{{}}}",
                operand(l, None),
                set.iter()
                    .map(|o| operand(o, None))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            2,
        ),
    };
    // `!` needs its operand grouped unless that operand is a plain comparison… which
    // `!` cannot take without parentheses in the grammar, so group anything under it.
    if mine < prec || (prec == 3 && !matches!(e.kind, ExprKind::Not(_))) {
        format!("({s})")
    } else {
        s
    }
}

fn operand(o: &Operand, parent: Option<BitOp>) -> String {
    match &o.kind {
        OperandKind::Number(n) => n.text.clone(),
        OperandKind::Name(n) => n.clone(),
        OperandKind::Bit(op, a, b) => {
            let sym = match op {
                BitOp::And => "&",
                BitOp::Or => "|",
            };
            let s = format!("{} {sym} {}", operand(a, Some(*op)), operand(b, Some(*op)));
            if parent.is_some_and(|p| p != *op) {
                format!("({s})")
            } else {
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        let got = format(FileId(0), input).unwrap();
        assert_eq!(got, expect, "\n--- got ---\n{got}");
        assert_eq!(format(FileId(0), &got).unwrap(), got, "not idempotent");
    }

    #[test]
    fn canonical_layout() {
        check(
            "# head\nkakoi   1\n\n\n\nseccomp{\nallow   read ;allow [ write,close ]   # io\n  allow socket if (family==AF_INET||family==AF_INET6)&&type==1\n}\n",
            "# head\nkakoi 1\n\nseccomp {\n    allow read\n    allow [write, close]  # io\n    allow socket if (family == AF_INET || family == AF_INET6) && type == 1\n}\n",
        );
    }

    #[test]
    fn masks_and_negation_keep_their_grouping() {
        check(
            "seccomp {\n    allow clone if !(clone_flags & (CLONE_NEWNS | CLONE_NEWUSER) != 0)\n}\n",
            "seccomp {\n    allow clone if !(clone_flags & (CLONE_NEWNS | CLONE_NEWUSER) != 0)\n}\n",
        );
    }

    #[test]
    fn long_lists_break_one_item_per_line() {
        let names: Vec<String> = (0..20)
            .map(|i| format!("\"/some/long/path/{i}\""))
            .collect();
        let input = format!("filesystem {{\n    mask [{}]\n}}\n", names.join(", "));
        let out = format(FileId(0), &input).unwrap();
        assert!(
            out.contains("    mask [\n        \"/some/long/path/0\", \"/some/long/path/1\","),
            "{out}"
        );
        assert!(out.lines().all(|l| l.len() <= 100), "{out}");
        assert_eq!(format(FileId(0), &out).unwrap(), out);
    }

    #[test]
    fn a_lone_carriage_return_ends_a_comment_as_in_the_grammar() {
        // Found by fuzzing: the text after `\r` is a statement, not part of the comment.
        let text = "# note\rselinux optional {\n    type container_t\n}\n";
        let once = format(FileId(0), text).unwrap();
        assert_eq!(once.matches("selinux optional").count(), 1, "{once}");
        assert_eq!(format(FileId(0), &once).unwrap(), once);
    }

    #[test]
    fn comments_inside_a_statement_keep_it_as_written() {
        check(
            "seccomp {\n  allow [\n      read,   # r\n      write,\n  ]\n}\n",
            "seccomp {\n    allow [\n        read,   # r\n        write,\n    ]\n}\n",
        );
    }

    #[test]
    fn syntax_errors_are_returned() {
        assert!(format(FileId(0), "seccomp {\n allow read %\n}\n").is_err());
    }
}
