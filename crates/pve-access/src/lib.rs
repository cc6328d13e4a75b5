//! `pve-access`: Proxmox VE access control, and the exam access lifecycle built on it.
//!
//! [`AccessApi`] covers users, groups, roles, ACL entries, effective permissions,
//! passwords and console tasks (`vncproxy` / `termproxy`): typed ([`Userid`], [`RoleId`],
//! [`GroupId`], [`AclPath`], [`Privilege`] with PVE 9's names) and validated before
//! anything is sent. [`exam`] gives each student a login that reaches only their own
//! guest, writes the credential [`Sheet`] (0600), verifies it as each student, and
//! revokes it all (users, ACL entries, open consoles) touching nothing that is not the
//! lab's.
//!
//! ```no_run
//! use pve_access::exam::{self, GrantOptions, Realm, RevokeOptions, Seat};
//! use pve_access::{AccessApi, VmId};
//! use pve_auth::PveClient;
//!
//! # async fn demo(client: PveClient) -> pve_access::Result<()> {
//! let api = AccessApi::new(client);
//! let seats = vec![
//!     Seat::new("anna", &Realm::Pve, VmId::new(101)?)?,
//!     Seat::new("ben", &Realm::Pve, VmId::new(102)?)?,
//! ];
//! let opts = GrantOptions {
//!     lab: "exam1".into(),
//!     realm: Realm::Pve,
//!     sheet: "exam1-credentials.json".into(),
//!     console_host: Some("pve.school.example".into()),
//!     reset: exam::Reset::Nobody,
//!     dry_run: false,
//! };
//! let granted = exam::grant(&api, &opts, &seats).await?;
//! for step in &granted.report.steps {
//!     println!("{step}");
//! }
//! // … the exam …
//! let revoke = RevokeOptions { lab: "exam1".into(), dry_run: false };
//! exam::revoke(&api, &revoke, &seats).await?;
//! # Ok(()) }
//! ```

mod api;
mod error;
pub mod exam;
mod ids;
pub mod sheet;

pub use api::{
    login_as, AccessApi, AclEntry, ConsoleTask, GroupInfo, NewUser, PermissionMap, RoleInfo,
    Subject, UserInfo, UserUpdate, VncProxy, CONSOLE_TASK_TYPES,
};
pub use error::{Error, Result};
pub use ids::{AclPath, GroupId, Privilege, RoleId, Userid};
pub use pve_vm::{GuestKind, NodeName, Upid, VmId};
pub use sheet::{Credential, Format, Sheet};

// The README's Rust examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
