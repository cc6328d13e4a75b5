//! `pve-sim`: an embeddable, faithful Proxmox VE API simulator for tests, demos and
//! benchmarks.
//!
//! It serves `/api2/json` with the same paths, parameters (validated against the
//! `pve-schema` extract), envelope, status codes, reason phrases and error texts as a
//! PVE 9.1 cluster: ticket/CSRF/token/TOTP authentication, asynchronous tasks with real
//! UPIDs, QEMU and LXC lifecycle with locks and races, the guest agent with a boot
//! delay and DHCP addresses, pools, the firewall, seeded fault injection, and an
//! introspection API under `/_sim/` (state, request counts, a firewall reachability
//! oracle). The crate owns the HTTP side and the cluster state; the firewall model
//! lives in [`firewall`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pve_sim::Simulator;
//!
//! let sim = Simulator::builder()
//!     .password("secret")
//!     .plain_http(true)
//!     .time_scale(0.01) // a 20 s boot takes 0.2 s
//!     .start()
//!     .await?;
//! let client = reqwest::Client::new();
//! let login: serde_json::Value = client
//!     .post(format!("{}/access/ticket", sim.base_url()))
//!     .form(&[("username", "root@pam"), ("password", "secret")])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert!(login["data"]["ticket"].as_str().is_some());
//! println!("{}", sim.state()["guests"]);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod access;
mod agent;
mod auth;
mod clone;
mod cluster;
mod config;
mod console;
pub mod error;
mod faults;
pub mod firewall;
mod firewall_api;
mod guest;
mod introspect;
mod lifecycle;
mod pools;
mod routing;
mod secret;
mod server;
mod sim;
mod state;
mod tasks;
mod tls;

pub use access::route_permissions;
pub use routing::{is_served, SERVED};
pub use secret::Secret;
pub use sim::{totp_code, RequestFault, SimError, SimHandle, Simulator, SimulatorBuilder};

/// Endpoints of the schema extract the simulator deliberately does not serve, with the
/// reason (checked by the conformance test: every other extract endpoint is served).
pub const NOT_SERVED: &[(&str, &str, &str)] = &[];
