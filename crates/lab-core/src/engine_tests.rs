//! Trait-level tests of the staged engine against a `mockall` mock of [`Hypervisor`],
//! wrapped in [`Timed`] so calls take (paused, virtual) time and the order and overlap of
//! steps can be checked: clone capacity per node, starts not batched, waits not limited
//! by the clone capacity, fence before start, adoption, partial failures, interrupts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use mockall::predicate::eq;

use crate::*;

fn id(n: u32) -> VmId {
    VmId::new(n).unwrap()
}

fn lab() -> LabName {
    crate::test_spec::watchdog();
    LabName::new("exam1").unwrap()
}

fn guest(vmid: u32, name: &str, status: VmStatus) -> GuestInfo {
    GuestInfo {
        vmid: id(vmid),
        name: Some(name.to_owned()),
        node: NodeName::new("pve1").unwrap(),
        kind: VmKind::Vm,
        status,
        template: false,
        pool: None,
        tags: Vec::new(),
        description: None,
    }
}

fn template() -> GuestInfo {
    GuestInfo {
        template: true,
        ..guest(9000, "debian-12-tmpl", VmStatus::Stopped)
    }
}

fn member(vmid: u32, name: &str, status: VmStatus) -> GuestInfo {
    GuestInfo {
        pool: Some("exam1".into()),
        tags: vec!["labctl.exam1".into()],
        ..guest(vmid, name, status)
    }
}

fn spec(count: u32) -> LabSpec {
    let mut s = LabSpec::new(lab(), id(9000), count).unwrap();
    s.hostname = "exam-{n:02}".parse().unwrap();
    s.ids = "5000-5009".parse().unwrap();
    s.teachers = vec!["10.10.0.1".parse().unwrap()];
    s.concurrency = 2;
    s
}

fn ip_of(vmid: VmId) -> IpAddr {
    format!("10.10.1.{}", vmid.get() - 4990).parse().unwrap()
}

#[test]
fn plan_skips_used_ids_and_keeps_existing_students() {
    let current = vec![
        template(),
        guest(5000, "someone-else", VmStatus::Running),
        member(5001, "exam-02", VmStatus::Running),
        member(5003, "exam-03", VmStatus::Stopped),
        member(5004, "old-name", VmStatus::Stopped),
        // Same name, but not the lab's: must not be adopted.
        guest(5005, "exam-01", VmStatus::Running),
    ];
    let p = plan(&spec(4), &current).unwrap();
    let got: Vec<(&str, u32, StudentAction)> = p
        .students
        .iter()
        .map(|s| (s.hostname.as_str(), s.vmid.get(), s.action))
        .collect();
    assert_eq!(
        got,
        [
            ("exam-01", 5002, StudentAction::Create),
            ("exam-02", 5001, StudentAction::Keep),
            ("exam-03", 5003, StudentAction::Start),
            ("exam-04", 5006, StudentAction::Create),
        ]
    );
    let numbers: Vec<u32> = p.students.iter().map(|s| s.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4], "students are numbered from 1");
    assert_eq!(p.creates(), 2);
    assert_eq!(p.extra.len(), 1);
    assert_eq!(p.extra[0].vmid, id(5004));
    // The dry run says, per student, the action and what it means, in columns.
    let text = p.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("4 students from template 9000 (linked clones)"),
        "{text}"
    );
    let row = |i: usize, action: &str, vmid: &str, name: &str, what: &str| {
        let l = lines[i];
        assert!(
            l.starts_with(&format!("  {action:<7} vm {vmid:<6} {name:<20} {what}")),
            "line {i}: {l:?}\n{text}"
        );
    };
    row(1, "create", "5002", "exam-01", "clone, mark, fence, start");
    row(2, "keep", "5001", "exam-02", "exists (running)");
    row(3, "start", "5003", "exam-03", "exists (stopped)");
    row(4, "create", "5006", "exam-04", "clone, mark, fence, start");
    row(
        5,
        "ignore",
        "5004",
        "old-name",
        "lab guest not in the spec, left alone",
    );
    assert_eq!(
        lines[6],
        "  fence: students reach only 10.10.0.1 and not each other"
    );
    let mut open = spec(1);
    open.teachers.clear();
    let text = plan(&open, &[template()]).unwrap().to_string();
    assert!(text.contains("fence: not put up or changed"), "{text}");
}

#[test]
fn plan_refuses_missing_or_non_template_source() {
    let e = plan(&spec(1), &[]).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let not_tmpl = guest(9000, "debian", VmStatus::Stopped);
    let e = plan(&spec(1), &[not_tmpl]).unwrap_err().to_string();
    assert!(e.contains("not a template"), "{e}");
}

#[test]
fn plan_reports_too_few_free_ids() {
    let mut s = spec(3);
    s.ids = "5000-5002".parse().unwrap();
    let current = vec![template(), guest(5001, "x", VmStatus::Running)];
    let e = plan(&s, &current).unwrap_err().to_string();
    assert!(
        e.contains("id range") && e.contains("not enough free ids"),
        "{e}"
    );
}

/// What happened when, as the [`Timed`] wrapper saw it.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Capacity,
    CloneBegin(String),
    CloneEnd(u32),
    PrepareFence,
    Secure { vmid: u32, fresh: bool, fence: bool },
    Start(u32),
    Probe(u32),
}

/// A [`MockHypervisor`] whose clones, starts and boots take virtual time: clone
/// `clone_time`, start `start_time`; a started guest answers its first address
/// `boot_time` after its start. Records every call with its instant.
struct Timed {
    mock: MockHypervisor,
    clone_time: Duration,
    start_time: Duration,
    boot_time: Duration,
    log: Mutex<Vec<(Instant, Call)>>,
    /// The first `secure` of this guest fails with a transient error.
    fail_secure_once: Mutex<Option<u32>>,
    started: Mutex<std::collections::HashMap<u32, Instant>>,
    cloning: Mutex<(usize, usize)>,
}

impl Timed {
    fn new(mock: MockHypervisor) -> Self {
        Self {
            mock,
            clone_time: Duration::from_secs(2),
            start_time: Duration::from_secs(2),
            boot_time: Duration::from_secs(20),
            log: Mutex::new(Vec::new()),
            fail_secure_once: Mutex::new(None),
            started: Mutex::new(Default::default()),
            cloning: Mutex::new((0, 0)),
        }
    }

    fn note(&self, c: Call) {
        self.log.lock().unwrap().push((Instant::now(), c));
    }

    fn calls(&self) -> Vec<(Instant, Call)> {
        self.log.lock().unwrap().clone()
    }

    fn peak_clones(&self) -> usize {
        self.cloning.lock().unwrap().1
    }
}

impl Backend for Timed {
    fn backend(&self) -> &'static str {
        "timed"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::HYPERVISOR
    }
}

#[async_trait]
impl Inventory for Timed {
    async fn quiesce(&self, t: Option<VmId>) -> Result<()> {
        self.mock.quiesce(t).await
    }
    async fn list_guests(&self) -> Result<Vec<GuestInfo>> {
        self.mock.list_guests().await
    }
    async fn guest(&self, vmid: VmId) -> Result<GuestInfo> {
        self.mock.guest(vmid).await
    }
    async fn lab_members(&self, l: &LabName) -> Result<Vec<GuestInfo>> {
        self.mock.lab_members(l).await
    }
}

/// No placement: the engine clones where the template is.
#[async_trait]
impl crate::Placement for Timed {}
impl crate::Networks for Timed {}

#[async_trait]
impl Provisioning for Timed {
    async fn prepare_lab(&self, lab: &LabName) -> Result<()> {
        self.mock.prepare_lab(lab).await
    }
    async fn clone_capacity(&self, t: VmId, m: CloneMode) -> Result<CloneCapacity> {
        self.note(Call::Capacity);
        self.mock.clone_capacity(t, m).await
    }
    async fn clone_guest(&self, request: CloneRequest) -> Result<GuestInfo> {
        self.note(Call::CloneBegin(request.hostname.clone()));
        {
            let mut c = self.cloning.lock().unwrap();
            c.0 += 1;
            c.1 = c.1.max(c.0);
        }
        tokio::time::sleep(self.clone_time).await;
        self.cloning.lock().unwrap().0 -= 1;
        let r = self.mock.clone_guest(request).await;
        if let Ok(g) = &r {
            self.note(Call::CloneEnd(g.vmid.get()));
        }
        r
    }
    async fn destroy(&self, v: VmId) -> Result<()> {
        self.mock.destroy(v).await
    }
    async fn release_lab(&self, l: &LabName) -> Result<()> {
        self.mock.release_lab(l).await
    }
}

#[async_trait]
impl Power for Timed {
    async fn start(&self, vmid: VmId) -> Result<()> {
        self.note(Call::Start(vmid.get()));
        tokio::time::sleep(self.start_time).await;
        let r = self.mock.start(vmid).await;
        if r.is_ok() {
            self.started
                .lock()
                .unwrap()
                .insert(vmid.get(), Instant::now());
        }
        r
    }
    async fn stop(&self, v: VmId) -> Result<()> {
        self.mock.stop(v).await
    }
}

#[async_trait]
impl Readiness for Timed {
    async fn probe(&self, vmid: VmId) -> Result<Probe> {
        self.note(Call::Probe(vmid.get()));
        self.mock.probe(vmid).await?;
        let up = self
            .started
            .lock()
            .unwrap()
            .get(&vmid.get())
            .is_some_and(|t| t.elapsed() + self.start_time >= self.boot_time);
        Ok(Probe {
            ready: up,
            addresses: if up { vec![ip_of(vmid)] } else { Vec::new() },
        })
    }
    async fn addresses(&self, vmid: VmId) -> Result<Vec<IpAddr>> {
        self.mock.addresses(vmid).await
    }
}

#[async_trait]
impl Fencing for Timed {
    async fn prepare_fence(&self, lab: &LabName, allowed: Vec<IpAddr>) -> Result<()> {
        self.note(Call::PrepareFence);
        self.mock.prepare_fence(lab, allowed).await
    }
    async fn secure(&self, guest: GuestInfo, how: Secure) -> Result<()> {
        self.note(Call::Secure {
            vmid: guest.vmid.get(),
            fresh: how.fresh,
            fence: how.fence,
        });
        let fail = {
            let mut once = self.fail_secure_once.lock().unwrap();
            once.take_if(|v| *v == guest.vmid.get()).is_some()
        };
        if fail {
            return Err(Error::Busy {
                what: format!("VM {}", guest.vmid),
                message: "connection closed before message completed".into(),
            });
        }
        self.mock.secure(guest, how).await
    }
    async fn isolate(&self, l: &LabName, s: Vec<VmId>, a: Vec<IpAddr>) -> Result<()> {
        self.mock.isolate(l, s, a).await
    }
    async fn unisolate(&self, l: &LabName, s: Vec<VmId>) -> Result<()> {
        self.mock.unisolate(l, s).await
    }
    async fn fenced(&self, l: &LabName, v: VmId) -> Result<bool> {
        self.mock.fenced(l, v).await
    }
}

/// A freshly cloned guest as the backend answers it: pool and marker, no tag yet.
fn fresh(vmid: u32, name: &str) -> GuestInfo {
    GuestInfo {
        pool: Some("exam1".into()),
        description: Some(lab().marker(name)),
        ..guest(vmid, name, VmStatus::Stopped)
    }
}

/// A mock in which every clone succeeds at the requested id, marked as the lab's; the
/// cluster holds `existing` besides the template; clones of `fail_clone_of` fail for good.
fn mock_with(
    existing: Vec<GuestInfo>,
    slots: usize,
    fail_clone_of: Option<&'static str>,
) -> MockHypervisor {
    mock_recording(existing, slots, fail_clone_of, Arc::default())
}

/// [`mock_with`], recording the host name of every clone request in `cloned`.
fn mock_recording(
    existing: Vec<GuestInfo>,
    slots: usize,
    fail_clone_of: Option<&'static str>,
    cloned: Arc<Mutex<Vec<String>>>,
) -> MockHypervisor {
    let mut hv = mock_base(existing.clone(), slots, 0);
    hv.expect_clone_guest().returning(move |req| {
        assert_eq!(req.template, id(9000));
        assert_eq!(req.lab, lab());
        cloned.lock().unwrap().push(req.hostname.clone());
        if Some(req.hostname.as_str()) == fail_clone_of {
            return Err(Error::backend(
                "mock",
                std::io::Error::other("clone failed: no space left on device"),
            ));
        }
        Ok(fresh(req.vmid.get(), &req.hostname))
    });
    hv.expect_guest().returning(move |v| {
        existing
            .iter()
            .find(|g| g.vmid == v)
            .cloned()
            .ok_or(Error::NotFound {
                what: format!("VM {v}"),
            })
    });
    hv
}

/// [`mock_with`] without any expectation on `clone_guest` or `guest`; the backend declares `slots`
/// clone slots and a queue of `queue`.
fn mock_base(existing: Vec<GuestInfo>, slots: usize, queue: usize) -> MockHypervisor {
    let mut hv = MockHypervisor::new();
    hv.expect_quiesce()
        .with(eq(Some(id(9000))))
        .returning(|_| Ok(()));
    let listed = existing.clone();
    hv.expect_list_guests().returning(move || {
        let mut all = vec![template()];
        all.extend(listed.clone());
        Ok(all)
    });
    let members = existing.clone();
    hv.expect_lab_members()
        .returning(move |_| Ok(members.clone()));
    hv.expect_prepare_lab()
        .with(eq(lab()))
        .times(1)
        .returning(|_| Ok(()));
    hv.expect_clone_capacity().returning(move |_, _| {
        Ok(CloneCapacity {
            key: "pve1/local-lvm".into(),
            slots,
            queue,
        })
    });
    hv.expect_prepare_fence()
        .withf(|l, a| *l == lab() && a == &["10.10.0.1".parse::<IpAddr>().unwrap()])
        .times(1)
        .returning(|_, _| Ok(()));
    hv.expect_secure().returning(|_, _| Ok(()));
    hv.expect_start().returning(|_| Ok(()));
    hv.expect_probe().returning(|_| Ok(Probe::default()));
    hv
}

/// Runs `f` under an hour of (paused, so instant) time: an engine that waits forever
/// (on a clone slot that never frees, a fence that never comes) fails here, naming what it
/// was doing, instead of hanging the test run.
async fn within_an_hour<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    crate::test_spec::guarded(what, Duration::from_secs(3600), f).await
}

fn spec_n(count: u32) -> LabSpec {
    let mut s = spec(count);
    s.ids = "5000-5099".parse().unwrap();
    s
}

#[tokio::test(start_paused = true)]
async fn clones_keep_to_the_declared_capacity_and_starts_are_not_batched() {
    let hv = Timed::new(mock_with(Vec::new(), 3, None));
    let t0 = Instant::now();
    let report = within_an_hour(
        "up of 10 students with 3 clone slots",
        apply(&hv, &spec_n(10), &no_progress),
    )
    .await
    .unwrap();
    assert_eq!(report.students.len(), 10);
    assert!(report
        .students
        .iter()
        .all(|s| s.primary_address().is_some()));
    assert_eq!(
        hv.peak_clones(),
        3,
        "the capacity is used, and never exceeded"
    );
    let calls = hv.calls();
    // Student 1's start comes right after its own clone, long before the last clone ends.
    let start_1 = calls
        .iter()
        .find(|(_, c)| *c == Call::Start(5000))
        .map(|(t, _)| *t)
        .unwrap();
    let last_clone_end = calls
        .iter()
        .filter(|(_, c)| matches!(c, Call::CloneEnd(_)))
        .map(|(t, _)| *t)
        .max()
        .unwrap();
    assert!(start_1 - t0 <= Duration::from_secs(3), "{:?}", start_1 - t0);
    assert!(start_1 < last_clone_end);
    // The whole lab within the bound: ceil(10/3)·2 + 2 + boot, plus the probe schedule's
    // learning (virtual time, so this is exact arithmetic, not a wall-time assertion).
    let bound = Duration::from_secs(4 * 2 + 20);
    let took = Instant::now() - t0;
    assert!(took <= bound + bound / 5, "took {took:?}, bound {bound:?}");
}

#[tokio::test(start_paused = true)]
async fn the_backends_clone_queue_adds_to_its_slots() {
    let mut m = mock_base(Vec::new(), 2, 1);
    m.expect_clone_guest()
        .returning(|req| Ok(fresh(req.vmid.get(), &req.hostname)));
    let hv = Timed::new(m);
    within_an_hour(
        "up of 6 students with 2 slots and a queue of 1",
        apply(&hv, &spec_n(6), &no_progress),
    )
    .await
    .unwrap();
    assert_eq!(hv.peak_clones(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_repeated_secure_does_not_trust_the_fresh_clone_any_more() {
    let hv = Timed::new(mock_with(Vec::new(), 3, None));
    // The first try may have half-changed vm 5001 before its connection dropped.
    *hv.fail_secure_once.lock().unwrap() = Some(5001);
    within_an_hour("up of 2 students", apply(&hv, &spec_n(2), &no_progress))
        .await
        .unwrap();
    let secures: Vec<(u32, bool)> = hv
        .calls()
        .iter()
        .filter_map(|(_, c)| match c {
            Call::Secure { vmid, fresh, .. } => Some((*vmid, *fresh)),
            _ => None,
        })
        .collect();
    assert_eq!(
        secures
            .iter()
            .filter(|(v, _)| *v == 5001)
            .collect::<Vec<_>>(),
        [&(5001, true), &(5001, false)],
        "{secures:?}"
    );
    assert_eq!(
        secures
            .iter()
            .filter(|(v, _)| *v == 5000)
            .collect::<Vec<_>>(),
        [&(5000, true)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_after_a_step_ran_its_long_limit_is_final() {
    let mut m = mock_base(Vec::new(), 3, 0);
    let tries = Arc::new(Mutex::new(0u32));
    let t = tries.clone();
    m.expect_clone_guest().returning(move |_| {
        *t.lock().unwrap() += 1;
        Err(Error::Busy {
            what: "storage".into(),
            message: "got timeout".into(),
        })
    });
    let mut hv = Timed::new(m);
    let s = spec_n(1);
    // The clone took exactly the long-step limit before it failed.
    hv.clone_time = s.timeouts.retry.long_step;
    let e = within_an_hour("up of 1 student", apply(&hv, &s, &no_progress))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Incomplete { .. }), "{e}");
    assert_eq!(*tries.lock().unwrap(), 1, "not repeated");
}

#[tokio::test(start_paused = true)]
async fn waits_hold_no_clone_slot() {
    let hv = Timed::new(mock_with(Vec::new(), 1, None));
    apply(&hv, &spec_n(6), &no_progress).await.unwrap();
    let calls = hv.calls();
    // With one clone slot, clone 6 begins while earlier students are still booting: their
    // waits did not hold the slot.
    let clone_6 = calls
        .iter()
        .find(|(_, c)| *c == Call::CloneBegin("exam-06".into()))
        .map(|(t, _)| *t)
        .unwrap();
    let first_ready = calls
        .iter()
        .filter(|(_, c)| matches!(c, Call::Probe(_)))
        .map(|(t, _)| *t)
        .min()
        .unwrap();
    assert!(clone_6 < first_ready + Duration::from_secs(20));
    assert_eq!(hv.peak_clones(), 1);
}

#[tokio::test(start_paused = true)]
async fn every_student_is_fenced_before_it_starts() {
    let hv = Timed::new(mock_with(Vec::new(), 3, None));
    apply(&hv, &spec_n(5), &no_progress).await.unwrap();
    let calls = hv.calls();
    let pos = |want: &Call| calls.iter().position(|(_, c)| c == want).unwrap();
    let fence = pos(&Call::PrepareFence);
    for v in 5000..5005 {
        let secure = calls
            .iter()
            .position(
                |(_, c)| matches!(c, Call::Secure { vmid, fence: true, fresh: true } if *vmid == v),
            )
            .unwrap_or_else(|| panic!("vm {v} secured fresh with its fence: {calls:?}"));
        let start = pos(&Call::Start(v));
        assert!(fence < secure && secure < start, "vm {v}: {calls:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn marked_but_unfinished_guests_are_adopted_not_cloned_again() {
    // A run died after cloning exam-02 (pool and marker, no tag) and after securing
    // exam-03 (tagged, stopped).
    let half = fresh(5001, "exam-02");
    let secured = GuestInfo {
        tags: vec!["labctl.exam1".into()],
        ..fresh(5002, "exam-03")
    };
    // Someone else's guest with the same name, no marks: never adopted.
    let stranger = guest(5003, "exam-01", VmStatus::Running);
    let cloned = Arc::new(Mutex::new(Vec::new()));
    let hv = mock_recording(vec![half, secured, stranger], 3, None, cloned.clone());
    let hv = Timed::new(hv);
    let report = apply(&hv, &spec_n(3), &no_progress).await.unwrap();
    assert_eq!(*cloned.lock().unwrap(), ["exam-01"]);
    let ids: Vec<u32> = report.students.iter().map(|s| s.vmid.get()).collect();
    // exam-01 is cloned anew (the stranger is not the lab's); 02 and 03 are adopted.
    assert_eq!(ids[1..], [5001, 5002]);
    assert_ne!(ids[0], 5003);
    let calls = hv.calls();
    for v in [5001, 5002] {
        assert!(
            calls.iter().any(|(_, c)| *c
                == Call::Secure {
                    vmid: v,
                    fresh: false,
                    fence: true
                }),
            "vm {v} completed through the full (reading) path: {calls:?}"
        );
        assert!(calls.iter().any(|(_, c)| *c == Call::Start(v)));
    }
}

#[tokio::test(start_paused = true)]
async fn a_student_whose_id_was_taken_meanwhile_moves_to_the_lowest_spare_id() {
    let mut m = mock_base(Vec::new(), 3, 0);
    // Someone took 5001 between the plan and exam-02's clone.
    let tried = Arc::new(Mutex::new(Vec::new()));
    let t = tried.clone();
    m.expect_clone_guest().returning(move |req| {
        t.lock()
            .unwrap()
            .push((req.hostname.clone(), req.vmid.get()));
        if req.vmid == id(5001) {
            return Err(Error::AlreadyExists {
                what: "VM 5001".into(),
            });
        }
        Ok(fresh(req.vmid.get(), &req.hostname))
    });
    let hv = Timed::new(m);
    let report = within_an_hour(
        "up with an id taken meanwhile",
        apply(&hv, &spec_n(3), &no_progress),
    )
    .await
    .unwrap();
    let ids: Vec<(String, u32)> = report
        .students
        .iter()
        .map(|s| (s.hostname.clone(), s.vmid.get()))
        .collect();
    // Not 5000 or 5002 (planned for the others), and not the template.
    assert_eq!(
        ids,
        [
            ("exam-01".to_owned(), 5000),
            ("exam-02".to_owned(), 5003),
            ("exam-03".to_owned(), 5002)
        ]
    );
    let mut tried = tried.lock().unwrap().clone();
    tried.sort();
    assert_eq!(
        tried,
        [
            ("exam-01".to_owned(), 5000),
            ("exam-02".to_owned(), 5001),
            ("exam-02".to_owned(), 5003),
            ("exam-03".to_owned(), 5002)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lab_wide_fence_that_cannot_be_put_up_starts_nobody_and_names_who_waits() {
    let mut m = MockHypervisor::new();
    m.expect_quiesce().returning(|_| Ok(()));
    m.expect_list_guests().returning(|| Ok(vec![template()]));
    m.expect_lab_members().returning(|_| Ok(Vec::new()));
    m.expect_prepare_lab().returning(|_| Ok(()));
    m.expect_clone_capacity().returning(|_, _| {
        Ok(CloneCapacity {
            key: "pve1/local-lvm".into(),
            slots: 3,
            queue: 0,
        })
    });
    m.expect_clone_guest()
        .returning(|req| Ok(fresh(req.vmid.get(), &req.hostname)));
    m.expect_secure().returning(|_, _| Ok(()));
    m.expect_prepare_fence().times(1).returning(|_, _| {
        Err(Error::backend(
            "mock",
            std::io::Error::other("ipset: permission denied"),
        ))
    });
    m.expect_start().never();
    let hv = Timed::new(m);
    let e = within_an_hour(
        "up whose lab-wide fence fails",
        apply(&hv, &spec_n(4), &no_progress),
    )
    .await
    .unwrap_err();
    let Error::Incomplete { failures, .. } = &e else {
        panic!("{e}")
    };
    // One failure, the fence's, said once with everyone it held back.
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].subject, "fence");
    let m = &failures[0].message;
    assert!(
        m.starts_with("the lab-wide fence could not be put up: ")
            && m.contains("ipset: permission denied")
            && m.contains(
                "so 4 student(s) were cloned and marked but not started \
                 (exam-01, exam-02, exam-03 and 1 more); run the same command again"
            ),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_after_every_student_is_ready_still_reports_the_lab_up() {
    let hv = Timed::new(mock_with(Vec::new(), 3, None));
    let interrupt = Interrupt::new();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = |e: Event| {
        if matches!(e, Event::Done { .. })
            && done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 3
        {
            interrupt.trigger();
        }
    };
    let report = within_an_hour(
        "up interrupted after every student is ready",
        apply_with(&hv, &spec_n(3), &progress, &interrupt),
    )
    .await
    .unwrap();
    assert!(
        interrupt.is_triggered(),
        "the interrupt came during the run"
    );
    assert_eq!(report.students.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_lab_with_every_student_present_reads_no_clone_capacity() {
    let existing: Vec<GuestInfo> = (0..3)
        .map(|i| member(5000 + i, &format!("exam-{:02}", i + 1), VmStatus::Stopped))
        .collect();
    let hv = Timed::new(mock_with(existing, 3, None));
    let report = within_an_hour(
        "up with every student present",
        apply(&hv, &spec_n(3), &no_progress),
    )
    .await
    .unwrap();
    assert_eq!(report.students.len(), 3);
    let calls = hv.calls();
    assert!(
        !calls
            .iter()
            .any(|(_, c)| matches!(c, Call::Capacity | Call::CloneBegin(_))),
        "nothing to clone, so no capacity read: {calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|(_, c)| matches!(c, Call::Start(_)))
            .count(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn nodes_named_in_the_spec_are_refused_by_a_backend_without_placement() {
    // Only the survey is expected: any other call (a clone, the pool) fails the test.
    let mut m = MockHypervisor::new();
    m.expect_quiesce().returning(|_| Ok(()));
    m.expect_list_guests().returning(|| Ok(vec![template()]));
    m.expect_lab_members().returning(|_| Ok(Vec::new()));
    let hv = Timed::new(m);
    let mut s = spec_n(2);
    s.nodes = vec![NodeName::new("pve2").unwrap()];
    let e = within_an_hour("up naming nodes", apply(&hv, &s, &no_progress))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let calls = hv.calls();
    assert!(
        !calls
            .iter()
            .any(|(_, c)| matches!(c, Call::Capacity | Call::CloneBegin(_))),
        "the nodes asked for cannot be honoured, so nothing is cloned: {calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_built_student_is_adopted_though_its_fresh_read_carries_no_marks() {
    // Cloned by a run that died: the listing shows its pool and marker, but a fresh read
    // of the guest (like PVE's config) carries neither.
    let half = fresh(5001, "exam-02");
    let mut m = mock_base(vec![half.clone()], 3, 0);
    m.expect_clone_guest()
        .returning(|req| Ok(fresh(req.vmid.get(), &req.hostname)));
    m.expect_guest().returning(move |v| {
        if v == half.vmid {
            Ok(GuestInfo {
                pool: None,
                description: None,
                ..half.clone()
            })
        } else {
            Err(Error::NotFound {
                what: format!("VM {v}"),
            })
        }
    });
    let hv = Timed::new(m);
    let report = within_an_hour("up of 2 students", apply(&hv, &spec_n(2), &no_progress))
        .await
        .unwrap();
    let ids: Vec<u32> = report.students.iter().map(|s| s.vmid.get()).collect();
    assert_eq!(ids, [5000, 5001]);
}

#[tokio::test(start_paused = true)]
async fn progress_says_each_students_steps_in_order_then_done() {
    let hv = Timed::new(mock_with(Vec::new(), 3, None));
    let events = Mutex::new(Vec::new());
    let progress = |e: Event| events.lock().unwrap().push(e);
    within_an_hour("up of 2 students", apply(&hv, &spec_n(2), &progress))
        .await
        .unwrap();
    let events = events.into_inner().unwrap();
    let of = |who: &str| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Step { subject, step } if subject == who => Some(step.to_string()),
                Event::Done { subject, summary } if subject == who => {
                    Some(format!("done: {summary}"))
                }
                _ => None,
            })
            .collect()
    };
    let steps = |last: &str| {
        [
            "cloning",
            "fencing",
            "starting",
            "waiting for guest agent",
            "waiting for address",
            last,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    assert_eq!(of("exam-01"), steps("done: vm 5000 on pve1, 10.10.1.10"));
    assert_eq!(of("exam-02"), steps("done: vm 5001 on pve1, 10.10.1.11"));
    assert!(
        matches!(&events[0], Event::Begin { operation: "up", subjects } if subjects.len() == 2)
    );
}

/// Probes per guest when `running` students already run (booted long ago), `stopped`
/// exist stopped and the rest of `total` are cloned now; and the run's (virtual) time.
async fn probes_with(running: u32, stopped: u32, total: u32) -> (Vec<(u32, usize)>, Duration) {
    let existing: Vec<GuestInfo> = (0..running + stopped)
        .map(|i| {
            let status = if i < running {
                VmStatus::Running
            } else {
                VmStatus::Stopped
            };
            member(5000 + i, &format!("exam-{:02}", i + 1), status)
        })
        .collect();
    let hv = Timed::new(mock_with(existing, 3, None));
    {
        let booted = Instant::now() - Duration::from_secs(600);
        let mut started = hv.started.lock().unwrap();
        for i in 0..running {
            started.insert(5000 + i, booted);
        }
    }
    let t0 = Instant::now();
    within_an_hour(
        "up with running, stopped and new students",
        apply(&hv, &spec_n(total), &no_progress),
    )
    .await
    .unwrap();
    let took = Instant::now() - t0;
    let mut per: BTreeMap<u32, usize> = BTreeMap::new();
    for (_, c) in hv.calls() {
        if let Call::Probe(v) = c {
            *per.entry(v).or_default() += 1;
        }
    }
    (per.into_iter().collect(), took)
}

#[tokio::test(start_paused = true)]
async fn students_already_running_are_probed_once_at_once() {
    let (probes, took) = probes_with(3, 0, 3).await;
    assert_eq!(probes, [(5000, 1), (5001, 1), (5002, 1)]);
    assert_eq!(took, Duration::ZERO, "nothing to wait for");
}

#[tokio::test(start_paused = true)]
async fn a_student_started_just_before_a_crash_is_looked_at_with_growing_gaps_until_it_answers() {
    // `lab up` is run again 2 s after the last run started exam-01, whose agent needs 16 s
    // more: it is looked at at once, then at growing gaps (½ s, then ×1.5, never past the
    // 10 s boot hint), and seen within one gap of answering; no busy loop.
    let hv = Timed::new(mock_with(
        vec![member(5000, "exam-01", VmStatus::Running)],
        3,
        None,
    ));
    let t0 = Instant::now();
    hv.started
        .lock()
        .unwrap()
        .insert(5000, t0 - Duration::from_secs(2));
    let report = within_an_hour(
        "up with a student still booting",
        apply(&hv, &spec_n(1), &no_progress),
    )
    .await
    .unwrap();
    assert_eq!(report.students.len(), 1);
    let looks: Vec<Duration> = hv
        .calls()
        .into_iter()
        .filter(|(_, c)| matches!(c, Call::Probe(5000)))
        .map(|(at, _)| at - t0)
        .collect();
    let ms: Vec<u128> = looks.iter().map(Duration::as_millis).collect();
    assert_eq!(ms[0], 0, "looked at at once: {ms:?}");
    let gaps: Vec<u128> = ms.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps[0], 500, "{ms:?}");
    assert!(
        gaps.windows(2).all(|g| g[1] > g[0] && g[1] <= 10_000),
        "gaps grow up to the boot hint: {ms:?}"
    );
    let answered = 16_000;
    let last = *ms.last().unwrap();
    assert!(
        last >= answered && last - answered <= *gaps.last().unwrap(),
        "seen within one gap of answering at 16 s: {ms:?}"
    );
    assert_eq!(looks.len(), 8, "{ms:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_student_started_now_is_probed_like_a_new_clone() {
    let (started, _) = probes_with(0, 2, 2).await;
    let (cloned, _) = probes_with(0, 0, 2).await;
    let counts = |p: &[(u32, usize)]| p.iter().map(|(_, n)| *n).collect::<Vec<_>>();
    assert_eq!(counts(&started), counts(&cloned));
}

#[tokio::test(start_paused = true)]
async fn students_already_running_do_not_teach_the_schedule_of_the_new_ones() {
    // Six new students, alone or next to two that already ran: the new ones are probed
    // the same, since a guest that answered at once says nothing about boot times.
    let (alone, _) = probes_with(0, 0, 6).await;
    let (mixed, _) = probes_with(2, 0, 8).await;
    let new_alone: Vec<usize> = alone.iter().map(|(_, n)| *n).collect();
    let new_mixed: Vec<usize> = mixed.iter().skip(2).map(|(_, n)| *n).collect();
    assert_eq!(new_mixed, new_alone);
}

#[tokio::test(start_paused = true)]
async fn a_failed_student_is_reported_with_its_step_and_the_others_come_up() {
    let hv = Timed::new(mock_with(Vec::new(), 3, Some("exam-02")));
    let e = apply(&hv, &spec_n(4), &no_progress).await.unwrap_err();
    let Error::Incomplete { failures, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].subject, "exam-02");
    assert!(
        failures[0].message.starts_with("cloning:") && failures[0].message.contains("no space"),
        "{failures:?}"
    );
    // The three others were started and probed.
    let starts = hv
        .calls()
        .iter()
        .filter(|(_, c)| matches!(c, Call::Start(_)))
        .count();
    assert_eq!(starts, 3);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_use_the_guests_own_budget() {
    let tries = Arc::new(Mutex::new(0u32));
    let t = tries.clone();
    // exam-01's start is refused as busy three times, then succeeds.
    let mut hv = MockHypervisor::new();
    hv.expect_quiesce().returning(|_| Ok(()));
    hv.expect_list_guests().returning(|| Ok(vec![template()]));
    hv.expect_lab_members().returning(|_| Ok(Vec::new()));
    hv.expect_prepare_lab().returning(|_| Ok(()));
    hv.expect_clone_capacity().returning(|_, _| {
        Ok(CloneCapacity {
            key: "k".into(),
            slots: 3,
            queue: 0,
        })
    });
    hv.expect_clone_guest()
        .returning(|req| Ok(fresh(req.vmid.get(), &req.hostname)));
    hv.expect_prepare_fence().returning(|_, _| Ok(()));
    hv.expect_secure().returning(|_, _| Ok(()));
    hv.expect_start().returning(move |v| {
        let mut n = t.lock().unwrap();
        if v == id(5000) && *n < 3 {
            *n += 1;
            return Err(Error::Busy {
                what: "VM 5000".into(),
                message: "VM is locked (backup)".into(),
            });
        }
        Ok(())
    });
    hv.expect_probe().returning(|_| Ok(Probe::default()));
    let hv = Timed::new(hv);
    let report = apply(&hv, &spec_n(2), &no_progress).await.unwrap();
    assert_eq!(report.students.len(), 2);
    assert_eq!(*tries.lock().unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_starts_nothing_new_and_says_where_each_student_stands() {
    let hv = Timed::new(mock_with(Vec::new(), 1, None));
    let interrupt = Interrupt::new();
    let i = interrupt.clone();
    // Interrupt while the second clone runs (clones take 2 s, one at a time).
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        i.trigger();
    });
    let e = apply_with(&hv, &spec_n(4), &no_progress, &interrupt)
        .await
        .unwrap_err();
    let Error::Interrupted {
        finished,
        unfinished,
        total,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*total, 4);
    assert!(finished.is_empty(), "{finished:?}");
    assert_eq!(unfinished.len(), 4, "{unfinished:?}");
    let msg = |h: &str| {
        unfinished
            .iter()
            .find(|f| f.subject == h)
            .map(|f| f.message.clone())
            .unwrap()
    };
    // The clone in flight settled and is marked; nothing later was cloned.
    assert!(
        msg("exam-02").contains("cloned and marked, not started"),
        "{}",
        msg("exam-02")
    );
    assert_eq!(msg("exam-04"), "not cloned");
    let calls = hv.calls();
    assert!(!calls
        .iter()
        .any(|(_, c)| *c == Call::CloneBegin("exam-03".into())));
    assert!(!calls.iter().any(|(_, c)| *c == Call::Start(5001)));
    assert!(e.to_string().contains("run it again to resume"), "{e}");
}

fn teardown_mock(members: Vec<GuestInfo>) -> MockHypervisor {
    let mut hv = MockHypervisor::new();
    hv.expect_lab_networks().returning(|_| Ok(Vec::new()));
    hv.expect_quiesce().with(eq(None)).returning(|_| Ok(()));
    let listed = members.clone();
    hv.expect_lab_members()
        .with(eq(lab()))
        .returning(move |_| Ok(listed.clone()));
    hv.expect_guest().returning(move |v| {
        members
            .iter()
            .find(|g| g.vmid == v)
            // A fresh read carries neither pool nor description.
            .map(|g| GuestInfo {
                pool: None,
                description: None,
                ..g.clone()
            })
            .ok_or(Error::NotFound {
                what: format!("VM {v}"),
            })
    });
    hv
}

#[tokio::test]
async fn teardown_destroys_only_owned_guests_then_lifts_the_fence() {
    let in_pool_unmarked = GuestInfo {
        tags: Vec::new(),
        ..member(5003, "borrowed", VmStatus::Running)
    };
    let tmpl_in_pool = GuestInfo {
        template: true,
        ..member(5004, "graded-tmpl", VmStatus::Stopped)
    };
    // Cloned by a run that died before tagging: its marker makes it the lab's.
    let orphan = fresh(5005, "exam-03");
    let mut hv = teardown_mock(vec![
        member(5001, "exam-01", VmStatus::Running),
        member(5002, "exam-02", VmStatus::Stopped),
        in_pool_unmarked,
        tmpl_in_pool,
        orphan,
    ]);
    // The lab-wide fence comes down after the guests (their own fence goes with them).
    hv.expect_unisolate()
        .withf(|l, s| *l == lab() && s.is_empty())
        .times(1)
        .returning(|_, _| Ok(()));
    hv.expect_stop()
        .with(eq(id(5001)))
        .times(1)
        .returning(|_| Ok(()));
    let destroyed = Arc::new(Mutex::new(Vec::new()));
    let d = destroyed.clone();
    hv.expect_destroy().times(3).returning(move |v| {
        d.lock().unwrap().push(v.get());
        Ok(())
    });
    // Something in the pool was left alone, so the pool stays.
    hv.expect_release_lab().never();
    let plan = within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(3), &no_progress),
    )
    .await
    .unwrap();
    let mut destroyed = destroyed.lock().unwrap().clone();
    destroyed.sort_unstable();
    assert_eq!(destroyed, [5001, 5002, 5005]);
    assert_eq!(plan.skipped.len(), 2);
    let text = plan.to_string();
    assert!(
        text.contains("lacks the lab tag") && text.contains("template"),
        "{text}"
    );
    assert!(
        text.contains("keep pool \"exam1\"") && !text.contains("remove pool"),
        "{text}"
    );
}

#[tokio::test]
async fn teardown_releases_the_pool_when_everything_went() {
    let mut hv = teardown_mock(vec![member(5001, "exam-01", VmStatus::Stopped)]);
    hv.expect_unisolate().times(1).returning(|_, _| Ok(()));
    hv.expect_destroy()
        .with(eq(id(5001)))
        .times(1)
        .returning(|_| Ok(()));
    hv.expect_release_lab()
        .with(eq(lab()))
        .times(1)
        .returning(|_| Ok(()));
    let plan = within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(1), &no_progress),
    )
    .await
    .unwrap();
    assert!(
        plan.to_string().contains("then remove pool \"exam1\""),
        "{plan}"
    );
}

#[tokio::test]
async fn teardown_rechecks_ownership_before_destroying() {
    let listed = member(5001, "exam-01", VmStatus::Stopped);
    let mut hv = MockHypervisor::new();
    hv.expect_lab_networks().returning(|_| Ok(Vec::new()));
    hv.expect_quiesce().returning(|_| Ok(()));
    let l = listed.clone();
    hv.expect_lab_members()
        .returning(move |_| Ok(vec![l.clone()]));
    // Between listing and destroying, someone turned it into a template.
    hv.expect_guest().returning(move |_| {
        Ok(GuestInfo {
            template: true,
            ..listed.clone()
        })
    });
    hv.expect_destroy().never();
    // A guest survived: the lab's fence stays up, and so does the pool.
    hv.expect_unisolate().never();
    hv.expect_release_lab().never();
    let e = within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(2), &no_progress),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Incomplete { .. }), "{text}");
    assert!(text.contains("template"), "{text}");
}

#[tokio::test]
async fn a_guest_gone_between_listing_and_its_teardown_counts_as_done() {
    // Listed, then removed by someone else (or by an interrupted run) before the re-read.
    let mut hv = MockHypervisor::new();
    hv.expect_lab_networks().returning(|_| Ok(Vec::new()));
    hv.expect_quiesce().returning(|_| Ok(()));
    hv.expect_lab_members()
        .returning(|_| Ok(vec![member(5001, "exam-01", VmStatus::Running)]));
    hv.expect_guest().returning(|v| {
        Err(Error::NotFound {
            what: format!("VM {v}"),
        })
    });
    hv.expect_stop().never();
    hv.expect_destroy().never();
    hv.expect_unisolate().times(1).returning(|_, _| Ok(()));
    hv.expect_release_lab().times(1).returning(|_| Ok(()));
    within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(1), &no_progress),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_guest_that_cannot_be_read_before_its_teardown_is_named_and_keeps_the_fence() {
    let mut hv = MockHypervisor::new();
    hv.expect_lab_networks().returning(|_| Ok(Vec::new()));
    hv.expect_quiesce().returning(|_| Ok(()));
    hv.expect_lab_members().returning(|_| {
        Ok(vec![
            member(5001, "exam-01", VmStatus::Running),
            member(5002, "exam-02", VmStatus::Stopped),
        ])
    });
    // exam-02 cannot be read (not "gone"): it must not count as torn down.
    hv.expect_guest().returning(|v| {
        if v == id(5002) {
            Err(Error::backend(
                "mock",
                std::io::Error::other("permission check failed (/vms/5002, VM.Audit)"),
            ))
        } else {
            Ok(GuestInfo {
                pool: None,
                description: None,
                ..member(5001, "exam-01", VmStatus::Running)
            })
        }
    });
    hv.expect_stop()
        .with(eq(id(5001)))
        .times(1)
        .returning(|_| Ok(()));
    hv.expect_destroy()
        .with(eq(id(5001)))
        .times(1)
        .returning(|_| Ok(()));
    hv.expect_unisolate().never();
    hv.expect_release_lab().never();
    let e = within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(2), &no_progress),
    )
    .await
    .unwrap_err();
    let Error::Incomplete { failures, .. } = &e else {
        panic!("{e}")
    };
    let names: Vec<&str> = failures.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(names, ["exam-02"], "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_guest_that_cannot_be_destroyed_keeps_the_lab_fenced() {
    let mut hv = teardown_mock(vec![
        member(5001, "exam-01", VmStatus::Stopped),
        member(5002, "exam-02", VmStatus::Stopped),
    ]);
    hv.expect_destroy().returning(|v| {
        if v == id(5002) {
            Err(Error::Busy {
                what: "VM 5002".into(),
                message: "VM is locked (backup)".into(),
            })
        } else {
            Ok(())
        }
    });
    hv.expect_unisolate().never();
    hv.expect_release_lab().never();
    let e = within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(2), &no_progress),
    )
    .await
    .unwrap_err();
    let Error::Incomplete { failures, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].subject, "exam-02");
}

#[tokio::test]
async fn status_reads_addresses_of_running_guests_and_the_fence_of_each() {
    let mut hv = MockHypervisor::new();
    hv.expect_lab_members().returning(|_| {
        Ok(vec![
            member(5002, "exam-02", VmStatus::Stopped),
            member(5001, "exam-01", VmStatus::Running),
            guest(5009, "stranger", VmStatus::Running),
        ])
    });
    hv.expect_addresses()
        .with(eq(id(5001)))
        .times(1)
        .returning(|v| Ok(vec![ip_of(v)]));
    hv.expect_fenced().returning(|_, v| Ok(v == id(5001)));
    let rows = status(&hv, &lab()).await.unwrap();
    let got: Vec<(u32, bool, Option<bool>)> = rows
        .iter()
        .map(|r| (r.vmid.get(), r.addresses.is_empty(), r.fenced))
        .collect();
    assert_eq!(got, [(5001, false, Some(true)), (5002, true, Some(false))]);
}

#[tokio::test(start_paused = true)]
async fn teardown_steps_may_use_the_whole_per_guest_budget() {
    let mut hv = teardown_mock(vec![member(5001, "exam-01", VmStatus::Stopped)]);
    let tries = Arc::new(Mutex::new(0u32));
    let t = tries.clone();
    // Six busy answers in a row: more than a lab-wide read's 4 attempts, within the budget.
    hv.expect_destroy().returning(move |_| {
        let mut n = t.lock().unwrap();
        *n += 1;
        if *n <= 6 {
            return Err(Error::Busy {
                what: "VM 5001".into(),
                message: "connection closed before message completed".into(),
            });
        }
        Ok(())
    });
    hv.expect_unisolate().times(1).returning(|_, _| Ok(()));
    hv.expect_release_lab().times(1).returning(|_| Ok(()));
    within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(1), &no_progress),
    )
    .await
    .unwrap();
    assert_eq!(*tries.lock().unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_down_whose_lab_wide_fence_cannot_be_lifted_is_incomplete() {
    let mut hv = teardown_mock(vec![member(5001, "exam-01", VmStatus::Stopped)]);
    hv.expect_destroy().times(1).returning(|_| Ok(()));
    // Not transient: the engine does not repeat it, and the pool stays.
    hv.expect_unisolate().times(1).returning(|_, _| {
        Err(Error::backend(
            "mock",
            std::io::Error::other(
                "detected modified configuration - file changed by other user? Try again.",
            ),
        ))
    });
    hv.expect_release_lab().never();
    let e = within_an_hour(
        "down",
        teardown(&hv, &lab(), &DownOptions::new(1), &no_progress),
    )
    .await
    .unwrap_err();
    let Error::Incomplete {
        operation,
        failures,
        ..
    } = &e
    else {
        panic!("want Incomplete (exit 5 in labctl), got {e:?}");
    };
    assert_eq!(*operation, "down");
    assert_eq!(failures.len(), 1, "{e}");
    assert_eq!(failures[0].subject, "fence");
    assert!(
        failures[0].message.contains("the guests are gone")
            && failures[0]
                .message
                .contains("detected modified configuration"),
        "{e}"
    );
}
