//! Shared helpers: a started simulator plus a token-authenticated client.

use std::time::Duration;

use pve_sim::{SimHandle, Simulator, SimulatorBuilder};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "root@pam!ci=0b5e7d7c-1111-4222-8333-944455556666";
pub const PASSWORD: &str = "secret";

/// The builder every test starts from: plain HTTP, fixed password and token, fast time.
pub fn builder(scale: f64) -> SimulatorBuilder {
    Simulator::builder()
        .plain_http(true)
        .password(PASSWORD)
        .token(TOKEN)
        .time_scale(scale)
}

/// A simulator and a client that authenticates with the API token.
pub struct Api {
    pub sim: SimHandle,
    pub http: reqwest::Client,
}

/// An answer: status, reason phrase is not visible to reqwest, so tests that need it
/// use [`raw_status_line`].
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

impl Api {
    pub async fn start(scale: f64) -> Self {
        Self::with(builder(scale)).await
    }

    pub async fn with(b: SimulatorBuilder) -> Self {
        let sim = b.start().await.expect("simulator starts");
        Self {
            sim,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// One request with the token; GET/DELETE params go into the query, others into a form.
    pub async fn call(&self, method: Method, path: &str, params: &[(&str, &str)]) -> Answer {
        self.try_call(method, path, params)
            .await
            .expect("request answered")
    }

    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Result<Answer> {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .header("Authorization", format!("PVEAPIToken={TOKEN}"));
        req = if method == Method::GET || method == Method::DELETE {
            req.query(params)
        } else {
            req.form(params)
        };
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    /// GET expecting 200; returns `data`.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let a = self.call(Method::GET, path, params).await;
        assert_eq!(a.status, 200, "GET {path}: {a:?}");
        a.body["data"].clone()
    }

    /// POST expecting 200; returns `data`.
    pub async fn post(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let a = self.call(Method::POST, path, params).await;
        assert_eq!(a.status, 200, "POST {path}: {a:?}");
        a.body["data"].clone()
    }

    /// PUT expecting 200; returns `data`.
    pub async fn put(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let a = self.call(Method::PUT, path, params).await;
        assert_eq!(a.status, 200, "PUT {path}: {a:?}");
        a.body["data"].clone()
    }

    /// DELETE expecting 200; returns `data`.
    pub async fn delete(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let a = self.call(Method::DELETE, path, params).await;
        assert_eq!(a.status, 200, "DELETE {path}: {a:?}");
        a.body["data"].clone()
    }

    /// Poll a task (on the node of its UPID) until it stops; returns the status object.
    pub async fn wait_task(&self, upid: &Value) -> Value {
        let upid = upid.as_str().expect("a UPID string");
        let node = upid.split(':').nth(1).expect("UPID has a node");
        let path = format!("/nodes/{node}/tasks/{}/status", enc(upid));
        for _ in 0..2000 {
            let s = self.get(&path, &[]).await;
            if s["status"] == "stopped" {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task {upid} did not finish");
    }

    /// Run a task-returning POST and expect `exitstatus` OK.
    pub async fn post_ok(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let upid = self.post(path, params).await;
        let st = self.wait_task(&upid).await;
        assert_eq!(st["exitstatus"], "OK", "{path}: {st}");
        upid
    }

    /// Clone 9000 to `newid` (linked) and wait for OK.
    pub async fn clone_vm(&self, newid: u32, name: &str) {
        let id = newid.to_string();
        self.post_ok(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", &id), ("name", name)],
        )
        .await;
    }

    /// Poll `cond` on GET `path` data until true.
    pub async fn wait_for(&self, path: &str, cond: impl Fn(&Answer) -> bool) -> Answer {
        for _ in 0..2000 {
            let a = self.call(Method::GET, path, &[]).await;
            if cond(&a) {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition on {path} never became true");
    }
}

/// Percent-encode a path segment.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Send a raw HTTP/1.1 request and return the status line (to see the reason phrase)
/// and the rest of the answer.
pub async fn raw(addr: std::net::SocketAddr, request: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    // Error answers close the connection; success answers are read by length.
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    (line.to_owned(), rest.to_owned())
}

/// A raw request with the token header and `Connection: close`.
pub fn raw_request(method: &str, path: &str, body: &str) -> String {
    let ctype = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    format!("{method} /api2/json{path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: PVEAPIToken={TOKEN}\r\n{ctype}Connection: close\r\n\r\n{body}")
}
