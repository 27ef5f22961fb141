//! Values of statements: strings, paths, numbers, sizes, durations, on/off.

use super::*;

impl Builder {
    pub(super) fn one_string(&mut self, file: FileId, stmt: &Stmt) -> Option<String> {
        let a = Args { file, stmt };
        if !self.expect_count(&a, 1, "one string") {
            return None;
        }
        self.string(file, &stmt.values[0])
    }

    /// A string that contains a NUL byte, which no system call can take (the kernel
    /// would see it end there): an error.
    pub(super) fn nul(&mut self, file: FileId, v: &Value, s: &str) -> bool {
        if !s.contains('\0') {
            return false;
        }
        self.err(file, v.span.clone(), "E0119", "a NUL byte in a string")
            .label("holds a NUL byte")
            .help = Some(
            "remove the NUL byte (a program, argument, path or variable cannot hold one)".into(),
        );
        true
    }

    pub(super) fn string(&mut self, file: FileId, v: &Value) -> Option<String> {
        match &v.kind {
            ValueKind::Str(s) if self.nul(file, v, s) => None,
            ValueKind::Str(s) => Some(s.clone()),
            ValueKind::Word(w) => Some(w.clone()),
            _ => {
                self.err(file, v.span.clone(), "E0112", "expected a string")
                    .label("not a string");
                None
            }
        }
    }

    pub(super) fn path(&mut self, file: FileId, v: &Value) -> Option<String> {
        match &v.kind {
            ValueKind::Str(s) if self.nul(file, v, s) => None,
            ValueKind::Str(s) if s.starts_with('/') => {
                if s.split('/').any(|c| c == "..") {
                    self.err(
                        file,
                        v.span.clone(),
                        "E0113",
                        format!("path `{s}` contains `..`"),
                    )
                    .label("not allowed in sandbox paths")
                    .help = Some("write the path without `..` components".into());
                    return None;
                }
                Some(s.clone())
            }
            ValueKind::Str(s) => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0113",
                    format!("path `{s}` is not absolute"),
                )
                .label("expected a path starting with `/`")
                .help = Some(format!("write `\"/{s}\"`"));
                None
            }
            _ => {
                self.err(file, v.span.clone(), "E0112", "expected a quoted path")
                    .label("not a string")
                    .help = Some("paths are strings, e.g. `\"/usr\"`".into());
                None
            }
        }
    }

    /// Values flattened: `a b [c, d]` -> a, b, c, d.
    pub(super) fn flat(values: &[Value]) -> Vec<&Value> {
        let mut out = Vec::new();
        for v in values {
            match &v.kind {
                ValueKind::List(items) => out.extend(Self::flat(items)),
                _ => out.push(v),
            }
        }
        out
    }

    pub(super) fn paths(&mut self, file: FileId, values: &[Value]) -> Vec<String> {
        Self::flat(values)
            .into_iter()
            .filter_map(|v| self.path(file, v))
            .collect()
    }

    pub(super) fn on_off(&mut self, a: &Args<'_>) -> Option<bool> {
        if !self.expect_count(a, 1, "`on` or `off`") {
            return None;
        }
        match &a.stmt.values[0].kind {
            ValueKind::Word(w) if w == "on" || w == "true" || w == "yes" => Some(true),
            ValueKind::Word(w) if w == "off" || w == "false" || w == "no" => Some(false),
            _ => {
                self.err(
                    a.file,
                    a.stmt.values[0].span.clone(),
                    "E0114",
                    "expected `on` or `off`",
                )
                .label("not a switch");
                None
            }
        }
    }

    pub(super) fn integer(&mut self, file: FileId, v: &Value, max: u64) -> Option<u64> {
        match &v.kind {
            ValueKind::Number(n) if n.unit.is_none() => match n.int {
                Some(i) if i >= 0 && (i as u128) <= u128::from(max) => Some(i as u64),
                _ => {
                    self.err(
                        file,
                        v.span.clone(),
                        "E0115",
                        format!("`{}` is out of range", n.text),
                    )
                    .label(format!("expected a whole number from 0 to {max}"));
                    None
                }
            },
            _ => {
                self.err(file, v.span.clone(), "E0115", "expected a whole number")
                    .label("not a number");
                None
            }
        }
    }

    /// A size with an optional binary unit: `512`, `64K`, `256M`, `2G` (bytes).
    pub(super) fn size(&mut self, file: FileId, v: &Value) -> Option<u64> {
        let ValueKind::Number(n) = &v.kind else {
            self.err(file, v.span.clone(), "E0116", "expected a size")
                .label("not a size")
                .help = Some("write a size like `256M` or `2G`".into());
            return None;
        };
        let mult: u64 = match n.unit.as_deref() {
            None | Some("B") => 1,
            Some("K" | "k" | "Ki" | "KiB" | "KB") => 1 << 10,
            Some("M" | "Mi" | "MiB" | "MB") => 1 << 20,
            Some("G" | "Gi" | "GiB" | "GB") => 1 << 30,
            Some("T" | "Ti" | "TiB" | "TB") => 1 << 40,
            Some(u) => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0116",
                    format!("unknown size unit `{u}`"),
                )
                .label("not a size unit")
                .help = Some("use K, M, G or T (powers of 1024)".into());
                return None;
            }
        };
        match n.value {
            Some(x) if x >= 0.0 && x * (mult as f64) < 1.8e19 => Some((x * mult as f64) as u64),
            _ => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0116",
                    format!("size `{}` is out of range", n.text),
                );
                None
            }
        }
    }

    /// A duration: `30s`, `100ms`, `2m`, `1h`, `1d`, `500us`, in microseconds.
    pub(super) fn duration_us(&mut self, file: FileId, v: &Value) -> Option<i128> {
        let ValueKind::Number(n) = &v.kind else {
            self.err(file, v.span.clone(), "E0117", "expected a duration")
                .label("not a duration")
                .help = Some("write a duration like `30s` or `100ms`".into());
            return None;
        };
        let mult: f64 = match n.unit.as_deref() {
            Some("us") => 1.0,
            Some("ms") => 1e3,
            Some("s") => 1e6,
            Some("m" | "min") => 60e6,
            Some("h") => 3600e6,
            Some("d") => 86400e6,
            None => {
                self.err(file, v.span.clone(), "E0117", "a duration needs a unit")
                    .label("unit missing")
                    .help = Some(format!(
                    "write `{}s` for seconds or `{}ms` for milliseconds",
                    n.text, n.text
                ));
                return None;
            }
            Some(u) => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0117",
                    format!("unknown duration unit `{u}`"),
                )
                .label("not a time unit")
                .help = Some("use us, ms, s, m, h or d".into());
                return None;
            }
        };
        n.value.map(|x| (x * mult) as i128)
    }

    pub(super) fn enforcement(&mut self, file: FileId, v: &Value) -> Option<Enforcement> {
        match &v.kind {
            ValueKind::Word(w) if w == "required" => Some(Enforcement::Required),
            ValueKind::Word(w) if w == "best-effort" || w == "optional" => {
                Some(Enforcement::BestEffort)
            }
            _ => {
                self.err(
                    file,
                    v.span.clone(),
                    "E0118",
                    "expected `required` or `optional`",
                )
                .label("not an enforcement level");
                None
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // seccomp
}

pub(super) fn value_text(v: &Value) -> String {
    match &v.kind {
        ValueKind::Word(w) => w.clone(),
        ValueKind::Str(s) => s.clone(),
        ValueKind::Number(n) => n.text.clone(),
        ValueKind::SetRef(s) => format!("@{s}"),
        ValueKind::List(_) => "[…]".into(),
        ValueKind::Call(id, _) => format!("{}(…)", id.name),
        ValueKind::Arrow => "->".into(),
    }
}

pub(super) fn dedup(v: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.iter()
        .filter(|s| seen.insert(s.as_str()))
        .cloned()
        .collect()
}
