//! Helpers shared by the integration tests: a settable clock, tickets, a scripted raw HTTP
//! server (for reason phrases, sequences and dropped connections), an observer log.
#![allow(dead_code)] // each test file uses a different subset
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pve_auth::ticket::SharedClock;
use pve_auth::{Clock, RequestRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Issue time of the first ticket (0x64E10CBA, as in the reference).
pub const T0: u64 = 0x64E1_0CBA;
pub const PASSWORD: &str = "s3cret-Pa55";
pub const CSRF_A: &str = "64E10CBA:csrfAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
pub const CSRF_B: &str = "64E12FFF:csrfBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

/// A ticket issued at `issued` with a recognisable signature.
pub fn ticket(issued: u64, sig: &str) -> String {
    format!("PVE:root@pam:{issued:08X}::{sig}+/sig==")
}

pub struct TestClock(AtomicU64);

impl TestClock {
    pub fn at(secs: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(secs)))
    }
    pub fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }
    pub fn shared(self: &Arc<Self>) -> SharedClock {
        self.clone()
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// Records every request the client reports to its observer.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<RequestRecord>>>);

impl Log {
    pub fn observer(&self) -> pve_auth::Observer {
        let log = self.0.clone();
        Arc::new(move |r: &RequestRecord| log.lock().unwrap().push(r.clone()))
    }
    pub fn records(&self) -> Vec<RequestRecord> {
        self.0.lock().unwrap().clone()
    }
}

/// What the scripted server does with one request.
pub enum Reply {
    /// Send this status line (after `HTTP/1.1 `) and JSON body, then close.
    Status(&'static str, &'static str),
    /// Close the connection without answering.
    Close,
}

pub struct Scripted {
    pub addr: SocketAddr,
    /// Request heads and bodies, in arrival order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// A raw HTTP/1.1 server on 127.0.0.1 answering requests with `replies` in order (a request
/// beyond the script gets `599 script exhausted`). It lives as long as the test's runtime.
pub async fn scripted(replies: Vec<Reply>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        let mut replies = replies.into_iter();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            let head_end = loop {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(pos + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).to_string());
            match replies.next() {
                Some(Reply::Close) => drop(stream),
                Some(Reply::Status(status, body)) => write(&mut stream, status, body).await,
                None => write(&mut stream, "599 script exhausted", "{\"data\":null}").await,
            }
        }
    });
    Scripted { addr, requests }
}

async fn write(stream: &mut tokio::net::TcpStream, status: &str, body: &str) {
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A loopback port with nothing listening (bound, then released).
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}
