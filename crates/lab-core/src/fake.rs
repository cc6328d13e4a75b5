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

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::hypervisor::{
    Assignment, Backend, Capabilities, CloneCapacity, CloneRequest, Desktop, Desktops, Inventory,
    Isolation, NicLink, Power, Probe, Provisioning, Readiness, Seat, Secure, SnapshotInfo,
    Snapshots,
};
use crate::hypervisor::{CloneSource, NodeCapacity, Placement, PlacementView};
use crate::placement::replica_tag;
use crate::spec::CloneMode;
use crate::types::{GuestInfo, LabName, Node, VmId, VmKind, VmStatus};
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
    mutations: usize,
    halt: Option<Halt>,
    /// Nodes declared with [`FakeHypervisor::with_node`]: memory (bytes) and online.
    nodes: BTreeMap<String, (u64, bool)>,
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
    /// If `vmid` is outside 100..=999999999 (a test fixture error).
    #[must_use]
    pub fn with_template(self, vmid: u32, node: &str) -> Self {
        self.with_guest(GuestInfo {
            vmid: fixture_id(vmid),
            name: Some(format!("template-{vmid}")),
            node: Node::new(node),
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

fn fixture_id(vmid: u32) -> VmId {
    match VmId::new(vmid) {
        Ok(id) => id,
        Err(e) => panic!("fake fixture: {e}"),
    }
}

fn crashed() -> Error {
    Error::Backend {
        backend: BACKEND,
        source: "connection lost (the fake was told to crash)".into(),
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
        g.status = VmStatus::Running;
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
        Ok(())
    }
}

#[async_trait]
impl Readiness for FakeHypervisor {
    async fn probe(&self, vmid: VmId) -> Result<Probe> {
        let addresses = self.addresses(vmid).await?;
        Ok(Probe {
            ready: !addresses.is_empty(),
            addresses,
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
impl Isolation for FakeHypervisor {
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
            mac: mac_of(vmid.get()),
            was_down,
            down: !up,
        }])
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
    #[must_use]
    pub fn with_node(self, node: &str, memory: u64) -> Self {
        self.lock().nodes.insert(node.to_owned(), (memory, true));
        self
    }

    /// Adds a replica `vmid` of template `of` on `node`: a template tagged
    /// [`replica_tag`](crate::replica_tag)`(of)`, as `labctl template replicate` makes.
    #[must_use]
    pub fn with_replica(self, vmid: u32, of: u32, node: &str) -> Self {
        self.with_guest(GuestInfo {
            vmid: fixture_id(vmid),
            name: Some(format!("template-{of}-{node}")),
            node: Node::new(node),
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

fn offline_check(s: &State, node: &Node) -> Result<()> {
    match s.nodes.get(node.as_str()) {
        Some((_, false)) => Err(Error::Backend {
            backend: BACKEND,
            source: format!("node {node} is offline").into(),
        }),
        _ => Ok(()),
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
                    node: Node::new(n.clone()),
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
