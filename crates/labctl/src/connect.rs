//! Connection flags and environment → a [`PveClient`].
//!
//! Secrets (password, API token) are read from the environment or a prompt only, never
//! from the command line, where every user of the machine could read them.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use lab_proxmox::ProxmoxLab;
use pve_auth::{ApiToken, PveClient, Secret, TlsOptions};
use pve_vm::Timing;

/// Where the cluster is and how to trust and log in to it.
#[derive(Debug, Args)]
pub struct Connection {
    /// Proxmox VE host: `pve1`, `pve1:8006`, `https://pve1:8006` or, for a simulator,
    /// `http://127.0.0.1:8006`.
    #[arg(long, env = "PVE_HOST", global = true, value_name = "HOST")]
    pub host: Option<String>,

    /// User for password login, e.g. `root@pam`. The password comes from `PVE_PASSWORD` or
    /// a prompt, never from the command line. Ignored when `PVE_TOKEN` is set.
    #[arg(long, env = "PVE_USER", global = true, value_name = "USER@REALM")]
    pub user: Option<String>,

    /// Pin the server certificate's SHA-256 fingerprint (`AA:BB:…`, as the PVE web UI
    /// shows under Node → System → Certificates). The safe choice for self-signed nodes.
    #[arg(long, env = "PVE_FINGERPRINT", global = true, value_name = "SHA256")]
    pub fingerprint: Option<String>,

    /// Trust this CA certificate (PEM), e.g. the cluster's `/etc/pve/pve-root-ca.pem`.
    #[arg(long, env = "PVE_CA_FILE", global = true, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Accept any certificate (no verification at all). Only for throw-away test setups.
    #[arg(long, global = true)]
    pub insecure: bool,
}

impl Connection {
    pub(crate) fn tls(&self) -> anyhow::Result<TlsOptions> {
        let chosen = [
            self.fingerprint.is_some(),
            self.ca_file.is_some(),
            self.insecure,
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen > 1 {
            bail!("give at most one of --fingerprint, --ca-file and --insecure");
        }
        Ok(if let Some(fp) = &self.fingerprint {
            TlsOptions::fingerprint(fp)?
        } else if let Some(ca) = &self.ca_file {
            TlsOptions::ca_file(ca)
        } else if self.insecure {
            tracing::warn!("--insecure: the server's certificate is not checked");
            TlsOptions::insecure()
        } else {
            TlsOptions::system_roots()
        })
    }

    /// Builds a client from the flags and `PVE_TOKEN` / `PVE_PASSWORD` (or a prompt).
    pub fn client(&self) -> anyhow::Result<PveClient> {
        let Some(host) = &self.host else {
            bail!(
                "no Proxmox VE host given: set --host or PVE_HOST (e.g. pve1 or \
                 https://pve1:8006); to try labctl without a cluster run `labctl demo`"
            );
        };
        let builder = PveClient::builder(host).tls(self.tls()?);
        let builder = if let Ok(token) = std::env::var("PVE_TOKEN") {
            let token: ApiToken = token
                .parse()
                .context("PVE_TOKEN must look like USER@REALM!TOKENID=SECRET")?;
            builder.token(token)
        } else {
            let Some(user) = &self.user else {
                bail!(
                    "no credentials: set PVE_TOKEN=USER@REALM!TOKENID=SECRET, or --user / \
                     PVE_USER with PVE_PASSWORD (or answer the password prompt)"
                );
            };
            builder.password(user, password(user)?)
        };
        Ok(builder.build()?)
    }

    /// The lab backend over [`Connection::client`].
    pub fn backend(&self) -> anyhow::Result<ProxmoxLab> {
        let scale = time_scale()?;
        let client = self.client()?;
        Ok(match scale {
            Some(f) => ProxmoxLab::with_timing(client, Timing::default().scaled(f)),
            None => ProxmoxLab::new(client),
        })
    }
}

/// Largest `LABCTL_TIME_SCALE`: waits stretched further overflow (and no simulator runs
/// that slowly).
const MAX_TIME_SCALE: f64 = 1000.0;

/// `LABCTL_TIME_SCALE`: only simulators run at a time scale, so an environment variable
/// keeps it out of the everyday flags.
pub fn time_scale() -> anyhow::Result<Option<f64>> {
    match std::env::var("LABCTL_TIME_SCALE") {
        Ok(v) => Ok(Some(
            v.parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && *f <= MAX_TIME_SCALE)
                .with_context(|| {
                    format!(
                        "invalid LABCTL_TIME_SCALE {v:?}: a number above 0 and at most \
                         {MAX_TIME_SCALE}, e.g. 0.05"
                    )
                })?,
        )),
        Err(_) => Ok(None),
    }
}

fn password(user: &str) -> anyhow::Result<Secret> {
    password_from_env_or_prompt("PVE_PASSWORD", &format!("Password for {user}: "), user)
        .map(Secret::new)
}

/// A password from the environment variable `var`, else asked for on the terminal: never
/// from argv. The caller wraps it in its own secret type at once.
pub(crate) fn password_from_env_or_prompt(
    var: &str,
    prompt: &str,
    user: &str,
) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password for {user}: set {var} (stdin is not a terminal to prompt on)");
    }
    rpassword::prompt_password(prompt).context("reading the password")
}
