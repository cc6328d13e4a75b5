//! [`Placement`] for Proxmox: one `GET /cluster/resources` tells the nodes (status,
//! `maxmem`, `mem`), the storages (`shared`) and the templates tagged as replicas of the
//! lab's template ([`lab_core::replica_tag`]); the template's config (read once per run
//! anyway) tells its node, storage and memory.
//!
//! Sources: the template on its node; each replica on its node; and, when the template's
//! disks are on a shared storage, every other node that has that storage (cloned with
//! `target`, sharing the storage's one cluster lock).

use async_trait::async_trait;
use lab_core::{
    replica_tag, CloneMode, CloneSource, Node, NodeCapacity, Placement, PlacementView,
    Provisioning, Result, VmId,
};
use pve_auth::Params;
use serde::Deserialize;

use crate::{api_err, ProxmoxLab};

/// One entry of `GET /cluster/resources` (every type; unknown fields ignored).
#[derive(Debug, Deserialize)]
struct Resource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_u64")]
    maxmem: Option<u64>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_u64")]
    mem: Option<u64>,
    #[serde(default)]
    storage: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_bool")]
    shared: Option<bool>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_vmid")]
    vmid: Option<u32>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_bool")]
    template: Option<bool>,
    #[serde(default)]
    tags: Option<String>,
}

/// The nodes of a resource listing (an offline node has no figures: 0 free).
fn nodes(list: &[Resource]) -> Vec<NodeCapacity> {
    list.iter()
        .filter(|r| r.kind == "node")
        .filter_map(|r| {
            Some(NodeCapacity {
                node: Node::new(r.node.clone()?),
                online: r.status.as_deref() == Some("online"),
                memory_total: r.maxmem.unwrap_or(0),
                memory_used: r.mem.unwrap_or(0),
            })
        })
        .collect()
}

/// Templates tagged as replicas of `template`: (vmid, node).
fn replicas(list: &[Resource], template: VmId) -> Vec<(u32, String)> {
    let tag = replica_tag(template);
    list.iter()
        .filter(|r| r.kind == "qemu" || r.kind == "lxc")
        .filter(|r| r.template == Some(true))
        .filter(|r| r.vmid.is_some_and(|v| v != template.get()))
        .filter(|r| {
            r.tags
                .as_deref()
                .is_some_and(|t| t.split([';', ',', ' ']).any(|x| x == tag))
        })
        .filter_map(|r| Some((r.vmid?, r.node.clone()?)))
        .collect()
}

/// Nodes that have `storage` as a shared storage.
fn shared_on(list: &[Resource], storage: &str) -> Vec<String> {
    list.iter()
        .filter(|r| r.kind == "storage" && r.storage.as_deref() == Some(storage))
        .filter(|r| r.shared == Some(true))
        .filter_map(|r| r.node.clone())
        .collect()
}

#[async_trait]
impl Placement for ProxmoxLab {
    async fn placement(&self, template: VmId, mode: CloneMode) -> Result<PlacementView> {
        let t = self.template(template).await?;
        let capacity = self.clone_capacity(template, mode).await?;
        let list: Vec<Resource> = self
            .client()
            .get("/cluster/resources", &Params::new())
            .await
            .map_err(|e| api_err(e, "cluster resources"))?;
        let mut sources = Vec::new();
        let shared = t
            .storage
            .as_deref()
            .map(|s| shared_on(&list, s))
            .unwrap_or_default();
        // A template on shared storage: one cluster-wide lock for every node's clones.
        let own_capacity = match (&t.storage, shared.is_empty()) {
            (Some(storage), false) => lab_core::CloneCapacity {
                key: format!("shared/{storage}"),
                ..capacity.clone()
            },
            _ => capacity.clone(),
        };
        sources.push(CloneSource {
            node: Node::new(t.node.as_str()),
            template,
            target: false,
            capacity: own_capacity.clone(),
        });
        for node in shared.iter().filter(|n| n.as_str() != t.node.as_str()) {
            sources.push(CloneSource {
                node: Node::new(node.clone()),
                template,
                target: true,
                capacity: own_capacity.clone(),
            });
        }
        let storage = t.storage.clone().unwrap_or_else(|| "unknown".to_owned());
        for (vmid, node) in replicas(&list, template) {
            let Ok(id) = VmId::new(vmid) else { continue };
            sources.push(CloneSource {
                node: Node::new(node.clone()),
                template: id,
                target: false,
                capacity: lab_core::CloneCapacity {
                    key: format!("{node}/{storage}"),
                    ..capacity.clone()
                },
            });
        }
        Ok(PlacementView {
            nodes: nodes(&list),
            sources,
            guest_memory: t.memory,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Vec<Resource> {
        serde_json::from_value(serde_json::json!([
            {"type": "node", "node": "pve1", "status": "online", "maxmem": 100, "mem": 40},
            {"type": "node", "node": "pve2", "status": "offline"},
            {"type": "storage", "node": "pve1", "storage": "rbd", "shared": 1},
            {"type": "storage", "node": "pve2", "storage": "rbd", "shared": "1"},
            {"type": "storage", "node": "pve1", "storage": "local-lvm", "shared": 0},
            {"type": "qemu", "vmid": "9000", "node": "pve1", "template": 1,
             "tags": "labctl-replica.9000"},
            {"type": "qemu", "vmid": 9010, "node": "pve2", "template": 1,
             "tags": "exam;labctl-replica.9000"},
            {"type": "qemu", "vmid": 9011, "node": "pve2", "template": 0,
             "tags": "labctl-replica.9000"},
            {"type": "qemu", "vmid": 9012, "node": "pve2", "template": 1,
             "tags": "labctl-replica.90001"},
            {"type": "pool", "pool": "exam1"}
        ]))
        .unwrap()
    }

    #[test]
    fn a_listing_tells_nodes_replicas_and_shared_storage() {
        let list = listing();
        let n = nodes(&list);
        assert_eq!(n.len(), 2);
        assert_eq!((n[0].memory_free(), n[0].online), (60, true));
        assert!(!n[1].online && n[1].memory_total == 0);
        // Only templates tagged exactly for 9000, not 9000 itself.
        assert_eq!(
            replicas(&list, VmId::new(9000).unwrap()),
            [(9010, "pve2".to_owned())]
        );
        assert_eq!(shared_on(&list, "rbd"), ["pve1", "pve2"]);
        assert!(shared_on(&list, "local-lvm").is_empty());
    }
}
