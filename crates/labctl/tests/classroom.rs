//! End-to-end: `labctl lab up|status|ips|down examples/classroom.toml` against an embedded
//! FOSS-Cloud simulator over HTTPS on 127.0.0.1, the example file unchanged but for
//! `--url` (the simulator's port) and `--insecure`.
#![allow(clippy::unwrap_used)]

use fosscloud_sim::{Fixture, Simulator};
use serde_json::Value;
use tokio::process::Command;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/classroom.toml");
const CLASSROOM: &str = "6a1c2e3f-0000-4000-8000-00000000a004";

async fn lab(url: &str, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FC_") || k.starts_with("PVE_") || k.starts_with("LABCTL_") {
            c.env_remove(k);
        }
    }
    c.env("FC_PASSWORD", "dynvmuser-pw")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    c.arg("lab").args(args).args([EXAMPLE, "--url", url]);
    let out = c.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn classroom_up_assigns_each_mac_once_and_down_changes_nothing() {
    let mut fixture = Fixture::default();
    fixture.config.mac_by_parameter = true;
    let sim = Simulator::builder().fixture(fixture).start().await.unwrap();
    let url = sim.base_url().to_owned();
    let in_pool = |sim: &fosscloud_sim::SimulatorHandle| {
        sim.assignments()
            .iter()
            .filter(|a| a.pool == CLASSROOM)
            .count()
    };
    assert_eq!(in_pool(&sim), 0);

    let (ok, out, err) = lab(&url, &["up", "--dry-run", "--insecure"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.matches("to assign").count(), 2, "{out}");
    assert_eq!(in_pool(&sim), 0, "a dry run assigns nothing");

    let (ok, out, err) = lab(&url, &["up", "--insecure"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("192.0.2.11:5931") && out.contains("192.0.2.12:5932"),
        "{out}"
    );
    assert_eq!(in_pool(&sim), 2);

    // Again: nothing assigned twice.
    let (ok, out, err) = lab(&url, &["up", "--insecure"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.matches("kept").count(), 2, "{out}");
    assert_eq!(in_pool(&sim), 2);

    let (ok, out, err) = lab(&url, &["status", "--insecure", "-o", "json"]).await;
    assert!(ok, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 2, "one entry per roster row");
    assert_eq!(rows[0]["seat"], "52:54:00:00:00:01");
    assert_eq!(rows[0]["uuid"], "8b000000-0000-4000-8000-00000000c001");
    assert_eq!(rows[1]["node"], "node-02");
    assert!(rows.iter().all(|r| r["name"].is_string()));
    assert!(!out.contains("Cl01pass"), "no SPICE password in the sheet");

    let (ok, out, err) = lab(&url, &["ips", "--insecure"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "192.0.2.11:5931\t52:54:00:00:00:01\n192.0.2.12:5932\t52:54:00:00:00:02\n"
    );

    let before = sim.request_count();
    let (ok, out, err) = lab(&url, &["down", "--insecure"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("nothing changed") && out.contains("no call that"),
        "{out}"
    );
    assert_eq!(sim.request_count(), before, "down sends nothing");
    assert_eq!(in_pool(&sim), 2);

    // Without a TLS choice the generated certificate is refused, with a hint.
    let (ok, _, err) = lab(&url, &["status"]).await;
    assert!(!ok);
    assert!(err.contains("--fingerprint"), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn url_on_a_proxmox_lab_is_a_usage_error() {
    let exam = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/exam.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args([
            "lab",
            "status",
            exam,
            "--url",
            "https://fc.example.org/vm-manager",
        ])
        .env_remove("PVE_HOST")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--url is for FOSS-Cloud"), "{err}");
}
