//! Against the simulator (real HTTP on 127.0.0.1): the reachability oracle before and after
//! isolate, exact restore by unisolate, idempotence, convergence after injected faults, and
//! every request checked against the schema extract.

mod common;

use common::{check_against_schema, fw_state, Log};
use pve_auth::{ApiToken, PveClient};
use pve_firewall::isolation::{Isolation, IsolationOptions, LabName, Students};
use pve_firewall::{Cidr, Error, Firewall, OptionsUpdate, Scope};
use pve_sim::{SimHandle, Simulator};
use pve_vm::{CloneMode, CloneOptions, NewId, VmApi, VmId};

const TOKEN: &str = "root@pam!tester=11111111-2222-3333-4444-555555555555";
const TEACHER: u32 = 100;
const FOREIGN: [u32; 2] = [200, 201];
const TEACHER_IP: &str = "10.10.0.1";

async fn sim(seed: u64) -> SimHandle {
    Simulator::builder()
        .token(TOKEN)
        .plain_http(true)
        .time_scale(0.01)
        .seed(seed)
        .start()
        .await
        .expect("simulator starts")
}

fn client(sim: &SimHandle, log: &Log) -> PveClient {
    let token: ApiToken = TOKEN.parse().expect("token");
    PveClient::builder(&sim.url())
        .token(token)
        .observer(log.observer())
        .build()
        .expect("client")
}

fn id(n: u32) -> VmId {
    VmId::new(n).expect("valid id")
}

/// Clones `n` running students 301.. from the QEMU template 9000, one after the other so
/// every run of a seed builds the same guests.
async fn students(client: &PveClient, n: u32) -> Vec<u32> {
    let vms = VmApi::new(client.clone());
    let template = vms.guest(id(9000)).await.expect("template");
    let mut ids = Vec::new();
    for i in 0..n {
        let vmid = 301 + i;
        let g = template
            .clone_to(CloneOptions {
                newid: NewId::Exact(id(vmid)),
                hostname: Some(format!("stud-{:02}", i + 1)),
                mode: CloneMode::Linked,
                ..CloneOptions::default()
            })
            .await
            .expect("clone");
        g.start().await.expect("start");
        ids.push(vmid);
    }
    ids
}

fn reach(sim: &SimHandle, from: u32, to: u32, proto: &str) -> (bool, String) {
    let port = (proto == "tcp").then_some(22);
    let v = sim
        .reachability(from, &to.to_string(), proto, port)
        .expect("oracle answers");
    (v.allowed, v.reason)
}

/// Reachability between every ordered pair of non-students, tcp 22 and icmp.
fn foreign_matrix(sim: &SimHandle) -> Vec<((u32, u32, &'static str), bool)> {
    let others: Vec<u32> = std::iter::once(TEACHER).chain(FOREIGN).collect();
    let mut out = Vec::new();
    for &a in &others {
        for &b in &others {
            if a != b {
                for proto in ["tcp", "icmp"] {
                    out.push(((a, b, proto), reach(sim, a, b, proto).0));
                }
            }
        }
    }
    out
}

fn options(lab: &str) -> IsolationOptions {
    let mut o = IsolationOptions::new(LabName::new(lab).expect("lab name"));
    o.teacher = Some(id(TEACHER));
    o.management = vec!["192.168.50.0/24".parse().expect("cidr")];
    o
}

fn allowed() -> Vec<Cidr> {
    vec![TEACHER_IP.parse().expect("ip")]
}

#[tokio::test]
async fn ten_students_fenced_from_each_other_and_restored_exactly() {
    let sim = sim(11).await;
    let log = Log::default();
    let client = client(&sim, &log);
    let ids = students(&client, 10).await;
    let first = *ids.first().expect("students");
    let last = *ids.last().expect("students");
    let range = Students::Range {
        first: id(first),
        last: id(last),
    };
    let opts = options("exam1");

    let before = fw_state(&sim);
    let foreign_before = foreign_matrix(&sim);
    assert!(
        reach(&sim, first, last, "tcp").0,
        "without the fence students reach each other"
    );

    log.clear();
    let iso = Isolation::new(client.clone());
    let report = iso
        .isolate(&range, &allowed(), &opts)
        .await
        .expect("isolate");
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.to_string().contains("datacenter firewall enable")),
        "{report}"
    );

    for &a in &ids {
        for &b in &ids {
            if a != b {
                for proto in ["tcp", "icmp"] {
                    let (ok, why) = reach(&sim, a, b, proto);
                    assert!(!ok, "student {a} -> {b} {proto} must be blocked: {why}");
                }
            }
        }
        for proto in ["tcp", "icmp"] {
            let (ok, why) = reach(&sim, a, TEACHER, proto);
            assert!(ok, "student {a} -> teacher {proto}: {why}");
            let (ok, why) = reach(&sim, TEACHER, a, proto);
            assert!(ok, "teacher -> student {a} {proto}: {why}");
        }
    }
    assert_eq!(
        foreign_matrix(&sim),
        foreign_before,
        "foreign guests' reachability is unchanged"
    );

    let verify = iso.verify(&range, &allowed(), &opts).await.expect("verify");
    assert!(verify.is_isolated(), "{verify}");
    assert_eq!(verify.guests.len(), 10);

    // Idempotent: a second isolate changes nothing.
    let isolated = fw_state(&sim);
    let again = iso
        .isolate(&range, &allowed(), &opts)
        .await
        .expect("second isolate");
    assert!(again.is_unchanged(), "{again}");
    assert_eq!(fw_state(&sim), isolated);

    // A fresh process (new client, nothing cached) lifts the fence and restores exactly.
    let iso2 = Isolation::new(client.clone());
    let undo = iso2.unisolate(&range, &opts).await.expect("unisolate");
    assert!(!undo.is_unchanged());
    assert_eq!(
        fw_state(&sim),
        before,
        "unisolate restores every guest and the datacenter"
    );
    assert!(reach(&sim, first, last, "tcp").0);
    let verify = iso2
        .verify(&range, &allowed(), &opts)
        .await
        .expect("verify");
    assert!(!verify.is_isolated());
    assert!(
        verify.guests.iter().all(|g| g
            .problems
            .iter()
            .any(|p| p.contains("no GROUP iso-exam1 rule"))),
        "{verify}"
    );

    // Unisolate of a lab that is not isolated is a no-op.
    let noop = iso2
        .unisolate(&range, &opts)
        .await
        .expect("second unisolate");
    assert!(noop.is_unchanged(), "{noop}");

    let checked = check_against_schema(&log.records());
    assert!(checked > 100, "{checked} requests checked");
    sim.shutdown().await;
}

#[tokio::test]
async fn isolate_interrupted_by_faults_converges_to_the_clean_result() {
    // Reference: a clean run.
    let clean = sim(23).await;
    let log = Log::default();
    let c1 = client(&clean, &log);
    let ids = students(&c1, 4).await;
    let range = Students::Range {
        first: id(ids[0]),
        last: id(ids[3]),
    };
    let opts = options("flaky");
    Isolation::new(c1)
        .isolate(&range, &allowed(), &opts)
        .await
        .expect("clean isolate");
    let want = fw_state(&clean);
    clean.shutdown().await;

    // Same world, faults on while isolating.
    let faulty = sim(23).await;
    let c2 = client(&faulty, &log);
    students(&c2, 4).await;
    let before = fw_state(&faulty);
    faulty.set_fault_rate(0.25).expect("fault rate");
    // Retries off: this is about re-runs converging (tests/faults.rs covers the retries).
    let iso = Isolation::new(c2.clone()).retry(pve_vm::Backoff {
        initial: std::time::Duration::ZERO,
        max: std::time::Duration::ZERO,
        budget: std::time::Duration::ZERO,
        max_retries: 0,
    });
    let mut failed = 0;
    for _ in 0..40 {
        match iso.isolate(&range, &allowed(), &opts).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    matches!(e, Error::Incomplete { .. } | Error::Api(_) | Error::Vm(_)),
                    "unexpected error kind: {e}"
                );
                failed += 1;
            }
        }
    }
    assert!(
        failed > 0,
        "the fault rate should interrupt at least one run"
    );
    faulty.set_fault_rate(0.0).expect("fault rate");
    let settle = iso
        .isolate(&range, &allowed(), &opts)
        .await
        .expect("re-run without faults");
    assert!(
        settle.is_unchanged(),
        "the faulty runs already converged: {settle}"
    );
    assert_eq!(fw_state(&faulty), want, "same state as a clean isolate");

    // Twice == once, and the undo after a faulty history is still exact.
    Isolation::new(c2)
        .unisolate(&range, &opts)
        .await
        .expect("unisolate");
    assert_eq!(fw_state(&faulty), before);
    faulty.shutdown().await;
}

#[tokio::test]
async fn a_teacher_with_its_own_firewall_accepts_the_students() {
    let sim = sim(5).await;
    let log = Log::default();
    let client = client(&sim, &log);
    let ids = students(&client, 3).await;
    let range = Students::List(ids.iter().map(|&n| id(n)).collect());
    // The teacher filters inbound traffic itself (policy_in DROP by default).
    let fw = Firewall::new(client.clone());
    let vms = VmApi::new(client.clone());
    let teacher = vms.guest(id(TEACHER)).await.expect("teacher");
    let scope = Scope::guest(teacher.node().clone(), teacher.kind(), id(TEACHER));
    fw.set_options(&scope, &OptionsUpdate::new().enable(true))
        .await
        .expect("teacher options");
    teacher
        .modify_config(|cfg| {
            let mut update = pve_vm::ConfigUpdate::new();
            for (i, mut nic) in cfg.nics() {
                nic.set_firewall(true);
                update = update.set(&format!("net{i}"), nic.to_string());
            }
            Ok(update)
        })
        .await
        .expect("teacher NIC");
    let before = fw_state(&sim);

    let mut opts = options("tfw");
    let iso = Isolation::new(client.clone());
    let err = iso
        .isolate(&range, &allowed(), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("student_addresses"), "{err}");
    let state = sim.state();
    opts.student_addresses = state["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .filter(|g| ids.contains(&(g["vmid"].as_u64().expect("vmid") as u32)))
        .map(|g| g["ipv4"].as_str().expect("student ip").parse().expect("ip"))
        .collect();
    iso.isolate(&range, &allowed(), &opts)
        .await
        .expect("isolate");
    for &s in &ids {
        let (ok, why) = reach(&sim, s, TEACHER, "tcp");
        assert!(ok, "student {s} -> teacher with firewall: {why}");
        for &o in ids.iter().filter(|&&o| o != s) {
            let (ok, why) = reach(&sim, s, o, "icmp");
            assert!(!ok, "student {s} must not reach student {o}: {why}");
        }
    }
    let (ok, _) = reach(&sim, FOREIGN[0], TEACHER, "tcp");
    assert!(!ok, "the teacher's own policy still drops others");
    iso.unisolate(&range, &opts).await.expect("unisolate");
    assert_eq!(fw_state(&sim), before);
    check_against_schema(&log.records());
    sim.shutdown().await;
}
