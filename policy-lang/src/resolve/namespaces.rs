//! The `namespaces` section.

use super::*;

impl Builder {
    pub(super) fn namespaces_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let kw = a.stmt.keyword.name.as_str();
        let kinds: Vec<NsKind> = if kw == "all" {
            NsKind::ALL.to_vec()
        } else if let Some(k) = NsKind::ALL.iter().find(|k| {
            k.name() == kw
                || (kw == "mnt" && **k == NsKind::Mount)
                || (kw == "network" && **k == NsKind::Net)
        }) {
            vec![*k]
        } else {
            let names: Vec<&str> = NsKind::ALL
                .iter()
                .map(|k| k.name())
                .chain(["all"])
                .collect();
            self.unknown_key(&a, "namespaces", &names);
            return;
        };
        let mode = match a.stmt.values.as_slice() {
            [Value {
                kind: ValueKind::Word(w),
                ..
            }] if w == "on" || w == "new" => NsMode::New,
            [Value {
                kind: ValueKind::Word(w),
                ..
            }] if w == "off" || w == "host" => NsMode::Host,
            [Value {
                kind: ValueKind::Word(w),
                ..
            }, p]
                if w == "join" && kw != "all" =>
            {
                let Some(p) = self.path(a.file, p) else {
                    return;
                };
                NsMode::Join(p)
            }
            _ => {
                self.err(
                    a.file,
                    a.stmt.span.clone(),
                    "E0601",
                    format!("`{kw}` takes `on`, `off` or `join \"PATH\"`"),
                )
                .help = Some(format!("e.g. `{kw} on`"));
                return;
            }
        };
        for k in kinds {
            self.namespaces.insert(k, mode.clone());
        }
    }

    // -----------------------------------------------------------------------------------
    // filesystem
}
