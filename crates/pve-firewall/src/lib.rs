//! `pve-firewall`: the Proxmox VE firewall, from single API calls to a reversible,
//! verified student isolation.
//!
//! This crate owns:
//! - the primitives ([`Firewall`]) at every level a [`Scope`] names — datacenter, node,
//!   QEMU/LXC guest, security group: options, rules (list, create, read, update, move,
//!   delete, with `digest`), IP sets and entries, security groups, aliases;
//! - a typed [`Rule`] built from checked values ([`AddrSpec`], [`PortSpec`], [`Proto`],
//!   [`GroupName`], …) and validated for its level before it is sent, with errors that name
//!   the field, the value and what is allowed;
//! - [`isolation`]: `isolate` / `unisolate` / `verify` of a lab's students following the
//!   reference design (Part B.10), idempotent in both directions, restoring prior values
//!   recorded on the guests themselves.
//!
//! Guest ids, node names, guest lookup and NIC editing come from `pve-vm`; HTTP from
//! `pve-auth`.
//!
//! ```no_run
//! use pve_auth::{ApiToken, PveClient};
//! use pve_firewall::isolation::{Isolation, IsolationOptions, LabName, Students};
//! use pve_firewall::{Firewall, Rule, Scope};
//! use pve_vm::VmId;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let token: ApiToken = "lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666".parse()?;
//! let client = PveClient::builder("https://pve1:8006").token(token).build()?;
//!
//! // A primitive: allow SSH to the hosts from the admin network.
//! let fw = Firewall::new(client.clone());
//! let rule = Rule::accept_in().source("10.0.99.0/24".parse()?).proto("tcp".parse()?).dport("22".parse()?);
//! fw.create_rule(&Scope::Cluster, &rule).await?;
//!
//! // The fence: students 201..=210 reach only the teacher at 10.10.0.10.
//! let iso = Isolation::new(client);
//! let students = Students::Range { first: VmId::new(201)?, last: VmId::new(210)? };
//! let allowed = ["10.10.0.10".parse()?];
//! let mut options = IsolationOptions::new(LabName::new("exam1")?);
//! options.management = vec!["10.0.99.0/24".parse()?];
//! let report = iso.isolate(&students, &allowed, &options).await?;
//! println!("{report}");
//! let check = iso.verify(&students, &allowed, &options).await?;
//! assert!(check.is_isolated(), "{check}");
//! iso.unisolate(&students, &options).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Example program
//!
//! `examples/isolate.rs FIRST LAST ALLOWED_IP [--undo]` fences a range of students, verifies
//! and prints the changes; `--undo` restores. Against the simulator (teacher 100 at
//! 10.10.0.1, guests 200 and 201 as students):
//!
//! ```text
//! PVE_SIM_PASSWORD=secret cargo run -p pve-sim -- --plain-http --time-scale 0.05
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-firewall --example isolate -- 200 201 10.10.0.1
//! ```
//!
//! `tests/examples.rs` runs the same binary (isolate, re-run, undo) against an embedded
//! simulator, so `cargo test -p pve-firewall` checks this.

mod api;
mod error;
pub mod isolation;
mod rule;
mod scope;
mod spec;

pub use api::{
    AliasEntry, Firewall, GroupInfo, IpSetEntry, IpSetInfo, Options, OptionsUpdate, Policy,
};
pub use error::{Error, Result};
pub use lab_types::LabName;
/// The client and the guest id this crate's API takes, re-exported so a user needs no
/// other crate at a matching version for them.
pub use pve_auth::PveClient;
pub use pve_vm::VmId;
pub use rule::{Action, Direction, Rule, RuleEntry, RuleKind, RuleLevel};
pub use scope::Scope;
pub use spec::{
    AddrSpec, AliasName, Cidr, GroupName, Iface, IpSetName, LogLevel, PortSpec, Proto,
    MAX_ADDR_SPEC, MAX_PORT_NUMBERS,
};

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
