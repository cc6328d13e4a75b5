//! Group `collect`: `labctl lab collect` of inside probes against an in-process `pve-sim`
//! (3 nodes, time scale [`TIME_SCALE`]), compared with the simulator's bound for it
//! ([`crate::collect_bound`]).
//!
//! Set-up (not measured): `lab up` of N students through `lab-core`/`lab-proxmox` as the
//! `exam` group does (linked clones of 9000, so every guest is on `pve1`), then each
//! guest's command table gets the six programs the probes run, each answering after
//! [`RUN_TIME`] simulated seconds (`PUT /_sim/guests/{vmid}/state`, in-process), and a
//! file. The spec ([`SPEC`]) has 10 inside probes per student: 7 `exec` (two of them ask
//! the same thing, so collect runs them once: 6 exec runs) and 3 `file`, each used by a
//! check.
//!
//! Measured: `lab_grade::collect::collect` with `lab_proxmox::probes::PveRunner`, built as
//! `labctl lab collect` builds them under `LABCTL_TIME_SCALE` (agent polls scaled,
//! `CollectOptions` with labctl's default probes in flight (256), its error pause
//! scaled), on a client runtime of its own: the makespan, the bound, their ratio, the
//! requests the simulator served per probe and per run (by endpoint in the JSON), runs
//! against probes, the client's CPU time. A second run keeps every probe run of the class
//! in flight at once, to show how close the collector gets to what the simulator itself
//! allows. The evidence is then graded: every check must pass, or the run says so.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab_core::{apply, status, LabName, LabSpec, Timeouts, VmId};
use lab_grade::collect::{collect, CollectOptions, CollectReport};
use lab_grade::{grade, Outcome, Spec, Store, StudentInfo};
use lab_proxmox::probes::PveRunner;
use lab_proxmox::ProxmoxLab;
use pve_agent::{AgentApi, AgentOptions};
use pve_auth::{PveClient, Secret};
use pve_sim::{SimHandle, Simulator};
use pve_vm::{Timing, VmApi};
use serde::Serialize;
use serde_json::{json, Value};

use crate::bound::ratio;
use crate::collect_bound::{CollectBound, Load, NodeLoad, HOLD_RUNNING_AGENT};
use crate::cpu::on_metered_runtime;
use crate::report::Group;
use crate::Settings;

/// The simulator's time scale: a 2 s command takes 0.2 s.
pub const TIME_SCALE: f64 = 0.1;
/// Simulated seconds every command of the benchmark's table takes.
pub const RUN_TIME: f64 = 2.0;
/// The template of the simulator's initial inventory.
const TEMPLATE: u32 = 9000;
/// The teacher's address (`--teacher 10.10.0.1`).
const TEACHER: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
const PASSWORD: &str = "bench-collect-secret";
/// Worker threads of the client runtime, as in the `exam` group.
const CLIENT_THREADS: usize = 2;
/// Longest real wait for `lab up` (set-up).
const UP_BUDGET: Duration = Duration::from_secs(120);
/// Longest real wait for one collection (a multiple of its bound, at least this).
const COLLECT_MIN_BUDGET: Duration = Duration::from_secs(30);

/// The checks of the benchmark: 10 inside probes (7 exec, two of them identical, and 3
/// files), one check each.
pub const SPEC: &str = r#"
[exam]
timeout = 10

[[probe]]
id = "ports"
exec = ["ss", "-H", "-tlnp"]

[[probe]]
id = "ruleset"
exec = ["nft", "-j", "list", "ruleset"]

[[probe]]
id = "ruleset-policy"
exec = ["nft", "-j", "list", "ruleset"]

[[probe]]
id = "resolver"
exec = ["resolvectl", "dns", "ens18"]

[[probe]]
id = "ntp"
exec = ["timedatectl", "show", "-p", "NTPSynchronized"]

[[probe]]
id = "nginx-pkg"
exec = ["dpkg-query", "-W", "-f", "${Status}", "nginx"]

[[probe]]
id = "vlans"
exec = ["bridge", "-j", "vlan", "show"]

[[probe]]
id = "hostname"
file = "/etc/hostname"

[[probe]]
id = "resolv"
file = "/etc/resolv.conf"

[[probe]]
id = "nftables-conf"
file = "/etc/nftables.conf"

[[check]]
id = "web-listens"
probe = "ports"
expect = [{ regex = "(?m)^LISTEN\\s+\\S+\\s+\\S+\\s+0\\.0\\.0\\.0:80\\s" }]

[[check]]
id = "filter-table"
probe = "ruleset"
expect = [{ json = "$.nftables[*].table.name", includes = ["filter"] }]

[[check]]
id = "input-drops"
probe = "ruleset-policy"
expect = [{ json = "$.nftables[?(@.chain.hook=='input')].chain.policy", equals = "drop" }]

[[check]]
id = "dns-teacher"
probe = "resolver"
expect = [{ contains = "{{teacher_ip}}" }]

[[check]]
id = "ntp-synced"
probe = "ntp"
expect = [{ equals = "NTPSynchronized=yes" }]

[[check]]
id = "nginx-installed"
probe = "nginx-pkg"
expect = [{ equals = "install ok installed" }, { exit = 0 }]

[[check]]
id = "untagged-vlan"
probe = "vlans"
expect = [{ json = "$[?(@.ifname=='ens18')].vlans[*].vlan", includes = [1] }]

[[check]]
id = "hostname-set"
probe = "hostname"
expect = [{ equals = "{{hostname}}" }]

[[check]]
id = "resolver-file"
probe = "resolv"
expect = [{ regex = "(?m)^nameserver\\s" }]

[[check]]
id = "rules-saved"
probe = "nftables-conf"
expect = [{ contains = "policy drop" }]
"#;

/// One collection to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Students.
    pub students: u32,
    /// Probe runs in flight (`None`: every run of the class at once).
    pub in_flight: Option<usize>,
}

impl Scenario {
    /// `collect-50` (labctl's default in flight) or `collect-50-all` (all at once).
    pub fn label(&self) -> String {
        match self.in_flight {
            Some(_) => format!("collect-{}", self.students),
            None => format!("collect-{}-all", self.students),
        }
    }
}

/// The students of a run: 50 (quick: 10).
pub fn students(quick: bool) -> u32 {
    if quick {
        10
    } else {
        50
    }
}

/// The scenarios of a run on one class: labctl's default in flight, then all at once.
pub fn scenarios(students: u32) -> Vec<Scenario> {
    vec![
        Scenario {
            students,
            in_flight: Some(CollectOptions::default().concurrency),
        },
        Scenario {
            students,
            in_flight: None,
        },
    ]
}

/// What one collection measured.
#[derive(Debug, Clone, Serialize)]
pub struct CollectResult {
    /// `collect-50`, `collect-50-all`.
    pub label: String,
    /// Students.
    pub students: u32,
    /// Probe runs in flight (the number used for "all").
    pub in_flight: usize,
    /// The simulator's time scale.
    pub time_scale: f64,
    /// Simulated seconds per command.
    pub run_time_s: f64,
    /// What the bound was computed from.
    pub load: Load,
    /// The bound.
    pub bound: CollectBound,
    /// Did the collection end within its budget?
    pub finished: bool,
    /// Its error, or why it was stopped.
    pub error: Option<String>,
    /// From the call of `collect` to its answer, seconds.
    pub makespan_s: f64,
    /// `makespan / bound`.
    pub ratio: Option<f64>,
    /// Client CPU time (user + system), seconds.
    pub cpu_s: f64,
    /// Probes planned (evidence files expected).
    pub probes: usize,
    /// Exec runs the plan needs after deduplication (the bound's `E`).
    pub exec_runs: u64,
    /// File runs.
    pub file_runs: u64,
    /// What `collect` reported.
    pub runs: usize,
    /// Evidence files written.
    pub written: usize,
    /// Evidence files recording an error.
    pub errors: usize,
    /// Students sealed.
    pub sealed: usize,
    /// API requests the simulator served during the collection.
    pub requests: u64,
    /// `requests / probes`.
    pub requests_per_probe: f64,
    /// `requests / runs`.
    pub requests_per_run: f64,
    /// The fewest requests the runs need (the bound's `min_calls`), per probe.
    pub min_requests_per_probe: f64,
    /// Requests by `METHOD /template`, most first.
    pub by_endpoint: Vec<(String, u64)>,
    /// Checks graded `pass` on the evidence, and all checks graded.
    pub checks_passed: usize,
    /// All checks graded.
    pub checks_graded: usize,
}

/// Run the group: one class, two collections.
pub fn run(
    settings: &Settings,
    rt: &tokio::runtime::Runtime,
) -> Result<(Group, Vec<CollectResult>)> {
    let n = students(settings.quick);
    let spec = Spec::parse(SPEC, "bench collect spec").map_err(|e| anyhow::anyhow!("{e}"))?;
    let sim = rt
        .block_on(
            Simulator::builder()
                .plain_http(true)
                .password(PASSWORD)
                .time_scale(TIME_SCALE)
                .start(),
        )
        .context("starting the simulator")?;
    let result: Result<Vec<CollectResult>> = (|| {
        eprintln!("labctl-bench: collect: lab up of {n} students (set-up)");
        let class = rt.block_on(set_up(&sim, n))?;
        let mut results = Vec::new();
        for sc in scenarios(n) {
            eprintln!("labctl-bench: collect: {}", sc.label());
            let r = scenario(&sim, &spec, &class, &sc)
                .with_context(|| format!("scenario {}", sc.label()))?;
            eprintln!(
                "labctl-bench: collect: {}: {:.2} s (bound {:.2} s), {:.2} req/probe, {} runs \
                 for {} probes, {}/{} checks pass",
                r.label,
                r.makespan_s,
                r.bound.bound_s,
                r.requests_per_probe,
                r.runs,
                r.probes,
                r.checks_passed,
                r.checks_graded
            );
            if r.checks_passed < r.checks_graded {
                eprintln!(
                    "labctl-bench: collect: {}: warning: only {} of {} checks pass on the \
                     collected evidence (the guests answer every probe right): the figures \
                     measure a broken collection",
                    r.label, r.checks_passed, r.checks_graded
                );
            }
            results.push(r);
        }
        Ok(results)
    })();
    rt.block_on(sim.shutdown());
    let results = result?;
    Ok((group_of(&results), results))
}

/// The line stdout ends with: the run at labctl's default in flight.
pub fn last_line(results: &[CollectResult]) -> Option<String> {
    let r = results.first()?;
    let ratio = r
        .ratio
        .map_or_else(|| "unfinished".to_owned(), |x| format!("{x:.2}"));
    Some(format!(
        "{} ratio={ratio} requests_per_probe={:.2} runs={} probes={}",
        r.label, r.requests_per_probe, r.runs, r.probes
    ))
}

fn group_of(results: &[CollectResult]) -> Group {
    let mut g = Group::new(
        "collect",
        format!(
            "lab collect of 10 inside probes per student (7 exec of {RUN_TIME} s simulated, two \
             identical; 3 file) through lab_grade::collect + lab_proxmox::probes::PveRunner \
             against pve-sim at time scale {TIME_SCALE}: makespan vs the simulator's bound, \
             requests per probe, runs vs probes"
        ),
    );
    for r in results {
        let l = &r.label;
        g.metric(format!("{l}: makespan"), r.makespan_s * 1e3, "ms");
        g.metric(format!("{l}: bound"), r.bound.bound_s * 1e3, "ms");
        if let Some(x) = r.ratio {
            g.metric(format!("{l}: ratio"), x, "×");
        }
        g.metric(format!("{l}: in flight"), r.in_flight as f64, "count");
        g.metric(
            format!("{l}: requests/probe"),
            r.requests_per_probe,
            "req/probe",
        );
        g.metric(
            format!("{l}: fewest requests/probe"),
            r.min_requests_per_probe,
            "req/probe",
        );
        g.metric(format!("{l}: probes"), r.probes as f64, "count");
        g.metric(format!("{l}: runs"), r.runs as f64, "count");
        g.metric(format!("{l}: errors"), r.errors as f64, "count");
        g.metric(
            format!("{l}: checks passed"),
            r.checks_passed as f64,
            "count",
        );
        g.metric(format!("{l}: client CPU"), r.cpu_s * 1e3, "ms");
    }
    g.details = json!({ "scenarios": results });
    g
}

/// The class after set-up: who each student is and where their guest runs.
struct Class {
    students: Vec<StudentInfo>,
}

/// `lab up` of `n` students, then each guest's command table and files.
async fn set_up(sim: &SimHandle, n: u32) -> Result<Class> {
    let timing = Timing::default().scaled(TIME_SCALE);
    let hv = ProxmoxLab::with_timing(client(&sim.base_url())?, timing);
    let name = LabName::new(&format!("grade{n}"))?;
    let mut spec = LabSpec::new(name.clone(), VmId::new(TEMPLATE)?, n)?;
    spec.teachers = vec![IpAddr::V4(TEACHER)];
    spec.timeouts = Timeouts::default().scaled(TIME_SCALE);
    spec.validate()?;
    tokio::time::timeout(UP_BUDGET, apply(&hv, &spec, &|_| {}))
        .await
        .with_context(|| format!("lab up of {n} students did not end within {UP_BUDGET:?}"))?
        .context("lab up")?;
    let rows = status(&hv, &name).await.context("lab status")?;
    if rows.len() != n as usize {
        bail!("lab up made {} guests, not {n}", rows.len());
    }
    let mut students = Vec::new();
    for r in &rows {
        let ip = r.addresses.iter().find(|a| a.is_ipv4()).copied();
        let info = student_info(&r.hostname, r.vmid.get(), r.node.as_str(), ip);
        sim.put_guest_state(info.vmid, inside(&info))
            .with_context(|| format!("scripting the guest of {}", info.hostname))?;
        students.push(info);
    }
    Ok(Class { students })
}

/// The values `{{…}}` may use, as `labctl lab collect` builds them without a roster.
fn student_info(hostname: &str, vmid: u32, node: &str, ip: Option<IpAddr>) -> StudentInfo {
    let vars: BTreeMap<String, String> = [
        ("student", hostname.to_owned()),
        ("hostname", hostname.to_owned()),
        ("vmid", vmid.to_string()),
        ("node", node.to_owned()),
        ("ip", ip.map(|i| i.to_string()).unwrap_or_default()),
        ("teacher_ip", TEACHER.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    StudentInfo {
        key: hostname.to_owned(),
        name: hostname.to_owned(),
        hostname: hostname.to_owned(),
        vmid,
        node: node.to_owned(),
        vars,
    }
}

/// The guest state that answers every probe of [`SPEC`] so that its check passes: the
/// command table (each command takes [`RUN_TIME`]) and `/etc/nftables.conf`.
fn inside(s: &StudentInfo) -> Value {
    let ip = s.vars.get("ip").cloned().unwrap_or_default();
    let ruleset = json!({"nftables": [
        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "filter", "handle": 1}},
        {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,
                   "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4,
                  "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                  "field": "dport"}}, "right": 22}}, {"accept": null}]}}
    ]});
    let vlans =
        json!([{"ifname": "ens18", "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]}]}]);
    let cmd = |argv: &[&str], stdout: String| json!({"argv": argv, "stdout": stdout, "stderr": "", "exit_code": 0, "run_time": RUN_TIME});
    json!({
        "commands": [
            cmd(&["ss", "-H", "-tlnp"], format!(
                "LISTEN 0      511          0.0.0.0:80        0.0.0.0:*    users:((\"nginx\",pid=812,fd=6))\n\
                 LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:((\"sshd\",pid=640,fd=3))\n\
                 LISTEN 0      4096       {ip}:53        0.0.0.0:*    users:((\"named\",pid=701,fd=20))\n")),
            cmd(&["nft", "-j", "list", "ruleset"], format!("{ruleset}\n")),
            cmd(&["resolvectl", "dns", "ens18"], format!("Link 2 (ens18): {TEACHER}\n")),
            cmd(&["timedatectl", "show", "-p", "NTPSynchronized"], "NTPSynchronized=yes\n".to_owned()),
            cmd(&["dpkg-query", "-W", "-f", "${Status}", "nginx"], "install ok installed".to_owned()),
            cmd(&["bridge", "-j", "vlan", "show"], format!("{vlans}\n")),
        ],
        "files": {
            "/etc/nftables.conf": {
                "content": "#!/usr/sbin/nft -f\nflush ruleset\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 22 accept\n\t}\n}\n",
                "mode": "0644"
            }
        }
    })
}

fn client(base_url: &str) -> Result<PveClient> {
    PveClient::builder(base_url)
        .password("root@pam", Secret::new(PASSWORD))
        .build()
        .context("building the PVE client")
}

/// The runs of a plan per node: exec and file requests after `collect`'s deduplication
/// (one run per student and distinct request).
fn load_of(plans: &[(StudentInfo, Vec<lab_grade::PlannedProbe>)], in_flight: Option<u64>) -> Load {
    let mut per_node: BTreeMap<String, NodeLoad> = BTreeMap::new();
    for (s, probes) in plans {
        let mut seen = std::collections::BTreeSet::new();
        let node = per_node.entry(s.node.clone()).or_default();
        for p in probes {
            let key = serde_json::to_string(&p.dedup_key()).unwrap_or_else(|_| p.id.clone());
            if !seen.insert(key) {
                continue;
            }
            match p.request.kind() {
                "exec" => node.exec_runs += 1,
                "file" => node.file_runs += 1,
                _ => {}
            }
        }
    }
    Load {
        per_node,
        run_time_s: RUN_TIME,
        hold_s: HOLD_RUNNING_AGENT,
        in_flight,
        scale: TIME_SCALE,
    }
}

fn scenario(sim: &SimHandle, spec: &Spec, class: &Class, sc: &Scenario) -> Result<CollectResult> {
    let mut plans = Vec::new();
    for s in &class.students {
        let probes = spec.plan(s).map_err(|e| anyhow::anyhow!("{e}"))?;
        plans.push((s.clone(), probes));
    }
    let probes: usize = plans.iter().map(|(_, p)| p.len()).sum();
    // "All at once": as many places as the class has probes (more runs cannot exist).
    let in_flight = sc.in_flight.unwrap_or(probes.max(1));
    let load = load_of(&plans, sc.in_flight.map(|c| c as u64));
    let bound = load.bound();
    let budget = COLLECT_MIN_BUDGET.max(Duration::from_secs_f64(bound.bound_s * 8.0));
    let dir = tempfile::tempdir().context("creating a temporary evidence directory")?;
    let store = Store::create(dir.path()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = sim.base_url();
    // As labctl builds them under LABCTL_TIME_SCALE: agent polls scaled, the collector's
    // error pause scaled, retry-until waits scaled (the spec has none).
    let options = CollectOptions {
        concurrency: in_flight,
        error_pause: CollectOptions::default().error_pause.mul_f64(TIME_SCALE),
        ..CollectOptions::default()
    };
    sim.reset_requests();
    let ((outcome, wall), cpu) = on_metered_runtime(CLIENT_THREADS, || async {
        let runner = client(&base).map(|c| {
            let vms = VmApi::with_timing(c, Timing::default().scaled(TIME_SCALE));
            let agent = AgentApi::with_options(vms, AgentOptions::default().scaled(TIME_SCALE));
            PveRunner::new(agent, None)
        });
        let t = Instant::now();
        let outcome: Result<CollectReport, String> = match runner {
            Ok(runner) => {
                let settled = |s: &StudentInfo, ev: &lab_grade::Evidence| spec.settled(s, ev);
                match tokio::time::timeout(
                    budget,
                    collect(&runner, &store, &plans, settled, &options, |_, _| {}),
                )
                .await
                {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(format!("collect failed: {e}")),
                    Err(_) => Err(format!(
                        "stopped after {:.1} s (budget)",
                        budget.as_secs_f64()
                    )),
                }
            }
            Err(e) => Err(format!("{e:#}")),
        };
        (outcome, t.elapsed())
    })?;
    let counts = sim.requests();
    let mut by_endpoint: Vec<(String, u64)> = counts
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    by_endpoint.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let requests: u64 = by_endpoint.iter().map(|(_, c)| c).sum();
    let (report, error) = match outcome {
        Ok(r) => (r, None),
        Err(e) => (CollectReport::default(), Some(e)),
    };
    let (checks_passed, checks_graded) = graded(spec, &store, &class.students);
    let makespan_s = wall.as_secs_f64();
    let finished = error.is_none();
    let (exec_runs, file_runs) = (load.exec_runs(), load.file_runs());
    Ok(CollectResult {
        label: sc.label(),
        students: sc.students,
        in_flight,
        time_scale: TIME_SCALE,
        run_time_s: RUN_TIME,
        ratio: finished.then(|| ratio(makespan_s, bound.bound_s)).flatten(),
        load,
        bound,
        finished,
        error,
        makespan_s,
        cpu_s: cpu.as_secs_f64(),
        probes,
        exec_runs,
        file_runs,
        runs: report.runs,
        written: report.written,
        errors: report.errors,
        sealed: report.sealed,
        requests,
        requests_per_probe: per(requests, probes),
        requests_per_run: per(requests, report.runs),
        min_requests_per_probe: per(bound.min_calls, probes),
        by_endpoint,
        checks_passed,
        checks_graded,
    })
}

fn per(count: u64, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        count as f64 / of as f64
    }
}

/// Grade what was collected (as `labctl lab grade` does): checks passed and graded.
fn graded(spec: &Spec, store: &Store, students: &[StudentInfo]) -> (usize, usize) {
    let all: Vec<_> = students
        .iter()
        .filter_map(|s| store.load(&s.key).ok())
        .collect();
    let sheet = grade(spec, "bench", &spec.sha256(), &all);
    let results = sheet.students.iter().flat_map(|s| s.checks.iter());
    let (mut passed, mut total) = (0, 0);
    for c in results {
        total += 1;
        passed += usize::from(c.outcome == Outcome::Pass);
    }
    (passed, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_has_ten_inside_probes_and_a_check_for_each() {
        let spec = Spec::parse(SPEC, "t").unwrap();
        let s = student_info(
            "grade50-01",
            5000,
            "pve1",
            Some(IpAddr::V4(Ipv4Addr::new(10, 10, 3, 7))),
        );
        let plan = spec.plan(&s).unwrap();
        assert_eq!(plan.len(), 10);
        assert!(plan.iter().all(|p| p.source == lab_grade::Source::Guest));
        assert_eq!(
            plan.iter().filter(|p| p.request.kind() == "exec").count(),
            7
        );
        assert_eq!(
            plan.iter().filter(|p| p.request.kind() == "file").count(),
            3
        );
        assert_eq!(spec.check_infos().len(), 10);
        assert!(spec
            .lint(std::slice::from_ref(&s))
            .iter()
            .all(|f| f.level != lab_grade::Level::Error));
    }

    #[test]
    fn identical_probes_make_one_run_per_student_in_the_load() {
        let spec = Spec::parse(SPEC, "t").unwrap();
        let plans: Vec<_> = (1..=4)
            .map(|i| {
                let node = if i % 2 == 0 { "pve2" } else { "pve1" };
                let s = student_info(&format!("s{i}"), 5000 + i, node, None);
                let p = spec.plan(&s).unwrap();
                (s, p)
            })
            .collect();
        let load = load_of(&plans, Some(32));
        assert_eq!(load.exec_runs(), 4 * 6);
        assert_eq!(load.file_runs(), 4 * 3);
        assert_eq!(load.per_node["pve2"].exec_runs, 12);
        let b = load.bound();
        assert_eq!(b.waves, 1);
        assert_eq!(b.min_calls, 4 * (6 * 2 + 3));
    }

    #[test]
    fn scripted_outputs_pass_every_check() {
        // Grade evidence built from the scripted command table alone (no simulator): the
        // outputs the guests will give satisfy the spec, so a collect run that records
        // anything else shows up as checks not passing.
        let spec = Spec::parse(SPEC, "t").unwrap();
        let s = student_info(
            "grade50-01",
            5000,
            "pve1",
            Some(IpAddr::V4(Ipv4Addr::new(10, 10, 3, 7))),
        );
        let state = inside(&s);
        let table: BTreeMap<Vec<String>, String> = state["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let argv = c["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect();
                (argv, c["stdout"].as_str().unwrap().to_owned())
            })
            .collect();
        let files: BTreeMap<&str, String> = [
            ("/etc/hostname", format!("{}\n", s.hostname)),
            ("/etc/resolv.conf", "nameserver 10.10.0.1\n".to_owned()),
            (
                "/etc/nftables.conf",
                state["files"]["/etc/nftables.conf"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        store.write_student(&s).unwrap();
        for p in spec.plan(&s).unwrap() {
            let out = match &p.request {
                lab_grade::Request::Exec { argv } => table[argv].clone(),
                lab_grade::Request::File { path } => files[path.as_str()].clone(),
                other => panic!("unexpected probe {other}"),
            };
            let stdout = lab_grade::Blob(out.into_bytes());
            store
                .write(&lab_grade::Evidence {
                    probe: p.id.clone(),
                    student: s.key.clone(),
                    source: p.source,
                    request: p.request.clone(),
                    target: lab_grade::Target {
                        vmid: Some(s.vmid),
                        node: Some(s.node.clone()),
                        name: s.hostname.clone(),
                    },
                    start: "2026-12-05T03:00:00.000Z".into(),
                    end: "2026-12-05T03:00:02.000Z".into(),
                    attempts: 1,
                    exit: Some(0),
                    signal: None,
                    sha256: stdout.sha256(),
                    stdout,
                    stderr: lab_grade::Blob(Vec::new()),
                    truncated: false,
                    error: None,
                })
                .unwrap();
        }
        store.seal(&s.key).unwrap();
        assert_eq!(graded(&spec, &store, std::slice::from_ref(&s)), (10, 10));
    }

    #[test]
    fn scenarios_are_labctls_default_then_all() {
        let labels: Vec<String> = scenarios(50).iter().map(Scenario::label).collect();
        assert_eq!(labels, ["collect-50", "collect-50-all"]);
        assert_eq!(
            scenarios(50)[0].in_flight,
            Some(CollectOptions::default().concurrency)
        );
        assert_eq!(students(true), 10);
        assert_eq!(students(false), 50);
    }
}
