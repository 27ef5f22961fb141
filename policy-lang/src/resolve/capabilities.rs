//! The `capabilities` section.

use super::*;

impl Builder {
    pub(super) fn cap_list(&mut self, a: &Args<'_>) -> Option<BTreeSet<u32>> {
        let mut out = BTreeSet::new();
        let mut ok = true;
        for v in Self::flat(&a.stmt.values) {
            let ValueKind::Word(w) = &v.kind else {
                self.err(
                    a.file,
                    v.span.clone(),
                    "E0401",
                    "expected a capability name",
                )
                .label("not a capability");
                ok = false;
                continue;
            };
            match catalogue::capability(w) {
                Some(c) => {
                    out.insert(c);
                }
                None => {
                    let bare = w.to_ascii_uppercase();
                    let bare = bare.strip_prefix("CAP_").unwrap_or(&bare).to_string();
                    let d = self
                        .err(
                            a.file,
                            v.span.clone(),
                            "E0401",
                            format!("unknown capability `{w}`"),
                        )
                        .label("not a Linux capability");
                    d.help = did_you_mean(&bare, catalogue::capabilities().iter().copied());
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn capabilities_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let kw = a.stmt.keyword.name.as_str();
        let all_word = matches!(a.stmt.values.as_slice(), [Value { kind: ValueKind::Word(w), .. }] if w == "all");
        let all: BTreeSet<u32> = (0..catalogue::capabilities().len() as u32).collect();
        let set = if all_word {
            Some(all)
        } else if matches!(
            kw,
            "drop"
                | "keep"
                | "add"
                | "bounding"
                | "effective"
                | "permitted"
                | "inheritable"
                | "ambient"
                | "acknowledge"
        ) {
            self.cap_list(&a)
        } else {
            None
        };
        let c = &mut self.caps;
        if let (Some(_), "keep" | "add" | "bounding" | "effective" | "permitted" | "ambient") =
            (&set, kw)
        {
            for v in Self::flat(&a.stmt.values) {
                if let ValueKind::Word(w) = &v.kind {
                    if let Some(cap) = catalogue::capability(w) {
                        c.granted_at.insert(cap, Span::new(a.file, v.span.clone()));
                    }
                }
            }
        }
        match kw {
            "acknowledge" => {
                if let Some(set) = set {
                    c.acknowledged.extend(set)
                }
            }
            "drop" => {
                let Some(set) = set else { return };
                for s in [
                    &mut c.bounding,
                    &mut c.effective,
                    &mut c.permitted,
                    &mut c.inheritable,
                    &mut c.ambient,
                ] {
                    s.retain(|x| !set.contains(x));
                }
            }
            "keep" | "add" => {
                let Some(set) = set else { return };
                for s in [&mut c.bounding, &mut c.effective, &mut c.permitted] {
                    s.extend(set.iter().copied());
                }
            }
            "bounding" => {
                if let Some(s) = set {
                    c.bounding = s
                }
            }
            "effective" => {
                if let Some(s) = set {
                    c.effective = s
                }
            }
            "permitted" => {
                if let Some(s) = set {
                    c.permitted = s
                }
            }
            "inheritable" => {
                if let Some(s) = set {
                    c.inheritable = s
                }
            }
            "ambient" => {
                if let Some(s) = set {
                    c.ambient = s
                }
            }
            _ => self.unknown_key(
                &a,
                "capabilities",
                &[
                    "drop",
                    "keep",
                    "bounding",
                    "effective",
                    "permitted",
                    "inheritable",
                    "ambient",
                ],
            ),
        }
    }

    // -----------------------------------------------------------------------------------
    // identity
}
