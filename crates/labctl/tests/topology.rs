//! A topology lab through the binary against the simulator (issue 20): the example
//! `examples/topology.toml` unchanged — 10 students with a router and two hosts each on
//! the student's own `lan` — comes up with one SDN apply; the reachability oracle over
//! every ordered pair of the 30 guests and the teacher says what an independent reading of
//! the API (guest configs, SDN, firewall options) predicts; `lab down` removes everything
//! with one more apply and leaves the SDN as before; SIGKILL during `up` and a re-run
//! complete every student with no duplicate and no orphan vnet.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use pve_auth::Params;
use pve_sim::SimHandle;
use serde_json::Value;

/// The example, as a teacher would run it.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/topology.toml")
}

/// The simulator's SDN configuration (edited, running, applied), without its counters.
fn sdn_config(sim: &SimHandle) -> Value {
    let s = sim.sdn();
    serde_json::json!({
        "config": s["config"],
        "running": s["running"],
        "applied": s["applied"],
        "pending": s["pending"],
        "locked": s["locked"],
    })
}

/// The lab's guests in the simulator: vmid → name.
fn lab_guests(sim: &SimHandle, pool: &str) -> BTreeMap<u32, String> {
    pool_guests(&sim.state(), pool)
        .iter()
        .map(|g| {
            (
                u32::try_from(g["vmid"].as_u64().unwrap()).unwrap(),
                g["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `GET path` as root, the `data` of the answer.
async fn get(sim: &SimHandle, path: &str) -> Value {
    root(sim).get::<Value>(path, &Params::new()).await.unwrap()
}

/// What an independent reading of the API predicts, without the oracle: for each guest of
/// the lab, its student's vnets it is plugged into and whether it has a fenced uplink NIC.
struct Predicted {
    /// vmid → lab vnets its NICs are on.
    vnets: BTreeMap<u32, BTreeSet<String>>,
    /// vmid → it has an uplink NIC (vmbr0) with firewall=1 and its guest firewall on.
    fenced_uplink: BTreeMap<u32, bool>,
    /// vmid → it has a NIC on the uplink at all.
    uplink: BTreeMap<u32, bool>,
}

async fn predict(sim: &SimHandle, guests: &BTreeMap<u32, String>) -> Predicted {
    // The applied vnets and who they belong to (alias), read from the API.
    let vnets = get(sim, "/cluster/sdn/vnets").await;
    let ours: BTreeMap<String, String> = vnets
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            let alias = v["alias"].as_str()?;
            alias
                .starts_with("labctl exam2 ")
                .then(|| (v["vnet"].as_str().unwrap().to_owned(), alias.to_owned()))
        })
        .collect();
    assert_eq!(ours.len(), 10, "one vnet per student: {vnets:#}");
    let mut p = Predicted {
        vnets: BTreeMap::new(),
        fenced_uplink: BTreeMap::new(),
        uplink: BTreeMap::new(),
    };
    let cluster_on = get(sim, "/cluster/firewall/options").await["enable"].as_u64() == Some(1);
    for (&vmid, name) in guests {
        let node = sim.state()["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["vmid"] == vmid)
            .unwrap()["node"]
            .as_str()
            .unwrap()
            .to_owned();
        let config = get(sim, &format!("/nodes/{node}/qemu/{vmid}/config")).await;
        let options = get(sim, &format!("/nodes/{node}/qemu/{vmid}/firewall/options")).await;
        let guest_fw = options["enable"].as_u64() == Some(1);
        let mut on = BTreeSet::new();
        let (mut uplink, mut fenced) = (false, false);
        for (key, value) in config.as_object().unwrap() {
            if !key.starts_with("net") || !key[3..].chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let text = value.as_str().unwrap();
            let part = |k: &str| {
                text.split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(str::to_owned)
            };
            let bridge = part("bridge").unwrap();
            if let Some(alias) = ours.get(&bridge) {
                // The vnet's alias names the student this guest belongs to.
                let student = alias.split(' ').nth(2).unwrap();
                assert!(
                    name.starts_with(&format!("{student}-")),
                    "{name} is on {bridge} of {student}"
                );
                on.insert(bridge);
            } else {
                assert_eq!(bridge, "vmbr0", "{name} {key}: {text}");
                uplink = true;
                fenced = cluster_on && guest_fw && part("firewall").as_deref() == Some("1");
            }
        }
        p.vnets.insert(vmid, on);
        p.uplink.insert(vmid, uplink);
        p.fenced_uplink.insert(vmid, !uplink || fenced);
    }
    p
}

#[tokio::test]
async fn the_example_topology_comes_up_isolated_for_every_pair_and_goes_down_cleanly() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let file = example();
    let file = file.to_str().unwrap();
    let sdn_before = sdn_config(&sim);
    let applies_before = sim.sdn_applies();

    let out = exits(home.path(), &sim, 0, &["lab", "up", file]).await;
    let guests = lab_guests(&sim, "exam2");
    assert_eq!(guests.len(), 30, "{out}");
    assert_eq!(
        guests.get(&5000).map(String::as_str),
        Some("exam2-01-router")
    );
    assert_eq!(
        guests.get(&5012).map(String::as_str),
        Some("exam2-02-host2")
    );
    assert_eq!(
        sim.sdn_applies() - applies_before,
        1,
        "every network in one apply"
    );

    // The oracle over every ordered pair of the 30 guests and the teacher (VMID 100).
    let p = predict(&sim, &guests).await;
    let student = |name: &str| name.rsplit_once('-').unwrap().0.to_owned();
    let mut checked = 0;
    for (&a, an) in &guests {
        assert!(
            p.fenced_uplink[&a],
            "{an}: its uplink NIC carries the fence"
        );
        for (&b, bn) in &guests {
            if a == b {
                continue;
            }
            let v = sim.reachability(a, &b.to_string(), "icmp", None).unwrap();
            let same_student = student(an) == student(bn);
            // Independent: a vnet in common (read from configs and SDN).
            let shared = !p.vnets[&a].is_disjoint(&p.vnets[&b]);
            assert_eq!(shared, same_student, "{an} and {bn} share a network");
            assert_eq!(
                v.allowed, same_student,
                "{an} -> {bn}: the oracle says {} ({})",
                v.allowed, v.reason
            );
            checked += 1;
        }
        // The teacher: from every uplink, and only from there (a host reaches it only if
        // its router routes, which a fresh router does not).
        let v = sim.reachability(a, "100", "icmp", None).unwrap();
        assert_eq!(v.allowed, p.uplink[&a], "{an} -> teacher: {}", v.reason);
        let v = sim.reachability(100, &a.to_string(), "icmp", None).unwrap();
        assert_eq!(v.allowed, p.uplink[&a], "teacher -> {an}: {}", v.reason);
        // Nothing else on the uplink: a production VM.
        let v = sim.reachability(a, "200", "icmp", None).unwrap();
        assert!(!v.allowed, "{an} -> vm 200: {}", v.reason);
        checked += 3;
    }
    assert_eq!(checked, 30 * 29 + 30 * 3);

    // Status: each machine with its student's network and the fence.
    let out = exits(home.path(), &sim, 0, &["lab", "status", file, "-o", "json"]).await;
    let rows = json(&out.stdout);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 30);
    for r in rows {
        let nets = r["networks"].as_array().unwrap();
        assert_eq!(nets.len(), 1, "{r}");
        assert!(nets[0].as_str().unwrap().starts_with("lan=v"), "{r}");
        assert_eq!(r["fenced"], true, "{r}");
    }

    // A second up changes nothing and applies nothing.
    exits(home.path(), &sim, 0, &["lab", "up", file]).await;
    assert_eq!(sim.sdn_applies() - applies_before, 1);
    assert_eq!(lab_guests(&sim, "exam2").len(), 30);

    // Down: guests, subnets, vnets, the lab's zone, one apply; the SDN as before.
    let out = exits(home.path(), &sim, 0, &["lab", "down", file, "--dry-run"]).await;
    assert!(out.stdout.contains("networks: remove"), "{out}");
    exits(home.path(), &sim, 0, &["lab", "down", file, "--yes"]).await;
    assert!(lab_guests(&sim, "exam2").is_empty());
    assert_eq!(sim.sdn_applies() - applies_before, 2, "one apply down");
    assert_eq!(sdn_config(&sim), sdn_before, "the cluster's SDN as before");
}

#[tokio::test]
async fn sigkill_during_up_of_a_topology_and_a_rerun_leave_every_student_complete() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("count = 10", "count = 4");
    let file = write_file(dir.path(), "topology.toml", &text);
    let sdn_before = sdn_config(&sim);
    type Phase = (&'static str, fn(&SimHandle) -> bool);
    let phases: [Phase; 4] = [
        // Killed while it holds the SDN lock (networks created, not yet applied).
        ("networks locked", |s| s.sdn()["locked"] == true),
        ("networks made", |s| s.sdn_applies() > 0),
        ("clone phase", |s| {
            !pool_guests(&s.state(), "exam2").is_empty()
        }),
        ("start phase", |s| {
            pool_guests(&s.state(), "exam2")
                .iter()
                .any(|g| g["status"] == "running")
        }),
    ];
    for (phase, pred) in phases {
        let mut child = against(home.path(), &sim)
            .args(["lab", "up", &file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = false;
        for _ in 0..4000 {
            if pred(&sim) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.start_kill().unwrap();
        let _ = child.wait().await;
        assert!(seen, "never saw the {phase}");
        let out = exits(home.path(), &sim, 0, &["lab", "up", &file]).await;
        let guests = lab_guests(&sim, "exam2");
        let names: BTreeSet<&String> = guests.values().collect();
        assert_eq!(guests.len(), 12, "{phase}: {out}");
        assert_eq!(names.len(), 12, "{phase}: no duplicate machine");
        let vnets = get(&sim, "/cluster/sdn/vnets").await;
        assert_eq!(
            vnets.as_array().unwrap().len(),
            4,
            "{phase}: one vnet per student, no orphan: {vnets:#}"
        );
        // Down after the re-run leaves nothing; the next phase starts from scratch.
        exits(home.path(), &sim, 0, &["lab", "down", &file, "--yes"]).await;
        assert!(lab_guests(&sim, "exam2").is_empty(), "{phase}");
        assert_eq!(sdn_config(&sim), sdn_before, "{phase}: SDN as before");
    }
}

#[tokio::test]
async fn sigkill_during_up_then_down_leaves_nothing() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let file = example();
    let file = file.to_str().unwrap();
    let sdn_before = sdn_config(&sim);
    let mut child = against(home.path(), &sim)
        .args(["lab", "up", file])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..4000 {
        if pool_guests(&sim.state(), "exam2").len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    exits(home.path(), &sim, 0, &["lab", "down", file, "--yes"]).await;
    assert!(lab_guests(&sim, "exam2").is_empty());
    assert_eq!(sdn_config(&sim), sdn_before, "no orphan vnet or zone");
}

/// The example with another name, id range and class size.
fn variant(dir: &Path, name: &str, ids: &str, count: u32) -> String {
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("name = \"exam2\"", &format!("name = \"{name}\""))
        .replace(
            "hostname = \"exam2-{n:02}\"",
            &format!("hostname = \"{name}-{{n:02}}\""),
        )
        .replace("ids = \"5000-5999\"", &format!("ids = \"{ids}\""))
        .replace("count = 10", &format!("count = {count}"));
    write_file(dir, &format!("{name}.toml"), &text)
}

/// Found by a hurried teacher: three topology labs brought up at once refused each
/// other's changes in progress as "pending changes that are not the lab's".
#[tokio::test]
async fn three_topology_labs_brought_up_at_once_all_come_up_and_one_goes_down_alone() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = [
        ("ta", "5000-5299"),
        ("tb", "6000-6299"),
        ("tc", "7000-7299"),
    ]
    .iter()
    .map(|(n, ids)| variant(dir.path(), n, ids, 8))
    .collect();
    let args: Vec<[&str; 3]> = files.iter().map(|f| ["lab", "up", f.as_str()]).collect();
    let runs = args
        .iter()
        .map(|a| output(against(home.path(), &sim), a.as_slice()));
    for out in futures::future::join_all(runs).await {
        assert_eq!(out.code, Some(0), "{out}");
    }
    for lab in ["ta", "tb", "tc"] {
        assert_eq!(lab_guests(&sim, lab).len(), 24, "{lab}");
    }
    let vnets = get(&sim, "/cluster/sdn/vnets").await;
    assert_eq!(vnets.as_array().unwrap().len(), 24, "{vnets:#}");
    exits(home.path(), &sim, 0, &["lab", "down", &files[1], "--yes"]).await;
    assert!(lab_guests(&sim, "tb").is_empty());
    let out = exits(
        home.path(),
        &sim,
        0,
        &["lab", "status", &files[0], "-o", "json"],
    )
    .await;
    assert_eq!(json(&out.stdout).as_array().unwrap().len(), 24);
    let vnets = get(&sim, "/cluster/sdn/vnets").await;
    assert_eq!(vnets.as_array().unwrap().len(), 16, "{vnets:#}");
    for f in [&files[0], &files[2]] {
        exits(home.path(), &sim, 0, &["lab", "down", f, "--yes"]).await;
    }
}

/// Found by a hurried teacher: without `subnets` the hosts get no address from the
/// cluster (the student gives them), and `lab up` waited for one until it failed.
#[tokio::test]
async fn a_topology_without_dhcp_comes_up_with_the_hosts_agents_alone() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(variant(dir.path(), "nodhcp", "5000-5099", 2))
        .unwrap()
        .replace("subnets = \"10.100.0.0/16\"", "");
    let file = write_file(dir.path(), "nodhcp.toml", &text);
    let out = exits(home.path(), &sim, 0, &["lab", "up", &file, "-o", "json"]).await;
    let rows = json(&out.stdout);
    let hosts: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["hostname"].as_str().unwrap().contains("-host"))
        .collect();
    assert_eq!(hosts.len(), 4, "{out}");
    for h in hosts {
        assert_eq!(h["addresses"], serde_json::json!([]), "{h}");
        assert_eq!(h["state"], "running", "{h}");
    }
    exits(home.path(), &sim, 0, &["lab", "down", &file, "--yes"]).await;
}

/// Found by a hurried teacher: with the lab's guests gone, `lab down` removed its
/// networks without asking (no terminal, no `--yes`) and said "nothing to do".
#[tokio::test]
async fn down_of_networks_alone_asks_first_and_says_what_it_removed() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = variant(dir.path(), "netonly", "5000-5099", 2);
    exits(home.path(), &sim, 0, &["lab", "up", &file]).await;
    for vmid in lab_guests(&sim, "netonly").keys() {
        let id = vmid.to_string();
        exits(
            home.path(),
            &sim,
            0,
            &["vm", "destroy", &id, "--stop", "--yes"],
        )
        .await;
    }
    let out = exits(home.path(), &sim, 2, &["lab", "down", &file]).await;
    assert!(out.stderr.contains("networks"), "{out}");
    assert_eq!(
        get(&sim, "/cluster/sdn/vnets")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = exits(
        home.path(),
        &sim,
        0,
        &["lab", "down", &file, "--dry-run", "-o", "json"],
    )
    .await;
    assert_eq!(
        json(&out.stdout)["networks"].as_array().unwrap().len(),
        2,
        "{out}"
    );
    let out = exits(home.path(), &sim, 0, &["lab", "down", &file, "--yes"]).await;
    assert!(out.stdout.contains("2 networks removed"), "{out}");
    assert!(get(&sim, "/cluster/sdn/vnets")
        .await
        .as_array()
        .unwrap()
        .is_empty());
}

/// Found by a hurried teacher: `lab down` removed a vnet a guest that is not the lab's
/// was still plugged into.
#[tokio::test]
async fn down_keeps_a_network_a_guest_of_someone_else_is_plugged_into() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = variant(dir.path(), "shared", "5000-5099", 1);
    exits(home.path(), &sim, 0, &["lab", "up", &file]).await;
    exits(
        home.path(),
        &sim,
        0,
        &[
            "vm", "clone", "9000", "--name", "outsider", "--newid", "7590",
        ],
    )
    .await;
    let vnet = get(&sim, "/cluster/sdn/vnets").await[0]["vnet"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = root(&sim);
    let set = |bridge: &str| Params::new().with("net0", format!("virtio,bridge={bridge}"));
    c.put::<Value>("/nodes/pve1/qemu/7590/config", &set(&vnet))
        .await
        .unwrap();
    let out = exits(home.path(), &sim, 5, &["lab", "down", &file, "--yes"]).await;
    assert!(
        out.stderr.contains("VM 7590 (outsider) net0") && out.stderr.contains(&vnet),
        "{out}"
    );
    assert!(
        lab_guests(&sim, "shared").is_empty(),
        "the lab's guests went"
    );
    assert_eq!(
        get(&sim, "/cluster/sdn/vnets")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Moved off, the next down finishes.
    c.put::<Value>("/nodes/pve1/qemu/7590/config", &set("vmbr0"))
        .await
        .unwrap();
    exits(home.path(), &sim, 0, &["lab", "down", &file, "--yes"]).await;
    assert!(get(&sim, "/cluster/sdn/vnets")
        .await
        .as_array()
        .unwrap()
        .is_empty());
}
