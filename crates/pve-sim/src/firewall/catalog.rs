//! Static tables the firewall validates against: macros, `/etc/services`,
//! `/etc/protocols` and ICMP type names.
//!
//! Real PVE reads the last two from the node's files and ships ~70 macros; the simulator
//! carries the subset a lab is likely to use. A name outside these tables is rejected
//! with the same message PVE gives for an unknown name.

use serde_json::{json, Value};

/// One line of a macro: the protocol and ports it fills in (the action comes from the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MacroLine {
    pub proto: &'static str,
    pub dport: Option<&'static str>,
    pub sport: Option<&'static str>,
}

/// A firewall macro (`SSH(ACCEPT)`), as in `PVE::Firewall`'s macro table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Macro {
    pub name: &'static str,
    pub descr: &'static str,
    pub lines: &'static [MacroLine],
}

const fn tcp(port: &'static str) -> MacroLine {
    MacroLine {
        proto: "tcp",
        dport: Some(port),
        sport: None,
    }
}

const fn udp(port: &'static str) -> MacroLine {
    MacroLine {
        proto: "udp",
        dport: Some(port),
        sport: None,
    }
}

/// The macros the simulator knows, sorted by name.
const MACROS: &[Macro] = &[
    Macro {
        name: "BGP",
        descr: "Border Gateway Protocol traffic",
        lines: &[tcp("179")],
    },
    Macro {
        name: "DHCPfwd",
        descr: "Forwarded DHCP traffic",
        lines: &[MacroLine {
            proto: "udp",
            dport: Some("67:68"),
            sport: Some("67:68"),
        }],
    },
    Macro {
        name: "DNS",
        descr: "Domain Name System traffic (upd and tcp)",
        lines: &[udp("53"), tcp("53")],
    },
    Macro {
        name: "FTP",
        descr: "File Transfer Protocol",
        lines: &[tcp("21")],
    },
    Macro {
        name: "Git",
        descr: "Git distributed revision control traffic",
        lines: &[tcp("9418")],
    },
    Macro {
        name: "HTTP",
        descr: "Hypertext Transfer Protocol (WWW)",
        lines: &[tcp("80")],
    },
    Macro {
        name: "HTTPS",
        descr: "Hypertext Transfer Protocol (WWW) over SSL",
        lines: &[tcp("443")],
    },
    Macro {
        name: "IMAP",
        descr: "Internet Message Access Protocol",
        lines: &[tcp("143")],
    },
    Macro {
        name: "IMAPS",
        descr: "Internet Message Access Protocol over SSL",
        lines: &[tcp("993")],
    },
    Macro {
        name: "LDAP",
        descr: "Lightweight Directory Access Protocol traffic",
        lines: &[tcp("389")],
    },
    Macro {
        name: "LDAPS",
        descr: "Secure Lightweight Directory Access Protocol traffic",
        lines: &[tcp("636")],
    },
    Macro {
        name: "Mail",
        descr: "Mail traffic (SMTP, SMTPS, Submission)",
        lines: &[tcp("25"), tcp("465"), tcp("587")],
    },
    Macro {
        name: "MSSQL",
        descr: "Microsoft SQL Server",
        lines: &[tcp("1433")],
    },
    Macro {
        name: "MySQL",
        descr: "MySQL server",
        lines: &[tcp("3306")],
    },
    Macro {
        name: "NTP",
        descr: "Network Time Protocol (ntpd)",
        lines: &[udp("123")],
    },
    Macro {
        name: "OpenVPN",
        descr: "OpenVPN traffic",
        lines: &[udp("1194")],
    },
    Macro {
        name: "Ping",
        descr: "ICMP echo request",
        lines: &[MacroLine {
            proto: "icmp",
            dport: Some("echo-request"),
            sport: None,
        }],
    },
    Macro {
        name: "POP3",
        descr: "POP3 traffic",
        lines: &[tcp("110")],
    },
    Macro {
        name: "POP3S",
        descr: "Encrypted POP3 traffic",
        lines: &[tcp("995")],
    },
    Macro {
        name: "PostgreSQL",
        descr: "PostgreSQL server",
        lines: &[tcp("5432")],
    },
    Macro {
        name: "RDP",
        descr: "Microsoft Remote Desktop Protocol traffic",
        lines: &[tcp("3389")],
    },
    Macro {
        name: "Rsync",
        descr: "Rsync server",
        lines: &[tcp("873")],
    },
    Macro {
        name: "SMB",
        descr: "Microsoft SMB traffic",
        lines: &[
            udp("135,445"),
            udp("137:139"),
            MacroLine {
                proto: "udp",
                dport: Some("1024:65535"),
                sport: Some("137"),
            },
            tcp("135,139,445"),
        ],
    },
    Macro {
        name: "SMTP",
        descr: "Simple Mail Transfer Protocol",
        lines: &[tcp("25")],
    },
    Macro {
        name: "SMTPS",
        descr: "Encrypted Simple Mail Transfer Protocol",
        lines: &[tcp("465")],
    },
    Macro {
        name: "SNMP",
        descr: "Simple Network Management Protocol",
        lines: &[udp("161:162"), tcp("161")],
    },
    Macro {
        name: "SPICEproxy",
        descr: "Proxmox VE SPICE display proxy traffic",
        lines: &[tcp("3128")],
    },
    Macro {
        name: "Squid",
        descr: "Squid web proxy traffic",
        lines: &[tcp("3128")],
    },
    Macro {
        name: "SSH",
        descr: "Secure shell traffic",
        lines: &[tcp("22")],
    },
    Macro {
        name: "Submission",
        descr: "Mail message submission traffic",
        lines: &[tcp("587")],
    },
    Macro {
        name: "Syslog",
        descr: "Syslog protocol (RFC 5424) traffic",
        lines: &[udp("514"), tcp("514")],
    },
    Macro {
        name: "Telnet",
        descr: "Telnet traffic",
        lines: &[tcp("23")],
    },
    Macro {
        name: "TFTP",
        descr: "Trivial File Transfer Protocol traffic",
        lines: &[udp("69")],
    },
    Macro {
        name: "Trcrt",
        descr: "Traceroute (for up to 30 hops) traffic",
        lines: &[
            udp("33434:33524"),
            MacroLine {
                proto: "icmp",
                dport: Some("echo-request"),
                sport: None,
            },
        ],
    },
    Macro {
        name: "VNC",
        descr: "VNC traffic for VNC display's 0 - 99",
        lines: &[tcp("5900:5999")],
    },
    Macro {
        name: "Web",
        descr: "WWW traffic (HTTP and HTTPS)",
        lines: &[tcp("80"), tcp("443")],
    },
    Macro {
        name: "Webcache",
        descr: "Web Cache/Proxy traffic (port 8080)",
        lines: &[tcp("8080")],
    },
];

/// Look a macro up case-insensitively, as `verify_rule` does (it then stores the
/// preferred spelling).
pub(super) fn find_macro(name: &str) -> Option<&'static Macro> {
    MACROS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// GET `/cluster/firewall/macros`.
pub(super) fn macro_list() -> Value {
    Value::Array(
        MACROS
            .iter()
            .map(|m| json!({ "macro": m.name, "descr": m.descr }))
            .collect(),
    )
}

/// Service names of `/etc/services` (Debian netbase) the simulator resolves.
const SERVICES: &[(&str, u16)] = &[
    ("bootpc", 68),
    ("bootps", 67),
    ("domain", 53),
    ("ftp", 21),
    ("ftp-data", 20),
    ("http", 80),
    ("https", 443),
    ("imap2", 143),
    ("imaps", 993),
    ("ldap", 389),
    ("ldaps", 636),
    ("microsoft-ds", 445),
    ("ms-wbt-server", 3389),
    ("mysql", 3306),
    ("netbios-ssn", 139),
    ("ntp", 123),
    ("pop3", 110),
    ("pop3s", 995),
    ("postgresql", 5432),
    ("rsync", 873),
    ("smtp", 25),
    ("snmp", 161),
    ("ssh", 22),
    ("submission", 587),
    ("syslog", 514),
    ("telnet", 23),
    ("tftp", 69),
    ("www", 80),
];

/// Port number of a service name.
pub(super) fn service_port(name: &str) -> Option<u16> {
    SERVICES.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// `/etc/protocols` (Debian netbase) plus the `icmpv6` special case PVE adds.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ip", 0),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ospf", 89),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udplite", 136),
];

/// Protocol number of a name or number from the protocol table.
pub(super) fn protocol_number(spec: &str) -> Option<u8> {
    if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == spec) {
        return Some(*n);
    }
    // PVE accepts a number only if /etc/protocols lists it.
    let n: u8 = spec.parse().ok()?;
    PROTOCOLS.iter().any(|(_, id)| *id == n).then_some(n)
}

/// Protocols whose rules may carry ports (`$PROTOCOLS_WITH_PORTS`).
pub(super) fn has_ports(proto: &str) -> bool {
    matches!(
        proto,
        "udp" | "17" | "udplite" | "136" | "tcp" | "6" | "dccp" | "33" | "sctp" | "132"
    )
}

/// `icmp`, `icmpv6` or `ipv6-icmp` (PVE compares the names, not the numbers).
pub(super) fn is_icmp(proto: &str) -> bool {
    matches!(proto, "icmp" | "icmpv6" | "ipv6-icmp")
}

/// `iptables -p icmp -h` type names.
pub(super) const ICMP_TYPES: &[&str] = &[
    "any",
    "echo-reply",
    "destination-unreachable",
    "network-unreachable",
    "host-unreachable",
    "protocol-unreachable",
    "port-unreachable",
    "fragmentation-needed",
    "source-route-failed",
    "network-unknown",
    "host-unknown",
    "network-prohibited",
    "host-prohibited",
    "TOS-network-unreachable",
    "TOS-host-unreachable",
    "communication-prohibited",
    "host-precedence-violation",
    "precedence-cutoff",
    "source-quench",
    "redirect",
    "network-redirect",
    "host-redirect",
    "TOS-network-redirect",
    "TOS-host-redirect",
    "echo-request",
    "router-advertisement",
    "router-solicitation",
    "time-exceeded",
    "ttl-zero-during-transit",
    "ttl-zero-during-reassembly",
    "parameter-problem",
    "ip-header-bad",
    "required-option-missing",
    "timestamp-request",
    "timestamp-reply",
    "address-mask-request",
    "address-mask-reply",
];

/// `ip6tables -p icmpv6 -h` type names.
pub(super) const ICMPV6_TYPES: &[&str] = &[
    "destination-unreachable",
    "no-route",
    "communication-prohibited",
    "beyond-scope",
    "address-unreachable",
    "port-unreachable",
    "failed-policy",
    "reject-route",
    "packet-too-big",
    "time-exceeded",
    "ttl-zero-during-transit",
    "ttl-zero-during-reassembly",
    "parameter-problem",
    "bad-header",
    "unknown-header-type",
    "unknown-option",
    "echo-request",
    "echo-reply",
    "router-solicitation",
    "router-advertisement",
    "neighbor-solicitation",
    "neighbour-solicitation",
    "neighbor-advertisement",
    "neighbour-advertisement",
    "redirect",
];

/// Is `name` an ICMP or ICMPv6 type name?
pub(super) fn is_icmp_type_name(name: &str) -> bool {
    ICMP_TYPES.contains(&name) || ICMPV6_TYPES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_are_found_case_insensitively_with_their_ports() {
        let m = find_macro("ssh").expect("SSH is in the table");
        assert_eq!(m.name, "SSH");
        assert_eq!(m.lines, &[tcp("22")]);
        let dns = find_macro("dns").expect("DNS is in the table");
        assert_eq!(dns.lines.len(), 2);
        assert!(find_macro("NoSuchMacro").is_none());
    }

    #[test]
    fn macro_table_is_sorted_and_unique() {
        for pair in MACROS.windows(2) {
            assert!(
                pair[0].name.to_lowercase() < pair[1].name.to_lowercase(),
                "{}",
                pair[1].name
            );
        }
    }

    #[test]
    fn protocols_by_name_and_number() {
        assert_eq!(protocol_number("tcp"), Some(6));
        assert_eq!(protocol_number("17"), Some(17));
        assert_eq!(protocol_number("icmpv6"), Some(58));
        assert_eq!(protocol_number("bogus"), None);
        assert_eq!(protocol_number("253"), None);
        assert!(has_ports("tcp") && has_ports("6") && !has_ports("icmp"));
        assert_eq!(service_port("ssh"), Some(22));
        assert_eq!(service_port("nope"), None);
    }
}
