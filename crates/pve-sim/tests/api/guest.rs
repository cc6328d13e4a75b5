//! The simulated guest (issue 17): the agent's exec/exec-status/file-read/file-write/
//! info/get-osinfo/get-users answered from one model, `/_sim/guests/{vmid}/state`, the
//! built-in commands, and the agent's privileges.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{enc, Answer, Api, TOKEN};

/// Clone 9000 to `vmid`, start it and wait until its agent answers and it has its lease.
pub async fn running_vm(api: &Api, vmid: u32, name: &str) {
    api.clone_vm(vmid, name).await;
    api.post_ok(&format!("/nodes/pve1/qemu/{vmid}/status/start"), &[])
        .await;
    api.wait_for(
        &format!("/nodes/pve1/qemu/{vmid}/agent/network-get-interfaces"),
        |a| {
            a.status == 200 && a.data()["result"][1]["ip-addresses"][0]["ip-address-type"] == "ipv4"
        },
    )
    .await;
}

/// `PUT /_sim/guests/{vmid}/state`.
pub async fn put_state(api: &Api, vmid: u32, body: Value) -> (u16, Value) {
    let resp = api
        .http
        .put(format!("{}/_sim/guests/{vmid}/state", api.sim.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET /_sim/guests/{vmid}/state`.
pub async fn get_state(api: &Api, vmid: u32) -> Value {
    api.http
        .get(format!("{}/_sim/guests/{vmid}/state", api.sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST agent/exec` with a JSON body (`command` as an array).
pub async fn exec_json(api: &Api, vmid: u32, argv: &[&str]) -> Answer {
    let resp = api
        .http
        .post(api.url(&format!("/nodes/pve1/qemu/{vmid}/agent/exec")))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .json(&json!({ "command": argv }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    Answer {
        status,
        body: resp.json().await.unwrap_or(Value::Null),
    }
}

/// Poll exec-status of `pid` until it reports `exited: 1`; returns that one answer.
pub async fn wait_exec(api: &Api, vmid: u32, pid: &Value) -> Value {
    let pid = pid.to_string();
    let path = format!("/nodes/pve1/qemu/{vmid}/agent/exec-status");
    for _ in 0..2000 {
        let a = api.call(Method::GET, &path, &[("pid", &pid)]).await;
        assert_eq!(a.status, 200, "{a:?}");
        if a.data()["exited"] == 1 {
            return a.data().clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("pid {pid} never exited");
}

/// Run `argv` through the agent (JSON body) and return the finished status.
pub async fn run(api: &Api, vmid: u32, argv: &[&str]) -> Value {
    let a = exec_json(api, vmid, argv).await;
    assert_eq!(a.status, 200, "exec {argv:?}: {a:?}");
    wait_exec(api, vmid, &a.data()["pid"]).await
}

#[tokio::test]
async fn exec_status_reports_the_result_once_then_the_pid_is_lost() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud-01").await;
    // A long command is still running right after it started: exited 0, nothing else.
    let (st, _) = put_state(
        &api,
        150,
        json!({"commands": [{"argv": ["sleep", "1000"], "run_time": 1000}]}),
    )
    .await;
    assert_eq!(st, 200);
    let slow = exec_json(&api, 150, &["sleep", "1000"]).await;
    let pid = slow.data()["pid"].to_string();
    let a = api
        .call(
            Method::GET,
            "/nodes/pve1/qemu/150/agent/exec-status",
            &[("pid", &pid)],
        )
        .await;
    assert_eq!(a.data(), &json!({"exited": 0}));

    let done = run(&api, 150, &["hostname"]).await;
    assert_eq!(
        done,
        json!({"exited": 1, "exitcode": 0, "out-data": "stud-01\n", "out-truncated": 0})
    );
    // The same pid again: qemu-ga has forgotten it.
    let first = exec_json(&api, 150, &["true"]).await;
    let pid = first.data()["pid"].clone();
    wait_exec(&api, 150, &pid).await;
    let again = api
        .call(
            Method::GET,
            "/nodes/pve1/qemu/150/agent/exec-status",
            &[("pid", &pid.to_string())],
        )
        .await;
    assert_eq!(
        (again.status, again.message()),
        (500, "Agent error: Invalid parameter 'pid'\n")
    );
}

#[tokio::test]
async fn command_is_an_argv_array_and_a_string_with_spaces_fails_to_spawn() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    // A form repeats `command=`.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/agent/exec",
            &[("command", "cat"), ("command", "/etc/hostname")],
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let done = wait_exec(&api, 150, &a.data()["pid"]).await;
    assert_eq!(done["out-data"], "s\n");
    // One string with spaces is one program name that does not exist.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/agent/exec",
            &[("command", "cat /etc/hostname")],
        )
        .await;
    assert_eq!(a.status, 500, "{a:?}");
    assert_eq!(
        a.message(),
        "Agent error: Guest agent command failed, error was 'Failed to execute child process \u{201c}cat /etc/hostname\u{201d} (No such file or directory)'\n"
    );
    // input-data becomes stdin.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/agent/exec",
            &[("command", "sha256sum"), ("input-data", "abc")],
        )
        .await;
    let done = wait_exec(&api, 150, &a.data()["pid"]).await;
    assert_eq!(
        done["out-data"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n"
    );
    // exit codes: false is 1, an unknown program 127 with the shell's text.
    assert_eq!(run(&api, 150, &["false"]).await["exitcode"], 1);
    let unknown = run(&api, 150, &["frobnicate", "--now"]).await;
    assert_eq!(unknown["exitcode"], 127);
    assert_eq!(unknown["err-data"], "bash: frobnicate: command not found\n");
    let sh = run(&api, 150, &["/bin/sh", "-c", "frobnicate"]).await;
    assert_eq!(
        (sh["exitcode"].clone(), sh["err-data"].clone()),
        (json!(127), json!("sh: 1: frobnicate: not found\n"))
    );
    let sh = run(&api, 150, &["/bin/sh", "-c", "cat '/etc/hostname'"]).await;
    assert_eq!(sh["out-data"], "s\n");
}

#[tokio::test]
async fn output_is_capped_at_16_mib_and_flagged() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    let big = "y".repeat(16 * 1024 * 1024 + 10);
    let (st, _) = put_state(
        &api,
        150,
        json!({"commands": [{"argv": ["yes"], "stdout": big, "stderr": "e", "exit_code": 0}]}),
    )
    .await;
    assert_eq!(st, 200);
    let done = run(&api, 150, &["yes"]).await;
    assert_eq!(done["out-truncated"], 1);
    assert_eq!(done["out-data"].as_str().unwrap().len(), 16 * 1024 * 1024);
    assert_eq!(
        (done["err-data"].clone(), done["err-truncated"].clone()),
        (json!("e"), json!(0))
    );
}

#[tokio::test]
async fn file_read_and_write_with_their_limits() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    let read = |file: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let api = &api;
        async move {
            let mut p = vec![("file", file)];
            p.extend_from_slice(extra);
            api.call(Method::GET, "/nodes/pve1/qemu/150/agent/file-read", &p)
                .await
        }
    };
    let a = read("/etc/hostname", &[]).await;
    assert_eq!(a.data(), &json!({"content": "s\n"}));
    let a = read("/etc/hostname", &[("decode", "0")]).await;
    assert_eq!(a.data(), &json!({"content": "cwo="}));
    let a = read("/etc/os-release", &[("offset", "7"), ("count", "4")]).await;
    assert_eq!(a.data(), &json!({"content": "NAME", "truncated": 1}));
    let a = read("/etc/nope", &[]).await;
    assert_eq!(
        (a.status, a.message()),
        (
            500,
            "Agent error: failed to open file '/etc/nope' (mode: 'r'): No such file or directory\n"
        )
    );
    let a = read("/etc/hostname", &[("count", "16777217")]).await;
    assert_eq!(a.status, 400, "{a:?}");
    // 16 MiB per call: a bigger file comes back truncated.
    let (st, _) = put_state(
        &api,
        150,
        json!({"files": {"/var/log/big.log": {"content": "z".repeat(16 * 1024 * 1024 + 3)}}}),
    )
    .await;
    assert_eq!(st, 200);
    let a = read("/var/log/big.log", &[]).await;
    assert_eq!(a.data()["truncated"], 1);
    assert_eq!(
        a.data()["content"].as_str().unwrap().len(),
        16 * 1024 * 1024
    );

    // file-write: plain or base64, at most 61440 characters.
    let w = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/agent/file-write",
            &[("file", "/root/answer.txt"), ("content", "42\n")],
        )
        .await;
    assert_eq!((w.status, w.data().clone()), (200, Value::Null), "{w:?}");
    let w = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/agent/file-write",
            &[
                ("file", "/root/b64.txt"),
                ("content", "aGk="),
                ("encode", "0"),
            ],
        )
        .await;
    assert_eq!(w.status, 200);
    assert_eq!(read("/root/b64.txt", &[]).await.data()["content"], "hi");
    let too_big = "a".repeat(61441);
    let w = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/agent/file-write",
            &[("file", "/root/x"), ("content", &too_big)],
        )
        .await;
    assert_eq!(w.status, 400);
    assert_eq!(
        w.body["errors"]["content"],
        "value may only be 61440 characters long"
    );
    // One model: the written file is what cat, sha256sum and the state see.
    let done = run(&api, 150, &["cat", "/root/answer.txt"]).await;
    assert_eq!(done["out-data"], "42\n");
    let state = get_state(&api, 150).await;
    assert_eq!(
        state["files"]["/root/answer.txt"]["sha256"],
        "084c799cd551dd1d8d5c5f9a5d593b2e931f5e36122ee5c793c1d08a19839cc0"
    );
    let sum = run(&api, 150, &["sha256sum", "/root/answer.txt"]).await;
    assert_eq!(
        sum["out-data"],
        "084c799cd551dd1d8d5c5f9a5d593b2e931f5e36122ee5c793c1d08a19839cc0  /root/answer.txt\n"
    );
}

#[tokio::test]
async fn put_state_changes_only_what_it_names_and_ip_shows_it() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    let before = get_state(&api, 150).await;
    let (st, after) = put_state(
        &api,
        150,
        json!({"interfaces": {"eth1.10": {"kind": "vlan", "link": "ens18", "vlan": 10,
                                          "addresses": ["192.168.10.1/24"]}}}),
    )
    .await;
    assert_eq!(st, 200, "{after}");
    for key in ["files", "routes", "services", "commands", "agent"] {
        assert_eq!(after[key], before[key], "{key} changed");
    }
    let out = run(&api, 150, &["ip", "-j", "-d", "addr"]).await;
    let ifs: Value = serde_json::from_str(out["out-data"].as_str().unwrap()).unwrap();
    let vlan = ifs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == "eth1.10")
        .expect("eth1.10 listed");
    assert_eq!(vlan["link"], "ens18");
    assert_eq!(vlan["linkinfo"]["info_kind"], "vlan");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 10);
    assert_eq!(vlan["addr_info"][0]["local"], "192.168.10.1");
    assert_eq!(vlan["addr_info"][0]["prefixlen"], 24);
    // Its subnet route appears too; the DHCP default route stays.
    let out = run(&api, 150, &["ip", "-j", "route"]).await;
    let routes: Value = serde_json::from_str(out["out-data"].as_str().unwrap()).unwrap();
    let dsts: Vec<&str> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dst"].as_str().unwrap())
        .collect();
    assert_eq!(dsts, vec!["default", "10.10.0.0/16", "192.168.10.0/24"]);
    // Removing it (null) touches nothing else; a bad body changes nothing.
    let (st, _) = put_state(&api, 150, json!({"interfaces": {"eth1.10": null}})).await;
    assert_eq!(st, 200);
    let (st, err) = put_state(
        &api,
        150,
        json!({"files": {"/x": {"content": "1"}}, "agent": "asleep"}),
    )
    .await;
    assert_eq!(st, 400);
    assert!(err["error"].as_str().unwrap().contains("asleep"), "{err}");
    let now = get_state(&api, 150).await;
    assert_eq!(now["interfaces"], before["interfaces"]);
    assert_eq!(now["files"], before["files"]);
    // Services and systemctl agree.
    let (st, _) = put_state(
        &api,
        150,
        json!({"services": {"tcp/80": {"unit": "nginx", "http": {"status": 200, "body": "ok"}}}}),
    )
    .await;
    assert_eq!(st, 200);
    let out = run(&api, 150, &["systemctl", "is-active", "nginx", "ssh"]).await;
    assert_eq!(
        (out["exitcode"].clone(), out["out-data"].clone()),
        (json!(0), json!("active\nactive\n"))
    );
    put_state(
        &api,
        150,
        json!({"services": {"tcp/80": {"active": false}}}),
    )
    .await;
    let out = run(&api, 150, &["systemctl", "is-active", "nginx"]).await;
    assert_eq!(
        (out["exitcode"].clone(), out["out-data"].clone()),
        (json!(3), json!("inactive\n"))
    );
    // Unknown guests and containers are refused with a reason.
    let (st, err) = put_state(&api, 9001, json!({})).await;
    assert_eq!(st, 400, "{err}");
    let (st, _) = put_state(&api, 4242, json!({})).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_stopped_or_hung_agent_answers_with_pve_texts() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    put_state(&api, 150, json!({"agent": "stopped"})).await;
    let a = exec_json(&api, 150, &["true"]).await;
    assert_eq!(
        (a.status, a.message()),
        (500, "QEMU guest agent is not running\n")
    );
    put_state(&api, 150, json!({"agent": "hung"})).await;
    let a = exec_json(&api, 150, &["true"]).await;
    assert_eq!(
        (a.status, a.message()),
        (
            500,
            "VM 150 qga command 'guest-exec' failed - got timeout\n"
        )
    );
    // A hung agent still answers its ping (PVE's availability check).
    let p = api
        .call(Method::POST, "/nodes/pve1/qemu/150/agent/ping", &[])
        .await;
    assert_eq!(p.status, 200);
    put_state(&api, 150, json!({"agent": "running"})).await;
    let info = api.get("/nodes/pve1/qemu/150/agent/info", &[]).await;
    assert!(info["result"]["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "guest-exec"));
    let os = api.get("/nodes/pve1/qemu/150/agent/get-osinfo", &[]).await;
    assert_eq!(os["result"]["id"], "debian");
    assert_eq!(os["result"]["version-id"], "12");
    put_state(
        &api,
        150,
        json!({"users": [{"user": "student", "login-time": 1733353200.5}]}),
    )
    .await;
    let users = api.get("/nodes/pve1/qemu/150/agent/get-users", &[]).await;
    assert_eq!(users["result"][0]["user"], "student");
}

/// A user with one role on `/vms/150`, logged in with a ticket.
async fn user_with(api: &Api, privs: &str) -> (String, String) {
    let role = format!("R{}", privs.replace(['.', ','], ""));
    api.post("/access/roles", &[("roleid", &role), ("privs", privs)])
        .await;
    let userid = format!("u{}@pve", role.to_lowercase());
    api.post(
        "/access/users",
        &[("userid", &userid), ("password", "student-pass-1")],
    )
    .await;
    api.put(
        "/access/acl",
        &[("path", "/vms/150"), ("users", &userid), ("roles", &role)],
    )
    .await;
    let login: Value = api
        .http
        .post(api.url("/access/ticket"))
        .form(&[
            ("username", userid.as_str()),
            ("password", "student-pass-1"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        login["data"]["ticket"].as_str().unwrap().to_owned(),
        login["data"]["CSRFPreventionToken"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

async fn call_as(
    api: &Api,
    who: &(String, String),
    method: Method,
    path: &str,
    params: &[(&str, &str)],
) -> u16 {
    let mut req = api
        .http
        .request(method.clone(), api.url(path))
        .header("Cookie", format!("PVEAuthCookie={}", enc(&who.0)))
        .header("CSRFPreventionToken", &who.1);
    req = if method == Method::GET {
        req.query(params)
    } else {
        req.form(params)
    };
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn agent_calls_need_their_pve9_privilege() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    let exec = (
        "/nodes/pve1/qemu/150/agent/exec",
        Method::POST,
        vec![("command", "true")],
    );
    let read = (
        "/nodes/pve1/qemu/150/agent/file-read",
        Method::GET,
        vec![("file", "/etc/hostname")],
    );
    let write = (
        "/nodes/pve1/qemu/150/agent/file-write",
        Method::POST,
        vec![("file", "/tmp/x"), ("content", "x")],
    );
    let info = ("/nodes/pve1/qemu/150/agent/info", Method::GET, vec![]);
    let cases: [(&str, [u16; 4]); 4] = [
        ("VM.GuestAgent.Audit", [403, 403, 403, 200]),
        ("VM.GuestAgent.FileRead", [403, 200, 403, 403]),
        ("VM.GuestAgent.FileWrite", [403, 403, 200, 403]),
        ("VM.GuestAgent.Unrestricted", [200, 200, 200, 200]),
    ];
    for (privs, want) in cases {
        let who = user_with(&api, privs).await;
        let mut got = [0u16; 4];
        for (i, (path, method, params)) in [&exec, &read, &write, &info].into_iter().enumerate() {
            got[i] = call_as(&api, &who, method.clone(), path, params).await;
        }
        assert_eq!(got, want, "{privs}: exec, file-read, file-write, info");
    }
}

#[tokio::test]
async fn a_hung_agent_holds_a_pvedaemon_worker_per_call() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    put_state(&api, 150, json!({"agent": "hung"})).await;
    // Each exec waits the 10 s (scaled) qga timeout inside a worker: at most 3 at once.
    let calls = (0..6).map(|_| exec_json(&api, 150, &["true"]));
    for a in futures::future::join_all(calls).await {
        assert_eq!(
            (a.status, a.message()),
            (
                500,
                "VM 150 qga command 'guest-exec' failed - got timeout\n"
            )
        );
    }
    assert_eq!(api.sim.state()["daemon_peak"]["pve1"], 3);
}
