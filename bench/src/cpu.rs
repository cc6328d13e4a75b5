//! Client CPU time: the client runs on its own tokio runtime whose threads add their
//! `getrusage(RUSAGE_THREAD)` user + system time to a shared meter when they exit, so the
//! simulator sharing the process is not counted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::resource::{getrusage, UsageWho};

/// How long a finished client runtime may take to stop its threads.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// User + system CPU time of the calling thread; zero where it cannot be read.
pub fn thread_cpu() -> Duration {
    getrusage(UsageWho::RUSAGE_THREAD).map_or(Duration::ZERO, |u| {
        let t = |tv: nix::sys::time::TimeVal| {
            Duration::from_secs(tv.tv_sec().max(0) as u64)
                + Duration::from_micros(tv.tv_usec().max(0) as u64)
        };
        t(u.user_time()) + t(u.system_time())
    })
}

/// Run `make()`'s future on a fresh multi-thread runtime (as `#[tokio::main]` builds one)
/// and return its output with the CPU time all of the runtime's threads used.
pub fn on_metered_runtime<F, Fut, T>(worker_threads: usize, make: F) -> Result<(T, Duration)>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let used_us = Arc::new(AtomicU64::new(0));
    let on_stop = Arc::clone(&used_us);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .enable_all()
        .on_thread_stop(move || {
            let us = u64::try_from(thread_cpu().as_micros()).unwrap_or(u64::MAX);
            on_stop.fetch_add(us, Ordering::Relaxed);
        })
        .build()
        .context("starting the client runtime")?;
    // `block_on` runs the future on this thread: meter it too.
    let before = thread_cpu();
    let out = runtime.block_on(make());
    let caller = thread_cpu().saturating_sub(before);
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    let threads = Duration::from_micros(used_us.load(Ordering::Relaxed));
    Ok((out, threads + caller))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn `d` of this thread's CPU time (not wall time, so a loaded machine cannot
    /// make the test flaky).
    fn spin(d: Duration) -> u64 {
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu().saturating_sub(start) < d {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        x
    }

    #[test]
    fn work_on_runtime_threads_is_counted_and_idle_waiting_is_not() {
        let ((), busy) = on_metered_runtime(2, || async {
            let a = tokio::spawn(async { spin(Duration::from_millis(150)) });
            let b = tokio::task::spawn_blocking(|| spin(Duration::from_millis(150)));
            let _ = (a.await, b.await);
        })
        .unwrap();
        // One spinner on a worker, one on the blocking pool: both are counted.
        assert!(busy >= Duration::from_millis(300), "{busy:?}");
        let ((), idle) = on_metered_runtime(2, || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
        .unwrap();
        assert!(idle < Duration::from_millis(100), "idle {idle:?}");
    }
}
