//! End-to-end: `labctl vm exec|file-read|file-write|snapshot|link` run as a user would,
//! against a simulator on 127.0.0.1 whose guest is played through
//! `PUT /_sim/guests/{vmid}/state` (issue 17, acceptance 1 and parts of 3).
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use pve_sim::{SimHandle, Simulator};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

const SCALE: &str = "0.01";
/// A guard against a hanging binary, not a measurement.
const GUARD: Duration = Duration::from_secs(120);

/// `labctl` with a clean environment: no PVE_* from the developer's shell leaks in.
fn labctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.kill_on_drop(true);
    c
}

fn against(sim: &SimHandle) -> Command {
    let mut c = labctl();
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE)
        .stdin(std::process::Stdio::null());
    c
}

async fn run(sim: &SimHandle, args: &[&str]) -> (Output, String, String) {
    let out = tokio::time::timeout(GUARD, against(sim).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("labctl {args:?} hung"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

async fn ok(sim: &SimHandle, args: &[&str]) -> String {
    let (out, stdout, stderr) = run(sim, args).await;
    assert!(
        out.status.success(),
        "labctl {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// A simulator with VM 5000 cloned from 9000, running, its agent answering.
async fn lab() -> SimHandle {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    ok(
        &sim,
        &[
            "vm", "clone", "9000", "--name", "stud-01", "--newid", "5000",
        ],
    )
    .await;
    ok(&sim, &["vm", "start", "5000"]).await;
    ok(&sim, &["vm", "agent", "5000", "--wait", "60"]).await;
    sim
}

/// `PUT /_sim/guests/{vmid}/state` over a plain HTTP/1.1 connection.
async fn put_state(sim: &SimHandle, vmid: u32, body: &Value) {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let request = format!(
        "PUT /_sim/guests/{vmid}/state HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: \
         application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

fn net0_of(sim: &SimHandle, vmid: u64) -> String {
    let state = sim.state();
    let guest = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"].as_u64() == Some(vmid))
        .unwrap()
        .clone();
    guest["config"]["net0"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn exec_shows_what_the_student_configured_and_passes_exit_codes() {
    let sim = lab().await;
    put_state(
        &sim,
        5000,
        &json!({"interfaces": {"eth1.10": {"kind": "vlan", "vlan": 10,
                                           "addresses": ["192.168.10.1/24"]}}}),
    )
    .await;

    let stdout = ok(
        &sim,
        &["vm", "exec", "5000", "--", "ip", "-j", "-d", "addr"],
    )
    .await;
    let ifaces: Value = serde_json::from_str(&stdout).unwrap();
    let vlan = ifaces
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == "eth1.10")
        .unwrap_or_else(|| panic!("no eth1.10 in {stdout}"));
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 10, "{vlan}");
    let addrs: Vec<&str> = vlan["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .filter_map(|a| a["local"].as_str())
        .collect();
    assert_eq!(addrs, ["192.168.10.1"], "{vlan}");

    let json_out = ok(
        &sim,
        &[
            "-o", "json", "vm", "exec", "5000", "--", "ip", "-j", "-d", "addr",
        ],
    )
    .await;
    let v: Value = serde_json::from_str(&json_out).unwrap();
    for key in [
        "vmid",
        "argv",
        "exit_code",
        "stdout",
        "stderr",
        "truncated",
        "started",
        "finished",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["vmid"], 5000);
    assert_eq!(v["argv"], json!(["ip", "-j", "-d", "addr"]));
    assert_eq!(v["exit_code"], 0);
    assert!(v["stdout"].as_str().unwrap().contains("eth1.10"));
    assert_eq!(v["truncated"], json!({"stdout": false, "stderr": false}));
    for t in ["started", "finished"] {
        let s = v[t].as_str().unwrap();
        assert!(
            s.len() == 20 && s.ends_with('Z') && &s[10..11] == "T",
            "{t}: {s}"
        );
    }
    assert!(v["started"].as_str() <= v["finished"].as_str());

    let (out, _, _) = run(&sim, &["vm", "exec", "5000", "--", "false"]).await;
    assert_eq!(out.status.code(), Some(1));
    let (out, _, stderr) = run(&sim, &["vm", "exec", "5000", "--", "no-such-tool", "-x"]).await;
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("command not found"), "{stderr}");
    let (out, stdout, _) = run(&sim, &["vm", "exec", "5000", "--", "hostname"]).await;
    assert_eq!((out.status.code(), stdout.trim()), (Some(0), "stud-01"));
}

#[tokio::test]
async fn a_shell_string_is_refused_before_anything_is_sent() {
    let sim = lab().await;
    sim.reset_requests();
    let (out, _, stderr) = run(&sim, &["vm", "exec", "5000", "--", "ip -j addr"]).await;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[\"ip\",\"-j\",\"addr\"]"), "{stderr}");
    let requests = sim.requests().to_string();
    assert!(!requests.contains("agent/exec"), "{requests}");
}

#[tokio::test]
async fn a_stopped_agent_fails_with_pves_text() {
    let sim = lab().await;
    put_state(&sim, 5000, &json!({"agent": "stopped"})).await;
    let (out, stdout, stderr) = run(
        &sim,
        &["vm", "exec", "5000", "--timeout", "30", "--", "hostname"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("QEMU guest agent is not running"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

#[tokio::test]
async fn files_go_in_and_out_and_a_rollback_restores_them() {
    let sim = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.txt");
    let v2 = dir.path().join("v2.txt");
    std::fs::write(&v1, "answer: 42\n").unwrap();
    std::fs::write(&v2, "answer: 41\n").unwrap();
    let v1 = v1.to_str().unwrap();
    let v2 = v2.to_str().unwrap();

    ok(
        &sim,
        &["vm", "file-write", "5000", "/root/answer.txt", "--from", v1],
    )
    .await;
    let read = ok(&sim, &["vm", "file-read", "5000", "/root/answer.txt"]).await;
    assert_eq!(read, "answer: 42\n");
    ok(&sim, &["vm", "snapshot", "5000", "create", "baseline"]).await;
    ok(
        &sim,
        &["vm", "file-write", "5000", "/root/answer.txt", "--from", v2],
    )
    .await;
    let list = ok(&sim, &["-o", "json", "vm", "snapshot", "5000", "list"]).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "baseline", "{list}");

    // Destructive: refused without a terminal and without --yes; --dry-run changes nothing.
    let (out, _, stderr) = run(&sim, &["vm", "snapshot", "5000", "rollback", "baseline"]).await;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let dry = ok(
        &sim,
        &[
            "vm",
            "snapshot",
            "5000",
            "rollback",
            "baseline",
            "--dry-run",
        ],
    )
    .await;
    assert!(dry.contains("dry run: nothing changed"), "{dry}");
    let read = ok(&sim, &["vm", "file-read", "5000", "/root/answer.txt"]).await;
    assert_eq!(read, "answer: 41\n");

    ok(
        &sim,
        &[
            "vm", "snapshot", "5000", "rollback", "baseline", "--start", "--yes",
        ],
    )
    .await;
    ok(&sim, &["vm", "agent", "5000", "--wait", "60"]).await;
    let read = ok(&sim, &["vm", "file-read", "5000", "/root/answer.txt"]).await;
    assert_eq!(read, "answer: 42\n");
    let sum = ok(
        &sim,
        &["vm", "exec", "5000", "--", "sha256sum", "/root/answer.txt"],
    )
    .await;
    // sha256("answer: 42\n")
    assert!(
        sum.starts_with("1f3c4ea1abdc49fd2dc7cb3f4a68ea183a6d6bae10e2267b3f8b762e07087b5e"),
        "{sum}"
    );

    let (out, _, stderr) = run(&sim, &["vm", "snapshot", "5000", "delete", "nope", "--yes"]).await;
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    ok(
        &sim,
        &["vm", "snapshot", "5000", "delete", "baseline", "--yes"],
    )
    .await;
    let list = ok(&sim, &["-o", "json", "vm", "snapshot", "5000", "list"]).await;
    assert_eq!(list.trim(), "[]");
}

#[tokio::test]
async fn link_down_keeps_the_mac() {
    let sim = lab().await;
    let before = net0_of(&sim, 5000);
    assert!(!before.contains("link_down"), "{before}");
    let mac = before
        .split(',')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();

    let (out, _, stderr) = run(&sim, &["vm", "link", "5000", "down"]).await;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let dry = ok(&sim, &["vm", "link", "5000", "down", "--dry-run"]).await;
    assert!(dry.contains(&mac), "{dry}");
    assert_eq!(net0_of(&sim, 5000), before);

    let out = ok(&sim, &["-o", "json", "vm", "link", "5000", "down", "--yes"]).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["mac"].as_str(), v["changed"].as_bool()),
        (Some(mac.as_str()), Some(true))
    );
    let after = net0_of(&sim, 5000);
    assert!(after.contains("link_down=1"), "{after}");
    assert!(after.contains(&mac), "MAC changed: {before} -> {after}");

    ok(&sim, &["vm", "link", "5000", "up"]).await;
    let up = net0_of(&sim, 5000);
    assert!(!up.contains("link_down=1") && up.contains(&mac), "{up}");
}
