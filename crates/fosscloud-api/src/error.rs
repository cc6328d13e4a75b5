//! The crate's error type.

use crate::code::Code;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a FOSS-Cloud server.
///
/// No variant carries a password or a SPICE password: credentials are never part of a URL
/// here, and bodies kept for diagnosis have every `password` value replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given to this crate is not acceptable.
    #[error("invalid {what} {value:?}: expected {allowed}")]
    InvalidInput {
        /// What the value is (e.g. "MAC address").
        what: &'static str,
        /// The value as given.
        value: String,
        /// What is allowed instead.
        allowed: &'static str,
    },

    /// The request could not be sent or its answer not read (DNS, TCP, TLS, timeout).
    #[error(
        "cannot reach the FOSS-Cloud server at {url}: {source}{}",
        tls_detail(source)
    )]
    Network {
        /// The URL requested (never contains credentials).
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The server answered with an API error envelope.
    #[error("FOSS-Cloud API error (HTTP {status}, code {code}){}", describe(dev_description.as_deref()))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The code as a typed value.
        code: Code,
        /// The code number exactly as sent (differs from `code.number()` for documentation
        /// aliases).
        raw_code: u32,
        /// The server's `devDescription`, if any.
        dev_description: Option<String>,
    },

    /// The server failed internally: HTTP 400 with code 500000. FOSS-Cloud's exception handler
    /// answers every exception (an LDAP failure, say) this way; the request itself may be
    /// fine, so retrying later or reading the server's log is the next step.
    #[error("the FOSS-Cloud server failed internally (HTTP {status}, code 500000){}; this is a server-side problem, check the server's log", describe(dev_description.as_deref()))]
    ServerInternal {
        /// The HTTP status (400 on a real server).
        status: u16,
        /// The exception message from `devDescription`, if any.
        dev_description: Option<String>,
    },

    /// The answer is not a FOSS-Cloud API answer (not JSON). A real server answers paths that
    /// match no API route with its HTML error page (HTTP 404), so a wrong base URL or an API
    /// that is not deployed ends up here.
    #[error("HTTP {status} from {url} is not a FOSS-Cloud API answer (content type {}); check that the base URL points at the vm-manager (e.g. https://host/vm-manager) and that the server has the REST API (vm-manager 1.3.2 or later)", content_type.as_deref().unwrap_or("none"))]
    NotApi {
        /// The HTTP status.
        status: u16,
        /// The URL requested (never contains credentials).
        url: String,
        /// The `Content-Type` of the answer, if any.
        content_type: Option<String>,
        /// The start of the body (up to 256 characters), for diagnosis.
        body_start: String,
    },

    /// The answer is JSON but not of the expected shape.
    #[error("unexpected FOSS-Cloud answer from {url} (HTTP {status}): {message}")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// The URL requested.
        url: String,
        /// What did not fit.
        message: String,
        /// The body with every `password` value replaced by `***`.
        redacted_body: String,
    },
}

fn tls_detail(source: &reqwest::Error) -> String {
    crate::tls::tls_failure(source).map_or_else(String::new, |t| format!(" ({t})"))
}

fn describe(dev_description: Option<&str>) -> String {
    dev_description.map_or_else(String::new, |d| format!(": {d}"))
}

impl Error {
    pub(crate) fn invalid_input(what: &'static str, value: &str, allowed: &'static str) -> Self {
        Error::InvalidInput {
            what,
            value: value.to_owned(),
            allowed,
        }
    }

    /// The API code, for [`Error::Api`] and [`Error::ServerInternal`].
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Api { code, .. } => Some(*code),
            Error::ServerInternal { .. } => Some(Code::InternalError),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. }
            | Error::ServerInternal { status, .. }
            | Error::NotApi { status, .. }
            | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `devDescription`, when it sent one.
    pub fn dev_description(&self) -> Option<&str> {
        match self {
            Error::Api {
                dev_description, ..
            }
            | Error::ServerInternal {
                dev_description, ..
            } => dev_description.as_deref(),
            _ => None,
        }
    }

    /// Whether the credentials or the realm were refused (400002, 400005, 401003, 401004).
    pub fn is_auth(&self) -> bool {
        matches!(
            self.code(),
            Some(
                Code::HttpAuthMissing
                    | Code::CredentialsEmpty
                    | Code::CredentialsIncorrect
                    | Code::RealmIncorrect
            )
        )
    }

    /// Whether the TLS handshake failed: the certificate is not trusted, does not match the
    /// pin, or TLS itself failed.
    pub fn is_tls(&self) -> bool {
        match self {
            Error::Network { source, .. } => crate::tls::tls_failure(source).is_some(),
            _ => false,
        }
    }

    /// Whether the user lacks a right (HTTP 403: 403033 listing `all`, 403056 a MAC in the
    /// URL while `macByParameter` is off).
    pub fn is_permission(&self) -> bool {
        self.status() == Some(403)
    }

    /// Whether the addressed object does not exist: the pool (400042) or a VM mapped to the
    /// MAC address (400054, 400064).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code(),
            Some(Code::PoolNotFound | Code::MappingListNoVmForMac | Code::MappingAssignNoVmForMac)
        )
    }

    /// Whether repeating the request later may succeed: the server could not be reached or
    /// the connection broke (not a TLS refusal), or a gateway answered 502/503/504. The
    /// reads of this crate are idempotent; `assign` is not (see its docs).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network { .. } => !self.is_tls(),
            Error::NotApi { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Whether the pool does not exist (400042) or has no free VM (500043).
    pub fn is_pool_unavailable(&self) -> bool {
        matches!(self.code(), Some(Code::PoolNotFound | Code::NoFreeVm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_status_code_and_description() {
        let e = Error::Api {
            status: 500,
            code: Code::NoFreeVm,
            raw_code: 500_043,
            dev_description: Some("No free vm available".into()),
        };
        let text = e.to_string();
        assert!(text.contains("HTTP 500"), "{text}");
        assert!(text.contains("500043"), "{text}");
        assert!(text.contains("No free vm available"), "{text}");
        assert!(e.is_pool_unavailable());
        assert!(!e.is_auth());

        let e = Error::ServerInternal {
            status: 400,
            dev_description: Some("ldap_bind failt".into()),
        };
        assert_eq!(e.code(), Some(Code::InternalError));
        assert!(e.to_string().contains("server-side problem"));
        assert_eq!(e.dev_description(), Some("ldap_bind failt"));
    }

    #[test]
    fn answers_the_same_questions_as_every_crate() {
        let api = |status, code, raw_code| Error::Api {
            status,
            code,
            raw_code,
            dev_description: None,
        };
        let cases = [
            (
                api(401, Code::CredentialsIncorrect, 401_003),
                [false, true, false, false],
            ),
            (
                api(403, Code::ListAllForbidden, 403_033),
                [false, false, true, false],
            ),
            (
                api(400, Code::PoolNotFound, 400_042),
                [false, false, false, true],
            ),
            (
                Error::NotApi {
                    status: 503,
                    url: "https://fc/api".into(),
                    content_type: None,
                    body_start: String::new(),
                },
                [true, false, false, false],
            ),
        ];
        for (e, [transient, auth, permission, not_found]) in cases {
            assert_eq!(e.is_transient(), transient, "{e}");
            assert_eq!(e.is_auth(), auth, "{e}");
            assert_eq!(e.is_permission(), permission, "{e}");
            assert_eq!(e.is_not_found(), not_found, "{e}");
        }
    }
}
