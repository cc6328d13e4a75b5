//! Logs in to a PVE API and prints who we are and the `GET /version` answer.
//!
//! Environment:
//! - `PVE_HOST` (required): `pve1`, `pve1:8006`, `https://…`, or `http://127.0.0.1:8006` for the simulator
//! - `PVE_USER` + `PVE_PASSWORD` (optionally `PVE_TOTP` for a TFA user), or `PVE_TOKEN`
//!   (`USER@REALM!TOKENID=SECRET`)
//! - `PVE_FINGERPRINT` (pin the certificate, `AB:CD:…`), or `PVE_CA_FILE`, or `PVE_INSECURE=1`
//! - `RUST_LOG=pve_auth=debug` to see the requests (secrets are never logged)
//!
//! ```text
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-auth --example whoami
//! ```

use anyhow::{bail, Context};
use pve_auth::{ApiToken, Params, PveClient, Secret, TlsOptions, TotpSource};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let host = env("PVE_HOST").context("set PVE_HOST, e.g. pve1 or http://127.0.0.1:8006")?;
    let mut builder = PveClient::builder(&host);

    builder = match (env("PVE_TOKEN"), env("PVE_USER"), env("PVE_PASSWORD")) {
        (Some(token), _, _) => builder.token(token.parse::<ApiToken>()?),
        (None, Some(user), Some(password)) => {
            let b = builder.password(&user, Secret::new(password));
            match env("PVE_TOTP") {
                Some(code) => b.totp(TotpSource::fixed(code)),
                None => b,
            }
        }
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
    let client = builder.tls(tls).build()?;

    client.login().await?;
    println!("logged in to {} as {}", client.base_url(), client.auth_id());
    let version: serde_json::Value = client.get("/version", &Params::new()).await?;
    println!("{}", serde_json::to_string_pretty(&version)?);
    Ok(())
}
