//! `pve-auth`: everything about reaching a Proxmox VE API.
//!
//! This crate owns the connection layer the other `pve-*` crates build on: the base URI
//! ([`base_uri`]), the TLS policy ([`TlsOptions`]: system roots, CA file, fingerprint pinning,
//! explicit insecure opt-out), password login with ticket + CSRF token (renewed before
//! expiry, two-step TFA with a TOTP code), API tokens ([`ApiToken`]), the `{"data": …}`
//! envelope, typed errors with PVE-aware classification ([`Error`]), retries of idempotent
//! reads ([`RetryPolicy`]), and lenient deserializers for Perl-typed values ([`perl`]).
//!
//! Secrets ([`Secret`]: passwords, tickets, CSRF tokens, token secrets) never appear in
//! `Debug`/`Display` output, errors or logs.
//!
//! ```no_run
//! use pve_auth::{api_path, ApiToken, Params, PveClient, Secret, TlsOptions};
//!
//! # async fn demo() -> pve_auth::Result<()> {
//! // Password login, pinning the node's self-signed certificate.
//! let client = PveClient::builder("pve1")
//!     .password("root@pam", Secret::new("secret"))
//!     .tls(TlsOptions::fingerprint(
//!         "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
//!     )?)
//!     .build()?;
//! let version: serde_json::Value = client.get("/version", &Params::new()).await?;
//! println!("PVE {}", version["version"]);
//!
//! // API token, start a VM: POST form-encoded, answers a task id (UPID).
//! let token: ApiToken = "lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666".parse()?;
//! let client = PveClient::builder("https://pve1:8006").token(token).build()?;
//! let path = api_path(&["nodes", "pve1", "qemu", "100", "status", "start"]);
//! let upid: String = client.post(&path, &Params::new().with("timeout", 60u32)).await?;
//! println!("started: {upid}");
//! # Ok(())
//! # }
//! ```

mod client;
mod credentials;
mod env;
mod error;
mod params;
pub mod perl;
mod retry;
pub mod ticket;
mod tls;
mod uri;

pub use client::{Observer, PveClient, PveClientBuilder, RequestRecord};
pub use credentials::{ApiToken, TotpSource, Userid};
pub use env::{client_from, client_from_env};
pub use error::{Error, Result};
pub use lab_types::Secret;
pub use params::{api_path, ParamValue, Params};
pub use reqwest::Method;
pub use retry::RetryPolicy;
pub use ticket::{Clock, SystemClock};
pub use tls::{Fingerprint, TlsOptions};
pub use uri::{base_uri, DEFAULT_PORT};
pub use url::Url;

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
