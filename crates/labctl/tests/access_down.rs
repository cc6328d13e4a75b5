//! `lab down` revokes the lab's student logins before it destroys anything: users
//! disabled, their ACL entries gone; foreign users untouched.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use pve_sim::{SimHandle, Simulator};
use serde_json::Value;
use tokio::process::Command;

fn labctl(sim: &SimHandle, dir: &std::path::Path) -> Command {
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
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn ok(mut c: Command, args: &[&str]) -> String {
    let out = c.args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "labctl {args:?}\n{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

fn lab_users(state: &Value) -> Vec<(String, bool)> {
    state["access"]["users"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, u)| {
            u["comment"]
                .as_str()
                .is_some_and(|c| c.contains("labctl lab acc"))
        })
        .map(|(id, u)| (id.clone(), u["enable"].as_bool().unwrap_or(true)))
        .collect()
}

#[tokio::test]
async fn lab_down_revokes_student_logins_first() {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let up = [
        "lab",
        "up",
        "-n",
        "acc",
        "-t",
        "9000",
        "-c",
        "2",
        "--teacher",
        "10.10.0.1",
    ];
    ok(labctl(&sim, dir.path()), &up).await;
    ok(
        labctl(&sim, dir.path()),
        &["lab", "access", "grant", "-n", "acc"],
    )
    .await;
    let granted = sim.state();
    let users = lab_users(&granted);
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(users.iter().all(|(_, enabled)| *enabled));
    let foreign_before: Vec<Value> = granted["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["ugid"].as_str().unwrap_or_default().ends_with("@pve"))
        .cloned()
        .collect();

    let said = ok(
        labctl(&sim, dir.path()),
        &["lab", "down", "-n", "acc", "--yes"],
    )
    .await;
    assert!(said.contains("student logins revoked"), "{said}");
    let after = sim.state();
    let users = lab_users(&after);
    assert!(users.iter().all(|(_, enabled)| !enabled), "{users:?}");
    let lab_acl: Vec<&Value> = after["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| users.iter().any(|(id, _)| a["ugid"] == id.as_str()))
        .collect();
    assert!(lab_acl.is_empty(), "{lab_acl:?}");
    let foreign_after: Vec<Value> = after["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["ugid"].as_str().unwrap_or_default().ends_with("@pve"))
        .cloned()
        .collect();
    assert_eq!(foreign_after, foreign_before);
    assert!(after["pools"].get("acc").is_none());
}
