//! The `resources` section: cgroup limits and rlimits.

use super::*;

impl Builder {
    pub(super) fn resources_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        let kw = a.stmt.keyword.name.as_str();
        if kw == "rlimit" {
            return self.rlimit(&a);
        }
        if !self.expect_count(&a, 1, "one value") {
            return;
        }
        let v = &a.stmt.values[0];
        match kw {
            "memory" => self.resources.memory = self.size(f, v),
            "memory-swap" => self.resources.memory_swap = self.size(f, v),
            "pids" => self.resources.pids = self.integer(f, v, 1 << 22),
            "cpu" => {
                // Cores, as a fraction: `cpu 0.5` is 50 ms per 100 ms.
                match &v.kind {
                    ValueKind::Number(n)
                        if n.unit.is_none() && n.value.is_some_and(|x| x > 0.0 && x <= 4096.0) =>
                    {
                        self.resources.cpu_quota = Some(
                            (n.value.expect("checked") * self.resources.cpu_period as f64) as u64,
                        )
                    }
                    _ => {
                        self.err(f, v.span.clone(), "E0901", "expected a number of CPUs")
                            .label("e.g. `0.5` or `2`");
                    }
                }
            }
            "cpu-weight" => {
                self.resources.cpu_weight = self.integer(f, v, 10000).filter(|w| {
                    let ok = *w >= 1;
                    if !ok {
                        self.err(
                            f,
                            v.span.clone(),
                            "E0902",
                            "cpu-weight ranges from 1 to 10000",
                        );
                    }
                    ok
                })
            }
            "io-weight" => {
                self.resources.io_weight = self.integer(f, v, 10000).filter(|w| {
                    let ok = *w >= 1;
                    if !ok {
                        self.err(
                            f,
                            v.span.clone(),
                            "E0902",
                            "io-weight ranges from 1 to 10000",
                        );
                    }
                    ok
                })
            }
            "cgroup" => self.resources.cgroup = self.enforcement(f, v),
            _ => self.unknown_key(
                &a,
                "resources",
                &[
                    "memory",
                    "memory-swap",
                    "pids",
                    "cpu",
                    "cpu-weight",
                    "io-weight",
                    "rlimit",
                    "cgroup",
                ],
            ),
        }
    }

    pub(super) fn rlimit(&mut self, a: &Args<'_>) {
        let names = || catalogue::RLIMITS.iter().map(|(n, _)| *n);
        let f = a.file;
        let vals = &a.stmt.values;
        if vals.len() < 2 || vals.len() > 3 {
            self.err(
                f,
                a.stmt.span.clone(),
                "E0903",
                "`rlimit` takes a name, a soft limit and an optional hard limit",
            )
            .help = Some("write `rlimit nofile 1024 4096`".into());
            return;
        }
        let name = value_text(&vals[0]);
        if catalogue::rlimit(&name).is_none() {
            let d = self
                .err(
                    f,
                    vals[0].span.clone(),
                    "E0904",
                    format!("unknown rlimit `{name}`"),
                )
                .label("not a resource limit");
            d.help = Some(did_you_mean(&name, names()).unwrap_or_else(|| {
                format!("limits are {}", names().collect::<Vec<_>>().join(", "))
            }));
            return;
        }
        let lim = |b: &mut Self, v: &Value| -> Option<u64> {
            if matches!(&v.kind, ValueKind::Word(w) if w == "unlimited") {
                return Some(u64::MAX);
            }
            match &v.kind {
                ValueKind::Number(n) if n.unit.is_some() => b.size(f, v),
                _ => b.integer(f, v, u64::MAX - 1),
            }
        };
        let Some(soft) = lim(self, &vals[1]) else {
            return;
        };
        let hard = match vals.get(2) {
            Some(v) => match lim(self, v) {
                Some(h) => h,
                None => return,
            },
            None => soft,
        };
        if soft > hard {
            self.err(
                f,
                a.stmt.span.clone(),
                "E0905",
                "soft limit above hard limit",
            )
            .help = Some("the soft limit must not exceed the hard limit".into());
            return;
        }
        self.resources.rlimits.retain(|r| r.name != name);
        self.resources.rlimits.push(Rlimit { name, soft, hard });
    }

    // -----------------------------------------------------------------------------------
    // process
}
