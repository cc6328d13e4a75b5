//! User ids, API tokens and TOTP sources.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::Secret;

/// Longest user id PVE accepts (`pve-userid`, `maxLength: 64`).
const USERID_MAX: usize = 64;
/// Longest realm PVE accepts (`pve-realm`, `maxLength: 32`).
const REALM_MAX: usize = 32;

/// A PVE user id `name@realm`, e.g. `root@pam` or `lab@pve`.
///
/// Rules (from PVE's `pve-userid` format): at most 64 characters; the name has no whitespace,
/// `:` or `/`; the realm starts with a letter, ends with a letter or digit and otherwise holds
/// letters, digits, `.`, `-` and `_`. The split is at the last `@`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Userid {
    full: String,
    at: usize,
}

impl Userid {
    /// The part before the last `@`.
    pub fn name(&self) -> &str {
        &self.full[..self.at]
    }

    /// The realm, e.g. `pam`, `pve`.
    pub fn realm(&self) -> &str {
        &self.full[self.at + 1..]
    }

    /// The full id `name@realm`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

fn invalid_userid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: "user id",
        input: input.to_owned(),
        reason: format!("{}; expected name@realm, e.g. root@pam", reason.into()),
    }
}

fn valid_realm(realm: &str) -> bool {
    let bytes = realm.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphabetic()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
                && (bytes.len() >= 2)
        }
        _ => false,
    }
}

impl FromStr for Userid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() > USERID_MAX {
            return Err(invalid_userid(s, "longer than 64 characters"));
        }
        let at = s
            .rfind('@')
            .ok_or_else(|| invalid_userid(s, "the realm is missing"))?;
        let (name, realm) = (&s[..at], &s[at + 1..]);
        if name.is_empty() {
            return Err(invalid_userid(s, "the user name is empty"));
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == '/')
        {
            return Err(invalid_userid(
                s,
                "the user name contains whitespace, ':' or '/'",
            ));
        }
        if realm.len() > REALM_MAX || !valid_realm(realm) {
            return Err(invalid_userid(
                s,
                format!(
                    "realm {realm:?} is not valid (2-32 characters: a letter first, letters, digits, '.', '-', '_', ending with a letter or digit)"
                ),
            ));
        }
        Ok(Self {
            full: s.to_owned(),
            at,
        })
    }
}

impl TryFrom<&str> for Userid {
    type Error = Error;

    fn try_from(value: &str) -> Result<Self> {
        value.parse()
    }
}

impl fmt::Display for Userid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Userid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Userid({:?})", self.full)
    }
}

/// A PVE API token `USER@REALM!TOKENID=SECRET`.
///
/// Sent as `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; needs no ticket and no CSRF
/// token. `Debug`/`Display` print the token id and `***` for the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    userid: Userid,
    tokenid: String,
    secret: Secret,
}

fn invalid_token(shown: &str, reason: &str) -> Error {
    Error::InvalidInput {
        what: "API token",
        // Only the part before the secret is ever shown.
        input: shown.to_owned(),
        reason: format!("{reason}; expected USER@REALM!TOKENID=SECRET, e.g. lab@pve!runner=<uuid>"),
    }
}

/// PVE's token id pattern `[A-Za-z][A-Za-z0-9.\-_]+`.
fn valid_tokenid(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl ApiToken {
    /// Builds a token from its parts, validating each.
    pub fn new(userid: &str, tokenid: &str, secret: Secret) -> Result<Self> {
        let shown = format!("{userid}!{tokenid}=***");
        let userid: Userid = userid
            .parse()
            .map_err(|e: Error| invalid_token(&shown, &format!("bad user part ({e})")))?;
        if !valid_tokenid(tokenid) {
            return Err(invalid_token(
                &shown,
                "the token id must start with a letter and hold at least 2 of letters, digits, '.', '-', '_'",
            ));
        }
        if secret.is_empty() {
            return Err(invalid_token(&shown, "the secret is empty"));
        }
        if secret
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid_token(&shown, "the secret contains whitespace"));
        }
        Ok(Self {
            userid,
            tokenid: tokenid.to_owned(),
            secret,
        })
    }

    /// The user the token belongs to.
    pub fn userid(&self) -> &Userid {
        &self.userid
    }

    /// The token id (the part after `!`).
    pub fn token_id(&self) -> &str {
        &self.tokenid
    }

    /// `USER@REALM!TOKENID`, as PVE records it in task UPIDs.
    pub fn full_id(&self) -> String {
        format!("{}!{}", self.userid, self.tokenid)
    }

    /// The token secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The exact `Authorization` header value, `PVEAPIToken=USER@REALM!TOKENID=SECRET`.
    pub fn header_value(&self) -> Secret {
        Secret::new(format!(
            "PVEAPIToken={}!{}={}",
            self.userid,
            self.tokenid,
            self.secret.expose()
        ))
    }
}

impl FromStr for ApiToken {
    type Err = Error;

    /// Parses `USER@REALM!TOKENID=SECRET`; also accepts a leading `PVEAPIToken=` (or
    /// `PVEAPIToken `) as in the header.
    fn from_str(s: &str) -> Result<Self> {
        let s = s
            .strip_prefix("PVEAPIToken=")
            .or_else(|| s.strip_prefix("PVEAPIToken "))
            .unwrap_or(s);
        // As PVE does: the secret (a UUID) after the last '=', user and token id split at '!'.
        let (id, secret) = s
            .rsplit_once('=')
            .ok_or_else(|| invalid_token("<no '=' found>", "the secret is missing"))?;
        let (user, tokenid) = id
            .rsplit_once('!')
            .ok_or_else(|| invalid_token(&format!("{id}=***"), "the '!TOKENID' part is missing"))?;
        Self::new(user, tokenid, Secret::new(secret))
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.full_id())
            .field("secret", &self.secret)
            .finish()
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=***", self.full_id())
    }
}

/// Where the second factor for a TFA login comes from.
///
/// PVE's two-step login answers the password with a `PVE:!tfa!…` challenge ticket; the client
/// then posts `tfa-challenge=<ticket>` and `password=totp:<code>`.
#[derive(Clone)]
pub struct TotpSource(TotpInner);

#[derive(Clone)]
enum TotpInner {
    Fixed(Secret),
    Callback(Arc<dyn Fn() -> Secret + Send + Sync>),
}

impl TotpSource {
    /// A fixed code (useful for a one-shot login, e.g. from a CLI prompt).
    pub fn fixed(code: impl Into<Secret>) -> Self {
        Self(TotpInner::Fixed(code.into()))
    }

    /// A function asked for a fresh code each time a login needs one (e.g. a TOTP generator);
    /// later re-logins after ticket expiry then keep working.
    pub fn callback(f: impl Fn() -> Secret + Send + Sync + 'static) -> Self {
        Self(TotpInner::Callback(Arc::new(f)))
    }

    /// Produces a code and checks that it looks like a TOTP code (6 to 8 digits).
    pub(crate) fn code(&self) -> Result<Secret> {
        let code = match &self.0 {
            TotpInner::Fixed(code) => code.clone(),
            TotpInner::Callback(f) => f(),
        };
        let c = code.expose();
        if !(6..=8).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidInput {
                what: "TOTP code",
                input: "***".to_owned(),
                reason: "a TOTP code has 6 to 8 digits".to_owned(),
            });
        }
        Ok(code)
    }
}

impl fmt::Debug for TotpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            TotpInner::Fixed(_) => f.write_str("TotpSource::Fixed(***)"),
            TotpInner::Callback(_) => f.write_str("TotpSource::Callback(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userid_accepts_pve_style_ids() {
        let u: Userid = "root@pam".parse().unwrap();
        assert_eq!((u.name(), u.realm()), ("root", "pam"));
        let u: Userid = "first.last@example.com@ad-realm".parse().unwrap();
        assert_eq!(u.name(), "first.last@example.com");
        assert_eq!(u.realm(), "ad-realm");
        assert_eq!(u.to_string(), "first.last@example.com@ad-realm");
    }

    #[test]
    fn userid_rejects_bad_ids_naming_them() {
        for bad in [
            "root",
            "@pam",
            "root@",
            "ro ot@pam",
            "a:b@pam",
            "root@p",
            "root@1pam",
            "root@pam-",
            "root@pa!m",
        ] {
            let err = bad.parse::<Userid>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err} should name {bad}");
            assert!(matches!(err, Error::InvalidInput { .. }));
        }
        let long = format!("{}@pam", "a".repeat(61));
        assert!(long.parse::<Userid>().is_err());
    }

    #[test]
    fn token_parses_and_builds_the_exact_header() {
        let t: ApiToken = "lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666"
            .parse()
            .unwrap();
        assert_eq!(t.userid().as_str(), "lab@pve");
        assert_eq!(t.token_id(), "runner");
        assert_eq!(t.full_id(), "lab@pve!runner");
        assert_eq!(
            t.header_value().expose(),
            "PVEAPIToken=lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666"
        );
        let same: ApiToken = "PVEAPIToken=lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666"
            .parse()
            .unwrap();
        assert_eq!(same, t);
        let spaced: ApiToken = "PVEAPIToken lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666"
            .parse()
            .unwrap();
        assert_eq!(spaced, t);
        // A user name may contain '=' (PVE allows it); the secret starts after the last '='.
        let odd: ApiToken = "a=b@pve!runner=uuid-1".parse().unwrap();
        assert_eq!(odd.userid().as_str(), "a=b@pve");
        assert_eq!(odd.secret().expose(), "uuid-1");
    }

    #[test]
    fn token_errors_never_show_the_secret() {
        for bad in [
            "lab@pve!runner",
            "lab@pve=topsecret",
            "lab!runner=topsecret",
            "lab@pve!r=topsecret",
            "lab@pve!1runner=topsecret",
            "lab@pve!runner=",
            "lab@pve!runner=top secret",
        ] {
            let err = bad.parse::<ApiToken>().unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("topsecret"), "{shown}");
            assert!(!shown.contains("top secret"), "{shown}");
            assert!(matches!(
                err,
                Error::InvalidInput {
                    what: "API token",
                    ..
                }
            ));
        }
    }

    #[test]
    fn token_debug_and_display_hide_the_secret() {
        let t: ApiToken = "lab@pve!runner=s3cr3t-value".parse().unwrap();
        assert_eq!(t.to_string(), "lab@pve!runner=***");
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn totp_codes_are_checked() {
        assert_eq!(
            TotpSource::fixed("123456").code().unwrap().expose(),
            "123456"
        );
        let err = TotpSource::fixed("12345").code().unwrap_err();
        assert!(!format!("{err} {err:?}").contains("12345"), "{err}");
        assert!(TotpSource::fixed("12a456").code().is_err());
        let cb = TotpSource::callback(|| Secret::new("87654321"));
        assert_eq!(cb.code().unwrap().expose(), "87654321");
        assert_eq!(
            format!("{:?}", TotpSource::fixed("123456")),
            "TotpSource::Fixed(***)"
        );
    }
}
