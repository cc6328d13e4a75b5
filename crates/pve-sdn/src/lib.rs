//! `pve-sdn`: Proxmox VE software-defined networking for labctl.
//!
//! This crate owns the SDN part of the PVE API (`/cluster/sdn`): zones, vnets and their
//! subnets (list, read, create, change, delete), the SDN lock (`POST /cluster/sdn/lock`
//! answers a token every change then carries), and the apply (`PUT /cluster/sdn` with the
//! token and `release-lock=1`), which reloads the network of every node and answers a
//! task (UPID) this crate waits for with `pve-vm`'s task waiting. Listings can be read
//! with `pending=1`: each object as it will be once applied, with its [`PendingState`].
//!
//! An apply reloads networking on every node: batch all changes under one lock and apply
//! once. Vnet ids are at most 8 letters or digits ([`VnetId`]); long names go in the
//! alias. Teardown goes subnets, then the vnet, then one apply.
//!
//! ```no_run
//! use std::time::Duration;
//! use pve_auth::{ApiToken, PveClient};
//! use pve_sdn::{NewSubnet, NewVnet, NewZone, Sdn, VnetId, ZoneId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let token: ApiToken = "lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666".parse()?;
//! let sdn = Sdn::new(PveClient::builder("https://pve1:8006").token(token).build()?);
//!
//! let zone = ZoneId::new("zexam")?;
//! let lock = sdn.lock(false).await?;
//! let work = async {
//!     sdn.create_zone(&NewZone::simple(zone.clone()), Some(&lock)).await?;
//!     for (i, net) in ["10.100.0.0/24", "10.100.1.0/24"].iter().enumerate() {
//!         let vnet = VnetId::new(format!("vexam{i}"))?;
//!         let mut new = NewVnet::new(vnet.clone(), zone.clone());
//!         new.alias = Some(format!("student {i}"));
//!         sdn.create_vnet(&new, Some(&lock)).await?;
//!         sdn.create_subnet(&vnet, &NewSubnet::new(net.parse()?), Some(&lock)).await?;
//!     }
//!     Ok::<_, pve_sdn::Error>(())
//! };
//! match work.await {
//!     Ok(()) => {
//!         sdn.apply(&lock, Duration::from_secs(300)).await?;
//!     }
//!     Err(e) => {
//!         sdn.unlock(&lock).await?;
//!         return Err(e.into());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod api;
mod error;
mod ids;

pub use api::{
    DhcpRange, LockToken, NewSubnet, NewVnet, NewZone, PendingState, Sdn, Subnet, Vnet, VnetUpdate,
    Zone, ZoneType,
};
pub use error::{Error, Result};
pub use ids::{Cidr, VnetId, ZoneId};
/// The client this crate's API takes, re-exported so a user needs no other crate at a
/// matching version for it.
pub use pve_auth::PveClient;
pub use pve_vm::TaskStatus;

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
