//! `ProxmoxLab` and the lab engine against the embedded simulator over real HTTP on
//! 127.0.0.1: marks, idempotent `up`, fence verdicts, a teardown that touches only the
//! lab, a foreign pool never adopted.
#![allow(clippy::unwrap_used)]

use lab_core::{
    apply, no_progress, plan_down, status, teardown, DownOptions, Error, Hypervisor, LabName,
    LabSpec, VmId, VmStatus,
};
use lab_proxmox::ProxmoxLab;
use pve_auth::{Params, PveClient, Secret};
use pve_sim::{SimHandle, Simulator};
use pve_vm::Timing;
use serde_json::Value;

const SCALE: f64 = 0.01;

async fn sim() -> (SimHandle, ProxmoxLab, PveClient) {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(SCALE)
        .start()
        .await
        .unwrap();
    let client = PveClient::builder(&sim.url())
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    let hv = ProxmoxLab::with_timing(client.clone(), Timing::default().scaled(SCALE));
    (sim, hv, client)
}

fn spec(lab: &str, count: u32) -> LabSpec {
    let mut s = LabSpec::new(LabName::new(lab).unwrap(), VmId::new(9000).unwrap(), count).unwrap();
    s.hostname = "stud-{n:02}".parse().unwrap();
    s.ids = "5000-5099".parse().unwrap();
    s.teachers = vec!["10.10.0.1".parse().unwrap()];
    s.timeouts = lab_core::Timeouts::default().scaled(SCALE);
    s
}

fn guest(state: &Value, vmid: u64) -> Option<Value> {
    state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"].as_u64() == Some(vmid))
        .cloned()
}

fn count(sim: &SimHandle, key: &str) -> u64 {
    sim.requests()[key].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn up_marks_fences_and_is_idempotent() {
    let (sim, hv, _) = sim().await;
    let report = apply(&hv, &spec("exam1", 3), &no_progress).await.unwrap();
    assert!(report.fenced);
    let names: Vec<&str> = report
        .students
        .iter()
        .map(|s| s.hostname.as_str())
        .collect();
    assert_eq!(names, ["stud-01", "stud-02", "stud-03"]);
    let state = sim.state();
    for s in &report.students {
        let g = guest(&state, u64::from(s.vmid.get())).unwrap();
        assert_eq!(g["pool"], "exam1");
        assert_eq!(g["config"]["tags"], "labctl.exam1");
        assert_eq!(g["status"], "running");
        // The address the engine reports is the one the simulator leased.
        assert_eq!(
            g["ipv4"].as_str().unwrap(),
            s.primary_address().unwrap().to_string()
        );
    }
    let (a, b) = (report.students[0].vmid.get(), report.students[1].vmid.get());
    assert!(
        !sim.reachability(a, &b.to_string(), "tcp", Some(22))
            .unwrap()
            .allowed
    );
    assert!(
        sim.reachability(a, "10.10.0.1", "tcp", Some(22))
            .unwrap()
            .allowed
    );
    assert!(!sim.reachability(a, "200", "tcp", Some(22)).unwrap().allowed);

    // A second `up` clones nothing and keeps the same students.
    sim.reset_requests();
    let again = apply(&hv, &spec("exam1", 3), &no_progress).await.unwrap();
    assert_eq!(count(&sim, "POST /nodes/{node}/qemu/{vmid}/clone"), 0);
    assert_eq!(
        again.students.iter().map(|s| s.vmid).collect::<Vec<_>>(),
        report.students.iter().map(|s| s.vmid).collect::<Vec<_>>()
    );

    let rows = status(&hv, &LabName::new("exam1").unwrap()).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.status == VmStatus::Running && r.primary_address().is_some()));
    sim.shutdown().await;
}

#[tokio::test]
async fn teardown_touches_only_the_lab() {
    let (sim, hv, _) = sim().await;
    let before = sim.state();
    let lab = LabName::new("exam2").unwrap();
    apply(&hv, &spec("exam2", 2), &no_progress).await.unwrap();

    // A stranger in the lab's pool (no tag) and a guest with the tag but in no pool.
    let vms = hv.vm_api();
    let tmpl = vms.guest(pve_vm::VmId::new(9000).unwrap()).await.unwrap();
    let stranger = tmpl
        .clone_to(pve_vm::CloneOptions {
            newid: pve_vm::NewId::Exact(pve_vm::VmId::new(7000).unwrap()),
            hostname: Some("stranger".into()),
            pool: Some(pve_vm::PoolId::new("exam2").unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    let tagged = tmpl
        .clone_to(pve_vm::CloneOptions {
            newid: pve_vm::NewId::Exact(pve_vm::VmId::new(7001).unwrap()),
            hostname: Some("look-alike".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    tagged.set_tags(&["labctl.exam2"]).await.unwrap();

    let plan = plan_down(&hv, &lab).await.unwrap();
    let doomed: Vec<u32> = plan.destroy.iter().map(|g| g.vmid.get()).collect();
    assert_eq!(doomed, [5000, 5001]);
    let mut kept: Vec<u32> = plan.skipped.iter().map(|(g, _)| g.vmid.get()).collect();
    kept.sort_unstable();
    assert_eq!(kept, [7000, 7001]);

    teardown(&hv, &lab, &DownOptions::new(4), &no_progress)
        .await
        .unwrap();
    let after = sim.state();
    assert!(guest(&after, 5000).is_none() && guest(&after, 5001).is_none());
    assert!(guest(&after, u64::from(stranger.vmid().get())).is_some());
    assert!(guest(&after, u64::from(tagged.vmid().get())).is_some());
    for vmid in [100, 200, 201, 9000, 9001] {
        assert_eq!(
            guest(&before, vmid),
            guest(&after, vmid),
            "guest {vmid} changed"
        );
    }
    // The stranger is still in it, so the pool stays.
    assert!(after["pools"]["exam2"].is_object());
    // The fence is gone: the datacenter firewall is as before.
    assert_eq!(before["firewall"], after["firewall"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_foreign_pool_of_the_same_name_is_never_adopted() {
    let (sim, hv, client) = sim().await;
    client
        .post::<Value>(
            "/pools",
            &Params::new()
                .with("poolid", "exam3")
                .with("comment", "teachers' VMs"),
        )
        .await
        .unwrap();
    let lab = LabName::new("exam3").unwrap();
    let e = hv.prepare_lab(&lab).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert!(e.to_string().contains("not created by labctl"), "{e}");
    let e = apply(&hv, &spec("exam3", 1), &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(count(&sim, "POST /nodes/{node}/qemu/{vmid}/clone"), 0);
    // release_lab leaves a pool it did not create alone.
    hv.release_lab(&lab).await.unwrap();
    assert!(sim.state()["pools"]["exam3"].is_object());
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_speak_of_meaning() {
    let (sim, hv, _) = sim().await;
    let e = hv.guest(VmId::new(4242).unwrap()).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = apply(&hv, &spec_with_template("exam4", 4242), &no_progress)
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(e.to_string().contains("template 4242"), "{e}");
    // A running VM is not a template.
    let e = apply(&hv, &spec_with_template("exam4", 200), &no_progress)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a template"), "{e}");
    // The backend refuses to destroy a template even if asked directly.
    assert!(hv.destroy(VmId::new(9000).unwrap()).await.is_err());
    assert!(guest(&sim.state(), 9000).is_some());
    sim.shutdown().await;
}

fn spec_with_template(lab: &str, template: u32) -> LabSpec {
    let mut s = spec(lab, 1);
    s.template = VmId::new(template).unwrap();
    s
}

#[tokio::test]
async fn containers_come_up_fenced_and_go() {
    let (sim, hv, _) = sim().await;
    let before = sim.state();
    let mut s = spec("ct1", 2);
    s.template = VmId::new(9001).unwrap();
    s.hostname = "ct-{n:02}".parse().unwrap();
    let report = apply(&hv, &s, &no_progress).await.unwrap();
    assert!(report.fenced);
    let state = sim.state();
    for st in &report.students {
        let g = guest(&state, u64::from(st.vmid.get())).unwrap();
        assert_eq!(g["type"], "lxc");
        assert_eq!(g["config"]["hostname"], st.hostname.as_str());
        assert_eq!(
            g["ipv4"].as_str().unwrap(),
            st.primary_address().unwrap().to_string()
        );
    }
    let (a, b) = (report.students[0].vmid.get(), report.students[1].vmid.get());
    assert!(
        !sim.reachability(a, &b.to_string(), "tcp", Some(22))
            .unwrap()
            .allowed
    );
    assert!(
        sim.reachability(a, "10.10.0.1", "tcp", Some(22))
            .unwrap()
            .allowed
    );
    teardown(&hv, &s.name, &DownOptions::new(2), &no_progress)
        .await
        .unwrap();
    let after = sim.state();
    assert_eq!(before["guests"], after["guests"]);
    assert_eq!(before["firewall"], after["firewall"]);
    assert_eq!(before["pools"], after["pools"]);
    sim.shutdown().await;
}
