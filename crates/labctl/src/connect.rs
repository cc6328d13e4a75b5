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
use pve_vm::{Timing, VmApi};

use crate::config::Cluster;

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

    /// A cluster of the config file ($XDG_CONFIG_HOME/labctl/config.toml): its host, user
    /// or token id, fingerprint or CA file. Flags and PVE_* variables override it.
    #[arg(long, env = "LABCTL_CLUSTER", global = true, value_name = "NAME")]
    pub cluster: Option<String>,
}

impl Connection {
    /// The flags over the config file's cluster (flags and environment win).
    fn resolved(&self) -> anyhow::Result<(Connection, Cluster)> {
        let cluster = crate::config::cluster(self.cluster.as_deref())?.unwrap_or_default();
        // TLS comes from one place: the flags if they choose any, else the file.
        let flags_tls = self.fingerprint.is_some() || self.ca_file.is_some() || self.insecure;
        Ok((
            Connection {
                host: self.host.clone().or_else(|| cluster.host.clone()),
                user: self.user.clone().or_else(|| cluster.user.clone()),
                fingerprint: if flags_tls {
                    self.fingerprint.clone()
                } else {
                    cluster.fingerprint.clone()
                },
                ca_file: if flags_tls {
                    self.ca_file.clone()
                } else {
                    cluster.ca_file.clone()
                },
                insecure: if flags_tls {
                    self.insecure
                } else {
                    cluster.insecure
                },
                cluster: self.cluster.clone(),
            },
            cluster,
        ))
    }

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
            return Err(crate::fail::usage(
                "give at most one of --fingerprint, --ca-file and --insecure",
            ));
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

    /// Builds a client from the flags (over the config file's cluster) and `PVE_TOKEN` /
    /// `PVE_PASSWORD` (or a secret file the config names, or a prompt).
    pub fn client(&self) -> anyhow::Result<PveClient> {
        let (this, cluster) = self.resolved()?;
        this.client_with(&cluster)
    }

    fn client_with(&self, cluster: &Cluster) -> anyhow::Result<PveClient> {
        let Some(host) = &self.host else {
            return Err(crate::fail::usage(
                "no Proxmox VE host given: set --host or PVE_HOST (e.g. pve1 or \
                 https://pve1:8006) or a cluster of the config file with --cluster; to \
                 try labctl without a cluster run `labctl demo`",
            ));
        };
        let builder = PveClient::builder(host).tls(self.tls()?);
        let builder = if let Ok(token) = std::env::var("PVE_TOKEN") {
            let token: ApiToken = token
                .parse()
                .context("PVE_TOKEN must look like USER@REALM!TOKENID=SECRET")?;
            builder.token(token)
        } else if let Some(id) = &cluster.token_id {
            let secret = match std::env::var("PVE_TOKEN_SECRET") {
                Ok(s) => s,
                Err(_) => match &cluster.token_secret_file {
                    Some(f) => crate::config::read_secret_file(f)?,
                    None => {
                        return Err(crate::fail::usage(format!(
                            "the cluster's token {id} needs its secret: set PVE_TOKEN_SECRET or \
                             token_secret_file in the config"
                        )))
                    }
                },
            };
            let token: ApiToken = format!("{id}={secret}").parse().map_err(|_| {
                crate::fail::usage(format!(
                    "token_id {id:?} in the config must look like USER@REALM!TOKENID"
                ))
            })?;
            builder.token(token)
        } else {
            let Some(user) = &self.user else {
                return Err(crate::fail::usage(
                    "no credentials: set PVE_TOKEN=USER@REALM!TOKENID=SECRET, or --user / \
                     PVE_USER with PVE_PASSWORD (or answer the password prompt)",
                ));
            };
            let pw = match (std::env::var("PVE_PASSWORD"), &cluster.password_file) {
                (Err(_), Some(f)) => Secret::new(crate::config::read_secret_file(f)?),
                _ => password(user)?,
            };
            builder.password(user, pw)
        };
        Ok(builder.build()?)
    }

    /// The lab backend over [`Connection::client`].
    pub fn backend(&self) -> anyhow::Result<ProxmoxLab> {
        let timing = timing()?;
        Ok(ProxmoxLab::with_timing(self.client()?, timing))
    }

    /// The guest API over [`Connection::client`], with waits matched to
    /// `LABCTL_TIME_SCALE`.
    pub fn vm_api(&self) -> anyhow::Result<VmApi> {
        let timing = timing()?;
        Ok(VmApi::with_timing(self.client()?, timing))
    }
}

/// Default timing, scaled by `LABCTL_TIME_SCALE` if set.
fn timing() -> anyhow::Result<Timing> {
    Ok(match time_scale()? {
        Some(f) => Timing::default().scaled(f),
        None => Timing::default(),
    })
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
                .ok_or_else(|| {
                    crate::fail::usage(format!(
                        "invalid LABCTL_TIME_SCALE {v:?}: a number above 0 and at most \
                         {MAX_TIME_SCALE}, e.g. 0.05"
                    ))
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
