//! The capability traits backends implement, one per area (object_store's shape): a
//! backend implements what it can and answers [`Error::Unsupported`](crate::Error::Unsupported)
//! for the rest; [`Backend::capabilities`] says which before a caller tries.
//!
//! | trait | methods | Proxmox | FOSS-Cloud | fake |
//! |---|---|---|---|---|
//! | [`Backend`] | name, capabilities | yes | yes | yes |
//! | [`Inventory`] | quiesce, list_guests, guest, lab_members | yes | — | yes |
//! | [`Provisioning`] | prepare_lab, clone_capacity, clone_guest, destroy, release_lab | yes | — | yes |
//! | [`Power`] | start, stop | yes | — | yes |
//! | [`Readiness`] | probe, addresses | yes | — | yes |
//! | [`Fencing`] | prepare_fence, secure, isolate, unisolate, fenced | yes | — | yes |
//! | [`Desktops`] | machines, assigned, assign | — | yes | yes |
//! | [`Snapshots`] | snapshots, snapshot, set_links, rollback_reach, rollback, identity, restore | yes | — | yes |
//! | [`Placement`] | placement | yes | — | yes |
//!
//! [`Hypervisor`] is the set the lab engine needs; every type implementing its parts
//! implements it (blanket impl), and it stays object-safe (`&dyn Hypervisor`).

use std::net::IpAddr;

use async_trait::async_trait;

use crate::error::Result;
use crate::spec::CloneMode;
use crate::types::{GuestInfo, LabName, NodeName, VmId};

/// One clone the engine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneRequest {
    /// The template.
    pub template: VmId,
    /// The id to create. If it turns out taken, the backend answers
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) and the engine picks another.
    pub vmid: VmId,
    /// Highest id the backend may move to on its own (the engine sends `vmid`: it moves ids
    /// itself so concurrent clones never collide).
    pub last_id: VmId,
    /// Host name of the new guest.
    pub hostname: String,
    /// Linked or full.
    pub mode: CloneMode,
    /// The lab: the clone request itself must put the guest in the lab's pool and write
    /// [`LabName::marker`] into its description, so a guest that exists is provably the
    /// lab's even if the caller dies the instant after.
    pub lab: LabName,
    /// Where the clone lands ([`Placement`]); `None`: where `template` is.
    pub source: Option<CloneSource>,
}

/// Where clones of a template compete and how many may run at once there (for Proxmox:
/// the source node and its storage; about 3 linked clones per `local-lvm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneCapacity {
    /// What the clones share, e.g. `pve1/local-lvm`.
    pub key: String,
    /// Clones that may hold the shared resource at the same time (at least 1).
    pub slots: usize,
    /// Clones that may wait on the server for a slot without risk (PVE's storage lock
    /// waits up to 10 s): submitted early, they prepare while others copy, so the slots
    /// never idle. The engine keeps at most `slots + queue` clones in flight.
    pub queue: usize,
}

/// What one readiness check saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probe {
    /// The guest is ready for use (QEMU: its agent answered; containers: running).
    pub ready: bool,
    /// Usable addresses it reports (no loopback, no link-local), IPv4 first.
    pub addresses: Vec<IpAddr>,
}

/// How the engine secures a guest before its first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secure {
    /// The lab.
    pub lab: LabName,
    /// The guest was cloned by this run from the template and nothing touched it since:
    /// the backend may rely on what it read of the template instead of reading the guest.
    pub fresh: bool,
    /// Put the lab's fence on the guest (the lab-wide part is in place,
    /// [`Fencing::prepare_fence`]).
    pub fence: bool,
    /// Where the guest's NICs are plugged (a topology lab): a NIC on a student's network
    /// is moved to that network's bridge with its firewall flag off, the uplink NICs carry
    /// the fence. Empty: every NIC stays where the template put it and carries the fence.
    pub nics: Vec<crate::NicPlug>,
}

/// What every backend says about itself.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Backend: Send + Sync {
    /// A short backend name for messages (`proxmox`).
    fn backend(&self) -> &'static str;

    /// Which capability traits this backend implements for real (the others answer
    /// [`Error::Unsupported`](crate::Error::Unsupported)).
    fn capabilities(&self) -> Capabilities;
}

/// One capability trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// [`Inventory`].
    Inventory,
    /// [`Provisioning`].
    Provisioning,
    /// [`Power`].
    Power,
    /// [`Readiness`].
    Readiness,
    /// Isolation: the trait [`Fencing`] (named apart from `pve_firewall::isolation::Isolation`,
    /// the Proxmox mechanism that implements it).
    Isolation,
    /// [`Desktops`].
    Desktops,
    /// [`Snapshots`].
    Snapshots,
    /// [`Placement`].
    Placement,
    /// [`Networks`](crate::Networks).
    Networks,
}

impl Capability {
    /// Every capability, in the order of [`Capabilities`]' fields.
    pub const ALL: [Capability; 9] = [
        Capability::Inventory,
        Capability::Provisioning,
        Capability::Power,
        Capability::Readiness,
        Capability::Isolation,
        Capability::Desktops,
        Capability::Snapshots,
        Capability::Placement,
        Capability::Networks,
    ];

    /// The trait's name in lower case (`inventory`).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Inventory => "inventory",
            Capability::Provisioning => "provisioning",
            Capability::Power => "power",
            Capability::Readiness => "readiness",
            Capability::Isolation => "isolation",
            Capability::Desktops => "desktops",
            Capability::Snapshots => "snapshots",
            Capability::Placement => "placement",
            Capability::Networks => "networks",
        }
    }
}

/// What a backend can do, so a caller can ask before it tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct Capabilities {
    /// [`Inventory`]: list guests, one guest, a lab's members.
    pub inventory: bool,
    /// [`Provisioning`]: clone, destroy, the lab's pool.
    pub provisioning: bool,
    /// [`Power`]: start, stop.
    pub power: bool,
    /// [`Readiness`]: probe, addresses.
    pub readiness: bool,
    /// [`Fencing`]: the lab's firewall fence.
    pub isolation: bool,
    /// [`Desktops`]: hand a user or a thin client a machine from a pool.
    pub desktops: bool,
    /// [`Snapshots`]: named snapshots and the link state of a guest's NICs (the deadline).
    pub snapshots: bool,
    /// [`Placement`]: the nodes, their memory and where clones of a template may land.
    pub placement: bool,
    /// [`Networks`](crate::Networks): per-student networks (SDN vnets) and their teardown.
    pub networks: bool,
}

impl Capabilities {
    /// Everything the lab engine ([`Hypervisor`]) needs.
    pub const HYPERVISOR: Capabilities = Capabilities {
        inventory: true,
        provisioning: true,
        power: true,
        readiness: true,
        isolation: true,
        desktops: false,
        snapshots: false,
        placement: false,
        networks: false,
    };

    /// Only desktop assignment (a VDI broker such as FOSS-Cloud).
    pub const DESKTOPS: Capabilities = Capabilities {
        inventory: false,
        provisioning: false,
        power: false,
        readiness: false,
        isolation: false,
        desktops: true,
        snapshots: false,
        placement: false,
        networks: false,
    };

    /// Whether `capability` is supported.
    pub fn supports(&self, capability: Capability) -> bool {
        match capability {
            Capability::Inventory => self.inventory,
            Capability::Provisioning => self.provisioning,
            Capability::Power => self.power,
            Capability::Readiness => self.readiness,
            Capability::Isolation => self.isolation,
            Capability::Desktops => self.desktops,
            Capability::Snapshots => self.snapshots,
            Capability::Placement => self.placement,
            Capability::Networks => self.networks,
        }
    }

    /// Whether the lab engine can run on this backend.
    pub fn is_hypervisor(&self) -> bool {
        Capability::ALL[..5].iter().all(|c| self.supports(*c))
    }

    /// `Ok` if `capability` is supported, else the typed
    /// [`Error::Unsupported`](crate::Error::Unsupported) naming `operation` and `backend`.
    pub fn require(
        &self,
        capability: Capability,
        operation: &'static str,
        backend: &'static str,
    ) -> Result<()> {
        if self.supports(capability) {
            Ok(())
        } else {
            Err(crate::Error::Unsupported { operation, backend })
        }
    }
}

impl std::fmt::Display for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Capability::ALL
            .iter()
            .filter(|c| self.supports(**c))
            .map(|c| c.name())
            .collect();
        if names.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// Reading what exists.
///
/// Ownership contract: [`Provisioning::clone_guest`] marks the guest as the lab's in the
/// clone request itself (pool [`LabName::pool`], description [`LabName::marker`]);
/// [`Fencing::secure`] adds the tag [`LabName::tag`]; [`Inventory::lab_members`]
/// returns the guests with any mark (with their description when they lack the tag); the
/// engine requires the pool and the tag or marker (and no template flag), and checks again
/// right before anything destructive.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Inventory: Send + Sync {
    /// Waits (bounded) until no clone started by this backend's user is still running:
    /// of `template`, or anywhere with `None`. A clone request of an interrupted run may
    /// still be creating its guest; planning before it lands would clone that student
    /// twice, and tearing down before it lands would leave it behind.
    async fn quiesce(&self, template: Option<VmId>) -> Result<()>;

    /// Every guest of the cluster (templates included).
    async fn list_guests(&self) -> Result<Vec<GuestInfo>>;

    /// One guest as it is now (run state, template flag, tags fresh; the pool as last
    /// listed); [`Error::NotFound`](crate::Error::NotFound) when there is none.
    async fn guest(&self, vmid: VmId) -> Result<GuestInfo>;

    /// Guests carrying any of the lab's marks (in its pool, or with its tag), templates
    /// included: the engine decides which are provably the lab's and reports the rest.
    async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>>;
}

/// Creating and removing guests.
///
/// Economy contract: the backend batches what it can (one task listing per node per tick
/// for every task being waited on), reads a template once per run, and sends no request
/// whose answer it already knows.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Provisioning: Send + Sync {
    /// Creates what the lab's ownership marks need (a pool) if it is missing. Idempotent;
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a pool of that name exists
    /// and was not made for a lab.
    async fn prepare_lab(&self, lab: &LabName) -> Result<()>;

    /// Where clones of `template` compete and how many may run at once.
    async fn clone_capacity(&self, template: VmId, mode: CloneMode) -> Result<CloneCapacity>;

    /// Clones the template with the lab's marks (pool, description, name) and waits for
    /// the clone to finish; returns the new guest (stopped, not yet tagged). An id that is
    /// taken is [`Error::AlreadyExists`](crate::Error::AlreadyExists), never reused.
    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo>;

    /// Destroys a stopped guest, its disks and its firewall configuration. The backend
    /// must refuse templates. A guest that is gone already is success.
    async fn destroy(&self, vmid: VmId) -> Result<()>;

    /// Removes what [`Provisioning::prepare_lab`] created, once the lab has no guests left.
    async fn release_lab(&self, lab: &LabName) -> Result<()>;
}

/// Running and stopping guests.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Power: Send + Sync {
    /// Starts a guest; running already is success.
    async fn start(&self, vmid: VmId) -> Result<()>;

    /// Stops a guest hard; stopped already is success.
    async fn stop(&self, vmid: VmId) -> Result<()>;
}

/// Whether a guest is ready and where it can be reached. The engine calls
/// [`Readiness::probe`] on its own schedule and holds no slot while it waits.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Readiness: Send + Sync {
    /// One readiness check (one request where the backend can): is the guest ready, and
    /// which addresses does it report. A guest still booting is `ready: false`, not an
    /// error.
    async fn probe(&self, vmid: VmId) -> Result<Probe>;

    /// The addresses the guest reports now (may be empty).
    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>>;
}

/// The isolation capability, the lab's fence: students reach only the teachers, not each
/// other. (Named apart from `pve_firewall::isolation::Isolation`, the Proxmox mechanism
/// `lab-proxmox` implements it with.)
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Fencing: Send + Sync {
    /// Puts up the lab-wide part of the fence: students reach only `allowed`. Idempotent;
    /// called once per run before any student starts.
    async fn prepare_fence(&self, lab: &LabName, allowed: Vec<IpAddr>) -> Result<()>;

    /// Completes a lab guest's marks (the tag) and, with [`Secure::fence`], its own part
    /// of the fence, before it first runs. Idempotent.
    async fn secure(&self, guest: GuestInfo, how: Secure) -> Result<()>;

    /// Fences `students` so they reach only `allowed` (and not each other). Idempotent.
    async fn isolate(&self, lab: &LabName, students: Vec<VmId>, allowed: Vec<IpAddr>)
        -> Result<()>;

    /// Lifts the lab's fence from `students`, restoring what was there before, then the
    /// lab-wide part of the fence (with no students: only that). A lab that is not fenced
    /// is a no-op.
    async fn unisolate(&self, lab: &LabName, students: Vec<VmId>) -> Result<()>;

    /// Whether the lab's fence holds on this guest.
    async fn fenced(&self, lab: &LabName, vmid: VmId) -> Result<bool>;
}

/// Who a desktop is for: a user, or a thin client by its MAC address (FC4School).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seat {
    /// A user name.
    User(String),
    /// A thin client's MAC address, lower case `aa:bb:cc:dd:ee:ff`.
    Mac(String),
}

impl Seat {
    /// A thin-client seat; accepts `:` or `-` separated hex pairs in any case.
    pub fn mac(input: &str) -> Result<Seat> {
        let invalid = || crate::Error::InvalidInput {
            what: "MAC address",
            input: input.to_owned(),
            allowed: "six hex pairs separated by ':' or '-', e.g. 52:54:00:12:34:56".into(),
        };
        let parts: Vec<&str> = input.split([':', '-']).collect();
        if parts.len() != 6
            || parts
                .iter()
                .any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(invalid());
        }
        Ok(Seat::Mac(parts.join(":").to_ascii_lowercase()))
    }

    /// A user seat; the name must be non-empty and free of whitespace and `/`.
    pub fn user(name: &str) -> Result<Seat> {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(crate::Error::InvalidInput {
                what: "user name",
                input: name.to_owned(),
                allowed: "a non-empty name without spaces or '/'".into(),
            });
        }
        Ok(Seat::User(name.to_owned()))
    }
}

impl std::fmt::Display for Seat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seat::User(u) | Seat::Mac(u) => f.write_str(u),
        }
    }
}

/// A desktop machine handed to a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desktop {
    /// The backend's id of the machine (FOSS-Cloud: the libvirt UUID).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The pool it came from.
    pub pool: String,
    /// The node it runs on, if known.
    pub node: Option<String>,
    /// The SPICE endpoint `(host, port)`, if known. Passwords are not part of this type.
    pub spice: Option<(String, u16)>,
}

/// What [`Desktops::assign`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// A machine was assigned by this call.
    New(Desktop),
    /// The seat had a machine already; nothing changed.
    Existing(Desktop),
}

impl Assignment {
    /// The machine, new or existing.
    pub fn desktop(&self) -> &Desktop {
        match self {
            Assignment::New(d) | Assignment::Existing(d) => d,
        }
    }

    /// Whether this call assigned it.
    pub fn is_new(&self) -> bool {
        matches!(self, Assignment::New(_))
    }
}

/// Handing users or thin clients machines from a pool (a VDI broker).
///
/// Contract: [`Desktops::assign`] is idempotent per seat — a seat that has a machine of
/// the pool gets [`Assignment::Existing`] and no second machine; two seats never get the
/// same machine; [`Desktops::assigned`] reads what `assign` did.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Desktops: Send + Sync {
    /// The machines the seat has now (its inventory), in any pool.
    async fn machines(&self, seat: Seat) -> Result<Vec<Desktop>>;

    /// The machine of `pool` the seat has, if any.
    async fn assigned(&self, seat: Seat, pool: String) -> Result<Option<Desktop>>;

    /// Gives the seat a machine of `pool`, unless it has one already.
    async fn assign(&self, seat: Seat, pool: String) -> Result<Assignment>;
}

/// One snapshot of a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// When it was taken, seconds since the epoch (if the backend says).
    pub taken: Option<u64>,
    /// It holds the RAM too.
    pub vmstate: bool,
}

/// What [`Snapshots::set_links`] did to one NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicLink {
    /// The NIC (`net0`, …).
    pub net: String,
    /// Its MAC address, the same before and after.
    pub mac: String,
    /// The link was down before.
    pub was_down: bool,
    /// The link is down now.
    pub down: bool,
}

/// Which snapshots a guest's storage can roll back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackReach {
    /// Any snapshot (LVM-thin, directory/qcow2: snapshots branch).
    Any,
    /// Only the most recent one (ZFS: `can't rollback, more recent snapshots exist`).
    Latest,
}

/// What makes a guest the student's beyond its id and name: each NIC's MAC (so its DHCP
/// address) and its tags. A re-clone gets it back with [`Snapshots::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestIdentity {
    /// Every NIC with its MAC (`was_down`/`down`: its link state when read).
    pub nics: Vec<NicLink>,
    /// The guest's tags.
    pub tags: Vec<String>,
}

/// Keeping a guest as it is at a moment (the deadline) and cutting its wire without
/// changing its identity; going back to a snapshot, and giving a re-cloned guest its
/// identity back (a reset).
///
/// Contract: [`Snapshots::snapshot`] of a name the guest has already is
/// [`Error::AlreadyExists`](crate::Error::AlreadyExists) and changes nothing, so a caller
/// that lost the answer can ask again and never gets a second snapshot;
/// [`Snapshots::set_links`] changes only the link state: every NIC keeps its MAC.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Snapshots: Send + Sync {
    /// The guest's snapshots, oldest first (no pseudo-entry for the running state).
    async fn snapshots(&self, vmid: VmId) -> Result<Vec<SnapshotInfo>>;

    /// Takes the snapshot `name` (with the RAM when `vmstate` and the guest runs) and waits
    /// for it; answers the backend's task id when it has one.
    async fn snapshot(&self, vmid: VmId, name: String, vmstate: bool) -> Result<Option<String>>;

    /// Sets the link of every NIC up or down, each keeping its MAC; answers what each NIC
    /// was and is. A NIC already so is not written.
    async fn set_links(&self, vmid: VmId, up: bool) -> Result<Vec<NicLink>>;

    /// Which of its snapshots the guest's storage can roll back to.
    async fn rollback_reach(&self, vmid: VmId) -> Result<RollbackReach>;

    /// Rolls the guest back to snapshot `name` (disks, config, and the RAM when the
    /// snapshot has it) and waits; answers the backend's task id when it has one. A guest
    /// is stopped afterwards unless the snapshot holds its RAM. No such snapshot is
    /// [`Error::NotFound`](crate::Error::NotFound); a storage that cannot reach it
    /// ([`RollbackReach::Latest`] with newer snapshots) is
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) and changes nothing.
    async fn rollback(&self, vmid: VmId, name: String) -> Result<Option<String>>;

    /// The guest's identity now (NICs with MACs, tags); reads only.
    async fn identity(&self, vmid: VmId) -> Result<GuestIdentity>;

    /// Gives the guest `identity`: every NIC named there gets its MAC (the rest of the
    /// NIC, its firewall flag and link state included, is kept) and the tags are set.
    /// A NIC the guest lacks is [`Error::InvalidInput`](crate::Error::InvalidInput).
    /// Idempotent.
    async fn restore(&self, vmid: VmId, identity: GuestIdentity) -> Result<()>;
}

// ---- Placement (issue 21): where clones land across a cluster ----

/// One node of the cluster as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCapacity {
    /// The node.
    pub node: NodeName,
    /// It answers (an offline node takes no clone).
    pub online: bool,
    /// Its physical memory (bytes).
    pub memory_total: u64,
    /// Memory in use now (bytes): the host's and its running guests'.
    pub memory_used: u64,
}

impl NodeCapacity {
    /// Memory not in use (bytes).
    pub fn memory_free(&self) -> u64 {
        self.memory_total.saturating_sub(self.memory_used)
    }
}

/// A place clones of a lab's template may land: the node, what to clone there, and the
/// capacity the clones compete for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneSource {
    /// The node the new guest lives on.
    pub node: NodeName,
    /// What is cloned: the lab's template, or its replica on `node`.
    pub template: VmId,
    /// The template lives on shared storage on another node: the clone is sent there and
    /// asks for `node` as its target.
    pub target: bool,
    /// The storage lock these clones share (sources with the same
    /// [`CloneCapacity::key`] share its slots, e.g. every node of a shared storage).
    pub capacity: CloneCapacity,
}

/// What [`Placement::placement`] read: the nodes, where clones may land, and the memory
/// one running clone reserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementView {
    /// Every node of the cluster.
    pub nodes: Vec<NodeCapacity>,
    /// Every place a clone of the template may land (at least the template's own node).
    pub sources: Vec<CloneSource>,
    /// Memory one running clone reserves (the template's configured memory, bytes).
    pub guest_memory: u64,
}

/// Spreading a lab over a cluster: which nodes hold the template (itself, a replica, or
/// shared storage) and how much memory each has free. A backend without it answers
/// [`Error::Unsupported`](crate::Error::Unsupported) and the engine clones everything
/// where the template is, as before.
#[async_trait]
pub trait Placement: Backend + Send + Sync {
    /// The nodes, the places clones of `template` may land, and the memory a clone needs
    /// (Proxmox: one cluster resource listing). The default answers `Unsupported`.
    async fn placement(&self, template: VmId, mode: CloneMode) -> Result<PlacementView> {
        let _ = (template, mode);
        Err(crate::Error::Unsupported {
            operation: "placement",
            backend: self.backend(),
        })
    }
}

/// The set of capabilities the lab engine needs; implemented by every type that
/// implements its parts. Object-safe: the engine takes `&dyn Hypervisor`.
pub trait Hypervisor:
    Backend + Inventory + Provisioning + Power + Readiness + Fencing + Placement + crate::Networks
{
}

impl<T> Hypervisor for T where
    T: Backend
        + Inventory
        + Provisioning
        + Power
        + Readiness
        + Fencing
        + Placement
        + crate::Networks
        + ?Sized
{
}

#[cfg(any(test, feature = "mock"))]
mockall::mock! {
    /// A mock of every capability the engine needs (and desktops), with the same
    /// `expect_*` methods the single trait had.
    pub Hypervisor {}

    impl Backend for Hypervisor {
        fn backend(&self) -> &'static str;
        fn capabilities(&self) -> Capabilities;
    }

    #[async_trait]
    impl Inventory for Hypervisor {
        async fn quiesce(&self, template: Option<VmId>) -> Result<()>;
        async fn list_guests(&self) -> Result<Vec<GuestInfo>>;
        async fn guest(&self, vmid: VmId) -> Result<GuestInfo>;
        async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>>;
    }

    #[async_trait]
    impl Provisioning for Hypervisor {
        async fn prepare_lab(&self, lab: &LabName) -> Result<()>;
        async fn clone_capacity(&self, template: VmId, mode: CloneMode) -> Result<CloneCapacity>;
        async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo>;
        async fn destroy(&self, vmid: VmId) -> Result<()>;
        async fn release_lab(&self, lab: &LabName) -> Result<()>;
    }

    #[async_trait]
    impl Power for Hypervisor {
        async fn start(&self, vmid: VmId) -> Result<()>;
        async fn stop(&self, vmid: VmId) -> Result<()>;
    }

    #[async_trait]
    impl Readiness for Hypervisor {
        async fn probe(&self, vmid: VmId) -> Result<Probe>;
        async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>>;
    }

    #[async_trait]
    impl Fencing for Hypervisor {
        async fn prepare_fence(&self, lab: &LabName, allowed: Vec<IpAddr>) -> Result<()>;
        async fn secure(&self, guest: GuestInfo, how: Secure) -> Result<()>;
        async fn isolate(&self, lab: &LabName, students: Vec<VmId>, allowed: Vec<IpAddr>) -> Result<()>;
        async fn unisolate(&self, lab: &LabName, students: Vec<VmId>) -> Result<()>;
        async fn fenced(&self, lab: &LabName, vmid: VmId) -> Result<bool>;
    }

    // Not mocked: the default answers `Unsupported`, so a mock clones where the template
    // is (the engine falls back to `clone_capacity`).
    #[async_trait]
    impl Placement for Hypervisor {}

    #[async_trait]
    impl crate::Networks for Hypervisor {
        async fn ensure_networks(
            &self,
            lab: &LabName,
            plan: &crate::NetworkPlan,
            wanted: Vec<crate::StudentNetwork>,
        ) -> Result<Vec<crate::NetworkInfo>>;
        async fn lab_networks(&self, lab: &LabName) -> Result<Vec<crate::NetworkInfo>>;
        async fn remove_networks(&self, lab: &LabName) -> Result<crate::NetworksRemoved>;
    }

    #[async_trait]
    impl Desktops for Hypervisor {
        async fn machines(&self, seat: Seat) -> Result<Vec<Desktop>>;
        async fn assigned(&self, seat: Seat, pool: String) -> Result<Option<Desktop>>;
        async fn assign(&self, seat: Seat, pool: String) -> Result<Assignment>;
    }
}
