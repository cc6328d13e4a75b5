//! Property tests of the engine on the in-memory fake: any sequence of `up`, `up`
//! interrupted (Ctrl-C) or killed at any call, and `down` converges — a final `up` leaves
//! exactly the lab's students, each once, marked, fenced and running; a final `down`
//! leaves nothing of the lab; a foreign guest and the template are never touched.

use proptest::prelude::*;

use crate::fake::FakeHypervisor;
use crate::*;

#[derive(Debug, Clone)]
enum Op {
    Up,
    /// Ctrl-C after this many changing calls.
    Interrupted(usize),
    /// The process dies after this many changing calls.
    Killed(usize),
    Down,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Up),
        (0usize..40).prop_map(Op::Interrupted),
        (0usize..40).prop_map(Op::Killed),
        Just(Op::Down),
    ]
}

fn foreign() -> GuestInfo {
    GuestInfo {
        vmid: VmId::new(5001).unwrap(),
        name: Some("exam-02".into()),
        node: NodeName::new("pve1").unwrap(),
        kind: VmKind::Vm,
        status: VmStatus::Running,
        template: false,
        pool: Some("other".into()),
        tags: vec!["labctl.other".into()],
        description: None,
    }
}

fn spec(count: u32) -> LabSpec {
    crate::test_spec::spec_in(count, "5000-5019")
}

async fn run(hv: &FakeHypervisor, spec: &LabSpec, op: &Op) {
    let down = DownOptions::new(4);
    match op {
        Op::Up => {
            // Settles; an error here is a bug only if the final run fails too.
            let _ = apply(hv, spec, &no_progress).await;
        }
        Op::Interrupted(k) => {
            let stop = Interrupt::new();
            hv.interrupt_after(*k, stop.clone());
            let _ = apply_with(hv, spec, &no_progress, &stop).await;
            hv.heal();
        }
        Op::Killed(k) => {
            hv.crash_after(*k);
            let _ = apply(hv, spec, &no_progress).await;
            hv.heal();
        }
        Op::Down => {
            let _ = teardown(hv, &spec.name, &down, &no_progress).await;
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // Paused clock: the engine's retry pauses and probe schedule take no wall time.
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn up_down_sequences_converge(count in 1u32..6, ops in prop::collection::vec(op(), 0..6)) {
        let hv = FakeHypervisor::new().with_template(9000, "pve1").with_guest(foreign());
        let spec = spec(count);
        let lab = spec.name.clone();
        runtime().block_on(async {
            for op in &ops {
                run(&hv, &spec, op).await;
            }
            let report = apply(&hv, &spec, &no_progress).await.unwrap();
            prop_assert_eq!(report.students.len(), count as usize);
            prop_assert!(report.fenced);

            let members: Vec<GuestInfo> = hv
                .guests()
                .into_iter()
                .filter(|g| g.pool.as_deref() == Some("exam1"))
                .collect();
            let mut names: Vec<String> = members.iter().filter_map(|g| g.name.clone()).collect();
            names.sort();
            let want: Vec<String> = (1..=count).map(|n| format!("exam-{n:02}")).collect();
            prop_assert_eq!(names, want, "each student exactly once");
            for g in &members {
                prop_assert!(g.is_owned_by(&lab) && g.is_tagged(&lab), "{:?}", g);
                prop_assert!(g.status.is_running(), "{:?}", g);
                prop_assert!(hv.fenced(&lab, g.vmid).await.unwrap());
                prop_assert!((5000..=5019).contains(&g.vmid.get()));
            }
            // A second run changes nothing.
            let clones = hv.clones();
            apply(&hv, &spec, &no_progress).await.unwrap();
            prop_assert_eq!(hv.clones(), clones);

            teardown(&hv, &lab, &DownOptions::new(4), &no_progress).await.unwrap();
            let left = hv.guests();
            prop_assert_eq!(left.len(), 2, "only the template and the foreign guest: {:?}", left);
            prop_assert!(left.contains(&foreign()));
            prop_assert!(left.iter().any(|g| g.vmid.get() == 9000 && g.template));
            prop_assert!(!hv.pools().contains(&"exam1".to_owned()));
            prop_assert!(!hv.lab_fenced(&lab));
            Ok(())
        })?;
    }
}

/// The property is not vacuous: a killed run really leaves a half-built lab (clones
/// without their tag), an interrupted one stops early, and the next `up` adopts what is
/// there instead of cloning again.
#[test]
fn a_killed_run_leaves_marked_clones_that_the_next_run_adopts() {
    let mut saw_untagged = false;
    for k in 1..12 {
        runtime().block_on(async {
            let hv = FakeHypervisor::new().with_template(9000, "pve1");
            let spec = spec(4);
            hv.crash_after(k);
            assert!(apply(&hv, &spec, &no_progress).await.is_err(), "k = {k}");
            hv.heal();
            let half: Vec<GuestInfo> = hv.guests().into_iter().filter(|g| !g.template).collect();
            assert!(half.len() < 4, "k = {k}: {half:?}");
            assert!(half.iter().all(|g| g.is_owned_by(&spec.name)));
            saw_untagged |= half.iter().any(|g| !g.is_tagged(&spec.name));

            let stop = Interrupt::new();
            hv.interrupt_after(1, stop.clone());
            let e = apply_with(&hv, &spec, &no_progress, &stop)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Interrupted { .. }), "k = {k}: {e}");
            hv.heal();

            apply(&hv, &spec, &no_progress).await.unwrap();
            assert_eq!(hv.guests().len(), 5);
            assert_eq!(hv.clones(), 4, "k = {k}: a student was cloned twice");
        });
    }
    assert!(
        saw_untagged,
        "some crash point leaves a clone without its tag"
    );
}
