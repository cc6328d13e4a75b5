//! No secret (password, ticket, CSRF token, token secret, TOTP code, TFA challenge) appears in
//! `Debug`/`Display` of the client, the builder, the credentials, any error variant, the
//! observer records or the logs.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use httpmock::prelude::*;
use pve_auth::{
    ApiToken, Error, Params, PveClient, RetryPolicy, Secret, TlsOptions, TotpSource, Userid,
};
use serde_json::json;

const TOKEN_SECRET: &str = "0b5e7a4c-dead-beef-3333-444455556666";
const TOTP: &str = "918273";
const TICKET_SIG: &str = "TicketSignatureZr2g";
const CHALLENGE_SIG: &str = "ChallengeSig77";

fn secrets() -> Vec<&'static str> {
    vec![
        PASSWORD,
        TOKEN_SECRET,
        TOTP,
        TICKET_SIG,
        CHALLENGE_SIG,
        "csrfAAAA",
        "csrfBBBB",
    ]
}

fn assert_clean(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(s), "{what} leaks {s:?}: {text}");
    }
}

fn assert_both_clean<T: std::fmt::Debug + std::fmt::Display>(what: &str, v: &T) {
    assert_clean(what, &format!("{v:?}"));
    assert_clean(what, &format!("{v}"));
}

fn token() -> ApiToken {
    format!("lab@pve!runner={TOKEN_SECRET}").parse().unwrap()
}

#[test]
fn credentials_and_builders_do_not_print_secrets() {
    let t = token();
    assert_both_clean("ApiToken", &t);
    assert_both_clean("Secret", &Secret::new(PASSWORD));
    assert_both_clean("token header", &t.header_value());
    assert_clean("TotpSource", &format!("{:?}", TotpSource::fixed(TOTP)));
    let u: Userid = "root@pam".parse().unwrap();
    assert_both_clean("Userid", &u);

    let b = PveClient::builder("pve1")
        .password("root@pam", Secret::new(PASSWORD))
        .totp(TotpSource::fixed(TOTP));
    assert_clean("password builder", &format!("{b:?}"));
    let c = b.build().unwrap();
    assert_clean("password client", &format!("{c:?}"));
    assert!(format!("{c:?}").contains("root@pam"), "useful Debug: {c:?}");

    let b = PveClient::builder("pve1").token(t);
    assert_clean("token builder", &format!("{b:?}"));
    let c = b.build().unwrap();
    assert_clean("token client", &format!("{c:?}"));
    assert!(
        format!("{c:?}").contains("lab@pve!runner"),
        "useful Debug: {c:?}"
    );

    let p = Params::new()
        .with("password", PASSWORD)
        .with("tfa-challenge", CHALLENGE_SIG);
    assert_clean("Params", &format!("{p:?}"));
}

/// One value of every error variant, built the way the crate builds them.
fn every_error_variant() -> Vec<Error> {
    let decode_source = serde_json::from_str::<u32>("\"x\"").unwrap_err();
    let mut errors = BTreeMap::new();
    errors.insert("newid".to_owned(), "VM 200 already exists".to_owned());
    vec![
        format!("lab@pve!1bad={TOKEN_SECRET}")
            .parse::<ApiToken>()
            .unwrap_err(),
        format!("lab@pve!runner={TOKEN_SECRET} trailing")
            .parse::<ApiToken>()
            .unwrap_err(),
        pve_auth::base_uri("ftp://pve1").unwrap_err(),
        Error::Config {
            message: "no credentials".into(),
        },
        Error::FingerprintMismatch {
            url: "https://pve1:8006/api2/json/version".into(),
            expected: "AB:CD".into(),
            presented: "EF:01".into(),
        },
        Error::Tls {
            url: "https://pve1:8006/api2/json/version".into(),
            message: "invalid peer certificate: UnknownIssuer".into(),
        },
        Error::Connect {
            url: "https://pve1:8006/api2/json/version".into(),
            message: "connection refused".into(),
        },
        Error::Transport {
            method: "GET".into(),
            path: "/version".into(),
            message: "connection closed before message completed".into(),
            closed: true,
        },
        Error::Timeout {
            method: "GET".into(),
            path: "/version".into(),
            after: Duration::from_secs(60),
        },
        Error::Api {
            method: "POST".into(),
            path: "/nodes/pve1/qemu/9000/clone".into(),
            status: 400,
            message: "Parameter verification failed.".into(),
            errors,
        },
        Error::TfaRequired {
            user: "root@pam".into(),
        },
        Error::Decode {
            method: "POST".into(),
            path: "/access/ticket".into(),
            source: decode_source,
            body: "<login answer redacted>".into(),
        },
    ]
}

#[test]
fn no_error_variant_prints_a_secret() {
    let all = every_error_variant();
    // Keep this list complete: one per variant (the enum is non_exhaustive for users only).
    let names: std::collections::BTreeSet<&str> = all
        .iter()
        .map(|e| match e {
            Error::InvalidInput { .. } => "InvalidInput",
            Error::Config { .. } => "Config",
            Error::FingerprintMismatch { .. } => "FingerprintMismatch",
            Error::Tls { .. } => "Tls",
            Error::Connect { .. } => "Connect",
            Error::Transport { .. } => "Transport",
            Error::Timeout { .. } => "Timeout",
            Error::Api { .. } => "Api",
            Error::TfaRequired { .. } => "TfaRequired",
            Error::Decode { .. } => "Decode",
            _ => "unknown",
        })
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(!names.contains("unknown"));
    for e in &all {
        assert_both_clean("error", e);
    }
}

/// Captures everything logged on this thread at TRACE level.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_session_leaks_nothing_into_logs_errors_or_observer_records() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start_async().await;
    let challenge = format!("PVE:!tfa!%7B%22totp%22%3Atrue%7D:{T0:08X}::{CHALLENGE_SIG}");
    let full = format!("PVE:root@pam:{T0:08X}::{TICKET_SIG}==");
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .form_urlencoded_tuple("password", PASSWORD);
            then.status(200).json_body(json!({"data": {
                "username": "root@pam", "ticket": challenge, "NeedTFA": 1
            }}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .form_urlencoded_tuple("password", format!("totp:{TOTP}"));
            then.status(200).json_body(json!({"data": {
                "username": "root@pam", "ticket": full, "CSRFPreventionToken": CSRF_A
            }}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/100/status/start");
            then.status(500)
                .json_body(json!({"data": null, "message": "VM is locked (clone)\n"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api2/json/version");
            then.status(200).body("not json");
        })
        .await;

    let log = Log::default();
    let client = PveClient::builder(&format!("http://{}", server.address()))
        .password("root@pam", Secret::new(PASSWORD))
        .totp(TotpSource::fixed(TOTP))
        .clock(TestClock::at(T0).shared())
        .observer(log.observer())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    client.login().await.unwrap();
    let e1 = client
        .post::<String>("/nodes/pve1/qemu/100/status/start", &Params::new())
        .await
        .unwrap_err();
    let e2 = client
        .get::<serde_json::Value>("/version", &Params::new())
        .await
        .unwrap_err();
    assert!(e1.is_locked());
    assert!(matches!(e2, Error::Decode { .. }));
    assert_both_clean("api error", &e1);
    assert_both_clean("decode error", &e2);
    assert_clean("client after login", &format!("{client:?}"));
    assert_clean("observer records", &format!("{:?}", log.records()));

    // A wrong password: the failed login's error names no secret either.
    let bad = PveClient::builder(&format!("http://{}", server.address()))
        .password("root@pam", Secret::new(format!("{PASSWORD}-wrong")))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let e3 = bad.login().await.unwrap_err();
    assert_both_clean("login error", &e3);

    // TLS options print no secrets (there are none), and the insecure warning is logged.
    let _ = TlsOptions::insecure().client_config().unwrap();
    drop(_guard);
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("PVE request"), "logging was captured: {logs}");
    assert!(logs.contains("DISABLED"), "insecure warning: {logs}");
    assert_clean("logs", &logs);
}
