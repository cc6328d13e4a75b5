//! What `agent/info`, `agent/get-osinfo` and `agent/get-users` answer (qemu-ga's QAPI
//! types, fields lenient and optional as newer or older agents send them).

use serde::Deserialize;

/// `agent/info`: the agent's version and its commands.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AgentInfo {
    /// qemu-ga's version.
    #[serde(default, deserialize_with = "pve_auth::perl::string")]
    pub version: String,
    /// The commands the agent knows.
    #[serde(default, rename = "supported_commands")]
    pub supported_commands: Vec<AgentCommand>,
}

impl AgentInfo {
    /// `true` when the agent knows `name` (e.g. `guest-exec`) and it is enabled.
    pub fn supports(&self, name: &str) -> bool {
        self.supported_commands
            .iter()
            .any(|c| c.name == name && c.enabled)
    }
}

/// One command of [`AgentInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AgentCommand {
    /// The QMP name, e.g. `guest-exec`.
    #[serde(deserialize_with = "pve_auth::perl::string")]
    pub name: String,
    /// Enabled in the guest's agent configuration.
    #[serde(default, deserialize_with = "pve_auth::perl::bool")]
    pub enabled: bool,
}

/// `agent/get-osinfo`: the guest's operating system.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[non_exhaustive]
pub struct OsInfo {
    /// e.g. `debian`, `mswindows`.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub id: Option<String>,
    /// e.g. `Debian GNU/Linux`.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub name: Option<String>,
    /// e.g. `Debian GNU/Linux 12 (bookworm)`.
    #[serde(
        default,
        rename = "pretty-name",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub pretty_name: Option<String>,
    /// e.g. `12 (bookworm)`.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub version: Option<String>,
    /// e.g. `12`.
    #[serde(
        default,
        rename = "version-id",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub version_id: Option<String>,
    /// e.g. `6.1.0-18-amd64`.
    #[serde(
        default,
        rename = "kernel-release",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub kernel_release: Option<String>,
    /// e.g. `#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1`.
    #[serde(
        default,
        rename = "kernel-version",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub kernel_version: Option<String>,
    /// e.g. `x86_64`.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub machine: Option<String>,
}

/// One logged-in user of `agent/get-users`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct GuestUser {
    /// The user name.
    #[serde(deserialize_with = "pve_auth::perl::string")]
    pub user: String,
    /// The Windows domain, if any.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub domain: Option<String>,
    /// Login time, seconds since the epoch (fractional).
    #[serde(
        default,
        rename = "login-time",
        deserialize_with = "pve_auth::perl::opt_f64"
    )]
    pub login_time: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qga_shapes_parse() {
        let i: AgentInfo = serde_json::from_str(
            r#"{"version":"8.2.0","supported_commands":[
                {"name":"guest-exec","enabled":true,"success-response":true},
                {"name":"guest-file-write","enabled":false}]}"#,
        )
        .unwrap();
        assert!(i.supports("guest-exec") && !i.supports("guest-file-write"));
        assert!(!i.supports("guest-ping"));
        let o: OsInfo = serde_json::from_str(
            r#"{"id":"debian","pretty-name":"Debian GNU/Linux 12 (bookworm)","version-id":"12","x":1}"#,
        )
        .unwrap();
        assert_eq!(o.version_id.as_deref(), Some("12"));
        assert_eq!(o.machine, None);
        let u: Vec<GuestUser> =
            serde_json::from_str(r#"[{"user":"student","login-time":1700000000.5}]"#).unwrap();
        assert_eq!(u[0].login_time, Some(1_700_000_000.5));
    }
}
