//! A freshly generated self-signed certificate, like a new PVE node's `pve-ssl.pem`,
//! served with rustls (ring provider).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// The certificate and the server configuration built from it.
pub(crate) struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: String,
    pub pem: String,
}

/// SHA-256 of a DER certificate as PVE prints it: upper-case hex pairs joined by `:`.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Generate a certificate for `localhost`, `127.0.0.1`, `::1` and `extra_host`.
pub(crate) fn generate(extra_host: &str) -> Result<Tls, String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !names.iter().any(|n| n == extra_host) && !extra_host.is_empty() && extra_host != "0.0.0.0" {
        names.push(extra_host.to_owned());
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("generating the self-signed certificate failed: {e}"))?;
    let der: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .map_err(|e| format!("TLS certificate setup failed: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint: fingerprint(&der),
        pem: certified.cert.pem(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_format() {
        let fp = super::fingerprint(b"abc");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("BA:78:16:BF:"), "{fp}");
    }
}
