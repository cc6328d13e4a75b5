//! Guests (QEMU VMs and LXC containers) as the simulator stores them: the config file as
//! key → value strings plus the runtime state a node would know (running, boot times,
//! DHCP lease), and the inside of a QEMU guest ([`os::GuestOs`]) that its agent, the
//! built-in commands and the firewall oracle all answer from.
//!
//! Submodules: [`os`] (files, directories, services, command table, agent state), [`net`]
//! (the interfaces and routes the guest sees), [`agent`] (the agent API), [`exec`] (what
//! a command run through the agent answers, and `sh -c`), [`admin`] (the commands that
//! change the guest: `rm`, `touch`, `mkdir`, `systemctl`, `ip addr|link|route`,
//! `hostnamectl` — what a student types and what a check's mutant runs), [`probes`] (ping, TCP connect, DNS, HTTP to
//! other guests, through the firewall oracle), [`state_api`] (`/_sim/guests/{vmid}/state`),
//! [`snapshot`] (snapshots and rollback), [`vzdump`] (backups) and [`sessions`]
//! (established TCP sessions between guests, for tests: what a deadline cuts).

pub(crate) mod admin;
pub(crate) mod agent;
pub(crate) mod exec;
pub(crate) mod net;
pub(crate) mod os;
pub(crate) mod probes;
pub(crate) mod sessions;
pub(crate) mod snapshot;
pub(crate) mod state_api;
pub(crate) mod vzdump;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::Rng;
use sha1::{Digest, Sha1};
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};
use crate::firewall::Nic;

/// QEMU or LXC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Qemu,
    Lxc,
}

impl Kind {
    /// The `type` of `/cluster/resources` and the path segment.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu",
            Kind::Lxc => "lxc",
        }
    }

    /// `VM` or `CT`, as PVE prefixes its messages.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Kind::Qemu => "VM",
            Kind::Lxc => "CT",
        }
    }

    /// The config key holding the guest's name.
    pub(crate) fn name_key(self) -> &'static str {
        match self {
            Kind::Qemu => "name",
            Kind::Lxc => "hostname",
        }
    }

    /// The config directory below `/etc/pve/nodes/<node>/`.
    pub(crate) fn config_dir(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu-server",
            Kind::Lxc => "lxc",
        }
    }
}

/// One guest.
#[derive(Debug, Clone)]
pub(crate) struct Guest {
    pub vmid: u32,
    pub kind: Kind,
    pub node: String,
    /// The config file: every key as PVE writes it (strings).
    pub config: Config,
    pub running: bool,
    /// Unix time of the last start (for `uptime`).
    pub started_unix: u64,
    /// When the guest agent (QEMU) answers after the last start.
    pub agent_ready_at: Option<Instant>,
    /// When the DHCP IPv4 shows up after the last start.
    pub ipv4_ready_at: Option<Instant>,
    /// The DHCP lease (kept across restarts, like a real DHCP server would).
    pub ipv4: Option<Ipv4Addr>,
    /// The template whose base volume this guest's disk is a linked clone of.
    pub linked_base: Option<u32>,
    /// The inside of the guest (files, network configuration, services, agent).
    pub os: os::GuestOs,
    /// Snapshots, oldest first.
    pub snapshots: Vec<snapshot::Snapshot>,
    /// The snapshot the current state descends from.
    pub parent: Option<String>,
    /// NICs whose bridge does not exist (refreshed from the SDN state at every lock).
    pub no_carrier: std::collections::BTreeSet<u32>,
    /// The NIC that holds the lab DHCP lease (`ipv4`): the first NIC on the uplink.
    pub lab_nic: Option<u32>,
    /// Leases from SDN subnets (`dhcp-range` of a `dhcp=dnsmasq` zone), per NIC.
    pub nic_leases: BTreeMap<u32, (Ipv4Addr, u8)>,
}

/// A counter of changes to what the guests' network view is computed from (see
/// [`crate::sdn::segments::refresh`]): the guest table's and every `netX` of a config in
/// it. One per simulator, shared by its guest table and the configs of its guests (set
/// when a guest is inserted); a config not in the table yet counts on a counter of its
/// own.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetEpoch(Arc<AtomicU64>);

impl NetEpoch {
    /// Something the network view depends on changed.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The changes so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Is `key` a NIC (`net0`, `net1`, …)?
pub(crate) fn is_net_key(key: &str) -> bool {
    key.strip_prefix("net")
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// A guest's config file (key → value, as PVE writes it). Reads go through `Deref` to
/// the map; writes go through [`Config::insert`], [`Config::remove`] and
/// [`Config::replace`], which count every change of a `netX` key on the simulator's
/// [`NetEpoch`], so the network view is recomputed when, and only when, a NIC changed.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    map: BTreeMap<String, String>,
    epoch: NetEpoch,
}

impl Config {
    fn new(map: BTreeMap<String, String>) -> Self {
        Self {
            map,
            epoch: NetEpoch::default(),
        }
    }

    /// Count this config's changes on `epoch` (the guest table's) from now on.
    pub(crate) fn attach(&mut self, epoch: &NetEpoch) {
        self.epoch = epoch.clone();
    }

    /// The map itself.
    pub(crate) fn as_map(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// Set `key` (a NIC's change is counted).
    pub(crate) fn insert(&mut self, key: String, value: String) -> Option<String> {
        let net = is_net_key(&key);
        let old = self.map.insert(key, value);
        if net {
            self.epoch.bump();
        }
        old
    }

    /// Delete `key` (a NIC's removal is counted).
    pub(crate) fn remove(&mut self, key: &str) -> Option<String> {
        let old = self.map.remove(key);
        if old.is_some() && is_net_key(key) {
            self.epoch.bump();
        }
        old
    }

    /// Replace the whole file (counted when any NIC differs).
    pub(crate) fn replace(&mut self, map: BTreeMap<String, String>) {
        let nets = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter(|(k, _)| is_net_key(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        if nets(&self.map) != nets(&map) {
            self.epoch.bump();
        }
        self.map = map;
    }
}

impl std::ops::Deref for Config {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<'a> IntoIterator for &'a Config {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

/// NIC models QEMU accepts as the first key of `netX`.
const QEMU_MODELS: &[&str] = &[
    "virtio", "e1000", "e1000e", "vmxnet3", "rtl8139", "ne2k_pci", "ne2k_isa", "i82551", "i82557b",
    "i82559er", "pcnet",
];

impl Guest {
    pub(crate) fn new(vmid: u32, kind: Kind, node: &str, config: BTreeMap<String, String>) -> Self {
        let hostname = config
            .get(kind.name_key())
            .cloned()
            .unwrap_or_else(|| format!("vm{vmid}"));
        Self {
            os: os::GuestOs::seeded(&hostname),
            vmid,
            kind,
            node: node.to_owned(),
            config: Config::new(config),
            running: false,
            started_unix: 0,
            agent_ready_at: None,
            ipv4_ready_at: None,
            ipv4: None,
            linked_base: None,
            snapshots: Vec::new(),
            parent: None,
            no_carrier: std::collections::BTreeSet::new(),
            lab_nic: None,
            nic_leases: BTreeMap::new(),
        }
        .with_first_lab_nic()
    }

    /// The lab lease on the first NIC, until the SDN refresh says otherwise.
    fn with_first_lab_nic(mut self) -> Self {
        self.lab_nic = self.nets().first().map(|(i, _)| *i);
        self
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.config.get(self.kind.name_key()).map(String::as_str)
    }

    pub(crate) fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| v == "1")
    }

    pub(crate) fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    /// `VM is locked (clone)` / `CT is locked (disk)` if a config lock is set.
    pub(crate) fn check_lock(&self) -> ApiResult<()> {
        match self.lock() {
            Some(lock) => Err(ApiError::internal(format!(
                "{} is locked ({lock})",
                self.kind.prefix()
            ))),
            None => Ok(()),
        }
    }

    /// The `qemu-server/<id>.conf` path PVE names in "does not exist" errors.
    pub(crate) fn config_path(kind: Kind, node: &str, vmid: u32) -> String {
        format!("nodes/{node}/{}/{vmid}.conf", kind.config_dir())
    }

    /// SHA1 over a canonical rendering of the config file (`key: value` lines, sorted),
    /// standing in for PVE's SHA1 of the file bytes.
    pub(crate) fn digest(&self) -> String {
        config_digest(&self.config)
    }

    /// Is the guest agent enabled in the config (`agent: 1` or `agent: enabled=1,…`)?
    pub(crate) fn agent_enabled(&self) -> bool {
        self.config.get("agent").is_some_and(|v| {
            v.split(',')
                .any(|part| part == "1" || part == "enabled=1" || part == "on" || part == "yes")
        })
    }

    /// The `netX` devices, sorted by index, as `(index, value)`.
    pub(crate) fn nets(&self) -> Vec<(u32, &str)> {
        let mut out: Vec<(u32, &str)> = self
            .config
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("net")
                    .and_then(|n| n.parse::<u32>().ok())
                    .map(|i| (i, v.as_str()))
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// The NICs and their `firewall=` flag, for the firewall oracle.
    pub(crate) fn nics(&self) -> Vec<Nic> {
        self.nets()
            .into_iter()
            .map(|(index, value)| Nic {
                index,
                firewall: net_option(value, "firewall").is_some_and(|v| v == "1"),
            })
            .collect()
    }

    /// The MAC of `net0` (or the first NIC), upper-case as in the config.
    pub(crate) fn primary_mac(&self) -> Option<String> {
        self.nets()
            .first()
            .and_then(|(_, value)| net_mac(self.kind, value))
    }

    /// Give every `netX` a fresh MAC (clone), drawn from `rng`.
    pub(crate) fn regenerate_macs(&mut self, rng: &mut impl Rng) {
        let keys: Vec<String> = self
            .config
            .keys()
            .filter(|k| is_net_key(k))
            .cloned()
            .collect();
        for key in keys {
            if let Some(value) = self.config.get(&key) {
                let new = with_mac(self.kind, value, &random_mac(rng));
                self.config.insert(key, new);
            }
        }
    }
}

/// SHA1 hex of the canonical `key: value` rendering.
pub(crate) fn config_digest(config: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha1::new();
    for (k, v) in config {
        hasher.update(k.as_bytes());
        hasher.update(b": ");
        hasher.update(v.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// A value of a property string such as `virtio=BC:…,bridge=vmbr0,firewall=1`.
pub(crate) fn net_option<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value
        .split(',')
        .filter_map(|part| part.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The MAC address of one `netX` value.
pub(crate) fn net_mac(kind: Kind, value: &str) -> Option<String> {
    match kind {
        Kind::Qemu => value
            .split(',')
            .filter_map(|part| part.split_once('='))
            .find(|(k, _)| QEMU_MODELS.contains(k) || *k == "macaddr")
            .map(|(_, v)| v.to_owned()),
        Kind::Lxc => net_option(value, "hwaddr").map(str::to_owned),
    }
}

/// `value` with its MAC replaced by (or, when missing, set to) `mac`.
pub(crate) fn with_mac(kind: Kind, value: &str, mac: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut placed = false;
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let k = part.split_once('=').map_or(part, |(k, _)| k);
        let is_mac_key = match kind {
            Kind::Qemu => QEMU_MODELS.contains(&k) || k == "macaddr",
            Kind::Lxc => k == "hwaddr",
        };
        if is_mac_key && !placed {
            parts.push(format!("{k}={mac}"));
            placed = true;
        } else {
            parts.push(part.to_owned());
        }
    }
    if !placed {
        match kind {
            // `model=virtio` form: PVE writes the model key first with the MAC.
            Kind::Qemu => {
                let model = net_option(value, "model").unwrap_or("virtio").to_owned();
                parts.retain(|p| !p.starts_with("model="));
                parts.insert(0, format!("{model}={mac}"));
            }
            Kind::Lxc => parts.push(format!("hwaddr={mac}")),
        }
    }
    parts.join(",")
}

/// Does this `netX` value already carry a MAC?
pub(crate) fn has_mac(kind: Kind, value: &str) -> bool {
    net_mac(kind, value).is_some_and(|m| !m.is_empty())
}

/// A MAC with the Proxmox prefix `BC:24:11`, the rest from `rng`.
pub(crate) fn random_mac(rng: &mut impl Rng) -> String {
    let b: [u8; 3] = rng.gen();
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
}

/// A random RFC 4122 v4 UUID (for `smbios1` and `vmgenid`).
pub(crate) fn random_uuid(rng: &mut impl Rng) -> String {
    let mut b: [u8; 16] = rng.gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The IPv6 link-local address SLAAC derives from a MAC (EUI-64).
pub(crate) fn link_local(mac: &str) -> Option<Ipv6Addr> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    if bytes.len() != 6 {
        return None;
    }
    let seg = |a: u8, b: u8| (u16::from(a) << 8) | u16::from(b);
    Some(Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        seg(bytes[0] ^ 0x02, bytes[1]),
        seg(bytes[2], 0xff),
        seg(0xfe, bytes[3]),
        seg(bytes[4], bytes[5]),
    ))
}

/// Normalise a `tags` value the way PVE stores it: split at `;`, `,` or whitespace,
/// lower-case, de-duplicate, sort, join with `;`. Rejects tags outside
/// `[a-z0-9_][a-z0-9_\-+.]*`.
pub(crate) fn normalize_tags(value: &str) -> ApiResult<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in value
        .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        let lower = tag.to_lowercase();
        let mut chars = lower.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-+.".contains(c));
        if !first_ok || !rest_ok {
            return Err(ApiError::param(
                "tags",
                format!("invalid format - invalid characters in tag '{tag}'\n"),
            ));
        }
        if !tags.contains(&lower) {
            tags.push(lower);
        }
    }
    tags.sort();
    Ok(tags.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tags_are_split_lowercased_deduplicated_and_sorted() {
        assert_eq!(
            normalize_tags("Student-07, exam-2024;student-07 lab.x").unwrap(),
            "exam-2024;lab.x;student-07"
        );
        let err = normalize_tags("a=b").unwrap_err();
        assert_eq!(err.status.as_u16(), 400);
        assert!(err.errors.unwrap()["tags"].contains("a=b"));
    }

    #[test]
    fn mac_is_replaced_in_qemu_and_lxc_strings() {
        assert_eq!(
            with_mac(
                Kind::Qemu,
                "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1",
                "BC:24:11:AA:BB:CC"
            ),
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1"
        );
        assert_eq!(
            with_mac(Kind::Qemu, "virtio,bridge=vmbr0", "BC:24:11:AA:BB:CC"),
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0"
        );
        assert_eq!(
            with_mac(
                Kind::Lxc,
                "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp",
                "BC:24:11:AA:BB:CC"
            ),
            "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp"
        );
        assert!(!has_mac(Kind::Qemu, "virtio,bridge=vmbr0"));
        assert_eq!(
            net_mac(Kind::Qemu, "e1000=BC:24:11:00:00:01,bridge=vmbr0").as_deref(),
            Some("BC:24:11:00:00:01")
        );
    }

    #[test]
    fn random_macs_carry_the_proxmox_prefix_and_follow_the_seed() {
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mac = random_mac(&mut a);
        assert!(mac.starts_with("BC:24:11:"), "{mac}");
        assert_eq!(mac, random_mac(&mut b));
        assert_ne!(mac, random_mac(&mut a));
    }

    #[test]
    fn link_local_is_eui64() {
        assert_eq!(
            link_local("BC:24:11:11:75:0E").unwrap().to_string(),
            "fe80::be24:11ff:fe11:750e"
        );
    }

    #[test]
    fn agent_option_forms() {
        let mut g = Guest::new(100, Kind::Qemu, "pve1", BTreeMap::new());
        assert!(!g.agent_enabled());
        g.config
            .insert("agent".into(), "enabled=1,fstrim_cloned_disks=1".into());
        assert!(g.agent_enabled());
        g.config.insert("agent".into(), "0".into());
        assert!(!g.agent_enabled());
    }
}
