//! Trait-level tests of the engine against a `mockall` mock of [`Hypervisor`].

use std::net::IpAddr;
use std::sync::Mutex;

use mockall::predicate::eq;

use crate::*;

fn id(n: u32) -> VmId {
    VmId::new(n).unwrap()
}

fn lab() -> LabName {
    LabName::new("exam1").unwrap()
}

fn guest(vmid: u32, name: &str, status: VmStatus) -> GuestInfo {
    GuestInfo {
        vmid: id(vmid),
        name: Some(name.to_owned()),
        node: Node::new("pve1"),
        kind: VmKind::Vm,
        status,
        template: false,
        pool: None,
        tags: Vec::new(),
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
    assert_eq!(p.creates(), 2);
    assert_eq!(p.extra.len(), 1);
    assert_eq!(p.extra[0].vmid, id(5004));
    let text = p.to_string();
    assert!(
        text.contains("exam-04") && text.contains("10.10.0.1"),
        "{text}"
    );
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

/// A mock in which every clone succeeds at the planned id, marked as the lab's.
fn happy_mock(fail_clone_of: Option<&'static str>) -> MockHypervisor {
    let mut hv = MockHypervisor::new();
    hv.expect_backend().return_const("mock");
    hv.expect_list_guests().returning(|| Ok(vec![template()]));
    hv.expect_prepare_lab()
        .with(eq(lab()))
        .times(1)
        .returning(|_| Ok(()));
    hv.expect_clone_guest().returning(move |req| {
        assert_eq!(req.template, id(9000));
        assert_eq!(req.last_id, id(5009));
        assert_eq!(req.lab, lab());
        if Some(req.hostname.as_str()) == fail_clone_of {
            return Err(Error::Busy {
                what: "storage".into(),
                message: "got timeout".into(),
            });
        }
        Ok(member(req.vmid.get(), &req.hostname, VmStatus::Stopped))
    });
    hv.expect_start().returning(|_| Ok(()));
    hv.expect_wait_ready().returning(|_, _| Ok(()));
    hv.expect_wait_address().returning(|v, _| Ok(ip_of(v)));
    hv.expect_addresses().returning(|v| Ok(vec![ip_of(v)]));
    hv.expect_guest().returning(|v| {
        Ok(member(
            v.get(),
            &format!("exam-{:02}", v.get() - 4999),
            VmStatus::Running,
        ))
    });
    hv
}

#[tokio::test]
async fn apply_brings_every_student_up_and_fences_them_once() {
    let mut hv = happy_mock(None);
    hv.expect_lab_members().returning(|_| {
        Ok((5000..5003)
            .map(|n| member(n, &format!("exam-{:02}", n - 4999), VmStatus::Running))
            .collect())
    });
    hv.expect_isolate()
        .withf(|l, students, allowed| {
            *l == lab()
                && students == &[id(5000), id(5001), id(5002)]
                && allowed == &["10.10.0.1".parse::<IpAddr>().unwrap()]
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let events = Mutex::new(Vec::new());
    let record = |e: Event| events.lock().unwrap().push(e);
    let report = apply(&hv, &spec(3), &record).await.unwrap();
    assert!(report.fenced);
    let rows: Vec<(u32, &str, IpAddr)> = report
        .students
        .iter()
        .map(|s| {
            (
                s.vmid.get(),
                s.hostname.as_str(),
                s.primary_address().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (5000, "exam-01", ip_of(id(5000))),
            (5001, "exam-02", ip_of(id(5001))),
            (5002, "exam-03", ip_of(id(5002))),
        ]
    );
    let events = events.into_inner().unwrap();
    let dones = events
        .iter()
        .filter(|e| matches!(e, Event::Done { .. }))
        .count();
    assert_eq!(dones, 3);
    assert!(events.contains(&Event::Lab { step: Step::Fence }));
    assert!(events.contains(&Event::Step {
        subject: "exam-02".into(),
        step: Step::WaitReady
    }));
}

#[tokio::test]
async fn apply_reports_a_failed_student_and_still_fences_the_rest() {
    let mut hv = happy_mock(Some("exam-02"));
    hv.expect_lab_members().returning(|_| {
        Ok(vec![
            member(5000, "exam-01", VmStatus::Running),
            member(5002, "exam-03", VmStatus::Running),
        ])
    });
    hv.expect_isolate()
        .withf(|_, students, _| students == &[id(5000), id(5002)])
        .times(1)
        .returning(|_, _, _| Ok(()));
    let e = apply(&hv, &spec(3), &no_progress).await.unwrap_err();
    match e {
        Error::Incomplete {
            operation,
            failures,
            ..
        } => {
            assert_eq!(operation, "up");
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].subject, "exam-02");
            assert!(failures[0].message.contains("got timeout"));
        }
        other => panic!("expected Incomplete, got {other}"),
    }
}

#[tokio::test]
async fn apply_refuses_a_clone_the_backend_did_not_mark() {
    let mut hv = MockHypervisor::new();
    hv.expect_list_guests().returning(|| Ok(vec![template()]));
    hv.expect_prepare_lab().returning(|_| Ok(()));
    hv.expect_clone_guest()
        .returning(|req| Ok(guest(req.vmid.get(), &req.hostname, VmStatus::Stopped)));
    hv.expect_start().never();
    hv.expect_lab_members().returning(|_| Ok(Vec::new()));
    let mut s = spec(1);
    s.teachers.clear();
    let e = apply(&hv, &s, &no_progress).await.unwrap_err().to_string();
    assert!(e.contains("not marked as the lab's"), "{e}");
}

fn teardown_mock(members: Vec<GuestInfo>) -> MockHypervisor {
    let mut hv = MockHypervisor::new();
    let listed = members.clone();
    hv.expect_lab_members()
        .with(eq(lab()))
        .returning(move |_| Ok(listed.clone()));
    hv.expect_guest().returning(move |v| {
        members
            .iter()
            .find(|g| g.vmid == v)
            .cloned()
            .ok_or(Error::NotFound {
                what: format!("VM {v}"),
            })
    });
    hv
}

#[tokio::test]
async fn teardown_destroys_only_owned_guests() {
    let in_pool_untagged = GuestInfo {
        tags: Vec::new(),
        ..member(5003, "borrowed", VmStatus::Running)
    };
    let tmpl_in_pool = GuestInfo {
        template: true,
        ..member(5004, "graded-tmpl", VmStatus::Stopped)
    };
    let mut hv = teardown_mock(vec![
        member(5001, "exam-01", VmStatus::Running),
        member(5002, "exam-02", VmStatus::Stopped),
        in_pool_untagged,
        tmpl_in_pool,
    ]);
    hv.expect_unisolate()
        .withf(|l, s| *l == lab() && s == &[id(5001), id(5002)])
        .times(1)
        .returning(|_, _| Ok(()));
    hv.expect_stop()
        .with(eq(id(5001)))
        .times(1)
        .returning(|_| Ok(()));
    let destroyed = std::sync::Arc::new(Mutex::new(Vec::new()));
    let d = destroyed.clone();
    hv.expect_destroy().times(2).returning(move |v| {
        d.lock().unwrap().push(v.get());
        Ok(())
    });
    // Something in the pool was left alone, so the pool stays.
    hv.expect_release_lab().never();
    let plan = teardown(&hv, &lab(), &DownOptions::new(3), &no_progress)
        .await
        .unwrap();
    let mut destroyed = destroyed.lock().unwrap().clone();
    destroyed.sort_unstable();
    assert_eq!(destroyed, [5001, 5002]);
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
    let plan = teardown(&hv, &lab(), &DownOptions::new(1), &no_progress)
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
    hv.expect_unisolate().returning(|_, _| Ok(()));
    hv.expect_destroy().never();
    hv.expect_release_lab().never();
    let e = teardown(&hv, &lab(), &DownOptions::new(2), &no_progress)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Incomplete { .. }), "{text}");
    assert!(text.contains("template"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn teardown_destroys_nothing_when_the_fence_cannot_be_lifted() {
    let mut hv = teardown_mock(vec![member(5001, "exam-01", VmStatus::Running)]);
    // Busy is transient: tried as often as the retry policy allows, then given up.
    hv.expect_unisolate().times(4).returning(|_, _| {
        Err(Error::Busy {
            what: "firewall".into(),
            message: "locked".into(),
        })
    });
    hv.expect_stop().never();
    hv.expect_destroy().never();
    let e = teardown(&hv, &lab(), &DownOptions::new(2), &no_progress)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}

#[tokio::test]
async fn status_reads_addresses_only_of_running_guests() {
    let mut hv = MockHypervisor::new();
    hv.expect_lab_members().returning(|_| {
        Ok(vec![
            member(5002, "exam-02", VmStatus::Stopped),
            member(5001, "exam-01", VmStatus::Running),
            // Not the lab's tag: not shown.
            GuestInfo {
                tags: Vec::new(),
                ..member(5003, "x", VmStatus::Running)
            },
        ])
    });
    hv.expect_addresses()
        .with(eq(id(5001)))
        .times(1)
        .returning(|v| Ok(vec![ip_of(v)]));
    let rows = status(&hv, &lab()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].vmid, id(5001));
    assert_eq!(rows[0].addresses, [ip_of(id(5001))]);
    assert!(rows[1].addresses.is_empty());
    assert_eq!(rows[1].status, VmStatus::Stopped);
}

/// A hand-written backend whose waits take (paused, simulated) time, to observe how many
/// students the engine works on at once.
struct SlowBackend {
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    clones: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Hypervisor for SlowBackend {
    fn backend(&self) -> &'static str {
        "slow"
    }
    async fn list_guests(&self) -> Result<Vec<GuestInfo>> {
        Ok(vec![template()])
    }
    async fn guest(&self, vmid: VmId) -> Result<GuestInfo> {
        Ok(member(vmid.get(), "x", VmStatus::Running))
    }
    async fn prepare_lab(&self, _: &LabName) -> Result<()> {
        Ok(())
    }
    async fn clone_guest(&self, req: CloneRequest) -> Result<GuestInfo> {
        use std::sync::atomic::Ordering::SeqCst;
        self.clones.fetch_add(1, SeqCst);
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        self.in_flight.fetch_sub(1, SeqCst);
        Ok(member(req.vmid.get(), &req.hostname, VmStatus::Stopped))
    }
    async fn start(&self, _: VmId) -> Result<()> {
        Ok(())
    }
    async fn wait_ready(&self, _: VmId, _: std::time::Duration) -> Result<()> {
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
        Ok(())
    }
    async fn addresses(&self, v: VmId) -> Result<Vec<IpAddr>> {
        Ok(vec![ip_of(v)])
    }
    async fn wait_address(&self, v: VmId, _: std::time::Duration) -> Result<IpAddr> {
        Ok(ip_of(v))
    }
    async fn isolate(&self, _: &LabName, _: Vec<VmId>, _: Vec<IpAddr>) -> Result<()> {
        Ok(())
    }
    async fn unisolate(&self, _: &LabName, _: Vec<VmId>) -> Result<()> {
        Ok(())
    }
    async fn stop(&self, _: VmId) -> Result<()> {
        Ok(())
    }
    async fn destroy(&self, _: VmId) -> Result<()> {
        Ok(())
    }
    async fn lab_members(&self, _: &LabName) -> Result<Vec<GuestInfo>> {
        Ok(Vec::new())
    }
    async fn release_lab(&self, _: &LabName) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn apply_keeps_to_the_concurrency_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    for concurrency in [1, 3, 8] {
        let hv = SlowBackend {
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            clones: AtomicUsize::new(0),
        };
        let mut s = spec(8);
        s.concurrency = concurrency;
        let report = apply(&hv, &s, &no_progress).await.unwrap();
        assert_eq!(report.students.len(), 8);
        assert_eq!(hv.clones.load(SeqCst), 8);
        assert_eq!(
            hv.peak.load(SeqCst),
            concurrency,
            "concurrency {concurrency}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_transient_fence_failure_is_retried_and_a_permanent_one_is_not() {
    let mut hv = happy_mock(None);
    hv.expect_lab_members()
        .returning(|_| Ok(vec![member(5000, "exam-01", VmStatus::Running)]));
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    hv.expect_isolate().returning(move |_, _, _| {
        if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Err(Error::Busy {
                what: "ipset".into(),
                message: "HTTP 503 Service Unavailable".into(),
            })
        } else {
            Ok(())
        }
    });
    let report = apply(&hv, &spec(1), &no_progress).await.unwrap();
    assert!(report.fenced);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);

    let mut hv = happy_mock(None);
    hv.expect_lab_members().returning(|_| Ok(Vec::new()));
    hv.expect_isolate()
        .times(1)
        .returning(|_, _, _| Err(Error::invalid("allowed", "", "an address")));
    let e = apply(&hv, &spec(1), &no_progress).await.unwrap_err();
    assert!(e.to_string().contains("fence: invalid allowed"), "{e}");
}
