//! `POST …/clone` for QEMU and LXC, with the locks and races of §9:
//!
//! - QEMU: the new config (with `lock: clone`) appears only when the worker runs, after
//!   [`CONFIG_DELAY`]; until then `nextid` hands out the same id again, and the loser
//!   fails (synchronously if the winner's config is already visible, else in its task).
//!   Templates are only shared-locked, so clones of one template run in parallel.
//! - LXC: the new config (`lock: create`) is written before the UPID is returned and the
//!   source gets `lock: disk` for the whole clone → a second clone gets `CT is locked (disk)`.
//! - Storage: each node's `local-lvm` allocation lock is modelled deterministically: a
//!   clone that reaches its disk phase while [`STORAGE_SLOTS`] other clones on that
//!   node's storage are copying waits the 10 s acquire timeout (scaled) and fails with
//!   `clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout`.
//!   A shared storage (`--shared-storage`) has one cluster-wide lock with as many slots
//!   (`clone failed: cfs-lock 'storage-<id>' error: got lock request timeout`).
//! - Placement: `target` is refused unless the source's disks are on the shared storage
//!   (`can't clone VM to node '<x>' (VM uses local storage)`); a full clone's `storage`
//!   chooses where its disks land.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::guest::{random_uuid, Guest, Kind};
use crate::lifecycle::{first_volume, remove_guest};
use crate::routing::Req;
use crate::state::{storage_of, Shared, SimState, LOCAL_STORAGE};
use crate::tasks::spawn_task;

/// Seconds from the UPID being returned until a QEMU clone's config exists.
pub(crate) const CONFIG_DELAY: f64 = 1.0;
/// Linked clone duration (s).
pub(crate) const LINKED: f64 = 2.0;
/// Full clone duration (s).
pub(crate) const FULL: f64 = 20.0;
/// Clones that may hold one node's storage lock at the same time.
pub(crate) const STORAGE_SLOTS: u32 = 3;
/// Acquire timeout of the storage lock and of `lock_config` (s).
pub(crate) const STORAGE_TIMEOUT: f64 = 10.0;
/// `lock_config` timeout for the new id in a clone (s).
pub(crate) const NEWID_LOCK_TIMEOUT: f64 = 1.0;

/// The task error when the storage lock is not had in time: a local storage's flock, or
/// a shared storage's cluster lock.
fn storage_timeout_text(lock: &SlotKey) -> String {
    match lock {
        SlotKey::Local(_) => format!(
            "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-{LOCAL_STORAGE}' - got timeout"
        ),
        SlotKey::Shared(sid) => {
            format!("clone failed: cfs-lock 'storage-{sid}' error: got lock request timeout")
        }
    }
}

/// Which allocation lock a clone's disk phase takes: the node's `local-lvm` flock, or the
/// shared storage's cluster-wide lock.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SlotKey {
    /// `local-lvm` of this node.
    Local(String),
    /// This shared storage (one lock for the whole cluster).
    Shared(String),
}

impl SlotKey {
    /// The key in `storage_clones`: the node for `local-lvm` (as before shared storage
    /// existed), the storage id for a shared storage.
    fn name(&self) -> &str {
        match self {
            SlotKey::Local(n) | SlotKey::Shared(n) => n,
        }
    }
}

/// The checks and the new config both clone kinds share.
struct Plan {
    /// The node the request was sent to (the source's node; the task runs there).
    node: String,
    /// The node the new guest lives on (`target`, else `node`).
    target: String,
    /// The allocation lock the disk phase takes.
    slot: SlotKey,
    vmid: u32,
    newid: u32,
    full: bool,
    pool: Option<String>,
    config: BTreeMap<String, String>,
    source_volume: String,
    fault: Option<String>,
    /// The inside of the new guest: the source's, with its own host name.
    os: crate::guest::os::GuestOs,
}

fn plan(sh: &Shared, st: &mut SimState, r: &Req<'_>, kind: Kind) -> ApiResult<Plan> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let newid: u32 = r
        .param("newid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::param("newid", "property is missing and it is not optional"))?;
    let src = st.guest(kind, &node, vmid)?;
    src.check_lock()?;
    let volume = first_volume(src);
    let source_storage = storage_of(&volume).unwrap_or(LOCAL_STORAGE).to_owned();
    let target = match r.param("target").filter(|t| *t != node) {
        None => node.clone(),
        Some(target) => {
            if !sh.has_node(target) {
                return Err(ApiError::internal(format!(
                    "no such cluster node '{target}'"
                )));
            }
            // Only a guest whose disks all live on shared storage may be cloned elsewhere.
            if !sh.is_shared_storage(&source_storage) {
                return Err(ApiError::internal(format!(
                    "can't clone VM to node '{target}' (VM uses local storage)"
                )));
            }
            // The reference does not give PVE's text for an offline target node.
            if !st.node_online(target) {
                return Err(ApiError::internal(format!(
                    "target node '{target}' is not online"
                )));
            }
            target.to_owned()
        }
    };
    let full = match r.param("full") {
        Some(v) => v == "1",
        None => !src.is_template(),
    };
    if let Some(storage) = r.param("storage") {
        if full && !sh.has_storage(storage) {
            return Err(ApiError::internal(format!(
                "storage '{storage}' does not exist"
            )));
        }
    }
    // The storage the new disks land on: a full clone's `storage`, else the source's.
    let new_storage = r
        .param("storage")
        .filter(|_| full)
        .unwrap_or(&source_storage)
        .to_owned();
    let slot = if sh.is_shared_storage(&new_storage) {
        SlotKey::Shared(new_storage.clone())
    } else {
        SlotKey::Local(target.clone())
    };
    if !full {
        if !sh.cfg.linked_clones && volume.starts_with("local-lvm:") {
            // Thick LVM has no snapshot to base a linked clone on.
            return Err(ApiError::internal(match kind {
                Kind::Qemu => {
                    format!("Linked clone feature is not supported for '{volume}' (scsi0)")
                }
                Kind::Lxc => format!("Linked clone feature for '{volume}' is not available"),
            }));
        }
        if r.param("storage").is_some() {
            return Err(ApiError::internal(
                "parameter 'storage' not allowed for linked clones",
            ));
        }
        if !src.is_template() {
            return Err(ApiError::internal(match kind {
                Kind::Qemu => {
                    format!("Linked clone feature is not supported for '{volume}' (scsi0)")
                }
                Kind::Lxc => format!("Linked clone feature for '{volume}' is not available"),
            }));
        }
    }
    if let Some(pool) = r.param("pool") {
        if !st.pools.contains_key(pool) {
            return Err(ApiError::status(
                StatusCode::FORBIDDEN,
                format!("Permission check failed (pool '{pool}' does not exist)"),
            ));
        }
    }
    // `snapname`: the config and the inside as that snapshot keeps them.
    let (mut config, src_os) = match r.param("snapname") {
        Some(name) => {
            let snap = src
                .snapshots
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| ApiError::internal(format!("snapshot '{name}' does not exist")))?;
            (snap.config.clone(), snap.os.clone())
        }
        None => (src.config.as_map().clone(), src.os.clone()),
    };
    let src_name = src.name().unwrap_or_default().to_owned();
    config.remove("template");
    config.remove("lock");
    match kind {
        Kind::Qemu => {
            let name = r
                .param("name")
                .map_or_else(|| format!("Copy-of-VM-{src_name}"), str::to_owned);
            config.insert("name".into(), name);
        }
        Kind::Lxc => {
            if let Some(h) = r.param("hostname") {
                config.insert("hostname".into(), h.to_owned());
            }
        }
    }
    match r.param("description") {
        Some(d) => config.insert("description".into(), d.to_owned()),
        None => config.remove("description"),
    };
    // New disks: linked clones reference the base volume, full clones get their own.
    for v in config.values_mut() {
        if storage_of(v).is_some_and(|s| sh.has_storage(s)) {
            let (vol, opts) = v.split_once(',').map_or((v.as_str(), ""), |(a, b)| (a, b));
            let disk_no = vol.rsplit('-').next().unwrap_or("0");
            let new_vol = if full {
                format!("{new_storage}:vm-{newid}-disk-{disk_no}")
            } else {
                format!("{vol}/vm-{newid}-disk-{disk_no}")
            };
            *v = if opts.is_empty() {
                new_vol
            } else {
                format!("{new_vol},{opts}")
            };
        }
    }
    // MACs and UUIDs are drawn now, in request order, so they follow the seed.
    let mut probe = Guest::new(newid, kind, &target, config);
    probe.regenerate_macs(&mut st.rng);
    let mut config = probe.config.as_map().clone();
    if kind == Kind::Qemu {
        config.insert(
            "smbios1".into(),
            format!("uuid={}", random_uuid(&mut st.rng)),
        );
        config.insert("vmgenid".into(), random_uuid(&mut st.rng));
    }
    let new_name = config
        .get(kind.name_key())
        .cloned()
        .unwrap_or_else(|| format!("vm{newid}"));
    let os = src_os.cloned_for(&new_name);
    let fault = sh
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone_failure();
    Ok(Plan {
        node,
        target,
        slot,
        vmid,
        newid,
        full,
        pool: r.param("pool").map(str::to_owned),
        config,
        source_volume: volume,
        fault,
        os,
    })
}

/// A held storage slot; released when dropped (also when the task is stopped).
struct StorageSlot {
    sh: Arc<Shared>,
    key: String,
}

impl StorageSlot {
    /// Take a slot of `key`, or `None` when all are held.
    fn take(sh: &Arc<Shared>, key: &SlotKey) -> Option<Self> {
        let mut st = sh.lock();
        let n = st.storage_clones.entry(key.name().to_owned()).or_insert(0);
        if *n >= STORAGE_SLOTS {
            return None;
        }
        *n += 1;
        Some(Self {
            sh: Arc::clone(sh),
            key: key.name().to_owned(),
        })
    }
}

impl Drop for StorageSlot {
    fn drop(&mut self) {
        if let Some(n) = self.sh.lock().storage_clones.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Undo of a clone that did not complete (error or stopped task): removes the partial
/// guest and, for LXC, unlocks the source. Disarmed on success.
struct Rollback {
    sh: Arc<Shared>,
    newid: Option<u32>,
    unlock_source: Option<u32>,
}

impl Rollback {
    fn disarm(mut self) {
        self.newid = None;
        self.unlock_source = None;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.newid.is_none() && self.unlock_source.is_none() {
            return;
        }
        let mut st = self.sh.lock();
        if let Some(src) = self.unlock_source.and_then(|id| st.guests.get_mut(&id)) {
            src.config.remove("lock");
        }
        if let Some(id) = self.newid {
            remove_guest(&mut st, id);
        }
    }
}

/// Seconds between two tries for a storage slot (PVE's `lock_file_full` retries its
/// flock until the timeout).
const STORAGE_RETRY: f64 = 0.01;

/// The disk phase: storage lock (waiting for a free slot up to [`STORAGE_TIMEOUT`], as
/// PVE's flock with timeout does), copy, release. `Err` = task error text.
async fn copy_disks(sh: &Arc<Shared>, key: &SlotKey, full: bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + sh.scaled(STORAGE_TIMEOUT);
    let slot = loop {
        if let Some(slot) = StorageSlot::take(sh, key) {
            break slot;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(storage_timeout_text(key));
        }
        let pause = sh
            .scaled(STORAGE_RETRY)
            .max(std::time::Duration::from_millis(1));
        tokio::time::sleep(pause).await;
    };
    sh.sleep(if full { FULL } else { LINKED }).await;
    drop(slot);
    Ok(())
}

/// Finish a successful clone: unlock, pool, linked-clone bookkeeping.
fn complete(st: &mut SimState, p: &Plan) {
    if let Some(g) = st.guests.get_mut(&p.newid) {
        g.config.remove("lock");
        if !p.full {
            g.linked_base = Some(p.vmid);
        }
    }
    if let Some(pool) = &p.pool {
        if let Some(pl) = st.pools.get_mut(pool) {
            pl.vms.insert(p.newid);
        }
    }
}

fn log_lines(p: &Plan) -> Vec<String> {
    let drive = if p.config.contains_key("rootfs") {
        "rootfs"
    } else {
        "scsi0"
    };
    let how = if p.full { "full" } else { "linked" };
    vec![format!(
        "create {how} clone of drive {drive} ({})",
        p.source_volume
    )]
}

/// `POST /nodes/{node}/qemu/{vmid}/clone`.
pub(crate) fn qemu(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let p = {
        let mut st = sh.lock();
        let p = plan(sh, &mut st, r, Kind::Qemu)?;
        // Only a config on the same node is seen before forking.
        if st.guests.get(&p.newid).is_some_and(|g| g.node == p.target) {
            return Err(ApiError::internal(format!(
                "unable to create VM {}: config file already exists",
                p.newid
            )));
        }
        p
    };
    let sh2 = Arc::clone(sh);
    let lines = log_lines(&p);
    let upid = spawn_task(
        sh,
        &p.node.clone(),
        "qmclone",
        &p.vmid.to_string(),
        r.caller,
        Vec::new(),
        move |upid| async move {
            sh2.sleep(CONFIG_DELAY).await;
            // Create the new config under its flock; a busy or existing id loses.
            let existing = {
                let mut st = sh2.lock();
                match st.guests.get(&p.newid) {
                    Some(g) => Some(g.lock().is_some()),
                    None => {
                        let mut g = Guest::new(p.newid, Kind::Qemu, &p.target, p.config.clone());
                        g.os = p.os.clone();
                        g.config.insert("lock".into(), "clone".into());
                        st.guests.insert(p.newid, g);
                        st.firewall.copy_guest(p.vmid, p.newid);
                        for l in &lines {
                            st.tasks.log(&upid, l.clone());
                        }
                        None
                    }
                }
            };
            match existing {
                Some(true) => {
                    sh2.sleep(NEWID_LOCK_TIMEOUT).await;
                    return Err(format!(
                        "can't lock file '/var/lock/qemu-server/lock-{}.conf' - got timeout",
                        p.newid
                    ));
                }
                Some(false) => {
                    return Err(format!(
                        "clone failed: unable to create VM {}: config file already exists",
                        p.newid
                    ));
                }
                None => {}
            }
            // From here on the partial VM is ours: removed again unless the clone completes.
            let rollback = Rollback {
                sh: Arc::clone(&sh2),
                newid: Some(p.newid),
                unlock_source: None,
            };
            copy_disks(&sh2, &p.slot, p.full).await?;
            if let Some(fault) = p.fault.clone() {
                return Err(fault);
            }
            complete(&mut sh2.lock(), &p);
            rollback.disarm();
            Ok(0)
        },
    );
    Ok(json!(upid))
}

/// `POST /nodes/{node}/lxc/{vmid}/clone`.
pub(crate) fn lxc(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let p = {
        let mut st = sh.lock();
        let p = plan(sh, &mut st, r, Kind::Lxc)?;
        if let Some(g) = st.guests.get(&p.newid) {
            return Err(ApiError::internal(format!(
                "{} {} already exists on node '{}'",
                g.kind.prefix(),
                p.newid,
                g.node
            )));
        }
        // pve-container writes the new config and locks the source before forking.
        let mut g = Guest::new(p.newid, Kind::Lxc, &p.target, p.config.clone());
        g.os = p.os.clone();
        g.config.insert("lock".into(), "create".into());
        st.guests.insert(p.newid, g);
        st.firewall.copy_guest(p.vmid, p.newid);
        if let Some(src) = st.guests.get_mut(&p.vmid) {
            src.config.insert("lock".into(), "disk".into());
        }
        p
    };
    let sh2 = Arc::clone(sh);
    let lines = log_lines(&p);
    let upid = spawn_task(
        sh,
        &p.node.clone(),
        "vzclone",
        &p.vmid.to_string(),
        r.caller,
        lines,
        move |_| async move {
            let rollback = Rollback {
                sh: Arc::clone(&sh2),
                newid: Some(p.newid),
                unlock_source: Some(p.vmid),
            };
            copy_disks(&sh2, &p.slot, p.full).await?;
            if let Some(fault) = p.fault.clone() {
                return Err(fault);
            }
            {
                let mut st = sh2.lock();
                if let Some(src) = st.guests.get_mut(&p.vmid) {
                    src.config.remove("lock");
                }
                complete(&mut st, &p);
            }
            rollback.disarm();
            Ok(0)
        },
    );
    Ok(json!(upid))
}
