//! LXC: clone lock, synchronous config, power errors, interfaces, template.

use reqwest::Method;
use serde_json::Value;

use crate::common::Api;

#[tokio::test]
async fn lxc_clone_locks_source_and_creates_config_synchronously() {
    let api = Api::start(0.05).await;
    let upid = api
        .post(
            "/nodes/pve1/lxc/9001/clone",
            &[("newid", "300"), ("hostname", "ct-a")],
        )
        .await;
    assert!(upid.as_str().unwrap().contains(":vzclone:9001:"));
    // The new CT exists at once, locked `create`; the source is locked `disk`.
    let cfg = api.get("/nodes/pve1/lxc/300/config", &[]).await;
    assert_eq!(cfg["lock"], "create");
    assert_eq!(cfg["hostname"], "ct-a");
    assert_eq!(
        api.get("/nodes/pve1/lxc/9001/config", &[]).await["lock"],
        "disk"
    );
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/lxc/9001/clone",
            &[("newid", "301")],
        )
        .await;
    assert_eq!((a.status, a.message()), (500, "CT is locked (disk)\n"));
    let st = api.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    assert!(api
        .get("/nodes/pve1/lxc/9001/config", &[])
        .await
        .get("lock")
        .is_none());
    assert!(api
        .get("/nodes/pve1/lxc/300/config", &[])
        .await
        .get("lock")
        .is_none());
    // After the first clone, the next one goes through.
    api.post_ok("/nodes/pve1/lxc/9001/clone", &[("newid", "301")])
        .await;
    // A taken id fails synchronously, named by the type of the existing guest.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/lxc/9001/clone",
            &[("newid", "300")],
        )
        .await;
    assert_eq!(a.message(), "CT 300 already exists on node 'pve1'\n");
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/lxc/9001/clone",
            &[("newid", "200")],
        )
        .await;
    assert_eq!(a.message(), "VM 200 already exists on node 'pve2'\n");
}

#[tokio::test]
async fn lxc_power_interfaces_template_and_destroy() {
    let api = Api::start(0.01).await;
    api.post_ok("/nodes/pve1/lxc/9001/clone", &[("newid", "300")])
        .await;
    let cfg = api.get("/nodes/pve1/lxc/300/config", &[]).await;
    let net0 = cfg["net0"].as_str().unwrap();
    assert!(net0.contains("hwaddr=BC:24:11:"), "{net0}");
    assert_ne!(
        net0,
        api.get("/nodes/pve1/lxc/9001/config", &[]).await["net0"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        api.get("/nodes/pve1/lxc/300/interfaces", &[]).await,
        Value::Null,
        "stopped CT"
    );
    let a = api
        .call(Method::POST, "/nodes/pve1/lxc/300/status/stop", &[])
        .await;
    assert_eq!((a.status, a.message()), (500, "CT 300 not running\n"));
    let a = api
        .call(Method::POST, "/nodes/pve1/lxc/300/status/shutdown", &[])
        .await;
    assert_eq!(a.message(), "CT 300 not running\n");
    let upid = api.post_ok("/nodes/pve1/lxc/300/status/start", &[]).await;
    assert!(upid.as_str().unwrap().contains(":vzstart:300:"));
    let a = api
        .call(Method::POST, "/nodes/pve1/lxc/300/status/start", &[])
        .await;
    assert_eq!(a.message(), "CT 300 already running\n");
    let cur = api.get("/nodes/pve1/lxc/300/status/current", &[]).await;
    assert_eq!(
        (cur["status"].as_str(), cur["type"].as_str()),
        (Some("running"), Some("lxc"))
    );
    let ifs = api
        .wait_for("/nodes/pve1/lxc/300/interfaces", |a| {
            a.data()[1].get("inet").is_some()
        })
        .await;
    let eth0 = &ifs.data()[1];
    assert_eq!(eth0["name"], "eth0");
    assert!(eth0["inet"].as_str().unwrap().starts_with("10.10."));
    assert!(eth0["inet6"].as_str().unwrap().starts_with("fe80::"));
    assert_eq!(eth0["ip-addresses"][0]["ip-address-type"], "inet");
    assert_eq!(eth0["ip-addresses"][1]["ip-address-type"], "inet6");
    assert_eq!(ifs.data()[0]["name"], "lo");
    // QEMU-only endpoints do not exist for CTs, and QEMU paths do not find CTs.
    let a = api
        .call(Method::GET, "/nodes/pve1/qemu/300/status/current", &[])
        .await;
    assert_eq!(
        a.message(),
        "Configuration file 'nodes/pve1/qemu-server/300.conf' does not exist\n"
    );
    // Running CT: destroy refused unless forced; template refused.
    let a = api
        .call(Method::POST, "/nodes/pve1/lxc/300/template", &[])
        .await;
    assert_eq!(
        a.message(),
        "you can't convert a CT to template if the CT is running\n"
    );
    let a = api.call(Method::DELETE, "/nodes/pve1/lxc/300", &[]).await;
    assert_eq!(
        a.message(),
        "unable to destroy CT 300 - container is running\n"
    );
    api.post_ok("/nodes/pve1/lxc/300/status/shutdown", &[])
        .await;
    // Template conversion answers null and runs a vztemplate task in the background.
    let data = api.post("/nodes/pve1/lxc/300/template", &[]).await;
    assert_eq!(data, Value::Null);
    api.wait_for("/nodes/pve1/lxc/300/config", |a| a.data()["template"] == 1)
        .await;
    let tasks = api
        .get(
            "/nodes/pve1/tasks",
            &[("typefilter", "vztemplate"), ("vmid", "300")],
        )
        .await;
    assert_eq!(tasks[0]["status"], "OK");
    let upid = api.post("/nodes/pve1/lxc/300/status/start", &[]).await;
    assert_eq!(
        api.wait_task(&upid).await["exitstatus"],
        "you can't start a CT if it's a template"
    );
    let a = api.call(Method::DELETE, "/nodes/pve1/lxc/301", &[]).await;
    assert_eq!(
        a.message(),
        "Configuration file 'nodes/pve1/lxc/301.conf' does not exist\n"
    );
    // Force-destroy a running CT.
    api.post_ok("/nodes/pve1/lxc/9001/clone", &[("newid", "302")])
        .await;
    api.post_ok("/nodes/pve1/lxc/302/status/start", &[]).await;
    let upid = api.delete("/nodes/pve1/lxc/302", &[("force", "1")]).await;
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
    assert!(api
        .get("/nodes/pve1/lxc", &[])
        .await
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["vmid"] != 302));
}
