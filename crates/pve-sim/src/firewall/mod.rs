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
//! ```
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

mod address;
mod aliases;
mod catalog;
mod digest;
mod groups;
mod ipset;
mod options;
mod oracle;
mod rules;

pub use oracle::EPHEMERAL_SOURCE_PORT;

use aliases::Alias;
use ipset::IpSet;
use rules::Rule;

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
    /// `[RULES]` in order (position 0 first).
    rules: Vec<Rule>,
    /// `[IPSET name]` sections, keyed by the lower-cased name.
    ipsets: BTreeMap<String, IpSet>,
    /// `[ALIASES]`, keyed by the lower-cased name.
    aliases: BTreeMap<String, Alias>,
}

/// A `[group name]` section of `cluster.fw`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Group {
    comment: Option<String>,
    rules: Vec<Rule>,
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
    anti_lockout: AntiLockout,
}

/// PVE's anti-lockout enable: a cluster `enable` > 1 is stored as the Unix time of the
/// write and read back as 0 (disabled) once it is older than the window (60 s) unless
/// `enable: 1` confirmed it meanwhile.
#[derive(Debug, Clone, PartialEq)]
struct AntiLockout {
    window: std::time::Duration,
    /// When the unconfirmed timestamp expires.
    expires: Option<tokio::time::Instant>,
}

impl Default for AntiLockout {
    fn default() -> Self {
        Self {
            window: std::time::Duration::from_secs(60),
            expires: None,
        }
    }
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

    /// How long an unconfirmed `enable: 2` (PVE's anti-lockout step) keeps the cluster
    /// firewall enabled: 60 s, or what the simulator's time scale makes of them.
    pub fn set_anti_lockout_window(&mut self, window: std::time::Duration) {
        self.anti_lockout.window = window;
    }

    /// The cluster's `enable` as PVE reads it: the stored value, or 0 once an
    /// unconfirmed anti-lockout timestamp has expired.
    pub(crate) fn cluster_enable(&self) -> i64 {
        let raw = options::int(Some(&self.cluster), "enable").unwrap_or(0);
        let expired = self
            .anti_lockout
            .expires
            .is_some_and(|t| tokio::time::Instant::now() >= t);
        if raw > 1 && expired {
            0
        } else {
            raw
        }
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
        match (scope, rest.first().copied()) {
            (_, None) => self.index(scope, method),
            (_, Some("options")) if rest.len() == 1 => options::handle(self, scope, method, params),
            (_, Some("rules")) if rest.len() <= 2 => {
                rules::handle_level(self, scope, method, rest.get(1).copied(), params)
            }
            (Scope::Cluster, Some("groups")) if rest.len() <= 3 => {
                groups::handle(self, method, &rest[1..], params)
            }
            (Scope::Cluster | Scope::Guest(_), Some("ipset")) => {
                ipset::handle(self, scope, method, &rest[1..], params)
            }
            (Scope::Cluster | Scope::Guest(_), Some("aliases")) if rest.len() <= 2 => {
                aliases::handle(self, scope, method, rest.get(1).copied(), params)
            }
            (Scope::Cluster, Some("macros")) if rest.len() == 1 => {
                only(method, &Method::GET, scope, rest)?;
                no_params(params)?;
                Ok(catalog::macro_list())
            }
            (Scope::Cluster | Scope::Guest(_), Some("refs")) if rest.len() == 1 => {
                only(method, &Method::GET, scope, rest)?;
                self.refs(scope, params)
            }
            _ => Err(not_implemented(method, scope, rest)),
        }
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
        let file_json = |scope: &Scope, file: &FwFile, with_sets: bool| {
            let mut obj = serde_json::Map::new();
            obj.insert(
                "options".into(),
                Value::Object(file.options.clone().into_iter().collect()),
            );
            let target = rules::Target::Level(scope);
            obj.insert(
                "rules".into(),
                Value::Array(rules::state_list(self, target, &file.rules)),
            );
            if with_sets {
                obj.insert(
                    "ipsets".into(),
                    ipset::state(&file.ipsets, &rules::ctx(self, target)),
                );
                obj.insert("aliases".into(), aliases::state(&file.aliases));
            }
            Value::Object(obj)
        };
        let mut cluster = match file_json(&Scope::Cluster, &self.cluster, true) {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        cluster.insert("groups".into(), groups::state(self));
        let nodes: serde_json::Map<String, Value> = self
            .nodes
            .iter()
            .map(|(n, f)| (n.clone(), file_json(&Scope::Node(n.clone()), f, false)))
            .collect();
        let guests: serde_json::Map<String, Value> = self
            .guests
            .iter()
            .map(|(id, f)| (id.to_string(), file_json(&Scope::Guest(*id), f, true)))
            .collect();
        json!({ "cluster": cluster, "nodes": nodes, "guests": guests })
    }

    /// Would a new packet of `proto` (to `port` for TCP/UDP) from `from` reach `to`?
    ///
    /// Evaluated per Part B.2–B.5: nothing filters unless the cluster firewall is
    /// enabled; a guest's chains apply only when its `.fw` has `enable: 1` and the NIC
    /// (net0, or the lowest-numbered one) has `firewall=1`; the packet passes the
    /// sender's OUT chain, then the receiver's IN chain; first match wins. Connection
    /// tracking is not modelled: every probe is a new connection.
    pub fn reachability(&self, from: &Host, to: &Host, proto: Proto, port: Option<u16>) -> Verdict {
        oracle::evaluate(self, from, to, proto, port)
    }

    /// The [`FwFile`] a scope addresses, if it exists.
    fn file(&self, scope: &Scope) -> Option<&FwFile> {
        match scope {
            Scope::Cluster => Some(&self.cluster),
            Scope::Node(node) => self.nodes.get(node),
            Scope::Guest(vmid) => self.guests.get(vmid),
        }
    }

    /// The [`FwFile`] a scope addresses, created empty on first write.
    fn file_mut(&mut self, scope: &Scope) -> &mut FwFile {
        match scope {
            Scope::Cluster => &mut self.cluster,
            Scope::Node(node) => self.nodes.entry(node.clone()).or_default(),
            Scope::Guest(vmid) => self.guests.entry(*vmid).or_default(),
        }
    }

    /// Drop a node/guest file that became empty (PVE unlinks an empty file).
    fn prune(&mut self, scope: &Scope) {
        let empty = self.file(scope).is_some_and(|f| *f == FwFile::default());
        if empty {
            match scope {
                Scope::Cluster => {}
                Scope::Node(node) => {
                    self.nodes.remove(node);
                }
                Scope::Guest(vmid) => {
                    self.guests.remove(vmid);
                }
            }
        }
    }

    /// GET `…/firewall`: the directory index of each level.
    fn index(&self, scope: &Scope, method: &Method) -> ApiResult<Value> {
        only(method, &Method::GET, scope, &[])?;
        let names: &[&str] = match scope {
            Scope::Cluster => &[
                "aliases", "rules", "options", "groups", "ipset", "macros", "refs",
            ],
            Scope::Node(_) => &["rules", "options", "log"],
            Scope::Guest(_) => &["rules", "aliases", "ipset", "refs", "options"],
        };
        Ok(Value::Array(
            names.iter().map(|n| json!({ "name": n })).collect(),
        ))
    }

    /// GET `…/firewall/refs`: IP sets and aliases a rule at this level may reference.
    fn refs(&self, scope: &Scope, params: &Params) -> ApiResult<Value> {
        let filter = params.get("type").map(String::as_str);
        if let Some(unknown) = params.keys().find(|k| k.as_str() != "type") {
            return Err(undefined_param(unknown));
        }
        if let Some(t) = filter {
            if t != "alias" && t != "ipset" {
                return Err(ApiError::param("type", "value 'ipset' or 'alias' expected"));
            }
        }
        let mut out = Vec::new();
        let mut collect = |file: &FwFile, scope_name: &str| {
            if filter.is_none_or(|t| t == "ipset") {
                for (name, set) in &file.ipsets {
                    let mut item = json!({ "type": "ipset", "name": name, "ref": format!("+{name}"), "scope": scope_name });
                    if let Some(c) = &set.comment {
                        item["comment"] = json!(c);
                    }
                    out.push(item);
                }
            }
            if filter.is_none_or(|t| t == "alias") {
                for (name, alias) in &file.aliases {
                    let mut item =
                        json!({ "type": "alias", "name": name, "ref": name, "scope": scope_name });
                    if let Some(c) = &alias.comment {
                        item["comment"] = json!(c);
                    }
                    out.push(item);
                }
            }
        };
        collect(&self.cluster, "dc");
        if let Scope::Guest(vmid) = scope {
            if let Some(file) = self.guests.get(vmid) {
                collect(file, "guest");
            }
        }
        Ok(Value::Array(out))
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

/// Reject any method but `allowed` with the 501 PVE gives for an unknown method.
fn only(method: &Method, allowed: &Method, scope: &Scope, rest: &[&str]) -> ApiResult<()> {
    if method == allowed {
        Ok(())
    } else {
        Err(not_implemented(method, scope, rest))
    }
}

/// The 400 for a parameter the endpoint's schema does not define.
fn undefined_param(name: &str) -> ApiError {
    ApiError::param(
        name,
        "property is not defined in schema and the schema does not allow additional properties",
    )
}

/// Endpoints without parameters.
fn no_params(params: &Params) -> ApiResult<()> {
    match params.keys().next() {
        Some(name) => Err(undefined_param(name)),
        None => Ok(()),
    }
}

/// Reject parameters outside `allowed` (the endpoint's schema).
fn check_allowed(params: &Params, allowed: &[&str]) -> ApiResult<()> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(name) => Err(undefined_param(name)),
        None => Ok(()),
    }
}

/// `PVE::Tools::assert_if_modified`: a given digest must equal the current one.
fn assert_digest(current: &str, given: Option<&String>) -> ApiResult<()> {
    match given {
        Some(d) if !d.is_empty() && d != current => Err(ApiError::internal(
            "detected modified configuration - file changed by other user? Try again.",
        )),
        _ => Ok(()),
    }
}

/// A schema `format` violation: `invalid format - <msg>` with PVE's trailing newline.
fn format_error(name: &str, message: &str) -> ApiError {
    ApiError::param(name, format!("invalid format - {message}\n"))
}

/// A comment as PVE's parser reads it back: trimmed, and gone when empty (or Perl-false `0`).
fn file_comment(comment: Option<&String>) -> Option<String> {
    comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty() && c != "0")
}

/// A required parameter the caller did not check.
fn required<'a>(params: &'a Params, name: &str) -> ApiResult<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::param(name, "property is missing and it is not optional"))
}

/// A boolean parameter: PVE accepts only `0` and `1` on the wire.
fn bool_param(params: &Params, name: &str) -> ApiResult<Option<bool>> {
    match params.get(name).map(String::as_str) {
        None => Ok(None),
        Some("1") => Ok(Some(true)),
        Some("0") => Ok(Some(false)),
        Some(other) => Err(ApiError::param(
            name,
            format!("type check ('boolean') failed - got '{other}'"),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parameters from pairs.
    pub(crate) fn p(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// One API call with a method name.
    pub(crate) fn call(
        fw: &mut Firewall,
        scope: &Scope,
        method: &str,
        rest: &[&str],
        params: &[(&str, &str)],
    ) -> ApiResult<Value> {
        let method = Method::from_bytes(method.as_bytes()).expect("test method");
        fw.handle(scope, &method, rest, &p(params))
    }
}
