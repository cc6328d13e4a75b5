//! Snapshots (create, list, delete, rollback per storage) and vzdump (issue 17).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{enc, Api};
use crate::guest::{get_state, put_state, run, running_vm};

async fn snapshot(api: &Api, vmid: u32, name: &str, vmstate: bool) {
    api.post_ok(
        &format!("/nodes/pve1/qemu/{vmid}/snapshot"),
        &[
            ("snapname", name),
            ("vmstate", if vmstate { "1" } else { "0" }),
        ],
    )
    .await;
}

/// Run a rollback; returns the task's exit status.
async fn rollback(api: &Api, vmid: u32, name: &str, params: &[(&str, &str)]) -> Value {
    let upid = api
        .post(
            &format!("/nodes/pve1/qemu/{vmid}/snapshot/{name}/rollback"),
            params,
        )
        .await;
    api.wait_task(&upid).await["exitstatus"].clone()
}

#[tokio::test]
async fn rollback_restores_files_network_and_config() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    let path = "/nodes/pve1/qemu/150/config";
    let net0 = api.get(path, &[]).await["net0"]
        .as_str()
        .unwrap()
        .to_owned();
    snapshot(&api, 150, "baseline", false).await;
    let before = get_state(&api, 150).await;
    let hash = before["files"]["/etc/hostname"]["sha256"].clone();
    // The student changes a file and the network; the deadline cuts the link.
    api.post(
        "/nodes/pve1/qemu/150/agent/file-write",
        &[("file", "/etc/hostname"), ("content", "hacked\n")],
    )
    .await;
    put_state(
        &api,
        150,
        json!({"interfaces": {"eth1.10": {"kind": "vlan", "link": "ens18", "vlan": 10}}}),
    )
    .await;
    api.put(path, &[("net0", &format!("{net0},link_down=1"))])
        .await;
    let changed = get_state(&api, 150).await;
    assert_ne!(changed["files"]["/etc/hostname"]["sha256"], hash);

    assert_eq!(rollback(&api, 150, "baseline", &[]).await, "OK");
    let after = get_state(&api, 150).await;
    assert_eq!(after["files"]["/etc/hostname"]["sha256"], hash);
    assert_eq!(after["interfaces"], before["interfaces"]);
    assert_eq!(api.get(path, &[]).await["net0"], json!(net0));
    // A disk-only snapshot leaves the VM stopped; the list shows where we are.
    let cur = api.get("/nodes/pve1/qemu/150/status/current", &[]).await;
    assert_eq!(cur["status"], "stopped");
    let list = api.get("/nodes/pve1/qemu/150/snapshot", &[]).await;
    assert_eq!(list[0]["name"], "baseline");
    assert_eq!(list[0]["vmstate"], 0);
    assert_eq!(
        (list[1]["name"].clone(), list[1]["parent"].clone()),
        (json!("current"), json!("baseline"))
    );
    let snapcfg = api
        .get("/nodes/pve1/qemu/150/snapshot/baseline/config", &[])
        .await;
    assert_eq!(snapcfg["net0"], json!(net0));
    // A template cannot be made of a VM with snapshots.
    let t = api
        .call(Method::POST, "/nodes/pve1/qemu/150/template", &[])
        .await;
    assert_eq!(
        (t.status, t.message()),
        (
            500,
            "unable to create template, because VM contains snapshots\n"
        )
    );
}

#[tokio::test]
async fn a_ram_snapshot_resumes_running_after_rollback() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    snapshot(&api, 150, "live", true).await;
    put_state(
        &api,
        150,
        json!({"files": {"/root/later": {"content": "x"}}}),
    )
    .await;
    assert_eq!(rollback(&api, 150, "live", &[]).await, "OK");
    let cur = api.get("/nodes/pve1/qemu/150/status/current", &[]).await;
    assert_eq!(cur["status"], "running");
    let done = run(&api, 150, &["test", "-e", "/root/later"]).await;
    assert_eq!(done["exitcode"], 1);
    let list = api.get("/nodes/pve1/qemu/150/snapshot", &[]).await;
    assert_eq!(list[0]["vmstate"], 1);
}

#[tokio::test]
async fn zfs_refuses_rollback_past_a_newer_snapshot_and_lvm_thin_does_not() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "lvm").await;
    api.clone_vm(151, "zfs").await;
    api.put(
        "/nodes/pve1/qemu/151/config",
        &[("scsi0", "local-zfs:vm-151-disk-0,size=32G")],
    )
    .await;
    for id in [150, 151] {
        snapshot(&api, id, "baseline", false).await;
        snapshot(&api, id, "deadline", false).await;
    }
    assert_eq!(rollback(&api, 150, "baseline", &[]).await, "OK");
    assert_eq!(
        rollback(&api, 151, "baseline", &[]).await,
        "can't rollback, more recent snapshots exist"
    );
    // Deleting the newer one makes it possible; the tree is re-linked.
    let upid = api
        .delete("/nodes/pve1/qemu/151/snapshot/deadline", &[])
        .await;
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
    assert_eq!(rollback(&api, 151, "baseline", &[]).await, "OK");
    let list = api.get("/nodes/pve1/qemu/151/snapshot", &[]).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    // Unknown snapshots and reused names fail in the task with PVE's texts.
    assert_eq!(
        rollback(&api, 151, "nope", &[]).await,
        "snapshot 'nope' does not exist"
    );
    let upid = api
        .post("/nodes/pve1/qemu/150/snapshot", &[("snapname", "baseline")])
        .await;
    assert_eq!(
        api.wait_task(&upid).await["exitstatus"],
        "snapshot name 'baseline' already used"
    );
    let bad = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/snapshot",
            &[("snapname", "1st")],
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[tokio::test]
async fn rollback_with_start_needs_power_management_up_front() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "s").await;
    snapshot(&api, 150, "base", false).await;
    api.post(
        "/access/roles",
        &[("roleid", "Snap"), ("privs", "VM.Snapshot,VM.Audit")],
    )
    .await;
    api.post(
        "/access/users",
        &[("userid", "t@pve"), ("password", "teacher-pass-1")],
    )
    .await;
    api.put(
        "/access/acl",
        &[("path", "/vms/150"), ("users", "t@pve"), ("roles", "Snap")],
    )
    .await;
    let login: Value = api
        .http
        .post(api.url("/access/ticket"))
        .form(&[("username", "t@pve"), ("password", "teacher-pass-1")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = login["data"]["ticket"].as_str().unwrap();
    let csrf = login["data"]["CSRFPreventionToken"].as_str().unwrap();
    let post = |start: &'static str| {
        api.http
            .post(api.url("/nodes/pve1/qemu/150/snapshot/base/rollback"))
            .header("Cookie", format!("PVEAuthCookie={}", enc(ticket)))
            .header("CSRFPreventionToken", csrf)
            .form(&[("start", start)])
            .send()
    };
    let resp = post("1").await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Permission check failed (/vms/150, VM.PowerMgmt)\n"
    );
    let resp = post("0").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn vzdump_is_a_task_that_leaves_a_backup_volume() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    let upid = api
        .post_ok(
            "/nodes/pve1/vzdump",
            &[
                ("vmid", "150"),
                ("mode", "snapshot"),
                ("storage", "local"),
                ("compress", "zstd"),
                ("notes-template", "{{guestname}}"),
                ("protected", "1"),
            ],
        )
        .await;
    assert!(upid.as_str().unwrap().contains(":vzdump:150:"), "{upid}");
    let backups = api.sim.state()["backups"].clone();
    let b = &backups[0];
    let volid = b["volid"].as_str().unwrap();
    assert!(
        volid.starts_with("local:backup/vzdump-qemu-150-") && volid.ends_with(".vma.zst"),
        "{volid}"
    );
    assert_eq!(
        (b["notes"].clone(), b["protected"].clone()),
        (json!("stud"), json!(true))
    );
    let log = api
        .get(
            &format!("/nodes/pve1/tasks/{}/log", enc(upid.as_str().unwrap())),
            &[],
        )
        .await;
    let text: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["t"].as_str().unwrap())
        .collect();
    assert!(
        text.iter()
            .any(|l| l.starts_with("INFO: creating vzdump archive")),
        "{text:?}"
    );
    // Snapshot mode keeps the guest running; a missing vmid is a parameter error.
    let cur = api.get("/nodes/pve1/qemu/150/status/current", &[]).await;
    assert_eq!(cur["status"], "running");
    let bad = api
        .call(Method::POST, "/nodes/pve1/vzdump", &[("mode", "stop")])
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
}
