//! Domain types: guest kinds and states, the ownership rules; ids, node and lab names are
//! `lab_types`' [`VmId`], [`NodeName`] and [`LabName`], shared with every labctl crate.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use lab_types::{Invalid, LabName, NodeName, VmId};

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
    pub node: NodeName,
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
pub struct StudentStatus {
    /// The id.
    pub vmid: VmId,
    /// Host name.
    pub hostname: String,
    /// Node.
    pub node: NodeName,
    /// Run state.
    pub status: VmStatus,
    /// Addresses the guest reports (empty while it boots or when stopped).
    pub addresses: Vec<IpAddr>,
    /// Whether the lab's fence holds on this guest (`None`: not checked).
    #[serde(default)]
    pub fenced: Option<bool>,
}

impl StudentStatus {
    /// The first IPv4 address, else the first address.
    pub fn primary_address(&self) -> Option<IpAddr> {
        self.addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| self.addresses.first())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(pool: Option<&str>, tags: &[&str], template: bool) -> GuestInfo {
        GuestInfo {
            vmid: VmId::new(5000).unwrap(),
            name: Some("exam-01".into()),
            node: NodeName::new("pve1").unwrap(),
            kind: VmKind::Vm,
            status: VmStatus::Running,
            template,
            pool: pool.map(str::to_owned),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            description: None,
        }
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
    fn primary_address_prefers_ipv4() {
        let s = StudentStatus {
            vmid: VmId::new(5000).unwrap(),
            hostname: "x".into(),
            node: NodeName::new("pve1").unwrap(),
            status: VmStatus::Running,
            addresses: vec!["fe80::1".parse().unwrap(), "10.0.0.5".parse().unwrap()],
            fenced: None,
        };
        assert_eq!(s.primary_address(), Some("10.0.0.5".parse().unwrap()));
    }
}
