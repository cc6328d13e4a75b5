//! `lab reset` through the binary against the simulator: a student who changed files gets
//! them back with the same VMID, MAC, address, ACL, tags and fence — by rollback on
//! LVM-thin, by re-clone on ZFS with a newer snapshot in the way — and a re-clone cut off
//! after the destroy is completed by the next run from the record.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{
    against, exits, interrupt, json, output, pool_guests, read_json, root, sim, sim_builder,
    write_file, Out,
};
use pve_sim::SimHandle;
use serde_json::{json, Value};

/// A home with `lab.toml` holding `text`: the home and the lab file's path.
fn lab_file(text: &str) -> (tempfile::TempDir, String) {
    let home = tempfile::tempdir().unwrap();
    let lab = write_file(home.path(), "lab.toml", text);
    (home, lab)
}

/// A home with the lab `name` of `count` students that takes a baseline snapshot.
fn lab_dir(name: &str, count: u32) -> (tempfile::TempDir, String) {
    lab_file(&format!(
        "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5999\"\n\
         teachers = [\"10.10.0.1\"]\n\n[snapshots]\nbaseline = true\n"
    ))
}

/// Asks `done` up to 4000 times, `pause_ms` apart: whether it came true.
async fn eventually(pause_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..4000 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
    }
    false
}

/// `lab up` (twice: the baseline is taken once) and `lab access grant`.
async fn up(home: &Path, sim: &SimHandle, lab: &str, pool: &str) {
    let out = exits(home, sim, 0, &["lab", "up", lab]).await;
    assert!(out.stderr.contains("snapshot baseline: "), "{out}");
    let again = exits(home, sim, 0, &["lab", "up", lab]).await;
    assert!(again.stderr.contains("0 taken"), "{again}");
    for g in guests(sim, pool).values() {
        assert_eq!(snapshots(g), ["baseline"], "one baseline each: {g}");
    }
    exits(home, sim, 0, &["lab", "access", "grant", lab]).await;
}

/// The lab `name` of `count` students (the pool is its name), up as [`up`] leaves it.
async fn up_lab(sim: &SimHandle, name: &str, count: u32) -> (tempfile::TempDir, String) {
    let (home, lab) = lab_dir(name, count);
    up(home.path(), sim, &lab, name).await;
    (home, lab)
}

/// A simulator with the lab `name` of `count` students up as [`up_lab`] leaves it: the
/// simulator, the home and the lab file's path.
async fn sim_with_lab(name: &str, count: u32) -> (SimHandle, tempfile::TempDir, String) {
    let sim = sim().await;
    let (home, lab) = up_lab(&sim, name, count).await;
    (sim, home, lab)
}

/// `lab snapshot LAB NAME --yes`, which must succeed.
async fn snapshot(home: &Path, sim: &SimHandle, lab: &str, name: &str) {
    exits(home, sim, 0, &["lab", "snapshot", lab, name, "--yes"]).await;
}

fn vmid(g: &Value) -> u64 {
    g["vmid"].as_u64().unwrap()
}

/// `lab reset LAB ARGS…` (see [`exits`]), which must exit with `code`.
async fn reset(home: &Path, sim: &SimHandle, code: i32, lab: &str, args: &[&str]) -> Out {
    let mut all = vec!["lab", "reset", lab];
    all.extend_from_slice(args);
    exits(home, sim, code, &all).await
}

/// `lab reset LAB HOST --dry-run -o json`, which must succeed: its output and the plan.
async fn dry_run(home: &Path, sim: &SimHandle, lab: &str, host: &str) -> (Out, Value) {
    let dry = reset(home, sim, 0, lab, &[host, "--dry-run", "-o", "json"]).await;
    let plan = json(&dry.stdout);
    (dry, plan)
}

/// `lab reset LAB HOST --yes`, which must be refused (exit 2) with nothing of the pool
/// `pool` changed: its output.
async fn refused_unchanged(home: &Path, sim: &SimHandle, lab: &str, pool: &str, host: &str) -> Out {
    let before = guests(sim, pool);
    let out = reset(home, sim, 2, lab, &[host, "--yes"]).await;
    assert_eq!(guests(sim, pool), before, "nothing changed: {out}");
    out
}

/// Where `lab reset` keeps its record of the lab `lab`: beside the lab file.
fn record_path(home: &Path, lab: &str) -> PathBuf {
    home.join(format!("{lab}-reset.json"))
}

/// The reset record `lab reset` keeps beside the lab file.
fn reset_record(home: &Path, lab: &str) -> Value {
    read_json(&record_path(home, lab))
}

/// Writes `record` as the reset record at `path`, as an earlier run would have left it.
fn write_record(path: &Path, record: &Value) {
    std::fs::write(path, record.to_string()).unwrap();
}

/// The lab's guests: host name → the guest's state.
fn guests(sim: &SimHandle, pool: &str) -> BTreeMap<String, Value> {
    pool_guests(&sim.state(), pool)
        .into_iter()
        .map(|g| (g["name"].as_str().unwrap().to_owned(), g))
        .collect()
}

fn snapshots(g: &Value) -> Vec<String> {
    g["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn mac(g: &Value) -> String {
    g["config"]["net0"]
        .as_str()
        .unwrap()
        .split(',')
        .find_map(|p| p.strip_prefix("virtio="))
        .unwrap()
        .to_ascii_lowercase()
}

/// What must survive a reset: id, MAC, address, tags, pool, name, ACL entries on the
/// guest, and the fence (the guest's firewall file and its verdicts).
fn identity(sim: &SimHandle, g: &Value) -> Value {
    let vmid = vmid(g);
    let state = sim.state();
    let acl: Vec<&Value> = state["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == format!("/vms/{vmid}"))
        .collect();
    assert!(!acl.is_empty(), "the student has an ACL entry: {state:#}");
    let id = u32::try_from(vmid).unwrap();
    let teacher = sim.reachability(id, "10.10.0.1", "tcp", Some(22)).unwrap();
    let outside = sim.reachability(id, "10.99.0.9", "tcp", Some(22)).unwrap();
    json!({
        "vmid": vmid,
        "name": g["name"],
        "pool": g["pool"],
        "mac": mac(g),
        "ipv4": g["ipv4"],
        "tags": g["config"]["tags"],
        "firewall_flag": g["config"]["net0"].as_str().unwrap().contains("firewall=1"),
        "acl": acl,
        "reaches_teacher": teacher.allowed,
        "reaches_outside": outside.allowed,
    })
}

fn file_hash(sim: &SimHandle, vmid: u64, path: &str) -> Option<String> {
    let st = sim.guest_state(u32::try_from(vmid).unwrap()).unwrap();
    let content = st["files"][path]["content"].as_str()?;
    Some(lab_grade::sha256_hex(content.as_bytes()))
}

/// The student "breaks" the guest: rewrites a system file and leaves a new one.
fn student_changes(sim: &SimHandle, vmid: u64) {
    sim.put_guest_state(
        u32::try_from(vmid).unwrap(),
        json!({"files": {
            "/etc/os-release": {"content": "broken\n"},
            "/root/notes.txt": {"content": "my answers\n"},
        }}),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_is_rolled_back_on_lvm_thin_keeping_everything() {
    let (sim, dir, lab) = sim_with_lab("rst", 2).await;
    let home = dir.path();
    // A later snapshot: LVM-thin still rolls back past it.
    snapshot(home, &sim, &lab, "later").await;
    let before = guests(&sim, "rst");
    let g = &before["rst-01"];
    let vmid = vmid(g);
    let kept = identity(&sim, g);
    let os = file_hash(&sim, vmid, "/etc/os-release").unwrap();
    student_changes(&sim, vmid);
    assert_ne!(file_hash(&sim, vmid, "/etc/os-release").unwrap(), os);

    // The plan says the path and why; nothing changes.
    let (_, plan) = dry_run(home, &sim, &lab, "rst-01").await;
    assert_eq!(plan["plan"][0]["how"], "rollback", "{plan}");
    assert!(
        plan["plan"][0]["why"].as_str().unwrap().contains("later"),
        "{plan}"
    );
    assert!(file_hash(&sim, vmid, "/root/notes.txt").is_some());
    // Unknown students are named with the allowed ones; off a terminal --yes is needed.
    let bad = reset(home, &sim, 2, &lab, &["rst-09", "--yes"]).await;
    assert!(
        bad.stderr.contains("rst-09") && bad.stderr.contains("rst-01, rst-02"),
        "{bad}"
    );
    let no = reset(home, &sim, 2, &lab, &["rst-01"]).await;
    assert!(no.stderr.contains("--yes"), "{no}");
    assert!(file_hash(&sim, vmid, "/root/notes.txt").is_some());

    let out = reset(home, &sim, 0, &lab, &["rst-01", "--yes", "-o", "json"]).await;
    let report = json(&out.stdout);
    assert_eq!(report["students"][0]["how"], "rollback", "{report}");
    assert_eq!(report["students"][0]["outcome"], "done", "{report}");
    let after = guests(&sim, "rst");
    let g = &after["rst-01"];
    assert_eq!(g["status"], "running");
    assert_eq!(file_hash(&sim, vmid, "/etc/os-release").unwrap(), os);
    assert_eq!(file_hash(&sim, vmid, "/root/notes.txt"), None);
    assert_eq!(identity(&sim, g), kept);
    assert_eq!(snapshots(g), ["baseline", "later"], "a rollback keeps them");
    assert_eq!(
        report["students"][0]["addresses"][0], g["ipv4"],
        "the reported address is the guest's"
    );
    // The other student was not touched.
    assert_eq!(after["rst-02"], before["rst-02"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zfs_with_a_newer_snapshot_is_recloned_keeping_everything_and_a_cut_reclone_is_completed() {
    let (sim, dir, lab) = zfs_lab_with_a_later_snapshot("zrs", 2).await;
    let home = dir.path();
    let before = guests(&sim, "zrs");
    let mut kept = BTreeMap::new();
    let mut os = BTreeMap::new();
    for (host, g) in &before {
        let vmid = vmid(g);
        kept.insert(host.clone(), identity(&sim, g));
        os.insert(
            host.clone(),
            file_hash(&sim, vmid, "/etc/os-release").unwrap(),
        );
        student_changes(&sim, vmid);
    }

    let dry = reset(home, &sim, 0, &lab, &["zrs-01", "zrs-02", "--dry-run"]).await;
    assert!(dry.stdout.contains("re-clone"), "{dry}");
    assert!(
        dry.stdout.contains("ZFS") && dry.stdout.contains("later"),
        "{dry}"
    );

    // The first re-clone fails after its destroy: the guest is gone, its record stays.
    sim.fail_next_clone("clone failed: injected by the test");
    let cut = reset(home, &sim, 5, &lab, &["zrs-01", "--yes"]).await;
    let next = format!("run `labctl lab reset {lab} zrs-01 --yes` for them");
    assert!(cut.stderr.contains(&next), "{cut}");
    assert!(!guests(&sim, "zrs").contains_key("zrs-01"), "destroyed");
    let record = reset_record(home, "zrs");
    assert!(record["pending"]["zrs-01"]["nics"].is_array(), "{record}");

    // The re-run completes it from the record, and resets the other one.
    let both = ["zrs-01", "zrs-02", "--yes", "-o", "json"];
    let out = reset(home, &sim, 0, &lab, &both).await;
    let report = json(&out.stdout);
    let after = guests(&sim, "zrs");
    for (i, host) in ["zrs-01", "zrs-02"].iter().enumerate() {
        let row = &report["students"][i];
        assert_eq!(row["hostname"], *host, "{report}");
        assert_eq!(row["how"], "re-clone", "{report}");
        assert_eq!(row["new_baseline"], true, "{report}");
        let g = &after[*host];
        let vmid = vmid(g);
        assert_eq!(g["status"], "running");
        assert_eq!(identity(&sim, g), kept[*host], "{host}");
        assert_eq!(file_hash(&sim, vmid, "/etc/os-release").unwrap(), os[*host]);
        assert_eq!(file_hash(&sim, vmid, "/root/notes.txt"), None);
        assert_eq!(
            snapshots(g),
            ["baseline"],
            "a fresh clone with a new baseline"
        );
        assert!(
            g["config"]["description"].as_str().unwrap().contains("zrs"),
            "the lab's marker: {g}"
        );
    }
    let record = reset_record(home, "zrs");
    assert_eq!(record["pending"], json!({}), "{record}");
    assert_eq!(record["done"].as_array().unwrap().len(), 2, "{record}");
    // `lab status` agrees: both fenced, running, same addresses.
    let st = exits(home, &sim, 0, &["lab", "status", &lab, "-o", "json"]).await;
    let rows = json(&st.stdout);
    for r in rows.as_array().unwrap() {
        assert_eq!(r["fenced"], true, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_student_is_refused() {
    let (sim, dir, lab) = sim_with_lab("frs", 1).await;
    let home = dir.path();
    exits(home, &sim, 0, &["lab", "freeze", &lab, "--yes"]).await;
    let out = refused_unchanged(home, &sim, &lab, "frs", "frs-01").await;
    // Finding 11 (s18): the hint names the student, not `--student NAME`.
    let hint = format!("labctl lab unfreeze {lab} --student frs-01 --yes");
    assert!(
        out.stderr.contains("frozen") && out.stderr.contains(&hint),
        "{out}"
    );
    assert!(!out.stderr.contains("NAME"), "{out}");
}

/// Puts the lab template's disk on ZFS (its linked clones are too).
async fn template_on_zfs(sim: &SimHandle) {
    put_config(
        sim,
        "pve1",
        9000,
        "scsi0",
        "local-zfs:base-9000-disk-0,size=8G",
    )
    .await;
}

/// A simulator with the lab `name` of `count` students on ZFS (see [`template_on_zfs`]),
/// up as [`up_lab`] leaves it, then with a newer snapshot `later`: a reset must re-clone.
async fn zfs_lab_with_a_later_snapshot(
    name: &str,
    count: u32,
) -> (SimHandle, tempfile::TempDir, String) {
    let sim = sim().await;
    template_on_zfs(&sim).await;
    let (home, lab) = up_lab(&sim, name, count).await;
    snapshot(home.path(), &sim, &lab, "later").await;
    (sim, home, lab)
}

/// Sets `key` of the guest `vmid`'s config on `node` through the API, as root.
async fn put_config(sim: &SimHandle, node: &str, vmid: u64, key: &str, value: &str) {
    let params = pve_auth::Params::new().with(key, value);
    root(sim)
        .put::<Value>(&format!("/nodes/{node}/qemu/{vmid}/config"), &params)
        .await
        .unwrap();
}

/// The guest's SMBIOS UUID: another guest under the same vmid has another.
fn uuid(g: &Value) -> String {
    g["config"]["smbios1"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `lab reset LAB HOST EXTRA…` first with `--dry-run`, then with `--yes`: both must be
/// refused as usage errors (exit 2); answers the two outputs.
async fn refused_both_ways(
    home: &Path,
    sim: &SimHandle,
    lab: &str,
    host: &str,
    extra: &[&str],
) -> Vec<Out> {
    let mut outs = Vec::new();
    for last in ["--dry-run", "--yes"] {
        let mut args = vec![host];
        args.extend_from_slice(extra);
        args.push(last);
        outs.push(reset(home, sim, 2, lab, &args).await);
    }
    outs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_to_that_does_not_exist_is_refused_naming_the_students_snapshots() {
    let (sim, dir, lab) = sim_with_lab("nto", 1).await;
    let home = dir.path();
    let before = guests(&sim, "nto");
    let to = ["--to", "before-part2"];
    for out in refused_both_ways(home, &sim, &lab, "nto-01", &to).await {
        assert!(
            out.stderr.contains("no snapshot before-part2")
                && out.stderr.contains("nto-01 has the snapshots baseline"),
            "{out}"
        );
        assert!(
            !out.stdout.contains("re-clone"),
            "no plan of a re-clone: {out}"
        );
    }
    assert_eq!(guests(&sim, "nto"), before, "nothing changed");
    assert!(!record_path(home, "nto").exists(), "no record written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zfs_reclone_names_the_snapshots_it_destroys_and_a_deadline_snapshot_needs_discard_evidence(
) {
    let sim = sim().await;
    template_on_zfs(&sim).await;
    let (dir, lab) = up_lab(&sim, "dev", 1).await;
    let home = dir.path();
    snapshot(home, &sim, &lab, "deadline-20261205t1400z").await;
    let before = guests(&sim, "dev");

    // The plan names every snapshot the re-clone destroys; without --discard-evidence
    // the deadline snapshot is kept and nothing changes.
    let args = ["dev-01", "--dry-run", "--discard-evidence", "-o", "json"];
    let dry = reset(home, &sim, 0, &lab, &args).await;
    let plan = json(&dry.stdout);
    assert_eq!(plan["plan"][0]["how"], "re-clone", "{plan}");
    assert!(
        plan["plan"][0]["why"]
            .as_str()
            .unwrap()
            .contains("destroying its snapshots baseline, deadline-20261205t1400z"),
        "{plan}"
    );
    for out in refused_both_ways(home, &sim, &lab, "dev-01", &[]).await {
        assert!(
            out.stderr.contains("dev-01 (deadline-20261205t1400z)")
                && out.stderr.contains("--discard-evidence"),
            "{out}"
        );
    }
    assert_eq!(guests(&sim, "dev"), before, "nothing changed");
    assert!(!record_path(home, "dev").exists(), "no record written");

    let args = ["dev-01", "--yes", "--discard-evidence"];
    reset(home, &sim, 0, &lab, &args).await;
    let after = guests(&sim, "dev");
    assert_eq!(snapshots(&after["dev-01"]), ["baseline"], "a fresh clone");
    assert_ne!(
        uuid(&after["dev-01"]),
        uuid(&before["dev-01"]),
        "another guest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_fails_writes_no_record_and_a_pending_record_for_another_to_is_refused() {
    let (sim, dir, lab) = zfs_lab_with_a_later_snapshot("stp", 1).await;
    let home = dir.path();
    let before = guests(&sim, "stp");
    let g = &before["stp-01"];
    let vmid = vmid(g);
    let node = g["node"].as_str().unwrap();
    sim.fail_next_request(
        "POST",
        &format!("/nodes/{node}/qemu/{vmid}/status/stop"),
        pve_sim::RequestFault::Status(400, "stop refused by the test"),
    )
    .unwrap();
    let out = reset(home, &sim, 5, &lab, &["stp-01", "--yes"]).await;
    assert!(out.stderr.contains("stopping VM"), "{out}");
    let record = record_path(home, "stp");
    let pending = std::fs::read_to_string(&record)
        .map(|t| serde_json::from_str::<Value>(&t).unwrap()["pending"].clone())
        .unwrap_or(json!({}));
    assert_eq!(
        pending,
        json!({}),
        "no record of a re-clone that never destroyed"
    );
    assert_eq!(
        uuid(&guests(&sim, "stp")["stp-01"]),
        uuid(g),
        "the guest is still the student's"
    );

    // A record pending for another snapshot: an explicit --to conflicting with it is
    // refused naming the record.
    write_record(
        &record,
        &json!({"lab": "stp", "pending": {"stp-01": {
            "vmid": vmid, "to": "baseline", "since": "2026-12-05T07:00:00.000Z",
            "nics": [], "tags": [], "fenced": true, "acl": []}}, "done": []}),
    );
    let args = ["stp-01", "--to", "later", "--yes"];
    let out = reset(home, &sim, 2, &lab, &args).await;
    assert!(
        out.stderr.contains("stp-01 (to baseline") && out.stderr.contains(record.to_str().unwrap()),
        "{out}"
    );
    assert_eq!(uuid(&guests(&sim, "stp")["stp-01"]), uuid(g), "untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cut_off_on_the_cluster_is_refused_and_a_missing_manifest_is_an_error() {
    let (sim, dir, lab) = sim_with_lab("cut", 2).await;
    let home = dir.path();
    let missing = home.join("nowhere-freeze.json");
    let args = [
        "cut-01",
        "--manifest",
        missing.to_str().unwrap(),
        "--dry-run",
    ];
    let out = reset(home, &sim, 2, &lab, &args).await;
    assert!(
        out.stderr.contains("nowhere-freeze.json") && out.stderr.contains("no such file"),
        "{out}"
    );
    // No manifest at all, but every link of the guest is down (a cut from elsewhere).
    let g = guests(&sim, "cut")["cut-01"].clone();
    let net0 = g["config"]["net0"].as_str().unwrap();
    put_config(
        &sim,
        g["node"].as_str().unwrap(),
        vmid(&g),
        "net0",
        &format!("{net0},link_down=1"),
    )
    .await;
    let out = refused_unchanged(home, &sim, &lab, "cut", "cut-01").await;
    assert!(
        out.stderr.contains("cut-01 (every NIC's link is down)") && out.stderr.contains("unfreeze"),
        "{out}"
    );
    // Finding 11 (s18): no manifest beside this lab file: the hint names the student and
    // says the freeze was recorded beside another lab file.
    assert!(
        out.stderr.contains("--student cut-01")
            && out
                .stderr
                .contains("whose freeze manifest recorded the freeze"),
        "{out}"
    );
    // The other student is not cut off: its plan is made.
    reset(home, &sim, 0, &lab, &["cut-02", "--dry-run"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_whose_guest_is_gone_is_told_to_run_lab_up() {
    let (sim, dir, lab) = sim_with_lab("gon", 2).await;
    let home = dir.path();
    let vmid = vmid(&guests(&sim, "gon")["gon-02"]).to_string();
    exits(home, &sim, 0, &["vm", "destroy", &vmid, "--stop", "--yes"]).await;
    let out = reset(home, &sim, 4, &lab, &["gon-02", "--yes"]).await;
    assert!(
        out.stderr.contains("gon-02 has no guest") && out.stderr.contains("lab up"),
        "{out}"
    );
    assert!(!out.stderr.contains("is not a student"), "{out}");
    // A name that is no student of the lab is still a usage error.
    reset(home, &sim, 2, &lab, &["gon-07", "--yes"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_reset_says_where_each_student_stands_and_exits_5() {
    let sim = sim().await;
    // A long agent wait: the reset is still waiting when the signal comes.
    let (dir, lab) = lab_file(
        "name = \"sig\"\ntemplate = 9000\ncount = 2\nids = \"5000-5999\"\n\
         teachers = [\"10.10.0.1\"]\n\n[snapshots]\nbaseline = true\n\n[timeouts]\n\
         ready = 86400\n",
    );
    let home = dir.path();
    up(home, &sim, &lab, "sig").await;
    // A snapshot whose agent never answers: after the rollback the reset waits.
    let vmid = vmid(&guests(&sim, "sig")["sig-01"]);
    sim.put_guest_state(u32::try_from(vmid).unwrap(), json!({"agent": "stopped"}))
        .unwrap();
    snapshot(home, &sim, &lab, "hung").await;
    sim.put_guest_state(
        u32::try_from(vmid).unwrap(),
        json!({"agent": "running", "files": {"/root/marker": {"content": "x\n"}}}),
    )
    .unwrap();
    let child = against(home, &sim)
        .args([
            "lab", "reset", &lab, "sig-01", "sig-02", "--to", "hung", "--yes", "-o", "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Rolled back (the marker is gone): the reset now waits for an agent that is stopped.
    let rolled = eventually(5, || file_hash(&sim, vmid, "/root/marker").is_none()).await;
    assert!(rolled, "the rollback never happened");
    interrupt(&child);
    let out = tokio::time::timeout(common::RUN_TIMEOUT, child.wait_with_output())
        .await
        .expect("labctl ended")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    let next = format!("run `labctl lab reset {lab} sig-01 sig-02 --to hung --yes`");
    assert!(
        stderr.contains("interrupted") && stderr.contains(&next),
        "{stderr}"
    );
    // A rollback has no record to complete from.
    assert!(!stderr.contains("re-clone is completed"), "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["students"][0]["outcome"], "interrupted", "{report}");
    assert_eq!(report["students"][1]["outcome"], "not started", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_kill_during_the_clone_waits_for_it_and_completes() {
    let sim = sim().await;
    // Full clones (slow enough to be caught in flight); no baseline: a reset re-clones.
    let (dir, lab) = lab_file(
        "name = \"kcl\"\ntemplate = 9000\ncount = 1\nids = \"5000-5999\"\nclone = \"full\"\n\
         teachers = [\"10.10.0.1\"]\n",
    );
    let home = dir.path();
    exits(home, &sim, 0, &["lab", "up", &lab]).await;
    let before = guests(&sim, "kcl");
    let g = &before["kcl-01"];
    let vmid = vmid(g);
    let mut child = against(home, &sim)
        .args(["lab", "reset", &lab, "kcl-01", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let in_flight = |sim: &SimHandle| {
        sim.state()["guests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["vmid"] == vmid && x["lock"] == "clone" && uuid(x) != uuid(g))
    };
    let seen = eventually(2, || in_flight(&sim)).await;
    assert!(seen, "never saw the re-clone in flight");
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let out = reset(home, &sim, 0, &lab, &["kcl-01", "--yes"]).await;
    assert!(!out.stderr.contains("not in the lab's pool"), "{out}");
    let after = guests(&sim, "kcl");
    let now = &after["kcl-01"];
    assert_eq!(now["vmid"], vmid);
    assert_eq!(now["status"], "running");
    assert_eq!(mac(now), mac(g), "the MAC is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_record_of_another_guest_is_dropped_not_resumed() {
    let (sim, dir, lab) = sim_with_lab("old", 1).await;
    let home = dir.path();
    let before = guests(&sim, "old");
    let g = &before["old-01"];
    let vmid = vmid(g);
    // Left by a re-clone of an earlier lab of that name: another guest, other MACs.
    let record = record_path(home, "old");
    write_record(
        &record,
        &json!({"lab": "old", "pending": {"old-01": {
            "vmid": vmid, "to": "baseline", "since": "2026-12-01T07:00:00.000Z",
            "nics": [{"net": "net0", "mac": "bc:24:11:00:00:01"}], "tags": [],
            "fenced": true, "acl": [],
            "uuid": "00000000-0000-4000-8000-000000000001", "since_unix": 1}}, "done": []}),
    );
    let (dry, plan) = dry_run(home, &sim, &lab, "old-01").await;
    assert!(
        dry.stderr
            .contains("would drop the pending re-clone of old-01"),
        "{dry}"
    );
    assert_eq!(plan["plan"][0]["how"], "rollback", "{plan}");
    let kept = read_json(&record);
    assert!(
        kept["pending"]["old-01"].is_object(),
        "a dry run changes nothing"
    );

    let out = reset(home, &sim, 0, &lab, &["old-01", "--yes", "-o", "json"]).await;
    assert!(
        out.stderr
            .contains("dropped the pending re-clone of old-01")
            && out.stderr.contains("another guest"),
        "{out}"
    );
    let report = json(&out.stdout);
    assert_eq!(report["students"][0]["how"], "rollback", "{report}");
    let after = guests(&sim, "old");
    assert_eq!(
        uuid(&after["old-01"]),
        uuid(g),
        "the guest was not destroyed"
    );
    assert_eq!(mac(&after["old-01"]), mac(g));
    let now = read_json(&record);
    assert_eq!(now["pending"], json!({}), "{now}");
}

/// A lab `name` of `count` students without a baseline (a reset re-clones): its text.
fn reclone_lab(name: &str, count: u32) -> String {
    format!(
        "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5999\"\n\
         teachers = [\"10.10.0.1\"]\n"
    )
}

/// The operator role's privileges (`labctl setup operator --privileges -o json`).
async fn operator_privileges(home: &Path) -> Vec<String> {
    let out = output(
        common::labctl(home),
        &["setup", "operator", "--privileges", "-o", "json"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    json(&out.stdout)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["privilege"].as_str().unwrap().to_owned())
        .collect()
}

/// An API token of `op@pve` whose role `role` holds the operator's privileges except
/// `without`, on `/`: `op@pve!tk=SECRET`.
async fn token_without(sim: &SimHandle, home: &Path, role: &str, without: &str) -> String {
    let privs: Vec<String> = operator_privileges(home)
        .await
        .into_iter()
        .filter(|p| p != without)
        .collect();
    let c = root(sim);
    let post = |path: &'static str, params: pve_auth::Params| {
        let c = c.clone();
        async move { c.post::<Value>(path, &params).await.unwrap() }
    };
    post(
        "/access/roles",
        pve_auth::Params::new()
            .with("roleid", role)
            .with("privs", privs.join(",").as_str()),
    )
    .await;
    post(
        "/access/users",
        pve_auth::Params::new().with("userid", "op@pve"),
    )
    .await;
    c.put::<Value>(
        "/access/acl",
        &pve_auth::Params::new()
            .with("path", "/")
            .with("roles", role)
            .with("users", "op@pve"),
    )
    .await
    .unwrap();
    let t: Value = c
        .post(
            "/access/users/op@pve/token/tk",
            &pve_auth::Params::new().with("privsep", false),
        )
        .await
        .unwrap();
    format!("op@pve!tk={}", t["value"].as_str().unwrap())
}

/// `labctl` against the simulator with the API token `token` (no password).
fn with_token(home: &Path, sim: &SimHandle, token: &str) -> tokio::process::Command {
    let mut c = common::labctl(home);
    c.env("PVE_HOST", sim.url())
        .env("PVE_TOKEN", token)
        .env("LABCTL_TIME_SCALE", common::SCALE);
    c
}

// Finding 1 (exploratory, s18): the guest was destroyed before the template and the
// login's rights were known to be good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclone_with_a_bad_template_or_without_vm_clone_is_refused_before_the_guest_is_touched()
{
    let sim = sim().await;
    let text = reclone_lab("tpl", 1);
    let (dir, lab) = lab_file(&text);
    let home = dir.path();
    exits(home, &sim, 0, &["lab", "up", &lab]).await;
    let before = guests(&sim, "tpl");
    for (template, code, says) in [
        ("100", 2, "is not a template"),
        ("9999", 4, "template 9999 not found"),
        ("9001", 2, "a container (LXC)"),
    ] {
        let bad = write_file(
            home,
            "bad.toml",
            &text.replace("template = 9000", &format!("template = {template}")),
        );
        let dry = reset(home, &sim, code, &bad, &["tpl-01", "--dry-run"]).await;
        assert!(dry.stderr.contains(says), "{dry}");
        let out = reset(home, &sim, code, &bad, &["tpl-01", "--yes"]).await;
        assert!(
            out.stderr.contains(says) && out.stderr.contains("nothing was changed"),
            "{out}"
        );
        assert_eq!(guests(&sim, "tpl"), before, "untouched: {out}");
    }
    assert!(!record_path(home, "tpl").exists(), "no record written");

    // A token whose role lacks VM.Clone: refused with exit 3 before the stop.
    let token = token_without(&sim, home, "NoClone", "VM.Clone").await;
    for last in ["--dry-run", "--yes"] {
        let out = output(
            with_token(home, &sim, &token),
            &["lab", "reset", &lab, "tpl-01", last],
        )
        .await;
        assert_eq!(out.code, Some(3), "{out}");
        assert!(
            out.stderr.contains("VM.Clone on /vms/9000") && out.stderr.contains("tpl-01"),
            "{out}"
        );
        assert!(
            !out.stderr.contains(&token),
            "the token's secret was printed"
        );
        assert_eq!(guests(&sim, "tpl"), before, "untouched: {out}");
    }
    // The good template and root: the re-clone is done.
    let out = reset(home, &sim, 0, &lab, &["tpl-01", "--yes"]).await;
    assert_eq!(guests(&sim, "tpl")["tpl-01"]["status"], "running", "{out}");
}

/// A pending re-clone of `host` written as `lab reset` writes it right before its destroy:
/// the guest's MAC, UUID, tags and ACL entries.
fn pending_record_of(sim: &SimHandle, home: &Path, lab: &str, host: &str) {
    let g = &guests(sim, lab)[host];
    let vmid = vmid(g);
    let acl: Vec<Value> = sim.state()["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == format!("/vms/{vmid}"))
        .map(|e| {
            json!({"path": e["path"], "kind": "user", "who": e["ugid"], "role": e["roleid"],
                   "propagate": true})
        })
        .collect();
    assert!(!acl.is_empty(), "{host} has an ACL entry");
    let uuid = uuid(g)
        .split(',')
        .find_map(|kv| kv.strip_prefix("uuid="))
        .unwrap()
        .to_owned();
    write_record(
        &record_path(home, lab),
        &json!({"lab": lab, "pending": {host: {
            "vmid": vmid, "to": "baseline", "since": "2026-12-05T07:00:00.000Z",
            "nics": [{"net": "net0", "mac": mac(g)}], "tags": [format!("labctl.{lab}")],
            "fenced": true, "acl": acl, "uuid": uuid, "since_unix": 1}}, "done": []}),
    );
}

/// The ACL entries on `/vms/VMID`.
fn acl_of(sim: &SimHandle, vmid: u64) -> Vec<Value> {
    sim.state()["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == format!("/vms/{vmid}"))
        .cloned()
        .collect()
}

// Finding 2 (exploratory, s18): a pending record of a lab taken down was applied to the
// guest of a later `lab up` (old MAC, an ACL for a revoked user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_record_is_set_aside_by_lab_down_and_never_applied_to_a_later_labs_guest() {
    let sim = sim().await;
    let (dir, lab) = lab_file(&reclone_lab("pnd", 1));
    let home = dir.path();
    exits(home, &sim, 0, &["lab", "up", &lab]).await;
    exits(home, &sim, 0, &["lab", "access", "grant", &lab]).await;
    // An interrupted re-clone's record (the guest was stopped, not yet destroyed).
    pending_record_of(&sim, home, "pnd", "pnd-01");
    let st = exits(home, &sim, 0, &["lab", "status", &lab]).await;
    assert!(
        st.stderr.contains("pending") && st.stderr.contains("pnd-01"),
        "status mentions the pending reset: {st}"
    );
    // `lab down` with the lab file sets the record aside and says so.
    let down = exits(home, &sim, 0, &["lab", "down", &lab, "--yes"]).await;
    assert!(down.stderr.contains("set aside"), "{down}");
    assert!(!record_path(home, "pnd").exists(), "{down}");
    let up = exits(home, &sim, 0, &["lab", "up", &lab]).await;
    assert!(!up.stderr.contains("pending"), "{up}");
    let g = guests(&sim, "pnd")["pnd-01"].clone();
    let out = reset(home, &sim, 0, &lab, &["pnd-01", "--yes"]).await;
    let now = &guests(&sim, "pnd")["pnd-01"];
    assert_eq!(mac(now), mac(&g), "the new guest keeps its own MAC: {out}");
    assert!(acl_of(&sim, vmid(now)).is_empty(), "no ACL re-added: {out}");

    // `lab down` through another copy of the lab file: the record beside this one stays;
    // `lab up` says so, and the reset drops it (the new guest carries the lab's tag and
    // none of the recorded MACs).
    exits(home, &sim, 0, &["lab", "access", "grant", &lab]).await;
    pending_record_of(&sim, home, "pnd", "pnd-01");
    std::fs::create_dir(home.join("other")).unwrap();
    let other = write_file(&home.join("other"), "lab.toml", &reclone_lab("pnd", 1));
    exits(home, &sim, 0, &["lab", "down", &other, "--yes"]).await;
    assert!(record_path(home, "pnd").exists());
    let up = exits(home, &sim, 0, &["lab", "up", &lab]).await;
    assert!(
        up.stderr.contains("pending") && up.stderr.contains("pnd-01"),
        "{up}"
    );
    let g = guests(&sim, "pnd")["pnd-01"].clone();
    let out = reset(home, &sim, 0, &lab, &["pnd-01", "--yes"]).await;
    assert!(
        out.stderr
            .contains("dropped the pending re-clone of pnd-01"),
        "{out}"
    );
    let now = &guests(&sim, "pnd")["pnd-01"];
    assert_eq!(mac(now), mac(&g), "the new guest keeps its own MAC: {out}");
    assert!(acl_of(&sim, vmid(now)).is_empty(), "no ACL re-added: {out}");
}

// Finding 3 (exploratory, s18): "run the same command again" after a partial failure
// reset the students who had succeeded a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_partial_failure_only_the_students_not_reset_are_named_to_run_again() {
    let (sim, dir, lab) = zfs_lab_with_a_later_snapshot("prt", 2).await;
    let home = dir.path();
    sim.fail_next_clone("clone failed: injected by the test");
    let out = reset(home, &sim, 5, &lab, &["prt-01", "prt-02", "--yes"]).await;
    let next = format!("labctl lab reset {lab} prt-01 --yes");
    assert!(
        out.stderr.contains(&next) && out.stderr.contains("prt-02 is reset: leave it out"),
        "{out}"
    );
    assert!(!out.stderr.contains("run the same command"), "{out}");
    assert!(
        out.stderr
            .contains("completes the interrupted re-clone of prt-01"),
        "{out}"
    );
    let g2 = guests(&sim, "prt")["prt-02"].clone();
    // The advised command completes prt-01 and leaves prt-02 as the student has it.
    reset(home, &sim, 0, &lab, &["prt-01", "--yes"]).await;
    let after = guests(&sim, "prt");
    assert_eq!(after["prt-01"]["status"], "running");
    assert_eq!(uuid(&after["prt-02"]), uuid(&g2), "prt-02 not reset again");
}

// Finding 4 (exploratory, s18): a 403 on the start after a rollback left the guest
// stopped with exit 5 and the error text twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_the_start_after_a_rollback_is_exit_3_and_says_the_guest_is_stopped() {
    let (sim, dir, lab) = sim_with_lab("sta", 1).await;
    let home = dir.path();
    let g = guests(&sim, "sta")["sta-01"].clone();
    let vmid = vmid(&g);
    let node = g["node"].as_str().unwrap();
    // A token without VM.PowerMgmt: refused before the rollback.
    let token = token_without(&sim, home, "NoPower", "VM.PowerMgmt").await;
    let out = output(
        with_token(home, &sim, &token),
        &["lab", "reset", &lab, "sta-01", "--yes"],
    )
    .await;
    assert_eq!(out.code, Some(3), "{out}");
    assert!(
        out.stderr.contains(&format!("VM.PowerMgmt on /vms/{vmid}")),
        "{out}"
    );
    assert_eq!(guests(&sim, "sta")["sta-01"], g, "untouched: {out}");
    // A 403 the check could not foresee: exit 3, the guest is said to be stopped, the
    // refusal said once.
    let why = "Permission check failed (/vms/5000, VM.PowerMgmt)";
    sim.fail_next_request(
        "POST",
        &format!("/nodes/{node}/qemu/{vmid}/status/start"),
        pve_sim::RequestFault::Status(403, why),
    )
    .unwrap();
    let out = reset(home, &sim, 3, &lab, &["sta-01", "--yes"]).await;
    assert!(
        out.stderr.contains("left stopped") && out.stderr.contains(&format!("vm start {vmid}")),
        "{out}"
    );
    let said = out.stderr.matches(why).count();
    assert_eq!(said, 1, "the refusal is said once: {out}");
    assert!(
        !out.stderr.contains("an interrupted re-clone is completed"),
        "{out}"
    );
}

// Finding 5 (exploratory, s18): a re-clone moved the student to the template's node
// (one the lab excludes), cloned from the template instead of the replica there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclone_stays_on_the_guests_node_cloned_from_the_copy_there() {
    let sim = sim_builder().start().await.unwrap();
    let text = reclone_lab("plc", 2) + "nodes = [\"pve2\", \"pve3\"]\n";
    let (dir, lab) = lab_file(&text);
    let home = dir.path();
    exits(home, &sim, 0, &["template", "replicate", "9000"]).await;
    exits(home, &sim, 0, &["lab", "up", &lab]).await;
    let before = guests(&sim, "plc");
    for g in before.values() {
        assert_ne!(g["node"], "pve1", "placed by the lab's nodes: {g}");
        assert_ne!(g["linked_base"], 9000, "cloned from the replica: {g}");
    }
    let dry = reset(home, &sim, 0, &lab, &["plc-01", "plc-02", "--dry-run"]).await;
    assert!(
        dry.stdout.contains("NODE") && dry.stdout.contains("STUDENT"),
        "{dry}"
    );
    let args = ["plc-01", "plc-02", "--yes", "-o", "json"];
    let out = reset(home, &sim, 0, &lab, &args).await;
    let report = json(&out.stdout);
    let after = guests(&sim, "plc");
    for (i, host) in ["plc-01", "plc-02"].iter().enumerate() {
        let (was, now) = (&before[*host], &after[*host]);
        assert_eq!(now["node"], was["node"], "{host} stays on its node: {out}");
        assert_eq!(
            now["linked_base"], was["linked_base"],
            "{host} is cloned from the copy on its node: {out}"
        );
        assert_eq!(now["status"], "running");
        let row = &report["students"][i];
        assert_eq!(row["hostname"], *host, "{report}");
        assert_eq!(row["node"], was["node"], "{report}");
        assert!(row.get("student").is_some(), "{report}");
    }
}

// Finding 14 (s18): misleading messages — a wrong password said "waiting for clones of an
// earlier run to land"; a re-clone cut off after its stop did not say the guest was left
// stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_a_reclone_cut_after_its_stop_are_said_as_they_are() {
    let sim = sim().await;
    let (dir, lab) = lab_file(&reclone_lab("msg", 1));
    let home = dir.path();
    exits(home, &sim, 0, &["lab", "up", &lab]).await;
    let mut c = against(home, &sim);
    c.env("PVE_PASSWORD", "wrong");
    let out = output(c, &["lab", "reset", &lab, "msg-01", "--yes"]).await;
    assert_eq!(out.code, Some(3), "{out}");
    assert!(!out.stderr.contains("waiting for clones"), "{out}");

    // The stop runs but its answer is lost: the reset fails before its record.
    let g = guests(&sim, "msg")["msg-01"].clone();
    let (vmid, node) = (vmid(&g), g["node"].as_str().unwrap().to_owned());
    sim.fail_next_request(
        "POST",
        &format!("/nodes/{node}/qemu/{vmid}/status/stop"),
        pve_sim::RequestFault::LostAnswer,
    )
    .unwrap();
    let out = output(
        against(home, &sim),
        &["lab", "reset", &lab, "msg-01", "--yes"],
    )
    .await;
    assert_eq!(out.code, Some(5), "{out}");
    assert!(
        out.stderr.contains("not destroyed") && out.stderr.contains(&format!("vm start {vmid}")),
        "{out}"
    );
    assert_eq!(
        uuid(&guests(&sim, "msg")["msg-01"]),
        uuid(&g),
        "not destroyed"
    );
}
