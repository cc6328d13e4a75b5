//! Trust decisions against real TLS on 127.0.0.1: a typical self-signed server certificate
//! (`CA:TRUE`, which webpki alone refuses as `CaUsedAsEndEntity`) trusted through
//! `add_root_certificate_pem`, and SHA-256 pinning with its mismatch message.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use fosscloud_api::{Fingerprint, FossCloudClient};
use sha2::{Digest, Sha256};

/// A TLS front (self-signed CA certificate for 127.0.0.1) for the plain-HTTP simulator.
async fn front(backend: std::net::SocketAddr) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
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
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let (Ok(mut tls), Ok(mut plain)) = (
                    acceptor.accept(tcp).await,
                    tokio::net::TcpStream::connect(backend).await,
                ) {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (
        format!("https://127.0.0.1:{port}/vm-manager"),
        cert.pem(),
        cert.der().to_vec(),
    )
}

#[tokio::test]
async fn a_self_signed_ca_certificate_is_trusted_when_given() {
    let sim = common::sim().await;
    let (url, pem, _) = front(sim.local_addr()).await;
    let untrusted = FossCloudClient::builder(&url).build().unwrap();
    let e = untrusted.realms().await.unwrap_err();
    assert!(e.is_tls(), "{e}");
    let client = FossCloudClient::builder(&url)
        .add_root_certificate_pem(pem)
        .build()
        .unwrap();
    assert_eq!(client.realms().await.unwrap().len(), 2);
}

#[tokio::test]
async fn pinning_accepts_exactly_the_pinned_certificate() {
    let sim = common::sim().await;
    let (url, _, der) = front(sim.local_addr()).await;
    let fp = Fingerprint::of_der(&der);
    let hex: String = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(Fingerprint::parse(&hex).unwrap(), fp);
    let client = FossCloudClient::builder(&url)
        .pin_fingerprint(fp)
        .build()
        .unwrap();
    assert_eq!(client.realms().await.unwrap().len(), 2);

    let wrong = Fingerprint::parse(&"00".repeat(32)).unwrap();
    let client = FossCloudClient::builder(&url)
        .pin_fingerprint(wrong)
        .build()
        .unwrap();
    let e = client.realms().await.unwrap_err();
    assert!(e.is_tls(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&fp.to_string()) && text.contains("not the pinned"),
        "{text}"
    );
    assert_eq!(
        sim.request_count(),
        1,
        "the mismatching call never reached the server"
    );
}
