//! The crate's error type.

use pve_vm::VmId;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading addresses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A guest-level failure: API error, timeout, no agent configured, task failure, …
    #[error(transparent)]
    Vm(#[from] pve_vm::Error),

    /// The guest agent answered the command with an error (HTTP 200 with `result.error`).
    #[error("the guest agent of VM {vmid} rejected {command}: {class}: {desc}")]
    AgentCommand {
        /// The VM.
        vmid: VmId,
        /// The agent command, e.g. `network-get-interfaces`.
        command: &'static str,
        /// QGA error class, e.g. `Unsupported`.
        class: String,
        /// QGA error description.
        desc: String,
    },

    /// The container is not running, so it has no interfaces (`/interfaces` answered null).
    #[error("CT {vmid} is not running; start it to read its addresses")]
    NotRunning {
        /// The container.
        vmid: VmId,
    },

    /// The answer did not have the documented shape.
    #[error("unexpected answer from {what}: {why}")]
    Unexpected {
        /// The request.
        what: String,
        /// What was wrong.
        why: String,
    },
}

impl From<pve_auth::Error> for Error {
    fn from(e: pve_auth::Error) -> Self {
        Error::Vm(e.into())
    }
}

impl Error {
    /// Worth waiting for: the guest (or its agent) is still starting, or a transient
    /// network/server failure.
    pub fn is_pending(&self) -> bool {
        match self {
            Error::NotRunning { .. } => true,
            Error::Vm(e) => {
                e.is_transient()
                    || e.mentions("QEMU guest agent is not running")
                    || e.mentions("is not running")
                    // A hung agent command (`qga command '…' failed - got timeout`).
                    || (e.mentions("qga command") && e.mentions("got timeout"))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn api(message: &str) -> Error {
        pve_auth::Error::Api {
            method: "GET".into(),
            path: "/x".into(),
            status: 500,
            message: message.into(),
            errors: BTreeMap::new(),
        }
        .into()
    }

    #[test]
    fn pending_classification() {
        assert!(api("QEMU guest agent is not running").is_pending());
        assert!(api("VM 101 is not running").is_pending());
        assert!(
            api("VM 101 qga command 'guest-network-get-interfaces' failed - got timeout")
                .is_pending()
        );
        assert!(!api("No QEMU guest agent configured").is_pending());
        assert!(Error::NotRunning {
            vmid: VmId::new(101).unwrap()
        }
        .is_pending());
        assert!(!Error::AgentCommand {
            vmid: VmId::new(101).unwrap(),
            command: "network-get-interfaces",
            class: "Unsupported".into(),
            desc: "x".into()
        }
        .is_pending());
    }
}
