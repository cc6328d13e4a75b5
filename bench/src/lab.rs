//! Group `lab`: a lab bring-up through `pve-vm` against the simulator — clone N guests
//! from template 9000 (linked), start each, wait for its guest agent — counting the HTTP
//! requests it costs. Simulated durations and `pve-vm`'s polling are scaled by the same
//! factor, so the request counts are those a real cluster would see.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pve_auth::{PveClient, Secret};
use pve_sim::Simulator;
use pve_vm::{CloneMode, CloneOptions, Timing, VmApi, VmId};
use serde_json::{json, Value};

use crate::http::served;
use crate::measure::Latency;
use crate::report::Group;
use crate::Settings;

/// Factor applied to simulated durations (a 20 s agent boot takes 0.2 s) and to polling.
const TIME_SCALE: f64 = 0.01;
/// The QEMU template of the simulator's initial inventory.
const TEMPLATE: u32 = 9000;
/// Longest real time to wait for one guest's agent; only guards against a hang.
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "bench-secret";

/// Time spent by one guest in each phase.
struct Phases {
    clone: Duration,
    start: Duration,
    agent: Duration,
}

impl Phases {
    fn total(&self) -> Duration {
        self.clone + self.start + self.agent
    }
}

/// Run the group.
pub async fn run(settings: &Settings) -> Result<Group> {
    let guests: u32 = if settings.quick { 5 } else { 20 };
    let mut group = Group::new(
        "lab",
        format!(
            "pve-vm bring-up against pve-sim (time scale {TIME_SCALE}): clone {guests} linked \
             guests from {TEMPLATE} in parallel, start, wait for the agent"
        ),
    );

    let sim = Simulator::builder()
        .plain_http(true)
        .password(PASSWORD)
        .time_scale(TIME_SCALE)
        .start()
        .await
        .context("starting the simulator")?;
    let client = PveClient::builder(&sim.base_url())
        .password("root@pam", Secret::new(PASSWORD))
        .build()
        .context("building the PVE client")?;
    let api = VmApi::with_timing(client, Timing::default().scaled(TIME_SCALE));
    let template_id = VmId::new(TEMPLATE).context("template id")?;

    // Count everything from the login on.
    sim.reset_requests();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 1..=guests {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let template = api.guest(template_id).await?;
            let guest = template
                .clone_to(CloneOptions {
                    hostname: Some(format!("stud-{i:02}")),
                    mode: CloneMode::Linked,
                    ..CloneOptions::default()
                })
                .await?;
            let clone = t.elapsed();
            let t = Instant::now();
            guest.start().await?;
            let start = t.elapsed();
            let t = Instant::now();
            guest.wait_agent(AGENT_TIMEOUT).await?;
            Ok::<_, pve_vm::Error>(Phases {
                clone,
                start,
                agent: t.elapsed(),
            })
        }));
    }
    let mut phases = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let p = task
            .await
            .context("a bring-up task panicked")?
            .with_context(|| format!("bringing up stud-{:02}", i + 1))?;
        phases.push(p);
    }
    let wall = start.elapsed();
    let requests = served(&sim);
    let breakdown = sim.requests();

    let state = sim.state();
    let running = state["guests"].as_array().map_or(0, |g| {
        g.iter()
            .filter(|g| {
                g["status"] == "running"
                    && g["name"].as_str().is_some_and(|n| n.starts_with("stud-"))
            })
            .count()
    });
    if running != guests as usize {
        bail!("{running} of {guests} student guests are running after the bring-up");
    }
    let state_bytes = serde_json::to_vec(&state)?.len();

    let totals: Vec<Duration> = phases.iter().map(Phases::total).collect();
    let latency = Latency::of(&totals).context("no guest was brought up")?;
    let mean_ms = |f: fn(&Phases) -> Duration| {
        phases.iter().map(|p| f(p).as_secs_f64()).sum::<f64>() * 1e3 / phases.len() as f64
    };
    group.metric("guests", f64::from(guests), "count");
    group.metric("wall time", wall.as_secs_f64() * 1e3, "ms");
    group.metric("per guest ready p50", latency.p50_us / 1e3, "ms");
    group.metric("per guest ready max", latency.max_us / 1e3, "ms");
    group.metric("mean clone phase", mean_ms(|p| p.clone), "ms");
    group.metric("mean start phase", mean_ms(|p| p.start), "ms");
    group.metric("mean agent wait", mean_ms(|p| p.agent), "ms");
    group.metric("HTTP requests", requests as f64, "count");
    group.metric(
        "HTTP requests per guest",
        requests as f64 / f64::from(guests),
        "req/guest",
    );
    for (key, count) in top(&breakdown, 4) {
        group.metric(format!("  {key}"), count as f64, "count");
    }
    group.metric("simulator state (JSON)", state_bytes as f64, "bytes");
    group.details = json!({
        "guests": guests,
        "time_scale": TIME_SCALE,
        "concurrency": guests,
        "wall_ms": wall.as_secs_f64() * 1e3,
        "per_guest_ready": latency,
        "http_requests": requests,
        "requests_by_endpoint": breakdown,
        "simulator_state_json_bytes": state_bytes,
        "simulator_tasks": state["tasks"],
    });
    sim.shutdown().await;
    Ok(group)
}

/// The `n` most frequent `METHOD /template`s of a `/_sim/requests` answer, most first.
fn top(counts: &Value, n: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = counts
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_orders_by_count_then_name() {
        let counts = json!({"GET /a": 3, "GET /b": 7, "POST /c": 3, "GET /d": 1});
        assert_eq!(
            top(&counts, 3),
            vec![
                ("GET /b".to_owned(), 7),
                ("GET /a".to_owned(), 3),
                ("POST /c".to_owned(), 3)
            ]
        );
        assert!(top(&Value::Null, 3).is_empty());
    }
}
