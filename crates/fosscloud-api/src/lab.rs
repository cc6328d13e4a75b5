//! FOSS-Cloud as a `lab-core` backend: [`Desktops`] (a user's machines, assignment from a
//! dynamic pool, and with FC4School MAC-mapped assignment for thin clients). Everything
//! else — cloning, power, readiness, the firewall fence — has no FOSS-Cloud API and
//! answers [`lab_core::Error::Unsupported`]; [`Backend::capabilities`] says so up front.
//!
//! Assignment is made idempotent here, because the server's is not: `/vm/assign` takes
//! another free VM on every call, so the user's list is read first; a MAC seat's mapping is
//! listed first, and `400067` ("already assigned to this mapped vm") is read as done.

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;
use lab_core::{
    Assignment, Backend, Capabilities, CloneCapacity, CloneMode, CloneRequest, Desktop, Desktops,
    Fencing, GuestInfo, Inventory, LabName, Power, Probe, Provisioning, Readiness, Seat, Secure,
    VmId,
};

use crate::{Code, Error, FossCloudClient, MacAddr, PoolId, Vm, VmKind, VmStatus};

/// The backend name in messages and [`lab_core::Error::Unsupported`].
pub const BACKEND: &str = "fosscloud";

/// FOSS-Cloud's desktops for a lab: one client per user seat (each user logs in as
/// itself), and the dynvmuser's client for thin-client (MAC) seats. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FossCloudLab {
    thin_clients: Option<FossCloudClient>,
    users: BTreeMap<String, FossCloudClient>,
}

impl FossCloudLab {
    /// A lab whose MAC seats are served by `dynvmuser` (a client logged in as FC4School's
    /// thin-client account; the server refuses other users with 400063).
    pub fn for_thin_clients(dynvmuser: FossCloudClient) -> Self {
        Self {
            thin_clients: Some(dynvmuser),
            users: BTreeMap::new(),
        }
    }

    /// A lab with no seats yet; add them with [`FossCloudLab::with_user`].
    pub fn for_users() -> Self {
        Self {
            thin_clients: None,
            users: BTreeMap::new(),
        }
    }

    /// Serves the user seat `name` with `client` (logged in as that user).
    #[must_use]
    pub fn with_user(mut self, name: &str, client: FossCloudClient) -> Self {
        self.users.insert(name.to_owned(), client);
        self
    }

    fn user(&self, name: &str) -> lab_core::Result<&FossCloudClient> {
        self.users
            .get(name)
            .ok_or_else(|| lab_core::Error::InvalidInput {
                what: "user seat",
                input: name.to_owned(),
                allowed: format!(
                    "a user this lab has credentials for ({})",
                    self.users.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
    }

    fn thin(&self) -> lab_core::Result<&FossCloudClient> {
        self.thin_clients
            .as_ref()
            .ok_or_else(|| lab_core::Error::InvalidInput {
                what: "seat",
                input: "a MAC address".into(),
                allowed: "user seats only: this lab has no dynvmuser for thin clients".into(),
            })
    }
}

fn mac(seat: &str) -> lab_core::Result<MacAddr> {
    seat.parse().map_err(into_lab)
}

fn pool_id(pool: &str) -> lab_core::Result<PoolId> {
    pool.parse().map_err(into_lab)
}

/// The machine an API entry describes; `None` for a pool stub (no machine yet).
fn desktop(vm: &Vm) -> Option<Desktop> {
    let id = vm.uuid.clone()?;
    Some(Desktop {
        name: vm.name.clone().unwrap_or_else(|| id.clone()),
        id,
        pool: vm
            .pool
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        node: vm.node.clone(),
        spice: vm.spice_endpoint().map(|(h, p)| (h.to_owned(), p)),
    })
}

fn is_assigned(vm: &Vm) -> bool {
    vm.status == Some(VmStatus::Assigned) && vm.uuid.is_some()
}

/// Maps a client error into `lab-core`'s meaning.
pub fn into_lab(e: Error) -> lab_core::Error {
    match e.code() {
        Some(Code::NoFreeVm) => lab_core::Error::Busy {
            what: "the pool".into(),
            message: e.to_string(),
        },
        Some(Code::PoolNotFound | Code::MappingAssignPoolInvalid) => lab_core::Error::NotFound {
            what: format!("pool ({e})"),
        },
        Some(Code::MappingListNoVmForMac | Code::MappingAssignNoVmForMac) => {
            lab_core::Error::NotFound {
                what: format!("a VM mapped to this MAC address ({e})"),
            }
        }
        _ => match e {
            Error::InvalidInput {
                what,
                value,
                allowed,
            } => lab_core::Error::InvalidInput {
                what,
                input: value,
                allowed: allowed.to_owned(),
            },
            other => lab_core::Error::Backend {
                backend: BACKEND,
                source: Box::new(other),
            },
        },
    }
}

impl Backend for FossCloudLab {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::DESKTOPS
    }
}

#[async_trait]
impl Desktops for FossCloudLab {
    async fn machines(&self, seat: Seat) -> lab_core::Result<Vec<Desktop>> {
        match &seat {
            Seat::User(u) => {
                let vms = self
                    .user(u)?
                    .list_vms(VmKind::Owner)
                    .await
                    .map_err(into_lab)?;
                Ok(vms
                    .iter()
                    .filter(|vm| vm.status != Some(VmStatus::Assignable))
                    .filter_map(desktop)
                    .collect())
            }
            Seat::Mac(m) => {
                let vm = self
                    .thin()?
                    .mapping_list(Some(mac(m)?))
                    .await
                    .map_err(into_lab)?;
                Ok(is_assigned(&vm)
                    .then(|| desktop(&vm))
                    .flatten()
                    .into_iter()
                    .collect())
            }
        }
    }

    async fn assigned(&self, seat: Seat, pool: String) -> lab_core::Result<Option<Desktop>> {
        let in_pool = |vm: &Vm| vm.pool.as_ref().map(PoolId::as_str) == Some(pool.as_str());
        match &seat {
            Seat::User(u) => {
                let vms = self
                    .user(u)?
                    .list_vms(VmKind::Dynamic)
                    .await
                    .map_err(into_lab)?;
                Ok(vms
                    .iter()
                    .find(|vm| is_assigned(vm) && in_pool(vm))
                    .and_then(desktop))
            }
            Seat::Mac(m) => {
                let vm = self
                    .thin()?
                    .mapping_list(Some(mac(m)?))
                    .await
                    .map_err(into_lab)?;
                Ok((is_assigned(&vm) && in_pool(&vm))
                    .then(|| desktop(&vm))
                    .flatten())
            }
        }
    }

    async fn assign(&self, seat: Seat, pool: String) -> lab_core::Result<Assignment> {
        if let Some(d) = self.assigned(seat.clone(), pool.clone()).await? {
            return Ok(Assignment::Existing(d));
        }
        let id = pool_id(&pool)?;
        let answer = match &seat {
            Seat::User(u) => self.user(u)?.assign(&id).await,
            Seat::Mac(m) => self.thin()?.mapping_assign(&id, Some(mac(m)?)).await,
        };
        match answer {
            Ok(vm) => desktop(&vm)
                .map(Assignment::New)
                .ok_or_else(|| lab_core::Error::Backend {
                    backend: BACKEND,
                    source: "the server assigned a VM but sent no uuid".into(),
                }),
            // Assigned between our list and our assign (another run): read it back.
            Err(e) if e.code() == Some(Code::MappingAssignAlreadyAssigned) => self
                .assigned(seat.clone(), pool.clone())
                .await?
                .map(Assignment::Existing)
                .ok_or_else(|| into_lab(e)),
            Err(e) => Err(into_lab(e)),
        }
    }
}

fn unsupported<T>(operation: &'static str) -> lab_core::Result<T> {
    Err(lab_core::Error::Unsupported {
        operation,
        backend: BACKEND,
    })
}

#[async_trait]
impl Inventory for FossCloudLab {
    async fn quiesce(&self, _template: Option<VmId>) -> lab_core::Result<()> {
        unsupported("quiesce")
    }
    async fn list_guests(&self) -> lab_core::Result<Vec<GuestInfo>> {
        unsupported("list_guests (use the desktops of a seat)")
    }
    async fn guest(&self, _vmid: VmId) -> lab_core::Result<GuestInfo> {
        unsupported("guest")
    }
    async fn lab_members(&self, _lab: &LabName) -> lab_core::Result<Vec<GuestInfo>> {
        unsupported("lab_members")
    }
}

/// No placement (the broker places desktops itself): the trait's default answers
/// `Unsupported` naming this backend.
#[async_trait]
impl lab_core::Placement for FossCloudLab {}
impl lab_core::Networks for FossCloudLab {}

#[async_trait]
impl Provisioning for FossCloudLab {
    async fn prepare_lab(&self, _lab: &LabName) -> lab_core::Result<()> {
        unsupported("prepare_lab")
    }
    async fn clone_capacity(&self, _t: VmId, _m: CloneMode) -> lab_core::Result<CloneCapacity> {
        unsupported("clone_capacity")
    }
    async fn clone_guest(&self, _request: CloneRequest) -> lab_core::Result<GuestInfo> {
        unsupported("clone_guest")
    }
    async fn destroy(&self, _vmid: VmId) -> lab_core::Result<()> {
        unsupported("destroy")
    }
    async fn release_lab(&self, _lab: &LabName) -> lab_core::Result<()> {
        unsupported("release_lab")
    }
}

#[async_trait]
impl Power for FossCloudLab {
    async fn start(&self, _vmid: VmId) -> lab_core::Result<()> {
        unsupported("start")
    }
    async fn stop(&self, _vmid: VmId) -> lab_core::Result<()> {
        unsupported("stop")
    }
}

#[async_trait]
impl Readiness for FossCloudLab {
    async fn probe(&self, _vmid: VmId) -> lab_core::Result<Probe> {
        unsupported("probe")
    }
    async fn addresses(&self, _vmid: VmId) -> lab_core::Result<Vec<IpAddr>> {
        unsupported("addresses")
    }
}

#[async_trait]
impl Fencing for FossCloudLab {
    async fn prepare_fence(&self, _lab: &LabName, _allowed: Vec<IpAddr>) -> lab_core::Result<()> {
        unsupported("prepare_fence")
    }
    async fn secure(&self, _guest: GuestInfo, _how: Secure) -> lab_core::Result<()> {
        unsupported("secure")
    }
    async fn isolate(
        &self,
        _lab: &LabName,
        _students: Vec<VmId>,
        _allowed: Vec<IpAddr>,
    ) -> lab_core::Result<()> {
        unsupported("isolate")
    }
    async fn unisolate(&self, _lab: &LabName, _students: Vec<VmId>) -> lab_core::Result<()> {
        unsupported("unisolate")
    }
    async fn fenced(&self, _lab: &LabName, _vmid: VmId) -> lab_core::Result<bool> {
        unsupported("fenced")
    }
}
