//! [`Guest`]: one QEMU VM or LXC container and everything done to it.

use std::time::Duration;

use pve_auth::{api_path, Method, Params};
use serde::Deserialize;
use tokio::time::Instant;

use crate::api::VmApi;
use crate::config::{normalize_tags, ConfigUpdate, GuestConfig};
use crate::error::{Error, Result};
use crate::ids::{GuestKind, NodeName, PoolId, VmId};
use crate::netdev::NetDevice;
use crate::poll::Poll;
use crate::upid::Upid;

/// How many times a digest-guarded change is re-read and re-applied after a concurrent edit.
const DIGEST_ATTEMPTS: u32 = 5;
/// How many times a non-idempotent request is sent again after its answer was lost and its
/// effect was not observed.
pub(crate) const RESENDS: u32 = 3;

/// Run state from `status/current`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// The QEMU process / container runs.
    Running,
    /// Not running.
    Stopped,
    /// Anything else a newer server may send.
    Other(String),
}

impl<'de> Deserialize<'de> for RunState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "running" => RunState::Running,
            "stopped" => RunState::Stopped,
            _ => RunState::Other(s),
        })
    }
}

/// A guest's current state (`GET …/status/current`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct GuestStatus {
    /// Process state.
    pub status: RunState,
    /// QEMU run state (`running`, `paused`, `prelaunch`, …).
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub qmpstatus: Option<String>,
    /// Name (QEMU) or hostname (LXC).
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub name: Option<String>,
    /// Config lock (`clone`, `backup`, …).
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub lock: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "pve_auth::perl::bool")]
    pub template: bool,
    /// QEMU: the guest agent is enabled in the config.
    #[serde(default, deserialize_with = "pve_auth::perl::bool")]
    pub agent: bool,
    /// Tags as stored (`a;b`).
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub tags: Option<String>,
    /// Seconds since start.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_u64")]
    pub uptime: Option<u64>,
}

impl GuestStatus {
    /// `status == running`.
    pub fn is_running(&self) -> bool {
        self.status == RunState::Running
    }
}

/// Options of a graceful shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownOptions {
    /// How long PVE waits for the guest (server default 60 s).
    pub timeout: Option<Duration>,
    /// Stop hard when the timeout passes instead of failing.
    pub force_stop: bool,
}

/// Options of [`Guest::destroy`]. The default destroys only a stopped, non-template guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestroyOptions {
    /// Also remove the guest from backup jobs, replication and HA (`purge=1`).
    pub purge: bool,
    /// Also destroy disks not referenced by the config (`destroy-unreferenced-disks=1`).
    pub destroy_unreferenced_disks: bool,
    /// Stop a running guest first instead of refusing.
    pub stop_first: bool,
    /// Allow destroying a template (refused otherwise).
    pub allow_template: bool,
}

/// One guest, addressed by node, kind and id. Cheap to clone.
///
/// Get one from [`VmApi::guest`] (node looked up) or [`VmApi::guest_on`] (explicit).
#[derive(Debug, Clone)]
pub struct Guest {
    api: VmApi,
    node: NodeName,
    kind: GuestKind,
    vmid: VmId,
}

impl Guest {
    pub(crate) fn new(api: VmApi, node: NodeName, kind: GuestKind, vmid: VmId) -> Self {
        Self {
            api,
            node,
            kind,
            vmid,
        }
    }

    /// The id.
    pub fn vmid(&self) -> VmId {
        self.vmid
    }

    /// The node owning the guest.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// QEMU or LXC.
    pub fn kind(&self) -> GuestKind {
        self.kind
    }

    /// The API this guest belongs to.
    pub fn api(&self) -> &VmApi {
        &self.api
    }

    /// The API path `/nodes/{node}/{qemu|lxc}/{vmid}/<rest…>`.
    pub fn path(&self, rest: &[&str]) -> String {
        let id = self.vmid.to_string();
        let mut segments = vec!["nodes", self.node.as_str(), self.kind.as_str(), id.as_str()];
        segments.extend_from_slice(rest);
        api_path(&segments)
    }

    fn client(&self) -> &pve_auth::PveClient {
        self.api.client()
    }

    fn label(&self) -> String {
        format!("{} {}", self.kind.noun(), self.vmid)
    }

    /// `GET …/status/current`.
    pub async fn status(&self) -> Result<GuestStatus> {
        self.api
            .read(&self.path(&["status", "current"]), &Params::new())
            .await
    }

    /// `true` for a template.
    pub async fn is_template(&self) -> Result<bool> {
        Ok(self.status().await?.template)
    }

    /// `GET …/config`.
    pub async fn config(&self) -> Result<GuestConfig> {
        self.api.read(&self.path(&["config"]), &Params::new()).await
    }

    /// `PUT …/config` (synchronous for QEMU and LXC). Set a digest in `update` to refuse the
    /// change if the config changed since it was read. Lock timeouts (nothing was changed)
    /// and transient failures are retried with backoff. An empty update sends nothing.
    pub async fn update_config(&self, update: &ConfigUpdate) -> Result<()> {
        update.check()?;
        if update.is_empty() {
            return Ok(());
        }
        let params = update.to_params();
        let path = self.path(&["config"]);
        // A PUT of the same values is idempotent, so a lost answer may be retried blindly.
        self.retry_busy(true, || async {
            self.client()
                .put::<serde_json::Value>(&path, &params)
                .await
                .map(drop)
                .map_err(Error::from)
        })
        .await
    }

    /// Reads the config, lets `change` build an update from it, and applies it guarded by the
    /// config digest; if someone else changed the config meanwhile, reads and tries again.
    pub async fn modify_config<F>(&self, mut change: F) -> Result<()>
    where
        F: FnMut(&GuestConfig) -> Result<ConfigUpdate>,
    {
        let mut attempt = 1;
        loop {
            let config = self.config().await?;
            let mut update = change(&config)?;
            if update.is_empty() {
                return Ok(());
            }
            if let Some(d) = &config.digest {
                update = update.digest(d.clone());
            }
            match self.update_config(&update).await {
                Err(e) if e.mentions("checksum mismatch") && attempt < DIGEST_ATTEMPTS => {
                    tracing::debug!(guest = %self.vmid, "config changed concurrently; re-reading");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Changes NIC `net<index>` digest-guarded (read, `change`, write back if different).
    /// The whole property string is written back, MAC included, so the NIC keeps its MAC
    /// (PVE assigns a new one to a `netX` written without it).
    pub async fn update_nic<F>(&self, index: u32, mut change: F) -> Result<()>
    where
        F: FnMut(&mut NetDevice),
    {
        let key = format!("net{index}");
        self.modify_config(|cfg| {
            let current = cfg.get(&key).ok_or_else(|| Error::InvalidInput {
                what: format!("NIC {key} of {}", self.label()),
                why: "the guest has no such network device".to_owned(),
            })?;
            let mut nic = NetDevice::parse(&current)?;
            change(&mut nic);
            let updated = nic.to_string();
            Ok(if updated == current {
                ConfigUpdate::new()
            } else {
                ConfigUpdate::new().set(&key, updated)
            })
        })
        .await
    }

    /// The tags (from the config).
    pub async fn tags(&self) -> Result<Vec<String>> {
        Ok(self.config().await?.tags())
    }

    /// Replaces the tags (normalised as PVE stores them); an empty list removes them.
    pub async fn set_tags<S: AsRef<str>>(&self, tags: &[S]) -> Result<()> {
        let normalized = normalize_tags(tags)?;
        let update = if normalized.is_empty() {
            ConfigUpdate::new().delete("tags")
        } else {
            ConfigUpdate::new().set("tags", normalized)
        };
        self.update_config(&update).await
    }

    /// Adds tags to the existing ones (digest-guarded read-modify-write).
    pub async fn add_tags<S: AsRef<str>>(&self, tags: &[S]) -> Result<()> {
        let added = normalize_tags(tags)?;
        self.modify_config(|cfg| {
            let mut all = cfg.tags();
            let before = normalize_tags(&all)?;
            all.push(added.clone());
            let after = normalize_tags(&all)?;
            Ok(if after == before {
                ConfigUpdate::new()
            } else {
                ConfigUpdate::new().set("tags", after)
            })
        })
        .await
    }

    /// Removes tags (digest-guarded read-modify-write).
    pub async fn remove_tags<S: AsRef<str>>(&self, tags: &[S]) -> Result<()> {
        let removed = normalize_tags(tags)?;
        let removed: Vec<&str> = removed.split(';').collect();
        self.modify_config(|cfg| {
            let current = cfg.tags();
            let kept: Vec<&String> = current
                .iter()
                .filter(|t| !removed.contains(&t.to_ascii_lowercase().as_str()))
                .collect();
            Ok(if kept.len() == current.len() {
                ConfigUpdate::new()
            } else if kept.is_empty() {
                ConfigUpdate::new().delete("tags")
            } else {
                ConfigUpdate::new().set("tags", normalize_tags(kept)?)
            })
        })
        .await
    }

    /// The pool the guest belongs to (from `/cluster/resources`; needs Pool.Audit).
    pub async fn pool(&self) -> Result<Option<PoolId>> {
        let list = self.api.list_guests().await?;
        Ok(list
            .into_iter()
            .find(|g| g.vmid == self.vmid)
            .ok_or(Error::GuestNotFound { vmid: self.vmid })?
            .pool)
    }

    /// Adds the guest to `pool` (`PUT /pools`); with `allow_move` it may leave another pool.
    pub async fn join_pool(&self, pool: &PoolId, allow_move: bool) -> Result<()> {
        let mut params = Params::new()
            .with("poolid", pool.as_str())
            .with("vms", self.vmid);
        if allow_move {
            params.insert("allow-move", true);
        }
        self.client()
            .put::<serde_json::Value>("/pools", &params)
            .await?;
        Ok(())
    }

    /// Removes the guest from `pool` (`PUT /pools … delete=1`).
    pub async fn leave_pool(&self, pool: &PoolId) -> Result<()> {
        let params = Params::new()
            .with("poolid", pool.as_str())
            .with("vms", self.vmid)
            .with("delete", true);
        self.client()
            .put::<serde_json::Value>("/pools", &params)
            .await?;
        Ok(())
    }

    /// Starts the guest and waits for the start task. Already running is success.
    pub async fn start(&self) -> Result<()> {
        let wait = self.api.timing().task_timeout;
        let r = self
            .power("start", Params::new(), wait, |s: &GuestStatus| {
                s.is_running()
            })
            .await;
        match r {
            Err(e) if e.mentions("already running") => Ok(()),
            other => other,
        }
    }

    /// Stops the guest hard and waits. Already stopped is success.
    pub async fn stop(&self) -> Result<()> {
        let wait = self.api.timing().task_timeout;
        let r = self
            .power("stop", Params::new(), wait, |s: &GuestStatus| {
                !s.is_running()
            })
            .await;
        match r {
            Err(e) if e.mentions("not running") => Ok(()),
            other => other,
        }
    }

    /// Shuts the guest down gracefully (guest agent or ACPI) and waits. Already stopped is
    /// success.
    pub async fn shutdown(&self, opts: ShutdownOptions) -> Result<()> {
        let mut params = Params::new();
        if let Some(t) = opts.timeout {
            params.insert("timeout", t.as_secs());
        }
        if opts.force_stop {
            params.insert("forceStop", true);
        }
        // The task itself may take the whole server-side timeout.
        let wait = self.api.timing().task_timeout + opts.timeout.unwrap_or(Duration::from_secs(60));
        let r = self
            .power("shutdown", params, wait, |s: &GuestStatus| !s.is_running())
            .await;
        match r {
            Err(e) if e.mentions("not running") && !e.mentions("agent") => Ok(()),
            other => other,
        }
    }

    /// Reboots the guest and waits for the reboot task.
    pub async fn reboot(&self) -> Result<()> {
        let wait = self.api.timing().task_timeout;
        // A reboot that happened shows as a running guest with a smaller uptime.
        let before = self.status().await?.uptime.unwrap_or(u64::MAX);
        self.power("reboot", Params::new(), wait, move |s: &GuestStatus| {
            s.is_running() && s.uptime.is_some_and(|u| u < before)
        })
        .await
    }

    /// POSTs `status/<action>` and waits for its task. After a lost answer `reached` is
    /// checked on the guest's status before the action is sent again.
    async fn power(
        &self,
        action: &str,
        params: Params,
        wait: Duration,
        reached: impl Fn(&GuestStatus) -> bool,
    ) -> Result<()> {
        let path = self.path(&["status", action]);
        let reached = &reached;
        let upid = self
            .send_task_checked(Method::POST, &path, &params, || async move {
                Ok(reached(&self.status().await?))
            })
            .await?;
        if let Some(upid) = upid {
            self.api.wait_task(&upid, wait).await?;
        }
        Ok(())
    }

    /// Sends a task-starting, non-idempotent request (POST or DELETE) with busy-lock
    /// retries, answering its UPID (`None` for calls answering null). If the answer is lost
    /// after the request may have reached the server, `done` is polled for
    /// [`Timing::settle`] before the request is sent again (at most [`RESENDS`] times);
    /// `Ok(None)` also means the effect was observed.
    ///
    /// [`Timing::settle`]: crate::Timing::settle
    pub(crate) async fn send_task_checked<F, Fut>(
        &self,
        method: Method,
        path: &str,
        params: &Params,
        mut done: F,
    ) -> Result<Option<Upid>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let mut resends = 0;
        loop {
            let sent = self
                .retry_busy(false, || async {
                    let answer: Option<Upid> = if method == Method::DELETE {
                        self.client().delete(path, params).await?
                    } else {
                        self.client().post(path, params).await?
                    };
                    Ok(answer)
                })
                .await;
            match sent {
                Ok(upid) => return Ok(upid),
                Err(e) if resends < RESENDS && e.is_transient() && !e.was_never_sent() => {
                    tracing::debug!(path, error = %e, "answer lost; checking state before resending");
                    let settle = self.api.timing().settle;
                    let seen = self
                        .api
                        .timing()
                        .task_poll
                        .wait::<(), Error, _, _>("the effect", settle, || {
                            let check = done();
                            async move {
                                Poll::tolerate(check.await.map(|d| {
                                    if d {
                                        Poll::Ready(())
                                    } else {
                                        Poll::Pending(None)
                                    }
                                }))
                            }
                        })
                        .await;
                    match seen {
                        Ok(()) => return Ok(None),
                        Err(Error::Timeout { .. }) => resends += 1,
                        Err(other) => return Err(other),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `op` again while it fails on a busy lock that means "nothing happened" (a lock
    /// timeout or a config lock) — and, for `idempotent` requests, on transient failures —
    /// with backoff and jitter within [`Timing::lock_retry`].
    ///
    /// [`Timing::lock_retry`]: crate::Timing::lock_retry
    pub(crate) async fn retry_busy<T, F, Fut>(&self, idempotent: bool, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut retry = 1;
        loop {
            match op().await {
                Err(e)
                    if matches!(e, Error::Api(_))
                        && (e.is_lock_timeout()
                            || e.is_locked()
                            || (idempotent && e.is_transient())) =>
                {
                    let Some(delay) = self
                        .api
                        .timing()
                        .lock_retry
                        .next_delay(retry, started.elapsed())
                    else {
                        return Err(e);
                    };
                    tracing::debug!(guest = %self.vmid, error = %e, ?delay, "lock busy; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }

    /// Converts the guest into a template and waits until it is one. QEMU answers a task;
    /// LXC answers nothing (the conversion runs in the background), so the config is polled
    /// for `template: 1` (as it is after a lost answer).
    pub async fn make_template(&self) -> Result<()> {
        let path = self.path(&["template"]);
        let timeout = self.api.timing().task_timeout;
        let answer = self
            .send_task_checked(Method::POST, &path, &Params::new(), || async {
                Ok(self.config().await?.is_template())
            })
            .await?;
        match answer {
            Some(upid) => {
                self.api.wait_task(&upid, timeout).await?;
            }
            None => {
                let what = format!("{} to become a template", self.label());
                self.api
                    .timing()
                    .task_poll
                    .wait(&what, timeout, || async {
                        Poll::tolerate(self.config().await.map(|c| {
                            if c.is_template() {
                                Poll::Ready(())
                            } else {
                                Poll::Pending(None)
                            }
                        }))
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Destroys the guest. Refuses a template unless `allow_template`, and a running guest
    /// unless `stop_first` (then it is stopped first). `purge` and
    /// `destroy-unreferenced-disks` go in the query string (PVE rejects a DELETE body).
    pub async fn destroy(&self, opts: DestroyOptions) -> Result<()> {
        let status = self.status().await?;
        if status.template && !opts.allow_template {
            return Err(Error::Refused {
                why: format!(
                    "{} is a template; destroying it breaks its linked clones. Set \
                     DestroyOptions::allow_template to destroy it anyway",
                    self.label()
                ),
            });
        }
        if status.is_running() {
            if !opts.stop_first {
                return Err(Error::Refused {
                    why: format!(
                        "{} is running; stop it first or set DestroyOptions::stop_first",
                        self.label()
                    ),
                });
            }
            self.stop().await?;
        }
        let mut params = Params::new();
        if opts.purge {
            params.insert("purge", true);
        }
        if opts.destroy_unreferenced_disks {
            params.insert("destroy-unreferenced-disks", true);
        }
        self.delete_and_wait(&params).await
    }

    /// `DELETE` the guest (with `params` in the query string) and wait for the destroy task.
    /// After a lost answer the config is checked before the DELETE is sent again; a guest
    /// found gone counts as destroyed (by this call, as far as anyone can tell).
    pub(crate) async fn delete_and_wait(&self, params: &Params) -> Result<()> {
        let answer = self
            .send_task_checked(Method::DELETE, &self.path(&[]), params, || async {
                match self.config().await {
                    Err(e) if e.is_not_found() => Ok(true),
                    Err(e) => Err(e),
                    Ok(_) => Ok(false),
                }
            })
            .await?;
        if let Some(upid) = answer {
            self.api
                .wait_task(&upid, self.api.timing().task_timeout)
                .await?;
        }
        self.api.forget(self.vmid);
        Ok(())
    }

    fn require_qemu(&self, what: &str) -> Result<()> {
        match self.kind {
            GuestKind::Qemu => Ok(()),
            GuestKind::Lxc => Err(Error::InvalidInput {
                what: format!("{what} for CT {}", self.vmid),
                why: "containers have no QEMU guest agent; read their state and \
                      addresses directly"
                    .to_owned(),
            }),
        }
    }

    /// Pings the QEMU guest agent once: `Ok(true)` answers, `Ok(false)` not (yet) running
    /// (guest starting, VM stopped, agent hung), [`Error::AgentNotConfigured`] when the VM has
    /// no agent configured.
    pub async fn agent_running(&self) -> Result<bool> {
        self.require_qemu("agent ping")?;
        let path = self.path(&["agent", "ping"]);
        match self
            .client()
            .post::<serde_json::Value>(&path, &Params::new())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match Error::from(e).for_agent_of(self.vmid) {
                e @ Error::AgentNotConfigured { .. } => Err(e),
                e if e.mentions("is not running") || e.mentions("got timeout") => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Waits until the QEMU guest agent answers, pinging per [`Timing::agent_poll`] (at least
    /// 1 s apart by default). Fails at once if no agent is configured.
    ///
    /// [`Timing::agent_poll`]: crate::Timing::agent_poll
    pub async fn wait_agent(&self, timeout: Duration) -> Result<()> {
        self.require_qemu("agent wait")?;
        let what = format!("the guest agent of {}", self.label());
        self.api
            .timing()
            .agent_poll
            .wait(&what, timeout, || async {
                Poll::tolerate(self.agent_running().await.map(|up| {
                    if up {
                        Poll::Ready(())
                    } else {
                        Poll::Pending(Some("QEMU guest agent is not running".to_owned()))
                    }
                }))
            })
            .await
    }

    /// The seed's "up and guest agent running": the guest runs and (QEMU) its agent answers
    /// one ping. For containers, running is enough.
    pub async fn is_up(&self) -> Result<bool> {
        if !self.status().await?.is_running() {
            return Ok(false);
        }
        match self.kind {
            GuestKind::Qemu => self.agent_running().await,
            GuestKind::Lxc => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_loose_fields() {
        let s: GuestStatus = serde_json::from_str(
            r#"{"vmid":101,"name":"matt","status":"running","qmpstatus":"running","agent":1,
                "pid":1563102,"uptime":"170815","template":"1","ha":{"managed":0}}"#,
        )
        .unwrap();
        assert!(s.is_running() && s.agent && s.template);
        assert_eq!(s.uptime, Some(170_815));
        let s: GuestStatus = serde_json::from_str(r#"{"status":"suspended"}"#).unwrap();
        assert_eq!(s.status, RunState::Other("suspended".into()));
        assert!(!s.template && !s.agent);
    }
}
