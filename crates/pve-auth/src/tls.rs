//! TLS policy: system roots, a CA file, fingerprint pinning, or an explicit opt-out.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 certificate fingerprint, shown as PVE shows it: colon-separated upper-case hex
/// (`AB:CD:…`, 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// Accepts `AB:CD:…` in upper or lower case, and also the 64 hex digits without colons.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: &str| {
            Error::InvalidInput {
            what: "certificate fingerprint",
            input: s.to_owned(),
            reason: format!(
                "{reason}; expected the SHA-256 fingerprint PVE shows, 32 hex pairs separated by ':' (e.g. AB:CD:…)"
            ),
        }
        };
        let trimmed = s.trim();
        let hex: String = if trimmed.contains(':') {
            let parts: Vec<&str> = trimmed.split(':').collect();
            if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
                return Err(invalid("it does not have 32 two-digit groups"));
            }
            parts.concat()
        } else {
            trimmed.to_owned()
        };
        if hex.len() != 64 {
            return Err(invalid("it does not have 32 bytes"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex
                .get(2 * i..2 * i + 2)
                .ok_or_else(|| invalid("it is not hex"))?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid("it is not hex"))?;
        }
        Ok(Self(out))
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

/// How the server's certificate is checked.
///
/// The default trusts the system's CA store. A fresh PVE node has a self-signed certificate
/// from its cluster CA; pin its fingerprint (shown under *Node → System → Certificates*) or
/// trust `/etc/pve/pve-root-ca.pem` with [`TlsOptions::ca_file`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions(TlsMode);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum TlsMode {
    #[default]
    SystemRoots,
    CaFile(PathBuf),
    Pinned(Fingerprint),
    Insecure,
}

impl TlsOptions {
    /// Trust the operating system's CA certificates (the default). A machine with none is
    /// tolerated; every handshake then fails with an "unknown issuer" error.
    pub fn system_roots() -> Self {
        Self(TlsMode::SystemRoots)
    }

    /// Trust only the CA certificates in this PEM file (e.g. PVE's `pve-root-ca.pem`); host
    /// names are checked.
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        Self(TlsMode::CaFile(path.into()))
    }

    /// Accept exactly the certificate with this SHA-256 fingerprint (`AB:CD:…`, any case), and
    /// nothing else; name and expiry are not checked, as with PVE's own fingerprint pinning.
    pub fn fingerprint(pin: &str) -> Result<Self> {
        Ok(Self(TlsMode::Pinned(pin.parse()?)))
    }

    /// Accept any certificate. Only for throw-away labs; logs a warning when the client is
    /// built.
    pub fn insecure() -> Self {
        Self(TlsMode::Insecure)
    }

    /// The pinned fingerprint, if pinning.
    pub fn pinned(&self) -> Option<&Fingerprint> {
        match &self.0 {
            TlsMode::Pinned(fp) => Some(fp),
            _ => None,
        }
    }

    /// A configuration trusting nothing, for clients that only speak plain http.
    pub(crate) fn unused_config() -> Result<ClientConfig> {
        Ok(Self::builder()?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth())
    }

    fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>> {
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config {
                message: format!("TLS protocol versions: {e}"),
            })
    }

    /// Builds the rustls configuration (ring provider) for this policy.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config {
                message: format!("TLS protocol versions: {e}"),
            })?;
        let config = match &self.0 {
            TlsMode::SystemRoots => builder
                .with_root_certificates(system_roots())
                .with_no_client_auth(),
            TlsMode::CaFile(path) => builder
                .with_root_certificates(roots_from_file(path)?)
                .with_no_client_auth(),
            TlsMode::Pinned(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FixedVerifier {
                    pin: Some(*pin),
                    provider,
                }))
                .with_no_client_auth(),
            TlsMode::Insecure => {
                tracing::warn!(
                    "TLS certificate verification is DISABLED (insecure); anyone on the path can \
                     read the credentials. Pin the fingerprint instead."
                );
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(FixedVerifier {
                        pin: None,
                        provider,
                    }))
                    .with_no_client_auth()
            }
        };
        Ok(config)
    }
}

/// The system's CA store, read once per process (reading it takes a few milliseconds and
/// every client build would repeat it).
fn system_roots() -> RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(load_system_roots).clone()
}

fn load_system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "skipping unreadable system CA certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            ignored,
            "no system CA certificates found; use TlsOptions::fingerprint or TlsOptions::ca_file"
        );
    }
    roots
}

fn roots_from_file(path: &Path) -> Result<RootCertStore> {
    let err = |what: String| Error::Config {
        message: format!("CA file {}: {what}", path.display()),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(format!("cannot read it ({e})")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| err(format!("not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(err("it holds no PEM certificate".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| err(format!("unusable certificate ({e})")))?;
    }
    Ok(roots)
}

/// Reported by the pinning verifier; found again in the error chain to fill
/// [`Error::FingerprintMismatch`].
#[derive(Debug, Clone)]
pub(crate) struct PinMismatch {
    pub(crate) expected: Fingerprint,
    pub(crate) presented: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate fingerprint {} does not match the pinned {}",
            self.presented, self.expected
        )
    }
}

impl StdError for PinMismatch {}

/// Verifies handshake signatures normally but decides certificate trust by a pin (or, with
/// `pin: None`, trusts any certificate).
#[derive(Debug)]
struct FixedVerifier {
    pin: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for FixedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(expected) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented = Fingerprint::of_der(end_entity.as_ref());
        if presented == expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected,
                    presented,
                })),
            )))
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

/// Visits every error in a chain, looking inside `io::Error`s (whose `source()` skips the
/// wrapped error) and rustls' `OtherError`.
pub(crate) fn walk_chain<'a>(
    err: &'a (dyn StdError + 'static),
    visit: &mut dyn FnMut(&'a (dyn StdError + 'static)),
) {
    let mut current = Some(err);
    let mut depth = 0;
    while let Some(e) = current {
        depth += 1;
        if depth > 32 {
            break;
        }
        visit(e);
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                walk_chain(inner, visit);
            }
        }
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            e.downcast_ref::<rustls::Error>()
        {
            walk_chain(other.0.as_ref(), visit);
        }
        current = e.source();
    }
}

/// A pin mismatch somewhere in the chain.
pub(crate) fn find_pin_mismatch(err: &(dyn StdError + 'static)) -> Option<PinMismatch> {
    let mut found = None;
    walk_chain(err, &mut |e| {
        if found.is_none() {
            found = e.downcast_ref::<PinMismatch>().cloned();
        }
    });
    found
}

/// The text of a rustls error somewhere in the chain.
pub(crate) fn find_tls_error(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut found = None;
    walk_chain(err, &mut |e| {
        if found.is_none() {
            found = e.downcast_ref::<rustls::Error>().map(ToString::to_string);
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    #[test]
    fn fingerprint_round_trips_in_pve_format() {
        let fp: Fingerprint = PIN.parse().unwrap();
        assert_eq!(fp.to_string(), PIN);
        let lower: Fingerprint = PIN.to_lowercase().parse().unwrap();
        assert_eq!(lower, fp);
        let bare: Fingerprint = PIN.replace(':', "").parse().unwrap();
        assert_eq!(bare, fp);
    }

    #[test]
    fn fingerprint_errors_name_the_input() {
        for bad in [
            "",
            "AB:CD",
            &PIN.replace("AB:", "ZZ:"),
            &format!("{PIN}:00"),
            "A:BC:EF",
        ] {
            let err = bad.parse::<Fingerprint>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn fingerprint_of_der_is_sha256() {
        // SHA-256 of the empty input.
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn pin_mismatch_is_found_through_io_and_rustls_wrappers() {
        let mismatch = PinMismatch {
            expected: PIN.parse().unwrap(),
            presented: Fingerprint::of_der(b"x"),
        };
        let rustls_err = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
            Arc::new(mismatch.clone()),
        )));
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        let found = find_pin_mismatch(&io).expect("found");
        assert_eq!(found.presented, mismatch.presented);
        assert!(find_tls_error(&io).is_some());
        let plain = std::io::Error::other("nope");
        assert!(find_pin_mismatch(&plain).is_none());
        assert!(find_tls_error(&plain).is_none());
    }

    #[test]
    fn ca_file_errors_are_config_errors() {
        let err = TlsOptions::ca_file("/nonexistent/ca.pem")
            .client_config()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let dir = std::env::temp_dir().join(format!("pve-auth-empty-{}.pem", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let err = TlsOptions::ca_file(&dir).client_config().unwrap_err();
        std::fs::remove_file(&dir).ok();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn every_mode_builds() {
        for opts in [
            TlsOptions::default(),
            TlsOptions::system_roots(),
            TlsOptions::fingerprint(PIN).unwrap(),
            TlsOptions::insecure(),
        ] {
            opts.client_config().unwrap();
        }
        assert!(TlsOptions::fingerprint(PIN).unwrap().pinned().is_some());
        assert!(TlsOptions::insecure().pinned().is_none());
    }
}
