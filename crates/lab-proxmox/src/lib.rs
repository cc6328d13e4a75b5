//! `lab-proxmox`: the [`lab_core::Hypervisor`] of Proxmox VE.
//!
//! This crate owns the mapping from the lab engine's capabilities to PVE: guests and
//! their lifecycle through `pve-vm`, addresses through `pve-net`, the fence through
//! `pve-firewall`'s reversible isolation, and the lab's **ownership marks**: a pool named
//! after the lab (created with the comment [`POOL_COMMENT_PREFIX`]`<lab>` so a foreign pool
//! of the same name is never adopted or deleted) and the tag `labctl.<lab>` (PVE tag syntax,
//! reference §8.2; tags are copied by clone, so the template's tags are replaced). Errors
//! of the `pve-*` crates are mapped to [`lab_core::Error`]'s meanings (`NotFound`,
//! `AlreadyExists`, `Busy`, `Timeout`), keeping the original as the source otherwise.
//!
//! ```no_run
//! use lab_core::{apply, no_progress, LabName, LabSpec, VmId};
//! use lab_proxmox::ProxmoxLab;
//! use pve_auth::{PveClient, Secret};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = PveClient::builder("pve1").password("root@pam", Secret::new("secret")).build()?;
//! let hv = ProxmoxLab::new(client);
//! let mut spec = LabSpec::new(LabName::new("exam1")?, VmId::new(9000)?, 5)?;
//! spec.teachers = vec!["10.10.0.1".parse()?];
//! let report = apply(&hv, &spec, &no_progress).await?;
//! println!("{} students up, fenced: {}", report.students.len(), report.fenced);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lab_core::{
    Backend, Capabilities, CloneCapacity, CloneMode, CloneRequest, Error, Fencing, GuestIdentity,
    GuestInfo, Inventory, LabName, NicLink, NodeName, Power, Probe, Provisioning, Readiness,
    Result, RollbackReach, Secure, SnapshotInfo, Snapshots, VmId, VmKind, VmStatus,
};
use pve_auth::Params;
/// The client, its secret type and the timing this crate's constructors take,
/// re-exported so a user needs no other crate at a matching version for them.
pub use pve_auth::{PveClient, Secret};
use pve_firewall::isolation::{CloneBaseline, Isolation, IsolationOptions, Students};
use pve_firewall::Cidr;
use pve_net::NetApi;
pub use pve_vm::Timing;
use pve_vm::{ConfigUpdate, Guest, GuestKind, GuestSummary, RunState, Upid, VmApi};
use serde::Deserialize;
use tokio::sync::Semaphore;

mod networks;
mod placement;
pub use placement::{Replica, ReplicaSet};
pub mod probes;
mod tasks;

use tasks::Tasks;

/// The backend name in messages.
pub const BACKEND: &str = "proxmox";
/// Comment of a pool created by labctl, followed by the lab name.
pub const POOL_COMMENT_PREFIX: &str = "labctl lab ";
/// Write requests in flight per node by default (a node has 3 pvedaemon workers,
/// reference §9.4; more only queues the teacher's own clicks behind ours).
pub const DEFAULT_WRITES_PER_NODE: usize = 4;

/// Proxmox VE as a [`Hypervisor`](lab_core::Hypervisor). Cheap to clone; shares one client, one task poller per
/// node, the per-node write limit and what it read of templates.
#[derive(Debug, Clone)]
pub struct ProxmoxLab {
    vms: VmApi,
    net: NetApi,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tasks: Tasks,
    writes: Mutex<HashMap<String, Arc<Semaphore>>>,
    write_limit: usize,
    templates: Mutex<HashMap<u32, Template>>,
    baselines: tokio::sync::Mutex<HashMap<(u32, String), CloneBaseline>>,
    /// Guests this process cloned, and from which template (their state is known).
    cloned_from: Mutex<HashMap<u32, u32>>,
    /// Pool of each guest as last listed.
    pools: Mutex<HashMap<u32, String>>,
    /// Template flag of each guest as last read (destroy refuses templates without a read
    /// when the engine has just re-read the guest).
    is_template: Mutex<HashMap<u32, bool>>,
    /// The directory where the token of an SDN lock this process holds is written down
    /// ([`ProxmoxLab::set_sdn_journal`]).
    sdn_journal: Mutex<Option<std::path::PathBuf>>,
}

/// What clones of a template need, read once.
#[derive(Debug, Clone)]
struct Template {
    node: NodeName,
    kind: GuestKind,
    tags: Vec<String>,
    storage: Option<String>,
    /// Configured memory (bytes; PVE's default 512 MiB when unset).
    memory: u64,
    /// The config says `template: 1` (a guest that is not one can still be cloned).
    is_template: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProxmoxLab {
    /// Over `client` with real-cluster waits.
    pub fn new(client: PveClient) -> Self {
        Self::with_timing(client, Timing::default())
    }

    /// Over `client` with these waits (`Timing::default().scaled(f)` against a simulator
    /// running at time scale `f`).
    pub fn with_timing(client: PveClient, timing: Timing) -> Self {
        let poll = timing.task_poll;
        Self {
            vms: VmApi::with_timing(client.clone(), timing),
            net: NetApi::new(),
            inner: Arc::new(Inner {
                tasks: Tasks::new(client, poll),
                writes: Mutex::new(HashMap::new()),
                write_limit: DEFAULT_WRITES_PER_NODE,
                templates: Mutex::new(HashMap::new()),
                sdn_journal: Mutex::new(None),
                baselines: tokio::sync::Mutex::new(HashMap::new()),
                cloned_from: Mutex::new(HashMap::new()),
                pools: Mutex::new(HashMap::new()),
                is_template: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// At most `limit` (1..) write requests in flight per node (`--concurrency`).
    #[must_use]
    pub fn write_limit(self, limit: usize) -> Self {
        let inner = Inner {
            tasks: Tasks::new(self.vms.client().clone(), self.vms.timing().task_poll),
            writes: Mutex::new(HashMap::new()),
            write_limit: limit.max(1),
            templates: Mutex::new(HashMap::new()),
            baselines: tokio::sync::Mutex::new(HashMap::new()),
            cloned_from: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            is_template: Mutex::new(HashMap::new()),
            sdn_journal: Mutex::new(lock(&self.inner.sdn_journal).clone()),
        };
        Self {
            inner: Arc::new(inner),
            ..self
        }
    }

    /// The guest API underneath (shares this backend's placement cache).
    pub fn vm_api(&self) -> &VmApi {
        &self.vms
    }

    fn client(&self) -> &PveClient {
        self.vms.client()
    }

    async fn handle(&self, vmid: VmId) -> Result<Guest> {
        self.vms
            .guest(vmid)
            .await
            .map_err(|e| vm_err(e, &format!("VM {vmid}")))
    }

    /// Sends one write request to `node`, within the node's write limit.
    async fn write<T: serde::de::DeserializeOwned>(
        &self,
        node: &NodeName,
        method: pve_auth::Method,
        path: &str,
        params: &Params,
    ) -> pve_auth::Result<T> {
        let gate = {
            let mut writes = lock(&self.inner.writes);
            Arc::clone(
                writes
                    .entry(node.as_str().to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.inner.write_limit))),
            )
        };
        let _permit = gate.acquire().await;
        let c = self.client();
        match method {
            pve_auth::Method::POST => c.post(path, params).await,
            pve_auth::Method::PUT => c.put(path, params).await,
            _ => c.delete(path, params).await,
        }
    }

    /// Sends a task-starting write and waits for the task; see [`ProxmoxLab::settle`].
    async fn run_task(
        &self,
        node: &NodeName,
        method: pve_auth::Method,
        path: &str,
        params: &Params,
        what: &str,
    ) -> Result<std::result::Result<(), pve_vm::Error>> {
        let upid: Upid = self
            .write(node, method, path, params)
            .await
            .map_err(|e| api_err(e, what))?;
        self.settle(&upid, what).await
    }

    /// Waits for the task. The outer error is the wait's (timeout, the listing failed);
    /// the inner one a task that ended with an error, as pve-vm's typed
    /// [`pve_vm::Error::TaskFailed`], so locks, taken ids and the like are classified
    /// where every other PVE error is.
    async fn settle(
        &self,
        upid: &Upid,
        what: &str,
    ) -> Result<std::result::Result<(), pve_vm::Error>> {
        let timeout = if upid.task_type().ends_with("clone") {
            self.vms.timing().clone_timeout
        } else {
            self.vms.timing().task_timeout
        };
        match self.inner.tasks.wait(upid, timeout).await {
            Some(Ok(exit)) if exit == "OK" || exit.starts_with("WARNINGS") => Ok(Ok(())),
            Some(Ok(exit)) => Ok(Err(pve_vm::Error::TaskFailed {
                upid: upid.clone(),
                exitstatus: exit,
                log_tail: Vec::new(),
            })),
            Some(Err(e)) => Err(api_err(e, what)),
            None => Err(Error::Timeout {
                what: format!("{what} (task {upid})"),
                after: timeout,
            }),
        }
    }

    /// Reads a guest's current state (fresh name, status, template flag, tags).
    async fn info_of(&self, guest: &Guest, pool: Option<String>) -> Result<GuestInfo> {
        let what = format!("VM {}", guest.vmid());
        let st = guest.status().await.map_err(|e| vm_err(e, &what))?;
        lock(&self.inner.is_template).insert(guest.vmid().get(), st.template);
        Ok(GuestInfo {
            vmid: guest.vmid(),
            name: st.name.clone(),
            node: guest.node().clone(),
            kind: kind(guest.kind()),
            status: run_state(&st.status),
            template: st.template,
            pool,
            tags: split_tags(st.tags.as_deref()),
            description: None,
        })
    }

    async fn pools(&self) -> Result<Vec<PoolEntry>> {
        self.client()
            .get::<Vec<PoolEntry>>("/pools", &Params::new())
            .await
            .map_err(|e| api_err(e, "pools"))
    }

    fn isolation(&self) -> Isolation {
        Isolation::with_vm_api(self.vms.clone())
    }

    /// The template's placement, tags and disk storage (one config read per run).
    async fn template(&self, vmid: VmId) -> Result<Template> {
        if let Some(t) = lock(&self.inner.templates).get(&vmid.get()) {
            return Ok(t.clone());
        }
        let g = self.handle(vmid).await?;
        let what = format!("template {vmid}");
        let config = g.config().await.map_err(|e| vm_err(e, &what))?;
        let storage = config
            .raw
            .keys()
            .filter(|k| is_disk_key(k))
            .filter_map(|k| config.get(k))
            .filter(|v| !v.contains("media=cdrom"))
            .find_map(|v| {
                v.split(',')
                    .next()
                    .and_then(|vol| vol.split_once(':'))
                    .map(|(store, _)| store.to_owned())
                    .filter(|s| s != "none")
            });
        let memory = config
            .get("memory")
            .and_then(|m| {
                m.split(',')
                    .next()
                    .map(|m| m.trim_start_matches("current=").to_owned())
            })
            .and_then(|m| m.parse::<u64>().ok())
            .unwrap_or(512)
            * 1024
            * 1024;
        let t = Template {
            node: g.node().clone(),
            kind: g.kind(),
            tags: config.tags(),
            storage,
            memory,
            is_template: config.get("template").as_deref().map(str::trim) == Some("1"),
        };
        lock(&self.inner.templates).insert(vmid.get(), t.clone());
        Ok(t)
    }

    async fn baseline(&self, template: u32, lab: &LabName) -> Result<CloneBaseline> {
        let key = (template, lab.to_string());
        let mut cache = self.inner.baselines.lock().await;
        if let Some(b) = cache.get(&key) {
            return Ok(b.clone());
        }
        let options = fw_lab(lab);
        let b = self
            .isolation()
            .clone_baseline(VmId::new(template)?, &options.lab)
            .await
            .map_err(|e| fw_err(e, &format!("template {template}")))?;
        cache.insert(key, b.clone());
        Ok(b)
    }

    /// Is the guest at `vmid` the clone this request would make (from an earlier try whose
    /// answer was lost, or an interrupted run)? Waits while its clone is still running.
    async fn is_our_clone(
        &self,
        node: &NodeName,
        kind_: GuestKind,
        request: &CloneRequest,
    ) -> Result<bool> {
        let g = self.vms.guest_on(node.clone(), kind_, request.vmid);
        let marker = request.lab.marker(&request.hostname);
        let deadline = tokio::time::Instant::now() + self.vms.timing().clone_timeout;
        loop {
            let config = match g.config().await {
                Ok(c) => c,
                Err(e) if e.is_not_found() => return Ok(false),
                Err(e) => return Err(vm_err(e, &format!("VM {}", request.vmid))),
            };
            if config.get("description").as_deref().map(str::trim) != Some(marker.as_str()) {
                return Ok(false);
            }
            if config.lock().as_deref() != Some("clone") {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("the clone of VM {} to finish", request.vmid),
                    after: self.vms.timing().clone_timeout,
                });
            }
            tokio::time::sleep(self.vms.timing().task_poll.max()).await;
        }
    }

    fn cloned_info(&self, request: &CloneRequest, t: &Template) -> Result<GuestInfo> {
        lock(&self.inner.cloned_from).insert(request.vmid.get(), request.template.get());
        lock(&self.inner.pools).insert(request.vmid.get(), request.lab.pool());
        self.vms.remember(request.vmid, &t.node, t.kind);
        Ok(GuestInfo {
            vmid: request.vmid,
            name: Some(request.hostname.clone()),
            node: t.node.clone(),
            kind: kind(t.kind),
            status: VmStatus::Stopped,
            template: false,
            pool: Some(request.lab.pool()),
            tags: t.tags.clone(),
            description: Some(request.lab.marker(&request.hostname)),
        })
    }

    /// The handle of a guest whose placement is known from a listing or a clone.
    fn placed(&self, g: &GuestInfo) -> Result<Guest> {
        let node = g.node.clone();
        let k = match g.kind {
            VmKind::Vm => GuestKind::Qemu,
            VmKind::Container => GuestKind::Lxc,
        };
        Ok(self.vms.guest_on(node, k, g.vmid))
    }
}

/// Config keys that hold disks (`scsi0`, `virtio1`, `rootfs`, `mp0`, …).
fn is_disk_key(k: &str) -> bool {
    let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
    base != k && matches!(base, "scsi" | "virtio" | "sata" | "ide" | "mp") || k == "rootfs"
}

/// One entry of `GET /nodes`.
#[derive(Debug, Deserialize)]
struct NodeEntry {
    node: String,
    #[serde(default)]
    status: Option<String>,
}

/// One entry of `GET /nodes/{node}/tasks?source=active`.
#[derive(Debug, Deserialize)]
struct ActiveTask {
    #[serde(rename = "type")]
    kind: String,
}

/// One entry of `GET /pools`.
#[derive(Debug, Deserialize)]
struct PoolEntry {
    poolid: String,
    #[serde(default)]
    comment: Option<String>,
}

fn pool_comment(lab: &LabName) -> String {
    format!("{POOL_COMMENT_PREFIX}{lab}")
}

fn kind(k: GuestKind) -> VmKind {
    match k {
        GuestKind::Qemu => VmKind::Vm,
        GuestKind::Lxc => VmKind::Container,
    }
}

fn run_state(s: &RunState) -> VmStatus {
    match s {
        RunState::Running => VmStatus::Running,
        RunState::Stopped => VmStatus::Stopped,
        RunState::Other(o) => VmStatus::Other(o.clone()),
    }
}

fn split_tags(tags: Option<&str>) -> Vec<String> {
    tags.unwrap_or_default()
        .split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn summary_info(g: &GuestSummary) -> Result<GuestInfo> {
    Ok(GuestInfo {
        vmid: g.vmid,
        name: g.name.clone(),
        node: g.node.clone(),
        kind: kind(g.kind),
        status: match g.status.as_deref() {
            Some("running") => VmStatus::Running,
            Some("stopped") => VmStatus::Stopped,
            other => VmStatus::Other(other.unwrap_or("unknown").to_owned()),
        },
        template: g.template.unwrap_or(false),
        pool: g.pool.as_ref().map(|p| p.as_str().to_owned()),
        tags: split_tags(g.tags.as_deref()),
        description: None,
    })
}

/// Maps a `pve-vm` error to its meaning; `what` names the object.
fn vm_err(e: pve_vm::Error, what: &str) -> Error {
    if e.is_not_found() {
        return Error::NotFound {
            what: what.to_owned(),
        };
    }
    if e.is_already_exists() {
        return Error::AlreadyExists {
            what: what.to_owned(),
        };
    }
    if e.is_locked() || e.is_lock_timeout() || e.is_transient() {
        return Error::Busy {
            what: what.to_owned(),
            message: e.to_string(),
        };
    }
    if let pve_vm::Error::Timeout { after, .. } = &e {
        return Error::Timeout {
            what: what.to_owned(),
            after: *after,
        };
    }
    Error::backend(BACKEND, e)
}

fn api_err(e: pve_auth::Error, what: &str) -> Error {
    vm_err(pve_vm::Error::from(e), what)
}

fn net_err(e: pve_net::Error, what: &str) -> Error {
    match e {
        pve_net::Error::Vm(e) => vm_err(e, what),
        other => Error::backend(BACKEND, other),
    }
}

/// Would repeating the (idempotent) firewall operation likely succeed? pve-firewall's own
/// classification, plus busy locks (pve-firewall has already retried all of these within
/// its budget; the engine's retry is the last resort).
fn fw_transient(e: &pve_firewall::Error) -> bool {
    match e {
        // "Re-running the same operation completes it": worth it when every failure was.
        pve_firewall::Error::Incomplete { failures, .. } => {
            !failures.is_empty() && failures.iter().all(|(_, f)| fw_transient(f))
        }
        _ => e.is_transient() || e.is_locked() || e.is_lock_timeout(),
    }
}

fn fw_err(e: pve_firewall::Error, what: &str) -> Error {
    if fw_transient(&e) {
        return Error::Busy {
            what: what.to_owned(),
            message: e.to_string(),
        };
    }
    match e {
        pve_firewall::Error::Vm(e) => vm_err(e, what),
        pve_firewall::Error::Api(e) => api_err(e, what),
        other => Error::backend(BACKEND, other),
    }
}

fn fw_lab(lab: &LabName) -> IsolationOptions {
    // A NIC on one of the lab's vnets is on a segment of its student's own: the fence
    // leaves it alone (a re-fence after a crash or a reset must not cut a student's LAN).
    IsolationOptions {
        inner_bridge: Some(networks::is_lab_vnet),
        ..IsolationOptions::new(lab.clone())
    }
}

fn students(ids: &[VmId]) -> Students {
    Students::List(ids.to_vec())
}

/// A power or destroy task that failed only because the guest already was where it was
/// asked to go (`already` in its exit status) is success.
fn done_unless(
    ended: std::result::Result<(), pve_vm::Error>,
    already: &str,
    what: &str,
) -> Result<()> {
    match ended {
        Ok(()) => Ok(()),
        Err(e) if e.mentions(already) => Ok(()),
        Err(e) => Err(vm_err(e, what)),
    }
}

impl Backend for ProxmoxLab {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshots: true,
            placement: true,
            networks: true,
            ..Capabilities::HYPERVISOR
        }
    }
}

#[async_trait]
impl Inventory for ProxmoxLab {
    async fn quiesce(&self, template: Option<VmId>) -> Result<()> {
        let nodes: Vec<(NodeName, Option<&'static str>)> = match template {
            Some(t) => {
                let t = match self.template(t).await {
                    Ok(t) => t,
                    // No such template: nothing can be cloning it (the plan says so).
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) => return Err(e),
                };
                let typ = match t.kind {
                    GuestKind::Qemu => "qmclone",
                    GuestKind::Lxc => "vzclone",
                };
                vec![(t.node, Some(typ))]
            }
            None => {
                let listed: Vec<NodeEntry> = self
                    .client()
                    .get("/nodes", &Params::new())
                    .await
                    .map_err(|e| api_err(e, "nodes"))?;
                listed
                    .into_iter()
                    .filter(|n| n.status.as_deref() != Some("offline"))
                    .filter_map(|n| NodeName::new(n.node).ok())
                    .map(|n| (n, None))
                    .collect()
            }
        };
        let user = self.client().auth_id();
        let deadline = tokio::time::Instant::now() + self.vms.timing().clone_timeout;
        let mut pause = self.vms.timing().task_poll.min();
        for (node, typ) in nodes {
            loop {
                let mut params = Params::new()
                    .with("source", "active")
                    .with("userfilter", user.as_str());
                if let Some(t) = template {
                    params = params.with("vmid", t.get());
                }
                let active: Vec<ActiveTask> = self
                    .client()
                    .get(
                        &pve_auth::api_path(&["nodes", node.as_str(), "tasks"]),
                        &params,
                    )
                    .await
                    .map_err(|e| api_err(e, &format!("tasks of node {node}")))?;
                let clones = active
                    .iter()
                    .filter(|t| match typ {
                        Some(typ) => t.kind == typ,
                        None => t.kind == "qmclone" || t.kind == "vzclone",
                    })
                    .count();
                if clones == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: format!("{clones} clones still running on {node}"),
                        after: self.vms.timing().clone_timeout,
                    });
                }
                tracing::info!(%node, clones, "waiting for clones of an earlier run to land");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(self.vms.timing().task_poll.max());
            }
        }
        Ok(())
    }

    async fn list_guests(&self) -> Result<Vec<GuestInfo>> {
        let list = self
            .vms
            .list_guests()
            .await
            .map_err(|e| vm_err(e, "guest list"))?;
        let mut out = Vec::with_capacity(list.len());
        for g in &list {
            let mut info = summary_info(g)?;
            // /cluster/resources lags ~10 s behind for fresh guests (no name, status
            // `unknown`): read those directly so plans match names reliably.
            if info.name.is_none() || matches!(info.status, VmStatus::Other(_)) {
                let guest = self.vms.guest_on(g.node.clone(), g.kind, g.vmid);
                match self.info_of(&guest, info.pool.clone()).await {
                    Ok(fresh) => info = fresh,
                    Err(e) if e.is_not_found() => continue,
                    // A guest on a node that is down (595) shows as the listing has it.
                    Err(e) if e.is_transient() => {
                        tracing::debug!(vmid = %g.vmid, node = %g.node, error = %e, "guest unreadable; listed as is");
                    }
                    Err(e) => return Err(e),
                }
            }
            self.vms.remember(g.vmid, &g.node, g.kind);
            out.push(info);
        }
        let mut templates = lock(&self.inner.is_template);
        for g in &out {
            templates.insert(g.vmid.get(), g.template);
        }
        drop(templates);
        let mut pools = lock(&self.inner.pools);
        for g in &out {
            match &g.pool {
                Some(p) => pools.insert(g.vmid.get(), p.clone()),
                None => pools.remove(&g.vmid.get()),
            };
        }
        Ok(out)
    }

    async fn guest(&self, vmid: VmId) -> Result<GuestInfo> {
        let g = self.handle(vmid).await?;
        let pool = lock(&self.inner.pools).get(&vmid.get()).cloned();
        self.info_of(&g, pool).await
    }

    async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>> {
        let pool = lab.pool();
        let tag = lab.tag();
        let mut members: Vec<GuestInfo> = self
            .list_guests()
            .await?
            .into_iter()
            .filter(|g| g.pool.as_deref() == Some(pool.as_str()) || g.tags.contains(&tag))
            .collect();
        // A clone whose run died before tagging it shows its mark only in its description.
        for g in members
            .iter_mut()
            .filter(|g| !g.tags.contains(&tag) && !g.template)
        {
            let handle = self.placed(g)?;
            match handle.config().await {
                Ok(c) => g.description = c.get("description").map(|d| d.trim().to_owned()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(vm_err(e, &format!("VM {}", g.vmid))),
            }
        }
        Ok(members)
    }
}

#[async_trait]
impl Provisioning for ProxmoxLab {
    async fn prepare_lab(&self, lab: &LabName) -> Result<()> {
        let pool = lab.pool();
        let comment = pool_comment(lab);
        if let Some(p) = self.pools().await?.into_iter().find(|p| p.poolid == pool) {
            return if p.comment.as_deref() == Some(comment.as_str()) {
                Ok(())
            } else {
                Err(Error::AlreadyExists {
                    what: format!(
                        "pool {pool:?} (not created by labctl, comment {:?}); pick another lab name",
                        p.comment.unwrap_or_default()
                    ),
                })
            };
        }
        let params = Params::new()
            .with("poolid", pool.as_str())
            .with("comment", comment.as_str());
        match self
            .client()
            .post::<serde_json::Value>("/pools", &params)
            .await
        {
            Ok(_) => Ok(()),
            // Created concurrently by another labctl run: check whose it is.
            Err(e) if e.message().is_some_and(|m| m.contains("already exists")) => {
                let ours =
                    self.pools().await?.iter().any(|p| {
                        p.poolid == pool && p.comment.as_deref() == Some(comment.as_str())
                    });
                if ours {
                    Ok(())
                } else {
                    Err(Error::AlreadyExists {
                        what: format!("pool {pool:?}"),
                    })
                }
            }
            Err(e) => Err(api_err(e, &format!("pool {pool:?}"))),
        }
    }

    async fn clone_capacity(&self, template: VmId, mode: CloneMode) -> Result<CloneCapacity> {
        let t = self.template(template).await?;
        let storage = t.storage.clone().unwrap_or_else(|| "unknown".to_owned());
        // Reference §9.2: the storage allocation lock admits about 3 linked clones per
        // node at once (2-4 in practice); full clones copy disks (2); an LXC template is
        // locked (`disk`) for the whole clone, so its clones run one at a time. A linked
        // clone holds the lock a few seconds and a waiting clone gives up after 10 s
        // (§9.1), so as many again may be submitted early: they write their config while
        // the others copy, and the lock never idles. A full clone holds it for minutes:
        // nothing may wait.
        let (slots, queue) = match (t.kind, mode) {
            (GuestKind::Lxc, _) => (1, 0),
            (_, CloneMode::Linked | CloneMode::Auto) => (3, 3),
            (_, CloneMode::Full) => (2, 0),
        };
        Ok(CloneCapacity {
            key: format!("{}/{storage}", t.node),
            slots,
            queue,
        })
    }

    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo> {
        // Placed: clone the source's template (the lab's, or its replica on the node),
        // and land on the source's node (`target` when sent from shared storage).
        let from = request
            .source
            .as_ref()
            .map_or(request.template, |s| s.template);
        let mut t = self.template(from).await?;
        let target = match &request.source {
            Some(s) if s.target => Some(s.node.clone()),
            _ => None,
        };
        let what = format!("clone of {from} as {}", request.hostname);
        let mut params = Params::new()
            .with("newid", request.vmid.get())
            .with("pool", request.lab.pool().as_str())
            .with(
                "description",
                request.lab.marker(&request.hostname).as_str(),
            )
            .with("full", matches!(request.mode, CloneMode::Full));
        params = match t.kind {
            GuestKind::Qemu => params.with("name", request.hostname.as_str()),
            GuestKind::Lxc => params.with("hostname", request.hostname.as_str()),
        };
        pve_vm::validate_hostname(&request.hostname).map_err(|e| vm_err(e, "host name"))?;
        let path = pve_auth::api_path(&[
            "nodes",
            t.node.as_str(),
            t.kind.as_str(),
            &from.to_string(),
            "clone",
        ]);
        if let Some(node) = &target {
            params = params.with("target", node.as_str());
        }
        let sent: pve_auth::Result<Upid> = self
            .write(&t.node, pve_auth::Method::POST, &path, &params)
            .await;
        // From here on `t.node` is where the new guest lives.
        if let Some(node) = target {
            t.node = node;
        }
        let newid = request.vmid;
        let upid = match sent {
            Ok(u) => u,
            Err(e) => {
                let e = pve_vm::Error::from(e);
                if e.is_id_taken(newid) {
                    // Ours from a try whose answer was lost, or someone else's.
                    if self.is_our_clone(&t.node, t.kind, &request).await? {
                        return self.cloned_info(&request, &t);
                    }
                    return Err(Error::AlreadyExists {
                        what: format!("VM {}", request.vmid),
                    });
                }
                if e.is_transient() && !e.was_never_sent() {
                    // The answer was lost: the cluster tells whether the clone exists.
                    if self.is_our_clone(&t.node, t.kind, &request).await? {
                        return self.cloned_info(&request, &t);
                    }
                }
                return Err(vm_err(e, &what));
            }
        };
        match self.settle(&upid, &what).await? {
            Ok(()) => self.cloned_info(&request, &t),
            // PVE removed the partial guest; the engine moves to another id.
            Err(e) if e.is_id_taken(newid) => Err(Error::AlreadyExists {
                what: format!("VM {} ({e})", request.vmid),
            }),
            Err(e) => Err(vm_err(e, &what)),
        }
    }

    async fn destroy(&self, vmid: VmId) -> Result<()> {
        let g = match self.handle(vmid).await {
            Ok(g) => g,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let what = format!("destroy of VM {vmid}");
        let known = lock(&self.inner.is_template).get(&vmid.get()).copied();
        let template = match known {
            Some(t) => t,
            None => g.is_template().await.map_err(|e| vm_err(e, &what))?,
        };
        if template {
            return Err(Error::NotOwned {
                vmid,
                reason: "it is a template; labctl never destroys templates".to_owned(),
            });
        }
        let params = Params::new()
            .with("purge", true)
            .with("destroy-unreferenced-disks", true);
        let path = g.path(&[]);
        let ended = match self
            .run_task(g.node(), pve_auth::Method::DELETE, &path, &params, &what)
            .await
        {
            Ok(ended) => ended,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        done_unless(ended, "does not exist", &what)?;
        self.vms.forget(g.vmid());
        lock(&self.inner.pools).remove(&vmid.get());
        Ok(())
    }

    async fn release_lab(&self, lab: &LabName) -> Result<()> {
        let pool = lab.pool();
        let Some(p) = self.pools().await?.into_iter().find(|p| p.poolid == pool) else {
            return Ok(());
        };
        if p.comment.as_deref() != Some(pool_comment(lab).as_str()) {
            // Not ours: never delete a pool labctl did not create.
            return Ok(());
        }
        self.client()
            .delete::<serde_json::Value>("/pools", &Params::new().with("poolid", pool.as_str()))
            .await
            .map_err(|e| api_err(e, &format!("pool {pool:?}")))?;
        Ok(())
    }
}

#[async_trait]
impl Power for ProxmoxLab {
    async fn start(&self, vmid: VmId) -> Result<()> {
        let g = self.handle(vmid).await?;
        let what = format!("start of VM {vmid}");
        let path = g.path(&["status", "start"]);
        let ended = self
            .run_task(
                g.node(),
                pve_auth::Method::POST,
                &path,
                &Params::new(),
                &what,
            )
            .await?;
        done_unless(ended, "already running", &what)
    }

    async fn stop(&self, vmid: VmId) -> Result<()> {
        let g = self.handle(vmid).await?;
        let what = format!("stop of VM {vmid}");
        let path = g.path(&["status", "stop"]);
        let ended = self
            .run_task(
                g.node(),
                pve_auth::Method::POST,
                &path,
                &Params::new(),
                &what,
            )
            .await?;
        // Any failure of a hard stop is worth another try (it was so before this mapping).
        done_unless(ended, "not running", &what).map_err(|e| match e {
            Error::Backend { source, .. } => Error::Busy {
                what: what.clone(),
                message: source.to_string(),
            },
            other => other,
        })
    }
}

#[async_trait]
impl Snapshots for ProxmoxLab {
    async fn snapshots(&self, vmid: VmId) -> Result<Vec<SnapshotInfo>> {
        let g = self.handle(vmid).await?;
        let list = g
            .snapshots()
            .await
            .map_err(|e| vm_err(e, &format!("snapshots of VM {vmid}")))?;
        Ok(list
            .into_iter()
            .filter(|s| !s.is_current())
            .map(|s| SnapshotInfo {
                name: s.name,
                taken: s.snaptime,
                vmstate: s.vmstate,
            })
            .collect())
    }

    async fn snapshot(&self, vmid: VmId, name: String, vmstate: bool) -> Result<Option<String>> {
        let what = format!("snapshot {name} of VM {vmid}");
        let snapname = pve_vm::SnapshotName::new(name.as_str()).map_err(|e| vm_err(e, &what))?;
        let g = self.handle(vmid).await?;
        // Asked again after a lost answer or a crash: the list says whether it exists.
        if self.snapshots(vmid).await?.iter().any(|s| s.name == name) {
            return Err(Error::AlreadyExists { what });
        }
        let mut params = Params::new().with("snapname", snapname.as_str());
        // RAM only from a running VM (PVE saves none of a stopped one; containers have none).
        if vmstate && g.kind() == GuestKind::Qemu {
            params.insert("vmstate", true);
        }
        let path = g.path(&["snapshot"]);
        let upid: Upid = self
            .write(g.node(), pve_auth::Method::POST, &path, &params)
            .await
            .map_err(|e| api_err(e, &what))?;
        match self.settle(&upid, &what).await? {
            Ok(()) => Ok(Some(upid.to_string())),
            Err(e) if e.mentions("already used") => Err(Error::AlreadyExists { what }),
            Err(e) => Err(vm_err(e, &what)),
        }
    }

    async fn set_links(&self, vmid: VmId, up: bool) -> Result<Vec<NicLink>> {
        let what = format!("links of VM {vmid}");
        let g = self.handle(vmid).await?;
        let cfg = g.config().await.map_err(|e| vm_err(e, &what))?;
        let mut out = Vec::new();
        for (index, _) in cfg.nics() {
            let net = format!("net{index}");
            let change = g
                .set_link(&net, up)
                .await
                .map_err(|e| vm_err(e, &format!("{net} of VM {vmid}")))?;
            out.push(NicLink {
                net: change.net,
                mac: change.mac,
                was_down: change.was_down,
                down: change.down,
            });
        }
        Ok(out)
    }

    async fn rollback_reach(&self, vmid: VmId) -> Result<RollbackReach> {
        let what = format!("storage of VM {vmid}");
        let g = self.handle(vmid).await?;
        let cfg = g.config().await.map_err(|e| vm_err(e, &what))?;
        let Some(store) = first_storage(&cfg) else {
            return Ok(RollbackReach::Any);
        };
        // The storage's type where the caller may read it (Datastore.Audit); else the id
        // (PVE's installer names ZFS storage `local-zfs`).
        let listed: Vec<StorageEntry> = self
            .client()
            .get("/cluster/resources", &Params::new().with("type", "storage"))
            .await
            .unwrap_or_default();
        let zfs = match listed.iter().find(|s| s.storage.as_deref() == Some(&store)) {
            Some(s) => matches!(s.plugintype.as_deref(), Some("zfspool" | "zfs")),
            None => store.contains("zfs"),
        };
        Ok(if zfs {
            RollbackReach::Latest
        } else {
            RollbackReach::Any
        })
    }

    async fn rollback(&self, vmid: VmId, name: String) -> Result<Option<String>> {
        let what = format!("rollback of VM {vmid} to snapshot {name}");
        let snapname = pve_vm::SnapshotName::new(name.as_str()).map_err(|e| vm_err(e, &what))?;
        let g = self.handle(vmid).await?;
        let list = self.snapshots(vmid).await?;
        let Some(pos) = list.iter().position(|s| s.name == name) else {
            return Err(Error::NotFound {
                what: format!("snapshot {name} of VM {vmid}"),
            });
        };
        let path = g.path(&["snapshot", snapname.as_str(), "rollback"]);
        let upid: Upid = self
            .write(g.node(), pve_auth::Method::POST, &path, &Params::new())
            .await
            .map_err(|e| api_err(e, &what))?;
        match self.settle(&upid, &what).await? {
            Ok(()) => Ok(Some(upid.to_string())),
            Err(e) if e.mentions("more recent snapshots exist") => Err(Error::InvalidInput {
                what: "snapshot",
                input: name,
                allowed: format!(
                    "the most recent snapshot of VM {vmid} ({}): its storage (ZFS) cannot roll \
                     back past newer snapshots",
                    list[pos..].last().map_or("none", |s| s.name.as_str())
                ),
            }),
            Err(e) if e.mentions("does not exist") => Err(Error::NotFound {
                what: format!("snapshot {name} of VM {vmid}"),
            }),
            Err(e) => Err(vm_err(e, &what)),
        }
    }

    async fn identity(&self, vmid: VmId) -> Result<GuestIdentity> {
        let what = format!("NICs of VM {vmid}");
        let g = self.handle(vmid).await?;
        let cfg = g.config().await.map_err(|e| vm_err(e, &what))?;
        Ok(GuestIdentity {
            nics: cfg
                .nics()
                .into_iter()
                .filter_map(|(i, nic)| {
                    Some(NicLink {
                        net: format!("net{i}"),
                        mac: nic.mac()?.to_ascii_lowercase(),
                        was_down: nic.link_down(),
                        down: nic.link_down(),
                    })
                })
                .collect(),
            tags: cfg.tags(),
        })
    }

    async fn restore(&self, vmid: VmId, identity: GuestIdentity) -> Result<()> {
        let what = format!("MACs and tags of VM {vmid}");
        let g = self.handle(vmid).await?;
        let tags = pve_vm::normalize_tags(&identity.tags).map_err(|e| vm_err(e, &what))?;
        let mut missing = None;
        let written = g
            .modify_config(|cfg| {
                let mut update = ConfigUpdate::new();
                let nics = cfg.nics();
                for want in &identity.nics {
                    let found = want
                        .net
                        .strip_prefix("net")
                        .and_then(|i| i.parse::<u32>().ok())
                        .and_then(|i| nics.iter().find(|(n, _)| *n == i));
                    let Some((_, nic)) = found else {
                        missing = Some(want.net.clone());
                        return Ok(ConfigUpdate::new());
                    };
                    let mut nic = nic.clone();
                    set_mac(&mut nic, &want.mac);
                    let value = nic.to_string();
                    if cfg.get(&want.net).as_deref() != Some(value.as_str()) {
                        update = update.set(&want.net, value);
                    }
                }
                let now = pve_vm::normalize_tags(cfg.tags())?;
                if now != tags {
                    update = if tags.is_empty() {
                        update.delete("tags")
                    } else {
                        update.set("tags", tags.as_str())
                    };
                }
                Ok(update)
            })
            .await;
        if let Some(net) = missing {
            return Err(Error::InvalidInput {
                what: "NIC",
                input: net,
                allowed: format!("a NIC VM {vmid} has"),
            });
        }
        written.map_err(|e| vm_err(e, &what))
    }
}

/// Sets a NIC's MAC where its spelling keeps it: the QEMU model's value, else `macaddr`
/// (QEMU long form) or `hwaddr` (LXC).
fn set_mac(nic: &mut pve_vm::NetDevice, mac: &str) {
    let mac = mac.to_ascii_uppercase();
    if let Some(model) = nic.model().map(str::to_owned) {
        nic.set(&model, &mac);
    } else if nic.is_lxc() {
        nic.set("hwaddr", &mac);
    } else {
        nic.set("macaddr", &mac);
    }
}

/// The storage id of a guest's first disk (not a CD-ROM).
fn first_storage(cfg: &pve_vm::GuestConfig) -> Option<String> {
    let mut keys: Vec<&String> = cfg.raw.keys().filter(|k| is_disk_key(k)).collect();
    keys.sort();
    keys.into_iter()
        .filter_map(|k| cfg.get(k))
        .filter(|v| !v.contains("media=cdrom"))
        .find_map(|v| {
            v.split(',')
                .next()
                .and_then(|vol| vol.split_once(':'))
                .map(|(store, _)| store.to_owned())
                .filter(|s| s != "none")
        })
}

/// One storage of `GET /cluster/resources?type=storage`.
#[derive(Debug, Deserialize)]
struct StorageEntry {
    storage: Option<String>,
    plugintype: Option<String>,
}

#[async_trait]
impl Readiness for ProxmoxLab {
    async fn probe(&self, vmid: VmId) -> Result<Probe> {
        let g = self.handle(vmid).await?;
        let interfaces = match self.net.interfaces(&g).await {
            Ok(i) => i,
            Err(e) if e.is_pending() => return Ok(Probe::default()),
            Err(e) => return Err(net_err(e, &format!("the guest agent of VM {vmid}"))),
        };
        let mut addresses: Vec<IpAddr> = pve_net::choose_primary_ipv4(&interfaces, &[])
            .map(IpAddr::V4)
            .into_iter()
            .collect();
        for iface in interfaces.iter().filter(|i| !i.is_loopback()) {
            for a in iface.usable_ipv4() {
                if !addresses.contains(&IpAddr::V4(a)) {
                    addresses.push(IpAddr::V4(a));
                }
            }
        }
        Ok(Probe {
            ready: true,
            addresses,
        })
    }

    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>> {
        Ok(self.probe(vmid).await?.addresses)
    }
}

#[async_trait]
impl Fencing for ProxmoxLab {
    async fn prepare_fence(&self, lab: &LabName, allowed: Vec<IpAddr>) -> Result<()> {
        let options = fw_lab(lab);
        let allowed: Vec<Cidr> = allowed.into_iter().map(Cidr::host).collect();
        let report = self
            .isolation()
            .prepare(&allowed, &options)
            .await
            .map_err(|e| fw_err(e, &format!("fence of lab {lab}")))?;
        tracing::info!(lab = %lab, changes = report.changes.len(), "lab-wide fence in place");
        Ok(())
    }

    async fn secure(&self, guest: GuestInfo, how: Secure) -> Result<()> {
        let lab = &how.lab;
        let handle = self.placed(&guest)?;
        let vmid = guest.vmid;
        let what = format!("marks and fence of VM {vmid}");
        let template = lock(&self.inner.cloned_from).get(&vmid.get()).copied();
        let mut update = ConfigUpdate::new();
        let mut fenced = !how.fence;
        // The NICs the plugs rewrite: of the template for a fresh clone (read once per
        // template; the clone's MACs were never seen, PVE draws new ones as clone did),
        // else the guest's own (read, so their MACs are kept).
        let mut nics: Option<(Vec<(u32, pve_vm::NetDevice)>, bool)> = None;
        if let (true, Some(template)) = (how.fresh, template) {
            if how.fence || !how.nics.is_empty() {
                let baseline = self.baseline(template, lab).await?;
                nics = Some((baseline.nics().to_vec(), false));
                if how.fence {
                    let options = fw_lab(lab);
                    if let Some(changes) = self
                        .isolation()
                        .fence_clone(&handle, &baseline, &options)
                        .await
                        .map_err(|e| fw_err(e, &what))?
                    {
                        update = changes;
                        fenced = true;
                    }
                }
            }
        }
        if !fenced {
            let options = fw_lab(lab);
            self.isolation()
                .isolate_one(vmid, &options)
                .await
                .map_err(|e| fw_err(e, &what))?;
        }
        if !how.nics.is_empty() {
            let (nics, keep_mac) = match nics {
                Some(n) => n,
                None => (
                    handle.config().await.map_err(|e| vm_err(e, &what))?.nics(),
                    true,
                ),
            };
            update =
                networks::plug_nics(update, &nics, &how.nics, handle.kind(), keep_mac, how.fence)?;
        }
        // The template's tags came along with the clone; the lab's tag replaces them.
        if how.fresh || !guest.is_tagged(lab) || !update.is_empty() {
            update = update.set("tags", lab.tag().as_str());
            let path = handle.path(&["config"]);
            self.write::<serde_json::Value>(
                handle.node(),
                pve_auth::Method::PUT,
                &path,
                &update.to_params(),
            )
            .await
            .map_err(|e| api_err(e, &what))?;
        }
        Ok(())
    }

    async fn isolate(
        &self,
        lab: &LabName,
        students_ids: Vec<VmId>,
        allowed: Vec<IpAddr>,
    ) -> Result<()> {
        let options = fw_lab(lab);
        let allowed: Vec<Cidr> = allowed.into_iter().map(Cidr::host).collect();
        let report = self
            .isolation()
            .isolate(&students(&students_ids), &allowed, &options)
            .await
            .map_err(|e| fw_err(e, &format!("fence of lab {lab}")))?;
        tracing::info!(lab = %lab, changes = report.changes.len(), "fenced");
        Ok(())
    }

    async fn unisolate(&self, lab: &LabName, students_ids: Vec<VmId>) -> Result<()> {
        let options = fw_lab(lab);
        let iso = self.isolation();
        let report = if students_ids.is_empty() {
            iso.lift_lab(&options).await
        } else {
            iso.unisolate(&students(&students_ids), &options).await
        }
        .map_err(|e| fw_err(e, &format!("fence of lab {lab}")))?;
        tracing::info!(lab = %lab, changes = report.changes.len(), "fence lifted");
        Ok(())
    }

    /// The fence holds when the guest's marker rule is first, its firewall is on and every
    /// NIC has `firewall=1` — except NICs on the lab's own vnets (their names tell the lab,
    /// [`lab_core::vnet_id`]): such a segment is the student's alone, so a host whose only
    /// NIC is on it is fenced by its network.
    async fn fenced(&self, lab: &LabName, vmid: VmId) -> Result<bool> {
        let options = fw_lab(lab);
        self.isolation()
            .holds_except(vmid, &options.lab, &|bridge: &str| {
                networks::is_lab_vnet(lab, bridge)
            })
            .await
            .map_err(|e| fw_err(e, &format!("fence of VM {vmid}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_lower_case() {
        assert_eq!(
            split_tags(Some("Labctl.exam1;student-07")),
            ["labctl.exam1", "student-07"]
        );
        assert!(split_tags(None).is_empty());
    }
}

// The README's Rust examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
