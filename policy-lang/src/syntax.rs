//! Text -> syntax tree. pest `Pairs` never leave this module: they are lowered at once into
//! an owned tree whose every node carries its byte span.
//!
//! Architecture invariant: parsing never stops at the first bad line. A line the grammar
//! cannot read becomes a diagnostic, and parsing resumes on the next line.

use std::ops::Range;

use pest::iterators::Pair;
use pest::Parser as _;
use pest_derive::Parser;

use crate::diagnostics::{Diagnostic, Span};
use crate::source::FileId;

#[derive(Parser)]
#[grammar = "grammar.pest"]
struct PolicyParser;

/// A parsed policy file.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxTree {
    pub file: FileId,
    pub stmts: Vec<Stmt>,
}

/// `keyword value* [if cond] [{ block }]`
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub keyword: Ident,
    /// Arguments of a call-form head, as in `errno(EPERM) ptrace`.
    pub head_args: Option<Vec<Value>>,
    pub values: Vec<Value>,
    pub cond: Option<Expr>,
    pub block: Option<Vec<Stmt>>,
    pub span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    Word(String),
    Str(String),
    Number(Number),
    /// `@name`, without the `@`.
    SetRef(String),
    List(Vec<Value>),
    Call(Ident, Vec<Value>),
    Arrow,
}

/// A numeric literal, with its unit suffix if any (`64M`, `100ms`).
#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    pub text: String,
    /// The value without its unit; `None` if it does not fit an `i128`/`f64`.
    pub value: Option<f64>,
    /// The exact integer value, when the literal is an integer.
    pub int: Option<i128>,
    pub unit: Option<String>,
}

/// A condition on syscall arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Operand),
    In(Operand, Vec<Operand>),
}

/// Comparison operators are the IR's (a condition keeps the one it was written with).
pub use crate::ir::CmpOp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Operand {
    pub kind: OperandKind,
    pub span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OperandKind {
    Number(Number),
    Name(String),
    Bit(BitOp, Box<Operand>, Box<Operand>),
}

/// The most rule calls one parse may make.
pub const CALL_LIMIT: usize = 100_000_000;

/// Parse one file. Always returns a tree (possibly partial) and every syntax error.
pub fn parse(file: FileId, text: &str) -> (SyntaxTree, Vec<Diagnostic>) {
    // A ceiling on the parser's work, whatever the input: no policy comes near it (the
    // shipped ones take a few thousand calls per KB), and hostile input fails with an error
    // instead of running for minutes. 100 million calls is about 10 MB of ordinary policy,
    // or a second of work.
    static LIMIT: std::sync::Once = std::sync::Once::new();
    LIMIT.call_once(|| pest::set_call_limit(std::num::NonZeroUsize::new(CALL_LIMIT)));
    let mut diags = Vec::new();
    let mut stmts = Vec::new();
    match PolicyParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let root = pairs.next().expect("file rule yields one pair");
            for p in root.into_inner() {
                match p.as_rule() {
                    Rule::stmt => stmts.push(lower_stmt(file, text, p, &mut diags)),
                    Rule::bad_line => diags.push(explain_bad(file, text, &p)),
                    _ => {}
                }
            }
        }
        // The grammar accepts any text through its bad_line fallback, so this is only
        // reached for input it cannot even split into lines (e.g. an unclosed block at
        // the end of the file). Report pest's own message at its position.
        Err(e) if matches!(&e.variant, pest::error::ErrorVariant::CustomError { message } if message.contains("limit reached")) =>
        {
            diags.push(Diagnostic::global(
                "E0009",
                format!(
                    "the parser gave up: the file needs more than {CALL_LIMIT} rule calls (it is too large, or has too many unclosed brackets)"
                ),
            ).with_help("split the policy into files joined with `use`, or close the brackets"));
        }
        Err(e) => diags.push(pest_error(file, 0, text, e)),
    }
    (SyntaxTree { file, stmts }, diags)
}

fn lower_stmt(file: FileId, text: &str, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Stmt {
    let span = range(&p);
    let mut inner = p.into_inner();
    let head = inner.next().expect("stmt starts with a head");
    let (keyword, head_args) = if head.as_rule() == Rule::call {
        let mut parts = head.into_inner();
        let name = parts.next().expect("call has a name");
        let id = Ident {
            name: name.as_str().to_string(),
            span: range(&name),
        };
        (id, Some(parts.map(lower_value).collect()))
    } else {
        (
            Ident {
                name: head.as_str().to_string(),
                span: range(&head),
            },
            None,
        )
    };
    let mut stmt = Stmt {
        keyword,
        head_args,
        values: Vec::new(),
        cond: None,
        block: None,
        span,
    };
    for p in inner {
        match p.as_rule() {
            Rule::cond => {
                let e = p.into_inner().next().expect("cond has expr");
                stmt.cond = Some(lower_expr(e));
            }
            Rule::block => {
                let mut block = Vec::new();
                let p_start = p.as_span().start();
                for s in p.into_inner() {
                    match s.as_rule() {
                        Rule::stmt => block.push(lower_stmt(file, text, s, diags)),
                        Rule::bad_stmt => diags.push(explain_bad(file, text, &s)),
                        Rule::unclosed => {
                            let open = p_start..p_start + 1;
                            diags.push(
                                Diagnostic::error(
                                    "E0007",
                                    "this `{` is never closed",
                                    Span::new(file, open),
                                )
                                .with_label("the block opened here runs to the end of the file")
                                .with_help("add the matching `}`"),
                            );
                        }
                        _ => {}
                    }
                }
                stmt.block = Some(block);
            }
            Rule::trailing => diags.push(
                Diagnostic::error(
                    "E0008",
                    "unexpected text after the block",
                    Span::new(file, range(&p)),
                )
                .with_label("a statement ends at its `}`")
                .with_help("put this on its own line, or remove it"),
            ),
            _ => stmt.values.push(lower_value(p)),
        }
    }
    stmt
}

fn lower_value(p: Pair<'_, Rule>) -> Value {
    let span = range(&p);
    let kind = match p.as_rule() {
        Rule::word => ValueKind::Word(p.as_str().to_string()),
        Rule::string => {
            let inner = p.into_inner().next().map_or("", |s| s.as_str());
            ValueKind::Str(unescape(inner))
        }
        Rule::number => ValueKind::Number(parse_number(p.as_str())),
        Rule::set_ref => ValueKind::SetRef(p.as_str()[1..].to_string()),
        Rule::list => ValueKind::List(p.into_inner().map(lower_value).collect()),
        Rule::call => {
            let mut inner = p.into_inner();
            let name = inner.next().expect("call has a name");
            let ident = Ident {
                name: name.as_str().to_string(),
                span: range(&name),
            };
            ValueKind::Call(ident, inner.map(lower_value).collect())
        }
        Rule::arrow => ValueKind::Arrow,
        r => unreachable!("grammar produced {r:?} as a value"),
    };
    Value { kind, span }
}

fn lower_expr(p: Pair<'_, Rule>) -> Expr {
    let span = range(&p);
    match p.as_rule() {
        Rule::expr | Rule::conj => {
            let is_or = p.as_rule() == Rule::expr;
            let mut parts: Vec<Expr> = p.into_inner().map(lower_expr).collect();
            if parts.len() == 1 {
                return parts.pop().expect("one part");
            }
            let kind = if is_or {
                ExprKind::Or(parts)
            } else {
                ExprKind::And(parts)
            };
            Expr { kind, span }
        }
        Rule::not => {
            let inner = p.into_inner().next().expect("not has operand");
            Expr {
                kind: ExprKind::Not(Box::new(lower_expr(inner))),
                span,
            }
        }
        Rule::paren => lower_expr(p.into_inner().next().expect("paren has expr")),
        Rule::cmp => {
            let mut inner = p.into_inner();
            let lhs = lower_operand(inner.next().expect("cmp lhs"));
            let next = inner.next().expect("cmp op or set");
            if next.as_rule() == Rule::set {
                let set = next.into_inner().map(lower_operand).collect();
                return Expr {
                    kind: ExprKind::In(lhs, set),
                    span,
                };
            }
            let op = match next.as_str() {
                "==" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            };
            let rhs = lower_operand(inner.next().expect("cmp rhs"));
            Expr {
                kind: ExprKind::Cmp(lhs, op, rhs),
                span,
            }
        }
        r => unreachable!("grammar produced {r:?} as an expression"),
    }
}

fn lower_operand(p: Pair<'_, Rule>) -> Operand {
    let span = range(&p);
    match p.as_rule() {
        Rule::operand => {
            let mut inner = p.into_inner();
            let mut acc = lower_operand(inner.next().expect("operand has a term"));
            while let Some(op) = inner.next() {
                let rhs = lower_operand(inner.next().expect("bit op has rhs"));
                let bop = if op.as_str().starts_with('&') {
                    BitOp::And
                } else {
                    BitOp::Or
                };
                let s = acc.span.start..rhs.span.end;
                acc = Operand {
                    kind: OperandKind::Bit(bop, Box::new(acc), Box::new(rhs)),
                    span: s,
                };
            }
            acc.span = span;
            acc
        }
        Rule::number => Operand {
            kind: OperandKind::Number(parse_number(p.as_str())),
            span,
        },
        Rule::word => Operand {
            kind: OperandKind::Name(p.as_str().to_string()),
            span,
        },
        r => unreachable!("grammar produced {r:?} as an operand"),
    }
}

/// Parse a numeric literal with an optional unit.
pub fn parse_number(text: &str) -> Number {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else {
        (10, body)
    };
    let split = digits
        .find(|c: char| !(c.is_digit(radix) || c == '_' || (radix == 10 && c == '.')))
        .unwrap_or(digits.len());
    let (num, unit) = digits.split_at(split);
    let clean: String = num.chars().filter(|&c| c != '_').collect();
    let int = if clean.contains('.') {
        None
    } else {
        i128::from_str_radix(&clean, radix)
            .ok()
            .map(|v| if neg { -v } else { v })
    };
    let value = match int {
        Some(i) => Some(i as f64),
        None => clean.parse::<f64>().ok().map(|v| if neg { -v } else { v }),
    };
    Number {
        text: text.to_string(),
        value,
        int,
        unit: (!unit.is_empty()).then(|| unit.to_string()),
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The span of a pair, ending at its last token: pest lets a non-atomic rule's span run
/// over whitespace and comments skipped before an optional part that then did not match.
fn range(p: &Pair<'_, Rule>) -> Range<usize> {
    let s = p.as_span();
    // Rules that end in a literal token (`"`, `]`, `}`, `)`) or are atomic end exactly.
    let tight = |r: Rule| {
        matches!(
            r,
            Rule::string | Rule::list | Rule::block | Rule::paren | Rule::set | Rule::call
        )
    };
    if tight(p.as_rule()) || p.clone().into_inner().next().is_none() {
        return s.start()..s.end();
    }
    let mut end = s.start();
    for d in p.clone().into_inner().flatten() {
        if tight(d.as_rule()) || d.clone().into_inner().next().is_none() {
            end = end.max(d.as_span().end());
        }
    }
    s.start()..end
}

/// A line the grammar could not read: re-parse it alone to find what is wrong.
fn explain_bad(file: FileId, text: &str, p: &Pair<'_, Rule>) -> Diagnostic {
    let offset = p.as_span().start();
    match PolicyParser::parse(Rule::single, p.as_str()) {
        Err(e) => pest_error(file, offset, text, e),
        Ok(_) => {
            // The line parses alone, so what follows it on the same line is the problem
            // (only reachable through the lookahead after a statement).
            Diagnostic::error("E0001", "unexpected text", Span::new(file, range(p)))
                .with_label("cannot be read here")
        }
    }
}

fn pest_error(file: FileId, offset: usize, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<&str> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().filter_map(|r| rule_name(*r)).collect()
        }
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    expected.sort_unstable();
    expected.dedup();
    let at = offset + pos;
    let found = text[at.min(text.len())..].chars().next();
    // Point at the offending character; at the end of a line, at the line's end.
    let span = match found {
        None | Some('\n') => at..at,
        Some(c) => at..at + c.len_utf8(),
    };
    let expected_text = match expected.len() {
        0 => String::from("cannot read this"),
        1 => format!("expected {}", expected[0]),
        _ => {
            let (last, rest) = expected.split_last().expect("non-empty");
            format!("expected {} or {}", rest.join(", "), last)
        }
    };
    let d = |msg: String| Diagnostic::error("E0001", msg, Span::new(file, span.clone()));
    match found {
        Some('"') if !text[at + 1..].lines().next().unwrap_or("").contains('"') => d("unterminated string".into())
            .with_label("this string does not end on its line")
            .with_help("close the string with `\"` before the end of the line"),
        None | Some('\n') => d("unexpected end of line".into()).with_label(expected_text).with_help(
            "a statement ends at the end of its line; lists `[…]` may span lines, other lines can be continued with `\\`",
        ),
        Some(c) => d(format!("unexpected `{c}`")).with_label(expected_text).with_help(
            "a statement is `keyword value… [if condition] [{ … }]`; strings are \"quoted\", lists are `[a, b]`",
        ),
    }
}

fn rule_name(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::keyword
        | Rule::word
        | Rule::ident
        | Rule::value
        | Rule::list
        | Rule::string
        | Rule::str_inner
        | Rule::number
        | Rule::set_ref
        | Rule::call
        | Rule::arrow => "a value",
        Rule::cond => "`if`",
        Rule::block | Rule::block_item | Rule::set => "`{`",
        Rule::cmp_op => "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`)",
        Rule::cmp | Rule::expr | Rule::conj | Rule::not | Rule::paren => "a condition",
        Rule::operand => "an argument name or constant",
        Rule::bit_op => "`&`, `|`, `&&`, `||` or `)`",
        Rule::EOI => "the end of the line",
        Rule::stmt => "a statement",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMap;

    /// Found by fuzzing: open blocks, each closed early by a `}` in the middle of a line.
    /// Each level used to re-parse everything inside it (2^depth work); now every line is
    /// read once and each stray text is one error.
    #[test]
    fn nested_blocks_with_text_after_them_parse_in_one_pass() {
        let depth = 40;
        let mut text = String::new();
        for _ in 0..depth {
            text.push_str("filesystem {\n    mask [\"/a\"# comment\n");
        }
        for _ in 0..depth {
            text.push_str("    deny @mou}nt\n");
        }
        let (tree, diags) = parse(FileId(0), &text);
        assert_eq!(tree.stmts.len(), 1);
        let trailing = diags.iter().filter(|d| d.code == "E0008").count();
        let unclosed = diags.iter().filter(|d| d.code == "E0007").count();
        assert_eq!((trailing, unclosed), (depth, 0), "{diags:#?}");
    }

    #[test]
    fn line_and_column_from_the_line_index() {
        let mut map = SourceMap::new();
        let f = map.add("t", "ab\nçd\n\nx");
        assert_eq!(map.line_col(f, 0), (1, 1));
        assert_eq!(map.line_col(f, 3), (2, 1));
        assert_eq!(map.line_col(f, 5), (2, 2)); // after the two-byte `ç`
        assert_eq!(map.line_col(f, 7), (3, 1));
        assert_eq!(map.line_col(f, 8), (4, 1));
        assert_eq!(map.line_col(f, 99), (4, 2));
    }
}
