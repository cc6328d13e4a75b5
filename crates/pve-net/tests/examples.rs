//! Acceptance 4: the `ip` example, run as the program a user runs (environment and all),
//! against an embedded simulator on 127.0.0.1.
//!
//! The binary comes from `target/<profile>/examples/`, where `cargo test -p pve-net` builds
//! it (cargo builds examples before running tests); `--test examples` alone does not, so
//! the test says how to build it when it is missing.
#![allow(clippy::unwrap_used)]

#[path = "../../pve-vm/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Lab, PASSWORD};
use pve_vm::{CloneOptions, VmId};

/// `target/<profile>/examples/<name>`, next to the `deps` folder this test runs from.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test -p pve-net` (it builds the examples) or \
         `cargo build -p pve-net --example {name}` first",
        bin.display()
    );
    bin
}

/// Runs the example with the `PVE_*` environment pointing at the lab (nothing inherited)
/// and the password kept out of argv.
async fn run_ip(lab: &Lab, vmid: &str) -> Output {
    let mut cmd = Command::new(example_binary("ip"));
    cmd.arg(vmid)
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

#[tokio::test]
async fn ip_example_prints_the_addresses_of_a_vm_and_a_container() {
    let lab = Lab::start().await;

    let out = run_ip(&lab, "100").await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.starts_with("qemu 100 on pve"), "{stdout}");
    assert!(stdout.contains("127.0.0.1/8"), "{stdout}");
    assert!(stdout.contains("address: 10.10.0.1\n"), "{stdout}");

    // A running container answers through the host, not an agent.
    let api = lab.api();
    let ct = api
        .guest(VmId::new(9001).unwrap())
        .await
        .unwrap()
        .clone_to(CloneOptions {
            hostname: Some("ct-01".into()),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    ct.start().await.unwrap();
    let ip = pve_net::NetApi::new()
        .wait_for_ip(&ct, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let out = run_ip(&lab, &ct.vmid().to_string()).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!("lxc {} on pve", ct.vmid())),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("address: {ip}\n")), "{stdout}");
}

#[tokio::test]
async fn ip_example_names_a_missing_guest_and_a_bad_id() {
    let lab = Lab::start().await;
    let out = run_ip(&lab, "4242").await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("4242") && stderr.contains("not found"),
        "{stderr}"
    );

    let out = run_ip(&lab, "12").await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid VMID \"12\"") && stderr.contains("100 to 999999999"),
        "{stderr}"
    );
}
