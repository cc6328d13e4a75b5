//! A client for the FOSS-Cloud VDI REST API (vm-manager 1.3.2.x): check credentials, list
//! realms, list a user's VMs by kind, take a VM from a dynamic pool, and the FC4School
//! MAC-mapping calls; every code the server (or its documentation) knows is a typed [`Code`].
//!
//! The crate follows the server's source where the published documentation disagrees (see
//! [`Code`] and the crate README). Credentials go only into an `Authorization: Basic` header;
//! plain `http://` is refused unless allowed; SPICE passwords are [`Secret`]s.
//!
//! ```no_run
//! use fosscloud_api::{FossCloudClient, VmKind};
//!
//! # async fn run() -> fosscloud_api::Result<()> {
//! let client = FossCloudClient::builder("https://fc.example.org/vm-manager")
//!     .credentials("alice", "alice-pw")
//!     .realm("4000013".parse()?)
//!     .build()?;
//! client.login().await?;
//! let vms = client.list_vms(VmKind::Owner).await?;
//! if let Some(pool) = vms.iter().filter(|vm| vm.is_assignable()).find_map(|vm| vm.pool.clone()) {
//!     let vm = client.assign(&pool).await?;
//!     println!("SPICE at {:?}", vm.spice_endpoint());
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod code;
mod error;
mod lenient;
mod tls;
mod types;

pub use client::{read_answer, Answer, ClientBuilder, FossCloudClient, DEFAULT_TIMEOUT};
pub use code::Code;
pub use error::{Error, Result};
pub use tls::Fingerprint;
pub use types::{MacAddr, PoolId, Realm, RealmId, Secret, Vm, VmKind, VmStatus, VmType};

// The README's Rust example is compiled (and run where it can be) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
