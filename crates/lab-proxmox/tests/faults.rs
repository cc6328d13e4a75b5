//! Convergence under injected faults: with 10 % and 20 % of requests failing (500/503/596,
//! resets, latency, failed clone tasks), a single `up` completes the lab in seeded runs,
//! and `down` leaves nothing of it, foreign guests and the firewall as before.
#![allow(clippy::unwrap_used)]

use lab_core::{
    apply, no_progress, teardown, DownOptions, LabName, LabSpec, Retry, Timeouts, VmId,
};
use lab_proxmox::ProxmoxLab;
use std::time::Duration;

use pve_auth::{PveClient, RetryPolicy, Secret};
use pve_sim::Simulator;
use pve_vm::Timing;
use serde_json::Value;

const SCALE: f64 = 0.02;

/// One seeded run: `Ok(())` when `up` converged in one call; `down` must be exact always.
async fn run(seed: u64, rate: f64, n: u32) -> Result<(), String> {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(SCALE)
        .seed(seed)
        .start()
        .await
        .unwrap();
    let client = PveClient::builder(&sim.url())
        .password("root@pam", Secret::new("secret"))
        // The client's own retries, scaled like everything else in this test.
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(80)),
        )
        .build()
        .unwrap();
    let hv = ProxmoxLab::with_timing(client, Timing::default().scaled(SCALE));
    let before = sim.state();
    let mut spec =
        LabSpec::new(LabName::new("flaky").unwrap(), VmId::new(9000).unwrap(), n).unwrap();
    spec.ids = "5000-5099".parse().unwrap();
    spec.teachers = vec!["10.10.0.1".parse().unwrap()];
    spec.timeouts = Timeouts::default().scaled(SCALE);
    sim.set_fault_rate(rate).unwrap();
    let up = apply(&hv, &spec, &no_progress).await;
    let verdict = match &up {
        Ok(r) if r.students.len() == n as usize => Ok(()),
        Ok(r) => Err(format!("seed {seed}: {} of {n} students", r.students.len())),
        Err(e) => Err(format!("seed {seed}: {e}")),
    };
    // Teardown must be exact in every run: retry it (as a user would) until it is.
    let lab = LabName::new("flaky").unwrap();
    let options = DownOptions {
        retry: Retry::default().scaled(SCALE),
        ..DownOptions::new(8)
    };
    let mut down = teardown(&hv, &lab, &options, &no_progress).await;
    for _ in 0..5 {
        if down.is_ok() {
            break;
        }
        down = teardown(&hv, &lab, &options, &no_progress).await;
    }
    down.unwrap_or_else(|e| panic!("seed {seed}: teardown never completed: {e}"));
    sim.set_fault_rate(0.0).unwrap();
    let after = sim.state();
    let lab_left: Vec<&Value> = after["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["pool"] == "flaky" || g["name"].as_str().is_some_and(|n| n.starts_with("flaky-"))
        })
        .collect();
    assert!(lab_left.is_empty(), "seed {seed}: left {lab_left:?}");
    assert_eq!(
        after["firewall"], before["firewall"],
        "seed {seed}: firewall"
    );
    let foreign = |s: &Value| -> Vec<Value> {
        s["guests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["vmid"].as_u64().is_some_and(|v| v < 5000))
            .map(|g| serde_json::json!([g["vmid"], g["status"], g["config"]]))
            .collect()
    };
    assert_eq!(
        foreign(&after),
        foreign(&before),
        "seed {seed}: foreign guests"
    );
    assert!(
        after["pools"].get("flaky").is_none(),
        "seed {seed}: pool left"
    );
    verdict
}

async fn converged(rate: f64, runs: u64, n: u32) -> (usize, Vec<String>) {
    let mut ok = 0;
    let mut failed = Vec::new();
    for seed in 1..=runs {
        match run(seed, rate, n).await {
            Ok(()) => ok += 1,
            Err(e) => failed.push(e),
        }
    }
    (ok, failed)
}

#[tokio::test]
async fn ten_percent_faults_converge_and_teardown_is_exact() {
    let (ok, failed) = converged(0.10, 6, 8).await;
    assert!(ok >= 5, "{ok} of 6 converged: {failed:#?}");
}

#[tokio::test]
async fn twenty_percent_faults_mostly_converge_and_teardown_is_exact() {
    let (ok, failed) = converged(0.20, 6, 8).await;
    assert!(ok >= 4, "{ok} of 6 converged: {failed:#?}");
}
