//! `lab snapshot|freeze|unfreeze` through the binary against the simulator: a class is
//! frozen in the order that keeps the evidence, each student exactly once whatever kills
//! the run, and an extension gives exactly one student rights and link back, then freezes
//! them again.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{
    against, exits, interrupt, json, output, pool_guests, read_json, root, sim, write_file, Out,
    RUN_TIMEOUT,
};
use pve_sim::SimHandle;
use serde_json::Value;
use tokio::process::{Child, Command};

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

/// A home with `checks.toml` and the lab `name` of `count` students: the home and the lab
/// file's path.
fn lab_dir(name: &str, count: u32) -> (tempfile::TempDir, String) {
    let home = tempfile::tempdir().unwrap();
    write_file(home.path(), "checks.toml", CHECKS);
    let text = format!(
        "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5999\"\n\
         teachers = [\"10.10.0.1\"]\nconcurrency = 8\nchecks = \"checks.toml\"\n"
    );
    let lab = write_file(home.path(), "lab.toml", &text);
    (home, lab)
}

/// `lab up` and `lab access grant`: the students with logins.
async fn up_with_logins(home: &Path, sim: &SimHandle, lab: &str) {
    exits(home, sim, 0, &["lab", "up", lab]).await;
    exits(home, sim, 0, &["lab", "access", "grant", lab]).await;
}

/// A simulator with the lab `name` of `count` students (see [`lab_dir`]) up with logins,
/// a guest each: the simulator, the home and the lab file's path.
async fn class(name: &str, count: u32) -> (SimHandle, tempfile::TempDir, String) {
    let sim = sim().await;
    let (home, lab) = lab_dir(name, count);
    up_with_logins(home.path(), &sim, &lab).await;
    assert_eq!(guests(&sim, name).len(), count as usize, "a guest each");
    (sim, home, lab)
}

/// `lab freeze LAB --yes`, which must succeed.
async fn freeze(home: &Path, sim: &SimHandle, lab: &str) -> Out {
    exits(home, sim, 0, &["lab", "freeze", lab, "--yes"]).await
}

/// `lab unfreeze LAB --yes`, which must succeed.
async fn unfreeze(home: &Path, sim: &SimHandle, lab: &str) -> Out {
    exits(home, sim, 0, &["lab", "unfreeze", lab, "--yes"]).await
}

/// `lab freeze LAB --yes` counted from no request, which must succeed with two writes of the
/// exam role: one cuts the class, one gives the role its privileges back.
async fn freeze_with_two_role_writes(home: &Path, sim: &SimHandle, lab: &str) -> Out {
    sim.reset_requests();
    let out = freeze(home, sim, lab).await;
    assert_eq!(
        count(sim, "PUT /access/roles/{roleid}"),
        2,
        "{}",
        sim.requests()
    );
    out
}

/// `lab status LAB -o json` run as `c`, which must succeed: its rows.
async fn status_rows(c: Command, lab: &str) -> Vec<Value> {
    let st = output(c, &["lab", "status", lab, "-o", "json"]).await;
    assert_eq!(st.code, Some(0), "{st}");
    json(&st.stdout).as_array().unwrap().clone()
}

/// Starts `lab freeze LAB --yes` and kills it (SIGKILL) as soon as `pred` holds (see
/// [`until`]).
async fn kill_freeze_when(
    home: &Path,
    sim: &SimHandle,
    lab: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) {
    let mut c = against(home, sim);
    c.args(["lab", "freeze", lab, "--yes"]);
    let mut child = c.spawn().unwrap();
    until(sim, what, pred).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// Starts `lab freeze LAB --yes` and kills it (SIGKILL) as soon as the exam role is
/// emptied: the class is cut, nothing after that is done.
async fn kill_freeze_once_cut(home: &Path, sim: &SimHandle, lab: &str) {
    kill_freeze_when(home, sim, lab, "the exam role emptied", exam_role_emptied).await;
}

/// `HH:MM` (UTC) two minutes from now at the earliest: a `--at` whose countdown is still
/// running when the test acts.
fn at_in_three_minutes() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 180;
    format!("{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60)
}

/// Starts `lab freeze LAB --at … --yes` (see [`at_in_three_minutes`]) and waits until it
/// says it counts down to the freeze of the lab `name`.
async fn freeze_later(home: &Path, sim: &SimHandle, lab: &str, name: &str) -> Child {
    let at = at_in_three_minutes();
    let mut c = against(home, sim);
    c.args(["lab", "freeze", lab, "--at", &at, "--yes"])
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    stderr_until(&mut child, &format!("freeze of lab {name} in")).await;
    child
}

/// Starts `lab unfreeze LAB --student HOST --minutes MINUTES --yes`, its stderr piped.
fn extend(home: &Path, sim: &SimHandle, lab: &str, host: &str, minutes: &str) -> Child {
    let mut c = against(home, sim);
    c.args([
        "lab",
        "unfreeze",
        lab,
        "--student",
        host,
        "--minutes",
        minutes,
        "--yes",
    ])
    .stderr(std::process::Stdio::piped());
    c.spawn().unwrap()
}

/// Interrupts `child` (Ctrl-C) and waits (bounded) for its exit code.
async fn interrupt_and_wait(child: &mut Child) -> Option<i32> {
    interrupt(child);
    tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap()
        .code()
}

/// Opens a VNC console on each of `guests` (vmid, state) as root, as a student who kept
/// one open would.
async fn open_consoles<'a>(
    sim: &SimHandle,
    guests: impl IntoIterator<Item = (&'a u64, &'a Value)>,
) {
    let access = pve_access::AccessApi::new(root(sim));
    for (vmid, g) in guests {
        let node = pve_access::NodeName::new(g["node"].as_str().unwrap()).unwrap();
        let id = pve_access::VmId::new(u32::try_from(*vmid).unwrap()).unwrap();
        access
            .open_vnc(&node, pve_access::GuestKind::Qemu, id)
            .await
            .unwrap();
    }
}

/// The lab's guests: vmid → the guest's state.
fn guests(sim: &SimHandle, pool: &str) -> BTreeMap<u64, Value> {
    pool_guests(&sim.state(), pool)
        .into_iter()
        .map(|g| (g["vmid"].as_u64().unwrap(), g))
        .collect()
}

/// The guest's MAC address on net0, in lower case.
fn mac(g: &Value) -> String {
    let net0 = g["config"]["net0"].as_str().unwrap();
    net0.split(',')
        .find_map(|p| p.strip_prefix("virtio="))
        .unwrap()
        .to_ascii_lowercase()
}

/// Whether the guest's net0 link is down.
fn link_down(g: &Value) -> bool {
    g["config"]["net0"]
        .as_str()
        .unwrap()
        .split(',')
        .any(|p| p == "link_down=1")
}

/// The guest's `deadline-…` snapshots.
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

/// The freeze manifest kept beside the lab file.
fn manifest(home: &Path, lab: &str) -> Value {
    read_json(&home.join(format!("{lab}-freeze.json")))
}

/// The name of the manifest's last round.
fn last_round_name(m: &Value) -> String {
    m["rounds"].as_array().unwrap().last().unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A student's steps in the manifest, in the order they were written.
fn steps<'a>(m: &'a Value, host: &str) -> &'a [Value] {
    m["students"][host]["steps"].as_array().unwrap()
}

/// A student's first step `step`.
fn first_step<'a>(m: &'a Value, host: &str, step: &str) -> &'a Value {
    steps(m, host)
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("{host}: no step {step}: {m:#}"))
}

/// A student's last step `step`.
fn last_step<'a>(m: &'a Value, host: &str, step: &str) -> &'a Value {
    steps(m, host)
        .iter()
        .rev()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("{host}: no step {step}: {m:#}"))
}

/// The `at` of a student's last step `step`.
fn step_at<'a>(m: &'a Value, host: &str, step: &str) -> &'a str {
    last_step(m, host, step)["at"].as_str().unwrap()
}

/// Checks a student the round `name` of `m` froze: link down, the MAC of `before` kept,
/// that one deadline snapshot, and every step with its time in the order that keeps the
/// evidence. Answers the student's host name.
fn assert_frozen_in_order<'a>(m: &Value, g: &'a Value, before: &Value, name: &str) -> &'a str {
    let host = g["name"].as_str().unwrap();
    assert!(link_down(g), "{host}: link down");
    assert_eq!(mac(g), mac(before), "{host}: MAC kept");
    assert_eq!(deadline_snapshots(g), vec![name.to_owned()], "{host}");
    let order: Vec<&str> = ["access", "collect", "snapshot", "link_down"]
        .iter()
        .map(|s| step_at(m, host, s))
        .collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{host}: {order:?}");
    host
}

/// The exam role's ACL entries in the simulator's `state`.
fn exam_acl(state: &Value) -> Vec<&Value> {
    state["access"]["acl"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["roleid"] == "LabctlExam")
        .collect()
}

/// Whether the exam role has no privileges in `state`: the class is cut.
fn exam_role_emptied(state: &Value) -> bool {
    state["access"]["roles"]["LabctlExam"]
        .as_array()
        .is_some_and(Vec::is_empty)
}

/// Checks that the exam role has its privileges back, ready for the next exam.
fn assert_exam_role_ready(sim: &SimHandle) {
    let state = sim.state();
    assert!(
        !state["access"]["roles"]["LabctlExam"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "the exam role has its privileges back: {}",
        state["access"]["roles"]
    );
}

/// Checks that no student of `lab` can log in: every login of the lab disabled, no ACL
/// entry of the exam role, no console open. Answers how many logins the lab has.
fn assert_no_login_left(sim: &SimHandle, lab: &str) -> usize {
    let state = sim.state();
    let mut logins = 0;
    for (id, u) in state["access"]["users"].as_object().unwrap() {
        if id.ends_with("@pve")
            && u["comment"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("lab {lab}"))
        {
            assert_eq!(u["enable"], false, "{id}");
            logins += 1;
        }
    }
    assert!(
        exam_acl(&state).is_empty(),
        "no login left: {}",
        state["access"]["acl"]
    );
    assert!(
        state["consoles"].as_array().unwrap().is_empty(),
        "{}",
        state["consoles"]
    );
    logins
}

/// How many requests of the kind `key` the simulator counted.
fn count(sim: &SimHandle, key: &str) -> u64 {
    sim.requests()[key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_is_frozen_in_the_order_that_keeps_the_evidence() {
    let (sim, dir, lab_s) = class("frz", 8).await;
    let home = dir.path();
    let before = guests(&sim, "frz");

    // The plan: nothing changes.
    let dry = exits(home, &sim, 0, &["lab", "freeze", &lab_s, "--dry-run"]).await;
    assert!(dry.stdout.contains("dry run"), "{dry}");
    assert!(
        !home.join("frz-freeze.json").exists(),
        "a dry run writes no manifest"
    );
    // Off a terminal without --yes: refused, nothing changed.
    let no = exits(home, &sim, 2, &["lab", "freeze", &lab_s]).await;
    assert!(no.stderr.contains("--yes"), "{no}");
    assert_eq!(guests(&sim, "frz"), before);

    // A console open on every student's guest (as a student who kept it open would).
    open_consoles(&sim, &before).await;
    assert_eq!(sim.state()["consoles"].as_array().unwrap().len(), 8);

    // One write cut the class; one more gave the role its privileges back.
    freeze_with_two_role_writes(home, &sim, &lab_s).await;
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
        let host = assert_frozen_in_order(&m, g, &before[vmid], name);
        assert_eq!(
            m["students"][host]["frozen"].as_str(),
            Some(step_at(&m, host, "link_down"))
        );
        // Its console was stopped with the access, and the manifest names the task.
        let access = first_step(&m, host, "access");
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
    assert_no_login_left(&sim, "frz");
    assert_exam_role_ready(&sim);
    let verify = ["lab", "access", "verify", &lab_s, "--revoked"];
    exits(home, &sim, 0, &verify).await;

    // `lab status` says frozen, and when.
    let st = exits(home, &sim, 0, &["-o", "json", "lab", "status", &lab_s]).await;
    let rows: Vec<Value> = serde_json::from_str(&st.stdout).unwrap();
    assert!(
        rows.iter().all(|r| r["frozen"].is_string()),
        "{}",
        st.stdout
    );

    // Again: everyone is frozen, nothing is sent but reads.
    sim.reset_requests();
    let again = freeze(home, &sim, &lab_s).await;
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
    let (dir, lab_s) = lab_dir("snp", 4);
    let home = dir.path();
    exits(home, &sim, 0, &["lab", "up", &lab_s]).await;
    let bad = exits(home, &sim, 2, &["lab", "snapshot", &lab_s, "1st", "--yes"]).await;
    assert!(bad.stderr.contains("letter"), "{bad}");
    for round in 0..2 {
        let args = ["-o", "json", "lab", "snapshot", &lab_s, "baseline", "--yes"];
        let out = exits(home, &sim, 0, &args).await;
        let rows = json(&out.stdout)["students"].as_array().unwrap().clone();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_then_a_rerun_freezes_everyone_exactly_once() {
    let (sim, dir, lab_s) = class("kfz", 6).await;
    let home = dir.path();
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
            pool_guests(s, "kfz")
                .iter()
                .any(|g| g["lock"] == "snapshot")
        }),
        ("a link down", |s| {
            pool_guests(s, "kfz").iter().any(link_down)
        }),
    ];
    for (what, pred) in moments {
        kill_freeze_when(home, &sim, &lab_s, what, pred).await;
        // Finish; the next moment's kill interrupts a fresh freeze.
        let out = output(against(home, &sim), &["lab", "freeze", &lab_s, "--yes"]).await;
        assert_eq!(out.code, Some(0), "after a kill at {what}: {out}");
        let m = manifest(home, "kfz");
        let name = last_round_name(&m);
        for g in pool_guests(&sim.state(), "kfz") {
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
        unfreeze(home, &sim, &lab_s).await;
        assert!(pool_guests(&sim.state(), "kfz")
            .iter()
            .all(|g| !link_down(g)));
    }
    // Three freezes, each snapshot taken once per student.
    for g in pool_guests(&sim.state(), "kfz") {
        assert_eq!(deadline_snapshots(&g).len(), 3, "{g}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_unfreezes_one_student_then_freezes_them_again() {
    let (sim, dir, lab_s) = class("ext", 4).await;
    let home = dir.path();
    freeze(home, &sim, &lab_s).await;
    let frozen = guests(&sim, "ext");
    let (vmid, g) = frozen.iter().next().unwrap();
    let host = g["name"].as_str().unwrap().to_owned();
    let login = format!("{host}@pve");

    let nobody = ["lab", "unfreeze", &lab_s, "--student", "nobody", "--yes"];
    let bad = exits(home, &sim, 2, &nobody).await;
    assert!(bad.stderr.contains("nobody"), "{bad}");

    // The countdown runs in the foreground; while it runs exactly that student has rights
    // and link back.
    let mut child = extend(home, &sim, &lab_s, &host, "1");
    until(&sim, "the student's link up", |s| {
        pool_guests(s, "ext")
            .iter()
            .any(|g| g["name"] == host.as_str() && !link_down(g))
    })
    .await;
    let state = sim.state();
    for g in pool_guests(&state, "ext") {
        let mine = g["name"] == host.as_str();
        assert_eq!(!link_down(&g), mine, "{}", g["name"]);
    }
    assert_eq!(
        state["access"]["users"][&login]["enable"], true,
        "{}",
        state["access"]["users"]
    );
    let acl = exam_acl(&state);
    assert_eq!(acl.len(), 1, "{acl:?}");
    assert_eq!(acl[0]["ugid"], login.as_str());
    // The minutes are wall-clock minutes (the simulator's time scale does not shorten
    // them): Ctrl-C during the countdown freezes at once.
    let seen = stderr_until(&mut child, "again in").await;
    assert!(
        seen.contains("again in 00:00:5"),
        "one wall-clock minute: {seen}"
    );
    assert_eq!(interrupt_and_wait(&mut child).await, Some(0), "{seen}");

    // Frozen again the same way, with a later snapshot; the others were never touched.
    let after = guests(&sim, "ext");
    let m = manifest(home, "ext");
    let rounds = m["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[1]["students"], serde_json::json!([host]));
    let collect = last_step(&m, &host, "collect");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_before_the_time_cancels_the_freeze_with_nothing_done() {
    let sim = sim().await;
    let (dir, lab_s) = lab_dir("atc", 2);
    let home = dir.path();
    exits(home, &sim, 0, &["lab", "up", &lab_s]).await;
    let before = guests(&sim, "atc");
    // Two minutes from now at the earliest: the countdown is running when Ctrl-C comes.
    let mut child = freeze_later(home, &sim, &lab_s, "atc").await;
    assert_eq!(interrupt_and_wait(&mut child).await, Some(1));
    assert_eq!(guests(&sim, "atc"), before, "nothing changed");
    assert!(!home.join("atc-freeze.json").exists());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_an_extension_freezes_the_student_at_once() {
    let (sim, dir, lab_s) = class("cce", 3).await;
    let home = dir.path();
    freeze(home, &sim, &lab_s).await;
    let host = "cce-02";
    // 600 minutes: only Ctrl-C ends this countdown within the test.
    let mut child = extend(home, &sim, &lab_s, host, "600");
    let seen = stderr_until(&mut child, "again in").await;
    assert!(
        seen.contains("again in 09:5"),
        "600 wall-clock minutes: {seen}"
    );
    assert!(pool_guests(&sim.state(), "cce")
        .iter()
        .any(|g| g["name"] == host && !link_down(g)));
    assert_eq!(interrupt_and_wait(&mut child).await, Some(0));
    for g in pool_guests(&sim.state(), "cce") {
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
    let (sim, dir, lab_s) = class("flt", 6).await;
    let home = dir.path();
    for exam in 0..3 {
        sim.set_fault_rate(0.1).unwrap();
        let mut runs = Vec::new();
        let mut ok = false;
        for _ in 0..10 {
            let out = output(against(home, &sim), &["lab", "freeze", &lab_s, "--yes"]).await;
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
        let name = last_round_name(&m);
        for g in pool_guests(&sim.state(), "flt") {
            let host = g["name"].as_str().unwrap();
            assert!(link_down(&g), "exam {exam}: {host}");
            let snaps = deadline_snapshots(&g);
            assert_eq!(snaps.len(), exam + 1, "exam {exam}: {host}: {snaps:?}");
            assert!(snaps.contains(&name), "exam {exam}: {host}: {snaps:?}");
        }
        unfreeze(home, &sim, &lab_s).await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_another_lab_uses_is_left_alone_and_each_user_is_cut_instead() {
    let (sim, dir, lab_a) = class("sha", 3).await;
    let home = dir.path();
    // A second lab in the same directory, in another id range, also in its exam.
    let lab_b = write_file(
        home,
        "other.toml",
        "name = \"shb\"\ntemplate = 9000\ncount = 2\nids = \"6000-6999\"\n\
         teachers = [\"10.10.0.1\"]\nconcurrency = 8\n",
    );
    up_with_logins(home, &sim, &lab_b).await;
    sim.reset_requests();
    freeze(home, &sim, &lab_a).await;
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
    assert_eq!(
        exam_acl(&state).len(),
        2,
        "the other lab's entries stay: {}",
        state["access"]["acl"]
    );
    assert!(pool_guests(&state, "shb").iter().all(|g| !link_down(g)));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfreezing_an_unfinished_freeze_makes_the_next_freeze_a_new_deadline() {
    let (sim, dir, lab_s) = class("unf", 4).await;
    let home = dir.path();
    // A snapshot running (a 20 ms window at this time scale, which a loaded machine's
    // poller can miss) or taken: either way the freeze is cut after its cut began.
    kill_freeze_when(home, &sim, &lab_s, "a snapshot running or taken", |s| {
        pool_guests(s, "unf")
            .iter()
            .any(|g| g["lock"] == "snapshot" || !deadline_snapshots(g).is_empty())
    })
    .await;
    // The teacher gives up on that deadline: everyone continues.
    unfreeze(home, &sim, &lab_s).await;
    let first = manifest(home, "unf")["rounds"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    freeze(home, &sim, &lab_s).await;
    let m = manifest(home, "unf");
    let rounds = m["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{m:#}");
    let second = rounds[1]["name"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(rounds[1]["students"].as_array().unwrap().len(), 4);
    assert!(rounds.iter().all(|r| r["finished"].is_string()), "{m:#}");
    for g in pool_guests(&sim.state(), "unf") {
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
    let (sim, dir, lab_s) = class("reup", 2).await;
    let home = dir.path();
    freeze(home, &sim, &lab_s).await;
    exits(home, &sim, 0, &["lab", "down", &lab_s, "--yes"]).await;
    up_with_logins(home, &sim, &lab_s).await;
    let fresh = guests(&sim, "reup");
    assert_eq!(fresh.len(), 2);
    for g in fresh.values() {
        assert!(deadline_snapshots(g).is_empty() && !link_down(g), "{g:#}");
    }
    // The old class's manifest does not make the new class frozen.
    for r in status_rows(against(home, &sim), &lab_s).await {
        assert!(r["frozen"].is_null(), "not frozen: {r:#}");
    }
    let out = freeze(home, &sim, &lab_s).await;
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
    let (sim, dir, lab_s) = class("colf", 2).await;
    let home = dir.path();
    // The evidence root is a file: the collection itself cannot be written.
    std::fs::write(home.join("notadir"), "x").unwrap();
    let out = output(
        against(home, &sim),
        &["lab", "freeze", &lab_s, "--yes", "--evidence", "notadir"],
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
    let good = ["lab", "freeze", &lab_s, "--yes", "--evidence", "good"];
    exits(home, &sim, 0, &good).await;
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
        let last_collect = last_step(&m, h, "collect");
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
    let (sim, dir, lab_s) = class("grf", 2).await;
    let home = dir.path();
    freeze(home, &sim, &lab_s).await;
    let users = lab_users(&sim, "grf");
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(users.values().all(|e| !e), "{users:?}");

    let out = exits(home, &sim, 1, &["lab", "access", "grant", &lab_s]).await;
    assert!(out.stderr.contains("lab grf is frozen since"), "{out}");
    assert!(out.stderr.contains("unfreeze first"), "{out}");
    assert!(
        lab_users(&sim, "grf").values().all(|e| !e),
        "nobody enabled"
    );

    // Someone enables a login by hand: the next freeze finds it and cuts it again.
    let login = users.keys().next().unwrap().clone();
    let mut p = pve_auth::Params::new();
    p.insert("enable", "1");
    p.insert("expire", "0");
    let _: Value = root(&sim)
        .put(&format!("/access/users/{login}"), &p)
        .await
        .unwrap();
    assert!(lab_users(&sim, "grf")[&login]);
    let out = freeze(home, &sim, &lab_s).await;
    assert!(!out.stdout.contains("frozen already"), "{out}");
    assert!(lab_users(&sim, "grf").values().all(|e| !e), "{out}");
    for g in guests(&sim, "grf").values() {
        assert_eq!(deadline_snapshots(g).len(), 1, "no second snapshot: {g:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_killed_right_after_emptying_the_role_leaves_the_class_frozen_for_unfreeze() {
    let (sim, dir, lab_s) = class("kro", 3).await;
    let home = dir.path();
    kill_freeze_once_cut(home, &sim, &lab_s).await;
    // Whatever the kill interrupted, the manifest knows the cut started.
    let m = manifest(home, "kro");
    assert!(m["rounds"][0]["cut_started"].is_string(), "{m:#}");
    for r in status_rows(against(home, &sim), &lab_s).await {
        assert!(r["frozen"].is_string(), "frozen: {r:#}");
    }
    let dry = ["lab", "unfreeze", &lab_s, "--dry-run", "-o", "json"];
    let dry = exits(home, &sim, 0, &dry).await;
    let plan = json(&dry.stdout);
    assert_eq!(plan["students"].as_array().unwrap().len(), 3, "{dry}");
    unfreeze(home, &sim, &lab_s).await;
    assert_exam_role_ready(&sim);
    let users = lab_users(&sim, "kro");
    assert_eq!(users.len(), 3, "{users:?}");
    assert!(users.values().all(|e| *e), "{users:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_lives_beside_the_lab_file_and_no_run_takes_a_second_deadline_snapshot() {
    let sim = sim().await;
    let (dir, lab) = lab_dir("bes", 2);
    let home = dir.path();
    // The lab file in its own directory; labctl runs elsewhere.
    let exam = home.join("exam");
    std::fs::create_dir(&exam).unwrap();
    let moved = exam.join("lab.toml");
    std::fs::rename(&lab, &moved).unwrap();
    std::fs::rename(home.join("checks.toml"), exam.join("checks.toml")).unwrap();
    let lab_s = moved.to_str().unwrap();
    up_with_logins(home, &sim, lab_s).await;
    let out = freeze(home, &sim, lab_s).await;
    assert!(exam.join("bes-freeze.json").is_file(), "{out}");
    assert!(!home.join("bes-freeze.json").exists());
    // Another directory sees the same manifest.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut c = against(home, &sim);
    c.current_dir(elsewhere.path());
    for r in status_rows(c, lab_s).await {
        assert!(r["frozen"].is_string(), "frozen: {r:#}");
    }
    // A manifest that knows nothing (another --manifest): still one deadline snapshot each.
    let other = elsewhere.path().join("other.json");
    let args = [
        "lab",
        "freeze",
        lab_s,
        "--yes",
        "--manifest",
        other.to_str().unwrap(),
    ];
    exits(home, &sim, 0, &args).await;
    let m = read_json(&other);
    for g in guests(&sim, "bes").values() {
        assert_eq!(deadline_snapshots(g).len(), 1, "{g:#}");
        assert!(link_down(g), "{g:#}");
        // Never collected with the links down (outside probes would fail).
        let host = g["name"].as_str().unwrap();
        let collect = first_step(&m, host, "collect");
        assert_eq!(collect["outcome"], "skipped", "{m:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_freeze_of_a_lab_at_a_time_an_empty_student_is_refused_and_grading_is_shown() {
    let (sim, dir, lab_s) = class("one", 2).await;
    let home = dir.path();
    // A freeze waiting for its time holds the lab: a second one is refused.
    let mut child = freeze_later(home, &sim, &lab_s, "one").await;
    let second = exits(home, &sim, 1, &["lab", "freeze", &lab_s, "--yes"]).await;
    assert!(second.stderr.contains("another labctl run"), "{second}");
    assert_eq!(interrupt_and_wait(&mut child).await, Some(1));
    for g in guests(&sim, "one").values() {
        assert!(deadline_snapshots(g).is_empty() && !link_down(g), "{g:#}");
    }

    let out = freeze(home, &sim, &lab_s).await;
    assert!(
        out.stdout
            .contains(&format!("labctl lab grade {lab_s} --evidence ")),
        "{out}"
    );
    for args in [
        &["lab", "unfreeze", &lab_s, "--student", "", "--dry-run"][..],
        &["lab", "unfreeze", &lab_s, "--student", "", "--yes"][..],
    ] {
        let out = exits(home, &sim, 2, args).await;
        assert!(out.stderr.contains("--student"), "{out}");
    }
    for g in guests(&sim, "one").values() {
        assert!(link_down(g), "still frozen: {g:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_freeze_that_was_unfrozen_is_closed_and_the_next_freeze_is_a_new_deadline() {
    let (sim, dir, lab_s) = class("kun", 2).await;
    let home = dir.path();
    kill_freeze_once_cut(home, &sim, &lab_s).await;
    unfreeze(home, &sim, &lab_s).await;
    let first = manifest(home, "kun")["rounds"][0].clone();
    assert!(first["finished"].is_string(), "closed: {first:#}");
    let out = freeze(home, &sim, &lab_s).await;
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
    let text = "name = \"atx\"\ntemplate = 9000\ncount = 1\n";
    let lab = write_file(home.path(), "lab.toml", text);
    let args = ["lab", "freeze", &lab, "--at", "14:3", "--yes"];
    let out = output(common::labctl(home.path()), &args).await;
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
    let (sim, dir, lab_s) = class("big", 30).await;
    let home = dir.path();
    let before = guests(&sim, "big");
    let mut sessions = BTreeMap::new();
    for vmid in before.keys() {
        let s = sim
            .open_session(100, u32::try_from(*vmid).unwrap(), 22)
            .unwrap();
        assert_eq!(s["alive"], true, "{s}");
        sessions.insert(*vmid, s["id"].as_u64().unwrap());
    }
    // Consoles open on a few students.
    open_consoles(&sim, before.iter().take(3)).await;

    // One write cut the class, one gave the role back, whatever its size; the sessions
    // are not requests.
    freeze_with_two_role_writes(home, &sim, &lab_s).await;
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
        let host = assert_frozen_in_order(&m, g, &before[vmid], name);
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
    let logins = assert_no_login_left(&sim, "big");
    assert_eq!(logins, 30, "every student's login disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lost_answer_while_cutting_access_costs_a_retry_not_the_freeze() {
    let (sim, dir, lab_s) = class("lst", 3).await;
    let home = dir.path();
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
    let out = output(against(home, &sim), &["lab", "freeze", &lab_s, "--yes"]).await;
    assert_eq!(out.code, Some(0), "one run completes the freeze: {out}");
    for g in pool_guests(&sim.state(), "lst") {
        let host = g["name"].as_str().unwrap();
        assert!(link_down(&g), "{host}");
        assert_eq!(deadline_snapshots(&g).len(), 1, "{host}");
    }
    let verify = ["lab", "access", "verify", &lab_s, "--revoked"];
    let out = output(against(home, &sim), &verify).await;
    assert_eq!(out.code, Some(0), "every login is gone: {out}");
    sim.shutdown().await;
}

#[tokio::test]
async fn lab_status_names_a_broken_manifest_instead_of_showing_nobody_frozen_silently() {
    let (sim, home, lab) = class("brk", 1).await;
    freeze(home.path(), &sim, &lab).await;
    let rows = status_rows(against(home.path(), &sim), &lab).await;
    assert!(rows[0]["frozen"].is_string(), "{rows:?}");
    let manifest = home.path().join("brk-freeze.json");
    std::fs::write(&manifest, "{broken").unwrap();
    let st = exits(home.path(), &sim, 0, &["lab", "status", &lab]).await;
    assert!(
        st.stderr.contains("brk-freeze.json") && st.stderr.contains("not one labctl wrote"),
        "{st}"
    );
}

#[tokio::test]
async fn lab_snapshot_prints_one_shape_for_the_dry_run_and_the_real_run_and_csv() {
    let (sim, home, lab) = class("shp", 2).await;
    let h = home.path();
    let dry = exits(
        h,
        &sim,
        0,
        &["lab", "snapshot", &lab, "s1", "--dry-run", "-o", "json"],
    )
    .await;
    let dry = json(&dry.stdout);
    assert_eq!(
        (dry["dry_run"].clone(), dry["snapshot"].clone()),
        (true.into(), "s1".into())
    );
    assert_eq!(dry["students"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(dry["students"][0]["outcome"], "would take");
    let real = exits(
        h,
        &sim,
        0,
        &["lab", "snapshot", &lab, "s1", "--yes", "-o", "json"],
    )
    .await;
    let real = json(&real.stdout);
    assert_eq!(real["dry_run"], false, "{real}");
    assert_eq!(real["students"][0]["outcome"], "done", "{real}");
    assert_eq!(
        dry["students"][0]["hostname"], real["students"][0]["hostname"],
        "the same rows"
    );
    let csv = exits(
        h,
        &sim,
        0,
        &["lab", "snapshot", &lab, "s1", "--yes", "-o", "csv"],
    )
    .await;
    let mut lines = csv.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("HOSTNAME,VMID,SNAPSHOT,OUTCOME,TASK"),
        "{csv}"
    );
    assert!(lines.all(|l| l.contains(",s1,kept,")), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_down_outlasts_a_run_of_failed_reads_of_the_student_logins() {
    let (sim, dir, lab_s) = class("dwn", 2).await;
    let home = dir.path();
    // More failures in a row than the client's own retries of a read (4 attempts): the
    // step must try again itself, as a soak run at 20 % faults found.
    for _ in 0..5 {
        sim.fail_next_request(
            "GET",
            "/access/acl",
            pve_sim::RequestFault::Status(503, "Service Unavailable"),
        )
        .unwrap();
    }
    exits(home, &sim, 0, &["lab", "down", &lab_s, "--yes"]).await;
    assert!(pool_guests(&sim.state(), "dwn").is_empty());
    sim.shutdown().await;
}
