//! Group `freeze`: `labctl lab freeze` of a class of 10 and of 50 students with logins
//! (`lab up` + `lab access grant` first), through the `labctl` binary against `pve-sim`
//! at time scale [`TIME_SCALE`].
//!
//! Two figures per class size (issue 19): the **access-cut spread** — the time between
//! the first and the last student losing their rights, as the freeze measures and records
//! it in its manifest (one write of the exam role cuts the whole class, so it should not
//! grow with the class) — and the **makespan** of the whole freeze (cut, snapshot, links
//! down) as the wall time of the command. For scale, the latency of one request of the
//! same kind (`PUT /access/roles/{role}`, sequential, median) is measured on the same
//! simulator: the spread for 50 should not exceed the spread for 10 by more than it.
//!
//! The binary is the release `labctl` beside this benchmark's own executable (`cargo
//! xtask bench` builds both).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pve_auth::{Params, PveClient, Secret};
use pve_sim::{SimHandle, Simulator};
use serde::Serialize;
use serde_json::{json, Value};

use crate::report::{Group, Metric};
use crate::Settings;

/// The simulator's time scale (snapshot and config tasks take their time × this).
pub const TIME_SCALE: f64 = 0.01;
const PASSWORD: &str = "bench-freeze";
/// Any single labctl command of the group ends within this (a hang is reported, not waited).
const COMMAND_BUDGET: Duration = Duration::from_secs(600);
/// Sequential requests timed for one request's latency.
const LATENCY_SAMPLES: usize = 41;
/// The role whose writes are timed.
const LATENCY_ROLE: &str = "LabctlBenchLatency";

/// One class frozen.
#[derive(Debug, Serialize)]
pub struct FreezeResult {
    /// Students in the class.
    pub students: u32,
    /// Access-cut spread from the freeze's manifest, microseconds.
    pub spread_us: u64,
    /// Writes that cut the access (1: the exam role for the whole class).
    pub cut_writes: u64,
    /// How the access was cut (`role`, `users`).
    pub cut_how: String,
    /// Wall time of `lab freeze`, seconds.
    pub makespan_s: f64,
    /// HTTP requests the freeze sent.
    pub requests: u64,
    /// Students the manifest reports frozen.
    pub frozen: usize,
}

/// The class sizes measured (both in quick mode too: the comparison is the point).
pub fn sizes() -> [u32; 2] {
    [10, 50]
}

/// Run the group.
pub fn run(_settings: &Settings, rt: &tokio::runtime::Runtime) -> Result<Group> {
    let labctl = labctl_binary()?;
    let sim = rt
        .block_on(
            Simulator::builder()
                .plain_http(true)
                .password(PASSWORD)
                .time_scale(TIME_SCALE)
                .start(),
        )
        .context("starting the simulator")?;
    let result = (|| {
        let latency = rt.block_on(request_latency(&sim))?;
        let mut results = Vec::new();
        for (i, n) in sizes().into_iter().enumerate() {
            eprintln!("labctl-bench: freeze: class of {n} (set-up: lab up + access grant)");
            let r = rt.block_on(one_class(&labctl, &sim, n, i))?;
            eprintln!(
                "labctl-bench: freeze: {n} students: spread {:.2} ms ({} by {} write(s)), \
                 makespan {:.2} s, {} requests, {} frozen",
                r.spread_us as f64 / 1000.0,
                r.cut_how,
                r.cut_writes,
                r.makespan_s,
                r.requests,
                r.frozen
            );
            results.push(r);
        }
        Ok::<_, anyhow::Error>((latency, results))
    })();
    rt.block_on(sim.shutdown());
    let (latency, results) = result?;
    Ok(group_of(latency, &results))
}

fn group_of(latency: Duration, results: &[FreezeResult]) -> Group {
    let mut g = Group::new(
        "freeze",
        format!(
            "labctl lab freeze of a class with logins through the binary against pve-sim at \
             time scale {TIME_SCALE}: the access-cut spread (first to last student losing \
             rights) and the whole freeze's makespan, against one request's latency"
        ),
    );
    let latency_ms = latency.as_secs_f64() * 1000.0;
    g.metrics.push(Metric {
        name: "one request (median)".into(),
        value: latency_ms,
        unit: "ms",
    });
    for r in results {
        let n = r.students;
        g.metrics.push(Metric {
            name: format!("freeze-{n} access-cut spread"),
            value: r.spread_us as f64 / 1000.0,
            unit: "ms",
        });
        g.metrics.push(Metric {
            name: format!("freeze-{n} cut writes"),
            value: r.cut_writes as f64,
            unit: "writes",
        });
        g.metrics.push(Metric {
            name: format!("freeze-{n} makespan"),
            value: r.makespan_s,
            unit: "s",
        });
        g.metrics.push(Metric {
            name: format!("freeze-{n} requests per student"),
            value: r.requests as f64 / f64::from(n.max(1)),
            unit: "req",
        });
    }
    let growth = match (results.first(), results.last()) {
        (Some(a), Some(b)) if results.len() > 1 => {
            Some((b.spread_us as f64 - a.spread_us as f64) / 1000.0)
        }
        _ => None,
    };
    if let Some(growth) = growth {
        g.metrics.push(Metric {
            name: "spread growth 10 → 50 in request latencies".into(),
            value: growth / latency_ms.max(f64::EPSILON),
            unit: "×",
        });
    }
    g.details = json!({
        "time_scale": TIME_SCALE,
        "request_latency_ms": latency_ms,
        "classes": results,
    });
    g
}

/// The release `labctl` next to this executable.
fn labctl_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding the benchmark's own executable")?;
    let dir = me
        .parent()
        .context("the benchmark's executable has no directory")?;
    let bin = dir.join(format!("labctl{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "the freeze group runs the labctl binary, and there is none at {} (build it with \
             `cargo build --release -p labctl`, or run `cargo xtask bench`, which does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Median latency of one write of the kind that cuts the class (`PUT /access/roles/{role}`
/// with its privileges), sequential, on a role of the benchmark's own.
async fn request_latency(sim: &SimHandle) -> Result<Duration> {
    let client = PveClient::builder(&sim.base_url())
        .password("root@pam", Secret::new(PASSWORD))
        .build()
        .context("building the PVE client")?;
    let privs = Params::new().with("privs", "VM.Audit");
    client
        .post::<Value>("/access/roles", &privs.clone().with("roleid", LATENCY_ROLE))
        .await
        .context("POST /access/roles (the benchmark's own role)")?;
    let path = format!("/access/roles/{LATENCY_ROLE}");
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        client
            .put::<Value>(&path, &privs)
            .await
            .with_context(|| format!("PUT {path}"))?;
        samples.push(t.elapsed());
    }
    client
        .delete::<Value>(&path, &Params::new())
        .await
        .with_context(|| format!("DELETE {path}"))?;
    samples.sort();
    Ok(samples[samples.len() / 2])
}

/// `lab up`, `lab access grant`, then the measured `lab freeze`, then `lab down`.
async fn one_class(labctl: &Path, sim: &SimHandle, n: u32, index: usize) -> Result<FreezeResult> {
    let home = tempfile::tempdir().context("a temporary directory")?;
    let name = format!("frz{n}");
    let first = 6000 + index * 1000;
    let lab = home.path().join(format!("{name}.toml"));
    std::fs::write(
        &lab,
        format!(
            "name = \"{name}\"\ntemplate = 9000\ncount = {n}\nids = \"{first}-{}\"\n\
             teachers = [\"10.10.0.1\"]\n",
            first + 999
        ),
    )
    .with_context(|| format!("writing {}", lab.display()))?;
    let lab_s = lab.to_string_lossy().into_owned();
    labctl_ok(labctl, home.path(), sim, &["lab", "up", &lab_s]).await?;
    labctl_ok(
        labctl,
        home.path(),
        sim,
        &["lab", "access", "grant", &lab_s],
    )
    .await?;
    let before = total_requests(sim);
    let t = Instant::now();
    let out = labctl_ok(
        labctl,
        home.path(),
        sim,
        &["lab", "freeze", &lab_s, "--yes", "-o", "json"],
    )
    .await?;
    let makespan = t.elapsed();
    let requests = total_requests(sim).saturating_sub(before);
    let report: Value = serde_json::from_str(&out)
        .with_context(|| format!("lab freeze -o json printed no JSON: {out}"))?;
    let result = result_of(&report, n, makespan, requests)?;
    labctl_ok(
        labctl,
        home.path(),
        sim,
        &["lab", "unfreeze", &lab_s, "--yes"],
    )
    .await?;
    labctl_ok(labctl, home.path(), sim, &["lab", "down", &lab_s, "--yes"]).await?;
    Ok(result)
}

/// The figures of one freeze from its JSON report.
fn result_of(report: &Value, n: u32, makespan: Duration, requests: u64) -> Result<FreezeResult> {
    let round = report["rounds"]
        .as_array()
        .and_then(|r| r.last())
        .context("the freeze report has no round")?;
    let access = &round["access"];
    let spread_us = access["spread_us"]
        .as_u64()
        .with_context(|| format!("the freeze's round has no access spread: {round}"))?;
    let frozen = report["students"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["frozen"].is_string()).count());
    Ok(FreezeResult {
        students: n,
        spread_us,
        cut_writes: access["writes"].as_u64().unwrap_or(0),
        cut_how: access["how"].as_str().unwrap_or("?").to_owned(),
        makespan_s: makespan.as_secs_f64(),
        requests,
        frozen,
    })
}

/// Every request the simulator has counted.
fn total_requests(sim: &SimHandle) -> u64 {
    sim.requests()
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// Runs `labctl ARGS` against the simulator as root and answers its stdout; a failure
/// or a hang is an error naming the command.
async fn labctl_ok(labctl: &Path, home: &Path, sim: &SimHandle, args: &[&str]) -> Result<String> {
    let mut c = tokio::process::Command::new(labctl);
    // The same scrubbed environment as the soak's runs of the binary.
    for var in crate::soak::SCRUBBED_ENV {
        c.env_remove(var);
    }
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", PASSWORD)
        .env("LABCTL_TIME_SCALE", TIME_SCALE.to_string())
        .current_dir(home)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .args(args);
    let out = tokio::time::timeout(COMMAND_BUDGET, c.output())
        .await
        .with_context(|| {
            format!(
                "labctl {} did not end within {COMMAND_BUDGET:?}",
                args.join(" ")
            )
        })?
        .with_context(|| format!("running labctl {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "labctl {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_last_round_of_the_report() {
        let report = json!({
            "rounds": [
                {"name": "deadline-a", "access": {"how": "users", "spread_ms": 40, "spread_us": 40_123, "writes": 9}},
                {"name": "deadline-b", "access": {"how": "role", "spread_ms": 3, "spread_us": 3_456, "writes": 1}},
            ],
            "students": [
                {"hostname": "a", "frozen": "2026-12-05T06:00:00Z"},
                {"hostname": "b", "frozen": null},
            ],
        });
        let r = result_of(&report, 2, Duration::from_millis(1500), 30).unwrap();
        assert_eq!(
            (r.spread_us, r.cut_writes, r.cut_how.as_str()),
            (3_456, 1, "role")
        );
        assert_eq!((r.frozen, r.requests), (1, 30));
        assert!((r.makespan_s - 1.5).abs() < 1e-9);
    }

    #[test]
    fn a_report_without_a_spread_is_an_error_not_a_zero() {
        let report = json!({"rounds": [{"name": "x", "access": null}], "students": []});
        let e = result_of(&report, 2, Duration::ZERO, 0).unwrap_err();
        assert!(e.to_string().contains("no access spread"), "{e}");
    }
}
