//! End-to-end: the `labctl` binary run as a user would, against a simulator started by
//! the test on 127.0.0.1 (port 0). State is checked through the simulator handle.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use pve_sim::{SimHandle, Simulator};
use serde_json::Value;
use tokio::process::Command;

const SCALE: &str = "0.01";

/// `labctl` with a clean environment: no PVE_* from the developer's shell leaks in.
fn labctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.kill_on_drop(true);
    c
}

fn against(sim: &SimHandle) -> Command {
    let mut c = labctl();
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE);
    c
}

async fn sim() -> SimHandle {
    Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap()
}

async fn run(mut c: Command, args: &[&str]) -> (Output, String, String) {
    let out = c.args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn vmids(state: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["vmid"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn demo_lists_students_and_verdicts() {
    let (out, stdout, stderr) = run(
        labctl(),
        &["demo", "--students", "3", "--time-scale", SCALE],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for name in ["exam-01", "exam-02", "exam-03"] {
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
    assert!(stdout.contains("VMID") && stdout.contains("HOSTNAME") && stdout.contains("IP"));
    let blocked = stdout
        .lines()
        .filter(|l| l.contains("BLOCKED  as intended"))
        .count();
    let allowed = stdout
        .lines()
        .filter(|l| l.contains("ALLOWED  as intended"))
        .count();
    // exam-01<->exam-02 and exam-01->prod-db blocked; 3 students->teacher + teacher->exam-01.
    assert_eq!((blocked, allowed), (3, 4), "{stdout}");
    assert!(
        !stdout.contains("UNEXPECTED") && !stdout.contains("CHANGED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("firewall configuration: restored exactly"),
        "{stdout}"
    );
    assert!(stdout.contains("demo finished"), "{stdout}");
}

#[tokio::test]
async fn up_then_down_touches_exactly_the_lab() {
    let sim = sim().await;
    let initial = vmids(&sim.state());
    let (out, stdout, stderr) = run(
        against(&sim),
        &[
            "lab",
            "up",
            "-n",
            "exam1",
            "-t",
            "9000",
            "-c",
            "3",
            "--hostname",
            "pc-{n}",
            "--teacher",
            "10.10.0.1",
        ],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("fenced: students reach only 10.10.0.1"),
        "{stdout}"
    );
    let state = sim.state();
    let lab_ids: Vec<u64> = vmids(&state)
        .into_iter()
        .filter(|v| !initial.contains(v))
        .collect();
    assert_eq!(lab_ids, [5000, 5001, 5002]);
    for (i, id) in lab_ids.iter().enumerate() {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == id.to_string()))
            .unwrap_or_else(|| panic!("no row for {id}:\n{stdout}"));
        assert!(line.contains(&format!("pc-{}", i + 1)), "{line}");
    }

    // `ips` prints one line per student with the simulator's lease.
    let (_, ips, _) = run(against(&sim), &["lab", "ips", "-n", "exam1"]).await;
    assert_eq!(ips.lines().count(), 3, "{ips}");
    for g in state["guests"].as_array().unwrap() {
        if lab_ids.contains(&g["vmid"].as_u64().unwrap()) {
            let ip = g["ipv4"].as_str().unwrap();
            assert!(
                ips.contains(&format!("{ip}\t{}", g["name"].as_str().unwrap())),
                "{ips}"
            );
        }
    }

    // Dry run: exactly the lab's guests, nothing changes.
    let before_dry = vmids(&sim.state());
    let state_before_dry = lasting(&sim);
    sim.reset_requests();
    let (out, dry, stderr) = run(against(&sim), &["lab", "down", "-n", "exam1", "--dry-run"]).await;
    assert!(out.status.success(), "{stderr}");
    assert_only_reads(&sim);
    assert_eq!(lasting(&sim), state_before_dry);
    let listed: Vec<&str> = dry
        .lines()
        .filter(|l| l.trim_start().starts_with("destroy vm"))
        .collect();
    assert_eq!(listed.len(), 3, "{dry}");
    for id in &lab_ids {
        assert!(listed.iter().any(|l| l.contains(&id.to_string())), "{dry}");
    }
    for foreign in ["100", "200", "201", "9000", "9001"] {
        assert!(!dry.contains(&format!("vm {foreign} ")), "{dry}");
    }
    assert_eq!(vmids(&sim.state()), before_dry);

    let (out, down, stderr) = run(against(&sim), &["lab", "down", "-n", "exam1", "--yes"]).await;
    assert!(out.status.success(), "{down}\n{stderr}");
    assert_eq!(vmids(&sim.state()), initial);
    assert!(sim.state()["pools"].as_object().unwrap().is_empty());
    let (_, st, _) = run(against(&sim), &["lab", "status", "-n", "exam1"]).await;
    assert!(st.contains("no students"), "{st}");
    sim.shutdown().await;
}

/// The simulator's state without its load statistics (reads raise `daemon_peak`).
fn lasting(sim: &SimHandle) -> Value {
    let mut state = sim.state();
    state.as_object_mut().unwrap().remove("daemon_peak");
    state
}

/// Fails unless every request since the last reset was a read or the login: a dry run
/// that stops, unfences or destroys anything sends a POST, PUT or DELETE.
fn assert_only_reads(sim: &SimHandle) {
    let requests = sim.requests();
    let counts = requests.as_object().unwrap();
    assert!(!counts.is_empty(), "no requests seen at all");
    for key in counts.keys() {
        assert!(
            key.starts_with("GET ") || key == "POST /access/ticket",
            "a dry run sent {key}: {requests}"
        );
    }
}

#[tokio::test]
async fn up_dry_run_only_reads() {
    let sim = sim().await;
    let before = lasting(&sim);
    sim.reset_requests();
    let (out, stdout, stderr) = run(
        against(&sim),
        &[
            "lab",
            "up",
            "-n",
            "exam1",
            "-t",
            "9000",
            "-c",
            "2",
            "--teacher",
            "10.10.0.1",
            "--dry-run",
        ],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("create  vm 5000"), "{stdout}");
    assert!(stdout.contains("dry run: nothing changed"), "{stdout}");
    assert_only_reads(&sim);
    assert_eq!(lasting(&sim), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_input_names_the_input_and_what_is_allowed() {
    // No cluster is needed to reject these: the checks come before connecting.
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["lab", "up", "-n", "exam1", "-t", "9000", "-c", "0"],
            &["count", "\"0\"", "between 1 and 500"],
        ),
        (
            &[
                "lab",
                "up",
                "-n",
                "exam1",
                "-t",
                "9000",
                "-c",
                "2",
                "--hostname",
                "exam_{n}",
            ],
            &["hostname pattern", "exam_{n}", "{n:0W}"],
        ),
        (
            &["lab", "up", "-n", "Exam1", "-t", "9000", "-c", "2"],
            &["lab name", "Exam1", "lower-case"],
        ),
        (
            &["lab", "up", "-n", "exam1", "-t", "42", "-c", "2"],
            &["VMID", "42", "100 to 999999999"],
        ),
        (
            &["lab", "down", "-n", "exam1", "--concurrency", "0"],
            &["concurrency", "between 1 and 64"],
        ),
    ];
    for (args, needles) in cases {
        let (out, stdout, stderr) = run(labctl(), args).await;
        assert!(!out.status.success(), "{args:?} succeeded: {stdout}");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: {n:?} not in {stderr}");
        }
    }
    // Waits that would overflow are refused, not a panic.
    let (out, _, stderr) = run(
        labctl(),
        &[
            "lab",
            "up",
            "-n",
            "exam1",
            "-t",
            "9000",
            "-c",
            "2",
            "--ready-timeout",
            "0",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr.contains("--ready-timeout") && stderr.contains("1..=86400"),
        "{stderr}"
    );
    let mut c = labctl();
    c.env("LABCTL_TIME_SCALE", "1e300");
    let (out, _, stderr) = run(c, &["lab", "down", "-n", "exam1", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("LABCTL_TIME_SCALE") && stderr.contains("at most 1000"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A valid command without a host says how to give one.
    let (out, _, stderr) = run(labctl(), &["lab", "status", "-n", "exam1"]).await;
    assert!(!out.status.success());
    assert!(
        stderr.contains("PVE_HOST") && stderr.contains("labctl demo"),
        "{stderr}"
    );
}

#[tokio::test]
async fn passwords_are_not_accepted_as_arguments() {
    let (out, _, stderr) = run(
        labctl(),
        &["--password", "secret", "lab", "status", "-n", "x"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr.contains("--password"), "{stderr}");
    let (_, help, _) = run(labctl(), &["--help"]).await;
    assert!(
        help.contains("PVE_PASSWORD") && help.contains("labctl demo"),
        "{help}"
    );
}

#[tokio::test]
async fn every_subcommand_help_shows_an_example() {
    for args in [
        &["lab", "up", "--help"][..],
        &["lab", "down", "--help"],
        &["lab", "status", "--help"],
        &["lab", "ips", "--help"],
        &["sim", "--help"],
        &["sim", "pve", "--help"],
        &["sim", "fosscloud", "--help"],
        &["demo", "--help"],
        &["lab", "plan", "--help"],
        &["completions", "--help"],
        &["vm", "list", "--help"],
        &["vm", "next-id", "--help"],
        &["vm", "status", "--help"],
        &["vm", "clone", "--help"],
        &["vm", "start", "--help"],
        &["vm", "stop", "--help"],
        &["vm", "shutdown", "--help"],
        &["vm", "reboot", "--help"],
        &["vm", "agent", "--help"],
        &["vm", "is-template", "--help"],
        &["vm", "template", "--help"],
        &["vm", "destroy", "--help"],
        &["vm", "ip", "--help"],
        &["firewall", "isolate", "--help"],
        &["firewall", "unisolate", "--help"],
        &["firewall", "verify", "--help"],
        &["fosscloud", "--help"],
        &["fosscloud", "login", "--help"],
        &["fosscloud", "realms", "--help"],
        &["fosscloud", "list", "--help"],
        &["fosscloud", "assign", "--help"],
        &["fosscloud", "mapping", "--help"],
        &["fosscloud", "mapping", "list", "--help"],
        &["fosscloud", "mapping", "assign", "--help"],
    ] {
        let (out, help, _) = run(labctl(), args).await;
        assert!(out.status.success(), "{args:?}");
        let cmd = format!("labctl {} ", args[..args.len() - 1].join(" "));
        assert!(
            help.contains("Example") && help.contains(&cmd),
            "{args:?}: no example running {cmd:?}:\n{help}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// labctl vm, firewall, lab with a file, exit codes, secrets, config, completions.

/// `labctl … -o json` parsed.
async fn json_of(c: Command, args: &[&str]) -> Value {
    let (out, stdout, stderr) = run(c, args).await;
    assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

fn guest(state: &Value, vmid: u64) -> Option<&Value> {
    state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"].as_u64() == Some(vmid))
}

#[tokio::test]
async fn every_vm_command_with_its_json_shape() {
    let sim = sim().await;
    // list: objects shaped like `vm status`.
    let list = json_of(against(&sim), &["vm", "list", "-o", "json"]).await;
    let ids: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["vmid"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vmids(&sim.state()));
    let t = list
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 9001)
        .unwrap();
    assert_eq!(t["type"], "lxc");
    assert_eq!(t["template"], true);
    for key in ["node", "status", "name", "tags", "pool", "lock"] {
        assert!(t.get(key).is_some(), "{key} missing: {t}");
    }
    // status
    let st = json_of(against(&sim), &["vm", "status", "100", "-o", "json"]).await;
    assert_eq!(st["vmid"], 100);
    assert_eq!(st["type"], "qemu");
    assert_eq!(st["status"], "running");
    assert_eq!(st["template"], false);
    assert_eq!(st["name"], "teacher");
    assert!(st["tags"].is_array() && st.get("pool").is_some() && st.get("lock").is_some());
    // next-id
    let n = json_of(
        against(&sim),
        &["vm", "next-id", "--from", "5000", "-o", "json"],
    )
    .await;
    assert_eq!(n, serde_json::json!({"vmid": 5000}));
    let (_, plain, _) = run(against(&sim), &["vm", "next-id"]).await;
    let next: u64 = plain.trim().parse().unwrap();
    assert!(
        next >= 100 && !vmids(&sim.state()).contains(&next),
        "{plain}"
    );

    // clone (QEMU)
    let c = json_of(
        against(&sim),
        &[
            "vm", "clone", "9000", "--name", "stud-01", "--newid", "5000", "-o", "json",
        ],
    )
    .await;
    assert_eq!(c["vmid"], 5000);
    assert_eq!(c["name"], "stud-01");
    assert!(c["node"].is_string());
    assert_eq!(guest(&sim.state(), 5000).unwrap()["name"], "stud-01");

    // agent: stopped -> exit 1 with the reason.
    let (out, _, err) = run(against(&sim), &["vm", "agent", "5000"]).await;
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not running"), "{err}");
    let (out, _, err) = run(against(&sim), &["vm", "start", "5000"]).await;
    assert!(out.status.success(), "{err}");
    let a = json_of(
        against(&sim),
        &["vm", "agent", "5000", "--wait", "60", "-o", "json"],
    )
    .await;
    assert_eq!(a["running"], true);
    assert_eq!(a["agent"], true);
    let ip = json_of(
        against(&sim),
        &["vm", "ip", "5000", "--wait", "60", "-o", "json"],
    )
    .await;
    let lease = guest(&sim.state(), 5000).unwrap()["ipv4"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ip["vmid"], 5000);
    assert_eq!(ip["addresses"][0], lease.as_str(), "{ip}");
    assert_eq!(ip["hostname"], "stud-01");
    for a in ip["addresses"].as_array().unwrap() {
        let a: std::net::IpAddr = a.as_str().unwrap().parse().unwrap();
        assert!(!a.is_loopback(), "{ip}");
    }
    let (_, plain, _) = run(against(&sim), &["vm", "ip", "5000"]).await;
    assert_eq!(plain.lines().next(), Some(lease.as_str()));

    for action in ["reboot", "shutdown", "stop"] {
        // All three interrupt a guest: they need --yes off a terminal.
        let yes: &[&str] = &["--yes"];
        let args: Vec<&str> = ["vm", action, "5000"].iter().chain(yes).copied().collect();
        let (out, stdout, err) = run(against(&sim), &args).await;
        assert!(out.status.success(), "{action}: {err}");
        assert!(stdout.contains(&format!("{action} done")), "{stdout}");
    }
    assert_eq!(guest(&sim.state(), 5000).unwrap()["status"], "stopped");

    // is-template: 1, then template, then 0.
    let (out, stdout, _) = run(against(&sim), &["vm", "is-template", "5000"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("not a template"), "{stdout}");
    let (out, _, err) = run(against(&sim), &["vm", "template", "5000", "--yes"]).await;
    assert!(out.status.success(), "{err}");
    let t = json_of(against(&sim), &["vm", "is-template", "5000", "-o", "json"]).await;
    assert_eq!(t, serde_json::json!({"vmid": 5000, "template": true}));

    // destroy: a template is refused; without a terminal and --yes nothing changes.
    let (out, _, err) = run(against(&sim), &["vm", "destroy", "5000"]).await;
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("template") && err.contains("--allow-template"),
        "{err}"
    );
    sim.reset_requests();
    let mut c = against(&sim);
    c.stdin(std::process::Stdio::null());
    let (out, _, err) = run(c, &["vm", "destroy", "5000", "--allow-template"]).await;
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--yes") && err.contains("nothing changed"),
        "{err}"
    );
    assert!(
        err.contains("destroy VM 5000"),
        "shows what it would destroy: {err}"
    );
    assert_only_reads(&sim);
    let (out, dry, _) = run(
        against(&sim),
        &["vm", "destroy", "5000", "--allow-template", "--dry-run"],
    )
    .await;
    assert!(out.status.success());
    assert!(dry.contains("would destroy VM 5000"), "{dry}");
    assert_only_reads(&sim);
    assert!(guest(&sim.state(), 5000).is_some());
    let (out, _, err) = run(
        against(&sim),
        &["vm", "destroy", "5000", "--allow-template", "--yes"],
    )
    .await;
    assert!(out.status.success(), "{err}");
    assert!(guest(&sim.state(), 5000).is_none());
    let (out, _, err) = run(against(&sim), &["vm", "status", "5000"]).await;
    assert_eq!(out.status.code(), Some(4), "not found: {err}");

    // LXC alike: clone, start, agent (no QGA: running is enough), running destroy refused.
    let c = json_of(
        against(&sim),
        &[
            "vm", "clone", "9001", "--name", "ct-01", "--newid", "5100", "-o", "json",
        ],
    )
    .await;
    assert_eq!(c["vmid"], 5100);
    let (out, _, err) = run(against(&sim), &["vm", "start", "5100"]).await;
    assert!(out.status.success(), "{err}");
    let a = json_of(against(&sim), &["vm", "agent", "5100", "-o", "json"]).await;
    assert_eq!(
        (
            a["type"].as_str(),
            a["running"].as_bool(),
            a["agent"].is_null()
        ),
        (Some("lxc"), Some(true), true),
        "{a}"
    );
    let (out, _, err) = run(against(&sim), &["vm", "destroy", "5100", "--yes"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("running") && err.contains("--stop"), "{err}");
    let (out, _, err) = run(against(&sim), &["vm", "destroy", "5100", "--stop", "--yes"]).await;
    assert!(out.status.success(), "{err}");
    assert!(guest(&sim.state(), 5100).is_none());
    // Filters: the production VMs carry no lab tag.
    let tagged = json_of(
        against(&sim),
        &["vm", "list", "--tag", "labctl.nothing", "-o", "json"],
    )
    .await;
    assert_eq!(tagged, serde_json::json!([]));
    let (_, csv, _) = run(against(&sim), &["vm", "list", "-o", "csv"]).await;
    assert!(
        csv.starts_with("VMID,NODE,TYPE,STATUS,TEMPLATE,NAME,POOL,LOCK,TAGS\n"),
        "{csv}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn firewall_isolate_verify_unisolate_a_range() {
    let sim = sim().await;
    let before = lasting(&sim);
    let fence = ["--first", "200", "--last", "201"];
    let with = |cmd: &str, extra: &[&str]| {
        let mut a = vec!["firewall", cmd];
        a.extend(fence);
        a.extend(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    let v = with("verify", &["--allow", "10.10.0.1"]);
    let (out, stdout, err) = run(against(&sim), &args(&v)).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}{err}");
    assert!(err.contains("NOT isolated"), "{err}");

    sim.reset_requests();
    let v = with("isolate", &["--allow", "10.10.0.1", "--dry-run"]);
    let (out, dry, err) = run(against(&sim), &args(&v)).await;
    assert!(out.status.success(), "{err}");
    assert!(
        dry.contains("guest 200") && dry.contains("guest 201"),
        "{dry}"
    );
    assert!(dry.contains("dry run: nothing changed"), "{dry}");
    assert_only_reads(&sim);
    assert_eq!(lasting(&sim), before);

    let v = with("isolate", &["--allow", "10.10.0.1,10.10.0.9", "-o", "json"]);
    let report = json_of(against(&sim), &args(&v)).await;
    assert!(
        !report["changes"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        !sim.reachability(200, "201", "tcp", Some(22))
            .unwrap()
            .allowed
    );
    assert!(
        sim.reachability(200, "10.10.0.1", "tcp", Some(22))
            .unwrap()
            .allowed
    );

    let v = with("verify", &["--allow", "10.10.0.1,10.10.0.9", "-o", "json"]);
    let check = json_of(against(&sim), &args(&v)).await;
    assert_eq!(check["fenced"], true, "{check}");
    let guests = check["guests"].as_array().unwrap();
    assert_eq!(guests.len(), 2);
    for g in guests {
        assert_eq!(g["firewall_enabled"], true);
        assert_eq!(g["group_rule_first"], true);
        assert_eq!(
            g["nics"][0],
            serde_json::json!({"nic": "net0", "firewall": true})
        );
    }

    sim.reset_requests();
    let v = with("unisolate", &["--dry-run"]);
    let (out, dry, err) = run(against(&sim), &args(&v)).await;
    assert!(out.status.success(), "{err}");
    assert!(
        dry.contains("guest 200") && dry.contains("guest 201"),
        "{dry}"
    );
    assert_only_reads(&sim);
    let v = with("unisolate", &[]);
    let (out, _, err) = run(against(&sim), &args(&v)).await;
    assert!(out.status.success(), "{err}");
    assert_eq!(
        lasting(&sim)["firewall"],
        before["firewall"],
        "restored exactly"
    );
    let (out, _, err) = run(
        labctl(),
        &[
            "firewall",
            "isolate",
            "--first",
            "201",
            "--last",
            "200",
            "--allow",
            "10.10.0.1",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("backwards"), "{err}");
    let (out, _, err) = run(
        labctl(),
        &[
            "firewall",
            "verify",
            "--first",
            "200",
            "--last",
            "201",
            "--allow",
            "10.10.0.300",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("10.10.0.300"), "{err}");
    sim.shutdown().await;
}

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn the_example_lab_file_plan_up_status_ips_down() {
    let sim = sim().await;
    let initial = vmids(&sim.state());
    let file = example("exam.toml");
    sim.reset_requests();
    let plan = json_of(against(&sim), &["lab", "plan", &file, "-o", "json"]).await;
    assert_only_reads(&sim);
    let planned: Vec<(String, u64)> = plan["students"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["hostname"].as_str().unwrap().to_owned(),
                s["vmid"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [
            ("exam1-01".into(), 5000),
            ("exam1-02".into(), 5001),
            ("exam1-03".into(), 5002)
        ]
    );
    assert_eq!(plan["teachers"], serde_json::json!(["10.10.0.1"]));

    // Flags override the file.
    let plan = json_of(
        against(&sim),
        &[
            "lab",
            "plan",
            &file,
            "-c",
            "2",
            "--ids",
            "7000-7010",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(plan["students"].as_array().unwrap().len(), 2);
    assert_eq!(plan["students"][0]["vmid"], 7000);

    let (out, stdout, err) = run(against(&sim), &["lab", "up", &file]).await;
    assert!(out.status.success(), "{stdout}\n{err}");
    assert!(
        stdout.contains("fenced: students reach only 10.10.0.1"),
        "{stdout}"
    );
    let sheet = json_of(against(&sim), &["lab", "status", &file, "-o", "json"]).await;
    let rows = sheet.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let state = sim.state();
    for r in rows {
        let g = guest(&state, r["vmid"].as_u64().unwrap()).unwrap();
        assert_eq!(r["hostname"], g["name"]);
        assert_eq!(r["state"], "running");
        assert_eq!(r["addresses"][0], g["ipv4"]);
        assert!(r.get("student").is_some() && r["node"].is_string());
    }
    // The lab's guests by pool and by tag, through `vm list`.
    for filter in [["--pool", "exam1"], ["--tag", "labctl.exam1"]] {
        let mut args = vec!["vm", "list", "-o", "json"];
        args.extend(filter);
        let listed = json_of(against(&sim), &args).await;
        let ids: Vec<u64> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["vmid"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [5000, 5001, 5002], "{filter:?}");
    }
    let (_, csv, _) = run(against(&sim), &["lab", "ips", &file, "-o", "csv"]).await;
    assert!(
        csv.starts_with("STUDENT,HOSTNAME,VMID,NODE,STATE,FENCED,ADDRESSES,FROZEN\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // The fence of every student is read back and reported.
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",running,yes,")),
        "{csv}"
    );

    // down: without a terminal and --yes nothing changes, and it says why.
    let before = lasting(&sim);
    let mut c = against(&sim);
    c.stdin(std::process::Stdio::null());
    let (out, _, err) = run(c, &["lab", "down", &file]).await;
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--yes") && err.contains("destroy vm 5000"),
        "{err}"
    );
    assert_eq!(lasting(&sim), before);
    let dry = json_of(
        against(&sim),
        &["lab", "down", &file, "--dry-run", "-o", "json"],
    )
    .await;
    assert_eq!(dry["destroyed"].as_array().unwrap().len(), 3, "{dry}");
    let (out, _, err) = run(against(&sim), &["lab", "down", &file, "--yes"]).await;
    assert!(out.status.success(), "{err}");
    assert_eq!(vmids(&sim.state()), initial);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_roster_names_the_hosts_and_the_sheet_keeps_the_names() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("class.csv");
    std::fs::write(
        &roster,
        "name,email\nZoë Müller,zoe@x.example\nZoe Muller,\nJosé Núñez,\n李 小龍,\n",
    )
    .unwrap();
    let r = roster.to_str().unwrap();
    let base = [
        "-n",
        "exam3",
        "-t",
        "9000",
        "--roster",
        r,
        "--teacher",
        "10.10.0.1",
    ];
    let mut plan_args = vec!["lab", "plan"];
    plan_args.extend(base);
    plan_args.extend(["-o", "json"]);
    let plan = json_of(against(&sim), &plan_args).await;
    let hosts: Vec<&str> = plan["students"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts[..3], ["zoe-muller", "zoe-muller-2", "jose-nunez"]);
    assert_eq!(hosts.len(), 4, "{hosts:?}");
    assert_eq!(plan["students"][0]["student"], "Zoë Müller");
    let mut up = vec!["lab", "up"];
    up.extend(base);
    let (out, stdout, err) = run(against(&sim), &up).await;
    assert!(out.status.success(), "{stdout}\n{err}");
    assert!(
        stdout.contains("Zoë Müller") && stdout.contains("zoe-muller-2"),
        "{stdout}"
    );
    let sheet = json_of(
        against(&sim),
        &["lab", "status", "-n", "exam3", "--roster", r, "-o", "json"],
    )
    .await;
    let by_host: std::collections::BTreeMap<&str, &Value> = sheet
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["hostname"].as_str().unwrap(), row))
        .collect();
    assert_eq!(by_host["zoe-muller"]["student"], "Zoë Müller");
    assert_eq!(by_host["zoe-muller"]["email"], "zoe@x.example");
    assert_eq!(by_host["zoe-muller-2"]["student"], "Zoe Muller");
    assert_eq!(by_host["jose-nunez"]["student"], "José Núñez");
    // The table keeps its columns aligned for names that take two terminal columns per
    // character: the HOSTNAME column starts at the same column on every line.
    let (_, table, _) = run(
        against(&sim),
        &["lab", "status", "-n", "exam3", "--roster", r],
    )
    .await;
    let starts: Vec<usize> = table
        .lines()
        .map(|l| {
            let at = std::iter::once("HOSTNAME")
                .chain(hosts.iter().copied())
                .filter_map(|h| l.find(&format!("  {h}  ")).map(|i| i + 2))
                .next()
                .unwrap_or_else(|| panic!("no host name in {l:?}"));
            unicode_width::UnicodeWidthStr::width(&l[..at])
        })
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] == w[1]),
        "{starts:?}\n{table}"
    );
    let (_, ips, _) = run(against(&sim), &["lab", "ips", "-n", "exam3", "--roster", r]).await;
    assert!(
        ips.lines()
            .any(|l| l.ends_with("\tjose-nunez\t# José Núñez")),
        "{ips}"
    );
    // The example roster lab parses as shipped.
    let plan = json_of(
        against(&sim),
        &["lab", "plan", &example("roster.toml"), "-o", "json"],
    )
    .await;
    assert_eq!(plan["students"][0]["hostname"], "e2-zoe-muller");
    let (out, _, err) = run(against(&sim), &["lab", "down", "-n", "exam3", "--yes"]).await;
    assert!(out.status.success(), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn exit_codes_tell_usage_auth_not_found_and_incomplete_apart() {
    let sim = sim().await;
    let code = |o: &Output| o.status.code();
    let (o, _, e) = run(labctl(), &["vm", "status", "42"]).await;
    assert_eq!(code(&o), Some(2), "usage: {e}");
    let (o, _, e) = run(labctl(), &["lab", "up", "-o", "csv", "--no-such-flag"]).await;
    assert_eq!(code(&o), Some(2), "usage: {e}");
    let mut c = against(&sim);
    c.env("PVE_PASSWORD", "wrong");
    let (o, _, e) = run(c, &["vm", "list"]).await;
    assert_eq!(code(&o), Some(3), "auth: {e}");
    let (o, _, e) = run(against(&sim), &["vm", "status", "4242"]).await;
    assert_eq!(code(&o), Some(4), "not found: {e}");
    let (o, _, e) = run(
        against(&sim),
        &["lab", "up", "-n", "x1", "-t", "9999", "-c", "1"],
    )
    .await;
    assert_eq!(code(&o), Some(4), "template not found: {e}");
    sim.fail_next_clone("clone failed: disk image quota exceeded");
    let (o, _, e) = run(
        against(&sim),
        &["lab", "up", "-n", "x2", "-t", "9000", "-c", "2"],
    )
    .await;
    assert_eq!(code(&o), Some(5), "incomplete: {e}");
    assert!(e.contains("incomplete"), "{e}");
    let (o, _, e) = run(against(&sim), &["lab", "down", "-n", "x2", "--yes"]).await;
    assert_eq!(code(&o), Some(0), "{e}");
    let (_, help, _) = run(labctl(), &["--help"]).await;
    assert!(
        help.contains("Exit codes") && help.contains("5  a lab or batch left incomplete"),
        "{help}"
    );
    sim.shutdown().await;

    // TLS: a wrong pin is an authentication/TLS failure.
    let tls = Simulator::builder()
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    let mut c = labctl();
    c.env("PVE_HOST", tls.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret");
    let wrong = "AB:".repeat(31) + "AB";
    let (o, _, e) = run(c, &["vm", "list", "--fingerprint", &wrong]).await;
    assert_eq!(code(&o), Some(3), "tls: {e}");
    let mut c = labctl();
    c.env("PVE_HOST", tls.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret");
    let (o, _, e) = run(c, &["vm", "list", "--fingerprint", tls.fingerprint()]).await;
    assert_eq!(code(&o), Some(0), "{e}");
    tls.shutdown().await;
}

#[tokio::test]
async fn secrets_stay_out_of_verbose_output() {
    const PASSWORD: &str = "pw-Qz81-hunter";
    const TOKEN_SECRET: &str = "0b5e7a4c-7777-4444-9999-1234567890ab";
    let sim = Simulator::builder()
        .plain_http(true)
        .password(PASSWORD)
        .token(format!("root@pam!ci={TOKEN_SECRET}"))
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    for v in ["-v", "-vv"] {
        let mut c = labctl();
        c.env("PVE_HOST", sim.url())
            .env("PVE_USER", "root@pam")
            .env("PVE_PASSWORD", PASSWORD)
            .env("LABCTL_TIME_SCALE", SCALE);
        let (o, out, err) = run(c, &[v, "vm", "status", "100", "-o", "json"]).await;
        assert!(o.status.success(), "{err}");
        let all = format!("{out}{err}");
        assert!(!all.contains(PASSWORD), "{v}: password leaked");
        assert!(!all.contains("PVE:root@pam:"), "{v}: ticket leaked");
        let mut c = labctl();
        c.env("PVE_HOST", sim.url())
            .env("PVE_TOKEN", format!("root@pam!ci={TOKEN_SECRET}"))
            .env("LABCTL_TIME_SCALE", SCALE);
        let (o, out, err) = run(
            c,
            &[
                v,
                "lab",
                "up",
                "-n",
                "sec",
                "-t",
                "9000",
                "-c",
                "1",
                "--teacher",
                "10.10.0.1",
            ],
        )
        .await;
        assert!(o.status.success(), "{err}");
        let all = format!("{out}{err}");
        assert!(!all.contains(TOKEN_SECRET), "{v}: token secret leaked");
        if v == "-vv" {
            assert!(err.lines().count() > 10, "-vv logs: {err}");
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn clusters_come_from_the_config_file_and_secret_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("labctl");
    std::fs::create_dir_all(&conf).unwrap();
    let pw = dir.path().join("sim.pw");
    std::fs::write(&pw, "secret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        conf.join("config.toml"),
        format!(
            "[clusters.sim]\nhost = \"{}\"\nuser = \"root@pam\"\npassword_file = \"{}\"\n",
            sim.url(),
            pw.display()
        ),
    )
    .unwrap();
    let cfg = |c: &mut Command| {
        c.env("XDG_CONFIG_HOME", dir.path())
            .env("LABCTL_TIME_SCALE", SCALE);
    };
    let mut c = labctl();
    cfg(&mut c);
    let (o, _, e) = run(c, &["vm", "status", "100", "--cluster", "sim"]).await;
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("mode is 644") && e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = labctl();
    cfg(&mut c);
    c.env("LABCTL_CLUSTER", "sim");
    let (o, out, e) = run(c, &["vm", "status", "100"]).await;
    assert!(o.status.success(), "{e}");
    assert!(out.contains("teacher"), "{out}");
    let mut c = labctl();
    cfg(&mut c);
    let (o, _, e) = run(c, &["vm", "list", "--cluster", "nope"]).await;
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("unknown cluster \"nope\"") && e.contains("sim"),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let (o, out, e) = run(labctl(), &["completions", shell]).await;
        assert!(o.status.success(), "{shell}: {e}");
        assert!(
            out.contains("labctl") && out.contains("firewall"),
            "{shell}"
        );
    }
    let (o, _, e) = run(labctl(), &["completions", "tcsh"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(e.contains("bash") && e.contains("powershell"), "{e}");
}

/// Runs `labctl ARGS` on a pseudo-terminal (util-linux `script`), typing `answer`.
#[cfg(target_os = "linux")]
async fn on_a_terminal(sim: &SimHandle, args: &str, answer: &str) -> (Option<i32>, String) {
    use tokio::io::AsyncWriteExt;
    let mut c = Command::new("script");
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE)
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_labctl")),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("util-linux `script` runs labctl on a pty");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn on_a_terminal_destroying_asks_first() {
    let sim = sim().await;
    let (out, _, err) = run(
        against(&sim),
        &["lab", "up", "-n", "exam5", "-t", "9000", "-c", "2"],
    )
    .await;
    assert!(out.status.success(), "{err}");
    let before = lasting(&sim);
    let (code, screen) = on_a_terminal(&sim, "lab down -n exam5", "n\n").await;
    assert_eq!(code, Some(1), "{screen}");
    assert!(
        screen.contains("destroy vm 5000") && screen.contains("[y/N]"),
        "{screen}"
    );
    assert!(screen.contains("nothing changed"), "{screen}");
    assert_eq!(lasting(&sim), before);
    let (code, screen) = on_a_terminal(&sim, "lab down -n exam5", "y\n").await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(guest(&sim.state(), 5000).is_none() && guest(&sim.state(), 5001).is_none());
    let (code, screen) = on_a_terminal(&sim, "vm destroy 201 --stop", "no\n").await;
    assert_eq!(code, Some(1), "{screen}");
    assert!(screen.contains("Destroy VM 201? [y/N]"), "{screen}");
    assert!(guest(&sim.state(), 201).is_some());
    sim.shutdown().await;
}

/// Starts `labctl sim …` and returns it with the URL from its first line.
async fn serve(args: &[&str], prefix: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut c = labctl();
    c.env("PVE_SIM_PASSWORD", "secret")
        .args(args)
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{first}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    // Keep reading so the simulator never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test]
async fn sim_pve_and_sim_fosscloud_serve_what_labctl_talks_to() {
    for args in [
        &["sim", "--plain-http", "--listen", "127.0.0.1:0"][..],
        &[
            "sim",
            "pve",
            "--plain-http",
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "1",
            "--seed",
            "7",
        ],
    ] {
        let (mut child, url) = serve(args, "pve-sim listening on ").await;
        let mut c = labctl();
        c.env("PVE_HOST", &url)
            .env("PVE_USER", "root@pam")
            .env("PVE_PASSWORD", "secret");
        let st = json_of(c, &["vm", "status", "100", "-o", "json"]).await;
        assert_eq!(st["name"], "teacher", "{args:?}");
        if args.contains(&"--nodes") {
            assert_eq!(st["node"], "pve1");
        }
        child.kill().await.unwrap();
    }
    let (mut child, url) = serve(
        &[
            "sim",
            "fosscloud",
            "--plain-http",
            "--listen",
            "127.0.0.1:0",
        ],
        "fosscloud-sim listening on ",
    )
    .await;
    let mut c = labctl();
    c.env("FC_URL", &url);
    let realms = json_of(c, &["fosscloud", "--allow-http", "realms", "-o", "json"]).await;
    assert_eq!(realms[0]["uid"], "4000013");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn version_names_the_package_version_and_the_commit() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    let (o, out, err) = run(labctl(), &["--version"]).await;
    assert!(o.status.success(), "{err}");
    assert_eq!(
        out.trim(),
        format!("labctl {} ({commit})", env!("CARGO_PKG_VERSION"))
    );
}
