//! Typed firewall rules: what is sent (`Rule`) and what a list returns (`RuleEntry`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use pve_auth::Params;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::spec::{AddrSpec, GroupName, Iface, LogLevel, PortSpec, Proto};

/// Traffic direction of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `in`: traffic to the guest/host.
    In,
    /// `out`: traffic from the guest/host.
    Out,
    /// `forward`: routed traffic (nftables backend only; cluster, node and group level).
    Forward,
}

impl Direction {
    /// The wire form (`in`, `out`, `forward`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Forward => "forward",
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `ACCEPT`.
    Accept,
    /// `DROP`.
    Drop,
    /// `REJECT` (not on forward rules).
    Reject,
}

impl Action {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Drop => "DROP",
            Action::Reject => "REJECT",
        }
    }
}

impl FromStr for Action {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ACCEPT" => Ok(Action::Accept),
            "DROP" => Ok(Action::Drop),
            "REJECT" => Ok(Action::Reject),
            _ => Err(Error::invalid("action", s, "allowed: ACCEPT, DROP, REJECT")),
        }
    }
}

/// The `type` + `action` pair of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `type=in|out|forward`, `action=ACCEPT|DROP|REJECT`.
    Filter(Direction, Action),
    /// `type=group`, `action=<security group>`: jump into a cluster security group.
    Group(GroupName),
}

/// Where a rule lives; decides which kinds and fields are allowed (Part B.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleLevel {
    /// Datacenter rules (host traffic of every node).
    Cluster,
    /// One node's host rules.
    Node,
    /// A VM's or container's rules.
    Guest,
    /// The body of a security group.
    Group,
}

/// A firewall rule to create or replace.
///
/// Built from checked values; [`Rule::check`] adds the cross-field rules before sending.
/// Rules are created **enabled** unless [`Rule::disabled`] is called: PVE itself stores a
/// rule created without `enable=1` as disabled (Part B.11 item 3), so [`Rule::to_params`]
/// always sends `enable` explicitly.
///
/// ```
/// use pve_firewall::{Rule, RuleLevel};
/// let r = Rule::accept_in()
///     .source("+iso-lab1-allowed".parse()?)
///     .proto("tcp".parse()?)
///     .dport("22".parse()?)
///     .comment("labctl:lab1");
/// r.check(RuleLevel::Group)?;
/// assert_eq!(
///     r.to_params().to_query(),
///     "type=in&action=ACCEPT&source=%2Biso-lab1-allowed&proto=tcp&dport=22&enable=1&comment=labctl%3Alab1"
/// );
/// // Ports without a protocol are rejected before anything is sent.
/// assert!(Rule::drop_in().dport("22".parse()?).check(RuleLevel::Guest).is_err());
/// # Ok::<(), pve_firewall::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Type and action.
    pub kind: RuleKind,
    /// A macro (`SSH`, `DNS`, `Ping`, …) standing for protocol and ports.
    pub macro_name: Option<String>,
    /// Source addresses.
    pub source: Option<AddrSpec>,
    /// Destination addresses.
    pub dest: Option<AddrSpec>,
    /// Protocol; required when `dport`/`sport` are set.
    pub proto: Option<Proto>,
    /// Destination ports.
    pub dport: Option<PortSpec>,
    /// Source ports.
    pub sport: Option<PortSpec>,
    /// ICMP type (only with an ICMP protocol, not with ports).
    pub icmp_type: Option<String>,
    /// Restrict the rule to one interface (`net0` at guest level).
    pub iface: Option<Iface>,
    /// Log level.
    pub log: Option<LogLevel>,
    /// Whether the rule is active.
    pub enable: bool,
    /// Free text (`# …` in the file); labctl uses it for its markers.
    pub comment: Option<String>,
}

impl Rule {
    /// A rule of `kind`, enabled, with no other fields.
    pub fn new(kind: RuleKind) -> Self {
        Self {
            kind,
            macro_name: None,
            source: None,
            dest: None,
            proto: None,
            dport: None,
            sport: None,
            icmp_type: None,
            iface: None,
            log: None,
            enable: true,
            comment: None,
        }
    }

    /// `in` / `out` / `forward` with an action.
    pub fn filter(direction: Direction, action: Action) -> Self {
        Self::new(RuleKind::Filter(direction, action))
    }

    /// `IN ACCEPT`.
    pub fn accept_in() -> Self {
        Self::filter(Direction::In, Action::Accept)
    }

    /// `OUT ACCEPT`.
    pub fn accept_out() -> Self {
        Self::filter(Direction::Out, Action::Accept)
    }

    /// `IN DROP`.
    pub fn drop_in() -> Self {
        Self::filter(Direction::In, Action::Drop)
    }

    /// `OUT DROP`.
    pub fn drop_out() -> Self {
        Self::filter(Direction::Out, Action::Drop)
    }

    /// `GROUP name`: jump into a security group.
    pub fn group(name: GroupName) -> Self {
        Self::new(RuleKind::Group(name))
    }

    /// Sets the source.
    pub fn source(mut self, source: AddrSpec) -> Self {
        self.source = Some(source);
        self
    }

    /// Sets the destination.
    pub fn dest(mut self, dest: AddrSpec) -> Self {
        self.dest = Some(dest);
        self
    }

    /// Sets the protocol.
    pub fn proto(mut self, proto: Proto) -> Self {
        self.proto = Some(proto);
        self
    }

    /// Sets the destination ports.
    pub fn dport(mut self, dport: PortSpec) -> Self {
        self.dport = Some(dport);
        self
    }

    /// Sets the source ports.
    pub fn sport(mut self, sport: PortSpec) -> Self {
        self.sport = Some(sport);
        self
    }

    /// Uses a macro (e.g. `DNS`); macro names are letters and digits, PVE matches them
    /// case-insensitively.
    pub fn macro_name(mut self, name: &str) -> Result<Self> {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric())
            && name.len() <= 128;
        if !ok {
            return Err(Error::invalid(
                "macro",
                name,
                "allowed: a macro name of letters and digits such as SSH, DNS, HTTP, Ping",
            ));
        }
        self.macro_name = Some(name.to_owned());
        Ok(self)
    }

    /// Sets the ICMP type (e.g. `echo-request`).
    pub fn icmp_type(mut self, icmp_type: &str) -> Self {
        self.icmp_type = Some(icmp_type.to_owned());
        self
    }

    /// Restricts the rule to one interface.
    pub fn iface(mut self, iface: Iface) -> Self {
        self.iface = Some(iface);
        self
    }

    /// Sets the log level.
    pub fn log(mut self, log: LogLevel) -> Self {
        self.log = Some(log);
        self
    }

    /// Sets the comment.
    pub fn comment(mut self, comment: &str) -> Self {
        self.comment = Some(comment.to_owned());
        self
    }

    /// Stores the rule disabled.
    pub fn disabled(mut self) -> Self {
        self.enable = false;
        self
    }

    /// Cross-field checks for a rule at `level`. Errors name the field and what is allowed.
    pub fn check(&self, level: RuleLevel) -> Result<()> {
        match (&self.kind, level) {
            (RuleKind::Group(g), RuleLevel::Group) => {
                return Err(Error::invalid(
                    "type",
                    format!("group {g}"),
                    "security groups cannot contain group rules (allowed there: in, out, forward)",
                ))
            }
            (RuleKind::Filter(Direction::Forward, _), RuleLevel::Guest) => {
                return Err(Error::invalid(
                    "type",
                    "forward",
                    "allowed at guest level: in, out, group",
                ))
            }
            (RuleKind::Filter(Direction::Forward, Action::Reject), _) => {
                return Err(Error::invalid(
                    "action",
                    "REJECT",
                    "forward rules allow ACCEPT or DROP only",
                ))
            }
            _ => {}
        }
        if let (Some(iface), RuleLevel::Guest) = (&self.iface, level) {
            if !iface.is_guest_nic() {
                return Err(Error::invalid(
                    "iface",
                    iface.as_str(),
                    "at guest level only a guest NIC name matching net\\d+ (net0, net1, …) is allowed",
                ));
            }
        }
        let has_ports = self.dport.is_some() || self.sport.is_some();
        match &self.proto {
            None if has_ports => {
                let v = self
                    .dport
                    .as_ref()
                    .or(self.sport.as_ref())
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                return Err(Error::invalid(
                    "dport/sport",
                    v,
                    "a port needs proto (tcp, udp, udplite, dccp or sctp)",
                ));
            }
            Some(p) if has_ports && !p.has_ports() => {
                return Err(Error::invalid(
                    "proto",
                    p.as_str(),
                    "ports are only allowed with tcp, udp, udplite, dccp or sctp",
                ));
            }
            _ => {}
        }
        if let Some(t) = &self.icmp_type {
            if !self.proto.as_ref().is_some_and(Proto::is_icmp) {
                return Err(Error::invalid(
                    "icmp-type",
                    t.as_str(),
                    "needs proto icmp, icmpv6 or ipv6-icmp",
                ));
            }
            if self.dport.is_some() {
                return Err(Error::invalid(
                    "icmp-type",
                    t.as_str(),
                    "cannot be combined with dport",
                ));
            }
        }
        if let Some(c) = &self.comment {
            if c.contains(['\n', '\r']) {
                return Err(Error::invalid(
                    "comment",
                    c.as_str(),
                    "must be a single line",
                ));
            }
        }
        if self.macro_name.is_some() && matches!(self.kind, RuleKind::Group(_)) {
            return Err(Error::invalid(
                "macro",
                self.macro_name.clone().unwrap_or_default(),
                "group rules take no macro",
            ));
        }
        Ok(())
    }

    /// `type` and `action` as sent.
    pub fn type_and_action(&self) -> (&'static str, String) {
        match &self.kind {
            RuleKind::Filter(d, a) => (d.as_str(), a.as_str().to_owned()),
            RuleKind::Group(g) => ("group", g.to_string()),
        }
    }

    /// The optional fields in wire form, in the order they are sent.
    fn optional_fields(&self) -> [(&'static str, Option<String>); 9] {
        [
            ("macro", self.macro_name.clone()),
            ("source", self.source.as_ref().map(ToString::to_string)),
            ("dest", self.dest.as_ref().map(ToString::to_string)),
            ("proto", self.proto.as_ref().map(ToString::to_string)),
            ("dport", self.dport.as_ref().map(ToString::to_string)),
            ("sport", self.sport.as_ref().map(ToString::to_string)),
            ("icmp-type", self.icmp_type.clone()),
            ("iface", self.iface.as_ref().map(ToString::to_string)),
            ("log", self.log.map(|l| l.as_str().to_owned())),
        ]
    }

    /// The parameters of a create (POST): type, action, set fields, `enable`, `comment`.
    pub fn to_params(&self) -> Params {
        let (kind, action) = self.type_and_action();
        let mut p = Params::new().with("type", kind).with("action", action);
        for (k, v) in self.optional_fields() {
            if let Some(v) = v {
                p.insert(k, v);
            }
        }
        p.insert("enable", u8::from(self.enable));
        if let Some(c) = &self.comment {
            p.insert("comment", c.as_str());
        }
        p
    }

    /// The parameters of a full replacement (PUT `…/rules/{pos}`): like [`Rule::to_params`]
    /// plus `delete=` for every optional field this rule does not set.
    pub fn to_replace_params(&self) -> Params {
        let mut p = self.to_params();
        let mut delete: Vec<&str> = self
            .optional_fields()
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        if self.comment.is_none() {
            delete.push("comment");
        }
        if !delete.is_empty() {
            p.insert("delete", delete.join(","));
        }
        p
    }

    /// `true` if `entry` (as listed by the server) has the same content as this rule.
    ///
    /// Compares the wire forms; the macro case-insensitively, because PVE normalises it.
    pub fn matches(&self, entry: &RuleEntry) -> bool {
        let (kind, action) = self.type_and_action();
        if entry.kind != kind || entry.action != action || entry.enable != self.enable {
            return false;
        }
        if entry.comment.as_deref().unwrap_or("") != self.comment.as_deref().unwrap_or("") {
            return false;
        }
        self.optional_fields().iter().all(|(k, want)| {
            let have = entry.field(k);
            match (k, want, have) {
                (_, None, None) => true,
                (&"macro", Some(w), Some(h)) => w.eq_ignore_ascii_case(h),
                (_, Some(w), Some(h)) => w == h,
                _ => false,
            }
        })
    }
}

impl fmt::Display for Rule {
    /// The `.fw` file syntax: `IN ACCEPT -source +x -p tcp -dport 22 # comment`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enable {
            f.write_str("|")?;
        }
        match (&self.kind, &self.macro_name) {
            (RuleKind::Group(g), _) => write!(f, "GROUP {g}")?,
            (RuleKind::Filter(d, a), Some(m)) => {
                write!(f, "{} {m}({})", d.as_str().to_uppercase(), a.as_str())?
            }
            (RuleKind::Filter(d, a), None) => {
                write!(f, "{} {}", d.as_str().to_uppercase(), a.as_str())?
            }
        }
        let flags = [
            ("-i", self.iface.as_ref().map(ToString::to_string)),
            ("-source", self.source.as_ref().map(ToString::to_string)),
            ("-dest", self.dest.as_ref().map(ToString::to_string)),
            ("-p", self.proto.as_ref().map(ToString::to_string)),
            ("-dport", self.dport.as_ref().map(ToString::to_string)),
            ("-sport", self.sport.as_ref().map(ToString::to_string)),
            ("-icmp-type", self.icmp_type.clone()),
            ("-log", self.log.map(|l| l.to_string())),
        ];
        for (flag, v) in flags {
            if let Some(v) = v {
                write!(f, " {flag} {v}")?;
            }
        }
        if let Some(c) = &self.comment {
            write!(f, " # {c}")?;
        }
        Ok(())
    }
}

/// A rule as a GET of a rule list returns it. Fields stay in wire form (a rule written by
/// hand into a `.fw` file may not fit the typed [`Rule`]); see [`RuleEntry::to_rule`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuleEntry {
    /// Position in the list (0 = first, evaluated first).
    #[serde(deserialize_with = "pve_auth::perl::u32")]
    pub pos: u32,
    /// `in`, `out`, `forward` or `group`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ACCEPT`/`DROP`/`REJECT` or the group name.
    pub action: String,
    /// Whether the rule is active (absent = disabled).
    #[serde(default, deserialize_with = "pve_auth::perl::bool")]
    pub enable: bool,
    /// Macro.
    #[serde(
        default,
        rename = "macro",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub macro_name: Option<String>,
    /// Source.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub source: Option<String>,
    /// Destination.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub dest: Option<String>,
    /// Protocol.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub proto: Option<String>,
    /// Destination ports.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub dport: Option<String>,
    /// Source ports.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub sport: Option<String>,
    /// ICMP type.
    #[serde(
        default,
        rename = "icmp-type",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub icmp_type: Option<String>,
    /// Interface.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub iface: Option<String>,
    /// Log level.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub log: Option<String>,
    /// Comment.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub comment: Option<String>,
    /// IP version the addresses resolved to, if any.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_u8")]
    pub ipversion: Option<u8>,
    /// Digest of the whole list (the same on every entry); pass it back on PUT/DELETE.
    #[serde(default)]
    pub digest: Option<String>,
    /// Errors found when the server parsed the rule; such a rule is **skipped** by the
    /// firewall (Part B.6).
    #[serde(default)]
    pub errors: BTreeMap<String, serde_json::Value>,
}

impl RuleEntry {
    /// A wire field by name.
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "macro" => self.macro_name.as_deref(),
            "source" => self.source.as_deref(),
            "dest" => self.dest.as_deref(),
            "proto" => self.proto.as_deref(),
            "dport" => self.dport.as_deref(),
            "sport" => self.sport.as_deref(),
            "icmp-type" => self.icmp_type.as_deref(),
            "iface" => self.iface.as_deref(),
            "log" => self.log.as_deref(),
            "comment" => self.comment.as_deref(),
            _ => None,
        }
    }

    /// `true` if this is `GROUP <group>`.
    pub fn is_group(&self, group: &GroupName) -> bool {
        self.kind == "group" && self.action.eq_ignore_ascii_case(group.as_str())
    }

    /// The parse errors as text, empty when the rule is valid.
    pub fn error_text(&self) -> String {
        self.errors
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The typed rule, if every field is valid.
    pub fn to_rule(&self) -> Result<Rule> {
        let kind = match self.kind.as_str() {
            "group" => RuleKind::Group(self.action.to_ascii_lowercase().parse()?),
            "in" => RuleKind::Filter(Direction::In, self.action.parse()?),
            "out" => RuleKind::Filter(Direction::Out, self.action.parse()?),
            "forward" => RuleKind::Filter(Direction::Forward, self.action.parse()?),
            other => {
                return Err(Error::invalid(
                    "type",
                    other,
                    "allowed: in, out, forward, group",
                ))
            }
        };
        let mut r = Rule::new(kind);
        r.enable = self.enable;
        if let Some(m) = &self.macro_name {
            r = r.macro_name(m)?;
        }
        r.source = self.source.as_deref().map(str::parse).transpose()?;
        r.dest = self.dest.as_deref().map(str::parse).transpose()?;
        r.proto = self.proto.as_deref().map(str::parse).transpose()?;
        r.dport = self.dport.as_deref().map(str::parse).transpose()?;
        r.sport = self.sport.as_deref().map(str::parse).transpose()?;
        r.icmp_type.clone_from(&self.icmp_type);
        r.iface = self.iface.as_deref().map(str::parse).transpose()?;
        r.log = self.log.as_deref().map(str::parse).transpose()?;
        r.comment.clone_from(&self.comment);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn g(name: &str) -> GroupName {
        GroupName::new(name).unwrap()
    }

    #[test]
    fn cross_field_checks_name_the_field() {
        let err = Rule::accept_in()
            .proto("icmp".parse().unwrap())
            .dport("22".parse().unwrap());
        let err = err.check(RuleLevel::Guest).unwrap_err().to_string();
        assert!(err.contains("proto") && err.contains("icmp"), "{err}");
        let err = Rule::accept_in()
            .iface("vmbr0".parse().unwrap())
            .check(RuleLevel::Guest)
            .unwrap_err();
        assert!(err.to_string().contains("net\\d+"), "{err}");
        Rule::accept_in()
            .iface("vmbr0".parse().unwrap())
            .check(RuleLevel::Node)
            .unwrap();
        assert!(Rule::group(g("x1")).check(RuleLevel::Group).is_err());
        Rule::group(g("x1")).check(RuleLevel::Guest).unwrap();
        assert!(Rule::filter(Direction::Forward, Action::Accept)
            .check(RuleLevel::Guest)
            .is_err());
        assert!(Rule::filter(Direction::Forward, Action::Reject)
            .check(RuleLevel::Cluster)
            .is_err());
        assert!(Rule::accept_in()
            .icmp_type("echo-request")
            .check(RuleLevel::Guest)
            .is_err());
        Rule::accept_in()
            .proto(crate::Proto::icmp())
            .icmp_type("echo-request")
            .check(RuleLevel::Guest)
            .unwrap();
        assert!(Rule::accept_in()
            .comment("a\nb")
            .check(RuleLevel::Guest)
            .is_err());
        assert!(Rule::accept_in().macro_name("D N S").is_err());
    }

    #[test]
    fn params_always_carry_enable() {
        let p = Rule::group(g("iso-lab1"))
            .comment("labctl:lab1")
            .to_params();
        assert_eq!(
            p.to_query(),
            "type=group&action=iso-lab1&enable=1&comment=labctl%3Alab1"
        );
        let p = Rule::drop_out().disabled().to_params();
        assert_eq!(p.get("enable"), Some("0"));
        let p = Rule::accept_in()
            .source("10.0.0.1".parse().unwrap())
            .to_replace_params();
        assert_eq!(
            p.get("delete"),
            Some("macro,dest,proto,dport,sport,icmp-type,iface,log,comment")
        );
    }

    #[test]
    fn entries_decode_leniently_and_compare() {
        let e: RuleEntry = serde_json::from_value(json!({
            "pos": "1", "type": "out", "action": "ACCEPT", "macro": "dns", "dest": "+iso-dns",
            "enable": "1", "digest": "abc", "ipversion": 4, "comment": "labctl:x"
        }))
        .unwrap();
        assert_eq!(e.pos, 1);
        assert!(e.enable);
        let want = Rule::accept_out()
            .macro_name("DNS")
            .unwrap()
            .dest("+iso-dns".parse().unwrap())
            .comment("labctl:x");
        assert!(want.matches(&e));
        assert!(!want.clone().disabled().matches(&e));
        assert!(!want.clone().comment("other").matches(&e));
        assert_eq!(
            e.to_rule().unwrap().to_string(),
            "OUT dns(ACCEPT) -dest +iso-dns # labctl:x"
        );
        let disabled: RuleEntry =
            serde_json::from_value(json!({"pos": 0, "type": "group", "action": "iso-a"})).unwrap();
        assert!(!disabled.enable && disabled.is_group(&g("iso-a")));
        let bad: RuleEntry = serde_json::from_value(json!({
            "pos": 2, "type": "in", "action": "ACCEPT", "source": "+nope", "enable": 1,
            "errors": {"source": "no such ipset 'nope'"}
        }))
        .unwrap();
        assert_eq!(bad.error_text(), "source: no such ipset 'nope'");
    }
}
