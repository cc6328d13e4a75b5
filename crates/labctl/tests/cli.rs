//! End-to-end: the `labctl` binary run as a user would, against a simulator started by
//! the test on 127.0.0.1 (port 0). State is checked through the simulator handle.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use pve_sim::{SimHandle, Simulator};
use serde_json::Value;
use tokio::process::Command;

const SCALE: &str = "0.01";

/// `labctl` with a clean environment: no PVE_* from the developer's shell leaks in.
fn labctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.kill_on_drop(true);
    c
}

fn against(sim: &SimHandle) -> Command {
    let mut c = labctl();
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE);
    c
}

async fn sim() -> SimHandle {
    Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap()
}

async fn run(mut c: Command, args: &[&str]) -> (Output, String, String) {
    let out = c.args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn vmids(state: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["vmid"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn demo_lists_students_and_verdicts() {
    let (out, stdout, stderr) = run(
        labctl(),
        &["demo", "--students", "3", "--time-scale", SCALE],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for name in ["exam-01", "exam-02", "exam-03"] {
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
    assert!(stdout.contains("VMID") && stdout.contains("HOSTNAME") && stdout.contains("IP"));
    let blocked = stdout
        .lines()
        .filter(|l| l.contains("BLOCKED  as intended"))
        .count();
    let allowed = stdout
        .lines()
        .filter(|l| l.contains("ALLOWED  as intended"))
        .count();
    // exam-01<->exam-02 and exam-01->prod-db blocked; 3 students->teacher + teacher->exam-01.
    assert_eq!((blocked, allowed), (3, 4), "{stdout}");
    assert!(
        !stdout.contains("UNEXPECTED") && !stdout.contains("CHANGED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("firewall configuration: restored exactly"),
        "{stdout}"
    );
    assert!(stdout.contains("demo finished"), "{stdout}");
}

#[tokio::test]
async fn up_then_down_touches_exactly_the_lab() {
    let sim = sim().await;
    let initial = vmids(&sim.state());
    let (out, stdout, stderr) = run(
        against(&sim),
        &[
            "lab",
            "up",
            "-n",
            "exam1",
            "-t",
            "9000",
            "-c",
            "3",
            "--hostname",
            "pc-{n}",
            "--teacher",
            "10.10.0.1",
        ],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("fenced: students reach only 10.10.0.1"),
        "{stdout}"
    );
    let state = sim.state();
    let lab_ids: Vec<u64> = vmids(&state)
        .into_iter()
        .filter(|v| !initial.contains(v))
        .collect();
    assert_eq!(lab_ids, [5000, 5001, 5002]);
    for (i, id) in lab_ids.iter().enumerate() {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&id.to_string()))
            .unwrap_or_else(|| panic!("no row for {id}:\n{stdout}"));
        assert!(line.contains(&format!("pc-{}", i + 1)), "{line}");
    }

    // `ips` prints one line per student with the simulator's lease.
    let (_, ips, _) = run(against(&sim), &["lab", "ips", "-n", "exam1"]).await;
    assert_eq!(ips.lines().count(), 3, "{ips}");
    for g in state["guests"].as_array().unwrap() {
        if lab_ids.contains(&g["vmid"].as_u64().unwrap()) {
            let ip = g["ipv4"].as_str().unwrap();
            assert!(
                ips.contains(&format!("{ip}\t{}", g["name"].as_str().unwrap())),
                "{ips}"
            );
        }
    }

    // Dry run: exactly the lab's guests, nothing changes.
    let before_dry = vmids(&sim.state());
    let state_before_dry = lasting(&sim);
    sim.reset_requests();
    let (out, dry, stderr) = run(against(&sim), &["lab", "down", "-n", "exam1", "--dry-run"]).await;
    assert!(out.status.success(), "{stderr}");
    assert_only_reads(&sim);
    assert_eq!(lasting(&sim), state_before_dry);
    let listed: Vec<&str> = dry
        .lines()
        .filter(|l| l.trim_start().starts_with("destroy vm"))
        .collect();
    assert_eq!(listed.len(), 3, "{dry}");
    for id in &lab_ids {
        assert!(listed.iter().any(|l| l.contains(&id.to_string())), "{dry}");
    }
    for foreign in ["100", "200", "201", "9000", "9001"] {
        assert!(!dry.contains(&format!("vm {foreign} ")), "{dry}");
    }
    assert_eq!(vmids(&sim.state()), before_dry);

    let (out, down, stderr) = run(against(&sim), &["lab", "down", "-n", "exam1"]).await;
    assert!(out.status.success(), "{down}\n{stderr}");
    assert_eq!(vmids(&sim.state()), initial);
    assert!(sim.state()["pools"].as_object().unwrap().is_empty());
    let (_, st, _) = run(against(&sim), &["lab", "status", "-n", "exam1"]).await;
    assert!(st.contains("no students"), "{st}");
    sim.shutdown().await;
}

/// The simulator's state without its load statistics (reads raise `daemon_peak`).
fn lasting(sim: &SimHandle) -> Value {
    let mut state = sim.state();
    state.as_object_mut().unwrap().remove("daemon_peak");
    state
}

/// Fails unless every request since the last reset was a read or the login: a dry run
/// that stops, unfences or destroys anything sends a POST, PUT or DELETE.
fn assert_only_reads(sim: &SimHandle) {
    let requests = sim.requests();
    let counts = requests.as_object().unwrap();
    assert!(!counts.is_empty(), "no requests seen at all");
    for key in counts.keys() {
        assert!(
            key.starts_with("GET ") || key == "POST /access/ticket",
            "a dry run sent {key}: {requests}"
        );
    }
}

#[tokio::test]
async fn up_dry_run_only_reads() {
    let sim = sim().await;
    let before = lasting(&sim);
    sim.reset_requests();
    let (out, stdout, stderr) = run(
        against(&sim),
        &[
            "lab",
            "up",
            "-n",
            "exam1",
            "-t",
            "9000",
            "-c",
            "2",
            "--teacher",
            "10.10.0.1",
            "--dry-run",
        ],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("create  vm 5000"), "{stdout}");
    assert!(stdout.contains("dry run: nothing changed"), "{stdout}");
    assert_only_reads(&sim);
    assert_eq!(lasting(&sim), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_input_names_the_input_and_what_is_allowed() {
    // No cluster is needed to reject these: the checks come before connecting.
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["lab", "up", "-n", "exam1", "-t", "9000", "-c", "0"],
            &["count", "\"0\"", "between 1 and 500"],
        ),
        (
            &[
                "lab",
                "up",
                "-n",
                "exam1",
                "-t",
                "9000",
                "-c",
                "2",
                "--hostname",
                "exam_{n}",
            ],
            &["hostname pattern", "exam_{n}", "{n:0W}"],
        ),
        (
            &["lab", "up", "-n", "Exam1", "-t", "9000", "-c", "2"],
            &["lab name", "Exam1", "lower-case"],
        ),
        (
            &["lab", "up", "-n", "exam1", "-t", "42", "-c", "2"],
            &["VMID", "42", "100 to 999999999"],
        ),
        (
            &["lab", "down", "-n", "exam1", "--concurrency", "0"],
            &["concurrency", "between 1 and 64"],
        ),
    ];
    for (args, needles) in cases {
        let (out, stdout, stderr) = run(labctl(), args).await;
        assert!(!out.status.success(), "{args:?} succeeded: {stdout}");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: {n:?} not in {stderr}");
        }
    }
    // Waits that would overflow are refused, not a panic.
    let (out, _, stderr) = run(
        labctl(),
        &[
            "lab",
            "up",
            "-n",
            "exam1",
            "-t",
            "9000",
            "-c",
            "2",
            "--ready-timeout",
            "0",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr.contains("--ready-timeout") && stderr.contains("1..=86400"),
        "{stderr}"
    );
    let mut c = labctl();
    c.env("LABCTL_TIME_SCALE", "1e300");
    let (out, _, stderr) = run(c, &["lab", "down", "-n", "exam1", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("LABCTL_TIME_SCALE") && stderr.contains("at most 1000"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A valid command without a host says how to give one.
    let (out, _, stderr) = run(labctl(), &["lab", "status", "-n", "exam1"]).await;
    assert!(!out.status.success());
    assert!(
        stderr.contains("PVE_HOST") && stderr.contains("labctl demo"),
        "{stderr}"
    );
}

#[tokio::test]
async fn passwords_are_not_accepted_as_arguments() {
    let (out, _, stderr) = run(
        labctl(),
        &["--password", "secret", "lab", "status", "-n", "x"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr.contains("--password"), "{stderr}");
    let (_, help, _) = run(labctl(), &["--help"]).await;
    assert!(
        help.contains("PVE_PASSWORD") && help.contains("labctl demo"),
        "{help}"
    );
}

#[tokio::test]
async fn every_subcommand_help_shows_an_example() {
    for args in [
        &["lab", "up", "--help"][..],
        &["lab", "down", "--help"],
        &["lab", "status", "--help"],
        &["lab", "ips", "--help"],
        &["sim", "--help"],
        &["demo", "--help"],
    ] {
        let (out, help, _) = run(labctl(), args).await;
        assert!(out.status.success(), "{args:?}");
        let cmd = format!("labctl {} ", args[..args.len() - 1].join(" "));
        assert!(
            help.contains("Example") && help.contains(&cmd),
            "{args:?}: no example running {cmd:?}:\n{help}"
        );
    }
}
