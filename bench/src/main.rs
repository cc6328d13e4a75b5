//! `labctl-bench`: the project's benchmarks. They **measure** speed and memory and never
//! assert on them; run them with `cargo xtask bench` (release build, full counts) or
//! `cargo xtask bench --quick` (small counts, for a smoke run).
//!
//! Groups, in the order they run:
//!
//! - `schema`: `pve-schema` route matching and parameter validation of typical requests
//!   (clone, config `PUT` with `net0`, task status by UPID), operations per second.
//! - `firewall`: `pve-sim`'s reachability oracle on an isolated lab of 60 students and a
//!   teacher (the B.10 design), µs per query over all ordered pairs.
//! - `http`: the simulator over plain HTTP on 127.0.0.1 through `pve-auth`'s `PveClient`,
//!   requests per second and p50/p95/p99 latency of `GET /version` and
//!   `GET /cluster/resources` at concurrency 1 and 16.
//! - `lab`: a `pve-vm` bring-up (clone, start, wait for the agent) of 20 guests against the
//!   simulator: wall time and HTTP requests per guest.
//! - `exam`: scenario exam-N, `lab up` + `lab down` of N = 10, 50, 200, 500 students
//!   (quick: 10, 50) through `lab-core`/`lab-proxmox` at time scale 0.1, compared with the
//!   simulator's lower bound ([`bound`]), plus a zero-latency run for client overhead;
//!   writes `report.md` and `report.json` (`--report-dir`) and ends stdout with
//!   `exam-50 ratio=<x> requests_per_vm=<y>`.
//! - `collect`: `lab collect` of 50 students (quick: 10) × 10 inside probes (7 `exec` of
//!   2 simulated seconds, two of them identical; 3 `file`) through `lab_grade::collect` and
//!   `lab_proxmox::probes::PveRunner` at time scale 0.1, with labctl's 32 probes in flight
//!   and with all at once: makespan against the simulator's bound ([`collect_bound`]:
//!   exec run times, the collector's places, pvedaemon workers per node), requests per
//!   probe, runs against probes; ends stdout with
//!   `collect-50 ratio=<x> requests_per_probe=<y> runs=<r> probes=<p>`.
//! - `grading`: `lab grade` of 500 students (quick: 50) × 50 checks from evidence written
//!   with `lab_grade::Store`: load + grade + json/csv/table, students per second, peak RSS.
//! - `freeze`: `labctl lab freeze` (the release binary beside this one) of 10 and of 50
//!   students with logins: the access-cut spread from the freeze's manifest and the whole
//!   freeze's makespan, against one request's latency ([`freeze`]).
//!
//! `labctl-bench soak` is the fault soak behind `cargo xtask soak` (see [`soak`]).
//!
//! After each group the process's resident set is read from `/proc/self/status` (the
//! group's peak via `VmHWM`, reset before each group). Results are printed as a table and
//! written as JSON (`--json`).
//!
//! ```text
//! cargo run --release -p labctl-bench -- --quick --json target/bench/results.json
//! ```

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod bound;
mod collect;
mod collect_bound;
mod cpu;
mod exam;
mod exam_report;
mod firewall;
mod freeze;
mod grading;
mod http;
mod lab;
mod measure;
mod report;
mod schema;
mod soak;
mod timeline;

use measure::MemoryTracker;
use report::{Group, Machine, Report};

/// Command line of `labctl-bench`.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Measure labctl's speed and memory (never asserts on them)."
)]
struct Args {
    /// Small counts: a smoke run that finishes in seconds.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file (directories are created).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Run only these groups (repeatable; default: all).
    #[arg(long, value_enum, value_name = "GROUP")]
    only: Vec<GroupName>,
    /// In the exam group, run only these scenarios (labels such as exam-50-replicas3;
    /// repeatable; default: all).
    #[arg(long, value_name = "LABEL")]
    exam_only: Vec<String>,
    /// Where the exam group writes report.md and report.json (default: the directory of
    /// --json, else target/bench).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// An exam run is stopped after this many times its lower bound (1-1000)…
    #[arg(long, default_value_t = exam::Budget::default().factor, value_name = "X",
          value_parser = parse_factor)]
    budget_factor: f64,
    /// …but after at most this many seconds (1-3600).
    #[arg(long, default_value_t = exam::Budget::default().max_s, value_name = "SECONDS",
          value_parser = parse_budget_secs)]
    budget_max: f64,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands besides the benchmark groups.
#[derive(Debug, Subcommand)]
enum Command {
    /// Repeated `labctl lab up` + `lab down` under faults, expiring tickets, a racing
    /// client and SIGKILLs; checks the simulator's state after every run.
    Soak(soak::SoakArgs),
}

fn parse_factor(s: &str) -> Result<f64, String> {
    parse_in(s, 1.0, 1000.0)
}

fn parse_budget_secs(s: &str) -> Result<f64, String> {
    parse_in(s, 1.0, 3600.0)
}

fn parse_in(s: &str, lo: f64, hi: f64) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| (lo..=hi).contains(v))
        .ok_or_else(|| format!("invalid value {s:?}: a number from {lo} to {hi}"))
}

/// The benchmark groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GroupName {
    Schema,
    Firewall,
    Http,
    Lab,
    Exam,
    Collect,
    Grading,
    Freeze,
}

/// What every group needs to know about the run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Small counts.
    pub quick: bool,
    /// Exam scenarios to run (labels, e.g. `exam-50-replicas3`); empty: all.
    pub exam_only: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Command::Soak(soak_args)) = &args.command {
        if !soak::main(soak_args)? {
            // The summary line was printed last; the status tells scripts and CI.
            std::process::exit(1);
        }
        return Ok(());
    }
    let settings = Settings {
        quick: args.quick,
        exam_only: args.exam_only.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if cfg!(debug_assertions) {
        eprintln!(
            "labctl-bench: this is a debug build; figures are not representative (use --release)"
        );
    }

    let selected = |g: GroupName| args.only.is_empty() || args.only.contains(&g);
    let mut memory = MemoryTracker::new();
    let mut groups = Vec::new();
    let mut exam_results = None;
    let mut collect_line = None;
    for name in [
        GroupName::Schema,
        GroupName::Firewall,
        GroupName::Http,
        GroupName::Lab,
        GroupName::Exam,
        GroupName::Collect,
        GroupName::Grading,
        GroupName::Freeze,
    ] {
        if !selected(name) {
            continue;
        }
        eprintln!("labctl-bench: running {name:?}");
        memory.begin_group();
        let mut group: Group = match name {
            GroupName::Schema => schema::run(&settings)?,
            GroupName::Firewall => firewall::run(&settings)?,
            GroupName::Http => runtime.block_on(http::run(&settings))?,
            GroupName::Lab => runtime.block_on(lab::run(&settings))?,
            GroupName::Exam => {
                let budget = exam::Budget {
                    factor: args.budget_factor,
                    max_s: args.budget_max,
                    ..exam::Budget::default()
                };
                let (group, results) = exam::run(&settings, &runtime, &budget)?;
                exam_results = Some((budget, results));
                group
            }
            GroupName::Collect => {
                let (group, results) = collect::run(&settings, &runtime)?;
                collect_line = collect::last_line(&results);
                group
            }
            GroupName::Grading => grading::run(&settings)?.0,
            GroupName::Freeze => freeze::run(&settings, &runtime)?,
        };
        group.memory = memory.end_group();
        groups.push(group);
    }

    let report = Report {
        tool: format!("labctl-bench {}", env!("CARGO_PKG_VERSION")),
        mode: if settings.quick { "quick" } else { "full" },
        started_unix,
        machine: Machine::current(),
        groups,
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nresults written to {}", path.display());
    }
    if let Some((budget, results)) = &exam_results {
        let exam = exam_report::ExamReport {
            tool: report.tool.clone(),
            mode: report.mode,
            started_unix,
            machine: &report.machine,
            time_scale: exam::TIME_SCALE,
            zero_scale: exam::ZERO_SCALE,
            formula: exam_report::FORMULA,
            budget: *budget,
            scenarios: results,
        };
        let dir = args
            .report_dir
            .clone()
            .or_else(|| {
                args.json
                    .as_ref()
                    .and_then(|j| j.parent())
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("target/bench"));
        exam.write(&dir)?;
        println!(
            "exam report written to {} and {}",
            dir.join("report.md").display(),
            dir.join("report.json").display()
        );
        if let Some(line) = exam.last_line() {
            println!("{line}");
        }
    }
    if let Some(line) = collect_line {
        println!("{line}");
    }
    Ok(())
}
