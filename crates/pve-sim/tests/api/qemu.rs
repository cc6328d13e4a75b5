//! Inventory, QEMU lifecycle, config, agent, tasks.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{builder, enc, Api};

fn find(list: &Value, vmid: u64) -> Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"] == vmid)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn initial_inventory() {
    let api = Api::start(0.01).await;
    let nodes = api.get("/nodes", &[]).await;
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pve1", "pve2", "pve3"]);
    let res = api.get("/cluster/resources", &[("type", "vm")]).await;
    let t = find(&res, 9000);
    assert_eq!(
        (
            t["type"].as_str(),
            t["node"].as_str(),
            t["name"].as_str(),
            &t["template"]
        ),
        (
            Some("qemu"),
            Some("pve1"),
            Some("debian-12-tmpl"),
            &json!(1)
        )
    );
    let ct = find(&res, 9001);
    assert_eq!(
        (ct["type"].as_str(), ct["name"].as_str(), &ct["template"]),
        (Some("lxc"), Some("alpine-ct-tmpl"), &json!(1))
    );
    for (vmid, name, node) in [
        (100, "teacher", "pve1"),
        (200, "prod-db", "pve2"),
        (201, "prod-web", "pve3"),
    ] {
        let g = find(&res, vmid);
        assert_eq!(
            (g["name"].as_str(), g["node"].as_str(), g["status"].as_str()),
            (Some(name), Some(node), Some("running")),
            "{g}"
        );
    }
    let cfg = api.get("/nodes/pve1/qemu/9000/config", &[]).await;
    assert_eq!(cfg["agent"], "1");
    let net0 = cfg["net0"].as_str().unwrap();
    assert!(
        net0.starts_with("virtio=BC:24:11:") && net0.ends_with(",bridge=vmbr0"),
        "{net0}"
    );
    let storage = api.get("/cluster/resources", &[("type", "storage")]).await;
    assert_eq!(storage.as_array().unwrap().len(), 3);
    assert_eq!(storage[0]["storage"], "local-lvm");
    // The teacher answers with 10.10.0.1.
    let ifs = api
        .get("/nodes/pve1/qemu/100/agent/network-get-interfaces", &[])
        .await;
    assert_eq!(
        ifs["result"][1]["ip-addresses"][0]["ip-address"],
        "10.10.0.1"
    );
    // With one node everything lives on pve1.
    let one = Api::with(builder(0.01).nodes(1)).await;
    let res = one.get("/cluster/resources", &[("type", "vm")]).await;
    assert_eq!(find(&res, 201)["node"], "pve1");
    assert_eq!(
        one.get("/cluster/status", &[])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn clone_start_boot_agent_ip_walkthrough() {
    let api = Api::start(0.02).await;
    let newid = api.get("/cluster/nextid", &[]).await;
    let newid = newid.as_str().unwrap().to_owned();
    assert_eq!(newid, "101");
    let upid = api
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", &newid), ("name", "stud-01")],
        )
        .await;
    let u = upid.as_str().unwrap();
    assert!(
        u.starts_with("UPID:pve1:") && u.contains(":qmclone:9000:root@pam!ci:"),
        "{u}"
    );
    // While the clone runs the new VM is locked.
    let locked = api
        .wait_for("/nodes/pve1/qemu/101/status/current", |a| a.status == 200)
        .await;
    if locked.data()["lock"] == "clone" {
        let a = api
            .call(Method::POST, "/nodes/pve1/qemu/101/template", &[])
            .await;
        assert_eq!(a.message(), "VM is locked (clone)\n");
    }
    let st = api.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    assert_eq!(st["id"], "9000", "task id is the source vmid");
    let tmpl = api.get("/nodes/pve1/qemu/9000/config", &[]).await;
    let cfg = api.get("/nodes/pve1/qemu/101/config", &[]).await;
    assert_eq!(cfg["name"], "stud-01");
    assert!(cfg.get("template").is_none() && cfg.get("lock").is_none());
    assert_ne!(cfg["net0"], tmpl["net0"], "clone gets a new MAC");
    assert!(cfg["net0"]
        .as_str()
        .unwrap()
        .starts_with("virtio=BC:24:11:"));
    assert_ne!(cfg["smbios1"], tmpl["smbios1"]);
    assert_eq!(
        cfg["scsi0"], "local-lvm:base-9000-disk-0/vm-101-disk-0,size=8G",
        "linked clone"
    );

    // Agent before start: not running; start; agent not yet up; then IPs.
    let a = api
        .call(Method::POST, "/nodes/pve1/qemu/101/agent/ping", &[])
        .await;
    assert_eq!((a.status, a.message()), (500, "VM 101 is not running\n"));
    api.post_ok("/nodes/pve1/qemu/101/status/start", &[]).await;
    let cur = api.get("/nodes/pve1/qemu/101/status/current", &[]).await;
    assert_eq!(
        (cur["status"].as_str(), cur["qmpstatus"].as_str()),
        (Some("running"), Some("running"))
    );
    let a = api
        .call(Method::POST, "/nodes/pve1/qemu/101/agent/ping", &[])
        .await;
    assert_eq!(
        (a.status, a.message()),
        (500, "QEMU guest agent is not running\n")
    );
    let up = api.wait_for_post("/nodes/pve1/qemu/101/agent/ping").await;
    assert_eq!(up, json!({"result": {}}));
    let ifs = api
        .wait_for("/nodes/pve1/qemu/101/agent/network-get-interfaces", |a| {
            a.status == 200
                && a.data()["result"][1]["ip-addresses"]
                    .as_array()
                    .is_some_and(|v| v.len() == 2)
        })
        .await;
    let result = &ifs.data()["result"];
    assert_eq!(result[0]["name"], "lo");
    let ens = &result[1];
    assert_eq!(ens["name"], "ens18");
    let mac = cfg["net0"].as_str().unwrap()[7..24].to_lowercase();
    assert_eq!(ens["hardware-address"], mac.as_str());
    let ip = ens["ip-addresses"][0]["ip-address"].as_str().unwrap();
    assert!(ip.starts_with("10.10."), "{ip}");
    assert_eq!(ens["ip-addresses"][0]["prefix"], 16);
    let ll = ens["ip-addresses"][1]["ip-address"].as_str().unwrap();
    assert!(ll.starts_with("fe80::") && ll.contains("ff:fe"), "{ll}");
    let host = api
        .get("/nodes/pve1/qemu/101/agent/get-host-name", &[])
        .await;
    assert_eq!(host["result"]["host-name"], "stud-01");
    // Same seed, same MAC and lease in another simulator.
    let again = Api::start(0.02).await;
    again.clone_vm(101, "stud-01").await;
    let cfg2 = again.get("/nodes/pve1/qemu/101/config", &[]).await;
    assert_eq!(cfg2["net0"], cfg["net0"]);
    let other = Api::with(builder(0.02).seed(2)).await;
    other.clone_vm(101, "stud-01").await;
    assert_ne!(
        other.get("/nodes/pve1/qemu/101/config", &[]).await["net0"],
        cfg["net0"]
    );
}

#[tokio::test]
async fn agent_errors_in_order() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "x").await;
    api.put("/nodes/pve1/qemu/150/config", &[("delete", "agent")])
        .await;
    for path in ["/agent/network-get-interfaces", "/agent/get-host-name"] {
        let a = api
            .call(Method::GET, &format!("/nodes/pve1/qemu/150{path}"), &[])
            .await;
        assert_eq!(
            (a.status, a.message()),
            (500, "No QEMU guest agent configured\n")
        );
    }
    let a = api
        .call(Method::POST, "/nodes/pve1/qemu/150/agent/ping", &[])
        .await;
    assert_eq!(a.message(), "No QEMU guest agent configured\n");
}

#[tokio::test]
async fn config_digest_delete_tags_and_new_macs() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "cfg").await;
    let cfg = api.get("/nodes/pve1/qemu/150/config", &[]).await;
    let digest = cfg["digest"].as_str().unwrap().to_owned();
    api.put(
        "/nodes/pve1/qemu/150/config",
        &[
            ("tags", "Student-07, exam-2024;student-07"),
            ("digest", &digest),
        ],
    )
    .await;
    let cfg2 = api.get("/nodes/pve1/qemu/150/config", &[]).await;
    assert_eq!(cfg2["tags"], "exam-2024;student-07");
    assert_ne!(cfg2["digest"], cfg["digest"]);
    let a = api
        .call(
            Method::PUT,
            "/nodes/pve1/qemu/150/config",
            &[("description", "x"), ("digest", &digest)],
        )
        .await;
    assert_eq!(
        (a.status, a.message()),
        (500, "checksum mismatch (file change by other user?)\n")
    );
    // Tags show up in resources and status at once.
    let res = api.get("/cluster/resources", &[("type", "vm")]).await;
    assert_eq!(find(&res, 150)["tags"], "exam-2024;student-07");
    // delete=
    api.put(
        "/nodes/pve1/qemu/150/config",
        &[("delete", "tags,description")],
    )
    .await;
    let cfg3 = api.get("/nodes/pve1/qemu/150/config", &[]).await;
    assert!(cfg3.get("tags").is_none());
    // A netX without MAC gets a fresh one; resending the MAC keeps it.
    let old_net = cfg3["net0"].as_str().unwrap().to_owned();
    api.put(
        "/nodes/pve1/qemu/150/config",
        &[("net0", &format!("{old_net},firewall=1"))],
    )
    .await;
    let net = api.get("/nodes/pve1/qemu/150/config", &[]).await["net0"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(net, format!("{old_net},firewall=1"));
    api.put(
        "/nodes/pve1/qemu/150/config",
        &[("net1", "virtio,bridge=vmbr1")],
    )
    .await;
    let net1 = api.get("/nodes/pve1/qemu/150/config", &[]).await["net1"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        net1.starts_with("virtio=BC:24:11:") && net1.ends_with(",bridge=vmbr1"),
        "{net1}"
    );
    // POST config is a task.
    let upid = api
        .post("/nodes/pve1/qemu/150/config", &[("name", "renamed")])
        .await;
    assert!(upid.as_str().unwrap().contains(":qmconfig:150:"));
    api.wait_task(&upid).await;
    assert_eq!(
        api.get("/nodes/pve1/qemu/150/config", &[]).await["name"],
        "renamed"
    );
}

#[tokio::test]
async fn power_errors_are_task_errors_or_500s() {
    let api = Api::start(0.01).await;
    let upid = api.post("/nodes/pve1/qemu/9000/status/start", &[]).await;
    let st = api.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "you can't start a vm if it's a template");
    let upid = api.post("/nodes/pve1/qemu/100/status/start", &[]).await;
    assert_eq!(
        api.wait_task(&upid).await["exitstatus"],
        "VM 100 already running"
    );
    let log = api
        .get(
            &format!("/nodes/pve1/tasks/{}/log", enc(upid.as_str().unwrap())),
            &[],
        )
        .await;
    assert_eq!(
        log.as_array().unwrap().last().unwrap()["t"],
        "TASK ERROR: VM 100 already running"
    );
    api.clone_vm(150, "p").await;
    // Stopping a stopped VM is fine; reboot is not.
    api.post_ok("/nodes/pve1/qemu/150/status/stop", &[]).await;
    api.post_ok("/nodes/pve1/qemu/150/status/shutdown", &[])
        .await;
    let a = api
        .call(Method::POST, "/nodes/pve1/qemu/150/status/reboot", &[])
        .await;
    assert_eq!((a.status, a.message()), (500, "VM 150 not running\n"));
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    api.post_ok("/nodes/pve1/qemu/150/status/reboot", &[]).await;
    api.post_ok("/nodes/pve1/qemu/150/status/shutdown", &[])
        .await;
    let cur = api.get("/nodes/pve1/qemu/150/status/current", &[]).await;
    assert_eq!(cur["status"], "stopped");
}

#[tokio::test]
async fn template_conversion_and_destroy_rules() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "base").await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    let a = api
        .call(Method::POST, "/nodes/pve1/qemu/150/template", &[])
        .await;
    assert_eq!(
        a.message(),
        "you can't convert a VM to template if VM is running\n"
    );
    let a = api.call(Method::DELETE, "/nodes/pve1/qemu/150", &[]).await;
    assert_eq!(a.message(), "VM 150 is running - destroy failed\n");
    api.post_ok("/nodes/pve1/qemu/150/status/stop", &[]).await;
    let upid = api.post_ok("/nodes/pve1/qemu/150/template", &[]).await;
    assert!(upid.as_str().unwrap().contains(":qmtemplate:150:"));
    let cfg = api.get("/nodes/pve1/qemu/150/config", &[]).await;
    assert_eq!(cfg["template"], 1);
    let a = api
        .call(Method::POST, "/nodes/pve1/qemu/150/template", &[])
        .await;
    assert_eq!(a.message(), "you can't convert a template to a template\n");
    // A template with a linked clone cannot be destroyed.
    api.post_ok("/nodes/pve1/qemu/150/clone", &[("newid", "151")])
        .await;
    assert_eq!(
        api.get("/nodes/pve1/qemu/151/config", &[]).await["name"],
        "Copy-of-VM-base"
    );
    let upid = api.delete("/nodes/pve1/qemu/150", &[]).await;
    let st = api.wait_task(&upid).await;
    let exit = st["exitstatus"].as_str().unwrap();
    assert!(
        exit.starts_with("base volume '") && exit.ends_with("' is still in use by linked cloned"),
        "{exit}"
    );
    // Full clone of a normal VM; linked clone of a normal VM is impossible.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/151/clone",
            &[("newid", "152"), ("full", "0")],
        )
        .await;
    assert!(
        a.message()
            .starts_with("Linked clone feature is not supported for '"),
        "{}",
        a.message()
    );
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/clone",
            &[("newid", "152"), ("full", "0"), ("storage", "local-lvm")],
        )
        .await;
    assert_eq!(
        a.message(),
        "parameter 'storage' not allowed for linked clones\n"
    );
    // Destroy the clone, then the template.
    let upid = api
        .delete(
            "/nodes/pve1/qemu/151",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        )
        .await;
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
    let a = api
        .call(Method::GET, "/nodes/pve1/qemu/151/config", &[])
        .await;
    assert_eq!(
        a.message(),
        "Configuration file 'nodes/pve1/qemu-server/151.conf' does not exist\n"
    );
    let upid = api.delete("/nodes/pve1/qemu/150", &[]).await;
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
    let res = api.get("/cluster/resources", &[("type", "vm")]).await;
    assert_eq!(find(&res, 150), Value::Null);
}

#[tokio::test]
async fn task_list_filters_log_paging_and_bad_upids() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "t1").await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    let list = api.call(Method::GET, "/nodes/pve1/tasks", &[]).await;
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.data()[0]["type"], "qmstart", "newest first");
    assert_eq!(list.data()[0]["status"], "OK");
    assert!(list.data()[0]["endtime"].is_number());
    let only = api
        .get("/nodes/pve1/tasks", &[("typefilter", "qmclone")])
        .await;
    assert_eq!(only.as_array().unwrap().len(), 1);
    let by_vm = api.get("/nodes/pve1/tasks", &[("vmid", "150")]).await;
    assert_eq!(by_vm.as_array().unwrap().len(), 1);
    let errs = api.get("/nodes/pve1/tasks", &[("errors", "1")]).await;
    assert!(errs.as_array().unwrap().is_empty());
    assert!(api
        .get("/nodes/pve2/tasks", &[])
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let paged = api
        .call(
            Method::GET,
            "/nodes/pve1/tasks",
            &[("start", "1"), ("limit", "1")],
        )
        .await;
    assert_eq!(paged.data().as_array().unwrap().len(), 1);
    assert_eq!(paged.data()[0]["type"], "qmclone");
    // Running tasks are listed with source=active only.
    let upid = api
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "151"), ("full", "1")],
        )
        .await;
    let active = api.get("/nodes/pve1/tasks", &[("source", "active")]).await;
    assert_eq!(active[0]["upid"], upid);
    assert!(active[0].get("status").is_none());
    let log = api
        .call(
            Method::GET,
            &format!("/nodes/pve1/tasks/{}/log", enc(upid.as_str().unwrap())),
            &[],
        )
        .await;
    assert!(log.body["total"].is_u64(), "{:?}", log.body);
    api.wait_task(&upid).await;
    let log = api
        .call(
            Method::GET,
            &format!("/nodes/pve1/tasks/{}/log", enc(upid.as_str().unwrap())),
            &[("start", "1")],
        )
        .await;
    let lines = log.data().as_array().unwrap();
    assert_eq!(log.body["total"], 2);
    assert_eq!(lines[0], json!({"n": 2, "t": "TASK OK"}));
    let a = api
        .call(
            Method::GET,
            "/nodes/pve1/tasks/UPID:pve1:0000:x/status",
            &[],
        )
        .await;
    assert_eq!(a.status, 400);
    let fake = "UPID:pve1:00012345:08200000:6B000000:qmstart:100:root@pam:";
    let a = api
        .call(
            Method::GET,
            &format!("/nodes/pve1/tasks/{}/status", enc(fake)),
            &[],
        )
        .await;
    assert_eq!(
        (a.status, &a.body["errors"]["upid"]),
        (400, &json!("no such task"))
    );
}

impl Api {
    /// POST until it answers 200 (the agent comes up during the boot).
    pub async fn wait_for_post(&self, path: &str) -> Value {
        for _ in 0..2000 {
            let a = self.call(Method::POST, path, &[]).await;
            if a.status == 200 {
                return a.data().clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("POST {path} never succeeded");
    }
}

#[tokio::test]
async fn shutdown_timeouts_fail_or_warn_with_force_stop() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "slow").await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    // The guest needs 5 s to power down; 2 s is not enough.
    let upid = api
        .post("/nodes/pve1/qemu/150/status/shutdown", &[("timeout", "2")])
        .await;
    assert_eq!(
        api.wait_task(&upid).await["exitstatus"],
        "VM quit/powerdown failed - got timeout"
    );
    assert_eq!(
        api.get("/nodes/pve1/qemu/150/status/current", &[]).await["status"],
        "running"
    );
    let upid = api
        .post(
            "/nodes/pve1/qemu/150/status/shutdown",
            &[("timeout", "2"), ("forceStop", "1")],
        )
        .await;
    let st = api.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "WARNINGS: 1");
    let log = api
        .get(
            &format!("/nodes/pve1/tasks/{}/log", enc(upid.as_str().unwrap())),
            &[],
        )
        .await;
    let lines: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["t"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "VM quit/powerdown failed - terminating now with SIGTERM",
            "TASK WARNINGS: 1"
        ]
    );
    assert_eq!(
        api.get("/nodes/pve1/qemu/150/status/current", &[]).await["status"],
        "stopped"
    );
    let warn = api
        .get("/nodes/pve1/tasks", &[("statusfilter", "warning")])
        .await;
    assert_eq!(warn.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn injected_clone_failure_and_local_storage_target() {
    let api = Api::start(0.01).await;
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150"), ("target", "pve2")],
        )
        .await;
    assert_eq!(
        (a.status, a.message()),
        (
            500,
            "can't clone VM to node 'pve2' (VM uses local storage)\n"
        )
    );
    let text = "clone failed: cfs-lock 'storage-local-lvm' error: got lock request timeout";
    api.sim.fail_next_clone(text);
    let upid = api
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "150")])
        .await;
    assert_eq!(api.wait_task(&upid).await["exitstatus"], text);
    let a = api
        .call(Method::GET, "/nodes/pve1/qemu/150/config", &[])
        .await;
    assert_eq!(a.status, 500, "the partial VM was removed");
    // Only the next clone fails.
    api.clone_vm(150, "ok").await;
}
