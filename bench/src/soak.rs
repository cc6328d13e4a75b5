//! `labctl-bench soak` (run by `cargo xtask soak`): repeated `labctl lab up` + `lab down`,
//! each a single invocation of the real `labctl` binary against an in-process `pve-sim`
//! on 127.0.0.1 (port 0, plain HTTP), under
//!
//! - injected faults (the simulator's fault rate: 500/503/596 answers, resets, latency,
//!   failing clone tasks),
//! - tickets that expire mid-run (the simulator's ticket lifetime, 1–3 s of real time),
//! - a second client racing for VMIDs: a few foreign guests (`soakfg-*`, no pool, no tag)
//!   cloned into the lab's id range while `up` runs,
//! - in about one run in three, `labctl lab up` killed with SIGKILL after a random number
//!   of API requests and run again.
//!
//! After `up` the simulator's state must show exactly N lab guests, one per student name,
//! each in the lab's pool with its tag, running with an address and fenced (the
//! reachability oracle: the teacher reachable, another student and a production VM not);
//! after `down` none, no guest the run did not start with except the foreign ones, the
//! lab's pool gone, and templates, foreign guests, pools and the firewall as before.
//!
//! Run `i` uses seed `S + i`; every choice of the run (simulator and fault seed, ticket
//! lifetime, kill point, racing ids) follows from it, so `--seed S+i --runs 1` repeats run
//! `i`. (The interleaving of concurrent requests is up to the scheduler, so a fault may
//! hit a different request of the same run.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pve_auth::{PveClient, Secret};
use pve_sim::{SimHandle, Simulator};
use pve_vm::{CloneMode, CloneOptions, NewId, Timing, VmApi, VmId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::io::AsyncReadExt;

const PASSWORD: &str = "soak-secret";
const TEMPLATE: u32 = 9000;
const TEACHER: &str = "10.10.0.1";
/// A production VM of the simulator's initial inventory students must not reach.
const PROD_VM: u32 = 200;
/// Name prefix of the racing client's guests.
const FOREIGN_PREFIX: &str = "soakfg-";
/// Tries of one racing clone.
const RACER_ATTEMPTS: u32 = 4;
/// The lab's id range (`labctl lab up`'s default `--ids`).
const FIRST_ID: u32 = 5000;
const LAST_ID: u32 = 5999;

/// `labctl-bench soak` options.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// The `labctl` binary to run (`cargo xtask soak` builds it).
    #[arg(long, value_name = "PATH")]
    pub labctl: PathBuf,
    /// Runs (1-1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Students per run (1-500).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub vms: u32,
    /// Probability of an injected fault per API request and per clone (0-0.5).
    #[arg(long, default_value_t = 0.1, value_parser = parse_rate)]
    pub fault_rate: f64,
    /// Seed of the first run; run i uses seed + i.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The simulator's time scale (and LABCTL_TIME_SCALE), 0.001-1.
    #[arg(long, default_value_t = 0.02, value_parser = parse_scale)]
    pub time_scale: f64,
    /// Longest real time one labctl invocation may take before it counts as hung (1-3600 s).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub invocation_timeout: u64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| (0.0..=0.5).contains(v))
        .ok_or_else(|| format!("invalid fault rate {s:?}: a number from 0 to 0.5"))
}

fn parse_scale(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| (0.001..=1.0).contains(v))
        .ok_or_else(|| format!("invalid time scale {s:?}: a number from 0.001 to 1"))
}

/// Everything a run does, drawn from its seed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// The run's seed (also the simulator's).
    pub seed: u64,
    /// Ticket lifetime, real seconds.
    pub ticket_lifetime_s: u64,
    /// Kill `up` once the simulator has served this many requests (`None`: no kill).
    pub kill_after_requests: Option<u64>,
    /// The racing client's clones: (start after this many requests, lowest id it tries).
    pub racers: Vec<(u64, u32)>,
}

impl RunPlan {
    /// The plan of the run with `seed` for `vms` students.
    pub fn draw(seed: u64, vms: u32) -> RunPlan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = u64::from(vms);
        let ticket_lifetime_s = rng.gen_range(1..=3);
        let kill_after_requests = rng
            .gen_bool(1.0 / 3.0)
            .then(|| rng.gen_range(2..=(8 * n).max(3)));
        let racers = (0..rng.gen_range(1..=3))
            .map(|_| {
                (
                    rng.gen_range(1..=(4 * n).max(2)),
                    FIRST_ID + rng.gen_range(0..vms.max(1)),
                )
            })
            .collect();
        RunPlan {
            seed,
            ticket_lifetime_s,
            kill_after_requests,
            racers,
        }
    }
}

/// What one run found.
#[derive(Debug, Default)]
struct Outcome {
    /// What broke, step first (`up: …`, `after up: …`, `down: …`, `after down: …`).
    broke: Vec<String>,
    /// What happened on the way (kills, racer results), for the log.
    notes: Vec<String>,
}

/// Entry point; returns whether every run passed (the caller sets the exit status).
pub fn main(args: &SoakArgs) -> Result<bool> {
    if !args.labctl.is_file() {
        bail!(
            "labctl binary {} does not exist (build it with cargo build -p labctl, or run \
             cargo xtask soak)",
            args.labctl.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(soak(args))
}

async fn soak(args: &SoakArgs) -> Result<bool> {
    let down_yes = down_needs_yes(args).await?;
    println!(
        "soak: {} runs × {} VMs, fault rate {}, time scale {}, seeds {}..={}{}",
        args.runs,
        args.vms,
        args.fault_rate,
        args.time_scale,
        args.seed,
        args.seed + u64::from(args.runs) - 1,
        if down_yes { ", lab down --yes" } else { "" }
    );
    let mut ok = 0;
    let mut failed = Vec::new();
    for i in 0..args.runs {
        let plan = RunPlan::draw(args.seed + u64::from(i), args.vms);
        let started = Instant::now();
        let outcome = run(args, &plan, i, down_yes).await?;
        let took = started.elapsed().as_secs_f64();
        let notes = if outcome.notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", outcome.notes.join("; "))
        };
        if outcome.broke.is_empty() {
            ok += 1;
            println!("run {i} seed={} ok in {took:.1} s{notes}", plan.seed);
        } else {
            println!(
                "run {i} seed={} FAILED in {took:.1} s{notes}: {}",
                plan.seed,
                outcome.broke.join(" | ")
            );
            failed.push((plan.seed, outcome.broke));
        }
    }
    for (seed, broke) in &failed {
        let steps: BTreeSet<&str> = broke
            .iter()
            .filter_map(|b| b.split_once(':').map(|(step, _)| step))
            .collect();
        println!(
            "failed seed={seed} (repeat: --seed {seed} --runs 1): broke {}",
            steps.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    println!("soak runs={} ok={ok}", args.runs);
    Ok(failed.is_empty())
}

/// Does this `labctl lab down` want `--yes` without a terminal?
async fn down_needs_yes(args: &SoakArgs) -> Result<bool> {
    let out = tokio::process::Command::new(&args.labctl)
        .args(["lab", "down", "--help"])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} lab down --help", args.labctl.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("--yes"))
}

/// A guest as `/_sim/state` shows it, reduced to what the checks compare.
#[derive(Debug, Clone, PartialEq)]
struct GuestView {
    name: String,
    node: String,
    template: bool,
    status: String,
    pool: Option<String>,
    ipv4: Option<String>,
    config: Value,
}

fn guests(state: &Value) -> BTreeMap<u32, GuestView> {
    state["guests"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|g| {
            let vmid = u32::try_from(g["vmid"].as_u64()?).ok()?;
            Some((
                vmid,
                GuestView {
                    name: g["name"].as_str().unwrap_or_default().to_owned(),
                    node: g["node"].as_str().unwrap_or_default().to_owned(),
                    template: g["template"].as_bool().unwrap_or(false),
                    status: g["status"].as_str().unwrap_or_default().to_owned(),
                    pool: g["pool"].as_str().map(str::to_owned),
                    ipv4: g["ipv4"].as_str().map(str::to_owned),
                    config: g["config"].clone(),
                },
            ))
        })
        .collect()
}

fn has_tag(g: &GuestView, tag: &str) -> bool {
    g.config["tags"]
        .as_str()
        .is_some_and(|t| t.split([';', ',', ' ']).any(|x| x == tag))
}

/// How a guest differs between two snapshots: `(vanished)`, `(appeared)` or the fields.
fn what_changed(a: Option<&GuestView>, b: Option<&GuestView>) -> String {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (Some(_), None) => return "(vanished)".to_owned(),
        (None, Some(_)) => return "(appeared)".to_owned(),
        (None, None) => return "(absent)".to_owned(),
    };
    let mut fields = Vec::new();
    if a.name != b.name {
        fields.push(format!("name {:?}→{:?}", a.name, b.name));
    }
    if a.status != b.status {
        fields.push(format!("status {}→{}", a.status, b.status));
    }
    if a.pool != b.pool {
        fields.push(format!("pool {:?}→{:?}", a.pool, b.pool));
    }
    if a.template != b.template || a.node != b.node || a.ipv4 != b.ipv4 {
        fields.push("template/node/address".to_owned());
    }
    if a.config != b.config {
        fields.push(format!(
            "config at {}",
            first_difference(&a.config, &b.config)
        ));
    }
    format!("({})", fields.join(", "))
}

/// Which of the lab's marks a guest carries.
fn marks(g: &GuestView, lab: &str, tag: &str) -> &'static str {
    match (g.pool.as_deref() == Some(lab), has_tag(g, tag)) {
        (true, true) => "pool and tag",
        (true, false) => "pool only, no tag",
        (false, true) => "tag only, no pool",
        (false, false) => "no marks",
    }
}

/// The firewall state without the files of `skip` guests (the racer's, which did not
/// exist before the run).
fn firewall_without(state: &Value, skip: &BTreeSet<u32>) -> Value {
    let mut fw = state["firewall"].clone();
    if let Some(g) = fw.get_mut("guests").and_then(Value::as_object_mut) {
        g.retain(|id, _| id.parse::<u32>().map_or(true, |id| !skip.contains(&id)));
    }
    fw
}

/// A `labctl` invocation's result.
struct Invocation {
    status: Option<i32>,
    killed: bool,
    stderr_tail: String,
    /// stdout and stderr, for naming what labctl said about a guest.
    output: String,
}

async fn run(args: &SoakArgs, plan: &RunPlan, index: u32, down_yes: bool) -> Result<Outcome> {
    let sim = Arc::new(
        Simulator::builder()
            .plain_http(true)
            .password(PASSWORD)
            .seed(plan.seed)
            .time_scale(args.time_scale)
            .fault_rate(args.fault_rate)
            .ticket_lifetime(Duration::from_secs(plan.ticket_lifetime_s))
            .start()
            .await
            .context("starting the simulator")?,
    );
    let lab = format!("soak{index:03}");
    let mut out = Outcome::default();
    let before = sim.state();
    let before_guests = guests(&before);

    // lab up, racing clients alongside, maybe killed once and run again.
    sim.reset_requests();
    let racers = spawn_racers(&sim, plan, args.time_scale)?;
    let up_args = [
        "lab",
        "up",
        "-n",
        &lab,
        "-t",
        &TEMPLATE.to_string(),
        "-c",
        &args.vms.to_string(),
        "--teacher",
        TEACHER,
    ]
    .map(str::to_owned);
    if let Some(k) = plan.kill_after_requests {
        let first = invoke(args, &sim, &up_args, Some(k)).await?;
        if first.killed {
            out.notes.push(format!("up killed after {k} requests"));
        } else {
            out.notes.push(format!(
                "up ended (exit {:?}) before {k} requests, no kill",
                first.status
            ));
        }
    }
    let up = invoke(args, &sim, &up_args, None).await?;
    let mut claimed = Vec::new();
    for r in racers {
        match r.await {
            Ok(Ok(id)) => claimed.push(id),
            Ok(Err(e)) => out.notes.push(format!("racer: {e}")),
            Err(e) => out.notes.push(format!("racer task: {e}")),
        }
    }
    // Let tasks nobody waits for any more (a killed labctl's clones, a racer's lost
    // attempt) end, so the snapshot is what stays.
    settle(&sim).await;
    // The racer's guests are those it created, known by the name it gave them (the id
    // its clone call answered with is not proof: see the note below).
    let after_up = sim.state();
    let after_up_guests = guests(&after_up);
    let foreign: BTreeSet<u32> = after_up_guests
        .iter()
        .filter(|(id, g)| g.name.starts_with(FOREIGN_PREFIX) && !before_guests.contains_key(id))
        .map(|(id, _)| *id)
        .collect();
    for id in claimed.iter().filter(|id| !foreign.contains(id)) {
        let g = after_up_guests.get(id);
        out.notes.push(format!(
            "racer's clone answered with vm {id}, which it did not create ({:?}, description {:?})",
            g.map(|g| g.name.as_str()),
            g.and_then(|g| g.config["description"].as_str())
        ));
    }
    out.notes.push(format!("{} foreign guests", foreign.len()));
    if up.status != Some(0) {
        out.broke.push(format!(
            "up: exit {:?}: {}",
            up.status,
            up.stderr_tail.trim()
        ));
    }
    check_up(
        &sim,
        &lab,
        args.vms,
        &before_guests,
        &foreign,
        &after_up_guests,
        &mut out.broke,
    );

    // lab down.
    let mut down_args = ["lab", "down", "-n", &lab].map(str::to_owned).to_vec();
    if down_yes {
        down_args.push("--yes".to_owned());
    }
    let down = invoke(args, &sim, &down_args, None).await?;
    if down.status != Some(0) {
        out.broke.push(format!(
            "down: exit {:?}: {}",
            down.status,
            down.stderr_tail.trim()
        ));
    }
    let after_down = sim.state();
    let after_down_guests = guests(&after_down);
    let vanished: Vec<u32> = foreign
        .iter()
        .filter(|id| !after_down_guests.contains_key(id))
        .copied()
        .collect();
    for id in vanished {
        let said: Vec<&str> = up
            .output
            .lines()
            .chain(down.output.lines())
            .filter(|l| l.contains(&id.to_string()))
            .take(4)
            .collect();
        out.notes
            .push(format!("labctl on foreign {id}: {}", said.join(" / ")));
    }
    let logins = sim.requests()["POST /access/ticket"].as_u64().unwrap_or(0);
    out.notes.push(format!("{logins} logins/renewals"));
    check_down(
        &lab,
        &before,
        &after_up_guests,
        &foreign,
        &after_down,
        &mut out.broke,
    );
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.shutdown().await;
    }
    Ok(out)
}

/// Wait (at most 30 s) until the simulator runs no task.
async fn settle(sim: &SimHandle) {
    let until = Instant::now() + Duration::from_secs(30);
    while sim.state()["tasks"]["running"].as_u64().unwrap_or(0) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests the simulator has served since the last reset.
fn served(sim: &SimHandle) -> u64 {
    sim.requests()
        .as_object()
        .map_or(0, |counts| counts.values().filter_map(Value::as_u64).sum())
}

/// Wait (at most `limit`) until the simulator has served `n` requests.
async fn wait_for_requests(sim: &SimHandle, n: u64, limit: Duration) {
    let until = Instant::now() + limit;
    while served(sim) < n && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Start the racing client's clones; each resolves to the id it got.
fn spawn_racers(
    sim: &Arc<SimHandle>,
    plan: &RunPlan,
    scale: f64,
) -> Result<Vec<tokio::task::JoinHandle<Result<u32, String>>>> {
    let client = PveClient::builder(&sim.base_url())
        .password("root@pam", Secret::new(PASSWORD))
        .build()
        .context("building the racing client")?;
    let api = VmApi::with_timing(client, Timing::default().scaled(scale));
    Ok(plan
        .racers
        .iter()
        .enumerate()
        .map(|(j, &(after, from))| {
            let api = api.clone();
            let sim = Arc::clone(sim);
            tokio::spawn(async move {
                wait_for_requests(&sim, after, Duration::from_secs(60)).await;
                drop(sim);
                let id = |n: u32| VmId::new(n).map_err(|e| e.to_string());
                let (template, first, last) = (id(TEMPLATE)?, id(from)?, id(LAST_ID)?);
                // A user's script would try again after an injected fault, so the race
                // happens even at high fault rates.
                let mut last_error = String::new();
                for attempt in 0..RACER_ATTEMPTS {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let result = async {
                        let t = api
                            .guest(template)
                            .await
                            .map_err(|e| format!("reading the template: {e}"))?;
                        t.clone_to(CloneOptions {
                            newid: NewId::Within(first..=last),
                            hostname: Some(format!("{FOREIGN_PREFIX}{j}")),
                            mode: CloneMode::Linked,
                            ..CloneOptions::default()
                        })
                        .await
                        .map_err(|e| format!("clone {FOREIGN_PREFIX}{j}: {e}"))
                    }
                    .await;
                    match result {
                        Ok(g) => return Ok(g.vmid().get()),
                        Err(e) => last_error = e,
                    }
                }
                Err(last_error)
            })
        })
        .collect())
}

/// Environment a user's shell might carry that would change what labctl does.
pub(crate) const SCRUBBED_ENV: &[&str] = &[
    "PVE_TOKEN",
    "PVE_FINGERPRINT",
    "PVE_CA_FILE",
    "LABCTL_LAB",
    "RUST_LOG",
];

/// Run `labctl ARGS` against the simulator (password from the environment, never argv);
/// with `kill_after`, SIGKILL it once the simulator has served that many requests.
async fn invoke(
    args: &SoakArgs,
    sim: &SimHandle,
    argv: &[String],
    kill_after: Option<u64>,
) -> Result<Invocation> {
    let mut cmd = tokio::process::Command::new(&args.labctl);
    cmd.args(argv)
        .env("PVE_HOST", sim.url())
        .env("PVE_USER", sim.user())
        .env("PVE_PASSWORD", PASSWORD)
        .env("LABCTL_TIME_SCALE", args.time_scale.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", args.labctl.display()))?;
    let mut stdout = child.stdout.take().context("labctl stdout")?;
    let mut stderr = child.stderr.take().context("labctl stderr")?;
    // Drain both pipes so a chatty labctl never blocks on a full pipe.
    let out_task = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b).await;
        b
    });
    let err_task = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b).await;
        b
    });
    let limit = Duration::from_secs(args.invocation_timeout);
    let started = Instant::now();
    let mut killed = false;
    let mut hung = false;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for labctl")? {
            break status;
        }
        let kill_now = kill_after.is_some_and(|k| served(sim) >= k);
        if kill_now || started.elapsed() > limit {
            killed = kill_now;
            hung = !kill_now;
            child.start_kill().context("killing labctl")?;
            break child
                .wait()
                .await
                .context("waiting for the killed labctl")?;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let stdout = out_task.await.unwrap_or_default();
    let stderr = err_task.await.unwrap_or_default();
    let text = String::from_utf8_lossy(&stderr);
    let output = format!("{}\n{text}", String::from_utf8_lossy(&stdout));
    // labctl's own error line says it all; else the last lines.
    let mut stderr_tail = match text.lines().rev().find(|l| l.starts_with("labctl: error:")) {
        Some(line) => line.to_owned(),
        None => {
            let mut tail: Vec<&str> = text.lines().rev().take(3).collect();
            tail.reverse();
            tail.join(" / ")
        }
    };
    if hung {
        stderr_tail = format!(
            "no exit within {} s, killed; {stderr_tail}",
            limit.as_secs()
        );
    }
    Ok(Invocation {
        status: status.code(),
        killed,
        stderr_tail,
        output,
    })
}

/// Host name of student `n` (`labctl`'s default pattern `<lab>-{n:02}`).
fn student_name(lab: &str, n: u32) -> String {
    format!("{lab}-{n:02}")
}

/// Up to five items and how many more.
fn some<T: std::fmt::Display>(items: &[T]) -> String {
    let mut s: Vec<String> = items.iter().take(5).map(ToString::to_string).collect();
    if items.len() > 5 {
        s.push(format!("… {} more", items.len() - 5));
    }
    s.join(", ")
}

/// The checks after `up`.
fn check_up(
    sim: &SimHandle,
    lab: &str,
    vms: u32,
    before: &BTreeMap<u32, GuestView>,
    foreign: &BTreeSet<u32>,
    after: &BTreeMap<u32, GuestView>,
    broke: &mut Vec<String>,
) {
    let tag = format!("labctl.{lab}");
    let new: BTreeMap<u32, &GuestView> = after
        .iter()
        .filter(|(id, _)| !before.contains_key(id) && !foreign.contains(id))
        .map(|(id, g)| (*id, g))
        .collect();
    let unmarked: Vec<String> = new
        .iter()
        .filter(|(_, g)| !(g.pool.as_deref() == Some(lab) && has_tag(g, &tag)))
        .map(|(id, g)| format!("{id} {:?} ({})", g.name, marks(g, lab, &tag)))
        .collect();
    if !unmarked.is_empty() {
        broke.push(format!(
            "after up: {} new guests without the lab's pool and tag: {}",
            unmarked.len(),
            some(&unmarked)
        ));
    }
    let mut by_name: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (id, g) in &new {
        by_name.entry(g.name.as_str()).or_default().push(*id);
    }
    let expected: Vec<String> = (1..=vms).map(|n| student_name(lab, n)).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|n| !by_name.contains_key(n.as_str()))
        .collect();
    if !missing.is_empty() {
        broke.push(format!(
            "after up: {} students have no guest: {}",
            missing.len(),
            some(&missing)
        ));
    }
    let duplicates: Vec<String> = by_name
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(name, ids)| format!("{name} ×{} {ids:?}", ids.len()))
        .collect();
    if !duplicates.is_empty() {
        broke.push(format!(
            "after up: {} students have several guests: {}",
            duplicates.len(),
            some(&duplicates)
        ));
    }
    let strangers: Vec<String> = by_name
        .keys()
        .filter(|n| !expected.iter().any(|e| e == *n))
        .map(|n| format!("{n:?}"))
        .collect();
    if !strangers.is_empty() {
        broke.push(format!(
            "after up: new guests with names of no student: {}",
            some(&strangers)
        ));
    }
    if new.len() != vms as usize {
        broke.push(format!(
            "after up: {} new guests, expected exactly {vms}",
            new.len()
        ));
    }
    // Readiness and fence of every guest that carries a student's name.
    let students: Vec<(u32, &GuestView)> = new
        .iter()
        .filter(|(_, g)| expected.contains(&g.name))
        .map(|(id, g)| (*id, *g))
        .collect();
    let not_ready: Vec<String> = students
        .iter()
        .filter(|(_, g)| g.status != "running" || g.ipv4.is_none())
        .map(|(_, g)| format!("{} ({}, ip {:?})", g.name, g.status, g.ipv4))
        .collect();
    if !not_ready.is_empty() {
        broke.push(format!(
            "after up: {} students not running with an address: {}",
            not_ready.len(),
            some(&not_ready)
        ));
    }
    let reach = |from: u32, to: &str| {
        sim.reachability(from, to, "tcp", Some(22))
            .map(|v| v.allowed)
            .unwrap_or(false)
    };
    let mut fence = Vec::new();
    for (i, (id, g)) in students.iter().enumerate() {
        if g.status != "running" {
            continue;
        }
        if !reach(*id, TEACHER) {
            fence.push(format!("{} cannot reach the teacher", g.name));
        }
        if let Some((other, og)) = students
            .get((i + 1) % students.len())
            .filter(|_| students.len() > 1)
        {
            if reach(*id, &other.to_string()) {
                fence.push(format!("{} reaches {}", g.name, og.name));
            }
        }
        if reach(*id, &PROD_VM.to_string()) {
            fence.push(format!("{} reaches vm {PROD_VM}", g.name));
        }
    }
    if !fence.is_empty() {
        broke.push(format!(
            "after up: fence broken ({}): {}",
            fence.len(),
            some(&fence)
        ));
    }
    let taken: Vec<String> = foreign
        .iter()
        .filter_map(|id| Some((id, after.get(id)?)))
        .filter(|(_, g)| g.pool.as_deref() == Some(lab) || has_tag(g, &tag))
        .map(|(id, g)| format!("{id} {:?} ({})", g.name, marks(g, lab, &tag)))
        .collect();
    if !taken.is_empty() {
        broke.push(format!(
            "after up: foreign guests carry the lab's marks: {}",
            some(&taken)
        ));
    }
    let changed: Vec<String> = before
        .iter()
        .filter(|(id, g)| after.get(id) != Some(*g))
        .map(|(id, g)| format!("{id} {:?} {}", g.name, what_changed(Some(g), after.get(id))))
        .collect();
    if !changed.is_empty() {
        broke.push(format!(
            "after up: guests that existed before changed or vanished: {}",
            some(&changed)
        ));
    }
}

/// The checks after `down`.
fn check_down(
    lab: &str,
    before: &Value,
    after_up: &BTreeMap<u32, GuestView>,
    foreign: &BTreeSet<u32>,
    after: &Value,
    broke: &mut Vec<String>,
) {
    let tag = format!("labctl.{lab}");
    let before_guests = guests(before);
    let now = guests(after);
    let left: Vec<String> = now
        .iter()
        .filter(|(id, _)| !before_guests.contains_key(id) && !foreign.contains(id))
        .map(|(id, g)| format!("{id} {:?} ({})", g.name, marks(g, lab, &tag)))
        .collect();
    if !left.is_empty() {
        broke.push(format!(
            "after down: {} guests left: {}",
            left.len(),
            some(&left)
        ));
    }
    let changed: Vec<String> = before_guests
        .iter()
        .filter(|(id, g)| now.get(id) != Some(*g))
        .map(|(id, g)| format!("{id} {:?} {}", g.name, what_changed(Some(g), now.get(id))))
        .collect();
    if !changed.is_empty() {
        broke.push(format!(
            "after down: guests (templates, production) changed or vanished: {}",
            some(&changed)
        ));
    }
    let foreign_changed: Vec<String> = foreign
        .iter()
        .filter(|id| now.get(id) != after_up.get(id))
        .map(|id| format!("{id} {}", what_changed(after_up.get(id), now.get(id))))
        .collect();
    if !foreign_changed.is_empty() {
        broke.push(format!(
            "after down: foreign guests changed or vanished: {}",
            some(&foreign_changed)
        ));
    }
    if after["pools"] != before["pools"] {
        let what = if after["pools"].get(lab).is_some() {
            format!("pool {lab} still exists")
        } else {
            format!(
                "differ at {}",
                first_difference(&before["pools"], &after["pools"])
            )
        };
        broke.push(format!("after down: pools {what}"));
    }
    let fw_before = firewall_without(before, &BTreeSet::new());
    let fw_after = firewall_without(after, foreign);
    if fw_before != fw_after {
        broke.push(format!(
            "after down: firewall differs from before at {}",
            first_difference(&fw_before, &fw_after)
        ));
    }
}

/// The JSON path of the first difference of two values (`/guests/5003`, `/cluster/rules`).
fn first_difference(a: &Value, b: &Value) -> String {
    fn walk(a: &Value, b: &Value, path: &mut String) -> bool {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    match (x.get(k), y.get(k)) {
                        (Some(va), Some(vb)) => {
                            let len = path.len();
                            path.push('/');
                            path.push_str(k);
                            if walk(va, vb, path) {
                                return true;
                            }
                            path.truncate(len);
                        }
                        (None, Some(_)) => {
                            path.push_str(&format!("/{k} (added)"));
                            return true;
                        }
                        (Some(_), None) => {
                            path.push_str(&format!("/{k} (removed)"));
                            return true;
                        }
                        (None, None) => {}
                    }
                }
                false
            }
            _ if a == b => false,
            _ => true,
        }
    }
    let mut path = String::new();
    if walk(a, b, &mut path) && path.is_empty() {
        "/".to_owned()
    } else if path.is_empty() {
        "(no difference)".to_owned()
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_follow_the_seed() {
        assert_eq!(RunPlan::draw(7, 50), RunPlan::draw(7, 50));
        let plans: Vec<RunPlan> = (0..60).map(|s| RunPlan::draw(s, 50)).collect();
        assert!(plans.windows(2).any(|w| w[0] != w[1]));
        let kills = plans
            .iter()
            .filter(|p| p.kill_after_requests.is_some())
            .count();
        assert!(
            (8..=35).contains(&kills),
            "about a third of 60 runs kill: {kills}"
        );
        for p in &plans {
            assert!((1..=3).contains(&p.ticket_lifetime_s));
            assert!((1..=3).contains(&p.racers.len()));
            assert!(p
                .racers
                .iter()
                .all(|(after, id)| *after >= 1 && (FIRST_ID..FIRST_ID + 50).contains(id)));
            assert!(p.kill_after_requests.is_none_or(|k| (2..=400).contains(&k)));
        }
    }

    fn view(name: &str, pool: Option<&str>, tags: Option<&str>) -> GuestView {
        GuestView {
            name: name.into(),
            node: "pve1".into(),
            template: false,
            status: "running".into(),
            pool: pool.map(str::to_owned),
            ipv4: Some("10.10.1.2".into()),
            config: tags.map_or(json!({}), |t| json!({ "tags": t })),
        }
    }

    #[test]
    fn down_check_names_leftovers_pools_and_firewall() {
        let before = json!({
            "guests": [{"vmid": 9000, "name": "tpl", "node": "pve1", "template": true,
                        "status": "stopped", "pool": null, "ipv4": null, "config": {}}],
            "pools": {},
            "firewall": {"cluster": {"options": {"enable": 1}}, "guests": {}},
        });
        let after = json!({
            "guests": [
                {"vmid": 9000, "name": "tpl", "node": "pve1", "template": true,
                 "status": "stopped", "pool": null, "ipv4": null, "config": {}},
                {"vmid": 5003, "name": "s-03", "node": "pve1", "template": false,
                 "status": "stopped", "pool": "s", "ipv4": null, "config": {}},
                {"vmid": 5007, "name": "soakfg-0", "node": "pve1", "template": false,
                 "status": "stopped", "pool": null, "ipv4": null, "config": {}},
            ],
            "pools": {"s": {"vms": [5003]}},
            "firewall": {"cluster": {"options": {"enable": 0}},
                         "guests": {"5007": {}}},
        });
        let foreign: BTreeSet<u32> = [5007].into();
        let after_up = guests(&after);
        let mut broke = Vec::new();
        check_down("s", &before, &after_up, &foreign, &after, &mut broke);
        let text = broke.join(" | ");
        assert!(
            text.contains("1 guests left: 5003 \"s-03\" (pool only, no tag)"),
            "{text}"
        );
        assert!(text.contains("pool s still exists"), "{text}");
        assert!(
            text.contains("firewall differs from before at /cluster/options/enable"),
            "{text}"
        );
        assert!(!text.contains("foreign"), "{text}");
        assert!(!text.contains("templates"), "{text}");

        // The same state with the lab gone and the firewall restored passes.
        let mut clean = after.clone();
        clean["guests"].as_array_mut().unwrap().remove(1);
        clean["pools"] = json!({});
        clean["firewall"]["cluster"]["options"]["enable"] = json!(1);
        let mut broke = Vec::new();
        check_down("s", &before, &guests(&clean), &foreign, &clean, &mut broke);
        assert!(broke.is_empty(), "{broke:?}");
    }

    #[tokio::test]
    async fn up_check_names_missing_duplicate_and_unfenced_students() {
        let sim = Simulator::builder()
            .plain_http(true)
            .password(PASSWORD)
            .start()
            .await
            .unwrap();
        let before = guests(&sim.state());
        let mut after = before.clone();
        // Two guests for student 1 (not in the simulator, so the oracle sends nothing:
        // the teacher is unreachable), none for student 2, one without the tag.
        after.insert(5000, view("s-01", Some("s"), Some("labctl.s")));
        after.insert(5001, view("s-01", Some("s"), None));
        let mut broke = Vec::new();
        check_up(&sim, "s", 2, &before, &BTreeSet::new(), &after, &mut broke);
        let text = broke.join(" | ");
        assert!(
            text.contains(
                "1 new guests without the lab's pool and tag: 5001 \"s-01\" (pool only, no tag)"
            ),
            "{text}"
        );
        assert!(text.contains("1 students have no guest: s-02"), "{text}");
        assert!(text.contains("s-01 ×2 [5000, 5001]"), "{text}");
        assert!(text.contains("s-01 cannot reach the teacher"), "{text}");
        assert!(!text.contains("existed before"), "{text}");
        // A foreign guest is not the lab's, and a changed template is noticed.
        let mut after = before.clone();
        after.insert(5002, view("soakfg-0", None, None));
        if let Some(t) = after.get_mut(&9000) {
            t.config = json!({"changed": 1});
        }
        let mut broke = Vec::new();
        check_up(&sim, "s", 1, &before, &[5002].into(), &after, &mut broke);
        let text = broke.join(" | ");
        assert!(text.contains("1 students have no guest: s-01"), "{text}");
        assert!(
            text.contains("existed before changed or vanished: 9000"),
            "{text}"
        );
        assert!(!text.contains("5002"), "{text}");
        // A foreign guest the lab tagged is reported.
        after.insert(5002, view("soakfg-0", None, Some("labctl.s")));
        let mut broke = Vec::new();
        check_up(&sim, "s", 1, &before, &[5002].into(), &after, &mut broke);
        let text = broke.join(" | ");
        assert!(
            text.contains(
                "foreign guests carry the lab's marks: 5002 \"soakfg-0\" (tag only, no pool)"
            ),
            "{text}"
        );
        sim.shutdown().await;
    }

    #[test]
    fn tags_and_differences() {
        assert!(has_tag(&view("a", None, Some("x;labctl.s")), "labctl.s"));
        assert!(!has_tag(&view("a", None, Some("labctl.s2")), "labctl.s"));
        assert!(!has_tag(&view("a", None, None), "labctl.s"));
        let a = json!({"x": {"y": 1, "z": [1]}});
        assert_eq!(
            first_difference(&a, &json!({"x": {"y": 2, "z": [1]}})),
            "/x/y"
        );
        assert_eq!(
            first_difference(&a, &json!({"x": {"y": 1}})),
            "/x/z (removed)"
        );
        assert_eq!(first_difference(&a, &a), "(no difference)");
        assert_eq!(some(&[1, 2, 3, 4, 5, 6, 7]), "1, 2, 3, 4, 5, … 2 more");
    }
}
