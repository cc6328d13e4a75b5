//! The TLS trust decision: system roots plus extra CA certificates, the exact certificates
//! given (a self-signed server certificate), a SHA-256 pin, or nothing at all.
//!
//! reqwest's own `add_root_certificate` hands the PEM to webpki as a trust anchor, and
//! webpki refuses a certificate that is both the anchor and the server's certificate when it
//! says `CA:TRUE` (`CaUsedAsEndEntity`): exactly what a typical self-signed certificate
//! (`openssl req -x509`, FOSS-Cloud's installer) looks like. So the verifier here first
//! accepts a server certificate that is byte for byte one of the certificates given (the
//! user has pinned it by handing it over), then falls back to ordinary WebPKI verification
//! against the system roots and the given certificates as CAs.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 certificate fingerprint, written as colon-separated hex pairs (`AB:CD:…`, any
/// case) or 64 hex digits; shown upper-case with colons, as `openssl x509 -fingerprint
/// -sha256` and the Proxmox VE web UI show it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses `AB:CD:…` (32 pairs) or 64 hex digits.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |_| {
            Error::invalid_input(
                "certificate fingerprint",
                text,
                "a SHA-256 fingerprint: 32 hex pairs separated by ':' (AB:CD:…) or 64 hex digits",
            )
        };
        let trimmed = text.trim();
        let hex: String = if trimmed.contains(':') {
            let parts: Vec<&str> = trimmed.split(':').collect();
            if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
                return Err(bad(()));
            }
            parts.concat()
        } else {
            trimmed.to_owned()
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad(()));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad(()))?;
        }
        Ok(Self(out))
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The server presented a certificate other than the pinned one (found again in an error's
/// chain by [`Error::is_tls`] and the `Network` message).
#[derive(Debug, Clone)]
pub(crate) struct PinMismatch {
    expected: Fingerprint,
    presented: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server's certificate has fingerprint {}, not the pinned {}",
            self.presented, self.expected
        )
    }
}

impl StdError for PinMismatch {}

/// How the server's certificate is trusted.
#[derive(Debug, Clone)]
pub(crate) enum Trust {
    /// System roots plus these certificates (DER): each accepted as the server's own
    /// certificate, or as a CA.
    Roots(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this fingerprint; name and expiry are not checked.
    Pinned(Fingerprint),
    /// Anything (no verification).
    Insecure,
}

/// Reads every certificate of a PEM bundle; an empty or unreadable bundle is an error.
pub(crate) fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let bad = || Error::InvalidInput {
        what: "CA certificate",
        value: format!("<{} bytes>", pem.len()),
        allowed: "one or more PEM-encoded X.509 certificates",
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    if certs.is_empty() {
        return Err(bad());
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `trust` (ring provider).
pub(crate) fn client_config(trust: &Trust) -> Result<ClientConfig> {
    let provider = provider();
    let settings = |e: rustls::Error| Error::InvalidInput {
        what: "TLS settings",
        value: e.to_string(),
        allowed: "settings the TLS stack accepts",
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(settings)?;
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Roots(extra) => {
            let mut roots = system_roots();
            for cert in extra {
                // A leaf certificate cannot be a trust anchor; it still counts as "exact".
                if let Err(e) = roots.add(cert.clone()) {
                    tracing::debug!(error = %e, "given certificate is not usable as a CA");
                }
            }
            let webpki = if roots.is_empty() {
                None
            } else {
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| Error::InvalidInput {
                            what: "CA certificate",
                            value: e.to_string(),
                            allowed: "certificates usable as trust anchors",
                        })?,
                )
            };
            Arc::new(Verifier {
                exact: extra.iter().map(|c| c.as_ref().to_vec()).collect(),
                pin: None,
                insecure: false,
                webpki,
                provider,
            })
        }
        Trust::Pinned(pin) => Arc::new(Verifier {
            exact: Vec::new(),
            pin: Some(*pin),
            insecure: false,
            webpki: None,
            provider,
        }),
        Trust::Insecure => Arc::new(Verifier {
            exact: Vec::new(),
            pin: None,
            insecure: true,
            webpki: None,
            provider,
        }),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The system's CA store (a machine without one is tolerated: only given certificates then
/// count).
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "skipping unreadable system CA certificates");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// Decides trust as [`Trust`] says; handshake signatures are always checked.
struct Verifier {
    exact: Vec<Vec<u8>>,
    pin: Option<Fingerprint>,
    insecure: bool,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("exact", &self.exact.len())
            .field("pin", &self.pin)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        if let Some(expected) = self.pin {
            let presented = Fingerprint::of_der(end_entity.as_ref());
            if presented == expected {
                return Ok(ServerCertVerified::assertion());
            }
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected,
                    presented,
                })),
            )));
        }
        if self.exact.iter().any(|c| c == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Visits every error of a chain, also inside `io::Error`s (whose `source()` skips the error
/// they wrap) — that is where hyper puts rustls' verdict.
pub(crate) fn walk_chain<'a>(
    err: &'a (dyn StdError + 'static),
    visit: &mut dyn FnMut(&'a (dyn StdError + 'static)),
) {
    let mut current = Some(err);
    let mut depth = 0;
    while let Some(e) = current {
        depth += 1;
        if depth > 32 {
            return;
        }
        visit(e);
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                walk_chain(inner, visit);
                return;
            }
        }
        current = e.source();
    }
}

/// The TLS failure in a chain, as words: a pin mismatch or rustls' own error.
pub(crate) fn tls_failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut found = None;
    walk_chain(err, &mut |e| {
        if found.is_some() {
            return;
        }
        if let Some(p) = e.downcast_ref::<PinMismatch>() {
            found = Some(p.to_string());
        } else if let Some(r) = e.downcast_ref::<rustls::Error>() {
            found = Some(match r {
                rustls::Error::InvalidCertificate(CertificateError::Other(o)) => o.0.to_string(),
                other => format!("TLS: {other}"),
            });
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_both_spellings_and_name_bad_input() {
        let colon = "ab:".repeat(31) + "ab";
        let a = Fingerprint::parse(&colon).unwrap();
        let b = Fingerprint::parse(&"AB".repeat(32)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "AB:".repeat(31) + "AB");
        for bad in ["", "AB:CD", &"zz".repeat(32), &"é".repeat(32)] {
            let e = Fingerprint::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("certificate fingerprint") && e.contains("32 hex pairs"),
                "{e}"
            );
        }
    }

    #[test]
    fn pem_bundles_must_hold_a_certificate() {
        let e = certificates_from_pem(b"not pem").unwrap_err().to_string();
        assert!(e.contains("PEM-encoded"), "{e}");
    }

    #[test]
    fn every_trust_mode_builds() {
        for t in [
            Trust::Roots(Vec::new()),
            Trust::Pinned(Fingerprint([7; 32])),
            Trust::Insecure,
        ] {
            client_config(&t).unwrap();
        }
    }
}
