//! Connection flags and environment → a [`PveClient`].
//!
//! Secrets (password, API token) are read from the environment or a prompt only, never
//! from the command line, where every user of the machine could read them.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lab_proxmox::ProxmoxLab;
use pve_auth::{ApiToken, PveClient, Secret, TlsOptions};
use pve_vm::{Timing, VmApi};

use crate::config::Cluster;
use crate::precedence::{self, Origin, Sourced};

/// Where the cluster is and how to trust and log in to it. Each flag beats its variable
/// (`PVE_HOST`, …), which beats the config file's cluster: see [`crate::precedence`].
#[derive(Debug, Args)]
pub struct Connection {
    /// Proxmox VE host: `pve1`, `pve1:8006`, `https://pve1:8006` or, for a simulator,
    /// `http://127.0.0.1:8006`. Else PVE_HOST, else the config cluster's `host`.
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<String>,

    /// User for password login, e.g. `root@pam` (beats PVE_TOKEN, PVE_USER and the config
    /// cluster). The password comes from `PVE_PASSWORD`, the cluster's password file or a
    /// prompt, never from the command line.
    #[arg(long, global = true, value_name = "USER@REALM")]
    pub user: Option<String>,

    /// Pin the server certificate's SHA-256 fingerprint (`AA:BB:…`, as the PVE web UI
    /// shows under Node → System → Certificates). The safe choice for self-signed nodes.
    /// Else PVE_FINGERPRINT.
    #[arg(long, global = true, value_name = "SHA256")]
    pub fingerprint: Option<String>,

    /// Trust this CA certificate (PEM), e.g. the cluster's `/etc/pve/pve-root-ca.pem`.
    /// Else PVE_CA_FILE.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Accept any certificate (no verification at all). Only for throw-away test setups.
    #[arg(long, global = true)]
    pub insecure: bool,

    /// A cluster of the config file ($XDG_CONFIG_HOME/labctl/config.toml): its host, user
    /// or token id, fingerprint or CA file. Else LABCTL_CLUSTER, else the file's `default`.
    /// Flags and PVE_* variables override it; its secrets are only sent to its own host.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trust {
    Fingerprint(String),
    CaFile(PathBuf),
    Insecure,
    SystemRoots,
}

impl Trust {
    /// At most one choice per level; `names` are the level's spellings of the three.
    fn one_of(
        fingerprint: Option<String>,
        ca_file: Option<PathBuf>,
        insecure: bool,
        names: &str,
    ) -> anyhow::Result<Option<Trust>> {
        let chosen = [fingerprint.is_some(), ca_file.is_some(), insecure]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen > 1 {
            return Err(crate::fail::usage(format!("give at most one of {names}")));
        }
        Ok(fingerprint
            .map(Trust::Fingerprint)
            .or(ca_file.map(Trust::CaFile))
            .or(insecure.then_some(Trust::Insecure)))
    }

    fn options(&self) -> anyhow::Result<TlsOptions> {
        Ok(match self {
            Trust::Fingerprint(fp) => TlsOptions::fingerprint(fp)?,
            Trust::CaFile(ca) => TlsOptions::ca_file(ca),
            Trust::Insecure => {
                tracing::warn!("--insecure: the server's certificate is not checked");
                TlsOptions::insecure()
            }
            Trust::SystemRoots => TlsOptions::system_roots(),
        })
    }
}

/// Who logs in, before the secret is read.
#[derive(Debug, Clone)]
enum Identity {
    /// `PVE_TOKEN`: id and secret together.
    Token(String),
    /// The config cluster's `token_id`: the secret is the cluster's.
    ClusterToken(String),
    /// Password login.
    User(String),
}

/// The resolved host, its trust, and whether it is the config cluster's own host.
struct Endpoint {
    host: Sourced<String>,
    trust: Sourced<Trust>,
    bound: bool,
    chosen: Option<Chosen>,
}

/// The config cluster in use, by name.
struct Chosen {
    name: String,
    cluster: Cluster,
}

/// Whether two host spellings name the same API (`pve1` = `https://pve1:8006`).
fn same_host(a: &str, b: &str) -> bool {
    match (pve_auth::base_uri(a), pve_auth::base_uri(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `true` if the host's authority holds `user[:password]@`.
fn has_userinfo(host: &str) -> bool {
    let rest = host.split_once("://").map_or(host, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.contains('@')
}

fn shown(host: &str) -> String {
    if has_userinfo(host) {
        return "(a host with user info, not shown)".to_owned();
    }
    // The port is always written out: a URL leaves out 443 (https) or 80 (http), and a
    // host without a port means 8006 to labctl, so a copied `https://pve` would be wrong.
    pve_auth::base_uri(host).map_or_else(
        |_| host.to_owned(),
        |u| {
            let port = u.port_or_known_default().unwrap_or(pve_auth::DEFAULT_PORT);
            let authority = u.host_str().unwrap_or_default();
            format!("{}://{authority}:{port}", u.scheme())
        },
    )
}

impl Connection {
    /// The config cluster: --cluster, else LABCTL_CLUSTER, else the file's default.
    fn chosen_cluster(&self) -> anyhow::Result<Option<Chosen>> {
        let name = precedence::pick([
            (Origin::flag("--cluster"), self.cluster.clone()),
            precedence::env("LABCTL_CLUSTER"),
        ]);
        Ok(
            crate::config::cluster(name.as_ref().map(|n| n.value.as_str()))?
                .map(|(name, cluster)| Chosen { name, cluster }),
        )
    }

    /// The host and how to trust it, each by the one precedence rule.
    fn endpoint_resolved(&self) -> anyhow::Result<Endpoint> {
        let chosen = self.chosen_cluster()?;
        let cl = chosen.as_ref();
        let cluster_field = |field: &str| Origin::cluster(cl.map_or("", |c| &c.name), field);

        let host = precedence::pick([
            (Origin::flag("--host"), self.host.clone()),
            precedence::env("PVE_HOST"),
            (
                cluster_field("host"),
                cl.and_then(|c| c.cluster.host.clone()),
            ),
        ])
        .ok_or_else(|| {
            crate::fail::usage(
                "no Proxmox VE host given: set --host or PVE_HOST (e.g. pve1 or \
                 https://pve1:8006) or a cluster of the config file with --cluster; to \
                 try labctl without a cluster run `labctl demo`",
            )
        })?;
        if has_userinfo(&host.value) {
            return Err(crate::fail::usage(format!(
                "the host (from {}) carries a user name or password before '@': labctl never \
                 takes credentials in a URL (others could read them in the process list or \
                 shell history). Give the host alone (e.g. https://pve1:8006), the user with \
                 --user / PVE_USER and the password with PVE_PASSWORD (or the prompt)",
                host.from
            )));
        }
        // What the config cluster holds for its host (trust, secrets) goes to that host only.
        let cluster_host = cl.and_then(|c| c.cluster.host.as_deref());
        let bound = cluster_host.is_some_and(|h| same_host(h, &host.value));
        let trust = {
            let flag = Trust::one_of(
                self.fingerprint.clone(),
                self.ca_file.clone(),
                self.insecure,
                "--fingerprint, --ca-file and --insecure",
            )?;
            let env = Trust::one_of(
                precedence::env("PVE_FINGERPRINT").1,
                precedence::env("PVE_CA_FILE").1.map(PathBuf::from),
                false,
                "PVE_FINGERPRINT and PVE_CA_FILE (unset one)",
            )?;
            let cluster = match cl {
                Some(c) => Trust::one_of(
                    c.cluster.fingerprint.clone(),
                    c.cluster.ca_file.clone(),
                    c.cluster.insecure,
                    &format!(
                        "fingerprint, ca_file and insecure in cluster {:?} of the config file",
                        c.name
                    ),
                )?,
                None => None,
            };
            let cluster = match cluster {
                Some(_) if !bound => {
                    tracing::warn!(
                        "the certificate choice of cluster {:?} is for its host, not for {} \
                         (from {}); not used",
                        cl.map_or("", |c| c.name.as_str()),
                        shown(&host.value),
                        host.from
                    );
                    None
                }
                other => other,
            };
            precedence::pick([
                (Origin::flag("--fingerprint/--ca-file/--insecure"), flag),
                (Origin::env("PVE_FINGERPRINT/PVE_CA_FILE"), env),
                (cluster_field("fingerprint/ca_file/insecure"), cluster),
                (Origin::default(), Some(Trust::SystemRoots)),
            ])
            .unwrap_or(Sourced {
                value: Trust::SystemRoots,
                from: Origin::default(),
            })
        };
        let plain = pve_auth::base_uri(&host.value).is_ok_and(|u| u.scheme() == "http");
        if plain && matches!(trust.value, Trust::Fingerprint(_) | Trust::CaFile(_)) {
            return Err(crate::fail::usage(format!(
                "the host {} (from {}) is plain http://, but {} chooses a certificate to \
                 trust: over http nothing would be checked and the secret would travel in \
                 clear text. Use https:// (or drop the certificate choice for a local \
                 simulator)",
                shown(&host.value),
                host.from,
                trust.from
            )));
        }

        Ok(Endpoint {
            host,
            trust,
            bound,
            chosen,
        })
    }

    /// The resolved host and TLS options (for logins as other users on the same host).
    pub(crate) fn endpoint(&self) -> anyhow::Result<(String, TlsOptions)> {
        let e = self.endpoint_resolved()?;
        Ok((e.host.value, e.trust.value.options()?))
    }

    /// Builds a client: every setting by the one precedence rule (flag > environment >
    /// config cluster > default), and a secret of the config cluster only for its own host.
    pub fn client(&self) -> anyhow::Result<PveClient> {
        let Endpoint {
            host,
            trust,
            bound,
            chosen,
        } = self.endpoint_resolved()?;
        let cl = chosen.as_ref();
        let cluster_field = |field: &str| Origin::cluster(cl.map_or("", |c| &c.name), field);
        let cluster_host = cl.and_then(|c| c.cluster.host.as_deref());
        let refuse_secret = |what: &str| -> anyhow::Error {
            let name = cl.map_or("", |c| c.name.as_str());
            crate::fail::usage(match cluster_host {
                Some(h) => format!(
                    "refusing to send {what} of cluster {name:?} to {} (from {}): it belongs \
                     to the cluster's host {}. Give that host's own secret (PVE_PASSWORD or \
                     PVE_TOKEN), pick its cluster with --cluster, or {} {} to use cluster \
                     {name:?}",
                    shown(&host.value),
                    host.from,
                    shown(h),
                    if host.from.level == precedence::Level::Env {
                        "unset"
                    } else {
                        "drop"
                    },
                    host.from,
                ),
                None => format!(
                    "refusing to send {what} of cluster {name:?} to {} (from {}): the cluster \
                     names no host, so its secret belongs to none; add `host = …` to the \
                     cluster or give PVE_PASSWORD / PVE_TOKEN",
                    shown(&host.value),
                    host.from,
                ),
            })
        };

        let env_token = precedence::env_secret("PVE_TOKEN")?;
        let identity = precedence::pick([
            (
                Origin::flag("--user"),
                self.user.clone().map(Identity::User),
            ),
            (Origin::env("PVE_TOKEN"), env_token.map(Identity::Token)),
            (
                Origin::env("PVE_USER"),
                precedence::env("PVE_USER").1.map(Identity::User),
            ),
            (
                cluster_field("token_id"),
                cl.and_then(|c| c.cluster.token_id.clone())
                    .map(Identity::ClusterToken),
            ),
            (
                cluster_field("user"),
                cl.and_then(|c| c.cluster.user.clone()).map(Identity::User),
            ),
        ])
        .ok_or_else(|| {
            crate::fail::usage(
                "no credentials: set PVE_TOKEN=USER@REALM!TOKENID=SECRET, or --user / \
                 PVE_USER with PVE_PASSWORD (or answer the password prompt)",
            )
        })?;

        let builder = PveClient::builder(&host.value).tls(trust.value.options()?);
        let builder = match identity.value {
            Identity::Token(token) => {
                let token: ApiToken = token
                    .parse()
                    .context("PVE_TOKEN must look like USER@REALM!TOKENID=SECRET")?;
                builder.token(token)
            }
            Identity::ClusterToken(id) => {
                if !bound {
                    return Err(refuse_secret(&format!("the secret of token {id}")));
                }
                let file = cl.and_then(|c| c.cluster.token_secret_file.clone());
                let secret = match (precedence::env_secret("PVE_TOKEN_SECRET")?, file) {
                    (Some(s), _) => s,
                    (None, Some(f)) => crate::config::read_secret_file(&f)?,
                    (None, None) => {
                        return Err(crate::fail::usage(format!(
                            "the cluster's token {id} needs its secret: set PVE_TOKEN_SECRET or \
                             token_secret_file in the config"
                        )))
                    }
                };
                let token: ApiToken = format!("{id}={secret}").parse().map_err(|_| {
                    crate::fail::usage(format!(
                        "token_id {id:?} in the config must look like USER@REALM!TOKENID"
                    ))
                })?;
                builder.token(token)
            }
            Identity::User(user) => {
                // The cluster's password file is its user's, on its host.
                let file = cl
                    .filter(|c| c.cluster.user.as_deref() == Some(user.as_str()))
                    .and_then(|c| c.cluster.password_file.clone());
                let pw = match (precedence::env_secret("PVE_PASSWORD")?, file) {
                    (Some(p), _) => Secret::new(p),
                    (None, Some(f)) => {
                        if !bound {
                            return Err(refuse_secret(&format!(
                                "the password of {user} (password_file)"
                            )));
                        }
                        Secret::new(crate::config::read_secret_file(&f)?)
                    }
                    (None, None) => password(&user)?,
                };
                builder.password(&user, pw)
            }
        };
        Ok(builder.build()?)
    }

    /// The lab backend over [`Connection::client`].
    pub fn backend(&self) -> anyhow::Result<ProxmoxLab> {
        let timing = timing()?;
        let client = self.client()?;
        let key = crate::lab::lock_key(client.base_url().as_str());
        let hv = ProxmoxLab::with_timing(client, timing);
        if let Some(dir) = sdn_journal_dir() {
            hv.set_sdn_journal(dir.join(key));
        }
        Ok(hv)
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
        // Set but empty counts as unset, like every other non-secret variable.
        Ok(v) if v.trim().is_empty() => Ok(None),
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
    if let Some(p) = precedence::env_secret(var)? {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::fail::usage(format!(
            "no password for {user}: set {var} (stdin is not a terminal to prompt on)"
        )));
    }
    let p = rpassword::prompt_password(prompt).context("reading the password")?;
    if p.trim().is_empty() {
        return Err(crate::fail::usage(format!(
            "empty password for {user}: nothing was sent"
        )));
    }
    Ok(p)
}

/// Where labctl writes down the token of an SDN lock it holds, per cluster
/// (`$XDG_STATE_HOME/labctl/sdn-locks`, else `~/.local/state/labctl/sdn-locks`): state
/// that must outlive a reboot of this machine, since the cluster keeps the lock.
fn sdn_journal_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(".local").join("state"))
        })?;
    Some(base.join("labctl").join("sdn-locks"))
}

#[cfg(test)]
mod shown_tests {
    use super::shown;

    #[test]
    fn a_shown_host_always_writes_its_port() {
        assert_eq!(shown("pve1"), "https://pve1:8006");
        assert_eq!(shown("pve1:443"), "https://pve1:443");
        assert_eq!(shown("http://pve1:80/api2/json"), "http://pve1:80");
        assert_eq!(shown("[2001:db8::5]:8443"), "https://[2001:db8::5]:8443");
        assert_eq!(shown("a@pve1"), "(a host with user info, not shown)");
    }
}
