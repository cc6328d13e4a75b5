//! [`NetApi`]: the IO side — reading interfaces, waiting for an address, host names.

use std::net::Ipv4Addr;
use std::time::Duration;

use pve_auth::Params;
use pve_vm::{Guest, GuestKind, Poll, PollPolicy};

use crate::error::{Error, Result};
use crate::iface::{
    agent_result, choose_primary_ipv4, parse_agent_interfaces, parse_lxc_interfaces, AgentResult,
    Interface,
};

/// What [`NetApi::ip_or_hostname`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddress {
    /// The primary IPv4 address.
    Ip(Ipv4Addr),
    /// No usable IPv4 address; the guest's host name instead.
    Hostname(String),
}

impl std::fmt::Display for HostAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostAddress::Ip(ip) => write!(f, "{ip}"),
            HostAddress::Hostname(h) => f.write_str(h),
        }
    }
}

/// IP discovery for guests of a [`pve_vm::VmApi`].
///
/// Polling uses `pve-vm`'s [`PollPolicy`]: by default the guest's
/// [`Timing::agent_poll`](pve_vm::Timing) (agent pings at least 1 s apart).
#[derive(Debug, Clone, Default)]
pub struct NetApi {
    poll: Option<PollPolicy>,
}

impl NetApi {
    /// With the guests' own polling settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// With an explicit polling policy for [`NetApi::wait_for_ip`].
    #[must_use]
    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.poll = Some(poll);
        self
    }

    /// The interfaces as the guest reports them: QEMU through the guest agent
    /// (`agent/network-get-interfaces`), LXC through the host (`/interfaces`).
    ///
    /// Errors: the agent's own rejection ([`Error::AgentCommand`]), a stopped container
    /// ([`Error::NotRunning`]), an agent that is not (yet) running or not configured
    /// ([`Error::Vm`]).
    pub async fn interfaces(&self, guest: &Guest) -> Result<Vec<Interface>> {
        match guest.kind() {
            GuestKind::Qemu => {
                let path = guest.path(&["agent", "network-get-interfaces"]);
                let data = agent_get(guest, &path).await?;
                parse_agent_interfaces(&path, guest.vmid(), data)
            }
            GuestKind::Lxc => {
                let path = guest.path(&["interfaces"]);
                let data: serde_json::Value = guest.api().read(&path, &Params::new()).await?;
                parse_lxc_interfaces(&path, guest.vmid(), data)
            }
        }
    }

    /// The MACs of the guest's configured NICs, `net0` first.
    async fn own_macs(&self, guest: &Guest) -> Result<Vec<String>> {
        let config = guest.config().await?;
        Ok(config
            .nics()
            .iter()
            .filter_map(|(_, nic)| nic.mac().map(str::to_ascii_lowercase))
            .collect())
    }

    /// The primary IPv4 address now, `None` if the guest has none yet (see
    /// [`choose_primary_ipv4`]; the guest's own NICs are preferred).
    pub async fn primary_ipv4(&self, guest: &Guest) -> Result<Option<Ipv4Addr>> {
        let macs = self.own_macs(guest).await?;
        let interfaces = self.interfaces(guest).await?;
        Ok(choose_primary_ipv4(&interfaces, &macs))
    }

    /// Waits until the guest has a primary IPv4 address. Keeps waiting while the guest or
    /// its agent is starting, the container is stopped, only link-local addresses exist, or a
    /// request fails transiently; fails at once if no agent is configured or the agent
    /// rejects the command.
    pub async fn wait_for_ip(&self, guest: &Guest, timeout: Duration) -> Result<Ipv4Addr> {
        let poll = self.poll.unwrap_or(guest.api().timing().agent_poll);
        let macs = self.own_macs(guest).await?;
        let what = format!(
            "an IPv4 address of {} {}",
            guest.kind().as_str(),
            guest.vmid()
        );
        poll.wait(&what, timeout, || async {
            match self.interfaces(guest).await {
                Ok(list) => Ok(match choose_primary_ipv4(&list, &macs) {
                    Some(ip) => Poll::Ready(ip),
                    None => Poll::Pending(Some("no usable IPv4 address yet".to_owned())),
                }),
                Err(e) if e.is_pending() => Ok(Poll::Pending(Some(e.to_string()))),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// The guest's host name: QEMU from the agent (`agent/get-host-name`), LXC from its
    /// config (`hostname`).
    pub async fn hostname(&self, guest: &Guest) -> Result<String> {
        match guest.kind() {
            GuestKind::Qemu => {
                let path = guest.path(&["agent", "get-host-name"]);
                let data = agent_get(guest, &path).await?;
                match agent_result(&path, data)? {
                    AgentResult::Value(v) => v
                        .get("host-name")
                        .and_then(|h| h.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| Error::Unexpected {
                            what: path.clone(),
                            why: "no `host-name` in the result".to_owned(),
                        }),
                    AgentResult::Error(e) => Err(Error::AgentCommand {
                        vmid: guest.vmid(),
                        command: "get-host-name",
                        class: e.class,
                        desc: e.desc,
                    }),
                }
            }
            GuestKind::Lxc => {
                guest
                    .config()
                    .await?
                    .get("hostname")
                    .ok_or_else(|| Error::Unexpected {
                        what: guest.path(&["config"]),
                        why: "the container config has no hostname".to_owned(),
                    })
            }
        }
    }

    /// The seed's answer: the primary IPv4 address if there is one, else the host name.
    pub async fn ip_or_hostname(&self, guest: &Guest) -> Result<HostAddress> {
        let ip = match self.primary_ipv4(guest).await {
            Ok(ip) => ip,
            // The agent cannot list interfaces (old agent, restricted command): fall back.
            Err(Error::AgentCommand { .. }) => None,
            Err(e) => return Err(e),
        };
        match ip {
            Some(ip) => Ok(HostAddress::Ip(ip)),
            None => Ok(HostAddress::Hostname(self.hostname(guest).await?)),
        }
    }
}

/// `GET` an agent command, mapping `No QEMU guest agent configured` to
/// [`pve_vm::Error::AgentNotConfigured`].
async fn agent_get(guest: &Guest, path: &str) -> Result<serde_json::Value> {
    guest
        .api()
        .client()
        .get(path, &Params::new())
        .await
        .map_err(|e| pve_vm::Error::from(e).for_agent_of(guest.vmid()).into())
}
