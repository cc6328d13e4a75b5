//! `$XDG_CONFIG_HOME/labctl/config.toml`: named clusters, like kubectl contexts.
//!
//! ```toml
//! # ~/.config/labctl/config.toml
//! default = "sim"                       # used when neither --cluster nor LABCTL_CLUSTER is set
//!
//! [clusters.sim]
//! host = "http://127.0.0.1:8006"
//! user = "root@pam"
//! password_file = "/home/me/.config/labctl/sim.password"   # must be readable by you only
//!
//! [clusters.school]
//! host = "https://pve1.school.example:8006"
//! token_id = "lab@pve!runner"           # the secret: PVE_TOKEN_SECRET or token_secret_file
//! token_secret_file = "/home/me/.config/labctl/school.token"
//! fingerprint = "AA:BB:…"               # or ca_file = "/etc/labctl/pve-root-ca.pem"
//! ```
//!
//! Flags and `PVE_*` variables win over the file (see [`crate::precedence`]); what the file
//! says about trust and secrets belongs to the cluster's `host` and is never used for another. Secrets are never in the file itself: they
//! come from the environment, a prompt, or a file the config names, which labctl refuses to
//! read unless only its owner (you) may read it (`chmod 600`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster used without `--cluster`.
    pub default: Option<String>,
    /// The clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
}

/// One cluster.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `pve1`, `https://pve1:8006`, `http://127.0.0.1:8006`.
    pub host: Option<String>,
    /// User for password login.
    pub user: Option<String>,
    /// API token id `USER@REALM!NAME` (the secret from `PVE_TOKEN_SECRET` or
    /// `token_secret_file`).
    pub token_id: Option<String>,
    /// Pinned certificate fingerprint.
    pub fingerprint: Option<String>,
    /// CA certificate file (PEM).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate checks (throw-away setups only).
    #[serde(default)]
    pub insecure: bool,
    /// File holding the password (owner-only).
    pub password_file: Option<PathBuf>,
    /// File holding the token secret (owner-only).
    pub token_secret_file: Option<PathBuf>,
}

/// Where the config file is: `$XDG_CONFIG_HOME/labctl/config.toml`, else
/// `$HOME/.config/labctl/config.toml`.
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("labctl").join("config.toml"))
}

/// Reads the config file; a missing file is an empty config.
pub fn load() -> anyhow::Result<(Option<PathBuf>, Config)> {
    let Some(path) = path() else {
        return Ok((None, Config::default()));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let config: Config = toml::from_str(&text)
                .map_err(|e| crate::fail::usage(format!("config file {}: {e}", path.display())))?;
            check_not_writable_by_others(&path, &config)?;
            Ok((Some(path), config))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Some(path), Config::default())),
        Err(e) => Err(crate::fail::usage(format!(
            "reading the config file {}: {e}",
            path.display()
        ))),
    }
}

/// The cluster named by `--cluster`/`LABCTL_CLUSTER`, else the file's default, else none;
/// with its name.
pub fn cluster(name: Option<&str>) -> anyhow::Result<Option<(String, Cluster)>> {
    let (path, config) = load()?;
    let name = match name {
        Some(n) => n.to_owned(),
        None => match &config.default {
            Some(d) => d.clone(),
            None => return Ok(None),
        },
    };
    match config.clusters.get(&name) {
        Some(c) => Ok(Some((name, c.clone()))),
        None => {
            let known: Vec<&str> = config.clusters.keys().map(String::as_str).collect();
            Err(crate::fail::usage(format!(
                "unknown cluster {name:?}: {} names {}",
                path.map_or_else(|| "no config file".to_owned(), |p| p.display().to_string()),
                if known.is_empty() {
                    "no clusters".to_owned()
                } else {
                    known.join(", ")
                }
            )))
        }
    }
}

/// Reads a secret file after checking that only its owner, who must be the user running
/// labctl, may read or write it. The value is the first line, without the line break.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        crate::fail::usage(format!("reading the secret file {}: {e}", path.display()))
    })?;
    let secret = text.lines().next().unwrap_or_default().to_owned();
    if secret.trim().is_empty() {
        return Err(crate::fail::usage(format!(
            "the secret file {} is empty (its first line is the secret): nothing was sent",
            path.display()
        )));
    }
    Ok(secret)
}

/// A config file that names secret files decides where those secrets are sent (its
/// clusters' hosts): refused (exit 2) if others may write it.
#[cfg(unix)]
fn check_not_writable_by_others(path: &Path, config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let names_secrets = config
        .clusters
        .values()
        .any(|c| c.password_file.is_some() || c.token_secret_file.is_some());
    if !names_secrets {
        return Ok(());
    }
    let mode = std::fs::metadata(path)
        .map_err(|e| {
            crate::fail::usage(format!("reading the config file {}: {e}", path.display()))
        })?
        .mode()
        & 0o777;
    if mode & 0o022 != 0 {
        return Err(crate::fail::usage(format!(
            "refusing the config file {}: its mode is {mode:03o}, so others may change it, and \
             it names secret files (password_file/token_secret_file) whose secrets go to the \
             hosts it lists; make it writable by you only (chmod 600 {} or chmod 644 {})",
            path.display(),
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_not_writable_by_others(_path: &Path, _config: &Config) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn check_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        crate::fail::usage(format!("reading the secret file {}: {e}", path.display()))
    })?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        // A file-mode problem is the user's setup, not a refused login: exit 2.
        return Err(crate::fail::with_code(
            crate::fail::USAGE,
            format!(
                "refusing the secret file {}: its mode is {mode:03o}, so others may read it; \
                 make it readable by you only (chmod 600 {})",
                path.display(),
                path.display()
            ),
        ));
    }
    // On Linux /proc/self belongs to the process's user.
    if let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid()) {
        if meta.uid() != me {
            return Err(crate::fail::with_code(
                crate::fail::USAGE,
                format!(
                    "refusing the secret file {}: it belongs to uid {}, not to you (uid {me})",
                    path.display(),
                    meta.uid()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(path: &Path) -> anyhow::Result<()> {
    anyhow::bail!(
        "secret files ({}) are only supported on Unix, where their permissions can be checked; \
         use the environment instead",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret_file(&f).unwrap_err().to_string();
        assert!(e.contains("mode is 644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&f).unwrap(), "s3cret");
    }

    #[test]
    fn the_file_format_is_strict() {
        let c: Config =
            toml::from_str("default = \"a\"\n[clusters.a]\nhost = \"pve1\"\nuser = \"root@pam\"\n")
                .unwrap();
        assert_eq!(c.clusters["a"].host.as_deref(), Some("pve1"));
        let e = toml::from_str::<Config>("[clusters.a]\npassword = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
