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

/// `/etc/services` of Debian's netbase as PVE's `get_etc_services` reads it: the first
/// name of every tcp/udp/sctp line (aliases are not names to PVE), as `name:port` pairs.
const SERVICES: &str = "\
acr-nema:104 afpovertcp:548 afs3-bos:7007 afs3-callback:7001 afs3-fileserver:7000 \
afs3-kaserver:7004 afs3-prserver:7002 afs3-rmtsys:7009 afs3-update:7008 afs3-vlserver:7003 \
afs3-volser:7005 amanda:10080 amandaidx:10082 amidxtape:10083 amqp:5672 amqps:5671 \
asf-rmcp:623 asp:27374 auth:113 babel:6696 bacula-dir:9101 bacula-fd:9102 bacula-sd:9103 \
bbs:7000 bgp:179 bgpd:2605 biff:512 binkp:24554 bootpc:68 bootps:67 canna:5680 \
cfengine:5308 chargen:19 cisco-sccp:2000 clc-build-daemon:8990 clearcase:371 cmip-agent:164 \
cmip-man:163 codaauth2:370 codasrv:2432 codasrv-se:2433 csync2:30865 cvspserver:2401 \
daap:3689 datametrics:1645 daytime:13 db-lsp:17500 dcap:22125 dhcpv6-client:546 \
dhcpv6-server:547 dicom:11112 dict:2628 dircproxy:57000 discard:9 distcc:3632 domain:53 \
domain-s:853 echo:7 epmap:135 epmd:4369 exec:512 f5-globalsite:2792 f5-iquery:4353 fax:4557 \
fido:60179 finger:79 font-service:7100 freeciv:5556 fsp:21 ftp:21 ftp-data:20 ftps:990 \
ftps-data:989 gdomap:538 gds-db:3050 git:9418 gnunet:2086 gnutella-rtr:6347 \
gnutella-svc:6346 gopher:70 gpsd:2947 gris:2135 groupwise:1677 gsidcap:22128 gsiftp:2811 \
gsigatekeeper:2119 hkp:11371 http:80 http-alt:8080 https:443 hylafax:4559 iax:4569 \
icpv2:3130 imap2:143 imaps:993 ingreslock:1524 ipp:631 iprop:2121 ipsec-nat-t:4500 ipx:213 \
ircd:6667 ircs-u:6697 isakmp:500 iscsi-target:3260 isisd:2608 isns:3205 iso-tsap:102 \
kamanda:10081 kerberos:88 kerberos-adm:749 kerberos-master:751 kerberos4:750 kermit:1649 \
klogin:543 kpasswd:464 krb-prop:754 kshell:544 l2f:1701 ldap:389 ldaps:636 ldp:646 \
login:513 lotusnote:1352 mailq:174 mdns:5353 microsoft-ds:445 moira-db:775 moira-update:777 \
moira-ureg:779 mon:2583 ms-sql-m:1434 ms-sql-s:1433 ms-wbt-server:3389 mtn:4691 munin:4949 \
mysql:3306 mysql-proxy:6446 nbd:10809 netbios-dgm:138 netbios-ns:137 netbios-ssn:139 \
netstat:15 nfs:2049 nntp:119 nntps:563 nqs:607 nrpe:5666 nsca:5667 ntalk:518 ntp:123 \
ntske:4460 nut:3493 omniorb:8088 openvpn:1194 ospf6d:2606 ospfapi:2607 ospfd:2604 \
passwd-server:752 pawserv:345 pop3:110 pop3s:995 poppassd:106 postgresql:5432 predict:1210 \
printer:515 proofd:1093 ptp-event:319 ptp-general:320 puppet:8140 qmqp:628 qmtp:209 qotd:17 \
radius:1812 radius-acct:1813 radmin-port:4899 redis:6379 remctl:4373 ripd:2602 ripngd:2603 \
rmiregistry:1099 rmtcfg:1236 rootd:1094 route:520 rpc2portmap:369 rplay:5555 rsync:873 \
rtcm-sc104:2101 rtsp:554 sa-msg-port:1646 saft:487 sane-port:6566 sge-execd:6445 \
sge-qmaster:6444 sgi-cad:17004 sgi-cmsd:17001 sgi-crsd:17002 sgi-gcd:17003 shell:514 \
sieve:4190 silc:706 sip:5060 sip-tls:5061 skkserv:1178 smtp:25 smux:199 snmp:161 \
snmp-trap:162 snpp:444 socks:1080 spamd:783 ssh:22 submission:587 submissions:465 \
sunrpc:111 supfiledbg:1127 supfilesrv:871 suucp:4031 svn:3690 svrloc:427 syslog:514 \
syslog-tls:6514 sysrqd:4094 systat:11 tacacs:49 talk:517 tcpmux:1 telnet:23 telnets:992 \
tfido:60177 tftp:69 time:37 tinc:655 tproxy:8081 uucp:540 venus:2430 venus-se:2431 \
webmin:10000 who:513 whois:43 wnn6:22273 x11:6000 x11-1:6001 x11-2:6002 x11-3:6003 \
x11-4:6004 x11-5:6005 x11-6:6006 x11-7:6007 xdmcp:177 xinetd:9098 xmms2:9667 \
xmpp-client:5222 xmpp-server:5269 xtel:1313 xtelw:1314 z3950:210 zabbix-agent:10050 \
zabbix-trapper:10051 zebra:2601 zebrasrv:2600 zephyr-clt:2103 zephyr-hm:2104 \
zephyr-srv:2102 zope:9673 zope-ftp:8021 zserv:346";

/// Port number of a service name.
pub(super) fn service_port(name: &str) -> Option<u16> {
    SERVICES
        .split_ascii_whitespace()
        .filter_map(|pair| pair.split_once(':'))
        .find(|(n, _)| *n == name)
        .and_then(|(_, port)| port.parse().ok())
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

// ICMP type names (`iptables -p icmp -h`, `ip6tables -p icmpv6 -h`): one table, shared
// with the schema validator.
pub(super) use pve_schema::{ICMPV6_TYPES, ICMP_TYPES};

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
        assert_eq!(service_port("https"), Some(443));
        assert_eq!(service_port("domain"), Some(53));
        assert_eq!(service_port("nope"), None);
        assert_eq!(
            service_port("www"),
            None,
            "aliases are not service names to PVE"
        );
    }
}
