//! `labctl doctor` and `labctl setup operator` through the binary against the simulator:
//! each broken situation of a real cluster is named with its fix and a non-zero exit; the
//! default simulator passes; `--boot-test` reports its times; the operator token created
//! by `setup operator` runs a whole `lab up`/`lab down` under the simulator's permission
//! checks; the request table covers what `lab up`/`lab down` really send.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{against, run, sim, sim_builder};
use pve_auth::{Params, PveClient};
use pve_sim::SimHandle;
use serde_json::Value;

fn exam() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/exam.toml")
}

/// A root client of the simulator, to prepare broken situations through the API itself.
fn root(sim: &SimHandle) -> PveClient {
    PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap()
}

/// The checklist line of `check` (its status word and its text, fix included).
fn line<'a>(out: &'a str, check: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(l) = lines.next() {
        let mut words = l.split_whitespace();
        let _status = words.next();
        if l.split_whitespace().nth(1) == Some(check.split(' ').next().unwrap())
            && l.contains(check)
        {
            found.push(l);
            if let Some(next) = lines.peek() {
                if next.trim_start().starts_with("->") {
                    found.push(next);
                }
            }
        }
    }
    found
}

fn assert_fails(out: &(Option<i32>, String, String), check: &str, says: &[&str]) {
    let (code, stdout, stderr) = out;
    assert_eq!(*code, Some(1), "{stdout}\n{stderr}");
    let l = line(stdout, check);
    assert!(
        l.first().is_some_and(|f| f.starts_with("FAIL")),
        "{check} does not FAIL:\n{stdout}"
    );
    let text = l.join("\n");
    assert!(text.contains("->"), "{check} names no fix:\n{stdout}");
    for s in says {
        assert!(text.contains(s), "{check} does not say {s:?}:\n{text}");
    }
    assert!(stdout.contains("NOT READY"), "{stdout}");
}

/// Only this check FAILs (the others of the default simulator hold).
fn only_failure(stdout: &str, check: &str) {
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fails.iter().all(|l| l.contains(check)),
        "other failures besides {check}:\n{stdout}"
    );
}

/// [`assert_fails`] and [`only_failure`]: `check` and nothing else FAILs.
fn fails_alone(out: &(Option<i32>, String, String), check: &str, says: &[&str]) {
    assert_fails(out, check, says);
    only_failure(&out.1, check);
}

/// `labctl doctor examples/exam.toml ARGS…` against the simulator as root.
async fn doctor(home: &Path, sim: &SimHandle, args: &[&str]) -> (Option<i32>, String, String) {
    let exam = exam();
    let mut all = vec!["doctor", exam.to_str().unwrap()];
    all.extend_from_slice(args);
    run(against(home, sim), &all).await
}

/// POST `path` as root, failing the test on an error.
async fn post(c: &PveClient, path: &str, params: Params) -> Value {
    c.post(path, &params).await.unwrap()
}

/// PUT `path` as root, failing the test on an error.
async fn put(c: &PveClient, path: &str, params: Params) -> Value {
    c.put(path, &params).await.unwrap()
}

/// A cluster alias `local_network` naming a network this machine is not in.
async fn local_network_elsewhere(c: &PveClient) {
    let alias = Params::new()
        .with("name", "local_network")
        .with("cidr", "192.168.100.0/24");
    post(c, "/cluster/firewall/aliases", alias).await;
}

/// `labctl` pointed at the simulator with the API token `token` (no password).
fn with_token(home: &Path, sim: &SimHandle, token: &str) -> tokio::process::Command {
    let mut c = common::labctl(home);
    c.env("PVE_HOST", sim.url())
        .env("PVE_TOKEN", token)
        .env("LABCTL_TIME_SCALE", common::SCALE);
    c
}

/// Runs `c` with the words of `line` as its arguments.
async fn run_words(c: tokio::process::Command, line: &str) -> (Option<i32>, String, String) {
    run(c, &line.split_whitespace().collect::<Vec<_>>()).await
}

#[tokio::test]
async fn the_default_simulator_passes() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = doctor(home.path(), &sim, &[]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for check in [
        "reachable",
        "pve version",
        "clock",
        "privileges",
        "template",
        "agent",
        "nic",
        "linked clones",
        "firewall",
        "vmid range",
        "pool and tag",
        "memory",
    ] {
        assert!(
            line(&stdout, check)
                .first()
                .is_some_and(|l| !l.starts_with("FAIL")),
            "{check} missing or failing:\n{stdout}"
        );
    }
    assert!(stdout.contains("ready: nothing blocks"), "{stdout}");
    // Nothing changed: doctor only reads.
    let state = sim.state();
    assert!(
        !state.to_string().contains("\"5000\""),
        "doctor created a guest"
    );
    let (code, json, _) = doctor(home.path(), &sim, &["-o", "json"]).await;
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["checks"].as_array().unwrap().len() >= 12, "{v}");
}

#[tokio::test]
async fn a_template_without_agent_is_named_with_its_fix() {
    let sim = sim().await;
    put(
        &root(&sim),
        "/nodes/pve1/qemu/9000/config",
        Params::new().with("delete", "agent"),
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let out = doctor(home.path(), &sim, &[]).await;
    fails_alone(
        &out,
        "agent",
        &["agent: 1", "qm set 9000 --agent enabled=1"],
    );
}

#[tokio::test]
async fn storage_without_linked_clones_is_named_with_its_fix() {
    let sim = sim_builder().linked_clones(false).start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = doctor(home.path(), &sim, &[]).await;
    fails_alone(
        &out,
        "linked clones",
        &["local-lvm (lvm)", "clone = \"full\""],
    );
    // The simulator refuses the linked clone as PVE would.
    let err = root(&sim)
        .post::<Value>(
            "/nodes/pve1/qemu/9000/clone",
            &Params::new().with("newid", 5000).with("full", false),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Linked clone feature is not supported for 'local-lvm:base-9000-disk-0'"),
        "{err}"
    );
}

/// Creates role `role` with `privs`, user `op@pve` holding it on `/`, and a token
/// `op@pve!tk` without privilege separation; returns `PVE_TOKEN`.
async fn token_with(sim: &SimHandle, role: &str, privs: &[String]) -> String {
    let c = root(sim);
    post(
        &c,
        "/access/roles",
        Params::new()
            .with("roleid", role)
            .with("privs", privs.join(",").as_str()),
    )
    .await;
    post(&c, "/access/users", Params::new().with("userid", "op@pve")).await;
    put(
        &c,
        "/access/acl",
        Params::new()
            .with("path", "/")
            .with("roles", role)
            .with("users", "op@pve"),
    )
    .await;
    let t: Value = c
        .post(
            "/access/users/op@pve/token/tk",
            &Params::new().with("privsep", false),
        )
        .await
        .unwrap();
    format!("op@pve!tk={}", t["value"].as_str().unwrap())
}

/// The rows of `labctl setup operator FLAG -o json` (`--privileges`, `--requests`).
async fn operator_rows(home: &Path, flag: &str) -> Vec<Value> {
    let (code, json, err) = run(
        common::labctl(home),
        &["setup", "operator", flag, "-o", "json"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&json).unwrap()
}

async fn operator_privileges(home: &Path) -> Vec<String> {
    operator_rows(home, "--privileges")
        .await
        .iter()
        .map(|r| r["privilege"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_token_missing_vm_clone_is_named_with_its_fix() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let privs: Vec<String> = operator_privileges(home.path())
        .await
        .into_iter()
        .filter(|p| p != "VM.Clone")
        .collect();
    let token = token_with(&sim, "NoClone", &privs).await;
    let out = run(
        with_token(home.path(), &sim, &token),
        &["doctor", exam().to_str().unwrap()],
    )
    .await;
    fails_alone(
        &out,
        "privileges",
        &["lab up", "VM.Clone on /vms/9000", "setup operator"],
    );
    assert!(!out.1.contains(&token), "the token's secret was printed");
}

#[tokio::test]
async fn a_firewall_that_would_lock_out_this_machine_is_named_with_its_fix() {
    let sim = sim().await;
    let c = root(&sim);
    local_network_elsewhere(&c).await;
    post(
        &c,
        "/cluster/firewall/ipset",
        Params::new().with("name", "management"),
    )
    .await;
    post(
        &c,
        "/cluster/firewall/ipset/management",
        Params::new().with("cidr", "10.9.9.0/24"),
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let out = doctor(home.path(), &sim, &[]).await;
    fails_alone(
        &out,
        "firewall",
        &["127.0.0.1", "8006", "management", "Add 127.0.0.1"],
    );
    // With 127.0.0.1 in the management set it passes.
    post(
        &c,
        "/cluster/firewall/ipset/management",
        Params::new().with("cidr", "127.0.0.1"),
    )
    .await;
    let (code, stdout, _) = doctor(home.path(), &sim, &[]).await;
    assert_eq!(code, Some(0), "{stdout}");
}

#[tokio::test]
async fn a_vmid_range_with_too_few_free_ids_is_named_with_its_fix() {
    let sim = sim().await;
    let upid: String = root(&sim)
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &Params::new()
                .with("newid", 5001)
                .with("name", "someone-else"),
        )
        .await
        .unwrap();
    assert!(upid.starts_with("UPID:"));
    // Someone else's guest, finished: wait for the clone task (its config appears a
    // moment after the answer, as on PVE).
    pve_vm::VmApi::new(root(&sim))
        .wait_task(&upid.parse().unwrap(), std::time::Duration::from_secs(5))
        .await
        .expect("the foreign clone finishes");
    let home = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(exam())
        .unwrap()
        .replace("ids = \"5000-5999\"", "ids = \"5000-5002\"")
        .replace("checks = \"exam-checks.toml\"", "");
    let lab = home.path().join("exam.toml");
    std::fs::write(&lab, text).unwrap();
    let out = run(
        against(home.path(), &sim),
        &["doctor", lab.to_str().unwrap()],
    )
    .await;
    fails_alone(
        &out,
        "vmid range",
        &["only 2 ids of 5000-5002", "3 students", "widen `ids`"],
    );
}

#[tokio::test]
async fn boot_test_reports_each_time_and_leaves_nothing_behind() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = doctor(home.path(), &sim, &["--boot-test"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for step in [
        "boot: clone",
        "boot: start",
        "boot: agent",
        "boot: address",
        "boot: agent exec",
        "boot: destroy",
    ] {
        let l = line(&stdout, step);
        assert!(
            l.first()
                .is_some_and(|l| l.starts_with("ok") && l.ends_with(" s)")),
            "{step} without a time:\n{stdout}"
        );
    }
    let guests = sim.state()["guests"].clone();
    let ids: Vec<u64> = guests
        .as_array()
        .map(|a| a.iter().filter_map(|g| g["vmid"].as_u64()).collect())
        .or_else(|| {
            guests
                .as_object()
                .map(|o| o.keys().filter_map(|k| k.parse().ok()).collect())
        })
        .unwrap_or_default();
    assert!(
        ids.iter().all(|id| !(5000..=5999).contains(id)),
        "the boot test left a guest: {ids:?}"
    );
}

/// The keys `METHOD /template` the simulator counted, without the login.
fn sent(sim: &SimHandle) -> BTreeSet<String> {
    sim.requests()
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.ends_with("/access/ticket"))
        .cloned()
        .collect()
}

async fn table(home: &Path, command: &str) -> BTreeSet<String> {
    operator_rows(home, "--requests")
        .await
        .iter()
        .filter(|r| r["command"] == command)
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_request_table_covers_what_lab_up_and_down_send() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let up = "lab up -n cov -t 9000 -c 2 --teacher 10.10.0.1";
    let (code, _, err) = run_words(against(home.path(), &sim), up).await;
    assert_eq!(code, Some(0), "{err}");
    let missing: Vec<String> = sent(&sim)
        .difference(&table(home.path(), "lab up").await)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "lab up sends, the table lacks: {missing:?}"
    );
    sim.reset_requests();
    let (code, _, err) = run(
        against(home.path(), &sim),
        &["lab", "down", "-n", "cov", "--yes"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let missing: Vec<String> = sent(&sim)
        .difference(&table(home.path(), "lab down").await)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "lab down sends, the table lacks: {missing:?}"
    );
}

#[tokio::test]
async fn the_operator_token_runs_a_whole_lab_under_the_permission_checks() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    // Off a terminal without --yes nothing is created.
    let (code, _, err) = run(against(home.path(), &sim), &["setup", "operator"]).await;
    assert_eq!(code, Some(2), "{err}");
    let (code, dry, _) = run(
        against(home.path(), &sim),
        &["setup", "operator", "--dry-run"],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(dry.contains("POST /access/roles") && dry.contains("nothing was changed"));
    assert!(
        !sim.state().to_string().contains("labctl@pve"),
        "the dry run created something"
    );
    let (code, out, err) = run(against(home.path(), &sim), &["setup", "operator", "--yes"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("PVE_TOKEN="))
        .expect("the token is printed")
        .to_owned();
    assert!(token.starts_with("labctl@pve!labctl="), "{token}");
    assert!(
        !err.contains(token.split('=').nth(1).unwrap()),
        "secret on stderr"
    );
    // The role holds exactly the computed set.
    let role: Value = root(&sim)
        .get("/access/roles/LabctlOperator", &Params::new())
        .await
        .unwrap();
    let held: BTreeSet<String> = role.as_object().unwrap().keys().cloned().collect();
    let computed: BTreeSet<String> = operator_privileges(home.path()).await.into_iter().collect();
    assert_eq!(held, computed);

    let with_token = || with_token(home.path(), &sim, &token);
    let (code, stdout, err) = run(with_token(), &["doctor", exam().to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(
        line(&stdout, "privileges")
            .first()
            .is_some_and(|l| l.starts_with("ok")),
        "{stdout}"
    );
    // No command sends what PVE refuses to tokens (`lab access` sets passwords when it
    // creates users; finding 16).
    assert!(!stdout.contains("refuses to API tokens"), "{stdout}");
    let up = "lab up -n op -t 9000 -c 2 --teacher 10.10.0.1";
    let (code, stdout, err) = run_words(with_token(), up).await;
    assert_eq!(
        code,
        Some(0),
        "lab up with the operator token:\n{stdout}\n{err}"
    );
    let (code, stdout, err) = run(with_token(), &["lab", "down", "-n", "op", "--yes"]).await;
    assert_eq!(
        code,
        Some(0),
        "lab down with the operator token:\n{stdout}\n{err}"
    );
}

#[tokio::test]
async fn the_readme_documents_exactly_the_computed_privileges() {
    let home = tempfile::tempdir().unwrap();
    let computed: BTreeSet<String> = operator_privileges(home.path()).await.into_iter().collect();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("<!-- operator-privileges -->")
        .expect("README has the operator privilege table");
    let end = readme[start..]
        .find("<!-- /operator-privileges -->")
        .expect("the table ends")
        + start;
    let documented: BTreeSet<String> = readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        documented, computed,
        "regenerate the README table from `labctl setup operator --privileges`"
    );
}

/// The status of `check` in `doctor -o json` output, with its detail.
fn json_check(stdout: &str, check: &str) -> (String, String) {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no {check} check: {v}"))
        .clone();
    (
        c["status"].as_str().unwrap().to_owned(),
        c["detail"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn memory_is_ready_exactly_when_lab_plan_accepts_and_a_running_lab_does_not_fail() {
    // Three nodes of 12 GiB with 8 GiB free each: four 2 GiB students per node.
    let sim = sim_builder()
        .node_memory(12 * 1024 * 1024 * 1024)
        .start()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let write = |name: &str, count: u32, extra: &str| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\ntemplate = 9000\ncount = {count}\nids = \"5000-5099\"\n{extra}"
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    // A replica on every node, so a spread class can use them all (as `lab plan` does).
    let (code, out, err) = run(against(dir, &sim), &["template", "replicate", "9000"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    // 6 students kept on pve1 need 12 GiB there, which has 8: the sum over the cluster
    // (24 GiB free) would say yes, `lab plan` says no; so does doctor.
    let one_node = write("one", 6, "nodes = [\"pve1\"]\n");
    // 12 spread over three nodes fit.
    let spread = write("spread", 12, "placement = \"spread\"\n");
    for (file, accepted) in [(&one_node, false), (&spread, true)] {
        let (plan_code, plan_out, plan_err) = run(against(dir, &sim), &["lab", "plan", file]).await;
        assert_eq!(
            plan_code,
            Some(if accepted { 0 } else { 2 }),
            "{plan_out}\n{plan_err}"
        );
        let (_, stdout, stderr) = run(against(dir, &sim), &["-o", "json", "doctor", file]).await;
        let (status, detail) = json_check(&stdout, "memory");
        assert_eq!(
            status,
            if accepted { "ok" } else { "fail" },
            "{file}: {detail}\n{stderr}"
        );
        if !accepted {
            assert!(detail.contains("pve1"), "names the short node: {detail}");
        }
    }
    // The spread class up: its own running students are already in the nodes' used
    // memory and must not be counted again.
    let (code, out, err) = run(against(dir, &sim), &["lab", "up", &spread]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (plan_code, _, _) = run(against(dir, &sim), &["lab", "plan", &spread]).await;
    assert_eq!(plan_code, Some(0));
    let (_, stdout, stderr) = run(against(dir, &sim), &["-o", "json", "doctor", &spread]).await;
    let (status, detail) = json_check(&stdout, "memory");
    assert_eq!(status, "ok", "{detail}\n{stderr}");
}

#[tokio::test]
async fn a_lab_file_problem_is_a_fail_line_and_json_still_prints_the_checklist() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let lab = home.path().join("tight.toml");
    // Five students cannot fit in three ids.
    std::fs::write(
        &lab,
        "name = \"tight\"\ntemplate = 9000\ncount = 5\nids = \"5000-5002\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        against(home.path(), &sim),
        &["-o", "json", "doctor", lab.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["ok"], false);
    let (status, detail) = json_check(&stdout, "lab file");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("5000-5002") || detail.contains('5'),
        "{detail}"
    );
    // The connection checks still ran.
    assert_eq!(json_check(&stdout, "reachable").0, "ok", "{v}");
    let (code, table, _) = run(
        against(home.path(), &sim),
        &["doctor", lab.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        line(&table, "lab file")
            .first()
            .is_some_and(|l| l.starts_with("FAIL")),
        "{table}"
    );
    assert!(table.contains("NOT READY"), "{table}");
}

#[tokio::test]
async fn the_firewall_fix_is_a_command_that_exists_and_says_whether_the_firewall_is_on() {
    let sim = sim().await;
    let c = root(&sim);
    local_network_elsewhere(&c).await;
    let home = tempfile::tempdir().unwrap();
    // `labctl firewall` has no flag that edits the management set.
    let (code, help, _) = run(
        against(home.path(), &sim),
        &["firewall", "isolate", "--help"],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(!help.contains("--management"), "{help}");
    let fix_of = |stdout: &str| {
        line(stdout, "firewall")
            .iter()
            .find(|l| l.trim_start().starts_with("->"))
            .map(|l| (*l).to_owned())
            .unwrap_or_else(|| panic!("no fix:\n{stdout}"))
    };
    // Off: add it before `lab up` switches the firewall on; no `management` set exists yet,
    // so the fix creates it first.
    let (_, off, _) = doctor(home.path(), &sim, &[]).await;
    let fix = fix_of(&off);
    assert!(
        !fix.contains("--management") && !fix.contains("labctl firewall"),
        "{fix}"
    );
    assert!(
        fix.contains("before `lab up` switches")
            && fix.contains("pvesh create /cluster/firewall/ipset --name management")
            && fix.contains("pvesh create /cluster/firewall/ipset/management --cidr 127.0.0.1"),
        "{fix}"
    );
    // On: add it now.
    put(
        &c,
        "/cluster/firewall/options",
        Params::new().with("enable", 1),
    )
    .await;
    let (_, on, _) = doctor(home.path(), &sim, &[]).await;
    let fix = fix_of(&on);
    assert!(
        fix.contains("the firewall is on now") && !fix.contains("before `lab up`"),
        "{fix}"
    );
}

/// The ids of the simulator's guests in `5000..=5999` (the example lab's range).
fn lab_range_guests(sim: &SimHandle) -> Vec<u64> {
    sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["vmid"].as_u64())
        .filter(|id| (5000..=5999).contains(id))
        .collect()
}

/// Waits (at most 20 s) until `ready` holds for the simulator's state.
async fn until(sim: &SimHandle, what: &str, ready: impl Fn(&Value) -> bool) {
    let start = std::time::Instant::now();
    while !ready(&sim.state()) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{what} did not happen: {}",
            sim.state()["guests"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A guest of the example lab's range exists (its clone has begun).
fn clone_begun(state: &Value) -> bool {
    state["guests"].as_array().unwrap().iter().any(|g| {
        g["vmid"]
            .as_u64()
            .is_some_and(|id| (5000..=5999).contains(&id))
    })
}

/// No guest of the example lab's range is locked (its clone task has ended).
fn clone_ended(state: &Value) -> bool {
    state["guests"].as_array().unwrap().iter().all(|g| {
        !g["vmid"]
            .as_u64()
            .is_some_and(|id| (5000..=5999).contains(&id))
            || g["lock"].is_null()
    })
}

/// `labctl doctor examples/exam.toml --boot-test` started in the background against a
/// simulator slow enough (time scale 0.2 for both) to be interrupted during the clone.
fn boot_test_child(home: &Path, sim: &SimHandle) -> tokio::process::Child {
    let exam = exam();
    let mut c = against(home, sim);
    c.env("LABCTL_TIME_SCALE", "0.2")
        .args(["doctor", exam.to_str().unwrap(), "--boot-test"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c.spawn().unwrap()
}

#[tokio::test]
async fn finding_6_ctrl_c_during_the_boot_test_clone_leaves_no_guest() {
    let sim = sim_builder().time_scale(0.2).start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let child = boot_test_child(home.path(), &sim);
    until(&sim, "the boot test's clone", clone_begun).await;
    common::interrupt(&child);
    let out = tokio::time::timeout(common::RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("interrupted (Ctrl-C)"), "{stdout}");
    assert!(
        line(&stdout, "boot: destroy")
            .first()
            .is_some_and(|l| l.starts_with("ok")),
        "the guest is removed and said so:\n{stdout}"
    );
    assert_eq!(
        lab_range_guests(&sim),
        Vec::<u64>::new(),
        "the interrupted boot test left a guest:\n{stdout}"
    );
}

#[tokio::test]
async fn finding_6_a_killed_boot_test_s_guest_is_reported_then_removed_by_the_next() {
    let sim = sim_builder().time_scale(0.2).start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut child = boot_test_child(home.path(), &sim);
    until(&sim, "the boot test's clone", clone_begun).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    until(&sim, "the clone's end", clone_ended).await;
    let left = lab_range_guests(&sim);
    assert_eq!(left.len(), 1, "SIGKILL leaves the clone: {left:?}");
    let id = left[0].to_string();
    // Doctor only reads: it names the guest and how to remove it.
    let (code, stdout, stderr) = doctor(home.path(), &sim, &[]).await;
    assert_eq!(
        code,
        Some(0),
        "a warning does not block:\n{stdout}\n{stderr}"
    );
    let l = line(&stdout, "boot test").join("\n");
    assert!(
        l.starts_with("warn")
            && l.contains(&id)
            && l.contains("exam1-doctor")
            && l.contains(&format!("labctl vm destroy {id} --stop --yes"))
            && l.contains("--boot-test` removes"),
        "{stdout}"
    );
    assert_eq!(
        lab_range_guests(&sim),
        left,
        "doctor without --boot-test changed nothing"
    );
    // The next boot test removes it first, then leaves nothing of its own.
    let (_, stdout, stderr) = doctor(home.path(), &sim, &["--boot-test"]).await;
    assert!(
        line(&stdout, "boot: leftover")
            .first()
            .is_some_and(|l| l.starts_with("ok") && l.contains(&id)),
        "{stdout}\n{stderr}"
    );
    assert_eq!(lab_range_guests(&sim), Vec::<u64>::new(), "{stdout}");
}

#[tokio::test]
async fn finding_7_the_operator_token_sees_storage_that_cannot_make_linked_clones() {
    let sim = sim_builder().linked_clones(false).start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(against(home.path(), &sim), &["setup", "operator", "--yes"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("PVE_TOKEN="))
        .unwrap()
        .to_owned();
    // Root gets FAIL; so does the operator token (`lab up` fails the same for both).
    let exam = exam();
    let args = ["doctor", exam.to_str().unwrap()];
    let out = run(with_token(home.path(), &sim, &token), &args).await;
    fails_alone(
        &out,
        "linked clones",
        &["local-lvm (lvm)", "clone = \"full\""],
    );
    // A login that cannot see the storage's type is not "ready" either.
    let mut privs = operator_privileges(home.path()).await;
    assert!(privs.iter().any(|p| p == "Datastore.Audit"), "{privs:?}");
    privs.retain(|p| p != "Datastore.Audit");
    let blind = token_with(&sim, "Blind", &privs).await;
    let out = run(with_token(home.path(), &sim, &blind), &args).await;
    assert_fails(
        &out,
        "linked clones",
        &["cannot tell", "Datastore.Audit", "clone = \"full\""],
    );
}

#[tokio::test]
async fn finding_8_the_boot_test_of_a_container_lab_passes() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let lab = common::write_file(
        home.path(),
        "ct.toml",
        "name = \"ctlab\"\ntemplate = 9001\ncount = 2\nids = \"5300-5399\"\n",
    );
    let (code, stdout, stderr) =
        run(against(home.path(), &sim), &["doctor", &lab, "--boot-test"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for step in [
        "boot: clone",
        "boot: start",
        "boot: address",
        "boot: destroy",
    ] {
        assert!(
            line(&stdout, step)
                .first()
                .is_some_and(|l| l.starts_with("ok")),
            "{step}:\n{stdout}"
        );
    }
    assert!(
        line(&stdout, "boot: agent")
            .first()
            .is_some_and(|l| l.starts_with("skip") && l.contains("container")),
        "{stdout}"
    );
    let left: Vec<u64> = sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["vmid"].as_u64())
        .filter(|id| (5300..=5399).contains(id))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn finding_9_setup_mistakes_and_bad_lab_files_are_usage_errors() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let exam = exam();
    let exam = exam.to_str().unwrap();
    let usage = |out: (Option<i32>, String, String), says: &str| {
        let (code, stdout, stderr) = out;
        assert_eq!(code, Some(2), "{says}:\n{stdout}\n{stderr}");
        assert!(stderr.contains(says), "{says}:\n{stderr}");
        assert!(!stdout.contains("reachable"), "no checklist:\n{stdout}");
    };
    // No host.
    usage(
        run(common::labctl(home.path()), &["doctor", exam]).await,
        "PVE_HOST",
    );
    // No credentials.
    let mut c = common::labctl(home.path());
    c.env("PVE_HOST", sim.url());
    usage(run(c, &["doctor", exam]).await, "no credentials");
    // An empty password.
    let mut c = against(home.path(), &sim);
    c.env("PVE_PASSWORD", "");
    usage(run(c, &["doctor", exam]).await, "PVE_PASSWORD");
    // A fingerprint for plain http.
    let mut c = against(home.path(), &sim);
    c.env("PVE_FINGERPRINT", "AA:".repeat(31) + "AA");
    usage(run(c, &["doctor", exam]).await, "");
    // A config cluster's password for another host than PVE_HOST names.
    let other = common::Recorder::start();
    let pw = common::secret_file(home.path(), "school.pw", "pw-of-the-school-cluster");
    let cfg = home.path().join("cfg-secret");
    std::fs::create_dir_all(cfg.join("labctl")).unwrap();
    std::fs::write(
        cfg.join("labctl/config.toml"),
        format!(
            "default = \"school\"\n[clusters.school]\nhost = \"{}\"\nuser = \
             \"root@pam\"\npassword_file = \"{pw}\"\n",
            sim.url()
        ),
    )
    .unwrap();
    let mut c = common::labctl(home.path());
    c.env("XDG_CONFIG_HOME", &cfg).env("PVE_HOST", &other.url);
    usage(run(c, &["doctor", exam]).await, "refusing to send");
    assert_eq!(other.requests(), 0, "{}", other.received());
    // A lab file that is missing or does not parse.
    let missing = home.path().join("nope.toml");
    usage(
        run(
            against(home.path(), &sim),
            &["doctor", missing.to_str().unwrap()],
        )
        .await,
        "nope.toml",
    );
    let broken = common::write_file(home.path(), "broken.toml", "name = \"x\"\nfoo = [\n");
    usage(
        run(against(home.path(), &sim), &["doctor", &broken]).await,
        "broken.toml",
    );
}

#[tokio::test]
async fn finding_15_a_token_id_pve_refuses_is_refused_before_any_request() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["setup", "operator", "--token", "x", "--dry-run"],
        vec!["setup", "operator", "--token", "x", "--yes"],
        vec!["setup", "operator", "--token", "1abc", "--yes"],
    ] {
        sim.reset_requests();
        let (code, stdout, stderr) = run(against(home.path(), &sim), &args).await;
        assert_eq!(code, Some(2), "{args:?}\n{stdout}\n{stderr}");
        assert!(
            stderr.contains("--token") && stderr.contains("at least one more"),
            "names the flag and what is allowed: {stderr}"
        );
        assert!(sent(&sim).is_empty(), "{args:?} sent {:?}", sent(&sim));
    }
    assert!(
        !sim.state().to_string().contains("LabctlOperator"),
        "nothing was created"
    );
    // Two characters are PVE's shortest token id.
    let (code, stdout, stderr) = run(
        against(home.path(), &sim),
        &["setup", "operator", "--token", "xy", "--yes"],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("PVE_TOKEN=labctl@pve!xy="), "{stdout}");
}

#[tokio::test]
async fn finding_16_doctor_readme_and_simulator_agree_on_what_the_operator_token_may_do() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    // Root is told the operator token is not least privilege, as the README says.
    let (_, stdout, _) = doctor(home.path(), &sim, &[]).await;
    let l = line(&stdout, "privileges").join("\n");
    assert!(!l.contains("least-privilege"), "{l}");
    assert!(l.contains("not least privilege"), "{l}");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    assert!(readme.contains("it is not least privilege"));
    // The token runs `lab access grant` (passwords set when users are made), so doctor
    // warns of nothing it cannot do.
    let (code, out, err) = run(against(home.path(), &sim), &["setup", "operator", "--yes"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("PVE_TOKEN="))
        .unwrap()
        .to_owned();
    let with_token = || with_token(home.path(), &sim, &token);
    let (code, stdout, err) = run(with_token(), &["doctor", exam().to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(!stdout.contains("refuses to API tokens"), "{stdout}");
    assert!(!stdout.starts_with("warn  privileges"), "{stdout}");
    let up = "lab up -n acc -t 9000 -c 2 --teacher 10.10.0.1";
    let (code, _, err) = run_words(with_token(), up).await;
    assert_eq!(code, Some(0), "{err}");
    sim.reset_requests();
    let (code, stdout, err) = run(
        with_token(),
        &["lab", "access", "grant", "-n", "acc", "--yes"],
    )
    .await;
    assert_eq!(
        code,
        Some(0),
        "lab access grant with the token:\n{stdout}\n{err}"
    );
    let (code, stdout, err) = run(
        with_token(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "acc",
            "--reset-password",
            "acc-01",
            "--yes",
        ],
    )
    .await;
    assert_eq!(
        code,
        Some(0),
        "--reset-password with the token:\n{stdout}\n{err}"
    );
    assert!(stdout.contains("replace password"), "{stdout}");
    let sent = sent(&sim);
    assert!(!sent.contains("PUT /access/password"), "{sent:?}");
    // Everything `lab access` sent is in the request table.
    let missing: Vec<String> = sent
        .difference(&table(home.path(), "lab access").await)
        .filter(|k| !k.starts_with("GET "))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "lab access sends, the table lacks: {missing:?}"
    );
    // The simulator refuses the password change to a token, as PVE does.
    let t = token.parse::<pve_auth::ApiToken>().unwrap();
    let client = PveClient::builder(&sim.url()).token(t).build().unwrap();
    let err = client
        .put::<Value>(
            "/access/password",
            &Params::new()
                .with("userid", "labctl@pve")
                .with("password", "Secret-12345"),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not available with API token"),
        "{err}"
    );
}
