//! Tickets and the login exchange as plain data, without IO (testable without a server).
//!
//! A PVE ticket looks like `PVE:<userid>:<8 hex digits unix time>::<signature>`; a TFA
//! challenge ticket like `PVE:!tfa!<challenge>:<time>::<signature>`. It is valid for 2 h; this
//! client renews it once it is 1.5 h old, like Proxmox's own `proxmox-login`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::Secret;

/// How long PVE accepts a ticket (`ticket_lifetime = 7200`).
pub const TICKET_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// Age from which a ticket is renewed (as `proxmox-login` does).
pub const RENEW_AFTER: Duration = Duration::from_secs(3 * 1800);

/// A source of "now", injectable so ticket ageing is testable.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<F: Fn() -> SystemTime + Send + Sync> Clock for F {
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The shared clock type the client holds.
pub type SharedClock = Arc<dyn Clock>;

/// The issue time (unix seconds) written into a ticket.
///
/// ```
/// let t = pve_auth::ticket::ticket_timestamp("PVE:root@pam:64E10CBA::c2lnbmF0dXJl").unwrap();
/// assert_eq!(t, 0x64E10CBA);
/// ```
pub fn ticket_timestamp(ticket: &str) -> Result<u64> {
    let bad = |reason: &str| Error::InvalidInput {
        what: "PVE ticket",
        input: "***".to_owned(),
        reason: format!("{reason}; expected PVE:<userid>:<hex time>::<signature>"),
    };
    let rest = ticket
        .strip_prefix("PVE:")
        .ok_or_else(|| bad("it does not start with 'PVE:'"))?;
    let (plain, _signature) = rest
        .rsplit_once("::")
        .ok_or_else(|| bad("the '::' before the signature is missing"))?;
    let (_data, hex) = plain
        .rsplit_once(':')
        .ok_or_else(|| bad("the time field is missing"))?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the time field is not 8 hex digits"));
    }
    u64::from_str_radix(hex, 16).map_err(|_| bad("the time field is not hex"))
}

/// Age of a ticket issued at `issued` (unix seconds) at time `now`. A ticket from the future
/// (server clock ahead of ours) has age zero.
pub fn ticket_age(issued: u64, now: SystemTime) -> Duration {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    Duration::from_secs(now.saturating_sub(issued))
}

/// What to do with a ticket of a given age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Younger than [`RENEW_AFTER`]: use it.
    Fresh,
    /// Between [`RENEW_AFTER`] and [`TICKET_LIFETIME`]: renew it (post it as the password).
    Renew,
    /// Expired: log in again with the password.
    Expired,
}

/// Classifies a ticket age.
pub fn freshness(age: Duration) -> Freshness {
    if age < RENEW_AFTER {
        Freshness::Fresh
    } else if age < TICKET_LIFETIME {
        Freshness::Renew
    } else {
        Freshness::Expired
    }
}

/// A full (non-TFA) ticket with its CSRF token.
#[derive(Clone)]
pub struct Session {
    /// The user PVE reports (`username` in the answer).
    pub username: String,
    /// The ticket, sent as cookie `PVEAuthCookie`.
    pub ticket: Secret,
    /// The CSRF token, sent as header `CSRFPreventionToken` on POST/PUT/DELETE.
    pub csrf: Secret,
    /// Issue time from the ticket (unix seconds).
    pub issued: u64,
}

impl Session {
    /// Age of the ticket at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        ticket_age(self.issued, now)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .field("ticket", &self.ticket)
            .field("csrf", &self.csrf)
            .field("issued", &self.issued)
            .finish()
    }
}

/// The answer of `POST /access/ticket`, interpreted.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Logged in.
    Done(Session),
    /// A second factor is needed; post it with [`tfa_form`] and this challenge ticket.
    NeedTfa {
        /// The user PVE reports.
        username: String,
        /// The `PVE:!tfa!…` challenge ticket.
        challenge: Secret,
    },
}

#[derive(Deserialize)]
struct TicketAnswer {
    username: String,
    ticket: String,
    #[serde(rename = "CSRFPreventionToken", default)]
    csrf: Option<String>,
    #[serde(
        rename = "NeedTFA",
        default,
        deserialize_with = "crate::perl::opt_bool"
    )]
    need_tfa: Option<bool>,
}

/// Form for a password login.
pub fn login_form(user: &str, password: &Secret) -> Params {
    Params::new()
        .with("username", user)
        .with("password", password.expose())
}

/// Form for a renewal: the current ticket is posted as the password.
pub fn renew_form(user: &str, ticket: &Secret) -> Params {
    login_form(user, ticket)
}

/// Form for the second TFA step: `tfa-challenge=<challenge>`, `password=totp:<code>`.
pub fn tfa_form(user: &str, challenge: &Secret, totp_code: &Secret) -> Params {
    Params::new()
        .with("username", user)
        .with("tfa-challenge", challenge.expose())
        .with("password", format!("totp:{}", totp_code.expose()))
}

/// Interprets the `data` of a `POST /access/ticket` answer.
pub fn parse_login(data: serde_json::Value) -> Result<LoginOutcome> {
    let decode_err = |e: serde_json::Error| Error::Decode {
        method: "POST".to_owned(),
        path: "/access/ticket".to_owned(),
        source: e,
        body: "<login answer redacted>".to_owned(),
    };
    if data.is_null() {
        // PVE answers a failed login with 401; `{"data":null}` with 200 is treated the same
        // (proxmoxer does too) rather than as a decode error.
        return Err(Error::Api {
            method: "POST".to_owned(),
            path: "/access/ticket".to_owned(),
            status: 401,
            message: "authentication failure (empty login answer)".to_owned(),
            errors: Default::default(),
        });
    }
    let answer: TicketAnswer = serde_json::from_value(data).map_err(decode_err)?;
    let is_tfa_ticket = answer
        .ticket
        .strip_prefix("PVE:")
        .is_some_and(|r| r.starts_with("!tfa!"));
    if answer.need_tfa == Some(true) || is_tfa_ticket {
        return Ok(LoginOutcome::NeedTfa {
            username: answer.username,
            challenge: Secret::new(answer.ticket),
        });
    }
    let issued = ticket_timestamp(&answer.ticket)?;
    let csrf = answer.csrf.ok_or_else(|| Error::InvalidInput {
        what: "login answer",
        input: "<redacted>".to_owned(),
        reason: "it has a ticket but no CSRFPreventionToken".to_owned(),
    })?;
    Ok(LoginOutcome::Done(Session {
        username: answer.username,
        ticket: Secret::new(answer.ticket),
        csrf: Secret::new(csrf),
        issued,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: u64 = 0x64E1_0CBA;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn timestamp_is_read_from_plain_and_tfa_tickets() {
        assert_eq!(
            ticket_timestamp("PVE:root@pam:64E10CBA::yTMq+V7/Bm==").unwrap(),
            T0
        );
        assert_eq!(
            ticket_timestamp("PVE:!tfa!%7B%22totp%22%3Atrue%7D:64E10CBA::sig==").unwrap(),
            T0
        );
        for bad in [
            "",
            "PBS:root@pam:64E10CBA::s",
            "PVE:root@pam:64E10CBA",
            "PVE:root@pam:64E1CBA::s",
            "PVE:root@pam:64E10CBZ::s",
        ] {
            let err = ticket_timestamp(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}");
        }
    }

    #[test]
    fn age_and_freshness_are_pure_functions_of_the_clock() {
        assert_eq!(ticket_age(T0, at(T0 + 10)), Duration::from_secs(10));
        assert_eq!(ticket_age(T0, at(T0 - 100)), Duration::ZERO);
        assert_eq!(freshness(ticket_age(T0, at(T0 + 5399))), Freshness::Fresh);
        assert_eq!(freshness(ticket_age(T0, at(T0 + 5400))), Freshness::Renew);
        assert_eq!(freshness(ticket_age(T0, at(T0 + 7199))), Freshness::Renew);
        assert_eq!(freshness(ticket_age(T0, at(T0 + 7200))), Freshness::Expired);
    }

    #[test]
    fn parses_a_real_login_answer() {
        let data = json!({"username":"root@pam",
            "ticket":"PVE:root@pam:64E10CBA::yTMqV7BmZr2g==",
            "CSRFPreventionToken":"64E10CBA:YDNz71IKnE0sWsm1SbV1PGwz3hAyprvygQ7SBkxHVtE",
            "clustername":"pve-cluster",
            "cap":{"vms":{"VM.PowerMgmt":1}}});
        let LoginOutcome::Done(s) = parse_login(data).unwrap() else {
            panic!("expected a session")
        };
        assert_eq!(s.username, "root@pam");
        assert_eq!(s.issued, T0);
        assert_eq!(
            s.csrf.expose(),
            "64E10CBA:YDNz71IKnE0sWsm1SbV1PGwz3hAyprvygQ7SBkxHVtE"
        );
        assert!(!format!("{s:?}").contains("yTMq"));
    }

    #[test]
    fn recognises_the_tfa_challenge() {
        let data = json!({"username":"root@pam","NeedTFA":1,
            "ticket":"PVE:!tfa!%7B%22totp%22%3Atrue%7D:64E10CBA::sig==",
            "CSRFPreventionToken":"64E10CBA:abc"});
        match parse_login(data).unwrap() {
            LoginOutcome::NeedTfa {
                username,
                challenge,
            } => {
                assert_eq!(username, "root@pam");
                assert!(challenge.expose().starts_with("PVE:!tfa!"));
            }
            other => panic!("expected TFA, got {other:?}"),
        }
        let form = tfa_form(
            "root@pam",
            &Secret::new("PVE:!tfa!x:1::s"),
            &Secret::new("123456"),
        );
        assert_eq!(form.get("tfa-challenge"), Some("PVE:!tfa!x:1::s"));
        assert_eq!(form.get("password"), Some("totp:123456"));
        assert_eq!(form.get("username"), Some("root@pam"));
    }

    #[test]
    fn rejects_answers_without_csrf_or_data() {
        let no_csrf = json!({"username":"root@pam","ticket":"PVE:root@pam:64E10CBA::s"});
        assert!(parse_login(no_csrf).is_err());
        let err = parse_login(serde_json::Value::Null).unwrap_err();
        assert!(err.is_auth());
        let garbage = json!({"ticket": 5});
        let err = parse_login(garbage).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }));
    }

    #[test]
    fn renew_form_posts_the_ticket_as_password() {
        let f = renew_form("root@pam", &Secret::new("PVE:root@pam:64E10CBA::s"));
        assert_eq!(
            f.to_query(),
            "username=root%40pam&password=PVE%3Aroot%40pam%3A64E10CBA%3A%3As"
        );
    }
}
