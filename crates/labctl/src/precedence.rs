//! The one precedence rule for every setting:
//!
//! **flag > the lab file named on the command line > environment > config cluster > default.**
//!
//! Every setting (host, user and credentials, TLS choice, lab name, each lab-file field, a
//! classroom's server) is resolved by [`pick`] from the candidates its sources offer; no
//! setting has a rule of its own. A value keeps its [`Origin`], so messages can say where it
//! came from ("the host http://x (from PVE_HOST)").
//!
//! Values from the environment are read here ([`env()`], [`env_secret`]), not by clap, so that
//! a flag and its variable stay two levels: `LABCTL_LAB=a labctl lab down b.toml` is lab `b`.

use std::fmt;

/// Where a value may come from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A command-line flag.
    Flag,
    /// The lab file named on the command line.
    LabFile,
    /// An environment variable.
    Env,
    /// The config file's cluster.
    Cluster,
    /// Built in.
    Default,
}

/// A value's source: its level and the exact flag, variable, file or cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The level.
    pub level: Level,
    /// `--host`, `PVE_HOST`, `lab file exam.toml`, `cluster "school"`, `default`.
    pub name: String,
}

impl Origin {
    /// A flag, e.g. `--host`.
    pub fn flag(name: &str) -> Origin {
        Origin {
            level: Level::Flag,
            name: name.to_owned(),
        }
    }
    /// A field of the lab file.
    pub fn file(field: &str) -> Origin {
        Origin {
            level: Level::LabFile,
            name: format!("`{field}` of the lab file"),
        }
    }
    /// An environment variable.
    pub fn env(var: &str) -> Origin {
        Origin {
            level: Level::Env,
            name: var.to_owned(),
        }
    }
    /// A field of a config cluster.
    pub fn cluster(cluster: &str, field: &str) -> Origin {
        Origin {
            level: Level::Cluster,
            name: format!("`{field}` of cluster {cluster:?} in the config file"),
        }
    }
    /// The built-in default.
    pub fn default() -> Origin {
        Origin {
            level: Level::Default,
            name: "the default".to_owned(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub from: Origin,
}

/// The value of the strongest source that has one: the whole precedence rule. Within one
/// level the first candidate given wins (`PVE_TOKEN` before `PVE_USER`).
pub fn pick<T>(candidates: impl IntoIterator<Item = (Origin, Option<T>)>) -> Option<Sourced<T>> {
    let mut best: Option<Sourced<T>> = None;
    for (from, value) in candidates {
        let Some(value) = value else { continue };
        if best.as_ref().is_none_or(|b| from.level < b.from.level) {
            best = Some(Sourced { value, from });
        }
    }
    best
}

/// A setting's environment variable; unset and empty are the same (`PVE_HOST= labctl …`
/// clears it for one command, as shells are used to).
pub fn env(var: &'static str) -> (Origin, Option<String>) {
    (
        Origin::env(var),
        std::env::var(var).ok().filter(|v| !v.trim().is_empty()),
    )
}

/// A secret's environment variable: unset is `None`, but set and empty (or blank) is refused
/// (exit 2): an empty secret is a mistake, never a password.
pub fn env_secret(var: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Err(crate::fail::usage(format!(
            "{var} is set but empty: set it to the secret, or unset it (`unset {var}`)"
        ))),
        Ok(v) => Ok(Some(v)),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_source_wins_whatever_the_order() {
        let got = pick([
            (Origin::cluster("c", "host"), Some("c")),
            (Origin::default(), Some("d")),
            (Origin::flag("--host"), None),
            (Origin::env("PVE_HOST"), Some("e")),
            (Origin::file("name"), None),
        ])
        .unwrap();
        assert_eq!(got.value, "e");
        assert_eq!(got.from.name, "PVE_HOST");
        assert!(pick::<u8>([(Origin::flag("--x"), None)]).is_none());
        let got = pick([
            (Origin::file("name"), Some(1)),
            (Origin::flag("-n"), Some(2)),
        ])
        .unwrap();
        assert_eq!(got.value, 2);
    }
}
