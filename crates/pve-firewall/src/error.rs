//! The crate's error type.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or changing the PVE firewall.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value was rejected before anything was sent.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        /// Which field or argument, e.g. `"dport"` or `"group name"`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// The PVE API call failed (network, authentication, HTTP status, decoding).
    #[error(transparent)]
    Api(#[from] pve_auth::Error),

    /// Guest lookup or guest configuration failed (see `pve-vm`).
    #[error(transparent)]
    Vm(#[from] pve_vm::Error),

    /// The server holds something this crate cannot safely interpret, e.g. a labctl marker
    /// rule whose recorded prior values are unreadable. Nothing further was changed on that
    /// object; fix or remove it by hand.
    #[error("{object}: {message}")]
    Inconsistent {
        /// What was being read, e.g. `"guest 105 rule 0"`.
        object: String,
        /// What is wrong and what to do.
        message: String,
    },

    /// Some guests could not be processed; the others were. Re-running the same operation
    /// completes it (every step is idempotent).
    #[error("{operation} of lab {lab} is incomplete: {}", fmt_failures(.failures))]
    Incomplete {
        /// `"isolate"` or `"unisolate"`.
        operation: &'static str,
        /// The lab name.
        lab: String,
        /// What was changed before giving up.
        report: Box<crate::isolation::Report>,
        /// Each guest (or `None` for cluster-level steps) that failed, with its error.
        failures: Vec<(Option<u32>, Error)>,
    },
}

fn fmt_failures(failures: &[(Option<u32>, Error)]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|(vmid, e)| match vmid {
            Some(id) => format!("guest {id}: {e}"),
            None => format!("cluster: {e}"),
        })
        .collect();
    format!(
        "{} failure(s): {}; run it again to complete",
        failures.len(),
        parts.join("; ")
    )
}

impl From<lab_types::Invalid> for Error {
    fn from(e: lab_types::Invalid) -> Self {
        Error::InvalidInput {
            field: e.what,
            value: e.input,
            reason: e.allowed,
        }
    }
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
            Error::Vm(e) => e.api(),
            _ => None,
        }
    }

    /// A digest mismatch: someone else changed the list or options concurrently
    /// (`detected modified configuration - file changed by other user? Try again.`).
    pub fn is_digest_mismatch(&self) -> bool {
        self.api().and_then(|e| e.message()).is_some_and(|m| {
            m.contains("detected modified configuration") || m.contains("checksum mismatch")
        })
    }

    /// The addressed object does not exist (`no such …`, `… does not exist`, `no rule at
    /// position …`).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Api(e) => {
                e.is_not_found()
                    || e.message()
                        .is_some_and(|m| m.contains("no such") || m.contains("no rule at position"))
            }
            Error::Vm(e) => e.is_not_found(),
            _ => false,
        }
    }

    /// The object to create already exists.
    pub fn is_already_exists(&self) -> bool {
        self.api().is_some_and(pve_auth::Error::is_already_exists)
    }

    /// A transient failure: trying the same idempotent step again later may succeed. The
    /// same classification as `pve_vm::Error::is_transient` (from `pve-auth`'s helpers): no
    /// connection, a connection closed or timed out, a gateway status (502/503/504/595/596),
    /// PVE's `got no worker upid`. An [`Error::Incomplete`] is transient when every one of
    /// its failures is (running the operation again then completes it).
    ///
    /// [`Isolation`](crate::isolation::Isolation) already retries these within its
    /// [`retry`](crate::isolation::Isolation::retry) budget; an error that reaches the
    /// caller has used it up.
    pub fn is_transient(&self) -> bool {
        match self {
            // The steps repeated here re-read before they write.
            Error::Api(e) => e.is_transient(),
            Error::Vm(e) => e.is_transient(),
            Error::Incomplete { failures, .. } => {
                !failures.is_empty() && failures.iter().all(|(_, e)| e.is_transient())
            }
            _ => false,
        }
    }

    /// A guest carries a config lock (`VM is locked (clone)`), also inside a failed task.
    pub fn is_locked(&self) -> bool {
        match self {
            Error::Api(e) => e.is_locked(),
            Error::Vm(e) => e.is_locked(),
            _ => false,
        }
    }

    /// Waiting for a file or cluster lock timed out (`can't lock file '…' - got timeout`):
    /// nothing was changed, so the step may be repeated.
    pub fn is_lock_timeout(&self) -> bool {
        match self {
            Error::Api(e) => e.is_lock_timeout(),
            Error::Vm(e) => e.is_lock_timeout(),
            _ => false,
        }
    }

    /// Authentication failed (HTTP 401, or a missing second factor).
    pub fn is_auth(&self) -> bool {
        self.api().is_some_and(pve_auth::Error::is_auth)
    }

    /// The user lacks a privilege (HTTP 403).
    pub fn is_permission(&self) -> bool {
        self.api().is_some_and(pve_auth::Error::is_permission)
    }

    /// The request certainly never reached the server (see
    /// `pve_auth::Error::was_never_sent`): even a non-idempotent request may be repeated.
    pub fn was_never_sent(&self) -> bool {
        match self {
            Error::InvalidInput { .. } => true,
            _ => self.api().is_some_and(pve_auth::Error::was_never_sent),
        }
    }

    /// Worth repeating a step that re-reads what it changes: a transient failure, a lock
    /// timeout, or a concurrent change (digest mismatch).
    pub(crate) fn is_worth_repeating(&self) -> bool {
        self.is_transient() || self.is_lock_timeout() || self.is_digest_mismatch()
    }
}
