//! End-to-end: `labctl fosscloud …` against an embedded FOSS-Cloud simulator on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use fosscloud_sim::Simulator;
use tokio::process::Command;

fn labctl(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FC_") || k.starts_with("PVE_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("FC_URL", url).kill_on_drop(true);
    c
}

async fn run(mut c: Command, args: &[&str]) -> (bool, String, String) {
    let out = c.args(args).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn realms_list_and_assign() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let url = sim.base_url().to_owned();

    let (ok, out, err) = run(labctl(&url), &["fosscloud", "--allow-http", "realms"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("4000013") && out.contains("yes"), "{out}");
    assert!(out.contains("School Active Directory"), "{out}");

    let mut c = labctl(&url);
    c.env("FC_USER", "alice").env("FC_PASSWORD", "alice-pw");
    let (ok, out, err) = run(c, &["fosscloud", "--allow-http", "list"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("Windows Exam") && out.contains("assignable"),
        "{out}"
    );
    let pool = out
        .lines()
        .find(|l| l.starts_with("Windows Exam") && l.contains("assignable"))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.len() == 36 && w.contains('-'))
        })
        .unwrap()
        .to_owned();

    assert!(sim.assignments().iter().all(|a| a.pool != pool));
    let mut c = labctl(&url);
    c.env("FC_USER", "alice").env("FC_PASSWORD", "alice-pw");
    let (ok, out, err) = run(c, &["fosscloud", "--allow-http", "assign", &pool]).await;
    assert!(ok, "{err}");
    assert!(out.contains("spice://192.0.2."), "{out}");
    // The SPICE password stays hidden unless asked for.
    assert!(out.contains("spice password: ***"), "{out}");
    assert_eq!(
        sim.assignments().iter().filter(|a| a.pool == pool).count(),
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn plain_http_and_missing_credentials_are_refused_with_a_hint() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let url = sim.base_url().to_owned();
    let (ok, _, err) = run(labctl(&url), &["fosscloud", "realms"]).await;
    assert!(!ok);
    assert!(err.to_lowercase().contains("http"), "{err}");
    let (ok, _, err) = run(labctl(&url), &["fosscloud", "--allow-http", "list"]).await;
    assert!(!ok);
    assert!(err.contains("FC_USER"), "{err}");
    let mut c = labctl(&url);
    c.env("FC_USER", "alice").env("FC_PASSWORD", "alice-pw");
    let (ok, _, err) = run(
        c,
        &["fosscloud", "--allow-http", "list", "--kind", "everything"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("owner, dynamic, persistent or all"), "{err}");
    assert_eq!(sim.request_count(), 0, "nothing reached the server");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_missing_password_names_the_variable_and_never_prompts_without_a_terminal() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let mut c = labctl(sim.base_url());
    c.env("FC_USER", "alice").stdin(std::process::Stdio::null());
    let (ok, _, err) = run(c, &["fosscloud", "--allow-http", "list"]).await;
    assert!(!ok, "no password must fail");
    assert!(
        err.contains("no password for alice: set FC_PASSWORD"),
        "{err}"
    );
    assert_eq!(sim.request_count(), 0, "nothing sent without a password");
}

// ---------------------------------------------------------------------------------------
// Every subcommand over HTTPS, pinning, a self-signed CA certificate, errors with codes.

use std::sync::Arc;

use fosscloud_sim::Config;
use serde_json::Value;

const WINDOWS_EXAM: &str = "57e3bd10-1934-4b4f-3d4c-6e31473bddab";
const CLASSROOM: &str = "6a1c2e3f-0000-4000-8000-00000000a004";
const CLASS_01_MAC: &str = "52:54:00:00:00:01";

async fn full(c: Command, args: &[&str]) -> (Option<i32>, String, String) {
    let out = { c }.args(args).output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn as_user(url: &str, user: &str) -> Command {
    let mut c = labctl(url);
    c.env("FC_USER", user)
        .env("FC_PASSWORD", format!("{user}-pw"));
    c
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The fingerprint the server presents, as a user learns it: from the mismatch message of a
/// wrong pin (exit 3, nothing on stdout).
async fn learn_fingerprint(url: &str) -> String {
    let wrong = "AB:".repeat(31) + "AB";
    let (code, out, err) = full(
        labctl(url),
        &["fosscloud", "--fingerprint", &wrong, "realms"],
    )
    .await;
    assert_eq!(code, Some(3), "{err}");
    assert!(out.is_empty(), "nothing on stdout before success: {out}");
    assert!(
        err.contains("--fingerprint") && err.contains("FC_FINGERPRINT"),
        "hint: {err}"
    );
    let start = err.find("has fingerprint ").unwrap() + "has fingerprint ".len();
    err[start..start + 95].to_owned()
}

#[tokio::test]
async fn every_call_over_https_with_a_pinned_fingerprint() {
    let sim = Simulator::builder()
        .config(Config {
            mac_by_parameter: true,
            ..Config::default()
        })
        .start()
        .await
        .unwrap();
    let url = sim.base_url().to_owned();
    // Untrusted: exit 3, and no table header before the error.
    let (code, out, err) = full(labctl(&url), &["fosscloud", "realms"]).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(out.is_empty(), "{out}");
    let fp = learn_fingerprint(&url).await;
    let pin = |mut c: Command| {
        c.env("FC_FINGERPRINT", &fp);
        c
    };

    let (code, out, err) = full(pin(labctl(&url)), &["fosscloud", "realms", "-o", "json"]).await;
    assert_eq!(code, Some(0), "{err}");
    let realms = json(&out);
    assert_eq!(realms[0]["uid"], "4000013");
    assert_eq!(realms[0]["default"], true);
    assert!(
        realms[0].get("displayName").is_some(),
        "API field names: {out}"
    );

    let (code, out, err) = full(pin(as_user(&url, "alice")), &["fosscloud", "login"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("login ok: alice"), "{out}");

    for kind in ["owner", "dynamic", "persistent"] {
        let (code, out, err) = full(
            pin(as_user(&url, "alice")),
            &["fosscloud", "list", kind, "-o", "json"],
        )
        .await;
        assert_eq!(code, Some(0), "{kind}: {err}");
        for vm in json(&out).as_array().unwrap() {
            for key in [
                "uuid", "name", "ip", "node", "port", "password", "status", "type", "subtype",
                "os", "pool",
            ] {
                assert!(vm.get(key).is_some(), "{kind}: {key} missing in {vm}");
            }
            assert!(vm["password"].is_null() || vm["password"] == "***", "{vm}");
        }
    }
    let (_, csv, _) = full(
        pin(as_user(&url, "alice")),
        &["fosscloud", "list", "-o", "csv"],
    )
    .await;
    assert!(csv.starts_with("NAME,TYPE,STATUS,POOL,SPICE\n"), "{csv}");

    // assign: the SPICE password stays hidden unless asked for, even with -vv.
    let (code, out, err) = full(
        pin(as_user(&url, "alice")),
        &["-vv", "fosscloud", "assign", WINDOWS_EXAM, "-o", "json"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let vm = json(&out);
    assert_eq!(vm["password"], "***");
    let directory = sim.directory();
    let secret = &directory
        .vms
        .iter()
        .find(|v| Some(v.uuid.as_str()) == vm["uuid"].as_str())
        .unwrap()
        .spice_password;
    assert!(
        !out.contains(secret.as_str()) && !err.contains(secret.as_str()),
        "SPICE password leaked"
    );
    assert!(
        !err.contains("alice-pw") && !out.contains("alice-pw"),
        "FC password leaked"
    );
    assert!(
        err.contains("FOSS-Cloud API call") || err.lines().count() > 3,
        "-vv logs: {err}"
    );
    let (code, out, err) = full(
        pin(as_user(&url, "alice")),
        &[
            "fosscloud",
            "assign",
            "6a1c2e3f-0000-4000-8000-00000000a002",
            "--show-password",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let vm = json(&out);
    let shown = &sim
        .directory()
        .vms
        .iter()
        .find(|v| Some(v.uuid.as_str()) == vm["uuid"].as_str())
        .unwrap()
        .spice_password
        .clone();
    assert_eq!(vm["password"].as_str(), Some(shown.as_str()));

    // FC4School mapping calls as the dynvmuser, MAC in the URL.
    let (code, out, err) = full(
        pin(as_user(&url, "dynvmuser")),
        &["fosscloud", "mapping", "list", CLASS_01_MAC, "-o", "json"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    // The mapped VM's pool, as a stub the dynvmuser can assign.
    assert_eq!(json(&out)["pool"], CLASSROOM, "{out}");
    let (code, out, err) = full(
        pin(as_user(&url, "dynvmuser")),
        &["fosscloud", "mapping", "assign", CLASSROOM, CLASS_01_MAC],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("spice://") && out.contains("spice password: ***"),
        "{out}"
    );
    assert!(
        sim.assignments()
            .iter()
            .any(|a| a.vm == "8b000000-0000-4000-8000-00000000c001"),
        "class-01 assigned: {:?}",
        sim.assignments()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_name_the_code_and_exit_with_its_meaning() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let url = sim.base_url().to_owned();
    let h = "--allow-http";

    let mut c = labctl(&url);
    c.env("FC_USER", "alice").env("FC_PASSWORD", "wrong");
    let (code, out, err) = full(c, &["fosscloud", h, "login"]).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("401003") && err.contains("wrong user name or password"),
        "{err}"
    );

    let (code, out, err) = full(
        as_user(&url, "alice"),
        &[
            "fosscloud",
            h,
            "assign",
            "00000000-0000-4000-8000-000000000000",
        ],
    )
    .await;
    assert_eq!(code, Some(4), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("400042") && err.contains("no VM pool has this id"),
        "{err}"
    );

    // macByParameter is off by default.
    let (code, out, err) = full(
        as_user(&url, "dynvmuser"),
        &["fosscloud", h, "mapping", "list", CLASS_01_MAC],
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("403056") && err.contains("macByParameter"),
        "{err}"
    );

    // A bad MAC is refused before anything is sent.
    let before = sim.request_count();
    for args in [
        &["fosscloud", h, "mapping", "list", "52:54:00:12:34"][..],
        &[
            "fosscloud",
            h,
            "mapping",
            "assign",
            CLASSROOM,
            "zz:54:00:12:34:56",
        ],
    ] {
        let (code, _, err) = full(as_user(&url, "dynvmuser"), args).await;
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("MAC address") && err.contains("52:54:00:12:34:56"),
            "{err}"
        );
    }
    assert_eq!(sim.request_count(), before, "nothing sent for a bad MAC");
    sim.shutdown().await;
}

/// A TLS front for a plain-HTTP simulator whose certificate is a typical self-signed CA
/// certificate (`CA:TRUE`, the server's own name), as `openssl req -x509` makes one.
async fn self_signed_front(
    backend: std::net::SocketAddr,
) -> (String, String, tokio::task::JoinHandle<()>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fc.school.example");
    let cert = params.self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (
        format!("https://127.0.0.1:{port}/vm-manager"),
        cert.pem(),
        task,
    )
}

#[tokio::test]
async fn a_self_signed_ca_certificate_is_trusted_with_ca_file_or_a_pin() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let (url, pem, task) = self_signed_front(sim.local_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("server.pem");
    std::fs::write(&ca, &pem).unwrap();

    let (code, _, err) = full(labctl(&url), &["fosscloud", "realms"]).await;
    assert_eq!(code, Some(3), "untrusted without --ca-file: {err}");

    let mut c = as_user(&url, "alice");
    c.env("FC_CA_FILE", &ca);
    let (code, out, err) = full(c, &["fosscloud", "list"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Windows Exam"), "{out}");
    assert!(!err.contains("CaUsedAsEndEntity"), "{err}");

    let fp = learn_fingerprint(&url).await;
    let (code, out, err) = full(labctl(&url), &["fosscloud", "--fingerprint", &fp, "realms"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("4000013"), "{out}");
    let (code, _, err) = full(
        labctl(&url),
        &[
            "fosscloud",
            "--fingerprint",
            &fp,
            "--ca-file",
            ca.to_str().unwrap(),
            "realms",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "one trust choice: {err}");
    task.abort();
    sim.shutdown().await;
}
