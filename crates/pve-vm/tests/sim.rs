//! Against `pve-sim`: full QEMU and LXC cycles, 20 parallel clones, parallel LXC clones,
//! failing tasks, refused destroys. Every request is checked against the schema extract.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Lab;
use pve_vm::{
    CloneMode, CloneOptions, DestroyOptions, Error, GuestKind, NewId, PoolId, RunState,
    ShutdownOptions, VmApi, VmId,
};

fn vmid(n: u32) -> VmId {
    VmId::new(n).unwrap()
}

/// The ids the simulator starts with.
const INITIAL: [u64; 5] = [100, 200, 201, 9000, 9001];

#[tokio::test]
async fn qemu_full_cycle() {
    let lab = Lab::start().await;
    let api = lab.api();
    let template = api.guest(vmid(9000)).await.unwrap();
    assert!(template.is_template().await.unwrap());

    let student = template
        .clone_to(CloneOptions {
            hostname: Some("stud-01".into()),
            mode: CloneMode::Linked,
            newid: NewId::Within(vmid(1000)..=vmid(1099)),
            description: Some("exam 2024, seat 1".into()),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(student.vmid(), vmid(1000));
    assert_eq!(student.node(), template.node());
    let cfg = student.config().await.unwrap();
    assert_eq!(cfg.name().as_deref(), Some("stud-01"));
    assert!(!cfg.is_template());
    assert_eq!(cfg.lock(), None);
    let template_mac = template.config().await.unwrap().nics()[0]
        .1
        .mac()
        .map(str::to_owned);
    let mac = cfg.nics()[0].1.mac().map(str::to_owned);
    assert!(mac.is_some() && mac != template_mac, "clone got a new MAC");

    assert!(!student.is_up().await.unwrap());
    student.start().await.unwrap();
    assert!(student.status().await.unwrap().is_running());
    student.start().await.unwrap(); // already running: still success
    student.wait_agent(Duration::from_secs(30)).await.unwrap();
    assert!(student.is_up().await.unwrap());

    student
        .set_tags(&["Exam-2024", "student-01"])
        .await
        .unwrap();
    student.add_tags(&["lab"]).await.unwrap();
    assert_eq!(
        student.tags().await.unwrap(),
        vec!["exam-2024", "lab", "student-01"]
    );

    let pool = PoolId::new("exam").unwrap();
    lab.client()
        .post::<serde_json::Value>("/pools", &pve_auth::Params::new().with("poolid", "exam"))
        .await
        .unwrap();
    student.join_pool(&pool, false).await.unwrap();
    assert_eq!(student.pool().await.unwrap(), Some(pool.clone()));
    student.leave_pool(&pool).await.unwrap();
    assert_eq!(student.pool().await.unwrap(), None);

    student.reboot().await.unwrap();
    student
        .shutdown(ShutdownOptions {
            timeout: Some(Duration::from_secs(30)),
            force_stop: true,
        })
        .await
        .unwrap();
    assert_eq!(student.status().await.unwrap().status, RunState::Stopped);
    student.stop().await.unwrap(); // already stopped: still success

    student.start().await.unwrap();
    student
        .destroy(DestroyOptions {
            purge: true,
            destroy_unreferenced_disks: true,
            stop_first: true,
            allow_template: false,
        })
        .await
        .unwrap();
    assert!(!lab.guests().contains_key(&1000));
    let err = api.guest(vmid(1000)).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");

    let seen = lab.check_schema();
    for call in [
        "POST /nodes/{node}/qemu/{vmid}/clone",
        "GET /nodes/{node}/tasks/{upid}/status",
        "POST /nodes/{node}/qemu/{vmid}/agent/ping",
        "DELETE /nodes/{node}/qemu/{vmid}",
        "PUT /pools",
    ] {
        assert!(seen.contains(call), "{call} not exercised: {seen:?}");
    }
}

#[tokio::test]
async fn lxc_full_cycle_and_templates() {
    let lab = Lab::start().await;
    let api = lab.api();
    let template = api.guest(vmid(9001)).await.unwrap();
    assert_eq!(template.kind(), GuestKind::Lxc);
    let ct = template
        .clone_to(CloneOptions {
            hostname: Some("ct-01".into()),
            newid: NewId::Exact(vmid(2000)),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    let cfg = ct.config().await.unwrap();
    assert_eq!(cfg.get("hostname").as_deref(), Some("ct-01"));
    assert!(cfg.nics()[0].1.is_lxc());
    ct.start().await.unwrap();
    assert!(ct.is_up().await.unwrap());
    let err = ct.wait_agent(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    ct.stop().await.unwrap();
    ct.stop().await.unwrap(); // `CT 2000 not running` is success

    // LXC template conversion answers no UPID: the config is polled instead.
    ct.make_template().await.unwrap();
    assert!(ct.is_template().await.unwrap());
    let err = ct.destroy(DestroyOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    ct.destroy(DestroyOptions {
        allow_template: true,
        ..DestroyOptions::default()
    })
    .await
    .unwrap();
    assert!(!lab.guests().contains_key(&2000));

    // QEMU template conversion waits for its task.
    let vm = api
        .guest(vmid(9000))
        .await
        .unwrap()
        .clone_to(CloneOptions {
            mode: CloneMode::Full,
            storage: Some("local-lvm".into()),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    vm.make_template().await.unwrap();
    assert!(vm.is_template().await.unwrap());
    lab.check_schema();
}

#[tokio::test]
async fn twenty_parallel_clones_end_as_twenty_running_guests() {
    let lab = Lab::start().await;
    // Four independent clients ("processes"): in-process reservations do not protect them
    // from each other, so the nextid race is real; the storage lock admits 3 at a time.
    let apis: Vec<VmApi> = (0..4).map(|_| lab.api()).collect();
    lab.sim.reset_requests();
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let api = apis[i as usize % apis.len()].clone();
        tasks.push(tokio::spawn(async move {
            let template = api.guest(VmId::new(9000).unwrap()).await?;
            let g = template
                .clone_to(CloneOptions {
                    hostname: Some(format!("stud-{i:02}")),
                    mode: CloneMode::Linked,
                    ..CloneOptions::default()
                })
                .await?;
            g.start().await?;
            Ok::<_, Error>((i, g.vmid()))
        }));
    }
    let mut ids = BTreeSet::new();
    for t in tasks {
        let (i, id) = t
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a clone failed: {e}"));
        assert!(ids.insert(id), "id {id} handed out twice (clone {i})");
    }
    assert_eq!(ids.len(), 20);

    let guests = lab.guests();
    let new: Vec<_> = guests
        .iter()
        .filter(|(id, _)| !INITIAL.contains(id))
        .collect();
    assert_eq!(new.len(), 20, "exactly 20 new guests, no partial leftovers");
    let mut names = BTreeSet::new();
    for (id, g) in &new {
        assert!(ids.contains(&vmid(u32::try_from(**id).unwrap())));
        assert_eq!(g["status"], "running", "{id}");
        assert!(g["lock"].is_null(), "{id} still locked: {}", g["lock"]);
        names.insert(g["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names.len(), 20);

    // The races happened and were absorbed: more clone requests than clones.
    let requests = lab.sim.requests();
    let clones = requests["POST /nodes/{node}/qemu/{vmid}/clone"]
        .as_u64()
        .unwrap();
    println!("20 clones took {clones} clone requests; counts: {requests}");
    assert!(
        clones > 20,
        "expected retries (storage lock / id races), saw {clones}"
    );
    lab.check_schema();
}

#[tokio::test]
async fn two_parallel_lxc_clones_both_succeed() {
    let lab = Lab::start().await;
    // Two processes: no shared in-process serialisation, so `CT is locked (disk)` is retried.
    let (a, b) = (lab.api(), lab.api());
    let one = async {
        let t = a.guest(vmid(9001)).await?;
        t.clone_to(CloneOptions {
            hostname: Some("ct-a".into()),
            ..CloneOptions::default()
        })
        .await
    };
    let two = async {
        let t = b.guest(vmid(9001)).await?;
        t.clone_to(CloneOptions {
            hostname: Some("ct-b".into()),
            ..CloneOptions::default()
        })
        .await
    };
    let (one, two) = tokio::join!(one, two);
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_ne!(one.vmid(), two.vmid());

    // One process: serialised in-process.
    let c = lab.api();
    let t = c.guest(vmid(9001)).await.unwrap();
    let (x, y) = tokio::join!(
        t.clone_to(CloneOptions::default()),
        t.clone_to(CloneOptions::default())
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let ids: BTreeSet<VmId> = [one.vmid(), two.vmid(), x.vmid(), y.vmid()].into();
    assert_eq!(ids.len(), 4);
    let guests = lab.guests();
    for id in &ids {
        let g = &guests[&u64::from(id.get())];
        assert_eq!(g["type"], "lxc");
        assert!(g["lock"].is_null());
    }
    assert!(guests[&9001]["lock"].is_null(), "template unlocked again");
    lab.check_schema();
}

#[tokio::test]
async fn failing_task_surfaces_its_exit_status() {
    let lab = Lab::start().await;
    let api = lab.api();
    let template = api.guest(vmid(9000)).await.unwrap();
    let err = template.start().await.unwrap_err();
    match &err {
        Error::TaskFailed {
            upid, exitstatus, ..
        } => {
            assert_eq!(upid.task_type(), "qmstart");
            assert_eq!(upid.node(), template.node());
            assert!(exitstatus.contains("template"), "{exitstatus}");
        }
        other => panic!("expected a task failure, got {other}"),
    }
    assert!(err.to_string().contains(&err_exit(&err)));
    lab.check_schema();
}

fn err_exit(e: &Error) -> String {
    match e {
        Error::TaskFailed { exitstatus, .. } => exitstatus.clone(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn destroy_of_template_or_running_guest_is_refused() {
    let lab = Lab::start().await;
    let api = lab.api();
    let before = lab.guests();
    let err = api
        .guest(vmid(9000))
        .await
        .unwrap()
        .destroy(DestroyOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused: VM 9000 is a template; destroying it breaks its linked clones"),
        "{err}"
    );
    let err = api
        .guest(vmid(100))
        .await
        .unwrap()
        .destroy(DestroyOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "refused: VM 100 is running; stop it first or set DestroyOptions::stop_first"
        ),
        "{err}"
    );
    assert_eq!(lab.guests(), before, "nothing changed");
    let requests = lab.sim.requests();
    assert!(
        requests.get("DELETE /nodes/{node}/qemu/{vmid}").is_none(),
        "no DELETE was sent: {requests}"
    );
    lab.check_schema();
}

#[tokio::test]
async fn clones_and_starts_survive_injected_faults() {
    let lab = Lab::start().await;
    let api = lab.api();
    api.client().login().await.unwrap();
    let template = api.guest(vmid(9000)).await.unwrap();
    // From here on 15 % of requests fail (500 `got no worker upid`, 503, 596, reset, latency)
    // and 15 % of clone tasks fail on a storage or user.cfg lock.
    lab.sim.set_fault_rate(0.15).unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let template = template.clone();
        tasks.push(tokio::spawn(async move {
            let g = template
                .clone_to(CloneOptions {
                    hostname: Some(format!("flaky-{i}")),
                    newid: NewId::Within(VmId::new(3000).unwrap()..=VmId::new(3999).unwrap()),
                    ..CloneOptions::default()
                })
                .await?;
            g.start().await?;
            g.wait_agent(Duration::from_secs(30)).await?;
            Ok::<_, Error>(g.vmid())
        }));
    }
    let mut ids = BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap_or_else(|e| panic!("{e}")));
    }
    lab.sim.set_fault_rate(0.0).unwrap();
    assert_eq!(ids.len(), 6);
    let guests = lab.guests();
    let new: Vec<_> = guests.keys().filter(|id| !INITIAL.contains(id)).collect();
    assert_eq!(new.len(), 6, "no partial leftovers: {new:?}");
    for id in &ids {
        let g = &guests[&u64::from(id.get())];
        assert_eq!(g["status"], "running");
        assert!(g["lock"].is_null());
    }
    lab.check_schema();
}

#[tokio::test]
async fn allocated_block_clones_exactly_and_nic_firewall_keeps_the_mac() {
    let lab = Lab::start().await;
    let api = lab.api();
    let ids = api.allocate_ids(vmid(5000)..=vmid(5099), 3).await.unwrap();
    assert_eq!(ids, vec![vmid(5000), vmid(5001), vmid(5002)]);
    let template = api.guest(vmid(9000)).await.unwrap();
    let clones = ids.iter().map(|id| {
        template.clone_to(CloneOptions {
            newid: NewId::Exact(*id),
            ..CloneOptions::default()
        })
    });
    let guests: Vec<_> = futures::future::join_all(clones).await;
    for (g, id) in guests.iter().zip(&ids) {
        assert_eq!(g.as_ref().unwrap().vmid(), *id);
    }
    assert!(api.reserved_ids().is_empty(), "clones released the block");

    let g = guests[0].as_ref().unwrap();
    let mac_before = g.config().await.unwrap().nics()[0]
        .1
        .mac()
        .map(str::to_owned);
    g.update_nic(0, |nic| nic.set_firewall(true)).await.unwrap();
    let nic = g.config().await.unwrap().nics()[0].1.clone();
    assert!(nic.firewall());
    assert_eq!(nic.mac().map(str::to_owned), mac_before);
    let err = g
        .update_nic(7, |nic| nic.set_firewall(true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("net7"), "{err}");
    lab.check_schema();
}

#[tokio::test]
async fn one_process_bounds_its_clones_and_needs_no_retries() {
    let lab = Lab::start().await;
    let api = lab.api();
    let template = api.guest(vmid(9000)).await.unwrap();
    lab.sim.reset_requests();
    let clones = (0..20).map(|i| {
        template.clone_to(CloneOptions {
            hostname: Some(format!("seat-{i:02}")),
            ..CloneOptions::default()
        })
    });
    let guests = futures::future::join_all(clones).await;
    let ids: BTreeSet<VmId> = guests.into_iter().map(|g| g.unwrap().vmid()).collect();
    assert_eq!(ids.len(), 20);
    // In-process reservations rule out the nextid race; 3 clones per node at a time stay
    // within the storage lock, so every clone request succeeds the first time.
    let requests = lab.sim.requests();
    assert_eq!(
        requests["POST /nodes/{node}/qemu/{vmid}/clone"], 20,
        "{requests}"
    );
    lab.check_schema();
}
