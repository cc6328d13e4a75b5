//! The simulated Proxmox VE firewall: every `.fw` file of the cluster held in memory,
//! the API handlers for options, rules, security groups, IP sets and aliases at
//! datacenter, node and guest level, and a reachability oracle that evaluates a packet
//! the way `pve-firewall` (iptables backend) would filter it.
//!
//! Facts follow `reference/fosscloud-and-firewall.md` Part B and `reference/pve-api.md` §7.
//! The model stores each file as the firewall daemon would read it back after a save
//! (names lower-cased by the parser, rule `enable` as 0/1, host bits cleaned), so what a
//! GET returns and what the oracle evaluates is what a real node would show.
//!
//! ```ignore
//! use pve_sim::firewall::{Firewall, Host, Nic, Proto, Scope};
//! use pve_sim::error::Params;
//!
//! let mut fw = Firewall::new();
//! let put = |pairs: &[(&str, &str)]| -> Params {
//!     pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
//! };
//! fw.handle(&Scope::Cluster, &http::Method::PUT, &["options"], &put(&[("enable", "1")]))?;
//! fw.handle(&Scope::Guest(101), &http::Method::PUT, &["options"], &put(&[("enable", "1")]))?;
//! let student = Host { vmid: Some(101), ip: "10.10.0.11".parse()?, nics: vec![Nic { index: 0, firewall: true }] };
//! let teacher = Host { vmid: Some(100), ip: "10.10.0.1".parse()?, nics: vec![Nic { index: 0, firewall: false }] };
//! // A firewalled guest without rules drops inbound traffic (default policy_in DROP).
//! assert!(!fw.reachability(&teacher, &student, Proto::Tcp, Some(22)).allowed);
//! assert!(fw.reachability(&student, &teacher, Proto::Tcp, Some(22)).allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Params};

/// Which firewall configuration file a request addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `/cluster/firewall/…` — `cluster.fw` (datacenter options, host rules, groups, sets, aliases).
    Cluster,
    /// `/nodes/{node}/firewall/…` — that node's `host.fw`.
    Node(String),
    /// `/nodes/{node}/{qemu|lxc}/{vmid}/firewall/…` — `<vmid>.fw`; QEMU and LXC share it.
    Guest(u32),
}

/// One `.fw` file: options, rules and (cluster and guest files only) IP sets and aliases.
#[derive(Debug, Clone, Default, PartialEq)]
struct FwFile {
    /// `[OPTIONS]`: only explicitly set keys, values as the parser reads them back.
    options: BTreeMap<String, Value>,
}

/// A `[group name]` section of `cluster.fw`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Group {
    comment: Option<String>,
}

/// The whole firewall configuration of a simulated cluster, in memory.
///
/// Cheap enough to clone for snapshots; all methods are synchronous and pure, the HTTP
/// layer holds it behind its own lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Firewall {
    cluster: FwFile,
    groups: BTreeMap<String, Group>,
    nodes: BTreeMap<String, FwFile>,
    guests: BTreeMap<u32, FwFile>,
}

/// One end of a packet for [`Firewall::reachability`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The guest's id, or `None` for an address outside the cluster's guests.
    pub vmid: Option<u32>,
    /// The address the packet is sent from / to.
    pub ip: IpAddr,
    /// The guest's network devices (`netX`) and their `firewall=` flag.
    pub nics: Vec<Nic>,
}

/// A guest network device as far as the firewall cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nic {
    /// `X` of `netX`.
    pub index: u32,
    /// `firewall=1` in the `netX` string.
    pub firewall: bool,
}

/// Protocol of a probe packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (a new connection: SYN to the destination port).
    Tcp,
    /// UDP to the destination port.
    Udp,
    /// ICMP (v4) or ICMPv6 echo request, by the address family of the hosts.
    Icmp,
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            "icmp" => Ok(Self::Icmp),
            other => Err(format!(
                "unknown protocol '{other}' (allowed: tcp, udp, icmp)"
            )),
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        })
    }
}

/// Result of [`Firewall::reachability`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether a new connection/packet gets through.
    pub allowed: bool,
    /// Which chain and rule decided, e.g.
    /// `dropped by 105 IN: group iso-student rule 3 (in DROP)`.
    pub reason: String,
}

impl Firewall {
    /// An empty cluster: no `.fw` files, so nothing is enabled and nothing filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handle one firewall API request.
    ///
    /// `rest` are the decoded path segments after `…/firewall/` (`[]`, `["options"]`,
    /// `["rules", "3"]`, `["groups", "g1", "0"]`, `["ipset", "x", "10.0.0.0/24"]`,
    /// `["aliases", "a"]`, …). `params` are the request parameters without the path
    /// parameters, already type-checked by the caller; the firewall-specific formats
    /// (address, port and protocol specs) are checked here. Returns the `data` value
    /// (`null` for writes) or the error PVE would answer with.
    pub fn handle(
        &mut self,
        scope: &Scope,
        method: &Method,
        rest: &[&str],
        params: &Params,
    ) -> ApiResult<Value> {
        let _ = (params, &mut self.cluster);
        // Interim: the handlers land in the next commit.
        Err(not_implemented(method, scope, rest))
    }

    /// `qm clone` / `pct clone`: copy `<from>.fw` (options, rules, IP sets, aliases) to
    /// `<to>.fw`. Nothing happens when the source has no firewall file, as in PVE.
    pub fn copy_guest(&mut self, from: u32, to: u32) {
        if let Some(file) = self.guests.get(&from).cloned() {
            self.guests.insert(to, file);
        }
    }

    /// Destroying a guest deletes its `<vmid>.fw`.
    pub fn remove_guest(&mut self, vmid: u32) {
        self.guests.remove(&vmid);
    }

    /// Everything, as deterministic JSON (sorted keys, rules in order), for `/_sim/state`.
    ///
    /// Rules are shown as a GET would list them (with `pos`, `ipversion` and any
    /// `errors`), without digests.
    pub fn state(&self) -> Value {
        json!({ "cluster": {}, "nodes": {}, "guests": {} })
    }

    /// Would a new packet of `proto` (to `port` for TCP/UDP) from `from` reach `to`?
    ///
    /// Evaluated per Part B.2–B.5: nothing filters unless the cluster firewall is
    /// enabled; a guest's chains apply only when its `.fw` has `enable: 1` and the NIC
    /// (net0, or the lowest-numbered one) has `firewall=1`; the packet passes the
    /// sender's OUT chain, then the receiver's IN chain; first match wins. Connection
    /// tracking is not modelled: every probe is a new connection.
    pub fn reachability(&self, from: &Host, to: &Host, proto: Proto, port: Option<u16>) -> Verdict {
        let _ = (from, to, proto, port);
        Verdict {
            allowed: true,
            reason: "accepted: cluster firewall disabled".into(),
        }
    }
}

/// 501 `Method 'GET /…' not implemented`, with the path rebuilt as far as the scope knows it.
fn not_implemented(method: &Method, scope: &Scope, rest: &[&str]) -> ApiError {
    let base = match scope {
        Scope::Cluster => "/cluster/firewall".to_owned(),
        Scope::Node(node) => format!("/nodes/{node}/firewall"),
        Scope::Guest(vmid) => format!("/nodes/{{node}}/{{qemu|lxc}}/{vmid}/firewall"),
    };
    let mut path = base;
    for seg in rest {
        path.push('/');
        path.push_str(seg);
    }
    ApiError::status(
        StatusCode::NOT_IMPLEMENTED,
        format!("Method '{method} {path}' not implemented"),
    )
}
