//! Interfaces and addresses from the QEMU guest agent and from LXC's `/interfaces`, and the
//! primary address chooser. Pure parsing, no IO.

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use pve_vm::VmId;

use crate::error::{Error, Result};

/// One address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    /// The address.
    pub ip: IpAddr,
    /// Prefix length, when reported.
    pub prefix: Option<u8>,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{p}", self.ip),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// A guest network interface as the guest (QEMU) or the host (LXC) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name inside the guest (`ens18`, `eth0`, `lo`).
    pub name: String,
    /// MAC address, lower-case, when reported.
    pub mac: Option<String>,
    /// Addresses (IPv4 and IPv6, including loopback and link-local as reported).
    pub addresses: Vec<Address>,
}

impl Interface {
    /// `true` for the loopback interface (`lo`, or only loopback addresses).
    pub fn is_loopback(&self) -> bool {
        self.name == "lo"
            || (!self.addresses.is_empty() && self.addresses.iter().all(|a| a.ip.is_loopback()))
    }

    /// The usable IPv4 addresses: not loopback, link-local, unspecified or broadcast.
    pub fn usable_ipv4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addresses.iter().filter_map(|a| match a.ip {
            IpAddr::V4(v4) if usable_v4(v4) => Some(v4),
            _ => None,
        })
    }
}

fn usable_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback() || ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast())
}

/// Chooses the primary IPv4 address: a usable address (not loopback, link-local,
/// unspecified) of the guest's own NICs — the interfaces whose MAC is in `prefer_macs`, in
/// that order (pass the config's `net0`, `net1`, … MACs) — and if none of them is reported
/// at all (MACs changed inside the guest, or no preference given), of the first
/// non-loopback interface that has one. While an own NIC is reported without an IPv4
/// address, the answer is `None`: addresses of bridges inside the guest never win.
///
/// ```
/// use pve_net::{choose_primary_ipv4, Address, Interface};
/// let lo = Interface { name: "lo".into(), mac: None,
///     addresses: vec![Address { ip: "127.0.0.1".parse().unwrap(), prefix: Some(8) }] };
/// let eth = Interface { name: "ens18".into(), mac: Some("bc:24:11:00:00:01".into()),
///     addresses: vec![Address { ip: "169.254.3.4".parse().unwrap(), prefix: Some(16) },
///                     Address { ip: "10.0.0.7".parse().unwrap(), prefix: Some(24) }] };
/// assert_eq!(choose_primary_ipv4(&[lo, eth], &[]), Some("10.0.0.7".parse().unwrap()));
/// ```
pub fn choose_primary_ipv4(interfaces: &[Interface], prefer_macs: &[String]) -> Option<Ipv4Addr> {
    let has_mac = |i: &Interface, mac: &str| {
        i.mac
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
    };
    if prefer_macs
        .iter()
        .any(|mac| interfaces.iter().any(|i| has_mac(i, mac)))
    {
        // The guest reports its own NICs: only they count, so a bridge inside the guest
        // that is up before DHCP answered is never taken for the guest's address.
        return prefer_macs.iter().find_map(|mac| {
            interfaces
                .iter()
                .filter(|i| has_mac(i, mac))
                .find_map(|i| i.usable_ipv4().next())
        });
    }
    interfaces
        .iter()
        .filter(|i| !i.is_loopback())
        .find_map(|i| i.usable_ipv4().next())
}

/// One entry of `ip-addresses` (QGA and LXC alike; types differ: `ipv4`/`inet`).
#[derive(Deserialize)]
struct RawAddress {
    #[serde(rename = "ip-address")]
    ip: String,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_u8")]
    prefix: Option<u8>,
}

impl RawAddress {
    fn parse(&self) -> Option<Address> {
        // IPv6 link-local may carry a zone (`fe80::1%ens18`).
        let ip = self.ip.split('%').next()?.parse().ok()?;
        Some(Address {
            ip,
            prefix: self.prefix,
        })
    }
}

#[derive(Deserialize)]
struct QgaInterface {
    name: String,
    #[serde(rename = "hardware-address", default)]
    mac: Option<String>,
    #[serde(rename = "ip-addresses", default)]
    addresses: Option<Vec<RawAddress>>,
}

/// The agent's error object inside a 200 answer.
#[derive(Deserialize)]
pub(crate) struct QgaError {
    #[serde(default)]
    pub(crate) class: String,
    #[serde(default)]
    pub(crate) desc: String,
}

/// `result` of an agent command: the value, or the agent's error.
pub(crate) enum AgentResult {
    Value(serde_json::Value),
    Error(QgaError),
}

/// Splits `{"result": …}` of an agent answer.
pub(crate) fn agent_result(what: &str, data: serde_json::Value) -> Result<AgentResult> {
    let unexpected = |why: &str| Error::Unexpected {
        what: what.to_owned(),
        why: why.to_owned(),
    };
    let serde_json::Value::Object(mut map) = data else {
        return Err(unexpected("the answer is not an object with `result`"));
    };
    let result = map
        .remove("result")
        .ok_or_else(|| unexpected("the answer has no `result`"))?;
    if let Some(err) = result.get("error") {
        let err: QgaError = serde_json::from_value(err.clone())
            .map_err(|e| unexpected(&format!("unreadable agent error: {e}")))?;
        return Ok(AgentResult::Error(err));
    }
    Ok(AgentResult::Value(result))
}

/// Parses the `result` array of `agent/network-get-interfaces`.
pub(crate) fn parse_qga(what: &str, result: serde_json::Value) -> Result<Vec<Interface>> {
    let list: Vec<QgaInterface> =
        serde_json::from_value(result).map_err(|e| Error::Unexpected {
            what: what.to_owned(),
            why: format!("not a list of interfaces: {e}"),
        })?;
    Ok(list
        .into_iter()
        .map(|i| Interface {
            name: i.name,
            mac: i.mac.map(|m| m.to_ascii_lowercase()),
            addresses: i
                .addresses
                .unwrap_or_default()
                .iter()
                .filter_map(RawAddress::parse)
                .collect(),
        })
        .collect())
}

#[derive(Deserialize)]
struct LxcInterface {
    name: String,
    #[serde(default)]
    hwaddr: Option<String>,
    #[serde(rename = "hardware-address", default)]
    hardware_address: Option<String>,
    #[serde(default)]
    inet: Option<String>,
    #[serde(default)]
    inet6: Option<String>,
    #[serde(rename = "ip-addresses", default)]
    addresses: Option<Vec<RawAddress>>,
}

/// `addr/prefix` as LXC's older per-family fields carry it (several separated by spaces
/// or commas, to be safe).
fn parse_cidrs(s: &str) -> impl Iterator<Item = Address> + '_ {
    s.split([' ', ','])
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (ip, prefix) = match p.split_once('/') {
                Some((ip, prefix)) => (ip, prefix.parse().ok()),
                None => (p, None),
            };
            Some(Address {
                ip: ip.parse().ok()?,
                prefix,
            })
        })
}

/// Parses `GET /nodes/{node}/lxc/{vmid}/interfaces` (`None` = `null` = stopped).
pub(crate) fn parse_lxc(what: &str, data: serde_json::Value) -> Result<Option<Vec<Interface>>> {
    let list: Option<Vec<LxcInterface>> =
        serde_json::from_value(data).map_err(|e| Error::Unexpected {
            what: what.to_owned(),
            why: format!("not a list of interfaces: {e}"),
        })?;
    Ok(list.map(|list| {
        list.into_iter()
            .map(|i| {
                // `ip-addresses` (since 2025) lists every address; older servers only have
                // one address per family in `inet`/`inet6`.
                let addresses = match i.addresses {
                    Some(addrs) => addrs.iter().filter_map(RawAddress::parse).collect(),
                    None => i
                        .inet
                        .iter()
                        .chain(i.inet6.iter())
                        .flat_map(|s| parse_cidrs(s))
                        .collect(),
                };
                Interface {
                    name: i.name,
                    mac: i
                        .hardware_address
                        .or(i.hwaddr)
                        .map(|m| m.to_ascii_lowercase()),
                    addresses,
                }
            })
            .collect()
    }))
}

/// Parses the answer (`data`) of `GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces`
/// (`{"result": [...]}`) into interfaces. Pure: no IO, so answers can be checked offline.
///
/// `source` names the request in errors (e.g. its path). The agent's own rejection
/// (`{"result": {"error": …}}`) is [`Error::AgentCommand`] for `vmid`; any other shape is
/// [`Error::Unexpected`]. Addresses that are not IP addresses are skipped.
///
/// ```
/// let data = serde_json::json!({"result": [{"name": "ens18", "hardware-address": "BC:24:11:00:00:01",
///     "ip-addresses": [{"ip-address": "10.0.0.7", "prefix": 24}]}]});
/// let vmid = pve_vm::VmId::new(101).unwrap();
/// let ifaces = pve_net::parse_agent_interfaces("agent", vmid, data).unwrap();
/// assert_eq!(ifaces[0].mac.as_deref(), Some("bc:24:11:00:00:01"));
/// assert_eq!(ifaces[0].addresses[0].to_string(), "10.0.0.7/24");
/// ```
pub fn parse_agent_interfaces(
    source: &str,
    vmid: VmId,
    data: serde_json::Value,
) -> Result<Vec<Interface>> {
    match agent_result(source, data)? {
        AgentResult::Value(v) => parse_qga(source, v),
        AgentResult::Error(e) => Err(Error::AgentCommand {
            vmid,
            command: "network-get-interfaces",
            class: e.class,
            desc: e.desc,
        }),
    }
}

/// Parses the answer (`data`) of `GET /nodes/{node}/lxc/{vmid}/interfaces` into interfaces.
/// Pure: no IO. `null` (a stopped container) is [`Error::NotRunning`] for `vmid`; any other
/// shape than a list of interfaces is [`Error::Unexpected`] naming `source`.
pub fn parse_lxc_interfaces(
    source: &str,
    vmid: VmId,
    data: serde_json::Value,
) -> Result<Vec<Interface>> {
    parse_lxc(source, data)?.ok_or(Error::NotRunning { vmid })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn qga_reference_answer() {
        let data = json!({"result":[
            {"name":"lo","hardware-address":"00:00:00:00:00:00",
             "ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8},
                             {"ip-address":"::1","ip-address-type":"ipv6","prefix":128}],
             "statistics":{"rx-bytes":6480}},
            {"name":"ens18","hardware-address":"BC:24:11:11:75:0E",
             "ip-addresses":[{"ip-address":"fe80::be24:11ff:fe11:750e%ens18","ip-address-type":"ipv6","prefix":64},
                             {"ip-address":"192.168.200.139","ip-address-type":"ipv4","prefix":"24"}]},
            {"name":"ens19"}
        ]});
        let AgentResult::Value(result) = agent_result("x", data).unwrap() else {
            panic!("expected a value")
        };
        let ifaces = parse_qga("x", result).unwrap();
        assert_eq!(ifaces.len(), 3);
        assert!(ifaces[0].is_loopback());
        assert_eq!(ifaces[1].mac.as_deref(), Some("bc:24:11:11:75:0e"));
        assert_eq!(ifaces[1].addresses[0].ip, ip("fe80::be24:11ff:fe11:750e"));
        assert_eq!(ifaces[1].addresses[1].to_string(), "192.168.200.139/24");
        assert!(ifaces[2].addresses.is_empty(), "no ip-addresses key");
        assert_eq!(
            choose_primary_ipv4(&ifaces, &[]),
            Some("192.168.200.139".parse().unwrap())
        );
    }

    #[test]
    fn qga_error_inside_200() {
        let data = json!({"result":{"error":{"class":"Unsupported",
            "desc":"this feature or command is not currently supported"}}});
        match agent_result("x", data).unwrap() {
            AgentResult::Error(e) => {
                assert_eq!(e.class, "Unsupported");
                assert!(e.desc.contains("not currently supported"));
            }
            AgentResult::Value(v) => panic!("expected the error, got {v}"),
        }
        assert!(agent_result("x", json!(null)).is_err());
        assert!(agent_result("x", json!({"other": 1})).is_err());
    }

    #[test]
    fn lxc_new_and_old_shapes() {
        let new = json!([
            {"name":"lo","hwaddr":"00:00:00:00:00:00","inet":"127.0.0.1/8","inet6":"::1/128",
             "ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"inet","prefix":8}]},
            {"name":"eth0","hwaddr":"BC:24:11:AA:BB:CC","hardware-address":"bc:24:11:aa:bb:cc",
             "inet":"10.0.0.5/24","inet6":"fe80::1/64",
             "ip-addresses":[{"ip-address":"10.0.0.5","ip-address-type":"inet","prefix":24},
                             {"ip-address":"10.0.0.6","ip-address-type":"inet","prefix":24},
                             {"ip-address":"fe80::1","ip-address-type":"inet6","prefix":64}]}
        ]);
        let ifaces = parse_lxc("x", new).unwrap().unwrap();
        assert_eq!(ifaces[1].addresses.len(), 3, "ip-addresses wins over inet");
        assert_eq!(ifaces[1].mac.as_deref(), Some("bc:24:11:aa:bb:cc"));
        assert_eq!(
            choose_primary_ipv4(&ifaces, &[]),
            Some("10.0.0.5".parse().unwrap())
        );

        let old = json!([
            {"name":"lo","hwaddr":"00:00:00:00:00:00","inet":"127.0.0.1/8"},
            {"name":"eth0","hwaddr":"BC:24:11:AA:BB:CC","inet":"10.0.0.5/24","inet6":"fe80::1/64"},
            {"name":"eth1","hwaddr":"BC:24:11:AA:BB:CD"}
        ]);
        let ifaces = parse_lxc("x", old).unwrap().unwrap();
        assert_eq!(
            ifaces[1].addresses,
            vec![
                Address {
                    ip: ip("10.0.0.5"),
                    prefix: Some(24)
                },
                Address {
                    ip: ip("fe80::1"),
                    prefix: Some(64)
                }
            ]
        );
        assert!(ifaces[2].addresses.is_empty());
        assert_eq!(parse_lxc("x", json!(null)).unwrap(), None);
        assert!(parse_lxc("x", json!({"a":1})).is_err());
    }

    #[test]
    fn chooser_skips_loopback_link_local_and_prefers_own_nics() {
        let iface = |name: &str, mac: &str, ips: &[&str]| Interface {
            name: name.into(),
            mac: Some(mac.into()),
            addresses: ips
                .iter()
                .map(|s| Address {
                    ip: ip(s),
                    prefix: None,
                })
                .collect(),
        };
        let list = vec![
            iface("lo", "00:00:00:00:00:00", &["127.0.0.1", "::1"]),
            iface("docker0", "02:42:00:00:00:01", &["172.17.0.1"]),
            iface(
                "ens18",
                "bc:24:11:00:00:01",
                &["fe80::1", "169.254.1.1", "10.1.2.3"],
            ),
        ];
        assert_eq!(
            choose_primary_ipv4(&list, &[]),
            Some("172.17.0.1".parse().unwrap()),
            "without a preference: first non-loopback interface with a usable address"
        );
        assert_eq!(
            choose_primary_ipv4(&list, &["BC:24:11:00:00:01".into()]),
            Some("10.1.2.3".parse().unwrap()),
            "the guest's own NIC wins (MACs compared case-insensitively)"
        );
        let own_without_v4 = vec![
            iface("docker0", "02:42:00:00:00:01", &["172.17.0.1"]),
            iface("ens18", "bc:24:11:00:00:01", &["fe80::1"]),
        ];
        assert_eq!(
            choose_primary_ipv4(&own_without_v4, &["bc:24:11:00:00:01".into()]),
            None,
            "the own NIC has no IPv4 yet: wait instead of taking docker0"
        );
        assert_eq!(
            choose_primary_ipv4(&own_without_v4, &["bc:24:11:99:99:99".into()]),
            Some("172.17.0.1".parse().unwrap()),
            "no own NIC reported: fall back"
        );
        let only_ll = vec![iface(
            "ens18",
            "bc:24:11:00:00:01",
            &["fe80::1", "169.254.1.1"],
        )];
        assert_eq!(choose_primary_ipv4(&only_ll, &[]), None);
        // A loopback-only interface under another name is still loopback.
        let lo2 = vec![iface("lo0", "00:00:00:00:00:00", &["127.0.0.2"])];
        assert_eq!(choose_primary_ipv4(&lo2, &[]), None);
    }
}
