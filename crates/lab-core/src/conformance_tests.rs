//! The conformance suite against the fake (it must pass) and against deliberately broken
//! wrappers of the fake (each must fail, naming the rule it broke).

use std::net::IpAddr;

use async_trait::async_trait;

use crate::conformance::{self, Fixture};
use crate::fake::FakeHypervisor;
use crate::*;

fn fixture() -> Fixture {
    crate::test_spec::watchdog();
    Fixture::new(9000, [5000, 5001], "conform")
}

fn fake() -> FakeHypervisor {
    crate::test_spec::watchdog();
    FakeHypervisor::new()
        .with_template(9000, "pve1")
        .with_desktop_pool("class", 3)
}

fn seats() -> Vec<Seat> {
    vec![
        Seat::mac("52:54:00:00:00:01").unwrap(),
        Seat::mac("52-54-00-00-00-02").unwrap(),
        Seat::user("alice").unwrap(),
    ]
}

#[tokio::test]
async fn the_fake_keeps_the_contract() {
    let hv = fake();
    conformance::hypervisor(&hv, &fixture()).await.unwrap();
    conformance::desktops(&hv, &seats(), "class").await.unwrap();
    conformance::unsupported_is_typed(&hv, &fixture())
        .await
        .unwrap();
    conformance::snapshots(&hv, &fixture()).await.unwrap();
    conformance::snapshots_unsupported_is_typed(&hv, &fixture())
        .await
        .unwrap();
    assert_eq!(
        hv.snapshots_taken(),
        1,
        "the second snapshot of a name took none"
    );
    // Nothing left behind but the template.
    assert_eq!(hv.guests().len(), 1);
    assert!(hv.pools().is_empty());
}

#[tokio::test]
async fn a_full_pool_is_busy_not_a_second_machine() {
    let hv = FakeHypervisor::new().with_desktop_pool("class", 1);
    let a = Seat::user("alice").unwrap();
    assert!(hv.assign(a.clone(), "class".into()).await.unwrap().is_new());
    let e = hv
        .assign(Seat::user("bob").unwrap(), "class".into())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e}");
    assert_eq!(hv.seats("class").len(), 1);
}

#[test]
fn seats_are_checked() {
    assert_eq!(
        Seat::mac("52:54:00:AB:cd:0F").unwrap(),
        Seat::Mac("52:54:00:ab:cd:0f".into())
    );
    for bad in ["52:54:00:ab:cd", "52:54:00:ab:cd:0g", "525400abcd0f", ""] {
        let e = Seat::mac(bad).unwrap_err();
        assert!(e.to_string().contains("MAC address"), "{e}");
    }
    assert!(Seat::user("a b").is_err());
    assert!(Seat::user("").is_err());
}

#[test]
fn capabilities_describe_and_require() {
    let c = Capabilities::DESKTOPS;
    assert!(!c.is_hypervisor());
    assert!(Capabilities::HYPERVISOR.is_hypervisor());
    assert_eq!(c.to_string(), "desktops");
    let e = c
        .require(Capability::Power, "start", "fosscloud")
        .unwrap_err();
    assert_eq!(e.to_string(), "fosscloud does not support start");
    assert!(c
        .require(Capability::Desktops, "assign", "fosscloud")
        .is_ok());
}

/// How a wrapper breaks the contract.
#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    /// The clone lacks the marker in its description.
    CloneWithoutMarks,
    /// A clone at a taken id "succeeds" by handing back the guest that is there.
    ReusesIds,
    /// Every assign hands out another machine.
    AssignsTwice,
    /// Says it lacks isolation but answers `Ok(())` instead of `Unsupported`.
    UntypedUnsupported,
}

struct Broken {
    inner: FakeHypervisor,
    flaw: Flaw,
}

impl Backend for Broken {
    fn backend(&self) -> &'static str {
        "broken"
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        if self.flaw == Flaw::UntypedUnsupported {
            c.isolation = false;
        }
        c
    }
}

#[async_trait]
impl Inventory for Broken {
    async fn quiesce(&self, t: Option<VmId>) -> Result<()> {
        self.inner.quiesce(t).await
    }
    async fn list_guests(&self) -> Result<Vec<GuestInfo>> {
        self.inner.list_guests().await
    }
    async fn guest(&self, vmid: VmId) -> Result<GuestInfo> {
        self.inner.guest(vmid).await
    }
    async fn lab_members(&self, lab: &LabName) -> Result<Vec<GuestInfo>> {
        self.inner.lab_members(lab).await
    }
}

/// No placement: the engine clones where the template is.
#[async_trait]
impl crate::Placement for Broken {}
impl crate::Networks for Broken {}

#[async_trait]
impl Provisioning for Broken {
    async fn prepare_lab(&self, lab: &LabName) -> Result<()> {
        self.inner.prepare_lab(lab).await
    }
    async fn clone_capacity(&self, t: VmId, m: CloneMode) -> Result<CloneCapacity> {
        self.inner.clone_capacity(t, m).await
    }
    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo> {
        let vmid = request.vmid;
        match (self.flaw, self.inner.clone_guest(request).await) {
            (Flaw::CloneWithoutMarks, Ok(mut g)) => {
                g.description = None;
                Ok(g)
            }
            (Flaw::ReusesIds, Err(Error::AlreadyExists { .. })) => self.inner.guest(vmid).await,
            (_, r) => r,
        }
    }
    async fn destroy(&self, vmid: VmId) -> Result<()> {
        self.inner.destroy(vmid).await
    }
    async fn release_lab(&self, lab: &LabName) -> Result<()> {
        self.inner.release_lab(lab).await
    }
}

#[async_trait]
impl Power for Broken {
    async fn start(&self, vmid: VmId) -> Result<()> {
        self.inner.start(vmid).await
    }
    async fn stop(&self, vmid: VmId) -> Result<()> {
        self.inner.stop(vmid).await
    }
}

#[async_trait]
impl Readiness for Broken {
    async fn probe(&self, vmid: VmId) -> Result<Probe> {
        self.inner.probe(vmid).await
    }
    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>> {
        self.inner.addresses(vmid).await
    }
}

#[async_trait]
impl Fencing for Broken {
    async fn prepare_fence(&self, lab: &LabName, allowed: Vec<IpAddr>) -> Result<()> {
        if self.flaw == Flaw::UntypedUnsupported {
            return Ok(());
        }
        self.inner.prepare_fence(lab, allowed).await
    }
    async fn secure(&self, guest: GuestInfo, how: Secure) -> Result<()> {
        self.inner.secure(guest, how).await
    }
    async fn isolate(&self, lab: &LabName, s: Vec<VmId>, a: Vec<IpAddr>) -> Result<()> {
        self.inner.isolate(lab, s, a).await
    }
    async fn unisolate(&self, lab: &LabName, s: Vec<VmId>) -> Result<()> {
        self.inner.unisolate(lab, s).await
    }
    async fn fenced(&self, lab: &LabName, vmid: VmId) -> Result<bool> {
        self.inner.fenced(lab, vmid).await
    }
}

#[async_trait]
impl Desktops for Broken {
    async fn machines(&self, seat: Seat) -> Result<Vec<Desktop>> {
        self.inner.machines(seat).await
    }
    async fn assigned(&self, seat: Seat, pool: String) -> Result<Option<Desktop>> {
        self.inner.assigned(seat, pool).await
    }
    async fn assign(&self, seat: Seat, pool: String) -> Result<Assignment> {
        if self.flaw == Flaw::AssignsTwice {
            // Ignores what the seat has and takes a free machine for another seat.
            let other = Seat::User(format!("shadow-{}", self.inner.seats(&pool).len()));
            if let Some(d) = self.inner.assigned(seat.clone(), pool.clone()).await? {
                self.inner.assign(other, pool).await?;
                return Ok(Assignment::New(d));
            }
        }
        self.inner.assign(seat, pool).await
    }
}

fn broken(flaw: Flaw) -> Broken {
    Broken {
        inner: fake(),
        flaw,
    }
}

#[tokio::test]
async fn a_clone_without_marks_fails_the_suite() {
    let v = conformance::hypervisor(&broken(Flaw::CloneWithoutMarks), &fixture())
        .await
        .unwrap_err();
    assert_eq!(v.check, "provisioning");
    assert!(v.message.contains("without the lab's marks"), "{v}");
}

#[tokio::test]
async fn a_reused_id_fails_the_suite() {
    let v = conformance::hypervisor(&broken(Flaw::ReusesIds), &fixture())
        .await
        .unwrap_err();
    assert_eq!(v.check, "provisioning");
    assert!(v.message.contains("not AlreadyExists"), "{v}");
}

#[tokio::test]
async fn an_assignment_done_twice_fails_the_suite() {
    let v = conformance::desktops(&broken(Flaw::AssignsTwice), &seats(), "class")
        .await
        .unwrap_err();
    assert_eq!(v.check, "desktops");
    assert!(v.message.contains("not Existing"), "{v}");
}

#[tokio::test]
async fn an_untyped_unsupported_fails_the_suite() {
    let v = conformance::unsupported_is_typed(&broken(Flaw::UntypedUnsupported), &fixture())
        .await
        .unwrap_err();
    assert_eq!(v.check, "unsupported");
    assert!(v.message.contains("prepare_fence"), "{v}");
}

/// How a snapshotting wrapper breaks the contract.
#[derive(Clone, Copy, PartialEq, Debug)]
enum SnapFlaw {
    /// A snapshot of a name taken already "succeeds" (a caller cannot tell it kept one).
    SecondSnapshotOk,
    /// Setting a link writes the NIC back without its MAC (PVE makes a new one).
    NewMac,
    /// Declares no snapshots but answers `Ok`.
    UntypedUnsupported,
    /// `restore` sets the tags but leaves the MACs as they are.
    RestoreKeepsNewMac,
}

struct BrokenSnap {
    inner: FakeHypervisor,
    flaw: SnapFlaw,
}

impl Backend for BrokenSnap {
    fn backend(&self) -> &'static str {
        "broken"
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.snapshots = self.flaw != SnapFlaw::UntypedUnsupported;
        c
    }
}

/// No placement: the engine clones where the template is.
#[async_trait]
impl crate::Placement for BrokenSnap {}
impl crate::Networks for BrokenSnap {}

#[async_trait]
impl Provisioning for BrokenSnap {
    async fn prepare_lab(&self, lab: &LabName) -> Result<()> {
        self.inner.prepare_lab(lab).await
    }
    async fn clone_capacity(&self, t: VmId, m: CloneMode) -> Result<CloneCapacity> {
        self.inner.clone_capacity(t, m).await
    }
    async fn clone_guest(&self, r: CloneRequest) -> Result<GuestInfo> {
        self.inner.clone_guest(r).await
    }
    async fn destroy(&self, vmid: VmId) -> Result<()> {
        self.inner.destroy(vmid).await
    }
    async fn release_lab(&self, lab: &LabName) -> Result<()> {
        self.inner.release_lab(lab).await
    }
}

#[async_trait]
impl Power for BrokenSnap {
    async fn start(&self, vmid: VmId) -> Result<()> {
        self.inner.start(vmid).await
    }
    async fn stop(&self, vmid: VmId) -> Result<()> {
        self.inner.stop(vmid).await
    }
}

#[async_trait]
impl Snapshots for BrokenSnap {
    async fn snapshots(&self, vmid: VmId) -> Result<Vec<SnapshotInfo>> {
        if self.flaw == SnapFlaw::UntypedUnsupported {
            return Ok(Vec::new());
        }
        self.inner.snapshots(vmid).await
    }
    async fn snapshot(&self, vmid: VmId, name: String, vmstate: bool) -> Result<Option<String>> {
        match self.inner.snapshot(vmid, name, vmstate).await {
            Err(Error::AlreadyExists { .. }) if self.flaw == SnapFlaw::SecondSnapshotOk => Ok(None),
            other => other,
        }
    }
    async fn set_links(&self, vmid: VmId, up: bool) -> Result<Vec<NicLink>> {
        let mut l = self.inner.set_links(vmid, up).await?;
        if self.flaw == SnapFlaw::NewMac && up {
            l[0].mac = "52:54:00:ff:ff:ff".into();
        }
        Ok(l)
    }
    async fn rollback_reach(&self, vmid: VmId) -> Result<RollbackReach> {
        self.inner.rollback_reach(vmid).await
    }
    async fn rollback(&self, vmid: VmId, name: String) -> Result<Option<String>> {
        self.inner.rollback(vmid, name).await
    }
    async fn identity(&self, vmid: VmId) -> Result<GuestIdentity> {
        self.inner.identity(vmid).await
    }
    async fn restore(&self, vmid: VmId, mut identity: GuestIdentity) -> Result<()> {
        if self.flaw == SnapFlaw::RestoreKeepsNewMac {
            identity.nics = self.inner.identity(vmid).await?.nics;
        }
        self.inner.restore(vmid, identity).await
    }
}

#[tokio::test]
async fn broken_snapshots_fail_the_suite_naming_the_rule() {
    for (flaw, needle) in [
        (SnapFlaw::SecondSnapshotOk, "not AlreadyExists"),
        (SnapFlaw::NewMac, "changed a MAC"),
        (SnapFlaw::UntypedUnsupported, "unsupported snapshots"),
        (SnapFlaw::RestoreKeepsNewMac, "restore of"),
    ] {
        let b = BrokenSnap {
            inner: fake(),
            flaw,
        };
        let v = if flaw == SnapFlaw::UntypedUnsupported {
            conformance::snapshots_unsupported_is_typed(&b, &fixture()).await
        } else {
            conformance::snapshots(&b, &fixture()).await
        }
        .unwrap_err();
        assert!(v.to_string().contains(needle), "{flaw:?}: {v}");
    }
}
