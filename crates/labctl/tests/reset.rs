//! `lab reset` through the binary against the simulator: a student who changed files gets
//! them back with the same VMID, MAC, address, ACL, tags and fence — by rollback on
//! LVM-thin, by re-clone on ZFS with a newer snapshot in the way — and a re-clone cut off
//! after the destroy is completed by the next run from the record.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{against, output, sim};
use pve_sim::SimHandle;
use serde_json::{json, Value};

fn lab_dir(name: &str, count: u32) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let lab = home.path().join("lab.toml");
    std::fs::write(
        &lab,
        format!(
            "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5999\"\n\
             teachers = [\"10.10.0.1\"]\n\n[snapshots]\nbaseline = true\n"
        ),
    )
    .unwrap();
    (home, lab)
}

/// `lab up` (twice: the baseline is taken once) and `lab access grant`.
async fn up(home: &Path, sim: &SimHandle, lab: &Path, pool: &str) {
    let lab = lab.to_str().unwrap();
    let out = output(against(home, sim), &["lab", "up", lab]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("snapshot baseline: "), "{out}");
    let again = output(against(home, sim), &["lab", "up", lab]).await;
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stderr.contains("0 taken"), "{again}");
    for g in guests(sim, pool).values() {
        assert_eq!(snapshots(g), ["baseline"], "one baseline each: {g}");
    }
    let out = output(against(home, sim), &["lab", "access", "grant", lab]).await;
    assert_eq!(out.code, Some(0), "{out}");
}

fn guests(sim: &SimHandle, pool: &str) -> BTreeMap<String, Value> {
    sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pool"] == pool)
        .map(|g| (g["name"].as_str().unwrap().to_owned(), g.clone()))
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
    let vmid = g["vmid"].as_u64().unwrap();
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
    let sim = sim().await;
    let (home, lab) = lab_dir("rst", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up(home, &sim, &lab, "rst").await;
    // A later snapshot: LVM-thin still rolls back past it.
    let out = output(
        against(home, &sim),
        &["lab", "snapshot", lab_s, "later", "--yes"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let before = guests(&sim, "rst");
    let g = &before["rst-01"];
    let vmid = g["vmid"].as_u64().unwrap();
    let kept = identity(&sim, g);
    let os = file_hash(&sim, vmid, "/etc/os-release").unwrap();
    student_changes(&sim, vmid);
    assert_ne!(file_hash(&sim, vmid, "/etc/os-release").unwrap(), os);

    // The plan says the path and why; nothing changes.
    let dry = output(
        against(home, &sim),
        &["lab", "reset", lab_s, "rst-01", "--dry-run", "-o", "json"],
    )
    .await;
    assert_eq!(dry.code, Some(0), "{dry}");
    let plan: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(plan["plan"][0]["how"], "rollback", "{plan}");
    assert!(
        plan["plan"][0]["why"].as_str().unwrap().contains("later"),
        "{plan}"
    );
    assert!(file_hash(&sim, vmid, "/root/notes.txt").is_some());
    // Unknown students are named with the allowed ones; off a terminal --yes is needed.
    let bad = output(
        against(home, &sim),
        &["lab", "reset", lab_s, "rst-09", "--yes"],
    )
    .await;
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(
        bad.stderr.contains("rst-09") && bad.stderr.contains("rst-01, rst-02"),
        "{bad}"
    );
    let no = output(against(home, &sim), &["lab", "reset", lab_s, "rst-01"]).await;
    assert_eq!(no.code, Some(2), "{no}");
    assert!(no.stderr.contains("--yes"), "{no}");
    assert!(file_hash(&sim, vmid, "/root/notes.txt").is_some());

    let out = output(
        against(home, &sim),
        &["lab", "reset", lab_s, "rst-01", "--yes", "-o", "json"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
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
    let sim = sim().await;
    // The template on ZFS: its linked clones are too.
    let client = pve_auth::PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap();
    let params = pve_auth::Params::new().with("scsi0", "local-zfs:base-9000-disk-0,size=8G");
    client
        .put::<Value>("/nodes/pve1/qemu/9000/config", &params)
        .await
        .unwrap();
    let (home, lab) = lab_dir("zrs", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up(home, &sim, &lab, "zrs").await;
    let out = output(
        against(home, &sim),
        &["lab", "snapshot", lab_s, "later", "--yes"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let before = guests(&sim, "zrs");
    let mut kept = BTreeMap::new();
    let mut os = BTreeMap::new();
    for (host, g) in &before {
        let vmid = g["vmid"].as_u64().unwrap();
        kept.insert(host.clone(), identity(&sim, g));
        os.insert(
            host.clone(),
            file_hash(&sim, vmid, "/etc/os-release").unwrap(),
        );
        student_changes(&sim, vmid);
    }

    let dry = output(
        against(home, &sim),
        &["lab", "reset", lab_s, "zrs-01", "zrs-02", "--dry-run"],
    )
    .await;
    assert_eq!(dry.code, Some(0), "{dry}");
    assert!(dry.stdout.contains("re-clone"), "{dry}");
    assert!(
        dry.stdout.contains("ZFS") && dry.stdout.contains("later"),
        "{dry}"
    );

    // The first re-clone fails after its destroy: the guest is gone, its record stays.
    sim.fail_next_clone("clone failed: injected by the test");
    let cut = output(
        against(home, &sim),
        &["lab", "reset", lab_s, "zrs-01", "--yes"],
    )
    .await;
    assert_eq!(cut.code, Some(5), "{cut}");
    assert!(cut.stderr.contains("run the same command again"), "{cut}");
    assert!(!guests(&sim, "zrs").contains_key("zrs-01"), "destroyed");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("zrs-reset.json")).unwrap())
            .unwrap();
    assert!(record["pending"]["zrs-01"]["nics"].is_array(), "{record}");

    // The re-run completes it from the record, and resets the other one.
    let out = output(
        against(home, &sim),
        &[
            "lab", "reset", lab_s, "zrs-01", "zrs-02", "--yes", "-o", "json",
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let after = guests(&sim, "zrs");
    for (i, host) in ["zrs-01", "zrs-02"].iter().enumerate() {
        let row = &report["students"][i];
        assert_eq!(row["hostname"], *host, "{report}");
        assert_eq!(row["how"], "re-clone", "{report}");
        assert_eq!(row["new_baseline"], true, "{report}");
        let g = &after[*host];
        let vmid = g["vmid"].as_u64().unwrap();
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
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("zrs-reset.json")).unwrap())
            .unwrap();
    assert_eq!(record["pending"], json!({}), "{record}");
    assert_eq!(record["done"].as_array().unwrap().len(), 2, "{record}");
    // `lab status` agrees: both fenced, running, same addresses.
    let st = output(against(home, &sim), &["lab", "status", lab_s, "-o", "json"]).await;
    assert_eq!(st.code, Some(0), "{st}");
    let rows: Value = serde_json::from_str(&st.stdout).unwrap();
    for r in rows.as_array().unwrap() {
        assert_eq!(r["fenced"], true, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_student_is_refused() {
    let sim = sim().await;
    let (home, lab) = lab_dir("frs", 1);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up(home, &sim, &lab, "frs").await;
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let before = guests(&sim, "frs");
    let out = output(
        against(home, &sim),
        &["lab", "reset", lab_s, "frs-01", "--yes"],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("frozen") && out.stderr.contains("unfreeze"),
        "{out}"
    );
    assert_eq!(guests(&sim, "frs"), before, "nothing changed");
}
