//! The `process` section.

use super::*;

impl Builder {
    pub(super) fn process_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        match a.stmt.keyword.name.as_str() {
            "argv" => {
                let v: Vec<String> = Self::flat(&a.stmt.values)
                    .into_iter()
                    .filter_map(|v| self.string(f, v))
                    .collect();
                if v.is_empty() {
                    self.err(
                        f,
                        a.stmt.span.clone(),
                        "E1001",
                        "`argv` needs at least the program",
                    );
                } else {
                    self.process.argv = v
                }
            }
            "env" => self.env(&a),
            "cwd" => {
                if self.expect_count(&a, 1, "one path") {
                    if let Some(p) = self.path(f, &a.stmt.values[0]) {
                        self.process.cwd = p
                    }
                }
            }
            "init" => {
                if let Some(b) = self.on_off(&a) {
                    self.process.init = b
                }
            }
            "no-new-privs" => {
                if let Some(b) = self.on_off(&a) {
                    self.process.no_new_privs = b
                }
            }
            "hostname" => self.hostname(&a),
            "time-offset" => self.time_offset(&a),
            "timeout" => {
                if !self.expect_count(&a, 1, "one duration") {
                    return;
                }
                if let Some(us) = self.duration_us(f, &a.stmt.values[0]) {
                    if us <= 0 {
                        self.err(
                            f,
                            a.stmt.values[0].span.clone(),
                            "E1005",
                            "timeout must be positive",
                        );
                    } else {
                        self.process.timeout_ms = Some((us / 1000) as u64)
                    }
                }
            }
            _ => self.unknown_key(
                &a,
                "process",
                &[
                    "argv",
                    "env",
                    "cwd",
                    "init",
                    "no-new-privs",
                    "hostname",
                    "time-offset",
                    "timeout",
                ],
            ),
        }
    }

    /// env ["KEY=VALUE", …]
    fn env(&mut self, a: &Args<'_>) {
        let f = a.file;
        for v in Self::flat(&a.stmt.values) {
            let Some(s) = self.string(f, v) else { continue };
            if !s.contains('=') || s.starts_with('=') {
                self.err(
                    f,
                    v.span.clone(),
                    "E1002",
                    format!("`{s}` is not `NAME=value`"),
                )
                .help = Some("write `\"NAME=value\"`".into());
                continue;
            }
            let key = s.split('=').next().unwrap_or("").to_string();
            self.process
                .env
                .retain(|e| !e.starts_with(&format!("{key}=")));
            self.process.env.push(s);
        }
    }

    /// hostname "NAME"
    fn hostname(&mut self, a: &Args<'_>) {
        let f = a.file;
        if let Some(h) = self.one_string(f, a.stmt) {
            if h.is_empty()
                || h.len() > 64
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                self.err(
                    f,
                    a.stmt.values[0].span.clone(),
                    "E1003",
                    format!("invalid hostname `{h}`"),
                )
                .help = Some("use up to 64 letters, digits, `-` and `.`".into());
            } else {
                self.process.hostname = Some(h);
            }
        }
    }

    /// time-offset monotonic|boottime DURATION
    fn time_offset(&mut self, a: &Args<'_>) {
        let f = a.file;
        if !self.expect_count(a, 2, "a clock (`monotonic` or `boottime`) and an offset") {
            return;
        }
        let clock = value_text(&a.stmt.values[0]);
        if clock != "monotonic" && clock != "boottime" {
            let d = self
                .err(
                    f,
                    a.stmt.values[0].span.clone(),
                    "E1004",
                    format!("unknown clock `{clock}`"),
                )
                .label("expected `monotonic` or `boottime`");
            d.help = did_you_mean(&clock, ["monotonic", "boottime"]);
            return;
        }
        let Some(us) = self.duration_us(f, &a.stmt.values[1]) else {
            return;
        };
        self.process.time_offsets.retain(|(c, _)| *c != clock);
        self.process
            .time_offsets
            .push((clock, (us / 1_000_000) as i64));
    }

    // -----------------------------------------------------------------------------------
    // LSMs
}
