//! The one error type of `lab-core`: it speaks of meaning, every backend maps into it.

use std::time::Duration;

use crate::types::VmId;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a lab user can act on. Backends map their own errors into
/// these variants (see `lab-proxmox`), keeping the original as `source` where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected before anything was sent.
    #[error("invalid {what} {input:?}: {allowed}")]
    InvalidInput {
        /// Which input (`count`, `hostname pattern`, …).
        what: &'static str,
        /// The offending value.
        input: String,
        /// What is wrong and what is allowed.
        allowed: String,
    },

    /// A guest, template, pool or node does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `template 9000`.
        what: String,
    },

    /// Something with that id or name exists already and is not the lab's.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What collides, e.g. `VM 5001`.
        what: String,
    },

    /// A lock or a busy server refused the operation; retrying later may succeed.
    #[error("{what} is busy: {message}")]
    Busy {
        /// What was busy.
        what: String,
        /// The backend's explanation.
        message: String,
    },

    /// The backend cannot do this at all.
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// The operation, e.g. `isolate`.
        operation: &'static str,
        /// The backend, e.g. `fosscloud`.
        backend: &'static str,
    },

    /// A wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },

    /// A destructive operation was refused because the guest is not provably the lab's.
    #[error("refusing to touch VM {vmid}: {reason}")]
    NotOwned {
        /// The guest.
        vmid: VmId,
        /// Why it is not the lab's (no tag, other pool, template, …).
        reason: String,
    },

    /// Some guests failed; the others were processed. Running the command again resumes.
    #[error("{operation} of lab {lab} incomplete: {}", summarize(failures))]
    Incomplete {
        /// `up` or `down`.
        operation: &'static str,
        /// The lab.
        lab: String,
        /// One entry per failed guest or step.
        failures: Vec<Failure>,
    },

    /// The run was interrupted (Ctrl-C, SIGTERM): in-flight steps settled, nothing new
    /// was started. Running the same command again resumes from what the cluster shows.
    #[error("{operation} of lab {lab} interrupted: {} of {total} finished; run it again to resume", finished.len())]
    Interrupted {
        /// `up` or `down`.
        operation: &'static str,
        /// The lab.
        lab: String,
        /// Subjects that were finished.
        finished: Vec<String>,
        /// Subjects left where they stood, and where that is (`cloned, not started`).
        unfinished: Vec<Failure>,
        /// Subjects in all.
        total: usize,
    },

    /// Any other failure of the backend.
    #[error("{backend}: {source}")]
    Backend {
        /// The backend, e.g. `proxmox`.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One failed step of [`Error::Incomplete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The student host name, or the lab-wide step (`fence`, `pool`).
    pub subject: String,
    /// What went wrong (the error's message).
    pub message: String,
}

fn summarize(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.subject, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<lab_types::Invalid> for Error {
    fn from(e: lab_types::Invalid) -> Self {
        Error::InvalidInput {
            what: e.what,
            input: e.input,
            allowed: e.allowed,
        }
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(
        what: &'static str,
        input: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            what,
            input: input.into(),
            allowed: allowed.into(),
        }
    }

    /// Wraps a backend error.
    pub fn backend(
        backend: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            backend,
            source: Box::new(source),
        }
    }

    /// `true` for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// `true` for [`Error::Busy`] and [`Error::Timeout`]: trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Busy { .. } | Error::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_lists_every_failure() {
        let e = Error::Incomplete {
            operation: "up",
            lab: "exam1".into(),
            failures: vec![
                Failure {
                    subject: "exam-01".into(),
                    message: "clone failed".into(),
                },
                Failure {
                    subject: "fence".into(),
                    message: "denied".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "up of lab exam1 incomplete: exam-01: clone failed; fence: denied"
        );
    }

    #[test]
    fn invalid_input_names_input_and_rule() {
        let e = Error::invalid("count", "0", "between 1 and 500");
        assert_eq!(e.to_string(), "invalid count \"0\": between 1 and 500");
        assert!(!e.is_not_found());
    }
}
