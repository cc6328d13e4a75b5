//! The reachability oracle: would `pve-firewall` (iptables backend) let a new packet
//! from one host reach another? Follows Part B.2–B.5 of the firewall reference.
//!
//! Modelled: the three switches (cluster `enable`, guest `enable`, NIC `firewall=1`),
//! the sender's OUT chain then the receiver's IN chain, implicit DHCP accepts, the
//! `ipfilter` drop, the cluster `blacklist` set on the receiving bridge, user rules in
//! order (first match wins), security groups (ACCEPT in a group accepts, DROP/REJECT are
//! final, no match continues), macros, IP sets, aliases, address lists and ranges,
//! protocols and destination ports, and the chain policies (guest defaults IN DROP,
//! OUT ACCEPT).
//!
//! Not modelled: connection tracking (every probe is a new connection), host/node
//! chains (a [`Host`] is a guest or an external address, so datacenter and node rules
//! and the cluster policies never apply, as for real guest traffic), MAC filtering (the
//! probe uses the NIC's own MAC), NDP/router advertisements. A probe's source port is
//! the ephemeral port [`EPHEMERAL_SOURCE_PORT`]; an ICMP probe is an echo request.

use std::net::IpAddr;

use super::address::{parse_addr_spec, parse_net, Ctx};
use super::catalog;
use super::options;
use super::rules::{self, parse_ports, Rule, Target};
use super::{Firewall, FwFile, Host, Proto, Scope, Verdict};

/// The source port of TCP/UDP probes, for rules with `sport`.
pub const EPHEMERAL_SOURCE_PORT: u16 = 40000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

impl Dir {
    fn label(self) -> &'static str {
        match self {
            Self::In => "IN",
            Self::Out => "OUT",
        }
    }

    fn rule_type(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Packet {
    src: IpAddr,
    dst: IpAddr,
    proto: Proto,
    dport: Option<u16>,
    v6: bool,
}

/// What a chain decided, with the deciding chain and rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Accept(String),
    Drop(String),
    Reject(String),
}

impl Decision {
    fn from_action(action: &str, what: String) -> Self {
        match action {
            "ACCEPT" => Self::Accept(what),
            "REJECT" => Self::Reject(what),
            _ => Self::Drop(what),
        }
    }
}

pub(super) fn evaluate(
    fw: &Firewall,
    from: &Host,
    to: &Host,
    proto: Proto,
    port: Option<u16>,
) -> Verdict {
    let accept = |reason: String| Verdict {
        allowed: true,
        reason,
    };
    if options::int(Some(&fw.cluster), "enable").unwrap_or(0) == 0 {
        return accept("accepted: cluster firewall disabled".to_owned());
    }
    if from.vmid.is_some() && from.vmid == to.vmid {
        return accept("accepted: source and destination are the same guest".to_owned());
    }
    if from.ip.is_ipv4() != to.ip.is_ipv4() {
        return Verdict {
            allowed: false,
            reason: format!(
                "no path: {} and {} are of different address families",
                from.ip, to.ip
            ),
        };
    }
    let pkt = Packet {
        src: from.ip,
        dst: to.ip,
        proto,
        dport: port,
        v6: from.ip.is_ipv6(),
    };
    let mut parts = Vec::new();
    for (host, dir) in [(from, Dir::Out), (to, Dir::In)] {
        match side(fw, host, dir, &pkt) {
            Decision::Accept(why) => parts.push(why),
            Decision::Drop(why) => {
                return Verdict {
                    allowed: false,
                    reason: format!("dropped by {why}"),
                }
            }
            Decision::Reject(why) => {
                return Verdict {
                    allowed: false,
                    reason: format!("rejected by {why}"),
                }
            }
        }
    }
    accept(format!("accepted: {}", parts.join("; ")))
}

/// One end of the path: is there a chain, and what does it decide?
fn side(fw: &Firewall, host: &Host, dir: Dir, pkt: &Packet) -> Decision {
    let label = dir.label();
    let Some(vmid) = host.vmid else {
        return Decision::Accept(format!("{} {label}: not a guest, not filtered", host.ip));
    };
    // B.4: the packet uses net0, or the lowest-numbered NIC.
    let nic = host
        .nics
        .iter()
        .find(|n| n.index == 0)
        .or_else(|| host.nics.iter().min_by_key(|n| n.index));
    let Some(nic) = nic else {
        return Decision::Accept(format!("{vmid} {label}: not filtered (no network device)"));
    };
    if !nic.firewall {
        return Decision::Accept(format!(
            "{vmid} {label}: not filtered (net{} has no firewall=1)",
            nic.index
        ));
    }
    if dir == Dir::In {
        // PVEFW-FWBR-IN drops the blacklist before any tap chain (B.5).
        let cluster_ctx = Ctx {
            cluster: &fw.cluster,
            local: None,
        };
        if fw
            .cluster
            .ipsets
            .get("blacklist")
            .is_some_and(|set| set.contains(pkt.src, &cluster_ctx))
        {
            return Decision::Drop(format!(
                "PVEFW-FWBR-IN: source {} is in ipset 'blacklist'",
                pkt.src
            ));
        }
    }
    let file = fw.guests.get(&vmid);
    if options::int(file, "enable") != Some(1) {
        return Decision::Accept(format!(
            "{vmid} {label}: not filtered (firewall not enabled in {vmid}.fw options)"
        ));
    }
    match file {
        Some(file) => chain(fw, vmid, file, nic.index, dir, pkt),
        None => Decision::Accept(format!("{vmid} {label}: not filtered (no {vmid}.fw)")),
    }
}

/// A guest's `tap<vmid>i<n>-IN/OUT` chain.
fn chain(fw: &Firewall, vmid: u32, file: &FwFile, nic: u32, dir: Dir, pkt: &Packet) -> Decision {
    let label = format!("{vmid} {}", dir.label());
    let opts = Some(file);

    // Implicit DHCP accepts unless `dhcp: 0` is set explicitly (B.5).
    if options::int(opts, "dhcp") != Some(0) && pkt.proto == Proto::Udp {
        let dhcp_port = match (dir, pkt.v6) {
            (Dir::Out, false) => 67,
            (Dir::In, false) => 68,
            (Dir::Out, true) => 547,
            (Dir::In, true) => 546,
        };
        if pkt.dport == Some(dhcp_port) {
            return Decision::Accept(format!("{label}: implicit DHCP rule"));
        }
    }

    let scope = Scope::Guest(vmid);
    let ctx = rules::ctx(fw, Target::Level(&scope));
    if dir == Dir::Out {
        let set_name = format!("ipfilter-net{nic}");
        let set = file.ipsets.get(&set_name);
        if options::int(opts, "ipfilter") == Some(1) || set.is_some() {
            let link_local = pkt.v6 && parse_net("fe80::/10").is_some_and(|n| n.contains(pkt.src));
            if !link_local && !set.is_some_and(|s| s.contains(pkt.src, &ctx)) {
                return Decision::Drop(format!(
                    "{label}: ipfilter (source {} not in ipset {set_name})",
                    pkt.src
                ));
            }
        }
    }

    let iface = format!("net{nic}");
    let version = if pkt.v6 { 6 } else { 4 };
    for (pos, (rule, checked)) in rules::checked(fw, Target::Level(&scope), &file.rules)
        .into_iter()
        .enumerate()
    {
        if rule.get("iface").is_some_and(|i| i != iface)
            || !rule.enabled()
            || !checked.errors.is_empty()
            || checked.ipversion.is_some_and(|v| v != version)
        {
            continue;
        }
        match rule.get("type") {
            Some("group") => {
                let name = rule.get("action").unwrap_or_default();
                // A missing group (e.g. named with capitals) is an empty chain.
                let Some(group) = fw.groups.get(name) else {
                    continue;
                };
                let group_ctx = rules::ctx(fw, Target::Group(name));
                for (gpos, (grule, gchecked)) in
                    rules::checked(fw, Target::Group(name), &group.rules)
                        .into_iter()
                        .enumerate()
                {
                    if grule.get("type") != Some(dir.rule_type())
                        || !grule.enabled()
                        || !gchecked.errors.is_empty()
                        || gchecked.ipversion.is_some_and(|v| v != version)
                    {
                        continue;
                    }
                    if matches(grule, &group_ctx, pkt) {
                        let what =
                            format!("{label}: group {name} rule {gpos} ({})", grule.describe());
                        return Decision::from_action(
                            grule.get("action").unwrap_or_default(),
                            what,
                        );
                    }
                }
            }
            Some(t) if t == dir.rule_type() => {
                if matches(rule, &ctx, pkt) {
                    let what = format!("{label}: rule {pos} ({})", rule.describe());
                    return Decision::from_action(rule.get("action").unwrap_or_default(), what);
                }
            }
            _ => {}
        }
    }

    let (key, default) = match dir {
        Dir::In => ("policy_in", "DROP"),
        Dir::Out => ("policy_out", "ACCEPT"),
    };
    let policy = options::text(opts, key).unwrap_or(default);
    Decision::from_action(policy, format!("{label}: policy {policy}"))
}

/// Does the rule match the packet? Macros match when any of their lines does.
fn matches(rule: &Rule, ctx: &Ctx<'_>, pkt: &Packet) -> bool {
    for (key, ip) in [("source", pkt.src), ("dest", pkt.dst)] {
        if let Some(spec) = rule.get(key) {
            match parse_addr_spec(spec) {
                Ok((spec, _)) if ctx.matches(&spec, ip) => {}
                _ => return false,
            }
        }
    }
    let icmp_type = rule.get("icmp-type");
    match rule.get("macro").and_then(catalog::find_macro) {
        Some(m) => m
            .lines
            .iter()
            .any(|line| match_l4(Some(line.proto), line.dport, line.sport, icmp_type, pkt)),
        None => match_l4(
            rule.get("proto"),
            rule.get("dport"),
            rule.get("sport"),
            icmp_type,
            pkt,
        ),
    }
}

/// An ICMP probe is an echo request.
fn icmp_type_matches(spec: &str, v6: bool) -> bool {
    spec.split(',')
        .any(|t| matches!(t, "any" | "echo-request") || (!v6 && t == "8") || (v6 && t == "128"))
}

fn match_l4(
    proto: Option<&str>,
    dport: Option<&str>,
    sport: Option<&str>,
    icmp_type: Option<&str>,
    pkt: &Packet,
) -> bool {
    if let Some(p) = proto {
        let ok = match pkt.proto {
            // Macro lines say `icmp`; PVE swaps in the ICMPv6 variant for IPv6.
            Proto::Icmp => catalog::is_icmp(p),
            Proto::Tcp => catalog::protocol_number(p) == Some(6),
            Proto::Udp => catalog::protocol_number(p) == Some(17),
        };
        if !ok {
            return false;
        }
    }
    let in_ranges = |spec: &str, port: u16| {
        parse_ports(spec, false)
            .is_ok_and(|ranges| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)))
    };
    if let Some(d) = dport {
        let ok = match pkt.proto {
            Proto::Icmp => icmp_type_matches(d, pkt.v6),
            Proto::Tcp | Proto::Udp => pkt.dport.is_some_and(|p| in_ranges(d, p)),
        };
        if !ok {
            return false;
        }
    }
    if let Some(s) = sport {
        if pkt.proto == Proto::Icmp || !in_ranges(s, EPHEMERAL_SOURCE_PORT) {
            return false;
        }
    }
    if let Some(t) = icmp_type {
        if pkt.proto != Proto::Icmp || !icmp_type_matches(t, pkt.v6) {
            return false;
        }
    }
    true
}
