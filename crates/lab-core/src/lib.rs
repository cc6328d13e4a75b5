//! `lab-core`: what an exam lab is, independent of any hypervisor.
//!
//! This crate owns the domain types ([`VmKind`], [`VmStatus`], [`GuestInfo`],
//! [`StudentStatus`]; [`VmId`], [`NodeName`], [`LabName`] and [`CloneMode`] are the ones of
//! `lab-types`, re-exported here and by `pve-vm`/`pve-firewall`, so the engine's results go
//! into those crates as they are), the small capability traits backends
//! implement ([`Backend`], [`Inventory`], [`Provisioning`], [`Power`], [`Readiness`],
//! [`Fencing`], [`Desktops`]; [`Hypervisor`] is the set the engine needs, `lab-proxmox`
//! implements it for Proxmox VE, `fosscloud-api` implements [`Desktops`]), the lab specification ([`LabSpec`]:
//! template, count, id range, host name pattern, teacher addresses, clone mode,
//! concurrency) and the orchestration engine: [`plan`] (what `up` would change),
//! [`apply`] (bounded concurrency, progress [`Event`]s), [`status`], [`plan_down`] and
//! [`teardown`] (which touches only guests carrying the lab's pool **and** tag, never a
//! template), and one student's reset ([`plan_reset`], [`rollback`], [`reclone`]: back to
//! a snapshot, or a fresh clone keeping id, MACs, tags and fence). It has no HTTP dependency: everything here is tested with a
//! `mockall` mock of [`Hypervisor`] (feature `mock` exports `MockHypervisor` and one mock
//! per trait). Feature `fake` adds `fake::FakeHypervisor`, an in-memory backend with the
//! simulators' semantics; feature `conformance` adds `conformance`, the trait-level
//! contract every backend is tested against.
//!
//! ```no_run
//! use lab_core::{apply, teardown, DownOptions, Event, Hypervisor, LabName, LabSpec, VmId};
//!
//! # async fn demo(hv: &dyn Hypervisor) -> lab_core::Result<()> {
//! let mut spec = LabSpec::new(LabName::new("exam1")?, VmId::new(9000)?, 5)?;
//! spec.hostname = "exam-{n:02}".parse()?;
//! spec.teachers = vec!["10.10.0.1".parse().expect("an IP address")];
//! let show = |e: Event| eprintln!("{e:?}");
//! let report = apply(hv, &spec, &show).await?;
//! for s in &report.students {
//!     println!("{} {} {} {:?}", s.vmid, s.hostname, s.node, s.primary_address());
//! }
//! teardown(hv, &spec.name, &DownOptions::new(4), &show).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Your own backend
//!
//! The capability traits are `async` through the `async-trait` crate: add
//! `async-trait = "0.1"` to your `Cargo.toml` and annotate each `impl` with
//! `#[async_trait::async_trait]`, writing the methods as `async fn` (rustdoc shows the
//! expanded `Pin<Box<dyn Future …>>` signatures; without the attribute the compiler says
//! E0195). Then run the contract (feature `conformance`) against it:
//!
//! ```
//! use async_trait::async_trait;
//! use lab_core::{Power, Result, VmId};
//!
//! struct Mine;
//!
//! #[async_trait]
//! impl Power for Mine {
//!     async fn start(&self, _vmid: VmId) -> Result<()> {
//!         Ok(())
//!     }
//!     async fn stop(&self, _vmid: VmId) -> Result<()> {
//!         Ok(())
//!     }
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "conformance"))]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod down;
mod engine;
mod error;
#[cfg(any(test, feature = "fake"))]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;
mod hypervisor;
mod network;
mod placement;
mod reset;
mod spec;
mod types;
mod up;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod engine_failure_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod fake_props;
#[cfg(test)]
mod placement_tests;
#[cfg(test)]
mod test_spec;
#[cfg(test)]
mod topology_tests;

pub use down::{teardown, teardown_planned, teardown_with};
pub use engine::{
    no_progress, plan, plan_down, plan_teardown, plan_up, DownOptions, Event, LabReport, Plan,
    PlannedStudent, Progress, Step, StudentAction, TeardownPlan,
};
pub use error::{Error, Failure, Result};
/// A `mockall` mock of [`Hypervisor`]. **Available with the feature `mock`.**
#[cfg(any(test, feature = "mock"))]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use hypervisor::MockHypervisor;
pub use hypervisor::{
    Assignment, Backend, Capabilities, Capability, CloneCapacity, CloneRequest, Desktop, Desktops,
    Fencing, GuestIdentity, Hypervisor, Inventory, NicLink, Power, Probe, Provisioning, Readiness,
    RollbackReach, Seat, Secure, SnapshotInfo, Snapshots,
};
/// `mockall` mocks of each capability trait. **Available with the feature `mock`.**
#[cfg(any(test, feature = "mock"))]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use hypervisor::{
    MockBackend, MockDesktops, MockFencing, MockInventory, MockPower, MockProvisioning,
    MockReadiness, MockSnapshots,
};
pub use reset::{
    check_reclone_template, choose_reset, plan_reset, reclone, reclone_source, rollback,
    wait_ready, Reclone, ResetChoice, ResetPath,
};
// Placement across a cluster (issue 21).
pub use hypervisor::{CloneSource, NodeCapacity, Placement, PlacementView};
pub use network::{
    lab_zone_id, network_alias, parse_network_alias, parse_vnet_id, vnet_id, MachineSpec,
    NetworkInfo, NetworkPlan, Networks, NetworksRemoved, NicPlug, NicSpec, StudentNetwork,
    Topology, ZoneKind, MAX_MACHINES, MAX_NETWORKS, MAX_NICS, UPLINK,
};
pub use placement::{
    mib, place, place_plan, replica_tag, NodePlan, PlacementPlan, PlacementPolicy,
};
pub use spec::{
    CloneMode, HostnamePattern, IdRange, LabSpec, Retry, Timeouts, MAX_CONCURRENCY, MAX_STUDENTS,
};
pub use types::{GuestInfo, Invalid, LabName, NodeName, StudentStatus, VmId, VmKind, VmStatus};
pub use up::{apply, apply_with, status, Interrupt};

#[cfg(test)]
mod tidy {
    /// The invariant of ARCHITECTURE.md: lab-core knows no backend and no HTTP.
    #[test]
    fn no_http_or_backend_dependency() {
        let manifest = include_str!("../Cargo.toml");
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .expect("lab-core has a [dependencies] table");
        for banned in [
            "reqwest",
            "hyper",
            "axum",
            "http",
            "pve-",
            "fosscloud",
            "url",
        ] {
            assert!(
                !deps.lines().any(|l| l.trim_start().starts_with(banned)),
                "lab-core must not depend on {banned}"
            );
        }
    }
}

// The README's Rust examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
