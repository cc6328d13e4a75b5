//! [`VmApi`]: the entry point. Owns the node cache, in-process id reservations, per-template
//! clone serialisation and task waiting.

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pve_auth::{api_path, Params, PveClient};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::guest::Guest;
use crate::ids::{GuestKind, NodeName, PoolId, VmId};
use crate::poll::Poll;
use crate::timing::Timing;
use crate::upid::Upid;

/// How many task log lines a [`Error::TaskFailed`] carries.
const LOG_TAIL_LINES: usize = 10;

/// One guest as `/cluster/resources?type=vm` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct GuestSummary {
    /// The id.
    pub vmid: VmId,
    /// The node owning the guest.
    pub node: NodeName,
    /// QEMU or LXC.
    #[serde(rename = "type")]
    pub kind: GuestKind,
    /// `running`, `stopped`, … — from a cache refreshed every ~10 s; `unknown` for new
    /// guests. Use [`Guest::status`] for decisions.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub status: Option<String>,
    /// Name (absent for brand-new guests).
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub name: Option<String>,
    /// Template flag (absent for brand-new guests).
    #[serde(default, deserialize_with = "pve_auth::perl::opt_bool")]
    pub template: Option<bool>,
    /// Pool membership (only shown with Pool.Audit on the pool).
    #[serde(default, deserialize_with = "crate::api::opt_pool")]
    pub pool: Option<PoolId>,
    /// Tags, `;`-separated as stored.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub tags: Option<String>,
    /// Config lock, e.g. `clone`.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub lock: Option<String>,
}

pub(crate) fn opt_pool<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<PoolId>, D::Error> {
    match pve_auth::perl::opt_string(d)? {
        Some(s) if !s.is_empty() => PoolId::new(s).map(Some).map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

/// The state of a task (`GET /nodes/{node}/tasks/{upid}/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskStatus {
    /// The task.
    pub upid: Upid,
    /// Still running.
    pub running: bool,
    /// When stopped: `OK`, `WARNINGS: n`, or the error text.
    pub exitstatus: Option<String>,
}

impl TaskStatus {
    /// Ended successfully: `OK` or `WARNINGS: n`.
    pub fn succeeded(&self) -> bool {
        !self.running
            && self
                .exitstatus
                .as_deref()
                .is_some_and(|s| s == "OK" || s.starts_with("WARNINGS"))
    }

    /// The number of warnings of a task that ended with `WARNINGS: n`.
    pub fn warnings(&self) -> Option<u32> {
        self.exitstatus
            .as_deref()?
            .strip_prefix("WARNINGS:")?
            .trim()
            .parse()
            .ok()
    }
}

#[derive(Deserialize)]
struct RawTaskStatus {
    #[serde(deserialize_with = "pve_auth::perl::string")]
    status: String,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    exitstatus: Option<String>,
}

#[derive(Deserialize)]
struct LogLine {
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    t: Option<String>,
}

struct Inner {
    client: PveClient,
    timing: Timing,
    placements: Mutex<HashMap<VmId, (NodeName, GuestKind)>>,
    reserved: Mutex<BTreeSet<VmId>>,
    /// Held while picking ids, so two callers in this process never pick the same one.
    picking: tokio::sync::Mutex<()>,
    /// One lock per LXC template: PVE locks the source CT (`lock: disk`) for a whole clone.
    clone_locks: Mutex<HashMap<VmId, Arc<tokio::sync::Mutex<()>>>>,
    /// Clone slots per source node ([`Timing::clones_per_node`]).
    clone_slots: Mutex<HashMap<NodeName, Arc<tokio::sync::Semaphore>>>,
}

/// Guest lifecycle API over a [`PveClient`]. Cheap to clone; clones share the node cache,
/// the id reservations and the clone serialisation.
#[derive(Clone)]
pub struct VmApi {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VmApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmApi")
            .field("client", &self.inner.client)
            .field("timing", &self.inner.timing)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VmApi {
    /// With default [`Timing`].
    pub fn new(client: PveClient) -> Self {
        Self::with_timing(client, Timing::default())
    }

    /// With explicit waiting and retry settings.
    pub fn with_timing(client: PveClient, timing: Timing) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                timing,
                placements: Mutex::new(HashMap::new()),
                reserved: Mutex::new(BTreeSet::new()),
                picking: tokio::sync::Mutex::new(()),
                clone_locks: Mutex::new(HashMap::new()),
                clone_slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &PveClient {
        &self.inner.client
    }

    /// The waiting and retry settings.
    pub fn timing(&self) -> &Timing {
        &self.inner.timing
    }

    /// All guests this user may see (`GET /cluster/resources?type=vm`); refreshes the node
    /// cache.
    pub async fn list_guests(&self) -> Result<Vec<GuestSummary>> {
        let list: Vec<GuestSummary> = self
            .read("/cluster/resources", &Params::new().with("type", "vm"))
            .await?;
        let mut placements = lock(&self.inner.placements);
        for g in &list {
            placements.insert(g.vmid, (g.node.clone(), g.kind));
        }
        Ok(list)
    }

    /// The guest `vmid`, its node and kind looked up in `/cluster/resources` once and cached.
    pub async fn guest(&self, vmid: VmId) -> Result<Guest> {
        if let Some((node, kind)) = lock(&self.inner.placements).get(&vmid).cloned() {
            return Ok(self.guest_on(node, kind, vmid));
        }
        let list = self.list_guests().await?;
        let found = list
            .into_iter()
            .find(|g| g.vmid == vmid)
            .ok_or(Error::GuestNotFound { vmid })?;
        Ok(self.guest_on(found.node, found.kind, vmid))
    }

    /// The guest `vmid` on `node`, without any lookup (and without checking it exists).
    pub fn guest_on(&self, node: NodeName, kind: GuestKind, vmid: VmId) -> Guest {
        Guest::new(self.clone(), node, kind, vmid)
    }

    /// Drops `vmid` from the node cache (after a migration, or when it was destroyed
    /// elsewhere).
    pub fn forget(&self, vmid: VmId) {
        lock(&self.inner.placements).remove(&vmid);
    }

    /// Records where `vmid` lives (a guest this process just created), so later lookups
    /// need no listing.
    pub fn remember(&self, vmid: VmId, node: &NodeName, kind: GuestKind) {
        lock(&self.inner.placements).insert(vmid, (node.clone(), kind));
    }

    /// `GET` through the client. `pve-auth` repeats reads on transient failures, including
    /// `got no worker upid` (the server could not fork a worker, so nothing ran).
    pub async fn read<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &Params,
    ) -> Result<T> {
        Ok(self.client().get(path, params).await?)
    }

    /// The lowest free id `>= from`, checked with `GET /cluster/nextid?vmid=N` and reserved
    /// in this `VmApi` until [`VmApi::release_ids`] (clones release their own).
    pub async fn next_free_id(&self, from: VmId) -> Result<VmId> {
        let mut ids = self.pick_ids(from..=VmId::MAX, 1, &BTreeSet::new()).await?;
        ids.pop().ok_or_else(|| Error::NoFreeId {
            why: format!("none from {from}"),
        })
    }

    /// `count` free ids from `range` (lowest first), each checked with `nextid?vmid=N` and
    /// reserved in this `VmApi` until [`VmApi::release_ids`]. Fails without reserving anything
    /// if the range has too few free ids.
    pub async fn allocate_ids(
        &self,
        range: RangeInclusive<VmId>,
        count: usize,
    ) -> Result<Vec<VmId>> {
        self.pick_ids(range, count, &BTreeSet::new()).await
    }

    /// Returns reserved ids to the pool of candidates.
    pub fn release_ids(&self, ids: &[VmId]) {
        let mut reserved = lock(&self.inner.reserved);
        for id in ids {
            reserved.remove(id);
        }
    }

    /// Ids currently reserved in this `VmApi`.
    pub fn reserved_ids(&self) -> Vec<VmId> {
        lock(&self.inner.reserved).iter().copied().collect()
    }

    /// Reserves a caller-chosen id (again).
    pub(crate) fn reserve(&self, id: VmId) {
        lock(&self.inner.reserved).insert(id);
    }

    pub(crate) async fn pick_ids(
        &self,
        range: RangeInclusive<VmId>,
        count: usize,
        skip: &BTreeSet<VmId>,
    ) -> Result<Vec<VmId>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        if range.start() > range.end() {
            return Err(Error::InvalidInput {
                what: format!("id range {}..={}", range.start(), range.end()),
                why: "the start is above the end".to_owned(),
            });
        }
        let _picking = self.inner.picking.lock().await;
        let used: BTreeSet<VmId> = self.list_guests().await?.iter().map(|g| g.vmid).collect();
        let mut chosen = Vec::with_capacity(count);
        let mut candidate = Some(*range.start());
        while let Some(id) = candidate.filter(|c| c <= range.end()) {
            candidate = id.next();
            let blocked = used.contains(&id)
                || skip.contains(&id)
                || lock(&self.inner.reserved).contains(&id);
            if blocked {
                continue;
            }
            // The cluster list can lag behind; nextid?vmid=N checks the config files.
            match self
                .read::<serde_json::Value>("/cluster/nextid", &Params::new().with("vmid", id))
                .await
            {
                Ok(_) => chosen.push(id),
                Err(e) if e.is_already_exists() => continue,
                Err(e) => return Err(e),
            }
            if chosen.len() == count {
                let mut reserved = lock(&self.inner.reserved);
                reserved.extend(chosen.iter().copied());
                return Ok(chosen);
            }
        }
        Err(Error::NoFreeId {
            why: format!(
                "{} free of {} needed in {}..={}",
                chosen.len(),
                count,
                range.start(),
                range.end()
            ),
        })
    }

    /// Waits for a clone slot on `node`; the slot is held while the permit lives.
    pub(crate) async fn clone_slot(&self, node: &NodeName) -> tokio::sync::OwnedSemaphorePermit {
        let slots = self.inner.timing.clones_per_node.max(1);
        let semaphore = lock(&self.inner.clone_slots)
            .entry(node.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(slots)))
            .clone();
        semaphore
            .acquire_owned()
            .await
            .expect("clone semaphores are never closed")
    }

    pub(crate) fn clone_lock(&self, template: VmId) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.inner.clone_locks)
            .entry(template)
            .or_default()
            .clone()
    }

    /// Waits until the task ends (polling its node with backoff per [`Timing::task_poll`],
    /// tolerating transient errors) and returns its status if it succeeded (`OK` or
    /// `WARNINGS: n`); a failed task becomes [`Error::TaskFailed`] with its exit status and
    /// the last log lines.
    pub async fn wait_task(&self, upid: &Upid, timeout: Duration) -> Result<TaskStatus> {
        let path = api_path(&[
            "nodes",
            upid.node().as_str(),
            "tasks",
            upid.as_str(),
            "status",
        ]);
        let what = format!("task {upid}");
        let status: TaskStatus = self
            .inner
            .timing
            .task_poll
            .wait(&what, timeout, || async {
                let step = async {
                    let raw: RawTaskStatus = self.read(&path, &Params::new()).await?;
                    if raw.status == "running" {
                        return Ok(Poll::Pending(None));
                    }
                    Ok(Poll::Ready(TaskStatus {
                        upid: upid.clone(),
                        running: false,
                        exitstatus: raw.exitstatus,
                    }))
                };
                Poll::tolerate(step.await)
            })
            .await?;
        if status.succeeded() {
            return Ok(status);
        }
        let exitstatus = status
            .exitstatus
            .clone()
            .unwrap_or_else(|| "unknown (no exit status)".to_owned());
        Err(Error::TaskFailed {
            upid: upid.clone(),
            exitstatus,
            log_tail: self.task_log_tail(upid).await,
        })
    }

    /// The last lines of a task log; empty if it cannot be read (the task error matters more).
    async fn task_log_tail(&self, upid: &Upid) -> Vec<String> {
        let lines = self.task_log(upid).await;
        let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines.into_iter().skip(skip).collect()
    }

    /// The first 1000 lines of a task log; empty if it cannot be read.
    pub(crate) async fn task_log(&self, upid: &Upid) -> Vec<String> {
        let path = api_path(&["nodes", upid.node().as_str(), "tasks", upid.as_str(), "log"]);
        let params = Params::new().with("start", 0u32).with("limit", 1000u32);
        match self.client().get::<Vec<LogLine>>(&path, &params).await {
            Ok(lines) => lines.into_iter().filter_map(|l| l.t).collect(),
            Err(e) => {
                tracing::debug!(%upid, error = %e, "cannot read the task log");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(exit: Option<&str>, running: bool) -> TaskStatus {
        TaskStatus {
            upid: "UPID:pve1:0012D68C:8206F38C:65144CB7:qmstart:100:root@pam:"
                .parse()
                .unwrap(),
            running,
            exitstatus: exit.map(str::to_owned),
        }
    }

    #[test]
    fn task_success_rules() {
        assert!(status(Some("OK"), false).succeeded());
        assert!(status(Some("WARNINGS: 2"), false).succeeded());
        assert_eq!(status(Some("WARNINGS: 2"), false).warnings(), Some(2));
        assert!(!status(Some("clone failed: x"), false).succeeded());
        assert!(!status(Some("unexpected status"), false).succeeded());
        assert!(!status(None, false).succeeded());
        assert!(!status(None, true).succeeded());
    }

    #[test]
    fn resources_entries_parse_leniently() {
        let list: Vec<GuestSummary> = serde_json::from_str(
            r#"[{"id":"qemu/101","type":"qemu","vmid":101,"node":"pve2","name":"test1",
                "status":"stopped","template":0,"pool":"pool1","tags":"a;b","maxmem":5},
               {"id":"lxc/102","type":"lxc","vmid":"102","node":"pve1","status":"unknown"}]"#,
        )
        .unwrap();
        assert_eq!(list[0].vmid.get(), 101);
        assert_eq!(list[0].template, Some(false));
        assert_eq!(list[0].pool.as_ref().map(PoolId::as_str), Some("pool1"));
        assert_eq!(list[1].kind, GuestKind::Lxc);
        assert_eq!(list[1].name, None);
    }
}
