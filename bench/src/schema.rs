//! Group `schema`: what `pve-sim` does with every API request before handling it, and
//! what client tests do with every recorded request — match the concrete path to a
//! schema endpoint, then validate the parameters with PVE's rules.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::measure::{per_second, time_loop};
use crate::report::Group;
use crate::Settings;

/// A typical request as a client sends it.
struct Request {
    label: &'static str,
    method: &'static str,
    path: &'static str,
    params: &'static [(&'static str, &'static str)],
}

/// The requests of a lab bring-up that carry the most parameters to check.
const REQUESTS: &[Request] = &[
    Request {
        label: "clone",
        method: "POST",
        path: "/nodes/pve1/qemu/9000/clone",
        params: &[
            ("newid", "123"),
            ("name", "stud-01"),
            ("full", "0"),
            ("target", "pve2"),
            ("pool", "exam"),
            ("description", "exam 2024, seat 1"),
        ],
    },
    Request {
        label: "config PUT net0",
        method: "PUT",
        path: "/nodes/pve1/qemu/123/config",
        params: &[
            ("net0", "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1"),
            ("digest", "3f0f1f2a3b4c5d6e7f8091a2b3c4d5e6f7081920"),
        ],
    },
    Request {
        label: "task status (UPID path)",
        method: "GET",
        path: "/nodes/pve1/tasks/UPID%3Apve1%3A000012AB%3A0001F2C3%3A65A1B2C3%3Aqmclone%3A9000%3Aroot%40pam%3A/status",
        params: &[],
    },
];

/// Run the group.
pub fn run(settings: &Settings) -> Result<Group> {
    let iterations = if settings.quick { 20_000 } else { 300_000 };
    let mut group = Group::new(
        "schema",
        format!(
            "pve-schema route matching + parameter validation, {iterations} iterations per case"
        ),
    );

    // `pve_schema::schema()` parses once per process; parse a private copy to time it.
    let start = Instant::now();
    let parsed = pve_schema::Schema::from_extract(pve_schema::EXTRACT_JSON)
        .context("parsing the embedded schema extract")?;
    group.metric("parse extract", start.elapsed().as_secs_f64() * 1e3, "ms");
    drop(parsed);

    let schema = pve_schema::schema();
    // Check once, outside the timed loops, that each request matches and is valid: a
    // benchmark of the error path would measure something else.
    for r in REQUESTS {
        let m = schema
            .find(r.method, r.path)
            .with_context(|| format!("{} {} is not in the schema extract", r.method, r.path))?;
        if let Err(errors) = m.endpoint.validate(&full_params(&m.path_params, r.params)) {
            bail!("{} {} does not validate: {errors:?}", r.method, r.path);
        }
    }

    let mut details = serde_json::Map::new();
    for r in REQUESTS {
        let elapsed = time_loop(iterations, || {
            let m = schema.find(black_box(r.method), black_box(r.path));
            if let Some(m) = m {
                let params = full_params(&m.path_params, r.params);
                let _ = black_box(m.endpoint.validate(&params));
            }
        });
        let ops = per_second(iterations, elapsed);
        group.metric(format!("{}: match+validate", r.label), ops, "ops/s");
        details.insert(
            r.label.to_owned(),
            json!({
                "method": r.method,
                "path": r.path,
                "ops_per_s": ops,
                "ns_per_op": 1e9 / ops.max(f64::MIN_POSITIVE),
            }),
        );
    }

    let lookups = iterations * REQUESTS.len() as u64;
    let mut i = 0usize;
    let elapsed = time_loop(lookups, || {
        let r = &REQUESTS[i % REQUESTS.len()];
        i += 1;
        let _ = black_box(schema.find(black_box(r.method), black_box(r.path)));
    });
    group.metric(
        "route match only (mix)",
        per_second(lookups, elapsed),
        "ops/s",
    );
    group.details = serde_json::Value::Object(details);
    Ok(group)
}

/// Path parameters plus the request's own, as the simulator validates them.
fn full_params(
    path_params: &BTreeMap<String, String>,
    params: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut all = path_params.clone();
    for (k, v) in params {
        all.insert((*k).to_owned(), (*v).to_owned());
    }
    all
}
