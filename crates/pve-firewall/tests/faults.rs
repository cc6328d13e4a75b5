//! The same fault is handled the same way as in pve-vm: isolate, unisolate, prepare and
//! lift absorb transient failures within their retry budget, so one call completes, and a
//! write whose answer was lost is seen on the re-read instead of being sent twice. Also
//! several labs' shared datacenter objects stay consistent when one lab is lifted.

mod common;

use std::time::Duration;

use common::{check_against_schema, fw_state, Log};
use pve_auth::{ApiToken, PveClient, RetryPolicy};
use pve_firewall::isolation::{Isolation, IsolationOptions, LabName, Students};
use pve_firewall::Cidr;
use pve_sim::{RequestFault, SimHandle, Simulator};
use pve_vm::{Backoff, CloneMode, CloneOptions, NewId, Timing, VmApi, VmId};

const TOKEN: &str = "root@pam!tester=11111111-2222-3333-4444-555555555555";
const SCALE: f64 = 0.01;
const TEACHER_IP: &str = "10.10.0.1";

async fn sim(seed: u64) -> SimHandle {
    Simulator::builder()
        .token(TOKEN)
        .plain_http(true)
        .time_scale(SCALE)
        .seed(seed)
        .start()
        .await
        .expect("simulator starts")
}

/// A client whose own retries of reads are scaled like the simulator's time.
fn client(sim: &SimHandle, log: &Log) -> PveClient {
    let token: ApiToken = TOKEN.parse().expect("token");
    PveClient::builder(&sim.url())
        .token(token)
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(3))
                .max_backoff(Duration::from_millis(40)),
        )
        .observer(log.observer())
        .build()
        .expect("client")
}

fn vms(client: &PveClient) -> VmApi {
    VmApi::with_timing(client.clone(), Timing::default().scaled(SCALE))
}

fn id(n: u32) -> VmId {
    VmId::new(n).expect("valid id")
}

/// Clones `n` running students `first..` from the QEMU template 9000, one at a time.
async fn students(client: &PveClient, first: u32, n: u32) -> Students {
    let template = vms(client).guest(id(9000)).await.expect("template");
    for i in 0..n {
        let g = template
            .clone_to(CloneOptions {
                newid: NewId::Exact(id(first + i)),
                hostname: Some(format!("stud-{}", first + i)),
                mode: CloneMode::Linked,
                ..CloneOptions::default()
            })
            .await
            .expect("clone");
        g.start().await.expect("start");
    }
    Students::Range {
        first: id(first),
        last: id(first + n - 1),
    }
}

fn options(lab: &str) -> IsolationOptions {
    let mut o = IsolationOptions::new(LabName::new(lab).expect("lab name"));
    o.management = vec!["192.168.50.0/24".parse().expect("cidr")];
    o
}

fn allowed() -> Vec<Cidr> {
    vec![TEACHER_IP.parse().expect("ip")]
}

/// Requests counted by the simulator for one `METHOD /template` (faulted ones included).
fn count(sim: &SimHandle, key: &str) -> u64 {
    sim.requests()[key].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn isolate_and_unisolate_complete_in_one_call_under_ten_percent_faults() {
    let mut failures = Vec::new();
    for seed in 1..=10u64 {
        let sim = sim(seed).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let range = students(&client, 301, 4).await;
        let before = fw_state(&sim);
        let iso = Isolation::with_vm_api(vms(&client));
        let opts = options("flaky");
        sim.set_fault_rate(0.1).expect("fault rate");
        let isolated = iso.isolate(&range, &allowed(), &opts).await;
        let verified = iso.verify(&range, &allowed(), &opts).await;
        let lifted = iso.unisolate(&range, &opts).await;
        sim.set_fault_rate(0.0).expect("fault rate");
        match (&isolated, &verified, &lifted) {
            (Ok(_), Ok(v), Ok(_)) if v.is_isolated() => {}
            _ => failures.push(format!(
                "seed {seed}: isolate {:?}; verify {:?}; unisolate {:?}",
                isolated.as_ref().map(|_| ()).map_err(ToString::to_string),
                verified
                    .as_ref()
                    .map(|v| v.to_string())
                    .map_err(ToString::to_string),
                lifted.as_ref().map(|_| ()).map_err(ToString::to_string),
            )),
        }
        if lifted.is_ok() {
            assert_eq!(
                fw_state(&sim),
                before,
                "seed {seed}: unisolate restores exactly, faults or not"
            );
        }
        check_against_schema(&log.records());
        sim.shutdown().await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn one_fault_on_a_lab_wide_request_costs_one_retry_not_the_lab() {
    let sim = sim(7).await;
    let log = Log::default();
    let client = client(&sim, &log);
    let range = students(&client, 301, 3).await;
    let before = fw_state(&sim);
    let iso = Isolation::with_vm_api(vms(&client));
    let opts = options("once");
    // The two lab-wide requests the soak saw fail: a group rule (596) and the datacenter
    // switch (connection closed before an answer).
    sim.fail_next_request(
        "POST",
        "/cluster/firewall/groups/iso-once",
        RequestFault::Status(596, "Connection timed out"),
    )
    .expect("queue fault");
    sim.fail_next_request("PUT", "/cluster/firewall/options", RequestFault::Reset)
        .expect("queue fault");
    sim.reset_requests();
    let report = iso
        .isolate(&range, &allowed(), &opts)
        .await
        .expect("one call completes");
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.to_string().contains("datacenter firewall enable")),
        "{report}"
    );
    // The group body has 4 rules: 4 POSTs plus the one that failed; the switch is 2 PUTs
    // (enable=2, then enable=1) plus the one that failed.
    assert_eq!(count(&sim, "POST /cluster/firewall/groups/{group}"), 5);
    assert_eq!(count(&sim, "PUT /cluster/firewall/options"), 3);
    let check = iso.verify(&range, &allowed(), &opts).await.expect("verify");
    assert!(check.is_isolated(), "{check}");
    iso.unisolate(&range, &opts).await.expect("unisolate");
    assert_eq!(fw_state(&sim), before);
    check_against_schema(&log.records());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_read_back_not_sent_twice() {
    let sim = sim(8).await;
    let log = Log::default();
    let client = client(&sim, &log);
    let range = students(&client, 301, 2).await;
    let before = fw_state(&sim);
    let iso = Isolation::with_vm_api(vms(&client));
    let opts = options("lost");
    // The group is created, the answer never arrives: a blind re-send would fail with
    // "already exists"; the re-read sees it. Same for the first student's marker rule
    // (a re-sent POST would add a second one) and the anti-lockout `enable=2`, which
    // must be confirmed, not left to expire.
    for (method, path) in [
        ("POST", "/cluster/firewall/groups"),
        ("POST", "/nodes/pve1/qemu/301/firewall/rules"),
        ("PUT", "/cluster/firewall/options"),
    ] {
        sim.fail_next_request(method, path, RequestFault::LostAnswer)
            .expect("queue fault");
    }
    iso.isolate(&range, &allowed(), &opts)
        .await
        .expect("one call completes");
    let state = sim.state();
    let rules = state["firewall"]["guests"]["301"]["rules"]
        .as_array()
        .expect("rules")
        .clone();
    assert_eq!(rules.len(), 1, "one marker rule, not two: {rules:?}");
    assert_eq!(
        state["firewall"]["cluster"]["options"]["enable"],
        serde_json::json!(1),
        "the switch is confirmed on"
    );
    let check = iso.verify(&range, &allowed(), &opts).await.expect("verify");
    assert!(check.is_isolated(), "{check}");
    iso.unisolate(&range, &opts).await.expect("unisolate");
    assert_eq!(fw_state(&sim), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn lifting_one_of_three_labs_keeps_the_others_fenced() {
    let sim = sim(9).await;
    let log = Log::default();
    let client = client(&sim, &log);
    let before = fw_state(&sim);
    let iso = Isolation::with_vm_api(vms(&client));
    let labs = [("la", 301), ("lb", 311), ("lc", 321)];
    let mut ranges = Vec::new();
    for (lab, first) in labs {
        let range = students(&client, first, 2).await;
        iso.isolate(&range, &allowed(), &options(lab))
            .await
            .expect("isolate");
        ranges.push(range);
    }
    let fenced = sim.state();
    // The first lab switched the datacenter on; lifting it hands that over.
    iso.unisolate(&ranges[0], &options("la"))
        .await
        .expect("the first lab lifts in one call");
    let after = sim.state();
    let groups = &after["firewall"]["cluster"]["groups"];
    assert!(groups.get("iso-la").is_none(), "{groups}");
    for (i, lab) in ["lb", "lc"].into_iter().enumerate() {
        let group = format!("iso-{lab}");
        assert_eq!(
            groups[&group]["rules"], fenced["firewall"]["cluster"]["groups"][&group]["rules"],
            "{lab}'s group rules unchanged"
        );
        let comment = groups[&group]["comment"].as_str().expect("comment");
        assert_eq!(
            comment,
            format!("labctl:{lab} cluster-enable=-"),
            "{lab} now restores the datacenter's prior state"
        );
        let check = iso
            .verify(&ranges[i + 1], &allowed(), &options(lab))
            .await
            .expect("verify");
        assert!(check.is_isolated(), "{check}");
    }
    assert_eq!(
        after["firewall"]["cluster"]["options"]["enable"],
        serde_json::json!(1)
    );
    iso.unisolate(&ranges[1], &options("lb")).await.expect("lb");
    iso.unisolate(&ranges[2], &options("lc")).await.expect("lc");
    assert_eq!(
        fw_state(&sim).0,
        before.0,
        "the last lab restores the datacenter"
    );
    check_against_schema(&log.records());
    sim.shutdown().await;
}

#[tokio::test]
async fn without_retries_a_fault_still_stops_the_call() {
    // The budget is the caller's: none means the first fault ends the call (and a re-run
    // completes it).
    let sim = sim(10).await;
    let log = Log::default();
    let client = client(&sim, &log);
    let range = students(&client, 301, 2).await;
    let iso = Isolation::with_vm_api(vms(&client)).retry(Backoff {
        initial: Duration::ZERO,
        max: Duration::ZERO,
        budget: Duration::ZERO,
        max_retries: 0,
    });
    let opts = options("strict");
    sim.fail_next_request(
        "POST",
        "/cluster/firewall/groups/iso-strict",
        RequestFault::Status(596, "Connection timed out"),
    )
    .expect("queue fault");
    let err = iso
        .isolate(&range, &allowed(), &opts)
        .await
        .expect_err("no retries");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("596"), "{err}");
    iso.isolate(&range, &allowed(), &opts)
        .await
        .expect("a re-run completes");
    iso.unisolate(&range, &opts).await.expect("unisolate");
    sim.shutdown().await;
}
