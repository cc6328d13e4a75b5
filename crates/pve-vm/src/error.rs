//! The crate's error type.

use std::time::Duration;

use crate::ids::VmId;
use crate::upid::Upid;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while managing guests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request failed at the API layer (network, authentication, HTTP status, decoding).
    #[error(transparent)]
    Api(#[from] pve_auth::Error),

    /// A task ran and ended with an error.
    #[error("task {upid} failed: {exitstatus}{}", fmt_tail(.log_tail))]
    TaskFailed {
        /// The task.
        upid: Upid,
        /// PVE's exit status (the error text of the task).
        exitstatus: String,
        /// The last lines of the task log (may be empty if the log could not be read).
        log_tail: Vec<String>,
    },

    /// Waiting for something took longer than allowed.
    #[error("timed out after {after:?} waiting for {what}{}", fmt_last(.last_error))]
    Timeout {
        /// What was awaited, e.g. `task UPID:…` or `guest agent of VM 101`.
        what: String,
        /// The timeout that elapsed.
        after: Duration,
        /// The last transient error seen while waiting, if any.
        last_error: Option<String>,
    },

    /// Input rejected before anything was sent.
    #[error("invalid {what}: {why}")]
    InvalidInput {
        /// What was checked, including the offending value.
        what: String,
        /// What is wrong and what is allowed.
        why: String,
    },

    /// The operation was refused by a safety check of this crate (nothing was changed).
    #[error("refused: {why}")]
    Refused {
        /// Why, and what to do instead.
        why: String,
    },

    /// The guest does not exist in the cluster (or is not visible to this user).
    #[error(
        "guest {vmid} not found in /cluster/resources (does it exist, and may this user see it?)"
    )]
    GuestNotFound {
        /// The id looked up.
        vmid: VmId,
    },

    /// A QEMU guest has no `agent` option; waiting for the agent would never succeed.
    #[error("VM {vmid} has no QEMU guest agent configured; set `agent: 1` in its config (and restart it)")]
    AgentNotConfigured {
        /// The VM.
        vmid: VmId,
    },

    /// No free guest id is left where one was asked for.
    #[error("no free guest id: {why}")]
    NoFreeId {
        /// Which range was searched and what was found.
        why: String,
    },

    /// The server answered something this crate cannot interpret.
    #[error("unexpected answer from {what}: {why}")]
    Unexpected {
        /// The request.
        what: String,
        /// What was wrong with the answer.
        why: String,
    },
}

fn fmt_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(" (log tail: {})", tail.join(" | "))
    }
}

fn fmt_last(last: &Option<String>) -> String {
    match last {
        Some(e) => format!(" (last error: {e})"),
        None => String::new(),
    }
}

impl From<lab_types::Invalid> for Error {
    fn from(e: lab_types::Invalid) -> Self {
        Error::InvalidInput {
            what: format!("{} {:?}", e.what, e.input),
            why: e.allowed,
        }
    }
}

impl Error {
    /// The API error, when this is one.
    pub fn api(&self) -> Option<&pve_auth::Error> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// `true` when PVE's message (or a parameter error, or a task's exit status) contains
    /// `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        match self {
            Error::Api(e) => e.mentions(needle),
            Error::TaskFailed { exitstatus, .. } => exitstatus.contains(needle),
            _ => false,
        }
    }

    /// The addressed guest or object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::GuestNotFound { .. })
            || self.api().is_some_and(pve_auth::Error::is_not_found)
    }

    /// Applies one of `pve-auth`'s classifications (which own PVE's phrases) to an API error,
    /// or to a failed task's exit status read as the HTTP 500 message a synchronous call
    /// would have carried.
    fn classified(&self, test: fn(&pve_auth::Error) -> bool) -> bool {
        match self {
            Error::Api(e) => test(e),
            Error::TaskFailed {
                upid, exitstatus, ..
            } => test(&pve_auth::Error::Api {
                method: "TASK".to_owned(),
                path: upid.to_string(),
                status: 500,
                message: exitstatus.clone(),
                errors: Default::default(),
            }),
            _ => false,
        }
    }

    /// Something to be created exists already (also inside a failed task).
    pub fn is_already_exists(&self) -> bool {
        self.classified(pve_auth::Error::is_already_exists)
    }

    /// A clone into `newid` failed because that id is taken (`already exists`, or the id's
    /// config lock held by someone else's clone): another id may succeed.
    pub fn is_id_taken(&self, newid: VmId) -> bool {
        self.is_already_exists() || self.mentions(&format!("lock-{newid}.conf"))
    }

    /// The guest carries a config lock (`VM is locked (clone)`, `CT is locked (disk)`).
    pub fn is_locked(&self) -> bool {
        self.classified(pve_auth::Error::is_locked)
    }

    /// A file or cluster lock could not be taken in time (also inside a failed task).
    pub fn is_lock_timeout(&self) -> bool {
        self.classified(pve_auth::Error::is_lock_timeout)
    }

    /// A transient failure: repeating an idempotent request later may succeed. Includes
    /// per-request timeouts and broken connections of reads, which polling loops tolerate.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The credentials were refused (HTTP 401, a failed login), as
    /// [`pve_auth::Error::is_auth`].
    pub fn is_auth(&self) -> bool {
        self.api().is_some_and(pve_auth::Error::is_auth)
    }

    /// The user lacks a privilege (HTTP 403), as [`pve_auth::Error::is_permission`].
    pub fn is_permission(&self) -> bool {
        self.api().is_some_and(pve_auth::Error::is_permission)
    }

    /// An answer to an agent call for `vmid`: PVE's `No QEMU guest agent configured` becomes
    /// [`Error::AgentNotConfigured`] (waiting cannot help), anything else stays as it is.
    pub fn for_agent_of(self, vmid: VmId) -> Self {
        if self.mentions("No QEMU guest agent configured") {
            Error::AgentNotConfigured { vmid }
        } else {
            self
        }
    }

    /// The request certainly never reached the server.
    pub fn was_never_sent(&self) -> bool {
        self.api().is_some_and(pve_auth::Error::was_never_sent)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn api(status: u16, message: &str) -> Error {
        Error::Api(pve_auth::Error::Api {
            method: "POST".into(),
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

    #[test]
    fn task_failures_are_classified_like_api_errors() {
        let upid: Upid = "UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:9000:root@pam:"
            .parse()
            .unwrap();
        let e = Error::TaskFailed {
            upid,
            exitstatus: "clone failed: cfs-lock 'storage-nfs' error: got lock request timeout"
                .into(),
            log_tail: vec!["a".into(), "TASK ERROR: x".into()],
        };
        assert!(e.is_lock_timeout() && !e.is_already_exists() && !e.is_transient());
        let text = e.to_string();
        assert!(
            text.contains("qmclone") && text.contains("a | TASK ERROR: x"),
            "{text}"
        );
        assert!(
            api(500, "unable to create VM 101: config file already exists").is_already_exists()
        );
        assert!(api(500, "CT is locked (disk)").is_locked());
        assert!(api(595, "x").is_transient());
        assert!(!api(500, "x").is_transient());
        assert!(api(500, "Configuration file 'x' does not exist").is_not_found());
    }

    #[test]
    fn timeout_names_what_and_last_error() {
        let e = Error::Timeout {
            what: "task X".into(),
            after: Duration::from_secs(2),
            last_error: Some("HTTP 596".into()),
        };
        assert_eq!(
            e.to_string(),
            "timed out after 2s waiting for task X (last error: HTTP 596)"
        );
    }
}
