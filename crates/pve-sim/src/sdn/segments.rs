//! Networks as layer-2 segments.
//!
//! A NIC `netX: …,bridge=B[,tag=T]` sits on a segment:
//! - `vmbr*` (a Linux bridge of the node; `vmbr0` is the uplink, where the teacher and
//!   every address that is no guest live): segment `(B, T)`, the same on every node;
//! - a vnet the nodes run (applied: see [`super::Sdn::live`]) of a `vlan` zone: segment
//!   `(<zone bridge>, <vnet tag>)`, so it meets `vmbrX,tag=N` NICs on every node;
//! - a vnet of a `simple` zone: `(<vnet>, T)` on that node only (simple zones are
//!   node-local);
//! - any other bridge (a vnet not applied yet, a typo): no carrier, no segment.
//!
//! Two guests reach each other when they have a NIC on a common segment, or when a
//! running guest that forwards (`/proc/sys/net/ipv4/ip_forward` is `1`) has NICs on a
//! segment of each (one routing hop; the routes inside the guests are not consulted).
//! On an `isolate-ports` vnet, guests on the same segment do not reach each other.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::guest::{net_option, Guest};
use crate::state::SimState;

/// One layer-2 segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seg {
    pub bridge: String,
    pub tag: Option<u16>,
    /// `Some` for a node-local (simple zone) vnet.
    pub node: Option<String>,
    /// Ports are isolated from each other (`isolate-ports`).
    pub isolated: bool,
}

impl Seg {
    fn same(&self, other: &Seg) -> bool {
        self.bridge == other.bridge && self.tag == other.tag && self.node == other.node
    }

    /// The untagged uplink `vmbr0`.
    pub(crate) fn is_uplink(&self) -> bool {
        self.bridge == "vmbr0" && self.tag.is_none()
    }
}

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.bridge)?;
        if let Some(t) = self.tag {
            write!(f, " tag {t}")?;
        }
        if let Some(n) = &self.node {
            write!(f, " on {n}")?;
        }
        Ok(())
    }
}

/// The segment of one `netX` value of guest `g`, or `None` (no carrier: the bridge does
/// not exist on the node).
pub(crate) fn segment(st: &SimState, g: &Guest, value: &str) -> Option<Seg> {
    let bridge = net_option(value, "bridge")?;
    let tag = net_option(value, "tag").and_then(|t| t.parse::<u16>().ok());
    if bridge.starts_with("vmbr") {
        return Some(Seg {
            bridge: bridge.to_owned(),
            tag,
            node: None,
            isolated: false,
        });
    }
    let live = &st.sdn.live;
    let vnet = live.vnets.get(bridge)?;
    let zone_id = vnet.get("zone").and_then(Value::as_str)?;
    let zone = live.zones.get(zone_id)?;
    let isolated = vnet
        .get("isolate-ports")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0;
    match zone.get("type").and_then(Value::as_str)? {
        "vlan" => Some(Seg {
            bridge: zone.get("bridge").and_then(Value::as_str)?.to_owned(),
            tag: vnet
                .get("tag")
                .and_then(Value::as_i64)
                .and_then(|t| u16::try_from(t).ok()),
            node: None,
            isolated,
        }),
        "simple" => Some(Seg {
            bridge: bridge.to_owned(),
            tag,
            node: Some(g.node.clone()),
            isolated,
        }),
        // Other zone types span the cluster: one segment per vnet.
        _ => Some(Seg {
            bridge: bridge.to_owned(),
            tag,
            node: None,
            isolated,
        }),
    }
}

/// Every NIC of `g` that has carrier, with its segment.
pub(crate) fn nic_segments(st: &SimState, g: &Guest) -> Vec<(u32, Seg)> {
    g.nets()
        .into_iter()
        .filter_map(|(i, v)| segment(st, g, v).map(|s| (i, s)))
        .collect()
}

/// Does `g` route between its NICs (`ip_forward` on)?
fn forwards(g: &Guest) -> bool {
    g.os.files
        .get("/proc/sys/net/ipv4/ip_forward")
        .is_some_and(|f| String::from_utf8_lossy(&f.content).trim() == "1")
}

/// How a packet gets from guest `a` to guest `b`: the NIC of `a` it leaves by and the
/// NIC of `b` it arrives on, or why it cannot (naming the segments).
pub(crate) fn connect(st: &SimState, a: &Guest, b: &Guest) -> Result<(u32, u32), String> {
    let sa = nic_segments(st, a);
    let sb = nic_segments(st, b);
    let mut isolated = None;
    for (ia, s) in &sa {
        if let Some((ib, _)) = sb.iter().find(|(_, t)| s.same(t)) {
            if s.isolated {
                isolated = Some(s.clone());
                continue;
            }
            return Ok((*ia, *ib));
        }
    }
    // One hop through a forwarding guest.
    for r in st
        .guests
        .values()
        .filter(|r| r.running && r.vmid != a.vmid && r.vmid != b.vmid && forwards(r))
    {
        let sr = nic_segments(st, r);
        let left = sa
            .iter()
            .find(|(_, s)| !s.isolated && sr.iter().any(|(_, t)| s.same(t)));
        let right = sb
            .iter()
            .find(|(_, s)| !s.isolated && sr.iter().any(|(_, t)| s.same(t)));
        if let (Some((ia, _)), Some((ib, _))) = (left, right) {
            return Ok((*ia, *ib));
        }
    }
    if let Some(s) = isolated {
        return Err(format!(
            "guests {} and {} share only {s}, whose ports are isolated",
            a.vmid, b.vmid
        ));
    }
    Err(format!(
        "guests {} ({}) and {} ({}) share no network segment and no guest routes between them",
        a.vmid,
        names(&sa),
        b.vmid,
        names(&sb)
    ))
}

/// The NIC of `g` on the uplink (`vmbr0`, untagged), where addresses outside the
/// guests live.
pub(crate) fn uplink(st: &SimState, g: &Guest) -> Result<u32, String> {
    let segs = nic_segments(st, g);
    segs.iter()
        .find(|(_, s)| s.is_uplink())
        .map(|(i, _)| *i)
        .ok_or_else(|| {
            format!(
                "guest {} has no NIC on the uplink vmbr0 ({})",
                g.vmid,
                names(&segs)
            )
        })
}

fn names(segs: &[(u32, Seg)]) -> String {
    if segs.is_empty() {
        return "no NIC with carrier".into();
    }
    segs.iter()
        .map(|(i, s)| format!("net{i} on {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Per guest: vmid, the NICs without carrier, the NIC of the lab lease.
type View = (u32, BTreeSet<u32>, Option<u32>);

/// A NIC that wants a subnet lease: vmid, NIC, the subnet, the MAC (lower case).
type Wanted = (u32, u32, DhcpSubnet, String);

/// Each guest's view and the NICs that want a subnet lease, in vmid order.
fn views(st: &SimState) -> (Vec<View>, Vec<Wanted>) {
    let mut views = Vec::new();
    let mut wanted = Vec::new();
    for g in st.guests.values() {
        let mut dead = BTreeSet::new();
        let mut lab = None;
        for (i, v) in g.nets() {
            match segment(st, g, v) {
                None => {
                    dead.insert(i);
                }
                Some(s) if s.is_uplink() && lab.is_none() => lab = Some(i),
                Some(_) => {
                    if let Some(w) = dhcp_subnet(st, v) {
                        let mac = crate::guest::net_mac(g.kind, v)
                            .unwrap_or_default()
                            .to_lowercase();
                        wanted.push((g.vmid, i, w, mac));
                    }
                }
            }
        }
        views.push((g.vmid, dead, lab));
    }
    (views, wanted)
}

/// The first free address of `subnet`'s range (not leased, not the gateway).
fn free_address(
    st: &SimState,
    subnet: &str,
    range: (Ipv4Addr, Ipv4Addr),
    gateway: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let taken: Vec<Ipv4Addr> = st
        .sdn
        .leases
        .iter()
        .filter(|((s, _), _)| s == subnet)
        .map(|(_, ip)| *ip)
        .collect();
    let (lo, hi) = (u32::from(range.0), u32::from(range.1));
    (lo..=hi)
        .map(Ipv4Addr::from)
        .find(|ip| !taken.contains(ip) && Some(*ip) != gateway)
}

/// Bring every guest's network view up to date with the SDN state the nodes run: which
/// NICs have no carrier, which NIC holds the lab lease (the first on the uplink) and
/// which NICs hold a lease from an applied subnet's DHCP range. Leases are handed out
/// once per (subnet, MAC) and kept, like dnsmasq's.
///
/// The view depends on the guest table, each guest's kind and `netX` values, the applied
/// SDN config (`live`) and the leases (which only this writes); `Shared::lock` calls this
/// when one of them changed (`SimState::net_key`), not on every lock.
pub(crate) fn refresh(st: &mut SimState) {
    let (views, wanted) = views(st);
    let mut leases: BTreeMap<u32, BTreeMap<u32, (Ipv4Addr, u8)>> = BTreeMap::new();
    for (vmid, nic, (subnet, prefix, range, gateway), mac) in wanted {
        let key = (subnet.clone(), mac.clone());
        let ip = match st.sdn.leases.get(&key) {
            Some(ip) => Some(*ip),
            None => {
                let ip = free_address(st, &subnet, range, gateway);
                if let Some(ip) = ip {
                    st.sdn.leases.insert(key, ip);
                }
                ip
            }
        };
        if let Some(ip) = ip {
            leases.entry(vmid).or_default().insert(nic, (ip, prefix));
        }
    }
    for (vmid, dead, lab) in views {
        if let Some(g) = st.guests.get_mut(&vmid) {
            g.no_carrier = dead;
            g.lab_nic = lab;
            g.nic_leases = leases.remove(&vmid).unwrap_or_default();
        }
    }
}

/// Would [`refresh`] leave `st` as it is (no view to change, no lease to hand out)? For
/// the debug check that every change of the view's inputs is counted.
pub(crate) fn is_fresh(st: &SimState) -> bool {
    let (views, wanted) = views(st);
    let mut leases: BTreeMap<u32, BTreeMap<u32, (Ipv4Addr, u8)>> = BTreeMap::new();
    for (vmid, nic, (subnet, prefix, range, gateway), mac) in wanted {
        match st.sdn.leases.get(&(subnet.clone(), mac)) {
            Some(ip) => {
                leases.entry(vmid).or_default().insert(nic, (*ip, prefix));
            }
            None if free_address(st, &subnet, range, gateway).is_some() => return false,
            None => {}
        }
    }
    views.into_iter().all(|(vmid, dead, lab)| {
        st.guests.get(&vmid).is_some_and(|g| {
            g.no_carrier == dead
                && g.lab_nic == lab
                && g.nic_leases == leases.remove(&vmid).unwrap_or_default()
        })
    })
}

/// A subnet that hands out leases: id, prefix, the first range, the gateway.
type DhcpSubnet = (String, u8, (Ipv4Addr, Ipv4Addr), Option<Ipv4Addr>);

/// The subnet a NIC on `value`'s bridge gets a DHCP lease from: an applied vnet of a
/// `simple` zone with `dhcp=dnsmasq`, its first subnet with a `dhcp-range`.
fn dhcp_subnet(st: &SimState, value: &str) -> Option<DhcpSubnet> {
    let bridge = net_option(value, "bridge")?;
    let live = &st.sdn.live;
    let vnet = live.vnets.get(bridge)?;
    let zone = live.zones.get(vnet.get("zone").and_then(Value::as_str)?)?;
    if zone.get("type").and_then(Value::as_str) != Some("simple")
        || zone.get("dhcp").and_then(Value::as_str) != Some("dnsmasq")
    {
        return None;
    }
    live.subnets_of(bridge).find_map(|(id, o)| {
        let range = *super::ranges(o).first()?;
        let prefix = id.rsplit('-').next()?.parse::<u8>().ok()?;
        let gateway = o
            .get("gateway")
            .and_then(Value::as_str)
            .and_then(|g| g.parse().ok());
        Some((id.clone(), prefix, range, gateway))
    })
}
