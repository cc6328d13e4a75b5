//! End-to-end: the `pve-auth` connection layer against the embedded `pve-sim` over real
//! HTTP(S) on 127.0.0.1. These are the paths a teacher's first command takes: TLS with the
//! node's self-signed certificate pinned, password login (with and without TFA), API tokens,
//! and recovery from an expired ticket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pve_auth::{ApiToken, Params, PveClient, RequestRecord, Secret, TlsOptions, TotpSource};
use pve_sim::{SimHandle, Simulator};
use serde_json::Value;

const TIME_SCALE: f64 = 0.01;
const PASSWORD: &str = "exam-secret";

/// A simulator with the test password, HTTPS unless `plain_http`.
fn sim_builder(plain_http: bool) -> pve_sim::SimulatorBuilder {
    Simulator::builder()
        .password(PASSWORD)
        .plain_http(plain_http)
        .time_scale(TIME_SCALE)
}

async fn start(builder: pve_sim::SimulatorBuilder) -> SimHandle {
    builder.start().await.expect("simulator starts")
}

/// A password client for `sim`, with `tls` (or the default system roots).
fn password_client(sim: &SimHandle, tls: Option<TlsOptions>) -> pve_auth::PveClientBuilder {
    let builder = PveClient::builder(&sim.url()).password("root@pam", Secret::new(PASSWORD));
    match tls {
        Some(tls) => builder.tls(tls),
        None => builder,
    }
}

#[tokio::test]
async fn pinned_https_login_reads_version_and_nodes() {
    let sim = start(sim_builder(false)).await;
    let client = password_client(
        &sim,
        Some(TlsOptions::fingerprint(sim.fingerprint()).expect("sim fingerprint parses")),
    )
    .build()
    .expect("client builds");

    let version: Value = client
        .get("/version", &Params::new())
        .await
        .expect("version");
    assert!(
        version["version"]
            .as_str()
            .is_some_and(|v| v.starts_with('9')),
        "a PVE 9 version string, got {version}"
    );
    let nodes: Vec<Value> = client.get("/nodes", &Params::new()).await.expect("nodes");
    let mut names: Vec<&str> = nodes.iter().filter_map(|n| n["node"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["pve1", "pve2", "pve3"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_pin_is_refused_and_names_the_presented_fingerprint() {
    let sim = start(sim_builder(false)).await;
    let wrong = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let client = password_client(
        &sim,
        Some(TlsOptions::fingerprint(wrong).expect("pin parses")),
    )
    .build()
    .expect("client builds");

    let err = client
        .get::<Value>("/version", &Params::new())
        .await
        .expect_err("a wrong pin must not connect");
    assert!(err.is_tls(), "a TLS error, got {err:?}");
    let text = err.to_string();
    assert!(
        text.contains(sim.fingerprint()),
        "the error prints the presented fingerprint {}: {text}",
        sim.fingerprint()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn default_verification_refuses_the_self_signed_node_certificate() {
    let sim = start(sim_builder(false)).await;
    let client = password_client(&sim, None).build().expect("client builds");
    let err = client
        .get::<Value>("/version", &Params::new())
        .await
        .expect_err("system roots must not trust a self-signed node certificate");
    assert!(err.is_tls(), "a TLS error, got {err:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn api_token_writes_without_csrf() {
    let token = "lab@pve!runner=5c1d7e2a-0b7e-4a43-9d3c-6f3a1e8b2c44";
    let sim = start(sim_builder(true).token(token)).await;
    let client = PveClient::builder(&sim.url())
        .token(token.parse::<ApiToken>().expect("token parses"))
        .build()
        .expect("client builds");

    // A write: create a pool. With a token there is no ticket and no CSRF token at all.
    client
        .post::<Value>("/pools", &Params::new().with("poolid", "exam-e2e"))
        .await
        .expect("token may create a pool");
    let pools: Vec<Value> = client.get("/pools", &Params::new()).await.expect("pools");
    assert!(
        pools.iter().any(|p| p["poolid"] == "exam-e2e"),
        "new pool listed: {pools:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn two_step_totp_login() {
    let secret = "JBSWY3DPEHPK3PXP";
    let sim = start(sim_builder(true).totp_secret(secret)).await;
    let codes_asked = Arc::new(AtomicUsize::new(0));
    let asked = Arc::clone(&codes_asked);
    let client = password_client(&sim, None)
        .totp(TotpSource::callback(move || {
            asked.fetch_add(1, Ordering::SeqCst);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_secs();
            Secret::new(pve_sim::totp_code(secret, now).expect("valid base32 secret"))
        }))
        .build()
        .expect("client builds");

    client.login().await.expect("two-step login succeeds");
    let nodes: Vec<Value> = client.get("/nodes", &Params::new()).await.expect("nodes");
    assert_eq!(nodes.len(), 3);
    assert_eq!(
        codes_asked.load(Ordering::SeqCst),
        1,
        "one TOTP code per login"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_ticket_is_replaced_transparently() {
    let sim = start(sim_builder(true).ticket_lifetime(Duration::from_secs(1))).await;
    let logins = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&logins);
    let observer: pve_auth::Observer = Arc::new(move |record: &RequestRecord| {
        if record.path == "/access/ticket" {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let client = password_client(&sim, None)
        .observer(observer)
        .build()
        .expect("client builds");

    let _: Value = client
        .get("/version", &Params::new())
        .await
        .expect("first call");
    let first_logins = logins.load(Ordering::SeqCst);
    assert_eq!(first_logins, 1, "one login before the first call");

    // Ticket times have whole-second resolution and a ticket is valid while its age is at
    // most the lifetime, so only an age of 2 s is certainly past a 1 s lifetime.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let _: Value = client
        .get("/version", &Params::new())
        .await
        .expect("the client recovers from the expired ticket by itself");
    assert!(
        logins.load(Ordering::SeqCst) > first_logins,
        "a new ticket was requested after expiry"
    );
    sim.shutdown().await;
}
