//! The network a running guest sees: its NICs (from the config: name, MAC, link state;
//! the DHCP lease on the first one) merged with what the student configured inside
//! ([`super::os::GuestOs`]: static addresses, VLAN sub-interfaces, bridges, routes), and
//! how iproute2 (`ip -j addr|link|route`) and qemu-ga (`guest-network-get-interfaces`)
//! print it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::os::{IfKind, LAB_GATEWAY};
use super::{link_local, net_mac, net_option, Guest};

/// Prefix length of the lab's DHCP network (10.10.0.0/16).
pub(crate) const LEASE_PREFIX: u8 = 16;

/// One address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddrView {
    pub ip: IpAddr,
    pub prefix: u8,
    /// From DHCP (`dynamic` in iproute2).
    pub dynamic: bool,
}

/// One interface as the guest's kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfView {
    pub index: u32,
    pub name: String,
    /// `None` = loopback.
    pub kind: Option<IfKind>,
    pub link: Option<String>,
    pub vlan: Option<u16>,
    pub mac: String,
    pub addrs: Vec<AddrView>,
    pub admin_up: bool,
    /// Carrier (a NIC with `link_down=1` has none).
    pub carrier: bool,
    pub mtu: u32,
    pub master: Option<String>,
    /// `X` of the `netX` this interface is (or sits on, for a VLAN).
    pub nic: Option<u32>,
}

impl IfView {
    /// Up and with carrier: packets flow.
    pub(crate) fn running(&self) -> bool {
        self.admin_up && self.carrier
    }
}

/// A route as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteView {
    /// `default` or `NET/PREFIX`.
    pub dst: String,
    pub gateway: Option<IpAddr>,
    pub dev: String,
    /// `kernel`, `dhcp`, or `None` (added by hand: proto boot, not printed).
    pub protocol: Option<&'static str>,
    pub scope_link: bool,
    pub prefsrc: Option<IpAddr>,
    pub metric: Option<u32>,
    pub linkdown: bool,
}

/// The network address of `ip/prefix`.
pub(crate) fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// Is `ip` inside `net/prefix`?
pub(crate) fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    net.is_ipv4() == ip.is_ipv4() && network(net, prefix) == network(ip, prefix)
}

fn broadcast_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let host = if prefix >= 32 {
        0
    } else {
        u32::MAX >> u32::from(prefix)
    };
    Ipv4Addr::from(u32::from(ip) | host)
}

/// The interfaces of a running guest, in ifindex order.
pub(crate) fn interfaces(g: &Guest, now: Instant) -> Vec<IfView> {
    let mut out = vec![IfView {
        index: 1,
        name: "lo".into(),
        kind: None,
        link: None,
        vlan: None,
        mac: "00:00:00:00:00:00".into(),
        addrs: vec![
            AddrView {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                prefix: 8,
                dynamic: false,
            },
            AddrView {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
                dynamic: false,
            },
        ],
        admin_up: true,
        carrier: true,
        mtu: 65536,
        master: None,
        nic: None,
    }];
    let lease = g.ipv4.filter(|_| g.ipv4_ready_at.is_some_and(|t| now >= t));
    let os = &g.os;
    let mut nic_names = Vec::new();
    for (i, value) in g.nets() {
        let Some(mac) = net_mac(g.kind, value).map(|m| m.to_lowercase()) else {
            continue;
        };
        let name = format!("ens{}", 18 + i);
        let overlay = os.interfaces.get(&name);
        let mut addrs = Vec::new();
        // The lab's DHCP lease is on the first NIC on the uplink (its `iface … inet dhcp`).
        if let Some(ip) = lease.filter(|_| g.lab_nic == Some(i) && !os.runtime.lease_removed) {
            addrs.push(AddrView {
                ip: IpAddr::V4(ip),
                prefix: LEASE_PREFIX,
                dynamic: true,
            });
        }
        // A lease from an SDN subnet's DHCP range (shown without a default route).
        if let Some((ip, prefix)) = g
            .nic_leases
            .get(&i)
            .filter(|_| g.ipv4_ready_at.is_some_and(|t| now >= t))
        {
            addrs.push(AddrView {
                ip: IpAddr::V4(*ip),
                prefix: *prefix,
                dynamic: false,
            });
        }
        if let Some(o) = overlay {
            addrs.extend(o.addresses.iter().map(|(ip, prefix)| AddrView {
                ip: *ip,
                prefix: *prefix,
                dynamic: false,
            }));
        }
        if let Some(ll) = link_local(&mac) {
            addrs.push(AddrView {
                ip: IpAddr::V6(ll),
                prefix: 64,
                dynamic: false,
            });
        }
        nic_names.push(name.clone());
        out.push(IfView {
            index: out.len() as u32 + 1,
            name,
            kind: Some(IfKind::Ether),
            link: None,
            vlan: None,
            mac,
            addrs,
            admin_up: overlay.is_none_or(|o| o.up),
            carrier: net_option(value, "link_down") != Some("1") && !g.no_carrier.contains(&i),
            mtu: overlay.map_or(1500, |o| o.mtu),
            master: overlay.and_then(|o| o.master.clone()),
            nic: Some(i),
        });
    }
    // What the student added, parents before children (bridges last so their ports exist).
    let mut added: Vec<(&String, &super::os::Iface)> = os
        .interfaces
        .iter()
        .filter(|(n, _)| !nic_names.contains(n))
        .collect();
    added.sort_by_key(|(n, i)| {
        (
            i.kind == IfKind::Bridge,
            i.kind == IfKind::Vlan,
            (*n).clone(),
        )
    });
    for (name, i) in added {
        let parent = i
            .link
            .as_ref()
            .and_then(|l| out.iter().find(|v| &v.name == l))
            .cloned();
        let ports: Vec<IfView> = out
            .iter()
            .filter(|v| v.master.as_deref() == Some(name.as_str()))
            .cloned()
            .collect();
        let mac = i
            .mac
            .clone()
            .or_else(|| parent.as_ref().map(|p| p.mac.clone()))
            .or_else(|| ports.first().map(|p| p.mac.clone()))
            .unwrap_or_else(|| derived_mac(name));
        let (carrier, nic) = match i.kind {
            IfKind::Vlan => (
                parent.as_ref().is_some_and(IfView::running),
                parent.as_ref().and_then(|p| p.nic),
            ),
            IfKind::Bridge => (
                ports.iter().any(IfView::running),
                ports.iter().find_map(|p| p.nic),
            ),
            IfKind::Dummy => (true, None),
            // An ether that is no NIC of this VM has no cable.
            IfKind::Ether => (false, None),
        };
        let mut addrs: Vec<AddrView> = i
            .addresses
            .iter()
            .map(|(ip, prefix)| AddrView {
                ip: *ip,
                prefix: *prefix,
                dynamic: false,
            })
            .collect();
        if let Some(ll) = link_local(&mac) {
            addrs.push(AddrView {
                ip: IpAddr::V6(ll),
                prefix: 64,
                dynamic: false,
            });
        }
        out.push(IfView {
            index: out.len() as u32 + 1,
            name: name.clone(),
            kind: Some(i.kind),
            link: i.link.clone(),
            vlan: i.vlan,
            mac,
            addrs,
            admin_up: i.up,
            carrier,
            mtu: i.mtu,
            master: i.master.clone(),
            nic,
        });
    }
    out
}

/// A stable locally administered MAC for an interface without one.
fn derived_mac(name: &str) -> String {
    let h = super::os::sha256_hex(name.as_bytes());
    format!("52:54:00:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6])
}

/// The routing table (main, IPv4) of a running guest.
pub(crate) fn routes(g: &Guest, ifs: &[IfView]) -> Vec<RouteView> {
    let mut out = Vec::new();
    for i in ifs.iter().filter(|i| i.kind.is_some() && i.admin_up) {
        for a in i.addrs.iter().filter(|a| a.ip.is_ipv4()) {
            if a.dynamic {
                out.push(RouteView {
                    dst: "default".into(),
                    gateway: LAB_GATEWAY.parse().ok(),
                    dev: i.name.clone(),
                    protocol: Some("dhcp"),
                    scope_link: false,
                    prefsrc: Some(a.ip),
                    metric: Some(100),
                    linkdown: !i.carrier,
                });
            }
            if a.prefix < 32 {
                out.push(RouteView {
                    dst: format!("{}/{}", network(a.ip, a.prefix), a.prefix),
                    gateway: None,
                    dev: i.name.clone(),
                    protocol: Some("kernel"),
                    scope_link: true,
                    prefsrc: Some(a.ip),
                    metric: a.dynamic.then_some(100),
                    linkdown: !i.carrier,
                });
            }
        }
    }
    // Derived routes deleted by hand (`ip route del`) stay away until the next boot.
    out.retain(|r| {
        !g.os
            .runtime
            .removed_routes
            .contains(&format!("{} dev {}", r.dst, r.dev))
    });
    for r in g.os.routes.values() {
        let dev = r.dev.clone().or_else(|| {
            let via = r.via?;
            out.iter()
                .filter(|k| k.protocol == Some("kernel"))
                .find(|k| dst_contains(&k.dst, via))
                .map(|k| k.dev.clone())
        });
        let Some(dev) = dev else { continue };
        let Some(iface) = ifs.iter().find(|i| i.name == dev && i.admin_up) else {
            continue;
        };
        if r.dst == "default"
            && out
                .iter()
                .any(|o| o.dst == "default" && o.metric == r.metric)
        {
            // The kernel refuses a second default route with the same metric.
            continue;
        }
        out.push(RouteView {
            dst: r.dst.clone(),
            gateway: r.via,
            dev,
            protocol: None,
            scope_link: r.via.is_none(),
            prefsrc: None,
            metric: r.metric,
            linkdown: !iface.carrier,
        });
    }
    // The kernel dumps its FIB in address order (default = 0.0.0.0/0 first), then by
    // prefix length and metric.
    out.sort_by_key(|r| {
        let (net, prefix) = if r.dst == "default" {
            (0u32, 0u8)
        } else {
            match super::os::parse_cidr(&r.dst) {
                Some((IpAddr::V4(a), p)) => (u32::from(a), p),
                _ => (u32::MAX, 0),
            }
        };
        (net, prefix, r.metric.unwrap_or(0))
    });
    out
}

fn dst_contains(dst: &str, ip: IpAddr) -> bool {
    if dst == "default" {
        return ip.is_ipv4();
    }
    super::os::parse_cidr(dst).is_some_and(|(net, p)| contains(net, p, ip))
}

fn dst_prefix(dst: &str) -> u8 {
    if dst == "default" {
        0
    } else {
        super::os::parse_cidr(dst).map_or(0, |(_, p)| p)
    }
}

/// The route the guest's kernel picks for `dst` (longest prefix, then lowest metric).
pub(crate) fn route_to(routes: &[RouteView], dst: IpAddr) -> Option<&RouteView> {
    routes
        .iter()
        .filter(|r| dst_contains(&r.dst, dst))
        .max_by(|a, b| {
            dst_prefix(&a.dst)
                .cmp(&dst_prefix(&b.dst))
                .then(b.metric.unwrap_or(0).cmp(&a.metric.unwrap_or(0)))
        })
}

fn flags(i: &IfView) -> Vec<&'static str> {
    let mut f = Vec::new();
    match i.kind {
        None => f.push("LOOPBACK"),
        Some(_) => {
            if i.admin_up && !i.carrier {
                f.push("NO-CARRIER");
            }
            f.push("BROADCAST");
            f.push("MULTICAST");
        }
    }
    if i.admin_up {
        f.push("UP");
        if i.carrier {
            f.push("LOWER_UP");
        }
    }
    f
}

fn operstate(i: &IfView) -> &'static str {
    match i.kind {
        None => "UNKNOWN",
        Some(IfKind::Dummy) if i.admin_up => "UNKNOWN",
        Some(_) if i.running() => "UP",
        Some(_) if i.kind == Some(IfKind::Vlan) && i.admin_up => "LOWERLAYERDOWN",
        _ => "DOWN",
    }
}

/// One `ip -j link` object (`details` = `-d`).
fn link_json(i: &IfView, details: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ifindex".into(), json!(i.index));
    let name = match &i.link {
        Some(l) if i.kind == Some(IfKind::Vlan) => {
            m.insert("link".into(), json!(l));
            i.name.clone()
        }
        _ => i.name.clone(),
    };
    m.insert("ifname".into(), json!(name));
    m.insert("flags".into(), json!(flags(i)));
    m.insert("mtu".into(), json!(i.mtu));
    let qdisc = match i.kind {
        Some(IfKind::Ether) if i.nic.is_some() => "fq_codel",
        _ => "noqueue",
    };
    m.insert("qdisc".into(), json!(qdisc));
    if let Some(master) = &i.master {
        m.insert("master".into(), json!(master));
    }
    m.insert("operstate".into(), json!(operstate(i)));
    m.insert("linkmode".into(), json!("DEFAULT"));
    m.insert("group".into(), json!("default"));
    m.insert("txqlen".into(), json!(1000));
    m.insert(
        "link_type".into(),
        json!(if i.kind.is_none() {
            "loopback"
        } else {
            "ether"
        }),
    );
    m.insert("address".into(), json!(i.mac));
    m.insert(
        "broadcast".into(),
        json!(if i.kind.is_none() {
            "00:00:00:00:00:00"
        } else {
            "ff:ff:ff:ff:ff:ff"
        }),
    );
    if let Some(n) = i.nic.filter(|_| i.kind == Some(IfKind::Ether)) {
        m.insert("altnames".into(), json!([format!("enp0s{}", 18 + n)]));
    }
    if details {
        m.insert("promiscuity".into(), json!(0));
        m.insert("min_mtu".into(), json!(68));
        m.insert("max_mtu".into(), json!(65535));
        let mut info = Map::new();
        match i.kind {
            Some(IfKind::Vlan) => {
                info.insert("info_kind".into(), json!("vlan"));
                info.insert(
                    "info_data".into(),
                    json!({"protocol": "802.1Q", "id": i.vlan.unwrap_or(0), "flags": ["REORDER_HDR"]}),
                );
            }
            Some(IfKind::Bridge) => {
                info.insert("info_kind".into(), json!("bridge"));
                info.insert(
                    "info_data".into(),
                    json!({"forward_delay": 1500, "hello_time": 200, "max_age": 2000,
                           "stp_state": 0, "priority": 32768, "vlan_filtering": 0,
                           "vlan_protocol": "802.1Q"}),
                );
            }
            Some(IfKind::Dummy) => {
                info.insert("info_kind".into(), json!("dummy"));
            }
            _ => {}
        }
        if i.master.is_some() {
            info.insert("info_slave_kind".into(), json!("bridge"));
        }
        if !info.is_empty() {
            m.insert("linkinfo".into(), Value::Object(info));
        }
    }
    m
}

/// `ip -j link show` (or `ip -j addr show` with `addrs`), optionally of one device.
pub(crate) fn ip_json(ifs: &[IfView], details: bool, addrs: bool, family: Option<u8>) -> Value {
    Value::Array(
        ifs.iter()
            .map(|i| {
                let mut m = link_json(i, details);
                if addrs {
                    let list: Vec<Value> = i
                        .addrs
                        .iter()
                        .filter(|a| match family {
                            Some(4) => a.ip.is_ipv4(),
                            Some(6) => a.ip.is_ipv6(),
                            _ => true,
                        })
                        .map(|a| addr_json(i, a))
                        .collect();
                    m.insert("addr_info".into(), Value::Array(list));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

fn addr_json(i: &IfView, a: &AddrView) -> Value {
    let mut m = Map::new();
    let forever = 4_294_967_295u64;
    match a.ip {
        IpAddr::V4(v4) => {
            m.insert("family".into(), json!("inet"));
            m.insert("local".into(), json!(a.ip.to_string()));
            m.insert("prefixlen".into(), json!(a.prefix));
            if a.prefix < 31 {
                m.insert(
                    "broadcast".into(),
                    json!(broadcast_v4(v4, a.prefix).to_string()),
                );
            }
            let scope = if v4.is_loopback() { "host" } else { "global" };
            m.insert("scope".into(), json!(scope));
            if a.dynamic {
                m.insert("dynamic".into(), json!(true));
            }
            m.insert("label".into(), json!(i.name));
        }
        IpAddr::V6(v6) => {
            m.insert("family".into(), json!("inet6"));
            m.insert("local".into(), json!(a.ip.to_string()));
            m.insert("prefixlen".into(), json!(a.prefix));
            let scope = if v6.is_loopback() {
                "host"
            } else if v6.segments()[0] & 0xffc0 == 0xfe80 {
                "link"
            } else {
                "global"
            };
            m.insert("scope".into(), json!(scope));
            if v6.is_loopback() {
                m.insert("noprefixroute".into(), json!(true));
            }
        }
    }
    let life = if a.dynamic { 86_000 } else { forever };
    m.insert("valid_life_time".into(), json!(life));
    m.insert("preferred_life_time".into(), json!(life));
    Value::Object(m)
}

/// `ip -j route show`.
pub(crate) fn route_json(routes: &[RouteView]) -> Value {
    Value::Array(
        routes
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("dst".into(), json!(r.dst));
                if let Some(gw) = r.gateway {
                    m.insert("gateway".into(), json!(gw.to_string()));
                }
                m.insert("dev".into(), json!(r.dev));
                if let Some(p) = r.protocol {
                    m.insert("protocol".into(), json!(p));
                }
                if r.scope_link {
                    m.insert("scope".into(), json!("link"));
                }
                if let Some(src) = r.prefsrc {
                    m.insert("prefsrc".into(), json!(src.to_string()));
                }
                if let Some(metric) = r.metric {
                    m.insert("metric".into(), json!(metric));
                }
                let f: Vec<&str> = if r.linkdown { vec!["linkdown"] } else { vec![] };
                m.insert("flags".into(), json!(f));
                Value::Object(m)
            })
            .collect(),
    )
}

/// `ip route` as text.
pub(crate) fn route_text(routes: &[RouteView]) -> String {
    let mut s = String::new();
    for r in routes {
        s.push_str(&r.dst);
        if let Some(gw) = r.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        s.push_str(&format!(" dev {}", r.dev));
        if let Some(p) = r.protocol {
            s.push_str(&format!(" proto {p}"));
        }
        if r.scope_link {
            s.push_str(" scope link");
        }
        if let Some(src) = r.prefsrc {
            s.push_str(&format!(" src {src}"));
        }
        if let Some(m) = r.metric {
            s.push_str(&format!(" metric {m}"));
        }
        if r.linkdown {
            s.push_str(" linkdown");
        }
        s.push_str(" \n");
    }
    s
}

/// `ip addr` / `ip link` as text.
pub(crate) fn ip_text(ifs: &[IfView], details: bool, addrs: bool) -> String {
    let mut s = String::new();
    for i in ifs {
        let name = match (&i.link, i.kind) {
            (Some(l), Some(IfKind::Vlan)) => format!("{}@{l}", i.name),
            _ => i.name.clone(),
        };
        let link = link_json(i, details);
        s.push_str(&format!(
            "{}: {name}: <{}> mtu {} qdisc {}{} state {} group default qlen 1000\n",
            i.index,
            flags(i).join(","),
            i.mtu,
            link["qdisc"].as_str().unwrap_or("noqueue"),
            i.master
                .as_ref()
                .map(|m| format!(" master {m}"))
                .unwrap_or_default(),
            operstate(i),
        ));
        let lt = if i.kind.is_none() {
            "loopback"
        } else {
            "ether"
        };
        let brd = if i.kind.is_none() {
            "00:00:00:00:00:00"
        } else {
            "ff:ff:ff:ff:ff:ff"
        };
        s.push_str(&format!("    link/{lt} {} brd {brd}\n", i.mac));
        if details {
            if let (Some(IfKind::Vlan), Some(id)) = (i.kind, i.vlan) {
                s.push_str(&format!(
                    "    vlan protocol 802.1Q id {id} <REORDER_HDR> \n"
                ));
            }
            if i.kind == Some(IfKind::Bridge) {
                s.push_str("    bridge forward_delay 1500 hello_time 200 max_age 2000 stp_state 0 priority 32768 vlan_filtering 0 \n");
            }
        }
        if let Some(n) = i.nic.filter(|_| i.kind == Some(IfKind::Ether)) {
            s.push_str(&format!("    altname enp0s{}\n", 18 + n));
        }
        if addrs {
            for a in &i.addrs {
                let fam = if a.ip.is_ipv4() { "inet" } else { "inet6" };
                let mut line = format!("    {fam} {}/{}", a.ip, a.prefix);
                if let IpAddr::V4(v4) = a.ip {
                    if a.prefix < 31 {
                        line.push_str(&format!(" brd {}", broadcast_v4(v4, a.prefix)));
                    }
                }
                let v = addr_json(i, a);
                line.push_str(&format!(
                    " scope {}",
                    v["scope"].as_str().unwrap_or("global")
                ));
                if a.dynamic {
                    line.push_str(" dynamic");
                }
                if a.ip.is_ipv4() {
                    line.push_str(&format!(" {}", i.name));
                }
                s.push_str(&line);
                s.push('\n');
                let life = if a.dynamic { "86000sec" } else { "forever" };
                s.push_str(&format!("       valid_lft {life} preferred_lft {life}\n"));
            }
        }
    }
    s
}

/// `guest-network-get-interfaces`: every interface with its MAC and addresses.
pub(crate) fn agent_json(ifs: &[IfView]) -> Value {
    Value::Array(
        ifs.iter()
            .map(|i| {
                let addrs: Vec<Value> = i
                    .addrs
                    .iter()
                    .map(|a| {
                        json!({
                            "ip-address": a.ip.to_string(),
                            "ip-address-type": if a.ip.is_ipv4() { "ipv4" } else { "ipv6" },
                            "prefix": a.prefix,
                        })
                    })
                    .collect();
                let mut m = Map::new();
                m.insert("name".into(), json!(i.name));
                m.insert("hardware-address".into(), json!(i.mac));
                m.insert("ip-addresses".into(), Value::Array(addrs));
                if i.kind.is_none() {
                    m.insert(
                        "statistics".into(),
                        json!({"rx-bytes": 6480, "rx-packets": 84, "tx-bytes": 6480, "tx-packets": 84,
                               "rx-errs": 0, "rx-dropped": 0, "tx-errs": 0, "tx-dropped": 0}),
                    );
                }
                Value::Object(m)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_broadcasts() {
        let ip: IpAddr = "10.10.12.34".parse().unwrap();
        assert_eq!(network(ip, 16).to_string(), "10.10.0.0");
        assert_eq!(
            broadcast_v4("10.10.12.34".parse().unwrap(), 16).to_string(),
            "10.10.255.255"
        );
        assert!(contains("10.10.0.0".parse().unwrap(), 16, ip));
        assert!(!contains("10.11.0.0".parse().unwrap(), 16, ip));
        assert_eq!(network(ip, 0).to_string(), "0.0.0.0");
    }
}
