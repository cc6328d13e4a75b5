//! `pve-agent`: the QEMU guest agent of Proxmox VE VMs, through PVE's API.
//!
//! This crate owns the `…/qemu/{vmid}/agent/…` calls a grader needs to look inside a guest:
//! [`AgentApi::exec`] (a command as an **argv array**, stdin, a timeout, `exec-status`
//! polled on `pve-vm`'s [`PollPolicy`](pve_vm::PollPolicy), the one-shot result of qemu-ga
//! with a lost answer reported as [`Error::ResultLost`], truncation flags),
//! [`AgentApi::file_read`] / [`AgentApi::file_write`] (binary-safe, PVE's size limits),
//! [`AgentApi::info`], [`AgentApi::osinfo`] and [`AgentApi::users`]. Agent calls hold a
//! pvedaemon worker on the guest's node, so at most [`AgentOptions::per_node`] are in
//! flight per node. Guests come from [`pve_vm::VmApi`].
//!
//! # The argv rule
//!
//! The agent runs no shell: each argument is its own string. `["ip", "-j", "addr"]` works;
//! `["ip -j addr"]` asks for a program named `ip -j addr` (and is refused here before it is
//! sent). For shell syntax run the shell: `["/bin/sh", "-c", "ip -j addr | head"]`.
//!
//! ```no_run
//! use std::time::Duration;
//! use pve_agent::{AgentApi, Exec};
//! use pve_auth::{PveClient, Secret};
//! use pve_vm::{VmApi, VmId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = PveClient::builder("pve1").password("root@pam", Secret::new("secret")).build()?;
//! let vms = VmApi::new(client);
//! let agent = AgentApi::new(vms.clone());
//! let student = vms.guest(VmId::new(5000)?).await?;
//!
//! let out = agent
//!     .exec(&student, &Exec::new(["ip", "-j", "route"]).timeout(Duration::from_secs(10)))
//!     .await?;
//! println!("exit {}: {}", out.code(), out.stdout);
//!
//! let hostname = agent.file_read(&student, "/etc/hostname").await?;
//! println!("{}", String::from_utf8_lossy(&hostname.data));
//! # Ok(())
//! # }
//! ```

mod api;
mod error;
mod exec;
mod info;

pub use api::{
    AgentApi, AgentOptions, FileContent, MAX_FILE_READ, MAX_FILE_WRITE_BINARY,
    MAX_FILE_WRITE_CONTENT, RAW_QUERIES,
};
pub use error::{Error, Result};
pub use exec::{Exec, ExecOutput, ExecStatus, MAX_STDIN};
pub use info::{AgentCommand, AgentInfo, GuestUser, OsInfo};

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
