//! Labs with several machines per student on networks of their own (issue 20): the
//! topology a lab file describes, the names its networks get, and the [`Networks`]
//! capability a backend implements to create and remove them.
//!
//! A topology lab gives every student the same set of machines (`router`, `host1`, …),
//! each cloned from its own template and named `<student>-<role>`, with NICs on the
//! uplink (the bridge the template's `net0` is on: the teacher's network, fenced as a
//! single-machine lab is) or on one of the student's own networks. Each network of each
//! student is its own layer-2 segment (a Proxmox SDN vnet): machines of one student reach
//! each other there, machines of different students never share one.

use std::fmt;
use std::net::Ipv4Addr;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::hypervisor::Backend;
use crate::types::{LabName, VmId};

/// Most machines per student.
pub const MAX_MACHINES: usize = 8;
/// Most networks per student.
pub const MAX_NETWORKS: usize = 4;
/// Most NICs of one machine (`net0`..`net7`).
pub const MAX_NICS: usize = 8;

/// Where one NIC of a machine is plugged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicSpec {
    /// The uplink: the bridge the template's NIC is on (the teacher's network). Fenced.
    Uplink,
    /// The student's own network of this name (a `[[network]]` of the lab file).
    Network(String),
}

impl fmt::Display for NicSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NicSpec::Uplink => f.write_str(UPLINK),
            NicSpec::Network(n) => f.write_str(n),
        }
    }
}

/// The name the lab file uses for the uplink.
pub const UPLINK: &str = "uplink";

/// One machine every student gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// Its role (`router`, `host1`): the host name is `<student>-<role>`.
    pub role: String,
    /// The template it is cloned from.
    pub template: VmId,
    /// Its NICs in order: the first is `net0`.
    pub nics: Vec<NicSpec>,
    /// The role of the student's machine that must be ready before this one starts (a
    /// host that takes its address from the student's router); `None`: starts at once.
    pub after: Option<String>,
}

impl MachineSpec {
    /// Whether a NIC of this machine is on the uplink (the fence applies to it).
    pub fn has_uplink(&self) -> bool {
        self.nics.contains(&NicSpec::Uplink)
    }
}

/// The kind of SDN zone the lab's networks live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZoneKind {
    /// One node's bridges only, no VLAN needed (PVE `simple`); DHCP through dnsmasq.
    #[default]
    Simple,
    /// VLAN tags on a bridge trunked between nodes (PVE `vlan`); no DHCP.
    Vlan,
}

impl ZoneKind {
    /// PVE's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneKind::Simple => "simple",
            ZoneKind::Vlan => "vlan",
        }
    }
}

impl std::str::FromStr for ZoneKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "simple" => Ok(ZoneKind::Simple),
            "vlan" => Ok(ZoneKind::Vlan),
            _ => Err(Error::invalid(
                "zone type",
                s,
                "simple (one node, DHCP possible) or vlan (VLAN tags on a bridge, across nodes)",
            )),
        }
    }
}

/// How the students' networks are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The SDN zone: the lab's own (created and removed with the lab) when `None`.
    pub zone: Option<String>,
    /// The kind of zone the lab creates when it creates its own.
    pub kind: ZoneKind,
    /// The bridge of a `vlan` zone the lab creates (`vmbr0`).
    pub bridge: String,
    /// VLAN tags the lab's vnets may take in a `vlan` zone.
    pub tags: (u16, u16),
    /// Where the students' subnets are carved from (a /24 per student network), or `None`
    /// for networks without a subnet (no addresses are handed out: the students set them).
    pub subnets: Option<(Ipv4Addr, u8)>,
}

impl Default for NetworkPlan {
    fn default() -> Self {
        Self {
            zone: None,
            kind: ZoneKind::Simple,
            bridge: "vmbr0".to_owned(),
            tags: (2000, 3999),
            subnets: None,
        }
    }
}

/// The machines and networks of every student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Every student's machines, in the order they are listed (and get ids).
    pub machines: Vec<MachineSpec>,
    /// The names of every student's networks.
    pub networks: Vec<String>,
    /// How the networks are made.
    pub plan: NetworkPlan,
}

/// A role, a network or a zone name: lower-case letters, digits and '-'.
fn check_name(what: &'static str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            name,
            format!(
                "1-{max} lower-case letters, digits or '-', starting with a letter and not \
                 ending with '-'"
            ),
        ))
    }
}

impl Topology {
    /// Checks the machines and networks against each other; `count` students.
    pub fn validate(&self, count: u32) -> Result<()> {
        if self.machines.is_empty() || self.machines.len() > MAX_MACHINES {
            return Err(Error::invalid(
                "machines",
                self.machines.len().to_string(),
                format!("1 to {MAX_MACHINES} [[machine]] entries per student"),
            ));
        }
        if self.networks.len() > MAX_NETWORKS {
            return Err(Error::invalid(
                "networks",
                self.networks.len().to_string(),
                format!("at most {MAX_NETWORKS} [[network]] entries per student"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &self.networks {
            check_name("network name", n, 15)?;
            if n == UPLINK || !seen.insert(n.as_str()) {
                return Err(Error::invalid(
                    "network name",
                    n.clone(),
                    "distinct names other than \"uplink\" (the teacher's network)",
                ));
            }
        }
        let mut roles = std::collections::BTreeSet::new();
        for m in &self.machines {
            check_name("machine role", &m.role, 20)?;
            if !roles.insert(m.role.as_str()) {
                return Err(Error::invalid(
                    "machine role",
                    m.role.clone(),
                    "distinct roles: each names one machine of every student",
                ));
            }
            if m.nics.is_empty() || m.nics.len() > MAX_NICS {
                return Err(Error::invalid(
                    "nics",
                    format!("{} ({})", m.role, m.nics.len()),
                    format!("1 to {MAX_NICS} NICs per machine: \"uplink\" or a network's name"),
                ));
            }
            for nic in &m.nics {
                if let NicSpec::Network(n) = nic {
                    if !self.networks.contains(n) {
                        return Err(Error::invalid(
                            "nics",
                            format!("{}: {n}", m.role),
                            format!(
                                "\"uplink\" or a [[network]] of the lab file ({})",
                                if self.networks.is_empty() {
                                    "none declared".to_owned()
                                } else {
                                    self.networks.join(", ")
                                }
                            ),
                        ));
                    }
                }
            }
        }
        for m in &self.machines {
            let mut at = m;
            for _ in 0..=self.machines.len() {
                let Some(after) = &at.after else { break };
                let Some(next) = self.machines.iter().find(|x| &x.role == after) else {
                    return Err(Error::invalid(
                        "after",
                        format!("{}: {after}", at.role),
                        format!(
                            "the role of another machine of the student ({})",
                            self.machines
                                .iter()
                                .map(|x| x.role.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                if next.role == m.role {
                    return Err(Error::invalid(
                        "after",
                        format!("{}: {after}", at.role),
                        "machines that start after each other in a circle would never start",
                    ));
                }
                at = next;
            }
        }
        if !self.machines.iter().any(MachineSpec::has_uplink) {
            return Err(Error::invalid(
                "nics",
                "no machine on the uplink",
                "at least one machine needs an \"uplink\" NIC: the teacher reaches the \
                 students there",
            ));
        }
        if let Some(zone) = &self.plan.zone {
            check_name("zone", zone, 8)?;
        }
        let (lo, hi) = self.plan.tags;
        if !(1..=4094).contains(&lo) || !(lo..=4094).contains(&hi) {
            return Err(Error::invalid(
                "vlan tags",
                format!("{lo}-{hi}"),
                "FIRST-LAST within 1-4094",
            ));
        }
        let networks = u64::from(count) * self.networks.len() as u64;
        if self.plan.kind == ZoneKind::Vlan && networks > u64::from(hi - lo) + 1 {
            return Err(Error::invalid(
                "vlan tags",
                format!("{lo}-{hi}"),
                format!("{networks} student networks need one tag each"),
            ));
        }
        if let Some((base, prefix)) = self.plan.subnets {
            if prefix > 24
                || base.to_bits() & (u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0)) != 0
            {
                return Err(Error::invalid(
                    "subnets",
                    format!("{base}/{prefix}"),
                    "a network of /24 or wider (its host bits zero), e.g. 10.100.0.0/16, \
                     carved into one /24 per student network",
                ));
            }
            let room = 1u64 << (24 - prefix);
            if networks > room {
                return Err(Error::invalid(
                    "subnets",
                    format!("{base}/{prefix}"),
                    format!(
                        "holds {room} /24 networks but {networks} student networks need one each"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The subnet (a /24) of student `number`'s network `index`, if subnets are carved.
    pub fn subnet(&self, number: u32, index: usize) -> Option<(Ipv4Addr, u8)> {
        let (base, _) = self.plan.subnets?;
        let k = (number - 1) * self.networks.len() as u32 + index as u32;
        Some((Ipv4Addr::from_bits(base.to_bits() + (k << 8)), 24))
    }

    /// How many ids one student's block holds: the number of machines rounded up to ten,
    /// so that student `n`'s machines start at `first + (n-1)·block` and the ids show the
    /// student (`5010`-`5012` is student 2 of a lab from 5000) — or the number of machines
    /// when rounding would not fit `ids` ids for `count` students.
    pub fn block(&self, count: u32, ids: u64) -> u32 {
        let k = self.machines.len() as u32;
        let round = k.div_ceil(10) * 10;
        if u64::from(round) * u64::from(count) <= ids {
            round
        } else {
            k
        }
    }
}

/// The vnet id of student `number`'s network `index` in `lab`: PVE allows at most 8
/// characters (letters and digits, starting with a letter), so the name is `v`, four
/// characters of a hash of the lab's name (1.7 million values: two labs on one cluster
/// practically never meet), the network's index (`0`..) and the student's number in two
/// base-36 digits (`01`..`dw` for 500): `vk3xa012`. Who it belongs to is written in the
/// vnet's `alias` ([`network_alias`]), which is what ownership is checked against.
pub fn vnet_id(lab: &LabName, number: u32, index: usize) -> String {
    format!("v{}{index}{}", lab_hash(lab), base36(u64::from(number), 2))
}

/// Reads a vnet id back: `(network index, student number)` when `id` is one of `lab`'s
/// ([`vnet_id`]).
pub fn parse_vnet_id(lab: &LabName, id: &str) -> Option<(usize, u32)> {
    let index = id.get(5..6)?.parse::<usize>().ok()?;
    let number = u32::from_str_radix(id.get(6..)?, 36).ok()?;
    (vnet_id(lab, number, index) == id).then_some((index, number))
}

/// The zone id a lab creates for itself when the lab file names none: `z` and seven
/// characters derived from the lab's name.
pub fn lab_zone_id(lab: &LabName) -> String {
    let h = fnv(lab.as_str().as_bytes());
    let mut s = String::from("z");
    s.push_str(&base36(h, 7));
    s
}

/// The alias written on a lab's vnet: `labctl <lab> <student> <network>` — the vnet
/// belongs to the lab only when its alias says so.
pub fn network_alias(lab: &LabName, student: &str, network: &str) -> String {
    format!("labctl {lab} {student} {network}")
}

/// Reads an alias written by [`network_alias`] for `lab`: `(student, network)`.
pub fn parse_network_alias<'a>(lab: &LabName, alias: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = alias.strip_prefix("labctl ")?;
    let rest = rest.strip_prefix(lab.as_str())?.strip_prefix(' ')?;
    let (student, network) = rest.split_once(' ')?;
    (!student.is_empty() && !network.is_empty() && !network.contains(' '))
        .then_some((student, network))
}

fn lab_hash(lab: &LabName) -> String {
    base36(fnv(lab.as_str().as_bytes()), 4)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// One network of one student the lab wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentNetwork {
    /// The vnet id ([`vnet_id`]): the bridge the student's NICs are plugged into.
    pub id: String,
    /// The student (its name: the host-name stem of its machines).
    pub student: String,
    /// The network's name in the lab file (`lan`).
    pub network: String,
    /// Its subnet, if the lab carves them; DHCP hands out `.10`-`.200` of it (simple
    /// zones); no gateway is set, so the node never routes between students.
    pub subnet: Option<(Ipv4Addr, u8)>,
}

/// One of the lab's networks as the cluster shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The vnet id.
    pub id: String,
    /// The zone it is in.
    pub zone: String,
    /// The student it belongs to (from its alias).
    pub student: String,
    /// The network's name in the lab file.
    pub network: String,
    /// Its VLAN tag, in a `vlan` zone.
    pub tag: Option<u16>,
    /// Its subnet, e.g. `10.100.3.0/24`.
    pub subnet: Option<String>,
    /// Created or changed but not yet applied (not usable by guests until applied).
    pub pending: bool,
}

/// What [`Networks::remove_networks`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworksRemoved {
    /// The vnets removed (their subnets first).
    pub vnets: Vec<String>,
    /// The lab's own zone, when it was removed too.
    pub zone: Option<String>,
    /// Whether the change was applied (one `PUT /cluster/sdn`).
    pub applied: bool,
}

/// Networks of a lab's own: per student layer-2 segments (Proxmox: SDN vnets). A backend
/// without them answers [`Error::Unsupported`] and only single-machine labs run on it.
#[async_trait]
pub trait Networks: Backend + Send + Sync {
    /// Makes sure every network in `wanted` exists and is applied, and the lab's own zone
    /// when `plan.zone` is `None`: what is missing is created pending and everything is
    /// applied **once** (holding the SDN lock); what exists with the lab's alias is kept.
    /// A vnet of that id whose alias is not the lab's is refused
    /// ([`Error::InvalidInput`], naming the vnet and its alias; nothing is changed). Idempotent: a repeated call with nothing missing and
    /// nothing pending changes nothing and applies nothing. Answers the lab's networks.
    async fn ensure_networks(
        &self,
        lab: &LabName,
        plan: &NetworkPlan,
        wanted: Vec<StudentNetwork>,
    ) -> Result<Vec<NetworkInfo>> {
        let _ = (lab, plan, wanted);
        Err(Error::Unsupported {
            operation: "ensure_networks",
            backend: self.backend(),
        })
    }

    /// The lab's networks (vnets whose alias names the lab), in id order.
    async fn lab_networks(&self, lab: &LabName) -> Result<Vec<NetworkInfo>> {
        let _ = lab;
        Err(Error::Unsupported {
            operation: "lab_networks",
            backend: self.backend(),
        })
    }

    /// Removes the lab's networks: each vnet's subnets, then the vnet, then the lab's own
    /// zone when nothing else is in it, then one apply. Never a zone or bridge the lab did
    /// not create, never a vnet whose alias is not the lab's. Idempotent.
    async fn remove_networks(&self, lab: &LabName) -> Result<NetworksRemoved> {
        let _ = lab;
        Err(Error::Unsupported {
            operation: "remove_networks",
            backend: self.backend(),
        })
    }
}

/// Where one NIC of a new guest is plugged, for [`Secure`](crate::Secure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlug {
    /// `X` of `netX`.
    pub index: u32,
    /// `None`: the uplink (keep the template's bridge; the fence applies); `Some(vnet)`:
    /// the student's network (the NIC's firewall flag is off: the segment is the
    /// student's alone).
    pub bridge: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(s: &str) -> LabName {
        LabName::new(s).unwrap()
    }

    fn topo() -> Topology {
        Topology {
            machines: vec![
                MachineSpec {
                    role: "router".into(),
                    template: VmId::new(9000).unwrap(),
                    nics: vec![NicSpec::Uplink, NicSpec::Network("lan".into())],
                    after: None,
                },
                MachineSpec {
                    role: "host1".into(),
                    template: VmId::new(9001).unwrap(),
                    nics: vec![NicSpec::Network("lan".into())],
                    after: None,
                },
            ],
            networks: vec!["lan".into()],
            plan: NetworkPlan::default(),
        }
    }

    #[test]
    fn vnet_ids_fit_pve_rules_and_tell_labs_students_and_networks_apart() {
        let a = vnet_id(&lab("exam1"), 1, 0);
        assert_eq!(a.len(), 8);
        assert!(a.starts_with('v') && a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, vnet_id(&lab("exam2"), 1, 0));
        assert_ne!(a, vnet_id(&lab("exam1"), 2, 0));
        assert_ne!(a, vnet_id(&lab("exam1"), 1, 1));
        assert_eq!(vnet_id(&lab("exam1"), 500, 3).len(), 8);
        assert_eq!(parse_vnet_id(&lab("exam1"), &a), Some((0, 1)));
        let last = vnet_id(&lab("exam1"), 500, 3);
        assert_eq!(parse_vnet_id(&lab("exam1"), &last), Some((3, 500)));
        assert_eq!(parse_vnet_id(&lab("exam2"), &last), None);
        assert_eq!(parse_vnet_id(&lab("exam1"), "vmbr0"), None);
        // The two names the 3-character hash gave one id (a teacher found them).
        assert_ne!(vnet_id(&lab("c44"), 1, 0), vnet_id(&lab("c848"), 1, 0));
        let z = lab_zone_id(&lab("exam1"));
        assert_eq!(z.len(), 8);
        assert!(z.starts_with('z'));
    }

    #[test]
    fn an_alias_names_lab_student_and_network_and_only_the_lab_reads_it() {
        let l = lab("exam1");
        let alias = network_alias(&l, "anna", "lan");
        assert_eq!(parse_network_alias(&l, &alias), Some(("anna", "lan")));
        assert_eq!(parse_network_alias(&lab("exam"), &alias), None);
        assert_eq!(parse_network_alias(&lab("exam11"), &alias), None);
        assert_eq!(parse_network_alias(&l, "anna lan"), None);
    }

    #[test]
    fn a_topology_is_checked_and_every_error_names_the_input() {
        let t = topo();
        t.validate(10).unwrap();
        let mut bad = t.clone();
        bad.machines[1].nics = vec![NicSpec::Network("wan".into())];
        let e = bad.validate(10).unwrap_err().to_string();
        assert!(e.contains("host1: wan") && e.contains("lan"), "{e}");
        let mut bad = t.clone();
        bad.machines[0].nics = vec![NicSpec::Network("lan".into())];
        let e = bad.validate(10).unwrap_err().to_string();
        assert!(e.contains("uplink"), "{e}");
        let mut bad = t.clone();
        bad.machines[1].role = "router".into();
        assert!(bad.validate(10).unwrap_err().to_string().contains("router"));
        let mut bad = t.clone();
        bad.machines[1].role = "Host_1".into();
        assert!(bad.validate(10).unwrap_err().to_string().contains("Host_1"));
        let mut bad = t.clone();
        bad.plan.subnets = Some((Ipv4Addr::new(10, 100, 0, 0), 28));
        assert!(bad
            .validate(10)
            .unwrap_err()
            .to_string()
            .contains("10.100.0.0/28"));
        bad.plan.subnets = Some((Ipv4Addr::new(10, 100, 0, 0), 23));
        let e = bad.validate(10).unwrap_err().to_string();
        assert!(e.contains("holds 2 /24 networks but 10"), "{e}");
        bad.plan.subnets = Some((Ipv4Addr::new(10, 100, 1, 0), 16));
        assert!(bad.validate(10).is_err());
        let mut bad = t.clone();
        bad.machines[1].after = Some("gateway".into());
        let e = bad.validate(10).unwrap_err().to_string();
        assert!(
            e.contains("host1: gateway") && e.contains("router, host1"),
            "{e}"
        );
        bad.machines[1].after = Some("router".into());
        bad.validate(10).unwrap();
        bad.machines[0].after = Some("host1".into());
        let e = bad.validate(10).unwrap_err().to_string();
        assert!(e.contains("circle"), "{e}");
        let mut bad = t;
        bad.plan.kind = ZoneKind::Vlan;
        bad.plan.tags = (100, 104);
        let e = bad.validate(10).unwrap_err().to_string();
        assert!(
            e.contains("100-104") && e.contains("10 student networks"),
            "{e}"
        );
    }

    #[test]
    fn subnets_are_one_slash_24_per_student_network_in_order() {
        let mut t = topo();
        t.networks.push("dmz".into());
        t.machines[1].nics.push(NicSpec::Network("dmz".into()));
        t.plan.subnets = Some((Ipv4Addr::new(10, 100, 0, 0), 16));
        assert_eq!(t.subnet(1, 0), Some((Ipv4Addr::new(10, 100, 0, 0), 24)));
        assert_eq!(t.subnet(1, 1), Some((Ipv4Addr::new(10, 100, 1, 0), 24)));
        assert_eq!(t.subnet(2, 0), Some((Ipv4Addr::new(10, 100, 2, 0), 24)));
    }

    #[test]
    fn a_block_of_ten_ids_per_student_when_the_range_allows() {
        let t = topo();
        assert_eq!(t.block(10, 1000), 10);
        assert_eq!(t.block(10, 99), 2);
    }
}
