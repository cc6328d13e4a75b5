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

/// A lab against a fresh simulator, with the engine's own retries of lab-wide steps off:
/// what is absorbed must be absorbed below the engine.
async fn lab_without_engine_retries(
    lab: &str,
    n: u32,
) -> (pve_sim::SimHandle, ProxmoxLab, LabSpec) {
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
    let mut spec = LabSpec::new(LabName::new(lab).unwrap(), VmId::new(9000).unwrap(), n).unwrap();
    spec.ids = "5000-5099".parse().unwrap();
    spec.teachers = vec!["10.10.0.1".parse().unwrap()];
    spec.timeouts = Timeouts::default().scaled(SCALE);
    spec.timeouts.retry.attempts = 1;
    (sim, hv, spec)
}

#[tokio::test]
async fn the_lab_wide_fence_failing_once_costs_a_retry_not_the_lab() {
    let (sim, hv, spec) = lab_without_engine_retries("once", 4).await;
    // The two failures of the soak: a group rule answered 596, and the datacenter switch
    // whose connection closed before an answer.
    sim.fail_next_request(
        "POST",
        "/cluster/firewall/groups/iso-once",
        pve_sim::RequestFault::Status(596, "Connection timed out"),
    )
    .unwrap();
    sim.fail_next_request(
        "PUT",
        "/cluster/firewall/options",
        pve_sim::RequestFault::Reset,
    )
    .unwrap();
    sim.reset_requests();
    let report = apply(&hv, &spec, &no_progress).await.unwrap();
    assert_eq!(report.students.len(), 4);
    assert!(report.fenced);
    let requests = sim.requests();
    // Four group rules and the failed one; enable=2, enable=1 and the failed one.
    assert_eq!(
        requests["POST /cluster/firewall/groups/{group}"], 5,
        "{requests:#}"
    );
    assert_eq!(requests["PUT /cluster/firewall/options"], 3, "{requests:#}");
    for s in &report.students {
        let v = s.vmid.get();
        assert!(
            sim.reachability(v, "10.10.0.1", "tcp", Some(22))
                .unwrap()
                .allowed
        );
        assert!(
            !sim.reachability(v, "200", "tcp", Some(5432))
                .unwrap()
                .allowed
        );
    }
}

#[tokio::test]
async fn a_lab_wide_fence_that_fails_for_good_is_reported_once() {
    let (sim, hv, spec) = lab_without_engine_retries("taken", 3).await;
    // Someone else's IP set under the lab's name: the fence must not adopt it.
    let client = PveClient::builder(&sim.url())
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    pve_firewall::Firewall::new(client)
        .create_ipset(
            &pve_firewall::Scope::Cluster,
            &"iso-taken-allowed".parse().unwrap(),
            Some("the admin's"),
        )
        .await
        .unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let progress = |e: lab_core::Event| events.lock().unwrap().push(e);
    let err = apply(&hv, &spec, &progress).await.unwrap_err();
    let lab_core::Error::Incomplete { failures, .. } = &err else {
        panic!("want Incomplete, got {err}");
    };
    assert_eq!(failures.len(), 1, "one cause, said once: {err}");
    assert_eq!(failures[0].subject, "fence");
    let message = &failures[0].message;
    assert!(message.contains("iso-taken-allowed"), "{message}");
    assert!(
        message.contains("3 student(s) were cloned and marked but not started"),
        "{message}"
    );
    assert_eq!(
        err.to_string().matches("iso-taken-allowed").count(),
        1,
        "{err}"
    );
    // Per student only a short line, not the cause again.
    for e in events.lock().unwrap().iter() {
        if let lab_core::Event::Failed { message, .. } = e {
            assert!(!message.contains("iso-taken-allowed"), "{message}");
        }
    }
    // Nobody runs unfenced.
    let state = sim.state();
    let running: Vec<&Value> = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pool"] == "taken" && g["status"] == "running")
        .collect();
    assert!(running.is_empty(), "{running:?}");
}
