//! Group `http`: the simulator over real HTTP on 127.0.0.1, driven by `pve-auth`'s
//! `PveClient` with an API token. Client and server share this process (and its CPUs),
//! so the figures are those of the pair, as in the project's tests and demo.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pve_auth::{ApiToken, Params, PveClient, Secret};
use pve_sim::{SimHandle, Simulator};
use rand::Rng;
use serde_json::{json, Value};

use crate::measure::{per_second, Latency};
use crate::report::Group;
use crate::Settings;

/// The paths measured.
const PATHS: [&str; 2] = ["/version", "/cluster/resources"];
/// The concurrency levels measured (requests in flight at once).
const CONCURRENCY: [usize; 2] = [1, 16];

/// Run the group.
pub async fn run(settings: &Settings) -> Result<Group> {
    let requests: u64 = if settings.quick { 400 } else { 10_000 };
    let mut group = Group::new(
        "http",
        format!(
            "pve-sim over plain HTTP on 127.0.0.1 via PveClient (API token), \
             {requests} requests per case after a warm-up"
        ),
    );

    let (sim, client) = start_with_token().await?;

    let mut details = serde_json::Map::new();
    for path in PATHS {
        let answer: Value = client
            .get(path, &Params::new())
            .await
            .with_context(|| format!("GET {path}"))?;
        details.insert(
            format!("GET {path} answer bytes"),
            json!(serde_json::to_vec(&answer)?.len()),
        );
        for concurrency in CONCURRENCY {
            // Warm-up: open the pooled connections, fill caches.
            drive(&client, path, concurrency, 4 * concurrency as u64).await?;
            sim.reset_requests();
            let (wall, samples) = drive(&client, path, concurrency, requests).await?;
            let served = served(&sim);
            let latency = Latency::of(&samples).context("no request ran")?;
            let label = format!("GET {path} c={concurrency}");
            group.metric(
                format!("{label}: rate"),
                per_second(requests, wall),
                "req/s",
            );
            group.metric(format!("{label}: p50"), latency.p50_us, "µs");
            group.metric(format!("{label}: p95"), latency.p95_us, "µs");
            group.metric(format!("{label}: p99"), latency.p99_us, "µs");
            details.insert(
                label,
                json!({
                    "requests": requests,
                    "served_by_simulator": served,
                    "wall_ms": wall.as_secs_f64() * 1e3,
                    "requests_per_s": per_second(requests, wall),
                    "latency": latency,
                }),
            );
        }
    }
    group.details = Value::Object(details);
    sim.shutdown().await;
    Ok(group)
}

/// A simulator that knows one API token (a fresh random secret) and a client using it.
async fn start_with_token() -> Result<(SimHandle, PveClient)> {
    let secret = random_uuid();
    let sim = Simulator::builder()
        .plain_http(true)
        .token(format!("root@pam!bench={secret}"))
        .start()
        .await
        .context("starting the simulator")?;
    let token = ApiToken::new("root@pam", "bench", Secret::new(secret))
        .context("building the API token")?;
    let client = PveClient::builder(&sim.base_url())
        .token(token)
        .build()
        .context("building the PVE client")?;
    Ok((sim, client))
}

/// Send `total` GETs of `path` from `concurrency` tasks sharing one client; returns the
/// wall time and every request's latency.
async fn drive(
    client: &PveClient,
    path: &'static str,
    concurrency: usize,
    total: u64,
) -> Result<(Duration, Vec<Duration>)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let _: Value = client.get(path, &Params::new()).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, pve_auth::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(
            task.await
                .context("a request task panicked")?
                .with_context(|| format!("GET {path}"))?,
        );
    }
    let wall = start.elapsed();
    if samples.len() as u64 != total {
        bail!("{} of {total} requests ran", samples.len());
    }
    Ok((wall, samples))
}

/// Requests the simulator counted since the last reset.
pub fn served(sim: &SimHandle) -> u64 {
    sim.requests()
        .as_object()
        .map_or(0, |counts| counts.values().filter_map(Value::as_u64).sum())
}

/// A random version-4 UUID, the shape of a PVE token secret.
fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secrets_look_like_uuids_and_differ() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "4", "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[tokio::test]
    async fn drive_sends_exactly_the_requested_count() {
        let (sim, client) = start_with_token().await.unwrap();
        sim.reset_requests();
        let (_, samples) = drive(&client, "/version", 3, 10).await.unwrap();
        assert_eq!(samples.len(), 10);
        assert_eq!(served(&sim), 10);
        sim.shutdown().await;
    }
}
