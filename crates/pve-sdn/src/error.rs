//! The crate's error type.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or changing the SDN configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value was rejected before anything was sent.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        /// Which field or argument, e.g. `"vnet id"`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// The PVE API call failed (network, authentication, HTTP status, decoding).
    #[error(transparent)]
    Api(#[from] pve_auth::Error),

    /// Waiting for the apply task failed: the task failed (its UPID, exit status and log
    /// tail are in the `pve-vm` error) or did not end in time.
    #[error("SDN apply: {0}")]
    Task(#[source] pve_vm::Error),

    /// The server answered something this crate cannot read (e.g. a subnet id that is not
    /// `<zone>-<address>-<prefix>`).
    #[error("{object}: {message}")]
    Inconsistent {
        /// What was read.
        object: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The PVE error, if this is an API failure.
    pub fn api(&self) -> Option<&pve_auth::Error> {
        match self {
            Error::Api(e) => Some(e),
            Error::Task(e) => e.api(),
            _ => None,
        }
    }

    /// The addressed zone, vnet or subnet does not exist.
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(|e| {
            e.is_not_found()
                || e.message().is_some_and(|m| {
                    m.contains("does not exist") || m.contains("no such") || m.contains("not found")
                })
        })
    }

    /// The object exists already (`… already exists`, `… already defined`).
    pub fn is_already_exists(&self) -> bool {
        self.api().is_some_and(|e| {
            e.is_already_exists()
                || e.message()
                    .is_some_and(|m| m.contains("already exists") || m.contains("already defined"))
        })
    }

    /// The SDN configuration is locked by someone else, or the lock token was refused.
    pub fn is_locked(&self) -> bool {
        self.api()
            .is_some_and(|e| e.is_locked() || e.message().is_some_and(|m| m.contains("lock")))
    }

    /// A network failure or a server fault worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api(e) => e.is_transient(),
            Error::Task(e) => e.is_transient(),
            _ => false,
        }
    }
}
