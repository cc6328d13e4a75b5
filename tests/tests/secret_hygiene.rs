//! Secret hygiene of a whole run (issue 10): a lab cycle (`lab_core::apply`, `status`,
//! `teardown` over `lab_proxmox::ProxmoxLab`) against an in-process `pve-sim`, once with
//! password login + TOTP and once with an API token, plus the FOSS-Cloud calls (login,
//! realms, list, assign with its SPICE password) against `fosscloud-sim`, all with a TRACE
//! subscriber that captures every log line of the process, including the `log` records of
//! reqwest, hyper and rustls (bridged by `tracing-log`).
//!
//! No known secret — the PVE password, the TOTP secret, the token secret, the FOSS-Cloud
//! password, the SPICE password, nor any ticket or CSRF token the simulator issued — may
//! appear in the log, in an error's `Display` or `Debug`, or in the `Debug` of a client.
//! Tickets and CSRF tokens are read off the wire: the PVE client talks HTTPS to a recording
//! proxy on 127.0.0.1 (its own certificate, pinned) that forwards to the simulator.
//!
//! The checker itself is tested by planting each secret, one at a time, into the log.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lab_core::{apply, no_progress, status, teardown, DownOptions, LabName, LabSpec, VmId};
use lab_proxmox::ProxmoxLab;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use pve_auth::{ApiToken, PveClient, Secret, TlsOptions, TotpSource};
use pve_vm::Timing;
use sha2::{Digest, Sha256};
use tracing_subscriber::fmt::MakeWriter;

const SCALE: f64 = 0.01;
const PVE_PASSWORD: &str = "Pve-Pass-6d1f0c84b2";
const WRONG_PASSWORD: &str = "Wrong-Pass-93be27d1aa";
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPKRUGS4DUMVZXI2LF";
const TOKEN_SECRET: &str = "0f4e3b6a-8c21-4d9e-b7a5-52c1e9d08f3b";
const WRONG_TOKEN_SECRET: &str = "77777777-1111-4222-8333-944444444444";
const FC_USER: &str = "alice";
const FC_PASSWORD: &str = "Fc-Pass-a47c19e05d";

/// Everything written to the process-wide subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// A TRACE subscriber writing into a `Capture`, with span fields, targets and the `log`
/// bridge (so reqwest/hyper/rustls records arrive too).
fn subscriber(capture: Capture) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_target(true)
        .with_writer(capture)
        .finish()
}

/// The process-wide capture, installed once (global subscriber + `log` bridge).
fn global_capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            tracing::subscriber::set_global_default(subscriber(capture.clone()))
                .expect("no other global subscriber in this test binary");
            tracing_log::LogTracer::init().expect("no other logger in this test binary");
            capture
        })
        .clone()
}

/// The forms in which a secret could leak: as is, percent-encoded (cookies, query strings,
/// form bodies) and, for tickets, the signature alone.
fn needles(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        serde_urlencoded::to_string([("x", secret)]).unwrap()[2..].to_owned(),
    ];
    if let Some((_, sig)) = secret.split_once("::") {
        forms.push(sig.to_owned());
    }
    forms.sort();
    forms.dedup();
    forms.retain(|f| f.len() >= 8);
    forms
}

/// Every (secret name, place) where a secret occurs in one of `texts`.
fn leaks(secrets: &[(String, String)], texts: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, secret) in secrets {
        for needle in needles(secret) {
            for (place, text) in texts {
                if text.contains(&needle) {
                    found.push(format!("{name} in {place}"));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// What the recording proxy saw: tickets and CSRF tokens issued and sent.
#[derive(Default)]
struct Seen {
    tickets: BTreeSet<String>,
    csrf: BTreeSet<String>,
    requests: usize,
}

/// A TLS-terminating proxy on 127.0.0.1:0 in front of the plain-HTTP simulator at
/// `upstream`, recording what authenticates. Returns its URL, certificate fingerprint
/// and the record. It lives as long as the test's runtime.
async fn recording_proxy(upstream: String) -> (String, String, Arc<Mutex<Seen>>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let der = certified.cert.der().clone();
    let fingerprint = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.key_pair.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let http = reqwest::Client::new();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, http, upstream, record) = (
                acceptor.clone(),
                http.clone(),
                upstream.clone(),
                record.clone(),
            );
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    forward(req, http.clone(), upstream.clone(), record.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, fingerprint, seen)
}

/// Headers that belong to one hop only.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "content-length"
    )
}

async fn forward(
    req: Request<Incoming>,
    http: reqwest::Client,
    upstream: String,
    seen: Arc<Mutex<Seen>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    {
        let mut seen = seen.lock().unwrap();
        seen.requests += 1;
        if let Some(t) = parts.headers.get("csrfpreventiontoken") {
            seen.csrf.insert(t.to_str().unwrap().to_owned());
        }
        for cookie in parts.headers.get_all("cookie") {
            for c in cookie.to_str().unwrap().split(';') {
                if let Some(t) = c.trim().strip_prefix("PVEAuthCookie=") {
                    let t = percent_encoding::percent_decode_str(t).decode_utf8_lossy();
                    seen.tickets.insert(t.into_owned());
                }
            }
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = http.request(parts.method.clone(), format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            out = out.header(name, value);
        }
    }
    let answer = out.body(body).send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !hop_by_hop(name.as_str()) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap();
    if parts.uri.path().ends_with("/access/ticket") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let mut seen = seen.lock().unwrap();
            if let Some(t) = v["data"]["ticket"].as_str() {
                seen.tickets.insert(t.to_owned());
            }
            if let Some(t) = v["data"]["CSRFPreventionToken"].as_str() {
                seen.csrf.insert(t.to_owned());
            }
        }
    }
    Ok(response.body(Full::new(bytes)).unwrap())
}

fn spec(lab: &str, count: u32) -> LabSpec {
    let mut s = LabSpec::new(LabName::new(lab).unwrap(), VmId::new(9000).unwrap(), count).unwrap();
    s.hostname = "stud-{n:02}".parse().unwrap();
    s.ids = "5000-5099".parse().unwrap();
    s.teachers = vec!["10.10.0.1".parse().unwrap()];
    s.timeouts = lab_core::Timeouts::default().scaled(SCALE);
    s
}

fn totp_now() -> TotpSource {
    TotpSource::callback(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Secret::new(pve_sim::totp_code(TOTP_SECRET, now).unwrap())
    })
}

/// `lab up`, `status` and `lab down` of a two-student lab; returns the debug texts of the
/// reports so that they are checked too.
async fn lab_cycle(hv: &ProxmoxLab, lab: &str) -> Vec<(String, String)> {
    let up = apply(hv, &spec(lab, 2), &no_progress).await.unwrap();
    assert_eq!(up.students.len(), 2, "the lab came up");
    let name = LabName::new(lab).unwrap();
    let rows = status(hv, &name).await.unwrap();
    assert_eq!(rows.len(), 2);
    let down = teardown(hv, &name, &DownOptions::new(4), &no_progress)
        .await
        .unwrap();
    assert_eq!(down.destroy.len(), 2, "the lab went down");
    vec![
        (format!("{lab} up report"), format!("{up:?}")),
        (format!("{lab} status"), format!("{rows:?}")),
        (format!("{lab} down report"), format!("{down:?}")),
    ]
}

/// Display and Debug of an error, as two places.
fn error_texts(
    what: &str,
    e: &(impl std::fmt::Display + std::fmt::Debug),
) -> [(String, String); 2] {
    [
        (format!("{what} (Display)"), e.to_string()),
        (format!("{what} (Debug)"), format!("{e:?}")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_trace_log_an_error_or_a_debug_print() {
    let capture = global_capture();
    tracing::info!("secret hygiene run starts");
    let mut places: Vec<(String, String)> = Vec::new();

    // --- PVE: password + TOTP through the recording HTTPS proxy, then an API token. ---
    let sim = pve_sim::Simulator::builder()
        .plain_http(true)
        .password(PVE_PASSWORD)
        .totp_secret(TOTP_SECRET)
        .token(format!("lab@pve!runner={TOKEN_SECRET}"))
        .time_scale(SCALE)
        .start()
        .await
        .unwrap();
    let (proxy, fingerprint, seen) = recording_proxy(sim.url()).await;
    let tls = || TlsOptions::fingerprint(&fingerprint).unwrap();

    let client = PveClient::builder(&proxy)
        .password("root@pam", Secret::new(PVE_PASSWORD))
        .totp(totp_now())
        .tls(tls())
        .build()
        .unwrap();
    let hv = ProxmoxLab::with_timing(client.clone(), Timing::default().scaled(SCALE));
    places.extend(lab_cycle(&hv, "hyg-pw").await);
    places.push(("password client (Debug)".into(), format!("{client:?}")));
    places.push(("password lab (Debug)".into(), format!("{hv:?}")));

    let token = ApiToken::new("lab@pve", "runner", Secret::new(TOKEN_SECRET)).unwrap();
    places.push(("API token (Debug)".into(), format!("{token:?}")));
    let token_client = PveClient::builder(&proxy)
        .token(token)
        .tls(tls())
        .build()
        .unwrap();
    let hv_token = ProxmoxLab::with_timing(token_client.clone(), Timing::default().scaled(SCALE));
    places.extend(lab_cycle(&hv_token, "hyg-tok").await);
    places.push(("token client (Debug)".into(), format!("{token_client:?}")));
    places.push(("token lab (Debug)".into(), format!("{hv_token:?}")));

    // Failures must not carry secrets either: a wrong password, a wrong TOTP code, a wrong
    // token secret, and an engine error.
    let wrong = PveClient::builder(&proxy)
        .password("root@pam", Secret::new(WRONG_PASSWORD))
        .totp(totp_now())
        .tls(tls())
        .build()
        .unwrap();
    let e = wrong
        .login()
        .await
        .expect_err("a wrong password is refused");
    places.extend(error_texts("wrong-password error", &e));
    let bad_code = PveClient::builder(&proxy)
        .password("root@pam", Secret::new(PVE_PASSWORD))
        .totp(TotpSource::fixed("000000"))
        .tls(tls())
        .build()
        .unwrap();
    if let Err(e) = bad_code.login().await {
        places.extend(error_texts("wrong-TOTP error", &e));
    }
    let wrong_token = PveClient::builder(&proxy)
        .token(ApiToken::new("lab@pve", "runner", Secret::new(WRONG_TOKEN_SECRET)).unwrap())
        .tls(tls())
        .build()
        .unwrap();
    let e = wrong_token
        .get::<serde_json::Value>("/nodes", &pve_auth::Params::new())
        .await
        .expect_err("a wrong token secret is refused");
    places.extend(error_texts("wrong-token error", &e));
    let mut no_template = spec("hyg-err", 1);
    no_template.template = VmId::new(777).unwrap();
    let e = apply(&hv, &no_template, &no_progress)
        .await
        .expect_err("a missing template is an error");
    places.extend(error_texts("engine error", &e));

    // --- FOSS-Cloud over HTTPS with the simulator's CA: login, realms, list, assign. ---
    let mut directory = fosscloud_sim::Directory::builtin();
    for u in directory.users.iter_mut().filter(|u| u.name == FC_USER) {
        u.password = FC_PASSWORD.to_owned();
    }
    for (i, vm) in directory.vms.iter_mut().enumerate() {
        vm.spice_password = format!("Spice-{i:02}-c3e81f5b7a");
    }
    let spice_passwords: Vec<String> = directory
        .vms
        .iter()
        .map(|v| v.spice_password.clone())
        .collect();
    let fc = fosscloud_sim::Simulator::builder()
        .directory(directory)
        .start()
        .await
        .unwrap();
    let pem = fc.ca_certificate_pem().unwrap().to_owned();
    let fc_client = fosscloud_api::FossCloudClient::builder(fc.base_url())
        .add_root_certificate_pem(pem.clone())
        .credentials(FC_USER, FC_PASSWORD)
        .build()
        .unwrap();
    fc_client.login().await.unwrap();
    let realms = fc_client.realms().await.unwrap();
    let vms = fc_client
        .list_vms(fosscloud_api::VmKind::Owner)
        .await
        .unwrap();
    let pool = vms
        .iter()
        .find(|v| v.is_assignable())
        .and_then(|v| v.pool.clone())
        .expect("alice has an assignable pool");
    let assigned = fc_client.assign(&pool).await.unwrap();
    let spice = assigned
        .password
        .as_ref()
        .expect("assign returns a SPICE password")
        .expose()
        .to_owned();
    assert!(
        spice_passwords.contains(&spice),
        "the SPICE password is one we planted in the directory"
    );
    places.push(("FOSS-Cloud client (Debug)".into(), format!("{fc_client:?}")));
    places.push(("FOSS-Cloud realms (Debug)".into(), format!("{realms:?}")));
    places.push(("FOSS-Cloud list (Debug)".into(), format!("{vms:?}")));
    places.push((
        "FOSS-Cloud assigned VM (Debug)".into(),
        format!("{assigned:?}"),
    ));
    let fc_wrong = fosscloud_api::FossCloudClient::builder(fc.base_url())
        .add_root_certificate_pem(pem)
        .credentials(FC_USER, WRONG_PASSWORD)
        .build()
        .unwrap();
    let e = fc_wrong
        .login()
        .await
        .expect_err("a wrong FOSS-Cloud password is refused");
    places.extend(error_texts("FOSS-Cloud login error", &e));

    sim.shutdown().await;
    fc.shutdown().await;

    // --- The secrets, including what the simulator issued on the wire. ---
    let (tickets, csrf, requests) = {
        let seen = seen.lock().unwrap();
        (seen.tickets.clone(), seen.csrf.clone(), seen.requests)
    };
    assert!(
        requests > 20,
        "the PVE traffic went through the proxy ({requests} requests)"
    );
    assert!(
        tickets.len() >= 2,
        "a TFA ticket and a full ticket were seen: {}",
        tickets.len()
    );
    assert!(!csrf.is_empty(), "a CSRF token was seen");
    let mut secrets: Vec<(String, String)> = vec![
        ("PVE password".into(), PVE_PASSWORD.into()),
        ("wrong PVE password".into(), WRONG_PASSWORD.into()),
        ("TOTP secret".into(), TOTP_SECRET.into()),
        ("token secret".into(), TOKEN_SECRET.into()),
        ("wrong token secret".into(), WRONG_TOKEN_SECRET.into()),
        ("FOSS-Cloud password".into(), FC_PASSWORD.into()),
        ("SPICE password".into(), spice.clone()),
    ];
    secrets.extend(tickets.iter().map(|t| ("PVE ticket".to_owned(), t.clone())));
    secrets.extend(csrf.iter().map(|t| ("CSRF token".to_owned(), t.clone())));

    let log = capture.text();
    // The capture really holds a TRACE log of the whole run, HTTP and TLS layers included.
    for (needle, what) in [
        ("TRACE", "TRACE lines"),
        ("rustls", "rustls records"),
        ("reqwest", "reqwest records"),
        ("PVE request", "pve-auth's request log"),
        ("fosscloud", "the FOSS-Cloud client's or simulator's log"),
    ] {
        assert!(log.contains(needle), "the log has {what}");
    }
    places.push(("the TRACE log".into(), log.clone()));
    let found = leaks(&secrets, &places);
    assert!(found.is_empty(), "secrets leaked: {found:#?}");

    // The same checker catches each secret, one at a time, planted into the real log.
    for (name, secret) in &secrets {
        tracing::warn!(planted = %secret, "planted");
        let planted = [("the TRACE log".to_owned(), capture.text())];
        let found = leaks(&[(name.clone(), secret.clone())], &planted);
        assert_eq!(
            found,
            [format!("{name} in the TRACE log")],
            "planting {name} is caught"
        );
        capture.0.lock().unwrap().truncate(log.len());
    }
}

#[test]
fn the_checker_reports_exactly_the_planted_secret_in_any_spelling() {
    // A subscriber of its own (thread-local), so nothing planted here reaches the global log.
    let secrets: Vec<(String, String)> = vec![
        ("password".into(), "Plant-Pass-1b2c3d4e".into()),
        (
            "token secret".into(),
            "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee".into(),
        ),
        ("TOTP secret".into(), "KRUGS4ZANFZSAYJAORSXG5BA".into()),
        ("SPICE password".into(), "Plant-Spice-99x".into()),
        (
            "ticket".into(),
            "PVE:root@pam:6751A2B3::c2lnbmF0dXJlK3Rlc3Q/Zm9vYmFyYmF6".into(),
        ),
        (
            "CSRF token".into(),
            "6751A2B3:QmFzZTY0Q3NyZlRva2VuVmFsdWU".into(),
        ),
    ];
    for (planted_name, planted) in &secrets {
        for spelling in needles(planted) {
            let capture = Capture::default();
            tracing::subscriber::with_default(subscriber(capture.clone()), || {
                tracing::debug!(user = "root@pam", "logging in");
                tracing::trace!(value = %spelling, "request body");
            });
            let found = leaks(&secrets, &[("log".to_owned(), capture.text())]);
            assert_eq!(found, [format!("{planted_name} in log")], "{spelling}");
        }
    }
    // A clean log passes, and a secret's prefix alone is not a leak.
    let capture = Capture::default();
    tracing::subscriber::with_default(subscriber(capture.clone()), || {
        tracing::info!(prefix = &secrets[0].1[..6], "nothing to see");
    });
    assert!(leaks(&secrets, &[("log".to_owned(), capture.text())]).is_empty());
}
