//! The crate's error type and its classification helpers (the one place that knows PVE's
//! error texts, see reference §10/§11).

use std::collections::BTreeMap;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to a PVE API.
///
/// No variant ever holds a password, ticket, CSRF token or token secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected before anything was sent (bad host, user id, token, path, …).
    #[error("invalid {what} {input:?}: {reason}")]
    InvalidInput {
        /// What was being parsed, e.g. `"PVE host"`.
        what: &'static str,
        /// The offending input (secrets replaced by `***`).
        input: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// The client could not be configured (TLS roots, CA file, HTTP client).
    #[error("client configuration: {message}")]
    Config {
        /// What failed and how to fix it.
        message: String,
    },

    /// The server's certificate does not match the pinned fingerprint.
    #[error(
        "TLS certificate of {url} does not match the pinned fingerprint: the server presented {presented}, expected {expected}; \
         if the server's certificate was renewed on purpose, pin the new fingerprint"
    )]
    FingerprintMismatch {
        /// The URL being contacted.
        url: String,
        /// The pinned fingerprint.
        expected: String,
        /// The SHA-256 fingerprint of the certificate the server presented.
        presented: String,
    },

    /// The TLS handshake failed (untrusted certificate, wrong host name, protocol error).
    #[error(
        "TLS handshake with {url} failed: {message}; for a self-signed PVE certificate pin its \
         fingerprint (TlsOptions::fingerprint) or trust the cluster CA (TlsOptions::ca_file)"
    )]
    Tls {
        /// The URL being contacted.
        url: String,
        /// What the TLS layer reported.
        message: String,
    },

    /// No connection could be made; the request was never sent.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL being contacted.
        url: String,
        /// What the network layer reported.
        message: String,
    },

    /// The connection broke after the request may have been sent (closed, reset, …).
    #[error("{method} {path}: connection failed after sending: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// API path relative to `/api2/json`.
        path: String,
        /// What the network layer reported.
        message: String,
        /// `true` when the server closed the connection before answering (retryable).
        closed: bool,
    },

    /// No answer within the per-request timeout.
    #[error("{method} {path}: no answer within {after:?}")]
    Timeout {
        /// HTTP method.
        method: String,
        /// API path relative to `/api2/json`.
        path: String,
        /// The configured per-request timeout.
        after: Duration,
    },

    /// The server answered with a non-success HTTP status.
    #[error("{method} {path} failed: HTTP {status} {message}{}", fmt_param_errors(.errors))]
    Api {
        /// HTTP method.
        method: String,
        /// API path relative to `/api2/json`.
        path: String,
        /// HTTP status code.
        status: u16,
        /// The PVE message: reason phrase, else JSON `message`, else raw body.
        message: String,
        /// Per-parameter errors of a 400 answer (`errors` map), empty otherwise.
        errors: BTreeMap<String, String>,
    },

    /// The login needs a second factor but no TOTP source was configured.
    #[error(
        "login as {user} needs a second factor (TFA); configure a TOTP source with \
         PveClientBuilder::totp or use an API token"
    )]
    TfaRequired {
        /// The user id that tried to log in.
        user: String,
    },

    /// A success answer could not be decoded into the requested type.
    #[error("{method} {path}: cannot decode the answer: {source}; body starts with {body:?}")]
    Decode {
        /// HTTP method.
        method: String,
        /// API path relative to `/api2/json`.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
        /// The start of the body (redacted for login answers).
        body: String,
    },
}

fn fmt_param_errors(errors: &BTreeMap<String, String>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.trim_end()))
        .collect();
    format!(" ({})", parts.join("; "))
}

/// HTTP statuses after which an idempotent request may be repeated: gateway errors and the
/// synthetic 595/596 pveproxy produces when forwarding to another node or pvedaemon fails.
pub(crate) const RETRYABLE_STATUS: [u16; 5] = [502, 503, 504, 595, 596];

impl From<lab_types::Invalid> for Error {
    fn from(e: lab_types::Invalid) -> Self {
        Error::InvalidInput {
            what: e.what,
            input: e.input,
            reason: e.allowed,
        }
    }
}

impl Error {
    /// The HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's message of an [`Error::Api`] (trailing newline trimmed).
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The per-parameter `errors` map of a 400 answer, if the server sent one.
    pub fn param_errors(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Error::Api { errors, .. } if !errors.is_empty() => Some(errors),
            _ => None,
        }
    }

    /// Message and parameter-error texts of an API error, to search for PVE's phrases.
    fn api_texts(&self) -> impl Iterator<Item = &str> {
        let (message, errors) = match self {
            Error::Api {
                message, errors, ..
            } => (Some(message.as_str()), Some(errors)),
            _ => (None, None),
        };
        message.into_iter().chain(
            errors
                .into_iter()
                .flat_map(|e| e.values().map(String::as_str)),
        )
    }

    /// `true` when the server's message or one of its per-parameter errors contains
    /// `needle` (PVE's texts are the only stable signal for many conditions, §10).
    pub fn mentions(&self, needle: &str) -> bool {
        self.api_texts().any(|t| t.contains(needle))
    }

    /// The thing addressed does not exist (`… does not exist`, `unable to find configuration
    /// file`, `no such …`, or HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            || self.mentions("does not exist")
            || self.mentions("unable to find configuration file")
            || self.mentions("no such task")
    }

    /// The thing to create already exists (`… already exists`, also inside a 400 `errors` map).
    pub fn is_already_exists(&self) -> bool {
        self.mentions("already exists")
    }

    /// The guest is locked by another operation (`VM is locked (clone)`, `CT is locked (…)`).
    pub fn is_locked(&self) -> bool {
        self.mentions("is locked (")
    }

    /// Waiting for a lock timed out (`can't lock file '…' - got timeout`, `cfs-lock '…' error:
    /// got lock request timeout`). A bare `got timeout` without a lock mentioned (e.g. a hung
    /// guest agent) is not a lock timeout.
    pub fn is_lock_timeout(&self) -> bool {
        self.api_texts().any(|t| {
            t.contains("got lock request timeout")
                || (t.contains("got timeout") && t.contains("lock"))
        })
    }

    /// Authentication failed (HTTP 401, or a second factor is needed but missing).
    pub fn is_auth(&self) -> bool {
        self.status() == Some(401) || matches!(self, Error::TfaRequired { .. })
    }

    /// The user lacks a privilege (HTTP 403 `Permission check failed (…)`).
    pub fn is_permission(&self) -> bool {
        self.status() == Some(403)
    }

    /// The failure is transient: no connection, connection closed before an answer, a gateway
    /// status (502/503/504/595/596) or PVE's `got no worker upid`. Only idempotent requests
    /// (or ones provably never sent, see [`Error::was_never_sent`]) should be repeated blindly.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Transport { closed, .. } => *closed,
            Error::Api { status, .. } => {
                RETRYABLE_STATUS.contains(status) || self.mentions("got no worker upid")
            }
            _ => false,
        }
    }

    /// The failure is transient for an idempotent request: [`Error::is_retryable`], plus a
    /// per-request timeout and a connection lost after sending (the request may have
    /// acted; repeating it is safe only because it is idempotent). The one classification
    /// every crate's `is_transient` builds on.
    pub fn is_transient(&self) -> bool {
        self.is_retryable() || matches!(self, Error::Timeout { .. } | Error::Transport { .. })
    }

    /// `true` when the request certainly never reached the server (connect failure, TLS
    /// failure, invalid input), so even a non-idempotent request may be repeated.
    pub fn was_never_sent(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Tls { .. }
                | Error::FingerprintMismatch { .. }
                | Error::InvalidInput { .. }
                | Error::Config { .. }
        )
    }

    /// `true` for TLS failures, including a fingerprint mismatch.
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Tls { .. } | Error::FingerprintMismatch { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str) -> Error {
        Error::Api {
            method: "POST".into(),
            path: "/nodes/pve1/qemu/100/clone".into(),
            status,
            message: message.into(),
            errors: BTreeMap::new(),
        }
    }

    #[test]
    fn transient_is_retryable_plus_timeouts_and_answers_lost_after_sending() {
        assert!(api(503, "Service Unavailable").is_transient());
        assert!(!api(403, "Permission check failed").is_transient());
        let lost = Error::Transport {
            method: "PUT".into(),
            path: "/access/acl".into(),
            message: "connection reset".into(),
            closed: false,
        };
        assert!(lost.is_transient() && !lost.is_retryable());
        let slow = Error::Timeout {
            method: "GET".into(),
            path: "/version".into(),
            after: Duration::from_secs(1),
        };
        assert!(slow.is_transient() && !slow.is_retryable());
    }

    #[test]
    fn classifies_pve_error_texts() {
        let e = api(
            500,
            "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
        );
        assert!(e.is_not_found() && !e.is_locked() && !e.is_retryable());
        assert!(api(
            500,
            "unable to find configuration file for VM 100 on node 'pve1'"
        )
        .is_not_found());
        assert!(
            api(500, "unable to create VM 101: config file already exists").is_already_exists()
        );
        assert!(api(500, "VM is locked (clone)").is_locked());
        assert!(api(500, "CT is locked (backup)").is_locked());
        assert!(api(
            500,
            "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout"
        )
        .is_lock_timeout());
        assert!(api(
            500,
            "clone failed: cfs-lock 'storage-nfs' error: got lock request timeout"
        )
        .is_lock_timeout());
        assert!(
            !api(500, "VM 100 qga command 'guest-ping' failed - got timeout").is_lock_timeout()
        );
        assert!(api(401, "authentication failure").is_auth());
        assert!(api(403, "Permission check failed (/vms/100, VM.PowerMgmt)").is_permission());
        assert!(!api(403, "Permission check failed").is_auth());
        for s in RETRYABLE_STATUS {
            assert!(api(s, "x").is_retryable(), "{s}");
        }
        assert!(api(500, "got no worker upid - start worker failed").is_retryable());
        assert!(!api(500, "VM is locked (clone)").is_retryable());
        assert!(!api(501, "Method 'GET /foo' not implemented").is_retryable());
    }

    #[test]
    fn param_errors_are_searched_and_shown() {
        let mut errors = BTreeMap::new();
        errors.insert("vmid".to_owned(), "VM 200 already exists".to_owned());
        let e = Error::Api {
            method: "GET".into(),
            path: "/cluster/nextid".into(),
            status: 400,
            message: "Parameter verification failed.".into(),
            errors,
        };
        assert!(e.is_already_exists());
        assert_eq!(e.param_errors().unwrap()["vmid"], "VM 200 already exists");
        assert_eq!(
            e.to_string(),
            "GET /cluster/nextid failed: HTTP 400 Parameter verification failed. (vmid: VM 200 already exists)"
        );
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.message(), Some("Parameter verification failed."));
        assert!(api(500, "x").param_errors().is_none());
    }

    #[test]
    fn transport_classification() {
        let c = Error::Connect {
            url: "https://pve1:8006/api2/json/version".into(),
            message: "connection refused".into(),
        };
        assert!(c.is_retryable() && c.was_never_sent());
        let closed = Error::Transport {
            method: "GET".into(),
            path: "/version".into(),
            message: "connection closed before message completed".into(),
            closed: true,
        };
        assert!(closed.is_retryable() && !closed.was_never_sent());
        let t = Error::Timeout {
            method: "GET".into(),
            path: "/version".into(),
            after: Duration::from_secs(1),
        };
        assert!(!t.is_retryable() && !t.was_never_sent());
    }
}
