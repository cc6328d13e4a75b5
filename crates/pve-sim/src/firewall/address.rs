//! Address specifications (`source`/`dest` of rules, IP set entries, alias values):
//! parsing with PVE's error texts, and matching an address against them.

use std::net::IpAddr;

use super::aliases::Alias;
use super::ipset::IpSet;
use super::FwFile;

/// `[A-Za-z][A-Za-z0-9\-_]+` — the pattern of ipset, alias and security group names.
pub(super) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where an `+ipset` or alias reference looks (`+dc/x`, `+guest/x`, plain `+x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefScope {
    /// No prefix: the guest's own definition first, then the datacenter's.
    Any,
    /// `dc/`: datacenter (`cluster.fw`) only.
    Dc,
    /// `guest/`: the guest's own `<vmid>.fw` only.
    Guest,
    /// `sdn/`: SDN-generated sets, which the simulator does not have.
    Sdn,
}

impl RefScope {
    /// Split a `dc/`, `guest/` (and for ipsets `sdn/`) prefix off a reference.
    fn split(s: &str, allow_sdn: bool) -> (Self, &str) {
        if let Some(rest) = s.strip_prefix("dc/") {
            (Self::Dc, rest)
        } else if let Some(rest) = s.strip_prefix("guest/") {
            (Self::Guest, rest)
        } else if let Some(rest) = s.strip_prefix("sdn/").filter(|_| allow_sdn) {
            (Self::Sdn, rest)
        } else {
            (Self::Any, s)
        }
    }

    fn local(self) -> bool {
        matches!(self, Self::Any | Self::Guest)
    }

    fn dc(self) -> bool {
        matches!(self, Self::Any | Self::Dc)
    }
}

/// An IP network (`addr/prefix`; a plain address has the full prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all & !((1u128 << (width - prefix)) - 1)
    }
}

impl Net {
    /// Does the network contain `ip` (same address family only)?
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let (net, width) = bits(self.addr);
        let (probe, _) = bits(ip);
        let m = mask(self.prefix, width);
        net & m == probe & m
    }

    /// Are bits set beyond the prefix?
    fn has_host_bits(&self) -> bool {
        let (net, width) = bits(self.addr);
        let host = !mask(self.prefix, width);
        (net & host) != 0
    }

    /// The network with the host bits cleared.
    fn cleaned(&self) -> Net {
        let (net, width) = bits(self.addr);
        let m = mask(self.prefix, width);
        let addr = if width == 32 {
            // The masked value of a v4 address fits 32 bits by construction.
            IpAddr::V4(u32::try_from(net & m).unwrap_or_default().into())
        } else {
            IpAddr::V6((net & m).into())
        };
        Net {
            addr,
            prefix: self.prefix,
        }
    }

    /// 4 or 6.
    pub fn version(&self) -> u8 {
        if self.addr.is_ipv4() {
            4
        } else {
            6
        }
    }
}

/// `ip` or `ip/len` with a valid length; host bits are allowed.
pub(super) fn parse_net(s: &str) -> Option<Net> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let addr: IpAddr = ip.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => max,
        Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
            len.parse::<u8>().ok().filter(|p| *p <= max)?
        }
        Some(_) => return None,
    };
    Some(Net { addr, prefix })
}

/// Format `IPorCIDR`: `value does not look like a valid IP address or CIDR network`.
pub(super) fn check_ip_or_cidr(s: &str) -> Result<Net, String> {
    parse_net(s)
        .ok_or_else(|| "value does not look like a valid IP address or CIDR network".to_owned())
}

/// Format `IPorCIDRorAlias`: an alias reference (optionally `dc/`/`guest/`) or an IP/CIDR.
pub(super) fn check_ip_or_cidr_or_alias(s: &str) -> Result<(), String> {
    let (_, name) = RefScope::split(s, false);
    if is_name(name) {
        return Ok(());
    }
    check_ip_or_cidr(s).map(|_| ())
}

/// What `clean_cidr` followed by `parse_ip_or_cidr` make of an IP set entry or alias:
/// host bits cleared when a prefix is given, `/32` and `/128` dropped.
pub(super) fn normalize_cidr(s: &str, clean: bool) -> String {
    let (Some(net), Some((ip, _))) = (parse_net(s), s.split_once('/')) else {
        return s.to_owned();
    };
    let full = if net.addr.is_ipv4() { 32 } else { 128 };
    if clean {
        let net = net.cleaned();
        if net.prefix == full {
            net.addr.to_string()
        } else {
            format!("{}/{}", net.addr, net.prefix)
        }
    } else if net.prefix == full {
        ip.to_owned()
    } else {
        s.to_owned()
    }
}

/// A parsed `source`/`dest` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AddrSpec {
    /// `+name`, `+dc/name`, `+guest/name`; `name` is `None` when it breaks the name pattern.
    IpSet {
        scope: RefScope,
        name: Option<String>,
    },
    /// An alias name, optionally with `dc/`/`guest/`.
    Alias { scope: RefScope, name: String },
    /// `a-b`.
    Range(IpAddr, IpAddr),
    /// One or more comma-separated addresses/networks.
    List(Vec<Net>),
}

/// `parse_address_list`: the spec and its IP version (none for sets and aliases).
pub(super) fn parse_addr_spec(s: &str) -> Result<(AddrSpec, Option<u8>), String> {
    if let Some(set) = s
        .strip_prefix('+')
        .filter(|r| !r.is_empty() && !r.contains(char::is_whitespace))
    {
        if s.len() > 65 {
            return Err("ipset name too long".to_owned());
        }
        let (scope, name) = RefScope::split(set, true);
        let name = is_name(name).then(|| name.to_owned());
        return Ok((AddrSpec::IpSet { scope, name }, None));
    }
    let (scope, name) = RefScope::split(s, false);
    if is_name(name) {
        if s.len() > 64 {
            return Err("alias name too long".to_owned());
        }
        return Ok((
            AddrSpec::Alias {
                scope,
                name: name.to_owned(),
            },
            None,
        ));
    }

    let elements: Vec<&str> = s.split(',').collect();
    if s.ends_with(',') {
        return Err("extraneous commas in list".to_owned());
    }
    let mut version = None;
    let mut nets = Vec::new();
    let mut range = None;
    for elem in &elements {
        let (v, parsed) = if let Some((a, b)) = elem.split_once('-') {
            let (a, b): (IpAddr, IpAddr) = match (a.trim().parse(), b.trim().parse()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => {
                    return Err(format!(
                        "invalid IP address: Cannot determine IP version for {elem}"
                    ))
                }
            };
            if a.is_ipv4() != b.is_ipv4() {
                return Err(format!(
                    "invalid IP address: IP addresses of different versions in range {elem}"
                ));
            }
            if bits(a).0 > bits(b).0 {
                return Err(format!(
                    "invalid IP address: Begin address is greater than end address {a} - {b}"
                ));
            }
            range = Some((a, b));
            (if a.is_ipv4() { 4 } else { 6 }, None)
        } else {
            let net = parse_net(elem).ok_or_else(|| {
                format!("invalid IP address: Cannot determine IP version for {elem}")
            })?;
            if net.has_host_bits() {
                return Err(format!("invalid IP address: Invalid prefix {elem}"));
            }
            (net.version(), Some(net))
        };
        if version.is_some_and(|old| old != v) {
            return Err(format!(
                "detected mixed ipv4/ipv6 addresses in address list '{s}'"
            ));
        }
        version = Some(v);
        nets.extend(parsed);
    }
    if range.is_some() && elements.len() > 1 {
        return Err("you can't use a range in a list".to_owned());
    }
    match range {
        Some((a, b)) => Ok((AddrSpec::Range(a, b), version)),
        None => Ok((AddrSpec::List(nets), version)),
    }
}

/// The definitions a rule can see: the datacenter's and (guest rules) the guest's own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub cluster: &'a FwFile,
    pub local: Option<&'a FwFile>,
}

impl<'a> Ctx<'a> {
    /// Does a set of this name exist anywhere visible (the existence check of `verify_rule`,
    /// which ignores the scope prefix)?
    pub fn ipset_exists(&self, name: &str) -> bool {
        self.cluster.ipsets.contains_key(name)
            || self.local.is_some_and(|l| l.ipsets.contains_key(name))
    }

    /// Does an alias of this name (case-insensitive) exist anywhere visible?
    pub fn alias_exists(&self, name: &str) -> bool {
        let key = name.to_lowercase();
        self.cluster.aliases.contains_key(&key)
            || self.local.is_some_and(|l| l.aliases.contains_key(&key))
    }

    /// The set a reference resolves to when compiled (guest first unless `dc/`), and the
    /// context its alias entries resolve in.
    pub fn ipset(&self, scope: RefScope, name: &str) -> Option<(&'a IpSet, Ctx<'a>)> {
        if scope.local() {
            if let Some(set) = self.local.and_then(|l| l.ipsets.get(name)) {
                return Some((set, *self));
            }
        }
        if scope.dc() {
            if let Some(set) = self.cluster.ipsets.get(name) {
                return Some((
                    set,
                    Ctx {
                        cluster: self.cluster,
                        local: None,
                    },
                ));
            }
        }
        None
    }

    /// The alias a reference resolves to (`resolve_alias`): guest first unless `dc/`.
    pub fn alias(&self, scope: RefScope, name: &str) -> Option<&'a Alias> {
        let key = name.to_lowercase();
        if scope.local() {
            if let Some(a) = self.local.and_then(|l| l.aliases.get(&key)) {
                return Some(a);
            }
        }
        if scope.dc() {
            return self.cluster.aliases.get(&key);
        }
        None
    }

    /// Resolve an alias-or-CIDR IP set entry; `None` when it names a missing alias.
    pub fn entry_net(&self, cidr: &str) -> Option<Net> {
        let (scope, name) = RefScope::split(cidr, false);
        if is_name(name) {
            self.alias(scope, name).and_then(Alias::net)
        } else {
            parse_net(cidr)
        }
    }

    /// Does `ip` match the spec? Unresolvable references match nothing (PVE skips
    /// such rules before this point anyway).
    pub fn matches(&self, spec: &AddrSpec, ip: IpAddr) -> bool {
        match spec {
            AddrSpec::IpSet {
                scope,
                name: Some(name),
            } => self
                .ipset(*scope, name)
                .is_some_and(|(set, ctx)| set.contains(ip, &ctx)),
            AddrSpec::IpSet { name: None, .. } => false,
            AddrSpec::Alias { scope, name } => self
                .alias(*scope, name)
                .and_then(Alias::net)
                .is_some_and(|n| n.contains(ip)),
            AddrSpec::Range(a, b) => {
                a.is_ipv4() == ip.is_ipv4() && bits(*a).0 <= bits(ip).0 && bits(ip).0 <= bits(*b).0
            }
            AddrSpec::List(nets) => nets.iter().any(|n| n.contains(ip)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn names_follow_the_pve_pattern() {
        assert!(is_name("iso-student") && is_name("a_1") && is_name("Ab"));
        assert!(!is_name("a") && !is_name("1abc") && !is_name("a b") && !is_name("a.b"));
    }

    #[test]
    fn nets_contain_addresses_of_their_family_only() {
        let net = parse_net("10.10.0.0/16").expect("valid");
        assert!(net.contains(ip("10.10.3.4")));
        assert!(!net.contains(ip("10.11.0.1")));
        assert!(!net.contains(ip("::1")));
        let all = parse_net("0.0.0.0/0").expect("valid");
        assert!(all.contains(ip("192.0.2.1")));
        let v6 = parse_net("fd00::/8").expect("valid");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(parse_net("10.0.0.1/33").is_none());
        assert!(parse_net("10.0.0/8").is_none());
    }

    #[test]
    fn cidr_normalization_cleans_host_bits_and_full_prefixes() {
        assert_eq!(normalize_cidr("10.0.0.5/24", true), "10.0.0.0/24");
        assert_eq!(normalize_cidr("10.0.0.5/32", true), "10.0.0.5");
        assert_eq!(normalize_cidr("10.0.0.5", true), "10.0.0.5");
        assert_eq!(normalize_cidr("fd00::5/64", true), "fd00::/64");
        assert_eq!(normalize_cidr("fd00::5/128", true), "fd00::5");
        assert_eq!(normalize_cidr("10.0.0.5/24", false), "10.0.0.5/24");
        assert_eq!(normalize_cidr("10.0.0.5/32", false), "10.0.0.5");
    }

    #[test]
    fn address_lists_parse_like_pve() {
        let (spec, v) = parse_addr_spec("10.0.0.1,10.1.0.0/16").expect("valid list");
        assert_eq!(v, Some(4));
        assert!(matches!(spec, AddrSpec::List(ref n) if n.len() == 2));
        let (spec, v) = parse_addr_spec("10.0.0.1-10.0.0.9").expect("valid range");
        assert_eq!(
            (spec, v),
            (AddrSpec::Range(ip("10.0.0.1"), ip("10.0.0.9")), Some(4))
        );
        assert_eq!(
            parse_addr_spec("+dc/iso-teacher").expect("set ref").0,
            AddrSpec::IpSet {
                scope: RefScope::Dc,
                name: Some("iso-teacher".into())
            }
        );
        assert_eq!(
            parse_addr_spec("guest/web").expect("alias ref").0,
            AddrSpec::Alias {
                scope: RefScope::Guest,
                name: "web".into()
            }
        );
        assert_eq!(
            parse_addr_spec("10.0.0.1,fd00::1").unwrap_err(),
            "detected mixed ipv4/ipv6 addresses in address list '10.0.0.1,fd00::1'"
        );
        assert_eq!(
            parse_addr_spec("10.0.0.1-10.0.0.9,10.0.1.1").unwrap_err(),
            "you can't use a range in a list"
        );
        assert_eq!(
            parse_addr_spec("10.0.0.1,").unwrap_err(),
            "extraneous commas in list"
        );
        assert!(parse_addr_spec("10.0.0.5/24")
            .unwrap_err()
            .starts_with("invalid IP address"));
        assert!(parse_addr_spec("10.0.0.9-10.0.0.1")
            .unwrap_err()
            .starts_with("invalid IP address"));
    }

    #[test]
    fn ranges_and_lists_match() {
        let ctx_file = FwFile::default();
        let ctx = Ctx {
            cluster: &ctx_file,
            local: None,
        };
        let (range, _) = parse_addr_spec("10.0.0.10-10.0.0.20").expect("valid");
        assert!(ctx.matches(&range, ip("10.0.0.10")) && ctx.matches(&range, ip("10.0.0.20")));
        assert!(!ctx.matches(&range, ip("10.0.0.21")));
        let (list, _) = parse_addr_spec("10.0.0.1,192.168.0.0/24").expect("valid");
        assert!(ctx.matches(&list, ip("192.168.0.77")) && !ctx.matches(&list, ip("10.0.0.2")));
        let (missing, _) = parse_addr_spec("+nothere").expect("syntax is fine");
        assert!(!ctx.matches(&missing, ip("10.0.0.1")));
    }
}
