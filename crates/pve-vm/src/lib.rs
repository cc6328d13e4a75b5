//! `pve-vm`: the lifecycle of Proxmox VE guests, QEMU VMs and LXC containers alike.
//!
//! This crate owns guest ids ([`VmId`], free-id search and in-process reservations), node
//! lookup ([`VmApi::guest`], cached from `/cluster/resources`), status, start, stop,
//! graceful shutdown, reboot, configuration (digest-aware updates, [`NetDevice`] property
//! strings, tags, pools), cloning with hostname validation and race handling
//! ([`CloneOptions`]), templates, destroy with safety checks, guest-agent readiness, and
//! task (UPID) waiting with one polling helper ([`PollPolicy`]) that `pve-net` reuses,
//! snapshots ([`Guest::create_snapshot`], [`Guest::rollback`]), vzdump backups
//! ([`Guest::vzdump`]) and a NIC's link state ([`Guest::set_link`], MAC kept).
//! It talks to PVE through [`pve_auth::PveClient`].
//!
//! ```no_run
//! use std::time::Duration;
//! use pve_auth::{PveClient, Secret};
//! use pve_vm::{CloneOptions, DestroyOptions, VmApi, VmId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = PveClient::builder("pve1").password("root@pam", Secret::new("secret")).build()?;
//! let vms = VmApi::new(client);
//! let template = vms.guest(VmId::new(9000)?).await?;
//! let student = template
//!     .clone_to(CloneOptions { hostname: Some("stud-01".into()), ..CloneOptions::default() })
//!     .await?;
//! student.start().await?;
//! student.wait_agent(Duration::from_secs(120)).await?;
//! student.destroy(DestroyOptions { stop_first: true, purge: true, ..Default::default() }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Example program
//!
//! `examples/lifecycle.rs TEMPLATE HOSTNAME` clones, starts, waits for the agent, prints the
//! addresses, stops and destroys, timing each step. Against the simulator:
//!
//! ```text
//! PVE_SIM_PASSWORD=secret cargo run -p pve-sim -- --plain-http --time-scale 0.05
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-vm --example lifecycle -- 9000 stud-01
//! ```
//!
//! (9001 is the simulator's LXC template.) `tests/examples.rs` runs the same binary against
//! an embedded simulator, so `cargo test -p pve-vm` checks this.

mod api;
mod clone;
mod config;
mod error;
mod guest;
mod ids;
mod netdev;
mod poll;
mod snapshot;
mod timing;
mod upid;

pub use api::{GuestSummary, TaskStatus, VmApi};
pub use clone::{CloneMode, CloneOptions, NewId};
pub use config::{normalize_tags, ConfigUpdate, GuestConfig};
pub use error::{Error, Result};
pub use guest::{DestroyOptions, Guest, GuestStatus, RunState, ShutdownOptions};
pub use ids::{validate_hostname, GuestKind, Invalid, NodeName, PoolId, VmId};
pub use netdev::NetDevice;
pub use poll::{Poll, PollPolicy};
pub use snapshot::{
    Backup, BackupMode, LinkChange, Snapshot, SnapshotName, SnapshotOptions, VzdumpOptions,
};
pub use timing::{Backoff, Timing};
pub use upid::Upid;

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
