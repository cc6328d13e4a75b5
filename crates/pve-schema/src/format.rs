//! Named formats (`format => 'pve-vmid'` etc.), checked as PVE's registered verifiers do.
//!
//! Sources: `pve-common` `src/PVE/JSONSchema.pm` (most formats), `pve-access-control`
//! `src/PVE/AccessControl.pm` (`pve-poolid`) and `src/PVE/Auth/Plugin.pm` (`pve-realm`),
//! `pve-firewall` `src/PVE/Firewall.pm` (`IPorCIDR`, `IPorCIDRorAlias`, `pve-fw-*`),
//! `qemu-server` `src/PVE/QemuServer.pm` (`pve-hotplug-features`), `pve-container`
//! `src/PVE/LXC/Config.pm` (`lxc-ip-with-ll-iface`).
//!
//! Firewall port specs accept every service *name*: PVE looks names up in the node's
//! `/etc/services`, which a validator cannot know; numbers and ranges are checked exactly.
//! Error texts are the verifiers' `die` messages, trailing newline included, because PVE
//! puts them into the error map verbatim after `invalid format - `.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::Regex;

use crate::netip;

/// Result of a format check: `Err` carries PVE's message (ending in `\n`).
pub(crate) type Check = Result<(), String>;

/// Every format name (without `-list`/`-opt`) this module checks.
pub const CHECKED_FORMATS: &[&str] = &[
    "CIDR",
    "CIDRv4",
    "CIDRv6",
    "IPorCIDR",
    "IPorCIDRorAlias",
    "address",
    "disk-size",
    "dns-name",
    "ip",
    "ipv4",
    "ipv4mask",
    "ipv6",
    "lxc-ip-with-ll-iface",
    "mac-addr",
    "pve-bridge-id",
    "pve-configid",
    "pve-fw-addr-spec",
    "pve-fw-conntrack-helper",
    "pve-fw-dport-spec",
    "pve-fw-icmp-type-spec",
    "pve-fw-sport-spec",
    "pve-hotplug-features",
    "pve-iface",
    "pve-ipv4-config",
    "pve-ipv6-config",
    "pve-node",
    "pve-poolid",
    "pve-realm",
    "pve-startup-order",
    "pve-storage-id",
    "pve-tag",
    "pve-task-status-type",
    "pve-vmid",
    "regex",
    "string",
    "urlencoded",
];

/// Check `value` against the named format. `None` means the format is not implemented here
/// (the value is accepted; [`crate::Schema::unchecked_formats`] lists such names).
pub(crate) fn check_named(format: &str, value: &str) -> Option<Check> {
    if format == "regex" {
        return Some(Ok(()));
    }
    // `^(.*?)(?:-(list|opt))?$` as in check_format: `foo-list` checks each element of a
    // list against `foo`, `foo-opt` checks a non-empty value against `foo`.
    let (name, kind) = if let Some(base) = format.strip_suffix("-list") {
        (base, Kind::List)
    } else if let Some(base) = format.strip_suffix("-opt") {
        (base, Kind::Opt)
    } else {
        (format, Kind::Single)
    };
    if !CHECKED_FORMATS.contains(&name) {
        return None;
    }
    let one = |v: &str| check_single(name, v).unwrap_or(Ok(()));
    Some(match kind {
        Kind::Single => one(value),
        Kind::Opt if perl_false(value) => Ok(()),
        Kind::Opt => one(value),
        Kind::List => split_list(value).into_iter().try_for_each(one),
    })
}

enum Kind {
    Single,
    List,
    Opt,
}

/// `split_list` of pve-common's ParseUtils.pm: NUL-separated if a NUL is present,
/// otherwise separated by commas, semicolons and whitespace. Empty lists are allowed.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    if value.contains('\0') {
        let mut parts: Vec<&str> = value.split('\0').collect();
        // Perl's split drops trailing empty fields.
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        return parts;
    }
    value
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Perl truthiness of a string: `""` and `"0"` are false.
fn perl_false(value: &str) -> bool {
    value.is_empty() || value == "0"
}

/// Perl's `$` also matches before a final newline; strip it so `\z` anchors agree.
fn perl_end(value: &str) -> &str {
    value.strip_suffix('\n').unwrap_or(value)
}

fn re(pattern: &'static str) -> &'static Regex {
    static CACHE: OnceLock<HashMap<&'static str, Regex>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        PATTERNS
            .iter()
            .map(|p| {
                let compiled = Regex::new(&format!("^(?:{p})\\z"))
                    .expect("built-in format patterns are valid Rust regexes (tested)");
                (*p, compiled)
            })
            .collect()
    });
    cache
        .get(pattern)
        .expect("every pattern passed to re() is listed in PATTERNS (tested)")
}

const URLENCODED: &str = r"[-%a-zA-Z0-9_.!~*'()]*";
const CONFIGID: &str = r"(?i)[a-z][a-z0-9_-]+";
const STORAGE_ID: &str = r"(?i)[a-z][a-z0-9\-_.]*[a-z0-9]";
const BRIDGE_ID: &str = r"[-_.\w\d]+";
const VMID: &str = r"[1-9][0-9]{2,8}";
const NODE: &str = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?";
const MAC: &str = r"(?i)[a-f0-9][02468ace](?::[a-f0-9]{2}){5}";
const DNS_NAME: &str =
    r"(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)";
const IFACE: &str = r"(?i)[a-z][a-z0-9_]{1,20}([:.]\d+)?";
const TAG: &str = r"(?i)[a-z0-9_][a-z0-9_\-+.]*";
const TASK_STATUS: &str = r"(?i)ok|error|warning|unknown";
const POOL: &str = r"[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}";
const REALM: &str = r"[A-Za-z][A-Za-z0-9.\-_]+";
const CIDR_SPLIT: &str = r"([^/]+)/(\d+)";
const FW_ALIAS: &str = r"(dc/|guest/)?[A-Za-z][A-Za-z0-9\-_]+";
const DISK_SIZE: &str = r"\d+(\.\d+)?([KMGT](?:iB)?)?";

/// Every pattern used with [`re`], compiled once.
const PATTERNS: &[&str] = &[
    URLENCODED,
    CONFIGID,
    STORAGE_ID,
    BRIDGE_ID,
    VMID,
    NODE,
    MAC,
    DNS_NAME,
    IFACE,
    TAG,
    TASK_STATUS,
    POOL,
    REALM,
    CIDR_SPLIT,
    FW_ALIAS,
    DISK_SIZE,
];

fn matches(pattern: &'static str, value: &str) -> bool {
    re(pattern).is_match(perl_end(value))
}

fn fail(message: String) -> Check {
    Err(message)
}

/// IPv4 as pve-common's `$IPV4RE`: four decimal octets 0..255 without leading zeros,
/// which is exactly what `Ipv4Addr`'s parser accepts.
fn is_ipv4(value: &str) -> bool {
    perl_end(value).parse::<Ipv4Addr>().is_ok()
}

/// IPv6 as `$IPV6RE` (RFC 3986 grammar, embedded IPv4 allowed, no zone index), which is
/// the grammar `Ipv6Addr`'s parser accepts.
fn is_ipv6(value: &str) -> bool {
    perl_end(value).parse::<Ipv6Addr>().is_ok()
}

fn cidr_parts(value: &str) -> Option<(&str, u32)> {
    let caps = re(CIDR_SPLIT).captures(perl_end(value))?;
    let addr = caps.get(1)?.as_str();
    let bits = caps.get(2)?.as_str().parse::<u32>().ok()?;
    Some((addr, bits))
}

fn is_cidrv4(value: &str) -> bool {
    cidr_parts(value).is_some_and(|(a, bits)| is_ipv4(a) && bits > 7 && bits <= 32)
}

fn is_cidrv6(value: &str) -> bool {
    cidr_parts(value).is_some_and(|(a, bits)| is_ipv6(a) && bits > 7 && bits <= 128)
}

fn is_dns_name(value: &str) -> bool {
    matches(DNS_NAME, value)
}

fn parse_id(kind: &str, id: &str) -> Check {
    if id.chars().count() < 2 {
        return fail(format!(
            "{kind} ID '{id}' cannot be shorter than 2 characters\n"
        ));
    }
    if !matches(STORAGE_ID, id) {
        return fail(format!("{kind} ID '{id}' contains illegal characters\n"));
    }
    Ok(())
}

fn startup_order(value: &str) -> bool {
    // pve_parse_startup_order: false for an empty (or "0") value, else every
    // comma-separated part is `[order=]N`, `up=N`, `down=N` or blank.
    if perl_false(value) {
        return false;
    }
    value.split(',').all(|part| {
        let part = perl_end(part);
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        part.trim().is_empty()
            || digits(part.strip_prefix("order=").unwrap_or(part))
            || part.strip_prefix("up=").is_some_and(digits)
            || part.strip_prefix("down=").is_some_and(digits)
    })
}

const IPV4_MASKS: [&str; 33] = [
    "0.0.0.0",
    "128.0.0.0",
    "192.0.0.0",
    "224.0.0.0",
    "240.0.0.0",
    "248.0.0.0",
    "252.0.0.0",
    "254.0.0.0",
    "255.0.0.0",
    "255.128.0.0",
    "255.192.0.0",
    "255.224.0.0",
    "255.240.0.0",
    "255.248.0.0",
    "255.252.0.0",
    "255.254.0.0",
    "255.255.0.0",
    "255.255.128.0",
    "255.255.192.0",
    "255.255.224.0",
    "255.255.240.0",
    "255.255.248.0",
    "255.255.252.0",
    "255.255.254.0",
    "255.255.255.0",
    "255.255.255.128",
    "255.255.255.192",
    "255.255.255.224",
    "255.255.255.240",
    "255.255.255.248",
    "255.255.255.252",
    "255.255.255.254",
    "255.255.255.255",
];

/// `parse_hotplug_features` of qemu-server (`0` disables everything, `1` is the default set).
fn hotplug_features(value: &str) -> Check {
    if value == "0" || value == "1" {
        return Ok(());
    }
    for feature in split_list(value) {
        if !matches!(
            perl_end(feature),
            "network" | "disk" | "cpu" | "memory" | "usb" | "cloudinit"
        ) {
            return fail(format!("invalid hotplug feature '{feature}'\n"));
        }
    }
    Ok(())
}

/// `pve_verify_ip_or_cidr` of pve-firewall: `$IPV6RE|$IPV4RE` with an optional `/\d+`,
/// then `Net::IP->new(clean_cidr($cidr))` (host bits cleared when the length is non-zero).
fn ip_or_cidr(value: &str) -> Check {
    let v = perl_end(value);
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let shape_ok = (is_ipv4(addr) || is_ipv6(addr))
        && len.is_none_or(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if !shape_ok {
        return fail("value does not look like a valid IP address or CIDR network\n".to_owned());
    }
    let bits: u32 = if is_ipv4(addr) { 32 } else { 128 };
    match len {
        // clean_cidr leaves `a` and `a/0` alone; Net::IP then checks the raw prefix.
        None => Ok(()),
        Some(l) if l.parse::<u32>().is_ok_and(|n| n == 0) => {
            netip::parse(v).map(|_| ()).map_err(|e| format!("{e}\n"))
        }
        Some(l) => match l.parse::<u32>() {
            Ok(n) if n <= bits => Ok(()),
            _ => fail(format!(
                "Prefix length {l} is longer than IP address ({bits})\n"
            )),
        },
    }
}

/// Perl's `split(/,/, $s)` plus PVE's "extraneous commas" check.
fn comma_elements(value: &str) -> Result<Vec<&str>, String> {
    let mut parts: Vec<&str> = value.split(',').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.join(",") != value {
        return Err("extraneous commas in list\n".to_owned());
    }
    Ok(parts)
}

/// `parse_address_list` of pve-firewall (`source`/`dest` of rules).
fn fw_address_list(value: &str) -> Check {
    const MAX_IPSET_NAME: usize = 64;
    const MAX_ALIAS_NAME: usize = 64;
    let v = perl_end(value);
    if v.len() > 1 && v.starts_with('+') && !v.contains(char::is_whitespace) {
        if value.chars().count() > MAX_IPSET_NAME + 1 {
            return fail("ipset name too long\n".to_owned());
        }
        return Ok(());
    }
    if matches(FW_ALIAS, value) {
        if value.chars().count() > MAX_ALIAS_NAME {
            return fail("alias name too long\n".to_owned());
        }
        return Ok(());
    }
    let elements = comma_elements(value)?;
    let mut version = None;
    let mut range = false;
    for elem in &elements {
        let v = netip::parse(elem).map_err(|e| format!("invalid IP address: {e}\n"))?;
        range |= elem.contains('-');
        if version.is_some_and(|old| old != v) {
            return fail(format!(
                "detected mixed ipv4/ipv6 addresses in address list '{value}'\n"
            ));
        }
        version = Some(v);
    }
    if range && elements.len() > 1 {
        return fail("you can't use a range in a list\n".to_owned());
    }
    Ok(())
}

/// `parse_port_name_number_or_range` of pve-firewall. Service names are accepted (they
/// depend on the node's `/etc/services`); with `dport`, ICMP type names count as the old
/// way of giving an ICMP type.
fn fw_ports(value: &str, dport: bool) -> Check {
    let port = |s: &str| -> Result<u64, String> {
        match s.parse::<u64>() {
            Ok(n) if n <= 65535 => Ok(n),
            _ => Err(format!("invalid port '{s}'\n")),
        }
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut count = 0;
    let mut icmp = false;
    for item in comma_elements(value)? {
        if let Some((a, b)) = item.split_once(':').filter(|(a, b)| digits(a) && digits(b)) {
            count += 2;
            let (p1, p2) = (port(a)?, port(b)?);
            if p1 > p2 {
                return fail(format!(
                    "backwards range '{a}:{b}' not allowed, did you mean '{b}:{a}'?\n"
                ));
            }
        } else if digits(item) {
            count += 1;
            port(item)?;
        } else if dport && (ICMP_TYPES.contains(&item) || ICMPV6_TYPES.contains(&item)) {
            icmp = true;
        } else if item.is_empty() || item.contains(char::is_whitespace) {
            // No /etc/services entry has an empty or blank name.
            return fail(format!("invalid port '{item}'\n"));
        }
    }
    if icmp && count > 0 {
        return fail("ICMP ports not allowed in port range\n".to_owned());
    }
    if count > 15 {
        return fail("too many entries in port list (> 15 numbers)\n".to_owned());
    }
    Ok(())
}

/// `pve_fw_verify_conntrack_helper`. Its `die` has no trailing newline, so Perl appends
/// the source location (line of pve-firewall 6f1311f, installed path).
fn conntrack_helpers(value: &str) -> Check {
    for helper in comma_elements(value)? {
        if !CONNTRACK_HELPERS.contains(&helper) {
            return fail(format!(
                "unknown helper {helper} at /usr/share/perl5/PVE/Firewall.pm line 1167.\n"
            ));
        }
    }
    Ok(())
}

/// `$pve_fw_helpers` of Firewall.pm.
const CONNTRACK_HELPERS: &[&str] = &[
    "amanda",
    "ftp",
    "irc",
    "netbios-ns",
    "pptp",
    "sane",
    "sip",
    "snmp",
    "tftp",
];

/// `$icmp_type_names` of Firewall.pm (`iptables -p icmp -h`).
pub const ICMP_TYPES: &[&str] = &[
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

/// `$icmpv6_type_names` of Firewall.pm (`ip6tables -p icmpv6 -h`).
pub const ICMPV6_TYPES: &[&str] = &[
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

/// One registered verifier. `None` if `name` is not implemented.
fn check_single(name: &str, value: &str) -> Option<Check> {
    let ok = |cond: bool, msg: String| if cond { Ok(()) } else { Err(msg) };
    Some(match name {
        "string" | "regex" => Ok(()),
        "urlencoded" => ok(
            matches(URLENCODED, value),
            format!("invalid urlencoded string: {value}\n"),
        ),
        "pve-configid" => ok(
            matches(CONFIGID, value),
            format!("invalid configuration ID '{value}'\n"),
        ),
        "pve-storage-id" => parse_id("storage", value),
        "pve-bridge-id" => ok(
            matches(BRIDGE_ID, value),
            format!("invalid bridge ID '{value}'\n"),
        ),
        "pve-vmid" => ok(
            matches(VMID, value),
            "value does not look like a valid VM ID\n".to_owned(),
        ),
        "pve-node" => ok(
            matches(NODE, value),
            "value does not look like a valid node name\n".to_owned(),
        ),
        "mac-addr" => ok(
            matches(MAC, value),
            "value does not look like a valid unicast MAC address\n".to_owned(),
        ),
        "ipv4" => ok(
            is_ipv4(value),
            "value does not look like a valid IPv4 address\n".to_owned(),
        ),
        "ipv6" => ok(
            is_ipv6(value),
            "value does not look like a valid IPv6 address\n".to_owned(),
        ),
        "ip" => ok(
            is_ipv4(value) || is_ipv6(value),
            "value does not look like a valid IP address\n".to_owned(),
        ),
        "ipv4mask" => ok(
            IPV4_MASKS.contains(&value),
            "value does not look like a valid IP netmask\n".to_owned(),
        ),
        "CIDRv4" => ok(
            is_cidrv4(value),
            "value does not look like a valid IPv4 CIDR network\n".to_owned(),
        ),
        "CIDRv6" => ok(
            is_cidrv6(value),
            "value does not look like a valid IPv6 CIDR network\n".to_owned(),
        ),
        "CIDR" => ok(
            is_cidrv4(value) || is_cidrv6(value),
            "value does not look like a valid CIDR network\n".to_owned(),
        ),
        "dns-name" => ok(
            is_dns_name(value),
            "value does not look like a valid DNS name\n".to_owned(),
        ),
        "address" => ok(
            is_ipv4(value) || is_ipv6(value) || is_dns_name(value),
            format!("value does not look like a valid address: {value}\n"),
        ),
        "pve-iface" => ok(
            matches(IFACE, value),
            format!("invalid network interface name '{value}'\n"),
        ),
        "pve-startup-order" => ok(
            startup_order(value),
            "unable to parse startup options\n".to_owned(),
        ),
        "pve-tag" => ok(
            matches(TAG, value),
            "invalid characters in tag\n".to_owned(),
        ),
        "pve-task-status-type" => ok(
            matches(TASK_STATUS, value),
            format!("invalid status '{value}'\n"),
        ),
        "pve-poolid" => {
            // Perl's split drops trailing empty fields; count what it would return.
            let mut levels: Vec<&str> = value.split('/').collect();
            while levels.last().is_some_and(|p| p.is_empty()) {
                levels.pop();
            }
            if levels.len() > 3 {
                fail(format!(
                    "pool name '{value}' nested too deeply (max levels = 3)\n"
                ))
            } else {
                ok(
                    matches(POOL, value),
                    format!("pool name '{value}' contains invalid characters\n"),
                )
            }
        }
        "pve-realm" => ok(
            matches(REALM, value),
            "value does not look like a valid realm\n".to_owned(),
        ),
        "disk-size" => ok(
            matches(DISK_SIZE, value),
            format!("value does not look like a valid disk size: {value}\n"),
        ),
        "pve-ipv4-config" => ok(
            matches!(perl_end(value), "dhcp" | "manual") || is_cidrv4(value),
            "value does not look like a valid ipv4 network configuration\n".to_owned(),
        ),
        "pve-ipv6-config" => ok(
            matches!(perl_end(value), "auto" | "dhcp" | "manual") || is_cidrv6(value),
            "value does not look like a valid ipv6 network configuration\n".to_owned(),
        ),
        "lxc-ip-with-ll-iface" => {
            // `fe80:…%iface` is a link-local address with its interface.
            let ll_ok = value.split_once('%').is_some_and(|(addr, iface)| {
                addr.starts_with("fe80:") && is_ipv6(addr) && matches(IFACE, iface)
            });
            ok(
                ll_ok || is_ipv4(value) || is_ipv6(value),
                "value does not look like a valid IP address\n".to_owned(),
            )
        }
        "pve-hotplug-features" => hotplug_features(value),
        "IPorCIDR" => ip_or_cidr(value),
        "IPorCIDRorAlias" => {
            if matches(FW_ALIAS, value) {
                Ok(())
            } else {
                ip_or_cidr(value)
            }
        }
        "pve-fw-addr-spec" => fw_address_list(value),
        "pve-fw-sport-spec" => fw_ports(value, false),
        "pve-fw-dport-spec" => fw_ports(value, true),
        "pve-fw-icmp-type-spec" => ok(
            value.is_empty() || ICMP_TYPES.contains(&value) || ICMPV6_TYPES.contains(&value),
            format!("invalid icmp-type value '{value}'\n"),
        ),
        "pve-fw-conntrack-helper" => conntrack_helpers(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_pattern_compiles() {
        for p in PATTERNS {
            assert!(re(p).is_match("") || !re(p).is_match(""), "{p}");
        }
    }

    #[test]
    fn checked_formats_list_is_exact() {
        for name in CHECKED_FORMATS {
            assert!(
                check_single(name, "x").is_some(),
                "{name} listed but not checked"
            );
        }
        assert!(check_single("pve-qm-ide", "x").is_none());
    }

    fn msg(format: &str, value: &str) -> Option<String> {
        check_named(format, value)
            .expect("format is implemented")
            .err()
    }

    #[test]
    fn vmid_node_dns_texts() {
        assert_eq!(msg("pve-vmid", "100"), None);
        assert_eq!(msg("pve-vmid", "999999999"), None);
        assert_eq!(
            msg("pve-vmid", "99").as_deref(),
            Some("value does not look like a valid VM ID\n")
        );
        assert!(msg("pve-vmid", "0100").is_some());
        assert!(msg("pve-vmid", "1000000000").is_some());
        assert_eq!(msg("pve-node", "pve1"), None);
        assert_eq!(
            msg("pve-node", "pve_1").as_deref(),
            Some("value does not look like a valid node name\n")
        );
        assert!(msg("pve-node", "-pve").is_some());
        assert_eq!(msg("dns-name", "stud-01.lab.example"), None);
        assert_eq!(msg("dns-name", "a"), None);
        for bad in ["stud_01", "-a", "a-", "a..b", ".a", "a.", ""] {
            assert_eq!(
                msg("dns-name", bad).as_deref(),
                Some("value does not look like a valid DNS name\n"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn perl_dollar_accepts_one_trailing_newline() {
        assert_eq!(msg("pve-vmid", "100\n"), None);
        assert!(msg("pve-vmid", "100\n\n").is_some());
    }

    #[test]
    fn ip_and_cidr() {
        assert_eq!(msg("ip", "10.0.0.1"), None);
        assert_eq!(msg("ip", "fe80::1"), None);
        assert_eq!(
            msg("ip", "10.0.0.256").as_deref(),
            Some("value does not look like a valid IP address\n")
        );
        assert!(
            msg("ip", "010.0.0.1").is_some(),
            "no leading zeros in $IPV4RE"
        );
        assert_eq!(msg("CIDR", "10.0.0.0/8"), None);
        assert_eq!(msg("CIDR", "fd00::/64"), None);
        assert_eq!(
            msg("CIDR", "10.0.0.0/7").as_deref(),
            Some("value does not look like a valid CIDR network\n")
        );
        assert!(msg("CIDR", "10.0.0.0/33").is_some());
        assert!(msg("CIDR", "10.0.0.0").is_some());
        assert_eq!(msg("ipv4mask", "255.255.255.0"), None);
        assert!(msg("ipv4mask", "255.0.255.0").is_some());
    }

    #[test]
    fn mac_and_ids() {
        assert_eq!(msg("mac-addr", "BC:24:11:00:00:01"), None);
        assert_eq!(
            msg("mac-addr", "01:24:11:00:00:01").as_deref(),
            Some("value does not look like a valid unicast MAC address\n")
        );
        assert_eq!(msg("pve-storage-id", "local-lvm"), None);
        assert_eq!(
            msg("pve-storage-id", "l").as_deref(),
            Some("storage ID 'l' cannot be shorter than 2 characters\n")
        );
        assert_eq!(
            msg("pve-storage-id", "local-").as_deref(),
            Some("storage ID 'local-' contains illegal characters\n")
        );
        assert_eq!(
            msg("pve-configid", "1net").as_deref(),
            Some("invalid configuration ID '1net'\n")
        );
        assert_eq!(
            msg("pve-iface", "e").as_deref(),
            Some("invalid network interface name 'e'\n")
        );
        assert_eq!(msg("pve-iface", "vmbr0.100"), None);
    }

    #[test]
    fn pools_realms_tags() {
        assert_eq!(msg("pve-poolid", "exam-2026"), None);
        assert_eq!(msg("pve-poolid", "school/exam/a"), None);
        assert_eq!(
            msg("pve-poolid", "a/b/c/d").as_deref(),
            Some("pool name 'a/b/c/d' nested too deeply (max levels = 3)\n")
        );
        assert_eq!(
            msg("pve-poolid", "exam 1").as_deref(),
            Some("pool name 'exam 1' contains invalid characters\n")
        );
        assert_eq!(msg("pve-realm", "pam"), None);
        assert!(msg("pve-realm", "p").is_some());
        assert_eq!(msg("pve-tag-list", "lab;exam-1,x.y"), None);
        assert_eq!(msg("pve-tag-list", ""), None, "empty lists are allowed");
        assert_eq!(
            msg("pve-tag-list", "lab,-bad").as_deref(),
            Some("invalid characters in tag\n")
        );
    }

    #[test]
    fn list_and_opt_suffixes() {
        assert_eq!(msg("pve-configid-list", "net0,ide2 scsi1"), None);
        assert_eq!(
            msg("pve-configid-list", "net0,1x").as_deref(),
            Some("invalid configuration ID '1x'\n")
        );
        assert_eq!(msg("pve-vmid-list", "100\x00101"), None);
        assert!(msg("pve-vmid-list", "100\0x").is_some());
        assert_eq!(msg("pve-vmid-opt", ""), None);
        assert!(msg("pve-vmid-opt", "5").is_some());
        assert!(check_named("pve-fw-protocol-spec", "x").is_none());
        assert!(check_named("pve-qm-bootdisk-list", "x").is_none());
    }

    #[test]
    fn startup_order_grammar() {
        assert_eq!(msg("pve-startup-order", "order=1,up=30,down=60"), None);
        assert_eq!(msg("pve-startup-order", "2"), None);
        assert_eq!(
            msg("pve-startup-order", "order=x").as_deref(),
            Some("unable to parse startup options\n")
        );
        assert!(msg("pve-startup-order", "").is_some());
    }

    #[test]
    fn firewall_addresses() {
        for good in [
            "10.10.0.1",
            "10.10.0.0/16",
            "10.0.0.1-10.0.0.9",
            "10.0.0.1,10.0.0.3",
            "fd00::/64,fd01::1",
            "+students",
            "+dc/students",
            "teacher",
            "dc/teacher",
            "guest/teacher",
            "",
        ] {
            assert_eq!(msg("pve-fw-addr-spec", good), None, "{good:?}");
        }
        let cases = [
            ("10.0.0.1,", "extraneous commas in list\n"),
            (
                "10.0.0.1,,10.0.0.2",
                "invalid IP address: Invalid chars in IP \n",
            ),
            (
                "10.0.0.1,fd00::1",
                "detected mixed ipv4/ipv6 addresses in address list '10.0.0.1,fd00::1'\n",
            ),
            (
                "10.0.0.1-10.0.0.5,10.0.0.9",
                "you can't use a range in a list\n",
            ),
            (
                "10.10.0.1/16",
                "invalid IP address: Invalid prefix 00001010000010100000000000000001/16\n",
            ),
            (
                "10.0.0.300",
                "invalid IP address: Invalid quad in IP address 10.0.0.300 - 300\n",
            ),
        ];
        for (value, text) in cases {
            assert_eq!(
                msg("pve-fw-addr-spec", value).as_deref(),
                Some(text),
                "{value:?}"
            );
        }
        let long = format!("+{}", "s".repeat(65));
        assert_eq!(
            msg("pve-fw-addr-spec", &long).as_deref(),
            Some("ipset name too long\n")
        );
        let long = "a".repeat(65);
        assert_eq!(
            msg("pve-fw-addr-spec", &long).as_deref(),
            Some("alias name too long\n")
        );
    }

    #[test]
    fn ip_or_cidr_and_alias() {
        for good in ["10.0.0.1", "10.0.0.5/24", "fd00::1/64", "0.0.0.0/0"] {
            assert_eq!(msg("IPorCIDR", good), None, "{good}");
        }
        assert_eq!(
            msg("IPorCIDR", "teacher").as_deref(),
            Some("value does not look like a valid IP address or CIDR network\n")
        );
        assert_eq!(
            msg("IPorCIDR", "10.0.0.0/33").as_deref(),
            Some("Prefix length 33 is longer than IP address (32)\n")
        );
        assert_eq!(
            msg("IPorCIDR", "10.0.0.1/0").as_deref(),
            Some("Invalid prefix 00001010000000000000000000000001/0\n")
        );
        assert_eq!(msg("IPorCIDRorAlias", "dc/teacher"), None);
        assert!(msg("IPorCIDRorAlias", "dc/1x").is_some());
    }

    #[test]
    fn firewall_ports_icmp_helpers() {
        for good in [
            "22",
            "80,443",
            "5900:5999",
            "ssh",
            "http,8006",
            "0:65535",
            "1,2,3,4,5,6,7,8,9,10,11,12,13,14:15",
        ] {
            assert_eq!(msg("pve-fw-dport-spec", good), None, "{good}");
        }
        let cases = [
            ("65536", "invalid port '65536'\n"),
            (
                "10:1",
                "backwards range '10:1' not allowed, did you mean '1:10'?\n",
            ),
            ("22,", "extraneous commas in list\n"),
            ("echo-request,22", "ICMP ports not allowed in port range\n"),
            (
                "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16",
                "too many entries in port list (> 15 numbers)\n",
            ),
        ];
        for (value, text) in cases {
            assert_eq!(
                msg("pve-fw-dport-spec", value).as_deref(),
                Some(text),
                "{value}"
            );
        }
        // ICMP type names only count as such in dport.
        assert_eq!(msg("pve-fw-dport-spec", "echo-request"), None);
        assert_eq!(msg("pve-fw-icmp-type-spec", "echo-request"), None);
        assert_eq!(msg("pve-fw-icmp-type-spec", "neighbour-solicitation"), None);
        assert_eq!(
            msg("pve-fw-icmp-type-spec", "ping").as_deref(),
            Some("invalid icmp-type value 'ping'\n")
        );
        assert_eq!(msg("pve-fw-conntrack-helper", "ftp,tftp"), None);
        assert_eq!(
            msg("pve-fw-conntrack-helper", "ftp,http").as_deref(),
            Some("unknown helper http at /usr/share/perl5/PVE/Firewall.pm line 1167.\n")
        );
    }

    #[test]
    fn guest_config_formats() {
        assert_eq!(msg("pve-hotplug-features", "network,disk,usb"), None);
        assert_eq!(msg("pve-hotplug-features", "0"), None);
        assert_eq!(
            msg("pve-hotplug-features", "network,gpu").as_deref(),
            Some("invalid hotplug feature 'gpu'\n")
        );
        assert_eq!(msg("disk-size", "32G"), None);
        assert_eq!(msg("disk-size", "1.5TiB"), None);
        assert_eq!(
            msg("disk-size", "32GB").as_deref(),
            Some("value does not look like a valid disk size: 32GB\n")
        );
        assert_eq!(msg("pve-ipv4-config", "dhcp"), None);
        assert_eq!(msg("pve-ipv4-config", "10.10.0.5/16"), None);
        assert!(msg("pve-ipv4-config", "10.10.0.5").is_some());
        assert_eq!(msg("pve-ipv6-config", "auto"), None);
        assert_eq!(msg("lxc-ip-with-ll-iface", "fe80::1%eth0"), None);
        assert_eq!(msg("lxc-ip-with-ll-iface", "10.0.0.1"), None);
        assert_eq!(
            msg("lxc-ip-with-ll-iface", "fe80::1%").as_deref(),
            Some("value does not look like a valid IP address\n")
        );
    }

    #[test]
    fn split_list_like_perl() {
        assert_eq!(split_list(" a, b;c  d "), ["a", "b", "c", "d"]);
        assert_eq!(split_list("a\0 b\0"), ["a", " b"]);
        assert!(split_list("").is_empty());
    }
}
