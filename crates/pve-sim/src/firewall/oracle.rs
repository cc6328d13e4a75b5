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
    if fw.cluster_enable() == 0 {
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
            Some(t) if t == dir.rule_type() && matches(rule, &ctx, pkt) => {
                let what = format!("{label}: rule {pos} ({})", rule.describe());
                return Decision::from_action(rule.get("action").unwrap_or_default(), what);
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

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use super::super::Nic;
    use super::*;

    fn ok(fw: &mut Firewall, scope: &Scope, method: &str, rest: &[&str], params: &[(&str, &str)]) {
        call(fw, scope, method, rest, params).unwrap_or_else(|e| panic!("{method} {rest:?}: {e}"));
    }

    fn guest(vmid: u32, ip: &str, firewall: bool) -> Host {
        Host {
            vmid: Some(vmid),
            ip: ip.parse().expect("test address"),
            nics: vec![Nic { index: 0, firewall }],
        }
    }

    fn external(ip: &str) -> Host {
        Host {
            vmid: None,
            ip: ip.parse().expect("test address"),
            nics: Vec::new(),
        }
    }

    const TEACHER: &str = "10.10.0.1";
    const DNS: &str = "10.10.0.2";

    fn teacher() -> Host {
        guest(100, TEACHER, false)
    }

    /// B.10: cluster sets and the `iso-student` group, cluster firewall on. Rules are
    /// created bottom-up because the API inserts at the top (B.11 #5).
    fn lab() -> Firewall {
        let mut fw = Firewall::new();
        let c = Scope::Cluster;
        ok(&mut fw, &c, "POST", &["ipset"], &[("name", "iso-teacher")]);
        ok(
            &mut fw,
            &c,
            "POST",
            &["ipset", "iso-teacher"],
            &[("cidr", TEACHER)],
        );
        ok(&mut fw, &c, "POST", &["ipset"], &[("name", "iso-dns")]);
        ok(&mut fw, &c, "POST", &["ipset", "iso-dns"], &[("cidr", DNS)]);
        ok(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[("group", "iso-student")],
        );
        let g = ["groups", "iso-student"];
        ok(
            &mut fw,
            &c,
            "POST",
            &g,
            &[("type", "out"), ("action", "DROP"), ("enable", "1")],
        );
        ok(
            &mut fw,
            &c,
            "POST",
            &g,
            &[("type", "in"), ("action", "DROP"), ("enable", "1")],
        );
        ok(
            &mut fw,
            &c,
            "POST",
            &g,
            &[
                ("type", "out"),
                ("action", "ACCEPT"),
                ("macro", "DNS"),
                ("dest", "+iso-dns"),
                ("enable", "1"),
            ],
        );
        ok(
            &mut fw,
            &c,
            "POST",
            &g,
            &[
                ("type", "out"),
                ("action", "ACCEPT"),
                ("dest", "+iso-teacher"),
                ("enable", "1"),
            ],
        );
        ok(
            &mut fw,
            &c,
            "POST",
            &g,
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "+iso-teacher"),
                ("enable", "1"),
            ],
        );
        ok(&mut fw, &c, "PUT", &["options"], &[("enable", "1")]);
        fw
    }

    /// The per-student half of B.10.
    fn isolate(fw: &mut Firewall, vmid: u32) {
        let s = Scope::Guest(vmid);
        ok(
            fw,
            &s,
            "PUT",
            &["options"],
            &[("enable", "1"), ("dhcp", "1")],
        );
        ok(
            fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "group"),
                ("action", "iso-student"),
                ("enable", "1"),
                ("comment", "labctl"),
            ],
        );
    }

    fn verdict(fw: &Firewall, from: &Host, to: &Host, proto: Proto, port: Option<u16>) -> Verdict {
        fw.reachability(from, to, proto, port)
    }

    #[test]
    fn nothing_filters_while_the_cluster_firewall_is_off() {
        let mut fw = lab();
        isolate(&mut fw, 101);
        isolate(&mut fw, 102);
        ok(
            &mut fw,
            &Scope::Cluster,
            "PUT",
            &["options"],
            &[("enable", "0")],
        );
        let v = verdict(
            &fw,
            &guest(101, "10.10.1.1", true),
            &guest(102, "10.10.1.2", true),
            Proto::Tcp,
            Some(22),
        );
        assert_eq!(
            v,
            Verdict {
                allowed: true,
                reason: "accepted: cluster firewall disabled".into()
            }
        );
    }

    #[test]
    fn students_are_isolated_from_each_other_in_both_directions() {
        let mut fw = lab();
        isolate(&mut fw, 101);
        isolate(&mut fw, 102);
        let (a, b) = (guest(101, "10.10.1.1", true), guest(102, "10.10.1.2", true));
        let v = verdict(&fw, &a, &b, Proto::Tcp, Some(22));
        assert_eq!(
            v.reason,
            "dropped by 101 OUT: group iso-student rule 4 (out DROP)"
        );
        assert!(!v.allowed);
        let v = verdict(&fw, &b, &a, Proto::Icmp, None);
        assert_eq!(
            v.reason,
            "dropped by 102 OUT: group iso-student rule 4 (out DROP)"
        );
        // One isolated side is enough: the receiver's IN chain drops too (B.4).
        let free = guest(103, "10.10.1.3", true);
        let v = verdict(&fw, &free, &b, Proto::Udp, Some(5000));
        assert_eq!(
            v.reason,
            "dropped by 102 IN: group iso-student rule 3 (in DROP)"
        );
    }

    #[test]
    fn students_and_teacher_reach_each_other() {
        let mut fw = lab();
        isolate(&mut fw, 101);
        let s = guest(101, "10.10.1.1", true);
        let v = verdict(&fw, &s, &teacher(), Proto::Tcp, Some(22));
        assert!(v.allowed, "{}", v.reason);
        assert_eq!(
            v.reason,
            "accepted: 101 OUT: group iso-student rule 1 (out ACCEPT -dest +iso-teacher); \
             100 IN: not filtered (net0 has no firewall=1)"
        );
        let v = verdict(&fw, &teacher(), &s, Proto::Tcp, Some(3389));
        assert!(v.allowed, "{}", v.reason);
        assert!(
            v.reason
                .contains("101 IN: group iso-student rule 0 (in ACCEPT -source +iso-teacher)"),
            "{}",
            v.reason
        );
        // DNS to the DNS set only, by the macro's protocols and port.
        let dns = external(DNS);
        assert!(verdict(&fw, &s, &dns, Proto::Udp, Some(53)).allowed);
        assert!(verdict(&fw, &s, &dns, Proto::Tcp, Some(53)).allowed);
        assert!(!verdict(&fw, &s, &dns, Proto::Tcp, Some(80)).allowed);
        assert!(!verdict(&fw, &s, &external("8.8.8.8"), Proto::Udp, Some(53)).allowed);
        // Nobody else may open connections to the student.
        let v = verdict(&fw, &external("192.0.2.9"), &s, Proto::Tcp, Some(22));
        assert_eq!(
            v.reason,
            "dropped by 101 IN: group iso-student rule 3 (in DROP)"
        );
    }

    #[test]
    fn dhcp_is_implicit_unless_switched_off() {
        let mut fw = lab();
        isolate(&mut fw, 101);
        let s = guest(101, "10.10.1.1", true);
        let server = external("10.10.0.254");
        let v = verdict(&fw, &s, &server, Proto::Udp, Some(67));
        assert!(v.allowed, "{}", v.reason);
        assert!(
            v.reason
                .starts_with("accepted: 101 OUT: implicit DHCP rule"),
            "{}",
            v.reason
        );
        assert!(verdict(&fw, &server, &s, Proto::Udp, Some(68)).allowed);
        ok(
            &mut fw,
            &Scope::Guest(101),
            "PUT",
            &["options"],
            &[("dhcp", "0")],
        );
        assert!(!verdict(&fw, &s, &server, Proto::Udp, Some(67)).allowed);
    }

    #[test]
    fn pitfall_nic_without_firewall_flag_leaves_traffic_open() {
        let mut fw = lab();
        isolate(&mut fw, 101);
        let unplugged = guest(101, "10.10.1.1", false);
        let v = verdict(&fw, &unplugged, &external("8.8.8.8"), Proto::Tcp, Some(443));
        assert_eq!(
            v.reason,
            "accepted: 101 OUT: not filtered (net0 has no firewall=1); 8.8.8.8 IN: not a guest, not filtered"
        );
        assert!(
            verdict(
                &fw,
                &external("192.0.2.9"),
                &unplugged,
                Proto::Tcp,
                Some(22)
            )
            .allowed
        );
        // A guest without NICs has no tap chain either.
        let no_nic = Host {
            nics: Vec::new(),
            ..unplugged
        };
        assert!(verdict(&fw, &no_nic, &external("8.8.8.8"), Proto::Tcp, Some(443)).allowed);
    }

    #[test]
    fn pitfall_guest_enable_zero_leaves_traffic_open() {
        let mut fw = lab();
        isolate(&mut fw, 101);
        ok(
            &mut fw,
            &Scope::Guest(101),
            "PUT",
            &["options"],
            &[("enable", "0")],
        );
        let s = guest(101, "10.10.1.1", true);
        let v = verdict(
            &fw,
            &s,
            &guest(102, "10.10.1.2", true),
            Proto::Tcp,
            Some(22),
        );
        assert!(v.allowed);
        assert!(
            v.reason
                .contains("101 OUT: not filtered (firewall not enabled in 101.fw options)"),
            "{}",
            v.reason
        );
        assert!(
            v.reason
                .contains("102 IN: not filtered (firewall not enabled in 102.fw options)"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn pitfall_rule_created_without_enable_is_a_no_op() {
        let mut fw = lab();
        let s = Scope::Guest(101);
        ok(&mut fw, &s, "PUT", &["options"], &[("enable", "1")]);
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[("type", "group"), ("action", "iso-student")],
        );
        let student = guest(101, "10.10.1.1", true);
        // Without the group only the default policies remain: outbound is wide open.
        let v = verdict(&fw, &student, &external("8.8.8.8"), Proto::Tcp, Some(443));
        assert_eq!(
            v.reason,
            "accepted: 101 OUT: policy ACCEPT; 8.8.8.8 IN: not a guest, not filtered"
        );
        let v = verdict(
            &fw,
            &student,
            &guest(102, "10.10.1.2", false),
            Proto::Tcp,
            Some(22),
        );
        assert!(v.allowed, "student reaches another student: {}", v.reason);
        ok(&mut fw, &s, "PUT", &["rules", "0"], &[("enable", "1")]);
        assert!(!verdict(&fw, &student, &external("8.8.8.8"), Proto::Tcp, Some(443)).allowed);
    }

    #[test]
    fn pitfall_missing_ipset_skips_the_rule() {
        let mut fw = lab();
        let s = Scope::Guest(101);
        ok(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["ipset"],
            &[("name", "exam-block")],
        );
        ok(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["ipset", "exam-block"],
            &[("cidr", "10.10.0.50")],
        );
        ok(&mut fw, &s, "PUT", &["options"], &[("enable", "1")]);
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "out"),
                ("action", "DROP"),
                ("dest", "+exam-block"),
                ("enable", "1"),
            ],
        );
        let student = guest(101, "10.10.1.1", true);
        let target = external("10.10.0.50");
        let v = verdict(&fw, &student, &target, Proto::Tcp, Some(80));
        assert_eq!(
            v.reason,
            "dropped by 101 OUT: rule 0 (out DROP -dest +exam-block)"
        );
        ok(
            &mut fw,
            &Scope::Cluster,
            "DELETE",
            &["ipset", "exam-block"],
            &[("force", "1")],
        );
        let v = verdict(&fw, &student, &target, Proto::Tcp, Some(80));
        assert!(
            v.allowed,
            "a DROP lost opens traffic (B.11 #4): {}",
            v.reason
        );
        let rules = call(&mut fw, &s, "GET", &["rules"], &[]).expect("list");
        assert_eq!(rules[0]["errors"]["dest"], "no such ipset 'exam-block'");
    }

    #[test]
    fn pitfall_group_named_with_capitals_is_an_empty_chain() {
        let mut fw = lab();
        let s = Scope::Guest(101);
        ok(&mut fw, &s, "PUT", &["options"], &[("enable", "1")]);
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "group"),
                ("action", "ISO-Student"),
                ("enable", "1"),
            ],
        );
        let v = verdict(
            &fw,
            &guest(101, "10.10.1.1", true),
            &external("8.8.8.8"),
            Proto::Tcp,
            Some(443),
        );
        assert!(v.allowed, "{}", v.reason);
    }

    #[test]
    fn macros_aliases_ranges_and_port_lists_match() {
        let mut fw = lab();
        let s = Scope::Guest(110);
        let server = guest(110, "10.10.2.10", true);
        ok(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["aliases"],
            &[("name", "admin"), ("cidr", "10.10.0.0/28")],
        );
        ok(&mut fw, &s, "PUT", &["options"], &[("enable", "1")]);
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("macro", "SSH"),
                ("source", "admin"),
                ("enable", "1"),
            ],
        );
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "tcp"),
                ("dport", "80,443,8000:8080"),
                ("enable", "1"),
            ],
        );
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("macro", "Ping"),
                ("source", "10.10.3.1-10.10.3.9"),
                ("enable", "1"),
            ],
        );
        let admin = external("10.10.0.5");
        assert!(verdict(&fw, &admin, &server, Proto::Tcp, Some(22)).allowed);
        assert!(!verdict(&fw, &admin, &server, Proto::Tcp, Some(23)).allowed);
        assert!(!verdict(&fw, &external("10.10.0.16"), &server, Proto::Tcp, Some(22)).allowed);
        for port in [80, 443, 8000, 8042, 8080] {
            assert!(
                verdict(&fw, &admin, &server, Proto::Tcp, Some(port)).allowed,
                "{port}"
            );
        }
        assert!(!verdict(&fw, &admin, &server, Proto::Tcp, Some(8081)).allowed);
        assert!(!verdict(&fw, &admin, &server, Proto::Udp, Some(80)).allowed);
        assert!(
            !verdict(&fw, &admin, &server, Proto::Tcp, None).allowed,
            "port rules need a port"
        );
        let pinger = external("10.10.3.5");
        let v = verdict(&fw, &pinger, &server, Proto::Icmp, None);
        assert!(v.allowed, "{}", v.reason);
        assert!(
            v.reason
                .contains("110 IN: rule 0 (in Ping(ACCEPT) -source 10.10.3.1-10.10.3.9)"),
            "{}",
            v.reason
        );
        assert!(!verdict(&fw, &external("10.10.3.10"), &server, Proto::Icmp, None).allowed);
        assert_eq!(
            verdict(&fw, &external("10.10.9.9"), &server, Proto::Icmp, None).reason,
            "dropped by 110 IN: policy DROP"
        );
    }

    #[test]
    fn guest_sets_shadow_cluster_sets_and_groups_see_only_cluster_sets() {
        let mut fw = lab();
        let s = Scope::Guest(101);
        ok(&mut fw, &s, "POST", &["ipset"], &[("name", "iso-teacher")]);
        ok(
            &mut fw,
            &s,
            "POST",
            &["ipset", "iso-teacher"],
            &[("cidr", "10.10.0.99")],
        );
        ok(&mut fw, &s, "PUT", &["options"], &[("enable", "1")]);
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "+iso-teacher"),
                ("enable", "1"),
            ],
        );
        let student = guest(101, "10.10.1.1", true);
        assert!(verdict(&fw, &external("10.10.0.99"), &student, Proto::Tcp, Some(22)).allowed);
        assert!(!verdict(&fw, &external(TEACHER), &student, Proto::Tcp, Some(22)).allowed);
        // `+dc/` forces the datacenter set.
        ok(
            &mut fw,
            &s,
            "PUT",
            &["rules", "0"],
            &[("source", "+dc/iso-teacher")],
        );
        assert!(verdict(&fw, &external(TEACHER), &student, Proto::Tcp, Some(22)).allowed);
        // Group rules cannot use a guest's sets (B.7).
        ok(&mut fw, &s, "POST", &["ipset"], &[("name", "mine")]);
        let e = call(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["groups", "iso-student"],
            &[("type", "in"), ("action", "ACCEPT"), ("source", "+mine")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["source"],
            "no such ipset 'mine'"
        );
    }

    #[test]
    fn iface_rules_apply_to_their_nic_only_and_ipversion_must_fit() {
        let mut fw = lab();
        let s = Scope::Guest(101);
        ok(&mut fw, &s, "PUT", &["options"], &[("enable", "1")]);
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("iface", "net1"),
                ("enable", "1"),
            ],
        );
        ok(
            &mut fw,
            &s,
            "POST",
            &["rules"],
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "fd00::/8"),
                ("enable", "1"),
            ],
        );
        let two_nics = Host {
            vmid: Some(101),
            ip: "10.10.1.1".parse().expect("address"),
            nics: vec![
                Nic {
                    index: 1,
                    firewall: true,
                },
                Nic {
                    index: 0,
                    firewall: true,
                },
            ],
        };
        assert!(!verdict(&fw, &external("10.10.0.5"), &two_nics, Proto::Tcp, Some(22)).allowed);
        let only_net1 = Host {
            nics: vec![Nic {
                index: 1,
                firewall: true,
            }],
            ..two_nics.clone()
        };
        let v = verdict(
            &fw,
            &external("10.10.0.5"),
            &only_net1,
            Proto::Tcp,
            Some(22),
        );
        assert!(
            v.reason.contains("101 IN: rule 1 (in ACCEPT -i net1)"),
            "{}",
            v.reason
        );
        let v6 = Host {
            ip: "fd00::11".parse().expect("address"),
            ..two_nics
        };
        let v = verdict(&fw, &external("fd00::5"), &v6, Proto::Tcp, Some(22));
        assert!(
            v.reason
                .contains("101 IN: rule 0 (in ACCEPT -source fd00::/8)"),
            "{}",
            v.reason
        );
        let mixed = verdict(&fw, &external("10.10.0.5"), &v6, Proto::Tcp, Some(22));
        assert!(!mixed.allowed);
    }

    #[test]
    fn guest_policies_override_defaults_and_reject_is_reported() {
        let mut fw = lab();
        let s = Scope::Guest(101);
        ok(
            &mut fw,
            &s,
            "PUT",
            &["options"],
            &[
                ("enable", "1"),
                ("policy_in", "ACCEPT"),
                ("policy_out", "REJECT"),
            ],
        );
        let student = guest(101, "10.10.1.1", true);
        assert!(verdict(&fw, &external("192.0.2.1"), &student, Proto::Tcp, Some(22)).allowed);
        let v = verdict(&fw, &student, &external("192.0.2.1"), Proto::Tcp, Some(22));
        assert_eq!(
            v,
            Verdict {
                allowed: false,
                reason: "rejected by 101 OUT: policy REJECT".into()
            }
        );
    }

    #[test]
    fn cluster_policies_and_rules_never_touch_guest_traffic() {
        let mut fw = lab();
        let c = Scope::Cluster;
        ok(
            &mut fw,
            &c,
            "PUT",
            &["options"],
            &[("policy_in", "DROP"), ("policy_out", "DROP")],
        );
        ok(
            &mut fw,
            &c,
            "POST",
            &["rules"],
            &[("type", "in"), ("action", "DROP"), ("enable", "1")],
        );
        ok(
            &mut fw,
            &Scope::Node("pve1".into()),
            "POST",
            &["rules"],
            &[("type", "in"), ("action", "DROP"), ("enable", "1")],
        );
        assert!(
            verdict(
                &fw,
                &guest(101, "10.10.1.1", true),
                &guest(102, "10.10.1.2", true),
                Proto::Tcp,
                Some(22)
            )
            .allowed
        );
    }

    #[test]
    fn ipfilter_and_blacklist() {
        let mut fw = lab();
        let s = Scope::Guest(101);
        let student = guest(101, "10.10.1.1", true);
        ok(
            &mut fw,
            &s,
            "PUT",
            &["options"],
            &[("enable", "1"), ("ipfilter", "1")],
        );
        // B.7: ipfilter without entries drops all IPv4 the guest sends, except DHCP.
        let v = verdict(&fw, &student, &external("8.8.8.8"), Proto::Tcp, Some(443));
        assert_eq!(
            v.reason,
            "dropped by 101 OUT: ipfilter (source 10.10.1.1 not in ipset ipfilter-net0)"
        );
        assert!(
            verdict(
                &fw,
                &student,
                &external("10.10.0.254"),
                Proto::Udp,
                Some(67)
            )
            .allowed
        );
        ok(
            &mut fw,
            &s,
            "POST",
            &["ipset"],
            &[("name", "ipfilter-net0")],
        );
        ok(
            &mut fw,
            &s,
            "POST",
            &["ipset", "ipfilter-net0"],
            &[("cidr", "10.10.1.1")],
        );
        assert!(verdict(&fw, &student, &external("8.8.8.8"), Proto::Tcp, Some(443)).allowed);

        // The blacklist applies to every firewalled NIC, even with the guest firewall off.
        ok(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["ipset"],
            &[("name", "blacklist")],
        );
        ok(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["ipset", "blacklist"],
            &[("cidr", "198.51.100.0/24")],
        );
        let v = verdict(
            &fw,
            &external("198.51.100.7"),
            &guest(120, "10.10.1.20", true),
            Proto::Tcp,
            Some(80),
        );
        assert_eq!(
            v.reason,
            "dropped by PVEFW-FWBR-IN: source 198.51.100.7 is in ipset 'blacklist'"
        );
        assert!(
            verdict(
                &fw,
                &external("198.51.100.7"),
                &guest(120, "10.10.1.20", false),
                Proto::Tcp,
                Some(80)
            )
            .allowed
        );
    }

    #[test]
    fn clone_copies_and_destroy_removes_the_guest_file() {
        let mut fw = lab();
        isolate(&mut fw, 9000);
        fw.copy_guest(9000, 101);
        fw.copy_guest(555, 102); // no source file: nothing happens
        let (a, b) = (guest(101, "10.10.1.1", true), guest(102, "10.10.1.2", true));
        assert!(!verdict(&fw, &a, &external("8.8.8.8"), Proto::Tcp, Some(443)).allowed);
        assert!(verdict(&fw, &b, &external("8.8.8.8"), Proto::Tcp, Some(443)).allowed);
        let rules =
            call(&mut fw, &Scope::Guest(101), "GET", &["rules"], &[]).expect("cloned rules");
        assert_eq!(rules[0]["comment"], "labctl");
        fw.remove_guest(101);
        assert!(verdict(&fw, &a, &external("8.8.8.8"), Proto::Tcp, Some(443)).allowed);
        assert_eq!(
            call(&mut fw, &Scope::Guest(101), "GET", &["rules"], &[]).expect("empty"),
            serde_json::json!([])
        );
    }

    #[test]
    fn same_guest_and_mixed_families() {
        let fw = lab();
        let a = guest(101, "10.10.1.1", true);
        assert!(verdict(&fw, &a, &a, Proto::Tcp, Some(22)).allowed);
        let v = verdict(&fw, &a, &external("fd00::1"), Proto::Tcp, Some(22));
        assert!(
            !v.allowed && v.reason.starts_with("no path"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn proto_parses_the_three_names() {
        assert_eq!("tcp".parse::<Proto>(), Ok(Proto::Tcp));
        assert_eq!("udp".parse::<Proto>(), Ok(Proto::Udp));
        assert_eq!("icmp".parse::<Proto>(), Ok(Proto::Icmp));
        assert_eq!(
            "sctp".parse::<Proto>(),
            Err("unknown protocol 'sctp' (allowed: tcp, udp, icmp)".to_owned())
        );
        assert_eq!(Proto::Udp.to_string(), "udp");
    }

    #[test]
    fn state_is_deterministic_and_complete() {
        let build = || {
            let mut fw = lab();
            isolate(&mut fw, 102);
            isolate(&mut fw, 101);
            ok(
                &mut fw,
                &Scope::Node("pve2".into()),
                "PUT",
                &["options"],
                &[("enable", "0")],
            );
            fw
        };
        let (one, two) = (build().state(), build().state());
        assert_eq!(
            serde_json::to_string(&one).expect("json"),
            serde_json::to_string(&two).expect("json")
        );
        assert_eq!(one["cluster"]["options"]["enable"], 1);
        assert_eq!(
            one["cluster"]["groups"]["iso-student"]["rules"][4]["action"],
            "DROP"
        );
        assert_eq!(
            one["cluster"]["ipsets"]["iso-teacher"]["entries"][0]["cidr"],
            TEACHER
        );
        assert_eq!(one["guests"]["101"]["rules"][0]["action"], "iso-student");
        assert_eq!(one["guests"]["101"]["options"]["dhcp"], 1);
        assert_eq!(one["nodes"]["pve2"]["options"]["enable"], 0);
        let keys: Vec<&String> = one["guests"].as_object().expect("object").keys().collect();
        assert_eq!(keys, ["101", "102"]);
    }
}
