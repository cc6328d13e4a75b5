//! A scripted HTTP server on 127.0.0.1 that behaves like qemu-ga behind PVE where httpmock
//! cannot: it drops the one answer carrying a result (qemu-ga then forgets the pid), and it
//! counts requests in flight to check the per-node limit.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pve_agent::{AgentApi, AgentOptions, Error, Exec};
use pve_auth::{PveClient, RetryPolicy};
use pve_vm::{GuestKind, NodeName, Timing, VmApi, VmId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";

/// A qemu-ga behind PVE: `exec` starts pid 7 which is finished at once; the first
/// exec-status reporting the end has its answer dropped (if `drop_result`), and from then on
/// the pid is unknown. `file-read` answers slowly, to measure concurrency.
#[derive(Default)]
struct Agent {
    drop_result: bool,
    reported: bool,
    seen: Vec<String>,
}

enum Answer {
    Json(u16, String),
    Drop,
    Slow(String),
}

fn handle(agent: &mut Agent, method: &str, path: &str) -> Answer {
    agent.seen.push(format!("{method} {path}"));
    let ok = |v: serde_json::Value| Answer::Json(200, serde_json::json!({ "data": v }).to_string());
    if path.ends_with("/agent/exec") {
        return ok(serde_json::json!({"pid": 7}));
    }
    if path.ends_with("/agent/exec-status") {
        if agent.reported {
            return Answer::Json(
                500,
                r#"{"data":null,"message":"VM 100 qmp command 'guest-exec-status' failed - Invalid parameter 'pid'\n"}"#
                    .to_owned(),
            );
        }
        agent.reported = true;
        if agent.drop_result {
            return Answer::Drop;
        }
        return ok(serde_json::json!({"exited": 1, "exitcode": 0, "out-data": "ok\n"}));
    }
    if path.contains("/agent/file-read") {
        return Answer::Slow(serde_json::json!({"data": {"content": "aGk="}}).to_string());
    }
    Answer::Json(501, r#"{"data":null}"#.to_owned())
}

struct Server {
    url: String,
    agent: Arc<Mutex<Agent>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

async fn serve(
    mut stream: TcpStream,
    agent: Arc<Mutex<Agent>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
) {
    loop {
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
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut first = head.lines().next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_owned();
        let path = first
            .next()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_owned();
        let answer = handle(&mut agent.lock().unwrap(), &method, &path);
        let (status, body) = match answer {
            Answer::Drop => return,
            Answer::Json(status, body) => (status, body),
            Answer::Slow(body) => {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                (200, body)
            }
        };
        // PVE puts its message in the reason phrase too.
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(|m| m.trim().to_owned()))
            .unwrap_or_else(|| "OK".to_owned());
        let reply = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn start(drop_result: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let agent = Arc::new(Mutex::new(Agent {
        drop_result,
        ..Agent::default()
    }));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (a, i, m) = (agent.clone(), in_flight.clone(), max_in_flight.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, a.clone(), i.clone(), m.clone()));
        }
    });
    Server {
        url,
        agent,
        in_flight,
        max_in_flight,
    }
}

fn agent_api(url: &str, retry: RetryPolicy, per_node: usize) -> (AgentApi, pve_vm::Guest) {
    let client = PveClient::builder(url)
        .token(TOKEN.parse().unwrap())
        .retry(retry)
        .build()
        .unwrap();
    let vms = VmApi::with_timing(client, Timing::default().scaled(0.001));
    let guest = vms.guest_on(
        NodeName::new("pve1").unwrap(),
        GuestKind::Qemu,
        VmId::new(100).unwrap(),
    );
    let options = AgentOptions::default().scaled(0.001).per_node(per_node);
    (AgentApi::with_options(vms, options), guest)
}

async fn lost_result_case(retry: RetryPolicy) {
    let server = start(true).await;
    let (agent, guest) = agent_api(&server.url, retry, 3);
    let cmd = Exec::new(["test", "-e", "/etc/nftables.conf"]).timeout(Duration::from_secs(20));
    let err = tokio::time::timeout(Duration::from_secs(30), agent.exec(&guest, &cmd))
        .await
        .expect("exec must not hang")
        .unwrap_err();
    assert!(err.is_result_lost(), "expected a lost result, got {err}");
    match &err {
        Error::ResultLost { pid, .. } => assert_eq!(*pid, Some(7)),
        other => panic!("{other}"),
    }
    let seen = server.agent.lock().unwrap().seen.clone();
    let exec = seen.iter().filter(|s| s.ends_with("/agent/exec")).count();
    let polls = seen
        .iter()
        .filter(|s| s.ends_with("/agent/exec-status"))
        .count();
    // Sent once, never again; one poll lost, one that found the pid forgotten.
    assert_eq!((exec, polls), (1, 2), "{seen:?}");
}

#[tokio::test]
async fn a_dropped_result_is_lost_when_the_client_retries_reads_itself() {
    lost_result_case(RetryPolicy::default()).await;
}

#[tokio::test]
async fn a_dropped_result_is_lost_when_the_poller_asks_again() {
    lost_result_case(RetryPolicy::none()).await;
}

#[tokio::test]
async fn the_result_is_read_once_when_nothing_is_lost() {
    let server = start(false).await;
    let (agent, guest) = agent_api(&server.url, RetryPolicy::none(), 3);
    let out = agent.exec(&guest, &Exec::new(["hostname"])).await.unwrap();
    assert_eq!((out.code(), out.stdout.as_str()), (0, "ok\n"));
    let seen = server.agent.lock().unwrap().seen.len();
    assert_eq!(seen, 2, "one exec, one exec-status");
}

#[tokio::test]
async fn agent_calls_in_flight_per_node_stay_within_the_limit() {
    let server = start(false).await;
    let (agent, guest) = agent_api(&server.url, RetryPolicy::none(), 2);
    let reads = (0..8).map(|_| {
        let agent = agent.clone();
        let guest = guest.clone();
        async move { agent.file_read(&guest, "/etc/hostname").await }
    });
    let results = tokio::time::timeout(Duration::from_secs(30), futures_join_all(reads.collect()))
        .await
        .expect("reads must not hang");
    for r in results {
        assert_eq!(r.unwrap().data, b"hi");
    }
    assert_eq!(server.in_flight.load(Ordering::SeqCst), 0);
    let max = server.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "at most 2 in flight, saw {max}");
}

/// Joins futures without an extra dependency: one task each.
async fn futures_join_all<T: Send + 'static>(
    futs: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
