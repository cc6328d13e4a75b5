//! Placement across a cluster (no IO): which node each new student lands on, from what a
//! backend's [`Placement`](crate::Placement) read, and whether the class fits the nodes'
//! memory. `lab plan` shows it; `lab up` follows it and refuses a plan that does not fit
//! unless told to overcommit.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::engine::{Plan, StudentAction};
use crate::error::{Error, Result};
use crate::hypervisor::{CloneSource, PlacementView};
use crate::spec::LabSpec;
use crate::types::{GuestInfo, NodeName};

/// How new students are distributed over the nodes that hold the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlacementPolicy {
    /// Each student goes to the node with the most memory left: the class spreads evenly
    /// and clones run on every node's storage at once (fastest).
    #[default]
    Spread,
    /// Fill the first node (in the lab's `nodes` order, else by name) while the next
    /// student fits, then the next: leaves whole nodes free.
    Pack,
}

impl FromStr for PlacementPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "spread" => Ok(Self::Spread),
            "pack" => Ok(Self::Pack),
            _ => Err(Error::invalid("placement", s, "allowed: spread, pack")),
        }
    }
}

impl fmt::Display for PlacementPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Spread => "spread",
            Self::Pack => "pack",
        })
    }
}

/// One node in a [`PlacementPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// The node.
    pub node: NodeName,
    /// Where its clones come from.
    pub source: CloneSource,
    /// The new students placed here, in order.
    pub students: Vec<String>,
    /// Memory they (and the lab's stopped guests already here) will reserve (bytes).
    pub memory_needed: u64,
    /// Memory free on the node now (bytes).
    pub memory_free: u64,
}

impl NodePlan {
    /// How much memory is missing on this node (0 when it fits).
    pub fn shortfall(&self) -> u64 {
        self.memory_needed.saturating_sub(self.memory_free)
    }
}

/// Where every new student lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementPlan {
    /// Every node that may take clones, in placement order (with or without students).
    pub nodes: Vec<NodePlan>,
    /// Memory one running student reserves (bytes).
    pub guest_memory: u64,
    /// The policy used.
    pub policy: PlacementPolicy,
}

impl PlacementPlan {
    /// Whether every node has the memory its students need.
    pub fn fits(&self) -> bool {
        self.nodes.iter().all(|n| n.shortfall() == 0)
    }

    /// The source a student was placed on.
    pub fn source_of(&self, hostname: &str) -> Option<&CloneSource> {
        self.nodes
            .iter()
            .find(|n| n.students.iter().any(|s| s == hostname))
            .map(|n| &n.source)
    }

    /// The refusal of a plan that does not fit: every short node with its shortfall, and
    /// what to do. `None` when it fits.
    pub fn refusal(&self) -> Option<Error> {
        let short: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.shortfall() > 0)
            .map(|n| {
                format!(
                    "node {} is short of {} ({} students need {}, {} free)",
                    n.node,
                    mib(n.shortfall()),
                    n.students.len(),
                    mib(n.memory_needed),
                    mib(n.memory_free)
                )
            })
            .collect();
        if short.is_empty() {
            return None;
        }
        let students: usize = self.nodes.iter().map(|n| n.students.len()).sum();
        Some(Error::invalid(
            "placement",
            format!(
                "{students} students of {} each, {}",
                mib(self.guest_memory),
                self.policy
            ),
            format!(
                "the class does not fit the nodes' memory: {}; add nodes or template \
                 replicas (labctl template replicate), lower the count, or pass --overcommit",
                short.join("; ")
            ),
        ))
    }
}

/// The tag that marks a template as a replica of `template` (`labctl-replica.9000`):
/// `labctl template replicate` writes it, placement reads it.
pub fn replica_tag(template: crate::VmId) -> String {
    format!("labctl-replica.{template}")
}

/// `2048 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// Where `up` puts the new students of `plan` ([`place`] with the spec's nodes and
/// policy): the lab's guests in `listed` that `up` starts (not running) count on the node
/// they are on. The one place `up` and a capacity plan (`lab plan`, `doctor`) decide it.
pub fn place_plan(
    spec: &LabSpec,
    plan: &Plan,
    listed: &[GuestInfo],
    view: &PlacementView,
) -> Result<PlacementPlan> {
    let creates: Vec<String> = plan
        .students
        .iter()
        .filter(|s| s.action == StudentAction::Create)
        .map(|s| s.hostname.clone())
        .collect();
    let stopped: Vec<NodeName> = plan
        .students
        .iter()
        .filter(|s| s.action != StudentAction::Create)
        .filter_map(|s| listed.iter().find(|g| g.vmid == s.vmid))
        .filter(|g| !g.status.is_running())
        .map(|g| g.node.clone())
        .collect();
    place(view, &creates, &spec.nodes, &stopped, spec.placement)
}

/// Places `students` (host names of the guests still to clone) on the nodes of `view`:
/// only online nodes that hold the template, only those in `allowed` when it is not
/// empty (in that order for [`PlacementPolicy::Pack`]). `stopped_here` are nodes of the
/// lab's existing guests that will be started (one entry per guest): their memory is
/// counted first.
///
/// Errors name the nodes asked for and what holds the template when no allowed node can
/// take a clone.
pub fn place(
    view: &PlacementView,
    students: &[String],
    allowed: &[NodeName],
    stopped_here: &[NodeName],
    policy: PlacementPolicy,
) -> Result<PlacementPlan> {
    let online: BTreeMap<&str, u64> = view
        .nodes
        .iter()
        .filter(|n| n.online)
        .map(|n| (n.node.as_str(), n.memory_free()))
        .collect();
    // One source per node: a copy on the node beats a clone sent from elsewhere.
    let mut by_node: BTreeMap<&str, &CloneSource> = BTreeMap::new();
    for s in &view.sources {
        let better = by_node
            .get(s.node.as_str())
            .is_none_or(|have| have.target && !s.target);
        if better {
            by_node.insert(s.node.as_str(), s);
        }
    }
    let usable = |n: &str| online.contains_key(n) && by_node.contains_key(n);
    let order: Vec<&str> = if allowed.is_empty() {
        by_node.keys().copied().filter(|n| usable(n)).collect()
    } else {
        for n in allowed {
            if !view.nodes.iter().any(|x| x.node == *n) {
                return Err(Error::invalid(
                    "node",
                    n.as_str(),
                    format!("allowed: the cluster's nodes ({})", names(view)),
                ));
            }
        }
        allowed
            .iter()
            .map(NodeName::as_str)
            .filter(|n| usable(n))
            .collect()
    };
    if order.is_empty() {
        let holders: Vec<&str> = by_node.keys().copied().collect();
        return Err(Error::invalid(
            "nodes",
            allowed
                .iter()
                .map(NodeName::as_str)
                .collect::<Vec<_>>()
                .join(","),
            format!(
                "no online node may take a clone of the template; it is on {} (online: {})",
                if holders.is_empty() {
                    "no node".to_owned()
                } else {
                    holders.join(", ")
                },
                online.keys().copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mut plans: Vec<NodePlan> = order
        .iter()
        .map(|n| NodePlan {
            node: by_node[n].node.clone(),
            source: by_node[n].clone(),
            students: Vec::new(),
            memory_needed: 0,
            memory_free: online[n],
        })
        .collect();
    for n in stopped_here {
        if let Some(p) = plans.iter_mut().find(|p| p.node == *n) {
            p.memory_needed += view.guest_memory;
        }
    }
    let left = |p: &NodePlan| i128::from(p.memory_free) - i128::from(p.memory_needed);
    let need = i128::from(view.guest_memory);
    for student in students {
        let pick = match policy {
            PlacementPolicy::Pack => plans
                .iter()
                .position(|p| left(p) >= need)
                .unwrap_or_else(|| most_left(&plans, left)),
            PlacementPolicy::Spread => most_left(&plans, left),
        };
        let p = &mut plans[pick];
        p.students.push(student.clone());
        p.memory_needed += view.guest_memory;
    }
    Ok(PlacementPlan {
        nodes: plans,
        guest_memory: view.guest_memory,
        policy,
    })
}

/// The node with the most memory left (the first of equals, so ties go in order and a
/// class spreads round-robin over equal nodes).
fn most_left(plans: &[NodePlan], left: impl Fn(&NodePlan) -> i128) -> usize {
    let mut best = 0;
    for (i, p) in plans.iter().enumerate() {
        if left(p) > left(&plans[best]) {
            best = i;
        }
    }
    best
}

fn names(view: &PlacementView) -> String {
    view.nodes
        .iter()
        .map(|n| n.node.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{CloneCapacity, NodeCapacity};
    use crate::types::VmId;

    const GIB: u64 = 1024 * 1024 * 1024;

    fn view(free_gib: &[(&str, u64, bool)], with_template: &[&str]) -> PlacementView {
        PlacementView {
            nodes: free_gib
                .iter()
                .map(|(n, free, online)| NodeCapacity {
                    node: NodeName::new(*n).unwrap(),
                    online: *online,
                    memory_total: 64 * GIB,
                    memory_used: 64 * GIB - free * GIB,
                })
                .collect(),
            sources: with_template
                .iter()
                .enumerate()
                .map(|(i, n)| CloneSource {
                    node: NodeName::new(*n).unwrap(),
                    template: VmId::new(9000 + u32::try_from(i).unwrap_or(0)).unwrap(),
                    target: false,
                    capacity: CloneCapacity {
                        key: format!("{n}/local-lvm"),
                        slots: 3,
                        queue: 3,
                    },
                })
                .collect(),
            guest_memory: 2 * GIB,
        }
    }

    fn students(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("s{i:02}")).collect()
    }

    fn counts(p: &PlacementPlan) -> Vec<(String, usize)> {
        p.nodes
            .iter()
            .map(|n| (n.node.to_string(), n.students.len()))
            .collect()
    }

    #[test]
    fn spread_follows_free_memory_and_alternates_between_equals() {
        // pve1 has 4 GiB more free: its first two students even it out, then round-robin.
        let v = view(
            &[("pve1", 20, true), ("pve2", 16, true), ("pve3", 16, true)],
            &["pve1", "pve2", "pve3"],
        );
        let p = place(&v, &students(8), &[], &[], PlacementPolicy::Spread).unwrap();
        assert_eq!(
            counts(&p),
            [("pve1".into(), 4), ("pve2".into(), 2), ("pve3".into(), 2)]
        );
        assert!(p.fits());
        assert_eq!(p.source_of("s01").unwrap().node.as_str(), "pve1");
        assert!(p.refusal().is_none());
    }

    #[test]
    fn pack_fills_one_node_before_the_next() {
        let v = view(&[("pve1", 7, true), ("pve2", 16, true)], &["pve1", "pve2"]);
        let p = place(&v, &students(5), &[], &[], PlacementPolicy::Pack).unwrap();
        assert_eq!(counts(&p), [("pve1".into(), 3), ("pve2".into(), 2)]);
    }

    #[test]
    fn only_online_nodes_that_hold_the_template_and_are_allowed_take_students() {
        let v = view(
            &[("pve1", 16, true), ("pve2", 60, false), ("pve3", 50, true)],
            &["pve1", "pve2"],
        );
        let p = place(&v, &students(4), &[], &[], PlacementPolicy::Spread).unwrap();
        assert_eq!(
            counts(&p),
            [("pve1".into(), 4)],
            "pve2 offline, pve3 no template"
        );
        let e = place(
            &v,
            &students(1),
            &[NodeName::new("pve3").unwrap()],
            &[],
            PlacementPolicy::Spread,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("it is on pve1, pve2") && text.contains("online: pve1, pve3"),
            "{text}"
        );
        let e = place(
            &v,
            &students(1),
            &[NodeName::new("pve9").unwrap()],
            &[],
            PlacementPolicy::Spread,
        )
        .unwrap_err();
        assert!(e.to_string().contains("pve9"), "{e}");
    }

    #[test]
    fn a_class_too_big_is_refused_naming_each_short_node() {
        let v = view(&[("pve1", 8, true), ("pve2", 4, true)], &["pve1", "pve2"]);
        // 8 students x 2 GiB = 16 GiB against 12 GiB free: 2 GiB short on each node.
        let p = place(&v, &students(8), &[], &[], PlacementPolicy::Spread).unwrap();
        assert!(!p.fits());
        assert_eq!(p.nodes[0].shortfall(), 2 * GIB);
        let text = p.refusal().unwrap().to_string();
        assert!(
            text.contains("node pve1 is short of 2048 MiB")
                && text.contains("node pve2 is short of 2048 MiB")
                && text.contains("--overcommit"),
            "{text}"
        );
    }

    #[test]
    fn stopped_guests_of_the_lab_count_on_their_node() {
        let v = view(&[("pve1", 8, true), ("pve2", 8, true)], &["pve1", "pve2"]);
        let here = vec![NodeName::new("pve1").unwrap(); 2];
        let p = place(&v, &students(2), &[], &here, PlacementPolicy::Spread).unwrap();
        assert_eq!(counts(&p), [("pve1".into(), 0), ("pve2".into(), 2)]);
        assert_eq!(p.nodes[0].memory_needed, 4 * GIB);
    }

    #[test]
    fn a_copy_on_the_node_beats_a_clone_sent_from_shared_storage() {
        let mut v = view(&[("pve1", 8, true), ("pve2", 8, true)], &["pve1", "pve2"]);
        let mut shared = v.sources[0].clone();
        shared.node = NodeName::new("pve2").unwrap();
        shared.target = true;
        v.sources.insert(0, shared);
        let p = place(&v, &students(2), &[], &[], PlacementPolicy::Spread).unwrap();
        assert!(!p.nodes[1].source.target, "{p:?}");
    }

    #[test]
    fn policies_parse_and_print() {
        assert_eq!(
            "pack".parse::<PlacementPolicy>().unwrap(),
            PlacementPolicy::Pack
        );
        assert_eq!(PlacementPolicy::default().to_string(), "spread");
        assert!("even".parse::<PlacementPolicy>().is_err());
    }
}
