//! Measuring helpers: latency summaries (percentiles) and the process's memory as Linux
//! reports it in `/proc/self/status`.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Run `op` `iterations` times and return the elapsed wall time of the whole loop.
///
/// One clock read per loop, not per call, so operations of a few nanoseconds are not
/// swamped by the cost of reading the clock.
pub fn time_loop(iterations: u64, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    start.elapsed()
}

/// Operations per second for `count` operations in `elapsed` (0 when nothing was timed).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Order statistics of a set of latencies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median (nearest rank).
    pub p50_us: f64,
    /// 95th percentile (nearest rank).
    pub p95_us: f64,
    /// 99th percentile (nearest rank).
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Latency {
    /// Summarise samples; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let total: f64 = sorted.iter().map(|d| us(*d)).sum();
        Some(Latency {
            count: sorted.len(),
            mean_us: total / sorted.len() as f64,
            p50_us: us(nearest_rank(&sorted, 50)),
            p95_us: us(nearest_rank(&sorted, 95)),
            p99_us: us(nearest_rank(&sorted, 99)),
            max_us: us(sorted[sorted.len() - 1]),
        })
    }
}

/// The `pct`-th percentile of sorted, non-empty samples by the nearest-rank method: the
/// smallest sample with at least `pct` % of all samples at or below it.
fn nearest_rank(sorted: &[Duration], pct: u32) -> Duration {
    let n = sorted.len();
    let rank = (pct as usize * n).div_ceil(100).clamp(1, n);
    sorted[rank - 1]
}

/// Resident-set figures of this process in KiB, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak since the process started or since the last [`reset_peak`].
    pub hwm_kib: u64,
}

/// Read `/proc/self/status`; `None` where it does not exist (not Linux) or lacks the fields.
pub fn memory() -> Option<Memory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status(&status)
}

/// Parse the `VmRSS` and `VmHWM` lines (`VmHWM:\t   12345 kB`).
fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// Reset `VmHWM` to the current RSS (Linux ≥ 4.0: write `5` to `/proc/self/clear_refs`),
/// so the next reading is the peak of what ran in between. Returns whether it worked;
/// where it does not, `VmHWM` stays the peak since the process started.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Tracks the process peak across groups while resetting `VmHWM` before each group.
#[derive(Debug, Default)]
pub struct MemoryTracker {
    process_peak_kib: u64,
    resets_work: bool,
}

/// Memory figures of one benchmark group, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupMemory {
    /// Resident set when the group finished.
    pub rss_kib: u64,
    /// Peak resident set while the group ran (`None` where `VmHWM` cannot be reset).
    pub group_peak_kib: Option<u64>,
    /// Peak resident set of the process so far (`VmHWM` as it would read without resets).
    pub process_peak_kib: u64,
}

impl MemoryTracker {
    /// Start tracking: remember the peak so far.
    pub fn new() -> Self {
        let process_peak_kib = memory().map_or(0, |m| m.hwm_kib);
        Self {
            process_peak_kib,
            resets_work: false,
        }
    }

    /// Call before a group runs.
    pub fn begin_group(&mut self) {
        if let Some(m) = memory() {
            self.process_peak_kib = self.process_peak_kib.max(m.hwm_kib);
        }
        self.resets_work = reset_peak();
    }

    /// Call after a group ran; `None` where `/proc/self/status` is unavailable.
    pub fn end_group(&mut self) -> Option<GroupMemory> {
        let m = memory()?;
        self.process_peak_kib = self.process_peak_kib.max(m.hwm_kib);
        Some(GroupMemory {
            rss_kib: m.rss_kib,
            group_peak_kib: self.resets_work.then_some(m.hwm_kib),
            process_peak_kib: self.process_peak_kib,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let samples = ms(&(1..=100).rev().collect::<Vec<_>>());
        let l = Latency::of(&samples).unwrap();
        assert_eq!(l.count, 100);
        assert_eq!(l.p50_us, 50_000.0);
        assert_eq!(l.p95_us, 95_000.0);
        assert_eq!(l.p99_us, 99_000.0);
        assert_eq!(l.max_us, 100_000.0);
        assert_eq!(l.mean_us, 50_500.0);
    }

    #[test]
    fn percentiles_of_few_samples_pick_real_samples() {
        let l = Latency::of(&ms(&[30, 10, 20])).unwrap();
        assert_eq!(l.p50_us, 20_000.0);
        assert_eq!(l.p95_us, 30_000.0);
        assert_eq!(l.p99_us, 30_000.0);
        let one = Latency::of(&ms(&[7])).unwrap();
        assert_eq!(
            (one.p50_us, one.p99_us, one.max_us),
            (7000.0, 7000.0, 7000.0)
        );
        assert!(Latency::of(&[]).is_none());
    }

    #[test]
    fn per_second_handles_zero_time() {
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
        assert_eq!(per_second(10, Duration::from_millis(500)), 20.0);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status =
            "Name:\tlabctl-bench\nVmPeak:\t  999 kB\nVmHWM:\t    4096 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(
            parse_status(status),
            Some(Memory {
                rss_kib: 2048,
                hwm_kib: 4096
            })
        );
        assert_eq!(parse_status("VmRSS:\t1 kB\n"), None);
        assert_eq!(parse_status("VmRSS:\tmany kB\nVmHWM:\t1 kB\n"), None);
    }

    #[test]
    fn reset_lowers_the_peak_after_a_large_buffer_is_freed() {
        if !cfg!(target_os = "linux") {
            return;
        }
        // 64 MiB touched then freed (glibc returns blocks this large to the OS at once).
        let big = vec![1u8; 64 << 20];
        assert_eq!(std::hint::black_box(&big)[12345], 1);
        drop(big);
        let before = memory().unwrap();
        assert!(before.hwm_kib >= before.rss_kib + 60 * 1024, "{before:?}");
        if reset_peak() {
            let after = memory().unwrap();
            assert!(
                after.hwm_kib + 60 * 1024 <= before.hwm_kib,
                "{before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn memory_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let m = memory().unwrap();
            assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib, "{m:?}");
        }
    }
}
