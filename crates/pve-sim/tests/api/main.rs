//! Tests of the simulator over real HTTP on 127.0.0.1 (one binary, modules per API area).

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod access;
mod auth;
mod cli;
mod common;
mod conformance;
mod envelope;
mod faults;
mod firewall;
mod guest;
mod guest_mutations;
mod lxc;
mod placement;
mod pools;
mod probes;
mod qemu;
mod races;
mod sdn;
mod sdn_net;
mod snapshots;
