//! Where a firewall object lives, and the API paths that follow from it.

use std::fmt;

use pve_auth::api_path;
use pve_vm::{GuestKind, NodeName, VmId};

use crate::error::{Error, Result};
use crate::rule::RuleLevel;
use crate::spec::{AliasName, Cidr, GroupName, IpSetName};

/// A firewall configuration: the datacenter's `cluster.fw`, a node's `host.fw`, a guest's
/// `<vmid>.fw`, or one security group of `cluster.fw`.
///
/// Paths are built here once; everything else asks the scope.
///
/// ```
/// use pve_firewall::Scope;
/// use pve_vm::{GuestKind, NodeName, VmId};
/// let s = Scope::guest(NodeName::new("pve1")?, GuestKind::Lxc, VmId::new(105)?);
/// assert_eq!(s.rules_path()?, "/nodes/pve1/lxc/105/firewall/rules");
/// assert_eq!(s.rule_path(3)?, "/nodes/pve1/lxc/105/firewall/rules/3");
/// let g = Scope::Group("iso-lab1".parse()?);
/// assert_eq!(g.rules_path()?, "/cluster/firewall/groups/iso-lab1");
/// assert!(g.options_path().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/cluster/firewall`.
    Cluster,
    /// `/nodes/{node}/firewall`.
    Node(NodeName),
    /// `/nodes/{node}/{qemu|lxc}/{vmid}/firewall`.
    Guest {
        /// The node the guest lives on (requests are proxied there).
        node: NodeName,
        /// QEMU or LXC.
        kind: GuestKind,
        /// The guest id.
        vmid: VmId,
    },
    /// `/cluster/firewall/groups/{group}`: rules only.
    Group(GroupName),
}

impl Scope {
    /// A guest's firewall.
    pub fn guest(node: NodeName, kind: GuestKind, vmid: VmId) -> Self {
        Scope::Guest { node, kind, vmid }
    }

    /// Which rules are allowed here.
    pub fn level(&self) -> RuleLevel {
        match self {
            Scope::Cluster => RuleLevel::Cluster,
            Scope::Node(_) => RuleLevel::Node,
            Scope::Guest { .. } => RuleLevel::Guest,
            Scope::Group(_) => RuleLevel::Group,
        }
    }

    fn base(&self) -> Vec<String> {
        match self {
            Scope::Cluster => vec!["cluster".into(), "firewall".into()],
            Scope::Node(node) => vec!["nodes".into(), node.as_str().into(), "firewall".into()],
            Scope::Guest { node, kind, vmid } => vec![
                "nodes".into(),
                node.as_str().into(),
                kind.as_str().into(),
                vmid.to_string(),
                "firewall".into(),
            ],
            Scope::Group(g) => vec![
                "cluster".into(),
                "firewall".into(),
                "groups".into(),
                g.to_string(),
            ],
        }
    }

    fn path(&self, tail: &[&str]) -> String {
        let base = self.base();
        let mut segs: Vec<&str> = base.iter().map(String::as_str).collect();
        segs.extend_from_slice(tail);
        api_path(&segs)
    }

    fn unsupported(&self, what: &str, allowed: &str) -> Error {
        Error::invalid(
            "scope",
            self.to_string(),
            format!("{what} exist only at {allowed} level"),
        )
    }

    /// `…/options` (not for security groups).
    pub fn options_path(&self) -> Result<String> {
        match self {
            Scope::Group(_) => Err(self.unsupported("options", "datacenter, node and guest")),
            _ => Ok(self.path(&["options"])),
        }
    }

    /// The rule list: `…/rules`, or the group itself for a security group.
    pub fn rules_path(&self) -> Result<String> {
        Ok(match self {
            Scope::Group(_) => self.path(&[]),
            _ => self.path(&["rules"]),
        })
    }

    /// One rule: `…/rules/{pos}` (`…/groups/{group}/{pos}`).
    pub fn rule_path(&self, pos: u32) -> Result<String> {
        let pos = pos.to_string();
        Ok(match self {
            Scope::Group(_) => self.path(&[&pos]),
            _ => self.path(&["rules", &pos]),
        })
    }

    fn check_sets(&self, what: &str) -> Result<()> {
        match self {
            Scope::Cluster | Scope::Guest { .. } => Ok(()),
            _ => Err(self.unsupported(what, "datacenter and guest")),
        }
    }

    /// `…/ipset` (datacenter and guests).
    pub fn ipsets_path(&self) -> Result<String> {
        self.check_sets("IP sets")?;
        Ok(self.path(&["ipset"]))
    }

    /// `…/ipset/{name}`.
    pub fn ipset_path(&self, name: &IpSetName) -> Result<String> {
        self.check_sets("IP sets")?;
        Ok(self.path(&["ipset", name.as_str()]))
    }

    /// `…/ipset/{name}/{cidr}` (the CIDR's `/` is percent-encoded).
    pub fn ipset_entry_path(&self, name: &IpSetName, cidr: &str) -> Result<String> {
        self.check_sets("IP sets")?;
        Ok(self.path(&["ipset", name.as_str(), cidr]))
    }

    /// `…/aliases` (datacenter and guests).
    pub fn aliases_path(&self) -> Result<String> {
        self.check_sets("aliases")?;
        Ok(self.path(&["aliases"]))
    }

    /// `…/aliases/{name}`.
    pub fn alias_path(&self, name: &AliasName) -> Result<String> {
        self.check_sets("aliases")?;
        Ok(self.path(&["aliases", name.as_str()]))
    }

    /// The guest id, for guest scopes.
    pub fn vmid(&self) -> Option<VmId> {
        match self {
            Scope::Guest { vmid, .. } => Some(*vmid),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Cluster => f.write_str("datacenter"),
            Scope::Node(n) => write!(f, "node {n}"),
            Scope::Guest { kind, vmid, .. } => write!(f, "{} {vmid}", kind.noun()),
            Scope::Group(g) => write!(f, "security group {g}"),
        }
    }
}

/// The path segment PVE uses for an IP set entry: the normalised CIDR text.
pub(crate) fn cidr_segment(c: &Cidr) -> String {
    c.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_per_scope() {
        let node = NodeName::new("pve1").unwrap();
        let q = Scope::guest(node.clone(), GuestKind::Qemu, VmId::new(101).unwrap());
        assert_eq!(
            q.options_path().unwrap(),
            "/nodes/pve1/qemu/101/firewall/options"
        );
        let set = IpSetName::new("ipfilter-net0").unwrap();
        assert_eq!(
            q.ipset_entry_path(&set, "10.0.0.0/24").unwrap(),
            "/nodes/pve1/qemu/101/firewall/ipset/ipfilter-net0/10.0.0.0%2F24"
        );
        assert_eq!(
            Scope::Cluster.rule_path(0).unwrap(),
            "/cluster/firewall/rules/0"
        );
        assert_eq!(
            Scope::Node(node.clone()).options_path().unwrap(),
            "/nodes/pve1/firewall/options"
        );
        let err = Scope::Node(node).ipsets_path().unwrap_err().to_string();
        assert!(
            err.contains("node pve1") && err.contains("datacenter and guest"),
            "{err}"
        );
        let g = Scope::Group(GroupName::new("g1").unwrap());
        assert_eq!(g.rule_path(2).unwrap(), "/cluster/firewall/groups/g1/2");
        assert!(g.aliases_path().is_err());
        assert_eq!(
            Scope::Cluster
                .alias_path(&AliasName::new("teacher").unwrap())
                .unwrap(),
            "/cluster/firewall/aliases/teacher"
        );
    }
}
