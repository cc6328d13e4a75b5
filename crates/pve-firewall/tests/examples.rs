//! The `isolate` example, run as the program a user runs (environment and all), against an
//! embedded simulator on 127.0.0.1: fence, re-run, undo, undo again, bad input.
//!
//! The binary comes from `target/<profile>/examples/`, where `cargo test -p pve-firewall`
//! builds it (cargo builds examples before running tests); `--test examples` alone does
//! not, so the test says how to build it when it is missing.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::fw_state;
use pve_sim::{SimHandle, Simulator};

const TOKEN: &str = "root@pam!tester=11111111-2222-3333-4444-555555555555";

/// `target/<profile>/examples/<name>`, next to the `deps` folder this test runs from.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test -p pve-firewall` (it builds the examples) or \
         `cargo build -p pve-firewall --example {name}` first",
        bin.display()
    );
    bin
}

/// Runs `isolate` with the `PVE_*` environment pointing at the simulator (nothing
/// inherited, the token kept out of argv).
async fn isolate(sim: &SimHandle, args: &[&str]) -> Output {
    let mut cmd = Command::new(example_binary("isolate"));
    cmd.args(args)
        .env_clear()
        .env("PVE_HOST", sim.url())
        .env("PVE_TOKEN", TOKEN);
    tokio::task::spawn_blocking(move || cmd.output().expect("example runs"))
        .await
        .expect("blocking task")
}

/// Runs `isolate`, requires success and returns its standard output.
async fn isolate_ok(sim: &SimHandle, args: &[&str]) -> String {
    let out = isolate(sim, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "isolate {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn allowed(sim: &SimHandle, from: u32, to: u32) -> bool {
    sim.reachability(from, &to.to_string(), "tcp", Some(22))
        .expect("oracle answers")
        .allowed
}

#[tokio::test]
async fn isolate_example_fences_reruns_as_no_op_and_undoes_exactly() {
    let sim = Simulator::builder()
        .token(TOKEN)
        .plain_http(true)
        .time_scale(0.01)
        .start()
        .await
        .expect("simulator starts");
    let before = fw_state(&sim);
    assert!(allowed(&sim, 200, 201), "open before the fence");

    let out = isolate_ok(&sim, &["200", "201", "10.10.0.1"]).await;
    assert!(out.contains("lab exam: isolated"), "{out}");
    assert!(
        out.contains("guest 200: ok") && out.contains("guest 201: ok"),
        "{out}"
    );
    assert!(!allowed(&sim, 200, 201) && !allowed(&sim, 201, 200));
    assert!(allowed(&sim, 200, 100) && allowed(&sim, 100, 201));
    let fenced = fw_state(&sim);

    let out = isolate_ok(&sim, &["200", "201", "10.10.0.1"]).await;
    assert!(out.contains("lab exam: nothing to change"), "{out}");
    assert_eq!(fw_state(&sim), fenced);

    isolate_ok(&sim, &["200", "201", "10.10.0.1", "--undo"]).await;
    assert_eq!(fw_state(&sim), before, "undo restores every prior value");
    assert!(allowed(&sim, 200, 201));

    let out = isolate_ok(&sim, &["200", "201", "10.10.0.1", "--undo"]).await;
    assert!(out.contains("lab exam: nothing to change"), "{out}");
    assert_eq!(fw_state(&sim), before);
}

#[tokio::test]
async fn isolate_example_names_bad_input_and_changes_nothing() {
    let sim = Simulator::builder()
        .token(TOKEN)
        .plain_http(true)
        .time_scale(0.01)
        .start()
        .await
        .expect("simulator starts");
    let before = fw_state(&sim);
    let out = isolate(&sim, &["200", "201", "10.10.0.300"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("10.10.0.300"), "{stderr}");
    assert_eq!(fw_state(&sim), before);
}
