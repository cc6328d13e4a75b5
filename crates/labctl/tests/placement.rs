//! Placement through the binary against a simulator with small nodes: `template
//! replicate` (idempotent) and `template list`, `lab plan` refusing a class that does not
//! fit (exit 2, naming the node) and spreading one that fits, `lab up` starting them all
//! and refusing before cloning when the class does not fit, `lab down` leaving nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{against, output};
use pve_sim::{SimHandle, Simulator};
use serde_json::Value;

const GIB: u64 = 1024 * 1024 * 1024;

/// Three nodes of 12 GiB: the host takes 2, the guest already running on each 2, so 8 GiB
/// (four 2 GiB students) are free on every node.
async fn small_sim() -> SimHandle {
    Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .node_memory(12 * GIB)
        .start()
        .await
        .unwrap()
}

fn lab_file(dir: &std::path::Path, name: &str, count: u32) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5099\"\n\
             teachers = [\"10.10.0.1\"]\nplacement = \"spread\"\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// The lab's guests per node, and how many run.
fn lab_guests(sim: &SimHandle, lab: &str) -> (BTreeMap<String, usize>, usize) {
    let mut per_node = BTreeMap::new();
    let mut running = 0;
    for g in sim.state()["guests"].as_array().unwrap() {
        if g["pool"].as_str() == Some(lab) {
            *per_node
                .entry(g["node"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
            running += usize::from(g["status"].as_str() == Some("running"));
        }
    }
    (per_node, running)
}

#[tokio::test]
async fn a_class_is_planned_against_the_nodes_memory_and_spread_over_the_replicas() {
    let sim = small_sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();

    let out = output(against(dir, &sim), &["template", "replicate", "9000"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("pve2")
            && out.stdout.contains("pve3")
            && out.stdout.contains("created"),
        "{out}"
    );
    let out = output(against(dir, &sim), &["template", "replicate", "9000"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        !out.stdout.contains("created") && out.stdout.contains("kept"),
        "idempotent: {out}"
    );
    let out = output(against(dir, &sim), &["-o", "json", "template", "list"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let sets: Value = serde_json::from_str(&out.stdout).unwrap();
    let set = sets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template"] == 9000)
        .unwrap();
    assert_eq!(set["replicas"].as_array().unwrap().len(), 2, "{sets}");
    let out = output(
        against(dir, &sim),
        &["template", "replicate", "9000", "--nodes", "pve9"],
    )
    .await;
    assert_eq!(out.code, Some(2), "an unknown node is a usage error: {out}");
    assert!(out.stderr.contains("pve9"), "{out}");

    // Fourteen students need 28 GiB; the three nodes have 24 free.
    let too_big = lab_file(dir, "big", 14);
    let out = output(against(dir, &sim), &["lab", "plan", &too_big]).await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("node pve1 is short of 2048 MiB")
            && out.stderr.contains("--overcommit"),
        "names the node and the shortfall: {out}"
    );
    assert!(out.stdout.contains("SHORT OF"), "{out}");
    let out = output(
        against(dir, &sim),
        &["lab", "plan", &too_big, "--overcommit"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let out = output(against(dir, &sim), &["lab", "up", &too_big]).await;
    assert_eq!(out.code, Some(2), "up refuses the same way: {out}");
    assert!(out.stderr.contains("short of"), "{out}");
    assert!(lab_guests(&sim, "big").0.is_empty(), "nothing cloned");
    assert!(
        !sim.state()["pools"].to_string().contains("\"big\""),
        "no pool created: {}",
        sim.state()["pools"]
    );

    // Twelve fit: four per node.
    let fits = lab_file(dir, "fits", 12);
    let out = output(against(dir, &sim), &["-o", "json", "lab", "plan", &fits]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let counts: Vec<usize> = plan["placement"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["students"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [4, 4, 4], "{plan}");
    let out = output(against(dir, &sim), &["lab", "up", &fits]).await;
    assert_eq!(out.code, Some(0), "every start fits: {out}");
    let (per_node, running) = lab_guests(&sim, "fits");
    let want: BTreeMap<String, usize> = [("pve1", 4), ("pve2", 4), ("pve3", 4)]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
    assert_eq!(per_node, want);
    assert_eq!(running, 12, "none refused");

    let out = output(against(dir, &sim), &["lab", "down", &fits, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(lab_guests(&sim, "fits").0.is_empty());
}

#[tokio::test]
async fn nodes_and_placement_are_checked_before_anything_is_sent() {
    let sim = small_sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let file = lab_file(dir, "chk", 2);
    for (args, says) in [
        (vec!["--placement", "even"], "spread, pack"),
        (vec!["--nodes", "pve 1"], "node name"),
        (vec!["--nodes", "pve9"], "pve9"),
    ] {
        let mut all = vec!["lab", "plan", file.as_str()];
        all.extend(args.iter().copied());
        let out = output(against(dir, &sim), &all).await;
        assert_eq!(out.code, Some(2), "{all:?}: {out}");
        assert!(out.stderr.contains(says), "{all:?}: {out}");
    }
    // `nodes` in the file keeps the class on the nodes named.
    let path = dir.join("only.toml");
    std::fs::write(
        &path,
        "name = \"only\"\ntemplate = 9000\ncount = 2\nids = \"5000-5099\"\nnodes = [\"pve1\"]\n",
    )
    .unwrap();
    let out = output(against(dir, &sim), &["lab", "up", path.to_str().unwrap()]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let (per_node, _) = lab_guests(&sim, "only");
    assert_eq!(per_node.keys().collect::<Vec<_>>(), ["pve1"]);
}

#[tokio::test]
async fn replicate_refuses_a_guest_that_is_not_a_template() {
    let sim = small_sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let guests = || sim.state()["guests"].as_array().unwrap().len();
    let before = guests();
    // 200 is prod-db, running on pve2: never to be copied.
    for args in [
        vec!["template", "replicate", "200"],
        vec!["template", "replicate", "200", "--dry-run"],
    ] {
        let out = output(against(dir, &sim), &args).await;
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
        assert!(
            out.stderr.contains("200") && out.stderr.contains("not one"),
            "names the guest and why: {out}"
        );
        assert!(!out.stdout.contains("created"), "{out}");
    }
    assert_eq!(guests(), before, "nothing cloned");
}

#[tokio::test]
async fn an_interrupted_replicate_is_finished_by_the_next_run_without_a_second_copy() {
    let sim = small_sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let guests = || sim.state()["guests"].as_array().unwrap().len();
    let before = guests();
    // The full clone succeeds, then the tag write is refused: an untagged copy is left.
    sim.fail_next_request(
        "PUT",
        "/nodes/pve1/qemu/",
        pve_sim::RequestFault::Status(403, "Permission check failed"),
    )
    .unwrap();
    let out = output(
        against(dir, &sim),
        &["template", "replicate", "9000", "--nodes", "pve2"],
    )
    .await;
    assert_eq!(out.code, Some(3), "{out}");
    assert_eq!(guests(), before + 1, "the copy was made: {out}");

    let out = output(
        against(dir, &sim),
        &["template", "replicate", "9000", "--nodes", "pve2"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("created"), "{out}");
    assert_eq!(
        guests(),
        before + 1,
        "the left copy was finished, not cloned again"
    );
    let copy = sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] != 9000 && g["template"] == true && g["node"] == "pve2")
        .cloned();
    assert!(
        copy.is_some(),
        "a template on pve2: {}",
        sim.state()["guests"]
    );
    let out = output(against(dir, &sim), &["-o", "json", "template", "list"]).await;
    let sets: Value = serde_json::from_str(&out.stdout).unwrap();
    let set = sets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template"] == 9000)
        .unwrap();
    assert_eq!(set["replicas"].as_array().unwrap().len(), 1, "{sets}");
}
