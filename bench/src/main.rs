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
use clap::{Parser, ValueEnum};

mod firewall;
mod http;
mod lab;
mod measure;
mod report;
mod schema;

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
}

/// The benchmark groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GroupName {
    Schema,
    Firewall,
    Http,
    Lab,
}

/// What every group needs to know about the run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Small counts.
    pub quick: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let settings = Settings { quick: args.quick };
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
    for name in [
        GroupName::Schema,
        GroupName::Firewall,
        GroupName::Http,
        GroupName::Lab,
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
    Ok(())
}
