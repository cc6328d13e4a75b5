//! The engine's failure paths and economy, as a teacher would meet them, on the fake
//! backend with misbehaving guests ([`Quirk`]) and a paused clock: simulated waits take no
//! wall time, and a wait that would never end fails under the test's own (virtual) limit
//! naming what it waited for. Written from the mutants `cargo xtask mutants` found
//! uncaught in `up.rs` (issue 24): timeouts that never fire, retry budgets that count the
//! wrong way, a probe schedule that looks too often.

use std::time::Duration;

use tokio::time::Instant;

use crate::fake::{FakeHypervisor, Quirk};
use crate::*;

/// Longer than any wait of these tests may take in virtual time.
const LIMIT: Duration = Duration::from_secs(4 * 3600);

fn spec(count: u32) -> LabSpec {
    crate::test_spec::spec_in(count, "5000-5099")
}

fn fake() -> FakeHypervisor {
    FakeHypervisor::new().with_template(9000, "pve1")
}

/// `apply`, failing the test (not hanging it) when it has not ended after [`LIMIT`].
async fn up(hv: &FakeHypervisor, spec: &LabSpec, what: &str) -> (Result<LabReport>, Duration) {
    let t = Instant::now();
    let r = crate::test_spec::guarded(
        &format!("lab up with {what}"),
        LIMIT,
        apply(hv, spec, &no_progress),
    )
    .await;
    (r, t.elapsed())
}

/// The one failed student of an incomplete `up`, and the others' count.
fn one_failure(r: Result<LabReport>) -> Failure {
    let e = r.expect_err("the lab should be incomplete");
    let Error::Incomplete { failures, .. } = e else {
        panic!("not an incomplete lab: {e}")
    };
    assert_eq!(failures.len(), 1, "exactly one student fails: {failures:?}");
    failures.into_iter().next().unwrap()
}

fn running(hv: &FakeHypervisor) -> Vec<String> {
    let mut names: Vec<String> = hv
        .guests()
        .into_iter()
        .filter(|g| !g.template && g.status.is_running())
        .filter_map(|g| g.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(start_paused = true)]
async fn a_student_whose_agent_never_answers_fails_with_a_ready_timeout_and_the_others_finish() {
    let hv = fake().with_quirk(
        Some("exam-02"),
        Quirk {
            agent_never_answers: true,
            ..Quirk::default()
        },
    );
    let spec = spec(3);
    let (r, took) = up(&hv, &spec, "a guest whose agent never answers").await;
    let f = one_failure(r);
    assert_eq!(f.subject, "exam-02");
    assert!(
        f.message.contains("timed out") && f.message.contains("ready"),
        "the failure says it waited for the agent: {f:?}"
    );
    assert!(
        took >= spec.timeouts.ready,
        "not before the ready timeout ({:?}): after {took:?}",
        spec.timeouts.ready
    );
    // Everybody was started; the two others are up with an address.
    assert_eq!(running(&hv), ["exam-01", "exam-02", "exam-03"]);
    let rows = status(&hv, &spec.name).await.unwrap();
    let addressed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.addresses.is_empty() && r.hostname != "exam-02")
        .map(|r| r.hostname.as_str())
        .collect();
    assert_eq!(addressed, ["exam-01", "exam-03"]);
}

#[tokio::test(start_paused = true)]
async fn a_student_whose_address_never_comes_fails_with_an_address_timeout_and_the_others_finish() {
    let hv = fake().with_quirk(
        Some("exam-01"),
        Quirk {
            no_address: true,
            ready_after: Duration::from_secs(20),
            ..Quirk::default()
        },
    );
    let spec = spec(3);
    let (r, took) = up(&hv, &spec, "a ready guest that never gets an address").await;
    let f = one_failure(r);
    assert_eq!(f.subject, "exam-01");
    assert!(
        f.message.contains("timed out") && f.message.contains("an address of VM"),
        "the failure says it waited for the address: {f:?}"
    );
    assert!(
        took >= Duration::from_secs(20) + spec.timeouts.address,
        "not before the address timeout counted from readiness: after {took:?}"
    );
    assert!(
        took < spec.timeouts.ready + spec.timeouts.address,
        "the address wait is not the ready wait again: after {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn transient_probe_failures_within_the_guests_budget_cost_nothing() {
    let spec = spec(3);
    let hv = fake().with_quirk(
        Some("exam-03"),
        Quirk {
            probe_failures: spec.timeouts.retry.per_guest,
            ..Quirk::default()
        },
    );
    let (r, _) = up(&hv, &spec, "probes failing within the budget").await;
    let report = r.expect("every failure is within exam-03's budget");
    assert_eq!(report.students.len(), 3);
    assert!(report.students.iter().all(|s| !s.addresses.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn transient_probe_failures_beyond_the_budget_fail_that_student_alone() {
    let spec = spec(3);
    let hv = fake().with_quirk(
        Some("exam-03"),
        Quirk {
            probe_failures: spec.timeouts.retry.per_guest + 1,
            ..Quirk::default()
        },
    );
    let (r, took) = up(&hv, &spec, "probes failing beyond the budget").await;
    let f = one_failure(r);
    assert_eq!(f.subject, "exam-03");
    assert!(
        f.message.contains("injected by the fake"),
        "the last transient error is reported: {f:?}"
    );
    assert!(
        took < spec.timeouts.ready,
        "an exhausted budget fails at once, not at the ready timeout: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_per_guest_over_all_its_steps() {
    let spec = spec(2);
    let per_guest = spec.timeouts.retry.per_guest;
    assert!(per_guest > 4, "the test splits the budget over two steps");
    // Starts and probes of exam-01 share one budget: exactly all of it is fine…
    let hv = fake().with_quirk(
        Some("exam-01"),
        Quirk {
            start_failures: 3,
            probe_failures: per_guest - 3,
            ..Quirk::default()
        },
    );
    let (r, _) = up(
        &hv,
        &spec,
        "start and probe failures using the whole budget",
    )
    .await;
    assert_eq!(r.expect("within the budget").students.len(), 2);
    // …one more, anywhere, is the end of that student (and only that one).
    let hv = fake().with_quirk(
        Some("exam-01"),
        Quirk {
            start_failures: 3,
            probe_failures: per_guest - 2,
            ..Quirk::default()
        },
    );
    let (r, _) = up(&hv, &spec, "one failure more than the budget").await;
    assert_eq!(one_failure(r).subject, "exam-01");
    assert_eq!(running(&hv), ["exam-01", "exam-02"]);
}

#[tokio::test(start_paused = true)]
async fn start_failures_beyond_the_budget_leave_the_student_stopped_and_say_so() {
    let spec = spec(2);
    let hv = fake().with_quirk(
        Some("exam-02"),
        Quirk {
            start_failures: spec.timeouts.retry.per_guest + 1,
            ..Quirk::default()
        },
    );
    let (r, _) = up(&hv, &spec, "a guest that will not start").await;
    let f = one_failure(r);
    assert_eq!(f.subject, "exam-02");
    assert!(f.message.contains("start"), "{f:?}");
    assert_eq!(running(&hv), ["exam-01"]);
}

/// Probes of a class whose guests all boot in `boot` and get their address 2 s later.
async fn probes_for(students: u32, boot: Duration) -> u64 {
    let hv = fake().with_quirk(
        None,
        Quirk {
            ready_after: boot,
            address_after: Duration::from_secs(2),
            ..Quirk::default()
        },
    );
    let (r, _) = up(&hv, &spec(students), "a class that boots slowly").await;
    assert_eq!(
        r.expect("everyone comes up").students.len(),
        students as usize
    );
    hv.probes()
}

#[tokio::test(start_paused = true)]
async fn the_probe_schedule_learns_the_boot_time_so_most_guests_are_probed_once() {
    // 40 s to boot (well past the 10 s hint): the first guests explore, the rest are
    // looked at when the first had their address.
    let probes = probes_for(30, Duration::from_secs(40)).await;
    assert!(
        probes <= 30 + 10,
        "{probes} probes for 30 guests: the schedule should learn the boot time"
    );
    // A class twice as large costs about one more probe per guest, not more exploring.
    let more = probes_for(60, Duration::from_secs(40)).await;
    assert!(
        more <= probes + 32,
        "{more} probes for 60 guests against {probes} for 30"
    );
}

#[tokio::test(start_paused = true)]
async fn guests_that_boot_sooner_than_the_hint_are_not_probed_before_it() {
    // Ready at once: every guest is first looked at at the boot hint, once.
    let probes = probes_for(20, Duration::ZERO).await;
    assert!(probes <= 20, "{probes} probes for 20 guests ready at once");
}

/// One guest ready `ready` after its start with its address `address` later: probes and
/// the (virtual) time `up` took.
async fn one_guest(ready: u64, address: u64) -> (u64, Duration) {
    let hv = fake().with_quirk(
        None,
        Quirk {
            ready_after: Duration::from_secs(ready),
            address_after: Duration::from_secs(address),
            ..Quirk::default()
        },
    );
    let (r, took) = up(&hv, &spec(1), "one guest waiting for its address").await;
    r.expect("the guest comes up");
    (hv.probes(), took)
}

#[tokio::test(start_paused = true)]
async fn a_ready_guest_waiting_for_dhcp_costs_about_a_dozen_looks_and_is_seen_within_a_gap() {
    // Ready at 20 s, its address 30 s later: looks at gaps growing from a quarter of the
    // address hint to the 10 s boot hint, so about a dozen looks, and the address is seen
    // within one longest gap of its coming.
    let (probes, took) = one_guest(20, 30).await;
    assert!(probes <= 12, "{probes} probes for a 30 s wait for DHCP");
    assert!(
        took <= Duration::from_secs(50 + 10),
        "the address came at 50 s and was seen at {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_address_soon_after_readiness_is_seen_within_seconds() {
    // Ready at 20 s, its address 1 s later: the first looks after readiness come at a
    // fraction of the address hint, not at the boot hint.
    let (probes, took) = one_guest(20, 1).await;
    assert!(
        took <= Duration::from_secs(21 + 5),
        "the address came at 21 s and was seen at {took:?}"
    );
    assert!(probes <= 8, "{probes} probes");
}

#[tokio::test(start_paused = true)]
async fn a_class_waiting_for_a_slow_dhcp_server_learns_from_the_first_address() {
    // Everyone ready at 20 s, addresses 30 s later: once the first guest has its address,
    // the others are looked at then, not each at its own growing gaps.
    let hv = fake().with_quirk(
        None,
        Quirk {
            ready_after: Duration::from_secs(20),
            address_after: Duration::from_secs(30),
            ..Quirk::default()
        },
    );
    let (r, took) = up(&hv, &spec(10), "a class waiting for DHCP").await;
    assert_eq!(r.expect("everyone comes up").students.len(), 10);
    assert!(
        hv.probes() <= 10 * 2 + 10,
        "{} probes for 10 guests",
        hv.probes()
    );
    assert!(took <= Duration::from_secs(50 + 10), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn the_probe_schedule_keeps_its_measured_economy() {
    // Classes booting in `boot` s, their address `dhcp` s later: at most this many probes,
    // and every address seen by this (virtual) time. The figures are the economy measured
    // when the schedule was last changed; a change that costs more probes or sees
    // addresses later fails here (one that does better should lower the figures).
    // boot, dhcp, students, at most probes, all addressed by (ms)
    let table: [(u64, u64, u32, u64, u128); 8] = [
        (40, 2, 30, 38, 44_631),   // slower than the 10 s hint: explore, then learn
        (0, 0, 20, 20, 10_500),    // faster than the hint: one look each, at the hint
        (100, 2, 10, 24, 104_631), // far slower: bisection narrows the bracket
        (25, 2, 6, 13, 34_631),
        (15, 0, 12, 16, 16_595),
        (60, 5, 40, 51, 74_631), // a big class with a slow DHCP server
        (12, 2, 3, 7, 16_595),
        (30, 1, 1, 8, 34_131), // alone: nobody to learn from
    ];
    for (boot, dhcp, n, most, by) in table {
        let hv = fake().with_quirk(
            None,
            Quirk {
                ready_after: Duration::from_secs(boot),
                address_after: Duration::from_secs(dhcp),
                ..Quirk::default()
            },
        );
        let what = format!("{n} guests booting in {boot} s, DHCP {dhcp} s");
        let (r, took) = up(&hv, &spec(n), &what).await;
        assert_eq!(r.expect("everyone comes up").students.len(), n as usize);
        assert!(
            hv.probes() <= most,
            "{what}: {} probes, at most {most}",
            hv.probes()
        );
        assert!(
            took.as_millis() <= by,
            "{what}: took {took:?}, at most {by} ms"
        );
    }
}
