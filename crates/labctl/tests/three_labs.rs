//! A school runs several classes at once: three fenced labs on one cluster, then `lab down`
//! of the lab that switched the datacenter firewall on. The down must finish in one run
//! (guests, fence and pool gone), hand the datacenter switch over to the labs still
//! fenced, and leave their fences exactly as they were; the last lab down restores the
//! datacenter as it was before the first lab came up.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use pve_sim::{SimHandle, Simulator};
use serde_json::Value;
use tokio::process::Command;

/// Longest any single labctl run may take in this test (the simulator runs at 1/100).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn labctl(sim: &SimHandle, dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k.starts_with("FC_") {
            c.env_remove(k);
        }
    }
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", "0.01")
        .env("RUST_LOG", "off")
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs labctl; answers (exit code, stdout + stderr).
async fn run(sim: &SimHandle, dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(RUN_TIMEOUT, labctl(sim, dir).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("labctl {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn up(sim: &SimHandle, dir: &std::path::Path, lab: &str, ids: &str) {
    let args = [
        "lab",
        "up",
        "-n",
        lab,
        "-t",
        "9000",
        "-c",
        "2",
        "--ids",
        ids,
        "--teacher",
        "10.10.0.1",
    ];
    let (code, text) = run(sim, dir, &args).await;
    assert_eq!(code, 0, "labctl {args:?}\n{text}");
}

/// The datacenter-level firewall objects of one lab: its group (with its rules and
/// comment) and its IP sets, as the simulator holds them.
fn lab_objects(state: &Value, lab: &str) -> Value {
    let fw = &state["firewall"];
    let group = fw["cluster"]["groups"][format!("iso-{lab}")].clone();
    let sets: serde_json::Map<String, Value> = fw["cluster"]["ipsets"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with(&format!("iso-{lab}-")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({ "group": group, "sets": sets })
}

/// The guests' own firewall files (options and rules), by VMID.
fn guest_fences(state: &Value, ids: &[u32]) -> Value {
    let fw = &state["firewall"]["guests"];
    Value::Object(
        ids.iter()
            .map(|id| (id.to_string(), fw[id.to_string()].clone()))
            .collect(),
    )
}

fn datacenter_enable(state: &Value) -> Value {
    state["firewall"]["cluster"]["options"]["enable"].clone()
}

fn pool_exists(state: &Value, lab: &str) -> bool {
    state["pools"].as_object().unwrap().contains_key(lab)
}

fn guests_of(state: &Value, ids: &[u32]) -> Vec<u32> {
    let guests = state["guests"].as_array().unwrap();
    ids.iter()
        .copied()
        .filter(|id| guests.iter().any(|g| g["vmid"] == *id))
        .collect()
}

#[tokio::test]
async fn lab_down_of_the_first_of_three_fenced_labs_completes_in_one_run() {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let before = sim.state();
    assert!(
        before["firewall"]["cluster"]["options"]["enable"]
            .as_u64()
            .is_none_or(|e| e == 0),
        "the datacenter firewall starts off: {}",
        before["firewall"]["cluster"]["options"]
    );

    up(&sim, dir.path(), "class-a", "5000-5009").await;
    up(&sim, dir.path(), "class-b", "5010-5019").await;
    up(&sim, dir.path(), "class-c", "5020-5029").await;
    let a_ids = [5000, 5001];
    let b_ids = [5010, 5011];
    let c_ids = [5020, 5021];
    let fenced = sim.state();
    assert_eq!(guests_of(&fenced, &a_ids), a_ids, "{}", fenced["guests"]);
    assert!(
        datacenter_enable(&fenced).as_u64().is_some_and(|e| e > 0),
        "the first lab switched the datacenter firewall on"
    );
    let b_fence = (
        lab_objects(&fenced, "class-b"),
        guest_fences(&fenced, &b_ids),
    );
    let c_fence = (
        lab_objects(&fenced, "class-c"),
        guest_fences(&fenced, &c_ids),
    );
    // The fence of b and c is in force: a student reaches the teacher, not the others.
    for from in [5010u32, 5020] {
        assert!(
            sim.reachability(from, "10.10.0.1", "tcp", Some(22))
                .unwrap()
                .allowed
        );
        assert!(
            !sim.reachability(from, "5011", "tcp", Some(22))
                .unwrap()
                .allowed
        );
        assert!(
            !sim.reachability(from, "5021", "tcp", Some(22))
                .unwrap()
                .allowed
        );
    }

    // One run of `lab down` of the lab that switched the datacenter firewall on.
    let (code, text) = run(&sim, dir.path(), &["lab", "down", "-n", "class-a", "--yes"]).await;
    assert_eq!(
        code, 0,
        "lab down class-a must complete in one run:\n{text}"
    );

    let after = sim.state();
    assert!(
        guests_of(&after, &a_ids).is_empty(),
        "class-a's guests are gone"
    );
    assert_eq!(
        lab_objects(&after, "class-a"),
        serde_json::json!({ "group": Value::Null, "sets": {} }),
        "class-a's group and sets are gone"
    );
    assert!(!pool_exists(&after, "class-a"), "class-a's pool is gone");
    assert!(
        datacenter_enable(&after).as_u64().is_some_and(|e| e > 0),
        "the datacenter firewall stays on for b and c"
    );
    // b's and c's fences: the same sets, rules and guest files; their group comments now
    // carry a's record of the datacenter's prior state (the handover), nothing else.
    for (lab, ids, (objects, guests)) in
        [("class-b", &b_ids, &b_fence), ("class-c", &c_ids, &c_fence)]
    {
        let now = lab_objects(&after, lab);
        assert_eq!(now["sets"], objects["sets"], "{lab}'s IP sets unchanged");
        assert_eq!(
            now["group"]["rules"], objects["group"]["rules"],
            "{lab}'s group rules unchanged"
        );
        let comment = now["group"]["comment"].as_str().unwrap_or_default();
        assert!(
            comment.starts_with(&format!("labctl:{lab} ")),
            "{lab}'s group is still marked: {comment:?}"
        );
        assert_eq!(
            &guest_fences(&after, ids),
            guests,
            "{lab}'s guests unchanged"
        );
        assert!(
            sim.reachability(ids[0], "10.10.0.1", "tcp", Some(22))
                .unwrap()
                .allowed
        );
        assert!(
            !sim.reachability(ids[0], &ids[1].to_string(), "tcp", Some(22))
                .unwrap()
                .allowed
        );
    }

    // The other two go down as well, each in one run; the last restores the datacenter.
    for lab in ["class-b", "class-c"] {
        let (code, text) = run(&sim, dir.path(), &["lab", "down", "-n", lab, "--yes"]).await;
        assert_eq!(code, 0, "lab down {lab}:\n{text}");
    }
    let end = sim.state();
    assert_eq!(
        end["firewall"], before["firewall"],
        "the datacenter firewall is as before the first lab came up"
    );
}
