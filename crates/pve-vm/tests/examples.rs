//! Acceptance 4: the `lifecycle` example, run as the program a user runs (environment and
//! all), against an embedded simulator on 127.0.0.1.
//!
//! The binary comes from `target/<profile>/examples/`, where `cargo test -p pve-vm` builds
//! it (cargo builds examples before running tests); `--test examples` alone does not, so
//! the test says how to build it when it is missing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Lab, PASSWORD};

/// `target/<profile>/examples/<name>`, next to the `deps` folder this test runs from.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test -p pve-vm` (it builds the examples) or \
         `cargo build -p pve-vm --example {name}` first",
        bin.display()
    );
    bin
}

/// Runs the example with the `PVE_*` environment pointing at the lab (nothing inherited,
/// so a developer's own `PVE_TOKEN` cannot redirect it) and the password kept out of argv.
async fn run_example(lab: &Lab, name: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(example_binary(name));
    cmd.args(args)
        .env_clear()
        .env("PVE_HOST", lab.sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", PASSWORD);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn guest_ids(lab: &Lab) -> BTreeSet<u64> {
    lab.guests().keys().copied().collect()
}

#[tokio::test]
async fn lifecycle_example_runs_a_qemu_and_an_lxc_template_through_and_leaves_nothing() {
    let lab = Lab::start().await;
    let before = guest_ids(&lab);

    for (template, hostname, kind, agent_step) in [
        ("9000", "stud-01", "qemu", true),
        ("9001", "ct-01", "lxc", false),
    ] {
        let out = run_example(&lab, "lifecycle", &[template, hostname]).await;
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "lifecycle {template} {hostname} failed:\n{stdout}\n{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("template {template} is a {kind} on pve")),
            "{stdout}"
        );
        for step in [
            "clone",
            "start",
            "wait for an IPv4 address",
            "stop",
            "destroy",
        ] {
            assert!(
                stdout.contains(&format!("{step}: done in ")),
                "{step}:\n{stdout}"
            );
        }
        assert_eq!(
            stdout.contains("wait for the guest agent: done"),
            agent_step,
            "{stdout}"
        );
        assert!(stdout.contains(&format!("({hostname}) on pve")), "{stdout}");
        assert!(stdout.contains("primary address: 10."), "{stdout}");
        assert_eq!(guest_ids(&lab), before, "the clone was destroyed");
    }
}

#[tokio::test]
async fn lifecycle_example_rejects_a_bad_hostname_before_cloning() {
    let lab = Lab::start().await;
    let before = guest_ids(&lab);
    let out = run_example(&lab, "lifecycle", &["9000", "stud_01"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("'_'") && stderr.contains("stud_01"),
        "{stderr}"
    );
    assert_eq!(guest_ids(&lab), before);

    let out = run_example(&lab, "lifecycle", &[]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("usage: lifecycle TEMPLATE HOSTNAME"));
}
