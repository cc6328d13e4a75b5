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

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use lab_core::{
    CloneMode, CloneRequest, Error, GuestInfo, Hypervisor, LabName, Node, Result, VmId, VmKind,
    VmStatus,
};
use pve_auth::{Params, PveClient};
use pve_firewall::isolation::{Isolation, IsolationOptions, Students};
use pve_firewall::Cidr;
use pve_net::NetApi;
use pve_vm::{
    DestroyOptions, Guest, GuestKind, GuestSummary, NewId, PoolId, RunState, Timing, VmApi,
};
use serde::Deserialize;

/// The backend name in messages.
pub const BACKEND: &str = "proxmox";
/// Comment of a pool created by labctl, followed by the lab name.
pub const POOL_COMMENT_PREFIX: &str = "labctl lab ";

/// Proxmox VE as a [`Hypervisor`]. Cheap to clone; shares one client.
#[derive(Debug, Clone)]
pub struct ProxmoxLab {
    vms: VmApi,
    net: NetApi,
}

impl ProxmoxLab {
    /// Over `client` with real-cluster waits.
    pub fn new(client: PveClient) -> Self {
        Self::with_timing(client, Timing::default())
    }

    /// Over `client` with these waits (`Timing::default().scaled(f)` against a simulator
    /// running at time scale `f`).
    pub fn with_timing(client: PveClient, timing: Timing) -> Self {
        Self {
            vms: VmApi::with_timing(client, timing),
            net: NetApi::new(),
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
            .guest(pve_id(vmid)?)
            .await
            .map_err(|e| vm_err(e, &format!("VM {vmid}")))
    }

    /// Reads a guest's current state (fresh name, status, template flag, tags).
    async fn info_of(&self, guest: &Guest, pool: Option<String>) -> Result<GuestInfo> {
        let what = format!("VM {}", guest.vmid());
        let st = guest.status().await.map_err(|e| vm_err(e, &what))?;
        Ok(GuestInfo {
            vmid: core_id(guest.vmid())?,
            name: st.name.clone(),
            node: Node::new(guest.node().as_str()),
            kind: kind(guest.kind()),
            status: run_state(&st.status),
            template: st.template,
            pool,
            tags: split_tags(st.tags.as_deref()),
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

fn pve_id(vmid: VmId) -> Result<pve_vm::VmId> {
    pve_vm::VmId::new(vmid.get()).map_err(|e| vm_err(e, "VMID"))
}

fn core_id(vmid: pve_vm::VmId) -> Result<VmId> {
    VmId::new(vmid.get())
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
        vmid: core_id(g.vmid)?,
        name: g.name.clone(),
        node: Node::new(g.node.as_str()),
        kind: kind(g.kind),
        status: match g.status.as_deref() {
            Some("running") => VmStatus::Running,
            Some("stopped") => VmStatus::Stopped,
            other => VmStatus::Other(other.unwrap_or("unknown").to_owned()),
        },
        template: g.template.unwrap_or(false),
        pool: g.pool.as_ref().map(|p| p.as_str().to_owned()),
        tags: split_tags(g.tags.as_deref()),
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

/// Would repeating the (idempotent) firewall operation likely succeed?
fn fw_transient(e: &pve_firewall::Error) -> bool {
    match e {
        pve_firewall::Error::Api(a) => {
            a.is_retryable()
                || matches!(
                    a,
                    pve_auth::Error::Timeout { .. } | pve_auth::Error::Transport { .. }
                )
        }
        pve_firewall::Error::Vm(v) => v.is_transient() || v.is_locked() || v.is_lock_timeout(),
        // "Re-running the same operation completes it": worth it when every failure was.
        pve_firewall::Error::Incomplete { failures, .. } => {
            !failures.is_empty() && failures.iter().all(|(_, f)| fw_transient(f))
        }
        _ => false,
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

fn fw_lab(lab: &LabName) -> Result<IsolationOptions> {
    let name =
        pve_firewall::isolation::LabName::new(lab.as_str()).map_err(|e| fw_err(e, "lab name"))?;
    Ok(IsolationOptions::new(name))
}

fn students(ids: &[VmId]) -> Result<Students> {
    Ok(Students::List(
        ids.iter().map(|v| pve_id(*v)).collect::<Result<_>>()?,
    ))
}

#[async_trait]
impl Hypervisor for ProxmoxLab {
    fn backend(&self) -> &'static str {
        BACKEND
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
                    Err(e) => return Err(e),
                }
            }
            out.push(info);
        }
        Ok(out)
    }

    async fn guest(&self, vmid: VmId) -> Result<GuestInfo> {
        let g = self.handle(vmid).await?;
        let pool = g
            .pool()
            .await
            .map_err(|e| vm_err(e, &format!("VM {vmid}")))?
            .map(|p| p.as_str().to_owned());
        self.info_of(&g, pool).await
    }

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

    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo> {
        let template = self.handle(request.template).await?;
        let pool = PoolId::new(request.lab.pool()).map_err(|e| vm_err(e, "pool"))?;
        let opts = pve_vm::CloneOptions {
            newid: NewId::Within(pve_id(request.vmid)?..=pve_id(request.last_id)?),
            hostname: Some(request.hostname.clone()),
            mode: match request.mode {
                CloneMode::Linked => pve_vm::CloneMode::Linked,
                CloneMode::Full => pve_vm::CloneMode::Full,
            },
            pool: Some(pool),
            description: Some(format!(
                "labctl lab {}: student {} cloned from {}",
                request.lab, request.hostname, request.template
            )),
            ..pve_vm::CloneOptions::default()
        };
        let what = format!("clone of {} as {}", request.template, request.hostname);
        let guest = template
            .clone_to(opts)
            .await
            .map_err(|e| vm_err(e, &what))?;
        // The template's tags came along; the lab's tag replaces them.
        if let Err(e) = guest.set_tags(&[request.lab.tag()]).await {
            // Without its tag the clone could never be proven the lab's, so `down` would
            // leave it behind: remove it now, while this call knows it created it.
            let undo = guest
                .destroy(DestroyOptions {
                    purge: true,
                    ..DestroyOptions::default()
                })
                .await;
            if let Err(u) = undo {
                tracing::warn!(vmid = %guest.vmid(), error = %u, "could not remove the untagged clone");
            }
            return Err(vm_err(e, &format!("tags of VM {}", guest.vmid())));
        }
        tracing::debug!(vmid = %guest.vmid(), hostname = %request.hostname, "cloned");
        self.info_of(&guest, Some(request.lab.pool())).await
    }

    async fn start(&self, vmid: VmId) -> Result<()> {
        let g = self.handle(vmid).await?;
        g.start()
            .await
            .map_err(|e| vm_err(e, &format!("start of VM {vmid}")))
    }

    async fn wait_ready(&self, vmid: VmId, timeout: Duration) -> Result<()> {
        let g = self.handle(vmid).await?;
        match g.kind() {
            GuestKind::Qemu => g
                .wait_agent(timeout)
                .await
                .map_err(|e| vm_err(e, &format!("the guest agent of VM {vmid}"))),
            // Containers have no agent; a finished start task means it runs.
            GuestKind::Lxc => Ok(()),
        }
    }

    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>> {
        let g = self.handle(vmid).await?;
        let what = format!("addresses of VM {vmid}");
        let interfaces = match self.net.interfaces(&g).await {
            Ok(i) => i,
            // Still booting or stopped: no addresses yet, not an error.
            Err(e) if e.is_pending() => return Ok(Vec::new()),
            Err(e) => return Err(net_err(e, &what)),
        };
        let primary = self.net.primary_ipv4(&g).await.ok().flatten();
        let mut out: Vec<IpAddr> = primary.map(IpAddr::V4).into_iter().collect();
        for iface in interfaces.iter().filter(|i| !i.is_loopback()) {
            for a in iface.usable_ipv4() {
                if !out.contains(&IpAddr::V4(a)) {
                    out.push(IpAddr::V4(a));
                }
            }
        }
        Ok(out)
    }

    async fn wait_address(&self, vmid: VmId, timeout: Duration) -> Result<IpAddr> {
        let g = self.handle(vmid).await?;
        self.net
            .wait_for_ip(&g, timeout)
            .await
            .map(IpAddr::V4)
            .map_err(|e| net_err(e, &format!("an address of VM {vmid}")))
    }

    async fn isolate(
        &self,
        lab: &LabName,
        students_ids: Vec<VmId>,
        allowed: Vec<IpAddr>,
    ) -> Result<()> {
        let options = fw_lab(lab)?;
        let allowed: Vec<Cidr> = allowed.into_iter().map(Cidr::host).collect();
        let report = self
            .isolation()
            .isolate(&students(&students_ids)?, &allowed, &options)
            .await
            .map_err(|e| fw_err(e, &format!("fence of lab {lab}")))?;
        tracing::info!(lab = %lab, changes = report.changes.len(), "fenced");
        Ok(())
    }

    async fn unisolate(&self, lab: &LabName, students_ids: Vec<VmId>) -> Result<()> {
        if students_ids.is_empty() {
            return Ok(());
        }
        let options = fw_lab(lab)?;
        let report = self
            .isolation()
            .unisolate(&students(&students_ids)?, &options)
            .await
            .map_err(|e| fw_err(e, &format!("fence of lab {lab}")))?;
        tracing::info!(lab = %lab, changes = report.changes.len(), "fence lifted");
        Ok(())
    }

    async fn stop(&self, vmid: VmId) -> Result<()> {
        let g = self.handle(vmid).await?;
        g.stop()
            .await
            .map_err(|e| vm_err(e, &format!("stop of VM {vmid}")))
    }

    async fn destroy(&self, vmid: VmId) -> Result<()> {
        let g = self.handle(vmid).await?;
        // allow_template stays false: pve-vm refuses templates on its own as well.
        g.destroy(DestroyOptions {
            purge: true,
            destroy_unreferenced_disks: true,
            stop_first: false,
            allow_template: false,
        })
        .await
        .map_err(|e| vm_err(e, &format!("destroy of VM {vmid}")))
    }

    async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>> {
        let pool = lab.pool();
        let tag = lab.tag();
        Ok(self
            .list_guests()
            .await?
            .into_iter()
            .filter(|g| g.pool.as_deref() == Some(pool.as_str()) || g.tags.contains(&tag))
            .collect())
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
