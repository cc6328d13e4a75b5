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
    replica_tag, CloneMode, CloneSource, NodeCapacity, NodeName, Placement, PlacementView,
    Provisioning, Result, VmId,
};
use pve_auth::Params;
use serde::Deserialize;

use crate::{api_err, vm_err, ProxmoxLab};
use lab_core::Error;
use pve_vm::GuestKind;

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
    #[serde(default)]
    name: Option<String>,
}

/// The nodes of a resource listing (an offline node has no figures: 0 free).
fn nodes_of(list: &[Resource]) -> Vec<NodeCapacity> {
    list.iter()
        .filter(|r| r.kind == "node")
        .filter_map(|r| {
            Some(NodeCapacity {
                node: NodeName::new(r.node.clone()?).ok()?,
                online: r.status.as_deref() == Some("online"),
                memory_total: r.maxmem.unwrap_or(0),
                memory_used: r.mem.unwrap_or(0),
            })
        })
        .collect()
}

/// Templates tagged as replicas of `template`: (vmid, node).
fn replicas(list: &[Resource], template: VmId) -> Vec<(u32, String)> {
    tagged(list, template)
        .filter(|r| r.template == Some(true))
        .filter_map(|r| Some((r.vmid?, r.node.clone()?)))
        .collect()
}

/// Guests tagged as replicas of `template` whose listing does not say template yet: the
/// listing's flag lags up to 10 s behind (pvestatd), so their config decides.
fn unsure(list: &[Resource], template: VmId) -> Vec<(u32, String)> {
    tagged(list, template)
        .filter(|r| r.template != Some(true))
        .filter_map(|r| Some((r.vmid?, r.node.clone()?)))
        .collect()
}

/// QEMU guests without the replica tag, not templates, named `name` or not yet named in
/// the listing (pvestatd lags): a copy whose run stopped before it was tagged; its
/// description decides.
fn untagged_named<'a>(
    list: &'a [Resource],
    template: VmId,
    name: &'a str,
) -> impl Iterator<Item = (u32, String)> + 'a {
    let tag = replica_tag(template);
    list.iter()
        .filter(|r| r.kind == "qemu" && r.template != Some(true))
        .filter(move |r| r.vmid.is_some_and(|v| v != template.get()))
        .filter(move |r| r.name.as_deref().is_none_or(|n| n == name))
        .filter(move |r| {
            !r.tags
                .as_deref()
                .is_some_and(|t| t.split([';', ',', ' ']).any(|x| x == tag))
        })
        .filter_map(|r| Some((r.vmid?, r.node.clone()?)))
}

fn tagged(list: &[Resource], template: VmId) -> impl Iterator<Item = &Resource> {
    let tag = replica_tag(template);
    list.iter()
        .filter(|r| r.kind == "qemu" || r.kind == "lxc")
        .filter(move |r| r.vmid.is_some_and(|v| v != template.get()))
        .filter(move |r| {
            r.tags
                .as_deref()
                .is_some_and(|t| t.split([';', ',', ' ']).any(|x| x == tag))
        })
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
            node: t.node.clone(),
            template,
            target: false,
            capacity: own_capacity.clone(),
        });
        for node in shared.iter().filter(|n| n.as_str() != t.node.as_str()) {
            sources.push(CloneSource {
                node: NodeName::new(node.as_str())?,
                template,
                target: true,
                capacity: own_capacity.clone(),
            });
        }
        let storage = t.storage.clone().unwrap_or_else(|| "unknown".to_owned());
        for (vmid, node) in self.replicas_in(&list, template).await? {
            let Ok(id) = VmId::new(vmid) else { continue };
            sources.push(CloneSource {
                node: NodeName::new(node.clone())?,
                template: id,
                target: false,
                capacity: lab_core::CloneCapacity {
                    key: format!("{node}/{storage}"),
                    ..capacity.clone()
                },
            });
        }
        Ok(PlacementView {
            nodes: nodes_of(&list),
            sources,
            guest_memory: t.memory,
        })
    }
}

/// One template copy of a replica set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Its node.
    pub node: String,
    /// Its id.
    pub vmid: u32,
    /// Made (or finished) by this run; `false`: it was there.
    pub created: bool,
}

/// A template and its replicas, as `labctl template list` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSet {
    /// The template.
    pub template: u32,
    /// Its node.
    pub node: String,
    /// Its name.
    pub name: Option<String>,
    /// Its disks are on a shared storage (every node can clone it).
    pub shared: bool,
    /// Its copies tagged [`replica_tag`], by node.
    pub replicas: Vec<Replica>,
}

/// `labctl replica of <T> for <node>`: the description of a replica while it is made.
fn replica_description(template: VmId, node: &str) -> String {
    format!("labctl replica of {template} for {node}")
}

impl ProxmoxLab {
    /// The replicas of `template` in a listing, with those the listing does not yet show
    /// as templates confirmed by their config (one read each, rare).
    async fn replicas_in(&self, list: &[Resource], template: VmId) -> Result<Vec<(u32, String)>> {
        let mut out = replicas(list, template);
        for (vmid, node) in unsure(list, template) {
            let g = self.vms.guest_on(
                NodeName::new(node.as_str())?,
                GuestKind::Qemu,
                VmId::new(vmid)?,
            );
            match g.config().await {
                Ok(c) if c.get("template").as_deref() == Some("1") => out.push((vmid, node)),
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_transient() => {}
                Err(e) => return Err(vm_err(e, &format!("VM {vmid}"))),
            }
        }
        Ok(out)
    }

    /// Every template with its replicas (one cluster resource listing).
    pub async fn replica_sets(&self) -> Result<Vec<ReplicaSet>> {
        let list: Vec<Resource> = self
            .client()
            .get("/cluster/resources", &Params::new())
            .await
            .map_err(|e| api_err(e, "cluster resources"))?;
        let replica_ids: Vec<u32> = list
            .iter()
            .filter(|r| {
                r.tags
                    .as_deref()
                    .is_some_and(|t| t.contains("labctl-replica."))
            })
            .filter_map(|r| r.vmid)
            .collect();
        let mut sets = Vec::new();
        for r in list
            .iter()
            .filter(|r| r.kind == "qemu" && r.template == Some(true))
        {
            let (Some(vmid), Some(node)) = (r.vmid, r.node.clone()) else {
                continue;
            };
            if replica_ids.contains(&vmid) {
                continue;
            }
            let Ok(id) = VmId::new(vmid) else { continue };
            let t = self.template(id).await?;
            let shared = t
                .storage
                .as_deref()
                .is_some_and(|s| !shared_on(&list, s).is_empty());
            sets.push(ReplicaSet {
                template: vmid,
                node,
                name: r.name.clone(),
                shared,
                replicas: self
                    .replicas_in(&list, id)
                    .await?
                    .into_iter()
                    .map(|(vmid, node)| Replica {
                        node,
                        vmid,
                        created: false,
                    })
                    .collect(),
            });
        }
        Ok(sets)
    }

    /// Makes a copy of the QEMU template `template` on each of `nodes` (`None`: every
    /// online node): a full clone on the template's node, tagged [`replica_tag`], moved
    /// offline to the node, turned into a template. Idempotent: a node that has the
    /// template or a replica is kept; a copy an interrupted run left half made (tagged,
    /// not yet a template) is finished. With `dry_run` nothing is sent but the reads;
    /// the answer lists what would be made (`created`, id 0 for a new one).
    pub async fn replicate(
        &self,
        template: VmId,
        nodes: Option<&[String]>,
        dry_run: bool,
    ) -> Result<Vec<Replica>> {
        let t = self.template(template).await?;
        if !t.is_template {
            return Err(Error::invalid(
                "template",
                template.to_string(),
                "a template (this guest is not one; replicate copies only templates, never \
                 a VM in use: convert it with `qm template` first if that is meant)",
            ));
        }
        if t.kind != GuestKind::Qemu {
            return Err(Error::invalid(
                "template",
                template.to_string(),
                "replicate copies QEMU templates (containers cannot be migrated offline here)",
            ));
        }
        let list: Vec<Resource> = self
            .client()
            .get("/cluster/resources", &Params::new())
            .await
            .map_err(|e| api_err(e, "cluster resources"))?;
        let all = nodes_of(&list);
        let wanted: Vec<String> = match nodes {
            None => all
                .iter()
                .filter(|n| n.online)
                .map(|n| n.node.to_string())
                .collect(),
            Some(names) => {
                for n in names {
                    match all.iter().find(|x| x.node.as_str() == n) {
                        None => {
                            return Err(Error::invalid(
                                "node",
                                n.clone(),
                                format!(
                                    "allowed: the cluster's nodes ({})",
                                    all.iter()
                                        .map(|x| x.node.to_string())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ))
                        }
                        Some(x) if !x.online => {
                            return Err(Error::invalid(
                                "node",
                                n.clone(),
                                "it is offline; bring it back or leave it out",
                            ))
                        }
                        Some(_) => {}
                    }
                }
                names.to_vec()
            }
        };
        let have = self.replicas_in(&list, template).await?;
        let base = list
            .iter()
            .find(|r| r.vmid == Some(template.get()))
            .and_then(|r| r.name.clone())
            .unwrap_or_else(|| format!("tmpl-{template}"));
        let mut out = Vec::new();
        for node in wanted {
            if node == t.node.as_str() {
                continue;
            }
            if let Some((vmid, _)) = have.iter().find(|(_, n)| *n == node) {
                out.push(Replica {
                    node,
                    vmid: *vmid,
                    created: false,
                });
                continue;
            }
            // Half made by an interrupted run: not a template, described as the copy for
            // `node` (the clone request itself sets the description); tagged, or named as
            // the copy when the run stopped before the tag was set.
            let copy_name = format!("{base}-{node}");
            let mut candidates = unsure(&list, template);
            candidates.extend(untagged_named(&list, template, &copy_name));
            let mut partial = None;
            for (vmid, on) in candidates
                .into_iter()
                .filter(|(v, _)| !have.iter().any(|(h, _)| h == v))
            {
                let g = self.vms.guest_on(
                    NodeName::new(on.as_str())?,
                    GuestKind::Qemu,
                    VmId::new(vmid)?,
                );
                let config = g
                    .config()
                    .await
                    .map_err(|e| vm_err(e, &format!("VM {vmid}")))?;
                if config.get("description").as_deref().map(str::trim)
                    != Some(replica_description(template, &node).as_str())
                {
                    continue;
                }
                if let Some(lock) = config.get("lock") {
                    return Err(Error::invalid(
                        "replica",
                        vmid.to_string(),
                        format!(
                            "VM {vmid} (the copy for {node}) is still locked ({lock}): its \
                             clone task is running; run the same command again when it ends"
                        ),
                    ));
                }
                if !config.tags().iter().any(|t| *t == replica_tag(template)) && !dry_run {
                    self.tag_copy(template, &on, vmid, &node).await?;
                }
                partial = Some((vmid, on));
                break;
            }
            if dry_run {
                out.push(Replica {
                    node,
                    vmid: partial.map_or(0, |(v, _)| v),
                    created: true,
                });
                continue;
            }
            let (vmid, on) = match partial {
                Some(p) => p,
                None => {
                    let vmid = self.make_copy(template, &t.node, &base, &node).await?;
                    (vmid, t.node.to_string())
                }
            };
            self.finish_copy(vmid, &on, &node).await?;
            out.push(Replica {
                node,
                vmid,
                created: true,
            });
        }
        Ok(out)
    }

    /// Full clone of `template` on its node, tagged and described as the replica for
    /// `node`; answers the new id.
    async fn make_copy(
        &self,
        template: VmId,
        tnode: &NodeName,
        base: &str,
        node: &str,
    ) -> Result<u32> {
        let next: serde_json::Value = self
            .client()
            .get("/cluster/nextid", &Params::new())
            .await
            .map_err(|e| api_err(e, "next free VMID"))?;
        let vmid: u32 = match &next {
            serde_json::Value::String(s) => s.parse().ok(),
            v => v.as_u64().and_then(|n| u32::try_from(n).ok()),
        }
        .ok_or_else(|| Error::invalid("VMID", next.to_string(), "a number from /cluster/nextid"))?;
        let what = format!("full copy of template {template} for {node}");
        let name = format!("{base}-{node}");
        let path = pve_auth::api_path(&[
            "nodes",
            tnode.as_str(),
            "qemu",
            &template.to_string(),
            "clone",
        ]);
        let params = Params::new()
            .with("newid", vmid)
            .with("full", true)
            .with("name", name.as_str())
            .with("description", replica_description(template, node).as_str());
        self.run_task(tnode, pve_auth::Method::POST, &path, &params, &what)
            .await?
            .map_err(|e| vm_err(e, &what))?;
        // Tagged at once (the clone request cannot carry tags; its description and name
        // already mark the copy, so a run stopped before this line is recognised too).
        self.tag_copy(template, tnode.as_str(), vmid, node).await?;
        Ok(vmid)
    }

    /// Sets the replica tag on the copy `vmid` (on node `on`) made for `node`.
    async fn tag_copy(&self, template: VmId, on: &str, vmid: u32, node: &str) -> Result<()> {
        let what = format!("full copy of template {template} for {node}");
        let tnode = NodeName::new(on)?;
        let path = pve_auth::api_path(&["nodes", on, "qemu", &vmid.to_string(), "config"]);
        self.write::<serde_json::Value>(
            &tnode,
            pve_auth::Method::PUT,
            &path,
            &Params::new().with("tags", replica_tag(template).as_str()),
        )
        .await
        .map_err(|e| api_err(e, &what))?;
        Ok(())
    }

    /// Moves the copy `vmid` from `on` to `node` (offline) and makes it a template.
    async fn finish_copy(&self, vmid: u32, on: &str, node: &str) -> Result<()> {
        let what = format!("replica {vmid} for {node}");
        let from = NodeName::new(on)?;
        let to = NodeName::new(node)?;
        if on != node {
            let path = pve_auth::api_path(&["nodes", on, "qemu", &vmid.to_string(), "migrate"]);
            self.run_task(
                &from,
                pve_auth::Method::POST,
                &path,
                &Params::new().with("target", node),
                &what,
            )
            .await?
            .map_err(|e| vm_err(e, &what))?;
        }
        let path = pve_auth::api_path(&["nodes", node, "qemu", &vmid.to_string(), "template"]);
        self.run_task(&to, pve_auth::Method::POST, &path, &Params::new(), &what)
            .await?
            .map_err(|e| vm_err(e, &what))?;
        Ok(())
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
        let n = nodes_of(&list);
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
