//! The `filesystem` section: root, overlays, binds, tmpfs, masks, access rules.

use super::*;

impl Builder {
    pub(super) fn filesystem_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        let vals = &a.stmt.values;
        match a.stmt.keyword.name.as_str() {
            "rootfs" => self.rootfs(&a),
            "bind" => self.bind(&a),
            "tmpfs" => self.tmpfs(&a),
            "overlay" => self.overlay(&a),
            "mask" => {
                let p = self.paths(f, vals);
                self.masked.extend(p)
            }
            "readonly" => {
                let p = self.paths(f, vals);
                self.readonly.extend(p)
            }
            kw @ ("read" | "write" | "exec" | "make" | "remove") => self.access(&a, kw),
            "landlock" => {
                if self.expect_count(&a, 1, "`required` or `optional`") {
                    if let Some(e) = self.enforcement(f, &vals[0]) {
                        self.landlock = e
                    }
                }
            }
            "landlock-scope" => self.landlock_scope(&a),
            "propagation" => self.propagation(&a),
            _ => self.unknown_key(
                &a,
                "filesystem",
                &[
                    "rootfs",
                    "bind",
                    "tmpfs",
                    "overlay",
                    "mask",
                    "readonly",
                    "read",
                    "write",
                    "exec",
                    "make",
                    "remove",
                    "landlock",
                    "landlock-scope",
                    "propagation",
                ],
            ),
        }
    }

    /// rootfs host | rootfs "PATH" [ro|rw]
    fn rootfs(&mut self, a: &Args<'_>) {
        let f = a.file;
        let vals = &a.stmt.values;
        match vals.as_slice() {
            [Value {
                kind: ValueKind::Word(w),
                ..
            }] if w == "host" => self.rootfs = Rootfs::Host,
            [p, rest @ ..] if matches!(p.kind, ValueKind::Str(_)) => {
                let Some(path) = self.path(f, p) else { return };
                let readonly = match rest {
                    [] => true,
                    [Value {
                        kind: ValueKind::Word(w),
                        ..
                    }] if w == "ro" => true,
                    [Value {
                        kind: ValueKind::Word(w),
                        ..
                    }] if w == "rw" => false,
                    _ => {
                        self.err(
                            f,
                            a.stmt.span.clone(),
                            "E0701",
                            "expected `ro` or `rw` after the rootfs path",
                        );
                        return;
                    }
                };
                self.rootfs = Rootfs::Dir { path, readonly };
            }
            _ => {
                self.err(
                    f,
                    a.stmt.span.clone(),
                    "E0701",
                    "`rootfs` takes `host` or a path",
                )
                .help = Some("write `rootfs host` or `rootfs \"/srv/root\" ro`".into());
            }
        }
    }

    /// bind "SRC" [-> "DST"] [ro|rw] [idmap] [suid]
    fn bind(&mut self, a: &Args<'_>) {
        let f = a.file;
        let vals = &a.stmt.values;
        // bind "SRC" [-> "DST"] [ro|rw] [idmap]
        let mut it = vals.iter().peekable();
        let Some(src) = it.next().and_then(|v| self.path(f, v)) else {
            if vals.is_empty() {
                self.err(
                    f,
                    a.stmt.span.clone(),
                    "E0702",
                    "`bind` needs a source path",
                )
                .help = Some("write `bind \"/src\" -> \"/dst\" ro`".into());
            }
            return;
        };
        let mut dst = src.clone();
        if matches!(
            it.peek(),
            Some(Value {
                kind: ValueKind::Arrow,
                ..
            })
        ) {
            it.next();
            match it.next() {
                Some(v) => match self.path(f, v) {
                    Some(p) => dst = p,
                    None => return,
                },
                None => {
                    self.err(
                        f,
                        a.stmt.span.clone(),
                        "E0702",
                        "`->` needs a destination path",
                    );
                    return;
                }
            }
        }
        let (mut readonly, mut idmap, mut suid) = (true, false, None);
        for v in it {
            match &v.kind {
                ValueKind::Word(w) if w == "ro" => readonly = true,
                ValueKind::Word(w) if w == "rw" => readonly = false,
                ValueKind::Word(w) if w == "idmap" => idmap = true,
                ValueKind::Word(w) if w == "suid" => suid = Some(v.span.clone()),
                _ => {
                    self.err(
                        f,
                        v.span.clone(),
                        "E0703",
                        format!("unknown bind option `{}`", value_text(v)),
                    )
                    .label("expected `ro`, `rw`, `idmap` or `suid`");
                    return;
                }
            }
        }
        if let (Some(at), false) = (&suid, readonly) {
            self.warn(
                f,
                at.clone(),
                "W0701",
                "a writable `suid` bind lets the sandbox plant set-user-ID files on the host",
            )
            .label("files made here keep their set-user-ID bit and file capabilities for every host user")
            .help = Some("drop `suid` (binds are `nosuid` by default), or bind read-only".into());
        }
        self.unmount(&dst);
        self.binds.push(Bind {
            source: src,
            target: dst,
            readonly,
            idmap,
            suid: suid.is_some(),
        });
    }

    /// tmpfs "PATH" [size N] [mode M]
    fn tmpfs(&mut self, a: &Args<'_>) {
        let f = a.file;
        let vals = &a.stmt.values;
        let Some(target) = vals.first().and_then(|v| self.path(f, v)) else {
            if vals.is_empty() {
                self.err(f, a.stmt.span.clone(), "E0704", "`tmpfs` needs a path");
            }
            return;
        };
        let mut t = Tmpfs {
            target,
            size: None,
            mode: None,
        };
        let mut rest = vals[1..].iter();
        while let Some(k) = rest.next() {
            let key = value_text(k);
            let Some(v) = rest.next() else {
                self.err(f, k.span.clone(), "E0704", format!("`{key}` needs a value"));
                return;
            };
            match key.as_str() {
                "size" => t.size = self.size(f, v),
                "mode" => t.mode = self.integer(f, v, 0o7777).map(|m| m as u32),
                _ => {
                    self.err(
                        f,
                        k.span.clone(),
                        "E0704",
                        format!("unknown tmpfs option `{key}`"),
                    )
                    .label("expected `size` or `mode`");
                    return;
                }
            }
        }
        self.unmount(&t.target);
        self.tmpfs.push(t);
    }

    /// read|write|exec|make|remove PATHS: Landlock access words
    fn access(&mut self, a: &Args<'_>, kw: &str) {
        let f = a.file;
        let vals = &a.stmt.values;
        let access = match kw {
            "read" => Access::Read,
            "write" => Access::Write,
            "exec" => Access::Exec,
            "make" => Access::Make,
            _ => Access::Remove,
        };
        for p in self.paths(f, vals) {
            match self.access.iter_mut().find(|r| r.path == p) {
                Some(r) => {
                    if !r.access.contains(&access) {
                        r.access.push(access);
                        r.access.sort();
                    }
                }
                None => self.access.push(PathRule {
                    path: p,
                    access: vec![access],
                }),
            }
        }
    }

    /// landlock-scope [signal, abstract-unix]
    fn landlock_scope(&mut self, a: &Args<'_>) {
        let f = a.file;
        let vals = &a.stmt.values;
        let mut scopes = Vec::new();
        for v in Self::flat(vals) {
            match value_text(v).as_str() {
                "signal" => scopes.push(LandlockScope::Signal),
                "abstract-unix" => scopes.push(LandlockScope::AbstractUnix),
                other => {
                    let d = self
                        .err(
                            f,
                            v.span.clone(),
                            "E0708",
                            format!("unknown Landlock scope `{other}`"),
                        )
                        .label("not a scope");
                    d.help = Some(
                        did_you_mean(other, ["signal", "abstract-unix"])
                            .unwrap_or_else(|| "scopes are `signal` and `abstract-unix`".into()),
                    );
                }
            }
        }
        scopes.sort();
        scopes.dedup();
        self.landlock_scopes = scopes;
    }

    /// propagation private|slave
    fn propagation(&mut self, a: &Args<'_>) {
        let f = a.file;
        let vals = &a.stmt.values;
        if !self.expect_count(a, 1, "`private` or `slave`") {
            return;
        }
        match value_text(&vals[0]).as_str() {
            "private" => self.propagation = Propagation::Private,
            "slave" => {
                self.propagation = Propagation::Slave;
                self.warn(
                    f,
                    a.stmt.span.clone(),
                    "W0702",
                    "mounts the host makes later appear inside with the host's flags",
                )
                .label("not read-only, nodev or nosuid unless the host made them so")
                .help = Some("keep the default `propagation private` unless the sandbox must see new host mounts".into());
            }
            other => {
                self.err(
                    f,
                    vals[0].span.clone(),
                    "E0709",
                    format!("unknown propagation `{other}`"),
                )
                .label("expected `private` or `slave`");
            }
        }
    }

    /// overlay "/target" lower ["/a", "/b"] upper "/u" work "/w"   (upper tmpfs: no upper)
    pub(super) fn overlay(&mut self, a: &Args<'_>) {
        let f = a.file;
        let vals = &a.stmt.values;
        let Some(target) = vals.first().and_then(|v| self.path(f, v)) else {
            if vals.is_empty() {
                self.err(
                    f,
                    a.stmt.span.clone(),
                    "E0705",
                    "`overlay` needs a target path",
                )
                .help = Some("write `overlay \"/\" lower [\"/img\"] upper tmpfs`".into());
            }
            return;
        };
        let mut ov = Overlay {
            lower: Vec::new(),
            upper: None,
            work: None,
            target,
        };
        let mut rest = vals[1..].iter();
        while let Some(k) = rest.next() {
            let key = value_text(k);
            let Some(v) = rest.next() else {
                self.err(f, k.span.clone(), "E0705", format!("`{key}` needs a value"));
                return;
            };
            match key.as_str() {
                "lower" => ov.lower = self.paths(f, std::slice::from_ref(v)),
                "upper" if matches!(&v.kind, ValueKind::Word(w) if w == "tmpfs") => ov.upper = None,
                "upper" => ov.upper = self.path(f, v),
                "work" => ov.work = self.path(f, v),
                _ => {
                    self.err(
                        f,
                        k.span.clone(),
                        "E0705",
                        format!("unknown overlay option `{key}`"),
                    )
                    .label("expected `lower`, `upper` or `work`");
                    return;
                }
            }
        }
        if ov.lower.is_empty() {
            self.err(
                f,
                a.stmt.span.clone(),
                "E0706",
                "overlay needs at least one lower layer",
            )
            .help = Some("add `lower [\"/path\"]`".into());
            return;
        }
        if ov.upper.is_some() != ov.work.is_some() {
            self.err(f, a.stmt.span.clone(), "E0707", "a persistent upper layer needs a work directory, and only then")
                .help = Some("give both `upper \"/u\"` and `work \"/w\"` on the same filesystem, or `upper tmpfs`".into());
            return;
        }
        self.overlays.push(ov);
    }

    // -----------------------------------------------------------------------------------
    // network
}
