//! The capability trait every backend implements.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::spec::CloneMode;
use crate::types::{GuestInfo, LabName, VmId};

/// One clone the engine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneRequest {
    /// The template.
    pub template: VmId,
    /// The id the engine planned; the backend may move up to `last_id` if it was taken
    /// in the meantime (the returned [`GuestInfo`] has the real one).
    pub vmid: VmId,
    /// Highest id the backend may move to.
    pub last_id: VmId,
    /// Host name of the new guest.
    pub hostname: String,
    /// Linked or full.
    pub mode: CloneMode,
    /// The lab: the new guest must end up in its pool with its tag.
    pub lab: LabName,
}

/// What a hypervisor backend can do for a lab. Methods take `&self` and return owned
/// values so the engine can run them from many tasks at once.
///
/// Ownership contract: [`Hypervisor::clone_guest`] marks the guest as the lab's (pool
/// [`LabName::pool`] and tag [`LabName::tag`]); [`Hypervisor::lab_members`] returns the
/// guests with either mark; the engine requires both (and no template flag), and checks
/// again right before anything destructive.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Hypervisor: Send + Sync {
    /// A short backend name for messages (`proxmox`).
    fn backend(&self) -> &'static str;

    /// Every guest of the cluster (templates included).
    async fn list_guests(&self) -> Result<Vec<GuestInfo>>;

    /// One guest; [`Error::NotFound`](crate::Error::NotFound) when there is none.
    async fn guest(&self, vmid: VmId) -> Result<GuestInfo>;

    /// Creates what the lab's ownership marks need (a pool) if it is missing. Idempotent;
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a pool of that name exists
    /// and was not made for a lab.
    async fn prepare_lab(&self, lab: &LabName) -> Result<()>;

    /// Clones the template, names, tags and pools the new guest; returns it.
    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo>;

    /// Starts a guest; running already is success.
    async fn start(&self, vmid: VmId) -> Result<()>;

    /// Waits until the guest is ready for use (QEMU: its guest agent answers).
    async fn wait_ready(&self, vmid: VmId, timeout: Duration) -> Result<()>;

    /// The addresses the guest reports now (may be empty).
    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>>;

    /// Waits until the guest reports a usable address and returns it.
    async fn wait_address(&self, vmid: VmId, timeout: Duration) -> Result<IpAddr>;

    /// Fences `students` so they reach only `allowed` (and not each other). Idempotent.
    async fn isolate(&self, lab: &LabName, students: Vec<VmId>, allowed: Vec<IpAddr>)
        -> Result<()>;

    /// Lifts the lab's fence from `students`, restoring what was there before. A lab that
    /// is not fenced is a no-op.
    async fn unisolate(&self, lab: &LabName, students: Vec<VmId>) -> Result<()>;

    /// Stops a guest hard; stopped already is success.
    async fn stop(&self, vmid: VmId) -> Result<()>;

    /// Destroys a stopped guest and its disks. The backend must refuse templates.
    async fn destroy(&self, vmid: VmId) -> Result<()>;

    /// Guests carrying either of the lab's marks (in its pool, or with its tag), templates
    /// included: the engine decides which are provably the lab's and reports the rest.
    async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>>;

    /// Removes what [`Hypervisor::prepare_lab`] created, once the lab has no guests left.
    async fn release_lab(&self, lab: &LabName) -> Result<()>;
}
