//! The `PVE_*` environment of the examples, read like `pve-auth`'s `whoami` example:
//! `PVE_HOST`; `PVE_TOKEN` or `PVE_USER` + `PVE_PASSWORD`; at most one of
//! `PVE_FINGERPRINT`, `PVE_CA_FILE`, `PVE_INSECURE=1`.

use anyhow::{bail, Context};
use pve_auth::{ApiToken, PveClient, Secret, TlsOptions};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A client configured from the environment.
pub fn client_from_env() -> anyhow::Result<PveClient> {
    let host = env("PVE_HOST").context("set PVE_HOST, e.g. pve1 or http://127.0.0.1:8006")?;
    let builder = PveClient::builder(&host);
    let builder = match (env("PVE_TOKEN"), env("PVE_USER"), env("PVE_PASSWORD")) {
        (Some(token), _, _) => builder.token(token.parse::<ApiToken>()?),
        (None, Some(user), Some(password)) => builder.password(&user, Secret::new(password)),
        _ => bail!("set PVE_TOKEN, or PVE_USER and PVE_PASSWORD"),
    };
    let insecure = env("PVE_INSECURE").is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let tls = match (env("PVE_FINGERPRINT"), env("PVE_CA_FILE"), insecure) {
        (Some(fp), None, false) => TlsOptions::fingerprint(&fp)?,
        (None, Some(path), false) => TlsOptions::ca_file(path),
        (None, None, true) => TlsOptions::insecure(),
        (None, None, false) => TlsOptions::system_roots(),
        _ => bail!("set at most one of PVE_FINGERPRINT, PVE_CA_FILE, PVE_INSECURE"),
    };
    Ok(builder.tls(tls).build()?)
}
