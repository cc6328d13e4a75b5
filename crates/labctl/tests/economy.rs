//! `labctl lab down` as a user runs it (plan, confirmation, access revoke, teardown) stays
//! within 5 requests per guest: the plan that was shown is carried out, not listed twice.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use pve_sim::Simulator;
use tokio::process::Command;

#[tokio::test]
async fn lab_down_sends_at_most_five_requests_per_guest() {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    let run = |args: &'static [&'static str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
        for (k, _) in std::env::vars() {
            if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.env("PVE_HOST", sim.url())
            .env("PVE_USER", "root@pam")
            .env("PVE_PASSWORD", "secret")
            .env("LABCTL_TIME_SCALE", "0.01")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .args(args);
        c
    };
    let n = 20u32;
    let out = run(&[
        "lab",
        "up",
        "-n",
        "eco",
        "-t",
        "9000",
        "-c",
        "20",
        "--teacher",
        "10.10.0.1",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.reset_requests();
    let out = run(&["lab", "down", "-n", "eco", "--yes"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: u64 = sim
        .requests()
        .as_object()
        .unwrap()
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let per_vm = sent as f64 / f64::from(n);
    assert!(
        per_vm <= 5.0,
        "lab down sent {per_vm:.2} requests per VM: {:#}",
        sim.requests()
    );
}
