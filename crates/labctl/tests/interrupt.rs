//! Interrupts of the real `labctl` process: Ctrl-C (SIGINT) during `lab up` settles and
//! says how to resume, SIGKILL at any moment of the clone, fence and start phases leaves
//! only marked guests; the next `up` converges to exactly the planned lab and `down`
//! leaves nothing of it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use pve_sim::{SimHandle, Simulator};
use serde_json::Value;
use tokio::process::{Child, Command};

const SCALE: f64 = 0.05;

fn labctl(sim: &SimHandle) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn sim() -> SimHandle {
    Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(SCALE)
        .start()
        .await
        .unwrap()
}

const UP: &[&str] = &[
    "lab",
    "up",
    "-n",
    "kil",
    "-t",
    "9000",
    "-c",
    "8",
    "--ids",
    "5000-5099",
    "--teacher",
    "10.10.0.1",
];

/// The guests in the lab's pool: vmid → (name, description, running).
fn pool_guests(sim: &SimHandle) -> BTreeMap<u64, (String, String, bool)> {
    sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pool"] == "kil")
        .map(|g| {
            (
                g["vmid"].as_u64().unwrap(),
                (
                    g["name"].as_str().unwrap_or_default().to_owned(),
                    g["config"]["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    g["status"] == "running",
                ),
            )
        })
        .collect()
}

fn spawn(sim: &SimHandle, args: &[&str]) -> Child {
    labctl(sim)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `pred` holds for the simulator's state (polling every 5 ms, at most 20 s).
async fn until(sim: &SimHandle, what: &str, pred: impl Fn(&SimHandle) -> bool) {
    for _ in 0..4000 {
        if pred(sim) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never saw {what}");
}

async fn finish(child: Child) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("labctl ended")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// After any interruption: the next `up` converges to exactly one guest per student, all
/// running and fenced, and `down --yes` leaves nothing, the firewall as before.
async fn converges(sim: &SimHandle, firewall_before: &Value) {
    let (code, stdout, stderr) = finish(spawn(sim, UP)).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let guests = pool_guests(sim);
    let mut names: Vec<&str> = guests.values().map(|(n, _, _)| n.as_str()).collect();
    names.sort_unstable();
    let want: Vec<String> = (1..=8).map(|k| format!("kil-{k:02}")).collect();
    assert_eq!(names, want, "one guest per student");
    for (&vmid, (name, _, running)) in &guests {
        assert!(running, "{name} runs");
        let v = sim
            .reachability(vmid as u32, "200", "tcp", Some(22))
            .unwrap();
        assert!(!v.allowed, "{name} is fenced");
    }
    let (code, stdout, stderr) = finish(spawn(sim, &["lab", "down", "-n", "kil", "--yes"])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(pool_guests(sim).is_empty());
    let state = sim.state();
    assert!(state["pools"].get("kil").is_none(), "pool removed");
    assert_eq!(&state["firewall"], firewall_before, "firewall as before");
}

#[tokio::test]
async fn ctrl_c_settles_says_how_to_resume_and_leaves_only_marked_clones() {
    let sim = sim().await;
    let firewall_before = sim.state()["firewall"].clone();
    let child = spawn(&sim, UP);
    // Interrupt while the first clones run.
    until(&sim, "a clone", |s| !pool_guests(s).is_empty()).await;
    let pid = child.id().unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, 5, "interrupted = lab left incomplete:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.contains("to resume, run the same command again"),
        "{stderr}"
    );
    assert!(stderr.contains("lab up -n kil -t 9000 -c 8"), "{stderr}");
    // Every guest that exists carries the lab's marks; none was started after the signal
    // took effect unless its fence was in place.
    for (vmid, (name, description, _)) in pool_guests(&sim) {
        assert_eq!(
            description,
            format!("labctl lab kil: student {name}"),
            "vm {vmid}"
        );
    }
    converges(&sim, &firewall_before).await;
}

#[tokio::test]
async fn sigkill_in_any_phase_is_resumed_by_the_next_up() {
    let sim = sim().await;
    let firewall_before = sim.state()["firewall"].clone();
    // Kill during the clone phase (first clone exists), the fence phase (a clone is done),
    // and the start phase (a guest runs).
    type Phase = (&'static str, fn(&SimHandle) -> bool);
    let phases: [Phase; 3] = [
        ("clone phase", |s| !pool_guests(s).is_empty()),
        ("fence phase", |s| {
            s.state()["guests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["pool"] == "kil" && g["lock"].is_null())
        }),
        ("start phase", |s| {
            pool_guests(s).values().any(|(_, _, running)| *running)
        }),
    ];
    for (phase, pred) in phases {
        let mut child = spawn(&sim, UP);
        until(&sim, phase, pred).await;
        child.start_kill().unwrap();
        let _ = child.wait().await;
        // Whatever the kill left: only guests with the lab's marks.
        for (vmid, (name, description, _)) in pool_guests(&sim) {
            assert_eq!(
                description,
                format!("labctl lab kil: student {name}"),
                "{phase}: vm {vmid}"
            );
        }
        converges(&sim, &firewall_before).await;
    }
}
