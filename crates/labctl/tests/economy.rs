//! `labctl lab down` as a user runs it (plan, confirmation, access revoke, teardown) sends
//! 3 requests per guest plus a bounded lab-wide part (the plan that was shown is carried
//! out, not listed twice), and its task polls stay bounded on a loaded machine.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use pve_sim::Simulator;
use tokio::process::Command;

#[tokio::test]
async fn lab_down_sends_three_requests_per_guest_and_bounded_polls() {
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
    // What is deterministic is counted exactly (per guest) or tightly (lab-wide); the
    // task listings, whose number follows the machine's speed, are bounded separately.
    let requests = sim.requests();
    let map = requests.as_object().unwrap();
    let is_poll = |k: &str| k.starts_with("GET /nodes/{node}/tasks") || k.contains("/agent/");
    let sum = |poll: bool| -> u64 {
        map.iter()
            .filter(|(k, _)| is_poll(k) == poll)
            .filter_map(|(_, v)| v.as_u64())
            .sum()
    };
    let n64 = u64::from(n);
    for per_guest in [
        "GET /nodes/{node}/qemu/{vmid}/status/current",
        "POST /nodes/{node}/qemu/{vmid}/status/stop",
        "DELETE /nodes/{node}/qemu/{vmid}",
    ] {
        assert_eq!(
            requests[per_guest].as_u64(),
            Some(n64),
            "{per_guest} once per guest: {requests:#}"
        );
    }
    let (polls, rest) = (sum(true), sum(false));
    // 3 per guest, and the lab-wide part (login, plan, access revoke, fence, pool).
    assert!(
        rest <= 3 * n64 + 30,
        "lab down sent {rest} requests besides polls for {n} guests: {requests:#}"
    );
    assert!(
        polls <= 2 * n64,
        "lab down polled {polls} times for {n} guests: {requests:#}"
    );
}
