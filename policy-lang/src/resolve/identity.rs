//! The `identity` section: user, groups, id maps.

use super::*;

impl Builder {
    pub(super) fn identity_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        match a.stmt.keyword.name.as_str() {
            "user" | "group" => {
                if !self.expect_count(&a, 1, "one numeric id") {
                    return;
                }
                let id = self
                    .integer(f, &a.stmt.values[0], u64::from(u32::MAX - 1))
                    .map(|v| v as u32);
                if a.stmt.keyword.name == "user" {
                    self.identity.user = id
                } else {
                    self.identity.group = id
                }
            }
            "groups" => {
                self.identity.groups = Self::flat(&a.stmt.values)
                    .into_iter()
                    .filter_map(|v| {
                        self.integer(f, v, u64::from(u32::MAX - 1))
                            .map(|v| v as u32)
                    })
                    .collect();
            }
            "uid-map" | "gid-map" => {
                if !self.expect_count(&a, 3, "three numbers: inside outside count") {
                    return;
                }
                let n: Vec<Option<u64>> = a
                    .stmt
                    .values
                    .iter()
                    .map(|v| self.integer(f, v, u64::from(u32::MAX)))
                    .collect();
                let [Some(i), Some(o), Some(c)] = n[..] else {
                    return;
                };
                if c == 0 || i + c > 1 << 32 || o + c > 1 << 32 {
                    self.err(f, a.stmt.span.clone(), "E0501", "id range out of bounds")
                        .label("count must be > 0 and ranges below 2^32");
                    return;
                }
                let m = IdMap {
                    inside: i as u32,
                    outside: o as u32,
                    count: c as u32,
                };
                let (list, what) = if a.stmt.keyword.name == "uid-map" {
                    (&self.identity.uid_map, "uid")
                } else {
                    (&self.identity.gid_map, "gid")
                };
                if list.iter().any(|x| {
                    ranges_overlap(x.inside, x.count, m.inside, m.count)
                        || ranges_overlap(x.outside, x.count, m.outside, m.count)
                }) {
                    self.err(
                        f,
                        a.stmt.span.clone(),
                        "E0502",
                        format!("overlapping {what} map ranges"),
                    )
                    .help = Some("the kernel rejects maps whose ranges overlap".into());
                    return;
                }
                if a.stmt.keyword.name == "uid-map" {
                    self.identity.uid_map.push(m)
                } else {
                    self.identity.gid_map.push(m)
                }
            }
            "subids" => self.identity.subids = self.one_string(f, a.stmt),
            "rootless" => {
                if let Some(b) = self.on_off(&a) {
                    self.identity.rootless = b
                }
            }
            _ => self.unknown_key(
                &a,
                "identity",
                &[
                    "user", "group", "groups", "uid-map", "gid-map", "subids", "rootless",
                ],
            ),
        }
    }

    // -----------------------------------------------------------------------------------
    // namespaces
}
