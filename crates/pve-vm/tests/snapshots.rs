//! Wire tests (httpmock) of snapshots, rollback, vzdump and a NIC's link state.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use httpmock::prelude::*;
use httpmock::{HttpMockRequest, HttpMockResponse};
use pve_auth::{PveClient, RetryPolicy};
use pve_vm::{
    BackupMode, Error, Guest, GuestKind, NodeName, SnapshotName, SnapshotOptions, Timing, VmApi,
    VmId, VzdumpOptions,
};
use serde_json::json;

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const AUTH: &str = "PVEAPIToken=lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const FORM: &str = "application/x-www-form-urlencoded";
const VM: &str = "/api2/json/nodes/pve1/qemu/100";

fn upid(kind: &str) -> String {
    format!("UPID:pve1:0000ABCD:00012345:65144CB7:{kind}:100:lab@pve!ci:")
}

fn guest(server: &MockServer) -> Guest {
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let vms = VmApi::with_timing(client, Timing::default().scaled(0.001));
    vms.guest_on(
        NodeName::new("pve1").unwrap(),
        GuestKind::Qemu,
        VmId::new(100).unwrap(),
    )
}

async fn task_ok<'a>(server: &'a MockServer, kind: &str) -> httpmock::Mock<'a> {
    let path = format!(
        "/api2/json/nodes/pve1/tasks/{}/status",
        pve_auth::api_path(&[&upid(kind)]).trim_start_matches('/')
    );
    server
        .mock_async(|when, then| {
            when.method(GET).path(path);
            then.status(200)
                .json_body(json!({"data": {"status": "stopped", "exitstatus": "OK"}}));
        })
        .await
}

fn name(s: &str) -> SnapshotName {
    SnapshotName::new(s).unwrap()
}

#[tokio::test]
async fn snapshot_create_with_vmstate_list_rollback_delete() {
    let server = MockServer::start_async().await;
    let create = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("{VM}/snapshot"))
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("snapname=deadline&description=at%2012%3A00&vmstate=1");
            then.status(200)
                .json_body(json!({"data": upid("qmsnapshot")}));
        })
        .await;
    let rollback = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("{VM}/snapshot/baseline/rollback"))
                .body("");
            then.status(200)
                .json_body(json!({"data": upid("qmrollback")}));
        })
        .await;
    let delete = server
        .mock_async(|when, then| {
            when.method(DELETE)
                .path(format!("{VM}/snapshot/baseline"))
                .query_param("force", "1")
                .query_param_count(".*", ".*", 1)
                .body("");
            then.status(200)
                .json_body(json!({"data": upid("qmdelsnapshot")}));
        })
        .await;
    let list = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("{VM}/snapshot"));
            then.status(200).json_body(json!({"data": [
                {"name": "baseline", "snaptime": 1700000000, "description": ""},
                {"name": "current", "parent": "baseline", "running": 1}
            ]}));
        })
        .await;
    let t1 = task_ok(&server, "qmsnapshot").await;
    let t2 = task_ok(&server, "qmrollback").await;
    let t3 = task_ok(&server, "qmdelsnapshot").await;
    let g = guest(&server);

    let mut opts = SnapshotOptions::new(name("deadline"));
    opts.description = Some("at 12:00".into());
    opts.vmstate = true;
    g.create_snapshot(&opts).await.unwrap();
    let snaps = g.snapshots().await.unwrap();
    assert_eq!(snaps.len(), 2);
    assert!(snaps[1].is_current());
    g.rollback(&name("baseline"), false).await.unwrap();
    g.delete_snapshot(&name("baseline"), true).await.unwrap();
    for m in [&create, &rollback, &delete, &list, &t1, &t2, &t3] {
        m.assert_calls_async(1).await;
    }
}

#[tokio::test]
async fn a_failed_rollback_task_carries_pves_text() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("{VM}/snapshot/baseline/rollback"))
                .body("start=1");
            then.status(200)
                .json_body(json!({"data": upid("qmrollback")}));
        })
        .await;
    let u = upid("qmrollback");
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path_includes("/tasks/")
                .path_includes("/status");
            then.status(200)
                .json_body(json!({"data": {"status": "stopped",
                "exitstatus": "can't rollback, more recent snapshots exist"}}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path_includes("/log");
            then.status(200)
                .json_body(json!({"data": [{"n": 1, "t": "TASK ERROR"}]}));
        })
        .await;
    let g = guest(&server);
    let err = g.rollback(&name("baseline"), true).await.unwrap_err();
    match &err {
        Error::TaskFailed {
            upid, exitstatus, ..
        } => {
            assert_eq!(upid.to_string(), u);
            assert!(exitstatus.contains("more recent snapshots exist"));
        }
        other => panic!("expected TaskFailed, got {other}"),
    }
}

#[tokio::test]
async fn invalid_names_and_container_vmstate_send_nothing() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    assert!(SnapshotName::new("1st").is_err());
    let g = guest(&server);
    let ct = g.api().guest_on(g.node().clone(), GuestKind::Lxc, g.vmid());
    let mut opts = SnapshotOptions::new(name("deadline"));
    opts.vmstate = true;
    let err = ct.create_snapshot(&opts).await.unwrap_err();
    assert!(err.to_string().contains("containers"), "{err}");
    // (A container's rollback takes `start` like a VM's: the API schema lists it for both.)
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn vzdump_runs_a_task_and_reads_the_archive_name() {
    let server = MockServer::start_async().await;
    let post = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/vzdump")
                .header("content-type", FORM)
                .body(
                    "vmid=100&mode=snapshot&storage=backup&compress=zstd&\
                     notes-template=%7B%7Bguestname%7D%7D%20deadline&protected=1",
                );
            then.status(200).json_body(json!({"data": upid("vzdump")}));
        })
        .await;
    task_ok(&server, "vzdump").await;
    server
        .mock_async(|when, then| {
            when.method(GET).path_includes("/log");
            then.status(200).json_body(json!({"data": [
                {"n": 1, "t": "INFO: starting new backup job: vzdump 100"},
                {"n": 2, "t": "INFO: creating vzdump archive '/mnt/backup/dump/vzdump-qemu-100-2026_07_01-12_00_00.vma.zst'"},
                {"n": 3, "t": "INFO: Backup job finished successfully"}
            ]}));
        })
        .await;
    let g = guest(&server);
    let b = g
        .vzdump(&VzdumpOptions {
            mode: BackupMode::Snapshot,
            storage: Some("backup".into()),
            compress: Some("zstd".into()),
            notes_template: Some("{{guestname}} deadline".into()),
            protected: true,
        })
        .await
        .unwrap();
    assert!(b.task.succeeded());
    assert_eq!(
        b.archive.as_deref(),
        Some("/mnt/backup/dump/vzdump-qemu-100-2026_07_01-12_00_00.vma.zst")
    );
    post.assert_calls_async(1).await;
}

fn config_reply(n: usize) -> HttpMockResponse {
    let net0 = if n == 0 {
        "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1,tag=10"
    } else {
        // Someone else changed the config in between (another digest).
        "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1,tag=10,rate=5"
    };
    HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(
            json!({"data": {"digest": format!("d{n}"), "net0": net0, "name": "stud"}}).to_string(),
        )
        .build()
}

#[tokio::test]
async fn link_down_resends_the_whole_nic_with_its_mac_guarded_by_the_digest() {
    let server = MockServer::start_async().await;
    let reads = Arc::new(AtomicUsize::new(0));
    let r = reads.clone();
    let config = server
        .mock_async(move |when, then| {
            when.method(GET).path(format!("{VM}/config"));
            then.respond_with(move |_: &HttpMockRequest| {
                config_reply(r.fetch_add(1, Ordering::SeqCst))
            });
        })
        .await;
    // The first write loses the race (digest d0 is stale), the second goes through.
    let stale = server
        .mock_async(|when, then| {
            when.method(PUT).path(format!("{VM}/config")).body(
                "net0=virtio%3DBC%3A24%3A11%3A2E%3AC5%3A4A%2Cbridge%3Dvmbr0%2Cfirewall%3D1%2Ctag%3D10%2Clink_down%3D1&digest=d0",
            );
            then.status(500)
                .header("content-type", "application/json")
                .body(r#"{"data":null,"message":"checksum mismatch (file change by other user?)\n"}"#);
        })
        .await;
    let good = server
        .mock_async(|when, then| {
            when.method(PUT).path(format!("{VM}/config")).body(
                "net0=virtio%3DBC%3A24%3A11%3A2E%3AC5%3A4A%2Cbridge%3Dvmbr0%2Cfirewall%3D1%2Ctag%3D10%2Crate%3D5%2Clink_down%3D1&digest=d1",
            );
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let g = guest(&server);
    let change = g.set_link("net0", false).await.unwrap();
    assert_eq!(change.mac, "BC:24:11:2E:C5:4A");
    assert!(change.down && !change.was_down && change.changed());
    config.assert_calls_async(2).await;
    stale.assert_calls_async(1).await;
    good.assert_calls_async(1).await;
}

#[tokio::test]
async fn link_up_removes_link_down_and_an_unchanged_link_writes_nothing() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("{VM}/config"));
            then.status(200).json_body(json!({"data": {"digest": "d",
                "net0": "e1000=BC:24:11:00:00:01,bridge=vmbr1,link_down=1",
                "net1": "virtio=BC:24:11:00:00:02,bridge=vmbr0",
                "net2": "virtio,bridge=vmbr0"}}));
        })
        .await;
    let up = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path(format!("{VM}/config"))
                .body("net0=e1000%3DBC%3A24%3A11%3A00%3A00%3A01%2Cbridge%3Dvmbr1&digest=d");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let g = guest(&server);
    let c = g.set_link("net0", true).await.unwrap();
    assert!(c.was_down && !c.down);
    let c = g.set_link("net1", true).await.unwrap();
    assert!(!c.changed());
    up.assert_calls_async(1).await;
    let err = g.set_link("net2", false).await.unwrap_err();
    assert!(err.to_string().contains("no MAC"), "{err}");
    let err = g.set_link("eth0", false).await.unwrap_err();
    assert!(err.to_string().contains("net0, net1"), "{err}");
    let err = g.set_link("net7", false).await.unwrap_err();
    assert!(err.to_string().contains("no such network device"), "{err}");
    up.assert_calls_async(1).await;
}
