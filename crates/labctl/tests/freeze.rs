//! `lab snapshot|freeze|unfreeze` through the binary against the simulator: a class is
//! frozen in the order that keeps the evidence, each student exactly once whatever kills
//! the run, and an extension gives exactly one student rights and link back, then freezes
//! them again.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{against, output, sim, RUN_TIMEOUT};
use pve_sim::SimHandle;
use serde_json::Value;

const CHECKS: &str = r#"
[[probe]]
id = "host"
file = "/etc/hostname"

[[check]]
id = "hostname"
probe = "host"
points = 1
expect = [{ equals = "{{hostname}}" }]
"#;

fn lab_dir(name: &str, count: u32) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("checks.toml"), CHECKS).unwrap();
    let lab = home.path().join("lab.toml");
    std::fs::write(
        &lab,
        format!(
            "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5999\"\n\
             teachers = [\"10.10.0.1\"]\nconcurrency = 8\nchecks = \"checks.toml\"\n"
        ),
    )
    .unwrap();
    (home, lab)
}

/// `lab up` and `lab access grant`: the students with logins.
async fn up_with_logins(home: &Path, sim: &SimHandle, lab: &Path) {
    let lab = lab.to_str().unwrap();
    let out = output(against(home, sim), &["lab", "up", lab]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let out = output(against(home, sim), &["lab", "access", "grant", lab]).await;
    assert_eq!(out.code, Some(0), "{out}");
}

/// The lab's guests: vmid → the guest's state.
fn guests(sim: &SimHandle, pool: &str) -> BTreeMap<u64, Value> {
    sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pool"] == pool)
        .map(|g| (g["vmid"].as_u64().unwrap(), g.clone()))
        .collect()
}

fn mac(g: &Value) -> String {
    let net0 = g["config"]["net0"].as_str().unwrap();
    net0.split(',')
        .find_map(|p| p.strip_prefix("virtio="))
        .unwrap()
        .to_ascii_lowercase()
}

fn link_down(g: &Value) -> bool {
    g["config"]["net0"]
        .as_str()
        .unwrap()
        .split(',')
        .any(|p| p == "link_down=1")
}

fn deadline_snapshots(g: &Value) -> Vec<String> {
    g["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .filter(|s| s.starts_with("deadline-"))
        .map(str::to_owned)
        .collect()
}

fn manifest(home: &Path, lab: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(home.join(format!("{lab}-freeze.json"))).unwrap())
        .unwrap()
}

/// The `at` of a student's last step `step`.
fn step_at<'a>(m: &'a Value, host: &str, step: &str) -> &'a str {
    m["students"][host]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("{host}: no step {step}: {m:#}"))["at"]
        .as_str()
        .unwrap()
}

fn count(sim: &SimHandle, key: &str) -> u64 {
    sim.requests()[key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_is_frozen_in_the_order_that_keeps_the_evidence() {
    let sim = sim().await;
    let (home, lab) = lab_dir("frz", 8);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let before = guests(&sim, "frz");
    assert_eq!(before.len(), 8);

    // The plan: nothing changes.
    let dry = output(against(home, &sim), &["lab", "freeze", lab_s, "--dry-run"]).await;
    assert_eq!(dry.code, Some(0), "{dry}");
    assert!(dry.stdout.contains("dry run"), "{dry}");
    assert!(
        !home.join("frz-freeze.json").exists(),
        "a dry run writes no manifest"
    );
    // Off a terminal without --yes: refused, nothing changed.
    let no = output(against(home, &sim), &["lab", "freeze", lab_s]).await;
    assert_eq!(no.code, Some(2), "{no}");
    assert!(no.stderr.contains("--yes"), "{no}");
    assert_eq!(guests(&sim, "frz"), before);

    // A console open on every student's guest (as a student who kept it open would).
    let client = pve_auth::PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap();
    let access = pve_access::AccessApi::new(client);
    for (vmid, g) in &before {
        let node = pve_access::NodeName::new(g["node"].as_str().unwrap()).unwrap();
        let id = pve_access::VmId::new(u32::try_from(*vmid).unwrap()).unwrap();
        access
            .open_vnc(&node, pve_access::GuestKind::Qemu, id)
            .await
            .unwrap();
    }
    assert_eq!(sim.state()["consoles"].as_array().unwrap().len(), 8);

    sim.reset_requests();
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    // One write cut the class; one more gave the role its privileges back.
    assert_eq!(
        count(&sim, "PUT /access/roles/{roleid}"),
        2,
        "{}",
        sim.requests()
    );
    let after = guests(&sim, "frz");
    let m = manifest(home, "frz");
    assert_eq!(m["rounds"].as_array().unwrap().len(), 1);
    let round = &m["rounds"][0];
    let name = round["name"].as_str().unwrap();
    assert!(name.starts_with("deadline-"), "{round}");
    assert_eq!(round["access"]["how"], "role", "{round}");
    assert_eq!(round["access"]["writes"], 1, "{round}");
    assert!(round["access"]["spread_ms"].is_u64());
    let us = round["access"]["spread_us"].as_u64().unwrap();
    assert_eq!(us / 1000, round["access"]["spread_ms"].as_u64().unwrap());
    assert!(round["finished"].is_string(), "{round}");
    for (vmid, g) in &after {
        let host = g["name"].as_str().unwrap();
        assert!(link_down(g), "{host}: link down");
        assert_eq!(mac(g), mac(&before[vmid]), "{host}: MAC kept");
        assert_eq!(deadline_snapshots(g), vec![name.to_owned()], "{host}");
        // Every step with its time, in the order that keeps the evidence.
        let order: Vec<&str> = ["access", "collect", "snapshot", "link_down"]
            .iter()
            .map(|s| step_at(&m, host, s))
            .collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{host}: {order:?}");
        assert_eq!(
            m["students"][host]["frozen"].as_str(),
            Some(step_at(&m, host, "link_down"))
        );
        // Its console was stopped with the access, and the manifest names the task.
        let access = m["students"][host]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "access")
            .unwrap();
        assert_eq!(
            access["tasks"].as_array().map(Vec::len),
            Some(1),
            "{access}"
        );
        // The evidence was collected before the link went down.
        let ev = home.join("frz-evidence").join(name).join(host);
        assert!(ev.is_dir(), "{host}: evidence in {}", ev.display());
    }
    // No login: every user disabled, no ACL entry left, the role ready for the next exam.
    let state = sim.state();
    for (id, u) in state["access"]["users"].as_object().unwrap() {
        if id.ends_with("@pve") && u["comment"].as_str().unwrap_or("").contains("lab frz") {
            assert_eq!(u["enable"], false, "{id}");
        }
    }
    assert!(
        !state["access"]["acl"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["roleid"] == "LabctlExam"),
        "{}",
        state["access"]["acl"]
    );
    assert!(
        !state["access"]["roles"]["LabctlExam"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "the exam role has its privileges back: {}",
        state["access"]["roles"]
    );
    assert!(
        state["consoles"].as_array().unwrap().is_empty(),
        "{}",
        state["consoles"]
    );
    let verify = output(
        against(home, &sim),
        &["lab", "access", "verify", lab_s, "--revoked"],
    )
    .await;
    assert_eq!(verify.code, Some(0), "{verify}");

    // `lab status` says frozen, and when.
    let st = output(against(home, &sim), &["-o", "json", "lab", "status", lab_s]).await;
    assert_eq!(st.code, Some(0), "{st}");
    let rows: Vec<Value> = serde_json::from_str(&st.stdout).unwrap();
    assert!(
        rows.iter().all(|r| r["frozen"].is_string()),
        "{}",
        st.stdout
    );

    // Again: everyone is frozen, nothing is sent but reads.
    sim.reset_requests();
    let again = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stdout.contains("frozen already"), "{again}");
    let writes: u64 = sim
        .requests()
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with("GET "))
        .filter(|(k, _)| k.as_str() != "POST /access/ticket")
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    assert_eq!(writes, 0, "{}", sim.requests());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_snapshot_takes_one_per_student_and_keeps_an_existing_one() {
    let sim = sim().await;
    let (home, lab) = lab_dir("snp", 4);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    let out = output(against(home, &sim), &["lab", "up", lab_s]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let bad = output(
        against(home, &sim),
        &["lab", "snapshot", lab_s, "1st", "--yes"],
    )
    .await;
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("letter"), "{bad}");
    for round in 0..2 {
        let out = output(
            against(home, &sim),
            &["-o", "json", "lab", "snapshot", lab_s, "baseline", "--yes"],
        )
        .await;
        assert_eq!(out.code, Some(0), "{out}");
        let rows: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(rows.len(), 4);
        let want = if round == 0 { "done" } else { "kept" };
        assert!(rows.iter().all(|r| r["outcome"] == want), "{}", out.stdout);
    }
    for g in guests(&sim, "snp").values() {
        let n = g["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| *s == "baseline")
            .count();
        assert_eq!(n, 1, "{g}");
    }
    sim.shutdown().await;
}

/// Waits (bounded) until `pred` holds for the simulator's state.
async fn until(sim: &SimHandle, what: &str, pred: impl Fn(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    while !pred(&sim.state()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn lab_guests(state: &Value, pool: &str) -> Vec<Value> {
    state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pool"] == pool)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_then_a_rerun_freezes_everyone_exactly_once() {
    let sim = sim().await;
    let (home, lab) = lab_dir("kfz", 6);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    type Moment = (&'static str, fn(&Value) -> bool);
    let moments: [Moment; 3] = [
        ("a user disabled", |s| {
            s["access"]["users"]
                .as_object()
                .unwrap()
                .values()
                .any(|u| u["enable"] == false)
        }),
        ("a snapshot running", |s| {
            lab_guests(s, "kfz").iter().any(|g| g["lock"] == "snapshot")
        }),
        ("a link down", |s| {
            lab_guests(s, "kfz").iter().any(link_down)
        }),
    ];
    for (what, pred) in moments {
        let mut c = against(home, &sim);
        c.args(["lab", "freeze", lab_s, "--yes"]);
        let mut child = c.spawn().unwrap();
        until(&sim, what, pred).await;
        child.start_kill().unwrap();
        let _ = child.wait().await;
        // Finish; the next moment's kill interrupts a fresh freeze.
        let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
        assert_eq!(out.code, Some(0), "after a kill at {what}: {out}");
        let m = manifest(home, "kfz");
        let name = m["rounds"].as_array().unwrap().last().unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        for g in lab_guests(&sim.state(), "kfz") {
            let host = g["name"].as_str().unwrap();
            assert!(link_down(&g), "{what}: {host}");
            let snaps = deadline_snapshots(&g);
            assert_eq!(
                snaps.iter().filter(|s| **s == name).count(),
                1,
                "{what}: {host} has {snaps:?}"
            );
            for step in ["access", "collect", "snapshot", "link_down"] {
                step_at(&m, host, step);
            }
            assert!(m["students"][host]["frozen"].is_string(), "{what}: {host}");
        }
        assert!(m["rounds"].as_array().unwrap().last().unwrap()["finished"].is_string());
        // The exam continues for the next moment.
        let out = output(against(home, &sim), &["lab", "unfreeze", lab_s, "--yes"]).await;
        assert_eq!(out.code, Some(0), "{out}");
        assert!(lab_guests(&sim.state(), "kfz")
            .iter()
            .all(|g| !link_down(g)));
    }
    // Three freezes, each snapshot taken once per student.
    for g in lab_guests(&sim.state(), "kfz") {
        assert_eq!(deadline_snapshots(&g).len(), 3, "{g}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_unfreezes_one_student_then_freezes_them_again() {
    let sim = sim().await;
    let (home, lab) = lab_dir("ext", 4);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let frozen = guests(&sim, "ext");
    let (vmid, g) = frozen.iter().next().unwrap();
    let host = g["name"].as_str().unwrap().to_owned();
    let login = format!("{host}@pve");

    let bad = output(
        against(home, &sim),
        &["lab", "unfreeze", lab_s, "--student", "nobody", "--yes"],
    )
    .await;
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("nobody"), "{bad}");

    // The countdown runs in the foreground; while it runs exactly that student has rights
    // and link back.
    let mut c = against(home, &sim);
    c.args([
        "lab",
        "unfreeze",
        lab_s,
        "--student",
        &host,
        "--minutes",
        "1",
        "--yes",
    ])
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    until(&sim, "the student's link up", |s| {
        lab_guests(s, "ext")
            .iter()
            .any(|g| g["name"] == host.as_str() && !link_down(g))
    })
    .await;
    let state = sim.state();
    for g in lab_guests(&state, "ext") {
        let mine = g["name"] == host.as_str();
        assert_eq!(!link_down(&g), mine, "{}", g["name"]);
    }
    assert_eq!(
        state["access"]["users"][&login]["enable"], true,
        "{}",
        state["access"]["users"]
    );
    let acl: Vec<&Value> = state["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["roleid"] == "LabctlExam")
        .collect();
    assert_eq!(acl.len(), 1, "{acl:?}");
    assert_eq!(acl[0]["ugid"], login.as_str());
    // The minutes are wall-clock minutes (the simulator's time scale does not shorten
    // them): Ctrl-C during the countdown freezes at once.
    let seen = stderr_until(&mut child, "again in").await;
    assert!(
        seen.contains("again in 00:00:5"),
        "one wall-clock minute: {seen}"
    );
    interrupt(&child);
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{seen}");

    // Frozen again the same way, with a later snapshot; the others were never touched.
    let after = guests(&sim, "ext");
    let m = manifest(home, "ext");
    let rounds = m["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[1]["students"], serde_json::json!([host]));
    let collect = m["students"][&host]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["step"] == "collect")
        .unwrap();
    assert_eq!(
        collect["outcome"], "done",
        "collected with the links up: {m:#}"
    );
    assert!(rounds[1]["name"].as_str() > rounds[0]["name"].as_str());
    for (id, g) in &after {
        assert!(link_down(g), "{}", g["name"]);
        assert_eq!(mac(g), mac(&frozen[id]));
        let want = if id == vmid { 2 } else { 1 };
        assert_eq!(deadline_snapshots(g).len(), want, "{}", g["name"]);
    }
    assert_eq!(sim.state()["access"]["users"][&login]["enable"], false);
    sim.shutdown().await;
}

/// Reads `child`'s stderr until a line contains `needle` (bounded); answers what it read.
async fn stderr_until(child: &mut tokio::process::Child, needle: &str) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let err = child.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(RUN_TIMEOUT, async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains(needle) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "no {needle:?} on stderr:\n{seen}");
    // Keep draining so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    seen
}

fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_before_the_time_cancels_the_freeze_with_nothing_done() {
    let sim = sim().await;
    let (home, lab) = lab_dir("atc", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    let out = output(against(home, &sim), &["lab", "up", lab_s]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let before = guests(&sim, "atc");
    // Two minutes from now at the earliest: the countdown is running when Ctrl-C comes.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 180;
    let at = format!("{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60);
    let mut c = against(home, &sim);
    c.args(["lab", "freeze", lab_s, "--at", &at, "--yes"])
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    stderr_until(&mut child, "freeze of lab atc in").await;
    interrupt(&child);
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(guests(&sim, "atc"), before, "nothing changed");
    assert!(!home.join("atc-freeze.json").exists());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_an_extension_freezes_the_student_at_once() {
    let sim = sim().await;
    let (home, lab) = lab_dir("cce", 3);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let host = "cce-02";
    // 600 minutes: only Ctrl-C ends this countdown within the test.
    let mut c = against(home, &sim);
    c.args([
        "lab",
        "unfreeze",
        lab_s,
        "--student",
        host,
        "--minutes",
        "600",
        "--yes",
    ])
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let seen = stderr_until(&mut child, "again in").await;
    assert!(
        seen.contains("again in 09:5"),
        "600 wall-clock minutes: {seen}"
    );
    assert!(lab_guests(&sim.state(), "cce")
        .iter()
        .any(|g| g["name"] == host && !link_down(g)));
    interrupt(&child);
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    for g in lab_guests(&sim.state(), "cce") {
        assert!(link_down(&g), "{}", g["name"]);
        let want = if g["name"] == host { 2 } else { 1 };
        assert_eq!(deadline_snapshots(&g).len(), want, "{}", g["name"]);
    }
    let m = manifest(home, "cce");
    assert_eq!(m["rounds"].as_array().unwrap().len(), 2);
    assert!(m["rounds"][1]["finished"].is_string());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_ten_percent_faults_runs_of_freeze_end_with_everyone_frozen_once() {
    let sim = sim().await;
    let (home, lab) = lab_dir("flt", 6);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    for exam in 0..3 {
        sim.set_fault_rate(0.1).unwrap();
        let mut runs = Vec::new();
        let mut ok = false;
        for _ in 0..10 {
            let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
            ok = out.code == Some(0);
            runs.push(out);
            if ok {
                break;
            }
        }
        assert!(
            ok,
            "exam {exam}: 10 runs under faults did not finish; the last:\n{}",
            runs.last().unwrap()
        );
        for out in &runs {
            assert!(
                matches!(out.code, Some(0 | 1 | 3 | 5)),
                "exam {exam}: a run ended unexpectedly:\n{out}"
            );
        }
        sim.set_fault_rate(0.0).unwrap();
        let m = manifest(home, "flt");
        let name = m["rounds"].as_array().unwrap().last().unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        for g in lab_guests(&sim.state(), "flt") {
            let host = g["name"].as_str().unwrap();
            assert!(link_down(&g), "exam {exam}: {host}");
            let snaps = deadline_snapshots(&g);
            assert_eq!(snaps.len(), exam + 1, "exam {exam}: {host}: {snaps:?}");
            assert!(snaps.contains(&name), "exam {exam}: {host}: {snaps:?}");
        }
        let out = output(against(home, &sim), &["lab", "unfreeze", lab_s, "--yes"]).await;
        assert_eq!(out.code, Some(0), "{out}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_another_lab_uses_is_left_alone_and_each_user_is_cut_instead() {
    let sim = sim().await;
    let (home, lab_a) = lab_dir("sha", 3);
    let home = home.path();
    up_with_logins(home, &sim, &lab_a).await;
    // A second lab in the same directory, in another id range, also in its exam.
    let lab_b = home.join("other.toml");
    std::fs::write(
        &lab_b,
        "name = \"shb\"\ntemplate = 9000\ncount = 2\nids = \"6000-6999\"\n\
         teachers = [\"10.10.0.1\"]\nconcurrency = 8\n",
    )
    .unwrap();
    up_with_logins(home, &sim, &lab_b).await;
    sim.reset_requests();
    let out = output(
        against(home, &sim),
        &["lab", "freeze", lab_a.to_str().unwrap(), "--yes"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        count(&sim, "PUT /access/roles/{roleid}"),
        0,
        "the shared role is never emptied: {}",
        sim.requests()
    );
    let m = manifest(home, "sha");
    assert_eq!(m["rounds"][0]["access"]["how"], "users");
    assert_eq!(m["rounds"][0]["access"]["writes"], 3);
    let state = sim.state();
    for (id, u) in state["access"]["users"].as_object().unwrap() {
        let comment = u["comment"].as_str().unwrap_or("");
        if comment.contains("lab sha ") || comment.ends_with("lab sha") {
            assert_eq!(u["enable"], false, "{id}");
        }
        if comment.contains("lab shb") {
            assert_eq!(u["enable"], true, "{id} of the other lab keeps its login");
        }
    }
    let others = state["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["roleid"] == "LabctlExam")
        .count();
    assert_eq!(
        others, 2,
        "the other lab's entries stay: {}",
        state["access"]["acl"]
    );
    assert!(lab_guests(&state, "shb").iter().all(|g| !link_down(g)));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfreezing_an_unfinished_freeze_makes_the_next_freeze_a_new_deadline() {
    let sim = sim().await;
    let (home, lab) = lab_dir("unf", 4);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let mut c = against(home, &sim);
    c.args(["lab", "freeze", lab_s, "--yes"]);
    let mut child = c.spawn().unwrap();
    // A snapshot running (a 20 ms window at this time scale, which a loaded machine's
    // poller can miss) or taken: either way the freeze is cut after its cut began.
    until(&sim, "a snapshot running or taken", |s| {
        lab_guests(s, "unf")
            .iter()
            .any(|g| g["lock"] == "snapshot" || !deadline_snapshots(g).is_empty())
    })
    .await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    // The teacher gives up on that deadline: everyone continues.
    let out = output(against(home, &sim), &["lab", "unfreeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let first = manifest(home, "unf")["rounds"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let m = manifest(home, "unf");
    let rounds = m["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{m:#}");
    let second = rounds[1]["name"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(rounds[1]["students"].as_array().unwrap().len(), 4);
    assert!(rounds.iter().all(|r| r["finished"].is_string()), "{m:#}");
    for g in lab_guests(&sim.state(), "unf") {
        assert!(link_down(&g), "{}", g["name"]);
        let snaps = deadline_snapshots(&g);
        assert_eq!(
            snaps.iter().filter(|s| *s == second).count(),
            1,
            "{snaps:?}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_taken_down_and_up_again_is_a_new_class_to_freeze() {
    let sim = sim().await;
    let (home, lab) = lab_dir("reup", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let down = output(against(home, &sim), &["lab", "down", lab_s, "--yes"]).await;
    assert_eq!(down.code, Some(0), "{down}");
    up_with_logins(home, &sim, &lab).await;
    let fresh = guests(&sim, "reup");
    assert_eq!(fresh.len(), 2);
    for g in fresh.values() {
        assert!(deadline_snapshots(g).is_empty() && !link_down(g), "{g:#}");
    }
    // The old class's manifest does not make the new class frozen.
    let st = output(against(home, &sim), &["lab", "status", lab_s, "-o", "json"]).await;
    assert_eq!(st.code, Some(0), "{st}");
    let rows: Value = serde_json::from_str(&st.stdout).unwrap();
    for r in rows.as_array().unwrap() {
        assert!(r["frozen"].is_null(), "not frozen: {r:#}");
    }
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stdout.contains("frozen already"), "{out}");
    assert!(out.stderr.contains("set aside"), "{out}");
    for g in guests(&sim, "reup").values() {
        assert_eq!(deadline_snapshots(g).len(), 1, "{g:#}");
        assert!(link_down(g), "{g:#}");
    }
    // The old manifest is kept beside the new one, never deleted.
    let aside: Vec<_> = std::fs::read_dir(home)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("reup-freeze.set-aside-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let m = manifest(home, "reup");
    for (h, r) in m["students"].as_object().unwrap() {
        assert!(r["frozen"].is_string(), "{h}: {m:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collect_that_fails_stops_the_freeze_before_the_snapshot_and_the_links() {
    let sim = sim().await;
    let (home, lab) = lab_dir("colf", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    // The evidence root is a file: the collection itself cannot be written.
    std::fs::write(home.join("notadir"), "x").unwrap();
    let out = output(
        against(home, &sim),
        &["lab", "freeze", lab_s, "--yes", "--evidence", "notadir"],
    )
    .await;
    assert_ne!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("collecting the evidence failed"),
        "{out}"
    );
    assert!(out.stderr.contains("before the snapshot"), "{out}");
    for g in guests(&sim, "colf").values() {
        assert!(deadline_snapshots(g).is_empty(), "no snapshot: {g:#}");
        assert!(!link_down(g), "links stay up: {g:#}");
    }
    // The re-run collects first, into the new --evidence, and completes the round.
    let out = output(
        against(home, &sim),
        &["lab", "freeze", lab_s, "--yes", "--evidence", "good"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let round: Vec<_> = std::fs::read_dir(home.join("good"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(round.len(), 1, "one round's evidence under good/");
    let m = manifest(home, "colf");
    for (h, g) in guests(&sim, "colf")
        .values()
        .map(|g| (g["name"].clone(), g))
    {
        assert_eq!(deadline_snapshots(g).len(), 1, "{g:#}");
        assert!(link_down(g), "{g:#}");
        let h = h.as_str().unwrap();
        assert!(
            step_at(&m, h, "collect") < step_at(&m, h, "link_down"),
            "{h}: collected before the links went down: {m:#}"
        );
        let last_collect = m["students"][h]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["step"] == "collect")
            .unwrap();
        assert_eq!(last_collect["outcome"], "done", "{m:#}");
    }
}

/// The lab's users (`@pve`, commented with the lab): login → enabled.
fn lab_users(sim: &SimHandle, lab: &str) -> BTreeMap<String, bool> {
    sim.state()["access"]["users"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(id, u)| {
            id.ends_with("@pve")
                && u["comment"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("lab {lab}"))
        })
        .map(|(id, u)| (id.clone(), u["enable"] == true))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_on_a_frozen_lab_is_refused_and_freeze_recuts_a_login_enabled_again() {
    let sim = sim().await;
    let (home, lab) = lab_dir("grf", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let users = lab_users(&sim, "grf");
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(users.values().all(|e| !e), "{users:?}");

    let out = output(against(home, &sim), &["lab", "access", "grant", lab_s]).await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("lab grf is frozen since"), "{out}");
    assert!(out.stderr.contains("unfreeze first"), "{out}");
    assert!(
        lab_users(&sim, "grf").values().all(|e| !e),
        "nobody enabled"
    );

    // Someone enables a login by hand: the next freeze finds it and cuts it again.
    let login = users.keys().next().unwrap().clone();
    let client = pve_auth::PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap();
    let mut p = pve_auth::Params::new();
    p.insert("enable", "1");
    p.insert("expire", "0");
    let _: Value = client
        .put(&format!("/access/users/{login}"), &p)
        .await
        .unwrap();
    assert!(lab_users(&sim, "grf")[&login]);
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stdout.contains("frozen already"), "{out}");
    assert!(lab_users(&sim, "grf").values().all(|e| !e), "{out}");
    for g in guests(&sim, "grf").values() {
        assert_eq!(deadline_snapshots(g).len(), 1, "no second snapshot: {g:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_killed_right_after_emptying_the_role_leaves_the_class_frozen_for_unfreeze() {
    let sim = sim().await;
    let (home, lab) = lab_dir("kro", 3);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let mut c = against(home, &sim);
    c.args(["lab", "freeze", lab_s, "--yes"]);
    let mut child = c.spawn().unwrap();
    until(&sim, "the exam role emptied", |s| {
        s["access"]["roles"]["LabctlExam"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    // Whatever the kill interrupted, the manifest knows the cut started.
    let m = manifest(home, "kro");
    assert!(m["rounds"][0]["cut_started"].is_string(), "{m:#}");
    let st = output(against(home, &sim), &["lab", "status", lab_s, "-o", "json"]).await;
    assert_eq!(st.code, Some(0), "{st}");
    let rows: Value = serde_json::from_str(&st.stdout).unwrap();
    for r in rows.as_array().unwrap() {
        assert!(r["frozen"].is_string(), "frozen: {r:#}");
    }
    let dry = output(
        against(home, &sim),
        &["lab", "unfreeze", lab_s, "--dry-run", "-o", "json"],
    )
    .await;
    assert_eq!(dry.code, Some(0), "{dry}");
    let plan: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(plan["students"].as_array().unwrap().len(), 3, "{dry}");
    let out = output(against(home, &sim), &["lab", "unfreeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let state = sim.state();
    assert!(
        !state["access"]["roles"]["LabctlExam"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "the role has its privileges back: {}",
        state["access"]["roles"]
    );
    let users = lab_users(&sim, "kro");
    assert_eq!(users.len(), 3, "{users:?}");
    assert!(users.values().all(|e| *e), "{users:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_lives_beside_the_lab_file_and_no_run_takes_a_second_deadline_snapshot() {
    let sim = sim().await;
    let (home, lab) = lab_dir("bes", 2);
    let home = home.path();
    // The lab file in its own directory; labctl runs elsewhere.
    let dir = home.join("exam");
    std::fs::create_dir(&dir).unwrap();
    let moved = dir.join("lab.toml");
    std::fs::rename(&lab, &moved).unwrap();
    std::fs::rename(home.join("checks.toml"), dir.join("checks.toml")).unwrap();
    let lab_s = moved.to_str().unwrap();
    up_with_logins(home, &sim, &moved).await;
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(dir.join("bes-freeze.json").is_file(), "{out}");
    assert!(!home.join("bes-freeze.json").exists());
    // Another directory sees the same manifest.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut c = against(home, &sim);
    c.current_dir(elsewhere.path());
    let st = output(c, &["lab", "status", lab_s, "-o", "json"]).await;
    assert_eq!(st.code, Some(0), "{st}");
    let rows: Value = serde_json::from_str(&st.stdout).unwrap();
    for r in rows.as_array().unwrap() {
        assert!(r["frozen"].is_string(), "frozen: {r:#}");
    }
    // A manifest that knows nothing (another --manifest): still one deadline snapshot each.
    let other = elsewhere.path().join("other.json");
    let out = output(
        against(home, &sim),
        &[
            "lab",
            "freeze",
            lab_s,
            "--yes",
            "--manifest",
            other.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    for g in guests(&sim, "bes").values() {
        assert_eq!(deadline_snapshots(g).len(), 1, "{g:#}");
        assert!(link_down(g), "{g:#}");
        // Never collected with the links down (outside probes would fail).
        let host = g["name"].as_str().unwrap();
        let collect = m["students"][host]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "collect")
            .unwrap();
        assert_eq!(collect["outcome"], "skipped", "{m:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_freeze_of_a_lab_at_a_time_an_empty_student_is_refused_and_grading_is_shown() {
    let sim = sim().await;
    let (home, lab) = lab_dir("one", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    // A freeze waiting for its time holds the lab: a second one is refused.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 180;
    let at = format!("{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60);
    let mut c = against(home, &sim);
    c.args(["lab", "freeze", lab_s, "--at", &at, "--yes"])
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    stderr_until(&mut child, "freeze of lab one in").await;
    let second = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(second.code, Some(1), "{second}");
    assert!(second.stderr.contains("another labctl run"), "{second}");
    interrupt(&child);
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    for g in guests(&sim, "one").values() {
        assert!(deadline_snapshots(g).is_empty() && !link_down(g), "{g:#}");
    }

    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("labctl lab grade {lab_s} --evidence ")),
        "{out}"
    );
    for args in [
        &["lab", "unfreeze", lab_s, "--student", "", "--dry-run"][..],
        &["lab", "unfreeze", lab_s, "--student", "", "--yes"][..],
    ] {
        let out = output(against(home, &sim), args).await;
        assert_eq!(out.code, Some(2), "{out}");
        assert!(out.stderr.contains("--student"), "{out}");
    }
    for g in guests(&sim, "one").values() {
        assert!(link_down(g), "still frozen: {g:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_freeze_that_was_unfrozen_is_closed_and_the_next_freeze_is_a_new_deadline() {
    let sim = sim().await;
    let (home, lab) = lab_dir("kun", 2);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let mut c = against(home, &sim);
    c.args(["lab", "freeze", lab_s, "--yes"]);
    let mut child = c.spawn().unwrap();
    until(&sim, "the exam role emptied", |s| {
        s["access"]["roles"]["LabctlExam"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let out = output(against(home, &sim), &["lab", "unfreeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let first = manifest(home, "kun")["rounds"][0].clone();
    assert!(first["finished"].is_string(), "closed: {first:#}");
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr.contains("resuming"), "{out}");
    let m = manifest(home, "kun");
    let rounds = m["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{m:#}");
    assert_ne!(rounds[1]["name"], rounds[0]["name"]);
    assert!(rounds[1]["deadline"].as_str() >= rounds[0]["deadline"].as_str());
    for g in guests(&sim, "kun").values() {
        assert!(link_down(g), "{g:#}");
        assert!(deadline_snapshots(g).contains(&rounds[1]["name"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn an_at_with_one_digit_of_minutes_is_refused_before_anything_is_asked() {
    let home = tempfile::tempdir().unwrap();
    let lab = home.path().join("lab.toml");
    std::fs::write(&lab, "name = \"atx\"\ntemplate = 9000\ncount = 1\n").unwrap();
    let out = common::output(
        common::labctl(home.path()),
        &[
            "lab",
            "freeze",
            lab.to_str().unwrap(),
            "--at",
            "14:3",
            "--yes",
        ],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("HH:MM"), "{out}");
}

/// Acceptance 1 of issue 19: 30 students, each with an established TCP session from the
/// teacher's guest (100, 10.10.0.1) opened before the deadline. After `lab freeze` every
/// link is down with its old MAC, every student has a `deadline-…` snapshot, no login and
/// no console, every session is dead because its link went down, the manifest has every
/// step of every student with its time, and the evidence was collected before the links
/// went down. The sessions are the simulator's test surface: they cost no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_students_with_open_sessions_are_frozen_and_every_session_dies_with_its_link() {
    let sim = sim().await;
    let (home, lab) = lab_dir("big", 30);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    let before = guests(&sim, "big");
    assert_eq!(before.len(), 30);
    let mut sessions = BTreeMap::new();
    for vmid in before.keys() {
        let s = sim
            .open_session(100, u32::try_from(*vmid).unwrap(), 22)
            .unwrap();
        assert_eq!(s["alive"], true, "{s}");
        sessions.insert(*vmid, s["id"].as_u64().unwrap());
    }
    // Consoles open on a few students.
    let client = pve_auth::PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap();
    let access = pve_access::AccessApi::new(client);
    for (vmid, g) in before.iter().take(3) {
        let node = pve_access::NodeName::new(g["node"].as_str().unwrap()).unwrap();
        let id = pve_access::VmId::new(u32::try_from(*vmid).unwrap()).unwrap();
        access
            .open_vnc(&node, pve_access::GuestKind::Qemu, id)
            .await
            .unwrap();
    }

    sim.reset_requests();
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    // One write cut the class, one gave the role back, whatever its size; the sessions
    // are not requests.
    assert_eq!(
        count(&sim, "PUT /access/roles/{roleid}"),
        2,
        "{}",
        sim.requests()
    );
    assert!(
        !sim.requests()
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("_sim")),
        "{}",
        sim.requests()
    );
    let after = guests(&sim, "big");
    let m = manifest(home, "big");
    let round = &m["rounds"][0];
    let name = round["name"].as_str().unwrap();
    assert!(round["finished"].is_string(), "{round}");
    for (vmid, g) in &after {
        let host = g["name"].as_str().unwrap();
        assert!(link_down(g), "{host}: link down");
        assert_eq!(mac(g), mac(&before[vmid]), "{host}: MAC kept");
        assert_eq!(deadline_snapshots(g), vec![name.to_owned()], "{host}");
        let steps: Vec<&str> = ["access", "collect", "snapshot", "link_down"]
            .iter()
            .map(|s| step_at(&m, host, s))
            .collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{host}: {steps:?}");
        // The evidence was there before the link went down, and the session died of the
        // link, not of anything earlier.
        assert!(
            home.join("big-evidence").join(name).join(host).is_dir(),
            "{host}: evidence"
        );
        let s = sim.session(sessions[vmid]).unwrap();
        assert_eq!(s["alive"], false, "{host}: {s}");
        assert!(
            s["reason"].as_str().unwrap().contains("link_down=1"),
            "{host}: {s}"
        );
    }
    let state = sim.state();
    assert!(
        !state["access"]["acl"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["roleid"] == "LabctlExam"),
        "no login left: {}",
        state["access"]["acl"]
    );
    let mut logins = 0;
    for (id, u) in state["access"]["users"].as_object().unwrap() {
        if id.ends_with("@pve") && u["comment"].as_str().unwrap_or("").contains("lab big") {
            assert_eq!(u["enable"], false, "{id}");
            logins += 1;
        }
    }
    assert_eq!(logins, 30, "every student's login disabled");
    assert!(
        state["consoles"].as_array().unwrap().is_empty(),
        "{}",
        state["consoles"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lost_answer_while_cutting_access_costs_a_retry_not_the_freeze() {
    let sim = sim().await;
    let (home, lab) = lab_dir("lst", 3);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up_with_logins(home, &sim, &lab).await;
    // The one write that cuts the class: its answer is lost after the server acted, then
    // the write that gives the role back fails with a 503, then an ACL listing resets.
    sim.fail_next_request(
        "PUT",
        "/access/roles/LabctlExam",
        pve_sim::RequestFault::LostAnswer,
    )
    .unwrap();
    sim.fail_next_request(
        "GET",
        "/access/acl",
        pve_sim::RequestFault::Status(503, "Service Unavailable"),
    )
    .unwrap();
    let out = output(against(home, &sim), &["lab", "freeze", lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "one run completes the freeze: {out}");
    for g in lab_guests(&sim.state(), "lst") {
        let host = g["name"].as_str().unwrap();
        assert!(link_down(&g), "{host}");
        assert_eq!(deadline_snapshots(&g).len(), 1, "{host}");
    }
    let out = output(
        against(home, &sim),
        &["lab", "access", "verify", lab_s, "--revoked"],
    )
    .await;
    assert_eq!(out.code, Some(0), "every login is gone: {out}");
    sim.shutdown().await;
}
