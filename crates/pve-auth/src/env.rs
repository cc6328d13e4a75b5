//! A client configured from the `PVE_*` environment, as the crates' examples and small
//! tools read it (labctl itself adds a config file and flags on top, see its README).
//!
//! - `PVE_HOST` (required): `pve1`, `https://pve1:8006`, or `http://127.0.0.1:8006`;
//! - `PVE_TOKEN` (`USER@REALM!TOKENID=SECRET`), or `PVE_USER` + `PVE_PASSWORD`;
//! - at most one of `PVE_FINGERPRINT` (pin the certificate), `PVE_CA_FILE`,
//!   `PVE_INSECURE=1`; none: the system's roots.
//!
//! Empty variables count as unset. Secrets read here are wrapped in [`Secret`] at once.

use crate::{ApiToken, Error, PveClient, Result, Secret, TlsOptions};

/// A client configured from the process environment (see the module docs).
///
/// ```no_run
/// # async fn demo() -> pve_auth::Result<()> {
/// let client = pve_auth::client_from_env()?;
/// let version: serde_json::Value = client.get("/version", &pve_auth::Params::new()).await?;
/// # Ok(()) }
/// ```
pub fn client_from_env() -> Result<PveClient> {
    client_from(|name| std::env::var(name).ok())
}

/// [`client_from_env`] over any source of variables (tests, a config file's values).
pub fn client_from(var: impl Fn(&str) -> Option<String>) -> Result<PveClient> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    let config = |message: &str| Error::Config {
        message: message.to_owned(),
    };
    let host = get("PVE_HOST")
        .ok_or_else(|| config("set PVE_HOST, e.g. pve1 or http://127.0.0.1:8006"))?;
    let builder = PveClient::builder(&host);
    let builder = match (get("PVE_TOKEN"), get("PVE_USER"), get("PVE_PASSWORD")) {
        (Some(token), _, _) => builder.token(token.parse::<ApiToken>()?),
        (None, Some(user), Some(password)) => builder.password(&user, Secret::new(password)),
        (None, Some(_), None) => return Err(config("PVE_USER is set but PVE_PASSWORD is not")),
        _ => return Err(config("set PVE_TOKEN, or PVE_USER and PVE_PASSWORD")),
    };
    let insecure = match get("PVE_INSECURE").as_deref() {
        None | Some("0" | "false" | "no") => false,
        Some("1" | "true" | "yes") => true,
        Some(other) => {
            return Err(Error::InvalidInput {
                what: "PVE_INSECURE",
                input: other.to_owned(),
                reason: "allowed: 1, true, yes, 0, false, no".into(),
            })
        }
    };
    let tls = match (get("PVE_FINGERPRINT"), get("PVE_CA_FILE"), insecure) {
        (Some(fp), None, false) => TlsOptions::fingerprint(&fp)?,
        (None, Some(path), false) => TlsOptions::ca_file(path),
        (None, None, true) => TlsOptions::insecure(),
        (None, None, false) => TlsOptions::system_roots(),
        _ => {
            return Err(config(
                "set at most one of PVE_FINGERPRINT, PVE_CA_FILE, PVE_INSECURE",
            ))
        }
    };
    builder.tls(tls).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn from(vars: &[(&str, &str)]) -> Result<PveClient> {
        let m: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        client_from(|k| m.get(k).cloned())
    }

    fn err(vars: &[(&str, &str)]) -> String {
        match from(vars) {
            Ok(_) => panic!("accepted: {vars:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_host_and_a_login_make_a_client() {
        from(&[
            ("PVE_HOST", "http://127.0.0.1:8006"),
            ("PVE_USER", "root@pam"),
            ("PVE_PASSWORD", "s"),
        ])
        .unwrap();
        from(&[
            ("PVE_HOST", "pve1"),
            (
                "PVE_TOKEN",
                "root@pam!ci=00000000-0000-0000-0000-000000000000",
            ),
        ])
        .unwrap();
    }

    #[test]
    fn what_is_missing_or_conflicting_is_named_and_no_secret_is_shown() {
        assert!(err(&[]).contains("PVE_HOST"));
        assert!(err(&[("PVE_HOST", "pve1"), ("PVE_USER", "")]).contains("PVE_TOKEN"));
        let e = err(&[("PVE_HOST", "pve1"), ("PVE_USER", "root@pam")]);
        assert!(e.contains("PVE_PASSWORD"), "{e}");
        let e = err(&[
            ("PVE_HOST", "pve1"),
            ("PVE_USER", "root@pam"),
            ("PVE_PASSWORD", "hunter2-secret"),
            ("PVE_INSECURE", "1"),
            ("PVE_CA_FILE", "/etc/ca.pem"),
        ]);
        assert!(e.contains("at most one") && !e.contains("hunter2"), "{e}");
        let e = err(&[
            ("PVE_HOST", "pve1"),
            ("PVE_USER", "root@pam"),
            ("PVE_PASSWORD", "hunter2-secret"),
            ("PVE_INSECURE", "maybe"),
        ]);
        assert!(e.contains("PVE_INSECURE") && e.contains("maybe"), "{e}");
    }
}
