//! `pve-net`: IP discovery for Proxmox VE guests.
//!
//! This crate owns reading a guest's network interfaces — QEMU through the guest agent
//! (`agent/network-get-interfaces`), LXC through the host (`/interfaces`) — into one
//! [`Interface`] type, choosing the primary IPv4 address (skipping loopback and link-local,
//! preferring the guest's own NICs), waiting until one is there ([`NetApi::wait_for_ip`],
//! with `pve-vm`'s polling helper), and the host name as the seed's fallback answer
//! ([`NetApi::ip_or_hostname`]). Guests and their nodes come from [`pve_vm`].
//!
//! ```no_run
//! use std::time::Duration;
//! use pve_auth::{PveClient, Secret};
//! use pve_net::NetApi;
//! use pve_vm::{VmApi, VmId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = PveClient::builder("pve1").password("root@pam", Secret::new("secret")).build()?;
//! let vms = VmApi::new(client);
//! let guest = vms.guest(VmId::new(101)?).await?;
//! let net = NetApi::new();
//! let ip = net.wait_for_ip(&guest, Duration::from_secs(120)).await?;
//! for iface in net.interfaces(&guest).await? {
//!     println!("{} {:?} {:?}", iface.name, iface.mac, iface.addresses);
//! }
//! println!("primary address {ip}");
//! # Ok(())
//! # }
//! ```
//!
//! # Example program
//!
//! `examples/ip.rs VMID` prints a guest's addresses. Against the simulator:
//!
//! ```text
//! PVE_SIM_PASSWORD=secret cargo run -p pve-sim -- --plain-http --time-scale 0.05
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-net --example ip -- 100
//! ```
//!
//! `tests/examples.rs` runs the same binary against an embedded simulator, so
//! `cargo test -p pve-net` checks this.

mod error;
mod iface;
mod net;

pub use error::{Error, Result};
pub use iface::{
    choose_primary_ipv4, parse_agent_interfaces, parse_lxc_interfaces, Address, Interface,
};
pub use net::{HostAddress, NetApi};

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
