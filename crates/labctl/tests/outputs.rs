//! What a hurried teacher or a script meets, through the binary against an embedded
//! simulator: irreversible `vm` actions ask (or need --yes), firewall ranges say what they
//! skip and refuse another fence's guests, names cannot forge lines or formulas, and JSON
//! uses one key per concept.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{sim, Out};
use pve_sim::SimHandle;
use serde_json::Value;

async fn labctl(sim: &SimHandle, dir: &Path, args: &[&str]) -> Out {
    common::output(common::against(dir, sim), args).await
}

async fn ok(sim: &SimHandle, dir: &Path, args: &[&str]) -> Out {
    let out = labctl(sim, dir, args).await;
    assert_eq!(out.code, Some(0), "labctl {args:?}\n{out}");
    out
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{out}"))
}

async fn vm_state(sim: &SimHandle, dir: &Path, vmid: &str) -> Value {
    json(&ok(sim, dir, &["vm", "status", vmid, "-o", "json"]).await)
}

#[tokio::test]
async fn vm_stop_shutdown_reboot_and_template_off_a_terminal_need_yes() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &sim,
        dir.path(),
        &["vm", "clone", "9000", "--name", "spare", "--newid", "700"],
    )
    .await;
    ok(&sim, dir.path(), &["vm", "start", "700"]).await;
    assert_eq!(vm_state(&sim, dir.path(), "700").await["status"], "running");

    for verb in ["stop", "shutdown", "reboot"] {
        asks_off_a_terminal(&sim, dir.path(), verb, "running").await;
    }
    ok(&sim, dir.path(), &["vm", "stop", "700", "--yes"]).await;
    assert_eq!(vm_state(&sim, dir.path(), "700").await["status"], "stopped");
    asks_off_a_terminal(&sim, dir.path(), "template", "stopped").await;
    ok(&sim, dir.path(), &["vm", "template", "700", "-y"]).await;
    assert_eq!(vm_state(&sim, dir.path(), "700").await["template"], true);
}

/// `vm <verb> 700`: --dry-run only looks (table and JSON), without --yes off a terminal
/// exit 2 and nothing changed.
async fn asks_off_a_terminal(sim: &SimHandle, dir: &Path, verb: &str, status: &str) {
    let dry = ok(sim, dir, &["vm", verb, "700", "--dry-run"]).await;
    assert!(
        dry.stdout.contains("dry run: nothing changed"),
        "{verb}: {dry}"
    );
    let j = json(&ok(sim, dir, &["vm", verb, "700", "--dry-run", "-o", "json"]).await);
    assert_eq!(
        (j["dry_run"].clone(), j["done"].clone()),
        (Value::Bool(true), Value::Bool(false)),
        "{j}"
    );
    let no = labctl(sim, dir, &["vm", verb, "700"]).await;
    assert_eq!(
        no.code,
        Some(2),
        "{verb} without --yes off a terminal\n{no}"
    );
    assert!(no.stderr.contains("--yes"), "{no}");
    let state = vm_state(sim, dir, "700").await;
    assert_eq!(state["status"], status, "{verb}: {state}");
    assert_eq!(state["template"], false, "{verb}: {state}");
}

#[tokio::test]
async fn firewall_isolate_of_a_range_with_unused_ids_lists_the_ids_skipped() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &sim,
        dir.path(),
        &["lab", "up", "-n", "gap", "-t", "9000", "-c", "2"],
    )
    .await;
    let out = ok(
        &sim,
        dir.path(),
        &[
            "firewall",
            "isolate",
            "--first",
            "5000",
            "--last",
            "5004",
            "--allow",
            "10.10.0.1",
        ],
    )
    .await;
    assert!(
        out.stderr
            .contains("skipped 3 ids with no guest: 5002-5004"),
        "{out}"
    );
    let v = json(
        &ok(
            &sim,
            dir.path(),
            &[
                "firewall",
                "verify",
                "--first",
                "5000",
                "--last",
                "5004",
                "--allow",
                "10.10.0.1",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(v["skipped"], serde_json::json!([5002, 5003, 5004]), "{v}");
    assert_eq!(v["fenced"], true, "{v}");
    assert_eq!(v["guests"].as_array().unwrap().len(), 2, "{v}");
    let none = labctl(
        &sim,
        dir.path(),
        &[
            "firewall",
            "isolate",
            "--first",
            "6000",
            "--last",
            "6009",
            "--allow",
            "10.10.0.1",
        ],
    )
    .await;
    assert_eq!(none.code, Some(4), "a range with no guest at all\n{none}");
}

#[tokio::test]
async fn firewall_isolate_of_a_range_inside_another_labs_fence_is_refused() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "up",
            "-n",
            "fa",
            "-t",
            "9000",
            "-c",
            "2",
            "--teacher",
            "10.10.0.1",
        ],
    )
    .await;
    let before = sim.state()["firewall"].clone();
    let out = labctl(
        &sim,
        dir.path(),
        &[
            "firewall",
            "isolate",
            "--first",
            "4999",
            "--last",
            "5001",
            "--allow",
            "10.10.0.9",
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("iso-fa")
            && out.stderr.contains("5000")
            && out.stderr.contains("Nothing changed"),
        "{out}"
    );
    assert_eq!(sim.state()["firewall"], before, "nothing changed");
    // The same lab's own range is not an overlap.
    ok(
        &sim,
        dir.path(),
        &[
            "firewall",
            "isolate",
            "--first",
            "5000",
            "--last",
            "5001",
            "--allow",
            "10.10.0.1",
            "--lab",
            "fa",
            "--dry-run",
        ],
    )
    .await;
}

#[tokio::test]
async fn lab_up_with_a_roster_name_holding_a_newline_or_a_formula_is_refused() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let guests = sim.state()["guests"].as_array().unwrap().len();
    for (file, text, says) in [
        (
            "nl.csv",
            "name\nAl\n\"Eve\n10.0.0.1\tevil\"\n",
            "control character",
        ),
        ("esc.csv", "name\n\u{1b}[2JEve\n", "control character"),
        (
            "formula.csv",
            "name\n\"=HYPERLINK(\"\"http://x\"\")\"\n",
            "formula",
        ),
    ] {
        std::fs::write(dir.path().join(file), text).unwrap();
        let out = labctl(
            &sim,
            dir.path(),
            &["lab", "up", "-n", "bad", "-t", "9000", "--roster", file],
        )
        .await;
        assert_eq!(out.code, Some(2), "{file}\n{out}");
        assert!(
            out.stderr.contains(says) && out.stderr.contains(file),
            "{file}\n{out}"
        );
    }
    assert_eq!(sim.state()["guests"].as_array().unwrap().len(), guests);
}

#[tokio::test]
async fn lab_ips_and_csv_sheets_are_safe_for_hosts_files_and_spreadsheets() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("class.csv"),
        "name,id\nZoë Müller,'=1+1\nAl,7\n",
    )
    .unwrap();
    ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "up",
            "-n",
            "ips",
            "-t",
            "9000",
            "--roster",
            "class.csv",
        ],
    )
    .await;
    let ips = ok(
        &sim,
        dir.path(),
        &["lab", "ips", "-n", "ips", "--roster", "class.csv"],
    )
    .await;
    for line in ips.stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(
            fields.len() == 2 || (fields.len() == 3 && fields[2].starts_with("# ")),
            "{line:?}"
        );
        assert!(fields[0].parse::<std::net::IpAddr>().is_ok(), "{line:?}");
    }
    assert_eq!(ips.stdout.lines().count(), 2, "{ips}");
}

/// One key per concept: `fenced` (never `isolated`), `destroyed` (never `destroy`),
/// `left_alone` (never `keep` or `leave_alone`), `dry_run` wherever --dry-run exists.
#[tokio::test]
async fn json_keys_are_one_name_per_concept_across_commands() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &sim,
        d,
        &[
            "lab",
            "up",
            "-n",
            "keys",
            "-t",
            "9000",
            "-c",
            "2",
            "--teacher",
            "10.10.0.1",
        ],
    )
    .await;
    let status = json(&ok(&sim, d, &["lab", "status", "-n", "keys", "-o", "json"]).await);
    assert_eq!(status[0]["fenced"], true, "{status}");
    let plan = json(
        &ok(
            &sim,
            d,
            &[
                "lab",
                "plan",
                "-n",
                "keys",
                "-t",
                "9000",
                "-c",
                "2",
                "--teacher",
                "10.10.0.1",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(plan["students"][0]["fenced"], true, "{plan}");
    assert!(plan["left_alone"].is_array(), "{plan}");
    let fw = json(
        &ok(
            &sim,
            d,
            &[
                "firewall",
                "verify",
                "--first",
                "5000",
                "--last",
                "5001",
                "--lab",
                "keys",
                "--allow",
                "10.10.0.1",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(fw["fenced"], true, "{fw}");
    assert_eq!(fw["guests"][0]["fenced"], true, "{fw}");
    let down = json(
        &ok(
            &sim,
            d,
            &["lab", "down", "-n", "keys", "--dry-run", "-o", "json"],
        )
        .await,
    );
    assert_eq!(down["dry_run"], true);
    assert_eq!(down["destroyed"].as_array().unwrap().len(), 2, "{down}");
    assert!(down["left_alone"].is_array(), "{down}");
    let vm = json(
        &ok(
            &sim,
            d,
            &["vm", "destroy", "5000", "--stop", "--dry-run", "-o", "json"],
        )
        .await,
    );
    assert_eq!(vm["destroyed"][0]["vmid"], 5000, "{vm}");
    let real = json(
        &ok(
            &sim,
            d,
            &["lab", "down", "-n", "keys", "--yes", "-o", "json"],
        )
        .await,
    );
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["destroyed"].as_array().unwrap().len(), 2, "{real}");

    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    out.push(k.clone());
                    keys(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    for v in [&status, &plan, &fw, &down, &vm, &real] {
        keys(v, &mut all);
    }
    for banned in [
        "isolated",
        "destroy",
        "keep",
        "leave_alone",
        "fence",
        "done",
    ] {
        assert!(
            !all.iter().any(|k| k == banned),
            "key {banned:?} in {all:?}"
        );
    }
}
