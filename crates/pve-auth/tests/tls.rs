//! TLS policies against a local HTTPS server with a freshly generated self-signed
//! certificate (tokio-rustls + rcgen on 127.0.0.1, port 0).

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pve_auth::{ApiToken, Error, Fingerprint, Params, PveClient, RetryPolicy, TlsOptions};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

struct HttpsServer {
    addr: SocketAddr,
    cert_pem: String,
    fingerprint: Fingerprint,
    /// Requests that made it through the handshake.
    served: Arc<AtomicUsize>,
}

async fn https_server() -> HttpsServer {
    https_server_for(&["127.0.0.1", "localhost"]).await
}

/// An HTTPS server whose self-signed certificate names `names`.
async fn https_server_for(names: &[&str]) -> HttpsServer {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let fingerprint = Fingerprint::of_der(cert_der.as_ref());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"data":{"version":"8.2.4","release":"8.2"}}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    HttpsServer {
        addr,
        cert_pem: certified.cert.pem(),
        fingerprint,
        served,
    }
}

fn client(server: &HttpsServer, tls: TlsOptions) -> PveClient {
    let token: ApiToken = "lab@pve!runner=0b5e7a4c".parse().unwrap();
    PveClient::builder(&format!("https://{}", server.addr))
        .token(token)
        .tls(tls)
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

async fn version(c: &PveClient) -> Result<Value, Error> {
    c.get("/version", &Params::new()).await
}

#[tokio::test]
async fn the_right_pin_connects() {
    let server = https_server().await;
    let pin = server.fingerprint.to_string();
    let c = client(&server, TlsOptions::fingerprint(&pin).unwrap());
    assert_eq!(version(&c).await.unwrap()["version"], "8.2.4");
    // PVE shows upper case; lower case input is the same pin.
    let c = client(
        &server,
        TlsOptions::fingerprint(&pin.to_lowercase()).unwrap(),
    );
    assert_eq!(version(&c).await.unwrap()["version"], "8.2.4");
    assert_eq!(server.served.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_wrong_pin_fails_and_names_the_presented_fingerprint() {
    let server = https_server().await;
    let wrong = Fingerprint::of_der(b"some other certificate");
    let c = client(
        &server,
        TlsOptions::fingerprint(&wrong.to_string()).unwrap(),
    );
    let err = version(&c).await.unwrap_err();
    match &err {
        Error::FingerprintMismatch {
            expected,
            presented,
            ..
        } => {
            assert_eq!(expected, &wrong.to_string());
            assert_eq!(presented, &server.fingerprint.to_string());
        }
        other => panic!("expected a fingerprint mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&server.fingerprint.to_string()), "{text}");
    assert!(err.is_tls() && !err.is_retryable());
    assert_eq!(server.served.load(Ordering::SeqCst), 0, "nothing sent");
}

#[tokio::test]
async fn default_verification_refuses_the_self_signed_certificate() {
    let server = https_server().await;
    let c = client(&server, TlsOptions::default());
    let err = version(&c).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(
        text.contains("fingerprint"),
        "the message suggests pinning: {text}"
    );
    assert_eq!(server.served.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_ca_file_with_that_certificate_connects() {
    let server = https_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pve-root-ca.pem");
    std::fs::write(&path, &server.cert_pem).unwrap();
    let c = client(&server, TlsOptions::ca_file(&path));
    assert_eq!(version(&c).await.unwrap()["version"], "8.2.4");
}

#[tokio::test]
async fn a_ca_file_does_not_vouch_for_another_name() {
    // Certificate for pve1.example, reached as 127.0.0.1: the CA is trusted, the name is not.
    let server = https_server_for(&["pve1.example"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pve-root-ca.pem");
    std::fs::write(&path, &server.cert_pem).unwrap();
    let c = client(&server, TlsOptions::ca_file(&path));
    let err = version(&c).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert_eq!(server.served.load(Ordering::SeqCst), 0);
    // Pinning accepts exactly that certificate regardless of the name, as PVE's pinning does.
    let c = client(
        &server,
        TlsOptions::fingerprint(&server.fingerprint.to_string()).unwrap(),
    );
    assert_eq!(version(&c).await.unwrap()["version"], "8.2.4");
}

#[tokio::test]
async fn insecure_is_an_explicit_opt_out_that_connects() {
    let server = https_server().await;
    let c = client(&server, TlsOptions::insecure());
    assert_eq!(version(&c).await.unwrap()["version"], "8.2.4");
}
