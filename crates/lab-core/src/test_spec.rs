//! The lab the engine's tests share: `count` students `exam-NN` of template 9000 in
//! `ids`, the teacher 10.10.0.1.

use std::future::Future;

use crate::{LabName, LabSpec, VmId};

pub(crate) fn spec_in(count: u32, ids: &str) -> LabSpec {
    let mut s = LabSpec::new(
        LabName::new("exam1").unwrap(),
        VmId::new(9000).unwrap(),
        count,
    )
    .unwrap();
    s.hostname = "exam-{n:02}".parse().unwrap();
    s.ids = ids.parse().unwrap();
    s.teachers = vec!["10.10.0.1".parse().unwrap()];
    s
}

/// Runs `f` under two limits, so that an engine that never finishes fails its test with
/// `what` instead of hanging the run: `virtual_limit` of the (paused) tokio clock, for
/// waits that sleep forever, and 30 s of real time, for a loop that never sleeps (a paused
/// clock only moves when every task waits, so a busy loop would stop it; tokio's
/// cooperative budget still hands control back here, where the real clock is read). The
/// engine's tests take milliseconds: the real limit only ever catches a hang.
pub(crate) async fn guarded<F: Future>(
    what: &str,
    virtual_limit: std::time::Duration,
    f: F,
) -> F::Output {
    const REAL_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
    let started = std::time::Instant::now();
    let mut f = std::pin::pin!(tokio::time::timeout(virtual_limit, f));
    std::future::poll_fn(|cx| {
        assert!(
            started.elapsed() < REAL_LIMIT,
            "{what}: still running after {REAL_LIMIT:?} of real time (a loop that never waits)"
        );
        f.as_mut().poll(cx)
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not finished after {virtual_limit:?} (virtual)"))
}
