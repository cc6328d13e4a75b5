//! The lab the engine's tests share: `count` students `exam-NN` of template 9000 in
//! `ids`, the teacher 10.10.0.1.

use std::future::Future;

use crate::{LabName, LabSpec, VmId};

pub(crate) fn spec_in(count: u32, ids: &str) -> LabSpec {
    watchdog();
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
    watchdog();
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

/// Ends this test process (exit 101, saying why) when it still runs after 5 minutes of
/// real time, or `LABCTL_TEST_WATCHDOG_SECS` seconds (`cargo xtask mutants` sets 60).
/// lab-core's tests take well under a second, so only a hang gets there: a test that
/// waits forever (a retry loop that never stops, on a paused clock) would otherwise keep
/// the process alive after the guarded tests have already failed naming the cause, and a
/// mutation run would end as a timeout instead of a failure. Started by the tests' shared
/// helpers; once per process.
pub(crate) fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let secs = std::env::var("LABCTL_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(300);
        std::thread::spawn(move || {
            let limit = std::time::Duration::from_secs(secs);
            std::thread::sleep(limit);
            eprintln!(
                "lab-core's tests are still running after {limit:?} of real time: a test \
                 waits forever (the failures above name what; `--test-threads=1 \
                 --nocapture` shows which test hangs)"
            );
            std::process::exit(101);
        });
    });
}
