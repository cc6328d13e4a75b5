//! Authentication as PVE does it: signed tickets (cookie `PVEAuthCookie`), CSRF tokens
//! for writes, API tokens (`Authorization: PVEAPIToken=…`), two-step TOTP, renewal.
//!
//! Tickets are `PVE:<user>:<8 hex unix time>::<base64 signature>`; the simulator signs
//! with an HMAC-SHA256 key generated at start (PVE uses RSA; clients treat the signature
//! as opaque). CSRF tokens are `<8 hex time>:<base64 HMAC-SHA256("time:user")>`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::Sha256;

use crate::access::Principal;
use crate::error::{ApiError, ApiResult, Params};
use crate::state::{unix_now, Caller, Shared};
use crate::Secret;

type HmacSha256 = Hmac<Sha256>;

/// `401 No ticket`.
pub(crate) const NO_TICKET: &str = "No ticket";
/// `401 Authentication failed!` (PVE ≥ 9.1.5 for bad tickets and tokens).
pub(crate) const AUTH_FAILED: &str = "Authentication failed!";
/// `401 Permission denied - invalid csrf token`.
pub(crate) const BAD_CSRF: &str = "Permission denied - invalid csrf token";
/// `401 authentication failure` of `POST /access/ticket`.
pub(crate) const LOGIN_FAILED: &str = "authentication failure";
/// Tickets are accepted up to this many seconds in the future (clock skew).
const SKEW: i64 = 300;

/// The signing keys of one simulator (random per start).
pub(crate) struct Keys {
    ticket: [u8; 32],
    csrf: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    pub(crate) fn generate() -> Self {
        Self {
            ticket: rand::random(),
            csrf: rand::random(),
        }
    }

    fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        for p in parts {
            m.update(p);
        }
        m
    }

    /// `PVE:<user>:<HEX>::<sig>`; `secret_data` is signed but not part of the ticket.
    fn assemble(&self, plain: &str, secret_data: &str) -> String {
        let sig = Self::mac(
            &self.ticket,
            &[plain.as_bytes(), b"\0", secret_data.as_bytes()],
        )
        .finalize()
        .into_bytes();
        format!("{plain}::{}", STANDARD.encode(sig))
    }

    /// The raw signature of `plain` with `secret_data` bound in (VNC tickets).
    pub(crate) fn sign(&self, plain: &str, secret_data: &str) -> Vec<u8> {
        Self::mac(
            &self.ticket,
            &[plain.as_bytes(), b"\0", secret_data.as_bytes()],
        )
        .finalize()
        .into_bytes()
        .to_vec()
    }

    /// A full ticket for `user`, issued `at`.
    pub(crate) fn ticket(&self, user: &str, at: u64) -> String {
        self.assemble(&format!("PVE:{user}:{at:08X}"), "")
    }

    /// A TFA-pending ticket: the percent-encoded challenge in place of the user; the user
    /// is bound through the signature.
    fn tfa_ticket(&self, user: &str, at: u64) -> String {
        let challenge = utf8_percent_encode(r#"{"totp":true}"#, NON_ALPHANUMERIC).to_string();
        self.assemble(&format!("PVE:!tfa!{challenge}:{at:08X}"), user)
    }

    /// Verify a ticket; returns `(user part, issue time)` if the signature matches and the
    /// age is within `lifetime` seconds.
    fn verify(&self, ticket: &str, secret_data: &str, lifetime: u64) -> Option<(String, u64)> {
        let (plain, sig) = ticket.split_once("::")?;
        let rest = plain.strip_prefix("PVE:")?;
        let (user, hex_time) = rest.rsplit_once(':')?;
        if hex_time.len() != 8 {
            return None;
        }
        let at = u64::from_str_radix(hex_time, 16).ok()?;
        let sig = STANDARD.decode(sig).ok()?;
        Self::mac(
            &self.ticket,
            &[plain.as_bytes(), b"\0", secret_data.as_bytes()],
        )
        .verify_slice(&sig)
        .ok()?;
        age_ok(at, lifetime).then(|| (user.to_owned(), at))
    }

    /// `<HEX>:<base64 HMAC("HEX:user")>`.
    pub(crate) fn csrf(&self, user: &str, at: u64) -> String {
        let t = format!("{at:08X}");
        let sig = Self::mac(&self.csrf, &[t.as_bytes(), b":", user.as_bytes()])
            .finalize()
            .into_bytes();
        format!("{t}:{}", STANDARD_NO_PAD.encode(sig))
    }

    fn verify_csrf(&self, token: &str, user: &str, lifetime: u64) -> bool {
        let Some((t, sig)) = token.split_once(':') else {
            return false;
        };
        let Ok(at) = u64::from_str_radix(t, 16) else {
            return false;
        };
        let Ok(sig) = STANDARD_NO_PAD.decode(sig) else {
            return false;
        };
        t.len() == 8
            && Self::mac(&self.csrf, &[t.as_bytes(), b":", user.as_bytes()])
                .verify_slice(&sig)
                .is_ok()
            && age_ok(at, lifetime)
    }
}

/// Age check: not more than 5 min in the future, not older than `lifetime` seconds.
fn age_ok(at: u64, lifetime: u64) -> bool {
    let age = unix_now() as i64 - at as i64;
    age > -SKEW && age <= lifetime as i64
}

/// Decode RFC 4648 base32 (case-insensitive, padding and spaces ignored).
pub(crate) fn base32_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf: u64 = 0;
    let mut bits = 0u32;
    for c in input.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits) for the 30 s step `counter`.
pub(crate) fn totp(key: &[u8], counter: u64) -> String {
    let mut m = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(&counter.to_be_bytes());
    let h = m.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// Accept the current 30 s step and one on either side.
fn totp_ok(key: &[u8], code: &str) -> bool {
    let step = unix_now() / 30;
    [step.saturating_sub(1), step, step + 1]
        .iter()
        .any(|c| totp(key, *c) == code)
}

/// The decoded TOTP key, if TFA is configured.
fn totp_key(sh: &Shared) -> Option<Vec<u8>> {
    sh.cfg.totp.as_ref().and_then(|s| base32_decode(s.expose()))
}

/// A parsed `Authorization: PVEAPIToken=USER@REALM!ID=SECRET` header.
fn parse_token_header(value: &str) -> Option<(String, String, Secret)> {
    let rest = value.strip_prefix("PVEAPIToken")?;
    let rest = rest.strip_prefix('=').or_else(|| rest.strip_prefix(' '))?;
    let (full, secret) = rest.rsplit_once('=')?;
    let (user, id) = full.split_once('!')?;
    Some((user.to_owned(), id.to_owned(), Secret::new(secret)))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The ticket from `Cookie: PVEAuthCookie=…` or `Authorization: PVEAuthCookie=…`.
fn ticket_from(headers: &HeaderMap) -> Option<String> {
    for cookie in headers.get_all(http::header::COOKIE) {
        let Ok(cookie) = cookie.to_str() else {
            continue;
        };
        for pair in cookie.split(';') {
            if let Some(v) = pair.trim().strip_prefix("PVEAuthCookie=") {
                return Some(percent_decode_str(v).decode_utf8_lossy().into_owned());
            }
        }
    }
    header(headers, "authorization")
        .and_then(|a| a.strip_prefix("PVEAuthCookie="))
        .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
}

/// Does the request carry an API token header?
pub(crate) fn has_token(headers: &HeaderMap) -> bool {
    header(headers, "authorization").is_some_and(|a| a.starts_with("PVEAPIToken"))
}

/// Authenticate an API request. The error is the 401 to answer (with an empty body).
pub(crate) fn authenticate(
    sh: &Shared,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Caller, ApiError> {
    let unauthorized = |msg: &str| ApiError::status(StatusCode::UNAUTHORIZED, msg);
    if let Some(value) = header(headers, "authorization").filter(|a| a.starts_with("PVEAPIToken")) {
        let (user, id, secret) =
            parse_token_header(value).ok_or_else(|| unauthorized(AUTH_FAILED))?;
        let cli = sh
            .cfg
            .token
            .as_ref()
            .is_some_and(|t| t.user == user && t.id == id && t.secret == secret);
        let st = sh.lock();
        let known = cli
            || st
                .access
                .users
                .get(&user)
                .and_then(|u| u.tokens.get(&id))
                .is_some_and(|t| t.secret == secret);
        let caller = Caller {
            user,
            tokenid: Some(id),
        };
        // check_user_enabled: a disabled or expired user (or token) is refused.
        if !known || !st.access.usable(&Principal::of(&caller)) {
            return Err(unauthorized(AUTH_FAILED));
        }
        return Ok(caller);
    }
    let ticket = ticket_from(headers).ok_or_else(|| unauthorized(NO_TICKET))?;
    let (user, _) = sh
        .keys
        .verify(&ticket, "", sh.cfg.ticket_lifetime)
        .filter(|(user, _)| !user.starts_with("!tfa!"))
        .ok_or_else(|| unauthorized(AUTH_FAILED))?;
    if *method != Method::GET {
        let ok = header(headers, "csrfpreventiontoken")
            .is_some_and(|t| sh.keys.verify_csrf(t, &user, sh.cfg.ticket_lifetime));
        if !ok {
            return Err(unauthorized(BAD_CSRF));
        }
    }
    let caller = Caller {
        user,
        tokenid: None,
    };
    if !sh.lock().access.usable(&Principal::of(&caller)) {
        return Err(unauthorized(AUTH_FAILED));
    }
    Ok(caller)
}

/// The capabilities object of a successful login (root: everything).
fn caps() -> Value {
    let vms = json!({"VM.Allocate":1,"VM.Audit":1,"VM.Backup":1,"VM.Clone":1,"VM.Config.CDROM":1,
        "VM.Config.CPU":1,"VM.Config.Cloudinit":1,"VM.Config.Disk":1,"VM.Config.HWType":1,
        "VM.Config.Memory":1,"VM.Config.Network":1,"VM.Config.Options":1,"VM.Console":1,
        "VM.GuestAgent.Audit":1,"VM.GuestAgent.Unrestricted":1,"VM.Migrate":1,
        "VM.PowerMgmt":1,"VM.Snapshot":1,"VM.Snapshot.Rollback":1,"Permissions.Modify":1});
    json!({
        "vms": vms,
        "nodes": {"Sys.Audit":1,"Sys.Console":1,"Sys.Modify":1,"Sys.PowerMgmt":1,"Sys.Syslog":1,"Permissions.Modify":1},
        "storage": {"Datastore.Allocate":1,"Datastore.AllocateSpace":1,"Datastore.Audit":1,"Permissions.Modify":1},
        "dc": {"Sys.Audit":1,"Sys.Modify":1,"SDN.Audit":1,"SDN.Allocate":1,"SDN.Use":1},
        "access": {"Group.Allocate":1,"Permissions.Modify":1,"User.Modify":1},
        "sdn": {"SDN.Allocate":1,"SDN.Audit":1,"SDN.Use":1,"Permissions.Modify":1},
        "mapping": {"Mapping.Audit":1,"Mapping.Modify":1,"Mapping.Use":1,"Permissions.Modify":1}
    })
}

fn full_login(sh: &Shared, user: &str) -> Value {
    let now = unix_now();
    let mut data = json!({
        "username": user,
        "ticket": sh.keys.ticket(user, now),
        "CSRFPreventionToken": sh.keys.csrf(user, now),
        "cap": caps(),
    });
    if sh.cfg.nodes.len() > 1 {
        data["clustername"] = json!("labsim");
    }
    data
}

/// The privileges of a non-root user summarised per area, as the login's `cap`: an area
/// lists a privilege the user has on the area's root or on any ACL path below it.
fn user_caps(sh: &Shared, user: &str) -> Value {
    let st = sh.lock();
    let p = Principal::User(user.to_owned());
    let areas = [
        ("vms", "/vms"),
        ("nodes", "/nodes"),
        ("storage", "/storage"),
        ("access", "/access"),
        ("dc", "/"),
        ("sdn", "/sdn"),
        ("mapping", "/mapping"),
    ];
    let mut cap = serde_json::Map::new();
    for (area, root) in areas {
        let mut privs = std::collections::BTreeSet::new();
        let below: Vec<String> = st
            .access
            .acl
            .keys()
            .filter(|k| root == "/" || k.starts_with(root))
            .cloned()
            .chain(std::iter::once(root.to_owned()))
            .collect();
        for path in below {
            privs.extend(crate::access::permissions(&st, &p, &path));
        }
        let obj: serde_json::Map<String, Value> =
            privs.into_iter().map(|p| (p, json!(1))).collect();
        cap.insert(area.to_owned(), Value::Object(obj));
    }
    Value::Object(cap)
}

/// Password login of a user of realm `pve` (`shadow.cfg`); `None` = authentication
/// failure (unknown user, no or wrong password, disabled or expired).
fn login_user(sh: &Shared, user: &str, password: &str) -> Option<Value> {
    {
        let st = sh.lock();
        let u = st.access.users.get(user)?;
        let ok = user.ends_with("@pve")
            && u.usable()
            && u.password.as_ref().is_some_and(|p| p.expose() == password);
        if !ok {
            // A still valid ticket of the same user renews it.
            let renew = password.starts_with("PVE:")
                && u.usable()
                && sh
                    .keys
                    .verify(password, "", sh.cfg.ticket_lifetime)
                    .is_some_and(|(t, _)| t == user);
            if !renew {
                return None;
            }
        }
    }
    let mut data = full_login(sh, user);
    data["cap"] = user_caps(sh, user);
    Some(data)
}

/// `POST /access/ticket`. `token_header` = an API token was sent (→ 403).
pub(crate) fn create_ticket(sh: &Shared, params: &Params, token_header: bool) -> ApiResult<Value> {
    if token_header {
        return Err(ApiError::status(
            StatusCode::FORBIDDEN,
            "Permission check failed (URI '/access/ticket' not available with API token, need proper ticket.\n)",
        ));
    }
    let fail = || ApiError::status(StatusCode::UNAUTHORIZED, LOGIN_FAILED);
    let mut user = params.get("username").cloned().unwrap_or_default();
    if let Some(realm) = params.get("realm") {
        if !user.contains('@') {
            user = format!("{user}@{realm}");
        }
    }
    let password = params
        .get("password")
        .map(String::as_str)
        .unwrap_or_default();
    if user != sh.cfg.user {
        return login_user(sh, &user, password).ok_or_else(fail);
    }
    if let Some(challenge) = params.get("tfa-challenge") {
        // Second step of the TFA flow: the answer is in `password` as `totp:<code>`.
        if params.contains_key("otp") {
            return Err(fail());
        }
        sh.keys
            .verify(challenge, &user, sh.cfg.ticket_lifetime)
            .filter(|(u, _)| u.starts_with("!tfa!"))
            .ok_or_else(fail)?;
        let key = totp_key(sh).ok_or_else(fail)?;
        let code = password.strip_prefix("totp:").ok_or_else(fail)?;
        return if totp_ok(&key, code) {
            Ok(full_login(sh, &user))
        } else {
            Err(fail())
        };
    }
    if password.starts_with("PVE:") {
        // Renewal with a still valid full ticket of the same user; no TFA again.
        return match sh.keys.verify(password, "", sh.cfg.ticket_lifetime) {
            Some((u, _)) if u == user => Ok(full_login(sh, &user)),
            _ => Err(fail()),
        };
    }
    if password != sh.cfg.password.expose() {
        return Err(fail());
    }
    match totp_key(sh) {
        None => Ok(full_login(sh, &user)),
        Some(key) => match params.get("otp") {
            // Legacy one-step form.
            Some(code) if totp_ok(&key, code) => Ok(full_login(sh, &user)),
            Some(_) => Err(fail()),
            None => Ok(json!({
                "username": user,
                "ticket": sh.keys.tfa_ticket(&user, unix_now()),
                "CSRFPreventionToken": sh.keys.csrf(&user, unix_now()),
                "NeedTFA": 1,
            })),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA1 key "12345678901234567890", 8 digits → last 6 here.
        let key = b"12345678901234567890";
        assert_eq!(totp(key, 59 / 30), "287082");
        assert_eq!(totp(key, 1_111_111_109 / 30), "081804");
        assert_eq!(totp(key, 2_000_000_000 / 30), "279037");
    }

    #[test]
    fn base32_decodes_rfc4648() {
        assert_eq!(
            base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            b"12345678901234567890"
        );
        assert_eq!(base32_decode("mzxw6ytb oi======").unwrap(), b"foobar");
        assert!(base32_decode("not base32!").is_none());
    }

    #[test]
    fn tickets_verify_and_reject_tampering() {
        let k = Keys::generate();
        let now = unix_now();
        let t = k.ticket("root@pam", now);
        assert!(t.starts_with(&format!("PVE:root@pam:{now:08X}::")), "{t}");
        assert_eq!(k.verify(&t, "", 7200).unwrap().0, "root@pam");
        let forged = t.replacen("root@pam", "evil@pam", 1);
        assert!(k.verify(&forged, "", 7200).is_none());
        let old = k.ticket("root@pam", now - 8000);
        assert!(k.verify(&old, "", 7200).is_none());
        assert!(Keys::generate().verify(&t, "", 7200).is_none());
    }

    #[test]
    fn csrf_is_bound_to_the_user() {
        let k = Keys::generate();
        let c = k.csrf("root@pam", unix_now());
        let (t, sig) = c.split_once(':').unwrap();
        assert_eq!(t.len(), 8);
        assert_eq!(sig.len(), 43);
        assert!(k.verify_csrf(&c, "root@pam", 7200));
        assert!(!k.verify_csrf(&c, "lab@pve", 7200));
    }

    #[test]
    fn token_header_forms() {
        let (u, id, s) = parse_token_header("PVEAPIToken=lab@pve!runner=abc=def").unwrap();
        assert_eq!(
            (u.as_str(), id.as_str(), s.expose()),
            ("lab@pve", "runner=abc", "def")
        );
        let (u, id, s) = parse_token_header("PVEAPIToken lab@pve!runner=0b5e").unwrap();
        assert_eq!(
            (u.as_str(), id.as_str(), s.expose()),
            ("lab@pve", "runner", "0b5e")
        );
        assert!(parse_token_header("PVEAPIToken:lab@pve!runner=x").is_none());
    }
}
