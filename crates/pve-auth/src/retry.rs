//! Retry budget and backoff for transient failures.

use std::time::Duration;

use rand::Rng;

/// How often and how long transient failures are retried.
///
/// GETs are retried on connect errors, connections closed before the answer and HTTP
/// 502/503/504/595/596; POST/PUT/DELETE only on connect errors (provably never sent). The
/// delay before retry *n* (1-based) is `initial · 2^(n-1)` capped at `max_backoff`, of which
/// a random half is dropped ("equal jitter") so that many clients do not retry in lockstep.
/// Retrying stops after `max_attempts` attempts in total or when the next delay would exceed
/// the time `budget` measured from the first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    budget: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms initial backoff, at most 4 s between attempts, 30 s in total.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            budget: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Total attempts including the first (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Delay before the first retry.
    pub fn initial_backoff(mut self, delay: Duration) -> Self {
        self.initial_backoff = delay;
        self
    }

    /// Largest delay between two attempts.
    pub fn max_backoff(mut self, delay: Duration) -> Self {
        self.max_backoff = delay;
        self
    }

    /// Total time from the first attempt after which no retry starts.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Configured number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Configured total time budget.
    pub fn time_budget(&self) -> Duration {
        self.budget
    }

    /// The delay before retry number `retry` (1-based) given a jitter sample in `[0, 1]`:
    /// a pure function, so the schedule is testable.
    pub fn delay_with_jitter(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let half = base / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The delay before retry number `retry` (1-based) with random jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let jitter = rand::thread_rng().gen_range(0.0..=1.0);
        self.delay_with_jitter(retry, jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(1000));
        assert_eq!(p.delay_with_jitter(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay_with_jitter(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay_with_jitter(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay_with_jitter(3, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay_with_jitter(10, 1.0), Duration::from_millis(1000));
        assert_eq!(
            p.delay_with_jitter(u32::MAX, 1.0),
            Duration::from_millis(1000)
        );
        for _ in 0..100 {
            let d = p.delay(2);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }

    #[test]
    fn none_means_one_attempt() {
        assert_eq!(RetryPolicy::none().attempts(), 1);
        assert_eq!(RetryPolicy::default().max_attempts(0).attempts(), 1);
        assert_eq!(RetryPolicy::default().attempts(), 4);
    }
}
