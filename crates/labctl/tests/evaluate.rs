//! `lab collect|grade|check|lint|selftest` through the binary against the simulator: a
//! class whose work is known is graded as it worked; grading stored evidence sends
//! nothing and gives the same bytes; a killed collection completes without running a
//! finished probe again.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{against, labctl, output, sim};
use pve_sim::SimHandle;
use serde_json::{json, Value};

const CHECKS: &str = include_str!("../../../examples/exam-checks.toml");

/// What a student did of examples/exam-checks.toml's tasks.
#[derive(Debug, Clone, Copy, Default)]
struct Work {
    nginx: bool,
    page: bool,
    dns: bool,
    lan: Option<u8>,
    telnet: bool,
    agent_down: bool,
}

/// A known, varied subset of the tasks for student `i`.
fn work_of(i: usize) -> Work {
    Work {
        nginx: i % 2 == 0,
        page: i % 3 != 0,
        dns: i % 4 < 2,
        lan: match i % 5 {
            0 => None,
            2 => Some(16),
            _ => Some(24),
        },
        telnet: i % 7 == 3,
        agent_down: i == 13,
    }
}

/// The outcome and points each check must give for `w`, from the task's rules (written
/// from the checks file's intent, not from the grader).
fn expected(w: Work) -> BTreeMap<&'static str, (&'static str, f64)> {
    let inside = |pass: bool, points: f64| {
        if w.agent_down {
            ("error", 0.0)
        } else if pass {
            ("pass", points)
        } else {
            ("fail", 0.0)
        }
    };
    let mut e = BTreeMap::new();
    e.insert("nginx-active", inside(w.nginx, 2.0));
    e.insert("index-page", inside(w.page, 1.0));
    e.insert("lan-address", inside(w.lan == Some(24), 2.0));
    e.insert("ping", ("pass", 1.0));
    e.insert("ssh-open", ("pass", 1.0));
    e.insert(
        "no-telnet",
        if w.telnet {
            ("fail", -1.0)
        } else {
            ("pass", 0.0)
        },
    );
    e.insert("dns-www", if w.dns { ("pass", 2.0) } else { ("fail", 0.0) });
    e.insert(
        "web-page",
        match e["nginx-active"].0 {
            "pass" => ("pass", 2.0),
            _ => ("skipped", 0.0),
        },
    );
    if w.agent_down {
        // Without its agent the guest reports no address: the outside probes, which aim
        // at `{{ip}}`, cannot run either. Errors, never fails (and no telnet penalty).
        for id in ["ping", "ssh-open", "no-telnet", "dns-www"] {
            e.insert(id, ("error", 0.0));
        }
    }
    e
}

/// Plays `w` into the guest `vmid` (host name `host`, address `ip`).
fn play(sim: &SimHandle, vmid: u32, host: &str, ip: &str, w: Work) {
    let mut services = serde_json::Map::new();
    let mut files = serde_json::Map::new();
    if w.nginx {
        services.insert(
            "tcp/80".into(),
            json!({"unit": "nginx", "http": {"status": 200, "body": format!("<h1>{host}</h1>\n")}}),
        );
    }
    if w.page {
        files.insert(
            "/var/www/html/index.html".into(),
            json!({"content": format!("<h1>{host}</h1>\n")}),
        );
    }
    if w.dns {
        services.insert(
            "udp/53".into(),
            json!({"unit": "bind9", "dns": {format!("www.{host}.lab."): {"A": [ip]}}}),
        );
    }
    if w.telnet {
        services.insert(
            "tcp/23".into(),
            json!({"unit": "inetd", "banner": "login: "}),
        );
    }
    let mut state = json!({"services": services, "files": files});
    if let Some(p) = w.lan {
        state["interfaces"] = json!({"ens18": {"addresses": [format!("192.168.100.1/{p}")]}});
    }
    if w.agent_down {
        state["agent"] = json!("stopped");
    }
    sim.put_guest_state(vmid, state).unwrap();
}

/// A lab of `count` students using `checks` (the text of a checks file).
fn lab_dir(name: &str, count: u32, checks: &str) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("checks.toml"), checks).unwrap();
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

/// `lab up`, then the students' (vmid, host name, address).
async fn up(home: &Path, sim: &SimHandle, lab: &Path) -> Vec<(u32, String, String)> {
    let out = output(against(home, sim), &["lab", "up", lab.to_str().unwrap()]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let out = output(
        against(home, sim),
        &["-o", "json", "lab", "status", lab.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let rows: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            (
                u32::try_from(r["vmid"].as_u64().unwrap()).unwrap(),
                r["hostname"].as_str().unwrap().to_owned(),
                r["addresses"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn total_requests(sim: &SimHandle) -> u64 {
    sim.requests()
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fn by_host(sheet: &str) -> BTreeMap<String, Value> {
    let list: Vec<Value> = serde_json::from_str(sheet).unwrap();
    list.into_iter()
        .map(|s| (s["hostname"].as_str().unwrap().to_owned(), s))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_of_twenty_is_graded_as_each_student_worked_and_regraded_offline() {
    let sim = sim().await;
    let (home, lab) = lab_dir("grade20", 20, CHECKS);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    let students = up(home, &sim, &lab).await;
    assert_eq!(students.len(), 20);
    let mut want = BTreeMap::new();
    for (i, (vmid, host, ip)) in students.iter().enumerate() {
        play(&sim, *vmid, host, ip, work_of(i));
        want.insert(host.clone(), expected(work_of(i)));
    }

    let out = output(against(home, &sim), &["-o", "json", "lab", "check", lab_s]).await;
    // One student's agent is down: their inside checks are `error`, so exit 1.
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("could not be judged"), "{out}");
    let sheet = by_host(&out.stdout);
    assert_eq!(sheet.len(), 20, "{out}");
    for (host, checks) in &want {
        let s = &sheet[host];
        let mut total = 0.0;
        for (id, (outcome, points)) in checks {
            let c = s["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == *id)
                .unwrap_or_else(|| panic!("{host}: no check {id}\n{out}"));
            assert_eq!(
                (
                    c["outcome"].as_str().unwrap(),
                    c["points"].as_f64().unwrap()
                ),
                (*outcome, *points),
                "{host} {id}: {c}"
            );
            total += points;
        }
        assert_eq!(s["points"].as_f64().unwrap(), total.max(0.0), "{host}: {s}");
        assert_eq!(s["max_points"].as_f64().unwrap(), 11.0);
    }
    // The agent-less student: errors, never fails.
    let down = &sheet[&students[13].1];
    assert_eq!(down["errors"].as_u64(), Some(7), "{down}");
    assert!(
        out.stderr.contains("no address is known"),
        "collect says why the outside probes of {} did not run\n{out}",
        students[13].1
    );

    // Grading the stored evidence: no cluster at all (no PVE_HOST), no request, same bytes.
    let before = total_requests(&sim);
    for format in ["table", "json", "csv"] {
        let a = output(labctl(home), &["-o", format, "lab", "grade", lab_s]).await;
        let b = output(labctl(home), &["-o", format, "lab", "grade", lab_s]).await;
        assert_eq!(a.code, Some(1), "{a}");
        assert_eq!(
            a.stdout, b.stdout,
            "lab grade -o {format} differs between two runs"
        );
        assert!(!a.stdout.is_empty());
    }
    assert_eq!(total_requests(&sim), before, "lab grade sent requests");
    let json1 = output(labctl(home), &["-o", "json", "lab", "grade", lab_s]).await;
    assert_eq!(
        by_host(&json1.stdout),
        sheet,
        "grading again gives what check gave"
    );

    // Fix one check's points and re-grade: exactly that column (and the totals) change.
    let changed = CHECKS.replace(
        "points = 2\nretry = { within = 10, every = 2 }",
        "points = 5\nretry = { within = 10, every = 2 }",
    );
    assert_ne!(
        changed, CHECKS,
        "the checks file changed shape; update the test"
    );
    std::fs::write(home.join("checks.toml"), changed).unwrap();
    let regraded = output(labctl(home), &["-o", "json", "lab", "grade", lab_s]).await;
    assert_eq!(total_requests(&sim), before, "re-grading sent requests");
    let regraded = by_host(&regraded.stdout);
    for (host, old) in &sheet {
        let new = &regraded[host];
        let dns_pass = want[host]["dns-www"].0 == "pass";
        for (o, n) in old["checks"]
            .as_array()
            .unwrap()
            .iter()
            .zip(new["checks"].as_array().unwrap())
        {
            if o["id"] == "dns-www" {
                let p = if dns_pass { 5.0 } else { 0.0 };
                assert_eq!(n["points"].as_f64(), Some(p), "{host}: {n}");
            } else {
                assert_eq!(o, n, "{host}: only dns-www may change");
            }
        }
        let delta = if dns_pass { 3.0 } else { 0.0 };
        assert_eq!(
            new["points"].as_f64().unwrap(),
            old["points"].as_f64().unwrap() + delta
        );
        assert_eq!(new["max_points"].as_f64(), Some(14.0));
    }
    sim.shutdown().await;
}

/// Inside probes that take a while (a command the guests run for 3 simulated minutes,
/// about 1.8 s here), so a collection can be killed in the middle.
const SLOW_CHECKS: &str = r#"
[exam]
timeout = 600

[[probe]]
id = "slow-a"
exec = ["/usr/local/bin/audit", "a"]

[[probe]]
id = "slow-b"
exec = ["/usr/local/bin/audit", "b"]

[[probe]]
id = "host"
file = "/etc/hostname"

[[check]]
id = "audit-a"
probe = "slow-a"
expect = [{ equals = "ok a" }]

[[check]]
id = "audit-b"
probe = "slow-b"
expect = [{ equals = "ok b" }]

[[check]]
id = "hostname"
probe = "host"
expect = [{ equals = "{{hostname}}" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_killed_mid_run_completes_without_running_a_finished_probe_again() {
    let sim = sim().await;
    let (home, lab) = lab_dir("killed", 6, SLOW_CHECKS);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    let students = up(home, &sim, &lab).await;
    for (vmid, _, _) in &students {
        let cmds: Vec<Value> = ["a", "b"]
            .iter()
            .map(|w| {
                json!({"argv": ["/usr/local/bin/audit", w], "stdout": format!("ok {w}\n"),
                       "exit_code": 0, "run_time": 180.0})
            })
            .collect();
        sim.put_guest_state(*vmid, json!({"commands": cmds}))
            .unwrap();
    }
    let evidence = home.join("grade-evidence");
    let ev_s = evidence.to_str().unwrap();

    // Start, wait until some probes have finished, kill -9.
    let mut c = against(home, &sim);
    c.args([
        "lab",
        "collect",
        lab_s,
        "--evidence",
        ev_s,
        "--probes-in-flight",
        "2",
    ]);
    let mut child = c.spawn().unwrap();
    let finished = |dir: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for s in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(s.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with("slow-") && name.ends_with(".json") {
                    out.insert(f.path(), std::fs::read(f.path()).unwrap());
                }
            }
        }
        out
    };
    let waited = tokio::time::timeout(common::RUN_TIMEOUT, async {
        while finished(&evidence).len() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "no probe finished within the time limit");
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(
        !status.success(),
        "the collection ended before it was killed"
    );
    let before_kill = finished(&evidence);
    assert!(
        before_kill.len() < 2 * students.len(),
        "every slow probe had finished already: the kill came too late to test anything"
    );

    // Run again: what had finished is kept byte for byte; the rest is collected.
    let execs_before = exec_count(&sim);
    let out = output(
        against(home, &sim),
        &["-o", "json", "lab", "collect", lab_s, "--evidence", ev_s],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let after = finished(&evidence);
    assert_eq!(after.len(), 2 * students.len(), "{out}");
    for (path, bytes) in &before_kill {
        assert_eq!(&after[path], bytes, "{} was run again", path.display());
    }
    let rerun = 2 * students.len() - before_kill.len();
    assert_eq!(
        exec_count(&sim) - execs_before,
        u64::try_from(rerun).unwrap(),
        "exec requests of the second run: {summary}"
    );
    // Every student's manifest verifies, and the grade sees no problem.
    let store = lab_grade::Store::open(&evidence).unwrap();
    for (_, host, _) in &students {
        assert_eq!(store.verify(host).unwrap(), Vec::new(), "{host}");
    }
    let graded = output(
        labctl(home),
        &["-o", "json", "lab", "grade", lab_s, "--evidence", ev_s],
    )
    .await;
    assert_eq!(graded.code, Some(0), "{graded}");
    for (_, s) in by_host(&graded.stdout) {
        assert_eq!(s["points"].as_f64(), Some(3.0), "{s}");
        assert!(
            s.get("problems")
                .is_none_or(|p| p.as_array().is_some_and(Vec::is_empty)),
            "{s}"
        );
    }
    sim.shutdown().await;
}

/// `POST …/agent/exec` requests the simulator counted.
fn exec_count(sim: &SimHandle) -> u64 {
    sim.requests().as_object().map_or(0, |m| {
        m.iter()
            .filter(|(k, _)| k.contains("agent/exec") && k.starts_with("POST"))
            .filter_map(|(_, v)| v.as_u64())
            .sum()
    })
}

#[tokio::test]
async fn lint_names_each_mistake_and_needs_no_cluster() {
    let broken = r#"
[[probe]]
id = "a"
exec = ["ip", "-j", "addr"]

[[check]]
id = "x"
probe = "nope"
expect = [{ equals = "1" }]
"#;
    let (home, lab) = lab_dir("lint", 2, broken);
    let out = output(labctl(home.path()), &["lab", "lint", lab.to_str().unwrap()]).await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stdout.contains("nope"),
        "the finding names the unknown probe: {out}"
    );

    let (home, lab) = lab_dir("lint", 2, CHECKS);
    let out = output(labctl(home.path()), &["lab", "lint", lab.to_str().unwrap()]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("8 checks"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_proves_each_mutant_breaks_exactly_its_check_and_names_a_check_that_does_not() {
    let sim = sim().await;
    let (home, lab) = lab_dir("selftest", 1, CHECKS);
    let home = home.path();
    let students = up(home, &sim, &lab).await;
    let (vmid, host, ip) = &students[0];
    let all_done = Work {
        nginx: true,
        page: true,
        dns: true,
        lan: Some(24),
        ..Work::default()
    };
    play(&sim, *vmid, host, ip, all_done);
    let reference_before = sim.guest_state(*vmid).unwrap();
    let reference = vmid.to_string();

    let out = output(
        against(home, &sim),
        &[
            "-o",
            "json",
            "lab",
            "selftest",
            lab.to_str().unwrap(),
            "--reference",
            &reference,
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["reference_ok"], true, "{out}");
    let mutants = v["mutants"].as_array().unwrap();
    let of = |id: &str| mutants.iter().find(|m| m["check"] == id).unwrap();
    assert_eq!(
        of("nginx-active")["broke"],
        json!(["nginx-active", "web-page"]),
        "{out}"
    );
    assert_eq!(of("lan-address")["broke"], json!(["lan-address"]), "{out}");
    assert!(mutants.iter().all(|m| m["ok"] == true), "{out}");
    // The reference is untouched and every clone is gone.
    assert_eq!(
        sim.guest_state(*vmid).unwrap()["files"],
        reference_before["files"]
    );
    let guests = sim.state()["guests"].as_array().unwrap().len();

    // A check whose mutant does not break it: selftest fails and names it.
    let weak = CHECKS.replace(
        "probe = \"ssh\"\nexpect = [{ reachable = true }]",
        "probe = \"ssh\"\nexpect = [{ reachable = true }]\nmutant = [\"true\"]",
    );
    assert_ne!(
        weak, CHECKS,
        "the checks file changed shape; update the test"
    );
    std::fs::write(home.join("checks.toml"), weak).unwrap();
    let out = output(
        against(home, &sim),
        &[
            "lab",
            "selftest",
            lab.to_str().unwrap(),
            "--reference",
            &reference,
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("check ssh-open"), "{out}");
    assert!(out.stdout.contains("BROKEN"), "{out}");
    assert_eq!(
        sim.state()["guests"].as_array().unwrap().len(),
        guests,
        "a mutant's clone was left behind"
    );
    sim.shutdown().await;
}

// ---- What an exploratory pass (README and --help only) found, one test each ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_of_a_torn_down_lab_is_never_taken_for_the_new_guests() {
    let sim = sim().await;
    let (home, lab) = lab_dir("again", 2, CHECKS);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    let students = up(home, &sim, &lab).await;
    let all = Work {
        nginx: true,
        page: true,
        dns: true,
        lan: Some(24),
        ..Work::default()
    };
    for (vmid, host, ip) in &students {
        play(&sim, *vmid, host, ip, all);
    }
    let out = output(against(home, &sim), &["lab", "collect", lab_s]).await;
    assert_eq!(out.code, Some(0), "{out}");
    // The next group: same lab file, same directory, fresh guests with the same ids.
    let down = output(against(home, &sim), &["lab", "down", lab_s, "--yes"]).await;
    assert_eq!(down.code, Some(0), "{down}");
    up(home, &sim, &lab).await;
    // Resuming into the same evidence (--redo-errors) must not keep the old guests' results.
    let out = output(
        against(home, &sim),
        &["-o", "json", "lab", "collect", lab_s, "--redo-errors"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("was not used for"), "{out}");
    let graded = output(labctl(home), &["-o", "json", "lab", "grade", lab_s]).await;
    for (_, s) in by_host(&graded.stdout) {
        let nginx = s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "nginx-active")
            .unwrap();
        assert_eq!(nginx["outcome"], "fail", "a fresh guest runs no nginx: {s}");
    }
    // A plain collect after a finished one starts anew and keeps the earlier one aside.
    let out = output(against(home, &sim), &["lab", "collect", lab_s]).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("is kept in"), "{out}");
    let kept = std::fs::read_dir(home)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("again-evidence-")
        })
        .count();
    assert_eq!(kept, 1, "the earlier collection is kept beside the new one");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_evidence_file_is_collected_again_not_sealed_and_a_torn_one_spares_the_class() {
    let sim = sim().await;
    let (home, lab) = lab_dir("tamper", 2, CHECKS);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    let students = up(home, &sim, &lab).await;
    let out = output(against(home, &sim), &["lab", "collect", lab_s]).await;
    assert_eq!(out.code, Some(0), "{out}");
    let host = &students[0].1;
    let file = home.join("tamper-evidence").join(host).join("nginx.json");
    let mut ev: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    ev["stdout"] = json!("active\n");
    ev["exit"] = json!(0);
    ev["sha256"] = json!(lab_grade::sha256_hex(b"active\n"));
    std::fs::write(&file, serde_json::to_vec(&ev).unwrap()).unwrap();
    // Grade sees the edit.
    let graded = output(labctl(home), &["-o", "json", "lab", "grade", lab_s]).await;
    assert_eq!(graded.code, Some(1), "{graded}");
    assert!(by_host(&graded.stdout)[host]["problems"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    // Collecting again re-runs the edited probe instead of sealing the edit.
    let out = output(
        against(home, &sim),
        &["lab", "collect", lab_s, "--redo-errors"],
    )
    .await;
    assert!(out.stderr.contains("was not used for"), "{out}");
    let graded = output(labctl(home), &["-o", "json", "lab", "grade", lab_s]).await;
    let s = &by_host(&graded.stdout)[host];
    let nginx = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "nginx-active")
        .unwrap();
    assert_eq!(nginx["outcome"], "fail", "{s}");
    // A torn file: that student's checks on it are errors; the class is still graded.
    let other = &students[1].1;
    let addr = home.join("tamper-evidence").join(other).join("addr.json");
    std::fs::write(&addr, b"{\"probe\": ").unwrap();
    let graded = output(labctl(home), &["-o", "json", "lab", "grade", lab_s]).await;
    assert_eq!(graded.code, Some(1), "{graded}");
    let sheet = by_host(&graded.stdout);
    assert_eq!(sheet.len(), 2, "{graded}");
    let lan = sheet[other]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "lan-address")
        .unwrap()
        .clone();
    assert_eq!(lan["outcome"], "error", "{lan}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_exits_5_when_probes_could_not_run_and_names_the_teachers_agent() {
    let sim = sim().await;
    let (home, lab) = lab_dir("teach", 2, CHECKS);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    up(home, &sim, &lab).await;
    sim.put_guest_state(100, json!({"agent": "stopped"}))
        .unwrap();
    let out = output(against(home, &sim), &["lab", "collect", lab_s]).await;
    assert_eq!(out.code, Some(5), "{out}");
    assert!(out.stderr.contains("teacher's guest 100"), "{out}");
    assert!(out.stderr.contains("--redo-errors"), "{out}");
    // Kept errors still count on a plain re-run of the unfinished collection.
    let again = output(
        against(home, &sim),
        &["-o", "json", "lab", "collect", lab_s, "--redo-errors"],
    )
    .await;
    assert_eq!(again.code, Some(5), "{again}");
    sim.put_guest_state(100, json!({"agent": "running"}))
        .unwrap();
    let fixed = output(
        against(home, &sim),
        &["-o", "json", "lab", "collect", lab_s, "--redo-errors"],
    )
    .await;
    assert_eq!(fixed.code, Some(0), "{fixed}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_closed_stderr_never_makes_labctl_panic() {
    let (home, lab) = lab_dir("pipe", 2, CHECKS);
    let mut c = labctl(home.path());
    c.args(["lab", "grade", lab.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stderr.take());
    let status = tokio::time::timeout(common::RUN_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "no evidence yet: a usage error, not a panic"
    );
}

#[tokio::test]
async fn lint_warns_of_shadowed_and_empty_roster_columns_and_prints_parse_errors_as_json() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("students.csv"),
        "name,ip,vlan\nAda,1.2.3.4,10\nBob,,\n",
    )
    .unwrap();
    let checks = r#"
[[probe]]
id = "p"
ping = "192.168.{{vlan}}.10"
from = "host"

[[check]]
id = "c"
probe = "p"
expect = [{ reachable = true }]
"#;
    std::fs::write(home.path().join("checks.toml"), checks).unwrap();
    let lab = home.path().join("lab.toml");
    std::fs::write(
        &lab,
        "name = \"rost\"\ntemplate = 9000\nroster = \"students.csv\"\nchecks = \"checks.toml\"\n",
    )
    .unwrap();
    let out = output(
        labctl(home.path()),
        &["-o", "json", "lab", "lint", lab.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, Some(2), "Bob has no vlan: {out}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let text = v["findings"].to_string();
    assert!(text.contains("`ip` is hidden"), "{out}");
    assert!(text.contains("vlan"), "{out}");

    std::fs::write(home.path().join("checks.toml"), "[[probe]]\nid = 3\n").unwrap();
    let out = output(
        labctl(home.path()),
        &["-o", "json", "lab", "lint", lab.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["findings"][0]["level"], "error", "{out}");
}

#[tokio::test]
async fn outputs_never_overwrite_the_lab_and_the_name_comes_from_the_lab_file() {
    let (home, lab) = lab_dir("own", 2, CHECKS);
    let before = std::fs::read(&lab).unwrap();
    let out = output(
        labctl(home.path()),
        &[
            "lab",
            "grade",
            lab.to_str().unwrap(),
            "--junit",
            lab.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    assert_eq!(
        std::fs::read(&lab).unwrap(),
        before,
        "the lab file was overwritten"
    );
    let out = output(
        labctl(home.path()),
        &[
            "lab",
            "grade",
            lab.to_str().unwrap(),
            "--junit",
            "checks.toml",
        ],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    // A lab file without a name is refused even with yesterday's LABCTL_LAB around.
    std::fs::write(
        &lab,
        "template = 9000\ncount = 1\nchecks = \"checks.toml\"\n",
    )
    .unwrap();
    let mut c = labctl(home.path());
    c.env("LABCTL_LAB", "yesterday");
    let out = output(c, &["lab", "grade", lab.to_str().unwrap()]).await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("has no `name`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_refuses_a_template_or_stopped_reference_and_cleans_up_after_ctrl_c() {
    let sim = sim().await;
    let (home, lab) = lab_dir("st", 1, CHECKS);
    let home = home.path();
    let lab_s = lab.to_str().unwrap();
    let students = up(home, &sim, &lab).await;
    let out = output(
        against(home, &sim),
        &["lab", "selftest", lab_s, "--reference", "9000"],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("template"), "{out}");

    let (vmid, host, ip) = &students[0];
    let all = Work {
        nginx: true,
        page: true,
        dns: true,
        lan: Some(24),
        ..Work::default()
    };
    play(&sim, *vmid, host, ip, all);
    let guests = |sim: &SimHandle| sim.state()["guests"].as_array().unwrap().len();
    let before = guests(&sim);
    let mut c = against(home, &sim);
    c.args(["lab", "selftest", lab_s, "--reference", &vmid.to_string()]);
    let mut child = c.spawn().unwrap();
    let cloned = tokio::time::timeout(common::RUN_TIMEOUT, async {
        while guests(&sim) == before {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(cloned.is_ok(), "selftest made no clone");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(common::RUN_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert_eq!(guests(&sim), before, "the clone was left after Ctrl-C");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_from_the_host_reach_a_loopback_server_and_are_graded() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nhello\n",
            );
        }
    });
    // A port nothing listens on: bind, note, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let checks = format!(
        r#"
[[probe]]
id = "web"
from = "host"
http = "http://127.0.0.1:{port}/"

[[probe]]
id = "open"
from = "host"
tcp = "127.0.0.1:{port}"

[[probe]]
id = "shut"
from = "host"
tcp = "127.0.0.1:{closed}"

[[check]]
id = "web"
probe = "web"
expect = [{{ status = 200 }}, {{ field = "body", equals = "hello" }}]

[[check]]
id = "open"
probe = "open"
expect = [{{ reachable = true }}]

[[check]]
id = "shut"
probe = "shut"
expect = [{{ reachable = false }}]
"#
    );
    let sim = sim().await;
    let (home, lab) = lab_dir("host", 1, &checks);
    let home = home.path();
    up(home, &sim, &lab).await;
    let out = output(
        against(home, &sim),
        &["-o", "json", "lab", "check", lab.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    for (_, s) in by_host(&out.stdout) {
        assert_eq!(s["points"].as_f64(), Some(3.0), "{s}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_checks_file_that_is_not_toml_is_refused_without_quoting_it() {
    let (home, lab) = lab_dir("notoml", 1, CHECKS);
    std::fs::write(home.path().join("secret.txt"), "root:hunter2\n").unwrap();
    std::fs::write(
        &lab,
        "name = \"notoml\"\ntemplate = 9000\ncount = 1\nchecks = \"secret.txt\"\n",
    )
    .unwrap();
    let out = output(labctl(home.path()), &["lab", "lint", lab.to_str().unwrap()]).await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(!format!("{out}").contains("hunter2"), "{out}");
    assert!(out.stderr.contains(".toml"), "{out}");
}

#[tokio::test]
async fn grade_points_to_the_evidence_a_freeze_kept() {
    let (home, lab) = lab_dir("fz", 1, CHECKS);
    std::fs::create_dir_all(home.path().join("fz-evidence/deadline-20261205T120000Z")).unwrap();
    let out = output(
        labctl(home.path()),
        &["lab", "grade", lab.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("--evidence fz-evidence/deadline-20261205T120000Z"),
        "{out}"
    );
}
