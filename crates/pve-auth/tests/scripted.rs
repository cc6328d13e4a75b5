//! Tests against a raw scripted HTTP server: custom reason phrases, answer sequences for
//! retries, dropped connections and refused connections.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pve_auth::{ApiToken, Error, Params, PveClient, RetryPolicy};
use serde_json::Value;

fn client(base: &str, retry: RetryPolicy, log: &Log) -> PveClient {
    let token: ApiToken = "lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666"
        .parse()
        .unwrap();
    PveClient::builder(base)
        .token(token)
        .retry(retry)
        .observer(log.observer())
        .build()
        .unwrap()
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(attempts)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(5))
}

#[tokio::test]
async fn the_reason_phrase_of_a_500_reaches_the_caller_and_the_post_is_not_repeated() {
    let server = scripted(vec![Reply::Status(
        "500 VM is locked (clone)",
        "{\"data\":null}",
    )])
    .await;
    let log = Log::default();
    let c = client(&server.base(), fast_retry(4), &log);
    let err = c
        .post::<String>("/nodes/pve1/qemu/100/status/start", &Params::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.message(), Some("VM is locked (clone)"));
    assert!(err.is_locked());
    assert_eq!(
        err.to_string(),
        "POST /nodes/pve1/qemu/100/status/start failed: HTTP 500 VM is locked (clone)"
    );
    assert_eq!(server.count(), 1);
    assert_eq!(log.records().len(), 1);
}

#[tokio::test]
async fn a_post_is_repeated_when_the_task_worker_was_never_forked() {
    let server = scripted(vec![
        Reply::Status(
            "500 got no worker upid - start worker failed",
            "{\"data\":null}",
        ),
        Reply::Status(
            "200 OK",
            "{\"data\":\"UPID:pve1:0012D68C:8206F38C:65144CB7:qmstart:100:root@pam:\"}",
        ),
    ])
    .await;
    let log = Log::default();
    let c = client(&server.base(), fast_retry(4), &log);
    let upid: String = c
        .post("/nodes/pve1/qemu/100/status/start", &Params::new())
        .await
        .unwrap();
    assert!(upid.starts_with("UPID:pve1:"), "{upid}");
    assert_eq!(server.count(), 2, "one failed fork, one successful POST");
}

#[tokio::test]
async fn the_reason_phrase_wins_over_the_json_message() {
    let server = scripted(vec![Reply::Status(
        "500 can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout",
        "{\"data\":null,\"message\":\"something else\\n\"}",
    )])
    .await;
    let c = client(&server.base(), fast_retry(1), &Log::default());
    let err = c
        .get::<Value>("/nodes/pve1/qemu/101/config", &Params::new())
        .await
        .unwrap_err();
    assert!(err.is_lock_timeout(), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_get_is_retried_after_503_then_succeeds() {
    let server = scripted(vec![
        Reply::Status("503 Service Unavailable", ""),
        Reply::Status("200 OK", "{\"data\":{\"version\":\"8.2.4\"}}"),
    ])
    .await;
    let log = Log::default();
    let c = client(&server.base(), fast_retry(4), &log);
    let v: Value = c.get("/version", &Params::new()).await.unwrap();
    assert_eq!(v["version"], "8.2.4");
    assert_eq!(server.count(), 2);
    let attempts: Vec<u32> = log.records().iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, vec![1, 2]);
}

#[tokio::test]
async fn gets_are_retried_on_every_gateway_status_until_the_attempts_run_out() {
    let server = scripted(vec![
        Reply::Status("502 Bad Gateway", ""),
        Reply::Status(
            "595 Errors during connection establishment, proxy handshake",
            "",
        ),
        Reply::Status("596 Connection timed out", ""),
        Reply::Status("504 Gateway Timeout", ""),
        Reply::Status("200 OK", "{\"data\":[]}"),
    ])
    .await;
    let c = client(&server.base(), fast_retry(4), &Log::default());
    let err = c.get::<Value>("/nodes", &Params::new()).await.unwrap_err();
    assert_eq!(err.status(), Some(504));
    assert!(err.is_retryable());
    assert_eq!(server.count(), 4, "4 attempts, then give up");
}

#[tokio::test]
async fn the_time_budget_stops_retries() {
    let server = scripted(vec![
        Reply::Status("503 Service Unavailable", ""),
        Reply::Status("200 OK", "{\"data\":[]}"),
    ])
    .await;
    let policy = RetryPolicy::default()
        .max_attempts(5)
        .initial_backoff(Duration::from_secs(60))
        .max_backoff(Duration::from_secs(60))
        .budget(Duration::from_secs(1));
    let c = client(&server.base(), policy, &Log::default());
    let err = c.get::<Value>("/nodes", &Params::new()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.count(), 1, "the next delay would exceed the budget");
}

#[tokio::test]
async fn a_closed_connection_is_retried_for_get_but_not_for_post() {
    let server = scripted(vec![
        Reply::Close,
        Reply::Status("200 OK", "{\"data\":{\"version\":\"8.2.4\"}}"),
        Reply::Close,
        Reply::Status("200 OK", "{\"data\":\"UPID:x\"}"),
    ])
    .await;
    let c = client(&server.base(), fast_retry(3), &Log::default());
    let v: Value = c.get("/version", &Params::new()).await.unwrap();
    assert_eq!(v["version"], "8.2.4");
    assert_eq!(server.count(), 2);

    let err = c
        .post::<String>(
            "/nodes/pve1/qemu/100/clone",
            &Params::new().with("newid", 101u32),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport { closed: true, .. }),
        "{err:?}"
    );
    assert!(!err.was_never_sent());
    assert_eq!(
        server.count(),
        3,
        "the POST may have been processed: not repeated"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_even_for_post() {
    let port = closed_port().await;
    let log = Log::default();
    let c = client(&format!("http://127.0.0.1:{port}"), fast_retry(3), &log);
    let err = c
        .post::<String>("/nodes/pve1/qemu/100/status/start", &Params::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_retryable() && err.was_never_sent());
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(log.records().len(), 3, "never sent, so safe to try 3 times");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and never answer; the socket lives until the test ends.
    let hold = tokio::spawn(async move {
        let (_s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let token: ApiToken = "lab@pve!runner=0b5e7a4c".parse().unwrap();
    let c = PveClient::builder(&format!("http://{addr}"))
        .token(token)
        .timeout(Duration::from_millis(200))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = c
        .get::<Value>("/version", &Params::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    hold.abort();
}

#[tokio::test]
async fn requests_carry_the_token_and_form_body_on_the_wire() {
    let server = scripted(vec![Reply::Status("200 OK", "{\"data\":null}")]).await;
    let c = client(&server.base(), fast_retry(1), &Log::default());
    let () = c
        .put(
            "/nodes/pve1/qemu/100/config",
            &Params::new().with("name", "exam 01").with("agent", true),
        )
        .await
        .unwrap();
    let req = server.requests.lock().unwrap()[0].clone();
    assert!(
        req.starts_with("PUT /api2/json/nodes/pve1/qemu/100/config HTTP/1.1\r\n"),
        "{req}"
    );
    let lower = req.to_ascii_lowercase();
    assert!(lower.contains(
        "authorization: pveapitoken=lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666\r\n"
    ));
    assert!(lower.contains("content-type: application/x-www-form-urlencoded\r\n"));
    assert!(!lower.contains("csrfpreventiontoken"));
    assert!(req.ends_with("\r\n\r\nname=exam%2001&agent=1"), "{req}");
}
