//! Exit codes, and the mapping from the libraries' error types to them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | anything else (server refused, timeout, a check or a question answered "no") |
//! | 2 | usage: bad arguments or input (files included), or a confirmation that could not be given |
//! | 3 | authentication, permission (HTTP 403) or TLS |
//! | 4 | not found (guest, template, pool, MAC mapping, a lab no guest belongs to) |
//! | 5 | a lab or batch left incomplete (some guests failed; run it again) |

use std::fmt;

/// Usage error.
pub const USAGE: u8 = 2;
/// Authentication, permission or TLS failure.
pub const AUTH: u8 = 3;
/// Something does not exist.
pub const NOT_FOUND: u8 = 4;
/// Part of a batch failed.
pub const INCOMPLETE: u8 = 5;
/// Everything else.
pub const OTHER: u8 = 1;

/// The exit codes as `--help` shows them.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  any other failure (a timeout, a check that answered no, a question answered no)
  2  usage: bad arguments or input (a lab file, roster or config that is missing or does
     not parse), or a destructive command without --yes off a terminal
  3  authentication, permission or TLS (wrong password, HTTP 403, untrusted certificate)
  4  not found (guest, template, pool, MAC mapping, a lab name no guest carries)
  5  a lab or batch left incomplete (some guests failed; run the same command again)";

/// An error that carries its exit code (for failures labctl itself decides on).
#[derive(Debug)]
pub struct Fail {
    code: u8,
    message: String,
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// A failed write to stdout: a closed pipe (`labctl vm list | head -1`) ends quietly with
/// exit 1, as a tool killed by SIGPIPE would; anything else (a full disk) is an error.
pub fn stdout(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        silent(OTHER)
    } else {
        anyhow::anyhow!("writing to stdout: {}", io_reason(&e))
    }
}

/// An I/O error's text without Rust's ` (os error N)` tail.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// A usage error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    with_code(USAGE, message)
}

/// An error with an explicit exit code.
pub fn with_code(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fail {
        code,
        message: message.into(),
    })
}

fn pve_auth_code(e: &pve_auth::Error) -> Option<u8> {
    if e.is_auth() || e.is_tls() || e.is_permission() {
        return Some(AUTH);
    }
    if e.is_not_found() {
        return Some(NOT_FOUND);
    }
    match e {
        pve_auth::Error::InvalidInput { .. } | pve_auth::Error::Config { .. } => Some(USAGE),
        _ => None,
    }
}

fn pve_vm_code(e: &pve_vm::Error) -> Option<u8> {
    match e {
        pve_vm::Error::GuestNotFound { .. } => Some(NOT_FOUND),
        pve_vm::Error::InvalidInput { .. } => Some(USAGE),
        pve_vm::Error::Api(a) => pve_auth_code(a),
        _ if e.is_not_found() => Some(NOT_FOUND),
        _ => None,
    }
}

fn fosscloud_code(e: &fosscloud_api::Error) -> Option<u8> {
    use fosscloud_api::Code;
    if e.is_auth() || e.is_tls() {
        return Some(AUTH);
    }
    match e {
        fosscloud_api::Error::InvalidInput { .. } => Some(USAGE),
        _ => match e.code() {
            Some(Code::PoolNotFound)
            | Some(Code::MappingListNoVmForMac)
            | Some(Code::MappingAssignNoVmForMac) => Some(NOT_FOUND),
            Some(Code::ListAllForbidden)
            | Some(Code::MappingListNotDynvmuser)
            | Some(Code::MappingAssignNotDynvmuser) => Some(AUTH),
            _ => None,
        },
    }
}

fn pve_access_code(e: &pve_access::Error) -> Option<u8> {
    // `Api` and `Vm` are `#[error(transparent)]`: their error is not in the source chain,
    // so they are looked into here.
    match e {
        pve_access::Error::Api(a) => pve_auth_code(a),
        pve_access::Error::Vm(v) => pve_vm_code(v),
        pve_access::Error::InvalidInput { .. } | pve_access::Error::Sheet { .. } => Some(USAGE),
        _ => None,
    }
}

/// Marks a failure that happened after the command began changing things (a `lab down`
/// that destroyed some guests): unless the failure means something more precise
/// (permission: 3), the lab is left incomplete, exit 5.
#[derive(Debug)]
pub struct Started(anyhow::Error);

impl fmt::Display for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Started {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Wraps an error of a command that had begun changing things (see [`Started`]).
pub fn started(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Started(e.into()))
}

/// A failure whose explanation is already on stdout (`vm is-template` answering no).
pub fn silent(code: u8) -> anyhow::Error {
    with_code(code, String::new())
}

/// `true` for [`silent`] failures: nothing more to print.
pub fn is_silent(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Fail>()
        .is_some_and(|f| f.message.is_empty())
}

/// The exit code for an error: the first error in its chain that has a meaning decides;
/// a failure without one after changes began ([`started`]) is [`INCOMPLETE`]. The one place
/// where errors become exit codes.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let code = meaning(e);
    if code == OTHER && e.chain().any(|c| c.downcast_ref::<Started>().is_some()) {
        return INCOMPLETE;
    }
    code
}

fn meaning(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        let code = if let Some(f) = cause.downcast_ref::<Fail>() {
            Some(f.code)
        } else if cause.downcast_ref::<lab_core::Invalid>().is_some() {
            Some(USAGE)
        } else if let Some(l) = cause.downcast_ref::<lab_core::Error>() {
            match l {
                lab_core::Error::InvalidInput { .. } => Some(USAGE),
                lab_core::Error::NotFound { .. } => Some(NOT_FOUND),
                lab_core::Error::Incomplete { .. } | lab_core::Error::Interrupted { .. } => {
                    Some(INCOMPLETE)
                }
                // The backend's own error is next in the chain.
                _ => None,
            }
        } else if let Some(f) = cause.downcast_ref::<pve_firewall::Error>() {
            match f {
                pve_firewall::Error::InvalidInput { .. } => Some(USAGE),
                pve_firewall::Error::Incomplete { .. } => Some(INCOMPLETE),
                pve_firewall::Error::Api(a) => pve_auth_code(a),
                pve_firewall::Error::Vm(v) => pve_vm_code(v),
                _ => None,
            }
        } else if let Some(n) = cause.downcast_ref::<pve_net::Error>() {
            match n {
                pve_net::Error::Vm(v) => pve_vm_code(v),
                _ => None,
            }
        } else if let Some(v) = cause.downcast_ref::<pve_vm::Error>() {
            pve_vm_code(v)
        } else if let Some(a) = cause.downcast_ref::<pve_auth::Error>() {
            pve_auth_code(a)
        } else if let Some(f) = cause.downcast_ref::<fosscloud_api::Error>() {
            fosscloud_code(f)
        } else if let Some(a) = cause.downcast_ref::<pve_access::Error>() {
            pve_access_code(a)
        } else {
            None
        };
        if let Some(c) = code {
            return c;
        }
    }
    OTHER
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_follow_the_meaning_through_wrappers() {
        let e = Err::<(), _>(lab_core::Error::NotFound {
            what: "template 9000".into(),
        })
        .context("lab up exam1")
        .unwrap_err();
        assert_eq!(exit_code(&e), NOT_FOUND);
        let e = anyhow::Error::new(lab_core::Error::Incomplete {
            operation: "up",
            lab: "exam1".into(),
            failures: Vec::new(),
        });
        assert_eq!(exit_code(&e), INCOMPLETE);
        let vm = pve_vm::Error::GuestNotFound {
            vmid: pve_vm::VmId::new(123).unwrap(),
        };
        let e = anyhow::Error::new(lab_core::Error::backend("proxmox", vm));
        assert_eq!(exit_code(&e), NOT_FOUND);
        assert_eq!(exit_code(&usage("bad")), USAGE);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), OTHER);
        let e = anyhow::Error::new(fosscloud_api::Error::Api {
            status: 400,
            code: fosscloud_api::Code::CredentialsIncorrect,
            raw_code: 401_003,
            dev_description: None,
        });
        assert_eq!(exit_code(&e), AUTH);
        let e = anyhow::Error::new(fosscloud_api::Error::Api {
            status: 400,
            code: fosscloud_api::Code::PoolNotFound,
            raw_code: 400_042,
            dev_description: None,
        });
        assert_eq!(exit_code(&e), NOT_FOUND);
    }
}
