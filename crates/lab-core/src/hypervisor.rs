//! The capability trait every backend implements.

use std::net::IpAddr;

use async_trait::async_trait;

use crate::error::Result;
use crate::spec::CloneMode;
use crate::types::{GuestInfo, LabName, VmId};

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
    /// [`Hypervisor::prepare_fence`]).
    pub fence: bool,
}

/// What a hypervisor backend can do for a lab. Methods take `&self` and return owned
/// values so the engine can run them from many tasks at once.
///
/// Ownership contract: [`Hypervisor::clone_guest`] marks the guest as the lab's in the
/// clone request itself (pool [`LabName::pool`], description [`LabName::marker`]);
/// [`Hypervisor::secure`] adds the tag [`LabName::tag`]; [`Hypervisor::lab_members`]
/// returns the guests with any mark (with their description when they lack the tag); the
/// engine requires the pool and the tag or marker (and no template flag), and checks again
/// right before anything destructive.
///
/// Economy contract: the backend batches what it can (one task listing per node per tick
/// for every task being waited on), reads a template once per run, and sends no request
/// whose answer it already knows; the engine calls [`Hypervisor::probe`] on its own
/// schedule and holds no slot while it waits.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Hypervisor: Send + Sync {
    /// A short backend name for messages (`proxmox`).
    fn backend(&self) -> &'static str;

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

    /// Creates what the lab's ownership marks need (a pool) if it is missing. Idempotent;
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a pool of that name exists
    /// and was not made for a lab.
    async fn prepare_lab(&self, lab: &LabName) -> Result<()>;

    /// Where clones of `template` compete and how many may run at once.
    async fn clone_capacity(&self, template: VmId, mode: CloneMode) -> Result<CloneCapacity>;

    /// Clones the template with the lab's marks (pool, description, name) and waits for
    /// the clone to finish; returns the new guest (stopped, not yet tagged).
    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo>;

    /// Puts up the lab-wide part of the fence: students reach only `allowed`. Idempotent;
    /// called once per run before any student starts.
    async fn prepare_fence(&self, lab: &LabName, allowed: Vec<IpAddr>) -> Result<()>;

    /// Completes a lab guest's marks (the tag) and, with [`Secure::fence`], its own part
    /// of the fence, before it first runs. Idempotent.
    async fn secure(&self, guest: GuestInfo, how: Secure) -> Result<()>;

    /// Starts a guest; running already is success.
    async fn start(&self, vmid: VmId) -> Result<()>;

    /// One readiness check (one request where the backend can): is the guest ready, and
    /// which addresses does it report. A guest still booting is `ready: false`, not an
    /// error.
    async fn probe(&self, vmid: VmId) -> Result<Probe>;

    /// The addresses the guest reports now (may be empty).
    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>>;

    /// Fences `students` so they reach only `allowed` (and not each other). Idempotent.
    async fn isolate(&self, lab: &LabName, students: Vec<VmId>, allowed: Vec<IpAddr>)
        -> Result<()>;

    /// Lifts the lab's fence from `students`, restoring what was there before, then the
    /// lab-wide part of the fence (with no students: only that). A lab that is not fenced
    /// is a no-op.
    async fn unisolate(&self, lab: &LabName, students: Vec<VmId>) -> Result<()>;

    /// Whether the lab's fence holds on this guest.
    async fn fenced(&self, lab: &LabName, vmid: VmId) -> Result<bool>;

    /// Stops a guest hard; stopped already is success.
    async fn stop(&self, vmid: VmId) -> Result<()>;

    /// Destroys a stopped guest, its disks and its firewall configuration. The backend
    /// must refuse templates. A guest that is gone already is success.
    async fn destroy(&self, vmid: VmId) -> Result<()>;

    /// Guests carrying any of the lab's marks (in its pool, or with its tag), templates
    /// included: the engine decides which are provably the lab's and reports the rest.
    async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>>;

    /// Removes what [`Hypervisor::prepare_lab`] created, once the lab has no guests left.
    async fn release_lab(&self, lab: &LabName) -> Result<()>;
}
