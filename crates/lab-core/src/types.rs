//! Domain types: ids, nodes, guest kinds and states, lab names and the ownership marker.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A guest id, `100..=999999999` as PVE allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct VmId(u32);

impl VmId {
    /// Smallest id.
    pub const MIN: VmId = VmId(100);
    /// Largest id.
    pub const MAX: VmId = VmId(999_999_999);

    /// Checks the range.
    pub fn new(id: u32) -> Result<Self> {
        if (Self::MIN.0..=Self::MAX.0).contains(&id) {
            Ok(VmId(id))
        } else {
            Err(Error::invalid(
                "VMID",
                id.to_string(),
                "a guest id is a number from 100 to 999999999",
            ))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for VmId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("VMID", s, "a guest id is a number from 100 to 999999999");
        let n: u32 = s.trim().parse().map_err(|_| bad())?;
        // Name the text as typed (`01`), not the number it parsed to.
        VmId::new(n).map_err(|_| bad())
    }
}

impl TryFrom<u32> for VmId {
    type Error = Error;
    fn try_from(id: u32) -> Result<Self> {
        VmId::new(id)
    }
}

impl<'de> Deserialize<'de> for VmId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Leniency: a number or a numeric string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => VmId::new(n),
            Raw::S(s) => s.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A cluster node's name, as the backend reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Node(String);

impl Node {
    /// A node name (not checked: it comes from the backend).
    pub fn new(name: impl Into<String>) -> Self {
        Node(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A virtual machine or a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmKind {
    /// A full virtual machine (QEMU).
    Vm,
    /// A container (LXC).
    Container,
}

impl fmt::Display for VmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VmKind::Vm => "vm",
            VmKind::Container => "ct",
        })
    }
}

/// Whether a guest runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// Anything else the backend reports (`paused`, `unknown`, …).
    Other(String),
}

impl VmStatus {
    /// `true` for [`VmStatus::Running`].
    pub fn is_running(&self) -> bool {
        matches!(self, VmStatus::Running)
    }
}

impl fmt::Display for VmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            VmStatus::Running => "running",
            VmStatus::Stopped => "stopped",
            VmStatus::Other(s) => s,
        })
    }
}

/// A guest as a backend lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestInfo {
    /// The id.
    pub vmid: VmId,
    /// Name / host name, when known.
    pub name: Option<String>,
    /// The node it lives on.
    pub node: Node,
    /// VM or container.
    pub kind: VmKind,
    /// Run state.
    pub status: VmStatus,
    /// A template (never a lab member, never destroyed by labctl).
    pub template: bool,
    /// The pool it belongs to.
    pub pool: Option<String>,
    /// Its tags, lower-case.
    pub tags: Vec<String>,
    /// Its description (notes), when the backend read it. A clone made by the engine
    /// carries [`LabName::marker`] here from the clone request on.
    #[serde(default)]
    pub description: Option<String>,
}

impl GuestInfo {
    /// `true` when the description carries `lab`'s clone marker.
    pub fn has_marker(&self, lab: &LabName) -> bool {
        self.description
            .as_deref()
            .is_some_and(|d| lab.is_marker(d))
    }

    /// Why this guest is **not** provably owned by `lab`, or `None` when it is: it must be
    /// in the lab's pool, carry the lab's tag **or** the clone marker in its description
    /// (a clone whose run died before it was tagged), and not be a template.
    pub fn ownership_problem(&self, lab: &LabName) -> Option<String> {
        if self.template {
            return Some("it is a template".to_owned());
        }
        if self.pool.as_deref() != Some(lab.pool().as_str()) {
            return Some(match &self.pool {
                Some(p) => format!("it is in pool {p:?}, not the lab's pool {:?}", lab.pool()),
                None => format!("it is in no pool, not the lab's pool {:?}", lab.pool()),
            });
        }
        if !self.tags.iter().any(|t| *t == lab.tag()) && !self.has_marker(lab) {
            return Some(format!(
                "it lacks the lab tag {:?} and the lab's clone marker",
                lab.tag()
            ));
        }
        None
    }

    /// `true` when the guest carries the lab's tag (its marks are complete).
    pub fn is_tagged(&self, lab: &LabName) -> bool {
        self.tags.iter().any(|t| *t == lab.tag())
    }

    /// `true` when [`GuestInfo::ownership_problem`] finds none.
    pub fn is_owned_by(&self, lab: &LabName) -> bool {
        self.ownership_problem(lab).is_none()
    }
}

/// One student's row in a lab's status: what `labctl lab status` and `ips` print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestStatus {
    /// The id.
    pub vmid: VmId,
    /// Host name.
    pub hostname: String,
    /// Node.
    pub node: Node,
    /// Run state.
    pub status: VmStatus,
    /// Addresses the guest reports (empty while it boots or when stopped).
    pub addresses: Vec<IpAddr>,
    /// Whether the lab's fence holds on this guest (`None`: not checked).
    #[serde(default)]
    pub fenced: Option<bool>,
}

impl GuestStatus {
    /// The first IPv4 address, else the first address.
    pub fn primary_address(&self) -> Option<IpAddr> {
        self.addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| self.addresses.first())
            .copied()
    }
}

/// A lab's name: 1-14 characters, a lower-case letter, then lower-case letters, digits or
/// `-`. Short and plain so it fits everywhere it is used: the pool id, the tag
/// `labctl.<lab>` and the firewall group `iso-<lab>` (18 characters at most in PVE).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LabName(String);

/// What a lab name allows, for error messages.
const LAB_NAME_RULE: &str =
    "1-14 characters: a lower-case letter, then lower-case letters, digits or '-'";

impl LabName {
    /// Checks the syntax.
    pub fn new(name: &str) -> Result<Self> {
        let ok_len = (1..=14).contains(&name.len());
        let first = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        let rest = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok_len && first && rest {
            Ok(LabName(name.to_owned()))
        } else {
            Err(Error::invalid("lab name", name, LAB_NAME_RULE))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pool the lab's guests join: the lab name itself.
    pub fn pool(&self) -> String {
        self.0.clone()
    }

    /// The tag every lab guest carries (PVE tag syntax: no `:` or `=`).
    pub fn tag(&self) -> String {
        format!("labctl.{}", self.0)
    }

    /// The description a clone request writes, naming lab and student: the first mark a
    /// guest gets, in the same request that creates it.
    pub fn marker(&self, hostname: &str) -> String {
        format!("{}student {hostname}", self.marker_prefix())
    }

    fn marker_prefix(&self) -> String {
        format!("labctl lab {}: ", self.0)
    }

    /// `true` when `description` starts with this lab's clone marker.
    pub fn is_marker(&self, description: &str) -> bool {
        description.starts_with(&self.marker_prefix())
    }

    /// The student host name a marker names.
    pub fn marked_student<'a>(&self, description: &'a str) -> Option<&'a str> {
        description
            .strip_prefix(&self.marker_prefix())?
            .strip_prefix("student ")?
            .split_whitespace()
            .next()
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LabName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        LabName::new(s)
    }
}

impl<'de> Deserialize<'de> for LabName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LabName::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(pool: Option<&str>, tags: &[&str], template: bool) -> GuestInfo {
        GuestInfo {
            vmid: VmId::new(5000).unwrap(),
            name: Some("exam-01".into()),
            node: Node::new("pve1"),
            kind: VmKind::Vm,
            status: VmStatus::Running,
            template,
            pool: pool.map(str::to_owned),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            description: None,
        }
    }

    #[test]
    fn vmid_range_and_lenient_reading() {
        assert!(VmId::new(99).is_err());
        assert!(VmId::new(1_000_000_000).is_err());
        assert_eq!(VmId::new(100).unwrap().get(), 100);
        let a: VmId = serde_json::from_str("\"5001\"").unwrap();
        let b: VmId = serde_json::from_str("5001").unwrap();
        assert_eq!(a, b);
        let e = "abc".parse::<VmId>().unwrap_err().to_string();
        assert!(
            e.contains("\"abc\"") && e.contains("100 to 999999999"),
            "{e}"
        );
    }

    #[test]
    fn lab_name_rules() {
        assert!(LabName::new("exam1").is_ok());
        assert!(LabName::new("a-b-3").is_ok());
        for bad in ["", "1exam", "Exam", "exam_1", "fifteen-chars-x", "ex am"] {
            let e = LabName::new(bad).unwrap_err().to_string();
            assert!(e.contains("lab name") && e.contains("1-14"), "{bad}: {e}");
        }
        let lab = LabName::new("exam1").unwrap();
        assert_eq!(lab.tag(), "labctl.exam1");
        assert_eq!(lab.pool(), "exam1");
    }

    #[test]
    fn ownership_needs_pool_tag_and_no_template() {
        let lab = LabName::new("exam1").unwrap();
        assert!(guest(Some("exam1"), &["labctl.exam1"], false).is_owned_by(&lab));
        let p = guest(Some("exam1"), &["labctl.exam1"], true)
            .ownership_problem(&lab)
            .unwrap();
        assert!(p.contains("template"), "{p}");
        let p = guest(Some("exam1"), &["other"], false)
            .ownership_problem(&lab)
            .unwrap();
        assert!(p.contains("labctl.exam1"), "{p}");
        let p = guest(Some("prod"), &["labctl.exam1"], false)
            .ownership_problem(&lab)
            .unwrap();
        assert!(p.contains("\"prod\""), "{p}");
        assert!(!guest(None, &["labctl.exam1"], false).is_owned_by(&lab));
    }

    #[test]
    fn a_bad_vmid_is_named_as_typed() {
        let e = "01".parse::<VmId>().unwrap_err().to_string();
        assert!(e.contains("\"01\""), "{e}");
        assert_eq!(" 5000".parse::<VmId>().unwrap().get(), 5000);
    }

    #[test]
    fn primary_address_prefers_ipv4() {
        let s = GuestStatus {
            vmid: VmId::new(5000).unwrap(),
            hostname: "x".into(),
            node: Node::new("pve1"),
            status: VmStatus::Running,
            addresses: vec!["fe80::1".parse().unwrap(), "10.0.0.5".parse().unwrap()],
            fenced: None,
        };
        assert_eq!(s.primary_address(), Some("10.0.0.5".parse().unwrap()));
    }
}
