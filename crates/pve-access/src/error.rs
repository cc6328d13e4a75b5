//! The crate's error type.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong managing access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request failed at the API layer (network, authentication, HTTP status, decoding).
    #[error(transparent)]
    Api(#[from] pve_auth::Error),

    /// A guest-side call (listing guests, ids) failed.
    #[error(transparent)]
    Vm(#[from] pve_vm::Error),

    /// Input rejected before anything was sent.
    #[error("invalid {what}: {why}")]
    InvalidInput {
        /// What was checked, including the offending value.
        what: String,
        /// What is wrong and what is allowed.
        why: String,
    },

    /// A safety check refused the operation; nothing was changed.
    #[error("refused: {why}")]
    Refused {
        /// Why, and what to do instead.
        why: String,
    },

    /// Reading or writing a local file (the credential sheet) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },

    /// The credential sheet could not be encoded or decoded.
    #[error("credential sheet {path}: {message}")]
    Sheet {
        /// The file (or `-`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl From<lab_types::Invalid> for Error {
    fn from(e: lab_types::Invalid) -> Self {
        Error::Vm(e.into())
    }
}

impl Error {
    /// A transient failure (HTTP 5xx/596, a lock, a timeout, a connection lost after
    /// sending): repeating an idempotent request later may succeed. Every write of this
    /// crate is idempotent (it sets a value, or deletes what may be gone), so the caller
    /// may repeat it.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api(e) => e.is_transient(),
            Error::Vm(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The server refused for lack of a privilege (HTTP 403).
    pub fn is_permission(&self) -> bool {
        matches!(self, Error::Api(e) if e.is_permission())
            || matches!(self, Error::Vm(pve_vm::Error::Api(e)) if e.is_permission())
    }

    /// Authentication failed (HTTP 401): wrong, disabled or expired credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Api(e) if e.is_auth()) || matches!(self, Error::Vm(e) if e.is_auth())
    }

    /// The addressed user, role, token or guest does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api(e) if e.is_not_found())
            || matches!(self, Error::Vm(e) if e.is_not_found())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn api(status: u16, message: &str) -> Error {
        Error::Api(pve_auth::Error::Api {
            method: "GET".into(),
            path: "/x".into(),
            status,
            message: message.into(),
            errors: BTreeMap::new(),
        })
    }

    #[test]
    fn answers_the_same_questions_as_every_crate() {
        let cases = [
            (
                api(401, "authentication failure"),
                [false, true, false, false],
            ),
            (
                api(403, "Permission check failed (/vms/100, VM.Audit)"),
                [false, false, true, false],
            ),
            (
                api(
                    500,
                    "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
                ),
                [false, false, false, true],
            ),
            (api(596, "Broken pipe"), [true, false, false, false]),
        ];
        for (e, [transient, auth, permission, not_found]) in cases {
            assert_eq!(e.is_transient(), transient, "{e}");
            assert_eq!(e.is_auth(), auth, "{e}");
            assert_eq!(e.is_permission(), permission, "{e}");
            assert_eq!(e.is_not_found(), not_found, "{e}");
        }
    }
}
