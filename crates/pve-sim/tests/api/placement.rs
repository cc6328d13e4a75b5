//! Node memory, shared storage, migration and offline nodes: what placement across a
//! cluster relies on.

use reqwest::Method;
use serde_json::Value;

use crate::common::{builder, enc, Api};

const GIB: u64 = 1024 * 1024 * 1024;

fn node<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|n| n["node"] == name))
        .unwrap_or_else(|| panic!("node {name} in {list}"))
}

#[tokio::test]
async fn a_start_that_does_not_fit_the_nodes_memory_is_refused() {
    // pve1: 2 GiB host + the teacher's 2 GiB; 8 GiB leave room for two 2 GiB students.
    let api = Api::with(builder(0.01).node_memory(8 * GIB).node_cpus(8)).await;
    let nodes = api.get("/nodes", &[]).await;
    let pve1 = node(&nodes, "pve1");
    assert_eq!(pve1["maxmem"], 8 * GIB, "{pve1}");
    assert_eq!(pve1["mem"], 4 * GIB, "{pve1}");
    assert_eq!(pve1["maxcpu"], 8, "{pve1}");
    for (id, name) in [(301, "s1"), (302, "s2"), (303, "s3")] {
        api.clone_vm(id, name).await;
    }
    api.post_ok("/nodes/pve1/qemu/301/status/start", &[]).await;
    api.post_ok("/nodes/pve1/qemu/302/status/start", &[]).await;
    let upid = api.post("/nodes/pve1/qemu/303/status/start", &[]).await;
    let st = api.wait_task(&upid).await;
    assert_eq!(
        st["exitstatus"], "start failed: QEMU exited with code 1",
        "{st}"
    );
    let log = api
        .get(
            &format!("/nodes/pve1/tasks/{}/log", enc(upid.as_str().unwrap())),
            &[],
        )
        .await;
    assert!(
        log.to_string().contains("Cannot allocate memory"),
        "the task log says why: {log}"
    );
    let cur = api.get("/nodes/pve1/qemu/303/status/current", &[]).await;
    assert_eq!(cur["status"], "stopped");
    let resources = api.get("/cluster/resources", &[("type", "node")]).await;
    assert_eq!(node(&resources, "pve1")["mem"], 8 * GIB);
    // Stopping one frees its memory for the other.
    api.post_ok("/nodes/pve1/qemu/301/status/stop", &[]).await;
    api.post_ok("/nodes/pve1/qemu/303/status/start", &[]).await;
    // Other nodes are unaffected: pve2 runs only prod-db.
    assert_eq!(node(&api.get("/nodes", &[]).await, "pve2")["mem"], 4 * GIB);
}

#[tokio::test]
async fn a_bad_node_setting_is_refused_naming_what_is_allowed() {
    let e = builder(0.01).node_memory(GIB).start().await.unwrap_err();
    assert!(e.to_string().contains("node memory"), "{e}");
    let e = builder(0.01).node_cpus(0).start().await.unwrap_err();
    assert!(e.to_string().contains("1 to 1024"), "{e}");
    let e = builder(0.01)
        .shared_storage("local-lvm")
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("shared storage"), "{e}");
}

#[tokio::test]
async fn templates_on_shared_storage_clone_to_any_node() {
    let api = Api::with(builder(0.01).shared_storage("rbd")).await;
    let storage = api.get("/cluster/resources", &[("type", "storage")]).await;
    let shared: Vec<&Value> = storage
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["storage"] == "rbd")
        .collect();
    assert_eq!(shared.len(), 3, "{storage}");
    assert!(shared
        .iter()
        .all(|s| s["shared"] == 1 && s["plugintype"] == "rbd"));
    // A template on local storage stays on its node.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "300"), ("target", "pve2")],
        )
        .await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.message(),
        "can't clone VM to node 'pve2' (VM uses local storage)\n"
    );
    // A full copy onto the shared storage, made a template, clones anywhere.
    api.post_ok(
        "/nodes/pve1/qemu/9000/clone",
        &[
            ("newid", "300"),
            ("full", "1"),
            ("storage", "rbd"),
            ("name", "shared-tmpl"),
        ],
    )
    .await;
    let cfg = api.get("/nodes/pve1/qemu/300/config", &[]).await;
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("rbd:vm-300-disk-0"),
        "{cfg}"
    );
    api.post_ok("/nodes/pve1/qemu/300/template", &[]).await;
    let upid = api
        .post_ok(
            "/nodes/pve1/qemu/300/clone",
            &[("newid", "301"), ("target", "pve3"), ("name", "s1")],
        )
        .await;
    assert!(
        upid.as_str().unwrap().contains(":pve1:"),
        "the task runs on the source's node"
    );
    let cfg = api.get("/nodes/pve3/qemu/301/config", &[]).await;
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("rbd:base-300-disk-0/vm-301-disk-0"),
        "{cfg}"
    );
    let a = api
        .call(Method::GET, "/nodes/pve1/qemu/301/config", &[])
        .await;
    assert_eq!(a.status, 500, "the clone lives on pve3 only");
    api.post_ok("/nodes/pve3/qemu/301/status/start", &[]).await;
    // A storage that does not exist is named.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "302"), ("full", "1"), ("storage", "nfs9")],
        )
        .await;
    assert_eq!(a.message(), "storage 'nfs9' does not exist\n");
}

#[tokio::test]
async fn offline_migration_moves_a_stopped_guest_and_refuses_a_running_one() {
    let api = Api::start(0.01).await;
    api.post_ok(
        "/nodes/pve1/qemu/9000/clone",
        &[("newid", "310"), ("full", "1"), ("name", "copy")],
    )
    .await;
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/310/migrate",
            &[("target", "pve1")],
        )
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.body["errors"]["target"], "target is local node.");
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/310/migrate",
            &[("target", "pve9")],
        )
        .await;
    assert_eq!(a.message(), "no such cluster node 'pve9'\n");
    let upid = api
        .post_ok("/nodes/pve1/qemu/310/migrate", &[("target", "pve2")])
        .await;
    assert!(upid.as_str().unwrap().contains(":qmigrate:310:"), "{upid}");
    assert_eq!(
        api.get("/nodes/pve2/qemu/310/config", &[]).await["name"],
        "copy"
    );
    let a = api
        .call(Method::GET, "/nodes/pve1/qemu/310/config", &[])
        .await;
    assert_eq!(a.status, 500);
    // A running guest needs `online`.
    api.post_ok("/nodes/pve2/qemu/310/status/start", &[]).await;
    let upid = api
        .post("/nodes/pve2/qemu/310/migrate", &[("target", "pve3")])
        .await;
    assert_eq!(
        api.wait_task(&upid).await["exitstatus"],
        "can't migrate running VM without --online"
    );
    api.post_ok(
        "/nodes/pve2/qemu/310/migrate",
        &[
            ("target", "pve3"),
            ("online", "1"),
            ("with-local-disks", "1"),
        ],
    )
    .await;
    let cur = api.get("/nodes/pve3/qemu/310/status/current", &[]).await;
    assert_eq!(
        cur["status"], "running",
        "a live migration keeps it running"
    );
}

#[tokio::test]
async fn an_offline_node_answers_595_and_comes_back_with_its_guests_stopped() {
    let api = Api::start(0.01).await;
    assert!(api.sim.set_node_online("pve7", false).is_err());
    api.sim.set_node_online("pve2", false).unwrap();
    let a = api.call(Method::GET, "/nodes/pve2/qemu", &[]).await;
    assert_eq!(a.status, 595, "{a:?}");
    let a = api
        .call(Method::GET, "/nodes/pve2/qemu/200/status/current", &[])
        .await;
    assert_eq!(a.status, 595);
    let nodes = api.get("/nodes", &[]).await;
    let pve2 = node(&nodes, "pve2");
    assert_eq!(pve2["status"], "offline");
    assert!(
        pve2.get("mem").is_none(),
        "no figures for an offline node: {pve2}"
    );
    assert_eq!(node(&nodes, "pve1")["status"], "online");
    let vms = api.get("/cluster/resources", &[("type", "vm")]).await;
    let db = vms
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 200)
        .unwrap();
    assert_eq!(db["status"], "unknown", "{db}");
    let status = api.get("/cluster/status", &[]).await;
    let entry = status
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pve2")
        .unwrap();
    assert_eq!(entry["online"], 0);
    // Cluster-wide calls and the other nodes still answer.
    api.get("/nodes/pve1/qemu", &[]).await;
    api.sim.set_node_online("pve2", true).unwrap();
    let cur = api.get("/nodes/pve2/qemu/200/status/current", &[]).await;
    assert_eq!(cur["status"], "stopped", "the node lost power: {cur}");
}
