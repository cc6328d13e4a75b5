//! Wire tests with httpmock: every call's method, path, query, body and headers are pinned.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpmock::prelude::*;
use httpmock::{HttpMockRequest, HttpMockResponse};
use pve_auth::{api_path, PveClient, RetryPolicy};
use pve_vm::{
    CloneMode, CloneOptions, ConfigUpdate, DestroyOptions, Error, GuestKind, NewId, NodeName,
    PoolId, ShutdownOptions, Timing, Upid, VmApi, VmId,
};
use serde_json::json;

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const AUTH: &str = "PVEAPIToken=lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const FORM: &str = "application/x-www-form-urlencoded";

fn upid(node: &str, kind: &str, id: u32) -> String {
    format!("UPID:{node}:0000ABCD:00012345:65144CB7:{kind}:{id}:lab@pve!ci:")
}

fn api(server: &MockServer) -> VmApi {
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    VmApi::with_timing(client, Timing::default().scaled(0.001))
}

/// The full request path of an API path.
fn p(segments: &[&str]) -> String {
    format!("/api2/json{}", api_path(segments))
}

fn vmid(n: u32) -> VmId {
    VmId::new(n).unwrap()
}

fn node(n: &str) -> NodeName {
    NodeName::new(n).unwrap()
}

fn pve_error(status: u16, message: &str) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(json!({"data": null, "message": format!("{message}\n")}).to_string())
        .build()
}

fn data(value: serde_json::Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(json!({ "data": value }).to_string())
        .build()
}

/// A task status mock on `node` answering `running` `running_polls` times, then `exit`.
async fn task_mock<'a>(
    server: &'a MockServer,
    upid: &str,
    running_polls: usize,
    exit: &str,
) -> httpmock::Mock<'a> {
    let node = upid.split(':').nth(1).unwrap().to_owned();
    let counter = Arc::new(AtomicUsize::new(0));
    let exit = exit.to_owned();
    let path = p(&["nodes", &node, "tasks", upid, "status"]);
    server
        .mock_async(move |when, then| {
            when.method(GET)
                .path(path)
                .header("authorization", AUTH)
                .query_param_count(".*", ".*", 0);
            then.respond_with(move |_req: &HttpMockRequest| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < running_polls {
                    data(json!({"status": "running"}))
                } else {
                    data(json!({"status": "stopped", "exitstatus": exit}))
                }
            });
        })
        .await
}

#[tokio::test]
async fn guest_lookup_reads_cluster_resources_once_and_caches() {
    let server = MockServer::start_async().await;
    let resources = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/cluster/resources")
                .query_param("type", "vm")
                .query_param_count(".*", ".*", 1)
                .header("authorization", AUTH);
            then.status(200).json_body(json!({"data": [
                {"id":"qemu/101","type":"qemu","vmid":101,"node":"pve2","status":"running","name":"a"},
                {"id":"lxc/102","type":"lxc","vmid":"102","node":"pve1","status":"unknown"}
            ]}));
        })
        .await;
    let api = api(&server);
    let g = api.guest(vmid(101)).await.unwrap();
    assert_eq!((g.node().as_str(), g.kind()), ("pve2", GuestKind::Qemu));
    let ct = api.guest(vmid(102)).await.unwrap();
    assert_eq!((ct.node().as_str(), ct.kind()), ("pve1", GuestKind::Lxc));
    let again = api.guest(vmid(101)).await.unwrap();
    assert_eq!(again.node().as_str(), "pve2");
    resources.assert_calls_async(1).await;

    let err = api.guest(vmid(555)).await.unwrap_err();
    assert!(matches!(err, Error::GuestNotFound { .. }), "{err}");
    assert!(err.to_string().contains("555"));
    resources.assert_calls_async(2).await;

    let explicit = api.guest_on(node("pve3"), GuestKind::Lxc, vmid(777));
    assert_eq!(
        explicit.path(&["status", "current"]),
        "/nodes/pve3/lxc/777/status/current"
    );
}

#[tokio::test]
async fn start_posts_then_polls_the_upid_node_until_ok() {
    let server = MockServer::start_async().await;
    // The task runs on pve2 although the request went to pve1's path: status must be read
    // where the UPID says.
    let u = upid("pve2", "qmstart", 101);
    let start = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/101/status/start")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("")
                .query_param_count(".*", ".*", 0);
            then.status(200).json_body(json!({ "data": u }));
        })
        .await;
    let status = task_mock(&server, &u, 2, "OK").await;
    let api = api(&server);
    let g = api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101));
    g.start().await.unwrap();
    start.assert_calls_async(1).await;
    status.assert_calls_async(3).await;
}

#[tokio::test]
async fn failed_task_carries_exit_status_and_log_tail() {
    let server = MockServer::start_async().await;
    let u = upid("pve1", "qmstart", 9000);
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/9000/status/start");
            then.status(200).json_body(json!({ "data": u }));
        })
        .await;
    task_mock(&server, &u, 0, "you can't start a vm if it's a template").await;
    let lines: Vec<serde_json::Value> = (1..=12)
        .map(|n| json!({"n": n, "t": format!("line {n}")}))
        .chain([json!({"n": 13, "t": "TASK ERROR: you can't start a vm if it's a template"})])
        .collect();
    let log = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(p(&["nodes", "pve1", "tasks", &u, "log"]))
                .header("authorization", AUTH)
                .query_param("start", "0")
                .query_param("limit", "1000")
                .query_param_count(".*", ".*", 2);
            then.status(200)
                .json_body(json!({"data": lines, "total": 13}));
        })
        .await;
    let api = api(&server);
    let err = api
        .guest_on(node("pve1"), GuestKind::Qemu, vmid(9000))
        .start()
        .await
        .unwrap_err();
    log.assert_calls_async(1).await;
    match &err {
        Error::TaskFailed {
            upid,
            exitstatus,
            log_tail,
        } => {
            assert_eq!(upid.to_string(), u);
            assert_eq!(exitstatus, "you can't start a vm if it's a template");
            assert_eq!(log_tail.len(), 10);
            assert_eq!(log_tail[0], "line 4");
            assert!(log_tail[9].starts_with("TASK ERROR"));
        }
        other => panic!("expected TaskFailed, got {other}"),
    }
}

#[tokio::test]
async fn warnings_succeed_and_transient_poll_errors_are_tolerated() {
    let server = MockServer::start_async().await;
    let u: Upid = upid("pve1", "qmstop", 101).parse().unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let status = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(p(&["nodes", "pve1", "tasks", u.as_str(), "status"]));
            then.respond_with(move |_| match c.fetch_add(1, Ordering::SeqCst) {
                0 => pve_error(596, "Connection timed out"),
                1 => pve_error(503, "Service Unavailable"),
                _ => data(json!({"status": "stopped", "exitstatus": "WARNINGS: 2"})),
            });
        })
        .await;
    let api = api(&server);
    let st = api.wait_task(&u, Duration::from_secs(5)).await.unwrap();
    assert_eq!(st.warnings(), Some(2));
    status.assert_calls_async(3).await;

    // A non-transient poll error ends the wait at once.
    let gone: Upid = upid("pve1", "qmstop", 102).parse().unwrap();
    let missing = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(p(&["nodes", "pve1", "tasks", gone.as_str(), "status"]));
            then.respond_with(|_| pve_error(400, "no such task"));
        })
        .await;
    let err = api
        .wait_task(&gone, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    missing.assert_calls_async(1).await;
}

#[tokio::test]
async fn task_wait_times_out_with_what_it_waited_for() {
    let server = MockServer::start_async().await;
    let u: Upid = upid("pve1", "qmclone", 9000).parse().unwrap();
    task_mock(&server, u.as_str(), usize::MAX, "OK").await;
    let api = api(&server);
    let err = api
        .wait_task(&u, Duration::from_millis(30))
        .await
        .unwrap_err();
    match err {
        Error::Timeout { what, after, .. } => {
            assert!(what.contains(u.as_str()));
            assert_eq!(after, Duration::from_millis(30));
        }
        other => panic!("expected Timeout, got {other}"),
    }
}

#[tokio::test]
async fn stop_and_shutdown_bodies_and_lxc_not_running_is_success() {
    let server = MockServer::start_async().await;
    let u = upid("pve1", "qmshutdown", 101);
    let shutdown = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/101/status/shutdown")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("timeout=30&forceStop=1");
            then.status(200).json_body(json!({ "data": u }));
        })
        .await;
    task_mock(&server, &u, 0, "OK").await;
    let ct_stop = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/lxc/102/status/stop")
                .header("authorization", AUTH)
                .body("");
            then.respond_with(|_| pve_error(500, "CT 102 not running"));
        })
        .await;
    let api = api(&server);
    api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101))
        .shutdown(ShutdownOptions {
            timeout: Some(Duration::from_secs(30)),
            force_stop: true,
        })
        .await
        .unwrap();
    shutdown.assert_calls_async(1).await;
    api.guest_on(node("pve1"), GuestKind::Lxc, vmid(102))
        .stop()
        .await
        .unwrap();
    ct_stop.assert_calls_async(1).await;
}

#[tokio::test]
async fn config_read_update_and_digest_retry() {
    let server = MockServer::start_async().await;
    let digests = Arc::new(AtomicUsize::new(0));
    let d = digests.clone();
    let get = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/qemu/101/config")
                .header("authorization", AUTH)
                .query_param_count(".*", ".*", 0);
            then.respond_with(move |_| {
                let n = d.fetch_add(1, Ordering::SeqCst);
                data(json!({
                    "digest": format!("d{n}"), "name": "stud-01", "cores": 2,
                    "tags": "exam", "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"
                }))
            });
        })
        .await;
    // add_tags reads d1; that write loses against a concurrent edit; the re-read (d2) wins.
    let put_stale = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/nodes/pve1/qemu/101/config")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("tags=exam%3Bstudent-07&digest=d1");
            then.respond_with(|_| pve_error(500, "checksum mismatch (file change by other user?)"));
        })
        .await;
    let put_ok = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/nodes/pve1/qemu/101/config")
                .body("tags=exam%3Bstudent-07&digest=d2");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let api = api(&server);
    let g = api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101));
    let cfg = g.config().await.unwrap();
    assert_eq!(cfg.digest.as_deref(), Some("d0"));
    assert_eq!(cfg.nics()[0].1.mac(), Some("BC:24:11:00:00:01"));
    g.add_tags(&["Student-07"]).await.unwrap();
    put_stale.assert_calls_async(1).await;
    put_ok.assert_calls_async(1).await;
    get.assert_calls_async(3).await;

    let plain = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/nodes/pve1/qemu/101/config")
                .body("cores=4&delete=description%2Cnet1");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    g.update_config(
        &ConfigUpdate::new()
            .set("cores", 4u32)
            .delete("description")
            .delete("net1"),
    )
    .await
    .unwrap();
    plain.assert_calls_async(1).await;
    // Nothing to change: nothing sent.
    g.update_config(&ConfigUpdate::new()).await.unwrap();
    plain.assert_calls_async(1).await;
}

#[tokio::test]
async fn set_tags_normalises_and_config_lock_timeouts_are_retried() {
    let server = MockServer::start_async().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let put = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/nodes/pve1/lxc/102/config")
                .header("authorization", AUTH)
                .body("tags=exam-2024%3Bstudent-07");
            then.respond_with(move |_| {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    pve_error(
                        500,
                        "can't lock file '/run/lock/lxc/pve-config-102.lock' - got timeout",
                    )
                } else {
                    data(json!(null))
                }
            });
        })
        .await;
    let api = api(&server);
    let ct = api.guest_on(node("pve1"), GuestKind::Lxc, vmid(102));
    ct.set_tags(&["Student-07 exam-2024", "student-07"])
        .await
        .unwrap();
    put.assert_calls_async(2).await;
    let err = ct.set_tags(&["bad:tag"]).await.unwrap_err();
    assert!(err.to_string().contains("':'"), "{err}");
    put.assert_calls_async(2).await;
}

#[tokio::test]
async fn next_free_id_skips_used_and_reserved_ids() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/cluster/resources")
                .query_param("type", "vm");
            then.status(200).json_body(json!({"data": [
                {"type":"qemu","vmid":100,"node":"pve1"},
                {"type":"qemu","vmid":101,"node":"pve1"}
            ]}));
        })
        .await;
    // 102 is taken by a config the resource list does not show yet.
    let taken = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/cluster/nextid")
                .header("authorization", AUTH)
                .query_param("vmid", "102")
                .query_param_count(".*", ".*", 1);
            then.status(400).json_body(json!({
                "errors": {"vmid": "VM 102 already exists"}, "data": null,
                "message": "Parameter verification failed.\n"
            }));
        })
        .await;
    let mut free = Vec::new();
    for id in 103..=106 {
        free.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path("/api2/json/cluster/nextid")
                        .query_param("vmid", id.to_string());
                    then.status(200).json_body(json!({"data": id.to_string()}));
                })
                .await,
        );
    }
    let api = api(&server);
    let first = api.next_free_id(vmid(100)).await.unwrap();
    assert_eq!(first, vmid(103));
    taken.assert_calls_async(1).await;
    // 103 is reserved now: the next caller gets 104 without probing 103 again.
    let second = api.next_free_id(vmid(100)).await.unwrap();
    assert_eq!(second, vmid(104));
    free[0].assert_calls_async(1).await;
    assert_eq!(api.reserved_ids(), vec![vmid(103), vmid(104)]);

    let block = api.allocate_ids(vmid(100)..=vmid(106), 2).await.unwrap();
    assert_eq!(block, vec![vmid(105), vmid(106)]);
    let err = api
        .allocate_ids(vmid(100)..=vmid(106), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoFreeId { .. }), "{err}");
    assert!(err.to_string().contains("100..=106"), "{err}");

    api.release_ids(&[vmid(103)]);
    assert_eq!(api.next_free_id(vmid(100)).await.unwrap(), vmid(103));
}

async fn resources_and_free_ids(server: &MockServer, free: &[u32]) {
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/cluster/resources")
                .query_param("type", "vm");
            then.status(200).json_body(json!({"data": [
                {"type":"qemu","vmid":9000,"node":"pve1","template":1},
                {"type":"lxc","vmid":9001,"node":"pve1","template":1}
            ]}));
        })
        .await;
    for id in free {
        server
            .mock_async(|when, then| {
                when.method(GET)
                    .path("/api2/json/cluster/nextid")
                    .query_param("vmid", id.to_string());
                then.status(200).json_body(json!({"data": id.to_string()}));
            })
            .await;
    }
}

#[tokio::test]
async fn qemu_clone_moves_to_the_next_id_when_its_id_is_taken() {
    let server = MockServer::start_async().await;
    resources_and_free_ids(&server, &[100, 101]).await;
    let lost = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/9000/clone")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("newid=100&name=stud-01&pool=exam&full=0");
            then.respond_with(|_| {
                pve_error(500, "unable to create VM 100: config file already exists")
            });
        })
        .await;
    let u = upid("pve1", "qmclone", 9000);
    let won = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/9000/clone")
                .body("newid=101&name=stud-01&pool=exam&full=0");
            then.status(200).json_body(json!({ "data": u }));
        })
        .await;
    task_mock(&server, &u, 1, "OK").await;
    let api = api(&server);
    let template = api.guest(vmid(9000)).await.unwrap();
    let student = template
        .clone_to(CloneOptions {
            hostname: Some("stud-01".into()),
            mode: CloneMode::Linked,
            pool: Some(PoolId::new("exam").unwrap()),
            newid: NewId::Within(vmid(100)..=vmid(199)),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(student.vmid(), vmid(101));
    assert_eq!(student.node().as_str(), "pve1");
    lost.assert_calls_async(1).await;
    won.assert_calls_async(1).await;
    assert!(api.reserved_ids().is_empty(), "the clone released its id");

    // An exact id that is taken fails instead of moving.
    let err = template
        .clone_to(CloneOptions {
            hostname: Some("stud-01".into()),
            mode: CloneMode::Linked,
            pool: Some(PoolId::new("exam").unwrap()),
            newid: NewId::Exact(vmid(100)),
            ..CloneOptions::default()
        })
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{err}");

    // A bad hostname never reaches the server.
    let err = template
        .clone_to(CloneOptions {
            hostname: Some("stud 01".into()),
            ..CloneOptions::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("' '"), "{err}");
    lost.assert_calls_async(2).await;
    won.assert_calls_async(1).await;
}

#[tokio::test]
async fn clone_task_storage_timeout_is_retried_after_checking_for_leftovers() {
    let server = MockServer::start_async().await;
    resources_and_free_ids(&server, &[100]).await;
    let first = upid("pve1", "qmclone", 9000);
    let second = "UPID:pve1:0000ABCE:00012346:65144CB8:qmclone:9000:lab@pve!ci:".to_owned();
    let posts = Arc::new(AtomicUsize::new(0));
    let pc = posts.clone();
    let (f, s) = (first.clone(), second.clone());
    let clone = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/9000/clone")
                .body("newid=100&name=stud-01&full=1&storage=local-lvm");
            then.respond_with(move |_| {
                if pc.fetch_add(1, Ordering::SeqCst) == 0 {
                    data(json!(f))
                } else {
                    data(json!(s))
                }
            });
        })
        .await;
    task_mock(
        &server,
        &first,
        0,
        "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout",
    )
    .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path_includes(format!("{}/log", p(&["nodes", "pve1", "tasks", &first])));
            then.status(200)
                .json_body(json!({"data": [{"n":1,"t":"TASK ERROR: x"}]}));
        })
        .await;
    task_mock(&server, &second, 0, "OK").await;
    // PVE removed the partial guest: its config does not exist.
    let leftover = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/qemu/100/config")
                .header("authorization", AUTH);
            then.respond_with(|_| {
                pve_error(
                    500,
                    "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
                )
            });
        })
        .await;
    let api = api(&server);
    let g = api
        .guest_on(node("pve1"), GuestKind::Qemu, vmid(9000))
        .clone_to(CloneOptions {
            hostname: Some("stud-01".into()),
            mode: CloneMode::Full,
            storage: Some("local-lvm".into()),
            newid: NewId::Within(vmid(100)..=vmid(100)),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(g.vmid(), vmid(100));
    clone.assert_calls_async(2).await;
    leftover.assert_calls_async(1).await;
}

/// A clone into 100 whose task fails ("no space left") while `leftover` is the config then
/// found under 100. Returns how many DELETEs of 100 were sent.
async fn failed_clone_with_leftover(leftover: serde_json::Value) -> usize {
    let server = MockServer::start_async().await;
    resources_and_free_ids(&server, &[100]).await;
    let u = upid("pve1", "qmclone", 9000);
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/9000/clone");
            then.status(200).json_body(json!({ "data": u }));
        })
        .await;
    task_mock(&server, &u, 0, "clone failed: no space left on device").await;
    server
        .mock_async(|when, then| {
            when.method(GET).path_includes("/log");
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/qemu/100/config");
            then.status(200).json_body(json!({ "data": leftover }));
        })
        .await;
    let d = upid("pve1", "qmdestroy", 100);
    let destroy = server
        .mock_async(|when, then| {
            when.method(DELETE)
                .path("/api2/json/nodes/pve1/qemu/100")
                .header("authorization", AUTH)
                .query_param("purge", "1")
                .query_param("destroy-unreferenced-disks", "1")
                .query_param_count(".*", ".*", 2)
                .body("");
            then.status(200).json_body(json!({ "data": d }));
        })
        .await;
    task_mock(&server, &d, 0, "OK").await;
    let api = api(&server);
    let err = api
        .guest_on(node("pve1"), GuestKind::Qemu, vmid(9000))
        .clone_to(CloneOptions {
            newid: NewId::Within(vmid(100)..=vmid(100)),
            hostname: Some("stud-01".into()),
            ..CloneOptions::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    destroy.calls_async().await
}

#[tokio::test]
async fn failed_clone_removes_the_partial_guest_it_created() {
    let ours = json!({"digest": "x", "name": "stud-01"});
    assert_eq!(failed_clone_with_leftover(ours).await, 1);
}

#[tokio::test]
async fn failed_clone_leaves_a_guest_another_client_cloned_into_the_freed_id_alone() {
    // PVE removed our partial guest; another client took the id at once.
    let theirs = json!({"digest": "x", "name": "stud-02"});
    assert_eq!(failed_clone_with_leftover(theirs).await, 0);
    let theirs_in_progress = json!({"digest": "x", "name": "stud-01", "lock": "clone"});
    assert_eq!(failed_clone_with_leftover(theirs_in_progress).await, 0);
}

#[tokio::test]
async fn lxc_clone_sends_hostname_and_retries_a_locked_template() {
    let server = MockServer::start_async().await;
    resources_and_free_ids(&server, &[150]).await;
    let u = upid("pve1", "vzclone", 9001);
    let posts = Arc::new(AtomicUsize::new(0));
    let pc = posts.clone();
    let uc = u.clone();
    let clone = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/lxc/9001/clone")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("newid=150&hostname=ct-01");
            then.respond_with(move |_| {
                if pc.fetch_add(1, Ordering::SeqCst) < 2 {
                    pve_error(500, "CT is locked (disk)")
                } else {
                    data(json!(uc))
                }
            });
        })
        .await;
    task_mock(&server, &u, 0, "OK").await;
    let api = api(&server);
    let ct = api
        .guest(vmid(9001))
        .await
        .unwrap()
        .clone_to(CloneOptions {
            hostname: Some("ct-01".into()),
            newid: NewId::Within(vmid(150)..=vmid(160)),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    assert_eq!((ct.vmid(), ct.kind()), (vmid(150), GuestKind::Lxc));
    clone.assert_calls_async(3).await;
}

#[tokio::test]
async fn templates_qemu_waits_for_task_lxc_polls_config() {
    let server = MockServer::start_async().await;
    let u = upid("pve1", "qmtemplate", 101);
    let qemu = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/101/template")
                .header("authorization", AUTH)
                .body("");
            then.status(200).json_body(json!({ "data": u }));
        })
        .await;
    task_mock(&server, &u, 1, "OK").await;
    let lxc = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/lxc/102/template")
                .body("");
            then.status(200).json_body(json!({ "data": null }));
        })
        .await;
    let polls = Arc::new(AtomicUsize::new(0));
    let pc = polls.clone();
    let config = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/lxc/102/config");
            then.respond_with(move |_| {
                if pc.fetch_add(1, Ordering::SeqCst) < 2 {
                    data(json!({"digest": "a", "hostname": "ct", "lock": "template"}))
                } else {
                    data(json!({"digest": "b", "hostname": "ct", "template": 1}))
                }
            });
        })
        .await;
    let api = api(&server);
    api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101))
        .make_template()
        .await
        .unwrap();
    qemu.assert_calls_async(1).await;
    api.guest_on(node("pve1"), GuestKind::Lxc, vmid(102))
        .make_template()
        .await
        .unwrap();
    lxc.assert_calls_async(1).await;
    config.assert_calls_async(3).await;
}

async fn status_mock<'a>(
    server: &'a MockServer,
    path: &str,
    status: &str,
    template: bool,
) -> httpmock::Mock<'a> {
    let body = json!({"data": {"status": status, "template": if template { 1 } else { 0 }}});
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api2/json{path}/status/current"))
                .header("authorization", AUTH)
                .query_param_count(".*", ".*", 0);
            then.status(200).json_body(body);
        })
        .await
}

#[tokio::test]
async fn destroy_refuses_templates_and_running_guests() {
    let server = MockServer::start_async().await;
    status_mock(&server, "/nodes/pve1/qemu/9000", "stopped", true).await;
    status_mock(&server, "/nodes/pve1/qemu/101", "running", false).await;
    let delete = server
        .mock_async(|when, then| {
            when.method(DELETE);
            then.status(500);
        })
        .await;
    let api = api(&server);
    let err = api
        .guest_on(node("pve1"), GuestKind::Qemu, vmid(9000))
        .destroy(DestroyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }));
    assert!(
        err.to_string().contains("VM 9000 is a template")
            && err.to_string().contains("allow_template"),
        "{err}"
    );
    let err = api
        .guest_on(node("pve1"), GuestKind::Qemu, vmid(101))
        .destroy(DestroyOptions {
            allow_template: true,
            ..DestroyOptions::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("VM 101 is running") && err.to_string().contains("stop_first"),
        "{err}"
    );
    delete.assert_calls_async(0).await;
}

#[tokio::test]
async fn destroy_stops_first_and_puts_options_in_the_query() {
    let server = MockServer::start_async().await;
    status_mock(&server, "/nodes/pve2/lxc/150", "running", false).await;
    let s = upid("pve2", "vzstop", 150);
    let stop = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve2/lxc/150/status/stop")
                .body("");
            then.status(200).json_body(json!({ "data": s }));
        })
        .await;
    task_mock(&server, &s, 0, "OK").await;
    let d = upid("pve2", "vzdestroy", 150);
    let delete = server
        .mock_async(|when, then| {
            when.method(DELETE)
                .path("/api2/json/nodes/pve2/lxc/150")
                .header("authorization", AUTH)
                .query_param("purge", "1")
                .query_param("destroy-unreferenced-disks", "1")
                .query_param_count(".*", ".*", 2)
                .header_missing("content-type")
                .body("");
            then.status(200).json_body(json!({ "data": d }));
        })
        .await;
    task_mock(&server, &d, 1, "OK").await;
    let api = api(&server);
    api.guest_on(node("pve2"), GuestKind::Lxc, vmid(150))
        .destroy(DestroyOptions {
            purge: true,
            destroy_unreferenced_disks: true,
            stop_first: true,
            allow_template: false,
        })
        .await
        .unwrap();
    stop.assert_calls_async(1).await;
    delete.assert_calls_async(1).await;
}

#[tokio::test]
async fn wait_agent_fails_fast_without_agent_and_waits_while_not_running() {
    let server = MockServer::start_async().await;
    let none = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/101/agent/ping")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("");
            then.respond_with(|_| pve_error(500, "No QEMU guest agent configured"));
        })
        .await;
    let pings = Arc::new(AtomicUsize::new(0));
    let pc = pings.clone();
    let booting = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/102/agent/ping")
                .body("");
            then.respond_with(move |_| match pc.fetch_add(1, Ordering::SeqCst) {
                0 => pve_error(500, "VM 102 is not running"),
                1 | 2 => pve_error(500, "QEMU guest agent is not running"),
                _ => data(json!({"result": {}})),
            });
        })
        .await;
    let api = api(&server);
    let err = api
        .guest_on(node("pve1"), GuestKind::Qemu, vmid(101))
        .wait_agent(Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AgentNotConfigured { .. }), "{err}");
    none.assert_calls_async(1).await;

    api.guest_on(node("pve1"), GuestKind::Qemu, vmid(102))
        .wait_agent(Duration::from_secs(30))
        .await
        .unwrap();
    booting.assert_calls_async(4).await;

    let err = api
        .guest_on(node("pve1"), GuestKind::Lxc, vmid(103))
        .wait_agent(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("containers"), "{err}");
}

#[tokio::test]
async fn pool_membership_uses_put_pools() {
    let server = MockServer::start_async().await;
    let join = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/pools")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("poolid=exam&vms=101&allow-move=1");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let leave = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/pools")
                .body("poolid=exam&vms=101&delete=1");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let api = api(&server);
    let g = api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101));
    let pool = PoolId::new("exam").unwrap();
    g.join_pool(&pool, true).await.unwrap();
    g.leave_pool(&pool).await.unwrap();
    join.assert_calls_async(1).await;
    leave.assert_calls_async(1).await;
}

#[tokio::test]
async fn reads_are_repeated_when_the_server_could_not_fork_a_worker() {
    let server = MockServer::start_async().await;
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let status = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/qemu/101/status/current")
                .header("authorization", AUTH);
            then.respond_with(move |_| {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    pve_error(500, "got no worker upid - start worker failed")
                } else {
                    data(json!({"status": "running", "template": 0}))
                }
            });
        })
        .await;
    // pve-auth repeats such reads; pve-vm relies on its retry policy.
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(
            RetryPolicy::default()
                .max_attempts(4)
                .initial_backoff(std::time::Duration::from_millis(1))
                .max_backoff(std::time::Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let api = VmApi::with_timing(client, Timing::default().scaled(0.001));
    let g = api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101));
    assert!(g.status().await.unwrap().is_running());
    status.assert_calls_async(3).await;

    // Other server errors are not repeated.
    let config = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/qemu/101/config");
            then.respond_with(|_| pve_error(500, "VM 101 qmp command failed"));
        })
        .await;
    assert!(g.config().await.is_err());
    config.assert_calls_async(1).await;
}

#[tokio::test]
async fn update_nic_writes_back_the_whole_device_with_its_mac() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/qemu/101/config");
            then.status(200).json_body(json!({"data": {
                "digest": "abc",
                "net0": "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,tag=10"
            }}));
        })
        .await;
    let put = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/nodes/pve1/qemu/101/config")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("net0=virtio%3DBC%3A24%3A11%3A2E%3AC5%3A4A%2Cbridge%3Dvmbr0%2Ctag%3D10%2Cfirewall%3D1&digest=abc");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let api = api(&server);
    let g = api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101));
    g.update_nic(0, |nic| nic.set_firewall(true)).await.unwrap();
    put.assert_calls_async(1).await;
    // No change, no write.
    g.update_nic(0, |nic| nic.set_link_down(false))
        .await
        .unwrap();
    put.assert_calls_async(1).await;
}

#[tokio::test]
async fn reboot_posts_and_waits() {
    let server = MockServer::start_async().await;
    let status = status_mock(&server, "/nodes/pve1/qemu/101", "running", false).await;
    let u = upid("pve1", "qmreboot", 101);
    let reboot = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/101/status/reboot")
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body("")
                .query_param_count(".*", ".*", 0);
            then.status(200).json_body(json!({ "data": u }));
        })
        .await;
    let task = task_mock(&server, &u, 1, "OK").await;
    let api = api(&server);
    api.guest_on(node("pve1"), GuestKind::Qemu, vmid(101))
        .reboot()
        .await
        .unwrap();
    status.assert_calls_async(1).await; // uptime before, to recognise a lost answer
    reboot.assert_calls_async(1).await;
    task.assert_calls_async(2).await;
}
