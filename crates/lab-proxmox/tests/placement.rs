//! Placement against the simulator: replicas made by `replicate` (idempotent), `up`
//! spreading a class over them within the request budget, `down` leaving nothing, and an
//! offline node left out.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use lab_core::{apply, no_progress, teardown, DownOptions, LabName, VmId};
use pve_sim::{SimHandle, Simulator};
use serde_json::Value;

mod common;

use common::{sim, sim_from, spec, total};

fn count(requests: &Value, key: &str) -> u64 {
    requests[key].as_u64().unwrap_or(0)
}

/// The lab's guests per node in `/_sim/state`.
fn per_node(sim: &SimHandle, lab: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for g in sim.state()["guests"].as_array().unwrap() {
        if g["pool"].as_str() == Some(lab) {
            *m.entry(g["node"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
    }
    m
}

#[tokio::test]
async fn replicas_spread_a_class_over_three_nodes_within_the_request_budget() {
    let (sim, hv) = sim().await;
    let t = VmId::new(9000).unwrap();
    let made = hv.replicate(t, None, false).await.unwrap();
    let nodes: Vec<&str> = made.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes, ["pve2", "pve3"], "{made:?}");
    assert!(made.iter().all(|r| r.created));
    // Idempotent: nothing new the second time.
    sim.reset_requests();
    let again = hv.replicate(t, None, false).await.unwrap();
    assert!(again.iter().all(|r| !r.created), "{again:?}");
    assert_eq!(
        count(&sim.requests(), "POST /nodes/{node}/qemu/{vmid}/clone"),
        0
    );
    let sets = hv.replica_sets().await.unwrap();
    let set = sets.iter().find(|s| s.template == 9000).unwrap();
    assert_eq!(set.replicas.len(), 2, "{sets:?}");

    let n = 18;
    sim.reset_requests();
    let report = apply(&hv, &spec("spread", n), &no_progress).await.unwrap();
    assert_eq!(report.students.len(), n as usize);
    let expected: BTreeMap<String, usize> = [("pve1", 6), ("pve2", 6), ("pve3", 6)]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
    assert_eq!(per_node(&sim, "spread"), expected);
    let up = sim.requests();
    let n64 = u64::from(n);
    assert_eq!(count(&up, "POST /nodes/{node}/qemu/{vmid}/clone"), n64);
    assert_eq!(
        count(&up, "POST /nodes/{node}/qemu/{vmid}/status/start"),
        n64
    );
    assert!(
        total(&up) <= 10 * n64,
        "up sent {} requests for {n} guests (budget 10 per VM): {up:#}",
        total(&up)
    );

    sim.reset_requests();
    teardown(
        &hv,
        &LabName::new("spread").unwrap(),
        &DownOptions::new(8),
        &no_progress,
    )
    .await
    .unwrap();
    let down = sim.requests();
    // As in economy.rs: 3 per guest plus the lab-wide part (listing, fence, pool: 23
    // today), and the polls, whose number follows the machine's speed, bounded apart.
    let polls: u64 = down
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("GET /nodes/{node}/tasks") || k.contains("/agent/"))
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    let rest = total(&down) - polls;
    assert!(
        // Polls follow the machine's speed (37-49 for 18 guests on a loaded 2-core box):
        // bounded loosely, so only a schedule that polls without end fails here.
        rest <= 3 * n64 + 25 && polls <= 4 * n64,
        "down sent {rest} requests and {polls} polls for {n} guests: {down:#}"
    );
    assert!(per_node(&sim, "spread").is_empty());
}

#[tokio::test]
async fn an_offline_node_takes_no_student_and_cannot_get_a_replica() {
    let (sim, hv) = sim().await;
    let t = VmId::new(9000).unwrap();
    hv.replicate(t, Some(&["pve2".to_owned()]), false)
        .await
        .unwrap();
    sim.set_node_online("pve3", false).unwrap();
    let e = hv
        .replicate(t, Some(&["pve3".to_owned()]), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("offline"), "{e}");
    apply(&hv, &spec("off", 4), &no_progress).await.unwrap();
    let expected: BTreeMap<String, usize> = [("pve1", 2), ("pve2", 2)]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
    assert_eq!(per_node(&sim, "off"), expected);
}

#[tokio::test]
async fn a_template_on_shared_storage_sends_clones_to_every_node() {
    let (sim, hv) = sim_from(Simulator::builder().shared_storage("rbd")).await;
    // A full copy of 9000 on the shared storage, made a template.
    let t = hv
        .vm_api()
        .guest(pve_vm::VmId::new(9000).unwrap())
        .await
        .unwrap();
    let copy = t
        .clone_to(pve_vm::CloneOptions {
            newid: pve_vm::NewId::Exact(pve_vm::VmId::new(9100).unwrap()),
            hostname: Some("shared-tmpl".into()),
            mode: pve_vm::CloneMode::Full,
            storage: Some("rbd".into()),
            ..pve_vm::CloneOptions::default()
        })
        .await
        .unwrap();
    copy.make_template().await.unwrap();
    // The cluster listing shows the template flag after pvestatd's next cycle (10 s scaled).
    let mut listed = false;
    for _ in 0..500 {
        let guests = lab_core::Inventory::list_guests(&hv).await.unwrap();
        if guests.iter().any(|g| g.vmid.get() == 9100 && g.template) {
            listed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(listed, "the listing never showed 9100 as a template");
    let mut s = spec("shared", 6);
    s.template = VmId::new(9100).unwrap();
    apply(&hv, &s, &no_progress).await.unwrap();
    let expected: BTreeMap<String, usize> = [("pve1", 2), ("pve2", 2), ("pve3", 2)]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
    assert_eq!(
        per_node(&sim, "shared"),
        expected,
        "clones sent with target"
    );
    teardown(
        &hv,
        &LabName::new("shared").unwrap(),
        &DownOptions::new(8),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(per_node(&sim, "shared").is_empty());
}

#[tokio::test]
async fn a_node_lost_during_up_sends_the_students_not_yet_cloned_elsewhere() {
    let (sim, hv) = sim().await;
    let t = VmId::new(9000).unwrap();
    hv.replicate(t, None, false).await.unwrap();
    // The clones on the lost node cannot be followed to their end: each waits out the
    // clone timeout (30 min by default, 36 s at this time scale). A short one keeps the test
    // short; it is still far above a linked clone here.
    let hv = common::lab_with(
        &sim,
        pve_vm::Timing {
            clone_timeout: std::time::Duration::from_secs(4),
            ..pve_vm::Timing::default().scaled(common::SCALE)
        },
    );
    let n = 30;
    let lab = "lost";
    let up = {
        let hv = hv.clone();
        tokio::spawn(async move { apply(&hv, &spec(lab, n), &no_progress).await })
    };
    // pve2 goes away as soon as its first student exists: the others meant for it are not
    // cloned yet (10 per node, at most 6 sent at once to one storage).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while per_node(&sim, lab).get("pve2").copied().unwrap_or(0) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no student reached pve2 within 60 s: {:?}",
            per_node(&sim, lab)
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    sim.set_node_online("pve2", false).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(120), up)
        .await
        .expect("lab up ends within 120 s after the node is lost")
        .unwrap();
    let placed = per_node(&sim, lab);
    let on_pve2 = placed.get("pve2").copied().unwrap_or(0);
    assert!(
        on_pve2 < 10,
        "the students not yet cloned for pve2 went elsewhere: {placed:?}"
    );
    assert_eq!(
        placed.values().sum::<usize>(),
        n as usize,
        "one guest per student: {placed:?}"
    );
    let failures = match result {
        Err(lab_core::Error::Incomplete { failures, .. }) => failures,
        other => panic!("the students on pve2 cannot be ready: {other:?}"),
    };
    assert_eq!(failures.len(), on_pve2, "{failures:?}");
    assert!(
        failures
            .iter()
            .all(|f| f.message.contains("on node pve2, which went offline")),
        "the report names the lost node: {failures:?}"
    );
    // The node comes back: `down` removes everything, pve2's guests included.
    sim.set_node_online("pve2", true).unwrap();
    teardown(
        &hv,
        &LabName::new(lab).unwrap(),
        &DownOptions::new(8),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(per_node(&sim, lab).is_empty(), "{:?}", per_node(&sim, lab));
}
