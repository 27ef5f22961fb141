//! The host's side of `mode veth`: the subnet and its defaults, an address for each
//! sandbox that no other running sandbox holds, and the bridge.
//!
//! Addresses are leased in `/run/kakoi/net/<subnet>/`: one file per address in use, named
//! by it, holding the launcher's pid and start time. A lease is taken under a lock on the
//! directory and removed when the launch ends; one whose launcher is gone (SIGKILL) is
//! taken over by the next launch that needs an address.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use policy_lang::ir::NetMode;

use super::error::{At, StepError};

/// The subnet of `mode veth` when the policy names none (Podman's default network).
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";

/// Where leases live.
pub const LEASES: &str = "/run/kakoi/net";

/// A veth network with every default filled in (except the address, leased at launch
/// when the policy gives none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Veth {
    pub bridge: Option<String>,
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The policy's own address, if it names one.
    pub address: Option<Ipv4Addr>,
}

fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, l) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` has no prefix length"))?;
    let a: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("`{text}`: kakoi's veth networks are IPv4"))?;
    let l: u8 = l
        .parse()
        .ok()
        .filter(|l| (8..=30).contains(l))
        .ok_or_else(|| format!("`{text}`: the prefix length must be 8 to 30"))?;
    Ok((a, l))
}

fn mask(prefix: u8) -> u32 {
    u32::MAX << (32 - u32::from(prefix))
}

impl Veth {
    /// The network of a policy's `mode veth`: `subnet` (default [`DEFAULT_SUBNET`]; an
    /// `address` with a prefix names its own), the gateway (default: the subnet's first
    /// address).
    pub fn of(mode: &NetMode) -> Result<Option<Veth>, String> {
        let NetMode::Veth {
            bridge,
            address,
            gateway,
            subnet,
        } = mode
        else {
            return Ok(None);
        };
        let address = address.as_deref().map(parse_cidr).transpose()?;
        let (net, prefix) = match (subnet, address) {
            (Some(s), _) => parse_cidr(s)?,
            (None, Some(a)) => a,
            (None, None) => parse_cidr(DEFAULT_SUBNET).expect("a valid default"),
        };
        let network = Ipv4Addr::from(u32::from(net) & mask(prefix));
        let inside = |a: Ipv4Addr| u32::from(a) & mask(prefix) == u32::from(network);
        let gateway = match gateway {
            Some(g) => g
                .parse::<Ipv4Addr>()
                .map_err(|_| format!("gateway `{g}`: kakoi's veth networks are IPv4"))?,
            None => Ipv4Addr::from(u32::from(network) + 1),
        };
        if !inside(gateway) {
            return Err(format!("gateway {gateway} is outside {network}/{prefix}"));
        }
        if let Some((a, p)) = address {
            if p != prefix || !inside(a) {
                return Err(format!("address {a}/{p} is outside {network}/{prefix}"));
            }
        }
        Ok(Some(Veth {
            bridge: bridge.clone(),
            network,
            prefix,
            gateway,
            address: address.map(|(a, _)| a),
        }))
    }

    /// The addresses a sandbox may get: every host address but the gateway.
    fn candidates(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let first = u32::from(self.network) + 1;
        let last = u32::from(self.network) | !mask(self.prefix);
        (first..last)
            .map(Ipv4Addr::from)
            .filter(move |a| *a != self.gateway)
    }
}

/// An address held by this launch; dropping it gives the address back.
#[derive(Debug)]
pub struct Lease {
    pub address: Ipv4Addr,
    file: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Whether the lease file's launcher still runs.
fn held(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| super::owner::alive(&t))
}

/// Remove the leases (in `dir`, normally [`LEASES`]) of launchers that are gone; with
/// `dry_run` only list them. They are taken over anyway when an address is needed; this
/// is `kakoi gc`'s tidying.
pub fn collect_stale_leases(dir: &Path, dry_run: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for net in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if !hidden && !held(&e.path()) && (dry_run || std::fs::remove_file(e.path()).is_ok()) {
                out.push(e.path());
            }
        }
    }
    out
}

/// Lease an address of `v` in `dir` (normally [`LEASES`]): the policy's own, or the first
/// free one. Fails when the policy's address is held by a running sandbox, or every
/// address is.
pub fn lease(v: &Veth, dir: &Path) -> Result<Lease, StepError> {
    let dir = dir.join(format!("{}-{}", v.network, v.prefix));
    let _lock = lock_file(&dir.join(".lock"))?;
    let (pid, start) = super::owner::me();
    let mine = format!("{pid} {start}\n");
    let take = |a: Ipv4Addr| -> Result<Option<Lease>, StepError> {
        let file = dir.join(a.to_string());
        if file.exists() && held(&file) {
            return Ok(None);
        }
        let mut f = std::fs::File::create(&file).at(format!("write {}", file.display()))?;
        f.write_all(mine.as_bytes())
            .at(format!("write {}", file.display()))?;
        Ok(Some(Lease { address: a, file }))
    };
    match v.address {
        Some(a) => take(a)?.ok_or_else(|| {
            StepError::new(
                "veth address",
                format!("{a} is the address of another running sandbox"),
            )
            .with_hint("leave `address` out: kakoi then gives each sandbox a free one")
        }),
        None => {
            for a in v.candidates() {
                if let Some(l) = take(a)? {
                    return Ok(l);
                }
            }
            Err(StepError::new(
                "veth address",
                format!("every address of {}/{} is in use", v.network, v.prefix),
            )
            .with_hint("give the network a larger `subnet`"))
        }
    }
}

/// Make the bridge unless it exists, with the gateway's address, and bring it up. It is
/// kept when the sandbox ends (other sandboxes may use it; `ip link del NAME` removes it).
/// The common case, a bridge that is up with the address, costs one `ip` run.
pub fn ensure_bridge(v: &Veth, name: &str) -> Result<(), StepError> {
    let cidr = format!("{}/{}", v.gateway, v.prefix);
    // `up` lists the device's addresses only while it is up. (Not /sys/class/net: sysfs
    // may belong to another network namespace than the launcher's.)
    let ready = || {
        std::process::Command::new("ip")
            .args(["-o", "-4", "addr", "show", "dev", name, "up"])
            .stderr(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|w| w == cidr)
            })
    };
    if ready() {
        return Ok(());
    }
    // Launches that start together would each find it missing: one makes it at a time.
    let _lock = lock_file(&Path::new(LEASES).join(format!(".bridge-{name}.lock")))?;
    if ready() {
        return Ok(());
    }
    if !ip_ok(&["link", "show", name]) {
        super::os::ip(&["link", "add", name, "type", "bridge"])?;
    }
    let shown = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !shown.split_whitespace().any(|w| w == cidr) {
        super::os::ip(&["addr", "add", &cidr, "dev", name])?;
    }
    super::os::ip(&["link", "set", name, "up"])
}

fn ip_ok(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(
        bridge: Option<&str>,
        address: Option<&str>,
        gateway: Option<&str>,
        subnet: Option<&str>,
    ) -> NetMode {
        NetMode::Veth {
            bridge: bridge.map(str::to_string),
            address: address.map(str::to_string),
            gateway: gateway.map(str::to_string),
            subnet: subnet.map(str::to_string),
        }
    }

    #[test]
    fn defaults_are_podmans_network_and_its_first_address() {
        let v = Veth::of(&mode(Some("kakoi0"), None, None, None))
            .unwrap()
            .unwrap();
        assert_eq!((v.network, v.prefix), ("10.88.0.0".parse().unwrap(), 16));
        assert_eq!(v.gateway, "10.88.0.1".parse::<Ipv4Addr>().unwrap());
        let v = Veth::of(&mode(None, Some("10.9.8.7/24"), None, None))
            .unwrap()
            .unwrap();
        assert_eq!(v.gateway, "10.9.8.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(v.address, Some("10.9.8.7".parse().unwrap()));
        assert!(Veth::of(&mode(None, Some("10.9.9.7/24"), None, Some("10.9.8.0/24"))).is_err());
        assert!(Veth::of(&mode(None, None, Some("10.1.0.1"), None)).is_err());
        assert!(Veth::of(&mode(None, None, None, Some("fd00::/64"))).is_err());
        assert_eq!(Veth::of(&NetMode::None).unwrap(), None);
    }

    #[test]
    fn leases_are_distinct_and_given_back() {
        let d = tempfile::tempdir().unwrap();
        let v = Veth::of(&mode(None, None, None, Some("10.77.0.0/29")))
            .unwrap()
            .unwrap();
        // .0 network, .1 gateway, .7 broadcast: .2 to .6 are the sandboxes'.
        let held: Vec<Lease> = (0..5).map(|_| lease(&v, d.path()).unwrap()).collect();
        let got: Vec<String> = held.iter().map(|l| l.address.to_string()).collect();
        assert_eq!(
            got,
            [
                "10.77.0.2",
                "10.77.0.3",
                "10.77.0.4",
                "10.77.0.5",
                "10.77.0.6"
            ]
        );
        let e = lease(&v, d.path()).unwrap_err();
        assert!(e.message.contains("every address"), "{e:?}");
        drop(held);
        assert_eq!(
            lease(&v, d.path()).unwrap().address.to_string(),
            "10.77.0.2"
        );
        // A lease of a launcher that is gone (no such pid) is taken over.
        let dir = d.path().join("10.77.0.0-29");
        std::fs::write(dir.join("10.77.0.2"), "4194305 7\n").unwrap();
        assert_eq!(
            lease(&v, d.path()).unwrap().address.to_string(),
            "10.77.0.2"
        );
        // The policy's own address, held by a running sandbox (this process), is refused.
        let fixed = Veth::of(&mode(None, Some("10.77.0.3/29"), None, None))
            .unwrap()
            .unwrap();
        let first = lease(&fixed, d.path()).unwrap();
        let e = lease(&fixed, d.path()).unwrap_err();
        assert!(e.message.contains("another running sandbox"), "{e:?}");
        drop(first);
    }
}

/// kakoi's own nftables table: its chains hold nothing but kakoi's rules, each marked
/// with a comment (`kakoi nat SUBNET`, or `kakoi PID START` for a launch's published
/// ports); no other table is touched.
const NFT_TABLE: &str = "ip kakoi";

/// (Numeric priorities: nft 1.0.6, Debian 12's, knows `dstnat` only for prerouting;
/// -100 and 100 are what `dstnat` and `srcnat` mean.)
const NFT_CHAINS: &str = "table ip kakoi {
    chain prerouting { type nat hook prerouting priority -100; }
    chain output { type nat hook output priority -100; }
    chain postrouting { type nat hook postrouting priority 100; }
}
";

/// Run `nft -f -` with `script`.
fn nft(script: &str) -> Result<(), StepError> {
    use std::process::{Command, Stdio};
    let mut c = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .at("nft")
        .map_err(|e| e.with_hint("`nat` and `publish` use `nft` (Debian package nftables)"))?;
    c.stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .at("nft")?;
    let out = c.wait_with_output().at("nft")?;
    if !out.status.success() {
        return Err(StepError::new(
            "nft",
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// kakoi's rules: (chain, handle, comment).
fn nft_rules() -> Vec<(String, u64, String)> {
    let out = std::process::Command::new("nft")
        .args(["-j", "-a", "list", "table", "ip", "kakoi"])
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else { return Vec::new() };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let r = o.get("rule")?;
            Some((
                r["chain"].as_str()?.to_string(),
                r["handle"].as_u64()?,
                r["comment"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

/// An exclusive lock on the file `path` (made, with its directory, if missing), held
/// until the file is dropped.
fn lock_file(path: &Path) -> Result<std::fs::File, StepError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(format!("create {}", dir.display()))?;
    }
    let lock = std::fs::File::create(path).at(format!("open {}", path.display()))?;
    super::sys::lock_exclusive(std::os::fd::AsFd::as_fd(&lock))
        .at(format!("lock {}", path.display()))?;
    Ok(lock)
}

/// Hold the lock on kakoi's nftables table (one launch changes it at a time).
fn nft_lock() -> Result<std::fs::File, StepError> {
    lock_file(&Path::new(LEASES).join(".nft.lock"))
}

/// Whether a launch's rule comment (`kakoi PID START`) names a launcher that is gone.
fn stale_owner(comment: &str) -> bool {
    comment
        .strip_prefix("kakoi ")
        .is_some_and(super::owner::gone)
}

/// Delete rules by (chain, handle).
fn nft_delete(rules: &[(String, u64)]) -> Result<(), StepError> {
    if rules.is_empty() {
        return Ok(());
    }
    let script: String = rules
        .iter()
        .map(|(c, h)| format!("delete rule {NFT_TABLE} {c} handle {h}\n"))
        .collect();
    nft(&script)
}

/// Remove the published-port rules of launchers that are gone (a SIGKILLed launch
/// cannot remove its own). Returns how many.
pub fn collect_stale_rules() -> usize {
    match nft_lock() {
        Ok(_lock) => remove_stale_rules(),
        Err(_) => 0,
    }
}

/// [`collect_stale_rules`], with the table's lock held by the caller.
fn remove_stale_rules() -> usize {
    let stale: Vec<(String, u64)> = nft_rules()
        .into_iter()
        .filter(|(_, _, c)| stale_owner(c))
        .map(|(c, h, _)| (c, h))
        .collect();
    match nft_delete(&stale) {
        Ok(()) => stale.len(),
        Err(_) => 0,
    }
}

/// Masquerade what the subnet sends to other networks, and let the host forward it
/// (`net.ipv4.ip_forward`, which `nat on` turns on for the whole network namespace).
/// The rule is made once per subnet and kept, as the bridge is.
pub fn ensure_nat(v: &Veth) -> Result<(), StepError> {
    let _lock = nft_lock()?;
    let net = format!("{}/{}", v.network, v.prefix);
    let comment = format!("kakoi nat {net}");
    if !nft_rules().iter().any(|(_, _, c)| *c == comment) {
        nft(&format!(
            "{NFT_CHAINS}add rule {NFT_TABLE} postrouting ip saddr {net} ip daddr != {net} masquerade comment \"{comment}\"\n"
        ))?;
    }
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").at("enable IPv4 forwarding")
}

/// A launch's published ports; dropping it removes their rules.
#[derive(Debug)]
pub struct Published {
    rules: Vec<(String, u64)>,
}

impl Drop for Published {
    fn drop(&mut self) {
        if let Ok(_lock) = nft_lock() {
            let _ = nft_delete(&self.rules);
        }
    }
}

/// Forward each host port of `ports` to `address`: connections to any of the host's own
/// addresses (`fib daddr type local`), from other machines (prerouting) and from the
/// host itself (output).
pub fn publish(
    address: Ipv4Addr,
    ports: &[policy_lang::ir::Publish],
) -> Result<Published, StepError> {
    let _lock = nft_lock()?;
    let (pid, start) = super::owner::me();
    let owner = format!("kakoi {pid} {start}");
    // Rules of launchers killed before they could remove theirs.
    remove_stale_rules();
    let mut script = String::from(NFT_CHAINS);
    for p in ports {
        let proto = if p.udp { "udp" } else { "tcp" };
        for chain in ["prerouting", "output"] {
            script.push_str(&format!(
                "add rule {NFT_TABLE} {chain} fib daddr type local {proto} dport {} dnat to {address}:{} comment \"{owner}\"\n",
                p.host, p.sandbox
            ));
        }
    }
    nft(&script)?;
    let rules = nft_rules()
        .into_iter()
        .filter(|(_, _, c)| *c == owner)
        .map(|(c, h, _)| (c, h))
        .collect();
    Ok(Published { rules })
}
