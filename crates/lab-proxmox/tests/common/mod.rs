//! What the simulator-backed tests of lab-proxmox share: a simulator with a `ProxmoxLab`
//! on it at one time scale, a lab spec, and request totals.
#![allow(dead_code, clippy::unwrap_used)]

use lab_core::{LabName, LabSpec, Timeouts, VmId};
use lab_proxmox::ProxmoxLab;
use pve_auth::{PveClient, Secret};
use pve_sim::{SimHandle, Simulator, SimulatorBuilder};
use pve_vm::Timing;
use serde_json::Value;

/// The simulator's time scale (and the client's timing, scaled alike).
pub const SCALE: f64 = 0.02;

/// A simulator on 127.0.0.1 (plain HTTP) and the backend logged in to it as root.
pub async fn sim() -> (SimHandle, ProxmoxLab) {
    sim_from(Simulator::builder()).await
}

/// [`sim`] from a builder with settings of the test's own (nodes, storage, faults).
pub async fn sim_from(builder: SimulatorBuilder) -> (SimHandle, ProxmoxLab) {
    let sim = builder
        .plain_http(true)
        .password("secret")
        .time_scale(SCALE)
        .start()
        .await
        .unwrap();
    let hv = lab_with(&sim, Timing::default().scaled(SCALE));
    (sim, hv)
}

/// Another backend on `sim`, logged in as root, with a timing of the test's own.
pub fn lab_with(sim: &SimHandle, timing: Timing) -> ProxmoxLab {
    let client = PveClient::builder(&sim.url())
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    ProxmoxLab::with_timing(client, timing)
}

/// `count` students `stud-NN` of template 9000 in 5000-5099, the teacher 10.10.0.1.
pub fn spec(lab: &str, count: u32) -> LabSpec {
    let mut s = LabSpec::new(LabName::new(lab).unwrap(), VmId::new(9000).unwrap(), count).unwrap();
    s.hostname = "stud-{n:02}".parse().unwrap();
    s.ids = "5000-5099".parse().unwrap();
    s.teachers = vec!["10.10.0.1".parse().unwrap()];
    s.timeouts = Timeouts::default().scaled(SCALE);
    s
}

/// Every request the simulator counted.
pub fn total(requests: &Value) -> u64 {
    requests
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum()
}
