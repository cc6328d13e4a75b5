//! The crate's error type.

use std::time::Duration;

use pve_vm::VmId;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to a guest agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request failed below the agent: network, authentication, an HTTP error with
    /// PVE's text (`QEMU guest agent is not running`, `VM 100 is not running`, `… got
    /// timeout`), a wait that timed out, input `pve-vm` refused.
    #[error(transparent)]
    Vm(#[from] pve_vm::Error),

    /// The result of a command is gone: qemu-ga reports a finished process once and then
    /// forgets it, so when the answer that carried it is lost (or someone else polled it
    /// first) the exit code and output cannot be had any more. The command did run (or may
    /// have, when `pid` is `None`: the answer to `exec` itself was lost). Run it again if
    /// it is idempotent.
    #[error("the result of {what} in VM {vmid} is lost{}: {detail}", fmt_pid(.pid))]
    ResultLost {
        /// The VM.
        vmid: VmId,
        /// The guest's process id, when `exec` answered.
        pid: Option<i64>,
        /// The command, for the message.
        what: String,
        /// What was seen (PVE's text, the broken connection).
        detail: String,
    },

    /// The command still ran in the guest when the timeout passed; it keeps running there.
    #[error(
        "{what} in VM {vmid} (pid {pid}) did not finish within {after:?}; it may still run in \
         the guest"
    )]
    Unfinished {
        /// The VM.
        vmid: VmId,
        /// The guest's process id.
        pid: i64,
        /// The command, for the message.
        what: String,
        /// The timeout that passed.
        after: Duration,
    },

    /// The agent answered, but refused the command (HTTP 200 carrying `result.error`, e.g.
    /// `Unsupported` when the agent lacks the command or it is disabled in the guest).
    #[error("the guest agent of VM {vmid} refused {command}: {class}: {desc}")]
    AgentRefused {
        /// The VM.
        vmid: VmId,
        /// The agent command, e.g. `get-osinfo`.
        command: String,
        /// The QMP error class, e.g. `Unsupported`.
        class: String,
        /// The agent's description.
        desc: String,
    },

    /// The agent could not start the program (it runs no shell: qemu-ga answers PVE's HTTP
    /// 500 `Agent error: … Failed to execute child process "…" (No such file or
    /// directory)`). Nothing ran in the guest.
    #[error("{program}: {} in the guest of VM {vmid} ({detail})",
            if *.not_found { "command not found" } else { "cannot be executed" })]
    SpawnFailed {
        /// The VM.
        vmid: VmId,
        /// The program (argv\[0\]).
        program: String,
        /// The program does not exist (`No such file or directory`); otherwise it exists
        /// but cannot be run (`Permission denied`, not executable).
        not_found: bool,
        /// The agent's text.
        detail: String,
    },

    /// Input rejected before anything was sent.
    #[error("invalid {what}: {why}")]
    InvalidInput {
        /// What was checked, including the offending value.
        what: String,
        /// What is wrong and what is allowed.
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

fn fmt_pid(pid: &Option<i64>) -> String {
    match pid {
        Some(p) => format!(" (pid {p})"),
        None => " (its pid is unknown: the answer to exec was lost)".to_owned(),
    }
}

impl From<pve_auth::Error> for Error {
    fn from(e: pve_auth::Error) -> Self {
        Error::Vm(pve_vm::Error::Api(e))
    }
}

impl From<lab_types::Invalid> for Error {
    fn from(e: lab_types::Invalid) -> Self {
        Error::Vm(e.into())
    }
}

impl Error {
    /// The `pve-vm` error, when this is one.
    pub fn vm(&self) -> Option<&pve_vm::Error> {
        match self {
            Error::Vm(e) => Some(e),
            _ => None,
        }
    }

    /// `true` when PVE's message contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.vm().is_some_and(|e| e.mentions(needle))
    }

    /// A transient failure, with the same meaning as [`pve_vm::Error::is_transient`]:
    /// repeating an idempotent request later may succeed. A lost result, a refusal, an
    /// agent that is not running and a command that did not finish are not transient.
    pub fn is_transient(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_transient)
    }

    /// The result of a command was lost ([`Error::ResultLost`]).
    pub fn is_result_lost(&self) -> bool {
        matches!(self, Error::ResultLost { .. })
    }

    /// The agent does not answer: not configured, the VM not running, the agent not running
    /// or hung (PVE's texts, reference §4.7 and §11).
    pub fn is_agent_unavailable(&self) -> bool {
        matches!(self, Error::Vm(pve_vm::Error::AgentNotConfigured { .. }))
            || [
                "No QEMU guest agent configured",
                "is not running",
                "got timeout",
            ]
            .iter()
            .any(|t| self.mentions(t))
    }

    /// The user lacks a privilege (`VM.GuestAgent.*`, HTTP 403).
    pub fn is_permission(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_permission)
    }

    /// The credentials were refused (HTTP 401, a failed login).
    pub fn is_auth(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_auth)
    }

    /// The guest (or another addressed object) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.vm().is_some_and(pve_vm::Error::is_not_found)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn api(status: u16, message: &str) -> Error {
        Error::from(pve_auth::Error::Api {
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
    fn classification_follows_pve_vm() {
        assert!(api(596, "proxy").is_transient());
        assert!(!api(500, "QEMU guest agent is not running").is_transient());
        assert!(api(500, "QEMU guest agent is not running").is_agent_unavailable());
        assert!(
            api(500, "VM 100 qga command 'guest-exec' failed - got timeout").is_agent_unavailable()
        );
        assert!(api(
            403,
            "Permission check failed (/vms/100, VM.GuestAgent.Unrestricted)"
        )
        .is_permission());
        let vmid = VmId::new(100).unwrap();
        let lost = Error::ResultLost {
            vmid,
            pid: Some(7),
            what: "[\"true\"]".into(),
            detail: "x".into(),
        };
        assert!(lost.is_result_lost() && !lost.is_transient());
        assert!(lost.to_string().contains("(pid 7)"), "{lost}");
        let unknown = Error::ResultLost {
            vmid,
            pid: None,
            what: "[\"true\"]".into(),
            detail: "x".into(),
        };
        assert!(unknown.to_string().contains("pid is unknown"), "{unknown}");
    }
}
