//! Placement through the binary against a simulator with small nodes: `template
//! replicate` (idempotent) and `template list`, `lab plan` refusing a class that does not
//! fit (exit 2, naming the node) and spreading one that fits, `lab up` starting them all
//! and refusing before cloning when the class does not fit, `lab down` leaving nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{exits, json, sim_builder, write_file};
use pve_sim::SimHandle;
use serde_json::Value;

const GIB: u64 = 1024 * 1024 * 1024;

/// Three nodes of 12 GiB: the host takes 2, the guest already running on each 2, so 8 GiB
/// (four 2 GiB students) are free on every node.
async fn small_sim() -> SimHandle {
    sim_builder().node_memory(12 * GIB).start().await.unwrap()
}

/// Writes `NAME.toml` in `dir`, the lab `name` of `count` students spread over the nodes:
/// its path.
fn lab_file(dir: &Path, name: &str, count: u32) -> String {
    let text = format!(
        "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5099\"\n\
         teachers = [\"10.10.0.1\"]\nplacement = \"spread\"\n"
    );
    write_file(dir, &format!("{name}.toml"), &text)
}

/// The simulator of [`small_sim`] and an empty home to run labctl in.
async fn small_sim_and_home() -> (SimHandle, tempfile::TempDir) {
    (small_sim().await, tempfile::tempdir().unwrap())
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

/// How many guests the simulator has, of every pool and none.
fn guest_count(sim: &SimHandle) -> usize {
    sim.state()["guests"].as_array().unwrap().len()
}

/// `template list -o json`, which must succeed: how many replicas template 9000 has, and
/// the whole list for assertion messages.
async fn replicas_of_9000(dir: &Path, sim: &SimHandle) -> (usize, Value) {
    let out = exits(dir, sim, 0, &["-o", "json", "template", "list"]).await;
    let sets = json(&out.stdout);
    let set = sets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template"] == 9000)
        .unwrap_or_else(|| panic!("no set of template 9000: {sets}"));
    (set["replicas"].as_array().unwrap().len(), sets.clone())
}

#[tokio::test]
async fn a_class_is_planned_against_the_nodes_memory_and_spread_over_the_replicas() {
    let (sim, home) = small_sim_and_home().await;
    let dir = home.path();

    let out = exits(dir, &sim, 0, &["template", "replicate", "9000"]).await;
    assert!(
        out.stdout.contains("pve2")
            && out.stdout.contains("pve3")
            && out.stdout.contains("created"),
        "{out}"
    );
    let out = exits(dir, &sim, 0, &["template", "replicate", "9000"]).await;
    assert!(
        !out.stdout.contains("created") && out.stdout.contains("kept"),
        "idempotent: {out}"
    );
    let (replicas, sets) = replicas_of_9000(dir, &sim).await;
    assert_eq!(replicas, 2, "{sets}");
    // An unknown node is a usage error.
    let args = ["template", "replicate", "9000", "--nodes", "pve9"];
    let out = exits(dir, &sim, 2, &args).await;
    assert!(out.stderr.contains("pve9"), "{out}");

    // Fourteen students need 28 GiB; the three nodes have 24 free.
    let too_big = lab_file(dir, "big", 14);
    let out = exits(dir, &sim, 2, &["lab", "plan", &too_big]).await;
    assert!(
        out.stderr.contains("node pve1 is short of 2048 MiB")
            && out.stderr.contains("--overcommit"),
        "names the node and the shortfall: {out}"
    );
    assert!(out.stdout.contains("SHORT OF"), "{out}");
    exits(dir, &sim, 0, &["lab", "plan", &too_big, "--overcommit"]).await;
    // `up` refuses the same way.
    let out = exits(dir, &sim, 2, &["lab", "up", &too_big]).await;
    assert!(out.stderr.contains("short of"), "{out}");
    assert!(lab_guests(&sim, "big").0.is_empty(), "nothing cloned");
    assert!(
        !sim.state()["pools"].to_string().contains("\"big\""),
        "no pool created: {}",
        sim.state()["pools"]
    );

    // Twelve fit: four per node.
    let fits = lab_file(dir, "fits", 12);
    let out = exits(dir, &sim, 0, &["-o", "json", "lab", "plan", &fits]).await;
    let plan = json(&out.stdout);
    let counts: Vec<usize> = plan["placement"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["students"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [4, 4, 4], "{plan}");
    // Every start fits.
    exits(dir, &sim, 0, &["lab", "up", &fits]).await;
    let (per_node, running) = lab_guests(&sim, "fits");
    let want: BTreeMap<String, usize> = [("pve1", 4), ("pve2", 4), ("pve3", 4)]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
    assert_eq!(per_node, want);
    assert_eq!(running, 12, "none refused");

    exits(dir, &sim, 0, &["lab", "down", &fits, "--yes"]).await;
    assert!(lab_guests(&sim, "fits").0.is_empty());
}

#[tokio::test]
async fn nodes_and_placement_are_checked_before_anything_is_sent() {
    let (sim, home) = small_sim_and_home().await;
    let dir = home.path();
    let file = lab_file(dir, "chk", 2);
    for (args, says) in [
        (vec!["--placement", "even"], "spread, pack"),
        (vec!["--nodes", "pve 1"], "node name"),
        (vec!["--nodes", "pve9"], "pve9"),
    ] {
        let mut all = vec!["lab", "plan", file.as_str()];
        all.extend(args.iter().copied());
        let out = exits(dir, &sim, 2, &all).await;
        assert!(out.stderr.contains(says), "{all:?}: {out}");
    }
    // `nodes` in the file keeps the class on the nodes named.
    let only = write_file(
        dir,
        "only.toml",
        "name = \"only\"\ntemplate = 9000\ncount = 2\nids = \"5000-5099\"\nnodes = [\"pve1\"]\n",
    );
    exits(dir, &sim, 0, &["lab", "up", &only]).await;
    let (per_node, _) = lab_guests(&sim, "only");
    assert_eq!(per_node.keys().collect::<Vec<_>>(), ["pve1"]);
}

#[tokio::test]
async fn replicate_refuses_a_guest_that_is_not_a_template() {
    let (sim, home) = small_sim_and_home().await;
    let dir = home.path();
    let before = guest_count(&sim);
    // 200 is prod-db, running on pve2: never to be copied.
    for args in [
        vec!["template", "replicate", "200"],
        vec!["template", "replicate", "200", "--dry-run"],
    ] {
        let out = exits(dir, &sim, 2, &args).await;
        assert!(
            out.stderr.contains("200") && out.stderr.contains("not one"),
            "names the guest and why: {out}"
        );
        assert!(!out.stdout.contains("created"), "{out}");
    }
    assert_eq!(guest_count(&sim), before, "nothing cloned");
}

#[tokio::test]
async fn an_interrupted_replicate_is_finished_by_the_next_run_without_a_second_copy() {
    let (sim, home) = small_sim_and_home().await;
    let dir = home.path();
    let before = guest_count(&sim);
    // The full clone succeeds, then the tag write is refused: an untagged copy is left.
    sim.fail_next_request(
        "PUT",
        "/nodes/pve1/qemu/",
        pve_sim::RequestFault::Status(403, "Permission check failed"),
    )
    .unwrap();
    let to_pve2 = ["template", "replicate", "9000", "--nodes", "pve2"];
    let out = exits(dir, &sim, 3, &to_pve2).await;
    assert_eq!(guest_count(&sim), before + 1, "the copy was made: {out}");

    let out = exits(dir, &sim, 0, &to_pve2).await;
    assert!(out.stdout.contains("created"), "{out}");
    assert_eq!(
        guest_count(&sim),
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
    let (replicas, sets) = replicas_of_9000(dir, &sim).await;
    assert_eq!(replicas, 1, "{sets}");
}

/// Waits (at most 30 s) until `ready` holds for the simulator's guests.
async fn until(sim: &SimHandle, what: &str, ready: impl Fn(&[Value]) -> bool) {
    let start = std::time::Instant::now();
    loop {
        let state = sim.state();
        if ready(state["guests"].as_array().unwrap()) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{what} did not happen: {}",
            state["guests"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A copy of 9000 is being cloned (`lock: clone`).
fn copy_locked(guests: &[Value]) -> bool {
    guests
        .iter()
        .any(|g| g["vmid"] != 9000 && g["lock"].as_str() == Some("clone"))
}

#[tokio::test]
async fn finding_10_a_rerun_waits_for_the_copy_an_interrupted_run_left_cloning() {
    // Slow enough (a full clone takes 20 s x 0.2) to catch the copy while it is cloned.
    let sim = sim_builder()
        .node_memory(12 * GIB)
        .time_scale(0.2)
        .start()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let before = guest_count(&sim);
    let to_pve2 = ["template", "replicate", "9000", "--nodes", "pve2"];
    // labctl at the simulator's pace (its task waits are scaled alike).
    let slow = || {
        let mut c = common::against(dir, &sim);
        c.env("LABCTL_TIME_SCALE", "0.2");
        c
    };
    let mut first = slow();
    first
        .args(to_pve2)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    until(&sim, "the copy's clone", copy_locked).await;
    // Killed: the clone task goes on in PVE.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    // A dry run does not wait: a temporary state, not a usage error, named as it is.
    let out = common::output(
        slow(),
        &[
            "template",
            "replicate",
            "9000",
            "--nodes",
            "pve2",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("locked (clone)") && out.stderr.contains("clone task"),
        "{out}"
    );
    // The real run waits for the clone, then finishes that copy (no second one).
    let out = common::output(slow(), &to_pve2).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("created"), "{out}");
    assert!(out.stderr.contains("waiting for its clone task"), "{out}");
    assert_eq!(guest_count(&sim), before + 1, "one copy: {out}");
    let (replicas, sets) = replicas_of_9000(dir, &sim).await;
    assert_eq!(replicas, 1, "{sets}");
}

#[tokio::test]
async fn finding_10_a_replica_is_not_replicated_and_a_half_made_copy_would_be_finished() {
    let (sim, home) = small_sim_and_home().await;
    let dir = home.path();
    // A half-made copy (its tag write refused): the dry run says it would finish it.
    sim.fail_next_request(
        "PUT",
        "/nodes/pve1/qemu/",
        pve_sim::RequestFault::Status(403, "Permission check failed"),
    )
    .unwrap();
    let to_pve2 = ["template", "replicate", "9000", "--nodes", "pve2"];
    exits(dir, &sim, 3, &to_pve2).await;
    let out = exits(
        dir,
        &sim,
        0,
        &[
            "template",
            "replicate",
            "9000",
            "--nodes",
            "pve2",
            "--dry-run",
        ],
    )
    .await;
    assert!(
        out.stdout.contains("would finish") && !out.stdout.contains("would create"),
        "{out}"
    );
    exits(dir, &sim, 0, &to_pve2).await;
    // The copy on pve2, given as TEMPLATE: refused, naming the original.
    let copy = sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] != 9000 && g["template"] == true && g["node"] == "pve2")
        .and_then(|g| g["vmid"].as_u64())
        .unwrap()
        .to_string();
    let before = guest_count(&sim);
    for dry in [false, true] {
        let mut args = vec!["template", "replicate", copy.as_str()];
        if dry {
            args.push("--dry-run");
        }
        let out = exits(dir, &sim, 2, &args).await;
        assert!(
            out.stderr.contains(&format!("TEMPLATE {copy}"))
                && out.stderr.contains("a replica of template 9000")
                && out.stderr.contains("labctl template replicate 9000"),
            "{out}"
        );
    }
    assert_eq!(guest_count(&sim), before, "no copy of the copy");
}

#[tokio::test]
async fn finding_10_a_copy_locked_by_its_migration_is_named_so_then_finished() {
    let sim = sim_builder()
        .node_memory(12 * GIB)
        .time_scale(0.2)
        .start()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let slow = || {
        let mut c = common::against(dir, &sim);
        c.env("LABCTL_TIME_SCALE", "0.2");
        c
    };
    let to_pve2 = ["template", "replicate", "9000", "--nodes", "pve2"];
    let mut first = slow();
    first
        .args(to_pve2)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    until(&sim, "the copy's migration", |guests| {
        guests
            .iter()
            .any(|g| g["vmid"] != 9000 && g["lock"].as_str() == Some("migrate"))
    })
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let out = common::output(
        slow(),
        &[
            "template",
            "replicate",
            "9000",
            "--nodes",
            "pve2",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("locked (migrate)")
            && out.stderr.contains("migration")
            && !out.stderr.contains("clone task"),
        "{out}"
    );
    let out = common::output(slow(), &to_pve2).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("waiting for its migration"), "{out}");
    let (replicas, sets) = replicas_of_9000(dir, &sim).await;
    assert_eq!(replicas, 1, "{sets}");
}
