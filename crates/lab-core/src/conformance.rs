//! **Available with the feature `conformance`.**
//!
//! The contract every backend must keep, written once as trait-level checks (feature
//! `conformance`; object_store's shape). Each check drives a backend only through the
//! capability traits and answers a [`Violation`] naming the broken rule, so a test can
//! both require a good backend to pass and prove a broken one fails.
//!
//! Run against: the in-memory fake (`lab-core`), `lab-proxmox` on `pve-sim`, and
//! `fosscloud-api` on `fosscloud-sim` (desktops, and [`unsupported_is_typed`] for the rest).
//!
//! ```no_run
//! # async fn demo(hv: &dyn lab_core::Hypervisor) {
//! use lab_core::conformance::{self, Fixture};
//! let fx = Fixture::new(9000, [5000, 5001], "conform");
//! conformance::hypervisor(hv, &fx).await.expect("the backend keeps the contract");
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::hypervisor::{
    Assignment, Backend, Capability, CloneRequest, Desktops, Hypervisor, Inventory, Power,
    Provisioning, Seat, Secure, Snapshots,
};
use crate::spec::CloneMode;
use crate::types::{LabName, VmId, VmStatus};

/// A broken rule of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check (`provisioning`, `desktops`, …).
    pub check: &'static str,
    /// What the backend did instead.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "contract {} broken: {}", self.check, self.message)
    }
}

impl std::error::Error for Violation {}

/// What a check answers.
pub type Outcome = std::result::Result<(), Violation>;

fn fail(check: &'static str, message: impl Into<String>) -> Violation {
    Violation {
        check,
        message: message.into(),
    }
}

fn ensure(check: &'static str, ok: bool, message: impl FnOnce() -> String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(fail(check, message()))
    }
}

/// Calls a backend and turns an unexpected error into a violation.
macro_rules! call {
    ($check:expr, $what:expr, $fut:expr) => {
        $fut.await
            .map_err(|e| fail($check, format!("{} failed: {e}", $what)))?
    };
}

/// What the checks may use on the backend under test.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// A template that exists.
    pub template: VmId,
    /// Two ids that are free (and stay free apart from the checks).
    pub free: [VmId; 2],
    /// A lab name used by no one else.
    pub lab: LabName,
    /// How long a started guest may take to become ready.
    pub ready_within: Duration,
    /// Pause between readiness probes.
    pub probe_every: Duration,
}

impl Fixture {
    /// A fixture; ready within 30 s, probing every 20 ms.
    ///
    /// # Panics
    /// On ids or a lab name that are invalid (a fixture error in the test).
    pub fn new(template: u32, free: [u32; 2], lab: &str) -> Self {
        let id = |n: u32| VmId::new(n).unwrap_or_else(|e| panic!("fixture: {e}"));
        Self {
            template: id(template),
            free: [id(free[0]), id(free[1])],
            lab: LabName::new(lab).unwrap_or_else(|e| panic!("fixture: {e}")),
            ready_within: Duration::from_secs(30),
            probe_every: Duration::from_millis(20),
        }
    }

    fn request(&self, vmid: VmId, hostname: &str) -> CloneRequest {
        CloneRequest {
            template: self.template,
            vmid,
            last_id: vmid,
            hostname: hostname.to_owned(),
            mode: CloneMode::Linked,
            lab: self.lab.clone(),
            source: None,
        }
    }
}

/// Every check a lab-engine backend must pass, in order; leaves nothing behind.
pub async fn hypervisor<H: Hypervisor + ?Sized>(hv: &H, fx: &Fixture) -> Outcome {
    capabilities_declared(hv, Capability::ALL[..5].iter().copied())?;
    inventory(hv, fx).await?;
    provisioning(hv, fx).await?;
    power_and_readiness(hv, fx).await?;
    isolation(hv, fx).await?;
    if hv.capabilities().placement {
        placement(hv, fx).await?;
    }
    Ok(())
}

/// The backend says it has what it is tested for.
pub fn capabilities_declared<B: Backend + ?Sized>(
    b: &B,
    expected: impl IntoIterator<Item = Capability>,
) -> Outcome {
    let caps = b.capabilities();
    for c in expected {
        ensure("capabilities", caps.supports(c), || {
            format!("{} does not declare {} ({caps})", b.backend(), c.name())
        })?;
    }
    Ok(())
}

/// Listing: the template is listed once, as a template; `guest` agrees with the list;
/// an id that does not exist is `NotFound`; no id is listed twice.
pub async fn inventory<H: Backend + Inventory + ?Sized>(hv: &H, fx: &Fixture) -> Outcome {
    const C: &str = "inventory";
    call!(C, "quiesce", hv.quiesce(None));
    let all = call!(C, "list_guests", hv.list_guests());
    let mut ids: Vec<u32> = all.iter().map(|g| g.vmid.get()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    ensure(C, ids.len() == n, || "an id is listed twice".into())?;
    let listed = all
        .iter()
        .find(|g| g.vmid == fx.template)
        .ok_or_else(|| fail(C, format!("template {} is not listed", fx.template)))?;
    ensure(C, listed.template, || {
        format!("{} is listed without its template flag", fx.template)
    })?;
    let one = call!(C, "guest(template)", hv.guest(fx.template));
    ensure(C, one.vmid == fx.template && one.template, || {
        format!("guest({}) answered {one:?}", fx.template)
    })?;
    for free in fx.free {
        ensure(C, !ids.contains(&free.get()), || {
            format!("fixture id {free} is taken")
        })?;
        match hv.guest(free).await {
            Err(Error::NotFound { .. }) => {}
            other => {
                return Err(fail(
                    C,
                    format!("guest({free}) of a missing id answered {other:?}, not NotFound"),
                ))
            }
        }
    }
    Ok(())
}

/// Cloning and destroying: the clone carries the lab's marks from the request on and is
/// at the requested id; an id that is taken is `AlreadyExists` and never reused; a
/// template is never destroyed; destroy is idempotent; the lab's pool goes away.
pub async fn provisioning<H: Backend + Inventory + Provisioning + ?Sized>(
    hv: &H,
    fx: &Fixture,
) -> Outcome {
    const C: &str = "provisioning";
    let lab = &fx.lab;
    call!(C, "prepare_lab", hv.prepare_lab(lab));
    call!(C, "prepare_lab (again)", hv.prepare_lab(lab));
    let [a, b] = fx.free;
    let cap = call!(
        C,
        "clone_capacity",
        hv.clone_capacity(fx.template, CloneMode::Linked)
    );
    ensure(C, cap.slots >= 1, || {
        format!("clone capacity {cap:?} has no slot")
    })?;
    let made = call!(C, "clone_guest", hv.clone_guest(fx.request(a, "conf-01")));
    let marked = |g: &crate::GuestInfo| {
        g.vmid == a
            && !g.template
            && g.pool.as_deref() == Some(lab.pool().as_str())
            && g.has_marker(lab)
            && g.name.as_deref() == Some("conf-01")
    };
    ensure(C, marked(&made), || {
        format!("the clone came back without the lab's marks (pool, marker, name): {made:?}")
    })?;
    // `guest` need not read descriptions; `lab_members` must, for guests not yet tagged.
    let read = call!(C, "guest(clone)", hv.guest(a));
    ensure(
        C,
        read.vmid == a && read.pool.as_deref() == Some(lab.pool().as_str()) && !read.template,
        || format!("the clone as read back is not in the lab's pool: {read:?}"),
    )?;
    let members = call!(C, "lab_members", hv.lab_members(lab));
    let member = members.iter().find(|g| g.vmid == a);
    ensure(
        C,
        member.is_some_and(|g| marked(g) && g.is_owned_by(lab)),
        || format!("lab_members does not list the clone {a} with the lab's marks: {member:?}"),
    )?;

    // The id is taken now: a second clone there must be refused, not reuse it.
    let before = call!(C, "list_guests", hv.list_guests()).len();
    match hv.clone_guest(fx.request(a, "conf-02")).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => {
            return Err(fail(
                C,
                format!("a clone at the taken id {a} answered {other:?}, not AlreadyExists"),
            ))
        }
    }
    let after = call!(C, "list_guests", hv.list_guests());
    let again = call!(C, "guest(clone)", hv.guest(a));
    ensure(
        C,
        after.len() == before && again.name.as_deref() == Some("conf-01"),
        || format!("the refused clone at {a} changed the cluster: {again:?}"),
    )?;
    ensure(C, !after.iter().any(|g| g.vmid == b), || {
        format!("the refused clone moved to {b} on its own")
    })?;

    // Templates are never destroyed.
    let refused = hv.destroy(fx.template).await;
    let template = call!(C, "guest(template)", hv.guest(fx.template));
    ensure(C, refused.is_err() && template.template, || {
        format!("destroy of template {} answered {refused:?}", fx.template)
    })?;

    call!(C, "destroy", hv.destroy(a));
    match hv.guest(a).await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(fail(
                C,
                format!("guest({a}) after destroy answered {other:?}"),
            ))
        }
    }
    call!(C, "destroy (gone already)", hv.destroy(a));
    call!(C, "release_lab", hv.release_lab(lab));
    let members = call!(C, "lab_members", hv.lab_members(lab));
    ensure(C, members.is_empty(), || {
        format!("lab_members after release lists {members:?}")
    })
}

/// Starting, readiness, stopping: start and stop are idempotent; a started guest becomes
/// ready with an address within the fixture's time; a stopped one reports none.
pub async fn power_and_readiness<H: Hypervisor + ?Sized>(hv: &H, fx: &Fixture) -> Outcome {
    const C: &str = "power";
    let lab = &fx.lab;
    let a = fx.free[0];
    call!(C, "prepare_lab", hv.prepare_lab(lab));
    let g = call!(C, "clone_guest", hv.clone_guest(fx.request(a, "conf-01")));
    let how = Secure {
        lab: lab.clone(),
        fresh: true,
        fence: false,
        nics: Vec::new(),
    };
    call!(C, "secure", hv.secure(g, how));
    let tagged = call!(C, "guest", hv.guest(a));
    ensure(C, tagged.is_tagged(lab) && tagged.is_owned_by(lab), || {
        format!("secure did not complete the marks: {tagged:?}")
    })?;
    call!(C, "start", hv.start(a));
    call!(C, "start (running already)", hv.start(a));
    let running = call!(C, "guest", hv.guest(a));
    ensure(C, running.status == VmStatus::Running, || {
        format!("after start the guest is {}", running.status)
    })?;
    let deadline = tokio::time::Instant::now() + fx.ready_within;
    loop {
        let p = call!(C, "probe", hv.probe(a));
        if p.ready && !p.addresses.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(fail(
                C,
                format!("not ready within {:?}: {p:?}", fx.ready_within),
            ));
        }
        tokio::time::sleep(fx.probe_every).await;
    }
    let addrs = call!(C, "addresses", hv.addresses(a));
    ensure(C, !addrs.is_empty(), || {
        "a ready guest reports no address".into()
    })?;
    call!(C, "stop", hv.stop(a));
    call!(C, "stop (stopped already)", hv.stop(a));
    let stopped = call!(C, "guest", hv.guest(a));
    ensure(C, stopped.status == VmStatus::Stopped, || {
        format!("after stop the guest is {}", stopped.status)
    })?;
    call!(C, "destroy", hv.destroy(a));
    call!(C, "release_lab", hv.release_lab(lab));
    Ok(())
}

/// The fence: a guest secured with the fence is fenced; one without is not until
/// isolated; unisolate lifts it; all of it idempotent.
pub async fn isolation<H: Hypervisor + ?Sized>(hv: &H, fx: &Fixture) -> Outcome {
    const C: &str = "isolation";
    let lab = &fx.lab;
    let [a, b] = fx.free;
    let allowed = vec![std::net::IpAddr::from([10, 10, 0, 1])];
    call!(C, "prepare_lab", hv.prepare_lab(lab));
    call!(C, "prepare_fence", hv.prepare_fence(lab, allowed.clone()));
    call!(
        C,
        "prepare_fence (again)",
        hv.prepare_fence(lab, allowed.clone())
    );
    let ga = call!(C, "clone_guest", hv.clone_guest(fx.request(a, "conf-01")));
    let gb = call!(C, "clone_guest", hv.clone_guest(fx.request(b, "conf-02")));
    let secure = |fence| Secure {
        lab: lab.clone(),
        fresh: true,
        fence,
        nics: Vec::new(),
    };
    call!(C, "secure (fence)", hv.secure(ga, secure(true)));
    call!(C, "secure (no fence)", hv.secure(gb, secure(false)));
    ensure(C, call!(C, "fenced", hv.fenced(lab, a)), || {
        format!("{a} secured with the fence is not fenced")
    })?;
    ensure(C, !call!(C, "fenced", hv.fenced(lab, b)), || {
        format!("{b} secured without the fence reports fenced")
    })?;
    call!(C, "isolate", hv.isolate(lab, vec![a, b], allowed.clone()));
    call!(C, "isolate (again)", hv.isolate(lab, vec![a, b], allowed));
    ensure(C, call!(C, "fenced", hv.fenced(lab, b)), || {
        format!("{b} is not fenced after isolate")
    })?;
    call!(C, "unisolate", hv.unisolate(lab, vec![a, b]));
    call!(C, "unisolate (again)", hv.unisolate(lab, vec![a, b]));
    for v in [a, b] {
        ensure(C, !call!(C, "fenced", hv.fenced(lab, v)), || {
            format!("{v} still fenced after unisolate")
        })?;
        call!(C, "destroy", hv.destroy(v));
    }
    call!(C, "release_lab", hv.release_lab(lab));
    Ok(())
}

/// Desktop assignment: each seat gets a machine of `pool` once; assigning again answers
/// the same machine as [`Assignment::Existing`]; no two seats share a machine;
/// `assigned` and `machines` read back what `assign` did. `seats` must hold no machine of
/// the pool yet, and the pool must have a free machine per seat.
pub async fn desktops<D: Backend + Desktops + ?Sized>(
    d: &D,
    seats: &[Seat],
    pool: &str,
) -> Outcome {
    const C: &str = "desktops";
    capabilities_declared(d, [Capability::Desktops])?;
    let mut ids = Vec::new();
    for seat in seats {
        let before = call!(C, "assigned", d.assigned(seat.clone(), pool.to_owned()));
        ensure(C, before.is_none(), || {
            format!("fixture seat {seat} holds {before:?} already")
        })?;
        let first = call!(C, "assign", d.assign(seat.clone(), pool.to_owned()));
        let Assignment::New(got) = first else {
            return Err(fail(
                C,
                format!("the first assign of {seat} answered {first:?}, not New"),
            ));
        };
        ensure(C, got.pool == pool, || {
            format!("{seat} got {} of pool {}, not of {pool}", got.id, got.pool)
        })?;
        let second = call!(C, "assign (again)", d.assign(seat.clone(), pool.to_owned()));
        ensure(
            C,
            matches!(&second, Assignment::Existing(m) if m.id == got.id),
            || {
                format!(
                    "assigning {seat} again answered {second:?}, not Existing({})",
                    got.id
                )
            },
        )?;
        let read = call!(C, "assigned", d.assigned(seat.clone(), pool.to_owned()));
        ensure(C, read.as_ref().map(|m| &m.id) == Some(&got.id), || {
            format!("assigned({seat}) answered {read:?}, not {}", got.id)
        })?;
        let all = call!(C, "machines", d.machines(seat.clone()));
        ensure(C, all.iter().any(|m| m.id == got.id), || {
            format!("machines({seat}) does not list {}", got.id)
        })?;
        ensure(C, !ids.contains(&got.id), || {
            format!("{} was handed to two seats", got.id)
        })?;
        ids.push(got.id);
    }
    Ok(())
}

/// What a backend declares unsupported answers [`Error::Unsupported`] naming itself,
/// never a different error and never a success.
pub async fn unsupported_is_typed<H: Hypervisor + Desktops + ?Sized>(
    hv: &H,
    fx: &Fixture,
) -> Outcome {
    const C: &str = "unsupported";
    let caps = hv.capabilities();
    let backend = hv.backend();
    let lab = &fx.lab;
    let a = fx.free[0];
    for cap in Capability::ALL {
        if caps.supports(cap) {
            continue;
        }
        let answers: Vec<(&str, crate::Result<()>)> = match cap {
            Capability::Inventory => vec![
                ("list_guests", hv.list_guests().await.map(drop)),
                ("guest", hv.guest(a).await.map(drop)),
                ("lab_members", hv.lab_members(lab).await.map(drop)),
            ],
            Capability::Provisioning => vec![
                ("prepare_lab", hv.prepare_lab(lab).await),
                (
                    "clone_guest",
                    hv.clone_guest(fx.request(a, "x")).await.map(drop),
                ),
                ("destroy", hv.destroy(a).await),
            ],
            Capability::Power => vec![("start", hv.start(a).await), ("stop", hv.stop(a).await)],
            Capability::Readiness => vec![
                ("probe", hv.probe(a).await.map(drop)),
                ("addresses", hv.addresses(a).await.map(drop)),
            ],
            Capability::Isolation => vec![
                ("prepare_fence", hv.prepare_fence(lab, Vec::new()).await),
                ("fenced", hv.fenced(lab, a).await.map(drop)),
                ("unisolate", hv.unisolate(lab, Vec::new()).await),
            ],
            Capability::Desktops => {
                let seat = Seat::User("conformance".into());
                vec![("assign", hv.assign(seat, "pool".into()).await.map(drop))]
            }
            // Not a part of `Hypervisor`: [`snapshots_unsupported_is_typed`] checks it on
            // backends that implement the trait.
            Capability::Snapshots => Vec::new(),
            Capability::Placement => vec![(
                "placement",
                hv.placement(fx.template, CloneMode::Linked).await.map(drop),
            )],
            Capability::Networks => vec![
                ("lab_networks", hv.lab_networks(lab).await.map(drop)),
                ("remove_networks", hv.remove_networks(lab).await.map(drop)),
            ],
        };
        for (op, answer) in answers {
            match answer {
                Err(Error::Unsupported { backend: b, .. }) if b == backend => {}
                other => {
                    return Err(fail(
                        C,
                        format!(
                            "{op} of the unsupported {} answered {other:?}, not Unsupported",
                            cap.name()
                        ),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Snapshots and links: a snapshot is listed once; the same name again is `AlreadyExists`
/// and adds nothing; links go down and up on every NIC and each NIC keeps its MAC; a link
/// already down is reported so; a guest that does not exist is `NotFound`; a rollback to
/// a missing snapshot is `NotFound`, to the latest one it works; `restore` sets the MACs
/// `identity` reads. Clones one guest
/// from the fixture's template and destroys it again.
pub async fn snapshots<H>(hv: &H, fx: &Fixture) -> Outcome
where
    H: Backend + Provisioning + Power + Snapshots + ?Sized,
{
    const C: &str = "snapshots";
    capabilities_declared(hv, [Capability::Snapshots])?;
    let missing = fx.free[1];
    match hv.snapshots(missing).await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(fail(
                C,
                format!("snapshots of the missing guest {missing} answered {other:?}"),
            ))
        }
    }
    call!(C, "prepare_lab", hv.prepare_lab(&fx.lab));
    let g = call!(
        C,
        "clone_guest",
        hv.clone_guest(fx.request(fx.free[0], "conform-snap"))
    );
    let checked = snapshot_rules(hv, g.vmid).await;
    let _ = hv.stop(g.vmid).await;
    call!(C, "destroy", hv.destroy(g.vmid));
    call!(C, "release_lab", hv.release_lab(&fx.lab));
    checked
}

async fn snapshot_rules<H>(hv: &H, vmid: VmId) -> Outcome
where
    H: Snapshots + ?Sized,
{
    const C: &str = "snapshots";
    let before = call!(C, "snapshots", hv.snapshots(vmid));
    call!(C, "snapshot", hv.snapshot(vmid, "conform1".into(), false));
    let again = hv.snapshot(vmid, "conform1".into(), false).await;
    ensure(C, matches!(again, Err(Error::AlreadyExists { .. })), || {
        format!("a second snapshot conform1 of {vmid} answered {again:?}, not AlreadyExists")
    })?;
    let after = call!(C, "snapshots", hv.snapshots(vmid));
    let named = after.iter().filter(|s| s.name == "conform1").count();
    ensure(C, named == 1 && after.len() == before.len() + 1, || {
        format!("after one snapshot conform1, {vmid} lists {after:?} (before: {before:?})")
    })?;
    let down = call!(C, "set_links down", hv.set_links(vmid, false));
    ensure(C, !down.is_empty() && down.iter().all(|n| n.down), || {
        format!("set_links down on {vmid} answered {down:?}")
    })?;
    let twice = call!(C, "set_links down again", hv.set_links(vmid, false));
    ensure(C, twice.iter().all(|n| n.was_down && n.down), || {
        format!("set_links down again on {vmid} answered {twice:?}, not every link was down")
    })?;
    let up = call!(C, "set_links up", hv.set_links(vmid, true));
    let macs = |l: &[crate::hypervisor::NicLink]| {
        l.iter()
            .map(|n| (n.net.clone(), n.mac.to_ascii_lowercase()))
            .collect::<Vec<_>>()
    };
    ensure(
        C,
        macs(&down) == macs(&up) && up.iter().all(|n| n.was_down && !n.down),
        || format!("links of {vmid} down then up changed a MAC or a state: {down:?} then {up:?}"),
    )?;
    rollback_rules(hv, vmid).await?;
    identity_rules(hv, vmid).await
}

/// A rollback to a missing snapshot is `NotFound`; to the most recent one it succeeds on
/// every storage (both reaches allow it).
async fn rollback_rules<H>(hv: &H, vmid: VmId) -> Outcome
where
    H: Snapshots + ?Sized,
{
    const C: &str = "snapshots";
    let missing = hv.rollback(vmid, "conform-none".into()).await;
    ensure(C, matches!(missing, Err(Error::NotFound { .. })), || {
        format!("a rollback of {vmid} to a missing snapshot answered {missing:?}, not NotFound")
    })?;
    call!(C, "rollback_reach", hv.rollback_reach(vmid));
    call!(C, "rollback", hv.rollback(vmid, "conform1".into()));
    Ok(())
}

/// `restore` gives the NICs the MACs it is told and keeps the rest; `identity` reads them
/// back; a NIC the guest lacks is `InvalidInput`.
async fn identity_rules<H>(hv: &H, vmid: VmId) -> Outcome
where
    H: Snapshots + ?Sized,
{
    const C: &str = "snapshots";
    let before = call!(C, "identity", hv.identity(vmid));
    ensure(C, !before.nics.is_empty(), || {
        format!("identity of {vmid} lists no NIC: {before:?}")
    })?;
    let mut other = before.clone();
    other.nics[0].mac = "52:54:00:c0:ff:ee".into();
    call!(C, "restore", hv.restore(vmid, other.clone()));
    let now = call!(C, "identity", hv.identity(vmid));
    let mac = |i: &crate::hypervisor::GuestIdentity| i.nics[0].mac.to_ascii_lowercase();
    ensure(
        C,
        now.nics.len() == before.nics.len() && mac(&now) == mac(&other),
        || format!("restore of {vmid} with MAC 52:54:00:c0:ff:ee left {now:?}"),
    )?;
    call!(C, "restore", hv.restore(vmid, before.clone()));
    let back = call!(C, "identity", hv.identity(vmid));
    ensure(C, mac(&back) == mac(&before), || {
        format!("restore of {vmid} did not give the MAC back: {back:?}, was {before:?}")
    })?;
    let mut bad = before.clone();
    bad.nics = vec![crate::hypervisor::NicLink {
        net: "net31".into(),
        mac: "52:54:00:c0:ff:ef".into(),
        was_down: false,
        down: false,
    }];
    let answer = hv.restore(vmid, bad).await;
    ensure(C, matches!(answer, Err(Error::InvalidInput { .. })), || {
        format!("restore of {vmid} naming a NIC it lacks (net31) answered {answer:?}")
    })
}

/// A backend that declares no snapshots answers [`Error::Unsupported`] naming itself.
pub async fn snapshots_unsupported_is_typed<H>(hv: &H, fx: &Fixture) -> Outcome
where
    H: Backend + Snapshots + ?Sized,
{
    const C: &str = "unsupported";
    if hv.capabilities().supports(Capability::Snapshots) {
        return Ok(());
    }
    let a = fx.free[0];
    for (op, answer) in [
        ("snapshots", hv.snapshots(a).await.map(drop)),
        (
            "snapshot",
            hv.snapshot(a, "x1".into(), false).await.map(drop),
        ),
        ("set_links", hv.set_links(a, false).await.map(drop)),
        ("rollback_reach", hv.rollback_reach(a).await.map(drop)),
        ("rollback", hv.rollback(a, "x1".into()).await.map(drop)),
        ("identity", hv.identity(a).await.map(drop)),
        (
            "restore",
            hv.restore(a, crate::hypervisor::GuestIdentity::default())
                .await,
        ),
    ] {
        match answer {
            Err(Error::Unsupported { backend, .. }) if backend == hv.backend() => {}
            other => {
                return Err(fail(
                    C,
                    format!("{op} of the unsupported snapshots answered {other:?}"),
                ))
            }
        }
    }
    Ok(())
}

// ---- Placement (issue 21) ----

/// Placement: the view names the template's own node as a source of the template itself,
/// every source's node is one of the nodes, a clone needs some memory; a clone sent to a
/// source lands on that source's node with the lab's marks. Clones one guest and destroys
/// it again.
pub async fn placement<H: Hypervisor + ?Sized>(hv: &H, fx: &Fixture) -> Outcome {
    const C: &str = "placement";
    capabilities_declared(hv, [Capability::Placement])?;
    let view = hv
        .placement(fx.template, CloneMode::Linked)
        .await
        .map_err(|e| fail(C, format!("placement of template {}: {e}", fx.template)))?;
    let t = hv
        .guest(fx.template)
        .await
        .map_err(|e| fail(C, format!("template {}: {e}", fx.template)))?;
    if !view
        .sources
        .iter()
        .any(|s| s.node == t.node && s.template == fx.template && !s.target)
    {
        return Err(fail(
            C,
            format!(
                "no source is the template {} on its node {}: {:?}",
                fx.template, t.node, view.sources
            ),
        ));
    }
    if let Some(s) = view
        .sources
        .iter()
        .find(|s| !view.nodes.iter().any(|n| n.node == s.node))
    {
        return Err(fail(C, format!("source on unknown node {}", s.node)));
    }
    if view.guest_memory == 0 || view.nodes.iter().any(|n| n.memory_total == 0) {
        return Err(fail(C, format!("memory figures missing: {view:?}")));
    }
    let Some(source) = view.sources.last().cloned() else {
        return Err(fail(C, "no source"));
    };
    hv.prepare_lab(&fx.lab)
        .await
        .map_err(|e| fail(C, format!("prepare_lab: {e}")))?;
    let mut request = fx.request(fx.free[0], "placed");
    request.source = Some(source.clone());
    let g = hv
        .clone_guest(request)
        .await
        .map_err(|e| fail(C, format!("clone to {}: {e}", source.node)))?;
    let landed = g.node.clone();
    let marked = g.ownership_problem(&fx.lab);
    hv.destroy(g.vmid)
        .await
        .map_err(|e| fail(C, format!("destroy {}: {e}", g.vmid)))?;
    hv.release_lab(&fx.lab)
        .await
        .map_err(|e| fail(C, format!("release_lab: {e}")))?;
    if landed != source.node {
        return Err(fail(
            C,
            format!("a clone sent to {} landed on {landed}", source.node),
        ));
    }
    if let Some(problem) = marked {
        return Err(fail(
            C,
            format!("a placed clone lacks its marks: {problem}"),
        ));
    }
    Ok(())
}
