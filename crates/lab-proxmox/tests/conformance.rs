//! The `lab-core` conformance suite against `ProxmoxLab` on the embedded simulator (real
//! HTTP on 127.0.0.1): the same trait-level contract the in-memory fake passes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use lab_core::conformance::{self, Fixture};
use lab_proxmox::ProxmoxLab;
use pve_auth::{PveClient, Secret};
use pve_sim::Simulator;
use pve_vm::Timing;

const SCALE: f64 = 0.01;

#[tokio::test]
async fn proxmox_on_the_simulator_keeps_the_contract() {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(SCALE)
        .start()
        .await
        .unwrap();
    let client = PveClient::builder(&sim.url())
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    let hv = ProxmoxLab::with_timing(client, Timing::default().scaled(SCALE));
    let mut fx = Fixture::new(9000, [5000, 5001], "conform");
    fx.ready_within = Duration::from_secs(20);
    fx.probe_every = Duration::from_millis(50);
    conformance::hypervisor(&hv, &fx).await.unwrap();
    conformance::snapshots(&hv, &fx).await.unwrap();
    // Proxmox has no desktop broker: it must say so in its type, not by failing late.
    assert!(!lab_core::Backend::capabilities(&hv).desktops);
    let state = sim.state();
    let left: Vec<u64> = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["vmid"].as_u64())
        .filter(|v| (5000..=5001).contains(v))
        .collect();
    assert!(left.is_empty(), "the suite leaves nothing behind: {left:?}");
}
