//! Per-student networks on Proxmox VE SDN ([`lab_core::Networks`]): one vnet per student
//! network, in the zone the lab file names or in the lab's own zone
//! ([`lab_core::lab_zone_id`]), each owned through its alias
//! ([`lab_core::network_alias`]). Every change of a call is made under one SDN lock and
//! applied once (`PUT /cluster/sdn` reloads the network of every node); the lock is
//! released on every error.
//!
//! Subnets have no gateway: PVE would put it on the vnet's bridge and the node would route
//! between the students' networks.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use lab_core::{
    lab_zone_id, network_alias, parse_network_alias, Error, LabName, NetworkInfo, NetworkPlan,
    Networks, NetworksRemoved, Result, StudentNetwork, ZoneKind,
};
use pve_sdn::{
    Cidr, DhcpRange, LockToken, NewSubnet, NewVnet, NewZone, PendingState, Sdn, Subnet, Vnet,
    VnetId, ZoneId, ZoneType,
};

use crate::{api_err, lock, vm_err, ProxmoxLab, BACKEND};

/// First and last host of the DHCP range of a student's /24 (simple zones).
const DHCP_FIRST: u32 = 10;
const DHCP_LAST: u32 = 200;

/// Maps a `pve-sdn` error to its meaning; `what` names the object.
fn sdn_err(e: pve_sdn::Error, what: &str) -> Error {
    if e.is_locked() || e.is_transient() {
        return Error::Busy {
            what: what.to_owned(),
            message: e.to_string(),
        };
    }
    match e {
        pve_sdn::Error::Api(e) => api_err(e, what),
        pve_sdn::Error::Task(e) => vm_err(e, what),
        pve_sdn::Error::InvalidInput {
            field,
            value,
            reason,
        } => Error::invalid(field, value, reason),
        other => Error::backend(BACKEND, other),
    }
}

fn live(state: &Option<PendingState>) -> bool {
    !matches!(state, Some(PendingState::Deleted))
}

/// What the cluster shows of the lab's networks (pending changes included).
struct Seen {
    zones: Vec<pve_sdn::Zone>,
    vnets: Vec<Vnet>,
    /// Subnets of the lab's vnets (listed only for those).
    subnets: BTreeMap<String, Vec<Subnet>>,
}

impl Seen {
    fn zone(&self, id: &str) -> Option<&pve_sdn::Zone> {
        self.zones
            .iter()
            .find(|z| z.zone.as_str() == id && live(&z.state))
    }

    fn vnet(&self, id: &str) -> Option<&Vnet> {
        self.vnets
            .iter()
            .find(|v| v.vnet.as_str() == id && live(&v.state))
    }

    /// The lab's vnets, pending deletions included.
    fn ours<'a>(&'a self, lab: &'a LabName) -> impl Iterator<Item = &'a Vnet> + 'a {
        self.vnets.iter().filter(move |v| {
            v.alias
                .as_deref()
                .is_some_and(|a| parse_network_alias(lab, a).is_some())
        })
    }

    fn info(&self, lab: &LabName) -> Vec<NetworkInfo> {
        let mut out: Vec<NetworkInfo> = self
            .ours(lab)
            .filter(|v| live(&v.state))
            .filter_map(|v| {
                let (student, network) = parse_network_alias(lab, v.alias.as_deref()?)?;
                let subnets = self.subnets.get(v.vnet.as_str());
                let subnet = subnets.and_then(|s| s.iter().find(|s| live(&s.state)));
                Some(NetworkInfo {
                    id: v.vnet.to_string(),
                    zone: v.zone.clone().unwrap_or_default(),
                    student: student.to_owned(),
                    network: network.to_owned(),
                    tag: v.tag.and_then(|t| u16::try_from(t).ok()),
                    subnet: subnet.map(|s| s.cidr.to_string()),
                    pending: v.state.is_some()
                        || subnets.is_some_and(|s| s.iter().any(|s| s.state.is_some())),
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Pending objects that are not the lab's: another hand's unfinished SDN edit, which
    /// an apply would put in force.
    fn foreign_pending(&self, lab: &LabName, own_zone: &str) -> Vec<String> {
        let zones = self
            .zones
            .iter()
            .filter(|z| z.state.is_some() && z.zone.as_str() != own_zone)
            .map(|z| format!("zone {}", z.zone));
        let vnets = self
            .vnets
            .iter()
            .filter(|v| {
                v.state.is_some()
                    && v.alias
                        .as_deref()
                        .is_none_or(|a| parse_network_alias(lab, a).is_none())
            })
            .map(|v| format!("vnet {}", v.vnet));
        zones.chain(vnets).collect()
    }

    /// Refuses to apply when pending changes are not the lab's.
    fn refuse_foreign_pending(&self, lab: &LabName, own_zone: &str) -> Result<()> {
        let foreign = self.foreign_pending(lab, own_zone);
        if foreign.is_empty() {
            return Ok(());
        }
        Err(Error::backend(
            BACKEND,
            pve_sdn::Error::Inconsistent {
                object: "SDN configuration".to_owned(),
                message: format!(
                    "changes not made by lab {lab} are pending ({}); an apply would put them \
                     in force: apply or revert them (Datacenter → SDN), then run again",
                    foreign.join(", ")
                ),
            },
        ))
    }

    /// Whether anything of the lab waits for an apply.
    fn own_pending(&self, lab: &LabName, own_zone: &str) -> bool {
        self.zones
            .iter()
            .any(|z| z.zone.as_str() == own_zone && z.state.is_some())
            || self.ours(lab).any(|v| v.state.is_some())
            || self.subnets.values().flatten().any(|s| s.state.is_some())
    }
}

impl ProxmoxLab {
    fn sdn(&self) -> Sdn {
        Sdn::with_vm_api(self.vms.clone())
    }

    /// Zones, vnets and the subnets of the lab's vnets, as they will be once applied.
    async fn seen(&self, lab: &LabName, zones: bool) -> Result<Seen> {
        let sdn = self.sdn();
        let what = "SDN configuration";
        let zones = if zones {
            sdn.zones(true).await.map_err(|e| sdn_err(e, what))?
        } else {
            Vec::new()
        };
        let vnets = sdn.vnets(true).await.map_err(|e| sdn_err(e, what))?;
        let mut seen = Seen {
            zones,
            vnets,
            subnets: BTreeMap::new(),
        };
        let ids: Vec<VnetId> = seen.ours(lab).map(|v| v.vnet.clone()).collect();
        for id in ids {
            let subnets = sdn
                .subnets(&id, true)
                .await
                .map_err(|e| sdn_err(e, &format!("subnets of vnet {id}")))?;
            seen.subnets.insert(id.to_string(), subnets);
        }
        Ok(seen)
    }

    /// Runs `changes` under the SDN lock and applies them once; releases the lock when
    /// anything fails.
    async fn locked<F, Fut>(&self, lab: &LabName, what: &str, changes: F) -> Result<()>
    where
        F: FnOnce(Sdn, LockToken) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let sdn = self.sdn();
        let journal = lock(&self.inner.sdn_journal)
            .as_ref()
            .map(|dir| dir.join(format!("{lab}.sdn-lock")));
        if let Some(path) = &journal {
            // A run of this lab killed while it held the lock left its token here: that
            // lock is this lab's own, release it (an already released one fails harmlessly).
            if let Some(stale) = read_token(path) {
                tracing::info!(journal = %path.display(), "releasing the SDN lock a killed run left");
                if let Err(e) = sdn.unlock(&stale).await {
                    tracing::debug!(error = %e, "the left lock was already released");
                }
                let _ = std::fs::remove_file(path);
            }
        }
        // Changes of the lab's own may be pending from an interrupted run: they are
        // applied with this batch (foreign ones are refused under the lock). A lock held
        // by someone else (another lab's batch, an admin's edit) is waited for, backing
        // off as for a guest's lock, within its budget.
        let backoff = self.vms.timing().lock_retry;
        let started = tokio::time::Instant::now();
        let mut retry = 0;
        let taken = loop {
            match sdn.lock(true).await {
                Err(e) if e.is_locked() => {
                    retry += 1;
                    // pve-vm's backoff decides: its pauses, jitter, retry count and budget.
                    let Some(pause) = backoff.next_delay(retry, started.elapsed()) else {
                        break Err(e);
                    };
                    tracing::info!(
                        "the SDN configuration is locked by another edit; waiting {pause:?} ({what})"
                    );
                    tokio::time::sleep(pause).await;
                }
                other => break other,
            }
        };
        let token = taken.map_err(|e| {
            let e = sdn_err(e, what);
            match e {
                Error::Busy { what, message } if message.contains("lock") => Error::Busy {
                    what,
                    message: format!(
                        "{message} (the cluster's SDN configuration is locked by another edit, \
                         or by a run killed before it applied; if nobody is editing the SDN, \
                         release it on a node with `pvesh delete /cluster/sdn/lock --force 1`)"
                    ),
                },
                other => other,
            }
        })?;
        if let Some(path) = &journal {
            if let Err(e) = write_token(path, &token) {
                // Without the journal a kill now would leave the lock to a person: say so,
                // but do not refuse to work.
                tracing::warn!(journal = %path.display(), error = %e, "cannot write down the SDN lock token");
            }
        }
        let outcome = match changes(sdn.clone(), token.clone()).await {
            Ok(()) => sdn
                .apply(&token, self.vms.timing().task_timeout)
                .await
                .map(drop)
                .map_err(|e| sdn_err(e, what)),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            // A failed apply can leave the lock held too; releasing a released lock fails
            // harmlessly.
            if let Err(e) = sdn.unlock(&token).await {
                tracing::warn!(error = %e, "could not release the SDN lock");
                return outcome;
            }
        }
        if let Some(path) = &journal {
            let _ = std::fs::remove_file(path);
        }
        outcome
    }

    /// Writes down the token of every SDN lock this backend takes for a lab in
    /// `<dir>/<lab>.sdn-lock` (owner-only) until the change is applied or the lock
    /// released, so that the next run after a kill releases the lock its killed
    /// predecessor held instead of waiting for a person. `dir` must be this cluster's
    /// alone (the token belongs to it): another lab's live lock is never touched. Without
    /// it (the default), a kill while the lock is held leaves the lock held.
    pub fn set_sdn_journal(&self, dir: std::path::PathBuf) {
        *lock(&self.inner.sdn_journal) = Some(dir);
    }
}

/// The token written down in `path`, if any.
fn read_token(path: &std::path::Path) -> Option<LockToken> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| LockToken::new(token))
}

/// Writes `token` to `path`, readable by its owner only (it unlocks the cluster's SDN).
fn write_token(path: &std::path::Path, token: &LockToken) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(token.as_str().as_bytes())?;
    f.sync_all()
}

fn vnet_id(id: &str) -> Result<VnetId> {
    VnetId::new(id).map_err(|e| sdn_err(e, "vnet id"))
}

fn zone_id(id: &str) -> Result<ZoneId> {
    ZoneId::new(id).map_err(|e| sdn_err(e, "zone id"))
}

/// A /24 of a student network, with DHCP handing out `.10`-`.200` when the zone has it.
fn new_subnet(subnet: (std::net::Ipv4Addr, u8), dhcp: bool) -> Result<NewSubnet> {
    let cidr = Cidr::new(subnet.0, subnet.1).map_err(|e| sdn_err(e, "subnet"))?;
    let mut s = NewSubnet::new(cidr);
    if dhcp {
        s.dhcp_range = vec![DhcpRange {
            start: cidr.host(DHCP_FIRST),
            end: cidr.host(DHCP_LAST),
        }];
    }
    Ok(s)
}

/// What one ensure changes: the lab's own zone if missing, the missing vnets and subnets.
struct Batch {
    zone: ZoneId,
    new_zone: Option<NewZone>,
    vnets: Vec<NewVnet>,
    subnets: Vec<(VnetId, NewSubnet)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.new_zone.is_none() && self.vnets.is_empty() && self.subnets.is_empty()
    }

    /// Sends the batch's changes under the lock's `token` (pending until applied).
    async fn send(&self, sdn: &Sdn, token: &LockToken) -> Result<()> {
        if let Some(z) = &self.new_zone {
            sdn.create_zone(z, Some(token))
                .await
                .map_err(|e| sdn_err(e, &format!("SDN zone {}", z.zone)))?;
        }
        for v in &self.vnets {
            sdn.create_vnet(v, Some(token))
                .await
                .map_err(|e| sdn_err(e, &format!("vnet {}", v.vnet)))?;
        }
        for (id, s) in &self.subnets {
            sdn.create_subnet(id, s, Some(token))
                .await
                .map_err(|e| sdn_err(e, &format!("subnet {} of vnet {id}", s.cidr)))?;
        }
        Ok(())
    }
}

/// Decides what `wanted` needs beyond what `seen` shows.
fn batch(
    lab: &LabName,
    plan: &NetworkPlan,
    wanted: &[StudentNetwork],
    seen: &Seen,
) -> Result<Batch> {
    let own = lab_zone_id(lab);
    let zone = zone_id(plan.zone.as_deref().unwrap_or(&own))?;
    // The zone: the named one must exist; the lab's own is made with the batch.
    let wants_subnets = wanted.iter().any(|w| w.subnet.is_some());
    let (new_zone, vlan, dhcp) = match seen.zone(zone.as_str()) {
        Some(z) => (
            None,
            z.kind == ZoneType::Vlan,
            z.kind == ZoneType::Simple && z.dhcp.as_deref() == Some("dnsmasq"),
        ),
        None if plan.zone.is_some() => {
            return Err(Error::NotFound {
                what: format!("SDN zone {zone}"),
            })
        }
        None => {
            let z = match plan.kind {
                ZoneKind::Simple => {
                    let mut z = NewZone::simple(zone.clone());
                    if wants_subnets {
                        z.dhcp = true;
                        z.ipam = Some("pve".to_owned());
                    }
                    z
                }
                ZoneKind::Vlan => NewZone::vlan(zone.clone(), plan.bridge.clone()),
            };
            let dhcp = z.dhcp;
            (Some(z), plan.kind == ZoneKind::Vlan, dhcp)
        }
    };

    // The vnets: kept when the alias is the lab's, refused when it is another's.
    // Tags taken on the zone's bridge: by its own vnets and by those of every other
    // vlan zone on the same bridge (the same tag there would join the segments).
    let bridge = seen
        .zone(zone.as_str())
        .and_then(|z| z.bridge.clone())
        .unwrap_or_else(|| plan.bridge.clone());
    let same_wire: BTreeSet<&str> = seen
        .zones
        .iter()
        .filter(|z| {
            live(&z.state)
                && z.kind == ZoneType::Vlan
                && z.bridge.as_deref() == Some(bridge.as_str())
        })
        .map(|z| z.zone.as_str())
        .chain([zone.as_str()])
        .collect();
    let mut used: BTreeSet<u32> = seen
        .vnets
        .iter()
        .filter(|v| live(&v.state) && v.zone.as_deref().is_some_and(|z| same_wire.contains(z)))
        .filter_map(|v| v.tag)
        .collect();
    let mut vnets = Vec::new();
    let mut subnets = Vec::new();
    for w in wanted {
        let id = vnet_id(&w.id)?;
        let alias = network_alias(lab, &w.student, &w.network);
        match seen.vnet(id.as_str()) {
            Some(v) if v.alias.as_deref() == Some(alias.as_str()) => {
                let has = |c: &Cidr| {
                    seen.subnets
                        .get(id.as_str())
                        .is_some_and(|s| s.iter().any(|s| live(&s.state) && s.cidr == *c))
                };
                if let Some(s) = w.subnet {
                    let s = new_subnet(s, dhcp)?;
                    if !has(&s.cidr) {
                        subnets.push((id, s));
                    }
                }
            }
            Some(v) => {
                return Err(Error::invalid(
                    "network",
                    w.id.clone(),
                    format!(
                        "vnet {} exists with alias {:?}, not lab {lab}'s; it is left \
                         alone: choose another lab name",
                        w.id,
                        v.alias.as_deref().unwrap_or("")
                    ),
                ))
            }
            None => {
                let mut v = NewVnet::new(id.clone(), zone.clone());
                v.alias = Some(alias);
                if vlan {
                    let (lo, hi) = plan.tags;
                    let tag = (u32::from(lo)..=u32::from(hi))
                        .find(|t| !used.contains(t))
                        .ok_or_else(|| {
                            Error::invalid(
                                "vlan tags",
                                format!("{lo}-{hi}"),
                                format!(
                                    "every tag is used in zone {zone}; widen the range for \
                                     vnet {id}"
                                ),
                            )
                        })?;
                    used.insert(tag);
                    v.tag = Some(tag);
                }
                vnets.push(v);
                if let Some(s) = w.subnet {
                    subnets.push((id, new_subnet(s, dhcp)?));
                }
            }
        }
    }

    Ok(Batch {
        zone,
        new_zone,
        vnets,
        subnets,
    })
}

/// The lab's networks once `vnets` and `subnets` are applied, from `seen` (no listing).
fn applied_info(
    lab: &LabName,
    mut seen: Seen,
    zone: &ZoneId,
    vnets: Vec<NewVnet>,
    subnets: Vec<(VnetId, NewSubnet)>,
) -> Vec<NetworkInfo> {
    for v in vnets {
        seen.vnets.push(Vnet {
            vnet: v.vnet,
            zone: Some(v.zone.to_string()),
            alias: v.alias,
            tag: v.tag,
            isolate_ports: false,
            vlanaware: false,
            state: None,
        });
    }
    for (id, s) in subnets {
        seen.subnets
            .entry(id.to_string())
            .or_default()
            .push(Subnet {
                id: s.cidr.subnet_id(zone),
                cidr: s.cidr,
                gateway: None,
                snat: false,
                dhcp_range: s.dhcp_range,
                state: None,
            });
    }
    seen.info(lab)
}

#[async_trait]
impl Networks for ProxmoxLab {
    async fn ensure_networks(
        &self,
        lab: &LabName,
        plan: &NetworkPlan,
        wanted: Vec<StudentNetwork>,
    ) -> Result<Vec<NetworkInfo>> {
        let own = lab_zone_id(lab);
        let seen = self.seen(lab, true).await?;
        if batch(lab, plan, &wanted, &seen)?.is_empty() && !seen.own_pending(lab, &own) {
            return Ok(seen.info(lab));
        }
        // Listed and decided again under the lock: another batch (another lab's run) may
        // have changed the SDN since, and its pending changes are not foreign leftovers
        // while it holds the lock, only once it has let go of it.
        let what = format!("networks of lab {lab}");
        let done = std::sync::Mutex::new(None);
        let (wanted, own, done_ref) = (&wanted, &own, &done);
        self.locked(lab, &what, |sdn, token| async move {
            let seen = self.seen(lab, true).await?;
            seen.refuse_foreign_pending(lab, own)?;
            let changes = batch(lab, plan, wanted, &seen)?;
            changes.send(&sdn, &token).await?;
            *lock(done_ref) = Some((seen, changes));
            Ok(())
        })
        .await?;
        let (
            mut seen,
            Batch {
                zone,
                vnets,
                subnets,
                ..
            },
        ) = lock(&done).take().ok_or_else(|| Error::NotFound {
            what: format!("the networks of lab {lab} after their apply"),
        })?;
        // What is now applied, without listing again.
        for v in &mut seen.vnets {
            v.state = None;
        }
        for list in seen.subnets.values_mut() {
            list.retain(|s| live(&s.state));
            for s in list.iter_mut() {
                s.state = None;
            }
        }
        Ok(applied_info(lab, seen, &zone, vnets, subnets))
    }

    async fn lab_networks(&self, lab: &LabName) -> Result<Vec<NetworkInfo>> {
        Ok(self.seen(lab, false).await?.info(lab))
    }

    async fn remove_networks(&self, lab: &LabName) -> Result<NetworksRemoved> {
        let own = lab_zone_id(lab);
        let Some(r) = removal(lab, &self.seen(lab, true).await?)? else {
            return Ok(NetworksRemoved::default());
        };
        // A guest left on one of the lab's vnets (not the lab's: its guests are gone by
        // now) would lose its network: refuse, naming it.
        self.refuse_in_use(&r.vnets).await?;
        // Decided again under the lock (another batch may have run meanwhile).
        let what = format!("networks of lab {lab}");
        let done = std::sync::Mutex::new(NetworksRemoved::default());
        let (own, done_ref) = (&own, &done);
        self.locked(lab, &what, |sdn, token| async move {
            let seen = self.seen(lab, true).await?;
            let Some(r) = removal(lab, &seen)? else {
                return Ok(());
            };
            seen.refuse_foreign_pending(lab, own)?;
            for (vnet, id) in &r.subnets {
                sdn.delete_subnet(vnet, id, Some(&token))
                    .await
                    .map_err(|e| sdn_err(e, &format!("subnet {id} of vnet {vnet}")))?;
            }
            for vnet in &r.vnets {
                sdn.delete_vnet(vnet, Some(&token))
                    .await
                    .map_err(|e| sdn_err(e, &format!("vnet {vnet}")))?;
            }
            if let Some(z) = &r.zone {
                sdn.delete_zone(z, Some(&token))
                    .await
                    .map_err(|e| sdn_err(e, &format!("SDN zone {z}")))?;
            }
            *lock(done_ref) = NetworksRemoved {
                vnets: r.vnets.iter().map(ToString::to_string).collect(),
                zone: r.zone.map(|z| z.to_string()),
                applied: true,
            };
            Ok(())
        })
        .await?;
        let removed = lock(&done).clone();
        Ok(removed)
    }
}

impl ProxmoxLab {
    /// Fails naming the first guest with a NIC on one of `vnets` (reads every guest's
    /// config, a few at a time: only `down` of a lab with networks does this).
    async fn refuse_in_use(&self, vnets: &[VnetId]) -> Result<()> {
        use futures::stream::{self, StreamExt};
        use lab_core::Inventory;
        if vnets.is_empty() {
            return Ok(());
        }
        let guests = self.list_guests().await?;
        let users: Vec<Option<(String, String)>> = stream::iter(guests)
            .map(|g| async move {
                let handle = self.placed(&g)?;
                let config = handle
                    .config()
                    .await
                    .map_err(|e| crate::vm_err(e, &format!("config of VM {}", g.vmid)))?;
                Ok::<_, Error>(config.nics().into_iter().find_map(|(i, nic)| {
                    let bridge = nic.bridge()?;
                    vnets.iter().any(|v| v.as_str() == bridge).then(|| {
                        (
                            format!(
                                "VM {} ({}) net{i}",
                                g.vmid,
                                g.name.as_deref().unwrap_or("no name")
                            ),
                            bridge.to_owned(),
                        )
                    })
                }))
            })
            .buffer_unordered(8)
            .collect::<Vec<Result<_>>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        match users.into_iter().flatten().next() {
            None => Ok(()),
            Some((who, vnet)) => Err(Error::invalid(
                "network",
                vnet.clone(),
                format!(
                    "{who} is plugged into the lab's vnet {vnet} but is not the lab's: removing \
                     the vnet would cut it off. Move that NIC to another bridge (or destroy \
                     the guest), then run lab down again"
                ),
            )),
        }
    }
}

/// What removing a lab's networks deletes.
struct Removal {
    subnets: Vec<(VnetId, String)>,
    vnets: Vec<VnetId>,
    /// The lab's own zone, when nothing else is (or stays) in it.
    zone: Option<ZoneId>,
}

/// What removing `lab`'s networks needs, from `seen`; `None` when nothing (nothing of the
/// lab left, nothing of its removal pending).
fn removal(lab: &LabName, seen: &Seen) -> Result<Option<Removal>> {
    let own = lab_zone_id(lab);
    let ours: Vec<&Vnet> = seen.ours(lab).filter(|v| live(&v.state)).collect();
    let subnets: Vec<(VnetId, String)> = ours
        .iter()
        .flat_map(|v| {
            seen.subnets
                .get(v.vnet.as_str())
                .into_iter()
                .flatten()
                .filter(|s| live(&s.state))
                .map(|s| (v.vnet.clone(), s.id.clone()))
        })
        .collect();
    let gone: BTreeSet<&str> = ours.iter().map(|v| v.vnet.as_str()).collect();
    // The lab's own zone, when nothing else is (or stays) in it. A zone the lab file
    // named is never removed.
    let zone = seen.zone(&own).is_some()
        && !seen.vnets.iter().any(|v| {
            live(&v.state)
                && v.zone.as_deref() == Some(own.as_str())
                && !gone.contains(v.vnet.as_str())
        });
    // An interrupted removal left deletions of the lab's pending: applying them is
    // part of removing.
    let pending = seen
        .ours(lab)
        .any(|v| v.state == Some(PendingState::Deleted))
        || seen
            .zones
            .iter()
            .any(|z| z.zone.as_str() == own && z.state == Some(PendingState::Deleted));
    if ours.is_empty() && !zone && !pending {
        return Ok(None);
    }
    Ok(Some(Removal {
        subnets,
        vnets: ours.iter().map(|v| v.vnet.clone()).collect(),
        zone: zone.then(|| zone_id(&own)).transpose()?,
    }))
}

/// Whether `bridge` is one of `lab`'s vnets by its name ([`lab_core::vnet_id`]: `v`, the
/// lab's three characters, the network's index and the student's number in three digits).
pub(crate) fn is_lab_vnet(lab: &LabName, bridge: &str) -> bool {
    lab_core::parse_vnet_id(lab, bridge).is_some()
}

/// The config changes that plug a new guest's NICs as `plugs` say, added to `update`
/// (which may hold the fence's NIC changes; a plugged NIC's entry replaces them).
/// `nics` are the guest's NICs (`keep_mac`) or its template's (MACs dropped: PVE draws
/// new ones, as clone did).
///
/// - On a student's network: the NIC keeps its model (and MAC when kept), moves to the
///   vnet's bridge, loses its VLAN tag and gets `firewall=0`; a NIC the template lacks is
///   created (`virtio,bridge=<vnet>`; containers `name=eth<i>,bridge=<vnet>`).
/// - On the uplink: the NIC stays as the template (and the fence) made it; one the
///   template lacks is created on the bridge of the template's first NIC, with
///   `firewall=1` when fenced.
pub(crate) fn plug_nics(
    mut update: pve_vm::ConfigUpdate,
    nics: &[(u32, pve_vm::NetDevice)],
    plugs: &[lab_core::NicPlug],
    kind: pve_vm::GuestKind,
    keep_mac: bool,
    fence: bool,
) -> Result<pve_vm::ConfigUpdate> {
    let new_nic = |index: u32, bridge: &str| match kind {
        pve_vm::GuestKind::Qemu => format!("virtio,bridge={bridge}"),
        pve_vm::GuestKind::Lxc => format!("name=eth{index},bridge={bridge}"),
    };
    for plug in plugs {
        let key = format!("net{}", plug.index);
        let nic = nics.iter().find(|(i, _)| *i == plug.index).map(|(_, n)| n);
        match (&plug.bridge, nic) {
            (Some(vnet), Some(nic)) => {
                let mut d = if keep_mac {
                    nic.clone()
                } else {
                    nic.clone().without_mac()
                };
                d.set("bridge", vnet);
                d.remove("tag");
                d.set_firewall(false);
                update = update.set(&key, d.to_string());
            }
            (Some(vnet), None) => update = update.set(&key, new_nic(plug.index, vnet)),
            (None, Some(_)) => {}
            (None, None) => {
                let bridge = nics.iter().find_map(|(_, n)| n.bridge()).ok_or_else(|| {
                    Error::invalid(
                        "nics",
                        key.clone(),
                        "an uplink NIC needs a template with a NIC on the uplink bridge",
                    )
                })?;
                let mut value = new_nic(plug.index, bridge);
                if fence {
                    value.push_str(",firewall=1");
                }
                update = update.set(&key, value);
            }
        }
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_core::NicPlug;
    use pve_vm::{ConfigUpdate, GuestKind, NetDevice};

    fn lab() -> LabName {
        LabName::new("exam1").unwrap()
    }

    fn nic(s: &str) -> NetDevice {
        NetDevice::parse(s).unwrap()
    }

    fn params(u: &ConfigUpdate) -> Vec<(String, String)> {
        u.to_params()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn a_lab_vnet_is_told_by_its_name() {
        let l = lab();
        assert!(is_lab_vnet(&l, &lab_core::vnet_id(&l, 7, 1)));
        assert!(is_lab_vnet(&l, &lab_core::vnet_id(&l, 500, 3)));
        let other = LabName::new("exam2").unwrap();
        assert!(!is_lab_vnet(&l, &lab_core::vnet_id(&other, 7, 1)));
        assert!(!is_lab_vnet(&l, "vmbr0"));
        assert!(!is_lab_vnet(&l, ""));
        let id = lab_core::vnet_id(&l, 7, 1);
        // Another student's number is the lab's too; a spelling vnet_id never makes is not.
        assert!(is_lab_vnet(&l, &format!("{}x", &id[..7])));
        assert!(!is_lab_vnet(&l, &format!("{}X", &id[..7])));
        assert!(!is_lab_vnet(&l, &format!("{}-", &id[..7])));
        assert!(!is_lab_vnet(&l, &format!("{id}0")));
        assert!(!is_lab_vnet(&l, &id[..4]));
        assert!(!is_lab_vnet(&l, "vé"));
    }

    #[test]
    fn plugs_move_nics_to_vnets_and_create_missing_ones() {
        let template = vec![
            (
                0,
                nic("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=5"),
            ),
            (1, nic("e1000=BC:24:11:00:00:02,bridge=vmbr1,tag=7")),
        ];
        let plugs = [
            NicPlug {
                index: 0,
                bridge: None,
            },
            NicPlug {
                index: 1,
                bridge: Some("vabc0001".into()),
            },
            NicPlug {
                index: 2,
                bridge: Some("vabc1001".into()),
            },
            NicPlug {
                index: 3,
                bridge: None,
            },
        ];
        let fenced = ConfigUpdate::new().set("net1", "e1000,bridge=vmbr1,tag=7,firewall=1");
        let u = plug_nics(fenced, &template, &plugs, GuestKind::Qemu, false, true).unwrap();
        assert_eq!(
            params(&u),
            [
                ("net1".into(), "e1000,bridge=vabc0001,firewall=0".into()),
                ("net2".into(), "virtio,bridge=vabc1001".into()),
                ("net3".into(), "virtio,bridge=vmbr0,firewall=1".into()),
            ]
        );
        // A guest's own NICs keep their MAC.
        let u = plug_nics(
            ConfigUpdate::new(),
            &template,
            &plugs[1..2],
            GuestKind::Qemu,
            true,
            true,
        )
        .unwrap();
        assert_eq!(
            params(&u),
            [(
                "net1".into(),
                "e1000=BC:24:11:00:00:02,bridge=vabc0001,firewall=0".into()
            )]
        );
        let u = plug_nics(
            ConfigUpdate::new(),
            &[],
            &plugs[2..3],
            GuestKind::Lxc,
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            params(&u),
            [("net2".into(), "name=eth2,bridge=vabc1001".into())]
        );
        assert!(plug_nics(
            ConfigUpdate::new(),
            &[],
            &plugs[3..],
            GuestKind::Qemu,
            true,
            true
        )
        .is_err());
    }
}
