//! Locks and races (§9): nextid, parallel template clones, storage lock, pvedaemon
//! workers, the pvestatd cycle of /cluster/resources.

use futures::future::join_all;
use reqwest::Method;
use serde_json::Value;

use crate::common::Api;

#[tokio::test]
async fn nextid_reserves_nothing_and_the_loser_fails() {
    // Scale 0.2: a QEMU clone's config appears 0.2 s after its UPID.
    let api = Api::start(0.2).await;
    let id1 = api.get("/cluster/nextid", &[]).await;
    let id1 = id1.as_str().unwrap().to_owned();
    let winner = api
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", &id1)])
        .await;
    let id2 = api.get("/cluster/nextid", &[]).await;
    assert_eq!(
        id2.as_str().unwrap(),
        id1,
        "nextid hands out the same id again"
    );
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", &id1)],
        )
        .await;
    if a.status == 200 {
        // The winner's config was not visible yet: the loser fails in its task.
        let st = api.wait_task(a.data()).await;
        let exit = st["exitstatus"].as_str().unwrap();
        assert!(
            exit == format!(
                "can't lock file '/var/lock/qemu-server/lock-{id1}.conf' - got timeout"
            ) || exit
                == format!("clone failed: unable to create VM {id1}: config file already exists"),
            "{exit}"
        );
    } else {
        assert_eq!(
            a.message(),
            format!("unable to create VM {id1}: config file already exists\n")
        );
    }
    assert_eq!(api.wait_task(&winner).await["exitstatus"], "OK");
    // Once the config exists the id is taken for nextid, and a clone fails synchronously.
    assert_ne!(api.get("/cluster/nextid", &[]).await.as_str().unwrap(), id1);
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", &id1)],
        )
        .await;
    assert_eq!(
        (a.status, a.message()),
        (
            500,
            format!("unable to create VM {id1}: config file already exists\n").as_str()
        )
    );
}

#[tokio::test]
async fn four_parallel_full_clones_on_one_node_fail_the_fourth_on_the_storage_lock() {
    let api = Api::start(0.05).await;
    let ids = ["301", "302", "303", "304"];
    let params: Vec<[(&str, &str); 2]> = ids
        .iter()
        .map(|id| [("newid", *id), ("full", "1")])
        .collect();
    let posts = params
        .iter()
        .map(|p| api.post("/nodes/pve1/qemu/9000/clone", p));
    let upids: Vec<Value> = join_all(posts).await;
    // Template clones run in parallel: no "VM is locked" for the template.
    let results: Vec<Value> = join_all(upids.iter().map(|u| api.wait_task(u))).await;
    let exits: Vec<&str> = results
        .iter()
        .map(|r| r["exitstatus"].as_str().unwrap())
        .collect();
    assert_eq!(exits.iter().filter(|e| **e == "OK").count(), 3, "{exits:?}");
    let failed: Vec<&&str> = exits.iter().filter(|e| **e != "OK").collect();
    assert_eq!(
        failed,
        [&"clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"]
    );
    // The failed clone's partial VM is gone; the others exist.
    let vms = api.get("/nodes/pve1/qemu", &[]).await;
    let clones = vms
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| (301..=304).contains(&v["vmid"].as_u64().unwrap()))
        .count();
    assert_eq!(clones, 3);
    // Storage locks are per node: three more on pve1 after these finished are fine.
    assert_eq!(api.sim.state()["storage_clones"]["pve1"], 0);
}

#[tokio::test]
async fn at_most_three_protected_requests_per_node_run_at_once() {
    let api = Api::start(0.05).await;
    api.clone_vm(150, "busy").await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    // The agent is still booting: each ping holds a worker for the 3 s (scaled) timeout.
    let pings = (0..6).map(|_| api.call(Method::POST, "/nodes/pve1/qemu/150/agent/ping", &[]));
    let answers = join_all(pings).await;
    for a in &answers {
        assert_eq!(
            (a.status, a.message()),
            (500, "QEMU guest agent is not running\n")
        );
    }
    assert_eq!(api.sim.state()["daemon_peak"]["pve1"], 3);
}

#[tokio::test]
async fn a_client_that_gives_up_frees_its_pvedaemon_worker() {
    let api = Api::start(0.05).await;
    api.clone_vm(150, "busy").await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    // Three pings (each holds a worker for 0.15 s) abandoned by the client after 20 ms.
    let ping = || {
        api.http
            .post(api.url("/nodes/pve1/qemu/150/agent/ping"))
            .header(
                "Authorization",
                format!("PVEAPIToken={}", crate::common::TOKEN),
            )
            .timeout(std::time::Duration::from_millis(20))
            .send()
    };
    for r in join_all((0..3).map(|_| ping())).await {
        assert!(r.unwrap_err().is_timeout());
    }
    // Their workers were released with them: three more in flight make a peak of 3, not
    // 6 (the busy count used to leak when a request's future was dropped).
    let pings = (0..3).map(|_| api.call(Method::POST, "/nodes/pve1/qemu/150/agent/ping", &[]));
    join_all(pings).await;
    assert_eq!(api.sim.state()["daemon_peak"]["pve1"], 3);
}

#[tokio::test]
async fn fresh_clones_are_unknown_in_cluster_resources_until_pvestatd_runs() {
    // Scale 0.1: the pvestatd cycle is 1 s, a clone's config appears after 0.1 s.
    let api = Api::start(0.1).await;
    let upid = api
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150"), ("name", "fresh")],
        )
        .await;
    let first = loop {
        let res = api.get("/cluster/resources", &[("type", "vm")]).await;
        if let Some(g) = res.as_array().unwrap().iter().find(|g| g["vmid"] == 150) {
            break g.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(first["status"], "unknown", "{first}");
    assert!(
        first.get("name").is_none() && first.get("template").is_none(),
        "{first}"
    );
    assert_eq!(first["lock"], "clone", "lock is read fresh from the config");
    api.wait_task(&upid).await;
    let later = loop {
        let res = api.get("/cluster/resources", &[("type", "vm")]).await;
        let g = res
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["vmid"] == 150)
            .cloned()
            .unwrap();
        if g["status"] != "unknown" {
            break g;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        (later["status"].as_str(), later["name"].as_str()),
        (Some("stopped"), Some("fresh"))
    );
    assert_eq!(later["template"], 0);
    // Start: status/current says running at once, resources lag until the next cycle.
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    assert_eq!(
        api.get("/nodes/pve1/qemu/150/status/current", &[]).await["status"],
        "running"
    );
}

#[tokio::test]
async fn a_saturated_pvedaemon_answers_596_after_the_forward_timeout() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "noagent").await;
    api.put("/nodes/pve1/qemu/150/config", &[("delete", "agent")])
        .await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    // Enabled while running: the agent device only appears after a restart, so every
    // ping costs a worker the 3 s timeout; 40 at once exceed the 30 s forward timeout.
    api.put("/nodes/pve1/qemu/150/config", &[("agent", "1")])
        .await;
    let pings = (0..40).map(|_| api.call(Method::POST, "/nodes/pve1/qemu/150/agent/ping", &[]));
    let answers = join_all(pings).await;
    let timed_out = answers.iter().filter(|a| a.status == 596).count();
    assert!(timed_out > 0, "some requests time out waiting for a worker");
    for a in answers.iter().filter(|a| a.status != 596) {
        assert_eq!(
            (a.status, a.message()),
            (500, "QEMU guest agent is not running\n")
        );
    }
    for a in answers.iter().filter(|a| a.status == 596) {
        assert_eq!(a.message(), "Connection timed out\n");
    }
    assert_eq!(api.sim.state()["daemon_peak"]["pve1"], 3);
    // After a restart the agent answers.
    api.post_ok("/nodes/pve1/qemu/150/status/stop", &[]).await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    assert_eq!(
        api.wait_for_post("/nodes/pve1/qemu/150/agent/ping").await,
        serde_json::json!({"result": {}})
    );
}

#[tokio::test]
async fn stopping_a_clone_task_interrupts_it_and_undoes_the_partial_guest() {
    let api = Api::start(0.05).await;
    let upid = api
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150"), ("full", "1")],
        )
        .await;
    let u = crate::common::enc(upid.as_str().unwrap());
    api.wait_for("/nodes/pve1/qemu/150/config", |a| a.status == 200)
        .await;
    assert_eq!(api.sim.state()["storage_clones"]["pve1"], 1);
    assert_eq!(
        api.delete(&format!("/nodes/pve1/tasks/{u}"), &[]).await,
        Value::Null
    );
    let st = api.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "interrupted by signal");
    api.wait_for("/nodes/pve1/qemu/150/config", |a| a.status == 500)
        .await;
    assert_eq!(api.sim.state()["storage_clones"]["pve1"], 0);
    // Stopping a finished task changes nothing.
    api.delete(&format!("/nodes/pve1/tasks/{u}"), &[]).await;
    assert_eq!(
        api.wait_task(&upid).await["exitstatus"],
        "interrupted by signal"
    );

    // LXC: the source lock goes away with the partial CT.
    let upid = api
        .post(
            "/nodes/pve1/lxc/9001/clone",
            &[("newid", "300"), ("full", "1")],
        )
        .await;
    assert_eq!(
        api.get("/nodes/pve1/lxc/9001/config", &[]).await["lock"],
        "disk"
    );
    let u = crate::common::enc(upid.as_str().unwrap());
    api.delete(&format!("/nodes/pve1/tasks/{u}"), &[]).await;
    api.wait_for("/nodes/pve1/lxc/300/config", |a| a.status == 500)
        .await;
    let src = api
        .wait_for("/nodes/pve1/lxc/9001/config", |a| {
            a.data().get("lock").is_none()
        })
        .await;
    assert_eq!(src.data()["template"], 1);
}

#[tokio::test]
async fn a_cloning_guest_is_locked_until_its_clone_task_ends() {
    // Full clone: 20 s × 0.05 = 1 s during which the new config carries `lock: clone`.
    let api = Api::start(0.05).await;
    let upid = api
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150"), ("full", "1")],
        )
        .await;
    let cur = api
        .wait_for("/nodes/pve1/qemu/150/status/current", |a| a.status == 200)
        .await;
    assert_eq!(cur.data()["lock"], "clone", "{cur:?}");
    let a = api
        .call(Method::POST, "/nodes/pve1/qemu/150/template", &[])
        .await;
    assert_eq!((a.status, a.message()), (500, "VM is locked (clone)\n"));
    let a = api
        .call(
            Method::PUT,
            "/nodes/pve1/qemu/150/config",
            &[("description", "x")],
        )
        .await;
    assert_eq!((a.status, a.message()), (500, "VM is locked (clone)\n"));
    // A start is accepted and fails inside its task.
    let start = api.post("/nodes/pve1/qemu/150/status/start", &[]).await;
    assert_eq!(
        api.wait_task(&start).await["exitstatus"],
        "VM is locked (clone)"
    );
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
    let cfg = api.get("/nodes/pve1/qemu/150/config", &[]).await;
    assert!(cfg.get("lock").is_none(), "{cfg}");
    assert_eq!(cfg["name"], "Copy-of-VM-debian-12-tmpl");
}
