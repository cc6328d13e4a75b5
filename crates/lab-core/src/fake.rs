//! **Available with the feature `fake`.**
//!
//! An in-memory backend with the simulators' semantics (feature `fake`): ids are never
//! reused, a clone carries the lab's marks from the request on, templates are never
//! destroyed, the fence is per lab and per guest, desktops are assigned once per seat.
//! No IO and no waiting, so property tests of the engine run thousands of cases.
//!
//! ```
//! # async fn demo() -> lab_core::Result<()> {
//! use lab_core::fake::FakeHypervisor;
//! use lab_core::{apply, no_progress, LabName, LabSpec, VmId};
//!
//! let hv = FakeHypervisor::new().with_template(9000, "pve1");
//! let spec = LabSpec::new(LabName::new("exam1")?, VmId::new(9000)?, 3)?;
//! let report = apply(&hv, &spec, &no_progress).await?;
//! assert_eq!(report.students.len(), 3);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::hypervisor::{
    Assignment, Backend, Capabilities, CloneCapacity, CloneRequest, Desktop, Desktops, Fencing,
    GuestIdentity, Inventory, NicLink, Power, Probe, Provisioning, Readiness, RollbackReach, Seat,
    Secure, SnapshotInfo, Snapshots,
};
use crate::hypervisor::{CloneSource, NodeCapacity, Placement, PlacementView};
use crate::network::{NetworkInfo, NetworkPlan, Networks, NetworksRemoved, StudentNetwork};
use crate::placement::replica_tag;
use crate::spec::CloneMode;
use crate::types::{GuestInfo, LabName, NodeName, VmId, VmKind, VmStatus};
use crate::up::Interrupt;

const BACKEND: &str = "fake";

/// One machine of a desktop pool.
#[derive(Debug, Clone)]
struct Machine {
    desktop: Desktop,
    seat: Option<Seat>,
}

#[derive(Debug, Default)]
struct State {
    guests: BTreeMap<u32, GuestInfo>,
    /// Every id ever used: a destroyed guest's id is free again (as in PVE), but the
    /// fake remembers them to count clones.
    clones: u64,
    pools: BTreeSet<String>,
    /// Lab-wide fences: lab → allowed addresses.
    fences: BTreeMap<String, Vec<IpAddr>>,
    /// Guest fences: vmid → lab.
    fenced: BTreeMap<u32, String>,
    desktops: BTreeMap<String, Vec<Machine>>,
    /// Snapshots per guest, oldest first.
    snapshots: BTreeMap<u32, Vec<SnapshotInfo>>,
    /// Guests whose one NIC (`net0`) has its link down.
    links_down: BTreeSet<u32>,
    /// Snapshots taken since the start (a destroyed guest's included).
    snapshots_taken: u64,
    /// Rollbacks done since the start.
    rollbacks: u64,
    /// What every guest's storage can roll back to (`None`: any snapshot).
    reach: Option<RollbackReach>,
    /// The MAC of each clone's one NIC (drawn at the clone, as PVE does); a guest not
    /// listed has [`mac_of`] its id.
    macs: BTreeMap<u32, String>,
    mutations: usize,
    halt: Option<Halt>,
    /// How guests misbehave, by name (`None`: every guest without its own).
    quirks: BTreeMap<Option<String>, Quirk>,
    /// When each running guest was last started (tokio time, so paused clocks apply).
    started: BTreeMap<u32, tokio::time::Instant>,
    /// Readiness probes answered or failed, in all.
    probes: u64,
    /// Nodes declared with [`FakeHypervisor::with_node`]: memory (bytes) and online.
    nodes: BTreeMap<String, (u64, bool)>,
    /// Networks (SDN vnets) by id: alias, zone, subnet, applied.
    vnets: BTreeMap<String, FakeVnet>,
    /// Zones by id.
    zones: BTreeSet<String>,
    /// Applies of pending network changes, in all.
    network_applies: u64,
    /// Where each guest's NICs are plugged: vmid → (index → bridge); a NIC not listed is
    /// on the uplink.
    plugs: BTreeMap<u32, BTreeMap<u32, String>>,
}

#[derive(Debug, Clone)]
struct FakeVnet {
    zone: String,
    alias: String,
    subnet: Option<String>,
    applied: bool,
}

/// How a guest of the fake misbehaves ([`FakeHypervisor::with_quirk`]): a slow or
/// silent agent, no address, transient failures. Times are tokio time from the guest's
/// start, so a test on a paused clock waits for them without taking wall time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirk {
    /// The agent never answers: the guest is never ready.
    pub agent_never_answers: bool,
    /// Ready, but never an address.
    pub no_address: bool,
    /// Ready this long after its start.
    pub ready_after: Duration,
    /// Its address this long after it is ready.
    pub address_after: Duration,
    /// This many probes fail transiently ([`Error::Busy`]) before probes answer.
    pub probe_failures: u32,
    /// This many starts fail transiently before one starts the guest.
    pub start_failures: u32,
    /// Its clone fails for good (a full storage), on whichever node it is placed.
    pub clone_fails: bool,
}

#[derive(Debug)]
struct Halt {
    after: usize,
    how: HaltHow,
}

#[derive(Debug)]
enum HaltHow {
    /// Trigger the interrupt (Ctrl-C): the engine settles and stops.
    Interrupt(Interrupt),
    /// Every later call fails (the connection died, or the process was killed).
    Crash,
    /// This node goes offline (once).
    Offline(String),
    /// The next clone onto this node is accepted (the guest exists there), then the node
    /// goes offline before the caller hears of it: the call fails.
    OfflineMidClone(String),
}

/// The in-memory backend; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct FakeHypervisor {
    state: Arc<Mutex<State>>,
}

impl FakeHypervisor {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a stopped VM template `vmid` on `node`.
    ///
    /// # Panics
    /// If `vmid` is outside 100..=999999999 or `node` is not a node name (a test fixture
    /// error).
    #[must_use]
    pub fn with_template(self, vmid: u32, node: &str) -> Self {
        self.with_guest(GuestInfo {
            vmid: fixture_id(vmid),
            name: Some(format!("template-{vmid}")),
            node: fixture_node(node),
            kind: VmKind::Vm,
            status: VmStatus::Stopped,
            template: true,
            pool: None,
            tags: Vec::new(),
            description: None,
        })
    }

    /// Adds any guest (e.g. one that is not the lab's).
    #[must_use]
    pub fn with_guest(self, guest: GuestInfo) -> Self {
        if let Some(pool) = &guest.pool {
            self.lock().pools.insert(pool.clone());
        }
        self.lock().guests.insert(guest.vmid.get(), guest);
        self
    }

    /// Every guest's storage rolls back only this far (default [`RollbackReach::Any`];
    /// [`RollbackReach::Latest`] is ZFS).
    #[must_use]
    pub fn with_rollback_reach(self, reach: RollbackReach) -> Self {
        self.lock().reach = Some(reach);
        self
    }

    /// Adds a desktop pool of `machines` free machines.
    #[must_use]
    pub fn with_desktop_pool(self, pool: &str, machines: u16) -> Self {
        let list = (1..=machines)
            .map(|n| Machine {
                desktop: Desktop {
                    id: format!("fake-{pool}-{n}"),
                    name: format!("{pool}-{n:02}"),
                    pool: pool.to_owned(),
                    node: Some("node1".into()),
                    spice: Some(("10.1.0.1".into(), 5900 + n)),
                },
                seat: None,
            })
            .collect();
        self.lock().desktops.insert(pool.to_owned(), list);
        self
    }

    /// After `mutations` more changing calls, triggers `interrupt` (as Ctrl-C would).
    pub fn interrupt_after(&self, mutations: usize, interrupt: Interrupt) {
        let mut s = self.lock();
        let after = s.mutations + mutations;
        s.halt = Some(Halt {
            after,
            how: HaltHow::Interrupt(interrupt),
        });
    }

    /// After `mutations` more changing calls, every call fails as if the process had
    /// been killed; [`FakeHypervisor::heal`] ends that.
    pub fn crash_after(&self, mutations: usize) {
        let mut s = self.lock();
        let after = s.mutations + mutations;
        s.halt = Some(Halt {
            after,
            how: HaltHow::Crash,
        });
    }

    /// The guest named `hostname` (or, with `None`, every guest without a quirk of its own)
    /// misbehaves so. Transient-failure counts are used up as the fake answers.
    #[must_use]
    pub fn with_quirk(self, hostname: Option<&str>, quirk: Quirk) -> Self {
        self.lock()
            .quirks
            .insert(hostname.map(str::to_owned), quirk);
        self
    }

    /// Readiness probes answered or failed since the start.
    pub fn probes(&self) -> u64 {
        self.lock().probes
    }

    /// Ends [`FakeHypervisor::crash_after`] / [`FakeHypervisor::interrupt_after`].
    pub fn heal(&self) {
        self.lock().halt = None;
    }

    /// Every guest now, by id.
    pub fn guests(&self) -> Vec<GuestInfo> {
        self.lock().guests.values().cloned().collect()
    }

    /// Clones made so far.
    pub fn clones(&self) -> u64 {
        self.lock().clones
    }

    /// Pools that exist.
    pub fn pools(&self) -> Vec<String> {
        self.lock().pools.iter().cloned().collect()
    }

    /// Whether a lab-wide fence of `lab` is up.
    pub fn lab_fenced(&self, lab: &LabName) -> bool {
        self.lock().fences.contains_key(lab.as_str())
    }

    /// Seats holding a machine, per pool.
    pub fn seats(&self, pool: &str) -> Vec<(Seat, String)> {
        self.lock()
            .desktops
            .get(pool)
            .map(|m| {
                m.iter()
                    .filter_map(|m| Some((m.seat.clone()?, m.desktop.id.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Snapshots taken so far (every guest, destroyed ones included).
    pub fn snapshots_taken(&self) -> u64 {
        self.lock().snapshots_taken
    }

    /// Rollbacks done so far.
    pub fn rollbacks(&self) -> u64 {
        self.lock().rollbacks
    }

    /// The MAC of `net0` of `vmid` now.
    pub fn mac(&self, vmid: u32) -> String {
        self.lock().mac(vmid)
    }

    /// Whether `net0` of `vmid` has its link down.
    pub fn link_down(&self, vmid: u32) -> bool {
        self.lock().links_down.contains(&vmid)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a test panicked while holding it; the state is still
        // consistent (every mutation is a single insert/remove).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state for a read; fails once crashed.
    fn read(&self) -> Result<MutexGuard<'_, State>> {
        let s = self.lock();
        if matches!(&s.halt, Some(Halt { after, how: HaltHow::Crash }) if s.mutations >= *after) {
            return Err(crashed());
        }
        Ok(s)
    }

    /// The state for a change; counts it and fires the halt when it is due.
    fn write(&self) -> Result<MutexGuard<'_, State>> {
        let mut s = self.read()?;
        s.mutations += 1;
        if let Some(Halt {
            after,
            how: HaltHow::Interrupt(i),
        }) = &s.halt
        {
            if s.mutations >= *after {
                i.trigger();
            }
        }
        let offline = match &s.halt {
            Some(Halt {
                after,
                how: HaltHow::Offline(node),
            }) if s.mutations >= *after => Some(node.clone()),
            _ => None,
        };
        if let Some(node) = offline {
            s.halt = None;
            take_offline(&mut s, &node);
        }
        Ok(s)
    }
}

impl State {
    fn mac(&self, vmid: u32) -> String {
        self.macs
            .get(&vmid)
            .cloned()
            .unwrap_or_else(|| mac_of(vmid))
    }
}

fn fixture_id(vmid: u32) -> VmId {
    match VmId::new(vmid) {
        Ok(id) => id,
        Err(e) => panic!("fake fixture: {e}"),
    }
}

fn fixture_node(node: &str) -> NodeName {
    match NodeName::new(node) {
        Ok(n) => n,
        Err(e) => panic!("fake fixture: {e}"),
    }
}

fn crashed() -> Error {
    Error::Backend {
        backend: BACKEND,
        source: "connection lost (the fake was told to crash)".into(),
    }
}

/// The quirk of the guest named `name`, else the one for every guest.
fn quirk_of<'a>(
    quirks: &'a mut BTreeMap<Option<String>, Quirk>,
    name: Option<&str>,
) -> Option<&'a mut Quirk> {
    let key = name
        .map(str::to_owned)
        .filter(|n| quirks.contains_key(&Some(n.clone())));
    quirks.get_mut(&key)
}

/// A transient failure of a quirk.
fn busy(vmid: VmId, what: &str) -> Error {
    Error::Busy {
        what: format!("VM {vmid}"),
        message: format!("{what} failed (injected by the fake)"),
    }
}

fn not_found(vmid: VmId) -> Error {
    Error::NotFound {
        what: format!("VM {vmid}"),
    }
}

/// The fake's one NIC's MAC: fixed per guest, like a MAC PVE generated at the clone.
pub fn mac_of(vmid: u32) -> String {
    let b = vmid.to_be_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

fn address_of(vmid: VmId) -> IpAddr {
    let n = vmid.get();
    IpAddr::V4(Ipv4Addr::new(10, 20, (n >> 8) as u8, n as u8))
}

impl Backend for FakeHypervisor {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            desktops: true,
            snapshots: true,
            placement: true,
            networks: true,
            ..Capabilities::HYPERVISOR
        }
    }
}

#[async_trait]
impl Inventory for FakeHypervisor {
    async fn quiesce(&self, _template: Option<VmId>) -> Result<()> {
        // Clones finish inside the call: nothing is ever still cloning.
        self.read().map(drop)
    }

    async fn list_guests(&self) -> Result<Vec<GuestInfo>> {
        Ok(self.read()?.guests.values().cloned().collect())
    }

    async fn guest(&self, vmid: VmId) -> Result<GuestInfo> {
        self.read()?
            .guests
            .get(&vmid.get())
            .cloned()
            .ok_or_else(|| not_found(vmid))
    }

    async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>> {
        let (pool, tag) = (lab.pool(), lab.tag());
        Ok(self
            .read()?
            .guests
            .values()
            .filter(|g| g.pool.as_deref() == Some(pool.as_str()) || g.tags.contains(&tag))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Provisioning for FakeHypervisor {
    async fn prepare_lab(&self, lab: &LabName) -> Result<()> {
        self.write()?.pools.insert(lab.pool());
        Ok(())
    }

    async fn clone_capacity(&self, template: VmId, _mode: CloneMode) -> Result<CloneCapacity> {
        let s = self.read()?;
        let t = s
            .guests
            .get(&template.get())
            .ok_or_else(|| Error::NotFound {
                what: format!("template {template}"),
            })?;
        Ok(CloneCapacity {
            key: format!("{}/local-lvm", t.node),
            slots: 3,
            queue: 2,
        })
    }

    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo> {
        let mut s = self.write()?;
        // Placed: the template (or replica) the source names, landing on its node.
        let (from, on) = match &request.source {
            Some(src) => (src.template, Some(src.node.clone())),
            None => (request.template, None),
        };
        if let Some(node) = &on {
            offline_check(&s, node)?;
        }
        let template = match s.guests.get(&from.get()) {
            Some(t) if t.template => t.clone(),
            Some(_) => {
                return Err(Error::InvalidInput {
                    what: "template",
                    input: request.template.to_string(),
                    allowed: "a guest with the template flag".into(),
                })
            }
            None => {
                return Err(Error::NotFound {
                    what: format!("template {from}"),
                })
            }
        };
        offline_check(&s, &template.node)?;
        if s.guests.contains_key(&request.vmid.get()) {
            return Err(Error::AlreadyExists {
                what: format!("VM {}", request.vmid),
            });
        }
        if quirk_of(&mut s.quirks, Some(&request.hostname)).is_some_and(|q| q.clone_fails) {
            return Err(Error::Backend {
                backend: BACKEND,
                source: "clone failed: no space left on device (injected by the fake)".into(),
            });
        }
        let pool = request.lab.pool();
        if !s.pools.contains(&pool) {
            return Err(Error::NotFound {
                what: format!("pool {pool}"),
            });
        }
        let guest = GuestInfo {
            vmid: request.vmid,
            name: Some(request.hostname.clone()),
            node: template.node,
            kind: template.kind,
            status: VmStatus::Stopped,
            template: false,
            pool: Some(pool),
            tags: Vec::new(),
            description: Some(request.lab.marker(&request.hostname)),
        };
        let guest = GuestInfo {
            node: on.unwrap_or(guest.node.clone()),
            ..guest
        };
        s.guests.insert(request.vmid.get(), guest.clone());
        s.clones += 1;
        if let Some(Halt {
            how: HaltHow::OfflineMidClone(node),
            ..
        }) = &s.halt
        {
            if *node == guest.node.as_str() {
                let node = node.clone();
                s.halt = None;
                take_offline(&mut s, &node);
                return Err(Error::Backend {
                    backend: BACKEND,
                    source: format!("node {node} is offline (595: no route to host)").into(),
                });
            }
        }
        // A new MAC per clone, as PVE draws one: a re-clone under the same id gets
        // another MAC unless the caller restores the old one.
        let c = s.clones.to_be_bytes();
        let mac = format!("52:54:01:{:02x}:{:02x}:{:02x}", c[5], c[6], c[7]);
        s.macs.insert(request.vmid.get(), mac);
        Ok(guest)
    }

    async fn destroy(&self, vmid: VmId) -> Result<()> {
        let mut s = self.write()?;
        guest_node_check(&s, vmid)?;
        match s.guests.get(&vmid.get()) {
            None => Ok(()),
            Some(g) if g.template => Err(Error::NotOwned {
                vmid,
                reason: "it is a template".into(),
            }),
            Some(g) if g.status.is_running() => Err(Error::Busy {
                what: format!("VM {vmid}"),
                message: "it is running; stop it first".into(),
            }),
            Some(_) => {
                s.guests.remove(&vmid.get());
                s.fenced.remove(&vmid.get());
                s.snapshots.remove(&vmid.get());
                s.links_down.remove(&vmid.get());
                s.macs.remove(&vmid.get());
                Ok(())
            }
        }
    }

    async fn release_lab(&self, lab: &LabName) -> Result<()> {
        let mut s = self.write()?;
        let pool = lab.pool();
        if s.guests
            .values()
            .any(|g| g.pool.as_deref() == Some(pool.as_str()))
        {
            return Err(Error::Busy {
                what: format!("pool {pool}"),
                message: "it still has guests".into(),
            });
        }
        s.pools.remove(&pool);
        Ok(())
    }
}

#[async_trait]
impl Power for FakeHypervisor {
    async fn start(&self, vmid: VmId) -> Result<()> {
        let mut s = self.write()?;
        if let Some(node) = s.guests.get(&vmid.get()).map(|g| g.node.clone()) {
            offline_check(&s, &node)?;
        }
        let g = s
            .guests
            .get_mut(&vmid.get())
            .ok_or_else(|| not_found(vmid))?;
        if g.template {
            return Err(Error::InvalidInput {
                what: "guest",
                input: vmid.to_string(),
                allowed: "a guest that is not a template".into(),
            });
        }
        let name = g.name.clone();
        if let Some(q) = quirk_of(&mut s.quirks, name.as_deref()) {
            if q.start_failures > 0 {
                q.start_failures -= 1;
                return Err(busy(vmid, "start"));
            }
        }
        let g = s
            .guests
            .get_mut(&vmid.get())
            .ok_or_else(|| not_found(vmid))?;
        if !g.status.is_running() {
            g.status = VmStatus::Running;
            s.started.insert(vmid.get(), tokio::time::Instant::now());
        }
        Ok(())
    }

    async fn stop(&self, vmid: VmId) -> Result<()> {
        let mut s = self.write()?;
        guest_node_check(&s, vmid)?;
        let g = s
            .guests
            .get_mut(&vmid.get())
            .ok_or_else(|| not_found(vmid))?;
        g.status = VmStatus::Stopped;
        s.started.remove(&vmid.get());
        Ok(())
    }
}

#[async_trait]
impl Readiness for FakeHypervisor {
    async fn probe(&self, vmid: VmId) -> Result<Probe> {
        let mut s = self.read()?;
        s.probes += 1;
        let g = s.guests.get(&vmid.get()).ok_or_else(|| not_found(vmid))?;
        let running = g.status.is_running();
        let name = g.name.clone();
        let since = s.started.get(&vmid.get()).map(|t| t.elapsed());
        let Some(q) = quirk_of(&mut s.quirks, name.as_deref()) else {
            let addresses = if running {
                vec![address_of(vmid)]
            } else {
                Vec::new()
            };
            return Ok(Probe {
                ready: running,
                addresses,
            });
        };
        if q.probe_failures > 0 {
            q.probe_failures -= 1;
            return Err(busy(vmid, "probe"));
        }
        let since = since.filter(|_| running).unwrap_or_default();
        let ready = running && !q.agent_never_answers && since >= q.ready_after;
        let addressed = ready && !q.no_address && since >= q.ready_after + q.address_after;
        Ok(Probe {
            ready,
            addresses: if addressed {
                vec![address_of(vmid)]
            } else {
                Vec::new()
            },
        })
    }

    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>> {
        let s = self.read()?;
        guest_node_check(&s, vmid)?;
        let g = s.guests.get(&vmid.get()).ok_or_else(|| not_found(vmid))?;
        Ok(if g.status.is_running() {
            vec![address_of(vmid)]
        } else {
            Vec::new()
        })
    }
}

#[async_trait]
impl Fencing for FakeHypervisor {
    async fn prepare_fence(&self, lab: &LabName, allowed: Vec<IpAddr>) -> Result<()> {
        self.write()?
            .fences
            .insert(lab.as_str().to_owned(), allowed);
        Ok(())
    }

    async fn secure(&self, guest: GuestInfo, how: Secure) -> Result<()> {
        let mut s = self.write()?;
        guest_node_check(&s, guest.vmid)?;
        let lab_fenced = s.fences.contains_key(how.lab.as_str());
        let g = s
            .guests
            .get_mut(&guest.vmid.get())
            .ok_or_else(|| not_found(guest.vmid))?;
        let tag = how.lab.tag();
        if !g.tags.contains(&tag) {
            g.tags.push(tag);
        }
        for plug in &how.nics {
            let plugs = s.plugs.entry(guest.vmid.get()).or_default();
            match &plug.bridge {
                Some(bridge) => plugs.insert(plug.index, bridge.clone()),
                None => plugs.remove(&plug.index),
            };
        }
        if let Some(missing) = how
            .nics
            .iter()
            .filter_map(|p| p.bridge.as_ref())
            .find(|b| !s.vnets.get(*b).is_some_and(|v| v.applied))
        {
            return Err(Error::NotFound {
                what: format!("network {missing} (not created or not applied)"),
            });
        }
        if how.fence {
            if !lab_fenced {
                return Err(Error::NotFound {
                    what: format!("the lab-wide fence of lab {}", how.lab),
                });
            }
            s.fenced
                .insert(guest.vmid.get(), how.lab.as_str().to_owned());
        }
        Ok(())
    }

    async fn isolate(
        &self,
        lab: &LabName,
        students: Vec<VmId>,
        allowed: Vec<IpAddr>,
    ) -> Result<()> {
        let mut s = self.write()?;
        if let Some(missing) = students.iter().find(|v| !s.guests.contains_key(&v.get())) {
            return Err(not_found(*missing));
        }
        s.fences.insert(lab.as_str().to_owned(), allowed);
        for v in students {
            s.fenced.insert(v.get(), lab.as_str().to_owned());
        }
        Ok(())
    }

    async fn unisolate(&self, lab: &LabName, students: Vec<VmId>) -> Result<()> {
        let mut s = self.write()?;
        for v in students {
            if s.fenced.get(&v.get()).map(String::as_str) == Some(lab.as_str()) {
                s.fenced.remove(&v.get());
            }
        }
        s.fences.remove(lab.as_str());
        Ok(())
    }

    async fn fenced(&self, lab: &LabName, vmid: VmId) -> Result<bool> {
        let s = self.read()?;
        if !s.guests.contains_key(&vmid.get()) {
            return Err(not_found(vmid));
        }
        Ok(s.fences.contains_key(lab.as_str())
            && s.fenced.get(&vmid.get()).map(String::as_str) == Some(lab.as_str()))
    }
}

#[async_trait]
impl Desktops for FakeHypervisor {
    async fn machines(&self, seat: Seat) -> Result<Vec<Desktop>> {
        Ok(self
            .read()?
            .desktops
            .values()
            .flatten()
            .filter(|m| m.seat.as_ref() == Some(&seat))
            .map(|m| m.desktop.clone())
            .collect())
    }

    async fn assigned(&self, seat: Seat, pool: String) -> Result<Option<Desktop>> {
        let s = self.read()?;
        let machines = s.desktops.get(&pool).ok_or_else(|| Error::NotFound {
            what: format!("desktop pool {pool}"),
        })?;
        Ok(machines
            .iter()
            .find(|m| m.seat.as_ref() == Some(&seat))
            .map(|m| m.desktop.clone()))
    }

    async fn assign(&self, seat: Seat, pool: String) -> Result<Assignment> {
        let mut s = self.write()?;
        let machines = s.desktops.get_mut(&pool).ok_or_else(|| Error::NotFound {
            what: format!("desktop pool {pool}"),
        })?;
        if let Some(m) = machines.iter().find(|m| m.seat.as_ref() == Some(&seat)) {
            return Ok(Assignment::Existing(m.desktop.clone()));
        }
        let free = machines
            .iter_mut()
            .find(|m| m.seat.is_none())
            .ok_or_else(|| Error::Busy {
                what: format!("desktop pool {pool}"),
                message: "no free machine left".into(),
            })?;
        free.seat = Some(seat);
        Ok(Assignment::New(free.desktop.clone()))
    }
}

#[async_trait]
impl Snapshots for FakeHypervisor {
    async fn snapshots(&self, vmid: VmId) -> Result<Vec<SnapshotInfo>> {
        let s = self.read()?;
        if !s.guests.contains_key(&vmid.get()) {
            return Err(not_found(vmid));
        }
        Ok(s.snapshots.get(&vmid.get()).cloned().unwrap_or_default())
    }

    async fn snapshot(&self, vmid: VmId, name: String, vmstate: bool) -> Result<Option<String>> {
        let mut s = self.write()?;
        let g = s.guests.get(&vmid.get()).ok_or_else(|| not_found(vmid))?;
        if g.template {
            return Err(Error::InvalidInput {
                what: "guest",
                input: vmid.to_string(),
                allowed: "a guest that is not a template".into(),
            });
        }
        let vmstate = vmstate && g.status.is_running();
        let list = s.snapshots.entry(vmid.get()).or_default();
        if list.iter().any(|x| x.name == name) {
            return Err(Error::AlreadyExists {
                what: format!("snapshot {name} of VM {vmid}"),
            });
        }
        list.push(SnapshotInfo {
            name,
            taken: None,
            vmstate,
        });
        s.snapshots_taken += 1;
        Ok(None)
    }

    async fn set_links(&self, vmid: VmId, up: bool) -> Result<Vec<NicLink>> {
        let mut s = self.write()?;
        if !s.guests.contains_key(&vmid.get()) {
            return Err(not_found(vmid));
        }
        let was_down = if up {
            s.links_down.remove(&vmid.get())
        } else {
            !s.links_down.insert(vmid.get())
        };
        Ok(vec![NicLink {
            net: "net0".into(),
            mac: s.mac(vmid.get()),
            was_down,
            down: !up,
        }])
    }

    async fn rollback_reach(&self, vmid: VmId) -> Result<RollbackReach> {
        let s = self.read()?;
        if !s.guests.contains_key(&vmid.get()) {
            return Err(not_found(vmid));
        }
        Ok(s.reach.unwrap_or(RollbackReach::Any))
    }

    async fn rollback(&self, vmid: VmId, name: String) -> Result<Option<String>> {
        let mut s = self.write()?;
        if !s.guests.contains_key(&vmid.get()) {
            return Err(not_found(vmid));
        }
        let list = s.snapshots.get(&vmid.get()).cloned().unwrap_or_default();
        let Some(pos) = list.iter().position(|x| x.name == name) else {
            return Err(Error::NotFound {
                what: format!("snapshot {name} of VM {vmid}"),
            });
        };
        if s.reach == Some(RollbackReach::Latest) && pos + 1 != list.len() {
            return Err(Error::InvalidInput {
                what: "snapshot",
                input: name,
                allowed: format!(
                    "the most recent snapshot of VM {vmid} ({}): its storage cannot roll back \
                     past newer snapshots",
                    list.last().map_or("none", |x| x.name.as_str())
                ),
            });
        }
        let running = list[pos].vmstate;
        if let Some(g) = s.guests.get_mut(&vmid.get()) {
            g.status = if running {
                VmStatus::Running
            } else {
                VmStatus::Stopped
            };
        }
        s.rollbacks += 1;
        Ok(None)
    }

    async fn identity(&self, vmid: VmId) -> Result<GuestIdentity> {
        let s = self.read()?;
        let g = s.guests.get(&vmid.get()).ok_or_else(|| not_found(vmid))?;
        let down = s.links_down.contains(&vmid.get());
        Ok(GuestIdentity {
            nics: vec![NicLink {
                net: "net0".into(),
                mac: s.mac(vmid.get()),
                was_down: down,
                down,
            }],
            tags: g.tags.clone(),
        })
    }

    async fn restore(&self, vmid: VmId, identity: GuestIdentity) -> Result<()> {
        let mut s = self.write()?;
        if !s.guests.contains_key(&vmid.get()) {
            return Err(not_found(vmid));
        }
        if let Some(nic) = identity.nics.iter().find(|n| n.net != "net0") {
            return Err(Error::InvalidInput {
                what: "NIC",
                input: nic.net.clone(),
                allowed: format!("a NIC of VM {vmid} (net0)"),
            });
        }
        if let Some(nic) = identity.nics.first() {
            s.macs.insert(vmid.get(), nic.mac.to_ascii_lowercase());
        }
        if let Some(g) = s.guests.get_mut(&vmid.get()) {
            g.tags = identity.tags;
        }
        Ok(())
    }
}

// ---- Placement (issue 21) ----

/// Memory every fake guest reserves while running (bytes).
pub const FAKE_GUEST_MEMORY: u64 = 2 * 1024 * 1024 * 1024;
/// Memory of a node that was not declared with [`FakeHypervisor::with_node`] (bytes).
pub const FAKE_NODE_MEMORY: u64 = 1024 * FAKE_GUEST_MEMORY;

impl FakeHypervisor {
    /// Declares a node with `memory` bytes (nodes only named by guests have
    /// [`FAKE_NODE_MEMORY`]). Running guests reserve [`FAKE_GUEST_MEMORY`] each.
    ///
    /// # Panics
    /// If `node` is not a node name (a test fixture error).
    #[must_use]
    pub fn with_node(self, node: &str, memory: u64) -> Self {
        let node = fixture_node(node);
        self.lock().nodes.insert(node.to_string(), (memory, true));
        self
    }

    /// Adds a replica `vmid` of template `of` on `node`: a template tagged
    /// [`replica_tag`]`(of)`, as `labctl template replicate` makes.
    #[must_use]
    pub fn with_replica(self, vmid: u32, of: u32, node: &str) -> Self {
        self.with_guest(GuestInfo {
            vmid: fixture_id(vmid),
            name: Some(format!("template-{of}-{node}")),
            node: fixture_node(node),
            kind: VmKind::Vm,
            status: VmStatus::Stopped,
            template: true,
            pool: None,
            tags: vec![replica_tag(fixture_id(of))],
            description: None,
        })
    }

    /// Takes `node` offline (its guests stop, calls on them fail) or brings it back.
    pub fn set_node_online(&self, node: &str, online: bool) {
        let mut s = self.lock();
        if online {
            s.nodes
                .entry(node.to_owned())
                .or_insert((FAKE_NODE_MEMORY, true))
                .1 = true;
        } else {
            take_offline(&mut s, node);
        }
    }

    /// The next clone onto `node` lands there, then `node` goes offline before the clone's
    /// caller hears back (as PVE's task log becoming unreadable: 595).
    pub fn offline_during_clone(&self, node: &str) {
        self.lock().halt = Some(Halt {
            after: 0,
            how: HaltHow::OfflineMidClone(node.to_owned()),
        });
    }

    /// After `mutations` more changing calls, `node` goes offline (as a node losing power
    /// in the middle of `up`).
    pub fn offline_after(&self, mutations: usize, node: &str) {
        let mut s = self.lock();
        let after = s.mutations + mutations;
        s.halt = Some(Halt {
            after,
            how: HaltHow::Offline(node.to_owned()),
        });
    }
}

fn take_offline(s: &mut State, node: &str) {
    s.nodes
        .entry(node.to_owned())
        .or_insert((FAKE_NODE_MEMORY, true))
        .1 = false;
    for g in s.guests.values_mut().filter(|g| g.node.as_str() == node) {
        g.status = VmStatus::Stopped;
    }
}

/// Calls on a guest whose node is offline fail (PVE: 595 from pveproxy).
fn guest_node_check(s: &State, vmid: VmId) -> Result<()> {
    match s.guests.get(&vmid.get()) {
        Some(g) => offline_check(s, &g.node),
        None => Ok(()),
    }
}

fn offline_check(s: &State, node: &NodeName) -> Result<()> {
    match s.nodes.get(node.as_str()) {
        Some((_, false)) => Err(Error::Backend {
            backend: BACKEND,
            source: format!("node {node} is offline").into(),
        }),
        _ => Ok(()),
    }
}

impl FakeHypervisor {
    /// When `vmid` was last started (tokio time), if it runs.
    pub fn started_at(&self, vmid: u32) -> Option<tokio::time::Instant> {
        self.lock().started.get(&vmid).copied()
    }

    /// How many times pending network changes were applied.
    pub fn network_applies(&self) -> u64 {
        self.lock().network_applies
    }

    /// The zones that exist.
    pub fn zones(&self) -> Vec<String> {
        self.lock().zones.iter().cloned().collect()
    }

    /// The bridge each NIC of `vmid` is plugged into (`None`: the uplink), `net0` first.
    pub fn plugs(&self, vmid: u32) -> BTreeMap<u32, String> {
        self.lock().plugs.get(&vmid).cloned().unwrap_or_default()
    }
}

fn network_info(id: &str, v: &FakeVnet, lab: &LabName) -> Option<NetworkInfo> {
    let (student, network) = crate::parse_network_alias(lab, &v.alias)?;
    Some(NetworkInfo {
        id: id.to_owned(),
        zone: v.zone.clone(),
        student: student.to_owned(),
        network: network.to_owned(),
        tag: None,
        subnet: v.subnet.clone(),
        pending: !v.applied,
    })
}

#[async_trait]
impl Networks for FakeHypervisor {
    async fn ensure_networks(
        &self,
        lab: &LabName,
        plan: &NetworkPlan,
        wanted: Vec<StudentNetwork>,
    ) -> Result<Vec<NetworkInfo>> {
        let mut s = self.write()?;
        let zone = plan.zone.clone().unwrap_or_else(|| crate::lab_zone_id(lab));
        if plan.zone.is_some() && !s.zones.contains(&zone) {
            return Err(Error::NotFound {
                what: format!("SDN zone {zone}"),
            });
        }
        let mut changed = s.zones.insert(zone.clone());
        for w in &wanted {
            let alias = crate::network_alias(lab, &w.student, &w.network);
            match s.vnets.get(&w.id) {
                Some(v) if v.alias == alias => {}
                Some(v) => {
                    return Err(Error::invalid(
                        "network",
                        w.id.clone(),
                        format!(
                            "the vnet exists with alias {:?}, not lab {lab}'s; choose another \
                             lab name",
                            v.alias
                        ),
                    ))
                }
                None => {
                    s.vnets.insert(
                        w.id.clone(),
                        FakeVnet {
                            zone: zone.clone(),
                            alias,
                            subnet: w.subnet.map(|(a, p)| format!("{a}/{p}")),
                            applied: false,
                        },
                    );
                    changed = true;
                }
            }
        }
        if changed || s.vnets.values().any(|v| !v.applied) {
            for v in s.vnets.values_mut() {
                v.applied = true;
            }
            s.network_applies += 1;
        }
        Ok(s.vnets
            .iter()
            .filter_map(|(id, v)| network_info(id, v, lab))
            .collect())
    }

    async fn lab_networks(&self, lab: &LabName) -> Result<Vec<NetworkInfo>> {
        let s = self.read()?;
        Ok(s.vnets
            .iter()
            .filter_map(|(id, v)| network_info(id, v, lab))
            .collect())
    }

    async fn remove_networks(&self, lab: &LabName) -> Result<NetworksRemoved> {
        let mut s = self.write()?;
        let ours: Vec<String> = s
            .vnets
            .iter()
            .filter(|(_, v)| crate::parse_network_alias(lab, &v.alias).is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ours {
            s.vnets.remove(id);
        }
        let own = crate::lab_zone_id(lab);
        let zone =
            (s.zones.contains(&own) && !s.vnets.values().any(|v| v.zone == own)).then(|| {
                s.zones.remove(&own);
                own
            });
        let applied = !ours.is_empty() || zone.is_some();
        if applied {
            s.network_applies += 1;
        }
        Ok(NetworksRemoved {
            vnets: ours,
            zone,
            applied,
        })
    }
}

#[async_trait]
impl Placement for FakeHypervisor {
    async fn placement(&self, template: VmId, _mode: CloneMode) -> Result<PlacementView> {
        let s = self.read()?;
        let t = s
            .guests
            .get(&template.get())
            .filter(|t| t.template)
            .ok_or_else(|| Error::NotFound {
                what: format!("template {template}"),
            })?;
        let mut names: BTreeSet<String> = s.nodes.keys().cloned().collect();
        names.extend(s.guests.values().map(|g| g.node.to_string()));
        let nodes = names
            .iter()
            .map(|n| {
                let (memory_total, online) =
                    s.nodes.get(n).copied().unwrap_or((FAKE_NODE_MEMORY, true));
                let running = s
                    .guests
                    .values()
                    .filter(|g| g.node.as_str() == n && g.status.is_running())
                    .count() as u64;
                NodeCapacity {
                    node: fixture_node(n),
                    online,
                    memory_total,
                    memory_used: running * FAKE_GUEST_MEMORY,
                }
            })
            .collect();
        let tag = replica_tag(template);
        let sources = std::iter::once(t)
            .chain(
                s.guests
                    .values()
                    .filter(|g| g.template && g.vmid != template && g.tags.contains(&tag)),
            )
            .map(|g| CloneSource {
                node: g.node.clone(),
                template: g.vmid,
                target: false,
                capacity: CloneCapacity {
                    key: format!("{}/local-lvm", g.node),
                    slots: 3,
                    queue: 2,
                },
            })
            .collect();
        Ok(PlacementView {
            nodes,
            sources,
            guest_memory: FAKE_GUEST_MEMORY,
        })
    }
}
