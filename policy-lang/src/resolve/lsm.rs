//! The `selinux` and `apparmor` sections.

use super::*;

impl Builder {
    pub(super) fn lsm_enforcement(&mut self, file: FileId, stmt: &Stmt) -> Option<Enforcement> {
        match stmt.values.as_slice() {
            [] => Some(Enforcement::Required),
            [v] => self.enforcement(file, v),
            [_, v, ..] => {
                self.err(file, v.span.clone(), "E1101", "unexpected value")
                    .label("expected `{`");
                None
            }
        }
    }

    pub(super) fn selinux(&mut self, file: FileId, stmt: &Stmt) {
        let enforcement = self.lsm_enforcement(file, stmt);
        let Some(block) = self.section_block(file, stmt) else {
            return;
        };
        let mut s = SeLinux {
            enforcement: enforcement.unwrap_or(Enforcement::Required),
            user: "system_u".into(),
            role: "system_r".into(),
            r#type: "container_t".into(),
            level: Level::Fixed("s0".into()),
            mount_label: None,
        };
        for st in block {
            let a = Args { file, stmt: st };
            self.no_cond_or_block(&a);
            match st.keyword.name.as_str() {
                k @ ("user" | "role" | "type") => {
                    let Some(v) = self.one_string(file, st) else {
                        continue;
                    };
                    if !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                        || v.is_empty()
                    {
                        self.err(
                            file,
                            st.values[0].span.clone(),
                            "E1102",
                            format!("invalid SELinux {k} `{v}`"),
                        )
                        .help = Some("SELinux identifiers use letters, digits, `_` and `.`".into());
                        continue;
                    }
                    match k {
                        "user" => s.user = v,
                        "role" => s.role = v,
                        _ => s.r#type = v,
                    }
                }
                "level" => match st.values.as_slice() {
                    [Value {
                        kind: ValueKind::Word(w),
                        ..
                    }] if w == "random" => s.level = Level::Random,
                    [v] => {
                        let Some(l) = self.string(file, v) else {
                            continue;
                        };
                        if !valid_mls_level(&l) {
                            self.err(
                                file,
                                v.span.clone(),
                                "E1103",
                                format!("invalid MLS level `{l}`"),
                            )
                            .label("expected `s0` or `s0:cN,cM`")
                            .help = Some("write `level \"s0:c12,c34\"` or `level random`".into());
                            continue;
                        }
                        s.level = Level::Fixed(l);
                    }
                    _ => {
                        self.expect_count(&a, 1, "a level or `random`");
                    }
                },
                "mount-label" => s.mount_label = self.one_string(file, st),
                _ => self.unknown_key(
                    &a,
                    "selinux",
                    &["user", "role", "type", "level", "mount-label"],
                ),
            }
        }
        if enforcement.is_some() {
            self.selinux = Some(s);
        }
    }

    pub(super) fn apparmor(&mut self, file: FileId, stmt: &Stmt) {
        let enforcement = self.lsm_enforcement(file, stmt);
        let Some(block) = self.section_block(file, stmt) else {
            return;
        };
        let mut rule_spans = Vec::new();
        let mut p = AppArmor {
            enforcement: enforcement.unwrap_or(Enforcement::Required),
            profile: format!("kakoi-{}", self.name.clone().unwrap_or_default()),
            mode: AaMode::Enforce,
            rules: Vec::new(),
        };
        for st in block {
            let a = Args { file, stmt: st };
            self.no_cond_or_block(&a);
            match st.keyword.name.as_str() {
                "profile" => {
                    if let Some(n) = self.one_string(file, st) {
                        if n.is_empty()
                            || n.chars()
                                .any(|c| c.is_whitespace() || c == '"' || c == '\0')
                        {
                            self.err(
                                file,
                                st.values[0].span.clone(),
                                "E1104",
                                format!("invalid AppArmor profile name `{n}`"),
                            );
                        } else {
                            p.profile = n;
                        }
                    }
                }
                "mode" => match st.values.first().map(value_text).as_deref() {
                    Some("enforce") => p.mode = AaMode::Enforce,
                    Some("complain") => p.mode = AaMode::Complain,
                    _ => {
                        self.err(
                            file,
                            st.span.clone(),
                            "E1105",
                            "expected `mode enforce` or `mode complain`",
                        );
                    }
                },
                "rule" => {
                    for v in Self::flat(&st.values) {
                        if let Some(r) = self.string(file, v) {
                            let r = r.trim().to_string();
                            if !r.ends_with(',') {
                                self.err(
                                    file,
                                    v.span.clone(),
                                    "E1106",
                                    "AppArmor rules end with `,`",
                                )
                                .help = Some(format!("write `\"{r},\"`"));
                                continue;
                            }
                            p.rules.push(AaRule {
                                text: r,
                                origin: Origin {
                                    file: String::new(),
                                    line: 0,
                                    column: 0,
                                },
                            });
                            rule_spans.push(Span::new(file, v.span.clone()));
                        }
                    }
                }
                _ => self.unknown_key(&a, "apparmor", &["profile", "mode", "rule"]),
            }
        }
        if enforcement.is_some() {
            self.aa_rule_spans = rule_spans;
            self.apparmor = Some(p);
        }
    }

    // -----------------------------------------------------------------------------------
    // whole-policy checks
}

pub(super) fn valid_mls_level(l: &str) -> bool {
    let (sens, cats) = match l.split_once(':') {
        Some((s, c)) => (s, Some(c)),
        None => (l, None),
    };
    let sens_ok = sens
        .strip_prefix('s')
        .is_some_and(|n| n.parse::<u16>().is_ok_and(|n| n < 16));
    let cats_ok = cats.is_none_or(|c| {
        !c.is_empty()
            && c.split(',').all(|part| {
                part.split('.').all(|x| {
                    x.strip_prefix('c')
                        .is_some_and(|n| n.parse::<u16>().is_ok_and(|n| n < 1024))
                })
            })
    });
    sens_ok && cats_ok
}
