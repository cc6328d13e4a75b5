//! Pools: create, list, members (add, remove, move), delete, legacy paths, clone into a pool.

use reqwest::Method;
use serde_json::json;

use crate::common::Api;

#[tokio::test]
async fn pool_lifecycle_and_membership_rules() {
    let api = Api::start(0.02).await;
    api.post("/pools", &[("poolid", "exam"), ("comment", "Exam 1")])
        .await;
    api.post("/pools", &[("poolid", "other")]).await;
    let a = api
        .call(Method::POST, "/pools", &[("poolid", "exam")])
        .await;
    assert_eq!(
        (a.status, a.message()),
        (500, "create pool failed: pool 'exam' already exists\n")
    );
    let list = api.get("/pools", &[]).await;
    assert_eq!(
        list,
        json!([{"poolid": "exam", "comment": "Exam 1"}, {"poolid": "other"}])
    );

    // Clone into the pool: membership is added at the end of the task.
    let upid = api
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150"), ("pool", "exam"), ("full", "1")],
        )
        .await;
    let during = api
        .wait_for("/nodes/pve1/qemu/150/status/current", |a| a.status == 200)
        .await;
    if during.data()["lock"] == "clone" {
        let members = api.get("/pools", &[("poolid", "exam")]).await;
        assert_eq!(
            members[0]["members"],
            json!([]),
            "not a member before the task ends"
        );
    }
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
    let members = api.get("/pools", &[("poolid", "exam")]).await;
    assert_eq!(members[0]["members"][0]["vmid"], 150);
    assert_eq!(members[0]["members"][0]["pool"], "exam");
    let res = api.get("/cluster/resources", &[("type", "vm")]).await;
    assert!(res
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["vmid"] == 150 && g["pool"] == "exam"));
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "151"), ("pool", "nope")],
        )
        .await;
    assert_eq!(
        (a.status, a.message()),
        (
            403,
            "Permission check failed (pool 'nope' does not exist)\n"
        )
    );

    // Add, move, remove members.
    api.put("/pools", &[("poolid", "exam"), ("vms", "100")])
        .await;
    let a = api
        .call(Method::PUT, "/pools", &[("poolid", "exam"), ("vms", "100")])
        .await;
    assert_eq!(
        a.message(),
        "update pools failed: VM 100 is already a pool member\n"
    );
    let a = api
        .call(
            Method::PUT,
            "/pools",
            &[("poolid", "other"), ("vms", "100")],
        )
        .await;
    assert_eq!(
        a.message(),
        "update pools failed: VM 100 belongs already to pool 'exam' and 'allow-move' is not set\n"
    );
    api.put(
        "/pools",
        &[("poolid", "other"), ("vms", "100"), ("allow-move", "1")],
    )
    .await;
    let a = api
        .call(
            Method::PUT,
            "/pools",
            &[("poolid", "exam"), ("vms", "100"), ("delete", "1")],
        )
        .await;
    assert_eq!(
        a.message(),
        "update pools failed: VM 100 is not a pool member\n"
    );
    api.put(
        "/pools/other",
        &[("vms", "100"), ("delete", "1"), ("comment", "legacy path")],
    )
    .await;
    let legacy = api.get("/pools/other", &[]).await;
    assert_eq!(legacy, json!({"comment": "legacy path", "members": []}));
    let a = api
        .call(Method::PUT, "/pools", &[("poolid", "exam"), ("vms", "777")])
        .await;
    assert_eq!(a.message(), "update pools failed: VM 777 does not exist\n");

    // Only empty pools can be deleted; destroy removes membership.
    let a = api
        .call(Method::DELETE, "/pools", &[("poolid", "exam")])
        .await;
    assert_eq!(
        a.message(),
        "delete pool failed: pool 'exam' is not empty (contains VM 150)\n"
    );
    let upid = api.delete("/nodes/pve1/qemu/150", &[]).await;
    api.wait_task(&upid).await;
    api.delete("/pools", &[("poolid", "exam")]).await;
    api.delete("/pools/other", &[]).await;
    assert_eq!(api.get("/pools", &[]).await, json!([]));
    let a = api.call(Method::GET, "/pools", &[("poolid", "exam")]).await;
    assert_eq!(a.status, 500);
}
