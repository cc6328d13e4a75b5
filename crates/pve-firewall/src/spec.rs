//! Checked values for firewall objects: names, addresses, ports, protocols, log levels.
//!
//! Each type is validated when it is built (`FromStr`/`new`), so a [`Rule`](crate::Rule) made
//! of them only needs cross-field checks before it is sent. Errors name the field, the value
//! and what is allowed (reference Part B.6/B.7, `pve-api.md` §7).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Checks PVE's name pattern `[A-Za-z][A-Za-z0-9\-_]+` restricted to lower case.
///
/// PVE lower-cases ipset, group and alias names when it parses the `.fw` file, so a name
/// with capitals is stored under another spelling than the one a rule refers to (a silent
/// no-op, Part B.11 item 3). We only send lower-case names.
fn check_name(field: &'static str, s: &str, max: usize) -> Result<()> {
    let allowed = format!(
        "2 to {max} characters: a lower-case letter, then lower-case letters, digits, '-' or '_'"
    );
    if s.len() < 2 || s.len() > max {
        return Err(Error::invalid(
            field,
            s,
            format!("length {} (allowed: {allowed})", s.len()),
        ));
    }
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !(first_ok && rest_ok) {
        let hint = if s.chars().any(|c| c.is_ascii_uppercase()) {
            "; PVE lower-cases names when it reads the file, so capitals break references"
        } else {
            ""
        };
        return Err(Error::invalid(
            field,
            s,
            format!("allowed: {allowed}{hint}"),
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Longest allowed name.
            pub const MAX_LEN: usize = $max;

            /// Checks and wraps `name`.
            pub fn new(name: &str) -> Result<Self> {
                check_name($field, name, $max)?;
                Ok(Self(name.to_owned()))
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A security group name: at most 18 characters so the chain `GROUP-<name>-OUT` fits
    /// iptables' 28 (Part B.6).
    GroupName, "group name", 18
);
name_type!(
    /// An IP set name (2..=64 characters).
    IpSetName, "ipset name", 64
);
name_type!(
    /// An alias name (2..=64 characters).
    AliasName, "alias name", 64
);

/// An IP address or network, host bits cleaned (as PVE stores IP set entries).
///
/// Displayed as the bare address for a single host (`10.0.0.5`), else `addr/prefix`.
///
/// ```
/// use pve_firewall::Cidr;
/// let c: Cidr = "10.10.0.77/24".parse().unwrap();
/// assert_eq!(c.to_string(), "10.10.0.0/24");
/// assert_eq!("10.10.0.5".parse::<Cidr>().unwrap().to_string(), "10.10.0.5");
/// assert!("10.0.0.0/33".parse::<Cidr>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn clean(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & mask).into())
        }
    }
}

impl Cidr {
    /// A single host.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix: width(addr),
        }
    }

    /// A network; host bits are cleared, `prefix` must fit the address family.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self> {
        if prefix > width(addr) {
            return Err(Error::invalid(
                "cidr",
                format!("{addr}/{prefix}"),
                format!("prefix {prefix} is longer than {} bits", width(addr)),
            ));
        }
        Ok(Self {
            addr: clean(addr, prefix),
            prefix,
        })
    }

    /// The (cleaned) network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// `true` for a single address.
    pub fn is_host(&self) -> bool {
        self.prefix == width(self.addr)
    }

    /// `true` if `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && clean(ip, self.prefix) == self.addr
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| {
            Error::invalid(
                "cidr",
                s,
                format!("{reason} (allowed: an IPv4/IPv6 address, optionally /prefix, e.g. 10.10.0.10 or 10.10.0.0/24)"),
            )
        };
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
        match prefix {
            None => Ok(Self::host(addr)),
            Some(p) => {
                let p: u8 = p
                    .parse()
                    .ok()
                    .filter(|p| *p <= width(addr))
                    .ok_or_else(|| bad("bad prefix length"))?;
                Self::new(addr, p)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl From<IpAddr> for Cidr {
    fn from(ip: IpAddr) -> Self {
        Self::host(ip)
    }
}

/// Longest `source`/`dest` value PVE accepts.
pub const MAX_ADDR_SPEC: usize = 512;

/// A rule's `source` or `dest`: an address list, a range, an `+ipset` or an alias.
///
/// ```
/// use pve_firewall::AddrSpec;
/// for ok in ["10.0.0.1", "10.0.0.0/24,10.1.0.1", "10.0.0.1-10.0.0.9", "+iso-lab1-allowed",
///            "+dc/management", "teacher", "dc/teacher"] {
///     ok.parse::<AddrSpec>().unwrap();
/// }
/// for bad in ["10.0.0.1,fe80::1", "10.0.0.9-10.0.0.1", "10.0.0.1-10.0.0.9,10.1.0.1",
///             "+Teacher", "", "10.0.0.0/40"] {
///     assert!(bad.parse::<AddrSpec>().is_err(), "{bad}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddrSpec(String);

impl AddrSpec {
    /// A reference to a cluster-level IP set, `+dc/name` is not used so it also works on
    /// older releases: `+name` (a guest set of the same name would win at guest level).
    pub fn ipset(name: &IpSetName) -> Self {
        Self(format!("+{name}"))
    }

    /// A reference to an alias.
    pub fn alias(name: &AliasName) -> Self {
        Self(name.to_string())
    }

    /// A single address or network.
    pub fn net(cidr: Cidr) -> Self {
        Self(cidr.to_string())
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_ref(field: &'static str, whole: &str, name: &str, prefixes: &[&str]) -> Result<()> {
    let bare = prefixes
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    check_name(field, bare, 64).map_err(|e| match e {
        Error::InvalidInput { reason, .. } => Error::invalid(field, whole, reason),
        other => other,
    })
}

impl FromStr for AddrSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        const FIELD: &str = "address";
        if s.is_empty() {
            return Err(Error::invalid(
                FIELD,
                s,
                "empty (allowed: IP, CIDR, range a-b, comma list, +ipset or alias)",
            ));
        }
        if s.len() > MAX_ADDR_SPEC {
            return Err(Error::invalid(
                FIELD,
                s,
                format!("longer than {MAX_ADDR_SPEC} characters"),
            ));
        }
        if let Some(set) = s.strip_prefix('+') {
            check_ref("ipset reference", s, set, &["dc/", "guest/", "sdn/"])?;
            return Ok(Self(s.to_owned()));
        }
        let first = s.chars().next().unwrap_or('0');
        if first.is_ascii_alphabetic() && !s.contains([':', '.', ',']) {
            // An alias name (IPv6 addresses always contain ':').
            check_ref("alias reference", s, s, &["dc/", "guest/"])?;
            return Ok(Self(s.to_owned()));
        }
        let items: Vec<&str> = s.split(',').collect();
        let mut family: Option<bool> = None;
        for item in &items {
            let v4 = if let Some((a, b)) = item.split_once('-') {
                if items.len() > 1 {
                    return Err(Error::invalid(
                        FIELD,
                        s,
                        "a range a-b cannot be part of a comma list",
                    ));
                }
                let (a, b): (IpAddr, IpAddr) = match (a.parse(), b.parse()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => {
                        return Err(Error::invalid(
                            FIELD,
                            s,
                            "a range must be two IP addresses a-b",
                        ))
                    }
                };
                if a.is_ipv4() != b.is_ipv4() {
                    return Err(Error::invalid(FIELD, s, "range mixes IPv4 and IPv6"));
                }
                if a > b {
                    return Err(Error::invalid(
                        FIELD,
                        s,
                        "range goes backwards (start is after end)",
                    ));
                }
                a.is_ipv4()
            } else {
                let c: Cidr = item.parse().map_err(|e| match e {
                    Error::InvalidInput { reason, .. } => {
                        Error::invalid(FIELD, s, format!("{item}: {reason}"))
                    }
                    other => other,
                })?;
                c.addr().is_ipv4()
            };
            if family.is_some_and(|f| f != v4) {
                return Err(Error::invalid(FIELD, s, "the list mixes IPv4 and IPv6"));
            }
            family = Some(v4);
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for AddrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Most "numbers" a port list may hold; a range counts as two (Part B.6).
pub const MAX_PORT_NUMBERS: usize = 15;

/// A `dport`/`sport`: comma list of port numbers, `N:M` ranges and service names.
///
/// ```
/// use pve_firewall::PortSpec;
/// assert_eq!("22,80:90,https".parse::<PortSpec>().unwrap().as_str(), "22,80:90,https");
/// assert!("90:80".parse::<PortSpec>().is_err());
/// assert!("70000".parse::<PortSpec>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortSpec(String);

impl PortSpec {
    /// One port.
    pub fn port(port: u16) -> Self {
        Self(port.to_string())
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PortSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        const FIELD: &str = "port";
        let allowed = "allowed: comma list of port numbers 0-65535, ranges N:M with N <= M, or service names like ssh";
        let bad = |what: String| Error::invalid(FIELD, s, format!("{what} ({allowed})"));
        if s.is_empty() {
            return Err(bad("empty".into()));
        }
        let mut numbers = 0;
        for item in s.split(',') {
            let num = |p: &str| -> Result<u16> {
                p.parse::<u16>()
                    .map_err(|_| bad(format!("'{p}' is not a port number")))
            };
            if let Some((a, b)) = item.split_once(':') {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad(format!("range '{item}' goes backwards")));
                }
                numbers += 2;
            } else if item.chars().all(|c| c.is_ascii_digit()) && !item.is_empty() {
                num(item)?;
                numbers += 1;
            } else {
                let mut chars = item.chars();
                let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
                if !ok {
                    return Err(bad(format!(
                        "'{item}' is neither a port, a range nor a service name"
                    )));
                }
                numbers += 1;
            }
        }
        if numbers > MAX_PORT_NUMBERS {
            return Err(bad(format!(
                "{numbers} numbers, at most {MAX_PORT_NUMBERS} (a range counts as 2)"
            )));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A protocol, by name (`tcp`, `icmp`, …) or number (`6`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proto(String);

impl Proto {
    /// TCP.
    pub fn tcp() -> Self {
        Self("tcp".into())
    }

    /// UDP.
    pub fn udp() -> Self {
        Self("udp".into())
    }

    /// ICMP (IPv4).
    pub fn icmp() -> Self {
        Self("icmp".into())
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Ports may only be given for these (Part B.6).
    pub fn has_ports(&self) -> bool {
        matches!(
            self.0.as_str(),
            "tcp" | "udp" | "udplite" | "dccp" | "sctp" | "6" | "17" | "136" | "33" | "132"
        )
    }

    /// `icmp-type` may only be given for these.
    pub fn is_icmp(&self) -> bool {
        matches!(
            self.0.as_str(),
            "icmp" | "icmpv6" | "ipv6-icmp" | "1" | "58"
        )
    }
}

impl FromStr for Proto {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let ok = if s.chars().all(|c| c.is_ascii_digit()) {
            s.parse::<u8>().is_ok()
        } else {
            let mut chars = s.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        if !ok || s.is_empty() {
            return Err(Error::invalid(
                "proto",
                s,
                "allowed: a lower-case protocol name from /etc/protocols (tcp, udp, icmp, …) or a number 0-255",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A log level for rules and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the variants are syslog's level names
pub enum LogLevel {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
    Nolog,
}

impl LogLevel {
    const ALL: [(&'static str, LogLevel); 9] = [
        ("emerg", LogLevel::Emerg),
        ("alert", LogLevel::Alert),
        ("crit", LogLevel::Crit),
        ("err", LogLevel::Err),
        ("warning", LogLevel::Warning),
        ("notice", LogLevel::Notice),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("nolog", LogLevel::Nolog),
    ];

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, l)| *l == self)
            .map(|(n, _)| *n)
            .unwrap_or("nolog")
    }
}

impl FromStr for LogLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, l)| *l)
            .ok_or_else(|| {
                Error::invalid(
                    "log",
                    s,
                    "allowed: emerg, alert, crit, err, warning, notice, info, debug, nolog",
                )
            })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's `iface`. At guest level only `net<N>` is valid; at cluster/node level a host
/// interface name (`vmbr0`, `eno1`, …, 2-20 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Iface(String);

impl Iface {
    /// `net<index>` of a guest.
    pub fn net(index: u32) -> Self {
        Self(format!("net{index}"))
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `true` for a guest NIC name `net\d+`.
    pub fn is_guest_nic(&self) -> bool {
        self.0
            .strip_prefix("net")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    }
}

impl FromStr for Iface {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut chars = s.chars();
        let ok = (2..=20).contains(&s.len())
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok {
            return Err(Error::invalid(
                "iface",
                s,
                "allowed: an interface name of 2-20 letters, digits, '-', '_' or '.', starting with a letter (net0 at guest level)",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(e: Error) -> (String, String) {
        match e {
            Error::InvalidInput {
                field,
                value,
                reason,
            } => (format!("{field} {value}"), reason),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn names_are_lower_case_and_length_checked() {
        GroupName::new("iso-lab1").unwrap();
        GroupName::new("a_b-c9").unwrap();
        let (what, why) = reason(GroupName::new("this-name-is-too-long").unwrap_err());
        assert_eq!(what, "group name this-name-is-too-long");
        assert!(why.contains("2 to 18"), "{why}");
        let (_, why) = reason(GroupName::new("IsoLab").unwrap_err());
        assert!(why.contains("lower-cases"), "{why}");
        assert!(GroupName::new("1abc").is_err());
        assert!(GroupName::new("a").is_err());
        assert!(GroupName::new("a b").is_err());
        IpSetName::new("a-very-long-ipset-name-that-is-still-fine-because-it-is-under-64").unwrap();
        assert!(IpSetName::new(&"x".repeat(65)).is_err());
        assert!(AliasName::new("teacher.pc").is_err());
    }

    #[test]
    fn cidrs_clean_host_bits() {
        let c: Cidr = "192.168.7.200/25".parse().unwrap();
        assert_eq!(c.to_string(), "192.168.7.128/25");
        assert!(c.contains("192.168.7.129".parse().unwrap()));
        assert!(!c.contains("192.168.7.1".parse().unwrap()));
        let c: Cidr = "2001:db8::5/64".parse().unwrap();
        assert_eq!(c.to_string(), "2001:db8::/64");
        assert_eq!(
            "10.0.0.1/32".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        for bad in [
            "10.0.0.1/33",
            "10.0.0/24",
            "host",
            "10.0.0.1/",
            "fe80::1/129",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn address_specs() {
        for ok in [
            "fe80::1,fe80::2",
            "10.0.0.0/8",
            "+guest/ipfilter-net0",
            "+sdn/vnet1-all",
        ] {
            ok.parse::<AddrSpec>().unwrap();
        }
        let (_, why) = reason("10.0.0.1,2001:db8::1".parse::<AddrSpec>().unwrap_err());
        assert!(why.contains("mixes"), "{why}");
        let (_, why) = reason("10.0.0.9-10.0.0.1".parse::<AddrSpec>().unwrap_err());
        assert!(why.contains("backwards"), "{why}");
        let long = vec!["10.0.0.1"; 60].join(",");
        assert!(long.parse::<AddrSpec>().is_err());
        assert_eq!(
            AddrSpec::ipset(&IpSetName::new("iso-a").unwrap()).as_str(),
            "+iso-a"
        );
    }

    #[test]
    fn port_specs() {
        "0,65535".parse::<PortSpec>().unwrap();
        let fifteen = (1..=15)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        fifteen.parse::<PortSpec>().unwrap();
        let (_, why) = reason(format!("{fifteen},16").parse::<PortSpec>().unwrap_err());
        assert!(why.contains("16 numbers"), "{why}");
        let ranges = "1:2,3:4,5:6,7:8,9:10,11:12,13:14,15";
        ranges.parse::<PortSpec>().unwrap();
        assert!(format!("{ranges},16").parse::<PortSpec>().is_err());
        for bad in ["", "22,", "a:b", "-1", "22;23", "1:70000"] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn protos_ifaces_and_log_levels() {
        assert!("tcp".parse::<Proto>().unwrap().has_ports());
        assert!("17".parse::<Proto>().unwrap().has_ports());
        assert!(!"icmp".parse::<Proto>().unwrap().has_ports());
        assert!("ipv6-icmp".parse::<Proto>().unwrap().is_icmp());
        assert!("TCP".parse::<Proto>().is_err());
        assert!("256".parse::<Proto>().is_err());
        assert!("net0".parse::<Iface>().unwrap().is_guest_nic());
        assert!(!"vmbr0".parse::<Iface>().unwrap().is_guest_nic());
        assert!(!"netx".parse::<Iface>().unwrap().is_guest_nic());
        assert!("n".parse::<Iface>().is_err());
        assert_eq!("warning".parse::<LogLevel>().unwrap().as_str(), "warning");
        assert!("loud".parse::<LogLevel>().is_err());
    }
}
