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

impl From<lab_types::Invalid> for Error {
    fn from(e: lab_types::Invalid) -> Self {
        Error::Vm(e.into())
    }
}

impl Error {
    /// The pve-vm error inside, if this is one.
    pub fn vm(&self) -> Option<&pve_vm::Error> {
        match self {
            Error::Vm(e) => Some(e),
            _ => None,
        }
    }

    /// A transient failure (as [`pve_vm::Error::is_transient`]): repeating the read later
    /// may succeed. [`Error::is_pending`] also counts a guest that is still starting.
    pub fn is_transient(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_transient)
    }

    /// The credentials were refused (HTTP 401).
    pub fn is_auth(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_auth)
    }

    /// The user lacks a privilege (HTTP 403, e.g. `VM.GuestAgent.Audit`).
    pub fn is_permission(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_permission)
    }

    /// The guest does not exist.
    pub fn is_not_found(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_not_found)
    }

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

    fn api_status(status: u16, message: &str) -> Error {
        pve_auth::Error::Api {
            method: "GET".into(),
            path: "/x".into(),
            status,
            message: message.into(),
            errors: BTreeMap::new(),
        }
        .into()
    }

    #[test]
    fn answers_the_same_questions_as_every_crate() {
        let cases = [
            (
                api_status(401, "authentication failure"),
                [false, true, false, false],
            ),
            (
                api_status(403, "Permission check failed (/vms/100, VM.Audit)"),
                [false, false, true, false],
            ),
            (
                api_status(
                    500,
                    "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
                ),
                [false, false, false, true],
            ),
            (api_status(596, "Broken pipe"), [true, false, false, false]),
        ];
        for (e, [transient, auth, permission, not_found]) in cases {
            assert_eq!(e.is_transient(), transient, "{e}");
            assert_eq!(e.is_auth(), auth, "{e}");
            assert_eq!(e.is_permission(), permission, "{e}");
            assert_eq!(e.is_not_found(), not_found, "{e}");
        }
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
