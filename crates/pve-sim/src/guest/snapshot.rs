//! QEMU and LXC snapshots: list, create (`qmsnapshot`/`vzsnapshot`, a VM optionally
//! with RAM: `vmstate`), delete (`qmdelsnapshot`/`vzdelsnapshot`), rollback
//! (`qmrollback`/`vzrollback`) and a snapshot's config, with the rules of the storage
//! the disks live on. A container is handled as a VM without RAM state.
//!
//! A snapshot keeps the config (NICs with `link_down`, `tags`, …) and the inside of the
//! guest (files, network configuration, services), so a rollback restores both — but
//! not the firewall file and not the ACLs, as on PVE. The storage type follows the
//! storage id of the first disk: an id containing `zfs` is a ZFS pool (rollback only to
//! the most recent snapshot: `can't rollback, more recent snapshots exist`), `local`
//! is a directory (qcow2) and anything else LVM-thin (both allow rollback to any
//! snapshot). A rollback stops a running VM; a snapshot with RAM starts it again, a
//! disk-only one only with `start=1` (which needs `VM.PowerMgmt`, checked up front).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::os::GuestOs;
use super::Kind;
use crate::error::{ApiError, ApiResult};
use crate::lifecycle::{first_volume, power_off};
use crate::routing::Req;
use crate::state::{unix_now, Shared};
use crate::tasks::spawn_task;

/// Simulated seconds of a disk-only snapshot, of saving the RAM, of a delete and of
/// a rollback.
pub(crate) mod durations {
    pub const SNAPSHOT: f64 = 2.0;
    pub const VMSTATE: f64 = 5.0;
    pub const DELETE: f64 = 1.0;
    pub const ROLLBACK: f64 = 2.0;
}

/// One snapshot of a guest.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub name: String,
    pub description: String,
    pub snaptime: u64,
    pub vmstate: bool,
    pub parent: Option<String>,
    pub config: BTreeMap<String, String>,
    pub os: GuestOs,
}

/// The kind of storage a guest's disks are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageKind {
    LvmThin,
    Zfs,
    Dir,
}

/// The storage kind of a volume id such as `local-zfs:vm-100-disk-0`.
pub(crate) fn storage_kind(volid: &str) -> StorageKind {
    let store = volid.split(':').next().unwrap_or_default();
    if store.contains("zfs") {
        StorageKind::Zfs
    } else if store == "local" {
        StorageKind::Dir
    } else {
        StorageKind::LvmThin
    }
}

/// `GET …/snapshot`: every snapshot plus the pseudo-entry `current`.
pub(crate) fn list(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let g = st.guest(kind_of(r), r.node(), r.vmid())?;
    let mut out: Vec<Value> = g
        .snapshots
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("name".into(), json!(s.name));
            m.insert("snaptime".into(), json!(s.snaptime));
            m.insert("description".into(), json!(s.description));
            if let Some(p) = &s.parent {
                m.insert("parent".into(), json!(p));
            }
            m.insert("vmstate".into(), json!(u8::from(s.vmstate)));
            Value::Object(m)
        })
        .collect();
    let mut current = Map::new();
    current.insert("name".into(), json!("current"));
    current.insert("digest".into(), json!(g.digest()));
    current.insert("running".into(), json!(u8::from(g.running)));
    current.insert("description".into(), json!("You are here!"));
    if let Some(p) = &g.parent {
        current.insert("parent".into(), json!(p));
    }
    out.push(Value::Object(current));
    Ok(Value::Array(out))
}

/// QEMU or LXC, by the route (`…/qemu/…` or `…/lxc/…`).
fn kind_of(r: &Req<'_>) -> Kind {
    if r.template.starts_with("/nodes/{node}/lxc/") {
        Kind::Lxc
    } else {
        Kind::Qemu
    }
}

/// The worker type of a snapshot task: `qm…` for QEMU, `vz…` for containers.
fn task_type(kind: Kind, qemu: &'static str, lxc: &'static str) -> &'static str {
    if kind == Kind::Lxc {
        lxc
    } else {
        qemu
    }
}

fn snapname(r: &Req<'_>) -> String {
    r.pp.get("snapname")
        .or_else(|| r.params.get("snapname"))
        .cloned()
        .unwrap_or_default()
}

/// `GET …/snapshot/{snapname}/config`.
pub(crate) fn config(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let name = snapname(r);
    let st = sh.lock();
    let g = st.guest(kind_of(r), r.node(), r.vmid())?;
    let s = g
        .snapshots
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::internal(format!("snapshot '{name}' does not exist")))?;
    let mut m: Map<String, Value> = s
        .config
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    m.insert("snaptime".into(), json!(s.snaptime));
    if !s.description.is_empty() {
        m.insert("description".into(), json!(s.description));
    }
    if let Some(p) = &s.parent {
        m.insert("parent".into(), json!(p));
    }
    if s.vmstate {
        m.insert("vmstate".into(), json!(1));
    }
    Ok(Value::Object(m))
}

/// `POST …/snapshot`.
pub(crate) fn create(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let kind = kind_of(r);
    let name = snapname(r);
    if name == "current" {
        return Err(ApiError::internal(
            "unable to use snapshot name 'current' (reserved name)",
        ));
    }
    if name.eq_ignore_ascii_case("pending") {
        return Err(ApiError::internal(
            "unable to use snapshot name 'pending' (reserved name)",
        ));
    }
    sh.lock().guest(kind, &node, vmid)?;
    // Containers have no RAM state to save (the LXC route takes no `vmstate`).
    let want_vmstate = kind == Kind::Qemu && r.flag("vmstate");
    let description = r.param("description").unwrap_or_default().to_owned();
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        task_type(kind, "qmsnapshot", "vzsnapshot"),
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |upid| async move {
            let vmstate = {
                let mut st = sh2.lock();
                let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
                g.check_lock().map_err(|e| e.message)?;
                if g.is_template() {
                    return Err("you can't take a snapshot if it's a template".into());
                }
                if g.snapshots.iter().any(|s| s.name == name) {
                    return Err(format!("snapshot name '{name}' already used"));
                }
                // RAM is saved only from a running VM.
                let vmstate = want_vmstate && g.running;
                g.config.insert("lock".into(), "snapshot".into());
                let vol = first_volume(g);
                st.tasks
                    .log(&upid, format!("snapshotting 'drive-scsi0' ({vol})"));
                if vmstate {
                    st.tasks
                        .log(&upid, "saving VM state and RAM using storage 'local-lvm'");
                }
                vmstate
            };
            sh2.sleep(if vmstate {
                durations::SNAPSHOT + durations::VMSTATE
            } else {
                durations::SNAPSHOT
            })
            .await;
            let mut st = sh2.lock();
            let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
            g.config.remove("lock");
            // The guest's description stays out: the snapshot's is its comment.
            let mut config = g.config.as_map().clone();
            config.remove("description");
            let snap = Snapshot {
                name: name.clone(),
                description,
                snaptime: unix_now(),
                vmstate,
                parent: g.parent.clone(),
                config,
                os: g.os.snapshot(),
            };
            g.snapshots.push(snap);
            g.parent = Some(name);
            Ok(0)
        },
    );
    Ok(json!(upid))
}

/// `DELETE …/snapshot/{snapname}`.
pub(crate) fn delete(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let kind = kind_of(r);
    let name = snapname(r);
    let force = r.flag("force");
    sh.lock().guest(kind, &node, vmid)?;
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        task_type(kind, "qmdelsnapshot", "vzdelsnapshot"),
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |_| async move {
            {
                let mut st = sh2.lock();
                let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
                if !force {
                    g.check_lock().map_err(|e| e.message)?;
                }
                if !g.snapshots.iter().any(|s| s.name == name) {
                    return Err(format!("snapshot '{name}' does not exist"));
                }
                g.config.insert("lock".into(), "snapshot-delete".into());
            }
            sh2.sleep(durations::DELETE).await;
            let mut st = sh2.lock();
            let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
            g.config.remove("lock");
            let Some(pos) = g.snapshots.iter().position(|s| s.name == name) else {
                return Err(format!("snapshot '{name}' does not exist"));
            };
            let gone = g.snapshots.remove(pos);
            // Children of the deleted snapshot hang from its parent now.
            for s in &mut g.snapshots {
                if s.parent.as_deref() == Some(name.as_str()) {
                    s.parent.clone_from(&gone.parent);
                }
            }
            if g.parent.as_deref() == Some(name.as_str()) {
                g.parent = gone.parent;
            }
            Ok(0)
        },
    );
    Ok(json!(upid))
}

/// `POST …/snapshot/{snapname}/rollback`.
pub(crate) fn rollback(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let kind = kind_of(r);
    let name = snapname(r);
    let start = r.flag("start");
    {
        let st = sh.lock();
        st.guest(kind, &node, vmid)?;
        if start {
            let p = crate::access::Principal::of(r.caller);
            if p != crate::access::Principal::Root {
                crate::access::check(&st, &p, &format!("/vms/{vmid}"), &["VM.PowerMgmt"], false)?;
            }
        }
    }
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        task_type(kind, "qmrollback", "vzrollback"),
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |upid| async move {
            {
                let mut st = sh2.lock();
                let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
                g.check_lock().map_err(|e| e.message)?;
                let Some(pos) = g.snapshots.iter().position(|s| s.name == name) else {
                    return Err(format!("snapshot '{name}' does not exist"));
                };
                let vol = first_volume(g);
                if storage_kind(&vol) == StorageKind::Zfs && pos + 1 < g.snapshots.len() {
                    return Err("can't rollback, more recent snapshots exist".into());
                }
                g.config.insert("lock".into(), "rollback".into());
                let running = g.running;
                if running {
                    power_off(g);
                    st.tasks.log(
                        &upid,
                        format!(
                            "{} {vmid} stopped for rollback",
                            if kind == Kind::Lxc { "CT" } else { "VM" }
                        ),
                    );
                }
            }
            sh2.sleep(durations::ROLLBACK).await;
            let mut st = sh2.lock();
            let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
            let Some(snap) = g.snapshots.iter().find(|s| s.name == name).cloned() else {
                return Err(format!("snapshot '{name}' does not exist"));
            };
            // The current description (and unused disks) survive a rollback.
            let description = g.config.get("description").cloned();
            g.config.replace(snap.config.clone());
            if let Some(d) = description {
                g.config.insert("description".into(), d);
            }
            g.os = snap.os.clone();
            g.parent = Some(name);
            let resume = snap.vmstate;
            // The kernel's connections are the snapshot's (or none): open ones end.
            st.end_sessions_of(vmid, "was rolled back");
            let Ok(g) = st.guest_mut(kind, &node, vmid) else {
                return Ok(0);
            };
            if resume {
                // The RAM comes back: running, agent and lease at once.
                let now = Instant::now();
                g.running = true;
                g.started_unix = unix_now();
                g.agent_ready_at = g.agent_enabled().then_some(now);
                g.ipv4_ready_at = Some(now);
                return Ok(0);
            }
            if start {
                crate::lifecycle::boot(&sh2, &mut st, vmid);
            }
            Ok(0)
        },
    );
    Ok(json!(upid))
}
