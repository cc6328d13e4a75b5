//! Non-idempotent requests are never repeated blindly: when the connection breaks after a
//! POST/DELETE was sent, the guest's state is checked first. A scripted HTTP server on
//! 127.0.0.1 drops chosen answers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pve_auth::{PveClient, RetryPolicy};
use pve_vm::{DestroyOptions, GuestKind, NodeName, Timing, VmApi, VmId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const UPID: &str = "UPID:pve1:0000ABCD:00012345:65144CB7:qmstart:102:lab@pve!ci:";

/// The scripted cluster: which guests run, which requests arrived.
#[derive(Default)]
struct Script {
    running: BTreeMap<u32, bool>,
    exists: BTreeMap<u32, bool>,
    seen: Vec<String>,
}

enum Answer {
    Json(String),
    Drop,
}

fn handle(script: &mut Script, method: &str, path: &str) -> Answer {
    script.seen.push(format!("{method} {path}"));
    let count = |s: &Script, what: &str| s.seen.iter().filter(|x| *x == what).count();
    let id = |p: &str| -> u32 {
        p.split('/')
            .nth(6)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    let data = |v: serde_json::Value| Answer::Json(serde_json::json!({ "data": v }).to_string());
    let line = format!("{method} {path}");
    match (method, path) {
        // A clone whose answer is lost; under 150 another client's guest appears, under 151
        // the guest this clone asked for.
        ("POST", "/api2/json/nodes/pve1/qemu/9000/clone") => Answer::Drop,
        ("GET", "/api2/json/nodes/pve1/qemu/150/config") => {
            data(serde_json::json!({"name": "someone-else", "digest": "d"}))
        }
        ("GET", "/api2/json/nodes/pve1/qemu/151/config") => {
            data(serde_json::json!({"name": "stud-01", "digest": "d"}))
        }
        (_, p) if p.contains("/tasks/") => {
            data(serde_json::json!({"status": "stopped", "exitstatus": "OK"}))
        }
        ("GET", p) if p.ends_with("/status/current") => {
            let running = script.running.get(&id(p)).copied().unwrap_or(false);
            data(serde_json::json!({"status": if running {"running"} else {"stopped"}}))
        }
        ("GET", p) if p.ends_with("/config") => {
            if script.exists.get(&id(p)).copied().unwrap_or(true) {
                data(serde_json::json!({"digest": "d"}))
            } else {
                Answer::Json(String::new()) // replaced by a 500 below
            }
        }
        // 101: the start happens, but its answer is lost.
        ("POST", "/api2/json/nodes/pve1/qemu/101/status/start") => {
            script.running.insert(101, true);
            Answer::Drop
        }
        // 102: the first start never arrives (answer lost, nothing happened); the second does.
        ("POST", "/api2/json/nodes/pve1/qemu/102/status/start") => {
            if count(script, &line) == 1 {
                Answer::Drop
            } else {
                script.running.insert(102, true);
                data(serde_json::json!(UPID))
            }
        }
        // 103: the destroy happens, its answer is lost.
        ("DELETE", p) if p.starts_with("/api2/json/nodes/pve1/qemu/103") => {
            script.exists.insert(103, false);
            Answer::Drop
        }
        _ => data(serde_json::Value::Null),
    }
}

async fn serve(mut stream: TcpStream, script: Arc<Mutex<Script>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("").to_owned();
    let answer = handle(&mut script.lock().unwrap(), &method, &path);
    let (status, body) = match answer {
        Answer::Drop => return, // close without answering
        Answer::Json(b) if b.is_empty() => (
            "500 Configuration file does not exist",
            r#"{"data":null}"#.to_owned(),
        ),
        Answer::Json(b) => ("200 OK", b),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn start_server() -> (String, Arc<Mutex<Script>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script: Arc<Mutex<Script>> = Arc::default();
    let s = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, s.clone()));
        }
    });
    (format!("http://{addr}"), script)
}

fn api(base: &str) -> VmApi {
    let client = PveClient::builder(base)
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    VmApi::with_timing(client, Timing::default().scaled(0.01))
}

fn seen(script: &Arc<Mutex<Script>>, what: &str) -> usize {
    script
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|s| *s == what)
        .count()
}

#[tokio::test]
async fn a_start_whose_answer_was_lost_is_not_sent_again_once_the_guest_runs() {
    let (base, script) = start_server().await;
    let api = api(&base);
    let g = api.guest_on(
        NodeName::new("pve1").unwrap(),
        GuestKind::Qemu,
        VmId::new(101).unwrap(),
    );
    g.start().await.unwrap();
    assert_eq!(
        seen(&script, "POST /api2/json/nodes/pve1/qemu/101/status/start"),
        1
    );
    assert!(seen(&script, "GET /api2/json/nodes/pve1/qemu/101/status/current") >= 1);
}

#[tokio::test]
async fn a_start_that_never_happened_is_sent_again_after_checking() {
    let (base, script) = start_server().await;
    let api = api(&base);
    let g = api.guest_on(
        NodeName::new("pve1").unwrap(),
        GuestKind::Qemu,
        VmId::new(102).unwrap(),
    );
    g.start().await.unwrap();
    assert_eq!(
        seen(&script, "POST /api2/json/nodes/pve1/qemu/102/status/start"),
        2
    );
    let log = script.lock().unwrap().seen.clone();
    let first_post = log
        .iter()
        .position(|s| s.ends_with("102/status/start"))
        .unwrap();
    let second_post = log
        .iter()
        .rposition(|s| s.ends_with("102/status/start"))
        .unwrap();
    assert!(
        log[first_post..second_post]
            .iter()
            .any(|s| s.ends_with("102/status/current")),
        "state checked between the two POSTs: {log:?}"
    );
}

#[tokio::test]
async fn a_destroy_whose_answer_was_lost_is_confirmed_by_the_missing_config() {
    let (base, script) = start_server().await;
    let api = api(&base);
    let g = api.guest_on(
        NodeName::new("pve1").unwrap(),
        GuestKind::Qemu,
        VmId::new(103).unwrap(),
    );
    g.destroy(DestroyOptions::default()).await.unwrap();
    assert_eq!(seen(&script, "DELETE /api2/json/nodes/pve1/qemu/103"), 1);
}

fn clone_of(id: u32) -> pve_vm::CloneOptions {
    pve_vm::CloneOptions {
        hostname: Some("stud-01".into()),
        newid: pve_vm::NewId::Exact(VmId::new(id).unwrap()),
        ..pve_vm::CloneOptions::default()
    }
}

#[tokio::test]
async fn a_clone_whose_answer_was_lost_never_claims_another_clients_guest() {
    let (base, script) = start_server().await;
    let api = api(&base);
    let template = api.guest_on(
        NodeName::new("pve1").unwrap(),
        GuestKind::Qemu,
        VmId::new(9000).unwrap(),
    );
    // Under 150 a guest with another name appeared: not ours, the clone fails.
    assert!(template.clone_to(clone_of(150)).await.is_err());
    assert_eq!(
        seen(&script, "POST /api2/json/nodes/pve1/qemu/9000/clone"),
        1
    );
    assert!(script
        .lock()
        .unwrap()
        .seen
        .iter()
        .all(|s| !s.starts_with("DELETE")));
    // Under 151 the guest has the name this clone sent: it is ours.
    let g = template.clone_to(clone_of(151)).await.unwrap();
    assert_eq!(g.vmid().get(), 151);
    assert_eq!(
        seen(&script, "POST /api2/json/nodes/pve1/qemu/9000/clone"),
        2
    );
}
