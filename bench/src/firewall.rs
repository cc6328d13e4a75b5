//! Group `firewall`: the reachability oracle of `pve-sim` on an isolated lab of 60
//! students and one teacher, built with the B.10 isolation design of
//! `reference/fosscloud-and-firewall.md` through the same `Firewall::handle` calls the
//! API would make.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http::Method;
use pve_sim::error::Params;
use pve_sim::firewall::{Firewall, Host, Nic, Proto, Scope};
use serde_json::json;

use crate::measure::{per_second, Latency};
use crate::report::Group;
use crate::Settings;

/// Students in the lab.
pub const STUDENTS: u32 = 60;
/// The teacher's guest id; students are `TEACHER_VMID + 1 ..= TEACHER_VMID + STUDENTS`.
const TEACHER_VMID: u32 = 100;
const TEACHER_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 10);
const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);

/// Run the group.
pub fn run(settings: &Settings) -> Result<Group> {
    let rounds = if settings.quick { 3 } else { 50 };
    let hosts = hosts();
    let pairs = hosts.len() * (hosts.len() - 1);
    let mut group = Group::new(
        "firewall",
        format!(
            "pve-sim firewall oracle, B.10 isolation of {STUDENTS} students + teacher: \
             {pairs} ordered pairs (TCP 22) x {rounds} rounds"
        ),
    );

    let mut fw = Firewall::new();
    let mut calls = 0u64;
    let start = Instant::now();
    build_lab(&mut fw, &mut calls)?;
    let built = start.elapsed();
    group.metric("build state (API handler calls)", calls as f64, "count");
    group.metric(
        "build state",
        built.as_secs_f64() * 1e6 / calls as f64,
        "µs/call",
    );

    let mut samples = Vec::with_capacity(pairs * rounds);
    let mut allowed = 0usize;
    let start = Instant::now();
    for _ in 0..rounds {
        allowed = 0;
        for from in &hosts {
            for to in &hosts {
                if from.vmid == to.vmid {
                    continue;
                }
                let t = Instant::now();
                let verdict = black_box(fw.reachability(from, to, Proto::Tcp, Some(22)));
                samples.push(t.elapsed());
                allowed += usize::from(verdict.allowed);
            }
        }
    }
    let total = start.elapsed();
    // Teacher ↔ each student in both directions and nothing else: anything different
    // means the lab was built wrong and the figures would describe another ruleset.
    let expected = 2 * STUDENTS as usize;
    if allowed != expected {
        bail!("the isolated lab allows {allowed} of {pairs} ordered pairs; B.10 allows exactly {expected}");
    }

    let queries = samples.len() as u64;
    let latency = Latency::of(&samples).context("no reachability query ran")?;
    group.metric("query mean", mean_us(total, queries), "µs");
    group.metric("query p50", latency.p50_us, "µs");
    group.metric("query p99", latency.p99_us, "µs");
    group.metric("queries", per_second(queries, total), "queries/s");
    group.metric(
        "all ordered pairs once",
        total.as_secs_f64() * 1e3 / rounds as f64,
        "ms",
    );

    let state_bytes = serde_json::to_vec(&fw.state())?.len();
    group.metric("firewall state (JSON)", state_bytes as f64, "bytes");
    group.details = json!({
        "students": STUDENTS,
        "pairs": pairs,
        "rounds": rounds,
        "allowed_pairs": allowed,
        "latency": latency,
        "state_json_bytes": state_bytes,
    });
    Ok(group)
}

fn mean_us(total: Duration, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total.as_secs_f64() * 1e6 / count as f64
    }
}

/// The teacher (no firewall on its NIC) and the students (`firewall=1` on net0).
fn hosts() -> Vec<Host> {
    let teacher = Host {
        vmid: Some(TEACHER_VMID),
        ip: IpAddr::V4(TEACHER_IP),
        nics: vec![Nic {
            index: 0,
            firewall: false,
        }],
    };
    let students = (1..=STUDENTS).map(|i| Host {
        vmid: Some(TEACHER_VMID + i),
        ip: student_ip(i),
        nics: vec![Nic {
            index: 0,
            firewall: true,
        }],
    });
    std::iter::once(teacher).chain(students).collect()
}

/// `10.10.1.<i>` (the lab has fewer than 255 students).
fn student_ip(i: u32) -> IpAddr {
    let last = u8::try_from(i).expect("STUDENTS is below 255");
    IpAddr::V4(Ipv4Addr::new(10, 10, 1, last))
}

/// The cluster part of B.10 (sets, the `iso-student` group, the cluster firewall on),
/// then per student: guest options and the group rule.
fn build_lab(fw: &mut Firewall, calls: &mut u64) -> Result<()> {
    let teacher = TEACHER_IP.to_string();
    let dns = DNS_IP.to_string();
    let mut call = |scope: &Scope, method: Method, rest: &[&str], params: &[(&str, &str)]| {
        let params: Params = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        *calls += 1;
        fw.handle(scope, &method, rest, &params)
            .with_context(|| format!("{method} {scope:?} {rest:?}"))
            .map(drop)
    };
    let c = Scope::Cluster;
    call(&c, Method::POST, &["ipset"], &[("name", "iso-teacher")])?;
    call(
        &c,
        Method::POST,
        &["ipset", "iso-teacher"],
        &[("cidr", &teacher)],
    )?;
    call(&c, Method::POST, &["ipset"], &[("name", "iso-dns")])?;
    call(&c, Method::POST, &["ipset", "iso-dns"], &[("cidr", &dns)])?;
    call(&c, Method::POST, &["groups"], &[("group", "iso-student")])?;
    // The API inserts at position 0, so the group's rules are created bottom-up.
    let g = ["groups", "iso-student"];
    let group_rules: [&[(&str, &str)]; 5] = [
        &[("type", "out"), ("action", "DROP")],
        &[("type", "in"), ("action", "DROP")],
        &[
            ("type", "out"),
            ("action", "ACCEPT"),
            ("macro", "DNS"),
            ("dest", "+iso-dns"),
        ],
        &[
            ("type", "out"),
            ("action", "ACCEPT"),
            ("dest", "+iso-teacher"),
        ],
        &[
            ("type", "in"),
            ("action", "ACCEPT"),
            ("source", "+iso-teacher"),
        ],
    ];
    for rule in group_rules {
        let mut params = rule.to_vec();
        params.push(("enable", "1"));
        call(&c, Method::POST, &g, &params)?;
    }
    call(&c, Method::PUT, &["options"], &[("enable", "1")])?;

    for i in 1..=STUDENTS {
        let s = Scope::Guest(TEACHER_VMID + i);
        call(
            &s,
            Method::PUT,
            &["options"],
            &[("enable", "1"), ("dhcp", "1")],
        )?;
        call(
            &s,
            Method::POST,
            &["rules"],
            &[
                ("type", "group"),
                ("action", "iso-student"),
                ("enable", "1"),
                ("comment", "labctl-isolation"),
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_isolates_students_and_lets_the_teacher_through() {
        let mut fw = Firewall::new();
        let mut calls = 0;
        build_lab(&mut fw, &mut calls).unwrap();
        assert_eq!(calls, 11 + 2 * u64::from(STUDENTS));
        let hosts = hosts();
        let (teacher, a, b) = (&hosts[0], &hosts[1], &hosts[60]);
        assert!(!fw.reachability(a, b, Proto::Tcp, Some(22)).allowed);
        assert!(!fw.reachability(b, a, Proto::Icmp, None).allowed);
        assert!(fw.reachability(a, teacher, Proto::Tcp, Some(22)).allowed);
        assert!(fw.reachability(teacher, b, Proto::Tcp, Some(22)).allowed);
        assert_eq!(b.ip.to_string(), "10.10.1.60");
    }
}
