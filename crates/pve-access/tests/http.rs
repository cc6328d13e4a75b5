//! Wire tests with httpmock: method, path, query, body and headers of every call are
//! pinned, and bad input is refused before anything is sent.
#![allow(clippy::unwrap_used)]

use httpmock::prelude::*;
use pve_access::exam::{self, GrantOptions, Realm, Seat};
use pve_access::{
    AccessApi, AclEntry, AclPath, NewUser, NodeName, Privilege, RoleId, Subject, VmId,
};
use pve_auth::{PveClient, RetryPolicy, Secret};
use serde_json::json;

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const AUTH: &str = "PVEAPIToken=lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";

fn api(server: &MockServer) -> AccessApi {
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    AccessApi::new(client)
}

fn ok(v: serde_json::Value) -> String {
    json!({ "data": v }).to_string()
}

#[tokio::test]
async fn create_user_sends_exactly_the_fields() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/users")
                .header("authorization", AUTH)
                .body("userid=s01%40pve&password=pw-0123456789&comment=labctl%20lab%20x&enable=1&expire=0");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let mut u = NewUser::new("s01@pve".parse().unwrap());
    u.password = Some(Secret::new("pw-0123456789"));
    u.comment = Some("labctl lab x".into());
    api(&server).create_user(&u).await.unwrap();
    m.assert_async().await;

    // A short password is refused before sending.
    u.password = Some(Secret::new("short"));
    let e = api(&server).create_user(&u).await.unwrap_err().to_string();
    assert!(e.contains("allowed: 8 to 64"), "{e}");
    assert!(!e.contains("short"), "the password is not echoed: {e}");
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn acl_grant_and_revoke_bodies() {
    let server = MockServer::start_async().await;
    let grant = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/access/acl")
                .body("path=%2Fvms%2F101&roles=LabctlExam&users=s01%40pve&propagate=0");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let revoke = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/access/acl")
                .body("path=%2Fvms%2F101&roles=LabctlExam&users=s01%40pve&propagate=0&delete=1");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let e = AclEntry {
        path: AclPath::vm(VmId::new(101).unwrap()),
        subject: Subject::User("s01@pve".parse().unwrap()),
        role: RoleId::new("LabctlExam").unwrap(),
        propagate: false,
    };
    let a = api(&server);
    a.grant(&e).await.unwrap();
    a.revoke(&e).await.unwrap();
    grant.assert_async().await;
    revoke.assert_async().await;
}

#[tokio::test]
async fn roles_refuse_unknown_privileges_before_sending() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/roles")
                .body("roleid=LabctlExam&privs=VM.Audit%2CVM.Console%2CVM.PowerMgmt");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let a = api(&server);
    let id = RoleId::new("LabctlExam").unwrap();
    a.create_role(&id, exam::EXAM_PRIVILEGES).await.unwrap();
    let e = a
        .create_role(&id, &[Privilege::Other("VM.Monitor".into())])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("VM.Monitor"), "{e}");
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn console_tasks_are_listed_per_node_and_stopped_by_upid() {
    let server = MockServer::start_async().await;
    let vnc = "UPID:pve1:0001200A:082EA082:6B0F2F30:vncproxy:101:s01@pve:";
    let other = "UPID:pve1:0001200B:082EA083:6B0F2F31:qmstart:101:root@pam:";
    let list = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/tasks")
                .query_param("source", "active")
                .query_param("limit", "10000")
                .query_param("vmid", "101");
            then.status(200).body(ok(
                json!([{"upid": vnc, "type": "vncproxy"}, {"upid": other, "type": "qmstart"}]),
            ));
        })
        .await;
    let stop = server
        .mock_async(|when, then| {
            when.method(DELETE).path(
                "/api2/json/nodes/pve1/tasks/UPID%3Apve1%3A0001200A%3A082EA082%3A6B0F2F30%3Avncproxy%3A101%3As01%40pve%3A",
            );
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let a = api(&server);
    let tasks = a
        .console_tasks(
            &NodeName::new("pve1").unwrap(),
            Some(VmId::new(101).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].user, "s01@pve");
    assert_eq!(tasks[0].vmid, Some(VmId::new(101).unwrap()));
    a.stop_task(&tasks[0].upid).await.unwrap();
    list.assert_async().await;
    stop.assert_async().await;
}

/// A directory realm: users are created without a password, and the sheet has none.
#[tokio::test]
async fn grant_for_a_directory_realm_sets_no_password() {
    let server = MockServer::start_async().await;
    let users = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/access/users")
                .query_param("full", "1");
            then.status(200)
                .body(ok(json!([{"userid": "root@pam", "enable": 1}])));
        })
        .await;
    let guests = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/cluster/resources")
                .query_param("type", "vm");
            then.status(200).body(ok(json!([
                {"id": "qemu/101", "vmid": 101, "node": "pve2", "type": "qemu", "status": "running"}
            ])));
        })
        .await;
    let role = server
        .mock_async(|when, then| {
            when.method(GET).path("/api2/json/access/roles/LabctlExam");
            then.status(200).body(ok(
                json!({"VM.Audit": 1, "VM.Console": 1, "VM.PowerMgmt": 1}),
            ));
        })
        .await;
    let create = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/users")
                .body("userid=anna%40school&comment=labctl%20lab%20exam1&firstname=anna&enable=1&expire=0");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let acl = server
        .mock_async(|when, then| {
            when.method(GET).path("/api2/json/access/acl");
            then.status(200).body(ok(json!([])));
        })
        .await;
    let put_acl = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/access/acl")
                .body("path=%2Fvms%2F101&roles=LabctlExam&users=anna%40school&propagate=0");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let realm = Realm::Directory("school".into());
    let seats = vec![Seat::new("anna", &realm, VmId::new(101).unwrap()).unwrap()];
    let opts = GrantOptions {
        lab: "exam1".into(),
        realm,
        sheet: dir.path().join("sheet.json"),
        console_host: None,
        reset: exam::Reset::Nobody,
        dry_run: false,
    };
    let out = exam::grant(&api(&server), &opts, &seats).await.unwrap();
    for m in [&users, &guests, &role, &create, &acl, &put_acl] {
        m.assert_async().await;
    }
    let row = &out.sheet.rows[0];
    assert_eq!(row.userid, "anna@school");
    assert_eq!(row.password, None);
    assert_eq!(row.node.as_deref(), Some("pve2"));
    assert_eq!(
        row.console.as_deref(),
        Some("https://pve2:8006/?console=kvm&novnc=1&vmid=101&node=pve2&resize=scale")
    );
}

/// Revoke touches only the lab's marked user, its ACL entry and the console on its guest.
#[tokio::test]
async fn revoke_sends_writes_only_for_the_labs_user() {
    let server = MockServer::start_async().await;
    let users = server
        .mock_async(|when, then| {
            when.method(GET).path("/api2/json/access/users");
            then.status(200).body(ok(json!([
                {"userid": "s01@pve", "enable": 1, "comment": "labctl lab exam1"},
                {"userid": "s09@pve", "enable": 1, "comment": "labctl lab other"},
                {"userid": "teacher@pve", "enable": 1}
            ])));
        })
        .await;
    let disable = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/access/users/s01%40pve")
                .body_includes("enable=0&expire=");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let acl = server
        .mock_async(|when, then| {
            when.method(GET).path("/api2/json/access/acl");
            then.status(200).body(ok(json!([
                {"path": "/vms/101", "type": "user", "ugid": "s01@pve", "roleid": "LabctlExam", "propagate": 0},
                {"path": "/vms/101", "type": "user", "ugid": "teacher@pve", "roleid": "PVEVMUser", "propagate": 1},
                {"path": "/vms/109", "type": "user", "ugid": "s09@pve", "roleid": "LabctlExam", "propagate": 0}
            ])));
        })
        .await;
    let drop_acl = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/api2/json/access/acl")
                .body("path=%2Fvms%2F101&roles=LabctlExam&users=s01%40pve&propagate=0&delete=1");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let nodes = server
        .mock_async(|when, then| {
            when.method(GET).path("/api2/json/nodes");
            then.status(200).body(ok(json!([{"node": "pve1"}])));
        })
        .await;
    let mine = "UPID:pve1:0001200A:082EA082:6B0F2F30:vncproxy:101:s01@pve:";
    let theirs = "UPID:pve1:0001200B:082EA083:6B0F2F31:vncproxy:109:s09@pve:";
    let tasks = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes/pve1/tasks")
                .query_param("source", "active");
            then.status(200)
                .body(ok(json!([{"upid": mine}, {"upid": theirs}])));
        })
        .await;
    let stop = server
        .mock_async(|when, then| {
            when.method(DELETE)
                .path_includes("/api2/json/nodes/pve1/tasks/UPID%3Apve1%3A0001200A");
            then.status(200).body(ok(json!(null)));
        })
        .await;
    let any_other_write = server
        .mock_async(|when, then| {
            when.is_true(|r| r.method() != "GET");
            then.status(500).body("unexpected write");
        })
        .await;
    let opts = exam::RevokeOptions {
        lab: "exam1".into(),
        dry_run: false,
    };
    let report = exam::revoke(&api(&server), &opts, &[]).await.unwrap();
    assert_eq!(report.changes(), 3, "{report:#?}");
    for m in [&users, &disable, &acl, &drop_acl, &nodes, &tasks, &stop] {
        m.assert_async().await;
    }
    any_other_write.assert_calls_async(0).await;
}
