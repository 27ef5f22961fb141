//! The `network` section: mode, veth/macvlan, families, ports, NAT, published ports.

use super::*;

impl Builder {
    pub(super) fn network_stmt(&mut self, a: Args<'_>) {
        self.no_cond_or_block(&a);
        let f = a.file;
        match a.stmt.keyword.name.as_str() {
            "mode" => self.mode(&a),
            "macvlan" => {
                let (mut parent, mut address, mut gateway) = (None, None, None);
                for s in a.stmt.block.iter().flatten() {
                    let v = self.one_string(f, s);
                    match s.keyword.name.as_str() {
                        "parent" => parent = v,
                        "address" => address = v.filter(|x| self.cidr(f, s, x, true)),
                        "gateway" => gateway = v.filter(|x| self.cidr(f, s, x, false)),
                        _ => self.unknown_key(
                            &Args { file: f, stmt: s },
                            "macvlan",
                            &["parent", "address", "gateway"],
                        ),
                    }
                }
                self.macvlan = Some((parent, address, gateway, Span::new(f, a.stmt.span.clone())));
            }
            "veth" => {
                let (mut bridge, mut address, mut gateway, mut subnet) = (None, None, None, None);
                for s in a.stmt.block.iter().flatten() {
                    let v = self.one_string(f, s);
                    match s.keyword.name.as_str() {
                        "bridge" => bridge = v,
                        "address" => address = v.filter(|x| self.cidr(f, s, x, true)),
                        "gateway" => gateway = v.filter(|x| self.cidr(f, s, x, false)),
                        "subnet" => subnet = v.filter(|x| self.cidr(f, s, x, true)),
                        _ => self.unknown_key(
                            &Args { file: f, stmt: s },
                            "veth",
                            &["bridge", "address", "gateway", "subnet"],
                        ),
                    }
                }
                self.network.mode = NetMode::Veth {
                    bridge,
                    address,
                    gateway,
                    subnet,
                };
            }
            "families" => self.families(&a),
            kw @ ("tcp-bind" | "tcp-connect") => {
                let ports: Vec<u16> = Self::flat(&a.stmt.values)
                    .into_iter()
                    .filter_map(|v| self.integer(f, v, 65535).map(|p| p as u16))
                    .collect();
                if kw == "tcp-bind" {
                    self.network.tcp_bind = Some(ports)
                } else {
                    self.network.tcp_connect = Some(ports)
                }
            }
            "nat" => {
                if let Some(on) = self.on_off(&a) {
                    self.network.nat = on;
                }
            }
            "publish" => self.publish(&a),
            _ => self.unknown_key(
                &a,
                "network",
                &[
                    "mode",
                    "veth",
                    "macvlan",
                    "families",
                    "tcp-bind",
                    "tcp-connect",
                    "nat",
                    "publish",
                ],
            ),
        }
    }

    /// mode none|host|veth|macvlan
    fn mode(&mut self, a: &Args<'_>) {
        let f = a.file;
        if !self.expect_count(a, 1, "`none`, `host`, `veth` or `macvlan`") {
            return;
        }
        match value_text(&a.stmt.values[0]).as_str() {
            "none" => {
                self.macvlan_mode = false;
                self.network.mode = NetMode::None
            }
            "host" => {
                self.macvlan_mode = false;
                self.network.mode = NetMode::Host
            }
            "veth" => {
                self.macvlan_mode = false;
                if !matches!(self.network.mode, NetMode::Veth { .. }) {
                    self.network.mode = NetMode::Veth {
                        bridge: None,
                        address: None,
                        gateway: None,
                        subnet: None,
                    }
                }
            }
            // Its settings come from the `macvlan` block (checked at the end).
            "macvlan" => self.macvlan_mode = true,
            other => {
                let d = self
                    .err(
                        f,
                        a.stmt.values[0].span.clone(),
                        "E0801",
                        format!("unknown network mode `{other}`"),
                    )
                    .label("expected `none`, `host`, `veth` or `macvlan`");
                d.help = did_you_mean(other, ["none", "host", "veth", "macvlan"]);
            }
        }
    }

    /// families [inet, inet6, unix, …]
    fn families(&mut self, a: &Args<'_>) {
        let f = a.file;
        let mut fams = Vec::new();
        for v in Self::flat(&a.stmt.values) {
            let name = value_text(v).to_ascii_uppercase();
            let bare = name.strip_prefix("AF_").unwrap_or(&name).to_string();
            if catalogue::constant(&format!("AF_{bare}"), Arch::X86_64).is_some() {
                if !fams.contains(&bare) {
                    fams.push(bare)
                }
            } else {
                let d = self
                    .err(
                        f,
                        v.span.clone(),
                        "E0802",
                        format!("unknown socket family `{}`", value_text(v)),
                    )
                    .label("not an AF_* family");
                d.help = did_you_mean(
                    &format!("AF_{bare}"),
                    catalogue::constant_names().filter(|n| n.starts_with("AF_")),
                )
                .map(|h| h.replace("AF_", ""));
            }
        }
        self.network.families = fams;
    }

    /// publish HOST -> SANDBOX [tcp|udp]
    fn publish(&mut self, a: &Args<'_>) {
        let f = a.file;
        // `publish HOST -> SANDBOX [tcp|udp]`
        let v = &a.stmt.values;
        let port = |b: &mut Self, i: usize| v.get(i).and_then(|x| b.integer(f, x, 65535));
        let arrow = matches!(v.get(1).map(|x| &x.kind), Some(ValueKind::Arrow));
        let proto = match v.get(3).map(value_text).as_deref() {
            None | Some("tcp") => Some(false),
            Some("udp") => Some(true),
            Some(_) => None,
        };
        match (port(self, 0), arrow, port(self, 2), proto, v.len() <= 4) {
            (Some(h), true, Some(s), Some(udp), true) if h > 0 && s > 0 => {
                let p = crate::ir::Publish {
                    udp,
                    host: h as u16,
                    sandbox: s as u16,
                };
                self.network
                    .publish
                    .retain(|x| (x.udp, x.host) != (p.udp, p.host));
                self.network.publish.push(p);
            }
            _ => {
                self.err(
                    f,
                    a.stmt.span.clone(),
                    "E0804",
                    "expected `publish HOST_PORT -> SANDBOX_PORT`, then `tcp` (default) or `udp`",
                )
                .help = Some("e.g. `publish 8080 -> 80`, `publish 5353 -> 53 udp`".into());
            }
        }
    }

    pub(super) fn cidr(&mut self, f: FileId, s: &Stmt, text: &str, prefix: bool) -> bool {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ok_addr = addr.parse::<std::net::IpAddr>().is_ok();
        let ok_len = match len {
            None => !prefix,
            Some(l) => l
                .parse::<u8>()
                .is_ok_and(|n| n <= if addr.contains(':') { 128 } else { 32 }),
        };
        if !(ok_addr && ok_len) {
            self.err(
                f,
                s.values.first().map_or(s.span.clone(), |v| v.span.clone()),
                "E0803",
                format!("invalid address `{text}`"),
            )
            .help = Some(if prefix {
                "write an address with a prefix length, e.g. `\"10.88.0.2/24\"`".into()
            } else {
                "write an address, e.g. `\"10.88.0.1\"`".into()
            });
        }
        ok_addr && ok_len
    }

    // -----------------------------------------------------------------------------------
    // resources
}
